//! `crmctl person export|erase|status`: data-subject requests (GDPR articles
//! 15 and 17) for one contact, through the contacts service, and where an
//! erasure stands across the suite, from the reporting service.

use std::path::Path;

use anyhow::Context;
use crm_proto::{
    contacts::{
        EraseContactRequest, ExportContactDataRequest,
        contacts_service_client::ContactsServiceClient,
    },
    reporting::{GetErasureStatusRequest, reporting_service_client::ReportingServiceClient},
};
use serde_json::json;

use crate::{
    Output,
    connect::Target,
    exit::{ExitCode, usage},
};

/// Writes everything held on the contact, as the service's JSON document.
pub async fn export(
    target: &Target,
    contact: &str,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut contacts = ContactsServiceClient::new(target.authorized().await?);
    let request = ExportContactDataRequest {
        name: contact.to_owned(),
    };
    let document = contacts
        .export_contact_data(target.unary(request))
        .await
        .with_context(|| format!("exporting {contact}"))?
        .into_inner()
        .json;
    match out {
        Some(path) => {
            std::fs::write(path, document.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), document.len());
        }
        None => println!("{document}"),
    }
    Ok(ExitCode::Done)
}

/// Erases the contact, once confirmed with `--yes`.
pub async fn erase(
    target: &Target,
    contact: &str,
    confirmed: bool,
    output: Output,
) -> anyhow::Result<ExitCode> {
    if !confirmed {
        usage!("erasing {contact} cannot be undone: add --yes to confirm");
    }
    let mut contacts = ContactsServiceClient::new(target.authorized().await?);
    let request = EraseContactRequest {
        name: contact.to_owned(),
    };
    let erased = contacts
        .erase_contact(target.unary(request))
        .await
        .with_context(|| format!("erasing {contact}"))?
        .into_inner();
    match output {
        Output::Json => println!(
            "{}",
            json!({"erased": erased.name, "erased_activity_count": erased.erased_activity_count})
        ),
        Output::Text => println!(
            "erased {} and {} activities; the other services erase their copies from its event",
            erased.name, erased.erased_activity_count
        ),
    }
    Ok(ExitCode::Done)
}

/// Prints which services have confirmed the contact's erasure and which are
/// still expected; `Partly` (3) until every one has.
pub async fn status(target: &Target, contact: &str, output: Output) -> anyhow::Result<ExitCode> {
    let mut reporting = ReportingServiceClient::new(target.authorized().await?);
    let request = GetErasureStatusRequest {
        contact: contact.to_owned(),
    };
    let status = reporting
        .get_erasure_status(target.unary(request))
        .await
        .with_context(|| format!("the erasure status of {contact}"))?
        .into_inner();
    let time = |t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    match output {
        Output::Json => {
            let confirmations: Vec<_> = status
                .confirmations
                .iter()
                .map(|c| {
                    json!({
                        "service": c.service,
                        "confirm_time": time(c.confirm_time.as_ref()),
                        "erased_resources": c.erased_resources,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "contact": status.contact,
                    "erase_time": time(status.erase_time.as_ref()),
                    "confirmations": confirmations,
                    "pending_services": status.pending_services,
                    "overdue": status.overdue,
                    "complete": status.complete,
                })
            );
        }
        Output::Text => {
            let state = if status.complete {
                "complete".to_owned()
            } else {
                format!(
                    "waiting for {}{}",
                    status.pending_services.join(", "),
                    if status.overdue { " (overdue)" } else { "" }
                )
            };
            println!(
                "{} erased {}: {state}",
                status.contact,
                time(status.erase_time.as_ref())
            );
            for c in &status.confirmations {
                println!(
                    "  {:<12} confirmed {} ({} resources)",
                    c.service,
                    time(c.confirm_time.as_ref()),
                    c.erased_resources
                );
            }
        }
    }
    Ok(if status.complete {
        ExitCode::Done
    } else {
        ExitCode::Partly
    })
}
