//! Readiness: whether this instance can serve requests now (`/readyz`), part by part, so a
//! load balancer takes it out of rotation and an operator sees which part failed.

use std::time::Duration;

use serde::Serialize;

use super::App;

/// How long the store may take to answer the readiness query.
const STORE_DEADLINE: Duration = Duration::from_secs(2);

/// One part's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `store`, `audit_writer`, `policies` or `banks`.
    pub part: &'static str,
    pub ready: bool,
    /// What was found, in gateway words (never a database message).
    pub detail: String,
}

/// Every part's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub checks: Vec<Check>,
}

impl Readiness {
    /// Whether every part is ready.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|check| check.ready)
    }

    /// The parts that are not ready, with what was found: `store (unreachable), …`.
    pub fn failing(&self) -> String {
        self.checks
            .iter()
            .filter(|check| !check.ready)
            .map(|check| format!("{} ({})", check.part, check.detail))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Checks the store (one indexed read of the audit chain's head, within two seconds), the
/// audit writer (its task running, room in its queue), the purpose
/// policies (at least one in force) and the bank registry (at least one bank).
pub async fn check(app: &App) -> Readiness {
    let store = match tokio::time::timeout(STORE_DEADLINE, app.store.audit_head()).await {
        Ok(Ok(_)) => Ok(format!("{} store answers", app.store.kind())),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: the store failed");
            Err("the store failed to answer".to_owned())
        }
        Err(_) => Err(format!(
            "the store did not answer within {} s",
            STORE_DEADLINE.as_secs()
        )),
    };
    let audit_writer = app
        .auditor
        .accepting()
        .map(|()| "accepting events".to_owned())
        .map_err(str::to_owned);
    let n_policies = app.policies.current().iter().count();
    let policies = match n_policies {
        0 => Err("no purpose policy is loaded".to_owned()),
        n => Ok(format!("{n} purposes in force")),
    };
    let n_banks = app.banks.iter().count();
    let banks = match n_banks {
        0 => Err("no bank is registered".to_owned()),
        n => Ok(format!("{n} banks registered")),
    };
    let check = |part, result: Result<String, String>| match result {
        Ok(detail) => Check {
            part,
            ready: true,
            detail,
        },
        Err(detail) => Check {
            part,
            ready: false,
            detail,
        },
    };
    Readiness {
        checks: vec![
            check("store", store),
            check("audit_writer", audit_writer),
            check("policies", policies),
            check("banks", banks),
        ],
    }
}
