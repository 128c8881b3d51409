//! Conformance cases for what is used once: pushed authorization requests, the bank leg's
//! pending authorizations and authorization codes. Each case runs on both stores (listed in
//! `conformance!` in `main.rs`).

use super::*;

pub async fn pushed_request_single_use(store: Arc<dyn Store>) {
    let request = PushedRequest {
        request_uri: "urn:ietf:params:oauth:request_uri:abc".to_owned(),
        client_id: "platform-a".to_owned(),
        request: json!({"authorization_details": [{"type": "account_information"}]}),
        expires_at: t0() + Duration::seconds(90),
    };
    store.insert_pushed_request(&request).await.unwrap();
    let result = store.insert_pushed_request(&request).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");

    assert_eq!(
        store
            .take_pushed_request(&request.request_uri)
            .await
            .unwrap(),
        Some(request.clone())
    );
    assert_eq!(
        store
            .take_pushed_request(&request.request_uri)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.take_pushed_request("urn:unknown").await.unwrap(),
        None
    );

    // Sixteen concurrent takes, several rounds: one wins each time.
    for round in 0..ROUNDS {
        let request = PushedRequest {
            request_uri: format!("urn:ietf:params:oauth:request_uri:race-{round}"),
            ..request.clone()
        };
        store.insert_pushed_request(&request).await.unwrap();
        let taken = race(16, |_| {
            let store = store.clone();
            let uri = request.request_uri.clone();
            async move { store.take_pushed_request(&uri).await.unwrap() }
        })
        .await;
        let taken: Vec<_> = taken.into_iter().flatten().collect();
        assert_eq!(taken, vec![request], "round {round}");
    }
}

pub async fn bank_authorization_single_use(store: Arc<dyn Store>) {
    let pending = bank_authorization("state-1");
    store.insert_bank_authorization(&pending).await.unwrap();
    let result = store.insert_bank_authorization(&pending).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(
        store.take_bank_authorization("state-1").await.unwrap(),
        Some(pending)
    );
    assert_eq!(
        store.take_bank_authorization("state-1").await.unwrap(),
        None
    );
    assert_eq!(
        store.take_bank_authorization("unknown").await.unwrap(),
        None
    );

    // Sixteen concurrent takes, several rounds: one wins each time.
    for round in 0..ROUNDS {
        let pending = BankAuthorization {
            bank_consent_id: None,
            ..bank_authorization(&format!("state-race-{round}"))
        };
        store.insert_bank_authorization(&pending).await.unwrap();
        let taken = race(16, |_| {
            let store = store.clone();
            let state = pending.state.clone();
            async move { store.take_bank_authorization(&state).await.unwrap() }
        })
        .await;
        let taken: Vec<_> = taken.into_iter().flatten().collect();
        assert_eq!(taken, vec![pending], "round {round}");
    }
}

pub async fn codes_redeem_once(store: Arc<dyn Store>) {
    let issued = code("hash-1");
    store.insert_code(&issued).await.unwrap();
    let result = store.insert_code(&issued).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");

    // Looking a code up changes nothing: a token request that fails its checks leaves it.
    for _ in 0..2 {
        assert_eq!(
            store.code("hash-1").await.unwrap(),
            StoredCode::Unused(issued.clone())
        );
    }
    assert!(
        store.redeem_code("hash-1").await.unwrap(),
        "first redemption"
    );
    assert_eq!(
        store.code("hash-1").await.unwrap(),
        StoredCode::Redeemed(issued.clone())
    );
    assert!(!store.redeem_code("hash-1").await.unwrap(), "second");

    // Released (the gateway failed after redeeming it): unused again, redeemable once more.
    store.release_code("hash-1").await.unwrap();
    assert_eq!(
        store.code("hash-1").await.unwrap(),
        StoredCode::Unused(issued.clone())
    );
    assert!(store.redeem_code("hash-1").await.unwrap());
    assert!(!store.redeem_code("hash-1").await.unwrap());

    assert_eq!(store.code("unknown").await.unwrap(), StoredCode::Unknown);
    assert!(!store.redeem_code("unknown").await.unwrap());
    store.release_code("unknown").await.unwrap();
    assert_eq!(store.code("unknown").await.unwrap(), StoredCode::Unknown);

    // A code bound to a DPoP key at PAR keeps its key.
    let bound = AuthorizationCode {
        dpop_jkt: Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".to_owned()),
        ..code("hash-bound")
    };
    store.insert_code(&bound).await.unwrap();
    assert_eq!(
        store.code("hash-bound").await.unwrap(),
        StoredCode::Unused(bound)
    );

    // Sixteen concurrent redemptions after sixteen look-ups that all saw the code unused,
    // several rounds (the first one also opens connections): exactly one redeems it.
    for round in 0..ROUNDS {
        let hash = format!("hash-race-{round}");
        store.insert_code(&code(&hash)).await.unwrap();
        let outcomes = race(16, |_| {
            let store = store.clone();
            let hash = hash.clone();
            async move {
                let seen = store.code(&hash).await.unwrap();
                (seen, store.redeem_code(&hash).await.unwrap())
            }
        })
        .await;
        let redeemed = outcomes.iter().filter(|(_, redeemed)| *redeemed).count();
        assert_eq!(redeemed, 1, "round {round}: {outcomes:?}");
        assert!(
            matches!(store.code(&hash).await.unwrap(), StoredCode::Redeemed(_)),
            "round {round}"
        );
    }
}
