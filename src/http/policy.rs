//! Policy check: evaluates the consent's purpose policy for the data requested and inserts the
//! resulting [`Obligations`] (field allow-list, history window) for the handler.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures_util::future::{BoxFuture, FutureExt};
use tower::{Layer, Service};

use super::audit::{DataScope, PolicyApplied, deny};
use crate::consent::Consent;
use crate::policy::{Obligations, PolicySet};

/// Builds [`PolicyCheck`].
#[derive(Clone)]
pub struct PolicyLayer {
    policies: Arc<PolicySet>,
}

impl PolicyLayer {
    /// Evaluates against the policy set in force.
    pub fn new(policies: Arc<PolicySet>) -> Self {
        PolicyLayer { policies }
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = PolicyCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyCheck {
            inner,
            policies: self.policies.clone(),
        }
    }
}

/// See [`PolicyLayer`].
#[derive(Clone)]
pub struct PolicyCheck<S> {
    inner: S,
    policies: Arc<PolicySet>,
}

impl<S> Service<Request> for PolicyCheck<S>
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
        let consent = request.extensions().get::<Arc<Consent>>().cloned();
        let scope = request.extensions().get::<DataScope>().copied();
        let (Some(consent), Some(DataScope(scope))) = (consent, scope) else {
            // Not a data request: nothing to decide.
            return async move { inner.call(request).await }.boxed();
        };
        let Some(policy) = self.policies.get(&consent.purpose) else {
            let reason = format!("purpose {} is no longer offered", consent.purpose);
            return std::future::ready(Ok(deny(scope, Some(consent), &reason))).boxed();
        };
        let applied = PolicyApplied {
            purpose: policy.id.clone(),
            hash: policy.hash.clone(),
        };
        let obligations: Obligations = match policy.decide(scope) {
            Ok(obligations) => obligations,
            Err(reason) => {
                let mut response = deny(scope, Some(consent), &reason);
                response.extensions_mut().insert(applied);
                return std::future::ready(Ok(response)).boxed();
            }
        };
        request.extensions_mut().insert(obligations);
        async move {
            let mut response = inner.call(request).await?;
            response.extensions_mut().insert(applied);
            Ok(response)
        }
        .boxed()
    }
}
