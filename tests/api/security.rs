//! Security tests (issue 5, item 8): each attack on the list is attempted against a running
//! gateway and must fail, next to a control request that succeeds (so that a test cannot pass
//! because the harness itself is broken).

use bankgate::demo::{PlatformClient, account_information};
use bankgate::jose::CLIENT_ASSERTION_TYPE;
use bankgate::jose::{ClientKey, access_token_hash};
use bankgate::model::Scope;
use bankgate::oauth::registration::Registration;
use bankgate::oauth::{AuthMethod, Role};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::support::{REDIRECT_URI, StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    forged_access_tokens_are_refused,
    tokens_only_come_in_the_authorization_header,
    pkce_downgrades_are_refused,
    a_replayed_code_revokes_everything_issued_from_it,
    redirect_uri_variants_are_refused,
    pushed_requests_are_single_use_and_bound_to_their_client,
    every_authorization_response_names_the_issuer,
    bank_mix_up_is_refused,
    dpop_replay_wrong_htu_wrong_ath_and_wrong_key_are_refused,
    client_assertions_are_checked_strictly,
    bola_matrix_across_two_platforms,
);

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Access-token claims for `consent_id` of `client_id`, as the gateway would issue them.
fn claims(gateway: &TestGateway, client_id: &str, consent_id: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "iss": gateway.base,
        "aud": gateway.base,
        "sub": consent_id,
        "client_id": client_id,
        "scope": "accounts balances",
        "exp": now + 60,
        "iat": now,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// Signs `claims` with the gateway's real key, with `typ` (absent if `None`).
fn sign(gateway: &TestGateway, typ: Option<&str>, claims: &Value) -> String {
    let key = gateway.app.tokens.signing_key();
    let mut header = Header::new(Algorithm::ES256);
    header.typ = typ.map(str::to_owned);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

async fn connect(platform: &PlatformClient, user_ref: &str) -> bankgate::demo::TokenResponse {
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, user_ref);
    platform.connect(&detail).await.expect("consent flow").0
}

async fn status_of(platform: &PlatformClient, token: &str) -> u16 {
    platform.get(token, "/v1/accounts").await.unwrap().0
}

async fn forged_access_tokens_are_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let token = connect(platform, "u-forge").await;
    let good = claims(&gateway, "messenger", &token.consent_id);
    // Its jti is on record as one the gateway issued (every attack below reuses it), so each
    // is refused for what is wrong with it.
    gateway
        .app
        .store
        .record_access_token(&bankgate::oauth::IssuedToken {
            jti: good["jti"].as_str().unwrap().to_owned(),
            client_id: "messenger".to_owned(),
            consent_id: Some(token.consent_id.clone()),
            expires_at: Utc::now() + chrono::Duration::minutes(5),
        })
        .await
        .unwrap();
    // Control: a token with these claims, signed by the gateway's key, is accepted.
    assert_eq!(
        status_of(platform, &sign(&gateway, Some("at+jwt"), &good)).await,
        200
    );

    let key = gateway.app.tokens.signing_key();
    let mut attacks: Vec<(&str, String)> = Vec::new();
    // alg none, with and without a signature.
    let none = b64(&json!({"alg": "none", "typ": "at+jwt", "kid": key.kid}));
    attacks.push(("alg none", format!("{none}.{}.", b64(&good))));
    attacks.push((
        "alg none, any signature",
        format!("{none}.{}.c2ln", b64(&good)),
    ));
    // HS256 keyed with the public key, in the forms an attacker finds it.
    let jwk = serde_json::to_vec(&key.jwk).unwrap();
    let point = [
        URL_SAFE_NO_PAD.decode(&key.jwk.x).unwrap(),
        URL_SAFE_NO_PAD.decode(&key.jwk.y).unwrap(),
    ]
    .concat();
    for secret in [jwk, point] {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid.clone());
        let forged =
            jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(&secret)).unwrap();
        attacks.push(("HS256 with the public key", forged));
    }
    // Missing iss, aud, sub.
    for claim in ["iss", "aud", "sub", "exp", "iat"] {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(claim);
        attacks.push(("missing claim", sign(&gateway, Some("at+jwt"), &claims)));
    }
    // Wrong typ: an ID token, a client assertion, a DPoP proof, none at all.
    for typ in [
        Some("JWT"),
        Some("client-authentication+jwt"),
        Some("dpop+jwt"),
        None,
    ] {
        attacks.push(("wrong typ", sign(&gateway, typ, &good)));
    }
    // Wrong issuer or audience.
    for (claim, value) in [
        ("iss", "https://evil.example"),
        ("aud", "https://bank.example"),
    ] {
        let mut claims = good.clone();
        claims[claim] = json!(value);
        attacks.push(("wrong iss/aud", sign(&gateway, Some("at+jwt"), &claims)));
    }
    let now = Utc::now().timestamp();
    // iat in the future.
    let mut future = good.clone();
    future["iat"] = json!(now + 60);
    attacks.push(("iat in the future", sign(&gateway, Some("at+jwt"), &future)));
    // Expired beyond the 5 s leeway.
    let mut expired = good.clone();
    expired["exp"] = json!(now - 6);
    expired["iat"] = json!(now - 66);
    attacks.push(("expired", sign(&gateway, Some("at+jwt"), &expired)));
    // Signed by another ES256 key under the gateway's kid.
    let other = bankgate::jose::keys::SigningKey::generate().unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    attacks.push((
        "another key",
        jsonwebtoken::encode(&header, &good, &other.encoding).unwrap(),
    ));

    for (attack, token) in attacks {
        let (status, body) = platform.get(&token, "/v1/accounts").await.unwrap();
        assert_eq!(status, 401, "{attack}: {body}");
    }
    // Within the leeway an expired token still passes (the leeway is at most 5 s).
    let mut recent = good.clone();
    recent["exp"] = json!(now - 2);
    assert_eq!(
        status_of(platform, &sign(&gateway, Some("at+jwt"), &recent)).await,
        200
    );
}

async fn tokens_only_come_in_the_authorization_header(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = connect(&gateway.platform, "u-query").await;
    let http = &gateway.platform.http;
    for url in [
        format!(
            "{}/v1/accounts?access_token={}",
            gateway.base, token.access_token
        ),
        format!(
            "{}/v1/consents/{}?access_token={}",
            gateway.base, token.consent_id, token.access_token
        ),
    ] {
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 401, "{url}");
    }
    let response = http
        .post(format!("{}/v1/accounts", gateway.base))
        .form(&[("access_token", token.access_token.as_str())])
        .send()
        .await
        .unwrap();
    assert!(response.status() == 401 || response.status() == 405);
    assert_eq!(status_of(&gateway.platform, &token.access_token).await, 200);
}

async fn pkce_downgrades_are_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let details = serde_json::to_string(&[account_information(
        "demo-bank",
        "balance-alerts",
        BALANCE_SCOPES,
        "u-pkce",
    )])
    .unwrap();
    let verifier = "v".repeat(43);
    let s256 = bankgate::crypto::pkce_s256(&verifier);
    let base = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("authorization_details", details.as_str()),
    ];
    for (attack, extra) in [
        ("no challenge", vec![]),
        (
            "plain",
            vec![
                ("code_challenge", verifier.as_str()),
                ("code_challenge_method", "plain"),
            ],
        ),
        ("no method", vec![("code_challenge", s256.as_str())]),
        (
            "short challenge",
            vec![("code_challenge", "abc"), ("code_challenge_method", "S256")],
        ),
    ] {
        let form: Vec<(&str, &str)> = base.iter().copied().chain(extra).collect();
        let answer = platform
            .send(reqwest::Method::POST, "/oauth/par", None, Some(&form))
            .await
            .unwrap();
        assert_eq!(answer.status, 400, "{attack}: {:?}", answer.json());
        assert_eq!(answer.json()["error"], "invalid_request", "{attack}");
    }
    // A code exchanged without its verifier, or with another one, gives nothing.
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-pkce");
    let pushed = platform.push(&detail).await.unwrap();
    let code = platform
        .approve(&pushed, &mut Default::default())
        .await
        .unwrap();
    let other_verifier = "w".repeat(43);
    for (verifier, error, description) in [
        (None, "invalid_request", "code_verifier is required"),
        (
            Some(other_verifier.as_str()),
            "invalid_grant",
            "PKCE verification failed: code_verifier does not match the code_challenge",
        ),
    ] {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ];
        form.extend(verifier.map(|verifier| ("code_verifier", verifier)));
        let answer = platform
            .send(reqwest::Method::POST, "/oauth/token", None, Some(&form))
            .await
            .unwrap();
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["error"], error);
        assert_eq!(answer.json()["error_description"], description);
    }
    // Neither attempt redeemed the code: the right verifier still does, once.
    platform.exchange(&code, &pushed).await.unwrap();
}

async fn a_replayed_code_revokes_everything_issued_from_it(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-replay");
    let pushed = platform.push(&detail).await.unwrap();
    let code = platform
        .approve(&pushed, &mut Default::default())
        .await
        .unwrap();
    let token = platform.exchange(&code, &pushed).await.unwrap();
    assert_eq!(status_of(platform, &token.access_token).await, 200);
    let refreshed = platform
        .refresh(token.refresh_token.as_deref().unwrap())
        .await
        .unwrap();

    let error = platform
        .exchange(&code, &pushed)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid_grant"), "{error}");

    // Everything issued from the code is dead: both access tokens and the refresh token.
    assert_eq!(status_of(platform, &token.access_token).await, 401);
    assert_eq!(status_of(platform, &refreshed.access_token).await, 401);
    let error = platform
        .refresh(token.refresh_token.as_deref().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid_grant"), "{error}");
    let consent = gateway
        .app
        .store
        .consent(&token.consent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(consent.status, bankgate::consent::ConsentStatus::Revoked);
    let events = gateway.audit_of(&token.consent_id).await;
    let revoked = events
        .iter()
        .find(|event| event["action"] == "consent_revoked")
        .expect("audited");
    assert_eq!(revoked["reason"], "authorization code replayed");
}

async fn redirect_uri_variants_are_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let details = serde_json::to_string(&[account_information(
        "demo-bank",
        "balance-alerts",
        BALANCE_SCOPES,
        "u-redirect",
    )])
    .unwrap();
    let challenge = bankgate::crypto::pkce_s256(&"v".repeat(43));
    for variant in [
        "https://platform.example/callback/",
        "https://PLATFORM.example/callback",
        "https://platform.example/Callback",
        "https://platform.example/callback?x=1",
        "https://platform.example/callback#frag",
        "http://platform.example/callback",
        "https://platform.example:443/callback",
        "https://platform.example.evil.example/callback",
        "https://platform.example/callback/../evil",
    ] {
        let form = [
            ("response_type", "code"),
            ("redirect_uri", variant),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("authorization_details", details.as_str()),
        ];
        let answer = gateway
            .platform
            .send(reqwest::Method::POST, "/oauth/par", None, Some(&form))
            .await
            .unwrap();
        assert_eq!(answer.status, 400, "{variant}");
        assert_eq!(answer.json()["error"], "invalid_request", "{variant}");
    }
    // At the token endpoint the redirect URI must be the one of the request, exactly.
    let platform = &gateway.platform;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-redirect");
    let pushed = platform.push(&detail).await.unwrap();
    let code = platform
        .approve(&pushed, &mut Default::default())
        .await
        .unwrap();
    let answer = platform
        .send(
            reqwest::Method::POST,
            "/oauth/token",
            None,
            Some(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "https://platform.example/callback/"),
                ("code_verifier", pushed.code_verifier.as_str()),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert_eq!(
        answer.json()["error_description"],
        "redirect_uri differs from the one of the authorization request"
    );
}

async fn pushed_requests_are_single_use_and_bound_to_their_client(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-par");
    let answer = {
        let pushed = platform.push(&detail).await.unwrap();
        // The request_uri lives at most 600 s (here 90 s).
        let screen = |client_id: &str, request_uri: &str| {
            let mut url = url::Url::parse(&format!("{}/oauth/authorize", gateway.base)).unwrap();
            url.query_pairs_mut()
                .append_pair("client_id", client_id)
                .append_pair("request_uri", request_uri);
            platform.http.get(url).send()
        };
        // Another client's id with this request_uri: refused (and the request is spent).
        let other = gateway
            .another_platform("other-app", &["balance-alerts"])
            .await;
        let response = screen(&other.client_id, &pushed.request_uri).await.unwrap();
        assert_eq!(response.status(), 400);
        let pushed = platform.push(&detail).await.unwrap();
        assert_eq!(
            screen("messenger", &pushed.request_uri)
                .await
                .unwrap()
                .status(),
            200
        );
        // Used once: the second time it is refused.
        screen("messenger", &pushed.request_uri).await.unwrap()
    };
    assert_eq!(answer.status(), 400);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("unknown, used or expired")
    );
    // Without PAR there is no authorization request at all.
    let response = platform
        .http
        .get(format!(
            "{}/oauth/authorize?client_id=messenger&response_type=code&redirect_uri={REDIRECT_URI}",
            gateway.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        gateway.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["require_pushed_authorization_requests"], true);
    let pushed = platform
        .send(
            reqwest::Method::POST,
            "/oauth/par",
            None,
            Some(&[("response_type", "code")]),
        )
        .await
        .unwrap();
    assert_eq!(pushed.status, 400);
}

/// Walks to the bank's authorization URL by hand; returns the gateway's `state` for the bank.
async fn to_the_bank(gateway: &TestGateway, user_ref: &str, decision: &str) -> reqwest::Response {
    let platform = &gateway.platform;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, user_ref);
    let pushed = platform.push(&detail).await.unwrap();
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", gateway.base)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "messenger")
        .append_pair("request_uri", &pushed.request_uri);
    let html = platform
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).unwrap() + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    platform
        .http
        .post(format!("{}/oauth/authorize", gateway.base))
        .form(&[
            ("consent_id", field("consent_id").as_str()),
            ("screen_token", field("screen_token").as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap()
}

fn location(response: &reqwest::Response) -> url::Url {
    url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn every_authorization_response_names_the_issuer(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    // Success: code, state and iss (the flow client checks all three).
    let (_, trace) = gateway
        .platform
        .connect(&account_information(
            "demo-bank",
            "balance-alerts",
            BALANCE_SCOPES,
            "u-iss",
        ))
        .await
        .unwrap();
    let success = url::Url::parse(&trace.platform_redirect).unwrap();
    assert_eq!(
        param(&success, "iss").as_deref(),
        Some(gateway.base.as_str())
    );

    // The user cancels on the consent screen: error, state and iss.
    let cancelled = location(&to_the_bank(&gateway, "u-iss", "deny").await);
    assert!(cancelled.as_str().starts_with(REDIRECT_URI));
    assert_eq!(param(&cancelled, "error").as_deref(), Some("access_denied"));
    assert!(param(&cancelled, "state").is_some());
    assert_eq!(
        param(&cancelled, "iss").as_deref(),
        Some(gateway.base.as_str())
    );

    // The bank refuses: the consent is rejected and the user returns with the error and iss.
    let to_bank = location(&to_the_bank(&gateway, "u-iss", "approve").await);
    let state = param(&to_bank, "state").unwrap();
    let bank_issuer = gateway
        .app
        .banks
        .get("demo-bank")
        .unwrap()
        .bank
        .manifest
        .oauth
        .issuer
        .clone()
        .unwrap();
    let mut callback = url::Url::parse(&format!("{}/oauth/callback", gateway.base)).unwrap();
    callback
        .query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair("state", &state)
        .append_pair("iss", &bank_issuer);
    let response = gateway.platform.http.get(callback).send().await.unwrap();
    let refused = location(&response);
    assert_eq!(param(&refused, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        param(&refused, "iss").as_deref(),
        Some(gateway.base.as_str())
    );
    let consent_id = {
        let management = gateway.platform.client_credentials().await.unwrap();
        let (_, list) = gateway
            .platform
            .get(&management, "/v1/consents?user_ref=u-iss")
            .await
            .unwrap();
        list["consents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|consent| consent["status"] == "rejected")
            .count()
    };
    assert_eq!(
        consent_id, 2,
        "cancelled and bank-refused consents are rejected"
    );
}

async fn bank_mix_up_is_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let to_bank = location(&to_the_bank(&gateway, "u-mixup", "approve").await);
    // The bank approves; we take its redirect back and tamper with it.
    let from_bank = gateway
        .platform
        .http
        .get(to_bank.as_str())
        .send()
        .await
        .unwrap();
    let callback = location(&from_bank);
    let code = param(&callback, "code").unwrap();
    let state = param(&callback, "state").unwrap();
    let issuer = param(&callback, "iss").unwrap();
    let call = |pairs: Vec<(&'static str, String)>| {
        let mut url = url::Url::parse(&format!("{}/oauth/callback", gateway.base)).unwrap();
        for (name, value) in &pairs {
            url.query_pairs_mut().append_pair(name, value);
        }
        gateway.platform.http.get(url).send()
    };
    // Another authorization server's iss, or none: refused, state spent.
    let response = call(vec![
        ("code", code.clone()),
        ("state", state.clone()),
        ("iss", "https://evil-bank.example".into()),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        !response.headers().contains_key("location"),
        "never redirects"
    );
    // The state was single use: even the genuine response is refused now.
    let response = call(vec![
        ("code", code.clone()),
        ("state", state),
        ("iss", issuer.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    // A state we never issued (another session's, or forged).
    let response = call(vec![
        ("code", code),
        ("state", "forged-state".into()),
        ("iss", issuer),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    // And missing iss on a fresh flow.
    let to_bank = location(&to_the_bank(&gateway, "u-mixup2", "approve").await);
    let callback = location(
        &gateway
            .platform
            .http
            .get(to_bank.as_str())
            .send()
            .await
            .unwrap(),
    );
    let response = call(vec![
        ("code", param(&callback, "code").unwrap()),
        ("state", param(&callback, "state").unwrap()),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
}

async fn dpop_replay_wrong_htu_wrong_ath_and_wrong_key_are_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = gateway.fapi_platform("fapi-app", None).await;
    let token = connect(&platform, "u-dpop").await;
    let key = platform.dpop_key().unwrap();
    let url = format!("{}/v1/accounts", gateway.base);
    // The platform's first request fetched a nonce for us.
    assert_eq!(status_of(&platform, &token.access_token).await, 200);
    let nonce = platform.dpop_nonce().unwrap();
    let send = |proof: Option<String>, scheme: &str| {
        let mut request = platform
            .http
            .get(&url)
            .header("authorization", format!("{scheme} {}", token.access_token));
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };
    let www = |response: &reqwest::Response| {
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned()
    };

    // A good proof works once; its replay is refused.
    let proof = key
        .dpop_proof("GET", &url, Some(&token.access_token), Some(&nonce))
        .unwrap();
    assert_eq!(
        send(Some(proof.clone()), "DPoP").await.unwrap().status(),
        200
    );
    let replayed = send(Some(proof), "DPoP").await.unwrap();
    assert_eq!(replayed.status(), 401);
    assert!(
        www(&replayed).contains("invalid_dpop_proof"),
        "{}",
        www(&replayed)
    );

    let attempts = [
        (
            "wrong htu",
            key.dpop_proof(
                "GET",
                &format!("{}/v1/accounts/acc_1/balances", gateway.base),
                Some(&token.access_token),
                Some(&nonce),
            ),
        ),
        (
            "wrong htm",
            key.dpop_proof("POST", &url, Some(&token.access_token), Some(&nonce)),
        ),
        (
            "wrong ath",
            key.dpop_proof("GET", &url, Some("another token"), Some(&nonce)),
        ),
        ("no ath", key.dpop_proof("GET", &url, None, Some(&nonce))),
        (
            "another key",
            ClientKey::generate_ed25519().unwrap().dpop_proof(
                "GET",
                &url,
                Some(&token.access_token),
                Some(&nonce),
            ),
        ),
    ];
    for (attack, proof) in attempts {
        let response = send(Some(proof.unwrap()), "DPoP").await.unwrap();
        assert_eq!(response.status(), 401, "{attack}");
        assert!(www(&response).starts_with("DPoP "), "{attack}");
        assert!(www(&response).contains("invalid_dpop_proof"), "{attack}");
    }
    // A private key in the header: refused.
    let mut private_jwk = key.jwk().clone();
    private_jwk["d"] = json!("AAAA");
    let now = Utc::now().timestamp();
    let proof = key
        .sign_raw(
            &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": private_jwk}),
            &json!({"jti": "p", "htm": "GET", "htu": url, "iat": now,
                    "ath": access_token_hash(&token.access_token), "nonce": nonce}),
        )
        .unwrap();
    assert_eq!(send(Some(proof), "DPoP").await.unwrap().status(), 401);
    // No proof, the bearer scheme, a stale nonce.
    assert_eq!(send(None, "DPoP").await.unwrap().status(), 401);
    let proof = key
        .dpop_proof("GET", &url, Some(&token.access_token), Some(&nonce))
        .unwrap();
    let as_bearer = send(Some(proof), "Bearer").await.unwrap();
    assert_eq!(as_bearer.status(), 401);
    assert!(www(&as_bearer).starts_with("DPoP "));
    let proof = key
        .dpop_proof("GET", &url, Some(&token.access_token), Some("0.AAAA"))
        .unwrap();
    let stale = send(Some(proof), "DPoP").await.unwrap();
    assert_eq!(stale.status(), 401);
    assert!(www(&stale).contains("use_dpop_nonce"));
    assert!(
        stale.headers().contains_key("dpop-nonce"),
        "a fresh nonce comes with it"
    );
}

async fn client_assertions_are_checked_strictly(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let key = ClientKey::generate_es256().unwrap();
    gateway
        .app
        .registrar
        .register(
            &gateway.app.policies.current(),
            Registration {
                client_id: "jwt-app".into(),
                name: "jwt-app".into(),
                role: Role::Platform,
                redirect_uris: vec![REDIRECT_URI.into()],
                allowed_purposes: vec!["balance-alerts".into()],
                token_endpoint_auth_method: AuthMethod::PrivateKeyJwt,
                jwks: Some(key.jwks()),
                // Bearer tokens: these requests carry no DPoP proof (development setting).
                dpop_bound_access_tokens: Some(false),
                ..Registration::default()
            },
        )
        .await
        .unwrap();
    let http = &gateway.platform.http;
    let token_request = |assertion: String| {
        http.post(format!("{}/oauth/token", gateway.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
    };
    let now = Utc::now().timestamp();
    let good = json!({
        "iss": "jwt-app", "sub": "jwt-app", "aud": gateway.base,
        "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
    });
    let header = json!({"alg": "ES256", "kid": key.kid});
    // Control, then its replay.
    let assertion = key.sign_raw(&header, &good).unwrap();
    assert_eq!(
        token_request(assertion.clone()).await.unwrap().status(),
        200
    );
    let replay = token_request(assertion).await.unwrap();
    assert_eq!(replay.status(), 401, "replayed jti");

    let fresh = |edit: &dyn Fn(&mut Value)| {
        let mut claims = good.clone();
        claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
        edit(&mut claims);
        claims
    };
    let attacker = ClientKey::generate_es256().unwrap();
    let mut attacker_jwk = attacker.jwk().clone();
    attacker_jwk.as_object_mut().unwrap().remove("kid");
    let token_endpoint = format!("{}/oauth/token", gateway.base);
    let attacks: Vec<(&str, String)> = vec![
        (
            "aud is the token endpoint",
            key.sign_raw(&header, &fresh(&|c| c["aud"] = json!(token_endpoint)))
                .unwrap(),
        ),
        (
            "aud is another server",
            key.sign_raw(
                &header,
                &fresh(&|c| c["aud"] = json!("https://other.example")),
            )
            .unwrap(),
        ),
        (
            "exp ten minutes ahead",
            key.sign_raw(&header, &fresh(&|c| c["exp"] = json!(now + 600)))
                .unwrap(),
        ),
        (
            "expired",
            key.sign_raw(&header, &fresh(&|c| c["exp"] = json!(now - 30)))
                .unwrap(),
        ),
        (
            "iat in the future",
            key.sign_raw(&header, &fresh(&|c| c["iat"] = json!(now + 60)))
                .unwrap(),
        ),
        (
            "no jti",
            key.sign_raw(
                &header,
                &fresh(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            )
            .unwrap(),
        ),
        (
            "iss is not sub",
            key.sign_raw(&header, &fresh(&|c| c["iss"] = json!("messenger")))
                .unwrap(),
        ),
        (
            "typ of an access token",
            key.sign_raw(
                &json!({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}),
                &fresh(&|_| {}),
            )
            .unwrap(),
        ),
        (
            "embedded jwk of the attacker",
            attacker
                .sign_raw(
                    &json!({"alg": "ES256", "jwk": attacker_jwk}),
                    &fresh(&|_| {}),
                )
                .unwrap(),
        ),
        (
            "jku",
            attacker
                .sign_raw(
                    &json!({"alg": "ES256", "kid": key.kid, "jku": "https://evil.example/jwks"}),
                    &fresh(&|_| {}),
                )
                .unwrap(),
        ),
        (
            "unregistered key under the registered kid",
            attacker.sign_raw(&header, &fresh(&|_| {})).unwrap(),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": key.kid})),
                b64(&fresh(&|_| {}))
            ),
        ),
    ];
    for (attack, assertion) in attacks {
        let response = token_request(assertion).await.unwrap();
        assert_eq!(response.status(), 401, "{attack}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{attack}");
    }
    // HS256 keyed with the registered public key.
    let hs = jsonwebtoken::encode(
        &{
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(key.kid.clone());
            header
        },
        &fresh(&|_| {}),
        &EncodingKey::from_secret(&serde_json::to_vec(key.jwk()).unwrap()),
    )
    .unwrap();
    assert_eq!(token_request(hs).await.unwrap().status(), 401);
    // Two methods at once.
    let both = http
        .post(format!("{}/oauth/token", gateway.base))
        .header(
            "authorization",
            bankgate::jose::basic_header("jwt-app", "x"),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            (
                "client_assertion",
                key.sign_raw(&header, &fresh(&|_| {})).unwrap().as_str(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    // A client_secret_basic client cannot switch to assertions, nor a JWT client to secrets.
    let basic_as_jwt = key
        .sign_raw(
            &header,
            &fresh(&|c| {
                c["iss"] = json!("messenger");
                c["sub"] = json!("messenger");
            }),
        )
        .unwrap();
    assert_eq!(token_request(basic_as_jwt).await.unwrap().status(), 401);
}

async fn bola_matrix_across_two_platforms(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let a = &gateway.platform;
    let b = gateway
        .another_platform("other-app", &["balance-alerts", "fraud-alerts"])
        .await;
    let token_a = connect(a, "u-shared").await;
    let token_b = connect(&b, "u-shared").await;
    let management_a = a.client_credentials().await.unwrap();
    let management_b = b.client_credentials().await.unwrap();
    // Controls: each reaches its own consent.
    let own = format!("/v1/consents/{}", token_a.consent_id);
    assert_eq!(a.get(&management_a, &own).await.unwrap().0, 200);
    assert_eq!(a.get(&token_a.access_token, &own).await.unwrap().0, 200);

    // A's tokens on B's consent id: not found, whatever the verb.
    let theirs = format!("/v1/consents/{}", token_b.consent_id);
    for token in [&management_a, &token_a.access_token] {
        assert_eq!(a.get(token, &theirs).await.unwrap().0, 404);
        assert_eq!(a.delete(token, &theirs).await.unwrap().0, 404);
    }
    // Listing with B's user_ref shows only A's consents.
    let (_, list) = a
        .get(&management_a, "/v1/consents?user_ref=u-shared")
        .await
        .unwrap();
    let ids: Vec<&str> = list["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|consent| consent["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [token_a.consent_id.as_str()]);
    // B's consent is untouched and works for B.
    assert_eq!(status_of(&b, &token_b.access_token).await, 200);
    let (_, consent) = b.get(&management_b, &theirs).await.unwrap();
    assert_eq!(consent["status"], "authorised");

    // Accounts: an account id known only under B's consent is not reachable with A's token
    // (account references are looked up per consent).
    gateway
        .app
        .store
        .put_account_refs(
            &token_b.consent_id,
            &[bankgate::adapters::AccountRef {
                account_id: "acc_only_b".into(),
                bank_ref: "bank-ref-b".into(),
            }],
        )
        .await
        .unwrap();
    for path in [
        "/v1/accounts/acc_only_b/balances",
        "/v1/accounts/acc_only_b/transactions",
        "/v1/accounts/acc_only_b",
    ] {
        let (status, body) = a.get(&token_a.access_token, path).await.unwrap();
        assert!(status == 404 || status == 403, "{path}: {status} {body}");
    }
    // A's consent-bound token cannot be re-pointed at B's consent: a token naming B's consent
    // with A's client id is refused by the consent layer.
    let (forged, claims) = gateway
        .app
        .tokens
        .issue("messenger", &token_b.consent_id, "accounts balances")
        .unwrap();
    // Recorded, as if the gateway had issued it: the consent check is what refuses it.
    gateway
        .app
        .store
        .record_access_token(&bankgate::oauth::IssuedToken {
            jti: claims.jti.clone(),
            client_id: claims.client_id.clone(),
            consent_id: Some(claims.sub.clone()),
            expires_at: chrono::DateTime::from_timestamp(claims.exp, 0).unwrap(),
        })
        .await
        .unwrap();
    let (status, body) = a.get(&forged, "/v1/accounts").await.unwrap();
    assert_eq!(status, 403);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/consent-not-found"),
        "{body}"
    );
    // A's management token carries no data scope.
    let (status, _) = a.get(&management_a, "/v1/accounts").await.unwrap();
    assert_eq!(status, 403);
    // A's token cannot read B's webhook log either (each sees its own).
    let (status, log) = a
        .get(&management_a, "/v1/webhooks/deliveries")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(log["deliveries"].as_array().unwrap().is_empty());
}
