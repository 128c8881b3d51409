//! Conformance cases for client management: what a registered client may change, and what
//! stays as the operator registered it. Each case runs on both stores (listed in
//! `conformance!` in `main.rs`).

use std::sync::Arc;

use bankgate::oauth::{AuthMethod, Client, Role};
use bankgate::store::Store;

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
        jwks_uri: None,
        registration_token_hash: String::new(),
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
    // Keys by reference and a registration token (RFC 7591/7592), but never jwks and
    // jwks_uri at once, on insert or update.
    let by_reference = Client {
        jwks: None,
        jwks_uri: Some("https://platform.example/jwks.json".into()),
        registration_token_hash: "hmac-sha256:k1:registration".into(),
        ..stored.clone()
    };
    assert!(store.update_client(&by_reference).await.unwrap());
    assert_eq!(
        store.client("platform-u").await.unwrap().as_ref(),
        Some(&by_reference)
    );
    let both = Client {
        jwks: Some(serde_json::json!({"keys": []})),
        ..by_reference.clone()
    };
    assert!(store.update_client(&both).await.is_err());
    assert!(
        store
            .insert_client(&Client {
                client_id: "platform-both".into(),
                ..both
            })
            .await
            .is_err()
    );
    assert_eq!(
        store.client("platform-u").await.unwrap(),
        Some(by_reference)
    );
    // Another client is untouched.
    store.insert_client(&client("platform-v")).await.unwrap();
    assert_eq!(
        store.client("platform-v").await.unwrap(),
        Some(client("platform-v"))
    );
}
