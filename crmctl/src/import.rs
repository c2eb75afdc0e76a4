//! `crmctl import contacts FILE`: streams a CSV or JSON Lines file into
//! `ImportContacts`, shows progress, writes rejected rows to a file with
//! their reasons, and can be resumed.
//!
//! Resuming: after every committed batch the checkpoint file records how many
//! of the file's records are settled (created, duplicate or rejected). A run
//! that finds a checkpoint for the same file skips those records; a dropped
//! connection is retried the same way within one run. Rows that were in
//! flight at an interruption are sent again: the server recognises those
//! with an email as duplicates of the contacts they created.

use std::{
    collections::VecDeque,
    fs::File,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use crm_proto::contacts::{
    ImportContactsRequest, ImportOutcome, ImportRowResult,
    contacts_service_client::ContactsServiceClient,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::{
    connect::Target,
    exit::{ExitCode, usage},
    export::Format,
    record::{self, Mapping},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file: CSV with a header row, or JSON Lines of contacts (`.jsonl`).
    file: PathBuf,
    /// csv or jsonl; from the file's extension when left out.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Which column feeds which field, as field=Column (repeatable), for
    /// example --map emails="Work Email" --map custom.tier=Tier. Columns
    /// named like a field (or "First Name", "E-mail", ...) need none.
    #[arg(long = "map", value_name = "FIELD=COLUMN")]
    map: Vec<String>,
    /// Where rejected rows go, with their reasons: FILE.rejects.csv (or .jsonl) by default.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Where progress is remembered for resuming: FILE.crmctl-checkpoint by default.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Start from the first row even when a checkpoint says otherwise.
    #[arg(long)]
    restart: bool,
    /// How often a dropped connection is retried (from the checkpoint) before giving up.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Progress display: auto (a bar on a terminal, else a line every few seconds), bar, lines or none.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    Auto,
    Bar,
    Lines,
    None,
}

/// How far an import got; kept in the checkpoint file between runs.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct Tally {
    /// The file's size when the import started: a different file is not resumed.
    file_bytes: u64,
    /// Records settled, from the start of the file.
    settled: u64,
    created: u64,
    duplicates: u64,
    rejected: u64,
}

/// One record of the file, read and (if it could be) turned into a contact.
struct Record {
    /// 1-based, counting records (not the header).
    number: u64,
    /// The record as read, for the rejects file.
    original: Original,
    contact: Result<crm_proto::contacts::Contact, String>,
}

enum Original {
    Csv(Vec<String>),
    Json(String),
}

/// A record waiting for its outcome: rows sent wait for the server, rows
/// rejected here wait for the rows before them (so the tally stays in file order).
struct Pending {
    number: u64,
    original: Original,
    /// Why it was rejected here; `None` when it was sent.
    local_error: Option<String>,
}

pub async fn run(target: &Target, args: &Args) -> anyhow::Result<ExitCode> {
    let format = args.format.unwrap_or_else(|| Format::of(&args.file));
    let file_bytes = match std::fs::metadata(&args.file) {
        Ok(meta) => meta.len(),
        Err(error) => usage!("{}: {error}", args.file.display()),
    };
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".crmctl-checkpoint"));
    let rejects_path = args.rejects.clone().unwrap_or_else(|| {
        with_suffix(
            &args.file,
            match format {
                Format::Csv => ".rejects.csv",
                Format::Jsonl => ".rejects.jsonl",
            },
        )
    });
    let mut tally = match read_checkpoint(&checkpoint, file_bytes) {
        Some(tally) if !args.restart => {
            eprintln!(
                "resuming {} after record {} (checkpoint {})",
                args.file.display(),
                tally.settled,
                checkpoint.display()
            );
            tally
        }
        _ => Tally {
            file_bytes,
            ..Tally::default()
        },
    };
    let source = Source::open(&args.file, format, &args.map)?;
    if !source.ignored.is_empty() {
        eprintln!("ignoring columns: {}", source.ignored.join(", "));
    }
    let total = source.count_records()?;
    let mut rejects = Rejects::open(&rejects_path, format, &source.headers, tally.settled == 0)?;
    let progress = Display::new(args.progress, total, tally.settled);
    let started = Instant::now();
    let settled_at_start = tally.settled;
    let mut attempt = 0;
    loop {
        let outcome = stream_once(
            target,
            &source,
            &mut tally,
            &mut rejects,
            &checkpoint,
            &progress,
        )
        .await;
        match outcome {
            Ok(()) => break,
            Err(error) if attempt < args.retries && retryable(&error) => {
                attempt += 1;
                let wait = Duration::from_millis(500 * 2u64.pow(attempt.min(5)));
                progress.note(&format!(
                    "interrupted after record {} ({error:#}); retrying in {:.1}s ({attempt}/{})",
                    tally.settled,
                    wait.as_secs_f64(),
                    args.retries
                ));
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                progress.finish();
                return Err(error.context(format!(
                    "import stopped after record {}; run the same command again to resume",
                    tally.settled
                )));
            }
        }
    }
    progress.finish();
    rejects.flush()?;
    let _ = std::fs::remove_file(&checkpoint);
    let seconds = started.elapsed().as_secs_f64();
    let rate = (tally.settled - settled_at_start) as f64 / seconds.max(0.001);
    if tally.rejected == 0 {
        let _ = std::fs::remove_file(&rejects_path);
    }
    println!(
        "imported {} records from {} in {seconds:.1}s ({rate:.0} rows/s): {} created, {} duplicates, {} rejected{}",
        tally.settled,
        args.file.display(),
        tally.created,
        tally.duplicates,
        tally.rejected,
        if tally.rejected > 0 {
            format!(" (see {})", rejects_path.display())
        } else {
            String::new()
        }
    );
    Ok(if tally.rejected > 0 {
        ExitCode::Partly
    } else {
        ExitCode::Done
    })
}

/// One `ImportContacts` stream from the first unsettled record to the end.
async fn stream_once(
    target: &Target,
    source: &Source,
    tally: &mut Tally,
    rejects: &mut Rejects,
    checkpoint: &Path,
    progress: &Display,
) -> anyhow::Result<()> {
    let mut client = ContactsServiceClient::new(target.authorized().await?);
    let pending = Arc::new(Mutex::new(VecDeque::<Pending>::new()));
    let (sender, receiver) = mpsc::channel::<ImportContactsRequest>(256);
    let reader = {
        let source = source.clone_for_reading();
        let pending = pending.clone();
        let skip = tally.settled;
        tokio::task::spawn_blocking(move || source.send_from(skip, &pending, &sender))
    };
    let mut results = client
        .import_contacts(ReceiverStream::new(receiver))
        .await
        .context("starting the import")?
        .into_inner();
    let mut sent_row = 0i64;
    while let Some(batch) = results
        .message()
        .await
        .context("reading the import's results")?
    {
        for result in batch.results {
            sent_row += 1;
            if result.row != sent_row {
                anyhow::bail!(
                    "the server answered row {} where row {sent_row} was expected",
                    result.row
                );
            }
            settle_local_rejects(&pending, tally, rejects)?;
            let Some(row) = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            else {
                anyhow::bail!("the server answered a row that was never sent");
            };
            settle(row, &result, tally, rejects)?;
        }
        settle_local_rejects(&pending, tally, rejects)?;
        rejects.flush()?;
        write_checkpoint(checkpoint, tally)?;
        progress.set(tally.settled);
    }
    // The reader's own failure (an unreadable file) outranks the stream's end.
    reader.await.context("the file reader")??;
    settle_local_rejects(&pending, tally, rejects)?;
    write_checkpoint(checkpoint, tally)?;
    progress.set(tally.settled);
    Ok(())
}

/// Settles the records rejected here that no sent row precedes.
fn settle_local_rejects(
    pending: &Mutex<VecDeque<Pending>>,
    tally: &mut Tally,
    rejects: &mut Rejects,
) -> anyhow::Result<()> {
    let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
    while pending.front().is_some_and(|p| p.local_error.is_some()) {
        let Some(row) = pending.pop_front() else {
            break;
        };
        let reason = row.local_error.clone().unwrap_or_default();
        rejects.write(&row, &reason)?;
        tally.rejected += 1;
        tally.settled = row.number;
    }
    Ok(())
}

fn settle(
    row: Pending,
    result: &ImportRowResult,
    tally: &mut Tally,
    rejects: &mut Rejects,
) -> anyhow::Result<()> {
    match result.outcome() {
        ImportOutcome::Created => tally.created += 1,
        ImportOutcome::Duplicate => tally.duplicates += 1,
        ImportOutcome::Failed | ImportOutcome::Unspecified => {
            rejects.write(&row, &result.error)?;
            tally.rejected += 1;
        }
    }
    tally.settled = row.number;
    Ok(())
}

fn retryable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<tonic::Status>().is_some_and(|s| {
            matches!(
                s.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled
            )
        }) || cause.downcast_ref::<tonic::transport::Error>().is_some()
    })
}

/// The input file and how its records become contacts.
struct Source {
    path: PathBuf,
    format: Format,
    headers: Vec<String>,
    mapping: Arc<Mapping>,
    ignored: Vec<String>,
}

impl Source {
    fn open(path: &Path, format: Format, overrides: &[String]) -> anyhow::Result<Self> {
        let (headers, mapping) = match format {
            Format::Csv => {
                let mut reader = csv_reader(path)?;
                let headers: Vec<String> = match reader.headers() {
                    Ok(headers) => headers.iter().map(str::to_owned).collect(),
                    Err(error) => usage!("{}: {error}", path.display()),
                };
                let mapping = match Mapping::new(&headers, overrides) {
                    Ok(mapping) => mapping,
                    Err(error) => usage!("{error}"),
                };
                (headers, mapping)
            }
            Format::Jsonl => {
                if !overrides.is_empty() {
                    usage!("--map applies to CSV; JSON Lines hold contacts in proto JSON");
                }
                (Vec::new(), Mapping::default())
            }
        };
        Ok(Self {
            path: path.to_owned(),
            format,
            headers,
            ignored: mapping.ignored.clone(),
            mapping: Arc::new(mapping),
        })
    }

    fn clone_for_reading(&self) -> Self {
        Self {
            path: self.path.clone(),
            format: self.format,
            headers: self.headers.clone(),
            mapping: self.mapping.clone(),
            ignored: Vec::new(),
        }
    }

    /// How many records the file holds, for the progress bar's ETA.
    fn count_records(&self) -> anyhow::Result<u64> {
        let mut count = 0;
        self.for_each(0, |_| {
            count += 1;
            true
        })?;
        Ok(count)
    }

    /// Calls `each` on every record after the first `skip`, until it answers false.
    fn for_each(&self, skip: u64, mut each: impl FnMut(Record) -> bool) -> anyhow::Result<()> {
        let mut number = 0u64;
        match self.format {
            Format::Csv => {
                let mut reader = csv_reader(&self.path)?;
                let mut row = csv::StringRecord::new();
                loop {
                    match reader.read_record(&mut row) {
                        Ok(false) => return Ok(()),
                        Ok(true) => {}
                        Err(error) => {
                            usage!("{}: record {}: {error}", self.path.display(), number + 1)
                        }
                    }
                    number += 1;
                    if number <= skip {
                        continue;
                    }
                    let cells: Vec<String> = row.iter().map(str::to_owned).collect();
                    let contact = self.mapping.contact(&cells, &self.headers);
                    if !each(Record {
                        number,
                        original: Original::Csv(cells),
                        contact,
                    }) {
                        return Ok(());
                    }
                }
            }
            Format::Jsonl => {
                let file =
                    File::open(&self.path).with_context(|| self.path.display().to_string())?;
                for line in BufReader::new(file).lines() {
                    let line = line.with_context(|| self.path.display().to_string())?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    number += 1;
                    if number <= skip {
                        continue;
                    }
                    let contact = serde_json::from_str::<Value>(&line)
                        .map_err(|error| format!("not JSON: {error}"))
                        .and_then(record::contact_from_json);
                    if !each(Record {
                        number,
                        original: Original::Json(line),
                        contact,
                    }) {
                        return Ok(());
                    }
                }
                Ok(())
            }
        }
    }

    /// Reads the file (on a blocking thread) and sends each contact into the
    /// stream, noting every record as pending; stops early if the stream ends.
    fn send_from(
        &self,
        skip: u64,
        pending: &Mutex<VecDeque<Pending>>,
        sender: &mpsc::Sender<ImportContactsRequest>,
    ) -> anyhow::Result<()> {
        self.for_each(skip, |record| {
            let (request, local_error) = match record.contact {
                Ok(contact) => (
                    Some(ImportContactsRequest {
                        contact: Some(contact),
                    }),
                    None,
                ),
                Err(error) => (None, Some(error)),
            };
            pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(Pending {
                    number: record.number,
                    original: record.original,
                    local_error,
                });
            match request {
                Some(request) => sender.blocking_send(request).is_ok(),
                None => true,
            }
        })
    }
}

fn csv_reader(path: &Path) -> anyhow::Result<csv::Reader<File>> {
    match csv::ReaderBuilder::new().flexible(true).from_path(path) {
        Ok(reader) => Ok(reader),
        Err(error) => usage!("{}: {error}", path.display()),
    }
}

/// The rejects file: the original record and why it was rejected.
struct Rejects {
    path: PathBuf,
    csv: Option<csv::Writer<File>>,
    jsonl: Option<std::io::BufWriter<File>>,
}

impl Rejects {
    fn open(path: &Path, format: Format, headers: &[String], fresh: bool) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(!fresh)
            .write(true)
            .truncate(fresh)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        let mut rejects = Self {
            path: path.to_owned(),
            csv: None,
            jsonl: None,
        };
        match format {
            Format::Csv => {
                let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(file);
                if empty {
                    let header = ["row", "error"]
                        .into_iter()
                        .map(str::to_owned)
                        .chain(headers.iter().cloned());
                    writer.write_record(header.collect::<Vec<_>>())?;
                }
                rejects.csv = Some(writer);
            }
            Format::Jsonl => rejects.jsonl = Some(std::io::BufWriter::new(file)),
        }
        Ok(rejects)
    }

    fn write(&mut self, row: &Pending, reason: &str) -> anyhow::Result<()> {
        match (&row.original, &mut self.csv, &mut self.jsonl) {
            (Original::Csv(cells), Some(writer), _) => {
                let mut record = vec![row.number.to_string(), reason.to_owned()];
                record.extend(cells.iter().cloned());
                writer.write_record(record)?;
            }
            (Original::Json(line), _, Some(writer)) => {
                let original = serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|_| Value::String(line.clone()));
                writeln!(
                    writer,
                    "{}",
                    json!({"row": row.number, "error": reason, "record": original})
                )?;
            }
            _ => anyhow::bail!("a record of one format for the rejects file of another"),
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let flushed = match (&mut self.csv, &mut self.jsonl) {
            (Some(writer), _) => writer.flush(),
            (None, Some(writer)) => writer.flush(),
            (None, None) => Ok(()),
        };
        flushed.with_context(|| format!("writing {}", self.path.display()))
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn read_checkpoint(path: &Path, file_bytes: u64) -> Option<Tally> {
    let text = std::fs::read_to_string(path).ok()?;
    let tally: Tally = serde_json::from_str(&text).ok()?;
    (tally.file_bytes == file_bytes).then_some(tally)
}

/// Replaces the checkpoint atomically (write, then rename), so a kill
/// mid-write leaves the previous one.
fn write_checkpoint(path: &Path, tally: &Tally) -> anyhow::Result<()> {
    let temporary = with_suffix(path, ".tmp");
    std::fs::write(&temporary, serde_json::to_vec(tally)?)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Progress for people: a bar on a terminal, a line every few seconds elsewhere.
struct Display {
    bar: Option<ProgressBar>,
    lines: Option<Mutex<Lines>>,
}

struct Lines {
    total: u64,
    /// The position last printed, so the end is printed once.
    printed: u64,
    started: Instant,
    start_position: u64,
    last: Instant,
}

impl Display {
    fn new(mode: Progress, total: u64, position: u64) -> Self {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mode = match mode {
            Progress::Auto if terminal => Progress::Bar,
            Progress::Auto => Progress::Lines,
            other => other,
        };
        let bar = (mode == Progress::Bar).then(|| {
            let bar = ProgressBar::new(total).with_position(position);
            bar.set_style(
                // A constant template: it parses whenever it parsed once.
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {human_pos}/{human_len} rows  {per_sec}  ETA {eta}",
                )
                .expect("the template is valid"),
            );
            bar.reset_eta();
            bar
        });
        let lines = (mode == Progress::Lines).then(|| {
            let now = Instant::now();
            Mutex::new(Lines {
                total,
                printed: position,
                started: now,
                start_position: position,
                last: now,
            })
        });
        Self { bar, lines }
    }

    fn set(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
        if let Some(lines) = &self.lines {
            let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
            let due = lines.last.elapsed() >= Duration::from_secs(2) || position == lines.total;
            if due && position != lines.printed {
                lines.last = Instant::now();
                lines.printed = position;
                let seconds = lines.started.elapsed().as_secs_f64().max(0.001);
                let rate = (position - lines.start_position.min(position)) as f64 / seconds;
                let eta = if rate > 0.0 {
                    format!(
                        "{:.0}s",
                        (lines.total.saturating_sub(position)) as f64 / rate
                    )
                } else {
                    "?".into()
                };
                eprintln!(
                    "{position}/{} rows  {rate:.0} rows/s  ETA {eta}",
                    lines.total
                );
            }
        }
    }

    fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
