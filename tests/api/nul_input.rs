//! U+0000 in caller input (issue 11, item 13): PostgreSQL text cannot hold it, so it is refused
//! up front with 400 wherever input reaches the store, never a 500 and never an export that
//! starts and then breaks off. On both stores, so that they answer alike.

use bankgate::audit::{Action, Decision, Event};
use bankgate::demo::{Answer, account_information};
use bankgate::model::Scope;
use serde_json::{Value, json};

use super::registration::{bank_principal, manifest, proprietary_sandbox, provide_credentials};
use super::support::{REDIRECT_URI, StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    nul_in_audit_filters_is_refused,
    nul_in_pushed_requests_is_refused,
    nul_in_the_browser_leg_is_refused,
    nul_in_consent_and_bank_paths_is_refused,
    nul_in_an_adapter_manifest_is_refused,
    nul_in_client_credentials_is_an_unknown_client,
    an_audit_event_holding_nul_is_stored_without_it,
);

/// Asserts a 400 problem whose detail names `field` and U+0000.
#[track_caller]
fn assert_refused(answer: &Answer, field: &str, what: &str) {
    let body = answer.json();
    assert_eq!(answer.status, 400, "{what}: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(field) && detail.contains("U+0000"),
        "{what}: {body}"
    );
}

async fn nul_in_audit_filters_is_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.compliance.client_credentials().await.unwrap();
    let get = |path: String| {
        let token = token.clone();
        let compliance = &gateway.compliance;
        async move {
            compliance
                .send(reqwest::Method::GET, &path, Some(&token), None)
                .await
                .unwrap()
        }
    };
    for field in ["platform", "bank", "consent", "purpose", "user_ref"] {
        for endpoint in ["events", "export?format=csv&", "export?"] {
            let separator = if endpoint.ends_with('&') || endpoint.ends_with('?') {
                ""
            } else {
                "?"
            };
            let path = format!("/v1/audit/{endpoint}{separator}{field}=a%00b");
            assert_refused(&get(path.clone()).await, field, &path);
            // Control: the same filter without the NUL is answered.
            let path = format!("/v1/audit/{endpoint}{separator}{field}=ab");
            assert_eq!(get(path.clone()).await.status, 200, "{path}");
        }
    }
    for field in ["platform", "bank", "purpose"] {
        let path = format!("/v1/audit/summary?{field}=%00");
        assert_refused(&get(path.clone()).await, field, &path);
    }
}

/// Asserts an RFC 6749 refusal `error` whose description names U+0000.
#[track_caller]
fn assert_oauth_refused(answer: &Answer, error: &str, what: &str) {
    let body = answer.json();
    assert_eq!(answer.status, 400, "{what}: {body}");
    assert_eq!(body["error"], error, "{what}: {body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains("U+0000"), "{what}: {body}");
}

async fn nul_in_pushed_requests_is_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let challenge = bankgate::crypto::pkce_s256(&"v".repeat(43));
    let par = |state: &str, challenge: &str, detail: Value| {
        let state = state.to_owned();
        let challenge = challenge.to_owned();
        async move {
            let details = json!([detail]).to_string();
            let form = [
                ("response_type", "code"),
                ("client_id", "messenger"),
                ("redirect_uri", REDIRECT_URI),
                ("state", state.as_str()),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("authorization_details", details.as_str()),
            ];
            platform
                .send(reqwest::Method::POST, "/oauth/par", None, Some(&form))
                .await
                .unwrap()
        }
    };
    let detail = |user_ref: &str| {
        serde_json::to_value(account_information(
            "demo-bank",
            "balance-alerts",
            BALANCE_SCOPES,
            user_ref,
        ))
        .unwrap()
    };
    // Control.
    assert_eq!(par("s", &challenge, detail("u-1")).await.status, 201);
    assert_oauth_refused(
        &par("s", &challenge, detail("u\u{0}1")).await,
        "invalid_authorization_details",
        "user_ref",
    );
    assert_oauth_refused(
        &par("s\u{0}", &challenge, detail("u-1")).await,
        "invalid_request",
        "state",
    );
    let mut nul_challenge = challenge.clone();
    nul_challenge.replace_range(0..1, "\u{0}");
    assert_oauth_refused(
        &par("s", &nul_challenge, detail("u-1")).await,
        "invalid_request",
        "code_challenge",
    );
    let mut extension = detail("u-1");
    extension["consent_id"] = json!("c\u{0}");
    assert_oauth_refused(
        &par("s", &challenge, extension).await,
        "invalid_authorization_details",
        "consent_id",
    );
}

async fn nul_in_the_browser_leg_is_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let http = &gateway.platform.http;
    for path in [
        "/oauth/authorize?client_id=messenger&request_uri=urn:ietf:params:oauth:request_uri:%00",
        "/oauth/callback?state=%00&code=x",
    ] {
        let response = http
            .get(format!("{}{path}", gateway.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let page = response.text().await.unwrap();
        assert!(page.contains("U+0000"), "{path}: {page}");
    }
}

async fn nul_in_consent_and_bank_paths_is_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let management = platform.client_credentials().await.unwrap();
    let bank = bank_principal(&gateway, "demo-bank-ops", "demo-bank").await;
    let bank_token = bank.client_credentials().await.unwrap();
    let cases = [
        (
            platform,
            &management,
            reqwest::Method::GET,
            "/v1/consents?user_ref=u%00",
            "user_ref",
        ),
        (
            platform,
            &management,
            reqwest::Method::GET,
            "/v1/consents/c%00",
            "consent id",
        ),
        (
            platform,
            &management,
            reqwest::Method::DELETE,
            "/v1/consents/c%00",
            "consent id",
        ),
        (
            platform,
            &management,
            reqwest::Method::GET,
            "/v1/banks/demo%00",
            "bank id",
        ),
        (
            &bank,
            &bank_token,
            reqwest::Method::DELETE,
            "/v1/banks/demo-bank/consents/c%00",
            "consent id",
        ),
    ];
    for (client, token, method, path, field) in cases {
        let answer = client.send(method, path, Some(token), None).await.unwrap();
        assert_refused(&answer, field, path);
    }
}

async fn nul_in_an_adapter_manifest_is_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    provide_credentials(&gateway);
    let sandbox = proprietary_sandbox().await;
    let acme = bank_principal(&gateway, "acme-admin", "acme-bank").await;
    let token = acme.client_credentials().await.unwrap();
    let put = |body: Value| {
        let token = token.clone();
        let http = gateway.platform.http.clone();
        let url = format!("{}/v1/banks/acme-bank/adapter", gateway.base);
        async move {
            let response = http
                .put(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let mut named = manifest("acme-bank", &sandbox, json!({}));
    named["name"] = json!("Acme\u{0}Bank");
    let (status, problem) = put(named).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("U+0000"),
        "{problem}"
    );
    assert!(
        gateway.app.banks.get("acme-bank").is_none(),
        "nothing registered"
    );
    // Control: the same manifest without it registers.
    let (status, body) = put(manifest("acme-bank", &sandbox, json!({}))).await;
    assert_eq!(status, 201, "{body}");
}

async fn nul_in_client_credentials_is_an_unknown_client(kind: StoreKind) {
    use base64::Engine;
    let gateway = TestGateway::start(kind).await;
    for client_id in ["mess\u{0}enger", "mess%00enger"] {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:secret"));
        let response = gateway
            .platform
            .http
            .post(format!("{}/oauth/token", gateway.base))
            .header("authorization", format!("Basic {basic}"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{client_id:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{client_id:?}");
    }
}

/// Whatever text reaches an audit event, the event is stored: U+0000 becomes U+FFFD (PostgreSQL
/// text cannot hold it) rather than failing the event and every event committed with it.
async fn an_audit_event_holding_nul_is_stored_without_it(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let auditor = &gateway.app.auditor;
    let mut poisoned = Event::new(Action::DataAccess, "nul-app", Decision::Deny);
    poisoned.platform = Some("nul-app".into());
    poisoned.reason = Some("account \u{0}x".into());
    let neighbours = (0..20).map(|i| {
        let mut event = Event::new(Action::DataAccess, "nul-app", Decision::Allow);
        event.platform = Some("nul-app".into());
        event.n_records = i;
        auditor.record(event)
    });
    let (stored, others) = tokio::join!(
        auditor.record(poisoned),
        futures_util::future::join_all(neighbours)
    );
    let stored = stored.expect("the event commits");
    assert_eq!(stored.event.reason.as_deref(), Some("account \u{FFFD}x"));
    assert!(others.iter().all(Result::is_ok), "{others:?}");
    let token = gateway.compliance.client_credentials().await.unwrap();
    let (status, body) = gateway
        .compliance
        .get(&token, "/v1/audit/events?platform=nul-app&decision=deny")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["reason"], "account \u{FFFD}x");
    let (status, verified) = gateway
        .compliance
        .get(&token, "/v1/audit/verify")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(verified["ok"], true, "{verified}");
}
