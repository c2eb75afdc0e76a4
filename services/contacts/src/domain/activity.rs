//! An activity on the interaction timeline.

use chrono::{DateTime, Utc};
use crm_shared::error::ApiError;
use uuid::Uuid;

use super::validate::{MAX_LONG, MAX_SHORT, Violations};

/// What kind of interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityKind {
    /// A note.
    Note,
    /// A call.
    Call,
    /// An email.
    Email,
    /// A meeting.
    Meeting,
    /// Written by another service.
    System,
}

impl ActivityKind {
    /// Every kind with its stored (and filterable) name.
    pub const ALL: &'static [(ActivityKind, &'static str)] = &[
        (Self::Note, "NOTE"),
        (Self::Call, "CALL"),
        (Self::Email, "EMAIL"),
        (Self::Meeting, "MEETING"),
        (Self::System, "SYSTEM"),
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("NOTE", |(_, name)| name)
    }

    /// The kind with a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(kind, _)| *kind)
    }
}

/// The writable fields of an activity.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityDraft {
    /// The kind; required.
    pub kind: Option<ActivityKind>,
    /// One line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// When it happened; now when unset.
    pub occur_time: Option<DateTime<Utc>>,
    /// Who did it; the caller when empty.
    pub actor: String,
    /// "contacts/{id}" or empty.
    pub contact: String,
    /// "companies/{id}" or empty.
    pub company: String,
    /// A resource in another service.
    pub related_resource: String,
}

/// The fields an update mask may name.
pub const WRITABLE_FIELDS: &[&str] = &[
    "subject",
    "body",
    "occur_time",
    "actor",
    "contact",
    "company",
];

impl ActivityDraft {
    /// Validates every field.
    pub fn normalize(mut self, prefix: &str) -> Result<Self, ApiError> {
        let mut v = Violations::default();
        if self.kind.is_none() {
            v.add(format!("{prefix}.kind"), "required");
        }
        self.subject = self.subject.trim().to_owned();
        v.text(&format!("{prefix}.subject"), &self.subject, MAX_SHORT);
        v.text(&format!("{prefix}.body"), &self.body, MAX_LONG);
        v.text(&format!("{prefix}.actor"), &self.actor, MAX_SHORT);
        v.text(
            &format!("{prefix}.related_resource"),
            &self.related_resource,
            MAX_SHORT,
        );
        v.reference(&format!("{prefix}.contact"), &self.contact, "contacts");
        v.reference(&format!("{prefix}.company"), &self.company, "companies");
        if self.contact.is_empty() && self.company.is_empty() {
            v.add(
                format!("{prefix}.contact"),
                "an activity belongs to a contact, a company or both",
            );
        }
        v.finish()?;
        Ok(self)
    }

    /// Copies the fields named in `paths` from `patch`.
    pub fn apply(&mut self, patch: ActivityDraft, paths: &[&str]) {
        for path in paths {
            match *path {
                "subject" => self.subject.clone_from(&patch.subject),
                "body" => self.body.clone_from(&patch.body),
                "occur_time" => self.occur_time = patch.occur_time,
                "actor" => self.actor.clone_from(&patch.actor),
                "contact" => self.contact.clone_from(&patch.contact),
                "company" => self.company.clone_from(&patch.company),
                _ => {}
            }
        }
    }
}

/// A stored activity.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// The id.
    pub id: Uuid,
    /// The fields; kind and occur_time always set.
    pub draft: ActivityDraft,
    /// Recorded.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Soft-deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// The etag.
    pub version: i64,
}

impl Activity {
    /// The resource name.
    pub fn name(&self) -> String {
        crm_shared::convert::name_of("activities", self.id)
    }
}
