//! Prints a signed development token (HS256) on its last line:
//! `crm-token <tenant> <roles,comma,separated> <subject> [ttl-hours]`.
//! The secret is `CRM_AUTH__HS256_SECRET`, or the file `data/dev-secret`
//! that `make run` creates.

use std::time::Duration;

use anyhow::{Context, bail};
use crm_shared::auth::{Role, sign_hs256};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tenant, roles, subject, rest @ ..] = args.as_slice() else {
        bail!("usage: crm-token <tenant> <roles> <subject> [ttl-hours]");
    };
    let hours: u64 = rest
        .first()
        .map(|h| h.parse())
        .transpose()
        .context("ttl-hours")?
        .unwrap_or(12);
    let roles = roles
        .split(',')
        .map(|role| {
            serde_json::from_value::<Role>(serde_json::Value::String(role.trim().to_owned()))
        })
        .collect::<Result<Vec<_>, _>>()
        .context("roles are admin, manager, sales, marketing, support, viewer or service")?;
    let secret = match std::env::var("CRM_AUTH__HS256_SECRET") {
        Ok(secret) if !secret.is_empty() => secret,
        _ => std::fs::read_to_string("data/dev-secret")
            .context("no CRM_AUTH__HS256_SECRET and no data/dev-secret (run `make run` once)")?
            .trim()
            .to_owned(),
    };
    let token = sign_hs256(
        &secret,
        tenant,
        subject,
        &roles,
        Duration::from_secs(hours * 3600),
    )?;
    println!("{token}");
    Ok(())
}
