//! The contacts service process: `contacts` serves, `contacts migrate` only
//! applies migrations (for a Kubernetes Job or init container).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = crm_shared::config::load(crm_contacts::SERVICE, crm_contacts::DEFAULT_PORT)
        .context("loading configuration")?;
    let _telemetry = crm_shared::telemetry::init(crm_contacts::SERVICE, &settings.telemetry)?;
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => crm_contacts::migrate_only(&settings).await?,
        None | Some("serve") => {
            let app = crm_contacts::Application::build(settings).await?;
            app.run_until_stopped(crm_shared::server::termination_signal())
                .await?;
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; use `serve` or `migrate`"),
    }
    Ok(())
}
