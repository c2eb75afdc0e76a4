//! ImportContacts (bidirectional, per-row outcomes, de-duplication by email)
//! and ExportContacts (the List filter, in chunks).

use std::collections::{HashMap, HashSet};

use crm_proto::contacts::{
    Contact, DeleteContactRequest, ExportContactsRequest, GetContactRequest, ImportContactsRequest,
    ImportOutcome, ImportRowResult, LifecycleStage,
};
use crm_testkit::Backend;
use tonic::{Code, Status};

use crate::support::*;

db_test!(
    concurrent_imports_of_the_same_rows_create_each_once,
    concurrent_imports_on
);

/// Two imports of the same people at once (an operator's resumed import
/// beside the rest of the interrupted one): each email's contact is created
/// once; the other import finds it a duplicate.
async fn concurrent_imports_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let rows = || -> Vec<Contact> {
        (0..1500)
            .map(|i| {
                person(
                    "Twice",
                    &format!("Row{i:04}"),
                    &format!("twice{i}@example.com"),
                )
            })
            .collect()
    };
    let (mut first, mut second) = (app.admin(), app.admin());
    let (a, b) = tokio::join!(import(&mut first, rows()), import(&mut second, rows()));
    let created = a
        .iter()
        .chain(&b)
        .flatten()
        .filter(|r| r.outcome == ImportOutcome::Created as i32)
        .count();
    assert_eq!(
        created, 1500,
        "each person created by one of the two imports"
    );
    assert_eq!(count_contacts(&mut first).await, 1500);
}

/// Streams `rows` into ImportContacts and returns the result batches as they came.
pub async fn import(client: &mut Contacts, rows: Vec<Contact>) -> Vec<Vec<ImportRowResult>> {
    let requests =
        futures_util::stream::iter(rows.into_iter().map(|contact| ImportContactsRequest {
            contact: Some(contact),
        }));
    let mut responses = client
        .import_contacts(requests)
        .await
        .must("ImportContacts");
    let mut batches = Vec::new();
    loop {
        match responses.message().await {
            Ok(Some(batch)) => batches.push(batch.results),
            Ok(None) => return batches,
            Err(status) => panic!(
                "ImportContacts stream failed after {} batches: {:?}: {}",
                batches.len(),
                status.code(),
                status.message()
            ),
        }
    }
}

/// Checks that `batches` hold one result per row 1..=rows, in row order.
pub fn assert_row_order(batches: &[Vec<ImportRowResult>], rows: usize) {
    let all: Vec<i64> = batches.iter().flatten().map(|r| r.row).collect();
    let expected: Vec<i64> = (1..=rows as i64).collect();
    assert_eq!(all.len(), rows, "one result per row");
    assert_eq!(all, expected, "results come in row order, each row once");
}

/// Reads ExportContacts to its end, chunk by chunk.
pub async fn export(
    client: &mut Contacts,
    filter: &str,
    show_deleted: bool,
) -> Result<Vec<Vec<Contact>>, Status> {
    let mut stream = client
        .export_contacts(ExportContactsRequest {
            filter: filter.into(),
            show_deleted,
        })
        .await?
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await? {
        chunks.push(chunk.contacts);
    }
    Ok(chunks)
}

async fn imports_rows_with_outcomes_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let existing = create(
        &mut client,
        person("Existing", "Person", "exists@example.com"),
    )
    .await;

    let mut with_phone = person("New", "Two", "new2@example.com");
    with_phone.phones = vec![phone_number("+1 555 010 2222")];
    let mut bad_phone = person("Bad", "Phone", "badphone@example.com");
    bad_phone.phones = vec![phone_number("12")];
    let rows = vec![
        person("New", "One", "new1@example.com"),
        person("Dup", "Existing", "EXISTS@example.com"),
        person("Bad", "Email", "not-an-email"),
        with_phone,
        person("Dup", "Within", "new1@example.com"),
        bad_phone,
        person(&"x".repeat(1000), "Long", "long@example.com"),
        person("No", "Email", ""),
    ];
    let batches = import(&mut client, rows).await;
    assert_row_order(&batches, 8);
    let results: HashMap<i64, ImportRowResult> =
        batches.into_iter().flatten().map(|r| (r.row, r)).collect();
    let outcome = |row: i64| ImportOutcome::try_from(results[&row].outcome).ok();
    let describe = |row: i64| format!("row {row}: {:?}", results[&row]);

    for row in [1, 4, 8] {
        assert_eq!(
            outcome(row),
            Some(ImportOutcome::Created),
            "{}",
            describe(row)
        );
        assert!(
            is_resource_name(&results[&row].contact, "contacts"),
            "{}",
            describe(row)
        );
        assert!(results[&row].error.is_empty(), "{}", describe(row));
    }
    assert_eq!(
        outcome(2),
        Some(ImportOutcome::Duplicate),
        "{}",
        describe(2)
    );
    assert_eq!(
        results[&2].contact, existing.name,
        "a duplicate names the existing contact"
    );
    assert_eq!(
        outcome(5),
        Some(ImportOutcome::Duplicate),
        "{}",
        describe(5)
    );
    assert_eq!(
        results[&5].contact, results[&1].contact,
        "a row duplicating an earlier row of the same import names that contact"
    );
    for (row, field) in [(3, "emails"), (6, "phones"), (7, "given_name")] {
        assert_eq!(
            outcome(row),
            Some(ImportOutcome::Failed),
            "{}",
            describe(row)
        );
        assert!(
            results[&row].error.contains(field),
            "the error names the field {field}: {}",
            describe(row)
        );
        assert!(results[&row].contact.is_empty(), "{}", describe(row));
    }

    for row in [1, 4, 8] {
        let got = client
            .get_contact(GetContactRequest {
                name: results[&row].contact.clone(),
            })
            .await
            .must("GetContact of an imported contact");
        assert!(got.delete_time.is_none());
    }
    let one = client
        .get_contact(GetContactRequest {
            name: results[&1].contact.clone(),
        })
        .await
        .must("GetContact row 1");
    assert_eq!(
        (one.given_name.as_str(), one.family_name.as_str()),
        ("New", "One")
    );
    assert_eq!(
        count_contacts(&mut client).await,
        4,
        "1 existing + 3 created, nothing else"
    );

    let events = app.all_events().await;
    for row in [1, 4, 8] {
        let about = events_about(&events, &results[&row].contact);
        assert_eq!(about.len(), 1, "{}", describe(row));
        assert_eq!(about[0].r#type, event_type("ContactCreated"));
    }
    let created_events = events
        .iter()
        .filter(|e| e.r#type == event_type("ContactCreated"))
        .count();
    assert_eq!(created_events, 4, "one ContactCreated per contact");
}
db_test!(imports_rows_with_outcomes, imports_rows_with_outcomes_on);

async fn imports_two_thousand_rows_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let rows: Vec<Contact> = (0..2000)
        .map(|i| {
            person(
                "Bulk",
                &format!("Row{i:04}"),
                &format!("bulk{i}@example.com"),
            )
        })
        .collect();
    let batches = import(&mut client, rows).await;
    assert_row_order(&batches, 2000);
    let results: Vec<&ImportRowResult> = batches.iter().flatten().collect();
    let failed: Vec<_> = results
        .iter()
        .filter(|r| r.outcome != ImportOutcome::Created as i32)
        .take(5)
        .collect();
    assert!(failed.is_empty(), "every row is created: {failed:?}");
    let created: HashSet<&str> = results.iter().map(|r| r.contact.as_str()).collect();
    assert_eq!(created.len(), 2000, "2000 distinct contacts");

    let listed = list_all(&mut client, "", "", true).await;
    assert_eq!(listed.len(), 2000);
    let listed: HashSet<String> = names(&listed).into_iter().collect();
    assert!(
        created.iter().all(|n| listed.contains(*n)),
        "every reported contact is listed"
    );
    let page = client
        .list_contacts(crm_proto::contacts::ListContactsRequest {
            include_total_size: true,
            ..Default::default()
        })
        .await
        .must("ListContacts");
    assert_eq!(page.total_size, 2000);

    let events = app.all_events().await;
    let subjects: HashSet<&str> = events
        .iter()
        .filter(|e| e.r#type == event_type("ContactCreated"))
        .map(|e| e.subject.as_str())
        .collect();
    assert_eq!(subjects, created, "one ContactCreated per imported contact");

    // Importing the same rows again finds every one a duplicate.
    let again: Vec<Contact> = (0..2000)
        .map(|i| {
            person(
                "Bulk",
                &format!("Again{i:04}"),
                &format!("BULK{i}@example.com"),
            )
        })
        .collect();
    let batches = import(&mut client, again).await;
    assert_row_order(&batches, 2000);
    assert!(
        batches
            .iter()
            .flatten()
            .all(|r| r.outcome == ImportOutcome::Duplicate as i32),
        "a second import of the same emails only finds duplicates"
    );
    assert_eq!(
        count_contacts(&mut client).await,
        2000,
        "nothing new was written"
    );
}
db_test!(imports_two_thousand_rows, imports_two_thousand_rows_on);

async fn exports_with_the_list_filter_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let rows: Vec<Contact> = (0..1200)
        .map(|i| {
            let mut c = person(
                "Export",
                &format!("Row{i:04}"),
                &format!("export{i}@example.com"),
            );
            c.lifecycle_stage = if i % 2 == 0 {
                LifecycleStage::Customer as i32
            } else {
                LifecycleStage::Lead as i32
            };
            if i % 3 == 0 {
                c.tags = vec!["vip".into()];
            }
            c
        })
        .collect();
    let batches = import(&mut client, rows).await;
    assert_row_order(&batches, 1200);
    let customers = list_all(&mut client, r#"lifecycle_stage = "CUSTOMER""#, "", false).await;
    assert_eq!(customers.len(), 600);
    // Soft-delete three customers.
    for gone in &customers[..3] {
        client
            .delete_contact(DeleteContactRequest {
                name: gone.name.clone(),
                etag: String::new(),
            })
            .await
            .must("DeleteContact");
    }

    for (filter, show_deleted) in [
        (r#"lifecycle_stage = "CUSTOMER""#, false),
        (r#"lifecycle_stage = "CUSTOMER""#, true),
        (r#"tags:"vip" AND lifecycle_stage = "LEAD""#, false),
        ("", false),
        (r#"family_name = "Row0042""#, false),
    ] {
        let chunks = export(&mut client, filter, show_deleted)
            .await
            .unwrap_or_else(|s| {
                panic!("ExportContacts {filter:?}: {:?}: {}", s.code(), s.message())
            });
        assert!(
            chunks.iter().all(|c| c.len() <= 500),
            "chunks of at most 500: {:?}",
            chunks.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let exported: Vec<String> = chunks.iter().flat_map(|c| names(c)).collect();
        let unique: HashSet<String> = exported.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            exported.len(),
            "no contact exported twice ({filter:?})"
        );
        let listed: HashSet<String> = names(&list_all(&mut client, filter, "", show_deleted).await)
            .into_iter()
            .collect();
        assert_eq!(
            unique, listed,
            "Export and List agree on {filter:?} show_deleted={show_deleted}"
        );
        if listed.len() > 500 {
            assert!(
                chunks.len() >= 2,
                "{} contacts need several chunks",
                listed.len()
            );
        }
    }
    let everything: usize = export(&mut client, "", false)
        .await
        .expect("export")
        .iter()
        .map(Vec::len)
        .sum();
    assert_eq!(everything, 1197);

    match export(&mut client, "lifecycle_stage = ", false).await {
        Ok(chunks) => panic!(
            "an unparsable export filter was accepted: {} chunks",
            chunks.len()
        ),
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
            assert_invalid_field(&status, "filter", "ExportContacts with a bad filter");
        }
    }
}
db_test!(
    exports_with_the_list_filter,
    exports_with_the_list_filter_on
);

/// The planner's statistics are refreshed after a bulk load, by the service
/// and off the request path: PostgreSQL records a manual ANALYZE in
/// `last_analyze` (autovacuum's own goes to `last_autoanalyze`).
#[tokio::test]
async fn an_import_refreshes_statistics_in_the_background() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let mut client = app.admin();
    let rows = (0..600)
        .map(|i| person("Bulk", &format!("B{i}"), &format!("bulk{i}@stats.example")))
        .collect();
    import(&mut client, rows).await;
    let db = sea_orm::Database::connect(&app.db.url)
        .await
        .expect("connect");
    eventually("ANALYZE has run on contacts", async || {
        use sea_orm::ConnectionTrait;
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'contacts'",
            ))
            .await
            .expect("pg_stat_user_tables")
            .expect("a row for contacts");
        row.try_get_by_index::<bool>(0).expect("a bool")
    })
    .await;
}
