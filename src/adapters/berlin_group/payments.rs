//! Berlin Group payment initiation (NextGenPSD2 1.3.x, OAuth2 SCA approach): the payment
//! resource is the consent. `POST /v1/payments/{product}` (`sepa-credit-transfers`, or
//! `instant-sepa-credit-transfers` for an instant order) creates it with its
//! `endToEndIdentification` set to bankgate's payment id, and the user authorises it at the
//! bank under the OAuth scope `PIS:<paymentId>`; authorising it is what submits it, so
//! [`PaymentInitiation::submit`] and [`PaymentInitiation::find`] read its status
//! (`GET /v1/payments/{product}/{paymentId}/status`). The POST's `X-Request-ID` is the
//! payment's own (`PaymentOrder::creation_request_id`): it is sent again only after its answer
//! was lost, as the same request, which the bank answers with the payment it made.

pub mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, HeaderValue};

use super::{BerlinGroup, X_REQUEST_ID, decode, endpoint, error_codes, request_id};
use crate::adapters::{
    AdapterError, Bank, BankConsent, BankPayment, BankSession, PaymentInitiation, PaymentOrder,
};

/// The OAuth scope that authorises one payment.
pub fn scope(payment_id: &str) -> String {
    format!("PIS:{payment_id}")
}

/// The payment product of an order.
pub fn product(order: &PaymentOrder) -> &'static str {
    if order.instant {
        wire::INSTANT_SCT
    } else {
        wire::SCT
    }
}

async fn read_status(
    session: BankSession<'_>,
    product: &str,
    bank_payment_id: &str,
) -> Result<BankPayment, AdapterError> {
    let bank = session.bank;
    let url = endpoint(bank, &["payments", product, bank_payment_id, "status"])?;
    let request = bank
        .http
        .get(url.clone())
        .header(X_REQUEST_ID, request_id())
        .header(ACCEPT, HeaderValue::from_static("application/json"));
    let request = crate::adapters::bank_oauth::dpop::authorize(
        bank,
        request,
        "GET",
        &url,
        session.access_token,
    )?;
    let route = "/v1/payments/{payment-product}/{paymentId}/status";
    let body = bank.fetch(request, route, error_codes).await?;
    let status: wire::StatusResponse = decode(&body)?;
    status.into_payment(bank_payment_id)
}

#[async_trait]
impl PaymentInitiation for BerlinGroup {
    async fn create_payment_consent(
        &self,
        bank: &Bank,
        order: &PaymentOrder,
    ) -> Result<BankConsent, AdapterError> {
        let url = endpoint(bank, &["payments", product(order)])?;
        let request = bank
            .http
            .post(url)
            .header(X_REQUEST_ID, order.creation_request_id())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .json(&wire::initiation(order));
        let route = "/v1/payments/{payment-product}";
        let body = bank.fetch(request, route, error_codes).await?;
        let created: wire::PaymentCreated = decode(&body)?;
        let created = created.validate()?;
        Ok(BankConsent {
            oauth_scopes: vec![scope(&created.payment_id)],
            id: Some(created.payment_id),
            authorization_params: Vec::new(),
        })
    }

    async fn submit(
        &self,
        session: BankSession<'_>,
        order: &PaymentOrder,
    ) -> Result<BankPayment, AdapterError> {
        let id = session.bank_consent_id.ok_or_else(|| {
            AdapterError::Refused("a Berlin Group payment needs the bank's payment id".into())
        })?;
        read_status(session, product(order), id).await
    }

    async fn status(
        &self,
        session: BankSession<'_>,
        bank_payment_id: &str,
    ) -> Result<BankPayment, AdapterError> {
        // The product is part of the path; the status of either product is found under its own.
        match read_status(session, wire::SCT, bank_payment_id).await {
            Err(error) if matches!(error.root(), AdapterError::Status { status: 404 }) => {
                read_status(session, wire::INSTANT_SCT, bank_payment_id).await
            }
            result => result,
        }
    }

    async fn find(
        &self,
        session: BankSession<'_>,
        order: &PaymentOrder,
    ) -> Result<Option<BankPayment>, AdapterError> {
        // The payment resource exists from consent time: its status is the answer.
        self.submit(session, order).await.map(Some)
    }
}
