//! Data-subject requests: ExportContactData returns everything held on a
//! person as JSON; EraseContact removes the person for good, leaving only a
//! ContactErased event.

use crm_proto::contacts::{
    ActivityKind, Channel as ContactChannel, Consent, ConsentStatus, ContactErased,
    EraseContactRequest, ExportContactDataRequest, GetActivityRequest, GetContactRequest,
    ListTimelineRequest, MergeContactsRequest, UndeleteContactRequest, UpdateContactRequest,
};
use crm_testkit::Backend;
use prost_types::FieldMask;
use tonic::Code;

use crate::activities::{activity, log};
use crate::support::*;

async fn exports_a_persons_data_as_json_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let mut subject = person("Philippa", "Quixotic", "philippa.quixotic@example.com");
    subject.phones = vec![phone_number("+44 20 7946 0123")];
    subject.job_title = "Cartographer".into();
    subject.consents = vec![Consent {
        channel: ContactChannel::Email as i32,
        status: ConsentStatus::Withdrawn as i32,
        update_time: Some(timestamp("2024-05-01T12:00:00Z")),
        source: "phone-call".into(),
    }];
    let subject = create(&mut client, subject).await;
    let note = log(
        &mut client,
        activity(ActivityKind::Note, &subject.name, "Unusual request", ""),
    )
    .await;
    create(
        &mut client,
        person("Someone", "Else", "someone.else@example.com"),
    )
    .await;

    let export = client
        .export_contact_data(ExportContactDataRequest {
            name: subject.name.clone(),
        })
        .await
        .must("ExportContactData");
    let json: serde_json::Value =
        serde_json::from_str(&export.json).expect("ExportContactData returns valid JSON");
    assert!(json.is_object(), "a JSON document: {}", export.json);
    for needle in [
        "Philippa",
        "Quixotic",
        "philippa.quixotic@example.com",
        "Cartographer",
        "7946",
        "phone-call",
        "Unusual request",
        note.body.as_str(),
        subject.name.as_str(),
    ] {
        assert!(
            export.json.contains(needle),
            "the export holds {needle:?}: {}",
            export.json
        );
    }
    assert!(
        !export.json.contains("someone.else"),
        "only this person's data"
    );

    client
        .export_contact_data(ExportContactDataRequest {
            name: unknown_name("contacts"),
        })
        .await
        .must_fail_with(Code::NotFound, "ExportContactData of an unknown contact");
    let mut sales = app.client(TENANT, SALES);
    sales
        .export_contact_data(ExportContactDataRequest {
            name: subject.name.clone(),
        })
        .await
        .must_fail_with(Code::PermissionDenied, "ExportContactData by sales");
}
db_test!(
    exports_a_persons_data_as_json,
    exports_a_persons_data_as_json_on
);

async fn erases_a_contact_for_good_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let email = "erasmus.forgettable@example.com";
    let mut subject = person("Erasmus", "Forgettable", email);
    subject.phones = vec![phone_number("+1 555 013 3713")];
    let subject = create(&mut client, subject).await;
    let mut change = subject.clone();
    change.job_title = "Secret Agent".into();
    client
        .update_contact(UpdateContactRequest {
            contact: Some(change),
            update_mask: Some(FieldMask {
                paths: vec!["job_title".into()],
            }),
        })
        .await
        .must("UpdateContact");
    let first = log(
        &mut client,
        activity(ActivityKind::Call, &subject.name, "Erasmus called", ""),
    )
    .await;
    let second = log(
        &mut client,
        activity(ActivityKind::Note, &subject.name, "Erasmus note", ""),
    )
    .await;
    let keeper = create(&mut client, person("Kept", "Person", "kept@example.com")).await;
    let kept_activity = log(
        &mut client,
        activity(ActivityKind::Note, &keeper.name, "Kept note", ""),
    )
    .await;

    let mut sales = app.client(TENANT, SALES);
    sales
        .erase_contact(EraseContactRequest {
            name: subject.name.clone(),
        })
        .await
        .must_fail_with(Code::PermissionDenied, "EraseContact by sales");

    let erased = client
        .erase_contact(EraseContactRequest {
            name: subject.name.clone(),
        })
        .await
        .must("EraseContact");
    assert_eq!(erased.name, subject.name);
    assert_eq!(erased.erased_activity_count, 2);

    client
        .get_contact(GetContactRequest {
            name: subject.name.clone(),
        })
        .await
        .must_fail_with(Code::NotFound, "GetContact after erasure");
    for gone in [&first, &second] {
        client
            .get_activity(GetActivityRequest {
                name: gone.name.clone(),
            })
            .await
            .must_fail_with(
                Code::NotFound,
                "GetActivity of an erased contact's activity",
            );
    }
    client
        .undelete_contact(UndeleteContactRequest {
            name: subject.name.clone(),
        })
        .await
        .must_fail_with(Code::NotFound, "nothing to undelete after erasure");
    client
        .list_timeline(ListTimelineRequest {
            contact: subject.name.clone(),
            ..Default::default()
        })
        .await
        .must_fail_with(Code::NotFound, "ListTimeline after erasure");
    client
        .export_contact_data(ExportContactDataRequest {
            name: subject.name.clone(),
        })
        .await
        .must_fail_with(Code::NotFound, "ExportContactData after erasure");
    let left = list_all(&mut client, "", "", true).await;
    assert_eq!(
        names(&left),
        vec![keeper.name.clone()],
        "only the other contact remains"
    );
    let with_email = list_all(&mut client, &format!("email = \"{email}\""), "", true).await;
    assert!(with_email.is_empty());

    // The event feed: a ContactErased for the subject and nothing personal anywhere.
    let events = app.all_events().await;
    let about = events_about(&events, &subject.name);
    assert_eq!(
        about.iter().map(|e| e.r#type.clone()).collect::<Vec<_>>(),
        vec![event_type("ContactErased")],
        "only the ContactErased event remains for the subject"
    );
    let payload: ContactErased = payload(about[0]);
    assert_eq!(payload.contact, subject.name);
    for gone in [&first, &second] {
        assert!(
            events_about(&events, &gone.name).is_empty(),
            "no event about an erased activity remains"
        );
    }
    for event in &events {
        let bytes = event
            .payload
            .as_ref()
            .map(|p| p.value.as_slice())
            .unwrap_or_default();
        for needle in [email, "Erasmus", "Forgettable", "5550133713"] {
            assert!(
                !contains(bytes, needle.as_bytes()),
                "event {} {} {} still holds {needle:?}",
                event.sequence,
                event.r#type,
                event.subject
            );
        }
    }
    // Other people's events stay.
    assert_eq!(
        events_about(&events, &keeper.name).len(),
        1,
        "the other contact's event stays"
    );
    assert_eq!(events_about(&events, &kept_activity.name).len(), 1);

    client
        .erase_contact(EraseContactRequest {
            name: subject.name.clone(),
        })
        .await
        .must_fail_with(Code::NotFound, "erasing twice");
    if backend == Backend::Postgres {
        assert_eq!(
            tables_holding(&app, "forgettable").await,
            Vec::<String>::new(),
            "no table of the database holds the erased person's name"
        );
        assert!(
            !tables_holding(&app, "kept").await.is_empty(),
            "the scan finds the person kept"
        );
    }
}
db_test!(erases_a_contact_for_good, erases_a_contact_for_good_on);

/// The PostgreSQL tables with a row whose text holds `needle` (any case):
/// every copy the service keeps, search tables included.
async fn tables_holding(app: &TestApp, needle: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = sea_orm::Database::connect(&app.db.url)
        .await
        .expect("connect");
    let tables = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        ))
        .await
        .expect("tables");
    let mut holding = Vec::new();
    for table in tables {
        let name: String = table.try_get("", "name").expect("name");
        let found = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("SELECT count(*) AS n FROM \"{name}\" x WHERE x::text ILIKE $1"),
                [format!("%{needle}%").into()],
            ))
            .await
            .expect("scan")
            .expect("a count");
        if found.try_get::<i64>("", "n").expect("n") > 0 {
            holding.push(name);
        }
    }
    holding
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A merged into B, then B into C: erasing C erases all three, however deep
/// the chain, and the one event left names A and B and fingerprints every
/// address any of them had.
async fn erases_the_whole_merge_chain_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let mut a = person("Ann", "Chain", "ann.chain@example.com");
    a.phones = vec![phone_number("+1 555 014 0001")];
    let a = create(&mut client, a).await;
    let b = create(&mut client, person("Bea", "Chain", "bea.chain@example.com")).await;
    let mut c = person("Cy", "Chain", "cy.chain@example.com");
    c.emails.push(email_address("Cy.Other@example.org"));
    let c = create(&mut client, c).await;
    let keeper = create(
        &mut client,
        person("Kept", "Apart", "kept.apart@example.com"),
    )
    .await;
    let mut activities = Vec::new();
    for (contact, subject) in [(&a, "Ann call"), (&a, "Ann note"), (&b, "Bea note")] {
        let kind = ActivityKind::Note;
        activities.push(log(&mut client, activity(kind, &contact.name, subject, "")).await);
    }
    for (survivor, merged) in [(&b, &a), (&c, &b)] {
        client
            .merge_contacts(MergeContactsRequest {
                survivor: survivor.name.clone(),
                merged: vec![merged.name.clone()],
                etag: String::new(),
            })
            .await
            .must("MergeContacts");
    }

    let erased = client
        .erase_contact(EraseContactRequest {
            name: c.name.clone(),
        })
        .await
        .must("EraseContact of the chain's survivor");
    assert_eq!(erased.erased_activity_count, 3);

    for gone in [&a, &b, &c] {
        client
            .get_contact(GetContactRequest {
                name: gone.name.clone(),
            })
            .await
            .must_fail_with(
                Code::NotFound,
                "GetContact of a contact of the erased chain",
            );
    }
    let left = list_all(&mut client, "", "", true).await;
    assert_eq!(names(&left), vec![keeper.name.clone()]);

    let events = app.all_events().await;
    for gone in [&a, &b] {
        assert!(
            events_about(&events, &gone.name).is_empty(),
            "no event about {} {} remains",
            gone.given_name,
            gone.name
        );
    }
    for gone in &activities {
        assert!(
            events_about(&events, &gone.name).is_empty(),
            "no event about the activity {:?} remains",
            gone.subject
        );
    }
    let about_c = events_about(&events, &c.name);
    assert_eq!(
        about_c.iter().map(|e| e.r#type.clone()).collect::<Vec<_>>(),
        vec![event_type("ContactErased")]
    );
    let erasure: ContactErased = payload(about_c[0]);
    assert_eq!(erasure.contact, c.name);
    assert_eq!(
        sorted(erasure.merged),
        sorted(vec![a.name.clone(), b.name.clone()]),
        "the event names every contact erased with C"
    );
    let expected_emails = [
        "ann.chain@example.com",
        "bea.chain@example.com",
        "cy.chain@example.com",
        "cy.other@example.org",
    ]
    .map(|address| crm_shared::privacy::email_fingerprint(TENANT, address));
    assert_eq!(
        sorted(erasure.email_fingerprints),
        sorted(expected_emails.to_vec()),
        "one fingerprint per address of the chain"
    );
    assert_eq!(
        erasure.phone_fingerprints,
        vec![
            crm_shared::privacy::phone_fingerprint(TENANT, "+15550140001").expect("a phone number")
        ]
    );
    assert_eq!(events_about(&events, &keeper.name).len(), 1);
}
db_test!(
    erases_the_whole_merge_chain,
    erases_the_whole_merge_chain_on
);

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}
