//! The payee directory: a handle per platform, held by one alive consent; another consent
//! cannot take or re-point it, a consent that ended frees it, and it goes with its consent.

use bankgate::payments::payees::{Handle, PayeeEntry, Registered};

use super::*;

fn authorised(id: &str, client_id: &str) -> Consent {
    Consent {
        client_id: client_id.to_owned(),
        purpose: "p2p-payments-payee-check".to_owned(),
        scopes: vec![Scope::Accounts, Scope::Identity],
        status: ConsentStatus::Authorised,
        created_at: t0(),
        expires_at: t0() + Duration::days(180),
        ..consent(id)
    }
}

fn entry(client_id: &str, handle: &str, consent_id: &str, account_id: &str) -> PayeeEntry {
    PayeeEntry {
        client_id: client_id.to_owned(),
        handle: Handle::parse(handle).unwrap(),
        consent_id: consent_id.to_owned(),
        account_id: account_id.to_owned(),
        created_at: t0(),
    }
}

fn alice() -> Handle {
    Handle::parse("@alice").unwrap()
}

/// Registered, re-pointed by its own consent, refused to another consent of the platform,
/// taken separately on another platform, listed, deleted only by its holder.
pub async fn payees_are_held_by_one_consent_per_platform(store: Arc<dyn Store>) {
    let at = t0() + Duration::days(1);
    for (id, client) in [
        ("c-alice", "platform-a"),
        ("c-mallory", "platform-a"),
        ("c-other", "platform-b"),
    ] {
        store.insert_consent(&authorised(id, client)).await.unwrap();
    }
    let mine = entry("platform-a", "@alice", "c-alice", "acc_1");
    assert_eq!(
        store.put_payee(&mine, at).await.unwrap(),
        Registered::Created
    );
    assert_eq!(
        store.payee("platform-a", &alice(), at).await.unwrap(),
        Some(mine.clone())
    );

    // Re-pointed by its own consent at another of its accounts.
    let moved = entry("platform-a", "@alice", "c-alice", "acc_2");
    assert_eq!(
        store.put_payee(&moved, at).await.unwrap(),
        Registered::Updated
    );
    assert_eq!(
        store
            .payee("platform-a", &alice(), at)
            .await
            .unwrap()
            .unwrap()
            .account_id,
        "acc_2"
    );

    // Another user of the same platform cannot take or re-point it.
    let hijack = entry("platform-a", "@alice", "c-mallory", "acc_m");
    assert_eq!(
        store.put_payee(&hijack, at).await.unwrap(),
        Registered::Taken
    );
    assert_eq!(
        store.payee("platform-a", &alice(), at).await.unwrap(),
        Some(moved.clone())
    );
    assert!(
        !store
            .delete_payee("platform-a", &alice(), "c-mallory")
            .await
            .unwrap()
    );
    assert_eq!(
        store.payee("platform-a", &alice(), at).await.unwrap(),
        Some(moved.clone())
    );

    // Another platform has its own namespace: its @alice is another handle.
    let theirs = entry("platform-b", "@alice", "c-other", "acc_b");
    assert_eq!(
        store.put_payee(&theirs, at).await.unwrap(),
        Registered::Created
    );
    assert_eq!(
        store.payee("platform-a", &alice(), at).await.unwrap(),
        Some(moved.clone())
    );
    assert_eq!(
        store.payee("platform-b", &alice(), at).await.unwrap(),
        Some(theirs)
    );

    // Listed by consent, by handle.
    let second = entry("platform-a", "@alice.s", "c-alice", "acc_1");
    assert_eq!(
        store.put_payee(&second, at).await.unwrap(),
        Registered::Created
    );
    assert_eq!(
        store.payees_of("c-alice").await.unwrap(),
        vec![moved, second.clone()]
    );
    assert!(store.payees_of("c-nobody").await.unwrap().is_empty());
    assert!(store.payees_of("c\0").await.unwrap().is_empty());
    assert_eq!(store.payee("platform\0", &alice(), at).await.unwrap(), None);

    // Deleted by its holder: then free for the other user.
    assert!(
        store
            .delete_payee("platform-a", &alice(), "c-alice")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_payee("platform-a", &alice(), "c-alice")
            .await
            .unwrap()
    );
    assert_eq!(store.payee("platform-a", &alice(), at).await.unwrap(), None);
    assert_eq!(
        store.put_payee(&hijack, at).await.unwrap(),
        Registered::Created
    );
    assert_eq!(store.payees_of("c-alice").await.unwrap(), vec![second]);
}

/// A revoked or expired consent's handle is not resolved, is freed for another consent, and
/// is gone from the directory once met.
pub async fn payees_of_ended_consents_are_gone(store: Arc<dyn Store>) {
    let at = t0() + Duration::days(1);
    for id in ["c-revoked", "c-expiring", "c-next"] {
        store
            .insert_consent(&authorised(id, "platform-a"))
            .await
            .unwrap();
    }
    let revoked = entry("platform-a", "@alice", "c-revoked", "acc_1");
    let expiring = entry("platform-a", "@bob", "c-expiring", "acc_2");
    assert_eq!(
        store.put_payee(&revoked, at).await.unwrap(),
        Registered::Created
    );
    assert_eq!(
        store.put_payee(&expiring, at).await.unwrap(),
        Registered::Created
    );

    assert!(
        store
            .transition_consent(
                "c-revoked",
                ConsentStatus::Authorised,
                ConsentStatus::Revoked
            )
            .await
            .unwrap()
    );
    // At once: the next resolution finds nothing, and the row is gone.
    assert_eq!(store.payee("platform-a", &alice(), at).await.unwrap(), None);
    assert!(store.payees_of("c-revoked").await.unwrap().is_empty());

    // Expired by time, before the expiry job ran: not resolved past the expiry.
    let bob = Handle::parse("@bob").unwrap();
    let before_expiry = t0() + Duration::days(180) - Duration::microseconds(1);
    let after_expiry = t0() + Duration::days(180);
    assert_eq!(
        store
            .payee("platform-a", &bob, before_expiry)
            .await
            .unwrap(),
        Some(expiring)
    );
    // Another consent takes the expired one's handle without it being met first.
    let next = entry("platform-a", "@bob", "c-next", "acc_3");
    assert_eq!(
        store.put_payee(&next, after_expiry).await.unwrap(),
        Registered::Created
    );
    assert!(store.payees_of("c-expiring").await.unwrap().is_empty());
    assert_eq!(
        store
            .payee("platform-a", &bob, after_expiry - Duration::days(1))
            .await
            .unwrap(),
        Some(next)
    );
}

/// Many consents of one platform registering one free handle at once: one gets it.
pub async fn payees_concurrent_registrations_take_one(store: Arc<dyn Store>) {
    let at = t0() + Duration::days(1);
    for round in 0..ROUNDS {
        let handle = format!("@h{round}");
        for i in 0..8 {
            store
                .insert_consent(&authorised(&format!("c-{round}-{i}"), "platform-a"))
                .await
                .unwrap();
        }
        let outcomes = super::race(8, |i| {
            let store = store.clone();
            let entry = entry("platform-a", &handle, &format!("c-{round}-{i}"), "acc_1");
            async move { (i, store.put_payee(&entry, at).await.unwrap()) }
        })
        .await;
        let winners: Vec<usize> = outcomes
            .iter()
            .filter(|(_, registered)| *registered == Registered::Created)
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|(i, registered)| *i == winners[0] || *registered == Registered::Taken)
        );
        let held = store
            .payee("platform-a", &Handle::parse(&handle).unwrap(), at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.consent_id, format!("c-{round}-{}", winners[0]));
    }
}
