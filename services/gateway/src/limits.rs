//! Per-tenant rate limits: one token bucket per tenant, refilled continuously.
//! A bucket is dropped once it would be full again, so memory follows the
//! tenants active in the last few seconds, not every tenant ever seen.

use std::{
    collections::HashMap,
    sync::Mutex,
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
            bucket.tokens -= 1.0;
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
