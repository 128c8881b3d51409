//! Re-consent before expiry (issue 5, item 5 of "what it must do"): a platform extends an
//! authorised consent with a pushed request naming it; the user confirms on the consent screen
//! and at the bank; the same consent id lives on with a new expiry, audited.

use bankgate::adapters::bank_oauth::BankGrant;
use bankgate::consent::AuthorizationDetail;
use bankgate::demo::{FlowTrace, account_information};
use bankgate::model::Scope;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::support::{StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    an_authorised_consent_is_extended_in_place,
    extensions_are_refused_unless_they_only_change_the_lifetime,
    a_declined_extension_changes_nothing,
);

async fn grant_of(gateway: &TestGateway, consent_id: &str) -> BankGrant {
    let stored = gateway.app.store.grant(consent_id).await.unwrap().unwrap();
    let plaintext = gateway
        .app
        .sealer
        .open(consent_id.as_bytes(), &stored.sealed)
        .unwrap();
    serde_json::from_slice(&plaintext).unwrap()
}

/// The consent as its platform reads it.
async fn consent_view(gateway: &TestGateway, consent_id: &str) -> Value {
    let management = gateway.platform.client_credentials().await.unwrap();
    let (status, consent) = gateway
        .platform
        .get(&management, &format!("/v1/consents/{consent_id}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{consent}");
    consent
}

fn expires_at(consent: &Value) -> DateTime<Utc> {
    consent["expires_at"].as_str().unwrap().parse().unwrap()
}

/// A short consent: 10 days.
fn short(user_ref: &str) -> AuthorizationDetail {
    AuthorizationDetail {
        expires_in_days: 10,
        ..account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, user_ref)
    }
}

/// The granted details sent back with `consent_id` and a new lifetime.
fn extension_of(granted: &AuthorizationDetail, consent_id: &str, days: u32) -> AuthorizationDetail {
    AuthorizationDetail {
        consent_id: Some(consent_id.to_owned()),
        expires_in_days: days,
        ..granted.clone()
    }
}

async fn bank_consent_status(gateway: &TestGateway, bank_consent_id: &str) -> Value {
    let bank = gateway.app.banks.get("demo-bank").unwrap();
    let answer: Value = reqwest::Client::new()
        .get(
            bank.bank
                .url(&format!("/v1/consents/{bank_consent_id}/status")),
        )
        .header("x-request-id", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["consentStatus"].clone()
}

async fn an_authorised_consent_is_extended_in_place(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let (first, _) = gateway.platform.connect(&short("u-extend")).await.unwrap();
    let before = consent_view(&gateway, &first.consent_id).await;
    let old_expiry = expires_at(&before);
    assert!(old_expiry < Utc::now() + Duration::days(11));
    let old_bank_consent = grant_of(&gateway, &first.consent_id)
        .await
        .bank_consent_id
        .unwrap();

    // PAR naming the consent, the user confirms on the screen and at the bank.
    let extension = extension_of(&first.authorization_details[0], &first.consent_id, 90);
    let pushed = gateway.platform.push(&extension).await.unwrap();
    let mut trace = FlowTrace::default();
    let code = gateway.platform.approve(&pushed, &mut trace).await.unwrap();
    assert!(
        trace
            .consent_screen
            .contains("asks to keep seeing data from Demo Bank")
    );
    assert!(trace.consent_screen.contains("name=\"extension\""));
    let second = gateway.platform.exchange(&code, &pushed).await.unwrap();

    // The same consent, authorised until the new expiry; the new token reads data.
    assert_eq!(second.consent_id, first.consent_id);
    let after = consent_view(&gateway, &first.consent_id).await;
    assert_eq!(after["status"], "authorised");
    let new_expiry = expires_at(&after);
    assert!(new_expiry > old_expiry + Duration::days(70), "{after}");
    assert!(new_expiry <= Utc::now() + Duration::days(90));
    assert_eq!(after["created_at"], before["created_at"]);
    let (status, body) = gateway
        .platform
        .get(&second.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let refresh = second.refresh_token.clone().expect("a refresh token");
    let stored = gateway
        .app
        .store
        .refresh_token(&bankgate::crypto::sha256_hex(refresh.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.expires_at, new_expiry,
        "the refresh token lives as long"
    );

    // Audited: created and authorised once, then authorised again as an extension.
    let events = gateway.audit_of(&first.consent_id).await;
    let actions: Vec<&str> = events
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .filter(|action| action.starts_with("consent_"))
        .collect();
    assert_eq!(
        actions,
        [
            "consent_created",
            "consent_authorised",
            "consent_authorised"
        ],
        "{events:?}"
    );
    let extended = events
        .iter()
        .rfind(|event| event["action"] == "consent_authorised")
        .unwrap();
    assert!(
        extended["reason"]
            .as_str()
            .unwrap()
            .starts_with("extended until"),
        "{extended}"
    );

    // At the bank: a new bank-side consent; the previous one ended.
    let new_bank_consent = grant_of(&gateway, &first.consent_id)
        .await
        .bank_consent_id
        .unwrap();
    assert_ne!(new_bank_consent, old_bank_consent);
    assert_eq!(
        bank_consent_status(&gateway, &new_bank_consent).await,
        "valid"
    );
    assert_eq!(
        bank_consent_status(&gateway, &old_bank_consent).await,
        "terminatedByTpp"
    );
}

async fn extensions_are_refused_unless_they_only_change_the_lifetime(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let (token, _) = gateway.platform.connect(&short("u-refuse")).await.unwrap();
    let granted = token.authorization_details[0].clone();
    let refused = async |detail: AuthorizationDetail| {
        gateway
            .platform
            .push(&detail)
            .await
            .err()
            .expect("refused at PAR")
            .to_string()
    };

    // More scopes, another user, another purpose: not an extension.
    let mut wider = extension_of(&granted, &token.consent_id, 90);
    wider.scopes.push(Scope::Transactions);
    let error = refused(wider).await;
    assert!(error.contains("invalid_authorization_details"), "{error}");
    assert!(error.contains("only expires_in_days changes"), "{error}");
    let error = refused(AuthorizationDetail {
        user_ref: "someone-else".into(),
        ..extension_of(&granted, &token.consent_id, 90)
    })
    .await;
    assert!(error.contains("only expires_in_days changes"), "{error}");

    // Another platform cannot extend (or learn about) this consent.
    let other = gateway
        .another_platform("other-app", &["balance-alerts"])
        .await;
    let error = other
        .push(&extension_of(&granted, &token.consent_id, 90))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("unknown consent"), "{error}");

    // The lifetime is still clamped by the purpose's policy (balance-alerts: 90 days).
    let pushed = gateway
        .platform
        .push(&extension_of(&granted, &token.consent_id, 400))
        .await
        .unwrap();
    let code = gateway
        .platform
        .approve(&pushed, &mut FlowTrace::default())
        .await
        .unwrap();
    let extended = gateway.platform.exchange(&code, &pushed).await.unwrap();
    assert!(
        expires_at(&consent_view(&gateway, &extended.consent_id).await)
            <= Utc::now() + Duration::days(90)
    );

    // A revoked consent cannot be extended.
    let (status, _) = gateway
        .platform
        .delete(
            &extended.access_token,
            &format!("/v1/consents/{}", token.consent_id),
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    let error = refused(extension_of(&granted, &token.consent_id, 90)).await;
    assert!(error.contains("only an authorised consent"), "{error}");
}

async fn a_declined_extension_changes_nothing(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let (token, _) = gateway.platform.connect(&short("u-decline")).await.unwrap();
    let before = consent_view(&gateway, &token.consent_id).await;
    let pushed = gateway
        .platform
        .push(&extension_of(
            &token.authorization_details[0],
            &token.consent_id,
            90,
        ))
        .await
        .unwrap();

    // The user opens the extension's screen and cancels.
    let http = &gateway.platform.http;
    let mut screen = url::Url::parse(&format!("{}/oauth/authorize", gateway.base)).unwrap();
    screen
        .query_pairs_mut()
        .append_pair("client_id", "messenger")
        .append_pair("request_uri", &pushed.request_uri);
    let html = http.get(screen).send().await.unwrap().text().await.unwrap();
    let hidden = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).unwrap() + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let form = [
        ("consent_id", hidden("consent_id")),
        ("screen_token", hidden("screen_token")),
        ("extension", hidden("extension")),
        ("decision", "deny".to_owned()),
    ];
    let back = http
        .post(format!("{}/oauth/authorize", gateway.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(back.status().is_redirection());
    let location = url::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(param("error").as_deref(), Some("access_denied"));
    assert_eq!(param("state"), Some(pushed.state.clone()));
    assert_eq!(param("iss").as_deref(), Some(gateway.base.as_str()));

    // The consent is as it was and keeps working; the screen cannot be replayed.
    assert_eq!(consent_view(&gateway, &token.consent_id).await, before);
    let (status, _) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let replay = http
        .post(format!("{}/oauth/authorize", gateway.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
}
