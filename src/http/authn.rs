//! Authentication: verifies the access token (and, for DPoP-bound tokens, the DPoP proof) and
//! attaches the [`Principal`].
//!
//! - `Authorization: Bearer <token>` for unbound tokens, `Authorization: DPoP <token>` plus one
//!   `DPoP` proof header for tokens carrying `cnf.jkt` (RFC 9449 §7). A bound token presented as
//!   a bearer token is refused, and so is an unbound one presented with the DPoP scheme.
//! - The proof is checked by [`crate::oauth::dpop`] against the method, bankgate's public URL
//!   plus the request path (`htu`), the token (`ath`), a server nonce and the replay cache; the
//!   key must be the one the token is bound to.
//! - A token revoked early (RFC 7009, a revoked consent, a replayed code) is refused: the store
//!   is asked on every request, so a revocation on one instance is seen by all at once.
//! - Tokens are only read from the `Authorization` header, never from the query string.
//!
//! DPoP failures answer 401 with `WWW-Authenticate: DPoP error="…"` and, for
//! `use_dpop_nonce`, a fresh `DPoP-Nonce`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::future::{BoxFuture, FutureExt};
use http::HeaderValue;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use tower::{Layer, Service};

use crate::crypto::Sealer;
use crate::error::Error;
use crate::oauth::dpop::{self, DPOP_HEADER, DPOP_NONCE_HEADER, DpopError, Expected, Nonces};
use crate::oauth::tokens::{AccessClaims, TokenService};
use crate::store::Store;

/// Who is calling, from a verified access token.
#[derive(Debug, Clone)]
pub struct Principal(pub Arc<AccessClaims>);

impl Principal {
    /// The authenticated client.
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The token's subject: a consent id for platform tokens.
    pub fn subject(&self) -> &str {
        &self.0.sub
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes().any(|granted| granted == scope)
    }
}

/// What a request says about its credentials (owned: nothing borrows the body across awaits).
struct Credentials {
    headers: http::HeaderMap,
    method: http::Method,
    path: String,
}

/// What authentication needs: the token service, the store (revocations, DPoP replay cache),
/// the sealing key (DPoP nonces) and the public URL (`htu`).
#[derive(Clone)]
struct Verifier {
    tokens: TokenService,
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    public_url: Arc<str>,
}

/// Builds [`Authn`].
#[derive(Clone)]
pub struct AuthnLayer {
    verifier: Verifier,
}

impl AuthnLayer {
    /// Verifies tokens with `tokens` (ES256 pinned, `iss`, `aud`, `exp`, `sub`, `typ`), early
    /// revocations in `store`, DPoP proofs with nonces of `sealer` for URLs under `public_url`.
    pub fn new(
        tokens: TokenService,
        store: Arc<dyn Store>,
        sealer: Arc<Sealer>,
        public_url: &str,
    ) -> Self {
        AuthnLayer {
            verifier: Verifier {
                tokens,
                store,
                sealer,
                public_url: Arc::from(public_url),
            },
        }
    }

    /// The layer for a running gateway.
    pub fn for_app(app: &crate::app::App) -> Self {
        AuthnLayer::new(
            app.tokens.clone(),
            app.store.clone(),
            app.sealer.clone(),
            &app.config.public_url,
        )
    }
}

impl<S> Layer<S> for AuthnLayer {
    type Service = Authn<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authn {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// Rejects requests without a valid access token (401); inserts [`Principal`] otherwise.
#[derive(Clone)]
pub struct Authn<S> {
    inner: S,
    verifier: Verifier,
}

/// A refusal: the problem response, with DPoP's challenge when it is about DPoP.
enum Refusal {
    Token(&'static str),
    Dpop(DpopError),
    Error(Error),
}

impl Refusal {
    fn into_response(self, sealer: &Sealer) -> Response {
        match self {
            Refusal::Token(detail) => Error::Unauthenticated(detail.into()).into_response(),
            Refusal::Error(error) => error.into_response(),
            Refusal::Dpop(error) => {
                let detail = error.to_string();
                let mut response = Error::Unauthenticated(detail.clone()).into_response();
                let headers = response.headers_mut();
                if let Ok(value) =
                    HeaderValue::from_str(&dpop::www_authenticate(error.code(), &detail))
                {
                    headers.insert(WWW_AUTHENTICATE, value);
                }
                if error == DpopError::UseNonce {
                    insert_nonce(sealer, headers);
                }
                response
            }
        }
    }
}

fn insert_nonce(sealer: &Sealer, headers: &mut http::HeaderMap) {
    let nonce = Nonces::new(sealer).issue(Utc::now().timestamp());
    if let Ok(value) = HeaderValue::from_str(&nonce) {
        headers.insert(DPOP_NONCE_HEADER, value);
    }
}

impl Verifier {
    /// The verified claims of the request's token.
    async fn authenticate(&self, request: &Credentials) -> Result<AccessClaims, Refusal> {
        let headers = &request.headers;
        let (scheme, token) = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .map(|(scheme, token)| (scheme.to_ascii_lowercase(), token.trim()))
            .filter(|(scheme, _)| scheme == "bearer" || scheme == "dpop")
            .ok_or(Refusal::Token("a bearer or DPoP access token is required"))?;
        let claims = self.tokens.verify(token).map_err(|error| {
            tracing::debug!(%error, "access token rejected");
            Refusal::Token("the access token is invalid or expired")
        })?;
        match (claims.jkt(), scheme.as_str()) {
            (Some(jkt), "dpop") => self.check_proof(request, token, jkt).await?,
            (Some(_), _) => {
                return Err(Refusal::Dpop(DpopError::Invalid(
                    "this token is DPoP-bound: use the DPoP scheme with a proof",
                )));
            }
            (None, "dpop") => {
                return Err(Refusal::Token("this token is not DPoP-bound"));
            }
            (None, _) => {}
        }
        if self
            .store
            .access_token_revoked(&claims.jti)
            .await
            .map_err(|error| Refusal::Error(error.into()))?
        {
            return Err(Refusal::Token("the access token is invalid or expired"));
        }
        Ok(claims)
    }

    async fn check_proof(
        &self,
        request: &Credentials,
        token: &str,
        jkt: &str,
    ) -> Result<(), Refusal> {
        let mut proofs = request.headers.get_all(DPOP_HEADER).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (Some(proof), None) => proof
                .to_str()
                .map_err(|_| Refusal::Dpop(DpopError::Invalid("not a JWS")))?,
            (None, _) => {
                return Err(Refusal::Dpop(DpopError::Invalid(
                    "the DPoP proof is missing",
                )));
            }
            (Some(_), Some(_)) => {
                return Err(Refusal::Dpop(DpopError::Invalid(
                    "more than one DPoP header",
                )));
            }
        };
        let url = format!("{}{}", self.public_url, request.path);
        let expected = Expected {
            method: request.method.as_str(),
            url: &url,
            access_token: Some(token),
        };
        let verified = dpop::verify(
            proof,
            &expected,
            &Nonces::new(&self.sealer),
            Utc::now().timestamp(),
        )
        .map_err(Refusal::Dpop)?;
        if !crate::crypto::constant_time_eq(verified.jkt.as_bytes(), jkt.as_bytes()) {
            return Err(Refusal::Dpop(DpopError::Invalid(
                "the proof's key is not the one the token is bound to",
            )));
        }
        dpop::spend(self.store.as_ref(), &verified)
            .await
            .map_err(|error| Refusal::Error(error.into()))?
            .map_err(Refusal::Dpop)
    }
}

impl<S> Service<Request> for Authn<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone that was driven to readiness serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let credentials = Credentials {
            headers: request.headers().clone(),
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
        };
        async move {
            let claims = match verifier.authenticate(&credentials).await {
                Ok(claims) => claims,
                Err(refusal) => return Ok(refusal.into_response(&verifier.sealer)),
            };
            let bound = claims.jkt().is_some();
            request.extensions_mut().insert(Principal(Arc::new(claims)));
            let mut response = inner.call(request).await?;
            if bound {
                // Keeps the client's nonce fresh without a use_dpop_nonce round trip.
                insert_nonce(&verifier.sealer, response.headers_mut());
            }
            Ok(response)
        }
        .boxed()
    }
}
