//! The support service: tickets, their comments and history, inbound
//! email, queues, agents and routing, SLAs, satisfaction, the knowledge
//! base and live chat.
//!
//! Reads top-down: [`build`] wires the layers on the shared service kit;
//! `api/` turns protobuf into domain values and back; `domain/` holds the
//! rules (the ticket workflow, routing, mail reading, business-hours time);
//! `store/` the SeaORM queries, always scoped by tenant; `migration/` the
//! schema. `consumer` is what the contacts feed asks of support.

mod api;
mod consumer;
pub mod domain;
mod migration;
mod store;

use std::sync::Arc;

use chrono::Duration;
use crm_proto::support::support_service_server::SupportServiceServer;
use crm_shared::{
    config::Settings,
    contacts::ContactsClient,
    filter::ListSchema,
    kit::{KitError, ServiceInfo, ServiceKit},
};

pub use api::ROLE_RULES;
use crm_shared::token::SignedTokens;
pub use migration::Migrator;

/// The filter and order_by grammar of every list this service serves
/// (routing rule filters are ticket filters).
pub const LIST_SCHEMAS: &[ListSchema] = &[
    ListSchema {
        resource: "tickets",
        filter: &store::TICKET_FILTER,
        order_by: store::TICKET_ORDER,
    },
    ListSchema {
        resource: "articles",
        filter: &store::ARTICLE_FILTER,
        order_by: store::ARTICLE_ORDER,
    },
    ListSchema {
        resource: "chats",
        filter: &store::CHAT_FILTER,
        order_by: store::CHAT_ORDER,
    },
];

/// The service's name, package and default port.
pub static SERVICE: ServiceInfo = ServiceInfo {
    name: "support",
    package: "crm.support.v1",
    default_port: 50064,
};
/// The largest request message accepted: a 10 MiB mail, base64-free, plus framing.
const MAX_MESSAGE_BYTES: usize = 11 * 1024 * 1024;
/// How long after solving a requester's reply reopens a ticket, unless
/// `support.reopen_window_seconds` says otherwise: a week.
const DEFAULT_REOPEN_WINDOW_SECONDS: i64 = 7 * 24 * 3600;

/// How long a satisfaction survey may be answered unless
/// `support.survey_valid_days` says otherwise.
const DEFAULT_SURVEY_VALID_DAYS: i64 = 14;

/// How long a customer's chat token is accepted unless
/// `support.chat_token_valid_hours` says otherwise.
const DEFAULT_CHAT_TOKEN_HOURS: i64 = 24;

/// The support service, bound and connected, ready to run: its API, the SLA
/// scheduler (every `support.sla_check_millis`, 5 s by default, on one
/// replica), and the contacts feed followed (merges and erasures reach support).
pub async fn build(settings: Settings) -> Result<ServiceKit<Migrator>, KitError> {
    let reopen_window = settings.option("reopen_window_seconds", DEFAULT_REOPEN_WINDOW_SECONDS)?;
    let sla_every = std::time::Duration::from_millis(settings.option("sla_check_millis", 5_000)?);
    let survey_days = settings.option("survey_valid_days", DEFAULT_SURVEY_VALID_DAYS)?;
    let chat_token_hours = settings.option("chat_token_valid_hours", DEFAULT_CHAT_TOKEN_HOURS)?;
    let secret = |key: &str| {
        settings
            .options
            .get(key)
            .cloned()
            .unwrap_or_else(|| settings.paging_secret.clone())
    };
    let (survey_secret, chat_secret) = (secret("survey_secret"), secret("chat_secret"));
    let mut kit = ServiceKit::build(&SERVICE, settings).await?;
    let store = store::Store::new(
        kit.resources(),
        Arc::new(api::ProtoPayloads),
        Duration::days(survey_days.clamp(1, 365)),
        store::ChatHub::start(kit.db(), kit.stopping()),
    );
    let options = api::ApiOptions {
        reopen_window: Duration::seconds(reopen_window.max(0)),
        survey_tokens: SignedTokens::new(&survey_secret, "survey"),
        chat_tokens: SignedTokens::new(&chat_secret, "chat"),
        chat_token_valid_for: Duration::hours(chat_token_hours.clamp(1, 24 * 30)),
        stopping: kit.stopping(),
    };
    let support = api::SupportApi::new(
        store.clone(),
        ContactsClient::new(kit.peer(consumer::SOURCE)?),
        kit.page_tokens(),
        options,
    );
    kit.add_service(
        SupportServiceServer::new(support).max_decoding_message_size(MAX_MESSAGE_BYTES),
        api::ROLE_RULES,
    )
    .await;
    kit.schedule("sla", sla_every, store::scheduler(store.clone()));
    kit.follow(
        consumer::SOURCE,
        Arc::new(consumer::ContactsFeed::new(store)),
    )?;
    Ok(kit)
}
