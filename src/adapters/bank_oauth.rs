//! bankgate as OAuth client of a bank's authorization server, through the `oauth2` crate:
//! authorization code with PKCE (S256) and `state`, code exchange, refresh, revocation
//! (RFC 7009), and the bank tokens of a consent ([`tokens`], refreshed before use).
//!
//! Where the bank's manifest asks for them, the crate's requests carry what it has no support
//! for, from small modules of ours: `private_key_jwt` client authentication ([`auth`], extra
//! parameters instead of the secret), pushed authorization requests ([`par`]) and DPoP proofs
//! ([`dpop`], the custom HTTP client function token requests go through).
//!
//! Back-channel calls use the bank's HTTP client, which never follows redirects.

use chrono::{DateTime, Duration, Utc};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AccessToken, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RevocationUrl, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::adapters::{AdapterError, Bank, BankSession};

pub mod auth;
pub mod discovery;
pub mod dpop;
pub mod id_token;
pub mod par;
pub mod tokens;

pub use id_token::BankPerson;
pub use tokens::{BankTokenError, BankTokens};

/// The members of a bank's token answer beyond RFC 6749's that bankgate reads: OpenID
/// Connect's `id_token`, which names the person who approved. Never logged.
#[derive(Clone, Default, Deserialize, Serialize)]
pub struct OpenIdFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl std::fmt::Debug for OpenIdFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenIdFields")
            .field("id_token", &self.id_token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl ExtraTokenFields for OpenIdFields {}

/// A bank's token answer.
type BankTokenResponse = StandardTokenResponse<OpenIdFields, BasicTokenType>;

/// The crate's client, reading [`BankTokenResponse`]s.
type BankClient<
    HasAuthUrl = EndpointNotSet,
    HasRevocationUrl = EndpointNotSet,
    HasTokenUrl = EndpointNotSet,
> = oauth2::Client<
    BasicErrorResponse,
    BankTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    HasRevocationUrl,
    HasTokenUrl,
>;

type ConfiguredClient = BankClient<EndpointSet, EndpointNotSet, EndpointSet>;

/// The tokens a bank granted bankgate for one consent. Sealed at rest; never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankGrant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the bank issued the access token: with `expires_at`, its lifetime, which sets how
    /// early it is refreshed ([`tokens::refresh_margin`]). Absent in grants stored before it
    /// was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<DateTime<Utc>>,
    /// The bank-side consent resource the tokens belong to, if any.
    pub bank_consent_id: Option<String>,
}

impl std::fmt::Debug for BankGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankGrant")
            .field("expires_at", &self.expires_at)
            .field("bank_consent_id", &self.bank_consent_id)
            .finish_non_exhaustive()
    }
}

impl BankGrant {
    /// The session a call to `bank` presents with this grant.
    pub fn session<'a>(&'a self, bank: &'a Bank) -> BankSession<'a> {
        BankSession {
            bank,
            access_token: &self.access_token,
            bank_consent_id: self.bank_consent_id.as_deref(),
        }
    }
}

/// Where to send the user, and what to remember until they come back.
pub struct AuthorizationRedirect {
    pub url: url::Url,
    pub state: String,
    pub pkce_verifier: String,
}

/// The crate's client for the bank: with bankgate's secret (HTTP Basic), or without one when
/// bankgate authenticates with `private_key_jwt` (the crate then sends `client_id` in the body
/// and the assertion goes in as extra parameters, see [`with_assertion`]).
fn base_client(bank: &Bank) -> BankClient {
    let client = BankClient::new(ClientId::new(bank.client_id.clone()));
    match (&bank.keys.assertion, bank.client_secret()) {
        (None, Some(secret)) => client.set_client_secret(ClientSecret::new(secret.to_owned())),
        _ => client,
    }
}

/// Adds the `private_key_jwt` client assertion parameters to a token or revocation request,
/// when bankgate authenticates that way at the bank.
fn with_assertion<R>(
    bank: &Bank,
    mut request: R,
    add: impl Fn(R, &'static str, String) -> R,
) -> Result<R, AdapterError> {
    if let Some(params) = auth::assertion_params(bank)? {
        for (name, value) in params {
            request = add(request, name, value);
        }
    }
    Ok(request)
}

fn client(bank: &Bank, redirect_uri: &str) -> Result<ConfiguredClient, AdapterError> {
    let oauth = &bank.manifest.oauth;
    let bad = |what: &str| AdapterError::Refused(format!("bank manifest has a bad {what}"));
    Ok(base_client(bank)
        .set_auth_uri(
            AuthUrl::new(oauth.authorization_endpoint.clone())
                .map_err(|_| bad("authorization endpoint"))?,
        )
        .set_token_uri(
            TokenUrl::new(oauth.token_endpoint.clone()).map_err(|_| bad("token endpoint"))?,
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_owned()).map_err(|_| bad("redirect URI"))?,
        ))
}

/// Builds the bank authorization URL with PKCE S256 and a fresh `state`; `extra` are the
/// further parameters the bank's standard needs (e.g. OBIE's `claims`, FDX's
/// `authorization_details`). The manifest's `extra_scopes` (e.g. `offline_access`) and
/// `authorization_params` (e.g. RFC 8707 `resource`) come after.
pub fn authorization_redirect(
    bank: &Bank,
    redirect_uri: &str,
    scopes: &[String],
    extra: &[(String, String)],
) -> Result<AuthorizationRedirect, AdapterError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = client(bank, redirect_uri)?;
    let oauth = &bank.manifest.oauth;
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.iter().cloned().map(Scope::new))
        .add_scopes(oauth.extra_scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge);
    let configured = oauth.authorization_params.iter();
    for (name, value) in extra
        .iter()
        .map(|(name, value)| (name, value))
        .chain(configured)
    {
        request = request.add_extra_param(name.as_str(), value.as_str());
    }
    let (url, state) = request.url();
    Ok(AuthorizationRedirect {
        url,
        state: state.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

/// [`authorization_redirect`], pushed to the bank first when its manifest names a PAR
/// endpoint: the user then goes to the bank with `client_id` and `request_uri` only.
pub async fn start_authorization(
    bank: &Bank,
    redirect_uri: &str,
    scopes: &[String],
    extra: &[(String, String)],
) -> Result<AuthorizationRedirect, AdapterError> {
    let mut redirect = authorization_redirect(bank, redirect_uri, scopes, extra)?;
    if bank
        .manifest
        .oauth
        .pushed_authorization_request_endpoint
        .is_some()
    {
        redirect.url = par::push(bank, &redirect.url).await?;
    }
    Ok(redirect)
}

/// Exchanges the bank's authorization code for tokens.
pub async fn exchange_code(
    bank: &Bank,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: String,
    bank_consent_id: Option<String>,
) -> Result<BankGrant, AdapterError> {
    exchange_code_naming(bank, redirect_uri, code, pkce_verifier, bank_consent_id)
        .await
        .map(|(grant, _)| grant)
}

/// [`exchange_code`], with the person the bank's ID token names (`None` when the answer has
/// no ID token: the bank is no OpenID provider, or `openid` was not asked for). An ID token
/// that fails its checks ([`id_token::person`]) fails the exchange.
pub async fn exchange_code_naming(
    bank: &Bank,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: String,
    bank_consent_id: Option<String>,
) -> Result<(BankGrant, Option<BankPerson>), AdapterError> {
    let client = client(bank, redirect_uri)?;
    let request = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier));
    let request = with_assertion(bank, request, |request, name, value| {
        request.add_extra_param(name, value)
    })?;
    let response = request
        .request_async(&dpop::HttpClient::of(bank))
        .await
        .map_err(token_error)?;
    let person = response
        .extra_fields()
        .id_token
        .as_deref()
        .map(|token| id_token::person(bank, token, Utc::now()))
        .transpose()?;
    Ok((grant_of(bank, &response, None, bank_consent_id)?, person))
}

/// Refreshes the bank's access token; keeps the old refresh token when the bank does not
/// rotate it. A bank that answers `invalid_grant` no longer honours the grant (the user
/// revoked it at the bank, or the bank ended it): [`AdapterError::ConsentEnded`].
pub async fn refresh(bank: &Bank, grant: &BankGrant) -> Result<BankGrant, AdapterError> {
    let refresh_token = grant
        .refresh_token
        .clone()
        .ok_or_else(|| AdapterError::Refused("the bank gave no refresh token".into()))?;
    let oauth = &bank.manifest.oauth;
    let client = base_client(bank).set_token_uri(
        TokenUrl::new(oauth.token_endpoint.clone())
            .map_err(|_| AdapterError::Refused("bank manifest has a bad token endpoint".into()))?,
    );
    let presented = RefreshToken::new(refresh_token.clone());
    let request = client.exchange_refresh_token(&presented);
    let request = with_assertion(bank, request, |request, name, value| {
        request.add_extra_param(name, value)
    })?;
    let response = request
        .request_async(&dpop::HttpClient::of(bank))
        .await
        .map_err(refresh_error)?;
    grant_of(
        bank,
        &response,
        Some(refresh_token),
        grant.bank_consent_id.clone(),
    )
}

/// The grant a token answer makes (bound to bankgate's DPoP key where the bank wants DPoP),
/// keeping `previous_refresh` when the answer carries no refresh token.
fn grant_of(
    bank: &Bank,
    response: &BankTokenResponse,
    previous_refresh: Option<String>,
    bank_consent_id: Option<String>,
) -> Result<BankGrant, AdapterError> {
    dpop::check_token_type(bank, response.token_type().as_ref())?;
    let issued_at = Utc::now();
    Ok(BankGrant {
        access_token: response.access_token().secret().clone(),
        refresh_token: response
            .refresh_token()
            .map(|token| token.secret().clone())
            .or(previous_refresh),
        expires_at: response
            .expires_in()
            .and_then(|lifetime| Duration::from_std(lifetime).ok())
            .map(|lifetime| issued_at + lifetime),
        issued_at: Some(issued_at),
        bank_consent_id,
    })
}

/// Revokes the grant's refresh token (which revokes its access tokens at RFC 7009 banks) and
/// access token at the bank's revocation endpoint. Errors name the failure, never a token.
///
/// The `oauth2` crate makes the call when the endpoint is https. It refuses any other scheme,
/// so for a bank on loopback http (the bundled sandboxes) the same RFC 7009 request (HTTP Basic
/// or `private_key_jwt` client authentication, `token` and `token_type_hint`) is sent
/// directly.
pub async fn revoke(bank: &Bank, grant: &BankGrant) -> Result<(), AdapterError> {
    let oauth = &bank.manifest.oauth;
    let bad = |what: &str| AdapterError::Refused(format!("bank manifest has a bad {what}"));
    let endpoint = oauth
        .revocation_endpoint
        .clone()
        .ok_or_else(|| AdapterError::Refused("the bank offers no revocation".into()))?;
    let parsed = url::Url::parse(&endpoint).map_err(|_| bad("revocation endpoint"))?;
    // The refresh token first: revoking it also ends the access tokens issued from it.
    let mut tokens: Vec<(&str, &str)> = Vec::new();
    if let Some(refresh_token) = &grant.refresh_token {
        tokens.push((refresh_token, "refresh_token"));
    }
    tokens.push((&grant.access_token, "access_token"));
    if parsed.scheme() != "https" {
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if !loopback {
            return Err(bad("revocation endpoint (https required)"));
        }
        for (value, hint) in &tokens {
            let mut form = vec![
                ("token".to_owned(), (*value).to_owned()),
                ("token_type_hint".to_owned(), (*hint).to_owned()),
            ];
            let mut request = bank.http.post(parsed.as_str());
            if let Some(basic) = auth::authenticate(bank, &mut form)? {
                request = request.header(reqwest::header::AUTHORIZATION, basic);
            }
            let response = bank
                .execute(request.form(&form).build()?, parsed.path())
                .await?;
            if !response.status().is_success() {
                return Err(AdapterError::Status {
                    status: response.status().as_u16(),
                });
            }
        }
        return Ok(());
    }
    let client = base_client(bank).set_revocation_url(RevocationUrl::from_url(parsed));
    for (value, hint) in tokens {
        let token = if hint == "refresh_token" {
            StandardRevocableToken::RefreshToken(RefreshToken::new(value.to_owned()))
        } else {
            StandardRevocableToken::AccessToken(AccessToken::new(value.to_owned()))
        };
        let request = client
            .revoke_token(token)
            .map_err(|_| bad("revocation endpoint"))?;
        with_assertion(bank, request, |request, name, value| {
            request.add_extra_param(name, value)
        })?
        .request_async(&bank.http)
        .await
        .map_err(|error| request_error(error, "revocation"))?;
    }
    Ok(())
}

type RequestError<T> = oauth2::RequestTokenError<
    oauth2::HttpClientError<oauth2::reqwest::Error>,
    oauth2::StandardErrorResponse<T>,
>;

/// Maps a token request failure without its body: a body that failed to parse may hold tokens.
fn token_error(error: RequestError<oauth2::basic::BasicErrorResponseType>) -> AdapterError {
    request_error(error, "token endpoint")
}

/// Maps a refresh failure: `invalid_grant` (RFC 6749 §5.2: the refresh token is invalid,
/// expired or revoked) means the bank ended the grant; anything else as [`token_error`].
fn refresh_error(error: RequestError<oauth2::basic::BasicErrorResponseType>) -> AdapterError {
    match &error {
        oauth2::RequestTokenError::ServerResponse(response)
            if *response.error() == oauth2::basic::BasicErrorResponseType::InvalidGrant =>
        {
            AdapterError::ConsentEnded(super::ConsentEnd::Revoked)
        }
        _ => token_error(error),
    }
}

/// Maps the failure of a request to the bank's `endpoint` (`token endpoint`, `revocation`):
/// the error code the bank answered, never a body.
fn request_error<T: oauth2::ErrorResponseType + std::fmt::Display>(
    error: RequestError<T>,
    endpoint: &str,
) -> AdapterError {
    match error {
        oauth2::RequestTokenError::ServerResponse(response) => {
            AdapterError::Refused(format!("{endpoint} answered {}", response.error()))
        }
        oauth2::RequestTokenError::Request(error) => AdapterError::Transport(error.to_string()),
        oauth2::RequestTokenError::Parse(_, _) => {
            let what = endpoint.trim_end_matches(" endpoint");
            AdapterError::Decode(format!("{what} response not understood"))
        }
        oauth2::RequestTokenError::Other(message) => AdapterError::Refused(message),
    }
}
