//! The gRPC surface: each handler checks the caller, turns the request into
//! domain values, calls the store (and, for requesters and companies, the
//! contacts service) and turns the result back into protobuf.
//!
//! The handlers live with their resource (`tickets`, `comments`, `email`,
//! `queues`, `articles`); tonic wants one impl of the service trait, so the
//! one here only hands each call on.

mod articles;
mod chats;
mod comments;
mod convert;
mod email;
mod queues;
mod satisfaction;
mod sla;
mod tickets;

use chrono::Duration;
use crm_proto::{support as pb, support::support_service_server::SupportService};
use crm_shared::{
    auth::{Principal, Role, RoleRules, admitted},
    client::Credentials,
    contacts::ContactsClient,
    db::Tenant,
    error::ApiError,
    filter::FilterSchema,
    paging::PageTokens,
    store::{ListPlan, ListRequest},
};
use tonic::{Request, Response, Status};

pub use convert::ProtoPayloads;

use crm_shared::token::SignedTokens;

use crate::store::Store;

/// Who manages queues, agents' skills, routing and the knowledge base.
const ADMINS: &[Role] = &[Role::Admin, Role::Manager];
/// Who works tickets.
const AGENTS: &[Role] = &[Role::Admin, Role::Manager, Role::Support, Role::Service];
/// Who talks to customers: people, not programs.
const CHAT_AGENTS: &[Role] = &[Role::Admin, Role::Manager, Role::Support];

/// The `crm.support.v1.SupportService` implementation.
#[derive(Clone)]
pub struct SupportApi {
    store: Store,
    contacts: ContactsClient,
    page_tokens: PageTokens,
    options: ApiOptions,
}

/// What the API is configured with besides its store and peers.
#[derive(Clone)]
pub struct ApiOptions {
    /// How long after solving a requester's reply reopens a ticket.
    pub reopen_window: Duration,
    /// Signs and reads satisfaction survey tokens.
    pub survey_tokens: SignedTokens,
    /// Signs and reads the customers' chat tokens.
    pub chat_tokens: SignedTokens,
    /// How long a customer's chat token is accepted.
    pub chat_token_valid_for: Duration,
    /// Turns true at shutdown: chat streams end, and their clients join again elsewhere.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl SupportApi {
    /// The service over a store and a contacts client.
    pub fn new(
        store: Store,
        contacts: ContactsClient,
        page_tokens: PageTokens,
        options: ApiOptions,
    ) -> Self {
        Self {
            store,
            contacts,
            page_tokens,
            options,
        }
    }
}

/// Who may call each SupportService method; the kit checks every call
/// against it (the authorization matrix test prints it into the README).
pub const ROLE_RULES: RoleRules = &[
    ("CreateTicket", AGENTS),
    ("GetTicket", Role::READERS),
    ("ListTickets", Role::READERS),
    ("UpdateTicket", AGENTS),
    ("DeleteTicket", AGENTS),
    ("UndeleteTicket", AGENTS),
    ("AssignTicket", AGENTS),
    ("ListTicketChanges", Role::READERS),
    ("CreateComment", AGENTS),
    ("ListComments", Role::READERS),
    ("ReceiveEmail", AGENTS),
    ("CreateQueue", ADMINS),
    ("GetQueue", Role::READERS),
    ("ListQueues", Role::READERS),
    ("UpdateQueue", ADMINS),
    ("DeleteQueue", ADMINS),
    ("GetAgent", Role::READERS),
    ("ListAgents", Role::READERS),
    ("UpdateAgent", AGENTS),
    ("CreateRoutingRule", ADMINS),
    ("ListRoutingRules", Role::READERS),
    ("DeleteRoutingRule", ADMINS),
    ("CreateBusinessCalendar", ADMINS),
    ("GetBusinessCalendar", Role::READERS),
    ("ListBusinessCalendars", Role::READERS),
    ("UpdateBusinessCalendar", ADMINS),
    ("DeleteBusinessCalendar", ADMINS),
    ("CreateSlaPolicy", ADMINS),
    ("GetSlaPolicy", Role::READERS),
    ("ListSlaPolicies", Role::READERS),
    ("DeleteSlaPolicy", ADMINS),
    ("GetSatisfactionSurvey", AGENTS),
    // Anyone: the survey token is the proof (crm_shared::auth::PUBLIC_METHODS).
    ("SubmitSatisfactionRating", Role::PUBLIC),
    ("GetSatisfactionReport", Role::READERS),
    ("CreateArticle", ADMINS),
    ("GetArticle", Role::READERS),
    ("ListArticles", Role::READERS),
    ("UpdateArticle", ADMINS),
    ("DeleteArticle", ADMINS),
    ("UndeleteArticle", ADMINS),
    ("PublishArticle", ADMINS),
    ("ArchiveArticle", ADMINS),
    ("ListArticleVersions", Role::READERS),
    ("SearchArticles", Role::READERS),
    ("VoteArticle", Role::READERS),
    ("LinkArticle", AGENTS),
    ("ListTicketArticles", Role::READERS),
    ("SuggestArticles", Role::READERS),
    ("StartChat", AGENTS),
    ("GetChat", Role::READERS),
    ("ListChats", Role::READERS),
    ("AcceptChat", CHAT_AGENTS),
    ("EndChat", AGENTS),
    ("ListChatMessages", Role::READERS),
    ("CreateTicketFromChat", AGENTS),
    ("ConnectChat", CHAT_AGENTS),
    // Anyone: the chat token is the proof (crm_shared::auth::PUBLIC_METHODS).
    ("ConnectCustomerChat", Role::PUBLIC),
];

/// The caller, its tenant, and its credentials to pass on to other services.
fn caller<T>(request: &Request<T>) -> Result<(Principal, Tenant, Credentials), ApiError> {
    let (principal, tenant) = admitted(request)?;
    let credentials = Credentials::of(request.metadata())?;
    Ok((principal, tenant, credentials))
}

/// A list plan with a fixed order and no filter of the caller's (a
/// ticket's comments and changes, queues, agents, rules).
fn fixed_plan(
    tokens: &PageTokens,
    resource: &str,
    order_by: &'static [(&'static str, &'static str)],
    page_size: i32,
    page_token: &str,
    show_deleted: bool,
) -> Result<ListPlan, ApiError> {
    const NONE: FilterSchema = FilterSchema { fields: &[] };
    let order = order_by
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    ListPlan::new(
        tokens,
        ListRequest {
            resource,
            schema: &NONE,
            orderable: order_by,
            filter: "",
            order_by: &order,
            show_deleted,
            page_size,
            page_token,
            include_total_size: false,
        },
    )
}

#[tonic::async_trait]
impl SupportService for SupportApi {
    async fn create_ticket(
        &self,
        request: Request<pb::CreateTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        tickets::create_ticket(self, request).await
    }

    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        tickets::get_ticket(self, request).await
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        tickets::list_tickets(self, request).await
    }

    async fn update_ticket(
        &self,
        request: Request<pb::UpdateTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        tickets::update_ticket(self, request).await
    }

    async fn delete_ticket(
        &self,
        request: Request<pb::DeleteTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        tickets::delete_ticket(self, request).await
    }

    async fn undelete_ticket(
        &self,
        request: Request<pb::UndeleteTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        tickets::undelete_ticket(self, request).await
    }

    async fn assign_ticket(
        &self,
        request: Request<pb::AssignTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        tickets::assign_ticket(self, request).await
    }

    async fn list_ticket_changes(
        &self,
        request: Request<pb::ListTicketChangesRequest>,
    ) -> Result<Response<pb::ListTicketChangesResponse>, Status> {
        tickets::list_ticket_changes(self, request).await
    }

    async fn create_comment(
        &self,
        request: Request<pb::CreateCommentRequest>,
    ) -> Result<Response<pb::Comment>, Status> {
        comments::create_comment(self, request).await
    }

    async fn list_comments(
        &self,
        request: Request<pb::ListCommentsRequest>,
    ) -> Result<Response<pb::ListCommentsResponse>, Status> {
        comments::list_comments(self, request).await
    }

    async fn receive_email(
        &self,
        request: Request<pb::ReceiveEmailRequest>,
    ) -> Result<Response<pb::ReceiveEmailResponse>, Status> {
        email::receive_email(self, request).await
    }

    async fn create_queue(
        &self,
        request: Request<pb::CreateQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        queues::create_queue(self, request).await
    }

    async fn get_queue(
        &self,
        request: Request<pb::GetQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        queues::get_queue(self, request).await
    }

    async fn list_queues(
        &self,
        request: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        queues::list_queues(self, request).await
    }

    async fn update_queue(
        &self,
        request: Request<pb::UpdateQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        queues::update_queue(self, request).await
    }

    async fn delete_queue(
        &self,
        request: Request<pb::DeleteQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        queues::delete_queue(self, request).await
    }

    async fn get_agent(
        &self,
        request: Request<pb::GetAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        queues::get_agent(self, request).await
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        queues::list_agents(self, request).await
    }

    async fn update_agent(
        &self,
        request: Request<pb::UpdateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        queues::update_agent(self, request).await
    }

    async fn create_routing_rule(
        &self,
        request: Request<pb::CreateRoutingRuleRequest>,
    ) -> Result<Response<pb::RoutingRule>, Status> {
        queues::create_routing_rule(self, request).await
    }

    async fn list_routing_rules(
        &self,
        request: Request<pb::ListRoutingRulesRequest>,
    ) -> Result<Response<pb::ListRoutingRulesResponse>, Status> {
        queues::list_routing_rules(self, request).await
    }

    async fn delete_routing_rule(
        &self,
        request: Request<pb::DeleteRoutingRuleRequest>,
    ) -> Result<Response<pb::RoutingRule>, Status> {
        queues::delete_routing_rule(self, request).await
    }

    async fn create_business_calendar(
        &self,
        request: Request<pb::CreateBusinessCalendarRequest>,
    ) -> Result<Response<pb::BusinessCalendar>, Status> {
        sla::create_business_calendar(self, request).await
    }

    async fn get_business_calendar(
        &self,
        request: Request<pb::GetBusinessCalendarRequest>,
    ) -> Result<Response<pb::BusinessCalendar>, Status> {
        sla::get_business_calendar(self, request).await
    }

    async fn list_business_calendars(
        &self,
        request: Request<pb::ListBusinessCalendarsRequest>,
    ) -> Result<Response<pb::ListBusinessCalendarsResponse>, Status> {
        sla::list_business_calendars(self, request).await
    }

    async fn update_business_calendar(
        &self,
        request: Request<pb::UpdateBusinessCalendarRequest>,
    ) -> Result<Response<pb::BusinessCalendar>, Status> {
        sla::update_business_calendar(self, request).await
    }

    async fn delete_business_calendar(
        &self,
        request: Request<pb::DeleteBusinessCalendarRequest>,
    ) -> Result<Response<pb::BusinessCalendar>, Status> {
        sla::delete_business_calendar(self, request).await
    }

    async fn create_sla_policy(
        &self,
        request: Request<pb::CreateSlaPolicyRequest>,
    ) -> Result<Response<pb::SlaPolicy>, Status> {
        sla::create_sla_policy(self, request).await
    }

    async fn get_sla_policy(
        &self,
        request: Request<pb::GetSlaPolicyRequest>,
    ) -> Result<Response<pb::SlaPolicy>, Status> {
        sla::get_sla_policy(self, request).await
    }

    async fn list_sla_policies(
        &self,
        request: Request<pb::ListSlaPoliciesRequest>,
    ) -> Result<Response<pb::ListSlaPoliciesResponse>, Status> {
        sla::list_sla_policies(self, request).await
    }

    async fn delete_sla_policy(
        &self,
        request: Request<pb::DeleteSlaPolicyRequest>,
    ) -> Result<Response<pb::SlaPolicy>, Status> {
        sla::delete_sla_policy(self, request).await
    }

    async fn get_satisfaction_survey(
        &self,
        request: Request<pb::GetSatisfactionSurveyRequest>,
    ) -> Result<Response<pb::SatisfactionSurvey>, Status> {
        satisfaction::get_satisfaction_survey(self, request).await
    }

    async fn submit_satisfaction_rating(
        &self,
        request: Request<pb::SubmitSatisfactionRatingRequest>,
    ) -> Result<Response<pb::SatisfactionSurvey>, Status> {
        satisfaction::submit_satisfaction_rating(self, request).await
    }

    async fn get_satisfaction_report(
        &self,
        request: Request<pb::GetSatisfactionReportRequest>,
    ) -> Result<Response<pb::SatisfactionReport>, Status> {
        satisfaction::get_satisfaction_report(self, request).await
    }

    async fn create_article(
        &self,
        request: Request<pb::CreateArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        articles::create_article(self, request).await
    }

    async fn get_article(
        &self,
        request: Request<pb::GetArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        articles::get_article(self, request).await
    }

    async fn list_articles(
        &self,
        request: Request<pb::ListArticlesRequest>,
    ) -> Result<Response<pb::ListArticlesResponse>, Status> {
        articles::list_articles(self, request).await
    }

    async fn update_article(
        &self,
        request: Request<pb::UpdateArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        articles::update_article(self, request).await
    }

    async fn delete_article(
        &self,
        request: Request<pb::DeleteArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        articles::delete_article(self, request).await
    }

    async fn undelete_article(
        &self,
        request: Request<pb::UndeleteArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        articles::undelete_article(self, request).await
    }

    async fn publish_article(
        &self,
        request: Request<pb::PublishArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        articles::publish_article(self, request).await
    }

    async fn archive_article(
        &self,
        request: Request<pb::ArchiveArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        articles::archive_article(self, request).await
    }

    async fn list_article_versions(
        &self,
        request: Request<pb::ListArticleVersionsRequest>,
    ) -> Result<Response<pb::ListArticleVersionsResponse>, Status> {
        articles::list_article_versions(self, request).await
    }

    async fn search_articles(
        &self,
        request: Request<pb::SearchArticlesRequest>,
    ) -> Result<Response<pb::SearchArticlesResponse>, Status> {
        articles::search_articles(self, request).await
    }

    async fn vote_article(
        &self,
        request: Request<pb::VoteArticleRequest>,
    ) -> Result<Response<pb::Article>, Status> {
        articles::vote_article(self, request).await
    }

    async fn link_article(
        &self,
        request: Request<pb::LinkArticleRequest>,
    ) -> Result<Response<pb::ArticleLink>, Status> {
        articles::link_article(self, request).await
    }

    async fn list_ticket_articles(
        &self,
        request: Request<pb::ListTicketArticlesRequest>,
    ) -> Result<Response<pb::ListTicketArticlesResponse>, Status> {
        articles::list_ticket_articles(self, request).await
    }

    async fn suggest_articles(
        &self,
        request: Request<pb::SuggestArticlesRequest>,
    ) -> Result<Response<pb::SuggestArticlesResponse>, Status> {
        articles::suggest_articles(self, request).await
    }

    async fn start_chat(
        &self,
        request: Request<pb::StartChatRequest>,
    ) -> Result<Response<pb::StartChatResponse>, Status> {
        chats::start_chat(self, request).await
    }

    async fn get_chat(
        &self,
        request: Request<pb::GetChatRequest>,
    ) -> Result<Response<pb::Chat>, Status> {
        chats::get_chat(self, request).await
    }

    async fn list_chats(
        &self,
        request: Request<pb::ListChatsRequest>,
    ) -> Result<Response<pb::ListChatsResponse>, Status> {
        chats::list_chats(self, request).await
    }

    async fn accept_chat(
        &self,
        request: Request<pb::AcceptChatRequest>,
    ) -> Result<Response<pb::Chat>, Status> {
        chats::accept_chat(self, request).await
    }

    async fn end_chat(
        &self,
        request: Request<pb::EndChatRequest>,
    ) -> Result<Response<pb::Chat>, Status> {
        chats::end_chat(self, request).await
    }

    async fn list_chat_messages(
        &self,
        request: Request<pb::ListChatMessagesRequest>,
    ) -> Result<Response<pb::ListChatMessagesResponse>, Status> {
        chats::list_chat_messages(self, request).await
    }

    async fn create_ticket_from_chat(
        &self,
        request: Request<pb::CreateTicketFromChatRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        chats::create_ticket_from_chat(self, request).await
    }

    type ConnectChatStream = chats::ChatStream;

    async fn connect_chat(
        &self,
        request: Request<tonic::Streaming<pb::ConnectChatRequest>>,
    ) -> Result<Response<Self::ConnectChatStream>, Status> {
        chats::connect_chat(self, request).await
    }

    type ConnectCustomerChatStream = chats::ChatStream;

    async fn connect_customer_chat(
        &self,
        request: Request<tonic::Streaming<pb::ConnectCustomerChatRequest>>,
    ) -> Result<Response<Self::ConnectCustomerChatStream>, Status> {
        chats::connect_customer_chat(self, request).await
    }
}
