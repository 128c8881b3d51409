//! Traces: the W3C trace context a platform sends (`traceparent`, `tracestate`) is continued
//! through the gateway's spans and on to every bank call; an invalid or missing one starts a
//! new trace.
//!
//! Spans are `tracing` spans; the `tracing-opentelemetry` layer of [`Traces`] gives each an
//! OpenTelemetry span context (trace id, span id), and the W3C propagator of
//! `opentelemetry_sdk` reads and writes the headers. [`continue_trace`] gives the request span
//! its parent and its `trace_id` field (so every log line of the request carries it);
//! [`inject`] writes a span's context into the headers of a call to a bank.

use std::sync::LazyLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The instrumentation scope of the gateway's spans.
const SCOPE: &str = "bankgate";

/// The header of the W3C trace context.
const TRACEPARENT: &str = "traceparent";

/// The field of the request span that holds the trace id (32 lowercase hex digits).
pub const TRACE_ID: &str = "trace_id";

static PROPAGATOR: LazyLock<TraceContextPropagator> = LazyLock::new(TraceContextPropagator::new);

/// The process's tracer provider: it gives spans their ids and, when an exporter is
/// configured, exports them.
#[derive(Debug, Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Trace ids and propagation only: nothing leaves the process.
    pub fn local() -> Traces {
        Traces {
            provider: SdkTracerProvider::builder().build(),
        }
    }

    /// The `tracing` layer that gives spans their OpenTelemetry context.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(SCOPE))
            // Attributes an operator reads: the span's own fields and its target. Source
            // locations, threads and busy/idle times cost on every span and say little.
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            // Nothing else reads the OpenTelemetry context of the current thread.
            .with_context_activation(false)
    }
}

/// Continues the trace that `headers` carry in `span` (the request span), or starts a new one
/// when they carry none or an invalid one (W3C Trace Context: an invalid `traceparent` is
/// ignored, and its `tracestate` with it). Records the trace id in the span's
/// [`TRACE_ID`] field and returns it (`None` without a tracing layer).
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) -> Option<TraceId> {
    let parent = if well_formed(headers) {
        PROPAGATOR.extract(&HeaderExtractor(headers))
    } else {
        opentelemetry::Context::new()
    };
    // Fails only when no layer gives spans a context (then there is nothing to continue).
    let _ = span.set_parent(parent);
    let trace_id = trace_id(span)?;
    span.record(TRACE_ID, tracing::field::display(trace_id));
    Some(trace_id)
}

/// What the propagator leaves to its caller: exactly one `traceparent`, whose fields have the
/// lengths the W3C format gives them (2, 32, 16 and 2 hex digits; the propagator would read a
/// shorter id as one with leading zeros). A request without one is well formed too: it
/// starts a trace.
fn well_formed(headers: &http::HeaderMap) -> bool {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return headers.get(TRACEPARENT).is_none();
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let lengths: Vec<usize> = value.trim().split('-').take(4).map(str::len).collect();
    lengths == [2, 32, 16, 2]
}

/// The trace id of `span`, if it has a valid context.
pub fn trace_id(span: &tracing::Span) -> Option<TraceId> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id())
}

/// Writes `span`'s context into `headers` (`traceparent`, and `tracestate` when the trace has
/// one): the callee sees the same trace id and `span` as its parent. Nothing is written for a
/// span without a valid context.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    if context.span().span_context().is_valid() {
        PROPAGATOR.inject_context(&context, &mut HeaderInjector(headers));
    }
}

#[cfg(test)]
mod tests;
