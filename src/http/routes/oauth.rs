//! bankgate's authorization server towards platforms, and the bank leg of the consent flow:
//!
//! PAR → `/oauth/authorize` (consent screen) → user approves → bank-side consent + redirect to
//! the bank (PKCE, `state`) → `/oauth/callback` (code exchange, sealed grant) → redirect to the
//! platform with a one-time code and `iss` → `/oauth/token`.
//!
//! A DPoP proof (or `dpop_jkt`) at PAR binds the code to its key (RFC 9449 §10); a pushed
//! request naming an authorised consent extends it ([`extension`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::adapters::bank_oauth::{self as bank_client, BankGrant};
use crate::adapters::{Adapter, BankConsent, ConsentRequest};
use crate::adapters::{BankAuthorization, StoredGrant};
use crate::app::App;
use crate::audit::{Action, Decision, Event};
use crate::consent::{ACCOUNT_INFORMATION, AuthorizationDetail, Consent, ConsentStatus};
use crate::crypto;
use crate::error::{Error, OAuthError};
use crate::lifecycle::consent_event;
use crate::oauth::client_auth::AuthParams;
use crate::oauth::dpop::DpopError;
use crate::oauth::{
    AUDIT_READ, BANK_AUTHORIZATION_LIFETIME_SECS, CODE_LIFETIME_SECS, PAR_LIFETIME_SECS,
    REQUEST_URI_PREFIX,
};
use crate::oauth::{AuthorizationCode, Client, PushedRequest, Role};
use crate::payments::PaymentRequest;
use crate::policy::Platform;

mod configuration;
mod extension;
mod payment;
mod screen;
mod token;

use super::input::{self, OAuthForm};

/// The OAuth routes and metadata.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/oauth/par", post(par))
        .route("/oauth/authorize", get(authorize).post(decide))
        .route("/oauth/callback", get(callback))
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(token::revoke))
        .route(
            "/register/{client_id}",
            get(configuration::read).put(configuration::update),
        )
        .with_state(app)
}

/// RFC 8414 metadata: every value is what the endpoints enforce for platforms. Without
/// `allow_insecure_clients` the only client authentication is `private_key_jwt` (the
/// operator's compliance and bank clients may still use a secret; they do not read this).
async fn metadata(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let base = &app.config.public_url;
    let signing_algs = ["ES256", "EdDSA", "PS256"];
    let auth_methods: &[&str] = if app.config.allow_insecure_clients {
        &["private_key_jwt", "client_secret_basic"]
    } else {
        &["private_key_jwt"]
    };
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "pushed_authorization_request_endpoint": format!("{base}/oauth/par"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "require_pushed_authorization_requests": true,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": signing_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
        "dpop_signing_alg_values_supported": crate::oauth::dpop::ALGS,
        "authorization_response_iss_parameter_supported": true,
        "authorization_details_types_supported": [ACCOUNT_INFORMATION],
        "access_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": [
            "accounts", "balances", "transactions", "identity", AUDIT_READ,
            crate::oauth::CONSENTS_MANAGE,
        ],
    }))
}

/// Every key that verifies access tokens and webhooks: the current one and the previous ones.
async fn jwks(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(app.tokens.jwks())
}

/// A pushed authorization request's form (RFC 9126).
#[derive(Deserialize)]
struct ParForm {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    authorization_details: Option<String>,
    #[allow(dead_code)]
    scope: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    /// Not allowed in a pushed request (RFC 9126 §2.1); read only to refuse it.
    request_uri: Option<String>,
    /// The thumbprint of the DPoP key to bind the code to (RFC 9449 §10).
    dpop_jkt: Option<String>,
}

impl ParForm {
    fn auth(&self) -> AuthParams<'_> {
        AuthParams {
            client_id: self.client_id.as_deref(),
            client_assertion_type: self.client_assertion_type.as_deref(),
            client_assertion: self.client_assertion.as_deref(),
        }
    }
}

/// What a pushed request becomes once validated and granted.
#[derive(Debug, serde::Serialize, Deserialize)]
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

/// `POST /oauth/par` (RFC 9126 + RFC 9396; RFC 9449 §10 for DPoP).
async fn par(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm<ParForm>,
) -> Response {
    let client = match token::authenticate(&app, &headers, form.auth()).await {
        Ok(client) => client,
        Err(error) => return token::Refusal::from(error).into_response(&app),
    };
    let refused = par_refusal_event(&app, &client, form.authorization_details.as_deref());
    match push(&app, &headers, &client, form).await {
        Ok(body) => {
            let mut response = (
                StatusCode::CREATED,
                [(header::CACHE_CONTROL, "no-store")],
                Json(body),
            )
                .into_response();
            token::insert_nonce(&app, response.headers_mut());
            response
        }
        Err(refusal) => token::refused(&app, &headers, refused, refusal).await,
    }
}

/// The event that records the refusal of an authenticated client's pushed request
/// (`consent_created`, `deny`): the client, and what the request asked for as far as it names
/// what the gateway knows — a bank it runs, a purpose in force, the requested scopes, the user
/// reference (pseudonymised when recorded). Anything else is only quoted by the reason.
fn par_refusal_event(app: &App, client: &Client, details: Option<&str>) -> Event {
    let mut event = token::client_event(Action::ConsentCreated, client);
    if let Some(request) = details
        .and_then(|details| serde_json::from_str::<[PaymentRequest; 1]>(details).ok())
        .map(|[request]| request)
    {
        if app.banks.get(&request.bank).is_some() {
            event.bank = Some(request.bank.clone());
        }
        if let Some(policy) = app.policies.current().get(&request.purpose) {
            event.purpose = Some(request.purpose.clone());
            event.policy_hash = Some(policy.hash.clone());
        }
        if (1..=128).contains(&request.user_ref.len()) && !request.user_ref.contains('\0') {
            event.user_ref = Some(request.user_ref.clone());
        }
        return payment::with_facts(event, &request);
    }
    let detail = details
        .and_then(|details| serde_json::from_str::<Vec<AuthorizationDetail>>(details).ok())
        .and_then(|details| <[AuthorizationDetail; 1]>::try_from(details).ok());
    if let Some([detail]) = detail {
        if app.banks.get(&detail.bank).is_some() {
            event.bank = Some(detail.bank);
        }
        if let Some(policy) = app.policies.current().get(&detail.purpose) {
            event.purpose = Some(detail.purpose);
            event.policy_hash = Some(policy.hash.clone());
        }
        if (1..=128).contains(&detail.user_ref.len()) && !detail.user_ref.contains('\0') {
            event.user_ref = Some(detail.user_ref);
        }
        event.categories = detail
            .scopes
            .iter()
            .map(|scope| scope.as_str().to_owned())
            .collect();
    }
    event
}

/// An RFC 7638 thumbprint as `dpop_jkt` carries it: base64url SHA-256, 43 characters.
fn is_thumbprint(jkt: &str) -> bool {
    jkt.len() == 43
        && jkt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Validates and grants `client`'s pushed request (authenticated by [`par`]); stores it.
async fn push(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    form: ParForm,
) -> Result<serde_json::Value, token::Refusal> {
    let invalid = |description: &str| Error::from(OAuthError::new("invalid_request", description));
    if form
        .client_id
        .as_deref()
        .is_some_and(|id| id != client.client_id)
    {
        return Err(invalid("client_id does not match the authenticated client").into());
    }
    if client.role != Role::Platform {
        return Err(
            OAuthError::new("unauthorized_client", "only platforms request consent").into(),
        );
    }
    // RFC 9126 §2.1: a pushed request cannot point at another one.
    if form.request_uri.is_some() {
        return Err(invalid("request_uri is not allowed in a pushed authorization request").into());
    }
    if form.response_type.as_deref() != Some("code") {
        return Err(
            OAuthError::new("unsupported_response_type", "response_type must be code").into(),
        );
    }
    let redirect_uri = form
        .redirect_uri
        .ok_or_else(|| invalid("redirect_uri is required"))?;
    if !client.redirect_uris.contains(&redirect_uri) {
        return Err(invalid("redirect_uri is not registered for this client").into());
    }
    let code_challenge = form
        .code_challenge
        .filter(|challenge| (43..=128).contains(&challenge.len()))
        .ok_or_else(|| invalid("a PKCE code_challenge is required"))?;
    if form.code_challenge_method.as_deref() != Some("S256") {
        return Err(invalid("code_challenge_method must be S256").into());
    }
    // RFC 9449 §10: a proof at PAR (or `dpop_jkt`) binds the code to a key; both must agree.
    if form
        .dpop_jkt
        .as_deref()
        .is_some_and(|jkt| !is_thumbprint(jkt))
    {
        return Err(invalid("dpop_jkt must be a JWK SHA-256 thumbprint (base64url)").into());
    }
    let proof = token::request_proof(app, headers, "POST", "/oauth/par").await?;
    let dpop_jkt = match (proof.map(|proof| proof.jkt), form.dpop_jkt) {
        (Some(proven), Some(named)) if proven != named => {
            return Err(DpopError::Invalid("dpop_jkt does not match the DPoP proof").into());
        }
        (proven, named) => proven.or(named),
    };
    let details_error = |description: String| {
        Error::from(OAuthError::new(
            "invalid_authorization_details",
            description,
        ))
    };
    let details: Vec<serde_json::Value> = serde_json::from_str(
        form.authorization_details
            .as_deref()
            .ok_or_else(|| details_error("authorization_details is required".into()))?,
    )
    .map_err(|error| details_error(format!("authorization_details: {error}")))?;
    let [detail] = <[serde_json::Value; 1]>::try_from(details).map_err(|_| {
        details_error("exactly one authorization_details entry is supported".into())
    })?;
    if payment::is_payment(&detail) {
        let (payment, detail, policy_hash) = payment::check(app, client, detail).await?;
        return store_pushed(
            app,
            client,
            ValidatedRequest {
                redirect_uri,
                state: form.state,
                code_challenge,
                detail,
                policy_hash,
                dpop_jkt,
                extends: None,
                payment: Some(payment),
            },
        )
        .await;
    }
    let mut detail: AuthorizationDetail = serde_json::from_value(detail)
        .map_err(|error| details_error(format!("authorization_details: {error}")))?;
    if detail.kind != ACCOUNT_INFORMATION {
        return Err(details_error(format!("type must be {ACCOUNT_INFORMATION}")).into());
    }
    if app.banks.get(&detail.bank).is_none() {
        return Err(details_error(format!("unknown bank {}", input::quoted(&detail.bank))).into());
    }
    if detail.user_ref.is_empty() || detail.user_ref.len() > 128 {
        return Err(details_error("user_ref must be 1-128 characters".into()).into());
    }
    for (field, value) in [
        ("purpose", Some(&detail.purpose)),
        ("user_ref", Some(&detail.user_ref)),
        ("consent_id", detail.consent_id.as_ref()),
    ] {
        if let Some(value) = value {
            input::text(field, value).map_err(details_error)?;
        }
    }
    let extends = match detail.consent_id.take() {
        None => None,
        Some(id) => Some(
            extendable(app, &client.client_id, &id, &detail)
                .await?
                .map_err(details_error)?,
        ),
    };
    // The purpose policy in force: prohibited and unknown purposes, approval, region, scopes
    // refused; lifetime and history clamped (an extension is granted anew under it).
    let grant = app
        .policies
        .current()
        .grant(
            &detail,
            &Platform {
                approved_purposes: &client.allowed_purposes,
                region: &client.region,
            },
        )
        .map_err(|refusal| details_error(refusal.to_string()))?;
    detail.scopes = grant.scopes;
    detail.expires_in_days = grant.expires_in_days;
    detail.history_days = grant.history_days;

    let validated = ValidatedRequest {
        redirect_uri,
        state: form.state,
        code_challenge,
        detail,
        policy_hash: grant.policy_hash,
        dpop_jkt,
        extends,
        payment: None,
    };
    store_pushed(app, client, validated).await
}

/// Stores a validated pushed request under a new `request_uri`; the PAR answer.
async fn store_pushed(
    app: &App,
    client: &Client,
    validated: ValidatedRequest,
) -> Result<serde_json::Value, token::Refusal> {
    let request_uri = format!(
        "{REQUEST_URI_PREFIX}{}",
        crypto::random_token(32).map_err(Error::from)?
    );
    app.store
        .insert_pushed_request(&PushedRequest {
            request_uri: request_uri.clone(),
            client_id: client.client_id.clone(),
            request: serde_json::to_value(&validated)
                .map_err(|error| Error::Internal(error.to_string()))?,
            expires_at: Utc::now() + Duration::seconds(PAR_LIFETIME_SECS),
        })
        .await
        .map_err(Error::from)?;
    Ok(json!({ "request_uri": request_uri, "expires_in": PAR_LIFETIME_SECS }))
}

/// Whether the platform `client_id` may extend consent `id` with `detail`: its own consent,
/// authorised and not expired, for the same bank, purpose, user, scopes and history (only the
/// lifetime changes). The consent id, or why not (a consent of another platform is unknown).
async fn extendable(
    app: &App,
    client_id: &str,
    id: &str,
    detail: &AuthorizationDetail,
) -> Result<Result<String, String>, Error> {
    let Some(consent) = app
        .store
        .consent(id)
        .await?
        .filter(|consent| consent.client_id == client_id)
    else {
        return Ok(Err(format!("unknown consent {}", input::quoted(id))));
    };
    if consent.status != ConsentStatus::Authorised || consent.expires_at <= Utc::now() {
        return Ok(Err(
            "only an authorised consent that has not expired can be extended".into(),
        ));
    }
    let mut scopes = detail.scopes.clone();
    let mut granted = consent.scopes.clone();
    scopes.sort_unstable();
    granted.sort_unstable();
    scopes.dedup();
    granted.dedup();
    if consent.bank_id != detail.bank
        || consent.purpose != detail.purpose
        || consent.user_ref != detail.user_ref
        || scopes != granted
        || consent.history_days != detail.history_days
    {
        return Ok(Err(
            "an extension keeps the consent's bank, purpose, user_ref, scopes \
                       and history_days; only expires_in_days changes"
                .into(),
        ));
    }
    Ok(Ok(consent.id))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    request_uri: Option<String>,
}

/// An error shown to the user, in English (no redirect: the redirect URI is not trusted yet).
fn error_page(status: StatusCode, message: &str) -> Response {
    screen::error_page(screen::Lang::En, status, message)
}

async fn authorize(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let lang = screen::Lang::negotiate(&headers);
    let query = match input::oauth_query::<AuthorizeQuery>(query.as_deref()) {
        Ok(query) => query,
        Err(problem) => return screen::error_page(lang, StatusCode::BAD_REQUEST, &problem),
    };
    match show_consent_screen(&app, query, lang).await {
        Ok(page) => page,
        Err(error) => screen::error_page(lang, error.status(), &error.safe_detail()),
    }
}

async fn show_consent_screen(
    app: &App,
    query: AuthorizeQuery,
    lang: screen::Lang,
) -> Result<Response, Error> {
    let invalid = |message: &str| Error::InvalidRequest(message.to_owned());
    let request_uri = query
        .request_uri
        .ok_or_else(|| invalid("request_uri is required (PAR is mandatory)"))?;
    // Only a platform's pushed request (never an internal extension key).
    if !request_uri.starts_with(REQUEST_URI_PREFIX) {
        return Err(invalid(
            "this authorization request is unknown, used or expired",
        ));
    }
    let pushed = app
        .store
        .take_pushed_request(&request_uri)
        .await?
        .ok_or_else(|| invalid("this authorization request is unknown, used or expired"))?;
    if query.client_id.as_deref() != Some(pushed.client_id.as_str())
        || pushed.expires_at < Utc::now()
    {
        return Err(invalid(
            "this authorization request is unknown, used or expired",
        ));
    }
    let request: ValidatedRequest = serde_json::from_value(pushed.request)
        .map_err(|_| Error::Internal("stored pushed request does not decode".into()))?;
    let client = app
        .store
        .client(&pushed.client_id)
        .await?
        .ok_or_else(|| invalid("unknown client"))?;
    if request.extends.is_some() {
        return extension::show_screen(app, &client, request, lang).await;
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
    app.store.insert_consent(&consent).await?;
    let shown = match &request.payment {
        // Recorded with its consent, before any bank call; the event carries its facts.
        Some(payment) => {
            payment::record(app, &consent, payment).await?;
            Some(screen::PaymentShown {
                amount: payment.instructed_amount.amount.to_string(),
                currency: payment.instructed_amount.currency.clone(),
                payee: payment.creditor_name.clone(),
                account: screen::PaymentShown::masked(&payment.creditor_account.iban),
                remittance: payment.remittance.clone(),
                instant: payment.instant,
            })
        }
        None => {
            app.auditor
                .record(consent_event(
                    Action::ConsentCreated,
                    &client.client_id,
                    &consent,
                ))
                .await
                .map_err(Error::AuditUnavailable)?;
            None
        }
    };
    let screen_token = app.sealer.mac(screen_message(&consent.id).as_bytes());
    Ok(render_screen_with(
        app,
        lang,
        &client.name,
        &consent,
        detail.expires_in_days,
        None,
        &screen_token,
        shown.as_ref(),
    ))
}

/// The consent screen for `consent` (its purpose, data, history and bank) lasting `days`
/// until `consent.expires_at`; `extension` is the key of a pending extension.
fn render_screen(
    app: &App,
    lang: screen::Lang,
    platform: &str,
    consent: &Consent,
    days: u32,
    extension: Option<&str>,
    screen_token: &str,
) -> Response {
    render_screen_with(
        app,
        lang,
        platform,
        consent,
        days,
        extension,
        screen_token,
        None,
    )
}

/// [`render_screen`], for a payment consent with the payment it asks for.
#[allow(clippy::too_many_arguments)]
fn render_screen_with(
    app: &App,
    lang: screen::Lang,
    platform: &str,
    consent: &Consent,
    days: u32,
    extension: Option<&str>,
    screen_token: &str,
    payment: Option<&screen::PaymentShown>,
) -> Response {
    let policy = app.policies.get(&consent.purpose);
    let bank_name = app
        .banks
        .get(&consent.bank_id)
        .map(|adapter| adapter.bank.manifest.name.clone())
        .unwrap_or_else(|| consent.bank_id.clone());
    // The purpose in the page's language when the policy translates it (`[text.fr]`).
    let (title, description, translated) = policy
        .as_ref()
        .map_or((consent.purpose.as_str(), "", false), |policy| {
            policy.text_in(lang.code())
        });
    let page = screen::render(&screen::Screen {
        lang,
        platform,
        bank: &bank_name,
        title,
        description,
        text_lang: if translated { lang } else { screen::Lang::En },
        scopes: &consent.scopes,
        days,
        until: consent.expires_at.date_naive(),
        history_days: consent.history_days,
        // What the purpose's policy binds the platform to, beyond the data itself.
        retention_days: policy.as_ref().map(|policy| policy.retention_days),
        onward_sharing: policy.as_ref().map(|policy| policy.onward_sharing),
        consent_id: &consent.id,
        extension,
        screen_token,
        payment,
    });
    Html(page).into_response()
}

fn screen_message(consent_id: &str) -> String {
    format!("consent-screen\0{consent_id}")
}

#[derive(Deserialize)]
struct DecisionForm {
    consent_id: String,
    screen_token: String,
    decision: String,
    /// The pending extension the screen asked about, if it was an extension's.
    #[serde(default)]
    extension: Option<String>,
}

async fn decide(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match input::form::<DecisionForm>(&headers, &body) {
        Ok(form) => form,
        Err(problem) => return error_page(StatusCode::BAD_REQUEST, &problem),
    };
    let decided = match form.extension.clone() {
        Some(key) => extension::decide(&app, form, &key).await,
        None => handle_decision(&app, form).await,
    };
    match decided {
        Ok(response) => response,
        Err(error) => error_page(error.status(), &error.safe_detail()),
    }
}

async fn handle_decision(app: &App, form: DecisionForm) -> Result<Response, Error> {
    if !app.sealer.verify_mac(
        screen_message(&form.consent_id).as_bytes(),
        &form.screen_token,
    ) {
        return Err(Error::InvalidRequest(
            "this consent screen is not valid".into(),
        ));
    }
    let consent = app
        .store
        .consent(&form.consent_id)
        .await?
        .filter(|consent| consent.status == ConsentStatus::AwaitingAuthorisation)
        .ok_or_else(|| Error::InvalidRequest("this consent was already decided".into()))?;
    if form.decision != "approve" {
        payment::abandon(app, &consent).await?;
        return reject(app, &consent, "user", "access_denied", "the user declined").await;
    }
    if let Some(recorded) = app.store.payment_of_consent(&consent.id).await? {
        return payment_to_bank(app, &consent, &recorded).await;
    }
    match to_bank(app, &consent, consent.expires_at.date_naive()).await? {
        ToBank::Redirect(response) => Ok(response),
        ToBank::Unavailable => Ok(redirect_to_platform(app, &consent, BANK_UNAVAILABLE)),
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

/// Where [`to_bank`] sends the user.
enum ToBank {
    /// To the bank; the pending authorization is stored under its `state`.
    Redirect(Response),
    /// Nowhere: the bank could not be reached (logged).
    Unavailable,
}

/// The user confirmed a payment: the bank's payment resource is created (recorded first, one
/// call) and the user sent to the bank to authorise it; or, when the bank did not create it,
/// the consent is rejected and the platform told.
async fn payment_to_bank(
    app: &App,
    consent: &Consent,
    recorded: &crate::payments::Payment,
) -> Result<Response, Error> {
    let adapter = app
        .banks
        .get(&consent.bank_id)
        .ok_or_else(|| Error::Internal("bank not loaded".into()))?;
    let started = match payment::create_at_bank(app, &adapter, recorded).await? {
        payment::Creation::Created(created) => {
            to_bank_with(
                app,
                consent,
                consent.expires_at.date_naive(),
                None,
                Some(created),
            )
            .await?
        }
        payment::Creation::Failed => ToBank::Unavailable,
        payment::Creation::Refused(reason) => {
            payment::abandon(app, consent).await?;
            return reject(app, consent, "gateway", "access_denied", &reason).await;
        }
    };
    match started {
        ToBank::Redirect(response) => Ok(response),
        ToBank::Unavailable => {
            payment::abandon(app, consent).await?;
            reject(
                app,
                consent,
                &format!("bank:{}", consent.bank_id),
                "temporarily_unavailable",
                "the bank did not take the payment",
            )
            .await
        }
    }
}

/// Creates the bank-side consent (valid until `valid_until`), starts the bank's authorization
/// (pushed first where the bank wants PAR), remembers it under its `state` and redirects the
/// user there. An `extension` (its platform and request) waits for the bank under that state.
async fn to_bank_with(
    app: &App,
    consent: &Consent,
    valid_until: chrono::NaiveDate,
    extension: Option<(&str, &ValidatedRequest)>,
    created: Option<BankConsent>,
) -> Result<ToBank, Error> {
    let adapter = app
        .banks
        .get(&consent.bank_id)
        .ok_or_else(|| Error::Internal("bank not loaded".into()))?;
    let started = async {
        let bank_consent = match created {
            // A payment's resource, created already (`payment::create_at_bank`).
            Some(created) => created,
            None => {
                adapter
                    .profile
                    .create_consent(
                        &adapter.bank,
                        &ConsentRequest {
                            scopes: consent.scopes.clone(),
                            valid_until,
                            // The purpose's unattended budget, as the bank-side access frequency.
                            frequency_per_day: app
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
            &app.callback_url(),
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
        extension::park_for_bank(app, &redirect.state, client_id, request).await?;
    }
    app.store
        .insert_bank_authorization(&BankAuthorization {
            state: redirect.state.clone(),
            consent_id: consent.id.clone(),
            bank_id: consent.bank_id.clone(),
            pkce_verifier: app
                .sealer
                .seal(redirect.state.as_bytes(), redirect.pkce_verifier.as_bytes())?,
            bank_consent_id: bank_consent.id,
            expires_at: Utc::now() + Duration::seconds(BANK_AUTHORIZATION_LIFETIME_SECS),
        })
        .await?;
    Ok(ToBank::Redirect(
        Redirect::to(redirect.url.as_str()).into_response(),
    ))
}

/// [`to_bank_with`] for a new consent.
async fn to_bank(
    app: &App,
    consent: &Consent,
    valid_until: chrono::NaiveDate,
) -> Result<ToBank, Error> {
    to_bank_with(app, consent, valid_until, None, None).await
}

/// Marks a consent rejected, audits it, and sends the user back to the platform with `error`.
async fn reject(
    app: &App,
    consent: &Consent,
    actor: &str,
    error: &str,
    reason: &str,
) -> Result<Response, Error> {
    if app
        .store
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
        app.auditor
            .record(event)
            .await
            .map_err(Error::AuditUnavailable)?;
    }
    Ok(redirect_to_platform(app, consent, &[("error", error)]))
}

/// A 303 to the platform's redirect URI with `params`, its `state` and our `iss` (RFC 9207).
fn redirect_to_platform(app: &App, consent: &Consent, params: &[(&str, &str)]) -> Response {
    redirect_to(app, &consent.redirect_uri, consent.state.as_deref(), params)
}

/// A 303 to `redirect_uri` with `params`, `state` and our `iss` (RFC 9207).
fn redirect_to(
    app: &App,
    redirect_uri: &str,
    state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "invalid redirect URI"),
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in params {
            query.append_pair(key, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &app.config.public_url);
    }
    Redirect::to(url.as_str()).into_response()
}

#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

async fn callback(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let query = match input::oauth_query::<CallbackQuery>(query.as_deref()) {
        Ok(query) => query,
        Err(problem) => return error_page(StatusCode::BAD_REQUEST, &problem),
    };
    match handle_callback(&app, query).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "bank callback failed");
            error_page(error.status(), &error.safe_detail())
        }
    }
}

async fn handle_callback(app: &App, query: CallbackQuery) -> Result<Response, Error> {
    let invalid = |message: &str| Error::InvalidRequest(message.to_owned());
    let state = query
        .state
        .clone()
        .ok_or_else(|| invalid("state is missing"))?;
    let pending = app
        .store
        .take_bank_authorization(&state)
        .await?
        .filter(|pending| pending.expires_at > Utc::now())
        .ok_or_else(|| invalid("unknown, used or expired state"))?;
    let adapter = app
        .banks
        .get(&pending.bank_id)
        .ok_or_else(|| Error::Internal("bank not loaded".into()))?;
    // Mix-up defence (RFC 9207): the response must come from the bank we sent the user to.
    if let Some(expected) = &adapter.bank.manifest.oauth.issuer
        && query.iss.as_deref() != Some(expected.as_str())
    {
        return Err(invalid(
            "the authorization response did not come from the expected bank",
        ));
    }
    if let Some(extension) = extension::pending(app, &state).await? {
        return extension::finish(app, &adapter, pending, extension, query).await;
    }
    let consent = app
        .store
        .consent(&pending.consent_id)
        .await?
        .ok_or_else(|| Error::Internal("pending authorization without consent".into()))?;
    if query.error.is_some() {
        payment::abandon(app, &consent).await?;
        return reject(
            app,
            &consent,
            &format!("bank:{}", pending.bank_id),
            "access_denied",
            "the bank or the user refused",
        )
        .await;
    }
    let grant = exchange_at_bank(app, &adapter, &state, &pending, query.code).await?;
    app.store
        .put_grant(&seal_grant(app, &consent.id, &grant)?)
        .await?;
    if !app
        .store
        .transition_consent(
            &consent.id,
            ConsentStatus::AwaitingAuthorisation,
            ConsentStatus::Authorised,
        )
        .await?
    {
        return Err(invalid("this consent was already decided"));
    }
    app.auditor
        .record(consent_event(
            Action::ConsentAuthorised,
            &format!("bank:{}", pending.bank_id),
            &consent,
        ))
        .await
        .map_err(Error::AuditUnavailable)?;
    let code = issue_code(
        app,
        &consent,
        &consent.redirect_uri,
        &consent.code_challenge,
        consent.dpop_jkt.clone(),
    )
    .await?;
    Ok(redirect_to_platform(app, &consent, &[("code", &code)]))
}

/// Exchanges the bank's code (with the PKCE verifier sealed under `state`) for the bank grant.
async fn exchange_at_bank(
    app: &App,
    adapter: &Adapter,
    state: &str,
    pending: &BankAuthorization,
    code: Option<String>,
) -> Result<BankGrant, Error> {
    let code = code.ok_or_else(|| Error::InvalidRequest("code is missing".into()))?;
    let verifier = String::from_utf8(app.sealer.open(state.as_bytes(), &pending.pkce_verifier)?)
        .map_err(|_| Error::Internal("sealed verifier is not text".into()))?;
    Ok(bank_client::exchange_code(
        &adapter.bank,
        &app.callback_url(),
        &code,
        verifier,
        pending.bank_consent_id.clone(),
    )
    .await?)
}

/// A bank grant sealed for storage under its consent.
fn seal_grant(app: &App, consent_id: &str, grant: &BankGrant) -> Result<StoredGrant, Error> {
    let plaintext =
        serde_json::to_vec(grant).map_err(|error| Error::Internal(error.to_string()))?;
    Ok(StoredGrant {
        consent_id: consent_id.to_owned(),
        sealed: app.sealer.seal(consent_id.as_bytes(), &plaintext)?,
        updated_at: Utc::now(),
    })
}

/// Issues the platform's one-time code for `consent`, bound to the authorization request's
/// redirect URI, PKCE challenge and DPoP key.
async fn issue_code(
    app: &App,
    consent: &Consent,
    redirect_uri: &str,
    code_challenge: &str,
    dpop_jkt: Option<String>,
) -> Result<String, Error> {
    let code = crypto::random_token(32)?;
    app.store
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
