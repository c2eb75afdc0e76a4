//! The audit log: every write leaves an entry naming who, which call and
//! what changed; admins page through it with a filter; an erasure leaves the
//! entries but none of the person's values.

use crm_proto::{
    audit::{AuditEntry, ListAuditEntriesRequest, audit_log_service_client::AuditLogServiceClient},
    contacts::{DeleteContactRequest, EraseContactRequest, UpdateContactRequest},
};
use crm_testkit::Backend;
use prost_types::{FieldMask, Value, value::Kind};

use crate::support::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// `request` carrying a request id and a trace context, as the gateway sends it.
fn traced<T>(request: T, request_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    let metadata = request.metadata_mut();
    metadata.insert("x-request-id", request_id.parse().expect("ASCII"));
    metadata.insert(
        "traceparent",
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01")
            .parse()
            .expect("ASCII"),
    );
    request
}

fn text(value: &Option<Value>) -> Option<&str> {
    match value.as_ref()?.kind.as_ref()? {
        Kind::StringValue(text) => Some(text),
        _ => None,
    }
}

/// The change to `field` in `entry`.
fn change<'a>(entry: &'a AuditEntry, field: &str) -> &'a crm_proto::audit::FieldChange {
    entry
        .changes
        .iter()
        .find(|c| c.field == field)
        .unwrap_or_else(|| {
            panic!(
                "{} records no change to {field}: {entry:?}",
                entry.event_type
            )
        })
}

async fn records_each_write_with_its_call_and_changes_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let created = create(&mut client, person("Ada", "Byron", "ada@example.com")).await;
    let mut edit = created.clone();
    edit.family_name = "Lovelace".into();
    edit.job_title = "Analyst".into();
    let updated = client
        .update_contact(traced(
            UpdateContactRequest {
                contact: Some(edit),
                update_mask: Some(FieldMask {
                    paths: vec!["family_name".into(), "job_title".into()],
                }),
            },
            "req-update-1",
        ))
        .await
        .must("UpdateContact");
    client
        .delete_contact(DeleteContactRequest {
            name: created.name.clone(),
            etag: updated.etag.clone(),
        })
        .await
        .must("DeleteContact");

    let filter = format!("resource = \"{}\"", created.name);
    let entries = audit_entries(app.addr, TENANT, &filter).await;
    let types: Vec<&str> = entries.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "crm.contacts.v1.ContactDeleted",
            "crm.contacts.v1.ContactUpdated",
            "crm.contacts.v1.ContactCreated"
        ],
        "one entry per write, newest first"
    );
    let (deleted, update, create) = (&entries[0], &entries[1], &entries[2]);

    assert_eq!(
        update.method,
        "/crm.contacts.v1.ContactsService/UpdateContact"
    );
    assert_eq!(update.actor, "tester", "the token's subject");
    assert_eq!(update.tenant, TENANT);
    assert_eq!(update.request_id, "req-update-1");
    assert_eq!(update.trace_id, TRACE_ID, "the caller's trace");
    let family = change(update, "family_name");
    assert_eq!(text(&family.before), Some("Byron"));
    assert_eq!(text(&family.after), Some("Lovelace"));
    let title = change(update, "job_title");
    assert_eq!(text(&title.before), None, "no job title before");
    assert_eq!(text(&title.after), Some("Analyst"));
    let fields: Vec<&str> = update.changes.iter().map(|c| c.field.as_str()).collect();
    assert!(
        !fields.contains(&"given_name") && !fields.contains(&"update_time"),
        "only what changed: {fields:?}"
    );

    assert_eq!(
        create.method,
        "/crm.contacts.v1.ContactsService/CreateContact"
    );
    assert_eq!(text(&change(create, "given_name").after), Some("Ada"));
    assert_eq!(text(&change(create, "given_name").before), None);
    assert!(
        change(deleted, "delete_time").after.is_some(),
        "a soft delete sets delete_time"
    );

    // Filters: by changed field, by method; page by page.
    let renamed = audit_entries(app.addr, TENANT, "changed_fields:\"family_name\"").await;
    assert_eq!(renamed.len(), 2, "the create and the rename: {renamed:?}");
    let by_method = audit_entries(
        app.addr,
        TENANT,
        "method = \"/crm.contacts.v1.ContactsService/UpdateContact\" AND request_id = \"req-update-1\"",
    )
    .await;
    assert_eq!(by_method.len(), 1);
    let mut log = AuditLogServiceClient::with_interceptor(app.channel(), bearer_for(TENANT, ADMIN));
    let first = log
        .list_audit_entries(ListAuditEntriesRequest {
            filter: filter.clone(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .must("ListAuditEntries page 1");
    assert_eq!(first.audit_entries.len(), 2);
    let second = log
        .list_audit_entries(ListAuditEntriesRequest {
            filter: filter.clone(),
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .must("ListAuditEntries page 2");
    assert_eq!(second.audit_entries.len(), 1);
    assert_eq!(second.audit_entries[0].id, create.id);
    assert!(second.next_page_token.is_empty());

    // Bad input names its field; a token of another query does not fit.
    let bad = log
        .list_audit_entries(ListAuditEntriesRequest {
            filter: "colour = \"red\"".into(),
            ..Default::default()
        })
        .await;
    assert_invalid_field(
        &bad.expect_err("an unknown field"),
        "filter",
        "unknown field",
    );
    let mismatched = log
        .list_audit_entries(ListAuditEntriesRequest {
            filter: String::new(),
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await;
    assert_invalid_field(
        &mismatched.expect_err("a token of another filter"),
        "page_token",
        "another filter's token",
    );

    // Another tenant's admin sees none of it; a manager may not look.
    assert!(audit_entries(app.addr, OTHER_TENANT, "").await.is_empty());
    let mut manager =
        AuditLogServiceClient::with_interceptor(app.channel(), bearer_for(TENANT, MANAGER));
    let denied = manager
        .list_audit_entries(ListAuditEntriesRequest::default())
        .await
        .expect_err("managers do not read the audit log");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

db_test!(
    records_each_write_with_its_call_and_changes,
    records_each_write_with_its_call_and_changes_on
);

async fn erasure_leaves_entries_without_values_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let subject = create(
        &mut client,
        person("Philippa", "Quixotic", "philippa.quixotic@example.com"),
    )
    .await;
    let mut edit = subject.clone();
    edit.job_title = "Cartographer".into();
    client
        .update_contact(UpdateContactRequest {
            contact: Some(edit),
            update_mask: Some(FieldMask {
                paths: vec!["job_title".into()],
            }),
        })
        .await
        .must("UpdateContact");
    let other = create(&mut client, person("Someone", "Else", "else@example.com")).await;
    client
        .erase_contact(EraseContactRequest {
            name: subject.name.clone(),
        })
        .await
        .must("EraseContact");

    let entries = audit_entries(app.addr, TENANT, "").await;
    let text = format!("{entries:?}").to_lowercase();
    for trace in ["philippa", "quixotic", "cartographer"] {
        assert!(!text.contains(trace), "the audit log still holds {trace:?}");
    }
    let about: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.resource == subject.name)
        .collect();
    let types: Vec<&str> = about.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "crm.contacts.v1.ContactErased",
            "crm.contacts.v1.ContactUpdated",
            "crm.contacts.v1.ContactCreated"
        ],
        "who did what and when stays"
    );
    for entry in &about[1..] {
        assert!(entry.erased, "{} is marked erased", entry.event_type);
        assert!(
            entry
                .changes
                .iter()
                .all(|c| c.before.is_none() && c.after.is_none()),
            "no values left: {entry:?}"
        );
    }
    assert!(
        about[1].changes.iter().any(|c| c.field == "job_title"),
        "the names of the changed fields stay"
    );
    let kept = audit_entries(app.addr, TENANT, &format!("resource = \"{}\"", other.name)).await;
    assert_eq!(text_of_given_name(&kept[0]), Some("Someone".into()));
}

fn text_of_given_name(entry: &AuditEntry) -> Option<String> {
    text(&change(entry, "given_name").after).map(str::to_owned)
}

db_test!(
    erasure_leaves_entries_without_values,
    erasure_leaves_entries_without_values_on
);

/// Entries older than the audit retention window are pruned; younger ones stay.
async fn old_entries_are_pruned_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    create(&mut client, person("Old", "Entry", "")).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let young = create(&mut client, person("Young", "Entry", "")).await;
    let db = crm_shared::db::Database::connect(&app.db.url, 2)
        .await
        .expect("connect");
    let pruned = crm_shared::retention::prune_audit_log(&db, std::time::Duration::from_secs(1))
        .await
        .expect("prune");
    assert_eq!(pruned, 1, "the entry older than the window");
    let left: Vec<String> = audit_entries(app.addr, TENANT, "")
        .await
        .into_iter()
        .map(|e| e.resource)
        .collect();
    assert_eq!(left, [young.name]);
}

db_test!(old_entries_are_pruned, old_entries_are_pruned_on);
