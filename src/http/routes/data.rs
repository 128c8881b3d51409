//! Data routes: accounts, balances, transactions in the canonical model.
//!
//! They run below the consent and policy layers: a handler here only ever sees an authorised,
//! in-scope consent and the policy's obligations, and applies those before returning.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{Duration, Utc};
use serde::Serialize;

use crate::adapters::{Adapter, BankSession};
use crate::app::App;
use crate::consent::Consent;
use crate::error::Error;
use crate::http::audit::Released;
use crate::model::Scope;
use crate::oauth::bank_client::BankGrant;
use crate::policy::{IdentityRecord, Obligations};
use crate::store::AccountRef;

/// What a data path asks for: parsed once, by the consent layer, and passed down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPath {
    pub scope: Scope,
    pub account_id: Option<String>,
}

/// Parses a data path, or `None` if it is not one.
pub fn parse_path(path: &str) -> Option<DataPath> {
    if path == "/v1/identity" {
        return Some(DataPath {
            scope: Scope::Identity,
            account_id: None,
        });
    }
    let rest = path.strip_prefix("/v1/accounts")?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (scope, account_id) = match segments.as_slice() {
        [] => (Scope::Accounts, None),
        [id] => (Scope::Accounts, Some(*id)),
        [id, "balances"] => (Scope::Balances, Some(*id)),
        [id, "transactions"] => (Scope::Transactions, Some(*id)),
        _ => return None,
    };
    Some(DataPath {
        scope,
        account_id: account_id.map(str::to_owned),
    })
}

/// The data routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/accounts", get(accounts))
        .route("/v1/accounts/{account_id}/balances", get(balances))
        .route("/v1/accounts/{account_id}/transactions", get(transactions))
        .route("/v1/identity", get(identity))
        .with_state(app)
}

type ConsentExt = Extension<Arc<Consent>>;
type ObligationsExt = Extension<Obligations>;

async fn accounts(
    State(app): State<Arc<App>>,
    Extension(consent): ConsentExt,
    Extension(obligations): ObligationsExt,
) -> Result<Response, Error> {
    let (adapter, grant) = bank_for(&app, &consent).await?;
    let listed = list_accounts(&app, &adapter, &grant, &consent).await?;
    let records: Vec<_> = listed.into_iter().map(|listed| listed.account).collect();
    Ok(release("accounts", &records, &obligations))
}

/// Who holds each account of the consent and how it is identified (scope `identity`).
async fn identity(
    State(app): State<Arc<App>>,
    Extension(consent): ConsentExt,
    Extension(obligations): ObligationsExt,
) -> Result<Response, Error> {
    let (adapter, grant) = bank_for(&app, &consent).await?;
    let listed = list_accounts(&app, &adapter, &grant, &consent).await?;
    let records: Vec<IdentityRecord> = listed
        .iter()
        .map(|listed| IdentityRecord::from(&listed.account))
        .collect();
    Ok(release("identity", &records, &obligations))
}

async fn balances(
    State(app): State<Arc<App>>,
    Extension(consent): ConsentExt,
    Extension(obligations): ObligationsExt,
    Extension(path): Extension<DataPath>,
) -> Result<Response, Error> {
    let account_id = path.account_id.unwrap_or_default();
    let (adapter, grant) = bank_for(&app, &consent).await?;
    let bank_ref = bank_ref(&app, &adapter, &grant, &consent, &account_id).await?;
    let records = adapter
        .profile
        .balances(&adapter.bank, session(&grant), &bank_ref, &account_id)
        .await?;
    Ok(release("balances", &records, &obligations))
}

async fn transactions(
    State(app): State<Arc<App>>,
    Extension(consent): ConsentExt,
    Extension(obligations): ObligationsExt,
    Extension(path): Extension<DataPath>,
) -> Result<Response, Error> {
    let account_id = path.account_id.unwrap_or_default();
    let (adapter, grant) = bank_for(&app, &consent).await?;
    let bank_ref = bank_ref(&app, &adapter, &grant, &consent, &account_id).await?;
    // The history window (the consent's, narrowed by the policy in force): the bank is not
    // even asked for older data.
    let days = obligations.history_days;
    let from = (Utc::now() - Duration::days(i64::from(days))).date_naive();
    let mut records = adapter
        .profile
        .transactions(
            &adapter.bank,
            session(&grant),
            &bank_ref,
            &account_id,
            Some(from),
        )
        .await?;
    // And whatever the bank returns beyond the window is stripped.
    records.retain(|record| {
        record
            .booking_date
            .or(record.value_date)
            .is_none_or(|date| date >= from)
    });
    Ok(release("transactions", &records, &obligations))
}

/// Applies the obligations and builds the response, noting what was released for the audit.
fn release<T: Serialize>(key: &str, records: &[T], obligations: &Obligations) -> Response {
    let (values, fields) = obligations.apply(records);
    let n_records = u32::try_from(values.len()).unwrap_or(u32::MAX);
    let mut response = Json(serde_json::json!({ key: values })).into_response();
    response
        .extensions_mut()
        .insert(Released { fields, n_records });
    response
}

fn session(grant: &BankGrant) -> BankSession<'_> {
    BankSession {
        access_token: &grant.access_token,
        bank_consent_id: grant.bank_consent_id.as_deref(),
    }
}

/// The consent's bank and its unsealed grant.
async fn bank_for(app: &App, consent: &Consent) -> Result<(Arc<Adapter>, BankGrant), Error> {
    let adapter = app
        .banks
        .get(&consent.bank_id)
        .ok_or_else(|| Error::Internal(format!("bank {} is not loaded", consent.bank_id)))?;
    // Refreshed first when it is about to expire (single-flight, stored compare-and-set).
    let grant = app
        .bank_tokens
        .current(
            app.store.clone(),
            app.sealer.clone(),
            adapter.clone(),
            &consent.id,
        )
        .await?;
    Ok((adapter, grant))
}

/// Lists the accounts at the bank and remembers their references for later calls.
async fn list_accounts(
    app: &App,
    adapter: &Adapter,
    grant: &BankGrant,
    consent: &Consent,
) -> Result<Vec<crate::adapters::BankAccount>, Error> {
    let listed = adapter
        .profile
        .accounts(&adapter.bank, session(grant))
        .await?;
    let refs: Vec<AccountRef> = listed
        .iter()
        .map(|listed| AccountRef {
            account_id: listed.account.id.clone(),
            bank_ref: listed.bank_ref.clone(),
        })
        .collect();
    app.store.put_account_refs(&consent.id, &refs).await?;
    Ok(listed)
}

/// The bank's reference for an account of this consent (listing accounts once if unknown).
async fn bank_ref(
    app: &App,
    adapter: &Adapter,
    grant: &BankGrant,
    consent: &Consent,
    account_id: &str,
) -> Result<String, Error> {
    if let Some(known) = app.store.account_ref(&consent.id, account_id).await? {
        return Ok(known.bank_ref);
    }
    list_accounts(app, adapter, grant, consent)
        .await?
        .into_iter()
        .find(|listed| listed.account.id == account_id)
        .map(|listed| listed.bank_ref)
        .ok_or_else(|| Error::NotFound("no such account under this consent".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_scopes() {
        let scope = |path| parse_path(path).map(|parsed| parsed.scope);
        assert_eq!(scope("/v1/accounts"), Some(Scope::Accounts));
        assert_eq!(scope("/v1/accounts/acc_1"), Some(Scope::Accounts));
        assert_eq!(scope("/v1/accounts/acc_1/balances"), Some(Scope::Balances));
        assert_eq!(
            scope("/v1/accounts/acc_1/transactions"),
            Some(Scope::Transactions)
        );
        assert_eq!(scope("/v1/accounts/acc_1/owners/x"), None);
        assert_eq!(scope("/v1/audit/events"), None);
        assert_eq!(scope("/v1/identity"), Some(Scope::Identity));
        assert_eq!(scope("/v1/identity/x"), None);
        let parsed = parse_path("/v1/accounts/acc_1/balances").unwrap();
        assert_eq!(parsed.account_id.as_deref(), Some("acc_1"));
    }
}
