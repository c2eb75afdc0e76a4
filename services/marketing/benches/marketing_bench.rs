//! The marketing benchmark: how fast a campaign goes out, beside plain
//! lettre sending the same messages to the same SMTP server, and how much
//! memory the marketing process needs for it. In one run, against one real
//! SMTP server (aiosmtpd, `crm_testkit::smtp`, from `scripts/python-tools.sh`):
//!
//! - `send`: 10,000 contacts tagged `bulk` are imported into a contacts
//!   service (in this process, SQLite); a `marketing` process from its
//!   binary (release under `cargo bench`, its own SQLite file, the sender
//!   looking every 100 ms) gets a segment `tags:"bulk"`, a template and a
//!   campaign at `messages_per_second: 1000`, scheduled now. Measured: the
//!   time from `ScheduleCampaign` to state SENT and messages per second over
//!   it, the sending phase alone (the campaign's own start and finish
//!   times), and the process's peak resident memory (VmHWM) when idle, once
//!   the audience is queued, and at SENT. The SMTP server must have received
//!   every message. Then the same campaign once more with no SMTP relay
//!   (marketing writes each message into a file instead): what the service's
//!   own work per message allows.
//! - `baseline`: the same number of messages, built as the sender builds
//!   them (the template rendered, links tracked, an open image, a signed
//!   unsubscribe link, the same headers), sent by plain lettre
//!   (`AsyncSmtpTransport`) one after another to the same server; with the
//!   service's `crm_marketing::mailer::Mailer` (lettre's client on
//!   `TCP_NODELAY` sockets, connections reused) one after another and by 8
//!   concurrent senders; and through lettre's `AsyncSmtpConnection` on a
//!   `TCP_NODELAY` socket, a connection per message and one for all.
//!   Messages per second and per-message latency (messages are built before
//!   the clock starts).
//! - `memory`: as `send` (SMTP only) with 100,000 contacts, for the peak
//!   memory at that size; `memory=<n>` for another size. It takes as long as
//!   the import and the sending do (minutes), so it only runs when named.
//!
//! - `start`: the `marketing` binary's start to SERVING on an empty and on
//!   a migrated database, and its idle memory (`crm_testkit::spawned`).
//!
//! `cargo bench -p crm-marketing --bench marketing_bench` runs `start`,
//! `send` and `baseline`; name parts after `--` to run only those (`... --
//! memory`). A plain run (`cargo test --benches`) makes a small smoke pass
//! of them (`send` and `baseline` skipped without aiosmtpd).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crm_marketing::{
    domain::{
        template::{Recipient, TemplateDraft},
        tracking::{add_open_pixel, rewrite_links},
    },
    mailer::{Mailer, OutgoingMail, SendOutcome},
};
use crm_proto::{
    contacts::{
        Contact, EmailAddress, ImportContactsRequest, ImportOutcome,
        contacts_service_client::ContactsServiceClient,
    },
    marketing::{
        Audience, Campaign, CampaignState, CreateCampaignRequest, CreateSegmentRequest,
        CreateTemplateRequest, GetCampaignRequest, ScheduleCampaignRequest, Segment, Template,
        marketing_service_client::MarketingServiceClient,
    },
};
use crm_shared::{auth::Role, token::SignedTokens};
use crm_testkit::{
    ADMIN, Authed, Backend, SECRET, SERVICE_SECRET, ServiceProcess, TENANT, TestDatabase,
    bearer_for, bench::percentile, channel_to, health_status, peak_memory_mib, service, settings,
    smtp::LocalSmtp,
};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
    address::Envelope,
    transport::smtp::{client::AsyncSmtpConnection, extension::ClientId},
};
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;

/// The campaign's rate, the most the service allows.
const RATE: i32 = 1000;
/// Concurrent senders of the second baseline.
const CONCURRENT_SENDERS: usize = 8;
/// Recipients of the `memory` part unless `memory=<n>` says otherwise.
const LARGE: usize = 100_000;
/// The template, as the integration tests write it: a personalised subject,
/// an HTML body with one link and the unsubscribe link, a text body.
const SUBJECT: &str = r#"Hello {{ contact.given_name | default("there") }}"#;
const HTML_BODY: &str = r#"<p>Hi {{ contact.given_name | default("there") }}</p><a href="https://acme.example/offer?x=1&y=2">Our offer</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a>"#;
const TEXT_BODY: &str =
    "Hi {{ contact.given_name | default(\"there\") }}, {{ campaign.name }} is here.";
const CAMPAIGN_NAME: &str = "Bench launch";
const FROM_ADDRESS: &str = "news@acme.example";
const FROM_NAME: &str = "Acme";

#[tokio::main]
async fn main() {
    let args = crm_testkit::bench::Args::from_env();
    let full = args.full;
    let chosen = |part: &str| args.runs(part, part != "memory");
    let large = args
        .value("memory")
        .map(|n| n.parse::<usize>().expect("memory=<recipients>"))
        .unwrap_or(if full { LARGE } else { 100 });
    let recipients = if full { 10_000 } else { 50 };
    if chosen("start") {
        let mail_dir = std::env::temp_dir().join(format!("crm-bench-mail-{}", std::process::id()));
        let mail_dir = mail_dir.to_string_lossy();
        crm_testkit::spawned::measure_starts(
            env!("CARGO_BIN_EXE_marketing"),
            "marketing",
            &[("CRM_MARKETING__MAIL_DIR", &mail_dir)],
        )
        .await;
    }
    let Some(smtp) = LocalSmtp::start() else {
        eprintln!("SKIP: the marketing benchmark needs aiosmtpd (scripts/python-tools.sh)");
        return;
    };
    let mail = Maildir::of(&smtp);

    let mut campaigns = Vec::new();
    if chosen("send") {
        campaigns.push(campaign_run(Relay::Smtp(&smtp, &mail), recipients).await);
        campaigns.push(campaign_run(Relay::Files, recipients).await);
    }
    let mut baselines = Vec::new();
    if chosen("baseline") {
        baselines = baseline(&smtp, &mail, recipients).await;
    }
    if chosen("memory") {
        campaigns.push(campaign_run(Relay::Smtp(&smtp, &mail), large).await);
    }

    if !campaigns.is_empty() {
        println!(
            "| campaign | recipients | contacts import s | schedule -> SENT s | msgs/s (schedule -> SENT) | audience queued s | sending phase s | msgs/s (sending phase) | delivered | avg message bytes | marketing peak RSS MiB (idle -> queued -> SENT) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for c in &campaigns {
            println!(
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.0} | {:.0} -> {:.0} -> {:.0} |",
                c.relay,
                c.recipients,
                c.import.as_secs_f64(),
                c.total.as_secs_f64(),
                c.sent as f64 / c.total.as_secs_f64(),
                c.queueing,
                c.sending,
                c.sent as f64 / c.sending,
                c.delivered,
                c.avg_bytes,
                c.idle_mib,
                c.queued_mib,
                c.peak_mib,
            );
        }
    }
    if !baselines.is_empty() {
        println!();
        println!("| baseline | messages | s | msgs/s | p50 ms | p99 ms | avg message bytes |");
        println!("|---|---|---|---|---|---|---|");
        for b in &mut baselines {
            println!(
                "| {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} |",
                b.what,
                b.messages,
                b.elapsed.as_secs_f64(),
                b.messages as f64 / b.elapsed.as_secs_f64(),
                percentile(&mut b.latencies, 0.5),
                percentile(&mut b.latencies, 0.99),
                b.avg_bytes
            );
        }
    }
    let by_smtp = campaigns.iter().find(|c| c.relay == "SMTP");
    if let (Some(c), Some(b)) = (by_smtp, baselines.first()) {
        let lettre = b.messages as f64 / b.elapsed.as_secs_f64();
        println!();
        println!(
            "campaign / plain lettre loop: {:.2} (schedule -> SENT), {:.2} (sending phase)",
            c.sent as f64 / c.total.as_secs_f64() / lettre,
            c.sent as f64 / c.sending / lettre
        );
    }
}

/// Where a campaign's messages go.
#[derive(Clone, Copy)]
enum Relay<'a> {
    /// The SMTP server, counted through its Maildir.
    Smtp(&'a LocalSmtp, &'a Maildir<'a>),
    /// No relay: marketing writes each message into a folder.
    Files,
}

/// What one campaign run measured.
struct CampaignRun {
    relay: &'static str,
    recipients: usize,
    import: Duration,
    /// From `ScheduleCampaign` to SENT seen.
    total: Duration,
    /// From `ScheduleCampaign` to the campaign's start time (its audience
    /// resolved and queued), seconds.
    queueing: f64,
    /// From the campaign's start time to its finish time, seconds.
    sending: f64,
    sent: usize,
    /// Messages the SMTP server received, or files written.
    delivered: usize,
    avg_bytes: f64,
    idle_mib: f64,
    queued_mib: f64,
    peak_mib: f64,
}

/// A campaign to `recipients` fresh contacts, sent by a marketing process
/// of its own over a fresh SQLite file, through `relay`.
async fn campaign_run(relay: Relay<'_>, recipients: usize) -> CampaignRun {
    let label = match relay {
        Relay::Smtp(..) => "SMTP",
        Relay::Files => "files",
    };
    eprintln!("campaign to {recipients} recipients ({label}): importing contacts");
    let contacts_db = TestDatabase::create(Backend::Sqlite)
        .await
        .expect("a SQLite database");
    let marketing_db = TestDatabase::create(Backend::Sqlite)
        .await
        .expect("a SQLite database");
    let contacts = ServiceProcess::start(
        service(crm_contacts::build),
        settings("contacts", &contacts_db.url),
    )
    .await;
    let import = import_contacts(contacts.addr, recipients).await;
    let files = std::env::temp_dir().join(format!("crm-bench-mail-{}", Uuid::now_v7()));
    let marketing = match relay {
        Relay::Smtp(smtp, _) => {
            MarketingProcess::start(&marketing_db.url, contacts.addr, ("SMTP_URL", &smtp.url()))
                .await
        }
        Relay::Files => {
            let dir = files.display().to_string();
            MarketingProcess::start(&marketing_db.url, contacts.addr, ("MAIL_DIR", &dir)).await
        }
    };
    let mut m: MarketingServiceClient<Authed> = MarketingServiceClient::with_interceptor(
        channel_to(marketing.addr),
        bearer_for(TENANT, &[Role::Marketing]),
    );
    let segment = m
        .create_segment(CreateSegmentRequest {
            segment: Some(Segment {
                display_name: "Bulk".into(),
                filter: r#"tags:"bulk""#.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateSegment")
        .into_inner()
        .name;
    let template = m
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                display_name: "Launch".into(),
                subject: SUBJECT.into(),
                html_body: HTML_BODY.into(),
                text_body: TEXT_BODY.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateTemplate")
        .into_inner()
        .name;
    let campaign = m
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                display_name: CAMPAIGN_NAME.into(),
                template,
                from_address: FROM_ADDRESS.into(),
                from_name: FROM_NAME.into(),
                audience: Some(Audience {
                    segments: vec![segment],
                    ..Default::default()
                }),
                messages_per_second: RATE,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("CreateCampaign")
        .into_inner()
        .name;
    let delivered = || match relay {
        Relay::Smtp(_, mail) => mail.stats(),
        Relay::Files => folder_stats(&files),
    };
    let idle_mib = marketing.peak_memory_mib();
    let (count_before, bytes_before) = delivered();
    // Every GetCampaign counts the ledger: poll a long campaign less often.
    let poll = Duration::from_millis(if recipients > 10_000 { 1000 } else { 250 });
    eprintln!("campaign to {recipients} recipients ({label}): scheduled");
    let scheduled_at = chrono::Utc::now();
    let started = Instant::now();
    m.schedule_campaign(ScheduleCampaignRequest {
        name: campaign.clone(),
        send_time: None,
    })
    .await
    .expect("ScheduleCampaign");
    let mut queued_mib = f64::NAN;
    let mut last_report = Instant::now();
    let done = loop {
        let c = m
            .get_campaign(GetCampaignRequest {
                name: campaign.clone(),
            })
            .await
            .expect("GetCampaign")
            .into_inner();
        if c.state() != CampaignState::Scheduled && queued_mib.is_nan() {
            queued_mib = marketing.peak_memory_mib();
        }
        if c.state() == CampaignState::Sent {
            break c;
        }
        assert!(
            matches!(c.state(), CampaignState::Scheduled | CampaignState::Sending),
            "the campaign went {:?}",
            c.state()
        );
        assert!(
            started.elapsed() < Duration::from_secs(4 * 3600),
            "the campaign took over four hours"
        );
        if last_report.elapsed() >= Duration::from_secs(30) {
            let sent = c.counts.as_ref().map_or(0, |n| n.sent);
            eprintln!(
                "  {:.0} s: {sent} sent, peak RSS {:.0} MiB",
                started.elapsed().as_secs_f64(),
                marketing.peak_memory_mib()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(poll).await;
    };
    let total = started.elapsed();
    let peak_mib = marketing.peak_memory_mib();
    let counts = done.counts.expect("counts");
    assert_eq!(
        (
            counts.recipients,
            counts.sent,
            counts.failed,
            counts.suppressed
        ),
        (recipients as i32, recipients as i32, 0, 0),
        "every recipient was sent to: {counts:?}"
    );
    let seconds = |t: &Option<prost_types::Timestamp>| {
        let t = t.as_ref().expect("a time");
        t.seconds as f64 + f64::from(t.nanos) / 1e9
    };
    let scheduled = scheduled_at.timestamp_micros() as f64 / 1e6;
    let (start, finish) = (seconds(&done.start_time), seconds(&done.finish_time));
    let (count_after, bytes_after) = delivered();
    let delivered = count_after - count_before;
    assert_eq!(delivered, recipients, "every message was delivered");
    drop(marketing);
    drop(contacts);
    let _ = std::fs::remove_dir_all(&files);
    CampaignRun {
        relay: label,
        recipients,
        import,
        total,
        queueing: start - scheduled,
        sending: finish - start,
        sent: counts.sent as usize,
        delivered,
        avg_bytes: (bytes_after - bytes_before) as f64 / delivered as f64,
        idle_mib,
        queued_mib,
        peak_mib,
    }
}

/// `n` contacts tagged `bulk`, each with a name and an address, imported in
/// one `ImportContacts` stream; how long it took.
async fn import_contacts(addr: SocketAddr, n: usize) -> Duration {
    let mut contacts =
        ContactsServiceClient::with_interceptor(channel_to(addr), bearer_for(TENANT, ADMIN));
    let rows = tokio_stream::iter((0..n).map(|i| ImportContactsRequest {
        contact: Some(Contact {
            given_name: format!("Given{i}"),
            family_name: "Bulk".into(),
            emails: vec![EmailAddress {
                address: format!("person{i}@example.com"),
                label: "work".into(),
                primary: true,
            }],
            tags: vec!["bulk".into()],
            ..Default::default()
        }),
    }));
    let started = Instant::now();
    let mut responses = contacts
        .import_contacts(rows)
        .await
        .expect("ImportContacts")
        .into_inner();
    let mut created = 0;
    while let Some(batch) = responses.message().await.expect("the import stream") {
        created += batch
            .results
            .iter()
            .filter(|r| r.outcome() == ImportOutcome::Created)
            .count();
    }
    assert_eq!(created, n, "every contact is created");
    started.elapsed()
}

/// The marketing binary, run as a child process configured by environment.
struct MarketingProcess {
    child: Child,
    addr: SocketAddr,
}

impl MarketingProcess {
    /// Starts it over `database_url`, reading `contacts`, its mail going
    /// where `relay` (`SMTP_URL` or `MAIL_DIR`, and its value) says.
    async fn start(database_url: &str, contacts: SocketAddr, relay: (&str, &str)) -> Self {
        let addr = crm_testkit::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_marketing"))
            // No configuration file: only what is set here.
            .env("CRM_CONFIG", "/nonexistent/crm-bench")
            .env("CRM_MARKETING__LISTEN_ADDR", addr.to_string())
            .env("CRM_MARKETING__DATABASE_URL", database_url)
            .env("CRM_MARKETING__CONTACTS_URL", format!("http://{contacts}"))
            .env(format!("CRM_MARKETING__{}", relay.0), relay.1)
            .env(
                "CRM_MARKETING__TRACKING_ADDR",
                crm_testkit::free_port().to_string(),
            )
            .env("CRM_MARKETING__SEND_CHECK_MILLIS", "100")
            .env("CRM_AUTH__HS256_SECRET", SECRET)
            .env("CRM_AUTH__SERVICE_SECRET", SERVICE_SECRET)
            .env("CRM_PAGING_SECRET", "bench")
            .env("CRM_TELEMETRY__FILTER", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the marketing binary");
        let process = Self { child, addr };
        let channel = channel_to(addr);
        let started = Instant::now();
        while !matches!(
            health_status(&channel, "").await,
            Ok(ServingStatus::Serving)
        ) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "marketing did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    /// The process's peak resident memory in MiB (Linux VmHWM).
    fn peak_memory_mib(&self) -> f64 {
        peak_memory_mib(self.child.id())
    }
}

impl Drop for MarketingProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One baseline's figures.
struct Baseline {
    what: String,
    messages: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    avg_bytes: f64,
}

/// `n` messages built as the sender builds them, sent through the mailer
/// one by one, then by [`CONCURRENT_SENDERS`] tasks at once; then the same
/// bytes through lettre's connection on `TCP_NODELAY` sockets.
async fn baseline(smtp: &LocalSmtp, mail: &Maildir<'_>, n: usize) -> Vec<Baseline> {
    let mailer =
        Mailer::from_settings(Some(&smtp.url()), Path::new("/nonexistent")).expect("the mailer");
    let mut results = vec![lettre_transport_loop(smtp, mail, n).await];
    for concurrency in [1, CONCURRENT_SENDERS] {
        eprintln!("baseline: {n} messages through the mailer, {concurrency} sender(s)");
        let messages = Arc::new(outgoing(n));
        let (count_before, bytes_before) = mail.stats();
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (mailer, messages, next) = (mailer.clone(), messages.clone(), next.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(message) = messages.get(i) else {
                            return latencies;
                        };
                        let began = Instant::now();
                        let outcome = mailer.send(message).await;
                        latencies.push(began.elapsed());
                        assert!(matches!(outcome, SendOutcome::Sent { .. }), "{outcome:?}");
                    }
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(n);
        for task in tasks {
            latencies.extend(task.await.expect("a sender"));
        }
        let elapsed = started.elapsed();
        let (count_after, bytes_after) = mail.stats();
        let received = count_after - count_before;
        assert_eq!(received, n, "the SMTP server received every message");
        results.push(Baseline {
            what: if concurrency == 1 {
                "the service's Mailer::send loop (TCP_NODELAY, reused connections), one sender"
                    .into()
            } else {
                format!("Mailer::send, {concurrency} concurrent senders")
            },
            messages: n,
            elapsed,
            latencies,
            avg_bytes: (bytes_after - bytes_before) as f64 / received as f64,
        });
    }
    for reuse in [false, true] {
        eprintln!("baseline: {n} messages through lettre's connection, TCP_NODELAY, reuse {reuse}");
        let messages = raw_messages(n).await;
        let (count_before, bytes_before) = mail.stats();
        let mut latencies = Vec::with_capacity(n);
        let started = Instant::now();
        let mut shared = None;
        for (envelope, bytes) in &messages {
            let began = Instant::now();
            if reuse {
                let conn = match &mut shared {
                    Some(conn) => conn,
                    None => shared.insert(connect_nodelay(smtp.addr).await),
                };
                conn.send(envelope, bytes).await.expect("a send");
            } else {
                let mut conn = connect_nodelay(smtp.addr).await;
                conn.send(envelope, bytes).await.expect("a send");
                // As lettre's transport ends a connection without its pool.
                conn.abort().await;
            }
            latencies.push(began.elapsed());
        }
        if let Some(mut conn) = shared {
            conn.quit().await.expect("QUIT");
        }
        let elapsed = started.elapsed();
        let (count_after, bytes_after) = mail.stats();
        let received = count_after - count_before;
        assert_eq!(received, n, "the SMTP server received every message");
        results.push(Baseline {
            what: if reuse {
                "experiment: lettre connection with TCP_NODELAY, one connection for all".into()
            } else {
                "experiment: lettre connection with TCP_NODELAY, a connection per message".into()
            },
            messages: n,
            elapsed,
            latencies,
            avg_bytes: (bytes_after - bytes_before) as f64 / received as f64,
        });
    }
    results
}

/// Plain lettre, as an application would use it: `AsyncSmtpTransport`
/// sending the same bytes one message after another.
async fn lettre_transport_loop(smtp: &LocalSmtp, mail: &Maildir<'_>, n: usize) -> Baseline {
    eprintln!("baseline: {n} messages through lettre's AsyncSmtpTransport");
    let transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.addr.ip().to_string())
            .port(smtp.addr.port())
            .build();
    let messages = raw_messages(n).await;
    let (count_before, bytes_before) = mail.stats();
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for (envelope, bytes) in &messages {
        let began = Instant::now();
        transport.send_raw(envelope, bytes).await.expect("a send");
        latencies.push(began.elapsed());
    }
    let elapsed = started.elapsed();
    let (count_after, bytes_after) = mail.stats();
    let received = count_after - count_before;
    assert_eq!(received, n, "the SMTP server received every message");
    Baseline {
        what: "plain lettre: AsyncSmtpTransport::send_raw loop".into(),
        messages: n,
        elapsed,
        latencies,
        avg_bytes: (bytes_after - bytes_before) as f64 / received as f64,
    }
}

/// A connection to `addr` with Nagle's algorithm off, EHLO said.
async fn connect_nodelay(addr: SocketAddr) -> AsyncSmtpConnection {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("a connection to the SMTP server");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &ClientId::default())
        .await
        .expect("EHLO")
}

/// `n` messages as [`outgoing`] makes them, as the mailer formats them
/// (through its file transport), with their envelopes.
async fn raw_messages(n: usize) -> Vec<(Envelope, Vec<u8>)> {
    let dir = std::env::temp_dir().join(format!("crm-bench-raw-{}", Uuid::now_v7()));
    let files = Mailer::from_settings(None, &dir).expect("the file mailer");
    let mut messages = Vec::with_capacity(n);
    for mail in outgoing(n) {
        let SendOutcome::Sent { response } = files.send(&mail).await else {
            panic!("the message could not be written");
        };
        let path = response.strip_prefix("saved ").expect("a saved file");
        let bytes = std::fs::read(path).expect("the message file");
        let envelope = Envelope::new(
            Some(FROM_ADDRESS.parse().expect("an address")),
            vec![mail.to.parse().expect("an address")],
        )
        .expect("an envelope");
        messages.push((envelope, bytes));
    }
    let _ = std::fs::remove_dir_all(&dir);
    messages
}

/// `n` messages as the sender makes them: the template rendered for each
/// recipient, its links tracked with signed tokens, an open image, the
/// signed one-click unsubscribe link, the campaign's Message-ID and header.
fn outgoing(n: usize) -> Vec<OutgoingMail> {
    let template = TemplateDraft {
        display_name: "Launch".into(),
        subject: SUBJECT.into(),
        html_body: HTML_BODY.into(),
        text_body: TEXT_BODY.into(),
    }
    .compile()
    .expect("the template compiles");
    let (opens, clicks, unsubscribes) = (
        SignedTokens::new("bench", "open"),
        SignedTokens::new("bench", "click"),
        SignedTokens::new("bench", "unsubscribe"),
    );
    let tracking = format!("http://{}", crm_testkit::free_port());
    let campaign = Uuid::now_v7();
    let expires = chrono::Utc::now() + chrono::Duration::days(60);
    (0..n)
        .map(|i| {
            let contact = Uuid::now_v7();
            let sign =
                |tokens: &SignedTokens| tokens.sign_with(TENANT, contact, Some(campaign), expires);
            let email = format!("baseline{i}@example.com");
            let unsubscribe_url = format!("{tracking}/u?token={}", sign(&unsubscribes));
            let recipient = Recipient {
                given_name: format!("Given{i}"),
                family_name: "Bulk".into(),
                display_name: format!("Given{i} Bulk"),
                email: email.clone(),
                ..Default::default()
            };
            let rendered = template
                .render(&recipient, CAMPAIGN_NAME, &unsubscribe_url)
                .expect("the template renders");
            let tracked = rewrite_links(&rendered.html_body, |target| {
                (target != unsubscribe_url).then(|| {
                    let token = sign(&clicks);
                    let binding = clicks.bind(&token, target);
                    format!(
                        "{tracking}/c/{token}?b={binding}&u={}",
                        percent_encode(target)
                    )
                })
            });
            let html_body = add_open_pixel(&tracked, &format!("{tracking}/o/{}", sign(&opens)));
            OutgoingMail {
                from: format!("{FROM_NAME} <{FROM_ADDRESS}>"),
                reply_to: None,
                to: email,
                subject: rendered.subject,
                html_body,
                text_body: rendered.text_body,
                unsubscribe_url,
                message_id: format!("<{campaign}.{contact}@acme.example>"),
                headers: vec![("X-CRM-Campaign".into(), format!("campaigns/{campaign}"))],
            }
        })
        .collect()
}

/// `value` percent-encoded for a query string, as the sender encodes a
/// tracked link's target.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// How many files `folder` holds, and their bytes (0 when it does not exist).
fn folder_stats(folder: &Path) -> (usize, u64) {
    std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .fold((0, 0), |(n, bytes), m| (n + 1, bytes + m.len()))
}

/// The SMTP server's Maildir, counted by its files (reading every message
/// back, as `LocalSmtp::messages` does, costs more than a long run needs).
/// `LocalSmtp` names its folder `crm-smtp-<pid>-<n>-<nanos>` under the
/// temporary folder; with one server in this process there is one such
/// folder. Without it, messages are read.
struct Maildir<'a> {
    smtp: &'a LocalSmtp,
    folder: Option<PathBuf>,
}

impl<'a> Maildir<'a> {
    fn of(smtp: &'a LocalSmtp) -> Self {
        let prefix = format!("crm-smtp-{}-", std::process::id());
        let mut folders: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        let folder = (folders.len() == 1).then(|| folders.remove(0).join("maildir"));
        Self { smtp, folder }
    }

    /// How many messages the server holds, and their bytes.
    fn stats(&self) -> (usize, u64) {
        match &self.folder {
            Some(folder) => {
                let (new, new_bytes) = folder_stats(&folder.join("new"));
                let (cur, cur_bytes) = folder_stats(&folder.join("cur"));
                (new + cur, new_bytes + cur_bytes)
            }
            None => {
                let messages = self.smtp.messages();
                let bytes = messages.iter().map(|m| m.len() as u64).sum();
                (messages.len(), bytes)
            }
        }
    }
}
