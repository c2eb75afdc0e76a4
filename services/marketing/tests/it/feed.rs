//! The contacts feed: a merge moves list memberships to the survivor; an
//! erasure takes the person off every list and out of the send ledger's
//! addresses, and marketing confirms it.

use crm_proto::{
    contacts::{EraseContactRequest, MergeContactsRequest},
    events::ErasureCompleted,
    marketing::{
        AddListMembersRequest, Audience, Campaign, CampaignState, CreateCampaignRequest,
        CreateMailingListRequest, CreateTemplateRequest, GetCampaignRequest,
        ListCampaignRecipientsRequest, ListListMembersRequest, MailingList,
        ScheduleCampaignRequest, Template,
    },
};

use crate::harness::*;

async fn members(m: &mut Marketing, list: &str) -> Vec<String> {
    m.list_list_members(ListListMembersRequest {
        parent: list.into(),
        ..Default::default()
    })
    .await
    .expect("ListListMembers")
    .into_inner()
    .members
    .into_iter()
    .map(|member| member.contact)
    .collect()
}

async fn list_of(m: &mut Marketing, name: &str, contact: &str) -> String {
    let list = m
        .create_mailing_list(CreateMailingListRequest {
            mailing_list: Some(MailingList {
                display_name: name.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateMailingList")
        .into_inner()
        .name;
    m.add_list_members(AddListMembersRequest {
        mailing_list: list.clone(),
        contacts: vec![contact.into()],
        emails: Vec::new(),
    })
    .await
    .expect("AddListMembers");
    list
}

db_test!(merges_and_erasures_reach_marketing, feed_on);
async fn feed_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let ada = suite.contact("Ada", "ada@example.com", &[], false).await;
    let ada2 = suite
        .contact("Ada L.", "ada.l@example.com", &[], false)
        .await;
    let mut m = suite.marketing(TENANT, MARKETER);
    let first = list_of(&mut m, "Newsletter", &ada).await;
    let second = list_of(&mut m, "Events", &ada2).await;
    let template = m
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: "Hi".into(),
                subject: "Hi".into(),
                text_body: "Hi {{ contact.given_name }}".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTemplate")
        .into_inner()
        .name;
    let campaign = m
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                display_name: "Hello".into(),
                template,
                from_address: "news@acme.example".into(),
                audience: Some(Audience {
                    mailing_lists: vec![first.clone()],
                    ..Default::default()
                }),
                messages_per_second: 100,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateCampaign")
        .into_inner()
        .name;
    m.schedule_campaign(ScheduleCampaignRequest {
        name: campaign.clone(),
        send_time: None,
    })
    .await
    .expect("ScheduleCampaign");
    eventually("the campaign is sent", async || {
        let c = m
            .get_campaign(GetCampaignRequest {
                name: campaign.clone(),
            })
            .await
            .expect("GetCampaign")
            .into_inner();
        c.state() == CampaignState::Sent
    })
    .await;

    let mut contacts = suite.contacts(TENANT, ADMIN);
    contacts
        .merge_contacts(MergeContactsRequest {
            survivor: ada.clone(),
            merged: vec![ada2.clone()],
            etag: String::new(),
        })
        .await
        .expect("MergeContacts");
    eventually("the merge reaches marketing", async || {
        members(&mut m, &second).await == [ada.clone()]
    })
    .await;

    contacts
        .erase_contact(EraseContactRequest { name: ada.clone() })
        .await
        .expect("EraseContact");
    eventually("the erasure reaches marketing", async || {
        suite
            .marketing_events()
            .await
            .iter()
            .any(|e| e.r#type == "crm.marketing.v1.ErasureCompleted")
    })
    .await;
    assert!(members(&mut m, &first).await.is_empty());
    assert!(members(&mut m, &second).await.is_empty());
    let ledger = m
        .list_campaign_recipients(ListCampaignRecipientsRequest {
            parent: campaign.clone(),
            ..Default::default()
        })
        .await
        .expect("ListCampaignRecipients")
        .into_inner()
        .recipients;
    assert_eq!(ledger.len(), 1, "the ledger keeps its row");
    assert!(
        ledger[0].email.is_empty(),
        "but not the address: {:?}",
        ledger[0]
    );
    let events = suite.marketing_events().await;
    let confirmation: ErasureCompleted = payload(
        events
            .iter()
            .find(|e| e.r#type == "crm.marketing.v1.ErasureCompleted")
            .expect("ErasureCompleted"),
    );
    assert_eq!(confirmation.service, "marketing");
    assert_eq!(confirmation.erased_resources.len(), 3, "{confirmation:?}");
}
