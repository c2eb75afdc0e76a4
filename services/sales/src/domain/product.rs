//! The product catalogue.

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    money::Money,
    validate::{MAX_SHORT, Violations},
};
use uuid::Uuid;

/// The writable fields of a product.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductDraft {
    /// Stock-keeping unit, unique in the tenant.
    pub sku: String,
    /// A name for people.
    pub display_name: String,
    /// List price.
    pub unit_price: Option<Money>,
    /// Can go on new deals.
    pub active: bool,
}

/// The fields UpdateProduct may change.
pub const WRITABLE_FIELDS: &[&str] = &["sku", "display_name", "unit_price", "active"];

impl ProductDraft {
    /// Checks every field.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.sku = self.sku.trim().to_owned();
        self.display_name = self.display_name.trim().to_owned();
        let mut v = Violations::default();
        for (name, value) in [("sku", &self.sku), ("display_name", &self.display_name)] {
            v.text(&format!("{prefix}.{name}"), value, MAX_SHORT);
            if value.is_empty() {
                v.add(format!("{prefix}.{name}"), "required");
            }
        }
        match &self.unit_price {
            Some(price) => {
                price.check(&format!("{prefix}.unit_price"), &mut v);
                if price.units < 0 || price.nanos < 0 {
                    v.add(format!("{prefix}.unit_price"), "must not be negative");
                }
            }
            None => v.add(format!("{prefix}.unit_price"), "required"),
        }
        v.finish()
    }

    /// Copies the fields named in `paths` from `from`.
    pub fn apply(&mut self, paths: &[&str], from: &ProductDraft) {
        for path in paths {
            match *path {
                "sku" => self.sku = from.sku.clone(),
                "display_name" => self.display_name = from.display_name.clone(),
                "unit_price" => self.unit_price = from.unit_price.clone(),
                "active" => self.active = from.active,
                _ => {}
            }
        }
    }
}

/// A stored product.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// The id.
    pub id: Uuid,
    /// Its fields.
    pub draft: ProductDraft,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Version.
    pub version: i64,
}

impl Product {
    /// `products/{id}`.
    pub fn name(&self) -> String {
        format!("products/{}", self.id)
    }
}
