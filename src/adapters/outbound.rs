//! Outbound resilience: the tower stack every call to one bank's API goes through.
//!
//! Read it top to bottom (a call passes the layers in this order):
//!
//! ```text
//! in-flight cap (bounded wait)  →  retry (idempotent reads, backoff)  →  circuit breaker
//!   →  timeout (per attempt)  →  fetch (send, size cap, status, content type, error body)
//! ```
//!
//! - **In-flight cap** (`limits.max_in_flight`): a bank that hangs cannot hold more than its
//!   share of the gateway's request slots. A call beyond the cap waits in line for a slot
//!   (back-pressure: a burst against a healthy bank is served, not refused), at most
//!   `limits.queue_timeout_ms` and with at most `limits.max_queued` others; it is shed
//!   ([`AdapterError::Saturated`]) when the wait runs out or the line is full — the bank is
//!   slow — and fails at once ([`AdapterError::CircuitOpen`]) while the bank's circuit is open
//!   rather than wait for a slot it could not use.
//! - **Retry** only for `GET`/`HEAD` and only for transient failures (transport errors, 429,
//!   500, 502, 503, 504), at most `limits.retries` times with exponential backoff and jitter.
//!   A timeout is not retried: it already cost the caller a whole `timeout_ms`; nor is a call
//!   carrying a DPoP proof, which is single use.
//! - **Circuit breaker** per bank: after `limits.breaker_failures` consecutive failures it
//!   opens and calls fail at once ([`AdapterError::CircuitOpen`]); after
//!   `limits.breaker_cooldown_ms` one probe call goes through (half open) and its outcome
//!   closes or reopens it. Only failures that say something about the bank's health count:
//!   transport errors, timeouts, 5xx, 408, 429, oversized and non-JSON answers. A 4xx or a
//!   "200 with an error body" is about the request, not the bank's health.
//! - **Timeout** per attempt (`limits.timeout_ms`), covering the whole body.
//! - **Fetch** reads at most `limits.max_response_bytes` (default 4 MiB), turns a non-2xx
//!   status into [`AdapterError::Status`], refuses a body that is not JSON by its content
//!   type, and asks the profile's classification hook ([`ErrorInBody`]) whether a 2xx body is
//!   an error (banks send those too): vector's `RetryLogic` idea.
//!
//! Nothing here is shared between banks: each [`crate::adapters::Bank`] owns its HTTP client
//! (and so its connection pool), its breaker and its in-flight cap, so a slow or failing bank
//! cannot slow the others. The breaker's lock is a `std::sync::Mutex` held for a few
//! instructions, never across an `.await`.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};

use super::AdapterError;
use super::manifest::Limits;

/// A profile's classification hook: the error a 2xx body carries, if it is an error body, and
/// whether an error answer says the consent ended at the bank.
pub trait Classify: Send + Sync + 'static {
    /// The error of a success body that is an error body.
    fn error_in_body(&self, body: &[u8]) -> Option<String>;

    /// Whether an error answer (`status`, `body`) says the consent ended on the bank's side
    /// (Berlin Group `CONSENT_EXPIRED`, …): the call then fails with
    /// [`AdapterError::ConsentEnded`]. None by default.
    fn consent_ended(&self, status: u16, body: &[u8]) -> Option<super::ConsentEnd> {
        let _ = (status, body);
        None
    }
}

impl<F: Fn(&[u8]) -> Option<String> + Send + Sync + 'static> Classify for F {
    fn error_in_body(&self, body: &[u8]) -> Option<String> {
        self(body)
    }
}

/// A shared classification hook.
pub type ErrorInBody = Arc<dyn Classify>;

/// A hook for calls whose success bodies never carry errors.
pub fn no_error_in_body(_: &[u8]) -> Option<String> {
    None
}

/// One call to a bank: the request, the template of its route and how to recognise an error
/// in a success body.
pub struct Call {
    pub request: reqwest::Request,
    /// The route at the bank with its identifiers as placeholders
    /// (`/v1/accounts/{account-id}/balances`): what its span names, never an identifier.
    pub route: Cow<'static, str>,
    pub error_in_body: ErrorInBody,
    /// For a call carrying a DPoP proof: how to sign a fresh one with the nonce the bank's
    /// resource server demands.
    pub dpop: Option<Reprove>,
}

/// Signs a data call's DPoP proof again with the nonce the bank's resource server demands
/// (RFC 9449 §9: a 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a
/// `DPoP-Nonce`), once; and remembers the latest nonce the resource server handed out, which
/// the next call's proof carries ([`crate::adapters::bank_oauth::dpop::authorize`]).
#[derive(Clone)]
pub struct Reprove {
    pub key: Arc<crate::jose::ClientKey>,
    /// The resource server's latest nonce, shared by every call to the bank.
    pub nonce: Arc<Mutex<Option<String>>>,
}

impl Reprove {
    /// Keeps the nonce an answer hands out; `true` when it is a new one.
    fn remember(&self, headers: &reqwest::header::HeaderMap) -> bool {
        let Some(fresh) = headers
            .get(crate::jose::DPOP_NONCE_HEADER)
            .and_then(|value| value.to_str().ok())
        else {
            return false;
        };
        let mut slot = self.nonce.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_deref() == Some(fresh) {
            return false;
        }
        *slot = Some(fresh.to_owned());
        true
    }

    /// `request` with a fresh proof carrying the remembered nonce, bound to the access token
    /// of its `Authorization: DPoP …` header.
    fn reproved(&self, mut request: reqwest::Request) -> Result<reqwest::Request, AdapterError> {
        let unsigned = || AdapterError::Refused("the DPoP proof could not be signed".into());
        let access_token = request
            .headers()
            .get(reqwest::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .map(|(_, token)| token.trim().to_owned())
            .ok_or_else(unsigned)?;
        let nonce = self
            .nonce
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let proof = self
            .key
            .dpop_proof(
                request.method().as_str(),
                request.url().as_str(),
                Some(&access_token),
                nonce.as_deref(),
            )
            .map_err(|_| unsigned())?;
        let proof = reqwest::header::HeaderValue::from_str(&proof).map_err(|_| unsigned())?;
        request
            .headers_mut()
            .insert(crate::jose::DPOP_HEADER, proof);
        Ok(request)
    }
}

/// Whether a resource server's answer asks for a DPoP nonce (RFC 9449 §9).
fn asks_for_nonce(response: &reqwest::Response) -> bool {
    response.status() == reqwest::StatusCode::UNAUTHORIZED
        && response
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|challenge| challenge.contains("use_dpop_nonce"))
}

/// The resilience settings of one bank, from its manifest's `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub max_response_bytes: usize,
    pub max_in_flight: usize,
    pub max_queued: usize,
    pub queue_timeout: Duration,
}

impl From<&Limits> for Settings {
    fn from(limits: &Limits) -> Settings {
        Settings {
            timeout: Duration::from_millis(limits.timeout_ms),
            retries: limits.retries,
            backoff: Duration::from_millis(limits.retry_backoff_ms),
            breaker_failures: limits.breaker_failures,
            breaker_cooldown: Duration::from_millis(limits.breaker_cooldown_ms),
            max_response_bytes: limits.max_response_bytes,
            max_in_flight: limits.max_in_flight,
            max_queued: limits.max_queued,
            queue_timeout: Duration::from_millis(limits.queue_timeout_ms),
        }
    }
}

/// The outbound stack of one bank.
#[derive(Clone)]
pub struct Outbound {
    service: BoxCloneSyncService<Call, Bytes, AdapterError>,
    breaker: Arc<Breaker>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// Calls waiting for a slot now.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    queue_timeout: Duration,
    /// The bank's id: the label of its metrics and spans.
    bank: Arc<str>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// The stack over `client` (which must not follow redirects).
    pub fn new(client: reqwest::Client, settings: &Settings) -> Outbound {
        Outbound::over(
            Fetch {
                client,
                max_bytes: settings.max_response_bytes,
            },
            settings,
        )
    }

    /// The stack over any fetching service (one layer alone in tests).
    pub fn over<S>(fetch: S, settings: &Settings) -> Outbound
    where
        S: Service<Call, Response = Bytes, Error = AdapterError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        let breaker = Arc::new(Breaker::new(
            settings.breaker_failures,
            settings.breaker_cooldown,
        ));
        let service = ServiceBuilder::new()
            .layer(tower::retry::RetryLayer::new(ReadRetry::new(
                settings.retries,
                settings.backoff,
            )))
            .layer(BreakerLayer::new(breaker.clone()))
            .map_err(from_box_error as fn(BoxError) -> AdapterError)
            .timeout(settings.timeout)
            .service(fetch);
        Outbound {
            service: BoxCloneSyncService::new(service),
            breaker,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            max_in_flight: settings.max_in_flight.max(1),
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued: settings.max_queued,
            queue_timeout: settings.queue_timeout,
            bank: Arc::from(""),
        }
    }

    /// The same stack, its metrics and spans labelled with `bank`.
    pub fn named(self, bank: &str) -> Outbound {
        Outbound {
            bank: Arc::from(bank),
            ..self
        }
    }

    /// Sends one call through the stack; the body of a 2xx answer. Each call is a span
    /// (`bank_call`: bank, method, route template) whose trace context the bank receives
    /// (`traceparent`), and counts in the bank's metrics (calls, duration, failures by kind).
    pub async fn call(&self, mut call: Call) -> Result<Bytes, AdapterError> {
        use crate::telemetry::metrics::{BANK_CALL_DURATION, BANK_CALL_FAILURES, BANK_CALLS};
        use tracing::Instrument;
        let span = tracing::info_span!(
            "bank_call",
            bank = &*self.bank,
            method = %call.request.method(),
            route = &*call.route,
        );
        crate::telemetry::traces::inject(&span, call.request.headers_mut());
        let started = Instant::now();
        let outcome = async {
            let _permit = self.slot().await?;
            self.service.clone().oneshot(call).await
        }
        .instrument(span)
        .await;
        let bank = self.bank.to_string();
        metrics::counter!(BANK_CALLS, "bank" => bank.clone()).increment(1);
        metrics::histogram!(BANK_CALL_DURATION, "bank" => bank.clone())
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &outcome {
            metrics::counter!(BANK_CALL_FAILURES, "bank" => bank, "kind" => error.kind())
                .increment(1);
        }
        outcome
    }

    /// A slot for one call: at once if one is free; otherwise after a wait in line, unless
    /// the line is full, the wait runs out ([`AdapterError::Saturated`]) or the bank's circuit
    /// refuses calls now ([`AdapterError::CircuitOpen`]).
    async fn slot(&self) -> Result<OwnedSemaphorePermit, AdapterError> {
        match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(AdapterError::Saturated),
            Err(TryAcquireError::NoPermits) => {}
        }
        if self.breaker.refuses(Instant::now()) {
            return Err(AdapterError::CircuitOpen);
        }
        let _place = InLine::join(&self.queued, self.max_queued).ok_or(AdapterError::Saturated)?;
        match tokio::time::timeout(self.queue_timeout, self.in_flight.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(AdapterError::Saturated),
        }
    }

    /// The breaker's state now.
    pub fn breaker(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Calls to the bank in flight now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits())
    }

    /// Calls waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// A call's place in the line for a slot; leaving it (with or without one) frees the place.
struct InLine {
    queued: Arc<AtomicUsize>,
}

impl InLine {
    /// A place, if fewer than `max` calls wait.
    fn join(queued: &Arc<AtomicUsize>, max: usize) -> Option<InLine> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                (waiting < max).then_some(waiting + 1)
            })
            .ok()?;
        Some(InLine {
            queued: queued.clone(),
        })
    }
}

impl Drop for InLine {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A timeout's `Elapsed` is [`AdapterError::Timeout`]; anything else keeps its meaning.
fn from_box_error(error: BoxError) -> AdapterError {
    if error.is::<tower::timeout::error::Elapsed>() {
        return AdapterError::Timeout;
    }
    let error = match error.downcast::<AdapterError>() {
        Ok(error) => return *error,
        Err(error) => error,
    };
    match error.downcast::<reqwest::Error>() {
        Ok(error) => AdapterError::from(*error),
        Err(error) => AdapterError::Transport(error.to_string()),
    }
}

fn idempotent(method: &reqwest::Method) -> bool {
    matches!(*method, reqwest::Method::GET | reqwest::Method::HEAD)
}

// ---------------------------------------------------------------------------------------------
// Fetch

/// Sends a request and reads the answer (at most `max_bytes`).
#[derive(Clone)]
pub struct Fetch {
    client: reqwest::Client,
    max_bytes: usize,
}

impl Service<Call> for Fetch {
    type Response = Bytes;
    type Error = AdapterError;
    type Future = BoxFuture<'static, Result<Bytes, AdapterError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), AdapterError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let client = self.client.clone();
        let max_bytes = self.max_bytes;
        Box::pin(async move {
            let again = call.dpop.as_ref().and_then(|_| call.request.try_clone());
            let mut response = client.execute(call.request).await?;
            if let Some(dpop) = &call.dpop {
                let fresh = dpop.remember(response.headers());
                if let Some(again) = again.filter(|_| fresh && asks_for_nonce(&response)) {
                    response = client.execute(dpop.reproved(again)?).await?;
                    dpop.remember(response.headers());
                }
            }
            let status = response.status();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let body = read_capped(&mut response, max_bytes).await?;
            if !status.is_success() {
                tracing::warn!(
                    status = status.as_u16(),
                    error = ?call.error_in_body.error_in_body(&body),
                    "bank refused a call"
                );
                if let Some(end) = call.error_in_body.consent_ended(status.as_u16(), &body) {
                    return Err(AdapterError::ConsentEnded(end));
                }
                return Err(AdapterError::Status {
                    status: status.as_u16(),
                });
            }
            if let Some(content_type) = content_type.filter(|_| !body.is_empty())
                && !is_json(&content_type)
            {
                return Err(AdapterError::Decode(format!(
                    "answer has content type {content_type:?}, not JSON"
                )));
            }
            if let Some(error) = call.error_in_body.error_in_body(&body) {
                return Err(AdapterError::ErrorBody(error));
            }
            Ok(body)
        })
    }
}

/// `application/json`, `application/<anything>+json` (e.g. `hal+json`, `problem+json`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body, refused as soon as it grows beyond `max_bytes` (or announces it will).
async fn read_capped(
    response: &mut reqwest::Response,
    max_bytes: usize,
) -> Result<Bytes, AdapterError> {
    let too_large = AdapterError::TooLarge { limit: max_bytes };
    if response
        .content_length()
        .is_some_and(|length| length > max_bytes as u64)
    {
        return Err(too_large);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

// ---------------------------------------------------------------------------------------------
// Retry

/// Retries idempotent reads after transient failures, with exponential backoff and jitter.
#[derive(Debug, Clone)]
pub struct ReadRetry {
    remaining: u32,
    backoff: Duration,
    attempt: u32,
}

impl ReadRetry {
    /// At most `retries` retries; the first waits about `backoff`, each next one twice as long.
    pub fn new(retries: u32, backoff: Duration) -> ReadRetry {
        ReadRetry {
            remaining: retries,
            backoff,
            attempt: 0,
        }
    }

    fn delay(&self) -> Duration {
        let base = self.backoff.saturating_mul(1 << self.attempt.min(10));
        // Up to a quarter more, so that callers failing together do not retry together.
        let mut byte = [0u8; 1];
        let jitter = match aws_lc_rs::rand::fill(&mut byte) {
            Ok(()) => base / 4 * u32::from(byte[0]) / 255,
            Err(_) => Duration::ZERO,
        };
        base + jitter
    }
}

impl tower::retry::Policy<Call, Bytes, AdapterError> for ReadRetry {
    type Future = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn retry(
        &mut self,
        _request: &mut Call,
        result: &mut Result<Bytes, AdapterError>,
    ) -> Option<Self::Future> {
        match result {
            Err(error) if error.is_transient() && self.remaining > 0 => {
                let delay = self.delay();
                self.remaining -= 1;
                self.attempt += 1;
                tracing::debug!(%error, ?delay, "retrying a read at the bank");
                Some(Box::pin(tokio::time::sleep(delay)))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, call: &Call) -> Option<Call> {
        // A DPoP proof is single use (RFC 9449 §11.1): a copy would be a replay, and this
        // layer cannot sign a fresh one.
        if !idempotent(call.request.method()) || call.request.headers().contains_key("dpop") {
            return None;
        }
        Some(Call {
            request: call.request.try_clone()?,
            route: call.route.clone(),
            error_in_body: call.error_in_body.clone(),
            dpop: None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` consecutive ones failed.
    Closed { failures: u32 },
    /// Calls fail at once until `until`.
    Open { until: Instant },
    /// One probe call is in flight; others fail at once until it ends.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open` (a metric label).
    pub fn name(&self) -> &'static str {
        match self {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// What the breaker lets a call do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead (`probe`: the one call of a half-open breaker).
    Call {
        probe: bool,
    },
    Reject,
}

/// The state machine, separate from time and locking so that it can be tested case by case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Circuit {
    pub state: BreakerState,
    threshold: u32,
    cooldown: Duration,
}

impl Circuit {
    /// A closed circuit that opens after `threshold` consecutive failures for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Circuit {
        Circuit {
            state: BreakerState::Closed { failures: 0 },
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// Whether a call may go now.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed { .. } => Admission::Call { probe: false },
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Admission::Call { probe: true }
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => Admission::Reject,
        }
    }

    /// Records how an admitted call ended; `healthy` unless it failed in a way that counts.
    pub fn record(&mut self, now: Instant, probe: bool, healthy: bool) {
        self.state = match (self.state, healthy) {
            (_, true) if probe => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { .. }, true) => BreakerState::Closed { failures: 0 },
            (_, false) if probe => BreakerState::Open {
                until: now + self.cooldown,
            },
            (BreakerState::Closed { failures }, false) if failures + 1 >= self.threshold => {
                tracing::warn!(failures = failures + 1, "circuit to the bank opens");
                BreakerState::Open {
                    until: now + self.cooldown,
                }
            }
            (BreakerState::Closed { failures }, false) => BreakerState::Closed {
                failures: failures + 1,
            },
            // A late answer of a call admitted before the circuit opened changes nothing.
            (state, _) => state,
        };
    }

    /// A probe that never finished (its caller went away): back to open.
    pub fn abandon_probe(&mut self, now: Instant) {
        if self.state == BreakerState::HalfOpen {
            self.state = BreakerState::Open {
                until: now + self.cooldown,
            };
        }
    }
}

/// One bank's circuit, shared by every call to it.
#[derive(Debug)]
pub struct Breaker {
    circuit: Mutex<Circuit>,
}

impl Breaker {
    /// See [`Circuit::new`].
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            circuit: Mutex::new(Circuit::new(threshold, cooldown)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Circuit) -> T) -> T {
        // The state machine cannot panic halfway: a poisoned lock still holds a valid state.
        f(&mut self.circuit.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        self.with(|circuit| circuit.state)
    }

    /// Whether a call made now would be refused (open and cooling down, or half open with its
    /// probe in flight); asking changes nothing.
    pub fn refuses(&self, now: Instant) -> bool {
        match self.state() {
            BreakerState::Closed { .. } => false,
            BreakerState::Open { until } => now < until,
            BreakerState::HalfOpen => true,
        }
    }
}

/// Builds [`BreakerService`].
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    breaker: Arc<Breaker>,
}

impl BreakerLayer {
    /// Guards calls with `breaker`.
    pub fn new(breaker: Arc<Breaker>) -> BreakerLayer {
        BreakerLayer { breaker }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = BreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// Fails calls at once while the circuit is open; records how admitted calls end.
#[derive(Debug, Clone)]
pub struct BreakerService<S> {
    inner: S,
    breaker: Arc<Breaker>,
}

/// An admitted probe: if its future is dropped before it ends, the circuit reopens.
struct ProbeGuard {
    breaker: Arc<Breaker>,
    armed: bool,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if self.armed {
            self.breaker
                .with(|circuit| circuit.abandon_probe(Instant::now()));
        }
    }
}

impl<S> Service<Call> for BreakerService<S>
where
    S: Service<Call, Response = Bytes, Error = AdapterError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Bytes;
    type Error = AdapterError;
    type Future = BoxFuture<'static, Result<Bytes, AdapterError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AdapterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let breaker = self.breaker.clone();
        let probe = match breaker.with(|circuit| circuit.admit(Instant::now())) {
            Admission::Reject => return Box::pin(async { Err(AdapterError::CircuitOpen) }),
            Admission::Call { probe } => probe,
        };
        // The clone that was driven to readiness serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut guard = ProbeGuard {
                breaker: breaker.clone(),
                armed: probe,
            };
            let result = inner.call(call).await;
            guard.armed = false;
            let healthy = match &result {
                Ok(_) => true,
                Err(error) => !error.counts_against_bank(),
            };
            breaker.with(|circuit| circuit.record(Instant::now(), probe, healthy));
            result
        })
    }
}

#[cfg(test)]
mod tests;
