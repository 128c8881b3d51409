//! Per-bank adapters: the [`Profile`] trait each standard implements, bank manifests, and the
//! registry of banks the gateway can reach.
//!
//! Invariant: Rust code never names a bank; banks are data (`adapters/*.toml`).

pub mod accounts;
pub mod bank_oauth;
pub mod banks;
pub mod berlin_group;
pub mod common;
pub mod eidas;
pub mod events;
pub mod fdx;
pub mod grants;
pub mod manifest;
pub mod mapping;
pub mod normalise;
pub mod obie;
pub mod outbound;
pub mod paying;
pub mod registry;
pub mod stet;
#[cfg(test)]
mod testing;
pub mod verification;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;

pub use accounts::{AccountRef, AccountRefs};
pub use banks::{BankVersion, Banks};
pub use grants::{BankAuthorization, Grants, StoredGrant};
pub use manifest::{Manifest, ManifestError};
pub use registry::{ProcessEnv, Registry, Secrets};

use crate::model::WireName;
use crate::model::{Account, Balance, Scope, Transaction};

/// Errors talking to a bank. Their text is for logs; callers see a safe description naming
/// the bank (see [`crate::Error::safe_detail`]), never the bank's own words.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("bank unreachable: {0}")]
    Transport(String),
    /// The TLS handshake with the bank failed: what of the certificates (bankgate's QWAC, the
    /// bank's server certificate) was refused.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("bank timed out")]
    Timeout,
    #[error("bank answered HTTP {status}")]
    Status { status: u16 },
    #[error("bank payload not understood: {0}")]
    Decode(String),
    /// A success answer whose body is an error (the profile's classification hook said so).
    #[error("bank answered success with an error body: {0}")]
    ErrorBody(String),
    /// The answer was larger than the manifest's `limits.max_response_bytes`.
    #[error("bank answer exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The bank's circuit breaker is open: recent calls failed, this one was not sent.
    #[error("circuit open: recent calls to the bank failed")]
    CircuitOpen,
    /// The bank had `limits.max_in_flight` calls in flight and no slot freed within
    /// `limits.queue_timeout_ms` (or `limits.max_queued` calls were waiting already); this one
    /// was not sent.
    #[error("too many calls to the bank in flight")]
    Saturated,
    #[error("bank refused: {0}")]
    Refused(String),
    #[error("unknown account")]
    UnknownAccount,
    /// The bank says the consent ended on its side: the user revoked it in the bank's app,
    /// the bank expired or invalidated it, or the bank no longer honours the grant
    /// (`invalid_grant` on refresh). Nothing more can be read under it.
    #[error("the bank ended the consent: {0}")]
    ConsentEnded(ConsentEnd),
    /// Any of the above at a named bank (see [`AdapterError::at`]).
    #[error("at bank {bank}")]
    AtBank {
        bank: String,
        #[source]
        source: Box<AdapterError>,
    },
}

impl AdapterError {
    /// The error stamped with the bank it happened at (once: an error that names its bank
    /// keeps it).
    pub fn at(self, bank: &str) -> AdapterError {
        match self {
            AdapterError::AtBank { .. } => self,
            error => AdapterError::AtBank {
                bank: bank.to_owned(),
                source: Box::new(error),
            },
        }
    }

    /// What went wrong, whichever bank it named.
    pub fn root(&self) -> &AdapterError {
        match self {
            AdapterError::AtBank { source, .. } => source.root(),
            error => error,
        }
    }

    /// The kind of failure, one word (a metric label): `timeout`, `transport`, `status`, …
    pub fn kind(&self) -> &'static str {
        match self.root() {
            AdapterError::Transport(_) => "transport",
            AdapterError::Tls(_) => "tls",
            AdapterError::Timeout => "timeout",
            AdapterError::Status { .. } => "status",
            AdapterError::Decode(_) => "decode",
            AdapterError::ErrorBody(_) => "error_body",
            AdapterError::TooLarge { .. } => "too_large",
            AdapterError::CircuitOpen => "circuit_open",
            AdapterError::Saturated => "saturated",
            AdapterError::Refused(_) => "refused",
            AdapterError::ConsentEnded(_) => "consent_ended",
            AdapterError::UnknownAccount | AdapterError::AtBank { .. } => "unknown_account",
        }
    }

    /// The bank it happened at, if known.
    pub fn bank(&self) -> Option<&str> {
        match self {
            AdapterError::AtBank { bank, .. } => Some(bank),
            _ => None,
        }
    }

    /// Worth retrying an idempotent read: the next attempt may well succeed.
    pub fn is_transient(&self) -> bool {
        match self.root() {
            AdapterError::Transport(_) => true,
            AdapterError::Status { status } => matches!(status, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Says something about the bank's health (counted by its circuit breaker), as opposed to
    /// something about this request (a 4xx, an error body, a payload one profile cannot read).
    pub fn counts_against_bank(&self) -> bool {
        match self.root() {
            AdapterError::Transport(_)
            | AdapterError::Timeout
            | AdapterError::TooLarge { .. }
            | AdapterError::Decode(_) => true,
            AdapterError::Status { status } => *status >= 500 || matches!(status, 408 | 429),
            _ => false,
        }
    }
}

/// How a bank said a consent ended on its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentEnd {
    /// Revoked: by the user in the bank's app, by the bank, or its grant refused
    /// (`invalid_grant`).
    Revoked,
    /// Expired at the bank.
    Expired,
    /// The bank called it invalid (Berlin Group `CONSENT_INVALID`) — which it also says of a
    /// resource the consent does not cover, so a profile confirms it with the consent's status
    /// before it becomes [`ConsentEnd::Revoked`]; it never reaches bankgate's consent as is.
    Invalid,
}

impl ConsentEnd {
    /// The reason recorded with the revocation and sent in the `consent.revoked` webhook.
    pub fn reason(self) -> &'static str {
        match self {
            ConsentEnd::Revoked | ConsentEnd::Invalid => "revoked at the bank",
            ConsentEnd::Expired => "expired at the bank",
        }
    }
}

impl std::fmt::Display for ConsentEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConsentEnd::Revoked => "revoked",
            ConsentEnd::Expired => "expired",
            ConsentEnd::Invalid => "invalid",
        })
    }
}

impl From<reqwest::Error> for AdapterError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            AdapterError::Timeout
        } else if let Some(status) = error.status() {
            AdapterError::Status {
                status: status.as_u16(),
            }
        } else if error.is_decode() {
            AdapterError::Decode(error.to_string())
        } else if let Some(problem) = eidas::handshake_problem(&error) {
            AdapterError::Tls(problem)
        } else {
            AdapterError::Transport(error.to_string())
        }
    }
}

/// What bankgate asks the bank to consent to, before sending the user there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    pub scopes: Vec<Scope>,
    /// Last day the bank-side consent is valid.
    pub valid_until: NaiveDate,
    /// Unattended accesses per day the bank should allow.
    pub frequency_per_day: u32,
    /// Whether access recurs (true for every purpose bankgate brokers today).
    pub recurring: bool,
}

impl ConsentRequest {
    /// Refuses a request for no scope: no bank consents to nothing.
    pub fn require_scopes(&self) -> Result<(), AdapterError> {
        if self.scopes.is_empty() {
            return Err(AdapterError::Refused(
                "a consent needs at least one scope".into(),
            ));
        }
        Ok(())
    }
}

/// The bank-side consent resource, for standards that create one before the redirect.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BankConsent {
    /// The bank's consent id (Berlin Group `consentId`, OBIE `ConsentId`), if any.
    pub id: Option<String>,
    /// OAuth scopes to request at the bank's authorization endpoint.
    pub oauth_scopes: Vec<String>,
    /// Further authorization request parameters the standard needs, e.g. an OIDC `claims`
    /// request naming OBIE's consent, or RFC 9396 `authorization_details` for FDX.
    pub authorization_params: Vec<(String, String)>,
}

/// A consent's session at its bank: the bank and the credentials a call presents.
#[derive(Clone, Copy)]
pub struct BankSession<'a> {
    pub bank: &'a Bank,
    pub access_token: &'a str,
    pub bank_consent_id: Option<&'a str>,
}

impl BankSession<'_> {
    /// A request to the session's bank that presents its access token.
    pub fn request(&self, method: reqwest::Method, url: url::Url) -> reqwest::RequestBuilder {
        self.bank
            .http
            .request(method, url)
            .bearer_auth(self.access_token)
    }
}

impl std::fmt::Debug for BankSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankSession")
            .field("bank", &self.bank.id())
            .field("access_token", &"<redacted>")
            .field("bank_consent_id", &self.bank_consent_id)
            .finish()
    }
}

/// One account's transactions a data call asks a bank for: the account, and the first booking
/// day wanted (all the bank gives if `None`).
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub account: &'a AccountRef,
    pub from: Option<NaiveDate>,
}

/// An account as a bank listed it: the canonical account and the bank's own reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccount {
    /// The bank's resource id, used in later calls.
    pub bank_ref: String,
    pub account: Account,
}

impl BankAccount {
    /// The link between the id the platform sees and the bank's reference, to remember.
    pub fn account_ref(&self) -> AccountRef {
        AccountRef {
            account_id: self.account.id.clone(),
            bank_ref: self.bank_ref.clone(),
        }
    }
}

pub use crate::payments::{BankPayment, PaymentOrder};

/// Payment initiation at a bank, for profiles whose standard has it
/// ([`Profile::payments`]). Berlin Group and STET create the payment resource as the consent
/// (the user authorises the payment itself), so [`PaymentInitiation::submit`] only reads its
/// status (or confirms it, where STET asks); OBIE creates a payment consent first and submits
/// the payment after authorisation.
///
/// No call here is retried blindly: a submission whose answer was lost is settled by
/// [`PaymentInitiation::status`] or [`PaymentInitiation::find`], never sent again.
#[async_trait]
pub trait PaymentInitiation: Send + Sync {
    /// Whether the user's authorisation at the bank may execute the payment without another
    /// call from bankgate: where the payment resource is the consent (Berlin Group, the
    /// declarative mapping; STET, when the bank does not wait for a confirmation). Such a
    /// payment counts against the user's daily limit before it is created at the bank; any
    /// other when it is submitted. The default is the safe answer, counted early: a standard
    /// whose payment waits for bankgate's submission (OBIE) says so.
    fn authorisation_executes(&self) -> bool {
        true
    }

    /// Creates the bank-side payment consent (OBIE) or payment resource (Berlin Group, STET)
    /// before the user is sent to the bank: its id and the authorization request parameters.
    async fn create_payment_consent(
        &self,
        bank: &Bank,
        order: &PaymentOrder,
    ) -> Result<BankConsent, AdapterError>;

    /// After authorisation: submits the payment (OBIE `domestic-payments`, with the order's
    /// idempotency key) or confirms it (STET, where the bank asks), or reads its status where
    /// authorising it submitted it (Berlin Group).
    async fn submit(
        &self,
        session: BankSession<'_>,
        order: &PaymentOrder,
    ) -> Result<BankPayment, AdapterError>;

    /// The payment's status at the bank.
    async fn status(
        &self,
        session: BankSession<'_>,
        bank_payment_id: &str,
    ) -> Result<BankPayment, AdapterError>;

    /// The account the user chose to pay from, once authorised, where the bank tells it before
    /// the payment executes (STET: the payment request names its debtor once approved):
    /// bankgate refuses a payment to that same account before submitting it. `None` where the
    /// bank does not tell it before (Berlin Group executes at authorisation) or at all.
    async fn payer_account(
        &self,
        _session: BankSession<'_>,
        _order: &PaymentOrder,
    ) -> Result<Option<String>, AdapterError> {
        Ok(None)
    }

    /// Reconciliation after a submission whose answer was lost: the payment the bank made for
    /// `order` (found through the consent's state or the idempotency key), or `None` when the
    /// bank has none, so that submitting it is safe.
    async fn find(
        &self,
        session: BankSession<'_>,
        order: &PaymentOrder,
    ) -> Result<Option<BankPayment>, AdapterError>;
}

/// One bank API standard: the consent dance and the data calls.
///
/// Implementations live in `adapters/<profile>.rs` with wire types in `adapters/<profile>/wire.rs`.
#[async_trait]
pub trait Profile: Send + Sync + 'static {
    /// The profile's manifest name, e.g. `berlin-group`.
    fn name(&self) -> &'static str;

    /// The data scopes a consent at a bank of this profile can cover.
    fn scopes(&self) -> Vec<Scope> {
        Scope::ALL.to_vec()
    }

    /// Creates the bank-side consent resource (if the standard has one) before the redirect.
    async fn create_consent(
        &self,
        bank: &Bank,
        request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError>;

    /// Lists the accounts the consent covers.
    async fn accounts(&self, session: BankSession<'_>) -> Result<Vec<BankAccount>, AdapterError>;

    /// The balances of one account, stamped with its `account_id`.
    async fn balances(
        &self,
        session: BankSession<'_>,
        account: &AccountRef,
    ) -> Result<Vec<Balance>, AdapterError>;

    /// The transactions of one account booked on or after `history.from` (all the bank gives
    /// if `None`).
    async fn transactions(
        &self,
        session: BankSession<'_>,
        history: History<'_>,
    ) -> Result<Vec<Transaction>, AdapterError>;

    /// Ends the bank-side consent resource when bankgate's consent is revoked (Berlin Group
    /// `DELETE /v1/consents/{id}`); nothing for standards without one.
    async fn revoke_consent(&self, bank: &Bank, bank_consent_id: &str) -> Result<(), AdapterError> {
        let _ = (bank, bank_consent_id);
        Ok(())
    }

    /// Registers `url` as where the bank sends its event notifications (UK OBIE
    /// `POST /callback-urls`); `false` for standards where banks push none.
    async fn register_event_callback(&self, bank: &Bank, url: &str) -> Result<bool, AdapterError> {
        let _ = (bank, url);
        Ok(false)
    }

    /// Whether this profile's own calls honour the manifest's bank-side FAPI options
    /// (`private_key_jwt`, DPoP on data calls); manifests asking for them with a profile that
    /// does not are refused.
    fn speaks_bank_fapi(&self) -> bool {
        false
    }

    /// Payment initiation, if the standard has it (FDX has none: PAR refuses a payment to
    /// such a bank). Errors it returns do not name the bank; callers stamp them
    /// ([`AdapterError::at`]).
    fn payments(&self) -> Option<&dyn PaymentInitiation> {
        None
    }
}

/// Every profile name a manifest may use.
pub const PROFILES: [&str; 5] = [
    berlin_group::NAME,
    stet::NAME,
    obie::NAME,
    fdx::NAME,
    mapping::NAME,
];

/// The profile implemented in Rust under `name` (`None` for unknown names and for `mapping`,
/// which needs a manifest: see [`build_profile`]).
pub fn profile(name: &str) -> Option<Arc<dyn Profile>> {
    match name {
        berlin_group::NAME => Some(Arc::new(berlin_group::BerlinGroup)),
        stet::NAME => Some(Arc::new(stet::Stet)),
        obie::NAME => Some(Arc::new(obie::Obie)),
        fdx::NAME => Some(Arc::new(fdx::Fdx)),
        _ => None,
    }
}

/// The profile speaking a manifest's bank: a Rust profile by name, or the `mapping` profile
/// compiled from the manifest's `[mapping]` section.
pub fn build_profile(manifest: &Manifest) -> Result<Arc<dyn Profile>, ManifestError> {
    let invalid = |message: String| ManifestError::Invalid {
        bank: manifest.id.clone(),
        message,
    };
    if manifest.oauth.consent_detail_type.is_some() && manifest.profile != berlin_group::NAME {
        return Err(invalid(
            "oauth.consent_detail_type is for berlin-group banks".into(),
        ));
    }
    if manifest.profile == mapping::NAME {
        let spec = manifest
            .mapping
            .as_ref()
            .ok_or_else(|| invalid("the mapping profile needs a [mapping] section".into()))?;
        let compiled =
            mapping::Mapping::compile(spec).map_err(|error| invalid(error.to_string()))?;
        return Ok(Arc::new(compiled));
    }
    profile(&manifest.profile)
        .ok_or_else(|| invalid(format!("unknown profile {:?}", manifest.profile)))
}

/// The bank-wide account key: derived from the bank and the account's strongest identifier
/// (IBAN when there is one), so it survives re-consent at the same bank. It is an unkeyed
/// hash — anyone who knows a bank's account-number format could enumerate it back to the
/// IBAN — so it never leaves the gateway as is: profiles stamp it on the accounts they list,
/// and [`key_account_ids`] replaces it with the platform's own id before anything is stored
/// or released. (Before ids were keyed per platform, this was the id platforms saw; the
/// account references recorded then still resolve it, see ARCHITECTURE.md.)
pub fn account_id(bank_id: &str, identifier: &str) -> String {
    let digest = crate::crypto::sha256(format!("{bank_id}\0{identifier}").as_bytes());
    format!("acc_{}", hex::encode(&digest[..12]))
}

/// Gives the listed accounts the ids `platform` sees ([`crate::crypto::Sealer::account_id`]
/// over each account's bank-wide key, [`account_id`]): the same account has one id per
/// platform, and ids cannot be joined across platforms nor turned back into account numbers.
pub fn key_account_ids(sealer: &crate::crypto::Sealer, platform: &str, listed: &mut [BankAccount]) {
    for listed in listed {
        listed.account.id = sealer.account_id(platform, &listed.account.id);
    }
}

/// A bank the gateway can reach: its manifest, resolved credentials, HTTP client and
/// outbound stack.
pub struct Bank {
    pub manifest: Manifest,
    /// The OAuth client id bankgate has at this bank.
    pub client_id: String,
    /// bankgate's secret at the bank; `None` when it authenticates with `private_key_jwt`.
    client_secret: Option<String>,
    /// Client for back-channel calls: connects only where [`crate::egress::Egress`] allows
    /// (public addresses, unless the operator opted out), never follows redirects, bounded by
    /// the bank's timeout. Its connection pool is this bank's alone.
    pub http: reqwest::Client,
    /// Timeout, retry, circuit breaker and size cap for the data calls ([`outbound`]).
    pub outbound: outbound::Outbound,
    /// bankgate's `private_key_jwt` and DPoP keys at this bank, when its manifest asks for
    /// them (none after [`Bank::new`]; set before the bank is shared).
    pub keys: crate::adapters::bank_oauth::auth::BankKeys,
    /// bankgate's eIDAS identity at this bank (QWAC, QSealC), when its manifest has
    /// `[eidas]` ([`Bank::set_eidas`]).
    pub eidas: Option<Arc<eidas::Eidas>>,
    /// The egress policy the client was built under (kept to build it again).
    egress: crate::egress::Egress,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank")
            .field("id", &self.manifest.id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Bank {
    /// Builds a bank from a manifest and its resolved credentials; every connection to it
    /// obeys `egress`.
    pub fn new(
        manifest: Manifest,
        client_id: String,
        client_secret: Option<String>,
        egress: &crate::egress::Egress,
    ) -> Result<Bank, AdapterError> {
        let settings = outbound::Settings::from(&manifest.limits);
        let http = Bank::client(&manifest, egress, None)?;
        Ok(Bank {
            outbound: outbound::Outbound::new(http.clone(), &settings).named(&manifest.id),
            manifest,
            client_id,
            client_secret,
            http,
            keys: crate::adapters::bank_oauth::auth::BankKeys::default(),
            eidas: None,
            egress: egress.clone(),
        })
    }

    /// The bank's HTTP client: `egress`'s, bounded by the bank's timeout, on `eidas`'s TLS
    /// configuration (its QWAC, the bank's CA) when there is one.
    fn client(
        manifest: &Manifest,
        egress: &crate::egress::Egress,
        eidas: Option<&eidas::Eidas>,
    ) -> Result<reqwest::Client, AdapterError> {
        let mut builder = egress
            .client_builder()
            .timeout(Duration::from_millis(manifest.limits.timeout_ms));
        if let Some(eidas) = eidas {
            builder = builder.use_preconfigured_tls(eidas.client_config()?);
        }
        builder
            .build()
            .map_err(|error| AdapterError::Transport(error.to_string()))
    }

    /// Gives the bank bankgate's eIDAS identity: its client presents the QWAC from now on and
    /// calls to its API are signed with the QSealC (the client and its pool are new).
    pub fn set_eidas(&mut self, identity: eidas::Eidas) -> Result<(), AdapterError> {
        let http = Bank::client(&self.manifest, &self.egress, Some(&identity))?;
        let settings = outbound::Settings::from(&self.manifest.limits);
        self.outbound = outbound::Outbound::new(http.clone(), &settings).named(&self.manifest.id);
        self.http = http;
        self.eidas = Some(Arc::new(identity));
        Ok(())
    }

    /// Gives the bank the eIDAS identity its manifest's `[eidas]` names (nothing without one):
    /// `made` — a bundled sandbox's test PKI, made at start — or read from the files the
    /// manifest's variables name (through `env`). Certificates ending soon are warned about.
    pub fn load_eidas(
        &mut self,
        made: Option<eidas::Material>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), AdapterError> {
        let Some(spec) = self.manifest.eidas.clone() else {
            return Ok(());
        };
        let (spec, material) = match made {
            Some(material) => (None, material),
            None => {
                let material = eidas::Material::read(&spec, env)?;
                (Some(spec), material)
            }
        };
        let identity = eidas::Eidas::new(self.id(), &self.manifest.profile, spec, &material)?;
        identity.warn_if_ending(chrono::Utc::now());
        self.set_eidas(identity)
    }

    /// Signs a request to the bank's API with the QSealC, when the bank has one (calls to its
    /// authorization server are not signed); refuses to send it with an eIDAS certificate that
    /// is not valid now.
    fn seal(&self, request: &mut reqwest::Request) -> Result<(), AdapterError> {
        if let Some(eidas) = &self.eidas {
            eidas.check_validity(chrono::Utc::now())?;
        }
        match &self.eidas {
            Some(eidas)
                if request
                    .url()
                    .as_str()
                    .starts_with(self.manifest.api_base_url.trim_end_matches('/')) =>
            {
                eidas.sign(request)
            }
            _ => Ok(()),
        }
    }

    /// The bank's id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The client secret, for the OAuth client only; `None` for a `private_key_jwt` bank.
    pub fn client_secret(&self) -> Option<&str> {
        self.client_secret.as_deref()
    }

    /// `api_base_url` joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.manifest.api_base_url.trim_end_matches('/'))
    }

    /// Sends a request through the bank's outbound stack; the body of its 2xx answer.
    /// `route` is the template of its path at the bank (identifiers as placeholders, for its
    /// span); `error_in_body` is the profile's hook for success answers that carry an error
    /// (and for error answers that say the consent ended, [`outbound::Classify`]).
    pub async fn fetch(
        &self,
        request: reqwest::RequestBuilder,
        route: impl Into<std::borrow::Cow<'static, str>>,
        error_in_body: impl outbound::Classify,
    ) -> Result<bytes::Bytes, AdapterError> {
        let mut request = request.build()?;
        self.seal(&mut request)?;
        // A call with a DPoP proof can be proved again with the resource server's nonce.
        let dpop = self
            .keys
            .dpop
            .clone()
            .filter(|_| request.headers().contains_key(crate::jose::DPOP_HEADER))
            .map(|key| outbound::Reprove {
                key,
                nonce: self.keys.resource_nonce_slot(),
            });
        self.outbound
            .call(outbound::Call {
                request,
                route: route.into(),
                error_in_body: Arc::new(error_in_body),
                dpop,
            })
            .await
    }
}

impl Bank {
    /// Sends a request straight to the bank, outside the outbound stack (calls whose answer
    /// the caller reads itself, e.g. a revocation's status), in a `bank_call` span whose trace
    /// context the bank receives; `route` as in [`Bank::fetch`].
    pub async fn execute(
        &self,
        mut request: reqwest::Request,
        route: &str,
    ) -> Result<reqwest::Response, AdapterError> {
        use tracing::Instrument;
        self.seal(&mut request)?;
        let span = tracing::info_span!(
            "bank_call",
            bank = self.id(),
            method = %request.method(),
            route,
        );
        crate::telemetry::traces::inject(&span, request.headers_mut());
        Ok(self.http.execute(request).instrument(span).await?)
    }
}

/// A bank together with the profile that speaks its API.
pub struct Adapter {
    pub bank: Bank,
    /// The profile; its errors name the bank ([`AdapterError::AtBank`]).
    pub profile: Arc<dyn Profile>,
    /// The manifest version in the store this adapter was built from (0: not stored).
    pub version: i32,
}

impl Adapter {
    /// The adapter of a manifest (validated, its mapping compiled) with resolved credentials;
    /// every connection to the bank obeys `egress`.
    pub fn new(
        manifest: Manifest,
        client_id: String,
        client_secret: Option<String>,
        version: i32,
        egress: &crate::egress::Egress,
    ) -> Result<Adapter, ManifestError> {
        manifest.validate()?;
        let profile = build_profile(&manifest)?;
        let id = manifest.id.clone();
        let bank = Bank::new(manifest, client_id, client_secret, egress).map_err(|error| {
            ManifestError::Invalid {
                bank: id,
                message: error.to_string(),
            }
        })?;
        Ok(Adapter {
            bank,
            profile: Arc::new(NamesBank(profile)),
            version,
        })
    }

    /// Whether people may sign in with this bank (an OpenID provider: `[oauth] sign_in`).
    pub fn offers_sign_in(&self) -> bool {
        self.bank.manifest.oauth.sign_in
    }

    /// The data scopes this bank offers.
    pub fn scopes(&self) -> Vec<Scope> {
        self.profile.scopes()
    }

    /// Lists the accounts the session's consent covers, under the ids `platform` sees
    /// ([`key_account_ids`]).
    pub async fn accounts_for(
        &self,
        session: BankSession<'_>,
        sealer: &crate::crypto::Sealer,
        platform: &str,
    ) -> Result<Vec<BankAccount>, AdapterError> {
        let mut listed = self.profile.accounts(session).await?;
        key_account_ids(sealer, platform, &mut listed);
        Ok(listed)
    }

    /// The transactions of one account from `from` on: the bank is not asked for older ones,
    /// and whatever it returns beyond the window is dropped (an undated one is kept).
    pub async fn transactions_from(
        &self,
        session: BankSession<'_>,
        account: &AccountRef,
        from: NaiveDate,
    ) -> Result<Vec<Transaction>, AdapterError> {
        let history = History {
            account,
            from: Some(from),
        };
        let mut transactions = self.profile.transactions(session, history).await?;
        transactions.retain(|transaction| {
            transaction
                .booking_date
                .or(transaction.value_date)
                .is_none_or(|date| date >= from)
        });
        Ok(transactions)
    }
}

/// A profile whose errors name the bank they happened at.
struct NamesBank(Arc<dyn Profile>);

#[async_trait]
impl Profile for NamesBank {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn scopes(&self) -> Vec<Scope> {
        self.0.scopes()
    }

    async fn create_consent(
        &self,
        bank: &Bank,
        request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError> {
        let result = self.0.create_consent(bank, request).await;
        result.map_err(|error| error.at(bank.id()))
    }

    async fn accounts(&self, session: BankSession<'_>) -> Result<Vec<BankAccount>, AdapterError> {
        let result = self.0.accounts(session).await;
        result.map_err(|error| error.at(session.bank.id()))
    }

    async fn balances(
        &self,
        session: BankSession<'_>,
        account: &AccountRef,
    ) -> Result<Vec<Balance>, AdapterError> {
        let result = self.0.balances(session, account).await;
        result.map_err(|error| error.at(session.bank.id()))
    }

    async fn transactions(
        &self,
        session: BankSession<'_>,
        history: History<'_>,
    ) -> Result<Vec<Transaction>, AdapterError> {
        let result = self.0.transactions(session, history).await;
        result.map_err(|error| error.at(session.bank.id()))
    }

    async fn revoke_consent(&self, bank: &Bank, bank_consent_id: &str) -> Result<(), AdapterError> {
        let result = self.0.revoke_consent(bank, bank_consent_id).await;
        result.map_err(|error| error.at(bank.id()))
    }

    async fn register_event_callback(&self, bank: &Bank, url: &str) -> Result<bool, AdapterError> {
        let result = self.0.register_event_callback(bank, url).await;
        result.map_err(|error| error.at(bank.id()))
    }

    fn speaks_bank_fapi(&self) -> bool {
        self.0.speaks_bank_fapi()
    }

    fn payments(&self) -> Option<&dyn PaymentInitiation> {
        self.0.payments()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_stable_and_opaque() {
        let id = account_id("demo-bank", "DE89370400440532013000");
        assert_eq!(id, account_id("demo-bank", "DE89370400440532013000"));
        assert_ne!(id, account_id("other-bank", "DE89370400440532013000"));
        assert!(id.starts_with("acc_") && !id.contains("DE89"));
    }

    #[test]
    fn every_profile_has_a_sandbox_bank_and_no_more() {
        let mut sandboxes: Vec<&str> = bankgate_sandbox::profiles().collect();
        let mut profiles = PROFILES.to_vec();
        sandboxes.sort_unstable();
        profiles.sort_unstable();
        assert_eq!(sandboxes, profiles);
    }
}
