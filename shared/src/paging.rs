//! AIP-158 pagination: page sizes with a default and a ceiling, and opaque
//! page tokens that are tamper-evident (HMAC-SHA256) and bound to the query
//! they continue, so a token from one filter cannot page through another.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// The page size to use: `default` for 0, at most `max` (larger values are
/// clamped), negative is INVALID_ARGUMENT on `field`.
pub fn page_size(requested: i32, default: u64, max: u64, field: &str) -> Result<u64, ApiError> {
    match requested {
        n if n < 0 => Err(ApiError::invalid(field, "must not be negative")),
        0 => Ok(default),
        n => Ok((n as u64).min(max)),
    }
}

/// Makes and checks page tokens with one secret key.
#[derive(Clone)]
pub struct PageTokens {
    key: Arc<[u8]>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens")
    }
}

impl PageTokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            key: Arc::from(secret.as_bytes()),
        }
    }

    fn mac(&self, query: &str, payload: &str) -> HmacSha256 {
        // new_from_slice accepts keys of any length for HMAC.
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(query.as_bytes());
        mac.update(b"\0");
        mac.update(payload.as_bytes());
        mac
    }

    /// The token that continues `query` (any string identifying the request's
    /// filter, order and scope) at `offset`.
    pub fn encode(&self, query: &str, offset: u64) -> String {
        self.encode_payload(query, &offset.to_string())
    }

    /// The offset a token continues at; 0 for an empty token. A token that was
    /// altered, or made for another query, is INVALID_ARGUMENT on `field`.
    pub fn decode(&self, token: &str, query: &str, field: &str) -> Result<u64, ApiError> {
        match self.decode_payload(token, query, field)? {
            None => Ok(0),
            Some(payload) => payload.parse().map_err(|_| invalid_token(field)),
        }
    }

    /// The token that continues `query` after `payload` (for keyset pages,
    /// the last row's sort key), signed so a client cannot make one up.
    pub fn encode_payload(&self, query: &str, payload: &str) -> String {
        let tag = self.mac(query, payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The payload of a token; `None` for an empty token. A token that was
    /// altered, or made for another query, is INVALID_ARGUMENT on `field`.
    pub fn decode_payload(
        &self,
        token: &str,
        query: &str,
        field: &str,
    ) -> Result<Option<String>, ApiError> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || invalid_token(field);
        let (payload, tag) = token.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let payload = String::from_utf8(payload).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        self.mac(query, &payload)
            .verify_slice(&tag)
            .map_err(|_| invalid())?;
        Ok(Some(payload))
    }
}

/// The answer to a token that is not one of this query's.
pub fn invalid_token(field: &str) -> ApiError {
    ApiError::invalid(
        field,
        "not a page token of this query (was the filter or order changed?)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_for_their_query_only() {
        let tokens = PageTokens::new("key");
        let token = tokens.encode("filter=a", 150);
        assert_eq!(
            tokens.decode(&token, "filter=a", "page_token").unwrap(),
            150
        );
        assert!(tokens.decode(&token, "filter=b", "page_token").is_err());
        assert!(
            PageTokens::new("other")
                .decode(&token, "filter=a", "page_token")
                .is_err()
        );
        assert_eq!(tokens.decode("", "filter=a", "page_token").unwrap(), 0);
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let tokens = PageTokens::new("key");
        let token = tokens.encode("q", 50);
        let (_, tag) = token.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("5000"));
        assert!(tokens.decode(&forged, "q", "page_token").is_err());
        assert!(tokens.decode("garbage", "q", "page_token").is_err());
    }

    #[test]
    fn page_sizes_default_clamp_and_reject_negatives() {
        assert_eq!(page_size(0, 50, 1000, "page_size").unwrap(), 50);
        assert_eq!(page_size(5000, 50, 1000, "page_size").unwrap(), 1000);
        assert_eq!(page_size(7, 50, 1000, "page_size").unwrap(), 7);
        assert!(page_size(-1, 50, 1000, "page_size").is_err());
    }
}
