//! Statements per call do not grow with the data (no N+1 queries): the
//! ticket calls report their statement count (`x-crm-db-statements`) with a
//! few tickets and again with 60 more, and the counts must be equal.

use std::collections::BTreeMap;

use crm_proto::support::{
    Comment, CreateCommentRequest, CreateTicketRequest, GetTicketRequest, ListCommentsRequest,
    ListTicketsRequest, Ticket, TicketPriority, UpdateTicketRequest,
};
use crm_testkit::statements::{assert_unchanged, counted, statement_count};
use prost_types::FieldMask;

use crate::harness::*;

fn ticket(i: usize) -> Ticket {
    Ticket {
        subject: format!("Printer {i} is on fire"),
        requester_email: format!("ada{i}@engines.example"),
        ..Default::default()
    }
}

async fn create(support: &mut Support, i: usize) -> Ticket {
    let ticket = CreateTicketRequest {
        ticket: Some(ticket(i)),
        request_id: String::new(),
    };
    let created = support.create_ticket(ticket).await.must("CreateTicket");
    let comment = CreateCommentRequest {
        parent: created.name.clone(),
        comment: Some(Comment {
            body: "Have you tried turning it off?".into(),
            public: true,
            ..Default::default()
        }),
        from_requester: false,
        request_id: String::new(),
    };
    support.create_comment(comment).await.must("CreateComment");
    created
}

/// Each ticket call's statement count now.
async fn count_calls(support: &mut Support, i: usize) -> BTreeMap<&'static str, u32> {
    let mut counts = BTreeMap::new();
    let request = CreateTicketRequest {
        ticket: Some(ticket(i)),
        request_id: String::new(),
    };
    let created = support.create_ticket(counted(request)).await;
    counts.insert("CreateTicket", statement_count(&created, "CreateTicket"));
    let created = created.expect("created").into_inner();
    let get = GetTicketRequest {
        name: created.name.clone(),
    };
    let got = support.get_ticket(counted(get)).await;
    counts.insert("GetTicket", statement_count(&got, "GetTicket"));
    let update = UpdateTicketRequest {
        ticket: Some(Ticket {
            priority: TicketPriority::High as i32,
            ..created.clone()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["priority".into()],
        }),
    };
    let updated = support.update_ticket(counted(update)).await;
    counts.insert("UpdateTicket", statement_count(&updated, "UpdateTicket"));
    let comment = CreateCommentRequest {
        parent: created.name.clone(),
        comment: Some(Comment {
            body: "Escalated.".into(),
            public: true,
            ..Default::default()
        }),
        from_requester: false,
        request_id: String::new(),
    };
    let commented = support.create_comment(counted(comment)).await;
    counts.insert(
        "CreateComment",
        statement_count(&commented, "CreateComment"),
    );
    let list = ListCommentsRequest {
        parent: created.name,
        ..Default::default()
    };
    let listed = support.list_comments(counted(list)).await;
    counts.insert("ListComments", statement_count(&listed, "ListComments"));
    let list = ListTicketsRequest {
        page_size: 50,
        order_by: "number desc".into(),
        ..Default::default()
    };
    let listed = support.list_tickets(counted(list)).await;
    counts.insert("ListTickets", statement_count(&listed, "ListTickets"));
    counts
}

db_test!(statements_do_not_grow_with_the_data, statements_on);
async fn statements_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut support = suite.support(TENANT, AGENT);
    for i in 0..3 {
        create(&mut support, i).await;
    }
    let small = count_calls(&mut support, 1000).await;
    for i in 3..63 {
        create(&mut support, i).await;
    }
    let large = count_calls(&mut support, 1001).await;
    eprintln!("statements per call ({backend:?}): {small:?}");
    assert_unchanged(&small, &large, "with 4 and with 64 tickets");
}
