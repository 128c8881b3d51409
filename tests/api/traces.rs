//! Trace context (issue 15): a platform's W3C `traceparent` is continued to the bank call its
//! data request makes — the bank receives the same trace id under a new parent span — and the
//! request's log line carries the trace id; a malformed one is ignored and a fresh trace
//! starts, which the bank and the log line share.
//!
//! With an OTLP endpoint, the gateway's spans reach the collector (a receiver the test starts):
//! the request span under the platform's parent, the bank-call span the bank saw as its parent
//! below it, and nothing left behind at shutdown.
//!
//! Each test runs the gateway and its sandbox bank on the test's own thread (a current-thread
//! runtime) under the production subscriber writing into a buffer, so that it reads back
//! exactly the lines this gateway wrote.

use std::sync::{Arc, Mutex};

use bankgate::telemetry::traces::Traces;
use bankgate::telemetry::{LogFormat, LogSettings};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

use crate::registration::{connect, provide_credentials, register_sandbox_bank};
use crate::support::{StoreKind, TestGateway};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";
/// The proprietary sandbox's balance path of the main account.
const POSITIONS: &str = "/api/v2/me/accounts/alice-giro/positions";

/// Log lines written into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `scenario` on a current-thread runtime under the gateway's subscriber in `format`;
/// the lines it wrote.
fn traced<F: std::future::Future<Output = ()>>(
    format: LogFormat,
    scenario: impl FnOnce() -> F,
) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    traced_on(&runtime, &Traces::local(), format, scenario)
}

/// Runs `scenario` on `runtime` (current-thread) under the gateway's subscriber in `format`
/// with `traces`, then shuts `traces` down (exporting what is left); the lines it wrote.
fn traced_on<F: std::future::Future<Output = ()>>(
    runtime: &tokio::runtime::Runtime,
    traces: &Traces,
    format: LogFormat,
    scenario: impl FnOnce() -> F,
) -> String {
    let captured = Captured::default();
    let settings = LogSettings {
        format,
        ansi: false,
        filter: "info".into(),
    };
    let writer = captured.clone();
    let subscriber = bankgate::telemetry::subscriber(&settings, move || writer.clone(), traces);
    let _default = tracing::subscriber::set_default(subscriber);
    runtime.block_on(async {
        scenario().await;
        traces.shutdown().await;
    });
    captured.text()
}

/// A gateway with a sandbox bank of the test's own, a consent there, and a balance read of
/// the main account sending `traceparent` (if any): the `traceparent` the bank received.
async fn balance_read(traceparent: Option<&str>) -> String {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    provide_credentials(&gateway);
    let sandbox = register_sandbox_bank(&gateway, "trace-bank", json!({})).await;
    let (token, giro) = connect(&gateway, "trace-bank", "u-traces").await;
    let before = sandbox.faults.traceparents(POSITIONS).len();
    let mut request = gateway
        .platform
        .http
        .get(format!("{}/v1/accounts/{giro}/balances", gateway.base))
        .bearer_auth(&token)
        .header("tracestate", "platform=opaque");
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.expect("the gateway answers");
    assert_eq!(response.status(), 200);
    // The whole body: the request's span ends with it.
    response.bytes().await.expect("the balances");
    let received = sandbox.faults.traceparents(POSITIONS);
    assert_eq!(
        received.len(),
        before + 1,
        "one call reached the bank, with a traceparent: {received:?}"
    );
    received[before].clone()
}

/// The fields of a `traceparent` the gateway sent: version, trace id, parent id, flags.
fn fields(traceparent: &str) -> [String; 4] {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(
        parts.iter().map(|part| part.len()).collect::<Vec<_>>(),
        [2, 32, 16, 2],
        "{traceparent}"
    );
    assert!(
        parts.iter().all(|part| part
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())),
        "{traceparent}"
    );
    [0, 1, 2, 3].map(|index| parts[index].to_owned())
}

#[test]
fn a_platforms_traceparent_reaches_the_bank_and_the_log_line() {
    let received = Arc::new(Mutex::new(String::new()));
    let sent = received.clone();
    let log = traced(LogFormat::Json, || async move {
        *sent.lock().unwrap() = balance_read(Some(&format!("00-{TRACE}-{PARENT}-01"))).await;
    });
    let received = received.lock().unwrap().clone();
    let [version, trace_id, parent_id, flags] = fields(&received);
    assert_eq!(version, "00");
    assert_eq!(
        trace_id, TRACE,
        "the bank call continues the platform's trace"
    );
    assert_ne!(
        parent_id, PARENT,
        "the bank call is a span of the gateway's"
    );
    assert_eq!(flags, "01", "the platform's sampling decision is kept");

    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let response = lines
        .iter()
        .find(|line| {
            line["message"] == "response" && line["route"] == "/v1/accounts/{account_id}/balances"
        })
        .unwrap_or_else(|| panic!("no response line of the balance read: {log}"));
    assert_eq!(response["trace_id"], TRACE, "{response}");
    assert_eq!(response["span"]["trace_id"], TRACE, "{response}");
    // Other requests started traces of their own.
    let others: Vec<&str> = lines
        .iter()
        .filter(|line| line["message"] == "response" && line["route"] != response["route"])
        .map(|line| line["trace_id"].as_str().unwrap_or_default())
        .collect();
    assert!(!others.is_empty(), "{log}");
    for other in others {
        assert_eq!(other.len(), 32, "{log}");
        assert_ne!(other, TRACE, "{log}");
    }
}

#[test]
fn a_malformed_traceparent_starts_a_fresh_trace() {
    let received = Arc::new(Mutex::new(String::new()));
    let sent = received.clone();
    // Upper-case hex is invalid (W3C Trace Context §3.2.2.3).
    let malformed = format!("00-{}-{PARENT}-01", TRACE.to_uppercase());
    let log = traced(LogFormat::Text, || async move {
        *sent.lock().unwrap() = balance_read(Some(&malformed)).await;
    });
    let received = received.lock().unwrap().clone();
    let [_, trace_id, parent_id, _] = fields(&received);
    assert_ne!(trace_id, TRACE.to_lowercase());
    assert_ne!(parent_id, PARENT);
    // The text line of the balance read names the fresh trace the bank received.
    let response = log
        .lines()
        .find(|line| {
            line.contains("route=/v1/accounts/{account_id}/balances") && line.contains("response")
        })
        .unwrap_or_else(|| panic!("no response line of the balance read: {log}"));
    assert!(
        response.contains(&format!("trace_id={trace_id}")),
        "{trace_id}: {response}"
    );
}

#[test]
fn without_a_traceparent_the_gateway_starts_the_trace() {
    let received = Arc::new(Mutex::new(String::new()));
    let sent = received.clone();
    traced(LogFormat::Json, || async move {
        *sent.lock().unwrap() = balance_read(None).await;
    });
    let [_, trace_id, _, _] = fields(&received.lock().unwrap());
    assert_ne!(trace_id, "0".repeat(32));
}

/// An OTLP/HTTP receiver on a port of its own: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`, kept for the test to read.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

impl Collector {
    /// Starts the receiver on the current runtime; its base URL.
    async fn start(&self) -> url::Url {
        let received = self.0.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    assert_eq!(
                        headers["content-type"], "application/x-protobuf",
                        "OTLP/HTTP with protobuf bodies"
                    );
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    received.lock().unwrap().push(request);
                    axum::http::StatusCode::OK
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}").parse().unwrap()
    }

    /// Every span received, with the `service.name` of its resource.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut spans = Vec::new();
        for request in self.0.lock().unwrap().iter() {
            for resource_spans in &request.resource_spans {
                let service = resource_spans
                    .resource
                    .iter()
                    .flat_map(|resource| &resource.attributes)
                    .find(|attribute| attribute.key == "service.name")
                    .and_then(|attribute| attribute.value.as_ref())
                    .map(|value| format!("{:?}", value.value))
                    .unwrap_or_default();
                for scope_spans in &resource_spans.scope_spans {
                    for span in &scope_spans.spans {
                        spans.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

#[test]
fn spans_reach_an_otlp_collector_with_the_platforms_trace() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let collector = Collector::default();
    let endpoint = runtime.block_on(collector.start());
    // Built on the runtime that runs its batch task.
    let traces = runtime.block_on(async { Traces::otlp(&endpoint).expect("an OTLP exporter") });
    let received = Arc::new(Mutex::new(String::new()));
    let sent = received.clone();
    traced_on(&runtime, &traces, LogFormat::Json, || async move {
        *sent.lock().unwrap() = balance_read(Some(&format!("00-{TRACE}-{PARENT}-01"))).await;
    });
    let [_, _, bank_parent, _] = fields(&received.lock().unwrap());

    let spans = collector.spans();
    assert!(!spans.is_empty(), "no span reached the collector");
    for (service, _) in &spans {
        assert!(service.contains("\"bankgate\""), "service.name: {service}");
    }
    let of_trace: Vec<&Span> = spans
        .iter()
        .map(|(_, span)| span)
        .filter(|span| hex::encode(&span.trace_id) == TRACE)
        .collect();
    let names = |spans: &[&Span]| {
        spans
            .iter()
            .map(|span| span.name.clone())
            .collect::<Vec<_>>()
    };
    // The request span continues the platform's span.
    let request = of_trace
        .iter()
        .find(|span| span.name == "request")
        .unwrap_or_else(|| panic!("no request span in the trace: {:?}", names(&of_trace)));
    assert_eq!(hex::encode(&request.parent_span_id), PARENT);
    // The span the bank saw as its parent is a bank call, below the request span.
    let bank_call = of_trace
        .iter()
        .find(|span| hex::encode(&span.span_id) == bank_parent)
        .unwrap_or_else(|| {
            panic!(
                "the bank's parent {bank_parent} was not exported: {:?}",
                names(&of_trace)
            )
        });
    assert_eq!(bank_call.name, "bank_call");
    let mut ancestor = *bank_call;
    let mut chain = vec![ancestor.name.clone()];
    while ancestor.span_id != request.span_id {
        ancestor = of_trace
            .iter()
            .find(|span| span.span_id == ancestor.parent_span_id)
            .unwrap_or_else(|| panic!("the bank call is not below the request span: {chain:?}"));
        chain.push(ancestor.name.clone());
    }
    assert!(chain.len() >= 2, "{chain:?}");
    // Other requests (registration, consent, token) are traces of their own, exported too.
    assert!(
        spans
            .iter()
            .any(|(_, span)| span.name == "request" && hex::encode(&span.trace_id) != TRACE),
        "{:?}",
        spans.iter().map(|(_, span)| &span.name).collect::<Vec<_>>()
    );
}
