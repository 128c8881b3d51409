//! Compliance API: the audit log, for clients with the `compliance` role (token scope
//! `audit:read`): its events, one event with what proves its place in the chain, the signed
//! checkpoints, a daily summary, an export ([`export`]) and a verification of the whole log.
//! Every query is itself audited (`audit_queried`) before its answer leaves: [`Inquiry`].

mod export;

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, RawQuery};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::app::App;
use crate::audit::verifier::{VerifyOptions, verify_chain};
use crate::audit::{
    Action, Checkpoint, Decision, Event, Filter, Record, SummaryFilter, SummaryRow, VerifyingKeys,
};
use crate::error::Error;
use crate::http::authn::Principal;
use crate::http::routes::input::{self, JsonBody};
use crate::oauth::Role;
use crate::subject;

/// The compliance routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/audit/events", get(events))
        .route("/v1/audit/events/{position}", get(event))
        .route("/v1/audit/checkpoints", get(checkpoints))
        .route("/v1/audit/summary", get(summary))
        .route("/v1/audit/export", get(export::export))
        .route("/v1/audit/verify", get(verify))
        .route("/v1/audit/subject", get(subject_report))
        .route("/v1/audit/subject/erase", post(subject_erase))
        .with_state(app)
}

/// A query of the audit log by a compliance client. Extracting it refuses (403) callers
/// whose client is not registered as `compliance`, before anything else about the request is looked at;
/// [`Inquiry::audited`] records the query before its answer leaves.
struct Inquiry {
    app: Arc<App>,
    actor: String,
    request_id: Option<String>,
}

impl FromRequestParts<Arc<App>> for Inquiry {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .ok_or_else(|| Error::Unauthenticated("an access token is required".into()))?;
        // The client's registered role decides, not the scopes a token claims.
        if principal.role != Role::Compliance {
            // The attempt is on the record too: a platform or bank reaching for the log.
            let refusal = "the audit log is for compliance clients";
            let mut event = Event::new(Action::AuditQueried, principal.client_id(), Decision::Deny);
            event.reason = Some(format!("{refusal}: {}", parts.uri.path()));
            event.request_id = crate::http::request_id(&parts.headers);
            app.auditor
                .record(event)
                .await
                .map_err(Error::AuditUnavailable)?;
            return Err(Error::Forbidden(refusal.into()));
        }
        Ok(Inquiry {
            app: app.clone(),
            actor: principal.client_id().to_owned(),
            request_id: crate::http::request_id(&parts.headers),
        })
    }
}

/// What an `audit_queried` event says was asked: `{"query": <endpoint>, ...parameters}`.
#[derive(Serialize)]
struct Asked<'a, T: Serialize> {
    query: &'a str,
    #[serde(flatten)]
    parameters: T,
}

impl Inquiry {
    /// Records the query (`audit_queried`, `reason` = what was asked as JSON, with user
    /// references pseudonymised by the caller) and returns its record. Fail closed: when the
    /// log cannot take it, `AuditUnavailable` (503) and the answer must not leave.
    async fn audited(
        &self,
        query: &str,
        parameters: impl Serialize,
        n_records: usize,
    ) -> Result<Record, Error> {
        let mut event = Event::new(Action::AuditQueried, self.actor.as_str(), Decision::Allow);
        event.n_records = u32::try_from(n_records).unwrap_or(u32::MAX);
        event.reason = serde_json::to_string(&Asked { query, parameters }).ok();
        event.request_id = self.request_id.clone();
        self.app
            .auditor
            .record(event)
            .await
            .map_err(Error::AuditUnavailable)
    }
}

/// `GET /v1/audit/subject`: what the subject report asks — one platform's user, or the person
/// a bank knows by `bank_person` (the bank's own identifier for them, as in its ID tokens).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectQuery {
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    user_ref: Option<String>,
    #[serde(default)]
    bank: Option<String>,
    #[serde(default)]
    bank_person: Option<String>,
    /// `json` (default) or `html`.
    #[serde(default)]
    format: Option<String>,
}

/// `GET /v1/audit/subject?platform=…&user_ref=…` or `?bank=…&bank_person=…` (`&format=html`
/// for the printable page): the subject access report (`subject::report`,
/// `subject::report_of_bank_person`), audited before it leaves.
async fn subject_report(inquiry: Inquiry, RawQuery(query): RawQuery) -> Result<Response, Error> {
    let asked: SubjectQuery = parse_query(query.as_deref())?;
    let html = match asked.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(_) => return Err(Error::InvalidRequest("format is json or html".into())),
    };
    let app = &inquiry.app;
    let policies = app.policies.current();
    let sources = subject::Sources {
        consents: app.store.as_ref(),
        clients: app.store.as_ref(),
        webhooks: app.store.as_ref(),
        auditor: &app.auditor,
        policies: &policies,
    };
    match asked {
        SubjectQuery {
            platform: Some(platform),
            user_ref: Some(user_ref),
            bank: None,
            bank_person: None,
            ..
        } => {
            let subject = subject::Subject { platform, user_ref };
            let report = subject::report(&sources, &subject, Utc::now()).await?;
            subject::audit_report(
                &app.auditor,
                &inquiry.actor,
                &report,
                inquiry.request_id.clone(),
            )
            .await
            .map_err(Error::AuditUnavailable)?;
            Ok(rendered(html, &report, subject::Report::html))
        }
        SubjectQuery {
            platform: None,
            user_ref: None,
            bank: Some(bank),
            bank_person: Some(person),
            ..
        } => {
            input::checked("bank_person", &person)?;
            let digest = app.sealer.bank_person(&bank, &person);
            let report =
                subject::report_of_bank_person(&sources, &bank, &digest, Utc::now()).await?;
            subject::audit_bank_person_report(
                &app.auditor,
                &inquiry.actor,
                &report,
                inquiry.request_id.clone(),
            )
            .await
            .map_err(Error::AuditUnavailable)?;
            Ok(rendered(html, &report, subject::BankPersonReport::html))
        }
        _ => Err(Error::InvalidRequest(
            "name the person by platform and user_ref, or by bank and bank_person".into(),
        )),
    }
}

/// A report as JSON, or as its printable page (`html`) under the report's policy.
fn rendered<R: Serialize>(html: bool, report: &R, page: impl FnOnce(&R) -> String) -> Response {
    if html {
        let headers = [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, SUBJECT_REPORT_CSP),
        ];
        return (headers, page(report)).into_response();
    }
    Json(report).into_response()
}

/// `POST /v1/audit/subject/erase`: the person to erase.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseRequest {
    platform: String,
    user_ref: String,
}

/// What an erasure answers: what it deleted and the position of its (anonymous) audit event.
#[derive(Serialize)]
struct EraseAnswer {
    erased: crate::lifecycle::erasure::Erased,
    position: i64,
}

/// `POST /v1/audit/subject/erase {"platform","user_ref"}`: erases one platform's user
/// (`lifecycle::erasure::erase`): their pseudonym key and every operational record about them
/// go, their audit events stay; the erasure is audited without naming them.
async fn subject_erase(
    inquiry: Inquiry,
    JsonBody(asked): JsonBody<EraseRequest>,
) -> Result<Json<EraseAnswer>, Error> {
    input::checked("platform", &asked.platform)?;
    input::checked("user_ref", &asked.user_ref)?;
    if asked.platform.is_empty() || asked.user_ref.is_empty() {
        return Err(Error::InvalidRequest(
            "platform and user_ref must not be empty".into(),
        ));
    }
    let app = &inquiry.app;
    let (erased, record) = crate::lifecycle::erasure::erase(
        app.store.as_ref(),
        &app.auditor,
        &inquiry.actor,
        &asked.platform,
        &asked.user_ref,
        inquiry.request_id.clone(),
    )
    .await?;
    Ok(Json(EraseAnswer {
        erased,
        position: record.position,
    }))
}

/// The printable report's policy: nothing but the page itself.
const SUBJECT_REPORT_CSP: &str =
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A page of events.
#[derive(Serialize)]
struct Page {
    events: Vec<Record>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<i64>,
}

/// `GET /v1/audit/events`: the events a [`Filter`] selects, a page at a time.
async fn events(inquiry: Inquiry, RawQuery(query): RawQuery) -> Result<Json<Page>, Error> {
    let filter: Filter = parse_query(query.as_deref())?;
    let app = &inquiry.app;
    // Through the auditor: a `user_ref` filter is pseudonymised like the stored references.
    let events = app.auditor.events(&filter).await?;
    let page_full = events.len() == filter.page_size() as usize;
    let next_after = page_full
        .then(|| events.last().map(|record| record.position))
        .flatten();
    inquiry
        .audited(
            "events",
            app.auditor.pseudonymise_filter(&filter).await?,
            events.len(),
        )
        .await?;
    Ok(Json(Page { events, next_after }))
}

/// How to check an event's place in the chain from what [`Inclusion`] gives.
const INCLUSION_RULE: &str = "h_n = SHA-256(prev_hash ‖ n as 8 big-endian bytes ‖ canonical)";

/// One event and what proves its place in the chain.
#[derive(Serialize)]
struct Included {
    event: Record,
    inclusion: Inclusion,
}

/// The links of one event: its hash is [`INCLUSION_RULE`] over the others, and the first
/// signed checkpoint at or after it vouches for the chain through it.
#[derive(Serialize)]
struct Inclusion {
    position: i64,
    #[serde(with = "hex::serde")]
    prev_hash: [u8; 32],
    #[serde(with = "hex::serde")]
    hash: [u8; 32],
    /// The exact bytes the chain hashed (compact JSON, so UTF-8).
    canonical: String,
    checkpoint: Option<Checkpoint>,
    verify: &'static str,
}

/// The path of one event. A struct, not a bare `i64`: the gateway's router has already
/// captured a parameter of its own on the way here.
#[derive(Deserialize)]
struct At {
    position: i64,
}

/// `GET /v1/audit/events/{position}`: one event with its inclusion in the chain.
async fn event(
    inquiry: Inquiry,
    at: Result<Path<At>, PathRejection>,
) -> Result<Json<Included>, Error> {
    let Path(At { position }) = at.map_err(|_| {
        Error::InvalidRequest("the position must be a whole number (1 is the first event)".into())
    })?;
    let app = &inquiry.app;
    let found = if position >= 1 {
        app.auditor
            .events(&Filter {
                after: Some(position - 1),
                limit: Some(1),
                ..Filter::default()
            })
            .await?
            .pop()
            .filter(|record| record.position == position)
    } else {
        None
    };
    let checkpoint = match &found {
        Some(record) => app
            .auditor
            .checkpoints(Some(record.position - 1), 1)
            .await?
            .pop(),
        None => None,
    };
    inquiry
        .audited(
            "event",
            serde_json::json!({ "position": position }),
            usize::from(found.is_some()),
        )
        .await?;
    let record =
        found.ok_or_else(|| Error::NotFound(format!("no event at position {position}")))?;
    let canonical = String::from_utf8(record.event.canonical_bytes())
        .map_err(|_| Error::Internal("canonical event bytes are not UTF-8".into()))?;
    Ok(Json(Included {
        inclusion: Inclusion {
            position: record.position,
            prev_hash: record.prev_hash,
            hash: record.hash,
            canonical,
            checkpoint,
            verify: INCLUSION_RULE,
        },
        event: record,
    }))
}

/// The parameters of `GET /v1/audit/checkpoints`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointsQuery {
    /// Keyset pagination: only positions strictly greater.
    after: Option<i64>,
    /// Page size: 100 unless given, at most 1000.
    limit: Option<u32>,
}

/// A page of checkpoints.
#[derive(Serialize)]
struct CheckpointPage {
    checkpoints: Vec<Checkpoint>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<i64>,
}

/// `GET /v1/audit/checkpoints`: the signed checkpoints by ascending position.
async fn checkpoints(
    inquiry: Inquiry,
    RawQuery(query): RawQuery,
) -> Result<Json<CheckpointPage>, Error> {
    let query: CheckpointsQuery = parse_query(query.as_deref())?;
    let limit = query.limit.unwrap_or(100).clamp(1, Filter::MAX_LIMIT);
    let checkpoints = inquiry.app.auditor.checkpoints(query.after, limit).await?;
    let next_after = (checkpoints.len() == limit as usize)
        .then(|| checkpoints.last().map(|checkpoint| checkpoint.position))
        .flatten();
    inquiry
        .audited("checkpoints", &query, checkpoints.len())
        .await?;
    Ok(Json(CheckpointPage {
        checkpoints,
        next_after,
    }))
}

/// The days a summary covers when `from` is not given.
const SUMMARY_DEFAULT_DAYS: i64 = 30;
/// The most days one summary covers.
const SUMMARY_MAX_DAYS: i64 = 366;

/// The parameters of `GET /v1/audit/summary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    platform: Option<String>,
    purpose: Option<String>,
    bank: Option<String>,
}

impl SummaryQuery {
    /// The filter in force at `now`: `from` defaults to 30 days before `to` (or now), and the
    /// range (up to now when `to` is absent) spans at most 366 days.
    fn resolve(self, now: DateTime<Utc>) -> Result<SummaryFilter, Error> {
        let end = self.to.unwrap_or(now);
        let from = self
            .from
            .unwrap_or(end - chrono::Duration::days(SUMMARY_DEFAULT_DAYS));
        if self.to.is_some_and(|to| to <= from) {
            return Err(Error::InvalidRequest("`to` must be after `from`".into()));
        }
        if end - from > chrono::Duration::days(SUMMARY_MAX_DAYS) {
            return Err(Error::InvalidRequest(format!(
                "a summary covers at most {SUMMARY_MAX_DAYS} days (from {from} to {}); narrow \
                 `from` and `to`",
                self.to.map_or("now".to_owned(), |to| to.to_string())
            )));
        }
        Ok(SummaryFilter {
            from,
            to: self.to,
            platform: self.platform,
            purpose: self.purpose,
            bank: self.bank,
        })
    }
}

/// A summary: counts by day, platform, purpose and decision over `[from, to)`.
#[derive(Serialize)]
struct Summary {
    rows: Vec<SummaryRow>,
    from: DateTime<Utc>,
    /// Absent: up to now.
    to: Option<DateTime<Utc>>,
}

/// `GET /v1/audit/summary`: events counted by UTC day, platform, purpose and decision.
async fn summary(inquiry: Inquiry, RawQuery(query): RawQuery) -> Result<Json<Summary>, Error> {
    let filter = parse_query::<SummaryQuery>(query.as_deref())?.resolve(Utc::now())?;
    let rows = inquiry.app.store.audit_summary(&filter).await?;
    inquiry.audited("summary", &filter, rows.len()).await?;
    Ok(Json(Summary {
        rows,
        from: filter.from,
        to: filter.to,
    }))
}

/// One whole-log verification at a time per instance: each reads the entire log.
static VERIFICATIONS: Semaphore = Semaphore::const_new(1);

/// The outcome of `GET /v1/audit/verify`.
#[derive(Serialize)]
struct Verification {
    ok: bool,
    events_checked: u64,
    checkpoints_checked: u64,
    /// The last position that checked out and its hash; `None` when none did.
    head: Option<Head>,
    first_broken: Option<Broken>,
}

#[derive(Serialize)]
struct Head {
    position: i64,
    /// Hex.
    hash: String,
}

#[derive(Serialize)]
struct Broken {
    position: i64,
    reason: String,
}

/// `GET /v1/audit/verify`: runs the verifier `bankgate audit verify` runs over the whole log,
/// against the gateway's own public keys (those of its JWKS). A broken log is a finding (200
/// with `ok: false`), not an error.
async fn verify(inquiry: Inquiry) -> Result<Json<Verification>, Error> {
    let app = &inquiry.app;
    let keys = VerifyingKeys::from_jwks(&app.tokens.jwks().to_string())
        .map_err(|error| Error::Internal(format!("the gateway's JWKS: {error}")))?;
    let options = VerifyOptions { keys, from: None };
    let report = {
        let _only = VERIFICATIONS
            .acquire()
            .await
            .map_err(|_| Error::Internal("the verification semaphore is closed".into()))?;
        verify_chain(app.store.as_ref(), &options, |_| {}).await?
    };
    let verification = Verification {
        ok: report.is_intact(),
        events_checked: report.n_events,
        checkpoints_checked: report.n_checkpoints,
        head: (report.last > 0).then(|| Head {
            position: report.last,
            hash: report.last_hash.clone(),
        }),
        first_broken: report.first_break.map(|broken| Broken {
            position: broken.position,
            reason: broken.what,
        }),
    };
    inquiry
        .audited(
            "verify",
            serde_json::json!({
                "ok": verification.ok,
                "through": report.last,
                "first_broken": verification.first_broken.as_ref().map(|broken| broken.position),
            }),
            usize::try_from(report.n_events).unwrap_or(usize::MAX),
        )
        .await?;
    Ok(Json(verification))
}

/// The query string as `T`, or 400 saying why not (U+0000 anywhere in it included: the
/// filters reach PostgreSQL text).
fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, Error> {
    input::query(query).map_err(Error::InvalidRequest)
}
