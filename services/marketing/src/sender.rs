//! The campaign sender: a scheduled job of the kit (one replica at a time).
//! Each pass settles rows abandoned by a stopped process, queues the
//! audience of each campaign whose time has come, and sends a bounded
//! share of each sending campaign's queue at its rate: consent checked per
//! recipient at send time, the message rendered for them with a signed
//! one-click unsubscribe link, each outcome recorded in the ledger.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::Utc;
use crm_shared::{db::Tenant, error::ApiError, schedule::Job};
use uuid::Uuid;

use crate::{
    contacts::Directory,
    domain::{
        audience::may_send,
        campaign::{Campaign, RecipientState},
        template::CompiledTemplate,
        tracking::{add_open_pixel, rewrite_links},
    },
    engagement::Links,
    mailer::{Mailer, OutgoingMail, SendOutcome},
    store::{Claimed, DueCampaign, Store},
};

/// How many times a recipient is tried before a transient failure is final.
const MAX_ATTEMPTS: i32 = 3;
/// How long one pass sends before it hands back to the scheduler (which
/// renews the job's lease between passes).
const PASS_BUDGET: Duration = Duration::from_secs(2);

/// The job.
pub struct Sender {
    store: Store,
    directory: Directory,
    mailer: Mailer,
    links: Links,
    /// Rows SENDING for longer than this are settled as UNCERTAIN.
    grace: chrono::Duration,
}

impl Sender {
    /// The sender over `store`, reading contacts through `directory`,
    /// sending with `mailer`, putting `links` in each message; a row left
    /// mid-send for `grace` is settled as UNCERTAIN.
    pub fn new(
        store: Store,
        directory: Directory,
        mailer: Mailer,
        links: Links,
        grace: chrono::Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            directory,
            mailer,
            links,
            grace,
        })
    }

    /// Resolves a due campaign's audience into its ledger and starts it.
    async fn queue_audience(&self, tenant: &Tenant, c: &Campaign) -> Result<(), ApiError> {
        let credentials = self.directory.as_service(tenant)?;
        let audience = &c.draft.audience;
        let mut included = Vec::new();
        for segment in self
            .store
            .live_segments(tenant, &audience.segments, "audience.segments")
            .await?
        {
            included.extend(
                self.directory
                    .matching(&credentials, &segment.draft.filter)
                    .await?,
            );
        }
        included.extend(
            self.store
                .list_members_of(tenant, &audience.mailing_lists)
                .await?,
        );
        let mut excluded: HashSet<String> = HashSet::new();
        for segment in self
            .store
            .live_segments(
                tenant,
                &audience.excluded_segments,
                "audience.excluded_segments",
            )
            .await?
        {
            excluded.extend(
                self.directory
                    .matching(&credentials, &segment.draft.filter)
                    .await?,
            );
        }
        excluded.extend(
            self.store
                .list_members_of(tenant, &audience.excluded_mailing_lists)
                .await?,
        );
        // Each contact once, in the order first met.
        let mut seen = HashSet::new();
        let recipients: Vec<String> = included
            .into_iter()
            .filter(|contact| !excluded.contains(contact) && seen.insert(contact.clone()))
            .collect();
        self.store
            .queue_recipients(tenant, c.id, &recipients)
            .await?;
        self.store.start_campaign(tenant, c.id).await?;
        tracing::info!(campaign = %c.name(), recipients = recipients.len(), "campaign audience queued");
        Ok(())
    }

    /// Sends a bounded share of a campaign's queue; how many were handled.
    async fn send_some(&self, tenant: &Tenant, c: &Campaign, pass: &str) -> Result<u64, ApiError> {
        let template = self
            .store
            .get_template(tenant, crate::store::id_of(&c.draft.template))
            .await?
            .draft
            .compile()?;
        let credentials = self.directory.as_service(tenant)?;
        let interval = Duration::from_secs_f64(1.0 / f64::from(c.draft.messages_per_second.max(1)));
        let batch = u64::try_from(c.draft.messages_per_second.clamp(1, 100)).unwrap_or(100);
        let started = tokio::time::Instant::now();
        let mut next_slot = started;
        let mut handled = 0;
        while started.elapsed() < PASS_BUDGET && self.store.still_sending(tenant, c.id).await? {
            let claimed = self
                .store
                .claim_recipients(tenant, c.id, pass, batch)
                .await?;
            if claimed.is_empty() {
                break;
            }
            let names: Vec<String> = claimed.iter().map(|r| r.contact.clone()).collect();
            let profiles = self.directory.profiles(&credentials, &names).await?;
            let mut transient = false;
            for recipient in &claimed {
                if transient {
                    // The relay is struggling: the rest wait for the next pass.
                    self.put_back(
                        tenant,
                        c,
                        recipient,
                        pass,
                        "not tried: an earlier message failed transiently",
                    )
                    .await?;
                    continue;
                }
                tokio::time::sleep_until(next_slot).await;
                next_slot = tokio::time::Instant::now() + interval;
                let outcome = self
                    .send_one(
                        tenant,
                        c,
                        &template,
                        recipient,
                        profiles.get(&recipient.contact),
                        pass,
                    )
                    .await?;
                transient = outcome == Outcome::Transient;
                handled += 1;
            }
            if transient {
                break;
            }
        }
        Ok(handled)
    }

    /// Decides, renders, sends and records one recipient.
    async fn send_one(
        &self,
        tenant: &Tenant,
        c: &Campaign,
        template: &CompiledTemplate,
        recipient: &Claimed,
        profile: Option<&crate::contacts::SendProfile>,
        pass: &str,
    ) -> Result<Outcome, ApiError> {
        let turn = Turn {
            store: &self.store,
            tenant,
            campaign: c.id,
            contact: &recipient.contact,
            pass,
        };
        let (profile, email) = match profile.map(|p| (p, may_send(Some(&p.at_send)))) {
            Some((profile, Ok(email))) => (profile, email.to_owned()),
            Some((_, Err(suppression))) => {
                turn.record(RecipientState::Suppressed, "", suppression.reason(), "")
                    .await?;
                return Ok(Outcome::Done);
            }
            None => {
                let gone = crate::domain::audience::Suppression::Gone;
                turn.record(RecipientState::Suppressed, "", gone.reason(), "")
                    .await?;
                return Ok(Outcome::Done);
            }
        };
        if let Some(reason) = self.store.suppression_of(tenant, &email).await? {
            let reason = format!("address suppressed: {reason}");
            turn.record(RecipientState::Suppressed, &email, &reason, "")
                .await?;
            return Ok(Outcome::Done);
        }
        if self
            .store
            .address_used(tenant, c.id, &email, &recipient.contact)
            .await?
        {
            turn.record(
                RecipientState::Suppressed,
                &email,
                "another recipient has this address",
                "",
            )
            .await?;
            return Ok(Outcome::Done);
        }
        let contact_id: Uuid = crate::store::id_of(&recipient.contact);
        let unsubscribe_url = self.links.unsubscribe_url(tenant, contact_id, c.id);
        let rendered =
            match template.render(&profile.recipient, &c.draft.display_name, &unsubscribe_url) {
                Ok(rendered) => rendered,
                Err(error) => {
                    turn.record(RecipientState::Failed, &email, &error.to_string(), "")
                        .await?;
                    return Ok(Outcome::Done);
                }
            };
        // Links go through the tracking listener; an image reports the open.
        let html_body = if rendered.html_body.is_empty() {
            String::new()
        } else {
            let tracked = rewrite_links(&rendered.html_body, |target| {
                (target != unsubscribe_url)
                    .then(|| self.links.click_url(tenant, contact_id, c.id, target))
            });
            add_open_pixel(&tracked, &self.links.open_url(tenant, contact_id, c.id))
        };
        let domain = c
            .draft
            .from_address
            .rsplit('@')
            .next()
            .unwrap_or("marketing.crm");
        // The same message for the same recipient has the same id, so a
        // receiving server can drop a duplicate should one ever slip through.
        let message_id = format!("<{}.{}@{domain}>", c.id, contact_id);
        let mail = OutgoingMail {
            from: if c.draft.from_name.is_empty() {
                c.draft.from_address.clone()
            } else {
                format!("{} <{}>", c.draft.from_name, c.draft.from_address)
            },
            reply_to: (!c.draft.reply_to.is_empty()).then(|| c.draft.reply_to.clone()),
            to: email.clone(),
            subject: rendered.subject,
            html_body,
            text_body: rendered.text_body,
            unsubscribe_url,
            message_id: message_id.clone(),
            headers: vec![("X-CRM-Campaign".into(), c.name())],
        };
        match self.mailer.send(&mail).await {
            SendOutcome::Sent { response } => {
                turn.record(RecipientState::Sent, &email, &response, &message_id)
                    .await?;
                Ok(Outcome::Done)
            }
            SendOutcome::Permanent { reason } => {
                turn.record(RecipientState::Failed, &email, &reason, &message_id)
                    .await?;
                Ok(Outcome::Done)
            }
            SendOutcome::Transient { reason } if recipient.attempts >= MAX_ATTEMPTS => {
                let reason = format!("{reason} (after {MAX_ATTEMPTS} attempts)");
                turn.record(RecipientState::Failed, &email, &reason, &message_id)
                    .await?;
                Ok(Outcome::Done)
            }
            SendOutcome::Transient { reason } => {
                self.put_back(tenant, c, recipient, pass, &reason).await?;
                Ok(Outcome::Transient)
            }
        }
    }

    /// Queues a recipient again, for a later pass.
    async fn put_back(
        &self,
        tenant: &Tenant,
        c: &Campaign,
        recipient: &Claimed,
        pass: &str,
        reason: &str,
    ) -> Result<(), ApiError> {
        self.store
            .record_outcome(
                tenant,
                c.id,
                &recipient.contact,
                pass,
                RecipientState::Queued,
                "",
                reason,
                "",
            )
            .await
    }

    async fn work(&self, due: &DueCampaign, pass: &str) -> Result<u64, ApiError> {
        let c = &due.campaign;
        match c.state {
            crate::domain::campaign::State::Scheduled => {
                self.queue_audience(&due.tenant, c).await?;
                Ok(0)
            }
            _ => {
                let handled = self.send_some(&due.tenant, c, pass).await?;
                if self.store.finish_if_done(&due.tenant, c.id).await? {
                    tracing::info!(campaign = %c.name(), "campaign sent");
                }
                Ok(handled)
            }
        }
    }
}

/// One recipient's turn in a pass: where its outcome is recorded.
struct Turn<'a> {
    store: &'a Store,
    tenant: &'a Tenant,
    campaign: Uuid,
    contact: &'a str,
    pass: &'a str,
}

impl Turn<'_> {
    async fn record(
        &self,
        state: RecipientState,
        email: &str,
        reason: &str,
        message_id: &str,
    ) -> Result<(), ApiError> {
        self.store
            .record_outcome(
                self.tenant,
                self.campaign,
                self.contact,
                self.pass,
                state,
                email,
                reason,
                message_id,
            )
            .await
    }
}

/// What one recipient's send came to, for the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Recorded for good (sent, failed, suppressed).
    Done,
    /// Put back after a transient failure.
    Transient,
}

#[tonic::async_trait]
impl Job for Sender {
    async fn run_once(&self) -> Result<u64, ApiError> {
        let settled = self.store.settle_abandoned(Utc::now() - self.grace).await?;
        if settled > 0 {
            tracing::warn!(
                settled,
                "recipients left mid-send by a stopped sender marked uncertain"
            );
        }
        let pass = Uuid::now_v7().to_string();
        let mut handled = settled;
        for due in self.store.campaigns_to_work(Utc::now()).await? {
            // One campaign's trouble (a segment contacts refuses) must not
            // hold the others back.
            match self.work(&due, &pass).await {
                Ok(n) => handled += n,
                Err(error) => {
                    tracing::warn!(campaign = %due.campaign.name(), %error, "campaign pass failed; trying again next pass")
                }
            }
        }
        Ok(handled)
    }
}
