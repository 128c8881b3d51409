//! DPoP (RFC 9449): proof verification, server nonces, and the replay check.
//!
//! [`verify`] is pure: it checks a proof against the request it came with and the time.
//! [`spend`] is the only I/O: it records the proof's `jti` in the store's replay cache, which
//! every instance shares. What a proof must satisfy:
//! - `typ` is `dpop+jwt`; `alg` is ES256 or EdDSA and matches the embedded key;
//! - the header's `jwk` is a public EC P-256 or Ed25519 key (symmetric `oct` and private keys
//!   are refused); the proof verifies with it;
//! - `htm` is the request method, `htu` the request URL without query and fragment (scheme,
//!   host, port and path compared after URL normalisation);
//! - `iat` is at most [`IAT_WINDOW_SECS`] old and at most [`LEEWAY_SECS`] ahead;
//! - `ath` is base64url(SHA-256(access token)) when the proof comes with a token, and absent
//!   otherwise;
//! - `nonce` is one bankgate issued ([`Nonces`]): stateless (a MAC over a 5-minute epoch with
//!   the gateway's sealing key), so any instance accepts any instance's nonce. A missing or stale
//!   nonce is `use_dpop_nonce`, answered with a fresh one in `DPoP-Nonce`.

use chrono::DateTime;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::crypto::Sealer;
use crate::jose;
pub use crate::jose::{DPOP_HEADER, DPOP_NONCE_HEADER, DPOP_TYP};
use crate::oauth::Tokens;
use crate::store_error::StoreError;

/// The algorithms accepted in proofs, as advertised in metadata and `WWW-Authenticate`.
pub const ALGS: [&str; 2] = ["ES256", "EdDSA"];

/// How old a proof's `iat` may be.
pub const IAT_WINDOW_SECS: i64 = 60;

/// How far ahead a proof's `iat` may be (clock skew).
pub const LEEWAY_SECS: i64 = 5;

/// A nonce is issued for a 5-minute epoch and accepted in that epoch and the next.
pub const NONCE_EPOCH_SECS: i64 = 300;

/// The longest `jti` remembered.
const MAX_JTI_LEN: usize = 256;

/// What the proof must match: the request it came with.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The full request URL as bankgate's public URL spells it (query ignored).
    pub url: &'a str,
    /// The access token presented with the proof (resource requests), if any.
    pub access_token: Option<&'a str>,
}

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key: what `cnf.jkt` binds to.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

impl Proof {
    /// Where the replay cache remembers the proof's `jti` (per key) and until when (the proof
    /// would be too old anyway after that).
    pub fn replay_entry(&self) -> (String, DateTime<chrono::Utc>) {
        let expires_at = DateTime::from_timestamp(self.iat + IAT_WINDOW_SECS + LEEWAY_SECS, 0)
            .unwrap_or(DateTime::<chrono::Utc>::MAX_UTC);
        (format!("dpop:{}", self.jkt), expires_at)
    }
}

/// Why a proof was refused. The text is safe to show (it names the check, never a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("invalid DPoP proof: {0}")]
    Invalid(&'static str),
    /// The proof lacks a current server nonce.
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

/// Issues and checks server nonces with the gateway's sealing key.
#[derive(Clone, Copy)]
pub struct Nonces<'a> {
    sealer: &'a Sealer,
}

impl<'a> Nonces<'a> {
    /// Nonces MACed with `sealer` (shared by every instance).
    pub fn new(sealer: &'a Sealer) -> Self {
        Nonces { sealer }
    }

    fn message(epoch: i64) -> String {
        format!("dpop-nonce\0{epoch}")
    }

    /// The nonce of the epoch containing `now`.
    pub fn issue(&self, now: i64) -> String {
        let epoch = now.div_euclid(NONCE_EPOCH_SECS);
        format!(
            "{epoch}.{}",
            self.sealer.mac(Self::message(epoch).as_bytes())
        )
    }

    /// Whether `nonce` was issued in this epoch or the previous one.
    pub fn is_valid(&self, nonce: &str, now: i64) -> bool {
        let Some((epoch, tag)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(epoch) = epoch.parse::<i64>() else {
            return false;
        };
        let current = now.div_euclid(NONCE_EPOCH_SECS);
        (epoch == current || epoch == current - 1)
            && self.sealer.verify_mac(Self::message(epoch).as_bytes(), tag)
    }
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// Verifies a DPoP proof against the request at `now` (seconds). Pure: call [`spend`] after.
pub fn verify(
    proof: &str,
    expected: &Expected<'_>,
    nonces: &Nonces<'_>,
    now: i64,
) -> Result<Proof, DpopError> {
    let (verified, nonce) = check(proof, expected, now)?;
    match nonce.as_deref() {
        Some(nonce) if nonces.is_valid(nonce, now) => Ok(verified),
        _ => Err(DpopError::UseNonce),
    }
}

/// [`verify`] for a server that hands out no nonces (a resource server that does not ask for
/// them, RFC 9449 §9): every check but the nonce's.
pub fn verify_without_nonce(
    proof: &str,
    expected: &Expected<'_>,
    now: i64,
) -> Result<Proof, DpopError> {
    check(proof, expected, now).map(|(verified, _)| verified)
}

/// Every check of a proof but its nonce, which it returns.
fn check(
    proof: &str,
    expected: &Expected<'_>,
    now: i64,
) -> Result<(Proof, Option<String>), DpopError> {
    let invalid = DpopError::Invalid;
    let header = jose::raw_header(proof).ok_or(invalid("not a JWS"))?;
    if header.get("typ").and_then(|typ| typ.as_str()) != Some(DPOP_TYP) {
        return Err(invalid("typ must be dpop+jwt"));
    }
    let alg = match header.get("alg").and_then(|alg| alg.as_str()) {
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => return Err(invalid("alg must be ES256 or EdDSA")),
    };
    let jwk = header.get("jwk").ok_or(invalid("jwk is missing"))?;
    let key = jose::public_key(jwk).map_err(|error| match error {
        jose::JwkError::Private(_) => invalid("jwk must be a public key"),
        _ => invalid("jwk is not a supported public key"),
    })?;
    if key.alg != alg {
        return Err(invalid("alg does not match the jwk"));
    }
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key.decoding, &validation)
        .map_err(|_| invalid("signature or claims do not verify"))?
        .claims;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(invalid("jti is missing or too long"));
    }
    // The replay cache keeps it as text, which cannot hold U+0000.
    if claims.jti.contains('\0') {
        return Err(invalid("jti contains U+0000 (NUL)"));
    }
    if claims.htm != expected.method {
        return Err(invalid("htm does not match the request method"));
    }
    if !same_target(&claims.htu, expected.url) {
        return Err(invalid("htu does not match the request URL"));
    }
    if claims.iat > now + LEEWAY_SECS || claims.iat < now - IAT_WINDOW_SECS {
        return Err(invalid("iat is outside the accepted window"));
    }
    match (expected.access_token, claims.ath.as_deref()) {
        (Some(token), Some(ath)) => {
            let expected_ath = jose::access_token_hash(token);
            if !crate::crypto::constant_time_eq(expected_ath.as_bytes(), ath.as_bytes()) {
                return Err(invalid("ath does not match the access token"));
            }
        }
        (Some(_), None) => return Err(invalid("ath is missing")),
        (None, Some(_)) => return Err(invalid("ath is only for resource requests")),
        (None, None) => {}
    }
    Ok((
        Proof {
            jkt: key.thumbprint,
            jti: claims.jti,
            iat: claims.iat,
        },
        claims.nonce,
    ))
}

/// Spends the proof's `jti` in the replay cache (per key, until the proof would be too old
/// anyway); a proof seen before is refused.
pub async fn spend(store: &dyn Tokens, proof: &Proof) -> Result<Result<(), DpopError>, StoreError> {
    let (scope, expires_at) = proof.replay_entry();
    Ok(
        if store.remember_jti(&scope, &proof.jti, expires_at).await? {
            Ok(())
        } else {
            Err(DpopError::Invalid("the proof was already used"))
        },
    )
}

/// Whether two URLs name the same resource, ignoring query and fragment.
fn same_target(htu: &str, expected: &str) -> bool {
    let (Ok(htu), Ok(expected)) = (url::Url::parse(htu), url::Url::parse(expected)) else {
        return false;
    };
    htu.scheme() == expected.scheme()
        && htu.host_str() == expected.host_str()
        && htu.port_or_known_default() == expected.port_or_known_default()
        && htu.path() == expected.path()
        && htu.username().is_empty()
        && htu.password().is_none()
}

/// The `WWW-Authenticate` value for a DPoP failure at a resource server.
pub fn www_authenticate(error: &str, description: &str) -> String {
    format!(
        "DPoP error=\"{error}\", error_description=\"{description}\", algs=\"{}\"",
        ALGS.join(" ")
    )
}

#[cfg(test)]
mod tests;
