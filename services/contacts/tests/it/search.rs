//! SearchContacts: case- and accent-insensitive, over names, emails, phones
//! and company, every word must match, best match first.

use crm_proto::contacts::{Contact, SearchContactsRequest, SearchContactsResponse};
use crm_testkit::Backend;

use crate::support::*;

async fn search(client: &mut Contacts, query: &str) -> SearchContactsResponse {
    client
        .search_contacts(SearchContactsRequest {
            query: query.into(),
            page_size: 0,
        })
        .await
        .must(&format!("SearchContacts {query:?}"))
}

fn hit_names(response: &SearchContactsResponse) -> Vec<String> {
    response
        .results
        .iter()
        .map(|r| {
            r.contact
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default()
        })
        .collect()
}

fn assert_best_first(response: &SearchContactsResponse, query: &str) {
    for pair in response.results.windows(2) {
        assert!(
            pair[0].score >= pair[1].score,
            "results of {query:?} are not best first: {} then {}",
            pair[0].score,
            pair[1].score
        );
    }
}

async fn finds_regardless_of_case_and_accents_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let jose = create(&mut client, person("José", "Müller", "jm@example.com")).await;
    let francois = create(
        &mut client,
        person("François", "Ångström", "fa@example.com"),
    )
    .await;
    create(
        &mut client,
        person("Joseph", "Miller", "joseph@example.com"),
    )
    .await;
    create(&mut client, person("Ada", "Lovelace", "ada@example.com")).await;
    let found = search(&mut client, "jos").await;
    assert_eq!(found.results.len(), 2, "a word matches a part of a name");
    assert_best_first(&found, "jos");

    for query in [
        "jose muller",
        "JOSE MULLER",
        "José Müller",
        "müller",
        "muller jose",
    ] {
        let found = search(&mut client, query).await;
        // Joseph Miller matches "jose" but not "muller": every word must match.
        assert_eq!(
            hit_names(&found),
            vec![jose.name.clone()],
            "{query:?} finds José Müller and only him"
        );
    }
    let found = search(&mut client, "francois angstrom").await;
    assert_eq!(hit_names(&found), vec![francois.name.clone()]);
    let hit = found.results[0].contact.clone().expect("contact");
    assert_eq!(
        hit.given_name, "François",
        "the contact comes back as stored"
    );
    assert!(found.results[0].score > 0.0, "a hit has a positive score");

    let found = search(&mut client, "nobody-by-this-name").await;
    assert!(found.results.is_empty(), "no hits: {:?}", hit_names(&found));
}
db_test!(
    finds_regardless_of_case_and_accents,
    finds_regardless_of_case_and_accents_on
);

async fn searches_emails_phones_and_company_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let company = crate::companies::create_company(&mut client, "Analytical Engines").await;
    let mut ada = person("Ada", "Lovelace", "countess@difference.example");
    ada.emails
        .push(email_address("Second.Address@Elsewhere.example"));
    ada.phones = vec![phone_number("+44 20 7946 0958")];
    ada.company = company.name.clone();
    let ada = create(&mut client, ada).await;
    let mut bob = person("Bob", "Builder", "bob@builders.example");
    bob.phones = vec![phone_number("+1 (555) 010-0000")];
    let bob = create(&mut client, bob).await;

    let cases = [
        ("countess@difference.example", &ada),
        ("second.address@elsewhere.example", &ada),
        ("difference.example", &ada),
        ("442079460958", &ada),
        ("5550100000", &bob),
        ("analytical", &ada),
        ("ANALYTICAL ENGINES", &ada),
        ("ada analytical", &ada),
        ("builders.example", &bob),
    ];
    for (query, expected) in cases {
        let found = search(&mut client, query).await;
        assert_eq!(
            hit_names(&found),
            vec![expected.name.clone()],
            "{query:?} finds exactly {} {}",
            expected.given_name,
            expected.family_name
        );
    }
}
db_test!(
    searches_emails_phones_and_company,
    searches_emails_phones_and_company_on
);

async fn ranks_exact_name_matches_first_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    // The partial matches are created first, so creation order cannot explain the ranking.
    let adamson = create(&mut client, person("Adam", "Adamson", "adam@example.com")).await;
    let adaline = create(
        &mut client,
        person("Adaline", "Smith", "adaline@example.com"),
    )
    .await;
    let ada = create(&mut client, person("Ada", "Lovelace", "ada.l@example.com")).await;

    let found = search(&mut client, "ada").await;
    let hits = hit_names(&found);
    assert_eq!(
        hits.first(),
        Some(&ada.name),
        "the exact name match comes first: {hits:?}"
    );
    assert!(
        hits.contains(&adamson.name) && hits.contains(&adaline.name),
        "partial matches too"
    );
    assert!(
        found.results[0].score > found.results[1].score,
        "the exact match scores higher than a partial one"
    );
    assert_best_first(&found, "ada");

    let found = search(&mut client, "lovelace").await;
    assert_eq!(hit_names(&found), vec![ada.name.clone()]);
    let found = search(&mut client, "ada smith").await;
    assert_eq!(
        hit_names(&found),
        vec![adaline.name.clone()],
        "every word must match"
    );
}
db_test!(
    ranks_exact_name_matches_first,
    ranks_exact_name_matches_first_on
);

async fn search_page_size_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    for i in 0..25 {
        let contact: Contact = person("Zebedee", &format!("Number{i:02}"), "");
        create(&mut client, contact).await;
    }
    let found = search(&mut client, "zebedee").await;
    assert_eq!(found.results.len(), 20, "page_size 0 means 20");
    let found = client
        .search_contacts(SearchContactsRequest {
            query: "zebedee".into(),
            page_size: 500,
        })
        .await
        .must("SearchContacts page_size 500 is clamped");
    assert_eq!(found.results.len(), 25);
    let found = client
        .search_contacts(SearchContactsRequest {
            query: "zebedee".into(),
            page_size: 3,
        })
        .await
        .must("SearchContacts page_size 3");
    assert_eq!(found.results.len(), 3);
    let status = client
        .search_contacts(SearchContactsRequest {
            query: "zebedee".into(),
            page_size: -1,
        })
        .await
        .must_fail("SearchContacts page_size -1");
    assert_invalid_field(&status, "page_size", "SearchContacts page_size -1");
}
db_test!(search_page_size, search_page_size_on);

async fn ranks_every_match_and_follows_changes_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    // The best match is the oldest of 601: ranking must see every match,
    // not the most recent few hundred.
    let ada = create(
        &mut client,
        person("Ada", "Lovelace", "countess@example.com"),
    )
    .await;
    let partial: Vec<Contact> = (0..600)
        .map(|i| {
            person(
                "Adam",
                &format!("Adamson{i:03}"),
                &format!("adam{i}@example.com"),
            )
        })
        .collect();
    crate::import_export::import(&mut client, partial).await;
    let found = search(&mut client, "ada").await;
    assert_eq!(found.results.len(), 20);
    assert_eq!(hit_names(&found)[0], ada.name, "the whole-word match leads");
    assert_best_first(&found, "ada");

    // A short word (under the trigram index's three characters) and a word
    // with LIKE metacharacters are matched literally.
    assert_eq!(
        hit_names(&search(&mut client, "lo").await),
        vec![ada.name.clone()]
    );
    assert!(search(&mut client, "a%").await.results.is_empty());
    assert!(search(&mut client, "a_a").await.results.is_empty());
    assert!(search(&mut client, "\"ada\"").await.results.is_empty());

    // The index follows a rename and a deletion.
    let mut change = ada.clone();
    change.family_name = "King".into();
    change.display_name = "Ada King".into();
    let renamed = client
        .update_contact(crm_proto::contacts::UpdateContactRequest {
            contact: Some(change),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["family_name".into(), "display_name".into()],
            }),
        })
        .await
        .must("UpdateContact family_name");
    assert!(search(&mut client, "lovelace").await.results.is_empty());
    assert_eq!(
        hit_names(&search(&mut client, "ada king").await),
        vec![ada.name.clone()]
    );
    client
        .delete_contact(crm_proto::contacts::DeleteContactRequest {
            name: renamed.name.clone(),
            etag: renamed.etag.clone(),
        })
        .await
        .must("DeleteContact");
    assert!(search(&mut client, "ada king").await.results.is_empty());
}
db_test!(
    ranks_every_match_and_follows_changes,
    ranks_every_match_and_follows_changes_on
);
