//! The benchmarks' machine-readable results: one JSON object per measured
//! row, appended to the file named by `CRM_BENCH_RESULTS` (`make bench`
//! sets `target/bench-results.jsonl`; unset, as in the smoke passes under
//! `cargo test`, nothing is written), beside the Markdown tables they print
//! for the README. Each line names its benchmark, its time and the cores.

use std::io::Write;

use serde_json::{Map, Value};

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
    use super::*;

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
