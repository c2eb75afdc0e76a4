//! Comments: public replies and internal notes on a ticket.

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    validate::{MAX_LONG, MAX_SHORT, Violations},
};
use uuid::Uuid;

/// Who wrote a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorKind {
    /// An agent.
    Agent,
    /// The ticket's requester.
    Requester,
    /// The system.
    System,
}

/// Every author kind with its stored name.
pub const AUTHOR_KINDS: &[(AuthorKind, &str)] = &[
    (AuthorKind::Agent, "AGENT"),
    (AuthorKind::Requester, "REQUESTER"),
    (AuthorKind::System, "SYSTEM"),
];

/// The most attachments on one comment.
const MAX_ATTACHMENTS: usize = 100;

/// A file sent with a comment (its bytes live elsewhere).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The file name as sent.
    pub file_name: String,
    /// Bytes.
    pub size_bytes: i64,
    /// Media type.
    pub content_type: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Where the bytes are.
    pub uri: String,
}

/// A stored comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The id.
    pub id: Uuid,
    /// The ticket's id.
    pub ticket: Uuid,
    /// The text.
    pub body: String,
    /// Seen by the requester.
    pub public: bool,
    /// Who wrote it.
    pub author_kind: AuthorKind,
    /// The agent's subject or the requester's contact.
    pub author: String,
    /// Files.
    pub attachments: Vec<Attachment>,
    /// The Message-ID of its mail.
    pub message_id: String,
    /// Made.
    pub create_time: DateTime<Utc>,
}

impl Comment {
    /// `tickets/{ticket}/comments/{id}`.
    pub fn name(&self) -> String {
        format!("tickets/{}/comments/{}", self.ticket, self.id)
    }

    /// Checks the caller's fields; `prefix` names the message.
    pub fn check(&self, prefix: &str) -> Result<(), ApiError> {
        let mut v = Violations::default();
        if self.body.trim().is_empty() && self.attachments.is_empty() {
            v.add(
                format!("{prefix}.body"),
                "required unless there are attachments",
            );
        }
        v.text(&format!("{prefix}.body"), &self.body, MAX_LONG);
        if self.attachments.len() > MAX_ATTACHMENTS {
            v.add(
                format!("{prefix}.attachments"),
                format!("at most {MAX_ATTACHMENTS}"),
            );
        }
        for (i, a) in self.attachments.iter().enumerate() {
            let field = |name: &str| format!("{prefix}.attachments[{i}].{name}");
            if a.file_name.trim().is_empty() {
                v.add(field("file_name"), "required");
            }
            v.text(&field("file_name"), &a.file_name, MAX_SHORT);
            v.text(&field("content_type"), &a.content_type, MAX_SHORT);
            v.text(&field("uri"), &a.uri, 2048);
            if a.size_bytes < 0 {
                v.add(field("size_bytes"), "must not be negative");
            }
            let hex = a.sha256.len() == 64 && a.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !a.sha256.is_empty() && !hex {
                v.add(field("sha256"), "64 hexadecimal digits");
            }
        }
        v.finish()
    }

    /// Removes the person's data: the text and the files.
    pub fn erase_personal_data(&mut self) {
        self.body = "[erased]".into();
        self.attachments.clear();
        self.message_id.clear();
    }
}
