//! The benchmarks' machine-readable results: one JSON object per measured
//! row, appended to the file named by `CRM_BENCH_RESULTS` (`make bench`
//! sets `target/bench-results.jsonl`; unset, as in the smoke passes under
//! `cargo test`, nothing is written), beside the Markdown tables they print
//! for the README. Each line names its benchmark, its time and the cores.

use std::{
    future::Future,
    io::Write,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

type BoxedOp = Pin<Box<dyn Future<Output = ()> + Send>>;
/// One operation of a load run, given its index.
pub type Op = Arc<dyn Fn(usize) -> BoxedOp + Send + Sync>;

/// An [`Op`] from an async closure.
pub fn op<F, Fut>(f: F) -> Op
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |i| -> BoxedOp { Box::pin(f(i)) })
}

/// Runs `total` operations, `concurrency` at a time: how long they took and
/// every latency.
pub async fn drive(op: &Op, concurrency: usize, total: usize) -> (Duration, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return latencies;
                    }
                    let began = Instant::now();
                    op(i).await;
                    latencies.push(began.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await.expect("a load task"));
    }
    (started.elapsed(), all)
}

/// A bench binary's command line: `cargo bench` passes `--bench` (a full
/// run; without it, as under `cargo test --benches`, a small smoke pass),
/// and the words after `--` name the parts to run, some as `part=value`.
pub struct Args {
    /// A full run rather than a smoke pass.
    pub full: bool,
    /// The parts named, in order; none means the default set.
    pub parts: Vec<String>,
}

impl Args {
    /// This process's arguments.
    pub fn from_env() -> Self {
        Self::parse(std::env::args().skip(1))
    }

    fn parse(args: impl IntoIterator<Item = String>) -> Self {
        let (flags, parts): (Vec<String>, Vec<String>) =
            args.into_iter().partition(|a| a.starts_with('-'));
        Self {
            full: flags.iter().any(|a| a == "--bench"),
            parts,
        }
    }

    /// Whether `part` runs: it is named (alone or as `part=value`), or
    /// nothing is and it is one of the default set.
    pub fn runs(&self, part: &str, by_default: bool) -> bool {
        if self.parts.is_empty() {
            by_default
        } else {
            self.named(part)
        }
    }

    /// Whether `part` is named, alone or as `part=value`.
    pub fn named(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p.split('=').next() == Some(part))
    }

    /// The value of a `part=value` argument, if given.
    pub fn value(&self, part: &str) -> Option<&str> {
        self.parts
            .iter()
            .find_map(|p| p.strip_prefix(part)?.strip_prefix('='))
    }
}

/// Slices each mode's operations are run in by [`in_turns`].
pub const ROUNDS: usize = 4;
/// Operations per caller before [`in_turns`] measures (at least 20 in all).
pub const WARM_UP_PER_CALLER: usize = 5;

/// Runs every op of `modes` `total` times at `concurrency`, after a warm-up
/// ([`WARM_UP_PER_CALLER`] per caller, at least 20), in [`ROUNDS`] slices with the modes taking turns, so a
/// burst of other load on the machine falls on all of them alike. Each
/// mode's time and latencies, in order.
pub async fn in_turns(
    modes: &[&Op],
    concurrency: usize,
    total: usize,
) -> Vec<(Duration, Vec<Duration>)> {
    for op in modes {
        drive(op, concurrency, (concurrency * WARM_UP_PER_CALLER).max(20)).await;
    }
    let mut measured: Vec<(Duration, Vec<Duration>)> =
        modes.iter().map(|_| (Duration::ZERO, Vec::new())).collect();
    for _ in 0..ROUNDS {
        for (op, (elapsed, latencies)) in modes.iter().zip(&mut measured) {
            let (took, mut more) = drive(op, concurrency, total / ROUNDS).await;
            *elapsed += took;
            latencies.append(&mut more);
        }
    }
    measured
}

/// The `p` quantile (0 to 1) of `latencies`, in milliseconds; sorts them.
/// NaN when there are none.
pub fn percentile(latencies: &mut [Duration], p: f64) -> f64 {
    latencies.sort();
    let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies
        .get(index)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// Deterministic mixing (splitmix64's finaliser): the same generated data
/// from the same index on every run.
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Appends one result of `bench` (its fields: what was measured and the
/// figures) to `CRM_BENCH_RESULTS`, if set; a failure to write is
/// reported, not fatal.
pub fn record(bench: &str, fields: Value) {
    if let Some(path) = std::env::var_os("CRM_BENCH_RESULTS") {
        record_to(std::path::Path::new(&path), bench, fields);
    }
}

fn record_to(path: &std::path::Path, bench: &str, fields: Value) {
    let mut line = Map::new();
    line.insert("bench".into(), bench.into());
    line.insert("time".into(), chrono::Utc::now().to_rfc3339().into());
    line.insert(
        "cores".into(),
        std::thread::available_parallelism()
            .map_or(0, |n| n.get())
            .into(),
    );
    if let Value::Object(fields) = fields {
        line.extend(fields);
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| writeln!(file, "{}", Value::Object(line)));
    if let Err(error) = written {
        eprintln!("cannot write {}: {error}", path.display());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn args_name_parts_and_values() {
        let args = |words: &[&str]| super::Args::parse(words.iter().map(|w| w.to_string()));
        let none = args(&["--bench"]);
        assert!(none.full && none.runs("leads", true) && !none.runs("memory", false));
        let some = args(&["leads", "memory=500", "--nocapture"]);
        assert!(!some.full);
        assert!(some.runs("leads", true) && some.runs("memory", false));
        assert!(!some.runs("forecast", true) && !some.named("lead"));
        assert_eq!(some.value("memory"), Some("500"));
        assert_eq!(some.value("leads"), None);
    }

    use super::*;

    #[test]
    fn quantiles_are_read_off_the_sorted_latencies() {
        let mut latencies: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut latencies, 0.5), 51.0);
        assert_eq!(percentile(&mut latencies, 0.99), 99.0);
        assert_eq!(percentile(&mut latencies, 1.0), 100.0);
        assert!(percentile(&mut [], 0.5).is_nan());
        assert_ne!(mix(1), mix(2));
        assert_eq!(mix(7), mix(7));
    }

    #[test]
    fn a_result_is_one_json_line_with_its_bench() {
        let path = std::env::temp_dir().join(format!("bench-{}.jsonl", std::process::id()));
        record_to(
            &path,
            "demo",
            serde_json::json!({"path": "x", "per_second": 12.5}),
        );
        record_to(&path, "demo", serde_json::json!({"path": "y"}));
        let text = std::fs::read_to_string(&path).expect("results");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["bench"], "demo");
        assert_eq!(lines[0]["per_second"], 12.5);
        assert_eq!(lines[1]["path"], "y");
        let _ = std::fs::remove_file(path);
    }
}
