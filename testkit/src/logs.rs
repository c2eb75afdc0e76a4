//! What the services log while a test binary runs: warnings and errors go to
//! stderr as usual and are also kept, so a test can assert that none of a
//! kind was written (sqlx's notices about transaction state, say). Installed
//! once per test binary, before the first service starts.

use std::{
    fmt::Write,
    sync::{Mutex, Once},
};

use tracing::{Level, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter, Layer, field::Visit, layer::Context, layer::SubscriberExt, util::SubscriberInitExt,
};

/// At most this many lines are kept.
const KEPT: usize = 20_000;

static KEPT_LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Installs the capturing subscriber (once; a no-op if one is installed).
pub fn capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_filter(filter))
            .with(Keep)
            .try_init();
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
