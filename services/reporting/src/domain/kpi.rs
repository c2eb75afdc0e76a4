//! The KPIs: what each one is, which rows it needs, and how its value over
//! a span is computed from them. The store fetches rows; everything here
//! is arithmetic on them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::{facts, period::Period};

/// What a KPI's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things.
    Count,
    /// A share between 0 and 1.
    Ratio,
    /// Money in the line's currency.
    Money,
    /// Seconds.
    Seconds,
    /// Days.
    Days,
}

/// A KpiFilter field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dimension {
    /// `owners`.
    Owners,
    /// `pipeline`.
    Pipeline,
    /// `campaign`.
    Campaign,
    /// `queue`.
    Queue,
    /// `channel`.
    Channel,
    /// `company`.
    Company,
}

impl Dimension {
    /// The KpiFilter field's name.
    pub fn field(self) -> &'static str {
        match self {
            Self::Owners => "owners",
            Self::Pipeline => "pipeline",
            Self::Campaign => "campaign",
            Self::Queue => "queue",
            Self::Channel => "channel",
            Self::Company => "company",
        }
    }
}

const LEAD_DIMS: &[Dimension] = &[Dimension::Owners, Dimension::Campaign];
const DEAL_DIMS: &[Dimension] = &[
    Dimension::Owners,
    Dimension::Pipeline,
    Dimension::Campaign,
    Dimension::Company,
];
const TICKET_DIMS: &[Dimension] = &[
    Dimension::Owners,
    Dimension::Queue,
    Dimension::Channel,
    Dimension::Company,
];
const EMAIL_DIMS: &[Dimension] = &[Dimension::Campaign];

/// Where a KPI's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A daily aggregate, summed per day, group and currency.
    Fact(&'static str),
    /// A daily aggregate restricted to rows attributed to some campaign.
    Attributed(&'static str),
    /// Seconds to first response per ticket, on the day of the response.
    FirstResponseSeconds,
    /// Seconds to resolution per ticket, on the (last) solve day.
    ResolutionSeconds,
    /// One row per customer and day with a won deal (the group is the customer).
    WonCustomers,
    /// One row per customer, on the day of its first won deal.
    FirstWins,
    /// Campaign costs, on the day each campaign started sending.
    CampaignCosts,
    /// Open deals now, per stage (the group) and currency; no day.
    OpenPipeline,
    /// Forecast snapshots: the weighted amount (measure) per expected close
    /// day and currency, the snapshot day as group; a row with no day marks
    /// each snapshot day fetched.
    Forecasts,
}

/// How a KPI turns its rows into a value.
#[derive(Debug, Clone, Copy)]
enum Recipe {
    /// The sum of counts; with `by_group`, one line per group.
    Count { source: Source, by_group: bool },
    /// The sum of amounts, one line per currency.
    Money { source: Source },
    /// Counts over counts: each side a list of (sign, source, only this group).
    Ratio {
        numerator: &'static [Term],
        denominator: &'static [Term],
    },
    /// The sum of amounts over the count, per currency.
    AverageMoney { source: Source },
    /// The sum of measures over the count.
    AverageMeasure { source: Source },
    /// A percentile (0..1) of the rows' measures, interpolated between ranks.
    Percentile { source: Source, quantile: f64 },
    /// The running sum of counts up to the span's last day.
    Running { source: Source },
    /// Customers whose first won deal falls in the span.
    NewCustomers,
    /// Won revenue over the customers who won a deal in the span, per currency.
    RevenuePerCustomer,
    /// Won revenue up to the span's end over the customers won by then, per currency.
    LifetimeValue,
    /// (attributed won revenue - cost of campaigns started) / cost, per currency.
    Roi,
    /// The open pipeline now, per stage and currency, whatever the span.
    OpenPipeline,
    /// Of the customers won before the span, per cohort (the month of their
    /// first win), the share with another deal won in it; or, with `churn`,
    /// the share without.
    Cohorts { churn: bool },
    /// The weighted pipeline expected to close in the span, as it stood on
    /// its first day, per currency.
    Forecast,
    /// Won revenue in the span over that forecast, per currency.
    ForecastAccuracy,
}

/// One side of a ratio: sign, source, and the only group counted ("" for all).
type Term = (i64, Source, &'static str);

/// A KPI.
#[derive(Debug, Clone, Copy)]
pub struct Kpi {
    /// Its name.
    pub name: &'static str,
    /// How it is computed, in a sentence.
    pub description: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Its breakdown, or "".
    pub group_by: &'static str,
    /// The filters it accepts.
    pub filters: &'static [Dimension],
    recipe: Recipe,
}

const fn kpi(
    name: &'static str,
    description: &'static str,
    unit: Unit,
    filters: &'static [Dimension],
    recipe: Recipe,
) -> Kpi {
    Kpi {
        name,
        description,
        unit,
        group_by: "",
        filters,
        recipe,
    }
}

use Source::*;

const SENT: &[Term] = &[(1, Fact(facts::EMAIL_SENT), "")];
const DELIVERED: &[Term] = &[
    (1, Fact(facts::EMAIL_SENT), ""),
    (-1, Fact(facts::EMAIL_BOUNCED), ""),
];

/// Every KPI, sorted by name.
pub static CATALOGUE: &[Kpi] = &[
    Kpi {
        group_by: "cohort",
        ..kpi(
            "customers.churn_by_cohort",
            "Of the customers won before the period, per cohort (the month of their first won deal, \"YYYY-MM\", and \"all\"), the share that won no deal in the period: 1 - retention.",
            Unit::Ratio,
            &[],
            Recipe::Cohorts { churn: true },
        )
    },
    kpi(
        "customers.lifetime_value",
        "Historical customer lifetime value: all won revenue up to the period's end divided by the customers (companies, or contacts without one) won by then, per currency.",
        Unit::Money,
        &[],
        Recipe::LifetimeValue,
    ),
    kpi(
        "customers.new",
        "Customers (companies, or contacts without one) whose first won deal closed in the period.",
        Unit::Count,
        &[],
        Recipe::NewCustomers,
    ),
    Kpi {
        group_by: "cohort",
        ..kpi(
            "customers.retention_by_cohort",
            "Of the customers won before the period, per cohort (the month of their first won deal, \"YYYY-MM\", and \"all\"), the share with another deal won in the period.",
            Unit::Ratio,
            &[],
            Recipe::Cohorts { churn: false },
        )
    },
    kpi(
        "customers.revenue_per_customer",
        "Won revenue in the period divided by the customers with a deal won in the period, per currency.",
        Unit::Money,
        DEAL_DIMS,
        Recipe::RevenuePerCustomer,
    ),
    kpi(
        "marketing.attributed_leads",
        "Leads created in the period that name a campaign.",
        Unit::Count,
        LEAD_DIMS,
        Recipe::Count {
            source: Attributed(facts::LEAD_CREATED),
            by_group: false,
        },
    ),
    kpi(
        "marketing.attributed_revenue",
        "Revenue of deals won in the period that were converted from a lead naming a campaign, per currency.",
        Unit::Money,
        DEAL_DIMS,
        Recipe::Money {
            source: Attributed(facts::DEAL_WON),
        },
    ),
    kpi(
        "marketing.bounce_rate",
        "Bounces over messages sent, in the period.",
        Unit::Ratio,
        EMAIL_DIMS,
        Recipe::Ratio {
            numerator: &[(1, Fact(facts::EMAIL_BOUNCED), "")],
            denominator: SENT,
        },
    ),
    kpi(
        "marketing.click_rate",
        "Recipients' first clicks over messages delivered (sent minus bounced), in the period.",
        Unit::Ratio,
        EMAIL_DIMS,
        Recipe::Ratio {
            numerator: &[(1, Fact(facts::EMAIL_CLICKED), "")],
            denominator: DELIVERED,
        },
    ),
    kpi(
        "marketing.delivery_rate",
        "Messages delivered (sent minus bounced) over messages sent, in the period.",
        Unit::Ratio,
        EMAIL_DIMS,
        Recipe::Ratio {
            numerator: DELIVERED,
            denominator: SENT,
        },
    ),
    kpi(
        "marketing.emails_sent",
        "Marketing messages (campaigns and journeys) accepted by the relay in the period.",
        Unit::Count,
        EMAIL_DIMS,
        Recipe::Count {
            source: Fact(facts::EMAIL_SENT),
            by_group: false,
        },
    ),
    kpi(
        "marketing.open_rate",
        "Recipients' first opens over messages delivered (sent minus bounced), in the period.",
        Unit::Ratio,
        EMAIL_DIMS,
        Recipe::Ratio {
            numerator: &[(1, Fact(facts::EMAIL_OPENED), "")],
            denominator: DELIVERED,
        },
    ),
    kpi(
        "marketing.roi",
        "(Attributed won revenue - cost of the campaigns that started sending in the period) / that cost, per currency; absent where nothing was spent.",
        Unit::Ratio,
        &[Dimension::Campaign],
        Recipe::Roi,
    ),
    kpi(
        "marketing.unsubscribe_rate",
        "Unsubscribes through marketing email over messages delivered, in the period.",
        Unit::Ratio,
        EMAIL_DIMS,
        Recipe::Ratio {
            numerator: &[(1, Fact(facts::EMAIL_UNSUBSCRIBED), "")],
            denominator: DELIVERED,
        },
    ),
    kpi(
        "sales.average_deal_size",
        "Revenue of deals won in the period over their number, per currency.",
        Unit::Money,
        DEAL_DIMS,
        Recipe::AverageMoney {
            source: Fact(facts::DEAL_WON),
        },
    ),
    kpi(
        "sales.deals_won",
        "Deals won in the period.",
        Unit::Count,
        DEAL_DIMS,
        Recipe::Count {
            source: Fact(facts::DEAL_WON),
            by_group: false,
        },
    ),
    kpi(
        "sales.forecast",
        "The open deals expected to close in the period, each weighted by its stage's probability, as they stood on the period's first day (from the daily forecast snapshots), per currency; absent before the first snapshot.",
        Unit::Money,
        &[],
        Recipe::Forecast,
    ),
    kpi(
        "sales.forecast_accuracy",
        "Revenue won in the period over sales.forecast for it (1 is a perfect forecast), per currency.",
        Unit::Ratio,
        &[],
        Recipe::ForecastAccuracy,
    ),
    kpi(
        "sales.lead_conversion_rate",
        "Of the leads created in the period, the share converted (by now).",
        Unit::Ratio,
        LEAD_DIMS,
        Recipe::Ratio {
            numerator: &[(1, Fact(facts::LEAD_CONVERTED), "")],
            denominator: &[(1, Fact(facts::LEAD_CREATED), "")],
        },
    ),
    Kpi {
        group_by: "source",
        ..kpi(
            "sales.leads_by_source",
            "Leads created in the period, per lead source.",
            Unit::Count,
            LEAD_DIMS,
            Recipe::Count {
                source: Fact(facts::LEAD_CREATED),
                by_group: true,
            },
        )
    },
    kpi(
        "sales.leads_created",
        "Leads created in the period.",
        Unit::Count,
        LEAD_DIMS,
        Recipe::Count {
            source: Fact(facts::LEAD_CREATED),
            by_group: false,
        },
    ),
    Kpi {
        group_by: "stage",
        ..kpi(
            "sales.pipeline_value_by_stage",
            "The amount of the deals open now, per stage and currency. It describes the present: the period is ignored and there are no comparisons or series.",
            Unit::Money,
            DEAL_DIMS,
            Recipe::OpenPipeline,
        )
    },
    kpi(
        "sales.sales_cycle_days",
        "Days from creation to win, averaged over the deals won in the period.",
        Unit::Days,
        DEAL_DIMS,
        Recipe::AverageMeasure {
            source: Fact(facts::DEAL_WON),
        },
    ),
    kpi(
        "sales.win_rate",
        "Deals won over deals closed (won or lost) in the period.",
        Unit::Ratio,
        DEAL_DIMS,
        Recipe::Ratio {
            numerator: &[(1, Fact(facts::DEAL_WON), "")],
            denominator: &[
                (1, Fact(facts::DEAL_WON), ""),
                (1, Fact(facts::DEAL_LOST), ""),
            ],
        },
    ),
    kpi(
        "sales.won_revenue",
        "Revenue of deals won in the period, per currency.",
        Unit::Money,
        DEAL_DIMS,
        Recipe::Money {
            source: Fact(facts::DEAL_WON),
        },
    ),
    kpi(
        "support.backlog",
        "Tickets open (created, not deleted, not solved) at the end of the period.",
        Unit::Count,
        TICKET_DIMS,
        Recipe::Running {
            source: Fact(facts::TICKET_BACKLOG),
        },
    ),
    kpi(
        "support.csat",
        "Satisfaction ratings of 4 or 5 (of 5) over all ratings given in the period; a changed rating counts once, as last given.",
        Unit::Ratio,
        TICKET_DIMS,
        Recipe::Ratio {
            numerator: &[(1, Fact(facts::TICKET_RATED), "good")],
            denominator: &[(1, Fact(facts::TICKET_RATED), "")],
        },
    ),
    kpi(
        "support.first_response_time_median",
        "Median wall-clock seconds from a ticket's creation to its first public agent reply, over the first replies in the period.",
        Unit::Seconds,
        TICKET_DIMS,
        Recipe::Percentile {
            source: FirstResponseSeconds,
            quantile: 0.5,
        },
    ),
    kpi(
        "support.first_response_time_p90",
        "90th percentile of the seconds to first response, likewise.",
        Unit::Seconds,
        TICKET_DIMS,
        Recipe::Percentile {
            source: FirstResponseSeconds,
            quantile: 0.9,
        },
    ),
    kpi(
        "support.reopen_rate",
        "Of the tickets solved in the period (by their last solve), the share reopened at least once.",
        Unit::Ratio,
        TICKET_DIMS,
        Recipe::Ratio {
            numerator: &[(1, Fact(facts::TICKET_SOLVED_REOPENED), "")],
            denominator: &[(1, Fact(facts::TICKET_SOLVED), "")],
        },
    ),
    kpi(
        "support.resolution_time_median",
        "Median wall-clock seconds from a ticket's creation to its (last) solve, over the tickets solved in the period.",
        Unit::Seconds,
        TICKET_DIMS,
        Recipe::Percentile {
            source: ResolutionSeconds,
            quantile: 0.5,
        },
    ),
    kpi(
        "support.resolution_time_p90",
        "90th percentile of the seconds to resolution, likewise.",
        Unit::Seconds,
        TICKET_DIMS,
        Recipe::Percentile {
            source: ResolutionSeconds,
            quantile: 0.9,
        },
    ),
    kpi(
        "support.sla_compliance",
        "Of the tickets solved in the period, the share that missed no SLA target.",
        Unit::Ratio,
        TICKET_DIMS,
        Recipe::Ratio {
            numerator: &[
                (1, Fact(facts::TICKET_SOLVED), ""),
                (-1, Fact(facts::TICKET_SOLVED_BREACHED), ""),
            ],
            denominator: &[(1, Fact(facts::TICKET_SOLVED), "")],
        },
    ),
    Kpi {
        group_by: "channel",
        ..kpi(
            "support.tickets_by_channel",
            "Tickets opened in the period, per channel.",
            Unit::Count,
            TICKET_DIMS,
            Recipe::Count {
                source: Fact(facts::TICKET_BY_CHANNEL),
                by_group: true,
            },
        )
    },
    Kpi {
        group_by: "priority",
        ..kpi(
            "support.tickets_by_priority",
            "Tickets opened in the period, per priority (as it is now).",
            Unit::Count,
            TICKET_DIMS,
            Recipe::Count {
                source: Fact(facts::TICKET_BY_PRIORITY),
                by_group: true,
            },
        )
    },
    kpi(
        "support.tickets_created",
        "Tickets opened in the period.",
        Unit::Count,
        TICKET_DIMS,
        Recipe::Count {
            source: Fact(facts::TICKET_BY_CHANNEL),
            by_group: false,
        },
    ),
];

impl Kpi {
    /// Whether a span without data has the value 0 (a count, a sum) rather
    /// than none (a rate, an average, a percentile).
    pub fn empty_is_zero(&self) -> bool {
        matches!(
            self.recipe,
            Recipe::Count { .. }
                | Recipe::Money { .. }
                | Recipe::Running { .. }
                | Recipe::NewCustomers
        )
    }

    /// Whether it describes the present rather than a period.
    pub fn is_snapshot(&self) -> bool {
        matches!(self.recipe, Recipe::OpenPipeline)
    }
}

/// The KPI named `name`.
pub fn find(name: &str) -> Option<&'static Kpi> {
    CATALOGUE.iter().find(|k| k.name == name)
}

/// What a query is narrowed to; empty fields do not narrow.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    /// Owners' (assignees') subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// "pipelines/{id}".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline: String,
    /// "campaigns/{id}".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub campaign: String,
    /// "queues/{id}".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub queue: String,
    /// A ticket channel.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// "companies/{id}".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub company: String,
}

/// One fetched row: a day's sum for a group and currency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// The day.
    pub day: Option<NaiveDate>,
    /// The group ("" when none).
    pub group: String,
    /// The currency ("" when none).
    pub currency: String,
    /// The count.
    pub count: i64,
    /// Money: whole units.
    pub units: i64,
    /// Money: nano units.
    pub nanos: i64,
    /// The measure.
    pub measure: f64,
}

impl Row {
    fn money(&self) -> f64 {
        self.units as f64 + self.nanos as f64 / 1e9
    }
}

/// The rows a KPI's sources gave, for the days it asked.
pub type Inputs = BTreeMap<Source, Vec<Row>>;

/// What a KPI needs fetched: each source, and whether from the beginning
/// of time (running totals) rather than from the span's start.
pub fn sources(kpi: &Kpi) -> Vec<(Source, bool)> {
    match kpi.recipe {
        Recipe::Count { source, .. }
        | Recipe::Money { source }
        | Recipe::AverageMoney { source }
        | Recipe::AverageMeasure { source }
        | Recipe::Percentile { source, .. } => vec![(source, false)],
        Recipe::Running { source } => vec![(source, true)],
        Recipe::Ratio {
            numerator,
            denominator,
        } => {
            let set: BTreeSet<Source> = numerator.iter().chain(denominator).map(|t| t.1).collect();
            set.into_iter().map(|s| (s, false)).collect()
        }
        Recipe::NewCustomers => vec![(FirstWins, false)],
        Recipe::RevenuePerCustomer => vec![(Fact(facts::DEAL_WON), false), (WonCustomers, false)],
        Recipe::LifetimeValue => vec![(Fact(facts::DEAL_WON), true), (FirstWins, true)],
        Recipe::Roi => vec![(Attributed(facts::DEAL_WON), false), (CampaignCosts, false)],
        Recipe::OpenPipeline => vec![(OpenPipeline, true)],
        Recipe::Cohorts { .. } => vec![(FirstWins, true), (WonCustomers, false)],
        Recipe::Forecast => vec![(Forecasts, false)],
        Recipe::ForecastAccuracy => vec![(Forecasts, false), (Fact(facts::DEAL_WON), false)],
    }
}

/// A KPI's value on one line over one span, with what it was made of.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Value {
    /// The value; None when undefined.
    pub value: Option<f64>,
    /// The counted part of a rate, or an average's sum.
    pub numerator: f64,
    /// What it was divided by.
    pub denominator: f64,
}

/// A line's key: (currency, group).
pub type LineKey = (String, String);

/// The KPI's lines over `span`, from `inputs` (which may hold rows
/// outside it).
pub fn evaluate(kpi: &Kpi, inputs: &Inputs, span: Period) -> BTreeMap<LineKey, Value> {
    let in_span = |source: Source| -> Vec<&Row> {
        inputs
            .get(&source)
            .map(|rows| {
                rows.iter()
                    .filter(|r| r.day.is_some_and(|d| span.contains(d)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let up_to_end = |source: Source| -> Vec<&Row> {
        inputs
            .get(&source)
            .map(|rows| {
                rows.iter()
                    .filter(|r| r.day.is_some_and(|d| d <= span.end))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut lines = BTreeMap::new();
    let plain = || (String::new(), String::new());
    match kpi.recipe {
        Recipe::Count { source, by_group } => {
            if !by_group {
                lines.insert(plain(), Value::default());
            }
            for row in in_span(source) {
                let key = (
                    String::new(),
                    if by_group {
                        row.group.clone()
                    } else {
                        String::new()
                    },
                );
                let line: &mut Value = lines.entry(key).or_default();
                line.numerator += row.count as f64;
            }
            for line in lines.values_mut() {
                line.value = Some(line.numerator);
                line.numerator = 0.0;
            }
        }
        Recipe::Running { source } => {
            let total: i64 = up_to_end(source).iter().map(|r| r.count).sum();
            lines.insert(
                plain(),
                Value {
                    value: Some(total as f64),
                    ..Value::default()
                },
            );
        }
        Recipe::Money { source } => {
            for (currency, (money, _)) in per_currency(&in_span(source)) {
                lines.insert(
                    (currency, String::new()),
                    Value {
                        value: Some(money),
                        ..Value::default()
                    },
                );
            }
        }
        Recipe::AverageMoney { source } => {
            for (currency, (money, count)) in per_currency(&in_span(source)) {
                lines.insert((currency, String::new()), ratio(money, count as f64));
            }
        }
        Recipe::AverageMeasure { source } => {
            let rows = in_span(source);
            let sum: f64 = rows.iter().map(|r| r.measure).sum();
            let count: i64 = rows.iter().map(|r| r.count).sum();
            lines.insert(plain(), ratio(sum, count as f64));
        }
        Recipe::Ratio {
            numerator,
            denominator,
        } => {
            let side = |terms: &[Term]| -> f64 {
                terms
                    .iter()
                    .map(|(sign, source, group)| {
                        let rows = in_span(*source);
                        let count: i64 = rows
                            .iter()
                            .filter(|r| group.is_empty() || r.group == *group)
                            .map(|r| r.count)
                            .sum();
                        (*sign * count) as f64
                    })
                    .sum()
            };
            lines.insert(plain(), ratio(side(numerator), side(denominator)));
        }
        Recipe::Percentile { source, quantile } => {
            let mut values: Vec<f64> = in_span(source).iter().map(|r| r.measure).collect();
            values.sort_by(f64::total_cmp);
            let value = percentile(&values, quantile);
            lines.insert(
                plain(),
                Value {
                    value,
                    numerator: 0.0,
                    denominator: values.len() as f64,
                },
            );
        }
        Recipe::NewCustomers => {
            let count = in_span(FirstWins).len();
            lines.insert(
                plain(),
                Value {
                    value: Some(count as f64),
                    ..Value::default()
                },
            );
        }
        Recipe::RevenuePerCustomer => {
            let customers: BTreeSet<&str> = in_span(WonCustomers)
                .iter()
                .map(|r| r.group.as_str())
                .collect();
            for (currency, (money, _)) in per_currency(&in_span(Fact(facts::DEAL_WON))) {
                lines.insert(
                    (currency, String::new()),
                    ratio(money, customers.len() as f64),
                );
            }
        }
        Recipe::LifetimeValue => {
            let customers = up_to_end(FirstWins).len();
            for (currency, (money, _)) in per_currency(&up_to_end(Fact(facts::DEAL_WON))) {
                lines.insert((currency, String::new()), ratio(money, customers as f64));
            }
        }
        Recipe::OpenPipeline => {
            let rows = inputs
                .get(&OpenPipeline)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for row in rows {
                let line: &mut Value = lines
                    .entry((row.currency.clone(), row.group.clone()))
                    .or_default();
                let amount = row.money() + line.value.unwrap_or_default();
                line.value = Some(amount);
                line.denominator += row.count as f64;
            }
        }
        Recipe::Cohorts { churn } => {
            let active: BTreeSet<&str> = in_span(WonCustomers)
                .iter()
                .map(|r| r.group.as_str())
                .collect();
            let mut cohorts: BTreeMap<String, (f64, f64)> = BTreeMap::new();
            for row in up_to_end(FirstWins) {
                let Some(first) = row.day.filter(|d| *d < span.start) else {
                    continue;
                };
                let kept = f64::from(u8::from(active.contains(row.group.as_str())));
                for cohort in [first.format("%Y-%m").to_string(), "all".to_owned()] {
                    let entry = cohorts.entry(cohort).or_default();
                    entry.0 += 1.0;
                    entry.1 += kept;
                }
            }
            for (cohort, (size, kept)) in cohorts {
                let counted = if churn { size - kept } else { kept };
                lines.insert((String::new(), cohort), ratio(counted, size));
            }
        }
        Recipe::Forecast => {
            for (currency, amount) in forecast(inputs, span) {
                lines.insert(
                    (currency, String::new()),
                    Value {
                        value: Some(amount),
                        ..Value::default()
                    },
                );
            }
        }
        Recipe::ForecastAccuracy => {
            let won = per_currency(&in_span(Fact(facts::DEAL_WON)));
            for (currency, amount) in forecast(inputs, span) {
                let actual = won.get(&currency).map_or(0.0, |w| w.0);
                lines.insert((currency, String::new()), ratio(actual, amount));
            }
        }
        Recipe::Roi => {
            let revenue = per_currency(&in_span(Attributed(facts::DEAL_WON)));
            let cost = per_currency(&in_span(CampaignCosts));
            let currencies: BTreeSet<&String> = revenue.keys().chain(cost.keys()).collect();
            for currency in currencies {
                let won = revenue.get(currency).map_or(0.0, |v| v.0);
                let spent = cost.get(currency).map_or(0.0, |v| v.0);
                let mut line = ratio(won - spent, spent);
                if spent <= 0.0 {
                    line.value = None;
                }
                lines.insert((currency.clone(), String::new()), line);
            }
        }
    }
    lines
}

/// The weighted pipeline expected to close in `span` per currency, from
/// the latest snapshot taken on or before its first day; empty when none.
fn forecast(inputs: &Inputs, span: Period) -> BTreeMap<String, f64> {
    let rows = inputs
        .get(&Forecasts)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let start = crate::domain::period::day_key(span.start);
    let Some(snapshot) = rows
        .iter()
        .filter(|r| r.day.is_none() && r.group <= start)
        .map(|r| r.group.as_str())
        .max()
    else {
        return BTreeMap::new();
    };
    let mut sums = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| r.group == snapshot && !r.currency.is_empty())
    {
        if row.day.is_some_and(|d| span.contains(d)) {
            *sums.entry(row.currency.clone()).or_insert(0.0) += row.measure;
        }
    }
    sums
}

/// Money and counts per currency.
fn per_currency(rows: &[&Row]) -> BTreeMap<String, (f64, i64)> {
    let mut sums: BTreeMap<String, (i128, i64)> = BTreeMap::new();
    for row in rows {
        let entry = sums.entry(row.currency.clone()).or_default();
        entry.0 += i128::from(row.units) * 1_000_000_000 + i128::from(row.nanos);
        entry.1 += row.count;
    }
    sums.into_iter()
        .filter(|(currency, _)| !currency.is_empty())
        .map(|(currency, (nanos, count))| (currency, (nanos as f64 / 1e9, count)))
        .collect()
}

/// `numerator / denominator`, undefined over nothing.
fn ratio(numerator: f64, denominator: f64) -> Value {
    Value {
        value: (denominator != 0.0).then(|| numerator / denominator),
        numerator,
        denominator,
    }
}

/// The `quantile` of sorted `values`, interpolated linearly between the
/// closest ranks (as PostgreSQL's `percentile_cont`); None for no values.
pub fn percentile(values: &[f64], quantile: f64) -> Option<f64> {
    let last = values.len().checked_sub(1)?;
    let rank = quantile.clamp(0.0, 1.0) * last as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    Some(values[low] + (values[high] - values[low]) * (rank - low as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn row(d: &str, group: &str, currency: &str, count: i64, units: i64) -> Row {
        Row {
            day: Some(day(d)),
            group: group.into(),
            currency: currency.into(),
            count,
            units,
            ..Row::default()
        }
    }

    fn span(a: &str, b: &str) -> Period {
        Period {
            start: day(a),
            end: day(b),
        }
    }

    #[test]
    fn the_catalogue_is_sorted_and_unique() {
        let names: Vec<_> = CATALOGUE.iter().map(|k| k.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn win_rate_counts_only_the_span() {
        let kpi = find("sales.win_rate").unwrap();
        let mut inputs = Inputs::new();
        inputs.insert(
            Fact(facts::DEAL_WON),
            vec![
                row("2026-03-02", "", "EUR", 2, 100),
                row("2026-04-01", "", "EUR", 5, 0),
            ],
        );
        inputs.insert(
            Fact(facts::DEAL_LOST),
            vec![row("2026-03-09", "", "", 2, 0)],
        );
        let lines = evaluate(kpi, &inputs, span("2026-03-01", "2026-03-31"));
        let v = lines[&(String::new(), String::new())];
        assert_eq!((v.value, v.numerator, v.denominator), (Some(0.5), 2.0, 4.0));
        // Nothing closed: undefined, not zero.
        let empty = evaluate(kpi, &inputs, span("2025-03-01", "2025-03-31"));
        assert_eq!(empty[&(String::new(), String::new())].value, None);
    }

    #[test]
    fn money_is_never_added_across_currencies() {
        let kpi = find("sales.average_deal_size").unwrap();
        let mut inputs = Inputs::new();
        inputs.insert(
            Fact(facts::DEAL_WON),
            vec![
                row("2026-03-02", "", "EUR", 2, 300),
                row("2026-03-03", "", "USD", 1, 50),
            ],
        );
        let lines = evaluate(kpi, &inputs, span("2026-03-01", "2026-03-31"));
        assert_eq!(lines[&("EUR".into(), String::new())].value, Some(150.0));
        assert_eq!(lines[&("USD".into(), String::new())].value, Some(50.0));
    }

    #[test]
    fn percentiles_interpolate_like_percentile_cont() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[10.0], 0.9), Some(10.0));
        assert_eq!(percentile(&[10.0, 20.0, 30.0, 40.0], 0.5), Some(25.0));
        let p90 = percentile(&[10.0, 20.0, 30.0, 40.0], 0.9).unwrap();
        assert!((p90 - 37.0).abs() < 1e-9);
    }

    #[test]
    fn backlog_runs_from_the_beginning() {
        let kpi = find("support.backlog").unwrap();
        let mut inputs = Inputs::new();
        inputs.insert(
            Fact(facts::TICKET_BACKLOG),
            vec![
                row("2025-12-30", "", "", 3, 0),
                row("2026-01-05", "", "", -1, 0),
                row("2026-02-01", "", "", 4, 0),
            ],
        );
        let lines = evaluate(kpi, &inputs, span("2026-01-01", "2026-01-31"));
        assert_eq!(lines[&(String::new(), String::new())].value, Some(2.0));
    }

    #[test]
    fn roi_is_per_currency_and_undefined_without_cost() {
        let kpi = find("marketing.roi").unwrap();
        let mut inputs = Inputs::new();
        inputs.insert(
            Attributed(facts::DEAL_WON),
            vec![
                row("2026-03-02", "", "EUR", 1, 300),
                row("2026-03-02", "", "USD", 1, 80),
            ],
        );
        inputs.insert(CampaignCosts, vec![row("2026-03-01", "", "EUR", 1, 100)]);
        let lines = evaluate(kpi, &inputs, span("2026-03-01", "2026-03-31"));
        assert_eq!(lines[&("EUR".into(), String::new())].value, Some(2.0));
        assert_eq!(lines[&("USD".into(), String::new())].value, None);
    }
}
