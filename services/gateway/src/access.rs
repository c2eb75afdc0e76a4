//! What the gateway records of each call: one access-log line, per-method and
//! per-status counters served at `/metrics` (Prometheus text), and the
//! `gateway.call.duration` histogram exported over OTLP.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use opentelemetry::{KeyValue, global, metrics::Histogram};

use crate::{body::CallSignals, upstream::Upstream};

/// One call in flight, logged and counted when it ends: by [`CallRecord::finish`]
/// with its status, or, when the client cancels it or resets its stream before
/// that, on drop as CANCELLED with the bytes moved so far.
pub struct CallRecord {
    /// The request path, for the log line.
    pub path: String,
    /// The method, or `unknown` for a path the suite does not define (so a
    /// client cannot grow the metrics without bound).
    pub method: String,
    /// The caller's tenant, once authenticated.
    pub tenant: String,
    /// The request id sent upstream.
    pub request_id: String,
    /// The W3C trace id of the call.
    pub trace_id: String,
    /// The upstream the call went to, if it got that far.
    pub upstream: String,
    /// When the gateway received it.
    pub started: Instant,
    /// Request bytes, counted by the request body.
    pub signals: Arc<CallSignals>,
    /// Where counts go.
    pub metrics: Arc<Metrics>,
    /// Response bytes forwarded so far.
    pub bytes_out: u64,
    /// Logged and counted already.
    finished: bool,
}

impl CallRecord {
    /// A call that has just arrived.
    pub fn start(method: String, path: String, request_id: String, metrics: Arc<Metrics>) -> Self {
        Self {
            method,
            path,
            tenant: String::new(),
            request_id,
            trace_id: crm_shared::telemetry::current_trace_id().unwrap_or_default(),
            upstream: String::new(),
            started: Instant::now(),
            signals: Arc::new(CallSignals::default()),
            metrics,
            bytes_out: 0,
            finished: false,
        }
    }

    /// Logs the call with its status and counts it.
    pub fn finish(mut self, code: i32) {
        self.log(code);
        self.finished = true;
    }

    fn log(&self, code: i32) {
        let bytes_out = self.bytes_out;
        let elapsed = self.started.elapsed();
        let bytes_in = self.signals.bytes_in.load(Ordering::Relaxed);
        tracing::info!(
            target: "access",
            method = %self.path,
            tenant = %self.tenant,
            status = code_name(code),
            duration_us = elapsed.as_micros() as u64,
            bytes_in,
            bytes_out,
            request_id = %self.request_id,
            trace_id = %self.trace_id,
            upstream = %self.upstream,
            "call"
        );
        self.metrics
            .record(&self.method, code, elapsed, bytes_in, bytes_out);
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        if !self.finished {
            self.log(tonic::Code::Cancelled as i32);
        }
    }
}

/// A counter family: its name, type, help text and how to read it.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Counts) -> String,
);

#[derive(Default, Clone, Copy)]
struct Counts {
    calls: u64,
    seconds: f64,
    bytes_in: u64,
    bytes_out: u64,
}

/// The gateway's counters.
pub struct Metrics {
    by_call: Mutex<BTreeMap<(String, i32), Counts>>,
    duration: Histogram<f64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            by_call: Mutex::default(),
            duration: global::meter("gateway")
                .f64_histogram("gateway.call.duration")
                .with_unit("s")
                .with_description("Duration of calls through the gateway, by method and status")
                .build(),
        }
    }
}

impl Metrics {
    fn record(&self, method: &str, code: i32, elapsed: Duration, bytes_in: u64, bytes_out: u64) {
        self.duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("rpc.method", method.to_owned()),
                KeyValue::new("rpc.grpc.status_code", i64::from(code)),
            ],
        );
        let mut by_call = self.by_call.lock().unwrap_or_else(|e| e.into_inner());
        let counts = by_call.entry((method.to_owned(), code)).or_default();
        counts.calls += 1;
        counts.seconds += elapsed.as_secs_f64();
        counts.bytes_in += bytes_in;
        counts.bytes_out += bytes_out;
    }

    /// The Prometheus text exposition of every counter and the replica gauges.
    pub fn render(&self, upstreams: &[Arc<Upstream>]) -> String {
        let by_call = self
            .by_call
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        let families: [Family; 4] = [
            (
                "crm_gateway_calls_total",
                "counter",
                "Calls through the gateway, by method and gRPC status.",
                |c| c.calls.to_string(),
            ),
            (
                "crm_gateway_call_seconds_total",
                "counter",
                "Time spent in calls through the gateway, by method and gRPC status.",
                |c| format!("{:.6}", c.seconds),
            ),
            (
                "crm_gateway_request_bytes_total",
                "counter",
                "Request bytes forwarded, by method and gRPC status.",
                |c| c.bytes_in.to_string(),
            ),
            (
                "crm_gateway_response_bytes_total",
                "counter",
                "Response bytes forwarded, by method and gRPC status.",
                |c| c.bytes_out.to_string(),
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((method, code), counts) in &by_call {
                let _ = writeln!(
                    out,
                    "{name}{{method=\"{method}\",code=\"{}\"}} {}",
                    code_name(*code),
                    value(counts)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP crm_gateway_upstream_replicas Replicas of each upstream, by state: \
             healthy (taking calls), ejected (failing calls), down (failing health checks).\n\
             # TYPE crm_gateway_upstream_replicas gauge"
        );
        for upstream in upstreams {
            let states = upstream.replica_states();
            let name = upstream.name();
            for (state, count) in [
                ("healthy", states.serving),
                ("ejected", states.ejected),
                ("down", states.down),
            ] {
                let _ = writeln!(
                    out,
                    "crm_gateway_upstream_replicas{{upstream=\"{name}\",state=\"{state}\"}} {count}"
                );
            }
        }
        let ejections: Vec<(&str, (u64, u64))> = upstreams
            .iter()
            .map(|upstream| (upstream.name(), upstream.ejection_counts()))
            .collect();
        let _ = writeln!(
            out,
            "# HELP crm_gateway_ejections_total Replicas ejected for failing calls.\n\
             # TYPE crm_gateway_ejections_total counter"
        );
        for (name, (ejected, _)) in &ejections {
            let _ = writeln!(
                out,
                "crm_gateway_ejections_total{{upstream=\"{name}\"}} {ejected}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP crm_gateway_ejections_refused_total Ejections not made: the replica was \
             the last taking calls, or half were ejected already.\n\
             # TYPE crm_gateway_ejections_refused_total counter"
        );
        for (name, (_, refused)) in &ejections {
            let _ = writeln!(
                out,
                "crm_gateway_ejections_refused_total{{upstream=\"{name}\"}} {refused}"
            );
        }
        out
    }
}

/// The canonical name of a gRPC status code.
pub fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}
