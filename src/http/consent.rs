//! Consent check: loads the consent the token is bound to and checks owner, status, expiry and
//! scope for the data requested. Inserts `Arc<Consent>` and [`DataScope`] for the layers below.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::future::{BoxFuture, FutureExt};
use tower::{Layer, Service};

use super::audit::{DataScope, deny};
use super::authn::Principal;
use crate::consent::Consent;
use crate::error::Error;
use crate::store::Store;

/// Builds [`ConsentCheck`].
#[derive(Clone)]
pub struct ConsentLayer {
    store: Arc<dyn Store>,
}

impl ConsentLayer {
    /// Loads consents from `store` (every request: a revocation takes effect at once).
    pub fn new(store: Arc<dyn Store>) -> Self {
        ConsentLayer { store }
    }
}

impl<S> Layer<S> for ConsentLayer {
    type Service = ConsentCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsentCheck {
            inner,
            store: self.store.clone(),
        }
    }
}

/// See [`ConsentLayer`].
#[derive(Clone)]
pub struct ConsentCheck<S> {
    inner: S,
    store: Arc<dyn Store>,
}

impl<S> Service<Request> for ConsentCheck<S>
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let store = self.store.clone();
        async move {
            let Some(path) = super::routes::data::parse_path(request.uri().path()) else {
                return inner.call(request).await;
            };
            let scope = path.scope;
            let Some(principal) = request.extensions().get::<Principal>().cloned() else {
                return Ok(Error::Unauthenticated("no principal".into()).into_response());
            };
            let consent = match store.consent(principal.subject()).await {
                Ok(consent) => consent,
                Err(error) => return Ok(Error::Store(error).into_response()),
            };
            // A consent of another client is reported exactly like a missing one.
            let Some(consent) =
                consent.filter(|consent| consent.client_id == principal.client_id())
            else {
                return Ok(deny(
                    scope,
                    None,
                    "the token is not bound to a consent of this client",
                ));
            };
            let consent = Arc::new(consent);
            if let Err(refusal) = consent.check_access(scope, Utc::now()) {
                return Ok(deny(scope, Some(consent), &refusal.to_string()));
            }
            // Only a consent-bound token carries data scopes (a management or compliance
            // token never does, whatever its subject).
            if !principal.has_scope(scope.as_str()) {
                return Ok(deny(
                    scope,
                    Some(consent),
                    "the token does not carry this data scope",
                ));
            }
            request.extensions_mut().insert(consent.clone());
            request.extensions_mut().insert(DataScope(scope));
            request.extensions_mut().insert(path);
            let mut response = inner.call(request).await?;
            response.extensions_mut().insert(consent);
            response.extensions_mut().insert(DataScope(scope));
            Ok(response)
        }
        .boxed()
    }
}

/// The consent of a request, as inserted by [`ConsentCheck`].
pub type ConsentExt = Arc<Consent>;
