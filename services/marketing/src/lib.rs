//! The marketing service: segments of contacts, static lists, templates, and
//! campaigns sent over SMTP with a ledger per recipient, consent checked at
//! send time and a signed one-click unsubscribe in every message.
//!
//! Reads top-down: [`build`] wires the layers on the shared service kit;
//! `api/` turns protobuf into domain values and back; `domain/` holds the
//! rules (the campaign workflow, the template language, who may be sent
//! to); `store/` the SeaORM queries, always scoped by tenant; `migration/`
//! the schema. `sender` is the scheduled job that sends, `mailer` speaks
//! SMTP (or writes files), `contacts` is what marketing asks of contacts,
//! `engagement` signs and reads the links in each message and `tracking`
//! serves them over HTTP.

mod api;
mod consumer;
mod contacts;
pub mod domain;
mod engagement;
mod journeys;
pub mod mailer;
mod migration;
mod postman;
mod sales;
mod sender;
mod store;
mod throttle;
mod tracking;

use std::{path::PathBuf, sync::Arc};

use crm_proto::marketing::marketing_service_server::MarketingServiceServer;
use crm_shared::{
    config::Settings,
    contacts::ContactsClient,
    filter::ListSchema,
    kit::{KitError, ServiceInfo, ServiceKit},
};

pub use api::ROLE_RULES;
pub use migration::Migrator;

/// The filter and order_by grammar of every list this service serves.
pub const LIST_SCHEMAS: &[ListSchema] = &[ListSchema {
    resource: "campaigns",
    filter: &store::CAMPAIGN_FILTER,
    order_by: store::CAMPAIGN_ORDER,
}];

/// The service's name, package and default port.
pub static SERVICE: ServiceInfo = ServiceInfo {
    name: "marketing",
    package: "crm.marketing.v1",
    default_port: 50063,
};

/// Where the tracking listener (opens, clicks, the unsubscribe page) listens
/// unless `marketing.tracking_addr` says otherwise.
const DEFAULT_TRACKING_ADDR: &str = "127.0.0.1:50073";

/// How long a message's links work unless `marketing.link_valid_days` says otherwise.
const DEFAULT_LINK_VALID_DAYS: i64 = 60;
/// How long a recipient may stay mid-send before a stop is assumed, unless
/// `marketing.sending_grace_seconds` says otherwise: longer than any SMTP
/// exchange takes.
const DEFAULT_SENDING_GRACE_SECONDS: i64 = 120;
/// Each tenant's send rate, all its campaigns together, unless configured.
const DEFAULT_TENANT_RATE: u32 = 1000;

/// The marketing service, bound and connected, ready to run: its API, the
/// campaign sender (every `marketing.send_check_millis`, 1 s by default, on
/// one replica), and the contacts feed followed (merges and erasures reach
/// marketing).
pub async fn build(settings: Settings) -> Result<ServiceKit<Migrator>, KitError> {
    let send_every = std::time::Duration::from_millis(settings.option("send_check_millis", 1_000)?);
    let grace = settings.option("sending_grace_seconds", DEFAULT_SENDING_GRACE_SECONDS)?;
    let tenant_rate = settings.option("tenant_messages_per_second", DEFAULT_TENANT_RATE)?;
    let journey_every =
        std::time::Duration::from_millis(settings.option("journey_check_millis", 1_000)?);
    let segment_every =
        std::time::Duration::from_secs(settings.option("segment_check_seconds", 60)?);
    let valid_days = settings.option("link_valid_days", DEFAULT_LINK_VALID_DAYS)?;
    let option = |key: &str, default: &str| {
        settings
            .options
            .get(key)
            .cloned()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let smtp_url = settings
        .options
        .get("smtp_url")
        .cloned()
        .filter(|u| !u.is_empty());
    let mail_dir = PathBuf::from(option("mail_dir", "data/mail"));
    let tracking_addr: std::net::SocketAddr = settings.option(
        "tracking_addr",
        // A constant that is a socket address: cannot fail.
        DEFAULT_TRACKING_ADDR.parse().expect("a socket address"),
    )?;
    let tracking_base_url = option("tracking_base_url", &format!("http://{tracking_addr}"));
    let unsubscribe_base_url = option("unsubscribe_base_url", &format!("{tracking_base_url}/u"));
    let secret = option("link_secret", &settings.paging_secret);
    let mailer = mailer::Mailer::from_settings(smtp_url.as_deref(), &mail_dir).map_err(|e| {
        KitError::Config(config::ConfigError::Message(format!(
            "marketing.smtp_url: {e}"
        )))
    })?;
    let throttle = throttle::TenantThrottle::new(
        tenant_rate,
        settings
            .options
            .get("tenant_rates")
            .map_or("", String::as_str),
    )
    .map_err(|e| KitError::Config(config::ConfigError::Message(format!("marketing.{e}"))))?;
    let mut kit = ServiceKit::build(&SERVICE, settings).await?;
    let store = store::Store::new(kit.resources(), Arc::new(api::ProtoPayloads));
    let contacts_channel = kit.peer("contacts")?;
    let directory = contacts::Directory::new(contacts_channel.clone(), kit.service_identity()?);
    let links = engagement::Links::new(
        &secret,
        tracking_base_url,
        unsubscribe_base_url,
        chrono::Duration::days(valid_days.clamp(1, 3650)),
    );
    let tracker = engagement::Tracker::new(store.clone(), directory.clone(), links.clone());
    let tracking_listener = crm_shared::server::bind(tracking_addr).await?;
    tracking::serve(tracking_listener, tracker.clone(), kit.stopping());
    let marketing = api::MarketingApi::new(
        store.clone(),
        ContactsClient::new(contacts_channel),
        directory.clone(),
        kit.page_tokens(),
        tracker,
    );
    kit.add_service(MarketingServiceServer::new(marketing), api::ROLE_RULES)
        .await;
    let postman = Arc::new(postman::Postman::new(
        store.clone(),
        directory,
        mailer,
        links,
        throttle,
    ));
    let sender = sender::Sender::new(postman.clone(), chrono::Duration::seconds(grace.max(1)));
    let runner = journeys::JourneyRunner::new(
        postman,
        sales::SalesDesk::new(kit.peer("sales")?),
        segment_every,
    );
    kit.schedule("journeys", journey_every, runner);
    kit.schedule("campaigns", send_every, sender);
    kit.follow(
        consumer::CONTACTS,
        Arc::new(consumer::ContactsFeed::new(store.clone())),
    )?;
    kit.follow(
        consumer::SALES,
        Arc::new(consumer::SalesFeed::new(store.clone())),
    )?;
    kit.follow(
        consumer::SUPPORT,
        Arc::new(consumer::SupportFeed::new(store)),
    )?;
    Ok(kit)
}
