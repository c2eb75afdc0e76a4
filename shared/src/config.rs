//! Layered configuration: built-in defaults, then an optional `crm.toml` (or the
//! file named by `CRM_CONFIG`), then environment variables `CRM_<SECTION>__<KEY>`,
//! for example `CRM_CONTACTS__DATABASE_URL` or `CRM_AUTH__HS256_SECRET`.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use serde::Deserialize;

/// Everything one service process needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The name of the service, for example "contacts"; also its config section.
    pub service_name: String,
    /// This service's own section.
    pub service: ServiceSettings,
    /// How tokens are verified.
    pub auth: AuthSettings,
    /// Logs, traces and metrics.
    pub telemetry: TelemetrySettings,
    /// The HMAC key that makes page tokens tamper-evident.
    pub paging_secret: String,
    /// Where the services this one calls or follows listen, by name: the
    /// section's `<name>_url` keys (`CRM_SALES__CONTACTS_URL`).
    pub peers: BTreeMap<String, String>,
    /// The service identity's token for calling other services; without it,
    /// one is signed with the HS256 secret (local runs).
    pub service_token: Option<String>,
    /// The section's scalar keys as text, for a service's own settings
    /// (`CRM_SUPPORT__REOPEN_WINDOW_SECONDS`); read with [`Settings::option`].
    pub options: BTreeMap<String, String>,
    /// The `[events]` section: the built-in feed, or NATS JetStream
    /// (`CRM_EVENTS__NATS_URL`).
    pub events: crate::jetstream::EventsSettings,
}

impl Settings {
    /// The service's own setting `key`, parsed; `default` when unset;
    /// a configuration error naming the key when it does not parse.
    pub fn option<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, config::ConfigError> {
        match self.options.get(key) {
            None => Ok(default),
            Some(text) => text.trim().parse().map_err(|_| {
                config::ConfigError::Message(format!(
                    "{}.{key}: cannot parse {text:?}",
                    self.service_name
                ))
            }),
        }
    }
}

/// The section named after the service (`[contacts]`).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSettings {
    /// Where the gRPC server listens.
    pub listen_addr: SocketAddr,
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    pub database_url: String,
    /// The most pooled database connections.
    pub max_connections: u32,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// How long a create's `request_id` is remembered (and a retry with it
    /// answered with the first result); 24 by default.
    #[serde(default = "default_request_id_hours")]
    pub request_id_hours: u64,
    /// How long events are kept once every known consumer has applied them
    /// (see `retention`); 30 by default.
    #[serde(default = "default_event_retention_days")]
    pub event_retention_days: u64,
    /// How long audit log entries are kept; 730 (two years) by default, 0
    /// keeps them forever.
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u64,
}

fn default_audit_retention_days() -> u64 {
    730
}

fn default_event_retention_days() -> u64 {
    30
}

fn default_request_id_hours() -> u64 {
    24
}

/// The `[auth]` section.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthSettings {
    /// A shared secret for HS256 tokens, for local runs and tests.
    pub hs256_secret: Option<String>,
    /// The services' own HS256 key: it signs their identity (role `service`)
    /// and nothing else, and a `service` token signed by anything else is
    /// refused. Every service holds it; the gateway does not need it.
    pub service_secret: Option<String>,
    /// A JWKS file with the RS256/ES256 public keys of the identity provider
    /// (a mounted Secret or ConfigMap); read again every
    /// `jwks_refresh_seconds` and when a token names a key it does not hold.
    pub jwks_file: Option<PathBuf>,
    /// How often the JWKS file is read again (default 300).
    pub jwks_refresh_seconds: Option<u64>,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
}

/// The `[telemetry]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// `pretty` for humans, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, for example "info,sqlx=warn".
    pub filter: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Loads the settings of `service`, whose default port is `default_port`.
pub fn load(service: &str, default_port: u16) -> Result<Settings, config::ConfigError> {
    let layered = layered(
        service,
        default_port,
        &[
            (
                "database_url",
                format!("sqlite://data/{service}.db?mode=rwc"),
            ),
            ("max_connections", "10".to_owned()),
        ],
    )?;
    let auth = auth(&layered);
    let paging_secret = layered
        .get_string("paging_secret")
        .ok()
        .or_else(|| auth.hs256_secret.clone())
        .unwrap_or_else(random_secret);
    let section = layered.get_table(service)?;
    let peers = section
        .iter()
        .filter(|(key, _)| key.as_str() != "database_url")
        .filter_map(|(key, value)| {
            let peer = key.strip_suffix("_url")?;
            Some((peer.to_owned(), value.clone().into_string().ok()?))
        })
        .collect();
    let options = section
        .iter()
        .filter_map(|(key, value)| Some((key.clone(), value.clone().into_string().ok()?)))
        .collect();
    let service_token = section
        .get("service_token")
        .and_then(|token| token.clone().into_string().ok())
        .filter(|token| !token.is_empty());
    let events = match layered.get("events") {
        Err(config::ConfigError::NotFound(_)) => Default::default(),
        events => events?,
    };
    Ok(Settings {
        events,
        service_name: service.to_owned(),
        service: layered.get(service)?,
        auth,
        telemetry: layered.get("telemetry")?,
        paging_secret,
        peers,
        service_token,
        options,
    })
}

/// The layers every process reads, for a process (like the gateway) with a
/// section of its own shape: `listen_addr`, `shutdown_grace_seconds` and the
/// `[telemetry]` defaults, plus `defaults` for keys of the `service` section,
/// then the file, then the environment.
pub fn layered(
    service: &str,
    default_port: u16,
    defaults: &[(&str, String)],
) -> Result<config::Config, config::ConfigError> {
    let file = std::env::var("CRM_CONFIG").unwrap_or_else(|_| "crm".to_owned());
    let mut builder = config::Config::builder()
        .set_default(
            format!("{service}.listen_addr"),
            format!("127.0.0.1:{default_port}"),
        )?
        .set_default(format!("{service}.shutdown_grace_seconds"), 20)?
        .set_default("telemetry.format", "pretty")?
        .set_default("telemetry.filter", "info,sqlx=warn,sea_orm=warn")?;
    for (key, value) in defaults {
        builder = builder.set_default(format!("{service}.{key}"), value.as_str())?;
    }
    builder
        .add_source(config::File::with_name(&file).required(false))
        .add_source(
            config::Environment::with_prefix("CRM")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true),
        )
        .build()
}

/// The `[auth]` section of `layered`, empty when absent.
pub fn auth(layered: &config::Config) -> AuthSettings {
    layered.get("auth").unwrap_or_default()
}

/// Without a configured key, page tokens are only valid within this process.
fn random_secret() -> String {
    tracing::warn!("no paging_secret configured: page tokens will not survive a restart");
    format!(
        "{}{}",
        uuid::Uuid::now_v7().simple(),
        uuid::Uuid::now_v7().simple()
    )
}
