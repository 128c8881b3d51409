//! The registry of live adapters: every bank this instance can reach, swappable at run time.
//!
//! Requests read it lock-free ([`Registry::get`] loads an `ArcSwap` snapshot); activating a
//! bank's new manifest version swaps in a new map, so a request in flight keeps the adapter
//! it started with and the next one gets the new one. Nothing needs a restart:
//!
//! - On the instance that accepts a registration (`PUT /v1/banks/{id}/adapter`), the new
//!   version is activated at once ([`Registry::activate`]).
//! - Every instance refreshes from the store in the background ([`Registry::refresh`], every
//!   `adapters_refresh_secs`), activating any stored version newer than the one it runs. So
//!   on several instances a registration takes effect within one refresh interval.
//!   Manifests with a `[sandbox]` section are skipped: a bundled sandbox bank runs inside the
//!   instance that started it, so only that instance's own file describes it.
//!
//! Credentials are resolved by reference only: a manifest names environment variables
//! (`client_id_env`, and `client_secret_env` for a bank that takes a secret) and [`Secrets`]
//! looks them up — the process environment in production ([`ProcessEnv`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::{Adapter, AdapterError, Manifest, ManifestError};
use crate::adapters::Banks;
use crate::egress::Egress;
use crate::store_error::StoreError;

/// Where a manifest's credential references resolve.
pub trait Secrets: Send + Sync + 'static {
    /// The value of the variable `name`, if it is set and not empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment: where credentials come from in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Secrets for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

/// Fixed values (an embedding application's own secret store, or tests, which cannot set
/// the process environment safely).
impl Secrets for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name)
            .filter(|value| !value.is_empty())
            .cloned()
    }
}

/// A bank whose stored version a refresh put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activated {
    pub bank_id: String,
    pub version: i32,
}

/// Every bank the gateway can reach, by id.
pub struct Registry {
    adapters: ArcSwap<BTreeMap<String, Arc<Adapter>>>,
    secrets: RwLock<Arc<dyn Secrets>>,
    /// Stored versions that could not be activated, so that each is logged once.
    failed: Mutex<HashMap<String, i32>>,
    /// Where the banks' HTTP clients may connect.
    egress: Egress,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("banks", &self.adapters.load().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry resolving credentials with `secrets`, whose banks connect where
    /// `egress` allows.
    pub fn new(secrets: Arc<dyn Secrets>, egress: Egress) -> Registry {
        Registry {
            adapters: ArcSwap::from_pointee(BTreeMap::new()),
            secrets: RwLock::new(secrets),
            failed: Mutex::new(HashMap::new()),
            egress,
        }
    }

    /// Where the banks' HTTP clients may connect (registrations are checked against it too).
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// Resolves credential references with `secrets` from now on.
    pub fn set_secrets(&self, secrets: Arc<dyn Secrets>) {
        *self.secrets.write().unwrap_or_else(PoisonError::into_inner) = secrets;
    }

    /// The value of a credential reference.
    pub fn secret(&self, name: &str) -> Option<String> {
        let secrets = self
            .secrets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        secrets.get(name)
    }

    /// The client id and secret a manifest's references point at; the secret only for the
    /// token endpoint authentication method that uses one (`client_secret_basic`).
    pub fn credentials(
        &self,
        manifest: &Manifest,
    ) -> Result<(String, Option<String>), ManifestError> {
        let resolve = |var: &str| {
            self.secret(var)
                .ok_or_else(|| ManifestError::MissingCredential {
                    bank: manifest.id.clone(),
                    var: var.to_owned(),
                })
        };
        Ok((
            resolve(&manifest.oauth.client_id_env)?,
            manifest.oauth.secret_env().map(resolve).transpose()?,
        ))
    }

    /// The adapter of a manifest with its credentials resolved and the endpoints it leaves out
    /// read from its issuer's metadata (not yet active).
    pub async fn build(
        &self,
        mut manifest: Manifest,
        version: i32,
    ) -> Result<Adapter, ManifestError> {
        crate::adapters::bank_oauth::discovery::complete_manifest(&mut manifest, &self.egress)
            .await?;
        let (client_id, client_secret) = self.credentials(&manifest)?;
        // bankgate's private_key_jwt and DPoP keys at the bank, if its manifest asks for them.
        let keys = crate::adapters::bank_oauth::auth::BankKeys::load(
            &manifest.oauth,
            |var| self.secret(var),
            false,
        )
        .map_err(|error| ManifestError::Invalid {
            bank: manifest.id.clone(),
            message: error.to_string(),
        })?;
        let mut adapter = Adapter::new(manifest, client_id, client_secret, version, &self.egress)?;
        adapter.bank.keys = keys;
        // bankgate's eIDAS certificates at the bank, if its manifest names them.
        adapter
            .bank
            .load_eidas(None, &|var: &str| self.secret(var))
            .map_err(|error| ManifestError::Invalid {
                bank: adapter.bank.id().to_owned(),
                message: error.to_string(),
            })?;
        Ok(adapter)
    }

    /// Reads every bank's eIDAS certificates again from their files (rotation without a
    /// restart: SIGHUP). A bank whose new files do not load keeps its certificates; the
    /// failures, by bank.
    pub fn reload_certificates(&self) -> Vec<(String, AdapterError)> {
        let mut failures = Vec::new();
        for adapter in self.iter() {
            if let Some(eidas) = &adapter.bank.eidas
                && let Err(error) = eidas.reload(&|var: &str| self.secret(var))
            {
                failures.push((adapter.bank.id().to_owned(), error));
            }
        }
        failures
    }

    /// Logs a warning for every eIDAS certificate of every bank that ends within
    /// `eidas::WARN_DAYS`; how many.
    pub fn warn_ending_certificates(&self, now: chrono::DateTime<chrono::Utc>) -> usize {
        self.iter()
            .filter_map(|adapter| adapter.bank.eidas.clone())
            .map(|eidas| eidas.warn_if_ending(now))
            .sum()
    }

    /// Puts an adapter in force for its bank (replacing the one running).
    pub fn activate(&self, adapter: Adapter) -> Arc<Adapter> {
        let adapter = Arc::new(adapter);
        let id = adapter.bank.id().to_owned();
        self.adapters.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            next.insert(id.clone(), adapter.clone());
            next
        });
        tracing::info!(bank = %id, version = adapter.version, profile = adapter.profile.name(),
            "adapter in force");
        adapter
    }

    /// Adds (or replaces) a bank: [`Registry::activate`].
    pub fn insert(&self, adapter: Adapter) {
        self.activate(adapter);
    }

    /// The adapter of a bank.
    pub fn get(&self, bank_id: &str) -> Option<Arc<Adapter>> {
        self.adapters.load().get(bank_id).cloned()
    }

    /// All banks, by id (a snapshot).
    pub fn iter(&self) -> impl Iterator<Item = Arc<Adapter>> + use<> {
        let snapshot = self.adapters.load_full();
        snapshot.values().cloned().collect::<Vec<_>>().into_iter()
    }

    /// Activates every stored manifest version newer than the one in force (manifests of
    /// bundled sandboxes excepted); returns what it activated. A version that cannot be
    /// activated (its credentials are not set here, say) is logged once and skipped: the
    /// version in force stays.
    pub async fn refresh(&self, store: &dyn Banks) -> Result<Vec<Activated>, StoreError> {
        let mut activated = Vec::new();
        for stored in store.banks().await? {
            let running = self.get(&stored.bank_id).map(|adapter| adapter.version);
            if running.is_some_and(|version| version >= stored.version) {
                continue;
            }
            let manifest = match serde_json::from_value::<Manifest>(stored.manifest.clone()) {
                Ok(manifest) if manifest.sandbox.is_some() => continue,
                Ok(manifest) => manifest,
                Err(error) => {
                    self.failed_once(&stored.bank_id, stored.version, &error.to_string());
                    continue;
                }
            };
            if manifest.id != stored.bank_id {
                self.failed_once(&stored.bank_id, stored.version, "manifest id differs");
                continue;
            }
            match self.build(manifest, stored.version).await {
                Ok(adapter) => {
                    self.activate(adapter);
                    activated.push(Activated {
                        bank_id: stored.bank_id,
                        version: stored.version,
                    });
                }
                Err(error) => self.failed_once(&stored.bank_id, stored.version, &error.to_string()),
            }
        }
        Ok(activated)
    }

    fn failed_once(&self, bank_id: &str, version: i32, error: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if failed.insert(bank_id.to_owned(), version) != Some(version) {
            tracing::warn!(bank = %bank_id, version, %error,
                "stored adapter version cannot be activated here; the version in force stays");
        }
    }

    /// Refreshes from `store` every `interval` for as long as the returned task runs.
    pub fn spawn_refresh(
        registry: Arc<Registry>,
        store: Arc<dyn Banks>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = registry.refresh(store.as_ref()).await {
                    tracing::warn!(%error, "adapter refresh from the store failed");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::Banks;
    use crate::store::memory::MemoryStore;

    fn manifest(id: &str, timeout_ms: u64) -> serde_json::Value {
        serde_json::json!({
            "id": id,
            "name": "Test Bank",
            "country": "DE",
            "profile": "stet",
            "api_base_url": "https://bank.example/psd2",
            "oauth": {
                "authorization_endpoint": "https://bank.example/authorize",
                "token_endpoint": "https://bank.example/token",
                "client_id_env": "TEST_BANK_ID",
                "client_secret_env": "TEST_BANK_SECRET",
            },
            "limits": {"timeout_ms": timeout_ms},
        })
    }

    fn secrets() -> Arc<dyn Secrets> {
        let values: BTreeMap<String, String> = [
            ("TEST_BANK_ID".to_owned(), "bankgate".to_owned()),
            ("TEST_BANK_SECRET".to_owned(), "s3cret".to_owned()),
        ]
        .into();
        Arc::new(values)
    }

    #[tokio::test]
    async fn a_refresh_activates_newer_stored_versions_only() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let store = MemoryStore::new();
        let registry = Registry::new(secrets(), Egress::new(true));
        store
            .put_bank("x-bank", &manifest("x-bank", 1000))
            .await
            .unwrap();
        let activated = registry.refresh(&store).await.unwrap();
        assert_eq!(
            activated,
            [Activated {
                bank_id: "x-bank".into(),
                version: 1
            }]
        );
        let first = registry.get("x-bank").unwrap();
        assert_eq!(first.bank.client_id, "bankgate");
        assert!(registry.refresh(&store).await.unwrap().is_empty());

        // A new version swaps in; a request holding the old adapter keeps it.
        store
            .put_bank("x-bank", &manifest("x-bank", 2000))
            .await
            .unwrap();
        registry.refresh(&store).await.unwrap();
        let second = registry.get("x-bank").unwrap();
        assert_eq!(
            (second.version, second.bank.manifest.limits.timeout_ms),
            (2, 2000)
        );
        assert_eq!(first.bank.manifest.limits.timeout_ms, 1000);

        // A version whose credentials are not set here leaves the running one in force.
        let mut unprovisioned = manifest("x-bank", 3000);
        unprovisioned["oauth"]["client_secret_env"] = "NOT_SET_HERE".into();
        store.put_bank("x-bank", &unprovisioned).await.unwrap();
        assert!(registry.refresh(&store).await.unwrap().is_empty());
        assert_eq!(registry.get("x-bank").unwrap().version, 2);

        // A bundled sandbox's manifest belongs to the instance that runs it.
        let mut sandboxed = manifest("y-bank", 1000);
        sandboxed["sandbox"] = serde_json::json!({"port": 8099});
        store.put_bank("y-bank", &sandboxed).await.unwrap();
        assert!(registry.refresh(&store).await.unwrap().is_empty());
        assert!(registry.get("y-bank").is_none());
        assert_eq!(registry.iter().count(), 1);
    }

    #[test]
    fn credentials_are_resolved_by_reference() {
        let registry = Registry::new(secrets(), Egress::new(true));
        let manifest: Manifest = serde_json::from_value(manifest("x-bank", 1000)).unwrap();
        assert_eq!(
            registry.credentials(&manifest).unwrap(),
            ("bankgate".to_owned(), Some("s3cret".to_owned()))
        );
        registry.set_secrets(Arc::new(BTreeMap::new()));
        let error = registry.credentials(&manifest).unwrap_err().to_string();
        assert_eq!(
            error,
            "x-bank: environment variable TEST_BANK_ID is not set"
        );
    }
}
