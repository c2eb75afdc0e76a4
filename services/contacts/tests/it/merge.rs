//! MergeContacts: the survivor keeps the union of emails, phones, tags and
//! activities; the merged contacts are soft-deleted and redirect to it.

use std::collections::HashSet;

use crm_proto::contacts::{
    ActivityKind, ContactMerged, FindDuplicatesRequest, GetActivityRequest, GetContactRequest,
    ListTimelineRequest, MergeContactsRequest,
};
use crm_testkit::Backend;
use tonic::Code;

use crate::activities::{activity, log};
use crate::support::*;

fn lower_set<'a>(values: impl Iterator<Item = &'a String>) -> HashSet<String> {
    values.map(|v| v.to_lowercase()).collect()
}

async fn merges_into_the_survivor_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let mut survivor = person("Ada", "Lovelace", "ada@example.com");
    survivor.phones = vec![phone_number("+1 (555) 010-0000")];
    survivor.tags = vec!["vip".into()];
    let survivor = create(&mut client, survivor).await;
    let mut merged = person("Ada", "King", "ADA@example.com");
    merged.emails.push(email_address("countess@example.org"));
    merged.phones = vec![
        phone_number("+15550100000"),
        phone_number("+44 20 7946 0958"),
    ];
    merged.tags = vec!["vip".into(), "math".into()];
    let merged = create(&mut client, merged).await;
    let mut third = person("Augusta", "Byron", "augusta@example.net");
    third.tags = vec!["poetry".into()];
    let third = create(&mut client, third).await;
    let bystander = create(&mut client, person("Alan", "Turing", "alan@example.com")).await;

    let a1 = log(
        &mut client,
        activity(
            ActivityKind::Note,
            &survivor.name,
            "survivor note",
            "2024-01-01T00:00:00Z",
        ),
    )
    .await;
    let a2 = log(
        &mut client,
        activity(
            ActivityKind::Call,
            &merged.name,
            "merged call",
            "2024-01-02T00:00:00Z",
        ),
    )
    .await;
    let a3 = log(
        &mut client,
        activity(
            ActivityKind::Email,
            &third.name,
            "third email",
            "2024-01-03T00:00:00Z",
        ),
    )
    .await;

    let before = client
        .find_duplicates(FindDuplicatesRequest::default())
        .await
        .must("FindDuplicates before the merge");
    assert!(
        before
            .pairs
            .iter()
            .any(|p| p.duplicate == merged.name || p.contact == merged.name),
        "the two Adas are duplicates before the merge"
    );

    let result = client
        .merge_contacts(MergeContactsRequest {
            survivor: survivor.name.clone(),
            merged: vec![merged.name.clone(), third.name.clone()],
            etag: survivor.etag.clone(),
        })
        .await
        .must("MergeContacts");
    assert_eq!(result.name, survivor.name);
    assert_eq!(result.given_name, "Ada");
    assert_eq!(
        result.family_name, "Lovelace",
        "the survivor keeps its own fields"
    );
    assert!(result.delete_time.is_none());
    let emails = lower_set(result.emails.iter().map(|e| &e.address));
    assert_eq!(
        emails,
        HashSet::from([
            "ada@example.com".to_owned(),
            "countess@example.org".to_owned(),
            "augusta@example.net".to_owned()
        ]),
        "the union of emails, without case duplicates"
    );
    assert_eq!(
        result.emails.len(),
        3,
        "no email twice: {:?}",
        result.emails
    );
    assert_eq!(
        result.emails.iter().filter(|e| e.primary).count(),
        1,
        "one primary email"
    );
    let primary = result
        .emails
        .iter()
        .find(|e| e.primary)
        .expect("a primary email");
    assert_eq!(
        primary.address, "ada@example.com",
        "the survivor's primary stays primary"
    );
    let phones: HashSet<String> = result
        .phones
        .iter()
        .map(|p| p.normalized_number.clone())
        .collect();
    assert_eq!(
        phones,
        HashSet::from(["+15550100000".to_owned(), "+442079460958".to_owned()]),
        "the union of phones, by normalised number"
    );
    assert_eq!(
        result.phones.len(),
        2,
        "no phone twice: {:?}",
        result.phones
    );
    let tags: HashSet<String> = result.tags.iter().cloned().collect();
    assert_eq!(
        tags,
        HashSet::from(["vip".to_owned(), "math".to_owned(), "poetry".to_owned()])
    );
    assert_eq!(result.tags.len(), 3, "no tag twice");
    assert_ne!(result.etag, survivor.etag);

    // The activities moved to the survivor.
    let timeline = client
        .list_timeline(ListTimelineRequest {
            contact: survivor.name.clone(),
            ..Default::default()
        })
        .await
        .must("ListTimeline of the survivor");
    let subjects: Vec<String> = timeline
        .activities
        .iter()
        .map(|a| a.subject.clone())
        .collect();
    assert_eq!(
        subjects,
        vec!["third email", "merged call", "survivor note"]
    );
    for moved in [&a1, &a2, &a3] {
        let got = client
            .get_activity(GetActivityRequest {
                name: moved.name.clone(),
            })
            .await
            .must("GetActivity after the merge");
        assert_eq!(
            got.contact, survivor.name,
            "{} belongs to the survivor",
            moved.subject
        );
    }

    // The merged contacts redirect.
    for gone in [&merged, &third] {
        let got = client
            .get_contact(GetContactRequest {
                name: gone.name.clone(),
            })
            .await
            .must("GetContact of a merged contact");
        assert_eq!(
            got.merged_into, survivor.name,
            "merged_into names the survivor"
        );
        assert!(
            got.delete_time.is_some(),
            "a merged contact is soft-deleted"
        );
    }
    let live: HashSet<String> = names(&list_all(&mut client, "", "", false).await)
        .into_iter()
        .collect();
    assert_eq!(
        live,
        HashSet::from([survivor.name.clone(), bystander.name.clone()])
    );

    let after = client
        .find_duplicates(FindDuplicatesRequest::default())
        .await
        .must("FindDuplicates after the merge");
    for gone in [&merged, &third] {
        assert!(
            !after
                .pairs
                .iter()
                .any(|p| p.contact == gone.name || p.duplicate == gone.name),
            "a merged contact is no longer reported: {:?}",
            after.pairs
        );
    }

    let events = app.all_events().await;
    let merge_events: Vec<_> = events
        .iter()
        .filter(|e| e.r#type == event_type("ContactMerged"))
        .collect();
    assert_eq!(merge_events.len(), 1, "one ContactMerged event");
    assert_eq!(merge_events[0].subject, survivor.name);
    let payload: ContactMerged = payload(merge_events[0]);
    assert_eq!(payload.survivor, survivor.name);
    let merged_names: HashSet<String> = payload.merged.into_iter().collect();
    assert_eq!(
        merged_names,
        HashSet::from([merged.name.clone(), third.name.clone()])
    );
}
db_test!(merges_into_the_survivor, merges_into_the_survivor_on);

async fn merge_refuses_bad_requests_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let survivor = create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;
    let other = create(&mut client, person("Ada", "King", "ada@example.com")).await;

    // A stale etag: nothing changes.
    let mut change = survivor.clone();
    change.job_title = "Changed".into();
    client
        .update_contact(crm_proto::contacts::UpdateContactRequest {
            contact: Some(change),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["job_title".into()],
            }),
        })
        .await
        .must("UpdateContact");
    client
        .merge_contacts(MergeContactsRequest {
            survivor: survivor.name.clone(),
            merged: vec![other.name.clone()],
            etag: survivor.etag.clone(),
        })
        .await
        .must_fail_with(Code::Aborted, "MergeContacts with a stale etag");
    let untouched = client
        .get_contact(GetContactRequest {
            name: other.name.clone(),
        })
        .await
        .must("GetContact");
    assert!(
        untouched.merged_into.is_empty() && untouched.delete_time.is_none(),
        "nothing merged"
    );

    let cases: Vec<(&str, Vec<String>)> = vec![
        ("nothing to merge", vec![]),
        (
            "merging the survivor into itself",
            vec![survivor.name.clone()],
        ),
        (
            "more than 20",
            (0..21).map(|_| unknown_name("contacts")).collect(),
        ),
        ("a malformed name", vec!["contacts/xyz".into()]),
    ];
    for (what, merged) in cases {
        let status = client
            .merge_contacts(MergeContactsRequest {
                survivor: survivor.name.clone(),
                merged,
                etag: String::new(),
            })
            .await
            .must_fail(what);
        assert_invalid_field(&status, "merged", what);
    }
    client
        .merge_contacts(MergeContactsRequest {
            survivor: survivor.name.clone(),
            merged: vec![unknown_name("contacts")],
            etag: String::new(),
        })
        .await
        .must_fail_with(Code::NotFound, "merging an unknown contact");
    client
        .merge_contacts(MergeContactsRequest {
            survivor: unknown_name("contacts"),
            merged: vec![other.name.clone()],
            etag: String::new(),
        })
        .await
        .must_fail_with(Code::NotFound, "merging into an unknown survivor");
    assert_eq!(
        list_all(&mut client, "", "", false).await.len(),
        2,
        "nothing was merged"
    );
}
db_test!(merge_refuses_bad_requests, merge_refuses_bad_requests_on);

/// What a survivor's field ends as and what an update wrote to it.
struct RacedUpdate {
    field: &'static str,
    value: String,
    outcome: Result<(), tonic::Status>,
}

/// Sets `field` of `name` to `value`, without an etag.
async fn update_field(
    mut client: Contacts,
    name: String,
    field: &'static str,
    value: String,
) -> RacedUpdate {
    let mut contact = crm_proto::contacts::Contact {
        name,
        ..Default::default()
    };
    match field {
        "job_title" => contact.job_title.clone_from(&value),
        "owner" => contact.owner.clone_from(&value),
        _ => contact.source.clone_from(&value),
    }
    let outcome = client
        .update_contact(crm_proto::contacts::UpdateContactRequest {
            contact: Some(contact),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![field.into()],
            }),
        })
        .await
        .map(drop);
    RacedUpdate {
        field,
        value,
        outcome,
    }
}

/// UpdateContact calls raced against a merge into the same survivor: every
/// update that answered OK is in the survivor afterwards. The merged contacts
/// hold other values for the same fields, which a merge that read the
/// survivor before the update and wrote it after would put back.
async fn a_merge_never_overwrites_a_concurrent_update_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let mut merges_aborted = 0;
    for round in 0..30 {
        let survivor = create(&mut client, person("Sur", &format!("Vivor{round}"), "")).await;
        let mut merged = Vec::new();
        for i in 0..6 {
            let mut contact = person("Mer", &format!("Ged{round}x{i}"), "");
            contact.job_title = "merged title".into();
            contact.owner = "merged-owner".into();
            contact.source = "merged-source".into();
            merged.push(create(&mut client, contact).await.name);
        }
        let merge = tokio::spawn({
            let mut client = app.admin();
            let request = MergeContactsRequest {
                survivor: survivor.name.clone(),
                merged: merged.clone(),
                etag: String::new(),
            };
            async move { client.merge_contacts(request).await }
        });
        let updates: Vec<_> = ["job_title", "owner", "source"]
            .into_iter()
            .map(|field| {
                let value = format!("updated-{field}-{round}");
                tokio::spawn(update_field(
                    app.admin(),
                    survivor.name.clone(),
                    field,
                    value,
                ))
            })
            .collect();
        let merge = merge.await.expect("the merge task");
        let mut finished = Vec::new();
        for update in updates {
            finished.push(update.await.expect("an update task"));
        }
        let stored = client
            .get_contact(GetContactRequest {
                name: survivor.name.clone(),
            })
            .await
            .must("GetContact of the survivor");
        for update in finished {
            let Ok(()) = update.outcome else {
                let status = update.outcome.unwrap_err();
                assert_eq!(status.code(), Code::Aborted, "{}", status.message());
                continue;
            };
            let field = match update.field {
                "job_title" => &stored.job_title,
                "owner" => &stored.owner,
                _ => &stored.source,
            };
            assert_eq!(
                field,
                &update.value,
                "round {round}: the update of {} answered OK and was lost (merge: {:?})",
                update.field,
                merge.as_ref().map(|_| ()).map_err(|s| s.code())
            );
        }
        if let Err(status) = merge {
            assert_eq!(status.code(), Code::Aborted, "{}", status.message());
            merges_aborted += 1;
            for name in &merged {
                let untouched = client
                    .get_contact(GetContactRequest { name: name.clone() })
                    .await
                    .must("GetContact of a contact an aborted merge named");
                assert!(
                    untouched.merged_into.is_empty() && untouched.delete_time.is_none(),
                    "an aborted merge writes nothing"
                );
            }
        }
    }
    eprintln!("{backend:?}: {merges_aborted} of 30 merges lost the race and were ABORTED");
}
db_test!(
    a_merge_never_overwrites_a_concurrent_update,
    a_merge_never_overwrites_a_concurrent_update_on
);

/// `count` custom fields named `{prefix}_{i}`.
fn custom_fields(prefix: &str, count: usize) -> prost_types::Struct {
    prost_types::Struct {
        fields: (0..count)
            .map(|i| {
                let value = prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(format!("v{i}"))),
                };
                (format!("{prefix}_{i}"), value)
            })
            .collect(),
    }
}

/// Two contacts of 60 custom fields each would make a survivor of 120, past
/// the limit of 100 that every later update of it would then fail on: the
/// merge is refused and writes nothing.
async fn a_merge_past_the_custom_field_limit_is_refused_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let mut survivor = person("Ada", "Lovelace", "ada@example.com");
    survivor.custom_fields = Some(custom_fields("mine", 60));
    let survivor = create(&mut client, survivor).await;
    let mut other = person("Ada", "King", "countess@example.org");
    other.custom_fields = Some(custom_fields("theirs", 60));
    let other = create(&mut client, other).await;

    let status = client
        .merge_contacts(MergeContactsRequest {
            survivor: survivor.name.clone(),
            merged: vec![other.name.clone()],
            etag: String::new(),
        })
        .await
        .must_fail_with(Code::FailedPrecondition, "a merge to 120 custom fields");
    assert!(
        status.message().contains("custom_fields") && status.message().contains("100"),
        "the refusal names the field and the limit: {}",
        status.message()
    );

    for (contact, fields) in [(&survivor, 60), (&other, 60)] {
        let stored = client
            .get_contact(GetContactRequest {
                name: contact.name.clone(),
            })
            .await
            .must("GetContact after the refused merge");
        assert_eq!(stored.etag, contact.etag, "a refused merge writes nothing");
        assert!(stored.merged_into.is_empty() && stored.delete_time.is_none());
        let stored_fields = stored.custom_fields.map_or(0, |s| s.fields.len());
        assert_eq!(stored_fields, fields);
    }
    let events = app.all_events().await;
    assert!(
        !events
            .iter()
            .any(|e| e.r#type == event_type("ContactMerged")),
        "no merge was announced"
    );
}
db_test!(
    a_merge_past_the_custom_field_limit_is_refused,
    a_merge_past_the_custom_field_limit_is_refused_on
);
