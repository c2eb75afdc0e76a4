//! The streaming methods. ImportContacts reads its request stream in one task
//! and commits in another, with a bounded queue of rows between them: while a
//! batch commits, the next rows are still read off the connection, so a
//! client that sends one small HTTP/2 frame per row (grpcio does) never fills
//! the server's buffer of unread frames (hyper closes a connection whose
//! unread small frames exceed its budget). Each batch's results stream back
//! once it is durable, so memory stays flat however many rows arrive and every
//! reported CREATED row survives a crash. ExportContacts pages through the
//! table by id.

use std::time::Duration;

use crm_proto::contacts as pb;
use crm_shared::{db::Tenant, error::ApiError};
use sea_orm::Condition;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::Instrument;

use super::BoxStream;
use super::convert::{contact_draft, contact_message};
use crate::store::{ImportOutcome, ImportRow, Store};

/// Rows per transaction.
const BATCH_ROWS: usize = 500;
/// Rows read ahead of the writer: a few batches, so reading goes on while
/// one commits, and memory stays bounded when the database is the slower side.
const READ_AHEAD_ROWS: usize = 4 * BATCH_ROWS;
/// A batch is committed early when the client pauses this long, so a slow
/// or interactive client still sees results.
const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// Contacts per export message.
const EXPORT_CHUNK: u64 = 500;

type Results = mpsc::Sender<Result<pb::ImportContactsResponse, Status>>;

/// What the reader hands the writer.
enum Incoming {
    /// The next row, checked.
    Row(ImportRow),
    /// The stream failed (a row that does not decode, or the client reset it).
    Failed(Status),
}

fn validate_row(request: pb::ImportContactsRequest) -> ImportRow {
    let checked = request
        .contact
        .ok_or_else(|| ApiError::invalid("contact", "required"))
        .and_then(|contact| contact_draft(contact, "contact"))
        .and_then(|draft| draft.normalize("contact"));
    match checked {
        Ok(draft) => ImportRow::Valid(Box::new(draft)),
        Err(error) => ImportRow::Invalid(
            error
                .to_string()
                .trim_start_matches("invalid argument: ")
                .to_owned(),
        ),
    }
}

fn result_message(row: i64, outcome: ImportOutcome) -> pb::ImportRowResult {
    let (outcome, contact, error) = match outcome {
        ImportOutcome::Created(name) => (pb::ImportOutcome::Created, name, String::new()),
        ImportOutcome::Duplicate(name) => (pb::ImportOutcome::Duplicate, name, String::new()),
        ImportOutcome::Failed(error) => (pb::ImportOutcome::Failed, String::new(), error),
    };
    pb::ImportRowResult {
        row,
        outcome: outcome as i32,
        contact,
        error,
    }
}

/// Runs an import over the request stream.
pub fn run(
    store: Store,
    tenant: Tenant,
    actor: String,
    requests: Streaming<pb::ImportContactsRequest>,
) -> BoxStream<pb::ImportContactsResponse> {
    let (results, receiver) = mpsc::channel(4);
    let (rows, incoming) = mpsc::channel(READ_AHEAD_ROWS);
    tokio::spawn(read_rows(requests, rows));
    // The writes belong to this call: the audit log names it, the events carry its trace.
    let writes = write_rows(store, tenant, actor, incoming, results).in_current_span();
    tokio::spawn(crm_shared::audit::Call::current().scope(writes));
    Box::pin(ReceiverStream::new(receiver))
}

/// Reads and checks rows until the stream ends, fails, or the writer stops.
async fn read_rows(
    mut requests: Streaming<pb::ImportContactsRequest>,
    rows: mpsc::Sender<Incoming>,
) {
    loop {
        let incoming = match requests.message().await {
            Ok(Some(request)) => Incoming::Row(validate_row(request)),
            Ok(None) => return,
            Err(status) => Incoming::Failed(status),
        };
        let failed = matches!(incoming, Incoming::Failed(_));
        if rows.send(incoming).await.is_err() || failed {
            return;
        }
    }
}

/// Commits rows in batches of [`BATCH_ROWS`] (or what arrived before the
/// client paused) and reports each batch; a failed stream commits the rows
/// before the failure, then reports it.
async fn write_rows(
    store: Store,
    tenant: Tenant,
    actor: String,
    mut incoming: mpsc::Receiver<Incoming>,
    results: Results,
) {
    let mut next_row: i64 = 1;
    let mut batch: Vec<ImportRow> = Vec::with_capacity(BATCH_ROWS);
    loop {
        let received = if batch.is_empty() {
            Ok(incoming.recv().await)
        } else {
            tokio::time::timeout(IDLE_FLUSH, incoming.recv()).await
        };
        // What ends after this batch: nothing, the stream, or the stream with an error.
        let (finished, failure) = match received {
            Ok(Some(Incoming::Row(row))) => {
                batch.push(row);
                if batch.len() < BATCH_ROWS {
                    continue;
                }
                (false, None)
            }
            Ok(Some(Incoming::Failed(status))) => (true, Some(status)),
            Ok(None) => (true, None),
            Err(_idle) => (false, None),
        };
        if !batch.is_empty()
            && !flush(&store, &tenant, &actor, &mut batch, &mut next_row, &results).await
        {
            return;
        }
        if let Some(status) = failure {
            let _ = results.send(Err(status)).await;
        }
        if finished {
            return;
        }
    }
}

/// Commits a batch and sends its results; false when the import must stop.
async fn flush(
    store: &Store,
    tenant: &Tenant,
    actor: &str,
    batch: &mut Vec<ImportRow>,
    next_row: &mut i64,
    results: &Results,
) -> bool {
    let rows = std::mem::take(batch);
    match store.import_batch(tenant, actor, rows).await {
        Ok(outcomes) => {
            let rows = outcomes
                .into_iter()
                .map(|outcome| {
                    let row = *next_row;
                    *next_row += 1;
                    result_message(row, outcome)
                })
                .collect();
            results
                .send(Ok(pb::ImportContactsResponse { results: rows }))
                .await
                .is_ok()
        }
        Err(error) => {
            let _ = results.send(Err(error.into())).await;
            false
        }
    }
}

/// Streams every matching contact in chunks.
pub fn export(
    store: Store,
    tenant: Tenant,
    condition: Condition,
    show_deleted: bool,
) -> BoxStream<pb::ExportContactsResponse> {
    let (sender, receiver) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut after = None;
        loop {
            let page = store
                .export_page(
                    &tenant,
                    condition.clone(),
                    show_deleted,
                    after.clone(),
                    EXPORT_CHUNK,
                )
                .await;
            let contacts = match page {
                Ok(contacts) => contacts,
                Err(error) => {
                    let _ = sender.send(Err(Status::from(error))).await;
                    return;
                }
            };
            let Some(last) = contacts.last() else { return };
            after = Some(last.id.to_string());
            let done = (contacts.len() as u64) < EXPORT_CHUNK;
            let message = pb::ExportContactsResponse {
                contacts: contacts.iter().map(contact_message).collect(),
            };
            if sender.send(Ok(message)).await.is_err() || done {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(receiver))
}
