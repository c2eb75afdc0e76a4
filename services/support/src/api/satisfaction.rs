//! Satisfaction: the survey with its token for agents, the requester's
//! answer by token alone, and the report.

use chrono::Utc;
use crm_proto::support as pb;
use crm_shared::{
    auth::admitted,
    convert::{from_timestamp, required},
    db::Tenant,
    error::ApiError,
};
use tonic::{Request, Response, Status};

use super::{SupportApi, convert::survey_message};
use crate::{domain::satisfaction::check_answer, store::ReportRow};

pub(super) async fn get_satisfaction_survey(
    api: &SupportApi,
    request: Request<pb::GetSatisfactionSurveyRequest>,
) -> Result<Response<pb::SatisfactionSurvey>, Status> {
    let (_, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    let ticket = name
        .strip_suffix("/satisfaction")
        .ok_or_else(|| ApiError::invalid("name", "expected tickets/{uuid}/satisfaction"))
        .and_then(|ticket| crm_shared::convert::parse_name(ticket, "tickets", "name"))?;
    let survey = api.store.get_survey(&tenant, ticket).await?;
    let token = api
        .options
        .survey_tokens
        .sign(tenant.as_str(), ticket, survey.expire_time);
    Ok(Response::new(survey_message(&survey, Some(token))))
}

/// Public: the token is the only credential (see `PUBLIC_METHODS`).
pub(super) async fn submit_satisfaction_rating(
    api: &SupportApi,
    request: Request<pb::SubmitSatisfactionRatingRequest>,
) -> Result<Response<pb::SatisfactionSurvey>, Status> {
    let r = request.into_inner();
    let claim = api.options.survey_tokens.verify(&r.token, Utc::now())?;
    check_answer(r.rating, &r.comment)?;
    let tenant = Tenant::new(claim.tenant);
    let survey = api
        .store
        .submit_rating(&tenant, claim.id, r.rating, r.comment.trim().to_owned())
        .await?;
    Ok(Response::new(survey_message(&survey, None)))
}

fn group(key: String, responses: i64, rating_sum: i64, satisfied: i64) -> pb::SatisfactionGroup {
    let share = |n: i64| {
        if responses == 0 {
            0.0
        } else {
            n as f64 / responses as f64
        }
    };
    pb::SatisfactionGroup {
        key,
        responses,
        average_rating: share(rating_sum),
        csat: share(satisfied),
    }
}

pub(super) async fn get_satisfaction_report(
    api: &SupportApi,
    request: Request<pb::GetSatisfactionReportRequest>,
) -> Result<Response<pb::SatisfactionReport>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let start = from_timestamp(&required(r.start_time, "start_time")?, "start_time")?;
    let end = from_timestamp(&required(r.end_time, "end_time")?, "end_time")?;
    if end <= start {
        return Err(ApiError::invalid("end_time", "must be after start_time").into());
    }
    let by_queue = match pb::SatisfactionGrouping::try_from(r.group_by) {
        Ok(pb::SatisfactionGrouping::Queue) => true,
        Ok(_) => false,
        Err(_) => {
            return Err(
                ApiError::invalid("group_by", format!("unknown value {}", r.group_by)).into(),
            );
        }
    };
    let (rows, surveys_sent) = api
        .store
        .satisfaction_report(&tenant, start, end, by_queue)
        .await?;
    let total = rows.iter().fold(
        (0, 0, 0),
        |(n, sum, happy), (_, rn, rsum, rhappy): &ReportRow| (n + rn, sum + rsum, happy + rhappy),
    );
    let mut groups: Vec<pb::SatisfactionGroup> = rows
        .into_iter()
        .map(|(key, n, sum, happy)| group(key, n, sum, happy))
        .collect();
    groups.sort_by(|a, b| b.responses.cmp(&a.responses).then(a.key.cmp(&b.key)));
    Ok(Response::new(pb::SatisfactionReport {
        groups,
        total: Some(group(String::new(), total.0, total.1, total.2)),
        surveys_sent,
    }))
}
