//! Conformance cases for tokens: the `jti` replay cache, refresh tokens, recorded access
//! tokens and their revocation. Each case runs on both stores (listed in `conformance!` in
//! `main.rs`).

use super::*;
use bankgate::oauth::{IssuedToken, RefreshToken};
use bankgate::store::access::TokenState;

use super::access::token_state;

pub async fn jti_replay_cache(store: Arc<dyn Store>) {
    let later = now() + Duration::minutes(1);
    assert!(
        store
            .remember_jti("client_assertion:a", "j1", later)
            .await
            .unwrap()
    );
    assert!(
        !store
            .remember_jti("client_assertion:a", "j1", later)
            .await
            .unwrap(),
        "replay"
    );
    assert!(
        store
            .remember_jti("client_assertion:b", "j1", later)
            .await
            .unwrap(),
        "other scope"
    );
    // An expired entry no longer blocks its jti, and purging removes it.
    let past = now() - Duration::seconds(5);
    assert!(store.remember_jti("dpop:k", "old", past).await.unwrap());
    assert!(store.remember_jti("dpop:k", "old", later).await.unwrap());
    assert!(store.remember_jti("dpop:k", "gone", past).await.unwrap());
    assert_eq!(store.purge_expired(now()).await.unwrap(), 1);
    assert!(!store.remember_jti("dpop:k", "old", later).await.unwrap());

    // Of many instances seeing the same proof at once, exactly one accepts it.
    for round in 0..super::ROUNDS {
        let jti = format!("race-{round}");
        let results = race(8, |_| {
            let store = store.clone();
            let jti = jti.clone();
            async move { store.remember_jti("dpop:race", &jti, later).await.unwrap() }
        })
        .await;
        assert_eq!(
            results.iter().filter(|fresh| **fresh).count(),
            1,
            "{results:?}"
        );
    }
}

fn issued(jti: &str, consent_id: Option<&str>) -> IssuedToken {
    IssuedToken {
        jti: jti.to_owned(),
        client_id: "platform-a".to_owned(),
        consent_id: consent_id.map(str::to_owned),
        expires_at: now() + Duration::minutes(5),
    }
}

fn refresh(hash: &str, consent_id: &str) -> RefreshToken {
    RefreshToken {
        token_hash: hash.to_owned(),
        client_id: "platform-a".to_owned(),
        consent_id: consent_id.to_owned(),
        created_at: t0(),
        expires_at: t0() + Duration::days(90),
        revoked_at: None,
    }
}

pub async fn tokens_revoke_alone_and_by_consent(store: Arc<dyn Store>) {
    store
        .insert_refresh_token(&refresh("r1", "c-1"))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh("r2", "c-2"))
        .await
        .unwrap();
    assert!(
        store
            .insert_refresh_token(&refresh("r1", "c-1"))
            .await
            .is_err()
    );
    assert_eq!(
        store.refresh_token("r1").await.unwrap(),
        Some(refresh("r1", "c-1"))
    );
    assert_eq!(store.refresh_token("nope").await.unwrap(), None);
    for (jti, consent_id) in [
        ("a1", Some("c-1")),
        ("a2", Some("c-1")),
        ("a3", Some("c-2")),
        ("m", None),
    ] {
        store
            .record_access_token(&issued(jti, consent_id))
            .await
            .unwrap();
    }
    assert_eq!(token_state(store.as_ref(), "a1").await, TokenState::Active);
    assert_eq!(
        token_state(store.as_ref(), "unrecorded").await,
        TokenState::Unknown
    );

    assert!(store.revoke_access_token("m").await.unwrap());
    assert!(
        !store.revoke_access_token("m").await.unwrap(),
        "already revoked"
    );
    assert!(!store.revoke_access_token("unknown").await.unwrap());
    assert_eq!(token_state(store.as_ref(), "m").await, TokenState::Revoked);

    // Two access tokens and the refresh token of c-1; c-2 untouched.
    assert_eq!(store.revoke_consent_tokens("c-1").await.unwrap(), 3);
    assert_eq!(store.revoke_consent_tokens("c-1").await.unwrap(), 0);
    assert_eq!(token_state(store.as_ref(), "a1").await, TokenState::Revoked);
    assert_eq!(token_state(store.as_ref(), "a2").await, TokenState::Revoked);
    assert_eq!(token_state(store.as_ref(), "a3").await, TokenState::Active);
    assert!(
        store
            .refresh_token("r1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .refresh_token("r2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );

    // Expired records are purged.
    let mut old = issued("old", Some("c-3"));
    old.expires_at = now() - Duration::seconds(1);
    store.record_access_token(&old).await.unwrap();
    assert_eq!(store.purge_expired(now()).await.unwrap(), 1);
}
