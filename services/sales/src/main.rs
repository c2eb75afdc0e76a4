//! The sales service process: `sales` serves, `sales migrate` only applies
//! migrations (for a Kubernetes Job or init container).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crm_shared::kit::run_process(&crm_sales::SERVICE, crm_sales::build).await?;
    Ok(())
}
