//! Money as the API carries it (`crm.common.v1.Money`: currency, units,
//! nanos), checked, and summed without ever adding two currencies together.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::Violations;

/// Nanos in one unit.
const NANOS: i128 = 1_000_000_000;

/// An amount in one currency (units + nanos, as google.type.Money).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// ISO 4217.
    pub currency_code: String,
    /// Whole units.
    pub units: i64,
    /// Nano units, same sign as units.
    pub nanos: i32,
}

impl Money {
    /// Checks the currency code and the nanos' range and sign.
    pub fn check(&self, field: &str, v: &mut Violations) {
        if self.currency_code.len() != 3
            || !self.currency_code.chars().all(|c| c.is_ascii_uppercase())
        {
            v.add(
                format!("{field}.currency_code"),
                "a three-letter upper-case ISO 4217 code",
            );
        }
        // A range, not `abs()`: i32::MIN has no absolute value, so `abs()`
        // panics on it in debug builds and returns it, negative, in release.
        let nanos_ok = (-999_999_999..=999_999_999).contains(&self.nanos)
            && !(self.units > 0 && self.nanos < 0)
            && !(self.units < 0 && self.nanos > 0);
        if !nanos_ok {
            v.add(
                format!("{field}.nanos"),
                "between -999999999 and 999999999, with the sign of units",
            );
        }
    }

    /// The amount in nanos.
    pub fn total_nanos(&self) -> i128 {
        i128::from(self.units) * NANOS + i128::from(self.nanos)
    }

    /// An amount of `nanos` in `currency_code` (saturating at the i64 range).
    pub fn from_nanos(currency_code: &str, nanos: i128) -> Self {
        let units = (nanos / NANOS).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        Self {
            currency_code: currency_code.to_owned(),
            units: units as i64,
            nanos: (nanos % NANOS) as i32,
        }
    }

    /// This amount times `factor` (a probability, a quantity), rounded to the nano.
    pub fn scaled(&self, factor: f64) -> Self {
        let nanos = (self.total_nanos() as f64 * factor).round() as i128;
        Self::from_nanos(&self.currency_code, nanos)
    }
}

impl From<crm_proto::common::Money> for Money {
    fn from(m: crm_proto::common::Money) -> Self {
        Self {
            currency_code: m.currency_code,
            units: m.units,
            nanos: m.nanos,
        }
    }
}

impl From<&Money> for crm_proto::common::Money {
    fn from(m: &Money) -> Self {
        Self {
            currency_code: m.currency_code.clone(),
            units: m.units,
            nanos: m.nanos,
        }
    }
}

/// Sums per currency: amounts in different currencies are never added together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals(BTreeMap<String, i128>);

impl Totals {
    /// Adds `amount` to its currency's total.
    pub fn add(&mut self, amount: &Money) {
        *self.0.entry(amount.currency_code.clone()).or_default() += amount.total_nanos();
    }

    /// Makes sure `currency` has a line, even at zero.
    pub fn touch(&mut self, currency: &str) {
        self.0.entry(currency.to_owned()).or_default();
    }

    /// The total of `currency` (zero when nothing was added).
    pub fn get(&self, currency: &str) -> Money {
        Money::from_nanos(currency, self.0.get(currency).copied().unwrap_or_default())
    }

    /// The currencies with a line, in order.
    pub fn currencies(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(units: i64, nanos: i32) -> Money {
        Money {
            currency_code: "EUR".into(),
            units,
            nanos,
        }
    }

    #[test]
    fn totals_keep_currencies_apart_and_carry_nanos() {
        let mut totals = Totals::default();
        totals.add(&eur(1, 750_000_000));
        totals.add(&eur(2, 500_000_000));
        totals.add(&Money {
            currency_code: "USD".into(),
            units: 10,
            nanos: 0,
        });
        assert_eq!(totals.get("EUR"), eur(4, 250_000_000));
        assert_eq!(totals.get("USD").units, 10);
        assert_eq!(totals.currencies().collect::<Vec<_>>(), ["EUR", "USD"]);
    }

    #[test]
    fn scaling_rounds_to_the_nano_and_keeps_the_sign() {
        assert_eq!(eur(100, 0).scaled(0.25), eur(25, 0));
        assert_eq!(eur(-3, -500_000_000).scaled(0.5), eur(-1, -750_000_000));
    }

    #[test]
    fn nanos_out_of_range_are_refused_at_either_end() {
        let problem = |units: i64, nanos: i32| {
            let mut v = Violations::default();
            eur(units, nanos).check("amount", &mut v);
            v.finish().err().map(|error| error.to_string())
        };
        for (units, nanos) in [
            (0, i32::MIN),
            (-1, i32::MIN),
            (0, i32::MAX),
            (-1, -1_000_000_000),
            (1, 1_000_000_000),
        ] {
            let error = problem(units, nanos).unwrap_or_else(|| panic!("{units}, {nanos} passed"));
            assert!(error.contains("amount.nanos"), "{error}");
        }
        assert_eq!(problem(-1, -999_999_999), None);
        assert_eq!(problem(1, 999_999_999), None);
        assert_eq!(problem(0, -999_999_999), None);
    }

    #[test]
    fn bad_money_names_its_fields() {
        let mut v = Violations::default();
        Money {
            currency_code: "eur".into(),
            units: 1,
            nanos: -5,
        }
        .check("amount", &mut v);
        let error = v.finish().unwrap_err().to_string();
        assert!(
            error.contains("amount.currency_code") && error.contains("amount.nanos"),
            "{error}"
        );
    }
}
