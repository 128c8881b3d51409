//! Bank manifests (`adapters/*.toml`, or their JSON form at `PUT /v1/banks/{id}/adapter`): who
//! the bank is, which profile speaks its API, where its endpoints are, which environment
//! variables hold bankgate's credentials there (by reference only: there is no field for a
//! value), the limits of the outbound stack and, for the `mapping` profile, the rules that map
//! a proprietary API onto the canonical model.
//!
//! Everything is checked when a manifest is loaded ([`Manifest::validate`]): unknown fields,
//! the profile, URLs, the credential references, the limits, and every mapping rule compiles.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors loading or validating a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{bank}: {message}")]
    Invalid { bank: String, message: String },
    #[error("{bank}: environment variable {var} is not set")]
    MissingCredential { bank: String, var: String },
}

/// A bank's adapter manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Stable bank id, e.g. `demo-bank`.
    pub id: String,
    pub name: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The profile speaking the bank's API, e.g. `berlin-group`.
    pub profile: String,
    pub api_base_url: String,
    pub oauth: OAuthEndpoints,
    #[serde(default)]
    pub limits: Limits,
    /// The declarative rules of the `mapping` profile (required by it, refused by others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<super::mapping::rules::MappingSpec>,
    /// Present for the bundled sandbox banks: `serve` starts them itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSpec>,
    /// Present when the bank pushes event notifications (UK OBIE): bankgate registers its
    /// callback URL there and accepts the bank's signed events (`adapters::events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsSpec>,
    /// The bank's verification-of-payee endpoint (the EPC scheme's request and response),
    /// and the accounts it answers for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_of_payee: Option<VerificationOfPayee>,
    /// bankgate's eIDAS certificates at this bank (mutual TLS, request signatures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eidas: Option<super::eidas::EidasSpec>,
}

/// How a bank's pushed events are verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSpec {
    /// Where the bank publishes the public keys its events are signed with (a JWK Set).
    pub jwks_uri: String,
    /// The `iss` of its events; `oauth.issuer` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// `[verification_of_payee]`: where the bank answers the EPC verification-of-payee request,
/// for which IBANs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationOfPayee {
    /// The endpoint's URL (`https://api.bank.example/vop/v1/payee-verifications`).
    pub endpoint: String,
    /// The IBANs the bank holds, by prefix (country, check digits and the start of the
    /// national bank code: `DE92999900`, or a whole country, `NL`). The longest prefix any
    /// bank declares wins.
    pub iban_prefixes: Vec<String>,
}

impl VerificationOfPayee {
    fn validate(&self) -> Result<(), String> {
        if self.iban_prefixes.is_empty() {
            return Err("verification_of_payee.iban_prefixes must name at least one".into());
        }
        for prefix in &self.iban_prefixes {
            let bytes = prefix.as_bytes();
            let ok = (2..=34).contains(&bytes.len())
                && bytes[..2].iter().all(u8::is_ascii_uppercase)
                && bytes[2..]
                    .iter()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
            if !ok {
                return Err(format!(
                    "verification_of_payee.iban_prefixes: {prefix:?} is not the start of an \
                     IBAN (a country code, then digits and capital letters)"
                ));
            }
        }
        Ok(())
    }
}

/// The bank's authorization server, and where bankgate's credentials for it are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthEndpoints {
    /// The bank's issuer identifier: the `iss` it puts in its authorization responses (RFC
    /// 9207), and where its metadata is (RFC 8414, OpenID Connect Discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// May be left out (with `token_endpoint`) when `issuer` is given: the bank's metadata
    /// then names the endpoints ([`crate::adapters::bank_oauth::discovery`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authorization_endpoint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Name of the environment variable holding bankgate's client id at the bank.
    pub client_id_env: String,
    /// Name of the environment variable holding bankgate's client secret at the bank: required
    /// for `client_secret_basic`, the only method that uses a secret. A `private_key_jwt`
    /// bank needs none (a name given anyway is never looked up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// How bankgate authenticates at the bank's token, PAR and revocation endpoints:
    /// `client_secret_basic` (default) or `private_key_jwt` (RFC 7523, signed with the key in
    /// `client_key_file_env`; no secret is then needed or used).
    #[serde(default, skip_serializing_if = "is_default")]
    pub token_endpoint_auth_method: crate::jose::AuthMethod,
    /// Name of the environment variable holding the path of bankgate's private key (P-256,
    /// Ed25519 or RSA: ES256, EdDSA or PS256)
    /// (PKCS#8 PEM) for `private_key_jwt` at this bank. A bundled sandbox without it gets an
    /// ephemeral key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file_env: Option<String>,
    /// The bank's pushed authorization request endpoint (RFC 9126): when set, bankgate pushes
    /// its authorization request there and sends the user with `request_uri` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_authorization_request_endpoint: Option<String>,
    /// Send DPoP proofs (RFC 9449) to the bank's PAR and token endpoints and with every data
    /// call, so that its tokens are bound to bankgate's key.
    #[serde(default, skip_serializing_if = "is_default")]
    pub dpop: bool,
    /// Name of the environment variable holding the path of bankgate's DPoP key (P-256, Ed25519 or RSA,
    /// PKCS#8 PEM) at this bank; shared by every instance. A bundled sandbox without it gets
    /// an ephemeral key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key_file_env: Option<String>,
    /// Scopes bankgate adds to every authorization request at this bank, e.g.
    /// `offline_access`, without which an OpenID Connect server issues no refresh token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_scopes: Vec<String>,
    /// Parameters bankgate adds to every authorization request at this bank, e.g. RFC 8707
    /// `resource` (the bank's API, for a server that binds its tokens to one). The parameters
    /// bankgate sets itself cannot be given here.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub authorization_params: std::collections::BTreeMap<String, String>,
    /// Berlin Group: how the authorization request names the bank-side consent. Absent, as
    /// the scope `AIS:<consentId>`; set, as RFC 9396 `authorization_details` of this `type`:
    /// `[{"type": "<type>", "consentId": "<consentId>"}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_detail_type: Option<String>,
    /// The bank is an OpenID provider its customers may sign in to bankgate with: the
    /// connected-apps page (`/me/{bank}`) asks it who the person is (scope `openid`, the ID
    /// token's `sub`), and its consents record who approved them. Needs `issuer`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub sign_in: bool,
}

/// Authorization request parameters bankgate sets itself, which `authorization_params` may
/// not name.
pub const RESERVED_AUTHORIZATION_PARAMS: [&str; 11] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "request_uri",
    "request",
    "authorization_details",
    "claims",
];

impl OAuthEndpoints {
    /// Whether endpoints are left out, to be read from the issuer's metadata.
    pub fn needs_discovery(&self) -> bool {
        self.authorization_endpoint.is_empty() || self.token_endpoint.is_empty()
    }

    /// The variable holding bankgate's client secret, when its token endpoint authentication
    /// method uses one (`client_secret_basic`); `None` for `private_key_jwt`.
    pub fn secret_env(&self) -> Option<&str> {
        match self.token_endpoint_auth_method {
            crate::jose::AuthMethod::ClientSecretBasic => self.client_secret_env.as_deref(),
            crate::jose::AuthMethod::PrivateKeyJwt => None,
        }
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Per-bank limits: the settings of the bank's outbound stack (`adapters::outbound`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Timeout of one attempt of one call to the bank, body included.
    #[serde(default = "Limits::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries of an idempotent read after a transient failure (never of other calls).
    #[serde(default = "Limits::default_retries")]
    pub retries: u32,
    /// The first retry's backoff; each next one waits twice as long (plus jitter).
    #[serde(default = "Limits::default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// Consecutive failures after which the bank's circuit opens.
    #[serde(default = "Limits::default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls before one probe goes through.
    #[serde(default = "Limits::default_breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    /// The largest answer bankgate reads from the bank.
    #[serde(default = "Limits::default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Calls to this bank in flight at once, so that a hanging bank cannot take every request
    /// slot of the gateway; more wait in line for a slot (see `max_queued`).
    #[serde(default = "Limits::default_max_in_flight")]
    pub max_in_flight: usize,
    /// Calls that may wait for a slot at once; beyond them a call is shed at once (503).
    /// 0: none wait, a call beyond `max_in_flight` is shed at once.
    #[serde(default = "Limits::default_max_queued")]
    pub max_queued: usize,
    /// How long a call waits for a slot before it is shed (503): a healthy bank frees slots
    /// well within it, a slow one does not. 0: no wait.
    #[serde(default = "Limits::default_queue_timeout_ms")]
    pub queue_timeout_ms: u64,
}

impl Limits {
    fn default_timeout_ms() -> u64 {
        10_000
    }

    fn default_retries() -> u32 {
        2
    }

    fn default_retry_backoff_ms() -> u64 {
        100
    }

    fn default_breaker_failures() -> u32 {
        5
    }

    fn default_breaker_cooldown_ms() -> u64 {
        30_000
    }

    fn default_max_response_bytes() -> usize {
        4 * 1024 * 1024
    }

    fn default_max_in_flight() -> usize {
        64
    }

    fn default_max_queued() -> usize {
        1024
    }

    /// A sixth of the gateway's default request timeout (30 s): a request that waited this
    /// long still has time for the bank's answer.
    fn default_queue_timeout_ms() -> u64 {
        5_000
    }

    /// Each limit within its sane range.
    fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, message: &str| if ok { Ok(()) } else { Err(message.to_owned()) };
        check(
            (1..=300_000).contains(&self.timeout_ms),
            "limits.timeout_ms must be 1..=300000",
        )?;
        check(self.retries <= 5, "limits.retries must be at most 5")?;
        check(
            self.retry_backoff_ms <= 10_000,
            "limits.retry_backoff_ms must be at most 10000",
        )?;
        check(
            (1..=1000).contains(&self.breaker_failures),
            "limits.breaker_failures must be 1..=1000",
        )?;
        check(
            (1..=3_600_000).contains(&self.breaker_cooldown_ms),
            "limits.breaker_cooldown_ms must be 1..=3600000",
        )?;
        check(
            (1024..=64 * 1024 * 1024).contains(&self.max_response_bytes),
            "limits.max_response_bytes must be 1 KiB..=64 MiB",
        )?;
        check(
            (1..=10_000).contains(&self.max_in_flight),
            "limits.max_in_flight must be 1..=10000",
        )?;
        check(
            self.max_queued <= 100_000,
            "limits.max_queued must be at most 100000",
        )?;
        check(
            self.queue_timeout_ms <= 300_000,
            "limits.queue_timeout_ms must be at most 300000",
        )
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: Self::default_timeout_ms(),
            retries: Self::default_retries(),
            retry_backoff_ms: Self::default_retry_backoff_ms(),
            breaker_failures: Self::default_breaker_failures(),
            breaker_cooldown_ms: Self::default_breaker_cooldown_ms(),
            max_response_bytes: Self::default_max_response_bytes(),
            max_in_flight: Self::default_max_in_flight(),
            max_queued: Self::default_max_queued(),
            queue_timeout_ms: Self::default_queue_timeout_ms(),
        }
    }
}

/// How the bundled sandbox for this bank is started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// The loopback port the manifest's URLs point at.
    pub port: u16,
}

impl Manifest {
    /// Parses and validates one manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|error| ManifestError::Parse {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Loads every `*.toml` in `dir`, sorted by file name.
    pub fn load_dir(dir: &Path) -> Result<Vec<Manifest>, ManifestError> {
        let read_error = |source| ManifestError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_error)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();
        paths.iter().map(|path| Manifest::load(path)).collect()
    }

    /// Parses the JSON form of a manifest (as banks send it to the API); the error names the
    /// offending field.
    pub fn from_json(body: &[u8]) -> Result<Manifest, String> {
        serde_json::from_slice(body).map_err(|error| format!("manifest: {error}"))
    }

    /// Checks what serde cannot: a known profile, well-formed URLs without credentials,
    /// credential references that are environment variable names, sane limits, and (for the
    /// `mapping` profile) rules that compile.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            bank: self.id.clone(),
            message,
        };
        if !is_bank_id(&self.id) {
            return Err(invalid(
                "id must be 1-64 lowercase letters, digits and '-'".into(),
            ));
        }
        if !super::PROFILES.contains(&self.profile.as_str()) {
            return Err(invalid(format!(
                "unknown profile {:?}; expected one of {}",
                self.profile,
                super::PROFILES.join(", ")
            )));
        }
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(invalid("name must be 1-200 characters".into()));
        }
        if self.country.len() != 2 || !self.country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(invalid("country must be an ISO 3166-1 alpha-2 code".into()));
        }
        let urls = [
            ("api_base_url", Some(&self.api_base_url)),
            ("oauth.issuer", self.oauth.issuer.as_ref()),
            (
                "oauth.authorization_endpoint",
                Some(&self.oauth.authorization_endpoint),
            ),
            ("oauth.token_endpoint", Some(&self.oauth.token_endpoint)),
            (
                "verification_of_payee.endpoint",
                self.verification_of_payee.as_ref().map(|vop| &vop.endpoint),
            ),
            (
                "oauth.revocation_endpoint",
                self.oauth.revocation_endpoint.as_ref(),
            ),
            (
                "oauth.pushed_authorization_request_endpoint",
                self.oauth.pushed_authorization_request_endpoint.as_ref(),
            ),
            (
                "events.jwks_uri",
                self.events.as_ref().map(|events| &events.jwks_uri),
            ),
        ];
        if let Some(events) = &self.events {
            if events.jwks_uri.is_empty() {
                return Err(invalid("events.jwks_uri is required".into()));
            }
            if events
                .issuer
                .as_ref()
                .or(self.oauth.issuer.as_ref())
                .is_none()
            {
                return Err(invalid(
                    "events needs an issuer: events.issuer or oauth.issuer".into(),
                ));
            }
        }
        if let Some(eidas) = &self.eidas {
            eidas.validate(&self.profile).map_err(invalid)?;
        }
        if self.oauth.sign_in && self.oauth.issuer.is_none() {
            return Err(invalid(
                "oauth.sign_in needs oauth.issuer: the ID token is checked against it".into(),
            ));
        }
        if self.oauth.needs_discovery() && self.oauth.issuer.is_none() {
            return Err(invalid(
                "oauth.authorization_endpoint and oauth.token_endpoint may be left out only \
                 with oauth.issuer, whose metadata then names them"
                    .into(),
            ));
        }
        for (field, url) in urls {
            let Some(url) = url.filter(|url| !url.is_empty()) else {
                continue;
            };
            let parsed =
                url::Url::parse(url).map_err(|error| invalid(format!("{field}: {error}")))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(invalid(format!("{field}: scheme must be https")));
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(invalid(format!(
                    "{field}: credentials do not belong in a URL; use client_id_env and \
                     client_secret_env"
                )));
            }
            if parsed.fragment().is_some() {
                return Err(invalid(format!("{field}: must not have a fragment")));
            }
        }
        for (field, var) in [
            ("oauth.client_id_env", Some(&self.oauth.client_id_env)),
            (
                "oauth.client_secret_env",
                self.oauth.client_secret_env.as_ref(),
            ),
        ] {
            if var.is_some_and(|var| !is_env_var_name(var)) {
                return Err(invalid(format!(
                    "{field} must name an environment variable (A-Z, 0-9, _), not hold a value"
                )));
            }
        }
        self.validate_fapi()
            .map_err(|message| invalid(message.into()))?;
        self.limits.validate().map_err(invalid)?;
        if let Some(vop) = &self.verification_of_payee {
            vop.validate().map_err(invalid)?;
        }
        match (&self.mapping, self.profile == super::mapping::NAME) {
            (None, true) => {
                return Err(invalid(
                    "the mapping profile needs a [mapping] section".into(),
                ));
            }
            (Some(_), false) => {
                return Err(invalid(format!(
                    "[mapping] is for the mapping profile, not {}",
                    self.profile
                )));
            }
            (Some(spec), true) => {
                super::mapping::Mapping::compile(spec)
                    .map_err(|error| invalid(error.to_string()))?;
            }
            (None, false) => {}
        }
        Ok(())
    }

    /// The prefix every credential reference of a manifest a bank registers itself must carry:
    /// `BANKGATE_BANK_<ID>_` (the id upper-cased, `-` as `_`). The operator provisions a bank's
    /// credentials under it, and a bank can name no other variable of the gateway's environment
    /// (say, the admin token) to have it sent to its own token endpoint.
    pub fn registered_reference_prefix(bank_id: &str) -> String {
        format!(
            "BANKGATE_BANK_{}_",
            bank_id.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Refuses a registered manifest whose credential references leave the bank's own prefix
    /// ([`Manifest::registered_reference_prefix`]). Bundled manifests are the operator's and
    /// are not restricted.
    pub fn check_registered_references(&self) -> Result<(), ManifestError> {
        let prefix = Self::registered_reference_prefix(&self.id);
        let references = [
            ("oauth.client_id_env", Some(&self.oauth.client_id_env)),
            (
                "oauth.client_secret_env",
                self.oauth.client_secret_env.as_ref(),
            ),
            (
                "oauth.client_key_file_env",
                self.oauth.client_key_file_env.as_ref(),
            ),
            (
                "oauth.dpop_key_file_env",
                self.oauth.dpop_key_file_env.as_ref(),
            ),
        ];
        for (field, var) in references {
            if let Some(var) = var
                && !var.starts_with(&prefix)
            {
                return Err(ManifestError::Invalid {
                    bank: self.id.clone(),
                    message: format!(
                        "{field} must name a variable starting with {prefix}: a bank's \
                         credentials are provisioned under its own prefix"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The bank-side FAPI options: key file references that are environment variable names,
    /// only with the options they serve, and a profile that honours them in its own calls.
    fn validate_fapi(&self) -> Result<(), &'static str> {
        let oauth = &self.oauth;
        let private_key_jwt =
            oauth.token_endpoint_auth_method == crate::jose::AuthMethod::PrivateKeyJwt;
        for var in [&oauth.client_key_file_env, &oauth.dpop_key_file_env]
            .into_iter()
            .flatten()
        {
            if !is_env_var_name(var) {
                return Err(
                    "oauth.client_key_file_env and oauth.dpop_key_file_env must name \
                     environment variables (A-Z, 0-9, _)",
                );
            }
        }
        if oauth.client_secret_env.is_none() && !private_key_jwt {
            return Err("oauth.client_secret_env is required for client_secret_basic");
        }
        if oauth.client_key_file_env.is_some() && !private_key_jwt {
            return Err("oauth.client_key_file_env is only for private_key_jwt");
        }
        if oauth.dpop_key_file_env.is_some() && !oauth.dpop {
            return Err("oauth.dpop_key_file_env is only for dpop = true");
        }
        let scope_token = |scope: &str| {
            !scope.is_empty()
                && scope.bytes().all(|byte| {
                    byte == 0x21 || (0x23..=0x5b).contains(&byte) || (0x5d..=0x7e).contains(&byte)
                })
        };
        if !oauth.extra_scopes.iter().all(|scope| scope_token(scope)) {
            return Err(
                "oauth.extra_scopes must be RFC 6749 scope tokens (no spaces, quotes or backslashes)",
            );
        }
        if oauth
            .authorization_params
            .keys()
            .any(|name| name.is_empty() || RESERVED_AUTHORIZATION_PARAMS.contains(&name.as_str()))
        {
            return Err(
                "oauth.authorization_params may not set a parameter bankgate sets itself \
                 (response_type, client_id, redirect_uri, scope, state, PKCE, request_uri, \
                 request, authorization_details, claims)",
            );
        }
        if oauth
            .consent_detail_type
            .as_ref()
            .is_some_and(|kind| kind.trim().is_empty())
        {
            return Err("oauth.consent_detail_type must be a non-empty type");
        }
        let speaks_fapi = super::profile(&self.profile).is_some_and(|p| p.speaks_bank_fapi());
        if (private_key_jwt || oauth.dpop) && !speaks_fapi {
            return Err(
                "oauth: private_key_jwt and dpop at the bank are not supported by this profile yet",
            );
        }
        Ok(())
    }

    /// Points every URL of a sandbox manifest at `origin` (e.g. `http://127.0.0.1:40123`),
    /// for a sandbox started on another port than the manifest names.
    pub fn rebase(&mut self, origin: &str) {
        let Some(sandbox) = &self.sandbox else { return };
        let old = format!("http://127.0.0.1:{}", sandbox.port);
        let origin = origin.trim_end_matches('/');
        let swap = |url: &mut String| {
            if let Some(rest) = url.strip_prefix(&old) {
                *url = format!("{origin}{rest}");
            }
        };
        swap(&mut self.api_base_url);
        swap(&mut self.oauth.authorization_endpoint);
        swap(&mut self.oauth.token_endpoint);
        if let Some(issuer) = &mut self.oauth.issuer {
            swap(issuer);
        }
        if let Some(url) = &mut self.oauth.revocation_endpoint {
            swap(url);
        }
        if let Some(url) = &mut self.oauth.pushed_authorization_request_endpoint {
            swap(url);
        }
        if let Some(events) = &mut self.events {
            swap(&mut events.jwks_uri);
            if let Some(issuer) = &mut events.issuer {
                swap(issuer);
            }
        }
        if let Some(vop) = &mut self.verification_of_payee {
            swap(&mut vop.endpoint);
        }
    }
}

/// A bank id: 1-64 lowercase ASCII letters, digits and `-`.
pub fn is_bank_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// An environment variable name as shells write them: `[A-Z_][A-Z0-9_]*`, at most 128.
fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        toml::from_str(
            r#"
            id = "demo-bank"
            name = "Demo Bank"
            country = "DE"
            profile = "berlin-group"
            api_base_url = "http://127.0.0.1:8091"
            [oauth]
            issuer = "http://127.0.0.1:8091"
            authorization_endpoint = "http://127.0.0.1:8091/oauth/authorize"
            token_endpoint = "http://127.0.0.1:8091/oauth/token"
            client_id_env = "DEMO_BANK_CLIENT_ID"
            client_secret_env = "DEMO_BANK_CLIENT_SECRET"
            [sandbox]
            port = 8091
            "#,
        )
        .unwrap()
    }

    #[test]
    fn verification_of_payee_is_checked_and_rebased() {
        let mut manifest = manifest();
        manifest.verification_of_payee = Some(VerificationOfPayee {
            endpoint: "http://127.0.0.1:8091/vop/v1/payee-verifications".into(),
            iban_prefixes: vec!["DE".into(), "NL18BKGT".into()],
        });
        manifest.validate().unwrap();
        manifest.rebase("http://127.0.0.1:40000");
        assert_eq!(
            manifest.verification_of_payee.as_ref().unwrap().endpoint,
            "http://127.0.0.1:40000/vop/v1/payee-verifications"
        );
        for (endpoint, prefixes, expected) in [
            ("ftp://bank.example/vop", vec!["DE"], "scheme"),
            ("https://bank.example/vop", vec![], "at least one"),
            (
                "https://bank.example/vop",
                vec!["de"],
                "not the start of an IBAN",
            ),
            (
                "https://bank.example/vop",
                vec!["D"],
                "not the start of an IBAN",
            ),
            (
                "https://bank.example/vop",
                vec!["DE-1"],
                "not the start of an IBAN",
            ),
        ] {
            manifest.verification_of_payee = Some(VerificationOfPayee {
                endpoint: endpoint.into(),
                iban_prefixes: prefixes.into_iter().map(str::to_owned).collect(),
            });
            let error = manifest.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn valid_manifest_passes_and_rebases() {
        let mut manifest = manifest();
        manifest.validate().unwrap();
        manifest.rebase("http://127.0.0.1:40000");
        assert_eq!(
            manifest.oauth.token_endpoint,
            "http://127.0.0.1:40000/oauth/token"
        );
        assert_eq!(
            manifest.oauth.issuer.as_deref(),
            Some("http://127.0.0.1:40000")
        );
    }

    /// The bank-side FAPI options (issue 5): references, not values; only with what they
    /// serve; only for a profile that honours them; the PAR endpoint rebased with the rest.
    #[test]
    fn bank_side_fapi_options_are_checked() {
        let fapi = |m: &mut Manifest| {
            m.oauth.token_endpoint_auth_method = crate::jose::AuthMethod::PrivateKeyJwt;
            m.oauth.client_key_file_env = Some("DEMO_BANK_CLIENT_KEY_FILE".into());
            m.oauth.dpop = true;
            m.oauth.pushed_authorization_request_endpoint =
                Some("http://127.0.0.1:8091/oauth/par".into());
        };
        let mut ok = manifest();
        fapi(&mut ok);
        ok.validate().unwrap();
        ok.rebase("http://127.0.0.1:40000");
        assert_eq!(
            ok.oauth.pushed_authorization_request_endpoint.as_deref(),
            Some("http://127.0.0.1:40000/oauth/par")
        );
        check_invalid(
            |m| {
                fapi(m);
                m.oauth.client_key_file_env = Some("/etc/bankgate/key.pem".into());
            },
            "must name environment variables",
        );
        check_invalid(
            |m| m.oauth.client_key_file_env = Some("KEY_FILE".into()),
            "only for private_key_jwt",
        );
        check_invalid(
            |m| m.oauth.dpop_key_file_env = Some("KEY_FILE".into()),
            "only for dpop = true",
        );
        check_invalid(
            |m| {
                fapi(m);
                m.profile = "stet".into();
            },
            "not supported by this profile",
        );
        check_invalid(
            |m| m.oauth.pushed_authorization_request_endpoint = Some("ftp://x/par".into()),
            "oauth.pushed_authorization_request_endpoint",
        );
    }

    #[track_caller]
    fn check_invalid(edit: impl FnOnce(&mut Manifest), message: &str) {
        let mut manifest = manifest();
        edit(&mut manifest);
        let error = manifest.validate().unwrap_err().to_string();
        assert!(error.contains(message), "{error}");
    }

    #[test]
    fn invalid_manifests_are_rejected() {
        check_invalid(|m| m.profile = "swift".into(), "unknown profile");
        check_invalid(|m| m.id = "Demo Bank".into(), "id must be");
        check_invalid(|m| m.api_base_url = "not a url".into(), "api_base_url");
        check_invalid(|m| m.oauth.token_endpoint = "ftp://x/y".into(), "scheme");
        check_invalid(|m| m.country = "Germany".into(), "country");
        check_invalid(
            |m| m.oauth.client_secret_env = Some("s3cr3t-value".into()),
            "client_secret_env must name an environment variable",
        );
        check_invalid(
            |m| m.oauth.client_secret_env = None,
            "oauth.client_secret_env is required for client_secret_basic",
        );
        check_invalid(
            |m| m.api_base_url = "https://user:pw@bank.example".into(),
            "credentials do not belong in a URL",
        );
        check_invalid(|m| m.limits.timeout_ms = 0, "limits.timeout_ms");
        check_invalid(|m| m.limits.max_response_bytes = 10, "max_response_bytes");
        check_invalid(
            |m| m.profile = "mapping".into(),
            "needs a [mapping] section",
        );
    }

    /// Issue 19, item 1: a secret belongs only to the method that uses it.
    #[test]
    fn a_private_key_jwt_bank_names_no_secret() {
        let mut manifest = manifest();
        manifest.profile = "berlin-group".into();
        manifest.oauth.token_endpoint_auth_method = crate::jose::AuthMethod::PrivateKeyJwt;
        manifest.oauth.client_key_file_env = Some("BANK_CLIENT_KEY_FILE".into());
        assert_eq!(
            manifest.oauth.secret_env(),
            None,
            "a named secret is not looked up"
        );
        manifest.oauth.client_secret_env = None;
        manifest.validate().unwrap();
        let json = serde_json::to_value(&manifest).unwrap();
        assert!(json["oauth"].get("client_secret_env").is_none(), "{json}");
        assert_eq!(
            Manifest::from_json(&serde_json::to_vec(&json).unwrap()).unwrap(),
            manifest
        );
    }

    #[test]
    fn the_json_form_is_the_same_manifest() {
        let manifest = manifest();
        let json = serde_json::to_vec(&manifest).unwrap();
        assert_eq!(Manifest::from_json(&json).unwrap(), manifest);
        let inline_secret = br#"{"id": "x", "client_secret": "inline"}"#;
        let error = Manifest::from_json(inline_secret).unwrap_err();
        assert!(error.contains("unknown field `client_secret`"), "{error}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<Manifest>("id = \"x\"\nsecret = \"inline\"").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }
}
