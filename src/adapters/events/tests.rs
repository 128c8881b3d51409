//! Bank-pushed events: every OBIE event notification of `$BANKGATE_FIXTURES/obie/events/`
//! signed here and verified (reviewed outcomes under `tests/expected/obie/events/`), and each
//! check refusing what it must.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::adapters::testing::{check_expected, fixtures};

const ISSUER: &str = "https://examplebank.com/";
const AUDIENCE: &str = "7umx5nTR33811QyQfi";
const NOW: i64 = 1_516_239_100;

/// A fresh P-256 key under `kid`: its signing half and a JWK Set with its public half.
fn key(kid: &str) -> (EncodingKey, JwkSet) {
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let keys = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    (
        EncodingKey::from_ec_der(der.as_ref()),
        serde_json::from_value(keys).unwrap(),
    )
}

fn sign(key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A resource update about account access consent `aac-1`, as the sandbox bank sends it.
fn update() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "iat": NOW - 5, "toe": NOW - 6,
        "jti": "j-1", "txn": "t-1",
        "sub": "https://examplebank.com/open-banking/v4.0/aisp/account-access-consents/aac-1",
        "events": {RESOURCE_UPDATE: {"subject": {
            "subject_type": "http://openbanking.org.uk/rid_http://openbanking.org.uk/rty",
            RID: "aac-1", RTY: "account-access-consent",
        }}},
    })
}

fn outcome(verified: &Result<BankEvent, EventRefusal>) -> Value {
    match verified {
        Ok(event) => json!({
            "accepted": true,
            "resource_update": event.resource_update,
            "consent_revoked": event.consent_revoked,
            "resource_type": event.resource_type,
            "resource_id": event.resource_id,
            "account_access_consent": event.account_access_consent(),
        }),
        Err(refusal) => json!({
            "accepted": false,
            "err": refusal.code(),
            "description": refusal.to_string(),
        }),
    }
}

#[test]
fn every_official_event_notification_verifies_signed_by_the_bank() {
    let (signing, keys) = key("bank-1");
    let mut checked = 0;
    for (name, text) in fixtures("obie/events") {
        if !name.contains("event-notification") {
            continue; // aggregated polling bodies, not SETs
        }
        let claims: Value = serde_json::from_str(&text).unwrap();
        let issuer = claims["iss"].as_str().unwrap();
        let audience = claims["aud"].as_str().unwrap();
        let token = sign(&signing, "bank-1", &claims);
        let verified = verify_with(&keys, &token, issuer, audience, NOW + 1_000_000_000);
        check_expected("obie/events", &name, &outcome(&verified));
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[track_caller]
fn refused(token: &str, keys: &JwkSet, code: &str) -> String {
    match verify_with(keys, token, ISSUER, AUDIENCE, NOW) {
        Ok(event) => panic!("accepted: {event:?}"),
        Err(refusal) => {
            assert_eq!(refusal.code(), code, "{refusal}");
            refusal.to_string()
        }
    }
}

#[test]
fn a_resource_update_names_the_bank_side_consent() {
    let (signing, keys) = key("bank-1");
    let event = verify_with(
        &keys,
        &sign(&signing, "bank-1", &update()),
        ISSUER,
        AUDIENCE,
        NOW,
    )
    .unwrap();
    assert!(event.resource_update && !event.consent_revoked);
    assert_eq!(event.account_access_consent(), Some("aac-1"));
    assert_eq!(event.jti, "j-1");
}

#[test]
fn a_bad_signature_is_refused() {
    let (signing, keys) = key("bank-1");
    // Signed by another key under the bank's kid.
    let (forger, _) = key("bank-1");
    let forged = sign(&forger, "bank-1", &update());
    let message = refused(&forged, &keys, "invalid_key");
    assert!(message.contains("signature"), "{message}");
    // The bank's own signature over other claims.
    let genuine = sign(&signing, "bank-1", &update());
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let mut claims = update();
    claims["events"][RESOURCE_UPDATE]["subject"][RID] = json!("aac-someone-else");
    let tampered_body = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts[1] = &tampered_body;
    refused(&parts.join("."), &keys, "invalid_key");
    // No signature at all.
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"bank-1"}"#),
        URL_SAFE_NO_PAD.encode(update().to_string())
    );
    assert!(verify_with(&keys, &unsigned, ISSUER, AUDIENCE, NOW).is_err());
}

#[test]
fn a_shared_secret_or_an_unknown_key_is_refused() {
    let (_, keys) = key("bank-1");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("bank-1".into());
    let hmac = jsonwebtoken::encode(&header, &update(), &EncodingKey::from_secret(b"s")).unwrap();
    refused(&hmac, &keys, "invalid_key");
    let (other, _) = key("bank-2");
    let message = refused(&sign(&other, "bank-2", &update()), &keys, "invalid_key");
    assert!(message.starts_with("kid names"), "{message}");
}

#[test]
fn issuer_audience_and_times_are_checked() {
    let (signing, keys) = key("bank-1");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = update();
        change(&mut claims);
        sign(&signing, "bank-1", &claims)
    };
    refused(
        &with(&|c| c["iss"] = json!("https://other.example/")),
        &keys,
        "invalid_issuer",
    );
    refused(
        &with(&|c| c["aud"] = json!("someone-else")),
        &keys,
        "invalid_audience",
    );
    refused(
        &with(&|c| c["iat"] = json!(NOW + 3600)),
        &keys,
        "invalid_request",
    );
    refused(
        &with(&|c| c["iat"] = json!((NOW - 5).to_string())),
        &keys,
        "invalid_request",
    );
    refused(
        &with(&|c| c["toe"] = json!("1516239022")),
        &keys,
        "invalid_request",
    );
    refused(
        &with(&|c| c["events"] = json!({})),
        &keys,
        "invalid_request",
    );
    refused(
        &with(&|c| {
            c.as_object_mut().unwrap().remove("jti");
        }),
        &keys,
        "invalid_request",
    );
    // Within the clock skew allowed.
    assert!(
        verify_with(
            &keys,
            &with(&|c| c["iat"] = json!(NOW + 30)),
            ISSUER,
            AUDIENCE,
            NOW
        )
        .is_ok()
    );
}
