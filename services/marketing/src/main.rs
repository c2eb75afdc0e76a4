//! The marketing service process: `marketing` serves, `marketing migrate`
//! only applies migrations (for a Kubernetes Job or init container).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_shared::kit::run_process(&crm_marketing::SERVICE, crm_marketing::build).await?;
    Ok(())
}
