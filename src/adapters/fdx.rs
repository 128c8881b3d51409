//! The Financial Data Exchange (FDX, US) 6.x profile: the consent travels with the
//! authorization request as RFC 9396 `authorization_details` of type `fdx_v1.0` (the
//! bank creates the consent grant when the customer approves), then `/accounts`,
//! `/accounts/{accountId}` (whose balances are the account's `currentBalance`,
//! `availableBalance`, …) and `/accounts/{accountId}/transactions`, normalised by [`wire`].
//!
//! Every call carries a fresh `x-fapi-interaction-id`. Lists are followed through
//! `links.next` (on the bank's own origin) or `page.nextPageKey` (as `offset`); transactions
//! are asked for from `startTime` and filtered to it again here.

pub mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderValue};
use serde_json::value::RawValue;

use super::common::{Pages, decode, endpoint, follow_link, request_id, send, within};
use super::{
    AccountRef, AdapterError, Bank, BankAccount, BankConsent, BankSession, ConsentRequest, History,
    Profile,
};
use crate::model::{Balance, Transaction};

/// The profile's manifest name.
pub const NAME: &str = "fdx";

const INTERACTION_ID: &str = "x-fapi-interaction-id";

/// FDX 6.x.
pub struct Fdx;

impl Fdx {
    /// The bank's consent grant (`GET /consents/{consentId}`).
    pub async fn consent_state(
        &self,
        session: BankSession<'_>,
        consent_id: &str,
    ) -> Result<wire::ConsentState, AdapterError> {
        let bank = session.bank;
        let url = endpoint(bank, &["consents", consent_id])?;
        let grant: wire::ConsentGrant = send(
            bank,
            get(session, url),
            "/consents/{consentId}",
            wire::error_in_body,
        )
        .await?;
        wire::ConsentState::try_from(grant)
    }

    async fn account_details(
        &self,
        session: BankSession<'_>,
        account: &AccountRef,
    ) -> Result<wire::FdxAccount, AdapterError> {
        let bank = session.bank;
        let url = endpoint(bank, &["accounts", account.segment()?])?;
        let raw: Box<RawValue> = send(
            bank,
            get(session, url),
            "/accounts/{accountId}",
            wire::error_in_body,
        )
        .await?;
        wire::account_entity(&raw).map_err(|message| decode("account", message))
    }
}

fn get(session: BankSession<'_>, url: url::Url) -> reqwest::RequestBuilder {
    session
        .request(Method::GET, url)
        .header(INTERACTION_ID, request_id())
        .header(ACCEPT, HeaderValue::from_static("application/json"))
}

/// The URL of the next page: its link, or `first` with `offset` set to the page key.
fn next_url(bank: &Bank, first: &url::Url, next: wire::Next) -> Result<url::Url, AdapterError> {
    match next {
        wire::Next::Link(href) => follow_link(&bank.manifest.api_base_url, &href),
        wire::Next::Key(key) => {
            let mut url = first.clone();
            let kept: Vec<(String, String)> = first
                .query_pairs()
                .filter(|(name, _)| name != "offset")
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("offset", &key);
            Ok(url)
        }
    }
}

#[async_trait]
impl Profile for Fdx {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn create_consent(
        &self,
        _bank: &Bank,
        request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError> {
        request.require_scopes()?;
        let days = (request.valid_until - Utc::now().date_naive()).num_days() + 1;
        Ok(BankConsent {
            id: None,
            oauth_scopes: vec!["openid".into(), "offline_access".into()],
            authorization_params: vec![(
                "authorization_details".into(),
                wire::authorization_details(&request.scopes, days),
            )],
        })
    }

    async fn accounts(&self, session: BankSession<'_>) -> Result<Vec<BankAccount>, AdapterError> {
        let bank = session.bank;
        let first = endpoint(bank, &["accounts"])?;
        let mut url = first.clone();
        let mut pages = Pages::new(&first);
        let mut accounts = Vec::new();
        loop {
            let page: wire::AccountsResponse = send(
                bank,
                get(session, url.clone()),
                "/accounts",
                wire::error_in_body,
            )
            .await?;
            accounts.extend(wire::accounts(bank.id(), &page)?);
            match page.next() {
                None => return Ok(accounts),
                Some(next) => url = pages.admit(next_url(bank, &first, next)?)?,
            }
        }
    }

    async fn balances(
        &self,
        session: BankSession<'_>,
        account: &AccountRef,
    ) -> Result<Vec<Balance>, AdapterError> {
        let entity = self.account_details(session, account).await?;
        wire::balances(&account.account_id, &entity)
    }

    async fn transactions(
        &self,
        session: BankSession<'_>,
        history: History<'_>,
    ) -> Result<Vec<Transaction>, AdapterError> {
        let bank = session.bank;
        // Transactions carry no currency of their own: they are in the account's.
        let entity = self.account_details(session, history.account).await?;
        let currency = crate::adapters::common::account_currency(
            entity
                .currency
                .as_ref()
                .and_then(|code| code.currency_code.as_deref()),
        )
        .map_err(|message| decode("account.currency", message))?;
        let mut first = endpoint(
            bank,
            &["accounts", history.account.segment()?, "transactions"],
        )?;
        if let Some(from) = history.from {
            first
                .query_pairs_mut()
                .append_pair("startTime", &from.to_string());
        }
        let mut url = first.clone();
        let mut pages = Pages::new(&first);
        let mut entries = Vec::new();
        loop {
            let page: wire::TransactionsResponse = send(
                bank,
                get(session, url.clone()),
                "/accounts/{accountId}/transactions",
                wire::error_in_body,
            )
            .await?;
            let next = page.next();
            entries.extend(page.transactions);
            match next {
                None => {
                    let transactions =
                        wire::transactions(&history.account.account_id, &currency, &entries)?;
                    return Ok(within(transactions, history.from));
                }
                Some(next) => url = pages.admit(next_url(bank, &first, next)?)?,
            }
        }
    }
}
