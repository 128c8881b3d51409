//! Client authentication at the token endpoint says which check failed, never a secret; a
//! secret stored by an earlier version (an Argon2 hash) is refused without being checked, and
//! the operator issues a new one.

use bankgate::jose::ClientKey;
use bankgate::jose::{CLIENT_ASSERTION_TYPE, basic_header};
use bankgate::oauth::registration::Registration;
use bankgate::oauth::{AuthMethod, Client, Role};
use serde_json::Value;

use crate::support::{Options, StoreKind, TestGateway};

on_both_stores!(client_authentication_says_which_check_failed);

const ADMIN_TOKEN: &str = "client-auth-admin-token-0123456789";

/// `POST /oauth/token` (client credentials) with `authorization` and `form`: status and body.
async fn token_request(
    gateway: &TestGateway,
    authorization: Option<String>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = gateway
        .platform
        .http
        .post(format!("{}/oauth/token", gateway.base))
        .form(&[&[("grant_type", "client_credentials")], form].concat());
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.expect("the token endpoint answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[track_caller]
fn refused(answer: (u16, Value), description: &str) {
    let (status, body) = answer;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert_eq!(
        body["error_description"],
        format!("client authentication failed: {description}"),
        "{body}"
    );
}

async fn client_authentication_says_which_check_failed(kind: StoreKind) {
    let gateway = TestGateway::start_with(
        kind,
        Options {
            admin_token: Some(ADMIN_TOKEN.into()),
            ..Options::default()
        },
    )
    .await;

    // A wrong secret and an unknown client read the same (and cost the same: one HMAC).
    for (client_id, secret) in [("messenger", "not-the-secret"), ("nobody", "x")] {
        refused(
            token_request(&gateway, Some(basic_header(client_id, secret)), &[]).await,
            "unknown client or wrong secret",
        );
    }
    refused(
        token_request(&gateway, None, &[]).await,
        "no client credentials (HTTP Basic or a client assertion)",
    );

    // A secret an earlier version stored as an Argon2 hash is refused unchecked...
    let legacy = Client {
        client_id: "legacy-office".into(),
        name: "Legacy".into(),
        secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$3kZ6e0kXkz1J2M7bqg3Q4w".into(),
        role: Role::Compliance,
        redirect_uris: vec![],
        allowed_purposes: vec![],
        region: "EEA".into(),
        created_at: chrono::Utc::now(),
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        jwks: None,
        dpop_bound_access_tokens: false,
        webhook_url: None,
        bank_id: None,
        jwks_uri: None,
        registration_token_hash: String::new(),
    };
    gateway.app.store.insert_client(&legacy).await.unwrap();
    refused(
        token_request(&gateway, Some(basic_header("legacy-office", "old")), &[]).await,
        "this client's secret was stored by an earlier version of the gateway and is no \
         longer accepted; ask the operator for a new one",
    );
    // ...until the operator issues a new one, shown once.
    let http = &gateway.platform.http;
    let reissue = |client_id: &str| {
        http.post(format!("{}/admin/clients/{client_id}/secret", gateway.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let response = reissue("legacy-office").await.unwrap();
    assert_eq!(response.status(), 200);
    let issued: Value = response.json().await.unwrap();
    let secret = issued["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    let stored = gateway
        .app
        .store
        .client("legacy-office")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.secret_hash.starts_with("hmac-sha256:"),
        "{}",
        stored.secret_hash
    );
    assert!(!stored.secret_hash.contains(&secret));
    let (status, body) =
        token_request(&gateway, Some(basic_header("legacy-office", &secret)), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "audit:read");
    let response = reissue("nobody").await.unwrap();
    assert_eq!(response.status(), 404);

    // A private_key_jwt client: its assertion's mistakes are named.
    let key = ClientKey::generate_es256().unwrap();
    gateway
        .app
        .registrar
        .register(
            &gateway.app.policies.current(),
            Registration {
                client_id: "keyed-office".into(),
                name: "Keyed".into(),
                role: Role::Compliance,
                token_endpoint_auth_method: AuthMethod::PrivateKeyJwt,
                jwks: Some(key.jwks()),
                ..Registration::default()
            },
        )
        .await
        .unwrap();
    let response = reissue("keyed-office").await.unwrap();
    assert_eq!(
        response.status(),
        400,
        "a private_key_jwt client has no secret"
    );
    let token_endpoint = format!("{}/oauth/token", gateway.base);
    let assertion = key
        .client_assertion("keyed-office", &token_endpoint)
        .unwrap();
    refused(
        token_request(
            &gateway,
            None,
            &[
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        )
        .await,
        &format!(
            "client assertion: aud must be the issuer identifier {} (not an endpoint URL)",
            gateway.base
        ),
    );
    refused(
        token_request(&gateway, Some(basic_header("keyed-office", "guess")), &[]).await,
        "this client authenticates with private_key_jwt",
    );
    let stranger = ClientKey::generate_es256().unwrap();
    let assertion = stranger
        .client_assertion("keyed-office", &gateway.base)
        .unwrap();
    refused(
        token_request(
            &gateway,
            None,
            &[
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        )
        .await,
        &format!(
            "no key the client registered has kid {:?} and alg ES256",
            stranger.kid
        ),
    );
}
