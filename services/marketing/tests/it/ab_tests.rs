//! An A/B test of a subject: half the test share gets each subject, the
//! rest wait; a click on variant B makes it the winner after the wait, and
//! the rest get B. Bad tests are refused naming the field; only the cost
//! changes once a campaign is scheduled.

use crm_proto::{
    common::Money,
    marketing::{
        AbMetric, AbTest, Audience, Campaign, CampaignState, CreateCampaignRequest,
        GetCampaignRequest, ListCampaignRecipientsRequest, ScheduleCampaignRequest,
        UpdateCampaignRequest,
    },
};
use prost_types::FieldMask;

use crate::{
    campaigns::{received, segment, sent, template},
    harness::*,
};

const NAMES: [&str; 6] = ["Ada", "Bea", "Cy", "Dan", "Eve", "Fay"];

fn ab_campaign(template: &str, segment: &str, test: AbTest) -> Campaign {
    Campaign {
        display_name: "Subject test".into(),
        template: template.into(),
        from_address: "news@acme.example".into(),
        audience: Some(Audience {
            segments: vec![segment.into()],
            ..Default::default()
        }),
        messages_per_second: 100,
        ab_test: Some(test),
        ..Default::default()
    }
}

db_test!(an_ab_test_sends_the_winner_to_the_rest, ab_test_on);
async fn ab_test_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut m = suite.marketing(TENANT, MARKETER);
    for name in NAMES {
        let email = format!("{}@example.com", name.to_lowercase());
        suite.contact(name, &email, &["ab"], false).await;
    }
    let audience = segment(&mut m, r#"tags:"ab""#).await;
    let written = template(&mut m).await;
    let test = AbTest {
        subject: "B: {{ contact.given_name }}, a better offer".into(),
        test_percent: 50,
        metric: AbMetric::ClickRate as i32,
        // Long enough for this test to click before the choice.
        wait: Some(prost_types::Duration {
            seconds: 3,
            nanos: 0,
        }),
        ..Default::default()
    };

    // Bad tests name their field.
    for (bad, field) in [
        (
            AbTest {
                template: written.clone(),
                ..test.clone()
            },
            "campaign.ab_test.template",
        ),
        (
            AbTest {
                subject: "B {{ contact.nickname }}".into(),
                ..test.clone()
            },
            "campaign.ab_test.subject",
        ),
        (
            AbTest {
                test_percent: 101,
                ..test.clone()
            },
            "campaign.ab_test.test_percent",
        ),
        (
            AbTest {
                wait: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 5,
                }),
                ..test.clone()
            },
            "campaign.ab_test.wait",
        ),
    ] {
        let refused = m
            .create_campaign(CreateCampaignRequest {
                campaign: Some(ab_campaign(&written, &audience, bad)),
                request_id: String::new(),
            })
            .await;
        let problem = invalid_field_problem(refused, field, field);
        assert!(problem.is_none(), "{}", problem.unwrap_or_default());
    }

    let c = m
        .create_campaign(CreateCampaignRequest {
            campaign: Some(ab_campaign(&written, &audience, test.clone())),
            request_id: String::new(),
        })
        .await
        .expect("CreateCampaign")
        .into_inner();
    let result = c.ab_result.clone().expect("an A/B result");
    assert!(result.winner.is_empty() && result.test_sent_time.is_none());
    m.schedule_campaign(ScheduleCampaignRequest {
        name: c.name.clone(),
        send_time: None,
    })
    .await
    .expect("ScheduleCampaign");

    // Only the test goes out: half of six, A to two and B to one.
    let mut tested = None;
    eventually_within(30, "the test is sent", async || {
        let now = m
            .get_campaign(GetCampaignRequest {
                name: c.name.clone(),
            })
            .await
            .expect("GetCampaign")
            .into_inner();
        let done = now
            .ab_result
            .as_ref()
            .is_some_and(|r| r.test_sent_time.is_some());
        tested = Some(now);
        done
    })
    .await;
    let tested = tested.expect("the campaign");
    let result = tested.ab_result.expect("an A/B result");
    let by_variant: Vec<(&str, i32, i32)> = result
        .variants
        .iter()
        .map(|v| (v.variant.as_str(), v.recipients, v.sent))
        .collect();
    assert_eq!(by_variant, [("A", 2, 2), ("B", 1, 1)]);
    assert!(result.winner.is_empty(), "no winner before the wait");
    let counts = tested.counts.expect("counts");
    assert_eq!((counts.sent, counts.queued), (3, 3), "the rest wait");
    let messages = suite.smtp.messages();
    assert_eq!(messages.len(), 3);
    let subjects: Vec<String> = messages
        .iter()
        .map(|m| header(m, "Subject").expect("a subject"))
        .collect();
    assert_eq!(
        subjects.iter().filter(|s| s.starts_with("B: ")).count(),
        1,
        "{subjects:?}"
    );

    // The B recipient clicks; B wins on click rate and goes to the rest.
    let to_b = messages
        .iter()
        .find(|m| header(m, "Subject").is_some_and(|s| s.starts_with("B: ")))
        .expect("the B message");
    let tracking = format!("http://{}/c/", suite.tracking);
    let click = attributes(&html_of(to_b), "href")
        .into_iter()
        .find(|href| href.starts_with(&tracking))
        .expect("a tracked link");
    assert_eq!(http("GET", &click, "").await.status, 303);
    let done = sent(&mut m, &c.name).await;
    let result = done.ab_result.expect("an A/B result");
    assert_eq!(result.winner, "B");
    assert!(result.decide_time.is_some());
    assert_eq!(result.variants[1].unique_clicks, 1);
    assert_eq!(done.counts.expect("counts").sent, 6);
    let everyone = received(&suite.smtp);
    assert_eq!(everyone.len(), 6, "{everyone:?}");
    assert!(everyone.values().all(|n| *n == 1), "{everyone:?}");
    let b_subjects = suite
        .smtp
        .messages()
        .iter()
        .filter(|m| header(m, "Subject").is_some_and(|s| s.starts_with("B: ")))
        .count();
    assert_eq!(
        b_subjects, 4,
        "B's one in the test and the three of the rest"
    );

    // The ledger says who got which.
    let ledger = m
        .list_campaign_recipients(ListCampaignRecipientsRequest {
            parent: c.name.clone(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .expect("ListCampaignRecipients")
        .into_inner()
        .recipients;
    let mut variants: Vec<&str> = ledger.iter().map(|r| r.variant.as_str()).collect();
    variants.sort_unstable();
    assert_eq!(variants, ["", "", "", "A", "A", "B"]);
    let decided = suite
        .marketing_events()
        .await
        .into_iter()
        .filter(|e| e.r#type == "crm.marketing.v1.AbTestDecided")
        .count();
    assert_eq!(decided, 1);

    // Once sent, only the cost may change.
    let refused = m
        .update_campaign(UpdateCampaignRequest {
            campaign: Some(Campaign {
                name: c.name.clone(),
                display_name: "Renamed".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .expect_err("a sent campaign is not renamed");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let costed = m
        .update_campaign(UpdateCampaignRequest {
            campaign: Some(Campaign {
                name: c.name.clone(),
                cost: Some(Money {
                    currency_code: "EUR".into(),
                    units: 250,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["cost".into()],
            }),
        })
        .await
        .expect("the cost of a sent campaign")
        .into_inner();
    assert_eq!(costed.state(), CampaignState::Sent);
    assert_eq!(costed.cost.expect("a cost").units, 250);
}
