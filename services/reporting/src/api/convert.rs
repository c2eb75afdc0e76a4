//! Domain and store values to protobuf and back.

use crm_proto::{common::Money, reporting as pb};
use crm_shared::{convert::to_timestamp, error::ApiError};

use super::ApiOptions;
use crate::{
    domain::{
        kpi::{Kpi, Unit},
        model::Consent,
    },
    store::{CustomerData, ErasureRecord, TimelineCursor},
};

/// The kinds a timeline entry can have.
pub const TIMELINE_KINDS: &[&str] = &[
    "activity", "consent", "contact", "deal", "email", "journey", "lead", "ticket",
];

/// A KPI unit.
pub fn unit(unit: Unit) -> pb::KpiUnit {
    match unit {
        Unit::Count => pb::KpiUnit::Count,
        Unit::Ratio => pb::KpiUnit::Ratio,
        Unit::Money => pb::KpiUnit::Money,
        Unit::Seconds => pb::KpiUnit::Seconds,
        Unit::Days => pb::KpiUnit::Days,
    }
}

/// A KPI's definition.
pub fn kpi_definition(k: &Kpi) -> pb::KpiDefinition {
    pb::KpiDefinition {
        name: k.name.into(),
        description: k.description.into(),
        unit: unit(k.unit) as i32,
        group_by: k.group_by.into(),
        filters: k.filters.iter().map(|d| d.field().to_owned()).collect(),
    }
}

/// A timeline page token's payload: the last entry's time to the
/// nanosecond ("seconds.nanos" since the epoch: SQLite keeps nanoseconds,
/// and a cursor cut to microseconds would skip the entries after it in the
/// same microsecond) and its event id.
pub fn cursor_payload(cursor: &TimelineCursor) -> String {
    format!(
        "{}.{:09}|{}",
        cursor.time.timestamp(),
        cursor.time.timestamp_subsec_nanos(),
        cursor.event_id
    )
}

/// The cursor a (verified) page token's payload holds.
pub fn timeline_cursor(payload: &str) -> Result<TimelineCursor, ApiError> {
    let invalid = || crm_shared::paging::invalid_token("page_token");
    let (time, event_id) = payload.split_once('|').ok_or_else(invalid)?;
    let (seconds, nanos) = time.split_once('.').ok_or_else(invalid)?;
    let seconds: i64 = seconds.parse().map_err(|_| invalid())?;
    let nanos: u32 = nanos.parse().map_err(|_| invalid())?;
    Ok(TimelineCursor {
        time: chrono::DateTime::from_timestamp(seconds, nanos).ok_or_else(invalid)?,
        event_id: event_id.to_owned(),
    })
}

fn money(currency: &str, units: i64, nanos: i64) -> Option<Money> {
    (!currency.is_empty()).then(|| Money {
        currency_code: currency.to_owned(),
        units,
        nanos: nanos as i32,
    })
}

/// The customer view.
pub fn customer_view(data: CustomerData, next_page_token: String) -> pb::CustomerView {
    let contact = data.contact;
    let mut open_deals = Vec::new();
    let mut won_deals = Vec::new();
    let mut lifetime = crm_shared::money::Totals::default();
    for (deal, stage) in data.deals {
        let summary = pb::DealSummary {
            opportunity: deal.opportunity.clone(),
            display_name: deal.display_name.clone(),
            stage,
            amount: money(&deal.currency_code, deal.units, i64::from(deal.nanos)),
            owner: deal.owner.clone(),
            create_time: Some(to_timestamp(deal.create_time)),
            close_time: deal
                .close_time
                .filter(|_| deal.state == "won")
                .map(to_timestamp),
        };
        match deal.state.as_str() {
            "open" => open_deals.push(summary),
            "won" => {
                if let Some(amount) = &summary.amount {
                    lifetime.add(&crm_shared::money::Money {
                        currency_code: amount.currency_code.clone(),
                        units: amount.units,
                        nanos: amount.nanos,
                    });
                }
                won_deals.push(summary);
            }
            _ => {}
        }
    }
    won_deals.sort_by(|a, b| {
        let key = |d: &pb::DealSummary| d.close_time.as_ref().map(|t| (t.seconds, t.nanos));
        key(b).cmp(&key(a))
    });
    let lifetime_revenue = lifetime
        .currencies()
        .map(|c| {
            let m = lifetime.get(c);
            Money {
                currency_code: m.currency_code,
                units: m.units,
                nanos: m.nanos,
            }
        })
        .collect();
    let open_tickets = data
        .open_tickets
        .into_iter()
        .map(|t| pb::TicketSummary {
            ticket: t.ticket,
            subject: t.subject,
            status: t.status,
            priority: t.priority,
            create_time: Some(to_timestamp(t.create_time)),
            sla_breached: t.sla_breached,
            next_sla_due_time: t.next_sla_due_time.map(to_timestamp),
        })
        .collect();
    let last_engagement = data.last_engagement.map(|e| {
        let (campaign, journey) = if e.source.starts_with("journeys/") {
            (String::new(), e.source.clone())
        } else {
            (e.source.clone(), String::new())
        };
        pb::EngagementSummary {
            campaign,
            journey,
            kind: e.kind,
            time: Some(to_timestamp(e.last_time)),
        }
    });
    let timeline = data
        .timeline
        .into_iter()
        .map(|e| pb::TimelineEntry {
            kind: e.kind,
            source: e.source,
            event_type: e.event_type,
            subject: e.subject,
            summary: e.summary,
            time: Some(to_timestamp(e.time)),
            event_id: e.event_id,
        })
        .collect();
    let consent = match Consent::from_code(contact.email_consent) {
        Consent::Unknown => pb::ConsentState::Unspecified,
        Consent::Granted => pb::ConsentState::Granted,
        Consent::Withdrawn => pb::ConsentState::Withdrawn,
    };
    pb::CustomerView {
        contact: contact.contact,
        display_name: contact.display_name,
        email: contact.email,
        company: contact.company,
        company_name: data.company_name,
        lifecycle_stage: contact.lifecycle_stage,
        email_consent: consent as i32,
        open_deals,
        won_deals,
        lifetime_revenue,
        open_tickets,
        last_engagement,
        timeline,
        next_page_token,
        erased: contact.erased,
    }
}

/// An erasure's status across the services expected to confirm it.
pub fn erasure_status(record: ErasureRecord, options: &ApiOptions) -> pb::ErasureStatus {
    let confirmed: Vec<&str> = record.confirmations.iter().map(|c| c.0.as_str()).collect();
    let pending_services: Vec<String> = options
        .erasure_services
        .iter()
        .filter(|s| !confirmed.contains(&s.as_str()))
        .cloned()
        .collect();
    let overdue = !pending_services.is_empty()
        && record
            .erase_time
            .is_some_and(|t| chrono::Utc::now() - t > options.erasure_due);
    pb::ErasureStatus {
        contact: record.contact,
        erase_time: record.erase_time.map(to_timestamp),
        confirmations: record
            .confirmations
            .into_iter()
            .map(|(service, time, count)| pb::ErasureConfirmation {
                service,
                confirm_time: Some(to_timestamp(time)),
                erased_resources: count,
            })
            .collect(),
        complete: pending_services.is_empty() && record.erase_time.is_some(),
        pending_services,
        overdue,
    }
}
