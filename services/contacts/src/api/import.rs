//! The streaming methods. ImportContacts commits rows in batches and streams
//! each batch's results back once it is durable, so memory stays flat however
//! many rows arrive and every reported CREATED row survives a crash.
//! ExportContacts pages through the table by id.

use std::time::Duration;

use crm_proto::contacts as pb;
use crm_shared::{db::Tenant, error::ApiError};
use sea_orm::Condition;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::BoxStream;
use super::convert::{contact_draft, contact_message};
use crate::store::{ImportOutcome, ImportRow, Store};

/// Rows per transaction.
const BATCH_ROWS: usize = 500;
/// A batch is committed early when the client pauses this long, so a slow
/// or interactive client still sees results.
const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// Batches between statistics refreshes during an import (and after the first).
const BATCHES_PER_ANALYZE: u64 = 40;
/// Contacts per export message.
const EXPORT_CHUNK: u64 = 500;

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
    mut requests: Streaming<pb::ImportContactsRequest>,
) -> BoxStream<pb::ImportContactsResponse> {
    let (sender, receiver) = mpsc::channel::<Result<pb::ImportContactsResponse, Status>>(4);
    tokio::spawn(async move {
        let mut next_row: i64 = 1;
        let mut batch: Vec<ImportRow> = Vec::with_capacity(BATCH_ROWS);
        loop {
            let received = if batch.is_empty() {
                Ok(requests.message().await)
            } else {
                tokio::time::timeout(IDLE_FLUSH, requests.message()).await
            };
            let finished = match received {
                Ok(Ok(Some(request))) => {
                    batch.push(validate_row(request));
                    false
                }
                Ok(Ok(None)) => true,
                Ok(Err(status)) => {
                    // A row that does not decode ends the import: commit what
                    // came before it, then report the error.
                    if !batch.is_empty()
                        && !flush(&store, &tenant, &actor, &mut batch, &mut next_row, &sender).await
                    {
                        return;
                    }
                    let _ = sender.send(Err(status)).await;
                    return;
                }
                Err(_idle) => {
                    if !flush(&store, &tenant, &actor, &mut batch, &mut next_row, &sender).await {
                        return;
                    }
                    continue;
                }
            };
            if (finished || batch.len() >= BATCH_ROWS)
                && !batch.is_empty()
                && !flush(&store, &tenant, &actor, &mut batch, &mut next_row, &sender).await
            {
                return;
            }
            if finished {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(receiver))
}

/// Commits a batch and sends its results; false when the import must stop.
async fn flush(
    store: &Store,
    tenant: &Tenant,
    actor: &str,
    batch: &mut Vec<ImportRow>,
    next_row: &mut i64,
    sender: &mpsc::Sender<Result<pb::ImportContactsResponse, Status>>,
) -> bool {
    let rows = std::mem::take(batch);
    match store.import_batch(tenant, actor, rows).await {
        Ok(outcomes) => {
            let batches = (*next_row as u64 - 1) / BATCH_ROWS as u64;
            if batches.is_multiple_of(BATCHES_PER_ANALYZE)
                && let Err(error) = store.refresh_statistics().await
            {
                tracing::warn!(%error, "could not refresh statistics during an import");
            }
            let results = outcomes
                .into_iter()
                .map(|outcome| {
                    let row = *next_row;
                    *next_row += 1;
                    result_message(row, outcome)
                })
                .collect();
            sender
                .send(Ok(pb::ImportContactsResponse { results }))
                .await
                .is_ok()
        }
        Err(error) => {
            let _ = sender.send(Err(error.into())).await;
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
