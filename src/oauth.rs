//! OAuth on both sides: bankgate as authorization server to platforms ([`keys`], [`tokens`],
//! [`client_auth`], [`dpop`], [`jose`], [`registration`]) and as OAuth client of every bank
//! ([`bank_client`], with [`bank_auth`], [`bank_par`] and [`bank_dpop`] where a bank's
//! manifest asks for `private_key_jwt`, PAR and DPoP).

pub mod authorizations;
pub mod bank_auth;
pub mod bank_client;
pub mod bank_dpop;
pub mod bank_par;
pub mod bank_tokens;
pub mod client_auth;
pub mod client_keys;
pub mod clients;
pub mod dpop;
pub mod issued;
pub mod jose;
pub mod keys;
pub mod registration;
pub mod tokens;

pub use authorizations::{AuthorizationCode, Authorizations, PushedRequest, StoredCode};
pub use clients::{AuthMethod, Client, Clients, Role};
pub use issued::{IssuedToken, RefreshToken, Tokens};

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
