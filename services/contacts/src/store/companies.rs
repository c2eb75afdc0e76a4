//! Company queries.

use crm_shared::idempotency::IdempotencyKey;
use crm_shared::store::Page;
use crm_shared::{
    db::{Tenant, TenantScoped},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use uuid::Uuid;

use super::Store;
use super::entities::{company, company_row, now};
use crate::domain::{Company, CompanyDraft};
use crm_shared::store::{Claim, ListQuery, check_version};

/// The fields a company filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField {
            name: "display_name",
            column: "display_name",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "domain",
            column: "domain",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "industry",
            column: "industry",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "employee_count",
            column: "employee_count",
            kind: FieldKind::Integer,
        },
        FilterField {
            name: "owner",
            column: "owner",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "tier",
            column: "tier",
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

/// The fields a company list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[
    ("display_name", "display_name"),
    ("domain", "domain"),
    ("industry", "industry"),
    ("employee_count", "employee_count"),
    ("tier", "tier"),
    ("create_time", "create_time"),
    ("update_time", "update_time"),
];

impl Store {
    async fn load_company<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Company, ApiError> {
        company::Entity::find_in(tenant)
            .filter(company::Column::Id.eq(id.to_string()))
            .one(conn)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("companies/{id}")))?
            .try_into()
    }

    /// Creates a company; with a request id, a retry returns the first one.
    pub async fn create_company(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: CompanyDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Company, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateCompany", request_id.as_ref())
            .await?
        {
            let id = crm_shared::convert::parse_name(&existing, "companies", "name")?;
            return self.load_company(&self.db.conn, tenant, id).await;
        }
        let time = now();
        let company = Company {
            id: Uuid::now_v7(),
            draft,
            create_time: time,
            update_time: time,
            delete_time: None,
            version: 1,
        };
        let txn = self.db.begin_write().await?;
        let name = company.name();
        let txn = match self
            .base
            .claim(txn, tenant, "CreateCompany", request_id.as_ref(), &name)
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                let id = crm_shared::convert::parse_name(&existing, "companies", "name")?;
                return self.load_company(&self.db.conn, tenant, id).await;
            }
        };
        company::Entity::insert(
            company_row(tenant.as_str(), &company)
                .into_active_model()
                .reset_all(),
        )
        .exec_without_returning(&*txn)
        .await?;
        let event = self.event(
            "CompanyCreated",
            company.name(),
            self.payloads.company(&company),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(company)
    }

    /// A company, soft-deleted or not.
    pub async fn get_company(&self, tenant: &Tenant, id: Uuid) -> Result<Company, ApiError> {
        self.load_company(&self.db.conn, tenant, id).await
    }

    /// One page of companies and the total.
    pub async fn list_companies(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Company>, ApiError> {
        self.base
            .list_page::<company::Entity, Company>(tenant, query)
            .await
    }

    /// Reads, changes and writes a company in one transaction (see `change_contact`).
    pub async fn change_company(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        event: &'static str,
        change: impl FnOnce(&mut Company) -> Result<(), ApiError>,
    ) -> Result<Company, ApiError> {
        let txn = self.db.begin_write().await?;
        let mut company = self.load_company(&*txn, tenant, id).await?;
        check_version(&company.name(), expected_version, company.version)?;
        let stored_version = company.version;
        change(&mut company)?;
        company.version = stored_version + 1;
        company.update_time = now();
        let row = company_row(tenant.as_str(), &company)
            .into_active_model()
            .reset_all();
        self.base
            .save_versioned::<company::Entity>(
                &txn,
                tenant,
                &company.name(),
                id,
                stored_version,
                row,
            )
            .await?;
        let event = self.event(
            event,
            company.name(),
            self.payloads.company(&company),
            actor,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(company)
    }
}
