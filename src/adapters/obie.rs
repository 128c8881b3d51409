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
//! parameter and the client authenticates with its secret or, where the manifest says so,
//! `private_key_jwt`.) Payment initiation: [`payments`].

pub mod payments;
pub mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, HeaderValue};
use serde::Deserialize;

use super::bank_oauth::dpop;
use super::common::{Pages, consent_deleted, endpoint, follow_link, request_id, send, within};
use super::{
    AccountRef, AdapterError, Bank, BankAccount, BankConsent, BankSession, ConsentRequest, History,
    PaymentInitiation, Profile,
};
use crate::model::{Balance, Transaction};

/// The profile's manifest name.
pub const NAME: &str = "obie";

const INTERACTION_ID: &str = "x-fapi-interaction-id";

/// UK Open Banking Read/Write API 3.1.x and 4.0.
pub struct Obie;

#[derive(Deserialize)]
struct ClientToken {
    access_token: String,
    #[serde(default)]
    token_type: String,
}

impl Obie {
    /// A client credentials token with `scope` (`accounts` for the account access consent,
    /// `payments` for payment consents and payments). It goes through the bank's OAuth HTTP
    /// client: bankgate authenticates as the manifest says (`private_key_jwt` or its secret)
    /// and, with a DPoP key, proves it (the token is then bound to that key).
    async fn client_token(&self, bank: &Bank, scope: &str) -> Result<String, AdapterError> {
        use http::header::{AUTHORIZATION, CONTENT_TYPE};

        let mut form = vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("scope".to_owned(), scope.to_owned()),
        ];
        let basic = crate::adapters::bank_oauth::auth::authenticate(bank, &mut form)?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish()
            .into_bytes();
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(&bank.manifest.oauth.token_endpoint)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT, "application/json");
        if let Some(basic) = basic {
            let mut value = http::HeaderValue::from_str(&basic).map_err(|_| {
                AdapterError::Refused("the client credentials are not a header value".into())
            })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let request = request
            .body(body)
            .map_err(|_| AdapterError::Refused("bank manifest has a bad token_endpoint".into()))?;
        let response = dpop::HttpClient::of(bank)
            .send(request)
            .await
            .map_err(|error| AdapterError::Transport(error.to_string()))?;
        if !response.status().is_success() {
            return Err(AdapterError::Status {
                status: response.status().as_u16(),
            });
        }
        let token: ClientToken = serde_json::from_slice(response.body())
            .map_err(|_| AdapterError::Decode("token response not understood".into()))?;
        dpop::check_token_type(bank, &token.token_type)?;
        Ok(token.access_token)
    }

    /// The bank's view of a consent (`GET /account-access-consents/{ConsentId}`).
    pub async fn consent_state(
        &self,
        bank: &Bank,
        consent_id: &str,
    ) -> Result<wire::ConsentState, AdapterError> {
        let token = self.client_token(bank, "accounts").await?;
        let url = endpoint(bank, &["account-access-consents", consent_id])?;
        let request = bank
            .http
            .get(url.clone())
            .header(INTERACTION_ID, request_id());
        let answer: wire::Envelope<wire::ConsentData> = send(
            bank,
            dpop::authorize(bank, request, "GET", &url, &token)?,
            "/account-access-consents/{ConsentId}",
            wire::error_in_body,
        )
        .await?;
        wire::ConsentState::try_from(answer.data)
    }
}

/// A GET of `url` with `token` — the consent's for data calls, a client credentials one for
/// payments — and a DPoP proof where bankgate has a key.
fn get(bank: &Bank, url: url::Url, token: &str) -> Result<reqwest::RequestBuilder, AdapterError> {
    let request = bank
        .http
        .get(url.clone())
        .header(INTERACTION_ID, request_id())
        .header(ACCEPT, HeaderValue::from_static("application/json"));
    dpop::authorize(bank, request, "GET", &url, token)
}

/// Follows `Links.Next` from `first` (at `route`), handing each page's `Data` to `take`.
async fn paged<D: serde::de::DeserializeOwned>(
    session: BankSession<'_>,
    (route, first): (&'static str, url::Url),
    mut take: impl FnMut(D),
) -> Result<(), AdapterError> {
    let bank = session.bank;
    let mut pages = Pages::new(&first);
    let mut url = first;
    loop {
        let page: wire::Envelope<D> = send(
            bank,
            get(bank, url.clone(), session.access_token)?,
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

    /// `private_key_jwt` and DPoP where the manifest asks: client credentials tokens go
    /// through the bank's OAuth HTTP client, every call with a token carries a proof.
    fn speaks_bank_fapi(&self) -> bool {
        true
    }

    /// Payments: [`payments`].
    fn payments(&self) -> Option<&dyn PaymentInitiation> {
        Some(self)
    }

    /// `DELETE /account-access-consents/{ConsentId}` with a client credentials token.
    async fn revoke_consent(&self, bank: &Bank, bank_consent_id: &str) -> Result<(), AdapterError> {
        let token = self.client_token(bank, "accounts").await?;
        let url = endpoint(bank, &["account-access-consents", bank_consent_id])?;
        let request = bank
            .http
            .delete(url.clone())
            .header(INTERACTION_ID, request_id());
        let request = dpop::authorize(bank, request, "DELETE", &url, &token)?.build()?;
        let route = "/account-access-consents/{ConsentId}";
        consent_deleted(bank.execute(request, route).await?.status().as_u16())
    }

    /// `POST /open-banking/{version}/callback-urls` (next to the manifest's `aisp` base) with
    /// a client credentials token: the bank's event notifications then go to `url`.
    async fn register_event_callback(&self, bank: &Bank, url: &str) -> Result<bool, AdapterError> {
        let base = bank.manifest.api_base_url.trim_end_matches('/');
        let root = base.strip_suffix("/aisp").unwrap_or(base);
        let version = root
            .rsplit('/')
            .next()
            .and_then(|segment| segment.strip_prefix('v'))
            .unwrap_or("4.0")
            .to_owned();
        let endpoint = url::Url::parse(&format!("{root}/callback-urls"))
            .map_err(|_| AdapterError::Refused("bank manifest has a bad api_base_url".into()))?;
        let token = self.client_token(bank, "accounts").await?;
        let request = bank
            .http
            .post(endpoint.clone())
            .header(INTERACTION_ID, request_id())
            .json(&serde_json::json!({"Data": {"Url": url, "Version": version}}));
        let request = dpop::authorize(bank, request, "POST", &endpoint, &token)?.build()?;
        let status = bank
            .execute(request, "/callback-urls")
            .await?
            .status()
            .as_u16();
        if (200..300).contains(&status) {
            return Ok(true);
        }
        Err(AdapterError::Status { status })
    }

    async fn create_consent(
        &self,
        bank: &Bank,
        request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError> {
        let body = wire::ConsentRequest::new(request)?;
        let token = self.client_token(bank, "accounts").await?;
        let url = endpoint(bank, &["account-access-consents"])?;
        let request = bank
            .http
            .post(url.clone())
            .header(INTERACTION_ID, request_id())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .json(&body);
        let created: wire::Envelope<wire::ConsentData> = send(
            bank,
            dpop::authorize(bank, request, "POST", &url, &token)?,
            "/account-access-consents",
            wire::error_in_body,
        )
        .await?;
        BankConsent::try_from(created.data)
    }

    async fn accounts(&self, session: BankSession<'_>) -> Result<Vec<BankAccount>, AdapterError> {
        let bank = session.bank;
        let mut listed = Vec::new();
        paged(
            session,
            ("/accounts", endpoint(bank, &["accounts"])?),
            |data: wire::AccountsData| listed.extend(data.account),
        )
        .await?;
        wire::accounts(bank.id(), wire::AccountsData { account: listed })
    }

    async fn balances(
        &self,
        session: BankSession<'_>,
        account: &AccountRef,
    ) -> Result<Vec<Balance>, AdapterError> {
        let bank = session.bank;
        let url = endpoint(bank, &["accounts", account.segment()?, "balances"])?;
        let answer: wire::Envelope<wire::BalancesData> = send(
            bank,
            get(bank, url, session.access_token)?,
            "/accounts/{AccountId}/balances",
            wire::error_in_body,
        )
        .await?;
        wire::balances(&account.account_id, Some(&account.bank_ref), answer.data)
    }

    async fn transactions(
        &self,
        session: BankSession<'_>,
        history: History<'_>,
    ) -> Result<Vec<Transaction>, AdapterError> {
        let mut url = endpoint(
            session.bank,
            &["accounts", history.account.segment()?, "transactions"],
        )?;
        if let Some(from) = history.from {
            url.query_pairs_mut()
                .append_pair("fromBookingDateTime", &format!("{from}T00:00:00"));
        }
        let mut entries = Vec::new();
        let first = ("/accounts/{AccountId}/transactions", url);
        paged(session, first, |data: wire::TransactionsData| {
            entries.extend(data.transaction)
        })
        .await?;
        Ok(within(
            wire::transactions(
                &history.account.account_id,
                Some(&history.account.bank_ref),
                entries,
            )?,
            history.from,
        ))
    }
}
