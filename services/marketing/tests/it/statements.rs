//! Statements per call do not grow with the data (no N+1 queries): the
//! marketing calls report their statement count (`x-crm-db-statements`)
//! with a few lists, templates and campaigns (every other one A/B-tested) and again with 40 more of each
//! (and their members), and the counts must be equal.

use std::collections::BTreeMap;

use crm_proto::marketing::{
    AbMetric, AbTest, AddListMembersRequest, Audience, Campaign, CreateCampaignRequest,
    CreateMailingListRequest, CreateSegmentRequest, CreateTemplateRequest, GetCampaignRequest,
    GetTemplateRequest, ListCampaignsRequest, ListListMembersRequest, ListSegmentsRequest,
    ListTemplatesRequest, MailingList, Segment, Template,
};
use crm_testkit::statements::{assert_unchanged, counted, statement_count};

use crate::harness::*;

fn template_message(i: usize) -> Template {
    Template {
        display_name: format!("Launch {i}"),
        subject: r#"Hello {{ contact.given_name | default("there") }}"#.into(),
        html_body: r#"<p>Hi</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>"#.into(),
        text_body: "Hi {{ contact.given_name | default(\"there\") }}".into(),
        ..Default::default()
    }
}

fn list_message(i: usize) -> MailingList {
    MailingList {
        display_name: format!("Newsletter {i}"),
        ..Default::default()
    }
}

fn members(i: usize) -> Vec<String> {
    (0..5)
        .map(|j| format!("reader{i}-{j}@example.com"))
        .collect()
}

/// Every other campaign tests a second subject line (its variants' counts
/// are read with it).
fn campaign_message(i: usize, template: &str, list: &str) -> Campaign {
    Campaign {
        ab_test: i.is_multiple_of(2).then(|| AbTest {
            subject: format!("B: a better offer {i}"),
            test_percent: 20,
            metric: AbMetric::OpenRate as i32,
            wait: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            ..Default::default()
        }),
        display_name: format!("Spring launch {i}"),
        template: template.into(),
        from_address: "news@acme.example".into(),
        audience: Some(Audience {
            mailing_lists: vec![list.into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A list with five members, a template and a draft campaign to the list.
async fn create(m: &mut Marketing, i: usize) {
    let list = m
        .create_mailing_list(CreateMailingListRequest {
            mailing_list: Some(list_message(i)),
            request_id: String::new(),
        })
        .await
        .must("CreateMailingList")
        .name;
    m.add_list_members(AddListMembersRequest {
        mailing_list: list.clone(),
        contacts: Vec::new(),
        emails: members(i),
    })
    .await
    .must("AddListMembers");
    let template = m
        .create_template(CreateTemplateRequest {
            template: Some(template_message(i)),
            request_id: String::new(),
        })
        .await
        .must("CreateTemplate")
        .name;
    m.create_campaign(CreateCampaignRequest {
        campaign: Some(campaign_message(i, &template, &list)),
        request_id: String::new(),
    })
    .await
    .must("CreateCampaign");
}

/// Each call's statement count now.
async fn count_calls(m: &mut Marketing, i: usize) -> BTreeMap<&'static str, u32> {
    let mut counts = BTreeMap::new();
    let request = CreateMailingListRequest {
        mailing_list: Some(list_message(i)),
        request_id: String::new(),
    };
    let list = m.create_mailing_list(counted(request)).await;
    counts.insert(
        "CreateMailingList",
        statement_count(&list, "CreateMailingList"),
    );
    let list = list.expect("created").into_inner().name;
    let add = AddListMembersRequest {
        mailing_list: list.clone(),
        contacts: Vec::new(),
        emails: members(i),
    };
    let added = m.add_list_members(counted(add)).await;
    counts.insert("AddListMembers", statement_count(&added, "AddListMembers"));
    let members = ListListMembersRequest {
        parent: list.clone(),
        page_size: 50,
        page_token: String::new(),
    };
    let listed = m.list_list_members(counted(members)).await;
    counts.insert(
        "ListListMembers",
        statement_count(&listed, "ListListMembers"),
    );
    let request = CreateTemplateRequest {
        template: Some(template_message(i)),
        request_id: String::new(),
    };
    let template = m.create_template(counted(request)).await;
    counts.insert(
        "CreateTemplate",
        statement_count(&template, "CreateTemplate"),
    );
    let template = template.expect("created").into_inner().name;
    let got = m
        .get_template(counted(GetTemplateRequest {
            name: template.clone(),
        }))
        .await;
    counts.insert("GetTemplate", statement_count(&got, "GetTemplate"));
    let listed = m
        .list_templates(counted(ListTemplatesRequest {
            page_size: 50,
            ..Default::default()
        }))
        .await;
    counts.insert("ListTemplates", statement_count(&listed, "ListTemplates"));
    let request = CreateCampaignRequest {
        campaign: Some(campaign_message(i, &template, &list)),
        request_id: String::new(),
    };
    let campaign = m.create_campaign(counted(request)).await;
    counts.insert(
        "CreateCampaign",
        statement_count(&campaign, "CreateCampaign"),
    );
    let campaign = campaign.expect("created").into_inner().name;
    let got = m
        .get_campaign(counted(GetCampaignRequest { name: campaign }))
        .await;
    counts.insert("GetCampaign", statement_count(&got, "GetCampaign"));
    let listed = m
        .list_campaigns(counted(ListCampaignsRequest {
            page_size: 50,
            ..Default::default()
        }))
        .await;
    counts.insert("ListCampaigns", statement_count(&listed, "ListCampaigns"));
    let request = CreateSegmentRequest {
        segment: Some(Segment {
            display_name: format!("Segment {i}"),
            filter: "job_title = \"Buyer\"".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let segment = m.create_segment(counted(request)).await;
    counts.insert("CreateSegment", statement_count(&segment, "CreateSegment"));
    let listed = m
        .list_segments(counted(ListSegmentsRequest {
            page_size: 50,
            ..Default::default()
        }))
        .await;
    counts.insert("ListSegments", statement_count(&listed, "ListSegments"));
    counts
}

db_test!(statements_do_not_grow_with_the_data, statements_on);
async fn statements_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut m = suite.marketing(TENANT, MARKETER);
    for i in 0..3 {
        create(&mut m, i).await;
    }
    let small = count_calls(&mut m, 1000).await;
    for i in 3..43 {
        create(&mut m, i).await;
    }
    let large = count_calls(&mut m, 1002).await;
    eprintln!("statements per call ({backend:?}): {small:?}");
    assert_unchanged(
        &small,
        &large,
        "with 4 and with 44 lists, templates and campaigns",
    );
}
