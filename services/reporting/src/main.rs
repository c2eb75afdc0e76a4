//! The reporting service process: `reporting` serves, `reporting migrate`
//! only applies migrations (for a Kubernetes Job or init container).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_shared::kit::run_process(&crm_reporting::SERVICE, crm_reporting::build).await?;
    Ok(())
}
