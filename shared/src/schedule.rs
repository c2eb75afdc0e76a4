//! Periodic jobs that run on one replica at a time: an SLA clock, a campaign
//! sender, a nightly snapshot. Each job holds a lease (the consumers' lease
//! table, named `job:<name>`) while it runs, renewed by each pass, so however
//! many replicas run, one does the work and another takes over within the
//! lease's TTL when it dies. A job must still be idempotent per item (its
//! writes version-checked or keyed): a pass that outlives the lease may
//! overlap the next holder's, and a pass cut short is simply run again.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::{consumer::lease::Lease, db::Database, error::ApiError};

/// One periodic piece of work.
#[tonic::async_trait]
pub trait Job: Send + Sync + 'static {
    /// Does whatever is due now (and anything that fell due while no
    /// replica ran the job); returns how many items it handled.
    async fn run_once(&self) -> Result<u64, ApiError>;
}

/// A job with its name and period, as the kit keeps it until it serves.
pub struct Scheduled {
    /// Names the job in the lease table and the logs.
    pub name: String,
    /// The pause between passes.
    pub every: Duration,
    /// The work.
    pub job: Arc<dyn Job>,
}

/// Runs `scheduled` every period while this replica holds its lease, until
/// `stopping`; then gives the lease up so another replica takes over at once.
pub async fn keep_running(
    db: Database,
    replica: String,
    scheduled: Scheduled,
    mut stopping: watch::Receiver<bool>,
) {
    let lease = Lease::new(db, &format!("job:{}", scheduled.name), &replica);
    let name = scheduled.name.as_str();
    loop {
        match lease.try_acquire().await {
            Ok(true) => match scheduled.job.run_once().await {
                Ok(0) => {}
                Ok(handled) => tracing::info!(job = name, handled, "scheduled job ran"),
                Err(error) => {
                    tracing::warn!(job = name, %error, "scheduled job failed; retrying next period")
                }
            },
            Ok(false) => {}
            Err(error) => tracing::warn!(job = name, %error, "cannot take the job's lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(scheduled.every) => {}
            _ = stopping.wait_for(|stop| *stop) => break,
        }
    }
    if let Err(error) = lease.release().await {
        tracing::warn!(job = name, %error, "could not give the job's lease up");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use sea_orm_migration::{MigrationTrait, SchemaManager};

    use super::*;

    /// Records which replica ran each pass.
    struct Recorder {
        replica: &'static str,
        passes: Arc<Mutex<Vec<&'static str>>>,
    }

    #[tonic::async_trait]
    impl Job for Recorder {
        async fn run_once(&self) -> Result<u64, ApiError> {
            self.passes.lock().unwrap().push(self.replica);
            Ok(1)
        }
    }

    #[tokio::test]
    async fn one_replica_runs_the_job_and_another_takes_over_when_it_stops() {
        let dir = std::env::temp_dir().join(format!("crm-schedule-{}", uuid::Uuid::now_v7()));
        let url = format!("sqlite://{}/jobs.db?mode=rwc", dir.display());
        let db = Database::connect(&url, 4).await.unwrap();
        crate::consumer::tables::migration::CreateConsumerTables
            .up(&SchemaManager::new(&db.conn))
            .await
            .unwrap();
        let passes = Arc::new(Mutex::new(Vec::new()));
        let mut stops = Vec::new();
        for replica in ["a", "b"] {
            let (stop, stopping) = watch::channel(false);
            let scheduled = Scheduled {
                name: "count".into(),
                every: Duration::from_millis(50),
                job: Arc::new(Recorder {
                    replica,
                    passes: passes.clone(),
                }),
            };
            let task = tokio::spawn(keep_running(
                db.clone(),
                replica.into(),
                scheduled,
                stopping,
            ));
            stops.push((stop, task));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Waits (up to 30 s, for a loaded machine) until `passes` holds `n`.
        let wait_for = async |n: usize| {
            for _ in 0..600 {
                if passes.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        wait_for(4).await;
        let first: Vec<_> = std::mem::take(&mut *passes.lock().unwrap());
        assert!(first.len() >= 4, "{first:?}");
        assert!(
            first.iter().all(|r| *r == "a"),
            "only the holder runs: {first:?}"
        );
        let (stop_a, task_a) = stops.remove(0);
        stop_a.send(true).unwrap();
        task_a.await.unwrap();
        passes.lock().unwrap().clear();
        wait_for(2).await;
        let after: Vec<_> = passes.lock().unwrap().clone();
        assert!(
            after.len() >= 2 && after.iter().all(|r| *r == "b"),
            "{after:?}"
        );
        let (stop_b, task_b) = stops.remove(0);
        stop_b.send(true).unwrap();
        task_b.await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
