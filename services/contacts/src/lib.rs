//! The contacts service: people, companies and the interaction timeline.
//!
//! Reads top-down: [`Application`] wires the layers; `api/` turns protobuf into
//! domain values and back; `domain/` holds the rules; `store/` the SeaORM
//! queries, always scoped by tenant; `migration/` the schema.

mod api;
mod domain;
mod migration;
mod store;

use std::{future::Future, net::SocketAddr, time::Duration};

use crm_proto::{
    contacts::contacts_service_server::ContactsServiceServer,
    events::event_feed_service_server::EventFeedServiceServer,
};
use crm_shared::{
    auth::Verifier,
    config::Settings,
    db::Database,
    outbox::{CommitSignal, EventFeed},
    paging::PageTokens,
    server::Host,
};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;

pub use migration::Migrator;

/// The service's name: its config section, log name and event source.
pub const SERVICE: &str = "contacts";
/// The port it listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 50061;
/// The largest request message accepted, 4 MiB.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database did not answer or a migration failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// No usable token verification settings.
    #[error("auth: {0}")]
    Auth(#[from] crm_shared::auth::AuthError),
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

/// A built, bound, not yet serving contacts service.
pub struct Application {
    listener: TcpListener,
    db: Database,
    verifier: Verifier,
    page_tokens: PageTokens,
    grace: Duration,
}

impl Application {
    /// Connects to the database and binds the listen address (port 0 picks a free one).
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        crm_shared::error::set_domain("contacts.crm");
        let verifier = Verifier::from_settings(&settings.auth)?;
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
        })
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into())
    }

    /// Serves: NOT_SERVING while migrations run, SERVING after, until
    /// `shutdown` resolves; then drains in-flight calls.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        tracing::info!(addr = %self.local_addr(), "contacts listening; migrating");
        let mut host = Host::new(&[
            "crm.contacts.v1.ContactsService",
            "crm.events.v1.EventFeedService",
        ])
        .await;
        let signal = CommitSignal::default();
        let contacts = api::ContactsApi::new(
            store::Store::new(self.db.clone(), signal.clone(), api::payloads()),
            self.page_tokens,
        );
        let feed = EventFeed::new(self.db.clone(), SERVICE, &signal, host.stopping());
        let authenticate = host.readiness().interceptor(self.verifier);
        let routes = host
            .routes()
            .add_service(InterceptedService::new(
                ContactsServiceServer::new(contacts).max_decoding_message_size(MAX_MESSAGE_BYTES),
                authenticate.clone(),
            ))
            .add_service(InterceptedService::new(
                EventFeedServiceServer::new(feed),
                authenticate,
            ));
        host.serve_migrated::<Migrator, ()>(
            SERVICE,
            self.listener,
            routes,
            shutdown,
            self.grace,
            &self.db,
            || {},
        )
        .await?;
        self.db.conn.close_by_ref().await?;
        Ok(())
    }
}
