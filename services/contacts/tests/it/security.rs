//! Authentication, roles and tenant isolation.

use std::time::Duration;

use crm_proto::contacts::{
    ActivityKind, BatchGetContactsRequest, Company, Contact, CreateActivityRequest,
    CreateCompanyRequest, CreateContactRequest, DeleteContactRequest, EraseContactRequest,
    ExportContactDataRequest, FindDuplicatesRequest, GetActivityRequest, GetCompanyRequest,
    GetContactRequest, ImportOutcome, ListContactsRequest, ListTimelineRequest,
    MergeContactsRequest, SearchContactsRequest, UndeleteContactRequest, UpdateContactRequest,
};
use crm_shared::auth::{Claims, Role, sign_hs256};
use crm_testkit::Backend;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prost_types::FieldMask;
use tonic::Code;

use crate::activities::{activity, log};
use crate::import_export::{export, import};
use crate::support::*;

fn expired_token() -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: "tester".into(),
        tenant: TENANT.into(),
        roles: vec![Role::Admin],
        exp: now - 3600,
        iat: now - 7200,
        iss: None,
        nbf: None,
        aud: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encoding an expired token")
}

async fn refuses_missing_and_bad_tokens_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let wrong_secret = sign_hs256(
        "not-the-secret",
        TENANT,
        "tester",
        &[Role::Admin],
        Duration::from_secs(3600),
    )
    .expect("signing");
    let good = token(TENANT, ADMIN);
    let tampered = {
        // Change the payload but keep the signature.
        let parts: Vec<&str> = good.split('.').collect();
        let other = token(OTHER_TENANT, ADMIN);
        let other_payload = other.split('.').nth(1).expect("a payload").to_owned();
        format!("{}.{}.{}", parts[0], other_payload, parts[2])
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("a wrong signature", Some(format!("Bearer {wrong_secret}"))),
        ("a tampered payload", Some(format!("Bearer {tampered}"))),
        (
            "an expired token",
            Some(format!("Bearer {}", expired_token())),
        ),
        ("garbage", Some("Bearer not.a.jwt".into())),
        ("another scheme", Some(format!("Basic {good}"))),
    ];
    for (what, authorization) in cases {
        let mut client = app.client_with_authorization(authorization.as_deref());
        client
            .create_contact(CreateContactRequest {
                contact: Some(person("Sneaky", "Write", "sneaky@example.com")),
                request_id: String::new(),
            })
            .await
            .must_fail_with(Code::Unauthenticated, &format!("CreateContact with {what}"));
        client
            .list_contacts(ListContactsRequest::default())
            .await
            .must_fail_with(Code::Unauthenticated, &format!("ListContacts with {what}"));
        client
            .get_contact(GetContactRequest {
                name: unknown_name("contacts"),
            })
            .await
            .must_fail_with(Code::Unauthenticated, &format!("GetContact with {what}"));
    }
    let mut admin = app.admin();
    assert_eq!(
        count_contacts(&mut admin).await,
        0,
        "no unauthenticated call wrote anything"
    );
}
db_test!(
    refuses_missing_and_bad_tokens,
    refuses_missing_and_bad_tokens_on
);

async fn viewers_read_but_do_not_write_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut admin = app.admin();
    let contact = create(&mut admin, person("Ada", "Lovelace", "ada@example.com")).await;
    let note = log(
        &mut admin,
        activity(ActivityKind::Note, &contact.name, "note", ""),
    )
    .await;
    let baseline = admin
        .get_contact(GetContactRequest {
            name: contact.name.clone(),
        })
        .await
        .must("GetContact baseline");
    let mut viewer = app.client(TENANT, VIEWER);

    // Reads work.
    let got = viewer
        .get_contact(GetContactRequest {
            name: contact.name.clone(),
        })
        .await
        .must("GetContact by a viewer");
    assert_eq!(got.name, contact.name);
    assert_eq!(list_all(&mut viewer, "", "", false).await.len(), 1);
    viewer
        .search_contacts(SearchContactsRequest {
            query: "ada".into(),
            page_size: 0,
        })
        .await
        .must("SearchContacts by a viewer");
    viewer
        .list_timeline(ListTimelineRequest {
            contact: contact.name.clone(),
            ..Default::default()
        })
        .await
        .must("ListTimeline by a viewer");

    // Writes do not.
    let denied = |what: &str| format!("{what} by a viewer");
    viewer
        .create_contact(CreateContactRequest {
            contact: Some(person("Viewer", "Write", "viewer@example.com")),
            request_id: String::new(),
        })
        .await
        .must_fail_with(Code::PermissionDenied, &denied("CreateContact"));
    let mut change = contact.clone();
    change.job_title = "Changed".into();
    viewer
        .update_contact(UpdateContactRequest {
            contact: Some(change),
            update_mask: Some(FieldMask {
                paths: vec!["job_title".into()],
            }),
        })
        .await
        .must_fail_with(Code::PermissionDenied, &denied("UpdateContact"));
    viewer
        .delete_contact(DeleteContactRequest {
            name: contact.name.clone(),
            etag: String::new(),
        })
        .await
        .must_fail_with(Code::PermissionDenied, &denied("DeleteContact"));
    viewer
        .undelete_contact(UndeleteContactRequest {
            name: contact.name.clone(),
        })
        .await
        .must_fail_with(Code::PermissionDenied, &denied("UndeleteContact"));
    viewer
        .create_company(CreateCompanyRequest {
            company: Some(Company {
                display_name: "Viewer Co".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must_fail_with(Code::PermissionDenied, &denied("CreateCompany"));
    viewer
        .create_activity(CreateActivityRequest {
            activity: Some(activity(
                ActivityKind::Note,
                &contact.name,
                "viewer note",
                "",
            )),
            request_id: String::new(),
        })
        .await
        .must_fail_with(Code::PermissionDenied, &denied("CreateActivity"));
    viewer
        .merge_contacts(MergeContactsRequest {
            survivor: contact.name.clone(),
            merged: vec![unknown_name("contacts")],
            etag: String::new(),
        })
        .await
        .must_fail_with(Code::PermissionDenied, &denied("MergeContacts"));
    viewer
        .erase_contact(EraseContactRequest {
            name: contact.name.clone(),
        })
        .await
        .must_fail_with(Code::PermissionDenied, &denied("EraseContact"));
    let rows = futures_util::stream::iter(vec![crm_proto::contacts::ImportContactsRequest {
        contact: Some(person("Viewer", "Import", "viewer.import@example.com")),
    }]);
    match viewer.import_contacts(rows).await {
        Ok(response) => {
            let mut stream = response.into_inner();
            let Err(status) = stream.message().await else {
                panic!("ImportContacts by a viewer must fail");
            };
            assert_eq!(
                status.code(),
                Code::PermissionDenied,
                "{}",
                status.message()
            );
        }
        Err(status) => assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{}",
            status.message()
        ),
    }

    let got = admin
        .get_contact(GetContactRequest {
            name: contact.name.clone(),
        })
        .await
        .must("GetContact");
    assert_eq!(got, baseline, "no viewer write changed anything");
    assert_eq!(count_contacts(&mut admin).await, 1);
    let timeline = admin
        .list_timeline(ListTimelineRequest {
            contact: contact.name.clone(),
            ..Default::default()
        })
        .await
        .must("ListTimeline");
    assert_eq!(timeline.activities.len(), 1);
    assert_eq!(timeline.activities[0].name, note.name);
}
db_test!(
    viewers_read_but_do_not_write,
    viewers_read_but_do_not_write_on
);

async fn tenants_are_isolated_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut a = app.admin();
    let mut b = app.client(OTHER_TENANT, ADMIN);
    let company = crate::companies::create_company(&mut a, "Secret Engines").await;
    let mut secret: Contact = person("Zenobia", "Secretive", "zenobia@example.com");
    secret.company = company.name.clone();
    secret.phones = vec![phone_number("+1 555 010 9999")];
    let secret = create(&mut a, secret).await;
    let note = log(
        &mut a,
        activity(ActivityKind::Note, &secret.name, "private note", ""),
    )
    .await;
    // Tenant B has a look-alike: the same email and phone.
    let mut lookalike = person("Zenobia", "Secretive", "zenobia@example.com");
    lookalike.phones = vec![phone_number("+15550109999")];
    let lookalike = create(&mut b, lookalike).await;

    let baseline = a
        .get_contact(GetContactRequest {
            name: secret.name.clone(),
        })
        .await
        .must("GetContact baseline");
    let not_found = |what: &str| format!("tenant B: {what} of tenant A's resource");
    b.get_contact(GetContactRequest {
        name: secret.name.clone(),
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("GetContact"));
    b.batch_get_contacts(BatchGetContactsRequest {
        names: vec![secret.name.clone()],
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("BatchGetContacts"));
    b.get_company(GetCompanyRequest {
        name: company.name.clone(),
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("GetCompany"));
    b.get_activity(GetActivityRequest {
        name: note.name.clone(),
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("GetActivity"));
    b.list_timeline(ListTimelineRequest {
        contact: secret.name.clone(),
        ..Default::default()
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("ListTimeline"));
    let mut change = secret.clone();
    change.job_title = "Hijacked".into();
    b.update_contact(UpdateContactRequest {
        contact: Some(change),
        update_mask: Some(FieldMask {
            paths: vec!["job_title".into()],
        }),
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("UpdateContact"));
    b.delete_contact(DeleteContactRequest {
        name: secret.name.clone(),
        etag: String::new(),
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("DeleteContact"));
    b.export_contact_data(ExportContactDataRequest {
        name: secret.name.clone(),
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("ExportContactData"));
    b.erase_contact(EraseContactRequest {
        name: secret.name.clone(),
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("EraseContact"));
    b.merge_contacts(MergeContactsRequest {
        survivor: lookalike.name.clone(),
        merged: vec![secret.name.clone()],
        etag: String::new(),
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("MergeContacts"));
    b.find_duplicates(FindDuplicatesRequest {
        contact: secret.name.clone(),
        ..Default::default()
    })
    .await
    .must_fail_with(Code::NotFound, &not_found("FindDuplicates"));
    let status = b
        .create_activity(CreateActivityRequest {
            activity: Some(activity(ActivityKind::Note, &secret.name, "intrusion", "")),
            request_id: String::new(),
        })
        .await
        .must_fail("tenant B: CreateActivity on tenant A's contact");
    assert!(
        matches!(
            status.code(),
            Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition
        ),
        "{:?}: {}",
        status.code(),
        status.message()
    );
    let mut hijack = person("Bad", "Actor", "bad@example.com");
    hijack.company = company.name.clone();
    let status = b
        .create_contact(CreateContactRequest {
            contact: Some(hijack),
            request_id: String::new(),
        })
        .await
        .must_fail("tenant B: a contact at tenant A's company");
    assert!(
        matches!(
            status.code(),
            Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition
        ),
        "{:?}: {}",
        status.code(),
        status.message()
    );

    // Lists, search, export and duplicates show only B's own.
    let listed = list_all(&mut b, "", "", true).await;
    assert_eq!(
        names(&listed),
        vec![lookalike.name.clone()],
        "List shows only B's contacts"
    );
    let filtered = list_all(&mut b, &format!("company = \"{}\"", company.name), "", true).await;
    assert!(filtered.is_empty());
    let found = b
        .search_contacts(SearchContactsRequest {
            query: "zenobia".into(),
            page_size: 0,
        })
        .await
        .must("SearchContacts by B");
    let hits: Vec<String> = found
        .results
        .iter()
        .filter_map(|r| r.contact.as_ref().map(|c| c.name.clone()))
        .collect();
    assert_eq!(
        hits,
        vec![lookalike.name.clone()],
        "Search shows only B's contacts"
    );
    let found = b
        .search_contacts(SearchContactsRequest {
            query: "secret engines".into(),
            page_size: 0,
        })
        .await
        .must("SearchContacts by B for A's company");
    assert!(
        found.results.is_empty(),
        "A's company name finds nothing for B"
    );
    let exported: Vec<String> = export(&mut b, "", true)
        .await
        .expect("ExportContacts by B")
        .iter()
        .flat_map(|c| names(c))
        .collect();
    assert_eq!(
        exported,
        vec![lookalike.name.clone()],
        "Export shows only B's contacts"
    );
    let pairs = b
        .find_duplicates(FindDuplicatesRequest::default())
        .await
        .must("FindDuplicates by B")
        .pairs;
    assert!(pairs.is_empty(), "no duplicates across tenants: {pairs:?}");
    let companies = b
        .list_companies(crm_proto::contacts::ListCompaniesRequest::default())
        .await
        .must("ListCompanies by B");
    assert!(companies.companies.is_empty());
    let activities = b
        .list_activities(crm_proto::contacts::ListActivitiesRequest::default())
        .await
        .must("ListActivities by B");
    assert!(activities.activities.is_empty());
    let page = b
        .list_contacts(ListContactsRequest {
            include_total_size: true,
            ..Default::default()
        })
        .await
        .must("ListContacts by B");
    assert_eq!(page.total_size, 1);

    // Importing A's email into B creates, it does not find A's contact.
    let batches = import(
        &mut b,
        vec![person("Zenobia", "Again", "ZENOBIA@example.com"), {
            let mut c = person("Fresh", "Import", "");
            c.emails = vec![email_address("fresh@example.com")];
            c
        }],
    )
    .await;
    let results: Vec<_> = batches.into_iter().flatten().collect();
    assert_eq!(
        results[0].outcome,
        ImportOutcome::Duplicate as i32,
        "{:?}",
        results[0]
    );
    assert_eq!(
        results[0].contact, lookalike.name,
        "a duplicate within B, never A's contact"
    );
    assert_eq!(
        results[1].outcome,
        ImportOutcome::Created as i32,
        "{:?}",
        results[1]
    );

    // A still has everything.
    let got = a
        .get_contact(GetContactRequest {
            name: secret.name.clone(),
        })
        .await
        .must("GetContact by A");
    assert_eq!(got, baseline, "B changed nothing of A's");
}
db_test!(tenants_are_isolated, tenants_are_isolated_on);
