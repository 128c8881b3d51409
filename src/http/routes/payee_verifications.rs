//! Verification of payee for platforms: `POST /v1/payee-verifications` with `{"iban",
//! "name"}` (a platform's management token) answers `match`, `close_match` (with the name on
//! the account), `no_match` or `not_possible`, from the bank that holds the account
//! (`adapters::verification`), the account shown masked. Counted per platform and minute
//! against `payee_verifications_per_minute` before any bank is asked; a throttled request is
//! audited and answered 429. Every answer is audited (`payee_verified`: the account masked,
//! the result) before it leaves.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use chrono::Utc;

use crate::adapters::verification;
use crate::app::App;
use crate::audit::{Action, Decision, Event};
use crate::error::Error;
use crate::http::authn::Principal;
use crate::http::request_id;
use crate::http::routes::input::JsonBody;
use crate::oauth::{CONSENTS_MANAGE, Role};
use crate::payments::submit::Refusal;
use crate::payments::verification::{Outcome, Throttle, VerificationRequest};

/// The audit category of a verification.
const CATEGORY: &str = "payee_verification";

/// The verification route.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/payee-verifications", post(verify))
        .with_state(app)
}

/// `POST /v1/payee-verifications`.
async fn verify(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<VerificationRequest>,
) -> Result<Json<serde_json::Value>, Error> {
    if principal.role != Role::Platform
        || !principal.has_scope(CONSENTS_MANAGE)
        || principal.subject() != principal.client_id()
    {
        return Err(Error::Forbidden(
            "a payee verification needs a platform's management token (client_credentials, \
             consents:manage)"
                .into(),
        ));
    }
    let valid = request
        .validate()
        .map_err(|invalid| Error::Payment(Refusal::Invalid(invalid)))?;
    let client_id = principal.client_id();
    let now = Utc::now();
    let mut event = Event::new(Action::PayeeVerified, client_id, Decision::Allow);
    event.platform = Some(client_id.to_owned());
    event.categories = vec![CATEGORY.to_owned()];
    event.request_id = request_id(&headers);
    let counted = app
        .store
        .count_verification(
            client_id,
            Throttle::window(now),
            app.config.payee_verifications_per_minute,
        )
        .await?;
    if !counted {
        event.decision = Decision::Deny;
        event.reason = Some("payee-verification-throttled".into());
        event.fields = valid.facts(None);
        app.auditor
            .record(event)
            .await
            .map_err(Error::AuditUnavailable)?;
        return Err(Error::PayeeVerificationThrottled {
            retry_after_secs: Throttle::retry_after_secs(now),
        });
    }
    let outcome = match verification::bank_for(&app.banks, &valid.iban) {
        None => {
            event.reason = Some("no bank answers for this account".into());
            Outcome::NotPossible
        }
        Some(adapter) => {
            event.bank = Some(adapter.bank.id().to_owned());
            match verification::ask(&adapter, &valid).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::warn!(
                        bank = adapter.bank.id(),
                        kind = error.root().kind(),
                        "verification of payee failed at the bank"
                    );
                    event.reason = Some(format!("bank failed: {}", error.root().kind()));
                    Outcome::NotPossible
                }
            }
        }
    };
    event.fields = valid.facts(Some(&outcome));
    event.n_records = 1;
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(Json(outcome.view(&valid.iban)))
}
