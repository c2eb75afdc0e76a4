//! A journey run for real: contacts entering its segment are enrolled, get
//! its email, wait, and branch on a click: the clicker gets a sales task,
//! the other a tag in contacts. The marketing process is killed mid-journey
//! and restarted: no step is skipped or repeated (one email each, one task).
//! Bad journeys are refused naming the step's field; re-entry holds. A
//! ticket solved in a real support service enrols its requester.

use crm_proto::{
    contacts::GetContactRequest,
    marketing::{
        ActivateJourneyRequest, BranchAction, BranchCondition, CreateJourneyRequest,
        CreateTemplateRequest, EmailClickedCondition, EnrollContactRequest, Enrollment,
        EnrollmentState, GetEnrollmentRequest, GetJourneyRequest, Journey, JourneyStep,
        JourneyTrigger, ListEnrollmentsRequest, SendEmailAction, Template, TriggerKind,
        UpdateContactAction, WaitAction, branch_condition, journey_step::Action,
    },
    sales::ListTasksRequest,
    support::{CreateTicketRequest, Ticket, TicketStatus, UpdateTicketRequest},
};

use crate::{campaigns::segment, harness::*};

fn step(id: &str, next: &str, action: Action) -> JourneyStep {
    JourneyStep {
        id: id.into(),
        next: next.into(),
        action: Some(action),
    }
}

fn clicked(step: &str, then_step: &str, else_step: &str) -> Action {
    Action::Branch(BranchAction {
        condition: Some(BranchCondition {
            kind: Some(branch_condition::Kind::Clicked(EmailClickedCondition {
                step: step.into(),
                link: "https://acme.example/".into(),
            })),
        }),
        then_step: then_step.into(),
        else_step: else_step.into(),
    })
}

/// Welcome email, a wait, then a task for those who clicked and a tag for
/// those who did not.
fn nurture(template: &str, segment: &str) -> Journey {
    Journey {
        display_name: "Nurture".into(),
        trigger: Some(JourneyTrigger {
            kind: TriggerKind::SegmentEntry as i32,
            segment: segment.into(),
            ..Default::default()
        }),
        steps: vec![
            step(
                "welcome",
                "pause",
                Action::SendEmail(SendEmailAction {
                    template: template.into(),
                    from_address: "news@acme.example".into(),
                    from_name: "Acme".into(),
                    ..Default::default()
                }),
            ),
            step(
                "pause",
                "clicked",
                // Long enough for this test to kill, restart and click.
                Action::Wait(WaitAction {
                    duration: Some(prost_types::Duration {
                        seconds: 6,
                        nanos: 0,
                    }),
                    until: None,
                }),
            ),
            step("clicked", "", clicked("welcome", "call", "tag")),
            step(
                "call",
                "",
                Action::CreateTask(crm_proto::marketing::CreateTaskAction {
                    title: "Call: clicked the welcome offer".into(),
                    due_in: Some(prost_types::Duration {
                        seconds: 86_400,
                        nanos: 0,
                    }),
                    owner: String::new(),
                }),
            ),
            step(
                "tag",
                "",
                Action::UpdateContact(UpdateContactAction {
                    add_tags: vec!["cold".into()],
                    ..Default::default()
                }),
            ),
        ],
        ..Default::default()
    }
}

async fn offer_template(m: &mut Marketing) -> String {
    m.create_template(CreateTemplateRequest {
        template: Some(Template {
            display_name: "Welcome".into(),
            subject: "Welcome, {{ contact.given_name }}".into(),
            html_body: r#"<p>Hi {{ contact.given_name }}</p><a href="https://acme.example/offer">Our offer</a>"#.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .expect("CreateTemplate")
    .into_inner()
    .name
}

/// The journey's enrolments (a test's few fit one page), without history.
async fn enrollments_of(m: &mut Marketing, journey: &str) -> Vec<Enrollment> {
    m.list_enrollments(ListEnrollmentsRequest {
        parent: journey.to_owned(),
        page_size: 50,
        page_token: String::new(),
    })
    .await
    .expect("ListEnrollments")
    .into_inner()
    .enrollments
}

/// How many of the journey's enrolments have their welcome step recorded.
async fn welcomes_recorded(m: &mut Marketing, journey: &str) -> usize {
    let mut recorded = 0;
    for e in enrollments_of(m, journey).await {
        let shown = m
            .get_enrollment(GetEnrollmentRequest { name: e.name })
            .await
            .expect("GetEnrollment")
            .into_inner();
        if shown.history.iter().any(|r| r.step == "welcome") {
            recorded += 1;
        }
    }
    recorded
}

db_test!(a_journey_sends_waits_branches_and_acts, journey_on);
async fn journey_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    let ada = suite
        .contact("Ada", "ada@example.com", &["nurture"], false)
        .await;
    let bea = suite
        .contact("Bea", "bea@example.com", &["nurture"], false)
        .await;
    let mut m = suite.marketing(TENANT, MARKETER);
    let audience = segment(&mut m, r#"tags:"nurture""#).await;
    let template = offer_template(&mut m).await;

    // Bad journeys name the step's field.
    let mut cyclic = nurture(&template, &audience);
    cyclic.steps[4].next = "welcome".into();
    let refused = m
        .create_journey(CreateJourneyRequest {
            journey: Some(cyclic),
            request_id: String::new(),
        })
        .await;
    let problem = invalid_field_problem(refused, "journey.steps[4].next", "a cycle");
    assert!(problem.is_none(), "{}", problem.unwrap_or_default());
    let mut before_send = nurture(&template, &audience);
    before_send.steps[2] = step("clicked", "", clicked("pause", "call", "tag"));
    let refused = m
        .create_journey(CreateJourneyRequest {
            journey: Some(before_send),
            request_id: String::new(),
        })
        .await;
    let field = "journey.steps[2].branch.condition.clicked.step";
    let problem = invalid_field_problem(refused, field, "not an email step");
    assert!(problem.is_none(), "{}", problem.unwrap_or_default());

    let journey = m
        .create_journey(CreateJourneyRequest {
            journey: Some(nurture(&template, &audience)),
            request_id: String::new(),
        })
        .await
        .expect("CreateJourney")
        .into_inner();
    m.activate_journey(ActivateJourneyRequest {
        name: journey.name.clone(),
    })
    .await
    .expect("ActivateJourney");

    // Both are in the segment: enrolled, and each gets the welcome email.
    eventually_within(30, "the welcome emails go out", async || {
        suite.smtp.messages().len() >= 2
    })
    .await;
    // The relay has a message before the sender records it as sent: a kill
    // in between rightly leaves it "perhaps sent". Killed once both are
    // recorded, so the journey is in its wait.
    eventually_within(30, "the welcome emails are recorded", async || {
        welcomes_recorded(&mut m, &journey.name).await == 2
    })
    .await;
    // Killed mid-journey (in the wait), and back.
    suite.marketing.kill();
    suite.marketing.restart().await;
    let mut m = suite.marketing(TENANT, MARKETER);

    // Ada clicks the offer.
    let to_ada = suite
        .smtp
        .messages()
        .into_iter()
        .find(|message| header(message, "To").is_some_and(|to| to.contains("ada@")))
        .expect("Ada's welcome");
    assert_eq!(header(&to_ada, "Subject").as_deref(), Some("Welcome, Ada"));
    assert!(header(&to_ada, "X-CRM-Journey").is_some_and(|j| j == journey.name));
    let tracking = format!("http://{}/c/", suite.tracking);
    let click = attributes(&html_of(&to_ada), "href")
        .into_iter()
        .find(|href| href.starts_with(&tracking))
        .expect("a tracked link");
    assert_eq!(http("GET", &click, "").await.status, 303);

    let mut enrollments = Vec::new();
    eventually_within(60, "both enrolments complete", async || {
        enrollments = enrollments_of(&mut m, &journey.name).await;
        enrollments.len() == 2
            && enrollments
                .iter()
                .all(|e| e.state() == EnrollmentState::Completed)
    })
    .await;

    // Each step once: one email each, one task for the clicker, a tag for the other.
    let received = crate::campaigns::received(&suite.smtp);
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(received.values().all(|n| *n == 1), "{received:?}");
    let tasks = suite
        .sales(TENANT, ADMIN)
        .list_tasks(ListTasksRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("ListTasks")
        .into_inner()
        .tasks;
    let for_ada: Vec<_> = tasks.iter().filter(|t| t.contact == ada).collect();
    assert_eq!(for_ada.len(), 1, "{tasks:?}");
    assert!(tasks.iter().all(|t| t.contact != bea), "{tasks:?}");
    let tags = |name: String| {
        let mut contacts = suite.contacts(TENANT, ADMIN);
        async move {
            contacts
                .get_contact(GetContactRequest { name })
                .await
                .expect("GetContact")
                .into_inner()
                .tags
        }
    };
    assert!(tags(bea.clone()).await.contains(&"cold".to_owned()));
    assert!(!tags(ada.clone()).await.contains(&"cold".to_owned()));

    // Ada's enrolment shows each step it ran, once.
    let ada_enrollment = enrollments
        .iter()
        .find(|e| e.contact == ada)
        .expect("Ada's enrolment");
    let shown = m
        .get_enrollment(GetEnrollmentRequest {
            name: ada_enrollment.name.clone(),
        })
        .await
        .expect("GetEnrollment")
        .into_inner();
    let ran: Vec<(&str, &str)> = shown
        .history
        .iter()
        .map(|r| (r.step.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        &ran[..3],
        [
            ("welcome", "sent"),
            ("pause", "waited"),
            ("clicked", "then")
        ]
    );
    assert_eq!(ran[3].0, "call");
    assert!(ran[3].1.starts_with("created tasks/"), "{ran:?}");
    assert_eq!(shown.source, "segment");

    // Never twice (the default re-entry rule), by hand either.
    let again = m
        .enroll_contact(EnrollContactRequest {
            journey: journey.name.clone(),
            contact: ada.clone(),
            request_id: String::new(),
        })
        .await
        .expect_err("Ada was enrolled before");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    let counts = m
        .get_journey(GetJourneyRequest {
            name: journey.name.clone(),
        })
        .await
        .expect("GetJourney")
        .into_inner()
        .counts
        .expect("counts");
    assert_eq!((counts.completed, counts.active), (2, 0));
    assert_eq!((counts.emails_sent, counts.unique_clicks), (2, 1));

    // The events tell reporting and the timeline: two enrolments, and the
    // emails named by their journey.
    let events = suite.marketing_events().await;
    let count = |kind: &str| events.iter().filter(|e| e.r#type == kind).count();
    assert_eq!(count("crm.marketing.v1.JourneyEnrolled"), 2);
    assert_eq!(count("crm.marketing.v1.JourneyEnrollmentEnded"), 2);
    let sent: Vec<crm_proto::marketing::EmailSent> = events
        .iter()
        .filter(|e| e.r#type == "crm.marketing.v1.EmailSent")
        .map(payload)
        .collect();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter()
            .all(|s| s.journey == journey.name && s.campaign.is_empty())
    );

    // Bea is erased: her enrolment and its steps go, and the confirmation
    // names the enrolment (her email is named by it, not as a campaign's).
    let bea_enrollment = enrollments
        .iter()
        .find(|e| e.contact == bea)
        .expect("Bea's enrolment")
        .name
        .clone();
    suite
        .contacts(TENANT, ADMIN)
        .erase_contact(crm_proto::contacts::EraseContactRequest { name: bea.clone() })
        .await
        .expect("EraseContact");
    let confirmed = "crm.marketing.v1.ErasureCompleted";
    eventually("the erasure reaches marketing", async || {
        suite
            .marketing_events()
            .await
            .iter()
            .any(|e| e.r#type == confirmed)
    })
    .await;
    let gone = m
        .get_enrollment(GetEnrollmentRequest {
            name: bea_enrollment.clone(),
        })
        .await
        .expect_err("Bea's enrolment is erased");
    assert_eq!(gone.code(), tonic::Code::NotFound);
    let events = suite.marketing_events().await;
    let confirmation: crm_proto::events::ErasureCompleted = payload(
        events
            .iter()
            .find(|e| e.r#type == confirmed)
            .expect("ErasureCompleted"),
    );
    assert!(
        confirmation.erased_resources.contains(&bea_enrollment),
        "{confirmation:?}"
    );
    assert!(
        !confirmation
            .erased_resources
            .iter()
            .any(|r| r.starts_with("campaigns/")),
        "{confirmation:?}"
    );
}

db_test!(one_person_is_in_a_journey_once, once_on);
async fn once_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let ada = suite
        .contact("Ada", "ada@example.com", &["slow"], false)
        .await;
    let twin = suite
        .contact("Ada", "ada.l@example.com", &["slow"], false)
        .await;
    let cy = suite.contact("Cy", "cy@example.com", &[], false).await;
    let mut m = suite.marketing(TENANT, MARKETER);
    let audience = segment(&mut m, r#"tags:"slow""#).await;
    let template = offer_template(&mut m).await;
    // A long wait first: everyone stays in flight while the test looks.
    let mut slow = nurture(&template, &audience);
    slow.steps.insert(
        0,
        step(
            "settle",
            "welcome",
            Action::Wait(WaitAction {
                duration: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                until: None,
            }),
        ),
    );
    let journey = m
        .create_journey(CreateJourneyRequest {
            journey: Some(slow),
            request_id: String::new(),
        })
        .await
        .expect("CreateJourney")
        .into_inner();
    m.activate_journey(ActivateJourneyRequest {
        name: journey.name.clone(),
    })
    .await
    .expect("ActivateJourney");
    eventually_within(30, "both are enrolled from the segment", async || {
        enrollments_of(&mut m, &journey.name).await.len() == 2
    })
    .await;

    // Many enrolments of one contact at once: one gets in.
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let mut m = suite.marketing(TENANT, MARKETER);
        let (journey, cy) = (journey.name.clone(), cy.clone());
        attempts.spawn(async move {
            m.enroll_contact(EnrollContactRequest {
                journey,
                contact: cy,
                request_id: String::new(),
            })
            .await
        });
    }
    let outcomes = attempts.join_all().await;
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    }
    // A contact name spelt otherwise is the same contact.
    let upper = cy.to_uppercase().replace("CONTACTS/", "contacts/");
    let again = m
        .enroll_contact(EnrollContactRequest {
            journey: journey.name.clone(),
            contact: upper,
            request_id: String::new(),
        })
        .await
        .expect_err("Cy is in the journey");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);

    // The twin merged into Ada: one of their two enrolments goes on.
    suite
        .contacts(TENANT, ADMIN)
        .merge_contacts(crm_proto::contacts::MergeContactsRequest {
            survivor: ada.clone(),
            merged: vec![twin.clone()],
            etag: String::new(),
        })
        .await
        .expect("MergeContacts");
    eventually_within(30, "the merge reaches the journey", async || {
        let theirs: Vec<_> = enrollments_of(&mut m, &journey.name)
            .await
            .into_iter()
            .filter(|e| e.contact == ada)
            .collect();
        theirs.len() == 2
            && theirs
                .iter()
                .filter(|e| e.state() == EnrollmentState::Active)
                .count()
                == 1
            && theirs.iter().any(|e| e.reason.starts_with("merged into"))
    })
    .await;
    assert!(
        enrollments_of(&mut m, &journey.name)
            .await
            .iter()
            .all(|e| e.contact != twin)
    );
}

db_test!(a_solved_ticket_enrols_its_requester, ticket_solved_on);
async fn ticket_solved_on(backend: Backend) {
    let Some(suite) = Suite::start_with_support(backend).await else {
        return;
    };
    let ada = suite.contact("Ada", "ada@example.com", &[], false).await;
    let mut m = suite.marketing(TENANT, MARKETER);
    // Triggered by a solved ticket; a long wait first keeps the enrolment in flight.
    let journey = m
        .create_journey(CreateJourneyRequest {
            journey: Some(Journey {
                display_name: "After support".into(),
                trigger: Some(JourneyTrigger {
                    kind: TriggerKind::TicketSolved as i32,
                    ..Default::default()
                }),
                steps: vec![step(
                    "settle",
                    "",
                    Action::Wait(WaitAction {
                        duration: Some(prost_types::Duration {
                            seconds: 3600,
                            nanos: 0,
                        }),
                        until: None,
                    }),
                )],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateJourney")
        .into_inner();
    m.activate_journey(ActivateJourneyRequest {
        name: journey.name.clone(),
    })
    .await
    .expect("ActivateJourney");

    // Ada's ticket, opened and solved in support.
    let mut support = suite.support(TENANT, AGENT);
    let ticket = support
        .create_ticket(CreateTicketRequest {
            ticket: Some(Ticket {
                subject: "My invoice is wrong".into(),
                requester: ada.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateTicket");
    let solved = support
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                name: ticket.name.clone(),
                status: TicketStatus::Solved as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .must("solving the ticket");
    assert_eq!(solved.status(), TicketStatus::Solved);

    // The TicketSolved event reaches marketing and enrols her, once.
    let mut enrollments = Vec::new();
    eventually_within(30, "the solved ticket enrols its requester", async || {
        enrollments = enrollments_of(&mut m, &journey.name).await;
        !enrollments.is_empty()
    })
    .await;
    assert_eq!(enrollments.len(), 1, "{enrollments:?}");
    let enrolled = &enrollments[0];
    assert_eq!(enrolled.contact, ada);
    assert_eq!(enrolled.state(), EnrollmentState::Active);
    assert_eq!(enrolled.source, "TicketSolved");

    // Nothing of support's feed was parked on the way.
    let parked = suite.parked("support").await;
    assert!(parked.is_empty(), "{parked:?}");
}
