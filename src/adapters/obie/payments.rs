//! UK OBIE payment initiation (Read/Write API 3.1 and 4.0, domestic payments), with the wire
//! types and their canonical reading in [`wire`], tested against every PIS example in the
//! shared fixtures. The flow:
//!
//! 1. `POST /domestic-payment-consents` with a client credentials token (scope `payments`):
//!    the consent resource, which the user then authorises at the bank (the consent as
//!    `openbanking_intent_id` in the OIDC `claims`, scopes `openid payments`);
//! 2. `POST /domestic-payments` with the consent's token: the submission, once;
//! 3. `GET /domestic-payments/{DomesticPaymentId}` with a client credentials token.
//!
//! Both POSTs carry `x-idempotency-key` (bankgate's payment id) and a detached JWS
//! `x-jws-signature` ([`jws`]) over the exact body bytes sent, signed with bankgate's key at
//! the bank — its `private_key_jwt` key, which the bank has registered; a bank whose manifest
//! gives bankgate no key cannot be paid through (a clear refusal, before any call).
//!
//! The payment API sits beside the account API: the manifest's `api_base_url` ends in `/aisp`
//! (`…/open-banking/v4.0/aisp`) and payments go to the same path ending in `/pisp`.
//!
//! Reconciliation ([`PaymentInitiation::find`]) asks the consent's status first: a consent not
//! `Consumed` has no payment, so there is nothing to find; a `Consumed` one has exactly one,
//! which the same submission under the same idempotency key answers (the bank returns the
//! payment it made, it makes no other) — never a new payment.

pub mod jws;
pub mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use super::{INTERACTION_ID, Obie};
use crate::adapters::bank_oauth::dpop;
use crate::adapters::common::{request_id, send};
use crate::adapters::{
    AdapterError, Bank, BankConsent, BankPayment, BankSession, PaymentInitiation, PaymentOrder,
};

/// The OAuth scope of payment initiation.
pub const SCOPE: &str = "payments";
const IDEMPOTENCY_KEY: &str = "x-idempotency-key";

/// A URL of the bank's payment API: the account API's base with `/aisp` replaced by `/pisp`
/// (or `/pisp` added), then `segments`.
pub fn endpoint(bank: &Bank, segments: &[&str]) -> Result<url::Url, AdapterError> {
    let bad_base = || AdapterError::Refused("bank manifest has a bad api_base_url".into());
    let mut url = url::Url::parse(&bank.manifest.api_base_url).map_err(|_| bad_base())?;
    let mut path: Vec<String> = url
        .path_segments()
        .map(|parts| {
            parts
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if path.last().is_some_and(|last| last == "aisp") {
        path.pop();
    }
    url.path_segments_mut()
        .map_err(|_| bad_base())?
        .clear()
        .extend(&path)
        .push("pisp")
        .extend(segments);
    Ok(url)
}

/// The `Risk` bankgate declares: a payment between people.
fn risk() -> Value {
    json!({ "PaymentContextCode": "PartyToParty" })
}

/// The body of the consent request for `order`, as bytes (the signature covers these).
pub fn consent_body(order: &PaymentOrder) -> Vec<u8> {
    json!({ "Data": { "Initiation": wire::initiation(order) }, "Risk": risk() })
        .to_string()
        .into_bytes()
}

/// The body of the payment under consent `consent_id` for `order`, as bytes.
pub fn payment_body(consent_id: &str, order: &PaymentOrder) -> Vec<u8> {
    json!({
        "Data": { "ConsentId": consent_id, "Initiation": wire::initiation(order) },
        "Risk": risk(),
    })
    .to_string()
    .into_bytes()
}

/// bankgate's signing key at the bank; without one nothing is sent.
fn signing_key(bank: &Bank) -> Result<&crate::jose::ClientKey, AdapterError> {
    bank.keys.assertion.as_deref().ok_or_else(|| {
        AdapterError::Refused(
            "an OBIE payment needs bankgate's signing key at the bank (private_key_jwt)".into(),
        )
    })
}

/// A signed POST of `body` with `token`, under the idempotency key `key`.
fn signed_post(
    bank: &Bank,
    url: url::Url,
    token: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<reqwest::RequestBuilder, AdapterError> {
    let signing_key = signing_key(bank)?;
    let signature = jws::detached(
        signing_key,
        &bank.client_id,
        &body,
        chrono::Utc::now().timestamp(),
    )?;
    let request = bank
        .http
        .post(url.clone())
        .header(INTERACTION_ID, request_id())
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(IDEMPOTENCY_KEY, key)
        .header(jws::HEADER, signature)
        .body(body);
    dpop::authorize(bank, request, "POST", &url, token)
}

fn consent_id<'a>(session: &BankSession<'a>) -> Result<&'a str, AdapterError> {
    session.bank_consent_id.ok_or_else(|| {
        AdapterError::Refused("an OBIE payment needs the bank's payment consent id".into())
    })
}

async fn post_payment(
    session: BankSession<'_>,
    order: &PaymentOrder,
) -> Result<BankPayment, AdapterError> {
    let bank = session.bank;
    let consent = consent_id(&session)?;
    let request = signed_post(
        bank,
        endpoint(bank, &["domestic-payments"])?,
        session.access_token,
        &order.payment_id,
        payment_body(consent, order),
    )?;
    let answer: wire::Envelope<wire::PaymentData> = send(
        bank,
        request,
        "/domestic-payments",
        super::wire::error_in_body,
    )
    .await?;
    answer.data.into_payment()
}

#[async_trait]
impl PaymentInitiation for Obie {
    /// The payment consent authorises nothing by itself: the payment is made when bankgate
    /// submits it.
    fn authorisation_executes(&self) -> bool {
        false
    }

    async fn create_payment_consent(
        &self,
        bank: &Bank,
        order: &PaymentOrder,
    ) -> Result<BankConsent, AdapterError> {
        signing_key(bank)?;
        let token = self.client_token(bank, SCOPE).await?;
        let request = signed_post(
            bank,
            endpoint(bank, &["domestic-payment-consents"])?,
            &token,
            &order.payment_id,
            consent_body(order),
        )?;
        let created: wire::Envelope<wire::ConsentData> = send(
            bank,
            request,
            "/domestic-payment-consents",
            super::wire::error_in_body,
        )
        .await?;
        let (id, status) = created.data.state()?;
        if !matches!(
            status,
            wire::ConsentStatus::AwaitingAuthorisation | wire::ConsentStatus::Authorised
        ) {
            return Err(AdapterError::Refused(format!(
                "the bank answered the payment consent with status {status:?}"
            )));
        }
        Ok(BankConsent {
            authorization_params: vec![("claims".into(), super::wire::intent_claims(&id))],
            oauth_scopes: vec!["openid".into(), SCOPE.into()],
            id: Some(id),
        })
    }

    /// `POST /domestic-payments`, once.
    async fn submit(
        &self,
        session: BankSession<'_>,
        order: &PaymentOrder,
    ) -> Result<BankPayment, AdapterError> {
        post_payment(session, order).await
    }

    async fn status(
        &self,
        session: BankSession<'_>,
        bank_payment_id: &str,
    ) -> Result<BankPayment, AdapterError> {
        let bank = session.bank;
        let token = self.client_token(bank, SCOPE).await?;
        let url = endpoint(bank, &["domestic-payments", bank_payment_id])?;
        let answer: wire::Envelope<wire::PaymentData> = send(
            bank,
            super::get(bank, url, &token)?,
            "/domestic-payments/{DomesticPaymentId}",
            super::wire::error_in_body,
        )
        .await?;
        answer.data.into_payment()
    }

    /// The consent's status says whether a payment was made; if it was, the submission under
    /// the same idempotency key answers it (the bank makes no second one).
    async fn find(
        &self,
        session: BankSession<'_>,
        order: &PaymentOrder,
    ) -> Result<Option<BankPayment>, AdapterError> {
        let bank = session.bank;
        let consent = consent_id(&session)?;
        let token = self.client_token(bank, SCOPE).await?;
        let url = endpoint(bank, &["domestic-payment-consents", consent])?;
        let answer: wire::Envelope<wire::ConsentData> = send(
            bank,
            super::get(bank, url, &token)?,
            "/domestic-payment-consents/{ConsentId}",
            super::wire::error_in_body,
        )
        .await?;
        let (_, status) = answer.data.state()?;
        if status != wire::ConsentStatus::Consumed {
            return Ok(None);
        }
        post_payment(session, order).await.map(Some)
    }
}
