//! Engagement, in one place for the sender (which puts the links in each
//! message), the tracking listener (which serves them) and the API (the
//! `Unsubscribe` RPC): every link carries a token signed for its purpose,
//! naming the tenant, the contact and the campaign; a click link also
//! binds its target, so the listener redirects only where a message
//! pointed.

use chrono::{Duration, Utc};
use crm_shared::{db::Tenant, error::ApiError, token::SignedTokens};
use uuid::Uuid;

use crate::{contacts::Directory, domain::tracking::Engagement, store::Store};

/// The signing keys, one per link kind.
#[derive(Clone)]
pub struct Links {
    /// Where the tracking listener is reached from outside (`https://t.acme.example`).
    pub tracking_base_url: String,
    /// The unsubscribe page the `List-Unsubscribe` header names.
    pub unsubscribe_base_url: String,
    /// How long links work.
    pub valid_for: Duration,
    opens: SignedTokens,
    clicks: SignedTokens,
    unsubscribes: SignedTokens,
}

impl Links {
    /// Links under `secret`.
    pub fn new(
        secret: &str,
        tracking_base_url: String,
        unsubscribe_base_url: String,
        valid_for: Duration,
    ) -> Self {
        Self {
            tracking_base_url: tracking_base_url.trim_end_matches('/').to_owned(),
            unsubscribe_base_url,
            valid_for,
            opens: SignedTokens::new(secret, "open"),
            clicks: SignedTokens::new(secret, "click"),
            unsubscribes: SignedTokens::new(secret, "unsubscribe"),
        }
    }

    fn sign(
        tokens: &SignedTokens,
        tenant: &Tenant,
        contact: Uuid,
        campaign: Uuid,
        valid_for: Duration,
    ) -> String {
        tokens.sign_with(
            tenant.as_str(),
            contact,
            Some(campaign),
            Utc::now() + valid_for,
        )
    }

    /// The unsubscribe link of `contact`'s message of `campaign`.
    pub fn unsubscribe_url(&self, tenant: &Tenant, contact: Uuid, campaign: Uuid) -> String {
        let token = Self::sign(
            &self.unsubscribes,
            tenant,
            contact,
            campaign,
            self.valid_for,
        );
        format!("{}?token={token}", self.unsubscribe_base_url)
    }

    /// The tracking image of `contact`'s message of `campaign`.
    pub fn open_url(&self, tenant: &Tenant, contact: Uuid, campaign: Uuid) -> String {
        let token = Self::sign(&self.opens, tenant, contact, campaign, self.valid_for);
        format!("{}/o/{token}", self.tracking_base_url)
    }

    /// `target` as a tracked link in `contact`'s message of `campaign`.
    pub fn click_url(
        &self,
        tenant: &Tenant,
        contact: Uuid,
        campaign: Uuid,
        target: &str,
    ) -> String {
        let token = Self::sign(&self.clicks, tenant, contact, campaign, self.valid_for);
        let binding = self.clicks.bind(&token, target);
        format!(
            "{}/c/{token}?b={binding}&u={}",
            self.tracking_base_url,
            percent_encode(target)
        )
    }
}

/// What a link's token names.
struct Named {
    tenant: Tenant,
    contact: String,
    campaign: Uuid,
}

fn named(tokens: &SignedTokens, token: &str) -> Result<Named, ApiError> {
    let claim = tokens.verify(token, Utc::now())?;
    let campaign = claim
        .also
        .ok_or_else(|| ApiError::PermissionDenied("the link names no campaign".into()))?;
    Ok(Named {
        tenant: Tenant::new(claim.tenant),
        contact: format!("contacts/{}", claim.id),
        campaign,
    })
}

/// Records what recipients do through their links.
#[derive(Clone)]
pub struct Tracker {
    store: Store,
    directory: Directory,
    links: Links,
}

impl Tracker {
    /// A tracker recording through `store`, recording withdrawals through `directory`.
    pub fn new(store: Store, directory: Directory, links: Links) -> Self {
        Self {
            store,
            directory,
            links,
        }
    }

    /// The tracking image loaded: an open.
    pub async fn opened(&self, token: &str) -> Result<(), ApiError> {
        let n = named(&self.links.opens, token)?;
        self.store
            .record_engagement(&n.tenant, n.campaign, &n.contact, Engagement::Opened, "")
            .await
            .map(drop)
    }

    /// A tracked link followed: the target, only if the link bound it; the
    /// click is recorded on the way (best effort: the reader goes where the
    /// message pointed even if it cannot be recorded just now).
    pub async fn clicked(
        &self,
        token: &str,
        target: &str,
        binding: &str,
    ) -> Result<String, ApiError> {
        let n = named(&self.links.clicks, token)?;
        if !self.links.clicks.is_bound(token, target, binding) {
            return Err(ApiError::PermissionDenied(
                "the link's target is not the one it was made for".into(),
            ));
        }
        if let Err(error) = self
            .store
            .record_engagement(
                &n.tenant,
                n.campaign,
                &n.contact,
                Engagement::Clicked,
                target,
            )
            .await
        {
            tracing::warn!(%error, "a click not recorded");
        }
        Ok(target.to_owned())
    }

    /// Unsubscribes the link's contact: the address the message went to
    /// suppressed first (it holds whatever happens to the contact), the
    /// withdrawal recorded in contacts, the engagement once. Returns the
    /// contact's name.
    pub async fn unsubscribe(&self, token: &str) -> Result<String, ApiError> {
        let n = named(&self.links.unsubscribes, token)?;
        // The campaign's name, or the journey's for a journey's email.
        let campaign = self.store.source_name(&n.tenant, n.campaign).await?;
        if let Some(email) = self
            .store
            .address_sent_to(&n.tenant, n.campaign, &n.contact)
            .await?
        {
            self.store
                .suppress(
                    &n.tenant,
                    &email,
                    &format!("unsubscribed through {campaign}"),
                )
                .await?;
        }
        let credentials = self.directory.as_service(&n.tenant)?;
        let source = format!("unsubscribe:{campaign}");
        match self
            .directory
            .withdraw_email_consent(&credentials, &n.contact, &source)
            .await
        {
            // A contact merged away or deleted since: the suppression holds.
            Ok(_) | Err(ApiError::NotFound(_) | ApiError::FailedPrecondition(_)) => {}
            Err(error) => return Err(error),
        }
        self.store
            .record_engagement(
                &n.tenant,
                n.campaign,
                &n.contact,
                Engagement::Unsubscribed,
                "",
            )
            .await?;
        Ok(n.contact)
    }
}

/// `value` percent-encoded for a query string (RFC 3986 unreserved kept).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            percent_encode("https://a.example/x?y=1&z=ä"),
            "https%3A%2F%2Fa.example%2Fx%3Fy%3D1%26z%3D%C3%A4"
        );
    }
}
