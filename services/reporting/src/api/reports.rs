//! Saved reports: their CRUD, and running one as KPIs, CSV or an SVG chart.

use crm_proto::reporting as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_etag, parse_name, required, to_any, to_timestamp},
    error::{ApiError, FieldViolation},
    filter::FilterSchema,
    idempotency::IdempotencyKey,
    store::{ListPlan, ListRequest},
    validate::{Violations, update_paths},
};
use tonic::{Request, Response, Status};

use super::{ReportingApi, kpis};
use crate::domain::{
    period::{Granularity, day_key},
    report::{Definition, Relative, Report, UPDATABLE},
};

/// Chunks of an export stream.
const CSV_CHUNK: usize = 64 * 1024;

fn relative(value: i32) -> Result<Option<Relative>, ApiError> {
    use pb::RelativePeriod as R;
    Ok(match R::try_from(value) {
        Ok(R::Unspecified) => None,
        Ok(R::Last7Days) => Some(Relative::Last7Days),
        Ok(R::Last30Days) => Some(Relative::Last30Days),
        Ok(R::ThisMonth) => Some(Relative::ThisMonth),
        Ok(R::LastMonth) => Some(Relative::LastMonth),
        Ok(R::ThisQuarter) => Some(Relative::ThisQuarter),
        Ok(R::LastQuarter) => Some(Relative::LastQuarter),
        Ok(R::ThisYear) => Some(Relative::ThisYear),
        Ok(R::LastYear) => Some(Relative::LastYear),
        Err(_) => {
            return Err(ApiError::invalid(
                "report.relative_period",
                "not a RelativePeriod value",
            ));
        }
    })
}

fn relative_pb(value: Option<Relative>) -> pb::RelativePeriod {
    use pb::RelativePeriod as R;
    match value {
        None => R::Unspecified,
        Some(Relative::Last7Days) => R::Last7Days,
        Some(Relative::Last30Days) => R::Last30Days,
        Some(Relative::ThisMonth) => R::ThisMonth,
        Some(Relative::LastMonth) => R::LastMonth,
        Some(Relative::ThisQuarter) => R::ThisQuarter,
        Some(Relative::LastQuarter) => R::LastQuarter,
        Some(Relative::ThisYear) => R::ThisYear,
        Some(Relative::LastYear) => R::LastYear,
    }
}

fn granularity_pb(g: Granularity) -> pb::Granularity {
    match g {
        Granularity::None => pb::Granularity::Unspecified,
        Granularity::Day => pb::Granularity::Day,
        Granularity::Week => pb::Granularity::Week,
        Granularity::Month => pb::Granularity::Month,
        Granularity::Quarter => pb::Granularity::Quarter,
    }
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// The QueryKpis request a definition makes on `today`.
fn query_request(d: &Definition, today: chrono::NaiveDate) -> pb::QueryKpisRequest {
    let f = &d.filter;
    pb::QueryKpisRequest {
        kpis: d.kpis.clone(),
        period: d.period_on(today).map(|p| pb::Period {
            start_date: day_key(p.start),
            end_date: day_key(p.end),
        }),
        granularity: granularity_pb(d.granularity) as i32,
        filter: Some(pb::KpiFilter {
            owners: f.owners.clone(),
            pipeline: f.pipeline.clone(),
            campaign: f.campaign.clone(),
            queue: f.queue.clone(),
            channel: f.channel.clone(),
            company: f.company.clone(),
        }),
    }
}

/// Moves every violation's field under `report.`.
fn under_report(error: ApiError) -> ApiError {
    match error {
        ApiError::InvalidArgument(violations) => ApiError::InvalidArgument(
            violations
                .into_iter()
                .map(|v| FieldViolation::new(format!("report.{}", v.field), v.description))
                .collect(),
        ),
        other => other,
    }
}

/// A report's title, description and definition, checked as QueryKpis
/// checks a query (with fields named under `report.`).
fn read_report(r: &pb::Report) -> Result<(String, String, Definition), ApiError> {
    let mut v = Violations::default();
    let display_name = r.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 200 {
        v.add("report.display_name", "1 to 200 characters");
    }
    if r.description.chars().count() > 2000 {
        v.add("report.description", "at most 2,000 characters");
    }
    v.finish()?;
    let relative = relative(r.relative_period)?;
    let fixed = match (relative, &r.period) {
        (Some(_), _) => None,
        (None, None) => {
            return Err(ApiError::invalid(
                "report.period",
                "a period or a relative_period is required",
            ));
        }
        (None, Some(p)) => Some(p.clone()),
    };
    let request = pb::QueryKpisRequest {
        kpis: r.kpis.clone(),
        period: fixed.clone().or_else(|| {
            relative.map(|rel| {
                let p = rel.resolve(today());
                pb::Period {
                    start_date: day_key(p.start),
                    end_date: day_key(p.end),
                }
            })
        }),
        granularity: r.granularity,
        filter: r.filter.clone(),
    };
    let query = kpis::Query::read(&request).map_err(under_report)?;
    let parse = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    let period = fixed.and_then(|p| Some((parse(&p.start_date)?, parse(&p.end_date)?)));
    Ok((
        display_name,
        r.description.clone(),
        Definition {
            kpis: r.kpis.clone(),
            relative,
            period,
            granularity: query.granularity,
            filter: query.filter,
        },
    ))
}

/// A report as its message.
pub fn report_message(r: &Report) -> pb::Report {
    let d = &r.definition;
    let request = query_request(d, today());
    pb::Report {
        name: r.name(),
        display_name: r.display_name.clone(),
        description: r.description.clone(),
        kpis: d.kpis.clone(),
        relative_period: relative_pb(d.relative) as i32,
        period: d.period.map(|(s, e)| pb::Period {
            start_date: day_key(s),
            end_date: day_key(e),
        }),
        granularity: request.granularity,
        filter: request.filter,
        creator: r.creator.clone(),
        create_time: Some(to_timestamp(r.create_time)),
        update_time: Some(to_timestamp(r.update_time)),
        delete_time: r.delete_time.map(to_timestamp),
        etag: crm_shared::convert::etag(r.version),
    }
}

fn payload(r: &Report) -> prost_types::Any {
    to_any(&report_message(r))
}

impl ReportingApi {
    pub(super) async fn create_report(
        &self,
        request: Request<pb::CreateReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let (principal, tenant) = admitted(&request)?;
        let r = request.into_inner();
        let request_id = IdempotencyKey::of(&r.request_id, &r)?;
        let (display_name, description, definition) = read_report(&required(r.report, "report")?)?;
        let created = self
            .store
            .create_report(
                &tenant,
                &principal.subject,
                display_name,
                description,
                definition,
                request_id,
                payload,
            )
            .await?;
        Ok(Response::new(report_message(&created)))
    }

    pub(super) async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let (_, tenant) = admitted(&request)?;
        let name = &request.get_ref().name;
        parse_name(name, "reports", "name")?;
        Ok(Response::new(report_message(
            &self.store.get_report(&tenant, name).await?,
        )))
    }

    pub(super) async fn list_reports(
        &self,
        request: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        const NONE: FilterSchema = FilterSchema { fields: &[] };
        let (_, tenant) = admitted(&request)?;
        let r = request.into_inner();
        let plan = ListPlan::new(
            &self.page_tokens,
            ListRequest {
                resource: "reports",
                schema: &NONE,
                orderable: &[("create_time", "create_time")],
                filter: "",
                order_by: "",
                show_deleted: r.show_deleted,
                page_size: r.page_size,
                page_token: &r.page_token,
                include_total_size: false,
            },
        )?;
        let page = self.store.list_reports(&tenant, plan.query.clone()).await?;
        Ok(Response::new(pb::ListReportsResponse {
            next_page_token: plan.next_page_token(&self.page_tokens, &page),
            reports: page.items.iter().map(report_message).collect(),
        }))
    }

    pub(super) async fn update_report(
        &self,
        request: Request<pb::UpdateReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let (principal, tenant) = admitted(&request)?;
        let r = request.into_inner();
        let report = required(r.report, "report")?;
        parse_name(&report.name, "reports", "report.name")?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let fields: Vec<String> = update_paths(&paths, UPDATABLE)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let expected = parse_etag(&report.etag, "report.etag")?;
        let name = report.name.clone();
        let changed = self
            .store
            .change_report(
                &tenant,
                &principal.subject,
                &name,
                expected,
                |stored| {
                    if stored.delete_time.is_some() {
                        return Err(ApiError::NotFound(stored.name()));
                    }
                    // The stored report with the masked fields replaced, checked whole.
                    let mut merged = report_message(stored);
                    for field in &fields {
                        match field.as_str() {
                            "display_name" => merged.display_name = report.display_name.clone(),
                            "description" => merged.description = report.description.clone(),
                            "kpis" => merged.kpis = report.kpis.clone(),
                            "relative_period" => merged.relative_period = report.relative_period,
                            "period" => merged.period = report.period.clone(),
                            "granularity" => merged.granularity = report.granularity,
                            _ => merged.filter = report.filter.clone(),
                        }
                    }
                    let (display_name, description, definition) = read_report(&merged)?;
                    stored.display_name = display_name;
                    stored.description = description;
                    stored.definition = definition;
                    Ok(())
                },
                "ReportUpdated",
                payload,
            )
            .await?;
        Ok(Response::new(report_message(&changed)))
    }

    pub(super) async fn delete_report(
        &self,
        request: Request<pb::DeleteReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let (principal, tenant) = admitted(&request)?;
        let r = request.into_inner();
        parse_name(&r.name, "reports", "name")?;
        let expected = parse_etag(&r.etag, "etag")?;
        let deleted = self
            .store
            .change_report(
                &tenant,
                &principal.subject,
                &r.name,
                expected,
                |stored| {
                    if stored.delete_time.is_some() {
                        return Err(ApiError::NotFound(stored.name()));
                    }
                    stored.delete_time = Some(chrono::Utc::now());
                    Ok(())
                },
                "ReportDeleted",
                payload,
            )
            .await?;
        Ok(Response::new(report_message(&deleted)))
    }

    pub(super) async fn undelete_report(
        &self,
        request: Request<pb::UndeleteReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let (principal, tenant) = admitted(&request)?;
        let r = request.into_inner();
        parse_name(&r.name, "reports", "name")?;
        let restored = self
            .store
            .change_report(
                &tenant,
                &principal.subject,
                &r.name,
                None,
                |stored| {
                    if stored.delete_time.is_none() {
                        return Err(ApiError::FailedPrecondition(format!(
                            "{} is not deleted",
                            stored.name()
                        )));
                    }
                    stored.delete_time = None;
                    Ok(())
                },
                "ReportUndeleted",
                payload,
            )
            .await?;
        Ok(Response::new(report_message(&restored)))
    }

    /// Runs the live report `name` of `tenant`, with `granularity` instead
    /// of its own when given.
    async fn run(
        &self,
        tenant: &crm_shared::db::Tenant,
        name: &str,
        granularity: Option<Granularity>,
    ) -> Result<pb::QueryKpisResponse, ApiError> {
        parse_name(name, "reports", "name")?;
        let report = self.store.get_report(tenant, name).await?;
        if report.delete_time.is_some() {
            return Err(ApiError::NotFound(name.to_owned()));
        }
        let mut definition = report.definition;
        if let Some(g) = granularity.filter(|_| definition.granularity == Granularity::None) {
            definition.granularity = g;
        }
        // Checked again: a KPI may have been retired since it was saved.
        let query = kpis::Query::read(&query_request(&definition, today()))?;
        let scope = self.scope(tenant).await?;
        kpis::answer(&self.store, &scope, &query).await
    }

    pub(super) async fn run_report(
        &self,
        request: Request<pb::RunReportRequest>,
    ) -> Result<Response<pb::QueryKpisResponse>, Status> {
        let (_, tenant) = admitted(&request)?;
        Ok(Response::new(
            self.run(&tenant, &request.get_ref().name, None).await?,
        ))
    }

    pub(super) async fn export_report(
        &self,
        request: Request<pb::ExportReportRequest>,
    ) -> Result<Vec<pb::ExportReportResponse>, Status> {
        let (_, tenant) = admitted(&request)?;
        let answer = self.run(&tenant, &request.get_ref().name, None).await?;
        let text = csv_of(&answer).map_err(|e| ApiError::Internal(format!("csv: {e}")))?;
        Ok(text
            .as_bytes()
            .chunks(CSV_CHUNK)
            .map(|chunk| pb::ExportReportResponse {
                data: chunk.to_vec(),
            })
            .collect())
    }

    pub(super) async fn render_report_chart(
        &self,
        request: Request<pb::RenderReportChartRequest>,
    ) -> Result<Response<pb::RenderReportChartResponse>, Status> {
        let (_, tenant) = admitted(&request)?;
        let r = request.get_ref();
        let size = |value: i32, default: u32, min: u32, field: &str| match value {
            0 => Ok(default),
            v if (min as i32..=4000).contains(&v) => Ok(v as u32),
            _ => Err(ApiError::invalid(field, format!("{min} to 4,000 pixels"))),
        };
        let (width, height) = (
            size(r.width, 800, 200, "width")?,
            size(r.height, 400, 150, "height")?,
        );
        let answer = self.run(&tenant, &r.name, Some(Granularity::Month)).await?;
        let svg = super::chart::render(&answer, width, height)
            .map_err(|e| ApiError::Internal(format!("chart: {e}")))?;
        Ok(Response::new(pb::RenderReportChartResponse { svg }))
    }
}

fn number(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// The answer as CSV: a header, then per line its total and its buckets.
pub fn csv_of(answer: &pb::QueryKpisResponse) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "kpi",
        "currency",
        "group",
        "start_date",
        "end_date",
        "value",
        "previous_value",
        "year_ago_value",
    ])?;
    for result in &answer.results {
        for line in &result.lines {
            let total = line.total.unwrap_or_default();
            writer.write_record([
                result.kpi.as_str(),
                &line.currency,
                &line.group,
                "",
                "",
                &number(total.value),
                &number(total.previous_value),
                &number(total.year_ago_value),
            ])?;
            for bucket in &line.buckets {
                writer.write_record([
                    result.kpi.as_str(),
                    &line.currency,
                    &line.group,
                    &bucket.start_date,
                    &bucket.end_date,
                    &number(bucket.value),
                    "",
                    "",
                ])?;
            }
        }
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
