//! The route templates of the public listener, below the handlers that serve them and the
//! layers that name requests by them (`observe`: log lines and metrics).

/// One route of the public listener: its path template (axum's syntax, as in the routers)
/// and its methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub path: &'static str,
    pub methods: &'static [&'static str],
}

const fn route(path: &'static str, methods: &'static [&'static str]) -> RouteSpec {
    RouteSpec { path, methods }
}

/// Every route the public listener serves. Log lines and metrics name a request by its
/// template from here (never the raw path: no identifiers in labels); `tests/api/problems.rs`
/// walks every one and checks that each is routed and answers errors as problems.
pub const ALL: &[RouteSpec] = &[
    route("/", &["GET"]),
    route("/healthz", &["GET"]),
    route("/readyz", &["GET"]),
    route("/openapi.json", &["GET"]),
    route("/console", &["GET"]),
    route("/console/", &["GET"]),
    route("/console/console.js", &["GET"]),
    route("/console/console.css", &["GET"]),
    route("/.well-known/oauth-authorization-server", &["GET"]),
    route("/.well-known/jwks.json", &["GET"]),
    route("/oauth/par", &["POST"]),
    route("/oauth/authorize", &["GET", "POST"]),
    route("/oauth/callback", &["GET"]),
    route("/oauth/token", &["POST"]),
    route("/oauth/revoke", &["POST"]),
    route("/register/{client_id}", &["GET", "PUT"]),
    route("/me", &["GET"]),
    route("/me/sign-out", &["POST"]),
    route("/me/{bank_id}", &["GET"]),
    route("/me/{bank_id}/revoke", &["POST"]),
    route("/v1/purposes", &["GET"]),
    route("/v1/purposes/{id}", &["GET"]),
    route("/v1/banks", &["GET"]),
    route("/v1/banks/{bank_id}", &["GET"]),
    route("/v1/banks/{bank_id}/adapter", &["PUT"]),
    route("/v1/banks/{bank_id}/adapter/versions", &["GET"]),
    route("/v1/banks/{bank_id}/consents/{consent_id}", &["DELETE"]),
    route("/v1/banks/{bank_id}/event-notifications", &["POST"]),
    route("/v1/accounts", &["GET"]),
    route("/v1/accounts/{account_id}/balances", &["GET"]),
    route("/v1/accounts/{account_id}/transactions", &["GET"]),
    route("/v1/identity", &["GET"]),
    route("/v1/consents", &["GET"]),
    route("/v1/consents/{id}", &["GET", "DELETE"]),
    route("/v1/webhooks/deliveries", &["GET"]),
    route("/v1/payee-verifications", &["POST"]),
    route("/v1/payees", &["GET"]),
    route("/v1/payees/{handle}", &["PUT", "DELETE"]),
    route("/v1/payments", &["POST"]),
    route("/v1/payments/{id}", &["GET"]),
    route("/v1/subscriptions", &["GET", "POST"]),
    route("/v1/subscriptions/{id}", &["DELETE"]),
    route("/v1/audit/events", &["GET"]),
    route("/v1/audit/events/{position}", &["GET"]),
    route("/v1/audit/checkpoints", &["GET"]),
    route("/v1/audit/summary", &["GET"]),
    route("/v1/audit/export", &["GET"]),
    route("/v1/audit/verify", &["GET"]),
    route("/v1/audit/subject", &["GET"]),
    route("/v1/audit/subject/erase", &["POST"]),
    route("/admin/clients", &["POST"]),
    route("/admin/clients/{id}/secret", &["POST"]),
    route("/admin/consents/{id}", &["DELETE"]),
    route("/admin/policies/reload", &["POST"]),
];
