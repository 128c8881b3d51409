//! FAPI 2.0 consent brokering end to end (issue 5): PAR + PKCE + `private_key_jwt` + DPoP,
//! refresh and revocation, consent management, expiry, webhooks, and revocation seen by a
//! second gateway instance on the same PostgreSQL database.

use std::sync::{Arc, Mutex};

use bankgate::adapters::bank_oauth::BankGrant;
use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use chrono::{Duration, Utc};
use serde_json::Value;

use super::support::{StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    refresh_tokens_are_bound_and_revocable,
    consents_are_listed_read_and_revoked_per_platform,
    dpop_required_clients_get_nothing_without_a_proof,
    expiry_and_webhooks_are_delivered_signed_with_retries,
    expired_bank_tokens_are_refreshed_before_use,
);

/// The issue's "must show": the whole flow with PAR + PKCE + DPoP + `private_key_jwt` on one
/// instance, revocation there, and the very next request denied on a second instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fapi_flow_then_revocation_is_seen_by_a_second_instance() {
    let first = TestGateway::start(StoreKind::Postgres).await;
    let second = first.second_instance().await;
    let platform = first.fapi_platform("fapi-messenger", None).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-fapi");

    let (token, trace) = platform.connect(&detail).await.expect("FAPI flow");
    assert!(trace.platform_redirect.contains("iss="), "RFC 9207 iss");
    assert_eq!(token.token_type, "DPoP");
    let claims = first.app.tokens.verify(&token.access_token).unwrap();
    let key = platform.dpop_key().unwrap();
    assert_eq!(
        claims.jkt(),
        Some(key.thumbprint()),
        "cnf.jkt binds the DPoP key"
    );
    let refresh_token = token.refresh_token.clone().expect("refresh token");

    // The bound token works on both instances, each request with a fresh proof.
    let (status, body) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let on_second = platform.via(&second.base).unwrap();
    let (status, body) = on_second
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "second instance: {body}");

    // Without its proof the stolen token is worth nothing, as DPoP or as bearer.
    let stolen = PlatformClient::new(&first.base, "fapi-messenger", "", "").unwrap();
    let (status, _) = stolen
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401);

    // The platform revokes the consent with its management token on the first instance…
    let management = platform.client_credentials().await.unwrap();
    let (status, body) = platform
        .delete(&management, &format!("/v1/consents/{}", token.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 204, "{body}");

    // …and the very next request on the second instance is denied, and so is a refresh.
    let (status, body) = on_second
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    let error = on_second
        .refresh(&refresh_token)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid_grant"), "{error}");
    let (status, consent) = on_second
        .get(&management, &format!("/v1/consents/{}", token.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 200, "{consent}");
    assert_eq!(consent["status"], "revoked");

    // Audited once, by the platform.
    let events = second.audit_of(&token.consent_id).await;
    let revoked: Vec<&Value> = events
        .iter()
        .filter(|event| event["action"] == "consent_revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{events:?}");
    assert_eq!(revoked[0]["actor"], "fapi-messenger");

    // The bank grant was revoked at the bank: its token no longer opens the bank's API.
    assert_bank_token_revoked(&first, &token.consent_id).await;
}

/// Reads the consent's sealed bank grant and calls the sandbox bank with it: 401.
async fn assert_bank_token_revoked(gateway: &TestGateway, consent_id: &str) {
    let stored = gateway.app.store.grant(consent_id).await.unwrap().unwrap();
    let plaintext = gateway
        .app
        .sealer
        .open(consent_id.as_bytes(), &stored.sealed)
        .unwrap();
    let grant: BankGrant = serde_json::from_slice(&plaintext).unwrap();
    let bank = gateway.app.banks.get("demo-bank").unwrap();
    let response = reqwest::Client::new()
        .get(bank.bank.url("/v1/accounts"))
        .bearer_auth(&grant.access_token)
        .header("x-request-id", uuid::Uuid::new_v4().to_string())
        .header(
            "consent-id",
            grant.bank_consent_id.clone().unwrap_or_default(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the bank still honours the token");
}

async fn refresh_tokens_are_bound_and_revocable(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = gateway.fapi_platform("fapi-app", None).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-r");
    let (token, _) = platform.connect(&detail).await.unwrap();
    let refresh_token = token.refresh_token.clone().unwrap();

    // A refresh gives a new DPoP-bound access token, not a new refresh token (not rotated).
    let refreshed = platform.refresh(&refresh_token).await.unwrap();
    assert_eq!(refreshed.token_type, "DPoP");
    assert_eq!(refreshed.consent_id, token.consent_id);
    assert!(refreshed.refresh_token.is_none());
    assert_ne!(refreshed.access_token, token.access_token);
    let (status, _) = platform
        .get(&refreshed.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    // The refresh token never outlives the consent.
    let stored = gateway
        .app
        .store
        .refresh_token(&bankgate::crypto::sha256_hex(refresh_token.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    let consent = gateway
        .app
        .store
        .consent(&token.consent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.expires_at, consent.expires_at);

    // Bound to its client: another platform cannot use it.
    let other = gateway
        .another_platform("other-app", &["balance-alerts"])
        .await;
    let error = other.refresh(&refresh_token).await.unwrap_err().to_string();
    assert!(error.contains("invalid_grant"), "{error}");

    // RFC 7009: revoking an access token kills that token only…
    assert_eq!(
        platform
            .revoke_token(&refreshed.access_token)
            .await
            .unwrap(),
        200
    );
    let (status, _) = platform
        .get(&refreshed.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    // …another client's revocation of it does nothing, and unknown tokens answer 200 too…
    assert_eq!(other.revoke_token(&token.access_token).await.unwrap(), 200);
    assert_eq!(other.revoke_token("not-a-token").await.unwrap(), 200);
    let (status, _) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    // …and revoking the refresh token revokes every token of its grant.
    assert_eq!(platform.revoke_token(&refresh_token).await.unwrap(), 200);
    let (status, _) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let error = platform
        .refresh(&refresh_token)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid_grant"), "{error}");
}

async fn consents_are_listed_read_and_revoked_per_platform(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = &gateway.platform;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-list");
    let (first, _) = platform.connect(&detail).await.unwrap();
    let (second, _) = platform.connect(&detail).await.unwrap();
    let management = platform.client_credentials().await.unwrap();

    let (status, list) = platform
        .get(&management, "/v1/consents?user_ref=u-list")
        .await
        .unwrap();
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|consent| consent["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first.consent_id.as_str()) && ids.contains(&second.consent_id.as_str()));
    let (status, _) = platform.get(&management, "/v1/consents").await.unwrap();
    assert_eq!(status, 400, "user_ref is required");
    // A consent-bound token reads its own consent but cannot list.
    let (status, own) = platform
        .get(
            &first.access_token,
            &format!("/v1/consents/{}", first.consent_id),
        )
        .await
        .unwrap();
    assert_eq!((status, own["status"].as_str()), (200, Some("authorised")));
    assert_eq!(own["authorization_details"][0]["purpose"], "balance-alerts");
    let (status, _) = platform
        .get(
            &first.access_token,
            &format!("/v1/consents/{}", second.consent_id),
        )
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (status, _) = platform
        .get(&first.access_token, "/v1/consents?user_ref=u-list")
        .await
        .unwrap();
    assert_eq!(status, 403);

    // The user withdraws through the platform's app: the consent-bound token revokes itself.
    let path = format!("/v1/consents/{}", first.consent_id);
    let (status, _) = platform.delete(&first.access_token, &path).await.unwrap();
    assert_eq!(status, 204);
    let (status, _) = platform
        .get(&first.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, revoked) = platform.get(&management, &path).await.unwrap();
    assert_eq!(revoked["status"], "revoked", "{status} {revoked}");
    // Idempotent.
    let (status, _) = platform.delete(&management, &path).await.unwrap();
    assert_eq!(status, 204);

    // An operator revokes the other one.
    let path = format!("/v1/consents/{}", second.consent_id);
    let admin = gateway
        .platform
        .http
        .delete(format!(
            "{}/admin/consents/{}",
            gateway.base, second.consent_id
        ))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 404, "the admin API is off without a token");
    let (status, _) = platform
        .get(&second.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    bankgate::lifecycle::revoke(
        &gateway.app.lifecycle(),
        &gateway
            .app
            .store
            .consent(&second.consent_id)
            .await
            .unwrap()
            .unwrap(),
        "operator",
        "revoked by an operator",
    )
    .await
    .unwrap();
    let (status, _) = platform
        .get(&second.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (_, revoked) = platform.get(&management, &path).await.unwrap();
    assert_eq!(revoked["status"], "revoked");
    let events = gateway.audit_of(&second.consent_id).await;
    let revocation = events
        .iter()
        .find(|event| event["action"] == "consent_revoked")
        .expect("audited");
    assert_eq!(revocation["actor"], "operator");
}

async fn dpop_required_clients_get_nothing_without_a_proof(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = gateway.fapi_platform("fapi-strict", None).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-d");
    let pushed = platform.push(&detail).await.unwrap();
    let code = platform
        .approve(&pushed, &mut Default::default())
        .await
        .unwrap();
    // The same client without its DPoP key: same assertion key, no proofs.
    let key = bankgate::jose::ClientKey::generate_es256().unwrap();
    let without_dpop = PlatformClient::new(&gateway.base, "fapi-strict", "", "x")
        .unwrap()
        .with_private_key_jwt(key);
    // (Its assertion key is not registered either: the request fails at authentication.)
    let error = without_dpop
        .exchange(&code, &pushed)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid_client"), "{error}");
    let answer = platform
        .send(
            reqwest::Method::POST,
            "/oauth/token",
            None,
            Some(&[("grant_type", "client_credentials")]),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "with a proof");
    assert_eq!(answer.json()["token_type"], "DPoP");

    // Management tokens are bound too; without the key they are refused.
    let bare = platform_without_dpop(&platform);
    let answer = bare
        .send(
            reqwest::Method::POST,
            "/oauth/token",
            None,
            Some(&[("grant_type", "client_credentials")]),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "invalid_dpop_proof");
    // The code exchange without a proof is refused the same way; the code is not spent by it.
    let error = bare.exchange(&code, &pushed).await.unwrap_err().to_string();
    assert!(error.contains("invalid_dpop_proof"), "{error}");
    let token = platform.exchange(&code, &pushed).await.unwrap();
    assert_eq!(token.token_type, "DPoP");
}

/// The same client and assertion key, with no DPoP key.
fn platform_without_dpop(platform: &PlatformClient) -> PlatformClient {
    platform.without_dpop().unwrap()
}

/// What the receiver keeps (content type, body) and the statuses it still has to answer.
pub(crate) type Received = Arc<Mutex<Vec<(String, String)>>>;
type Statuses = Arc<Mutex<std::vec::IntoIter<u16>>>;

/// A webhook receiver: answers each POST with the next status of `statuses` (then 202), and
/// keeps what it received.
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) received: Received,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn receiver(statuses: Vec<u16>) -> Receiver {
    use axum::routing::post;
    let received: Received = Arc::default();
    let statuses = Arc::new(Mutex::new(statuses.into_iter()));
    let state = (received.clone(), statuses);
    let app = axum::Router::new()
        .route(
            "/hooks",
            post(
                |axum::extract::State((received, statuses)): axum::extract::State<(
                    Received,
                    Statuses,
                )>,
                 headers: axum::http::HeaderMap,
                 body: String| async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    received.lock().unwrap().push((content_type, body));
                    let status = statuses.lock().unwrap().next().unwrap_or(202);
                    axum::http::StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Receiver {
        url,
        received,
        _stop: stop,
    }
}

/// Verifies a delivery as a platform would: JWKS key by `kid`, ES256, typ, iss, aud.
pub(crate) async fn verify_delivery(gateway: &TestGateway, body: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(body).unwrap();
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet =
        reqwest::get(format!("{}/.well-known/jwks.json", gateway.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[gateway.base.as_str()]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(
        body,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("the delivery verifies with the published key")
    .claims
}

async fn expiry_and_webhooks_are_delivered_signed_with_retries(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    // The first attempt fails (500); the retry succeeds.
    let hooks = receiver(vec![500]).await;
    let platform = gateway.fapi_platform("hooked-app", Some(&hooks.url)).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-w");
    let (token, _) = platform.connect(&detail).await.unwrap();
    let consent = gateway
        .app
        .store
        .consent(&token.consent_id)
        .await
        .unwrap()
        .unwrap();
    let maintenance = gateway.app.maintenance().unwrap();

    // Six days before expiry: consent.expiring, enqueued once however often the task runs.
    let notice_time = consent.expires_at - Duration::days(6);
    let report = maintenance.run_once(notice_time).await.unwrap();
    assert_eq!(report.expiring_notices, 1);
    assert_eq!(
        (report.deliveries.retried, report.deliveries.delivered),
        (1, 0)
    );
    let report = maintenance.run_once(notice_time).await.unwrap();
    assert_eq!(report.expiring_notices, 0);
    assert_eq!(report.deliveries.delivered, 0, "not due before its backoff");
    let report = maintenance
        .run_once(notice_time + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(report.deliveries.delivered, 1, "the retry");

    // Past expiry: the consent expires once, is audited once, and the platform is told.
    let after = consent.expires_at + Duration::seconds(1);
    let report = maintenance.run_once(after).await.unwrap();
    assert_eq!((report.expired, report.deliveries.delivered), (1, 1));
    assert_eq!(maintenance.run_once(after).await.unwrap().expired, 0);
    let stored = gateway
        .app
        .store
        .consent(&token.consent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, bankgate::consent::ConsentStatus::Expired);
    // (The task ran at a simulated time, 90 days ahead: the token's own record was purged as
    // expired, so the token is no longer one the gateway knows.)
    let (status, body) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(
        body["type"].as_str().unwrap().ends_with("/token-unknown"),
        "{body}"
    );
    let events = gateway.audit_of(&token.consent_id).await;
    assert_eq!(
        events
            .iter()
            .filter(|event| event["action"] == "consent_expired")
            .count(),
        1
    );

    let received = hooks.received.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        3,
        "expiring twice (one retry), expired once"
    );
    let mut kinds = Vec::new();
    for (content_type, body) in &received {
        assert_eq!(content_type, "application/secevent+jwt");
        let claims = verify_delivery(&gateway, body, "hooked-app").await;
        assert_eq!(claims["txn"], token.consent_id.as_str());
        let (uri, event) = claims["events"].as_object().unwrap().iter().next().unwrap();
        assert_eq!(event["consent_id"], token.consent_id.as_str());
        kinds.push((uri.clone(), claims["jti"].as_str().unwrap().to_owned()));
    }
    assert_eq!(kinds[0], kinds[1], "a retry is the same event (same jti)");
    assert!(kinds[0].0.ends_with("/consent.expiring"));
    assert!(kinds[2].0.ends_with("/consent.expired"));

    // The delivery log, as the platform sees it.
    let management = platform.client_credentials().await.unwrap();
    let (status, log) = platform
        .get(&management, "/v1/webhooks/deliveries")
        .await
        .unwrap();
    assert_eq!(status, 200, "{log}");
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().all(|d| d["status"] == "delivered"));
    let expiring = deliveries
        .iter()
        .find(|d| d["event"] == "consent.expiring")
        .unwrap();
    assert_eq!(expiring["attempts"], 2);

    // A revocation is delivered too (another consent).
    let (second, _) = platform.connect(&detail).await.unwrap();
    let (status, _) = platform
        .delete(&management, &format!("/v1/consents/{}", second.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 204);
    let report = maintenance.run_once(Utc::now()).await.unwrap();
    assert_eq!(report.deliveries.delivered, 1);
    let received = hooks.received.lock().unwrap().clone();
    let claims = verify_delivery(&gateway, &received[3].1, "hooked-app").await;
    let event = &claims["events"]["https://bankgate.dev/events/consent.revoked"];
    assert_eq!(event["consent_id"], second.consent_id.as_str());
    assert_eq!(event["reason"], "revoked by the platform");
}

fn open_grant(gateway: &TestGateway, stored: &bankgate::adapters::StoredGrant) -> BankGrant {
    let plaintext = gateway
        .app
        .sealer
        .open(stored.consent_id.as_bytes(), &stored.sealed)
        .unwrap();
    serde_json::from_slice(&plaintext).unwrap()
}

async fn expired_bank_tokens_are_refreshed_before_use(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-bank");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    // The bank's access token has (as far as bankgate knows) expired.
    let stored = gateway
        .app
        .store
        .grant(&token.consent_id)
        .await
        .unwrap()
        .unwrap();
    let mut grant = open_grant(&gateway, &stored);
    assert!(
        grant.refresh_token.is_some(),
        "the sandbox gives refresh tokens"
    );
    let old_access_token = grant.access_token.clone();
    grant.expires_at = Some(Utc::now() - Duration::minutes(1));
    let sealed = gateway
        .app
        .sealer
        .seal(
            token.consent_id.as_bytes(),
            &serde_json::to_vec(&grant).unwrap(),
        )
        .unwrap();
    gateway
        .app
        .store
        .put_grant(&bankgate::adapters::StoredGrant {
            sealed,
            updated_at: Utc::now(),
            ..stored
        })
        .await
        .unwrap();

    // Concurrent requests all succeed, on one refreshed grant.
    let requests = (0..4).map(|_| gateway.platform.get(&token.access_token, "/v1/accounts"));
    for result in futures_util::future::join_all(requests).await {
        let (status, body) = result.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let refreshed = open_grant(
        &gateway,
        &gateway
            .app
            .store
            .grant(&token.consent_id)
            .await
            .unwrap()
            .unwrap(),
    );
    assert_ne!(refreshed.access_token, old_access_token);
    assert!(refreshed.expires_at.unwrap() > Utc::now() + Duration::minutes(5));
    assert_eq!(
        refreshed.refresh_token, grant.refresh_token,
        "kept when not rotated"
    );
}
