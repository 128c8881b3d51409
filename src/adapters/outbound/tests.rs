//! Tests of the outbound stack, one layer at a time over a scripted bank (a `service_fn`), with
//! tokio's clock paused so that timeouts, backoff and cool-downs are exact and instant. The
//! same stack against real sandbox banks told to misbehave is tested end to end in
//! `tests/api/faults.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::*;

fn settings() -> Settings {
    Settings {
        timeout: Duration::from_secs(1),
        retries: 2,
        backoff: Duration::from_millis(100),
        breaker_failures: 3,
        breaker_cooldown: Duration::from_secs(30),
        max_response_bytes: 1024,
        max_in_flight: 8,
        max_queued: 16,
        queue_timeout: Duration::from_secs(5),
    }
}

fn call(method: reqwest::Method) -> Call {
    let url = url::Url::parse("http://bank.test/accounts").unwrap();
    Call {
        request: reqwest::Request::new(method, url),
        route: "/accounts".into(),
        error_in_body: Arc::new(no_error_in_body),
        dpop: None,
    }
}

/// A bank that answers call `n` (from 0) with `script(n)`, after `delay`; counts its calls.
fn scripted(
    delay: Duration,
    script: impl Fn(u32) -> Result<Bytes, AdapterError> + Clone + Send + Sync + 'static,
) -> (Outbound, Arc<AtomicU32>, Settings) {
    scripted_with(settings(), delay, script)
}

fn scripted_with(
    settings: Settings,
    delay: Duration,
    script: impl Fn(u32) -> Result<Bytes, AdapterError> + Clone + Send + Sync + 'static,
) -> (Outbound, Arc<AtomicU32>, Settings) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let bank = tower::service_fn(move |_: Call| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let script = script.clone();
        async move {
            tokio::time::sleep(delay).await;
            script(n)
        }
    });
    (Outbound::over(bank, &settings), calls, settings)
}

fn status(status: u16) -> AdapterError {
    AdapterError::Status { status }
}

// ---------------------------------------------------------------------------------------------
// The circuit, case by case

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A call at `t` seconds: admitted (as a probe or not) or rejected.
    Admit(u64, Admission),
    /// An admitted call ends at `t` seconds.
    End(u64, bool, bool),
    /// A probe's caller went away at `t` seconds.
    Abandon(u64),
}

#[track_caller]
fn check(steps: &[Step], expected: &str) {
    let start = Instant::now();
    let at = |secs: u64| start + Duration::from_secs(secs);
    let mut circuit = Circuit::new(2, Duration::from_secs(10));
    for step in steps {
        match *step {
            Step::Admit(t, admission) => {
                assert_eq!(circuit.admit(at(t)), admission, "{step:?} in {steps:?}")
            }
            Step::End(t, probe, healthy) => circuit.record(at(t), probe, healthy),
            Step::Abandon(t) => circuit.abandon_probe(at(t)),
        }
    }
    let state = match circuit.state {
        BreakerState::Closed { failures } => format!("closed {failures}"),
        BreakerState::Open { until } => format!("open until {}", (until - start).as_secs()),
        BreakerState::HalfOpen => "half open".to_owned(),
    };
    assert_eq!(state, expected, "{steps:?}");
}

/// Two failures in a row, at 0 s and 1 s: the circuit is open until 11 s.
const OPENED: [Step; 2] = [Step::End(0, false, false), Step::End(1, false, false)];

/// The circuit [`OPENED`], then `steps`.
fn opened(steps: &[Step]) -> Vec<Step> {
    [&OPENED[..], steps].concat()
}

#[test]
fn the_circuit_opens_after_consecutive_failures_and_probes_after_the_cool_down() {
    use Step::*;
    const GO: Admission = Admission::Call { probe: false };
    const PROBE: Admission = Admission::Call { probe: true };
    const NO: Admission = Admission::Reject;
    check(&[], "closed 0");
    check(&[Admit(0, GO), End(0, false, false)], "closed 1");
    // A success in between resets the count: only consecutive failures open it.
    check(
        &[
            End(0, false, false),
            End(1, false, true),
            End(2, false, false),
        ],
        "closed 1",
    );
    check(&opened(&[]), "open until 11");
    check(&opened(&[Admit(5, NO)]), "open until 11");
    // After the cool-down one probe goes; the others wait for its verdict.
    check(&opened(&[Admit(11, PROBE), Admit(12, NO)]), "half open");
    check(
        &opened(&[Admit(11, PROBE), End(12, true, true)]),
        "closed 0",
    );
    check(
        &opened(&[Admit(11, PROBE), End(12, true, false)]),
        "open until 22",
    );
    check(&opened(&[Admit(11, PROBE), Abandon(13)]), "open until 23");
    // A slow call admitted before the circuit opened changes nothing when it ends.
    check(&opened(&[End(2, false, true)]), "open until 11");
    check(
        &opened(&[Admit(11, PROBE), End(11, false, true)]),
        "half open",
    );
}

// ---------------------------------------------------------------------------------------------
// The stack over a scripted bank

#[tokio::test(start_paused = true)]
async fn reads_are_retried_after_transient_failures_with_growing_backoff() {
    let (outbound, calls, _) = scripted(Duration::ZERO, |n| match n {
        0 | 1 => Err(status(503)),
        _ => Ok(Bytes::from_static(b"{}")),
    });
    let body = outbound.call(call(reqwest::Method::GET)).await.unwrap();
    assert_eq!(body, Bytes::from_static(b"{}"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn the_backoff_doubles_with_at_most_a_quarter_of_jitter() {
    let mut policy = ReadRetry::new(3, Duration::from_millis(100));
    for base in [100, 200, 400] {
        let delay = policy.delay();
        let (low, high) = (
            Duration::from_millis(base),
            Duration::from_millis(base * 5 / 4),
        );
        assert!(
            low <= delay && delay <= high,
            "{delay:?} not in {low:?}..={high:?}"
        );
        policy.attempt += 1;
    }
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_limit_and_never_repeat_writes_or_refusals() {
    type Failure = fn() -> AdapterError;
    let cases: &[(reqwest::Method, Failure, u32)] = &[
        // A read failing transiently: the first attempt and two retries.
        (reqwest::Method::GET, || status(502), 3),
        (
            reqwest::Method::GET,
            || AdapterError::Transport("reset".into()),
            3,
        ),
        // Not idempotent: never repeated.
        (reqwest::Method::POST, || status(503), 1),
        (reqwest::Method::PUT, || status(503), 1),
        // About the request, not the bank's state: repeating would not help.
        (reqwest::Method::GET, || status(404), 1),
        (
            reqwest::Method::GET,
            || AdapterError::ErrorBody("CONSENT_EXPIRED".into()),
            1,
        ),
        (
            reqwest::Method::GET,
            || AdapterError::Decode("html".into()),
            1,
        ),
    ];
    for (method, failure, expected_calls) in cases {
        let failure = *failure;
        let (outbound, calls, _) = scripted(Duration::ZERO, move |_| Err(failure()));
        let error = outbound.call(call(method.clone())).await.unwrap_err();
        assert_eq!(error.to_string(), failure().to_string());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            *expected_calls,
            "{method} {error}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_read_with_a_dpop_proof_is_not_replayed() {
    let (outbound, calls, _) = scripted(Duration::ZERO, |_| Err(status(503)));
    let mut with_proof = call(reqwest::Method::GET);
    with_proof.request.headers_mut().insert(
        "dpop",
        reqwest::header::HeaderValue::from_static("eyJ.proof.sig"),
    );
    outbound.call(with_proof).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_bank_times_out_per_attempt_and_is_not_retried() {
    let (outbound, calls, _) = scripted(Duration::from_secs(60), |_| Ok(Bytes::new()));
    let error = outbound.call(call(reqwest::Method::GET)).await.unwrap_err();
    assert!(matches!(error, AdapterError::Timeout), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_fails_fast_and_recovers_through_a_probe() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (outbound, calls, settings) = scripted_with(
        Settings {
            retries: 0,
            ..settings()
        },
        Duration::ZERO,
        {
            let healthy = healthy.clone();
            move |_| {
                if healthy.load(Ordering::SeqCst) {
                    Ok(Bytes::from_static(b"{}"))
                } else {
                    Err(status(500))
                }
            }
        },
    );
    for _ in 0..settings.breaker_failures {
        let error = outbound.call(call(reqwest::Method::GET)).await.unwrap_err();
        assert!(
            matches!(error, AdapterError::Status { status: 500 }),
            "{error}"
        );
    }
    assert!(matches!(outbound.breaker(), BreakerState::Open { .. }));
    // Open: calls fail at once and the bank is not asked.
    let error = outbound.call(call(reqwest::Method::GET)).await.unwrap_err();
    assert!(matches!(error, AdapterError::CircuitOpen), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), settings.breaker_failures);

    // After the cool-down, a probe: still failing, so open again for another cool-down.
    tokio::time::advance(settings.breaker_cooldown).await;
    let error = outbound.call(call(reqwest::Method::GET)).await.unwrap_err();
    assert!(
        matches!(error, AdapterError::Status { status: 500 }),
        "{error}"
    );
    assert!(matches!(outbound.breaker(), BreakerState::Open { .. }));

    // The bank recovers; the next probe closes the circuit.
    healthy.store(true, Ordering::SeqCst);
    tokio::time::advance(settings.breaker_cooldown).await;
    outbound.call(call(reqwest::Method::GET)).await.unwrap();
    assert_eq!(outbound.breaker(), BreakerState::Closed { failures: 0 });
    outbound.call(call(reqwest::Method::GET)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn refusals_and_error_bodies_do_not_open_the_breaker() {
    let (outbound, _, settings) = scripted(Duration::ZERO, |n| {
        Err(if n % 2 == 0 {
            status(403)
        } else {
            AdapterError::ErrorBody("CONSENT_INVALID".into())
        })
    });
    for _ in 0..settings.breaker_failures * 3 {
        let _ = outbound.call(call(reqwest::Method::GET)).await;
    }
    assert_eq!(outbound.breaker(), BreakerState::Closed { failures: 0 });
}

/// Two slots, calls that take `delay` at the bank, and `max_queued` places in line with a wait
/// of at most 5 s.
fn two_slots(delay: Duration, max_queued: usize) -> (Outbound, Arc<AtomicU32>) {
    let (outbound, calls, _) = scripted_with(
        Settings {
            max_in_flight: 2,
            max_queued,
            queue_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(3600),
            ..settings()
        },
        delay,
        |_| Ok(Bytes::new()),
    );
    (outbound, calls)
}

fn spawn_calls(
    outbound: &Outbound,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<Bytes, AdapterError>>> {
    (0..n)
        .map(|_| {
            let outbound = outbound.clone();
            tokio::spawn(async move { outbound.call(call(reqwest::Method::GET)).await })
        })
        .collect()
}

/// A read's outcome, which must come without the (paused) clock moving.
async fn refused_at_once(outbound: &Outbound) -> Result<Bytes, AdapterError> {
    tokio::time::timeout(
        Duration::from_millis(1),
        outbound.call(call(reqwest::Method::GET)),
    )
    .await
    .expect("refused without waiting")
}

#[tokio::test(start_paused = true)]
async fn a_burst_beyond_the_in_flight_cap_waits_for_slots_and_is_served() {
    // Eight calls of a second each through two slots: the last ones wait three seconds, within
    // the five they may wait.
    let (outbound, calls) = two_slots(Duration::from_secs(1), 16);
    for call in spawn_calls(&outbound, 8) {
        call.await.unwrap().unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 8);
    assert_eq!((outbound.in_flight(), outbound.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn calls_waiting_longer_than_the_queue_timeout_are_shed() {
    let (outbound, calls) = two_slots(Duration::from_secs(600), 16);
    let hanging = spawn_calls(&outbound, 2);
    while calls.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    let error = outbound.call(call(reqwest::Method::GET)).await.unwrap_err();
    assert!(matches!(error, AdapterError::Saturated), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "it never reached the bank");
    assert_eq!(outbound.queued(), 0, "it left the line");
    for call in &hanging {
        assert!(!call.is_finished(), "the first two are still in flight");
    }
    tokio::time::advance(Duration::from_secs(601)).await;
    for call in hanging {
        call.await.unwrap().unwrap();
    }
    outbound.call(call(reqwest::Method::GET)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_call_finding_the_line_full_is_shed_at_once() {
    for max_queued in [0, 1] {
        let (outbound, calls) = two_slots(Duration::from_secs(600), max_queued);
        let hanging = spawn_calls(&outbound, 2 + max_queued);
        while calls.load(Ordering::SeqCst) < 2 || outbound.queued() < max_queued {
            tokio::task::yield_now().await;
        }
        // The clock stands still: only a full line refuses this call.
        let refused = refused_at_once(&outbound).await;
        assert!(
            matches!(refused, Err(AdapterError::Saturated)),
            "{refused:?}"
        );
        for call in hanging {
            call.abort();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_call_waits_for_a_slot_while_the_circuit_is_open() {
    let (outbound, calls) = two_slots(Duration::from_secs(600), 16);
    let hanging = spawn_calls(&outbound, 2);
    while calls.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    outbound.breaker.with(|circuit| {
        for _ in 0..settings().breaker_failures {
            circuit.record(Instant::now(), false, false);
        }
    });
    let refused = refused_at_once(&outbound).await;
    assert!(
        matches!(refused, Err(AdapterError::CircuitOpen)),
        "{refused:?}"
    );
    assert_eq!(outbound.queued(), 0);
    for call in hanging {
        call.abort();
    }
}

#[test]
fn json_content_types_are_recognised() {
    for (content_type, json) in [
        ("application/json", true),
        ("application/json; charset=utf-8", true),
        ("Application/JSON", true),
        ("application/hal+json", true),
        ("application/problem+json;charset=utf-8", true),
        ("text/html; charset=utf-8", false),
        ("text/plain", false),
        ("application/jsonx", false),
        ("", false),
    ] {
        assert_eq!(is_json(content_type), json, "{content_type}");
    }
}
