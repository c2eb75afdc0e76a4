//! Satisfaction: a survey made on solve, answered with its token alone,
//! and reported per agent and per queue.

use chrono::{Duration, Utc};
use crm_proto::support::{
    CreateTicketRequest, GetSatisfactionReportRequest, GetSatisfactionSurveyRequest,
    SatisfactionGrouping, SubmitSatisfactionRatingRequest, Ticket, TicketStatus,
    UpdateTicketRequest, support_service_client::SupportServiceClient,
};
use crm_shared::convert::to_timestamp;
use prost_types::FieldMask;
use tonic::Code;

use crate::harness::*;

async fn solved(support: &mut Support, assignee: &str) -> Ticket {
    let t = support
        .create_ticket(CreateTicketRequest {
            ticket: Some(Ticket {
                subject: "Help".into(),
                requester_email: "ada@example.com".into(),
                assignee: assignee.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTicket")
        .into_inner();
    support
        .update_ticket(UpdateTicketRequest {
            ticket: Some(Ticket {
                name: t.name.clone(),
                status: TicketStatus::Solved as i32,
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["status".into()],
            }),
        })
        .await
        .expect("solve")
        .into_inner()
}

db_test!(customers_rate_solved_tickets_by_token_alone, csat_on);
async fn csat_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    // Someone with no account at all: no bearer token.
    let mut customer = SupportServiceClient::new(channel_to(suite.support_process().addr));
    let mut support = suite.support(TENANT, AGENT);
    let survey_of = async |support: &mut Support, t: &Ticket| {
        support
            .get_satisfaction_survey(GetSatisfactionSurveyRequest {
                name: format!("{}/satisfaction", t.name),
            })
            .await
            .map(tonic::Response::into_inner)
    };
    let mut ratings = Vec::new();
    for (assignee, rating) in [("ann", 5), ("ann", 4), ("ann", 2), ("bob", 3)] {
        let t = solved(&mut support, assignee).await;
        let survey = survey_of(&mut support, &t).await.expect("a survey");
        assert!(!survey.token.is_empty() && survey.rating == 0);
        let answered = customer
            .submit_satisfaction_rating(SubmitSatisfactionRatingRequest {
                token: survey.token.clone(),
                rating,
                comment: format!("{rating} stars"),
            })
            .await
            .expect("SubmitSatisfactionRating")
            .into_inner();
        assert_eq!(
            (answered.rating, answered.assignee.as_str()),
            (rating, assignee)
        );
        assert!(
            answered.token.is_empty(),
            "the answer does not echo the token"
        );
        ratings.push((t, survey.token));
    }
    // Answering again replaces; a bad rating names its field; a forged or
    // foreign token is refused.
    let (first, token) = &ratings[0];
    customer
        .submit_satisfaction_rating(SubmitSatisfactionRatingRequest {
            token: token.clone(),
            rating: 4,
            comment: "on reflection".into(),
        })
        .await
        .expect("a second answer");
    assert_eq!(
        survey_of(&mut support, first).await.expect("survey").rating,
        4
    );
    let bad = customer
        .submit_satisfaction_rating(SubmitSatisfactionRatingRequest {
            token: token.clone(),
            rating: 9,
            comment: String::new(),
        })
        .await
        .expect_err("rating 9");
    assert_invalid_field(&bad, "rating", "rating");
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let refused = customer
        .submit_satisfaction_rating(SubmitSatisfactionRatingRequest {
            token: forged,
            rating: 1,
            comment: String::new(),
        })
        .await
        .expect_err("a forged token");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // An unsolved ticket has no survey; a viewer never sees tokens.
    let open = support
        .create_ticket(CreateTicketRequest {
            ticket: Some(Ticket {
                subject: "Still open".into(),
                requester_email: "ada@example.com".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTicket")
        .into_inner();
    assert_eq!(
        survey_of(&mut support, &open)
            .await
            .expect_err("no survey")
            .code(),
        Code::NotFound
    );
    let mut viewer = suite.support(TENANT, VIEWER);
    assert_eq!(
        survey_of(&mut viewer, first)
            .await
            .expect_err("viewer")
            .code(),
        Code::PermissionDenied
    );

    let report = support
        .get_satisfaction_report(GetSatisfactionReportRequest {
            start_time: Some(to_timestamp(Utc::now() - Duration::hours(1))),
            end_time: Some(to_timestamp(Utc::now() + Duration::hours(1))),
            group_by: SatisfactionGrouping::Agent as i32,
        })
        .await
        .expect("GetSatisfactionReport")
        .into_inner();
    // ann: 4 (replaced 5), 4, 2; bob: 3.
    let ann = &report.groups[0];
    assert_eq!((ann.key.as_str(), ann.responses), ("ann", 3));
    assert!((ann.average_rating - 10.0 / 3.0).abs() < 1e-9, "{ann:?}");
    assert!((ann.csat - 2.0 / 3.0).abs() < 1e-9, "{ann:?}");
    let total = report.total.expect("total");
    assert_eq!((total.responses, report.surveys_sent), (4, 4));
    assert!((total.csat - 0.5).abs() < 1e-9);
    let backwards = support
        .get_satisfaction_report(GetSatisfactionReportRequest {
            start_time: Some(to_timestamp(Utc::now())),
            end_time: Some(to_timestamp(Utc::now() - Duration::hours(1))),
            group_by: 0,
        })
        .await
        .expect_err("end before start");
    assert_invalid_field(&backwards, "end_time", "period");

    let types: Vec<String> = suite
        .support_events()
        .await
        .into_iter()
        .map(|e| e.r#type)
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| t.ends_with(".CsatSubmitted"))
            .count(),
        5
    );
}
