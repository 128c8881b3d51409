//! The access decision end to end: every denial kind answers with its own problem type and is
//! audited as one complete `deny` event carrying the request's id; the token checks, the
//! challenges and the budget wording; and the decision's one read of the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bankgate::consent::{Consent, ConsentStatus};
use bankgate::demo::account_information;
use bankgate::http::access::{self, AccessCheck};
use bankgate::http::authn::Verifier;
use bankgate::model::Scope;
use bankgate::oauth::IssuedToken;
use bankgate::store::StoreError;
use bankgate::store::access::{AccessQuery, AccessReads, AccessState, BudgetSpend, DataQuery};
use chrono::{Duration, NaiveDate, Utc};
use http::HeaderMap;
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

use super::support::{StoreKind, TestGateway};
use bankgate::model::WireName;

on_both_stores!(
    every_denial_kind_answers_and_is_audited,
    challenges_follow_the_scheme,
    token_checks_beyond_the_signature,
    the_audit_log_is_for_the_compliance_role,
    a_path_without_a_route_is_not_a_data_request,
    the_decision_reads_the_store_once,
    a_replayed_dpop_proof_is_an_audited_denial,
);

const BALANCES: &[Scope] = &[Scope::Accounts, Scope::Balances];

/// An answer: status, headers, problem body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn get(gateway: &TestGateway, authorization: Option<String>, path: &str) -> Answer {
    get_as(
        gateway,
        authorization,
        path,
        &uuid::Uuid::new_v4().to_string(),
    )
    .await
}

async fn get_as(
    gateway: &TestGateway,
    authorization: Option<String>,
    path: &str,
    request_id: &str,
) -> Answer {
    let mut request = gateway
        .platform
        .http
        .get(format!("{}{path}", gateway.base))
        .header("x-request-id", request_id);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// A consent of `messenger` for balance alerts, authorised a day ago for a month.
fn consent(id: &str) -> Consent {
    let now = Utc::now();
    Consent {
        id: id.to_owned(),
        client_id: "messenger".to_owned(),
        bank_id: "demo-bank".to_owned(),
        purpose: "balance-alerts".to_owned(),
        scopes: BALANCES.to_vec(),
        history_days: 0,
        user_ref: "u-access".to_owned(),
        status: ConsentStatus::Authorised,
        policy_hash: "sha256:granted-under".to_owned(),
        redirect_uri: super::support::REDIRECT_URI.to_owned(),
        state: None,
        code_challenge: "challenge".to_owned(),
        dpop_jkt: None,
        created_at: now - Duration::days(1),
        expires_at: now + Duration::days(30),
    }
}

/// Records a token as issued by the gateway.
async fn record(gateway: &TestGateway, jti: &str, client_id: &str, consent_id: &str) {
    gateway
        .app
        .store
        .record_access_token(&IssuedToken {
            jti: jti.to_owned(),
            client_id: client_id.to_owned(),
            consent_id: Some(consent_id.to_owned()),
            expires_at: Utc::now() + Duration::minutes(5),
        })
        .await
        .unwrap();
}

/// How a case's token is on record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Record {
    Recorded,
    Unrecorded,
    Revoked,
}

/// One denial kind: the consent the token names (changed from [`consent`]; `None`: no such
/// consent), the token's client and scope, the path, and what the answer must be.
struct Case {
    slug: &'static str,
    status: u16,
    consent: Option<fn(&mut Consent)>,
    client: &'static str,
    scope: &'static str,
    path: &'static str,
    token: Record,
}

const BASE: Case = Case {
    slug: "",
    status: 403,
    consent: Some(|_| {}),
    client: "messenger",
    scope: "accounts balances",
    path: "/v1/accounts",
    token: Record::Recorded,
};

fn cases() -> Vec<Case> {
    vec![
        Case {
            slug: "token-unknown",
            status: 401,
            token: Record::Unrecorded,
            ..BASE
        },
        Case {
            slug: "token-revoked",
            status: 401,
            token: Record::Revoked,
            ..BASE
        },
        Case {
            slug: "consent-not-found",
            consent: None,
            ..BASE
        },
        Case {
            slug: "consent-not-authorised",
            consent: Some(|c| c.status = ConsentStatus::AwaitingAuthorisation),
            ..BASE
        },
        Case {
            slug: "consent-revoked",
            consent: Some(|c| c.status = ConsentStatus::Revoked),
            ..BASE
        },
        Case {
            slug: "consent-expired",
            consent: Some(|c| c.expires_at = Utc::now() - Duration::hours(1)),
            ..BASE
        },
        Case {
            slug: "scope-not-granted",
            path: "/v1/identity",
            scope: "accounts balances identity",
            ..BASE
        },
        Case {
            slug: "platform-not-registered",
            consent: Some(|c| c.client_id = "ghost-app".to_owned()),
            client: "ghost-app",
            ..BASE
        },
        Case {
            slug: "purpose-withdrawn",
            consent: Some(|c| c.purpose = "retired-purpose".to_owned()),
            ..BASE
        },
        Case {
            slug: "platform-not-approved",
            consent: Some(|c| c.purpose = "personal-finance".to_owned()),
            ..BASE
        },
        Case {
            slug: "region-not-allowed",
            consent: Some(|c| c.client_id = "us-app".to_owned()),
            client: "us-app",
            ..BASE
        },
        Case {
            slug: "purpose-refused",
            consent: Some(|c| c.scopes = vec![Scope::Accounts, Scope::Transactions]),
            scope: "accounts transactions",
            path: "/v1/accounts/acc-1/transactions",
            ..BASE
        },
        Case {
            slug: "consent-outlived-policy",
            consent: Some(|c| c.created_at = Utc::now() - Duration::days(100)),
            ..BASE
        },
        Case {
            slug: "budget-spent",
            status: 429,
            ..BASE
        },
    ]
}

/// Spends `consent_id`'s unattended budget of today (four a day for balance alerts) through
/// the store, as four earlier requests would have.
async fn spend_budget(gateway: &TestGateway, jti: &str, consent_id: &str) {
    let now = Utc::now();
    for _ in 0..4 {
        let state = gateway
            .app
            .store
            .access_state(&AccessQuery {
                jti: jti.to_owned(),
                client_id: "messenger".to_owned(),
                proof: None,
                data: Some(DataQuery {
                    consent_id: consent_id.to_owned(),
                    scope: Scope::Accounts,
                    account_id: None,
                    now,
                    budget: Some(BudgetSpend {
                        day: now.date_naive(),
                        limits: vec![("balance-alerts".to_owned(), 4)],
                    }),
                }),
            })
            .await
            .unwrap();
        assert!(state.budget.is_some_and(|count| count.admitted));
    }
}

/// The one event of `consent_id` with `request_id`.
async fn event_of(gateway: &TestGateway, consent_id: &str, request_id: &str) -> Value {
    let events: Vec<Value> = gateway
        .audit_of(consent_id)
        .await
        .into_iter()
        .filter(|event| event["request_id"] == request_id)
        .collect();
    assert_eq!(events.len(), 1, "one event for {request_id}: {events:?}");
    events[0].clone()
}

async fn every_denial_kind_answers_and_is_audited(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let store = gateway.app.store.clone();
    let mut us_app = store.client("messenger").await.unwrap().unwrap();
    us_app.client_id = "us-app".to_owned();
    us_app.region = "US".to_owned();
    store.insert_client(&us_app).await.unwrap();
    let policies = gateway.app.policies.current();

    for case in cases() {
        let consent_id = format!("consent-{}", case.slug);
        let owned = case.consent.map(|change| {
            let mut consent = consent(&consent_id);
            change(&mut consent);
            consent
        });
        if let Some(consent) = &owned {
            store.insert_consent(consent).await.unwrap();
        }
        let (token, claims) = gateway
            .app
            .tokens
            .issue(case.client, &consent_id, case.scope)
            .unwrap();
        if case.token != Record::Unrecorded {
            record(&gateway, &claims.jti, case.client, &consent_id).await;
        }
        if case.token == Record::Revoked {
            assert!(store.revoke_access_token(&claims.jti).await.unwrap());
        }
        if case.slug == "budget-spent" {
            spend_budget(&gateway, &claims.jti, &consent_id).await;
        }
        let request_id = format!("request-{}", case.slug);
        let answer = get_as(
            &gateway,
            Some(format!("Bearer {token}")),
            case.path,
            &request_id,
        )
        .await;
        let slug = case.slug;
        assert_eq!(answer.status, case.status, "{slug}: {}", answer.body);
        assert_eq!(
            answer.body["type"],
            format!("https://bankgate.dev/problems/{slug}"),
            "{slug}"
        );
        assert_eq!(answer.body["status"], case.status, "{slug}");
        assert_eq!(
            answer.body["instance"],
            format!("urn:request:{request_id}"),
            "{slug}"
        );

        let event = event_of(&gateway, &consent_id, &request_id).await;
        assert_eq!(event["action"], "data_access", "{slug}");
        assert_eq!(event["decision"], "deny", "{slug}");
        assert_eq!(event["reason"], answer.body["detail"], "{slug}");
        assert_eq!(event["actor"], case.client, "{slug}");
        assert_eq!(event["platform"], case.client, "{slug}");
        assert_eq!(event["consent"], consent_id.as_str(), "{slug}");
        let category = bankgate::access::DataPath::parse(case.path).unwrap().scope;
        assert_eq!(event["categories"], json!([category.as_str()]), "{slug}");
        match &owned {
            Some(consent) => {
                assert_eq!(event["bank"], "demo-bank", "{slug}");
                assert_eq!(event["purpose"], consent.purpose.as_str(), "{slug}");
                let hash = policies.get(&consent.purpose).map(|p| p.hash.clone());
                assert_eq!(event["policy_hash"], json!(hash), "{slug}");
                let user = event["user_ref"].as_str().unwrap_or_default();
                assert!(user.starts_with("up_"), "{slug}: pseudonymised: {event}");
            }
            None => {
                for absent in ["bank", "purpose", "policy_hash", "user_ref"] {
                    assert_eq!(event[absent], Value::Null, "{slug}: {absent}");
                }
            }
        }
        if slug == "budget-spent" {
            // Issue 11, item 11: the limit and how to declare the user present.
            let detail = answer.body["detail"].as_str().unwrap();
            assert!(detail.contains("(4 a day)"), "{detail}");
            assert!(
                detail.contains("X-User-Present: true") && detail.contains("PSU-IP-Address"),
                "{detail}"
            );
            let retry_after: u64 = answer.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=86_400).contains(&retry_after));
            // With the user present the same consent still reads (and the bank is asked).
            let present = gateway
                .platform
                .http
                .get(format!("{}/v1/accounts", gateway.base))
                .header("authorization", format!("Bearer {token}"))
                .header("x-user-present", "true")
                .header("psu-ip-address", "203.0.113.7")
                .send()
                .await
                .unwrap();
            assert_ne!(present.status().as_u16(), 429);
        }
    }

    // Issue 11, item 12: an account id of another consent is a denial, with its request id.
    let detail = account_information("demo-bank", "balance-alerts", BALANCES, "u-foreign");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let request_id = "request-account-not-in-consent";
    let answer = get_as(
        &gateway,
        Some(format!("Bearer {}", token.access_token)),
        "/v1/accounts/acc-of-someone-else/balances",
        request_id,
    )
    .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert_eq!(
        answer.body["type"],
        "https://bankgate.dev/problems/account-not-in-consent"
    );
    let event = event_of(&gateway, &token.consent_id, request_id).await;
    assert_eq!(event["decision"], "deny");
    assert_eq!(event["reason"], "no such account under this consent");
    assert_eq!(event["bank"], "demo-bank");
    assert_eq!(event["purpose"], "balance-alerts");
    assert_eq!(event["categories"], json!(["balances"]));
    // The refused request gave its budget unit back: four unattended reads still pass.
    for _ in 0..4 {
        let answer = get(
            &gateway,
            Some(format!("Bearer {}", token.access_token)),
            "/v1/accounts",
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let answer = get(
        &gateway,
        Some(format!("Bearer {}", token.access_token)),
        "/v1/accounts",
    )
    .await;
    assert_eq!(answer.status, 429, "{}", answer.body);
}

fn challenges(answer: &Answer) -> Vec<String> {
    answer
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

/// Issue 11, item 8: RFC 6750 §3.1 and RFC 9449 §7.1 challenges.
async fn challenges_follow_the_scheme(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCES, "u-challenge");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();

    // No credentials: a bare challenge per scheme, no error code; on data and other routes.
    for path in [
        "/v1/accounts",
        "/v1/consents/some-consent",
        "/v1/audit/events",
    ] {
        let answer = get(&gateway, None, path).await;
        assert_eq!(answer.status, 401, "{path}");
        assert_eq!(
            challenges(&answer),
            ["Bearer", "DPoP algs=\"ES256 EdDSA\""],
            "{path}"
        );
    }
    // A bearer token that does not verify.
    let answer = get(&gateway, Some("Bearer not-a-token".into()), "/v1/accounts").await;
    assert_eq!(answer.status, 401);
    let [challenge] = challenges(&answer).try_into().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    // The DPoP scheme: DPoP challenges, with the algorithms the gateway accepts.
    let answer = get(&gateway, Some("DPoP not-a-token".into()), "/v1/accounts").await;
    let [challenge] = challenges(&answer).try_into().unwrap();
    assert!(
        challenge.starts_with("DPoP error=\"invalid_token\"")
            && challenge.ends_with("algs=\"ES256 EdDSA\""),
        "{challenge}"
    );
    // A revoked token, on a data route and elsewhere, in the scheme it came with.
    let claims = gateway.app.tokens.verify(&token.access_token).unwrap();
    assert!(
        gateway
            .app
            .store
            .revoke_access_token(&claims.jti)
            .await
            .unwrap()
    );
    for path in [
        "/v1/accounts",
        &format!("/v1/consents/{}", token.consent_id),
    ] {
        let answer = get(
            &gateway,
            Some(format!("Bearer {}", token.access_token)),
            path,
        )
        .await;
        assert_eq!(answer.status, 401, "{path}");
        let [challenge] = challenges(&answer).try_into().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{path}: {challenge}"
        );
        let answer = get(&gateway, Some(format!("DPoP {}", token.access_token)), path).await;
        assert_eq!(answer.status, 401, "{path}");
        let [challenge] = challenges(&answer).try_into().unwrap();
        assert!(
            challenge.starts_with("DPoP error=\"invalid_token\""),
            "{path}: {challenge}"
        );
    }
}

/// Signs `claims` with the gateway's key as an access token.
fn sign(gateway: &TestGateway, claims: &Value) -> String {
    let key = gateway.app.tokens.signing_key();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// Issue 11, item 3: `nbf`, the lifetime, and tokens never recorded.
async fn token_checks_beyond_the_signature(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCES, "u-tokens");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let now = Utc::now().timestamp();
    let claims = |jti: &str, extra: Value| {
        let mut claims = json!({
            "iss": gateway.base, "aud": gateway.base, "sub": token.consent_id,
            "client_id": "messenger", "scope": "accounts balances",
            "exp": now + 60, "iat": now, "jti": jti,
        });
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    };
    for jti in ["good", "not-yet", "too-long"] {
        record(&gateway, jti, "messenger", &token.consent_id).await;
    }
    let status = |token: String| {
        let gateway = &gateway;
        async move {
            get(gateway, Some(format!("Bearer {token}")), "/v1/accounts")
                .await
                .status
        }
    };
    assert_eq!(
        status(sign(&gateway, &claims("good", json!({})))).await,
        200
    );
    assert_eq!(
        status(sign(
            &gateway,
            &claims("not-yet", json!({"nbf": now + 120}))
        ))
        .await,
        401,
        "nbf in the future"
    );
    assert_eq!(
        status(sign(
            &gateway,
            &claims("too-long", json!({"exp": now + 3600}))
        ))
        .await,
        401,
        "a lifetime beyond access_token_ttl_secs"
    );
    // Well signed, never recorded.
    let answer = get(
        &gateway,
        Some(format!(
            "Bearer {}",
            sign(&gateway, &claims("never-recorded", json!({})))
        )),
        "/v1/accounts",
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.body["type"],
        "https://bankgate.dev/problems/token-unknown"
    );
    // On the other routes too.
    let unrecorded = sign(
        &gateway,
        &json!({
            "iss": gateway.base, "aud": gateway.base, "sub": "compliance-office",
            "client_id": "compliance-office", "scope": "audit:read",
            "exp": now + 60, "iat": now, "jti": "never-recorded-either",
        }),
    );
    let answer = get(
        &gateway,
        Some(format!("Bearer {unrecorded}")),
        "/v1/audit/events",
    )
    .await;
    assert_eq!(answer.status, 401);
}

/// Issue 11, item 3: the client's registered role decides, not the scope a token carries.
async fn the_audit_log_is_for_the_compliance_role(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let (platform_token, claims) = gateway
        .app
        .tokens
        .issue("messenger", "messenger", "audit:read consents:manage")
        .unwrap();
    record(&gateway, &claims.jti, "messenger", "messenger").await;
    let answer = get(
        &gateway,
        Some(format!("Bearer {platform_token}")),
        "/v1/audit/events",
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let officer = gateway.compliance.client_credentials().await.unwrap();
    let answer = get(
        &gateway,
        Some(format!("Bearer {officer}")),
        "/v1/audit/events",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

async fn a_path_without_a_route_is_not_a_data_request(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCES, "u-paths");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let bearer = Some(format!("Bearer {}", token.access_token));
    let before = gateway.audit_of(&token.consent_id).await.len();
    for path in [
        "/v1/accounts/acc-1",
        "/v1/accounts/",
        "/v1/accounts/acc-1/owners",
    ] {
        let answer = get(&gateway, bearer.clone(), path).await;
        assert_eq!(answer.status, 404, "{path}");
    }
    assert_eq!(
        gateway.audit_of(&token.consent_id).await.len(),
        before,
        "no data decision was recorded"
    );
}

/// Counts the request-state reads it passes on.
struct Counting {
    inner: Arc<dyn AccessReads>,
    reads: Arc<AtomicUsize>,
}

#[async_trait]
impl AccessReads for Counting {
    async fn access_state(&self, query: &AccessQuery) -> Result<AccessState, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.access_state(query).await
    }

    async fn refund_access(&self, consent_id: &str, day: NaiveDate) -> Result<(), StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.refund_access(consent_id, day).await
    }
}

/// The access layer reads the store once per request, whatever it decides: the handler runs
/// after exactly one read for an allowed request, and a denial costs one read too (two only
/// when the policy refuses after the budget was spent, which gives the unit back).
async fn the_decision_reads_the_store_once(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCES, "u-once");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    let app = &gateway.app;
    let check = AccessCheck::new(
        Verifier::for_app(app),
        Arc::new(Counting {
            inner: app.store.clone(),
            reads: reads.clone(),
        }),
        app.policies.clone(),
        app.auditor.clone(),
    );
    let seen_by_handler = Arc::new(AtomicUsize::new(usize::MAX));
    let handler = {
        let (reads, seen) = (reads.clone(), seen_by_handler.clone());
        tower::service_fn(move |request: axum::extract::Request| {
            let (reads, seen) = (reads.clone(), seen.clone());
            async move {
                assert!(
                    request
                        .extensions()
                        .get::<bankgate::access::Grant>()
                        .is_some()
                );
                seen.store(reads.load(Ordering::SeqCst), Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(axum::response::Response::new(
                    axum::body::Body::empty(),
                ))
            }
        })
    };
    let service = axum::middleware::from_fn_with_state(check, access::check).layer(handler);
    let request = |token: &str| {
        axum::extract::Request::builder()
            .uri("/v1/accounts/acc-1/balances")
            .header("authorization", format!("Bearer {token}"))
            .header("x-request-id", uuid::Uuid::new_v4().to_string())
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let response = service
        .clone()
        .oneshot(request(&token.access_token))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        seen_by_handler.load(Ordering::SeqCst),
        1,
        "one read, then the handler"
    );
    assert_eq!(reads.load(Ordering::SeqCst), 1);

    // A denial: one read, and no handler.
    let consent_id = token.consent_id.clone();
    assert!(
        app.store
            .transition_consent(
                &consent_id,
                ConsentStatus::Authorised,
                ConsentStatus::Revoked
            )
            .await
            .unwrap()
    );
    seen_by_handler.store(usize::MAX, Ordering::SeqCst);
    let response = service
        .clone()
        .oneshot(request(&token.access_token))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    assert_eq!(seen_by_handler.load(Ordering::SeqCst), usize::MAX);
}

/// The denial kind that needs a DPoP-bound token: the same proof twice.
async fn a_replayed_dpop_proof_is_an_audited_denial(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let fapi = gateway.fapi_platform("fapi-app", None).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCES, "u-replay");
    let (token, _) = fapi.connect(&detail).await.unwrap();
    let nonce =
        bankgate::oauth::dpop::Nonces::new(&gateway.app.sealer).issue(Utc::now().timestamp());
    let url = format!("{}/v1/accounts", gateway.base);
    let proof = fapi
        .dpop_key()
        .unwrap()
        .dpop_proof("GET", &url, Some(&token.access_token), Some(&nonce))
        .unwrap();
    let send = |request_id: &'static str| {
        gateway
            .platform
            .http
            .get(&url)
            .header("authorization", format!("DPoP {}", token.access_token))
            .header("dpop", &proof)
            .header("x-request-id", request_id)
            .send()
    };
    let first = send("request-proof-first").await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let replay = send("request-proof-replayed").await.unwrap();
    assert_eq!(replay.status().as_u16(), 401);
    let challenge = replay.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("DPoP error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    let body: Value = replay.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://bankgate.dev/problems/dpop-proof-replayed"
    );
    let event = event_of(&gateway, &token.consent_id, "request-proof-replayed").await;
    assert_eq!(event["decision"], "deny");
    assert_eq!(event["reason"], body["detail"]);
    assert_eq!(event["platform"], "fapi-app");
    assert_eq!(event["bank"], "demo-bank");
    assert_eq!(event["purpose"], "balance-alerts");
}
