//! What every service's store does the same way: tenant-scoped resource
//! tables with soft delete and versions, one page of a list, optimistic
//! concurrency, idempotent creates, and committing with the outbox.
//!
//! A service's own store holds a [`Resources`] and adds its queries.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, FromQueryResult, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, sea_query::Expr,
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use uuid::Uuid;

use crate::{
    db::{Database, Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    filter::{FilterSchema, parse_filter, parse_order_by},
    idempotency::{self, IdempotencyKey, Recorded},
    outbox::{self, CommitSignal, NewEvent},
    paging::{PageTokens, page_size},
};

/// A table of resources: tenant-scoped, soft-deletable, versioned, with
/// time-ordered ids.
pub trait ResourceTable: TenantScoped {
    /// The id column.
    const ID: Self::Column;
    /// The soft-delete time.
    const DELETE_TIME: Self::Column;
    /// The version the etag carries.
    const VERSION: Self::Column;
    /// The order of a list without `order_by`, newest first.
    const DEFAULT_ORDER: Self::Column;
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
    /// Where this page starts: the sort key of the previous page's last row
    /// (JSON, from the page token), or the start.
    pub after: Option<String>,
    /// Rows to return.
    pub limit: u64,
    /// Count every match as well (a second query over the whole filter).
    pub count_total: bool,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page<T> {
    /// This page's resources.
    pub items: Vec<T>,
    /// How many match in all, when the query asked.
    pub total: Option<u64>,
    /// The sort key of this page's last row, when more rows follow.
    next: Option<String>,
}

/// The list parameters of a request (AIP-132), before they are checked.
pub struct ListRequest<'a> {
    /// The resource kind, binding page tokens to it.
    pub resource: &'a str,
    /// The fields `filter` may name.
    pub schema: &'a FilterSchema,
    /// The fields `order_by` may name, with their columns.
    pub orderable: &'a [(&'static str, &'static str)],
    /// The AIP-160 filter.
    pub filter: &'a str,
    /// The AIP-132 order.
    pub order_by: &'a str,
    /// Include soft-deleted resources.
    pub show_deleted: bool,
    /// The requested page size.
    pub page_size: i32,
    /// The page token from the previous page.
    pub page_token: &'a str,
    /// Count every match into `total_size`.
    pub include_total_size: bool,
}

impl<T> Page<T> {
    /// The `total_size` of a List response: the count when it was asked
    /// for, else 0 (as the protos document).
    pub fn total_size(&self) -> i32 {
        self.total
            .map_or(0, |total| i32::try_from(total).unwrap_or(i32::MAX))
    }
}

/// A checked list request: the query and the fingerprint page tokens carry.
pub struct ListPlan {
    /// The query for this page.
    pub query: ListQuery,
    fingerprint: String,
}

impl ListPlan {
    /// Checks `request`: page size, filter, order and page token, each
    /// INVALID_ARGUMENT naming its field when wrong.
    pub fn new(tokens: &PageTokens, request: ListRequest<'_>) -> Result<Self, ApiError> {
        let limit = page_size(request.page_size, 50, 1000, "page_size")?;
        let condition = parse_filter(request.schema, request.filter)
            .map_err(|e| ApiError::invalid("filter", e.message))?;
        let order = parse_order_by(request.orderable, request.order_by)
            .map_err(|e| ApiError::invalid("order_by", e.message))?;
        let fingerprint = format!(
            "{}\0{}\0{}\0{}",
            request.resource, request.filter, request.order_by, request.show_deleted
        );
        let after = tokens.decode_payload(request.page_token, &fingerprint, "page_token")?;
        Ok(Self {
            query: ListQuery {
                condition,
                order,
                show_deleted: request.show_deleted,
                after,
                limit,
                count_total: request.include_total_size,
            },
            fingerprint,
        })
    }

    /// The token of the page after `page`, empty when it was the last.
    pub fn next_page_token<T>(&self, tokens: &PageTokens, page: &Page<T>) -> String {
        page.next
            .as_deref()
            .map(|key| tokens.encode_payload(&self.fingerprint, key))
            .unwrap_or_default()
    }
}

/// Whether this request's idempotency key was free.
pub enum Claim {
    /// It was: go on in the transaction.
    Won(WriteTxn),
    /// Another request with it created this resource first.
    Lost(String),
}

/// The database of one service with its outbox.
#[derive(Clone)]
pub struct Resources {
    /// The pool.
    pub db: Database,
    signal: CommitSignal,
    package: &'static str,
    request_ids: Arc<RequestIds>,
}

/// How long request ids are remembered, and when expired ones were last pruned.
struct RequestIds {
    window: Duration,
    /// Seconds since the Unix epoch of the last prune.
    pruned_at: AtomicU64,
}

/// Expired request ids are pruned at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

impl Resources {
    /// Resources in `db` whose events are named in `package` (`crm.sales.v1`),
    /// wake the event feed through `signal`, and remember request ids for
    /// `request_id_window`.
    pub fn new(
        db: Database,
        signal: CommitSignal,
        package: &'static str,
        request_id_window: Duration,
    ) -> Self {
        Self {
            db,
            signal,
            package,
            request_ids: Arc::new(RequestIds {
                window: request_id_window,
                pruned_at: AtomicU64::new(0),
            }),
        }
    }

    /// Deletes expired request ids in the background, at most every
    /// [`PRUNE_EVERY`]; each call that records a key may start it.
    fn prune_request_ids_when_due(&self) {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let last = self.request_ids.pruned_at.load(Ordering::Relaxed);
        if now < last + PRUNE_EVERY.as_secs()
            || self
                .request_ids
                .pruned_at
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let (db, window) = (self.db.clone(), self.request_ids.window);
        tokio::spawn(async move {
            // In a write transaction: a bare write beside the process's own
            // writers would make theirs fail with SQLITE_BUSY.
            let pruned = async {
                let txn = db.begin_write().await?;
                let pruned = idempotency::prune(&*txn, window).await?;
                txn.commit().await?;
                Ok::<_, sea_orm::DbErr>(pruned)
            };
            match pruned.await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "expired request ids pruned"),
                Err(error) => tracing::warn!(%error, "could not prune expired request ids"),
            }
        });
    }

    /// Records the events in the audit log, appends them to the outbox and
    /// commits; followers of the feed are woken.
    pub async fn commit(
        &self,
        txn: WriteTxn,
        tenant: &Tenant,
        events: Vec<NewEvent>,
    ) -> Result<(), ApiError> {
        self.commit_with(txn, tenant, Vec::new(), events).await
    }

    /// [`Store::commit`] with the resource's own `writes` (statements that
    /// read nothing the others write, such as a new resource's rows) run
    /// with the audit entries and the first events through
    /// [`crate::db::execute_together`]: a create's writes cost one round trip
    /// (the reads before them still cost theirs), up to its cap on values.
    pub async fn commit_with(
        &self,
        txn: WriteTxn,
        tenant: &Tenant,
        mut writes: Vec<Statement>,
        events: Vec<NewEvent>,
    ) -> Result<(), ApiError> {
        let backend = txn.get_database_backend();
        writes.extend(crate::audit::record_statements(&*txn, tenant, self.package, &events).await?);
        let mut appends = outbox::append_statements(backend, tenant, self.package, events)?;
        // Each append numbers its events after the ones before it: only
        // the first joins the others.
        let later = appends.split_off(appends.len().min(1));
        writes.extend(appends);
        crate::db::execute_together(&*txn, writes).await?;
        for append in later {
            txn.execute_raw(append).await?;
        }
        txn.commit().await?;
        self.signal.notify();
        Ok(())
    }

    /// The resource an earlier request with this key created, if any;
    /// INVALID_ARGUMENT naming `request_id` when that request was a different one.
    pub async fn replayed(
        &self,
        tenant: &Tenant,
        method: &str,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<String>, ApiError> {
        match key {
            Some(key) => {
                idempotency::lookup(&self.db.conn, tenant, method, key, self.request_ids.window)
                    .await
            }
            None => Ok(None),
        }
    }

    /// Records the request id in `txn` as creating `resource`. When a
    /// concurrent request with the same id committed first, rolls `txn` back
    /// and returns the resource that request created.
    pub async fn claim(
        &self,
        txn: WriteTxn,
        tenant: &Tenant,
        method: &str,
        key: Option<&IdempotencyKey>,
        resource: &str,
    ) -> Result<Claim, ApiError> {
        let Some(key) = key else {
            return Ok(Claim::Won(txn));
        };
        self.prune_request_ids_when_due();
        match idempotency::record(&*txn, tenant, method, key, resource).await? {
            Recorded::New => Ok(Claim::Won(txn)),
            Recorded::Taken => {
                // Give the connection back before reading the winner's row,
                // or concurrent losers can hold every pooled connection.
                txn.rollback().await?;
                idempotency::lookup(&self.db.conn, tenant, method, key, self.request_ids.window)
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

    /// One page of a list (and, when asked, how many match), converted to
    /// domain values. Pages are keyset pages: each starts after the previous page's
    /// last row in the list's order (the id breaks ties), so a list walked
    /// while rows are added and deleted never repeats or skips a row that
    /// existed throughout, as offsets would.
    pub async fn list_page<E, T>(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<T>, ApiError>
    where
        E: ResourceTable,
        E::Column: std::str::FromStr,
        E::Model: FromQueryResult + Send + Sync,
        T: TryFrom<E::Model, Error = ApiError>,
    {
        let mut select = E::find_in(tenant).filter(query.condition);
        if !query.show_deleted {
            select = select.filter(E::DELETE_TIME.is_null());
        }
        let total = if query.count_total {
            Some(select.clone().count(&self.db.conn).await?)
        } else {
            None
        };
        let mut sort: Vec<(E::Column, Order)> = Vec::new();
        if query.order.is_empty() {
            sort.push((E::DEFAULT_ORDER, Order::Desc));
        }
        for (name, order) in query.order {
            let column = name.parse::<E::Column>().map_err(|_| {
                ApiError::Internal(format!("{name} is not a column of the listed table"))
            })?;
            sort.push((column, order));
        }
        sort.push((E::ID, Order::Desc));
        if let Some(after) = &query.after {
            select = select.filter(keyset::after::<E>(&sort, after)?);
        }
        for (column, order) in &sort {
            // NULLs last whatever the direction, the same on both backends.
            if column.def().is_null() {
                let is_null = sea_orm::sea_query::ExprTrait::is_null(Expr::col(*column));
                select = select.order_by(is_null, Order::Asc);
            }
            select = select.order_by(*column, order.clone());
        }
        let mut rows = select.limit(query.limit + 1).all(&self.db.conn).await?;
        let next = if rows.len() as u64 > query.limit {
            rows.truncate(query.limit as usize);
            rows.last()
                .map(|row| keyset::key_of::<E>(&sort, row))
                .transpose()?
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(T::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, total, next })
    }

    /// Writes `row` over the stored one unless its version moved on since it
    /// was read (`stored_version`): then a concurrent writer won, ABORTED.
    pub async fn save_versioned<E: ResourceTable>(
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

    /// The row of `E` with `id` in `tenant`, or NOT_FOUND naming `name`.
    pub async fn find<E>(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        tenant: &Tenant,
        id: Uuid,
        name: &str,
    ) -> Result<E::Model, ApiError>
    where
        E: ResourceTable,
        E::Model: FromQueryResult + Send + Sync,
    {
        E::find_in(tenant)
            .filter(E::ID.eq(id.to_string()))
            .one(conn)
            .await?
            .ok_or_else(|| ApiError::NotFound(name.to_owned()))
    }
}

/// ABORTED for a stale etag.
pub fn stale(name: &str) -> ApiError {
    ApiError::Aborted(format!(
        "{name} was changed by someone else; read it again and retry"
    ))
}

/// Checks an expected version (from an etag) against the stored one.
pub fn check_version(name: &str, expected: Option<i64>, stored: i64) -> Result<(), ApiError> {
    match expected {
        Some(expected) if expected != stored => Err(stale(name)),
        _ => Ok(()),
    }
}

/// Keyset pages: a row's sort key as JSON (what page tokens carry), and the
/// condition "sorts after this key" (NULLs last).
mod keyset {
    use sea_orm::{
        ColumnTrait, ColumnType, Condition, EntityTrait, ModelTrait, Order, Value,
        sea_query::{Expr, ExprTrait, SimpleExpr},
    };
    use serde_json::Value as Json;

    use crate::{error::ApiError, paging::invalid_token};

    /// The sort key of `row`: one JSON value per sort column.
    pub fn key_of<E: EntityTrait>(
        sort: &[(E::Column, Order)],
        row: &E::Model,
    ) -> Result<String, ApiError> {
        let values = sort
            .iter()
            .map(|(column, _)| to_json(row.get(*column)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Json::Array(values).to_string())
    }

    /// Rows that sort after `key` in `sort`: for some column k, equal on every
    /// column before k and after the key's value on k.
    pub fn after<E: EntityTrait>(
        sort: &[(E::Column, Order)],
        key: &str,
    ) -> Result<Condition, ApiError> {
        let values: Vec<Json> =
            serde_json::from_str(key).map_err(|_| invalid_token("page_token"))?;
        if values.len() != sort.len() {
            return Err(invalid_token("page_token"));
        }
        let mut any = Condition::any();
        for k in 0..sort.len() {
            let (column, order) = &sort[k];
            let Some(beyond) = beyond(*column, order, &values[k])? else {
                // Nothing sorts after a NULL but rows tied on it, which the
                // later columns decide.
                continue;
            };
            let mut all = Condition::all();
            for j in 0..k {
                all = all.add(equal(sort[j].0, &values[j])?);
            }
            any = any.add(all.add(beyond));
        }
        // The same rows, with the first column's bound stated on its own so
        // an index on it is scanned from the key on: the 1,000th page costs
        // what the first does (the OR above alone is no index range).
        let (first, order) = &sort[0];
        if !first.def().is_null()
            && let Some(value) = from_json(*first, &values[0])?
        {
            let from = match order {
                Order::Desc => Expr::col(*first).lte(value),
                _ => Expr::col(*first).gte(value),
            };
            return Ok(Condition::all().add(from).add(any));
        }
        Ok(any)
    }

    fn equal<C: ColumnTrait>(column: C, value: &Json) -> Result<SimpleExpr, ApiError> {
        Ok(match from_json(column, value)? {
            None => Expr::col(column).is_null(),
            Some(value) => Expr::col(column).eq(value),
        })
    }

    fn beyond<C: ColumnTrait>(
        column: C,
        order: &Order,
        value: &Json,
    ) -> Result<Option<SimpleExpr>, ApiError> {
        let Some(value) = from_json(column, value)? else {
            return Ok(None);
        };
        let past = match order {
            Order::Desc => Expr::col(column).lt(value),
            _ => Expr::col(column).gt(value),
        };
        Ok(Some(if column.def().is_null() {
            past.or(Expr::col(column).is_null())
        } else {
            past
        }))
    }

    fn to_json(value: Value) -> Result<Json, ApiError> {
        Ok(match value {
            Value::String(text) => text.map_or(Json::Null, Json::String),
            Value::BigInt(n) => n.map_or(Json::Null, Json::from),
            Value::Int(n) => n.map_or(Json::Null, Json::from),
            Value::SmallInt(n) => n.map_or(Json::Null, Json::from),
            Value::Bool(b) => b.map_or(Json::Null, Json::from),
            Value::ChronoDateTimeUtc(time) => time.map_or(Json::Null, |t| {
                Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            }),
            other => {
                return Err(ApiError::Internal(format!(
                    "cannot page by a column holding {other:?}"
                )));
            }
        })
    }

    /// The column's value for `value`; `None` for NULL.
    fn from_json<C: ColumnTrait>(column: C, value: &Json) -> Result<Option<Value>, ApiError> {
        if value.is_null() {
            return Ok(None);
        }
        let bad = || invalid_token("page_token");
        let value = match column.def().get_column_type() {
            ColumnType::BigInteger => Value::from(value.as_i64().ok_or_else(bad)?),
            ColumnType::Integer => {
                Value::from(i32::try_from(value.as_i64().ok_or_else(bad)?).map_err(|_| bad())?)
            }
            ColumnType::SmallInteger => {
                Value::from(i16::try_from(value.as_i64().ok_or_else(bad)?).map_err(|_| bad())?)
            }
            ColumnType::Boolean => Value::from(value.as_bool().ok_or_else(bad)?),
            ColumnType::TimestampWithTimeZone => {
                let text = value.as_str().ok_or_else(bad)?;
                let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| bad())?;
                Value::from(time.with_timezone(&chrono::Utc))
            }
            _ => Value::from(value.as_str().ok_or_else(bad)?.to_owned()),
        };
        Ok(Some(value))
    }
}
