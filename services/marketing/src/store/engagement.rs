//! Engagements: what recipients did with the messages, each with its event,
//! and the suppression of addresses that must not be mailed again.

use std::collections::HashMap;

use chrono::Utc;
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Tenant, TenantScoped},
    error::ApiError,
    privacy::email_fingerprint,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
    sea_query::Expr,
};
use uuid::Uuid;

use super::{
    Store,
    entities::{campaign_recipient, engagement, suppression},
};
use crate::domain::{
    campaign::Recipient,
    tracking::{ENGAGEMENTS, Engagement, EngagementCounts},
};

/// The event each engagement raises.
fn event_name(kind: Engagement) -> &'static str {
    match kind {
        Engagement::Opened => "EmailOpened",
        Engagement::Clicked => "EmailClicked",
        Engagement::Unsubscribed => "ContactUnsubscribed",
        Engagement::Bounced => "EmailBounced",
        Engagement::Complained => "EmailComplained",
    }
}

impl Store {
    /// Records that `contact` did `kind` with `campaign`'s message, with its
    /// event. A bounce, complaint or unsubscribe is recorded once per
    /// message (`false` when it was already); opens and clicks every time.
    pub async fn record_engagement(
        &self,
        tenant: &Tenant,
        campaign: Uuid,
        contact: &str,
        kind: Engagement,
        detail: &str,
    ) -> Result<bool, ApiError> {
        let once = matches!(
            kind,
            Engagement::Bounced | Engagement::Complained | Engagement::Unsubscribed
        );
        let id = if once {
            format!("{campaign}:{contact}:{}", stored(ENGAGEMENTS, kind))
        } else {
            Uuid::now_v7().to_string()
        };
        let row = engagement::Model {
            id,
            tenant: tenant.as_str().to_owned(),
            campaign_id: campaign.to_string(),
            contact: contact.to_owned(),
            kind: stored(ENGAGEMENTS, kind).to_owned(),
            detail: detail.to_owned(),
            time: Utc::now(),
        };
        let txn = self.base.db.begin_write().await?;
        let inserted = engagement::Entity::insert(row.into_active_model())
            .on_conflict_do_nothing_on([engagement::Column::Id])
            .exec(&*txn)
            .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Conflicted) {
            txn.rollback().await?;
            return Ok(false);
        }
        let source = self.message_source(&*txn, tenant, campaign).await?;
        let payload = match kind {
            Engagement::Unsubscribed => self.payloads.unsubscribed(contact, &source.name()),
            _ => self.payloads.engagement(&source.name(), contact, detail),
        };
        // About the recipient: an erasure scrubs the events of the names it erased.
        let event = self.event(event_name(kind), source.subject(contact), payload, contact);
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(true)
    }

    /// The ledger row of the message with `message_id`.
    pub async fn recipient_of_message(
        &self,
        tenant: &Tenant,
        message_id: &str,
    ) -> Result<Recipient, ApiError> {
        campaign_recipient::Entity::find_in(tenant)
            .filter(campaign_recipient::Column::MessageId.eq(message_id))
            .one(&self.base.db.conn)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no message {message_id} was sent")))?
            .try_into()
    }

    /// The address a campaign's message to `contact` went to, if it was sent.
    pub async fn address_sent_to(
        &self,
        tenant: &Tenant,
        campaign: Uuid,
        contact: &str,
    ) -> Result<Option<String>, ApiError> {
        Ok(campaign_recipient::Entity::find_in(tenant)
            .filter(campaign_recipient::Column::CampaignId.eq(campaign.to_string()))
            .filter(campaign_recipient::Column::Contact.eq(contact))
            .one(&self.base.db.conn)
            .await?
            .map(|row| row.email)
            .filter(|email| !email.is_empty()))
    }

    /// Nothing is sent to `email` again, for `reason` (kept by fingerprint).
    pub async fn suppress(
        &self,
        tenant: &Tenant,
        email: &str,
        reason: &str,
    ) -> Result<(), ApiError> {
        let row = suppression::Model {
            tenant: tenant.as_str().to_owned(),
            email_fingerprint: email_fingerprint(tenant.as_str(), email),
            reason: reason.to_owned(),
            create_time: Utc::now(),
        };
        let txn = self.base.db.begin_write().await?;
        suppression::Entity::insert(row.into_active_model())
            .on_conflict_do_nothing_on([
                suppression::Column::Tenant,
                suppression::Column::EmailFingerprint,
            ])
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}

/// What recipients did with each of `campaigns`' messages (stored ids),
/// read through `conn` in one grouped query.
pub(super) async fn engagement_counts_of<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    campaigns: &[String],
) -> Result<HashMap<Uuid, EngagementCounts>, ApiError> {
    let rows: Vec<(String, String, i64, i64)> = engagement::Entity::find_in(tenant)
        .select_only()
        .column(engagement::Column::CampaignId)
        .column(engagement::Column::Kind)
        .column_as(engagement::Column::Id.count(), "total")
        .column_as(Expr::cust("COUNT(DISTINCT contact)"), "recipients")
        .filter(engagement::Column::CampaignId.is_in(campaigns.to_vec()))
        .group_by(engagement::Column::CampaignId)
        .group_by(engagement::Column::Kind)
        .into_tuple()
        .all(conn)
        .await?;
    let mut counts: HashMap<Uuid, EngagementCounts> = HashMap::new();
    for (campaign, kind, total, unique) in rows {
        if let (Ok(campaign), Some(kind)) =
            (Uuid::parse_str(&campaign), parse_stored(ENGAGEMENTS, &kind))
        {
            counts.entry(campaign).or_default().add(kind, total, unique);
        }
    }
    Ok(counts)
}
