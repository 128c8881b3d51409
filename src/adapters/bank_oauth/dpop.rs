//! DPoP (RFC 9449) towards a bank whose manifest sets `dpop = true`: bankgate signs a proof with
//! its DPoP key for every call to the bank's PAR and token endpoints ([`HttpClient`], also the
//! custom HTTP client the `oauth2` crate sends token requests through) and for every data
//! call ([`authorize`]). The bank binds its tokens to that key, so a bank token copied out of
//! bankgate is worthless without it.
//!
//! The authorization server's nonce (RFC 9449 §8) is remembered per bank; an answer asking for
//! one (`use_dpop_nonce`) is retried once with the nonce it carries. The resource server's
//! nonce (§9) is remembered apart: data calls carry the latest one, and a data call refused
//! for want of a (new) one is proved again and sent once more by the outbound stack
//! (`outbound::Reprove`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderValue;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use oauth2::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};

use crate::adapters::{AdapterError, Bank};
use crate::jose::{ClientKey, DPOP_HEADER, DPOP_NONCE_HEADER};

/// The `token_type` of DPoP-bound tokens (RFC 9449 §5).
pub const DPOP_TOKEN_TYPE: &str = "DPoP";

type CallError = HttpClientError<reqwest::Error>;

/// The HTTP client bankgate's calls to one bank's authorization server go through (also the
/// `oauth2` crate's, for token requests). It owns what it needs, so that its futures borrow
/// nothing but itself.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    /// The bank's id, for the calls' spans.
    bank: Arc<str>,
    key: Option<Arc<ClientKey>>,
    nonce: Arc<Mutex<Option<String>>>,
    /// Re-signs a client assertion in the body for a retry (its `jti` was spent).
    assertion: Option<Assertion>,
}

/// What a fresh client assertion needs.
#[derive(Clone)]
struct Assertion {
    key: Arc<ClientKey>,
    client_id: String,
    audience: String,
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, CallError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

impl HttpClient {
    /// The client for `bank`: its HTTP client (no redirects), its DPoP key and nonce.
    pub fn of(bank: &Bank) -> HttpClient {
        HttpClient {
            http: bank.http.clone(),
            bank: Arc::from(bank.id()),
            key: bank.keys.dpop.clone(),
            nonce: bank.keys.nonce_slot(),
            assertion: bank.keys.assertion.as_ref().map(|key| Assertion {
                key: key.clone(),
                client_id: bank.client_id.clone(),
                audience: super::auth::assertion_audience(bank).to_owned(),
            }),
        }
    }

    /// The form body with a freshly signed `client_assertion` (a retried request must not
    /// replay the first one's, whose `jti` the bank may have spent).
    fn with_fresh_assertion(&self, body: &[u8]) -> Result<Vec<u8>, CallError> {
        let Some(assertion) = &self.assertion else {
            return Ok(body.to_vec());
        };
        let mut form: Vec<(String, String)> =
            url::form_urlencoded::parse(body).into_owned().collect();
        for (name, value) in &mut form {
            if name == "client_assertion" {
                *value = assertion
                    .key
                    .client_assertion(&assertion.client_id, &assertion.audience)
                    .map_err(|_| {
                        CallError::Other("the client assertion could not be signed".into())
                    })?;
            }
        }
        Ok(url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish()
            .into_bytes())
    }

    fn nonce(&self) -> Option<String> {
        self.nonce
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends a request: as is, or — with a DPoP key — with a fresh proof for its method and
    /// URL, retried once when the bank asks for a (new) nonce. Never follows redirects. Each
    /// call is a span (`bank_call`, its route the endpoint's path) whose trace context the
    /// bank receives.
    pub async fn send(&self, mut request: HttpRequest) -> Result<HttpResponse, CallError> {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "bank_call",
            bank = &*self.bank,
            method = %request.method(),
            route = request.uri().path(),
        );
        crate::telemetry::traces::inject(&span, request.headers_mut());
        self.send_in_span(request).instrument(span).await
    }

    async fn send_in_span(&self, request: HttpRequest) -> Result<HttpResponse, CallError> {
        let Some(key) = &self.key else {
            return self.http.call(request).await;
        };
        let (parts, mut body) = request.into_parts();
        let mut retried = false;
        loop {
            let nonce = self.nonce();
            let proof = key
                .dpop_proof(
                    parts.method.as_str(),
                    &parts.uri.to_string(),
                    None,
                    nonce.as_deref(),
                )
                .map_err(|_| CallError::Other("the DPoP proof could not be signed".into()))?;
            let mut request = http::Request::builder()
                .method(parts.method.clone())
                .uri(parts.uri.clone())
                .body(body.clone())?;
            *request.headers_mut() = parts.headers.clone();
            request.headers_mut().insert(
                DPOP_HEADER,
                HeaderValue::from_str(&proof)
                    .map_err(|_| CallError::Other("the DPoP proof is not a header value".into()))?,
            );
            let response = self.http.call(request).await?;
            let fresh = response
                .headers()
                .get(DPOP_NONCE_HEADER)
                .and_then(|value| value.to_str().ok())
                .filter(|fresh| nonce.as_deref() != Some(*fresh))
                .map(str::to_owned);
            if let Some(fresh) = &fresh {
                *self.nonce.lock().unwrap_or_else(PoisonError::into_inner) = Some(fresh.clone());
            }
            if retried || fresh.is_none() || !asks_for_nonce(&response) {
                return Ok(response);
            }
            retried = true;
            body = self.with_fresh_assertion(&body)?;
        }
    }
}

/// Whether an answer asks for a DPoP nonce: `use_dpop_nonce` as an authorization server says
/// it (400, JSON body) or as a resource server does (401, `WWW-Authenticate`).
fn asks_for_nonce(response: &HttpResponse) -> bool {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    match response.status().as_u16() {
        400 => serde_json::from_slice::<ErrorBody>(response.body())
            .is_ok_and(|body| body.error == "use_dpop_nonce"),
        401 => response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|challenge| challenge.contains("use_dpop_nonce")),
        _ => false,
    }
}

/// Checks the `token_type` of the bank's token answer: with a DPoP key the bank must have
/// bound its token (`DPoP`); otherwise bankgate would send proofs with a bearer token.
pub fn check_token_type(bank: &Bank, token_type: &str) -> Result<(), AdapterError> {
    if bank.keys.dpop.is_some() && !token_type.eq_ignore_ascii_case(DPOP_TOKEN_TYPE) {
        return Err(AdapterError::Refused(
            "the bank did not bind its token to bankgate's DPoP key".into(),
        ));
    }
    Ok(())
}

/// Adds the bank access token to a data call: `Authorization: DPoP …` with a proof for
/// `method` on `url` (bound to the token by `ath`) when bankgate has a DPoP key for the bank,
/// `Authorization: Bearer …` otherwise. The header is marked sensitive.
pub fn authorize(
    bank: &Bank,
    request: reqwest::RequestBuilder,
    method: &str,
    url: &url::Url,
    access_token: &str,
) -> Result<reqwest::RequestBuilder, AdapterError> {
    let Some(key) = &bank.keys.dpop else {
        return Ok(request.bearer_auth(access_token));
    };
    let unusable = || AdapterError::Refused("the bank token is not a header value".into());
    let nonce = bank.keys.resource_nonce();
    let proof = key
        .dpop_proof(method, url.as_str(), Some(access_token), nonce.as_deref())
        .map_err(|_| AdapterError::Refused("the DPoP proof could not be signed".into()))?;
    let mut authorization = HeaderValue::from_str(&format!("{DPOP_TOKEN_TYPE} {access_token}"))
        .map_err(|_| unusable())?;
    authorization.set_sensitive(true);
    let proof = HeaderValue::from_str(&proof).map_err(|_| unusable())?;
    Ok(request
        .header(AUTHORIZATION, authorization)
        .header(DPOP_HEADER, proof))
}
