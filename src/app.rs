//! The gateway's shared state: [`App`], plain values built once by
//! [`Gateway::start`](crate::gateway::Gateway::start) and shared as `Arc<App>` by the HTTP
//! service and the background tasks; each part is handed the narrow dependencies it uses
//! ([`App::lifecycle`]). `readiness` is what `/readyz` checks.

pub mod readiness;

use std::sync::Arc;

use crate::adapters::Registry;
use crate::audit::{self, Action, Auditor, Decision};
use crate::broker::Broker;
use crate::config::Config;
use crate::crypto::Sealer;
use crate::egress::Egress;
use crate::jose::keys::SigningKey;
use crate::lifecycle::{Lifecycle, LifecycleError, Maintenance};
use crate::oauth::client_auth::ClientAuth;
use crate::oauth::registration::Registrar;
use crate::oauth::tokens::TokenService;
use crate::policy::{Change, Live, PolicySet};
use crate::store::Store;

/// Everything a request handler may need. Built once; shared as `Arc<App>`.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub auditor: Auditor,
    /// The purpose policies in force; swapped whole by [`App::reload_policies`].
    pub policies: Live,
    pub banks: Arc<Registry>,
    pub tokens: TokenService,
    pub signing_key: Arc<SigningKey>,
    pub sealer: Arc<Sealer>,
    /// Bank tokens being refreshed (single-flight per consent on this instance).
    pub bank_tokens: Arc<crate::adapters::bank_oauth::BankTokens>,
    /// Authenticates clients at the token, PAR and revocation endpoints.
    pub client_auth: ClientAuth,
    /// Registers clients and manages their credentials.
    pub registrar: Registrar,
    /// The keys banks sign their pushed events with, as fetched.
    pub event_keys: Arc<crate::adapters::events::EventKeys>,
    /// The sign-in starts each client address may make (`sign_in_starts_per_minute`; this
    /// instance's counts).
    pub sign_in_starts: Arc<crate::broker::sign_in::StartLimit>,
}

impl App {
    /// The consent broker's dependencies, taken from this state: PAR, the consent screen,
    /// the user's decision, the bank's callback.
    pub fn broker(&self) -> Broker {
        Broker {
            consents: self.store.clone(),
            authorizations: self.store.clone(),
            grants: self.store.clone(),
            clients: self.store.clone(),
            payments: self.store.clone(),
            payees: self.store.clone(),
            unattended: self.store.clone(),
            bank_reader: self.bank_reader(),
            verification_counts: self.store.clone(),
            verifications_per_minute: self.config.payee_verifications_per_minute,
            sign_in_starts: self.sign_in_starts.clone(),
            auditor: self.auditor.clone(),
            policies: self.policies.clone(),
            banks: self.banks.clone(),
            sealer: self.sealer.clone(),
            issuer: self.config.public_url.clone(),
        }
    }

    /// Reads consents' accounts at their banks over the live adapters (the refresh engine's,
    /// and the payee resolution's).
    fn bank_reader(&self) -> Arc<crate::notify::bank::AdapterReader> {
        Arc::new(crate::notify::bank::AdapterReader {
            banks: self.banks.clone(),
            bank_tokens: self.bank_tokens.clone(),
            grants: self.store.clone(),
            account_refs: self.store.clone(),
            sealer: self.sealer.clone(),
        })
    }

    /// The consent lifecycle's dependencies, taken from this state: revocation, expiry,
    /// webhooks, the payment status job.
    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle {
            consents: self.store.clone(),
            tokens: self.store.clone(),
            grants: self.store.clone(),
            clients: self.store.clone(),
            webhooks: self.store.clone(),
            payments: self.store.clone(),
            auditor: self.auditor.clone(),
            banks: self.banks.clone(),
            sealer: self.sealer.clone(),
            bank_tokens: self.bank_tokens.clone(),
            signing_key: self.tokens.signing_key().clone(),
            issuer: self.config.public_url.clone(),
        }
    }

    /// The notification engine over this state's parts, each passed in as the narrow trait
    /// it uses (cheap: it clones handles); the lifecycle is its outbox.
    pub fn notifier(&self) -> crate::notify::Engine {
        crate::notify::Engine {
            subscriptions: self.store.clone(),
            consents: self.store.clone(),
            clients: self.store.clone(),
            bank: self.bank_reader(),
            outbox: Arc::new(self.lifecycle()),
            auditor: self.auditor.clone(),
            policies: self.policies.clone(),
            keys: crate::notify::detect::Keys::new(self.sealer.clone()),
            settings: crate::notify::engine::Settings::default(),
        }
    }

    /// The background work of this instance (see [`Maintenance`]), delivering webhooks only
    /// where the platforms' egress policy allows.
    pub fn maintenance(&self) -> Result<Maintenance, LifecycleError> {
        Maintenance::new(
            self.lifecycle(),
            self.store.clone(),
            &Egress::new(self.config.allow_private_platform_hosts),
        )
    }

    /// Reloads `policies_dir` and puts it in force if every file is valid; otherwise the set
    /// in force stays and the error names every problem (`path:line: message`). Each added,
    /// changed or withdrawn purpose is audited (`policy_loaded`) before the new set takes
    /// effect; requests in flight finish under the set they started with.
    pub async fn reload_policies(&self, actor: &str) -> Result<Vec<Change>, ReloadError> {
        let _reloading = self.policies.reload_guard().await;
        let loaded = PolicySet::load_dir(&self.config.policies_dir)?;
        let changes = loaded.changes_from(&self.policies.current());
        for change in &changes {
            let mut event = audit::Event::new(Action::PolicyLoaded, actor, Decision::Allow);
            let (purpose, hash, reason) = match change {
                Change::Added(policy) => (&policy.id, &policy.hash, "reload: new purpose".into()),
                Change::Changed { policy, previous } => (
                    &policy.id,
                    &policy.hash,
                    format!("reload: new version, replaces {previous}"),
                ),
                Change::Removed { id, hash } => (id, hash, "reload: purpose withdrawn".into()),
            };
            event.purpose = Some(purpose.clone());
            event.policy_hash = Some(hash.clone());
            event.reason = Some(reason);
            self.auditor
                .record(event)
                .await
                .map_err(ReloadError::Audit)?;
        }
        self.policies.replace(loaded);
        Ok(changes)
    }
}

/// Why a policy reload was rejected; the set in force is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the new policies are invalid:\n{0}")]
    Invalid(#[from] crate::policy::PolicyError),
    #[error("the reload could not be audited")]
    Audit(#[source] crate::store::StoreError),
}
