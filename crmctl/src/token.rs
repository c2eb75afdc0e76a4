//! `crmctl token`: a development token, signed with the HS256 secret that
//! `make run` keeps in `data/dev-secret` (or `CRM_AUTH__HS256_SECRET`).
//! Production tokens come from the identity provider, never from here.

use std::{path::PathBuf, time::Duration};

use crm_shared::auth::{Role, sign_hs256};

use crate::exit::{ExitCode, usage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tenant the token is for.
    #[arg(long, default_value = "acme")]
    tenant: String,
    /// Comma-separated roles: admin, manager, sales, marketing, support, viewer.
    #[arg(long, default_value = "admin", value_delimiter = ',')]
    roles: Vec<String>,
    /// Who the token says is calling (the audit log's actor).
    #[arg(long, default_value = "dev")]
    subject: String,
    /// Hours until it expires.
    #[arg(long, default_value_t = 12)]
    ttl_hours: u64,
    /// The signing secret.
    #[arg(long, env = "CRM_AUTH__HS256_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A file holding the signing secret, when --secret is not given.
    #[arg(long, default_value = "data/dev-secret")]
    secret_file: PathBuf,
}

/// Prints the token on its own line.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let roles = args
        .roles
        .iter()
        .map(|role| role.parse::<Role>())
        .collect::<Result<Vec<_>, _>>();
    let roles = match roles {
        Ok(roles) if !roles.is_empty() => roles,
        Ok(_) => usage!("--roles: name at least one role"),
        Err(error) => usage!("--roles: {error}"),
    };
    let secret = match &args.secret {
        Some(secret) if !secret.is_empty() => secret.clone(),
        _ => match std::fs::read_to_string(&args.secret_file) {
            Ok(secret) => secret.trim().to_owned(),
            Err(error) => usage!(
                "no --secret or CRM_AUTH__HS256_SECRET, and {}: {error} (`make run` creates it)",
                args.secret_file.display()
            ),
        },
    };
    let ttl = Duration::from_secs(args.ttl_hours.max(1) * 3600);
    let token = sign_hs256(&secret, &args.tenant, &args.subject, &roles, ttl)?;
    println!("{token}");
    Ok(ExitCode::Done)
}
