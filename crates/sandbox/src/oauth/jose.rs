//! The sandbox authorization server's own JOSE checks, on `jsonwebtoken`: client assertions
//! (RFC 7523) signed by a key the client registered, and DPoP proofs (RFC 9449) with the
//! server's stateless nonces. A bank's authorization server is software of its own: these
//! checks share no code with its client's.
//!
//! One algorithm per key type (FAPI 2.0): ES256 ↔ EC P-256, EdDSA ↔ OKP Ed25519, PS256 ↔
//! RSA. Keys come from registration, never from an assertion's
//! header; a DPoP proof carries its own public key, and a private or symmetric one is refused.

use aws_lc_rs::{constant_time, digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `client_assertion_type` of JWT client assertions (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The request header carrying a DPoP proof.
pub const DPOP_HEADER: &str = "dpop";
/// The response header carrying a fresh nonce.
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";
/// The algorithms accepted in DPoP proofs, as metadata and `WWW-Authenticate` name them.
pub const DPOP_ALGS: [&str; 3] = ["ES256", "EdDSA", "PS256"];

/// Clock skew allowed on `iat` and `exp`.
const LEEWAY_SECS: i64 = 5;
/// The furthest ahead an assertion's `exp` may be.
const MAX_ASSERTION_LIFETIME_SECS: i64 = 60;
/// How old a proof's `iat` may be.
const PROOF_WINDOW_SECS: i64 = 60;
/// A nonce is issued for a 5-minute epoch and accepted in that epoch and the next.
const NONCE_EPOCH_SECS: i64 = 300;
/// The longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;
/// JWK members only private or symmetric keys have.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The algorithm a public key's type pins, if the server accepts that type.
fn pinned_alg(jwk: &Jwk) -> Option<Algorithm> {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(key) if key.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(key) if key.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        AlgorithmParameters::RSA(_) => Some(Algorithm::PS256),
        _ => None,
    }
}

/// The keys the client registered for `private_key_jwt`.
pub struct ClientKeys {
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
}

impl ClientKeys {
    /// Reads a JWK Set of public signing keys; an unusable set is an error.
    pub fn parse(jwks: &Value) -> Result<ClientKeys, String> {
        let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
        let keys = set
            .keys
            .iter()
            .map(|jwk| {
                let alg = pinned_alg(jwk).ok_or("unsupported key type")?;
                let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
                Ok((jwk.common.key_id.clone(), alg, key))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ClientKeys { keys })
    }

    /// No keys at all: every assertion is refused.
    pub fn none() -> ClientKeys {
        ClientKeys { keys: Vec::new() }
    }

    /// The key a header names by `kid` (or the only key), with its algorithm.
    pub fn find(&self, kid: Option<&str>) -> Option<(Algorithm, &DecodingKey)> {
        let found = match kid {
            Some(kid) => self.keys.iter().find(|key| key.0.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        };
        found.map(|(_, alg, key)| (*alg, key))
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    exp: i64,
    iat: i64,
    jti: String,
}

/// Checks a client assertion of `client_id` for the audience `issuer` at `now` (seconds) and
/// returns its `jti`, which the caller spends; the error says which check failed.
pub fn check_assertion(
    keys: &ClientKeys,
    client_id: &str,
    assertion: &str,
    issuer: &str,
    now: i64,
) -> Result<String, &'static str> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| "not a JWS")?;
    if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() || header.x5c.is_some()
    {
        return Err("keys must come from registration");
    }
    if header.typ.as_deref().is_some_and(|typ| {
        !typ.eq_ignore_ascii_case("JWT") && !typ.eq_ignore_ascii_case("client-authentication+jwt")
    }) {
        return Err("typ is not a client assertion's");
    }
    let (alg, key) = keys
        .find(header.kid.as_deref())
        .filter(|(alg, _)| *alg == header.alg)
        .ok_or("no registered key matches kid and alg")?;
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    validation.set_issuer(&[client_id]);
    validation.set_audience(&[issuer]);
    validation.sub = Some(client_id.to_owned());
    validation.leeway = LEEWAY_SECS.unsigned_abs();
    validation.validate_nbf = true;
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, key, &validation)
        .map_err(|_| "signature or claims do not verify")?
        .claims;
    if claims.iat > now + LEEWAY_SECS {
        return Err("iat is in the future");
    }
    if claims.exp > now + MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS {
        return Err("exp is too far ahead");
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err("jti is missing or too long");
    }
    Ok(claims.jti)
}

/// Why a DPoP proof was refused; the text names the check, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("invalid DPoP proof: {0}")]
    Invalid(&'static str),
    /// The proof lacks a current nonce of this server.
    #[error("a fresh DPoP nonce is required")]
    UseNonce,
}

impl DpopError {
    /// The RFC 9449 error code.
    pub fn code(&self) -> &'static str {
        match self {
            DpopError::Invalid(_) => "invalid_dpop_proof",
            DpopError::UseNonce => "use_dpop_nonce",
        }
    }
}

/// The request a proof must match.
pub struct Expected<'a> {
    pub method: &'a str,
    /// The request URL on this server (query ignored).
    pub url: &'a str,
    /// The access token sent with the proof (data calls), if any.
    pub access_token: Option<&'a str>,
}

/// A verified proof: the RFC 7638 thumbprint of its key and its `jti`.
pub struct Proof {
    pub jkt: String,
    pub jti: String,
}

/// The server's stateless DPoP nonces: a MAC over a 5-minute epoch.
pub struct Nonces {
    key: hmac::Key,
}

impl Nonces {
    /// Nonces keyed by `secret`.
    pub fn new(secret: &[u8]) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn tag(&self, epoch: i64) -> hmac::Tag {
        hmac::sign(&self.key, format!("dpop-nonce\0{epoch}").as_bytes())
    }

    /// The nonce of the epoch containing `now` (seconds).
    pub fn issue(&self, now: i64) -> String {
        let epoch = now.div_euclid(NONCE_EPOCH_SECS);
        format!("{epoch}.{}", URL_SAFE_NO_PAD.encode(self.tag(epoch)))
    }

    /// Whether `nonce` was issued in this epoch or the previous one.
    fn is_valid(&self, nonce: &str, now: i64) -> bool {
        let Some((epoch, tag)) = nonce.split_once('.') else {
            return false;
        };
        let (Ok(epoch), Ok(tag)) = (epoch.parse::<i64>(), URL_SAFE_NO_PAD.decode(tag)) else {
            return false;
        };
        let current = now.div_euclid(NONCE_EPOCH_SECS);
        (epoch == current || epoch == current - 1)
            && constant_time::verify_slices_are_equal(self.tag(epoch).as_ref(), &tag).is_ok()
    }
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    ath: Option<String>,
    nonce: Option<String>,
}

/// The protected header of a compact JWS as raw JSON, so that members `jsonwebtoken`'s JWK
/// type drops (a private key's `d`) are still seen.
fn raw_header(token: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Verifies a DPoP proof for `expected` at `now` (seconds), with a current nonce of `nonces`
/// when given. The caller spends its `jti`.
pub fn verify_proof(
    proof: &str,
    expected: &Expected<'_>,
    nonces: Option<&Nonces>,
    now: i64,
) -> Result<Proof, DpopError> {
    let invalid = DpopError::Invalid;
    let header = raw_header(proof).ok_or(invalid("not a JWS"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("typ must be dpop+jwt"));
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        Some("PS256") => Algorithm::PS256,
        _ => return Err(invalid("alg must be ES256, EdDSA or PS256")),
    };
    let jwk = header.get("jwk").ok_or(invalid("jwk is missing"))?;
    if PRIVATE_MEMBERS
        .iter()
        .any(|member| jwk.get(member).is_some())
    {
        return Err(invalid("jwk must be a public key"));
    }
    let jwk: Jwk = serde_json::from_value(jwk.clone())
        .map_err(|_| invalid("jwk is not a supported public key"))?;
    if pinned_alg(&jwk) != Some(alg) {
        return Err(invalid("alg does not match the jwk"));
    }
    let unsupported = |_| invalid("jwk is not a supported public key");
    let key = DecodingKey::from_jwk(&jwk).map_err(unsupported)?;
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(unsupported)?;
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
        .map_err(|_| invalid("signature or claims do not verify"))?
        .claims;
    let ath = expected
        .access_token
        .map(|token| URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes())));
    let ath_matches = |ath: &str, claimed: &str| {
        constant_time::verify_slices_are_equal(ath.as_bytes(), claimed.as_bytes()).is_ok()
    };
    // Each check with what a failure says, in the order they are made.
    let checks = [
        (
            !claims.jti.is_empty() && claims.jti.len() <= MAX_JTI_LEN,
            "jti is missing or too long",
        ),
        (
            claims.htm == expected.method,
            "htm does not match the request method",
        ),
        (
            same_target(&claims.htu, expected.url),
            "htu does not match the request URL",
        ),
        (
            (now - PROOF_WINDOW_SECS..=now + LEEWAY_SECS).contains(&claims.iat),
            "iat is outside the accepted window",
        ),
        (
            ath.is_some() || claims.ath.is_none(),
            "ath is only for resource requests",
        ),
        (ath.is_none() || claims.ath.is_some(), "ath is missing"),
        (
            ath.as_deref()
                .zip(claims.ath.as_deref())
                .is_none_or(|(ath, claimed)| ath_matches(ath, claimed)),
            "ath does not match the access token",
        ),
    ];
    if let Some((_, failed)) = checks.iter().find(|(passed, _)| !passed) {
        return Err(invalid(failed));
    }
    if let Some(nonces) = nonces
        && !claims
            .nonce
            .as_deref()
            .is_some_and(|nonce| nonces.is_valid(nonce, now))
    {
        return Err(DpopError::UseNonce);
    }
    Ok(Proof {
        jkt,
        jti: claims.jti,
    })
}

/// Whether `htu` names the resource at `expected`: equal once parsed (which normalises case,
/// default ports and dot segments) and stripped of query and fragment; no credentials.
fn same_target(htu: &str, expected: &str) -> bool {
    let resource = |text: &str| {
        let mut url = url::Url::parse(text).ok()?;
        url.set_query(None);
        url.set_fragment(None);
        Some(url)
    };
    resource(htu).is_some_and(|htu| {
        htu.username().is_empty() && htu.password().is_none() && Some(htu) == resource(expected)
    })
}

/// The `WWW-Authenticate` challenge of a DPoP failure at a data route.
pub fn www_authenticate(error: &str, description: &str) -> String {
    let algs = DPOP_ALGS.join(" ");
    format!("DPoP error=\"{error}\", error_description=\"{description}\", algs=\"{algs}\"")
}

#[cfg(test)]
mod tests;
