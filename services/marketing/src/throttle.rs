//! The per-tenant send rate: however many campaigns a tenant sends at once,
//! its messages leave at no more than its rate (a campaign's own rate
//! applies too). One tenant's big campaign thus cannot crowd out the rest of
//! a shared relay's reputation budget. Rates come from configuration
//! (`tenant_messages_per_second`, and `tenant_rates` such as
//! `acme=50,globex=200` for single tenants), as a plan's limit would.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::time::Instant;

/// Each tenant's next free send slot.
pub struct TenantThrottle {
    default_rate: u32,
    rates: HashMap<String, u32>,
    next: Mutex<HashMap<String, Instant>>,
}

/// A rate that is not a whole positive number of messages per second.
#[derive(Debug, thiserror::Error)]
#[error("tenant_rates: {0:?} is not tenant=messages_per_second")]
pub struct BadRate(String);

fn interval(per_second: u32) -> Duration {
    Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)))
}

impl TenantThrottle {
    /// `per_second` for every tenant, except those named in `overrides`
    /// (`tenant=rate`, comma-separated).
    pub fn new(per_second: u32, overrides: &str) -> Result<Self, BadRate> {
        let mut rates = HashMap::new();
        for pair in overrides
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (tenant, rate) = pair
                .split_once('=')
                .and_then(|(t, r)| Some((t.trim(), r.trim().parse::<u32>().ok()?)))
                .filter(|(t, r)| !t.is_empty() && *r > 0)
                .ok_or_else(|| BadRate(pair.to_owned()))?;
            rates.insert(tenant.to_owned(), rate);
        }
        Ok(Self {
            default_rate: per_second.max(1),
            rates,
            next: Mutex::new(HashMap::new()),
        })
    }

    /// `tenant`'s messages per second.
    pub fn rate(&self, tenant: &str) -> u32 {
        *self.rates.get(tenant).unwrap_or(&self.default_rate)
    }

    /// Takes `tenant`'s next slot: when its next message may go.
    pub fn reserve(&self, tenant: &str) -> Instant {
        self.reserve_at(tenant, Instant::now())
    }

    fn reserve_at(&self, tenant: &str, now: Instant) -> Instant {
        let step = interval(self.rate(tenant));
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = next.entry(tenant.to_owned()).or_insert(now);
        let at = (*slot).max(now);
        *slot = at + step;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_each_tenants_rate() {
        let throttle = TenantThrottle::new(10, "acme=2, globex=1000").unwrap();
        let start = Instant::now();
        let acme: Vec<Duration> = (0..3)
            .map(|_| throttle.reserve_at("acme", start) - start)
            .collect();
        assert_eq!(
            acme,
            [0, 500, 1000].map(Duration::from_millis),
            "two a second"
        );
        let other: Vec<Duration> = (0..2)
            .map(|_| throttle.reserve_at("initech", start) - start)
            .collect();
        assert_eq!(other, [0, 100].map(Duration::from_millis), "the default");
        // A slot in the past is not saved up: an idle tenant gets no burst.
        let later = start + Duration::from_secs(10);
        assert_eq!(throttle.reserve_at("initech", later), later);
        assert_eq!(
            throttle.reserve_at("initech", later) - later,
            Duration::from_millis(100)
        );
    }

    #[test]
    fn bad_overrides_are_refused() {
        for bad in ["acme", "acme=", "=5", "acme=0", "acme=fast"] {
            assert!(TenantThrottle::new(10, bad).is_err(), "{bad}");
        }
        assert!(TenantThrottle::new(10, "").is_ok());
    }
}
