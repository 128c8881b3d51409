//! A bank's payment initiation as the payment workflow sees it ([`PayerBank`]): one consent's
//! session at one bank, and every failure classified as "refused" (no payment made) or "in
//! doubt" (a look-up must tell). Errors are logged here, with the bank and their kind only.

use async_trait::async_trait;

use super::bank_oauth::BankGrant;
use super::{Adapter, AdapterError, BankSession, PaymentInitiation};
use crate::payments::submit::{BankFailure, PayerBank};
use crate::payments::{BankPayment, PaymentOrder};

/// The payer's bank for one consent: its adapter and the consent's bank grant.
pub struct Paying<'a> {
    pub adapter: &'a Adapter,
    pub grant: BankGrant,
}

impl Paying<'_> {
    fn session(&self) -> BankSession<'_> {
        self.grant.session(&self.adapter.bank)
    }

    /// The bank's payment initiation; a bank without one refuses every payment call.
    fn initiation(&self) -> Result<&dyn PaymentInitiation, BankFailure> {
        self.adapter.profile.payments().ok_or(BankFailure::Refused)
    }

    fn failed(&self, call: &str, error: AdapterError) -> BankFailure {
        let error = error.at(&self.adapter.bank.manifest.id);
        tracing::warn!(bank = %self.adapter.bank.manifest.id, call, kind = error.kind(),
            "payment call failed");
        if is_refusal(&error) {
            BankFailure::Refused
        } else {
            BankFailure::InDoubt
        }
    }
}

/// Whether a bank's answer says for certain that it made no payment: a 4xx (also one saying
/// the consent ended at the bank), an error body, a refusal the profile read, or a call never
/// sent (open circuit, in-flight cap). A timeout, a transport failure or a 5xx may hide a
/// payment made.
pub fn is_refusal(error: &AdapterError) -> bool {
    match error.root() {
        AdapterError::Status { status } => (400..500).contains(status) && *status != 408,
        AdapterError::ConsentEnded(_)
        | AdapterError::ErrorBody(_)
        | AdapterError::Refused(_)
        | AdapterError::UnknownAccount
        | AdapterError::CircuitOpen
        | AdapterError::Saturated => true,
        _ => false,
    }
}

#[async_trait]
impl PayerBank for Paying<'_> {
    async fn submit(&self, order: &PaymentOrder) -> Result<BankPayment, BankFailure> {
        self.initiation()?
            .submit(self.session(), order)
            .await
            .map_err(|error| self.failed("submit", error))
    }

    async fn status(&self, bank_payment_id: &str) -> Result<BankPayment, BankFailure> {
        self.initiation()?
            .status(self.session(), bank_payment_id)
            .await
            .map_err(|error| self.failed("status", error))
    }

    async fn payer(&self, order: &PaymentOrder) -> Option<String> {
        let initiation = self.adapter.profile.payments()?;
        match initiation.payer_account(self.session(), order).await {
            Ok(payer) => payer,
            Err(error) => {
                // Not known: the submission goes on (the bank refuses it if it must).
                self.failed("payer", error);
                None
            }
        }
    }

    async fn find(&self, order: &PaymentOrder) -> Result<Option<BankPayment>, BankFailure> {
        self.initiation()?
            .find(self.session(), order)
            .await
            .map_err(|error| self.failed("find", error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::ConsentEnd;

    #[test]
    fn a_consent_ended_at_the_bank_made_no_payment() {
        for end in [
            ConsentEnd::Revoked,
            ConsentEnd::Expired,
            ConsentEnd::Invalid,
        ] {
            assert!(is_refusal(&AdapterError::ConsentEnded(end).at("bank")));
        }
        assert!(!is_refusal(&AdapterError::Timeout.at("bank")));
        assert!(!is_refusal(&AdapterError::Status { status: 502 }));
    }
}
