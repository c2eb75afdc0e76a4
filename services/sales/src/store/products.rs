//! The product catalogue, and pricing line items from it.

use crm_shared::idempotency::IdempotencyKey;
use crm_shared::store::Page;
use std::collections::HashMap;

use chrono::Utc;
use crm_shared::{
    db::{Tenant, TenantScoped},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema},
    store::{Claim, ListQuery, check_version},
};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, SqlErr};
use uuid::Uuid;

use super::{
    Store,
    entities::{from_json, product, to_json},
};
use crate::domain::{
    opportunity::LineItem,
    product::{Product, ProductDraft},
};

/// The fields a product filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField {
            name: "sku",
            column: "sku",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "display_name",
            column: "display_name",
            kind: FieldKind::Text,
        },
        FilterField {
            name: "active",
            column: "active",
            kind: FieldKind::Bool,
        },
        FilterField {
            name: "currency_code",
            column: "currency_code",
            kind: FieldKind::Text,
        },
    ],
};

/// The fields a product list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[
    ("display_name", "display_name"),
    ("sku", "sku"),
    ("create_time", "create_time"),
];

impl TryFrom<product::Model> for Product {
    type Error = ApiError;

    fn try_from(row: product::Model) -> Result<Self, ApiError> {
        Ok(Self {
            id: row
                .id
                .parse()
                .map_err(|_| ApiError::Internal("stored product has a bad id".into()))?,
            draft: ProductDraft {
                sku: row.sku,
                display_name: row.display_name,
                unit_price: Some(from_json(&row.unit_price, "price")?),
                active: row.active,
            },
            create_time: row.create_time,
            update_time: row.update_time,
            version: row.version,
        })
    }
}

fn product_row(tenant: &Tenant, p: &Product) -> product::ActiveModel {
    product::Model {
        id: p.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        sku: p.draft.sku.clone(),
        display_name: p.draft.display_name.clone(),
        unit_price: p.draft.unit_price.as_ref().map(to_json).unwrap_or_default(),
        currency_code: p
            .draft
            .unit_price
            .as_ref()
            .map(|m| m.currency_code.clone())
            .unwrap_or_default(),
        active: p.draft.active,
        create_time: p.create_time,
        update_time: p.update_time,
        delete_time: None,
        version: p.version,
    }
    .into_active_model()
    .reset_all()
}

/// ALREADY_EXISTS for a second product with the same SKU.
fn sku_taken(error: sea_orm::DbErr, sku: &str) -> ApiError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            ApiError::AlreadyExists(format!("a product with sku {sku:?} exists"))
        }
        _ => error.into(),
    }
}

impl Store {
    /// Adds a product; ALREADY_EXISTS when its SKU is taken.
    pub async fn create_product(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: ProductDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Product, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "CreateProduct", request_id.as_ref())
            .await?
        {
            return self.get_product(tenant, super::id_of(&existing)).await;
        }
        let now = Utc::now();
        let p = Product {
            id: Uuid::now_v7(),
            draft,
            create_time: now,
            update_time: now,
            version: 1,
        };
        let txn = self.db.begin_write().await?;
        product::Entity::insert(product_row(tenant, &p))
            .exec(&*txn)
            .await
            .map_err(|e| sku_taken(e, &p.draft.sku))?;
        let txn = match self
            .base
            .claim(txn, tenant, "CreateProduct", request_id.as_ref(), &p.name())
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => {
                return self.get_product(tenant, super::id_of(&existing)).await;
            }
        };
        let event = self.event("ProductCreated", p.name(), self.payloads.product(&p), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(p)
    }

    /// A product.
    pub async fn get_product(&self, tenant: &Tenant, id: Uuid) -> Result<Product, ApiError> {
        self.base
            .find::<product::Entity>(&self.db.conn, tenant, id, &format!("products/{id}"))
            .await?
            .try_into()
    }

    /// One page of products.
    pub async fn list_products(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Product>, ApiError> {
        self.base
            .list_page::<product::Entity, Product>(tenant, query)
            .await
    }

    /// Applies `paths` of `changes`.
    pub async fn update_product(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected_version: Option<i64>,
        paths: &[&str],
        changes: &ProductDraft,
    ) -> Result<Product, ApiError> {
        let txn = self.db.begin_write().await?;
        let mut p: Product = self
            .base
            .find::<product::Entity>(&*txn, tenant, id, &format!("products/{id}"))
            .await?
            .try_into()?;
        check_version(&p.name(), expected_version, p.version)?;
        let stored_version = p.version;
        p.draft.apply(paths, changes);
        p.draft.normalize_and_check("product")?;
        p.version += 1;
        p.update_time = Utc::now();
        self.base
            .save_versioned::<product::Entity>(
                &txn,
                tenant,
                &p.name(),
                id,
                stored_version,
                product_row(tenant, &p),
            )
            .await?;
        let event = self.event("ProductUpdated", p.name(), self.payloads.product(&p), actor);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(p)
    }

    /// Checks each line item's product and fills in its catalogue price when
    /// none is given. `new_deal`: inactive products are refused.
    pub(super) async fn price_line_items(
        &self,
        tenant: &Tenant,
        items: &mut [LineItem],
        field: &str,
        new_deal: bool,
    ) -> Result<(), ApiError> {
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = items
            .iter()
            .filter_map(|i| i.product.strip_prefix("products/"))
            .collect();
        let products: HashMap<String, Product> = product::Entity::find_in(tenant)
            .filter(product::Column::Id.is_in(ids))
            .all(&self.db.conn)
            .await?
            .into_iter()
            .map(|row| Product::try_from(row).map(|p| (p.name(), p)))
            .collect::<Result<_, _>>()?;
        for (i, item) in items.iter_mut().enumerate() {
            let Some(product) = products.get(&item.product) else {
                return Err(ApiError::invalid(
                    format!("{field}[{i}].product"),
                    format!("{} does not exist", item.product),
                ));
            };
            if new_deal && !product.draft.active {
                return Err(ApiError::invalid(
                    format!("{field}[{i}].product"),
                    format!("{} is not active", item.product),
                ));
            }
            if item.unit_price.is_none() {
                item.unit_price = product.draft.unit_price.clone();
            }
        }
        Ok(())
    }
}
