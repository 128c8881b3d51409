//! The STET PSD2 API v1.4 profile (France): no bank-side consent before the redirect — the
//! OAuth2 scope `aisp` is the whole consent dance — then `/v1/accounts`,
//! `/v1/accounts/{id}/balances` and `/v1/accounts/{id}/transactions`, normalised by [`wire`].
//!
//! Every call carries a fresh `X-Request-ID` and the bearer token. Lists are followed through
//! their `_links.next` (relative to the API root, as STET writes them, and on the bank's own
//! origin only); transactions are asked for from `dateFrom` and filtered to it again here.
//! [`Stet::put_consents`] is the optional `PUT /v1/consents`, by which an AISP that collected
//! the customer's choice itself tells the bank which accounts it may read.
//! (HTTP message signatures with a QSealC, which STET requires in production, are not sent.)

pub mod payments;
pub mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderValue};

use super::common::{Pages, endpoint, follow_link, request_id, send, within};
use super::{
    AccountRef, AdapterError, Bank, BankAccount, BankConsent, BankSession, ConsentRequest, History,
    PaymentInitiation, Profile,
};
use crate::model::{Balance, Transaction};

/// The profile's manifest name.
pub const NAME: &str = "stet";
/// The OAuth2 scope of account information in STET.
pub const SCOPE: &str = "aisp";

const X_REQUEST_ID: &str = "X-Request-ID";

/// STET PSD2 API v1.4.
pub struct Stet;

impl Stet {
    /// `PUT /v1/consents`: replaces the accesses the bank grants under the session's token.
    pub async fn put_consents(
        &self,
        session: BankSession<'_>,
        consents: &wire::ConsentsRequest,
    ) -> Result<(), AdapterError> {
        let bank = session.bank;
        let url = endpoint(bank, &["v1", "consents"])?;
        let request = session
            .request(Method::PUT, url)
            .header(X_REQUEST_ID, request_id())
            .json(consents);
        bank.fetch(request, "/v1/consents", wire::error_in_body)
            .await?;
        Ok(())
    }
}

fn get(session: BankSession<'_>, url: url::Url) -> reqwest::RequestBuilder {
    session
        .request(Method::GET, url)
        .header(X_REQUEST_ID, request_id())
        .header(ACCEPT, HeaderValue::from_static("application/hal+json"))
}

/// Follows `_links.next` from `first` (at `route`), collecting each page with `take`.
async fn paged<P: serde::de::DeserializeOwned>(
    session: BankSession<'_>,
    (route, first): (&'static str, url::Url),
    mut take: impl FnMut(P) -> Option<String>,
) -> Result<(), AdapterError> {
    let bank = session.bank;
    let mut pages = Pages::new(&first);
    let mut url = first;
    loop {
        let page: P = send(bank, get(session, url.clone()), route, wire::error_in_body).await?;
        match take(page) {
            None => return Ok(()),
            Some(href) => url = pages.admit(follow_link(&bank.manifest.api_base_url, &href)?)?,
        }
    }
}

#[async_trait]
impl Profile for Stet {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Payments: [`payments`].
    fn payments(&self) -> Option<&dyn PaymentInitiation> {
        Some(self)
    }

    async fn create_consent(
        &self,
        _bank: &Bank,
        request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError> {
        request.require_scopes()?;
        // STET has no consent resource before the redirect: the customer chooses the
        // accounts at the bank, under the one account information scope.
        Ok(BankConsent {
            id: None,
            oauth_scopes: vec![SCOPE.to_owned()],
            authorization_params: Vec::new(),
        })
    }

    async fn accounts(&self, session: BankSession<'_>) -> Result<Vec<BankAccount>, AdapterError> {
        let bank = session.bank;
        let mut accounts = Vec::new();
        let mut failure = None;
        paged(
            session,
            ("/v1/accounts", endpoint(bank, &["v1", "accounts"])?),
            |page: wire::AccountsResponse| {
                let next = wire::next_href(page.links.as_ref()).map(str::to_owned);
                match wire::accounts(bank.id(), page) {
                    Ok(listed) => accounts.extend(listed),
                    Err(error) => {
                        failure = Some(error);
                        return None;
                    }
                }
                next
            },
        )
        .await?;
        match failure {
            Some(error) => Err(error),
            None => Ok(accounts),
        }
    }

    async fn balances(
        &self,
        session: BankSession<'_>,
        account: &AccountRef,
    ) -> Result<Vec<Balance>, AdapterError> {
        let bank = session.bank;
        let url = endpoint(bank, &["v1", "accounts", account.segment()?, "balances"])?;
        let response: wire::BalancesResponse = send(
            bank,
            get(session, url),
            "/v1/accounts/{accountResourceId}/balances",
            wire::error_in_body,
        )
        .await?;
        wire::balances(&account.account_id, response)
    }

    async fn transactions(
        &self,
        session: BankSession<'_>,
        history: History<'_>,
    ) -> Result<Vec<Transaction>, AdapterError> {
        let mut url = endpoint(
            session.bank,
            &["v1", "accounts", history.account.segment()?, "transactions"],
        )?;
        if let Some(from) = history.from {
            url.query_pairs_mut()
                .append_pair("dateFrom", &from.to_string());
        }
        let mut entries = Vec::new();
        let first = ("/v1/accounts/{accountResourceId}/transactions", url);
        paged(session, first, |page: wire::TransactionsResponse| {
            let next = wire::next_href(page.links.as_ref()).map(str::to_owned);
            entries.extend(page.transactions);
            next
        })
        .await?;
        Ok(within(
            wire::transactions(&history.account.account_id, entries)?,
            history.from,
        ))
    }
}
