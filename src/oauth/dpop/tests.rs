//! DPoP proof checks, one case per rule.

use serde_json::{Value, json};

use super::*;
use crate::jose::{ClientKey, access_token_hash};

const URL: &str = "https://gw.example/v1/accounts";
const NOW: i64 = 1_700_000_000;

fn sealer() -> Sealer {
    Sealer::from_bytes("k", &[7u8; 32]).unwrap()
}

fn claims(nonce: &str) -> Value {
    json!({
        "jti": "j-1",
        "htm": "GET",
        "htu": URL,
        "iat": NOW,
        "ath": access_token_hash("token"),
        "nonce": nonce,
    })
}

fn header(key: &ClientKey) -> Value {
    let mut jwk = key.jwk().clone();
    jwk.as_object_mut().unwrap().remove("kid");
    json!({"typ": "dpop+jwt", "alg": crate::jose::alg_name(key.alg), "jwk": jwk})
}

fn expected() -> Expected<'static> {
    Expected {
        method: "GET",
        url: URL,
        access_token: Some("token"),
    }
}

#[track_caller]
fn check(proof: &str, expected: Expected<'_>, outcome: Result<(), DpopError>) {
    let sealer = sealer();
    let result = verify(proof, &expected, &Nonces::new(&sealer), NOW).map(|_| ());
    assert_eq!(result, outcome);
}

#[test]
fn valid_proofs_verify_and_bind_to_the_key_thumbprint() {
    let sealer = sealer();
    let nonce = Nonces::new(&sealer).issue(NOW);
    for key in [
        ClientKey::generate_es256().unwrap(),
        ClientKey::generate_ed25519().unwrap(),
    ] {
        let proof = key.sign_raw(&header(&key), &claims(&nonce)).unwrap();
        let verified = verify(&proof, &expected(), &Nonces::new(&sealer), NOW).unwrap();
        assert_eq!(verified.jkt, key.thumbprint());
        assert_eq!(verified.jti, "j-1");
    }
    // The client helper makes proofs this check accepts (query and fragment dropped).
    let key = ClientKey::generate_es256().unwrap();
    let proof = key
        .dpop_proof("GET", &format!("{URL}?x=1"), Some("token"), Some(&nonce))
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let nonce_now = Nonces::new(&sealer).issue(now);
    let proof_now = key
        .dpop_proof("GET", URL, Some("token"), Some(&nonce_now))
        .unwrap();
    assert!(verify(&proof_now, &expected(), &Nonces::new(&sealer), now).is_ok());
    // A proof from the helper carries the current time, not NOW: outside the window.
    check(
        &proof,
        expected(),
        Err(DpopError::Invalid("iat is outside the accepted window")),
    );
}

#[test]
fn each_rule_refuses() {
    let sealer = sealer();
    let nonce = Nonces::new(&sealer).issue(NOW);
    let key = ClientKey::generate_es256().unwrap();
    let sign = |header: Value, claims: Value| key.sign_raw(&header, &claims).unwrap();
    let good_header = header(&key);
    let good = claims(&nonce);
    let with = |name: &str, value: Value| {
        let mut claims = good.clone();
        claims[name] = value;
        claims
    };
    let header_with = |name: &str, value: Value| {
        let mut header = good_header.clone();
        header[name] = value;
        header
    };

    check(
        &sign(header_with("typ", json!("JWT")), good.clone()),
        expected(),
        Err(DpopError::Invalid("typ must be dpop+jwt")),
    );
    check(
        &sign(header_with("alg", json!("HS256")), good.clone()),
        expected(),
        Err(DpopError::Invalid("alg must be ES256 or EdDSA")),
    );
    check(
        &sign(header_with("alg", json!("none")), good.clone()),
        expected(),
        Err(DpopError::Invalid("alg must be ES256 or EdDSA")),
    );
    check(
        &sign(header_with("alg", json!("EdDSA")), good.clone()),
        expected(),
        Err(DpopError::Invalid("alg does not match the jwk")),
    );
    let mut private = good_header.clone();
    private["jwk"]["d"] = json!("AAAA");
    check(
        &sign(private, good.clone()),
        expected(),
        Err(DpopError::Invalid("jwk must be a public key")),
    );
    check(
        &sign(
            header_with("jwk", json!({"kty": "oct", "k": "c2VjcmV0"})),
            good.clone(),
        ),
        expected(),
        Err(DpopError::Invalid("jwk must be a public key")),
    );
    let mut no_jwk = good_header.clone();
    no_jwk.as_object_mut().unwrap().remove("jwk");
    check(
        &sign(no_jwk, good.clone()),
        expected(),
        Err(DpopError::Invalid("jwk is missing")),
    );
    // Signed by another key than the one in the header.
    let other = ClientKey::generate_es256().unwrap();
    check(
        &other.sign_raw(&good_header, &good).unwrap(),
        expected(),
        Err(DpopError::Invalid("signature or claims do not verify")),
    );
    check(
        &sign(good_header.clone(), with("htm", json!("POST"))),
        expected(),
        Err(DpopError::Invalid("htm does not match the request method")),
    );
    for htu in [
        "https://gw.example/v1/accounts/acc_1",
        "https://evil.example/v1/accounts",
        "http://gw.example/v1/accounts",
        "https://gw.example:8443/v1/accounts",
        "not a url",
    ] {
        check(
            &sign(good_header.clone(), with("htu", json!(htu))),
            expected(),
            Err(DpopError::Invalid("htu does not match the request URL")),
        );
    }
    // Query, fragment, default port and host case do not matter.
    for htu in [
        "https://gw.example/v1/accounts?page=2",
        "https://GW.example:443/v1/accounts#x",
    ] {
        check(
            &sign(good_header.clone(), with("htu", json!(htu))),
            expected(),
            Ok(()),
        );
    }
    for iat in [NOW - IAT_WINDOW_SECS - 1, NOW + LEEWAY_SECS + 1] {
        check(
            &sign(good_header.clone(), with("iat", json!(iat))),
            expected(),
            Err(DpopError::Invalid("iat is outside the accepted window")),
        );
    }
    check(
        &sign(
            good_header.clone(),
            with("ath", json!(access_token_hash("other"))),
        ),
        expected(),
        Err(DpopError::Invalid("ath does not match the access token")),
    );
    let mut no_ath = good.clone();
    no_ath.as_object_mut().unwrap().remove("ath");
    check(
        &sign(good_header.clone(), no_ath.clone()),
        expected(),
        Err(DpopError::Invalid("ath is missing")),
    );
    check(
        &sign(good_header.clone(), good.clone()),
        Expected {
            access_token: None,
            ..expected()
        },
        Err(DpopError::Invalid("ath is only for resource requests")),
    );
    check(
        &sign(good_header.clone(), with("jti", json!(""))),
        expected(),
        Err(DpopError::Invalid("jti is missing or too long")),
    );
    check(
        &sign(good_header.clone(), with("jti", json!("j\u{0}1"))),
        expected(),
        Err(DpopError::Invalid("jti contains U+0000 (NUL)")),
    );
}

#[test]
fn nonces_are_required_current_and_unforgeable() {
    let sealer = sealer();
    let nonces = Nonces::new(&sealer);
    let key = ClientKey::generate_ed25519().unwrap();
    let proof_with = |nonce: Value| {
        let mut claims = claims("");
        claims["nonce"] = nonce;
        key.sign_raw(&header(&key), &claims).unwrap()
    };
    let previous_epoch = nonces.issue(NOW - NONCE_EPOCH_SECS);
    check(&proof_with(json!(previous_epoch)), expected(), Ok(()));
    let stale = nonces.issue(NOW - 2 * NONCE_EPOCH_SECS);
    let forged = format!("{}.AAAA", NOW.div_euclid(NONCE_EPOCH_SECS));
    let other_key = Sealer::from_bytes("k", &[8u8; 32]).unwrap();
    let foreign = Nonces::new(&other_key).issue(NOW);
    for nonce in [
        json!(stale),
        json!(forged),
        json!(foreign),
        json!("garbage"),
        Value::Null,
    ] {
        check(&proof_with(nonce), expected(), Err(DpopError::UseNonce));
    }
}

#[tokio::test]
async fn a_proof_is_spent_once() {
    let store = crate::store::memory::MemoryStore::new();
    let proof = Proof {
        jkt: "thumb".into(),
        jti: "j-1".into(),
        iat: chrono::Utc::now().timestamp(),
    };
    assert_eq!(spend(&store, &proof).await.unwrap(), Ok(()));
    assert_eq!(
        spend(&store, &proof).await.unwrap(),
        Err(DpopError::Invalid("the proof was already used"))
    );
    // The same jti under another key is another proof.
    let other = Proof {
        jkt: "other".into(),
        ..proof
    };
    assert_eq!(spend(&store, &other).await.unwrap(), Ok(()));
}
