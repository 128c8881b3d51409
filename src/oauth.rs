//! bankgate as authorization server to platforms: [`tokens`], [`client_auth`], [`dpop`],
//! [`registration`], and the records they keep. (bankgate as OAuth client of every bank is
//! `adapters::bank_oauth`; the JOSE both sides share is `jose`.)

pub mod authorizations;
pub mod client_auth;
pub mod client_keys;
pub mod clients;
pub mod dpop;
pub mod issued;
pub mod registration;
pub mod tokens;

pub use authorizations::{AuthorizationCode, Authorizations, PushedRequest, StoredCode};
pub use clients::{AuthMethod, Client, Clients, Role};
pub use issued::{IssuedToken, RefreshToken, Tokens};

use http::StatusCode;

/// The RAR type and the URN prefix of pushed request URIs (RFC 9126).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How long a pushed request URI stays valid.
pub const PAR_LIFETIME_SECS: i64 = 90;

/// How long an authorization code stays valid (FAPI: at most 60 s).
pub const CODE_LIFETIME_SECS: i64 = 60;

/// How long the user has to come back from the bank.
pub const BANK_AUTHORIZATION_LIFETIME_SECS: i64 = 600;

/// The scope of compliance tokens.
pub const AUDIT_READ: &str = "audit:read";

/// The scope of a platform's management tokens (client credentials): list, read and revoke
/// its own consents.
pub const CONSENTS_MANAGE: &str = "consents:manage";

/// The scope of a bank's management tokens (client credentials): register and update the
/// adapter of the one bank the client is bound to.
pub const ADAPTER_MANAGE: &str = "adapter:manage";

/// An OAuth error response (RFC 6749 §5.2): OAuth endpoints answer in this format, which
/// OAuth client libraries understand, instead of problem+json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The RFC 6749 error code, e.g. `invalid_grant`.
    pub code: &'static str,
    /// Safe, human-readable detail.
    pub description: String,
    /// 400 unless the code calls for 401.
    pub status: StatusCode,
}

impl OAuthError {
    /// A 400 error with `code` (401 for `invalid_client`).
    pub fn new(code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
            status: if code == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            },
        }
    }
}
