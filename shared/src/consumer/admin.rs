//! `crm.events.v1.ConsumerAdminService`: where a service's consumers stand
//! and what they parked, with retry and discard. Admins see their own
//! tenant's parked events; the service identity every tenant's.

use std::sync::Arc;

use crm_proto::events::{
    Consumer as ConsumerMessage, ConsumerPartition, DiscardParkedEventRequest,
    DiscardParkedEventResponse, Event, ListConsumersRequest, ListConsumersResponse,
    ListParkedEventsRequest, ListParkedEventsResponse, ParkedEvent, RetryParkedEventRequest,
    RetryParkedEventResponse, consumer_admin_service_server::ConsumerAdminService,
};
use prost::Message;
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use tonic::{Request, Response, Status};

use super::{
    ConsumerCore, parked_name,
    tables::{cursor, lease, parked},
};
use crate::{
    auth::{self, Principal, Role},
    convert::to_timestamp,
    db::Database,
    error::ApiError,
    paging::{PageTokens, page_size},
};

/// The admin service over one service's consumers.
#[derive(Clone)]
pub struct ConsumerAdmin {
    db: Database,
    consumers: Arc<Vec<Arc<ConsumerCore>>>,
    page_tokens: PageTokens,
}

impl ConsumerAdmin {
    /// The admin service of `consumers`, all keeping their tables in `db`.
    pub(crate) fn new(
        db: Database,
        consumers: Vec<Arc<ConsumerCore>>,
        page_tokens: PageTokens,
    ) -> Self {
        Self {
            db,
            consumers: Arc::new(consumers),
            page_tokens,
        }
    }

    fn consumer(&self, name: &str) -> Option<&Arc<ConsumerCore>> {
        self.consumers.iter().find(|c| c.name == name)
    }

    /// The parked events the caller may see.
    fn scoped(principal: &Principal) -> Select<parked::Entity> {
        let select = parked::Entity::find();
        if principal.is_service() {
            select
        } else {
            select.filter(parked::Column::Tenant.eq(&principal.tenant))
        }
    }

    /// The parked row `name` names, within the caller's scope.
    async fn find_parked(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<(Arc<ConsumerCore>, parked::Model), ApiError> {
        let (consumer, event_id) = parse_parked_name(name)?;
        let core = self
            .consumer(consumer)
            .ok_or_else(|| ApiError::NotFound(name.to_owned()))?
            .clone();
        let row = Self::scoped(principal)
            .filter(parked::Column::Consumer.eq(consumer))
            .filter(parked::Column::EventId.eq(event_id))
            .one(&self.db.conn)
            .await?
            .ok_or_else(|| ApiError::NotFound(name.to_owned()))?;
        Ok((core, row))
    }

    async fn describe(
        &self,
        principal: &Principal,
        core: &ConsumerCore,
    ) -> Result<ConsumerMessage, ApiError> {
        let position = cursor::Entity::find_by_id(core.name.clone())
            .one(&self.db.conn)
            .await?;
        let holder = lease::Entity::find_by_id(core.name.clone())
            .one(&self.db.conn)
            .await?;
        let parked_count = Self::scoped(principal)
            .filter(parked::Column::Consumer.eq(&core.name))
            .count(&self.db.conn)
            .await?;
        let partitions = if core.on_jetstream {
            self.partitions(core).await?
        } else {
            Vec::new()
        };
        Ok(with_partitions(ConsumerMessage {
            name: format!("consumers/{}", core.name),
            source: core.name.clone(),
            position: position.as_ref().map_or(0, |c| c.sequence),
            position_time: position.as_ref().map(|c| to_timestamp(c.update_time)),
            lag_seconds: position.as_ref().map_or(0.0, |c| c.lag_ms as f64 / 1000.0),
            lease_holder: holder
                .as_ref()
                .map(|l| l.holder.clone())
                .unwrap_or_default(),
            lease_expire_time: holder
                .as_ref()
                .and_then(|l| chrono::DateTime::from_timestamp_millis(l.expire_ms))
                .map(to_timestamp),
            parked_count: parked_count as i64,
            partitions,
        }))
    }

    /// The consumer's JetStream partitions ("contacts/3"), if it ran there.
    async fn partitions(&self, core: &ConsumerCore) -> Result<Vec<ConsumerPartition>, ApiError> {
        let prefix = format!("{}/", core.name);
        let positions = cursor::Entity::find()
            .filter(cursor::Column::Consumer.starts_with(&prefix))
            .all(&self.db.conn)
            .await?;
        let holders = lease::Entity::find()
            .filter(lease::Column::Consumer.starts_with(&prefix))
            .all(&self.db.conn)
            .await?;
        let mut partitions: Vec<ConsumerPartition> = positions
            .into_iter()
            .filter_map(|c| {
                let partition = c.consumer.strip_prefix(&prefix)?.parse().ok()?;
                let holder = holders.iter().find(|l| l.consumer == c.consumer);
                Some(ConsumerPartition {
                    partition,
                    position: c.sequence,
                    position_time: Some(to_timestamp(c.update_time)),
                    stream_sequence: c.stream_sequence,
                    lag_seconds: c.lag_ms as f64 / 1000.0,
                    lease_holder: holder.map(|l| l.holder.clone()).unwrap_or_default(),
                    lease_expire_time: holder
                        .and_then(|l| chrono::DateTime::from_timestamp_millis(l.expire_ms))
                        .map(to_timestamp),
                })
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Ok(partitions)
    }
}

/// On JetStream the consumer's own position, lag and lease say nothing:
/// its partitions' furthest position and largest lag stand for it.
fn with_partitions(mut consumer: ConsumerMessage) -> ConsumerMessage {
    if consumer.partitions.is_empty() {
        return consumer;
    }
    let furthest = consumer.partitions.iter().max_by_key(|p| p.position);
    if let Some(furthest) = furthest.filter(|p| p.position > consumer.position) {
        consumer.position = furthest.position;
        consumer.position_time = furthest.position_time;
    }
    consumer.lag_seconds = consumer
        .partitions
        .iter()
        .map(|p| p.lag_seconds)
        .fold(0.0, f64::max);
    consumer.lease_holder.clear();
    consumer.lease_expire_time = None;
    consumer
}

/// Splits "consumers/{consumer}/parkedEvents/{event id}".
fn parse_parked_name(name: &str) -> Result<(&str, &str), ApiError> {
    name.strip_prefix("consumers/")
        .and_then(|rest| rest.split_once("/parkedEvents/"))
        .filter(|(consumer, id)| !consumer.is_empty() && !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            ApiError::invalid(
                "name",
                "must be consumers/{consumer}/parkedEvents/{event id}",
            )
        })
}

/// Who may see and act on a service's consumers: a tenant's admins (their
/// tenant's parked events), the service identity (all).
const OPERATORS: &[Role] = &[Role::Admin, Role::Service];

/// The consumer administration's role rules.
pub const ROLES: crate::auth::RoleRules = &[
    ("ListConsumers", OPERATORS),
    ("ListParkedEvents", OPERATORS),
    ("RetryParkedEvent", OPERATORS),
    ("DiscardParkedEvent", OPERATORS),
];

fn decode_event(row: &parked::Model) -> Result<Event, ApiError> {
    Event::decode(row.event.as_slice())
        .map_err(|e| ApiError::Internal(format!("stored parked event does not decode: {e}")))
}

#[tonic::async_trait]
impl ConsumerAdminService for ConsumerAdmin {
    async fn list_consumers(
        &self,
        request: Request<ListConsumersRequest>,
    ) -> Result<Response<ListConsumersResponse>, Status> {
        let principal = auth::principal(&request)?;
        let mut consumers = Vec::new();
        for core in self.consumers.iter() {
            consumers.push(self.describe(&principal, core).await?);
        }
        Ok(Response::new(ListConsumersResponse { consumers }))
    }

    async fn list_parked_events(
        &self,
        request: Request<ListParkedEventsRequest>,
    ) -> Result<Response<ListParkedEventsResponse>, Status> {
        let principal = auth::principal(&request)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 50, 1000, "page_size")?;
        let mut select = Self::scoped(&principal);
        if !request.parent.is_empty() {
            let consumer = request
                .parent
                .strip_prefix("consumers/")
                .filter(|c| !c.is_empty() && !c.contains('/'))
                .ok_or_else(|| ApiError::invalid("parent", "must be consumers/{consumer}"))?;
            select = select.filter(parked::Column::Consumer.eq(consumer));
        }
        let fingerprint = format!("parked\0{}\0{}", request.parent, principal.tenant);
        let offset = self
            .page_tokens
            .decode(&request.page_token, &fingerprint, "page_token")?;
        let rows = select
            .order_by_asc(parked::Column::ParkTime)
            .order_by_asc(parked::Column::Consumer)
            .order_by_asc(parked::Column::EventId)
            .offset(offset)
            .limit(limit + 1)
            .all(&self.db.conn)
            .await
            .map_err(ApiError::from)?;
        let more = rows.len() as u64 > limit;
        let mut parked_events = Vec::new();
        for row in rows.into_iter().take(limit as usize) {
            parked_events.push(ParkedEvent {
                name: parked_name(&row),
                event: Some(decode_event(&row)?),
                error: row.error,
                attempts: row.attempts,
                park_time: Some(to_timestamp(row.park_time)),
                last_attempt_time: Some(to_timestamp(row.last_attempt_time)),
            });
        }
        let next_page_token = if more {
            self.page_tokens
                .encode(&fingerprint, offset + parked_events.len() as u64)
        } else {
            String::new()
        };
        Ok(Response::new(ListParkedEventsResponse {
            parked_events,
            next_page_token,
        }))
    }

    async fn retry_parked_event(
        &self,
        request: Request<RetryParkedEventRequest>,
    ) -> Result<Response<RetryParkedEventResponse>, Status> {
        let principal = auth::principal(&request)?;
        let (core, row) = self
            .find_parked(&principal, &request.get_ref().name)
            .await?;
        let event = decode_event(&row)?;
        core.retry(&row, &event).await?;
        Ok(Response::new(RetryParkedEventResponse {
            event: Some(event),
        }))
    }

    async fn discard_parked_event(
        &self,
        request: Request<DiscardParkedEventRequest>,
    ) -> Result<Response<DiscardParkedEventResponse>, Status> {
        let principal = auth::principal(&request)?;
        let name = &request.get_ref().name;
        let (core, row) = self.find_parked(&principal, name).await?;
        let removed = parked::Entity::delete_many()
            .filter(parked::Column::Consumer.eq(&row.consumer))
            .filter(parked::Column::EventId.eq(&row.event_id))
            .exec(&self.db.conn)
            .await
            .map_err(ApiError::from)?;
        if removed.rows_affected == 0 {
            return Err(ApiError::NotFound(name.clone()).into());
        }
        tracing::info!(consumer = %row.consumer, event = %row.event_id, by = %principal.subject, "parked event discarded");
        core.report_parked().await;
        Ok(Response::new(DiscardParkedEventResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_parked_name;

    #[test]
    fn parked_event_names_are_parsed_strictly() {
        assert_eq!(
            parse_parked_name("consumers/contacts/parkedEvents/0190").unwrap(),
            ("contacts", "0190")
        );
        for bad in [
            "",
            "consumers/contacts",
            "consumers//parkedEvents/x",
            "consumers/contacts/parkedEvents/",
            "consumers/contacts/parkedEvents/a/b",
            "parkedEvents/x",
        ] {
            assert!(parse_parked_name(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
