//! The gRPC surface: each handler checks the caller's role, turns the request
//! into domain values, calls the store (and, for conversion and reference
//! checks, the contacts service) and turns the result back into protobuf.
//!
//! The handlers live with their resource (`leads`, `rules`, `pipelines`,
//! `opportunities`, `products`, `tasks`, `forecasts`); tonic wants one impl
//! of the service trait, so the one here only hands each call on.

mod convert;
mod forecasts;
mod leads;
mod opportunities;
mod pipelines;
mod products;
mod rules;
mod tasks;

use crm_proto::{sales as pb, sales::sales_service_server::SalesService};
use crm_shared::{
    auth::{Principal, Role, RoleRules, admitted},
    client::Credentials,
    db::Tenant,
    error::ApiError,
    filter::FilterSchema,
    paging::PageTokens,
    store::{ListPlan, ListRequest},
};
use tonic::{Request, Response, Status};

pub use convert::ProtoPayloads;

use crate::{contacts::Contacts, store::Store};

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

impl SalesApi {
    /// The service over a store and a contacts client.
    pub fn new(store: Store, contacts: Contacts, page_tokens: PageTokens) -> Self {
        Self {
            store,
            contacts,
            page_tokens,
        }
    }
}

/// Who may call each SalesService method; the kit checks every call against
/// it (the authorization matrix test prints it into the README).
pub const ROLE_RULES: RoleRules = &[
    ("GetForecast", Role::READERS),
    ("AnalyzePipeline", Role::READERS),
    ("CreateLead", SELLERS),
    ("GetLead", Role::READERS),
    ("ListLeads", Role::READERS),
    ("UpdateLead", SELLERS),
    ("DeleteLead", SELLERS),
    ("UndeleteLead", SELLERS),
    ("AssignLead", SELLERS),
    ("ConvertLead", SELLERS),
    ("CreateOpportunity", SELLERS),
    ("GetOpportunity", Role::READERS),
    ("ListOpportunities", Role::READERS),
    ("UpdateOpportunity", SELLERS),
    ("DeleteOpportunity", SELLERS),
    ("UndeleteOpportunity", SELLERS),
    ("CreatePipeline", ADMINS),
    ("GetPipeline", Role::READERS),
    ("ListPipelines", Role::READERS),
    ("UpdatePipeline", ADMINS),
    ("DeletePipeline", ADMINS),
    ("CreateProduct", ADMINS),
    ("GetProduct", Role::READERS),
    ("ListProducts", Role::READERS),
    ("UpdateProduct", ADMINS),
    ("CreateAssignmentRule", ADMINS),
    ("ListAssignmentRules", Role::READERS),
    ("DeleteAssignmentRule", ADMINS),
    ("CreateScoringRule", ADMINS),
    ("ListScoringRules", Role::READERS),
    ("DeleteScoringRule", ADMINS),
    ("RescoreLeads", ADMINS),
    ("CreateTask", SELLERS),
    ("GetTask", Role::READERS),
    ("ListTasks", Role::READERS),
    ("UpdateTask", SELLERS),
    ("DeleteTask", SELLERS),
];

/// The caller, its tenant, and its credentials to pass on to other services.
fn caller<T>(request: &Request<T>) -> Result<(Principal, Tenant, Credentials), ApiError> {
    let (principal, tenant) = admitted(request)?;
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
            include_total_size: false,
        },
    )
}

/// A count as an int32 field, saturating.
fn total(total: u64) -> i32 {
    i32::try_from(total).unwrap_or(i32::MAX)
}

#[tonic::async_trait]
impl SalesService for SalesApi {
    async fn create_lead(
        &self,
        request: Request<pb::CreateLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        leads::create_lead(self, request).await
    }

    async fn get_lead(
        &self,
        request: Request<pb::GetLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        leads::get_lead(self, request).await
    }

    async fn list_leads(
        &self,
        request: Request<pb::ListLeadsRequest>,
    ) -> Result<Response<pb::ListLeadsResponse>, Status> {
        leads::list_leads(self, request).await
    }

    async fn update_lead(
        &self,
        request: Request<pb::UpdateLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        leads::update_lead(self, request).await
    }

    async fn delete_lead(
        &self,
        request: Request<pb::DeleteLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        leads::delete_lead(self, request).await
    }

    async fn undelete_lead(
        &self,
        request: Request<pb::UndeleteLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        leads::undelete_lead(self, request).await
    }

    async fn assign_lead(
        &self,
        request: Request<pb::AssignLeadRequest>,
    ) -> Result<Response<pb::Lead>, Status> {
        leads::assign_lead(self, request).await
    }

    async fn convert_lead(
        &self,
        request: Request<pb::ConvertLeadRequest>,
    ) -> Result<Response<pb::ConvertLeadResponse>, Status> {
        leads::convert_lead(self, request).await
    }

    async fn create_assignment_rule(
        &self,
        request: Request<pb::CreateAssignmentRuleRequest>,
    ) -> Result<Response<pb::AssignmentRule>, Status> {
        rules::create_assignment_rule(self, request).await
    }

    async fn list_assignment_rules(
        &self,
        request: Request<pb::ListAssignmentRulesRequest>,
    ) -> Result<Response<pb::ListAssignmentRulesResponse>, Status> {
        rules::list_assignment_rules(self, request).await
    }

    async fn delete_assignment_rule(
        &self,
        request: Request<pb::DeleteAssignmentRuleRequest>,
    ) -> Result<Response<pb::AssignmentRule>, Status> {
        rules::delete_assignment_rule(self, request).await
    }

    async fn create_scoring_rule(
        &self,
        request: Request<pb::CreateScoringRuleRequest>,
    ) -> Result<Response<pb::ScoringRule>, Status> {
        rules::create_scoring_rule(self, request).await
    }

    async fn list_scoring_rules(
        &self,
        request: Request<pb::ListScoringRulesRequest>,
    ) -> Result<Response<pb::ListScoringRulesResponse>, Status> {
        rules::list_scoring_rules(self, request).await
    }

    async fn delete_scoring_rule(
        &self,
        request: Request<pb::DeleteScoringRuleRequest>,
    ) -> Result<Response<pb::ScoringRule>, Status> {
        rules::delete_scoring_rule(self, request).await
    }

    async fn rescore_leads(
        &self,
        request: Request<pb::RescoreLeadsRequest>,
    ) -> Result<Response<pb::RescoreLeadsResponse>, Status> {
        rules::rescore_leads(self, request).await
    }

    async fn create_pipeline(
        &self,
        request: Request<pb::CreatePipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        pipelines::create_pipeline(self, request).await
    }

    async fn get_pipeline(
        &self,
        request: Request<pb::GetPipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        pipelines::get_pipeline(self, request).await
    }

    async fn list_pipelines(
        &self,
        request: Request<pb::ListPipelinesRequest>,
    ) -> Result<Response<pb::ListPipelinesResponse>, Status> {
        pipelines::list_pipelines(self, request).await
    }

    async fn update_pipeline(
        &self,
        request: Request<pb::UpdatePipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        pipelines::update_pipeline(self, request).await
    }

    async fn delete_pipeline(
        &self,
        request: Request<pb::DeletePipelineRequest>,
    ) -> Result<Response<pb::Pipeline>, Status> {
        pipelines::delete_pipeline(self, request).await
    }

    async fn create_opportunity(
        &self,
        request: Request<pb::CreateOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        opportunities::create_opportunity(self, request).await
    }

    async fn get_opportunity(
        &self,
        request: Request<pb::GetOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        opportunities::get_opportunity(self, request).await
    }

    async fn list_opportunities(
        &self,
        request: Request<pb::ListOpportunitiesRequest>,
    ) -> Result<Response<pb::ListOpportunitiesResponse>, Status> {
        opportunities::list_opportunities(self, request).await
    }

    async fn update_opportunity(
        &self,
        request: Request<pb::UpdateOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        opportunities::update_opportunity(self, request).await
    }

    async fn delete_opportunity(
        &self,
        request: Request<pb::DeleteOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        opportunities::delete_opportunity(self, request).await
    }

    async fn undelete_opportunity(
        &self,
        request: Request<pb::UndeleteOpportunityRequest>,
    ) -> Result<Response<pb::Opportunity>, Status> {
        opportunities::undelete_opportunity(self, request).await
    }

    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        products::create_product(self, request).await
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        products::get_product(self, request).await
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        products::list_products(self, request).await
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        products::update_product(self, request).await
    }

    async fn create_task(
        &self,
        request: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        tasks::create_task(self, request).await
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        tasks::get_task(self, request).await
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        tasks::list_tasks(self, request).await
    }

    async fn update_task(
        &self,
        request: Request<pb::UpdateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        tasks::update_task(self, request).await
    }

    async fn delete_task(
        &self,
        request: Request<pb::DeleteTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        tasks::delete_task(self, request).await
    }

    async fn get_forecast(
        &self,
        request: Request<pb::GetForecastRequest>,
    ) -> Result<Response<pb::Forecast>, Status> {
        forecasts::get_forecast(self, request).await
    }

    async fn analyze_pipeline(
        &self,
        request: Request<pb::AnalyzePipelineRequest>,
    ) -> Result<Response<pb::PipelineAnalysis>, Status> {
        forecasts::analyze_pipeline(self, request).await
    }
}
