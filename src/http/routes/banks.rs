//! Banks: the directory platforms build against, and adapter registration by the banks
//! themselves.
//!
//! - `GET /v1/banks` (public): every bank this gateway reaches, with its profile and the data
//!   scopes it offers.
//! - `GET /v1/banks/{bank_id}` (public): one bank, its active manifest version (from the
//!   store) and whether this instance runs it.
//! - `PUT /v1/banks/{bank_id}/adapter` (a `bank` client's `adapter:manage` token): registers a
//!   new manifest version, given as the JSON form of an `adapters/*.toml` manifest. It is
//!   validated (schema with unknown fields refused, known profile, well-formed `https` URLs
//!   without credentials — `http` only on loopback —, credentials by environment-variable
//!   reference only and set on this gateway,
//!   sane limits, mapping rules that compile) and, with `?check=live`, checked against the
//!   bank's API (OAuth metadata, token endpoint) before it is activated. The registration is
//!   audited (`adapter_registered`) before it takes effect, every version is kept, and the new
//!   version is in force on this instance at once and on the others within one refresh
//!   interval. A bank client is bound to one bank: another bank's adapter is a 403 (audited).
//! - `GET /v1/banks/{bank_id}/adapter/versions` (the same token): every stored version.
//! - `POST /v1/banks/{bank_id}/event-notifications` (the bank itself, authenticated by its
//!   signature): a bank's pushed event, a Security Event Token as `application/jwt` (UK
//!   OBIE Real Time Event Notification; bankgate registers this URL with banks whose
//!   manifest has `[events]`). Verified against the bank's keys (`adapters::events`); a SET
//!   that does not verify is refused with 400 and its RFC 8935 error code first in `detail`.
//!   A resource update of one of bankgate's subscribed consents makes its refresh due at once
//!   (and runs the engine); a revocation revokes the consent as the bank ended it (audited
//!   with actor `bank:<id>`). Answered 202 (also for resources bankgate does not act on).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use crate::adapters::{Adapter, AdapterError, Bank, Manifest, ManifestError};
use crate::app::App;
use crate::audit::{Action, Decision, Event};
use crate::egress::Egress;
use crate::error::Error;
use crate::http::authn::Principal;
use crate::http::request_id;
use crate::http::routes::input::{self, PathParams, QueryParams};
use crate::oauth::ADAPTER_MANAGE;
use crate::oauth::{Client, Role};

/// The public directory routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/banks", get(list))
        .route("/v1/banks/{bank_id}", get(show))
        .route(
            "/v1/banks/{bank_id}/event-notifications",
            axum::routing::post(event_notification),
        )
        .with_state(app)
}

/// The media type of a pushed SET.
const APPLICATION_JWT: &str = "application/jwt";

async fn event_notification(
    State(app): State<Arc<App>>,
    PathParams(bank_id): PathParams<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Error> {
    use crate::adapters::events::EventRefusal;

    let media_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some(APPLICATION_JWT) {
        return Err(Error::UnsupportedMediaType(format!(
            "an event notification is {APPLICATION_JWT}"
        )));
    }
    let adapter = app
        .banks
        .get(&bank_id)
        .ok_or_else(|| Error::NotFound(format!("no bank {bank_id}")))?;
    let token = std::str::from_utf8(&body)
        .map_err(|_| Error::InvalidRequest("invalid_request: the body is not text".into()))?
        .trim();
    let now = chrono::Utc::now();
    let event = match app
        .event_keys
        .verify(&adapter, token, now.timestamp())
        .await
    {
        None => {
            return Err(Error::NotFound(format!(
                "bank {bank_id} pushes no event notifications"
            )));
        }
        Some(Err(EventRefusal::KeysUnavailable)) => {
            return Err(Error::Bank(AdapterError::Transport(
                "the bank's event keys could not be read".into(),
            )));
        }
        Some(Err(refusal)) => {
            tracing::info!(bank = %bank_id, code = refusal.code(), %refusal,
                "bank event refused");
            return Err(Error::InvalidRequest(format!(
                "{}: {refusal}",
                refusal.code()
            )));
        }
        Some(Ok(event)) => event,
    };
    let Some(bank_consent_id) = event.account_access_consent() else {
        return Ok(StatusCode::ACCEPTED);
    };
    let engine = app.notifier();
    let Some(consent_id) = engine.bank_changed(&bank_id, bank_consent_id, now).await? else {
        return Ok(StatusCode::ACCEPTED);
    };
    if event.consent_revoked {
        if let Some(consent) = app.store.consent(&consent_id).await? {
            let actor = format!("bank:{bank_id}");
            crate::lifecycle::revoke_by_bank(
                &app.lifecycle(),
                &consent,
                &actor,
                crate::adapters::ConsentEnd::Revoked.reason(),
            )
            .await?;
        }
    } else if event.resource_update {
        // At once, on this instance: the job is due, the engine claims it (or another
        // instance's engine does first).
        tokio::spawn(async move {
            if let Err(error) = engine.run_once(chrono::Utc::now()).await {
                tracing::warn!(%error, "notify run after a bank event failed");
            }
        });
    }
    Ok(StatusCode::ACCEPTED)
}

/// The routes of a bank's own adapter; they run behind the authentication layer.
pub fn adapter_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/banks/{bank_id}/adapter", axum::routing::put(register))
        .route("/v1/banks/{bank_id}/adapter/versions", get(versions))
        .with_state(app)
}

fn summary(adapter: &Adapter) -> Value {
    let manifest = &adapter.bank.manifest;
    json!({
        "id": manifest.id,
        "name": manifest.name,
        "country": manifest.country,
        "profile": manifest.profile,
        "scopes": adapter.scopes(),
        "version": adapter.version,
    })
}

async fn list(State(app): State<Arc<App>>) -> Json<Value> {
    let banks: Vec<Value> = app.banks.iter().map(|adapter| summary(&adapter)).collect();
    Json(json!({ "banks": banks }))
}

async fn show(
    State(app): State<Arc<App>>,
    PathParams(bank_id): PathParams<String>,
) -> Result<Json<Value>, Error> {
    input::checked("the bank id", &bank_id)?;
    let stored = app.store.bank(&bank_id).await?;
    let live = app.banks.get(&bank_id);
    let (Some(stored), live) = (stored, live) else {
        return Err(Error::NotFound(format!("no bank {bank_id:?}")));
    };
    let manifest: Option<Manifest> = serde_json::from_value(stored.manifest.clone()).ok();
    let mut body = match (&live, &manifest) {
        (Some(adapter), _) => summary(adapter),
        (None, Some(manifest)) => json!({
            "id": manifest.id,
            "name": manifest.name,
            "country": manifest.country,
            "profile": manifest.profile,
        }),
        (None, None) => json!({ "id": bank_id }),
    };
    body["version"] = json!(stored.version);
    body["registered_at"] = json!(stored.created_at);
    body["live_version"] = json!(live.as_ref().map(|adapter| adapter.version));
    // A manifest holds no secret (credentials are references), so the active one is public.
    body["manifest"] = stored.manifest;
    // bankgate's eIDAS certificates at the bank: what each is for and when it ends (nothing in
    // them is secret: the bank sees them at every call).
    if let Some(eidas) = live.as_ref().and_then(|adapter| adapter.bank.eidas.clone()) {
        let now = chrono::Utc::now();
        body["certificates"] = eidas
            .certificates()
            .into_iter()
            .map(|certificate| {
                let days_left = certificate.days_left(now);
                let mut shown = json!(certificate);
                shown["days_left"] = json!(days_left);
                shown["ends_soon"] = json!(days_left < crate::adapters::eidas::WARN_DAYS);
                shown
            })
            .collect();
    }
    Ok(Json(body))
}

/// The bank client behind `principal`, if it is bound to `bank_id`. A refusal of an
/// authenticated client is audited (`adapter_registered`, `deny`, with its request id); the
/// event's `bank` names `bank_id` only when it is a bank the gateway knows (one it runs, or
/// the caller's own), and its reason quotes the path's id otherwise.
async fn bank_principal(
    app: &App,
    principal: Option<&Principal>,
    bank_id: &str,
    request_id: Option<String>,
) -> Result<Client, Error> {
    let Some(principal) = principal else {
        return Err(Error::Unauthenticated("a bearer token is required".into()));
    };
    let bound = app
        .store
        .client(principal.client_id())
        .await?
        .filter(|client| client.role == Role::Bank && client.bank_id.as_deref() == Some(bank_id));
    let scoped = principal.has_scope(ADAPTER_MANAGE);
    let reason = match bound {
        Some(client) if scoped => return Ok(client),
        _ if !scoped => "an adapter:manage token of a bank client is required".to_owned(),
        _ => format!(
            "this client may not manage the adapter of {}: a bank client manages only the bank \
             it is bound to",
            input::quoted(bank_id)
        ),
    };
    let mut event = Event::new(
        Action::AdapterRegistered,
        principal.client_id(),
        Decision::Deny,
    );
    let known = bound.is_some() || app.banks.get(bank_id).is_some();
    event.bank = known.then(|| bank_id.to_owned());
    event.reason = Some(reason.clone());
    event.request_id = request_id;
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Err(Error::Forbidden(reason))
}

/// The `{bank_id}` of an adapter route. Behind `route_service` the outer router's
/// `{bank_id}` is a path parameter too, so the parameters are read as a map.
fn bank_id_of(params: &HashMap<String, String>) -> Result<String, Error> {
    params
        .get("bank_id")
        .cloned()
        .ok_or_else(|| Error::NotFound("no bank in the path".into()))
}

async fn versions(
    State(app): State<Arc<App>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    PathParams(params): PathParams<HashMap<String, String>>,
) -> Result<Json<Value>, Error> {
    let bank_id = bank_id_of(&params)?;
    bank_principal(&app, principal.as_deref(), &bank_id, request_id(&headers)).await?;
    let versions: Vec<Value> = app
        .store
        .bank_versions(&bank_id)
        .await?
        .into_iter()
        .map(|version| {
            json!({
                "version": version.version,
                "created_at": version.created_at,
                "manifest": version.manifest,
            })
        })
        .collect();
    Ok(Json(json!({ "bank_id": bank_id, "versions": versions })))
}

/// Why a manifest cannot be activated, in words for the bank that sent it.
fn invalid(error: ManifestError) -> Error {
    match error {
        ManifestError::MissingCredential { var, .. } => Error::InvalidRequest(format!(
            "environment variable {var} is not set on the gateway: the operator provisions \
             bankgate's credentials at your bank under the names your manifest references"
        )),
        ManifestError::Invalid { message, .. } => Error::InvalidRequest(message),
        other => Error::InvalidRequest(other.to_string()),
    }
}

async fn register(
    State(app): State<Arc<App>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    PathParams(params): PathParams<HashMap<String, String>>,
    QueryParams(query): QueryParams<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, Error> {
    let bank_id = bank_id_of(&params)?;
    let request_id = request_id(&headers);
    let client = bank_principal(&app, principal.as_deref(), &bank_id, request_id.clone()).await?;
    let live_check = match query.get("check").map(String::as_str) {
        None => false,
        Some("live") => true,
        Some(other) => {
            return Err(Error::InvalidRequest(format!(
                "check={other:?}: the only check is live"
            )));
        }
    };
    let manifest = Manifest::from_json(&body).map_err(Error::InvalidRequest)?;
    let json =
        serde_json::to_value(&manifest).map_err(|error| Error::Internal(error.to_string()))?;
    // Stored as JSON (jsonb), which cannot hold U+0000.
    input::json("the manifest", &json).map_err(Error::InvalidRequest)?;
    if manifest.id != bank_id {
        return Err(Error::InvalidRequest(format!(
            "the manifest's id is {:?}, but this is the adapter of {bank_id:?}",
            manifest.id
        )));
    }
    if manifest.sandbox.is_some() {
        return Err(Error::InvalidRequest(
            "[sandbox] is for manifests bundled with the gateway, not for registrations".into(),
        ));
    }
    manifest.validate().map_err(invalid)?;
    manifest.check_registered_references().map_err(invalid)?;
    check_bank_urls(&manifest, app.banks.egress()).await?;
    let mut adapter = app
        .banks
        .build(manifest.clone(), 0)
        .await
        .map_err(invalid)?;
    // Endpoints read from the bank's metadata obey the same rules as those written down.
    if manifest.oauth.needs_discovery() {
        check_bank_urls(&adapter.bank.manifest, app.banks.egress()).await?;
    }
    let checked = if live_check {
        check_live(&adapter.bank)
            .await
            .map_err(|failure| Error::InvalidRequest(format!("live check failed: {failure}")))?
    } else {
        Vec::new()
    };
    if let Some(active) = app.store.bank(&bank_id).await?
        && active.manifest == json
        && app
            .banks
            .get(&bank_id)
            .is_some_and(|running| running.version == active.version)
    {
        let body = json!({
            "bank_id": bank_id, "version": active.version, "changed": false, "checks": checked,
        });
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    // Audited before it takes effect: without the record, nothing changes (fail closed).
    let mut event = Event::new(
        Action::AdapterRegistered,
        &client.client_id,
        Decision::Allow,
    );
    event.bank = Some(bank_id.clone());
    event.request_id = request_id;
    event.reason = Some(format!(
        "manifest sha256:{} profile {}{}",
        hex::encode(&crate::crypto::sha256(json.to_string().as_bytes())[..8]),
        manifest.profile,
        if live_check {
            "; live check passed"
        } else {
            ""
        }
    ));
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    let stored = app.store.put_bank(&bank_id, &json).await?;
    adapter.version = stored.version;
    let adapter = app.banks.activate(adapter);
    let mut body = summary(&adapter);
    body["bank_id"] = json!(bank_id);
    body["changed"] = json!(true);
    body["checks"] = json!(checked);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Where a registered adapter may send bankgate's calls: `https` only, to public addresses —
/// as written (a literal address in any spelling, `localhost` and other local names) and as
/// its names resolve now, by the same classification every connection to the bank is held to
/// later ([`Egress`]). With `allow_private_bank_hosts` (the embedded default, for sandboxes
/// and tests) any address is allowed, and `http` on loopback.
async fn check_bank_urls(manifest: &Manifest, egress: &Egress) -> Result<(), Error> {
    let oauth = &manifest.oauth;
    let urls = [
        ("api_base_url", Some(&manifest.api_base_url)),
        ("oauth.issuer", oauth.issuer.as_ref()),
        (
            "oauth.authorization_endpoint",
            Some(&oauth.authorization_endpoint),
        ),
        ("oauth.token_endpoint", Some(&oauth.token_endpoint)),
        (
            "oauth.revocation_endpoint",
            oauth.revocation_endpoint.as_ref(),
        ),
        (
            "oauth.pushed_authorization_request_endpoint",
            oauth.pushed_authorization_request_endpoint.as_ref(),
        ),
    ];
    for (field, url) in urls {
        // An endpoint left out is read from the metadata, and checked once it is.
        let Some(url) = url.filter(|url| !url.is_empty()) else {
            continue;
        };
        let parsed = url::Url::parse(url)
            .map_err(|error| Error::InvalidRequest(format!("{field}: {error}")))?;
        egress
            .check_url_resolved(&parsed)
            .await
            .map_err(|refused| {
                Error::InvalidRequest(format!(
                    "{field}: a registered adapter must reach the bank at a public address \
                 ({refused})"
                ))
            })?;
        let loopback = match parsed.host() {
            Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if parsed.scheme() != "https" && !(loopback && egress.allows_private()) {
            return Err(Error::InvalidRequest(format!(
                "{field}: a registered adapter must use https"
            )));
        }
    }
    Ok(())
}

/// OAuth error codes a bank's token endpoint may answer that say it works (it authenticated
/// bankgate and understood the request, even if it offers no client credentials grant).
const ANSWERING: &[&str] = &[
    "unsupported_grant_type",
    "unauthorized_client",
    "invalid_scope",
    "invalid_grant",
];

/// Checks the bank's API answers as the manifest says: its RFC 8414 metadata names the
/// manifest's issuer (when it names one) and its token endpoint authenticates bankgate.
/// The failure is described in gateway words (never the bank's message).
async fn check_live(bank: &Bank) -> Result<Vec<&'static str>, String> {
    let oauth = &bank.manifest.oauth;
    let mut passed = Vec::new();
    if let Some(issuer) = &oauth.issuer {
        let url = format!(
            "{}/.well-known/oauth-authorization-server",
            issuer.trim_end_matches('/')
        );
        let body = bank
            .fetch(
                bank.http.get(&url),
                "/.well-known/oauth-authorization-server",
                crate::adapters::outbound::no_error_in_body,
            )
            .await
            .map_err(|error| format!("the OAuth metadata at {url}: {}", what_failed(&error)))?;
        let metadata: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("the OAuth metadata at {url} is not JSON"))?;
        if metadata["issuer"].as_str() != Some(issuer.as_str()) {
            return Err(format!(
                "the OAuth metadata at {url} names another issuer than oauth.issuer"
            ));
        }
        // Every endpoint the manifest names is the one the bank publishes.
        let published: crate::adapters::bank_oauth::discovery::Metadata =
            serde_json::from_value(metadata.clone())
                .map_err(|_| format!("the OAuth metadata at {url} is not a metadata document"))?;
        crate::adapters::bank_oauth::discovery::apply(&mut oauth.clone(), &published)?;
        // bankgate's keys sign in the algorithm their type pins: the bank must take it.
        let keys = [
            (
                "token_endpoint_auth_signing_alg_values_supported",
                "client_key_file_env",
                &bank.keys.assertion,
            ),
            (
                "dpop_signing_alg_values_supported",
                "dpop_key_file_env",
                &bank.keys.dpop,
            ),
        ];
        for (member, variable, key) in keys {
            let (Some(key), Some(taken)) = (key, metadata[member].as_array()) else {
                continue;
            };
            let alg = crate::jose::alg_name(key.alg);
            if !taken.iter().any(|taken| taken.as_str() == Some(alg)) {
                return Err(format!(
                    "the bank takes no {alg} ({member}); give {variable} a key in an \
                     algorithm it takes (`bankgate keys bank --alg …`)"
                ));
            }
        }
        passed.push("oauth_metadata");
    }
    // The bank's own client authentication: its secret, or a `private_key_jwt` assertion; and
    // a DPoP proof (with the server's nonce) where the bank binds its tokens.
    let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
    let basic = crate::adapters::bank_oauth::auth::authenticate(bank, &mut form)
        .map_err(|error| format!("the token endpoint: {}", what_failed(&error)))?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish()
        .into_bytes();
    let mut request = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .uri(&oauth.token_endpoint)
        .header(
            axum::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    if let Some(basic) = basic {
        request = request.header(axum::http::header::AUTHORIZATION, basic);
    }
    let request = request
        .body(body)
        .map_err(|_| "the token endpoint: oauth.token_endpoint is not a usable URL".to_owned())?;
    let response = crate::adapters::bank_oauth::dpop::HttpClient::of(bank)
        .send(request)
        .await
        .map_err(|_| "the token endpoint: unreachable".to_owned())?;
    let status = response.status().as_u16();
    let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    let code = body["error"].as_str();
    match (status, code) {
        (200, _) if body["access_token"].is_string() => {}
        (400 | 401 | 403, Some("invalid_client")) => {
            return Err(
                "the token endpoint refused bankgate's credentials (invalid_client)".into(),
            );
        }
        (400 | 401 | 403, Some(code)) if ANSWERING.contains(&code) => {}
        _ => {
            return Err(format!(
                "the token endpoint did not answer as an OAuth token endpoint (HTTP {status})"
            ));
        }
    }
    passed.push("token_endpoint");
    Ok(passed)
}

fn what_failed(error: &AdapterError) -> String {
    match error.root() {
        AdapterError::Timeout => "no answer in time".into(),
        AdapterError::Transport(_) => "unreachable".into(),
        AdapterError::Status { status } => format!("answered HTTP {status}"),
        AdapterError::TooLarge { .. } => "answered too much".into(),
        _ => "answered something unusable".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::sync::Arc;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::egress::Lookup;

    fn manifest_at(base: &str) -> Manifest {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/adapters/nova-bank.toml");
        let mut manifest = Manifest::load(std::path::Path::new(path)).expect("bundled manifest");
        manifest.rebase(base);
        manifest
    }

    /// A DNS under the registering bank's control: one name points at loopback.
    struct Rebinding;

    impl Lookup for Rebinding {
        fn lookup(&self, name: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
            let answer = match name {
                "api.bank.example" => Ok(vec![[93, 184, 215, 14].into()]),
                "rebound.bank.example" => Ok(vec![[127, 0, 0, 1].into()]),
                _ => Err(std::io::ErrorKind::NotFound.into()),
            };
            Box::pin(async move { answer })
        }
    }

    async fn refusal(base: &str, allow_private: bool) -> Option<String> {
        let egress = Egress::new(allow_private).with_lookup(Arc::new(Rebinding));
        check_bank_urls(&manifest_at(base), &egress)
            .await
            .err()
            .map(|error| error.to_string())
    }

    #[tokio::test]
    async fn registered_adapters_reach_public_https_hosts_only() {
        assert_eq!(refusal("https://api.bank.example", false).await, None);
        assert_eq!(refusal("https://93.184.215.14", false).await, None);
        let expected: HashMap<&str, &str> = HashMap::from([
            ("https://localhost:8443", "RFC 6761"),
            ("https://localhost.:8443", "RFC 6761"),
            ("https://foo.localhost", "RFC 6761"),
            ("https://127.0.0.1", "loopback"),
            ("https://10.1.2.3", "private-use"),
            ("https://192.168.0.10", "private-use"),
            ("https://172.20.0.1", "private-use"),
            ("https://169.254.169.254", "link-local"),
            ("https://[::1]", "loopback"),
            ("https://[fd00::1]", "unique local"),
            ("https://0.0.0.0", "this network"),
            ("https://[::ffff:127.0.0.1]:8443", "IPv4-mapped 127.0.0.1"),
            ("https://[::ffff:7f00:1]", "IPv4-mapped 127.0.0.1"),
            (
                "https://[::ffff:169.254.169.254]",
                "IPv4-mapped 169.254.169.254",
            ),
            ("https://[::ffff:10.0.0.1]", "IPv4-mapped 10.0.0.1"),
            ("https://[::127.0.0.1]", "IPv4-compatible 127.0.0.1"),
            ("https://[64:ff9b::7f00:1]", "NAT64"),
            ("https://[2002:7f00:1::]", "6to4"),
            ("https://100.64.0.1", "shared address space"),
            ("https://0.1.2.3", "this network"),
            ("https://198.18.0.1", "benchmarking"),
            ("https://224.0.0.1", "multicast"),
            ("https://255.255.255.255", "limited broadcast"),
            ("https://203.0.113.7", "TEST-NET-3"),
            ("https://2130706433", "loopback"),
            ("https://rebound.bank.example", "resolves to 127.0.0.1"),
        ]);
        for (base, range) in expected {
            let refused = refusal(base, false).await.unwrap_or_default();
            assert!(
                refused.contains("public address") && refused.contains(range),
                "{base}: {refused}"
            );
        }
        let refused = refusal("http://api.bank.example", false)
            .await
            .unwrap_or_default();
        assert!(refused.contains("must use https"), "{refused}");
    }

    #[tokio::test]
    async fn the_embedded_default_allows_loopback_sandboxes() {
        assert_eq!(refusal("http://127.0.0.1:8095", true).await, None);
        assert_eq!(refusal("https://10.1.2.3", true).await, None);
        assert_eq!(refusal("https://rebound.bank.example", true).await, None);
        let refused = refusal("http://10.1.2.3", true).await.unwrap_or_default();
        assert!(refused.contains("must use https"), "{refused}");
    }
}
