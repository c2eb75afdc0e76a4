//! `crmctl`: the operator's command line for the CRM suite. Every command
//! talks to the gateway with the generated clients, as any client would.
//!
//! Reads top-down: the command line ([`Cli`]), where to connect and with what
//! token (`connect`), then one module per command. Failures end the process
//! with an exit code a script can rely on (`exit`).

mod connect;
mod events;
mod exit;
mod export;
mod health;
mod import;
mod person;
mod record;
mod table;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::exit::ExitCode;

/// The CRM suite's command line, for operators. Talks to the gateway.
///
/// Settings come from flags, then CRMCTL_* environment variables, then the
/// profile in the config file (~/.config/crmctl/config.toml or $CRMCTL_CONFIG),
/// then defaults. Exit codes: 0 done; 1 failed; 2 bad usage or input file;
/// 3 done in part (rows rejected, a service not serving, an erasure not yet
/// confirmed everywhere); 4 the gateway or a
/// service is unavailable; 5 not authenticated or not allowed; 6 not found;
/// 7 the server refused the request as invalid.
#[derive(Debug, Parser)]
#[command(name = "crmctl", version = crm_shared::version(), about, long_about)]
pub struct Cli {
    #[command(flatten)]
    connection: connect::Options,

    /// How to print results: text for people, json (one object per line) for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text, env = "CRMCTL_OUTPUT")]
    output: Output,

    #[command(subcommand)]
    command: Command,
}

/// Text for people or JSON Lines for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The gateway and every service behind it: serving or not, replicas and versions.
    Health,
    /// Prints a development token (HS256), for a suite started with `make run`.
    Token(token::Args),
    /// Imports records.
    Import {
        #[command(subcommand)]
        what: ImportCommand,
    },
    /// Exports records as a stream.
    Export {
        #[command(subcommand)]
        what: ExportCommand,
    },
    /// A service's event feed.
    Events {
        #[command(subcommand)]
        what: EventsCommand,
    },
    /// Data-subject requests for one person (a contact).
    Person {
        #[command(subcommand)]
        what: PersonCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Imports contacts from a CSV or JSON Lines file, resumably.
    Contacts(import::Args),
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// Exports contacts as CSV or JSON Lines.
    Contacts(export::Args),
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Prints a service's events as they commit (admin or manager).
    Tail(events::Args),
}

#[derive(Debug, Subcommand)]
enum PersonCommand {
    /// Everything the suite holds on a contact, as JSON (admin).
    Export {
        /// The contact, "contacts/{id}".
        contact: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erases a contact's personal data everywhere (admin). Cannot be undone.
    Erase {
        /// The contact, "contacts/{id}".
        contact: String,
        /// Confirms the erasure; without it nothing is done.
        #[arg(long)]
        yes: bool,
    },
    /// Which services have confirmed a contact's erasure, from the reporting
    /// service (admin). Exits 3 while some have not.
    Status {
        /// The erased contact, "contacts/{id}".
        contact: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code.into(),
        Err(error) => {
            let code = ExitCode::of(&error);
            eprintln!("crmctl: {}", exit::describe(&error));
            code.into()
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every command but `token` talks to the gateway.
    let target = || connect::Target::resolve(&cli.connection);
    match &cli.command {
        Command::Token(args) => token::run(args),
        Command::Health => health::run(&target()?, cli.output).await,
        Command::Import {
            what: ImportCommand::Contacts(args),
        } => import::run(&target()?, args).await,
        Command::Export {
            what: ExportCommand::Contacts(args),
        } => export::run(&target()?, args).await,
        Command::Events {
            what: EventsCommand::Tail(args),
        } => events::tail(&target()?, args, cli.output).await,
        Command::Person {
            what: PersonCommand::Export { contact, out },
        } => person::export(&target()?, contact, out.as_deref()).await,
        Command::Person {
            what: PersonCommand::Erase { contact, yes },
        } => person::erase(&target()?, contact, *yes, cli.output).await,
        Command::Person {
            what: PersonCommand::Status { contact },
        } => person::status(&target()?, contact, cli.output).await,
    }
}
