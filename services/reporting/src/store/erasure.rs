//! Erasure: what the read model holds of a person goes, and the services'
//! confirmations are kept for the erasure status.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};

use super::{
    Scope, Store,
    entities::{
        rm_campaigns, rm_companies, rm_contacts, rm_customers, rm_deals, rm_engagements,
        rm_erasure_confirmations, rm_erasures, rm_leads, rm_stages, rm_tickets, rm_timeline,
    },
};

/// Which generations to delete.
#[derive(Debug, Clone, Copy)]
pub enum Generations {
    /// This one.
    Only(i64),
    /// Every one before this.
    Before(i64),
}

impl Generations {
    fn condition(self, column: impl ColumnTrait) -> sea_orm::sea_query::SimpleExpr {
        match self {
            Self::Only(g) => column.eq(g),
            Self::Before(g) => column.lt(g),
        }
    }
}

/// Deletes every read-model row of `which` generations.
pub async fn delete_generation<C: ConnectionTrait>(
    conn: &C,
    which: Generations,
) -> Result<(), DbErr> {
    macro_rules! clear {
        ($($entity:ident),*) => {
            $(
                $entity::Entity::delete_many()
                    .filter(which.condition($entity::Column::Generation))
                    .exec(conn)
                    .await?;
            )*
        };
    }
    clear!(
        rm_contacts,
        rm_companies,
        rm_stages,
        rm_leads,
        rm_deals,
        rm_customers,
        rm_tickets,
        rm_engagements,
        rm_timeline,
        rm_erasures,
        rm_erasure_confirmations,
        rm_campaigns
    );
    let (operator, generation) = match which {
        Generations::Only(g) => ("=", g),
        Generations::Before(g) => ("<", g),
    };
    for table in ["rm_facts", "rm_fact_totals"] {
        let statement =
            super::sql::Sql::new(&format!("DELETE FROM {table} WHERE generation {operator} "))
                .bind("", generation)
                .build(conn.get_database_backend());
        conn.execute_raw(statement).await?;
    }
    Ok(())
}

impl Store {
    /// Forgets the people in `contacts` (an erased contact and those merged
    /// into it): their names and addresses, timelines, engagements and
    /// ticket subjects; records the erasure and this service's own
    /// confirmation. Returns the resources erased.
    pub async fn erase_contacts<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        erased: &str,
        contacts: &[String],
        time: DateTime<Utc>,
    ) -> Result<Vec<String>, DbErr> {
        // Everything about the person goes, as a rebuild would find it (the
        // sources scrub their events): a contact erased before it was ever
        // seen has none of it either.
        rm_contacts::Entity::update_many()
            .col_expr(rm_contacts::Column::DisplayName, Expr::value(""))
            .col_expr(rm_contacts::Column::Email, Expr::value(""))
            .col_expr(rm_contacts::Column::Company, Expr::value(""))
            .col_expr(rm_contacts::Column::LifecycleStage, Expr::value(""))
            .col_expr(rm_contacts::Column::EmailConsent, Expr::value(0))
            .col_expr(rm_contacts::Column::Erased, Expr::value(true))
            .filter(rm_contacts::Column::Generation.eq(scope.generation))
            .filter(rm_contacts::Column::Tenant.eq(&scope.tenant))
            .filter(rm_contacts::Column::Contact.is_in(contacts))
            .exec(conn)
            .await?;
        // A contact never seen (created and erased before reporting ran)
        // still gets its erased marker, so late events cannot bring it back.
        for contact in contacts {
            rm_contacts::Entity::insert(rm_contacts::ActiveModel {
                generation: Set(scope.generation),
                tenant: Set(scope.tenant.clone()),
                contact: Set(contact.clone()),
                display_name: Set(String::new()),
                email: Set(String::new()),
                company: Set(String::new()),
                lifecycle_stage: Set(String::new()),
                email_consent: Set(0),
                survivor: Set(String::new()),
                erased: Set(true),
                create_time: Set(None),
            })
            .on_conflict(
                OnConflict::columns([
                    rm_contacts::Column::Generation,
                    rm_contacts::Column::Tenant,
                    rm_contacts::Column::Contact,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        }
        let timeline = rm_timeline::Entity::delete_many()
            .filter(rm_timeline::Column::Generation.eq(scope.generation))
            .filter(rm_timeline::Column::Tenant.eq(&scope.tenant))
            .filter(rm_timeline::Column::Contact.is_in(contacts))
            .exec(conn)
            .await?;
        rm_engagements::Entity::delete_many()
            .filter(rm_engagements::Column::Generation.eq(scope.generation))
            .filter(rm_engagements::Column::Tenant.eq(&scope.tenant))
            .filter(rm_engagements::Column::Contact.is_in(contacts))
            .exec(conn)
            .await?;
        let tickets: Vec<String> = super::resources::scoped!(rm_tickets, scope)
            .filter(rm_tickets::Column::Contact.is_in(contacts))
            .all(conn)
            .await?
            .into_iter()
            .map(|t| t.ticket)
            .collect();
        rm_tickets::Entity::update_many()
            .col_expr(rm_tickets::Column::Subject, Expr::value(""))
            .filter(rm_tickets::Column::Generation.eq(scope.generation))
            .filter(rm_tickets::Column::Tenant.eq(&scope.tenant))
            .filter(rm_tickets::Column::Contact.is_in(contacts))
            .exec(conn)
            .await?;
        // Deal titles may name the person (see `put_deal`).
        rm_deals::Entity::update_many()
            .col_expr(rm_deals::Column::DisplayName, Expr::value(""))
            .filter(rm_deals::Column::Generation.eq(scope.generation))
            .filter(rm_deals::Column::Tenant.eq(&scope.tenant))
            .filter(rm_deals::Column::Contact.is_in(contacts))
            .exec(conn)
            .await?;
        rm_erasures::Entity::insert(rm_erasures::ActiveModel {
            generation: Set(scope.generation),
            tenant: Set(scope.tenant.clone()),
            contact: Set(erased.to_owned()),
            erase_time: Set(time),
        })
        .on_conflict(
            OnConflict::columns([
                rm_erasures::Column::Generation,
                rm_erasures::Column::Tenant,
                rm_erasures::Column::Contact,
            ])
            .update_column(rm_erasures::Column::EraseTime)
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        let mut resources: Vec<String> = contacts.to_vec();
        resources.extend(tickets);
        tracing::debug!(timeline = timeline.rows_affected, "timeline entries erased");
        self.confirm_erasure(
            conn,
            scope,
            erased,
            crate::SERVICE.name,
            time,
            resources.len() as i64,
        )
        .await?;
        Ok(resources)
    }

    /// Records a service's confirmation of an erasure.
    pub async fn confirm_erasure<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        contact: &str,
        service: &str,
        time: DateTime<Utc>,
        erased_resources: i64,
    ) -> Result<(), DbErr> {
        rm_erasure_confirmations::Entity::insert(rm_erasure_confirmations::ActiveModel {
            generation: Set(scope.generation),
            tenant: Set(scope.tenant.clone()),
            contact: Set(contact.to_owned()),
            service: Set(service.to_owned()),
            confirm_time: Set(time),
            erased_resources: Set(erased_resources),
        })
        .on_conflict(
            OnConflict::columns([
                rm_erasure_confirmations::Column::Generation,
                rm_erasure_confirmations::Column::Tenant,
                rm_erasure_confirmations::Column::Contact,
                rm_erasure_confirmations::Column::Service,
            ])
            .update_columns([
                rm_erasure_confirmations::Column::ConfirmTime,
                rm_erasure_confirmations::Column::ErasedResources,
            ])
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
        Ok(())
    }
}
