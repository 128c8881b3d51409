//! RFC 9457 problem details: the one place an [`Error`] becomes a response, and the layer that
//! turns whatever fails below it (timeouts, overload, boxed errors) into one.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use serde::Serialize;
use tower::{BoxError, Layer, Service};

use crate::access::Denial;
use crate::adapters::AdapterError;
use crate::error::{Error, Origin};

/// Media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The base of the stable `type` URIs; the error kind is appended.
pub const TYPE_BASE: &str = "https://bankgate.dev/problems/";

/// `Retry-After` of a call shed by a bank's in-flight cap (`limits.max_in_flight`).
pub const SATURATED_RETRY_AFTER_SECS: u64 = 1;

/// A problem body (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Problem {
    /// The problem of an error (its `instance` is added by the layer).
    pub fn of(error: &Error) -> Problem {
        let (kind, detail) = error.problem();
        Problem {
            kind: format!("{TYPE_BASE}{}", kind.slug),
            title: kind.status.canonical_reason().unwrap_or("Error"),
            status: kind.status.as_u16(),
            detail,
            instance: None,
        }
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The internal description of the error behind a response and who caused it, for the trace
/// layer's log line (never sent to the caller).
#[derive(Debug, Clone)]
pub struct ErrorDetail {
    pub origin: Origin,
    pub text: String,
}

impl ErrorDetail {
    fn of(error: &Error) -> ErrorDetail {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        ErrorDetail {
            origin: error.origin(),
            text,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let detail = ErrorDetail::of(&self);
        let mut response = self.render();
        response.extensions_mut().insert(detail);
        response
    }
}

impl Error {
    fn render(self) -> Response {
        if let Error::OAuth(error) = &self {
            // OAuth endpoints answer in RFC 6749's format, which client libraries parse.
            let body =
                serde_json::json!({"error": error.code, "error_description": error.description});
            return (
                error.status,
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(body),
            )
                .into_response();
        }
        let mut response = Problem::of(&self).into_response();
        let headers = response.headers_mut();
        match &self {
            // A bare challenge (RFC 6750 §3.1: no error code where no credentials were
            // presented); `http::authn` answers token failures with its own challenges.
            Error::Unauthenticated(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::Denied(Denial::BudgetSpent {
                retry_after_secs, ..
            })
            | Error::PayeeVerificationThrottled { retry_after_secs }
            | Error::SignInThrottled { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            // Shed by the bank's in-flight cap: a slot is likely free again within a second.
            Error::Bank(error) if matches!(error.root(), AdapterError::Saturated) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(SATURATED_RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

/// Turns errors from the layers below into problem responses and stamps `instance` (the
/// request id) on every problem. Place it right under the request-id layers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemLayer;

impl<S> Layer<S> for ProblemLayer {
    type Service = ProblemService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProblemService { inner }
    }
}

/// See [`ProblemLayer`].
#[derive(Debug, Clone)]
pub struct ProblemService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for ProblemService<S>
where
    S: Service<Request<B>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness errors (load shedding) surface through `call`.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let request_id = super::request_id(request.headers());
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = match future.await {
                Ok(response) => as_problem(response.map(Body::new)),
                Err(error) => from_box_error(error.into()).into_response(),
            };
            Ok(with_instance(response, request_id))
        })
    }
}

/// Maps a tower error (timeout, overload, or a boxed [`Error`]) to an [`Error`].
pub fn from_box_error(error: BoxError) -> Error {
    if error.is::<tower::timeout::error::Elapsed>() {
        return Error::Timeout;
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Error::Overloaded;
    }
    match error.downcast::<Error>() {
        Ok(error) => *error,
        Err(error) => Error::Internal(error.to_string()),
    }
}

/// An error response that is not yet a problem — the router's 404 and 405, the body limit's
/// 413, any bare-text refusal — becomes the problem of its status (the router's `Allow`
/// header kept). Answers that are errors in another agreed form stay as they are: RFC 6749
/// JSON from the OAuth endpoints, HTML pages for the user's browser.
fn as_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<Problem>().is_some()
    {
        return response;
    }
    let bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|value| value.starts_with("text/plain"));
    if !bare {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => Error::NotFound("no route serves this path".into()),
        StatusCode::METHOD_NOT_ALLOWED => Error::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            Error::UnsupportedMediaType("the body's media type is not accepted here".into())
        }
        status if status.is_client_error() => Error::InvalidRequest(
            status
                .canonical_reason()
                .unwrap_or("the request was refused")
                .to_owned(),
        ),
        status => Error::Internal(format!("a bare {status} response")),
    };
    let mut problem = error.into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}

fn with_instance(response: Response, request_id: Option<String>) -> Response {
    let Some(problem) = response.extensions().get::<Problem>().cloned() else {
        return response;
    };
    let (parts, _) = response.into_parts();
    let problem = Problem {
        instance: request_id.map(|id| format!("urn:request:{id}")),
        ..problem
    };
    let mut rebuilt = problem.into_response();
    let mut headers = parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    *rebuilt.headers_mut() = headers;
    *rebuilt.extensions_mut() = parts.extensions;
    rebuilt
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn errors_become_problems_with_safe_detail() {
        let error =
            Error::AuditUnavailable(crate::store::StoreError::Invariant("secret db detail"));
        let response = error.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let json = body(response).await;
        assert_eq!(json["type"], format!("{TYPE_BASE}audit-unavailable"));
        assert!(
            !json["detail"]
                .as_str()
                .unwrap()
                .contains("secret db detail")
        );
    }

    #[tokio::test]
    async fn the_layer_maps_timeouts_and_adds_instance() {
        use tower::{ServiceBuilder, ServiceExt};
        let service = ServiceBuilder::new()
            .layer(ProblemLayer)
            .timeout(std::time::Duration::from_millis(10))
            .service_fn(|_: Request<Body>| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                Ok::<_, Infallible>(Response::new(Body::empty()))
            });
        let request = Request::builder()
            .header(super::super::X_REQUEST_ID, "r-1")
            .body(Body::empty())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 504);
        let json = body(response).await;
        assert_eq!(json["instance"], "urn:request:r-1");
        assert_eq!(json["status"], 504);
    }
}
