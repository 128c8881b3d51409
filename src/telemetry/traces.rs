//! Traces: the W3C trace context a platform sends (`traceparent`, `tracestate`) is continued
//! through the gateway's spans and on to every bank call; an invalid or missing one starts a
//! new trace.
//!
//! Spans are `tracing` spans; the `tracing-opentelemetry` layer of [`Traces`] gives each an
//! OpenTelemetry span context (trace id, span id), and the W3C propagator of
//! `opentelemetry_sdk` reads and writes the headers. [`continue_trace`] gives the request span
//! its parent and its `trace_id` field (so every log line of the request carries it);
//! [`inject`] writes a span's context into the headers of a call to a bank.
//!
//! With an OTLP endpoint configured ([`Traces::otlp`]), finished spans are also exported:
//! OTLP/HTTP with protobuf bodies to `<endpoint>/v1/traces`, in batches, by a task on the
//! tokio runtime; [`Traces::shutdown`] exports what is left when the gateway stops.

use std::sync::LazyLock;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
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

/// The path of the traces signal under an OTLP/HTTP endpoint.
const OTLP_TRACES_PATH: &str = "v1/traces";

/// How long one export may take before it is given up.
const OTLP_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the OTLP exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("otlp_endpoint {0}: must be an http or https URL")]
    Endpoint(String),
    #[error("the OTLP exporter: {0}")]
    Exporter(String),
    #[error("the OTLP HTTP client: {0}")]
    Client(String),
}

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

    /// Trace ids and propagation, and every finished span exported to the OTLP/HTTP
    /// collector at `endpoint` (its base URL: spans go to `<endpoint>/v1/traces`, protobuf),
    /// in batches by a task spawned on the current tokio runtime — so it must be called
    /// inside one. A collector that is down loses spans, never requests.
    pub fn otlp(endpoint: &url::Url) -> Result<Traces, ExportError> {
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(ExportError::Endpoint(endpoint.to_string()));
        }
        let mut base = endpoint.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let traces_url = base
            .join(OTLP_TRACES_PATH)
            .map_err(|_| ExportError::Endpoint(endpoint.to_string()))?;
        // The crypto library of every other client (aws-lc-rs), no redirects.
        let client = crate::crypto::http_client_builder()
            .timeout(OTLP_EXPORT_TIMEOUT)
            .build()
            .map_err(|error| ExportError::Client(error.to_string()))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url.as_str())
            .with_timeout(OTLP_EXPORT_TIMEOUT)
            .build()
            .map_err(|error| ExportError::Exporter(error.to_string()))?;
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let resource = Resource::builder_empty()
            .with_service_name(SCOPE)
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        Ok(Traces {
            provider: SdkTracerProvider::builder()
                .with_resource(resource)
                .with_span_processor(processor)
                .build(),
        })
    }

    /// Exports the spans still waiting in the batch and stops the exporter (nothing to do
    /// without one). The SDK blocks its caller until the export ends, so it runs on a
    /// blocking thread while the runtime keeps the export going.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let shutdown = tokio::task::spawn_blocking(move || provider.shutdown());
        if let Ok(Err(error)) = shutdown.await {
            // Without an exporter there is nothing to shut down, which the SDK reports too.
            tracing::debug!(%error, "trace export shutdown");
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
