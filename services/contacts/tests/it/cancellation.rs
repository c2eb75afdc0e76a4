//! Calls cancelled at random points: creates, updates, merges and imports,
//! many at once, each dropped by its client after a random few milliseconds
//! (or let finish). Afterwards every acknowledged write is there and whole,
//! nothing is half-written (each contact has exactly the events and keys its
//! writes made), no connection was left inside a transaction, and no
//! warning about transaction state was logged.

use std::{collections::HashMap, future::Future, pin::Pin, time::Duration};

use crm_proto::contacts::{
    Contact, CreateContactRequest, ImportContactsRequest, ImportOutcome, MergeContactsRequest,
    UpdateContactRequest,
};
use crm_testkit::{Backend, logs};
use prost_types::FieldMask;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::task::JoinSet;

use crate::support::*;

const ROUNDS: usize = 6;
const CALLS_PER_ROUND: usize = 24;
const IMPORT_ROWS: usize = 60;

/// A small xorshift generator: the seed is printed, so a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// When the client gives up: a third of the calls run to their end.
    fn patience(&mut self) -> Duration {
        match self.below(3) {
            0 => Duration::from_secs(60),
            _ => Duration::from_micros(self.below(15_000)),
        }
    }
}

/// What the service acknowledged.
#[derive(Default)]
struct Acknowledged {
    created: Vec<(String, String)>,
    /// Per contact, the rounds that set its job title, and whether the
    /// service acknowledged each.
    updated: HashMap<String, Vec<(usize, bool)>>,
    merged: Vec<(String, String)>,
    imported: Vec<String>,
}

enum Ack {
    Created(String, String),
    Updated(String, usize),
    Merged(String, String),
    Imported(Vec<String>),
    Nothing,
}

async fn cancelled_calls_on(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("cancellation test on {backend:?}: seed {seed}");
    let mut dice = Dice(seed);
    let mut admin = app.admin();
    let mut owned = Vec::new();
    for i in 0..CALLS_PER_ROUND {
        owned.push(create(&mut admin, person("Updated", &format!("U{i}"), "")).await);
    }
    let mut pairs = Vec::new();
    for i in 0..ROUNDS * CALLS_PER_ROUND {
        let survivor = create(&mut admin, person("Survivor", &format!("S{i}"), "")).await;
        let merged = create(
            &mut admin,
            person("Merged", &format!("M{i}"), &format!("m{i}@merge.example")),
        )
        .await;
        pairs.push((survivor, merged));
    }

    let mut acknowledged = Acknowledged::default();
    for round in 0..ROUNDS {
        let mut calls = JoinSet::new();
        for i in 0..CALLS_PER_ROUND {
            let client = app.admin();
            let patience = dice.patience();
            let call: Pin<Box<dyn Future<Output = Ack> + Send>> = match dice.below(4) {
                0 => Box::pin(create_call(client, format!("c{round}-{i}@create.example"))),
                1 => {
                    let attempts = acknowledged.updated.entry(owned[i].name.clone());
                    attempts.or_default().push((round, false));
                    Box::pin(update_call(client, owned[i].clone(), round))
                }
                2 => {
                    let (survivor, merged) = pairs[round * CALLS_PER_ROUND + i].clone();
                    Box::pin(merge_call(client, survivor, merged))
                }
                _ => Box::pin(import_call(client, format!("i{round}-{i}"))),
            };
            // A call dropped by its timeout resets its stream: the server
            // sees the client go away at that point.
            calls.spawn(async move {
                tokio::time::timeout(patience, call)
                    .await
                    .unwrap_or(Ack::Nothing)
            });
        }
        while let Some(ack) = calls.join_next().await {
            match ack.expect("the call task") {
                Ack::Created(name, email) => acknowledged.created.push((name, email)),
                Ack::Updated(name, round) => {
                    for attempt in acknowledged.updated.entry(name).or_default() {
                        attempt.1 |= attempt.0 == round;
                    }
                }
                Ack::Merged(survivor, merged) => acknowledged.merged.push((survivor, merged)),
                Ack::Imported(names) => acknowledged.imported.extend(names),
                Ack::Nothing => {}
            }
        }
    }

    let db = sea_orm::Database::connect(&app.db.url)
        .await
        .expect("connect");
    // Calls whose clients left still finish on their own; wait for quiet.
    let mut last = (0, 0);
    eventually("the cancelled calls have finished", async || {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = (
            count(&db, "SELECT COUNT(*) FROM contacts").await,
            count(&db, "SELECT COUNT(*) FROM outbox").await,
        );
        std::mem::replace(&mut last, now) == now
    })
    .await;

    check_acknowledged(&mut admin, &acknowledged).await;
    check_whole(&db).await;
    if backend == Backend::Postgres {
        let open = count(
            &db,
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        .await;
        assert_eq!(open, 0, "connections left inside a transaction");
    }
    let warnings = logs::warnings_containing("transaction in progress");
    assert!(
        warnings.is_empty(),
        "transaction state warnings: {warnings:#?}"
    );
    // And the service still writes.
    create(&mut admin, person("After", "Storm", "after@storm.example")).await;
    eprintln!(
        "acknowledged: {} created, {} updated, {} merged, {} imported",
        acknowledged.created.len(),
        acknowledged.updated.len(),
        acknowledged.merged.len(),
        acknowledged.imported.len()
    );
}

db_test!(
    calls_cancelled_at_random_points_leave_whole_writes,
    cancelled_calls_on
);

async fn create_call(mut client: Contacts, email: String) -> Ack {
    let contact = person("Created", "Cancelled", &email);
    match client
        .create_contact(CreateContactRequest {
            contact: Some(contact),
            request_id: request_id(),
        })
        .await
    {
        Ok(created) => Ack::Created(created.into_inner().name, email),
        Err(status) => panic!("CreateContact failed: {status:?}"),
    }
}

async fn update_call(mut client: Contacts, contact: Contact, round: usize) -> Ack {
    let name = contact.name.clone();
    let request = UpdateContactRequest {
        contact: Some(Contact {
            job_title: format!("round {round}"),
            // Last writer wins: no etag.
            etag: String::new(),
            ..contact
        }),
        update_mask: Some(FieldMask {
            paths: vec!["job_title".into()],
        }),
    };
    match client.update_contact(request).await {
        Ok(_) => Ack::Updated(name, round),
        // A cancelled update of the same contact may still be committing:
        // the loser of the two is told so and writes nothing.
        Err(status) if status.code() == tonic::Code::Aborted => Ack::Nothing,
        Err(status) => panic!("UpdateContact failed: {status:?}"),
    }
}

async fn merge_call(mut client: Contacts, survivor: Contact, merged: Contact) -> Ack {
    let request = MergeContactsRequest {
        survivor: survivor.name.clone(),
        merged: vec![merged.name.clone()],
        ..Default::default()
    };
    match client.merge_contacts(request).await {
        Ok(_) => Ack::Merged(survivor.name, merged.name),
        Err(status) => panic!("MergeContacts failed: {status:?}"),
    }
}

async fn import_call(mut client: Contacts, prefix: String) -> Ack {
    let rows: Vec<ImportContactsRequest> = (0..IMPORT_ROWS)
        .map(|row| ImportContactsRequest {
            contact: Some(person(
                "Imported",
                &prefix,
                &format!("{prefix}-{row}@import.example"),
            )),
        })
        .collect();
    let mut results = client
        .import_contacts(tokio_stream::iter(rows))
        .await
        .expect("ImportContacts")
        .into_inner();
    let mut names = Vec::new();
    while let Some(batch) = results.message().await.expect("import results") {
        for result in batch.results {
            assert_eq!(result.outcome(), ImportOutcome::Created, "{result:?}");
            names.push(result.contact);
        }
    }
    Ack::Imported(names)
}

/// Every acknowledged write is visible.
async fn check_acknowledged(admin: &mut Contacts, acknowledged: &Acknowledged) {
    for (name, email) in &acknowledged.created {
        let contact = get(admin, name).await;
        assert_eq!(contact.emails[0].address, *email);
    }
    // The stored title is the last acknowledged one, or one whose call was
    // cancelled (it may have committed after a later call's).
    for (name, attempts) in &acknowledged.updated {
        let contact = get(admin, name).await;
        let last_acknowledged = attempts.iter().filter(|a| a.1).map(|a| a.0).max();
        let allowed: Vec<String> = attempts
            .iter()
            .filter(|(round, acked)| !acked || Some(*round) == last_acknowledged)
            .map(|(round, _)| format!("round {round}"))
            .chain(last_acknowledged.is_none().then(String::new))
            .collect();
        assert!(
            allowed.contains(&contact.job_title),
            "{name}: {:?} is stored; attempts {attempts:?}",
            contact.job_title
        );
    }
    for (survivor, merged) in &acknowledged.merged {
        assert_eq!(get(admin, merged).await.merged_into, *survivor);
    }
    for name in &acknowledged.imported {
        get(admin, name).await;
    }
}

async fn get(admin: &mut Contacts, name: &str) -> Contact {
    admin
        .get_contact(crm_proto::contacts::GetContactRequest {
            name: name.to_owned(),
        })
        .await
        .must(&format!("GetContact {name}"))
}

/// Nothing is half-written: each contact's version is the number of events
/// written about it (a merge's ContactMerged rides with the survivor's
/// ContactUpdated), every created contact has its ContactCreated, every key
/// belongs to a contact and every live contact with an email has its key.
async fn check_whole(db: &DatabaseConnection) {
    let created = count(
        db,
        "SELECT COUNT(*) FROM outbox WHERE event_type LIKE '%ContactCreated'",
    )
    .await;
    let contacts = count(db, "SELECT COUNT(*) FROM contacts").await;
    assert_eq!(
        created, contacts,
        "contacts and their ContactCreated events"
    );
    let versions_off = count(
        db,
        "SELECT COUNT(*) FROM contacts c WHERE c.version <> (SELECT COUNT(*) FROM outbox o \
         WHERE o.subject = 'contacts/' || c.id AND o.event_type NOT LIKE '%ContactMerged')",
    )
    .await;
    assert_eq!(
        versions_off, 0,
        "contacts whose events do not match their version"
    );
    let orphan_keys = count(
        db,
        "SELECT COUNT(*) FROM contact_keys k \
         WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = k.contact_id)",
    )
    .await;
    assert_eq!(orphan_keys, 0, "keys of no contact");
    let keyless = count(
        db,
        "SELECT COUNT(*) FROM contacts c WHERE c.merged_into IS NULL AND c.primary_email <> '' \
         AND NOT EXISTS (SELECT 1 FROM contact_keys k WHERE k.contact_id = c.id AND k.kind = 'email')",
    )
    .await;
    assert_eq!(keyless, 0, "live contacts with an email but no email key");
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let backend: DbBackend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}
