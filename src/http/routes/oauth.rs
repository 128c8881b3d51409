//! bankgate's authorization server towards platforms, over HTTP: the routes parse what
//! arrives, call the consent broker (`crate::broker`: PAR, the consent screen, the user's
//! decision, the bank's callback) and render what it answers — the PAR answer, the consent
//! screen, a redirect to the bank or back to the platform (with `iss`, RFC 9207), an error page.
//!
//! PAR → `/oauth/authorize` (consent screen) → user approves → bank-side consent + redirect to
//! the bank (PKCE, `state`) → `/oauth/callback` (code exchange, sealed grant) → redirect to the
//! platform with a one-time code and `iss` → `/oauth/token`.
//!
//! A DPoP proof (or `dpop_jkt`) at PAR binds the code to its key (RFC 9449 §10); a pushed
//! request naming an authorised consent extends it (`broker::extension`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::audit::{Action, Event};
use crate::broker::{BankAnswer, Next, Push, Screen, ScreenDecision, payment};
use crate::consent::{ACCOUNT_INFORMATION, AuthorizationDetail};
use crate::error::{Error, OAuthError};
use crate::model::WireName;
use crate::oauth::AUDIT_READ;
use crate::oauth::dpop::DpopError;
use crate::oauth::{Client, Role};
use crate::payments::PaymentRequest;

mod configuration;
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
    #[serde(flatten)]
    client: token::ClientParams,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    authorization_details: Option<String>,
    #[allow(dead_code)]
    scope: Option<String>,
    /// Not allowed in a pushed request (RFC 9126 §2.1); read only to refuse it.
    request_uri: Option<String>,
    /// The thumbprint of the DPoP key to bind the code to (RFC 9449 §10).
    dpop_jkt: Option<String>,
}

/// `POST /oauth/par` (RFC 9126 + RFC 9396; RFC 9449 §10 for DPoP).
async fn par(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm<ParForm>,
) -> Response {
    let client = match token::authenticate(&app, &headers, &form.client).await {
        Ok(client) => client,
        Err(error) => return token::Refusal::from(error).into_response(&app),
    };
    let refused = par_refusal_event(&app, &client, form.authorization_details.as_deref());
    match push(&app, &headers, &client, form).await {
        Ok(pushed) => {
            let body =
                json!({ "request_uri": pushed.request_uri, "expires_in": pushed.expires_in });
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

/// Reads and checks `client`'s pushed request (authenticated by [`par`]) — the client, the
/// redirect URI, PKCE, the DPoP key, one `authorization_details` entry — and hands it to the
/// broker, which grants and keeps it.
async fn push(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    form: ParForm,
) -> Result<crate::broker::Pushed, token::Refusal> {
    let invalid = |description: &str| Error::from(OAuthError::new("invalid_request", description));
    if form
        .client
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
    Ok(app
        .broker()
        .push(
            client,
            Push {
                redirect_uri,
                state: form.state,
                code_challenge,
                dpop_jkt,
                detail,
            },
        )
        .await?)
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
    let opened = app
        .broker()
        .open(query.client_id.as_deref(), query.request_uri.as_deref())
        .await?;
    Ok(render_screen(app, lang, &opened))
}

/// The consent screen the broker opened: its purpose, data, history and bank, its lifetime,
/// and a payment consent's payment.
fn render_screen(app: &App, lang: screen::Lang, opened: &Screen) -> Response {
    let consent = &opened.consent;
    let payment = opened.payment.as_ref().map(|payment| screen::PaymentShown {
        amount: payment.instructed_amount.amount.to_string(),
        currency: payment.instructed_amount.currency.clone(),
        payee: payment.creditor_name.clone(),
        handle: payment
            .creditor
            .as_ref()
            .map(|creditor| creditor.handle.clone()),
        verification: payment.verification.clone(),
        account: screen::PaymentShown::masked(&payment.creditor_account.iban),
        remittance: payment.remittance.clone(),
        instant: payment.instant,
    });
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
        platform: &opened.platform,
        bank: &bank_name,
        title,
        description,
        text_lang: if translated { lang } else { screen::Lang::En },
        scopes: &consent.scopes,
        days: opened.days,
        until: consent.expires_at.date_naive(),
        history_days: consent.history_days,
        // What the purpose's policy binds the platform to, beyond the data itself.
        retention_days: policy.as_ref().map(|policy| policy.retention_days),
        onward_sharing: policy.as_ref().map(|policy| policy.onward_sharing),
        consent_id: &consent.id,
        extension: opened.extension.as_deref(),
        screen_token: &opened.screen_token,
        payment: payment.as_ref(),
    });
    Html(page).into_response()
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
    let decided = app
        .broker()
        .decide(ScreenDecision {
            approve: form.decision == "approve",
            consent_id: form.consent_id,
            screen_token: form.screen_token,
            extension: form.extension,
        })
        .await;
    match decided {
        Ok(next) => go(&app, screen::Lang::negotiate(&headers), next),
        Err(error) => error_page(error.status(), &error.safe_detail()),
    }
}

/// Sends the user's browser where the broker said: to the bank, back to the platform, or (a
/// person signed in through their bank) on to their connected-apps page.
fn go(app: &App, lang: screen::Lang, next: Next) -> Response {
    match next {
        Next::Bank(url) => Redirect::to(&url).into_response(),
        Next::Platform {
            redirect_uri,
            state,
            params,
        } => redirect_to(app, &redirect_uri, state.as_deref(), &params),
        Next::SignedIn {
            bank,
            person,
            focus,
        } => super::me::signed_in(app, lang, &bank, &person, focus.as_deref()),
    }
}

/// A 303 to `redirect_uri` with `params`, `state` and our `iss` (RFC 9207).
fn redirect_to(
    app: &App,
    redirect_uri: &str,
    state: Option<&str>,
    params: &[(String, String)],
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

async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let answer = match input::oauth_query::<BankAnswer>(query.as_deref()) {
        Ok(answer) => answer,
        Err(problem) => return error_page(StatusCode::BAD_REQUEST, &problem),
    };
    match app.broker().callback(answer).await {
        Ok(next) => go(&app, screen::Lang::negotiate(&headers), next),
        Err(error) => {
            tracing::warn!(%error, "bank callback failed");
            error_page(error.status(), &error.safe_detail())
        }
    }
}
