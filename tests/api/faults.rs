//! Outbound resilience, end to end: sandbox banks registered through the API are told to
//! misbehave, and every fault becomes the right problem (502 or 504, naming the bank, never
//! its text) with an audited `error` decision; the circuit breaker opens and recovers; and a
//! bank that hangs does not slow another bank — shown by what completes while the hanging
//! calls are still in flight, never by measuring durations.

use std::time::Duration;

use bankgate_sandbox::faults::{Fault, LEAK_MARKER};
use serde_json::{Value, json};

use crate::registration::{connect, provide_credentials, register_sandbox_bank};
use crate::support::{StoreKind, TestGateway};

/// The proprietary sandbox's balance path of the main account.
const POSITIONS: &str = "/api/v2/me/accounts/alice-giro/positions";

/// A problem from a data request, with its request id (`instance`).
struct Problem {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Value,
    text: String,
}

/// `GET path` as the platform, with its user present (so that the purpose's unattended budget
/// does not run out across the many requests of a test).
async fn get_at(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Problem {
    let response = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .header("x-user-present", "true")
        .header("psu-ip-address", "192.0.2.10")
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.expect("a body");
    Problem {
        status,
        content_type,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn balances(gateway: &TestGateway, token: &str, account: &str) -> Problem {
    let path = format!("/v1/accounts/{account}/balances");
    get_at(&gateway.platform.http, &gateway.base, token, &path).await
}

/// The audited decision of the request that answered `problem`.
async fn decision_of(gateway: &TestGateway, consent_id: &str, problem: &Problem) -> Value {
    let request_id = problem.body["instance"]
        .as_str()
        .and_then(|instance| instance.strip_prefix("urn:request:"))
        .unwrap_or_else(|| panic!("no instance in {}", problem.body));
    gateway
        .audit_of(consent_id)
        .await
        .into_iter()
        .find(|event| event["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no audit event for request {request_id}"))
}

fn consent_of(gateway: &TestGateway, token: &str) -> String {
    gateway.app.tokens.verify(token).expect("token").sub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bank_fault_is_a_clear_problem_and_an_audited_error() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    provide_credentials(&gateway);
    let limits = json!({"timeout_ms": 500, "retries": 2, "retry_backoff_ms": 10,
                        "breaker_failures": 100});
    let sandbox = register_sandbox_bank(&gateway, "acme-bank", limits).await;
    let (token, giro) = connect(&gateway, "acme-bank", "u-faults").await;
    let consent = consent_of(&gateway, &token);
    let error_envelope = json!({"result": null,
        "error": {"code": "E503", "message": format!("db failover {LEAK_MARKER}")}});

    // (fault, status, problem type, detail, attempts the bank saw)
    let cases: Vec<(Fault, u16, &str, &str, u64)> = vec![
        (
            Fault::Delay(Duration::from_secs(30)),
            504,
            "bank-timeout",
            "bank acme-bank did not answer in time",
            1,
        ),
        (
            Fault::Status(500),
            502,
            "bank-error",
            "bank acme-bank answered with an error (HTTP 500)",
            3,
        ),
        (
            Fault::Status(404),
            502,
            "bank-error",
            "bank acme-bank answered with an error (HTTP 404)",
            1,
        ),
        (
            Fault::MalformedJson,
            502,
            "bank-error",
            "bank acme-bank answered with a payload bankgate could not read",
            1,
        ),
        (
            Fault::Truncated,
            502,
            "bank-error",
            "the connection to bank acme-bank failed",
            3,
        ),
        (
            Fault::Huge(5 * 1024 * 1024),
            502,
            "bank-error",
            "bank acme-bank answered with more than 4194304 bytes",
            1,
        ),
        (
            Fault::WrongContentType,
            502,
            "bank-error",
            "bank acme-bank answered with a payload bankgate could not read",
            1,
        ),
        (
            Fault::Body(error_envelope),
            502,
            "bank-error",
            "bank acme-bank answered with an error",
            1,
        ),
    ];
    for (fault, status, kind, detail, attempts) in cases {
        let before = sandbox.faults.hits(POSITIONS);
        sandbox.faults.set(POSITIONS, fault.clone());
        let problem = balances(&gateway, &token, &giro).await;
        sandbox.faults.clear();
        assert_eq!(problem.status, status, "{fault:?}: {}", problem.text);
        assert_eq!(
            problem.content_type, "application/problem+json",
            "{fault:?}"
        );
        assert_eq!(
            problem.body["type"],
            format!("https://bankgate.dev/problems/{kind}"),
            "{fault:?}"
        );
        assert_eq!(problem.body["detail"], detail, "{fault:?}");
        assert!(
            !problem.text.contains(LEAK_MARKER) && !problem.text.contains("db failover"),
            "{fault:?}: the bank's text leaked: {}",
            problem.text
        );
        assert_eq!(
            sandbox.faults.hits(POSITIONS) - before,
            attempts,
            "{fault:?}: retried only when transient"
        );
        let event = decision_of(&gateway, &consent, &problem).await;
        assert_eq!(event["decision"], "error", "{fault:?}: {event}");
        assert_eq!(event["bank"], "acme-bank");
        assert!(
            event["fields"].as_array().unwrap().is_empty(),
            "nothing released"
        );
        // And the bank's next good answer goes through.
        let recovered = balances(&gateway, &token, &giro).await;
        assert_eq!(recovered.status, 200, "{fault:?} then: {}", recovered.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_opens_and_recovers() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    provide_credentials(&gateway);
    let limits = json!({"retries": 0, "breaker_failures": 3, "breaker_cooldown_ms": 3000});
    let sandbox = register_sandbox_bank(&gateway, "acme-bank", limits).await;
    let (token, giro) = connect(&gateway, "acme-bank", "u-breaker").await;
    let consent = consent_of(&gateway, &token);

    sandbox.faults.set(POSITIONS, Fault::Status(503));
    for _ in 0..3 {
        let problem = balances(&gateway, &token, &giro).await;
        assert_eq!(problem.status, 502, "{}", problem.text);
    }
    assert_eq!(sandbox.faults.hits(POSITIONS), 3);
    // Open: the gateway answers at once without asking the bank.
    let problem = balances(&gateway, &token, &giro).await;
    assert_eq!(problem.status, 503, "{}", problem.text);
    assert_eq!(
        problem.body["type"],
        "https://bankgate.dev/problems/bank-unavailable"
    );
    assert!(
        problem.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("bank acme-bank is temporarily unavailable"),
        "{}",
        problem.text
    );
    assert_eq!(
        sandbox.faults.hits(POSITIONS),
        3,
        "the open circuit spared the bank"
    );
    let event = decision_of(&gateway, &consent, &problem).await;
    assert_eq!(event["decision"], "error");

    // The bank recovers; after the cool-down one probe goes through and closes the circuit.
    sandbox.faults.clear();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = balances(&gateway, &token, &giro).await;
        if answer.status == 200 {
            break;
        }
        assert_eq!(
            answer.status, 503,
            "only fast refusals until the probe: {}",
            answer.text
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the circuit never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sandbox.faults.hits(POSITIONS),
        4,
        "refusals while open never reached the bank; the probe did"
    );
    let answer = balances(&gateway, &token, &giro).await;
    assert_eq!(answer.status, 200, "closed again: {}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_bank_does_not_slow_another_bank() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    provide_credentials(&gateway);
    // Bank A answers its balances only after a minute, longer than anything here waits;
    // it may have four calls in flight and none waiting for a slot.
    let slow = register_sandbox_bank(
        &gateway,
        "slow-bank",
        json!({"timeout_ms": 120000, "max_in_flight": 4, "max_queued": 0}),
    )
    .await;
    let fast = register_sandbox_bank(&gateway, "fast-bank", json!({})).await;
    let (slow_token, slow_giro) = connect(&gateway, "slow-bank", "u-slow").await;
    let (fast_token, fast_giro) = connect(&gateway, "fast-bank", "u-fast").await;
    slow.faults
        .set(POSITIONS, Fault::Delay(Duration::from_secs(60)));

    let hanging: Vec<_> = (0..4)
        .map(|_| {
            let (http, base) = (gateway.platform.http.clone(), gateway.base.clone());
            let path = format!("/v1/accounts/{slow_giro}/balances");
            let token = slow_token.clone();
            tokio::spawn(async move { get_at(&http, &base, &token, &path).await })
        })
        .collect();
    // All four are at bank A now, waiting.
    tokio::time::timeout(
        Duration::from_secs(30),
        slow.faults.wait_for_hits(POSITIONS, 4),
    )
    .await
    .expect("the four calls reach bank A");

    // A fifth call to A is refused at once (A's share of the gateway is used up)...
    let refused = balances(&gateway, &slow_token, &slow_giro).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(
        refused.body["detail"],
        "bank slow-bank has too many requests in flight; retry later"
    );
    assert_eq!(slow.faults.hits(POSITIONS), 4, "it never reached bank A");

    // ...while bank B answers every call, and A's calls are all still hanging.
    for _ in 0..5 {
        let answer = balances(&gateway, &fast_token, &fast_giro).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let accounts = get_at(
            &gateway.platform.http,
            &gateway.base,
            &fast_token,
            "/v1/accounts",
        )
        .await;
        assert_eq!(accounts.status, 200, "{}", accounts.text);
    }
    assert!(fast.faults.hits(POSITIONS) >= 5);
    for call in &hanging {
        assert!(
            !call.is_finished(),
            "bank B's calls all completed while bank A's were still in flight"
        );
    }

    // Bank A updates its adapter with a short timeout: new calls time out (504), the hanging
    // ones keep the adapter they started with.
    let timed_out = {
        let manifest = crate::registration::manifest(
            "slow-bank",
            &slow,
            json!({"timeout_ms": 300, "max_in_flight": 4}),
        );
        let token = crate::registration::bank_principal(&gateway, "slow-admin-2", "slow-bank")
            .await
            .client_credentials()
            .await
            .unwrap();
        let (status, _, body) =
            crate::registration::put_adapter(&gateway, Some(&token), "slow-bank", "", &manifest)
                .await;
        assert_eq!(status, 201, "{body}");
        balances(&gateway, &slow_token, &slow_giro).await
    };
    assert_eq!(timed_out.status, 504, "{}", timed_out.text);
    assert_eq!(
        timed_out.body["detail"],
        "bank slow-bank did not answer in time"
    );
    for call in &hanging {
        assert!(!call.is_finished());
    }
    for call in hanging {
        call.abort();
    }
}

/// `n` balance requests at once, as the platform.
fn burst(
    gateway: &TestGateway,
    token: &str,
    account: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Problem>> {
    (0..n)
        .map(|_| {
            let (http, base) = (gateway.platform.http.clone(), gateway.base.clone());
            let path = format!("/v1/accounts/{account}/balances");
            let token = token.to_owned();
            tokio::spawn(async move { get_at(&http, &base, &token, &path).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_in_flight_cap_waits_for_a_healthy_bank_and_is_served() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    provide_credentials(&gateway);
    // Two calls in flight at once; the others wait (up to the default queue timeout) for one.
    let sandbox = register_sandbox_bank(&gateway, "busy-bank", json!({"max_in_flight": 2})).await;
    let (token, giro) = connect(&gateway, "busy-bank", "u-burst").await;
    // Healthy, but each answer takes a moment: the burst overlaps.
    sandbox
        .faults
        .set(POSITIONS, Fault::Delay(Duration::from_millis(200)));
    for call in burst(&gateway, &token, &giro, 12) {
        let answer = call.await.expect("the request task");
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert_eq!(
        sandbox.faults.hits(POSITIONS),
        12,
        "every call reached the bank"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_bank_slow_beyond_the_wait_are_shed_with_retry_after_and_audited() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    provide_credentials(&gateway);
    let sandbox = register_sandbox_bank(
        &gateway,
        "slow-bank",
        json!({"timeout_ms": 120000, "max_in_flight": 2, "queue_timeout_ms": 300}),
    )
    .await;
    let (token, giro) = connect(&gateway, "slow-bank", "u-shed").await;
    let consent = consent_of(&gateway, &token);
    // The bank stays slow far beyond the wait: two calls hold both slots.
    sandbox
        .faults
        .set(POSITIONS, Fault::Delay(Duration::from_secs(60)));
    let hanging = burst(&gateway, &token, &giro, 2);
    tokio::time::timeout(
        Duration::from_secs(30),
        sandbox.faults.wait_for_hits(POSITIONS, 2),
    )
    .await
    .expect("the two calls reach the bank");

    // Three more wait in line, find no slot within the wait and are shed.
    for call in burst(&gateway, &token, &giro, 3) {
        let shed = call.await.expect("the request task");
        assert_eq!(shed.status, 503, "{}", shed.text);
        assert_eq!(shed.content_type, "application/problem+json");
        assert_eq!(
            shed.body["type"],
            "https://bankgate.dev/problems/bank-unavailable"
        );
        assert_eq!(
            shed.body["detail"],
            "bank slow-bank has too many requests in flight; retry later"
        );
        assert_eq!(shed.retry_after.as_deref(), Some("1"));
        let event = decision_of(&gateway, &consent, &shed).await;
        assert_eq!(event["decision"], "error", "{event}");
        assert_eq!(event["bank"], "slow-bank");
        assert!(
            event["fields"].as_array().unwrap().is_empty(),
            "nothing released"
        );
    }
    assert_eq!(
        sandbox.faults.hits(POSITIONS),
        2,
        "the shed calls never reached the bank"
    );
    for call in &hanging {
        assert!(!call.is_finished(), "the first two are still at the bank");
    }
    for call in hanging {
        call.abort();
    }
}
