//! A company (account) and the rules for writing one.

use chrono::{DateTime, Utc};
use crm_shared::error::ApiError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::contact::PostalAddress;
use super::text::fold;
use super::validate::{MAX_SHORT, Violations, normalize_tags};

pub use crm_shared::money::Money;

/// The longest tier name.
const MAX_TIER: usize = 64;

/// The writable fields of a company.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompanyDraft {
    /// Shown name; required.
    pub display_name: String,
    /// Web domain, lower-case.
    pub domain: String,
    /// Industry.
    pub industry: String,
    /// Employees.
    pub employee_count: i64,
    /// Annual revenue.
    pub annual_revenue: Option<Money>,
    /// Head office.
    pub address: Option<PostalAddress>,
    /// Tags.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// Owner.
    pub owner: String,
    /// The service tier bought, lower-case.
    pub tier: String,
}

/// The fields an update mask may name.
pub const WRITABLE_FIELDS: &[&str] = &[
    "display_name",
    "domain",
    "industry",
    "employee_count",
    "annual_revenue",
    "address",
    "tags",
    "custom_fields",
    "owner",
    "tier",
];

impl CompanyDraft {
    /// Validates and normalises every field.
    pub fn normalize(mut self, prefix: &str) -> Result<Self, ApiError> {
        let mut v = Violations::default();
        for (field, value) in [
            ("display_name", &mut self.display_name),
            ("industry", &mut self.industry),
            ("owner", &mut self.owner),
        ] {
            *value = value.trim().to_owned();
            v.text(&format!("{prefix}.{field}"), value, MAX_SHORT);
        }
        if self.display_name.is_empty() {
            v.add(format!("{prefix}.display_name"), "required");
        }
        self.domain = self.domain.trim().trim_end_matches('.').to_lowercase();
        let domain_ok = self.domain.is_empty()
            || (self.domain.len() <= 253
                && self.domain.contains('.')
                && self.domain.split('.').all(|label| {
                    !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                }));
        if !domain_ok {
            v.add(
                format!("{prefix}.domain"),
                format!("{:?} is not a domain name", self.domain),
            );
        }
        if self.employee_count < 0 {
            v.add(format!("{prefix}.employee_count"), "must not be negative");
        }
        if let Some(money) = &self.annual_revenue {
            money.check(&format!("{prefix}.annual_revenue"), &mut v);
        }
        if let Some(address) = &self.address {
            address.check(&format!("{prefix}.address"), &mut v);
        }
        self.tier = self.tier.trim().to_lowercase();
        v.text(&format!("{prefix}.tier"), &self.tier, MAX_TIER);
        normalize_tags(&mut self.tags);
        v.tags(&format!("{prefix}.tags"), &self.tags);
        v.custom_fields(&format!("{prefix}.custom_fields"), &self.custom_fields);
        v.finish()?;
        Ok(self)
    }

    /// Copies the fields named in `paths` from `patch`.
    pub fn apply(&mut self, patch: CompanyDraft, paths: &[&str]) {
        for path in paths {
            match *path {
                "display_name" => self.display_name.clone_from(&patch.display_name),
                "domain" => self.domain.clone_from(&patch.domain),
                "industry" => self.industry.clone_from(&patch.industry),
                "employee_count" => self.employee_count = patch.employee_count,
                "annual_revenue" => self.annual_revenue.clone_from(&patch.annual_revenue),
                "address" => self.address.clone_from(&patch.address),
                "tags" => self.tags.clone_from(&patch.tags),
                "custom_fields" => self.custom_fields.clone_from(&patch.custom_fields),
                "owner" => self.owner.clone_from(&patch.owner),
                "tier" => self.tier.clone_from(&patch.tier),
                _ => {}
            }
        }
    }

    /// The folded text contacts are found by through their company.
    pub fn search_text(&self) -> String {
        format!(" {} {} ", fold(&self.display_name), self.domain)
    }
}

/// A stored company.
#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    /// The id.
    pub id: Uuid,
    /// The writable fields.
    pub draft: CompanyDraft,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Soft-deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// The etag.
    pub version: i64,
}

impl Company {
    /// The resource name.
    pub fn name(&self) -> String {
        crm_shared::convert::name_of("companies", self.id)
    }
}
