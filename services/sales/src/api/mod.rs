//! The gRPC surface: each handler checks the caller's role, turns the request
//! into domain values, calls the store (and, for conversion and reference
//! checks, the contacts service) and turns the result back into protobuf.

mod convert;

use chrono::Utc;
use crm_proto::{contacts::LifecycleStage, sales as pb, sales::sales_service_server::SalesService};
use crm_shared::{
    auth::{Principal, Role, authorize},
    client::Credentials,
    convert::{from_timestamp, parse_etag, parse_name, required},
    db::Tenant,
    error::ApiError,
    filter::{FilterSchema, parse_filter},
    idempotency::parse_request_id,
    paging::PageTokens,
    store::{ListPlan, ListRequest},
    validate::{MAX_SHORT, Violations, update_paths},
};
use tonic::{Request, Response, Status};

pub use convert::ProtoPayloads;
use convert::*;

use crate::{
    contacts::Contacts,
    domain::{self, analysis, lead::LeadStatus, opportunity::OpportunityDraft, pipeline},
    store::{self, Store},
};

/// Who may change rules, pipelines and the catalogue.
const ADMINS: &[Role] = &[Role::Admin, Role::Manager];
/// Who works leads and deals.
const SELLERS: &[Role] = &[
    Role::Admin,
    Role::Manager,
    Role::Sales,
    Role::Marketing,
    Role::Service,
];

/// The `crm.sales.v1.SalesService` implementation.
#[derive(Clone)]
pub struct SalesApi {
    store: Store,
    contacts: Contacts,
    page_tokens: PageTokens,
}

/// The caller, its tenant, and its credentials to pass on to other services.
fn caller<T>(
    request: &Request<T>,
    roles: &[Role],
) -> Result<(Principal, Tenant, Credentials), ApiError> {
    let (principal, tenant) = authorize(request, roles)?;
    let credentials = Credentials::of(request.metadata())?;
    Ok((principal, tenant, credentials))
}

/// A list plan without a filter or order of the caller's (rules, pipelines).
fn simple_plan(
    tokens: &PageTokens,
    resource: &str,
    page_size: i32,
    page_token: &str,
) -> Result<ListPlan, ApiError> {
    const NONE: FilterSchema = FilterSchema { fields: &[] };
    ListPlan::new(
        tokens,
        ListRequest {
            resource,
            schema: &NONE,
            orderable: &[],
            filter: "",
            order_by: "",
            show_deleted: false,
            page_size,
            page_token,
        },
    )
}

/// Checks that a rule filter parses over the lead fields.
fn check_rule_filter(filter: &str, field: &str) -> Result<(), ApiError> {
    parse_filter(&store::LEAD_FILTER, filter)
        .map(|_| ())
        .map_err(|e| ApiError::invalid(field, e.message))
}

fn total(total: u64) -> i32 {
    i32::try_from(total).unwrap_or(i32::MAX)
}

impl SalesApi {
    /// The service over a store and a contacts client.
    pub fn new(store: Store, contacts: Contacts, page_tokens: PageTokens) -> Self {
        Self {
            store,
            contacts,
            page_tokens,
        }
    }

    /// Checks an opportunity's contact and company (when set) with the contacts service.
    async fn check_references(
        &self,
        credentials: &Credentials,
        contact: &str,
        company: &str,
    ) -> Result<(), ApiError> {
        if !contact.is_empty() {
            self.contacts
                .check_contact(credentials, contact, "opportunity.contact")
                .await?;
        }
        if !company.is_empty() {
            self.contacts
                .check_company(credentials, company, "opportunity.company")
                .await?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl SalesService for SalesApi {
    async fn create_lead(
        &self,
        request: Request<pb::CreateLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let (principal, tenant, credentials) = caller(&request, SELLERS)?;
        let r = request.into_inner();
        let request_id = parse_request_id(&r.request_id)?;
        let mut draft = lead_draft(&required(r.lead, "lead")?, true)?;
        draft.normalize_and_check("lead")?;
        // Capture must not fail because contacts is down: the duplicate check
        // against contacts is best effort; against open leads it always runs.
        let contact_matches = if draft.email.is_empty() {
            vec![]
        } else {
            match self.contacts.with_email(&credentials, &draft.email).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%error, "contacts unavailable: lead captured without the contact duplicate check");
                    vec![]
                }
            }
        };
        let lead = self
            .store
            .create_lead(
                &tenant,
                &principal.subject,
                draft,
                request_id,
                contact_matches,
            )
            .await?;
        Ok(Response::new(lead_message(&lead)))
    }

    async fn get_lead(
        &self,
        request: Request<pb::GetLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let id = parse_name(&request.get_ref().name, "leads", "name")?;
        Ok(Response::new(lead_message(
            &self.store.get_lead(&tenant, id).await?,
        )))
    }

    async fn list_leads(
        &self,
        request: Request<pb::ListLeadsRequest>,
    ) -> Result<Response<pb::ListLeadsResponse>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let r = request.into_inner();
        let plan = ListPlan::new(
            &self.page_tokens,
            ListRequest {
                resource: "leads",
                schema: &store::LEAD_FILTER,
                orderable: store::LEAD_ORDER,
                filter: &r.filter,
                order_by: &r.order_by,
                show_deleted: r.show_deleted,
                page_size: r.page_size,
                page_token: &r.page_token,
            },
        )?;
        let (leads, count) = self.store.list_leads(&tenant, plan.query.clone()).await?;
        Ok(Response::new(pb::ListLeadsResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, leads.len(), count),
            leads: leads.iter().map(lead_message).collect(),
            total_size: total(count),
        }))
    }

    async fn update_lead(
        &self,
        request: Request<pb::UpdateLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let (principal, tenant) = authorize(&request, SELLERS)?;
        let r = request.into_inner();
        let message = required(r.lead, "lead")?;
        let id = parse_name(&message.name, "leads", "lead.name")?;
        let expected = parse_etag(&message.etag, "lead.etag")?;
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let paths = update_paths(&mask, domain::lead::WRITABLE_FIELDS)?;
        let changes = lead_draft(&message, false)?;
        let lead = self
            .store
            .update_lead(
                &tenant,
                &principal.subject,
                id,
                expected,
                |lead| {
                    lead.draft.apply(&paths, &changes);
                    lead.draft.normalize_and_check("lead")
                },
                "LeadUpdated",
            )
            .await?;
        Ok(Response::new(lead_message(&lead)))
    }

    async fn delete_lead(
        &self,
        request: Request<pb::DeleteLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let (principal, tenant) = authorize(&request, SELLERS)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "leads", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let lead = self
            .store
            .update_lead(
                &tenant,
                &principal.subject,
                id,
                expected,
                |lead| {
                    lead.delete_time.get_or_insert_with(Utc::now);
                    Ok(())
                },
                "LeadDeleted",
            )
            .await?;
        Ok(Response::new(lead_message(&lead)))
    }

    async fn undelete_lead(
        &self,
        request: Request<pb::UndeleteLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let (principal, tenant) = authorize(&request, SELLERS)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "leads", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let lead = self
            .store
            .update_lead(
                &tenant,
                &principal.subject,
                id,
                expected,
                |lead| {
                    lead.delete_time = None;
                    Ok(())
                },
                "LeadUndeleted",
            )
            .await?;
        Ok(Response::new(lead_message(&lead)))
    }

    async fn assign_lead(
        &self,
        request: Request<pb::AssignLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        let (principal, tenant) = authorize(&request, SELLERS)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "leads", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let owner = r.owner.trim().to_owned();
        let mut v = Violations::default();
        v.text("owner", &owner, MAX_SHORT);
        if owner.is_empty() {
            v.add("owner", "required");
        }
        v.finish()?;
        let by = principal.subject.clone();
        let lead = self
            .store
            .update_lead(
                &tenant,
                &principal.subject,
                id,
                expected,
                |lead| {
                    lead.owner = owner;
                    lead.assignment_reason = format!("manual, by {by}");
                    Ok(())
                },
                "LeadAssigned",
            )
            .await?;
        Ok(Response::new(lead_message(&lead)))
    }

    async fn convert_lead(
        &self,
        request: Request<pb::ConvertLeadRequest>,
    ) -> Result<Response<pb::ConvertLeadResponse>, Status> {
        let (principal, tenant, credentials) = caller(&request, SELLERS)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "leads", "name")?;
        let lead = self.store.get_lead(&tenant, id).await?;
        if lead.delete_time.is_some() {
            return Err(ApiError::NotFound(lead.name()).into());
        }
        if lead.draft.status == LeadStatus::Converted {
            // A retry: the first conversion's result.
            let opportunity = self.store.converted_opportunity(&tenant, &lead).await?;
            return Ok(Response::new(pb::ConvertLeadResponse {
                contact: lead.converted_contact.clone(),
                company: lead.converted_company.clone(),
                contact_reused: false,
                opportunity: opportunity.as_ref().map(opportunity_message),
                lead: Some(lead_message(&lead)),
            }));
        }
        if lead.draft.status == LeadStatus::Disqualified {
            return Err(ApiError::FailedPrecondition(format!(
                "{} is disqualified; requalify it first",
                lead.name()
            ))
            .into());
        }
        // Check the opportunity before anything is written anywhere.
        let opportunity = if r.create_opportunity {
            let display_name = if r.opportunity_display_name.trim().is_empty() {
                format!("{} deal", lead.draft.display_name())
            } else {
                r.opportunity_display_name.clone()
            };
            let draft = OpportunityDraft {
                display_name,
                amount: Some(required(r.amount, "amount")?.into()),
                pipeline: r.pipeline.clone(),
                stage: String::new(),
                expected_close_date: domain::opportunity::parse_date(
                    &r.expected_close_date,
                    "expected_close_date",
                )?,
                owner: lead.owner.clone(),
                contact: String::new(),
                company: String::new(),
                line_items: vec![],
                close_reason: String::new(),
            };
            Some(
                self.store
                    .prepare_opportunity(&tenant, &principal.subject, draft, lead.name())
                    .await?,
            )
        } else {
            None
        };
        // The contact and company are made with request ids derived from the
        // lead: a retry after a failure below finds them instead of making
        // duplicates, and the lead is only marked converted at the very end.
        let company = if lead.draft.company_name.is_empty() {
            String::new()
        } else {
            self.contacts.company_for(&credentials, &lead).await?
        };
        let stage = if opportunity.is_some() {
            LifecycleStage::Opportunity
        } else {
            LifecycleStage::SalesQualified
        };
        let (contact, reused) = self
            .contacts
            .contact_for(&credentials, &lead, &company, stage)
            .await?;
        let opportunity = opportunity.map(|mut o| {
            o.draft.contact = contact.clone();
            o.draft.company = company.clone();
            o
        });
        let (lead, opportunity) = self
            .store
            .mark_converted(
                &tenant,
                &principal.subject,
                id,
                contact.clone(),
                company.clone(),
                opportunity,
            )
            .await?;
        Ok(Response::new(pb::ConvertLeadResponse {
            lead: Some(lead_message(&lead)),
            contact: lead.converted_contact.clone(),
            contact_reused: reused,
            company: lead.converted_company.clone(),
            opportunity: opportunity.as_ref().map(opportunity_message),
        }))
    }

    async fn create_assignment_rule(
        &self,
        request: Request<pb::CreateAssignmentRuleRequest>,
    ) -> Result<Response<pb::AssignmentRule>, Status> {
        let (_, tenant) = authorize(&request, ADMINS)?;
        let r = request.into_inner();
        let request_id = parse_request_id(&r.request_id)?;
        let mut draft = rule_draft(&required(r.assignment_rule, "assignment_rule")?)?;
        draft.normalize_and_check("assignment_rule")?;
        check_rule_filter(&draft.filter, "assignment_rule.filter")?;
        let rule = self
            .store
            .create_assignment_rule(&tenant, draft, request_id)
            .await?;
        Ok(Response::new(rule_message(&rule)))
    }

    async fn list_assignment_rules(
        &self,
        request: Request<pb::ListAssignmentRulesRequest>,
    ) -> Result<Response<pb::ListAssignmentRulesResponse>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let r = request.into_inner();
        let plan = simple_plan(
            &self.page_tokens,
            "assignmentRules",
            r.page_size,
            &r.page_token,
        )?;
        let (rules, count) = self
            .store
            .list_assignment_rules(&tenant, plan.query.clone())
            .await?;
        Ok(Response::new(pb::ListAssignmentRulesResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, rules.len(), count),
            assignment_rules: rules.iter().map(rule_message).collect(),
        }))
    }

    async fn delete_assignment_rule(
        &self,
        request: Request<pb::DeleteAssignmentRuleRequest>,
    ) -> Result<Response<pb::AssignmentRule>, Status> {
        let (_, tenant) = authorize(&request, ADMINS)?;
        let id = parse_name(&request.get_ref().name, "assignmentRules", "name")?;
        Ok(Response::new(rule_message(
            &self.store.delete_assignment_rule(&tenant, id).await?,
        )))
    }

    async fn create_scoring_rule(
        &self,
        request: Request<pb::CreateScoringRuleRequest>,
    ) -> Result<Response<pb::ScoringRule>, Status> {
        let (_, tenant) = authorize(&request, ADMINS)?;
        let r = request.into_inner();
        let request_id = parse_request_id(&r.request_id)?;
        let rule = required(r.scoring_rule, "scoring_rule")?;
        let display_name = rule.display_name.trim().to_owned();
        let mut v = Violations::default();
        v.text("scoring_rule.display_name", &display_name, MAX_SHORT);
        if display_name.is_empty() {
            v.add("scoring_rule.display_name", "required");
        }
        if !(-1000..=1000).contains(&rule.points) {
            v.add("scoring_rule.points", "between -1000 and 1000");
        }
        v.finish()?;
        check_rule_filter(&rule.filter, "scoring_rule.filter")?;
        let created = self
            .store
            .create_scoring_rule(&tenant, display_name, rule.filter, rule.points, request_id)
            .await?;
        self.store.rescore_all(&tenant).await?;
        Ok(Response::new(scoring_rule_message(&created)))
    }

    async fn list_scoring_rules(
        &self,
        request: Request<pb::ListScoringRulesRequest>,
    ) -> Result<Response<pb::ListScoringRulesResponse>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let r = request.into_inner();
        let plan = simple_plan(
            &self.page_tokens,
            "scoringRules",
            r.page_size,
            &r.page_token,
        )?;
        let (rules, count) = self
            .store
            .list_scoring_rules(&tenant, plan.query.clone())
            .await?;
        Ok(Response::new(pb::ListScoringRulesResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, rules.len(), count),
            scoring_rules: rules.iter().map(scoring_rule_message).collect(),
        }))
    }

    async fn delete_scoring_rule(
        &self,
        request: Request<pb::DeleteScoringRuleRequest>,
    ) -> Result<Response<pb::ScoringRule>, Status> {
        let (_, tenant) = authorize(&request, ADMINS)?;
        let id = parse_name(&request.get_ref().name, "scoringRules", "name")?;
        let rule = self.store.delete_scoring_rule(&tenant, id).await?;
        self.store.rescore_all(&tenant).await?;
        Ok(Response::new(scoring_rule_message(&rule)))
    }

    async fn rescore_leads(
        &self,
        request: Request<pb::RescoreLeadsRequest>,
    ) -> Result<Response<pb::RescoreLeadsResponse>, Status> {
        let (_, tenant) = authorize(&request, ADMINS)?;
        let (rescored, trained, examples) = self.store.rescore_all(&tenant).await?;
        Ok(Response::new(pb::RescoreLeadsResponse {
            rescored: total(rescored),
            model_trained: trained,
            training_examples: total(examples as u64),
        }))
    }

    async fn create_pipeline(
        &self,
        request: Request<pb::CreatePipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let (principal, tenant) = authorize(&request, ADMINS)?;
        let r = request.into_inner();
        let request_id = parse_request_id(&r.request_id)?;
        let message = required(r.pipeline, "pipeline")?;
        let stages = stages(None, &message.stages)?;
        let display_name = message.display_name.trim().to_owned();
        pipeline::check(&display_name, &stages, "pipeline")?;
        let now = Utc::now();
        let created = self
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

    async fn get_pipeline(
        &self,
        request: Request<pb::GetPipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let id = parse_name(&request.get_ref().name, "pipelines", "name")?;
        Ok(Response::new(pipeline_message(
            &self.store.get_pipeline(&tenant, id).await?,
        )))
    }

    async fn list_pipelines(
        &self,
        request: Request<pb::ListPipelinesRequest>,
    ) -> Result<Response<pb::ListPipelinesResponse>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let r = request.into_inner();
        let plan = simple_plan(&self.page_tokens, "pipelines", r.page_size, &r.page_token)?;
        let (pipelines, count) = self
            .store
            .list_pipelines(&tenant, plan.query.clone())
            .await?;
        Ok(Response::new(pb::ListPipelinesResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, pipelines.len(), count),
            pipelines: pipelines.iter().map(pipeline_message).collect(),
        }))
    }

    async fn update_pipeline(
        &self,
        request: Request<pb::UpdatePipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let (principal, tenant) = authorize(&request, ADMINS)?;
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
        let updated = self
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

    async fn delete_pipeline(
        &self,
        request: Request<pb::DeletePipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        let (principal, tenant) = authorize(&request, ADMINS)?;
        let id = parse_name(&request.get_ref().name, "pipelines", "name")?;
        Ok(Response::new(pipeline_message(
            &self
                .store
                .delete_pipeline(&tenant, &principal.subject, id)
                .await?,
        )))
    }

    async fn create_opportunity(
        &self,
        request: Request<pb::CreateOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        let (principal, tenant, credentials) = caller(&request, SELLERS)?;
        let r = request.into_inner();
        let request_id = parse_request_id(&r.request_id)?;
        let mut draft = opportunity_draft(&required(r.opportunity, "opportunity")?)?;
        draft.normalize_and_check("opportunity")?;
        self.check_references(&credentials, &draft.contact, &draft.company)
            .await?;
        let prepared = self
            .store
            .prepare_opportunity(&tenant, &principal.subject, draft, String::new())
            .await?;
        let created = self
            .store
            .create_opportunity(&tenant, &principal.subject, prepared, request_id)
            .await?;
        Ok(Response::new(opportunity_message(&created)))
    }

    async fn get_opportunity(
        &self,
        request: Request<pb::GetOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let id = parse_name(&request.get_ref().name, "opportunities", "name")?;
        Ok(Response::new(opportunity_message(
            &self.store.get_opportunity(&tenant, id).await?,
        )))
    }

    async fn list_opportunities(
        &self,
        request: Request<pb::ListOpportunitiesRequest>,
    ) -> Result<Response<pb::ListOpportunitiesResponse>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let r = request.into_inner();
        let plan = ListPlan::new(
            &self.page_tokens,
            ListRequest {
                resource: "opportunities",
                schema: &store::OPPORTUNITY_FILTER,
                orderable: store::OPPORTUNITY_ORDER,
                filter: &r.filter,
                order_by: &r.order_by,
                show_deleted: r.show_deleted,
                page_size: r.page_size,
                page_token: &r.page_token,
            },
        )?;
        let (deals, count) = self
            .store
            .list_opportunities(&tenant, plan.query.clone())
            .await?;
        Ok(Response::new(pb::ListOpportunitiesResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, deals.len(), count),
            opportunities: deals.iter().map(opportunity_message).collect(),
            total_size: total(count),
        }))
    }

    async fn update_opportunity(
        &self,
        request: Request<pb::UpdateOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        let (principal, tenant, credentials) = caller(&request, SELLERS)?;
        let r = request.into_inner();
        let message = required(r.opportunity, "opportunity")?;
        let id = parse_name(&message.name, "opportunities", "opportunity.name")?;
        let expected = parse_etag(&message.etag, "opportunity.etag")?;
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let paths = update_paths(&mask, domain::opportunity::WRITABLE_FIELDS)?;
        let changes = opportunity_draft(&message)?;
        let changed = |field: &str, value: &'_ String| {
            if paths.contains(&field) {
                value.clone()
            } else {
                String::new()
            }
        };
        self.check_references(
            &credentials,
            &changed("contact", &changes.contact),
            &changed("company", &changes.company),
        )
        .await?;
        let updated = self
            .store
            .update_opportunity(&tenant, &principal.subject, id, expected, &paths, &changes)
            .await?;
        Ok(Response::new(opportunity_message(&updated)))
    }

    async fn delete_opportunity(
        &self,
        request: Request<pb::DeleteOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        let (principal, tenant) = authorize(&request, SELLERS)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "opportunities", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let deleted = self
            .store
            .set_opportunity_deleted(&tenant, &principal.subject, id, expected, true)
            .await?;
        Ok(Response::new(opportunity_message(&deleted)))
    }

    async fn undelete_opportunity(
        &self,
        request: Request<pb::UndeleteOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        let (principal, tenant) = authorize(&request, SELLERS)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "opportunities", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let restored = self
            .store
            .set_opportunity_deleted(&tenant, &principal.subject, id, expected, false)
            .await?;
        Ok(Response::new(opportunity_message(&restored)))
    }

    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let (principal, tenant) = authorize(&request, ADMINS)?;
        let r = request.into_inner();
        let request_id = parse_request_id(&r.request_id)?;
        let mut draft = product_draft(&required(r.product, "product")?);
        draft.normalize_and_check("product")?;
        let created = self
            .store
            .create_product(&tenant, &principal.subject, draft, request_id)
            .await?;
        Ok(Response::new(product_message(&created)))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let id = parse_name(&request.get_ref().name, "products", "name")?;
        Ok(Response::new(product_message(
            &self.store.get_product(&tenant, id).await?,
        )))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let r = request.into_inner();
        let plan = ListPlan::new(
            &self.page_tokens,
            ListRequest {
                resource: "products",
                schema: &store::PRODUCT_FILTER,
                orderable: store::PRODUCT_ORDER,
                filter: &r.filter,
                order_by: &r.order_by,
                show_deleted: false,
                page_size: r.page_size,
                page_token: &r.page_token,
            },
        )?;
        let (products, count) = self
            .store
            .list_products(&tenant, plan.query.clone())
            .await?;
        Ok(Response::new(pb::ListProductsResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, products.len(), count),
            products: products.iter().map(product_message).collect(),
            total_size: total(count),
        }))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let (principal, tenant) = authorize(&request, ADMINS)?;
        let r = request.into_inner();
        let message = required(r.product, "product")?;
        let id = parse_name(&message.name, "products", "product.name")?;
        let expected = parse_etag(&message.etag, "product.etag")?;
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let paths = update_paths(&mask, domain::product::WRITABLE_FIELDS)?;
        let updated = self
            .store
            .update_product(
                &tenant,
                &principal.subject,
                id,
                expected,
                &paths,
                &product_draft(&message),
            )
            .await?;
        Ok(Response::new(product_message(&updated)))
    }

    async fn create_task(
        &self,
        request: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let (principal, tenant, credentials) = caller(&request, SELLERS)?;
        let r = request.into_inner();
        let request_id = parse_request_id(&r.request_id)?;
        let mut draft = task_draft(&required(r.task, "task")?)?;
        draft.normalize_and_check("task")?;
        if draft.owner.is_empty() {
            draft.owner = principal.subject.clone();
        }
        if !draft.lead.is_empty()
            && self
                .store
                .live_leads(&tenant, std::slice::from_ref(&draft.lead))
                .await?
                .is_empty()
        {
            return Err(
                ApiError::invalid("task.lead", format!("{} does not exist", draft.lead)).into(),
            );
        }
        if !draft.opportunity.is_empty() {
            let id = parse_name(&draft.opportunity, "opportunities", "task.opportunity")?;
            match self.store.get_opportunity(&tenant, id).await {
                Ok(o) if o.delete_time.is_none() => {}
                Ok(_) | Err(ApiError::NotFound(_)) => {
                    return Err(ApiError::invalid(
                        "task.opportunity",
                        format!("{} does not exist", draft.opportunity),
                    )
                    .into());
                }
                Err(other) => return Err(other.into()),
            }
        }
        if !draft.contact.is_empty() {
            self.contacts
                .check_contact(&credentials, &draft.contact, "task.contact")
                .await?;
        }
        let created = self
            .store
            .create_task(&tenant, &principal.subject, draft, request_id)
            .await?;
        Ok(Response::new(task_message(&created)))
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let id = parse_name(&request.get_ref().name, "tasks", "name")?;
        Ok(Response::new(task_message(
            &self.store.get_task(&tenant, id).await?,
        )))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let r = request.into_inner();
        let plan = ListPlan::new(
            &self.page_tokens,
            ListRequest {
                resource: if r.overdue_only {
                    "tasks-overdue"
                } else {
                    "tasks"
                },
                schema: &store::TASK_FILTER,
                orderable: store::TASK_ORDER,
                filter: &r.filter,
                order_by: &r.order_by,
                show_deleted: r.show_deleted,
                page_size: r.page_size,
                page_token: &r.page_token,
            },
        )?;
        let (tasks, count) = self
            .store
            .list_tasks(&tenant, plan.query.clone(), r.overdue_only)
            .await?;
        Ok(Response::new(pb::ListTasksResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, tasks.len(), count),
            tasks: tasks.iter().map(task_message).collect(),
            total_size: total(count),
        }))
    }

    async fn update_task(
        &self,
        request: Request<pb::UpdateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let (principal, tenant) = authorize(&request, SELLERS)?;
        let r = request.into_inner();
        let message = required(r.task, "task")?;
        let id = parse_name(&message.name, "tasks", "task.name")?;
        let expected = parse_etag(&message.etag, "task.etag")?;
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let paths = update_paths(&mask, domain::task::WRITABLE_FIELDS)?;
        let changes = task_draft(&message)?;
        let updated = self
            .store
            .update_task(
                &tenant,
                &principal.subject,
                id,
                expected,
                |task| {
                    if task.delete_time.is_some() {
                        return Err(ApiError::NotFound(task.name()));
                    }
                    task.draft.apply(&paths, &changes);
                    task.draft.normalize_and_check("task")
                },
                "TaskUpdated",
            )
            .await?;
        Ok(Response::new(task_message(&updated)))
    }

    async fn delete_task(
        &self,
        request: Request<pb::DeleteTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let (principal, tenant) = authorize(&request, SELLERS)?;
        let r = request.into_inner();
        let id = parse_name(&r.name, "tasks", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let deleted = self
            .store
            .update_task(
                &tenant,
                &principal.subject,
                id,
                expected,
                |task| {
                    task.delete_time.get_or_insert_with(Utc::now);
                    Ok(())
                },
                "TaskDeleted",
            )
            .await?;
        Ok(Response::new(task_message(&deleted)))
    }

    async fn get_forecast(
        &self,
        request: Request<pb::GetForecastRequest>,
    ) -> Result<Response<pb::Forecast>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
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
        let deals = self
            .store
            .forecast_deals(&tenant, &owners, start, end)
            .await?;
        let lines = analysis::forecast(&deals, start, end);
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

    async fn analyze_pipeline(
        &self,
        request: Request<pb::AnalyzePipelineRequest>,
    ) -> Result<Response<pb::PipelineAnalysis>, Status> {
        let (_, tenant) = authorize(&request, Role::READERS)?;
        let r = request.into_inner();
        let (start, end) = period(r.period_start.as_ref(), r.period_end.as_ref())?;
        let pipeline = self
            .store
            .resolve_pipeline(&tenant, &r.pipeline, "pipeline")
            .await?;
        let deals = self.store.pipeline_deals(&tenant, &pipeline.name()).await?;
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
