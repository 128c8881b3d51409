//! Every error of every route is RFC 9457 problem+json (issue 15): a walk over the route
//! table with bad bodies, bad path parameters, unknown fields, missing media types and wrong
//! methods, each with the credentials the route asks for and without. The only other forms
//! are the agreed ones: RFC 6749 JSON from the OAuth endpoints, HTML pages for the user's
//! browser.

use bankgate::demo::account_information;
use bankgate::http::templates::ALL;
use bankgate::model::Scope;
use bankgate::oauth::Role;
use bankgate::oauth::registration::Registration;
use reqwest::Method;
use serde_json::Value;

use super::support::{Options, StoreKind, TestGateway};

on_both_stores!(every_route_answers_errors_as_problems);

const OPERATOR_TOKEN: &str = "operator-token-for-the-problem-walk";

/// What a route answers its errors in.
#[derive(Debug, PartialEq)]
enum Form {
    Problem,
    /// RFC 6749 §5.2 (`error`, `error_description`).
    OAuth,
    /// An HTML page for the user's browser.
    Page,
}

fn form_of(path: &str) -> Form {
    match path {
        "/oauth/par" | "/oauth/token" | "/oauth/revoke" | "/register/{client_id}" => Form::OAuth,
        "/oauth/authorize" | "/oauth/callback" => Form::Page,
        page if page == "/me" || page.starts_with("/me/") => Form::Page,
        _ => Form::Problem,
    }
}

/// `template` with its parameters filled in: known ids where the route needs one to get past
/// its first checks, nonsense elsewhere (`position` is not a number).
fn concrete(template: &str) -> String {
    template
        .replace("{bank_id}", "demo-bank")
        .replace("{position}", "not-a-number")
        .replace("{account_id}", "no-such-account")
        .replace("{consent_id}", "no-such-consent")
        .replace("{id}", "no-such-id")
}

/// Asserts that `response` is either a success or an error in the route's form; returns
/// status and body.
async fn check(response: reqwest::Response, form: Form, what: &str) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.bytes().await.expect("body");
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status >= 400 {
        match form {
            Form::Problem => {
                assert_eq!(
                    content_type,
                    "application/problem+json",
                    "{what}: {status} {}",
                    String::from_utf8_lossy(&bytes)
                );
                assert_eq!(body["status"], status, "{what}: {body}");
                let kind = body["type"].as_str().unwrap_or_default();
                assert!(
                    kind.starts_with("https://bankgate.dev/problems/"),
                    "{what}: {body}"
                );
                assert!(body["detail"].is_string(), "{what}: {body}");
                assert!(
                    body["instance"]
                        .as_str()
                        .is_some_and(|instance| instance.starts_with("urn:request:")),
                    "{what}: {body}"
                );
            }
            Form::OAuth => {
                assert!(
                    content_type.starts_with("application/json"),
                    "{what}: {status} {content_type}"
                );
                assert!(body["error"].is_string(), "{what}: {body}");
            }
            Form::Page => {
                assert!(
                    content_type.starts_with("text/html"),
                    "{what}: {status} {content_type}"
                );
            }
        }
    }
    (status, body)
}

async fn every_route_answers_errors_as_problems(kind: StoreKind) {
    let gateway = TestGateway::start_with(
        kind,
        Options {
            admin_token: Some(OPERATOR_TOKEN.into()),
            ..Options::default()
        },
    )
    .await;
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-problems",
    );
    let (data, _) = gateway.platform.connect(&detail).await.expect("consent");
    let management = gateway.platform.client_credentials().await.unwrap();
    let compliance = gateway.compliance.client_credentials().await.unwrap();
    let bank = gateway
        .app
        .registrar
        .register(
            &gateway.app.policies.current(),
            Registration {
                client_id: "demo-bank-ops".into(),
                name: "Demo Bank operations".into(),
                role: Role::Bank,
                bank_id: Some("demo-bank".into()),
                token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
                ..Registration::default()
            },
        )
        .await
        .expect("bank client registers");
    let bank = bankgate::demo::PlatformClient::new(
        &gateway.base,
        "demo-bank-ops",
        &bank.client_secret,
        "",
    )
    .unwrap()
    .client_credentials()
    .await
    .unwrap();
    // The credentials each route is for.
    let token_for = |path: &str| -> Option<String> {
        if path.starts_with("/admin/") {
            Some(OPERATOR_TOKEN.to_owned())
        } else if path.starts_with("/v1/audit/") {
            Some(compliance.clone())
        } else if path.starts_with("/v1/accounts") || path == "/v1/identity" {
            Some(data.access_token.clone())
        } else if path.starts_with("/v1/banks/{bank_id}/") {
            Some(bank.clone())
        } else if path.starts_with("/v1/consents") || path.starts_with("/v1/webhooks") {
            Some(management.clone())
        } else {
            None
        }
    };

    let http = bankgate::crypto::http_client_builder().build().unwrap();
    let bad_bodies: [(Option<&str>, &str); 4] = [
        (Some("application/json"), "{\"jwks_uri\": "),
        (
            Some("application/json"),
            "{\"jwks_uri\": \"https://x.example/jwks\"}",
        ),
        (Some("application/x-www-form-urlencoded"), "a=%00&a=2"),
        (None, "not json at all"),
    ];
    let mut n_requests = 0;
    let mut n_errors = 0;
    for route in ALL {
        let path = concrete(route.path);
        let token = token_for(route.path);
        for method in route.methods {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            for authorised in [false, true] {
                for (content_type, body) in bad_bodies {
                    let mut request = http
                        .request(
                            method.clone(),
                            format!("{}{path}?limit=x&from=y", gateway.base),
                        )
                        .body(body);
                    if let Some(content_type) = content_type {
                        request = request.header("content-type", content_type);
                    }
                    if let (true, Some(token)) = (authorised, &token) {
                        request = request.bearer_auth(token);
                    }
                    let what = format!("{method} {path} {content_type:?} {body:?} {authorised}");
                    let (status, _) =
                        check(request.send().await.unwrap(), form_of(route.path), &what).await;
                    n_requests += 1;
                    if status >= 400 {
                        n_errors += 1;
                    }
                }
            }
        }
        // A method the route does not take: the router refuses it, whatever the route.
        let response = http
            .request(Method::PATCH, format!("{}{path}", gateway.base))
            .send()
            .await
            .unwrap();
        let (status, _) = check(response, Form::Problem, &format!("PATCH {path}")).await;
        assert!(status >= 400, "PATCH {path}: {status}");
        n_requests += 1;
        n_errors += 1;
    }
    assert!(
        n_errors > n_requests / 2,
        "{n_errors} errors of {n_requests}"
    );

    // The admin API's bad bodies, precisely (the issue's example: an unknown field).
    let post = |body: &'static str, content_type: Option<&'static str>| {
        let mut request = http
            .post(format!("{}/admin/clients", gateway.base))
            .bearer_auth(OPERATOR_TOKEN)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    let unknown_field = r#"{"client_id":"c","name":"n","role":"platform","jwks_url":"https://x"}"#;
    let (status, problem) = check(
        post(unknown_field, Some("application/json")).await.unwrap(),
        Form::Problem,
        "unknown field",
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/invalid-request")
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("jwks_uri"),
        "{problem}"
    );
    let (status, problem) = check(
        post("{", Some("application/json")).await.unwrap(),
        Form::Problem,
        "truncated JSON",
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem) = check(
        post(unknown_field, None).await.unwrap(),
        Form::Problem,
        "no media type",
    )
    .await;
    assert_eq!(status, 415, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/unsupported-media-type")
    );
    // Without the operator token, the body is not even read.
    let response = http
        .post(format!("{}/admin/clients", gateway.base))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let (status, _) = check(response, Form::Problem, "no token").await;
    assert_eq!(status, 401);

    // A body over the limit, a wrong method, a path nothing serves.
    // (On a connection of its own: the gateway answers before it reads the body and closes
    // the connection.)
    let huge = "x".repeat(gateway.app.config.max_body_bytes + 1);
    let response = bankgate::crypto::http_client_builder()
        .build()
        .unwrap()
        .post(format!("{}/admin/clients", gateway.base))
        .bearer_auth(OPERATOR_TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    let (status, problem) = check(response, Form::Problem, "huge body").await;
    assert_eq!(status, 413, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/payload-too-large")
    );
    let response = http
        .put(format!("{}/v1/purposes", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("allow")
            .map(|allow| allow.to_str().unwrap().to_owned()),
        Some("GET,HEAD".to_owned())
    );
    let (status, problem) = check(response, Form::Problem, "PUT /v1/purposes").await;
    assert_eq!(status, 405, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/method-not-allowed")
    );
    for path in [
        "/nowhere",
        "/v1/audit/nowhere",
        "/v1/accounts/a/b/c",
        "/v1/consents/a/b",
    ] {
        let response = http
            .get(format!("{}{path}", gateway.base))
            .bearer_auth(&management)
            .send()
            .await
            .unwrap();
        let (status, problem) = check(response, Form::Problem, path).await;
        assert_eq!(status, 404, "{path}: {problem}");
    }
}

/// A data route answers GET only: another method, even with a valid token and proof, is 405
/// `method-not-allowed` (with `Allow`) before any decision, so nothing is released (found by
/// schemathesis: TRACE and POST on `/v1/accounts` answered the accounts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_routes_answer_get_only() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-methods",
    );
    let (token, _) = gateway.platform.connect(&detail).await.expect("consent");
    let token = token.access_token;
    let (status, accounts) = gateway
        .platform
        .get(&token, "/v1/accounts")
        .await
        .expect("accounts");
    assert_eq!(status, 200, "{accounts}");
    let account = accounts["accounts"][0]["id"].as_str().expect("an account");
    for path in [
        "/v1/accounts".to_owned(),
        format!("/v1/accounts/{account}/balances"),
        format!("/v1/accounts/{account}/transactions"),
        "/v1/identity".to_owned(),
    ] {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::TRACE] {
            let answer = gateway
                .platform
                .send(method.clone(), &path, Some(&token), None)
                .await
                .expect("an answer");
            let body = answer.json();
            assert_eq!(answer.status, 405, "{method} {path}: {body}");
            assert_eq!(
                body["type"], "https://bankgate.dev/problems/method-not-allowed",
                "{method} {path}"
            );
            let allow = answer.headers["allow"].to_str().unwrap_or_default();
            assert!(allow.contains("GET"), "{method} {path}: Allow {allow}");
        }
    }
}
