//! Pushed authorization requests (RFC 9126) towards a bank whose manifest names a
//! `pushed_authorization_request_endpoint`. The authorization request bankgate built with the
//! `oauth2` crate (PKCE S256, `state`, scopes, the standard's extra parameters) is POSTed there
//! with client authentication — and a DPoP proof when the bank wants DPoP, which binds the
//! authorization code to bankgate's key (RFC 9449 §10) — and the user's browser is sent with
//! `client_id` and the returned `request_uri` only.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use super::{auth, dpop};
use crate::adapters::{AdapterError, Bank};

/// The bank's answer to a pushed request.
#[derive(Deserialize)]
struct Pushed {
    request_uri: String,
    expires_in: u64,
}

/// An RFC 6749 error answer (only the code is kept: descriptions are the bank's words).
#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

/// Pushes the request that `authorization_url` carries in its query to the bank and returns
/// where to send the user instead: the authorization endpoint with `client_id` and
/// `request_uri`.
pub async fn push(bank: &Bank, authorization_url: &url::Url) -> Result<url::Url, AdapterError> {
    let oauth = &bank.manifest.oauth;
    let bad = |what: &str| AdapterError::Refused(format!("bank manifest has a bad {what}"));
    let endpoint = oauth
        .pushed_authorization_request_endpoint
        .as_deref()
        .ok_or_else(|| bad("pushed_authorization_request_endpoint"))?;
    let mut form: Vec<(String, String)> = authorization_url.query_pairs().into_owned().collect();
    let basic = auth::authenticate(bank, &mut form)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(endpoint)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json");
    if let Some(basic) = basic {
        request = request.header(AUTHORIZATION, basic);
    }
    let request = request
        .body(body.into_bytes())
        .map_err(|_| bad("pushed_authorization_request_endpoint"))?;
    let response = dpop::HttpClient::of(bank)
        .send(request)
        .await
        .map_err(|error| {
            AdapterError::Transport(format!("pushed authorization request: {error}"))
        })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let code = serde_json::from_slice::<ErrorAnswer>(response.body())
            .map(|answer| answer.error)
            .unwrap_or_default();
        tracing::warn!(bank = %bank.id(), status, error = %code,
            "the bank refused the pushed authorization request");
        return Err(AdapterError::Status { status });
    }
    let pushed: Pushed = serde_json::from_slice(response.body())
        .map_err(|_| AdapterError::Decode("pushed authorization answer not understood".into()))?;
    if pushed.request_uri.is_empty() || pushed.expires_in == 0 {
        return Err(AdapterError::Decode(
            "pushed authorization answer without a usable request_uri".into(),
        ));
    }
    let mut url = url::Url::parse(&oauth.authorization_endpoint)
        .map_err(|_| bad("authorization endpoint"))?;
    url.query_pairs_mut()
        .append_pair("client_id", &bank.client_id)
        .append_pair("request_uri", &pushed.request_uri);
    Ok(url)
}
