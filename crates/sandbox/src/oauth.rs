//! The OAuth2 authorization server every sandbox bank runs: authorization code with PKCE
//! (S256 only), an optional approval page, token, refresh, revocation (RFC 7009), metadata
//! (RFC 8414) and `iss` in every authorization response (RFC 9207), plus client credentials
//! for standards that need a bank-side resource created before the redirect (UK OBIE).
//!
//! What varies per standard is how an authorization request names the consent the customer
//! approves (a scope `AIS:<consentId>`, an OIDC `claims` request, RFC 9396
//! `authorization_details`, or nothing at all): each bank implements [`ConsentBinding`] and
//! merges [`routes`] into its router.
//!
//! State lives in memory behind one `std::sync::Mutex` per server, never held across an
//! `.await`, and never held while the bank's own consent books are locked.
//!
//! FAPI 2.0 client requirements (`private_key_jwt`, PAR, DPoP) are optional and live in
//! [`fapi`], on as far as the sandbox's [`SandboxFapi`](crate::SandboxFapi) asks, with the
//! JOSE checks of [`jose`].

mod fapi;
mod jose;

pub use fapi::sender_constraint;
pub use jose::ClientKeys;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::{constant_time, digest, rand};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::customers::{self, Customer};
use crate::plumbing::{
    bearer_token, error_page, escape_html, form_decode, found, header_text, no_store, parameters,
};
use crate::{Approval, SandboxConfig};

/// Authorization codes are single use and live at most this long.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Lifetime of an access token, unless the sandbox is told otherwise
/// (`SandboxFapi::access_token_lifetime`).
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// How long an approval page stays usable.
const TICKET_LIFETIME: Duration = Duration::from_secs(600);
/// How long a redeemed code is remembered, to catch replays.
const CODE_MEMORY: Duration = Duration::from_secs(600);

/// The authorization server of one sandbox bank: its one client and what it has issued.
pub struct AuthServer {
    client_id: String,
    client_secret: String,
    approval: Approval,
    origin: String,
    /// The bank's name on its pages.
    title: &'static str,
    /// What the server asks of its client beyond a secret.
    fapi: fapi::Fapi,
    /// How long the access tokens it issues live.
    access_token_lifetime: Duration,
    books: Mutex<OAuthBooks>,
}

/// Everything the authorization server remembers.
#[derive(Default)]
pub(super) struct OAuthBooks {
    /// Approval pages awaiting a decision, by ticket.
    pub(super) tickets: HashMap<String, Ticket>,
    pub(super) codes: HashMap<String, Code>,
    pub(super) access_tokens: HashMap<String, AccessToken>,
    pub(super) refresh_tokens: HashMap<String, RefreshToken>,
    /// Pushed authorization requests (RFC 9126), by `request_uri`.
    pub(super) pushed: HashMap<String, fapi::Pushed>,
    /// Client assertion and DPoP proof `jti`s seen, until when they are remembered.
    pub(super) seen_jtis: HashMap<String, Instant>,
}

impl OAuthBooks {
    /// Forgets what can no longer be used.
    fn prune(&mut self, now: Instant) {
        self.tickets.retain(|_, ticket| ticket.expires_at > now);
        self.codes
            .retain(|_, code| now.duration_since(code.issued_at) < CODE_MEMORY);
        self.access_tokens.retain(|_, token| token.expires_at > now);
        self.pushed.retain(|_, pushed| pushed.live(now));
    }

    /// Revokes an access or refresh token; revoking a refresh token revokes its access tokens.
    fn revoke(&mut self, token: &str) {
        self.access_tokens.remove(token);
        if self.refresh_tokens.remove(token).is_some() {
            self.access_tokens
                .retain(|_, access| access.refresh_token.as_deref() != Some(token));
        }
    }
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    redirect_uri: url::Url,
    /// The exact text of `redirect_uri`, compared at the token endpoint.
    redirect_uri_text: String,
    state: Option<String>,
    code_challenge: String,
    /// The consent the customer is asked to approve.
    pub consent_id: String,
    /// OIDC `login_hint`: the customer to sign in as (sandbox convenience).
    login_hint: Option<String>,
    /// The DPoP key the code is bound to (a proof or `dpop_jkt` at PAR).
    dpop_jkt: Option<String>,
    /// Whether the scope asked for `offline_access`.
    offline_access: bool,
    /// Whether the scope asked for `openid`: the token answer then carries an ID token
    /// naming the customer who approved.
    openid: bool,
    /// A sign-in (the scope is `openid`, with `offline_access` at most, and the request binds
    /// no consent): the customer only says who they are; `consent_id` is empty.
    sign_in: bool,
}

/// An approval page waiting for the customer's decision.
pub(super) struct Ticket {
    request: AuthorizationRequest,
    expires_at: Instant,
}

/// An issued authorization code.
pub(super) struct Code {
    consent_id: String,
    redirect_uri: String,
    code_challenge: String,
    pub(super) issued_at: Instant,
    redeemed: bool,
    /// Tokens issued for it, revoked if the code is replayed.
    issued_tokens: Vec<String>,
    /// The DPoP key the token request must prove possession of.
    dpop_jkt: Option<String>,
    /// Whether its tokens come with a refresh token.
    refreshable: bool,
    /// The customer who approved, named in the ID token when `openid` was asked for.
    customer: &'static Customer,
    openid: bool,
    /// A sign-in's code: its token names the customer and grants nothing else.
    sign_in: bool,
}

/// An issued access token.
pub(super) struct AccessToken {
    /// The consent it reads under; `None` for a client credentials token.
    consent_id: Option<String>,
    scope: String,
    refresh_token: Option<String>,
    expires_at: Instant,
    /// The DPoP key it is bound to (RFC 9449), if any.
    jkt: Option<String>,
}

/// The scope that asks an OpenID provider for a refresh token.
const OFFLINE_ACCESS: &str = "offline_access";
/// The scope that asks for an ID token (OpenID Connect Core 1.0 §3.1.2.1).
const OPENID: &str = "openid";
/// How long an ID token is valid.
const ID_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The refresh token an access token is issued with.
enum Refresh {
    /// A new one (authorization code).
    New,
    /// The one presented (refresh; not rotated).
    Under(String),
    /// None (a code whose request did not ask for `offline_access` at a server that wants it).
    None,
}

/// An issued refresh token.
pub(super) struct RefreshToken {
    consent_id: String,
}

/// What a bearer token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The consent of an authorization code token; `None` for client credentials.
    pub consent_id: Option<String>,
    pub scope: String,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    Missing,
    Unknown,
    Expired,
}

/// An authorization request that names no usable consent: RFC 6749 error code and text.
#[derive(Debug)]
pub struct BindError {
    pub error: &'static str,
    pub description: String,
}

impl BindError {
    /// `invalid_scope` with a description.
    pub fn invalid_scope(description: impl Into<String>) -> BindError {
        BindError {
            error: "invalid_scope",
            description: description.into(),
        }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<String>) -> BindError {
        BindError {
            error: "invalid_request",
            description: description.into(),
        }
    }
}

/// What the approval page shows about a consent.
pub struct ApprovalView {
    /// The customer preselected (and approved as, without a page or `login_hint`).
    pub customer: &'static Customer,
    /// What the third party asks to do: "read", "make a payment".
    pub action: &'static str,
    /// One line per kind of data, e.g. "balances (all accounts)".
    pub items: Vec<String>,
    /// How long and how often, e.g. "until 2025-06-30, up to 4 times a day".
    pub terms: String,
}

/// How a standard binds authorization requests to its consents; implemented by each sandbox
/// bank, whose state also holds the [`AuthServer`].
pub trait ConsentBinding: Send + Sync + 'static {
    /// The bank's authorization server.
    fn auth(&self) -> &AuthServer;

    /// The consent an authorization request asks the customer to approve (created here when
    /// the standard creates it with the authorization request).
    fn bind(&self, parameters: &HashMap<String, String>) -> Result<String, BindError>;

    /// What the approval page shows; `None` for an unknown consent.
    fn view(&self, consent_id: &str) -> Option<ApprovalView>;

    /// Marks the consent approved by `customer`; false if it can no longer be.
    fn approve(&self, consent_id: &str, customer: &'static Customer) -> bool;

    /// Marks the consent rejected.
    fn deny(&self, consent_id: &str);

    /// Whether tokens may (still) be issued for the consent.
    fn usable(&self, consent_id: &str) -> bool;

    /// The members a token answer adds for the consent; `scope` at least.
    fn token_fields(&self, consent_id: &str) -> Map<String, Value>;

    /// The scope granted to a client credentials token asking for `requested`, or `None`
    /// if the standard has no use for that grant.
    fn client_credentials_scope(&self, requested: Option<&str>) -> Option<Result<String, String>> {
        let _ = requested;
        None
    }
}

/// An RFC 6749 error answered by the token and revocation endpoints.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// Ask for HTTP Basic credentials again (RFC 6749 §5.2).
    basic_challenge: bool,
    /// A fresh DPoP nonce to send with a DPoP error (RFC 9449 §8).
    dpop_nonce: Option<String>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
            dpop_nonce: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_grant", description)
    }

    fn invalid_client(basic_challenge: bool) -> OAuthError {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "client authentication failed".into(),
            basic_challenge,
            dpop_nonce: None,
        }
    }

    fn server_error() -> OAuthError {
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "the sandbox could not issue a token".into(),
            basic_challenge: false,
            dpop_nonce: None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, no_store(), Json(body)).into_response();
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sandbox\""),
            );
        }
        if let Some(nonce) = self
            .dpop_nonce
            .and_then(|nonce| HeaderValue::from_str(&nonce).ok())
        {
            response
                .headers_mut()
                .insert(jose::DPOP_NONCE_HEADER, nonce);
        }
        response
    }
}

/// Why an authorization request failed, and how to tell.
enum AuthorizeFailure {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect.
    Page(String),
    /// Redirect back to the client with an RFC 6749 error.
    Redirect(Box<Response>),
}

impl AuthServer {
    /// The server of a sandbox listening at `origin`, named `title` on its pages.
    pub fn new(config: &SandboxConfig, origin: &str, title: &'static str) -> AuthServer {
        AuthServer {
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            approval: config.approval,
            origin: origin.trim_end_matches('/').to_owned(),
            title,
            fapi: fapi::Fapi::new(&config.fapi, &config.client_secret),
            access_token_lifetime: config
                .fapi
                .access_token_lifetime
                .unwrap_or(ACCESS_TOKEN_LIFETIME),
            books: Mutex::new(OAuthBooks::default()),
        }
    }

    /// The RFC 9396 `authorization_details` type naming a consent, when the bank takes it so
    /// (`SandboxFapi::consent_detail_type`).
    pub fn consent_detail_type(&self) -> Option<&str> {
        self.fapi.consent_detail_type.as_deref()
    }

    /// The one client the server knows.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The keys the client registered, if it did (its `private_key_jwt` keys, which also
    /// verify what it signs, e.g. OBIE's `x-jws-signature`).
    pub fn client_keys(&self) -> Option<&ClientKeys> {
        self.fapi.client_keys.as_ref()
    }

    /// Where the bank listens, which is also its issuer identifier.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The books; a panic elsewhere while they were held leaves them usable.
    pub(super) fn books(&self) -> MutexGuard<'_, OAuthBooks> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the bearer token of a request grants.
    pub fn bearer(&self, headers: &HeaderMap) -> Result<TokenGrant, BearerError> {
        let token = bearer_token(headers).ok_or(BearerError::Missing)?;
        let books = self.books();
        let entry = books.access_tokens.get(token).ok_or(BearerError::Unknown)?;
        if entry.expires_at <= Instant::now() {
            return Err(BearerError::Expired);
        }
        Ok(TokenGrant {
            consent_id: entry.consent_id.clone(),
            scope: entry.scope.clone(),
        })
    }

    /// Revokes every token issued for a consent (the customer or the TPP ended it).
    pub fn revoke_consent(&self, consent_id: &str) {
        let mut books = self.books();
        books
            .access_tokens
            .retain(|_, token| token.consent_id.as_deref() != Some(consent_id));
        books
            .refresh_tokens
            .retain(|_, token| token.consent_id != consent_id);
    }

    /// Redirects to the client with `pairs`, the client's `state` and our `iss` (RFC 9207).
    fn redirect(&self, request: &AuthorizationRequest, pairs: &[(&str, &str)]) -> Response {
        let mut location = request.redirect_uri.clone();
        {
            let mut query = location.query_pairs_mut();
            for (key, value) in pairs {
                query.append_pair(key, value);
            }
            if let Some(state) = &request.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.origin);
        }
        found(&location)
    }

    fn redirect_error(
        &self,
        request: &AuthorizationRequest,
        error: &str,
        description: &str,
    ) -> Response {
        self.redirect(
            request,
            &[("error", error), ("error_description", description)],
        )
    }

    fn page(&self, status: StatusCode, message: &str) -> Response {
        error_page(status, self.title, message)
    }

    /// Checks the client, redirect URI, response type and PKCE, then asks the bank which
    /// consent the request is for.
    fn check_authorization<B: ConsentBinding>(
        &self,
        bank: &B,
        parameters: &HashMap<String, String>,
    ) -> Result<AuthorizationRequest, AuthorizeFailure> {
        let get = |name: &str| parameters.get(name).map(String::as_str);
        if get("client_id") != Some(self.client_id.as_str()) {
            return Err(AuthorizeFailure::Page("unknown client_id".into()));
        }
        let redirect_uri_text = get("redirect_uri")
            .ok_or_else(|| AuthorizeFailure::Page("redirect_uri is missing".into()))?;
        let redirect_uri = url::Url::parse(redirect_uri_text)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.fragment().is_none())
            .ok_or_else(|| {
                AuthorizeFailure::Page("redirect_uri must be an absolute http(s) URL".into())
            })?;
        let mut request = AuthorizationRequest {
            redirect_uri,
            redirect_uri_text: redirect_uri_text.to_owned(),
            state: get("state").map(str::to_owned),
            code_challenge: String::new(),
            consent_id: String::new(),
            login_hint: get("login_hint").map(str::to_owned),
            dpop_jkt: None,
            offline_access: get("scope")
                .unwrap_or_default()
                .split_ascii_whitespace()
                .any(|scope| scope == OFFLINE_ACCESS),
            openid: get("scope")
                .unwrap_or_default()
                .split_ascii_whitespace()
                .any(|scope| scope == OPENID),
            sign_in: is_sign_in(get("scope").unwrap_or_default()),
        };
        let fail = |request: &AuthorizationRequest, error: &str, description: &str| {
            AuthorizeFailure::Redirect(Box::new(self.redirect_error(request, error, description)))
        };
        if get("response_type") != Some("code") {
            return Err(fail(
                &request,
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        if get("code_challenge_method") != Some("S256") {
            return Err(fail(
                &request,
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            ));
        }
        match get("code_challenge") {
            Some(challenge) if is_s256_challenge(challenge) => {
                request.code_challenge = challenge.to_owned();
            }
            _ => {
                return Err(fail(
                    &request,
                    "invalid_request",
                    "code_challenge must be a base64url SHA-256 digest",
                ));
            }
        }
        if let Some(resource) = &self.fapi.resource
            && get("resource") != Some(resource.as_str())
        {
            return Err(fail(
                &request,
                "invalid_target",
                "resource must name this bank's API",
            ));
        }
        if let Some(hint) = &request.login_hint
            && customers::find(hint).is_none()
        {
            return Err(fail(&request, "login_required", "unknown login_hint"));
        }
        // A request binding a consent is that consent's (FDX's binds one with the scope
        // `openid offline_access`); one that binds none and asks only `openid` is a sign-in.
        match bank.bind(parameters) {
            Ok(consent_id) => {
                request.consent_id = consent_id;
                request.sign_in = false;
            }
            Err(_) if request.sign_in => {}
            Err(error) => return Err(fail(&request, error.error, &error.description)),
        }
        Ok(request)
    }

    /// Approves the consent as `customer` and redirects with a fresh code.
    fn approve<B: ConsentBinding>(
        &self,
        bank: &B,
        request: &AuthorizationRequest,
        customer: &'static Customer,
    ) -> Response {
        let Ok(code) = random_token(32) else {
            return self.redirect_error(request, "server_error", "no randomness");
        };
        if !request.sign_in && !bank.approve(&request.consent_id, customer) {
            return self.redirect_error(
                request,
                "invalid_scope",
                "the consent can no longer be authorised",
            );
        }
        let now = Instant::now();
        {
            let mut books = self.books();
            books.prune(now);
            books.codes.insert(
                code.clone(),
                Code {
                    consent_id: request.consent_id.clone(),
                    redirect_uri: request.redirect_uri_text.clone(),
                    code_challenge: request.code_challenge.clone(),
                    issued_at: now,
                    redeemed: false,
                    issued_tokens: Vec::new(),
                    dpop_jkt: request.dpop_jkt.clone(),
                    refreshable: request.offline_access || !self.fapi.refresh_needs_offline_access,
                    customer,
                    openid: request.openid,
                    sign_in: request.sign_in,
                },
            );
        }
        self.redirect(request, &[("code", &code)])
    }

    /// Rejects the consent and redirects with `access_denied`.
    fn deny<B: ConsentBinding>(&self, bank: &B, request: &AuthorizationRequest) -> Response {
        if !request.sign_in {
            bank.deny(&request.consent_id);
        }
        self.redirect_error(request, "access_denied", "the customer denied access")
    }

    /// Shows the approval page for a validated request.
    fn approval_page<B: ConsentBinding>(
        &self,
        bank: &B,
        request: AuthorizationRequest,
    ) -> Response {
        let view = if request.sign_in {
            Some(sign_in_view())
        } else {
            bank.view(&request.consent_id)
        };
        let Some(view) = view else {
            return self.redirect_error(&request, "invalid_scope", "unknown consent");
        };
        let Ok(ticket) = random_token(24) else {
            return self.redirect_error(&request, "server_error", "no randomness");
        };
        let now = Instant::now();
        let preselected = request
            .login_hint
            .as_deref()
            .and_then(customers::find)
            .unwrap_or(view.customer);
        let consent_id = request.consent_id.clone();
        {
            let mut books = self.books();
            books.prune(now);
            books.tickets.insert(
                ticket.clone(),
                Ticket {
                    request,
                    expires_at: now + TICKET_LIFETIME,
                },
            );
        }
        let options: String = customers::CUSTOMERS
            .iter()
            .map(|customer| {
                let selected = if customer.id == preselected.id {
                    " selected"
                } else {
                    ""
                };
                format!(
                    "<option value=\"{}\"{selected}>{} ({})</option>",
                    escape_html(&customer.id),
                    escape_html(&customer.name),
                    escape_html(&customer.id)
                )
            })
            .collect();
        let items: String = view
            .items
            .iter()
            .map(|item| format!("<li>{}</li>", escape_html(item)))
            .collect();
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>{title}: approve access</title>\
             <style>body{{font-family:sans-serif;max-width:34rem;margin:3rem auto;line-height:1.4}}\
             button{{margin-right:.5rem;padding:.4rem 1rem}}</style></head><body>\n\
             <h1>{title}</h1>\n\
             <p>A third party asks to {action}, {terms}:</p><ul>{items}</ul>\n\
             <form method=\"post\" action=\"/oauth/authorize\">\n\
             <input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\n\
             <p><label>Signed in as <select name=\"customer\">{options}</select></label></p>\n\
             <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n\
             </form><p><small>Consent {consent_id}</small></p></body></html>\n",
            title = escape_html(self.title),
            action = escape_html(view.action),
            terms = escape_html(&view.terms),
            ticket = escape_html(&ticket),
            consent_id = escape_html(&consent_id),
        );
        (no_store(), Html(page)).into_response()
    }

    /// Authenticates the client by `client_secret_basic` or `client_secret_post`, or — when
    /// it registered keys — by `private_key_jwt` only.
    fn authenticate(
        &self,
        headers: &HeaderMap,
        parameters: &HashMap<String, String>,
    ) -> Result<(), OAuthError> {
        if let Some(keys) = &self.fapi.client_keys {
            return self.authenticate_with_assertion(keys, headers, parameters);
        }
        let basic = header_text(headers, header::AUTHORIZATION.as_str()).and_then(|value| {
            let (scheme, credentials) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| credentials.trim())
        });
        let (client_id, secret, via_basic) = match (basic, parameters.get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "use exactly one client authentication method",
                ));
            }
            (Some(credentials), None) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(credentials)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| OAuthError::invalid_client(true))?;
                let (id, secret) = decoded
                    .split_once(':')
                    .and_then(|(id, secret)| Some((form_decode(id)?, form_decode(secret)?)))
                    .ok_or_else(|| OAuthError::invalid_client(true))?;
                if parameters
                    .get("client_id")
                    .is_some_and(|body_id| *body_id != id)
                {
                    return Err(OAuthError::invalid_request(
                        "client_id differs from the authenticated client",
                    ));
                }
                (id, secret, true)
            }
            (None, Some(secret)) => {
                let id = parameters
                    .get("client_id")
                    .ok_or_else(|| OAuthError::invalid_client(false))?;
                (id.clone(), secret.clone(), false)
            }
            (None, None) => return Err(OAuthError::invalid_client(true)),
        };
        let id_ok = client_id == self.client_id;
        let secret_ok = constant_time::verify_slices_are_equal(
            secret.as_bytes(),
            self.client_secret.as_bytes(),
        )
        .is_ok();
        if id_ok && secret_ok {
            Ok(())
        } else {
            Err(OAuthError::invalid_client(via_basic))
        }
    }

    /// Issues an access token for a consent (with a new refresh token when `refresh` says
    /// so, or under the one given), bound to the DPoP key `jkt` when there is one.
    fn issue(
        &self,
        books: &mut OAuthBooks,
        consent_id: &str,
        refresh: Refresh,
        fields: Map<String, Value>,
        jkt: Option<String>,
    ) -> Result<Value, OAuthError> {
        let access_token = random_token(32)?;
        let refresh_token = match refresh {
            Refresh::Under(token) => Some(token),
            Refresh::New => {
                let token = random_token(32)?;
                books.refresh_tokens.insert(
                    token.clone(),
                    RefreshToken {
                        consent_id: consent_id.to_owned(),
                    },
                );
                Some(token)
            }
            Refresh::None => None,
        };
        let scope = fields
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        books.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                consent_id: Some(consent_id.to_owned()),
                scope,
                refresh_token: refresh_token.clone(),
                expires_at: Instant::now() + self.access_token_lifetime,
                jkt: jkt.clone(),
            },
        );
        let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
        let mut answer = Map::new();
        answer.insert("access_token".into(), access_token.into());
        answer.insert("token_type".into(), token_type.into());
        answer.insert(
            "expires_in".into(),
            self.access_token_lifetime.as_secs().into(),
        );
        if let Some(refresh_token) = refresh_token {
            answer.insert("refresh_token".into(), refresh_token.into());
        }
        answer.extend(fields);
        Ok(Value::Object(answer))
    }

    /// An OpenID Connect ID token naming `customer` (`sub`: the customer's login id, `name`),
    /// for the one client, signed HS256 with its secret (OpenID Connect Core 1.0 §10.1).
    fn id_token(&self, customer: &Customer) -> Result<String, OAuthError> {
        let now = chrono::Utc::now().timestamp();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = json!({
            "iss": self.origin,
            "sub": customer.id,
            "aud": self.client_id,
            "name": customer.name,
            "iat": now,
            "exp": now + i64::try_from(ID_TOKEN_LIFETIME.as_secs()).unwrap_or(300),
        });
        let payload = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).map_err(|_| OAuthError::server_error())?);
        let signing_input = format!("{header}.{payload}");
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.client_secret.as_bytes());
        let signature =
            URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, signing_input.as_bytes()));
        Ok(format!("{signing_input}.{signature}"))
    }

    fn redeem_code<B: ConsentBinding>(
        &self,
        bank: &B,
        parameters: &HashMap<String, String>,
        jkt: Option<String>,
    ) -> Result<Value, OAuthError> {
        let required = |name: &str| {
            parameters
                .get(name)
                .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
        };
        let code = required("code")?;
        let redirect_uri = required("redirect_uri")?;
        let verifier = required("code_verifier")?;
        if !is_code_verifier(verifier) {
            return Err(OAuthError::invalid_request(
                "code_verifier must be 43 to 128 unreserved characters",
            ));
        }
        let now = Instant::now();
        let (consent_id, refresh, person, sign_in) = {
            let mut books = self.books();
            let Some(entry) = books.codes.get_mut(code) else {
                return Err(OAuthError::invalid_grant("unknown authorization code"));
            };
            if entry.redeemed {
                // RFC 6749 §4.1.2: a replayed code revokes what was issued from it.
                let issued = std::mem::take(&mut entry.issued_tokens);
                for token in &issued {
                    books.revoke(token);
                }
                return Err(OAuthError::invalid_grant(
                    "authorization code was already used",
                ));
            }
            entry.redeemed = true;
            if now.duration_since(entry.issued_at) > CODE_LIFETIME {
                return Err(OAuthError::invalid_grant("authorization code expired"));
            }
            if entry.redirect_uri != *redirect_uri {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri does not match the authorization request",
                ));
            }
            let challenge = pkce_s256(verifier);
            if constant_time::verify_slices_are_equal(
                challenge.as_bytes(),
                entry.code_challenge.as_bytes(),
            )
            .is_err()
            {
                return Err(OAuthError::invalid_grant("PKCE verification failed"));
            }
            // RFC 9449 §10: a code bound at PAR is redeemed with the same key only.
            if entry.dpop_jkt.is_some() && entry.dpop_jkt != jkt {
                return Err(OAuthError::new(
                    "invalid_dpop_proof",
                    "the code is bound to another DPoP key",
                ));
            }
            (
                entry.consent_id.clone(),
                if entry.refreshable {
                    Refresh::New
                } else {
                    Refresh::None
                },
                entry.openid.then_some(entry.customer),
                entry.sign_in,
            )
        };
        if sign_in {
            return self.signed_in(code, person, jkt);
        }
        // The bank's consent books are consulted without the OAuth books held.
        if !bank.usable(&consent_id) {
            return Err(OAuthError::invalid_grant("the consent is no longer valid"));
        }
        let mut fields = bank.token_fields(&consent_id);
        if let Some(customer) = person {
            fields.insert("id_token".into(), self.id_token(customer)?.into());
        }
        let mut books = self.books();
        let response = self.issue(&mut books, &consent_id, refresh, fields, jkt)?;
        let issued: Vec<String> = ["access_token", "refresh_token"]
            .iter()
            .filter_map(|name| response[name].as_str().map(str::to_owned))
            .collect();
        if let Some(entry) = books.codes.get_mut(code) {
            entry.issued_tokens = issued;
        }
        Ok(response)
    }

    /// The token answer of a sign-in's code: an ID token naming the customer, and an access
    /// token bound to no consent, with the scope `openid` only (nothing to read with it), no
    /// refresh token.
    fn signed_in(
        &self,
        code: &str,
        person: Option<&'static Customer>,
        jkt: Option<String>,
    ) -> Result<Value, OAuthError> {
        let customer = person.ok_or_else(OAuthError::server_error)?;
        let id_token = self.id_token(customer)?;
        let access_token = random_token(32)?;
        let mut books = self.books();
        books.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                consent_id: None,
                scope: OPENID.into(),
                refresh_token: None,
                expires_at: Instant::now() + self.access_token_lifetime,
                jkt: jkt.clone(),
            },
        );
        if let Some(entry) = books.codes.get_mut(code) {
            entry.issued_tokens = vec![access_token.clone()];
        }
        Ok(json!({
            "access_token": access_token,
            "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": self.access_token_lifetime.as_secs(),
            "scope": OPENID,
            "id_token": id_token,
        }))
    }

    fn refresh<B: ConsentBinding>(
        &self,
        bank: &B,
        parameters: &HashMap<String, String>,
        jkt: Option<String>,
    ) -> Result<Value, OAuthError> {
        let refresh_token = parameters
            .get("refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
        let consent_id = {
            let mut books = self.books();
            books.prune(Instant::now());
            books
                .refresh_tokens
                .get(refresh_token)
                .map(|token| token.consent_id.clone())
                .ok_or_else(|| OAuthError::invalid_grant("unknown refresh token"))?
        };
        if !bank.usable(&consent_id) {
            return Err(OAuthError::invalid_grant("the consent is no longer valid"));
        }
        let fields = bank.token_fields(&consent_id);
        let mut books = self.books();
        if !books.refresh_tokens.contains_key(refresh_token) {
            return Err(OAuthError::invalid_grant("unknown refresh token"));
        }
        self.issue(
            &mut books,
            &consent_id,
            Refresh::Under(refresh_token.clone()),
            fields,
            jkt,
        )
    }

    /// A client credentials token, bound to the DPoP key `jkt` when the request proved one.
    fn client_credentials<B: ConsentBinding>(
        &self,
        bank: &B,
        parameters: &HashMap<String, String>,
        jkt: Option<String>,
    ) -> Result<Value, OAuthError> {
        let scope = match bank.client_credentials_scope(parameters.get("scope").map(String::as_str))
        {
            None => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    "this bank has no use for client_credentials",
                ));
            }
            Some(Err(message)) => return Err(OAuthError::new("invalid_scope", message)),
            Some(Ok(scope)) => scope,
        };
        let access_token = random_token(32)?;
        self.books().access_tokens.insert(
            access_token.clone(),
            AccessToken {
                consent_id: None,
                scope: scope.clone(),
                refresh_token: None,
                expires_at: Instant::now() + self.access_token_lifetime,
                jkt: jkt.clone(),
            },
        );
        Ok(json!({
            "access_token": access_token,
            "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": self.access_token_lifetime.as_secs(),
            "scope": scope,
        }))
    }
}

/// Whether an authorization request's `scope` asks only who the customer is: `openid`, with
/// `offline_access` at most (OpenID Connect Core 1.0 §3.1.2.1). Such a request binds no
/// consent: the customer signs in, and the ID token names them.
fn is_sign_in(scope: &str) -> bool {
    let mut scopes = scope.split_ascii_whitespace();
    let openid = scopes.clone().any(|scope| scope == OPENID);
    openid && scopes.all(|scope| scope == OPENID || scope == OFFLINE_ACCESS)
}

/// What the approval page shows for a sign-in.
fn sign_in_view() -> ApprovalView {
    ApprovalView {
        customer: customers::default_customer(),
        action: "know who you are",
        items: vec!["your customer id and name (OpenID Connect)".into()],
        terms: "once, to sign you in".into(),
    }
}

/// `n_bytes` random bytes as base64url: codes, tokens, approval tickets, request URIs.
fn random_token(n_bytes: usize) -> Result<String, OAuthError> {
    let mut bytes = vec![0; n_bytes];
    rand::fill(&mut bytes).map_err(|_| OAuthError::server_error())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The PKCE S256 challenge of a verifier (RFC 7636).
pub(crate) fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// A PKCE S256 challenge is 43 base64url characters (a SHA-256 digest).
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The authorization server's routes, to merge into a bank's router.
pub fn routes<B: ConsentBinding>() -> Router<Arc<B>> {
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::<B>),
        )
        .route(
            "/oauth/authorize",
            get(authorize::<B>).post(authorize_decision::<B>),
        )
        .route("/oauth/par", post(fapi::par::<B>))
        .route("/oauth/token", post(token::<B>))
        .route("/oauth/revoke", post(revoke::<B>))
}

async fn metadata<B: ConsentBinding>(State(bank): State<Arc<B>>) -> Json<Value> {
    let origin = bank.auth().origin();
    let mut grants = vec!["authorization_code", "refresh_token"];
    if bank.client_credentials_scope(None).is_some() {
        grants.push("client_credentials");
    }
    let fapi = &bank.auth().fapi;
    let auth_methods: &[&str] = if fapi.client_keys.is_some() {
        &["private_key_jwt"]
    } else {
        &["client_secret_basic", "client_secret_post"]
    };
    Json(json!({
        "issuer": origin,
        "authorization_endpoint": format!("{origin}/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "revocation_endpoint": format!("{origin}/oauth/revoke"),
        "pushed_authorization_request_endpoint": format!("{origin}/oauth/par"),
        "require_pushed_authorization_requests": fapi.require_par,
        "dpop_signing_alg_values_supported": fapi.algs(),
        "token_endpoint_auth_signing_alg_values_supported": fapi.algs(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn authorize<B: ConsentBinding>(
    State(bank): State<Arc<B>>,
    RawQuery(query): RawQuery,
) -> Response {
    let auth = bank.auth();
    let parameters = match parameters(query.unwrap_or_default().as_bytes()) {
        Ok(parameters) => parameters,
        Err(message) => return auth.page(StatusCode::BAD_REQUEST, &message),
    };
    let (parameters, dpop_jkt) = match auth.resolve_pushed(parameters) {
        Ok(resolved) => resolved,
        Err(message) => return auth.page(StatusCode::BAD_REQUEST, &message),
    };
    let request = match auth.check_authorization(bank.as_ref(), &parameters) {
        Ok(request) => AuthorizationRequest {
            dpop_jkt,
            ..request
        },
        Err(AuthorizeFailure::Page(message)) => {
            return auth.page(StatusCode::BAD_REQUEST, &message);
        }
        Err(AuthorizeFailure::Redirect(response)) => return *response,
    };
    match auth.approval {
        Approval::Auto => {
            let hinted = request.login_hint.as_deref().and_then(customers::find);
            let customer = if request.sign_in {
                Some(hinted.unwrap_or_else(customers::default_customer))
            } else {
                hinted.or_else(|| bank.view(&request.consent_id).map(|v| v.customer))
            };
            match customer {
                Some(customer) => auth.approve(bank.as_ref(), &request, customer),
                None => auth.redirect_error(&request, "invalid_scope", "unknown consent"),
            }
        }
        Approval::Page => auth.approval_page(bank.as_ref(), request),
    }
}

async fn authorize_decision<B: ConsentBinding>(
    State(bank): State<Arc<B>>,
    body: Bytes,
) -> Response {
    let auth = bank.auth();
    let parameters = match parameters(&body) {
        Ok(parameters) => parameters,
        Err(message) => return auth.page(StatusCode::BAD_REQUEST, &message),
    };
    let ticket = parameters
        .get("ticket")
        .and_then(|ticket| auth.books().tickets.remove(ticket))
        .filter(|ticket| ticket.expires_at > Instant::now());
    let Some(ticket) = ticket else {
        return auth.page(
            StatusCode::BAD_REQUEST,
            "this approval page has expired or was already used; start again",
        );
    };
    match parameters.get("decision").map(String::as_str) {
        Some("approve") => {
            let customer = parameters
                .get("customer")
                .and_then(|id| customers::find(id));
            match customer {
                Some(customer) => auth.approve(bank.as_ref(), &ticket.request, customer),
                None => auth.page(StatusCode::BAD_REQUEST, "unknown customer"),
            }
        }
        Some("deny") => auth.deny(bank.as_ref(), &ticket.request),
        _ => auth.page(StatusCode::BAD_REQUEST, "decide: approve or deny"),
    }
}

async fn token<B: ConsentBinding>(
    State(bank): State<Arc<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let auth = bank.auth();
    let parameters = parameters(&body).map_err(OAuthError::invalid_request)?;
    auth.authenticate(&headers, &parameters)?;
    let jkt = auth.proof(&headers, "/oauth/token")?;
    if auth.fapi.require_dpop && jkt.is_none() {
        return Err(OAuthError::dpop(
            &jose::DpopError::Invalid("this bank requires a DPoP proof"),
            Some(auth.nonce()),
        ));
    }
    let response = match parameters.get("grant_type").map(String::as_str) {
        Some("authorization_code") => auth.redeem_code(bank.as_ref(), &parameters, jkt)?,
        Some("refresh_token") => auth.refresh(bank.as_ref(), &parameters, jkt)?,
        Some("client_credentials") => auth.client_credentials(bank.as_ref(), &parameters, jkt)?,
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "only authorization_code, refresh_token and client_credentials",
            ));
        }
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
    };
    let mut response = (no_store(), Json(response)).into_response();
    if let Some((name, nonce)) = fapi::nonce_header(auth) {
        response.headers_mut().insert(name, nonce);
    }
    Ok(response)
}

/// RFC 7009: answers 200 whether or not the token was known.
async fn revoke<B: ConsentBinding>(
    State(bank): State<Arc<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, OAuthError> {
    let auth = bank.auth();
    let parameters = parameters(&body).map_err(OAuthError::invalid_request)?;
    auth.authenticate(&headers, &parameters)?;
    let token = parameters
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    auth.books().revoke(token);
    Ok(StatusCode::OK)
}
