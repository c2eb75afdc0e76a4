//! The sales service process: `sales` serves, `sales migrate` only applies
//! migrations (for a Kubernetes Job or init container).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = crm_shared::config::load(crm_sales::SERVICE, crm_sales::DEFAULT_PORT)
        .context("loading configuration")?;
    let _telemetry = crm_shared::telemetry::init(crm_sales::SERVICE, &settings.telemetry)?;
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => crm_sales::migrate_only(&settings).await?,
        None | Some("serve") => {
            let links = crm_sales::Links::load().context("loading configuration")?;
            let app = crm_sales::Application::build(settings, links).await?;
            app.run_until_stopped(crm_shared::server::termination_signal())
                .await?;
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; use `serve` or `migrate`"),
    }
    Ok(())
}
