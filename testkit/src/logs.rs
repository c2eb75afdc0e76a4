//! Telemetry for a test binary: the services' own subscriber and tracer
//! (so spans carry trace context), installed once, before the first service
//! starts; warnings and errors are also kept, so a test can assert that none
//! of a kind was written (sqlx's notices about transaction state, say).

use std::{
    fmt::Write,
    sync::{Mutex, Once},
};

use tracing::{Level, Subscriber, field::Field};
use tracing_subscriber::{Layer, field::Visit, layer::Context};

/// At most this many lines are kept.
const KEPT: usize = 20_000;

static KEPT_LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Installs telemetry with warnings kept (once per test binary).
pub fn capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let installed = crm_shared::telemetry::init_with_tap(
            "tests",
            &crate::telemetry(),
            Some(Box::new(Keep)),
        );
        // The tracer must outlive every test.
        std::mem::forget(installed);
    });
}

/// The warnings and errors logged so far that contain `text` (as
/// `target: message field=value ...`).
pub fn warnings_containing(text: &str) -> Vec<String> {
    KEPT_LINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|line| line.contains(text))
        .cloned()
        .collect()
}

struct Keep;

impl<S: Subscriber> Layer<S> for Keep {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() > Level::WARN {
            return;
        }
        let mut line = format!("{}:", event.metadata().target());
        event.record(&mut Line(&mut line));
        let mut kept = KEPT_LINES.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT {
            kept.push(line);
        }
    }
}

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}
