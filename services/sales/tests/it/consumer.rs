//! The shared feed consumer, as sales uses it: one reader among replicas,
//! each event applied once, a kill of the reader taken over, poison events
//! parked and retried, and an erasure that leaves no copy of the person.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crm_proto::{
    contacts::{
        Contact, CreateContactRequest, EmailAddress, EraseContactRequest, MergeContactsRequest,
        PhoneNumber,
    },
    events::{ErasureCompleted, ListParkedEventsRequest, RetryParkedEventRequest},
    sales::{
        ConvertLeadRequest, CreateLeadRequest, CreateOpportunityRequest, GetLeadRequest,
        GetOpportunityRequest, Lead, Opportunity, UpdateOpportunityRequest,
        sales_service_client::SalesServiceClient,
    },
};
use crm_shared::outbox::{self, NewEvent};
use crm_testkit::Backend;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tonic::Code;

use crate::support::*;

async fn contact(contacts: &mut Contacts, given: &str, email: &str, phone: &str) -> String {
    contacts
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                given_name: given.into(),
                family_name: "Test".into(),
                emails: vec![EmailAddress {
                    address: email.into(),
                    ..Default::default()
                }],
                phones: if phone.is_empty() {
                    vec![]
                } else {
                    vec![PhoneNumber {
                        number: phone.into(),
                        ..Default::default()
                    }]
                },
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateContact")
        .name
}

async fn deal(sales: &mut Sales, contact: &str) -> Opportunity {
    sales
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: format!("Deal of {contact}"),
                contact: contact.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateOpportunity")
}

async fn merge(contacts: &mut Contacts, survivor: &str, merged: &str) {
    contacts
        .merge_contacts(MergeContactsRequest {
            survivor: survivor.into(),
            merged: vec![merged.into()],
            etag: String::new(),
        })
        .await
        .must("MergeContacts");
}

async fn opportunity(sales: &mut Sales, name: &str) -> Opportunity {
    sales
        .get_opportunity(GetOpportunityRequest { name: name.into() })
        .await
        .must("GetOpportunity")
}

async fn cursor(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT sequence FROM consumer_cursors WHERE consumer = 'contacts'",
        ))
        .await
        .expect("the cursor query");
    row.map_or(0, |row| {
        row.try_get::<i64>("", "sequence").expect("a sequence")
    })
}

async fn lease_holder(db: &DatabaseConnection) -> String {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT holder FROM consumer_leases WHERE consumer = 'contacts'",
        ))
        .await
        .expect("the lease query");
    row.map(|row| row.try_get::<String>("", "holder").expect("a holder"))
        .unwrap_or_default()
}

db_test!(
    two_replicas_apply_each_merge_once_and_survive_a_kill,
    replicas_on
);
async fn replicas_on(backend: Backend) {
    const MERGES: usize = 200;
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    let mut second = suite.sales_replica().await;
    let first_port = suite.sales_process().addr.port();
    let second_port = second.addr.port();
    let sales_db = Database::connect(&suite.sales_db.url)
        .await
        .expect("sales db");
    let mut contacts = suite.contacts(TENANT, ADMIN);
    let mut sales = suite.sales(TENANT, ADMIN);
    let mut pairs = Vec::new();
    for i in 0..MERGES {
        let survivor = contact(
            &mut contacts,
            &format!("S{i}"),
            &format!("s{i}@x.example"),
            "",
        )
        .await;
        let merged = contact(
            &mut contacts,
            &format!("M{i}"),
            &format!("m{i}@x.example"),
            "",
        )
        .await;
        let deal = deal(&mut sales, &merged).await;
        pairs.push((survivor, merged, deal.name));
    }
    eventually("one replica holds the lease", async || {
        !lease_holder(&sales_db).await.is_empty()
    })
    .await;

    // Watch the stored cursor for the whole run: it must never go back.
    let stop_watching = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let url = suite.sales_db.url.clone();
        let stop = stop_watching.clone();
        async move {
            let db = Database::connect(&url).await.expect("sales db");
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                let now = cursor(&db).await;
                assert!(now >= last, "the cursor moved back from {last} to {now}");
                last = now;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    });

    for (survivor, merged, _) in &pairs[..MERGES / 2] {
        merge(&mut contacts, survivor, merged).await;
    }
    // Kill whichever replica holds the lease, mid-stream.
    let holder = lease_holder(&sales_db).await;
    let killed_first = holder.ends_with(&format!("-{first_port}"));
    assert!(
        killed_first || holder.ends_with(&format!("-{second_port}")),
        "the lease holder {holder} is neither replica"
    );
    if killed_first {
        suite.sales_process().kill();
    } else {
        second.kill();
    }
    for (survivor, merged, _) in &pairs[MERGES / 2..] {
        merge(&mut contacts, survivor, merged).await;
    }
    let survivor_port = if killed_first {
        second_port
    } else {
        first_port
    };
    eventually_within(10, "the other replica takes the lease over", async || {
        lease_holder(&sales_db)
            .await
            .ends_with(&format!("-{survivor_port}"))
    })
    .await;

    let mut sales = if killed_first {
        SalesServiceClient::with_interceptor(second.channel(), bearer_for(TENANT, ADMIN))
    } else {
        suite.sales(TENANT, ADMIN)
    };
    eventually_within(30, "every merge has reached sales", async || {
        let (survivor, _, deal) = &pairs[MERGES - 1];
        opportunity(&mut sales, deal).await.contact == *survivor
    })
    .await;
    stop_watching.store(true, Ordering::Relaxed);
    watcher.await.expect("the cursor never moved back");

    for (survivor, _, deal) in &pairs {
        let o = opportunity(&mut sales, deal).await;
        assert_eq!(&o.contact, survivor, "{deal} follows its merge");
        assert_eq!(o.etag, "\"2\"", "{deal} was updated exactly once");
    }
    let events = all_events(if killed_first {
        second.addr
    } else {
        suite.sales_process().addr
    })
    .await;
    let mut updates: HashMap<&str, usize> = HashMap::new();
    for event in &events {
        if event.r#type == "crm.sales.v1.OpportunityUpdated" {
            *updates.entry(event.subject.as_str()).or_default() += 1;
        }
    }
    assert_eq!(
        updates.len(),
        MERGES,
        "one OpportunityUpdated per merged deal"
    );
    assert!(
        updates.values().all(|n| *n == 1),
        "an OpportunityUpdated was written twice: {:?}",
        updates.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
}

/// Makes every update of an opportunity moving to `contact` fail, as a
/// fault in sales' own database would.
async fn block_updates_to(db: &DatabaseConnection, contact: &str) {
    let statements: Vec<String> = match db.get_database_backend() {
        DbBackend::Postgres => vec![
            "CREATE FUNCTION block_test() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'blocked by the test'; END $$ LANGUAGE plpgsql".into(),
            format!("CREATE TRIGGER block_test BEFORE UPDATE ON opportunities FOR EACH ROW WHEN (NEW.contact = '{contact}') EXECUTE FUNCTION block_test()"),
        ],
        _ => vec![format!(
            "CREATE TRIGGER block_test BEFORE UPDATE ON opportunities WHEN NEW.contact = '{contact}' BEGIN SELECT RAISE(ABORT, 'blocked by the test'); END"
        )],
    };
    for sql in statements {
        db.execute_unprepared(&sql).await.expect("the trigger");
    }
}

db_test!(
    a_poison_event_is_parked_and_applied_once_on_retry,
    poison_on
);
async fn poison_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    let sales_db = Database::connect(&suite.sales_db.url)
        .await
        .expect("sales db");
    let contacts_db = Database::connect(&suite.contacts_db.url)
        .await
        .expect("contacts db");
    let mut contacts = suite.contacts(TENANT, ADMIN);
    let mut sales = suite.sales(TENANT, ADMIN);
    let blocked_survivor = contact(&mut contacts, "S1", "s1@x.example", "").await;
    let blocked_merged = contact(&mut contacts, "M1", "m1@x.example", "").await;
    let free_survivor = contact(&mut contacts, "S2", "s2@x.example", "").await;
    let free_merged = contact(&mut contacts, "M2", "m2@x.example", "").await;
    let blocked_deal = deal(&mut sales, &blocked_merged).await.name;
    let free_deal = deal(&mut sales, &free_merged).await.name;
    block_updates_to(&sales_db, &blocked_survivor).await;

    // An event whose payload does not decode, straight into contacts' outbox.
    outbox::append(
        &contacts_db,
        &crm_shared::db::Tenant::new(TENANT),
        "crm.contacts.v1",
        vec![NewEvent {
            name: "ContactMerged",
            subject: free_survivor.clone(),
            payload: prost_types::Any {
                type_url: "type.googleapis.com/crm.contacts.v1.ContactMerged".into(),
                value: vec![0xff, 0xff, 0xff],
            },
            actor: "test".into(),
        }],
    )
    .await
    .expect("a garbage event");
    merge(&mut contacts, &blocked_survivor, &blocked_merged).await;
    merge(&mut contacts, &free_survivor, &free_merged).await;

    eventually("events after the poison ones still apply", async || {
        opportunity(&mut sales, &free_deal).await.contact == free_survivor
    })
    .await;
    assert_eq!(
        opportunity(&mut sales, &blocked_deal).await.contact,
        blocked_merged
    );
    let sales_addr = suite.sales_process().addr;
    let mut admin = Suite::consumer_admin(sales_addr, TENANT, ADMIN);
    let parked = admin
        .list_parked_events(ListParkedEventsRequest {
            parent: "consumers/contacts".into(),
            ..Default::default()
        })
        .await
        .must("ListParkedEvents")
        .parked_events;
    assert_eq!(
        parked.len(),
        2,
        "the undecodable and the failing event: {parked:?}"
    );
    let undecodable = &parked[0];
    assert!(
        undecodable.error.contains("undecodable"),
        "{}",
        undecodable.error
    );
    assert_eq!(undecodable.attempts, 1, "a decode error is not retried");
    let failing = &parked[1];
    assert!(
        failing.error.contains("internal") || failing.error.contains("blocked"),
        "{}",
        failing.error
    );
    assert_eq!(failing.attempts, crm_shared::consumer::ATTEMPTS);

    // Another tenant's admin sees none of them.
    let mut other = Suite::consumer_admin(sales_addr, OTHER_TENANT, ADMIN);
    let theirs = other
        .list_parked_events(ListParkedEventsRequest::default())
        .await
        .must("ListParkedEvents as another tenant");
    assert!(theirs.parked_events.is_empty());

    // While the cause remains, a retry fails and the event stays parked.
    admin
        .retry_parked_event(RetryParkedEventRequest {
            name: failing.name.clone(),
        })
        .await
        .must_fail_with(Code::FailedPrecondition, "retry while still blocked");
    let drop = match backend {
        Backend::Postgres => "DROP TRIGGER block_test ON opportunities",
        Backend::Sqlite => "DROP TRIGGER block_test",
    };
    sales_db
        .execute_unprepared(drop)
        .await
        .expect("dropping the trigger");
    admin
        .retry_parked_event(RetryParkedEventRequest {
            name: failing.name.clone(),
        })
        .await
        .must("retry once fixed");
    admin
        .retry_parked_event(RetryParkedEventRequest {
            name: failing.name.clone(),
        })
        .await
        .must_fail_with(Code::NotFound, "a second retry");
    let o = opportunity(&mut sales, &blocked_deal).await;
    assert_eq!(o.contact, blocked_survivor);
    assert_eq!(o.etag, "\"2\"", "applied exactly once");
    let updates = suite
        .sales_events()
        .await
        .into_iter()
        .filter(|e| e.subject == blocked_deal && e.r#type == "crm.sales.v1.OpportunityUpdated")
        .count();
    assert_eq!(updates, 1);
    let left = admin
        .list_parked_events(ListParkedEventsRequest::default())
        .await
        .must("ListParkedEvents")
        .parked_events;
    assert_eq!(left.len(), 1, "only the undecodable one is left");
}

async fn lead(sales: &mut Sales, given: &str, email: &str, phone: &str) -> Lead {
    sales
        .create_lead(CreateLeadRequest {
            lead: Some(Lead {
                given_name: given.into(),
                family_name: "Person".into(),
                email: email.into(),
                phone: phone.into(),
                company_name: "Acme".into(),
                source: crm_proto::sales::LeadSource::WebForm as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .must("CreateLead")
}

db_test!(erasing_a_merge_chain_leaves_no_copy_in_sales, erasure_on);
async fn erasure_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let mut contacts = suite.contacts(TENANT, ADMIN);
    let mut sales = suite.sales(TENANT, ADMIN);
    let a = contact(&mut contacts, "Alpha", "alpha@chain.example", "").await;
    let b = contact(&mut contacts, "Bravo", "bravo@chain.example", "").await;
    let c = contact(
        &mut contacts,
        "Charlie",
        "charlie@chain.example",
        "+1 555 010 7777",
    )
    .await;
    // Copies of the person held by address and number (both converted below).
    let by_email = lead(&mut sales, "Alphonse", "ALPHA@chain.example", "").await;
    let by_phone = lead(&mut sales, "Charles", "", "+15550107777").await;
    let stranger = lead(&mut sales, "Delta", "delta@else.example", "").await;
    // Converted into Alpha (the same address): its deal is titled after
    // the person ("Alphonse Person deal") until the erasure.
    let converted = sales
        .convert_lead(ConvertLeadRequest {
            name: by_email.name.clone(),
            create_opportunity: true,
            amount: Some(crm_proto::common::Money {
                currency_code: "EUR".into(),
                units: 900,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .must("ConvertLead");
    assert_eq!(converted.contact, a, "the contact with the lead's address");
    let deal = converted.opportunity.expect("a deal");
    assert_eq!(deal.display_name, "Alphonse Person deal");
    // Another, renamed since: the new title stays, the old one goes from
    // its past.
    let renamed = sales
        .convert_lead(ConvertLeadRequest {
            name: by_phone.name.clone(),
            create_opportunity: true,
            amount: Some(crm_proto::common::Money {
                currency_code: "EUR".into(),
                units: 100,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .must("ConvertLead")
        .opportunity
        .expect("a deal");
    assert_eq!(renamed.display_name, "Charles Person deal");
    sales
        .update_opportunity(UpdateOpportunityRequest {
            opportunity: Some(Opportunity {
                display_name: "Renewal".into(),
                ..renamed.clone()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .must("UpdateOpportunity");
    merge(&mut contacts, &b, &a).await;
    merge(&mut contacts, &c, &b).await;
    contacts
        .erase_contact(EraseContactRequest { name: c.clone() })
        .await
        .must("EraseContact");

    eventually("sales confirms the erasure", async || {
        suite
            .sales_event_types()
            .await
            .iter()
            .any(|t| t == "crm.sales.v1.ErasureCompleted")
    })
    .await;
    for copy in [&by_email, &by_phone] {
        let l = sales
            .get_lead(GetLeadRequest {
                name: copy.name.clone(),
            })
            .await
            .must("GetLead");
        assert!(
            l.given_name.is_empty()
                && l.family_name.is_empty()
                && l.email.is_empty()
                && l.phone.is_empty(),
            "{} still holds personal data: {l:?}",
            copy.name
        );
    }
    // Contacts' erasure deletes its earlier events about the chain, so the
    // merges may never reach sales: the deal stays with a contact of it.
    let retitled = sales
        .get_opportunity(GetOpportunityRequest {
            name: deal.name.clone(),
        })
        .await
        .must("GetOpportunity");
    assert_eq!(
        retitled.display_name, "Acme deal",
        "the deal is titled after the company the lead kept"
    );
    assert!([&a, &b, &c].contains(&&retitled.contact), "{retitled:?}");
    let kept_title = sales
        .get_opportunity(GetOpportunityRequest {
            name: renamed.name.clone(),
        })
        .await
        .must("GetOpportunity");
    assert_eq!(kept_title.display_name, "Renewal", "a chosen title stays");
    let kept = sales
        .get_lead(GetLeadRequest {
            name: stranger.name.clone(),
        })
        .await
        .must("GetLead");
    assert_eq!(
        kept.email, "delta@else.example",
        "someone else's lead is untouched"
    );

    let events = suite.sales_events().await;
    for event in &events {
        let bytes = &event.payload.as_ref().expect("a payload").value;
        let text = String::from_utf8_lossy(bytes).to_lowercase();
        for trace in [
            "alpha@chain",
            "alphonse",
            "charles",
            "5550107777",
            "charlie@chain",
        ] {
            assert!(
                !text.contains(trace),
                "{} {} still carries {trace:?}",
                event.r#type,
                event.subject
            );
        }
    }
    let completed: Vec<_> = events
        .iter()
        .filter(|e| e.r#type == "crm.sales.v1.ErasureCompleted")
        .collect();
    assert_eq!(completed.len(), 1, "one confirmation");
    let confirmation: ErasureCompleted = payload(completed[0]);
    assert_eq!(confirmation.contact, c);
    assert_eq!(confirmation.service, "sales");
    let mut erased = confirmation.erased_resources.clone();
    erased.sort();
    let mut expected = vec![
        by_email.name.clone(),
        by_phone.name.clone(),
        deal.name.clone(),
        renamed.name.clone(),
    ];
    expected.sort();
    assert_eq!(erased, expected);
    assert!(
        confirmation.scrubbed_events >= 6,
        "the leads' LeadCreated events, the conversions' and the deals' were scrubbed"
    );

    // The audit log keeps who made the leads and when, none of the person's values.
    let audit = suite.sales_audit("").await;
    let text = format!("{audit:?}").to_lowercase();
    for trace in ["alpha@chain", "alphonse", "charles", "5550107777"] {
        assert!(!text.contains(trace), "the audit log still holds {trace:?}");
    }
    let history = suite
        .sales_audit(&format!("resource = \"{}\"", by_phone.name))
        .await;
    let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "crm.sales.v1.LeadErased",
            "crm.sales.v1.LeadConverted",
            "crm.sales.v1.LeadCreated"
        ]
    );
    assert!(
        history[1..].iter().all(|e| e.erased),
        "the creation's and conversion's values are gone"
    );
    // The renamed deal's log keeps its entries, not the title that named
    // the person.
    let deal_history = suite
        .sales_audit(&format!("resource = \"{}\"", renamed.name))
        .await;
    assert!(deal_history.len() >= 2, "{deal_history:?}");
    assert!(
        deal_history
            .iter()
            .filter(|e| e.method != "consume crm.contacts.v1.ContactErased")
            .all(|e| e.erased),
        "{deal_history:?}"
    );
    assert_eq!(
        history[0].method, "consume crm.contacts.v1.ContactErased",
        "the erasure was the contacts feed's doing"
    );
    assert!(!history[0].request_id.is_empty(), "the applied event's id");
}
