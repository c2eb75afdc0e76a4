//! Pipelines: several per tenant, edited in place without losing deals.

use crm_proto::{
    common::Money,
    sales::{
        CreateOpportunityRequest, CreatePipelineRequest, DeletePipelineRequest, Opportunity,
        Pipeline, Stage, StageKind, UpdatePipelineRequest,
    },
};
use crm_testkit::Backend;
use prost_types::FieldMask;
use tonic::Code;

use crate::support::*;

fn stage(name: &str, probability: f64, kind: StageKind) -> Stage {
    Stage {
        display_name: name.into(),
        probability,
        kind: kind as i32,
        ..Default::default()
    }
}

db_test!(pipelines_are_edited_without_losing_deals, pipelines_on);
async fn pipelines_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut sales = suite.sales(TENANT, ADMIN);
    let renewals = sales
        .create_pipeline(CreatePipelineRequest {
            pipeline: Some(Pipeline {
                display_name: "Renewals".into(),
                stages: vec![
                    stage("Due", 0.5, StageKind::Open),
                    stage("Unused", 0.6, StageKind::Open),
                    stage("Renewed", 1.0, StageKind::Won),
                ],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreatePipeline")
        .into_inner();
    assert!(!renewals.is_default);
    let deal = sales
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: "Renewal 2027".into(),
                amount: Some(Money {
                    currency_code: "EUR".into(),
                    units: 900,
                    nanos: 0,
                }),
                pipeline: renewals.name.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deal.stage, renewals.stages[0].name, "the first open stage");

    let update = |stages: Vec<Stage>, etag: &str| UpdatePipelineRequest {
        pipeline: Some(Pipeline {
            name: renewals.name.clone(),
            display_name: "Renewals EU".into(),
            stages,
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["*".into()],
        }),
    };
    // Leaving out the stage with the deal is refused.
    let refused = sales
        .update_pipeline(update(vec![renewals.stages[2].clone()], &renewals.etag))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    // Keeping it, dropping the unused one and adding a lost stage works.
    let edited = sales
        .update_pipeline(update(
            vec![
                Stage {
                    probability: 0.4,
                    ..renewals.stages[0].clone()
                },
                renewals.stages[2].clone(),
                stage("Churned", 0.0, StageKind::Lost),
            ],
            &renewals.etag,
        ))
        .await
        .expect("UpdatePipeline")
        .into_inner();
    assert_eq!(edited.display_name, "Renewals EU");
    assert_eq!(edited.stages.len(), 3);
    assert_eq!(
        edited.stages[0].name, renewals.stages[0].name,
        "a kept stage keeps its name"
    );
    assert_eq!(edited.stages[0].probability, 0.4);
    let stale = sales
        .update_pipeline(update(vec![], &renewals.etag))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let foreign = Stage {
        name: "pipelines/0190f0a0-0000-7000-8000-000000000000/stages/x".into(),
        ..stage("X", 0.1, StageKind::Open)
    };
    let bad = sales
        .update_pipeline(update(
            vec![foreign, renewals.stages[2].clone()],
            &edited.etag,
        ))
        .await
        .unwrap_err();
    assert_names_field(&bad, "pipeline.stages[0].name");

    let busy = sales
        .delete_pipeline(DeletePipelineRequest {
            name: renewals.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        busy.code(),
        Code::FailedPrecondition,
        "an open deal is in it"
    );
}
