//! What every response leaves behind for the operator: one log line (request id, trace id,
//! method, route template, status, latency, client, bank) and the request metrics, by route template
//! and status.
//!
//! It sits inside the trace layer's span, above the problem layer, so it sees every response
//! as the caller gets it. Lower layers tell it who the caller was and which bank served the
//! request through [`RequestLog`], a request extension they fill in.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower::{Layer, Service};

use super::problem::ErrorDetail;
use crate::Origin;
use crate::telemetry::metrics::{HTTP_REQUEST_DURATION, HTTP_REQUESTS};

/// The route label of a path no route matches.
pub const UNMATCHED: &str = "unmatched";

/// Every route template, for [`route_of`].
static TEMPLATES: LazyLock<matchit::Router<&'static str>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for route in super::templates::ALL {
        // The list is constant and its templates distinct (a unit test inserts them all).
        let _ = router.insert(route.path, route.path);
    }
    router
});

/// The template of the route serving `path` (`/v1/accounts/{account_id}/balances`), or
/// [`UNMATCHED`].
pub fn route_of(path: &str) -> &'static str {
    TEMPLATES
        .at(path)
        .map(|matched| *matched.value)
        .unwrap_or(UNMATCHED)
}

/// What the layers below learned about a request, for its log line: filled in at most once
/// each, by whoever learns it (authentication: the client; the data path: the bank).
#[derive(Debug, Default)]
pub struct RequestLog {
    client_id: OnceLock<String>,
    bank: OnceLock<String>,
}

impl RequestLog {
    /// Records the authenticated client of `request`, if it carries a log.
    pub fn client<B>(request: &Request<B>, client_id: &str) {
        if let Some(log) = request.extensions().get::<Arc<RequestLog>>() {
            let _ = log.client_id.set(client_id.to_owned());
        }
    }

    /// Records the bank `request` is served by, if it carries a log.
    pub fn bank<B>(request: &Request<B>, bank: &str) {
        if let Some(log) = request.extensions().get::<Arc<RequestLog>>() {
            let _ = log.bank.set(bank.to_owned());
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

/// See [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let route = route_of(request.uri().path());
        let method = request.method().clone();
        let request_id = super::request_id(request.headers()).unwrap_or_default();
        // The trace layer above entered the request's span, which holds its trace.
        let trace_id = crate::telemetry::traces::trace_id(&tracing::Span::current())
            .map(|trace_id| trace_id.to_string())
            .unwrap_or_default();
        let log = Arc::new(RequestLog::default());
        request.extensions_mut().insert(log.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            if let Ok(response) = &result {
                let latency = started.elapsed();
                let labels = [
                    ("method", method.as_str().to_owned()),
                    ("route", route.to_owned()),
                    ("status", response.status().as_str().to_owned()),
                ];
                metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
                metrics::histogram!(HTTP_REQUEST_DURATION, &labels).record(latency.as_secs_f64());
                let line = Line {
                    request_id: &request_id,
                    trace_id: &trace_id,
                    method: &method,
                    route,
                    latency,
                };
                log_line(&log, response, &line);
            }
            result
        })
    }
}

/// What the observe layer knows of a request before it is served.
struct Line<'a> {
    request_id: &'a str,
    trace_id: &'a str,
    method: &'a http::Method,
    route: &'a str,
    latency: std::time::Duration,
}

/// The one log line per response; errors carry their internal detail (never a secret: error
/// texts never include tokens or credentials), at `error` for the gateway's own failures,
/// `warn` for a bank's, `info` otherwise.
fn log_line<RB>(log: &RequestLog, response: &Response<RB>, line: &Line<'_>) {
    let status = response.status().as_u16();
    // Milliseconds, to the microsecond.
    let latency_ms = line.latency.as_micros() as f64 / 1000.0;
    let client_id = log.client_id.get().map_or("", String::as_str);
    let bank = log.bank.get().map_or("", String::as_str);
    let (request_id, trace_id, method, route) = (
        line.request_id,
        line.trace_id,
        line.method.as_str(),
        line.route,
    );
    macro_rules! line {
        ($level:ident $(, $field:ident = %$value:expr)?) => {
            tracing::$level!(
                request_id = %request_id, trace_id = %trace_id, method = %method,
                route = %route, status, latency_ms, client_id = %client_id, bank = %bank,
                $($field = %$value,)? "response"
            )
        };
    }
    match response.extensions().get::<ErrorDetail>() {
        None => line!(info),
        Some(detail) => match detail.origin {
            Origin::Internal => line!(error, error = %detail.text),
            Origin::Bank => line!(warn, error = %detail.text),
            Origin::Caller => line!(info, error = %detail.text),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_distinct_and_paths_map_to_them() {
        let mut router = matchit::Router::new();
        for route in super::super::templates::ALL {
            router
                .insert(route.path, ())
                .unwrap_or_else(|error| panic!("{}: {error}", route.path));
        }
        for (path, template) in [
            (
                "/v1/accounts/acc-1/balances",
                "/v1/accounts/{account_id}/balances",
            ),
            ("/v1/consents/c-1", "/v1/consents/{id}"),
            ("/v1/audit/events/42", "/v1/audit/events/{position}"),
            ("/oauth/token", "/oauth/token"),
            ("/v1/accounts/acc-1/secrets", UNMATCHED),
            ("/nope", UNMATCHED),
        ] {
            assert_eq!(route_of(path), template, "{path}");
        }
    }
}
