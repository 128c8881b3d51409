//! Authentication: verifies the bearer access token and attaches the [`Principal`].

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, FutureExt};
use http::header::AUTHORIZATION;
use tower::{Layer, Service};

use crate::error::Error;
use crate::oauth::tokens::{AccessClaims, TokenService};

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

/// Builds [`Authn`].
#[derive(Clone)]
pub struct AuthnLayer {
    tokens: TokenService,
}

impl AuthnLayer {
    /// Verifies tokens with `tokens` (ES256 pinned, `iss`, `aud`, `exp`, `sub`, `typ`).
    pub fn new(tokens: TokenService) -> Self {
        AuthnLayer { tokens }
    }
}

impl<S> Layer<S> for AuthnLayer {
    type Service = Authn<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authn {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// Rejects requests without a valid bearer token (401); inserts [`Principal`] otherwise.
#[derive(Clone)]
pub struct Authn<S> {
    inner: S,
    tokens: TokenService,
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
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let claims = match token {
            None => Err(Error::Unauthenticated(
                "a bearer access token is required".into(),
            )),
            Some(token) => self.tokens.verify(token.trim()).map_err(|error| {
                tracing::debug!(%error, "access token rejected");
                Error::Unauthenticated("the access token is invalid or expired".into())
            }),
        };
        match claims {
            Err(error) => std::future::ready(Ok(error.into_response())).boxed(),
            Ok(claims) => {
                request.extensions_mut().insert(Principal(Arc::new(claims)));
                // The clone that was driven to readiness serves this call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                async move { inner.call(request).await }.boxed()
            }
        }
    }
}
