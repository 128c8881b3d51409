//! The sandbox's JOSE checks against proofs and assertions signed here with fresh keys.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;

const URL: &str = "http://127.0.0.1:9999/oauth/token";
const NOW: i64 = 1_700_000_000;

/// A fresh P-256 key: its signing half and its public JWK.
fn key() -> (EncodingKey, Value) {
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    (EncodingKey::from_ec_der(der.as_ref()), jwk)
}

/// A DPoP proof with `jwk` (as given, private members included) in its header.
fn proof(key: &EncodingKey, jwk: &Value, claims: &Value) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, Algorithm::ES256).unwrap();
    format!("{signing_input}.{signature}")
}

fn claims(nonce: Option<String>) -> Value {
    json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "htu": URL, "iat": NOW,
           "nonce": nonce})
}

fn expected() -> Expected<'static> {
    Expected {
        method: "POST",
        url: URL,
        access_token: None,
    }
}

#[test]
fn a_proof_names_its_key_and_needs_a_current_nonce() {
    let (key, jwk) = key();
    let nonces = Nonces::new(b"secret");
    let fresh = proof(&key, &jwk, &claims(Some(nonces.issue(NOW))));
    let verified = verify_proof(&fresh, &expected(), Some(&nonces), NOW).unwrap();
    let unbound = verify_proof(&proof(&key, &jwk, &claims(None)), &expected(), None, NOW).unwrap();
    assert_eq!(verified.jkt, unbound.jkt);
    let (other_key, other_jwk) = self::key();
    let other = proof(&other_key, &other_jwk, &claims(None));
    assert_ne!(
        verify_proof(&other, &expected(), None, NOW).unwrap().jkt,
        verified.jkt
    );

    let stale = nonces.issue(NOW - 2 * NONCE_EPOCH_SECS);
    let foreign = Nonces::new(b"other").issue(NOW);
    for nonce in [None, Some(stale), Some(foreign)] {
        let refused = verify_proof(
            &proof(&key, &jwk, &claims(nonce)),
            &expected(),
            Some(&nonces),
            NOW,
        );
        assert_eq!(refused.err(), Some(DpopError::UseNonce));
    }
}

#[test]
fn proofs_are_refused_for_what_they_get_wrong() {
    let (key, jwk) = key();
    let mut private = jwk.clone();
    private["d"] = json!("AAAA");
    let with = |name: &str, value: Value| {
        let mut claims = claims(None);
        claims[name] = value;
        proof(&key, &jwk, &claims)
    };
    let cases = [
        (
            proof(&key, &private, &claims(None)),
            "jwk must be a public key",
        ),
        (
            with("htm", json!("GET")),
            "htm does not match the request method",
        ),
        (
            with("htu", json!("http://127.0.0.1:9999/oauth/par")),
            "htu does not match the request URL",
        ),
        (
            with("iat", json!(NOW - 120)),
            "iat is outside the accepted window",
        ),
        (with("ath", json!("x")), "ath is only for resource requests"),
        (with("jti", json!("")), "jti is missing or too long"),
        ("not.a.jws".to_owned(), "not a JWS"),
    ];
    for (proof, why) in cases {
        let refused = verify_proof(&proof, &expected(), None, NOW);
        assert_eq!(refused.err(), Some(DpopError::Invalid(why)), "{why}");
    }
    let with_token = Expected {
        access_token: Some("token"),
        ..expected()
    };
    let ath = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, b"token"));
    assert!(verify_proof(&with("ath", json!(ath)), &with_token, None, NOW).is_ok());
    let wrong = verify_proof(&with("ath", json!("AAAA")), &with_token, None, NOW);
    assert_eq!(
        wrong.err(),
        Some(DpopError::Invalid("ath does not match the access token"))
    );
}

#[test]
fn assertions_need_a_registered_key_and_strict_claims() {
    let (key, mut jwk) = key();
    jwk["kid"] = json!("k1");
    let keys = ClientKeys::parse(&json!({ "keys": [jwk] })).unwrap();
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap();
    let sign =
        |header: Header, claims: Value| jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let claims = || {
        json!({"iss": "bankgate", "sub": "bankgate", "aud": "http://bank", "iat": now,
               "exp": now + 30, "jti": uuid::Uuid::new_v4().to_string()})
    };
    let header = || Header {
        kid: Some("k1".into()),
        ..Header::new(Algorithm::ES256)
    };
    let check = |assertion: &str| check_assertion(&keys, "bankgate", assertion, "http://bank", now);
    assert!(check(&sign(header(), claims())).is_ok());

    let mut far = claims();
    far["exp"] = json!(now + 600);
    let mut endpoint_audience = claims();
    endpoint_audience["aud"] = json!("http://bank/oauth/token");
    let cases = [
        (
            Header {
                jku: Some("http://elsewhere".into()),
                ..header()
            },
            claims(),
            "keys must come from registration",
        ),
        (
            Header {
                typ: Some("dpop+jwt".into()),
                ..header()
            },
            claims(),
            "typ is not a client assertion's",
        ),
        (
            Header {
                kid: Some("k2".into()),
                ..header()
            },
            claims(),
            "no registered key matches kid and alg",
        ),
        (header(), far, "exp is too far ahead"),
        (
            header(),
            endpoint_audience,
            "signature or claims do not verify",
        ),
    ];
    for (header, claims, why) in cases {
        assert_eq!(check(&sign(header, claims)).err(), Some(why));
    }
    let unregistered = ClientKeys::none();
    let refused = check_assertion(
        &unregistered,
        "bankgate",
        &sign(header(), claims()),
        "http://bank",
        now,
    );
    assert!(refused.is_err());
}
