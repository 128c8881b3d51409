//! Pushed requests (taken once) and authorization codes (redeemed once) in memory.

use async_trait::async_trait;

use super::*;
use crate::oauth::Authorizations;

#[async_trait]
impl Authorizations for MemoryStore {
    async fn insert_pushed_request(&self, request: &PushedRequest) -> Result<(), StoreError> {
        let request = PushedRequest {
            expires_at: micros(request.expires_at),
            ..request.clone()
        };
        insert_new(
            &self.pushed_requests,
            &request.request_uri.clone(),
            request,
            "pushed request",
        )
    }

    async fn take_pushed_request(
        &self,
        request_uri: &str,
    ) -> Result<Option<PushedRequest>, StoreError> {
        Ok(lock(&self.pushed_requests).remove(request_uri))
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        let code = AuthorizationCode {
            expires_at: micros(code.expires_at),
            ..code.clone()
        };
        insert_new(
            &self.codes,
            &code.code_hash.clone(),
            (code, false),
            "authorization code",
        )
    }

    async fn code(&self, code_hash: &str) -> Result<StoredCode, StoreError> {
        Ok(match lock(&self.codes).get(code_hash) {
            None => StoredCode::Unknown,
            Some((code, true)) => StoredCode::Redeemed(code.clone()),
            Some((code, false)) => StoredCode::Unused(code.clone()),
        })
    }

    async fn redeem_code(&self, code_hash: &str) -> Result<bool, StoreError> {
        Ok(match lock(&self.codes).get_mut(code_hash) {
            Some((_, used)) if !*used => {
                *used = true;
                true
            }
            _ => false,
        })
    }

    async fn release_code(&self, code_hash: &str) -> Result<(), StoreError> {
        if let Some((_, used)) = lock(&self.codes).get_mut(code_hash) {
            *used = false;
        }
        Ok(())
    }
}
