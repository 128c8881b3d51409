//! The access layer of the data routes: authenticates the token (pure checks, `http::authn`),
//! reads the request's state in one round trip, calls [`access::decide`], and either audits
//! the denial at once or inserts the [`Grant`] for the handler, which releases through
//! [`release`]. Facts flow down only: nothing comes back up on the response.
//!
//! Whether the user is present comes from two request headers, as in PSD2 (the platform
//! forwards its user's IP address only while the user is there): [`X_USER_PRESENT`] `true`
//! and a valid [`PSU_IP_ADDRESS`]. Only then is a request not counted against the budget.
//!
//! Fail closed: a record that cannot be committed turns the response into a 503 and nothing
//! is released.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::{HeaderMap, HeaderName};
use tracing::Instrument;

use super::authn::{Challenge, Presented, Scheme, Verifier, insert_nonce};
use super::observe::RequestLog;
use crate::access::{self, DataPath, Denial, Facts, Grant};
use crate::audit::{Auditor, Event};
use crate::crypto::Sealer;
use crate::error::Error;
use crate::oauth::dpop::DpopError;
use crate::policy::{Live, Presence};
use crate::store::access::{AccessReads, AccessState};

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

/// What the access layer needs: token checks, the request-state read, the policies in force,
/// the auditor.
#[derive(Clone)]
pub struct AccessCheck {
    verifier: Verifier,
    store: Arc<dyn AccessReads>,
    policies: Live,
    auditor: Auditor,
}

impl AccessCheck {
    /// Checks tokens with `verifier`, reads each request's state from `store`, decides under
    /// the policies in force and records through `auditor`.
    pub fn new(
        verifier: Verifier,
        store: Arc<dyn AccessReads>,
        policies: Live,
        auditor: Auditor,
    ) -> Self {
        AccessCheck {
            verifier,
            store,
            policies,
            auditor,
        }
    }

    /// The layer for a running gateway.
    pub fn for_app(app: &crate::app::App) -> Self {
        AccessCheck::new(
            Verifier::for_app(app),
            app.store.clone(),
            app.policies.clone(),
            app.auditor.clone(),
        )
    }
}

/// The access check of a data request: authenticates, decides, and either answers the
/// audited denial or hands the [`Grant`] to the handler. A middleware:
/// `axum::middleware::from_fn_with_state(AccessCheck::for_app(app), check)`.
pub async fn check(State(layer): State<AccessCheck>, mut request: Request, next: Next) -> Response {
    let sealer = &layer.verifier.sealer;
    let presented = match layer.verifier.verify(&request) {
        Ok(presented) => presented,
        Err(challenge) => return challenge.into_response(sealer),
    };
    RequestLog::client(&request, &presented.claims.client_id);
    // The stack routes only data paths here.
    let Some(path) = DataPath::parse(request.uri().path()) else {
        return Error::NotFound("no such data path".into()).into_response();
    };
    let presence = presence(request.headers());
    let request_id = super::request_id(request.headers());
    let span = tracing::info_span!(
        "access_decision",
        client_id = %presented.claims.client_id,
        decision = tracing::field::Empty,
    );
    let decided = layer
        .decide(&presented, &path, presence, request_id.as_deref())
        .instrument(span.clone())
        .await;
    span.record("decision", if decided.is_ok() { "allow" } else { "deny" });
    let mut response = match decided {
        Ok(grant) => {
            RequestLog::bank(&request, &grant.consent.bank_id);
            request.extensions_mut().insert(grant);
            next.run(request).await
        }
        Err(response) => response,
    };
    if presented.proof.is_some() {
        insert_nonce(sealer, response.headers_mut());
    }
    response
}

impl AccessCheck {
    /// Reads the state and decides; a denial comes back as its audited response.
    async fn decide(
        &self,
        presented: &Presented,
        path: &DataPath,
        presence: Presence,
        request_id: Option<&str>,
    ) -> Result<Grant, Response> {
        // One snapshot of the policy set for the whole decision.
        let policies = self.policies.current();
        let request = access::Request {
            claims: &presented.claims,
            path,
            presence,
            now: Utc::now(),
            request_id,
        };
        let query = request.query(presented.proof_spend(), &policies);
        let read = tracing::info_span!("store_read", read = "access_state");
        let state = match self.store.access_state(&query).instrument(read).await {
            Ok(state) => state,
            Err(error) => {
                // Nothing is known but the token: the record says what failed.
                let facts = Facts::of(&request, &AccessState::empty(), &policies);
                let error = Error::Store(error);
                let _ = self.auditor.record(failed(&facts, &error)).await;
                return Err(error.into_response());
            }
        };
        let denial = match access::decide(&request, &state, &policies) {
            Ok(grant) => return Ok(grant),
            Err(denial) => denial,
        };
        if let Some(day) = access::spent_budget(&request, &state)
            && let Err(error) = self.store.refund_access(&presented.claims.sub, day).await
        {
            tracing::warn!(%error, "a refused request's budget unit was not given back");
        }
        let facts = Facts::of(&request, &state, &policies);
        let sealer = &self.verifier.sealer;
        Err(audited(&self.auditor, facts.denied(&denial), || {
            deny(presented.scheme, denial, sealer)
        })
        .await)
    }
}

/// The response to a denial; a refused token or proof also carries its challenge.
fn deny(scheme: Scheme, denial: Denial, sealer: &Sealer) -> Response {
    let challenge = match &denial {
        Denial::TokenUnknown => Some(Challenge::InvalidToken(
            scheme,
            "the access token was not issued by this gateway",
        )),
        Denial::TokenRevoked => Some(Challenge::InvalidToken(
            scheme,
            "the access token was revoked",
        )),
        Denial::ProofReplayed => Some(Challenge::Dpop(DpopError::Invalid(
            "the proof was already used",
        ))),
        _ => None,
    };
    let mut response = Error::Denied(denial).into_response();
    if let Some(challenge) = challenge {
        challenge.insert(response.headers_mut(), sealer);
    }
    response
}

/// The record of a request that was allowed but released nothing.
fn failed(facts: &Facts, error: &Error) -> Event {
    facts.failed(format!("nothing released: {}", error.problem().0.slug))
}

/// Records `event` and, once it is committed, answers with `respond()`; 503 if the log cannot
/// take it.
async fn audited(auditor: &Auditor, event: Event, respond: impl FnOnce() -> Response) -> Response {
    match auditor.record(event).await {
        Ok(_) => respond(),
        Err(error) => {
            tracing::error!(%error, "audit append failed; response withheld");
            Error::AuditUnavailable(error).into_response()
        }
    }
}

/// What a handler fetched for a grant: the records as JSON, ready to leave, and what the
/// audit record says of them.
pub struct Released {
    pub body: serde_json::Value,
    pub fields: Vec<String>,
    pub n_records: u32,
}

/// Audits the handler's outcome for `grant` and answers with it once the record is committed:
/// the records (allow), a denial found on the way (deny; the budget unit goes back), or the
/// failure (error: nothing released).
pub async fn release(
    store: &dyn AccessReads,
    auditor: &Auditor,
    grant: &Grant,
    outcome: Result<Released, Error>,
) -> Response {
    let facts = &grant.facts;
    match outcome {
        Ok(released) => {
            let event = facts.released(released.fields, released.n_records);
            audited(auditor, event, || axum::Json(released.body).into_response()).await
        }
        Err(Error::Denied(denial)) => {
            if let Some(day) = grant.budget_day
                && let Err(error) = store.refund_access(&grant.consent.id, day).await
            {
                tracing::warn!(%error, "a refused request's budget unit was not given back");
            }
            audited(auditor, facts.denied(&denial), || {
                Error::Denied(denial).into_response()
            })
            .await
        }
        Err(error) => {
            let event = failed(facts, &error);
            audited(auditor, event, || error.into_response()).await
        }
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
