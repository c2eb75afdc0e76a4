//! Opportunities (deals): amount, stage, line items and the stage history.

use chrono::{DateTime, NaiveDate, Utc};
use crm_shared::{
    error::ApiError,
    money::{Money, Totals},
    validate::{MAX_LONG, MAX_SHORT, Violations},
};
use uuid::Uuid;

use super::pipeline::StageKind;

/// A product on a deal.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LineItem {
    /// `products/{id}`.
    pub product: String,
    /// How many.
    pub quantity: i64,
    /// Price of one (the product's when not given).
    pub unit_price: Option<Money>,
    /// Percent off.
    pub discount_percent: f64,
}

impl LineItem {
    /// quantity x unit price less the discount.
    pub fn total(&self) -> Option<Money> {
        let price = self.unit_price.as_ref()?;
        let gross = Money::from_nanos(
            &price.currency_code,
            price.total_nanos() * i128::from(self.quantity),
        );
        Some(gross.scaled(1.0 - self.discount_percent / 100.0))
    }
}

/// One move to a stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageChange {
    /// The stage's resource name.
    pub stage: String,
    /// Who.
    pub changed_by: String,
    /// When.
    pub change_time: DateTime<Utc>,
}

/// The writable fields of an opportunity.
#[derive(Debug, Clone, PartialEq)]
pub struct OpportunityDraft {
    /// A name for people.
    pub display_name: String,
    /// The value.
    pub amount: Option<Money>,
    /// `pipelines/{id}`; empty for the default.
    pub pipeline: String,
    /// The stage's resource name; empty for the first.
    pub stage: String,
    /// Expected close.
    pub expected_close_date: Option<NaiveDate>,
    /// The owner.
    pub owner: String,
    /// `contacts/{id}`.
    pub contact: String,
    /// `companies/{id}`.
    pub company: String,
    /// Products.
    pub line_items: Vec<LineItem>,
    /// Why it closed.
    pub close_reason: String,
}

/// The fields UpdateOpportunity may change.
pub const WRITABLE_FIELDS: &[&str] = &[
    "display_name",
    "amount",
    "stage",
    "expected_close_date",
    "owner",
    "contact",
    "company",
    "line_items",
    "close_reason",
];

impl OpportunityDraft {
    /// Checks every field; with line items and no amount, the amount becomes
    /// their sum (they must then share one currency).
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.display_name = self.display_name.trim().to_owned();
        let mut v = Violations::default();
        let field = |name: &str| format!("{prefix}.{name}");
        v.text(&field("display_name"), &self.display_name, MAX_SHORT);
        if self.display_name.is_empty() {
            v.add(field("display_name"), "required");
        }
        v.text(&field("owner"), &self.owner, MAX_SHORT);
        v.text(&field("close_reason"), &self.close_reason, MAX_LONG);
        v.reference(&field("pipeline"), &self.pipeline, "pipelines");
        v.reference(&field("contact"), &self.contact, "contacts");
        v.reference(&field("company"), &self.company, "companies");
        if let Some(amount) = &self.amount {
            amount.check(&field("amount"), &mut v);
            if amount.units < 0 || amount.nanos < 0 {
                v.add(field("amount"), "must not be negative");
            }
        }
        if self.line_items.len() > 200 {
            v.add(field("line_items"), "at most 200 line items");
        }
        for (i, item) in self.line_items.iter().enumerate() {
            let item_field = format!("{prefix}.line_items[{i}]");
            v.reference(&format!("{item_field}.product"), &item.product, "products");
            if item.product.is_empty() {
                v.add(format!("{item_field}.product"), "required");
            }
            if !(1..=1_000_000_000).contains(&item.quantity) {
                v.add(format!("{item_field}.quantity"), "1 to 1,000,000,000");
            }
            if !(0.0..=100.0).contains(&item.discount_percent) || item.discount_percent.is_nan() {
                v.add(
                    format!("{item_field}.discount_percent"),
                    "between 0 and 100",
                );
            }
            if let Some(price) = &item.unit_price {
                price.check(&format!("{item_field}.unit_price"), &mut v);
            }
        }
        v.finish()?;
        if self.amount.is_none() && !self.line_items.is_empty() {
            let mut totals = Totals::default();
            self.line_items
                .iter()
                .filter_map(LineItem::total)
                .for_each(|t| totals.add(&t));
            let currencies: Vec<&str> = totals.currencies().collect();
            match currencies.as_slice() {
                [one] => self.amount = Some(totals.get(one)),
                [] => {}
                _ => {
                    return Err(ApiError::invalid(
                        field("line_items"),
                        "line items in several currencies: set the amount yourself",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Copies the fields named in `paths` from `from`.
    pub fn apply(&mut self, paths: &[&str], from: &OpportunityDraft) {
        for path in paths {
            match *path {
                "display_name" => self.display_name = from.display_name.clone(),
                "amount" => self.amount = from.amount.clone(),
                "stage" => self.stage = from.stage.clone(),
                "expected_close_date" => self.expected_close_date = from.expected_close_date,
                "owner" => self.owner = from.owner.clone(),
                "contact" => self.contact = from.contact.clone(),
                "company" => self.company = from.company.clone(),
                "line_items" => self.line_items = from.line_items.clone(),
                "close_reason" => self.close_reason = from.close_reason.clone(),
                _ => {}
            }
        }
    }
}

/// A stored opportunity.
#[derive(Debug, Clone, PartialEq)]
pub struct Opportunity {
    /// The id.
    pub id: Uuid,
    /// Its fields.
    pub draft: OpportunityDraft,
    /// The kind of its stage.
    pub state: StageKind,
    /// When it was won or lost.
    pub close_time: Option<DateTime<Utc>>,
    /// Every stage it has been in.
    pub stage_history: Vec<StageChange>,
    /// The lead it came from.
    pub source_lead: String,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Version.
    pub version: i64,
}

impl Opportunity {
    /// `opportunities/{id}`.
    pub fn name(&self) -> String {
        format!("opportunities/{}", self.id)
    }

    /// Records a move to `stage` of `kind` by `actor` at `now`, closing or
    /// reopening the deal as the kind says.
    pub fn enter_stage(&mut self, stage: String, kind: StageKind, actor: &str, now: DateTime<Utc>) {
        self.draft.stage = stage.clone();
        self.state = kind;
        self.close_time = match kind {
            StageKind::Open => None,
            StageKind::Won | StageKind::Lost => Some(now),
        };
        self.stage_history.push(StageChange {
            stage,
            changed_by: actor.to_owned(),
            change_time: now,
        });
    }
}

/// Parses `YYYY-MM-DD`; empty is none.
pub fn parse_date(value: &str, field: &str) -> Result<Option<NaiveDate>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| ApiError::invalid(field, "a date as YYYY-MM-DD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(units: i64) -> Money {
        Money {
            currency_code: "EUR".into(),
            units,
            nanos: 0,
        }
    }

    fn draft(items: Vec<LineItem>) -> OpportunityDraft {
        OpportunityDraft {
            display_name: "Deal".into(),
            amount: None,
            pipeline: String::new(),
            stage: String::new(),
            expected_close_date: None,
            owner: String::new(),
            contact: String::new(),
            company: String::new(),
            line_items: items,
            close_reason: String::new(),
        }
    }

    fn item(quantity: i64, price: Money, discount: f64) -> LineItem {
        LineItem {
            product: format!("products/{}", Uuid::now_v7()),
            quantity,
            unit_price: Some(price),
            discount_percent: discount,
        }
    }

    #[test]
    fn the_amount_is_the_sum_of_discounted_line_items() {
        let mut d = draft(vec![item(3, eur(100), 10.0), item(1, eur(50), 0.0)]);
        d.normalize_and_check("opportunity").unwrap();
        assert_eq!(d.amount, Some(eur(320)));
    }

    #[test]
    fn line_items_in_two_currencies_need_an_amount() {
        let usd = Money {
            currency_code: "USD".into(),
            units: 1,
            nanos: 0,
        };
        let mut d = draft(vec![item(1, eur(1), 0.0), item(1, usd, 0.0)]);
        let error = d
            .normalize_and_check("opportunity")
            .unwrap_err()
            .to_string();
        assert!(error.contains("opportunity.line_items"), "{error}");
    }

    #[test]
    fn bad_line_items_are_named() {
        let mut d = draft(vec![item(0, eur(1), 120.0)]);
        let error = d
            .normalize_and_check("opportunity")
            .unwrap_err()
            .to_string();
        assert!(error.contains("line_items[0].quantity"), "{error}");
        assert!(error.contains("line_items[0].discount_percent"), "{error}");
    }
}
