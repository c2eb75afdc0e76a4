//! The replicas of one service behind the gateway: a pooled HTTP/2 channel to
//! each, round-robin over the healthy ones, a health check that takes a failed
//! replica out and brings it back once it answers SERVING again, and DNS names
//! resolved again and again (a Kubernetes headless service lists every pod).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
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

/// One replica: its address, its channel, and whether it is taking calls.
pub struct Replica {
    addr: SocketAddr,
    channel: Channel,
    healthy: AtomicBool,
    /// Whether a health check has ever found it SERVING.
    seen_serving: AtomicBool,
}

impl Replica {
    fn new(addr: SocketAddr) -> Arc<Self> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("an http URL of a socket address is a valid URI")
            // A replica that is down answers at once or not at all: do not hang.
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .connect_lazy();
        Arc::new(Self {
            addr,
            channel,
            // Optimistic until the first check: a fresh gateway routes at once.
            healthy: AtomicBool::new(true),
            seen_serving: AtomicBool::new(false),
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

    /// Takes the replica out until a health check finds it SERVING again.
    pub fn mark_down(&self) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(addr = %self.addr, "replica failed a call; taken out until healthy");
        }
    }

    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Asks the replica's `grpc.health.v1.Health` whether it serves.
    async fn check(&self, timeout: Duration) -> bool {
        let mut client = HealthClient::new(self.channel.clone());
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request.set_timeout(timeout);
        let answer = tokio::time::timeout(timeout, client.check(request)).await;
        matches!(answer, Ok(Ok(response))
            if response.get_ref().status == health_check_response::ServingStatus::Serving as i32)
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
        })
    }

    /// The upstream's name (`contacts`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next healthy replica, round-robin; `None` when every one is down.
    pub fn pick(&self) -> Option<Arc<Replica>> {
        let replicas = self.replicas.read().unwrap_or_else(|e| e.into_inner());
        let count = replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| &replicas[(start + offset) % count])
            .find(|replica| replica.is_healthy())
            .cloned()
    }

    /// How many replicas are known and how many of them are healthy.
    pub fn replica_counts(&self) -> (usize, usize) {
        let replicas = self.replicas.read().unwrap_or_else(|e| e.into_inner());
        let healthy = replicas.iter().filter(|r| r.is_healthy()).count();
        (replicas.len(), healthy)
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
                let was_serving = replica.healthy.swap(serving, Ordering::AcqRel);
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

    #[tokio::test]
    async fn round_robin_skips_replicas_that_are_down() {
        let upstream = Upstream::new(
            "contacts",
            [
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:3",
            ],
            vec![],
        )
        .unwrap();
        let picks: Vec<u16> = (0..3)
            .map(|_| upstream.pick().unwrap().addr().port())
            .collect();
        assert_eq!(picks, [1, 2, 3]);
        upstream.pick().unwrap().mark_down(); // port 1
        let picks: Vec<u16> = (0..4)
            .map(|_| upstream.pick().unwrap().addr().port())
            .collect();
        assert!(!picks.contains(&1), "{picks:?}");
        for replica in upstream.replicas.read().unwrap().iter() {
            replica.mark_down();
        }
        assert!(upstream.pick().is_none());
        assert_eq!(upstream.replica_counts(), (3, 0));
    }

    #[tokio::test]
    async fn names_resolve_to_one_replica_per_address() {
        let upstream = Upstream::new("contacts", ["http://localhost:50061"], vec![]).unwrap();
        assert_eq!(upstream.replica_counts().0, 0, "nothing before resolving");
        upstream.resolve().await;
        let (count, _) = upstream.replica_counts();
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
