//! Access tokens (RFC 9068 JWTs, ES256): issuing and verifying.
//!
//! jsonwebtoken does not require `iss`/`aud`, never checks `typ`, and allows 60 s of leeway by
//! default; [`TokenVerifier`] pins all of that down.

use std::sync::Arc;

use chrono::Utc;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::jose::keys::{SigningKey, VerifyingKey};

/// The JOSE `typ` of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The consent id (platform tokens) or the client id (compliance tokens).
    pub sub: String,
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The key the token is bound to (DPoP), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim of a sender-constrained token (RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the DPoP public key.
    pub jkt: String,
}

impl AccessClaims {
    /// The DPoP key thumbprint the token is bound to, if any.
    pub fn jkt(&self) -> Option<&str> {
        self.cnf.as_ref().map(|cnf| cnf.jkt.as_str())
    }

    /// The scopes as a list.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }
}

/// Errors verifying a token; deliberately coarse (the caller learns only "invalid").
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is not an access token")]
    WrongType,
    #[error("token signed with an unknown key")]
    UnknownKey,
    #[error("token is invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error("token lives longer than this gateway issues tokens for")]
    TooLong,
}

/// Issues and verifies access tokens with the gateway's key.
#[derive(Clone)]
pub struct TokenService {
    key: Arc<SigningKey>,
    /// Keys that signed before the current one, still accepted.
    previous: Arc<Vec<VerifyingKey>>,
    issuer: String,
    audience: String,
    lifetime_secs: i64,
    validation: Validation,
    /// Tokens whose signature and claims already checked out, shared by every clone.
    verified: Arc<VerifiedTokens>,
}

/// Access tokens that verified, by their exact text, with their claims: a platform presents
/// the same token for up to 5 minutes, and the ES256 verification is most of the CPU time
/// authentication takes (see BENCHMARKS.md). Only what cannot change is remembered — the bytes
/// were signed by a key this service accepts, `typ`, `iss`, `aud`, `sub` and `iat` are right —
/// so a hit still checks `exp`; early revocation is the store's, asked on every request.
/// Bounded: when full, expired entries go, and if none had expired, all of them.
#[derive(Default)]
struct VerifiedTokens {
    tokens: std::sync::Mutex<std::collections::HashMap<Box<str>, AccessClaims>>,
}

impl VerifiedTokens {
    /// The most tokens remembered (a few MiB at most).
    const CAPACITY: usize = 4096;

    fn get(&self, token: &str, now: i64) -> Option<AccessClaims> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .get(token)
            .filter(|claims| !expired(claims, now))
            .cloned()
    }

    fn insert(&self, token: &str, claims: &AccessClaims, now: i64) {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tokens.len() >= Self::CAPACITY {
            tokens.retain(|_, claims| !expired(claims, now));
            if tokens.len() >= Self::CAPACITY {
                tokens.clear();
            }
        }
        tokens.insert(token.into(), claims.clone());
    }
}

/// `exp` as jsonwebtoken checks it: expired once `exp` is more than the leeway in the past.
fn expired(claims: &AccessClaims, now: i64) -> bool {
    claims.exp < now - TokenService::LEEWAY_SECS as i64
}

impl TokenService {
    /// Allowed clock skew when checking `exp` and `iat`.
    pub const LEEWAY_SECS: u64 = 5;

    /// A service for tokens of `issuer` meant for `audience`, living `lifetime_secs` (≤ 300).
    pub fn new(key: Arc<SigningKey>, issuer: &str, audience: &str, lifetime_secs: i64) -> Self {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.leeway = Self::LEEWAY_SECS;
        // A token that says it is not valid yet is not (RFC 7519 §4.1.5).
        validation.validate_nbf = true;
        TokenService {
            key,
            previous: Arc::new(Vec::new()),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetime_secs: lifetime_secs.clamp(1, 300),
            validation,
            verified: Arc::default(),
        }
    }

    /// The same service, also verifying tokens signed with `previous` keys.
    pub fn with_previous_keys(mut self, previous: Vec<VerifyingKey>) -> Self {
        self.previous = Arc::new(previous);
        // What verified under the old key set is checked again under the new one.
        self.verified = Arc::default();
        self
    }

    /// The current signing key.
    pub fn signing_key(&self) -> &Arc<SigningKey> {
        &self.key
    }

    /// Every key that verifies (current first), as a JWK Set.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys = vec![serde_json::json!(self.key.jwk)];
        keys.extend(self.previous.iter().map(|key| serde_json::json!(key.jwk)));
        serde_json::json!({ "keys": keys })
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Token lifetime in seconds.
    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    /// Signs an access token for `sub` with `scope`; returns it with its claims.
    pub fn issue(
        &self,
        client_id: &str,
        sub: &str,
        scope: &str,
    ) -> Result<(String, AccessClaims), TokenError> {
        self.issue_bound(client_id, sub, scope, None)
    }

    /// Signs an access token, bound to the DPoP key with thumbprint `jkt` when given.
    pub fn issue_bound(
        &self,
        client_id: &str,
        sub: &str,
        scope: &str,
        jkt: Option<&str>,
    ) -> Result<(String, AccessClaims), TokenError> {
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: sub.to_owned(),
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            exp: now + self.lifetime_secs,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(self.key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key.encoding)?;
        Ok((token, claims))
    }

    /// Verifies signature (ES256 only, by a current or previous key), `typ`, `kid`, `iss`,
    /// `aud`, `sub`, `exp`, `nbf` (when present), `iat`, and that `exp - iat` is at most the
    /// configured lifetime.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let now = Utc::now().timestamp();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let claims = self.verify_signed(token)?;
        self.verified.insert(token, &claims, now);
        Ok(claims)
    }

    /// [`TokenService::verify`] without the memory of tokens that verified before.
    fn verify_signed(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(TokenError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let decoding = if kid == self.key.kid {
            &self.key.decoding
        } else {
            &self
                .previous
                .iter()
                .find(|key| key.kid == kid)
                .ok_or(TokenError::UnknownKey)?
                .decoding
        };
        let data = jsonwebtoken::decode::<AccessClaims>(token, decoding, &self.validation)?;
        if data.claims.iat > Utc::now().timestamp() + Self::LEEWAY_SECS as i64 {
            return Err(TokenError::IssuedInFuture);
        }
        // No token this gateway issues lives longer than its configured lifetime.
        if data.claims.exp - data.claims.iat > self.lifetime_secs {
            return Err(TokenError::TooLong);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;

    fn new_service() -> TokenService {
        let key = Arc::new(SigningKey::generate().unwrap());
        TokenService::new(key, "https://gw.example", "https://gw.example", 300)
    }

    #[test]
    fn issued_tokens_verify() {
        let service = new_service();
        let (token, claims) = service
            .issue("platform-a", "consent-1", "accounts balances")
            .unwrap();
        let verified = service.verify(&token).unwrap();
        assert_eq!(verified, claims);
        assert!(verified.exp - verified.iat <= 300);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    }

    #[test]
    fn tokens_of_another_key_issuer_or_audience_fail() {
        let service = new_service();
        let (token, _) = new_service().issue("p", "c", "accounts").unwrap();
        assert!(service.verify(&token).is_err(), "other key");
        let key = service.key.clone();
        let other_issuer = TokenService::new(
            key.clone(),
            "https://evil.example",
            "https://gw.example",
            300,
        );
        let (token, _) = other_issuer.issue("p", "c", "accounts").unwrap();
        assert!(service.verify(&token).is_err(), "other issuer");
        let other_audience =
            TokenService::new(key, "https://gw.example", "https://other.example", 300);
        let (token, _) = other_audience.issue("p", "c", "accounts").unwrap();
        assert!(service.verify(&token).is_err(), "other audience");
    }

    #[test]
    fn wrong_typ_and_hs256_are_rejected() {
        let service = new_service();
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            iss: "https://gw.example".into(),
            aud: "https://gw.example".into(),
            sub: "c".into(),
            client_id: "p".into(),
            scope: "accounts".into(),
            exp: now + 60,
            iat: now,
            jti: "j".into(),
            cnf: None,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(service.key.kid.clone());
        header.typ = Some("JWT".into());
        let token = jsonwebtoken::encode(&header, &claims, &service.key.encoding).unwrap();
        assert!(matches!(service.verify(&token), Err(TokenError::WrongType)));

        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(service.key.kid.clone());
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"k")).unwrap();
        assert!(service.verify(&token).is_err());
    }

    /// Issue 11, item 3: `nbf` in the future, and a lifetime beyond the configured one.
    #[test]
    fn tokens_not_yet_valid_or_living_too_long_fail() {
        let service = new_service();
        let now = Utc::now().timestamp();
        let sign = |extra: serde_json::Value| {
            let mut claims = serde_json::json!({
                "iss": "https://gw.example", "aud": "https://gw.example", "sub": "c",
                "client_id": "p", "scope": "accounts", "exp": now + 60, "iat": now, "jti": "j",
            });
            claims
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let mut header = Header::new(Algorithm::ES256);
            header.typ = Some(ACCESS_TOKEN_TYP.into());
            header.kid = Some(service.key.kid.clone());
            jsonwebtoken::encode(&header, &claims, &service.key.encoding).unwrap()
        };
        assert!(service.verify(&sign(serde_json::json!({}))).is_ok());
        assert!(
            service
                .verify(&sign(serde_json::json!({"nbf": now - 10})))
                .is_ok()
        );
        assert!(
            service
                .verify(&sign(serde_json::json!({"nbf": now + 120})))
                .is_err(),
            "nbf in the future"
        );
        assert!(
            service
                .verify(&sign(serde_json::json!({"exp": now + 300})))
                .is_ok()
        );
        assert!(matches!(
            service.verify(&sign(serde_json::json!({"exp": now + 301}))),
            Err(TokenError::TooLong)
        ));
        assert!(matches!(
            service.verify(&sign(
                serde_json::json!({"iat": now - 200, "exp": now + 200})
            )),
            Err(TokenError::TooLong)
        ));
    }

    #[test]
    fn expired_tokens_fail() {
        let service = TokenService::new(Arc::new(SigningKey::generate().unwrap()), "i", "a", 1);
        let (token, mut claims) = service.issue("p", "c", "accounts").unwrap();
        assert!(service.verify(&token).is_ok());
        claims.exp -= 60;
        claims.iat -= 60;
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(service.key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &service.key.encoding).unwrap();
        assert!(service.verify(&token).is_err());
    }

    #[test]
    fn remembered_tokens_still_expire() {
        let service = new_service();
        let (token, claims) = service.issue("p", "c", "accounts").unwrap();
        assert_eq!(service.verify(&token).unwrap(), claims);
        // The second time comes from memory, with the same claims.
        assert_eq!(service.verify(&token).unwrap(), claims);
        let leeway = TokenService::LEEWAY_SECS as i64;
        assert!(service.verified.get(&token, claims.exp + leeway).is_some());
        assert!(
            service
                .verified
                .get(&token, claims.exp + leeway + 1)
                .is_none()
        );
        // A token that differs in one byte is verified, and refused, on its own.
        let mut tampered = token.clone();
        tampered.pop();
        assert!(service.verify(&tampered).is_err());
    }

    #[test]
    fn previous_keys_verify_after_rotation() {
        let old = Arc::new(SigningKey::generate().unwrap());
        let before = TokenService::new(old.clone(), "i", "a", 300);
        let (token, _) = before.issue("p", "c", "accounts").unwrap();
        let rotated = TokenService::new(Arc::new(SigningKey::generate().unwrap()), "i", "a", 300);
        assert!(matches!(
            rotated.verify(&token),
            Err(TokenError::UnknownKey)
        ));
        let rotated = rotated.with_previous_keys(vec![VerifyingKey::from_signing_key(&old)]);
        assert!(rotated.verify(&token).is_ok());
        let jwks = rotated.jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(jwks["keys"][1]["kid"], old.kid.as_str());
        let (new_token, _) = rotated.issue("p", "c", "accounts").unwrap();
        let header = jsonwebtoken::decode_header(&new_token).unwrap();
        assert_ne!(
            header.kid.as_deref(),
            Some(old.kid.as_str()),
            "signs with the new key"
        );
    }

    #[test]
    fn bound_tokens_carry_cnf_jkt() {
        let service = new_service();
        let (token, _) = service
            .issue_bound("p", "c", "accounts", Some("thumb"))
            .unwrap();
        assert_eq!(service.verify(&token).unwrap().jkt(), Some("thumb"));
        let (token, _) = service.issue("p", "c", "accounts").unwrap();
        assert_eq!(service.verify(&token).unwrap().jkt(), None);
    }
}
