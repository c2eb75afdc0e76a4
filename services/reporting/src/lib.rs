//! The reporting service: KPIs for a period with their comparisons, a 360°
//! view of a customer and the state of erasures, answered from a read model
//! that reporting keeps only from the event feeds of contacts, sales,
//! marketing and support.
//!
//! Reads top-down: [`build`] wires the layers on the shared service kit;
//! `consumer` turns each feed's events into domain values and applies them;
//! `domain/` holds the rules (periods and buckets, what each resource
//! contributes to the daily aggregates, how each KPI is computed); `store/`
//! the SeaORM queries, always scoped by generation and tenant; `api/` the
//! protobuf surface; `rebuild` replays the feeds into a fresh generation.

mod api;
// Public for the benchmark, which fills a read model as the consumers do.
pub mod consumer;
pub mod domain;
mod migration;
mod rebuild;
mod snapshots;
pub mod store;

#[cfg(test)]
mod history_tests;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crm_proto::reporting::reporting_service_server::ReportingServiceServer;
use crm_shared::{
    config::Settings,
    kit::{KitError, ServiceInfo, ServiceKit},
};

pub use api::ROLE_RULES;
pub use migration::Migrator;

/// The service's name, package and default port.
pub static SERVICE: ServiceInfo = ServiceInfo {
    name: "reporting",
    package: "crm.reporting.v1",
    default_port: 50065,
};

/// The services that confirm an erasure unless `reporting.erasure_services` says otherwise.
const DEFAULT_ERASURE_SERVICES: &str = "sales,marketing,support,reporting";

/// The feeds to follow: `reporting.sources` (comma-separated), by default
/// every service reporting knows; a suite without one of them leaves it out.
fn followed_sources(settings: &Settings) -> Result<Vec<&'static str>, KitError> {
    let Some(listed) = settings
        .options
        .get("sources")
        .filter(|s| !s.trim().is_empty())
    else {
        return Ok(consumer::SOURCES.to_vec());
    };
    listed
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            consumer::SOURCES
                .iter()
                .copied()
                .find(|s| *s == name)
                .ok_or_else(|| {
                    KitError::Config(config::ConfigError::Message(format!(
                        "reporting.sources: {name:?} is not one of {}",
                        consumer::SOURCES.join(", ")
                    )))
                })
        })
        .collect()
}

/// The reporting service, bound and connected, ready to run: its API, a
/// consumer per source feed, the forecast snapshot job (every
/// `reporting.forecast_snapshot_minutes`, 60 by default) and the rebuild job
/// (every `reporting.rebuild_check_millis`, 1 s by default), each on one
/// replica.
pub async fn build(settings: Settings) -> Result<ServiceKit<Migrator>, KitError> {
    let due_hours: i64 = settings.option("erasure_due_hours", 72)?;
    let rebuild_every = Duration::from_millis(settings.option("rebuild_check_millis", 1_000)?);
    let snapshot_every =
        Duration::from_secs(60 * settings.option("forecast_snapshot_minutes", 60_u64)?.max(1));
    let erasure_services = settings
        .options
        .get("erasure_services")
        .map_or(DEFAULT_ERASURE_SERVICES, String::as_str)
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let sources = followed_sources(&settings)?;
    let mut kit = ServiceKit::build(&SERVICE, settings).await?;
    let store = store::Store::new(kit.resources());
    let model = consumer::ReadModel::new(store.clone());
    let options = api::ApiOptions {
        erasure_services,
        erasure_due: chrono::Duration::hours(due_hours.clamp(1, 24 * 365)),
    };
    let reporting = api::ReportingApi::new(store.clone(), kit.page_tokens(), options);
    kit.add_service(ReportingServiceServer::new(reporting), api::ROLE_RULES)
        .await;
    let mut feeds = BTreeMap::new();
    for source in sources {
        feeds.insert(source, kit.feed(source)?);
        kit.follow(source, consumer::Feed::new(source, model.clone()))?;
    }
    kit.schedule(
        "forecast-snapshots",
        snapshot_every,
        Arc::new(snapshots::ForecastSnapshots::new(store.clone())),
    );
    let rebuilder = rebuild::Rebuilder::new(store, model, feeds);
    kit.schedule("rebuild", rebuild_every, Arc::new(rebuilder));
    Ok(kit)
}
