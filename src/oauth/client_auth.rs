//! Client authentication at bankgate's token, PAR and revocation endpoints:
//! `private_key_jwt` (RFC 7523, FAPI 2.0) and `client_secret_basic` (RFC 6749 §2.3.1: for
//! compliance and bank clients, and for platforms only with `allow_insecure_clients`). A client
//! uses the one method it registered; presenting two is an error.
//!
//! Client assertions are checked strictly:
//! - signed with ES256, EdDSA or PS256 by a key the client registered (chosen by `kid`; the
//!   algorithm is pinned by the key), never by a key named in `jku`, `x5u`, `x5c` or `jwk`
//!   (an assertion carrying any of those is refused);
//! - `typ` absent, `JWT` or `client-authentication+jwt` (so an access token or DPoP proof can
//!   not pass as an assertion);
//! - `iss` = `sub` = the client id, `aud` = bankgate's issuer identifier (FAPI 2.0; endpoint
//!   URLs are not accepted);
//! - `exp` required and at most [`MAX_ASSERTION_LIFETIME_SECS`] ahead, `iat` required and not
//!   in the future, both with [`LEEWAY_SECS`] of clock skew;
//! - `jti` required and single use: remembered in the store's replay cache (shared by every
//!   instance) until the assertion expires.
//!
//! Secrets are checked against their HMAC digest ([`Sealer::check_secret`]): one HMAC per
//! request, known client or not. An assertion is at most [`MAX_ASSERTION_BYTES`]. So no
//! unauthenticated request costs more than a small, fixed amount of CPU and memory.
//!
//! Every refusal is `invalid_client` (401) whose `error_description` says which check failed
//! (`client authentication failed: …`) — never a secret, nor whether a secret was close.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;

use super::client_keys::ClientKeys;
use crate::crypto::{Sealer, SecretCheck};
use crate::jose::{CLIENT_ASSERTION_TYPE, KeySet};
use crate::oauth::{AuthMethod, Client, Role};
use crate::oauth::{Clients, OAuthError, Tokens};
use crate::store_error::StoreError;

/// The furthest in the future an assertion's `exp` may be.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 60;

/// Clock skew allowed on `iat`, `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 5;

/// The longest `jti` remembered.
const MAX_JTI_LEN: usize = 256;

/// The longest client assertion read (a signed JWT of a few claims is well under 2 KiB).
pub const MAX_ASSERTION_BYTES: usize = 8 * 1024;

/// `invalid_client`, saying which check failed.
fn invalid_client(why: impl std::fmt::Display) -> OAuthError {
    OAuthError::new(
        "invalid_client",
        format!("client authentication failed: {why}"),
    )
}

/// The client authentication parameters of a request body.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthParams<'a> {
    pub client_id: Option<&'a str>,
    pub client_assertion_type: Option<&'a str>,
    pub client_assertion: Option<&'a str>,
}

/// What the client presented.
#[derive(Debug)]
pub enum Presented {
    Basic(BasicCredentials),
    /// A client assertion and the client id it claims (its unverified `sub`).
    Assertion {
        client_id: String,
        assertion: String,
    },
}

impl Presented {
    /// Reads the credentials from the `Authorization` header and the body; exactly one method.
    pub fn parse(
        authorization: Option<&str>,
        params: AuthParams<'_>,
    ) -> Result<Presented, OAuthError> {
        let basic = authorization.filter(|value| value.starts_with("Basic "));
        match (basic, params.client_assertion_type, params.client_assertion) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(OAuthError::new(
                "invalid_request",
                "use exactly one client authentication method",
            )),
            (Some(header), None, None) => {
                let credentials = BasicCredentials::parse(Some(header))?;
                if params
                    .client_id
                    .is_some_and(|id| id != credentials.client_id)
                {
                    return Err(OAuthError::new(
                        "invalid_request",
                        "client_id does not match the authenticated client",
                    ));
                }
                Ok(Presented::Basic(credentials))
            }
            (None, Some(CLIENT_ASSERTION_TYPE), Some(assertion)) => {
                #[derive(Deserialize)]
                struct Subject {
                    sub: String,
                }
                if assertion.len() > MAX_ASSERTION_BYTES {
                    return Err(invalid_client(format_args!(
                        "client_assertion is longer than {MAX_ASSERTION_BYTES} bytes"
                    )));
                }
                // Only to find the client whose keys verify it; nothing is trusted yet.
                let Subject { sub } =
                    jsonwebtoken::dangerous::insecure_decode::<Subject>(assertion)
                        .map(|data| data.claims)
                        .map_err(|_| {
                            invalid_client("client_assertion is not a JWT with a sub claim")
                        })?;
                if params.client_id.is_some_and(|id| id != sub) {
                    return Err(OAuthError::new(
                        "invalid_request",
                        "client_id does not match the client assertion",
                    ));
                }
                Ok(Presented::Assertion {
                    client_id: sub,
                    assertion: assertion.to_owned(),
                })
            }
            (None, Some(CLIENT_ASSERTION_TYPE), None) => Err(OAuthError::new(
                "invalid_request",
                "client_assertion is missing",
            )),
            (None, Some(_), _) => Err(invalid_client(format_args!(
                "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
            ))),
            (None, None, Some(_)) => Err(OAuthError::new(
                "invalid_request",
                "client_assertion_type is missing",
            )),
            (None, None, None) => Err(invalid_client(
                "no client credentials (HTTP Basic or a client assertion)",
            )),
        }
    }

    /// The client id the credentials claim.
    pub fn client_id(&self) -> &str {
        match self {
            Presented::Basic(credentials) => &credentials.client_id,
            Presented::Assertion { client_id, .. } => client_id,
        }
    }
}

/// Why a client was not authenticated: a refusal (`invalid_client` and friends) or the
/// store failing.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error("oauth error {}: {}", .0.code, .0.description)]
    OAuth(OAuthError),
    #[error("store error")]
    Store(#[from] StoreError),
}

impl From<OAuthError> for ClientAuthError {
    fn from(error: OAuthError) -> Self {
        ClientAuthError::OAuth(error)
    }
}

/// Authenticates the clients of bankgate's token, PAR and revocation endpoints.
pub struct ClientAuth {
    clients: Arc<dyn Clients>,
    /// The replay cache of assertion `jti`s.
    tokens: Arc<dyn Tokens>,
    /// Digests client secrets.
    sealer: Arc<Sealer>,
    /// Platforms may authenticate with `client_secret_basic` (development).
    allow_insecure: bool,
    /// Clients' keys, registered or fetched from their `jwks_uri`.
    keys: ClientKeys,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth").finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Client authentication against the registered `clients` (assertion `jti`s spent in
    /// `tokens`), checking secrets with `sealer`'s
    /// digest key; platforms must use `private_key_jwt` unless `allow_insecure` (the
    /// development setting `allow_insecure_clients`).
    pub fn new(
        clients: Arc<dyn Clients>,
        tokens: Arc<dyn Tokens>,
        sealer: Arc<Sealer>,
        allow_insecure: bool,
        keys: ClientKeys,
    ) -> ClientAuth {
        ClientAuth {
            clients,
            tokens,
            sealer,
            allow_insecure,
            keys,
        }
    }

    /// Whether platforms may use `client_secret_basic` and bearer tokens here.
    pub fn allows_insecure(&self) -> bool {
        self.allow_insecure
    }

    /// Authenticates the client of a request at bankgate (`issuer`, the audience of client
    /// assertions): finds it, checks that it uses its registered method, verifies the
    /// credentials and, for assertions, spends the `jti`.
    pub async fn authenticate(
        &self,
        issuer: &str,
        authorization: Option<&str>,
        params: AuthParams<'_>,
    ) -> Result<Client, ClientAuthError> {
        let presented = Presented::parse(authorization, params)?;
        let client = self.clients.client(presented.client_id()).await?;
        match presented {
            Presented::Basic(credentials) => {
                // The same work for an unknown client, so that cost reveals no client ids.
                let check = self.sealer.check_secret(
                    &credentials.secret,
                    client.as_ref().map(|client| client.secret_hash.as_str()),
                );
                let Some(client) = client else {
                    return Err(invalid_client("unknown client or wrong secret").into());
                };
                if client.token_endpoint_auth_method != AuthMethod::ClientSecretBasic {
                    return Err(
                        invalid_client("this client authenticates with private_key_jwt").into(),
                    );
                }
                // A platform registered with a secret before the gateway required FAPI 2.0.
                if client.role == Role::Platform && !self.allow_insecure {
                    return Err(invalid_client(
                        "platforms authenticate with private_key_jwt (FAPI 2.0); \
                         client_secret_basic is for development only (allow_insecure_clients)",
                    )
                    .into());
                }
                match check {
                    SecretCheck::Matches => Ok(client),
                    SecretCheck::Wrong => {
                        Err(invalid_client("unknown client or wrong secret").into())
                    }
                    SecretCheck::Legacy => {
                        tracing::warn!(client = %client.client_id,
                            "client secret stored as an Argon2 hash by an earlier version: \
                             refused; issue a new one (POST /admin/clients/{{id}}/secret)");
                        Err(invalid_client(
                            "this client's secret was stored by an earlier version of the \
                             gateway and is no longer accepted; ask the operator for a new one",
                        )
                        .into())
                    }
                    SecretCheck::OtherKey(key_id) => {
                        tracing::warn!(client = %client.client_id, %key_id,
                            "client secret digested under another grant key: refused");
                        Err(invalid_client(
                            "this client's secret was issued under a grant key this gateway \
                             does not hold; ask the operator for a new one",
                        )
                        .into())
                    }
                }
            }
            Presented::Assertion { assertion, .. } => {
                let client = client.ok_or_else(|| invalid_client("unknown client (sub)"))?;
                if client.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
                    return Err(invalid_client(
                        "this client authenticates with client_secret_basic",
                    )
                    .into());
                }
                let kid = jsonwebtoken::decode_header(&assertion)
                    .ok()
                    .and_then(|header| header.kid);
                let keys = self
                    .keys
                    .for_client(&client, kid.as_deref())
                    .await
                    .map_err(invalid_client)?;
                let claims = check_assertion_with_keys(
                    &client.client_id,
                    &keys,
                    &assertion,
                    issuer,
                    Utc::now().timestamp(),
                )
                .map_err(|error| {
                    tracing::debug!(client = %client.client_id, %error, "client assertion refused");
                    invalid_client(error)
                })?;
                let expires_at = DateTime::from_timestamp(claims.exp + LEEWAY_SECS, 0)
                    .ok_or_else(|| invalid_client("exp is out of range"))?;
                let scope = format!("client_assertion:{}", client.client_id);
                if !self
                    .tokens
                    .remember_jti(&scope, &claims.jti, expires_at)
                    .await?
                {
                    tracing::info!(client = %client.client_id, "client assertion replayed");
                    return Err(invalid_client("the assertion's jti was already used").into());
                }
                Ok(client)
            }
        }
    }
}

/// The claims of a verified client assertion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
}

/// The claims as sent: each one optional, so that a missing one is refused by name.
#[derive(Deserialize)]
struct SentClaims {
    iss: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

/// Why an assertion was refused; its text is the `error_description` the client gets (it
/// names the failed check and what was expected, never a key or a secret).
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("the client registered no usable keys")]
    NoKeys,
    #[error("client assertion header: {0}")]
    Header(&'static str),
    #[error("no key the client registered has kid {kid} and alg {alg}")]
    UnknownKey { kid: String, alg: String },
    #[error("client assertion: {0}")]
    Invalid(String),
    #[error("client assertion: {0}")]
    Claims(&'static str),
}

/// The description of a failed `jsonwebtoken` check, given what was expected.
fn describe(error: &jsonwebtoken::errors::Error, client_id: &str, issuer: &str) -> String {
    match error.kind() {
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::ExpiredSignature => "exp is in the past".into(),
        ErrorKind::ImmatureSignature => "nbf is in the future".into(),
        ErrorKind::InvalidAudience => {
            format!("aud must be the issuer identifier {issuer} (not an endpoint URL)")
        }
        ErrorKind::InvalidIssuer => format!("iss must be the client_id {client_id:?}"),
        ErrorKind::InvalidSubject => format!("sub must be the client_id {client_id:?}"),
        ErrorKind::MissingRequiredClaim(claim) => format!("the {claim} claim is required"),
        ErrorKind::InvalidAlgorithm => "alg is not the registered key's algorithm".into(),
        ErrorKind::Json(_) => "claims of the wrong type".into(),
        _ => "not a valid signed JWT".into(),
    }
}

/// Verifies a client assertion of `client` for audience `issuer` at `now` (pure: the `jti`
/// replay check is the caller's).
pub fn verify_assertion(
    client: &Client,
    assertion: &str,
    issuer: &str,
    now: DateTime<Utc>,
) -> Result<AssertionClaims, OAuthError> {
    check_assertion(client, assertion, issuer, now.timestamp()).map_err(|error| {
        tracing::debug!(client = %client.client_id, %error, "client assertion refused");
        invalid_client(error)
    })
}

fn check_assertion(
    client: &Client,
    assertion: &str,
    issuer: &str,
    now: i64,
) -> Result<AssertionClaims, AssertionError> {
    let keys = client
        .jwks
        .as_ref()
        .and_then(|jwks| KeySet::parse(jwks).ok())
        .ok_or(AssertionError::NoKeys)?;
    check_assertion_with_keys(&client.client_id, &keys, assertion, issuer, now)
}

/// Every check of [`verify_assertion`] (the `jti` replay check excepted) for a client known
/// by its id and keys only: what the sandbox banks' authorization server uses for bankgate's
/// own assertions. `now` in seconds.
pub fn check_assertion_with_keys(
    client_id: &str,
    keys: &KeySet,
    assertion: &str,
    issuer: &str,
    now: i64,
) -> Result<AssertionClaims, AssertionError> {
    let raw = crate::jose::raw_header(assertion).ok_or(AssertionError::Header("not a JWS"))?;
    for untrusted in ["jku", "x5u", "x5c", "jwk"] {
        if raw.contains_key(untrusted) {
            return Err(AssertionError::Header("keys must come from registration"));
        }
    }
    match raw.get("typ").map(|typ| typ.as_str()) {
        None => {}
        Some(Some(typ))
            if typ.eq_ignore_ascii_case("JWT")
                || typ.eq_ignore_ascii_case("client-authentication+jwt") => {}
        Some(_) => return Err(AssertionError::Header("typ is not a client assertion's")),
    }
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| AssertionError::Header("not a JWS header"))?;
    let key = keys
        .find(header.kid.as_deref())
        .filter(|key| key.alg == header.alg)
        .ok_or_else(|| AssertionError::UnknownKey {
            kid: header
                .kid
                .as_deref()
                .map_or_else(|| "(none)".to_owned(), |kid| format!("{:?}", shorten(kid))),
            alg: format!("{:?}", header.alg),
        })?;
    let mut validation = Validation::new(key.alg);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    validation.set_issuer(&[client_id]);
    validation.set_audience(&[issuer]);
    validation.sub = Some(client_id.to_owned());
    validation.leeway = LEEWAY_SECS as u64;
    validation.validate_nbf = true;
    let sent = jsonwebtoken::decode::<SentClaims>(assertion, &key.decoding, &validation)
        .map_err(|error| AssertionError::Invalid(describe(&error, client_id, issuer)))?
        .claims;
    let (Some(iss), Some(sub), Some(exp)) = (sent.iss, sent.sub, sent.exp) else {
        return Err(AssertionError::Claims("iss, sub and exp are required"));
    };
    let Some(iat) = sent.iat else {
        return Err(AssertionError::Claims("the iat claim is required"));
    };
    let claims = AssertionClaims {
        iss,
        sub,
        exp,
        iat,
        jti: sent.jti.unwrap_or_default(),
    };
    if claims.iat > now + LEEWAY_SECS {
        return Err(AssertionError::Claims("iat is in the future"));
    }
    if claims.exp > now + MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS {
        return Err(AssertionError::Claims(
            "exp is more than 60 seconds ahead (an assertion is for one request)",
        ));
    }
    if claims.jti.contains('\0') {
        // The replay cache cannot store it (PostgreSQL text); refused before it gets there.
        return Err(AssertionError::Claims("jti must not contain U+0000"));
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(AssertionError::Claims(
            "jti is required (at most 256 characters), a fresh one per assertion",
        ));
    }
    Ok(claims)
}

/// At most 64 characters of a caller's value, for an error description.
fn shorten(value: &str) -> String {
    value.chars().take(64).collect()
}

/// Credentials presented with HTTP Basic.
pub struct BasicCredentials {
    pub client_id: String,
    secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl BasicCredentials {
    /// Parses an `Authorization: Basic …` header value; id and secret are form-urlencoded.
    pub fn parse(header: Option<&str>) -> Result<BasicCredentials, OAuthError> {
        let invalid = || invalid_client("malformed HTTP Basic credentials");
        let encoded = header
            .and_then(|value| value.strip_prefix("Basic "))
            .ok_or_else(invalid)?;
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
        let unescape = |part: &str| {
            url::form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default()
        };
        Ok(BasicCredentials {
            client_id: unescape(id),
            secret: unescape(secret),
        })
    }
}

#[cfg(test)]
mod tests;
