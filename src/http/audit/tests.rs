//! Golden tests: each decision the layers below can report, and the exact audit event it
//! becomes (everything but the event's fresh id and time).

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use http::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::consent::ConsentStatus;
use crate::oauth::tokens::AccessClaims;

fn policies() -> PolicySet {
    PolicySet::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .expect("the bundled policies load")
}

fn principal() -> Principal {
    Principal(Arc::new(AccessClaims {
        iss: "https://gateway.example".into(),
        aud: "https://gateway.example".into(),
        sub: "consent-1".into(),
        client_id: "messenger".into(),
        scope: "accounts balances".into(),
        exp: 0,
        iat: 0,
        jti: "jti-1".into(),
        cnf: None,
    }))
}

fn consent() -> Arc<Consent> {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    Arc::new(Consent {
        id: "consent-1".into(),
        client_id: "messenger".into(),
        bank_id: "demo-bank".into(),
        purpose: "balance-alerts".into(),
        scopes: vec![Scope::Accounts, Scope::Balances],
        history_days: 0,
        user_ref: "u-81f3".into(),
        status: ConsentStatus::Authorised,
        policy_hash: "sha256:granted-under".into(),
        redirect_uri: "https://platform.example/callback".into(),
        state: None,
        code_challenge: "challenge".into(),
        created_at: at,
        expires_at: at,
        dpop_jkt: None,
    })
}

/// What a scenario puts on the response.
#[derive(Default)]
struct Reported {
    status: u16,
    scope: Option<Scope>,
    consent: bool,
    denied: Option<&'static str>,
    applied: bool,
    released: Option<(&'static [&'static str], u32)>,
}

fn response(reported: &Reported) -> Response {
    let status = StatusCode::from_u16(reported.status).unwrap();
    let mut response = status.into_response();
    let extensions = response.extensions_mut();
    if let Some(scope) = reported.scope {
        extensions.insert(DataScope(scope));
    }
    if reported.consent {
        extensions.insert(consent());
    }
    if let Some(reason) = reported.denied {
        extensions.insert(Denied(reason.into()));
    }
    if reported.applied {
        extensions.insert(PolicyApplied {
            purpose: "balance-alerts".into(),
            hash: "sha256:applied".into(),
        });
    }
    if let Some((fields, n_records)) = reported.released {
        extensions.insert(Released {
            fields: fields.iter().map(|field| field.to_string()).collect(),
            n_records,
        });
    }
    response
}

/// The event's JSON without its id and time.
fn fields_of(event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap();
    let object = value.as_object_mut().unwrap();
    object.remove("id");
    object.remove("time");
    value
}

#[track_caller]
fn check(name: &str, principal: Option<Principal>, reported: Reported, expected: Option<Value>) {
    let policies = policies();
    let event = decision_event(
        principal.as_ref(),
        Some("req-1".into()),
        &policies,
        &response(&reported),
    );
    assert_eq!(event.as_ref().map(fields_of), expected, "{name}");
}

#[test]
fn decisions_become_exactly_these_events() {
    let policy_hash = policies().get("balance-alerts").unwrap().hash.clone();

    check(
        "released balances",
        Some(principal()),
        Reported {
            status: 200,
            scope: Some(Scope::Balances),
            consent: true,
            applied: true,
            released: Some((&["account_id", "amount", "currency"], 3)),
            ..Reported::default()
        },
        Some(json!({
            "actor": "messenger", "action": "data_access", "platform": "messenger",
            "bank": "demo-bank", "consent": "consent-1", "user_ref": "u-81f3",
            "purpose": "balance-alerts", "policy_hash": "sha256:applied",
            "categories": ["balances"], "fields": ["account_id", "amount", "currency"],
            "n_records": 3, "decision": "allow", "reason": null, "request_id": "req-1"
        })),
    );

    check(
        "denied by the consent layer: the policy in force is named",
        Some(principal()),
        Reported {
            status: 403,
            scope: Some(Scope::Transactions),
            consent: true,
            denied: Some("consent does not cover transactions"),
            ..Reported::default()
        },
        Some(json!({
            "actor": "messenger", "action": "data_access", "platform": "messenger",
            "bank": "demo-bank", "consent": "consent-1", "user_ref": "u-81f3",
            "purpose": "balance-alerts", "policy_hash": policy_hash,
            "categories": ["transactions"], "fields": [], "n_records": 0,
            "decision": "deny", "reason": "consent does not cover transactions",
            "request_id": "req-1"
        })),
    );

    check(
        "denied before any consent was found",
        Some(principal()),
        Reported {
            status: 403,
            scope: Some(Scope::Accounts),
            denied: Some("unknown consent"),
            ..Reported::default()
        },
        Some(json!({
            "actor": "messenger", "action": "data_access", "platform": "messenger",
            "bank": null, "consent": "consent-1", "user_ref": null, "purpose": null,
            "policy_hash": null, "categories": ["accounts"], "fields": [], "n_records": 0,
            "decision": "deny", "reason": "unknown consent", "request_id": "req-1"
        })),
    );

    check(
        "denied by the policy even though the handler had data: nothing counted as released",
        Some(principal()),
        Reported {
            status: 403,
            scope: Some(Scope::Balances),
            consent: true,
            denied: Some("purpose no longer allows balances"),
            applied: true,
            released: Some((&["amount"], 1)),
        },
        Some(json!({
            "actor": "messenger", "action": "data_access", "platform": "messenger",
            "bank": "demo-bank", "consent": "consent-1", "user_ref": "u-81f3",
            "purpose": "balance-alerts", "policy_hash": "sha256:applied",
            "categories": ["balances"], "fields": [], "n_records": 0,
            "decision": "deny", "reason": "purpose no longer allows balances",
            "request_id": "req-1"
        })),
    );

    check(
        "allowed, but the bank failed: an error, nothing released",
        Some(principal()),
        Reported {
            status: 502,
            scope: Some(Scope::Balances),
            consent: true,
            applied: true,
            ..Reported::default()
        },
        Some(json!({
            "actor": "messenger", "action": "data_access", "platform": "messenger",
            "bank": "demo-bank", "consent": "consent-1", "user_ref": "u-81f3",
            "purpose": "balance-alerts", "policy_hash": "sha256:applied",
            "categories": ["balances"], "fields": [], "n_records": 0,
            "decision": "error", "reason": "nothing released: HTTP 502",
            "request_id": "req-1"
        })),
    );

    check(
        "released fields on a failed response do not count",
        Some(principal()),
        Reported {
            status: 500,
            scope: Some(Scope::Accounts),
            consent: true,
            applied: true,
            released: Some((&["id"], 2)),
            ..Reported::default()
        },
        Some(json!({
            "actor": "messenger", "action": "data_access", "platform": "messenger",
            "bank": "demo-bank", "consent": "consent-1", "user_ref": "u-81f3",
            "purpose": "balance-alerts", "policy_hash": "sha256:applied",
            "categories": ["accounts"], "fields": [], "n_records": 0,
            "decision": "error", "reason": "nothing released: HTTP 500",
            "request_id": "req-1"
        })),
    );

    check(
        "no principal (cannot happen below authn, but never unaudited)",
        None,
        Reported {
            status: 403,
            scope: Some(Scope::Accounts),
            denied: Some("no token"),
            ..Reported::default()
        },
        Some(json!({
            "actor": "unknown", "action": "data_access", "platform": null, "bank": null,
            "consent": null, "user_ref": null, "purpose": null, "policy_hash": null,
            "categories": ["accounts"], "fields": [], "n_records": 0, "decision": "deny",
            "reason": "no token", "request_id": "req-1"
        })),
    );

    check(
        "not a data decision (no scope below: an unknown path)",
        Some(principal()),
        Reported {
            status: 404,
            ..Reported::default()
        },
        None,
    );
}
