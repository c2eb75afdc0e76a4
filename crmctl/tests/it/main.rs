//! `crmctl` end to end: the real binary against the real contacts service
//! behind the real gateway, on SQLite and PostgreSQL, checked by what it
//! prints, the files it writes, its exit codes and what the service holds.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use crm_gateway::config::{GatewaySettings, Section, UpstreamSettings};
use crm_shared::config::AuthSettings;
use crm_testkit::{
    ADMIN, Backend, SECRET, ServiceProcess, TestDatabase, VIEWER, db_test, eventually, service,
    token,
};
use serde_json::Value;
use tokio::sync::oneshot;

/// Contacts behind a gateway, and a folder for the test's files.
struct Suite {
    gateway: SocketAddr,
    contacts: ServiceProcess,
    folder: PathBuf,
    _db: TestDatabase,
    _reporting: ServiceProcess,
    _reporting_db: TestDatabase,
    _stop_gateway: oneshot::Sender<()>,
}

impl Suite {
    async fn start(backend: Backend) -> Option<Self> {
        let db = TestDatabase::create(backend).await?;
        let contacts = ServiceProcess::start(
            service(crm_contacts::build),
            crm_testkit::settings("contacts", &db.url),
        )
        .await;
        // Reporting follows contacts only and expects its own and sales'
        // confirmation of an erasure: one arrives, one stays pending.
        let reporting_db = TestDatabase::create(backend).await?;
        let mut reporting_settings = crm_testkit::settings("reporting", &reporting_db.url);
        reporting_settings
            .peers
            .insert("contacts".into(), format!("http://{}", contacts.addr));
        reporting_settings.options.extend([
            ("sources".to_owned(), "contacts".to_owned()),
            ("erasure_services".to_owned(), "reporting,sales".to_owned()),
        ]);
        let reporting =
            ServiceProcess::start(service(crm_reporting::build), reporting_settings).await;
        let upstream = |addr: SocketAddr| UpstreamSettings {
            packages: String::new(),
            addresses: format!("http://{addr}"),
        };
        let section = Section {
            listen_addr: "127.0.0.1:0".parse().expect("an address"),
            metrics_addr: "127.0.0.1:0".parse().expect("an address"),
            upstreams: BTreeMap::from([
                ("contacts".to_owned(), upstream(contacts.addr)),
                ("reporting".to_owned(), upstream(reporting.addr)),
            ]),
            health_check_interval_ms: 100,
            ..Section::default()
        };
        let app = crm_gateway::Application::build(GatewaySettings {
            gateway: section,
            auth: AuthSettings {
                hs256_secret: Some(SECRET.into()),
                ..Default::default()
            },
            telemetry: crm_testkit::telemetry(),
        })
        .await
        .expect("the gateway builds");
        let gateway = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let folder = std::env::temp_dir().join(format!("crmctl-test-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&folder).expect("a temporary folder");
        let suite = Self {
            gateway,
            contacts,
            folder,
            _db: db,
            _reporting: reporting,
            _reporting_db: reporting_db,
            _stop_gateway: stop,
        };
        eventually("the gateway serves contacts", async || {
            suite.crmctl(None, &["health"]).await.status.success()
        })
        .await;
        Some(suite)
    }

    /// crmctl with `token` (if any) set up against the gateway, isolated
    /// from the environment and any config file of the machine.
    fn command(&self, token: Option<&str>) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_crmctl"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.folder)
            .env("CRMCTL_GATEWAY", format!("http://{}", self.gateway))
            .current_dir(&self.folder)
            .kill_on_drop(true);
        if let Some(token) = token {
            command.env("CRMCTL_TOKEN", token);
        }
        command
    }

    /// Runs crmctl with `args` to its end.
    async fn crmctl(&self, token: Option<&str>, args: &[&str]) -> Output {
        self.command(token)
            .args(args)
            .output()
            .await
            .expect("crmctl runs")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.join(name)
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

fn admin() -> String {
    token(crm_testkit::TENANT, ADMIN)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The line of `text` that starts with `start`, or "".
fn line_starting<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(start))
        .unwrap_or_default()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// A CSV of `rows` people with unique emails, in the columns a spreadsheet
/// export might have.
fn people_csv(path: &Path, rows: usize) {
    let mut text = String::from("First Name,Last Name,E-mail,Tier,Stage\n");
    for i in 0..rows {
        text.push_str(&format!(
            "Ada{i},Lovelace,ada{i}@example.com,gold,customer\n"
        ));
    }
    std::fs::write(path, text).expect("the CSV is written");
}

/// How many contacts the tenant holds, by an export through crmctl.
async fn count_contacts(suite: &Suite) -> usize {
    let output = suite
        .crmctl(Some(&admin()), &["export", "contacts", "--format", "jsonl"])
        .await;
    assert_exit(&output, 0);
    stdout(&output).lines().count()
}

db_test!(health_names_every_service_and_version, health_on);
async fn health_on(backend: Backend) {
    let Some(mut suite) = Suite::start(backend).await else {
        return;
    };
    let output = suite.crmctl(None, &["health"]).await;
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        line_starting(&text, "crm.contacts.v1.ContactsService").contains(" SERVING"),
        "{text}"
    );
    assert!(text.contains(crm_shared::version()), "{text}");
    assert!(
        stderr(&output).contains("need an admin token"),
        "{}",
        stderr(&output)
    );

    let output = suite
        .crmctl(Some(&admin()), &["health", "-o", "json"])
        .await;
    assert_exit(&output, 0);
    let report: Value = serde_json::from_str(&stdout(&output)).expect("one JSON object");
    assert_eq!(report["gateway"]["status"], "SERVING");
    let replica = &report["upstreams"][0]["replicas"][0];
    assert_eq!(replica["address"], suite.contacts.addr.to_string());
    assert_eq!(replica["state"], "REPLICA_STATE_SERVING");
    assert_eq!(replica["version"], crm_shared::version());

    let viewer = token(crm_testkit::TENANT, VIEWER);
    let output = suite.crmctl(Some(&viewer), &["health"]).await;
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("need the admin role"),
        "{}",
        stderr(&output)
    );

    suite.contacts.kill();
    eventually("health reports contacts down with exit 3", async || {
        suite.crmctl(None, &["health"]).await.status.code() == Some(3)
    })
    .await;
    let output = suite.crmctl(Some(&admin()), &["health"]).await;
    let text = stdout(&output);
    assert!(
        line_starting(&text, "crm.contacts.v1.ContactsService").contains("NOT_SERVING"),
        "{text}"
    );
    assert!(
        line_starting(&text, "contacts replica").contains(" DOWN "),
        "{text}"
    );
}

db_test!(import_reports_progress_rejects_and_round_trips, import_on);
async fn import_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let file = suite.path("people.csv");
    people_csv(&file, 1200);
    // Three bad rows: an email the service refuses, a stage crmctl cannot
    // read, and a repeated email (a duplicate, not a rejection).
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("Bad,Email,not-an-email,gold,customer\n");
    text.push_str("Bad,Stage,stage@example.com,gold,sort of\n");
    text.push_str("Again,Lovelace,ada7@example.com,gold,lead\n");
    std::fs::write(&file, text).unwrap();
    let output = suite
        .crmctl(
            Some(&admin()),
            &[
                "import",
                "contacts",
                "people.csv",
                "--map",
                "custom.tier=Tier",
                "--progress",
                "lines",
            ],
        )
        .await;
    assert_exit(&output, 3);
    let summary = stdout(&output);
    assert!(
        summary.contains("imported 1203 records")
            && summary.contains("1200 created, 1 duplicates, 2 rejected"),
        "{summary}"
    );
    assert!(
        stderr(&output).contains("rows/s"),
        "progress: {}",
        stderr(&output)
    );
    let rejects = std::fs::read_to_string(suite.path("people.csv.rejects.csv")).expect("rejects");
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines.len(), 3, "{rejects}");
    assert!(lines[0].starts_with("row,error,First Name"), "{rejects}");
    assert!(
        lines[1].starts_with("1201,") && lines[1].contains("emails[0].address"),
        "{rejects}"
    );
    assert!(
        lines[2].starts_with("1202,") && lines[2].contains("SORT_OF"),
        "{rejects}"
    );
    assert!(!suite.path("people.csv.crmctl-checkpoint").exists());

    // What an export writes imports again, as the same people: duplicates.
    let output = suite
        .crmctl(Some(&admin()), &["export", "contacts", "--out", "all.csv"])
        .await;
    assert_exit(&output, 0);
    let exported = std::fs::read_to_string(suite.path("all.csv")).unwrap();
    assert_eq!(exported.lines().count(), 1201, "header and 1200 rows");
    assert!(
        exported.contains("\"{\"\"tier\"\":\"\"gold\"\"}\""),
        "custom field kept"
    );
    for format in ["all.csv", "all.jsonl"] {
        let output = suite
            .crmctl(Some(&admin()), &["export", "contacts", "--out", format])
            .await;
        assert_exit(&output, 0);
        let output = suite
            .crmctl(
                Some(&admin()),
                &["import", "contacts", format, "--progress", "none"],
            )
            .await;
        assert_exit(&output, 0);
        assert!(
            stdout(&output).contains("0 created, 1200 duplicates, 0 rejected"),
            "{format}: {}",
            stdout(&output)
        );
    }
    let output = suite
        .crmctl(
            Some(&admin()),
            &[
                "export",
                "contacts",
                "--filter",
                "lifecycle_stage = \"LEAD\"",
                "--format",
                "jsonl",
            ],
        )
        .await;
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output).lines().count(),
        0,
        "the duplicate row wrote nothing"
    );
}

db_test!(
    a_killed_import_resumes_without_losing_or_repeating,
    resume_on
);
async fn resume_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    const ROWS: usize = 20_000;
    people_csv(&suite.path("many.csv"), ROWS);
    let checkpoint = suite.path("many.csv.crmctl-checkpoint");
    let mut child = suite
        .command(Some(&admin()))
        .args(["import", "contacts", "many.csv", "--progress", "none"])
        .spawn()
        .expect("crmctl starts");
    // Kill it as soon as some batches are settled, well before the end.
    loop {
        if let Some(status) = child.try_wait().expect("the child") {
            panic!("the import ended ({status}) before it could be killed: make ROWS larger");
        }
        if std::fs::read_to_string(&checkpoint).is_ok_and(|text| !text.contains("\"settled\":0,")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().await.expect("killed");
    let settled: Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let settled = settled["settled"].as_u64().unwrap();
    assert!(
        settled > 0 && settled < ROWS as u64,
        "killed after {settled}"
    );

    let output = suite
        .crmctl(
            Some(&admin()),
            &["import", "contacts", "many.csv", "--progress", "none"],
        )
        .await;
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains(&format!("resuming many.csv after record {settled}")),
        "{}",
        stderr(&output)
    );
    assert!(
        stdout(&output).contains(&format!("imported {ROWS} records")),
        "{}",
        stdout(&output)
    );
    assert_eq!(count_contacts(&suite).await, ROWS, "every row once");
}

db_test!(failures_end_with_the_documented_exit_codes, exit_codes_on);
async fn exit_codes_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let viewer = token(crm_testkit::TENANT, VIEWER);
    let admin = admin();
    people_csv(&suite.path("one.csv"), 1);
    let cases: Vec<(Option<&str>, Vec<&str>, i32, &str)> = vec![
        (None, vec!["export", "contacts"], 2, "needs a token"),
        (
            Some("not-a-token"),
            vec!["export", "contacts"],
            5,
            "(Unauthenticated)",
        ),
        (
            Some(&viewer),
            vec!["import", "contacts", "one.csv"],
            5,
            "(PermissionDenied)",
        ),
        (
            Some(&viewer),
            vec!["import", "contacts", "missing.csv"],
            2,
            "missing.csv",
        ),
        (
            Some(&viewer),
            vec!["import", "contacts", "one.csv", "--map", "shoe=E-mail"],
            2,
            "\"shoe\" is not a contact field",
        ),
        (
            Some(&viewer),
            vec!["person", "erase", "contacts/x"],
            2,
            "--yes",
        ),
        (
            Some(&admin),
            vec![
                "person",
                "export",
                "contacts/0190a0b0-0000-7000-8000-000000000000",
            ],
            6,
            "(NotFound)",
        ),
        (
            Some(&admin),
            vec![
                "person",
                "status",
                "contacts/0190a0b0-0000-7000-8000-000000000000",
            ],
            6,
            "(NotFound)",
        ),
        (
            Some(&admin),
            vec!["export", "contacts", "--filter", "shoe_size = 3"],
            7,
            "filter: unknown field \"shoe_size\"",
        ),
        (
            None,
            vec!["--gateway", "http://127.0.0.1:9", "health"],
            4,
            "cannot connect",
        ),
        (None, vec!["--profile", "ops", "health"], 2, "config file"),
        (
            None,
            vec!["token", "--secret", "s", "--roles", "root"],
            2,
            "\"root\" is not a role",
        ),
    ];
    for (token, args, code, message) in cases {
        let output = suite.crmctl(token, &args).await;
        assert_exit(&output, code);
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }

    // A profile supplies the gateway and the token file; flags still win.
    std::fs::write(suite.path("token"), &admin).unwrap();
    let config = format!(
        "[profiles.ops]\ngateway = \"http://{}\"\ntoken_file = \"{}\"\n",
        suite.gateway,
        suite.path("token").display()
    );
    std::fs::create_dir_all(suite.path(".config/crmctl")).unwrap();
    std::fs::write(suite.path(".config/crmctl/config.toml"), config).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crmctl"))
        .args(["--profile", "ops", "health", "-o", "json"])
        .env_clear()
        .env("HOME", &suite.folder)
        .output()
        .await
        .unwrap();
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("\"upstreams\""),
        "the profile's token was used"
    );

    // A development token crmctl signs is one the suite accepts.
    let output = suite
        .crmctl(
            None,
            &[
                "token", "--secret", SECRET, "--tenant", "acme", "--roles", "admin",
            ],
        )
        .await;
    assert_exit(&output, 0);
    let minted = stdout(&output).trim().to_owned();
    let output = suite.crmctl(Some(&minted), &["export", "contacts"]).await;
    assert_exit(&output, 0);
}

db_test!(events_and_data_subject_requests, events_on);
async fn events_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    people_csv(&suite.path("one.csv"), 1);
    let output = suite
        .crmctl(Some(&admin()), &["import", "contacts", "one.csv"])
        .await;
    assert_exit(&output, 0);
    let output = suite
        .crmctl(
            Some(&admin()),
            &[
                "events",
                "tail",
                "-s",
                "contacts",
                "-t",
                "ContactCreated",
                "--no-follow",
                "-o",
                "json",
            ],
        )
        .await;
    assert_exit(&output, 0);
    let events: Vec<Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON lines"))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "crm.contacts.v1.ContactCreated");
    assert_eq!(events[0]["payload"]["given_name"], "Ada0");
    let contact = events[0]["subject"].as_str().unwrap().to_owned();

    let output = suite
        .crmctl(
            Some(&admin()),
            &["person", "export", &contact, "--out", "ada.json"],
        )
        .await;
    assert_exit(&output, 0);
    let document = std::fs::read_to_string(suite.path("ada.json")).unwrap();
    assert!(document.contains("ada0@example.com"), "{document}");

    let output = suite
        .crmctl(Some(&admin()), &["person", "erase", &contact, "--yes"])
        .await;
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains(&format!("erased {contact}")),
        "{}",
        stdout(&output)
    );
    // Reporting confirms its own erasure; sales (not running) stays pending.
    let mut status: Option<Output> = None;
    eventually("reporting confirms the erasure", async || {
        let output = suite
            .crmctl(Some(&admin()), &["person", "status", &contact])
            .await;
        let confirmed = stdout(&output).contains("reporting");
        status = Some(output);
        confirmed
    })
    .await;
    let status = status.expect("a status");
    assert_exit(&status, 3);
    let text = stdout(&status);
    assert!(text.contains(&format!("{contact} erased ")), "{text}");
    assert!(text.contains("waiting for sales"), "{text}");
    assert!(text.contains("  reporting    confirmed "), "{text}");
    let output = suite
        .crmctl(
            Some(&admin()),
            &["person", "status", &contact, "-o", "json"],
        )
        .await;
    assert_exit(&output, 3);
    let json: Value = serde_json::from_str(stdout(&output).trim()).expect("one JSON object");
    assert_eq!(json["pending_services"], serde_json::json!(["sales"]));
    assert_eq!(json["complete"], false);
    assert_eq!(json["confirmations"][0]["service"], "reporting");
    let output = suite
        .crmctl(
            Some(&admin()),
            &["events", "tail", "-s", "contacts", "--no-follow"],
        )
        .await;
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("crm.contacts.v1.ContactErased"), "{text}");
    assert!(
        !text.contains("ada0@example.com"),
        "text lines show no personal data"
    );
    // Following: the erasure removed Ada's earlier events, so the tail waits
    // for the next ContactCreated and ends after it (--max 1).
    let follower = suite
        .command(Some(&admin()))
        .args([
            "events",
            "tail",
            "-s",
            "contacts",
            "-t",
            "ContactCreated",
            "--max",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(
        suite.path("next.csv"),
        "First Name,E-mail\nGrace,grace@example.com\n",
    )
    .unwrap();
    let output = suite
        .crmctl(Some(&admin()), &["import", "contacts", "next.csv"])
        .await;
    assert_exit(&output, 0);
    let output = tokio::time::timeout(Duration::from_secs(30), follower.wait_with_output())
        .await
        .expect("the tail ends after --max events")
        .unwrap();
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("crm.contacts.v1.ContactCreated"), "{text}");
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl:
/// (CA PEM, server certificate PEM, server key PEM).
fn certificates(folder: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(folder)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=gateway",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        folder.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:gateway.test\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    let read = |name: &str| std::fs::read(folder.join(name)).unwrap();
    (read("ca.pem"), read("server.pem"), read("server.key"))
}

/// crmctl reaches an https:// gateway (TLS terminated in front of it, as an
/// ingress would) when it trusts the CA, by `--ca-cert` or a profile, and
/// refuses one it cannot verify.
#[tokio::test]
async fn an_https_gateway_is_reached_with_its_ca() {
    use tonic::transport::{Identity, Server, ServerTlsConfig};
    let folder = std::env::temp_dir().join(format!("crmctl-tls-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&folder).unwrap();
    let (_, cert, key) = certificates(&folder);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
        .unwrap()
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);
    let run = |args: Vec<String>| {
        let folder = folder.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_crmctl"))
                .args(&args)
                .env_clear()
                .env("HOME", &folder)
                .output()
                .await
                .unwrap()
        }
    };
    let gateway = format!("https://{addr}");
    let ca = folder.join("ca.pem").display().to_string();
    let output = run(vec![
        "--gateway".into(),
        gateway.clone(),
        "--ca-cert".into(),
        ca.clone(),
        "health".into(),
    ])
    .await;
    assert_exit(&output, 0);
    assert!(
        line_starting(&stdout(&output), "gateway").contains("SERVING"),
        "{}",
        stdout(&output)
    );

    let output = run(vec!["--gateway".into(), gateway.clone(), "health".into()]).await;
    assert_exit(&output, 4);
    assert!(
        stderr(&output).contains("cannot connect"),
        "{}",
        stderr(&output)
    );

    // The name to check can differ from the address dialled.
    let output = run(vec![
        "--gateway".into(),
        gateway.clone(),
        "--ca-cert".into(),
        ca.clone(),
        "--tls-server-name".into(),
        "gateway.test".into(),
        "health".into(),
    ])
    .await;
    assert_exit(&output, 0);
    let output = run(vec![
        "--gateway".into(),
        gateway,
        "--ca-cert".into(),
        ca,
        "--tls-server-name".into(),
        "elsewhere.test".into(),
        "health".into(),
    ])
    .await;
    assert_exit(&output, 4);
    let _ = std::fs::remove_dir_all(&folder);
}
