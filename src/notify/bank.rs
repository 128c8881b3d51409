//! The refresh engine's [`BankReader`] over the live adapters: the consent's bank grant
//! (refreshed when about to expire, like a platform call), its accounts, then each account's
//! balances and transactions, every call through the bank's outbound stack (its in-flight cap,
//! retries of idempotent reads, circuit breaker and timeout).

use std::sync::Arc;

use async_trait::async_trait;

use super::engine::{AccountData, BankRead, BankReader, ReadError, Reads};
use crate::adapters::bank_oauth::{BankTokenError, BankTokens};
use crate::adapters::{AccountRef, AccountRefs, AdapterError, BankAccount, Grants, Registry};
use crate::consent::Consent;
use crate::crypto::Sealer;

/// Reads consents' accounts at their banks.
#[derive(Clone)]
pub struct AdapterReader {
    pub banks: Arc<Registry>,
    pub bank_tokens: Arc<BankTokens>,
    pub grants: Arc<dyn Grants>,
    pub account_refs: Arc<dyn AccountRefs>,
    pub sealer: Arc<Sealer>,
}

/// A failure in gateway words: the bank and the kind, never the bank's message.
fn bank_failure(bank: &str, error: &AdapterError) -> ReadError {
    let kind = match error.root() {
        AdapterError::Timeout => "did not answer in time",
        AdapterError::Transport(_) => "could not be reached",
        AdapterError::Tls(_) => "refused the TLS handshake",
        AdapterError::Status { .. } => "answered with an error status",
        AdapterError::Decode(_) => "answered with a payload bankgate could not read",
        AdapterError::ErrorBody(_) => "answered with an error",
        AdapterError::TooLarge { .. } => "answered with too large a body",
        AdapterError::CircuitOpen => "is unavailable (circuit open)",
        AdapterError::Saturated => "has too many calls in flight",
        AdapterError::Refused(_) => "refused",
        AdapterError::UnknownAccount => "does not know the account",
        AdapterError::ConsentEnded(_) => "ended the consent on its side",
        AdapterError::AtBank { .. } => "failed",
    };
    ReadError::Bank(format!("bank {bank} {kind}"))
}

#[async_trait]
impl BankReader for AdapterReader {
    async fn read(&self, consent: &Consent, reads: Reads) -> Result<BankRead, ReadError> {
        let bank_id = consent.bank_id.as_str();
        let adapter = self
            .banks
            .get(bank_id)
            .ok_or_else(|| ReadError::Bank(format!("bank {bank_id} is not loaded")))?;
        let stored = self.grants.grant(&consent.id).await?;
        let grant = self
            .bank_tokens
            .current(adapter.clone(), stored)
            .await
            .map_err(|error| match error {
                BankTokenError::Store(error) => ReadError::Store(error),
                BankTokenError::Bank(error) => bank_failure(bank_id, &error),
                _ => ReadError::Bank(format!("bank {bank_id}: no usable bank grant")),
            })?;
        let session = grant.session(&adapter.bank);
        // The ids the consent's platform sees (in webhooks' links, in change detection).
        let listed = adapter
            .accounts_for(session, &self.sealer, &consent.client_id)
            .await
            .map_err(|error| bank_failure(bank_id, &error))?;
        let refs: Vec<AccountRef> = listed.iter().map(BankAccount::account_ref).collect();
        self.account_refs
            .put_account_refs(&consent.id, &refs)
            .await?;
        let mut accounts = Vec::with_capacity(listed.len());
        for (listed, account) in listed.into_iter().zip(&refs) {
            let balances = if reads.balances {
                adapter
                    .profile
                    .balances(session, account)
                    .await
                    .map_err(|error| bank_failure(bank_id, &error))?
            } else {
                Vec::new()
            };
            let transactions = match reads.transactions_from {
                // Whatever the bank returns beyond the window is not looked at.
                Some(from) => adapter
                    .transactions_from(session, account, from)
                    .await
                    .map_err(|error| bank_failure(bank_id, &error))?,
                None => Vec::new(),
            };
            accounts.push(AccountData {
                account: listed.account,
                balances,
                transactions,
            });
        }
        Ok(BankRead {
            accounts,
            bank_consent_id: grant.bank_consent_id.clone(),
        })
    }
}
