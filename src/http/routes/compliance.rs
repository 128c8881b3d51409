//! Compliance API: the audit log, for clients with the `compliance` role (token scope
//! `audit:read`). Every query is itself audited before its answer leaves.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;

use crate::app::App;
use crate::audit::{Action, Decision, Event, Filter, Record};
use crate::error::Error;
use crate::http::authn::Principal;
use crate::oauth::AUDIT_READ;

/// The compliance routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/audit/events", get(events))
        .with_state(app)
}

/// A page of events.
#[derive(Serialize)]
struct Page {
    events: Vec<Record>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<i64>,
}

async fn events(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    query: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, Error> {
    if !principal.has_scope(AUDIT_READ) {
        return Err(Error::Forbidden(
            "the audit log is for compliance clients".into(),
        ));
    }
    let Query(filter) = query.map_err(|rejection| Error::InvalidRequest(rejection.body_text()))?;
    // Through the auditor: a `user_ref` filter is pseudonymised like the stored references.
    let events = app.auditor.events(&filter).await?;
    let page_full = events.len() == filter.page_size() as usize;
    let next_after = page_full
        .then(|| events.last().map(|record| record.position))
        .flatten();

    let mut event = Event::new(Action::AuditQueried, principal.client_id(), Decision::Allow);
    event.n_records = u32::try_from(events.len()).unwrap_or(u32::MAX);
    event.reason = serde_json::to_string(&app.auditor.pseudonymise_filter(&filter)).ok();
    event.request_id = crate::http::request_id(&headers);
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(Json(Page { events, next_after }))
}
