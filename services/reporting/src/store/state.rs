//! Which generation of the read model is live, and the rebuild's progress.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::OnConflict,
};

use super::{
    Store,
    entities::{model_state, rebuild_positions},
};

/// The read model's generations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelState {
    /// The live generation.
    pub generation: i64,
    /// The generation a rebuild is writing; 0 when none.
    pub rebuilding: i64,
    /// When the rebuild started.
    pub rebuild_start_time: Option<DateTime<Utc>>,
    /// When the last rebuild went live.
    pub last_rebuild_time: Option<DateTime<Utc>>,
}

impl Store {
    /// The generations, as `conn` sees them (in a consumer's transaction: as
    /// of this event).
    pub async fn model_state<C: ConnectionTrait>(&self, conn: &C) -> Result<ModelState, DbErr> {
        let row = model_state::Entity::find_by_id(1).one(conn).await?;
        Ok(row.map_or(
            ModelState {
                generation: 1,
                ..ModelState::default()
            },
            |row| ModelState {
                generation: row.generation,
                rebuilding: row.rebuilding_generation,
                rebuild_start_time: row.rebuild_start_time,
                last_rebuild_time: row.last_rebuild_time,
            },
        ))
    }

    /// Starts a rebuild into a new generation unless one runs; returns the state.
    pub async fn start_rebuild(&self) -> Result<ModelState, DbErr> {
        let txn = self.base.db.begin_write().await?;
        let state = self.model_state(&*txn).await?;
        if state.rebuilding != 0 {
            txn.rollback().await?;
            return Ok(state);
        }
        let next = state.generation + 1;
        // A rebuild abandoned half-way may have left rows in this generation.
        super::erasure::delete_generation(&*txn, super::erasure::Generations::Only(next)).await?;
        rebuild_positions::Entity::delete_many().exec(&*txn).await?;
        let now = Utc::now();
        model_state::Entity::update_many()
            .set(model_state::ActiveModel {
                rebuilding_generation: Set(next),
                rebuild_start_time: Set(Some(now)),
                ..Default::default()
            })
            .filter(model_state::Column::Id.eq(1))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(ModelState {
            rebuilding: next,
            rebuild_start_time: Some(now),
            ..state
        })
    }

    /// Deletes the generations before the live one, left by a rebuild.
    pub async fn drop_old_generations(&self, live: i64) -> Result<(), DbErr> {
        let txn = self.base.db.begin_write().await?;
        super::erasure::delete_generation(&*txn, super::erasure::Generations::Before(live)).await?;
        txn.commit().await
    }

    /// How far the rebuild has replayed `source`.
    pub async fn rebuild_position<C: ConnectionTrait>(
        &self,
        conn: &C,
        source: &str,
    ) -> Result<i64, DbErr> {
        Ok(rebuild_positions::Entity::find_by_id(source.to_owned())
            .one(conn)
            .await?
            .map_or(0, |row| row.position))
    }

    /// Records that the rebuild has replayed `source` up to `position`.
    pub async fn set_rebuild_position<C: ConnectionTrait>(
        &self,
        conn: &C,
        source: &str,
        position: i64,
    ) -> Result<(), DbErr> {
        rebuild_positions::Entity::insert(rebuild_positions::ActiveModel {
            source: Set(source.to_owned()),
            position: Set(position),
        })
        .on_conflict(
            OnConflict::column(rebuild_positions::Column::Source)
                .update_column(rebuild_positions::Column::Position)
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        Ok(())
    }

    /// Makes the rebuilt generation live, in `conn`'s transaction (which has
    /// checked that the rebuild caught up); the old one is dropped after.
    pub async fn go_live<C: ConnectionTrait>(
        &self,
        conn: &C,
        state: &ModelState,
    ) -> Result<(), DbErr> {
        model_state::Entity::update_many()
            .set(model_state::ActiveModel {
                generation: Set(state.rebuilding),
                rebuilding_generation: Set(0),
                rebuild_start_time: Set(None),
                last_rebuild_time: Set(Some(Utc::now())),
                ..Default::default()
            })
            .filter(model_state::Column::Id.eq(1))
            .exec(conn)
            .await?;
        rebuild_positions::Entity::delete_many().exec(conn).await?;
        Ok(())
    }
}

impl Store {
    /// Each live consumer's position and lag, by source. On JetStream a
    /// source's partitions ("contacts/3") each keep a cursor: the source's
    /// position is the furthest of them, its lag the largest.
    pub async fn feed_positions(&self) -> Result<Vec<(String, i64, i64)>, DbErr> {
        use crm_shared::consumer::tables::cursor;
        let mut by_source = std::collections::BTreeMap::<String, (i64, i64)>::new();
        for c in cursor::Entity::find().all(&self.base.db.conn).await? {
            let source = c.consumer.split('/').next().unwrap_or_default().to_owned();
            let entry = by_source.entry(source).or_insert((0, 0));
            entry.0 = entry.0.max(c.sequence);
            entry.1 = entry.1.max(c.lag_ms);
        }
        Ok(by_source
            .into_iter()
            .map(|(source, (position, lag_ms))| (source, position, lag_ms))
            .collect())
    }
}
