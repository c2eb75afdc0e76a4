//! Inbound email: a mail opens a ticket, replies thread into it, a relay's
//! redelivery changes nothing, malformed mail makes nothing.

use crm_proto::{
    contacts::ListContactsRequest,
    support::{
        ListCommentsRequest, ListTicketsRequest, ReceiveEmailRequest, ReceiveEmailResponse,
        TicketChannel,
    },
};

use crate::harness::*;

fn mail(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut raw = String::new();
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    raw.push_str(body);
    raw.into_bytes()
}

async fn receive(
    support: &mut Support,
    raw: Vec<u8>,
) -> Result<ReceiveEmailResponse, tonic::Status> {
    support
        .receive_email(ReceiveEmailRequest { raw_message: raw })
        .await
        .map(tonic::Response::into_inner)
}

db_test!(mail_opens_tickets_and_replies_thread_into_them, mail_on);
async fn mail_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut support = suite.support(TENANT, AGENT);
    let first = mail(
        &[
            ("From", "Grace Hopper <Grace@Example.com>"),
            ("To", "help@acme.test"),
            ("Subject", "Printer on fire"),
            ("Message-ID", "<m1@example.com>"),
        ],
        "It is on fire.\r\n",
    );
    let opened = receive(&mut support, first.clone())
        .await
        .expect("first mail");
    assert!(opened.created);
    let ticket = opened.ticket.expect("a ticket");
    assert_eq!(ticket.subject, "Printer on fire");
    assert_eq!(ticket.description, "It is on fire.");
    assert_eq!(ticket.channel, TicketChannel::Email as i32);
    assert_eq!(ticket.requester_email, "grace@example.com");
    // The sender became a contact, named as the mail names her.
    let contacts = suite
        .contacts(TENANT, ADMIN)
        .list_contacts(ListContactsRequest {
            filter: "email = \"grace@example.com\"".into(),
            ..Default::default()
        })
        .await
        .expect("ListContacts")
        .into_inner()
        .contacts;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].name, ticket.requester);
    assert_eq!(contacts[0].display_name, "Grace Hopper");

    // The relay delivers it again: nothing new.
    let again = receive(&mut support, first).await.expect("redelivery");
    assert!(!again.created);
    assert_eq!(again.ticket.expect("the ticket").name, ticket.name);

    // A reply by In-Reply-To threads into the ticket, quoted history cut.
    let reply = receive(
        &mut support,
        mail(
            &[
                ("From", "grace@example.com"),
                ("Subject", "Re: Printer on fire"),
                ("Message-ID", "<m2@example.com>"),
                ("In-Reply-To", "<m1@example.com>"),
            ],
            "Now it is out.\r\n\r\nOn Mon, 30 Nov 2026 at 09:00, Support wrote:\r\n> earlier\r\n",
        ),
    )
    .await
    .expect("reply");
    assert!(!reply.created);
    assert_eq!(reply.ticket.expect("ticket").name, ticket.name);
    let comment = reply.comment.expect("a comment");
    assert_eq!(comment.body, "Now it is out.");
    assert_eq!(comment.author, ticket.requester);

    // By the number in the subject, from the requester: a reply too.
    let by_number = receive(
        &mut support,
        mail(
            &[
                ("From", "grace@example.com"),
                ("Subject", &format!("Re: [#{}] Printer", ticket.number)),
                ("Message-ID", "<m3@example.com>"),
            ],
            "Thanks!\r\n",
        ),
    )
    .await
    .expect("reply by number");
    assert_eq!(by_number.ticket.expect("ticket").name, ticket.name);
    // The same number from someone else is a new ticket, not theirs to join.
    let stranger = receive(
        &mut support,
        mail(
            &[
                ("From", "mallory@example.net"),
                ("Subject", &format!("Re: [#{}] Printer", ticket.number)),
                ("Message-ID", "<m4@example.net>"),
            ],
            "Let me in\r\n",
        ),
    )
    .await
    .expect("stranger");
    assert!(stranger.created);
    assert_ne!(stranger.ticket.expect("ticket").name, ticket.name);

    // An auto-reply to nothing known opens nothing.
    let auto = receive(
        &mut support,
        mail(
            &[
                ("From", "robot@example.org"),
                ("Subject", "Out of office"),
                ("Auto-Submitted", "auto-replied"),
                ("Message-ID", "<m5@example.org>"),
            ],
            "I am away\r\n",
        ),
    )
    .await
    .expect("auto reply");
    assert!(auto.ticket.is_none() && !auto.created);

    // Malformed mail: INVALID_ARGUMENT naming raw_message, nothing made.
    for raw in [
        Vec::new(),
        b"just some words, no headers".to_vec(),
        mail(&[("Subject", "no sender")], "x"),
    ] {
        let status = receive(&mut support, raw).await.expect_err("malformed");
        assert_invalid_field(&status, "raw_message", "malformed mail");
    }
    let tickets = support
        .list_tickets(ListTicketsRequest::default())
        .await
        .expect("ListTickets")
        .into_inner()
        .tickets;
    assert_eq!(tickets.len(), 2);
    let comments = support
        .list_comments(ListCommentsRequest {
            parent: ticket.name.clone(),
            ..Default::default()
        })
        .await
        .expect("ListComments")
        .into_inner()
        .comments;
    assert_eq!(comments.len(), 2);
}
