//! Conformance cases for client management: what a registered client may change, and what
//! stays as the operator registered it. Each case runs on both stores (listed in
//! `conformance!` in `main.rs`).

use std::sync::Arc;

use bankgate::store::{AuthMethod, Client, Role, Store};

use super::client;

pub async fn clients_update_keeps_identity(store: Arc<dyn Store>) {
    let original = client("platform-u");
    assert!(
        !store.update_client(&original).await.unwrap(),
        "not registered yet"
    );
    store.insert_client(&original).await.unwrap();
    let changed = Client {
        name: "Renamed".into(),
        secret_hash: "hmac-sha256:k1:new".into(),
        redirect_uris: vec!["https://new.example/cb".into()],
        allowed_purposes: vec!["fraud-alerts".into()],
        region: "US".into(),
        token_endpoint_auth_method: AuthMethod::PrivateKeyJwt,
        jwks: Some(serde_json::json!({"keys": []})),
        dpop_bound_access_tokens: true,
        webhook_url: Some("https://new.example/hooks".into()),
        // Not the client's to change: ignored.
        role: Role::Compliance,
        bank_id: None,
        created_at: original.created_at + chrono::Duration::days(1),
        ..original.clone()
    };
    assert!(store.update_client(&changed).await.unwrap());
    let stored = store.client("platform-u").await.unwrap().unwrap();
    assert_eq!(
        stored,
        Client {
            role: original.role,
            created_at: original.created_at,
            ..changed
        }
    );
    // Another client is untouched.
    store.insert_client(&client("platform-v")).await.unwrap();
    assert_eq!(
        store.client("platform-v").await.unwrap(),
        Some(client("platform-v"))
    );
}
