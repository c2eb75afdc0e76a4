//! Comments: the first response, reopening by the requester, and the
//! follow-up a reply to a closed ticket opens.

use crm_proto::support::{
    Comment, CreateCommentRequest, CreateTicketRequest, GetTicketRequest, ListCommentsRequest,
    Ticket, TicketStatus, UpdateTicketRequest,
};
use prost_types::FieldMask;

use crate::harness::*;

async fn comment(
    support: &mut Support,
    ticket: &str,
    body: &str,
    public: bool,
    from_requester: bool,
) -> Comment {
    support
        .create_comment(CreateCommentRequest {
            parent: ticket.into(),
            comment: Some(Comment {
                body: body.into(),
                public,
                ..Default::default()
            }),
            from_requester,
            request_id: String::new(),
        })
        .await
        .expect("CreateComment")
        .into_inner()
}

async fn get(support: &mut Support, name: &str) -> Ticket {
    support
        .get_ticket(GetTicketRequest { name: name.into() })
        .await
        .expect("GetTicket")
        .into_inner()
}

async fn set_status(support: &mut Support, name: &str, status: TicketStatus) {
    support
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                name: name.into(),
                status: status as i32,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .expect("UpdateTicket");
}

db_test!(replies_open_reopen_and_follow_up, replies_on);
async fn replies_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let requester = suite.contact("Ada", "ada@example.com").await;
    let mut support = suite.support(TENANT, AGENT);
    let t = support
        .create_ticket(CreateTicketRequest {
            ticket: Some(Ticket {
                subject: "Cannot log in".into(),
                requester: requester.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTicket")
        .into_inner();
    assert_eq!(t.requester_email, "ada@example.com");

    // An internal note is not a response; the first public reply is.
    comment(&mut support, &t.name, "Checking the logs", false, false).await;
    assert!(
        get(&mut support, &t.name)
            .await
            .first_response_time
            .is_none()
    );
    let reply = comment(
        &mut support,
        &t.name,
        "Please reset your password",
        true,
        false,
    )
    .await;
    assert!(
        !reply.message_id.is_empty(),
        "a public reply gets a Message-ID for mail threading"
    );
    let opened = get(&mut support, &t.name).await;
    assert_eq!(opened.status, TicketStatus::Open as i32);
    let first_response = opened.first_response_time.expect("first response");

    // Waiting on the customer; their reply opens it again.
    set_status(&mut support, &t.name, TicketStatus::Pending).await;
    let answer = comment(&mut support, &t.name, "Done, still broken", false, true).await;
    assert!(answer.public, "what the requester writes is public");
    assert_eq!(answer.author, requester);
    let t2 = get(&mut support, &t.name).await;
    assert_eq!(t2.status, TicketStatus::Open as i32);
    comment(&mut support, &t.name, "Fixed on our side", true, false).await;
    assert_eq!(
        get(&mut support, &t.name).await.first_response_time,
        Some(first_response)
    );

    // Solved, then a reply within the window reopens it.
    set_status(&mut support, &t.name, TicketStatus::Solved).await;
    comment(&mut support, &t.name, "It broke again", true, true).await;
    let reopened = get(&mut support, &t.name).await;
    assert_eq!(
        (reopened.status, reopened.reopen_count),
        (TicketStatus::Open as i32, 1)
    );

    // Closed: a reply opens a linked follow-up, the old ticket stays closed.
    set_status(&mut support, &t.name, TicketStatus::Solved).await;
    set_status(&mut support, &t.name, TicketStatus::Closed).await;
    let late = comment(&mut support, &t.name, "One more thing", true, true).await;
    assert!(!late.follow_up_ticket.is_empty());
    assert!(late.name.starts_with(&late.follow_up_ticket));
    let follow_up = get(&mut support, &late.follow_up_ticket).await;
    assert_eq!(follow_up.follow_up_of, t.name);
    assert_eq!(follow_up.requester, requester);
    assert_eq!(follow_up.status, TicketStatus::New as i32);
    assert_eq!(follow_up.number, t.number + 1);
    assert_eq!(
        get(&mut support, &t.name).await.status,
        TicketStatus::Closed as i32
    );

    let comments = support
        .list_comments(ListCommentsRequest {
            parent: t.name.clone(),
            public_only: true,
            ..Default::default()
        })
        .await
        .expect("ListComments")
        .into_inner()
        .comments;
    let bodies: Vec<&str> = comments.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "Please reset your password",
            "Done, still broken",
            "Fixed on our side",
            "It broke again"
        ]
    );

    let types: Vec<String> = suite
        .support_events()
        .await
        .into_iter()
        .map(|e| e.r#type)
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| t.ends_with(".CommentCreated"))
            .count(),
        6
    );
    assert!(types.iter().any(|t| t.ends_with(".TicketReopened")));

    let empty = support
        .create_comment(CreateCommentRequest {
            parent: t.name.clone(),
            comment: Some(Comment::default()),
            from_requester: false,
            request_id: String::new(),
        })
        .await
        .expect_err("an empty comment");
    assert_invalid_field(&empty, "comment.body", "empty comment");
}
