//! The contacts feed reaches sales: merges move references to the survivor,
//! erasures erase the copied data, across a restart of sales.

use chrono::{Duration, Utc};
use crm_proto::{
    contacts::{Contact, CreateContactRequest, EraseContactRequest, MergeContactsRequest},
    sales::{
        ConvertLeadRequest, CreateLeadRequest, CreateOpportunityRequest, CreateTaskRequest,
        GetLeadRequest, GetOpportunityRequest, GetTaskRequest, Opportunity, Task,
    },
};
use crm_shared::{convert::to_timestamp, testing::Backend};

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
