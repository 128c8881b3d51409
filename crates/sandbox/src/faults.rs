//! Fault injection: a sandbox bank told to misbehave on some paths, as real banks do — slow
//! answers, 500s, malformed or truncated JSON, huge bodies, HTML instead of JSON, and success
//! answers that carry an error. Every sandbox bank runs behind [`apply`]; tests hold the
//! bank's [`Faults`] (`Sandbox::faults`) and `bankgate sandbox --fault PATH=KIND` sets them
//! from the command line.
//!
//! Faulty bodies carry [`LEAK_MARKER`], text only the bank knows: tests check that it never
//! reaches a platform. [`Faults`] also counts the requests each path received, so that a test
//! can tell that a call reached the bank (or, with an open circuit, that it did not), and keeps
//! the W3C trace context (`traceparent`) each request carried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Notify;

/// Text only the bank knows, put in every faulty body.
pub const LEAK_MARKER: &str = "sandbox-internal-detail-7f3a";

/// One way to misbehave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally, but only after this long.
    Delay(Duration),
    /// Answer this status with a JSON body of internal details.
    Status(u16),
    /// 200, `application/json`, but the body is not JSON.
    MalformedJson,
    /// 200 whose body stops halfway: the connection is cut.
    Truncated,
    /// 200 with a valid JSON body of about this many bytes.
    Huge(usize),
    /// 200 with an HTML page instead of JSON.
    WrongContentType,
    /// 200 with this JSON body (e.g. the standard's error shape).
    Body(serde_json::Value),
    /// The bank does what the request asks (a payment is created or executed), then the
    /// connection is cut before its answer is through: the caller cannot know the outcome.
    AnswerLost,
}

impl Fault {
    /// Parses `delay:MS`, `status:CODE`, `malformed`, `truncated`, `huge:BYTES`,
    /// `content-type`, `error-body:JSON` or `answer-lost`.
    pub fn parse(text: &str) -> Result<Fault, String> {
        let (kind, argument) = text.split_once(':').unwrap_or((text, ""));
        let number = |what: &str| -> Result<u64, String> {
            argument
                .parse()
                .map_err(|_| format!("{kind}: {what} must be a number"))
        };
        match kind {
            "delay" => Ok(Fault::Delay(Duration::from_millis(number("milliseconds")?))),
            "status" => {
                let code = u16::try_from(number("the status")?)
                    .ok()
                    .filter(|code| (100..=599).contains(code))
                    .ok_or("status: a status code is 100-599")?;
                Ok(Fault::Status(code))
            }
            "malformed" => Ok(Fault::MalformedJson),
            "truncated" => Ok(Fault::Truncated),
            "huge" => Ok(Fault::Huge(
                usize::try_from(number("the size")?).map_err(|_| "huge: too large")?,
            )),
            "content-type" => Ok(Fault::WrongContentType),
            "error-body" => serde_json::from_str(argument)
                .map(Fault::Body)
                .map_err(|error| format!("error-body: {error}")),
            "answer-lost" => Ok(Fault::AnswerLost),
            _ => Err(format!(
                "unknown fault {kind:?}: expected delay, status, malformed, truncated, huge, \
                 content-type, error-body or answer-lost"
            )),
        }
    }
}

struct Rule {
    path_prefix: String,
    fault: Fault,
    /// How many more requests it applies to (`None`: until cleared).
    remaining: Option<u32>,
}

/// The faults a sandbox bank applies, and the requests it received.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    hits: Mutex<HashMap<String, u64>>,
    /// (path, `traceparent`) of every request that carried one, in arrival order.
    traceparents: Mutex<Vec<(String, String)>>,
    arrived: Notify,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Faults {
    /// Applies `fault` to every request whose path starts with `path_prefix` until cleared
    /// (the latest rule for a path wins).
    pub fn set(&self, path_prefix: &str, fault: Fault) {
        self.push(path_prefix, fault, None);
    }

    /// Applies `fault` to the next `times` requests whose path starts with `path_prefix`.
    pub fn set_times(&self, path_prefix: &str, fault: Fault, times: u32) {
        self.push(path_prefix, fault, Some(times));
    }

    fn push(&self, path_prefix: &str, fault: Fault, remaining: Option<u32>) {
        lock(&self.rules).push(Rule {
            path_prefix: path_prefix.to_owned(),
            fault,
            remaining,
        });
    }

    /// Back to normal behaviour.
    pub fn clear(&self) {
        lock(&self.rules).clear();
    }

    /// How many requests whose path starts with `path_prefix` arrived so far.
    pub fn hits(&self, path_prefix: &str) -> u64 {
        lock(&self.hits)
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// The `traceparent` headers of the requests whose path starts with `path_prefix`, in the
    /// order they arrived.
    pub fn traceparents(&self, path_prefix: &str) -> Vec<String> {
        lock(&self.traceparents)
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, traceparent)| traceparent.clone())
            .collect()
    }

    /// Waits until at least `n` requests whose path starts with `path_prefix` have arrived.
    pub async fn wait_for_hits(&self, path_prefix: &str, n: u64) {
        loop {
            let arrived = self.arrived.notified();
            if self.hits(path_prefix) >= n {
                return;
            }
            arrived.await;
        }
    }

    /// Counts a request to `path` and takes the fault that applies to it, if any.
    fn take(&self, path: &str) -> Option<Fault> {
        *lock(&self.hits).entry(path.to_owned()).or_default() += 1;
        self.arrived.notify_waiters();
        let mut rules = lock(&self.rules);
        let index = rules
            .iter()
            .rposition(|rule| path.starts_with(&rule.path_prefix))?;
        let rule = &mut rules[index];
        let fault = rule.fault.clone();
        match &mut rule.remaining {
            Some(1) => {
                rules.remove(index);
            }
            Some(remaining) => *remaining -= 1,
            None => {}
        }
        Some(fault)
    }
}

const JSON: &str = "application/json";

/// The middleware every sandbox bank runs behind.
pub async fn apply(State(faults): State<Arc<Faults>>, request: Request, next: Next) -> Response {
    if let Some(traceparent) = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
    {
        lock(&faults.traceparents).push((request.uri().path().to_owned(), traceparent.to_owned()));
    }
    let Some(fault) = faults.take(request.uri().path()) else {
        return next.run(request).await;
    };
    tracing::debug!(path = request.uri().path(), ?fault, "sandbox misbehaves");
    match fault {
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({
                "error": "internal",
                "message": format!("stack trace at db-7: {LEAK_MARKER}"),
            });
            (status, axum::Json(body)).into_response()
        }
        Fault::MalformedJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, JSON)],
            format!("{{\"accounts\": [{{\"id\": \"{LEAK_MARKER}\", "),
        )
            .into_response(),
        Fault::Truncated => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from(format!(
                    "{{\"note\": \"{LEAK_MARKER}\", \"accounts\": ["
                ))),
                Err(std::io::Error::other("connection cut by the sandbox")),
            ];
            let body = Body::from_stream(futures_util::stream::iter(chunks));
            (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response()
        }
        Fault::Huge(bytes) => {
            let padding = "x".repeat(bytes);
            let body = format!("{{\"note\": \"{LEAK_MARKER}\", \"padding\": \"{padding}\"}}");
            (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response()
        }
        Fault::WrongContentType => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!("<html><body><h1>Maintenance</h1><p>{LEAK_MARKER}</p></body></html>"),
        )
            .into_response(),
        Fault::Body(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Fault::AnswerLost => {
            let answered = next.run(request).await;
            let (parts, _) = answered.into_parts();
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{")),
                Err(std::io::Error::other("connection cut by the sandbox")),
            ];
            let mut response =
                Response::from_parts(parts, Body::from_stream(futures_util::stream::iter(chunks)));
            response.headers_mut().remove(header::CONTENT_LENGTH);
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_the_command_line() {
        assert_eq!(
            Fault::parse("delay:1500"),
            Ok(Fault::Delay(Duration::from_millis(1500)))
        );
        assert_eq!(Fault::parse("status:503"), Ok(Fault::Status(503)));
        assert_eq!(Fault::parse("answer-lost"), Ok(Fault::AnswerLost));
        assert_eq!(Fault::parse("huge:8388608"), Ok(Fault::Huge(8_388_608)));
        assert_eq!(
            Fault::parse(r#"error-body:{"error": "x"}"#),
            Ok(Fault::Body(json!({"error": "x"})))
        );
        assert!(Fault::parse("status:99").is_err());
        assert!(Fault::parse("explode").is_err());
    }

    #[test]
    fn the_latest_rule_wins_and_counted_rules_run_out() {
        let faults = Faults::default();
        faults.set("/v1/", Fault::Status(500));
        faults.set_times("/v1/accounts", Fault::MalformedJson, 2);
        assert_eq!(faults.take("/v1/accounts"), Some(Fault::MalformedJson));
        assert_eq!(faults.take("/v1/accounts/x"), Some(Fault::MalformedJson));
        assert_eq!(faults.take("/v1/accounts"), Some(Fault::Status(500)));
        assert_eq!(faults.take("/oauth/token"), None);
        assert_eq!(faults.hits("/v1/accounts"), 3);
        faults.clear();
        assert_eq!(faults.take("/v1/accounts"), None);
    }
}
