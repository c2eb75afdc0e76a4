//! The contacts feed reaches sales: merges move references to the survivor,
//! erasures erase the copied data, across a restart of sales.

use chrono::{Duration, Utc};
use crm_proto::sales::LeadStatus;
use crm_proto::{
    contacts::{
        Contact, CreateContactRequest, EraseContactRequest, ListContactsRequest,
        MergeContactsRequest,
    },
    sales::{
        ConvertLeadRequest, CreateLeadRequest, CreateOpportunityRequest, CreateTaskRequest,
        GetLeadRequest, GetOpportunityRequest, GetTaskRequest, Opportunity, Task,
    },
};
use crm_shared::convert::to_timestamp;
use crm_testkit::Backend;
use tonic::Code;

use crate::{revenue::lead, support::*};

db_test!(merges_and_erasures_in_contacts_reach_sales, merges_on);
async fn merges_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    let mut contacts = suite.contacts(TENANT, ADMIN);
    let captured = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Ada", "ada@x.example", "", 0)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let survivor = sales
        .convert_lead(ConvertLeadRequest {
            name: captured.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .contact;
    let twin = contacts
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                given_name: "A.".into(),
                family_name: "Lovelace".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .name;
    let deal = sales
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: "Twin deal".into(),
                contact: twin.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let task = sales
        .create_task(CreateTaskRequest {
            task: Some(Task {
                title: "Call the twin".into(),
                due_time: Some(to_timestamp(Utc::now() + Duration::days(1))),
                contact: twin.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();

    contacts
        .merge_contacts(MergeContactsRequest {
            survivor: survivor.clone(),
            merged: vec![twin.clone()],
            ..Default::default()
        })
        .await
        .expect("MergeContacts");
    eventually("the deal and the task point at the survivor", async || {
        let deal = sales
            .get_opportunity(GetOpportunityRequest {
                name: deal.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let task = sales
            .get_task(GetTaskRequest {
                name: task.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        deal.contact == survivor && task.contact == survivor
    })
    .await;

    // Sales is down while the person asks to be forgotten; it catches up.
    suite.stop_sales().await;
    contacts
        .erase_contact(EraseContactRequest {
            name: survivor.clone(),
        })
        .await
        .expect("EraseContact");
    suite.start_sales().await;
    let mut sales = suite.sales(TENANT, ADMIN);
    eventually("the lead's copy of the person is erased", async || {
        let lead = sales
            .get_lead(GetLeadRequest {
                name: captured.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        lead.email.is_empty() && lead.given_name.is_empty() && lead.family_name.is_empty()
    })
    .await;
    let types = suite.sales_event_types().await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "crm.sales.v1.LeadErased")
            .count(),
        1,
        "{types:?}"
    );
}

db_test!(
    a_conversion_cut_short_by_contacts_leaves_nothing_half_done,
    cut_short_on
);
async fn cut_short_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    let captured = sales
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Hedy", "hedy@x.example", "", 0)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let addr = suite.stop_contacts().await;
    let convert = ConvertLeadRequest {
        name: captured.name.clone(),
        ..Default::default()
    };
    let failed = sales
        .convert_lead(convert.clone())
        .await
        .expect_err("contacts is down");
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    let lead = sales
        .get_lead(GetLeadRequest {
            name: captured.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lead.status, LeadStatus::New as i32, "not half-converted");
    assert!(lead.converted_contact.is_empty());

    suite.start_contacts(addr).await;
    let converted = sales
        .convert_lead(convert)
        .await
        .expect("the retry converts")
        .into_inner();
    let mut contacts = suite.contacts(TENANT, ADMIN);
    let people = contacts
        .list_contacts(ListContactsRequest {
            filter: r#"email = "hedy@x.example""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(
        people.len(),
        1,
        "one contact, whatever was made before the failure"
    );
    assert_eq!(people[0].name, converted.contact);

    // The feed consumer reconnected after the restart: a merge still reaches sales.
    let twin = contacts
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                given_name: "H.".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .name;
    let task = sales
        .create_task(CreateTaskRequest {
            task: Some(Task {
                title: "Follow up".into(),
                due_time: Some(to_timestamp(Utc::now() + Duration::days(1))),
                contact: twin.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    contacts
        .merge_contacts(MergeContactsRequest {
            survivor: converted.contact.clone(),
            merged: vec![twin],
            ..Default::default()
        })
        .await
        .unwrap();
    eventually(
        "the merge reaches sales after contacts restarted",
        async || {
            sales
                .get_task(GetTaskRequest {
                    name: task.name.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .contact
                == converted.contact
        },
    )
    .await;
}
