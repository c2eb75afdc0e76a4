//! The service kit: how every service of the suite is built and run, once.
//!
//! A service says what is its own (its [`ServiceInfo`], migrator, gRPC
//! services and the feeds it follows) and the kit does the rest the same way
//! for everyone: configuration, telemetry, the database and its migrations
//! under the lock, health (`NOT_SERVING` until migrated, while the database
//! does not answer, and from SIGTERM), reflection, the token check and the
//! service's role rules, each call run to completion, the service's own event
//! feed and its retention, its audit log, its consumers and their admin
//! service, graceful drain, and the `migrate` command.
//!
//! ```ignore
//! pub async fn build(settings: Settings) -> Result<ServiceKit<Migrator>, KitError> {
//!     let mut kit = ServiceKit::build(&SERVICE, settings).await?;
//!     let store = Store::new(kit.resources());
//!     kit.add_service(SalesServiceServer::new(SalesApi::new(store.clone())), ROLE_RULES).await;
//!     kit.follow("contacts", Arc::new(ContactsFeed::new(store)))?;
//!     Ok(kit)
//! }
//! ```

use std::{future::Future, marker::PhantomData, net::SocketAddr, sync::Arc, time::Duration};

use crm_proto::audit::audit_log_service_server::AuditLogServiceServer;
use crm_proto::events::{
    consumer_admin_service_server::ConsumerAdminServiceServer,
    event_feed_service_server::EventFeedServiceServer,
};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tonic::{body::Body, server::NamedService, service::Routes};

use crate::{
    audit::AuditLog,
    auth::{RoleRules, Verifier},
    client::ServiceIdentity,
    config::Settings,
    consumer::{self, Consumer, EventHandler, FeedSource, admin::ConsumerAdmin},
    db::Database,
    jetstream::{Transport, relay::Relay},
    outbox::{CommitSignal, EventFeed},
    paging::PageTokens,
    schedule::{Job, Scheduled},
    server::{Host, ServeError},
    store::Resources,
};

/// What names a service: fixed at compile time.
#[derive(Debug, Clone, Copy)]
pub struct ServiceInfo {
    /// Its name: config section, log name, event source ("sales").
    pub name: &'static str,
    /// Its proto package, which names its events ("crm.sales.v1").
    pub package: &'static str,
    /// The port it listens on unless configured otherwise.
    pub default_port: u16,
}

/// The default ports of the suite's services (DESIGN.md), so a service finds
/// another on a development machine without configuration.
const DEFAULT_PORTS: &[(&str, u16)] = &[
    ("gateway", 50051),
    ("contacts", 50061),
    ("sales", 50062),
    ("marketing", 50063),
    ("support", 50064),
    ("reporting", 50065),
];

/// Why a service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// The configuration could not be read.
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// Logs, traces or metrics could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The database did not answer or a migration failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// No usable token verification settings.
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// Another service's address is not a URL.
    #[error("{peer}_url: {source}")]
    PeerUrl {
        /// The other service.
        peer: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// Neither a service token nor a secret to sign one.
    #[error(
        "{0}.service_token (or auth.hs256_secret for local runs) is needed to call other services"
    )]
    NoServiceIdentity(&'static str),
    /// The listen address could not be bound.
    #[error(transparent)]
    Bind(#[from] crate::server::BindError),
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// NATS JetStream is configured but unusable.
    #[error(transparent)]
    Events(#[from] crate::jetstream::JetStreamError),
    /// An unknown command-line command.
    #[error("unknown command {0:?}; use `serve` or `migrate`")]
    Command(String),
}

/// A built, bound, not yet serving service: add its own services and
/// consumers, then [`ServiceKit::run_until_stopped`].
pub struct ServiceKit<M> {
    info: &'static ServiceInfo,
    settings: Settings,
    listener: TcpListener,
    db: Database,
    verifier: Verifier,
    host: Host,
    routes: Routes,
    signal: CommitSignal,
    page_tokens: PageTokens,
    consumers: Vec<Consumer>,
    jobs: Vec<Scheduled>,
    /// The service's own outbox feed.
    feed: EventFeed,
    /// NATS JetStream when `events.nats_url` is set: the relay publishes the
    /// outbox there and the consumers read from it.
    transport: Option<Transport>,
    /// This replica's name in consumer leases.
    replica: String,
    _migrator: PhantomData<M>,
}

impl<M: MigratorTrait> ServiceKit<M> {
    /// Reads the auth settings, binds the listen address (port 0 picks a free
    /// one) and connects to the database; nothing is migrated or served yet.
    pub async fn build(info: &'static ServiceInfo, settings: Settings) -> Result<Self, KitError> {
        crate::error::set_domain(&format!("{}.crm", info.name));
        let verifier = Verifier::from_settings(&settings.auth)?;
        let listener = crate::server::bind(settings.service.listen_addr).await?;
        let db = Database::connect(
            &settings.service.database_url,
            settings.service.max_connections,
        )
        .await?;
        let transport = match settings.events.nats_url {
            Some(_) => Some(Transport::connect(&settings.events).await?),
            None => None,
        };
        let mut host = Host::new(&[]).await;
        let routes = host.routes();
        // Unique per replica: a pod's name, else this machine's process and port.
        let replica = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into()),
            std::process::id(),
            listener.local_addr().map(|a| a.port()).unwrap_or_default()
        );
        let signal = CommitSignal::default();
        let feed = EventFeed::new(db.clone(), info.name, &signal, host.stopping());
        let mut kit = Self {
            info,
            feed: feed.clone(),
            transport,
            page_tokens: PageTokens::new(&settings.paging_secret),
            settings,
            listener,
            db,
            verifier,
            host,
            routes,
            signal,
            consumers: Vec::new(),
            jobs: Vec::new(),
            replica,
            _migrator: PhantomData,
        };
        crate::outbox::forward_commit_notifications(
            &kit.db,
            kit.signal.clone(),
            kit.host.stopping(),
        );
        kit.add_service(EventFeedServiceServer::new(feed), crate::outbox::FEED_ROLES)
            .await;
        let audit = AuditLog::new(kit.db.clone(), kit.page_tokens.clone());
        kit.add_service(AuditLogServiceServer::new(audit), crate::audit::ROLES)
            .await;
        Ok(kit)
    }

    /// The database pool.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The service's tables with its outbox: what its store builds on.
    pub fn resources(&self) -> Resources {
        Resources::new(
            self.db.clone(),
            self.signal.clone(),
            self.info.package,
            Duration::from_secs(self.settings.service.request_id_hours.saturating_mul(3600)),
        )
    }

    /// The page-token signer.
    pub fn page_tokens(&self) -> PageTokens {
        self.page_tokens.clone()
    }

    /// Turns true when shutdown begins: the service's own long-lived
    /// streams end on it, so draining does not wait for their clients.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.host.stopping()
    }

    /// The settings the service was built with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into())
    }

    /// A lazily connecting channel to another service of the suite: its
    /// `<peer>_url` setting, else its default port on this machine.
    pub fn peer(&self, peer: &str) -> Result<tonic::transport::Channel, KitError> {
        let url = self.settings.peers.get(peer).cloned().unwrap_or_else(|| {
            let port = DEFAULT_PORTS
                .iter()
                .find(|(name, _)| *name == peer)
                .map_or(0, |(_, port)| *port);
            format!("http://127.0.0.1:{port}")
        });
        crate::client::channel(&url).map_err(|source| KitError::PeerUrl {
            peer: peer.to_owned(),
            source,
        })
    }

    /// The token this service presents when it calls another as itself.
    pub fn service_identity(&self) -> Result<ServiceIdentity, KitError> {
        ServiceIdentity::new(
            self.info.name,
            self.settings.service_token.clone(),
            &self.settings.auth,
        )
        .ok_or(KitError::NoServiceIdentity(self.info.name))
    }

    /// Serves `service` behind the token check and the role `rules` of its
    /// methods, UNAVAILABLE until migrated.
    pub async fn add_service<S>(&mut self, service: S, rules: RoleRules)
    where
        S: tower::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.host.add_served(S::NAME).await;
        let guarded = self
            .host
            .readiness()
            .guard(service, self.verifier.clone(), rules);
        let routes = std::mem::take(&mut self.routes);
        self.routes = routes.add_service(guarded);
    }

    /// Follows `source`'s event feed with `handler`, from when the schema is
    /// migrated until shutdown (see [`crate::consumer`]).
    pub fn follow(&mut self, source: &str, handler: Arc<dyn EventHandler>) -> Result<(), KitError> {
        let transport = match &self.transport {
            Some(transport) => consumer::Transport::JetStream(Box::new(transport.clone())),
            None => consumer::Transport::Feed(FeedSource::new(
                self.peer(source)?,
                self.service_identity()?,
            )),
        };
        self.consumers.push(Consumer::new(
            source,
            transport,
            self.settings.events.partitions,
            handler,
            self.resources(),
            &self.replica,
        ));
        Ok(())
    }

    /// Where `source`'s feed is read, as this service: for a service that
    /// replays a feed itself (see [`crate::consumer::replay`]).
    pub fn feed(&self, source: &str) -> Result<FeedSource, KitError> {
        Ok(FeedSource::new(
            self.peer(source)?,
            self.service_identity()?,
        ))
    }

    /// Runs `job` every `every` on one replica at a time, from when the
    /// schema is migrated until shutdown (see [`crate::schedule`]). Needs the
    /// consumer tables (`CreateConsumerTables`) among the migrations.
    pub fn schedule(&mut self, name: &str, every: Duration, job: Arc<dyn Job>) {
        self.jobs.push(Scheduled {
            name: name.to_owned(),
            every,
            job,
        });
    }

    /// Serves: NOT_SERVING while migrations run, SERVING after (and the
    /// consumers started), until `shutdown` resolves; then drains calls,
    /// stops the consumers (giving up their leases) and closes the pool.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), KitError> {
        let name = self.info.name;
        tracing::info!(addr = %self.local_addr(), "{name} listening; migrating");
        if !self.consumers.is_empty() {
            let cores = self.consumers.iter().map(Consumer::core).collect();
            let admin = ConsumerAdmin::new(self.db.clone(), cores, self.page_tokens.clone());
            self.add_service(
                ConsumerAdminServiceServer::new(admin),
                crate::consumer::admin::ROLES,
            )
            .await;
        }
        let stopping = self.host.stopping();
        let readiness = self.host.readiness();
        let watched = self.db.clone();
        let watch_stopping = self.host.stopping();
        let days = |n: u64| Duration::from_secs(n.saturating_mul(24 * 3600));
        let service = &self.settings.service;
        let retention = crate::retention::Retention {
            events: days(service.event_retention_days),
            audit: (service.audit_retention_days > 0).then(|| days(service.audit_retention_days)),
        };
        let followed: Vec<String> = self
            .consumers
            .iter()
            .map(|c| c.core().name.clone())
            .collect();
        let consumers = self.consumers;
        let jobs = self.jobs;
        let relay = self.transport.clone().map(|transport| {
            (
                Relay::new(
                    self.db.clone(),
                    self.feed.clone(),
                    name,
                    transport,
                    &self.replica,
                ),
                self.host.readiness(),
            )
        });
        let (jobs_db, replica) = (self.db.clone(), self.replica.clone());
        let grace = Duration::from_secs(self.settings.service.shutdown_grace_seconds);
        let started = self
            .host
            .serve_migrated::<M, _>(
                name,
                self.listener,
                self.routes,
                shutdown,
                grace,
                &self.db,
                move || {
                    tokio::spawn(crate::retention::keep_pruning(
                        watched.clone(),
                        retention,
                        watch_stopping.clone(),
                    ));
                    tokio::spawn(watch_database(watched, readiness, watch_stopping.clone()));
                    let relay = relay.map(|(relay, readiness)| {
                        tokio::spawn(watch_transport(
                            relay.transport().clone(),
                            followed,
                            readiness,
                            watch_stopping,
                        ));
                        tokio::spawn(relay.run(stopping.clone()))
                    });
                    let jobs = jobs.into_iter().map(|job| {
                        tokio::spawn(crate::schedule::keep_running(
                            jobs_db.clone(),
                            replica.clone(),
                            job,
                            stopping.clone(),
                        ))
                    });
                    consumers
                        .into_iter()
                        .map(|consumer| tokio::spawn(consumer.run(stopping.clone())))
                        .chain(jobs)
                        .chain(relay)
                        .collect::<Vec<_>>()
                },
            )
            .await?;
        for consumer in started.unwrap_or_default() {
            let _ = consumer.await;
        }
        self.db.conn.close_by_ref().await?;
        Ok(())
    }
}

/// How often the database is asked whether it answers.
const DATABASE_CHECK: Duration = Duration::from_secs(2);

/// Reports the service NOT_SERVING while its database does not answer and
/// SERVING again once it does (the process keeps running: its pool
/// reconnects by itself), until shutdown begins.
async fn watch_database(
    db: Database,
    readiness: crate::server::Readiness,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(DATABASE_CHECK) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        let answers = matches!(
            tokio::time::timeout(DATABASE_CHECK, db.conn.ping()).await,
            Ok(Ok(()))
        );
        if answers != serving && !*stopping.borrow() {
            if answers {
                tracing::info!("the database answers again; serving");
            } else {
                tracing::warn!("the database does not answer; not serving until it does");
            }
            readiness.set_serving(answers).await;
            serving = answers;
        }
    }
}

/// The health name of JetStream's connection.
pub const JETSTREAM_HEALTH: &str = "jetstream";

/// Reports `jetstream` and each JetStream consumer (`consumers/<source>`)
/// NOT_SERVING while the connection to NATS is down, SERVING while it is up
/// (the service's own status stays: it serves calls and keeps events in its
/// outbox meanwhile).
async fn watch_transport(
    transport: Transport,
    consumers: Vec<String>,
    readiness: crate::server::Readiness,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut reported = None;
    loop {
        let connected = transport.connected();
        if reported != Some(connected) {
            if reported.is_some() {
                if connected {
                    tracing::info!("NATS answers again");
                } else {
                    tracing::warn!("the connection to NATS is down; events wait in the outbox");
                }
            }
            readiness.set_part(JETSTREAM_HEALTH, connected).await;
            for consumer in &consumers {
                readiness
                    .set_part(&format!("consumers/{consumer}"), connected)
                    .await;
            }
            reported = Some(connected);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// A service's process: `<service>` (or `<service> serve`) serves,
/// `<service> migrate` only applies the migrations (a Kubernetes init
/// container or Job). `build` is the service's own wiring.
pub async fn run_process<M, F, Fut>(info: &'static ServiceInfo, build: F) -> Result<(), KitError>
where
    M: MigratorTrait,
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = Result<ServiceKit<M>, KitError>>,
{
    let settings = crate::config::load(info.name, info.default_port)?;
    let _telemetry = crate::telemetry::init(info.name, &settings.telemetry)?;
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => {
            Database::migrate_only::<M>(&settings.service.database_url).await?;
            Ok(())
        }
        None | Some("serve") => {
            build(settings)
                .await?
                .run_until_stopped(crate::server::termination_signal())
                .await
        }
        Some(other) => Err(KitError::Command(other.to_owned())),
    }
}
