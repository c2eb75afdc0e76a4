//! The replicas of one service behind the gateway: a pooled HTTP/2 channel to
//! each, round-robin over those taking calls, a health check that takes a
//! replica out and brings it back once it answers SERVING again, outlier
//! detection that ejects a replica failing calls between checks (never the
//! last one), and DNS names resolved again and again (a Kubernetes headless
//! service lists every pod).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_check_response, health_client::HealthClient},
    server::HealthReporter,
};

/// An address setting that is not `http://host:port`.
#[derive(Debug, thiserror::Error)]
#[error("upstream {upstream}: address {address:?} is not http://host:port")]
pub struct AddressError {
    upstream: String,
    address: String,
}

/// Where replicas come from.
#[derive(Debug, Clone)]
enum Source {
    /// A literal IP and port.
    Fixed(SocketAddr),
    /// A name to resolve; every address it resolves to is a replica.
    Dns { host: String, port: u16 },
}

/// Outlier detection, as Envoy does it: a replica that refuses connections,
/// or fails this many calls in a row before answering, is ejected for a while.
/// One stream whose body breaks after the replica answered is not counted: it
/// is that call's failure, not the replica's.
const CONSECUTIVE_FAILURES: u32 = 5;
/// The first ejection lasts this long; each further one in a row, once more.
const BASE_EJECTION: Duration = Duration::from_secs(2);
/// The longest ejection.
const MAX_EJECTION: Duration = Duration::from_secs(30);
/// At most this share of an upstream's replicas is ejected at once (Envoy's
/// `max_ejection_percent`), and never the last one taking calls: with a
/// failing replica or none, the failing one is better.
const MAX_EJECTED_PERCENT: usize = 50;

/// How a call to a replica went, as far as the replica is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The replica answered (whatever the status).
    Answered,
    /// No connection could be made: refused, unreachable, timed out.
    ConnectFailed,
    /// The call failed before an answer: the connection broke or was closed.
    Failed,
}

/// What outlier detection knows of a replica.
#[derive(Default)]
struct Outlier {
    consecutive_failures: u32,
    /// Ejections in a row (reset by an answered call), for the ejection time.
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// One replica: its address, its channel, and whether it is taking calls.
pub struct Replica {
    addr: SocketAddr,
    channel: Channel,
    /// The last health check's answer (optimistic until the first).
    checked_serving: AtomicBool,
    /// Whether a health check has ever found it SERVING.
    seen_serving: AtomicBool,
    /// The `x-crm-version` of its last health check's answer.
    version: Mutex<String>,
    outlier: Mutex<Outlier>,
}

impl Replica {
    fn new(addr: SocketAddr) -> Arc<Self> {
        // Cannot fail: `http://` and a formatted SocketAddr always make a URI.
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .expect("an http URL of a socket address is a valid URI")
            // A replica that is down answers at once or not at all: do not hang.
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .keep_alive_timeout(Duration::from_secs(10));
        let channel = crm_shared::server::http2::configure_client(endpoint).connect_lazy();
        Arc::new(Self {
            addr,
            channel,
            // Optimistic until the first check: a fresh gateway routes at once.
            checked_serving: AtomicBool::new(true),
            seen_serving: AtomicBool::new(false),
            version: Mutex::default(),
            outlier: Mutex::default(),
        })
    }

    /// A handle on the pooled connection, for one call.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The replica's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn outlier(&self) -> std::sync::MutexGuard<'_, Outlier> {
        self.outlier.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_ejected(&self, now: Instant) -> bool {
        self.outlier()
            .ejected_until
            .is_some_and(|until| until > now)
    }

    /// Passed its last health check and is not ejected.
    fn is_serving(&self, now: Instant) -> bool {
        self.checked_serving.load(Ordering::Acquire) && !self.is_ejected(now)
    }

    /// The version it reported at its last health check; empty until then.
    pub fn version(&self) -> String {
        self.version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks the replica's `grpc.health.v1.Health` whether it serves, and
    /// notes the version it answers with.
    async fn check(&self, timeout: Duration) -> bool {
        let mut client = HealthClient::new(self.channel.clone());
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request.set_timeout(timeout);
        let Ok(Ok(response)) = tokio::time::timeout(timeout, client.check(request)).await else {
            return false;
        };
        if let Some(version) = response
            .metadata()
            .get(crm_shared::server::VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            *self.version.lock().unwrap_or_else(|e| e.into_inner()) = version.to_owned();
        }
        response.get_ref().status == health_check_response::ServingStatus::Serving as i32
    }
}

/// Whether a replica takes calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Passing health checks and not ejected.
    Serving,
    /// Answering health checks but ejected for failing calls.
    Ejected,
    /// Not passing health checks.
    Down,
}

/// Replicas of an upstream by state, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicaStates {
    /// Taking calls.
    pub serving: usize,
    /// Answering health checks but ejected for failing calls.
    pub ejected: usize,
    /// Not passing health checks.
    pub down: usize,
}

impl ReplicaStates {
    /// Every replica known.
    pub fn known(&self) -> usize {
        self.serving + self.ejected + self.down
    }
}

/// One service behind the gateway.
pub struct Upstream {
    name: String,
    /// The fully-qualified gRPC services it serves, for the gateway's health.
    services: Vec<String>,
    sources: Vec<Source>,
    replicas: RwLock<Vec<Arc<Replica>>>,
    next: AtomicUsize,
    /// Replicas ejected by outlier detection, ever.
    ejections: AtomicU64,
    /// Ejections the floor refused: the replica was the last one taking calls,
    /// or the share of ejected replicas was at its limit.
    ejections_refused: AtomicU64,
}

impl Upstream {
    /// An upstream called `name` at `addresses` (`http://host:port` each),
    /// serving `services`. Literal addresses become replicas at once; names
    /// are resolved by [`Upstream::watch`].
    pub fn new<'a>(
        name: &str,
        addresses: impl IntoIterator<Item = &'a str>,
        services: Vec<String>,
    ) -> Result<Self, AddressError> {
        let sources = addresses
            .into_iter()
            .map(|address| {
                parse_address(address).ok_or_else(|| AddressError {
                    upstream: name.to_owned(),
                    address: address.to_owned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let replicas = sources
            .iter()
            .filter_map(|source| match source {
                Source::Fixed(addr) => Some(Replica::new(*addr)),
                Source::Dns { .. } => None,
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            services,
            sources,
            replicas: RwLock::new(replicas),
            next: AtomicUsize::new(0),
            ejections: AtomicU64::new(0),
            ejections_refused: AtomicU64::new(0),
        })
    }

    /// The upstream's name (`contacts`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next replica taking calls, round-robin; `None` when none is.
    pub fn pick(&self) -> Option<Arc<Replica>> {
        let replicas = self.replicas.read().unwrap_or_else(|e| e.into_inner());
        let count = replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        (0..count)
            .map(|offset| &replicas[(start + offset) % count])
            .find(|replica| replica.is_serving(now))
            .cloned()
    }

    /// Tells outlier detection how a call to `replica` went.
    pub fn report(&self, replica: &Replica, outcome: CallOutcome) {
        let eject = {
            let mut outlier = replica.outlier();
            match outcome {
                CallOutcome::Answered => {
                    outlier.consecutive_failures = 0;
                    outlier.ejections = 0;
                    false
                }
                CallOutcome::ConnectFailed => true,
                CallOutcome::Failed => {
                    outlier.consecutive_failures += 1;
                    outlier.consecutive_failures >= CONSECUTIVE_FAILURES
                }
            }
        };
        if eject {
            self.eject(replica, outcome);
        }
    }

    /// Ejects `replica` unless the floor forbids it.
    fn eject(&self, replica: &Replica, cause: CallOutcome) {
        let now = Instant::now();
        if replica.is_ejected(now) {
            return;
        }
        let (others_serving, ejected, known) = {
            let replicas = self.replicas.read().unwrap_or_else(|e| e.into_inner());
            let others_serving = replicas
                .iter()
                .filter(|other| !std::ptr::eq(Arc::as_ptr(other), replica))
                .filter(|other| other.is_serving(now))
                .count();
            let ejected = replicas.iter().filter(|r| r.is_ejected(now)).count();
            (others_serving, ejected, replicas.len())
        };
        if others_serving == 0 || (ejected + 1) * 100 > known * MAX_EJECTED_PERCENT {
            self.ejections_refused.fetch_add(1, Ordering::Relaxed);
            let mut outlier = replica.outlier();
            // Counted again from zero, so a steady failure is counted once per
            // CONSECUTIVE_FAILURES calls rather than on every call.
            outlier.consecutive_failures = 0;
            tracing::warn!(upstream = %self.name, addr = %replica.addr, ?cause,
                "replica is failing calls but is not ejected: too few others are taking calls");
            return;
        }
        let mut outlier = replica.outlier();
        let period = BASE_EJECTION
            .saturating_mul(outlier.ejections + 1)
            .min(MAX_EJECTION);
        outlier.ejections += 1;
        outlier.consecutive_failures = 0;
        outlier.ejected_until = Some(now + period);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(upstream = %self.name, addr = %replica.addr, ?cause, ?period,
            "replica ejected: it failed calls");
    }

    /// The replicas by state.
    pub fn replica_states(&self) -> ReplicaStates {
        let mut states = ReplicaStates::default();
        for (_, state) in self.replicas_with_state() {
            match state {
                ReplicaState::Down => states.down += 1,
                ReplicaState::Ejected => states.ejected += 1,
                ReplicaState::Serving => states.serving += 1,
            }
        }
        states
    }

    /// Every known replica with its state.
    pub fn replicas_with_state(&self) -> Vec<(Arc<Replica>, ReplicaState)> {
        let replicas = self.replicas.read().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        replicas
            .iter()
            .map(|replica| {
                let state = if !replica.checked_serving.load(Ordering::Acquire) {
                    ReplicaState::Down
                } else if replica.is_ejected(now) {
                    ReplicaState::Ejected
                } else {
                    ReplicaState::Serving
                };
                (replica.clone(), state)
            })
            .collect()
    }

    /// The fully-qualified gRPC services it serves.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// Ejections so far, and ejections the floor refused.
    pub fn ejection_counts(&self) -> (u64, u64) {
        (
            self.ejections.load(Ordering::Relaxed),
            self.ejections_refused.load(Ordering::Relaxed),
        )
    }

    /// Keeps the replica list and health current until `stopping` turns true:
    /// checks every replica each `interval`, resolves names each `dns_refresh`,
    /// and reports the upstream's services SERVING while any replica is.
    pub async fn watch(
        self: Arc<Self>,
        health: HealthReporter,
        interval: Duration,
        dns_refresh: Duration,
        mut stopping: watch::Receiver<bool>,
    ) {
        let mut resolved_at: Option<Instant> = None;
        let mut reported: Option<bool> = None;
        loop {
            if resolved_at.is_none_or(|at| at.elapsed() >= dns_refresh) {
                self.resolve().await;
                resolved_at = Some(Instant::now());
            }
            let replicas = self
                .replicas
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            // Long enough that a busy replica (or a busy gateway) is not taken
            // out for one slow answer; checks never overlap (they are awaited).
            let timeout = interval.clamp(Duration::from_secs(1), Duration::from_secs(2));
            let name = self.name.as_str();
            let checks = replicas.iter().map(|replica| async move {
                let serving = replica.check(timeout).await;
                let was_serving = replica.checked_serving.swap(serving, Ordering::AcqRel);
                let seen_before = replica.seen_serving.swap(
                    serving || replica.seen_serving.load(Ordering::Acquire),
                    Ordering::AcqRel,
                );
                match (was_serving, serving) {
                    (false, true) => tracing::info!(upstream = %name, addr = %replica.addr, "replica serving; taking calls"),
                    // A replica still starting up is not news.
                    (true, false) if seen_before => tracing::warn!(upstream = %name, addr = %replica.addr, "replica not serving; taken out"),
                    _ => {}
                }
                serving
            });
            let any_serving = futures_util::future::join_all(checks)
                .await
                .into_iter()
                .any(|serving| serving);
            if reported != Some(any_serving) {
                let status = if any_serving {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                for service in &self.services {
                    health.set_service_status(service, status).await;
                }
                reported = Some(any_serving);
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Resolves every name again; keeps the replicas (and their open
    /// connections) whose address is still listed.
    async fn resolve(&self) {
        let names: Vec<(&str, u16)> = self
            .sources
            .iter()
            .filter_map(|source| match source {
                Source::Dns { host, port } => Some((host.as_str(), *port)),
                Source::Fixed(_) => None,
            })
            .collect();
        if names.is_empty() {
            return;
        }
        let mut wanted: Vec<SocketAddr> = self
            .sources
            .iter()
            .filter_map(|source| match source {
                Source::Fixed(addr) => Some(*addr),
                Source::Dns { .. } => None,
            })
            .collect();
        for (host, port) in names {
            match tokio::net::lookup_host((host, port)).await {
                Ok(addrs) => wanted.extend(addrs),
                Err(error) => {
                    // Keep what we had: a DNS hiccup must not empty the pool.
                    tracing::warn!(upstream = %self.name, %host, %error, "cannot resolve; keeping the known replicas");
                    return;
                }
            }
        }
        wanted.sort();
        wanted.dedup();
        let mut replicas = self.replicas.write().unwrap_or_else(|e| e.into_inner());
        let mut known: HashMap<SocketAddr, Arc<Replica>> =
            replicas.drain(..).map(|r| (r.addr, r)).collect();
        *replicas = wanted
            .into_iter()
            .map(|addr| known.remove(&addr).unwrap_or_else(|| Replica::new(addr)))
            .collect();
    }
}

/// `http://10.0.0.5:50061` or `http://contacts:50061`.
fn parse_address(address: &str) -> Option<Source> {
    let rest = address
        .trim()
        .strip_prefix("http://")?
        .trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some(match host.parse::<IpAddr>() {
        Ok(ip) => Source::Fixed(SocketAddr::new(ip, port)),
        Err(_) => Source::Dns {
            host: host.to_owned(),
            port,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_literal_or_names() {
        assert!(matches!(
            parse_address("http://127.0.0.1:50061"),
            Some(Source::Fixed(addr)) if addr.port() == 50061
        ));
        assert!(matches!(
            parse_address("http://[::1]:7/"),
            Some(Source::Fixed(addr)) if addr.is_ipv6()
        ));
        assert!(matches!(
            parse_address("http://contacts.crm.svc:50061"),
            Some(Source::Dns { host, port: 50061 }) if host == "contacts.crm.svc"
        ));
        assert!(parse_address("contacts:50061").is_none());
        assert!(parse_address("http://contacts").is_none());
        assert!(parse_address("http://:80").is_none());
    }

    fn three_replicas() -> Upstream {
        Upstream::new(
            "contacts",
            [
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:3",
            ],
            vec![],
        )
        .unwrap()
    }

    fn replica(upstream: &Upstream, port: u16) -> Arc<Replica> {
        let replicas = upstream.replicas.read().unwrap();
        replicas
            .iter()
            .find(|r| r.addr().port() == port)
            .unwrap()
            .clone()
    }

    fn picks(upstream: &Upstream, calls: usize) -> Vec<u16> {
        (0..calls)
            .map(|_| upstream.pick().unwrap().addr().port())
            .collect()
    }

    #[tokio::test]
    async fn round_robin_skips_replicas_that_are_down() {
        let upstream = three_replicas();
        assert_eq!(picks(&upstream, 3), [1, 2, 3]);
        replica(&upstream, 1)
            .checked_serving
            .store(false, Ordering::Release);
        assert!(!picks(&upstream, 4).contains(&1));
        for port in [2, 3] {
            replica(&upstream, port)
                .checked_serving
                .store(false, Ordering::Release);
        }
        assert!(upstream.pick().is_none());
        let states = upstream.replica_states();
        assert_eq!((states.known(), states.down), (3, 3));
    }

    #[tokio::test]
    async fn a_refused_connection_ejects_at_once_and_failed_calls_after_a_run() {
        let upstream = three_replicas();
        upstream.report(&replica(&upstream, 1), CallOutcome::ConnectFailed);
        assert!(!picks(&upstream, 4).contains(&1), "ejected at once");

        let second = replica(&upstream, 2);
        for _ in 0..CONSECUTIVE_FAILURES - 1 {
            upstream.report(&second, CallOutcome::Failed);
        }
        upstream.report(&second, CallOutcome::Answered);
        for _ in 0..CONSECUTIVE_FAILURES - 1 {
            upstream.report(&second, CallOutcome::Failed);
        }
        assert!(
            picks(&upstream, 4).contains(&2),
            "an answer in between resets the run"
        );
        assert_eq!(upstream.ejection_counts(), (1, 0));
        assert_eq!(
            upstream.replica_states(),
            ReplicaStates {
                serving: 2,
                ejected: 1,
                down: 0
            }
        );
    }

    #[tokio::test]
    async fn the_floor_keeps_the_last_replica_and_half_of_them() {
        let single = Upstream::new("contacts", ["http://127.0.0.1:1"], vec![]).unwrap();
        let only = replica(&single, 1);
        single.report(&only, CallOutcome::ConnectFailed);
        for _ in 0..CONSECUTIVE_FAILURES * 3 {
            single.report(&only, CallOutcome::Failed);
        }
        assert_eq!(single.pick().unwrap().addr().port(), 1, "never the last");
        assert_eq!(single.ejection_counts(), (0, 4));

        let upstream = three_replicas();
        upstream.report(&replica(&upstream, 1), CallOutcome::ConnectFailed);
        upstream.report(&replica(&upstream, 2), CallOutcome::ConnectFailed);
        assert_eq!(
            upstream.ejection_counts(),
            (1, 1),
            "at most half of three replicas is one"
        );
        assert_eq!(upstream.replica_states().serving, 2);
    }

    #[tokio::test]
    async fn names_resolve_to_one_replica_per_address() {
        let upstream = Upstream::new("contacts", ["http://localhost:50061"], vec![]).unwrap();
        assert_eq!(
            upstream.replica_states().known(),
            0,
            "nothing before resolving"
        );
        upstream.resolve().await;
        let count = upstream.replica_states().known();
        assert!(count >= 1, "localhost resolves");
        let first = upstream.pick().unwrap();
        upstream.resolve().await;
        assert!(
            upstream
                .replicas
                .read()
                .unwrap()
                .iter()
                .any(|r| Arc::ptr_eq(r, &first)),
            "a replica still listed keeps its channel"
        );
    }
}
