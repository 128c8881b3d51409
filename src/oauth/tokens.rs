//! Access tokens (RFC 9068 JWTs, ES256): issuing and verifying.
//!
//! jsonwebtoken does not require `iss`/`aud`, never checks `typ`, and allows 60 s of leeway by
//! default; [`TokenVerifier`] pins all of that down.

use std::sync::Arc;

use chrono::Utc;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::SigningKey;

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
}

impl AccessClaims {
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
}

/// Issues and verifies access tokens with the gateway's key.
#[derive(Clone)]
pub struct TokenService {
    key: Arc<SigningKey>,
    issuer: String,
    audience: String,
    lifetime_secs: i64,
    validation: Validation,
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
        TokenService {
            key,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetime_secs: lifetime_secs.clamp(1, 300),
            validation,
        }
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
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(self.key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key.encoding)?;
        Ok((token, claims))
    }

    /// Verifies signature (ES256 only), `typ`, `kid`, `iss`, `aud`, `exp` and `iat`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(TokenError::WrongType);
        }
        if header.kid.as_deref() != Some(self.key.kid.as_str()) {
            return Err(TokenError::UnknownKey);
        }
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.key.decoding, &self.validation)?;
        if data.claims.iat > Utc::now().timestamp() + Self::LEEWAY_SECS as i64 {
            return Err(TokenError::IssuedInFuture);
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
}
