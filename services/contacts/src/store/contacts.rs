//! Contact queries: CRUD, list, search candidates, duplicate evidence,
//! merge, import batches, export pages, timeline support and erasure.

use crm_shared::idempotency::IdempotencyKey;
use crm_shared::store::Page;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crm_shared::{
    db::{Tenant, TenantScoped, WriteTxn, insert_in_batches, insert_statements},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema, KeyTable},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, sea_query::Expr,
};
use uuid::Uuid;

use super::Store;
use super::entities::{activity, company, contact, contact_key, contact_row, now};
use crate::domain::{Contact, ContactDraft, Erasure};
use crm_shared::store::{Claim, ListQuery, check_version};

const LIFECYCLE_VALUES: &[(&str, &str)] = &[
    ("SUBSCRIBER", "SUBSCRIBER"),
    ("LEAD", "LEAD"),
    ("MARKETING_QUALIFIED", "MARKETING_QUALIFIED"),
    ("SALES_QUALIFIED", "SALES_QUALIFIED"),
    ("OPPORTUNITY", "OPPORTUNITY"),
    ("CUSTOMER", "CUSTOMER"),
    ("EVANGELIST", "EVANGELIST"),
    ("OTHER", "OTHER"),
];

/// The fields a contact filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        // The contact's UUID (the last part of its name): a service asks
        // whether one contact matches a filter with `(<filter>) AND id = ".."`.
        FilterField {
            name: "id",
            column: "id",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "given_name",
            column: "given_name",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "family_name",
            column: "family_name",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "display_name",
            column: "display_name",
            kind: FieldKind::Text,
        },
        // Any of the contact's addresses, not only the primary: sales looks
        // a lead's address up this way to find the person it already is.
        // Soft-deleted contacts hold no keys (they must not count as
        // duplicates), so even with show_deleted this finds live ones only.
        FilterField {
            name: "email",
            column: "id",
            kind: FieldKind::AnyKey(KeyTable {
                owner_table: "contacts",
                table: "contact_keys",
                owner: "contact_id",
                kind: "email",
                key: crm_shared::validate::email_key,
            }),
        },
        FilterField {
            name: "phone",
            column: "primary_phone",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "company",
            column: "company",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "job_title",
            column: "job_title",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "lifecycle_stage",
            column: "lifecycle_stage",
            kind: FieldKind::Enum(LIFECYCLE_VALUES),
        },
        FilterField {
            name: "owner",
            column: "owner",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "source",
            column: "source",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "tags",
            column: "tags",
            kind: FieldKind::JsonStringArray,
        },
        FilterField {
            name: "create_time",
            column: "create_time",
            kind: FieldKind::Timestamp,
        },
        FilterField {
            name: "update_time",
            column: "update_time",
            kind: FieldKind::Timestamp,
        },
    ],
};

/// The fields a contact list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[
    ("display_name", "display_name"),
    ("given_name", "given_name"),
    ("family_name", "family_name"),
    ("email", "primary_email"),
    ("lifecycle_stage", "lifecycle_stage"),
    ("create_time", "create_time"),
    ("update_time", "update_time"),
];

/// One row of an import, validated or not.
#[derive(Debug)]
pub enum ImportRow {
    /// A valid contact to create unless its email exists.
    Valid(Box<ContactDraft>),
    /// An invalid row and why.
    Invalid(String),
}

/// What became of one import row.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportOutcome {
    /// Created with this name.
    Created(String),
    /// An existing contact has one of its emails.
    Duplicate(String),
    /// Not imported.
    Failed(String),
}

fn contact_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("contacts/{id}"))
}

/// Rows of contact keys for a contact.
fn key_rows(tenant: &Tenant, id: &str, draft: &ContactDraft) -> Vec<contact_key::ActiveModel> {
    let emails = draft.email_keys().into_iter().map(|v| ("email", v));
    let phones = draft.phone_keys().into_iter().map(|v| ("phone", v));
    let mut seen = HashSet::new();
    emails
        .chain(phones)
        .filter(|key| seen.insert(key.clone()))
        .map(|(kind, value)| {
            contact_key::Model {
                tenant: tenant.as_str().to_owned(),
                kind: kind.to_owned(),
                value,
                contact_id: id.to_owned(),
            }
            .into_active_model()
            .reset_all()
        })
        .collect()
}

async fn replace_keys<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    id: &str,
    draft: Option<&ContactDraft>,
) -> Result<(), sea_orm::DbErr> {
    contact_key::Entity::delete_many()
        .filter(contact_key::Column::Tenant.eq(tenant.as_str()))
        .filter(contact_key::Column::ContactId.eq(id))
        .exec(conn)
        .await?;
    match draft {
        Some(draft) => insert_keys(conn, tenant, id, draft).await,
        None => Ok(()),
    }
}

async fn insert_keys<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    id: &str,
    draft: &ContactDraft,
) -> Result<(), sea_orm::DbErr> {
    insert_in_batches(conn, key_rows(tenant, id, draft), 2000).await
}

/// Fails with INVALID_ARGUMENT unless `company` (when set) is a live company of the tenant.
async fn check_company<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    company: &str,
    field: &str,
) -> Result<(), ApiError> {
    let Some(id) = company.strip_prefix("companies/") else {
        return Ok(());
    };
    let found = company::Entity::find_in(tenant)
        .filter(company::Column::Id.eq(id))
        .filter(company::Column::DeleteTime.is_null())
        .count(conn)
        .await?;
    if found == 0 {
        return Err(ApiError::invalid(
            field,
            format!("{company} does not exist"),
        ));
    }
    Ok(())
}

impl Store {
    async fn load_contact<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Contact, ApiError> {
        contact::Entity::find_in(tenant)
            .filter(contact::Column::Id.eq(id.to_string()))
            .one(conn)
            .await?
            .ok_or_else(|| contact_not_found(id))?
            .try_into()
    }

    /// Creates a contact; with a request id, a retry returns the first contact.
    pub async fn create_contact(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: ContactDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Contact, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateContact", request_id.as_ref())
            .await?
        {
            return self.contact_by_name(tenant, &existing).await;
        }
        let time = now();
        let contact = Contact {
            id: Uuid::now_v7(),
            draft,
            create_time: time,
            update_time: time,
            delete_time: None,
            version: 1,
            merged_into: None,
        };
        let txn = self.db.begin_write().await?;
        check_company(&*txn, tenant, &contact.draft.company, "contact.company").await?;
        let name = contact.name();
        let txn = match self
            .base
            .claim(txn, tenant, "CreateContact", request_id.as_ref(), &name)
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                return self.contact_by_name(tenant, &existing).await;
            }
        };
        // The row and its keys go with the audit entry and the event: one
        // statement on PostgreSQL.
        let backend = txn.get_database_backend();
        let mut writes = vec![
            contact::Entity::insert(
                contact_row(tenant.as_str(), &contact)
                    .into_active_model()
                    .reset_all(),
            )
            .build(backend),
        ];
        let keys = key_rows(tenant, &contact.id.to_string(), &contact.draft);
        writes.extend(insert_statements(backend, keys, 2000));
        let event = self.event(
            "ContactCreated",
            contact.name(),
            self.payloads.contact(&contact),
            actor,
        );
        self.base
            .commit_with(txn, tenant, writes, vec![event])
            .await?;
        Ok(contact)
    }

    async fn contact_by_name(&self, tenant: &Tenant, name: &str) -> Result<Contact, ApiError> {
        let id = crm_shared::convert::parse_name(name, "contacts", "name")?;
        self.load_contact(&self.db.conn, tenant, id).await
    }

    /// A contact, soft-deleted or not.
    pub async fn get_contact(&self, tenant: &Tenant, id: Uuid) -> Result<Contact, ApiError> {
        self.load_contact(&self.db.conn, tenant, id).await
    }

    /// Contacts by id, in the order asked; any missing one is NOT_FOUND.
    pub async fn batch_get_contacts(
        &self,
        tenant: &Tenant,
        ids: &[Uuid],
    ) -> Result<Vec<Contact>, ApiError> {
        let rows = contact::Entity::find_in(tenant)
            .filter(contact::Column::Id.is_in(ids.iter().map(Uuid::to_string)))
            .all(&self.db.conn)
            .await?;
        let by_id: HashMap<String, contact::Model> =
            rows.into_iter().map(|r| (r.id.clone(), r)).collect();
        ids.iter()
            .map(|id| {
                by_id
                    .get(&id.to_string())
                    .cloned()
                    .ok_or_else(|| contact_not_found(*id))?
                    .try_into()
            })
            .collect()
    }

    /// One page of contacts and the total that match.
    pub async fn list_contacts(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Contact>, ApiError> {
        self.base
            .list_page::<contact::Entity, Contact>(tenant, query)
            .await
    }

    /// Contacts after `after` (by id, which is time-ordered), for export.
    pub async fn export_page(
        &self,
        tenant: &Tenant,
        condition: Condition,
        show_deleted: bool,
        after: Option<String>,
        limit: u64,
    ) -> Result<Vec<Contact>, ApiError> {
        let mut select = contact::Entity::find_in(tenant).filter(condition);
        if !show_deleted {
            select = select.filter(contact::Column::DeleteTime.is_null());
        }
        if let Some(after) = after {
            select = select.filter(contact::Column::Id.gt(after));
        }
        let rows = select
            .order_by_asc(contact::Column::Id)
            .limit(limit)
            .all(&self.db.conn)
            .await?;
        rows.into_iter().map(Contact::try_from).collect()
    }

    /// Reads, changes and writes a contact in one transaction. `change` gets
    /// the stored contact; the write fails with ABORTED if `expected_version`
    /// is stale or a concurrent writer got in between.
    async fn change_contact(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        event: &'static str,
        change: impl FnOnce(&mut Contact) -> Result<(), ApiError>,
    ) -> Result<Contact, ApiError> {
        let txn = self.db.begin_write().await?;
        let mut contact = self.load_contact(&*txn, tenant, id).await?;
        check_version(&contact.name(), expected_version, contact.version)?;
        let previous_company = contact.draft.company.clone();
        change(&mut contact)?;
        if contact.draft.company != previous_company {
            check_company(&*txn, tenant, &contact.draft.company, "contact.company").await?;
        }
        contact.update_time = now();
        self.save_contact(&txn, tenant, &mut contact).await?;
        let keys = contact.delete_time.is_none().then_some(&contact.draft);
        replace_keys(&*txn, tenant, &id.to_string(), keys).await?;
        let event = self.event(
            event,
            contact.name(),
            self.payloads.contact(&contact),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(contact)
    }

    /// Applies `change` to the contact's fields; see [`Store::change_contact`].
    pub async fn update_contact(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        change: impl FnOnce(&mut ContactDraft) -> Result<(), ApiError>,
    ) -> Result<Contact, ApiError> {
        self.change_contact(
            tenant,
            actor,
            id,
            expected_version,
            "ContactUpdated",
            |contact| {
                if contact.delete_time.is_some() {
                    return Err(ApiError::FailedPrecondition(format!(
                        "{} is deleted; undelete it first",
                        contact.name()
                    )));
                }
                change(&mut contact.draft)
            },
        )
        .await
    }

    /// Soft-deletes a contact.
    pub async fn delete_contact(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<Contact, ApiError> {
        self.change_contact(
            tenant,
            actor,
            id,
            expected_version,
            "ContactDeleted",
            |contact| {
                if contact.delete_time.is_some() {
                    return Err(ApiError::FailedPrecondition(format!(
                        "{} is already deleted",
                        contact.name()
                    )));
                }
                contact.delete_time = Some(now());
                Ok(())
            },
        )
        .await
    }

    /// Restores a soft-deleted contact (not a merged one: it lives on in its survivor).
    pub async fn undelete_contact(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
    ) -> Result<Contact, ApiError> {
        self.change_contact(tenant, actor, id, None, "ContactUndeleted", |contact| {
            if let Some(survivor) = &contact.merged_into {
                return Err(ApiError::FailedPrecondition(format!(
                    "{} was merged into {survivor}",
                    contact.name()
                )));
            }
            if contact.delete_time.is_none() {
                return Err(ApiError::FailedPrecondition(format!(
                    "{} is not deleted",
                    contact.name()
                )));
            }
            contact.delete_time = None;
            Ok(())
        })
        .await
    }

    /// Keys (kind, value) shared by more than one live contact, with the
    /// contacts sharing each; limited to keys involving `only` when given.
    pub async fn shared_keys(
        &self,
        tenant: &Tenant,
        only: Option<Uuid>,
    ) -> Result<Vec<(String, Vec<String>)>, ApiError> {
        let mut select = contact_key::Entity::find_in(tenant);
        if let Some(id) = only {
            // Its own keys first, then their holders: as one statement with
            // `value IN (subquery)`, SQLite walked every key of the tenant.
            let own: Vec<String> = contact_key::Entity::find_in(tenant)
                .select_only()
                .column(contact_key::Column::Value)
                .filter(contact_key::Column::ContactId.eq(id.to_string()))
                .into_tuple()
                .all(&self.db.conn)
                .await?;
            select = select.filter(contact_key::Column::Value.is_in(own));
        }
        let rows = select
            .order_by_asc(contact_key::Column::Value)
            .order_by_asc(contact_key::Column::Kind)
            .all(&self.db.conn)
            .await?;
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        let mut current: Option<(String, String)> = None;
        for row in rows {
            let key = (row.kind.clone(), row.value.clone());
            if current.as_ref() != Some(&key) {
                groups.push((row.kind.clone(), Vec::new()));
                current = Some(key);
            }
            if let Some((_, members)) = groups.last_mut() {
                members.push(row.contact_id);
            }
        }
        groups.retain(|(_, members)| members.len() > 1);
        Ok(groups)
    }

    /// (id, company, display name) of live contacts that have a company
    /// (only `company`'s when given), ordered by company; the input for
    /// similar-name detection.
    pub async fn contacts_with_company(
        &self,
        tenant: &Tenant,
        company: Option<&str>,
    ) -> Result<Vec<(String, String, String)>, ApiError> {
        let mut select = contact::Entity::find_in(tenant)
            .select_only()
            .column(contact::Column::Id)
            .column(contact::Column::Company)
            .column(contact::Column::DisplayName)
            .filter(contact::Column::DeleteTime.is_null())
            .filter(contact::Column::Company.ne(""));
        if let Some(company) = company {
            select = select.filter(contact::Column::Company.eq(company));
        }
        let rows: Vec<(String, String, String)> = select
            .order_by_asc(contact::Column::Company)
            .into_tuple()
            .all(&self.db.conn)
            .await?;
        Ok(rows)
    }

    /// Writes `contact` as the next version of the one read, unless that
    /// stored version moved on meanwhile: on PostgreSQL a concurrent update
    /// can commit between a read and a write, and it must not be overwritten.
    async fn save_contact(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        contact: &mut Contact,
    ) -> Result<(), ApiError> {
        let read_version = contact.version;
        contact.version += 1;
        let row = contact_row(tenant.as_str(), contact)
            .into_active_model()
            .reset_all();
        self.base
            .save_versioned::<contact::Entity>(
                txn,
                tenant,
                &contact.name(),
                contact.id,
                read_version,
                row,
            )
            .await
    }

    /// Merges `merged` into `survivor` in one transaction.
    pub async fn merge_contacts(
        &self,
        tenant: &Tenant,
        actor: &str,
        survivor_id: Uuid,
        merged_ids: &[Uuid],
        expected_version: Option<i64>,
    ) -> Result<Contact, ApiError> {
        let txn = self.db.begin_write().await?;
        let mut survivor = self.load_contact(&*txn, tenant, survivor_id).await?;
        check_version(&survivor.name(), expected_version, survivor.version)?;
        if survivor.delete_time.is_some() {
            return Err(ApiError::FailedPrecondition(format!(
                "the survivor {} is deleted",
                survivor.name()
            )));
        }
        let merged = self.load_mergeable(&txn, tenant, merged_ids).await?;
        survivor.draft = std::mem::take(&mut survivor.draft)
            .merge(merged.iter().map(|contact| &contact.draft))?;
        let merged_names: Vec<String> = merged.iter().map(Contact::name).collect();
        let time = now();
        let mut events = Vec::new();
        for contact in merged {
            let retired = self
                .retire_merged(&txn, tenant, contact, &survivor.name(), time)
                .await?;
            events.push(self.event(
                "ContactDeleted",
                retired.name(),
                self.payloads.contact(&retired),
                actor,
            ));
        }
        survivor.update_time = time;
        self.save_contact(&txn, tenant, &mut survivor).await?;
        replace_keys(
            &*txn,
            tenant,
            &survivor_id.to_string(),
            Some(&survivor.draft),
        )
        .await?;
        events.push(self.event(
            "ContactMerged",
            survivor.name(),
            self.payloads.merged(&survivor.name(), &merged_names),
            actor,
        ));
        events.push(self.event(
            "ContactUpdated",
            survivor.name(),
            self.payloads.contact(&survivor),
            actor,
        ));
        self.base.commit(txn, tenant, events).await?;
        Ok(survivor)
    }

    /// The contacts to merge, in the order asked; each must be live.
    async fn load_mergeable(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        ids: &[Uuid],
    ) -> Result<Vec<Contact>, ApiError> {
        let mut contacts = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let contact = self.load_contact(&**txn, tenant, *id).await?;
            if contact.delete_time.is_some() {
                return Err(ApiError::invalid(
                    format!("merged[{i}]"),
                    format!("{} is deleted or already merged", contact.name()),
                ));
            }
            contacts.push(contact);
        }
        Ok(contacts)
    }

    /// Soft-deletes `merged` as merged into `survivor`, drops its keys and
    /// moves its activities to the survivor; returns it as written.
    async fn retire_merged(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        mut merged: Contact,
        survivor: &str,
        time: DateTime<Utc>,
    ) -> Result<Contact, ApiError> {
        merged.delete_time = Some(time);
        merged.merged_into = Some(survivor.to_owned());
        merged.update_time = time;
        self.save_contact(txn, tenant, &mut merged).await?;
        replace_keys(&**txn, tenant, &merged.id.to_string(), None).await?;
        activity::Entity::update_many()
            .col_expr(activity::Column::Contact, Expr::value(survivor))
            .filter(activity::Column::Tenant.eq(tenant.as_str()))
            .filter(activity::Column::Contact.eq(merged.name()))
            .exec(&**txn)
            .await?;
        Ok(merged)
    }

    /// Imports one batch in one transaction: each valid row becomes a contact
    /// unless one of its emails belongs to an existing contact, or to an
    /// earlier row of the import. A tenant's batches run one at a time, so
    /// two imports of the same rows (a resumed import beside the rest of the
    /// interrupted one) cannot both find an email new.
    pub async fn import_batch(
        &self,
        tenant: &Tenant,
        actor: &str,
        rows: Vec<ImportRow>,
    ) -> Result<Vec<ImportOutcome>, ApiError> {
        let txn = self.db.begin_write().await?;
        txn.serialize_on(&format!("contacts.import {}", tenant.as_str()))
            .await?;
        let emails: Vec<String> = rows
            .iter()
            .filter_map(|row| match row {
                ImportRow::Valid(draft) => Some(draft.email_keys()),
                ImportRow::Invalid(_) => None,
            })
            .flatten()
            .collect();
        let mut known: HashMap<String, String> = HashMap::new();
        for chunk in emails.chunks(500) {
            let found = contact_key::Entity::find_in(tenant)
                .filter(contact_key::Column::Kind.eq("email"))
                .filter(contact_key::Column::Value.is_in(chunk.to_vec()))
                .all(&*txn)
                .await?;
            known.extend(
                found
                    .into_iter()
                    .map(|k| (k.value, format!("contacts/{}", k.contact_id))),
            );
        }
        let companies: Vec<String> = rows
            .iter()
            .filter_map(|row| match row {
                ImportRow::Valid(d) => d.company.strip_prefix("companies/").map(str::to_owned),
                ImportRow::Invalid(_) => None,
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let live_companies: HashSet<String> = company::Entity::find_in(tenant)
            .select_only()
            .column(company::Column::Id)
            .filter(company::Column::Id.is_in(companies))
            .filter(company::Column::DeleteTime.is_null())
            .into_tuple::<String>()
            .all(&*txn)
            .await?
            .into_iter()
            .map(|id| format!("companies/{id}"))
            .collect();
        let time = now();
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut contact_rows = Vec::new();
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for row in rows {
            let draft = match row {
                ImportRow::Invalid(error) => {
                    outcomes.push(ImportOutcome::Failed(error));
                    continue;
                }
                ImportRow::Valid(draft) => *draft,
            };
            if let Some(existing) = draft.email_keys().iter().find_map(|k| known.get(k)) {
                outcomes.push(ImportOutcome::Duplicate(existing.clone()));
                continue;
            }
            if !draft.company.is_empty() && !live_companies.contains(&draft.company) {
                outcomes.push(ImportOutcome::Failed(format!(
                    "contact.company: {} does not exist",
                    draft.company
                )));
                continue;
            }
            let contact = Contact {
                id: Uuid::now_v7(),
                draft,
                create_time: time,
                update_time: time,
                delete_time: None,
                version: 1,
                merged_into: None,
            };
            for key in contact.draft.email_keys() {
                known.insert(key, contact.name());
            }
            keys.extend(key_rows(tenant, &contact.id.to_string(), &contact.draft));
            events.push(self.event(
                "ContactCreated",
                contact.name(),
                self.payloads.contact(&contact),
                actor,
            ));
            contact_rows.push(
                contact_row(tenant.as_str(), &contact)
                    .into_active_model()
                    .reset_all(),
            );
            outcomes.push(ImportOutcome::Created(contact.name()));
        }
        // 24 columns x 500 rows and 4 x 2000 stay below SQLite's 32,766
        // values. Statements this large each run alone (see
        // `execute_together`'s cap); only the small ones are joined.
        let backend = txn.get_database_backend();
        let mut writes = insert_statements(backend, contact_rows, 500);
        writes.extend(insert_statements(backend, keys, 2000));
        self.base.commit_with(txn, tenant, writes, events).await?;
        self.statistics.wrote(outcomes.len() as u64);
        Ok(outcomes)
    }

    /// Hard-deletes a contact, every contact merged into it (at any depth),
    /// their activities and every earlier event about any of them; appends
    /// one ContactErased event. Returns the number of activities erased.
    pub async fn erase_contact(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
    ) -> Result<u64, ApiError> {
        let txn = self.db.begin_write().await?;
        let contact = self.load_contact(&*txn, tenant, id).await?;
        let merged = merge_chain(&*txn, tenant, &contact).await?;
        // Read before the rows go: the event is all that is left of them.
        let erasure = Erasure::of(tenant.as_str(), &contact, &merged);
        let people: Vec<String> = std::iter::once(&contact)
            .chain(&merged)
            .map(|c| c.id.to_string())
            .collect();
        let names: Vec<String> = people.iter().map(|p| format!("contacts/{p}")).collect();
        let (erased, activity_names) = erase_activities(&*txn, tenant, &names).await?;
        for chunk in people.chunks(500) {
            contact_key::Entity::delete_many()
                .filter(contact_key::Column::Tenant.eq(tenant.as_str()))
                .filter(contact_key::Column::ContactId.is_in(chunk.to_vec()))
                .exec(&*txn)
                .await?;
            contact::Entity::delete_many()
                .filter(contact::Column::Tenant.eq(tenant.as_str()))
                .filter(contact::Column::Id.is_in(chunk.to_vec()))
                .exec(&*txn)
                .await?;
        }
        let subjects: Vec<String> = names.iter().cloned().chain(activity_names).collect();
        erase_history(&*txn, tenant, &subjects, &names).await?;
        let event = self.event(
            "ContactErased",
            erasure.contact.clone(),
            self.payloads.erased(&erasure),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(erased)
    }
}

/// The contacts merged into `root`, directly or through others merged into
/// it: after A into B and B into C, both A and B are C's. Followed level by
/// level rather than recursively, so no chain is too deep.
async fn merge_chain<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    root: &Contact,
) -> Result<Vec<Contact>, ApiError> {
    // A merged contact is deleted and cannot be a survivor again, so chains
    // have no cycles; the seen set makes sure a bad row cannot loop us.
    let mut seen = HashSet::from([root.name()]);
    let mut level = vec![root.name()];
    let mut chain = Vec::new();
    while !level.is_empty() {
        let mut next = Vec::new();
        for survivors in level.chunks(500) {
            let rows = contact::Entity::find_in(tenant)
                .filter(contact::Column::MergedInto.is_in(survivors.to_vec()))
                .all(conn)
                .await?;
            for row in rows {
                let merged = Contact::try_from(row)?;
                if seen.insert(merged.name()) {
                    next.push(merged.name());
                    chain.push(merged);
                }
            }
        }
        level = next;
    }
    Ok(chain)
}

/// Hard-deletes the activities of the contacts `names`; returns how many
/// there were and their names.
async fn erase_activities<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    names: &[String],
) -> Result<(u64, Vec<String>), ApiError> {
    let mut erased = 0;
    let mut activity_names = Vec::new();
    for chunk in names.chunks(500) {
        let ids: Vec<String> = activity::Entity::find_in(tenant)
            .select_only()
            .column(activity::Column::Id)
            .filter(activity::Column::Contact.is_in(chunk.to_vec()))
            .into_tuple()
            .all(conn)
            .await?;
        activity_names.extend(ids.into_iter().map(|a| format!("activities/{a}")));
        erased += activity::Entity::delete_many()
            .filter(activity::Column::Tenant.eq(tenant.as_str()))
            .filter(activity::Column::Contact.is_in(chunk.to_vec()))
            .exec(conn)
            .await?
            .rows_affected;
    }
    Ok((erased, activity_names))
}

/// Deletes every event about `subjects` and the idempotency records that
/// created the contacts `names`, and erases the audit log's values of
/// `subjects`: an erased person leaves no trace in any of them.
async fn erase_history<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    subjects: &[String],
    names: &[String],
) -> Result<(), ApiError> {
    use crm_shared::{idempotency::entity as idempotency, outbox::entity as outbox};
    crm_shared::audit::forget(conn, tenant, subjects).await?;
    for chunk in subjects.chunks(500) {
        outbox::Entity::delete_many()
            .filter(outbox::Column::Tenant.eq(tenant.as_str()))
            .filter(outbox::Column::Subject.is_in(chunk.to_vec()))
            .exec(conn)
            .await?;
    }
    for chunk in names.chunks(500) {
        idempotency::Entity::delete_many()
            .filter(idempotency::Column::Tenant.eq(tenant.as_str()))
            .filter(idempotency::Column::Resource.is_in(chunk.to_vec()))
            .exec(conn)
            .await?;
    }
    Ok(())
}
