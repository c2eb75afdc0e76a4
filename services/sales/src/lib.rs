//! The sales service: leads to revenue.
//!
//! Reads top-down: [`Application`] wires the layers; `api/` turns protobuf
//! into domain values and back; `domain/` holds the rules (validation,
//! assignment, scoring, forecasts); `store/` the SeaORM queries, always scoped
//! by tenant; `migration/` the schema. `contacts` is the client of the
//! contacts service; `consumer` follows its event feed.

mod api;
mod consumer;
mod contacts;
mod domain;
mod migration;
mod store;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use crm_proto::{
    events::event_feed_service_server::EventFeedServiceServer,
    sales::sales_service_server::SalesServiceServer,
};
use crm_shared::{
    auth::{Role, Verifier, sign_hs256},
    config::Settings,
    db::Database,
    error::ApiError,
    outbox::{CommitSignal, EventFeed},
    paging::PageTokens,
    server::Host,
};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;

pub use migration::Migrator;

/// The service's name: its config section, log name and event source.
pub const SERVICE: &str = "sales";
/// The port it listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 50062;
/// The largest request message accepted, 4 MiB.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// How sales reaches the services it depends on (`[sales]` section).
#[derive(Debug, Clone)]
pub struct Links {
    /// The contacts service, `http://host:port`.
    pub contacts_url: String,
    /// The service identity's token for reading the contacts feed. Without it,
    /// one is signed with the HS256 secret (local runs).
    pub service_token: Option<String>,
}

impl Links {
    /// Reads `sales.contacts_url` and `sales.service_token` from the config layers.
    pub fn load() -> Result<Self, config::ConfigError> {
        let layered = crm_shared::config::layered(
            SERVICE,
            DEFAULT_PORT,
            &[("contacts_url", "http://127.0.0.1:50061".to_owned())],
        )?;
        Ok(Self {
            contacts_url: layered.get_string("sales.contacts_url")?,
            service_token: layered
                .get_string("sales.service_token")
                .ok()
                .filter(|t| !t.is_empty()),
        })
    }
}

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database did not answer or a migration failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// No usable token verification settings.
    #[error("auth: {0}")]
    Auth(#[from] crm_shared::auth::AuthError),
    /// The contacts URL is not a URL.
    #[error("sales.contacts_url: {0}")]
    ContactsUrl(#[from] tonic::transport::Error),
    /// Neither a service token nor a secret to sign one.
    #[error(
        "set sales.service_token (or auth.hs256_secret for local runs) to read the contacts feed"
    )]
    NoServiceIdentity,
    /// The listen address could not be bound.
    #[error(transparent)]
    Bind(#[from] crm_shared::server::BindError),
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] crm_shared::server::ServeError),
}

/// Applies the migrations and returns.
pub async fn migrate_only(settings: &Settings) -> Result<(), StartError> {
    Ok(Database::migrate_only::<Migrator>(&settings.service.database_url).await?)
}

/// A built, bound, not yet serving sales service.
pub struct Application {
    listener: TcpListener,
    db: Database,
    verifier: Verifier,
    page_tokens: PageTokens,
    grace: Duration,
    contacts: tonic::transport::Channel,
    token: consumer::TokenSource,
}

impl Application {
    /// Connects to the database and binds the listen address (port 0 picks a free one).
    pub async fn build(settings: Settings, links: Links) -> Result<Self, StartError> {
        crm_shared::error::set_domain("sales.crm");
        let verifier = Verifier::from_settings(&settings.auth)?;
        let token: consumer::TokenSource = match (links.service_token, settings.auth.hs256_secret) {
            (Some(token), _) => Box::new(move || Ok(token.clone())),
            (None, Some(secret)) if !secret.is_empty() => Box::new(move || {
                sign_hs256(
                    &secret,
                    "suite",
                    "sales",
                    &[Role::Service],
                    Duration::from_secs(3600),
                )
                .map_err(|e| ApiError::Internal(e.to_string()))
            }),
            _ => return Err(StartError::NoServiceIdentity),
        };
        let contacts = crm_shared::client::channel(&links.contacts_url)?;
        let addr = settings.service.listen_addr;
        let listener = crm_shared::server::bind(addr).await?;
        let db = Database::connect(
            &settings.service.database_url,
            settings.service.max_connections,
        )
        .await?;
        Ok(Self {
            listener,
            db,
            verifier,
            page_tokens: PageTokens::new(&settings.paging_secret),
            grace: Duration::from_secs(settings.service.shutdown_grace_seconds),
            contacts,
            token,
        })
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into())
    }

    /// Serves: NOT_SERVING while migrations run, SERVING after (and the
    /// contacts feed followed), until `shutdown` resolves; then drains.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        tracing::info!(addr = %self.local_addr(), "sales listening; migrating");
        let mut host = Host::new(&[
            "crm.sales.v1.SalesService",
            "crm.events.v1.EventFeedService",
        ])
        .await;
        let signal = CommitSignal::default();
        let store = store::Store::new(
            self.db.clone(),
            signal.clone(),
            Arc::new(api::ProtoPayloads),
        );
        let sales = api::SalesApi::new(
            store.clone(),
            contacts::Contacts::new(self.contacts.clone()),
            self.page_tokens,
        );
        let feed = EventFeed::new(self.db.clone(), SERVICE, &signal, host.stopping());
        let authenticate = host.readiness().interceptor(self.verifier);
        let routes = host
            .routes()
            .add_service(InterceptedService::new(
                SalesServiceServer::new(sales).max_decoding_message_size(MAX_MESSAGE_BYTES),
                authenticate.clone(),
            ))
            .add_service(InterceptedService::new(
                EventFeedServiceServer::new(feed),
                authenticate,
            ));
        let stopping = host.stopping();
        // The feed consumer starts once the schema it writes to exists.
        let follower = host
            .serve_migrated::<Migrator, _>(
                SERVICE,
                self.listener,
                routes,
                shutdown,
                self.grace,
                &self.db,
                || {
                    tokio::spawn(consumer::follow_contacts(
                        store,
                        self.contacts,
                        self.token,
                        stopping,
                    ))
                },
            )
            .await?;
        if let Some(follower) = follower {
            let _ = follower.await;
        }
        self.db.conn.close_by_ref().await?;
        Ok(())
    }
}
