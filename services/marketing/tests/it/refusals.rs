//! Bad input names its field, the workflow refuses what it must, tenants
//! and roles hold, creates are idempotent, and a mail server that refuses
//! is recorded, never retried forever.

use crm_proto::marketing::{
    Audience, Campaign, CampaignState, CancelCampaignRequest, CreateCampaignRequest,
    CreateSegmentRequest, CreateTemplateRequest, DeleteSegmentRequest, GetCampaignRequest,
    GetSegmentRequest, ListCampaignRecipientsRequest, PauseCampaignRequest,
    ScheduleCampaignRequest, Segment, Template, UnsubscribeRequest, UpdateCampaignRequest,
};
use tonic::Code;

use crate::harness::*;

fn segment_request(filter: &str, request_id: &str) -> CreateSegmentRequest {
    CreateSegmentRequest {
        segment: Some(Segment {
            display_name: "VIPs".into(),
            filter: filter.into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
    }
}

async fn template(m: &mut Marketing) -> String {
    m.create_template(CreateTemplateRequest {
        template: Some(Template {
            display_name: "Plain".into(),
            subject: "News".into(),
            text_body: "Hello {{ contact.given_name }}".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .expect("CreateTemplate")
    .into_inner()
    .name
}

fn campaign(template: &str, segment: &str) -> Campaign {
    Campaign {
        display_name: "News".into(),
        template: template.into(),
        from_address: "news@acme.example".into(),
        audience: Some(Audience {
            segments: vec![segment.into()],
            ..Default::default()
        }),
        messages_per_second: 100,
        ..Default::default()
    }
}

db_test!(marketing_refusals, refusals_on);
async fn refusals_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut m = suite.marketing(TENANT, MARKETER);
    let status = m
        .create_segment(segment_request("tags ::: nonsense", ""))
        .await
        .expect_err("a filter contacts refuses");
    assert_invalid_field(&status, "segment.filter", "a bad filter");
    let status = m
        .create_segment(CreateSegmentRequest {
            segment: Some(Segment::default()),
            request_id: String::new(),
        })
        .await
        .expect_err("an empty segment");
    assert_invalid_field(&status, "segment.display_name", "no name");
    let request_id = "0196f3c0-2222-7000-8000-000000000001";
    let first = m
        .create_segment(segment_request(r#"tags:"vip""#, request_id))
        .await
        .expect("CreateSegment")
        .into_inner();
    let again = m
        .create_segment(segment_request(r#"tags:"vip""#, request_id))
        .await
        .expect("CreateSegment again")
        .into_inner();
    assert_eq!(
        first.name, again.name,
        "a retried create is the same segment"
    );

    let status = m
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: "Typo".into(),
                subject: "Hi {{ contact.shoe_size }}".into(),
                text_body: "x".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("an unknown variable");
    assert_invalid_field(&status, "template.subject", "an unknown variable");
    assert!(
        status.message().contains("contact.shoe_size"),
        "{}",
        status.message()
    );

    let template = template(&mut m).await;
    for (broken, field) in [
        (
            Campaign {
                audience: Some(Audience::default()),
                ..campaign(&template, &first.name)
            },
            "campaign.audience",
        ),
        (
            Campaign {
                from_address: "news".into(),
                ..campaign(&template, &first.name)
            },
            "campaign.from_address",
        ),
        (
            campaign(
                "templates/0196f3c0-0000-7000-8000-000000000009",
                &first.name,
            ),
            "campaign.template",
        ),
        (
            campaign(&template, "segments/0196f3c0-0000-7000-8000-000000000009"),
            "campaign.audience.segments",
        ),
    ] {
        let status = m
            .create_campaign(CreateCampaignRequest {
                campaign: Some(broken),
                request_id: String::new(),
            })
            .await
            .expect_err(field);
        assert_invalid_field(&status, field, "a bad campaign");
    }

    // The workflow: scheduled campaigns do not change, cancelled ones never send.
    let c = m
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                send_time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() + 3600,
                    nanos: 0,
                }),
                ..campaign(&template, &first.name)
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateCampaign")
        .into_inner();
    let schedule = ScheduleCampaignRequest {
        name: c.name.clone(),
        send_time: None,
    };
    m.schedule_campaign(schedule.clone())
        .await
        .expect("ScheduleCampaign");
    let status = m.schedule_campaign(schedule).await.expect_err("twice");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = m
        .update_campaign(UpdateCampaignRequest {
            campaign: Some(Campaign {
                name: c.name.clone(),
                display_name: "Renamed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .expect_err("a scheduled campaign is not edited");
    assert_eq!(status.code(), Code::FailedPrecondition);
    m.pause_campaign(PauseCampaignRequest {
        name: c.name.clone(),
    })
    .await
    .expect("PauseCampaign");
    // A group a campaign still to be sent names may not go.
    let status = m
        .delete_segment(DeleteSegmentRequest {
            name: first.name.clone(),
            etag: String::new(),
        })
        .await
        .expect_err("a segment in use");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let cancelled = m
        .cancel_campaign(CancelCampaignRequest {
            name: c.name.clone(),
        })
        .await
        .expect("CancelCampaign")
        .into_inner();
    assert_eq!(cancelled.state(), CampaignState::Cancelled);
    m.delete_segment(DeleteSegmentRequest {
        name: first.name.clone(),
        etag: String::new(),
    })
    .await
    .expect("a segment no unfinished campaign names");

    // Tenants, roles and forged links.
    let mut stranger = suite.marketing(OTHER_TENANT, ADMIN);
    let status = stranger
        .get_campaign(GetCampaignRequest {
            name: c.name.clone(),
        })
        .await
        .expect_err("another tenant's campaign");
    assert_eq!(status.code(), Code::NotFound);
    let status = stranger
        .get_segment(GetSegmentRequest {
            name: first.name.clone(),
        })
        .await
        .expect_err("another tenant's segment");
    assert_eq!(status.code(), Code::NotFound);
    let status = suite
        .marketing(TENANT, VIEWER)
        .create_segment(segment_request(r#"tags:"x""#, ""))
        .await
        .expect_err("a viewer");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = suite
        .anonymous()
        .unsubscribe(UnsubscribeRequest {
            token: "forged.token".into(),
        })
        .await
        .expect_err("a forged link");
    assert_eq!(status.code(), Code::PermissionDenied);
}

db_test!(a_refusing_mail_server_is_recorded, refused_on);
async fn refused_on(backend: Backend) {
    let Some(smtp) = LocalSmtp::start_rejecting(550) else {
        return;
    };
    let Some(suite) = Suite::start_with(backend, smtp).await else {
        return;
    };
    suite
        .contact("Ada", "ada@example.com", &["vip"], false)
        .await;
    suite
        .contact("Bob", "bob@example.com", &["vip"], false)
        .await;
    let mut m = suite.marketing(TENANT, MARKETER);
    let segment = m
        .create_segment(segment_request(r#"tags:"vip""#, ""))
        .await
        .expect("CreateSegment")
        .into_inner()
        .name;
    let template = template(&mut m).await;
    let c = m
        .create_campaign(CreateCampaignRequest {
            campaign: Some(campaign(&template, &segment)),
            request_id: String::new(),
        })
        .await
        .expect("CreateCampaign")
        .into_inner();
    m.schedule_campaign(ScheduleCampaignRequest {
        name: c.name.clone(),
        send_time: None,
    })
    .await
    .expect("ScheduleCampaign");
    eventually_within(60, "the refused campaign ends", async || {
        let now = m
            .get_campaign(GetCampaignRequest {
                name: c.name.clone(),
            })
            .await
            .expect("GetCampaign")
            .into_inner();
        now.state() == CampaignState::Sent && now.counts.is_some_and(|n| n.failed == 2)
    })
    .await;
    let ledger = m
        .list_campaign_recipients(ListCampaignRecipientsRequest {
            parent: c.name.clone(),
            ..Default::default()
        })
        .await
        .expect("ListCampaignRecipients")
        .into_inner()
        .recipients;
    assert!(
        ledger
            .iter()
            .all(|r| r.reason.contains("550") && r.attempts == 1),
        "a permanent refusal is final at once: {ledger:?}"
    );
}
