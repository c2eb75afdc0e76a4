//! The gRPC surface: each handler checks the caller's role, turns the request
//! into domain values, calls the store and turns the result back into protobuf.

mod convert;
mod import;
mod queries;

use std::{pin::Pin, sync::Arc};

use crm_proto::contacts::{self as pb, contacts_service_server::ContactsService};
use crm_shared::{
    auth::{Role, RoleRules, admitted as caller},
    convert::parse_name,
    convert::required,
    error::ApiError,
    filter::parse_filter,
    idempotency::IdempotencyKey,
    paging::PageTokens,
    store::{ListPlan, ListRequest},
};
use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::domain::{self, ActivityKind};
use crate::store::Store;
pub use convert::ProtoPayloads;
use convert::{
    activity_draft, activity_message, company_draft, company_message, contact_draft,
    contact_message, parse_etag,
};

/// Roles that may merge, import and bulk-export contacts.
const BULK: &[Role] = &[Role::Admin, Role::Manager, Role::Sales, Role::Marketing];
/// Roles that may act on a data-subject request.
const PRIVACY: &[Role] = &[Role::Admin];

/// Who may call each ContactsService method; the kit checks every call against
/// it (the authorization matrix test prints it into the README).
pub const ROLE_RULES: RoleRules = &[
    ("CreateContact", Role::WRITERS),
    ("GetContact", Role::READERS),
    ("ListContacts", Role::READERS),
    ("UpdateContact", Role::WRITERS),
    ("DeleteContact", Role::WRITERS),
    ("UndeleteContact", Role::WRITERS),
    ("SearchContacts", Role::READERS),
    ("BatchGetContacts", Role::READERS),
    ("FindDuplicates", Role::READERS),
    ("MergeContacts", BULK),
    ("ImportContacts", BULK),
    ("ExportContacts", BULK),
    ("ListTimeline", Role::READERS),
    ("ExportContactData", PRIVACY),
    ("EraseContact", PRIVACY),
    ("CreateCompany", Role::WRITERS),
    ("GetCompany", Role::READERS),
    ("ListCompanies", Role::READERS),
    ("UpdateCompany", Role::WRITERS),
    ("DeleteCompany", Role::WRITERS),
    ("UndeleteCompany", Role::WRITERS),
    ("CreateActivity", Role::WRITERS),
    ("GetActivity", Role::READERS),
    ("ListActivities", Role::READERS),
    ("UpdateActivity", Role::WRITERS),
    ("DeleteActivity", Role::WRITERS),
];

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The `crm.contacts.v1.ContactsService` implementation.
#[derive(Clone)]
pub struct ContactsApi {
    store: Store,
    page_tokens: PageTokens,
}

impl ContactsApi {
    /// The service over a store.
    pub fn new(store: Store, page_tokens: PageTokens) -> Self {
        Self { store, page_tokens }
    }
}

#[tonic::async_trait]
impl ContactsService for ContactsApi {
    async fn create_contact(
        &self,
        request: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::Contact>, Status> {
        let (principal, tenant) = caller(&request)?;
        let request = request.into_inner();
        let request_id = IdempotencyKey::of(&request.request_id, &request)?;
        let draft = contact_draft(required(request.contact, "contact")?, "contact")?
            .normalize("contact")?;
        let contact = self
            .store
            .create_contact(&tenant, &principal.subject, draft, request_id)
            .await?;
        Ok(Response::new(contact_message(&contact)))
    }

    async fn get_contact(
        &self,
        request: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::Contact>, Status> {
        let (_, tenant) = caller(&request)?;
        let id = parse_name(&request.get_ref().name, "contacts", "name")?;
        Ok(Response::new(contact_message(
            &self.store.get_contact(&tenant, id).await?,
        )))
    }

    async fn list_contacts(
        &self,
        request: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let (_, tenant) = caller(&request)?;
        let r = request.into_inner();
        let plan = ListPlan::new(
            &self.page_tokens,
            ListRequest {
                resource: "contacts",
                schema: &crate::store::CONTACT_FILTER,
                orderable: crate::store::CONTACT_ORDER,
                filter: &r.filter,
                order_by: &r.order_by,
                show_deleted: r.show_deleted,
                page_size: r.page_size,
                page_token: &r.page_token,
                include_total_size: r.include_total_size,
            },
        )?;
        let page = self
            .store
            .list_contacts(&tenant, plan.query.clone())
            .await?;
        let contacts = &page.items;
        Ok(Response::new(pb::ListContactsResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, &page),
            contacts: contacts.iter().map(contact_message).collect(),
            total_size: page.total_size(),
        }))
    }

    async fn update_contact(
        &self,
        request: Request<pb::UpdateContactRequest>,
    ) -> Result<Response<pb::Contact>, Status> {
        let (principal, tenant) = caller(&request)?;
        let request = request.into_inner();
        let contact = required(request.contact, "contact")?;
        let id = parse_name(&contact.name, "contacts", "contact.name")?;
        let expected = parse_etag(&contact.etag, "contact.etag")?;
        let mask = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let paths = domain::validate::update_paths(&mask, domain::contact::WRITABLE_FIELDS)?;
        let patch = contact_draft(contact, "contact")?;
        let updated = self
            .store
            .update_contact(&tenant, &principal.subject, id, expected, |draft| {
                draft.apply(patch, &paths);
                *draft = std::mem::take(draft).normalize("contact")?;
                Ok(())
            })
            .await?;
        Ok(Response::new(contact_message(&updated)))
    }

    async fn delete_contact(
        &self,
        request: Request<pb::DeleteContactRequest>,
    ) -> Result<Response<pb::Contact>, Status> {
        let (principal, tenant) = caller(&request)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "contacts", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let contact = self
            .store
            .delete_contact(&tenant, &principal.subject, id, expected)
            .await?;
        Ok(Response::new(contact_message(&contact)))
    }

    async fn undelete_contact(
        &self,
        request: Request<pb::UndeleteContactRequest>,
    ) -> Result<Response<pb::Contact>, Status> {
        let (principal, tenant) = caller(&request)?;
        let id = parse_name(&request.get_ref().name, "contacts", "name")?;
        let contact = self
            .store
            .undelete_contact(&tenant, &principal.subject, id)
            .await?;
        Ok(Response::new(contact_message(&contact)))
    }

    async fn search_contacts(
        &self,
        request: Request<pb::SearchContactsRequest>,
    ) -> Result<Response<pb::SearchContactsResponse>, Status> {
        let (_, tenant) = caller(&request)?;
        let r = request.into_inner();
        Ok(Response::new(
            queries::search(&self.store, &tenant, &r.query, r.page_size).await?,
        ))
    }

    async fn batch_get_contacts(
        &self,
        request: Request<pb::BatchGetContactsRequest>,
    ) -> Result<Response<pb::BatchGetContactsResponse>, Status> {
        let (_, tenant) = caller(&request)?;
        let names = request.into_inner().names;
        if names.len() > 1000 {
            return Err(ApiError::invalid("names", "at most 1000").into());
        }
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, name)| parse_name(name, "contacts", &format!("names[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let contacts = self.store.batch_get_contacts(&tenant, &ids).await?;
        Ok(Response::new(pb::BatchGetContactsResponse {
            contacts: contacts.iter().map(contact_message).collect(),
        }))
    }

    async fn find_duplicates(
        &self,
        request: Request<pb::FindDuplicatesRequest>,
    ) -> Result<Response<pb::FindDuplicatesResponse>, Status> {
        let (_, tenant) = caller(&request)?;
        Ok(Response::new(
            queries::find_duplicates(&self.store, &tenant, request.into_inner()).await?,
        ))
    }

    async fn merge_contacts(
        &self,
        request: Request<pb::MergeContactsRequest>,
    ) -> Result<Response<pb::Contact>, Status> {
        let (principal, tenant) = caller(&request)?;
        let r = request.into_inner();
        let survivor = parse_name(&r.survivor, "contacts", "survivor")?;
        if r.merged.is_empty() || r.merged.len() > 20 {
            return Err(ApiError::invalid("merged", "name 1 to 20 contacts to merge").into());
        }
        let mut merged = Vec::new();
        for (i, name) in r.merged.iter().enumerate() {
            let id = parse_name(name, "contacts", &format!("merged[{i}]"))?;
            if id == survivor || merged.contains(&id) {
                return Err(ApiError::invalid(
                    format!("merged[{i}]"),
                    "names the survivor or repeats a contact",
                )
                .into());
            }
            merged.push(id);
        }
        let expected = parse_etag(&r.etag, "etag")?;
        let contact = self
            .store
            .merge_contacts(&tenant, &principal.subject, survivor, &merged, expected)
            .await?;
        Ok(Response::new(contact_message(&contact)))
    }

    type ImportContactsStream = BoxStream<pb::ImportContactsResponse>;

    async fn import_contacts(
        &self,
        request: Request<Streaming<pb::ImportContactsRequest>>,
    ) -> Result<Response<Self::ImportContactsStream>, Status> {
        let (principal, tenant) = caller(&request)?;
        let rows = request.into_inner();
        Ok(Response::new(import::run(
            self.store.clone(),
            tenant,
            principal.subject,
            rows,
        )))
    }

    type ExportContactsStream = BoxStream<pb::ExportContactsResponse>;

    async fn export_contacts(
        &self,
        request: Request<pb::ExportContactsRequest>,
    ) -> Result<Response<Self::ExportContactsStream>, Status> {
        let (_, tenant) = caller(&request)?;
        let r = request.into_inner();
        let condition = parse_filter(&crate::store::CONTACT_FILTER, &r.filter)
            .map_err(|e| ApiError::invalid("filter", e.message))?;
        Ok(Response::new(import::export(
            self.store.clone(),
            tenant,
            condition,
            r.show_deleted,
        )))
    }

    async fn list_timeline(
        &self,
        request: Request<pb::ListTimelineRequest>,
    ) -> Result<Response<pb::ListTimelineResponse>, Status> {
        let (_, tenant) = caller(&request)?;
        let r = request.into_inner();
        let id = parse_name(&r.contact, "contacts", "contact")?;
        self.store.get_contact(&tenant, id).await?;
        // The timeline is the activity list filtered to one contact, newest first.
        let filter = format!("contact = \"contacts/{id}\"");
        let plan = ListPlan::new(
            &self.page_tokens,
            ListRequest {
                resource: "activities",
                schema: &crate::store::ACTIVITY_FILTER,
                orderable: crate::store::ACTIVITY_ORDER,
                filter: &filter,
                order_by: "occur_time desc",
                show_deleted: false,
                page_size: r.page_size,
                page_token: &r.page_token,
                include_total_size: false,
            },
        )?;
        let page = self
            .store
            .list_activities(&tenant, plan.query.clone())
            .await?;
        let activities = &page.items;
        Ok(Response::new(pb::ListTimelineResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, &page),
            activities: activities.iter().map(activity_message).collect(),
        }))
    }

    async fn export_contact_data(
        &self,
        request: Request<pb::ExportContactDataRequest>,
    ) -> Result<Response<pb::ExportContactDataResponse>, Status> {
        let (_, tenant) = caller(&request)?;
        let id = parse_name(&request.get_ref().name, "contacts", "name")?;
        Ok(Response::new(
            queries::export_person(&self.store, &tenant, id).await?,
        ))
    }

    async fn erase_contact(
        &self,
        request: Request<pb::EraseContactRequest>,
    ) -> Result<Response<pb::EraseContactResponse>, Status> {
        let (principal, tenant) = caller(&request)?;
        let name = request.into_inner().name;
        let id = parse_name(&name, "contacts", "name")?;
        let erased = self
            .store
            .erase_contact(&tenant, &principal.subject, id)
            .await?;
        Ok(Response::new(pb::EraseContactResponse {
            name,
            erased_activity_count: i32::try_from(erased).unwrap_or(i32::MAX),
        }))
    }

    async fn create_company(
        &self,
        request: Request<pb::CreateCompanyRequest>,
    ) -> Result<Response<pb::Company>, Status> {
        let (principal, tenant) = caller(&request)?;
        let request = request.into_inner();
        let request_id = IdempotencyKey::of(&request.request_id, &request)?;
        let draft = company_draft(required(request.company, "company")?).normalize("company")?;
        let company = self
            .store
            .create_company(&tenant, &principal.subject, draft, request_id)
            .await?;
        Ok(Response::new(company_message(&company)))
    }

    async fn get_company(
        &self,
        request: Request<pb::GetCompanyRequest>,
    ) -> Result<Response<pb::Company>, Status> {
        let (_, tenant) = caller(&request)?;
        let id = parse_name(&request.get_ref().name, "companies", "name")?;
        Ok(Response::new(company_message(
            &self.store.get_company(&tenant, id).await?,
        )))
    }

    async fn list_companies(
        &self,
        request: Request<pb::ListCompaniesRequest>,
    ) -> Result<Response<pb::ListCompaniesResponse>, Status> {
        let (_, tenant) = caller(&request)?;
        let r = request.into_inner();
        let plan = ListPlan::new(
            &self.page_tokens,
            ListRequest {
                resource: "companies",
                schema: &crate::store::COMPANY_FILTER,
                orderable: crate::store::COMPANY_ORDER,
                filter: &r.filter,
                order_by: &r.order_by,
                show_deleted: r.show_deleted,
                page_size: r.page_size,
                page_token: &r.page_token,
                include_total_size: r.include_total_size,
            },
        )?;
        let page = self
            .store
            .list_companies(&tenant, plan.query.clone())
            .await?;
        let companies = &page.items;
        Ok(Response::new(pb::ListCompaniesResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, &page),
            companies: companies.iter().map(company_message).collect(),
            total_size: page.total_size(),
        }))
    }

    async fn update_company(
        &self,
        request: Request<pb::UpdateCompanyRequest>,
    ) -> Result<Response<pb::Company>, Status> {
        let (principal, tenant) = caller(&request)?;
        let request = request.into_inner();
        let company = required(request.company, "company")?;
        let id = parse_name(&company.name, "companies", "company.name")?;
        let expected = parse_etag(&company.etag, "company.etag")?;
        let mask = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let paths = domain::validate::update_paths(&mask, domain::company::WRITABLE_FIELDS)?;
        let patch = company_draft(company);
        let updated = self
            .store
            .change_company(
                &tenant,
                &principal.subject,
                id,
                expected,
                "CompanyUpdated",
                |company| {
                    if company.delete_time.is_some() {
                        return Err(ApiError::FailedPrecondition(format!(
                            "{} is deleted",
                            company.name()
                        )));
                    }
                    company.draft.apply(patch, &paths);
                    company.draft = std::mem::take(&mut company.draft).normalize("company")?;
                    Ok(())
                },
            )
            .await?;
        Ok(Response::new(company_message(&updated)))
    }

    async fn delete_company(
        &self,
        request: Request<pb::DeleteCompanyRequest>,
    ) -> Result<Response<pb::Company>, Status> {
        let (principal, tenant) = caller(&request)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "companies", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let company = self
            .store
            .change_company(
                &tenant,
                &principal.subject,
                id,
                expected,
                "CompanyDeleted",
                |company| {
                    if company.delete_time.is_some() {
                        return Err(ApiError::FailedPrecondition(format!(
                            "{} is already deleted",
                            company.name()
                        )));
                    }
                    company.delete_time = Some(chrono::Utc::now());
                    Ok(())
                },
            )
            .await?;
        Ok(Response::new(company_message(&company)))
    }

    async fn undelete_company(
        &self,
        request: Request<pb::UndeleteCompanyRequest>,
    ) -> Result<Response<pb::Company>, Status> {
        let (principal, tenant) = caller(&request)?;
        let id = parse_name(&request.get_ref().name, "companies", "name")?;
        let company = self
            .store
            .change_company(
                &tenant,
                &principal.subject,
                id,
                None,
                "CompanyUndeleted",
                |company| {
                    if company.delete_time.is_none() {
                        return Err(ApiError::FailedPrecondition(format!(
                            "{} is not deleted",
                            company.name()
                        )));
                    }
                    company.delete_time = None;
                    Ok(())
                },
            )
            .await?;
        Ok(Response::new(company_message(&company)))
    }

    async fn create_activity(
        &self,
        request: Request<pb::CreateActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (principal, tenant) = caller(&request)?;
        let request = request.into_inner();
        let request_id = IdempotencyKey::of(&request.request_id, &request)?;
        let mut draft = activity_draft(required(request.activity, "activity")?, "activity")?
            .normalize("activity")?;
        if draft.kind == Some(ActivityKind::System) && !principal.is_service() {
            return Err(ApiError::PermissionDenied(
                "only the service identity writes SYSTEM entries".into(),
            )
            .into());
        }
        if draft.actor.is_empty() {
            draft.actor.clone_from(&principal.subject);
        }
        let activity = self
            .store
            .create_activity(&tenant, &principal.subject, draft, request_id)
            .await?;
        Ok(Response::new(activity_message(&activity)))
    }

    async fn get_activity(
        &self,
        request: Request<pb::GetActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (_, tenant) = caller(&request)?;
        let id = parse_name(&request.get_ref().name, "activities", "name")?;
        Ok(Response::new(activity_message(
            &self.store.get_activity(&tenant, id).await?,
        )))
    }

    async fn list_activities(
        &self,
        request: Request<pb::ListActivitiesRequest>,
    ) -> Result<Response<pb::ListActivitiesResponse>, Status> {
        let (_, tenant) = caller(&request)?;
        let r = request.into_inner();
        let plan = ListPlan::new(
            &self.page_tokens,
            ListRequest {
                resource: "activities",
                schema: &crate::store::ACTIVITY_FILTER,
                orderable: crate::store::ACTIVITY_ORDER,
                filter: &r.filter,
                order_by: &r.order_by,
                show_deleted: r.show_deleted,
                page_size: r.page_size,
                page_token: &r.page_token,
                include_total_size: r.include_total_size,
            },
        )?;
        let page = self
            .store
            .list_activities(&tenant, plan.query.clone())
            .await?;
        let activities = &page.items;
        Ok(Response::new(pb::ListActivitiesResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, &page),
            activities: activities.iter().map(activity_message).collect(),
            total_size: page.total_size(),
        }))
    }

    async fn update_activity(
        &self,
        request: Request<pb::UpdateActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (principal, tenant) = caller(&request)?;
        let request = request.into_inner();
        let activity = required(request.activity, "activity")?;
        let id = parse_name(&activity.name, "activities", "activity.name")?;
        let expected = parse_etag(&activity.etag, "activity.etag")?;
        let mask = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let paths = domain::validate::update_paths(&mask, domain::activity::WRITABLE_FIELDS)?;
        let patch = activity_draft(activity, "activity")?;
        let updated = self
            .store
            .change_activity(
                &tenant,
                &principal.subject,
                id,
                expected,
                "ActivityUpdated",
                |activity| {
                    if activity.delete_time.is_some() {
                        return Err(ApiError::FailedPrecondition(format!(
                            "{} is deleted",
                            activity.name()
                        )));
                    }
                    activity.draft.apply(patch, &paths);
                    activity.draft = activity.draft.clone().normalize("activity")?;
                    Ok(())
                },
            )
            .await?;
        Ok(Response::new(activity_message(&updated)))
    }

    async fn delete_activity(
        &self,
        request: Request<pb::DeleteActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (principal, tenant) = caller(&request)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "activities", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let activity = self
            .store
            .change_activity(
                &tenant,
                &principal.subject,
                id,
                expected,
                "ActivityDeleted",
                |activity| {
                    if activity.delete_time.is_some() {
                        return Err(ApiError::FailedPrecondition(format!(
                            "{} is already deleted",
                            activity.name()
                        )));
                    }
                    activity.delete_time = Some(chrono::Utc::now());
                    Ok(())
                },
            )
            .await?;
        Ok(Response::new(activity_message(&activity)))
    }
}

/// The event payload encoder the store uses.
pub fn payloads() -> Arc<dyn crate::store::EventPayloads> {
    Arc::new(ProtoPayloads)
}
