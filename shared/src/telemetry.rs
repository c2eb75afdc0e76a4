//! Logs, traces and metrics, set up once per process.
//!
//! - `tracing` to stdout: human lines locally, JSON lines in production.
//! - OpenTelemetry traces and metrics, exported over OTLP/gRPC when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Span contexts exist either way, so
//!   the W3C `traceparent` is carried through gRPC metadata on every server
//!   ([`RpcLayer`]) and client ([`inject_trace_context`]) even without a collector.
//! - A server span per call, named after the method
//!   (`crm.sales.v1.SalesService/ConvertLead`) and marked as an error when the
//!   code is the server's fault (UNAVAILABLE, INTERNAL, ...; not NOT_FOUND).
//! - Per-RPC metrics: `rpc.server.duration` (a histogram, seconds) with the
//!   method and the gRPC status code, from which rate and errors follow.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use opentelemetry::{
    KeyValue, global,
    metrics::Histogram,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    metrics::SdkMeterProvider, propagation::TraceContextPropagator, trace::SdkTracerProvider,
};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, filter::LevelFilter, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::config::{LogFormat, TelemetrySettings};

/// Flushes exporters when dropped; keep it alive for the life of `main`.
pub struct TelemetryGuard {
    tracer: SdkTracerProvider,
    meter: Option<SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.tracer.shutdown();
        if let Some(meter) = &self.meter {
            let _ = meter.shutdown();
        }
    }
}

/// Errors setting telemetry up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("tracing subscriber: {0}")]
    Subscriber(String),
}

/// Installs the global subscriber, tracer and meter for `service`.
pub fn init(service: &str, settings: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    init_with_tap(service, settings, None)
}

/// A layer that sees every event besides the log output (tests keep warnings with one).
pub type Tap = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// [`init`], with `tap` also seeing every event.
pub fn init_with_tap(
    service: &str,
    settings: &TelemetrySettings,
    tap: Option<Tap>,
) -> Result<TelemetryGuard, TelemetryError> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let export = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.is_empty());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource.clone());
    let mut meter = None;
    if export {
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        tracer_builder = tracer_builder.with_batch_exporter(spans);
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_periodic_exporter(metrics)
            .build();
        global::set_meter_provider(provider.clone());
        meter = Some(provider);
    }
    let tracer_provider = tracer_builder.build();
    global::set_tracer_provider(tracer_provider.clone());
    // The log filter applies to log lines only: spans must exist at any log
    // level, or a quiet service would stop propagating trace context.
    // Without the source location, thread and busy/idle attributes, which
    // nothing reads: each cost every call's span work (clock reads on every
    // enter and exit for the busy/idle times).
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer_provider.tracer(service.to_owned()))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(LevelFilter::INFO);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(tap).with(otel);
    let result = match settings.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_filter(filter))
            .try_init(),
    };
    result.map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    Ok(TelemetryGuard {
        tracer: tracer_provider,
        meter,
    })
}

/// The W3C traceparent of the current span, if it belongs to a trace.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// The W3C trace id of the current span, if it belongs to a trace.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Writes the current span's trace context into outgoing gRPC metadata; call
/// it on every request a service makes to another.
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    let mut headers = std::mem::take(metadata).into_headers();
    inject_trace_headers(&mut headers);
    *metadata = tonic::metadata::MetadataMap::from_headers(headers);
}

/// Writes the current span's trace context into outgoing HTTP headers (a
/// proxy forwarding a call it does not decode).
pub fn inject_trace_headers(headers: &mut http::HeaderMap) {
    struct HeaderInjector<'a>(&'a mut http::HeaderMap);
    impl Injector for HeaderInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(key), Ok(value)) = (
                http::HeaderName::from_bytes(key.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                self.0.insert(key, value);
            }
        }
    }
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers))
    });
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
}

/// The request header that asks for the number of database statements a
/// call made, answered in the response header of the same name (unary
/// calls; a streaming call's count stops when its headers are sent).
pub const COUNT_STATEMENTS: &str = "x-crm-db-statements";

/// A tower layer for gRPC servers: a span per call that continues the caller's
/// trace, an access-log line with the call's database statements, and the
/// duration histogram.
#[derive(Clone)]
pub struct RpcLayer {
    duration: Histogram<f64>,
    log_calls: bool,
}

impl RpcLayer {
    /// The layer, recording into the global meter under `service`.
    pub fn new(service: &'static str) -> Self {
        let duration = global::meter(service)
            .f64_histogram("rpc.server.duration")
            .with_unit("s")
            .with_description("Duration of gRPC calls handled by this server")
            .build();
        Self {
            duration,
            log_calls: true,
        }
    }

    /// Keeps the span and the histogram but writes no log line (for a server
    /// that writes its own access log).
    pub fn without_log(self) -> Self {
        Self {
            log_calls: false,
            ..self
        }
    }
}

impl<S> tower::Layer<S> for RpcLayer {
    type Service = RpcService<S>;
    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            duration: self.duration.clone(),
            log_calls: self.log_calls,
        }
    }
}

/// The service [`RpcLayer`] wraps around a server.
#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    duration: Histogram<f64>,
    log_calls: bool,
}

impl<S, B, RB> tower::Service<http::Request<B>> for RpcService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send + Clone + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let span = tracing::info_span!(
            "rpc",
            otel.name = %method.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.method = %method,
            request_id = %request_id,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let parent = global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        let _ = span.set_parent(parent);
        let duration = self.duration.clone();
        let log_calls = self.log_calls;
        // Take the instance that was polled ready and leave a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let started = Instant::now();
        let report_statements = request.headers().contains_key(COUNT_STATEMENTS);
        Box::pin(
            async move {
                let (mut result, statements) =
                    crate::db::statements::counted(|| inner.call(request)).await;
                // Asked for (a test, or an operator chasing N+1 queries):
                // how many statements the call made before answering.
                // (A proxy passes its upstream's count on.)
                if report_statements
                    && let Ok(response) = &mut result
                    && !response.headers().contains_key(COUNT_STATEMENTS)
                {
                    response
                        .headers_mut()
                        .insert(COUNT_STATEMENTS, http::HeaderValue::from(statements));
                }
                // Errors answer trailers-only, so their status is in the
                // headers; a call that started streaming counts as OK here.
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0),
                    Err(_) => 14,
                };
                let elapsed = started.elapsed();
                let span = tracing::Span::current();
                span.record("rpc.grpc.status_code", code);
                if is_server_fault(code) {
                    span.record("otel.status_code", "ERROR");
                }
                duration.record(
                    elapsed.as_secs_f64(),
                    &[
                        KeyValue::new("rpc.method", method.clone()),
                        KeyValue::new("rpc.grpc.status_code", i64::from(code)),
                    ],
                );
                let elapsed_ms = elapsed.as_millis() as u64;
                match (log_calls, code) {
                    (false, _) => {}
                    (true, 0) => tracing::debug!(%method, code, elapsed_ms, statements, "rpc"),
                    (true, _) => tracing::info!(%method, code, elapsed_ms, statements, "rpc"),
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Whether a call that ended with `code` failed through the server's fault:
/// the OpenTelemetry conventions for gRPC servers mark only these spans as
/// errors, and leave a caller's mistake (NOT_FOUND, INVALID_ARGUMENT, ...) unset.
fn is_server_fault(code: i32) -> bool {
    use tonic::Code;
    matches!(
        Code::from(code),
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_calls_carry_the_current_trace_context() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("outgoing call");
            let _entered = span.enter();
            let mut metadata = tonic::metadata::MetadataMap::new();
            inject_trace_context(&mut metadata);
            let sent = metadata
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            assert!(sent.is_some(), "a traceparent is sent");
            assert_eq!(sent, current_traceparent(), "it names the current span");
        });
        assert_eq!(current_traceparent(), None, "no trace outside a span");
    }
}
