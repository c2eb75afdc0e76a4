//! The campaign sender: a scheduled job of the kit (one replica at a time).
//! Each pass settles rows abandoned by a stopped process, queues the
//! audience of each campaign whose time has come, and sends a bounded
//! share of each sending campaign's queue at its rate, each message through
//! the `postman` (consent checked, rendered, tracked, recorded).

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::Utc;
use crm_shared::{db::Tenant, error::ApiError, schedule::Job};
use uuid::Uuid;

use crate::{
    contacts::Directory,
    domain::{
        ab_test::{self, Variant},
        campaign::Campaign,
        template::{CompiledTemplate, TemplateDraft},
    },
    postman::{MessageSpec, Outcome, Postman},
    store::{DueCampaign, Store},
};

/// How long one pass sends, all campaigns together, before it hands back to
/// the scheduler (which renews the job's lease between passes).
const PASS_BUDGET: Duration = Duration::from_secs(2);
/// A pause or cancel is looked for before every so many messages.
const CHECK_EVERY: usize = 10;

/// The job.
pub struct Sender {
    postman: Arc<Postman>,
    store: Store,
    directory: Directory,
    /// Rows SENDING for longer than this are settled as UNCERTAIN.
    grace: chrono::Duration,
}

impl Sender {
    /// The sender of campaigns through `postman`; a row left mid-send for
    /// `grace` is settled as UNCERTAIN.
    pub fn new(postman: Arc<Postman>, grace: chrono::Duration) -> Arc<Self> {
        Arc::new(Self {
            store: postman.store.clone(),
            directory: postman.directory.clone(),
            postman,
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
                .list_members_of(tenant, &audience.mailing_lists, false)
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
                .list_members_of(tenant, &audience.excluded_mailing_lists, true)
                .await?,
        );
        // Each contact once, in the order first met.
        let mut seen = HashSet::new();
        let audience: Vec<String> = included
            .into_iter()
            .filter(|contact| !excluded.contains(contact) && seen.insert(contact.clone()))
            .collect();
        let recipients = match &c.draft.ab_test {
            Some(test) => ab_test::split(c.id, test, audience),
            None => audience.into_iter().map(|a| (a, Variant::Rest)).collect(),
        };
        self.store
            .queue_recipients(tenant, c.id, &recipients)
            .await?;
        self.store.start_campaign(tenant, c.id).await?;
        tracing::info!(campaign = %c.name(), recipients = recipients.len(), "campaign audience queued");
        Ok(())
    }

    /// Sends a share of a campaign's queue until `deadline`; how many were
    /// handled. Rows are reserved a batch at a time; whatever the pass does
    /// not get to (an error, a pause, the deadline) is given back.
    async fn send_some(
        &self,
        tenant: &Tenant,
        c: &Campaign,
        pass: &str,
        deadline: tokio::time::Instant,
    ) -> Result<u64, ApiError> {
        let sent = self.send_batches(tenant, c, pass, deadline).await;
        self.store.release_claims(tenant, c.id, pass).await?;
        sent
    }

    async fn send_batches(
        &self,
        tenant: &Tenant,
        c: &Campaign,
        pass: &str,
        deadline: tokio::time::Instant,
    ) -> Result<u64, ApiError> {
        let templates = self.variant_templates(tenant, c).await?;
        let rest_held = c.draft.ab_test.is_some() && c.ab.winner.is_none();
        let spec = MessageSpec {
            id: c.id,
            display_name: &c.draft.display_name,
            from_address: &c.draft.from_address,
            from_name: &c.draft.from_name,
            reply_to: &c.draft.reply_to,
            header: ("X-CRM-Campaign", c.name()),
        };
        let credentials = self.directory.as_service(tenant)?;
        let interval = Duration::from_secs_f64(1.0 / f64::from(c.draft.messages_per_second.max(1)));
        // A batch is about a second's worth at the slower of the two rates,
        // so a slow tenant's batch does not hold the pass.
        let rate = u32::try_from(c.draft.messages_per_second)
            .unwrap_or(1)
            .min(self.postman.tenant_rate(tenant));
        let batch = u64::from(rate.clamp(1, 100));
        let mut next_slot = tokio::time::Instant::now();
        let mut handled = 0;
        while tokio::time::Instant::now() < deadline {
            let claimed = self
                .store
                .claim_recipients(tenant, c.id, pass, batch, rest_held)
                .await?;
            if claimed.is_empty() {
                break;
            }
            let names: Vec<String> = claimed.iter().map(|r| r.contact.clone()).collect();
            let profiles = self.directory.profiles(&credentials, &names).await?;
            for (i, recipient) in claimed.iter().enumerate() {
                // A pause or cancel takes effect within a few messages; the
                // rest of the batch goes back when the pass's time is up.
                if tokio::time::Instant::now() >= deadline
                    || (i % CHECK_EVERY == 0 && !self.store.still_sending(tenant, c.id).await?)
                {
                    return Ok(handled);
                }
                tokio::time::sleep_until(next_slot).await;
                self.postman.wait_for_slot(tenant).await;
                next_slot = tokio::time::Instant::now() + interval;
                let outcome = self
                    .postman
                    .send_one(
                        tenant,
                        &spec,
                        templates.for_variant(recipient.variant),
                        recipient,
                        profiles.get(&recipient.contact),
                        pass,
                    )
                    .await?;
                handled += 1;
                if outcome == Outcome::Transient {
                    // The relay is struggling: the rest wait for a later pass.
                    return Ok(handled);
                }
            }
        }
        Ok(handled)
    }

    /// The compiled message of each variant: A is the campaign's template;
    /// B its A/B test's template, or A's with the test's subject.
    async fn variant_templates(
        &self,
        tenant: &Tenant,
        c: &Campaign,
    ) -> Result<VariantTemplates, ApiError> {
        let written = self
            .store
            .get_template(tenant, crate::store::id_of(&c.draft.template))
            .await?
            .draft;
        let b = match &c.draft.ab_test {
            None => None,
            Some(test) if !test.template.is_empty() => Some(
                self.store
                    .get_template(tenant, crate::store::id_of(&test.template))
                    .await?
                    .draft
                    .compile()?,
            ),
            Some(test) => Some(
                TemplateDraft {
                    subject: test.subject.clone(),
                    ..written.clone()
                }
                .compile()?,
            ),
        };
        Ok(VariantTemplates {
            a: written.compile()?,
            b,
            winner: c.ab.winner.unwrap_or(Variant::A),
        })
    }

    async fn work(
        &self,
        due: &DueCampaign,
        pass: &str,
        deadline: tokio::time::Instant,
    ) -> Result<u64, ApiError> {
        let c = &due.campaign;
        match c.state {
            crate::domain::campaign::State::Scheduled => {
                self.queue_audience(&due.tenant, c).await?;
                Ok(0)
            }
            _ => {
                let handled = self.send_some(&due.tenant, c, pass, deadline).await?;
                if c.draft.ab_test.is_some() && c.ab.winner.is_none() {
                    self.store.advance_ab_test(&due.tenant, c.id).await?;
                }
                if self.store.finish_if_done(&due.tenant, c.id).await? {
                    tracing::info!(campaign = %c.name(), "campaign sent");
                }
                Ok(handled)
            }
        }
    }
}

/// The message of each A/B variant, compiled once per pass.
struct VariantTemplates {
    a: CompiledTemplate,
    b: Option<CompiledTemplate>,
    /// What the rest of the audience gets (A when there is no test).
    winner: Variant,
}

impl VariantTemplates {
    fn for_variant(&self, variant: Variant) -> &CompiledTemplate {
        let variant = match variant {
            Variant::Rest => self.winner,
            tested => tested,
        };
        match (variant, &self.b) {
            (Variant::B, Some(b)) => b,
            _ => &self.a,
        }
    }
}

#[tonic::async_trait]
impl Job for Sender {
    async fn run_once(&self) -> Result<u64, ApiError> {
        let settled = self.store.settle_abandoned(Utc::now() - self.grace).await?;
        if settled > 0 {
            tracing::warn!(
                settled,
                "recipients a stopped sender left behind settled (reserved: queued again; mid-send: uncertain)"
            );
        }
        let pass = Uuid::now_v7().to_string();
        let deadline = tokio::time::Instant::now() + PASS_BUDGET;
        let mut handled = settled;
        for due in self.store.campaigns_to_work(Utc::now()).await? {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            // One campaign's trouble (a segment contacts refuses) must not
            // hold the others back.
            match self.work(&due, &pass, deadline).await {
                Ok(n) => handled += n,
                Err(error) => {
                    tracing::warn!(campaign = %due.campaign.name(), %error, "campaign pass failed; trying again next pass")
                }
            }
        }
        Ok(handled)
    }
}
