//! The `[gateway]` section: where each service runs and the limits every call
//! meets. Lists are comma-separated strings so that one environment variable
//! can set them, for example
//! `CRM_GATEWAY__UPSTREAMS__CONTACTS__ADDRESSES=http://10.0.0.5:50061,http://10.0.0.6:50061`.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use serde::Deserialize;

/// Everything the gateway process needs to start.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// The `[gateway]` section.
    pub gateway: Section,
    /// How tokens are verified (the same rules as every service).
    pub auth: crm_shared::config::AuthSettings,
    /// Logs, traces and metrics.
    pub telemetry: crm_shared::config::TelemetrySettings,
}

/// The `[gateway]` section itself; a key left out takes its value from
/// [`Section::default`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Section {
    /// Where the gateway listens (gRPC and gRPC-Web).
    pub listen_addr: SocketAddr,
    /// Where `/metrics` (Prometheus text) is served, apart from client traffic.
    pub metrics_addr: SocketAddr,
    /// How long in-flight calls may take to finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// The services behind the gateway, by name.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSettings>,
    /// Calls per second each tenant may make (the bucket's refill rate).
    pub rate_per_tenant: f64,
    /// How many calls a tenant may make at once above the rate (the bucket's size).
    pub burst_per_tenant: f64,
    /// Tenants with limits of their own: `acme=2000/4000, globex=50` (calls
    /// per second, and optionally the burst; twice the rate when left out).
    pub tenant_limits: String,
    /// The largest request message, in bytes, before compression is undone.
    pub max_message_bytes: usize,
    /// The most calls in flight at once; beyond it calls are shed.
    pub max_calls_in_flight: usize,
    /// The most calls one tenant may have in flight at once, streams included.
    pub max_calls_in_flight_per_tenant: usize,
    /// The most streaming calls (event feeds, imports, exports) one tenant may
    /// have open at once.
    pub max_streams_per_tenant: usize,
    /// The longest a streaming call may last, with or without a deadline of
    /// its own; a feed's follower reconnects from its last sequence.
    pub max_stream_seconds: u64,
    /// Failed authentications one client address may make per second before
    /// its calls are refused unverified...
    pub failed_auth_rate: f64,
    /// ...and how many it may make at once above that rate.
    pub failed_auth_burst: f64,
    /// The longest deadline a call may have: a client's `grpc-timeout` above
    /// it is cut to it.
    pub max_deadline_seconds: u64,
    /// The deadline of a unary call that names none. Streaming calls without
    /// one (event feeds, exports) run until they end, are cancelled, or reach
    /// `max_stream_seconds`.
    pub default_unary_deadline_seconds: u64,
    /// Browser origins allowed to call through gRPC-Web, comma-separated; `*`
    /// for any; empty for none.
    pub cors_allowed_origins: String,
    /// How often each replica's health is checked.
    pub health_check_interval_ms: u64,
    /// How often DNS names of replicas are resolved again.
    pub dns_refresh_seconds: u64,
}

/// One service behind the gateway (`[gateway.upstreams.contacts]`).
#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamSettings {
    /// The protobuf packages it owns, comma-separated; calls to
    /// `/crm.contacts.v1.X/Y` go to the owner of `crm.contacts.v1`. Empty
    /// means `crm.<name>.v1,crm.events.v1,crm.audit.v1` (its API, its event
    /// feed and its audit log).
    #[serde(default)]
    pub packages: String,
    /// Its replicas, comma-separated `http://host:port` URLs. A host name is
    /// resolved again and again, so a Kubernetes headless service name spreads
    /// calls over every pod behind it.
    pub addresses: String,
}

impl UpstreamSettings {
    /// The packages of the upstream called `name`.
    pub fn packages_of(&self, name: &str) -> Vec<String> {
        let listed: Vec<String> = list(&self.packages).map(str::to_owned).collect();
        if listed.is_empty() {
            vec![
                format!("crm.{name}.v1"),
                "crm.events.v1".to_owned(),
                "crm.audit.v1".to_owned(),
            ]
        } else {
            listed
        }
    }
}

impl Section {
    /// The deadline ceiling.
    pub fn max_deadline(&self) -> Duration {
        Duration::from_secs(self.max_deadline_seconds)
    }
}

/// The suite's services and their default ports, used when nothing is configured.
const DEFAULT_UPSTREAMS: &[(&str, u16)] = &[
    ("contacts", 50061),
    ("sales", 50062),
    ("marketing", 50063),
    ("support", 50064),
    ("reporting", 50065),
];

impl Default for Section {
    /// The production defaults: the suite's services on their default ports
    /// on this host, and limits sized for one gateway replica.
    fn default() -> Self {
        let upstreams = DEFAULT_UPSTREAMS
            .iter()
            .map(|(name, port)| {
                let upstream = UpstreamSettings {
                    packages: String::new(),
                    addresses: format!("http://127.0.0.1:{port}"),
                };
                ((*name).to_owned(), upstream)
            })
            .collect();
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], crate::DEFAULT_PORT)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            shutdown_grace_seconds: 20,
            upstreams,
            rate_per_tenant: 500.0,
            burst_per_tenant: 1000.0,
            tenant_limits: String::new(),
            max_message_bytes: 4 * 1024 * 1024,
            max_calls_in_flight: 10_000,
            max_calls_in_flight_per_tenant: 2000,
            max_streams_per_tenant: 100,
            max_stream_seconds: 3600,
            failed_auth_rate: 2.0,
            failed_auth_burst: 20.0,
            max_deadline_seconds: 300,
            default_unary_deadline_seconds: 30,
            cors_allowed_origins: String::new(),
            health_check_interval_ms: 1000,
            dns_refresh_seconds: 10,
        }
    }
}

/// Loads the gateway's settings from [`Section::default`], `crm.toml` and
/// `CRM_*` variables.
pub fn load() -> Result<GatewaySettings, config::ConfigError> {
    // The upstreams are a map: its defaults must be layered key by key, or a
    // configured upstream would replace them all rather than add to them.
    let defaults: Vec<(String, String)> = DEFAULT_UPSTREAMS
        .iter()
        .map(|(name, port)| {
            (
                format!("upstreams.{name}.addresses"),
                format!("http://127.0.0.1:{port}"),
            )
        })
        .collect();
    let defaults: Vec<(&str, String)> = defaults
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    let layered = crm_shared::config::layered(crate::SERVICE, crate::DEFAULT_PORT, &defaults)?;
    Ok(GatewaySettings {
        gateway: layered.get(crate::SERVICE)?,
        auth: crm_shared::config::auth(&layered),
        telemetry: layered.get("telemetry")?,
    })
}

/// Splits a comma-separated setting into its trimmed, non-empty parts.
pub fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
}
