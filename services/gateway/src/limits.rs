//! Per-tenant rate limits: one token bucket per tenant, refilled continuously.
//! A bucket is dropped once it would be full again, so memory follows the
//! tenants active in the last few seconds, not every tenant ever seen.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The token buckets of every recently active tenant.
pub struct TenantLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_tenant: HashMap<String, Bucket>,
    last_sweep: Instant,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl TenantLimiter {
    /// `rate` calls per second with bursts of up to `burst` calls.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            buckets: Mutex::new(Buckets {
                by_tenant: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Takes one token from `tenant`'s bucket, or says how long until one is there.
    pub fn try_acquire(&self, tenant: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(buckets.last_sweep) > self.refill_time() {
            self.sweep(&mut buckets, now);
        }
        let bucket = match buckets.by_tenant.get_mut(tenant) {
            Some(bucket) => bucket,
            None => buckets
                .by_tenant
                .entry(tenant.to_owned())
                .or_insert(Bucket {
                    tokens: self.burst,
                    updated: now,
                }),
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    /// How long an empty bucket takes to fill.
    fn refill_time(&self) -> Duration {
        Duration::from_secs_f64((self.burst / self.rate).min(3600.0))
    }

    /// Forgets buckets that have refilled: a new one starts full anyway.
    fn sweep(&self, buckets: &mut Buckets, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        buckets.by_tenant.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * rate < burst
        });
        buckets.last_sweep = now;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_gets_its_burst_then_waits_for_the_rate() {
        let limiter = TenantLimiter::new(10.0, 3.0);
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
        let limiter = TenantLimiter::new(1.0, 1.0);
        let now = Instant::now();
        assert_eq!(limiter.try_acquire("acme", now), Ok(()));
        assert!(limiter.try_acquire("acme", now).is_err());
        assert_eq!(limiter.try_acquire("globex", now), Ok(()));
    }

    #[test]
    fn refilled_buckets_are_forgotten() {
        let limiter = TenantLimiter::new(100.0, 10.0);
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
}
