//! The Berlin Group sandbox bank over HTTP, in process: consents, the OAuth dance, and the
//! account information a consent covers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::consents::ConsentStatus;
use super::{BerlinGroup, CONSENT_ID, PAGE_SIZE, PSU_ID, X_REQUEST_ID};
use crate::customers;
use crate::oauth::{CODE_LIFETIME, pkce_s256};
use crate::plumbing::today;
use crate::scaffold::{Bank, app};
use crate::{Approval, SandboxConfig};

const CLIENT_ID: &str = "bankgate";
const CLIENT_SECRET: &str = "s3cret-s3cret";
const ORIGIN: &str = "http://127.0.0.1:9999";
const REDIRECT_URI: &str = "http://127.0.0.1:8080/oauth/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn sandbox(approval: Approval) -> (Arc<Bank<BerlinGroup>>, Router) {
    let config = SandboxConfig {
        profile: "berlin-group".into(),
        addr: ([127, 0, 0, 1], 0).into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        approval,
        fapi: Default::default(),
    };
    let shared = crate::scaffold::Shared {
        ledger: Arc::default(),
        counters: Arc::default(),
    };
    let bank = Arc::new(Bank::new(&config, ORIGIN, &shared));
    (bank.clone(), app(bank))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap()
    }

    fn tpp_code(&self) -> String {
        self.json()["tppMessages"][0]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn location(&self) -> url::Url {
        let location = self.headers[header::LOCATION].to_str().unwrap();
        url::Url::parse(location).unwrap()
    }

    fn location_parameter(&self, name: &str) -> Option<String> {
        self.location()
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

async fn call(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn post_consent(app: &Router, body: Value, psu: Option<&str>) -> Answer {
    let mut request = Request::post("/v1/consents")
        .header(X_REQUEST_ID, request_id())
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(psu) = psu {
        request = request.header(PSU_ID, psu);
    }
    call(app, request.body(Body::from(body.to_string())).unwrap()).await
}

fn consent_body(access: Value) -> Value {
    json!({
        "access": access,
        "recurringIndicator": true,
        "validUntil": "9999-12-31",
        "frequencyPerDay": 4,
        "combinedServiceIndicator": false,
    })
}

fn all_psd2() -> Value {
    consent_body(json!({"allPsd2": "allAccounts"}))
}

fn authorize_uri(consent_id: &str, challenge: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("state", "st-1")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("scope", &format!("AIS:{consent_id}"))
        .finish();
    format!("/oauth/authorize?{query}")
}

async fn get(app: &Router, uri: &str) -> Answer {
    call(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post_form(app: &Router, uri: &str, form: &[(&str, &str)], basic: bool) -> Answer {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    body.extend_pairs(form);
    let mut request =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if basic {
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        request = request.header(header::AUTHORIZATION, format!("Basic {credentials}"));
    }
    call(app, request.body(Body::from(body.finish())).unwrap()).await
}

async fn exchange(app: &Router, code: &str, verifier: &str) -> Answer {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ];
    post_form(app, "/oauth/token", &form, true).await
}

/// Creates a consent, approves it automatically and returns (consent id, access token).
async fn authorised(app: &Router, body: Value, psu: Option<&str>) -> (String, String) {
    let created = post_consent(app, body, psu).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let consent_id = created.json()["consentId"].as_str().unwrap().to_owned();
    let redirect = get(app, &authorize_uri(&consent_id, &pkce_s256(VERIFIER))).await;
    assert_eq!(redirect.status, StatusCode::FOUND, "{}", redirect.text);
    let code = redirect.location_parameter("code").unwrap();
    let token = exchange(app, &code, VERIFIER).await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    let access_token = token.json()["access_token"].as_str().unwrap().to_owned();
    (consent_id, access_token)
}

async fn data(app: &Router, uri: &str, consent_id: &str, token: &str) -> Answer {
    let request = Request::get(uri)
        .header(X_REQUEST_ID, request_id())
        .header(CONSENT_ID, consent_id)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    call(app, request).await
}

#[tokio::test]
async fn metadata_names_the_origin_as_issuer() {
    let (_, app) = sandbox(Approval::Auto);
    let answer = get(&app, "/.well-known/oauth-authorization-server").await;
    let metadata = answer.json();
    assert_eq!(metadata["issuer"], ORIGIN);
    assert_eq!(metadata["token_endpoint"], format!("{ORIGIN}/oauth/token"));
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
}

#[tokio::test]
async fn consent_creation_answers_received_with_links_and_echoes_request_id() {
    let (_, app) = sandbox(Approval::Auto);
    let request = Request::post("/v1/consents")
        .header(X_REQUEST_ID, "6f1a1f8e-3b5c-4a5e-9f6f-0d8c7a1b2c3d")
        .body(Body::from(all_psd2().to_string()))
        .unwrap();
    let answer = call(&app, request).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        answer.headers[X_REQUEST_ID],
        "6f1a1f8e-3b5c-4a5e-9f6f-0d8c7a1b2c3d"
    );
    let body = answer.json();
    assert_eq!(body["consentStatus"], "received");
    let id = body["consentId"].as_str().unwrap();
    assert_eq!(
        body["_links"]["scaOAuth"]["href"],
        format!("{ORIGIN}/.well-known/oauth-authorization-server")
    );
    assert_eq!(
        body["_links"]["status"]["href"],
        format!("/v1/consents/{id}/status")
    );

    let status = call(
        &app,
        Request::get(format!("/v1/consents/{id}/status"))
            .header(X_REQUEST_ID, request_id())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status.json(), json!({"consentStatus": "received"}));
}

#[track_caller]
fn check_rejected(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.tpp_code(), code, "{}", answer.text);
    assert_eq!(answer.json()["tppMessages"][0]["category"], "ERROR");
}

#[tokio::test]
async fn bad_consent_requests_are_rejected_in_tpp_messages_format() {
    let (_, app) = sandbox(Approval::Auto);
    let no_request_id = call(
        &app,
        Request::post("/v1/consents")
            .body(Body::from(all_psd2().to_string()))
            .unwrap(),
    )
    .await;
    check_rejected(&no_request_id, StatusCode::BAD_REQUEST, "FORMAT_ERROR");

    let cases = [
        (json!("not json"), "FORMAT_ERROR"),
        (consent_body(json!({})), "FORMAT_ERROR"),
        (
            json!({"access": {"allPsd2": "allAccounts"}, "recurringIndicator": "yes",
                   "validUntil": "9999-12-31", "frequencyPerDay": 4}),
            "FORMAT_ERROR",
        ),
        (
            json!({"access": {"allPsd2": "allAccounts"}, "recurringIndicator": true,
                   "validUntil": "2017-11-01", "frequencyPerDay": 4}),
            "FORMAT_ERROR",
        ),
        (
            consent_body(json!({"availableAccounts": "allAccounts"})),
            "FORMAT_ERROR",
        ),
        (
            consent_body(json!({"allPsd2": "allAccounts", "balances": []})),
            "FORMAT_ERROR",
        ),
        (
            consent_body(json!({"balances": [{"currency": "EUR"}]})),
            "FORMAT_ERROR",
        ),
        (
            json!({"access": {"allPsd2": "allAccounts"}, "recurringIndicator": true,
                   "validUntil": "9999-12-31", "frequencyPerDay": 4,
                   "combinedServiceIndicator": true}),
            "SESSIONS_NOT_SUPPORTED",
        ),
    ];
    for (body, code) in cases {
        let answer = post_consent(&app, body.clone(), None).await;
        assert_eq!(answer.tpp_code(), code, "{body}: {}", answer.text);
    }
    let unknown_psu = post_consent(&app, all_psd2(), Some("mallory")).await;
    check_rejected(
        &unknown_psu,
        StatusCode::UNAUTHORIZED,
        "PSU_CREDENTIALS_INVALID",
    );
}

#[tokio::test]
async fn string_flags_of_the_official_examples_are_accepted() {
    let (_, app) = sandbox(Approval::Auto);
    let body = json!({
        "access": {"availableAccounts": "allAccounts"},
        "recurringIndicator": "false",
        "validUntil": "9999-12-31",
        "frequencyPerDay": "1",
    });
    let answer = post_consent(&app, body, None).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let id = answer.json()["consentId"].as_str().unwrap().to_owned();
    let consent = call(
        &app,
        Request::get(format!("/v1/consents/{id}"))
            .header(X_REQUEST_ID, request_id())
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(consent["recurringIndicator"], false);
    assert_eq!(consent["frequencyPerDay"], 1);
    assert_eq!(
        consent["access"],
        json!({"availableAccounts": "allAccounts"})
    );
}

#[tokio::test]
async fn unknown_consents_are_forbidden() {
    let (_, app) = sandbox(Approval::Auto);
    let answer = call(
        &app,
        Request::get("/v1/consents/nope")
            .header(X_REQUEST_ID, request_id())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    check_rejected(&answer, StatusCode::FORBIDDEN, "CONSENT_UNKNOWN");
}

#[tokio::test]
async fn auto_approval_redirects_with_code_state_and_issuer() {
    let (_, app) = sandbox(Approval::Auto);
    let (consent_id, _) = authorised(&app, all_psd2(), Some("bob")).await;
    let status = call(
        &app,
        Request::get(format!("/v1/consents/{consent_id}/status"))
            .header(X_REQUEST_ID, request_id())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status.json()["consentStatus"], "valid");

    let created = post_consent(&app, all_psd2(), None).await;
    let id = created.json()["consentId"].as_str().unwrap().to_owned();
    let redirect = get(&app, &authorize_uri(&id, &pkce_s256(VERIFIER))).await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    assert!(redirect.location().as_str().starts_with(REDIRECT_URI));
    assert_eq!(
        redirect.location_parameter("state").as_deref(),
        Some("st-1")
    );
    assert_eq!(redirect.location_parameter("iss").as_deref(), Some(ORIGIN));
    assert_eq!(redirect.location_parameter("code").unwrap().len(), 43);
}

#[tokio::test]
async fn bad_authorization_requests_never_redirect_to_untrusted_places() {
    let (_, app) = sandbox(Approval::Auto);
    let created = post_consent(&app, all_psd2(), None).await;
    let id = created.json()["consentId"].as_str().unwrap().to_owned();
    let good = authorize_uri(&id, &pkce_s256(VERIFIER));

    let unknown_client = get(&app, &good.replace("client_id=bankgate", "client_id=evil")).await;
    assert_eq!(unknown_client.status, StatusCode::BAD_REQUEST);
    assert!(!unknown_client.headers.contains_key(header::LOCATION));

    let cases = [
        (good.replace("S256", "plain"), "invalid_request"),
        (
            good.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            good.replace(&format!("AIS%3A{id}"), "AIS%3Anope"),
            "invalid_scope",
        ),
        (
            good.replace(&format!("AIS%3A{id}"), "accounts"),
            "invalid_scope",
        ),
    ];
    for (uri, error) in cases {
        let answer = get(&app, &uri).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{uri}");
        assert_eq!(
            answer.location_parameter("error").as_deref(),
            Some(error),
            "{uri}"
        );
        assert_eq!(answer.location_parameter("iss").as_deref(), Some(ORIGIN));
    }
}

fn ticket_of(page: &str) -> String {
    let start = page.find("name=\"ticket\" value=\"").unwrap() + 21;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

#[tokio::test]
async fn approval_page_approves_as_the_chosen_customer_or_denies() {
    let (bank, app) = sandbox(Approval::Page);
    let challenge = pkce_s256(VERIFIER);

    let created = post_consent(&app, all_psd2(), Some("bob")).await;
    let id = created.json()["consentId"].as_str().unwrap().to_owned();
    let page = get(&app, &authorize_uri(&id, &challenge)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text.contains("<option value=\"bob\" selected>"),
        "{}",
        page.text
    );
    assert!(page.text.contains("value=\"approve\"") && page.text.contains("value=\"deny\""));
    let ticket = ticket_of(&page.text);
    let form = [
        ("ticket", ticket.as_str()),
        ("customer", "carol"),
        ("decision", "approve"),
    ];
    let approved = post_form(&app, "/oauth/authorize", &form, false).await;
    assert_eq!(approved.status, StatusCode::FOUND);
    assert!(approved.location_parameter("code").is_some());
    assert_eq!(approved.location_parameter("iss").as_deref(), Some(ORIGIN));
    assert_eq!(bank.consents()[&id].customer.id, "carol");
    assert_eq!(bank.consents()[&id].status, ConsentStatus::Valid);
    let replayed = post_form(&app, "/oauth/authorize", &form, false).await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);

    let created = post_consent(&app, all_psd2(), None).await;
    let id = created.json()["consentId"].as_str().unwrap().to_owned();
    let page = get(&app, &authorize_uri(&id, &challenge)).await;
    let ticket = ticket_of(&page.text);
    let form = [
        ("ticket", ticket.as_str()),
        ("customer", "alice"),
        ("decision", "deny"),
    ];
    let denied = post_form(&app, "/oauth/authorize", &form, false).await;
    assert_eq!(
        denied.location_parameter("error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(denied.location_parameter("state").as_deref(), Some("st-1"));
    assert_eq!(bank.consents()[&id].status, ConsentStatus::Rejected);
}

async fn fresh_code(app: &Router) -> String {
    let created = post_consent(app, all_psd2(), None).await;
    let id = created.json()["consentId"].as_str().unwrap().to_owned();
    let redirect = get(app, &authorize_uri(&id, &pkce_s256(VERIFIER))).await;
    redirect.location_parameter("code").unwrap()
}

#[tokio::test]
async fn token_endpoint_checks_client_pkce_redirect_and_single_use() {
    let (bank, app) = sandbox(Approval::Auto);

    let code = fresh_code(&app).await;
    let wrong_verifier = exchange(&app, &code, &"x".repeat(43)).await;
    assert_eq!(wrong_verifier.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_verifier.json()["error"], "invalid_grant");
    // The failed attempt used the code up.
    assert_eq!(
        exchange(&app, &code, VERIFIER).await.json()["error"],
        "invalid_grant"
    );

    let code = fresh_code(&app).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:8080/other"),
        ("code_verifier", VERIFIER),
    ];
    let wrong_redirect = post_form(&app, "/oauth/token", &form, true).await;
    assert_eq!(wrong_redirect.json()["error"], "invalid_grant");

    let code = fresh_code(&app).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("client_id", CLIENT_ID),
        ("client_secret", "wrong"),
    ];
    let wrong_secret = post_form(&app, "/oauth/token", &form, false).await;
    assert_eq!(wrong_secret.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_secret.json()["error"], "invalid_client");
    let no_auth = post_form(&app, "/oauth/token", &form[..4], false).await;
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);
    assert!(no_auth.headers.contains_key(header::WWW_AUTHENTICATE));

    // client_secret_post works, and the answer is not cacheable.
    let code = fresh_code(&app).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let issued = post_form(&app, "/oauth/token", &form, false).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    assert_eq!(issued.headers[header::CACHE_CONTROL], "no-store");
    let tokens = issued.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(bank.auth.books().access_tokens.contains_key(&access_token));
    // A replayed code fails and revokes what it issued.
    let replay = post_form(&app, "/oauth/token", &form, false).await;
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert!(!bank.auth.books().access_tokens.contains_key(&access_token));

    // An expired code fails.
    let code = fresh_code(&app).await;
    if let Some(entry) = bank.auth.books().codes.get_mut(&code) {
        entry.issued_at = Instant::now()
            .checked_sub(CODE_LIFETIME + Duration::from_secs(1))
            .unwrap();
    }
    assert_eq!(
        exchange(&app, &code, VERIFIER).await.json()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn refresh_works_until_the_consent_is_deleted() {
    let (_, app) = sandbox(Approval::Auto);
    let code = fresh_code(&app).await;
    let tokens = exchange(&app, &code, VERIFIER).await.json();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let consent_id = tokens["scope"]
        .as_str()
        .unwrap()
        .strip_prefix("AIS:")
        .unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let refreshed = post_form(&app, "/oauth/token", &form, true).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    let access_token = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(access_token, tokens["access_token"].as_str().unwrap());
    let accounts = data(&app, "/v1/accounts", consent_id, &access_token).await;
    assert_eq!(accounts.status, StatusCode::OK);

    let deleted = call(
        &app,
        Request::builder()
            .method(Method::DELETE)
            .uri(format!("/v1/consents/{consent_id}"))
            .header(X_REQUEST_ID, request_id())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let refused = post_form(&app, "/oauth/token", &form, true).await;
    assert_eq!(refused.json()["error"], "invalid_grant");
    let accounts = data(&app, "/v1/accounts", consent_id, &access_token).await;
    check_rejected(&accounts, StatusCode::UNAUTHORIZED, "CONSENT_INVALID");
}

#[tokio::test]
async fn revocation_ends_a_refresh_token_and_its_access_tokens() {
    let (_, app) = sandbox(Approval::Auto);
    let code = fresh_code(&app).await;
    let tokens = exchange(&app, &code, VERIFIER).await.json();
    let consent_id = tokens["scope"]
        .as_str()
        .unwrap()
        .strip_prefix("AIS:")
        .unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();
    let form = [("token", tokens["refresh_token"].as_str().unwrap())];
    assert_eq!(
        post_form(&app, "/oauth/revoke", &form, true).await.status,
        StatusCode::OK
    );
    let accounts = data(&app, "/v1/accounts", consent_id, access_token).await;
    check_rejected(&accounts, StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
}

#[tokio::test]
async fn data_requests_need_a_token_of_a_valid_unexpired_consent() {
    let (bank, app) = sandbox(Approval::Auto);
    let (consent_id, token) = authorised(&app, all_psd2(), None).await;
    let (other_consent, other_token) = authorised(&app, all_psd2(), None).await;

    let missing_request_id = call(
        &app,
        Request::get("/v1/accounts")
            .header(CONSENT_ID, consent_id.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    check_rejected(&missing_request_id, StatusCode::BAD_REQUEST, "FORMAT_ERROR");
    let wrong_token = data(&app, "/v1/accounts", &consent_id, "forged").await;
    check_rejected(&wrong_token, StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    let crossed = data(&app, "/v1/accounts", &consent_id, &other_token).await;
    check_rejected(&crossed, StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    let unknown = data(&app, "/v1/accounts", "nope", &token).await;
    check_rejected(&unknown, StatusCode::BAD_REQUEST, "CONSENT_UNKNOWN");

    if let Some(consent) = bank.consents().get_mut(&other_consent) {
        consent.valid_until = today().pred_opt().unwrap();
    }
    let expired = data(&app, "/v1/accounts", &other_consent, &other_token).await;
    check_rejected(&expired, StatusCode::UNAUTHORIZED, "CONSENT_EXPIRED");

    let ok = data(&app, "/v1/accounts", &consent_id, &token).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

#[tokio::test]
async fn accounts_are_the_consent_customers_only() {
    let (_, app) = sandbox(Approval::Auto);
    let (consent_id, token) = authorised(&app, all_psd2(), Some("bob")).await;
    let list = data(&app, "/v1/accounts?withBalance=true", &consent_id, &token).await;
    let list = list.json();
    let ids: Vec<&str> = list["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| account["resourceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bob-current", "bob-wallet", "bob-card"]);
    let wallet = &list["accounts"][1];
    assert_eq!(wallet["currency"], "XXX");
    assert_eq!(wallet["cashAccountType"], "CACC");
    assert!(
        wallet.get("ownerName").is_none(),
        "owner name was not consented"
    );
    assert_eq!(
        wallet["balances"][2]["balanceAmount"],
        json!({"currency": "USD", "amount": "-18.40"})
    );
    assert_eq!(list["accounts"][2]["cashAccountType"], "CARD");
    assert_eq!(list["accounts"][2]["maskedPan"], "535522******0087");

    let alice_account = data(&app, "/v1/accounts/alice-giro", &consent_id, &token).await;
    check_rejected(&alice_account, StatusCode::NOT_FOUND, "RESOURCE_UNKNOWN");
    let detail = data(&app, "/v1/accounts/bob-card", &consent_id, &token).await;
    assert_eq!(detail.json()["account"]["product"], "Mastercard Platinum");
}

#[tokio::test]
async fn dedicated_consents_cover_only_what_they_name() {
    let (_, app) = sandbox(Approval::Auto);
    let body = consent_body(json!({
        "balances": [{"iban": "DE92 9999 0000 0012 3456 01"}],
        "transactions": [{"maskedPan": "489537******7421"}],
        "additionalInformation": {"ownerName": [{"iban": "DE92999900000012345601"}]},
    }));
    let (consent_id, token) = authorised(&app, body, None).await;
    let list = data(&app, "/v1/accounts", &consent_id, &token).await.json();
    let accounts = list["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0]["ownerName"], "Alice Schmidt");
    assert!(accounts[0]["_links"].get("transactions").is_none());
    assert!(accounts[1].get("ownerName").is_none());

    let giro_tx = data(
        &app,
        "/v1/accounts/alice-giro/transactions?bookingStatus=both",
        &consent_id,
        &token,
    )
    .await;
    check_rejected(&giro_tx, StatusCode::UNAUTHORIZED, "CONSENT_INVALID");
    let card_balances = data(
        &app,
        "/v1/accounts/alice-card/balances",
        &consent_id,
        &token,
    )
    .await;
    check_rejected(&card_balances, StatusCode::UNAUTHORIZED, "CONSENT_INVALID");
    let savings = data(&app, "/v1/accounts/alice-savings", &consent_id, &token).await;
    check_rejected(&savings, StatusCode::UNAUTHORIZED, "CONSENT_INVALID");
    let giro_balances = data(
        &app,
        "/v1/accounts/alice-giro/balances",
        &consent_id,
        &token,
    )
    .await
    .json();
    assert_eq!(giro_balances["account"]["iban"], "DE92999900000012345601");
    assert_eq!(
        giro_balances["balances"][0]["balanceAmount"]["amount"],
        "-152.37"
    );
    assert_eq!(giro_balances["balances"][0]["balanceType"], "closingBooked");
    assert_eq!(giro_balances["balances"][0]["creditLimitIncluded"], false);
}

#[tokio::test]
async fn transaction_reports_filter_page_and_validate() {
    let (_, app) = sandbox(Approval::Auto);
    let (consent_id, token) = authorised(&app, all_psd2(), None).await;
    let report = |query: String| {
        let app = app.clone();
        let consent_id = consent_id.clone();
        let token = token.clone();
        async move {
            let uri = format!("/v1/accounts/alice-giro/transactions?{query}");
            data(&app, &uri, &consent_id, &token).await
        }
    };

    let first = report("bookingStatus=both".into()).await.json();
    let booked = first["transactions"]["booked"].as_array().unwrap();
    assert_eq!(booked.len(), PAGE_SIZE);
    assert_eq!(
        first["transactions"]["pending"].as_array().unwrap().len(),
        2
    );
    assert!(
        first["transactions"]["pending"][0]
            .get("bookingDate")
            .is_none()
    );
    assert_eq!(booked[0]["creditorName"], "Café Einstein");
    assert_eq!(booked[0]["merchantCategoryCode"], "5812");
    let next = first["transactions"]["_links"]["next"]["href"]
        .as_str()
        .unwrap();
    let second = report(next.split_once('?').unwrap().1.to_owned())
        .await
        .json();
    assert_eq!(
        second["transactions"]["booked"].as_array().unwrap().len(),
        4
    );
    assert!(
        second["transactions"]["pending"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(second["transactions"]["_links"].get("next").is_none());

    let from = customers::days_before(today(), 10);
    let recent = report(format!("bookingStatus=booked&dateFrom={from}"))
        .await
        .json();
    let dates: Vec<&str> = recent["transactions"]["booked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tx| tx["bookingDate"].as_str().unwrap())
        .collect();
    assert_eq!(dates.len(), 5);
    assert!(dates.iter().all(|date| *date >= from.to_string().as_str()));
    assert!(
        recent["transactions"]["pending"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let missing = report(String::new()).await;
    check_rejected(&missing, StatusCode::BAD_REQUEST, "FORMAT_ERROR");
    let information = report("bookingStatus=information".into()).await;
    check_rejected(
        &information,
        StatusCode::BAD_REQUEST,
        "PARAMETER_NOT_SUPPORTED",
    );
    let bad_date = report("bookingStatus=both&dateFrom=01.02.2024".into()).await;
    check_rejected(&bad_date, StatusCode::BAD_REQUEST, "FORMAT_ERROR");
    let backwards = report("bookingStatus=both&dateFrom=2024-02-01&dateTo=2024-01-01".into()).await;
    check_rejected(&backwards, StatusCode::BAD_REQUEST, "PERIOD_INVALID");
}
