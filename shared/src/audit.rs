//! The audit log: who changed what, when, through which call, with each
//! changed field's value before and after.
//!
//! Every write commits its events through [`crate::store::Resources::commit`],
//! which records one entry per event in the same transaction, so an entry
//! exists exactly when its change does, in every service, with nothing to
//! remember per write. An event whose payload is the resource after the change
//! (its `name` is the event's subject) is diffed against the resource as the
//! log last saw it (`audit_state`, one row per resource); any other event (a
//! merge, an erasure) is recorded without field values.
//!
//! The method and request id come from the call the write happens in
//! ([`Call`], set by the kit's guard for every RPC and by the consumer for every
//! event it applies); the trace id from the current span.
//!
//! Erasure: [`forget`] removes the values a person's resources left in the log
//! and the log's copy of those resources; the entries stay (who did what, when)
//! with their field names only.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use crm_proto::audit::{
    AuditEntry, FieldChange, ListAuditEntriesRequest, ListAuditEntriesResponse,
    audit_log_service_server::AuditLogService,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    auth::{self, Role, RoleRules},
    convert::to_timestamp,
    db::{Database, Tenant},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema, ListSchema, parse_filter},
    outbox::NewEvent,
    paging::{PageTokens, page_size},
};

/// Fields every change moves, so listing them would say nothing.
const UNREMARKABLE: &[&str] = &["update_time", "etag"];

/// Rows per statement, well under both backends' limits on bound values.
const CHUNK: usize = 200;

/// The log's entries.
pub mod entry {
    use sea_orm::entity::prelude::*;

    /// One change to one resource.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        /// UUIDv7: ids sort by time.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The resource's tenant.
        pub tenant: String,
        /// When the change committed.
        pub time: DateTimeUtc,
        /// Who made it.
        pub actor: String,
        /// The gRPC method, or "consume <event type>".
        pub method: String,
        /// The resource name.
        pub resource: String,
        /// The event type of the change.
        pub event_type: String,
        /// JSON array of `{field, before, after}`; `[]` once erased.
        pub changes: String,
        /// JSON array of the changed fields' names (what filters match).
        pub changed_fields: String,
        /// The call's request id.
        pub request_id: String,
        /// The call's trace id.
        pub trace_id: String,
        /// The values were erased with the resource's person.
        pub erased: bool,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Each resource as the log last saw it, to diff the next change against.
pub mod state {
    use sea_orm::entity::prelude::*;

    /// One resource's last recorded state.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_state")]
    pub struct Model {
        /// The resource's tenant.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant: String,
        /// The resource name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub resource: String,
        /// The resource in proto JSON.
        pub state: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The call a write happens in, as the audit log names it.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// The gRPC path, or "consume <event type>".
    pub method: String,
    /// The request id (`x-request-id`), or the applied event's id.
    pub request_id: String,
}

tokio::task_local! {
    static CALL: Call;
}

impl Call {
    /// The call the current task runs for; empty outside one.
    pub fn current() -> Self {
        CALL.try_with(Clone::clone).unwrap_or_default()
    }

    /// Runs `work` as part of this call: the writes it makes name it. A task
    /// spawned from a call runs outside it unless its future is wrapped too.
    pub fn scope<F: Future>(self, work: F) -> tokio::task::futures::TaskLocalFuture<Self, F> {
        CALL.scope(self, work)
    }
}

/// One field's change, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The proto field name.
    pub field: String,
    /// Its value before; `None` when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Json>,
    /// Its value after; `None` when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Json>,
}

/// The fields that differ between two states of a resource, in name order,
/// without the ones every change moves.
pub fn diff(before: Option<&Map<String, Json>>, after: Option<&Map<String, Json>>) -> Vec<Change> {
    let empty = Map::new();
    let (before, after) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
    let fields: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    fields
        .into_iter()
        .filter(|field| !UNREMARKABLE.contains(&field.as_str()))
        .filter(|field| before.get(*field) != after.get(*field))
        .map(|field| Change {
            field: field.clone(),
            before: before.get(field).cloned(),
            after: after.get(field).cloned(),
        })
        .collect()
}

/// An event payload in proto JSON with proto field names; `None` when its
/// type is not one of the suite's or it does not decode.
fn payload_json(payload: &prost_types::Any) -> Option<Map<String, Json>> {
    match crm_proto::json::any_to_json(payload) {
        Ok(Json::Object(map)) => Some(map),
        _ => None,
    }
}

/// The resource `subject` after the change a payload describes: the payload
/// itself when it is the resource, or the resource it carries (a
/// `LeadConverted` carries the lead); `None` for a payload that is neither.
fn resource_after(payload: Option<Map<String, Json>>, subject: &str) -> Option<Map<String, Json>> {
    let is_subject =
        |value: &Map<String, Json>| value.get("name").and_then(Json::as_str) == Some(subject);
    let payload = payload?;
    if is_subject(&payload) {
        return Some(payload);
    }
    payload.into_iter().find_map(|(_, value)| match value {
        Json::Object(inner) if is_subject(&inner) => Some(inner),
        _ => None,
    })
}

/// The trace id of a W3C traceparent (`00-<trace id>-<span id>-<flags>`).
fn trace_id_of(traceparent: &str) -> String {
    traceparent.split('-').nth(1).unwrap_or_default().to_owned()
}

/// Records one entry per event in `conn` (the transaction the events commit in).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    package: &str,
    events: &[NewEvent],
) -> Result<(), DbErr> {
    let statements = record_statements(conn, tenant, package, events).await?;
    crate::db::execute_together(conn, statements).await
}

/// The statements that record one entry per event (and the resources'
/// states they leave), to be run in `conn`, the transaction the events
/// commit in, which is read for the states the entries diff against. They
/// do not read one another's rows (`db::execute_together` may join them).
pub async fn record_statements<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    package: &str,
    events: &[NewEvent],
) -> Result<Vec<Statement>, DbErr> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    let call = Call::current();
    let trace_id = trace_id_of(&crate::telemetry::current_traceparent().unwrap_or_default());
    let states: Vec<Option<Map<String, Json>>> = events
        .iter()
        .map(|event| resource_after(payload_json(&event.payload), &event.subject))
        .collect();
    let tracked: Vec<String> = events
        .iter()
        .zip(&states)
        .filter(|(_, state)| state.is_some())
        .map(|(event, _)| event.subject.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // A resource's "<Kind>Created" event is its first: there is nothing to
    // read before it (most writes are creates; this saves them a query).
    let created: BTreeSet<&str> = events
        .iter()
        .filter(|event| event.name.ends_with("Created"))
        .map(|event| event.subject.as_str())
        .collect();
    let existing: Vec<String> = tracked
        .iter()
        .filter(|subject| !created.contains(subject.as_str()))
        .cloned()
        .collect();
    let mut last_seen = load_states(conn, tenant, &existing).await?;
    let now = Utc::now();
    let mut entries = Vec::with_capacity(events.len());
    for (event, state) in events.iter().zip(states) {
        let changes = match state {
            Some(after) => {
                let changes = diff(last_seen.get(&event.subject), Some(&after));
                last_seen.insert(event.subject.clone(), after);
                changes
            }
            None => Vec::new(),
        };
        let names: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        entries.push(entry::ActiveModel {
            id: Set(Uuid::now_v7().to_string()),
            tenant: Set(tenant.as_str().to_owned()),
            time: Set(now),
            actor: Set(event.actor.clone()),
            method: Set(call.method.clone()),
            resource: Set(event.subject.clone()),
            event_type: Set(format!("{package}.{}", event.name)),
            changes: Set(to_text(&changes)),
            changed_fields: Set(to_text(&names)),
            request_id: Set(call.request_id.clone()),
            trace_id: Set(trace_id.clone()),
            erased: Set(false),
        });
    }
    let mut statements = Vec::new();
    while !entries.is_empty() {
        let rest = entries.split_off(entries.len().min(CHUNK));
        statements
            .push(entry::Entity::insert_many(std::mem::replace(&mut entries, rest)).build(backend));
    }
    let states = tracked
        .into_iter()
        .filter_map(|resource| Some((resource.clone(), last_seen.remove(&resource)?)))
        .collect();
    statements.extend(state_statements(backend, tenant, states));
    Ok(statements)
}

/// Keeps the log's copy of resources changed in `conn` without an entry:
/// derived data a service rewrites on its own (lead scores), so the next
/// entry diffs against what was really there. Each payload is the resource
/// after the change, as an event would carry it.
pub async fn refresh<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    resources: Vec<(String, prost_types::Any)>,
) -> Result<(), DbErr> {
    let states = resources
        .into_iter()
        .filter_map(|(name, payload)| {
            let state = resource_after(payload_json(&payload), &name)?;
            Some((name, state))
        })
        .collect();
    let statements = state_statements(conn.get_database_backend(), tenant, states);
    crate::db::execute_together(conn, statements).await
}

/// The statements that write the log's copy of each resource, replacing
/// the one it had (each resource once: they may run as one statement).
fn state_statements(
    backend: DbBackend,
    tenant: &Tenant,
    states: Vec<(String, Map<String, Json>)>,
) -> Vec<Statement> {
    let mut rows: Vec<state::ActiveModel> = states
        .into_iter()
        .map(|(resource, state)| state::ActiveModel {
            tenant: Set(tenant.as_str().to_owned()),
            resource: Set(resource),
            state: Set(Json::Object(state).to_string()),
        })
        .collect();
    let mut statements = Vec::new();
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(CHUNK));
        statements.push(
            state::Entity::insert_many(std::mem::replace(&mut rows, rest))
                .on_conflict(
                    OnConflict::columns([state::Column::Tenant, state::Column::Resource])
                        .update_column(state::Column::State)
                        .to_owned(),
                )
                .build(backend),
        );
    }
    statements
}

fn to_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

/// The last recorded states of `resources`.
async fn load_states<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    resources: &[String],
) -> Result<HashMap<String, Map<String, Json>>, DbErr> {
    let mut states = HashMap::new();
    for chunk in resources.chunks(CHUNK) {
        let rows = state::Entity::find()
            .filter(state::Column::Tenant.eq(tenant.as_str()))
            .filter(state::Column::Resource.is_in(chunk.to_vec()))
            .all(conn)
            .await?;
        for row in rows {
            if let Ok(Json::Object(state)) = serde_json::from_str(&row.state) {
                states.insert(row.resource, state);
            }
        }
    }
    Ok(states)
}

/// Erases what the log holds of `resources` (a person's): the values of
/// their entries' changes and the log's copy of them. The entries remain,
/// marked erased, with the names of the fields that changed. Runs in the
/// erasure's transaction, before the erasure's own events are recorded, so
/// those are diffed against nothing.
pub async fn forget<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    resources: &[String],
) -> Result<(), DbErr> {
    for chunk in resources.chunks(CHUNK) {
        state::Entity::delete_many()
            .filter(state::Column::Tenant.eq(tenant.as_str()))
            .filter(state::Column::Resource.is_in(chunk.to_vec()))
            .exec(conn)
            .await?;
        entry::Entity::update_many()
            .col_expr(entry::Column::Changes, "[]".into())
            .col_expr(entry::Column::Erased, true.into())
            .filter(entry::Column::Tenant.eq(tenant.as_str()))
            .filter(entry::Column::Resource.is_in(chunk.to_vec()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// The fields a `ListAuditEntries` filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField::text("actor"),
        FilterField::text("method"),
        FilterField::text("resource"),
        FilterField::text("event_type"),
        FilterField::text("request_id"),
        FilterField::text("trace_id"),
        FilterField::new("time", FieldKind::Timestamp),
        FilterField::new("changed_fields", FieldKind::JsonStringArray),
    ],
};

/// The grammar of `ListAuditEntries` (newest first; no `order_by`).
pub const LIST_SCHEMA: ListSchema = ListSchema {
    resource: "audit_log",
    filter: &FILTER,
    order_by: &[],
};

/// Who may read the audit log: a tenant's admins, their tenant's.
pub const ROLES: RoleRules = &[("ListAuditEntries", &[Role::Admin])];

/// The `AuditLogService` of one service's log.
#[derive(Clone)]
pub struct AuditLog {
    db: Database,
    tokens: PageTokens,
}

impl AuditLog {
    /// The log in `db`, paged with `tokens`.
    pub fn new(db: Database, tokens: PageTokens) -> Self {
        Self { db, tokens }
    }

    /// One page of `tenant`'s entries matching `request`, newest first.
    async fn list(
        &self,
        tenant: &Tenant,
        request: &ListAuditEntriesRequest,
    ) -> Result<ListAuditEntriesResponse, ApiError> {
        let limit = page_size(request.page_size, 50, 1000, "page_size")?;
        let condition = parse_filter(&FILTER, &request.filter)
            .map_err(|e| ApiError::invalid("filter", e.message))?;
        let fingerprint = format!("audit\0{}", request.filter);
        let after = self
            .tokens
            .decode_payload(&request.page_token, &fingerprint, "page_token")?;
        let mut select = entry::Entity::find()
            .filter(entry::Column::Tenant.eq(tenant.as_str()))
            .filter(condition);
        if let Some(after) = after {
            select = select.filter(entry::Column::Id.lt(after));
        }
        let mut rows = select
            .order_by_desc(entry::Column::Id)
            .limit(limit + 1)
            .all(&self.db.conn)
            .await?;
        let next_page_token = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|row| self.tokens.encode_payload(&fingerprint, &row.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListAuditEntriesResponse {
            audit_entries: rows.into_iter().map(to_proto).collect(),
            next_page_token,
        })
    }
}

fn to_proto(row: entry::Model) -> AuditEntry {
    let changes: Vec<Change> = if row.erased {
        let names: Vec<String> = serde_json::from_str(&row.changed_fields).unwrap_or_default();
        names
            .into_iter()
            .map(|field| Change {
                field,
                before: None,
                after: None,
            })
            .collect()
    } else {
        serde_json::from_str(&row.changes).unwrap_or_default()
    };
    AuditEntry {
        id: row.id,
        time: Some(to_timestamp(row.time)),
        tenant: row.tenant,
        actor: row.actor,
        method: row.method,
        resource: row.resource,
        event_type: row.event_type,
        changes: changes
            .into_iter()
            .map(|change| FieldChange {
                field: change.field,
                before: change.before.as_ref().map(crate::convert::json_to_value),
                after: change.after.as_ref().map(crate::convert::json_to_value),
            })
            .collect(),
        request_id: row.request_id,
        trace_id: row.trace_id,
        erased: row.erased,
    }
}

#[tonic::async_trait]
impl AuditLogService for AuditLog {
    async fn list_audit_entries(
        &self,
        request: Request<ListAuditEntriesRequest>,
    ) -> Result<Response<ListAuditEntriesResponse>, Status> {
        let (_, tenant) = auth::admitted(&request)?;
        Ok(Response::new(self.list(&tenant, request.get_ref()).await?))
    }
}

/// The migration that creates the audit log; every service lists it.
pub mod migration {
    use sea_orm_migration::{prelude::*, schema::*};

    /// Creates `audit_log` and `audit_state`.
    #[derive(DeriveMigrationName)]
    pub struct CreateAuditLog;

    #[derive(DeriveIden)]
    enum AuditLog {
        Table,
        Id,
        Tenant,
        Time,
        Actor,
        Method,
        Resource,
        EventType,
        Changes,
        ChangedFields,
        RequestId,
        TraceId,
        Erased,
    }

    #[derive(DeriveIden)]
    enum AuditState {
        Table,
        Tenant,
        Resource,
        State,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateAuditLog {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(AuditLog::Table)
                        .if_not_exists()
                        .col(string(AuditLog::Id).primary_key())
                        .col(string(AuditLog::Tenant))
                        .col(timestamp_with_time_zone(AuditLog::Time))
                        .col(string(AuditLog::Actor))
                        .col(string(AuditLog::Method))
                        .col(string(AuditLog::Resource))
                        .col(string(AuditLog::EventType))
                        .col(text(AuditLog::Changes))
                        .col(text(AuditLog::ChangedFields))
                        .col(string(AuditLog::RequestId))
                        .col(string(AuditLog::TraceId))
                        .col(boolean(AuditLog::Erased))
                        .to_owned(),
                )
                .await?;
            // A tenant's newest entries first; one resource's history (and its erasure).
            for (name, column) in [
                ("audit_log_tenant_id", AuditLog::Id),
                ("audit_log_tenant_resource", AuditLog::Resource),
            ] {
                manager
                    .create_index(
                        Index::create()
                            .name(name)
                            .table(AuditLog::Table)
                            .col(AuditLog::Tenant)
                            .col(column)
                            .if_not_exists()
                            .to_owned(),
                    )
                    .await?;
            }
            manager
                .create_table(
                    Table::create()
                        .table(AuditState::Table)
                        .if_not_exists()
                        .col(string(AuditState::Tenant))
                        .col(string(AuditState::Resource))
                        .col(text(AuditState::State))
                        .primary_key(
                            Index::create()
                                .col(AuditState::Tenant)
                                .col(AuditState::Resource),
                        )
                        .to_owned(),
                )
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Json) -> Map<String, Json> {
        match value {
            Json::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        }
    }

    #[test]
    fn a_diff_lists_changed_added_and_removed_fields_but_not_update_time_or_etag() {
        let before = object(
            json!({"name": "contacts/1", "given_name": "Ada", "tags": ["vip"],
            "etag": "\"1\"", "update_time": "2026-01-01T00:00:00Z"}),
        );
        let after = object(json!({"name": "contacts/1", "given_name": "Ada",
            "family_name": "Lovelace", "etag": "\"2\"", "update_time": "2026-01-02T00:00:00Z"}));
        let changes = diff(Some(&before), Some(&after));
        assert_eq!(
            changes,
            vec![
                Change {
                    field: "family_name".into(),
                    before: None,
                    after: Some(json!("Lovelace"))
                },
                Change {
                    field: "tags".into(),
                    before: Some(json!(["vip"])),
                    after: None
                },
            ]
        );
    }

    #[test]
    fn a_created_resource_lists_every_field_it_has() {
        let after = object(json!({"name": "contacts/1", "given_name": "Ada"}));
        let fields: Vec<String> = diff(None, Some(&after))
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["given_name", "name"]);
    }

    #[test]
    fn payloads_of_suite_messages_read_as_proto_json_with_field_names() {
        let contact = crm_proto::contacts::Contact {
            name: "contacts/1".into(),
            given_name: "Ada".into(),
            lifecycle_stage: crm_proto::contacts::LifecycleStage::Customer as i32,
            ..Default::default()
        };
        let json = payload_json(&crate::convert::to_any(&contact)).expect("a suite message");
        assert_eq!(json["given_name"], json!("Ada"));
        assert_eq!(json["lifecycle_stage"], json!("LIFECYCLE_STAGE_CUSTOMER"));
        let unknown = prost_types::Any {
            type_url: "type.googleapis.com/no.such.Message".into(),
            value: vec![],
        };
        assert!(payload_json(&unknown).is_none());
    }

    #[test]
    fn a_payload_carrying_the_resource_is_read_as_the_resource() {
        let carried = object(json!({"lead": {"name": "leads/1", "status": "CONVERTED"},
            "contact": "contacts/2"}));
        let state = resource_after(Some(carried), "leads/1").expect("the lead it carries");
        assert_eq!(state["status"], json!("CONVERTED"));
        let merge = object(json!({"survivor": "contacts/1", "merged": ["contacts/2"]}));
        assert!(resource_after(Some(merge), "contacts/1").is_none());
    }

    #[test]
    fn the_trace_id_is_the_second_part_of_a_traceparent() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(trace_id_of(""), "");
    }
}
