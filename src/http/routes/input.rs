//! Untrusted text on its way in: U+0000 is refused before it goes anywhere (PostgreSQL `text`
//! and `jsonb` cannot hold it), form bodies and query strings are read with OAuth's rules (a
//! form's media type, each parameter once: RFC 6749 §3.1), and identifiers a caller chose are
//! quoted before an audit reason names them. axum's own extractors are wrapped
//! ([`JsonBody`], [`PathParams`], [`QueryParams`]) so that what they refuse is a problem like
//! every other error, never axum's bare-text rejection.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, OAuthError};

/// What a refusal of U+0000 says after the field's name.
pub use crate::model::{quoted, text};

/// [`text`] as a 400 problem.
pub fn checked(field: &str, value: &str) -> Result<(), Error> {
    text(field, value).map_err(Error::InvalidRequest)
}

/// Every string and key of a JSON value: `Err` naming `field` when one holds U+0000.
pub fn json(field: &str, value: &Value) -> Result<(), String> {
    match value {
        Value::String(value) => text(field, value),
        Value::Array(items) => items.iter().try_for_each(|item| json(field, item)),
        Value::Object(members) => members.iter().try_for_each(|(key, member)| {
            text(field, key)?;
            json(field, member)
        }),
        _ => Ok(()),
    }
}

/// Checks the names and values of an `application/x-www-form-urlencoded` string (a form body
/// or a query string), decoded: none holds U+0000 and, when `once`, no name comes twice.
fn parameters(encoded: &[u8], once: bool) -> Result<(), String> {
    let mut seen = HashSet::new();
    for (name, value) in url::form_urlencoded::parse(encoded) {
        text("a parameter name", &name)?;
        text(&name, &value)?;
        if once && !seen.insert(name.clone()) {
            return Err(format!(
                "{name} is repeated; each parameter is sent once (RFC 6749 §3.1)"
            ));
        }
    }
    Ok(())
}

/// A query string as `T`: U+0000 refused, then parsed as axum's `Query` does (repeated
/// parameters are left to `T`).
pub fn query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, String> {
    let query = query.unwrap_or_default();
    parameters(query.as_bytes(), false)?;
    serde_urlencoded::from_str(query)
        .map_err(|error| format!("Failed to deserialize query string: {error}"))
}

/// A query string of an OAuth endpoint as `T`: U+0000 refused, each parameter once.
pub fn oauth_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, String> {
    let query = query.unwrap_or_default();
    parameters(query.as_bytes(), true)?;
    serde_urlencoded::from_str(query).map_err(|error| format!("malformed query string: {error}"))
}

/// A form body as `T`: the media type must be a form's, U+0000 is refused, each parameter
/// comes once.
pub fn form<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, String> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(
            "the body must be a form (Content-Type: application/x-www-form-urlencoded)".into(),
        );
    }
    parameters(body, true)?;
    serde_urlencoded::from_bytes(body).map_err(|error| format!("malformed form body: {error}"))
}

/// The form body of an OAuth endpoint (PAR, token, revocation), read by [`form`]; whatever is
/// wrong with it is an RFC 6749 `invalid_request`, never a bare-text rejection.
pub struct OAuthForm<T>(pub T);

impl<S, T> FromRequest<S> for OAuthForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| OAuthError {
                code: "invalid_request",
                description: rejection.body_text(),
                status: rejection.status(),
            })?;
        form(&headers, &body)
            .map(OAuthForm)
            .map_err(|description| OAuthError::new("invalid_request", description).into())
    }
}

/// What an axum extractor refused, as the problem it is: a body over the limit (413), a
/// body without its media type (415), anything else unreadable (400); the rejection's text
/// (serde's message, naming the field or the position) is the detail.
fn rejected(status: StatusCode, text: String) -> Error {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType(text),
        _ => Error::InvalidRequest(text),
    }
}

/// A JSON body as `T` (axum's `Json` extractor), refused as a problem.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(rejected(rejection.status(), rejection.body_text())),
        }
    }
}

/// Path parameters as `T` (axum's `Path` extractor), refused as a problem.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParams(value)),
            Err(rejection) => Err(rejected(rejection.status(), rejection.body_text())),
        }
    }
}

/// A query string as `T` (axum's `Query` extractor), refused as a problem.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(rejected(rejection.status(), rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        headers
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Sample {
        a: String,
        b: Option<String>,
    }

    #[track_caller]
    fn check_form(body: &str, expected: Result<Sample, &str>) {
        let parsed = form::<Sample>(&form_headers(), body.as_bytes());
        match expected {
            Ok(sample) => assert_eq!(parsed, Ok(sample), "{body}"),
            Err(part) => {
                let error = parsed.expect_err(body);
                assert!(error.contains(part), "{body}: {error}");
            }
        }
    }

    #[test]
    fn forms_are_read_with_oauth_rules() {
        let sample = |a: &str, b: Option<&str>| Sample {
            a: a.into(),
            b: b.map(str::to_owned),
        };
        check_form("a=1", Ok(sample("1", None)));
        check_form("a=1&b=x%20y&extra=ignored", Ok(sample("1", Some("x y"))));
        check_form("a=1&a=2", Err("a is repeated"));
        check_form("a=1&b=2&b=2", Err("b is repeated"));
        check_form("a=x%00y", Err("a contains U+0000"));
        check_form("a=1&b%00=2", Err("a parameter name contains U+0000"));
        check_form("b=2", Err("missing field `a`"));
        let json = form::<Sample>(&HeaderMap::new(), b"a=1").unwrap_err();
        assert!(json.contains("Content-Type"), "{json}");
    }

    #[test]
    fn queries_refuse_nul_and_oauth_queries_repeats() {
        assert_eq!(
            query::<Sample>(Some("a=1&b=2")).unwrap(),
            Sample {
                a: "1".into(),
                b: Some("2".into())
            }
        );
        assert!(
            query::<Sample>(Some("a=%00"))
                .unwrap_err()
                .contains("U+0000")
        );
        assert!(
            oauth_query::<Sample>(Some("a=1&a=1"))
                .unwrap_err()
                .contains("repeated")
        );
    }

    #[test]
    fn json_strings_and_keys_are_checked() {
        assert_eq!(
            json("m", &serde_json::json!({"a": ["b", 1, {"c": "d"}]})),
            Ok(())
        );
        assert!(json("m", &serde_json::json!({"a": ["b\u{0}"]})).is_err());
        assert!(json("m", &serde_json::json!({"a\u{0}": 1})).is_err());
    }

    #[test]
    fn quoted_identifiers_are_escaped_and_cut() {
        assert_eq!(quoted("demo-bank"), "\"demo-bank\"");
        assert_eq!(
            quoted("=HYPERLINK(\"x\")\u{0}"),
            "\"=HYPERLINK(\\\"x\\\")\\0\""
        );
        let long = "x".repeat(100);
        assert_eq!(quoted(&long), format!("\"{}\"…", "x".repeat(64)));
    }
}
