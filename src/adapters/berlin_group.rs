//! The Berlin Group NextGenPSD2 profile.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::{AdapterError, Bank, BankAccount, BankConsent, BankSession, ConsentRequest, Profile};
use crate::model::{Balance, Transaction};

/// The profile's manifest name.
pub const NAME: &str = "berlin-group";

/// NextGenPSD2 1.3.x.
pub struct BerlinGroup;

#[async_trait]
impl Profile for BerlinGroup {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn create_consent(
        &self,
        _bank: &Bank,
        _request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError> {
        Err(AdapterError::Refused("not implemented".into()))
    }

    async fn accounts(
        &self,
        _bank: &Bank,
        _session: BankSession<'_>,
    ) -> Result<Vec<BankAccount>, AdapterError> {
        Err(AdapterError::Refused("not implemented".into()))
    }

    async fn balances(
        &self,
        _bank: &Bank,
        _session: BankSession<'_>,
        _bank_ref: &str,
        _account_id: &str,
    ) -> Result<Vec<Balance>, AdapterError> {
        Err(AdapterError::Refused("not implemented".into()))
    }

    async fn transactions(
        &self,
        _bank: &Bank,
        _session: BankSession<'_>,
        _bank_ref: &str,
        _account_id: &str,
        _from: Option<NaiveDate>,
    ) -> Result<Vec<Transaction>, AdapterError> {
        Err(AdapterError::Refused("not implemented".into()))
    }
}
