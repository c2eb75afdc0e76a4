//! Live chat: a customer and an agent writing to one transcript. A chat
//! waits until an agent accepts it, is active while they talk, and ends;
//! its transcript entries are numbered 1, 2, 3, ... so a participant who
//! lost their connection asks for everything after the last one they saw.

use chrono::{DateTime, Utc};
use crm_shared::{
    error::ApiError,
    validate::{MAX_SHORT, Violations, is_email},
};
use uuid::Uuid;

/// The longest message.
pub const MAX_TEXT: usize = 10_000;
/// The longest client message id.
const MAX_CLIENT_MESSAGE_ID: usize = 64;
/// How a customer is named as an author and participant.
pub const CUSTOMER: &str = "customer";
/// How the service is named as an author.
pub const SYSTEM: &str = "system";

/// Where a chat is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for an agent.
    Waiting,
    /// An agent accepted it.
    Active,
    /// Over.
    Ended,
}

/// Every state with its stored name.
pub const STATES: &[(State, &str)] = &[
    (State::Waiting, "WAITING"),
    (State::Active, "ACTIVE"),
    (State::Ended, "ENDED"),
];

/// Who wrote an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The customer.
    Customer,
    /// An agent.
    Agent,
    /// The service.
    System,
}

/// Every role with its stored name.
pub const ROLES: &[(Role, &str)] = &[
    (Role::Customer, "CUSTOMER"),
    (Role::Agent, "AGENT"),
    (Role::System, "SYSTEM"),
];

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Words.
    Text,
    /// The agent accepted the chat.
    AgentJoined,
    /// The chat ended.
    Ended,
}

/// Every kind with its stored name.
pub const KINDS: &[(Kind, &str)] = &[
    (Kind::Text, "TEXT"),
    (Kind::AgentJoined, "AGENT_JOINED"),
    (Kind::Ended, "ENDED"),
];

/// One side of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Participant {
    /// The customer (holding the chat's token).
    Customer,
    /// An agent, by subject id.
    Agent(String),
}

impl Participant {
    /// How the participant is named in entries and markers.
    pub fn name(&self) -> &str {
        match self {
            Participant::Customer => CUSTOMER,
            Participant::Agent(subject) => subject,
        }
    }

    /// The participant's role.
    pub fn role(&self) -> Role {
        match self {
            Participant::Customer => Role::Customer,
            Participant::Agent(_) => Role::Agent,
        }
    }
}

/// What a chat is started with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatDraft {
    /// What the customer wants to talk about.
    pub subject: String,
    /// `contacts/{id}`; resolved from the email when empty.
    pub requester: String,
    /// The customer's address, lower-case.
    pub requester_email: String,
    /// The customer's name as they gave it.
    pub requester_display_name: String,
    /// `queues/{id}` or empty.
    pub queue: String,
}

impl ChatDraft {
    /// Trims and checks; INVALID_ARGUMENT naming `{prefix}.<field>`.
    pub fn normalize_and_check(&mut self, prefix: &str) -> Result<(), ApiError> {
        self.subject = self.subject.trim().to_owned();
        self.requester = self.requester.trim().to_owned();
        self.requester_email = self.requester_email.trim().to_lowercase();
        self.requester_display_name = self.requester_display_name.trim().to_owned();
        self.queue = self.queue.trim().to_owned();
        let mut v = Violations::default();
        v.text(&format!("{prefix}.subject"), &self.subject, MAX_SHORT);
        v.text(
            &format!("{prefix}.requester_display_name"),
            &self.requester_display_name,
            MAX_SHORT,
        );
        v.reference(&format!("{prefix}.requester"), &self.requester, "contacts");
        v.reference(&format!("{prefix}.queue"), &self.queue, "queues");
        if !self.requester_email.is_empty() && !is_email(&self.requester_email) {
            v.add(format!("{prefix}.requester_email"), "not an email address");
        }
        if self.requester.is_empty() && self.requester_email.is_empty() {
            v.add(
                format!("{prefix}.requester"),
                "required: a contact, or requester_email",
            );
        }
        v.finish()
    }
}

/// A chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    /// Its id.
    pub id: Uuid,
    /// What it was started with (the requester resolved).
    pub draft: ChatDraft,
    /// Where it is.
    pub state: State,
    /// The agent the queue's strategy offered it to.
    pub offered_agent: String,
    /// The agent who accepted it.
    pub agent: String,
    /// The latest entry's sequence.
    pub last_sequence: i64,
    /// The last entry the customer read.
    pub customer_read_sequence: i64,
    /// The last entry its agent read.
    pub agent_read_sequence: i64,
    /// `tickets/{id}` once made into one.
    pub ticket: String,
    /// Who ended it.
    pub ended_by: String,
    /// Started.
    pub create_time: DateTime<Utc>,
    /// Accepted.
    pub accept_time: Option<DateTime<Utc>>,
    /// Ended.
    pub end_time: Option<DateTime<Utc>>,
    /// Last changed.
    pub update_time: DateTime<Utc>,
    /// The row's version.
    pub version: i64,
}

impl Chat {
    /// A new waiting chat.
    pub fn start(draft: ChatDraft, offered_agent: String, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            draft,
            state: State::Waiting,
            offered_agent,
            agent: String::new(),
            last_sequence: 0,
            customer_read_sequence: 0,
            agent_read_sequence: 0,
            ticket: String::new(),
            ended_by: String::new(),
            create_time: now,
            accept_time: None,
            end_time: None,
            update_time: now,
            version: 1,
        }
    }

    /// `chats/{id}`.
    pub fn name(&self) -> String {
        format!("chats/{}", self.id)
    }

    /// `agent` takes the chat: it turns active. Accepting a chat one already
    /// holds changes nothing (`false`); another agent's, or an ended one, is
    /// FAILED_PRECONDITION.
    pub fn accept(&mut self, agent: &str, now: DateTime<Utc>) -> Result<bool, ApiError> {
        match self.state {
            State::Waiting => {
                self.state = State::Active;
                self.agent = agent.to_owned();
                self.accept_time = Some(now);
                self.update_time = now;
                Ok(true)
            }
            State::Active if self.agent == agent => Ok(false),
            State::Active => Err(ApiError::FailedPrecondition(format!(
                "{} was accepted by {} already",
                self.name(),
                self.agent
            ))),
            State::Ended => Err(self.ended()),
        }
    }

    /// Ends the chat; `false` when it had ended already.
    pub fn end(&mut self, by: &str, now: DateTime<Utc>) -> bool {
        if self.state == State::Ended {
            return false;
        }
        self.state = State::Ended;
        self.ended_by = by.to_owned();
        self.end_time = Some(now);
        self.update_time = now;
        true
    }

    /// Whether `who` may write to the transcript (and end the chat): the
    /// customer until it ends, an agent once they accepted it.
    pub fn check_writer(&self, who: &Participant) -> Result<(), ApiError> {
        if self.state == State::Ended {
            return Err(self.ended());
        }
        match who {
            Participant::Customer => Ok(()),
            Participant::Agent(subject) if *subject == self.agent => Ok(()),
            Participant::Agent(_) => Err(ApiError::FailedPrecondition(format!(
                "{} is not yours: accept it first",
                self.name()
            ))),
        }
    }

    /// Moves `who`'s read marker to `sequence` (never back, never past the
    /// last entry); `true` when it moved. Only the customer and the chat's
    /// agent have markers.
    pub fn mark_read(&mut self, who: &Participant, sequence: i64) -> bool {
        let sequence = sequence.min(self.last_sequence);
        let marker = match who {
            Participant::Customer => &mut self.customer_read_sequence,
            Participant::Agent(subject) if *subject == self.agent => &mut self.agent_read_sequence,
            Participant::Agent(_) => return false,
        };
        if sequence <= *marker {
            return false;
        }
        *marker = sequence;
        true
    }

    /// The ticket subject a chat gives: its own, else the customer's first
    /// words, else who it was with.
    pub fn ticket_subject(&self, entries: &[ChatEntry]) -> String {
        if !self.draft.subject.is_empty() {
            return self.draft.subject.clone();
        }
        let first_words = entries
            .iter()
            .find(|e| e.kind == Kind::Text && e.author_role == Role::Customer)
            .map(|e| e.text.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        if first_words.is_empty() {
            return format!("Chat with {}", self.customer_label());
        }
        let mut subject: String = first_words.chars().take(80).collect();
        if first_words.chars().count() > 80 {
            subject.push('…');
        }
        subject
    }

    /// The transcript as a ticket's description: a header, then one line
    /// per entry with its time (UTC) and author.
    pub fn transcript(&self, entries: &[ChatEntry]) -> String {
        let mut out = format!(
            "Chat {} with {}, started {} UTC.\n",
            self.name(),
            self.customer_label(),
            self.create_time.format("%Y-%m-%d %H:%M:%S")
        );
        for entry in entries {
            let at = entry.create_time.format("%H:%M:%S");
            let line = match entry.kind {
                Kind::Text => {
                    let who = match entry.author_role {
                        Role::Customer => self.customer_label(),
                        _ => entry.author.clone(),
                    };
                    format!("[{at}] {who}: {}", entry.text)
                }
                Kind::AgentJoined => format!("[{at}] {} joined", entry.author),
                Kind::Ended => format!("[{at}] chat ended by {}", entry.text),
            };
            out.push('\n');
            out.push_str(&line);
        }
        out
    }

    /// The customer as a transcript names them.
    fn customer_label(&self) -> String {
        [
            &self.draft.requester_display_name,
            &self.draft.requester_email,
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "the customer".into())
    }

    /// Forgets the person: their words, address and name (the transcript's
    /// entries are erased by [`ChatEntry::erase_personal_data`]).
    pub fn erase_personal_data(&mut self) {
        self.draft.subject = "[erased]".into();
        self.draft.requester_email.clear();
        self.draft.requester_display_name.clear();
    }

    fn ended(&self) -> ApiError {
        ApiError::FailedPrecondition(format!("{} has ended", self.name()))
    }
}

/// One transcript entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatEntry {
    /// The chat.
    pub chat: Uuid,
    /// 1, 2, 3, ...
    pub sequence: i64,
    /// What it is.
    pub kind: Kind,
    /// Who wrote it.
    pub author_role: Role,
    /// The agent's subject, "customer" or "system".
    pub author: String,
    /// The words (for an ENDED entry, who ended it).
    pub text: String,
    /// The sender's id for it, or empty.
    pub client_message_id: String,
    /// Written.
    pub create_time: DateTime<Utc>,
}

impl ChatEntry {
    /// `chats/{id}/messages/{sequence}`.
    pub fn name(&self) -> String {
        format!("chats/{}/messages/{}", self.chat, self.sequence)
    }

    /// Forgets the words: in a chat both sides speak of the person.
    pub fn erase_personal_data(&mut self) {
        if self.kind == Kind::Text {
            self.text = "[erased]".into();
        }
    }
}

/// Checks words sent to a chat: INVALID_ARGUMENT naming `{prefix}.text`
/// or `{prefix}.client_message_id`. Returns the trimmed text.
pub fn check_message(
    text: &str,
    client_message_id: &str,
    prefix: &str,
) -> Result<String, ApiError> {
    let text = text.trim();
    let mut v = Violations::default();
    if text.is_empty() {
        v.add(format!("{prefix}.text"), "required");
    }
    v.text(&format!("{prefix}.text"), text, MAX_TEXT);
    v.text(
        &format!("{prefix}.client_message_id"),
        client_message_id,
        MAX_CLIENT_MESSAGE_ID,
    );
    v.finish()?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn chat() -> Chat {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap();
        Chat::start(
            ChatDraft {
                requester: "contacts/1".into(),
                requester_email: "ada@example.com".into(),
                requester_display_name: "Ada".into(),
                ..Default::default()
            },
            String::new(),
            at,
        )
    }

    fn entry(sequence: i64, kind: Kind, role: Role, author: &str, text: &str) -> ChatEntry {
        ChatEntry {
            chat: Uuid::nil(),
            sequence,
            kind,
            author_role: role,
            author: author.into(),
            text: text.into(),
            client_message_id: String::new(),
            create_time: Utc
                .with_ymd_and_hms(2026, 11, 30, 9, 0, sequence as u32)
                .unwrap(),
        }
    }

    #[test]
    fn one_agent_accepts_and_only_they_and_the_customer_write_until_it_ends() {
        let mut c = chat();
        let now = c.create_time;
        assert!(
            c.check_writer(&Participant::Customer).is_ok(),
            "customers write while waiting"
        );
        let bob = Participant::Agent("bob".into());
        assert!(c.check_writer(&bob).is_err(), "agents accept first");
        assert!(c.accept("bob", now).unwrap());
        assert!(
            !c.accept("bob", now).unwrap(),
            "accepting again changes nothing"
        );
        assert!(matches!(
            c.accept("eve", now),
            Err(ApiError::FailedPrecondition(_))
        ));
        assert!(c.check_writer(&bob).is_ok());
        assert!(c.check_writer(&Participant::Agent("eve".into())).is_err());
        assert!(c.end("customer", now));
        assert!(!c.end("bob", now), "ending again changes nothing");
        assert_eq!(c.ended_by, "customer");
        assert!(c.check_writer(&Participant::Customer).is_err());
        assert!(matches!(
            c.accept("eve", now),
            Err(ApiError::FailedPrecondition(_))
        ));
    }

    #[test]
    fn read_markers_only_move_forward_and_never_past_the_last_entry() {
        let mut c = chat();
        c.accept("bob", c.create_time).unwrap();
        c.last_sequence = 5;
        assert!(c.mark_read(&Participant::Customer, 3));
        assert!(!c.mark_read(&Participant::Customer, 2));
        assert!(c.mark_read(&Participant::Customer, 99));
        assert_eq!(c.customer_read_sequence, 5);
        assert!(c.mark_read(&Participant::Agent("bob".into()), 4));
        assert!(
            !c.mark_read(&Participant::Agent("eve".into()), 5),
            "only the chat's agent"
        );
        assert_eq!(c.agent_read_sequence, 4);
    }

    #[test]
    fn a_transcript_names_each_speaker_and_a_subject_comes_from_the_first_words() {
        let mut c = chat();
        let entries = [
            entry(
                1,
                Kind::Text,
                Role::Customer,
                CUSTOMER,
                "My  invoice\nis wrong",
            ),
            entry(2, Kind::AgentJoined, Role::System, "bob", ""),
            entry(3, Kind::Text, Role::Agent, "bob", "Let me look."),
            entry(4, Kind::Ended, Role::System, SYSTEM, "bob"),
        ];
        assert_eq!(c.ticket_subject(&entries), "My invoice is wrong");
        let text = c.transcript(&entries);
        assert!(text.starts_with(&format!(
            "Chat {} with Ada, started 2026-11-30 09:00:00 UTC.",
            c.name()
        )));
        assert!(
            text.contains("[09:00:01] Ada: My  invoice\nis wrong"),
            "{text}"
        );
        assert!(text.contains("[09:00:02] bob joined"));
        assert!(text.contains("[09:00:03] bob: Let me look."));
        assert!(text.ends_with("[09:00:04] chat ended by bob"));
        c.draft.subject = "Billing".into();
        assert_eq!(c.ticket_subject(&entries), "Billing");
        c.draft.subject.clear();
        assert_eq!(c.ticket_subject(&[]), "Chat with Ada");
    }

    #[test]
    fn bad_messages_name_their_field() {
        assert_eq!(check_message("  hi ", "", "send").unwrap(), "hi");
        for (text, id, field) in [
            ("   ", "", "send.text"),
            (&"x".repeat(MAX_TEXT + 1)[..], "", "send.text"),
            ("hi", &"i".repeat(65)[..], "send.client_message_id"),
        ] {
            let Err(ApiError::InvalidArgument(v)) = check_message(text, id, "send") else {
                panic!("{field} accepted");
            };
            assert_eq!(v[0].field, field);
        }
    }

    #[test]
    fn a_chat_needs_someone_to_talk_to() {
        let mut draft = ChatDraft::default();
        let Err(ApiError::InvalidArgument(v)) = draft.normalize_and_check("chat") else {
            panic!("a chat with nobody");
        };
        assert_eq!(v[0].field, "chat.requester");
        let mut draft = ChatDraft {
            requester_email: " Ada@Example.com ".into(),
            queue: "teams/1".into(),
            ..Default::default()
        };
        let Err(ApiError::InvalidArgument(v)) = draft.normalize_and_check("chat") else {
            panic!("a bad queue accepted");
        };
        assert_eq!(v[0].field, "chat.queue");
        assert_eq!(draft.requester_email, "ada@example.com");
    }
}
