//! Everything HTTP: the tower stack ([`stack`]), one layer per concern, the routes, and the
//! one mapping from errors to RFC 9457 problem responses ([`problem`]).
//!
//! Invariant: only this module (and the sandbox banks) speaks hyper/axum types.

pub mod access;
pub mod authn;
pub mod metrics;
pub mod observe;
pub mod problem;
pub mod routes;
pub mod server;
pub mod stack;
pub mod templates;

use http::HeaderName;

/// The request id header, set by the stack when the caller sends none.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of a request (set by the stack's first layers).
pub fn request_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
