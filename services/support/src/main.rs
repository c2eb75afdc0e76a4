//! The support service process: `support` serves, `support migrate` only
//! applies migrations (for a Kubernetes Job or init container).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_shared::kit::run_process(&crm_support::SERVICE, crm_support::build).await?;
    Ok(())
}
