//! The gRPC surface: each handler checks the caller, turns the request into
//! domain values, asks the store and the domain, and turns the answer back
//! into protobuf.

pub(crate) mod chart;
mod convert;
pub(crate) mod kpis;
pub(crate) mod reports;

use crm_proto::reporting::{self as pb, reporting_service_server::ReportingService};
use crm_shared::{
    auth::{Role, RoleRules, admitted},
    convert::{parse_name, to_timestamp},
    error::ApiError,
    paging::{PageTokens, page_size},
};
use tonic::{Request, Response, Status};

use crate::store::{Scope, Store, TimelineCursor};

/// Who reads the tenant's KPIs.
const ANALYSTS: &[Role] = &[Role::Admin, Role::Manager];
/// Who administers the tenant's data.
const ADMINS: &[Role] = &[Role::Admin];

/// Who may call each ReportingService method; the kit checks every call
/// against it (the authorization matrix test prints it into the README).
pub const ROLE_RULES: RoleRules = &[
    ("QueryKpis", ANALYSTS),
    ("ListKpiDefinitions", Role::READERS),
    ("GetCustomerView", Role::READERS),
    ("GetErasureStatus", ADMINS),
    ("ListErasureStatuses", ADMINS),
    ("RebuildReadModel", ADMINS),
    ("GetReadModelStatus", ADMINS),
    ("CreateReport", ANALYSTS),
    ("GetReport", ANALYSTS),
    ("ListReports", ANALYSTS),
    ("UpdateReport", ANALYSTS),
    ("DeleteReport", ANALYSTS),
    ("UndeleteReport", ANALYSTS),
    ("RunReport", ANALYSTS),
    ("ExportReport", ANALYSTS),
    ("RenderReportChart", ANALYSTS),
];

/// What the API is configured with.
#[derive(Clone)]
pub struct ApiOptions {
    /// The services expected to confirm an erasure.
    pub erasure_services: Vec<String>,
    /// How long they have before an erasure is overdue.
    pub erasure_due: chrono::Duration,
}

/// The `crm.reporting.v1.ReportingService` implementation.
#[derive(Clone)]
pub struct ReportingApi {
    store: Store,
    page_tokens: PageTokens,
    options: ApiOptions,
}

impl ReportingApi {
    /// The service over a store.
    pub fn new(store: Store, page_tokens: PageTokens, options: ApiOptions) -> Self {
        Self {
            store,
            page_tokens,
            options,
        }
    }

    /// The live generation of the caller's tenant.
    async fn scope(&self, tenant: &crm_shared::db::Tenant) -> Result<Scope, ApiError> {
        let state = self
            .store
            .model_state(&self.store.resources().db.conn)
            .await?;
        Ok(Scope {
            generation: state.generation,
            tenant: tenant.as_str().to_owned(),
        })
    }
}

#[tonic::async_trait]
impl ReportingService for ReportingApi {
    async fn query_kpis(
        &self,
        request: Request<pb::QueryKpisRequest>,
    ) -> Result<Response<pb::QueryKpisResponse>, Status> {
        let (_, tenant) = admitted(&request)?;
        let query = kpis::Query::read(request.get_ref())?;
        let scope = self.scope(&tenant).await?;
        let response = kpis::answer(&self.store, &scope, &query).await?;
        Ok(Response::new(response))
    }

    async fn list_kpi_definitions(
        &self,
        _request: Request<pb::ListKpiDefinitionsRequest>,
    ) -> Result<Response<pb::ListKpiDefinitionsResponse>, Status> {
        Ok(Response::new(pb::ListKpiDefinitionsResponse {
            kpis: crate::domain::kpi::CATALOGUE
                .iter()
                .map(convert::kpi_definition)
                .collect(),
        }))
    }

    async fn get_customer_view(
        &self,
        request: Request<pb::GetCustomerViewRequest>,
    ) -> Result<Response<pb::CustomerView>, Status> {
        let (_, tenant) = admitted(&request)?;
        let request = request.get_ref();
        parse_name(&request.contact, "contacts", "contact")?;
        let size = page_size(request.page_size, 50, 1000, "page_size")?;
        let mut kinds = request.kinds.clone();
        kinds.sort();
        kinds.dedup();
        for (i, kind) in kinds.iter().enumerate() {
            if !convert::TIMELINE_KINDS.contains(&kind.as_str()) {
                return Err(ApiError::invalid(
                    format!("kinds[{i}]"),
                    format!("one of {}", convert::TIMELINE_KINDS.join(", ")),
                )
                .into());
            }
        }
        let query = format!("view|{}|{}", request.contact, kinds.join(","));
        let after = self
            .page_tokens
            .decode_payload(&request.page_token, &query, "page_token")?
            .map(|payload| convert::timeline_cursor(&payload))
            .transpose()?;
        let scope = self.scope(&tenant).await?;
        let data = self
            .store
            .customer(&scope, &request.contact, size, &kinds, after.as_ref())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(request.contact.clone()))?;
        let next_page_token = data
            .next
            .as_ref()
            .map(|c: &TimelineCursor| {
                self.page_tokens
                    .encode_payload(&query, &convert::cursor_payload(c))
            })
            .unwrap_or_default();
        Ok(Response::new(convert::customer_view(data, next_page_token)))
    }

    async fn get_erasure_status(
        &self,
        request: Request<pb::GetErasureStatusRequest>,
    ) -> Result<Response<pb::ErasureStatus>, Status> {
        let (_, tenant) = admitted(&request)?;
        let contact = &request.get_ref().contact;
        parse_name(contact, "contacts", "contact")?;
        let scope = self.scope(&tenant).await?;
        let record = self
            .store
            .erasure(&scope, contact)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("erasure of {contact}")))?;
        Ok(Response::new(convert::erasure_status(
            record,
            &self.options,
        )))
    }

    async fn list_erasure_statuses(
        &self,
        request: Request<pb::ListErasureStatusesRequest>,
    ) -> Result<Response<pb::ListErasureStatusesResponse>, Status> {
        let (_, tenant) = admitted(&request)?;
        let request = request.get_ref();
        let size = page_size(request.page_size, 50, 1000, "page_size")?;
        let query = format!("erasures|{}", request.only_overdue);
        let mut offset = self
            .page_tokens
            .decode(&request.page_token, &query, "page_token")?;
        let scope = self.scope(&tenant).await?;
        let mut erasures = Vec::new();
        // Overdue ones are picked from pages of all erasures, so a page may
        // read further than its size.
        let next = loop {
            let batch = self
                .store
                .erasures(&scope, offset, size)
                .await
                .map_err(ApiError::from)?;
            let read = batch.len() as u64;
            for record in batch {
                offset += 1;
                let status = convert::erasure_status(record, &self.options);
                if !request.only_overdue || status.overdue {
                    erasures.push(status);
                }
                if erasures.len() as u64 == size {
                    break;
                }
            }
            if erasures.len() as u64 == size {
                break self.page_tokens.encode(&query, offset);
            }
            if read < size {
                break String::new();
            }
        };
        Ok(Response::new(pb::ListErasureStatusesResponse {
            erasures,
            next_page_token: next,
        }))
    }

    async fn rebuild_read_model(
        &self,
        request: Request<pb::RebuildReadModelRequest>,
    ) -> Result<Response<pb::ReadModelStatus>, Status> {
        admitted(&request)?;
        let state = self.store.start_rebuild().await.map_err(ApiError::from)?;
        tracing::info!(
            generation = state.rebuilding,
            "read model rebuild requested"
        );
        Ok(Response::new(self.status().await?))
    }

    async fn create_report(
        &self,
        request: Request<pb::CreateReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        ReportingApi::create_report(self, request).await
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        ReportingApi::get_report(self, request).await
    }

    async fn list_reports(
        &self,
        request: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        ReportingApi::list_reports(self, request).await
    }

    async fn update_report(
        &self,
        request: Request<pb::UpdateReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        ReportingApi::update_report(self, request).await
    }

    async fn delete_report(
        &self,
        request: Request<pb::DeleteReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        ReportingApi::delete_report(self, request).await
    }

    async fn undelete_report(
        &self,
        request: Request<pb::UndeleteReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        ReportingApi::undelete_report(self, request).await
    }

    async fn run_report(
        &self,
        request: Request<pb::RunReportRequest>,
    ) -> Result<Response<pb::QueryKpisResponse>, Status> {
        ReportingApi::run_report(self, request).await
    }

    type ExportReportStream =
        tokio_stream::Iter<std::vec::IntoIter<Result<pb::ExportReportResponse, Status>>>;

    async fn export_report(
        &self,
        request: Request<pb::ExportReportRequest>,
    ) -> Result<Response<Self::ExportReportStream>, Status> {
        let chunks = ReportingApi::export_report(self, request).await?;
        Ok(Response::new(tokio_stream::iter(
            chunks.into_iter().map(Ok).collect::<Vec<_>>(),
        )))
    }

    async fn render_report_chart(
        &self,
        request: Request<pb::RenderReportChartRequest>,
    ) -> Result<Response<pb::RenderReportChartResponse>, Status> {
        ReportingApi::render_report_chart(self, request).await
    }

    async fn get_read_model_status(
        &self,
        request: Request<pb::GetReadModelStatusRequest>,
    ) -> Result<Response<pb::ReadModelStatus>, Status> {
        admitted(&request)?;
        Ok(Response::new(self.status().await?))
    }
}

impl ReportingApi {
    async fn status(&self) -> Result<pb::ReadModelStatus, ApiError> {
        let conn = &self.store.resources().db.conn;
        let state = self.store.model_state(conn).await?;
        let mut feeds = Vec::new();
        for (source, position, lag_ms) in self.store.feed_positions().await? {
            let rebuild_position = if state.rebuilding == 0 {
                0
            } else {
                self.store.rebuild_position(conn, &source).await?
            };
            feeds.push(pb::FeedProgress {
                source,
                position,
                lag_seconds: lag_ms as f64 / 1000.0,
                rebuild_position,
            });
        }
        Ok(pb::ReadModelStatus {
            generation: state.generation,
            rebuilding_generation: state.rebuilding,
            rebuild_start_time: state.rebuild_start_time.map(to_timestamp),
            last_rebuild_time: state.last_rebuild_time.map(to_timestamp),
            feeds,
        })
    }
}
