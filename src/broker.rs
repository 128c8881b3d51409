//! The consent broker: bankgate's OAuth consent workflow between a platform, its user and a
//! bank, as domain services over named dependencies ([`Broker`]) — no HTTP types. The routes
//! of `http::routes::oauth` parse what arrives, call these, and render what they answer.
//!
//! PAR ([`Broker::push`]: the pushed request granted under the purpose's policy and kept
//! under a `request_uri`) → the consent screen ([`Broker::open`]: the consent recorded,
//! awaiting authorisation) → the user's decision ([`Broker::decide`]: a bank-side consent,
//! and the user sent to the bank with PKCE and `state`) → the bank's answer
//! ([`Broker::callback`]: code exchange, sealed grant, consent authorised, a one-time code for
//! the platform). [`extension`] re-consents before expiry; [`payment`] is a
//! `payment_initiation` consent, whose payment is created at the bank once.

pub mod extension;
pub mod payee;
pub mod payment;
pub mod sign_in;

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::adapters::bank_oauth::{self as bank_client, BankGrant, BankPerson};
use crate::adapters::{
    Adapter, BankAuthorization, BankConsent, ConsentRequest, Grants, Registry, StoredGrant,
};
use crate::audit::{Action, Auditor, Decision};
use crate::consent::{ACCOUNT_INFORMATION, AuthorizationDetail, Consent, ConsentStatus, Consents};
use crate::crypto::{self, Sealer};
use crate::error::{Error, OAuthError};
use crate::lifecycle::consent_event;
use crate::model::{quoted, text};
use crate::oauth::{
    AuthorizationCode, Authorizations, BANK_AUTHORIZATION_LIFETIME_SECS, CODE_LIFETIME_SECS,
    Client, Clients, PAR_LIFETIME_SECS, PushedRequest, REQUEST_URI_PREFIX,
};
use crate::payments::{PaymentRequest, Payments};
use crate::policy::Live;

/// What the broker works with, each named: the stores it reads and changes, the auditor, the
/// purpose policies in force, the banks, the sealer of bank grants and of the screen's
/// tokens, and the gateway's issuer. Plain values (shared handles), taken from the gateway's
/// state when a flow needs them (`App::broker`).
#[derive(Clone)]
pub struct Broker {
    pub consents: Arc<dyn Consents>,
    /// Pushed requests and the platforms' one-time codes.
    pub authorizations: Arc<dyn Authorizations>,
    /// Pending bank authorizations and the sealed bank grants.
    pub grants: Arc<dyn Grants>,
    pub clients: Arc<dyn Clients>,
    pub payments: Arc<dyn Payments>,
    /// The payee directory, where a payment to a handle finds its payee consent.
    pub payees: Arc<dyn crate::payments::payees::Payees>,
    /// The consents' unattended budgets (a payee resolved spends one unit of hers).
    pub unattended: Arc<dyn crate::notify::Subscriptions>,
    /// Reads a payee's accounts at her bank.
    pub bank_reader: Arc<dyn crate::notify::engine::BankReader>,
    /// Verifications of payee counted per platform and minute.
    pub verification_counts: Arc<dyn crate::payments::verification::VerificationCounts>,
    /// How many verifications of payee a platform may ask per minute.
    pub verifications_per_minute: u32,
    /// The sign-in starts each client address may make (`sign_in_starts_per_minute`).
    pub sign_in_starts: Arc<sign_in::StartLimit>,
    pub auditor: Auditor,
    pub policies: Live,
    pub banks: Arc<Registry>,
    pub sealer: Arc<Sealer>,
    /// The gateway's issuer (`public_url`): the `iss` of every authorization response, and
    /// the base of the callback banks send the user back to.
    pub issuer: String,
}

/// A pushed authorization request whose form was read and checked (client, redirect URI,
/// PKCE, DPoP key): what remains is its one `authorization_details` entry.
pub struct Push {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    /// The DPoP key the code is bound to (a proof or `dpop_jkt` at PAR).
    pub dpop_jkt: Option<String>,
    /// The one `authorization_details` entry, as the platform sent it.
    pub detail: serde_json::Value,
}

/// A pushed request kept: the `request_uri` the platform sends its user with.
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: i64,
}

/// What a pushed request becomes once validated and granted.
#[derive(Debug, Serialize, Deserialize)]
struct ValidatedRequest {
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    detail: AuthorizationDetail,
    policy_hash: String,
    /// The DPoP key the code is bound to (a proof or `dpop_jkt` at PAR).
    #[serde(default)]
    dpop_jkt: Option<String>,
    /// The consent this request extends (re-consent before expiry), if any.
    #[serde(default)]
    extends: Option<String>,
    /// The payment a `payment_initiation` request asks for (its consent has no data scopes).
    #[serde(default)]
    payment: Option<PaymentRequest>,
}

/// The prefix of the keys under which an extension waits for the user's decision and then for
/// the bank. They live with the pushed requests (single use, expiring) but are never accepted
/// as a platform's `request_uri`.
const EXTENSION_PREFIX: &str = "urn:bankgate:extension:";

/// What the consent screen shows, and what its form carries back.
pub struct Screen {
    /// The platform's name.
    pub platform: String,
    /// The consent as it will be once authorised (an extension's with its new expiry).
    pub consent: Consent,
    /// Its lifetime in days.
    pub days: u32,
    /// The key of a pending extension, which the decision names.
    pub extension: Option<String>,
    /// The MAC the decision must carry back.
    pub screen_token: String,
    /// The payment a payment consent asks for.
    pub payment: Option<PaymentRequest>,
}

/// The user's answer on the consent screen.
pub struct ScreenDecision {
    pub consent_id: String,
    pub screen_token: String,
    pub approve: bool,
    /// The pending extension the screen asked about, if it was an extension's.
    pub extension: Option<String>,
}

/// The bank's authorization response, as the callback received it.
#[derive(Debug, Deserialize)]
pub struct BankAnswer {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub iss: Option<String>,
}

/// Where the user's browser goes next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// To the bank's authorization endpoint.
    Bank(String),
    /// Back to the platform's redirect URI with `params`, its `state` and the gateway's `iss`
    /// (RFC 9207).
    Platform {
        redirect_uri: String,
        state: Option<String>,
        params: Vec<(String, String)>,
    },
    /// A person signed in through their bank ([`sign_in`]): `person` is who they are there,
    /// as bankgate keeps it (`crypto::Sealer::bank_person`); their connected-apps page opens
    /// on `focus` when the sign-in was started for one consent.
    SignedIn {
        bank: String,
        person: String,
        focus: Option<String>,
    },
}

impl Next {
    /// Back to `consent`'s platform with `params`.
    fn to_platform(consent: &Consent, params: &[(&str, &str)]) -> Next {
        Next::back(&consent.redirect_uri, consent.state.as_deref(), params)
    }

    /// Back to `redirect_uri` with `params` and `state`.
    fn back(redirect_uri: &str, state: Option<&str>, params: &[(&str, &str)]) -> Next {
        Next::Platform {
            redirect_uri: redirect_uri.to_owned(),
            state: state.map(str::to_owned),
            params: params
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }
}

/// What the platform is told when the bank leg cannot start.
const BANK_UNAVAILABLE: &[(&str, &str)] = &[
    ("error", "temporarily_unavailable"),
    (
        "error_description",
        "the bank is not available; try again later",
    ),
];

/// Where [`Broker::to_bank`] sends the user.
enum ToBank {
    /// To the bank (this URL); the pending authorization is stored under its `state`.
    Redirect(String),
    /// Nowhere: the bank could not be reached (logged).
    Unavailable,
}

fn invalid(message: &str) -> Error {
    Error::InvalidRequest(message.to_owned())
}

fn details_error(description: String) -> Error {
    Error::from(OAuthError::new(
        "invalid_authorization_details",
        description,
    ))
}

/// What the consent screen's MAC covers.
fn screen_message(consent_id: &str) -> String {
    format!("consent-screen\0{consent_id}")
}

impl Broker {
    /// The redirect URI banks send users back to.
    pub fn callback_url(&self) -> String {
        format!("{}/oauth/callback", self.issuer)
    }

    /// Grants `client`'s pushed request under the purpose policy in force and keeps it under
    /// a new `request_uri`: prohibited and unknown purposes, approval, region and scopes
    /// refused; lifetime and history clamped. A `payment_initiation` detail is checked as a
    /// payment ([`payment::check`]); a detail naming `consent_id` extends that consent
    /// ([`extension`]), granted anew under the policy in force.
    pub async fn push(&self, client: &Client, push: Push) -> Result<Pushed, Error> {
        let Push {
            redirect_uri,
            state,
            code_challenge,
            dpop_jkt,
            detail,
        } = push;
        let (detail, policy_hash, extends, payment) = if payment::is_payment(&detail) {
            let (payment, detail, policy_hash) = payment::check(self, client, detail).await?;
            (detail, policy_hash, None, Some(payment))
        } else {
            let (detail, policy_hash, extends) =
                self.grant_account_information(client, detail).await?;
            (detail, policy_hash, extends, None)
        };
        self.store_pushed(
            client,
            ValidatedRequest {
                redirect_uri,
                state,
                code_challenge,
                detail,
                policy_hash,
                dpop_jkt,
                extends,
                payment,
            },
        )
        .await
    }

    /// An `account_information` detail granted under the purpose's policy in force: the
    /// detail as granted, the policy's hash, and the consent it extends, if it names one.
    async fn grant_account_information(
        &self,
        client: &Client,
        detail: serde_json::Value,
    ) -> Result<(AuthorizationDetail, String, Option<String>), Error> {
        let mut detail: AuthorizationDetail = serde_json::from_value(detail)
            .map_err(|error| details_error(format!("authorization_details: {error}")))?;
        if detail.kind != ACCOUNT_INFORMATION {
            return Err(details_error(format!("type must be {ACCOUNT_INFORMATION}")));
        }
        if self.banks.get(&detail.bank).is_none() {
            return Err(details_error(format!(
                "unknown bank {}",
                quoted(&detail.bank)
            )));
        }
        if detail.user_ref.is_empty() || detail.user_ref.len() > 128 {
            return Err(details_error("user_ref must be 1-128 characters".into()));
        }
        for (field, value) in [
            ("purpose", Some(&detail.purpose)),
            ("user_ref", Some(&detail.user_ref)),
            ("consent_id", detail.consent_id.as_ref()),
        ] {
            if let Some(value) = value {
                text(field, value).map_err(details_error)?;
            }
        }
        let extends = match detail.consent_id.take() {
            None => None,
            Some(id) => Some(
                extension::extendable(self, &client.client_id, &id, &detail)
                    .await?
                    .map_err(details_error)?,
            ),
        };
        let grant = self
            .policies
            .current()
            .grant(&detail, &client.platform())
            .map_err(|refusal| details_error(refusal.to_string()))?;
        detail.scopes = grant.scopes;
        detail.expires_in_days = grant.expires_in_days;
        detail.history_days = grant.history_days;
        Ok((detail, grant.policy_hash, extends))
    }

    /// Stores a validated pushed request under a new `request_uri`.
    async fn store_pushed(
        &self,
        client: &Client,
        validated: ValidatedRequest,
    ) -> Result<Pushed, Error> {
        let request_uri = format!("{REQUEST_URI_PREFIX}{}", crypto::random_token(32)?);
        self.authorizations
            .insert_pushed_request(&PushedRequest {
                request_uri: request_uri.clone(),
                client_id: client.client_id.clone(),
                request: serde_json::to_value(&validated)
                    .map_err(|error| Error::Internal(error.to_string()))?,
                expires_at: Utc::now() + Duration::seconds(PAR_LIFETIME_SECS),
            })
            .await?;
        Ok(Pushed {
            request_uri,
            expires_in: PAR_LIFETIME_SECS,
        })
    }

    /// Opens the consent screen of a pushed request (`client_id` and `request_uri` as the
    /// user's browser brought them; single use): the consent recorded, awaiting
    /// authorisation, and audited (`consent_created`, a payment's with its facts); or, for an
    /// extension, the consent with its proposed expiry.
    pub async fn open(
        &self,
        client_id: Option<&str>,
        request_uri: Option<&str>,
    ) -> Result<Screen, Error> {
        let request_uri =
            request_uri.ok_or_else(|| invalid("request_uri is required (PAR is mandatory)"))?;
        // Only a platform's pushed request (never an internal extension key).
        if !request_uri.starts_with(REQUEST_URI_PREFIX) {
            return Err(invalid(
                "this authorization request is unknown, used or expired",
            ));
        }
        let pushed = self
            .authorizations
            .take_pushed_request(request_uri)
            .await?
            .ok_or_else(|| invalid("this authorization request is unknown, used or expired"))?;
        if client_id != Some(pushed.client_id.as_str()) || pushed.expires_at < Utc::now() {
            return Err(invalid(
                "this authorization request is unknown, used or expired",
            ));
        }
        let request: ValidatedRequest = serde_json::from_value(pushed.request)
            .map_err(|_| Error::Internal("stored pushed request does not decode".into()))?;
        let client = self
            .clients
            .client(&pushed.client_id)
            .await?
            .ok_or_else(|| invalid("unknown client"))?;
        if request.extends.is_some() {
            return extension::screen(self, &client, request).await;
        }
        let now = Utc::now();
        let detail = request.detail;
        let consent = Consent {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: client.client_id.clone(),
            bank_id: detail.bank.clone(),
            purpose: detail.purpose.clone(),
            scopes: detail.scopes.clone(),
            history_days: detail.history_days,
            user_ref: detail.user_ref.clone(),
            status: ConsentStatus::AwaitingAuthorisation,
            policy_hash: request.policy_hash,
            redirect_uri: request.redirect_uri,
            state: request.state,
            code_challenge: request.code_challenge,
            dpop_jkt: request.dpop_jkt,
            created_at: now,
            expires_at: now + Duration::days(i64::from(detail.expires_in_days)),
        };
        self.consents.insert_consent(&consent).await?;
        match &request.payment {
            // Recorded with its consent, before any bank call; the event carries its facts.
            Some(payment) => {
                payment::record(self, &consent, payment).await?;
            }
            None => {
                self.auditor
                    .record(consent_event(
                        Action::ConsentCreated,
                        &client.client_id,
                        &consent,
                    ))
                    .await
                    .map_err(Error::AuditUnavailable)?;
            }
        }
        let screen_token = self.sealer.mac(screen_message(&consent.id).as_bytes());
        Ok(Screen {
            platform: client.name,
            consent,
            days: detail.expires_in_days,
            extension: None,
            screen_token,
            payment: request.payment,
        })
    }

    /// The user's decision on the consent screen: declined → the consent rejected and the
    /// platform told `access_denied`; approved → to the bank (a payment's resource created at
    /// the bank first), or back to the platform when the bank cannot be reached.
    pub async fn decide(&self, decision: ScreenDecision) -> Result<Next, Error> {
        if let Some(key) = decision.extension.clone() {
            return extension::decide(self, decision, &key).await;
        }
        if !self.sealer.verify_mac(
            screen_message(&decision.consent_id).as_bytes(),
            &decision.screen_token,
        ) {
            return Err(invalid("this consent screen is not valid"));
        }
        let consent = self
            .consents
            .consent(&decision.consent_id)
            .await?
            .filter(|consent| consent.status == ConsentStatus::AwaitingAuthorisation)
            .ok_or_else(|| invalid("this consent was already decided"))?;
        if !decision.approve {
            payment::abandon(self, &consent).await?;
            return self
                .reject(&consent, "user", "access_denied", "the user declined")
                .await;
        }
        if let Some(recorded) = self.payments.payment_of_consent(&consent.id).await? {
            return self.payment_to_bank(&consent, &recorded).await;
        }
        match self
            .to_bank(&consent, consent.expires_at.date_naive(), None, None)
            .await?
        {
            ToBank::Redirect(url) => Ok(Next::Bank(url)),
            ToBank::Unavailable => Ok(Next::to_platform(&consent, BANK_UNAVAILABLE)),
        }
    }

    /// The user confirmed a payment: the bank's payment resource is created (recorded first,
    /// one call) and the user sent to the bank to authorise it; or, when the bank did not
    /// create it, the consent is rejected and the platform told.
    async fn payment_to_bank(
        &self,
        consent: &Consent,
        recorded: &crate::payments::Payment,
    ) -> Result<Next, Error> {
        let adapter = self.adapter(&consent.bank_id)?;
        let started = match payment::create_at_bank(self, &adapter, recorded).await? {
            payment::Creation::Created(created) => {
                self.to_bank(
                    consent,
                    consent.expires_at.date_naive(),
                    None,
                    Some(created),
                )
                .await?
            }
            payment::Creation::Failed => ToBank::Unavailable,
            payment::Creation::Refused(reason) => {
                payment::abandon(self, consent).await?;
                return self
                    .reject(consent, "gateway", "access_denied", &reason)
                    .await;
            }
        };
        match started {
            ToBank::Redirect(url) => Ok(Next::Bank(url)),
            ToBank::Unavailable => {
                payment::abandon(self, consent).await?;
                self.reject(
                    consent,
                    &format!("bank:{}", consent.bank_id),
                    "temporarily_unavailable",
                    "the bank did not take the payment",
                )
                .await
            }
        }
    }

    /// The adapter of a bank a consent names.
    fn adapter(&self, bank_id: &str) -> Result<Arc<Adapter>, Error> {
        self.banks
            .get(bank_id)
            .ok_or_else(|| Error::Internal("bank not loaded".into()))
    }

    /// Creates the bank-side consent (valid until `valid_until`; `created` when a payment's
    /// resource exists already), starts the bank's authorization (pushed first where the
    /// bank wants PAR), remembers it under its `state` and answers the bank's URL. An
    /// `extension` (its platform and request) waits for the bank under that state.
    async fn to_bank(
        &self,
        consent: &Consent,
        valid_until: chrono::NaiveDate,
        extension: Option<(&str, &ValidatedRequest)>,
        created: Option<BankConsent>,
    ) -> Result<ToBank, Error> {
        let adapter = self.adapter(&consent.bank_id)?;
        let started = async {
            let bank_consent = match created {
                Some(created) => created,
                None => {
                    adapter
                        .profile
                        .create_consent(
                            &adapter.bank,
                            &ConsentRequest {
                                scopes: consent.scopes.clone(),
                                valid_until,
                                // The purpose's unattended budget, as the bank-side access
                                // frequency.
                                frequency_per_day: self
                                    .policies
                                    .get(&consent.purpose)
                                    .map_or(1, |policy| policy.max_unattended_per_day.max(1)),
                                recurring: true,
                            },
                        )
                        .await?
                }
            };
            // Pushed to the bank first (PAR) when its manifest names a PAR endpoint.
            let redirect = bank_client::start_authorization(
                &adapter.bank,
                &self.callback_url(),
                &bank_consent.oauth_scopes,
                &bank_consent.authorization_params,
            )
            .await?;
            Ok::<_, Error>((bank_consent, redirect))
        }
        .await;
        let (bank_consent, redirect) = match started {
            Ok(started) => started,
            Err(error) => {
                tracing::warn!(bank = %consent.bank_id, %error, "bank consent could not be started");
                return Ok(ToBank::Unavailable);
            }
        };
        if let Some((client_id, request)) = extension {
            extension::park_for_bank(self, &redirect.state, client_id, request).await?;
        }
        self.grants
            .insert_bank_authorization(&BankAuthorization {
                state: redirect.state.clone(),
                consent_id: consent.id.clone(),
                bank_id: consent.bank_id.clone(),
                pkce_verifier: self
                    .sealer
                    .seal(redirect.state.as_bytes(), redirect.pkce_verifier.as_bytes())?,
                bank_consent_id: bank_consent.id,
                expires_at: Utc::now() + Duration::seconds(BANK_AUTHORIZATION_LIFETIME_SECS),
            })
            .await?;
        Ok(ToBank::Redirect(redirect.url.to_string()))
    }

    /// Marks a consent rejected, audits it, and sends the user back to the platform with
    /// `error`.
    async fn reject(
        &self,
        consent: &Consent,
        actor: &str,
        error: &str,
        reason: &str,
    ) -> Result<Next, Error> {
        if self
            .consents
            .transition_consent(
                &consent.id,
                ConsentStatus::AwaitingAuthorisation,
                ConsentStatus::Rejected,
            )
            .await?
        {
            let mut event = consent_event(Action::ConsentRejected, actor, consent);
            event.decision = Decision::Deny;
            event.reason = Some(reason.to_owned());
            self.auditor
                .record(event)
                .await
                .map_err(Error::AuditUnavailable)?;
        }
        Ok(Next::to_platform(consent, &[("error", error)]))
    }

    /// The bank's answer at the callback: checked against the pending authorization (`state`,
    /// single use, unexpired) and the bank it went to (mix-up defence, RFC 9207); a refusal
    /// rejects the consent; otherwise the code is exchanged, the grant sealed and stored, the
    /// consent authorised (compare-and-set) and audited, and the platform gets a one-time
    /// code. An extension's answer finishes the extension.
    pub async fn callback(&self, answer: BankAnswer) -> Result<Next, Error> {
        let state = answer
            .state
            .clone()
            .ok_or_else(|| invalid("state is missing"))?;
        let pending = self
            .grants
            .take_bank_authorization(&state)
            .await?
            .filter(|pending| pending.expires_at > Utc::now())
            .ok_or_else(|| invalid("unknown, used or expired state"))?;
        let adapter = self.adapter(&pending.bank_id)?;
        // Mix-up defence (RFC 9207): the response must come from the bank we sent the user to.
        if let Some(expected) = &adapter.bank.manifest.oauth.issuer
            && answer.iss.as_deref() != Some(expected.as_str())
        {
            return Err(invalid(
                "the authorization response did not come from the expected bank",
            ));
        }
        if let Some(focus) = sign_in::pending(&pending) {
            return sign_in::finish(self, &adapter, pending, focus, answer).await;
        }
        if let Some(extension) = extension::pending(self, &state).await? {
            return extension::finish(self, &adapter, pending, extension, answer).await;
        }
        let consent = self
            .consents
            .consent(&pending.consent_id)
            .await?
            .ok_or_else(|| Error::Internal("pending authorization without consent".into()))?;
        if answer.error.is_some() {
            payment::abandon(self, &consent).await?;
            return self
                .reject(
                    &consent,
                    &format!("bank:{}", pending.bank_id),
                    "access_denied",
                    "the bank or the user refused",
                )
                .await;
        }
        let (grant, person) = self
            .exchange_at_bank(&adapter, &pending, answer.code)
            .await?;
        self.grants
            .put_grant(&self.seal_grant(&consent.id, &grant)?)
            .await?;
        // Who approved, as the bank knows them: their connected-apps page finds it by that.
        if let Some(person) = person {
            let bank_person = self.sealer.bank_person(&pending.bank_id, &person.subject);
            self.consents
                .set_bank_person(&consent.id, &bank_person)
                .await?;
        }
        if !self
            .consents
            .transition_consent(
                &consent.id,
                ConsentStatus::AwaitingAuthorisation,
                ConsentStatus::Authorised,
            )
            .await?
        {
            return Err(invalid("this consent was already decided"));
        }
        self.auditor
            .record(consent_event(
                Action::ConsentAuthorised,
                &format!("bank:{}", pending.bank_id),
                &consent,
            ))
            .await
            .map_err(Error::AuditUnavailable)?;
        let code = self
            .issue_code(
                &consent,
                &consent.redirect_uri,
                &consent.code_challenge,
                consent.dpop_jkt.clone(),
            )
            .await?;
        Ok(Next::to_platform(&consent, &[("code", &code)]))
    }

    /// Exchanges the bank's code (with the PKCE verifier sealed under the pending
    /// authorization's `state`) for the bank grant, and the person the bank's ID token names
    /// if it sent one.
    async fn exchange_at_bank(
        &self,
        adapter: &Adapter,
        pending: &BankAuthorization,
        code: Option<String>,
    ) -> Result<(BankGrant, Option<BankPerson>), Error> {
        let code = code.ok_or_else(|| invalid("code is missing"))?;
        let verifier = String::from_utf8(
            self.sealer
                .open(pending.state.as_bytes(), &pending.pkce_verifier)?,
        )
        .map_err(|_| Error::Internal("sealed verifier is not text".into()))?;
        Ok(bank_client::exchange_code_naming(
            &adapter.bank,
            &self.callback_url(),
            &code,
            verifier,
            pending.bank_consent_id.clone(),
        )
        .await?)
    }

    /// A bank grant sealed for storage under its consent.
    fn seal_grant(&self, consent_id: &str, grant: &BankGrant) -> Result<StoredGrant, Error> {
        let plaintext =
            serde_json::to_vec(grant).map_err(|error| Error::Internal(error.to_string()))?;
        Ok(StoredGrant {
            consent_id: consent_id.to_owned(),
            sealed: self.sealer.seal(consent_id.as_bytes(), &plaintext)?,
            updated_at: Utc::now(),
        })
    }

    /// Issues the platform's one-time code for `consent`, bound to the authorization
    /// request's redirect URI, PKCE challenge and DPoP key.
    async fn issue_code(
        &self,
        consent: &Consent,
        redirect_uri: &str,
        code_challenge: &str,
        dpop_jkt: Option<String>,
    ) -> Result<String, Error> {
        let code = crypto::random_token(32)?;
        self.authorizations
            .insert_code(&AuthorizationCode {
                code_hash: crypto::sha256_hex(code.as_bytes()),
                consent_id: consent.id.clone(),
                client_id: consent.client_id.clone(),
                redirect_uri: redirect_uri.to_owned(),
                code_challenge: code_challenge.to_owned(),
                expires_at: Utc::now() + Duration::seconds(CODE_LIFETIME_SECS),
                dpop_jkt,
            })
            .await?;
        Ok(code)
    }
}
