//! Saved reports: a definition (KPIs, period, granularity, filter) kept per
//! tenant and run on demand; relative periods are resolved on the day it runs.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{
    kpi::Filter,
    period::{Granularity, Period},
};

/// A period relative to the day a report runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relative {
    /// The 7 days up to and including today.
    Last7Days,
    /// The 30 days up to and including today.
    Last30Days,
    /// This month up to today.
    ThisMonth,
    /// The previous month.
    LastMonth,
    /// This quarter up to today.
    ThisQuarter,
    /// The previous quarter.
    LastQuarter,
    /// This year up to today.
    ThisYear,
    /// The previous year.
    LastYear,
}

impl Relative {
    /// The period it means on `today`.
    pub fn resolve(self, today: NaiveDate) -> Period {
        let month_start = today.with_day(1).unwrap_or(today);
        let quarter_start = month_start
            .checked_sub_months(Months::new(today.month0() % 3))
            .unwrap_or(month_start);
        let year_start = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
        let back = |day: NaiveDate, months: u32| {
            day.checked_sub_months(Months::new(months)).unwrap_or(day)
        };
        let before = |day: NaiveDate| day - Days::new(1);
        let (start, end) = match self {
            Self::Last7Days => (today - Days::new(6), today),
            Self::Last30Days => (today - Days::new(29), today),
            Self::ThisMonth => (month_start, today),
            Self::LastMonth => (back(month_start, 1), before(month_start)),
            Self::ThisQuarter => (quarter_start, today),
            Self::LastQuarter => (back(quarter_start, 3), before(quarter_start)),
            Self::ThisYear => (year_start, today),
            Self::LastYear => (back(year_start, 12), before(year_start)),
        };
        Period { start, end }
    }
}

/// What a report computes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// The KPIs, by name.
    pub kpis: Vec<String>,
    /// A relative period; when None, `period`.
    pub relative: Option<Relative>,
    /// A fixed period (first and last day).
    pub period: Option<(NaiveDate, NaiveDate)>,
    /// The series' buckets.
    pub granularity: Granularity,
    /// The narrowing.
    pub filter: Filter,
}

impl Definition {
    /// The period it covers when run on `today`.
    pub fn period_on(&self, today: NaiveDate) -> Option<Period> {
        match (self.relative, self.period) {
            (Some(relative), _) => Some(relative.resolve(today)),
            (None, Some((start, end))) => Some(Period { start, end }),
            (None, None) => None,
        }
    }
}

/// A saved report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its title.
    pub display_name: String,
    /// What it is for.
    pub description: String,
    /// What it computes.
    pub definition: Definition,
    /// Who created it.
    pub creator: String,
    /// When it was created.
    pub create_time: DateTime<Utc>,
    /// When it last changed.
    pub update_time: DateTime<Utc>,
    /// When it was deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Its version.
    pub version: i64,
}

impl Report {
    /// "reports/{id}".
    pub fn name(&self) -> String {
        format!("reports/{}", self.id)
    }
}

/// The fields an update may name.
pub const UPDATABLE: &[&str] = &[
    "display_name",
    "description",
    "kpis",
    "relative_period",
    "period",
    "granularity",
    "filter",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn relative_periods_on_a_day() {
        let today = d("2026-05-14");
        let p = |r: Relative| {
            let p = r.resolve(today);
            (p.start.to_string(), p.end.to_string())
        };
        assert_eq!(
            p(Relative::Last7Days),
            ("2026-05-08".into(), "2026-05-14".into())
        );
        assert_eq!(
            p(Relative::LastMonth),
            ("2026-04-01".into(), "2026-04-30".into())
        );
        assert_eq!(
            p(Relative::ThisQuarter),
            ("2026-04-01".into(), "2026-05-14".into())
        );
        assert_eq!(
            p(Relative::LastQuarter),
            ("2026-01-01".into(), "2026-03-31".into())
        );
        assert_eq!(
            p(Relative::LastYear),
            ("2025-01-01".into(), "2025-12-31".into())
        );
    }
}
