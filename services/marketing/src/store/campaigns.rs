//! Campaigns: drafts, their workflow, their counts and their ledger's pages.

use std::collections::HashMap;

use chrono::Utc;
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema},
    idempotency::IdempotencyKey,
    store::{ListQuery, Page},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

use super::{
    Created, Store,
    entities::{campaign, campaign_lead, campaign_recipient, campaign_win, engagement},
    id_of,
};
use crate::domain::{
    ab_test::{AbProgress, Variant, VariantCounts},
    campaign::{
        Campaign, CampaignDraft, Counts, RECIPIENT_STATES, Recipient, RecipientState, STATES, State,
    },
    tracking::{ENGAGEMENTS, Engagement},
};
use crm_shared::money::Money;

const STATE_VALUES: &[(&str, &str)] = &[
    ("DRAFT", "DRAFT"),
    ("SCHEDULED", "SCHEDULED"),
    ("SENDING", "SENDING"),
    ("PAUSED", "PAUSED"),
    ("SENT", "SENT"),
    ("CANCELLED", "CANCELLED"),
];

/// The fields a campaign filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField::new("state", FieldKind::Enum(STATE_VALUES)),
        FilterField::text("template"),
        FilterField::text("display_name"),
        FilterField::new("create_time", FieldKind::Timestamp),
        FilterField::new("send_time", FieldKind::Timestamp),
    ],
};

/// The fields a campaign list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[
    ("create_time", "create_time"),
    ("send_time", "send_time"),
    ("display_name", "display_name"),
];

impl TryFrom<campaign::Model> for Campaign {
    type Error = ApiError;
    fn try_from(row: campaign::Model) -> Result<Self, ApiError> {
        let corrupt = |what: &str| ApiError::Internal(format!("stored campaign has a bad {what}"));
        Ok(Self {
            id: row.id.parse().map_err(|_| corrupt("id"))?,
            state: parse_stored(STATES, &row.state).ok_or_else(|| corrupt("state"))?,
            draft: CampaignDraft {
                display_name: row.display_name,
                template: row.template,
                from_address: row.from_address,
                from_name: row.from_name,
                reply_to: row.reply_to,
                audience: serde_json::from_str(&row.audience).map_err(|_| corrupt("audience"))?,
                send_time: row.send_time,
                messages_per_second: row.messages_per_second,
                cost: (!row.cost_currency.is_empty()).then(|| Money {
                    currency_code: row.cost_currency.clone(),
                    units: row.cost_units,
                    nanos: row.cost_nanos,
                }),
                ab_test: if row.ab_test.is_empty() {
                    None
                } else {
                    Some(serde_json::from_str(&row.ab_test).map_err(|_| corrupt("ab_test"))?)
                },
            },
            audience_built: row.audience_built,
            ab: AbProgress {
                test_sent_time: row.ab_test_sent_time,
                winner: (!row.ab_winner.is_empty()).then(|| Variant::parse(&row.ab_winner)),
                decide_time: row.ab_decide_time,
            },
            start_time: row.start_time,
            finish_time: row.finish_time,
            create_time: row.create_time,
            update_time: row.update_time,
            delete_time: row.delete_time,
            version: row.version,
        })
    }
}

pub(super) fn campaign_row(tenant: &Tenant, c: &Campaign) -> campaign::ActiveModel {
    let d = &c.draft;
    campaign::Model {
        id: c.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        display_name: d.display_name.clone(),
        state: stored(STATES, c.state).to_owned(),
        template: d.template.clone(),
        from_address: d.from_address.clone(),
        from_name: d.from_name.clone(),
        reply_to: d.reply_to.clone(),
        // Plain data with string keys always serialises.
        audience: serde_json::to_string(&d.audience).unwrap_or_default(),
        send_time: d.send_time,
        messages_per_second: d.messages_per_second,
        audience_built: c.audience_built,
        start_time: c.start_time,
        finish_time: c.finish_time,
        create_time: c.create_time,
        update_time: c.update_time,
        delete_time: c.delete_time,
        version: c.version,
        cost_currency: d
            .cost
            .as_ref()
            .map(|m| m.currency_code.clone())
            .unwrap_or_default(),
        cost_units: d.cost.as_ref().map_or(0, |m| m.units),
        cost_nanos: d.cost.as_ref().map_or(0, |m| m.nanos),
        ab_test: d
            .ab_test
            .as_ref()
            .and_then(|t| serde_json::to_string(t).ok())
            .unwrap_or_default(),
        ab_winner: c
            .ab
            .winner
            .map(|w| w.as_str().to_owned())
            .unwrap_or_default(),
        ab_test_sent_time: c.ab.test_sent_time,
        ab_decide_time: c.ab.decide_time,
    }
    .into_active_model()
    .reset_all()
}

impl TryFrom<campaign_recipient::Model> for Recipient {
    type Error = ApiError;
    fn try_from(row: campaign_recipient::Model) -> Result<Self, ApiError> {
        Ok(Self {
            campaign: row.campaign_id.parse().unwrap_or_default(),
            state: parse_stored(RECIPIENT_STATES, &row.state).ok_or_else(|| {
                ApiError::Internal(format!("stored recipient state {:?}", row.state))
            })?,
            contact: row.contact,
            email: row.email,
            reason: row.reason,
            attempts: row.attempts,
            message_id: row.message_id,
            update_time: row.update_time,
            variant: Variant::parse(&row.variant),
        })
    }
}

impl Store {
    /// Saves a new draft; a retry with the same request id returns the first.
    pub async fn create_campaign(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: CampaignDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Campaign, ApiError> {
        let c = Campaign::new(draft, Utc::now());
        let event = self.event(
            "CampaignCreated",
            c.name(),
            self.payloads.campaign(&c, Counts::default()),
            actor,
        );
        let row = campaign_row(tenant, &c);
        match self
            .create(
                tenant,
                "CreateCampaign",
                request_id.as_ref(),
                &c.name(),
                row,
                event,
            )
            .await?
        {
            Created::New => Ok(c),
            Created::Existing(name) => self.get_campaign(tenant, id_of(&name)).await,
        }
    }

    /// A campaign, also a deleted one.
    pub async fn get_campaign(&self, tenant: &Tenant, id: Uuid) -> Result<Campaign, ApiError> {
        self.base
            .find::<campaign::Entity>(&self.base.db.conn, tenant, id, &format!("campaigns/{id}"))
            .await?
            .try_into()
    }

    /// One page of campaigns.
    pub async fn list_campaigns(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Campaign>, ApiError> {
        self.base
            .list_page::<campaign::Entity, Campaign>(tenant, query)
            .await
    }

    /// Where a campaign's recipients are, and what came of it.
    pub async fn counts(&self, tenant: &Tenant, c: &Campaign) -> Result<Counts, ApiError> {
        counts_in(&self.base.db.conn, tenant, c).await
    }

    /// The same for each of `campaigns` (a page), in a fixed number of queries.
    pub async fn counts_of(
        &self,
        tenant: &Tenant,
        campaigns: &[Campaign],
    ) -> Result<HashMap<Uuid, Counts>, ApiError> {
        counts_of(&self.base.db.conn, tenant, campaigns).await
    }

    /// Changes a campaign with `change`, if its version is still `expected`
    /// (when given); `event` records it, with its counts.
    pub async fn change_campaign(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        expected: Option<i64>,
        change: impl FnOnce(&mut Campaign) -> Result<(), ApiError>,
        event: &'static str,
    ) -> Result<Campaign, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut c: Campaign = self
            .base
            .find::<campaign::Entity>(&*txn, tenant, id, &format!("campaigns/{id}"))
            .await?
            .try_into()?;
        crm_shared::store::check_version(&c.name(), expected, c.version)?;
        let before = c.version;
        change(&mut c)?;
        self.save_campaign(&txn, tenant, &mut c, before).await?;
        let counts = counts_in(&*txn, tenant, &c).await?;
        let e = self.event(event, c.name(), self.payloads.campaign(&c, counts), actor);
        self.base.commit(txn, tenant, vec![e]).await?;
        Ok(c)
    }

    /// Writes a changed campaign unless its version moved on since `stored`.
    pub(super) async fn save_campaign(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        c: &mut Campaign,
        stored: i64,
    ) -> Result<(), ApiError> {
        c.version = stored + 1;
        c.update_time = Utc::now();
        self.base
            .save_versioned::<campaign::Entity>(
                txn,
                tenant,
                &c.name(),
                c.id,
                stored,
                campaign_row(tenant, c),
            )
            .await
    }

    /// A campaign not yet finished whose audience names the segment or list
    /// `group`, if any: such a group may not be deleted.
    pub async fn campaign_using(
        &self,
        tenant: &Tenant,
        group: &str,
    ) -> Result<Option<String>, ApiError> {
        let unfinished = [
            State::Draft,
            State::Scheduled,
            State::Sending,
            State::Paused,
        ]
        .map(|s| stored(STATES, s));
        let rows = campaign::Entity::find_in(tenant)
            .filter(campaign::Column::State.is_in(unfinished))
            .filter(campaign::Column::DeleteTime.is_null())
            .all(&self.base.db.conn)
            .await?;
        for row in rows {
            let c = Campaign::try_from(row)?;
            if c.draft
                .audience
                .groups()
                .iter()
                .any(|(_, name)| *name == group)
            {
                return Ok(Some(c.name()));
            }
        }
        Ok(None)
    }

    /// A campaign not yet finished, or a journey not archived, that sends
    /// `template`, if any: such a template may not be deleted.
    pub async fn template_user(
        &self,
        tenant: &Tenant,
        template: &str,
    ) -> Result<Option<String>, ApiError> {
        let unfinished = [
            State::Draft,
            State::Scheduled,
            State::Sending,
            State::Paused,
        ]
        .map(|s| stored(STATES, s));
        let rows = campaign::Entity::find_in(tenant)
            .filter(campaign::Column::State.is_in(unfinished))
            .filter(campaign::Column::DeleteTime.is_null())
            .all(&self.base.db.conn)
            .await?;
        for row in rows {
            let c = Campaign::try_from(row)?;
            let b = c.draft.ab_test.as_ref().map(|t| t.template.as_str());
            if c.draft.template == template || b == Some(template) {
                return Ok(Some(c.name()));
            }
        }
        self.journey_sending(tenant, template).await
    }

    /// Up to `limit` ledger rows of a campaign after the first `offset`, in
    /// the order they were queued.
    pub async fn list_recipients(
        &self,
        tenant: &Tenant,
        id: Uuid,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Recipient>, ApiError> {
        self.get_campaign(tenant, id).await?;
        campaign_recipient::Entity::find_in(tenant)
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .order_by_asc(campaign_recipient::Column::Position)
            .offset(offset)
            .limit(limit)
            .all(&self.base.db.conn)
            .await?
            .into_iter()
            .map(Recipient::try_from)
            .collect()
    }
}

/// Where a campaign's recipients are and what came of it (with its A/B
/// variants' numbers when it has a test), read through `conn`.
pub(super) async fn counts_in<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    c: &Campaign,
) -> Result<Counts, ApiError> {
    Ok(counts_of(conn, tenant, std::slice::from_ref(c))
        .await?
        .remove(&c.id)
        .unwrap_or_default())
}

/// The counts of each of `campaigns`: one grouped query per kind of count
/// for all of them (a page of ListCampaigns costs what one campaign does),
/// and two more for the variants when any has an A/B test.
pub(super) async fn counts_of<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    campaigns: &[Campaign],
) -> Result<HashMap<Uuid, Counts>, ApiError> {
    let mut counts: HashMap<Uuid, Counts> = campaigns
        .iter()
        .map(|c| (c.id, Counts::default()))
        .collect();
    if campaigns.is_empty() {
        return Ok(counts);
    }
    let ids: Vec<String> = campaigns.iter().map(|c| c.id.to_string()).collect();
    let mut engagement = super::engagement::engagement_counts_of(conn, tenant, &ids).await?;
    for (id, entry) in &mut counts {
        entry.engagement = engagement.remove(id).unwrap_or_default();
    }
    let by_state: Vec<(String, String, i64)> = campaign_recipient::Entity::find_in(tenant)
        .select_only()
        .column(campaign_recipient::Column::CampaignId)
        .column(campaign_recipient::Column::State)
        .column_as(campaign_recipient::Column::Contact.count(), "n")
        .filter(campaign_recipient::Column::CampaignId.is_in(ids.clone()))
        .group_by(campaign_recipient::Column::CampaignId)
        .group_by(campaign_recipient::Column::State)
        .into_tuple()
        .all(conn)
        .await?;
    for (id, state, n) in by_state {
        let entry = counted(&mut counts, &id);
        if let (Some(entry), Some(state)) = (entry, parse_stored(RECIPIENT_STATES, &state)) {
            entry.add(state, n);
        }
    }
    let leads: Vec<(String, i64)> = campaign_lead::Entity::find_in(tenant)
        .select_only()
        .column(campaign_lead::Column::CampaignId)
        .column_as(campaign_lead::Column::CampaignId.count(), "n")
        .filter(campaign_lead::Column::CampaignId.is_in(ids.clone()))
        .group_by(campaign_lead::Column::CampaignId)
        .into_tuple()
        .all(conn)
        .await?;
    for (id, n) in leads {
        if let Some(entry) = counted(&mut counts, &id) {
            entry.leads = n;
        }
    }
    let wins: Vec<(String, String, i64, i32)> = campaign_win::Entity::find_in(tenant)
        .select_only()
        .columns([
            campaign_win::Column::CampaignId,
            campaign_win::Column::CurrencyCode,
            campaign_win::Column::Units,
            campaign_win::Column::Nanos,
        ])
        .filter(campaign_win::Column::CampaignId.is_in(ids))
        .into_tuple()
        .all(conn)
        .await?;
    for (id, currency_code, units, nanos) in wins {
        let Some(entry) = counted(&mut counts, &id) else {
            continue;
        };
        entry.won_deals += 1;
        // A deal won without an amount counts as a deal, in no currency.
        if !currency_code.is_empty() {
            entry.won.add(&Money {
                currency_code,
                units,
                nanos,
            });
        }
    }
    let tested: Vec<Uuid> = campaigns
        .iter()
        .filter(|c| c.draft.ab_test.is_some())
        .map(|c| c.id)
        .collect();
    for (id, variants) in variant_counts_of(conn, tenant, &tested).await? {
        if let Some(entry) = counts.get_mut(&id) {
            entry.variants = variants;
        }
    }
    Ok(counts)
}

/// The entry of `counts` for the campaign whose stored id is `id`.
fn counted<'a>(counts: &'a mut HashMap<Uuid, Counts>, id: &str) -> Option<&'a mut Counts> {
    Uuid::parse_str(id).ok().and_then(|id| counts.get_mut(&id))
}

/// How each variant of a campaign's A/B test did: A, then B.
pub(super) async fn variant_counts<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    id: Uuid,
) -> Result<[VariantCounts; 2], ApiError> {
    Ok(variant_counts_of(conn, tenant, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default())
}

/// How each variant of each of `ids`' A/B tests did (A, then B): two
/// grouped statements for all of them, recipients by variant and state,
/// and the distinct recipients of each variant who engaged, by kind.
async fn variant_counts_of<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, [VariantCounts; 2]>, ApiError> {
    let mut counts: HashMap<Uuid, [VariantCounts; 2]> = ids
        .iter()
        .map(|id| (*id, [VariantCounts::default(); 2]))
        .collect();
    if ids.is_empty() {
        return Ok(counts);
    }
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let by_state: Vec<(String, String, String, i64)> = campaign_recipient::Entity::find_in(tenant)
        .select_only()
        .column(campaign_recipient::Column::CampaignId)
        .column(campaign_recipient::Column::Variant)
        .column(campaign_recipient::Column::State)
        .column_as(campaign_recipient::Column::Contact.count(), "n")
        .filter(campaign_recipient::Column::CampaignId.is_in(ids.clone()))
        .group_by(campaign_recipient::Column::CampaignId)
        .group_by(campaign_recipient::Column::Variant)
        .group_by(campaign_recipient::Column::State)
        .into_tuple()
        .all(conn)
        .await?;
    let sent = stored(RECIPIENT_STATES, RecipientState::Sent);
    for (id, variant, state, n) in by_state {
        if let Some(counts) = slot(&mut counts, &id, &variant) {
            counts.recipients += n;
            if state == sent {
                counts.sent += n;
            }
        }
    }
    use campaign_recipient::Column as R;
    use engagement::Column as E;
    let (recipients, engaged) = (campaign_recipient::Entity, engagement::Entity);
    let query = Query::select()
        .column((engaged, E::CampaignId))
        .column((recipients, R::Variant))
        .column((engaged, E::Kind))
        .expr(Expr::col((engaged, E::Contact)).count_distinct())
        .from(engaged)
        .inner_join(
            recipients,
            Condition::all()
                .add(Expr::col((recipients, R::Tenant)).equals((engaged, E::Tenant)))
                .add(Expr::col((recipients, R::CampaignId)).equals((engaged, E::CampaignId)))
                .add(Expr::col((recipients, R::Contact)).equals((engaged, E::Contact))),
        )
        .and_where(Expr::col((engaged, E::Tenant)).eq(tenant.as_str()))
        .and_where(Expr::col((engaged, E::CampaignId)).is_in(ids))
        .group_by_col((engaged, E::CampaignId))
        .group_by_col((recipients, R::Variant))
        .group_by_col((engaged, E::Kind))
        .to_owned();
    let rows = conn
        .query_all_raw(conn.get_database_backend().build(&query))
        .await?;
    for row in rows {
        let id: String = row.try_get_by_index(0)?;
        let variant: String = row.try_get_by_index(1)?;
        let kind: String = row.try_get_by_index(2)?;
        let n: i64 = row.try_get_by_index(3)?;
        let Some(counts) = slot(&mut counts, &id, &variant) else {
            continue;
        };
        match parse_stored(ENGAGEMENTS, &kind) {
            Some(Engagement::Opened) => counts.unique_opens = n,
            Some(Engagement::Clicked) => counts.unique_clicks = n,
            _ => {}
        }
    }
    Ok(counts)
}

/// The counts of `variant` (as stored) of the campaign stored as `id`.
fn slot<'a>(
    counts: &'a mut HashMap<Uuid, [VariantCounts; 2]>,
    id: &str,
    variant: &str,
) -> Option<&'a mut VariantCounts> {
    let index = [Variant::A, Variant::B]
        .iter()
        .position(|v| v.as_str() == variant)?;
    counts
        .get_mut(&Uuid::parse_str(id).ok()?)
        .map(|pair| &mut pair[index])
}
