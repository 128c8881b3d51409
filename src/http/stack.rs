//! The one place the tower stack is assembled. Read it top to bottom: a request passes the
//! layers in this order; a response passes them back in reverse.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_http::body::Limited;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::trace::TraceLayer;

use super::X_REQUEST_ID;
use super::access::{self, AccessCheck};
use super::authn::{self, Authn};
use super::observe::ObserveLayer;
use super::problem::ProblemLayer;
use super::routes;
use crate::app::App;

/// The gateway as one service: what `serve` runs and what tests call with `oneshot`.
pub type GatewayService = BoxCloneSyncService<Request, Response, std::convert::Infallible>;

/// Builds the whole stack over the routes.
pub fn service(app: Arc<App>) -> GatewayService {
    let config = &app.config;

    // Data: one access decision (token, consent, policy, budget: one read of the store),
    // audited at once when it denies; the handler audits what it releases before it leaves.
    let data = ServiceBuilder::new()
        .layer(from_fn_with_state(
            AccessCheck::for_app(&app),
            access::check,
        )) // inserts Grant
        .service(routes::data::service(app.clone()));

    // The other API routes: authenticated (inserts Principal), then each route checks it.
    let authn = from_fn_with_state(Authn::for_app(&app), authn::authenticate);

    // Compliance: authenticated; the routes check the compliance scope and audit each query.
    let compliance = ServiceBuilder::new()
        .layer(authn.clone())
        .service(routes::compliance::router(app.clone()));

    // A bank's own adapter: authenticated; the routes check the bank principal (audited).
    let bank_adapters = ServiceBuilder::new()
        .layer(authn.clone())
        .service(routes::banks::adapter_router(app.clone()));

    // Consent management: authenticated; the routes check tenant and token kind.
    let consents = ServiceBuilder::new()
        .layer(authn.clone())
        .service(routes::consents::router(app.clone()));

    // Payments: authenticated; the routes check the payment token and its consent.
    let payments = ServiceBuilder::new()
        .layer(authn.clone())
        .service(routes::payments::router(app.clone()));

    // Verification of payee: authenticated; the route checks the platform's management token.
    let payee_verifications = ServiceBuilder::new()
        .layer(authn.clone())
        .service(routes::payee_verifications::router(app.clone()));

    // The payee directory: authenticated; the routes check the payee consent's token.
    let payees = ServiceBuilder::new()
        .layer(authn.clone())
        .service(routes::payees::router(app.clone()));

    // Notification subscriptions: authenticated; the routes check tenant and token kind.
    let subscriptions = ServiceBuilder::new()
        .layer(authn.clone())
        .service(routes::subscriptions::router(app.clone()));

    let mut router = Router::new()
        .merge(routes::meta::router(app.clone()))
        .merge(routes::oauth::router(app.clone()))
        .merge(routes::me::router(app.clone()))
        .merge(routes::console::router())
        .merge(routes::admin::router(app.clone()))
        .merge(routes::purposes::router(app.clone()))
        .merge(routes::banks::router(app.clone()))
        .route_service("/v1/banks/{bank_id}/adapter", bank_adapters.clone())
        .route_service("/v1/banks/{bank_id}/adapter/{*rest}", bank_adapters)
        .route_service("/v1/audit/{*rest}", compliance)
        .route_service("/v1/consents", consents.clone())
        .route_service("/v1/consents/{*rest}", consents.clone())
        // A bank revokes a consent at its own bank.
        .route_service(
            "/v1/banks/{bank_id}/consents/{consent_id}",
            consents.clone(),
        )
        .route_service("/v1/webhooks/{*rest}", consents)
        .route_service("/v1/payee-verifications", payee_verifications)
        .route_service("/v1/payees", payees.clone())
        .route_service("/v1/payees/{*rest}", payees)
        .route_service("/v1/payments", payments.clone())
        .route_service("/v1/payments/{*rest}", payments)
        .route_service("/v1/subscriptions", subscriptions.clone())
        .route_service("/v1/subscriptions/{*rest}", subscriptions);
    // Exactly the data routes, GET only: any other path under /v1/accounts has no route (404,
    // not a data request), and another method is 405 before any decision (a POST or TRACE
    // released data, found by schemathesis).
    for route in routes::data::DATA_ROUTES {
        router = router.route(route.pattern, axum::routing::get_service(data.clone()));
    }

    let stack = ServiceBuilder::new()
        .map_response(|response: http::Response<_>| response.map(Body::new))
        // Mark credentials sensitive before anything can log them.
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            COOKIE,
        ]))
        .layer(SetSensitiveResponseHeadersLayer::new([SET_COOKIE]))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
        .layer(
            // Spans carry the path only: query strings hold codes and request URIs. The span
            // continues the platform's trace (`traceparent`), or starts one.
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let span = tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = super::request_id(request.headers()).unwrap_or_default(),
                        trace_id = tracing::field::Empty,
                    );
                    crate::telemetry::traces::continue_trace(&span, request.headers());
                    span
                })
                // The response's line is the observe layer's, which knows more.
                .on_response(())
                .on_failure(()),
        )
        // One log line per response: request id, route, status, latency, client, bank.
        .layer(ObserveLayer)
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(ProblemLayer) // every error below becomes problem+json here
        .timeout(config.request_timeout)
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .load_shed()
        .concurrency_limit(config.max_in_flight)
        .service(router.into_service::<Limited<Body>>());
    BoxCloneSyncService::new(stack)
}
