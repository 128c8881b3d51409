//! The `mapping` profile: a declarative adapter for banks with a proprietary API. The
//! manifest's `[mapping]` section ([`rules::MappingSpec`]) names the endpoints and maps each
//! canonical field to a JSON pointer with small transforms; it is compiled once, when the
//! manifest is loaded ([`Mapping::compile`]), and applied to every answer by [`wire`].
//!
//! The consent dance is OAuth alone (no bank-side consent resource): the authorization
//! request asks for the bank's scopes that `[mapping.scopes]` lists for the canonical scopes of
//! the consent. Data calls carry the bearer token, the mapping's constant headers and, if it
//! names one, a fresh request id header. Lists are followed through the `next` pointer (on the
//! bank's own origin only); transactions are asked for from a day with `from_param` and
//! filtered to it again here.

pub mod payments;
pub mod rules;
pub mod wire;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderValue};
use serde_json::value::RawValue;

use super::common::{
    Pages, TransactionIds, account_ref, currency, follow_link, request_id, within,
};
use super::{
    AccountRef, AdapterError, Bank, BankAccount, BankConsent, BankSession, ConsentRequest, History,
    Profile,
};
use crate::model::{Balance, Scope, Transaction};
use rules::{Compiled, CompiledMapping, Endpoint, Kind, MappingSpec, RuleError};

/// The profile's manifest name.
pub const NAME: &str = "mapping";

/// A compiled mapping: the profile of one bank with a proprietary API.
#[derive(Debug, Clone)]
pub struct Mapping {
    rules: Arc<CompiledMapping>,
}

impl Mapping {
    /// Compiles a `[mapping]` section; the error names the rule that does not compile.
    pub fn compile(spec: &MappingSpec) -> Result<Mapping, RuleError> {
        Ok(Mapping {
            rules: Arc::new(rules::compile(spec)?),
        })
    }

    /// The compiled rules.
    pub fn rules(&self) -> &CompiledMapping {
        &self.rules
    }

    fn get(&self, session: BankSession<'_>, url: url::Url) -> reqwest::RequestBuilder {
        let mut request = session
            .request(Method::GET, url)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &self.rules.headers {
            request = request.header(name, value);
        }
        if let Some(name) = &self.rules.request_id_header {
            request = request.header(name, request_id());
        }
        request
    }

    /// Fetches `first` and every next page, handing each page's payload to `take`.
    async fn paged(
        &self,
        session: BankSession<'_>,
        endpoint: &Endpoint,
        first: url::Url,
        mut take: impl FnMut(&RawValue) -> Result<(), AdapterError>,
    ) -> Result<(), AdapterError> {
        let bank = session.bank;
        let mut pages = Pages::new(&first);
        let mut url = first;
        loop {
            let rules = self.rules.clone();
            let body = bank
                .fetch(
                    self.get(session, url.clone()),
                    endpoint.route(),
                    move |body: &[u8]| {
                        let pointer = rules.error_pointer.as_ref()?;
                        wire::error_in_body(pointer, body)
                    },
                )
                .await?;
            let page = wire::parse(&body)?;
            take(page)?;
            let next = endpoint
                .next
                .as_ref()
                .and_then(|pointer| wire::next_link(page, pointer));
            match next {
                None => return Ok(()),
                Some(href) => {
                    url = pages.admit(follow_link(&bank.manifest.api_base_url, &href)?)?;
                }
            }
        }
    }
}

/// The URL of `endpoint` for the account `bank_ref` (if the endpoint is per account).
fn endpoint_url(
    bank: &Bank,
    endpoint: &Endpoint,
    bank_ref: Option<&str>,
) -> Result<url::Url, AdapterError> {
    let mut url = mapped_url(bank, &endpoint.segments, bank_ref)?;
    url.set_query(endpoint.query.as_deref());
    Ok(url)
}

/// A URL of the bank's API from a mapping's path: its literal segments, and `value` (a
/// reference safe in a path) in place of its one placeholder.
fn mapped_url(
    bank: &Bank,
    segments: &[Option<String>],
    value: Option<&str>,
) -> Result<url::Url, AdapterError> {
    let bad_base = || AdapterError::Refused("bank manifest has a bad api_base_url".into());
    let mut url = url::Url::parse(&bank.manifest.api_base_url).map_err(|_| bad_base())?;
    {
        let mut path = url.path_segments_mut().map_err(|_| bad_base())?;
        path.pop_if_empty();
        for segment in segments {
            match segment {
                Some(literal) => path.push(literal),
                None => path.push(account_ref(value.unwrap_or_default())?),
            };
        }
    }
    Ok(url)
}

#[async_trait]
impl Profile for Mapping {
    fn name(&self) -> &'static str {
        NAME
    }

    fn scopes(&self) -> Vec<Scope> {
        let mut scopes = vec![Scope::Accounts];
        if self.rules.balances.is_some() {
            scopes.push(Scope::Balances);
        }
        if self.rules.transactions.is_some() {
            scopes.push(Scope::Transactions);
        }
        scopes.push(Scope::Identity);
        scopes
    }

    async fn create_consent(
        &self,
        _bank: &Bank,
        request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError> {
        request.require_scopes()?;
        let offered = self.scopes();
        let mut oauth_scopes: Vec<String> = Vec::new();
        for scope in &request.scopes {
            if !offered.contains(scope) {
                return Err(AdapterError::Refused(format!(
                    "the bank's mapping offers no {scope}"
                )));
            }
            // Identity is read from the account list: it needs the accounts scope.
            let bank_scopes = self
                .rules
                .scopes
                .get(scope)
                .or_else(|| {
                    (*scope == Scope::Identity)
                        .then(|| self.rules.scopes.get(&Scope::Accounts))
                        .flatten()
                })
                .into_iter()
                .flatten();
            for bank_scope in bank_scopes {
                if !oauth_scopes.contains(bank_scope) {
                    oauth_scopes.push(bank_scope.clone());
                }
            }
        }
        Ok(BankConsent {
            id: None,
            oauth_scopes,
            authorization_params: Vec::new(),
        })
    }

    async fn accounts(&self, session: BankSession<'_>) -> Result<Vec<BankAccount>, AdapterError> {
        let bank = session.bank;
        let endpoint = &self.rules.accounts;
        let mut accounts = Vec::new();
        let first = endpoint_url(bank, endpoint, None)?;
        self.paged(session, endpoint, first, |page| {
            accounts.extend(wire::accounts(endpoint, bank.id(), page)?);
            Ok(())
        })
        .await?;
        Ok(accounts)
    }

    async fn balances(
        &self,
        session: BankSession<'_>,
        account: &AccountRef,
    ) -> Result<Vec<Balance>, AdapterError> {
        let endpoint =
            self.rules.balances.as_ref().ok_or_else(|| {
                AdapterError::Refused("the bank's mapping has no balances".into())
            })?;
        let mut balances = Vec::new();
        let first = endpoint_url(session.bank, endpoint, Some(&account.bank_ref))?;
        self.paged(session, endpoint, first, |page| {
            balances.extend(wire::balances(endpoint, &account.account_id, page)?);
            Ok(())
        })
        .await?;
        Ok(balances)
    }

    fn payments(&self) -> Option<&dyn super::PaymentInitiation> {
        self.rules
            .payments
            .is_some()
            .then_some(self as &dyn super::PaymentInitiation)
    }

    async fn transactions(
        &self,
        session: BankSession<'_>,
        history: History<'_>,
    ) -> Result<Vec<Transaction>, AdapterError> {
        let endpoint = self.rules.transactions.as_ref().ok_or_else(|| {
            AdapterError::Refused("the bank's mapping has no transactions".into())
        })?;
        let mut first = endpoint_url(session.bank, endpoint, Some(&history.account.bank_ref))?;
        if let (Some(param), Some(from)) = (&endpoint.from_param, history.from) {
            let day = rules::format_day(from, &endpoint.from_format).ok_or_else(|| {
                AdapterError::Refused("the mapping's from_format cannot write a day".into())
            })?;
            first.query_pairs_mut().append_pair(param, &day);
        }
        let mut transactions = Vec::new();
        let mut ids = TransactionIds::default();
        self.paged(session, endpoint, first, |page| {
            transactions.extend(wire::transactions(
                endpoint,
                &history.account.account_id,
                page,
                &mut ids,
            )?);
            Ok(())
        })
        .await?;
        Ok(within(transactions, history.from))
    }
}

/// Checks at compile time ([`rules`]) that a constant converts like a value the bank could
/// send ([`wire`]).
fn check_constant(compiled: &Compiled, value: &str) -> Result<(), String> {
    let item: Box<RawValue> =
        RawValue::from_string("{}".into()).map_err(|_| "internal: empty object".to_owned())?;
    let converted = match compiled.kind {
        Kind::Text => compiled.text(&item).map(|_| ()),
        Kind::Currency => {
            let text = compiled.text(&item)?;
            currency(text.as_deref()).map(|_| ())
        }
        Kind::Amount => Err("an amount cannot be a constant".into()),
        Kind::Date => compiled.date(&item).map(|_| ()),
        Kind::DateTime => compiled.date_time(&item).map(|_| ()),
        Kind::Bool => compiled.boolean(&item).map(|_| ()),
        Kind::Enum(allowed) => match compiled.text(&item)? {
            Some(code) if allowed.contains(&code.as_str()) => Ok(()),
            _ => Err(format!(
                "value {value:?} does not map to one of {}",
                allowed.join(", ")
            )),
        },
    };
    converted.map_err(|message| format!("value {value:?}: {message}"))
}
