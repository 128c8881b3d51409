//! The `jti` replay cache, refresh tokens and issued access tokens in memory.

use async_trait::async_trait;

use super::*;
use crate::oauth::Tokens;

#[async_trait]
impl Tokens for MemoryStore {
    async fn remember_jti(
        &self,
        scope: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut jtis = lock(&self.jtis);
        let key = (scope.to_owned(), jti.to_owned());
        match jtis.get(&key) {
            Some(seen_until) if *seen_until >= Utc::now() => Ok(false),
            _ => {
                jtis.insert(key, micros(expires_at));
                Ok(true)
            }
        }
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut purged = 0;
        {
            let mut jtis = lock(&self.jtis);
            let before = jtis.len();
            jtis.retain(|_, expires_at| *expires_at >= now);
            purged += before - jtis.len();
        }
        let mut tokens = lock(&self.access_tokens);
        let before = tokens.len();
        tokens.retain(|_, (token, _)| token.expires_at >= now);
        purged += before - tokens.len();
        Ok(u64::try_from(purged).unwrap_or(u64::MAX))
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError> {
        let token = RefreshToken {
            created_at: micros(token.created_at),
            expires_at: micros(token.expires_at),
            revoked_at: token.revoked_at.map(micros),
            ..token.clone()
        };
        insert_new(
            &self.refresh_tokens,
            &token.token_hash.clone(),
            token,
            "refresh token",
        )
    }

    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        Ok(lock(&self.refresh_tokens).get(token_hash).cloned())
    }

    async fn record_access_token(&self, token: &IssuedToken) -> Result<(), StoreError> {
        let token = IssuedToken {
            expires_at: micros(token.expires_at),
            ..token.clone()
        };
        insert_new(
            &self.access_tokens,
            &token.jti.clone(),
            (token, None),
            "access token",
        )
    }

    async fn revoke_access_token(&self, jti: &str) -> Result<bool, StoreError> {
        let mut tokens = lock(&self.access_tokens);
        match tokens.get_mut(jti) {
            Some((_, revoked_at @ None)) => {
                *revoked_at = Some(micros(Utc::now()));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_consent_tokens(&self, consent_id: &str) -> Result<u64, StoreError> {
        let now = micros(Utc::now());
        let mut revoked = 0u64;
        for (token, revoked_at) in lock(&self.access_tokens).values_mut() {
            if token.consent_id.as_deref() == Some(consent_id) && revoked_at.is_none() {
                *revoked_at = Some(now);
                revoked += 1;
            }
        }
        for token in lock(&self.refresh_tokens).values_mut() {
            if token.consent_id == consent_id && token.revoked_at.is_none() {
                token.revoked_at = Some(now);
                revoked += 1;
            }
        }
        Ok(revoked)
    }
}
