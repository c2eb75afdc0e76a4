//! Segments and lists, the groups a campaign's audience is made of, and the
//! rule for who of an audience may be sent to.

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    validate::{MAX_LONG, MAX_SHORT, Violations},
};
use uuid::Uuid;

/// What a segment is written with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentDraft {
    /// For people.
    pub display_name: String,
    /// What it is for.
    pub description: String,
    /// An AIP-160 filter over contacts (the contacts service checks it).
    pub filter: String,
}

/// The fields UpdateSegment may change.
pub const SEGMENT_FIELDS: &[&str] = &["display_name", "description", "filter"];

impl SegmentDraft {
    /// Trims and checks; INVALID_ARGUMENT naming `{prefix}.<field>`.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.display_name = self.display_name.trim().to_owned();
        self.filter = self.filter.trim().to_owned();
        let mut v = Violations::default();
        required_name(&mut v, prefix, &self.display_name);
        v.text(
            &format!("{prefix}.description"),
            &self.description,
            MAX_LONG,
        );
        if self.filter.is_empty() {
            v.add(format!("{prefix}.filter"), "required");
        }
        v.text(&format!("{prefix}.filter"), &self.filter, MAX_SHORT * 8);
        v.finish()
    }

    /// Copies the fields named in `paths` from `patch`.
    pub fn apply(&mut self, paths: &[&str], patch: &SegmentDraft) {
        for path in paths {
            match *path {
                "display_name" => self.display_name.clone_from(&patch.display_name),
                "description" => self.description.clone_from(&patch.description),
                "filter" => self.filter.clone_from(&patch.filter),
                _ => {}
            }
        }
    }
}

/// A segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Its id.
    pub id: Uuid,
    /// Its fields.
    pub draft: SegmentDraft,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// The row's version.
    pub version: i64,
}

impl Segment {
    /// `segments/{id}`.
    pub fn name(&self) -> String {
        format!("segments/{}", self.id)
    }
}

/// What a list is written with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListDraft {
    /// For people.
    pub display_name: String,
    /// What it is for.
    pub description: String,
}

impl ListDraft {
    /// Trims and checks; INVALID_ARGUMENT naming `{prefix}.<field>`.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.display_name = self.display_name.trim().to_owned();
        let mut v = Violations::default();
        required_name(&mut v, prefix, &self.display_name);
        v.text(
            &format!("{prefix}.description"),
            &self.description,
            MAX_LONG,
        );
        v.finish()
    }
}

/// A static list.
#[derive(Debug, Clone, PartialEq)]
pub struct MailingList {
    /// Its id.
    pub id: Uuid,
    /// Its fields.
    pub draft: ListDraft,
    /// How many members it has.
    pub member_count: i64,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// The row's version.
    pub version: i64,
}

impl MailingList {
    /// `mailingLists/{id}`.
    pub fn name(&self) -> String {
        format!("mailingLists/{}", self.id)
    }
}

/// The most contacts and emails one AddListMembers call takes.
pub const MAX_MEMBERS_PER_CALL: usize = 1000;

/// Why a recipient is left out at send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppression {
    /// The contact withdrew email consent (or unsubscribed).
    ConsentWithdrawn,
    /// The contact has no email address.
    NoAddress,
    /// The contact is gone (deleted, merged away, erased).
    Gone,
}

impl Suppression {
    /// The ledger's words for it.
    pub fn reason(self) -> &'static str {
        match self {
            Suppression::ConsentWithdrawn => "email consent withdrawn",
            Suppression::NoAddress => "no email address",
            Suppression::Gone => "the contact no longer exists",
        }
    }
}

/// What the sender knows of a contact when its turn comes.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactAtSend {
    /// The address to use (primary, else first), if any.
    pub email: Option<String>,
    /// Whether the contact withdrew email consent.
    pub email_consent_withdrawn: bool,
    /// Whether the contact is deleted or merged into another.
    pub gone: bool,
}

/// Whether a contact may be sent to now: the consent is checked at send
/// time, not when the audience was resolved, so an unsubscribe between the
/// two holds.
pub fn may_send(contact: Option<&ContactAtSend>) -> Result<&str, Suppression> {
    let Some(contact) = contact.filter(|c| !c.gone) else {
        return Err(Suppression::Gone);
    };
    if contact.email_consent_withdrawn {
        return Err(Suppression::ConsentWithdrawn);
    }
    contact.email.as_deref().ok_or(Suppression::NoAddress)
}

fn required_name(v: &mut Violations, prefix: &str, name: &str) {
    if name.is_empty() {
        v.add(format!("{prefix}.display_name"), "required");
    }
    v.text(&format!("{prefix}.display_name"), name, MAX_SHORT);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(email: Option<&str>, withdrawn: bool, gone: bool) -> ContactAtSend {
        ContactAtSend {
            email: email.map(str::to_owned),
            email_consent_withdrawn: withdrawn,
            gone,
        }
    }

    #[test]
    fn only_a_live_consenting_contact_with_an_address_is_sent_to() {
        let ok = contact(Some("ada@example.com"), false, false);
        assert_eq!(may_send(Some(&ok)), Ok("ada@example.com"));
        assert_eq!(
            may_send(Some(&contact(Some("a@b.c"), true, false))),
            Err(Suppression::ConsentWithdrawn)
        );
        assert_eq!(
            may_send(Some(&contact(None, false, false))),
            Err(Suppression::NoAddress)
        );
        assert_eq!(
            may_send(Some(&contact(Some("a@b.c"), false, true))),
            Err(Suppression::Gone)
        );
        assert_eq!(may_send(None), Err(Suppression::Gone));
    }

    #[test]
    fn a_segment_needs_a_name_and_a_filter() {
        let mut draft = SegmentDraft::default();
        let Err(ApiError::InvalidArgument(v)) = draft.normalize_and_check("segment") else {
            panic!("an empty segment accepted");
        };
        let fields: Vec<&str> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["segment.display_name", "segment.filter"]);
    }
}
