//! Client keys by reference: the JWK Set a client publishes at its `jwks_uri`, fetched through
//! the egress policy (public addresses only, no redirects), cached, and fetched again when an
//! assertion names a `kid` the cached set lacks — so a client rotates its keys by publishing
//! the new set, without re-registering.
//!
//! Bounded for anyone who knows a client id: at most one fetch per client at a time (the rest
//! wait for it); a `kid` the cached set lacks brings a fetch at most once per
//! [`MIN_REFRESH_INTERVAL`] whatever the `kid`s asked for, and so does a failed fetch; each
//! fetch reads at most [`MAX_JWKS_BYTES`] within [`FETCH_TIMEOUT`]; entries exist only for
//! registered clients that have a `jwks_uri`. A set is used for at most [`MAX_AGE`]; a key the
//! client removed stops verifying within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::egress::Egress;
use crate::jose::KeySet;
use crate::oauth::Client;

/// The longest a fetched set is used before it is fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// The shortest time between two fetches of one client's set (an unknown `kid` does not
/// bring another fetch sooner).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// How long a fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest JWK Set read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Why a client's keys are not available; the text is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("the client registered no keys (jwks or jwks_uri)")]
    None,
    #[error("the client's registered jwks is not a usable JWK Set: {0}")]
    Registered(String),
    #[error("the client's jwks_uri could not be fetched: {0}")]
    Fetch(String),
}

/// One client's cached set.
#[derive(Default)]
struct Cached {
    uri: String,
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    /// When the last fetch (successful or not) started.
    attempted_at: Option<Instant>,
    /// When the last fetch for a `kid` the cached set lacked started.
    missed_at: Option<Instant>,
    last_error: Option<KeysError>,
}

/// The keys of every client, from registration (`jwks`) or fetched (`jwks_uri`).
pub struct ClientKeys {
    http: reqwest::Client,
    max_age: Duration,
    min_refresh_interval: Duration,
    /// Per client id: its cache entry, locked while it is fetched (single flight).
    cache: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cached>>>>,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeys").finish_non_exhaustive()
    }
}

impl ClientKeys {
    /// Fetches `jwks_uri`s where `egress` allows.
    pub fn new(egress: &Egress) -> Result<ClientKeys, reqwest::Error> {
        Ok(ClientKeys {
            http: egress.client_builder().timeout(FETCH_TIMEOUT).build()?,
            max_age: MAX_AGE,
            min_refresh_interval: MIN_REFRESH_INTERVAL,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The same cache with other intervals (tests: refresh at once, or never).
    #[cfg(test)]
    fn with_intervals(mut self, max_age: Duration, min_refresh_interval: Duration) -> Self {
        self.max_age = max_age;
        self.min_refresh_interval = min_refresh_interval;
        self
    }

    /// The keys that may verify `client`'s assertion naming `kid`: its registered set, or the
    /// set at its `jwks_uri` (fetched when there is none cached, when it is older than
    /// [`MAX_AGE`], or when it lacks `kid` — at most once per [`MIN_REFRESH_INTERVAL`]).
    pub async fn for_client(
        &self,
        client: &Client,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, KeysError> {
        if let Some(jwks) = &client.jwks {
            return KeySet::parse(jwks)
                .map(Arc::new)
                .map_err(|error| KeysError::Registered(error.to_string()));
        }
        let Some(uri) = &client.jwks_uri else {
            return Err(KeysError::None);
        };
        let entry = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(client.client_id.clone())
            .or_default()
            .clone();
        let mut cached = entry.lock().await;
        if cached.uri != *uri {
            // Registered anew with another URI: nothing cached applies.
            *cached = Cached {
                uri: uri.clone(),
                ..Cached::default()
            };
        }
        let now = Instant::now();
        let fresh = cached
            .fetched_at
            .is_some_and(|at| now.duration_since(at) < self.max_age);
        let has_kid = |keys: &KeySet| keys.find(kid).is_some();
        if let Some(keys) = &cached.keys
            && fresh
            && has_kid(keys)
        {
            return Ok(keys.clone());
        }
        let recently = |at: Option<Instant>| {
            at.is_some_and(|at| now.duration_since(at) < self.min_refresh_interval)
        };
        // A fresh set without the kid: the client may have rotated (fetch once in a while);
        // no usable set: fetch, unless the last attempt failed a moment ago.
        let missing_kid = cached.keys.is_some() && fresh;
        let may_fetch = if missing_kid {
            !recently(cached.missed_at)
        } else {
            cached.last_error.is_none() || !recently(cached.attempted_at)
        };
        if may_fetch {
            cached.attempted_at = Some(now);
            if missing_kid {
                cached.missed_at = Some(now);
            }
            match self.fetch(uri).await {
                Ok(keys) => {
                    cached.keys = Some(Arc::new(keys));
                    cached.fetched_at = Some(now);
                    cached.last_error = None;
                }
                Err(error) => {
                    tracing::info!(client = %client.client_id, %error, "jwks_uri fetch failed");
                    cached.last_error = Some(error);
                }
            }
        }
        // A fresh set that lacks the kid still answers: the caller names the unknown kid.
        let fresh = cached
            .fetched_at
            .is_some_and(|at| now.duration_since(at) < self.max_age);
        match (&cached.keys, &cached.last_error) {
            (Some(keys), _) if fresh => Ok(keys.clone()),
            (_, Some(error)) => Err(error.clone()),
            _ => Err(KeysError::Fetch(
                "the last fetch failed; retried shortly".into(),
            )),
        }
    }

    async fn fetch(&self, uri: &str) -> Result<KeySet, KeysError> {
        let failed = |what: &str| KeysError::Fetch(what.to_owned());
        let mut response = self
            .http
            .get(uri)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    failed("no answer in time")
                } else {
                    failed("unreachable, or not at a public address")
                }
            })?;
        if !response.status().is_success() {
            return Err(KeysError::Fetch(format!(
                "answered HTTP {}",
                response.status().as_u16()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| failed("the answer broke off"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(failed("the answer is larger than 64 KiB"));
            }
            body.extend_from_slice(&chunk);
        }
        let jwks: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| failed("the answer is not JSON"))?;
        KeySet::parse(&jwks)
            .map_err(|error| KeysError::Fetch(format!("not a usable JWK Set: {error}")))
    }
}

#[cfg(test)]
mod tests;
