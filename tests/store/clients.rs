//! Conformance cases for clients: registration and conflicts, FAPI registration, bank clients
//! bound to one bank, what a registered client may change and what stays as the operator
//! registered it. Each case runs on both stores (listed in
//! `conformance!` in `main.rs`).

use super::*;
use bankgate::oauth::AuthMethod;

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

/// An id holding U+0000 (which PostgreSQL text cannot hold) names nothing: the look-ups that
/// take ids from callers answer "none" on both stores, never an error (issue 11, item 13).
pub async fn lookups_by_ids_holding_nul_find_nothing(store: Arc<dyn Store>) {
    store.insert_client(&client("platform-a")).await.unwrap();
    store.insert_consent(&consent("c-1")).await.unwrap();
    store
        .put_account_refs("c-1", &[account("a-1", "bank-ref-1")])
        .await
        .unwrap();
    store
        .put_bank("demo-bank", &json!({"id": "demo-bank"}))
        .await
        .unwrap();
    // Control: the ids themselves are found.
    assert!(store.client("platform-a").await.unwrap().is_some());
    assert!(store.consent("c-1").await.unwrap().is_some());
    assert!(store.account_ref("c-1", "a-1").await.unwrap().is_some());
    assert!(store.bank("demo-bank").await.unwrap().is_some());
    for nul in ["\0", "platform-a\0", "c-1\0x"] {
        assert_eq!(store.client(nul).await.unwrap(), None, "{nul:?}");
        assert_eq!(store.consent(nul).await.unwrap(), None, "{nul:?}");
        assert_eq!(store.account_ref("c-1", nul).await.unwrap(), None);
        assert_eq!(store.account_ref(nul, "a-1").await.unwrap(), None);
        assert_eq!(store.bank(nul).await.unwrap(), None, "{nul:?}");
    }
}

pub async fn clients_insert_get_conflict(store: Arc<dyn Store>) {
    assert_eq!(store.client("platform-a").await.unwrap(), None);
    let platform = client("platform-a");
    store.insert_client(&platform).await.unwrap();
    assert_eq!(
        store.client("platform-a").await.unwrap(),
        Some(platform.clone())
    );

    let impostor = Client {
        name: "impostor".to_owned(),
        ..platform.clone()
    };
    let result = store.insert_client(&impostor).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.client("platform-a").await.unwrap(), Some(platform));

    let officer = Client {
        role: Role::Compliance,
        redirect_uris: Vec::new(),
        allowed_purposes: Vec::new(),
        ..client("compliance-1")
    };
    store.insert_client(&officer).await.unwrap();
    assert_eq!(store.client("compliance-1").await.unwrap(), Some(officer));
}

pub async fn bank_clients_are_bound_to_one_bank(store: Arc<dyn Store>) {
    let bank = Client {
        role: Role::Bank,
        bank_id: Some("nova-bank".to_owned()),
        redirect_uris: Vec::new(),
        allowed_purposes: Vec::new(),
        ..client("nova-bank-admin")
    };
    store.insert_client(&bank).await.unwrap();
    assert_eq!(
        store.client("nova-bank-admin").await.unwrap(),
        Some(bank.clone())
    );
    // A bank client without its bank, or a platform bound to one, is refused by both stores.
    let unbound = Client {
        bank_id: None,
        ..client("unbound-bank")
    };
    let unbound = Client {
        role: Role::Bank,
        ..unbound
    };
    assert!(store.insert_client(&unbound).await.is_err());
    let bound_platform = Client {
        bank_id: Some("nova-bank".to_owned()),
        ..client("bound-platform")
    };
    assert!(store.insert_client(&bound_platform).await.is_err());
    assert_eq!(store.client("unbound-bank").await.unwrap(), None);
    assert_eq!(store.client("bound-platform").await.unwrap(), None);
}

pub async fn clients_keep_fapi_registration(store: Arc<dyn Store>) {
    let mut platform = client("fapi-app");
    platform.token_endpoint_auth_method = AuthMethod::PrivateKeyJwt;
    platform.secret_hash = String::new();
    platform.jwks = Some(
        serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}),
    );
    platform.dpop_bound_access_tokens = true;
    platform.webhook_url = Some("https://app.example/hooks".into());
    store.insert_client(&platform).await.unwrap();
    assert_eq!(store.client("fapi-app").await.unwrap(), Some(platform));
    // The defaults of a development client survive too.
    let basic = client("basic-app");
    store.insert_client(&basic).await.unwrap();
    let stored = store.client("basic-app").await.unwrap().unwrap();
    assert_eq!(
        stored.token_endpoint_auth_method,
        AuthMethod::ClientSecretBasic
    );
    assert_eq!(stored.jwks, None);
    assert!(!stored.dpop_bound_access_tokens);
}
