//! Client keys: a platform rotates its keys without re-registering, through its configuration
//! endpoint (RFC 7592) or by publishing them at its `jwks_uri`; the old key is refused after
//! the rotation; a `jwks_uri` at a private address is refused at registration.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use bankgate::demo::PlatformClient;
use bankgate::jose::ClientKey;
use serde_json::{Value, json};

use crate::support::{Options, REDIRECT_URI, StoreKind, TestGateway};

on_both_stores!(
    keys_rotate_through_the_configuration_endpoint,
    keys_rotate_by_publishing_them_at_the_jwks_uri,
    a_jwks_uri_at_a_private_address_is_refused
);

const OPERATOR_TOKEN: &str = "operator-token-for-client-keys";

fn operator() -> Options {
    Options {
        admin_token: Some(OPERATOR_TOKEN.into()),
        ..Options::default()
    }
}

/// `POST /admin/clients` for a FAPI platform with `keys` (`jwks` or `jwks_uri`).
async fn register(gateway: &TestGateway, client_id: &str, keys: Value) -> (u16, Value) {
    let mut body = json!({
        "client_id": client_id,
        "name": client_id,
        "redirect_uris": [REDIRECT_URI],
        "allowed_purposes": ["balance-alerts"],
    });
    body.as_object_mut()
        .unwrap()
        .extend(keys.as_object().unwrap().clone());
    let response = reqwest::Client::new()
        .post(format!("{}/admin/clients", gateway.base))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The platform signing its assertions with `key` (and proving with a DPoP key).
fn platform(gateway: &TestGateway, client_id: &str, key: ClientKey) -> PlatformClient {
    PlatformClient::new(&gateway.base, client_id, "", REDIRECT_URI)
        .unwrap()
        .with_private_key_jwt(key)
        .with_dpop(ClientKey::generate_ed25519().unwrap())
}

async fn configuration(
    method: reqwest::Method,
    uri: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value, Option<String>) {
    let mut request = reqwest::Client::new()
        .request(method, uri)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        challenge,
    )
}

async fn keys_rotate_through_the_configuration_endpoint(kind: StoreKind) {
    let gateway = TestGateway::start_with(kind, operator()).await;
    let old = ClientKey::generate_es256().unwrap();
    let (status, registered) = register(&gateway, "rotating", json!({"jwks": old.jwks()})).await;
    assert_eq!(status, 201, "{registered}");
    let uri = registered["registration_client_uri"].as_str().unwrap();
    assert_eq!(uri, format!("{}/register/rotating", gateway.base));
    let token = registered["registration_access_token"].as_str().unwrap();
    let (old_kid, old_jwks) = (old.kid.clone(), old.jwks());
    let old = platform(&gateway, "rotating", old);
    old.client_credentials()
        .await
        .expect("the registered key authenticates");

    // The registration as the client sees it: no secret, no token.
    let (status, metadata, _) = configuration(reqwest::Method::GET, uri, token, None).await;
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["jwks"], old_jwks);
    assert_eq!(metadata["token_endpoint_auth_method"], "private_key_jwt");
    assert!(metadata.get("registration_access_token").is_none());

    // Without the token, with a wrong one, or another client's: 401 with a challenge.
    let (status, _, challenge) =
        configuration(reqwest::Method::GET, uri, "not-the-token", None).await;
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some("Bearer error=\"invalid_token\""));
    let (status, other) = register(
        &gateway,
        "other",
        json!({"jwks": ClientKey::generate_es256().unwrap().jwks()}),
    )
    .await;
    assert_eq!(status, 201);
    let other_token = other["registration_access_token"].as_str().unwrap();
    let (status, _, _) = configuration(reqwest::Method::GET, uri, other_token, None).await;
    assert_eq!(status, 401, "another client's token");
    let (status, _, _) = configuration(
        reqwest::Method::GET,
        &format!("{}/register/nobody", gateway.base),
        token,
        None,
    )
    .await;
    assert_eq!(status, 401, "an unknown client looks like a wrong token");

    // What the operator decided is not the client's to change.
    let new = ClientKey::generate_es256().unwrap();
    for (field, value) in [
        (
            "allowed_purposes",
            json!(["balance-alerts", "fraud-alerts"]),
        ),
        ("role", json!("compliance")),
        ("dpop_bound_access_tokens", json!(false)),
        ("token_endpoint_auth_method", json!("client_secret_basic")),
    ] {
        let body = json!({"client_id": "rotating", "jwks": new.jwks(), field: value});
        let (status, error, _) = configuration(reqwest::Method::PUT, uri, token, Some(&body)).await;
        assert_eq!(status, 400, "{field}");
        assert_eq!(error["error"], "invalid_client_metadata");
        assert!(
            error["error_description"].as_str().unwrap().contains(field),
            "{error}"
        );
    }
    let both = json!({"client_id": "rotating", "jwks": new.jwks(), "jwks_uri": "https://platform.example/jwks"});
    let (status, error, _) = configuration(reqwest::Method::PUT, uri, token, Some(&both)).await;
    assert_eq!(status, 400, "{error}");
    let (status, error, _) = configuration(
        reqwest::Method::PUT,
        uri,
        token,
        Some(&json!({"client_id": "rotating"})),
    )
    .await;
    assert_eq!(status, 400, "a private_key_jwt client keeps keys: {error}");
    old.client_credentials()
        .await
        .expect("refused updates changed nothing");

    // The rotation: the new key works at once, the old one is refused.
    let body = json!({"client_id": "rotating", "jwks": new.jwks(), "allowed_purposes": ["balance-alerts"]});
    let (status, metadata, _) = configuration(reqwest::Method::PUT, uri, token, Some(&body)).await;
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["jwks"], new.jwks());
    assert_eq!(metadata["allowed_purposes"], json!(["balance-alerts"]));
    let new_jwks = new.jwks();
    platform(&gateway, "rotating", new)
        .client_credentials()
        .await
        .expect("the new key authenticates");
    let error = old.client_credentials().await.unwrap_err().to_string();
    assert!(
        error.contains("invalid_client") && error.contains(&old_kid),
        "{error}"
    );
    let stored = gateway.app.store.client("rotating").await.unwrap().unwrap();
    assert_eq!(stored.jwks, Some(new_jwks));
    assert_eq!(stored.allowed_purposes, ["balance-alerts"]);
}

/// A client's JWKS endpoint on loopback: serves what `published` holds, counting requests.
struct Publisher {
    published: Arc<Mutex<Value>>,
    requests: Arc<AtomicUsize>,
    uri: String,
}

async fn publisher(initial: Value) -> Publisher {
    let published = Arc::new(Mutex::new(initial));
    let requests = Arc::new(AtomicUsize::new(0));
    let (serving, counting) = (published.clone(), requests.clone());
    let router = Router::new().route(
        "/jwks.json",
        get(move || {
            let serving = serving.clone();
            let counting = counting.clone();
            async move {
                counting.fetch_add(1, Ordering::SeqCst);
                let body = serving.lock().unwrap().clone();
                (
                    [("content-type", "application/jwk-set+json")],
                    body.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Publisher {
        published,
        requests,
        uri: format!("http://{addr}/jwks.json"),
    }
}

async fn keys_rotate_by_publishing_them_at_the_jwks_uri(kind: StoreKind) {
    // The test gateway allows private platform hosts: the publisher is on loopback.
    let gateway = TestGateway::start_with(kind, operator()).await;
    let old = ClientKey::generate_es256().unwrap();
    let new = ClientKey::generate_es256().unwrap();
    let publisher = publisher(old.jwks()).await;
    let (status, registered) =
        register(&gateway, "publishing", json!({"jwks_uri": publisher.uri})).await;
    assert_eq!(status, 201, "{registered}");
    let stored = gateway
        .app
        .store
        .client("publishing")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.jwks_uri.as_deref(), Some(publisher.uri.as_str()));
    assert_eq!(stored.jwks, None);

    let old_kid = old.kid.clone();
    let old = platform(&gateway, "publishing", old);
    // Fetched once, then cached.
    for _ in 0..3 {
        old.client_credentials()
            .await
            .expect("the published key authenticates");
    }
    assert_eq!(publisher.requests.load(Ordering::SeqCst), 1, "cached");

    // The platform publishes its new key and signs with it: the unknown kid brings one fetch.
    *publisher.published.lock().unwrap() = new.jwks();
    platform(&gateway, "publishing", new)
        .client_credentials()
        .await
        .expect("the new key authenticates after one fetch");
    assert_eq!(publisher.requests.load(Ordering::SeqCst), 2);
    // The old key is gone from the set: refused, and asking again does not fetch again.
    for _ in 0..3 {
        let error = old.client_credentials().await.unwrap_err().to_string();
        assert!(
            error.contains("invalid_client") && error.contains(&old_kid),
            "{error}"
        );
    }
    assert_eq!(
        publisher.requests.load(Ordering::SeqCst),
        2,
        "unknown kids do not fetch more often than allowed"
    );
}

async fn a_jwks_uri_at_a_private_address_is_refused(kind: StoreKind) {
    let gateway = TestGateway::start_with(
        kind,
        Options {
            public_hosts_only: true,
            ..operator()
        },
    )
    .await;
    let publisher = publisher(ClientKey::generate_es256().unwrap().jwks()).await;
    for (n, (uri, reason)) in [
        (publisher.uri.as_str(), "loopback"),
        ("https://10.0.0.1/jwks.json", "private-use"),
        ("https://[::ffff:169.254.169.254]/jwks.json", "link-local"),
        ("https://keys.localhost/jwks.json", "RFC 6761"),
        ("http://platform.example/jwks.json", "https"),
    ]
    .into_iter()
    .enumerate()
    {
        let client_id = format!("private-{n}");
        let (status, problem) = register(&gateway, &client_id, json!({"jwks_uri": uri})).await;
        assert_eq!(status, 400, "{uri}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("jwks_uri") && detail.contains(reason),
            "{uri}: {detail}"
        );
        assert_eq!(gateway.app.store.client(&client_id).await.unwrap(), None);
    }
    assert_eq!(publisher.requests.load(Ordering::SeqCst), 0);
}
