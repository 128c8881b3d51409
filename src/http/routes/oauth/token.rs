//! The token endpoint (`authorization_code`, `refresh_token`, `client_credentials`) and the
//! RFC 7009 revocation endpoint.
//!
//! - Codes are single use and live ≤ 60 s. A code is checked (client, expiry, redirect URI,
//!   PKCE, DPoP binding) before it is redeemed, so a failed request leaves it for the corrected
//!   retry; a code that produced tokens and is redeemed again is a replay, which revokes the
//!   consent and every token issued under it (RFC 6749 §4.1.2, RFC 9700 §4.5).
//! - Refusals say which check failed (`error_description`), never a secret.
//! - Revoking a refresh token (RFC 7009) ends its consent.
//! - A `DPoP` proof binds the access token to its key (`cnf.jkt`, `token_type: DPoP`); clients
//!   registered with `dpop_bound_access_tokens`, and every platform unless
//!   `allow_insecure_clients` is on, get nothing without one. A code bound to a key
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
use axum::extract::State;
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
use crate::http::routes::input::OAuthForm;
use crate::lifecycle::{self, consent_event};
use crate::model::WireName;
use crate::oauth::client_auth::AuthParams;
use crate::oauth::dpop::{self, DPOP_HEADER, DPOP_NONCE_HEADER, DpopError, Expected, Nonces};
use crate::oauth::tokens::AccessClaims;
use crate::oauth::{ADAPTER_MANAGE, AUDIT_READ, CONSENTS_MANAGE};
use crate::oauth::{AuthorizationCode, Client, IssuedToken, RefreshToken, Role, StoredCode};
use crate::store::StoreError;

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
    /// What an audit event says of this refusal; `None` for the answers that are not
    /// refusals (see [`refused`]).
    fn audit_reason(&self) -> Option<String> {
        match self {
            Refusal::Dpop(DpopError::UseNonce) => None,
            Refusal::Dpop(error) => Some(format!("{}: {error}", error.code())),
            Refusal::Error(error) if !error.status().is_client_error() => None,
            Refusal::Error(Error::OAuth(error)) => {
                Some(format!("{}: {}", error.code, error.description))
            }
            Refusal::Error(error) => Some(error.safe_detail()),
        }
    }

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

/// An event of `action` by `client`: the platform is the client itself when it is one, the
/// bank its bank when it is a bank's client.
pub(super) fn client_event(action: Action, client: &Client) -> Event {
    let mut event = Event::new(action, &client.client_id, Decision::Allow);
    event.platform = (client.role == Role::Platform).then(|| client.client_id.clone());
    event.bank = client.bank_id.clone();
    event
}

/// Answers the refusal of an authenticated client's request, audited first as `event`
/// (decision `deny`, the refusal as its reason, the request's id), as every refusal of an
/// authenticated request is. Two answers are not refusals and are not audited: a DPoP nonce
/// challenge (`use_dpop_nonce`, RFC 9449 §8: the step that hands the client its nonce, as on
/// the data routes) and a failure of the gateway's own (5xx). If the audit log cannot commit,
/// the answer is 503.
pub(super) async fn refused(
    app: &App,
    headers: &HeaderMap,
    mut event: Event,
    refusal: Refusal,
) -> Response {
    let Some(reason) = refusal.audit_reason() else {
        return refusal.into_response(app);
    };
    event.decision = Decision::Deny;
    event.reason = Some(reason);
    event.request_id = crate::http::request_id(headers);
    match app.auditor.record(event).await {
        Ok(_) => refusal.into_response(app),
        Err(error) => Error::AuditUnavailable(error).into_response(),
    }
}

/// The client authentication parameters of a PAR, token or revocation form (RFC 6749 §2.3.1,
/// RFC 7523 §2.2), read into each form with `#[serde(flatten)]`.
#[derive(Deserialize)]
pub(super) struct ClientParams {
    pub(super) client_id: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// Authenticates the client of a PAR, token or revocation request.
pub(super) async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    params: &ClientParams,
) -> Result<Client, Error> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let params = AuthParams {
        client_id: params.client_id.as_deref(),
        client_assertion_type: params.client_assertion_type.as_deref(),
        client_assertion: params.client_assertion.as_deref(),
    };
    app.client_auth
        .authenticate(&app.config.public_url, authorization, params)
        .await
        .map_err(Error::from)
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
    #[serde(flatten)]
    client: ClientParams,
    #[allow(dead_code)]
    scope: Option<String>,
}

/// `POST /oauth/token`.
pub(super) async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm<TokenForm>,
) -> Response {
    let client = authenticate(&app, &headers, &form.client).await;
    let client = match client {
        Ok(client) => client,
        Err(error) => return Refusal::from(error).into_response(&app),
    };
    let mut about = None;
    match issue(&app, &headers, &client, form, &mut about).await {
        Ok(body) => {
            let mut response = ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response();
            insert_nonce(&app, response.headers_mut());
            response
        }
        Err(refusal) if refusal.audit_reason().is_none() => refusal.into_response(&app),
        Err(refusal) => {
            let event = match refused_consent(&app, about.as_deref()).await {
                Ok(Some(consent)) => {
                    consent_event(Action::TokenIssued, &client.client_id, &consent)
                }
                Ok(None) => client_event(Action::TokenIssued, &client),
                Err(error) => return error.into_response(),
            };
            refused(&app, &headers, event, refusal).await
        }
    }
}

/// The consent a refused token request was about (its code's or refresh token's), to name it
/// in the refusal's audit event.
async fn refused_consent(app: &App, id: Option<&str>) -> Result<Option<Consent>, Error> {
    match id {
        Some(id) => Ok(app.store.consent(id).await?),
        None => Ok(None),
    }
}

/// Issues tokens to `client` (authenticated by [`token`]); `about` is set to the consent the
/// request concerns as soon as it is known (a code's or a refresh token's, whoever it was
/// issued to), so that a refusal names it.
async fn issue(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    form: TokenForm,
    about: &mut Option<String>,
) -> Result<serde_json::Value, Refusal> {
    let proof = request_proof(app, headers, "POST", "/oauth/token").await?;
    // Platforms registered before the gateway required FAPI 2.0 need a proof too.
    let must_bind = client.dpop_bound_access_tokens
        || (client.role == Role::Platform && !app.client_auth.allows_insecure());
    if must_bind && proof.is_none() {
        return Err(DpopError::Invalid("this client must present a DPoP proof").into());
    }
    let jkt = proof.map(|proof| proof.jkt);
    match form.grant_type.as_str() {
        "authorization_code" => exchange_code(app, client, form, jkt, about).await,
        "refresh_token" => refresh(app, client, form, jkt, about).await,
        "client_credentials" => client_credentials(app, client, jkt).await,
        other => Err(OAuthError::new(
            "unsupported_grant_type",
            format!(
                "grant_type {other:?} is not supported: use authorization_code, refresh_token \
                 or client_credentials"
            ),
        )
        .into()),
    }
}

/// An `invalid_grant` saying which check failed.
fn invalid_grant(description: &str) -> Refusal {
    OAuthError::new("invalid_grant", description).into()
}

/// An `invalid_request`: `parameter` is missing.
fn missing(parameter: &str) -> Refusal {
    OAuthError::new("invalid_request", format!("{parameter} is required")).into()
}

/// `authorization_code`: the code is looked up, checked (client, expiry, redirect URI, PKCE,
/// DPoP binding, consent) and only then redeemed, so a request that fails a check leaves the
/// code for the client's corrected retry. Redeeming is atomic: of two requests that pass the
/// checks at once, one gets tokens and the other is a replay. A code that produced tokens
/// and is presented again (with everything else right) is a replay: it revokes the consent
/// and every token issued from it. If the gateway fails after redeeming, the code is released
/// again (nothing was issued).
async fn exchange_code(
    app: &App,
    client: &Client,
    form: TokenForm,
    jkt: Option<String>,
    about: &mut Option<String>,
) -> Result<serde_json::Value, Refusal> {
    let code = form.code.as_deref().ok_or_else(|| missing("code"))?;
    let code_hash = crypto::sha256_hex(code.as_bytes());
    let (code, redeemed) = match app.store.code(&code_hash).await? {
        StoredCode::Unused(code) => (code, false),
        StoredCode::Redeemed(code) => (code, true),
        StoredCode::Unknown => return Err(invalid_grant("the authorization code is unknown")),
    };
    *about = Some(code.consent_id.clone());
    check_exchange(&code, client, &form, jkt.as_deref(), Utc::now())?;
    if redeemed {
        return Err(replayed(app, &code).await);
    }
    let consent = match app.store.consent(&code.consent_id).await? {
        Some(consent) if consent.status == ConsentStatus::Authorised => consent,
        Some(consent) => {
            return Err(invalid_grant(&format!(
                "the consent of this authorization code is {}",
                consent.status.as_str()
            )));
        }
        None => {
            return Err(invalid_grant(
                "the consent of this authorization code is gone",
            ));
        }
    };
    if !app.store.redeem_code(&code_hash).await? {
        // Another request redeemed it since the look-up: two redemptions at once.
        return Err(replayed(app, &code).await);
    }
    match code_tokens(app, client, &consent, jkt.as_deref()).await {
        Ok(body) => Ok(body),
        Err(refusal) => {
            // Nothing left the gateway: the client's retry is not a replay.
            if let Err(error) = app.store.release_code(&code_hash).await {
                tracing::error!(%error, consent = %consent.id, "a redeemed code could not be released");
            }
            Err(refusal)
        }
    }
}

/// What a code exchange must satisfy before the code is redeemed, in the order RFC 6749
/// §4.1.3, RFC 7636 §4.6 and RFC 9449 §10 state them; the refusal names the first that fails
/// (never a secret: neither the verifier nor the challenge).
fn check_exchange(
    code: &AuthorizationCode,
    client: &Client,
    form: &TokenForm,
    jkt: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if code.client_id != client.client_id {
        return Err(invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if code.expires_at < now {
        return Err(invalid_grant("the authorization code expired"));
    }
    let redirect_uri = form
        .redirect_uri
        .as_deref()
        .ok_or_else(|| missing("redirect_uri"))?;
    if redirect_uri != code.redirect_uri {
        return Err(invalid_grant(
            "redirect_uri differs from the one of the authorization request",
        ));
    }
    let verifier = form
        .code_verifier
        .as_deref()
        .ok_or_else(|| missing("code_verifier"))?;
    let challenge = crypto::pkce_s256(verifier);
    if !crypto::constant_time_eq(challenge.as_bytes(), code.code_challenge.as_bytes()) {
        return Err(invalid_grant(
            "PKCE verification failed: code_verifier does not match the code_challenge",
        ));
    }
    // RFC 9449 §10: a code bound to a key at PAR is redeemed with a proof by that key only.
    match (&code.dpop_jkt, jkt) {
        (Some(_), None) => Err(DpopError::Invalid(
            "the authorization code is bound to a DPoP key: send a DPoP proof by it",
        )
        .into()),
        (Some(bound), Some(proven)) if bound != proven => {
            Err(DpopError::Invalid("the authorization code is bound to another DPoP key").into())
        }
        _ => Ok(()),
    }
}

/// A replayed code: someone holds a copy, so nothing issued from it can be trusted. Revokes
/// its consent and every token under it; the refusal to send.
async fn replayed(app: &App, code: &AuthorizationCode) -> Refusal {
    tracing::warn!(consent = %code.consent_id, "authorization code replayed");
    let revoked = async {
        if let Some(consent) = app.store.consent(&code.consent_id).await? {
            lifecycle::revoke(
                &app.lifecycle(),
                &consent,
                "gateway",
                "authorization code replayed",
            )
            .await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    match revoked {
        Ok(()) => invalid_grant(
            "the authorization code was already redeemed; the consent and every token issued \
             from it are revoked",
        ),
        Err(error) => error.into(),
    }
}

/// The tokens a redeemed code gives: an access token, a refresh token, the consent.
async fn code_tokens(
    app: &App,
    client: &Client,
    consent: &Consent,
    jkt: Option<&str>,
) -> Result<serde_json::Value, Refusal> {
    let (access_token, claims) = consent_token(app, client, consent, jkt).await?;
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
    body["authorization_details"] =
        crate::broker::payment::granted_details(app.store.as_ref(), consent).await?;
    Ok(body)
}

async fn refresh(
    app: &App,
    client: &Client,
    form: TokenForm,
    jkt: Option<String>,
    about: &mut Option<String>,
) -> Result<serde_json::Value, Refusal> {
    let presented = form
        .refresh_token
        .as_deref()
        .ok_or_else(|| missing("refresh_token"))?;
    let now = Utc::now();
    let stored = app
        .store
        .refresh_token(&crypto::sha256_hex(presented.as_bytes()))
        .await?
        .ok_or_else(|| invalid_grant("the refresh token is unknown"))?;
    *about = Some(stored.consent_id.clone());
    if stored.client_id != client.client_id {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if stored.revoked_at.is_some() {
        return Err(invalid_grant("the refresh token was revoked"));
    }
    if stored.expires_at <= now {
        return Err(invalid_grant("the refresh token expired with its consent"));
    }
    let consent = match app.store.consent(&stored.consent_id).await? {
        Some(consent) if consent.status != ConsentStatus::Authorised => {
            return Err(invalid_grant(&format!(
                "the consent of this refresh token is {}",
                consent.status.as_str()
            )));
        }
        Some(consent) if consent.expires_at <= now => {
            return Err(invalid_grant("the consent of this refresh token expired"));
        }
        Some(consent) => consent,
        None => return Err(invalid_grant("the consent of this refresh token is gone")),
    };
    let (access_token, claims) = consent_token(app, client, &consent, jkt.as_deref()).await?;
    let mut body = token_body(app, &access_token, &claims);
    body["consent_id"] = json!(consent.id);
    body["authorization_details"] =
        crate::broker::payment::granted_details(app.store.as_ref(), &consent).await?;
    Ok(body)
}

/// Issues, records and audits an access token for a consent.
async fn consent_token(
    app: &App,
    client: &Client,
    consent: &Consent,
    jkt: Option<&str>,
) -> Result<(String, AccessClaims), Refusal> {
    let mut scope: Vec<&str> = consent.scopes.iter().map(|scope| scope.as_str()).collect();
    // A payment consent reads no data: its token pays.
    if scope.is_empty() {
        scope.push(crate::broker::payment::PAYMENT_SCOPE);
    }
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
    let mut event = client_event(Action::TokenIssued, client);
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
    #[serde(flatten)]
    client: ClientParams,
}

/// `POST /oauth/revoke` (RFC 7009). A refresh token ends its consent: the consent is revoked
/// as by `DELETE /v1/consents/{id}` (every token of it, the bank grant, audited, webhook), since
/// the refresh token is the platform's hold on the consent and a consent nobody can use should
/// not stay `authorised`. An access token revokes itself only. Answers 200 whether or not the
/// token was known or belonged to the caller (nothing is revealed about other clients' tokens).
pub(super) async fn revoke(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm<RevocationForm>,
) -> Result<Response, Error> {
    let client = authenticate(&app, &headers, &form.client).await?;
    let Some(token) = form.token else {
        let event = client_event(Action::ConsentRevoked, &client);
        let refusal = OAuthError::new("invalid_request", "token is required").into();
        return Ok(refused(&app, &headers, event, refusal).await);
    };
    let refresh = app
        .store
        .refresh_token(&crypto::sha256_hex(token.as_bytes()))
        .await?;
    match refresh {
        Some(refresh) if refresh.client_id == client.client_id => {
            match app.store.consent(&refresh.consent_id).await? {
                Some(consent) => {
                    lifecycle::revoke(
                        &app.lifecycle(),
                        &consent,
                        &client.client_id,
                        REFRESH_TOKEN_REVOKED,
                    )
                    .await?;
                }
                None => {
                    app.store.revoke_consent_tokens(&refresh.consent_id).await?;
                }
            }
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

/// The reason of a consent ended by revoking its refresh token.
pub const REFRESH_TOKEN_REVOKED: &str = "refresh token revoked by the platform (RFC 7009)";
