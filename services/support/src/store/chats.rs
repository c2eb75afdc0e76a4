//! Live chats: the chat row, its transcript, and the signals that tell the
//! chat streams of every replica to look.
//!
//! The database is the only truth: a stream sends what it reads there.
//! Signals only say "look now": on PostgreSQL a `NOTIFY` sent in the
//! writing transaction, so it reaches every replica when (and only if) the
//! write commits; on SQLite, whose writers are all in one process, a
//! broadcast in the process after the commit. Typing, which is never
//! stored, travels in the signal itself. A stream also looks on its own now
//! and then, for a signal lost while a `LISTEN` connection was down.

use chrono::Utc;
use crm_shared::{
    convert::{parse_stored, stored},
    db::{Database, Tenant, TenantScoped, WriteTxn},
    error::ApiError,
    filter::{FieldKind, FilterField, FilterSchema},
    idempotency::IdempotencyKey,
    notify::{self, Notice},
    outbox::NewEvent,
    store::{Claim, ListQuery, Page},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::{
    NewTicket, Store,
    entities::{chat, chat_message},
};
use crate::domain::{
    chat::{Chat, ChatDraft, ChatEntry, KINDS, Kind, Participant, ROLES, Role, STATES, SYSTEM},
    ticket::{Channel, Priority, Status, Ticket, TicketDraft},
};

/// The PostgreSQL channel of chat signals.
const CHANNEL: &str = "crm_support_chats";
/// How many signals a slow stream may fall behind before it just looks again.
const SIGNAL_BUFFER: usize = 1024;

const STATE_VALUES: &[(&str, &str)] = &[
    ("WAITING", "WAITING"),
    ("ACTIVE", "ACTIVE"),
    ("ENDED", "ENDED"),
];

/// The fields a chat filter may name.
pub const FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField::new("state", FieldKind::Enum(STATE_VALUES)),
        FilterField::text("queue"),
        FilterField::text("agent"),
        FilterField::text("offered_agent"),
        FilterField::text("requester"),
        FilterField::text("ticket"),
        FilterField::new("create_time", FieldKind::Timestamp),
        FilterField::new("accept_time", FieldKind::Timestamp),
        FilterField::new("end_time", FieldKind::Timestamp),
    ],
};

/// The fields a chat list may be ordered by.
pub const ORDER_BY: &[(&str, &str)] = &[
    ("create_time", "create_time"),
    ("update_time", "update_time"),
    ("accept_time", "accept_time"),
    ("end_time", "end_time"),
];

/// What a chat stream is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatSignal {
    /// The chat or its transcript changed: look.
    Changed {
        /// The chat's tenant.
        tenant: String,
        /// The chat.
        chat: Uuid,
    },
    /// A participant started or stopped typing.
    Typing {
        /// The chat's tenant.
        tenant: String,
        /// The chat.
        chat: Uuid,
        /// "customer" or the agent's subject.
        participant: String,
        /// Whether the participant is the customer.
        customer: bool,
        /// Typing now.
        typing: bool,
    },
    /// Signals may have been lost (a `LISTEN` reconnected): every stream looks.
    LookAgain,
}

impl ChatSignal {
    /// Whether the signal concerns `tenant`'s `chat`.
    pub fn concerns(&self, tenant: &Tenant, id: Uuid) -> bool {
        match self {
            ChatSignal::Changed { tenant: t, chat }
            | ChatSignal::Typing {
                tenant: t, chat, ..
            } => t == tenant.as_str() && *chat == id,
            ChatSignal::LookAgain => true,
        }
    }
}

/// This process's end of the chat signals.
#[derive(Clone)]
pub struct ChatHub {
    sender: broadcast::Sender<ChatSignal>,
    postgres: bool,
}

impl ChatHub {
    /// Starts listening (on PostgreSQL) until `stopping` turns true.
    pub fn start(db: &Database, stopping: watch::Receiver<bool>) -> Self {
        let (sender, _) = broadcast::channel(SIGNAL_BUFFER);
        let forward = sender.clone();
        notify::forward(db, CHANNEL, stopping, move |notice| {
            let signal = match notice {
                Notice::Listening => ChatSignal::LookAgain,
                Notice::Payload(payload) => match serde_json::from_str(payload) {
                    Ok(signal) => signal,
                    Err(error) => {
                        tracing::warn!(%error, payload, "an unreadable chat signal");
                        return;
                    }
                },
            };
            // Nobody listening is fine: no stream is open here.
            let _ = forward.send(signal);
        });
        Self {
            sender,
            postgres: db.backend() == DbBackend::Postgres,
        }
    }

    /// Every signal from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ChatSignal> {
        self.sender.subscribe()
    }

    /// Sends `signal` through `conn`: at once, or, in a transaction, on its
    /// commit. On SQLite the caller [`publish_local`](Self::publish_local)s
    /// it after the commit instead.
    async fn send<C: ConnectionTrait>(
        &self,
        conn: &C,
        signal: &ChatSignal,
    ) -> Result<(), ApiError> {
        if self.postgres {
            let payload = serde_json::to_string(signal)
                .map_err(|e| ApiError::Internal(format!("a chat signal: {e}")))?;
            notify::send(conn, CHANNEL, &payload).await?;
        }
        Ok(())
    }

    /// On SQLite, tells this process's streams (the only ones there are).
    fn publish_local(&self, signal: ChatSignal) {
        if !self.postgres {
            let _ = self.sender.send(signal);
        }
    }
}

impl TryFrom<chat::Model> for Chat {
    type Error = ApiError;

    fn try_from(row: chat::Model) -> Result<Self, ApiError> {
        Ok(Self {
            id: row.id.parse().map_err(|_| corrupt("chat id", &row.id))?,
            state: parse_stored(STATES, &row.state)
                .ok_or_else(|| corrupt("chat state", &row.state))?,
            draft: ChatDraft {
                subject: row.subject,
                requester: row.requester,
                requester_email: row.requester_email,
                requester_display_name: row.requester_display_name,
                queue: row.queue,
            },
            offered_agent: row.offered_agent,
            agent: row.agent,
            last_sequence: row.last_sequence,
            customer_read_sequence: row.customer_read_sequence,
            agent_read_sequence: row.agent_read_sequence,
            ticket: row.ticket,
            ended_by: row.ended_by,
            create_time: row.create_time,
            accept_time: row.accept_time,
            end_time: row.end_time,
            update_time: row.update_time,
            version: row.version,
        })
    }
}

fn chat_row(tenant: &Tenant, c: &Chat) -> chat::ActiveModel {
    chat::Model {
        id: c.id.to_string(),
        tenant: tenant.as_str().to_owned(),
        state: stored(STATES, c.state).to_owned(),
        subject: c.draft.subject.clone(),
        requester: c.draft.requester.clone(),
        requester_email: c.draft.requester_email.clone(),
        requester_display_name: c.draft.requester_display_name.clone(),
        queue: c.draft.queue.clone(),
        offered_agent: c.offered_agent.clone(),
        agent: c.agent.clone(),
        last_sequence: c.last_sequence,
        customer_read_sequence: c.customer_read_sequence,
        agent_read_sequence: c.agent_read_sequence,
        ticket: c.ticket.clone(),
        ended_by: c.ended_by.clone(),
        create_time: c.create_time,
        accept_time: c.accept_time,
        end_time: c.end_time,
        update_time: c.update_time,
        delete_time: None,
        version: c.version,
    }
    .into_active_model()
    // Every column written: an update writes the whole chat.
    .reset_all()
}

impl TryFrom<chat_message::Model> for ChatEntry {
    type Error = ApiError;

    fn try_from(row: chat_message::Model) -> Result<Self, ApiError> {
        Ok(Self {
            chat: row
                .chat_id
                .parse()
                .map_err(|_| corrupt("chat id", &row.chat_id))?,
            sequence: row.sequence,
            kind: parse_stored(KINDS, &row.kind).ok_or_else(|| corrupt("entry kind", &row.kind))?,
            author_role: parse_stored(ROLES, &row.author_role)
                .ok_or_else(|| corrupt("author role", &row.author_role))?,
            author: row.author,
            text: row.text,
            client_message_id: row.client_message_id,
            create_time: row.create_time,
        })
    }
}

fn entry_row(tenant: &Tenant, e: &ChatEntry) -> chat_message::ActiveModel {
    chat_message::Model {
        tenant: tenant.as_str().to_owned(),
        chat_id: e.chat.to_string(),
        sequence: e.sequence,
        kind: stored(KINDS, e.kind).to_owned(),
        author_role: stored(ROLES, e.author_role).to_owned(),
        author: e.author.clone(),
        text: e.text.clone(),
        client_message_id: e.client_message_id.clone(),
        create_time: e.create_time,
    }
    .into_active_model()
}

fn corrupt(what: &str, value: &str) -> ApiError {
    ApiError::Internal(format!("stored {what} {value:?} is not valid"))
}

/// The next entry of `chat`, which takes its sequence.
fn next_entry(c: &mut Chat, kind: Kind, role: Role, author: &str, text: String) -> ChatEntry {
    c.last_sequence += 1;
    c.update_time = Utc::now();
    ChatEntry {
        chat: c.id,
        sequence: c.last_sequence,
        kind,
        author_role: role,
        author: author.to_owned(),
        text,
        client_message_id: String::new(),
        create_time: c.update_time,
    }
}

impl Store {
    /// The chat signals of this process.
    pub fn chat_signals(&self) -> broadcast::Receiver<ChatSignal> {
        self.chats.subscribe()
    }

    /// Opens a waiting chat, offered to the agent its queue's strategy
    /// names (if any); a retry with the same request id returns the first.
    pub async fn start_chat(
        &self,
        tenant: &Tenant,
        actor: &str,
        draft: ChatDraft,
        request_id: Option<IdempotencyKey>,
    ) -> Result<Chat, ApiError> {
        if let Some(existing) = self
            .base
            .replayed(tenant, "StartChat", request_id.as_ref())
            .await?
        {
            return self.get_chat(tenant, super::id_of(&existing)).await;
        }
        let txn = self.base.db.begin_write().await?;
        let offered = if draft.queue.is_empty() {
            None
        } else {
            self.pick_agent(&txn, tenant, super::id_of(&draft.queue), &[])
                .await?
        };
        let c = Chat::start(
            draft,
            offered.map(|(agent, _)| agent).unwrap_or_default(),
            Utc::now(),
        );
        chat::Entity::insert(chat_row(tenant, &c))
            .exec(&*txn)
            .await?;
        let txn = match self
            .base
            .claim(txn, tenant, "StartChat", request_id.as_ref(), &c.name())
            .await?
        {
            Claim::Won(txn) => txn,
            Claim::Lost(existing) => return self.get_chat(tenant, super::id_of(&existing)).await,
        };
        let event = self.event("ChatStarted", c.name(), self.payloads.chat(&c), actor);
        self.commit_chat(txn, tenant, &c, vec![event]).await?;
        Ok(c)
    }

    /// A chat.
    pub async fn get_chat(&self, tenant: &Tenant, id: Uuid) -> Result<Chat, ApiError> {
        self.base
            .find::<chat::Entity>(&self.base.db.conn, tenant, id, &format!("chats/{id}"))
            .await?
            .try_into()
    }

    /// One page of chats.
    pub async fn list_chats(
        &self,
        tenant: &Tenant,
        query: ListQuery,
    ) -> Result<Page<Chat>, ApiError> {
        self.base
            .list_page::<chat::Entity, Chat>(tenant, query)
            .await
    }

    /// Up to `limit` transcript entries after `after`, in order.
    pub async fn chat_entries(
        &self,
        tenant: &Tenant,
        id: Uuid,
        after: i64,
        limit: u64,
    ) -> Result<Vec<ChatEntry>, ApiError> {
        entries_after(&self.base.db.conn, tenant, id, after, Some(limit)).await
    }

    /// `agent` takes a waiting chat. An agent whose profile says they are
    /// unavailable may not.
    pub async fn accept_chat(
        &self,
        tenant: &Tenant,
        id: Uuid,
        agent: &str,
    ) -> Result<Chat, ApiError> {
        if let Some(profile) = self.find_agent(tenant, agent).await?
            && !profile.available
        {
            return Err(ApiError::FailedPrecondition(format!(
                "agents/{agent} is unavailable: make the profile available first"
            )));
        }
        let txn = self.base.db.begin_write().await?;
        let mut c = self.lock_chat(&txn, tenant, id).await?;
        if !c.accept(agent, Utc::now())? {
            txn.rollback().await?;
            return Ok(c);
        }
        let joined = next_entry(
            &mut c,
            Kind::AgentJoined,
            Role::System,
            agent,
            String::new(),
        );
        self.write_entry(&txn, tenant, &joined).await?;
        let event = self.event("ChatAccepted", c.name(), self.payloads.chat(&c), agent);
        self.save_chat(&txn, tenant, &c).await?;
        self.commit_chat(txn, tenant, &c, vec![event]).await?;
        Ok(c)
    }

    /// Ends a chat; ending an ended chat changes nothing.
    pub async fn end_chat(&self, tenant: &Tenant, id: Uuid, by: &str) -> Result<Chat, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut c = self.lock_chat(&txn, tenant, id).await?;
        if !c.end(by, Utc::now()) {
            txn.rollback().await?;
            return Ok(c);
        }
        let ended = next_entry(&mut c, Kind::Ended, Role::System, SYSTEM, by.to_owned());
        self.write_entry(&txn, tenant, &ended).await?;
        let event = self.event("ChatEnded", c.name(), self.payloads.chat(&c), by);
        self.save_chat(&txn, tenant, &c).await?;
        self.commit_chat(txn, tenant, &c, vec![event]).await?;
        Ok(c)
    }

    /// Adds `who`'s words to the transcript (their read marker moves past
    /// them). Words sent again with the same client message id are stored
    /// once: the first entry is returned.
    pub async fn post_chat_message(
        &self,
        tenant: &Tenant,
        id: Uuid,
        who: &Participant,
        text: String,
        client_message_id: String,
    ) -> Result<ChatEntry, ApiError> {
        let txn = self.base.db.begin_write().await?;
        // The lock makes the look for a resent message and the insert one step.
        let mut c = self.lock_chat(&txn, tenant, id).await?;
        c.check_writer(who)?;
        if !client_message_id.is_empty()
            && let Some(first) = chat_message::Entity::find_in(tenant)
                .filter(chat_message::Column::ChatId.eq(id.to_string()))
                .filter(chat_message::Column::Author.eq(who.name()))
                .filter(chat_message::Column::ClientMessageId.eq(&client_message_id))
                .one(&*txn)
                .await?
        {
            txn.rollback().await?;
            return first.try_into();
        }
        let mut entry = next_entry(&mut c, Kind::Text, who.role(), who.name(), text);
        entry.client_message_id = client_message_id;
        c.mark_read(who, entry.sequence);
        self.write_entry(&txn, tenant, &entry).await?;
        self.save_chat(&txn, tenant, &c).await?;
        self.commit_chat(txn, tenant, &c, Vec::new()).await?;
        Ok(entry)
    }

    /// Moves `who`'s read marker forward; the chat as it is after.
    pub async fn mark_chat_read(
        &self,
        tenant: &Tenant,
        id: Uuid,
        who: &Participant,
        sequence: i64,
    ) -> Result<Chat, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut c = self.lock_chat(&txn, tenant, id).await?;
        if !c.mark_read(who, sequence) {
            txn.rollback().await?;
            return Ok(c);
        }
        c.update_time = Utc::now();
        self.save_chat(&txn, tenant, &c).await?;
        self.commit_chat(txn, tenant, &c, Vec::new()).await?;
        Ok(c)
    }

    /// Tells the chat's other streams, on every replica, that `who` is (or
    /// stopped) typing. Nothing is stored.
    pub async fn chat_typing(
        &self,
        tenant: &Tenant,
        id: Uuid,
        who: &Participant,
        typing: bool,
    ) -> Result<(), ApiError> {
        let signal = ChatSignal::Typing {
            tenant: tenant.as_str().to_owned(),
            chat: id,
            participant: who.name().to_owned(),
            customer: *who == Participant::Customer,
            typing,
        };
        self.chats.send(&self.base.db.conn, &signal).await?;
        self.chats.publish_local(signal);
        Ok(())
    }

    /// Makes a ticket of the chat in its transaction: channel CHAT, the
    /// chat's requester, queue and agent, the transcript as the description.
    /// A chat already made into a ticket returns that ticket.
    pub async fn create_ticket_from_chat(
        &self,
        tenant: &Tenant,
        actor: &str,
        id: Uuid,
        subject: String,
        priority: Priority,
    ) -> Result<Ticket, ApiError> {
        let txn = self.base.db.begin_write().await?;
        let mut c = self.lock_chat(&txn, tenant, id).await?;
        if !c.ticket.is_empty() {
            txn.rollback().await?;
            return self.get_ticket(tenant, super::id_of(&c.ticket)).await;
        }
        let entries = entries_after(&*txn, tenant, id, 0, None).await?;
        let subject = if subject.is_empty() {
            c.ticket_subject(&entries)
        } else {
            subject
        };
        let new = NewTicket {
            draft: TicketDraft {
                subject,
                description: c.transcript(&entries),
                requester: c.draft.requester.clone(),
                requester_email: c.draft.requester_email.clone(),
                company: String::new(),
                channel: Channel::Chat,
                priority,
                kind: String::new(),
                tags: Vec::new(),
                custom_fields: serde_json::Map::new(),
                status: Status::New,
            },
            queue: c.draft.queue.clone(),
            assignee: c.agent.clone(),
            follow_up_of: String::new(),
            message_id: String::new(),
            company_tier: String::new(),
        };
        let (t, mut events) = self.insert_ticket(&txn, tenant, actor, new).await?;
        c.ticket = t.name();
        c.update_time = Utc::now();
        self.save_chat(&txn, tenant, &c).await?;
        events.push(self.event("ChatTicketCreated", c.name(), self.payloads.chat(&c), actor));
        self.commit_chat(txn, tenant, &c, events).await?;
        Ok(t)
    }

    /// The chat, locked until `txn` ends: every write to a chat takes its
    /// row first (bumping its version), so a chat's writers go one at a
    /// time and each reads what the one before it wrote.
    async fn lock_chat(&self, txn: &WriteTxn, tenant: &Tenant, id: Uuid) -> Result<Chat, ApiError> {
        let locked = chat::Entity::update_many()
            .col_expr(
                chat::Column::Version,
                sea_orm::sea_query::ExprTrait::add(Expr::col(chat::Column::Version), 1),
            )
            .filter(chat::Column::Tenant.eq(tenant.as_str()))
            .filter(chat::Column::Id.eq(id.to_string()))
            .exec(&**txn)
            .await?;
        if locked.rows_affected == 0 {
            return Err(ApiError::NotFound(format!("chats/{id}")));
        }
        self.base
            .find::<chat::Entity>(&**txn, tenant, id, &format!("chats/{id}"))
            .await?
            .try_into()
    }

    async fn save_chat(&self, txn: &WriteTxn, tenant: &Tenant, c: &Chat) -> Result<(), ApiError> {
        chat::Entity::update(chat_row(tenant, c))
            .exec(&**txn)
            .await?;
        Ok(())
    }

    async fn write_entry(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        e: &ChatEntry,
    ) -> Result<(), ApiError> {
        chat_message::Entity::insert(entry_row(tenant, e))
            .exec(&**txn)
            .await?;
        Ok(())
    }

    /// Commits a change of `c` with `events`, signalling its streams.
    async fn commit_chat(
        &self,
        txn: WriteTxn,
        tenant: &Tenant,
        c: &Chat,
        events: Vec<NewEvent>,
    ) -> Result<(), ApiError> {
        let signal = ChatSignal::Changed {
            tenant: tenant.as_str().to_owned(),
            chat: c.id,
        };
        self.chats.send(&*txn, &signal).await?;
        self.base.commit(txn, tenant, events).await?;
        self.chats.publish_local(signal);
        Ok(())
    }

    /// A merge in contacts: the merged contacts' chats move to the survivor.
    pub(super) async fn move_chats(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        survivor: &str,
        merged: &[String],
    ) -> Result<(), ApiError> {
        chat::Entity::update_many()
            .col_expr(chat::Column::Requester, Expr::value(survivor))
            .filter(chat::Column::Tenant.eq(tenant.as_str()))
            .filter(chat::Column::Requester.is_in(merged.to_vec()))
            .exec(&**txn)
            .await?;
        Ok(())
    }

    /// An erasure in contacts: the person's chats lose their subject, the
    /// person's address and name, and every word of their transcripts (both
    /// sides speak of the person). Returns the chats' names and events.
    pub(super) async fn erase_chats(
        &self,
        txn: &WriteTxn,
        tenant: &Tenant,
        contacts: &[String],
        actor: &str,
    ) -> Result<(Vec<String>, Vec<NewEvent>), ApiError> {
        let rows = chat::Entity::find_in(tenant)
            .filter(chat::Column::Requester.is_in(contacts.to_vec()))
            .all(&**txn)
            .await?;
        let (mut names, mut events) = (Vec::new(), Vec::new());
        for row in rows {
            let mut c = self
                .lock_chat(txn, tenant, row.id.parse().unwrap_or_default())
                .await?;
            c.erase_personal_data();
            c.update_time = Utc::now();
            self.save_chat(txn, tenant, &c).await?;
            chat_message::Entity::update_many()
                .col_expr(chat_message::Column::Text, Expr::value("[erased]"))
                .filter(chat_message::Column::Tenant.eq(tenant.as_str()))
                .filter(chat_message::Column::ChatId.eq(c.id.to_string()))
                .filter(chat_message::Column::Kind.eq(stored(KINDS, Kind::Text)))
                .exec(&**txn)
                .await?;
            events.push(self.event("ChatErased", c.name(), self.payloads.chat(&c), actor));
            names.push(c.name());
        }
        Ok((names, events))
    }
}

/// The entries of a chat after `after`, in order, at most `limit`.
async fn entries_after<C: ConnectionTrait>(
    conn: &C,
    tenant: &Tenant,
    id: Uuid,
    after: i64,
    limit: Option<u64>,
) -> Result<Vec<ChatEntry>, ApiError> {
    chat_message::Entity::find_in(tenant)
        .filter(chat_message::Column::ChatId.eq(id.to_string()))
        .filter(chat_message::Column::Sequence.gt(after))
        .order_by_asc(chat_message::Column::Sequence)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(ChatEntry::try_from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::chat::CUSTOMER;

    #[test]
    fn signals_travel_as_json_and_concern_their_chat() {
        let chat = Uuid::now_v7();
        let signal = ChatSignal::Typing {
            tenant: "acme".into(),
            chat,
            participant: CUSTOMER.into(),
            customer: true,
            typing: true,
        };
        let text = serde_json::to_string(&signal).unwrap();
        assert_eq!(serde_json::from_str::<ChatSignal>(&text).unwrap(), signal);
        assert!(signal.concerns(&Tenant::new("acme"), chat));
        assert!(!signal.concerns(&Tenant::new("globex"), chat));
        assert!(!signal.concerns(&Tenant::new("acme"), Uuid::now_v7()));
        assert!(ChatSignal::LookAgain.concerns(&Tenant::new("acme"), chat));
    }
}
