//! The forecast snapshot job: on one replica, every
//! `reporting.forecast_snapshot_minutes`, today's snapshot of every tenant's
//! weighted pipeline is (re)taken, so the last one of a day is the day's
//! (see `store::forecasts`).

use crm_shared::{error::ApiError, schedule::Job};

use crate::store::Store;

/// Takes today's forecast snapshot.
pub struct ForecastSnapshots {
    store: Store,
}

impl ForecastSnapshots {
    /// The job over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl Job for ForecastSnapshots {
    async fn run_once(&self) -> Result<u64, ApiError> {
        let today = chrono::Utc::now().date_naive();
        Ok(self.store.take_forecast_snapshot(today).await?)
    }
}
