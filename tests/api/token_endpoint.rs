//! The token and revocation endpoints as a standard OAuth client meets them (issue 11, items 6,
//! 7 and 11): a failed code exchange leaves the code for the corrected retry and only a second
//! redemption of a code that produced tokens is a replay; refusals say which check failed;
//! malformed requests are RFC 6749 `invalid_request`; revoking a refresh token ends its consent.

use bankgate::consent::ConsentStatus;
use bankgate::demo::{FlowTrace, PlatformClient, Pushed, account_information};
use bankgate::model::Scope;
use bankgate::oauth::AuthorizationCode;
use chrono::{Duration, Utc};
use serde_json::Value;

use super::support::{REDIRECT_URI, StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    a_failed_code_exchange_leaves_the_code_for_the_retry,
    concurrent_redemptions_give_one_token_response,
    token_refusals_say_which_check_failed,
    malformed_oauth_requests_are_invalid_request,
    revoking_a_refresh_token_ends_the_consent,
);

/// A code for a new consent of `user_ref`, and the pushed request it came from.
async fn code_for(platform: &PlatformClient, user_ref: &str) -> (String, Pushed) {
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, user_ref);
    let pushed = platform.push(&detail).await.unwrap();
    let code = platform
        .approve(&pushed, &mut FlowTrace::default())
        .await
        .unwrap();
    (code, pushed)
}

/// A form POST to the token endpoint as `platform`: status and JSON body.
async fn token_request(platform: &PlatformClient, form: &[(&str, &str)]) -> (u16, Value) {
    let answer = platform
        .send(reqwest::Method::POST, "/oauth/token", None, Some(form))
        .await
        .unwrap();
    (answer.status, answer.json())
}

#[track_caller]
fn assert_refused(answer: &(u16, Value), error: &str, description: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 400, "{body}");
    assert_eq!(body["error"], error, "{body}");
    let said = body["error_description"].as_str().unwrap_or_default();
    assert!(said.contains(description), "{description:?} not in {body}");
}

async fn consent_status(gateway: &TestGateway, consent_id: &str) -> ConsentStatus {
    gateway
        .app
        .store
        .consent(consent_id)
        .await
        .unwrap()
        .expect("consent")
        .status
}

/// The consent is revoked, its access token refused, and the revocation audited once: that
/// event.
async fn assert_ended(gateway: &TestGateway, consent_id: &str, access_token: &str) -> Value {
    assert_eq!(
        consent_status(gateway, consent_id).await,
        ConsentStatus::Revoked
    );
    let (status, _) = gateway
        .platform
        .get(access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let events = gateway.audit_of(consent_id).await;
    let revoked: Vec<&Value> = events
        .iter()
        .filter(|event| event["action"] == "consent_revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{events:?}");
    revoked[0].clone()
}

async fn a_failed_code_exchange_leaves_the_code_for_the_retry(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let (code, pushed) = code_for(platform, "u-retry").await;
    let exchange = |redirect_uri: Option<&'static str>, verifier: String| {
        let code = code.clone();
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("code_verifier", verifier),
            ];
            if let Some(redirect_uri) = redirect_uri {
                form.push(("redirect_uri", redirect_uri.to_owned()));
            }
            let form: Vec<(&str, &str)> = form
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            token_request(platform, &form).await
        }
    };

    // What a standard client gets wrong first: a wrong verifier, a missing or different
    // redirect URI. Each is refused and says why; none redeems the code.
    let wrong_verifier = "x".repeat(43);
    assert_refused(
        &exchange(Some(REDIRECT_URI), wrong_verifier).await,
        "invalid_grant",
        "PKCE verification failed",
    );
    assert_refused(
        &exchange(None, pushed.code_verifier.clone()).await,
        "invalid_request",
        "redirect_uri is required",
    );
    assert_refused(
        &exchange(
            Some("https://platform.example/other"),
            pushed.code_verifier.clone(),
        )
        .await,
        "invalid_grant",
        "redirect_uri differs",
    );

    // The corrected request gets the tokens, and the consent stays authorised.
    let token = platform.exchange(&code, &pushed).await.unwrap();
    assert_eq!(
        consent_status(&gateway, &token.consent_id).await,
        ConsentStatus::Authorised
    );
    let (status, body) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let events = gateway.audit_of(&token.consent_id).await;
    assert!(
        !events
            .iter()
            .any(|event| event["action"] == "consent_revoked"),
        "{events:?}"
    );

    // Redeeming it again after it produced tokens is a replay: everything is revoked.
    assert_refused(
        &exchange(Some(REDIRECT_URI), pushed.code_verifier.clone()).await,
        "invalid_grant",
        "already redeemed",
    );
    let revoked = assert_ended(&gateway, &token.consent_id, &token.access_token).await;
    assert_eq!(revoked["reason"], "authorization code replayed");
}

async fn concurrent_redemptions_give_one_token_response(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let (code, pushed) = code_for(platform, "u-race").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", pushed.code_verifier.as_str()),
    ];
    // Eight correct requests at once: every one passes the checks, one redeems the code.
    let answers =
        futures_util::future::join_all((0..8).map(|_| token_request(platform, &form))).await;
    let issued: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(issued.len(), 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
    // The others were redemptions of a code that produced tokens: replays.
    let consent_id = issued[0]["consent_id"].as_str().unwrap();
    assert_eq!(
        consent_status(&gateway, consent_id).await,
        ConsentStatus::Revoked
    );
}

async fn token_refusals_say_which_check_failed(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let (code, pushed) = code_for(platform, "u-checks").await;
    let form = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT_URI.to_owned()),
            ("code_verifier", pushed.code_verifier.clone()),
        ]
    };
    let send = |client: &PlatformClient, form: Vec<(&'static str, String)>| {
        let client = client.via(&gateway.base).unwrap();
        async move {
            let form: Vec<(&str, &str)> = form
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            token_request(&client, &form).await
        }
    };

    // Another platform presenting the code.
    let other = gateway
        .another_platform("other-app", &["balance-alerts"])
        .await;
    assert_refused(
        &send(&other, form(&code)).await,
        "invalid_grant",
        "issued to another client",
    );
    assert_refused(
        &send(platform, form("no-such-code")).await,
        "invalid_grant",
        "the authorization code is unknown",
    );
    assert_refused(
        &send(platform, vec![("grant_type", "authorization_code".into())]).await,
        "invalid_request",
        "code is required",
    );
    assert_refused(
        &send(platform, vec![("grant_type", "password".into())]).await,
        "unsupported_grant_type",
        "\"password\" is not supported",
    );
    // An expired code (stored as the gateway stores codes, a minute past its end).
    let token = platform.exchange(&code, &pushed).await.unwrap();
    let expired = "expired-code";
    gateway
        .app
        .store
        .insert_code(&AuthorizationCode {
            code_hash: bankgate::crypto::sha256_hex(expired.as_bytes()),
            consent_id: token.consent_id.clone(),
            client_id: "messenger".into(),
            redirect_uri: REDIRECT_URI.into(),
            code_challenge: bankgate::crypto::pkce_s256(&pushed.code_verifier),
            expires_at: Utc::now() - Duration::seconds(60),
            dpop_jkt: None,
        })
        .await
        .unwrap();
    assert_refused(
        &send(platform, form(expired)).await,
        "invalid_grant",
        "the authorization code expired",
    );
    // None of these touched the consent.
    assert_eq!(
        consent_status(&gateway, &token.consent_id).await,
        ConsentStatus::Authorised
    );

    // Refresh tokens: unknown, another client's, missing.
    let refresh_token = token.refresh_token.clone().unwrap();
    let refresh = |token: &str| {
        vec![("grant_type", "refresh_token"), ("refresh_token", token)]
            .into_iter()
            .map(|(name, value)| (name, value.to_owned()))
            .collect::<Vec<_>>()
    };
    assert_refused(
        &send(platform, refresh("no-such-token")).await,
        "invalid_grant",
        "the refresh token is unknown",
    );
    assert_refused(
        &send(&other, refresh(&refresh_token)).await,
        "invalid_grant",
        "issued to another client",
    );
    assert_refused(
        &send(platform, vec![("grant_type", "refresh_token".into())]).await,
        "invalid_request",
        "refresh_token is required",
    );
    // Control: the token itself refreshes; once its consent is revoked, it says so.
    platform.refresh(&refresh_token).await.unwrap();
    let management = platform.client_credentials().await.unwrap();
    let (status, _) = platform
        .delete(&management, &format!("/v1/consents/{}", token.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 204);
    assert_refused(
        &send(platform, refresh(&refresh_token)).await,
        "invalid_grant",
        "revoked",
    );
    // No description quotes a secret.
    let (_, body) = send(platform, form(&code)).await;
    let description = body["error_description"].as_str().unwrap();
    assert!(
        !description.contains(&code) && !description.contains(&pushed.code_verifier),
        "{description}"
    );
}

async fn malformed_oauth_requests_are_invalid_request(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-form");
    let details = serde_json::to_string(&[&detail]).unwrap();
    let challenge = bankgate::crypto::pkce_s256(&"v".repeat(43));
    let par = [
        ("response_type", "code"),
        ("client_id", "messenger"),
        ("redirect_uri", REDIRECT_URI),
        ("state", "s-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("authorization_details", details.as_str()),
    ];
    let post = |path: &'static str, form: Vec<(&'static str, &'static str)>| async move {
        platform
            .send(reqwest::Method::POST, path, None, Some(&form))
            .await
            .unwrap()
    };
    #[track_caller]
    fn check(answer: &bankgate::demo::Answer, description: &str) {
        assert_eq!(answer.status, 400, "{:?}", answer.json());
        let content_type = answer.headers["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        assert_eq!(answer.json()["error"], "invalid_request");
        let said = answer.json()["error_description"].to_string();
        assert!(said.contains(description), "{description:?} not in {said}");
    }
    // Control: the pushed request as it is.
    let answer = platform
        .send(reqwest::Method::POST, "/oauth/par", None, Some(&par))
        .await
        .unwrap();
    assert_eq!(answer.status, 201, "{:?}", answer.json());
    // Each parameter once (RFC 6749 §3.1), at PAR and at the token endpoint.
    let mut twice: Vec<(&str, &str)> = par.to_vec();
    twice.push(("state", "s-2"));
    let answer = platform
        .send(reqwest::Method::POST, "/oauth/par", None, Some(&twice))
        .await
        .unwrap();
    check(&answer, "state is repeated");
    let answer = post(
        "/oauth/token",
        vec![
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    check(&answer, "grant_type is repeated");
    let answer = post("/oauth/token", vec![("scope", "x")]).await;
    check(&answer, "grant_type");
    let answer = post("/oauth/revoke", vec![("token", "a"), ("token", "b")]).await;
    check(&answer, "token is repeated");
    // Not a form at all.
    let answer = platform
        .http
        .post(format!("{}/oauth/token", gateway.base))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let answer = bankgate::demo::Answer {
        status: answer.status().as_u16(),
        headers: answer.headers().clone(),
        body: answer.bytes().await.unwrap(),
    };
    check(&answer, "application/x-www-form-urlencoded");
}

async fn revoking_a_refresh_token_ends_the_consent(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let (code, pushed) = code_for(platform, "u-revoke-refresh").await;
    let token = platform.exchange(&code, &pushed).await.unwrap();
    let refresh_token = token.refresh_token.clone().unwrap();
    // Another platform revoking it changes nothing (and learns nothing: 200 all the same).
    let other = gateway
        .another_platform("other-app", &["balance-alerts"])
        .await;
    assert_eq!(other.revoke_token(&refresh_token).await.unwrap(), 200);
    assert_eq!(
        consent_status(&gateway, &token.consent_id).await,
        ConsentStatus::Authorised
    );

    assert_eq!(platform.revoke_token(&refresh_token).await.unwrap(), 200);
    let revoked = assert_ended(&gateway, &token.consent_id, &token.access_token).await;
    assert_eq!(revoked["actor"], "messenger");
    assert_eq!(
        revoked["reason"],
        "refresh token revoked by the platform (RFC 7009)"
    );
    let error = platform
        .refresh(&refresh_token)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid_grant"), "{error}");
    // Repeating it is harmless.
    assert_eq!(platform.revoke_token(&refresh_token).await.unwrap(), 200);
}
