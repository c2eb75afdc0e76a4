//! The gateway benchmark: the same calls made directly to the contacts
//! process, through the gateway and through nginx's `grpc_pass` (what
//! operators would otherwise put in front), in one run on one machine with one
//! load generator: unary `GetContact` at several concurrencies and a
//! server-streaming `ExportContacts`; requests per second, p50/p99 latency,
//! the p99 each proxy adds, the CPU each proxy spends per call (from
//! `/proc/<pid>/stat`, nginx's workers included) and peak memory.
//!
//! `make bench` runs it in full (it builds the contacts binary first). Under
//! `cargo test` it runs a small smoke pass, to keep it working. nginx comes
//! from Debian's `nginx-light` (`.ci/run` installs it); without it the nginx
//! rows are left out, except under CI, where that fails.

use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crm_proto::contacts::{
    Contact, CreateContactRequest, EmailAddress, ExportContactsRequest, GetContactRequest,
    ImportContactsRequest, contacts_service_client::ContactsServiceClient,
};
use crm_shared::auth::{Role, sign_hs256};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

const SECRET: &str = "bench-secret";

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        // nginx runs in a process group of its own (see start_nginx): its
        // workers outlive a killed master, so the whole group goes.
        let pid = self.0.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Peak resident memory in MiB (Linux VmHWM), summed over the process
    /// and its children (nginx's workers).
    fn peak_memory_mib(&self) -> f64 {
        let pid = self.0.id();
        crm_testkit::peak_memory_mib(pid)
            + crm_testkit::children(pid)
                .into_iter()
                .map(crm_testkit::peak_memory_mib)
                .sum::<f64>()
    }

    /// CPU used so far by the process and its children, in microseconds.
    fn cpu_micros(&self) -> f64 {
        crm_testkit::cpu_micros(self.0.id())
    }
}

/// The contacts binary of the same profile as this bench, or `CRM_CONTACTS_BIN`.
fn contacts_binary() -> PathBuf {
    if let Ok(path) = std::env::var("CRM_CONTACTS_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir.join("contacts");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build --release --bin contacts), or set CRM_CONTACTS_BIN",
        path.display()
    );
    path
}

fn start(binary: PathBuf, env: &[(&str, String)]) -> Process {
    let mut command = Command::new(binary);
    command
        .env("CRM_AUTH__HS256_SECRET", SECRET)
        .env("CRM_PAGING_SECRET", "bench")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    Process(command.spawn().expect("start a service binary"))
}

/// Waits until `port` answers health SERVING for `service`.
async fn serving(port: u16, service: &str) -> Channel {
    let started = Instant::now();
    loop {
        if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("a URL")
            .connect()
            .await
        {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let request = tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            };
            if health
                .check(request)
                .await
                .is_ok_and(|r| r.into_inner().status == 1)
            {
                return channel;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "port {port} never served {service}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// nginx's configuration: HTTP/2 cleartext in, `grpc_pass` to the contacts
/// process with upstream connections kept alive, no access log (the gateway
/// logs none at `warn` either), and no cap on the calls per connection
/// (nginx's default of 1,000 closes a client's connection mid-load, which the
/// gateway never does). Printed by the benchmark so anyone can rerun it.
fn nginx_config(folder: &std::path::Path, listen: u16, upstream: u16, workers: &str) -> String {
    let dir = folder.display();
    format!(
        "worker_processes {workers};
daemon off;
pid {dir}/nginx-{listen}.pid;
error_log {dir}/nginx-{listen}.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/body-{listen};
    proxy_temp_path {dir}/proxy-{listen};
    fastcgi_temp_path {dir}/fastcgi-{listen};
    uwsgi_temp_path {dir}/uwsgi-{listen};
    scgi_temp_path {dir}/scgi-{listen};
    upstream contacts {{
        server 127.0.0.1:{upstream};
        keepalive 128;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{listen} http2;
        http2_max_concurrent_streams 1024;
        location / {{
            grpc_pass grpc://contacts;
            grpc_read_timeout 300s;
        }}
    }}
}}
"
    )
}

/// nginx in front of `upstream` with `workers` worker processes, or None
/// where nginx is not installed (a failure under CI, which installs it).
fn start_nginx(folder: &std::path::Path, upstream: u16, workers: &str) -> Option<(u16, Process)> {
    let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists());
    let Some(binary) = binary else {
        assert!(
            std::env::var("CI").is_err(),
            "nginx is missing: .ci/run installs Debian's nginx-light"
        );
        eprintln!("nginx not installed (apt-get install nginx-light): its rows are left out");
        return None;
    };
    let port = crm_testkit::free_port().port();
    let config = folder.join(format!("nginx-{port}.conf"));
    std::fs::write(&config, nginx_config(folder, port, upstream, workers)).expect("nginx.conf");
    let child = Command::new(binary)
        .process_group(0)
        .arg("-p")
        .arg(folder)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .expect("start nginx");
    Some((port, Process(child)))
}

/// `total` GetContact calls over `concurrency` tasks: req/s and latencies in ms.
async fn get_contacts(
    channel: &Channel,
    token: &MetadataValue<Ascii>,
    name: &str,
    concurrency: usize,
    total: usize,
) -> (f64, Vec<f64>) {
    let name = name.to_owned();
    load(
        channel,
        token,
        concurrency,
        total,
        move |mut client, request| {
            let request = request.map(|()| GetContactRequest { name: name.clone() });
            async move {
                client.get_contact(request).await.expect("GetContact");
            }
        },
    )
    .await
}

/// `total` whole ExportContacts streams over `concurrency` tasks: streams/s
/// and each stream's time to its last message in ms.
async fn export_contacts(
    channel: &Channel,
    token: &MetadataValue<Ascii>,
    expected: usize,
    concurrency: usize,
    total: usize,
) -> (f64, Vec<f64>) {
    load(
        channel,
        token,
        concurrency,
        total,
        move |mut client, request| {
            let request = request.map(|()| ExportContactsRequest::default());
            async move {
                let mut stream = client
                    .export_contacts(request)
                    .await
                    .expect("ExportContacts")
                    .into_inner();
                let mut received = 0;
                while let Some(chunk) = stream.message().await.expect("an export chunk") {
                    received += chunk.contacts.len();
                }
                assert_eq!(received, expected, "the whole export arrives");
            }
        },
    )
    .await
}

/// Runs `call` `total` times over `concurrency` tasks, each with its own
/// client on `channel` and a request carrying `token`: calls/s and sorted
/// latencies in ms.
async fn load<F, Fut>(
    channel: &Channel,
    token: &MetadataValue<Ascii>,
    concurrency: usize,
    total: usize,
    call: F,
) -> (f64, Vec<f64>)
where
    F: Fn(ContactsServiceClient<Channel>, tonic::Request<()>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = ContactsServiceClient::new(channel.clone());
            let (next, token, call) = (next.clone(), token.clone(), call.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let mut request = tonic::Request::new(());
                    request
                        .metadata_mut()
                        .insert("authorization", token.clone());
                    let began = Instant::now();
                    call(client.clone(), request).await;
                    latencies.push(began.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a load task"));
    }
    all.sort_by(f64::total_cmp);
    (total as f64 / started.elapsed().as_secs_f64(), all)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// One way to reach the contacts process: its label, a channel, and the
/// proxy process whose CPU and memory are measured (None: direct).
struct Path<'a> {
    label: String,
    channel: Channel,
    proxy: Option<&'a Process>,
}

/// The figures of one measured run on one path.
#[derive(Clone)]
struct Measured {
    per_second: f64,
    p50: f64,
    p99: f64,
    /// Proxy CPU per call in µs; the contacts process's for the direct path.
    cpu_per_call: f64,
}

/// Runs `run` on `path`, reading the CPU of the proxy (or, direct, of the
/// contacts process) around it.
async fn measure<Fut>(path: &Path<'_>, contacts: &Process, calls: usize, run: Fut) -> Measured
where
    Fut: std::future::Future<Output = (f64, Vec<f64>)>,
{
    let measured = path.proxy.unwrap_or(contacts);
    let cpu_before = measured.cpu_micros();
    let (per_second, latencies) = run.await;
    Measured {
        per_second,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        cpu_per_call: (measured.cpu_micros() - cpu_before) / calls as f64,
    }
}

/// Prints a table row and records it in the results file.
fn report(case: &str, concurrency: usize, path: &Path<'_>, row: &Measured, direct: &Measured) {
    let proxied = path.proxy.is_some();
    let (vs_direct, added_p99) = if proxied {
        (
            format!("{:.2}", row.per_second / direct.per_second),
            format!("{:.2}", row.p99 - direct.p99),
        )
    } else {
        (String::new(), String::new())
    };
    println!(
        "| {case} | {} | {concurrency} | {:.0} | {:.2} | {:.2} | {vs_direct} | {added_p99} | {:.0} |",
        path.label, row.per_second, row.p50, row.p99, row.cpu_per_call
    );
    crm_testkit::bench::record(
        "gateway",
        serde_json::json!({
            "case": case,
            "path": path.label,
            "concurrency": concurrency,
            "per_second": row.per_second,
            "p50_ms": row.p50,
            "p99_ms": row.p99,
            "cpu_us_per_call": row.cpu_per_call,
            "cpu_of": if proxied { "proxy" } else { "contacts" },
            "added_p99_ms": proxied.then_some(row.p99 - direct.p99),
            "vs_direct": proxied.then_some(row.per_second / direct.per_second),
        }),
    );
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // (GetContact calls per run, their concurrencies, exports per run, contacts per export)
    let (total, concurrencies, exports, exported): (usize, &[usize], usize, usize) = if full {
        (20_000, &[1, 8, 32], 200, 5_000)
    } else {
        (200, &[4], 4, 600)
    };
    let folder = std::env::temp_dir().join(format!("crm-gateway-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&folder).expect("a temp folder");
    let contacts_port = crm_testkit::free_port().port();
    let contacts = start(
        contacts_binary(),
        &[
            (
                "CRM_CONTACTS__LISTEN_ADDR",
                format!("127.0.0.1:{contacts_port}"),
            ),
            (
                "CRM_CONTACTS__DATABASE_URL",
                format!("sqlite://{}?mode=rwc", folder.join("contacts.db").display()),
            ),
        ],
    );
    // Two gateways before the same contacts: tokio's default of one worker
    // per core, and a single worker (what a pod limited to one CPU gets);
    // nginx likewise with a worker per core and with one.
    let gateways: Vec<(&str, u16, Process)> = [("default workers", None), ("1 worker", Some("1"))]
        .into_iter()
        .map(|(label, workers)| {
            let port = crm_testkit::free_port().port();
            let mut env = vec![
                ("CRM_GATEWAY__LISTEN_ADDR", format!("127.0.0.1:{port}")),
                ("CRM_GATEWAY__METRICS_ADDR", "127.0.0.1:0".to_owned()),
                (
                    "CRM_GATEWAY__UPSTREAMS__CONTACTS__ADDRESSES",
                    format!("http://127.0.0.1:{contacts_port}"),
                ),
                // The benchmark measures the proxy, not the rate limiter.
                ("CRM_GATEWAY__RATE_PER_TENANT", "1000000".to_owned()),
                ("CRM_GATEWAY__BURST_PER_TENANT", "1000000".to_owned()),
            ];
            if let Some(workers) = workers {
                env.push(("TOKIO_WORKER_THREADS", workers.to_owned()));
            }
            (
                label,
                port,
                start(env!("CARGO_BIN_EXE_gateway").into(), &env),
            )
        })
        .collect();
    let nginxes: Vec<(&str, u16, Process)> = [("worker per core", "auto"), ("1 worker", "1")]
        .into_iter()
        .filter_map(|(label, workers)| {
            start_nginx(&folder, contacts_port, workers)
                .map(|(port, process)| (label, port, process))
        })
        .collect();
    let mut paths = vec![Path {
        label: "direct to contacts".into(),
        channel: serving(contacts_port, "").await,
        proxy: None,
    }];
    for (label, port, process) in &gateways {
        paths.push(Path {
            label: format!("gateway ({label})"),
            channel: serving(*port, "crm.contacts.v1.ContactsService").await,
            proxy: Some(process),
        });
    }
    for (label, port, process) in &nginxes {
        paths.push(Path {
            label: format!("nginx grpc_pass ({label})"),
            // nginx passes the health check through to contacts.
            channel: serving(*port, "").await,
            proxy: Some(process),
        });
    }
    let token: MetadataValue<Ascii> = format!(
        "Bearer {}",
        sign_hs256(
            SECRET,
            "bench",
            "bench",
            &[Role::Admin],
            Duration::from_secs(3600)
        )
        .expect("a token")
    )
    .parse()
    .expect("a header");
    let name = create_contacts(&paths[0].channel, &token, exported).await;

    println!(
        "| call | path | concurrency | calls/s | p50 ms | p99 ms | throughput vs direct | added p99 ms | CPU µs per call |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &concurrency in concurrencies {
        // Warm every path (connections, caches), then measure them back to back.
        for path in &paths {
            get_contacts(&path.channel, &token, &name, concurrency, concurrency * 20).await;
        }
        let mut direct = None;
        for path in &paths {
            let row = measure(
                path,
                &contacts,
                total,
                get_contacts(&path.channel, &token, &name, concurrency, total),
            )
            .await;
            let direct = direct.get_or_insert_with(|| row.clone());
            report("GetContact", concurrency, path, &row, direct);
        }
    }
    for concurrency in [1, 4] {
        let mut direct = None;
        for path in &paths {
            export_contacts(&path.channel, &token, exported, concurrency, concurrency).await;
            let row = measure(
                path,
                &contacts,
                exports,
                export_contacts(&path.channel, &token, exported, concurrency, exports),
            )
            .await;
            let direct = direct.get_or_insert_with(|| row.clone());
            report(
                &format!("ExportContacts ({exported} contacts)"),
                concurrency,
                path,
                &row,
                direct,
            );
        }
    }
    println!();
    for path in &paths[1..] {
        if let Some(process) = path.proxy {
            let peak = process.peak_memory_mib();
            println!("{} peak RSS (processes summed): {peak:.1} MiB", path.label);
            crm_testkit::bench::record(
                "gateway",
                serde_json::json!({"case": "peak RSS", "path": path.label, "mib": peak}),
            );
        }
    }
    if let Some((_, port, _)) = nginxes.first() {
        println!("\nnginx's configuration (the worker-per-core one):\n");
        println!("{}", nginx_config(&folder, *port, contacts_port, "auto"));
    }
    drop(nginxes);
    let _ = std::fs::remove_dir_all(&folder);
}

/// Creates `count` contacts (one plus an import of the rest): the name of
/// the first, which GetContact reads; ExportContacts streams them all.
async fn create_contacts(channel: &Channel, token: &MetadataValue<Ascii>, count: usize) -> String {
    let mut client = ContactsServiceClient::new(channel.clone());
    let mut request = tonic::Request::new(CreateContactRequest {
        contact: Some(Contact {
            given_name: "Bench".into(),
            family_name: "Mark".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    });
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    let name = client
        .create_contact(request)
        .await
        .expect("CreateContact")
        .into_inner()
        .name;
    let rows = (1..count).map(|i| ImportContactsRequest {
        contact: Some(Contact {
            given_name: format!("Given{i}"),
            family_name: format!("Family{i}"),
            emails: vec![EmailAddress {
                address: format!("person{i}@example.com"),
                label: "work".into(),
                primary: true,
            }],
            job_title: "Buyer".into(),
            ..Default::default()
        }),
    });
    let mut request = tonic::Request::new(tokio_stream::iter(rows));
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    let mut results = client
        .import_contacts(request)
        .await
        .expect("ImportContacts")
        .into_inner();
    while results.message().await.expect("import results").is_some() {}
    name
}
