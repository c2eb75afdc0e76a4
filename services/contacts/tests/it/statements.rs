//! Statements per call do not grow with the data (no N+1 queries): each hot
//! call reports its statement count (`x-crm-db-statements`) on a tenant of
//! 12 contacts and again on the same tenant with 600 more, and the counts
//! must be equal.

use std::collections::BTreeMap;

use crm_proto::contacts::{
    BatchGetContactsRequest, FindDuplicatesRequest, GetCompanyRequest, GetContactRequest,
    ListCompaniesRequest, ListContactsRequest, SearchContactsRequest, UpdateContactRequest,
};
use crm_testkit::{
    Backend,
    statements::{assert_unchanged, counted, statement_count},
};

use crate::support::*;

/// Each hot call's statement count on the tenant as it is now.
async fn count_calls(
    client: &mut Contacts,
    ada: &str,
    company: &str,
) -> BTreeMap<&'static str, u32> {
    let mut counts = BTreeMap::new();
    let mut new = person("Count", "Me", "");
    new.company = company.to_owned();
    let created = client.create_contact(counted(crm_proto::contacts::CreateContactRequest {
        contact: Some(new),
        request_id: String::new(),
    }));
    let response = created.await;
    let created = response.as_ref().map(|r| r.get_ref().clone()).ok();
    counts.insert("CreateContact", statement_count(&response, "CreateContact"));
    let get = GetContactRequest {
        name: ada.to_owned(),
    };
    counts.insert(
        "GetContact",
        statement_count(&client.get_contact(counted(get)).await, "GetContact"),
    );
    let mut change = created.expect("created");
    change.job_title = "Counter".into();
    let update = UpdateContactRequest {
        contact: Some(change),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["job_title".into()],
        }),
    };
    counts.insert(
        "UpdateContact",
        statement_count(
            &client.update_contact(counted(update)).await,
            "UpdateContact",
        ),
    );
    let list = ListContactsRequest {
        page_size: 50,
        filter: r#"family_name = "Lovelace""#.into(),
        order_by: "display_name".into(),
        ..Default::default()
    };
    let first = client.list_contacts(counted(list.clone())).await;
    let token = first
        .as_ref()
        .map(|r| r.get_ref().next_page_token.clone())
        .unwrap_or_default();
    counts.insert("ListContacts", statement_count(&first, "ListContacts"));
    let next = ListContactsRequest {
        page_token: token,
        ..list
    };
    counts.insert(
        "ListContacts (next page)",
        statement_count(
            &client.list_contacts(counted(next)).await,
            "ListContacts next",
        ),
    );
    let search = SearchContactsRequest {
        query: "ada lovelace".into(),
        page_size: 20,
    };
    counts.insert(
        "SearchContacts",
        statement_count(
            &client.search_contacts(counted(search)).await,
            "SearchContacts",
        ),
    );
    let duplicates = FindDuplicatesRequest {
        contact: ada.to_owned(),
        ..Default::default()
    };
    counts.insert(
        "FindDuplicates (one contact)",
        statement_count(
            &client.find_duplicates(counted(duplicates)).await,
            "FindDuplicates",
        ),
    );
    let batch = BatchGetContactsRequest {
        names: vec![ada.to_owned()],
    };
    counts.insert(
        "BatchGetContacts",
        statement_count(
            &client.batch_get_contacts(counted(batch)).await,
            "BatchGetContacts",
        ),
    );
    let get = GetCompanyRequest {
        name: company.to_owned(),
    };
    counts.insert(
        "GetCompany",
        statement_count(&client.get_company(counted(get)).await, "GetCompany"),
    );
    let list = ListCompaniesRequest {
        page_size: 50,
        ..Default::default()
    };
    counts.insert(
        "ListCompanies",
        statement_count(&client.list_companies(counted(list)).await, "ListCompanies"),
    );
    counts
}

async fn statements_do_not_grow_with_the_data_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let company = crate::companies::create_company(&mut client, "Analytical Engines").await;
    let people = |from: usize, to: usize| -> Vec<_> {
        (from..to)
            .map(|i| {
                let mut contact = person("Ada", "Lovelace", &format!("ada{i}@engines.example"));
                contact.company = company.name.clone();
                contact
            })
            .collect()
    };
    let mut ada = person("Ada", "Lovelace", "ada@engines.example");
    ada.company = company.name.clone();
    let ada = create(&mut client, ada).await;
    crate::import_export::import(&mut client, people(0, 11)).await;
    let small = count_calls(&mut client, &ada.name, &company.name).await;
    crate::import_export::import(&mut client, people(11, 611)).await;
    let large = count_calls(&mut client, &ada.name, &company.name).await;
    eprintln!("statements per call ({backend:?}): {small:?}");
    assert_unchanged(&small, &large, "at 12 and at 612 contacts");
    // The company check, then the row, its keys, the audit entry and state
    // and the event in one call (`Store::commit_with`): one statement on
    // PostgreSQL, one call to sqlx's database thread on SQLite.
    assert_eq!(small["CreateContact"], 2, "a create's writes in one call");
}
db_test!(
    statements_do_not_grow_with_the_data,
    statements_do_not_grow_with_the_data_on
);
