//! Data-subject erasure across services: how a person's email addresses and
//! phone numbers are named in a `ContactErased` event without the event
//! carrying them.
//!
//! A fingerprint is the SHA-256 of the tenant, the kind and the value's key
//! (`validate::email_key`, `validate::phone_key`), so every service computes
//! the same one for the same person, one tenant's fingerprints never match
//! another's, and the event names no address in clear. It is pseudonymous,
//! not anonymous: whoever already holds an address can test it.

use sha2::{Digest, Sha256};

use crate::validate::{email_key, phone_key};

/// The fingerprint of an email address in `tenant`.
pub fn email_fingerprint(tenant: &str, address: &str) -> String {
    fingerprint(tenant, "email", &email_key(address))
}

/// The fingerprint of a phone number in `tenant`, `None` when it is not one.
pub fn phone_fingerprint(tenant: &str, number: &str) -> Option<String> {
    phone_key(number).map(|key| fingerprint(tenant, "phone", &key))
}

fn fingerprint(tenant: &str, kind: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    for part in [tenant, kind, key] {
        // Length-prefixed, so ("a", "bc") and ("ab", "c") differ.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_person_has_the_same_fingerprint_however_written() {
        assert_eq!(
            email_fingerprint("acme", " Ada@Example.COM "),
            email_fingerprint("acme", "ada@example.com")
        );
        assert_eq!(
            phone_fingerprint("acme", "+1 (555) 010-0000"),
            phone_fingerprint("acme", "+15550100000")
        );
        assert_eq!(phone_fingerprint("acme", "call me"), None);
    }

    #[test]
    fn tenants_and_kinds_do_not_share_fingerprints() {
        assert_ne!(
            email_fingerprint("acme", "ada@example.com"),
            email_fingerprint("globex", "ada@example.com")
        );
        let digits = "15550100000";
        assert_ne!(
            fingerprint("acme", "email", digits),
            fingerprint("acme", "phone", digits)
        );
        assert_eq!(email_fingerprint("acme", "a@b.c").len(), 64);
        assert!(!email_fingerprint("acme", "a@b.c").contains("a@b.c"));
    }
}
