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

/// The `[gateway]` section itself.
#[derive(Debug, Clone, Deserialize)]
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
const DEFAULT_UPSTREAMS: &[(&str, u16)] = &[("contacts", 50061), ("sales", 50062)];

/// Loads the gateway's settings from defaults, `crm.toml` and `CRM_*` variables.
pub fn load() -> Result<GatewaySettings, config::ConfigError> {
    let mut defaults: Vec<(String, String)> = vec![
        ("metrics_addr".into(), "127.0.0.1:9464".into()),
        ("rate_per_tenant".into(), "500".into()),
        ("burst_per_tenant".into(), "1000".into()),
        ("tenant_limits".into(), String::new()),
        ("max_message_bytes".into(), (4 * 1024 * 1024).to_string()),
        ("max_calls_in_flight".into(), "10000".into()),
        ("max_calls_in_flight_per_tenant".into(), "2000".into()),
        ("max_streams_per_tenant".into(), "100".into()),
        ("max_stream_seconds".into(), "3600".into()),
        ("failed_auth_rate".into(), "2".into()),
        ("failed_auth_burst".into(), "20".into()),
        ("max_deadline_seconds".into(), "300".into()),
        ("default_unary_deadline_seconds".into(), "30".into()),
        ("cors_allowed_origins".into(), String::new()),
        ("health_check_interval_ms".into(), "1000".into()),
        ("dns_refresh_seconds".into(), "10".into()),
    ];
    for (name, port) in DEFAULT_UPSTREAMS {
        defaults.push((
            format!("upstreams.{name}.addresses"),
            format!("http://127.0.0.1:{port}"),
        ));
    }
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
