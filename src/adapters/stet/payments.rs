//! STET 1.4 payment initiation: the payment request resource is the consent.
//! `POST /v1/payment-requests` creates it (a single SEPA credit transfer, `INST` for an
//! instant order, `endToEndId` and `paymentInformationId` set to bankgate's payment id); the
//! user approves it at the bank under the OAuth scope `pisp` (the resource id travels as the
//! authorization request's `paymentRequestResourceId`, as the bank's `consentApproval` link
//! names it); then `POST /v1/payment-requests/{id}/confirmation` confirms it, once, and
//! `GET /v1/payment-requests/{id}` reads it. No POST is retried blindly: the creation's
//! `X-Request-ID` is the payment's own (`PaymentOrder::creation_request_id`), so that the
//! creation repeated after a lost answer is the same request, which the bank answers with the
//! payment it made.
//!
//! The resource id is read from the `consentApproval` link's `paymentRequestResourceId`, not
//! from the `Location` header (the outbound stack returns bodies only).

pub mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderValue};

use super::{Stet, X_REQUEST_ID};
use crate::adapters::common::{endpoint, request_id, send};
use crate::adapters::{
    AdapterError, Bank, BankConsent, BankPayment, BankSession, PaymentInitiation, PaymentOrder,
};

/// The OAuth2 scope of payment initiation in STET.
pub const SCOPE: &str = "pisp";

/// The authorization request parameter naming the payment request to approve.
pub const RESOURCE_PARAM: &str = "paymentRequestResourceId";

async fn read(session: BankSession<'_>, resource_id: &str) -> Result<BankPayment, AdapterError> {
    let bank = session.bank;
    let url = endpoint(bank, &["v1", "payment-requests", resource_id])?;
    let request = super::get(session, url);
    let response: wire::PaymentRequestResponse = send(
        bank,
        request,
        "/v1/payment-requests/{paymentRequestResourceId}",
        wire::error_in_body,
    )
    .await?;
    response.into_payment()
}

fn resource_id<'a>(session: &BankSession<'a>) -> Result<&'a str, AdapterError> {
    session.bank_consent_id.ok_or_else(|| {
        AdapterError::Refused("a STET payment needs the bank's payment request id".into())
    })
}

#[async_trait]
impl PaymentInitiation for Stet {
    async fn create_payment_consent(
        &self,
        bank: &Bank,
        order: &PaymentOrder,
    ) -> Result<BankConsent, AdapterError> {
        let url = endpoint(bank, &["v1", "payment-requests"])?;
        let request = bank
            .http
            .post(url)
            .header(X_REQUEST_ID, order.creation_request_id())
            .header(ACCEPT, HeaderValue::from_static("application/hal+json"))
            .json(&wire::initiation(order, Utc::now()));
        let created: wire::Created =
            send(bank, request, "/v1/payment-requests", wire::error_in_body).await?;
        let resource_id = created.resource_id().ok_or_else(|| {
            AdapterError::Decode("payment request created without a resource id".into())
        })?;
        Ok(BankConsent {
            id: Some(resource_id.clone()),
            oauth_scopes: vec![SCOPE.to_owned()],
            authorization_params: vec![(RESOURCE_PARAM.to_owned(), resource_id)],
        })
    }

    async fn submit(
        &self,
        session: BankSession<'_>,
        _order: &PaymentOrder,
    ) -> Result<BankPayment, AdapterError> {
        let bank = session.bank;
        let id = resource_id(&session)?;
        let url = endpoint(bank, &["v1", "payment-requests", id, "confirmation"])?;
        let request = session
            .request(Method::POST, url)
            .header(X_REQUEST_ID, request_id())
            .header(ACCEPT, HeaderValue::from_static("application/hal+json"))
            .json(&serde_json::json!({}));
        let route = "/v1/payment-requests/{paymentRequestResourceId}/confirmation";
        match bank.fetch(request, route, wire::error_in_body).await {
            Ok(_) => {}
            // Confirmed already (or no confirmation needed): the status says where it is.
            Err(error) if matches!(error.root(), AdapterError::Status { status: 409 }) => {}
            Err(error) => return Err(error),
        }
        read(session, id).await
    }

    async fn status(
        &self,
        session: BankSession<'_>,
        bank_payment_id: &str,
    ) -> Result<BankPayment, AdapterError> {
        read(session, bank_payment_id).await
    }

    async fn payer_account(
        &self,
        session: BankSession<'_>,
        _order: &PaymentOrder,
    ) -> Result<Option<String>, AdapterError> {
        Ok(read(session, resource_id(&session)?).await?.debtor_iban)
    }

    async fn find(
        &self,
        session: BankSession<'_>,
        _order: &PaymentOrder,
    ) -> Result<Option<BankPayment>, AdapterError> {
        read(session, resource_id(&session)?).await.map(Some)
    }
}
