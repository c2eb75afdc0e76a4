//! The daily aggregates: facts added as resources change.

use sea_orm::{ConnectionTrait, DbErr};

use super::{Scope, sql::Sql};
use crate::domain::facts::Fact;

/// Adds each fact to its day's total (creating the total at the first).
pub async fn add<C: ConnectionTrait>(conn: &C, scope: &Scope, facts: &[Fact]) -> Result<(), DbErr> {
    for fact in facts {
        let d = &fact.dims;
        let statement = Sql::new(
            "INSERT INTO rm_facts (generation, tenant, fact, day, owner, pipeline, campaign, queue, \
             channel, company, grp, currency_code, count, units, nanos, measure) VALUES (",
        )
        .bind("", scope.generation)
        .bind(", ", scope.tenant.clone())
        .bind(", ", fact.name.clone())
        .bind(", ", crate::domain::period::day_key(fact.day))
        .bind(", ", d.owner.clone())
        .bind(", ", d.pipeline.clone())
        .bind(", ", d.campaign.clone())
        .bind(", ", d.queue.clone())
        .bind(", ", d.channel.clone())
        .bind(", ", d.company.clone())
        .bind(", ", d.group.clone())
        .bind(", ", fact.currency.clone())
        .bind(", ", fact.count)
        .bind(", ", fact.units)
        .bind(", ", fact.nanos)
        .bind(", ", fact.measure)
        .push(
            ") ON CONFLICT (generation, tenant, fact, day, owner, pipeline, campaign, queue, channel, \
             company, grp, currency_code) DO UPDATE SET count = rm_facts.count + excluded.count, \
             units = rm_facts.units + excluded.units, nanos = rm_facts.nanos + excluded.nanos, \
             measure = rm_facts.measure + excluded.measure",
        )
        .build(conn.get_database_backend());
        conn.execute_raw(statement).await?;
    }
    Ok(())
}
