//! Fairness between tenants and clients: token buckets refilled continuously
//! (per tenant for calls, per client address for failed authentications),
//! and per-tenant caps on calls in flight and streams open. A bucket is
//! dropped once it would be full again, and a tenant's counts once they are
//! zero, so memory follows the recently active, not everyone ever seen.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A token bucket's shape: calls per second, and how many at once above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// The refill rate, calls per second.
    pub rate: f64,
    /// The bucket's size.
    pub burst: f64,
}

impl Limit {
    fn sane(self) -> Self {
        Self {
            rate: self.rate.max(f64::MIN_POSITIVE),
            burst: self.burst.max(1.0),
        }
    }

    /// How long an empty bucket takes to fill.
    fn refill_time(self) -> Duration {
        Duration::from_secs_f64((self.burst / self.rate).min(3600.0))
    }
}

/// The token buckets of every recently active tenant.
pub struct TenantLimiter {
    default: Limit,
    overrides: HashMap<String, Limit>,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_tenant: HashMap<String, Bucket>,
    last_sweep: Instant,
}

#[derive(Clone, Copy)]
struct Bucket {
    limit: Limit,
    tokens: f64,
    updated: Instant,
}

impl TenantLimiter {
    /// `default` for every tenant but those in `overrides`.
    pub fn new(default: Limit, overrides: HashMap<String, Limit>) -> Self {
        Self {
            default: default.sane(),
            overrides: overrides.into_iter().map(|(t, l)| (t, l.sane())).collect(),
            buckets: Mutex::new(Buckets {
                by_tenant: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Takes one token from `tenant`'s bucket, or says how long until one is there.
    pub fn try_acquire(&self, tenant: &str, now: Instant) -> Result<(), Duration> {
        self.take(tenant, now, 1.0)
    }

    /// Whether `key` has a token, without taking it; else how long until it has.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.take(key, now, 0.0)
    }

    /// Refills `key`'s bucket, then takes `cost` tokens if one is there.
    fn take(&self, tenant: &str, now: Instant, cost: f64) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(buckets.last_sweep) > self.default.refill_time() {
            sweep(&mut buckets, now);
        }
        let bucket = match buckets.by_tenant.get_mut(tenant) {
            Some(bucket) => bucket,
            None => {
                let limit = self.overrides.get(tenant).copied().unwrap_or(self.default);
                buckets
                    .by_tenant
                    .entry(tenant.to_owned())
                    .or_insert(Bucket {
                        limit,
                        tokens: limit.burst,
                        updated: now,
                    })
            }
        };
        let Limit { rate, burst } = bucket.limit;
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// How many tenants have a bucket.
    #[cfg(test)]
    fn tracked_tenants(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_tenant
            .len()
    }
}

/// Per-tenant caps on calls in flight and on streams open.
pub struct TenantSlots {
    max_calls: usize,
    max_streams: usize,
    open: Arc<Mutex<HashMap<String, Open>>>,
}

/// One tenant's calls and streams in flight.
#[derive(Default, Clone, Copy)]
struct Open {
    calls: usize,
    streams: usize,
}

/// Which cap a call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefused {
    /// The tenant has `max_calls` calls in flight.
    Calls(usize),
    /// The tenant has `max_streams` streams open.
    Streams(usize),
}

/// A call's place in its tenant's counts, given back when dropped.
pub struct TenantSlot {
    tenant: String,
    stream: bool,
    open: Arc<Mutex<HashMap<String, Open>>>,
}

impl TenantSlots {
    /// At most `max_calls` calls in flight per tenant, of which at most
    /// `max_streams` streaming.
    pub fn new(max_calls: usize, max_streams: usize) -> Self {
        Self {
            max_calls: max_calls.max(1),
            max_streams: max_streams.max(1),
            open: Arc::default(),
        }
    }

    /// A slot for one more call of `tenant`, unless a cap is reached.
    pub fn acquire(&self, tenant: &str, stream: bool) -> Result<TenantSlot, SlotRefused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let counts = open.entry(tenant.to_owned()).or_default();
        if counts.calls >= self.max_calls {
            return Err(SlotRefused::Calls(self.max_calls));
        }
        if stream && counts.streams >= self.max_streams {
            return Err(SlotRefused::Streams(self.max_streams));
        }
        counts.calls += 1;
        counts.streams += usize::from(stream);
        Ok(TenantSlot {
            tenant: tenant.to_owned(),
            stream,
            open: self.open.clone(),
        })
    }

    /// How many tenants have a call in flight.
    #[cfg(test)]
    fn tracked_tenants(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counts) = open.get_mut(&self.tenant) {
            counts.calls -= 1;
            counts.streams -= usize::from(self.stream);
            if counts.calls == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

/// Forgets buckets that have refilled: a new one starts full anyway.
fn sweep(buckets: &mut Buckets, now: Instant) {
    buckets.by_tenant.retain(|_, bucket| {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens + elapsed * bucket.limit.rate < bucket.limit.burst
    });
    buckets.last_sweep = now;
}

/// Parses per-tenant overrides: `acme=2000/4000, globex=50` (calls per second,
/// and optionally the burst; twice the rate when left out).
pub fn parse_overrides(text: &str) -> Result<HashMap<String, Limit>, String> {
    crate::config::list(text)
        .map(|entry| {
            let bad = || format!("{entry:?} is not tenant=rate or tenant=rate/burst");
            let (tenant, numbers) = entry.split_once('=').ok_or_else(bad)?;
            let (rate, burst) = match numbers.split_once('/') {
                Some((rate, burst)) => (rate, Some(burst)),
                None => (numbers, None),
            };
            let rate: f64 = rate.trim().parse().map_err(|_| bad())?;
            let burst: f64 = match burst {
                Some(b) => b.trim().parse().map_err(|_| bad())?,
                None => rate * 2.0,
            };
            if tenant.trim().is_empty() || !(rate > 0.0 && burst >= 1.0) {
                return Err(bad());
            }
            Ok((tenant.trim().to_owned(), Limit { rate, burst }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_have_their_own_caps_on_calls_and_streams() {
        let slots = TenantSlots::new(3, 2);
        let first = slots.acquire("acme", true).unwrap();
        let _second = slots.acquire("acme", true).unwrap();
        assert_eq!(
            slots.acquire("acme", true).err(),
            Some(SlotRefused::Streams(2))
        );
        let unary = slots.acquire("acme", false).unwrap();
        assert_eq!(
            slots.acquire("acme", false).err(),
            Some(SlotRefused::Calls(3))
        );
        assert!(
            slots.acquire("globex", true).is_ok(),
            "another tenant is not held up"
        );
        drop(first);
        let _third = slots.acquire("acme", true).unwrap();
        drop(unary);
        drop(_third);
        drop(_second);
        assert_eq!(slots.tracked_tenants(), 0, "nothing kept for idle tenants");
    }

    #[test]
    fn checking_a_bucket_takes_nothing() {
        let limiter = TenantLimiter::new(
            Limit {
                rate: 1.0,
                burst: 2.0,
            },
            HashMap::new(),
        );
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.check("10.0.0.1", now), Ok(()));
        }
        limiter.try_acquire("10.0.0.1", now).unwrap();
        limiter.try_acquire("10.0.0.1", now).unwrap();
        assert!(limiter.check("10.0.0.1", now).is_err());
    }

    #[test]
    fn a_tenant_gets_its_burst_then_waits_for_the_rate() {
        let limiter = TenantLimiter::new(
            Limit {
                rate: 10.0,
                burst: 3.0,
            },
            HashMap::new(),
        );
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.try_acquire("acme", start), Ok(()));
        }
        let wait = limiter.try_acquire("acme", start).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(
            limiter.try_acquire("acme", start + Duration::from_millis(100)),
            Ok(())
        );
    }

    #[test]
    fn tenants_do_not_share_a_bucket() {
        let limiter = TenantLimiter::new(
            Limit {
                rate: 1.0,
                burst: 1.0,
            },
            HashMap::new(),
        );
        let now = Instant::now();
        assert_eq!(limiter.try_acquire("acme", now), Ok(()));
        assert!(limiter.try_acquire("acme", now).is_err());
        assert_eq!(limiter.try_acquire("globex", now), Ok(()));
    }

    #[test]
    fn refilled_buckets_are_forgotten() {
        let limiter = TenantLimiter::new(
            Limit {
                rate: 100.0,
                burst: 10.0,
            },
            HashMap::new(),
        );
        let now = Instant::now();
        for tenant in 0..1000 {
            limiter.try_acquire(&tenant.to_string(), now).unwrap();
        }
        assert_eq!(limiter.tracked_tenants(), 1000);
        limiter
            .try_acquire("late", now + Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            limiter.tracked_tenants(),
            1,
            "only the tenant still refilling"
        );
    }

    #[test]
    fn a_tenant_can_have_a_limit_of_its_own() {
        let overrides = parse_overrides("big=100/200, small = 1").unwrap();
        assert_eq!(
            overrides["small"],
            Limit {
                rate: 1.0,
                burst: 2.0
            }
        );
        let limiter = TenantLimiter::new(
            Limit {
                rate: 1.0,
                burst: 1.0,
            },
            overrides,
        );
        let now = Instant::now();
        for _ in 0..200 {
            assert_eq!(limiter.try_acquire("big", now), Ok(()));
        }
        assert!(limiter.try_acquire("big", now).is_err());
        assert_eq!(limiter.try_acquire("other", now), Ok(()));
        assert!(limiter.try_acquire("other", now).is_err());
        for bad in ["acme", "acme=x", "=5", "acme=0", "acme=5/0"] {
            assert!(parse_overrides(bad).is_err(), "{bad}");
        }
    }
}
