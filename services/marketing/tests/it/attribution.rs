//! Leads and won revenue attributed to a campaign from the sales feed: a
//! lead naming the campaign, converted and won, counts in the deal's
//! currency beside the campaign's cost and ROI; a lead not naming it does
//! not; a deal reopened stops counting.

use chrono::{Duration, Utc};
use crm_proto::{
    common::Money,
    marketing::{
        Audience, Campaign, CampaignReturn, CreateCampaignRequest, GetCampaignRequest,
        ListCampaignsRequest,
    },
    sales::{
        ConvertLeadRequest, CreateLeadRequest, GetPipelineRequest, Lead, LeadSource, Opportunity,
        OpportunityState, UpdateOpportunityRequest,
    },
};
use prost_types::FieldMask;

use crate::{
    campaigns::{segment, template},
    harness::*,
};

fn money(currency: &str, units: i64) -> Money {
    Money {
        currency_code: currency.into(),
        units,
        nanos: 0,
    }
}

/// A lead converted into a deal of `amount`, moved to the stage `stage`
/// (by its display name in the default pipeline); the deal.
async fn deal(
    sales: &mut Sales,
    given: &str,
    campaign: &str,
    amount: Money,
    stage: &str,
) -> Opportunity {
    let lead = sales
        .create_lead(CreateLeadRequest {
            lead: Some(Lead {
                given_name: given.into(),
                family_name: "Buyer".into(),
                email: format!("{}@buyers.example", given.to_lowercase()),
                company_name: format!("{given} Ltd"),
                source: LeadSource::Campaign as i32,
                campaign: campaign.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateLead")
        .into_inner();
    let opportunity = sales
        .convert_lead(ConvertLeadRequest {
            name: lead.name,
            create_opportunity: true,
            amount: Some(amount),
            expected_close_date: (Utc::now() + Duration::days(30))
                .format("%Y-%m-%d")
                .to_string(),
            ..Default::default()
        })
        .await
        .expect("ConvertLead")
        .into_inner()
        .opportunity
        .expect("an opportunity");
    move_to(sales, opportunity, stage).await
}

/// The deal moved to the stage of its pipeline named `stage`.
async fn move_to(sales: &mut Sales, deal: Opportunity, stage: &str) -> Opportunity {
    let pipeline = sales
        .get_pipeline(GetPipelineRequest {
            name: deal.pipeline.clone(),
        })
        .await
        .expect("GetPipeline")
        .into_inner();
    let stage = pipeline
        .stages
        .iter()
        .find(|s| s.display_name == stage)
        .unwrap_or_else(|| panic!("no stage {stage}"))
        .name
        .clone();
    sales
        .update_opportunity(UpdateOpportunityRequest {
            opportunity: Some(Opportunity { stage, ..deal }),
            update_mask: Some(FieldMask {
                paths: vec!["stage".into()],
            }),
        })
        .await
        .expect("UpdateOpportunity")
        .into_inner()
}

/// The campaign once its counts show `leads` leads and `won_deals` deals.
async fn attributed(m: &mut Marketing, name: &str, leads: i32, won_deals: i32) -> Campaign {
    let mut last = None;
    eventually_within(30, "the sales feed reaches marketing", async || {
        let c = m
            .get_campaign(GetCampaignRequest { name: name.into() })
            .await
            .expect("GetCampaign")
            .into_inner();
        let done = c
            .counts
            .as_ref()
            .is_some_and(|n| (n.leads, n.won_deals) == (leads, won_deals));
        last = Some(c);
        done
    })
    .await;
    let c = last.expect("a campaign");
    // A list page reads every campaign's counts at once: the same figures.
    let listed = m
        .list_campaigns(ListCampaignsRequest {
            page_size: 50,
            ..Default::default()
        })
        .await
        .expect("ListCampaigns")
        .into_inner();
    let in_list = listed
        .campaigns
        .iter()
        .find(|l| l.name == c.name)
        .expect("the campaign is listed");
    assert_eq!((&in_list.counts, &in_list.returns), (&c.counts, &c.returns));
    c
}

db_test!(won_deals_are_attributed_to_their_campaign, attribution_on);
async fn attribution_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut m = suite.marketing(TENANT, MARKETER);
    let mut sales = suite.sales(TENANT, ADMIN);
    let audience = segment(&mut m, r#"tags:"nobody""#).await;
    let written = template(&mut m).await;
    let c = m
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                display_name: "Webinar invite".into(),
                template: written,
                from_address: "news@acme.example".into(),
                audience: Some(Audience {
                    segments: vec![audience],
                    ..Default::default()
                }),
                cost: Some(money("EUR", 1_000)),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateCampaign")
        .into_inner();

    // Two leads from the campaign won (in two currencies), one lead from
    // elsewhere won, and one from the campaign still open.
    deal(
        &mut sales,
        "Ada",
        &c.name,
        money("EUR", 5_000),
        "Closed won",
    )
    .await;
    let usd = deal(&mut sales, "Bea", &c.name, money("USD", 700), "Closed won").await;
    assert_eq!(usd.state(), OpportunityState::Won);
    deal(&mut sales, "Cy", "", money("EUR", 9_999), "Closed won").await;
    deal(&mut sales, "Dan", &c.name, money("EUR", 300), "Proposal").await;

    // Three leads name it (Cy's does not), two were won.
    let c = attributed(&mut m, &c.name, 3, 2).await;
    let returns: Vec<CampaignReturn> = c.returns;
    assert_eq!(
        returns,
        [
            CampaignReturn {
                currency_code: "EUR".into(),
                won_revenue: Some(money("EUR", 5_000)),
                cost: Some(money("EUR", 1_000)),
                roi: Some(4.0),
            },
            CampaignReturn {
                currency_code: "USD".into(),
                won_revenue: Some(money("USD", 700)),
                cost: Some(money("USD", 0)),
                roi: None,
            },
        ]
    );

    // Reopened, the USD deal no longer counts.
    move_to(&mut sales, usd, "Proposal").await;
    let c = attributed(&mut m, &c.name, 3, 1).await;
    let currencies: Vec<&str> = c.returns.iter().map(|r| r.currency_code.as_str()).collect();
    assert_eq!(currencies, ["EUR"]);

    // Another tenant's campaign knows nothing of it.
    let mut other = suite.marketing("globex", MARKETER);
    let hidden = other
        .get_campaign(GetCampaignRequest {
            name: c.name.clone(),
        })
        .await
        .expect_err("another tenant's campaign");
    assert_eq!(hidden.code(), tonic::Code::NotFound);
}
