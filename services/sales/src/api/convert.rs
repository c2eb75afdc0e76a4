//! Protobuf messages <-> domain values. Reading a request checks what only
//! the wire can get wrong (unknown enum numbers, timestamps out of range);
//! the domain checks the rest.

use crm_proto::{contacts::LifecycleStage, sales as pb};
use crm_shared::{
    convert::{etag, from_timestamp, to_any, to_timestamp},
    error::ApiError,
    money::Money,
};

use crate::domain::{
    assignment::{Rule, RuleDraft, Strategy},
    conversion::ContactStage,
    lead::{Lead, LeadDraft, LeadSource, LeadStatus},
    opportunity::{LineItem, Opportunity, OpportunityDraft, parse_date},
    pipeline::{Pipeline, Stage, StageKind},
    product::{Product, ProductDraft},
    scoring::ScoreFactor,
    task::{Task, TaskDraft, TaskStatus},
};
use crate::store::{EventPayloads, ScoringRule};

fn unknown(field: &str, value: i32) -> ApiError {
    ApiError::invalid(field, format!("unknown value {value}"))
}

/// A lead source from the wire; UNSPECIFIED is allowed only when `optional`.
fn lead_source(value: i32, field: &str) -> Result<Option<LeadSource>, ApiError> {
    use pb::LeadSource as P;
    Ok(
        match P::try_from(value).map_err(|_| unknown(field, value))? {
            P::Unspecified => None,
            P::WebForm => Some(LeadSource::WebForm),
            P::Import => Some(LeadSource::Import),
            P::Event => Some(LeadSource::Event),
            P::Referral => Some(LeadSource::Referral),
            P::Campaign => Some(LeadSource::Campaign),
            P::Other => Some(LeadSource::Other),
        },
    )
}

fn lead_source_message(source: LeadSource) -> pb::LeadSource {
    match source {
        LeadSource::WebForm => pb::LeadSource::WebForm,
        LeadSource::Import => pb::LeadSource::Import,
        LeadSource::Event => pb::LeadSource::Event,
        LeadSource::Referral => pb::LeadSource::Referral,
        LeadSource::Campaign => pb::LeadSource::Campaign,
        LeadSource::Other => pb::LeadSource::Other,
    }
}

fn lead_status(value: i32, field: &str) -> Result<Option<LeadStatus>, ApiError> {
    use pb::LeadStatus as P;
    Ok(
        match P::try_from(value).map_err(|_| unknown(field, value))? {
            P::Unspecified => None,
            P::New => Some(LeadStatus::New),
            P::Contacted => Some(LeadStatus::Contacted),
            P::Qualified => Some(LeadStatus::Qualified),
            P::Disqualified => Some(LeadStatus::Disqualified),
            P::Converted => Some(LeadStatus::Converted),
        },
    )
}

fn lead_status_message(status: LeadStatus) -> pb::LeadStatus {
    match status {
        LeadStatus::New => pb::LeadStatus::New,
        LeadStatus::Contacted => pb::LeadStatus::Contacted,
        LeadStatus::Qualified => pb::LeadStatus::Qualified,
        LeadStatus::Disqualified => pb::LeadStatus::Disqualified,
        LeadStatus::Converted => pb::LeadStatus::Converted,
    }
}

/// The writable fields of a lead message. On create the source is required
/// (`require_source`); the status defaults to NEW.
pub fn lead_draft(lead: &pb::Lead, require_source: bool) -> Result<LeadDraft, ApiError> {
    let source = lead_source(lead.source, "lead.source")?;
    if require_source && source.is_none() {
        return Err(ApiError::invalid("lead.source", "required"));
    }
    Ok(LeadDraft {
        given_name: lead.given_name.clone(),
        family_name: lead.family_name.clone(),
        email: lead.email.clone(),
        phone: lead.phone.clone(),
        company_name: lead.company_name.clone(),
        title: lead.title.clone(),
        country: lead.country.clone(),
        employee_count: lead.employee_count,
        source: source.unwrap_or(LeadSource::Other),
        campaign: lead.campaign.clone(),
        status: lead_status(lead.status, "lead.status")?.unwrap_or(LeadStatus::New),
        disqualify_reason: lead.disqualify_reason.clone(),
    })
}

fn factor_message(f: &ScoreFactor) -> pb::ScoreFactor {
    pb::ScoreFactor {
        label: f.label.clone(),
        points: f.points,
    }
}

/// A lead as the API shows it.
pub fn lead_message(lead: &Lead) -> pb::Lead {
    let d = &lead.draft;
    pb::Lead {
        name: lead.name(),
        given_name: d.given_name.clone(),
        family_name: d.family_name.clone(),
        email: d.email.clone(),
        phone: d.phone.clone(),
        company_name: d.company_name.clone(),
        title: d.title.clone(),
        country: d.country.clone(),
        employee_count: d.employee_count,
        source: lead_source_message(d.source) as i32,
        campaign: d.campaign.clone(),
        status: lead_status_message(d.status) as i32,
        disqualify_reason: d.disqualify_reason.clone(),
        owner: lead.owner.clone(),
        assignment_reason: lead.assignment_reason.clone(),
        score: lead.score,
        score_factors: lead.score_factors.iter().map(factor_message).collect(),
        possible_duplicates: lead.possible_duplicates.clone(),
        converted_contact: lead.converted_contact.clone(),
        converted_company: lead.converted_company.clone(),
        converted_opportunity: lead.converted_opportunity.clone(),
        convert_time: lead.convert_time.map(to_timestamp),
        create_time: Some(to_timestamp(lead.create_time)),
        update_time: Some(to_timestamp(lead.update_time)),
        delete_time: lead.delete_time.map(to_timestamp),
        etag: etag(lead.version),
    }
}

/// A conversion's result as the API shows it, from the converted lead as
/// stored, so a repeated call reports what the first one did.
pub fn converted_message(
    lead: &Lead,
    opportunity: Option<&Opportunity>,
) -> pb::ConvertLeadResponse {
    pb::ConvertLeadResponse {
        lead: Some(lead_message(lead)),
        contact: lead.converted_contact.clone(),
        contact_reused: lead.converted_contact_reused,
        company: lead.converted_company.clone(),
        opportunity: opportunity.map(opportunity_message),
    }
}

/// The lifecycle stage in contacts a converted lead's contact enters at.
pub fn lifecycle_stage(stage: ContactStage) -> LifecycleStage {
    match stage {
        ContactStage::SalesQualified => LifecycleStage::SalesQualified,
        ContactStage::Opportunity => LifecycleStage::Opportunity,
    }
}

/// The writable fields of an assignment rule message.
pub fn rule_draft(rule: &pb::AssignmentRule) -> Result<RuleDraft, ApiError> {
    use pb::AssignmentStrategy as P;
    let field = "assignment_rule.strategy";
    let strategy = match P::try_from(rule.strategy).map_err(|_| unknown(field, rule.strategy))? {
        P::Unspecified => return Err(ApiError::invalid(field, "required")),
        P::RoundRobin => Strategy::RoundRobin,
        P::LeastLoaded => Strategy::LeastLoaded,
    };
    Ok(RuleDraft {
        display_name: rule.display_name.clone(),
        priority: rule.priority,
        filter: rule.filter.clone(),
        strategy,
        members: rule.members.clone(),
    })
}

/// An assignment rule as the API shows it.
pub fn rule_message(rule: &Rule) -> pb::AssignmentRule {
    pb::AssignmentRule {
        name: rule.name(),
        display_name: rule.draft.display_name.clone(),
        priority: rule.draft.priority,
        filter: rule.draft.filter.clone(),
        strategy: match rule.draft.strategy {
            Strategy::RoundRobin => pb::AssignmentStrategy::RoundRobin,
            Strategy::LeastLoaded => pb::AssignmentStrategy::LeastLoaded,
        } as i32,
        members: rule.draft.members.clone(),
        create_time: Some(to_timestamp(rule.create_time)),
        etag: etag(rule.version),
    }
}

/// A scoring rule as the API shows it.
pub fn scoring_rule_message(rule: &ScoringRule) -> pb::ScoringRule {
    pb::ScoringRule {
        name: rule.name(),
        display_name: rule.display_name.clone(),
        filter: rule.filter.clone(),
        points: rule.points,
        create_time: Some(to_timestamp(rule.create_time)),
        etag: etag(rule.version),
    }
}

/// The stages of a pipeline message: a stage named `{pipeline}/stages/{id}`
/// keeps its id, one without a name gets a fresh one.
pub fn stages(pipeline: Option<&str>, stages: &[pb::Stage]) -> Result<Vec<Stage>, ApiError> {
    stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let field = format!("pipeline.stages[{i}].kind");
            let kind = match pb::StageKind::try_from(s.kind).map_err(|_| unknown(&field, s.kind))? {
                pb::StageKind::Unspecified => return Err(ApiError::invalid(field, "required")),
                pb::StageKind::Open => StageKind::Open,
                pb::StageKind::Won => StageKind::Won,
                pb::StageKind::Lost => StageKind::Lost,
            };
            let id = match (s.name.as_str(), pipeline) {
                ("", _) => uuid::Uuid::now_v7(),
                (name, Some(pipeline)) => name
                    .strip_prefix(&format!("{pipeline}/stages/"))
                    .and_then(|id| id.parse().ok())
                    .ok_or_else(|| {
                        ApiError::invalid(
                            format!("pipeline.stages[{i}].name"),
                            format!("not a stage of {pipeline}; leave it empty for a new stage"),
                        )
                    })?,
                (_, None) => {
                    return Err(ApiError::invalid(
                        format!("pipeline.stages[{i}].name"),
                        "a new pipeline's stages have no names yet",
                    ));
                }
            };
            Ok(Stage {
                id,
                display_name: s.display_name.trim().to_owned(),
                probability: s.probability,
                kind,
            })
        })
        .collect()
}

fn kind_message(kind: StageKind) -> pb::StageKind {
    match kind {
        StageKind::Open => pb::StageKind::Open,
        StageKind::Won => pb::StageKind::Won,
        StageKind::Lost => pb::StageKind::Lost,
    }
}

/// A pipeline as the API shows it.
pub fn pipeline_message(p: &Pipeline) -> pb::Pipeline {
    pb::Pipeline {
        name: p.name(),
        display_name: p.display_name.clone(),
        stages: p
            .stages
            .iter()
            .map(|s| pb::Stage {
                name: p.stage_name(s),
                display_name: s.display_name.clone(),
                probability: s.probability,
                kind: kind_message(s.kind) as i32,
            })
            .collect(),
        is_default: p.is_default,
        create_time: Some(to_timestamp(p.create_time)),
        delete_time: p.delete_time.map(to_timestamp),
        etag: etag(p.version),
    }
}

/// The writable fields of an opportunity message.
pub fn opportunity_draft(o: &pb::Opportunity) -> Result<OpportunityDraft, ApiError> {
    Ok(OpportunityDraft {
        display_name: o.display_name.clone(),
        amount: o.amount.clone().map(Money::from),
        pipeline: o.pipeline.clone(),
        stage: o.stage.clone(),
        expected_close_date: parse_date(&o.expected_close_date, "opportunity.expected_close_date")?,
        owner: o.owner.clone(),
        contact: o.contact.clone(),
        company: o.company.clone(),
        line_items: o
            .line_items
            .iter()
            .map(|item| LineItem {
                product: item.product.clone(),
                quantity: item.quantity,
                unit_price: item.unit_price.clone().map(Money::from),
                discount_percent: item.discount_percent,
            })
            .collect(),
        close_reason: o.close_reason.clone(),
    })
}

/// An opportunity as the API shows it.
pub fn opportunity_message(o: &Opportunity) -> pb::Opportunity {
    let d = &o.draft;
    pb::Opportunity {
        name: o.name(),
        display_name: d.display_name.clone(),
        amount: d.amount.as_ref().map(Into::into),
        pipeline: d.pipeline.clone(),
        stage: d.stage.clone(),
        expected_close_date: d
            .expected_close_date
            .map(|date| date.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        owner: d.owner.clone(),
        contact: d.contact.clone(),
        company: d.company.clone(),
        line_items: d
            .line_items
            .iter()
            .map(|item| pb::LineItem {
                product: item.product.clone(),
                quantity: item.quantity,
                unit_price: item.unit_price.as_ref().map(Into::into),
                discount_percent: item.discount_percent,
                total: item.total().as_ref().map(Into::into),
            })
            .collect(),
        close_reason: d.close_reason.clone(),
        state: match o.state {
            StageKind::Open => pb::OpportunityState::Open,
            StageKind::Won => pb::OpportunityState::Won,
            StageKind::Lost => pb::OpportunityState::Lost,
        } as i32,
        close_time: o.close_time.map(to_timestamp),
        stage_history: o
            .stage_history
            .iter()
            .map(|c| pb::StageChange {
                stage: c.stage.clone(),
                changed_by: c.changed_by.clone(),
                change_time: Some(to_timestamp(c.change_time)),
            })
            .collect(),
        source_lead: o.source_lead.clone(),
        create_time: Some(to_timestamp(o.create_time)),
        update_time: Some(to_timestamp(o.update_time)),
        delete_time: o.delete_time.map(to_timestamp),
        etag: etag(o.version),
    }
}

/// The writable fields of a product message.
pub fn product_draft(p: &pb::Product) -> ProductDraft {
    ProductDraft {
        sku: p.sku.clone(),
        display_name: p.display_name.clone(),
        unit_price: p.unit_price.clone().map(Money::from),
        active: p.active,
    }
}

/// A product as the API shows it.
pub fn product_message(p: &Product) -> pb::Product {
    pb::Product {
        name: p.name(),
        sku: p.draft.sku.clone(),
        display_name: p.draft.display_name.clone(),
        unit_price: p.draft.unit_price.as_ref().map(Into::into),
        active: p.draft.active,
        create_time: Some(to_timestamp(p.create_time)),
        update_time: Some(to_timestamp(p.update_time)),
        etag: etag(p.version),
    }
}

/// The writable fields of a task message.
pub fn task_draft(t: &pb::Task) -> Result<TaskDraft, ApiError> {
    use pb::TaskStatus as P;
    let status = match P::try_from(t.status).map_err(|_| unknown("task.status", t.status))? {
        P::Unspecified | P::Open => TaskStatus::Open,
        P::Done => TaskStatus::Done,
        P::Cancelled => TaskStatus::Cancelled,
    };
    Ok(TaskDraft {
        title: t.title.clone(),
        due_time: t
            .due_time
            .as_ref()
            .map(|ts| from_timestamp(ts, "task.due_time"))
            .transpose()?,
        owner: t.owner.clone(),
        status,
        lead: t.lead.clone(),
        contact: t.contact.clone(),
        opportunity: t.opportunity.clone(),
    })
}

/// A task as the API shows it.
pub fn task_message(t: &Task) -> pb::Task {
    pb::Task {
        name: t.name(),
        title: t.draft.title.clone(),
        due_time: t.draft.due_time.map(to_timestamp),
        owner: t.draft.owner.clone(),
        status: match t.draft.status {
            TaskStatus::Open => pb::TaskStatus::Open,
            TaskStatus::Done => pb::TaskStatus::Done,
            TaskStatus::Cancelled => pb::TaskStatus::Cancelled,
        } as i32,
        lead: t.draft.lead.clone(),
        contact: t.draft.contact.clone(),
        opportunity: t.draft.opportunity.clone(),
        create_time: Some(to_timestamp(t.create_time)),
        update_time: Some(to_timestamp(t.update_time)),
        delete_time: t.delete_time.map(to_timestamp),
        etag: etag(t.version),
    }
}

/// Event payloads as protobuf `Any`s.
pub struct ProtoPayloads;

impl EventPayloads for ProtoPayloads {
    fn lead(&self, lead: &Lead) -> prost_types::Any {
        to_any(&lead_message(lead))
    }
    fn lead_converted(&self, lead: &Lead) -> prost_types::Any {
        to_any(&pb::LeadConverted {
            lead: Some(lead_message(lead)),
            contact: lead.converted_contact.clone(),
            company: lead.converted_company.clone(),
            opportunity: lead.converted_opportunity.clone(),
        })
    }
    fn opportunity(&self, o: &Opportunity) -> prost_types::Any {
        to_any(&opportunity_message(o))
    }
    fn stage_changed(&self, o: &Opportunity, from: &str) -> prost_types::Any {
        to_any(&pb::OpportunityStageChanged {
            opportunity: Some(opportunity_message(o)),
            from_stage: from.to_owned(),
            to_stage: o.draft.stage.clone(),
        })
    }
    fn pipeline(&self, p: &Pipeline) -> prost_types::Any {
        to_any(&pipeline_message(p))
    }
    fn product(&self, p: &Product) -> prost_types::Any {
        to_any(&product_message(p))
    }
    fn task(&self, t: &Task) -> prost_types::Any {
        to_any(&task_message(t))
    }
    fn assignment_rule(&self, rule: &Rule) -> prost_types::Any {
        to_any(&rule_message(rule))
    }
    fn scoring_rule(&self, rule: &ScoringRule) -> prost_types::Any {
        to_any(&scoring_rule_message(rule))
    }
}
