//! Satisfaction surveys: one per ticket, made when it is first solved, and
//! answered by the requester with a signed token that expires, so nobody
//! needs an account to say how it went.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use crm_shared::{error::ApiError, validate::Violations};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// The longest comment with a rating.
const MAX_COMMENT: usize = 10_000;

/// A ticket's survey.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    /// The ticket's id.
    pub ticket: Uuid,
    /// The agent rated (the assignee when solved).
    pub assignee: String,
    /// The queue rated.
    pub queue: String,
    /// 1-5 once answered.
    pub rating: Option<i32>,
    /// The requester's words.
    pub comment: String,
    /// Made (first solved).
    pub create_time: DateTime<Utc>,
    /// The token's end.
    pub expire_time: DateTime<Utc>,
    /// Answered.
    pub submit_time: Option<DateTime<Utc>>,
}

impl Survey {
    /// `tickets/{id}/satisfaction`.
    pub fn name(&self) -> String {
        format!("tickets/{}/satisfaction", self.ticket)
    }
}

/// Checks an answer: INVALID_ARGUMENT naming `rating` or `comment`.
pub fn check_answer(rating: i32, comment: &str) -> Result<(), ApiError> {
    let mut v = Violations::default();
    if !(1..=5).contains(&rating) {
        v.add("rating", "1 to 5");
    }
    v.text("comment", comment, MAX_COMMENT);
    v.finish()
}

/// Signs and reads survey tokens: `<payload>.<mac>`, both base64url, the
/// payload naming the tenant, the ticket and the expiry, the MAC an
/// HMAC-SHA256 of it under the service's survey key.
#[derive(Clone)]
pub struct SurveyTokens {
    key: Vec<u8>,
}

/// What a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyClaim {
    /// The tenant.
    pub tenant: String,
    /// The ticket's id.
    pub ticket: Uuid,
}

impl SurveyTokens {
    /// Tokens under `key` (the `support.survey_secret` setting).
    pub fn new(key: &str) -> Self {
        Self {
            key: key.as_bytes().to_vec(),
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(payload);
        mac
    }

    /// The token for `tenant`'s ticket, valid until `expires`.
    pub fn sign(&self, tenant: &str, ticket: Uuid, expires: DateTime<Utc>) -> String {
        let payload = format!("{tenant}\0{ticket}\0{}", expires.timestamp());
        let mac = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// What `token` names, if it is ours, unaltered and not expired at
    /// `now`; PERMISSION_DENIED otherwise (the same answer for each, so a
    /// guesser learns nothing).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<SurveyClaim, ApiError> {
        let refused =
            || ApiError::PermissionDenied("the survey link is not valid or has expired".into());
        let (payload, mac) = token.trim().split_once('.').ok_or_else(refused)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused())?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| refused())?;
        self.mac(&payload)
            .verify_slice(&mac)
            .map_err(|_| refused())?;
        let text = String::from_utf8(payload).map_err(|_| refused())?;
        let mut parts = text.split('\0');
        let (Some(tenant), Some(ticket), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused());
        };
        let expires: i64 = expires.parse().map_err(|_| refused())?;
        if now.timestamp() >= expires {
            return Err(refused());
        }
        Ok(SurveyClaim {
            tenant: tenant.to_owned(),
            ticket: ticket.parse().map_err(|_| refused())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn tokens_name_their_ticket_until_they_expire_and_resist_tampering() {
        let tokens = SurveyTokens::new("secret");
        let ticket = Uuid::now_v7();
        let now = Utc::now();
        let token = tokens.sign("acme", ticket, now + Duration::days(14));
        assert_eq!(
            tokens.verify(&token, now).unwrap(),
            SurveyClaim {
                tenant: "acme".into(),
                ticket
            }
        );
        assert!(tokens.verify(&token, now + Duration::days(15)).is_err());
        assert!(SurveyTokens::new("other").verify(&token, now).is_err());
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
    fn answers_are_one_to_five() {
        assert!(check_answer(5, "great").is_ok());
        for bad in [0, 6, -1] {
            let Err(ApiError::InvalidArgument(v)) = check_answer(bad, "") else {
                panic!("{bad} accepted");
            };
            assert_eq!(v[0].field, "rating");
        }
    }
}
