//! The Berlin Group NextGenPSD2 (1.3.x) profile: the consent resource created before the OAuth
//! redirect (`POST /v1/consents`, OAuth scope `AIS:<consentId>`), then the account information
//! calls, normalised by [`wire`].
//!
//! Every call carries a fresh `X-Request-ID`; data calls add `Consent-ID` and the bearer token.
//! The consent asks for exactly the scopes requested, in the bank-offered form (see
//! [`wire::Access`]). Transaction reports are requested with `bookingStatus=both`, their
//! `_links.next` pages followed on the bank's own origin only, and filtered to `from` again
//! here, so that a bank ignoring `dateFrom` cannot widen the history window.

pub mod payments;
pub mod wire;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, HeaderValue};
use serde::de::DeserializeOwned;

use super::common::{Pages, consent_deleted, within};
use super::outbound::Classify;
use super::{
    AccountRef, AdapterError, Bank, BankAccount, BankConsent, BankSession, ConsentEnd,
    ConsentRequest, History, PaymentInitiation, Profile,
};
use crate::model::{Balance, Transaction};

/// The profile's manifest name.
pub const NAME: &str = "berlin-group";

const X_REQUEST_ID: &str = "X-Request-ID";
const CONSENT_ID: &str = "Consent-ID";

/// NextGenPSD2 1.3.x.
pub struct BerlinGroup;

impl BerlinGroup {
    /// The bank's view of a consent (`GET /v1/consents/{id}`), e.g. to notice that the customer
    /// revoked it at the bank.
    pub async fn consent_state(
        &self,
        bank: &Bank,
        consent_id: &str,
    ) -> Result<wire::ConsentState, AdapterError> {
        let url = endpoint(bank, &["consents", consent_id])?;
        let information: wire::ConsentInformation = send(
            bank,
            bank.http.get(url).header(X_REQUEST_ID, request_id()),
            "/v1/consents/{consentId}",
        )
        .await?;
        wire::ConsentState::try_from(information)
    }

    /// A data call's outcome, with `CONSENT_INVALID` confirmed: the bank says that of a
    /// consent it ended and of a resource the consent does not cover, so the consent's status
    /// decides. Ended (`revokedByPsu`, `expired`, `terminatedByTpp`, `rejected`) → the
    /// consent ended at the bank; still `valid`, or unreadable → a refusal of this resource
    /// (403: the token is fine, so nothing is refreshed).
    async fn confirm_ended<T>(
        &self,
        session: BankSession<'_>,
        outcome: Result<T, AdapterError>,
    ) -> Result<T, AdapterError> {
        match outcome {
            Err(AdapterError::ConsentEnded(ConsentEnd::Invalid)) => {
                let refused = AdapterError::Status { status: 403 };
                let Some(consent_id) = session.bank_consent_id else {
                    return Err(refused);
                };
                match self.consent_state(session.bank, consent_id).await {
                    Ok(state) => {
                        Err(ended_by_status(&state.status)
                            .map_or(refused, AdapterError::ConsentEnded))
                    }
                    Err(error) => {
                        tracing::warn!(bank = %session.bank.id(), %error,
                            "the consent's status could not be read after CONSENT_INVALID");
                        Err(refused)
                    }
                }
            }
            outcome => outcome,
        }
    }
}

/// How a Berlin Group `consentStatus` says the consent ended, if it does.
pub fn ended_by_status(status: &str) -> Option<ConsentEnd> {
    match status {
        "expired" => Some(ConsentEnd::Expired),
        "revokedByPsu" | "terminatedByTpp" | "terminatedByAspsp" | "rejected" => {
            Some(ConsentEnd::Revoked)
        }
        _ => None,
    }
}

#[async_trait]
impl Profile for BerlinGroup {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Data calls carry DPoP proofs when the manifest asks; the consent resource calls need no
    /// client authentication (NextGenPSD2 identifies the TPP by its certificate).
    fn speaks_bank_fapi(&self) -> bool {
        true
    }

    /// Payments: [`payments`].
    fn payments(&self) -> Option<&dyn PaymentInitiation> {
        Some(self)
    }

    /// `DELETE /v1/consents/{consentId}`: the bank marks the consent `terminatedByTpp`.
    async fn revoke_consent(&self, bank: &Bank, bank_consent_id: &str) -> Result<(), AdapterError> {
        let url = endpoint(bank, &["consents", bank_consent_id])?;
        let request = bank
            .http
            .delete(url)
            .header(X_REQUEST_ID, request_id())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .build()?;
        let response = bank.execute(request, "/v1/consents/{consentId}").await?;
        // 204 as the standard says.
        consent_deleted(response.status().as_u16())
    }

    async fn create_consent(
        &self,
        bank: &Bank,
        request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError> {
        let body = wire::ConsentRequest::new(request)?;
        let url = endpoint(bank, &["consents"])?;
        let created: wire::ConsentCreated = send(
            bank,
            bank.http
                .post(url)
                .header(X_REQUEST_ID, request_id())
                .header(ACCEPT, HeaderValue::from_static("application/json"))
                .json(&body),
            "/v1/consents",
        )
        .await?;
        let consent = BankConsent::try_from(created)?;
        Ok(match &bank.manifest.oauth.consent_detail_type {
            Some(kind) => wire::as_authorization_details(consent, kind),
            None => consent,
        })
    }

    async fn accounts(&self, session: BankSession<'_>) -> Result<Vec<BankAccount>, AdapterError> {
        let bank = session.bank;
        let url = endpoint(bank, &["accounts"])?;
        let list = send(bank, data_request(session, url)?, "/v1/accounts").await;
        let list: wire::AccountList = self.confirm_ended(session, list).await?;
        wire::accounts(bank.id(), list)
    }

    async fn balances(
        &self,
        session: BankSession<'_>,
        account: &AccountRef,
    ) -> Result<Vec<Balance>, AdapterError> {
        let bank = session.bank;
        let url = endpoint(bank, &["accounts", account.segment()?, "balances"])?;
        let response = send(
            bank,
            data_request(session, url)?,
            "/v1/accounts/{account-id}/balances",
        )
        .await;
        let response: wire::BalancesResponse = self.confirm_ended(session, response).await?;
        wire::balances(&account.account_id, response.balances, "balances")
    }

    async fn transactions(
        &self,
        session: BankSession<'_>,
        history: History<'_>,
    ) -> Result<Vec<Transaction>, AdapterError> {
        let bank = session.bank;
        let mut url = endpoint(
            bank,
            &["accounts", history.account.segment()?, "transactions"],
        )?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("bookingStatus", "both");
            if let Some(from) = history.from {
                query.append_pair("dateFrom", &from.to_string());
            }
        }
        let mut report = wire::AccountReport::default();
        let mut pages = Pages::new(&url);
        loop {
            let response = send(
                bank,
                data_request(session, url.clone())?,
                "/v1/accounts/{account-id}/transactions",
            )
            .await;
            let response: wire::TransactionsResponse =
                self.confirm_ended(session, response).await?;
            let page = response.transactions.unwrap_or_default();
            let next = page
                .next_href()
                .map(|href| next_page(&url, href))
                .transpose()?;
            report.extend(page);
            match next {
                None => {
                    let transactions = wire::transactions(&history.account.account_id, report)?;
                    return Ok(within(transactions, history.from));
                }
                Some(next) => url = pages.admit(next)?,
            }
        }
    }
}

/// `<api_base_url>/v1/<segments…>`, each segment percent-encoded.
fn endpoint(bank: &Bank, segments: &[&str]) -> Result<url::Url, AdapterError> {
    let bad_base = || AdapterError::Refused("bank manifest has a bad api_base_url".into());
    let mut url = url::Url::parse(&bank.url("/v1")).map_err(|_| bad_base())?;
    url.path_segments_mut()
        .map_err(|_| bad_base())?
        .extend(segments);
    Ok(url)
}

/// The next page's URL, which must stay on the bank's origin (it gets the bearer token).
fn next_page(current: &url::Url, href: &str) -> Result<url::Url, AdapterError> {
    let next = current
        .join(href)
        .map_err(|_| AdapterError::Decode("transaction report has a bad next link".into()))?;
    if next.origin() != current.origin() {
        return Err(AdapterError::Decode(
            "transaction report links to another origin".into(),
        ));
    }
    Ok(next)
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A GET with the headers every account information call needs.
fn data_request(
    session: BankSession<'_>,
    url: url::Url,
) -> Result<reqwest::RequestBuilder, AdapterError> {
    let consent_id = session.bank_consent_id.ok_or_else(|| {
        AdapterError::Refused("a Berlin Group data call needs the bank's consent id".into())
    })?;
    let bank = session.bank;
    let request = bank
        .http
        .get(url.clone())
        .header(X_REQUEST_ID, request_id())
        .header(CONSENT_ID, consent_id)
        .header(ACCEPT, HeaderValue::from_static("application/json"));
    // Bearer, or DPoP with a proof when the manifest says `dpop = true`.
    crate::adapters::bank_oauth::dpop::authorize(bank, request, "GET", &url, session.access_token)
}

/// Sends a request through the bank's outbound stack (whose classification hook is
/// [`Messages`]) and decodes the 2xx JSON answer into `T`; `route` is the template of its
/// path at the bank.
async fn send<T: DeserializeOwned>(
    bank: &Bank,
    request: reqwest::RequestBuilder,
    route: &'static str,
) -> Result<T, AdapterError> {
    let body = bank.fetch(request, route, Messages).await?;
    decode(&body)
}

/// The classification hook of Berlin Group answers, by their `tppMessages`: an error body
/// with 200 ([`error_codes`]), and a 401 or 403 whose codes say the consent ended
/// (`CONSENT_EXPIRED`; `CONSENT_INVALID`, confirmed by the profile against the consent's
/// status).
pub struct Messages;

impl Classify for Messages {
    fn error_in_body(&self, body: &[u8]) -> Option<String> {
        error_codes(body)
    }

    fn consent_ended(&self, status: u16, body: &[u8]) -> Option<ConsentEnd> {
        if !matches!(status, 401 | 403) {
            return None;
        }
        let codes = wire::error_in_body(body)?;
        if codes.iter().any(|code| code == "CONSENT_EXPIRED") {
            Some(ConsentEnd::Expired)
        } else if codes.iter().any(|code| code == "CONSENT_INVALID") {
            Some(ConsentEnd::Invalid)
        } else {
            None
        }
    }
}

/// The classification hook: the error codes of a success answer that is an error body.
pub fn error_codes(body: &[u8]) -> Option<String> {
    wire::error_in_body(body).map(|codes| codes.join(", "))
}

/// Decodes a 2xx body: an error body (banks send some with 200) or a body not of type `T` is
/// [`AdapterError::Decode`].
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdapterError> {
    if let Some(codes) = error_codes(body) {
        return Err(AdapterError::ErrorBody(codes));
    }
    let warnings = wire::message_codes(body);
    if !warnings.is_empty() {
        tracing::info!(codes = ?warnings, "bank attached tppMessages");
    }
    serde_json::from_slice(body).map_err(|error| AdapterError::Decode(error.to_string()))
}
