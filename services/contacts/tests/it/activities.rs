//! Activities: logging on contacts and companies, system entries, updates,
//! soft delete, ListActivities and the newest-first ListTimeline.

use std::collections::HashSet;

use crm_proto::contacts::{
    Activity, ActivityKind, CreateActivityRequest, DeleteActivityRequest, GetActivityRequest,
    ListActivitiesRequest, ListTimelineRequest, UpdateActivityRequest,
};
use crm_testkit::Backend;
use prost_types::FieldMask;
use tonic::Code;

use crate::support::*;

/// An activity of `kind` on `contact` that happened at `occur_time` (RFC 3339, or now when empty).
pub fn activity(kind: ActivityKind, contact: &str, subject: &str, occur_time: &str) -> Activity {
    Activity {
        kind: kind as i32,
        subject: subject.into(),
        body: format!("body of {subject}"),
        occur_time: (!occur_time.is_empty()).then(|| timestamp(occur_time)),
        contact: contact.into(),
        ..Default::default()
    }
}

/// Logs `activity` and returns it.
pub async fn log(client: &mut Contacts, activity: Activity) -> Activity {
    let what = format!("CreateActivity {}", activity.subject);
    client
        .create_activity(CreateActivityRequest {
            activity: Some(activity),
            request_id: String::new(),
        })
        .await
        .must(&what)
}

fn subjects(activities: &[Activity]) -> Vec<String> {
    activities.iter().map(|a| a.subject.clone()).collect()
}

async fn logs_and_gets_an_activity_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let contact = create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;

    let created = log(
        &mut client,
        activity(ActivityKind::Call, &contact.name, "Intro call", ""),
    )
    .await;
    assert!(
        is_resource_name(&created.name, "activities"),
        "name: {}",
        created.name
    );
    assert_eq!(created.kind, ActivityKind::Call as i32);
    assert_eq!(created.subject, "Intro call");
    assert_eq!(created.body, "body of Intro call");
    assert_eq!(created.contact, contact.name);
    assert_eq!(created.actor, "tester", "the actor defaults to the caller");
    assert_eq!(
        created.occur_time, created.create_time,
        "occur_time defaults to the creation time"
    );
    assert!(created.create_time.is_some());
    assert!(!created.etag.is_empty());
    let got = client
        .get_activity(GetActivityRequest {
            name: created.name.clone(),
        })
        .await
        .must("GetActivity");
    assert_eq!(got, created);

    let mut explicit = activity(
        ActivityKind::Meeting,
        &contact.name,
        "Board meeting",
        "2024-03-01T10:00:00Z",
    );
    explicit.actor = "someone-else".into();
    let explicit = log(&mut client, explicit).await;
    assert_eq!(explicit.occur_time, Some(timestamp("2024-03-01T10:00:00Z")));
    assert_eq!(explicit.actor, "someone-else");

    // On a company alone.
    let company = crate::companies::create_company(&mut client, "Analytical Engines").await;
    let mut on_company = activity(ActivityKind::Note, "", "Company note", "");
    on_company.company = company.name.clone();
    let on_company = log(&mut client, on_company).await;
    assert_eq!(on_company.company, company.name);
    assert!(on_company.contact.is_empty());

    // Neither contact nor company.
    let status = client
        .create_activity(CreateActivityRequest {
            activity: Some(activity(ActivityKind::Note, "", "Floating note", "")),
            request_id: String::new(),
        })
        .await
        .must_fail("CreateActivity without contact and company");
    assert_invalid_field(
        &status,
        "contact",
        "CreateActivity without contact and company",
    );

    // An unknown contact.
    let status = client
        .create_activity(CreateActivityRequest {
            activity: Some(activity(
                ActivityKind::Note,
                &unknown_name("contacts"),
                "Lost",
                "",
            )),
            request_id: String::new(),
        })
        .await
        .must_fail("CreateActivity on an unknown contact");
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound
        ),
        "an unknown contact: {:?}: {}",
        status.code(),
        status.message()
    );

    client
        .get_activity(GetActivityRequest {
            name: unknown_name("activities"),
        })
        .await
        .must_fail_with(Code::NotFound, "GetActivity of an unknown activity");

    let events = app.all_events().await;
    let about = events_about(&events, &created.name);
    assert_eq!(about.len(), 1);
    assert_eq!(about[0].r#type, event_type("ActivityLogged"));
    let logged: Activity = payload(about[0]);
    assert_eq!(logged.name, created.name);
    assert_eq!(logged.contact, contact.name);
}
db_test!(logs_and_gets_an_activity, logs_and_gets_an_activity_on);

async fn system_entries_need_the_service_identity_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut admin = app.admin();
    let contact = create(&mut admin, person("Ada", "Lovelace", "ada@example.com")).await;
    let mut system = activity(ActivityKind::System, &contact.name, "Deal won", "");
    system.related_resource = "opportunities/0190a0a0-0000-7000-8000-000000000001".into();

    for (roles, who) in [(SALES, "sales"), (ADMIN, "admin")] {
        let mut client = app.client(TENANT, roles);
        client
            .create_activity(CreateActivityRequest {
                activity: Some(system.clone()),
                request_id: String::new(),
            })
            .await
            .must_fail_with(Code::PermissionDenied, &format!("a SYSTEM entry by {who}"));
    }
    let mut service = app.client(TENANT, SERVICE);
    let logged = log(&mut service, system.clone()).await;
    assert_eq!(logged.kind, ActivityKind::System as i32);
    assert_eq!(logged.related_resource, system.related_resource);
    let timeline = admin
        .list_timeline(ListTimelineRequest {
            contact: contact.name.clone(),
            ..Default::default()
        })
        .await
        .must("ListTimeline");
    assert_eq!(subjects(&timeline.activities), vec!["Deal won".to_owned()]);
}
db_test!(
    system_entries_need_the_service_identity,
    system_entries_need_the_service_identity_on
);

async fn timeline_is_newest_first_and_pages_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let ada = create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;
    let other = create(&mut client, person("Alan", "Turing", "alan@example.com")).await;
    let at = [
        ("first", "2024-01-01T09:00:00Z"),
        ("fifth", "2024-01-05T09:00:00Z"),
        ("third", "2024-01-03T09:00:00Z"),
        ("now", ""),
        ("second", "2024-01-02T09:00:00Z"),
        ("fourth", "2024-01-04T09:00:00Z"),
    ];
    let mut logged = Vec::new();
    for (subject, time) in at {
        logged.push(
            log(
                &mut client,
                activity(ActivityKind::Note, &ada.name, subject, time),
            )
            .await,
        );
    }
    log(
        &mut client,
        activity(ActivityKind::Note, &other.name, "someone else's", ""),
    )
    .await;
    let doomed = log(
        &mut client,
        activity(
            ActivityKind::Email,
            &ada.name,
            "deleted",
            "2024-01-06T00:00:00Z",
        ),
    )
    .await;
    client
        .delete_activity(DeleteActivityRequest {
            name: doomed.name.clone(),
            etag: String::new(),
        })
        .await
        .must("DeleteActivity");

    let expected: Vec<String> = ["now", "fifth", "fourth", "third", "second", "first"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let all = client
        .list_timeline(ListTimelineRequest {
            contact: ada.name.clone(),
            ..Default::default()
        })
        .await
        .must("ListTimeline");
    assert_eq!(
        subjects(&all.activities),
        expected,
        "newest first, own activities only, no deleted"
    );
    assert!(all.next_page_token.is_empty());

    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_timeline(ListTimelineRequest {
                contact: ada.name.clone(),
                page_size: 4,
                page_token: token.clone(),
            })
            .await
            .must("ListTimeline page");
        pages += 1;
        assert!(page.activities.len() <= 4);
        paged.extend(page.activities);
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(pages < 10, "timeline paging does not end");
        token = page.next_page_token;
    }
    assert_eq!(pages, 2, "6 activities in pages of 4");
    assert_eq!(
        subjects(&paged),
        expected,
        "pages concatenate to the full timeline"
    );

    client
        .list_timeline(ListTimelineRequest {
            contact: unknown_name("contacts"),
            ..Default::default()
        })
        .await
        .must_fail_with(Code::NotFound, "ListTimeline of an unknown contact");
    let status = client
        .list_timeline(ListTimelineRequest {
            contact: ada.name.clone(),
            page_size: -1,
            ..Default::default()
        })
        .await
        .must_fail("ListTimeline page_size -1");
    assert_invalid_field(&status, "page_size", "ListTimeline page_size -1");
}
db_test!(
    timeline_is_newest_first_and_pages,
    timeline_is_newest_first_and_pages_on
);

async fn lists_updates_and_deletes_activities_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let ada = create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;
    let alan = create(&mut client, person("Alan", "Turing", "alan@example.com")).await;
    let call = log(
        &mut client,
        activity(
            ActivityKind::Call,
            &ada.name,
            "call ada",
            "2024-02-01T00:00:00Z",
        ),
    )
    .await;
    log(
        &mut client,
        activity(
            ActivityKind::Note,
            &ada.name,
            "note ada",
            "2024-02-03T00:00:00Z",
        ),
    )
    .await;
    log(
        &mut client,
        activity(
            ActivityKind::Call,
            &alan.name,
            "call alan",
            "2024-02-02T00:00:00Z",
        ),
    )
    .await;

    let list = |filter: &str| ListActivitiesRequest {
        filter: filter.into(),
        include_total_size: true,
        ..Default::default()
    };
    let all = client
        .list_activities(list(""))
        .await
        .must("ListActivities");
    assert_eq!(
        subjects(&all.activities),
        vec!["note ada", "call alan", "call ada"],
        "the default order is occur_time desc"
    );
    assert_eq!(all.total_size, 3);
    let filter = format!("contact = \"{}\"", ada.name);
    let of_ada = client
        .list_activities(list(&filter))
        .await
        .must("ListActivities by contact");
    let got: HashSet<String> = subjects(&of_ada.activities).into_iter().collect();
    assert_eq!(
        got,
        HashSet::from(["call ada".to_owned(), "note ada".to_owned()])
    );
    let calls = client
        .list_activities(list(r#"kind = "CALL""#))
        .await
        .must("ListActivities by kind");
    let got: HashSet<String> = subjects(&calls.activities).into_iter().collect();
    assert_eq!(
        got,
        HashSet::from(["call ada".to_owned(), "call alan".to_owned()])
    );
    let oldest_first = client
        .list_activities(ListActivitiesRequest {
            order_by: "occur_time".into(),
            ..Default::default()
        })
        .await
        .must("ListActivities order_by occur_time");
    assert_eq!(
        subjects(&oldest_first.activities),
        vec!["call ada", "call alan", "note ada"]
    );

    // Update with a mask and an etag.
    let mut change = call.clone();
    change.subject = "call ada (rescheduled)".into();
    change.body = "not in the mask".into();
    let updated = client
        .update_activity(UpdateActivityRequest {
            activity: Some(change),
            update_mask: Some(FieldMask {
                paths: vec!["subject".into()],
            }),
        })
        .await
        .must("UpdateActivity subject");
    assert_eq!(updated.subject, "call ada (rescheduled)");
    assert_eq!(updated.body, call.body, "body was not in the mask");
    assert_ne!(updated.etag, call.etag);
    let mut stale = call.clone();
    stale.subject = "stale".into();
    client
        .update_activity(UpdateActivityRequest {
            activity: Some(stale),
            update_mask: Some(FieldMask {
                paths: vec!["subject".into()],
            }),
        })
        .await
        .must_fail_with(Code::Aborted, "UpdateActivity with a stale etag");
    client
        .delete_activity(DeleteActivityRequest {
            name: call.name.clone(),
            etag: call.etag.clone(),
        })
        .await
        .must_fail_with(Code::Aborted, "DeleteActivity with a stale etag");

    let deleted = client
        .delete_activity(DeleteActivityRequest {
            name: call.name.clone(),
            etag: updated.etag.clone(),
        })
        .await
        .must("DeleteActivity");
    assert!(deleted.delete_time.is_some());
    let got = client
        .get_activity(GetActivityRequest {
            name: call.name.clone(),
        })
        .await
        .must("GetActivity of a soft-deleted activity");
    assert!(got.delete_time.is_some());
    let live = client
        .list_activities(list(""))
        .await
        .must("ListActivities");
    assert_eq!(
        live.activities.len(),
        2,
        "List hides soft-deleted activities"
    );
    let with_deleted = client
        .list_activities(ListActivitiesRequest {
            show_deleted: true,
            ..Default::default()
        })
        .await
        .must("ListActivities show_deleted");
    assert_eq!(with_deleted.activities.len(), 3);

    let events = app.all_events().await;
    let types: Vec<String> = events_about(&events, &call.name)
        .iter()
        .map(|e| e.r#type.clone())
        .collect();
    assert_eq!(
        types,
        vec![
            event_type("ActivityLogged"),
            event_type("ActivityUpdated"),
            event_type("ActivityDeleted")
        ]
    );
    let last: Activity = payload(events_about(&events, &call.name)[2]);
    assert!(
        last.delete_time.is_some(),
        "the ActivityDeleted payload is the deleted activity"
    );
}
db_test!(
    lists_updates_and_deletes_activities,
    lists_updates_and_deletes_activities_on
);
