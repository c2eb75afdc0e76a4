//! Segments and lists: the groups audiences are made of.

use chrono::Utc;
use crm_shared::{
    db::{Tenant, TenantScoped},
    error::ApiError,
    idempotency::IdempotencyKey,
    store::{ListQuery, Page},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{
    Created, Store,
    entities::{list_member, mailing_list, segment},
    id_of,
};
use crate::domain::audience::{ListDraft, MailingList, Segment, SegmentDraft};

impl TryFrom<segment::Model> for Segment {
    type Error = ApiError;
    fn try_from(row: segment::Model) -> Result<Self, ApiError> {
        Ok(Self {
            id: row.id.parse().unwrap_or_default(),
            draft: SegmentDraft {
                display_name: row.display_name,
                description: row.description,
                filter: row.filter,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

fn segment_row(tenant: &Tenant, s: &Segment) -> segment::ActiveModel {
    segment::Model {
        id: s.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: s.draft.display_name.clone(),
        description: s.draft.description.clone(),
        filter: s.draft.filter.clone(),
        create_time: s.create_time,
        update_time: s.update_time,
        delete_time: s.delete_time,
        version: s.version,
    }
    .into_active_model()
    .reset_all()
}

fn list_row(tenant: &Tenant, l: &MailingList) -> mailing_list::ActiveModel {
    mailing_list::Model {
        id: l.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: l.draft.display_name.clone(),
        description: l.draft.description.clone(),
        create_time: l.create_time,
        update_time: l.update_time,
        delete_time: l.delete_time,
        version: l.version,
    }
    .into_active_model()
    .reset_all()
}

fn list_of(row: mailing_list::Model, member_count: i64) -> MailingList {
    MailingList {
        id: row.id.parse().unwrap_or_default(),
        draft: ListDraft {
            display_name: row.display_name,
            description: row.description,
        },
        member_count,
        create_time: row.create_time,
        update_time: row.update_time,
        delete_time: row.delete_time,
        version: row.version,
    }
}

impl TryFrom<mailing_list::Model> for MailingList {
    type Error = ApiError;
    /// A list without its member count, which takes a query of its own.
    fn try_from(row: mailing_list::Model) -> Result<Self, ApiError> {
        Ok(list_of(row, 0))
    }
}

impl Store {
    /// Saves a new segment; a retry with the same request id returns the first.
    pub async fn create_segment(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: SegmentDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Segment, ApiError> {
        let now = Utc::now();
        let s = Segment {
            id: Uuid::now_v7(),
            draft,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        let event = self.event("SegmentCreated", s.name(), self.payloads.segment(&s), actor);
        let row = segment_row(tenant, &s);
        match self
            .create(
                tenant,
                "CreateSegment",
                request_id.as_ref(),
                &s.name(),
                row,
                event,
            )
            .await?
        {
            Created::New => Ok(s),
            Created::Existing(name) => self.get_segment(tenant, id_of(&name)).await,
        }
    }

    /// A segment, also a deleted one.
    pub async fn get_segment(&self, tenant: &Tenant, id: Uuid) -> Result<Segment, ApiError> {
        self.base
            .find::<segment::Entity>(&self.base.db.conn, tenant, id, &format!("segments/{id}"))
            .await?
            .try_into()
    }

    /// One page of segments.
    pub async fn list_segments(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Segment>, ApiError> {
        self.base
            .list_page::<segment::Entity, Segment>(tenant, query)
            .await
    }

    /// Changes a segment with `change`, if its version is still `expected`
    /// (when given); `event` records it.
    pub async fn change_segment(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected: Option<i64>,
        change: impl FnOnce(&mut Segment) -> Result<(), ApiError>,
        event: &'static str,
    ) -> Result<Segment, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut s: Segment = self
            .base
            .find::<segment::Entity>(&*txn, tenant, id, &format!("segments/{id}"))
            .await?
            .try_into()?;
        crm_shared::store::check_version(&s.name(), expected, s.version)?;
        let stored = s.version;
        change(&mut s)?;
        s.version = stored + 1;
        s.update_time = Utc::now();
        self.base
            .save_versioned::<segment::Entity>(
                &txn,
                tenant,
                &s.name(),
                id,
                stored,
                segment_row(tenant, &s),
            )
            .await?;
        let e = self.event(event, s.name(), self.payloads.segment(&s), actor);
        self.base.commit(txn, tenant, vec![e]).await?;
        Ok(s)
    }

    /// Live segments by name; INVALID_ARGUMENT naming `field` for any that
    /// is missing or deleted.
    pub async fn live_segments(
        &self,
        tenant: &Tenant,
        names: &[String],
        field: &str,
    ) -> Result<Vec<Segment>, ApiError> {
        let mut found = Vec::new();
        for name in names {
            let row = segment::Entity::find_in(tenant)
                .filter(segment::Column::Id.eq(id_of(name).to_string()))
                .filter(segment::Column::DeleteTime.is_null())
                .one(&self.base.db.conn)
                .await?
                .ok_or_else(|| ApiError::invalid(field, format!("{name} does not exist")))?;
            found.push(row.try_into()?);
        }
        Ok(found)
    }

    /// Saves a new list; a retry with the same request id returns the first.
    pub async fn create_list(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: ListDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<MailingList, ApiError> {
        let now = Utc::now();
        let l = MailingList {
            id: Uuid::now_v7(),
            draft,
            member_count: 0,
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        };
        let event = self.event(
            "MailingListCreated",
            l.name(),
            self.payloads.mailing_list(&l),
            actor,
        );
        let row = list_row(tenant, &l);
        match self
            .create(
                tenant,
                "CreateMailingList",
                request_id.as_ref(),
                &l.name(),
                row,
                event,
            )
            .await?
        {
            Created::New => Ok(l),
            Created::Existing(name) => self.get_list(tenant, id_of(&name)).await,
        }
    }

    /// A list with its member count, also a deleted one.
    pub async fn get_list(&self, tenant: &Tenant, id: Uuid) -> Result<MailingList, ApiError> {
        let row = self
            .base
            .find::<mailing_list::Entity>(
                &self.base.db.conn,
                tenant,
                id,
                &format!("mailingLists/{id}"),
            )
            .await?;
        let count = self.member_count(tenant, id).await?;
        Ok(list_of(row, count))
    }

    async fn member_count(&self, tenant: &Tenant, id: Uuid) -> Result<i64, ApiError> {
        let count = list_member::Entity::find_in(tenant)
            .filter(list_member::Column::ListId.eq(id.to_string()))
            .count(&self.base.db.conn)
            .await?;
        Ok(i64::try_from(count).unwrap_or(i64::MAX))
    }

    /// One page of lists with their member counts.
    pub async fn list_lists(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<MailingList>, ApiError> {
        let mut page = self
            .base
            .list_page::<mailing_list::Entity, MailingList>(tenant, query)
            .await?;
        for list in &mut page.items {
            list.member_count = self.member_count(tenant, list.id).await?;
        }
        Ok(page)
    }

    /// Soft-deletes a list (its members stay, for an undelete to come).
    pub async fn delete_list(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
    ) -> Result<MailingList, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let row = self
            .base
            .find::<mailing_list::Entity>(&*txn, tenant, id, &format!("mailingLists/{id}"))
            .await?;
        let mut l = list_of(row, 0);
        if l.delete_time.is_none() {
            let stored = l.version;
            l.delete_time = Some(Utc::now());
            l.update_time = Utc::now();
            l.version += 1;
            self.base
                .save_versioned::<mailing_list::Entity>(
                    &txn,
                    tenant,
                    &l.name(),
                    id,
                    stored,
                    list_row(tenant, &l),
                )
                .await?;
            let e = self.event(
                "MailingListDeleted",
                l.name(),
                self.payloads.mailing_list(&l),
                actor,
            );
            self.base.commit(txn, tenant, vec![e]).await?;
        }
        self.get_list(tenant, id).await
    }

    /// A live list, or NOT_FOUND naming it.
    pub async fn live_list(&self, tenant: &Tenant, id: Uuid) -> Result<MailingList, ApiError> {
        let l = self.get_list(tenant, id).await?;
        if l.delete_time.is_some() {
            return Err(ApiError::NotFound(l.name()));
        }
        Ok(l)
    }

    /// Live lists by name; INVALID_ARGUMENT naming `field` for any that is
    /// missing or deleted.
    pub async fn check_lists(
        &self,
        tenant: &Tenant,
        names: &[String],
        field: &str,
    ) -> Result<(), ApiError> {
        for name in names {
            match self.live_list(tenant, id_of(name)).await {
                Ok(_) => {}
                Err(ApiError::NotFound(_)) => {
                    return Err(ApiError::invalid(field, format!("{name} does not exist")));
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// Adds `contacts` to a list; how many were new.
    pub async fn add_members(
        &self,
        tenant: &Tenant,
        id: Uuid,
        contacts: &[String],
    ) -> Result<i64, ApiError> {
        self.live_list(tenant, id).await?;
        let txn = self.base.db.begin_write().await?;
        let before = list_member::Entity::find_in(tenant)
            .filter(list_member::Column::ListId.eq(id.to_string()))
            .count(&*txn)
            .await?;
        let now = Utc::now();
        for contact in contacts {
            let row = list_member::Model {
                tenant: tenant.as_str().to_owned(),
                list_id: id.to_string(),
                contact: contact.clone(),
                add_time: now,
            };
            list_member::Entity::insert(row.into_active_model())
                .on_conflict_do_nothing_on([
                    list_member::Column::Tenant,
                    list_member::Column::ListId,
                    list_member::Column::Contact,
                ])
                .exec(&*txn)
                .await?;
        }
        let after = list_member::Entity::find_in(tenant)
            .filter(list_member::Column::ListId.eq(id.to_string()))
            .count(&*txn)
            .await?;
        txn.commit().await?;
        Ok(i64::try_from(after.saturating_sub(before)).unwrap_or(i64::MAX))
    }

    /// Removes `contacts` from a list; how many were members.
    pub async fn remove_members(
        &self,
        tenant: &Tenant,
        id: Uuid,
        contacts: &[String],
    ) -> Result<i64, ApiError> {
        self.live_list(tenant, id).await?;
        let txn = self.base.db.begin_write().await?;
        let removed = list_member::Entity::delete_many()
            .filter(list_member::Column::Tenant.eq(tenant.as_str()))
            .filter(list_member::Column::ListId.eq(id.to_string()))
            .filter(list_member::Column::Contact.is_in(contacts.to_vec()))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(i64::try_from(removed.rows_affected).unwrap_or(i64::MAX))
    }

    /// Up to `limit` members of a list after the first `offset`, oldest first.
    pub async fn list_members(
        &self,
        tenant: &Tenant,
        id: Uuid,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<list_member::Model>, ApiError> {
        self.get_list(tenant, id).await?;
        Ok(list_member::Entity::find_in(tenant)
            .filter(list_member::Column::ListId.eq(id.to_string()))
            .order_by_asc(list_member::Column::AddTime)
            .order_by_asc(list_member::Column::Contact)
            .offset(offset)
            .limit(limit)
            .all(&self.base.db.conn)
            .await?)
    }

    /// Every member of the lists named (`mailingLists/{id}`), oldest first:
    /// of live lists only, unless `with_deleted` (an exclusion keeps
    /// excluding the members of a list deleted since).
    pub async fn list_members_of(
        &self,
        tenant: &Tenant,
        names: &[String],
        with_deleted: bool,
    ) -> Result<Vec<String>, ApiError> {
        let ids: Vec<Uuid> = names.iter().map(|n| id_of(n)).collect();
        let mut lists = mailing_list::Entity::find_in(tenant)
            .select_only()
            .column(mailing_list::Column::Id)
            .filter(mailing_list::Column::Id.is_in(ids.iter().map(Uuid::to_string)));
        if !with_deleted {
            lists = lists.filter(mailing_list::Column::DeleteTime.is_null());
        }
        let lists: Vec<String> = lists.into_tuple().all(&self.base.db.conn).await?;
        if lists.is_empty() {
            return Ok(Vec::new());
        }
        Ok(list_member::Entity::find_in(tenant)
            .select_only()
            .column(list_member::Column::Contact)
            .filter(list_member::Column::ListId.is_in(lists))
            .order_by_asc(list_member::Column::AddTime)
            .into_tuple::<String>()
            .all(&self.base.db.conn)
            .await?)
    }
}
