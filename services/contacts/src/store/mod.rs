//! The contacts database: SeaORM entities and every query, each scoped by
//! tenant through [`TenantScoped::find_in`] or an explicit tenant filter.
//! Every change writes its events to the outbox in the same transaction.

mod activities;
mod companies;
mod contacts;
pub mod entities;

use std::sync::Arc;

use crm_shared::{
    db::{Database, Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    idempotency::{self, Recorded},
    outbox::{self, CommitSignal, NewEvent},
};
use sea_orm::{
    ColumnTrait, Condition, FromQueryResult, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

pub use activities::{FILTER as ACTIVITY_FILTER, ORDER_BY as ACTIVITY_ORDER};
pub use companies::{FILTER as COMPANY_FILTER, ORDER_BY as COMPANY_ORDER};
pub use contacts::{FILTER as CONTACT_FILTER, ImportOutcome, ImportRow, ORDER_BY as CONTACT_ORDER};

use crate::domain::{Activity, Company, Contact};

/// The proto package events are named in.
const PACKAGE: &str = "crm.contacts.v1";

/// Encodes event payloads; implemented by the API layer, which knows the
/// protobuf messages, so the store does not.
pub trait EventPayloads: Send + Sync {
    /// A contact as it is after a change.
    fn contact(&self, contact: &Contact) -> prost_types::Any;
    /// A company after a change.
    fn company(&self, company: &Company) -> prost_types::Any;
    /// An activity after a change.
    fn activity(&self, activity: &Activity) -> prost_types::Any;
    /// A merge.
    fn merged(&self, survivor: &str, merged: &[String]) -> prost_types::Any;
    /// An erasure: the name only.
    fn erased(&self, contact: &str) -> prost_types::Any;
}

/// One page of a list: the filter and order, already translated and checked.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The filter.
    pub condition: Condition,
    /// Columns and directions; the id is appended as the final tie-breaker.
    pub order: Vec<(&'static str, Order)>,
    /// Include soft-deleted rows.
    pub show_deleted: bool,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return.
    pub limit: u64,
}

/// All queries of the contacts service.
#[derive(Clone)]
pub struct Store {
    db: Database,
    signal: CommitSignal,
    payloads: Arc<dyn EventPayloads>,
}

impl Store {
    /// A store over `db` that wakes event-feed followers through `signal`.
    pub fn new(db: Database, signal: CommitSignal, payloads: Arc<dyn EventPayloads>) -> Self {
        Self {
            db,
            signal,
            payloads,
        }
    }

    /// Appends events and commits; followers of the feed are woken.
    async fn commit(
        &self,
        txn: WriteTxn,
        tenant: &Tenant,
        events: Vec<NewEvent>,
    ) -> Result<(), ApiError> {
        outbox::append(&*txn, tenant, PACKAGE, events).await?;
        txn.commit().await?;
        self.signal.notify();
        Ok(())
    }

    /// The resource an earlier request with this request id created, if any.
    async fn replayed(
        &self,
        tenant: &Tenant,
        method: &str,
        request_id: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        match request_id {
            Some(key) => Ok(idempotency::lookup(&self.db.conn, tenant, method, key).await?),
            None => Ok(None),
        }
    }

    /// Records the request id in `txn` as creating `resource`. When a
    /// concurrent request with the same id committed first, rolls `txn` back
    /// and returns the resource that request created.
    async fn claim(
        &self,
        txn: WriteTxn,
        tenant: &Tenant,
        method: &str,
        request_id: Option<&str>,
        resource: &str,
    ) -> Result<Claim, ApiError> {
        let Some(key) = request_id else {
            return Ok(Claim::Won(txn));
        };
        match idempotency::record(&*txn, tenant, method, key, resource).await? {
            Recorded::New => Ok(Claim::Won(txn)),
            Recorded::Taken => {
                // Give the connection back before reading the winner's row,
                // or concurrent losers can hold every pooled connection.
                txn.rollback().await?;
                idempotency::lookup(&self.db.conn, tenant, method, key)
                    .await?
                    .map(Claim::Lost)
                    .ok_or_else(|| {
                        ApiError::Aborted(
                            "a concurrent request with this request_id failed; retry".into(),
                        )
                    })
            }
        }
    }

    fn event(
        &self,
        name: &'static str,
        subject: String,
        payload: prost_types::Any,
        actor: &str,
    ) -> NewEvent {
        NewEvent {
            name,
            subject,
            payload,
            actor: actor.to_owned(),
        }
    }
}

/// Whether this request's idempotency key was free.
enum Claim {
    /// It was: go on in the transaction.
    Won(WriteTxn),
    /// Another request with it created this resource first.
    Lost(String),
}

/// A table of resources: tenant-scoped, soft-deletable, versioned, with
/// time-ordered ids.
pub(crate) trait ResourceTable: TenantScoped {
    /// The id column.
    const ID: Self::Column;
    /// The soft-delete time.
    const DELETE_TIME: Self::Column;
    /// The version the etag carries.
    const VERSION: Self::Column;
    /// The order of a list without `order_by`, newest first.
    const DEFAULT_ORDER: Self::Column;
}

impl Store {
    /// One page of a list and the total that match, converted to domain values.
    async fn list_page<E, T>(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<(Vec<T>, u64), ApiError>
    where
        E: ResourceTable,
        E::Model: FromQueryResult + Send + Sync,
        T: TryFrom<E::Model, Error = ApiError>,
    {
        let mut select = E::find_in(tenant).filter(query.condition);
        if !query.show_deleted {
            select = select.filter(E::DELETE_TIME.is_null());
        }
        let total = select.clone().count(&self.db.conn).await?;
        if query.order.is_empty() {
            select = select.order_by(E::DEFAULT_ORDER, Order::Desc);
        }
        for (column, order) in query.order {
            select = select.order_by(Expr::col(column), order);
        }
        let rows = select
            .order_by(E::ID, Order::Desc)
            .offset(query.offset)
            .limit(query.limit)
            .all(&self.db.conn)
            .await?;
        let items = rows
            .into_iter()
            .map(T::try_from)
            .collect::<Result<_, _>>()?;
        Ok((items, total))
    }

    /// Writes `row` over the stored one unless its version moved on since it
    /// was read (`stored_version`): then a concurrent writer won, ABORTED.
    async fn save_versioned<E: ResourceTable>(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        name: &str,
        id: Uuid,
        stored_version: i64,
        row: E::ActiveModel,
    ) -> Result<(), ApiError> {
        let updated = E::update_many()
            .set(row)
            .filter(E::TENANT.eq(tenant.as_str()))
            .filter(E::ID.eq(id.to_string()))
            .filter(E::VERSION.eq(stored_version))
            .exec(&**txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(stale(name));
        }
        Ok(())
    }
}

/// ABORTED for a stale etag.
fn stale(name: &str) -> ApiError {
    ApiError::Aborted(format!(
        "{name} was changed by someone else; read it again and retry"
    ))
}

/// Checks an expected version (from an etag) against the stored one.
fn check_version(name: &str, expected: Option<i64>, stored: i64) -> Result<(), ApiError> {
    match expected {
        Some(expected) if expected != stored => Err(stale(name)),
        _ => Ok(()),
    }
}
