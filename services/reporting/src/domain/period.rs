//! Periods of whole UTC days, their comparison periods and their buckets.

use chrono::{Datelike, Days, Months, NaiveDate};
use crm_shared::validate::Violations;

/// The longest period a query may span, in days (ten years).
pub const MAX_DAYS: i64 = 3_660;

/// A span of whole days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// The first day.
    pub start: NaiveDate,
    /// The last day.
    pub end: NaiveDate,
}

/// How a series is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Granularity {
    /// Totals only.
    #[default]
    None,
    /// Per day.
    Day,
    /// Per ISO week, Monday first.
    Week,
    /// Per calendar month.
    Month,
    /// Per calendar quarter.
    Quarter,
}

impl Period {
    /// Reads a period from two "YYYY-MM-DD" strings, recording what is wrong
    /// under `field` ("period").
    pub fn parse(start: &str, end: &str, field: &str, v: &mut Violations) -> Option<Self> {
        let day = |value: &str, name: &str, v: &mut Violations| {
            let parsed = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok();
            if parsed.is_none() {
                v.add(format!("{field}.{name}"), "must be a date, YYYY-MM-DD");
            }
            parsed
        };
        let (start, end) = (day(start, "start_date", v)?, day(end, "end_date", v)?);
        if end < start {
            v.add(format!("{field}.end_date"), "must not be before start_date");
            return None;
        }
        if (end - start).num_days() >= MAX_DAYS {
            v.add(
                format!("{field}.end_date"),
                format!("a period spans at most {MAX_DAYS} days"),
            );
            return None;
        }
        Some(Self { start, end })
    }

    /// How many days it spans.
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }

    /// The same number of days, ending the day before this one starts.
    pub fn previous(&self) -> Self {
        let end = self.start - Days::new(1);
        Self {
            start: end - Days::new((self.days() - 1) as u64),
            end,
        }
    }

    /// The same dates a year earlier (29 February becomes 28 February).
    pub fn year_ago(&self) -> Self {
        let back = |day: NaiveDate| day.checked_sub_months(Months::new(12)).unwrap_or(day);
        Self {
            start: back(self.start),
            end: back(self.end),
        }
    }

    /// Whether `day` lies in it.
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.start <= day && day <= self.end
    }

    /// The buckets of `granularity` covering it, each clipped to it, oldest
    /// first; one bucket (the whole period) for [`Granularity::None`].
    pub fn buckets(&self, granularity: Granularity) -> Vec<Period> {
        let mut buckets = Vec::new();
        let mut start = self.start;
        while start <= self.end {
            let natural_end = match granularity {
                Granularity::None => self.end,
                Granularity::Day => start,
                Granularity::Week => {
                    start + Days::new(6 - u64::from(start.weekday().num_days_from_monday()))
                }
                Granularity::Month => last_of_month(start, 1),
                Granularity::Quarter => last_of_month(start, 3 - (start.month0() % 3)),
            };
            let end = natural_end.min(self.end);
            buckets.push(Period { start, end });
            start = end + Days::new(1);
        }
        buckets
    }
}

/// The last day of the month `months - 1` after `day`'s.
fn last_of_month(day: NaiveDate, months: u32) -> NaiveDate {
    let first = day.with_day(1).unwrap_or(day);
    first
        .checked_add_months(Months::new(months))
        .map_or(day, |next| next - Days::new(1))
}

/// The day as stored in the read model: "YYYY-MM-DD" sorts as dates do.
pub fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn period(a: &str, b: &str) -> Period {
        Period {
            start: d(a),
            end: d(b),
        }
    }

    #[test]
    fn comparison_periods() {
        let march = period("2026-03-01", "2026-03-31");
        assert_eq!(march.previous(), period("2026-01-29", "2026-02-28"));
        assert_eq!(march.year_ago(), period("2025-03-01", "2025-03-31"));
        let leap = period("2028-02-29", "2028-02-29");
        assert_eq!(leap.year_ago(), period("2027-02-28", "2027-02-28"));
    }

    #[test]
    fn buckets_are_clipped_to_the_period() {
        let p = period("2026-01-15", "2026-04-02");
        let months: Vec<_> = p.buckets(Granularity::Month);
        assert_eq!(
            months,
            vec![
                period("2026-01-15", "2026-01-31"),
                period("2026-02-01", "2026-02-28"),
                period("2026-03-01", "2026-03-31"),
                period("2026-04-01", "2026-04-02"),
            ]
        );
        let quarters = p.buckets(Granularity::Quarter);
        assert_eq!(
            quarters,
            vec![
                period("2026-01-15", "2026-03-31"),
                period("2026-04-01", "2026-04-02")
            ]
        );
        // 2026-01-15 is a Thursday.
        let weeks = period("2026-01-15", "2026-01-26").buckets(Granularity::Week);
        assert_eq!(
            weeks,
            vec![
                period("2026-01-15", "2026-01-18"),
                period("2026-01-19", "2026-01-25"),
                period("2026-01-26", "2026-01-26"),
            ]
        );
        assert_eq!(p.buckets(Granularity::Day).len() as i64, p.days());
        assert_eq!(p.buckets(Granularity::None), vec![p]);
    }

    #[test]
    fn bad_periods_name_the_field() {
        let mut v = Violations::default();
        assert!(Period::parse("2026-02-01", "2026-01-01", "period", &mut v).is_none());
        assert!(Period::parse("yesterday", "2026-01-01", "period", &mut v).is_none());
        let message = format!("{:?}", v.finish().unwrap_err());
        assert!(message.contains("period.end_date"), "{message}");
        assert!(message.contains("period.start_date"), "{message}");
    }
}
