//! The compliance console: one static page (HTML, script and style from `src/http/console/`,
//! bundled into the binary) from which a compliance officer signs in with the client
//! credentials grant and reads the audit log through the compliance API.
//!
//! The page itself needs no authentication: it holds nothing secret, and every API call it
//! makes carries the officer's access token. It runs under a strict Content-Security-Policy
//! (nothing inline, nothing from another origin), so a script injected into an audit field it
//! shows could not run.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The console's policy: its own script, style and API only, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// Revalidate every time: the assets change with the binary and their names do not.
const CACHE_CONTROL: &str = "no-cache";

/// A bundled file and its media type.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_str!("../console/index.html"),
    content_type: "text/html; charset=utf-8",
};

const SCRIPT: Asset = Asset {
    body: include_str!("../console/console.js"),
    content_type: "text/javascript; charset=utf-8",
};

const STYLE: Asset = Asset {
    body: include_str!("../console/console.css"),
    content_type: "text/css; charset=utf-8",
};

/// The console's routes.
pub fn router() -> Router {
    Router::new()
        .route("/console", get(|headers: HeaderMap| serve(&INDEX, headers)))
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }),
        )
        .route(
            "/console/console.js",
            get(|headers: HeaderMap| serve(&SCRIPT, headers)),
        )
        .route(
            "/console/console.css",
            get(|headers: HeaderMap| serve(&STYLE, headers)),
        )
}

/// Answers with `asset`, or 304 when the browser's copy (`If-None-Match`) is current.
async fn serve(asset: &'static Asset, request: HeaderMap) -> Response {
    let etag = format!(
        "\"{}\"",
        &crate::crypto::sha256_hex(asset.body.as_bytes())[..32]
    );
    let current = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    let mut response = if current {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
