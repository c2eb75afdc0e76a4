//! One message to one reserved recipient, for campaigns and journeys
//! alike: consent and suppression checked at send time, the message
//! rendered for the recipient with tracked links, an open image and a
//! signed one-click unsubscribe link, marked SENDING before it goes out
//! (see `store::ledger`), sent at the tenant's rate, and its outcome
//! recorded in the ledger, a transient failure queued for a retry.

use chrono::Utc;
use crm_shared::{db::Tenant, error::ApiError};
use uuid::Uuid;

use crate::{
    contacts::{Directory, SendProfile},
    domain::{
        audience::{Suppression, may_send},
        campaign::RecipientState,
        template::CompiledTemplate,
        tracking::{add_open_pixel, rewrite_links},
    },
    engagement::Links,
    mailer::{Mailer, OutgoingMail, SendOutcome},
    store::{Claimed, Store},
    throttle::TenantThrottle,
};

/// How long a recipient waits after its first and second transient
/// failures; the third is final (three attempts in all).
const RETRY_AFTER: [i64; 2] = [60, 600];

/// What is sent, whoever sends it.
pub struct MessageSpec<'a> {
    /// The ledger's id: a campaign's, or a journey step's effect key.
    pub id: Uuid,
    /// `campaign.name` in the template.
    pub display_name: &'a str,
    /// The sender's address.
    pub from_address: &'a str,
    /// The sender's name.
    pub from_name: &'a str,
    /// Where replies go; empty for the sender.
    pub reply_to: &'a str,
    /// A header naming the sender (`X-CRM-Campaign`, `X-CRM-Journey`).
    pub header: (&'static str, String),
}

/// Sends one message at a time; shared by the campaign sender and the
/// journey runner.
pub struct Postman {
    /// The ledger.
    pub store: Store,
    /// Contacts, read at send time.
    pub directory: Directory,
    mailer: Mailer,
    links: Links,
    throttle: TenantThrottle,
}

impl Postman {
    /// Sends with `mailer` at no more than each tenant's rate in
    /// `throttle`, putting `links` in each message.
    pub fn new(
        store: Store,
        directory: Directory,
        mailer: Mailer,
        links: Links,
        throttle: TenantThrottle,
    ) -> Self {
        Self {
            store,
            directory,
            mailer,
            links,
            throttle,
        }
    }

    /// `tenant`'s messages per second, all its sends together.
    pub fn tenant_rate(&self, tenant: &Tenant) -> u32 {
        self.throttle.rate(tenant.as_str())
    }

    /// Waits for `tenant`'s next send slot.
    pub async fn wait_for_slot(&self, tenant: &Tenant) {
        tokio::time::sleep_until(self.throttle.reserve(tenant.as_str())).await;
    }

    /// Decides, renders, sends and records one reserved recipient.
    pub async fn send_one(
        &self,
        tenant: &Tenant,
        m: &MessageSpec<'_>,
        template: &CompiledTemplate,
        recipient: &Claimed,
        profile: Option<&SendProfile>,
        pass: &str,
    ) -> Result<Outcome, ApiError> {
        let turn = Turn {
            store: &self.store,
            tenant,
            campaign: m.id,
            contact: &recipient.contact,
            pass,
        };
        let (profile, email) = match profile.map(|p| (p, may_send(Some(&p.at_send)))) {
            Some((profile, Ok(email))) => (profile, email.to_owned()),
            Some((_, Err(suppression))) => {
                return turn
                    .done(RecipientState::Suppressed, suppression.reason())
                    .await;
            }
            None => {
                return turn
                    .done(RecipientState::Suppressed, Suppression::Gone.reason())
                    .await;
            }
        };
        if let Some(reason) = self.store.suppression_of(tenant, &email).await? {
            return turn
                .done(
                    RecipientState::Suppressed,
                    &format!("address suppressed: {reason}"),
                )
                .await;
        }
        if self
            .store
            .address_used(tenant, m.id, &email, &recipient.contact)
            .await?
        {
            return turn
                .done(
                    RecipientState::Suppressed,
                    "another recipient has this address",
                )
                .await;
        }
        let contact_id: Uuid = crate::store::id_of(&recipient.contact);
        let unsubscribe_url = self.links.unsubscribe_url(tenant, contact_id, m.id);
        let rendered = match template.render(&profile.recipient, m.display_name, &unsubscribe_url) {
            Ok(rendered) => rendered,
            Err(error) => return turn.done(RecipientState::Failed, &error.to_string()).await,
        };
        // Links go through the tracking listener; an image reports the open.
        let html_body = if rendered.html_body.is_empty() {
            String::new()
        } else {
            let tracked = rewrite_links(&rendered.html_body, |target| {
                (target != unsubscribe_url)
                    .then(|| self.links.click_url(tenant, contact_id, m.id, target))
            });
            add_open_pixel(&tracked, &self.links.open_url(tenant, contact_id, m.id))
        };
        let domain = m.from_address.rsplit('@').next().unwrap_or("marketing.crm");
        // The same message for the same recipient has the same id, so a
        // receiver can drop a duplicate should a retry deliver it twice.
        let message_id = format!("<{}.{}@{domain}>", m.id, contact_id);
        let mail = OutgoingMail {
            from: mailbox(m.from_name, m.from_address),
            reply_to: (!m.reply_to.is_empty()).then(|| m.reply_to.to_owned()),
            to: email.clone(),
            subject: rendered.subject,
            html_body,
            text_body: rendered.text_body,
            unsubscribe_url,
            message_id: message_id.clone(),
            headers: vec![(m.header.0.into(), m.header.1.clone())],
        };
        // Committed before the message goes out: after a stop, this row is
        // UNCERTAIN, never sent again.
        if !self
            .store
            .begin_send(tenant, m.id, &recipient.contact, pass, &email, &message_id)
            .await?
        {
            return Ok(Outcome::Done);
        }
        let attempts = recipient.attempts + 1;
        match self.mailer.send(&mail).await {
            SendOutcome::Sent { response } => turn.done(RecipientState::Sent, &response).await,
            SendOutcome::Permanent { reason } => turn.done(RecipientState::Failed, &reason).await,
            SendOutcome::Transient { reason } if attempts > RETRY_AFTER.len() as i32 => {
                let reason = format!("{reason} (after {attempts} attempts)");
                turn.done(RecipientState::Failed, &reason).await
            }
            SendOutcome::Transient { reason } => {
                let wait = RETRY_AFTER[usize::try_from(attempts - 1).unwrap_or(0)];
                let retry_at = Utc::now() + chrono::Duration::seconds(wait);
                turn.retry(&reason, retry_at).await?;
                Ok(Outcome::Transient)
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
    /// Records a final outcome.
    async fn done(&self, state: RecipientState, reason: &str) -> Result<Outcome, ApiError> {
        self.store
            .record_outcome(
                self.tenant,
                self.campaign,
                self.contact,
                self.pass,
                state,
                reason,
                None,
            )
            .await?;
        Ok(Outcome::Done)
    }

    /// Queues the recipient again, not before `at`.
    async fn retry(&self, reason: &str, at: chrono::DateTime<Utc>) -> Result<(), ApiError> {
        self.store
            .record_outcome(
                self.tenant,
                self.campaign,
                self.contact,
                self.pass,
                RecipientState::Queued,
                reason,
                Some(at),
            )
            .await
    }
}

/// The From header: the name quoted (a comma or a dot in it is fine).
fn mailbox(name: &str, address: &str) -> String {
    if name.is_empty() {
        return address.to_owned();
    }
    let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{quoted}\" <{address}>")
}

/// What one recipient's send came to, for the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded for good (sent, failed, suppressed).
    Done,
    /// Put back after a transient failure.
    Transient,
}
