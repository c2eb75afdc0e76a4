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

async fn search_sized(client: &mut Contacts, query: &str, page_size: i32) -> Vec<String> {
    let found = client
        .search_contacts(SearchContactsRequest {
            query: query.into(),
            page_size,
        })
        .await
        .must(&format!("SearchContacts {query:?} page_size {page_size}"));
    assert_best_first(&found, query);
    found
        .results
        .iter()
        .map(|r| {
            let contact = r.contact.as_ref().expect("contact");
            format!("{} {}", contact.display_name, r.score)
        })
        .collect()
}

/// A full page of whole-token matches is the answer on its own (PostgreSQL
/// reads it through the token index, in name order); a page they do not
/// fill ranks every match. Either way the order is points, then name.
async fn whole_token_pages_match_the_full_ranking_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    // Partial matches that sort before every whole one by name.
    create(&mut client, person("Akimbo", "Aardvark", "")).await;
    create(&mut client, person("Kimberly", "Aaron", "")).await;
    let kimco = crate::companies::create_company(&mut client, "Kimco").await;
    let mut at_kimco = person("Aaron", "Aab", "");
    at_kimco.company = kimco.name.clone();
    create(&mut client, at_kimco).await;
    // A deleted whole-token match that would sort first.
    let gone = create(&mut client, person("Kim", "Aaa", "")).await;
    client
        .delete_contact(crm_proto::contacts::DeleteContactRequest {
            name: gone.name.clone(),
            etag: gone.etag.clone(),
        })
        .await
        .must("DeleteContact");
    for i in (0..5).rev() {
        create(
            &mut client,
            person(
                "Kim",
                &format!("Zulu{i}"),
                &format!("kim.zulu{i}@example.com"),
            ),
        )
        .await;
    }

    assert_eq!(
        search_sized(&mut client, "kim", 3).await,
        ["Kim Zulu0 1", "Kim Zulu1 1", "Kim Zulu2 1"],
        "a page of whole-token matches, in name order"
    );
    assert_eq!(
        search_sized(&mut client, "kim", 10).await,
        [
            "Kim Zulu0 1",
            "Kim Zulu1 1",
            "Kim Zulu2 1",
            "Kim Zulu3 1",
            "Kim Zulu4 1",
            "Kimberly Aaron 0.6666666666666666",
            "Aaron Aab 0.3333333333333333",
            "Akimbo Aardvark 0.3333333333333333",
        ],
        "whole tokens, then starts of tokens, then the rest"
    );
    // Two words: both whole tokens of the same contacts fill the page.
    assert_eq!(
        search_sized(&mut client, "zulu1 kim", 1).await,
        ["Kim Zulu1 1"]
    );
    // Another tenant's whole-token match, first by name, is not this one's.
    create(
        &mut app.client("another-tenant", ADMIN),
        person("Kim", "Aab", ""),
    )
    .await;
    assert_eq!(search_sized(&mut client, "kim", 1).await, ["Kim Zulu0 1"]);
    // A rename moves the contact's tokens and name (PostgreSQL's token
    // table follows the row).
    let zulu0 = &list_all(&mut client, r#"family_name = "Zulu0""#, "", false).await[0];
    let mut change = zulu0.clone();
    change.given_name = "Tim".into();
    change.display_name = "Tim Zulu0".into();
    client
        .update_contact(crm_proto::contacts::UpdateContactRequest {
            contact: Some(change),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["given_name".into(), "display_name".into()],
            }),
        })
        .await
        .must("UpdateContact given_name");
    assert_eq!(search_sized(&mut client, "kim", 1).await, ["Kim Zulu1 1"]);
    assert_eq!(search_sized(&mut client, "tim", 1).await, ["Tim Zulu0 1"]);
    assert_eq!(
        search_sized(&mut client, "zulu0 tim", 1).await,
        ["Tim Zulu0 1"]
    );
    // Quotes and backslashes are only text (PostgreSQL writes the words of
    // the whole-token lookup into the statement).
    create(&mut client, person("Conan", "O'Brien", "")).await;
    assert_eq!(
        search_sized(&mut client, "o'brien", 1).await,
        ["Conan O'Brien 1"]
    );
    assert!(search_sized(&mut client, r"o\'brien", 5).await.is_empty());
    // A word spanning tokens (an email) is ranked the full way.
    assert_eq!(
        search_sized(&mut client, "kim.zulu4@example.com", 5).await,
        ["Kim Zulu4 1"]
    );
    if backend == Backend::Postgres {
        let full_page = ranking_plan(&app, "kim", 3).await;
        assert!(
            full_page
                .iter()
                .filter(|line| line.contains("on companies"))
                .all(|line| line.contains("never executed")),
            "a page of whole tokens ranks nothing (no company is read): {full_page:#?}"
        );
        let short_page = ranking_plan(&app, "kim", 10).await;
        assert!(
            short_page
                .iter()
                .any(|line| line.contains("on companies") && !line.contains("never executed")),
            "a page the whole tokens leave short ranks every match: {short_page:#?}"
        );
    }
}

/// SearchContacts' statement for `query`, run under `EXPLAIN ANALYZE`.
async fn ranking_plan(app: &TestApp, query: &str, limit: u64) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(&app.db.url)
        .await
        .expect("connect");
    let words: Vec<String> = query.split(' ').map(str::to_owned).collect();
    let statement = crm_contacts::search_statement(
        sea_orm::DbBackend::Postgres,
        &crm_shared::db::Tenant::new(TENANT),
        &words,
        limit,
    );
    let explain = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        format!("EXPLAIN ANALYZE {}", statement.sql),
        statement.values.map(|v| v.0).unwrap_or_default(),
    );
    db.query_all_raw(explain)
        .await
        .expect("explain")
        .iter()
        .map(|row| row.try_get::<String>("", "QUERY PLAN").expect("plan line"))
        .collect()
}
db_test!(
    whole_token_pages_match_the_full_ranking,
    whole_token_pages_match_the_full_ranking_on
);

/// The longest word in a contact's own text and a shorter one only in its
/// company's: the contact is found (the own-text lookup needs every long
/// word, so this match comes through the company's people).
async fn a_word_only_in_the_company_with_the_lead_in_the_name_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let acme = crate::companies::create_company(&mut client, "Acme").await;
    let mut grace = person("Grace", "Hopper", "grace@navy.example");
    grace.company = acme.name.clone();
    let grace = create(&mut client, grace).await;
    create(
        &mut client,
        person("Walter", "Hopper", "walter@example.com"),
    )
    .await;
    for query in [
        "hopper acme",
        "acme hopper",
        "grace hopper acme",
        "acm hopper",
    ] {
        assert_eq!(
            hit_names(&search(&mut client, query).await),
            vec![grace.name.clone()],
            "{query:?}"
        );
    }
}
db_test!(
    a_word_only_in_the_company_with_the_lead_in_the_name,
    a_word_only_in_the_company_with_the_lead_in_the_name_on
);
