//! `crmctl person export|erase`: data-subject requests (GDPR articles 15 and
//! 17) for one contact, through the contacts service.

use std::path::Path;

use anyhow::Context;
use crm_proto::contacts::{
    EraseContactRequest, ExportContactDataRequest, contacts_service_client::ContactsServiceClient,
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
