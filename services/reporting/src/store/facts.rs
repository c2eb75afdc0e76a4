//! The daily aggregates: facts added as resources change, in two tables.
//!
//! `rm_facts` keeps every dimension, so any filter can be answered; with an
//! owner and a company on each deal it holds about a row per deal. A KPI
//! asked without an owner or company filter reads `rm_fact_totals` instead,
//! the same sums without those two dimensions: a few rows per fact and day
//! whatever the number of deals.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbErr};

use super::{Scope, sql::Sql};
use crate::domain::{
    facts::{Dims, Fact},
    kpi::Filter,
};

/// Which table of daily aggregates answers `filter`.
pub fn table_for(filter: &Filter) -> &'static str {
    if filter.owners.is_empty() && filter.company.is_empty() {
        "rm_fact_totals"
    } else {
        "rm_facts"
    }
}

/// Adds each fact to its day's total in both tables (creating the total at
/// the first).
pub async fn add<C: ConnectionTrait>(conn: &C, scope: &Scope, facts: &[Fact]) -> Result<(), DbErr> {
    for fact in facts {
        conn.execute_raw(upsert(scope, fact, true).build(conn.get_database_backend()))
            .await?;
    }
    for total in totals(facts) {
        conn.execute_raw(upsert(scope, &total, false).build(conn.get_database_backend()))
            .await?;
    }
    Ok(())
}

/// `facts` without their owner and company, those that then share a key
/// summed into one; none that would change nothing.
fn totals(facts: &[Fact]) -> Vec<Fact> {
    let mut totals: BTreeMap<_, Fact> = BTreeMap::new();
    for fact in facts {
        let total = Fact {
            dims: Dims {
                owner: String::new(),
                company: String::new(),
                ..fact.dims.clone()
            },
            ..fact.clone()
        };
        match totals.get_mut(&total.key()) {
            Some(sum) => sum.add(fact, 1),
            None => {
                totals.insert(total.key(), total);
            }
        }
    }
    totals.into_values().filter(|f| !f.is_zero()).collect()
}

/// The statement adding `fact` to `rm_facts` (`detailed`) or to
/// `rm_fact_totals`.
fn upsert(scope: &Scope, fact: &Fact, detailed: bool) -> Sql {
    let d = &fact.dims;
    let (table, owner_company) = if detailed {
        ("rm_facts", " owner, company,")
    } else {
        ("rm_fact_totals", "")
    };
    let mut sql = Sql::new(&format!(
        "INSERT INTO {table} (generation, tenant, fact, day,{owner_company} pipeline, campaign, \
         queue, channel, grp, currency_code, count, units, nanos, measure) VALUES ("
    ))
    .bind("", scope.generation)
    .bind(", ", scope.tenant.clone())
    .bind(", ", fact.name.clone())
    .bind(", ", crate::domain::period::day_key(fact.day));
    if detailed {
        sql = sql
            .bind(", ", d.owner.clone())
            .bind(", ", d.company.clone());
    }
    sql.bind(", ", d.pipeline.clone())
        .bind(", ", d.campaign.clone())
        .bind(", ", d.queue.clone())
        .bind(", ", d.channel.clone())
        .bind(", ", d.group.clone())
        .bind(", ", fact.currency.clone())
        .bind(", ", fact.count)
        .bind(", ", fact.units)
        .bind(", ", fact.nanos)
        .bind(", ", fact.measure)
        .push(&format!(
            ") ON CONFLICT (generation, tenant, fact, day,{owner_company} pipeline, campaign, queue, \
             channel, grp, currency_code) DO UPDATE SET count = {table}.count + excluded.count, \
             units = {table}.units + excluded.units, nanos = {table}.nanos + excluded.nanos, \
             measure = {table}.measure + excluded.measure"
        ))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::domain::facts::DEAL_WON;

    #[test]
    fn totals_drop_owner_and_company_and_sum_the_rest() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 3).expect("a day");
        let won = |owner: &str, company: &str, units: i64| {
            Fact::one(
                DEAL_WON,
                day,
                Dims {
                    owner: owner.into(),
                    company: company.into(),
                    pipeline: "pipelines/p".into(),
                    ..Dims::default()
                },
            )
            .with_money("EUR", units, 0)
        };
        // Two owners' wins meet; a reopened deal's -1 cancels a win out.
        let reopened = Fact {
            count: -1,
            units: -300,
            ..won("users/bo", "companies/c2", 300)
        };
        let summed = totals(&[
            won("users/ada", "companies/c1", 1000),
            won("users/bo", "companies/c2", 500),
            reopened,
        ]);
        assert_eq!(summed.len(), 1);
        let total = &summed[0];
        assert_eq!((total.count, total.units), (1, 1200));
        assert_eq!(
            (total.dims.owner.as_str(), total.dims.company.as_str()),
            ("", "")
        );
        assert_eq!(total.dims.pipeline, "pipelines/p");
        // Facts that cancel out entirely write nothing.
        let gone = Fact {
            count: -1,
            units: -1000,
            ..won("users/bo", "companies/c2", 1000)
        };
        assert!(totals(&[won("users/ada", "", 1000), gone]).is_empty());
    }
}
