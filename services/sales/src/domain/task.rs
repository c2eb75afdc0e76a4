//! Sales tasks: follow-ups with a due time.

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    validate::{MAX_SHORT, Violations},
};
use uuid::Uuid;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// To do.
    Open,
    /// Done.
    Done,
    /// Not needed.
    Cancelled,
}

/// Every status with its stored name.
pub const TASK_STATUSES: &[(TaskStatus, &str)] = &[
    (TaskStatus::Open, "OPEN"),
    (TaskStatus::Done, "DONE"),
    (TaskStatus::Cancelled, "CANCELLED"),
];

/// The writable fields of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDraft {
    /// What to do.
    pub title: String,
    /// When.
    pub due_time: Option<DateTime<Utc>>,
    /// Who.
    pub owner: String,
    /// Where it stands.
    pub status: TaskStatus,
    /// `leads/{id}`.
    pub lead: String,
    /// `contacts/{id}`.
    pub contact: String,
    /// `opportunities/{id}`.
    pub opportunity: String,
}

/// The fields UpdateTask may change.
pub const WRITABLE_FIELDS: &[&str] = &[
    "title",
    "due_time",
    "owner",
    "status",
    "lead",
    "contact",
    "opportunity",
];

impl TaskDraft {
    /// Checks every field.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.title = self.title.trim().to_owned();
        let mut v = Violations::default();
        v.text(&format!("{prefix}.title"), &self.title, MAX_SHORT);
        if self.title.is_empty() {
            v.add(format!("{prefix}.title"), "required");
        }
        if self.due_time.is_none() {
            v.add(format!("{prefix}.due_time"), "required");
        }
        v.text(&format!("{prefix}.owner"), &self.owner, MAX_SHORT);
        v.reference(&format!("{prefix}.lead"), &self.lead, "leads");
        v.reference(&format!("{prefix}.contact"), &self.contact, "contacts");
        v.reference(
            &format!("{prefix}.opportunity"),
            &self.opportunity,
            "opportunities",
        );
        v.finish()
    }

    /// Copies the fields named in `paths` from `from`.
    pub fn apply(&mut self, paths: &[&str], from: &TaskDraft) {
        for path in paths {
            match *path {
                "title" => self.title = from.title.clone(),
                "due_time" => self.due_time = from.due_time,
                "owner" => self.owner = from.owner.clone(),
                "status" => self.status = from.status,
                "lead" => self.lead = from.lead.clone(),
                "contact" => self.contact = from.contact.clone(),
                "opportunity" => self.opportunity = from.opportunity.clone(),
                _ => {}
            }
        }
    }
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The id.
    pub id: Uuid,
    /// Its fields.
    pub draft: TaskDraft,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Version.
    pub version: i64,
}

impl Task {
    /// `tasks/{id}`.
    pub fn name(&self) -> String {
        format!("tasks/{}", self.id)
    }
}
