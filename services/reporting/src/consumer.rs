//! What reporting does with the feeds it follows, applied by the shared
//! consumer (`crm_shared::consumer`) to the live read model, and by the
//! rebuild to the generation it writes. Each event becomes domain values
//! here, and the store applies them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use crm_proto::{
    contacts::{self as contacts_pb, Activity, Company, ContactErased, ContactMerged},
    events::{ErasureCompleted, Event},
    marketing::{
        CampaignProgress, ContactUnsubscribed, EmailEngagement, EmailSent, JourneyEnrollmentChanged,
    },
    sales::{self as sales_pb, LeadConverted, Opportunity, OpportunityStageChanged, Pipeline},
    support::{
        self as support_pb, CommentCreated, SatisfactionSurvey, SlaAlert, TicketStatusChanged,
    },
};
use crm_shared::{
    consumer::{EffectError, EventHandler},
    convert::to_any,
    db::WriteTxn,
    outbox::NewEvent,
};
use sea_orm::ConnectionTrait;

use crate::{
    domain::model::{
        Campaign, Consent, Contact, Deal, DealRecord, DealState, EmailEvent, EmailOutcome, Lead,
        Ticket, TicketRecord, TimelineEntry,
    },
    store::{ContactChange, Scope, Store},
};

/// The feeds reporting follows, by source service.
pub const SOURCES: &[&str] = &["contacts", "sales", "marketing", "support"];

/// Applies events of every source to a generation of the read model.
#[derive(Clone)]
pub struct ReadModel {
    store: Store,
}

/// One source's handler for the live read model.
pub struct Feed {
    source: &'static str,
    model: ReadModel,
}

impl Feed {
    /// The handler of `source`'s feed.
    pub fn new(source: &'static str, model: ReadModel) -> Arc<Self> {
        Arc::new(Self { source, model })
    }
}

#[tonic::async_trait]
impl EventHandler for Feed {
    fn event_types(&self) -> Vec<String> {
        event_types(self.source)
    }

    async fn apply(&self, txn: &WriteTxn, event: &Event) -> Result<Vec<NewEvent>, EffectError> {
        let state = self.model.store.model_state(&**txn).await?;
        let scope = Scope {
            generation: state.generation,
            tenant: event.tenant.clone(),
        };
        self.model.apply(&**txn, &scope, event).await
    }
}

/// The full types reporting applies from `source`.
pub fn event_types(source: &str) -> Vec<String> {
    let names: &[&str] = match source {
        "contacts" => &[
            "ContactCreated",
            "ContactUpdated",
            "ContactDeleted",
            "ContactUndeleted",
            "ContactMerged",
            "ContactErased",
            "CompanyCreated",
            "CompanyUpdated",
            "CompanyUndeleted",
            "ActivityLogged",
        ],
        "sales" => &[
            "LeadCreated",
            "LeadUpdated",
            "LeadDeleted",
            "LeadUndeleted",
            "LeadAssigned",
            "LeadErased",
            "LeadConverted",
            "OpportunityCreated",
            "OpportunityUpdated",
            "OpportunityDeleted",
            "OpportunityUndeleted",
            "OpportunityStageChanged",
            "OpportunityWon",
            "OpportunityLost",
            "PipelineCreated",
            "PipelineUpdated",
            "ErasureCompleted",
        ],
        "marketing" => &[
            "CampaignCreated",
            "CampaignUpdated",
            "CampaignScheduled",
            "CampaignStarted",
            "CampaignSent",
            "CampaignDeleted",
            "EmailSent",
            "EmailOpened",
            "EmailClicked",
            "EmailBounced",
            "EmailComplained",
            "ContactUnsubscribed",
            "JourneyEnrolled",
            "JourneyEnrollmentEnded",
            "ErasureCompleted",
        ],
        "support" => &[
            "TicketCreated",
            "TicketUpdated",
            "TicketAssigned",
            "TicketDeleted",
            "TicketUndeleted",
            "TicketErased",
            "TicketStatusChanged",
            "TicketSolved",
            "TicketReopened",
            "TicketClosed",
            "CommentCreated",
            "SlaBreached",
            "CsatSubmitted",
            "ErasureCompleted",
        ],
        _ => &[],
    };
    names
        .iter()
        .map(|n| format!("crm.{source}.v1.{n}"))
        .collect()
}

fn time(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.clamp(0, 999_999_999) as u32))
}

/// An enum value's name without its prefix, lower case ("TICKET_CHANNEL_WEB" -> "web").
fn label(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn money_text(m: Option<&crm_proto::common::Money>) -> String {
    match m {
        Some(m) if !m.currency_code.is_empty() => {
            let value = m.units as f64 + f64::from(m.nanos) / 1e9;
            format!("{value} {}", m.currency_code)
        }
        _ => "no amount".into(),
    }
}

impl ReadModel {
    /// The read model over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Applies `event` to the generation and tenant of `scope`; returns the
    /// events reporting raises (its erasure confirmations).
    pub async fn apply<C: ConnectionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        event: &Event,
    ) -> Result<Vec<NewEvent>, EffectError> {
        let name = event.r#type.rsplit('.').next().unwrap_or_default();
        let at = time(event.time.as_ref()).unwrap_or_else(Utc::now);
        let entry = |contact: &str, kind: &str, subject: &str, summary: String| TimelineEntry {
            event_id: event.id.clone(),
            contact: contact.to_owned(),
            time: at,
            kind: kind.to_owned(),
            source: event.source.clone(),
            event_type: event.r#type.clone(),
            subject: subject.to_owned(),
            summary,
        };
        let store = &self.store;
        // Counted before it is written: most events write a few rows.
        store.wrote_event();
        match (event.source.as_str(), name) {
            (
                "contacts",
                "ContactCreated" | "ContactUpdated" | "ContactDeleted" | "ContactUndeleted",
            ) => {
                let c: contacts_pb::Contact = EffectError::decode(event)?;
                let contact = contact_of(&c);
                let before = store.put_contact(conn, scope, &contact).await?;
                let summary = match name {
                    "ContactCreated" => Some("Contact created".to_owned()),
                    "ContactDeleted" if !c.merged_into.is_empty() => {
                        Some(format!("Merged into {}", c.merged_into))
                    }
                    "ContactDeleted" => Some("Contact deleted".into()),
                    "ContactUndeleted" => Some("Contact restored".into()),
                    _ => None,
                };
                if let (Some(summary), false) = (summary, before == ContactChange::Ignored) {
                    store
                        .add_timeline(conn, scope, &entry(&c.name, "contact", &c.name, summary))
                        .await?;
                }
                let consent_changed = match before {
                    ContactChange::Ignored => false,
                    ContactChange::New => contact.email_consent != Consent::Unknown,
                    ContactChange::Updated { consent_before } => {
                        consent_before != contact.email_consent
                    }
                };
                if consent_changed {
                    let text = match contact.email_consent {
                        Consent::Granted => "Email consent granted",
                        Consent::Withdrawn => "Email consent withdrawn",
                        Consent::Unknown => "Email consent cleared",
                    };
                    let consent_entry = TimelineEntry {
                        event_id: format!("{}/consent", event.id),
                        ..entry(&c.name, "consent", &c.name, text.into())
                    };
                    store.add_timeline(conn, scope, &consent_entry).await?;
                }
            }
            ("contacts", "ContactMerged") => {
                let merged: ContactMerged = EffectError::decode(event)?;
                store
                    .merge_contacts(conn, scope, &merged.survivor, &merged.merged)
                    .await?;
            }
            ("contacts", "ContactErased") => {
                let erased: ContactErased = EffectError::decode(event)?;
                let people: Vec<String> = std::iter::once(erased.contact.clone())
                    .chain(erased.merged.iter().cloned())
                    .collect();
                let resources = store
                    .erase_contacts(conn, scope, &erased.contact, &people, at)
                    .await?;
                let confirmation = ErasureCompleted {
                    contact: erased.contact.clone(),
                    service: crate::SERVICE.name.into(),
                    erased_resources: resources,
                    scrubbed_events: 0,
                };
                return Ok(vec![NewEvent {
                    name: "ErasureCompleted",
                    subject: erased.contact,
                    payload: to_any(&confirmation),
                    actor: "reporting/contacts-feed".into(),
                }]);
            }
            ("contacts", "CompanyCreated" | "CompanyUpdated" | "CompanyUndeleted") => {
                let company: Company = EffectError::decode(event)?;
                store
                    .put_company(conn, scope, &company.name, &company.display_name)
                    .await?;
            }
            ("contacts", "ActivityLogged") => {
                let a: Activity = EffectError::decode(event)?;
                let kind = label(a.kind().as_str_name(), "ACTIVITY_KIND_");
                let summary = if a.subject.is_empty() {
                    kind
                } else {
                    format!("{kind}: {}", a.subject)
                };
                store
                    .add_timeline(
                        conn,
                        scope,
                        &entry(&a.contact, "activity", &a.name, summary),
                    )
                    .await?;
            }
            ("sales", "LeadConverted") => {
                let converted: LeadConverted = EffectError::decode(event)?;
                let lead = converted.lead.unwrap_or_default();
                store
                    .put_lead(conn, scope, &lead.name, &converted.contact, &lead_of(&lead))
                    .await?;
                let summary = format!(
                    "Lead converted ({})",
                    label(lead.source().as_str_name(), "LEAD_SOURCE_")
                );
                store
                    .add_timeline(
                        conn,
                        scope,
                        &entry(&converted.contact, "lead", &lead.name, summary),
                    )
                    .await?;
            }
            ("sales", n) if n.starts_with("Lead") => {
                let lead: sales_pb::Lead = EffectError::decode(event)?;
                store
                    .put_lead(
                        conn,
                        scope,
                        &lead.name,
                        &lead.converted_contact,
                        &lead_of(&lead),
                    )
                    .await?;
            }
            ("sales", "OpportunityStageChanged" | "OpportunityWon" | "OpportunityLost") => {
                let changed: OpportunityStageChanged = EffectError::decode(event)?;
                let o = changed.opportunity.unwrap_or_default();
                let record = deal_of(&o);
                store.put_deal(conn, scope, &record).await?;
                let summary = match name {
                    "OpportunityWon" => format!(
                        "Deal \"{}\" won: {}",
                        o.display_name,
                        money_text(o.amount.as_ref())
                    ),
                    "OpportunityLost" => format!("Deal \"{}\" lost", o.display_name),
                    // A move into a won or lost stage has its own entry.
                    _ if record.deal.state != DealState::Open => return Ok(Vec::new()),
                    _ => {
                        let stage = store.stage_name(conn, scope, &o.stage).await?;
                        format!("Deal \"{}\" moved to {stage}", o.display_name)
                    }
                };
                store
                    .add_timeline(conn, scope, &entry(&o.contact, "deal", &o.name, summary))
                    .await?;
            }
            ("sales", n) if n.starts_with("Opportunity") => {
                let o: Opportunity = EffectError::decode(event)?;
                store.put_deal(conn, scope, &deal_of(&o)).await?;
                if name == "OpportunityCreated" {
                    let summary = format!(
                        "Deal \"{}\" created: {}",
                        o.display_name,
                        money_text(o.amount.as_ref())
                    );
                    store
                        .add_timeline(conn, scope, &entry(&o.contact, "deal", &o.name, summary))
                        .await?;
                }
            }
            ("sales", "PipelineCreated" | "PipelineUpdated") => {
                let p: Pipeline = EffectError::decode(event)?;
                let stages: Vec<(String, String, f64)> = p
                    .stages
                    .iter()
                    .map(|s| {
                        (
                            s.name.clone(),
                            s.display_name.clone(),
                            s.probability.clamp(0.0, 1.0),
                        )
                    })
                    .collect();
                store.put_stages(conn, scope, &stages).await?;
            }
            (
                "marketing",
                "EmailSent"
                | "EmailOpened"
                | "EmailClicked"
                | "EmailBounced"
                | "EmailComplained"
                | "ContactUnsubscribed",
            ) => {
                let email = email_event(name, event, at)?;
                store.record_email(conn, scope, &email).await?;
                let from = email.source();
                let summary = match email.outcome {
                    EmailOutcome::Sent => format!("Email sent ({from})"),
                    EmailOutcome::Unsubscribed => format!("Unsubscribed ({from})"),
                    outcome => format!("Email {} ({from})", outcome.label()),
                };
                store
                    .add_timeline(conn, scope, &entry(&email.contact, "email", from, summary))
                    .await?;
            }
            ("marketing", "JourneyEnrolled" | "JourneyEnrollmentEnded") => {
                let changed: JourneyEnrollmentChanged = EffectError::decode(event)?;
                let enrollment = changed.enrollment.unwrap_or_default();
                let summary = if name == "JourneyEnrolled" {
                    format!("Enrolled in {}", changed.journey)
                } else {
                    format!(
                        "Left {} ({})",
                        changed.journey,
                        label(enrollment.state().as_str_name(), "ENROLLMENT_STATE_")
                    )
                };
                store
                    .add_timeline(
                        conn,
                        scope,
                        &entry(&enrollment.contact, "journey", &enrollment.name, summary),
                    )
                    .await?;
            }
            ("marketing", n) if n.starts_with("Campaign") => {
                let progress: CampaignProgress = EffectError::decode(event)?;
                let c = progress.campaign.unwrap_or_default();
                let cost = c.cost.as_ref().map_or((String::new(), 0, 0), |m| {
                    (m.currency_code.clone(), m.units, m.nanos)
                });
                let campaign = Campaign {
                    name: c.name.clone(),
                    display_name: c.display_name.clone(),
                    cost,
                    start_time: time(c.start_time.as_ref()),
                    deleted: c.delete_time.is_some(),
                };
                store.put_campaign(conn, scope, &campaign).await?;
            }
            (
                "support",
                "TicketStatusChanged" | "TicketSolved" | "TicketReopened" | "TicketClosed",
            ) => {
                let changed: TicketStatusChanged = EffectError::decode(event)?;
                let t = changed.ticket.unwrap_or_default();
                store.put_ticket(conn, scope, &ticket_of(&t)).await?;
                let verb = match name {
                    "TicketSolved" => Some("solved"),
                    "TicketReopened" => Some("reopened"),
                    "TicketClosed" => Some("closed"),
                    _ => None,
                };
                if let Some(verb) = verb {
                    let summary = format!("Ticket #{} {verb}", t.number);
                    store
                        .add_timeline(
                            conn,
                            scope,
                            &entry(&t.requester, "ticket", &t.name, summary),
                        )
                        .await?;
                }
            }
            ("support", "CommentCreated") => {
                let created: CommentCreated = EffectError::decode(event)?;
                let t = created.ticket.unwrap_or_default();
                store.put_ticket(conn, scope, &ticket_of(&t)).await?;
            }
            ("support", "SlaBreached") => {
                let alert: SlaAlert = EffectError::decode(event)?;
                let t = alert.ticket.clone().unwrap_or_default();
                store.put_ticket(conn, scope, &ticket_of(&t)).await?;
                let metric = label(alert.metric().as_str_name(), "SLA_METRIC_").replace('_', " ");
                let summary = format!("Ticket #{} missed its {metric} target", t.number);
                store
                    .add_timeline(
                        conn,
                        scope,
                        &entry(&t.requester, "ticket", &t.name, summary),
                    )
                    .await?;
            }
            ("support", "CsatSubmitted") => {
                let survey: SatisfactionSurvey = EffectError::decode(event)?;
                let ticket = survey.name.trim_end_matches("/satisfaction").to_owned();
                let rated = time(survey.submit_time.as_ref()).unwrap_or(at);
                store
                    .put_rating(conn, scope, &ticket, survey.rating, rated)
                    .await?;
                let contact = store.ticket_contact(conn, scope, &ticket).await?;
                let summary = format!("Rated support {} of 5", survey.rating);
                store
                    .add_timeline(conn, scope, &entry(&contact, "ticket", &ticket, summary))
                    .await?;
            }
            ("support", n) if n.starts_with("Ticket") => {
                let t: support_pb::Ticket = EffectError::decode(event)?;
                store.put_ticket(conn, scope, &ticket_of(&t)).await?;
                if name == "TicketCreated" {
                    let summary = format!("Ticket #{} opened: {}", t.number, t.subject);
                    store
                        .add_timeline(
                            conn,
                            scope,
                            &entry(&t.requester, "ticket", &t.name, summary),
                        )
                        .await?;
                }
            }
            (service, "ErasureCompleted") => {
                let done: ErasureCompleted = EffectError::decode(event)?;
                store
                    .confirm_erasure(
                        conn,
                        scope,
                        &done.contact,
                        service,
                        at,
                        done.erased_resources.len() as i64,
                    )
                    .await?;
            }
            _ => {}
        }
        Ok(Vec::new())
    }
}

/// A marketing message event (`name` without its package) as the read model
/// counts it; the payload names its campaign or journey and its person.
fn email_event(name: &str, event: &Event, at: DateTime<Utc>) -> Result<EmailEvent, EffectError> {
    let (outcome, campaign, journey, contact) = match name {
        "EmailSent" => {
            let sent: EmailSent = EffectError::decode(event)?;
            (
                EmailOutcome::Sent,
                sent.campaign,
                sent.journey,
                sent.contact,
            )
        }
        "ContactUnsubscribed" => {
            let u: ContactUnsubscribed = EffectError::decode(event)?;
            (EmailOutcome::Unsubscribed, u.campaign, u.journey, u.contact)
        }
        _ => {
            let e: EmailEngagement = EffectError::decode(event)?;
            let outcome = match name {
                "EmailOpened" => EmailOutcome::Opened,
                "EmailClicked" => EmailOutcome::Clicked,
                "EmailBounced" => EmailOutcome::Bounced,
                _ => EmailOutcome::Complained,
            };
            (outcome, e.campaign, e.journey, e.contact)
        }
    };
    Ok(EmailEvent {
        outcome,
        campaign,
        journey,
        contact,
        time: at,
    })
}

/// A contact as the read model keeps it.
fn contact_of(c: &contacts_pb::Contact) -> Contact {
    let email = c
        .emails
        .iter()
        .find(|e| e.primary)
        .or_else(|| c.emails.first())
        .map(|e| e.address.clone())
        .unwrap_or_default();
    let email_consent = c
        .consents
        .iter()
        .find(|k| k.channel() == contacts_pb::Channel::Email)
        .map_or(Consent::Unknown, |k| match k.status() {
            contacts_pb::ConsentStatus::Granted => Consent::Granted,
            contacts_pb::ConsentStatus::Withdrawn => Consent::Withdrawn,
            _ => Consent::Unknown,
        });
    Contact {
        name: c.name.clone(),
        display_name: c.display_name.clone(),
        email,
        company: c.company.clone(),
        lifecycle_stage: label(c.lifecycle_stage().as_str_name(), "LIFECYCLE_STAGE_"),
        email_consent,
        merged_into: c.merged_into.clone(),
        create_time: time(c.create_time.as_ref()),
    }
}

/// A lead as the KPIs see it.
fn lead_of(l: &sales_pb::Lead) -> Lead {
    Lead {
        create_time: time(l.create_time.as_ref()).unwrap_or_else(Utc::now),
        source: label(l.source().as_str_name(), "LEAD_SOURCE_"),
        owner: l.owner.clone(),
        campaign: l.campaign.clone(),
        converted: l.status() == sales_pb::LeadStatus::Converted
            || !l.converted_opportunity.is_empty(),
        deleted: l.delete_time.is_some(),
    }
}

/// A deal as the read model keeps it.
fn deal_of(o: &Opportunity) -> DealRecord {
    let amount = o.amount.clone().unwrap_or_default();
    let state = match o.state() {
        sales_pb::OpportunityState::Won => DealState::Won,
        sales_pb::OpportunityState::Lost => DealState::Lost,
        _ => DealState::Open,
    };
    DealRecord {
        name: o.name.clone(),
        display_name: o.display_name.clone(),
        contact: o.contact.clone(),
        stage: o.stage.clone(),
        source_lead: o.source_lead.clone(),
        expected_close_day: chrono::NaiveDate::parse_from_str(&o.expected_close_date, "%Y-%m-%d")
            .map(crate::domain::period::day_key)
            .unwrap_or_default(),
        deal: Deal {
            owner: o.owner.clone(),
            pipeline: o.pipeline.clone(),
            company: o.company.clone(),
            campaign: String::new(),
            state,
            currency: amount.currency_code,
            units: amount.units,
            nanos: i64::from(amount.nanos),
            create_time: time(o.create_time.as_ref()).unwrap_or_else(Utc::now),
            close_time: time(o.close_time.as_ref()).filter(|_| state != DealState::Open),
            deleted: o.delete_time.is_some(),
        },
    }
}

/// A ticket as the read model keeps it.
fn ticket_of(t: &support_pb::Ticket) -> TicketRecord {
    let status = t.status();
    let solved = matches!(
        status,
        support_pb::TicketStatus::Solved | support_pb::TicketStatus::Closed
    );
    let targets = t
        .sla
        .as_ref()
        .map(|s| s.targets.as_slice())
        .unwrap_or_default();
    let next_sla_due_time = targets
        .iter()
        .filter(|target| target.met_time.is_none() && !target.paused)
        .filter_map(|target| time(target.due_time.as_ref()))
        .min();
    TicketRecord {
        name: t.name.clone(),
        subject: t.subject.clone(),
        contact: t.requester.clone(),
        status: label(status.as_str_name(), "TICKET_STATUS_"),
        next_sla_due_time,
        ticket: Ticket {
            owner: t.assignee.clone(),
            queue: t.queue.clone(),
            channel: label(t.channel().as_str_name(), "TICKET_CHANNEL_"),
            priority: label(t.priority().as_str_name(), "TICKET_PRIORITY_"),
            company: t.company.clone(),
            create_time: time(t.create_time.as_ref()).unwrap_or_else(Utc::now),
            first_response_time: time(t.first_response_time.as_ref()),
            solve_time: time(t.solve_time.as_ref()).filter(|_| solved),
            reopen_count: t.reopen_count,
            sla_breached: targets.iter().any(|target| target.breached),
            rating: None,
            deleted: t.delete_time.is_some(),
        },
    }
}
