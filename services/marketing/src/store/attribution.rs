//! What the sales feed tells marketing: which leads name a campaign, and
//! which deals converted from those leads were won, for how much. Applied
//! inside the shared consumer's transaction, so each event counts once;
//! each row is set to what the latest event says, so a deal reopened, lost
//! or deleted stops counting.

use chrono::{DateTime, Utc};
use crm_shared::{
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    money::Money,
};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, sea_query::OnConflict};
use uuid::Uuid;

use super::{
    Store,
    entities::{campaign_lead, campaign_win},
};

/// A deal as the sales feed last described it.
pub struct Deal {
    /// `opportunities/{id}`.
    pub opportunity: String,
    /// The lead it was converted from, if any.
    pub source_lead: String,
    /// Its amount and when it was won, when it is won (and not deleted).
    pub won: Option<(Option<Money>, DateTime<Utc>)>,
}

impl Store {
    /// Records that `lead` names `campaign` (or, with `None`, no campaign
    /// any more: a lead changed or deleted).
    pub async fn apply_lead(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        lead: &str,
        campaign: Option<Uuid>,
    ) -> Result<(), ApiError> {
        let Some(campaign) = campaign else {
            campaign_lead::Entity::delete_many()
                .filter(campaign_lead::Column::Tenant.eq(tenant.as_str()))
                .filter(campaign_lead::Column::Lead.eq(lead))
                .exec(&**txn)
                .await?;
            // Its won deals no longer count for any campaign.
            campaign_win::Entity::delete_many()
                .filter(campaign_win::Column::Tenant.eq(tenant.as_str()))
                .filter(campaign_win::Column::Lead.eq(lead))
                .exec(&**txn)
                .await?;
            return Ok(());
        };
        // Deals already won follow the lead to its campaign.
        campaign_win::Entity::update_many()
            .col_expr(
                campaign_win::Column::CampaignId,
                sea_orm::sea_query::Expr::value(campaign.to_string()),
            )
            .filter(campaign_win::Column::Tenant.eq(tenant.as_str()))
            .filter(campaign_win::Column::Lead.eq(lead))
            .exec(&**txn)
            .await?;
        let row = campaign_lead::Model {
            tenant: tenant.as_str().to_owned(),
            lead: lead.to_owned(),
            campaign_id: campaign.to_string(),
            create_time: Utc::now(),
        };
        campaign_lead::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::columns([campaign_lead::Column::Tenant, campaign_lead::Column::Lead])
                    .update_column(campaign_lead::Column::CampaignId)
                    .to_owned(),
            )
            .exec(&**txn)
            .await?;
        Ok(())
    }

    /// Counts a won deal for the campaign of the lead it came from, or
    /// stops counting one no longer won.
    pub async fn apply_deal(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        deal: &Deal,
    ) -> Result<(), ApiError> {
        let attributed = match &deal.won {
            Some(_) if !deal.source_lead.is_empty() => {
                campaign_lead::Entity::find_in(tenant)
                    .filter(campaign_lead::Column::Lead.eq(&deal.source_lead))
                    .one(&**txn)
                    .await?
            }
            _ => None,
        };
        let (Some(lead), Some((amount, won_time))) = (attributed, &deal.won) else {
            campaign_win::Entity::delete_many()
                .filter(campaign_win::Column::Tenant.eq(tenant.as_str()))
                .filter(campaign_win::Column::Opportunity.eq(&deal.opportunity))
                .exec(&**txn)
                .await?;
            return Ok(());
        };
        let row = campaign_win::Model {
            tenant: tenant.as_str().to_owned(),
            opportunity: deal.opportunity.clone(),
            campaign_id: lead.campaign_id,
            lead: lead.lead,
            currency_code: amount
                .as_ref()
                .map(|m| m.currency_code.clone())
                .unwrap_or_default(),
            units: amount.as_ref().map_or(0, |m| m.units),
            nanos: amount.as_ref().map_or(0, |m| m.nanos),
            won_time: *won_time,
        };
        campaign_win::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::columns([
                    campaign_win::Column::Tenant,
                    campaign_win::Column::Opportunity,
                ])
                .update_columns([
                    campaign_win::Column::CampaignId,
                    campaign_win::Column::Lead,
                    campaign_win::Column::CurrencyCode,
                    campaign_win::Column::Units,
                    campaign_win::Column::Nanos,
                    campaign_win::Column::WonTime,
                ])
                .to_owned(),
            )
            .exec(&**txn)
            .await?;
        Ok(())
    }
}
