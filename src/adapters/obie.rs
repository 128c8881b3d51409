//! The UK Open Banking (OBIE) Read/Write API profile, 3.1.x and 4.0 alike: a client
//! credentials token, `POST /account-access-consents` with the `Permissions` the scopes need,
//! then the authorization redirect carrying the consent as `openbanking_intent_id` (an OIDC
//! `claims` request), and the account information calls, normalised by [`wire`].
//!
//! The manifest's `api_base_url` names the version, e.g.
//! `https://bank.example/open-banking/v4.0/aisp`. Every call carries a fresh
//! `x-fapi-interaction-id`. Lists are followed through `Links.Next` on the bank's own origin;
//! transactions are asked for from `fromBookingDateTime` and filtered to it again here.
//! (FAPI signed request objects and mutual TLS are not used: the claims go as a plain
//! parameter and the client authenticates with its secret.)

pub mod payments;
pub mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use chrono::NaiveDate;
use reqwest::header::{ACCEPT, HeaderValue};
use serde::Deserialize;

use super::common::{
    Pages, account_ref, endpoint, follow_link, request_id, route_of, send, within,
};
use super::outbound::no_error_in_body;
use super::{AdapterError, Bank, BankAccount, BankConsent, BankSession, ConsentRequest, Profile};
use crate::model::{Balance, Transaction};

/// The profile's manifest name.
pub const NAME: &str = "obie";

const INTERACTION_ID: &str = "x-fapi-interaction-id";

/// UK Open Banking Read/Write API 3.1.x and 4.0.
pub struct Obie;

#[derive(Deserialize)]
struct ClientToken {
    access_token: String,
}

impl Obie {
    /// A client credentials token with the scope `accounts`, for the consent resource.
    async fn client_token(&self, bank: &Bank) -> Result<String, AdapterError> {
        let request = bank
            .http
            .post(&bank.manifest.oauth.token_endpoint)
            .basic_auth(&bank.client_id, Some(bank.client_secret()))
            .form(&[("grant_type", "client_credentials"), ("scope", "accounts")]);
        let route = route_of(&bank.manifest.oauth.token_endpoint);
        let body = bank.fetch(request, route, no_error_in_body).await?;
        let token: ClientToken = serde_json::from_slice(&body)
            .map_err(|_| AdapterError::Decode("token response not understood".into()))?;
        Ok(token.access_token)
    }

    /// The bank's view of a consent (`GET /account-access-consents/{ConsentId}`).
    pub async fn consent_state(
        &self,
        bank: &Bank,
        consent_id: &str,
    ) -> Result<wire::ConsentState, AdapterError> {
        let token = self.client_token(bank).await?;
        let url = endpoint(bank, &["account-access-consents", consent_id])?;
        let answer: wire::Envelope<wire::ConsentData> = send(
            bank,
            bank.http
                .get(url)
                .header(INTERACTION_ID, request_id())
                .bearer_auth(token),
            "/account-access-consents/{ConsentId}",
            wire::error_in_body,
        )
        .await?;
        wire::ConsentState::try_from(answer.data)
    }
}

fn get(bank: &Bank, session: BankSession<'_>, url: url::Url) -> reqwest::RequestBuilder {
    bank.http
        .get(url)
        .header(INTERACTION_ID, request_id())
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .bearer_auth(session.access_token)
}

/// Follows `Links.Next` from `first` (at `route`), handing each page's `Data` to `take`.
async fn paged<D: serde::de::DeserializeOwned>(
    bank: &Bank,
    session: BankSession<'_>,
    (route, first): (&'static str, url::Url),
    mut take: impl FnMut(D),
) -> Result<(), AdapterError> {
    let mut pages = Pages::new(&first);
    let mut url = first;
    loop {
        let page: wire::Envelope<D> = send(
            bank,
            get(bank, session, url.clone()),
            route,
            wire::error_in_body,
        )
        .await?;
        let next = page
            .next()
            .map(|href| follow_link(&bank.manifest.api_base_url, href))
            .transpose()?;
        take(page.data);
        match next {
            None => return Ok(()),
            Some(next) => url = pages.admit(next)?,
        }
    }
}

#[async_trait]
impl Profile for Obie {
    fn name(&self) -> &'static str {
        NAME
    }

    /// `DELETE /account-access-consents/{ConsentId}` with a client credentials token.
    async fn revoke_consent(&self, bank: &Bank, bank_consent_id: &str) -> Result<(), AdapterError> {
        let token = self.client_token(bank).await?;
        let url = endpoint(bank, &["account-access-consents", bank_consent_id])?;
        let request = bank
            .http
            .delete(url)
            .header(INTERACTION_ID, request_id())
            .bearer_auth(token)
            .build()?;
        let route = "/account-access-consents/{ConsentId}";
        let status = bank.execute(request, route).await?.status().as_u16();
        if (200..300).contains(&status) || status == 404 {
            return Ok(());
        }
        Err(AdapterError::Status { status })
    }

    async fn create_consent(
        &self,
        bank: &Bank,
        request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError> {
        let body = wire::ConsentRequest::new(request)?;
        let token = self.client_token(bank).await?;
        let url = endpoint(bank, &["account-access-consents"])?;
        let created: wire::Envelope<wire::ConsentData> = send(
            bank,
            bank.http
                .post(url)
                .header(INTERACTION_ID, request_id())
                .header(ACCEPT, HeaderValue::from_static("application/json"))
                .bearer_auth(token)
                .json(&body),
            "/account-access-consents",
            wire::error_in_body,
        )
        .await?;
        BankConsent::try_from(created.data)
    }

    async fn accounts(
        &self,
        bank: &Bank,
        session: BankSession<'_>,
    ) -> Result<Vec<BankAccount>, AdapterError> {
        let mut listed = Vec::new();
        paged(
            bank,
            session,
            ("/accounts", endpoint(bank, &["accounts"])?),
            |data: wire::AccountsData| listed.extend(data.account),
        )
        .await?;
        wire::accounts(bank.id(), wire::AccountsData { account: listed })
    }

    async fn balances(
        &self,
        bank: &Bank,
        session: BankSession<'_>,
        bank_ref: &str,
        account_id: &str,
    ) -> Result<Vec<Balance>, AdapterError> {
        let url = endpoint(bank, &["accounts", account_ref(bank_ref)?, "balances"])?;
        let answer: wire::Envelope<wire::BalancesData> = send(
            bank,
            get(bank, session, url),
            "/accounts/{AccountId}/balances",
            wire::error_in_body,
        )
        .await?;
        wire::balances(account_id, Some(bank_ref), answer.data)
    }

    async fn transactions(
        &self,
        bank: &Bank,
        session: BankSession<'_>,
        bank_ref: &str,
        account_id: &str,
        from: Option<NaiveDate>,
    ) -> Result<Vec<Transaction>, AdapterError> {
        let mut url = endpoint(bank, &["accounts", account_ref(bank_ref)?, "transactions"])?;
        if let Some(from) = from {
            url.query_pairs_mut()
                .append_pair("fromBookingDateTime", &format!("{from}T00:00:00"));
        }
        let mut entries = Vec::new();
        let first = ("/accounts/{AccountId}/transactions", url);
        paged(bank, session, first, |data: wire::TransactionsData| {
            entries.extend(data.transaction)
        })
        .await?;
        Ok(within(
            wire::transactions(account_id, Some(bank_ref), entries)?,
            from,
        ))
    }
}
