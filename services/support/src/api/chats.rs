//! Live chat: start, read, list, accept and end chats, their transcripts,
//! a ticket of a chat, and the two streams, one per participant.
//!
//! A stream is a session: after `join` it sends the chat, the transcript
//! after the participant's last sequence, and then whatever the chat's
//! signals (see `store::chats`) say changed, reading it from the database,
//! so every participant sees the same entries in the same order whichever
//! replica serves them, and a participant who reconnects misses nothing.

use std::{pin::Pin, time::Duration};

use chrono::Utc;
use crm_proto::support::{self as pb, chat_action::Action, chat_server_message::Event};
use crm_shared::{
    auth::admitted,
    convert::{parse_name, required, to_timestamp},
    db::Tenant,
    error::ApiError,
    idempotency::IdempotencyKey,
    paging::page_size,
    store::{ListPlan, ListRequest},
    validate::{MAX_SHORT, Violations},
};
use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast::error::RecvError, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::{
    SupportApi, caller,
    convert::{
        chat_draft, chat_entry_message, chat_message, chat_role_message, priority, ticket_message,
    },
};
use crate::{
    domain::{
        chat::{CUSTOMER, Chat, Participant, Role, State, check_message},
        ticket::Priority,
    },
    store::{self, ChatSignal},
};

/// What a chat stream sends.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<pb::ChatServerMessage, Status>> + Send>>;

/// What a participant sends, whichever side they are on.
type Actions = Pin<Box<dyn Stream<Item = Result<Option<pb::ChatAction>, Status>> + Send>>;

/// A stream looks at its chat this often even without a signal: a safety
/// net only, as a lost `LISTEN` connection says so when it is back.
const LOOK_EVERY: Duration = Duration::from_secs(15);
/// Transcript entries read per query while catching up.
const CATCH_UP_PAGE: u64 = 500;
/// Messages a stream buffers for a slow reader before it waits.
const OUTBOX: usize = 256;

pub(super) async fn start_chat(
    api: &SupportApi,
    request: Request<pb::StartChatRequest>,
) -> Result<Response<pb::StartChatResponse>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = chat_draft(&required(r.chat, "chat")?);
    draft.normalize_and_check("chat")?;
    if !draft.queue.is_empty() {
        api.store
            .require_live_queue(&tenant, &draft.queue, "chat.queue")
            .await?;
    }
    let display_name = draft.requester_display_name.clone();
    api.resolve_person(
        &credentials,
        &mut draft.requester,
        &mut draft.requester_email,
        &display_name,
        "chat",
    )
    .await?;
    let chat = api
        .store
        .start_chat(&tenant, &principal.subject, draft, request_id)
        .await?;
    let expires = Utc::now() + api.options.chat_token_valid_for;
    Ok(Response::new(pb::StartChatResponse {
        chat: Some(chat_message(&chat)),
        customer_token: api
            .options
            .chat_tokens
            .sign(tenant.as_str(), chat.id, expires),
        customer_token_expire_time: Some(to_timestamp(expires)),
    }))
}

pub(super) async fn get_chat(
    api: &SupportApi,
    request: Request<pb::GetChatRequest>,
) -> Result<Response<pb::Chat>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "chats", "name")?;
    Ok(Response::new(chat_message(
        &api.store.get_chat(&tenant, id).await?,
    )))
}

pub(super) async fn list_chats(
    api: &SupportApi,
    request: Request<pb::ListChatsRequest>,
) -> Result<Response<pb::ListChatsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = ListPlan::new(
        &api.page_tokens,
        ListRequest {
            resource: "chats",
            schema: &store::CHAT_FILTER,
            orderable: store::CHAT_ORDER,
            filter: &r.filter,
            order_by: &r.order_by,
            show_deleted: false,
            page_size: r.page_size,
            page_token: &r.page_token,
            include_total_size: r.include_total_size,
        },
    )?;
    let page = api.store.list_chats(&tenant, plan.query.clone()).await?;
    Ok(Response::new(pb::ListChatsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        chats: page.items.iter().map(chat_message).collect(),
        total_size: page.total_size(),
    }))
}

pub(super) async fn accept_chat(
    api: &SupportApi,
    request: Request<pb::AcceptChatRequest>,
) -> Result<Response<pb::Chat>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "chats", "name")?;
    let chat = api
        .store
        .accept_chat(&tenant, id, &principal.subject)
        .await?;
    Ok(Response::new(chat_message(&chat)))
}

pub(super) async fn end_chat(
    api: &SupportApi,
    request: Request<pb::EndChatRequest>,
) -> Result<Response<pb::Chat>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "chats", "name")?;
    let chat = api.store.end_chat(&tenant, id, &principal.subject).await?;
    Ok(Response::new(chat_message(&chat)))
}

pub(super) async fn list_chat_messages(
    api: &SupportApi,
    request: Request<pb::ListChatMessagesRequest>,
) -> Result<Response<pb::ListChatMessagesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.parent, "chats", "parent")?;
    let size = page_size(r.page_size, 50, 1000, "page_size")?;
    // A page token is the last sequence of the page before, signed.
    let query = format!("chatMessages:{id}");
    let after = if r.page_token.is_empty() {
        0
    } else {
        api.page_tokens
            .decode(&r.page_token, &query, "page_token")?
    };
    api.store.get_chat(&tenant, id).await?;
    let after =
        i64::try_from(after).map_err(|_| crm_shared::paging::invalid_token("page_token"))?;
    let mut entries = api.store.chat_entries(&tenant, id, after, size + 1).await?;
    let next_page_token = if entries.len() as u64 > size {
        entries.truncate(size as usize);
        let last = entries.last().map_or(after, |e| e.sequence);
        api.page_tokens.encode(&query, last.max(0) as u64)
    } else {
        String::new()
    };
    Ok(Response::new(pb::ListChatMessagesResponse {
        messages: entries.iter().map(chat_entry_message).collect(),
        next_page_token,
    }))
}

pub(super) async fn create_ticket_from_chat(
    api: &SupportApi,
    request: Request<pb::CreateTicketFromChatRequest>,
) -> Result<Response<pb::Ticket>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.name, "chats", "name")?;
    let subject = r.subject.trim().to_owned();
    let mut v = Violations::default();
    v.text("subject", &subject, MAX_SHORT);
    v.finish()?;
    let priority = priority(r.priority, "priority")?.unwrap_or(Priority::Normal);
    let ticket = api
        .store
        .create_ticket_from_chat(&tenant, &principal.subject, id, subject, priority)
        .await?;
    Ok(Response::new(ticket_message(&ticket)))
}

/// An agent's stream: any agent of the tenant may follow a chat; only the
/// one who accepted it writes.
pub(super) async fn connect_chat(
    api: &SupportApi,
    request: Request<Streaming<pb::ConnectChatRequest>>,
) -> Result<Response<ChatStream>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let mut incoming: Actions = request
        .into_inner()
        .map(|message| message.map(|m| m.action))
        .boxed();
    let join = first_join(&mut incoming).await?;
    let id = parse_name(&join.chat, "chats", "join.chat")?;
    let chat = api.store.get_chat(&tenant, id).await?;
    Ok(open_session(
        api,
        tenant,
        Participant::Agent(principal.subject),
        chat,
        join.after_sequence,
        incoming,
    ))
}

/// The customer's stream: public, the chat token being the proof (see
/// `crm_shared::auth::PUBLIC_METHODS`).
pub(super) async fn connect_customer_chat(
    api: &SupportApi,
    request: Request<Streaming<pb::ConnectCustomerChatRequest>>,
) -> Result<Response<ChatStream>, Status> {
    let mut incoming: Actions = request
        .into_inner()
        .map(|message| message.map(|m| m.action))
        .boxed();
    let join = first_join(&mut incoming).await?;
    let claim = api
        .options
        .chat_tokens
        .verify(&join.customer_token, Utc::now())?;
    let tenant = Tenant::new(claim.tenant);
    let chat = api.store.get_chat(&tenant, claim.id).await?;
    Ok(open_session(
        api,
        tenant,
        Participant::Customer,
        chat,
        join.after_sequence,
        incoming,
    ))
}

/// Resolves when shutdown begins.
async fn shutdown(stopping: &mut watch::Receiver<bool>) {
    // The guard wait_for returns must not live across the session's awaits.
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// The `join` a stream must begin with.
async fn first_join(incoming: &mut Actions) -> Result<pb::JoinChat, ApiError> {
    let first = incoming.next().await.transpose().map_err(|status| {
        ApiError::invalid(
            "join",
            format!("the stream failed before joining: {}", status.message()),
        )
    })?;
    let Some(Some(pb::ChatAction {
        action: Some(Action::Join(join)),
    })) = first
    else {
        return Err(ApiError::invalid(
            "join",
            "required: the first message joins the chat",
        ));
    };
    if join.after_sequence < 0 {
        return Err(ApiError::invalid(
            "join.after_sequence",
            "must not be negative",
        ));
    }
    Ok(join)
}

/// Starts the session of `me` in `chat` on its own task; its stream.
fn open_session(
    api: &SupportApi,
    tenant: Tenant,
    me: Participant,
    chat: Chat,
    after_sequence: i64,
    incoming: Actions,
) -> Response<ChatStream> {
    let (out, stream) = mpsc::channel(OUTBOX);
    // Subscribed before the first read: nothing committed after it is missed.
    let signals = api.store.chat_signals();
    let session = Session {
        api: api.clone(),
        tenant,
        me,
        id: chat.id,
        sent_up_to: after_sequence,
        shown: None,
        out,
    };
    tokio::spawn(session.run(incoming, signals, api.options.stopping.clone()));
    Response::new(Box::pin(ReceiverStream::new(stream)))
}

/// One participant's stream of one chat.
struct Session {
    api: SupportApi,
    tenant: Tenant,
    me: Participant,
    id: Uuid,
    /// The last transcript entry sent.
    sent_up_to: i64,
    /// The chat as last sent.
    shown: Option<Chat>,
    out: mpsc::Sender<Result<pb::ChatServerMessage, Status>>,
}

/// Why a session stops.
enum Stop {
    /// The participant went away, or the chat ended and all of it was sent.
    Done,
    /// With this status to the participant.
    Failed(Status),
}

impl From<ApiError> for Stop {
    fn from(error: ApiError) -> Self {
        Stop::Failed(error.into())
    }
}

impl Session {
    async fn run(
        mut self,
        mut incoming: Actions,
        mut signals: tokio::sync::broadcast::Receiver<ChatSignal>,
        mut stopping: watch::Receiver<bool>,
    ) {
        let mut look =
            tokio::time::interval_at(tokio::time::Instant::now() + LOOK_EVERY, LOOK_EVERY);
        let mut step = self.catch_up().await;
        let outcome = loop {
            if let Err(stop) = step {
                break stop;
            }
            if self.shown.as_ref().is_some_and(|c| c.state == State::Ended) {
                break Stop::Done;
            }
            step = tokio::select! {
                _ = look.tick() => self.catch_up().await,
                signal = signals.recv() => self.on_signal(signal).await,
                message = incoming.next() => match message {
                    Some(Ok(action)) => self.on_action(action).await,
                    // The participant closed their side or went away.
                    None | Some(Err(_)) => Err(Stop::Done),
                },
                () = shutdown(&mut stopping) => Err(Stop::Failed(Status::unavailable(
                    "the server is shutting down; join again with the last sequence seen",
                ))),
                _ = self.out.closed() => Err(Stop::Done),
            };
        };
        if let Stop::Failed(status) = outcome {
            let _ = self.out.send(Err(status)).await;
        }
    }

    async fn on_signal(&mut self, signal: Result<ChatSignal, RecvError>) -> Result<(), Stop> {
        match signal {
            Ok(signal) if !signal.concerns(&self.tenant, self.id) => Ok(()),
            Ok(ChatSignal::Typing {
                participant,
                customer,
                typing,
                ..
            }) => {
                let role = if customer {
                    Role::Customer
                } else {
                    Role::Agent
                };
                if participant == self.me.name() && role == self.me.role() {
                    return Ok(());
                }
                self.send(Event::Typing(pb::ChatTyping {
                    participant,
                    role: chat_role_message(role).into(),
                    typing,
                }))
                .await
            }
            Ok(_) | Err(RecvError::Lagged(_)) => self.catch_up().await,
            Err(RecvError::Closed) => Err(Stop::Done),
        }
    }

    async fn on_action(&mut self, action: Option<pb::ChatAction>) -> Result<(), Stop> {
        let store = &self.api.store;
        match action.and_then(|a| a.action) {
            None => Err(ApiError::invalid("action", "required").into()),
            Some(Action::Join(_)) => {
                Err(ApiError::invalid("join", "only the first message joins").into())
            }
            Some(Action::Send(send)) => {
                let text = check_message(&send.text, &send.client_message_id, "send")?;
                store
                    .post_chat_message(
                        &self.tenant,
                        self.id,
                        &self.me,
                        text,
                        send.client_message_id,
                    )
                    .await?;
                self.catch_up().await
            }
            Some(Action::Typing(typing)) => {
                // Only those who may write say they are typing.
                let may_write = self
                    .shown
                    .as_ref()
                    .is_some_and(|c| c.check_writer(&self.me).is_ok());
                if may_write {
                    store
                        .chat_typing(&self.tenant, self.id, &self.me, typing.typing)
                        .await?;
                }
                Ok(())
            }
            Some(Action::Read(read)) => {
                if read.sequence < 0 {
                    return Err(ApiError::invalid("read.sequence", "must not be negative").into());
                }
                store
                    .mark_chat_read(&self.tenant, self.id, &self.me, read.sequence)
                    .await?;
                self.catch_up().await
            }
            Some(Action::End(_)) => {
                let chat = store.get_chat(&self.tenant, self.id).await?;
                chat.check_writer(&self.me)?;
                store
                    .end_chat(&self.tenant, self.id, self.me.name())
                    .await?;
                self.catch_up().await
            }
        }
    }

    /// Sends what changed since the last look: new entries in order, then
    /// the chat when its state, agent, offer or ticket changed, and read
    /// markers that moved.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        let store = &self.api.store;
        let chat = store.get_chat(&self.tenant, self.id).await?;
        let first_look = self.shown.is_none();
        if first_look {
            self.send(Event::Chat(chat_message(&chat))).await?;
        }
        loop {
            let entries = store
                .chat_entries(&self.tenant, self.id, self.sent_up_to, CATCH_UP_PAGE)
                .await?;
            for entry in &entries {
                self.send(Event::Message(chat_entry_message(entry))).await?;
                self.sent_up_to = entry.sequence;
            }
            if (entries.len() as u64) < CATCH_UP_PAGE {
                break;
            }
        }
        if let Some(shown) = self.shown.as_ref() {
            let reshown = (
                &shown.state,
                &shown.agent,
                &shown.offered_agent,
                &shown.ticket,
            ) != (&chat.state, &chat.agent, &chat.offered_agent, &chat.ticket);
            let markers = [
                (
                    shown.customer_read_sequence,
                    chat.customer_read_sequence,
                    CUSTOMER.to_owned(),
                    Role::Customer,
                ),
                (
                    shown.agent_read_sequence,
                    chat.agent_read_sequence,
                    chat.agent.clone(),
                    Role::Agent,
                ),
            ];
            if reshown {
                self.send(Event::Chat(chat_message(&chat))).await?;
            }
            for (before, now, participant, role) in markers {
                if now > before {
                    self.send(Event::Read(pb::ChatReadMarker {
                        participant,
                        role: chat_role_message(role).into(),
                        sequence: now,
                    }))
                    .await?;
                }
            }
        }
        self.shown = Some(chat);
        Ok(())
    }

    async fn send(&self, event: Event) -> Result<(), Stop> {
        self.out
            .send(Ok(pb::ChatServerMessage { event: Some(event) }))
            .await
            .map_err(|_| Stop::Done)
    }
}
