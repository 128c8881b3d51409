//! The token endpoint (`authorization_code`, `refresh_token`, `client_credentials`) and the
//! RFC 7009 revocation endpoint.
//!
//! - Codes are single use and live ≤ 60 s; a replayed code revokes the consent and every token
//!   issued under it (RFC 6749 §4.1.2, RFC 9700 §4.5).
//! - A `DPoP` proof binds the access token to its key (`cnf.jkt`, `token_type: DPoP`); clients
//!   registered with `dpop_bound_access_tokens` get nothing without one. A code bound to a key
//!   at PAR (RFC 9449 §10) is only redeemed with a proof by that key. Proofs need a server
//!   nonce (`use_dpop_nonce` answers carry a fresh one in `DPoP-Nonce`).
//! - Refresh tokens are opaque, stored hashed, bound to client and consent, and never outlive
//!   the consent. They are not rotated: every client is confidential and authenticates at each
//!   refresh, which FAPI 2.0 (§5.3.2.1) prefers to rotation for confidential clients. They are
//!   not DPoP-bound either (RFC 9449 §5: for confidential clients the client authentication
//!   binds them); each refreshed access token is bound to the proof that comes with the refresh.
//! - Platforms get a management token with `client_credentials` (scope `consents:manage`,
//!   subject = the client id); compliance clients get `audit:read`; bank clients
//!   `adapter:manage`.

use axum::Json;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use crate::app::App;
use crate::audit::{Action, Decision, Event};
use crate::consent::{Consent, ConsentStatus};
use crate::crypto;
use crate::error::{Error, OAuthError};
use crate::lifecycle::{self, consent_event};
use crate::oauth::client_auth::{self, AuthParams};
use crate::oauth::dpop::{self, DPOP_HEADER, DPOP_NONCE_HEADER, DpopError, Expected, Nonces};
use crate::oauth::tokens::AccessClaims;
use crate::oauth::{ADAPTER_MANAGE, AUDIT_READ, CONSENTS_MANAGE};
use crate::store::{Client, IssuedToken, Redeemed, RefreshToken, Role, StoreError};

/// Why a token request failed: an OAuth error, or a DPoP one (answered with a nonce).
pub(super) enum Refusal {
    Error(Error),
    Dpop(DpopError),
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::Error(error)
    }
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Self {
        Refusal::Error(error.into())
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Refusal::Error(error.into())
    }
}

impl From<DpopError> for Refusal {
    fn from(error: DpopError) -> Self {
        Refusal::Dpop(error)
    }
}

impl Refusal {
    pub(super) fn into_response(self, app: &App) -> Response {
        match self {
            Refusal::Error(error) => error.into_response(),
            Refusal::Dpop(error) => {
                let body = json!({"error": error.code(), "error_description": error.to_string()});
                let mut response = (
                    StatusCode::BAD_REQUEST,
                    [(header::CACHE_CONTROL, "no-store")],
                    Json(body),
                )
                    .into_response();
                insert_nonce(app, response.headers_mut());
                response
            }
        }
    }
}

/// Adds a fresh `DPoP-Nonce` to a response.
pub(super) fn insert_nonce(app: &App, headers: &mut HeaderMap) {
    let nonce = Nonces::new(&app.sealer).issue(Utc::now().timestamp());
    if let Ok(value) = HeaderValue::from_str(&nonce) {
        headers.insert(DPOP_NONCE_HEADER, value);
    }
}

/// Authenticates the client of a PAR, token or revocation request.
pub(super) async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    params: AuthParams<'_>,
) -> Result<Client, Error> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    client_auth::authenticate(
        app.store.as_ref(),
        &app.config.public_url,
        authorization,
        params,
    )
    .await
}

/// The DPoP proof of a request to `path`, verified and spent; `None` when there is none.
pub(super) async fn request_proof(
    app: &App,
    headers: &HeaderMap,
    method: &str,
    path: &str,
) -> Result<Option<dpop::Proof>, Refusal> {
    let mut proofs = headers.get_all(DPOP_HEADER).iter();
    let Some(proof) = proofs.next() else {
        return Ok(None);
    };
    if proofs.next().is_some() {
        return Err(DpopError::Invalid("more than one DPoP header").into());
    }
    let proof = proof
        .to_str()
        .map_err(|_| DpopError::Invalid("not a JWS"))?;
    let url = format!("{}{path}", app.config.public_url);
    let expected = Expected {
        method,
        url: &url,
        access_token: None,
    };
    let verified = dpop::verify(
        proof,
        &expected,
        &Nonces::new(&app.sealer),
        Utc::now().timestamp(),
    )?;
    dpop::spend(app.store.as_ref(), &verified).await??;
    Ok(Some(verified))
}

/// The token request form.
#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    #[allow(dead_code)]
    scope: Option<String>,
}

/// `POST /oauth/token`.
pub(super) async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    match issue(&app, &headers, form).await {
        Ok(body) => {
            let mut response = ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response();
            insert_nonce(&app, response.headers_mut());
            response
        }
        Err(refusal) => refusal.into_response(&app),
    }
}

async fn issue(
    app: &App,
    headers: &HeaderMap,
    form: TokenForm,
) -> Result<serde_json::Value, Refusal> {
    let client = authenticate(
        app,
        headers,
        AuthParams {
            client_id: form.client_id.as_deref(),
            client_assertion_type: form.client_assertion_type.as_deref(),
            client_assertion: form.client_assertion.as_deref(),
        },
    )
    .await?;
    let proof = request_proof(app, headers, "POST", "/oauth/token").await?;
    if client.dpop_bound_access_tokens && proof.is_none() {
        return Err(DpopError::Invalid("this client must present a DPoP proof").into());
    }
    let jkt = proof.map(|proof| proof.jkt);
    match form.grant_type.as_str() {
        "authorization_code" => exchange_code(app, &client, form, jkt).await,
        "refresh_token" => refresh(app, &client, form, jkt).await,
        "client_credentials" => client_credentials(app, &client, jkt).await,
        _ => Err(OAuthError::new("unsupported_grant_type", "unsupported grant_type").into()),
    }
}

fn invalid_grant() -> Refusal {
    OAuthError::new(
        "invalid_grant",
        "the grant is invalid, used, revoked or expired",
    )
    .into()
}

async fn exchange_code(
    app: &App,
    client: &Client,
    form: TokenForm,
    jkt: Option<String>,
) -> Result<serde_json::Value, Refusal> {
    let code = form.code.ok_or_else(invalid_grant)?;
    let code = match app
        .store
        .redeem_code(&crypto::sha256_hex(code.as_bytes()))
        .await?
    {
        Redeemed::Fresh(code) => code,
        Redeemed::Replayed(code) => {
            // Someone holds a copy of the code: nothing issued from it can be trusted.
            tracing::warn!(consent = %code.consent_id, "authorization code replayed");
            if let Some(consent) = app.store.consent(&code.consent_id).await? {
                lifecycle::revoke(app, &consent, "gateway", "authorization code replayed").await?;
            }
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
    // RFC 9449 §10: a code bound to a key at PAR is redeemed with a proof by that key only.
    if let Some(bound) = &code.dpop_jkt
        && jkt.as_deref() != Some(bound.as_str())
    {
        return Err(
            DpopError::Invalid("the authorization code is bound to another DPoP key").into(),
        );
    }
    let consent = app
        .store
        .consent(&code.consent_id)
        .await?
        .filter(|consent| consent.status == ConsentStatus::Authorised)
        .ok_or_else(invalid_grant)?;
    let (access_token, claims) = consent_token(app, client, &consent, jkt.as_deref()).await?;
    let refresh_token = crypto::random_token(32).map_err(Error::from)?;
    app.store
        .insert_refresh_token(&RefreshToken {
            token_hash: crypto::sha256_hex(refresh_token.as_bytes()),
            client_id: client.client_id.clone(),
            consent_id: consent.id.clone(),
            created_at: Utc::now(),
            expires_at: consent.expires_at,
            revoked_at: None,
        })
        .await?;
    let mut body = token_body(app, &access_token, &claims);
    body["refresh_token"] = json!(refresh_token);
    body["consent_id"] = json!(consent.id);
    body["authorization_details"] = json!([consent.granted_details()]);
    Ok(body)
}

async fn refresh(
    app: &App,
    client: &Client,
    form: TokenForm,
    jkt: Option<String>,
) -> Result<serde_json::Value, Refusal> {
    let presented = form.refresh_token.ok_or_else(invalid_grant)?;
    let now = Utc::now();
    let stored = app
        .store
        .refresh_token(&crypto::sha256_hex(presented.as_bytes()))
        .await?
        .filter(|token| {
            token.client_id == client.client_id
                && token.revoked_at.is_none()
                && token.expires_at > now
        })
        .ok_or_else(invalid_grant)?;
    let consent = app
        .store
        .consent(&stored.consent_id)
        .await?
        .filter(|consent| consent.status == ConsentStatus::Authorised && consent.expires_at > now)
        .ok_or_else(invalid_grant)?;
    let (access_token, claims) = consent_token(app, client, &consent, jkt.as_deref()).await?;
    let mut body = token_body(app, &access_token, &claims);
    body["consent_id"] = json!(consent.id);
    body["authorization_details"] = json!([consent.granted_details()]);
    Ok(body)
}

/// Issues, records and audits an access token for a consent.
async fn consent_token(
    app: &App,
    client: &Client,
    consent: &Consent,
    jkt: Option<&str>,
) -> Result<(String, AccessClaims), Refusal> {
    let scope: Vec<&str> = consent.scopes.iter().map(|scope| scope.as_str()).collect();
    let (access_token, claims) = app
        .tokens
        .issue_bound(&client.client_id, &consent.id, &scope.join(" "), jkt)
        .map_err(|error| Error::Internal(error.to_string()))?;
    record(app, &claims, Some(&consent.id)).await?;
    let mut event = consent_event(Action::TokenIssued, &client.client_id, consent);
    event.reason = Some(issued_reason(&claims));
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok((access_token, claims))
}

async fn client_credentials(
    app: &App,
    client: &Client,
    jkt: Option<String>,
) -> Result<serde_json::Value, Refusal> {
    let scope = match client.role {
        Role::Compliance => AUDIT_READ,
        Role::Platform => CONSENTS_MANAGE,
        // A bank manages its own adapter (`PUT /v1/banks/{bank_id}/adapter`).
        Role::Bank => ADAPTER_MANAGE,
    };
    let (access_token, claims) = app
        .tokens
        .issue_bound(&client.client_id, &client.client_id, scope, jkt.as_deref())
        .map_err(|error| Error::Internal(error.to_string()))?;
    record(app, &claims, None).await?;
    let mut event = Event::new(Action::TokenIssued, &client.client_id, Decision::Allow);
    event.platform = (client.role == Role::Platform).then(|| client.client_id.clone());
    event.bank = client.bank_id.clone();
    event.reason = Some(issued_reason(&claims));
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(token_body(app, &access_token, &claims))
}

fn issued_reason(claims: &AccessClaims) -> String {
    match claims.jkt() {
        Some(_) => format!("jti {} (DPoP-bound)", claims.jti),
        None => format!("jti {}", claims.jti),
    }
}

async fn record(app: &App, claims: &AccessClaims, consent_id: Option<&str>) -> Result<(), Refusal> {
    app.store
        .record_access_token(&IssuedToken {
            jti: claims.jti.clone(),
            client_id: claims.client_id.clone(),
            consent_id: consent_id.map(str::to_owned),
            expires_at: DateTime::from_timestamp(claims.exp, 0)
                .unwrap_or_else(|| Utc::now() + Duration::seconds(app.tokens.lifetime_secs())),
        })
        .await?;
    Ok(())
}

fn token_body(app: &App, access_token: &str, claims: &AccessClaims) -> serde_json::Value {
    json!({
        "access_token": access_token,
        "token_type": if claims.jkt().is_some() { "DPoP" } else { "Bearer" },
        "expires_in": app.tokens.lifetime_secs(),
        "scope": claims.scope,
    })
}

/// The revocation form (RFC 7009).
#[derive(Deserialize)]
pub(super) struct RevocationForm {
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// `POST /oauth/revoke` (RFC 7009): a refresh token revokes itself and every token of its
/// consent; an access token revokes itself. Answers 200 whether or not the token was known or
/// belonged to the caller (nothing is revealed about other clients' tokens).
pub(super) async fn revoke(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<RevocationForm>,
) -> Result<Response, Error> {
    let client = authenticate(
        &app,
        &headers,
        AuthParams {
            client_id: form.client_id.as_deref(),
            client_assertion_type: form.client_assertion_type.as_deref(),
            client_assertion: form.client_assertion.as_deref(),
        },
    )
    .await?;
    let token = form
        .token
        .ok_or_else(|| OAuthError::new("invalid_request", "token is required"))?;
    let refresh = app
        .store
        .refresh_token(&crypto::sha256_hex(token.as_bytes()))
        .await?;
    match refresh {
        Some(refresh) if refresh.client_id == client.client_id => {
            app.store.revoke_consent_tokens(&refresh.consent_id).await?;
        }
        Some(_) => {}
        None => {
            if let Ok(claims) = app.tokens.verify(&token)
                && claims.client_id == client.client_id
            {
                app.store.revoke_access_token(&claims.jti).await?;
            }
        }
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], StatusCode::OK).into_response())
}
