//! One active consumer per (service, source) across every replica sharing a
//! database: a lease row that its holder renews every [`RENEW_EVERY`] and that
//! another replica may take once it has run out ([`TTL`]). A replica that dies
//! or loses its database stops renewing, so another takes over within
//! `TTL` plus one [`POLL_EVERY`] (under 10 s). Exactly-once does not rest on
//! the lease (the cursor is moved forward only, in the effect's transaction);
//! the lease keeps one replica at work so events apply in order.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};

use super::tables::lease;
use crate::db::Database;

/// How long a lease lasts without renewal.
pub const TTL: Duration = Duration::from_secs(6);
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How often a replica without it checks whether it ran out.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// One replica's claim on one consumer's lease.
#[derive(Clone)]
pub struct Lease {
    db: Database,
    consumer: String,
    holder: String,
    excludes: Option<Exclusion>,
}

/// Leases that may not be live while this one is taken. A consumer's own
/// lease (the built-in feed) and its partitions' (JetStream) exclude each
/// other, so while a suite is switched, replicas still on the old transport
/// and those on the new never apply events at the same time.
#[derive(Clone, Debug)]
pub enum Exclusion {
    /// The consumer's own lease, "contacts" (taken by a partition's).
    Own(String),
    /// Its partitions' leases, "contacts/..." (taken by the consumer's own).
    Partitions(String),
}

impl Exclusion {
    fn consumer(&self) -> &str {
        match self {
            Self::Own(consumer) | Self::Partitions(consumer) => consumer,
        }
    }

    fn condition(&self) -> sea_orm::Condition {
        match self {
            Self::Own(consumer) => {
                sea_orm::Condition::all().add(lease::Column::Consumer.eq(consumer))
            }
            Self::Partitions(consumer) => sea_orm::Condition::all()
                .add(lease::Column::Consumer.starts_with(format!("{consumer}/"))),
        }
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn expiry() -> i64 {
    now_ms() + TTL.as_millis() as i64
}

impl Lease {
    /// The lease of `consumer` as `holder` (this replica) would hold it.
    pub fn new(db: Database, consumer: &str, holder: &str) -> Self {
        Self {
            db,
            consumer: consumer.to_owned(),
            holder: holder.to_owned(),
            excludes: None,
        }
    }

    /// This lease, taken only while none of `excluded` is live.
    pub fn excluding(mut self, excluded: Exclusion) -> Self {
        self.excludes = Some(excluded);
        self
    }

    /// Takes the lease if nobody holds it, it ran out, or this replica
    /// already holds it. A compare-and-set on the row read: of two replicas
    /// racing for it, one wins.
    pub async fn try_acquire(&self) -> Result<bool, DbErr> {
        // In a write transaction, as every write here: on SQLite a bare write
        // beside the service's own writers makes theirs fail with SQLITE_BUSY.
        let txn = self.db.begin_write().await?;
        if let Some(excluded) = &self.excludes {
            // One at a time per consumer, so two replicas cannot each see
            // the other's lease free and take their own.
            txn.serialize_on(&format!("lease:{}", excluded.consumer()))
                .await?;
            let live = lease::Entity::find()
                .filter(excluded.condition())
                .filter(lease::Column::ExpireMs.gt(now_ms()))
                .count(&*txn)
                .await?;
            if live > 0 {
                txn.rollback().await?;
                return Ok(false);
            }
        }
        let taken = self.try_acquire_in(&*txn).await?;
        if taken {
            txn.commit().await?;
        }
        Ok(taken)
    }

    async fn try_acquire_in(&self, conn: &impl sea_orm::ConnectionTrait) -> Result<bool, DbErr> {
        let current = lease::Entity::find_by_id(self.consumer.clone())
            .one(conn)
            .await?;
        let Some(current) = current else {
            let inserted = lease::Entity::insert(lease::ActiveModel {
                consumer: Set(self.consumer.clone()),
                holder: Set(self.holder.clone()),
                expire_ms: Set(expiry()),
            })
            .exec_without_returning(conn)
            .await;
            return match inserted {
                Ok(_) => Ok(true),
                // Another replica inserted it first.
                Err(error) if error.sql_err().is_some() => Ok(false),
                Err(error) => Err(error),
            };
        };
        if current.holder != self.holder && current.expire_ms > now_ms() {
            return Ok(false);
        }
        let taken = lease::Entity::update_many()
            .set(lease::ActiveModel {
                holder: Set(self.holder.clone()),
                expire_ms: Set(expiry()),
                ..Default::default()
            })
            .filter(lease::Column::Consumer.eq(&self.consumer))
            .filter(lease::Column::Holder.eq(&current.holder))
            .filter(lease::Column::ExpireMs.eq(current.expire_ms))
            .exec(conn)
            .await?;
        Ok(taken.rows_affected == 1)
    }

    /// Extends the lease; false when another replica has taken it.
    pub async fn renew(&self) -> Result<bool, DbErr> {
        let txn = self.db.begin_write().await?;
        let renewed = lease::Entity::update_many()
            .set(lease::ActiveModel {
                expire_ms: Set(expiry()),
                ..Default::default()
            })
            .filter(lease::Column::Consumer.eq(&self.consumer))
            .filter(lease::Column::Holder.eq(&self.holder))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(renewed.rows_affected == 1)
    }

    /// Resolves when the lease is lost: another replica took it, or renewing
    /// has failed for so long that it may have run out.
    pub async fn until_lost(&self) {
        let mut renewed_at = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match self.renew().await {
                Ok(true) => renewed_at = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::warn!(consumer = %self.consumer, "lease taken by another replica");
                    return;
                }
                Err(error) => {
                    tracing::warn!(consumer = %self.consumer, %error, "cannot renew the lease");
                    // Give up before it can run out, so two replicas never
                    // both believe they hold it.
                    if renewed_at.elapsed() + RENEW_EVERY >= TTL {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the lease up (on shutdown), so another replica takes over at once.
    pub async fn release(&self) -> Result<(), DbErr> {
        let txn = self.db.begin_write().await?;
        lease::Entity::update_many()
            .set(lease::ActiveModel {
                expire_ms: Set(0),
                ..Default::default()
            })
            .filter(lease::Column::Consumer.eq(&self.consumer))
            .filter(lease::Column::Holder.eq(&self.holder))
            .exec(&*txn)
            .await?;
        txn.commit().await
    }
}
