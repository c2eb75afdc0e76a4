//! Forecasts and pipeline analysis, computed from opportunities and their
//! stage history. Amounts are summed per currency, never across currencies.

use chrono::{DateTime, NaiveTime, Utc};
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

/// The forecast for `[start, end)` over `deals`, each with its stage's probability.
pub fn forecast(
    deals: &[(Opportunity, f64)],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<ForecastLine> {
    let (mut won, mut weighted, mut committed, mut open) = Default::default();
    let (won, weighted, committed, open): (&mut Totals, &mut Totals, &mut Totals, &mut Totals) =
        (&mut won, &mut weighted, &mut committed, &mut open);
    let mut counts: std::collections::BTreeMap<String, (i32, i32)> = Default::default();
    for (deal, probability) in deals {
        let Some(amount) = &deal.draft.amount else {
            continue;
        };
        let currency = amount.currency_code.clone();
        match deal.state {
            StageKind::Won if deal.close_time.is_some_and(|t| t >= start && t < end) => {
                won.add(amount);
                counts.entry(currency).or_default().0 += 1;
            }
            StageKind::Open
                if deal.draft.expected_close_date.is_some_and(|date| {
                    let at = date.and_time(NaiveTime::MIN).and_utc();
                    at >= start && at < end
                }) =>
            {
                open.add(amount);
                weighted.add(&amount.scaled(*probability));
                if *probability >= COMMIT_PROBABILITY {
                    committed.add(amount);
                }
                counts.entry(currency).or_default().1 += 1;
            }
            _ => {}
        }
    }
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
                won_count,
                open_count,
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
    use crate::domain::opportunity::OpportunityDraft;
    use chrono::{Duration, NaiveDate, TimeZone};
    use uuid::Uuid;

    fn money(currency: &str, units: i64) -> Money {
        Money {
            currency_code: currency.into(),
            units,
            nanos: 0,
        }
    }

    fn deal(
        amount: Money,
        state: StageKind,
        close: Option<DateTime<Utc>>,
        expected: &str,
    ) -> Opportunity {
        Opportunity {
            id: Uuid::now_v7(),
            draft: OpportunityDraft {
                display_name: "d".into(),
                amount: Some(amount),
                pipeline: String::new(),
                stage: String::new(),
                expected_close_date: NaiveDate::parse_from_str(expected, "%Y-%m-%d").ok(),
                owner: "ann".into(),
                contact: String::new(),
                company: String::new(),
                line_items: vec![],
                close_reason: String::new(),
            },
            state,
            close_time: close,
            stage_history: vec![],
            source_lead: String::new(),
            create_time: Utc::now(),
            update_time: Utc::now(),
            delete_time: None,
            version: 1,
        }
    }

    #[test]
    fn forecast_lines_per_currency() {
        let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let inside = start + Duration::days(10);
        let deals = vec![
            (
                deal(money("EUR", 1000), StageKind::Won, Some(inside), ""),
                1.0,
            ),
            (
                deal(money("EUR", 400), StageKind::Open, None, "2026-11-30"),
                0.75,
            ),
            (
                deal(money("EUR", 200), StageKind::Open, None, "2026-12-01"),
                0.25,
            ),
            (
                deal(money("EUR", 999), StageKind::Open, None, "2027-02-01"),
                0.5,
            ), // after the period
            (
                deal(money("USD", 50), StageKind::Open, None, "2026-10-02"),
                0.5,
            ),
            (
                deal(money("EUR", 70), StageKind::Lost, Some(inside), ""),
                0.0,
            ),
        ];
        let lines = forecast(&deals, start, end);
        assert_eq!(lines.len(), 2);
        let eur = &lines[0];
        assert_eq!(eur.currency_code, "EUR");
        assert_eq!(eur.closed_won, money("EUR", 1000));
        assert_eq!(eur.weighted_pipeline, money("EUR", 350));
        assert_eq!(eur.commit, money("EUR", 1400));
        assert_eq!(eur.best_case, money("EUR", 1600));
        assert_eq!((eur.won_count, eur.open_count), (1, 2));
        assert_eq!(lines[1].weighted_pipeline, money("USD", 25));
    }
}
