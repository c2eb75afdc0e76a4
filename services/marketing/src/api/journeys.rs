//! Journeys: definitions with their references checked, the workflow, and
//! enrolments (by hand, listed, shown with their steps, exited).

use chrono::Utc;
use crm_proto::marketing as pb;
use crm_shared::{
    auth::admitted,
    convert::{name_of, parse_etag, parse_name, required},
    db::Tenant,
    error::ApiError,
    idempotency::IdempotencyKey,
    validate::update_paths,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    MarketingApi, OffsetPage, caller,
    journey_convert::{enrollment_message, journey_draft, journey_message},
    plain_plan,
};
use crate::{
    domain::journey::{Action, Condition, JOURNEY_FIELDS, Journey, JourneyDraft, State, Trigger},
    store::Enrolled,
};

/// The journey with its counts, on the wire.
async fn shown(api: &MarketingApi, tenant: &Tenant, j: &Journey) -> Result<pb::Journey, ApiError> {
    Ok(journey_message(
        j,
        api.store.journey_counts(tenant, j.id).await?,
    ))
}

/// INVALID_ARGUMENT unless the templates and segment a journey names exist
/// and its filters are ones contacts accepts.
async fn check_references(
    api: &MarketingApi,
    tenant: &Tenant,
    credentials: &crm_shared::client::Credentials,
    d: &JourneyDraft,
) -> Result<(), ApiError> {
    if let Trigger::SegmentEntry { segment } = &d.trigger {
        api.store
            .live_segments(
                tenant,
                std::slice::from_ref(segment),
                "journey.trigger.segment",
            )
            .await?;
    }
    if !d.exit_filter.is_empty() {
        api.directory
            .preview(credentials, &d.exit_filter, 1, "journey.exit_filter")
            .await?;
    }
    for (i, step) in d.steps.iter().enumerate() {
        match &step.action {
            Action::SendEmail { template, .. } => {
                let field = format!("journey.steps[{i}].send_email.template");
                api.store.live_template(tenant, template, &field).await?;
            }
            Action::Branch {
                condition: Condition::MatchesFilter { filter },
                ..
            } => {
                let field = format!("journey.steps[{i}].branch.condition.contact_filter");
                api.directory
                    .preview(credentials, filter, 1, &field)
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) async fn create_journey(
    api: &MarketingApi,
    request: Request<pb::CreateJourneyRequest>,
) -> Result<Response<pb::Journey>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = journey_draft(&required(r.journey, "journey")?)?;
    draft.normalize_and_check("journey")?;
    check_references(api, &tenant, &credentials, &draft).await?;
    let j = api
        .store
        .create_journey(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(shown(api, &tenant, &j).await?))
}

pub(super) async fn get_journey(
    api: &MarketingApi,
    request: Request<pb::GetJourneyRequest>,
) -> Result<Response<pb::Journey>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "journeys", "name")?;
    let j = api.store.get_journey(&tenant, id).await?;
    Ok(Response::new(shown(api, &tenant, &j).await?))
}

pub(super) async fn list_journeys(
    api: &MarketingApi,
    request: Request<pb::ListJourneysRequest>,
) -> Result<Response<pb::ListJourneysResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = plain_plan(
        &api.page_tokens,
        "journeys",
        r.page_size,
        &r.page_token,
        r.show_deleted,
    )?;
    let page = api.store.list_journeys(&tenant, plan.query.clone()).await?;
    let mut journeys = Vec::with_capacity(page.items.len());
    for j in &page.items {
        journeys.push(shown(api, &tenant, j).await?);
    }
    Ok(Response::new(pb::ListJourneysResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        journeys,
    }))
}

pub(super) async fn update_journey(
    api: &MarketingApi,
    request: Request<pb::UpdateJourneyRequest>,
) -> Result<Response<pb::Journey>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let message = required(r.journey, "journey")?;
    let id = parse_name(&message.name, "journeys", "journey.name")?;
    let expected = parse_etag(&message.etag, "journey.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, JOURNEY_FIELDS)?;
    let patch = journey_draft(&message)?;
    // The references are checked against the draft as it will be.
    let current = api.store.get_journey(&tenant, id).await?;
    let mut next = current.draft.clone();
    next.apply(&paths, &patch);
    next.normalize_and_check("journey")?;
    // Fields sent unchanged change nothing, frozen or not.
    current.check_editable(&current.draft.changed(&next, &paths))?;
    check_references(api, &tenant, &credentials, &next).await?;
    let updated = api
        .store
        .change_journey(
            &tenant,
            &principal.subject,
            id,
            expected,
            |j| {
                if j.delete_time.is_some() {
                    return Err(ApiError::NotFound(j.name()));
                }
                let before = j.draft.clone();
                j.draft.apply(&paths, &patch);
                j.draft.normalize_and_check("journey")?;
                j.check_editable(&before.changed(&j.draft, &paths))
            },
            "JourneyUpdated",
        )
        .await?;
    Ok(Response::new(shown(api, &tenant, &updated).await?))
}

/// Moves a journey along its workflow with `change`, recorded as `event`.
async fn transition(
    api: &MarketingApi,
    tenant: &Tenant,
    actor: &str,
    name: &str,
    change: impl FnOnce(&mut Journey) -> Result<(), ApiError>,
    event: &'static str,
) -> Result<Response<pb::Journey>, Status> {
    let id = parse_name(name, "journeys", "name")?;
    let j = api
        .store
        .change_journey(
            tenant,
            actor,
            id,
            None,
            |j| {
                if j.delete_time.is_some() {
                    return Err(ApiError::NotFound(j.name()));
                }
                change(j)
            },
            event,
        )
        .await?;
    Ok(Response::new(shown(api, tenant, &j).await?))
}

pub(super) async fn delete_journey(
    api: &MarketingApi,
    request: Request<pb::DeleteJourneyRequest>,
) -> Result<Response<pb::Journey>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    transition(
        api,
        &tenant,
        &principal.subject,
        name,
        |j| {
            // Enrolments in flight end first (archiving exits them).
            if matches!(j.state, State::Active | State::Paused) {
                return Err(ApiError::FailedPrecondition(format!(
                    "{} may have enrolments in flight: archive it first",
                    j.name()
                )));
            }
            j.delete_time = Some(Utc::now());
            Ok(())
        },
        "JourneyDeleted",
    )
    .await
}

pub(super) async fn activate_journey(
    api: &MarketingApi,
    request: Request<pb::ActivateJourneyRequest>,
) -> Result<Response<pb::Journey>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    transition(
        api,
        &tenant,
        &principal.subject,
        name,
        Journey::activate,
        "JourneyActivated",
    )
    .await
}

pub(super) async fn pause_journey(
    api: &MarketingApi,
    request: Request<pb::PauseJourneyRequest>,
) -> Result<Response<pb::Journey>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    transition(
        api,
        &tenant,
        &principal.subject,
        name,
        Journey::pause,
        "JourneyPaused",
    )
    .await
}

pub(super) async fn archive_journey(
    api: &MarketingApi,
    request: Request<pb::ArchiveJourneyRequest>,
) -> Result<Response<pb::Journey>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let name = &request.get_ref().name;
    transition(
        api,
        &tenant,
        &principal.subject,
        name,
        Journey::archive,
        "JourneyArchived",
    )
    .await
}

pub(super) async fn enroll_contact(
    api: &MarketingApi,
    request: Request<pb::EnrollContactRequest>,
) -> Result<Response<pb::Enrollment>, Status> {
    let (principal, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.journey, "journeys", "journey")?;
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    // Stored as contacts names it, so re-entry, merges and erasure find it.
    let contact = name_of("contacts", parse_name(&r.contact, "contacts", "contact")?);
    api.contacts
        .check_contact(&credentials, &contact, "contact")
        .await?;
    let j = api.store.get_journey(&tenant, id).await?;
    if j.delete_time.is_some() {
        return Err(ApiError::NotFound(j.name()).into());
    }
    // A retry with the same request id finds the first enrolment by it.
    let entry_key = match &request_id {
        Some(_) => format!("request:{}", r.request_id.trim()),
        None => format!("request:{}", Uuid::now_v7()),
    };
    match api
        .store
        .enroll(
            &tenant,
            &j,
            &contact,
            "manual",
            &entry_key,
            &principal.subject,
        )
        .await?
    {
        Enrolled::New(e) => Ok(Response::new(enrollment_message(&e, &[]))),
        Enrolled::Existing(e) if e.contact == contact => {
            Ok(Response::new(enrollment_message(&e, &[])))
        }
        Enrolled::Existing(_) => {
            Err(ApiError::invalid("request_id", "already used for another contact").into())
        }
        Enrolled::Refused => Err(ApiError::FailedPrecondition(format!(
            "{contact} may not enter {} now (its re-entry rule, or an enrolment in flight)",
            j.name()
        ))
        .into()),
    }
}

/// The journey and enrolment ids of `journeys/{j}/enrollments/{e}`.
fn enrollment_ids(name: &str, field: &str) -> Result<(Uuid, Uuid), ApiError> {
    let bad = || ApiError::invalid(field, "journeys/{uuid}/enrollments/{uuid}");
    let mut parts = name.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("journeys"), Some(j), Some("enrollments"), Some(e), None) => {
            Ok((j.parse().map_err(|_| bad())?, e.parse().map_err(|_| bad())?))
        }
        _ => Err(bad()),
    }
}

pub(super) async fn get_enrollment(
    api: &MarketingApi,
    request: Request<pb::GetEnrollmentRequest>,
) -> Result<Response<pb::Enrollment>, Status> {
    let (_, tenant) = admitted(&request)?;
    let (journey, id) = enrollment_ids(&request.get_ref().name, "name")?;
    let (e, history) = api.store.get_enrollment(&tenant, journey, id).await?;
    Ok(Response::new(enrollment_message(&e, &history)))
}

pub(super) async fn list_enrollments(
    api: &MarketingApi,
    request: Request<pb::ListEnrollmentsRequest>,
) -> Result<Response<pb::ListEnrollmentsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.parent, "journeys", "parent")?;
    api.store.get_journey(&tenant, id).await?;
    let page = OffsetPage::new(
        &api.page_tokens,
        format!("journeyEnrollments:{id}"),
        r.page_size,
        &r.page_token,
    )?;
    let mut rows = api
        .store
        .list_enrollments(&tenant, id, page.offset, page.limit())
        .await?;
    let next_page_token = page.finish(&api.page_tokens, &mut rows);
    Ok(Response::new(pb::ListEnrollmentsResponse {
        enrollments: rows.iter().map(|e| enrollment_message(e, &[])).collect(),
        next_page_token,
    }))
}

pub(super) async fn exit_enrollment(
    api: &MarketingApi,
    request: Request<pb::ExitEnrollmentRequest>,
) -> Result<Response<pb::Enrollment>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let (journey, id) = enrollment_ids(&r.name, "name")?;
    let reason = match r.reason.trim() {
        "" => format!("exited by {}", principal.subject),
        given => given.chars().take(500).collect(),
    };
    let (before, _) = api.store.get_enrollment(&tenant, journey, id).await?;
    let mut after = before.clone();
    after.exit(&reason, Utc::now())?;
    if !api
        .store
        .save_enrollment(&tenant, &before, &after, None, &principal.subject)
        .await?
    {
        return Err(
            ApiError::Aborted(format!("{} changed meanwhile: try again", before.name())).into(),
        );
    }
    let (e, history) = api.store.get_enrollment(&tenant, journey, id).await?;
    Ok(Response::new(enrollment_message(&e, &history)))
}
