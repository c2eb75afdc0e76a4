//! Companies: create/get, list with filter, order and paging, updates with
//! etags, soft delete and request_id idempotency.

use std::collections::HashSet;

use crm_proto::{
    common::Money,
    contacts::{
        Company, Contact, CreateCompanyRequest, CreateContactRequest, DeleteCompanyRequest,
        GetCompanyRequest, ListCompaniesRequest, UndeleteCompanyRequest, UpdateCompanyRequest,
    },
};
use crm_testkit::Backend;
use prost_types::FieldMask;
use tonic::Code;

use crate::support::*;

/// Creates a company called `display_name` and returns it.
pub async fn create_company(client: &mut Contacts, display_name: &str) -> Company {
    client
        .create_company(CreateCompanyRequest {
            company: Some(Company {
                display_name: display_name.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must(&format!("CreateCompany {display_name}"))
}

async fn list_all_companies(client: &mut Contacts, filter: &str, order_by: &str) -> Vec<Company> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let page = client
            .list_companies(ListCompaniesRequest {
                page_size: 2,
                page_token: token.clone(),
                filter: filter.into(),
                order_by: order_by.into(),
                show_deleted: false,
                include_total_size: false,
            })
            .await
            .must(&format!(
                "ListCompanies filter={filter:?} order_by={order_by:?}"
            ));
        assert!(page.companies.len() <= 2, "at most page_size companies");
        all.extend(page.companies);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
    panic!("ListCompanies paging never ends");
}

fn company_names(companies: &[Company]) -> Vec<String> {
    companies.iter().map(|c| c.display_name.clone()).collect()
}

async fn creates_and_gets_a_company_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let created = client
        .create_company(CreateCompanyRequest {
            company: Some(Company {
                name: "companies/ignored".into(),
                display_name: "Analytical Engines".into(),
                domain: "Analytical.EXAMPLE".into(),
                industry: "Computing".into(),
                employee_count: 12,
                annual_revenue: Some(Money {
                    currency_code: "GBP".into(),
                    units: 1_000_000,
                    nanos: 500_000_000,
                }),
                tags: vec!["enterprise".into()],
                owner: "owner-1".into(),
                tier: " Gold ".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateCompany");
    assert!(
        is_resource_name(&created.name, "companies"),
        "name: {}",
        created.name
    );
    assert_eq!(created.display_name, "Analytical Engines");
    assert_eq!(
        created.domain, "analytical.example",
        "the domain is lower-cased"
    );
    assert_eq!(created.industry, "Computing");
    assert_eq!(created.employee_count, 12);
    let revenue = created.annual_revenue.clone().expect("annual_revenue");
    assert_eq!(
        (revenue.currency_code.as_str(), revenue.units, revenue.nanos),
        ("GBP", 1_000_000, 500_000_000)
    );
    assert_eq!(created.tags, vec!["enterprise".to_owned()]);
    assert_eq!(created.owner, "owner-1");
    assert_eq!(created.tier, "gold", "the tier is trimmed and lower-cased");
    assert!(created.create_time.is_some() && created.update_time.is_some());
    assert!(created.delete_time.is_none());
    assert!(!created.etag.is_empty());

    let got = client
        .get_company(GetCompanyRequest {
            name: created.name.clone(),
        })
        .await
        .must("GetCompany");
    assert_eq!(got, created);

    client
        .get_company(GetCompanyRequest {
            name: unknown_name("companies"),
        })
        .await
        .must_fail_with(Code::NotFound, "GetCompany of an unknown company");

    let status = client
        .create_company(CreateCompanyRequest {
            company: Some(Company {
                domain: "nameless.example".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must_fail("CreateCompany without display_name");
    assert_invalid_field(
        &status,
        "display_name",
        "CreateCompany without display_name",
    );

    // A contact's company must exist.
    let mut orphan = person("Orphan", "Worker", "orphan@example.com");
    orphan.company = unknown_name("companies");
    let status = client
        .create_contact(CreateContactRequest {
            contact: Some(orphan),
            request_id: String::new(),
        })
        .await
        .must_fail("CreateContact with an unknown company");
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound
        ),
        "an unknown company is the caller's mistake, got {:?}: {}",
        status.code(),
        status.message()
    );
    assert_eq!(count_contacts(&mut client).await, 0, "nothing was written");

    let mut worker: Contact = person("Ada", "Lovelace", "ada@example.com");
    worker.company = created.name.clone();
    let worker = create(&mut client, worker).await;
    assert_eq!(worker.company, created.name);

    let events = app.all_events().await;
    let about = events_about(&events, &created.name);
    assert_eq!(about.len(), 1);
    assert_eq!(about[0].r#type, event_type("CompanyCreated"));
    let payload: Company = payload(about[0]);
    assert_eq!(payload.name, created.name);
}
db_test!(creates_and_gets_a_company, creates_and_gets_a_company_on);

async fn lists_companies_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let rows = [
        (
            "Babbage Ltd",
            "babbage.example",
            "Computing",
            40,
            vec!["enterprise"],
        ),
        ("Hopper Inc", "hopper.example", "Navy", 400, vec![]),
        (
            "Turing GmbH",
            "turing.example",
            "Computing",
            7,
            vec!["startup"],
        ),
        (
            "Dijkstra BV",
            "dijkstra.example",
            "Research",
            120,
            vec!["enterprise"],
        ),
        ("Ada AG", "ada.example", "Computing", 1500, vec![]),
    ];
    for (display, domain, industry, employees, tags) in rows {
        client
            .create_company(CreateCompanyRequest {
                company: Some(Company {
                    display_name: display.into(),
                    domain: domain.into(),
                    industry: industry.into(),
                    employee_count: employees,
                    tier: if employees > 1000 {
                        "enterprise"
                    } else {
                        "standard"
                    }
                    .into(),
                    tags: tags.into_iter().map(String::from).collect(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .must(&format!("CreateCompany {display}"));
    }
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<HashSet<_>>()
    };
    let cases = [
        (
            r#"industry = "Computing""#,
            set(&["Babbage Ltd", "Turing GmbH", "Ada AG"]),
        ),
        (
            "employee_count > 100",
            set(&["Hopper Inc", "Dijkstra BV", "Ada AG"]),
        ),
        (r#"tags:"enterprise""#, set(&["Babbage Ltd", "Dijkstra BV"])),
        (r#"domain = "turing.example""#, set(&["Turing GmbH"])),
        (r#"tier = "enterprise""#, set(&["Ada AG"])),
        (
            r#"industry = "Computing" AND employee_count < 100"#,
            set(&["Babbage Ltd", "Turing GmbH"]),
        ),
    ];
    for (filter, expected) in cases {
        let got: HashSet<String> =
            company_names(&list_all_companies(&mut client, filter, "").await)
                .into_iter()
                .collect();
        assert_eq!(got, expected, "ListCompanies filter {filter}");
    }
    let by_size = list_all_companies(&mut client, "", "employee_count desc").await;
    assert_eq!(
        company_names(&by_size),
        vec![
            "Ada AG",
            "Hopper Inc",
            "Dijkstra BV",
            "Babbage Ltd",
            "Turing GmbH"
        ]
    );
    let by_name = list_all_companies(&mut client, "", "display_name").await;
    assert_eq!(
        company_names(&by_name),
        vec![
            "Ada AG",
            "Babbage Ltd",
            "Dijkstra BV",
            "Hopper Inc",
            "Turing GmbH"
        ]
    );
    let newest_first = list_all_companies(&mut client, "", "").await;
    assert_eq!(
        company_names(&newest_first),
        vec![
            "Ada AG",
            "Dijkstra BV",
            "Turing GmbH",
            "Hopper Inc",
            "Babbage Ltd"
        ],
        "the default order is create_time desc"
    );
    let page = client
        .list_companies(ListCompaniesRequest {
            include_total_size: true,
            page_size: 2,
            ..Default::default()
        })
        .await
        .must("ListCompanies");
    assert_eq!(page.total_size, 5);
    let status = client
        .list_companies(ListCompaniesRequest {
            filter: r#"secret_column = "x""#.into(),
            ..Default::default()
        })
        .await
        .must_fail("ListCompanies with a field outside the allow-list");
    assert_invalid_field(&status, "filter", "ListCompanies filter secret_column");
}
db_test!(lists_companies, lists_companies_on);

async fn updates_deletes_and_undeletes_companies_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let created = create_company(&mut client, "Babbage Ltd").await;

    let mut change = created.clone();
    change.industry = "Computing".into();
    change.display_name = "Not In The Mask".into();
    let updated = client
        .update_company(UpdateCompanyRequest {
            company: Some(change),
            update_mask: Some(FieldMask {
                paths: vec!["industry".into()],
            }),
        })
        .await
        .must("UpdateCompany industry");
    assert_eq!(updated.industry, "Computing");
    assert_eq!(
        updated.display_name, "Babbage Ltd",
        "display_name was not in the mask"
    );
    assert_ne!(updated.etag, created.etag);

    let mut stale = created.clone();
    stale.industry = "Stale".into();
    client
        .update_company(UpdateCompanyRequest {
            company: Some(stale),
            update_mask: Some(FieldMask {
                paths: vec!["industry".into()],
            }),
        })
        .await
        .must_fail_with(Code::Aborted, "UpdateCompany with a stale etag");
    client
        .delete_company(DeleteCompanyRequest {
            name: created.name.clone(),
            etag: created.etag.clone(),
        })
        .await
        .must_fail_with(Code::Aborted, "DeleteCompany with a stale etag");

    let deleted = client
        .delete_company(DeleteCompanyRequest {
            name: created.name.clone(),
            etag: updated.etag.clone(),
        })
        .await
        .must("DeleteCompany");
    assert!(deleted.delete_time.is_some());
    let got = client
        .get_company(GetCompanyRequest {
            name: created.name.clone(),
        })
        .await
        .must("GetCompany of a soft-deleted company");
    assert!(got.delete_time.is_some());
    assert_eq!(got.industry, "Computing");
    let listed = client
        .list_companies(ListCompaniesRequest::default())
        .await
        .must("ListCompanies");
    assert!(
        listed.companies.is_empty(),
        "List hides soft-deleted companies"
    );
    let listed = client
        .list_companies(ListCompaniesRequest {
            show_deleted: true,
            ..Default::default()
        })
        .await
        .must("ListCompanies show_deleted");
    assert_eq!(listed.companies.len(), 1);

    let restored = client
        .undelete_company(UndeleteCompanyRequest {
            name: created.name.clone(),
        })
        .await
        .must("UndeleteCompany");
    assert!(restored.delete_time.is_none());
    let listed = client
        .list_companies(ListCompaniesRequest::default())
        .await
        .must("ListCompanies");
    assert_eq!(
        listed.companies.len(),
        1,
        "the undeleted company is listed again"
    );

    let events = app.all_events().await;
    let types: Vec<String> = events_about(&events, &created.name)
        .iter()
        .map(|e| e.r#type.clone())
        .collect();
    let expected = [
        event_type("CompanyCreated"),
        event_type("CompanyUpdated"),
        event_type("CompanyDeleted"),
    ];
    assert!(types.starts_with(&expected), "company events: {types:?}");
    assert_eq!(types.len(), 4, "the undelete is an event too: {types:?}");
}
db_test!(
    updates_deletes_and_undeletes_companies,
    updates_deletes_and_undeletes_companies_on
);

async fn company_request_id_is_idempotent_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut client = app.admin();
    let id = request_id();
    let make = || CreateCompanyRequest {
        company: Some(Company {
            display_name: "Once Ltd".into(),
            ..Default::default()
        }),
        request_id: id.clone(),
    };
    let first = client.create_company(make()).await.must("CreateCompany");
    let again = client
        .create_company(make())
        .await
        .must("CreateCompany retried");
    assert_eq!(
        first.name, again.name,
        "the retry returns the first company"
    );
    let listed = client
        .list_companies(ListCompaniesRequest {
            show_deleted: true,
            ..Default::default()
        })
        .await
        .must("ListCompanies");
    assert_eq!(listed.companies.len(), 1, "the retry created nothing");
}
db_test!(
    company_request_id_is_idempotent,
    company_request_id_is_idempotent_on
);
