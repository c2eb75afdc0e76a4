//! What an erasure tells the other services: which contacts went, and how to
//! recognise the person's addresses in their own copies without the event
//! carrying a single address.

use std::collections::BTreeSet;

use crm_shared::privacy::{email_fingerprint, phone_fingerprint};

use super::Contact;

/// One person erased: the contact asked for and every contact merged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The erased contact's name, as the request named it.
    pub contact: String,
    /// Every other contact erased with it (the merge chain), by name.
    pub merged: Vec<String>,
    /// The fingerprint of each email address any of them held, once each.
    pub email_fingerprints: Vec<String>,
    /// The fingerprint of each phone number any of them held, once each.
    pub phone_fingerprints: Vec<String>,
}

impl Erasure {
    /// The erasure of `contact` and of `merged`, the contacts merged into it
    /// at any depth, as they were before being deleted.
    pub fn of(tenant: &str, contact: &Contact, merged: &[Contact]) -> Self {
        let everyone = || std::iter::once(contact).chain(merged);
        // Sorted sets: the same person always gives the same event, and an
        // address held by two contacts of the chain is named once.
        let emails: BTreeSet<String> = everyone()
            .flat_map(|c| &c.draft.emails)
            .map(|email| email_fingerprint(tenant, &email.address))
            .collect();
        let phones: BTreeSet<String> = everyone()
            .flat_map(|c| &c.draft.phones)
            .filter_map(|phone| phone_fingerprint(tenant, &phone.number))
            .collect();
        Self {
            contact: contact.name(),
            merged: merged.iter().map(Contact::name).collect(),
            email_fingerprints: emails.into_iter().collect(),
            phone_fingerprints: phones.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{ContactDraft, Email, Phone};

    fn contact(emails: &[&str], phones: &[&str]) -> Contact {
        Contact {
            id: Uuid::now_v7(),
            draft: ContactDraft {
                emails: emails
                    .iter()
                    .map(|address| Email {
                        address: (*address).into(),
                        label: String::new(),
                        primary: false,
                    })
                    .collect(),
                phones: phones
                    .iter()
                    .map(|number| Phone {
                        number: (*number).into(),
                        normalized: String::new(),
                        label: String::new(),
                        primary: false,
                    })
                    .collect(),
                ..Default::default()
            },
            create_time: chrono::Utc::now(),
            update_time: chrono::Utc::now(),
            delete_time: None,
            version: 1,
            merged_into: None,
        }
    }

    #[test]
    fn names_the_chain_and_fingerprints_each_address_once() {
        let survivor = contact(&["ada@x.example"], &["+1 555 010 0000"]);
        let merged = contact(&["ADA@x.example", "countess@y.example"], &["not a phone"]);
        let erasure = Erasure::of("acme", &survivor, std::slice::from_ref(&merged));
        assert_eq!(erasure.contact, survivor.name());
        assert_eq!(erasure.merged, vec![merged.name()]);
        let mut expected = vec![
            email_fingerprint("acme", "ada@x.example"),
            email_fingerprint("acme", "countess@y.example"),
        ];
        expected.sort();
        assert_eq!(erasure.email_fingerprints, expected);
        assert_eq!(
            erasure.phone_fingerprints,
            vec![phone_fingerprint("acme", "+15550100000").unwrap_or_default()]
        );
    }
}
