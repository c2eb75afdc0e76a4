//! The gateway process.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = crm_gateway::config::load().context("loading configuration")?;
    let _telemetry = crm_shared::telemetry::init(crm_gateway::SERVICE, &settings.telemetry)?;
    let app = crm_gateway::Application::build(settings).await?;
    app.run_until_stopped(crm_shared::server::termination_signal())
        .await?;
    Ok(())
}
