//! Authentication: verifies the access token (and, for DPoP-bound tokens, the DPoP proof),
//! then checks the token's record in the store, and attaches the [`Principal`].
//!
//! - `Authorization: Bearer <token>` for unbound tokens, `Authorization: DPoP <token>` plus one
//!   `DPoP` proof header for tokens carrying `cnf.jkt` (RFC 9449 §7). A bound token presented as
//!   a bearer token is refused, and so is an unbound one presented with the DPoP scheme.
//! - [`Verifier::verify`] is the pure part, shared with the data path (`http::access`): the
//!   token's signature and claims ([`crate::oauth::tokens`]), and the proof against the method,
//!   bankgate's public URL plus the request path (`htu`), the token (`ath`), a server nonce and
//!   the key the token is bound to ([`crate::oauth::dpop`]).
//! - The store part is one round trip ([`crate::store::access`]): the token must be one this
//!   gateway recorded and did not revoke (RFC 7009, a revoked consent, a replayed code), and the
//!   proof's `jti` is spent. Asked on every request, so a revocation on one instance is seen by
//!   all at once. The same read names the client's role.
//! - Tokens are only read from the `Authorization` header, never from the query string.
//!
//! Refusals are 401 with the challenges of RFC 6750 §3 and RFC 9449 §7.1: a request without
//! credentials gets a bare challenge for each scheme (no error code); a request with a token
//! gets a challenge in the scheme it used, with `error="invalid_token"` (or
//! `invalid_dpop_proof`, `use_dpop_nonce` with a fresh `DPoP-Nonce`), DPoP's with `algs`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::HeaderValue;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use tracing::Instrument;

use super::observe::RequestLog;
use crate::crypto::Sealer;
use crate::error::Error;
use crate::oauth::dpop::{self, DPOP_HEADER, DPOP_NONCE_HEADER, DpopError, Expected, Nonces};
use crate::oauth::tokens::{AccessClaims, TokenService};
use crate::oauth::{CONSENTS_MANAGE, Role};
use crate::store::access::{AccessQuery, AccessReads, AccessState, ProofSpend, TokenState};

/// Who is calling, from a verified access token and its client's registration.
#[derive(Debug, Clone)]
pub struct Principal {
    pub claims: Arc<AccessClaims>,
    /// The client's role as registered (not as the token's scope says).
    pub role: Role,
}

impl Principal {
    /// The authenticated client.
    pub fn client_id(&self) -> &str {
        &self.claims.client_id
    }

    /// The token's subject: a consent id for platform tokens.
    pub fn subject(&self) -> &str {
        &self.claims.sub
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scopes().any(|granted| granted == scope)
    }

    /// What the token may do on the consent and subscription routes: manage the platform's
    /// consents (its management token), or reach the one consent it is bound to.
    pub fn caller(&self) -> Caller<'_> {
        if self.has_scope(CONSENTS_MANAGE) && self.subject() == self.client_id() {
            Caller::Platform {
                client_id: self.client_id(),
            }
        } else {
            Caller::Consent {
                client_id: self.client_id(),
                consent_id: self.subject(),
            }
        }
    }
}

/// The caller of a consent or subscription route ([`Principal::caller`]).
pub enum Caller<'a> {
    /// A platform's management token.
    Platform { client_id: &'a str },
    /// A token bound to one consent.
    Consent {
        client_id: &'a str,
        consent_id: &'a str,
    },
}

impl Caller<'_> {
    /// The platform calling.
    pub fn client_id(&self) -> &str {
        match self {
            Caller::Platform { client_id } | Caller::Consent { client_id, .. } => client_id,
        }
    }
}

/// The authorization scheme a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// A token whose signature, claims and (if bound) proof checked out; its record in the store
/// is still to be checked.
#[derive(Debug, Clone)]
pub struct Presented {
    pub claims: AccessClaims,
    pub scheme: Scheme,
    /// The verified proof of a bound token.
    pub proof: Option<dpop::Proof>,
}

impl Presented {
    /// The proof's `jti` to spend in the replay cache (per key, until the proof would be too
    /// old anyway).
    pub fn proof_spend(&self) -> Option<ProofSpend> {
        self.proof.as_ref().map(|proof| {
            let (scope, expires_at) = proof.replay_entry();
            ProofSpend {
                scope,
                jti: proof.jti.clone(),
                expires_at,
            }
        })
    }
}

/// Why authentication failed, and the challenge that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No credentials (or a scheme bankgate does not take).
    Missing,
    /// The token is invalid, expired, revoked or not ours.
    InvalidToken(Scheme, &'static str),
    /// The DPoP proof failed.
    Dpop(DpopError),
}

/// The algorithms a DPoP proof may use, as the `algs` challenge parameter says.
fn algs() -> String {
    format!("algs=\"{}\"", dpop::ALGS.join(" "))
}

impl Challenge {
    /// The 401 response, with its challenges.
    pub fn into_response(self, sealer: &Sealer) -> Response {
        let detail = match &self {
            Challenge::Missing => "a bearer or DPoP access token is required".to_owned(),
            Challenge::InvalidToken(_, detail) => (*detail).to_owned(),
            Challenge::Dpop(error) => error.to_string(),
        };
        let mut response = Error::Unauthenticated(detail).into_response();
        self.insert(response.headers_mut(), sealer);
        response
    }

    /// Sets `WWW-Authenticate` (and a fresh nonce for `use_dpop_nonce`) on a 401 response.
    pub fn insert(&self, headers: &mut http::HeaderMap, sealer: &Sealer) {
        let challenges = match self {
            Challenge::Missing => vec!["Bearer".to_owned(), format!("DPoP {}", algs())],
            Challenge::InvalidToken(Scheme::Bearer, detail) => vec![format!(
                "Bearer error=\"invalid_token\", error_description=\"{detail}\""
            )],
            Challenge::InvalidToken(Scheme::Dpop, detail) => {
                vec![dpop::www_authenticate("invalid_token", detail)]
            }
            Challenge::Dpop(error) => {
                vec![dpop::www_authenticate(error.code(), &error.to_string())]
            }
        };
        headers.remove(WWW_AUTHENTICATE);
        for challenge in challenges {
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.append(WWW_AUTHENTICATE, value);
            }
        }
        if *self == Challenge::Dpop(DpopError::UseNonce) {
            insert_nonce(sealer, headers);
        }
    }
}

/// Adds a fresh `DPoP-Nonce` (keeps a bound client's nonce fresh without a `use_dpop_nonce`
/// round trip).
pub fn insert_nonce(sealer: &Sealer, headers: &mut http::HeaderMap) {
    let nonce = Nonces::new(sealer).issue(Utc::now().timestamp());
    if let Ok(value) = HeaderValue::from_str(&nonce) {
        headers.insert(DPOP_NONCE_HEADER, value);
    }
}

/// The pure part of authentication: the token service, the sealing key (DPoP nonces) and the
/// public URL (`htu`).
#[derive(Clone)]
pub struct Verifier {
    pub tokens: TokenService,
    pub sealer: Arc<Sealer>,
    pub public_url: Arc<str>,
}

/// The detail of every token refusal: the caller learns only that the token is not good.
const INVALID_TOKEN: &str = "the access token is invalid or expired";

impl Verifier {
    /// The verifier of a running gateway.
    pub fn for_app(app: &crate::app::App) -> Verifier {
        Verifier {
            tokens: app.tokens.clone(),
            sealer: app.sealer.clone(),
            public_url: Arc::from(app.config.public_url.as_str()),
        }
    }

    /// Verifies the request's token and, for a bound token, its proof. No I/O.
    pub fn verify(&self, request: &Request) -> Result<Presented, Challenge> {
        let headers = request.headers();
        let (scheme, token) = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .and_then(|(scheme, token)| {
                let scheme = match scheme.to_ascii_lowercase().as_str() {
                    "bearer" => Scheme::Bearer,
                    "dpop" => Scheme::Dpop,
                    _ => return None,
                };
                Some((scheme, token.trim()))
            })
            .ok_or(Challenge::Missing)?;
        let claims = self.tokens.verify(token).map_err(|error| {
            tracing::debug!(%error, "access token rejected");
            Challenge::InvalidToken(scheme, INVALID_TOKEN)
        })?;
        let proof = match (claims.jkt(), scheme) {
            (Some(jkt), Scheme::Dpop) => Some(self.check_proof(request, token, jkt)?),
            (Some(_), Scheme::Bearer) => {
                return Err(Challenge::Dpop(DpopError::Invalid(
                    "this token is DPoP-bound: use the DPoP scheme with a proof",
                )));
            }
            (None, Scheme::Dpop) => {
                return Err(Challenge::InvalidToken(
                    scheme,
                    "this token is not DPoP-bound",
                ));
            }
            (None, Scheme::Bearer) => None,
        };
        Ok(Presented {
            claims,
            scheme,
            proof,
        })
    }

    fn check_proof(
        &self,
        request: &Request,
        token: &str,
        jkt: &str,
    ) -> Result<dpop::Proof, Challenge> {
        let mut proofs = request.headers().get_all(DPOP_HEADER).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (Some(proof), None) => proof
                .to_str()
                .map_err(|_| Challenge::Dpop(DpopError::Invalid("not a JWS")))?,
            (None, _) => {
                return Err(Challenge::Dpop(DpopError::Invalid(
                    "the DPoP proof is missing",
                )));
            }
            (Some(_), Some(_)) => {
                return Err(Challenge::Dpop(DpopError::Invalid(
                    "more than one DPoP header",
                )));
            }
        };
        let url = format!("{}{}", self.public_url, request.uri().path());
        let expected = Expected {
            method: request.method().as_str(),
            url: &url,
            access_token: Some(token),
        };
        let verified = dpop::verify(
            proof,
            &expected,
            &Nonces::new(&self.sealer),
            Utc::now().timestamp(),
        )
        .map_err(Challenge::Dpop)?;
        if !crate::crypto::constant_time_eq(verified.jkt.as_bytes(), jkt.as_bytes()) {
            return Err(Challenge::Dpop(DpopError::Invalid(
                "the proof's key is not the one the token is bound to",
            )));
        }
        Ok(verified)
    }
}

/// The store's verdict on a presented token: on record, not revoked, proof not replayed.
pub fn check_state(presented: &Presented, state: &AccessState) -> Result<(), Challenge> {
    if state.token != TokenState::Active {
        return Err(Challenge::InvalidToken(presented.scheme, INVALID_TOKEN));
    }
    if state.proof_fresh == Some(false) {
        return Err(Challenge::Dpop(DpopError::Invalid(
            "the proof was already used",
        )));
    }
    Ok(())
}

/// What [`authenticate`] needs: the token checks and the read of the token's record.
#[derive(Clone)]
pub struct Authn {
    verifier: Verifier,
    store: Arc<dyn AccessReads>,
}

impl Authn {
    /// The checks of a running gateway.
    pub fn for_app(app: &crate::app::App) -> Self {
        Authn {
            verifier: Verifier::for_app(app),
            store: app.store.clone(),
        }
    }
}

/// Rejects requests without a valid access token (401); inserts [`Principal`] otherwise. A
/// middleware: `axum::middleware::from_fn_with_state(Authn::for_app(app), authenticate)`.
pub async fn authenticate(
    State(authn): State<Authn>,
    mut request: Request,
    next: Next,
) -> Response {
    let sealer = &authn.verifier.sealer;
    let presented = match authn.verifier.verify(&request) {
        Ok(presented) => presented,
        Err(challenge) => return challenge.into_response(sealer),
    };
    let query = AccessQuery {
        jti: presented.claims.jti.clone(),
        client_id: presented.claims.client_id.clone(),
        proof: presented.proof_spend(),
        data: None,
    };
    let read = tracing::info_span!("store_read", read = "access_state");
    let state = match authn.store.access_state(&query).instrument(read).await {
        Ok(state) => state,
        Err(error) => return Error::Store(error).into_response(),
    };
    if let Err(challenge) = check_state(&presented, &state) {
        return challenge.into_response(sealer);
    }
    let Some(client) = state.client else {
        return Challenge::InvalidToken(presented.scheme, INVALID_TOKEN).into_response(sealer);
    };
    let bound = presented.proof.is_some();
    RequestLog::client(&request, &presented.claims.client_id);
    request.extensions_mut().insert(Principal {
        claims: Arc::new(presented.claims),
        role: client.role,
    });
    let mut response = next.run(request).await;
    if bound {
        insert_nonce(sealer, response.headers_mut());
    }
    response
}
