//! Registered clients in memory, with the checks PostgreSQL makes (a bank client bound to one
//! bank, one key source).

use async_trait::async_trait;

use super::*;
use crate::oauth::Clients;

#[async_trait]
impl Clients for MemoryStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        // As PostgreSQL's CHECK: a bank client is bound to one bank, no other client is.
        if (client.role == crate::oauth::Role::Bank) != client.bank_id.is_some() {
            return Err(StoreError::Invariant(
                "a bank client is bound to exactly one bank; other clients to none",
            ));
        }
        check_one_key_source(client)?;
        let client = Client {
            created_at: micros(client.created_at),
            ..client.clone()
        };
        insert_new(&self.clients, &client.client_id.clone(), client, "client")
    }

    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(lock(&self.clients).get(client_id).cloned())
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        check_one_key_source(client)?;
        let mut clients = lock(&self.clients);
        let Some(stored) = clients.get_mut(&client.client_id) else {
            return Ok(false);
        };
        *stored = Client {
            client_id: stored.client_id.clone(),
            role: stored.role,
            bank_id: stored.bank_id.clone(),
            created_at: stored.created_at,
            ..client.clone()
        };
        Ok(true)
    }
}

/// As PostgreSQL's CHECK: a client's keys come by value or by reference, never both.
fn check_one_key_source(client: &Client) -> Result<(), StoreError> {
    if client.jwks.is_some() && client.jwks_uri.is_some() {
        return Err(StoreError::Invariant(
            "a client registers jwks or jwks_uri, not both",
        ));
    }
    Ok(())
}
