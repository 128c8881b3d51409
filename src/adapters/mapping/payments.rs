//! Payment initiation in the `mapping` profile: `[mapping.payments]` names the bank's
//! endpoints, where bankgate's order goes in the creation body and where the answers keep the
//! payment's id, status, rejection reason and payer account; the bank's status codes map to
//! ISO 20022 codes. As with Berlin Group, the payment resource is the consent: bankgate
//! creates it (under the payment's own request id), the user authorises it at the bank's OAuth
//! server under the mapped scope, and authorising it executes it; submission and look-ups read
//! it.
//!
//! ```toml
//! [mapping.payments]
//! create = "/payments"                 # POST, before the user is sent to the bank
//! read = "/payments/{payment}"         # GET, by the bank's id
//! scope = "payments:write"             # the OAuth scope(s) the user authorises
//! authorization_param = "payment_ref"  # names the payment in the authorization request
//! id = "/result/paymentRef"            # pointers into the answers
//! status = "/result/state"
//! reason = "/result/reasonCode"
//! debtor_iban = "/result/debtorIban"
//! statuses = { NEW = "RCVD", DONE = "ACSC", FAILED = "RJCT" }  # the bank's → ISO 20022
//!
//! [mapping.payments.body]              # the creation's body: pointer → order field
//! "/endToEndId" = "payment_id"
//! "/amountMinor" = "amount_minor"      # or "amount" (a decimal string)
//! "/ccy" = "currency"
//! "/payee/iban" = "creditor_iban"
//! "/payee/name" = "creditor_name"
//! "/reference" = "remittance"
//! "/instant" = "instant"
//! ```

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderValue};
use rust_decimal::Decimal;
use serde_json::Value;

use super::rules::{CompiledPayments, OrderField, Pointer, currency_exponent};
use super::{Mapping, wire};
use crate::adapters::{
    AdapterError, Bank, BankConsent, BankPayment, BankSession, PaymentInitiation, PaymentOrder,
};
use crate::payments::BankStatus;

impl CompiledPayments {
    /// The creation's body for `order`.
    pub fn body(&self, order: &PaymentOrder) -> Result<Value, AdapterError> {
        let mut body = Value::Object(serde_json::Map::new());
        for (at, field) in &self.body {
            let value = match field {
                OrderField::PaymentId => Value::from(order.payment_id.clone()),
                OrderField::Amount => Value::from(order.amount.to_string()),
                OrderField::AmountMinor => Value::from(minor_units(order)?),
                OrderField::Currency => Value::from(order.currency.clone()),
                OrderField::CreditorIban => Value::from(order.creditor_iban.clone()),
                OrderField::CreditorName => Value::from(order.creditor_name.clone()),
                OrderField::Remittance => match &order.remittance {
                    Some(text) => Value::from(text.clone()),
                    None => continue,
                },
                OrderField::Instant => Value::from(order.instant),
            };
            place(&mut body, &at.tokens, value);
        }
        Ok(body)
    }

    /// The payment an answer describes: its id (from `id_pointer`, or the one given), status
    /// (mapped to ISO 20022), reason and payer account.
    pub fn payment(&self, body: &[u8], id: Option<&str>) -> Result<BankPayment, AdapterError> {
        let raw = wire::parse(body)?;
        let text = |pointer: &Pointer| -> Result<Option<String>, AdapterError> {
            match wire::lookup(raw, pointer).map_err(AdapterError::Decode)? {
                Some(value) => wire::scalar(value).map_err(AdapterError::Decode),
                None => Ok(None),
            }
        };
        let id = match id {
            Some(id) => id.to_owned(),
            None => text(&self.id)?
                .filter(|id| !id.trim().is_empty())
                .ok_or_else(|| AdapterError::Decode("payment created without an id".into()))?,
        };
        let code = text(&self.status)?
            .ok_or_else(|| AdapterError::Decode("payment without a status".into()))?;
        let iso = self
            .statuses
            .get(&code)
            .ok_or_else(|| AdapterError::Decode(format!("unknown payment status {code:?}")))?;
        let reason = match &self.reason {
            Some(pointer) => text(pointer)?,
            None => None,
        };
        let mut status = BankStatus::from_iso20022(iso, reason.as_deref())
            .ok_or_else(|| AdapterError::Decode(format!("unknown payment status {iso:?}")))?;
        // The bank's own code is the raw one the platform sees.
        status.raw = code;
        let debtor_iban = match &self.debtor_iban {
            Some(pointer) => {
                text(pointer)?.and_then(|iban| crate::adapters::common::normalise_iban(&iban))
            }
            None => None,
        };
        Ok(BankPayment {
            id,
            status,
            debtor_iban,
        })
    }
}

/// The order's amount in minor units of its currency (exact, or refused).
fn minor_units(order: &PaymentOrder) -> Result<i64, AdapterError> {
    let exponent = currency_exponent(&order.currency).ok_or_else(|| {
        AdapterError::Refused(format!("no minor units known for {}", order.currency))
    })?;
    let scaled = order
        .amount
        .checked_mul(Decimal::from(10_i64.pow(exponent)))
        .filter(|scaled| scaled.fract().is_zero())
        .ok_or_else(|| {
            AdapterError::Refused("the amount has more decimals than its currency".into())
        })?;
    i64::try_from(scaled).map_err(|_| AdapterError::Refused("the amount is out of range".into()))
}

/// Sets `value` at `tokens` in `body`, making the objects on the way (a value already on the
/// way that is not an object is replaced by one).
fn place(body: &mut Value, tokens: &[String], value: Value) {
    let Some((first, rest)) = tokens.split_first() else {
        *body = value;
        return;
    };
    if !body.is_object() {
        *body = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(object) = body {
        let slot = object.entry(first.clone()).or_insert(Value::Null);
        place(slot, rest, value);
    }
}

impl Mapping {
    fn payments_rules(&self) -> Result<&CompiledPayments, AdapterError> {
        self.rules
            .payments
            .as_ref()
            .ok_or_else(|| AdapterError::Refused("the bank's mapping has no payments".into()))
    }

    fn with_headers(
        &self,
        mut request: reqwest::RequestBuilder,
        request_id: String,
    ) -> reqwest::RequestBuilder {
        request = request.header(ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &self.rules.headers {
            request = request.header(name, value);
        }
        if let Some(name) = &self.rules.request_id_header {
            request = request.header(name, request_id);
        }
        request
    }

    async fn read_payment(
        &self,
        session: BankSession<'_>,
        id: &str,
    ) -> Result<BankPayment, AdapterError> {
        let bank = session.bank;
        let rules = self.payments_rules()?;
        let url = super::mapped_url(bank, &rules.read.segments, Some(id))?;
        let request = self.with_headers(
            session.request(Method::GET, url),
            crate::adapters::common::request_id(),
        );
        let body = bank
            .fetch(request, rules.read.route(), self.error_hook())
            .await?;
        rules.payment(&body, Some(id))
    }

    fn error_hook(&self) -> impl Fn(&[u8]) -> Option<String> + Send + Sync + 'static {
        let rules = self.rules.clone();
        move |body: &[u8]| {
            let pointer = rules.error_pointer.as_ref()?;
            wire::error_in_body(pointer, body)
        }
    }
}

fn payment_id<'a>(session: &BankSession<'a>) -> Result<&'a str, AdapterError> {
    session
        .bank_consent_id
        .ok_or_else(|| AdapterError::Refused("a mapped payment needs the bank's payment id".into()))
}

#[async_trait]
impl PaymentInitiation for Mapping {
    async fn create_payment_consent(
        &self,
        bank: &Bank,
        order: &PaymentOrder,
    ) -> Result<BankConsent, AdapterError> {
        let rules = self.payments_rules()?;
        let url = super::mapped_url(bank, &rules.create.segments, None)?;
        let request = self
            .with_headers(bank.http.post(url), order.creation_request_id())
            .json(&rules.body(order)?);
        let body = bank
            .fetch(request, rules.create.route(), self.error_hook())
            .await?;
        let created = rules.payment(&body, None)?;
        Ok(BankConsent {
            oauth_scopes: rules.scope.clone(),
            authorization_params: vec![(rules.authorization_param.clone(), created.id.clone())],
            id: Some(created.id),
        })
    }

    async fn submit(
        &self,
        session: BankSession<'_>,
        _order: &PaymentOrder,
    ) -> Result<BankPayment, AdapterError> {
        // Authorising it executed it: submission reads where it stands.
        self.read_payment(session, payment_id(&session)?).await
    }

    async fn status(
        &self,
        session: BankSession<'_>,
        bank_payment_id: &str,
    ) -> Result<BankPayment, AdapterError> {
        self.read_payment(session, bank_payment_id).await
    }

    async fn find(
        &self,
        session: BankSession<'_>,
        _order: &PaymentOrder,
    ) -> Result<Option<BankPayment>, AdapterError> {
        self.read_payment(session, payment_id(&session)?)
            .await
            .map(Some)
    }
}
