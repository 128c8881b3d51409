//! The decision, data-driven: one base request that is allowed, and one change per case.

use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::adapters::AccountRef;
use crate::consent::ConsentStatus;
use crate::oauth::{AuthMethod, Client, Role};
use crate::store::access::AccessCount;

fn policies() -> PolicySet {
    PolicySet::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .expect("the bundled policies load")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 10, 0, 0).unwrap()
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "https://gateway.example".into(),
        aud: "https://gateway.example".into(),
        sub: "consent-1".into(),
        client_id: "messenger".into(),
        scope: "accounts balances".into(),
        exp: 0,
        iat: 0,
        jti: "jti-1".into(),
        cnf: None,
    }
}

fn consent() -> Consent {
    Consent {
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
        dpop_jkt: None,
        created_at: now() - Duration::days(10),
        expires_at: now() + Duration::days(80),
    }
}

fn client() -> Client {
    Client {
        client_id: "messenger".into(),
        name: "Messenger".into(),
        secret_hash: String::new(),
        role: Role::Platform,
        redirect_uris: vec![],
        allowed_purposes: vec!["balance-alerts".into()],
        region: "EEA".into(),
        created_at: now(),
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        jwks: None,
        dpop_bound_access_tokens: false,
        webhook_url: None,
        bank_id: None,
        jwks_uri: None,
        registration_token_hash: String::new(),
    }
}

/// The state of an allowed, unattended balances request that took the day's second unit.
fn state() -> AccessState {
    AccessState {
        token: TokenState::Active,
        proof_fresh: None,
        client: Some(client()),
        consent: Some(consent()),
        budget: Some(AccessCount {
            admitted: true,
            used: 2,
        }),
        bank_grant: None,
        account: Some(AccountRef {
            account_id: "acc-1".into(),
            bank_ref: "bank-ref-1".into(),
        }),
    }
}

/// One case: changes to the base claims, path, presence and state, and the expected denial.
struct Case {
    claims: fn(&mut AccessClaims),
    path: &'static str,
    presence: Presence,
    state: fn(&mut AccessState),
}

const BASE: Case = Case {
    claims: |_| {},
    path: "/v1/accounts/acc-1/balances",
    presence: Presence::Unattended,
    state: |_| {},
};

#[track_caller]
fn check(case: Case, expected: Result<(), Denial>) {
    let mut claims = claims();
    (case.claims)(&mut claims);
    let mut state = state();
    (case.state)(&mut state);
    let path = DataPath::parse(case.path).expect("a data path");
    let request = Request {
        claims: &claims,
        path: &path,
        presence: case.presence,
        now: now(),
        request_id: Some("r-1"),
    };
    let decided = decide(&request, &state, &policies()).map(|_| ());
    assert_eq!(decided, expected);
}

#[test]
fn denials() {
    use Denial::*;
    check(BASE, Ok(()));
    let state = |change: fn(&mut AccessState)| Case {
        state: change,
        ..BASE
    };
    check(state(|s| s.token = TokenState::Revoked), Err(TokenRevoked));
    check(state(|s| s.token = TokenState::Unknown), Err(TokenUnknown));
    check(state(|s| s.proof_fresh = Some(false)), Err(ProofReplayed));
    check(state(|s| s.proof_fresh = Some(true)), Ok(()));
    check(state(|s| s.consent = None), Err(ConsentNotFound));
    check(
        state(|s| s.consent.as_mut().unwrap().client_id = "other-app".into()),
        Err(ConsentNotFound),
    );
    check(
        state(|s| s.consent.as_mut().unwrap().status = ConsentStatus::Revoked),
        Err(Consent(Unusable::Revoked)),
    );
    check(
        state(|s| s.consent.as_mut().unwrap().status = ConsentStatus::Expired),
        Err(Consent(Unusable::Expired)),
    );
    check(
        state(|s| s.consent.as_mut().unwrap().expires_at = now()),
        Err(Consent(Unusable::Expired)),
    );
    check(
        state(|s| s.consent.as_mut().unwrap().status = ConsentStatus::AwaitingAuthorisation),
        Err(Consent(Unusable::NotAuthorised(
            ConsentStatus::AwaitingAuthorisation,
        ))),
    );
    check(
        state(|s| s.consent.as_mut().unwrap().scopes = vec![Scope::Accounts]),
        Err(ScopeNotGranted(Scope::Balances)),
    );
    check(
        Case {
            claims: |c| c.scope = "consents:manage".into(),
            ..BASE
        },
        Err(ScopeNotGranted(Scope::Balances)),
    );
    check(state(|s| s.client = None), Err(PlatformNotRegistered));
    check(
        state(|s| s.client.as_mut().unwrap().allowed_purposes = vec![]),
        Err(Policy(policy::Refusal::NotApproved(
            "balance-alerts".into(),
        ))),
    );
    check(
        state(|s| s.client.as_mut().unwrap().region = "US".into()),
        Err(Policy(policy::Refusal::Region {
            purpose: "balance-alerts".into(),
            region: "US".into(),
            allowed: "EEA, UK".into(),
        })),
    );
    check(
        state(|s| s.consent.as_mut().unwrap().purpose = "retired-purpose".into()),
        Err(Policy(policy::Refusal::Withdrawn("retired-purpose".into()))),
    );
    // The consent covers transactions, the policy in force no longer does.
    check(
        Case {
            claims: |c| c.scope = "accounts transactions".into(),
            path: "/v1/accounts/acc-1/transactions",
            state: |s| s.consent.as_mut().unwrap().scopes = vec![Scope::Transactions],
            ..BASE
        },
        Err(Policy(policy::Refusal::Scope {
            purpose: "balance-alerts".into(),
            scope: Scope::Transactions,
        })),
    );
    check(
        state(|s| s.consent.as_mut().unwrap().created_at = now() - Duration::days(91)),
        Err(Policy(policy::Refusal::ConsentTooOld {
            purpose: "balance-alerts".into(),
            days: 90,
        })),
    );
    check(
        state(|s| {
            s.budget = Some(AccessCount {
                admitted: false,
                used: 4,
            })
        }),
        Err(BudgetSpent {
            purpose: "balance-alerts".into(),
            limit: 4,
            retry_after_secs: 14 * 3600,
        }),
    );
    check(state(|s| s.budget = None), Err(BudgetUncounted));
    // With the user present nothing is counted, and a spent budget does not matter.
    check(
        Case {
            presence: Presence::UserPresent,
            state: |s| {
                s.budget = Some(AccessCount {
                    admitted: false,
                    used: 4,
                })
            },
            ..BASE
        },
        Ok(()),
    );
    check(
        Case {
            presence: Presence::UserPresent,
            state: |s| s.budget = None,
            ..BASE
        },
        Ok(()),
    );
}

#[test]
fn a_grant_carries_what_the_handler_needs() {
    let claims = claims();
    let path = DataPath::parse("/v1/accounts/acc-1/balances").unwrap();
    let request = Request {
        claims: &claims,
        path: &path,
        presence: Presence::Unattended,
        now: now(),
        request_id: Some("r-1"),
    };
    let policies = policies();
    let grant = decide(&request, &state(), &policies).unwrap();
    assert_eq!(grant.scope, Scope::Balances);
    assert_eq!(grant.account_id.as_deref(), Some("acc-1"));
    assert_eq!(grant.bank_ref.as_deref(), Some("bank-ref-1"));
    assert_eq!(grant.budget_day, Some(now().date_naive()));
    assert_eq!(grant.obligations.unattended_limit, Some(4));
    assert!(grant.obligations.fields.contains("amount"));
    let hash = policies.get("balance-alerts").unwrap().hash.clone();
    let event = grant
        .facts
        .released(vec!["amount".into(), "currency".into()], 2);
    assert_eq!(event.decision, Decision::Allow);
    assert_eq!(event.actor, "messenger");
    assert_eq!(event.platform.as_deref(), Some("messenger"));
    assert_eq!(event.consent.as_deref(), Some("consent-1"));
    assert_eq!(event.bank.as_deref(), Some("demo-bank"));
    assert_eq!(event.user_ref.as_deref(), Some("u-81f3"));
    assert_eq!(event.purpose.as_deref(), Some("balance-alerts"));
    assert_eq!(event.policy_hash, Some(hash));
    assert_eq!(event.categories, ["balances"]);
    assert_eq!(event.fields, ["amount", "currency"]);
    assert_eq!(event.n_records, 2);
    assert_eq!(event.request_id.as_deref(), Some("r-1"));
}

#[test]
fn another_clients_consent_leaves_no_trace_of_it_in_the_facts() {
    let claims = claims();
    let path = DataPath::parse("/v1/accounts").unwrap();
    let request = Request {
        claims: &claims,
        path: &path,
        presence: Presence::Unattended,
        now: now(),
        request_id: None,
    };
    let mut state = state();
    state.consent.as_mut().unwrap().client_id = "other-app".into();
    let facts = Facts::of(&request, &state, &policies());
    assert_eq!(facts.bank, None);
    assert_eq!(facts.user_ref, None);
    assert_eq!(facts.purpose, None);
    assert_eq!(facts.consent, "consent-1");
}

#[test]
fn the_budget_is_asked_for_only_when_unattended() {
    let claims = claims();
    let path = DataPath::parse("/v1/accounts").unwrap();
    let policies = policies();
    let mut request = Request {
        claims: &claims,
        path: &path,
        presence: Presence::Unattended,
        now: now(),
        request_id: None,
    };
    let query = request.query(None, &policies);
    let data = query.data.unwrap();
    let budget = data.budget.unwrap();
    assert_eq!(budget.day, now().date_naive());
    assert!(budget.limits.contains(&("balance-alerts".into(), 4)));
    assert_eq!(data.consent_id, "consent-1");
    request.presence = Presence::UserPresent;
    assert_eq!(request.query(None, &policies).data.unwrap().budget, None);
}

#[track_caller]
fn check_path(path: &str, expected: Option<(Scope, Option<&str>)>) {
    let parsed = DataPath::parse(path);
    let parsed = parsed
        .as_ref()
        .map(|path| (path.scope, path.account_id.as_deref()));
    assert_eq!(parsed, expected, "{path}");
}

#[test]
fn paths_are_data_paths_exactly_when_they_have_a_route() {
    use Scope::*;
    check_path("/v1/accounts", Some((Accounts, None)));
    check_path(
        "/v1/accounts/acc_1/balances",
        Some((Balances, Some("acc_1"))),
    );
    check_path(
        "/v1/accounts/acc_1/transactions",
        Some((Transactions, Some("acc_1"))),
    );
    check_path("/v1/identity", Some((Identity, None)));
    // No route, so not a data path.
    check_path("/v1/accounts/acc_1", None);
    check_path("/v1/accounts/", None);
    check_path("/v1/accounts//balances", None);
    check_path("/v1/accounts/acc_1/owners/x", None);
    check_path("/v1/accounts/acc_1/balances/x", None);
    check_path("/v1/identity/x", None);
    check_path("/v1/audit/events", None);
    for route in DATA_ROUTES {
        let sample = route.pattern.replace(ACCOUNT_ID, "acc-9");
        check_path(
            &sample,
            Some((
                route.scope,
                route.pattern.contains(ACCOUNT_ID).then_some("acc-9"),
            )),
        );
    }
}
