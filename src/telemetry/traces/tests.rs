//! Trace context in and out: which `traceparent` headers are continued, and what a bank call
//! is sent.

use super::*;
use tracing_subscriber::layer::SubscriberExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Runs `f` with a subscriber whose only layer is the tracing layer of local traces.
fn traced<T>(f: impl FnOnce() -> T) -> T {
    let subscriber = tracing_subscriber::registry().with(Traces::local().layer());
    tracing::subscriber::with_default(subscriber, f)
}

fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

/// The request span continued from `incoming`, and the headers of a bank call made in it:
/// (trace id of the request, `traceparent` sent, `tracestate` sent).
fn round_trip(incoming: &[(&str, &str)]) -> (String, String, Option<String>) {
    traced(|| {
        let request = tracing::info_span!("request", trace_id = tracing::field::Empty);
        let trace_id = continue_trace(&request, &headers(incoming)).expect("a trace id");
        let bank_call = request.in_scope(|| tracing::info_span!("bank_call"));
        let mut outgoing = http::HeaderMap::new();
        inject(&bank_call, &mut outgoing);
        let text = |name: &str| {
            outgoing
                .get(name)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        (
            trace_id.to_string(),
            text("traceparent").expect("a traceparent is sent"),
            text("tracestate"),
        )
    })
}

#[track_caller]
fn continued(traceparent: &str, flags: &str) {
    let (trace_id, sent, _) = round_trip(&[("traceparent", traceparent)]);
    assert_eq!(trace_id, TRACE, "{traceparent}");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[0], "00", "{sent}");
    assert_eq!(parts[1], TRACE, "{sent}");
    assert_ne!(parts[2], PARENT, "the bank call is a new span: {sent}");
    assert_eq!(parts[2].len(), 16, "{sent}");
    assert_eq!(parts[3], flags, "{sent}");
}

#[track_caller]
fn fresh(traceparent: &str) {
    let (trace_id, sent, state) =
        round_trip(&[("traceparent", traceparent), ("tracestate", "a=1")]);
    assert_ne!(trace_id, TRACE, "{traceparent} starts a new trace");
    assert_eq!(trace_id.len(), 32);
    assert!(sent.contains(&trace_id), "{traceparent}: {sent}");
    assert_eq!(
        state, None,
        "{traceparent}: its tracestate is ignored with it"
    );
}

#[test]
fn a_valid_traceparent_is_continued_to_the_bank_call() {
    continued(&format!("00-{TRACE}-{PARENT}-01"), "01");
    // Not sampled by the caller: still continued, and still not sampled.
    continued(&format!("00-{TRACE}-{PARENT}-00"), "00");
    // A later version with more fields is read as version 00 (W3C: forward compatibility).
    continued(&format!("01-{TRACE}-{PARENT}-01-whatever"), "01");
}

#[test]
fn tracestate_goes_along_with_a_valid_traceparent() {
    let (_, _, state) = round_trip(&[
        ("traceparent", &format!("00-{TRACE}-{PARENT}-01")),
        ("tracestate", "vendor=opaque,other=x"),
    ]);
    assert_eq!(state.as_deref(), Some("vendor=opaque,other=x"));
}

#[test]
fn an_invalid_traceparent_starts_a_new_trace() {
    for traceparent in [
        "",
        "garbage",
        // All-zero trace id or parent id.
        &format!("00-00000000000000000000000000000000-{PARENT}-01"),
        &format!("00-{TRACE}-0000000000000000-01"),
        // Upper case, wrong lengths, version ff (forbidden), extra fields in version 00.
        &format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        &format!("00-{}-{PARENT}-01", &TRACE[1..]),
        &format!("00-{TRACE}-{}-01", &PARENT[1..]),
        &format!("ff-{TRACE}-{PARENT}-01"),
        &format!("00-{TRACE}-{PARENT}-01-extra"),
        &format!("00-{TRACE}-{PARENT}"),
    ] {
        fresh(traceparent);
    }
}

#[test]
fn two_traceparents_are_invalid() {
    let mut incoming = headers(&[("tracestate", "a=1")]);
    for parent in [PARENT, "b7ad6b7169203331"] {
        incoming.append(
            "traceparent",
            format!("00-{TRACE}-{parent}-01").parse().unwrap(),
        );
    }
    traced(|| {
        let request = tracing::info_span!("request", trace_id = tracing::field::Empty);
        let trace_id = continue_trace(&request, &incoming).expect("a trace id");
        assert_ne!(trace_id.to_string(), TRACE);
    });
}

#[test]
fn no_traceparent_starts_a_new_trace() {
    let (first, _, _) = round_trip(&[]);
    let (second, _, _) = round_trip(&[]);
    assert_ne!(first, second);
}

#[test]
fn the_request_span_records_its_trace_id() {
    use std::sync::{Arc, Mutex};
    // A layer that keeps the `trace_id` recorded on any span.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);
    impl<S: Subscriber> Layer<S> for Recorded {
        fn on_record(
            &self,
            _: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Visit<'a>(&'a Mutex<Vec<String>>);
            impl tracing::field::Visit for Visit<'_> {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() == TRACE_ID {
                        self.0.lock().unwrap().push(format!("{value:?}"));
                    }
                }
            }
            values.record(&mut Visit(&self.0));
        }
    }
    let recorded = Recorded::default();
    let subscriber = tracing_subscriber::registry()
        .with(Traces::local().layer())
        .with(recorded.clone());
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("request", trace_id = tracing::field::Empty);
        continue_trace(
            &request,
            &headers(&[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))]),
        );
    });
    assert_eq!(*recorded.0.lock().unwrap(), vec![TRACE.to_owned()]);
}

#[test]
fn without_a_tracing_layer_nothing_is_sent() {
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
        assert_eq!(
            continue_trace(
                &span,
                &headers(&[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))])
            ),
            None
        );
        let mut outgoing = http::HeaderMap::new();
        inject(&span, &mut outgoing);
        assert!(outgoing.is_empty());
    });
}
