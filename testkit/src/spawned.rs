//! A service's own binary as a child process, configured by environment
//! variables as an operator's pod would be: how long it takes from spawn to
//! answering SERVING, and its memory. For benchmarks (`CARGO_BIN_EXE_<name>`
//! names the binary); tests use [`crate::ServiceProcess`].

use std::{
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{Backend, SECRET, SERVICE_SECRET, TestDatabase, bench, health_status};

/// The longest a start may take before the benchmark fails.
const START_LIMIT: Duration = Duration::from_secs(120);

/// A running service binary; killed when dropped.
pub struct SpawnedService {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// From spawning it to its health check answering SERVING.
    pub started_in: Duration,
    /// A channel to it.
    pub channel: Channel,
}

impl SpawnedService {
    /// Spawns `binary` as service `name` (its `CRM_<NAME>__*` settings) on
    /// `database_url` and a free port, verifying tokens signed with
    /// [`SECRET`], with `env` added; waits until it answers SERVING.
    pub async fn start(binary: &str, name: &str, database_url: &str, env: &[(&str, &str)]) -> Self {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let section = format!("CRM_{}__", name.to_uppercase());
        let began = Instant::now();
        let child = Command::new(binary)
            .env(format!("{section}LISTEN_ADDR"), addr.to_string())
            .env(format!("{section}DATABASE_URL"), database_url)
            .env("CRM_AUTH__HS256_SECRET", SECRET)
            .env("CRM_AUTH__SERVICE_SECRET", SERVICE_SECRET)
            .env("CRM_PAGING_SECRET", "bench")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let channel = crate::channel_to(addr);
        loop {
            if matches!(
                health_status(&channel, "").await,
                Ok(ServingStatus::Serving)
            ) {
                break;
            }
            assert!(
                began.elapsed() < START_LIMIT,
                "{name} did not answer SERVING within {START_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Self {
            child,
            addr,
            started_in: began.elapsed(),
            channel,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now, in MiB.
    pub fn resident_mib(&self) -> f64 {
        crate::resident_memory_mib(self.child.id())
    }

    /// Its peak resident memory so far, in MiB.
    pub fn peak_mib(&self) -> f64 {
        crate::peak_memory_mib(self.child.id())
    }
}

impl Drop for SpawnedService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Measures `binary`'s starts as service `name` on each backend: on an
/// empty database (the start migrates it) and again on the now migrated
/// one, each time to SERVING, and its idle resident memory a second after.
/// Prints a Markdown table and records each row as `service_start`.
pub async fn measure_starts(binary: &str, name: &str, env: &[(&str, &str)]) {
    println!("{name}: start to SERVING and idle memory (its binary, spawned)");
    println!();
    println!("| service | backend | database | start to SERVING ms | idle RSS MiB |");
    println!("|---|---|---|---:|---:|");
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let Some(db) = TestDatabase::create(backend).await else {
            eprintln!("{backend:?} is not available: skipped");
            continue;
        };
        for database in ["empty", "migrated"] {
            let service = SpawnedService::start(binary, name, &db.url, env).await;
            // Let its background tasks (consumers, sweepers) settle.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let ms = service.started_in.as_secs_f64() * 1000.0;
            let rss = service.resident_mib();
            println!("| {name} | {backend:?} | {database} | {ms:.0} | {rss:.1} |");
            bench::record(
                "service_start",
                serde_json::json!({
                    "service": name, "backend": format!("{backend:?}"),
                    "database": database, "start_ms": ms, "idle_rss_mib": rss,
                }),
            );
        }
    }
    println!();
}
