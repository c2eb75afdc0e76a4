//! The gRPC surface: each handler checks the caller, turns the request into
//! domain values, calls the store (and, for segments, members and consent,
//! the contacts service) and turns the result back into protobuf.
//!
//! The handlers live with their resource (`groups`, `templates`,
//! `campaigns`, `journeys`); tonic wants one impl of the service trait, so
//! the one here only hands each call on.

mod campaigns;
mod convert;
mod groups;
mod journey_convert;
mod journeys;
mod templates;

use crm_proto::{marketing as pb, marketing::marketing_service_server::MarketingService};
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

use crate::{contacts::Directory, engagement::Tracker, store::Store};

/// Who runs campaigns and keeps segments, lists and templates.
const MARKETERS: &[Role] = &[Role::Admin, Role::Manager, Role::Marketing];

/// The `crm.marketing.v1.MarketingService` implementation.
#[derive(Clone)]
pub struct MarketingApi {
    store: Store,
    contacts: ContactsClient,
    directory: Directory,
    page_tokens: PageTokens,
    /// Records unsubscribes (and reads their links' tokens).
    tracker: Tracker,
}

impl MarketingApi {
    /// The service over a store and the contacts service.
    pub fn new(
        store: Store,
        contacts: ContactsClient,
        directory: Directory,
        page_tokens: PageTokens,
        tracker: Tracker,
    ) -> Self {
        Self {
            store,
            contacts,
            directory,
            page_tokens,
            tracker,
        }
    }
}

/// Who may call each MarketingService method; the kit checks every call
/// against it (the authorization matrix test prints it into the README).
pub const ROLE_RULES: RoleRules = &[
    ("CreateSegment", MARKETERS),
    ("GetSegment", Role::READERS),
    ("ListSegments", Role::READERS),
    ("UpdateSegment", MARKETERS),
    ("DeleteSegment", MARKETERS),
    ("PreviewSegment", MARKETERS),
    ("CreateMailingList", MARKETERS),
    ("GetMailingList", Role::READERS),
    ("ListMailingLists", Role::READERS),
    ("DeleteMailingList", MARKETERS),
    ("AddListMembers", MARKETERS),
    ("RemoveListMembers", MARKETERS),
    ("ListListMembers", Role::READERS),
    ("CreateTemplate", MARKETERS),
    ("GetTemplate", Role::READERS),
    ("ListTemplates", Role::READERS),
    ("UpdateTemplate", MARKETERS),
    ("DeleteTemplate", MARKETERS),
    ("PreviewTemplate", MARKETERS),
    ("CreateCampaign", MARKETERS),
    ("GetCampaign", Role::READERS),
    ("ListCampaigns", Role::READERS),
    ("UpdateCampaign", MARKETERS),
    ("DeleteCampaign", MARKETERS),
    ("ScheduleCampaign", MARKETERS),
    ("PauseCampaign", MARKETERS),
    ("ResumeCampaign", MARKETERS),
    ("CancelCampaign", MARKETERS),
    ("ListCampaignRecipients", Role::READERS),
    // Anyone: the link's token is the proof (crm_shared::auth::PUBLIC_METHODS).
    ("Unsubscribe", Role::PUBLIC),
    // A relay's webhook adapter reports bounces, as a marketer or the service.
    (
        "RecordDeliveryProblem",
        &[Role::Admin, Role::Manager, Role::Marketing, Role::Service],
    ),
    ("CreateJourney", MARKETERS),
    ("GetJourney", Role::READERS),
    ("ListJourneys", Role::READERS),
    ("UpdateJourney", MARKETERS),
    ("DeleteJourney", MARKETERS),
    ("ActivateJourney", MARKETERS),
    ("PauseJourney", MARKETERS),
    ("ArchiveJourney", MARKETERS),
    ("EnrollContact", MARKETERS),
    ("GetEnrollment", Role::READERS),
    ("ListEnrollments", Role::READERS),
    ("ExitEnrollment", MARKETERS),
];

/// The caller, its tenant, and its credentials to pass on to contacts.
fn caller<T>(request: &Request<T>) -> Result<(Principal, Tenant, Credentials), ApiError> {
    let (principal, tenant) = admitted(request)?;
    let credentials = Credentials::of(request.metadata())?;
    Ok((principal, tenant, credentials))
}

/// A page of a sub-collection (a ledger, a list's members, a journey's
/// enrolments) read by offset; `query` names it in the page token.
struct OffsetPage {
    query: String,
    offset: u64,
    size: u64,
}

impl OffsetPage {
    fn new(
        tokens: &PageTokens,
        query: String,
        page_size: i32,
        page_token: &str,
    ) -> Result<Self, ApiError> {
        let size = crm_shared::paging::page_size(page_size, 50, 1000, "page_size")?;
        let offset = if page_token.is_empty() {
            0
        } else {
            tokens.decode(page_token, &query, "page_token")?
        };
        Ok(Self {
            query,
            offset,
            size,
        })
    }

    /// Rows to fetch: one more than the page shows whether another follows.
    fn limit(&self) -> u64 {
        self.size + 1
    }

    /// `rows` cut to the page; the next page's token, empty on the last.
    fn finish<T>(&self, tokens: &PageTokens, rows: &mut Vec<T>) -> String {
        if rows.len() as u64 <= self.size {
            return String::new();
        }
        rows.truncate(self.size as usize);
        tokens.encode(&self.query, self.offset + self.size)
    }
}

/// A list plan with the default order and no filter of the caller's.
fn plain_plan(
    tokens: &PageTokens,
    resource: &str,
    page_size: i32,
    page_token: &str,
    show_deleted: bool,
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
            show_deleted,
            page_size,
            page_token,
            include_total_size: false,
        },
    )
}

#[tonic::async_trait]
impl MarketingService for MarketingApi {
    async fn create_segment(
        &self,
        request: Request<pb::CreateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        groups::create_segment(self, request).await
    }

    async fn get_segment(
        &self,
        request: Request<pb::GetSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        groups::get_segment(self, request).await
    }

    async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        groups::list_segments(self, request).await
    }

    async fn update_segment(
        &self,
        request: Request<pb::UpdateSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        groups::update_segment(self, request).await
    }

    async fn delete_segment(
        &self,
        request: Request<pb::DeleteSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        groups::delete_segment(self, request).await
    }

    async fn preview_segment(
        &self,
        request: Request<pb::PreviewSegmentRequest>,
    ) -> Result<Response<pb::PreviewSegmentResponse>, Status> {
        groups::preview_segment(self, request).await
    }

    async fn create_mailing_list(
        &self,
        request: Request<pb::CreateMailingListRequest>,
    ) -> Result<Response<pb::MailingList>, Status> {
        groups::create_mailing_list(self, request).await
    }

    async fn get_mailing_list(
        &self,
        request: Request<pb::GetMailingListRequest>,
    ) -> Result<Response<pb::MailingList>, Status> {
        groups::get_mailing_list(self, request).await
    }

    async fn list_mailing_lists(
        &self,
        request: Request<pb::ListMailingListsRequest>,
    ) -> Result<Response<pb::ListMailingListsResponse>, Status> {
        groups::list_mailing_lists(self, request).await
    }

    async fn delete_mailing_list(
        &self,
        request: Request<pb::DeleteMailingListRequest>,
    ) -> Result<Response<pb::MailingList>, Status> {
        groups::delete_mailing_list(self, request).await
    }

    async fn add_list_members(
        &self,
        request: Request<pb::AddListMembersRequest>,
    ) -> Result<Response<pb::AddListMembersResponse>, Status> {
        groups::add_list_members(self, request).await
    }

    async fn remove_list_members(
        &self,
        request: Request<pb::RemoveListMembersRequest>,
    ) -> Result<Response<pb::RemoveListMembersResponse>, Status> {
        groups::remove_list_members(self, request).await
    }

    async fn list_list_members(
        &self,
        request: Request<pb::ListListMembersRequest>,
    ) -> Result<Response<pb::ListListMembersResponse>, Status> {
        groups::list_list_members(self, request).await
    }

    async fn create_template(
        &self,
        request: Request<pb::CreateTemplateRequest>,
    ) -> Result<Response<pb::Template>, Status> {
        templates::create_template(self, request).await
    }

    async fn get_template(
        &self,
        request: Request<pb::GetTemplateRequest>,
    ) -> Result<Response<pb::Template>, Status> {
        templates::get_template(self, request).await
    }

    async fn list_templates(
        &self,
        request: Request<pb::ListTemplatesRequest>,
    ) -> Result<Response<pb::ListTemplatesResponse>, Status> {
        templates::list_templates(self, request).await
    }

    async fn update_template(
        &self,
        request: Request<pb::UpdateTemplateRequest>,
    ) -> Result<Response<pb::Template>, Status> {
        templates::update_template(self, request).await
    }

    async fn delete_template(
        &self,
        request: Request<pb::DeleteTemplateRequest>,
    ) -> Result<Response<pb::Template>, Status> {
        templates::delete_template(self, request).await
    }

    async fn preview_template(
        &self,
        request: Request<pb::PreviewTemplateRequest>,
    ) -> Result<Response<pb::PreviewTemplateResponse>, Status> {
        templates::preview_template(self, request).await
    }

    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        campaigns::create_campaign(self, request).await
    }

    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        campaigns::get_campaign(self, request).await
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        campaigns::list_campaigns(self, request).await
    }

    async fn update_campaign(
        &self,
        request: Request<pb::UpdateCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        campaigns::update_campaign(self, request).await
    }

    async fn delete_campaign(
        &self,
        request: Request<pb::DeleteCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        campaigns::delete_campaign(self, request).await
    }

    async fn schedule_campaign(
        &self,
        request: Request<pb::ScheduleCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        campaigns::schedule_campaign(self, request).await
    }

    async fn pause_campaign(
        &self,
        request: Request<pb::PauseCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        campaigns::pause_campaign(self, request).await
    }

    async fn resume_campaign(
        &self,
        request: Request<pb::ResumeCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        campaigns::resume_campaign(self, request).await
    }

    async fn cancel_campaign(
        &self,
        request: Request<pb::CancelCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        campaigns::cancel_campaign(self, request).await
    }

    async fn list_campaign_recipients(
        &self,
        request: Request<pb::ListCampaignRecipientsRequest>,
    ) -> Result<Response<pb::ListCampaignRecipientsResponse>, Status> {
        campaigns::list_campaign_recipients(self, request).await
    }

    async fn unsubscribe(
        &self,
        request: Request<pb::UnsubscribeRequest>,
    ) -> Result<Response<pb::UnsubscribeResponse>, Status> {
        campaigns::unsubscribe(self, request).await
    }

    async fn record_delivery_problem(
        &self,
        request: Request<pb::RecordDeliveryProblemRequest>,
    ) -> Result<Response<pb::RecordDeliveryProblemResponse>, Status> {
        campaigns::record_delivery_problem(self, request).await
    }

    async fn create_journey(
        &self,
        request: Request<pb::CreateJourneyRequest>,
    ) -> Result<Response<pb::Journey>, Status> {
        journeys::create_journey(self, request).await
    }

    async fn get_journey(
        &self,
        request: Request<pb::GetJourneyRequest>,
    ) -> Result<Response<pb::Journey>, Status> {
        journeys::get_journey(self, request).await
    }

    async fn list_journeys(
        &self,
        request: Request<pb::ListJourneysRequest>,
    ) -> Result<Response<pb::ListJourneysResponse>, Status> {
        journeys::list_journeys(self, request).await
    }

    async fn update_journey(
        &self,
        request: Request<pb::UpdateJourneyRequest>,
    ) -> Result<Response<pb::Journey>, Status> {
        journeys::update_journey(self, request).await
    }

    async fn delete_journey(
        &self,
        request: Request<pb::DeleteJourneyRequest>,
    ) -> Result<Response<pb::Journey>, Status> {
        journeys::delete_journey(self, request).await
    }

    async fn activate_journey(
        &self,
        request: Request<pb::ActivateJourneyRequest>,
    ) -> Result<Response<pb::Journey>, Status> {
        journeys::activate_journey(self, request).await
    }

    async fn pause_journey(
        &self,
        request: Request<pb::PauseJourneyRequest>,
    ) -> Result<Response<pb::Journey>, Status> {
        journeys::pause_journey(self, request).await
    }

    async fn archive_journey(
        &self,
        request: Request<pb::ArchiveJourneyRequest>,
    ) -> Result<Response<pb::Journey>, Status> {
        journeys::archive_journey(self, request).await
    }

    async fn enroll_contact(
        &self,
        request: Request<pb::EnrollContactRequest>,
    ) -> Result<Response<pb::Enrollment>, Status> {
        journeys::enroll_contact(self, request).await
    }

    async fn get_enrollment(
        &self,
        request: Request<pb::GetEnrollmentRequest>,
    ) -> Result<Response<pb::Enrollment>, Status> {
        journeys::get_enrollment(self, request).await
    }

    async fn list_enrollments(
        &self,
        request: Request<pb::ListEnrollmentsRequest>,
    ) -> Result<Response<pb::ListEnrollmentsResponse>, Status> {
        journeys::list_enrollments(self, request).await
    }

    async fn exit_enrollment(
        &self,
        request: Request<pb::ExitEnrollmentRequest>,
    ) -> Result<Response<pb::Enrollment>, Status> {
        journeys::exit_enrollment(self, request).await
    }
}
