//! Data routes: accounts, balances, transactions and identity in the canonical model.
//!
//! They run below the access layer (`http::access`): the handler gets the request's [`Grant`]
//! (the consent, the policy's obligations, the sealed bank grant and the account's bank
//! reference, all from the one read of the request's state), fetches from the bank, applies
//! the obligations and releases through [`release`], which audits before the body leaves.
//! The routes are [`DATA_ROUTES`]: the stack serves exactly those paths with this service.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde::Serialize;
use tower::util::BoxCloneSyncService;

use crate::access::{Denial, Grant};
use crate::adapters::AccountRef;
use crate::adapters::bank_oauth::BankGrant;
use crate::adapters::{Adapter, AdapterError, BankAccount, ConsentEnd};
use crate::app::App;
use crate::error::Error;
use crate::http::access::{Released, release};
use crate::lifecycle;
use crate::model::Scope;
use crate::policy::{IdentityRecord, Obligations};

pub use crate::access::DATA_ROUTES;

/// The handler of every data route: dispatches on the grant's scope.
pub fn service(app: Arc<App>) -> BoxCloneSyncService<Request, Response, Infallible> {
    BoxCloneSyncService::new(tower::service_fn(move |request: Request| {
        let app = app.clone();
        async move {
            let Some(grant) = request.extensions().get::<Grant>().cloned() else {
                return Ok(Error::Internal("data route without a grant".into()).into_response());
            };
            let outcome = match fetch(&app, &grant).await {
                Err(Error::Bank(error)) => Err(ended_at_bank(&app, &grant, error).await),
                outcome => outcome,
            };
            Ok(release(app.store.as_ref(), &app.auditor, &grant, outcome).await)
        }
    }))
}

/// A bank failure, and when the bank said the consent ended on its side, the consent revoked
/// with it (compare-and-set: of every request and instance that noticed, one audits it and
/// sends `consent.revoked` with the reason). The request is answered
/// `consent-revoked-by-bank`, or with the revocation's own failure.
async fn ended_at_bank(app: &App, grant: &Grant, error: AdapterError) -> Error {
    let AdapterError::ConsentEnded(end) = error.root() else {
        return Error::Bank(error);
    };
    if *end == ConsentEnd::Invalid {
        return Error::Bank(error);
    }
    let consent = &grant.consent;
    let actor = format!("bank:{}", consent.bank_id);
    match lifecycle::revoke_by_bank(&app.lifecycle(), consent, &actor, end.reason()).await {
        Ok(_) => Error::Bank(error),
        Err(failure) => failure.into(),
    }
}

/// Fetches what the grant allows from the bank and applies the obligations. When the bank
/// refuses a bank token bankgate holds for alive (401), it may have revoked it: the grant is
/// refreshed once and the call made again (a bank that ended the grant answers the refresh
/// with `invalid_grant`: [`AdapterError::ConsentEnded`]).
async fn fetch(app: &App, grant: &Grant) -> Result<Released, Error> {
    let (adapter, bank_grant) = bank_for(app, grant).await?;
    match fetch_with(app, grant, &adapter, &bank_grant).await {
        Err(Error::Bank(error)) if matches!(error.root(), AdapterError::Status { status: 401 }) => {
            let renewed = app
                .bank_tokens
                .renewed(adapter.clone(), &bank_grant, &grant.consent.id)
                .await?;
            match renewed {
                Some(renewed) => fetch_with(app, grant, &adapter, &renewed).await,
                None => Err(Error::Bank(error)),
            }
        }
        outcome => outcome,
    }
}

/// [`fetch`] with the bank grant at hand.
async fn fetch_with(
    app: &App,
    grant: &Grant,
    adapter: &Arc<Adapter>,
    bank_grant: &BankGrant,
) -> Result<Released, Error> {
    let obligations = &grant.obligations;
    match grant.scope {
        Scope::Accounts => {
            let listed = list_accounts(app, adapter, bank_grant, grant).await?;
            let records: Vec<_> = listed.into_iter().map(|listed| listed.account).collect();
            Ok(released("accounts", &records, obligations))
        }
        // Who holds each account of the consent and how it is identified.
        Scope::Identity => {
            let listed = list_accounts(app, adapter, bank_grant, grant).await?;
            let records: Vec<IdentityRecord> = listed
                .iter()
                .map(|listed| IdentityRecord::from(&listed.account))
                .collect();
            Ok(released("identity", &records, obligations))
        }
        Scope::Balances => {
            let account = account_ref(app, adapter, bank_grant, grant).await?;
            let records = adapter
                .profile
                .balances(bank_grant.session(&adapter.bank), &account)
                .await?;
            Ok(released("balances", &records, obligations))
        }
        Scope::Transactions => {
            let account = account_ref(app, adapter, bank_grant, grant).await?;
            // The history window (the consent's, narrowed by the policy in force): the bank is
            // not even asked for older data.
            let days = obligations.history_days;
            let from = (Utc::now() - Duration::days(i64::from(days))).date_naive();
            // And whatever the bank returns beyond the window is stripped.
            let records = adapter
                .transactions_from(bank_grant.session(&adapter.bank), &account, from)
                .await?;
            Ok(released("transactions", &records, obligations))
        }
    }
}

/// Applies the obligations: the body under `key` and what it released.
fn released<T: Serialize>(key: &str, records: &[T], obligations: &Obligations) -> Released {
    let (values, fields) = obligations.apply(records);
    let n_records = u32::try_from(values.len()).unwrap_or(u32::MAX);
    Released {
        body: serde_json::json!({ key: values }),
        fields,
        n_records,
    }
}

/// The consent's bank and its unsealed grant (refreshed first when about to expire:
/// single-flight, stored compare-and-set).
async fn bank_for(app: &App, grant: &Grant) -> Result<(Arc<Adapter>, BankGrant), Error> {
    let bank_id = &grant.consent.bank_id;
    let adapter = app
        .banks
        .get(bank_id)
        .ok_or_else(|| Error::Internal(format!("bank {bank_id} is not loaded")))?;
    let bank_grant = app
        .bank_tokens
        .current(adapter.clone(), grant.bank_grant.clone())
        .await?;
    Ok((adapter, bank_grant))
}

/// Lists the accounts at the bank under the ids the consent's platform sees, and remembers
/// their references for later calls.
async fn list_accounts(
    app: &App,
    adapter: &Adapter,
    bank_grant: &BankGrant,
    grant: &Grant,
) -> Result<Vec<BankAccount>, Error> {
    let listed = adapter
        .accounts_for(
            bank_grant.session(&adapter.bank),
            &app.sealer,
            &grant.consent.client_id,
        )
        .await?;
    let refs: Vec<AccountRef> = listed.iter().map(BankAccount::account_ref).collect();
    app.store.put_account_refs(&grant.consent.id, &refs).await?;
    Ok(listed)
}

/// The account the path names and the bank's reference for it: from the request's state, or
/// by listing the consent's accounts once if the consent has not seen it yet. An account the
/// consent does not hold is a denial.
async fn account_ref(
    app: &App,
    adapter: &Adapter,
    bank_grant: &BankGrant,
    grant: &Grant,
) -> Result<AccountRef, Error> {
    let account_id = grant.account_id.as_deref().unwrap_or_default();
    if let Some(known) = &grant.bank_ref {
        return Ok(AccountRef {
            account_id: account_id.to_owned(),
            bank_ref: known.clone(),
        });
    }
    list_accounts(app, adapter, bank_grant, grant)
        .await?
        .iter()
        .find(|listed| listed.account.id == account_id)
        .map(BankAccount::account_ref)
        .ok_or(Error::Denied(Denial::AccountNotInConsent))
}
