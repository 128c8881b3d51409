//! The crate-level error: every failure on the request path, with its origin.
//!
//! `http::problem` is the one place that turns an [`Error`] into a response.

use crate::adapters::AdapterError;
use crate::store::StoreError;

/// Who caused an error, as pingora's `ErrorSource`: it picks the status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The caller sent something wrong or is not allowed: 4xx.
    Caller,
    /// The bank failed: 502 or 504.
    Bank,
    /// bankgate itself failed: 500 or 503.
    Internal,
}

/// An OAuth error response (RFC 6749 §5.2): OAuth endpoints answer in this format, which
/// OAuth client libraries understand, instead of problem+json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The RFC 6749 error code, e.g. `invalid_grant`.
    pub code: &'static str,
    /// Safe, human-readable detail.
    pub description: String,
    /// 400 unless the code calls for 401.
    pub status: u16,
}

impl OAuthError {
    /// A 400 error with `code`.
    pub fn new(code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
            status: if code == "invalid_client" { 401 } else { 400 },
        }
    }
}

/// Every error the gateway answers with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed. The reason is safe to show and is audited.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("oauth error {}: {}", .0.code, .0.description)]
    OAuth(OAuthError),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("bank error")]
    Bank(#[from] AdapterError),
    /// The audit log cannot take the record: fail closed.
    #[error("audit store unavailable")]
    AuditUnavailable(#[source] StoreError),
    #[error("store error")]
    Store(#[from] StoreError),
    #[error("request timed out")]
    Timeout,
    #[error("gateway overloaded")]
    Overloaded,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Who caused it.
    pub fn origin(&self) -> Origin {
        match self {
            Error::Unauthenticated(_)
            | Error::Forbidden(_)
            | Error::NotFound(_)
            | Error::InvalidRequest(_)
            | Error::OAuth(_)
            | Error::TooManyRequests { .. } => Origin::Caller,
            Error::Bank(_) => Origin::Bank,
            Error::AuditUnavailable(_)
            | Error::Store(_)
            | Error::Timeout
            | Error::Overloaded
            | Error::Internal(_) => Origin::Internal,
        }
    }

    /// The HTTP status it maps to.
    pub fn status(&self) -> u16 {
        match self {
            Error::Unauthenticated(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::InvalidRequest(_) => 400,
            Error::OAuth(error) => error.status,
            Error::TooManyRequests { .. } => 429,
            Error::Bank(error) => match error.root() {
                AdapterError::Timeout => 504,
                AdapterError::UnknownAccount => 404,
                AdapterError::CircuitOpen | AdapterError::Saturated => 503,
                _ => 502,
            },
            Error::AuditUnavailable(_) | Error::Overloaded => 503,
            Error::Store(StoreError::Unavailable(_)) => 503,
            Error::Timeout => 504,
            Error::Store(_) | Error::Internal(_) => 500,
        }
    }

    /// A stable slug for the problem `type` URI.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not-found",
            Error::InvalidRequest(_) => "invalid-request",
            Error::OAuth(_) => "oauth",
            Error::TooManyRequests { .. } => "too-many-requests",
            Error::Bank(error) => match error.root() {
                AdapterError::Timeout => "bank-timeout",
                AdapterError::UnknownAccount => "unknown-account",
                AdapterError::CircuitOpen | AdapterError::Saturated => "bank-unavailable",
                _ => "bank-error",
            },
            Error::AuditUnavailable(_) => "audit-unavailable",
            Error::Store(StoreError::Unavailable(_)) => "store-unavailable",
            Error::Store(_) => "store-error",
            Error::Timeout => "timeout",
            Error::Overloaded => "overloaded",
            Error::Internal(_) => "internal",
        }
    }

    /// Text safe to show the caller: never a database or bank message.
    pub fn safe_detail(&self) -> String {
        match self {
            Error::Unauthenticated(detail)
            | Error::Forbidden(detail)
            | Error::NotFound(detail)
            | Error::InvalidRequest(detail) => detail.clone(),
            Error::OAuth(error) => error.description.clone(),
            Error::TooManyRequests { .. } => "rate limit reached; retry later".into(),
            Error::Bank(error) => bank_detail(error),
            Error::AuditUnavailable(_) => {
                "the audit log is unavailable, so no data can be released; retry later".into()
            }
            Error::Store(StoreError::Unavailable(_)) => {
                "storage is unavailable; retry later".into()
            }
            Error::Store(_) | Error::Internal(_) => "internal error".into(),
            Error::Timeout => "the request took too long".into(),
            Error::Overloaded => "the gateway is overloaded; retry later".into(),
        }
    }
}

/// What a caller may know about a bank failure: which bank, and what kind of failure, in
/// gateway words (never the bank's message, which may hold anything).
fn bank_detail(error: &AdapterError) -> String {
    let bank = match error.bank() {
        Some(bank) => format!("bank {bank}"),
        None => "the bank".to_owned(),
    };
    match error.root() {
        AdapterError::Timeout => format!("{bank} did not answer in time"),
        AdapterError::UnknownAccount => "no such account under this consent".into(),
        AdapterError::Transport(_) => format!("the connection to {bank} failed"),
        AdapterError::Status { status } => {
            format!("{bank} answered with an error (HTTP {status})")
        }
        AdapterError::Decode(_) => {
            format!("{bank} answered with a payload bankgate could not read")
        }
        AdapterError::ErrorBody(_) => format!("{bank} answered with an error"),
        AdapterError::TooLarge { limit } => {
            format!("{bank} answered with more than {limit} bytes")
        }
        AdapterError::CircuitOpen => {
            format!("{bank} is temporarily unavailable: recent calls to it failed; retry later")
        }
        AdapterError::Saturated => {
            format!("{bank} has too many requests in flight; retry later")
        }
        AdapterError::Refused(_) | AdapterError::AtBank { .. } => {
            format!("{bank} could not serve the request")
        }
    }
}

impl From<OAuthError> for Error {
    fn from(error: OAuthError) -> Self {
        Error::OAuth(error)
    }
}

impl From<crate::crypto::CryptoError> for Error {
    fn from(error: crate::crypto::CryptoError) -> Self {
        Error::Internal(error.to_string())
    }
}
