//! Which of sales' rows hold a copy of a person whose contact was erased.

use std::collections::HashSet;

use crm_shared::privacy::{email_fingerprint, phone_fingerprint};

/// The person a `ContactErased` event names: the contacts of the merge chain,
/// and fingerprints of every address and number they had.
#[derive(Debug, Clone, Default)]
pub struct ErasedPerson {
    /// The erased contact.
    pub contact: String,
    /// It and every contact merged into it.
    pub contacts: HashSet<String>,
    /// Fingerprints of their email addresses.
    pub email_fingerprints: HashSet<String>,
    /// Fingerprints of their phone numbers.
    pub phone_fingerprints: HashSet<String>,
}

impl ErasedPerson {
    /// Whether a lead with these fields holds a copy of the person: it was
    /// converted into one of their contacts, or captured with one of their
    /// addresses or numbers (converted or not).
    pub fn is_held_by(
        &self,
        tenant: &str,
        converted_contact: &str,
        email: &str,
        phone: &str,
    ) -> bool {
        self.contacts.contains(converted_contact)
            || (!email.is_empty()
                && self
                    .email_fingerprints
                    .contains(&email_fingerprint(tenant, email)))
            || phone_fingerprint(tenant, phone)
                .is_some_and(|fingerprint| self.phone_fingerprints.contains(&fingerprint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> ErasedPerson {
        ErasedPerson {
            contact: "contacts/c".into(),
            contacts: ["contacts/c".into(), "contacts/a".into()].into(),
            email_fingerprints: [email_fingerprint("acme", "ada@example.com")].into(),
            phone_fingerprints: phone_fingerprint("acme", "+1 555 010 0000")
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_lead_is_found_by_link_address_or_number() {
        let p = person();
        assert!(p.is_held_by("acme", "contacts/a", "", ""));
        assert!(p.is_held_by("acme", "", "ADA@example.com", ""));
        assert!(p.is_held_by("acme", "", "", "+15550100000"));
        assert!(!p.is_held_by("acme", "contacts/b", "bob@example.com", "+15550109999"));
        assert!(!p.is_held_by("globex", "", "ada@example.com", ""));
        assert!(!p.is_held_by("acme", "", "", ""));
    }
}
