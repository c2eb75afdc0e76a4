//! Contacts: create/get, list with filter, order and paging, update masks,
//! etags, soft delete, request_id idempotency and BatchGet.

use std::collections::{BTreeMap, HashSet};

use crm_proto::{
    common::PostalAddress,
    contacts::{
        BatchGetContactsRequest, Channel as ContactChannel, Consent, ConsentStatus, Contact,
        CreateContactRequest, DeleteContactRequest, GetContactRequest, LifecycleStage,
        ListContactsRequest, UndeleteContactRequest, UpdateContactRequest,
        contacts_service_client::ContactsServiceClient,
    },
};
use crm_testkit::Backend;
use prost_types::{FieldMask, Struct, Value, value::Kind};
use sea_orm::ConnectionTrait;
use tonic::Code;

use crate::support::*;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn full_contact() -> Contact {
    let mut custom = Struct::default();
    custom.fields.insert(
        "shoe_size".into(),
        Value {
            kind: Some(Kind::NumberValue(42.0)),
        },
    );
    custom.fields.insert(
        "nickname".into(),
        Value {
            kind: Some(Kind::StringValue("Countess".into())),
        },
    );
    Contact {
        // Output-only and name fields are ignored on create.
        name: "contacts/chosen-by-client".into(),
        create_time: Some(timestamp("2001-01-01T00:00:00Z")),
        merged_into: "contacts/whatever".into(),
        given_name: "Ada".into(),
        family_name: "Lovelace".into(),
        emails: vec![
            email_address("ada@example.com"),
            email_address("ada.home@example.org"),
        ],
        phones: vec![phone_number("+1 (555) 010-0000")],
        job_title: "Analyst".into(),
        address: Some(PostalAddress {
            address_lines: vec!["12 St James's Square".into()],
            locality: "London".into(),
            administrative_area: String::new(),
            postal_code: "SW1Y 4JH".into(),
            region_code: "GB".into(),
        }),
        lifecycle_stage: LifecycleStage::Customer as i32,
        owner: "owner-1".into(),
        source: "referral".into(),
        tags: vec!["vip".into(), "math".into()],
        custom_fields: Some(custom),
        consents: vec![Consent {
            channel: ContactChannel::Email as i32,
            status: ConsentStatus::Granted as i32,
            update_time: None,
            source: "web-form:newsletter".into(),
        }],
        ..Default::default()
    }
}

async fn creates_and_gets_a_contact_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let created = create(&mut client, full_contact()).await;

    assert!(
        is_resource_name(&created.name, "contacts"),
        "name: {}",
        created.name
    );
    assert_eq!(created.given_name, "Ada");
    assert_eq!(created.family_name, "Lovelace");
    assert_eq!(
        created.display_name, "Ada Lovelace",
        "display_name defaults to given family"
    );
    assert_eq!(created.emails.len(), 2);
    assert_eq!(created.emails[0].address, "ada@example.com");
    assert!(
        created.emails[0].primary,
        "the first email is made primary when none is"
    );
    assert!(!created.emails[1].primary, "at most one email is primary");
    assert_eq!(created.phones.len(), 1);
    assert_eq!(
        created.phones[0].number, "+1 (555) 010-0000",
        "the number is kept as given"
    );
    assert_eq!(created.phones[0].normalized_number, "+15550100000");
    assert_eq!(created.job_title, "Analyst");
    assert_eq!(created.lifecycle_stage, LifecycleStage::Customer as i32);
    assert_eq!(created.owner, "owner-1");
    assert_eq!(created.source, "referral");
    let tags: HashSet<_> = created.tags.iter().map(String::as_str).collect();
    assert_eq!(tags, HashSet::from(["vip", "math"]));
    let custom = created.custom_fields.clone().expect("custom_fields");
    assert_eq!(
        custom.fields.get("shoe_size").and_then(|v| v.kind.clone()),
        Some(Kind::NumberValue(42.0))
    );
    assert_eq!(
        custom.fields.get("nickname").and_then(|v| v.kind.clone()),
        Some(Kind::StringValue("Countess".into()))
    );
    assert_eq!(created.consents.len(), 1);
    assert_eq!(created.consents[0].status, ConsentStatus::Granted as i32);
    assert!(
        created.consents[0].update_time.is_some(),
        "consent time defaults to now"
    );
    let address = created.address.clone().expect("address");
    assert_eq!(address.locality, "London");
    assert_eq!(address.region_code, "GB");
    let create_time = created.create_time.expect("create_time");
    assert!(
        create_time.seconds > timestamp("2020-01-01T00:00:00Z").seconds,
        "server time"
    );
    assert!(created.update_time.is_some(), "update_time");
    assert!(created.delete_time.is_none(), "a new contact is live");
    assert!(created.merged_into.is_empty(), "merged_into is output only");
    assert!(!created.etag.is_empty(), "etag");

    let got = client
        .get_contact(GetContactRequest {
            name: created.name.clone(),
        })
        .await
        .must("GetContact");
    assert_eq!(
        got, created,
        "GetContact returns what CreateContact returned"
    );

    // An explicit display name is kept.
    let mut named = person("Grace", "Hopper", "grace@example.com");
    named.display_name = "Amazing Grace".into();
    let named = create(&mut client, named).await;
    assert_eq!(named.display_name, "Amazing Grace");
}
db_test!(creates_and_gets_a_contact, creates_and_gets_a_contact_on);

async fn get_unknown_or_malformed_name_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    client
        .get_contact(GetContactRequest {
            name: unknown_name("contacts"),
        })
        .await
        .must_fail_with(Code::NotFound, "GetContact of an unknown id");
    for bad in [
        "contacts/not-a-uuid",
        "companies/0190a0a0-0000-7000-8000-000000000000",
        "",
    ] {
        let status = client
            .get_contact(GetContactRequest { name: bad.into() })
            .await
            .must_fail(&format!("GetContact {bad:?}"));
        assert_invalid_field(&status, "name", &format!("GetContact {bad:?}"));
    }
}
db_test!(
    get_unknown_or_malformed_name,
    get_unknown_or_malformed_name_on
);

/// Six contacts with varied fields for the filter tests.
async fn seed_for_filters(client: &mut Contacts) -> BTreeMap<&'static str, Contact> {
    let mut out = BTreeMap::new();
    #[allow(clippy::type_complexity)]
    let rows: [(&str, &str, &str, LifecycleStage, &[&str], &str, &str, &str); 6] = [
        (
            "ada",
            "Lovelace",
            "ada@example.com",
            LifecycleStage::Customer,
            &["vip"],
            "Analyst",
            "owner-1",
            "referral",
        ),
        (
            "charles",
            "Babbage",
            "charles@example.com",
            LifecycleStage::Lead,
            &["vip", "inventor"],
            "Engineer",
            "owner-2",
            "web-form",
        ),
        (
            "grace",
            "Hopper",
            "grace@example.com",
            LifecycleStage::Customer,
            &[],
            "Admiral",
            "owner-1",
            "import",
        ),
        (
            "alan",
            "Turing",
            "alan@example.com",
            LifecycleStage::Lead,
            &["math"],
            "Engineer",
            "owner-2",
            "referral",
        ),
        (
            "edsger",
            "Dijkstra",
            "edsger@example.com",
            LifecycleStage::Subscriber,
            &["vipish"],
            "Professor",
            "owner-3",
            "import",
        ),
        (
            "barbara",
            "Lovelace",
            "barbara@example.com",
            LifecycleStage::Lead,
            &[],
            "Engineer",
            "owner-3",
            "web-form",
        ),
    ];
    for (given, family, email, stage, tags, title, owner, source) in rows {
        let mut c = person(&capitalize(given), family, email);
        c.lifecycle_stage = stage as i32;
        c.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        c.job_title = title.into();
        c.owner = owner.into();
        c.source = source.into();
        if given == "alan" {
            c.phones = vec![phone_number("+15550100001")];
        }
        out.insert(given, create(client, c).await);
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

async fn lists_with_filters_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let seeded = seed_for_filters(&mut client).await;
    let name = |key: &str| seeded[key].name.clone();
    let set = |keys: &[&str]| keys.iter().map(|k| name(k)).collect::<HashSet<_>>();

    let cases: Vec<(&str, HashSet<String>)> = vec![
        (
            "",
            set(&["ada", "charles", "grace", "alan", "edsger", "barbara"]),
        ),
        (r#"lifecycle_stage = "CUSTOMER""#, set(&["ada", "grace"])),
        (r#"lifecycle_stage = "customer""#, set(&["ada", "grace"])),
        (
            r#"lifecycle_stage = "LEAD""#,
            set(&["charles", "alan", "barbara"]),
        ),
        (
            r#"lifecycle_stage != "LEAD""#,
            set(&["ada", "grace", "edsger"]),
        ),
        (r#"tags:"vip""#, set(&["ada", "charles"])),
        (r#"email = "grace@example.com""#, set(&["grace"])),
        (r#"given_name = "Ada""#, set(&["ada"])),
        (r#"family_name = "Lovelace""#, set(&["ada", "barbara"])),
        (r#"display_name = "Alan Turing""#, set(&["alan"])),
        (
            r#"family_name = "Lovelace" AND lifecycle_stage = "LEAD""#,
            set(&["barbara"]),
        ),
        (
            r#"job_title = "Engineer""#,
            set(&["charles", "alan", "barbara"]),
        ),
        (
            r#"job_title = "Engineer" AND owner = "owner-2""#,
            set(&["charles", "alan"]),
        ),
        (
            r#"owner = "owner-3" OR owner = "owner-1""#,
            set(&["ada", "grace", "edsger", "barbara"]),
        ),
        (r#"source = "import""#, set(&["grace", "edsger"])),
        (r#"phone = "+15550100001""#, set(&["alan"])),
        (
            r#"create_time > "2000-01-01T00:00:00Z""#,
            set(&["ada", "charles", "grace", "alan", "edsger", "barbara"]),
        ),
        (r#"create_time < "2000-01-01T00:00:00Z""#, set(&[])),
        (r#"update_time > "2100-01-01T00:00:00Z""#, set(&[])),
        (
            r#"NOT lifecycle_stage = "LEAD" AND tags:"vip""#,
            set(&["ada"]),
        ),
    ];
    for (filter, expected) in cases {
        let page = client
            .list_contacts(ListContactsRequest {
                include_total_size: true,
                filter: filter.into(),
                ..Default::default()
            })
            .await
            .must(&format!("ListContacts filter={filter}"));
        let got: HashSet<String> = names(&page.contacts).into_iter().collect();
        assert_eq!(got, expected, "filter {filter}");
        assert_eq!(
            page.total_size as usize,
            expected.len(),
            "total_size for filter {filter}"
        );
        assert!(
            page.next_page_token.is_empty(),
            "one page for filter {filter}"
        );
    }

    // Filtering on company.
    let company = crate::companies::create_company(&mut client, "Analytical Engines").await;
    let mut worker = person("Mary", "Somerville", "mary@example.com");
    worker.company = company.name.clone();
    let worker = create(&mut client, worker).await;
    let filter = format!("company = \"{}\"", company.name);
    let got = list_all(&mut client, &filter, "", false).await;
    assert_eq!(names(&got), vec![worker.name], "filter {filter}");
}
db_test!(lists_with_filters, lists_with_filters_on);

async fn orders_and_pages_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let given = ["Gus", "Ann", "Fay", "Bea", "Eve", "Cat", "Dan"];
    let mut created = Vec::new();
    for (i, g) in given.iter().enumerate() {
        let family = if i % 2 == 0 { "Even" } else { "Odd" };
        created.push(create(&mut client, person(g, family, &format!("{g}@example.com"))).await);
    }

    // Default order: create_time desc.
    let default_order = list_all(&mut client, "", "", false).await;
    let mut newest_first = names(&created);
    newest_first.reverse();
    assert_eq!(
        names(&default_order),
        newest_first,
        "the default order is create_time desc"
    );
    let by_create = list_all(&mut client, "", "create_time", false).await;
    assert_eq!(names(&by_create), names(&created), "create_time ascending");

    let given_of = |cs: &[Contact]| cs.iter().map(|c| c.given_name.clone()).collect::<Vec<_>>();
    let mut sorted: Vec<String> = given.iter().map(|g| (*g).to_owned()).collect();
    sorted.sort();
    let asc = list_all(&mut client, "", "given_name", false).await;
    assert_eq!(given_of(&asc), sorted, "order_by given_name");
    let desc = list_all(&mut client, "", "given_name desc", false).await;
    let mut reversed = sorted.clone();
    reversed.reverse();
    assert_eq!(given_of(&desc), reversed, "order_by given_name desc");
    let by_email = list_all(&mut client, "", "email", false).await;
    assert_eq!(given_of(&by_email), sorted, "order_by email");
    let by_display = list_all(&mut client, "", "display_name desc", false).await;
    assert_eq!(
        given_of(&by_display),
        reversed,
        "order_by display_name desc"
    );

    // Two keys: family_name, then given_name desc.
    let two_keys = list_all(&mut client, "", "family_name, given_name desc", false).await;
    let mut expected: Vec<(String, String)> = created
        .iter()
        .map(|c| (c.family_name.clone(), c.given_name.clone()))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let got: Vec<(String, String)> = two_keys
        .iter()
        .map(|c| (c.family_name.clone(), c.given_name.clone()))
        .collect();
    assert_eq!(got, expected, "order_by family_name, given_name desc");

    // Pages of 3 in given_name order: 3 + 3 + 1, the same sequence as one page.
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_contacts(ListContactsRequest {
                include_total_size: true,
                page_size: 3,
                page_token: token.clone(),
                order_by: "given_name".into(),
                ..Default::default()
            })
            .await
            .must("ListContacts page");
        pages += 1;
        assert_eq!(page.total_size, 7, "total_size on every page");
        assert!(page.contacts.len() <= 3, "at most page_size contacts");
        paged.extend(page.contacts);
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(pages < 10, "paging does not end");
        token = page.next_page_token;
    }
    assert_eq!(pages, 3, "7 contacts in pages of 3");
    assert_eq!(
        given_of(&paged),
        sorted,
        "pages concatenate to the full order"
    );

    // A token is bound to its query and tamper-evident.
    let first = client
        .list_contacts(ListContactsRequest {
            page_size: 3,
            order_by: "given_name".into(),
            ..Default::default()
        })
        .await
        .must("ListContacts first page");
    assert!(!first.next_page_token.is_empty());
    let status = client
        .list_contacts(ListContactsRequest {
            page_size: 3,
            page_token: first.next_page_token.clone(),
            order_by: "family_name".into(),
            ..Default::default()
        })
        .await
        .must_fail("a page token with a different order_by");
    assert_invalid_field(
        &status,
        "page_token",
        "page token reused with another order_by",
    );
    let status = client
        .list_contacts(ListContactsRequest {
            page_size: 3,
            page_token: first.next_page_token.clone(),
            order_by: "given_name".into(),
            filter: r#"family_name = "Odd""#.into(),
            ..Default::default()
        })
        .await
        .must_fail("a page token with a different filter");
    assert_invalid_field(
        &status,
        "page_token",
        "page token reused with another filter",
    );
    let mut tampered = first.next_page_token.clone();
    let last = tampered.pop().expect("a non-empty token");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let status = client
        .list_contacts(ListContactsRequest {
            page_size: 3,
            page_token: tampered,
            order_by: "given_name".into(),
            ..Default::default()
        })
        .await
        .must_fail("a tampered page token");
    assert_invalid_field(&status, "page_token", "tampered page token");
}
db_test!(orders_and_pages, orders_and_pages_on);

async fn page_size_default_and_clamp_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    for i in 0..55 {
        create(&mut client, person("Many", &format!("Person{i:02}"), "")).await;
    }
    let page = client
        .list_contacts(ListContactsRequest {
            include_total_size: true,
            ..Default::default()
        })
        .await
        .must("ListContacts page_size 0");
    assert_eq!(page.contacts.len(), 50, "page_size 0 means 50");
    assert!(!page.next_page_token.is_empty(), "more after the first 50");
    assert_eq!(page.total_size, 55);
    let page = client
        .list_contacts(ListContactsRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
        .must("ListContacts page_size 5000 is clamped, not refused");
    assert_eq!(page.contacts.len(), 55);
    assert!(page.next_page_token.is_empty());
    assert_eq!(
        page.total_size, 0,
        "counting every match is paid for only when include_total_size asks"
    );
}
db_test!(page_size_default_and_clamp, page_size_default_and_clamp_on);

async fn updates_only_masked_fields_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let created = create(&mut client, full_contact()).await;

    let mut change = created.clone();
    change.job_title = "Mathematician".into();
    change.given_name = "Augusta".into(); // not in the mask: must not change
    change.tags = vec![]; // not in the mask either
    let updated = client
        .update_contact(UpdateContactRequest {
            contact: Some(change),
            update_mask: mask(&["job_title"]),
        })
        .await
        .must("UpdateContact job_title");
    assert_eq!(updated.job_title, "Mathematician");
    assert_eq!(updated.given_name, "Ada", "given_name is not in the mask");
    assert_eq!(updated.tags.len(), 2, "tags are not in the mask");
    assert_eq!(updated.emails, created.emails);
    assert_eq!(
        updated.create_time, created.create_time,
        "create_time never changes"
    );
    assert_ne!(
        updated.etag, created.etag,
        "the etag changes with the contact"
    );
    let (before, after) = (
        created.update_time.expect("update_time"),
        updated.update_time.expect("update_time"),
    );
    assert!(
        (after.seconds, after.nanos) >= (before.seconds, before.nanos),
        "update_time moves forward"
    );
    let got = client
        .get_contact(GetContactRequest {
            name: created.name.clone(),
        })
        .await
        .must("GetContact after update");
    assert_eq!(got, updated, "the update is stored");

    // Several paths, including a repeated field and an enum.
    let mut change = updated.clone();
    change.emails = vec![email_address("countess@example.com")];
    change.lifecycle_stage = LifecycleStage::Evangelist as i32;
    change.family_name = "King".into();
    let updated = client
        .update_contact(UpdateContactRequest {
            contact: Some(change),
            update_mask: mask(&["emails", "lifecycle_stage", "family_name"]),
        })
        .await
        .must("UpdateContact emails, lifecycle_stage, family_name");
    assert_eq!(updated.emails.len(), 1);
    assert_eq!(updated.emails[0].address, "countess@example.com");
    assert!(updated.emails[0].primary, "the only email becomes primary");
    assert_eq!(updated.lifecycle_stage, LifecycleStage::Evangelist as i32);
    assert_eq!(updated.family_name, "King");
    assert_eq!(updated.job_title, "Mathematician");
    let by_old_email = list_all(&mut client, r#"email = "ada@example.com""#, "", false).await;
    assert!(
        by_old_email.is_empty(),
        "the old primary email no longer matches"
    );
    let by_new_email = list_all(&mut client, r#"email = "countess@example.com""#, "", false).await;
    assert_eq!(names(&by_new_email), vec![created.name.clone()]);

    // "*" replaces every writable field: what is left empty is cleared.
    let replacement = Contact {
        name: created.name.clone(),
        given_name: "Ada".into(),
        family_name: "Byron".into(),
        ..Default::default()
    };
    let replaced = client
        .update_contact(UpdateContactRequest {
            contact: Some(replacement),
            update_mask: mask(&["*"]),
        })
        .await
        .must("UpdateContact *");
    assert_eq!(replaced.family_name, "Byron");
    assert!(replaced.emails.is_empty(), "emails cleared by *");
    assert!(replaced.tags.is_empty(), "tags cleared by *");
    assert!(replaced.job_title.is_empty(), "job_title cleared by *");
    assert_eq!(replaced.lifecycle_stage, LifecycleStage::Unspecified as i32);
    assert_eq!(
        replaced.create_time, created.create_time,
        "output-only fields stay"
    );
    assert_eq!(replaced.name, created.name);

    // Updating an unknown contact is NOT_FOUND.
    let ghost = Contact {
        name: unknown_name("contacts"),
        given_name: "Nobody".into(),
        ..Default::default()
    };
    client
        .update_contact(UpdateContactRequest {
            contact: Some(ghost),
            update_mask: mask(&["given_name"]),
        })
        .await
        .must_fail_with(Code::NotFound, "UpdateContact of an unknown contact");
}
db_test!(updates_only_masked_fields, updates_only_masked_fields_on);

async fn stale_etag_is_aborted_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let created = create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;

    let mut first = created.clone();
    first.job_title = "First".into();
    let updated = client
        .update_contact(UpdateContactRequest {
            contact: Some(first),
            update_mask: mask(&["job_title"]),
        })
        .await
        .must("UpdateContact with the current etag");

    // A writer still holding the old etag loses.
    let mut second = created.clone();
    second.job_title = "Second".into();
    client
        .update_contact(UpdateContactRequest {
            contact: Some(second),
            update_mask: mask(&["job_title"]),
        })
        .await
        .must_fail_with(Code::Aborted, "UpdateContact with a stale etag");
    client
        .delete_contact(DeleteContactRequest {
            name: created.name.clone(),
            etag: created.etag.clone(),
        })
        .await
        .must_fail_with(Code::Aborted, "DeleteContact with a stale etag");
    let got = client
        .get_contact(GetContactRequest {
            name: created.name.clone(),
        })
        .await
        .must("GetContact");
    assert_eq!(got.job_title, "First", "the stale update changed nothing");
    assert!(
        got.delete_time.is_none(),
        "the stale delete changed nothing"
    );

    // Concurrent writers with the same etag: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mut client = app.admin();
        let mut change = updated.clone();
        change.job_title = format!("Racer {i}");
        tasks.push(tokio::spawn(async move {
            client
                .update_contact(UpdateContactRequest {
                    contact: Some(change),
                    update_mask: mask(&["job_title"]),
                })
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("update task") {
            Ok(contact) => winners.push(contact),
            Err(status) => assert_eq!(
                status.code(),
                Code::Aborted,
                "a losing concurrent update is ABORTED: {}",
                status.message()
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 5 concurrent updates with one etag wins"
    );
    let got = client
        .get_contact(GetContactRequest {
            name: created.name.clone(),
        })
        .await
        .must("GetContact after the race");
    assert_eq!(
        got.job_title, winners[0].job_title,
        "the winner's write is the one stored"
    );

    // Delete with the current etag works.
    let deleted = client
        .delete_contact(DeleteContactRequest {
            name: created.name.clone(),
            etag: got.etag.clone(),
        })
        .await
        .must("DeleteContact with the current etag");
    assert!(deleted.delete_time.is_some());
}
db_test!(stale_etag_is_aborted, stale_etag_is_aborted_on);

async fn soft_deletes_and_undeletes_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let keep = create(&mut client, person("Keep", "Me", "keep@example.com")).await;
    let doomed = create(&mut client, person("Delete", "Me", "delete@example.com")).await;

    let deleted = client
        .delete_contact(DeleteContactRequest {
            name: doomed.name.clone(),
            etag: String::new(),
        })
        .await
        .must("DeleteContact");
    assert_eq!(deleted.name, doomed.name);
    assert!(
        deleted.delete_time.is_some(),
        "Delete returns the contact with delete_time"
    );
    assert_eq!(
        deleted.emails, doomed.emails,
        "a soft-deleted contact keeps its data"
    );

    let got = client
        .get_contact(GetContactRequest {
            name: doomed.name.clone(),
        })
        .await
        .must("GetContact of a soft-deleted contact");
    assert!(got.delete_time.is_some(), "Get shows delete_time");
    assert_eq!(got.given_name, "Delete");

    let live = list_all(&mut client, "", "", false).await;
    assert_eq!(
        names(&live),
        vec![keep.name.clone()],
        "List hides soft-deleted contacts"
    );
    let page = client
        .list_contacts(ListContactsRequest {
            include_total_size: true,
            ..Default::default()
        })
        .await
        .must("ListContacts");
    assert_eq!(
        page.total_size, 1,
        "total_size does not count soft-deleted contacts"
    );
    let with_deleted = list_all(&mut client, "", "", true).await;
    let with_deleted: HashSet<String> = names(&with_deleted).into_iter().collect();
    assert_eq!(
        with_deleted,
        HashSet::from([keep.name.clone(), doomed.name.clone()])
    );

    let restored = client
        .undelete_contact(UndeleteContactRequest {
            name: doomed.name.clone(),
        })
        .await
        .must("UndeleteContact");
    assert!(
        restored.delete_time.is_none(),
        "Undelete clears delete_time"
    );
    assert_eq!(restored.emails, doomed.emails);
    let live = list_all(&mut client, "", "", false).await;
    assert_eq!(live.len(), 2, "the undeleted contact is listed again");

    client
        .delete_contact(DeleteContactRequest {
            name: unknown_name("contacts"),
            etag: String::new(),
        })
        .await
        .must_fail_with(Code::NotFound, "DeleteContact of an unknown contact");
    client
        .undelete_contact(UndeleteContactRequest {
            name: unknown_name("contacts"),
        })
        .await
        .must_fail_with(Code::NotFound, "UndeleteContact of an unknown contact");

    // The feed records the life cycle of the contact.
    let events = app.all_events().await;
    let types: Vec<String> = events_about(&events, &doomed.name)
        .iter()
        .map(|e| e.r#type.clone())
        .collect();
    assert_eq!(
        types,
        vec![
            event_type("ContactCreated"),
            event_type("ContactDeleted"),
            event_type("ContactUndeleted")
        ]
    );
}
db_test!(soft_deletes_and_undeletes, soft_deletes_and_undeletes_on);

async fn request_id_makes_create_idempotent_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let id = request_id();
    let first = client
        .create_contact(CreateContactRequest {
            contact: Some(person("Ada", "Lovelace", "ada@example.com")),
            request_id: id.clone(),
        })
        .await
        .must("CreateContact with a request_id");
    let retry = client
        .create_contact(CreateContactRequest {
            contact: Some(person("Ada", "Lovelace", "ada@example.com")),
            request_id: id.clone(),
        })
        .await
        .must("CreateContact retried with the same request_id");
    assert_eq!(retry.name, first.name, "the retry returns the first result");
    assert_eq!(retry.given_name, "Ada");
    assert_eq!(
        count_contacts(&mut client).await,
        1,
        "the retry created nothing"
    );

    // Another tenant's request ids are its own.
    let mut other = app.client(OTHER_TENANT, ADMIN);
    let theirs = other
        .create_contact(CreateContactRequest {
            contact: Some(person("Ada", "Lovelace", "ada@example.com")),
            request_id: id.clone(),
        })
        .await
        .must("CreateContact in another tenant with the same request_id");
    assert_ne!(theirs.name, first.name, "request ids do not cross tenants");

    // Ten concurrent creates with one request_id make exactly one contact.
    let id = request_id();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let mut client = app.admin();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            client
                .create_contact(CreateContactRequest {
                    contact: Some(person("Racing", "Create", "race@example.com")),
                    request_id: id,
                })
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut created = HashSet::new();
    let mut oks = 0;
    for task in tasks {
        match task.await.expect("create task") {
            Ok(contact) => {
                oks += 1;
                created.insert(contact.name);
            }
            Err(status) => panic!(
                "a concurrent create with a shared request_id failed: {:?}: {}",
                status.code(),
                status.message()
            ),
        }
    }
    assert_eq!(oks, 10);
    assert_eq!(
        created.len(),
        1,
        "every call returns the same contact: {created:?}"
    );
    let racers = list_all(&mut client, r#"email = "race@example.com""#, "", true).await;
    assert_eq!(racers.len(), 1, "exactly one contact was created");
    let events = app.all_events().await;
    let racer = racers[0].name.clone();
    let created_events = events_about(&events, &racer)
        .into_iter()
        .filter(|e| e.r#type == event_type("ContactCreated"))
        .count();
    assert_eq!(created_events, 1, "exactly one ContactCreated event");
}
db_test!(
    request_id_makes_create_idempotent,
    request_id_makes_create_idempotent_on
);

/// As payment APIs do it: a request id reused for a different request is
/// refused, naming it, and writes nothing.
async fn a_request_id_reused_for_another_request_is_refused_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let id = request_id();
    let first = client
        .create_contact(CreateContactRequest {
            contact: Some(person("Ada", "Lovelace", "ada@example.com")),
            request_id: id.clone(),
        })
        .await
        .must("CreateContact");
    let status = client
        .create_contact(CreateContactRequest {
            contact: Some(person("Grace", "Hopper", "grace@example.com")),
            request_id: id.clone(),
        })
        .await
        .expect_err("the same request_id with another contact");
    assert_invalid_field(
        &status,
        "request_id",
        "a request id reused for another request",
    );
    assert!(status.message().contains(&first.name), "{status:?}");
    assert_eq!(count_contacts(&mut client).await, 1, "nothing was written");
}
db_test!(
    a_request_id_reused_for_another_request_is_refused,
    a_request_id_reused_for_another_request_is_refused_on
);

/// Request ids are remembered for `request_id_hours`; after that the id is
/// free and a request with it creates again (a window of 0 expires at once).
async fn request_ids_expire_after_their_window_on(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let mut settings = settings(&db.url);
    settings.service.request_id_hours = 0;
    let process = ServiceProcess::start(service(crm_contacts::build), settings).await;
    let mut client =
        ContactsServiceClient::with_interceptor(process.channel(), bearer_for(TENANT, ADMIN));
    let id = request_id();
    let request = CreateContactRequest {
        contact: Some(person("Ada", "Lovelace", "ada@example.com")),
        request_id: id.clone(),
    };
    let first = client
        .create_contact(request.clone())
        .await
        .must("CreateContact");
    let again = client
        .create_contact(request)
        .await
        .must("CreateContact after the window");
    assert_ne!(
        again.name, first.name,
        "an expired request id creates again"
    );
    let conn = sea_orm::Database::connect(&db.url).await.expect("connect");
    let kept = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT COUNT(*) FROM idempotency_keys WHERE request_id = '{id}'"),
        ))
        .await
        .expect("count")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a count");
    // The background prune may already have taken the new key too (a
    // window of 0 expires it at once): never two.
    assert!(
        kept <= 1,
        "the expired key was replaced, not kept beside the new one ({kept})"
    );
}
db_test!(
    request_ids_expire_after_their_window,
    request_ids_expire_after_their_window_on
);

async fn batch_gets_in_request_order_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let a = create(&mut client, person("A", "One", "a@example.com")).await;
    let b = create(&mut client, person("B", "Two", "b@example.com")).await;
    let c = create(&mut client, person("C", "Three", "c@example.com")).await;
    client
        .delete_contact(DeleteContactRequest {
            name: b.name.clone(),
            etag: String::new(),
        })
        .await
        .must("DeleteContact");

    let order = vec![c.name.clone(), a.name.clone(), b.name.clone()];
    let got = client
        .batch_get_contacts(BatchGetContactsRequest {
            names: order.clone(),
        })
        .await
        .must("BatchGetContacts");
    assert_eq!(names(&got.contacts), order, "in the order asked");
    assert_eq!(got.contacts[1], a, "the contacts are complete");
    assert!(
        got.contacts[2].delete_time.is_some(),
        "soft-deleted ones come with delete_time"
    );

    client
        .batch_get_contacts(BatchGetContactsRequest {
            names: vec![a.name.clone(), unknown_name("contacts")],
        })
        .await
        .must_fail_with(Code::NotFound, "BatchGetContacts with one unknown name");

    let too_many: Vec<String> = (0..1001).map(|_| unknown_name("contacts")).collect();
    let status = client
        .batch_get_contacts(BatchGetContactsRequest { names: too_many })
        .await
        .must_fail("BatchGetContacts of 1001 names");
    assert_invalid_field(&status, "names", "BatchGetContacts of 1001 names");

    let status = client
        .batch_get_contacts(BatchGetContactsRequest {
            names: vec![a.name.clone(), "contacts/nope".into()],
        })
        .await
        .must_fail("BatchGetContacts with a malformed name");
    assert_invalid_field(&status, "names", "BatchGetContacts with a malformed name");
}
db_test!(batch_gets_in_request_order, batch_gets_in_request_order_on);

/// The `email` filter matches any of a contact's addresses, not only the
/// primary, in any case: sales finds a lead's person by whichever address
/// the lead gave.
async fn the_email_filter_matches_every_address_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let mut ada = person("Ada", "Lovelace", "a@x.example");
    ada.emails.push(email_address("b@x.example"));
    let ada = create(&mut client, ada).await;
    assert!(ada.emails[0].primary && !ada.emails[1].primary);
    let grace = create(&mut client, person("Grace", "Hopper", "grace@y.example")).await;
    let cases: &[(&str, &[&Contact])] = &[
        (r#"email = "a@x.example""#, &[&ada]),
        (r#"email = "b@x.example""#, &[&ada]),
        (r#"email = "B@X.Example""#, &[&ada]),
        (r#"email = "b@*""#, &[&ada]),
        (r#"email:"X.EXAMPLE""#, &[&ada]),
        (r#"email != "b@x.example""#, &[&grace]),
        (
            r#"email = "b@x.example" OR email = "grace@y.example""#,
            &[&ada, &grace],
        ),
        (r#"email = "nobody@x.example""#, &[]),
    ];
    for (filter, want) in cases {
        let mut got = names(&list_all(&mut client, filter, "", false).await);
        got.sort();
        let mut want: Vec<String> = want.iter().map(|c| c.name.clone()).collect();
        want.sort();
        assert_eq!(got, want, "{filter}");
    }
    let status = client
        .list_contacts(ListContactsRequest {
            filter: r#"email < "b""#.into(),
            ..Default::default()
        })
        .await
        .must_fail("an ordering comparison on every address");
    assert_invalid_field(&status, "filter", "email <");
}
db_test!(
    the_email_filter_matches_every_address,
    the_email_filter_matches_every_address_on
);

/// Keyset pages: a list walked while contacts are added before and after the
/// walker's position and others are deleted returns every contact that
/// existed throughout exactly once (offsets repeated or skipped rows here).
async fn pages_neither_repeat_nor_skip_under_concurrent_writes_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let mut stable = Vec::new();
    for i in 0..40 {
        stable.push(
            create(&mut client, person("Stable", &format!("{i:02}"), ""))
                .await
                .name,
        );
    }
    let mut doomed = Vec::new();
    for i in 0..20 {
        doomed.push(
            create(&mut client, person("Doomed", &format!("{i:02}"), ""))
                .await
                .name,
        );
    }
    for order_by in ["display_name", "create_time desc", ""] {
        let mut seen: Vec<String> = Vec::new();
        let mut page_token = String::new();
        let mut round = 0;
        loop {
            let page = client
                .list_contacts(ListContactsRequest {
                    page_size: 7,
                    page_token: page_token.clone(),
                    order_by: order_by.into(),
                    ..Default::default()
                })
                .await
                .must("ListContacts");
            seen.extend(page.contacts.iter().map(|c| c.name.clone()));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
            // Writes between pages: new rows sorting before and after the
            // walker, and deletions of rows it has or has not seen yet.
            round += 1;
            for given in ["Aaron", "Stable", "Zelda"] {
                create(
                    &mut client,
                    person(given, &format!("New {order_by} {round}"), ""),
                )
                .await;
            }
            for _ in 0..2 {
                if let Some(name) = doomed.pop() {
                    client
                        .delete_contact(DeleteContactRequest {
                            name,
                            etag: String::new(),
                        })
                        .await
                        .must("DeleteContact");
                }
            }
        }
        let mut counts = BTreeMap::new();
        for name in &seen {
            *counts.entry(name.clone()).or_insert(0) += 1;
        }
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            repeated.is_empty(),
            "order_by {order_by:?}: repeated {repeated:?}"
        );
        let missing: Vec<_> = stable
            .iter()
            .filter(|name| !counts.contains_key(*name))
            .collect();
        assert!(
            missing.is_empty(),
            "order_by {order_by:?}: skipped {missing:?}"
        );
    }
}
db_test!(
    pages_neither_repeat_nor_skip_under_concurrent_writes,
    pages_neither_repeat_nor_skip_under_concurrent_writes_on
);
