//! The contacts service process: `contacts` serves, `contacts migrate` only
//! applies migrations (for a Kubernetes Job or init container).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_shared::kit::run_process(&crm_contacts::SERVICE, crm_contacts::build).await?;
    Ok(())
}
