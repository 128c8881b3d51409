//! The FAPI 2.0 side of the sandbox's authorization server, on as far as its
//! [`SandboxFapi`](crate::SandboxFapi) asks: `private_key_jwt` client authentication
//! (RFC 7523), pushed authorization requests (RFC 9126; a DPoP proof at PAR binds the code to
//! its key, RFC 9449 §10), DPoP proofs with server nonces at the token endpoint, and
//! [`sender_constraint`], the layer that checks DPoP-bound tokens on the bank's data routes.
//!
//! The checks themselves are in [`jose`](super::jose): the bank's own, as strict as FAPI 2.0
//! asks of any authorization server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::jose::{
    self, CLIENT_ASSERTION_TYPE, ClientKeys, DPOP_HEADER, DPOP_NONCE_HEADER, DpopError, Expected,
    Nonces,
};
use super::{AuthServer, ConsentBinding, OAuthBooks, OAuthError, random_token};
use crate::SandboxFapi;
use crate::plumbing::{header_text, no_store, parameters};

/// How long a pushed request's `request_uri` stays usable (single use).
pub const PAR_LIFETIME: Duration = Duration::from_secs(60);
/// How long a seen client assertion or DPoP proof `jti` is remembered.
const JTI_MEMORY: Duration = Duration::from_secs(120);
/// The `request_uri` prefix of pushed requests.
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The server's FAPI settings.
pub(super) struct Fapi {
    /// The client's registered keys: `private_key_jwt` is required when set.
    pub(super) client_keys: Option<ClientKeys>,
    pub(super) require_par: bool,
    pub(super) require_dpop: bool,
    /// Refresh tokens only for `offline_access` requests.
    pub(super) refresh_needs_offline_access: bool,
    /// The resource authorization requests must name (RFC 8707).
    pub(super) resource: Option<String>,
    /// The `authorization_details` type naming a consent, where the standard takes it so.
    pub(super) consent_detail_type: Option<String>,
    /// The resource server demands nonces in data calls' DPoP proofs.
    resource_nonce: bool,
    /// The only algorithms taken in assertions and proofs, if restricted.
    pub(super) signing_algs: Option<Vec<String>>,
    /// The server's DPoP nonces (keyed by the client secret, so deterministic).
    nonces: Nonces,
}

impl Fapi {
    /// The settings of `config`; `secret` keys the nonces.
    pub(super) fn new(config: &SandboxFapi, secret: &str) -> Fapi {
        // Unusable keys refuse every assertion rather than fall back to the secret.
        let client_keys = config.client_jwks.as_ref().map(|jwks| {
            ClientKeys::parse(jwks).unwrap_or_else(|error| {
                tracing::error!(%error, "sandbox: unusable client keys");
                ClientKeys::none()
            })
        });
        Fapi {
            client_keys,
            require_par: config.require_par,
            require_dpop: config.require_dpop,
            refresh_needs_offline_access: config.refresh_needs_offline_access,
            resource: config.resource.clone(),
            consent_detail_type: config.consent_detail_type.clone(),
            resource_nonce: config.resource_nonce,
            signing_algs: config.signing_algs.clone(),
            nonces: Nonces::new(format!("sandbox dpop nonce\0{secret}").as_bytes()),
        }
    }
}

impl Fapi {
    /// Whether the server takes a JWS signed with the algorithm its header names.
    pub(super) fn takes_alg(&self, jws: &str) -> bool {
        let Some(algs) = &self.signing_algs else {
            return true;
        };
        jsonwebtoken::decode_header(jws)
            .is_ok_and(|header| algs.iter().any(|alg| *alg == format!("{:?}", header.alg)))
    }

    /// The algorithms the metadata names.
    pub(super) fn algs(&self) -> Vec<String> {
        self.signing_algs
            .clone()
            .unwrap_or_else(|| jose::DPOP_ALGS.map(str::to_owned).to_vec())
    }
}

/// A pushed authorization request, waiting for the browser.
pub(crate) struct Pushed {
    parameters: HashMap<String, String>,
    dpop_jkt: Option<String>,
    expires_at: Instant,
}

impl Pushed {
    /// Whether it can still be used.
    pub(crate) fn live(&self, now: Instant) -> bool {
        self.expires_at > now
    }
}

/// Remembers a one-time `jti` until `until`; `false` if it was seen and is still remembered.
fn spend(books: &mut OAuthBooks, jti: String, until: Instant) -> bool {
    let now = Instant::now();
    books.seen_jtis.retain(|_, expires| *expires > now);
    if books.seen_jtis.contains_key(&jti) {
        return false;
    }
    books.seen_jtis.insert(jti, until);
    true
}

impl OAuthError {
    /// An RFC 9449 error (`invalid_dpop_proof`, `use_dpop_nonce`) with a fresh nonce.
    pub(super) fn dpop(error: &DpopError, nonce: Option<String>) -> OAuthError {
        let mut refusal = OAuthError::new(error.code(), error.to_string());
        refusal.dpop_nonce = nonce;
        refusal
    }
}

impl AuthServer {
    /// Authenticates the client by `private_key_jwt` against its registered keys; a secret
    /// (Basic or in the body) is refused.
    pub(super) fn authenticate_with_assertion(
        &self,
        keys: &ClientKeys,
        headers: &HeaderMap,
        parameters: &HashMap<String, String>,
    ) -> Result<(), OAuthError> {
        let basic = header_text(headers, header::AUTHORIZATION.as_str())
            .is_some_and(|value| value.starts_with("Basic "));
        if basic || parameters.contains_key("client_secret") {
            return Err(OAuthError::invalid_client(false));
        }
        if parameters.get("client_assertion_type").map(String::as_str)
            != Some(CLIENT_ASSERTION_TYPE)
        {
            return Err(OAuthError::invalid_client(false));
        }
        let assertion = parameters
            .get("client_assertion")
            .ok_or_else(|| OAuthError::invalid_client(false))?;
        if parameters
            .get("client_id")
            .is_some_and(|id| *id != self.client_id)
        {
            return Err(OAuthError::invalid_client(false));
        }
        if !self.fapi.takes_alg(assertion) {
            tracing::info!("sandbox: client assertion in an algorithm the server does not take");
            return Err(OAuthError::invalid_client(false));
        }
        let now = chrono::Utc::now().timestamp();
        let jti = jose::check_assertion(keys, &self.client_id, assertion, &self.origin, now)
            .map_err(|error| {
                tracing::info!(%error, "sandbox: client assertion refused");
                OAuthError::invalid_client(false)
            })?;
        if !spend(
            &mut self.books(),
            format!("assertion:{jti}"),
            Instant::now() + JTI_MEMORY,
        ) {
            return Err(OAuthError::invalid_client(false));
        }
        Ok(())
    }

    /// A fresh DPoP nonce.
    pub(super) fn nonce(&self) -> String {
        self.fapi.nonces.issue(chrono::Utc::now().timestamp())
    }

    /// The DPoP proof of a request to `path` on this server (`POST`), verified with a nonce
    /// and spent: the thumbprint of its key, or `None` without a proof.
    pub(super) fn proof(
        &self,
        headers: &HeaderMap,
        path: &str,
    ) -> Result<Option<String>, OAuthError> {
        let mut proofs = headers.get_all(DPOP_HEADER).iter();
        let Some(proof) = proofs.next() else {
            return Ok(None);
        };
        let refuse = |error: DpopError| OAuthError::dpop(&error, Some(self.nonce()));
        if proofs.next().is_some() {
            return Err(refuse(DpopError::Invalid("more than one DPoP header")));
        }
        let proof = proof
            .to_str()
            .map_err(|_| refuse(DpopError::Invalid("not a JWS")))?;
        let url = format!("{}{path}", self.origin);
        let expected = Expected {
            method: "POST",
            url: &url,
            access_token: None,
        };
        if !self.fapi.takes_alg(proof) {
            return Err(refuse(DpopError::Invalid(
                "the proof's alg is not one the server takes",
            )));
        }
        let now = chrono::Utc::now().timestamp();
        let verified =
            jose::verify_proof(proof, &expected, Some(&self.fapi.nonces), now).map_err(refuse)?;
        if !spend(
            &mut self.books(),
            format!("dpop:{}:{}", verified.jkt, verified.jti),
            Instant::now() + JTI_MEMORY,
        ) {
            return Err(refuse(DpopError::Invalid("the proof was already used")));
        }
        Ok(Some(verified.jkt))
    }

    /// The parameters an authorization request stands for: a pushed request's (taken once,
    /// with the key its code is bound to) when it names a `request_uri`, or its own. Refuses a
    /// plain request when PAR is required.
    pub(super) fn resolve_pushed(
        &self,
        parameters: HashMap<String, String>,
    ) -> Result<(HashMap<String, String>, Option<String>), String> {
        let Some(request_uri) = parameters.get("request_uri") else {
            if self.fapi.require_par {
                return Err("this bank requires pushed authorization requests (PAR)".into());
            }
            return Ok((parameters, None));
        };
        if parameters.get("client_id") != Some(&self.client_id) {
            return Err("unknown client_id".into());
        }
        let now = Instant::now();
        let pushed = self
            .books()
            .pushed
            .remove(request_uri)
            .filter(|pushed| pushed.live(now))
            .ok_or_else(|| "request_uri is unknown, used or expired".to_owned())?;
        Ok((pushed.parameters, pushed.dpop_jkt))
    }
}

/// `POST /oauth/par` (RFC 9126): authenticates the client, checks the request's shape, binds
/// it to a DPoP key when a proof (or `dpop_jkt`) comes with it, and answers a single-use
/// `request_uri`.
pub(super) async fn par<B: ConsentBinding>(
    State(bank): State<Arc<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let auth = bank.auth();
    let mut parameters = parameters(&body).map_err(OAuthError::invalid_request)?;
    auth.authenticate(&headers, &parameters)?;
    if parameters.contains_key("request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri is not allowed in a pushed request",
        ));
    }
    let get = |name: &str| parameters.get(name).map(String::as_str);
    if get("response_type") != Some("code") {
        return Err(OAuthError::invalid_request("response_type must be code"));
    }
    if get("code_challenge_method") != Some("S256") || get("code_challenge").is_none() {
        return Err(OAuthError::invalid_request("PKCE S256 is required"));
    }
    if get("redirect_uri").is_none() {
        return Err(OAuthError::invalid_request("redirect_uri is missing"));
    }
    let proven = auth.proof(&headers, "/oauth/par")?;
    let dpop_jkt = match (proven, parameters.remove("dpop_jkt")) {
        (Some(proven), Some(named)) if proven != named => {
            return Err(OAuthError::invalid_request(
                "dpop_jkt does not match the DPoP proof",
            ));
        }
        (Some(proven), _) => Some(proven),
        (None, named) => named,
    };
    for credential in ["client_assertion", "client_assertion_type", "client_secret"] {
        parameters.remove(credential);
    }
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_token(24)?);
    let now = Instant::now();
    {
        let mut books = auth.books();
        books.prune(now);
        books.pushed.insert(
            request_uri.clone(),
            Pushed {
                parameters,
                dpop_jkt,
                expires_at: now + PAR_LIFETIME,
            },
        );
    }
    let body = json!({"request_uri": request_uri, "expires_in": PAR_LIFETIME.as_secs()});
    Ok((StatusCode::CREATED, no_store(), Json(body)).into_response())
}

/// Checks DPoP-bound tokens on the bank's data routes (RFC 9449 §7): a bound token needs the
/// `DPoP` scheme and a proof for this request by its key (`htm`, `htu` = origin + path, `ath`,
/// fresh `iat`, single-use `jti`; no nonce is asked for); a bearer token may not use the
/// `DPoP` scheme. A request that passes goes on with `Authorization: Bearer`, which the
/// bank's handlers read.
pub async fn sender_constraint<B: ConsentBinding>(
    State(bank): State<Arc<B>>,
    mut request: Request,
    next: Next,
) -> Response {
    let auth = bank.auth();
    let Some((scheme, token)) = header_text(request.headers(), header::AUTHORIZATION.as_str())
        .and_then(|value| value.split_once(' '))
        .map(|(scheme, token)| (scheme.to_owned(), token.trim().to_owned()))
    else {
        return next.run(request).await;
    };
    let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
    if !dpop_scheme && !scheme.eq_ignore_ascii_case("bearer") {
        return next.run(request).await;
    }
    let bound = auth
        .books()
        .access_tokens
        .get(&token)
        .map(|entry| entry.jkt.clone());
    // A resource server that demands nonces hands the current one out with every answer.
    let resource_nonce = auth
        .fapi
        .resource_nonce
        .then(|| nonce_header(auth))
        .flatten();
    let with_nonce = |mut response: Response| {
        if let Some((name, value)) = resource_nonce.clone() {
            response.headers_mut().insert(name, value);
        }
        response
    };
    let refuse = |error: &str, description: &str| {
        let challenge = jose::www_authenticate(error, description);
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        with_nonce(response)
    };
    match (bound, dpop_scheme) {
        // Unknown tokens and bearer tokens as bearer: the handler decides.
        (None, false) | (Some(None), false) => {}
        (None, true) => {}
        (Some(None), true) => {
            return refuse("invalid_token", "the token is not DPoP-bound");
        }
        (Some(Some(_)), false) => {
            return refuse(
                "invalid_token",
                "the token is DPoP-bound: use the DPoP scheme",
            );
        }
        (Some(Some(jkt)), true) => {
            let mut proofs = request.headers().get_all(DPOP_HEADER).iter();
            let proof = match (proofs.next(), proofs.next()) {
                (Some(proof), None) => proof.to_str().unwrap_or_default().to_owned(),
                _ => return refuse("invalid_dpop_proof", "exactly one DPoP proof is required"),
            };
            let url = format!("{}{}", auth.origin(), request.uri().path());
            let expected = Expected {
                method: request.method().as_str(),
                url: &url,
                access_token: Some(&token),
            };
            if !auth.fapi.takes_alg(&proof) {
                return refuse(
                    "invalid_dpop_proof",
                    "the proof's alg is not one the server takes",
                );
            }
            let now = chrono::Utc::now().timestamp();
            let nonces = auth.fapi.resource_nonce.then_some(&auth.fapi.nonces);
            let verified = match jose::verify_proof(&proof, &expected, nonces, now) {
                Ok(verified) => verified,
                Err(error) => return refuse(error.code(), &error.to_string()),
            };
            if verified.jkt != jkt {
                return refuse("invalid_dpop_proof", "the proof is not by the token's key");
            }
            if !spend(
                &mut auth.books(),
                format!("dpop:{}:{}", verified.jkt, verified.jti),
                Instant::now() + JTI_MEMORY,
            ) {
                return refuse("invalid_dpop_proof", "the proof was already used");
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let response = next.run(request).await;
    if dpop_scheme {
        with_nonce(response)
    } else {
        response
    }
}

/// The response header carrying a fresh nonce, for token answers.
pub(super) fn nonce_header(auth: &AuthServer) -> Option<(header::HeaderName, HeaderValue)> {
    let value = HeaderValue::from_str(&auth.nonce()).ok()?;
    Some((header::HeaderName::from_static(DPOP_NONCE_HEADER), value))
}
