//! The gateway benchmark: the same call (`GetContact`) made directly to the
//! contacts process and through the gateway process, in one run on one
//! machine: requests per second and p50/p99 latency at several concurrencies,
//! and the gateway's peak memory.
//!
//! `make bench` runs it in full (it builds the contacts binary first). Under
//! `cargo test` it runs a small smoke pass, to keep it working.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crm_proto::contacts::{
    Contact, CreateContactRequest, GetContactRequest,
    contacts_service_client::ContactsServiceClient,
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
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Peak resident memory in MiB (Linux VmHWM).
    fn peak_memory_mib(&self) -> f64 {
        crm_testkit::peak_memory_mib(self.0.id())
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

/// `total` GetContact calls over `concurrency` tasks: req/s and latencies in ms.
async fn get_contacts(
    channel: &Channel,
    token: &MetadataValue<Ascii>,
    name: &str,
    concurrency: usize,
    total: usize,
) -> (f64, Vec<f64>) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut client = ContactsServiceClient::new(channel.clone());
            let (next, token, name) = (next.clone(), token.clone(), name.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let mut request = tonic::Request::new(GetContactRequest { name: name.clone() });
                    request
                        .metadata_mut()
                        .insert("authorization", token.clone());
                    let began = Instant::now();
                    client.get_contact(request).await.expect("GetContact");
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

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (total, concurrencies): (usize, &[usize]) = if full {
        (20_000, &[1, 8, 32])
    } else {
        (200, &[4])
    };
    let folder = std::env::temp_dir().join(format!("crm-gateway-bench-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&folder).expect("a temp folder");
    let contacts_port = crm_testkit::free_port().port();
    let _contacts = start(
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
    // per core, and a single worker (what a pod limited to one CPU gets).
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
    let direct = serving(contacts_port, "").await;
    let mut through = Vec::new();
    for (label, port, _) in &gateways {
        through.push((
            *label,
            serving(*port, "crm.contacts.v1.ContactsService").await,
        ));
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
    let name = ContactsServiceClient::new(direct.clone())
        .create_contact(request)
        .await
        .expect("CreateContact")
        .into_inner()
        .name;

    println!(
        "| path | concurrency | req/s | p50 ms | p99 ms | throughput vs direct | added p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &concurrency in concurrencies {
        // Warm every path (connections, caches), then measure them back to back.
        get_contacts(&direct, &token, &name, concurrency, concurrency * 20).await;
        for (_, channel) in &through {
            get_contacts(channel, &token, &name, concurrency, concurrency * 20).await;
        }
        let (direct_rps, direct_lat) =
            get_contacts(&direct, &token, &name, concurrency, total).await;
        let direct_p99 = percentile(&direct_lat, 0.99);
        println!(
            "| direct to contacts | {concurrency} | {direct_rps:.0} | {:.2} | {direct_p99:.2} | | |",
            percentile(&direct_lat, 0.5)
        );
        for (label, channel) in &through {
            let (rps, lat) = get_contacts(channel, &token, &name, concurrency, total).await;
            let p99 = percentile(&lat, 0.99);
            println!(
                "| through the gateway ({label}) | {concurrency} | {rps:.0} | {:.2} | {p99:.2} | {:.2} | {:.2} |",
                percentile(&lat, 0.5),
                rps / direct_rps,
                p99 - direct_p99
            );
        }
    }
    println!();
    for (label, _, process) in &gateways {
        println!(
            "gateway ({label}) peak RSS: {:.1} MiB",
            process.peak_memory_mib()
        );
    }
    let _ = std::fs::remove_dir_all(&folder);
}
