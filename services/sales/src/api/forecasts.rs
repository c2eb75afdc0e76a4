//! Reports over the deals: the forecast of a period and the analysis of a
//! pipeline's stages.

use chrono::Utc;
use crm_proto::sales as pb;
use crm_shared::{
    auth::admitted,
    convert::{from_timestamp, required},
    error::ApiError,
};
use tonic::{Request, Response, Status};

use super::SalesApi;
use crate::domain::analysis;

pub(super) async fn get_forecast(
    api: &SalesApi,
    request: Request<pb::GetForecastRequest>,
) -> Result<Response<pb::Forecast>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let (start, end) = period(r.period_start.as_ref(), r.period_end.as_ref())?;
    let mut owners: Vec<String> = r
        .team
        .iter()
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    if !r.owner.trim().is_empty() {
        owners.push(r.owner.trim().to_owned());
    }
    let sums = api
        .store
        .forecast_sums(&tenant, &owners, start, end)
        .await?;
    let lines = analysis::forecast(&sums);
    Ok(Response::new(pb::Forecast {
        lines: lines
            .iter()
            .map(|l| pb::ForecastLine {
                currency_code: l.currency_code.clone(),
                closed_won: Some((&l.closed_won).into()),
                weighted_pipeline: Some((&l.weighted_pipeline).into()),
                commit: Some((&l.commit).into()),
                best_case: Some((&l.best_case).into()),
                won_count: l.won_count,
                open_count: l.open_count,
            })
            .collect(),
    }))
}

pub(super) async fn analyze_pipeline(
    api: &SalesApi,
    request: Request<pb::AnalyzePipelineRequest>,
) -> Result<Response<pb::PipelineAnalysis>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let (start, end) = period(r.period_start.as_ref(), r.period_end.as_ref())?;
    let pipeline = api
        .store
        .resolve_pipeline(&tenant, &r.pipeline, "pipeline")
        .await?;
    let deals = api.store.pipeline_deals(&tenant, &pipeline.name()).await?;
    let stages = analysis::analyze(&pipeline, &deals, start, end);
    Ok(Response::new(pb::PipelineAnalysis {
        pipeline: pipeline.name(),
        stages: stages
            .into_iter()
            .map(|s| pb::StageAnalysis {
                stage: s.stage,
                display_name: s.display_name,
                current_count: s.current_count,
                current_amounts: s.current_amounts.iter().map(Into::into).collect(),
                entered_count: s.entered_count,
                conversion_rate: s.conversion_rate,
                average_days_in_stage: s.average_days_in_stage,
            })
            .collect(),
    }))
}

/// A reporting period: both ends required, the start before the end.
fn period(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> Result<(chrono::DateTime<Utc>, chrono::DateTime<Utc>), ApiError> {
    let start = from_timestamp(required(start, "period_start")?, "period_start")?;
    let end = from_timestamp(required(end, "period_end")?, "period_end")?;
    if end <= start {
        return Err(ApiError::invalid(
            "period_end",
            "must be after period_start",
        ));
    }
    Ok((start, end))
}
