//! Live chat: a customer and an agent, each on their own stream (on two
//! replicas where the backend lets replicas share a database: PostgreSQL,
//! whose LISTEN/NOTIFY carries the signals between them), the transcript,
//! reconnection, read and typing markers, the end, a ticket of the chat, and
//! every refusal.

use std::time::Duration;

use crm_proto::support::{
    AcceptChatRequest, AssignmentStrategy, Chat, ChatAction, ChatMessage, ChatMessageKind,
    ChatRole, ChatServerMessage, ChatState, ConnectChatRequest, ConnectCustomerChatRequest,
    CreateQueueRequest, CreateTicketFromChatRequest, EndChatAction, GetChatRequest, JoinChat,
    ListChatMessagesRequest, ListChatsRequest, MarkChatRead, Queue, SendChatMessage, SetChatTyping,
    StartChatRequest, StartChatResponse, TicketChannel, UpdateAgentRequest, chat_action::Action,
    chat_server_message::Event,
};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Code, Status, Streaming};

use crate::harness::*;

/// One participant's open stream.
pub struct Side {
    sender: mpsc::Sender<ChatAction>,
    events: Streaming<ChatServerMessage>,
}

impl Side {
    /// An agent joins `chat` on `client`'s replica.
    pub async fn agent(client: &mut Support, chat: &str, after: i64) -> Result<Side, Status> {
        let (sender, requests) = Self::joining(JoinChat {
            chat: chat.into(),
            after_sequence: after,
            ..Default::default()
        })
        .await;
        let requests = requests.map(|action| ConnectChatRequest {
            action: Some(action),
        });
        let events = client.connect_chat(requests).await?.into_inner();
        Ok(Side { sender, events })
    }

    /// The customer joins with their token.
    pub async fn customer(client: &mut Support, token: &str, after: i64) -> Result<Side, Status> {
        let (sender, requests) = Self::joining(JoinChat {
            customer_token: token.into(),
            after_sequence: after,
            ..Default::default()
        })
        .await;
        let requests = requests.map(|action| ConnectCustomerChatRequest {
            action: Some(action),
        });
        let events = client.connect_customer_chat(requests).await?.into_inner();
        Ok(Side { sender, events })
    }

    async fn joining(join: JoinChat) -> (mpsc::Sender<ChatAction>, ReceiverStream<ChatAction>) {
        let (sender, receiver) = mpsc::channel(16);
        sender
            .send(ChatAction {
                action: Some(Action::Join(join)),
            })
            .await
            .expect("the request stream is open");
        (sender, ReceiverStream::new(receiver))
    }

    pub async fn act(&self, action: Action) {
        self.sender
            .send(ChatAction {
                action: Some(action),
            })
            .await
            .expect("the request stream is open");
    }

    pub async fn say(&self, text: &str, id: &str) {
        self.act(Action::Send(SendChatMessage {
            text: text.into(),
            client_message_id: id.into(),
        }))
        .await;
    }

    /// The next event; panics when none comes within 10 s or the stream fails.
    pub async fn next(&mut self) -> Option<Event> {
        match tokio::time::timeout(Duration::from_secs(10), self.events.message()).await {
            Err(_) => panic!("no chat event within 10 s"),
            Ok(Err(status)) => panic!("the chat stream failed: {status:?}"),
            Ok(Ok(message)) => message.map(|m| m.event.expect("an event")),
        }
    }

    /// Reads until an event `check` accepts; returns it.
    pub async fn until(&mut self, what: &str, check: impl Fn(&Event) -> bool) -> Event {
        loop {
            match self.next().await {
                Some(event) if check(&event) => return event,
                Some(_) => continue,
                None => panic!("the stream ended before {what}"),
            }
        }
    }

    /// Reads until the transcript entry `sequence`; returns it.
    pub async fn entry(&mut self, sequence: i64) -> ChatMessage {
        match self
            .until(
                &format!("entry {sequence}"),
                |e| matches!(e, Event::Message(m) if m.sequence == sequence),
            )
            .await
        {
            Event::Message(m) => m,
            _ => unreachable!(),
        }
    }

    /// The status the stream ends with (OK when it just ends).
    pub async fn end_status(&mut self) -> Code {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.events.message()).await {
                Err(_) => panic!("the stream did not end within 10 s"),
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => return Code::Ok,
                Ok(Err(status)) => return status.code(),
            }
        }
    }
}

/// Starts a chat for `email` (in `queue`, if any) as an admin.
pub async fn start(suite: &Suite, email: &str, subject: &str, queue: &str) -> StartChatResponse {
    suite
        .support(TENANT, ADMIN)
        .start_chat(StartChatRequest {
            chat: Some(Chat {
                subject: subject.into(),
                requester_email: email.into(),
                requester_display_name: "Ada".into(),
                queue: queue.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("StartChat")
        .into_inner()
}

db_test!(
    a_customer_and_an_agent_chat_and_the_transcript_becomes_a_ticket,
    chat_on
);
async fn chat_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    // SQLite is one process's database: replicas are a PostgreSQL deployment.
    let second = match backend {
        Backend::Postgres => Some(suite.support_replica().await),
        Backend::Sqlite => None,
    };
    let agents_replica = second.as_ref().unwrap_or(suite.first_replica());
    let queue = suite
        .support(TENANT, ADMIN)
        .create_queue(CreateQueueRequest {
            queue: Some(Queue {
                display_name: "Chat".into(),
                members: vec!["bob".into()],
                strategy: AssignmentStrategy::RoundRobin as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateQueue")
        .into_inner();
    let started = start(&suite, "ada@example.com", "", &queue.name).await;
    let chat = started.chat.expect("chat");
    assert_eq!(chat.state(), ChatState::Waiting);
    assert_eq!(chat.offered_agent, "bob", "the queue's strategy offers it");
    assert!(chat.requester.starts_with("contacts/"), "{chat:?}");

    let mut customer = Side::customer(
        &mut suite.anonymous_at(suite.first_replica()),
        &started.customer_token,
        0,
    )
    .await
    .expect("the customer joins without an account");
    let Some(Event::Chat(shown)) = customer.next().await else {
        panic!("the chat comes first");
    };
    assert_eq!(shown.name, chat.name);
    customer.say("Hello, my invoice is wrong", "c1").await;
    let first = customer.entry(1).await;
    assert_eq!(
        (first.author_role(), first.client_message_id.as_str()),
        (ChatRole::Customer, "c1")
    );

    let mut bob = suite.agent_at(agents_replica, "bob");
    let accepted = bob
        .accept_chat(AcceptChatRequest {
            name: chat.name.clone(),
        })
        .await
        .expect("AcceptChat")
        .into_inner();
    assert_eq!(
        (accepted.state(), accepted.agent.as_str()),
        (ChatState::Active, "bob")
    );
    let taken = suite
        .agent_at(suite.first_replica(), "eve")
        .accept_chat(AcceptChatRequest {
            name: chat.name.clone(),
        })
        .await
        .expect_err("a chat has one agent");
    assert_eq!(taken.code(), Code::FailedPrecondition);

    let mut agent = Side::agent(&mut bob, &chat.name, 0)
        .await
        .expect("the agent joins");
    assert_eq!(agent.entry(1).await.text, "Hello, my invoice is wrong");
    assert_eq!(agent.entry(2).await.kind(), ChatMessageKind::AgentJoined);
    // The customer, on the other replica, sees the agent arrive.
    assert_eq!(customer.entry(2).await.author, "bob");
    customer
        .until(
            "the chat turns active",
            |e| matches!(e, Event::Chat(c) if c.state() == ChatState::Active && c.agent == "bob"),
        )
        .await;

    agent
        .act(Action::Typing(SetChatTyping { typing: true }))
        .await;
    let Event::Typing(typing) = customer
        .until("bob's typing", |e| matches!(e, Event::Typing(_)))
        .await
    else {
        unreachable!()
    };
    assert_eq!((typing.participant.as_str(), typing.typing), ("bob", true));
    agent.say("Let me look.", "b1").await;
    assert_eq!(customer.entry(3).await.text, "Let me look.");
    customer
        .act(Action::Read(MarkChatRead { sequence: 3 }))
        .await;
    let Event::Read(read) = agent
        .until(
            "the customer's read marker",
            |e| matches!(e, Event::Read(r) if r.role() == ChatRole::Customer),
        )
        .await
    else {
        unreachable!()
    };
    assert_eq!(read.sequence, 3);

    // The customer's connection drops; they resend their first words (a
    // client unsure they arrived) and miss two of bob's.
    drop(customer);
    agent.say("Found it.", "b2").await;
    agent.say("Refunded.", "b3").await;
    agent.entry(5).await;
    let mut customer = Side::customer(
        &mut suite.anonymous_at(suite.first_replica()),
        &started.customer_token,
        3,
    )
    .await
    .expect("the customer joins again");
    assert!(matches!(customer.next().await, Some(Event::Chat(_))));
    let missed: Vec<String> = [customer.next().await, customer.next().await]
        .into_iter()
        .map(|e| match e {
            Some(Event::Message(m)) => format!("{} {}", m.sequence, m.text),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(missed, ["4 Found it.", "5 Refunded."]);
    customer.say("Hello, my invoice is wrong", "c1").await;

    // An agent who did not accept it follows, but may not write.
    let mut eve = suite.agent_at(suite.first_replica(), "eve");
    let mut watcher = Side::agent(&mut eve, &chat.name, 5)
        .await
        .expect("eve joins");
    watcher.say("Hi, I'm Eve", "e1").await;
    assert_eq!(watcher.end_status().await, Code::FailedPrecondition);

    customer.act(Action::End(EndChatAction {})).await;
    for side in [&mut customer, &mut agent] {
        let ended = side.entry(6).await;
        assert_eq!(
            (ended.kind(), ended.text.as_str()),
            (ChatMessageKind::Ended, "customer")
        );
        side.until(
            "the chat ends",
            |e| matches!(e, Event::Chat(c) if c.state() == ChatState::Ended),
        )
        .await;
        assert_eq!(
            side.end_status().await,
            Code::Ok,
            "the stream ends with the chat"
        );
    }

    // The transcript, page by page: the resent message is there once.
    let mut transcript = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = bob
            .list_chat_messages(ListChatMessagesRequest {
                parent: chat.name.clone(),
                page_size: 2,
                page_token,
            })
            .await
            .expect("ListChatMessages")
            .into_inner();
        transcript.extend(page.messages);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let sequences: Vec<i64> = transcript.iter().map(|m| m.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5, 6]);

    let ticket = bob
        .create_ticket_from_chat(CreateTicketFromChatRequest {
            name: chat.name.clone(),
            ..Default::default()
        })
        .await
        .expect("CreateTicketFromChat")
        .into_inner();
    assert_eq!(ticket.channel(), TicketChannel::Chat);
    assert_eq!(ticket.subject, "Hello, my invoice is wrong");
    assert_eq!(
        (
            ticket.requester.as_str(),
            ticket.assignee.as_str(),
            ticket.queue.as_str()
        ),
        (chat.requester.as_str(), "bob", queue.name.as_str())
    );
    for line in [
        "Ada: Hello, my invoice is wrong",
        "bob: Let me look.",
        "bob: Refunded.",
        "chat ended by customer",
    ] {
        assert!(
            ticket.description.contains(line),
            "{line:?} in {}",
            ticket.description
        );
    }
    let again = bob
        .create_ticket_from_chat(CreateTicketFromChatRequest {
            name: chat.name.clone(),
            ..Default::default()
        })
        .await
        .expect("CreateTicketFromChat again")
        .into_inner();
    assert_eq!(again.name, ticket.name, "one chat, one ticket");
    let chat_now = bob
        .get_chat(GetChatRequest {
            name: chat.name.clone(),
        })
        .await
        .expect("GetChat")
        .into_inner();
    assert_eq!(chat_now.ticket, ticket.name);
    assert_eq!(
        (chat_now.customer_read_sequence, chat_now.ended_by.as_str()),
        (3, "customer")
    );

    let ended = bob
        .list_chats(ListChatsRequest {
            filter: "state = ENDED".into(),
            ..Default::default()
        })
        .await
        .expect("ListChats")
        .into_inner()
        .chats;
    assert_eq!(ended.len(), 1);
    let waiting = bob
        .list_chats(ListChatsRequest {
            filter: "state = WAITING".into(),
            ..Default::default()
        })
        .await
        .expect("ListChats")
        .into_inner()
        .chats;
    assert!(waiting.is_empty());

    let events: Vec<String> = suite
        .support_events()
        .await
        .into_iter()
        .map(|e| e.r#type)
        .collect();
    for kind in [
        "ChatStarted",
        "ChatAccepted",
        "ChatEnded",
        "ChatTicketCreated",
        "TicketCreated",
    ] {
        let kind = format!("crm.support.v1.{kind}");
        assert_eq!(
            events.iter().filter(|e| **e == kind).count(),
            1,
            "{kind} in {events:?}"
        );
    }
}

db_test!(chat_refusals, refusals_on);
async fn refusals_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut admin = suite.support(TENANT, ADMIN);
    let start = |chat: Option<Chat>| StartChatRequest {
        chat,
        request_id: String::new(),
    };
    for (chat, field) in [
        (None, "chat"),
        (Some(Chat::default()), "chat.requester"),
        (
            Some(Chat {
                requester_email: "not an address".into(),
                ..Default::default()
            }),
            "chat.requester_email",
        ),
        (
            Some(Chat {
                requester_email: "ada@example.com".into(),
                queue: "queues/0196f3c0-0000-7000-8000-000000000000".into(),
                ..Default::default()
            }),
            "chat.queue",
        ),
    ] {
        let status = admin.start_chat(start(chat)).await.expect_err(field);
        assert_invalid_field(&status, field, "a bad chat");
    }
    // A retry with the same request id is the same chat.
    let request = StartChatRequest {
        chat: Some(Chat {
            requester_email: "ada@example.com".into(),
            ..Default::default()
        }),
        request_id: "0196f3c0-1111-7000-8000-000000000001".into(),
    };
    let first = admin
        .start_chat(request.clone())
        .await
        .expect("StartChat")
        .into_inner();
    let retried = admin
        .start_chat(request)
        .await
        .expect("StartChat again")
        .into_inner();
    let chat = first.chat.expect("chat");
    assert_eq!(retried.chat.expect("chat").name, chat.name);

    let mut anonymous = suite.anonymous_at(suite.first_replica());
    let forged = format!("{}x", first.customer_token);
    let Err(status) = Side::customer(&mut anonymous, &forged, 0).await else {
        panic!("a forged token joined");
    };
    assert_eq!(status.code(), Code::PermissionDenied);
    let Err(status) = Side::customer(&mut anonymous, &first.customer_token, -1).await else {
        panic!("a negative sequence joined");
    };
    assert_invalid_field(&status, "join.after_sequence", "a negative sequence");
    // A first message that is not a join.
    let (sender, receiver) = mpsc::channel(1);
    sender
        .send(ConnectCustomerChatRequest {
            action: Some(ChatAction {
                action: Some(Action::Send(SendChatMessage {
                    text: "hi".into(),
                    ..Default::default()
                })),
            }),
        })
        .await
        .unwrap();
    drop(sender);
    let status = anonymous
        .connect_customer_chat(ReceiverStream::new(receiver))
        .await
        .expect_err("no join");
    assert_invalid_field(&status, "join", "no join first");

    let mut customer = Side::customer(&mut anonymous, &first.customer_token, 0)
        .await
        .expect("the customer joins");
    customer.say("   ", "").await;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(10), customer.events.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Err(status)) => break status,
            other => panic!("blank words accepted: {other:?}"),
        }
    };
    assert_invalid_field(&status, "send.text", "blank words");

    // Another tenant's agents do not find it, by name or by stream.
    let mut stranger = suite.support(OTHER_TENANT, AGENT);
    let status = stranger
        .get_chat(GetChatRequest {
            name: chat.name.clone(),
        })
        .await
        .expect_err("another tenant's chat");
    assert_eq!(status.code(), Code::NotFound);
    let Err(status) = Side::agent(&mut stranger, &chat.name, 0).await else {
        panic!("another tenant's agent joined");
    };
    assert_eq!(status.code(), Code::NotFound);

    // An agent who said they are away does not pick up chats.
    let mut away = suite.agent_at(suite.first_replica(), "carol");
    away.update_agent(UpdateAgentRequest {
        agent: Some(crm_proto::support::Agent {
            name: "agents/carol".into(),
            available: false,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["available".into()],
        }),
        allow_missing: true,
    })
    .await
    .expect("UpdateAgent");
    let status = away
        .accept_chat(AcceptChatRequest {
            name: chat.name.clone(),
        })
        .await
        .expect_err("an unavailable agent");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = admin
        .create_ticket_from_chat(CreateTicketFromChatRequest {
            name: chat.name.clone(),
            subject: "x".repeat(300),
            ..Default::default()
        })
        .await
        .expect_err("a long subject");
    assert_invalid_field(&status, "subject", "a long subject");
}
