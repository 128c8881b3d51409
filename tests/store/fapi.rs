//! Conformance cases for the FAPI rows (migration V5): the `jti` replay cache, refresh and
//! access tokens, consent listing and expiry, the grant compare-and-set, webhook deliveries.
//! Each case runs on both stores (listed in `conformance!` in `main.rs`).

use std::sync::Arc;

use bankgate::adapters::StoredGrant;
use bankgate::consent::ConsentStatus;
use bankgate::lifecycle::{DeliveryOutcome, DeliveryStatus, WebhookDelivery};
use bankgate::oauth::{AuthMethod, IssuedToken, RefreshToken};
use bankgate::store::Store;
use chrono::{DateTime, Duration, Utc};

use bankgate::store::access::TokenState;

use super::access::token_state;
use super::{client, consent, race, sealed, t0};

/// Now, to the microsecond (what both stores keep).
fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
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

pub async fn consents_list_and_expire_once(store: Arc<dyn Store>) {
    let now = now();
    let make = |id: &str, client_id: &str, user_ref: &str, status, expires_at, created| {
        let mut consent = consent(id);
        consent.client_id = client_id.to_owned();
        consent.user_ref = user_ref.to_owned();
        consent.status = status;
        consent.expires_at = expires_at;
        consent.created_at = created;
        consent
    };
    let consents = [
        make(
            "past-1",
            "platform-a",
            "u-1",
            ConsentStatus::Authorised,
            now - Duration::hours(1),
            t0(),
        ),
        make(
            "past-2",
            "platform-a",
            "u-2",
            ConsentStatus::Authorised,
            now - Duration::seconds(1),
            t0() + Duration::seconds(1),
        ),
        make(
            "past-waiting",
            "platform-a",
            "u-1",
            ConsentStatus::AwaitingAuthorisation,
            now - Duration::hours(1),
            t0() + Duration::seconds(2),
        ),
        make(
            "soon",
            "platform-a",
            "u-1",
            ConsentStatus::Authorised,
            now + Duration::days(3),
            t0() + Duration::seconds(3),
        ),
        make(
            "later",
            "platform-a",
            "u-1",
            ConsentStatus::Authorised,
            now + Duration::days(30),
            t0() + Duration::seconds(4),
        ),
        make(
            "other",
            "platform-b",
            "u-1",
            ConsentStatus::Authorised,
            now + Duration::days(3),
            t0() + Duration::seconds(5),
        ),
    ];
    for consent in &consents {
        store.insert_consent(consent).await.unwrap();
    }

    let listed: Vec<String> = store
        .consents_of("platform-a", "u-1")
        .await
        .unwrap()
        .into_iter()
        .map(|consent| consent.id)
        .collect();
    assert_eq!(
        listed,
        ["later", "soon", "past-waiting", "past-1"],
        "newest first, one tenant"
    );
    assert!(
        store
            .consents_of("platform-c", "u-1")
            .await
            .unwrap()
            .is_empty()
    );

    let mut expiring: Vec<String> = store
        .consents_expiring(now, now + Duration::days(7))
        .await
        .unwrap()
        .into_iter()
        .map(|consent| consent.id)
        .collect();
    expiring.sort();
    assert_eq!(expiring, ["other", "soon"]);

    // Several instances expire at once: each consent comes back exactly once.
    let results = race(4, |_| {
        let store = store.clone();
        async move { store.expire_consents(now).await.unwrap() }
    })
    .await;
    let mut expired: Vec<String> = results
        .into_iter()
        .flatten()
        .map(|consent| {
            assert_eq!(consent.status, ConsentStatus::Expired);
            consent.id
        })
        .collect();
    expired.sort();
    assert_eq!(expired, ["past-1", "past-2"]);
    assert_eq!(
        store.consent("past-waiting").await.unwrap().unwrap().status,
        ConsentStatus::AwaitingAuthorisation
    );
    assert!(store.expire_consents(now).await.unwrap().is_empty());
}

pub async fn grants_replace_only_if_unchanged(store: Arc<dyn Store>) {
    let first = StoredGrant {
        consent_id: "c-1".into(),
        sealed: sealed("k1", b"first"),
        updated_at: t0(),
    };
    store.put_grant(&first).await.unwrap();
    let second = StoredGrant {
        sealed: sealed("k1", b"second"),
        updated_at: t0() + Duration::seconds(1),
        ..first.clone()
    };
    let third = StoredGrant {
        sealed: sealed("k1", b"third"),
        updated_at: t0() + Duration::seconds(2),
        ..first.clone()
    };
    assert!(store.replace_grant(&first, &second).await.unwrap());
    // A second refresher still holding `first` loses.
    assert!(!store.replace_grant(&first, &third).await.unwrap());
    assert_eq!(store.grant("c-1").await.unwrap(), Some(second.clone()));
    assert!(store.replace_grant(&second, &third).await.unwrap());
    let missing = StoredGrant {
        consent_id: "c-9".into(),
        ..first.clone()
    };
    assert!(!store.replace_grant(&missing, &missing).await.unwrap());
}

fn delivery(id: &str, dedupe_key: &str, at: DateTime<Utc>) -> WebhookDelivery {
    WebhookDelivery {
        id: id.to_owned(),
        client_id: "platform-a".to_owned(),
        event: "consent.revoked".to_owned(),
        consent_id: "c-1".to_owned(),
        dedupe_key: dedupe_key.to_owned(),
        url: "https://app.example/hooks".to_owned(),
        payload: "header.claims.signature".to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: at,
        last_error: None,
        created_at: at,
        delivered_at: None,
    }
}

pub async fn webhooks_dedupe_lease_retry_and_log(store: Arc<dyn Store>) {
    let start = t0();
    assert!(
        store
            .enqueue_webhook(&delivery("d1", "revoked:c-1", start))
            .await
            .unwrap()
    );
    assert!(
        !store
            .enqueue_webhook(&delivery("d2", "revoked:c-1", start))
            .await
            .unwrap(),
        "dedupe"
    );
    assert!(
        store
            .enqueue_webhook(&delivery(
                "d3",
                "expiring:c-1",
                start + Duration::seconds(1)
            ))
            .await
            .unwrap()
    );

    // Nothing is due before its time.
    assert!(
        store
            .claim_webhooks(
                start - Duration::seconds(1),
                10,
                start + Duration::minutes(1)
            )
            .await
            .unwrap()
            .is_empty()
    );
    let lease = start + Duration::minutes(1);
    let claimed = store
        .claim_webhooks(start + Duration::seconds(5), 10, lease)
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["d1", "d3"]);
    assert!(
        claimed
            .iter()
            .all(|d| d.attempts == 1 && d.next_attempt_at == lease)
    );
    // Leased: another worker gets nothing until the lease ends.
    assert!(
        store
            .claim_webhooks(start + Duration::seconds(6), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );

    let retry_at = start + Duration::seconds(30);
    store
        .finish_webhook(
            "d1",
            &DeliveryOutcome::Retry {
                at: retry_at,
                error: "HTTP 500".into(),
            },
            start,
        )
        .await
        .unwrap();
    store
        .finish_webhook(
            "d3",
            &DeliveryOutcome::Delivered,
            start + Duration::seconds(7),
        )
        .await
        .unwrap();
    let again = store
        .claim_webhooks(retry_at, 10, retry_at + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id.as_str(), again[0].attempts), ("d1", 2));
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 500"));
    store
        .finish_webhook(
            "d1",
            &DeliveryOutcome::Failed {
                error: "HTTP 410".into(),
            },
            retry_at,
        )
        .await
        .unwrap();
    assert!(
        store
            .finish_webhook("nope", &DeliveryOutcome::Delivered, start)
            .await
            .is_err()
    );

    let log = store.webhook_deliveries("platform-a").await.unwrap();
    let summary: Vec<(&str, DeliveryStatus)> =
        log.iter().map(|d| (d.id.as_str(), d.status)).collect();
    assert_eq!(
        summary,
        [
            ("d3", DeliveryStatus::Delivered),
            ("d1", DeliveryStatus::Failed)
        ]
    );
    assert_eq!(log[0].delivered_at, Some(start + Duration::seconds(7)));
    assert!(
        store
            .webhook_deliveries("platform-b")
            .await
            .unwrap()
            .is_empty()
    );

    // Concurrent workers claim disjoint sets.
    for i in 0..20 {
        let at = start + Duration::hours(1);
        store
            .enqueue_webhook(&delivery(&format!("p{i}"), &format!("k{i}"), at))
            .await
            .unwrap();
    }
    let due = start + Duration::hours(2);
    let results = race(4, |_| {
        let store = store.clone();
        async move {
            store
                .claim_webhooks(due, 8, due + Duration::minutes(1))
                .await
                .unwrap()
        }
    })
    .await;
    let mut all: Vec<String> = results.into_iter().flatten().map(|d| d.id).collect();
    // Whatever no racer took is still there for the next claim.
    let rest = store
        .claim_webhooks(due, 32, due + Duration::minutes(1))
        .await
        .unwrap();
    all.extend(rest.into_iter().map(|d| d.id));
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "no delivery claimed twice");
    assert_eq!(n, 20);
}
