//! Bad input is INVALID_ARGUMENT with a BadRequest field violation naming the
//! field, never INTERNAL, and nothing is written.

use crm_proto::contacts::{
    ActivityKind, Channel as ContactChannel, Consent, ConsentStatus, Contact,
    CreateActivityRequest, CreateContactRequest, EraseContactRequest, GetContactRequest,
    ListContactsRequest, UpdateContactRequest,
};
use crm_testkit::Backend;
use prost_types::{FieldMask, Struct, Value, value::Kind};
use tonic::{
    Code, Request, codegen::http::uri::PathAndQuery, service::interceptor::InterceptedService,
};

use crate::activities::activity;
use crate::support::{raw::RawCodec, *};

fn valid() -> Contact {
    person("Valid", "Person", "valid@example.com")
}

async fn creates_nothing_from_bad_fields_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    create(&mut client, person("Already", "Here", "here@example.com")).await;

    let with = |f: &dyn Fn(&mut Contact)| {
        let mut c = valid();
        f(&mut c);
        Some(c)
    };
    let mut bad_key = Struct::default();
    bad_key.fields.insert(
        "bad key!".into(),
        Value {
            kind: Some(Kind::BoolValue(true)),
        },
    );
    let consent = Consent {
        channel: ContactChannel::Email as i32,
        status: ConsentStatus::Granted as i32,
        update_time: None,
        source: "web".into(),
    };
    let cases: Vec<(&str, Option<Contact>, &str, &str)> = vec![
        (
            "an invalid email",
            with(&|c| c.emails = vec![email_address("not-an-email")]),
            "",
            "emails",
        ),
        (
            "an email without domain",
            with(&|c| c.emails = vec![email_address("ada@")]),
            "",
            "emails",
        ),
        (
            "a phone with letters",
            with(&|c| c.phones = vec![phone_number("555-CALL-NOW")]),
            "",
            "phones",
        ),
        (
            "a phone of 3 digits",
            with(&|c| c.phones = vec![phone_number("123")]),
            "",
            "phones",
        ),
        (
            "a phone of 16 digits",
            with(&|c| c.phones = vec![phone_number("+1234567890123456")]),
            "",
            "phones",
        ),
        (
            "a given_name of 1000 chars",
            with(&|c| c.given_name = "x".repeat(1000)),
            "",
            "given_name",
        ),
        (
            "a family_name of 1000 chars",
            with(&|c| c.family_name = "y".repeat(1000)),
            "",
            "family_name",
        ),
        (
            "a job_title of 100000 chars",
            with(&|c| c.job_title = "z".repeat(100_000)),
            "",
            "job_title",
        ),
        (
            "lifecycle_stage 99",
            with(&|c| c.lifecycle_stage = 99),
            "",
            "lifecycle_stage",
        ),
        (
            "a tag of 65 chars",
            with(&|c| c.tags = vec!["t".repeat(65)]),
            "",
            "tags",
        ),
        (
            "51 tags",
            with(&|c| c.tags = (0..51).map(|i| format!("tag{i}")).collect()),
            "",
            "tags",
        ),
        (
            "21 emails",
            with(&|c| {
                c.emails = (0..21)
                    .map(|i| email_address(&format!("e{i}@example.com")))
                    .collect()
            }),
            "",
            "emails",
        ),
        (
            "21 phones",
            with(&|c| {
                c.phones = (0..21)
                    .map(|i| phone_number(&format!("+1555010{i:04}")))
                    .collect()
            }),
            "",
            "phones",
        ),
        (
            "a custom field key with spaces",
            with(&|c| c.custom_fields = Some(bad_key.clone())),
            "",
            "custom_fields",
        ),
        (
            "a channel given consent twice",
            with(&|c| c.consents = vec![consent.clone(), consent.clone()]),
            "",
            "consents",
        ),
        (
            "consent channel 99",
            with(&|c| {
                c.consents = vec![Consent {
                    channel: 99,
                    ..consent.clone()
                }]
            }),
            "",
            "consents",
        ),
        (
            "a malformed company name",
            with(&|c| c.company = "companies/xyz".into()),
            "",
            "company",
        ),
        (
            "a request_id that is no UUID",
            Some(valid()),
            "not-a-uuid",
            "request_id",
        ),
        ("no contact at all", None, "", "contact"),
    ];
    let mut problems = Vec::new();
    for (what, contact, request_id, field) in cases {
        let result = client
            .create_contact(CreateContactRequest {
                contact,
                request_id: request_id.into(),
            })
            .await;
        problems.extend(invalid_field_problem(
            result,
            field,
            &format!("CreateContact with {what}"),
        ));
    }
    let count = count_contacts(&mut client).await;
    if count != 1 {
        problems.push(format!("bad creates wrote {} contacts", count - 1));
    }
    let events = app.all_events().await.len();
    if events != 1 {
        problems.push(format!("bad creates wrote {} events", events - 1));
    }

    // Two inputs a service may refuse or normalise, but never store as given:
    // an empty tag (tags have 1 to 64 characters) and two primary emails (at
    // most one is primary).
    let mut a = email_address("a@example.com");
    a.primary = true;
    let mut b = email_address("b@example.com");
    b.primary = true;
    let normalisable: Vec<(&str, Contact, &str)> = vec![
        (
            "an empty tag",
            with(&|c| c.tags = vec![String::new(), "ok".into()]).expect("a contact"),
            "tags",
        ),
        (
            "two primary emails",
            with(&|c| c.emails = vec![a.clone(), b.clone()]).expect("a contact"),
            "emails",
        ),
    ];
    for (what, contact, field) in normalisable {
        let what = format!("CreateContact with {what}");
        match client
            .create_contact(CreateContactRequest {
                contact: Some(contact),
                request_id: String::new(),
            })
            .await
        {
            Ok(response) => {
                let stored = response.into_inner();
                if stored.tags.iter().any(String::is_empty) {
                    problems.push(format!("{what}: stored an empty tag: {:?}", stored.tags));
                }
                let primaries = stored.emails.iter().filter(|e| e.primary).count();
                if primaries != 1 {
                    problems.push(format!("{what}: stored {primaries} primary emails"));
                }
                eprintln!("note: {what} was normalised, not refused");
                client
                    .erase_contact(EraseContactRequest { name: stored.name })
                    .await
                    .must("EraseContact of the normalised contact");
            }
            Err(status) => problems.extend(invalid_field_problem::<()>(Err(status), field, &what)),
        }
    }
    let events = app.all_events().await.len();

    // Activities too.
    let contact = list_all(&mut client, "", "", false).await.remove(0);
    let mut bad_kind = activity(ActivityKind::Note, &contact.name, "bad kind", "");
    bad_kind.kind = 99;
    let result = client
        .create_activity(CreateActivityRequest {
            activity: Some(bad_kind),
            request_id: String::new(),
        })
        .await;
    problems.extend(invalid_field_problem(
        result,
        "kind",
        "CreateActivity kind 99",
    ));
    let long_subject = activity(ActivityKind::Note, &contact.name, &"s".repeat(10_000), "");
    let result = client
        .create_activity(CreateActivityRequest {
            activity: Some(long_subject),
            request_id: String::new(),
        })
        .await;
    problems.extend(invalid_field_problem(
        result,
        "subject",
        "CreateActivity with a subject of 10000 chars",
    ));
    let after = app.all_events().await.len();
    if after != events {
        problems.push(format!("bad activities wrote {} events", after - events));
    }
    assert!(
        problems.is_empty(),
        "bad input accepted or misreported:\n{}",
        problems.join("\n")
    );
}
db_test!(
    creates_nothing_from_bad_fields,
    creates_nothing_from_bad_fields_on
);

async fn refuses_bad_list_parameters_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    create(&mut client, valid()).await;
    let cases: Vec<(&str, ListContactsRequest, &str)> = vec![
        (
            "page_size -1",
            ListContactsRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        ("an unparsable filter", filter(r#"given_name = "#), "filter"),
        (
            "unbalanced parentheses",
            filter(r#"((given_name = "Ada""#),
            "filter",
        ),
        (
            "an unterminated string",
            filter(r#"given_name = "Ada"#),
            "filter",
        ),
        (
            "a filter on tenant",
            filter(r#"tenant = "globex""#),
            "filter",
        ),
        (
            "a filter on an unlisted column",
            filter(r#"search_text:"ada""#),
            "filter",
        ),
        (
            "a filter on an unknown field",
            filter(r#"shoe_size > 3"#),
            "filter",
        ),
        (
            "an unknown lifecycle stage",
            filter(r#"lifecycle_stage = "ROYALTY""#),
            "filter",
        ),
        (
            "a time that is not RFC 3339",
            filter(r#"create_time > "yesterday""#),
            "filter",
        ),
        (
            "an operator that does not exist",
            filter(r#"given_name ~= "Ada""#),
            "filter",
        ),
        (
            "order_by an unlisted field",
            order(r#"job_title"#),
            "order_by",
        ),
        ("order_by tenant", order(r#"tenant"#), "order_by"),
        (
            "order_by a bad direction",
            order(r#"given_name sideways"#),
            "order_by",
        ),
        (
            "a page token that is garbage",
            ListContactsRequest {
                page_token: "garbage!".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ];
    let mut problems = Vec::new();
    for (what, request, field) in cases {
        let result = client.list_contacts(request).await;
        problems.extend(invalid_field_problem(
            result,
            field,
            &format!("ListContacts with {what}"),
        ));
    }
    assert!(
        problems.is_empty(),
        "bad input accepted or misreported:\n{}",
        problems.join("\n")
    );
    assert_eq!(count_contacts(&mut client).await, 1);
}
db_test!(refuses_bad_list_parameters, refuses_bad_list_parameters_on);

fn filter(text: &str) -> ListContactsRequest {
    ListContactsRequest {
        filter: text.into(),
        ..Default::default()
    }
}

fn order(text: &str) -> ListContactsRequest {
    ListContactsRequest {
        order_by: text.into(),
        ..Default::default()
    }
}

async fn refuses_bad_updates_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let contact = create(&mut client, valid()).await;
    let mask = |paths: &[&str]| {
        Some(FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        })
    };
    let mut bad_email = contact.clone();
    bad_email.emails = vec![email_address("broken")];
    let mut long_name = contact.clone();
    long_name.given_name = "x".repeat(1000);
    long_name.job_title = "Would Change".into();
    let mut stage = contact.clone();
    stage.lifecycle_stage = 99;
    let mut nameless = contact.clone();
    nameless.name = String::new();
    nameless.job_title = "Nameless".into();
    let cases: Vec<(&str, Contact, Option<FieldMask>, &str)> = vec![
        (
            "an unknown mask path",
            contact.clone(),
            mask(&["no_such_field"]),
            "update_mask",
        ),
        (
            "a mask path with a typo",
            contact.clone(),
            mask(&["given_nam"]),
            "update_mask",
        ),
        ("an invalid email", bad_email, mask(&["emails"]), "emails"),
        (
            "a 1000-char given_name",
            long_name,
            mask(&["given_name", "job_title"]),
            "given_name",
        ),
        (
            "lifecycle_stage 99",
            stage,
            mask(&["lifecycle_stage"]),
            "lifecycle_stage",
        ),
        ("no name", nameless, mask(&["job_title"]), "name"),
    ];
    let mut problems = Vec::new();
    for (what, contact, update_mask, field) in cases {
        let result = client
            .update_contact(UpdateContactRequest {
                contact: Some(contact),
                update_mask,
            })
            .await;
        problems.extend(invalid_field_problem(
            result,
            field,
            &format!("UpdateContact with {what}"),
        ));
    }
    assert!(
        problems.is_empty(),
        "bad input accepted or misreported:\n{}",
        problems.join("\n")
    );
    let got = client
        .get_contact(GetContactRequest {
            name: contact.name.clone(),
        })
        .await
        .must("GetContact");
    assert_eq!(got, contact, "no bad update changed anything");
    let updates = app
        .all_events()
        .await
        .into_iter()
        .filter(|e| e.r#type == event_type("ContactUpdated"))
        .count();
    assert_eq!(updates, 0, "no ContactUpdated event");
}
db_test!(refuses_bad_updates, refuses_bad_updates_on);

async fn refuses_malformed_protobuf_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    create(&mut client, valid()).await;
    let authorization = format!("Bearer {}", token(TENANT, ADMIN));
    let mut grpc = tonic::client::Grpc::new(InterceptedService::new(
        app.channel(),
        bearer(Some(&authorization)),
    ));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("0xFF 0xFF 0xFF", vec![0xFF, 0xFF, 0xFF]),
        ("a truncated length-delimited field", vec![0x0A, 0x05, 0x01]),
        (
            "field 1 as two bytes of invalid UTF-8",
            vec![0x0A, 0x02, 0xC3, 0x28],
        ),
        ("an invalid wire type", vec![0x0F, 0x01]),
    ];
    for (what, bytes) in cases {
        for method in ["CreateContact", "ListContacts", "GetContact"] {
            grpc.ready().await.expect("the channel is ready");
            let path = format!("/crm.contacts.v1.ContactsService/{method}");
            let path = PathAndQuery::try_from(path).expect("a gRPC path");
            let result = grpc
                .unary(Request::new(bytes.clone()), path, RawCodec)
                .await;
            let status = result.must_fail(&format!("{method} with {what}"));
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{method} with {what}: expected INVALID_ARGUMENT, got {:?}: {}",
                status.code(),
                status.message()
            );
        }
    }
    assert_eq!(
        count_contacts(&mut client).await,
        1,
        "no malformed message wrote anything"
    );
}
db_test!(refuses_malformed_protobuf, refuses_malformed_protobuf_on);
