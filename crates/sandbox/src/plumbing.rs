//! Small HTTP helpers of the sandbox banks: request parameters, headers, HTML escaping, and the
//! date "today".

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{NaiveDate, Utc};

/// Today, in UTC: synthetic dates count back from it.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Form or query parameters; a repeated parameter is an error (RFC 6749 §3.1).
pub fn parameters(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut parameters = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(raw) {
        let key = key.into_owned();
        if parameters.contains_key(&key) {
            return Err(format!("parameter {key} is repeated"));
        }
        parameters.insert(key, value.into_owned());
    }
    Ok(parameters)
}

/// A header's text, if present and visible ASCII.
pub fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    header_text(headers, header::AUTHORIZATION.as_str())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
}

/// Headers that keep token answers and approval pages out of caches.
pub fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A plain error page (never a redirect).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         </head><body><h1>{title}</h1><p>{}</p></body></html>",
        escape_html(message),
        title = escape_html(title),
    );
    (status, Html(body)).into_response()
}

/// A 302 to `location`.
pub fn found(location: &url::Url) -> Response {
    match HeaderValue::from_str(location.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => error_page(
            StatusCode::BAD_REQUEST,
            "Sandbox Bank",
            "redirect_uri is not usable",
        ),
    }
}

/// Decodes `%XX` escapes and `+` (application/x-www-form-urlencoded, RFC 6749 §2.3.1).
pub fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => decoded.push(b),
        }
        i += 1;
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_escapes() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(parameters(b"a=1&a=2").is_err());
        assert_eq!(parameters(b"a=1&b=x+y").unwrap()["b"], "x y");
    }
}
