//! Policy check: evaluates the consent's purpose policy, in the version in force now, for the
//! data requested and inserts the resulting [`Obligations`] (field allow-list, history window,
//! unattended budget) for the layers and the handler below.
//!
//! Whether the user is present comes from two request headers, as in PSD2 (the platform
//! forwards its user's IP address only while the user is there): [`X_USER_PRESENT`] `true`
//! and a valid [`PSU_IP_ADDRESS`]. Only then is a request not counted against the budget.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::future::{BoxFuture, FutureExt};
use http::{HeaderMap, HeaderName};
use tower::{Layer, Service};

use super::audit::{DataScope, PolicyApplied, deny};
use crate::consent::Consent;
use crate::error::Error;
use crate::policy::{DataRequest, Live, Platform, Presence};
use crate::store::Store;

/// `X-User-Present: true`: the platform's user takes part in this request.
pub const X_USER_PRESENT: HeaderName = HeaderName::from_static("x-user-present");

/// `PSU-IP-Address`: the user's IP address (Berlin Group, STET and OBIE use this header too).
pub const PSU_IP_ADDRESS: HeaderName = HeaderName::from_static("psu-ip-address");

/// Whether the request is made with the user present: `X-User-Present: true` and a
/// `PSU-IP-Address` that is an IP address. Anything else is unattended.
pub fn presence(headers: &HeaderMap) -> Presence {
    let flagged = headers
        .get(X_USER_PRESENT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
    let address = headers
        .get(PSU_IP_ADDRESS)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().parse::<std::net::IpAddr>().is_ok());
    if flagged && address {
        Presence::UserPresent
    } else {
        Presence::Unattended
    }
}

/// Builds [`PolicyCheck`].
#[derive(Clone)]
pub struct PolicyLayer {
    policies: Live,
    store: Arc<dyn Store>,
}

impl PolicyLayer {
    /// Evaluates against the policy set in force at each request; reads the platform's
    /// registration (approved purposes, region) from `store`.
    pub fn new(policies: Live, store: Arc<dyn Store>) -> Self {
        PolicyLayer { policies, store }
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = PolicyCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyCheck {
            inner,
            policies: self.policies.clone(),
            store: self.store.clone(),
        }
    }
}

/// See [`PolicyLayer`].
#[derive(Clone)]
pub struct PolicyCheck<S> {
    inner: S,
    policies: Live,
    store: Arc<dyn Store>,
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
        // One snapshot of the set for the whole decision.
        let policies = self.policies.current();
        let store = self.store.clone();
        async move {
            let client = match store.client(&consent.client_id).await {
                Ok(client) => client,
                Err(error) => return Ok(Error::Store(error).into_response()),
            };
            let Some(client) = client else {
                return Ok(deny(
                    scope,
                    Some(consent),
                    "the platform is no longer registered",
                ));
            };
            let decision = policies.decide(&DataRequest {
                purpose: &consent.purpose,
                scope,
                consent_created_at: consent.created_at,
                consent_history_days: consent.history_days,
                platform: Platform {
                    approved_purposes: &client.allowed_purposes,
                    region: &client.region,
                },
                presence: presence(request.headers()),
                now: Utc::now(),
            });
            let applied = policies.get(&consent.purpose).map(|policy| PolicyApplied {
                purpose: policy.id.clone(),
                hash: policy.hash.clone(),
            });
            let mut response = match decision {
                Ok(allowed) => {
                    request.extensions_mut().insert(allowed.obligations);
                    inner.call(request).await?
                }
                Err(refusal) => deny(scope, Some(consent), &refusal.to_string()),
            };
            if let Some(applied) = applied {
                response.extensions_mut().insert(applied);
            }
            Ok(response)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(headers: &[(&HeaderName, &str)], expected: Presence) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert((*name).clone(), value.parse().unwrap());
        }
        assert_eq!(presence(&map), expected, "{headers:?}");
    }

    #[test]
    fn presence_needs_both_headers() {
        use Presence::*;
        check(&[], Unattended);
        check(&[(&X_USER_PRESENT, "true")], Unattended);
        check(&[(&PSU_IP_ADDRESS, "203.0.113.7")], Unattended);
        check(
            &[(&X_USER_PRESENT, "true"), (&PSU_IP_ADDRESS, "203.0.113.7")],
            UserPresent,
        );
        check(
            &[(&X_USER_PRESENT, "TRUE"), (&PSU_IP_ADDRESS, "2001:db8::1")],
            UserPresent,
        );
        check(
            &[(&X_USER_PRESENT, "false"), (&PSU_IP_ADDRESS, "203.0.113.7")],
            Unattended,
        );
        check(
            &[(&X_USER_PRESENT, "true"), (&PSU_IP_ADDRESS, "somewhere")],
            Unattended,
        );
    }
}
