//! The person's own door: their connected apps, after signing in through their bank
//! (`broker::sign_in`; the consents and the revocation are `subject::connected`'s).
//!
//! - `GET /me`: the banks a person may sign in with.
//! - `GET /me/{bank_id}`: their consents at that bank across platforms — or, without a
//!   session for that bank, off to the bank to sign in. `?consent={id}` opens the page on one
//!   consent (a platform links its user straight to it; the sign-in keeps it). Starting a
//!   sign-in is limited per client address (the connection's peer, `ConnectInfo`;
//!   `sign_in_starts_per_minute`, see `broker::sign_in::StartLimit`): beyond it the person gets
//!   the error page in their language, `429` with `Retry-After`, and nothing is stored or sent
//!   to the bank. Page views with a session are not counted.
//! - the bank's answer comes back to `/oauth/callback`, which sets the session cookie
//!   ([`signed_in`]) and moves on to the page by a same-site step (so that the `SameSite=Strict`
//!   cookie goes with it).
//! - `POST /me/{bank_id}/revoke`: withdraws one of their consents (form token bound to the
//!   session and the consent); `POST /me/sign-out` ends the session.
//!
//! Server-rendered HTML in English or French (`Accept-Language`), no script, under a strict
//! Content-Security-Policy (nothing but the page's own style, forms to bankgate only). The
//! session is a short-lived `HttpOnly`, `SameSite=Strict` cookie scoped to `/me` (`Secure`
//! when bankgate is served over https).

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, Utc};
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::input;
use super::page::{Lang, STYLE, category, error_page, error_page_in};
use crate::app::App;
use crate::broker::sign_in;
use crate::consent::ConsentStatus;
use crate::error::Error;
use crate::model::WireName;
use crate::model::escape_html as escape;
use crate::subject::Sources;
use crate::subject::connected::{self, ConnectedApp, Revocation, SESSION_LIFETIME_SECS, Session};

/// The session cookie's name.
const COOKIE: &str = "bankgate_person";
/// Where the session cookie goes.
const COOKIE_PATH: &str = "/me";

/// The pages' policy: their own inline style (by hash) and forms to bankgate, nothing else.
static CONTENT_SECURITY_POLICY: LazyLock<String> = LazyLock::new(|| {
    let hash =
        base64::engine::general_purpose::STANDARD.encode(crate::crypto::sha256(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'"
    )
});

/// The connected-apps routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/me", get(banks))
        .route("/me/sign-out", post(sign_out))
        .route("/me/{bank_id}", get(page))
        .route("/me/{bank_id}/revoke", post(revoke))
        .with_state(app)
}

/// A page of these routes.
fn html(status: StatusCode, body: String) -> Response {
    guarded((status, Html(body)).into_response())
}

/// An error page of these routes.
fn failure(lang: Lang, status: StatusCode, message: &str) -> Response {
    guarded(error_page(lang, status, message))
}

/// `response` with the pages' headers: the strict policy, no caching, no referrer.
fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn t(lang: Lang, en: String, fr: String) -> String {
    if lang == Lang::En { en } else { fr }
}

/// The skeleton every page of these routes shares.
fn document(lang: Lang, title: &str, main: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n\
         <main aria-labelledby=\"heading\">\n{main}</main>\n</body></html>",
        code = lang.code(),
        title = escape(title),
    )
}

/// The session a request carries for `bank_id`, if any and still valid.
fn session(app: &App, headers: &HeaderMap, bank_id: &str) -> Option<Session> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == COOKIE)
        .find_map(|cookie| Session::open(&app.sealer, cookie.value(), Utc::now()))
        .filter(|session| session.bank == bank_id)
}

/// A `Set-Cookie` value for `value` (empty and expired: removes the cookie).
fn set_cookie(app: &App, value: &str, max_age_secs: i64) -> Option<HeaderValue> {
    let cookie = Cookie::build((COOKIE, value.to_owned()))
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(app.config.public_url.starts_with("https://"))
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// The bank's display name.
fn bank_name(app: &App, bank_id: &str) -> String {
    app.banks.get(bank_id).map_or_else(
        || bank_id.to_owned(),
        |adapter| adapter.bank.manifest.name.clone(),
    )
}

/// `GET /me`: the banks a person may sign in with.
async fn banks(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let lang = Lang::negotiate(&headers);
    let mut offered: Vec<(String, String)> = app
        .banks
        .iter()
        .filter(|adapter| adapter.offers_sign_in())
        .map(|adapter| {
            let manifest = &adapter.bank.manifest;
            (manifest.name.clone(), manifest.id.clone())
        })
        .collect();
    offered.sort();
    let items: String = offered
        .iter()
        .map(|(name, id)| {
            format!(
                "<li><a href=\"/me/{id}\">{name}</a></li>\n",
                id = escape(id),
                name = escape(name)
            )
        })
        .collect();
    let title = t(
        lang,
        "Your connected apps".into(),
        "Vos applications connectées".into(),
    );
    let intro = t(
        lang,
        "Sign in through your bank to see the apps you let see your bank data through bankgate, \
         and withdraw any of them."
            .into(),
        "Connectez-vous par votre banque pour voir les applications auxquelles vous avez donné \
         accès à vos données bancaires par bankgate, et retirer l'accès de chacune."
            .into(),
    );
    let main = format!(
        "<h1 id=\"heading\">{title}</h1>\n<p>{intro}</p>\n<ul id=\"banks\">\n{items}</ul>\n",
        title = escape(&title),
        intro = escape(&intro),
    );
    html(StatusCode::OK, document(lang, &title, &main))
}

/// The query of `GET /me/{bank_id}`.
#[derive(Deserialize, Default)]
struct PageQuery {
    /// The consent to open the page on.
    consent: Option<String>,
    /// The consent just withdrawn.
    revoked: Option<String>,
}

/// The error page of a sign-in start refused over the client's limit: `429`, `Retry-After`,
/// the message in the person's language.
fn throttled(lang: Lang, retry_after_secs: u64) -> Response {
    let message = t(
        lang,
        format!(
            "Too many sign-ins were started from your address. Please try again in \
             {retry_after_secs} seconds."
        ),
        format!(
            "Trop de connexions ont été commencées depuis votre adresse. Veuillez réessayer \
             dans {retry_after_secs} secondes."
        ),
    );
    let mut response = guarded(error_page_in(lang, StatusCode::TOO_MANY_REQUESTS, &message));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// `GET /me/{bank_id}`: the page, or off to the bank to sign in.
async fn page(
    State(app): State<Arc<App>>,
    Path(bank_id): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let lang = Lang::negotiate(&headers);
    let query: PageQuery = match input::oauth_query(query.as_deref()) {
        Ok(query) => query,
        Err(problem) => return failure(lang, StatusCode::BAD_REQUEST, &problem),
    };
    if !sign_in::offered(&app.banks, &bank_id) {
        return failure(
            lang,
            StatusCode::NOT_FOUND,
            "there is no sign-in at this bank",
        );
    }
    let Some(session) = session(&app, &headers, &bank_id) else {
        // `http::server` puts the peer on every request; none only when called in process.
        let peer = peer.map(|Extension(ConnectInfo(address))| address.ip());
        let focus = query.consent.as_deref();
        return match sign_in::start(&app.broker(), peer, &bank_id, focus).await {
            Ok(url) => Redirect::to(&url).into_response(),
            Err(Error::SignInThrottled { retry_after_secs }) => {
                tracing::debug!(
                    bank = %bank_id,
                    peer = ?peer,
                    retry_after_secs,
                    "sign-in start refused: the client's limit is reached"
                );
                throttled(lang, retry_after_secs)
            }
            Err(error) => {
                tracing::warn!(bank = %bank_id, %error, "sign-in could not start");
                failure(lang, error.status(), &error.safe_detail())
            }
        };
    };
    let policies = app.policies.current();
    let sources = sources(&app, &policies);
    let apps = match connected::connected_apps(&sources, &session, Utc::now()).await {
        Ok(apps) => apps,
        Err(error) => {
            tracing::warn!(%error, "connected apps could not be read");
            return failure(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                "your connected apps cannot be shown right now; try again later",
            );
        }
    };
    // What the page shows leaves only once it is on the record.
    let request_id = crate::http::request_id(&headers);
    if let Err(error) = connected::audit_view(&app.auditor, &session, &apps, request_id).await {
        tracing::warn!(%error, "connected apps view not audited");
        return failure(
            lang,
            StatusCode::SERVICE_UNAVAILABLE,
            "your connected apps cannot be shown right now; try again later",
        );
    }
    let focus = sign_in::focus_of(query.consent.as_deref());
    let revoked = sign_in::focus_of(query.revoked.as_deref());
    let body = render(&Page {
        lang,
        app: &app,
        bank_id: &bank_id,
        bank: &bank_name(&app, &bank_id),
        session: &session,
        apps,
        focus: focus.as_deref(),
        revoked: revoked.as_deref(),
        policies: &policies,
    });
    html(StatusCode::OK, body)
}

fn sources<'a>(app: &'a App, policies: &'a crate::policy::PolicySet) -> Sources<'a> {
    Sources {
        consents: app.store.as_ref(),
        clients: app.store.as_ref(),
        webhooks: app.store.as_ref(),
        auditor: &app.auditor,
        policies,
    }
}

/// The bank's answer to a sign-in, at `/oauth/callback`: the session cookie, and a same-site
/// step on to the page (a redirect straight from the bank's site would leave a
/// `SameSite=Strict` cookie behind).
pub fn signed_in(app: &App, lang: Lang, bank: &str, person: &str, focus: Option<&str>) -> Response {
    let token = Session::new(bank, person, Utc::now()).token(&app.sealer);
    let mut target = format!("/me/{}", escape(bank));
    if let Some(consent) = focus {
        target.push_str(&format!("?consent={}", escape(consent)));
    }
    let title = t(lang, "Signed in".into(), "Connecté".into());
    let go_on = t(lang, "Continue".into(), "Continuer".into());
    let page = format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={target}\"><title>{title}</title>\
         <style>{STYLE}</style></head><body><main aria-labelledby=\"heading\">\
         <h1 id=\"heading\">{title}</h1><p><a id=\"continue\" href=\"{target}\">{go_on}</a></p>\
         </main></body></html>",
        code = lang.code(),
    );
    let mut response = html(StatusCode::OK, page);
    if let Some(cookie) = set_cookie(app, &token, SESSION_LIFETIME_SECS) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The revocation form.
#[derive(Deserialize)]
struct RevokeForm {
    consent_id: String,
    form_token: String,
}

/// `POST /me/{bank_id}/revoke`: withdraws one of the person's consents, then back to the page.
async fn revoke(
    State(app): State<Arc<App>>,
    Path(bank_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = Lang::negotiate(&headers);
    let form = match input::form::<RevokeForm>(&headers, &body) {
        Ok(form) => form,
        Err(problem) => return failure(lang, StatusCode::BAD_REQUEST, &problem),
    };
    let Some(session) = session(&app, &headers, &bank_id) else {
        return failure(
            lang,
            StatusCode::UNAUTHORIZED,
            "your sign-in has ended; sign in again to withdraw an app's access",
        );
    };
    if !session.check_form_token(&app.sealer, &form.consent_id, &form.form_token) {
        return failure(
            lang,
            StatusCode::FORBIDDEN,
            "this form is not valid; start again",
        );
    }
    let policies = app.policies.current();
    let sources = sources(&app, &policies);
    match connected::revoke(&app.lifecycle(), &sources, &session, &form.consent_id).await {
        Ok(Revocation::Revoked | Revocation::AlreadyEnded) => {
            Redirect::to(&format!("/me/{bank_id}?revoked={}", form.consent_id)).into_response()
        }
        Ok(Revocation::NotTheirs) => failure(
            lang,
            StatusCode::NOT_FOUND,
            "you have no such consent at this bank",
        ),
        Err(error) => {
            tracing::warn!(%error, "a person's revocation failed");
            failure(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                "the access could not be withdrawn right now; try again later",
            )
        }
    }
}

/// `POST /me/sign-out`: ends the session.
async fn sign_out(State(app): State<Arc<App>>) -> Response {
    let mut response = Redirect::to("/me").into_response();
    if let Some(cookie) = set_cookie(&app, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Everything the page shows.
struct Page<'a> {
    lang: Lang,
    app: &'a App,
    bank_id: &'a str,
    bank: &'a str,
    session: &'a Session,
    apps: Vec<ConnectedApp>,
    focus: Option<&'a str>,
    revoked: Option<&'a str>,
    policies: &'a crate::policy::PolicySet,
}

fn date(lang: Lang, time: &DateTime<Utc>) -> String {
    match lang {
        Lang::En => time.format("%Y-%m-%d").to_string(),
        Lang::Fr => time.format("%d/%m/%Y").to_string(),
    }
}

fn moment(lang: Lang, time: &DateTime<Utc>) -> String {
    match lang {
        Lang::En => time.format("%Y-%m-%d %H:%M UTC").to_string(),
        Lang::Fr => time.format("%d/%m/%Y %H:%M UTC").to_string(),
    }
}

fn status_text(lang: Lang, status: ConsentStatus) -> &'static str {
    match (lang, status) {
        (Lang::En, ConsentStatus::Authorised) => "Active",
        (Lang::En, ConsentStatus::Revoked) => "Withdrawn",
        (Lang::En, ConsentStatus::Expired) => "Expired",
        (Lang::En, ConsentStatus::Rejected) => "Refused",
        (Lang::En, ConsentStatus::AwaitingAuthorisation) => "Not confirmed",
        (Lang::Fr, ConsentStatus::Authorised) => "Actif",
        (Lang::Fr, ConsentStatus::Revoked) => "Retiré",
        (Lang::Fr, ConsentStatus::Expired) => "Expiré",
        (Lang::Fr, ConsentStatus::Rejected) => "Refusé",
        (Lang::Fr, ConsentStatus::AwaitingAuthorisation) => "Non confirmé",
    }
}

/// One consent's card.
fn card(page: &Page<'_>, app: &ConnectedApp) -> String {
    let lang = page.lang;
    let e = escape;
    let (title, description) = match page.policies.get(&app.purpose) {
        Some(policy) => {
            let (title, description, _) = policy.text_in(lang.code());
            (title.to_owned(), description.trim().to_owned())
        }
        None => (app.purpose.clone(), String::new()),
    };
    let data: Vec<&str> = app
        .scopes
        .iter()
        .map(|scope| category(lang, *scope))
        .collect();
    let last = app.last_access.as_ref().map_or_else(
        || t(lang, "never".into(), "jamais".into()),
        |time| moment(lang, time),
    );
    let accesses: String = app
        .accesses
        .iter()
        .map(|access| {
            let what = access
                .categories
                .iter()
                .filter_map(|name| crate::model::Scope::parse(name))
                .map(|scope| category(lang, scope))
                .collect::<Vec<_>>()
                .join(", ");
            let outcome = match (lang, access.allowed) {
                (Lang::En, true) => "shared",
                (Lang::En, false) => "refused",
                (Lang::Fr, true) => "partagé",
                (Lang::Fr, false) => "refusé",
            };
            format!(
                "<li>{} — {} ({outcome})</li>",
                moment(lang, &access.time),
                e(&what)
            )
        })
        .collect();
    let accesses_label = t(
        lang,
        format!(
            "Accesses in the last {} days: {}",
            connected::ACCESS_WINDOW_DAYS,
            app.accesses.len()
        ),
        format!(
            "Accès des {} derniers jours : {}",
            connected::ACCESS_WINDOW_DAYS,
            app.accesses.len()
        ),
    );
    let withdraw = if app.status == ConsentStatus::Authorised {
        format!(
            "<form method=\"post\" action=\"/me/{bank_id}/revoke\">\
             <input type=\"hidden\" name=\"consent_id\" value=\"{id}\">\
             <input type=\"hidden\" name=\"form_token\" value=\"{token}\">\
             <button type=\"submit\" class=\"revoke\">{label}</button></form>",
            bank_id = e(page.bank_id),
            id = e(&app.consent_id),
            token = e(&page.session.form_token(&page.app.sealer, &app.consent_id)),
            label = e(&t(
                lang,
                format!("Withdraw {}'s access", app.platform_name),
                format!("Retirer l'accès de {}", app.platform_name),
            )),
        )
    } else {
        String::new()
    };
    let focused = if page.focus == Some(app.consent_id.as_str()) {
        " aria-current=\"true\""
    } else {
        ""
    };
    let labels = [
        t(lang, "Purpose".into(), "Finalité".into()),
        t(lang, "Data".into(), "Données".into()),
        t(lang, "Since".into(), "Depuis".into()),
        t(lang, "Until".into(), "Jusqu'au".into()),
        t(lang, "Status".into(), "État".into()),
        t(lang, "Last access".into(), "Dernier accès".into()),
    ];
    format!(
        "<section class=\"card\" id=\"c-{id}\" data-consent=\"{id}\" aria-labelledby=\"h-{id}\"{focused}>\n\
         <h2 id=\"h-{id}\" class=\"platform\">{platform}</h2>\n\
         <dl>\n<dt>{l0}</dt><dd class=\"purpose\">{title}<br><small>{description}</small></dd>\n\
         <dt>{l1}</dt><dd class=\"data\">{data}</dd>\n\
         <dt>{l2}</dt><dd class=\"since\">{since}</dd>\n\
         <dt>{l3}</dt><dd class=\"until\">{until}</dd>\n\
         <dt>{l4}</dt><dd class=\"status\">{status}</dd>\n\
         <dt>{l5}</dt><dd class=\"last-access\">{last}</dd>\n</dl>\n\
         <details class=\"accesses\"><summary>{accesses_label}</summary><ul>{accesses}</ul></details>\n\
         {withdraw}\n</section>\n",
        id = e(&app.consent_id),
        platform = e(&app.platform_name),
        l0 = e(&labels[0]),
        l1 = e(&labels[1]),
        l2 = e(&labels[2]),
        l3 = e(&labels[3]),
        l4 = e(&labels[4]),
        l5 = e(&labels[5]),
        title = e(&title),
        description = e(&description),
        data = e(&data.join(", ")),
        since = date(lang, &app.since),
        until = date(lang, &app.until),
        status = status_text(lang, app.status),
        last = e(&last),
        accesses_label = e(&accesses_label),
    )
}

/// The connected-apps page.
fn render(page: &Page<'_>) -> String {
    let lang = page.lang;
    let title = t(
        lang,
        format!("Your connected apps at {}", page.bank),
        format!("Vos applications connectées chez {}", page.bank),
    );
    let notice = page
        .revoked
        .and_then(|id| page.apps.iter().find(|app| app.consent_id == id))
        .map(|app| {
            format!(
                "<p role=\"status\" id=\"notice\">{}</p>\n",
                escape(&t(
                    lang,
                    format!(
                        "{} no longer has access to your data at {}. It has been told.",
                        app.platform_name, page.bank
                    ),
                    format!(
                        "{} n'a plus accès à vos données chez {}. Il en a été informé.",
                        app.platform_name, page.bank
                    ),
                ))
            )
        })
        .unwrap_or_default();
    // The consent the page was opened on comes first.
    let mut order: Vec<&ConnectedApp> = page.apps.iter().collect();
    order.sort_by_key(|app| page.focus != Some(app.consent_id.as_str()));
    let cards: String = if order.is_empty() {
        format!(
            "<p id=\"none\">{}</p>\n",
            escape(&t(
                lang,
                "You have given no app access to your data at this bank through bankgate.".into(),
                "Vous n'avez donné accès à vos données dans cette banque à aucune application par bankgate."
                    .into(),
            ))
        )
    } else {
        order.iter().map(|app| card(page, app)).collect()
    };
    let sign_out = t(lang, "Sign out".into(), "Se déconnecter".into());
    let main = format!(
        "<h1 id=\"heading\">{heading}</h1>\n{notice}{cards}\
         <form method=\"post\" action=\"/me/sign-out\"><button type=\"submit\" id=\"sign-out\">{sign_out}</button></form>\n",
        heading = escape(&title),
        sign_out = escape(&sign_out),
    );
    document(lang, &title, &main)
}
