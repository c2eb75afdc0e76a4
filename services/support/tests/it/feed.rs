//! The contacts feed: merges move requesters, erasure erases the person
//! from tickets, comments, chats, survey answers and support's own events.

use crm_proto::{
    contacts::{EraseContactRequest, MergeContactsRequest},
    events::ErasureCompleted,
    support::{
        Chat, Comment, CreateCommentRequest, CreateTicketRequest, GetChatRequest,
        GetSatisfactionSurveyRequest, GetTicketRequest, ListChatMessagesRequest,
        ListCommentsRequest, StartChatRequest, SubmitSatisfactionRatingRequest, Ticket,
        TicketStatus, UpdateTicketRequest,
    },
};

use crate::{chats::Side, harness::*};

async fn open(support: &mut Support, requester: &str, subject: &str) -> Ticket {
    let t = support
        .create_ticket(CreateTicketRequest {
            ticket: Some(Ticket {
                subject: subject.into(),
                description: format!("{subject}: call me on +44 20 7946 0000"),
                requester: requester.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTicket")
        .into_inner();
    support
        .create_comment(CreateCommentRequest {
            parent: t.name.clone(),
            comment: Some(Comment {
                body: "My address is 1 Main St".into(),
                ..Default::default()
            }),
            from_requester: true,
            request_id: String::new(),
        })
        .await
        .expect("CreateComment");
    t
}

db_test!(merges_and_erasures_reach_support, feed_on);
async fn feed_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let ada = suite.contact("Ada", "ada@example.com").await;
    let ada2 = suite.contact("Ada L.", "ada.l@example.com").await;
    let mut support = suite.support(TENANT, AGENT);
    let first = open(&mut support, &ada, "Invoice wrong").await;
    // Ada rates the solved ticket, in words that name her.
    support
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                name: first.name.clone(),
                status: TicketStatus::Solved as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .expect("solve");
    let survey = support
        .get_satisfaction_survey(GetSatisfactionSurveyRequest {
            name: format!("{}/satisfaction", first.name),
        })
        .await
        .expect("survey")
        .into_inner();
    support
        .submit_satisfaction_rating(SubmitSatisfactionRatingRequest {
            token: survey.token,
            rating: 5,
            comment: "Ada was happy".into(),
        })
        .await
        .expect("rating");
    let second = open(&mut support, &ada2, "Second account").await;
    // Ada's second account chats too, in words that name her.
    let chat = suite
        .support(TENANT, ADMIN)
        .start_chat(StartChatRequest {
            chat: Some(Chat {
                subject: "Invoice wrong".into(),
                requester: ada2.clone(),
                requester_display_name: "Ada L.".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("StartChat")
        .into_inner();
    let mut customer = Side::customer(
        &mut suite.anonymous_at(suite.first_replica()),
        &chat.customer_token,
        0,
    )
    .await
    .expect("the customer joins");
    customer.say("I live at 1 Main St", "").await;
    customer.entry(1).await;
    let chat = chat.chat.expect("chat");

    let mut contacts = suite.contacts(TENANT, ADMIN);
    contacts
        .merge_contacts(MergeContactsRequest {
            survivor: ada.clone(),
            merged: vec![ada2.clone()],
            etag: String::new(),
        })
        .await
        .expect("MergeContacts");
    eventually("the merge reaches support", async || {
        let t = support
            .get_ticket(GetTicketRequest {
                name: second.name.clone(),
            })
            .await
            .expect("GetTicket")
            .into_inner();
        t.requester == ada
    })
    .await;
    eventually("the merge reaches the chat", async || {
        let c = support
            .get_chat(GetChatRequest {
                name: chat.name.clone(),
            })
            .await
            .expect("GetChat")
            .into_inner();
        c.requester == ada
    })
    .await;

    contacts
        .erase_contact(EraseContactRequest { name: ada.clone() })
        .await
        .expect("EraseContact");
    eventually("the erasure reaches support", async || {
        suite
            .support_events()
            .await
            .iter()
            .any(|e| e.r#type == "crm.support.v1.ErasureCompleted")
    })
    .await;
    for t in [&first, &second] {
        let erased = support
            .get_ticket(GetTicketRequest {
                name: t.name.clone(),
            })
            .await
            .expect("GetTicket")
            .into_inner();
        assert_eq!(erased.subject, "[erased]");
        assert!(erased.description.is_empty() && erased.requester_email.is_empty());
        let comments = support
            .list_comments(ListCommentsRequest {
                parent: t.name.clone(),
                ..Default::default()
            })
            .await
            .expect("ListComments")
            .into_inner()
            .comments;
        assert!(
            comments.iter().all(|c| c.body == "[erased]"),
            "{comments:?}"
        );
    }
    let erased_chat = support
        .get_chat(GetChatRequest {
            name: chat.name.clone(),
        })
        .await
        .expect("GetChat")
        .into_inner();
    assert_eq!(erased_chat.subject, "[erased]");
    assert!(
        erased_chat.requester_email.is_empty() && erased_chat.requester_display_name.is_empty()
    );
    let transcript = support
        .list_chat_messages(ListChatMessagesRequest {
            parent: chat.name.clone(),
            ..Default::default()
        })
        .await
        .expect("ListChatMessages")
        .into_inner()
        .messages;
    assert_eq!(transcript.len(), 1);
    assert_eq!(transcript[0].text, "[erased]");
    let survey = support
        .get_satisfaction_survey(GetSatisfactionSurveyRequest {
            name: format!("{}/satisfaction", first.name),
        })
        .await
        .expect("survey")
        .into_inner();
    assert!(
        survey.comment.is_empty() && survey.rating == 5,
        "{survey:?}"
    );
    let events = suite.support_events().await;
    let confirmation: ErasureCompleted = payload(
        events
            .iter()
            .find(|e| e.r#type == "crm.support.v1.ErasureCompleted")
            .expect("ErasureCompleted"),
    );
    assert_eq!(confirmation.service, "support");
    assert!(confirmation.erased_resources.contains(&first.name));
    assert!(confirmation.erased_resources.contains(&chat.name));
    assert!(confirmation.scrubbed_events > 0);
    // Nothing support ever published still names the person.
    for event in &events {
        let bytes = &event.payload.as_ref().expect("payload").value;
        let text = String::from_utf8_lossy(bytes);
        for secret in [
            "ada@example.com",
            "ada.l@example.com",
            "Ada L.",
            "Invoice wrong",
            "1 Main St",
            "7946",
            "Ada was happy",
        ] {
            assert!(
                !text.contains(secret),
                "{} still holds {secret:?}",
                event.r#type
            );
        }
    }
}
