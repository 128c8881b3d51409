//! Basic credentials, and what a refused client assertion says: each failed check by name,
//! in the `error_description` the client gets.

use serde_json::{Value, json};

use super::*;
use crate::jose::{ClientKey, basic_header};

#[test]
fn basic_round_trips_with_reserved_characters() {
    let header = basic_header("platform:a", "s3c ret/+");
    let credentials = BasicCredentials::parse(Some(&header)).unwrap();
    assert_eq!(credentials.client_id, "platform:a");
    assert_eq!(credentials.secret, "s3c ret/+");
}

#[test]
fn malformed_headers_are_invalid_client() {
    for header in [
        None,
        Some("Bearer x"),
        Some("Basic !!!"),
        Some("Basic Zm9v"),
    ] {
        let error = BasicCredentials::parse(header).unwrap_err();
        assert_eq!(error.code, "invalid_client");
        assert_eq!(error.status, 401);
        assert_eq!(
            error.description,
            "client authentication failed: malformed HTTP Basic credentials"
        );
    }
}

const ISSUER: &str = "https://gateway.example";

fn client(key: &ClientKey) -> Client {
    Client::with_keys(Some(key.jwks()), None)
}

fn claims(change: impl Fn(&mut Value)) -> Value {
    let now = Utc::now().timestamp();
    let mut claims = json!({
        "iss": "app", "sub": "app", "aud": ISSUER, "iat": now, "exp": now + 60, "jti": "j-1",
    });
    change(&mut claims);
    claims
}

#[track_caller]
fn check(client: &Client, assertion: &str, expected: &str) {
    match verify_assertion(client, assertion, ISSUER, Utc::now()) {
        Ok(claims) => panic!("accepted {claims:?}; expected {expected:?}"),
        Err(error) => {
            assert_eq!(error.code, "invalid_client");
            assert_eq!(
                error.description,
                format!("client authentication failed: {expected}")
            );
        }
    }
}

#[test]
fn a_refused_assertion_says_which_check_failed() {
    let key = ClientKey::generate_es256().unwrap();
    let client = client(&key);
    let header = json!({"alg": "ES256", "kid": key.kid});
    let sign = |claims: Value| key.sign_raw(&header, &claims).unwrap();
    let now = Utc::now().timestamp();

    let valid = sign(claims(|_| {}));
    assert_eq!(
        verify_assertion(&client, &valid, ISSUER, Utc::now())
            .unwrap()
            .jti,
        "j-1"
    );
    check(
        &client,
        &sign(claims(|c| {
            c["aud"] = json!(format!("{ISSUER}/oauth/token"))
        })),
        "client assertion: aud must be the issuer identifier https://gateway.example (not an \
         endpoint URL)",
    );
    check(
        &client,
        &sign(claims(|c| c["exp"] = json!(now + 300))),
        "client assertion: exp is more than 60 seconds ahead (an assertion is for one request)",
    );
    check(
        &client,
        &sign(claims(|c| c["exp"] = json!(now - 60))),
        "client assertion: exp is in the past",
    );
    check(
        &client,
        &sign(claims(|c| c["nbf"] = json!(now + 60))),
        "client assertion: nbf is in the future",
    );
    check(
        &client,
        &sign(claims(|c| c["jti"] = json!("j\u{0}1"))),
        "client assertion: jti must not contain U+0000",
    );
    check(
        &client,
        &sign(claims(|c| c["iat"] = json!(now + 60))),
        "client assertion: iat is in the future",
    );
    check(
        &client,
        &sign(claims(|c| c["iss"] = json!("other-app"))),
        "client assertion: iss must be the client_id \"app\"",
    );
    check(
        &client,
        &sign(claims(|c| {
            c.as_object_mut().unwrap().remove("exp");
        })),
        "client assertion: the exp claim is required",
    );
    check(
        &client,
        &sign(claims(|c| {
            c.as_object_mut().unwrap().remove("iat");
        })),
        "client assertion: the iat claim is required",
    );
    check(
        &client,
        &sign(claims(|c| {
            c.as_object_mut().unwrap().remove("jti");
        })),
        "client assertion: jti is required (at most 256 characters), a fresh one per assertion",
    );
    check(
        &client,
        &key.sign_raw(
            &json!({"alg": "ES256", "kid": "rotated-away"}),
            &claims(|_| {}),
        )
        .unwrap(),
        "no key the client registered has kid \"rotated-away\" and alg ES256",
    );
    check(
        &client,
        &key.sign_raw(
            &json!({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}),
            &claims(|_| {}),
        )
        .unwrap(),
        "client assertion header: typ is not a client assertion's",
    );
    check(
        &client,
        &key.sign_raw(
            &json!({"alg": "ES256", "kid": key.kid, "jku": "https://evil.example/jwks"}),
            &claims(|_| {}),
        )
        .unwrap(),
        "client assertion header: keys must come from registration",
    );
    let impostor = ClientKey::generate_es256().unwrap();
    check(
        &client,
        &impostor.sign_raw(&header, &claims(|_| {})).unwrap(),
        "client assertion: the signature does not verify",
    );
    // Nothing secret is echoed: a long kid is cut short.
    let long_kid = "k".repeat(500);
    let refused = verify_assertion(
        &client,
        &key.sign_raw(&json!({"alg": "ES256", "kid": long_kid}), &claims(|_| {}))
            .unwrap(),
        ISSUER,
        Utc::now(),
    )
    .unwrap_err();
    assert!(refused.description.len() < 200, "{}", refused.description);
}

#[test]
fn an_oversized_or_undecodable_assertion_is_refused_before_any_lookup() {
    let params = |assertion: &'static str| AuthParams {
        client_id: None,
        client_assertion_type: Some(CLIENT_ASSERTION_TYPE),
        client_assertion: Some(assertion),
    };
    let huge: &'static str = Box::leak("a".repeat(MAX_ASSERTION_BYTES + 1).into_boxed_str());
    let error = Presented::parse(None, params(huge)).unwrap_err();
    assert_eq!(
        error.description,
        "client authentication failed: client_assertion is longer than 8192 bytes"
    );
    let error = Presented::parse(None, params("not.a.jwt")).unwrap_err();
    assert_eq!(
        error.description,
        "client authentication failed: client_assertion is not a JWT with a sub claim"
    );
}
