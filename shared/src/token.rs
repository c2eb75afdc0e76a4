//! Signed, expiring tokens that stand in for an account: a survey link for
//! a requester, a chat for a website's visitor, an unsubscribe link. A token is
//! `<payload>.<mac>`, both base64url, the payload naming the tenant, the
//! resource and the expiry, the MAC an HMAC-SHA256 of the token's purpose
//! and payload under the service's key, so a token of one purpose is never
//! accepted for another.

use crate::error::ApiError;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Signs and reads the tokens of one purpose.
#[derive(Clone)]
pub struct SignedTokens {
    key: Vec<u8>,
    /// What the tokens are for ("survey", "chat"): part of the MAC, and of
    /// the refusal's words.
    purpose: &'static str,
}

/// What a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaim {
    /// The tenant.
    pub tenant: String,
    /// The resource's id (the ticket, the chat, the contact).
    pub id: Uuid,
    /// A second resource the token concerns, if signed with one (the
    /// campaign whose message carried an unsubscribe link).
    pub also: Option<Uuid>,
}

impl SignedTokens {
    /// Tokens for `purpose` under `key` (a service's `*_secret` setting).
    pub fn new(key: &str, purpose: &'static str) -> Self {
        Self {
            key: key.as_bytes().to_vec(),
            purpose,
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(self.purpose.as_bytes());
        mac.update(b"\0");
        mac.update(payload);
        mac
    }

    /// The token for `tenant`'s resource `id`, valid until `expires`.
    pub fn sign(&self, tenant: &str, id: Uuid, expires: DateTime<Utc>) -> String {
        self.sign_with(tenant, id, None, expires)
    }

    /// The token for `tenant`'s resource `id` and, when given, the second
    /// resource `also`, valid until `expires`.
    pub fn sign_with(
        &self,
        tenant: &str,
        id: Uuid,
        also: Option<Uuid>,
        expires: DateTime<Utc>,
    ) -> String {
        let mut payload = format!("{tenant}\0{id}\0{}", expires.timestamp());
        if let Some(also) = also {
            payload.push('\0');
            payload.push_str(&also.to_string());
        }
        let mac = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// A MAC binding `value` to `token` (a tracked link's target to the
    /// link's token), so whoever holds the token cannot swap the value.
    pub fn bind(&self, token: &str, value: &str) -> String {
        let mac = self
            .mac(format!("{token}\0{value}").as_bytes())
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(mac)
    }

    /// Whether `binding` is [`SignedTokens::bind`] of `value` to `token`.
    pub fn is_bound(&self, token: &str, value: &str, binding: &str) -> bool {
        URL_SAFE_NO_PAD.decode(binding).is_ok_and(|mac| {
            self.mac(format!("{token}\0{value}").as_bytes())
                .verify_slice(&mac)
                .is_ok()
        })
    }

    /// What `token` names, if it is one of ours for this purpose, unaltered
    /// and not expired at `now`; PERMISSION_DENIED otherwise (the same
    /// answer for each, so a guesser learns nothing).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<TokenClaim, ApiError> {
        let refused = || {
            ApiError::PermissionDenied(format!(
                "the {} token is not valid or has expired",
                self.purpose
            ))
        };
        let (payload, mac) = token.trim().split_once('.').ok_or_else(refused)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused())?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| refused())?;
        self.mac(&payload)
            .verify_slice(&mac)
            .map_err(|_| refused())?;
        let text = String::from_utf8(payload).map_err(|_| refused())?;
        let mut parts = text.split('\0');
        let (Some(tenant), Some(id), Some(expires), also, None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(refused());
        };
        let expires: i64 = expires.parse().map_err(|_| refused())?;
        if now.timestamp() >= expires {
            return Err(refused());
        }
        Ok(TokenClaim {
            tenant: tenant.to_owned(),
            id: id.parse().map_err(|_| refused())?,
            also: also
                .map(|also| also.parse().map_err(|_| refused()))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn tokens_name_their_resource_until_they_expire_and_resist_tampering() {
        let tokens = SignedTokens::new("secret", "survey");
        let ticket = Uuid::now_v7();
        let now = Utc::now();
        let token = tokens.sign("acme", ticket, now + Duration::days(14));
        assert_eq!(
            tokens.verify(&token, now).unwrap(),
            TokenClaim {
                tenant: "acme".into(),
                id: ticket,
                also: None,
            }
        );
        let campaign = Uuid::now_v7();
        let pair = tokens.sign_with("acme", ticket, Some(campaign), now + Duration::days(1));
        assert_eq!(tokens.verify(&pair, now).unwrap().also, Some(campaign));
        assert!(tokens.verify(&token, now + Duration::days(15)).is_err());
        assert!(
            SignedTokens::new("other", "survey")
                .verify(&token, now)
                .is_err()
        );
        // Another tenant's name in the payload, the old MAC kept.
        let (_, mac) = token.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(format!(
            "globex\0{ticket}\0{}",
            (now + Duration::days(14)).timestamp()
        ));
        assert!(
            tokens
                .verify(&format!("{forged_payload}.{mac}"), now)
                .is_err()
        );
        for junk in ["", ".", "abc", "a.b.c", "!!!.???"] {
            assert!(tokens.verify(junk, now).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_bound_value_cannot_be_swapped() {
        let tokens = SignedTokens::new("secret", "track");
        let token = tokens.sign("acme", Uuid::now_v7(), Utc::now() + Duration::days(1));
        let binding = tokens.bind(&token, "https://acme.example/offer");
        assert!(tokens.is_bound(&token, "https://acme.example/offer", &binding));
        assert!(!tokens.is_bound(&token, "https://evil.example/", &binding));
        assert!(!tokens.is_bound("another", "https://acme.example/offer", &binding));
        assert!(!tokens.is_bound(&token, "https://acme.example/offer", "junk"));
    }

    #[test]
    fn a_token_of_one_purpose_is_refused_for_another() {
        let survey = SignedTokens::new("secret", "survey");
        let chat = SignedTokens::new("secret", "chat");
        let now = Utc::now();
        let token = survey.sign("acme", Uuid::now_v7(), now + Duration::days(1));
        let Err(ApiError::PermissionDenied(why)) = chat.verify(&token, now) else {
            panic!("a survey token opened a chat");
        };
        assert!(why.contains("chat token"), "{why}");
    }
}
