//! What an operator sees of a running gateway: log lines, JSON for a pipeline or text for a
//! terminal (coloured only there), and traces.
//!
//! One subscriber for the process, built by [`subscriber`]: `cli` installs it over the
//! process's standard error, tests over a buffer they read back. Its layers: the filter, the
//! trace layer ([`traces`]: every span gets a trace context, continued from a platform's
//! `traceparent`) and the formatting layer.

pub mod metrics;
pub mod traces;

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, every field at the top level (for a log pipeline).
    Json,
    /// Human-readable lines; coloured only on a terminal.
    Text,
}

impl LogFormat {
    /// Parses `json` or `text`.
    pub fn parse(text: &str) -> Result<LogFormat, String> {
        match text {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!("{other:?}: expected \"json\" or \"text\"")),
        }
    }

    /// The format when none is asked for: text on a terminal, JSON anywhere else (a file, a
    /// pipe, a container's log collector).
    pub fn default_for(stream_is_terminal: bool) -> LogFormat {
        if stream_is_terminal {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

/// What the log subscriber is built from.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// ANSI colours; only ever on for a terminal.
    pub ansi: bool,
    /// An `EnvFilter` directive (`info`, `bankgate=debug,info`, …).
    pub filter: String,
}

impl LogSettings {
    /// Settings for the process's standard error: `format` if given, else JSON unless it is
    /// a terminal; `filter` an `EnvFilter` directive.
    pub fn for_stderr(format: Option<LogFormat>, filter: String) -> LogSettings {
        let terminal = std::io::stderr().is_terminal();
        LogSettings {
            format: format.unwrap_or(LogFormat::default_for(terminal)),
            ansi: terminal,
            filter,
        }
    }
}

/// The formatting layer for `settings`, writing to `writer`.
pub fn fmt_layer<S, W>(settings: &LogSettings, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match settings.format {
        // The event's fields at the top level, the current span's beside them (`span`), and
        // every span the event is in (`spans`), so that a line inside a bank call still carries
        // the request's id and trace id.
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
        LogFormat::Text => layer.with_ansi(settings.ansi).boxed(),
    }
}

/// The whole subscriber: the filter, the trace layer of `traces` and the formatting layer over
/// `writer`.
pub fn subscriber<W>(
    settings: &LogSettings,
    writer: W,
    traces: &traces::Traces,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(traces.layer())
        .with(fmt_layer(settings, writer))
}

/// Installs the subscriber for the process (standard error); a second call changes nothing.
pub fn init(settings: &LogSettings, traces: &traces::Traces) {
    use tracing_subscriber::util::SubscriberInitExt;
    // Also routes dependencies' `log` records to it.
    let _ = subscriber(settings, std::io::stderr, traces).try_init();
}
