//! bankgate's authorization server towards platforms, and the bank leg of the consent flow:
//!
//! PAR → `/oauth/authorize` (consent screen) → user approves → bank-side consent + redirect to
//! the bank (PKCE, `state`) → `/oauth/callback` (code exchange, sealed grant) → redirect to the
//! platform with a one-time code and `iss` → `/oauth/token`.

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::adapters::ConsentRequest;
use crate::app::App;
use crate::audit::{Action, Decision, Event};
use crate::consent::{ACCOUNT_INFORMATION, AuthorizationDetail, Consent, ConsentStatus};
use crate::crypto;
use crate::error::{Error, OAuthError};
use crate::oauth::client_auth::BasicCredentials;
use crate::oauth::{
    self, AUDIT_READ, BANK_AUTHORIZATION_LIFETIME_SECS, CODE_LIFETIME_SECS, PAR_LIFETIME_SECS,
    REQUEST_URI_PREFIX, bank_client,
};
use crate::store::{
    AuthorizationCode, BankAuthorization, Client, PushedRequest, Redeemed, Role, StoredGrant,
};

/// The OAuth routes and metadata.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/oauth/par", post(par))
        .route("/oauth/authorize", get(authorize).post(decide))
        .route("/oauth/callback", get(callback))
        .route("/oauth/token", post(token))
        .with_state(app)
}

async fn metadata(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let base = &app.config.public_url;
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "pushed_authorization_request_endpoint": format!("{base}/oauth/par"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "require_pushed_authorization_requests": true,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "authorization_response_iss_parameter_supported": true,
        "authorization_details_types_supported": [ACCOUNT_INFORMATION],
        "scopes_supported": ["accounts", "balances", "transactions", "identity", AUDIT_READ],
    }))
}

async fn jwks(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(json!({ "keys": [app.signing_key.jwk] }))
}

/// Authenticates the calling client (client_secret_basic).
async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Client, Error> {
    let credentials = BasicCredentials::parse(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok()),
    )?;
    let client = app.store.client(&credentials.client_id).await?;
    credentials.verify(client.as_ref())?;
    client.ok_or_else(|| OAuthError::new("invalid_client", "client authentication failed").into())
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
}

/// What a pushed request becomes once validated and granted.
#[derive(Debug, serde::Serialize, Deserialize)]
struct ValidatedRequest {
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    detail: AuthorizationDetail,
    policy_hash: String,
}

async fn par(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<ParForm>,
) -> Result<(StatusCode, Json<serde_json::Value>), Error> {
    let client = authenticate(&app, &headers).await?;
    let invalid = |description: &str| Error::from(OAuthError::new("invalid_request", description));
    if form
        .client_id
        .as_deref()
        .is_some_and(|id| id != client.client_id)
    {
        return Err(invalid("client_id does not match the authenticated client"));
    }
    if client.role != Role::Platform {
        return Err(
            OAuthError::new("unauthorized_client", "only platforms request consent").into(),
        );
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
        return Err(invalid("redirect_uri is not registered for this client"));
    }
    let code_challenge = form
        .code_challenge
        .filter(|challenge| (43..=128).contains(&challenge.len()))
        .ok_or_else(|| invalid("a PKCE code_challenge is required"))?;
    if form.code_challenge_method.as_deref() != Some("S256") {
        return Err(invalid("code_challenge_method must be S256"));
    }
    let details_error = |description: String| {
        Error::from(OAuthError::new(
            "invalid_authorization_details",
            description,
        ))
    };
    let details: Vec<AuthorizationDetail> = serde_json::from_str(
        form.authorization_details
            .as_deref()
            .ok_or_else(|| details_error("authorization_details is required".into()))?,
    )
    .map_err(|error| details_error(format!("authorization_details: {error}")))?;
    let [mut detail] = <[AuthorizationDetail; 1]>::try_from(details).map_err(|_| {
        details_error("exactly one authorization_details entry is supported".into())
    })?;
    if detail.kind != ACCOUNT_INFORMATION {
        return Err(details_error(format!("type must be {ACCOUNT_INFORMATION}")));
    }
    if app.banks.get(&detail.bank).is_none() {
        return Err(details_error(format!("unknown bank {:?}", detail.bank)));
    }
    if detail.user_ref.is_empty() || detail.user_ref.len() > 128 {
        return Err(details_error("user_ref must be 1-128 characters".into()));
    }
    let policy = app
        .policies
        .get(&detail.purpose)
        .ok_or_else(|| details_error(format!("unknown purpose {:?}", detail.purpose)))?;
    if !client.allowed_purposes.contains(&detail.purpose) {
        return Err(details_error(format!(
            "client is not approved for purpose {}",
            detail.purpose
        )));
    }
    let grant = policy.grant(&detail).map_err(details_error)?;
    detail.scopes = grant.scopes;
    detail.expires_in_days = grant.expires_in_days;
    detail.history_days = grant.history_days;

    let validated = ValidatedRequest {
        redirect_uri,
        state: form.state,
        code_challenge,
        detail,
        policy_hash: policy.hash.clone(),
    };
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", crypto::random_token(32)?);
    app.store
        .insert_pushed_request(&PushedRequest {
            request_uri: request_uri.clone(),
            client_id: client.client_id,
            request: serde_json::to_value(&validated)
                .map_err(|error| Error::Internal(error.to_string()))?,
            expires_at: Utc::now() + Duration::seconds(PAR_LIFETIME_SECS),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "request_uri": request_uri, "expires_in": PAR_LIFETIME_SECS })),
    ))
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    request_uri: Option<String>,
}

/// An error shown to the user (no redirect: the redirect URI is not trusted yet).
fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>bankgate</title></head>\
         <body><h1>Something went wrong</h1><p>{}</p></body></html>",
        escape(message)
    );
    (status, Html(body)).into_response()
}

async fn authorize(State(app): State<Arc<App>>, Query(query): Query<AuthorizeQuery>) -> Response {
    match show_consent_screen(&app, query).await {
        Ok(page) => page,
        Err(error) => error_page(
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
            &error.safe_detail(),
        ),
    }
}

async fn show_consent_screen(app: &App, query: AuthorizeQuery) -> Result<Response, Error> {
    let invalid = |message: &str| Error::InvalidRequest(message.to_owned());
    let request_uri = query
        .request_uri
        .ok_or_else(|| invalid("request_uri is required (PAR is mandatory)"))?;
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
        created_at: now,
        expires_at: now + Duration::days(i64::from(detail.expires_in_days)),
    };
    app.store.insert_consent(&consent).await?;
    app.auditor
        .record(consent_event(
            Action::ConsentCreated,
            &client.client_id,
            &consent,
        ))
        .await
        .map_err(Error::AuditUnavailable)?;

    let policy = app.policies.get(&consent.purpose);
    let bank_name = app
        .banks
        .get(&consent.bank_id)
        .map(|adapter| adapter.bank.manifest.name.clone())
        .unwrap_or_else(|| consent.bank_id.clone());
    let scopes: Vec<&str> = consent.scopes.iter().map(|scope| scope.as_str()).collect();
    let screen_token = app.sealer.mac(screen_message(&consent.id).as_bytes());
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Share your bank data?</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
.card{{border:1px solid #ccc;border-radius:8px;padding:1rem 1.25rem}}button{{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}}</style>
</head><body>
<h1>{platform} asks to see data from {bank}</h1>
<div class="card">
<h2 id="purpose">{title}</h2>
<p>{description}</p>
<ul>
<li>Data: <strong id="scopes">{scopes}</strong></li>
<li>For up to <strong>{days} days</strong>, until {until}</li>
<li>Transaction history: {history} days</li>
</ul>
</div>
<p>You will confirm at {bank}. You can withdraw this consent at any time.</p>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="consent_id" value="{consent_id}">
<input type="hidden" name="screen_token" value="{screen_token}">
<button type="submit" name="decision" value="approve" id="approve">Continue to {bank}</button>
<button type="submit" name="decision" value="deny" id="deny">Cancel</button>
</form>
</body></html>"#,
        platform = escape(&client.name),
        bank = escape(&bank_name),
        title = escape(
            policy
                .as_ref()
                .map_or(consent.purpose.as_str(), |p| p.title.as_str())
        ),
        description = escape(policy.as_ref().map_or("", |p| p.description.as_str())),
        scopes = escape(&scopes.join(", ")),
        days = detail.expires_in_days,
        until = consent.expires_at.date_naive(),
        history = consent.history_days,
        consent_id = escape(&consent.id),
        screen_token = escape(&screen_token),
    );
    Ok(Html(page).into_response())
}

fn screen_message(consent_id: &str) -> String {
    format!("consent-screen\0{consent_id}")
}

#[derive(Deserialize)]
struct DecisionForm {
    consent_id: String,
    screen_token: String,
    decision: String,
}

async fn decide(State(app): State<Arc<App>>, Form(form): Form<DecisionForm>) -> Response {
    match handle_decision(&app, form).await {
        Ok(response) => response,
        Err(error) => error_page(
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
            &error.safe_detail(),
        ),
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
        return reject(app, &consent, "user", "access_denied", "the user declined").await;
    }
    let adapter = app
        .banks
        .get(&consent.bank_id)
        .ok_or_else(|| Error::Internal("bank not loaded".into()))?;
    let started = async {
        let bank_consent = adapter
            .profile
            .create_consent(
                &adapter.bank,
                &ConsentRequest {
                    scopes: consent.scopes.clone(),
                    valid_until: consent.expires_at.date_naive(),
                    frequency_per_day: 4,
                    recurring: true,
                },
            )
            .await?;
        let redirect = bank_client::authorization_redirect(
            &adapter.bank,
            &app.callback_url(),
            &bank_consent.oauth_scopes,
        )?;
        Ok::<_, Error>((bank_consent, redirect))
    }
    .await;
    let (bank_consent, redirect) = match started {
        Ok(started) => started,
        Err(error) => {
            tracing::warn!(bank = %consent.bank_id, %error, "bank consent could not be started");
            return Ok(redirect_to_platform(
                app,
                &consent,
                &[
                    ("error", "temporarily_unavailable"),
                    (
                        "error_description",
                        "the bank is not available; try again later",
                    ),
                ],
            ));
        }
    };
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
    Ok(Redirect::to(redirect.url.as_str()).into_response())
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
    let mut url = match url::Url::parse(&consent.redirect_uri) {
        Ok(url) => url,
        Err(_) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "invalid redirect URI"),
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in params {
            query.append_pair(key, value);
        }
        if let Some(state) = &consent.state {
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

async fn callback(State(app): State<Arc<App>>, Query(query): Query<CallbackQuery>) -> Response {
    match handle_callback(&app, query).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "bank callback failed");
            error_page(
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
                &error.safe_detail(),
            )
        }
    }
}

async fn handle_callback(app: &App, query: CallbackQuery) -> Result<Response, Error> {
    let invalid = |message: &str| Error::InvalidRequest(message.to_owned());
    let state = query.state.ok_or_else(|| invalid("state is missing"))?;
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
    let consent = app
        .store
        .consent(&pending.consent_id)
        .await?
        .ok_or_else(|| Error::Internal("pending authorization without consent".into()))?;
    if query.error.is_some() {
        return reject(
            app,
            &consent,
            &format!("bank:{}", pending.bank_id),
            "access_denied",
            "the bank or the user refused",
        )
        .await;
    }
    let code = query.code.ok_or_else(|| invalid("code is missing"))?;
    let verifier = String::from_utf8(app.sealer.open(state.as_bytes(), &pending.pkce_verifier)?)
        .map_err(|_| Error::Internal("sealed verifier is not text".into()))?;
    let grant = bank_client::exchange_code(
        &adapter.bank,
        &app.callback_url(),
        &code,
        verifier,
        pending.bank_consent_id,
    )
    .await?;
    let plaintext =
        serde_json::to_vec(&grant).map_err(|error| Error::Internal(error.to_string()))?;
    app.store
        .put_grant(&StoredGrant {
            consent_id: consent.id.clone(),
            sealed: app.sealer.seal(consent.id.as_bytes(), &plaintext)?,
            updated_at: Utc::now(),
        })
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

    let code = crypto::random_token(32)?;
    app.store
        .insert_code(&AuthorizationCode {
            code_hash: crypto::sha256_hex(code.as_bytes()),
            consent_id: consent.id.clone(),
            client_id: consent.client_id.clone(),
            redirect_uri: consent.redirect_uri.clone(),
            code_challenge: consent.code_challenge.clone(),
            expires_at: Utc::now() + Duration::seconds(CODE_LIFETIME_SECS),
        })
        .await?;
    Ok(redirect_to_platform(app, &consent, &[("code", &code)]))
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    #[allow(dead_code)]
    scope: Option<String>,
}

async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, Error> {
    let client = authenticate(&app, &headers).await?;
    let body = match form.grant_type.as_str() {
        "authorization_code" => exchange_code(&app, &client, form).await?,
        "client_credentials" => client_credentials(&app, &client).await?,
        _ => {
            return Err(OAuthError::new("unsupported_grant_type", "unsupported grant_type").into());
        }
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

async fn exchange_code(
    app: &App,
    client: &Client,
    form: TokenForm,
) -> Result<serde_json::Value, Error> {
    let invalid_grant = || {
        Error::from(OAuthError::new(
            "invalid_grant",
            "the code is invalid, used or expired",
        ))
    };
    let code = form.code.ok_or_else(invalid_grant)?;
    let code = match app
        .store
        .redeem_code(&crypto::sha256_hex(code.as_bytes()))
        .await?
    {
        Redeemed::Fresh(code) => code,
        Redeemed::Replayed(code) => {
            tracing::warn!(consent = %code.consent_id, "authorization code replayed");
            return Err(invalid_grant());
        }
        Redeemed::Unknown => return Err(invalid_grant()),
    };
    if code.client_id != client.client_id
        || code.expires_at < Utc::now()
        || form.redirect_uri.as_deref() != Some(code.redirect_uri.as_str())
    {
        return Err(invalid_grant());
    }
    let verifier = form
        .code_verifier
        .ok_or_else(|| OAuthError::new("invalid_request", "code_verifier is required"))?;
    let challenge = crypto::pkce_s256(&verifier);
    if !crypto::constant_time_eq(challenge.as_bytes(), code.code_challenge.as_bytes()) {
        return Err(OAuthError::new("invalid_grant", "PKCE verification failed").into());
    }
    let consent = app
        .store
        .consent(&code.consent_id)
        .await?
        .filter(|consent| consent.status == ConsentStatus::Authorised)
        .ok_or_else(invalid_grant)?;
    let scope: Vec<&str> = consent.scopes.iter().map(|scope| scope.as_str()).collect();
    let (access_token, claims) = app
        .tokens
        .issue(&client.client_id, &consent.id, &scope.join(" "))
        .map_err(|error| Error::Internal(error.to_string()))?;
    let mut event = consent_event(Action::TokenIssued, &client.client_id, &consent);
    event.reason = Some(format!("jti {}", claims.jti));
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": app.tokens.lifetime_secs(),
        "scope": claims.scope,
        "consent_id": consent.id,
        "authorization_details": [consent.granted_details()],
    }))
}

async fn client_credentials(app: &App, client: &Client) -> Result<serde_json::Value, Error> {
    if client.role != Role::Compliance {
        return Err(OAuthError::new(
            "unauthorized_client",
            "client_credentials is for compliance clients",
        )
        .into());
    }
    let (access_token, claims) = app
        .tokens
        .issue(&client.client_id, &client.client_id, oauth::AUDIT_READ)
        .map_err(|error| Error::Internal(error.to_string()))?;
    let mut event = Event::new(Action::TokenIssued, &client.client_id, Decision::Allow);
    event.reason = Some(format!("jti {}", claims.jti));
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": app.tokens.lifetime_secs(),
        "scope": claims.scope,
    }))
}

/// An event about a consent, with its platform, bank, user, purpose and policy.
fn consent_event(action: Action, actor: &str, consent: &Consent) -> Event {
    let mut event = Event::new(action, actor, Decision::Allow);
    event.platform = Some(consent.client_id.clone());
    event.bank = Some(consent.bank_id.clone());
    event.consent = Some(consent.id.clone());
    event.user_ref = Some(consent.user_ref.clone());
    event.purpose = Some(consent.purpose.clone());
    event.policy_hash = Some(consent.policy_hash.clone());
    event.categories = consent
        .scopes
        .iter()
        .map(|scope| scope.as_str().to_owned())
        .collect();
    event
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}
