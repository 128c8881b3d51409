//! Client authentication at bankgate's token, PAR and revocation endpoints:
//! `private_key_jwt` (RFC 7523, FAPI 2.0) and `client_secret_basic` (RFC 6749 §2.3.1, for
//! development). A client uses the one method it registered; presenting two is an error.
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

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use jsonwebtoken::Validation;
use serde::Deserialize;

use super::jose::KeySet;
use crate::error::{Error, OAuthError};
use crate::store::{AuthMethod, Client, Store};

/// `client_assertion_type` for JWT client assertions (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The furthest in the future an assertion's `exp` may be.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 60;

/// Clock skew allowed on `iat`, `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 5;

/// The longest `jti` remembered.
const MAX_JTI_LEN: usize = 256;

fn invalid_client() -> OAuthError {
    OAuthError::new("invalid_client", "client authentication failed")
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
                // Only to find the client whose keys verify it; nothing is trusted yet.
                let Subject { sub } =
                    jsonwebtoken::dangerous::insecure_decode::<Subject>(assertion)
                        .map(|data| data.claims)
                        .map_err(|_| invalid_client())?;
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
            (None, Some(_), _) => Err(invalid_client()),
            (None, None, Some(_)) => Err(OAuthError::new(
                "invalid_request",
                "client_assertion_type is missing",
            )),
            (None, None, None) => Err(invalid_client()),
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

/// Authenticates the client of a request at bankgate (`issuer`): finds it, checks that it
/// uses its registered method, verifies the credentials and, for assertions, spends the `jti`.
pub async fn authenticate(
    store: &dyn Store,
    issuer: &str,
    authorization: Option<&str>,
    params: AuthParams<'_>,
) -> Result<Client, Error> {
    let presented = Presented::parse(authorization, params)?;
    let client = store.client(presented.client_id()).await?;
    match presented {
        Presented::Basic(credentials) => {
            // Verify even for an unknown client, so that timing does not reveal client ids.
            credentials.verify(client.as_ref())?;
            let client = client.ok_or_else(invalid_client)?;
            if client.token_endpoint_auth_method != AuthMethod::ClientSecretBasic {
                return Err(invalid_client().into());
            }
            Ok(client)
        }
        Presented::Assertion { assertion, .. } => {
            let client = client
                .filter(|client| client.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt)
                .ok_or_else(invalid_client)?;
            let claims = verify_assertion(&client, &assertion, issuer, Utc::now())?;
            let expires_at =
                DateTime::from_timestamp(claims.exp + LEEWAY_SECS, 0).ok_or_else(invalid_client)?;
            let scope = format!("client_assertion:{}", client.client_id);
            if !store.remember_jti(&scope, &claims.jti, expires_at).await? {
                tracing::info!(client = %client.client_id, "client assertion replayed");
                return Err(invalid_client().into());
            }
            Ok(client)
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

/// Why an assertion was refused (logged at debug; the caller only learns `invalid_client`).
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("the client registered no usable keys")]
    NoKeys,
    #[error("header: {0}")]
    Header(&'static str),
    #[error("no registered key matches kid and alg")]
    UnknownKey,
    #[error("{0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("claims: {0}")]
    Claims(&'static str),
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
        invalid_client()
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
    let raw = super::jose::raw_header(assertion).ok_or(AssertionError::Header("not a JWS"))?;
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
    let header = jsonwebtoken::decode_header(assertion)?;
    let key = keys
        .find(header.kid.as_deref())
        .filter(|key| key.alg == header.alg)
        .ok_or(AssertionError::UnknownKey)?;
    let mut validation = Validation::new(key.alg);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    validation.set_issuer(&[client_id]);
    validation.set_audience(&[issuer]);
    validation.sub = Some(client_id.to_owned());
    validation.leeway = LEEWAY_SECS as u64;
    validation.validate_nbf = true;
    let claims =
        jsonwebtoken::decode::<AssertionClaims>(assertion, &key.decoding, &validation)?.claims;
    if claims.iat > now + LEEWAY_SECS {
        return Err(AssertionError::Claims("iat is in the future"));
    }
    if claims.exp > now + MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS {
        return Err(AssertionError::Claims("exp is too far ahead"));
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(AssertionError::Claims("jti is missing or too long"));
    }
    Ok(claims)
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
        let invalid = || OAuthError::new("invalid_client", "client authentication failed");
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

    /// Checks the secret against the registered client (Argon2, constant time).
    pub fn verify(&self, client: Option<&Client>) -> Result<(), OAuthError> {
        match client {
            Some(client) if crate::crypto::verify_secret(&self.secret, &client.secret_hash) => {
                Ok(())
            }
            _ => Err(OAuthError::new(
                "invalid_client",
                "client authentication failed",
            )),
        }
    }
}

/// Encodes credentials for `Authorization: Basic` (used by the demo platform and tests).
pub fn basic_header(client_id: &str, secret: &str) -> String {
    let escape =
        |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", escape(client_id), escape(secret)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_round_trips_with_reserved_characters() {
        let header = basic_header("platform:a", "s3c ret/+");
        let credentials = BasicCredentials::parse(Some(&header)).unwrap();
        assert_eq!(credentials.client_id, "platform:a");
        assert_eq!(credentials.secret, "s3c ret/+");
    }

    #[test]
    fn malformed_headers_are_invalid_client() {
        for header in [
            None,
            Some("Bearer x"),
            Some("Basic !!!"),
            Some("Basic Zm9v"),
        ] {
            let error = BasicCredentials::parse(header).unwrap_err();
            assert_eq!(error.code, "invalid_client");
            assert_eq!(error.status, 401);
        }
    }
}
