//! Registered OAuth clients in PostgreSQL.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::storable;
use super::{column, corrupt, execute, query_opt, record};
use crate::model::WireName;
use crate::oauth::Clients;
use crate::oauth::{AuthMethod, Client, Role};
use crate::store::StoreError;

const INSERT: &str = "\
    INSERT INTO clients \
        (client_id, name, secret_hash, role, redirect_uris, allowed_purposes, created_at, \
         token_endpoint_auth_method, jwks, dpop_bound_access_tokens, webhook_url, region, \
         bank_id, jwks_uri, registration_token_hash) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

const GET: &str = "\
    SELECT client_id, name, secret_hash, role, redirect_uris, allowed_purposes, created_at, \
           token_endpoint_auth_method, jwks, dpop_bound_access_tokens, webhook_url, region, \
           bank_id, jwks_uri, registration_token_hash \
    FROM clients WHERE client_id = $1";

const UPDATE: &str = "\
    UPDATE clients SET name = $2, secret_hash = $3, redirect_uris = $4, allowed_purposes = $5, \
        token_endpoint_auth_method = $6, jwks = $7, dpop_bound_access_tokens = $8, \
        webhook_url = $9, region = $10, jwks_uri = $11, registration_token_hash = $12 \
    WHERE client_id = $1";

/// Registers `client`; `Conflict("client")` if its id exists.
pub async fn insert(db: &impl GenericClient, client: &Client) -> Result<(), StoreError> {
    execute(
        db,
        "client",
        INSERT,
        &[
            &client.client_id,
            &client.name,
            &client.secret_hash,
            &client.role.as_str(),
            &client.redirect_uris,
            &client.allowed_purposes,
            &client.created_at,
            &client.token_endpoint_auth_method.as_str(),
            &client.jwks,
            &client.dpop_bound_access_tokens,
            &client.webhook_url,
            &client.region,
            &client.bank_id,
            &client.jwks_uri,
            &client.registration_token_hash,
        ],
    )
    .await?;
    Ok(())
}

/// Replaces what may change of `client`; `false` if it is not registered.
pub async fn update(db: &impl GenericClient, client: &Client) -> Result<bool, StoreError> {
    let updated = execute(
        db,
        "client",
        UPDATE,
        &[
            &client.client_id,
            &client.name,
            &client.secret_hash,
            &client.redirect_uris,
            &client.allowed_purposes,
            &client.token_endpoint_auth_method.as_str(),
            &client.jwks,
            &client.dpop_bound_access_tokens,
            &client.webhook_url,
            &client.region,
            &client.jwks_uri,
            &client.registration_token_hash,
        ],
    )
    .await?;
    Ok(updated == 1)
}

/// The client with `client_id`, if registered.
pub async fn get(db: &impl GenericClient, client_id: &str) -> Result<Option<Client>, StoreError> {
    query_opt(db, "client", GET, &[&client_id])
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

fn from_row(row: &Row) -> Result<Client, StoreError> {
    let role: String = column(row, "role")?;
    let method: String = column(row, "token_endpoint_auth_method")?;
    Ok(record!(row, Client {
        client_id, name, secret_hash, redirect_uris, allowed_purposes, created_at, jwks,
        dpop_bound_access_tokens, webhook_url, region, bank_id, jwks_uri, registration_token_hash;
        role: Role::parse(&role).ok_or_else(|| corrupt(format_args!("client role {role:?}")))?,
        token_endpoint_auth_method: AuthMethod::parse(&method)
            .ok_or_else(|| corrupt(format_args!("token_endpoint_auth_method {method:?}")))?,
    }))
}

#[async_trait]
impl Clients for super::PgStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        insert(&self.connection().await?, client).await
    }

    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        if !storable(client_id) {
            return Ok(None);
        }
        get(&self.connection().await?, client_id).await
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        update(&self.connection().await?, client).await
    }
}
