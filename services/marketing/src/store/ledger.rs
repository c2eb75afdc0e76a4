//! The send ledger as the sender works it: campaigns due, their audience
//! queued once, recipients claimed a batch at a time, each outcome recorded
//! with its event, rows abandoned by a stopped process settled as UNCERTAIN,
//! and campaigns finished when nothing is left.
//!
//! Why nobody gets a campaign twice: rows are reserved a batch at a time
//! (QUEUED -> CLAIMED, nothing sent yet), and each is marked SENDING, with
//! its address, in a commit of its own just before its message goes out;
//! only this pass's CLAIMED rows are marked, and a row still SENDING after
//! the grace period (longer than the mailer's timeout) is never sent again.
//! One window remains: a connection lost after the relay took a message but
//! before it answered reads as a transient failure, and the retry may
//! deliver it again (with the same Message-ID, which receivers may drop).

use chrono::{DateTime, Utc};
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Tenant, TenantScoped},
    error::ApiError,
    privacy::email_fingerprint,
};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{
    Store,
    campaigns::{counts_in, variant_counts},
    entities::{campaign, campaign_recipient, suppression},
};
use crate::domain::{
    ab_test::{self, Variant},
    campaign::{Campaign, RECIPIENT_STATES, RecipientState, STATES, State},
};

/// Rows inserted per statement when queueing an audience.
const QUEUE_BATCH: usize = 500;

/// A campaign the sender should work on now, with its tenant.
pub struct DueCampaign {
    /// Its tenant.
    pub tenant: Tenant,
    /// The campaign.
    pub campaign: Campaign,
}

/// Where one ledger row is.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    /// Its state.
    pub state: RecipientState,
    /// Why, or the server's answer.
    pub reason: String,
    /// After a transient failure, not before then.
    pub next_attempt_time: Option<DateTime<Utc>>,
}

/// A recipient this pass took.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// `contacts/{id}`.
    pub contact: String,
    /// Sending attempts so far, this one included.
    pub attempts: i32,
    /// Its A/B variant.
    pub variant: Variant,
}

fn state(s: RecipientState) -> &'static str {
    stored(RECIPIENT_STATES, s)
}

impl Store {
    /// Campaigns scheduled whose time has come, and campaigns sending, in
    /// every tenant.
    pub async fn campaigns_to_work(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<DueCampaign>, ApiError> {
        let due = Condition::any()
            .add(
                Condition::all()
                    .add(campaign::Column::State.eq(stored(STATES, State::Scheduled)))
                    .add(campaign::Column::SendTime.lte(now)),
            )
            .add(campaign::Column::State.eq(stored(STATES, State::Sending)));
        campaign::Entity::find()
            .filter(due)
            .filter(campaign::Column::DeleteTime.is_null())
            .order_by_asc(campaign::Column::SendTime)
            .all(&self.base.db.conn)
            .await?
            .into_iter()
            .map(|row| {
                let tenant = Tenant::new(row.tenant.clone());
                Ok(DueCampaign {
                    tenant,
                    campaign: row.try_into()?,
                })
            })
            .collect()
    }

    /// Queues `contacts` (the resolved audience, in order, each once, with
    /// its A/B variant) for a campaign; rows already queued by an earlier,
    /// interrupted attempt stay as they are.
    pub async fn queue_recipients(
        &self,
        tenant: &Tenant,
        id: Uuid,
        contacts: &[(String, Variant)],
    ) -> Result<(), ApiError> {
        let now = Utc::now();
        for (chunk_index, chunk) in contacts.chunks(QUEUE_BATCH).enumerate() {
            let rows = chunk.iter().enumerate().map(|(i, (contact, variant))| {
                campaign_recipient::Model {
                    tenant: tenant.as_str().to_owned(),
                    campaign_id: id.to_string(),
                    contact: contact.clone(),
                    position: (chunk_index * QUEUE_BATCH + i) as i64,
                    email: String::new(),
                    state: state(RecipientState::Queued).to_owned(),
                    reason: String::new(),
                    attempts: 0,
                    message_id: String::new(),
                    claim: String::new(),
                    next_attempt_time: None,
                    update_time: now,
                    variant: variant.as_str().to_owned(),
                }
                .into_active_model()
            });
            let txn = self.base.db.begin_write().await?;
            campaign_recipient::Entity::insert_many(rows)
                .on_conflict_do_nothing_on([
                    campaign_recipient::Column::Tenant,
                    campaign_recipient::Column::CampaignId,
                    campaign_recipient::Column::Contact,
                ])
                .exec(&*txn)
                .await?;
            txn.commit().await?;
        }
        Ok(())
    }

    /// A scheduled campaign whose audience is queued turns SENDING
    /// (`CampaignStarted`); one paused or cancelled meanwhile is left as it is.
    pub async fn start_campaign(&self, tenant: &Tenant, id: Uuid) -> Result<(), ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut c: Campaign = self
            .base
            .find::<campaign::Entity>(&*txn, tenant, id, &format!("campaigns/{id}"))
            .await?
            .try_into()?;
        if c.state != State::Scheduled || c.delete_time.is_some() {
            return Ok(());
        }
        let before = c.version;
        c.start(Utc::now());
        self.save_campaign(&txn, tenant, &mut c, before).await?;
        let counts = counts_in(&*txn, tenant, &c).await?;
        let event = self.event(
            "CampaignStarted",
            c.name(),
            self.payloads.campaign(&c, counts),
            SENDER,
        );
        self.base.commit(txn, tenant, vec![event]).await
    }

    /// Settles rows a pass left behind before `older_than` (its process
    /// stopped, or it lost its way): a row only reserved (CLAIMED) goes back
    /// to the queue, nothing was sent; a row left SENDING becomes UNCERTAIN,
    /// perhaps delivered, never sent again.
    pub async fn settle_abandoned(&self, older_than: DateTime<Utc>) -> Result<u64, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut settled = 0;
        for (from, to, reason) in [
            (
                RecipientState::Claimed,
                RecipientState::Queued,
                "reserved by a sender that stopped; queued again",
            ),
            (
                RecipientState::Sending,
                RecipientState::Uncertain,
                "the sender stopped while this message was being sent",
            ),
        ] {
            settled += campaign_recipient::Entity::update_many()
                .col_expr(campaign_recipient::Column::State, Expr::value(state(to)))
                .col_expr(campaign_recipient::Column::Reason, Expr::value(reason))
                .col_expr(campaign_recipient::Column::Claim, Expr::value(""))
                .filter(campaign_recipient::Column::State.eq(state(from)))
                .filter(campaign_recipient::Column::UpdateTime.lt(older_than))
                .exec(&*txn)
                .await?
                .rows_affected;
        }
        txn.commit().await?;
        Ok(settled)
    }

    /// Reserves up to `n` queued recipients of a campaign, due now, for the
    /// pass `pass`, in order (QUEUED -> CLAIMED); while `rest_held` (an A/B
    /// test without a winner), only the test's. Nothing is sent yet: a
    /// reserved row goes back to the queue if the pass gives it up or stops.
    pub async fn claim_recipients(
        &self,
        tenant: &Tenant,
        id: Uuid,
        pass: &str,
        n: u64,
        rest_held: bool,
    ) -> Result<Vec<Claimed>, ApiError> {
        let now = Utc::now();
        let txn = self.base.db.begin_write().await?;
        let mut next = campaign_recipient::Entity::find_in(tenant);
        if rest_held {
            next = next.filter(campaign_recipient::Column::Variant.ne(Variant::Rest.as_str()));
        }
        let next: Vec<String> = next
            .select_only()
            .column(campaign_recipient::Column::Contact)
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .filter(campaign_recipient::Column::State.eq(state(RecipientState::Queued)))
            .filter(
                Condition::any()
                    .add(campaign_recipient::Column::NextAttemptTime.is_null())
                    .add(campaign_recipient::Column::NextAttemptTime.lte(now)),
            )
            .order_by_asc(campaign_recipient::Column::Position)
            .limit(n)
            .into_tuple()
            .all(&*txn)
            .await?;
        if next.is_empty() {
            return Ok(Vec::new());
        }
        // Only rows still QUEUED are taken: a concurrent pass's are not.
        campaign_recipient::Entity::update_many()
            .col_expr(
                campaign_recipient::Column::State,
                Expr::value(state(RecipientState::Claimed)),
            )
            .col_expr(campaign_recipient::Column::Claim, Expr::value(pass))
            .col_expr(campaign_recipient::Column::UpdateTime, Expr::value(now))
            .filter(campaign_recipient::Column::Tenant.eq(tenant.as_str()))
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .filter(campaign_recipient::Column::Contact.is_in(next))
            .filter(campaign_recipient::Column::State.eq(state(RecipientState::Queued)))
            .exec(&*txn)
            .await?;
        let claimed = campaign_recipient::Entity::find_in(tenant)
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .filter(campaign_recipient::Column::State.eq(state(RecipientState::Claimed)))
            .filter(campaign_recipient::Column::Claim.eq(pass))
            .order_by_asc(campaign_recipient::Column::Position)
            .all(&*txn)
            .await?
            .into_iter()
            .map(|row| Claimed {
                contact: row.contact,
                attempts: row.attempts,
                variant: Variant::parse(&row.variant),
            })
            .collect();
        txn.commit().await?;
        Ok(claimed)
    }

    /// Commits, just before its message goes out, that a reserved row is
    /// being sent to `email` as `message_id` (CLAIMED -> SENDING, one more
    /// attempt); `false` when the row is no longer this pass's.
    pub async fn begin_send(
        &self,
        tenant: &Tenant,
        id: Uuid,
        contact: &str,
        pass: &str,
        email: &str,
        message_id: &str,
    ) -> Result<bool, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let updated = campaign_recipient::Entity::update_many()
            .col_expr(
                campaign_recipient::Column::State,
                Expr::value(state(RecipientState::Sending)),
            )
            .col_expr(campaign_recipient::Column::Email, Expr::value(email))
            .col_expr(
                campaign_recipient::Column::MessageId,
                Expr::value(message_id),
            )
            .col_expr(
                campaign_recipient::Column::Attempts,
                Expr::col(campaign_recipient::Column::Attempts).add(1),
            )
            .col_expr(
                campaign_recipient::Column::UpdateTime,
                Expr::value(Utc::now()),
            )
            .filter(campaign_recipient::Column::Tenant.eq(tenant.as_str()))
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .filter(campaign_recipient::Column::Contact.eq(contact))
            .filter(campaign_recipient::Column::Claim.eq(pass))
            .filter(campaign_recipient::Column::State.eq(state(RecipientState::Claimed)))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(updated.rows_affected == 1)
    }

    /// Gives back the rows the pass reserved and did not send (a pause, a
    /// cancel, a struggling relay): they are queued again.
    pub async fn release_claims(
        &self,
        tenant: &Tenant,
        id: Uuid,
        pass: &str,
    ) -> Result<(), ApiError> {
        let txn = self.base.db.begin_write().await?;
        campaign_recipient::Entity::update_many()
            .col_expr(
                campaign_recipient::Column::State,
                Expr::value(state(RecipientState::Queued)),
            )
            .col_expr(campaign_recipient::Column::Claim, Expr::value(""))
            .filter(campaign_recipient::Column::Tenant.eq(tenant.as_str()))
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .filter(campaign_recipient::Column::Claim.eq(pass))
            .filter(campaign_recipient::Column::State.eq(state(RecipientState::Claimed)))
            .exec(&*txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Records what this pass's row for `contact` came to (with `EmailSent`
    /// when it was sent): `outcome` with `reason`; a retry is queued again
    /// for `retry_at`. A row another pass settled meanwhile is left alone.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_outcome(
        &self,
        tenant: &Tenant,
        id: Uuid,
        contact: &str,
        pass: &str,
        outcome: RecipientState,
        reason: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mine = campaign_recipient::Entity::find_in(tenant)
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .filter(campaign_recipient::Column::Contact.eq(contact))
            .filter(campaign_recipient::Column::Claim.eq(pass))
            .filter(campaign_recipient::Column::State.is_in([
                state(RecipientState::Claimed),
                state(RecipientState::Sending),
            ]))
            .one(&*txn)
            .await?;
        let Some(row) = mine else {
            return Ok(());
        };
        campaign_recipient::Entity::update_many()
            .col_expr(
                campaign_recipient::Column::State,
                Expr::value(state(outcome)),
            )
            .col_expr(campaign_recipient::Column::Reason, Expr::value(reason))
            .col_expr(
                campaign_recipient::Column::NextAttemptTime,
                Expr::value(retry_at),
            )
            .col_expr(campaign_recipient::Column::Claim, Expr::value(""))
            .col_expr(
                campaign_recipient::Column::UpdateTime,
                Expr::value(Utc::now()),
            )
            .filter(campaign_recipient::Column::Tenant.eq(tenant.as_str()))
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .filter(campaign_recipient::Column::Contact.eq(contact))
            .filter(campaign_recipient::Column::Claim.eq(pass))
            .exec(&*txn)
            .await?;
        let events = if outcome == RecipientState::Sent {
            let source = self.message_source(&*txn, tenant, id).await?;
            vec![
                self.event(
                    "EmailSent",
                    source.subject(contact),
                    self.payloads
                        .email_sent(&source.name(), contact, &row.message_id),
                    SENDER,
                ),
            ]
        } else {
            Vec::new()
        };
        self.base.commit(txn, tenant, events).await
    }

    /// A campaign with nothing queued or being sent turns SENT
    /// (`CampaignSent`, with its counts); `true` if it did.
    pub async fn finish_if_done(&self, tenant: &Tenant, id: Uuid) -> Result<bool, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut c: Campaign = self
            .base
            .find::<campaign::Entity>(&*txn, tenant, id, &format!("campaigns/{id}"))
            .await?
            .try_into()?;
        let counts = counts_in(&*txn, tenant, &c).await?;
        // A test is decided (and says so) even when nobody waits for it.
        let undecided = c.draft.ab_test.is_some() && c.ab.winner.is_none();
        if counts.queued > 0 || c.state != State::Sending || undecided {
            return Ok(false);
        }
        let before = c.version;
        c.finish(Utc::now());
        self.save_campaign(&txn, tenant, &mut c, before).await?;
        let event = self.event(
            "CampaignSent",
            c.name(),
            self.payloads.campaign(&c, counts),
            SENDER,
        );
        self.base.commit(txn, tenant, vec![event]).await?;
        Ok(true)
    }

    /// Moves a campaign's A/B test on: notes when the test's last message
    /// was handled, and once the wait has passed chooses the winner for the
    /// rest (`AbTestDecided`). Nothing for a campaign without a test.
    pub async fn advance_ab_test(&self, tenant: &Tenant, id: Uuid) -> Result<(), ApiError> {
        let now = Utc::now();
        let txn = self.base.db.begin_write().await?;
        let mut c: Campaign = self
            .base
            .find::<campaign::Entity>(&*txn, tenant, id, &format!("campaigns/{id}"))
            .await?
            .try_into()?;
        let Some(test) = c.draft.ab_test.clone() else {
            return Ok(());
        };
        let before = c.version;
        let mut event = None;
        if c.ab.test_sent_time.is_none() {
            let unresolved = campaign_recipient::Entity::find_in(tenant)
                .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
                .filter(campaign_recipient::Column::Variant.ne(Variant::Rest.as_str()))
                .filter(campaign_recipient::Column::State.is_in([
                    state(RecipientState::Queued),
                    state(RecipientState::Claimed),
                    state(RecipientState::Sending),
                ]))
                .one(&*txn)
                .await?;
            if unresolved.is_some() {
                return Ok(());
            }
            c.ab.test_sent_time = Some(now);
        } else if c.ab.decision_due(&test, now) {
            let [a, b] = variant_counts(&*txn, tenant, id).await?;
            let winner = ab_test::winner(test.metric, &a, &b);
            c.ab.winner = Some(winner);
            c.ab.decide_time = Some(now);
            tracing::info!(campaign = %c.name(), winner = winner.as_str(), "A/B test decided");
            event = Some("AbTestDecided");
        } else {
            return Ok(());
        }
        self.save_campaign(&txn, tenant, &mut c, before).await?;
        let events = match event {
            Some(kind) => {
                let counts = counts_in(&*txn, tenant, &c).await?;
                vec![self.event(kind, c.name(), self.payloads.campaign(&c, counts), SENDER)]
            }
            None => Vec::new(),
        };
        self.base.commit(txn, tenant, events).await
    }

    /// Whether another recipient of the campaign got (or may have got) a
    /// message at `email`: two contacts sharing an address get it once.
    pub async fn address_used(
        &self,
        tenant: &Tenant,
        id: Uuid,
        email: &str,
        contact: &str,
    ) -> Result<bool, ApiError> {
        // A row being sent has its address already (see `begin_send`).
        let taken = [
            state(RecipientState::Sent),
            state(RecipientState::Uncertain),
            state(RecipientState::Sending),
        ];
        let used = campaign_recipient::Entity::find_in(tenant)
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .filter(campaign_recipient::Column::Email.eq(email))
            .filter(campaign_recipient::Column::Contact.ne(contact))
            .filter(campaign_recipient::Column::State.is_in(taken))
            .one(&self.base.db.conn)
            .await?;
        Ok(used.is_some())
    }

    /// Why nothing may be sent to `email` any more, if it is suppressed.
    pub async fn suppression_of(
        &self,
        tenant: &Tenant,
        email: &str,
    ) -> Result<Option<String>, ApiError> {
        Ok(suppression::Entity::find_in(tenant)
            .filter(
                suppression::Column::EmailFingerprint.eq(email_fingerprint(tenant.as_str(), email)),
            )
            .one(&self.base.db.conn)
            .await?
            .map(|row| row.reason))
    }

    /// The state of a one-recipient message (a journey step's) and when it
    /// may be tried again, if it was queued: by its id alone, so a contact
    /// merged meanwhile does not make it a second message.
    pub async fn message_row(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<Option<LedgerRow>, ApiError> {
        let row = campaign_recipient::Entity::find_in(tenant)
            .filter(campaign_recipient::Column::CampaignId.eq(id.to_string()))
            .one(&self.base.db.conn)
            .await?;
        Ok(row.and_then(|row| {
            Some(LedgerRow {
                state: parse_stored(RECIPIENT_STATES, &row.state)?,
                reason: row.reason,
                next_attempt_time: row.next_attempt_time,
            })
        }))
    }

    /// Whether a campaign is still to be sent (not paused, cancelled or deleted).
    pub async fn still_sending(&self, tenant: &Tenant, id: Uuid) -> Result<bool, ApiError> {
        let c = self.get_campaign(tenant, id).await?;
        Ok(c.state == State::Sending && c.delete_time.is_none())
    }
}

/// Who the sender's changes are recorded as.
pub const SENDER: &str = "marketing/sender";
