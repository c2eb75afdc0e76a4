//! `crmctl export contacts`: the tenant's contacts, streamed to CSV or JSON
//! Lines as they arrive (memory stays flat however many there are).

use std::{
    io::{BufWriter, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context;
use crm_proto::contacts::{ExportContactsRequest, contacts_service_client::ContactsServiceClient};

use crate::{connect::Target, exit::ExitCode, record};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The same filter as ListContacts, for example `lifecycle_stage = "CUSTOMER"`.
    #[arg(long, default_value = "")]
    filter: String,
    /// Include deleted contacts.
    #[arg(long)]
    show_deleted: bool,
    /// csv or jsonl (proto JSON, one contact a line); from --out's extension when left out.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Where the rows go.
enum Sink {
    Csv(Box<csv::Writer<BufWriter<Box<dyn Write>>>>),
    Jsonl(BufWriter<Box<dyn Write>>),
}

/// How contacts are written (and read by `import contacts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// From a file's extension: `.jsonl`/`.ndjson`/`.json` are JSON Lines, anything else CSV.
    pub fn of(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson" | "json") => Self::Jsonl,
            _ => Self::Csv,
        }
    }
}

pub async fn run(target: &Target, args: &Args) -> anyhow::Result<ExitCode> {
    let format = args
        .format
        .or(args.out.as_deref().map(Format::of))
        .unwrap_or(Format::Csv);
    // The stream first: a refused request leaves no file and no header behind.
    let mut contacts = ContactsServiceClient::new(target.authorized().await?);
    let request = ExportContactsRequest {
        filter: args.filter.clone(),
        show_deleted: args.show_deleted,
    };
    let mut chunks = contacts
        .export_contacts(request)
        .await
        .context("starting the export")?
        .into_inner();
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let out = BufWriter::new(sink);
    let mut sink = match format {
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(record::COLUMNS)?;
            Sink::Csv(Box::new(writer))
        }
        Format::Jsonl => Sink::Jsonl(out),
    };
    let started = Instant::now();
    let mut count = 0u64;
    while let Some(chunk) = chunks.message().await.context("reading the export")? {
        for contact in &chunk.contacts {
            match &mut sink {
                Sink::Csv(writer) => writer.write_record(record::row(contact))?,
                Sink::Jsonl(out) => writeln!(out, "{}", crm_proto::json::to_json(contact))?,
            }
            count += 1;
        }
    }
    match sink {
        Sink::Csv(mut writer) => writer.flush()?,
        Sink::Jsonl(mut out) => out.flush()?,
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("exported {count} contacts in {seconds:.1}s");
    Ok(ExitCode::Done)
}
