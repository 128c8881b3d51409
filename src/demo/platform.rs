//! A platform's side of the consent flow, as a social platform would write it:
//! [`PlatformClient`] pushes a request, walks the user's browser through the consent screen
//! and the bank, exchanges the code and reads data. The demo and the end-to-end tests both
//! drive the gateway with it.

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;

use crate::consent::{ACCOUNT_INFORMATION, AuthorizationDetail};
use crate::jose::ClientKey;
use crate::jose::{CLIENT_ASSERTION_TYPE, basic_header};
use crate::model::Scope;
use crate::payments::PaymentRequest;

/// A registered platform talking to a gateway over HTTP. Never follows redirects itself: each
/// hop of the flow is visible.
///
/// It authenticates with `client_secret_basic`, or with `private_key_jwt` after
/// [`PlatformClient::with_private_key_jwt`]; after [`PlatformClient::with_dpop`] it sends a
/// DPoP proof with every token and resource request, keeps the server's latest `DPoP-Nonce`,
/// and retries once on `use_dpop_nonce`, as RFC 9449 clients do.
pub struct PlatformClient {
    pub http: reqwest::Client,
    pub gateway: String,
    pub client_id: String,
    client_secret: String,
    pub redirect_uri: String,
    assertion_key: Option<std::sync::Arc<ClientKey>>,
    dpop_key: Option<std::sync::Arc<ClientKey>>,
    dpop_nonce: std::sync::Mutex<Option<String>>,
    /// The gateway's public URL (issuer, assertion audience, DPoP `htu`); `gateway` is where
    /// requests go, which differs behind a load balancer.
    public_url: String,
}

/// An HTTP answer: status, headers and body, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    fn asks_for_nonce(&self) -> bool {
        let challenge = self
            .headers
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        (self.status == 400 && self.json()["error"] == "use_dpop_nonce")
            || (self.status == 401 && challenge.contains("use_dpop_nonce"))
    }
}

/// A pushed authorization request and the PKCE verifier that goes with it.
pub struct Pushed {
    pub request_uri: String,
    pub code_verifier: String,
    pub state: String,
}

/// The token endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub scope: String,
    pub consent_id: String,
    pub authorization_details: Vec<AuthorizationDetail>,
    /// Issued with the code exchange, not with refreshes (refresh tokens are not rotated).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Every hop of one consent flow, for printing and for tests.
#[derive(Debug, Default)]
pub struct FlowTrace {
    pub consent_screen: String,
    pub bank_authorization_url: String,
    pub callback_url: String,
    pub platform_redirect: String,
}

impl PlatformClient {
    /// A platform registered as `client_id` with `client_secret` at `gateway`.
    pub fn new(
        gateway: &str,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
    ) -> anyhow::Result<Self> {
        Ok(PlatformClient {
            http: crate::crypto::http_client_builder().build()?,
            gateway: gateway.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            assertion_key: None,
            dpop_key: None,
            dpop_nonce: std::sync::Mutex::new(None),
            public_url: gateway.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends requests to this client's address while naming `public_url` as the gateway (its
    /// issuer): one instance behind a load balancer.
    pub fn behind(mut self, public_url: &str) -> Self {
        self.public_url = public_url.trim_end_matches('/').to_owned();
        self
    }

    /// The same registered client (keys, secret, public URL) sending its requests to another
    /// address: a second gateway instance.
    pub fn via(&self, address: &str) -> anyhow::Result<PlatformClient> {
        Ok(PlatformClient {
            http: self.http.clone(),
            gateway: address.trim_end_matches('/').to_owned(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            redirect_uri: self.redirect_uri.clone(),
            assertion_key: self.assertion_key.clone(),
            dpop_key: self.dpop_key.clone(),
            dpop_nonce: std::sync::Mutex::new(self.dpop_nonce()),
            public_url: self.public_url.clone(),
        })
    }

    /// The same client without its DPoP key (to show what a client without proofs gets).
    pub fn without_dpop(&self) -> anyhow::Result<PlatformClient> {
        let mut client = self.via(&self.gateway)?;
        client.dpop_key = None;
        Ok(client)
    }

    /// Authenticates with `private_key_jwt` signed by `key` instead of the secret.
    pub fn with_private_key_jwt(mut self, key: ClientKey) -> Self {
        self.assertion_key = Some(std::sync::Arc::new(key));
        self
    }

    /// Sends DPoP proofs signed by `key` (tokens get bound to it).
    pub fn with_dpop(mut self, key: ClientKey) -> Self {
        self.dpop_key = Some(std::sync::Arc::new(key));
        self
    }

    /// The DPoP key, if any.
    pub fn dpop_key(&self) -> Option<&ClientKey> {
        self.dpop_key.as_deref()
    }

    /// The latest server nonce seen.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.dpop_nonce
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn basic(&self) -> String {
        basic_header(&self.client_id, &self.client_secret)
    }

    /// Adds client authentication to a token/PAR/revocation request.
    fn authenticated(
        &self,
        request: reqwest::RequestBuilder,
        form: &mut Vec<(String, String)>,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        match &self.assertion_key {
            Some(key) => {
                let assertion = key.client_assertion(&self.client_id, &self.public_url)?;
                form.push(("client_id".into(), self.client_id.clone()));
                form.push(("client_assertion_type".into(), CLIENT_ASSERTION_TYPE.into()));
                form.push(("client_assertion".into(), assertion));
                Ok(request)
            }
            None => Ok(request.header("authorization", self.basic())),
        }
    }

    /// Sends one request: `form` (authenticated as this client) or `token` (DPoP or bearer),
    /// with a DPoP proof when the client has a key; retries once with a fresh nonce.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        form: Option<&[(&str, &str)]>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.gateway);
        let htu = format!("{}{path}", self.public_url);
        let mut answer = None;
        for _ in 0..2 {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(token) = token {
                request = match self.dpop_key {
                    Some(_) => request.header("authorization", format!("DPoP {token}")),
                    None => request.bearer_auth(token),
                };
            }
            if let Some(key) = &self.dpop_key {
                let proof =
                    key.dpop_proof(method.as_str(), &htu, token, self.dpop_nonce().as_deref())?;
                request = request.header("dpop", proof);
            }
            if let Some(form) = form {
                let mut fields: Vec<(String, String)> = form
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect();
                request = self.authenticated(request, &mut fields)?;
                request = request.form(&fields);
            }
            let response = request.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            if let Some(nonce) = headers
                .get("dpop-nonce")
                .and_then(|value| value.to_str().ok())
            {
                *self
                    .dpop_nonce
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(nonce.to_owned());
            }
            let this = Answer {
                status,
                headers,
                body,
            };
            let retry = this.asks_for_nonce() && self.dpop_key.is_some();
            answer = Some(this);
            if !retry {
                break;
            }
        }
        answer.ok_or_else(|| anyhow!("no answer"))
    }

    /// A form POST authenticated as this client.
    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Answer> {
        self.send(reqwest::Method::POST, path, None, Some(form))
            .await
    }

    /// `POST /oauth/par` with PKCE S256 and one `account_information` detail.
    pub async fn push(&self, detail: &AuthorizationDetail) -> anyhow::Result<Pushed> {
        self.push_with(detail, &[]).await
    }

    /// `POST /oauth/par` with PKCE S256 and one `payment_initiation` detail.
    pub async fn push_payment(&self, request: &PaymentRequest) -> anyhow::Result<Pushed> {
        self.push_with(request, &[]).await
    }

    /// `POST /oauth/token` with the code of a payment consent: the token and the granted
    /// `authorization_details` (the one payment) as JSON.
    pub async fn exchange_payment(
        &self,
        code: &str,
        pushed: &Pushed,
    ) -> anyhow::Result<serde_json::Value> {
        let answer = self
            .post_form(
                "/oauth/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", self.redirect_uri.as_str()),
                    ("code_verifier", pushed.code_verifier.as_str()),
                ],
            )
            .await?;
        if !(200..300).contains(&answer.status) {
            bail!(
                "token request refused ({}): {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        Ok(answer.json())
    }

    /// `POST path` with an access token, a JSON body and further headers (e.g.
    /// `Idempotency-Key`), with a DPoP proof when the client has a key.
    pub async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        self.send_json(reqwest::Method::POST, token, path, body, headers)
            .await
    }

    /// `PUT path` with an access token and a JSON body, as [`PlatformClient::post_json`].
    pub async fn put_json(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<Answer> {
        self.send_json(reqwest::Method::PUT, token, path, body, &[])
            .await
    }

    /// `method path` with an access token, a JSON body and further headers.
    async fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.gateway);
        let htu = format!("{}{path}", self.public_url);
        let mut answer = None;
        for _ in 0..2 {
            let mut request = self.http.request(method.clone(), &url).json(body);
            request = match &self.dpop_key {
                Some(key) => request
                    .header("authorization", format!("DPoP {token}"))
                    .header(
                        "dpop",
                        key.dpop_proof(
                            method.as_str(),
                            &htu,
                            Some(token),
                            self.dpop_nonce().as_deref(),
                        )?,
                    ),
                None => request.bearer_auth(token),
            };
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await?;
            let this = Answer {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.bytes().await?,
            };
            if let Some(nonce) = this
                .headers
                .get("dpop-nonce")
                .and_then(|value| value.to_str().ok())
            {
                *self
                    .dpop_nonce
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(nonce.to_owned());
            }
            let retry = this.asks_for_nonce() && self.dpop_key.is_some();
            answer = Some(this);
            if !retry {
                break;
            }
        }
        answer.ok_or_else(|| anyhow!("no answer"))
    }

    /// [`PlatformClient::push`] with further parameters (e.g. `dpop_jkt`).
    pub async fn push_with(
        &self,
        detail: &impl serde::Serialize,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Pushed> {
        let code_verifier = crate::crypto::random_token(32)?;
        let state = crate::crypto::random_token(16)?;
        let details = serde_json::to_string(&[detail])?;
        let challenge = crate::crypto::pkce_s256(&code_verifier);
        let mut form = vec![
            ("response_type", "code"),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("authorization_details", details.as_str()),
        ];
        if self.assertion_key.is_none() {
            form.push(("client_id", self.client_id.as_str()));
        }
        form.extend_from_slice(extra);
        let answer = self.post_form("/oauth/par", &form).await?;
        let status = answer.status;
        let body = answer.json();
        if status != 201 {
            bail!("PAR refused ({status}): {body}");
        }
        let request_uri = body["request_uri"]
            .as_str()
            .ok_or_else(|| anyhow!("PAR answer without request_uri"))?
            .to_owned();
        Ok(Pushed {
            request_uri,
            code_verifier,
            state,
        })
    }

    /// Plays the user: opens the consent screen, approves, goes through the bank (whose
    /// sandbox approves at once) and comes back with the authorization code.
    pub async fn approve(&self, pushed: &Pushed, trace: &mut FlowTrace) -> anyhow::Result<String> {
        let mut authorize = url::Url::parse(&format!("{}/oauth/authorize", self.gateway))?;
        authorize
            .query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("request_uri", &pushed.request_uri);
        let screen = self.http.get(authorize).send().await?;
        if !screen.status().is_success() {
            bail!("consent screen answered {}", screen.status());
        }
        let html = screen.text().await?;
        trace.consent_screen = html.clone();
        let consent_id = hidden_input(&html, "consent_id")?;
        let screen_token = hidden_input(&html, "screen_token")?;
        let mut decision = vec![
            ("consent_id", consent_id),
            ("screen_token", screen_token),
            ("decision", "approve".to_owned()),
        ];
        // An extension's screen names the pending extension too.
        if let Ok(extension) = hidden_input(&html, "extension") {
            decision.push(("extension", extension));
        }

        let to_bank = self
            .http
            .post(format!("{}/oauth/authorize", self.gateway))
            .form(&decision)
            .send()
            .await?;
        trace.bank_authorization_url = location(&to_bank)?;
        let from_bank = self.http.get(&trace.bank_authorization_url).send().await?;
        trace.callback_url = location(&from_bank)?;
        let back = self.http.get(&trace.callback_url).send().await?;
        trace.platform_redirect = location(&back)?;
        let redirect = url::Url::parse(&trace.platform_redirect)?;
        let param = |name: &str| {
            redirect
                .query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        if let Some(error) = param("error") {
            bail!("authorization failed: {error}");
        }
        if param("state").as_deref() != Some(pushed.state.as_str()) {
            bail!("state mismatch in the authorization response");
        }
        if param("iss").as_deref() != Some(self.public_url.as_str()) {
            bail!("iss mismatch in the authorization response");
        }
        param("code").ok_or_else(|| anyhow!("no code in {}", trace.platform_redirect))
    }

    /// `POST /oauth/token` with the code and the PKCE verifier.
    pub async fn exchange(&self, code: &str, pushed: &Pushed) -> anyhow::Result<TokenResponse> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", pushed.code_verifier.as_str()),
        ])
        .await
    }

    /// `POST /oauth/token` with `grant_type=refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> anyhow::Result<TokenResponse> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> anyhow::Result<TokenResponse> {
        let answer = self.post_form("/oauth/token", form).await?;
        if !(200..300).contains(&answer.status) {
            bail!(
                "token request refused ({}): {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
        }
        Ok(serde_json::from_slice(&answer.body)?)
    }

    /// `POST /oauth/revoke` (RFC 7009); returns the status.
    pub async fn revoke_token(&self, token: &str) -> anyhow::Result<u16> {
        Ok(self
            .post_form("/oauth/revoke", &[("token", token)])
            .await?
            .status)
    }

    /// `DELETE path` with an access token; returns status and JSON body.
    pub async fn delete(
        &self,
        token: &str,
        path: &str,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let answer = self
            .send(reqwest::Method::DELETE, path, Some(token), None)
            .await?;
        Ok((answer.status, answer.json()))
    }

    /// The whole flow: push, approve, exchange.
    pub async fn connect(
        &self,
        detail: &AuthorizationDetail,
    ) -> anyhow::Result<(TokenResponse, FlowTrace)> {
        let mut trace = FlowTrace::default();
        let pushed = self.push(detail).await?;
        let code = self.approve(&pushed, &mut trace).await?;
        Ok((self.exchange(&code, &pushed).await?, trace))
    }

    /// `GET path` with an access token (DPoP with a proof when the client has a DPoP key,
    /// bearer otherwise); returns status and JSON body.
    pub async fn get(&self, token: &str, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let answer = self
            .send(reqwest::Method::GET, path, Some(token), None)
            .await?;
        Ok((answer.status, answer.json()))
    }

    /// A client-credentials token: `audit:read` for compliance clients, `consents:manage` for
    /// platforms.
    pub async fn client_credentials(&self) -> anyhow::Result<String> {
        let answer = self
            .post_form("/oauth/token", &[("grant_type", "client_credentials")])
            .await?;
        let status = answer.status;
        let body = answer.json();
        if !(200..300).contains(&status) {
            bail!("client credentials refused ({status}): {body}");
        }
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no access_token"))
    }
}

/// An `account_information` request for `purpose` at `bank`.
pub fn account_information(
    bank: &str,
    purpose: &str,
    scopes: &[Scope],
    user_ref: &str,
) -> AuthorizationDetail {
    AuthorizationDetail {
        kind: ACCOUNT_INFORMATION.to_owned(),
        bank: bank.to_owned(),
        purpose: purpose.to_owned(),
        scopes: scopes.to_vec(),
        history_days: 0,
        expires_in_days: 90,
        user_ref: user_ref.to_owned(),
        consent_id: None,
    }
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    if !response.status().is_redirection() {
        bail!(
            "expected a redirect, got {} from {}",
            response.status(),
            response.url()
        );
    }
    response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .with_context(|| format!("redirect without Location from {}", response.url()))
}

fn hidden_input(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .with_context(|| format!("no {name} on the consent screen"))?
        + marker.len();
    let end = html[start..]
        .find('"')
        .with_context(|| format!("unterminated {name}"))?;
    Ok(html[start..start + end].to_owned())
}
