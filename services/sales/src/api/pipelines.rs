//! Pipelines: their stages, and edits that keep the deals in them.

use chrono::Utc;
use crm_proto::sales as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_etag, parse_name, required},
    idempotency::IdempotencyKey,
    validate::update_paths,
};
use tonic::{Request, Response, Status};

use super::{
    SalesApi,
    convert::{pipeline_message, stages},
    simple_plan,
};
use crate::domain::pipeline;

pub(super) async fn create_pipeline(
    api: &SalesApi,
    request: Request<pb::CreatePipelineRequest>,
) -> Result<Response<pb::Pipeline>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let message = required(r.pipeline, "pipeline")?;
    let stages = stages(None, &message.stages)?;
    let display_name = message.display_name.trim().to_owned();
    pipeline::check(&display_name, &stages, "pipeline")?;
    let now = Utc::now();
    let created = api
        .store
        .create_pipeline(
            &tenant,
            &principal.subject,
            pipeline::Pipeline {
                id: uuid::Uuid::now_v7(),
                display_name,
                stages,
                is_default: false,
                create_time: now,
                delete_time: None,
                version: 1,
            },
            request_id,
        )
        .await?;
    Ok(Response::new(pipeline_message(&created)))
}

pub(super) async fn get_pipeline(
    api: &SalesApi,
    request: Request<pb::GetPipelineRequest>,
) -> Result<Response<pb::Pipeline>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "pipelines", "name")?;
    Ok(Response::new(pipeline_message(
        &api.store.get_pipeline(&tenant, id).await?,
    )))
}

pub(super) async fn list_pipelines(
    api: &SalesApi,
    request: Request<pb::ListPipelinesRequest>,
) -> Result<Response<pb::ListPipelinesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = simple_plan(&api.page_tokens, "pipelines", r.page_size, &r.page_token)?;
    let page = api
        .store
        .list_pipelines(&tenant, plan.query.clone())
        .await?;
    let pipelines = &page.items;
    Ok(Response::new(pb::ListPipelinesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        pipelines: pipelines.iter().map(pipeline_message).collect(),
    }))
}

pub(super) async fn update_pipeline(
    api: &SalesApi,
    request: Request<pb::UpdatePipelineRequest>,
) -> Result<Response<pb::Pipeline>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let message = required(r.pipeline, "pipeline")?;
    let id = parse_name(&message.name, "pipelines", "pipeline.name")?;
    let expected = parse_etag(&message.etag, "pipeline.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, &["display_name", "stages"])?;
    let new_stages = if paths.contains(&"stages") {
        Some(stages(Some(&message.name), &message.stages)?)
    } else {
        None
    };
    let display_name = paths
        .contains(&"display_name")
        .then(|| message.display_name.trim().to_owned());
    let updated = api
        .store
        .update_pipeline(
            &tenant,
            &principal.subject,
            id,
            expected,
            display_name,
            new_stages,
        )
        .await?;
    Ok(Response::new(pipeline_message(&updated)))
}

pub(super) async fn delete_pipeline(
    api: &SalesApi,
    request: Request<pb::DeletePipelineRequest>,
) -> Result<Response<pb::Pipeline>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "pipelines", "name")?;
    Ok(Response::new(pipeline_message(
        &api.store
            .delete_pipeline(&tenant, &principal.subject, id)
            .await?,
    )))
}
