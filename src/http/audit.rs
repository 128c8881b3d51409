//! Audit: records every data-access decision, allow and deny alike, and releases the response
//! only once the record is committed. If the audit store fails, the response is replaced by a
//! 503 and no data leaves (fail closed).
//!
//! The layer sits above the consent and policy layers so that it sees their denials; what they
//! and the handler learn travels back up as response extensions ([`Denied`], [`DataScope`],
//! [`PolicyApplied`], [`Released`], `Arc<Consent>`).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, FutureExt};
use tower::{Layer, Service};

use super::authn::Principal;
use crate::audit::{Action, Auditor, Decision, Event};
use crate::consent::Consent;
use crate::error::Error;
use crate::model::Scope;
use crate::policy::{Live, PolicySet};

/// The data category a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataScope(pub Scope);

/// A denial and its reason (safe to show and audited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

/// The purpose policy that decided, and its content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyApplied {
    pub purpose: String,
    pub hash: String,
}

/// What the handler released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub fields: Vec<String>,
    pub n_records: u32,
}

/// A 403 carrying everything the audit layer needs to record the denial.
pub fn deny(scope: Scope, consent: Option<Arc<Consent>>, reason: &str) -> Response {
    let mut response = Error::Forbidden(reason.to_owned()).into_response();
    let extensions = response.extensions_mut();
    extensions.insert(Denied(reason.to_owned()));
    extensions.insert(DataScope(scope));
    if let Some(consent) = consent {
        extensions.insert(consent);
    }
    response
}

/// Builds [`Audit`].
#[derive(Clone)]
pub struct AuditLayer {
    auditor: Auditor,
    policies: Live,
}

impl AuditLayer {
    /// Records through `auditor`; `policies` names the policy hash in force when a request is
    /// denied before the policy layer runs.
    pub fn new(auditor: Auditor, policies: Live) -> Self {
        AuditLayer { auditor, policies }
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit {
            inner,
            auditor: self.auditor.clone(),
            policies: self.policies.clone(),
        }
    }
}

/// See [`AuditLayer`].
#[derive(Clone)]
pub struct Audit<S> {
    inner: S,
    auditor: Auditor,
    policies: Live,
}

impl<S> Service<Request> for Audit<S>
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
        let auditor = self.auditor.clone();
        let policies = self.policies.clone();
        let principal = request.extensions().get::<Principal>().cloned();
        let request_id = super::request_id(request.headers());
        async move {
            let response = inner.call(request).await?;
            let policies = policies.current();
            let Some(event) = decision_event(principal.as_ref(), request_id, &policies, &response)
            else {
                return Ok(response);
            };
            match auditor.record(event).await {
                Ok(_) => Ok(response),
                Err(error) => {
                    tracing::error!(%error, "audit append failed; response withheld");
                    Ok(Error::AuditUnavailable(error).into_response())
                }
            }
        }
        .boxed()
    }
}

/// The audit event describing a data response; `None` for responses that are not data
/// decisions (no [`DataScope`] below: an unknown path).
fn decision_event(
    principal: Option<&Principal>,
    request_id: Option<String>,
    policies: &PolicySet,
    response: &Response,
) -> Option<Event> {
    let extensions = response.extensions();
    let DataScope(scope) = *extensions.get::<DataScope>()?;
    let (decision, reason) = match (extensions.get::<Denied>(), extensions.get::<Released>()) {
        (Some(Denied(reason)), _) => (Decision::Deny, Some(reason.clone())),
        (None, Some(_)) if response.status().is_success() => (Decision::Allow, None),
        (None, _) => (
            Decision::Error,
            Some(format!(
                "nothing released: HTTP {}",
                response.status().as_u16()
            )),
        ),
    };
    let actor = principal.map_or("unknown", Principal::client_id);
    let mut event = Event::new(Action::DataAccess, actor, decision);
    event.platform = principal.map(|p| p.client_id().to_owned());
    event.consent = principal.map(|p| p.subject().to_owned());
    if let Some(consent) = extensions.get::<Arc<Consent>>() {
        event.bank = Some(consent.bank_id.clone());
        event.user_ref = Some(consent.user_ref.clone());
        event.purpose = Some(consent.purpose.clone());
        event.policy_hash = policies
            .get(&consent.purpose)
            .map(|policy| policy.hash.clone());
    }
    if let Some(applied) = extensions.get::<PolicyApplied>() {
        event.purpose = Some(applied.purpose.clone());
        event.policy_hash = Some(applied.hash.clone());
    }
    if let (Decision::Allow, Some(released)) = (decision, extensions.get::<Released>()) {
        event.fields = released.fields.clone();
        event.n_records = released.n_records;
    }
    event.categories = vec![scope.as_str().to_owned()];
    event.reason = reason;
    event.request_id = request_id;
    Some(event)
}

#[cfg(test)]
mod tests;
