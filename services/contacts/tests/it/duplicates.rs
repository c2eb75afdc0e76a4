//! FindDuplicates: the same email (case-insensitive), the same normalised
//! phone, a similar name within the same company; scores and reasons.

use crm_proto::contacts::{
    DuplicatePair, DuplicateReason, FindDuplicatesRequest, FindDuplicatesResponse,
};
use crm_testkit::Backend;
use tonic::Code;

use crate::support::*;

async fn find(client: &mut Contacts, request: FindDuplicatesRequest) -> FindDuplicatesResponse {
    client.find_duplicates(request).await.must("FindDuplicates")
}

/// The pair of `a` and `b`, whichever way round it is reported.
fn pair_of<'a>(pairs: &'a [DuplicatePair], a: &str, b: &str) -> Option<&'a DuplicatePair> {
    pairs
        .iter()
        .find(|p| (p.contact == a && p.duplicate == b) || (p.contact == b && p.duplicate == a))
}

fn involves(pairs: &[DuplicatePair], name: &str) -> bool {
    pairs
        .iter()
        .any(|p| p.contact == name || p.duplicate == name)
}

fn describe(pairs: &[DuplicatePair]) -> String {
    pairs
        .iter()
        .map(|p| {
            format!(
                "({} ~ {} {:.2} {:?})",
                p.contact, p.duplicate, p.score, p.reasons
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn finds_duplicates_with_reasons_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let company = crate::companies::create_company(&mut client, "Analytical Engines").await;
    let elsewhere = crate::companies::create_company(&mut client, "Difference Co").await;

    // The same email, in different case.
    let mail_a = create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;
    let mail_b = create(&mut client, person("Augusta", "King", "ADA@Example.com")).await;
    // The same phone, in different formats.
    let mut phone_a = person("Charles", "Babbage", "charles@example.com");
    phone_a.phones = vec![phone_number("+1 (555) 010-0000")];
    let phone_a = create(&mut client, phone_a).await;
    let mut phone_b = person("Chuck", "B", "chuck@other.example");
    phone_b.phones = vec![phone_number("+15550100000")];
    let phone_b = create(&mut client, phone_b).await;
    // A similar name within one company, and the same name at another company.
    let mut name_a = person("Jonathan", "Smith", "jon@engines.example");
    name_a.company = company.name.clone();
    let name_a = create(&mut client, name_a).await;
    let mut name_b = person("Jonathon", "Smith", "jsmith@engines.example");
    name_b.company = company.name.clone();
    let name_b = create(&mut client, name_b).await;
    let mut name_c = person("Jonathan", "Smith", "jonathan@difference.example");
    name_c.company = elsewhere.name.clone();
    let name_c = create(&mut client, name_c).await;
    // Email and phone both shared.
    let mut both_a = person("Grace", "Hopper", "grace@navy.example");
    both_a.phones = vec![phone_number("+1 555 777 8888")];
    let both_a = create(&mut client, both_a).await;
    let mut both_b = person("G", "Hopper", "Grace@Navy.example");
    both_b.phones = vec![phone_number("+1-555-777-8888")];
    let both_b = create(&mut client, both_b).await;
    // Unrelated.
    let loner = create(
        &mut client,
        person("Edsger", "Dijkstra", "edsger@example.com"),
    )
    .await;

    let found = find(&mut client, FindDuplicatesRequest::default()).await;
    let pairs = &found.pairs;
    let all = describe(pairs);

    let expect = |a: &crm_proto::contacts::Contact,
                  b: &crm_proto::contacts::Contact,
                  reasons: &[DuplicateReason]| {
        let pair = pair_of(pairs, &a.name, &b.name)
            .unwrap_or_else(|| panic!("no pair for {} / {}: {all}", a.given_name, b.given_name));
        assert_eq!(pair.contact, a.name, "the older contact comes first: {all}");
        assert_eq!(
            pair.duplicate, b.name,
            "the newer contact is the duplicate: {all}"
        );
        assert!(
            pair.score >= 0.5 && pair.score <= 1.0,
            "score within [min_score, 1]: {all}"
        );
        let mut got: Vec<i32> = pair.reasons.clone();
        got.sort();
        let mut want: Vec<i32> = reasons.iter().map(|r| *r as i32).collect();
        want.sort();
        assert_eq!(
            got, want,
            "reasons of {} / {}: {all}",
            a.given_name, b.given_name
        );
        pair.score
    };
    expect(&mail_a, &mail_b, &[DuplicateReason::SameEmail]);
    expect(&phone_a, &phone_b, &[DuplicateReason::SamePhone]);
    expect(&name_a, &name_b, &[DuplicateReason::SimilarNameSameCompany]);
    let single = expect(&mail_a, &mail_b, &[DuplicateReason::SameEmail]);
    let double = expect(
        &both_a,
        &both_b,
        &[DuplicateReason::SameEmail, DuplicateReason::SamePhone],
    );
    assert!(
        double >= single,
        "two reasons score at least as high as one: {all}"
    );

    assert!(
        pair_of(pairs, &name_a.name, &name_c.name).is_none(),
        "different companies: {all}"
    );
    assert!(
        pair_of(pairs, &name_b.name, &name_c.name).is_none(),
        "different companies: {all}"
    );
    assert!(
        !involves(pairs, &loner.name),
        "an unrelated contact is no duplicate: {all}"
    );
    assert_eq!(pairs.len(), 4, "exactly the four duplicate pairs: {all}");
    for window in pairs.windows(2) {
        assert!(
            window[0].score >= window[1].score,
            "highest score first: {all}"
        );
    }

    // Only pairs involving one contact.
    let only = find(
        &mut client,
        FindDuplicatesRequest {
            contact: phone_b.name.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(only.pairs.len(), 1, "{}", describe(&only.pairs));
    assert!(pair_of(&only.pairs, &phone_a.name, &phone_b.name).is_some());
    // One contact's similar names are looked for in its company.
    for (contact, other) in [(&name_b, &name_a), (&name_c, &name_a)] {
        let only = find(
            &mut client,
            FindDuplicatesRequest {
                contact: contact.name.clone(),
                ..Default::default()
            },
        )
        .await;
        let same_company = contact.company == other.company;
        assert_eq!(
            only.pairs.len(),
            usize::from(same_company),
            "{}",
            describe(&only.pairs)
        );
        assert_eq!(
            pair_of(&only.pairs, &other.name, &contact.name).is_some(),
            same_company
        );
    }

    // min_score filters, page_size limits.
    let strict = find(
        &mut client,
        FindDuplicatesRequest {
            min_score: double,
            ..Default::default()
        },
    )
    .await;
    assert!(
        strict.pairs.iter().all(|p| p.score >= double),
        "{}",
        describe(&strict.pairs)
    );
    assert!(pair_of(&strict.pairs, &both_a.name, &both_b.name).is_some());
    let limited = find(
        &mut client,
        FindDuplicatesRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(limited.pairs.len(), 2);
    assert_eq!(
        limited.pairs[0].score, pairs[0].score,
        "the best pairs are kept"
    );

    for bad in [-0.1, 1.5] {
        let status = client
            .find_duplicates(FindDuplicatesRequest {
                min_score: bad,
                ..Default::default()
            })
            .await
            .must_fail(&format!("FindDuplicates min_score {bad}"));
        assert_invalid_field(
            &status,
            "min_score",
            &format!("FindDuplicates min_score {bad}"),
        );
    }
    client
        .find_duplicates(FindDuplicatesRequest {
            contact: unknown_name("contacts"),
            ..Default::default()
        })
        .await
        .must_fail_with(Code::NotFound, "FindDuplicates of an unknown contact");
}
db_test!(
    finds_duplicates_with_reasons,
    finds_duplicates_with_reasons_on
);

async fn deleted_contacts_are_not_duplicates_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let a = create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;
    let b = create(&mut client, person("Ada", "L", "ada@example.com")).await;
    let found = find(&mut client, FindDuplicatesRequest::default()).await;
    assert!(
        pair_of(&found.pairs, &a.name, &b.name).is_some(),
        "{}",
        describe(&found.pairs)
    );
    client
        .delete_contact(crm_proto::contacts::DeleteContactRequest {
            name: b.name.clone(),
            etag: String::new(),
        })
        .await
        .must("DeleteContact");
    let found = find(&mut client, FindDuplicatesRequest::default()).await;
    assert!(
        found.pairs.is_empty(),
        "a soft-deleted contact is not reported: {}",
        describe(&found.pairs)
    );
}
db_test!(
    deleted_contacts_are_not_duplicates,
    deleted_contacts_are_not_duplicates_on
);
