//! Sandbox banks: real HTTP servers speaking a bank API standard (OAuth included), seeded with
//! deterministic synthetic customers. They back bankgate's demo, tests and benchmarks, and
//! platforms build against them.
//!
//! One per profile (`berlin-group`, `stet`, `obie`, `fdx`, and for `mapping` a bank with a
//! proprietary API), each a [`scaffold::Standard`] on one shared scaffold (authorization
//! server, consents, routing, errors, paging) over the same synthetic [`customers`]; every one
//! can be told to misbehave ([`faults`]). The Berlin Group, STET and OBIE banks accept payments
//! ([`payments`]) and move money on the [`ledger`] all sandbox banks of a process share. Like a
//! real bank's, their software is their own: this crate does not depend on the gateway.
//!
//! Modules in reading order: the scaffold and what it stands on, then one per standard.

mod customers;
pub mod eidas;
pub mod events;
pub mod faults;
pub mod ledger;
mod oauth;
pub mod payments;
pub mod pki;
mod plumbing;
mod scaffold;

mod berlin_group;
mod fdx;
mod obie;
mod proprietary;
mod stet;

use std::net::SocketAddr;

/// How the sandbox's authorization endpoint approves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Redirect back at once, approving as the default customer (tests, demo).
    Auto,
    /// Show a one-click approval page (people).
    Page,
}

/// How to start a sandbox bank.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The standard it speaks, as in manifests (`berlin-group`).
    pub profile: String,
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// The one OAuth client the sandbox knows (bankgate).
    pub client_id: String,
    pub client_secret: String,
    pub approval: Approval,
    /// FAPI 2.0 requirements of the sandbox's authorization server (none by default).
    pub fapi: SandboxFapi,
}

/// What the sandbox's authorization server asks of its client beyond a secret, as a bank
/// speaking FAPI 2.0 would: `private_key_jwt`, pushed authorization requests, DPoP.
#[derive(Debug, Clone, Default)]
pub struct SandboxFapi {
    /// The client's public keys (a JWK Set): it must authenticate with `private_key_jwt`
    /// signed by one of them (RFC 7523, `aud` = the sandbox's issuer); its secret is refused.
    pub client_jwks: Option<serde_json::Value>,
    /// Authorization requests must be pushed first (RFC 9126); a plain one is refused.
    pub require_par: bool,
    /// Token requests need a DPoP proof (with the sandbox's nonce); tokens are then bound to
    /// its key and data calls need the `DPoP` scheme and a proof (RFC 9449).
    pub require_dpop: bool,
    /// The lifetime of the access tokens it issues (one hour when `None`): a certified FAPI
    /// server may hand out short-lived ones, which its client must not refresh on every call.
    pub access_token_lifetime: Option<std::time::Duration>,
    /// Refresh tokens only for authorization requests whose scope has `offline_access`, as an
    /// OpenID provider issues them (node oidc-provider's default `issueRefreshToken`).
    pub refresh_needs_offline_access: bool,
    /// Authorization requests must name this resource (RFC 8707 `resource`); another one, or
    /// none, is refused with `invalid_target`.
    pub resource: Option<String>,
    /// Berlin Group: the authorization request names its consent in RFC 9396
    /// `authorization_details` of this type (`[{"type", "consentId"}]`); the `AIS:<id>` scope
    /// is refused.
    pub consent_detail_type: Option<String>,
    /// With `require_dpop`: the resource server demands DPoP nonces on data calls too (RFC 9449
    /// §9): a proof without its current nonce gets a 401 `use_dpop_nonce` with a fresh
    /// `DPoP-Nonce`, and every answer to a DPoP call hands out the current one.
    pub resource_nonce: bool,
    /// The only JWS algorithms the server takes in client assertions and DPoP proofs (say
    /// `["PS256"]`), as its metadata then says; all three FAPI 2.0 ones (ES256, EdDSA, PS256)
    /// when `None`.
    pub signing_algs: Option<Vec<String>>,
    /// eIDAS: the bank serves TLS and checks the third party's QWAC (mutual TLS) and, Berlin
    /// Group, its request signatures ([`eidas`]).
    pub eidas: Option<eidas::SandboxEidas>,
}

/// Errors starting a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no sandbox for profile {0:?}")]
    UnknownProfile(String),
    #[error("eIDAS: {0}")]
    Eidas(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running sandbox bank; stops when dropped.
pub struct Sandbox {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub origin: String,
    /// What the bank is told to get wrong, and the requests it received.
    pub faults: std::sync::Arc<faults::Faults>,
    /// The ledger it shares with the other sandbox banks of the process (and its clock).
    pub ledger: std::sync::Arc<ledger::Ledger>,
    /// What it counted of the payments it received.
    pub payments: std::sync::Arc<payments::Counters>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The profile each sandbox speaks (as bank manifests name it) and how to build its routes.
type Routes = fn(&SandboxConfig, &str, &scaffold::Shared) -> axum::Router;
const SANDBOXES: [(&str, Routes); 5] = [
    (
        "berlin-group",
        scaffold::router::<berlin_group::BerlinGroup>,
    ),
    ("stet", scaffold::router::<stet::Stet>),
    ("obie", scaffold::router::<obie::Obie>),
    ("fdx", scaffold::router::<fdx::Fdx>),
    // A proprietary API, for the declarative `mapping` profile.
    ("mapping", scaffold::router::<proprietary::Proprietary>),
];

/// The profiles there is a sandbox bank for.
pub fn profiles() -> impl Iterator<Item = &'static str> {
    SANDBOXES.iter().map(|(profile, _)| *profile)
}

/// Starts a sandbox bank in this process on the process's shared ledger
/// ([`ledger::Ledger::shared`]) and returns once it accepts connections.
pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
    start_on(config, ledger::Ledger::shared()).await
}

/// Starts a sandbox bank on `ledger` (shared with the banks started on the same one) and
/// returns once it accepts connections.
pub async fn start_on(
    config: SandboxConfig,
    ledger: std::sync::Arc<ledger::Ledger>,
) -> Result<Sandbox, SandboxError> {
    let Some((_, router)) = SANDBOXES
        .iter()
        .find(|(profile, _)| *profile == config.profile)
    else {
        return Err(SandboxError::UnknownProfile(config.profile.clone()));
    };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| SandboxError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
        addr: config.addr,
        source,
    })?;
    let scheme = if config.fapi.eidas.is_some() {
        "https"
    } else {
        "http"
    };
    let origin = format!("{scheme}://{addr}");
    let faults = std::sync::Arc::new(faults::Faults::default());
    let shared = scaffold::Shared {
        ledger,
        counters: std::sync::Arc::default(),
    };
    let router = router(&config, &origin, &shared).layer(axum::middleware::from_fn_with_state(
        faults.clone(),
        faults::apply,
    ));
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    match &config.fapi.eidas {
        None => {
            tokio::spawn(async move {
                let serve = axum::serve(listener, router).with_graceful_shutdown(stopped);
                if let Err(error) = serve.await {
                    tracing::error!(%error, "sandbox bank stopped");
                }
            });
        }
        Some(settings) => {
            // eIDAS: TLS, the QWAC asked for in the handshake, the checks per request.
            let tls = eidas::server_config(settings).map_err(SandboxError::Eidas)?;
            let enforcement = eidas::Enforcement::new(settings.clone(), &config.profile, "/v1/")
                .map_err(SandboxError::Eidas)?;
            let router = router.layer(axum::middleware::from_fn_with_state(
                std::sync::Arc::new(enforcement),
                eidas::enforce,
            ));
            let listener =
                eidas::TlsListener::new(listener, std::sync::Arc::new(tls)).map_err(|source| {
                    SandboxError::Bind {
                        addr: config.addr,
                        source,
                    }
                })?;
            tokio::spawn(async move {
                let serve = axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<eidas::Peer>(),
                )
                .with_graceful_shutdown(stopped);
                if let Err(error) = serve.await {
                    tracing::error!(%error, "sandbox bank stopped");
                }
            });
        }
    }
    Ok(Sandbox {
        addr,
        origin,
        faults,
        ledger: shared.ledger,
        payments: shared.counters,
        shutdown: Some(shutdown),
    })
}
