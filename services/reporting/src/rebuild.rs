//! The rebuild of the read model: every feed replayed from its start into
//! a new generation, beside the live one, which it replaces once it has
//! caught up with the live consumers (see `crm_shared::consumer::replay`).
//! A scheduled job on one replica; each pass replays a few batches per
//! feed, so a restart resumes where the last committed batch ended.

use std::collections::BTreeMap;

use crm_shared::{
    consumer::{EffectError, FeedSource, replay},
    error::ApiError,
    schedule::Job,
};

use crate::{
    consumer::{ReadModel, event_types},
    store::{Scope, Store},
};

/// Events per batch; each batch commits once.
const BATCH: i32 = 500;
/// Batches per feed and pass, so a pass ends and renews the job's lease.
const BATCHES_PER_PASS: usize = 20;

/// Replays the feeds into the generation being rebuilt.
#[derive(Clone)]
pub struct Rebuilder {
    store: Store,
    model: ReadModel,
    feeds: BTreeMap<&'static str, FeedSource>,
}

impl Rebuilder {
    /// A rebuilder reading `feeds` (one per source) into `store`.
    pub fn new(store: Store, model: ReadModel, feeds: BTreeMap<&'static str, FeedSource>) -> Self {
        Self {
            store,
            model,
            feeds,
        }
    }

    /// Replays up to [`BATCHES_PER_PASS`] batches of `source`; true when
    /// its end was reached.
    async fn replay(&self, source: &'static str, generation: i64) -> Result<(u64, bool), ApiError> {
        let feed = &self.feeds[source];
        let mut applied = 0;
        for _ in 0..BATCHES_PER_PASS {
            let after = self
                .store
                .rebuild_position(&self.store.resources().db.conn, source)
                .await?;
            let events = feed.read_batch(event_types(source), after, BATCH).await?;
            let Some(last) = events.last().map(|e| e.sequence) else {
                return Ok((applied, true));
            };
            let txn = self.store.resources().db.begin_write().await?;
            // Another pass (a replica that lost the job's lease) moved on.
            if self.store.model_state(&*txn).await?.rebuilding != generation
                || self.store.rebuild_position(&*txn, source).await? != after
            {
                txn.rollback().await?;
                return Ok((applied, false));
            }
            for event in &events {
                let scope = Scope {
                    generation,
                    tenant: event.tenant.clone(),
                };
                match self.model.apply(&*txn, &scope, event).await {
                    // The confirmations it raised were sent when it was live.
                    Ok(_) => {}
                    Err(error @ EffectError::Undecodable { .. }) => {
                        tracing::warn!(source, event = %event.id, %error, "rebuild skips an undecodable event");
                    }
                    Err(EffectError::Failed(error)) => {
                        txn.rollback().await?;
                        return Err(error);
                    }
                }
            }
            self.store.set_rebuild_position(&*txn, source, last).await?;
            txn.commit().await?;
            applied += events.len() as u64;
            if events.len() < BATCH as usize {
                return Ok((applied, true));
            }
        }
        Ok((applied, false))
    }

    /// Makes the new generation live if every feed's live consumer stands
    /// where the rebuild does; false when the live side moved on first.
    async fn try_go_live(&self) -> Result<bool, ApiError> {
        let txn = self.store.resources().db.begin_write().await?;
        let state = self.store.model_state(&*txn).await?;
        for source in self.feeds.keys() {
            let position = self.store.rebuild_position(&*txn, source).await?;
            if replay::hand_over(&*txn, source, position).await? != position {
                txn.rollback().await?;
                return Ok(false);
            }
        }
        self.store.go_live(&*txn, &state).await?;
        txn.commit().await?;
        tracing::info!(generation = state.rebuilding, "rebuilt read model is live");
        self.store.drop_old_generations(state.rebuilding).await?;
        Ok(true)
    }
}

#[tonic::async_trait]
impl Job for Rebuilder {
    async fn run_once(&self) -> Result<u64, ApiError> {
        let state = self
            .store
            .model_state(&self.store.resources().db.conn)
            .await?;
        if state.rebuilding == 0 {
            return Ok(0);
        }
        let mut applied = 0;
        let mut caught_up = true;
        for source in self.feeds.keys().copied() {
            let (count, done) = self.replay(source, state.rebuilding).await?;
            applied += count;
            caught_up &= done;
        }
        if caught_up {
            self.try_go_live().await?;
        }
        Ok(applied)
    }
}
