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

use crate::app::App;
use crate::broker::payee::{self, Verified};
use crate::error::Error;
use crate::http::authn::{Caller, Principal};
use crate::http::request_id;
use crate::http::routes::input::JsonBody;
use crate::oauth::Role;
use crate::payments::submit::Refusal;
use crate::payments::verification::{Throttle, VerificationRequest};

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
    if principal.role != Role::Platform || !matches!(principal.caller(), Caller::Platform { .. }) {
        return Err(Error::Forbidden(
            "a payee verification needs a platform's management token (client_credentials, \
             consents:manage)"
                .into(),
        ));
    }
    let valid = request
        .validate()
        .map_err(|invalid| Error::Payment(Refusal::Invalid(invalid)))?;
    let now = Utc::now();
    match payee::verify(
        &app.broker(),
        principal.client_id(),
        &valid,
        request_id(&headers),
        now,
    )
    .await?
    {
        Verified::Answered(outcome) => Ok(Json(outcome.view(&valid.iban))),
        Verified::Throttled => Err(Error::PayeeVerificationThrottled {
            retry_after_secs: Throttle::retry_after_secs(now),
        }),
    }
}
