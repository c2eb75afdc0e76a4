//! Templates: written, checked against the template language, previewed for
//! a contact.

use crm_proto::marketing as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_etag, parse_name, required},
    error::ApiError,
    idempotency::IdempotencyKey,
    validate::update_paths,
};
use tonic::{Request, Response, Status};

use super::{
    MarketingApi, caller,
    convert::{template_draft, template_message},
    plain_plan,
};
use crate::domain::template::TEMPLATE_FIELDS;

pub(super) async fn create_template(
    api: &MarketingApi,
    request: Request<pb::CreateTemplateRequest>,
) -> Result<Response<pb::Template>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = template_draft(&required(r.template, "template")?);
    draft.normalize_and_check("template")?;
    let template = api
        .store
        .create_template(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(template_message(&template)))
}

pub(super) async fn get_template(
    api: &MarketingApi,
    request: Request<pb::GetTemplateRequest>,
) -> Result<Response<pb::Template>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "templates", "name")?;
    Ok(Response::new(template_message(
        &api.store.get_template(&tenant, id).await?,
    )))
}

pub(super) async fn list_templates(
    api: &MarketingApi,
    request: Request<pb::ListTemplatesRequest>,
) -> Result<Response<pb::ListTemplatesResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = plain_plan(
        &api.page_tokens,
        "templates",
        r.page_size,
        &r.page_token,
        r.show_deleted,
    )?;
    let page = api
        .store
        .list_templates(&tenant, plan.query.clone())
        .await?;
    Ok(Response::new(pb::ListTemplatesResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        templates: page.items.iter().map(template_message).collect(),
    }))
}

pub(super) async fn update_template(
    api: &MarketingApi,
    request: Request<pb::UpdateTemplateRequest>,
) -> Result<Response<pb::Template>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let message = required(r.template, "template")?;
    let id = parse_name(&message.name, "templates", "template.name")?;
    let expected = parse_etag(&message.etag, "template.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, TEMPLATE_FIELDS)?;
    let patch = template_draft(&message);
    let updated = api
        .store
        .change_template(
            &tenant,
            &principal.subject,
            id,
            expected,
            |t| {
                if t.delete_time.is_some() {
                    return Err(ApiError::NotFound(t.name()));
                }
                t.draft.apply(&paths, &patch);
                t.draft.normalize_and_check("template")
            },
            "TemplateUpdated",
        )
        .await?;
    Ok(Response::new(template_message(&updated)))
}

pub(super) async fn delete_template(
    api: &MarketingApi,
    request: Request<pb::DeleteTemplateRequest>,
) -> Result<Response<pb::Template>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "templates", "name")?;
    if let Some(user) = api
        .store
        .template_user(&tenant, &format!("templates/{id}"))
        .await?
    {
        return Err(ApiError::FailedPrecondition(format!(
            "{user} sends this template: finish, cancel or archive it first"
        ))
        .into());
    }
    let deleted = api
        .store
        .change_template(
            &tenant,
            &principal.subject,
            id,
            None,
            |t| {
                t.delete_time.get_or_insert_with(chrono::Utc::now);
                Ok(())
            },
            "TemplateDeleted",
        )
        .await?;
    Ok(Response::new(template_message(&deleted)))
}

pub(super) async fn preview_template(
    api: &MarketingApi,
    request: Request<pb::PreviewTemplateRequest>,
) -> Result<Response<pb::PreviewTemplateResponse>, Status> {
    let (_, tenant, credentials) = caller(&request)?;
    let r = request.into_inner();
    let id = parse_name(&r.template, "templates", "template")?;
    parse_name(&r.contact, "contacts", "contact")?;
    let template = api.store.get_template(&tenant, id).await?;
    let profiles = api
        .directory
        .profiles(&credentials, std::slice::from_ref(&r.contact))
        .await?;
    let profile = profiles
        .get(&r.contact)
        .ok_or_else(|| ApiError::invalid("contact", format!("{} does not exist", r.contact)))?;
    let rendered = template.draft.compile()?.render(
        &profile.recipient,
        "(preview)",
        "https://example.invalid/unsubscribe",
    )?;
    Ok(Response::new(pb::PreviewTemplateResponse {
        subject: rendered.subject,
        html_body: rendered.html_body,
        text_body: rendered.text_body,
    }))
}
