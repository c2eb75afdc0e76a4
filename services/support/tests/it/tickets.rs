//! Tickets: numbers without gaps, routing, the workflow and its history,
//! idempotent creates, tenants, roles and bad input.

use std::collections::BTreeSet;

use crm_proto::support::{
    Agent, AssignTicketRequest, AssignmentStrategy, CreateQueueRequest, CreateRoutingRuleRequest,
    CreateTicketRequest, GetTicketRequest, ListTicketChangesRequest, ListTicketsRequest, Queue,
    RoutingRule, Ticket, TicketChannel, TicketPriority, TicketStatus, UpdateAgentRequest,
    UpdateTicketRequest,
};
use prost_types::FieldMask;
use tonic::Code;

use crate::harness::*;

fn ticket(subject: &str, email: &str) -> Ticket {
    Ticket {
        subject: subject.into(),
        requester_email: email.into(),
        ..Default::default()
    }
}

async fn create(support: &mut Support, t: Ticket) -> Ticket {
    support
        .create_ticket(CreateTicketRequest {
            ticket: Some(t),
            request_id: String::new(),
        })
        .await
        .expect("CreateTicket")
        .into_inner()
}

async fn set_status(
    support: &mut Support,
    t: &Ticket,
    status: TicketStatus,
) -> Result<Ticket, tonic::Status> {
    support
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                name: t.name.clone(),
                status: status as i32,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .map(tonic::Response::into_inner)
}

db_test!(numbers_have_no_gaps_under_concurrency, numbers_on);
async fn numbers_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let requester = suite.contact("Ada", "ada@example.com").await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut support = suite.support(TENANT, AGENT);
        let requester = requester.clone();
        tasks.push(tokio::spawn(async move {
            create(
                &mut support,
                Ticket {
                    subject: format!("Question {i}"),
                    requester,
                    ..Default::default()
                },
            )
            .await
            .number
        }));
    }
    let mut numbers = BTreeSet::new();
    for task in tasks {
        numbers.insert(task.await.expect("a create task"));
    }
    assert_eq!(numbers, (1..=16).collect::<BTreeSet<i64>>());

    // A retried create returns the first ticket and takes no number.
    let mut support = suite.support(TENANT, AGENT);
    let request = CreateTicketRequest {
        ticket: Some(Ticket {
            subject: "Once".into(),
            requester: requester.clone(),
            ..Default::default()
        }),
        request_id: "0190a5a0-0000-7000-8000-000000000001".into(),
    };
    let first = support
        .create_ticket(request.clone())
        .await
        .expect("create")
        .into_inner();
    let again = support
        .create_ticket(request)
        .await
        .expect("retry")
        .into_inner();
    assert_eq!((first.name.clone(), first.number), (again.name, 17));
    assert_eq!(
        create(&mut support, ticket("Next", "ada@example.com"))
            .await
            .number,
        18
    );

    // Another tenant counts from 1 and sees none of these.
    let mut other = suite.support(OTHER_TENANT, AGENT);
    let theirs = create(&mut other, ticket("Theirs", "bob@example.com")).await;
    assert_eq!(theirs.number, 1);
    let hidden = other
        .get_ticket(GetTicketRequest { name: first.name })
        .await
        .expect_err("another tenant's ticket");
    assert_eq!(hidden.code(), Code::NotFound);
}

db_test!(
    routing_rules_and_queue_strategies_assign_new_tickets,
    routing_on
);
async fn routing_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut admin = suite.support(TENANT, ADMIN);
    let billing = admin
        .create_queue(CreateQueueRequest {
            queue: Some(Queue {
                display_name: "Billing".into(),
                members: vec!["ann".into(), "bob".into(), "cid".into()],
                strategy: AssignmentStrategy::RoundRobin as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateQueue")
        .into_inner();
    admin
        .create_routing_rule(CreateRoutingRuleRequest {
            routing_rule: Some(RoutingRule {
                display_name: "Invoices by mail".into(),
                filter: "channel = EMAIL AND tags:\"invoice\"".into(),
                queue: billing.name.clone(),
                set_priority: TicketPriority::High as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateRoutingRule");
    // cid is away: the round robin skips them.
    admin
        .update_agent(UpdateAgentRequest {
            agent: Some(Agent {
                name: "agents/cid".into(),
                available: false,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["available".into()],
            }),
            allow_missing: true,
        })
        .await
        .expect("UpdateAgent");

    let mut support = suite.support(TENANT, AGENT);
    let mut assignees = Vec::new();
    for i in 0..4 {
        let t = create(
            &mut support,
            Ticket {
                channel: TicketChannel::Email as i32,
                tags: vec!["Invoice".into()],
                ..ticket(&format!("Invoice {i}"), "ada@example.com")
            },
        )
        .await;
        assert_eq!(t.queue, billing.name);
        assert_eq!(t.priority, TicketPriority::High as i32);
        assert!(
            t.assignment_reason.contains("Billing"),
            "{}",
            t.assignment_reason
        );
        assignees.push(t.assignee);
    }
    assert_eq!(assignees, ["ann", "bob", "ann", "bob"]);
    let unrouted = create(&mut support, ticket("Hello", "ada@example.com")).await;
    assert_eq!(
        (unrouted.queue.as_str(), unrouted.assignee.as_str()),
        ("", "")
    );
    assert_eq!(unrouted.priority, TicketPriority::Normal as i32);

    // A manual move records who changed queue and assignee.
    let moved = support
        .assign_ticket(AssignTicketRequest {
            name: unrouted.name.clone(),
            queue: billing.name.clone(),
            assignee: "dan".into(),
            etag: String::new(),
        })
        .await
        .expect("AssignTicket")
        .into_inner();
    assert_eq!(
        (moved.assignee.as_str(), moved.assignment_reason.as_str()),
        ("dan", "manual")
    );
    let changes = support
        .list_ticket_changes(ListTicketChangesRequest {
            parent: unrouted.name.clone(),
            ..Default::default()
        })
        .await
        .expect("ListTicketChanges")
        .into_inner()
        .changes;
    let fields: Vec<(&str, &str, &str)> = changes
        .iter()
        .map(|c| (c.field.as_str(), c.old_value.as_str(), c.new_value.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("status", "", "NEW"),
            ("priority", "", "NORMAL"),
            ("queue", "", billing.name.as_str()),
            ("assignee", "", "dan"),
        ]
    );
    assert!(changes.iter().all(|c| c.actor == "tester"));

    // A queue that tickets are in cannot be deleted.
    let refused = admin
        .delete_queue(crm_proto::support::DeleteQueueRequest {
            name: billing.name.clone(),
            etag: String::new(),
        })
        .await
        .expect_err("a queue with tickets");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // Filtered lists see the routing.
    let urgent_billing = support
        .list_tickets(ListTicketsRequest {
            filter: format!("queue = \"{}\" AND priority = HIGH", billing.name),
            order_by: "number desc".into(),
            ..Default::default()
        })
        .await
        .expect("ListTickets")
        .into_inner()
        .tickets;
    let numbers: Vec<i64> = urgent_billing.iter().map(|t| t.number).collect();
    assert_eq!(numbers, [4, 3, 2, 1]);
}

db_test!(the_status_workflow_is_enforced_and_recorded, workflow_on);
async fn workflow_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut support = suite.support(TENANT, AGENT);
    let t = create(&mut support, ticket("Broken", "ada@example.com")).await;
    assert_eq!(t.status, TicketStatus::New as i32);
    let refused = set_status(&mut support, &t, TicketStatus::Closed)
        .await
        .expect_err("NEW to CLOSED");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let t = set_status(&mut support, &t, TicketStatus::Pending)
        .await
        .expect("PENDING");
    let t = set_status(&mut support, &t, TicketStatus::Solved)
        .await
        .expect("SOLVED");
    assert!(t.solve_time.is_some());
    let t = set_status(&mut support, &t, TicketStatus::Open)
        .await
        .expect("reopened");
    assert_eq!(t.reopen_count, 1);
    set_status(&mut support, &t, TicketStatus::Solved)
        .await
        .expect("SOLVED again");
    let closed = set_status(&mut support, &t, TicketStatus::Closed)
        .await
        .expect("CLOSED");
    assert!(closed.close_time.is_some());
    let never = set_status(&mut support, &closed, TicketStatus::Open)
        .await
        .expect_err("reopen closed");
    assert_eq!(never.code(), Code::FailedPrecondition);

    let types: Vec<String> = suite
        .support_events()
        .await
        .into_iter()
        .filter(|e| e.subject == t.name)
        .map(|e| e.r#type.trim_start_matches("crm.support.v1.").to_owned())
        .collect();
    for expected in [
        "TicketCreated",
        "TicketStatusChanged",
        "TicketSolved",
        "TicketReopened",
        "TicketClosed",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "no {expected} in {types:?}"
        );
    }
    let statuses: Vec<String> = support
        .list_ticket_changes(ListTicketChangesRequest {
            parent: t.name.clone(),
            ..Default::default()
        })
        .await
        .expect("changes")
        .into_inner()
        .changes
        .into_iter()
        .filter(|c| c.field == "status")
        .map(|c| c.new_value)
        .collect();
    assert_eq!(
        statuses,
        ["NEW", "PENDING", "SOLVED", "OPEN", "SOLVED", "CLOSED"]
    );
}

db_test!(roles_and_bad_input_are_refused, refusals_on);
async fn refusals_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let denied = suite
        .support(TENANT, VIEWER)
        .create_ticket(CreateTicketRequest {
            ticket: Some(ticket("Nope", "ada@example.com")),
            request_id: String::new(),
        })
        .await
        .expect_err("a viewer creates");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut support = suite.support(TENANT, AGENT);
    let denied = support
        .create_queue(CreateQueueRequest {
            queue: Some(Queue {
                display_name: "Mine".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("an agent makes a queue");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let someone_else = support
        .update_agent(UpdateAgentRequest {
            agent: Some(Agent {
                name: "agents/ann".into(),
                available: true,
                ..Default::default()
            }),
            update_mask: None,
            allow_missing: true,
        })
        .await
        .expect_err("an agent edits another's profile");
    assert_eq!(someone_else.code(), Code::PermissionDenied);

    let cases: Vec<(Ticket, &str)> = vec![
        (ticket("", "ada@example.com"), "ticket.subject"),
        (ticket("Hi", "not an address"), "ticket.requester_email"),
        (ticket("Hi", ""), "ticket.requester"),
        (
            Ticket {
                requester: "contacts/0190a5a0-0000-7000-8000-000000000009".into(),
                ..ticket("Hi", "")
            },
            "ticket.requester",
        ),
        (
            Ticket {
                priority: 42,
                ..ticket("Hi", "ada@example.com")
            },
            "ticket.priority",
        ),
        (
            Ticket {
                queue: "queues/0190a5a0-0000-7000-8000-000000000009".into(),
                ..ticket("Hi", "ada@example.com")
            },
            "ticket.queue",
        ),
    ];
    for (t, field) in cases {
        let status = support
            .create_ticket(CreateTicketRequest {
                ticket: Some(t),
                request_id: String::new(),
            })
            .await
            .expect_err(field);
        assert_invalid_field(&status, field, field);
    }
    let status = support
        .list_tickets(ListTicketsRequest {
            filter: "colour = \"red\"".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown filter field");
    assert_invalid_field(&status, "filter", "filter");
    let queue = suite
        .support(TENANT, ADMIN)
        .create_queue(CreateQueueRequest {
            queue: Some(Queue {
                display_name: "Q".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("queue")
        .into_inner();
    let status = suite
        .support(TENANT, ADMIN)
        .create_routing_rule(CreateRoutingRuleRequest {
            routing_rule: Some(RoutingRule {
                display_name: "Bad".into(),
                filter: "priority = SOMETIMES".into(),
                queue: queue.name,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("bad rule filter");
    assert_invalid_field(&status, "routing_rule.filter", "rule filter");
    // Nothing above made a ticket.
    let listed = support
        .list_tickets(ListTicketsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .tickets;
    assert!(listed.is_empty(), "{listed:?}");
}
