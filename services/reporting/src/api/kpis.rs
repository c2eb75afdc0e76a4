//! QueryKpis: the request checked and turned into domain values, each
//! source fetched once for every KPI that needs it, and the answer built.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use crm_proto::reporting as pb;
use crm_shared::{error::ApiError, validate::Violations};

use crate::{
    domain::{
        kpi::{self, Dimension, Filter as KpiFilter, Inputs, Kpi, LineKey, Source, Value},
        period::{Granularity, Period, day_key},
    },
    store::{Scope, Store},
};

/// The most KPIs one query may ask for.
const MAX_KPIS: usize = 50;
/// Ticket channels as support names them.
const CHANNELS: &[&str] = &["email", "web", "phone", "chat", "api"];

/// A checked QueryKpis request.
pub struct Query {
    kpis: Vec<&'static Kpi>,
    period: Period,
    pub(super) granularity: Granularity,
    pub(super) filter: KpiFilter,
}

impl Query {
    /// Checks `request`; INVALID_ARGUMENT names every bad field.
    pub fn read(request: &pb::QueryKpisRequest) -> Result<Self, ApiError> {
        let mut v = Violations::default();
        if request.kpis.is_empty() {
            v.add("kpis", "name at least one KPI (see ListKpiDefinitions)");
        }
        if request.kpis.len() > MAX_KPIS {
            v.add("kpis", format!("at most {MAX_KPIS} KPIs per query"));
        }
        let mut kpis = Vec::new();
        for (i, name) in request.kpis.iter().enumerate() {
            match kpi::find(name) {
                Some(found) => kpis.push(found),
                None => v.add(
                    format!("kpis[{i}]"),
                    format!("unknown KPI {name:?} (see ListKpiDefinitions)"),
                ),
            }
        }
        let period = match &request.period {
            Some(p) => Period::parse(&p.start_date, &p.end_date, "period", &mut v),
            None => {
                v.add("period", "required");
                None
            }
        };
        let granularity = match pb::Granularity::try_from(request.granularity) {
            Ok(pb::Granularity::Unspecified) => Granularity::None,
            Ok(pb::Granularity::Day) => Granularity::Day,
            Ok(pb::Granularity::Week) => Granularity::Week,
            Ok(pb::Granularity::Month) => Granularity::Month,
            Ok(pb::Granularity::Quarter) => Granularity::Quarter,
            Err(_) => {
                v.add("granularity", "not a Granularity value");
                Granularity::None
            }
        };
        let filter = read_filter(request.filter.as_ref(), &kpis, &mut v);
        v.finish()?;
        let period = period.ok_or_else(|| ApiError::invalid("period", "required"))?;
        if granularity == Granularity::Day && period.days() > 400 {
            return Err(ApiError::invalid(
                "granularity",
                "daily series span at most 400 days; ask for weeks or months",
            ));
        }
        Ok(Self {
            kpis,
            period,
            granularity,
            filter,
        })
    }
}

/// Checks each filter field's shape and that every KPI asked accepts it.
fn read_filter(filter: Option<&pb::KpiFilter>, kpis: &[&Kpi], v: &mut Violations) -> KpiFilter {
    let Some(f) = filter else {
        return KpiFilter::default();
    };
    let mut used = Vec::new();
    let mut reference =
        |value: &str, dimension: Dimension, collection: &str, v: &mut Violations| {
            if value.is_empty() {
                return;
            }
            used.push(dimension);
            let ok = value
                .strip_prefix(collection)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|id| !id.is_empty() && !id.contains('/'));
            if !ok {
                v.add(
                    format!("filter.{}", dimension.field()),
                    format!("must be \"{collection}/{{id}}\""),
                );
            }
        };
    reference(&f.pipeline, Dimension::Pipeline, "pipelines", v);
    reference(&f.campaign, Dimension::Campaign, "campaigns", v);
    reference(&f.queue, Dimension::Queue, "queues", v);
    reference(&f.company, Dimension::Company, "companies", v);
    if !f.channel.is_empty() {
        used.push(Dimension::Channel);
        if !CHANNELS.contains(&f.channel.as_str()) {
            v.add("filter.channel", format!("one of {}", CHANNELS.join(", ")));
        }
    }
    let mut owners = Vec::new();
    for (i, owner) in f.owners.iter().enumerate() {
        let subject = owner.strip_prefix("users/").unwrap_or(owner).trim();
        if subject.is_empty() || subject.len() > 256 {
            v.add(
                format!("filter.owners[{i}]"),
                "a user, \"users/{subject}\" or the subject",
            );
        } else {
            owners.push(subject.to_owned());
        }
    }
    if !owners.is_empty() {
        used.push(Dimension::Owners);
    }
    for dimension in used {
        for k in kpis.iter().filter(|k| !k.filters.contains(&dimension)) {
            v.add(
                format!("filter.{}", dimension.field()),
                format!("{} cannot be filtered by {}", k.name, dimension.field()),
            );
        }
    }
    KpiFilter {
        owners,
        pipeline: f.pipeline.clone(),
        campaign: f.campaign.clone(),
        queue: f.queue.clone(),
        channel: f.channel.clone(),
        company: f.company.clone(),
    }
}

fn period_pb(p: Period) -> pb::Period {
    pb::Period {
        start_date: day_key(p.start),
        end_date: day_key(p.end),
    }
}

/// Computes every KPI of `query`.
pub async fn answer(
    store: &Store,
    scope: &Scope,
    query: &Query,
) -> Result<pb::QueryKpisResponse, ApiError> {
    let (previous, year_ago) = (query.period.previous(), query.period.year_ago());
    let earliest: NaiveDate = previous.start.min(year_ago.start);
    // A running total needs everything before; one fetch serves both.
    let mut wanted: BTreeMap<Source, bool> = BTreeMap::new();
    for (source, from_beginning) in query.kpis.iter().flat_map(|k| kpi::sources(k)) {
        *wanted.entry(source).or_default() |= from_beginning;
    }
    let mut inputs = Inputs::new();
    let buckets = if query.granularity == Granularity::None {
        Vec::new()
    } else {
        query.period.buckets(query.granularity)
    };
    for (source, from_beginning) in wanted {
        let rows = if source == Source::Forecasts {
            let starts: Vec<NaiveDate> = [query.period, previous, year_ago]
                .iter()
                .chain(&buckets)
                .map(|p| p.start)
                .collect();
            store
                .forecast_rows(&scope.tenant, &starts, query.period.end)
                .await?
        } else {
            let from = (!from_beginning).then_some(earliest);
            store
                .kpi_rows(scope, source, from, query.period.end, &query.filter)
                .await?
        };
        inputs.insert(source, rows);
    }
    let results = query
        .kpis
        .iter()
        .map(|k| result(k, &inputs, query.period, previous, year_ago, &buckets))
        .collect();
    Ok(pb::QueryKpisResponse {
        results,
        previous_period: Some(period_pb(previous)),
        year_ago_period: Some(period_pb(year_ago)),
        as_of_time: store.as_of().await?.map(crm_shared::convert::to_timestamp),
    })
}

fn result(
    k: &Kpi,
    inputs: &Inputs,
    period: Period,
    previous: Period,
    year_ago: Period,
    buckets: &[Period],
) -> pb::KpiResult {
    let current = kpi::evaluate(k, inputs, period);
    let (before, last_year) = if k.is_snapshot() {
        (BTreeMap::new(), BTreeMap::new())
    } else {
        (
            kpi::evaluate(k, inputs, previous),
            kpi::evaluate(k, inputs, year_ago),
        )
    };
    let per_bucket: Vec<(Period, BTreeMap<LineKey, Value>)> = if k.is_snapshot() {
        Vec::new()
    } else {
        buckets
            .iter()
            .map(|b| (*b, kpi::evaluate(k, inputs, *b)))
            .collect()
    };
    let mut keys: BTreeSet<LineKey> = current.keys().cloned().collect();
    keys.extend(before.keys().cloned());
    keys.extend(last_year.keys().cloned());
    let lines = keys
        .into_iter()
        .map(|key| {
            // A count or sum with no rows is a zero, not unknown.
            let nothing = Value {
                value: k.empty_is_zero().then_some(0.0),
                ..Value::default()
            };
            let now = current.get(&key).copied().unwrap_or(nothing);
            let was = before
                .get(&key)
                .map_or(nothing.value, |v| v.value)
                .filter(|_| !k.is_snapshot());
            let year = last_year
                .get(&key)
                .map_or(nothing.value, |v| v.value)
                .filter(|_| !k.is_snapshot());
            let change = |old: Option<f64>| match (now.value, old) {
                (Some(new), Some(old)) if old != 0.0 => Some((new - old) / old.abs()),
                _ => None,
            };
            pb::KpiLine {
                currency: key.0.clone(),
                group: key.1.clone(),
                total: Some(pb::KpiValue {
                    value: now.value,
                    previous_value: was,
                    year_ago_value: year,
                    numerator: now.numerator,
                    denominator: now.denominator,
                    change_from_previous: change(was),
                    change_from_year_ago: change(year),
                }),
                buckets: per_bucket
                    .iter()
                    .map(|(span, values)| pb::KpiBucket {
                        start_date: day_key(span.start),
                        end_date: day_key(span.end),
                        value: values.get(&key).map_or(nothing.value, |v| v.value),
                    })
                    .collect(),
            }
        })
        .collect();
    pb::KpiResult {
        kpi: k.name.to_owned(),
        unit: super::convert::unit(k.unit) as i32,
        lines,
    }
}
