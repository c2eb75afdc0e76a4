//! Forecasts and pipeline analysis, computed from opportunities and their
//! stage history. Amounts are summed per currency, never across currencies.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use crm_shared::money::{Money, Totals};

use super::{
    opportunity::Opportunity,
    pipeline::{Pipeline, StageKind},
};

/// A forecast line, one per currency.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastLine {
    /// The currency.
    pub currency_code: String,
    /// Won in the period.
    pub closed_won: Money,
    /// Open expected in the period, times probability.
    pub weighted_pipeline: Money,
    /// Won plus open at or above [`COMMIT_PROBABILITY`].
    pub commit: Money,
    /// Won plus every open deal expected in the period.
    pub best_case: Money,
    /// Deals won.
    pub won_count: i32,
    /// Open deals expected.
    pub open_count: i32,
}

/// The stage probability from which an open deal counts as committed.
pub const COMMIT_PROBABILITY: f64 = 0.7;

/// The deals of one currency in one stage that a forecast of a period counts
/// (won in it, or open and expected in it), summed by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSum {
    /// Won or open.
    pub state: StageKind,
    /// The stage's chance of winning.
    pub probability: f64,
    /// How many deals.
    pub deals: i64,
    /// Their amounts added up, in one currency.
    pub total: Money,
}

/// The expected close dates a forecast of `[start, end)` counts: the first
/// and last date whose start (midnight UTC) lies in it; `None` when no
/// midnight does.
pub fn expected_dates(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<(NaiveDate, NaiveDate)> {
    let midnight = |date: NaiveDate| date.and_time(NaiveTime::MIN).and_utc();
    let mut first = start.date_naive();
    if midnight(first) < start {
        first = first.succ_opt()?;
    }
    let mut last = end.date_naive();
    if midnight(last) >= end {
        last = last.pred_opt()?;
    }
    (first <= last).then_some((first, last))
}

/// The forecast lines, one per currency, from the period's stage sums.
pub fn forecast(sums: &[StageSum]) -> Vec<ForecastLine> {
    let (mut won, mut weighted, mut committed, mut open) = (
        Totals::default(),
        Totals::default(),
        Totals::default(),
        Totals::default(),
    );
    let mut counts: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for sum in sums {
        let currency = sum.total.currency_code.clone();
        match sum.state {
            StageKind::Won => {
                won.add(&sum.total);
                counts.entry(currency).or_default().0 += sum.deals;
            }
            StageKind::Open => {
                open.add(&sum.total);
                weighted.add(&sum.total.scaled(sum.probability));
                if sum.probability >= COMMIT_PROBABILITY {
                    committed.add(&sum.total);
                }
                counts.entry(currency).or_default().1 += sum.deals;
            }
            StageKind::Lost => {}
        }
    }
    let count = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
    counts
        .into_iter()
        .map(|(currency, (won_count, open_count))| {
            let closed_won = won.get(&currency);
            let sum = |a: &Money, b: &Money| {
                Money::from_nanos(&currency, a.total_nanos() + b.total_nanos())
            };
            ForecastLine {
                commit: sum(&closed_won, &committed.get(&currency)),
                best_case: sum(&closed_won, &open.get(&currency)),
                weighted_pipeline: weighted.get(&currency),
                closed_won,
                won_count: count(won_count),
                open_count: count(open_count),
                currency_code: currency,
            }
        })
        .collect()
}

/// One stage's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct StageNumbers {
    /// The stage's resource name.
    pub stage: String,
    /// Its name for people.
    pub display_name: String,
    /// Deals in it now.
    pub current_count: i32,
    /// Their amounts per currency.
    pub current_amounts: Vec<Money>,
    /// Entries into it in the period.
    pub entered_count: i32,
    /// Share of those entries that later reached a further, not-lost stage.
    pub conversion_rate: f64,
    /// Mean days of the stays in it that ended in the period.
    pub average_days_in_stage: f64,
}

/// Stage by stage numbers of `pipeline` over `deals` (its opportunities) for `[start, end)`.
pub fn analyze(
    pipeline: &Pipeline,
    deals: &[Opportunity],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<StageNumbers> {
    let position = |stage: &str| pipeline.stage(stage).map(|(i, s)| (i, s.kind));
    pipeline
        .stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let name = pipeline.stage_name(stage);
            let mut amounts = Totals::default();
            let mut current_count = 0;
            let (mut entered, mut advanced) = (0, 0);
            let (mut stays, mut stay_days) = (0, 0.0);
            for deal in deals {
                if deal.draft.stage == name {
                    current_count += 1;
                    if let Some(amount) = &deal.draft.amount {
                        amounts.add(amount);
                    }
                }
                let history = &deal.stage_history;
                for (i, change) in history.iter().enumerate() {
                    if change.stage != name {
                        continue;
                    }
                    let later = &history[i + 1..];
                    if change.change_time >= start && change.change_time < end {
                        entered += 1;
                        let moved_on = later.iter().any(|next| {
                            position(&next.stage)
                                .is_some_and(|(j, kind)| j > index && kind != StageKind::Lost)
                        });
                        if moved_on {
                            advanced += 1;
                        }
                    }
                    if let Some(next) = later.first()
                        && next.change_time >= start
                        && next.change_time < end
                    {
                        stays += 1;
                        stay_days +=
                            (next.change_time - change.change_time).num_seconds() as f64 / 86_400.0;
                    }
                }
            }
            StageNumbers {
                stage: name,
                display_name: stage.display_name.clone(),
                current_count,
                current_amounts: amounts.currencies().map(|c| amounts.get(c)).collect(),
                entered_count: entered,
                conversion_rate: if entered > 0 {
                    f64::from(advanced) / f64::from(entered)
                } else {
                    0.0
                },
                average_days_in_stage: if stays > 0 {
                    stay_days / f64::from(stays)
                } else {
                    0.0
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn money(currency: &str, units: i64) -> Money {
        Money {
            currency_code: currency.into(),
            units,
            nanos: 0,
        }
    }

    #[test]
    fn forecast_lines_per_currency() {
        let sum = |amount: Money, state: StageKind, probability: f64, deals: i64| StageSum {
            state,
            probability,
            deals,
            total: amount,
        };
        let sums = vec![
            sum(money("EUR", 1000), StageKind::Won, 1.0, 1),
            sum(money("EUR", 400), StageKind::Open, 0.75, 1),
            sum(money("EUR", 200), StageKind::Open, 0.25, 1),
            sum(money("USD", 50), StageKind::Open, 0.5, 2),
            sum(money("EUR", 70), StageKind::Lost, 0.0, 1),
        ];
        let lines = forecast(&sums);
        assert_eq!(lines.len(), 2);
        let eur = &lines[0];
        assert_eq!(eur.currency_code, "EUR");
        assert_eq!(eur.closed_won, money("EUR", 1000));
        assert_eq!(eur.weighted_pipeline, money("EUR", 350));
        assert_eq!(eur.commit, money("EUR", 1400));
        assert_eq!(eur.best_case, money("EUR", 1600));
        assert_eq!((eur.won_count, eur.open_count), (1, 2));
        assert_eq!(lines[1].weighted_pipeline, money("USD", 25));
        assert_eq!(lines[1].open_count, 2);
    }

    #[test]
    fn a_period_counts_the_dates_whose_midnight_it_holds() {
        let at = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 10, d, h, 0, 0).unwrap();
        let date = |d: u32| NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
        assert_eq!(expected_dates(at(1, 0), at(8, 0)), Some((date(1), date(7))));
        assert_eq!(expected_dates(at(1, 9), at(8, 9)), Some((date(2), date(8))));
        assert_eq!(
            expected_dates(at(1, 9), at(1, 18)),
            None,
            "no midnight inside"
        );
        assert_eq!(expected_dates(at(1, 0), at(1, 1)), Some((date(1), date(1))));
    }
}
