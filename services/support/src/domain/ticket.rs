//! Tickets: what a valid one is and how its status may move.
//!
//! The workflow: NEW until worked; OPEN, PENDING (waiting on the customer)
//! and ON_HOLD (waiting on a third party) freely between each other; SOLVED
//! from any of them; CLOSED only from SOLVED, and nothing leaves CLOSED.

use chrono::{DateTime, Duration, Utc};
use crm_shared::{
    convert::stored,
    error::ApiError,
    validate::{MAX_LONG, MAX_SHORT, Violations, is_email, normalize_tags},
};
use uuid::Uuid;

use super::sla::TicketSla;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nobody has worked it yet.
    New,
    /// Being worked.
    Open,
    /// Waiting on the customer.
    Pending,
    /// Waiting on a third party.
    OnHold,
    /// Solved; may reopen.
    Solved,
    /// Closed for good.
    Closed,
}

/// Every status with its stored (and filter) name.
pub const STATUSES: &[(Status, &str)] = &[
    (Status::New, "NEW"),
    (Status::Open, "OPEN"),
    (Status::Pending, "PENDING"),
    (Status::OnHold, "ON_HOLD"),
    (Status::Solved, "SOLVED"),
    (Status::Closed, "CLOSED"),
];

impl Status {
    /// Still to be solved: counts towards an agent's load.
    pub fn is_unsolved(self) -> bool {
        !matches!(self, Status::Solved | Status::Closed)
    }
}

/// How urgent a ticket is; ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Low.
    Low,
    /// Normal.
    Normal,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

/// Every priority with its stored name. Stored names sort in priority order
/// only by this table, so the store keeps a rank column for ordering.
pub const PRIORITIES: &[(Priority, &str)] = &[
    (Priority::Low, "LOW"),
    (Priority::Normal, "NORMAL"),
    (Priority::High, "HIGH"),
    (Priority::Urgent, "URGENT"),
];

/// How a ticket arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Email.
    Email,
    /// A web form.
    Web,
    /// A phone call.
    Phone,
    /// A live chat.
    Chat,
    /// A program.
    Api,
}

/// Every channel with its stored name.
pub const CHANNELS: &[(Channel, &str)] = &[
    (Channel::Email, "EMAIL"),
    (Channel::Web, "WEB"),
    (Channel::Phone, "PHONE"),
    (Channel::Chat, "CHAT"),
    (Channel::Api, "API"),
];

/// The fields a caller writes.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketDraft {
    /// What it is about.
    pub subject: String,
    /// The request.
    pub description: String,
    /// `contacts/{id}`; resolved from `requester_email` when empty on create.
    pub requester: String,
    /// The requester's address, lower-case.
    pub requester_email: String,
    /// `companies/{id}` or empty.
    pub company: String,
    /// How it arrived.
    pub channel: Channel,
    /// How urgent.
    pub priority: Priority,
    /// A free-form kind.
    pub kind: String,
    /// Labels.
    pub tags: Vec<String>,
    /// The tenant's own fields.
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// Where it stands (set through [`Ticket::set_status`] after create).
    pub status: Status,
}

/// The fields UpdateTicket may change.
pub const WRITABLE_FIELDS: &[&str] = &[
    "subject",
    "description",
    "company",
    "channel",
    "priority",
    "type",
    "tags",
    "custom_fields",
    "status",
];

impl TicketDraft {
    /// Trims and checks every field; `prefix` names the message in violations.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.subject = self.subject.trim().to_owned();
        self.requester_email = self.requester_email.trim().to_lowercase();
        self.kind = self.kind.trim().to_lowercase();
        self.tags.iter_mut().for_each(|t| *t = t.to_lowercase());
        normalize_tags(&mut self.tags);
        let field = |name: &str| format!("{prefix}.{name}");
        let mut v = Violations::default();
        if self.subject.is_empty() {
            v.add(field("subject"), "required");
        }
        v.text(&field("subject"), &self.subject, MAX_SHORT);
        v.text(&field("description"), &self.description, MAX_LONG);
        v.reference(&field("requester"), &self.requester, "contacts");
        if !self.requester_email.is_empty() && !is_email(&self.requester_email) {
            v.add(field("requester_email"), "not an email address");
        }
        v.text(&field("requester_email"), &self.requester_email, MAX_SHORT);
        v.reference(&field("company"), &self.company, "companies");
        v.text(&field("type"), &self.kind, 64);
        v.tags(&field("tags"), &self.tags);
        v.custom_fields(&field("custom_fields"), &self.custom_fields);
        v.finish()
    }

    /// Copies the fields named in `paths` from `from` (not the status, which
    /// moves through [`Ticket::set_status`]).
    pub fn apply(&mut self, paths: &[&str], from: &TicketDraft) {
        for path in paths {
            match *path {
                "subject" => self.subject = from.subject.clone(),
                "description" => self.description = from.description.clone(),
                "company" => self.company = from.company.clone(),
                "channel" => self.channel = from.channel,
                "priority" => self.priority = from.priority,
                "type" => self.kind = from.kind.clone(),
                "tags" => self.tags = from.tags.clone(),
                "custom_fields" => self.custom_fields = from.custom_fields.clone(),
                _ => {}
            }
        }
    }
}

/// One recorded change of a tracked field.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// "status", "priority", "queue" or "assignee".
    pub field: &'static str,
    /// Before; empty for the first value.
    pub old_value: String,
    /// After.
    pub new_value: String,
    /// Who.
    pub actor: String,
    /// When.
    pub time: DateTime<Utc>,
}

/// A stored ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// The id.
    pub id: Uuid,
    /// The tenant's number for it.
    pub number: i64,
    /// The caller's fields.
    pub draft: TicketDraft,
    /// `queues/{id}` or empty.
    pub queue: String,
    /// The agent (subject id) or empty.
    pub assignee: String,
    /// How queue and assignee were chosen.
    pub assignment_reason: String,
    /// The closed ticket this one follows up.
    pub follow_up_of: String,
    /// The service tier of its company when last read from contacts
    /// (policies and rules name it); empty without a company.
    pub company_tier: String,
    /// The first public agent reply.
    pub first_response_time: Option<DateTime<Utc>>,
    /// Last solved.
    pub solve_time: Option<DateTime<Utc>>,
    /// Closed.
    pub close_time: Option<DateTime<Utc>>,
    /// Times reopened after being solved.
    pub reopen_count: i32,
    /// A requester's reply waiting for an agent's (the next-response clock).
    pub awaiting_reply_since: Option<DateTime<Utc>>,
    /// The SLA and its clocks.
    pub sla: TicketSla,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// Deleted.
    pub delete_time: Option<DateTime<Utc>>,
    /// Version.
    pub version: i64,
}

/// What a requester's reply does to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyEffect {
    /// The reply joins the ticket; its status is unchanged.
    Join,
    /// The reply joins the ticket, which opens again (from NEW stays NEW).
    Reopen,
    /// The ticket is closed (or solved too long ago): the reply opens a
    /// follow-up ticket.
    FollowUp,
}

impl Ticket {
    /// `tickets/{id}`.
    pub fn name(&self) -> String {
        format!("tickets/{}", self.id)
    }

    /// A change of a tracked field, by `actor` at `time`.
    pub fn change(
        field: &'static str,
        old_value: &str,
        new_value: &str,
        actor: &str,
        time: DateTime<Utc>,
    ) -> Change {
        Change {
            field,
            old_value: old_value.to_owned(),
            new_value: new_value.to_owned(),
            actor: actor.to_owned(),
            time,
        }
    }

    /// Moves the status along the workflow; the change to record, if any.
    /// FAILED_PRECONDITION for a move the workflow forbids.
    pub fn set_status(
        &mut self,
        to: Status,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Change>, ApiError> {
        let from = self.draft.status;
        if from == to {
            return Ok(None);
        }
        let refused = |why: &str| {
            Err(ApiError::FailedPrecondition(format!(
                "{}: cannot move from {} to {}: {why}",
                self.name(),
                stored(STATUSES, from),
                stored(STATUSES, to)
            )))
        };
        match (from, to) {
            (Status::Closed, _) => return refused("a closed ticket never reopens"),
            (_, Status::New) => return refused("only a new ticket is NEW"),
            (f, Status::Closed) if f != Status::Solved => {
                return refused("only a solved ticket may be closed");
            }
            _ => {}
        }
        match to {
            Status::Solved => self.solve_time = Some(now),
            Status::Closed => self.close_time = Some(now),
            _ => {}
        }
        if from == Status::Solved {
            self.reopen_count += 1;
        }
        self.draft.status = to;
        Ok(Some(Ticket::change(
            "status",
            stored(STATUSES, from),
            stored(STATUSES, to),
            actor,
            now,
        )))
    }

    /// What a reply from the requester at `now` does, given how long a
    /// solved ticket may still reopen.
    pub fn requester_reply(&self, now: DateTime<Utc>, reopen_window: Duration) -> ReplyEffect {
        match self.draft.status {
            Status::Closed => ReplyEffect::FollowUp,
            Status::Solved => match self.solve_time {
                Some(solved) if now - solved > reopen_window => ReplyEffect::FollowUp,
                _ => ReplyEffect::Reopen,
            },
            Status::Pending | Status::OnHold => ReplyEffect::Reopen,
            Status::New | Status::Open => ReplyEffect::Join,
        }
    }

    /// Records a requester's reply: once answered before, the requester now
    /// waits for the next response (from their first unanswered reply).
    pub fn requester_replied(&mut self, now: DateTime<Utc>) {
        if self.first_response_time.is_some() {
            self.awaiting_reply_since.get_or_insert(now);
        }
    }

    /// Records an agent's public reply: the first response time, and a NEW
    /// ticket opens. The status change to record, if any.
    pub fn agent_replied(&mut self, agent: &str, now: DateTime<Utc>) -> Option<Change> {
        self.first_response_time.get_or_insert(now);
        self.awaiting_reply_since = None;
        if self.draft.status == Status::New {
            // NEW -> OPEN is always allowed.
            return self.set_status(Status::Open, agent, now).ok().flatten();
        }
        None
    }

    /// Removes the person's data: the request's text, the requester's
    /// address and custom fields (which may hold anything). The links to the
    /// requester and company stay: they name resources, not the person.
    pub fn erase_personal_data(&mut self) {
        self.draft.subject = "[erased]".into();
        self.draft.description.clear();
        self.draft.requester_email.clear();
        self.draft.custom_fields.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(status: Status) -> Ticket {
        let now = Utc::now();
        Ticket {
            id: Uuid::now_v7(),
            number: 1,
            draft: TicketDraft {
                subject: "Printer on fire".into(),
                description: String::new(),
                requester: String::new(),
                requester_email: "ada@example.com".into(),
                company: String::new(),
                channel: Channel::Email,
                priority: Priority::Normal,
                kind: String::new(),
                tags: vec![],
                custom_fields: Default::default(),
                status,
            },
            queue: String::new(),
            assignee: String::new(),
            assignment_reason: String::new(),
            follow_up_of: String::new(),
            company_tier: String::new(),
            first_response_time: None,
            solve_time: None,
            close_time: None,
            reopen_count: 0,
            awaiting_reply_since: None,
            sla: TicketSla::default(),
            create_time: now,
            update_time: now,
            delete_time: None,
            version: 1,
        }
    }

    #[test]
    fn the_workflow_allows_only_its_moves() {
        let now = Utc::now();
        let mut t = ticket(Status::New);
        assert!(t.set_status(Status::Closed, "a", now).is_err());
        let change = t.set_status(Status::Pending, "a", now).unwrap().unwrap();
        assert_eq!(
            (change.old_value.as_str(), change.new_value.as_str()),
            ("NEW", "PENDING")
        );
        assert!(t.set_status(Status::New, "a", now).is_err());
        t.set_status(Status::Solved, "a", now).unwrap();
        assert_eq!(t.solve_time, Some(now));
        t.set_status(Status::Open, "a", now).unwrap();
        assert_eq!(t.reopen_count, 1);
        t.set_status(Status::Solved, "a", now).unwrap();
        t.set_status(Status::Closed, "a", now).unwrap();
        assert_eq!(t.close_time, Some(now));
        for to in [Status::Open, Status::Solved, Status::Pending] {
            assert!(matches!(
                t.set_status(to, "a", now),
                Err(ApiError::FailedPrecondition(_))
            ));
        }
        assert_eq!(t.set_status(Status::Closed, "a", now).unwrap(), None);
    }

    #[test]
    fn a_requester_reply_reopens_within_the_window_and_follows_up_after_it() {
        let now = Utc::now();
        let window = Duration::days(7);
        let mut t = ticket(Status::Open);
        t.set_status(Status::Solved, "a", now - Duration::days(2))
            .unwrap();
        assert_eq!(t.requester_reply(now, window), ReplyEffect::Reopen);
        assert_eq!(
            t.requester_reply(now + Duration::days(6), window),
            ReplyEffect::FollowUp
        );
        assert_eq!(
            ticket(Status::Pending).requester_reply(now, window),
            ReplyEffect::Reopen
        );
        assert_eq!(
            ticket(Status::Open).requester_reply(now, window),
            ReplyEffect::Join
        );
        assert_eq!(
            ticket(Status::Closed).requester_reply(now, window),
            ReplyEffect::FollowUp
        );
    }

    #[test]
    fn the_first_agent_reply_opens_a_new_ticket_and_is_kept() {
        let now = Utc::now();
        let mut t = ticket(Status::New);
        assert!(t.agent_replied("bob", now).is_some());
        assert_eq!(t.draft.status, Status::Open);
        assert!(t.agent_replied("bob", now + Duration::hours(1)).is_none());
        assert_eq!(t.first_response_time, Some(now));
    }

    #[test]
    fn bad_fields_are_all_named() {
        let mut draft = ticket(Status::New).draft;
        draft.subject = "  ".into();
        draft.requester_email = "not-mail".into();
        draft.requester = "companies/x".into();
        let Err(ApiError::InvalidArgument(violations)) = draft.normalize_and_check("ticket") else {
            panic!("expected INVALID_ARGUMENT");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert!(fields.contains(&"ticket.subject"), "{fields:?}");
        assert!(fields.contains(&"ticket.requester_email"), "{fields:?}");
        assert!(fields.contains(&"ticket.requester"), "{fields:?}");
    }
}
