//! The bank tokens of a consent, refreshed when they are about to expire: single-flight within
//! an instance (concurrent requests of one consent share one refresh call) and stored with a
//! compare-and-set across instances (of two instances refreshing at once, one stores its
//! tokens and the other adopts them).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::BankGrant;
use crate::adapters::{Adapter, AdapterError, Bank, ConsentEnd, Grants, StoredGrant};
use crate::crypto::{CryptoError, Sealer};
use crate::store_error::StoreError;

/// A bank token is refreshed before use when less than its refresh margin is left:
/// `min(REFRESH_MARGIN_SECS, lifetime / REFRESH_MARGIN_SHARE)`, i.e. 30 s, or 10 % of its
/// lifetime for a token that lives less than 300 s ([`refresh_margin`]).
pub const REFRESH_MARGIN_SECS: i64 = 30;
/// The margin is at most this fraction (1/10) of the token's lifetime, so that a short-lived
/// token (say 20 s) is not refreshed on every call.
pub const REFRESH_MARGIN_SHARE: i32 = 10;

/// How long before its expiry a bank token of `lifetime` is refreshed: 30 s, but at most a
/// tenth of its lifetime; 30 s when the lifetime is unknown (a grant stored without its issue
/// time).
pub fn refresh_margin(lifetime: Option<Duration>) -> Duration {
    let most = Duration::seconds(REFRESH_MARGIN_SECS);
    match lifetime {
        Some(lifetime) if lifetime > Duration::zero() => {
            std::cmp::min(most, lifetime / REFRESH_MARGIN_SHARE)
        }
        _ => most,
    }
}

/// Why a consent's bank tokens are not at hand.
#[derive(Debug, thiserror::Error)]
pub enum BankTokenError {
    #[error("bank error")]
    Bank(#[from] AdapterError),
    #[error("store error")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Sealing(#[from] CryptoError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Runs at most one future per key at a time; callers that arrive while it runs share its
/// result.
pub struct SingleFlight<V: Clone> {
    flights: Mutex<HashMap<String, Shared<BoxFuture<'static, V>>>>,
}

impl<V: Clone> Default for SingleFlight<V> {
    fn default() -> Self {
        SingleFlight {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> SingleFlight<V> {
    /// The result of the flight for `key`: the running one, or a new one made by `make`.
    pub async fn run<F>(&self, key: &str, make: impl FnOnce() -> F) -> V
    where
        F: Future<Output = V> + Send + 'static,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(key) {
                Some(flight) if flight.peek().is_none() => flight.clone(),
                _ => {
                    let flight = make().boxed().shared();
                    flights.insert(key.to_owned(), flight.clone());
                    flight
                }
            }
        };
        let value = flight.clone().await;
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights
            .get(key)
            .is_some_and(|current| current.ptr_eq(&flight))
        {
            flights.remove(key);
        }
        value
    }
}

/// Why a shared refresh failed: its text, and whether the bank ended the consent.
#[derive(Debug, Clone)]
struct RefreshFailed {
    message: String,
    ended: Option<ConsentEnd>,
}

impl RefreshFailed {
    fn of(error: &BankTokenError) -> RefreshFailed {
        let ended = match error {
            BankTokenError::Bank(error) => match error.root() {
                AdapterError::ConsentEnded(end) => Some(*end),
                _ => None,
            },
            _ => None,
        };
        RefreshFailed {
            message: error.to_string(),
            ended,
        }
    }

    /// The error each caller gets: the consent ended at `bank`, or a refusal naming the failure.
    fn into_error(self, bank: &str) -> BankTokenError {
        let error = match self.ended {
            Some(end) => AdapterError::ConsentEnded(end),
            None => AdapterError::Refused(format!(
                "refreshing the bank token failed: {}",
                self.message
            )),
        };
        BankTokenError::Bank(error.at(bank))
    }
}

/// The consents' bank tokens: unsealed from the store, refreshed (and stored again) when due,
/// one refresh per consent at a time on this instance.
pub struct BankTokens {
    grants: Arc<dyn Grants>,
    sealer: Arc<Sealer>,
    refreshes: SingleFlight<Result<BankGrant, RefreshFailed>>,
}

impl BankTokens {
    /// Bank tokens kept sealed with `sealer` in `grants`.
    pub fn new(grants: Arc<dyn Grants>, sealer: Arc<Sealer>) -> Self {
        BankTokens {
            grants,
            sealer,
            refreshes: SingleFlight::default(),
        }
    }

    /// The consent's bank grant (`stored`, as the request's state read it), refreshed first
    /// if less than its [`refresh_margin`] is left and the bank gave a refresh token. A bank
    /// that no longer honours the grant answers the refresh with `invalid_grant`:
    /// [`AdapterError::ConsentEnded`].
    pub async fn current(
        &self,
        bank: Arc<Adapter>,
        stored: Option<StoredGrant>,
    ) -> Result<BankGrant, BankTokenError> {
        let stored = stored.ok_or_else(|| {
            BankTokenError::Internal("authorised consent without a bank grant".into())
        })?;
        let grant = open(&self.sealer, &stored.consent_id, &stored)?;
        if !needs_refresh(&grant, Utc::now()) {
            return Ok(grant);
        }
        self.refresh_shared(bank, stored, grant).await
    }

    /// The consent's bank grant refreshed now, whatever its expiry says: after the bank
    /// refused its access token (401), which it may have revoked before its time. `None` when
    /// the bank gave no refresh token. The grant is read from the store again first: when
    /// another request refreshed it meanwhile, that grant is the answer.
    pub async fn renewed(
        &self,
        bank: Arc<Adapter>,
        refused: &BankGrant,
        consent_id: &str,
    ) -> Result<Option<BankGrant>, BankTokenError> {
        let stored = self.grants.grant(consent_id).await?.ok_or_else(|| {
            BankTokenError::Internal("authorised consent without a bank grant".into())
        })?;
        let grant = open(&self.sealer, consent_id, &stored)?;
        if grant.access_token != refused.access_token {
            return Ok(Some(grant));
        }
        if grant.refresh_token.is_none() {
            return Ok(None);
        }
        self.refresh_shared(bank, stored, grant).await.map(Some)
    }

    /// One refresh per consent at a time on this instance; callers that arrive while it runs
    /// share its outcome.
    async fn refresh_shared(
        &self,
        bank: Arc<Adapter>,
        stored: StoredGrant,
        grant: BankGrant,
    ) -> Result<BankGrant, BankTokenError> {
        let (store, sealer) = (self.grants.clone(), self.sealer.clone());
        let consent_id = stored.consent_id.clone();
        let bank_id = bank.bank.id().to_owned();
        let id = consent_id.clone();
        self.refreshes
            .run(&consent_id, move || async move {
                refresh(store.as_ref(), &sealer, &bank.bank, &id, stored, grant)
                    .await
                    .map_err(|error| RefreshFailed::of(&error))
            })
            .await
            .map_err(|failed| failed.into_error(&bank_id))
    }
}

/// Whether `grant` is refreshed before use at `now` ([`refresh_margin`]).
fn needs_refresh(grant: &BankGrant, now: DateTime<Utc>) -> bool {
    let Some(expires_at) = grant.expires_at else {
        return false;
    };
    let lifetime = grant.issued_at.map(|issued_at| expires_at - issued_at);
    grant.refresh_token.is_some() && expires_at - refresh_margin(lifetime) <= now
}

fn open(
    sealer: &Sealer,
    consent_id: &str,
    stored: &StoredGrant,
) -> Result<BankGrant, BankTokenError> {
    let plaintext = sealer.open(consent_id.as_bytes(), &stored.sealed)?;
    serde_json::from_slice(&plaintext)
        .map_err(|_| BankTokenError::Internal("bank grant does not decode".into()))
}

/// Refreshes at the bank and stores the result if nobody else did meanwhile; otherwise adopts
/// what the other instance stored.
async fn refresh(
    store: &dyn Grants,
    sealer: &Sealer,
    bank: &Bank,
    consent_id: &str,
    stored: StoredGrant,
    grant: BankGrant,
) -> Result<BankGrant, BankTokenError> {
    let refreshed = super::refresh(bank, &grant).await?;
    let plaintext = serde_json::to_vec(&refreshed)
        .map_err(|error| BankTokenError::Internal(error.to_string()))?;
    let replacement = StoredGrant {
        consent_id: consent_id.to_owned(),
        sealed: sealer.seal(consent_id.as_bytes(), &plaintext)?,
        updated_at: Utc::now(),
    };
    if store.replace_grant(&stored, &replacement).await? {
        return Ok(refreshed);
    }
    // Another instance refreshed first: its tokens are the ones the bank keeps.
    let current = store
        .grant(consent_id)
        .await?
        .ok_or_else(|| BankTokenError::Internal("the bank grant disappeared".into()))?;
    open(sealer, consent_id, &current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_flight() {
        let flights: Arc<SingleFlight<usize>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = released.shared();
        let callers = (0..10).map(|_| {
            let flights = flights.clone();
            let calls = calls.clone();
            let released = released.clone();
            async move {
                flights
                    .run("consent-1", move || async move {
                        let _ = released.await;
                        calls.fetch_add(1, Ordering::SeqCst) + 1
                    })
                    .await
            }
        });
        // `join` polls every caller once (each joins the flight) before releasing it.
        let (results, ()) =
            futures_util::future::join(futures_util::future::join_all(callers), async move {
                let _ = release.send(());
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|value| *value == 1), "{results:?}");
        // The flight is over: the next caller starts a new one.
        let again = flights.run("consent-1", || async { 7 }).await;
        assert_eq!(again, 7);
        let other = flights.run("consent-2", || async { 9 }).await;
        assert_eq!(other, 9);
    }

    /// Issue 19, item 7: the refresh margin scales with the token's lifetime.
    #[track_caller]
    fn check_margin(lifetime_secs: Option<i64>, margin_millis: i64) {
        let margin = refresh_margin(lifetime_secs.map(Duration::seconds));
        assert_eq!(margin, Duration::milliseconds(margin_millis));
    }

    #[test]
    fn the_refresh_margin_is_30_seconds_or_a_tenth_of_the_lifetime() {
        check_margin(Some(3600), 30_000);
        check_margin(Some(300), 30_000);
        check_margin(Some(299), 29_900);
        check_margin(Some(60), 6_000);
        check_margin(Some(20), 2_000);
        check_margin(Some(1), 100);
        check_margin(None, 30_000);
        check_margin(Some(0), 30_000);
        check_margin(Some(-5), 30_000);
    }

    fn grant(issued_at: Option<DateTime<Utc>>, lifetime_secs: i64) -> BankGrant {
        let issued = issued_at.unwrap_or_else(Utc::now);
        BankGrant {
            access_token: "a".into(),
            refresh_token: Some("r".into()),
            expires_at: Some(issued + Duration::seconds(lifetime_secs)),
            issued_at,
            bank_consent_id: None,
        }
    }

    #[test]
    fn a_short_lived_token_is_not_refreshed_on_every_call() {
        let issued = Utc::now();
        let short = grant(Some(issued), 20);
        // Under the flat 30 s margin it would be refreshed at once; now only in its last 2 s.
        assert!(!needs_refresh(&short, issued));
        assert!(!needs_refresh(&short, issued + Duration::seconds(17)));
        assert!(needs_refresh(&short, issued + Duration::seconds(18)));
        let hour = grant(Some(issued), 3600);
        assert!(!needs_refresh(&hour, issued + Duration::seconds(3569)));
        assert!(needs_refresh(&hour, issued + Duration::seconds(3570)));
        // A grant stored without its issue time keeps the flat 30 s.
        let legacy = grant(None, 20);
        assert!(needs_refresh(&legacy, Utc::now()));
        let no_refresh = BankGrant {
            refresh_token: None,
            ..short
        };
        assert!(!needs_refresh(&no_refresh, issued + Duration::seconds(30)));
    }
}
