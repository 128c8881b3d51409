//! Per-consent rate limit: the purpose's unattended-access budget. A request the policy
//! allowed and the user is not present for counts against the consent's budget for the current
//! UTC day; once it is spent the answer is 429 with `Retry-After` (seconds to the next UTC day)
//! and the denial is audited like any other.
//!
//! The count lives in the store (`Store::count_access`, one atomic statement on PostgreSQL),
//! so the budget holds across every gateway instance. The layer sits below the policy layer:
//! the budget is the policy's obligation, and a request the consent or the policy refuses
//! never spends it.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::future::{BoxFuture, FutureExt};
use tower::{Layer, Service};

use super::audit::{DataScope, Denied};
use crate::consent::Consent;
use crate::error::Error;
use crate::policy::{Obligations, seconds_until_next_utc_day};
use crate::store::Store;

/// Builds [`RateLimit`].
#[derive(Clone)]
pub struct RateLimitLayer {
    store: Arc<dyn Store>,
}

impl RateLimitLayer {
    /// Counts accesses in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        RateLimitLayer { store }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            store: self.store.clone(),
        }
    }
}

/// See [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    store: Arc<dyn Store>,
}

impl<S> Service<Request> for RateLimit<S>
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

    fn call(&mut self, request: Request) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let consent = request.extensions().get::<Arc<Consent>>().cloned();
        let scope = request.extensions().get::<DataScope>().copied();
        let limit = request
            .extensions()
            .get::<Obligations>()
            .and_then(|obligations| obligations.unattended_limit);
        let (Some(consent), Some(scope), Some(limit)) = (consent, scope, limit) else {
            // The user is present, or this is not a data request: nothing to count.
            return async move { inner.call(request).await }.boxed();
        };
        let store = self.store.clone();
        async move {
            let now = Utc::now();
            let count = match store
                .count_access(&consent.id, now.date_naive(), limit)
                .await
            {
                Ok(count) => count,
                Err(error) => return Ok(Error::Store(error).into_response()),
            };
            if count.admitted {
                return inner.call(request).await;
            }
            let reason = format!(
                "the unattended access budget of purpose {} ({limit} a day) is spent for today; \
                 requests with the user present (X-User-Present and PSU-IP-Address) still pass",
                consent.purpose
            );
            let mut response = Error::TooManyRequests {
                retry_after_secs: seconds_until_next_utc_day(now),
            }
            .into_response();
            let extensions = response.extensions_mut();
            extensions.insert(Denied(reason));
            extensions.insert(scope);
            extensions.insert(consent);
            Ok(response)
        }
        .boxed()
    }
}
