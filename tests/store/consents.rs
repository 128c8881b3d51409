//! Conformance cases for consents: insert and read, the state machine's compare-and-set,
//! extension, listing and expiry. Each case runs on both stores (listed in `conformance!` in
//! `main.rs`).

use super::*;

pub async fn consent_insert_get(store: Arc<dyn Store>) {
    assert_eq!(store.consent("c-1").await.unwrap(), None);
    let full = Consent {
        scopes: Scope::ALL.to_vec(),
        history_days: u32::MAX,
        dpop_jkt: Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".to_owned()),
        ..consent("c-1")
    };
    store.insert_consent(&full).await.unwrap();
    assert_eq!(store.consent("c-1").await.unwrap(), Some(full.clone()));

    let result = store.insert_consent(&consent("c-1")).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.consent("c-1").await.unwrap(), Some(full));

    let sparse = Consent {
        state: None,
        scopes: Vec::new(),
        history_days: 0,
        ..consent("c-2")
    };
    store.insert_consent(&sparse).await.unwrap();
    assert_eq!(store.consent("c-2").await.unwrap(), Some(sparse));
}

pub async fn consent_cas(store: Arc<dyn Store>) {
    use ConsentStatus::*;
    store.insert_consent(&consent("c-1")).await.unwrap();
    let status = async |store: &Arc<dyn Store>| store.consent("c-1").await.unwrap().unwrap().status;

    // From the wrong state: nothing happens.
    assert!(
        !store
            .transition_consent("c-1", Authorised, Revoked)
            .await
            .unwrap()
    );
    assert_eq!(status(&store).await, AwaitingAuthorisation);

    assert!(
        store
            .transition_consent("c-1", AwaitingAuthorisation, Authorised)
            .await
            .unwrap()
    );
    assert_eq!(status(&store).await, Authorised);
    assert!(
        !store
            .transition_consent("c-1", AwaitingAuthorisation, Rejected)
            .await
            .unwrap()
    );
    assert!(
        store
            .transition_consent("c-1", Authorised, Revoked)
            .await
            .unwrap()
    );
    assert_eq!(status(&store).await, Revoked);

    assert!(
        !store
            .transition_consent("unknown", AwaitingAuthorisation, Authorised)
            .await
            .unwrap()
    );

    // The rest of the consent is untouched.
    let stored = store.consent("c-1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        Consent {
            status: Revoked,
            ..consent("c-1")
        }
    );
}

/// Issue 5 (re-consent): an extension moves the expiry and the policy version of an
/// authorised, unexpired consent only; racing a revocation, either both happen in some order
/// or the extension finds the consent revoked.
pub async fn consent_extend_only_while_authorised(store: Arc<dyn Store>) {
    let now = t0() + Duration::days(80);
    let later = now + Duration::days(90) + Duration::microseconds(7);
    store.insert_consent(&consent("c-1")).await.unwrap();
    // Awaiting authorisation: nothing to extend.
    assert!(
        !store
            .extend_consent("c-1", later, "sha256:new", now)
            .await
            .unwrap()
    );
    assert!(
        store
            .transition_consent(
                "c-1",
                ConsentStatus::AwaitingAuthorisation,
                ConsentStatus::Authorised
            )
            .await
            .unwrap()
    );
    // Expired by the clock (not yet by the maintenance task): too late.
    let after_expiry = t0() + Duration::days(91);
    assert!(
        !store
            .extend_consent("c-1", later, "sha256:new", after_expiry)
            .await
            .unwrap()
    );
    assert_eq!(
        store.consent("c-1").await.unwrap().unwrap().expires_at,
        consent("c-1").expires_at
    );
    // Before expiry: extended, everything else unchanged.
    assert!(
        store
            .extend_consent("c-1", later, "sha256:new", now)
            .await
            .unwrap()
    );
    let extended = store.consent("c-1").await.unwrap().unwrap();
    assert_eq!(
        extended,
        Consent {
            status: ConsentStatus::Authorised,
            expires_at: later,
            policy_hash: "sha256:new".to_owned(),
            ..consent("c-1")
        }
    );
    assert!(
        !store
            .extend_consent("unknown", later, "sha256:new", now)
            .await
            .unwrap()
    );
    // Revoked: no more extensions.
    assert!(
        store
            .transition_consent("c-1", ConsentStatus::Authorised, ConsentStatus::Revoked)
            .await
            .unwrap()
    );
    assert!(
        !store
            .extend_consent("c-1", later + Duration::days(1), "sha256:newer", now)
            .await
            .unwrap()
    );
    assert_eq!(
        store.consent("c-1").await.unwrap().unwrap().expires_at,
        later
    );
}

pub async fn consent_cas_concurrent(store: Arc<dyn Store>) {
    use ConsentStatus::*;
    // Authorise and reject race for the same consent: exactly one wins, and it is the one
    // whose state the consent ends in.
    for round in 0..ROUNDS {
        let id = format!("race-{round}");
        store.insert_consent(&consent(&id)).await.unwrap();
        let targets = [Authorised, Rejected];
        let won = race(2, |i| {
            let store = store.clone();
            let id = id.clone();
            async move {
                store
                    .transition_consent(&id, AwaitingAuthorisation, targets[i])
                    .await
                    .unwrap()
            }
        })
        .await;
        assert_eq!(won.iter().filter(|won| **won).count(), 1, "{won:?}");
        let winner = if won[0] { targets[0] } else { targets[1] };
        assert_eq!(store.consent(&id).await.unwrap().unwrap().status, winner);
    }

    // Sixteen revocations at once: one succeeds.
    store.insert_consent(&consent("many")).await.unwrap();
    assert!(
        store
            .transition_consent("many", AwaitingAuthorisation, Authorised)
            .await
            .unwrap()
    );
    let won = race(16, |_| {
        let store = store.clone();
        async move {
            store
                .transition_consent("many", Authorised, Revoked)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(won.iter().filter(|won| **won).count(), 1);
}

pub async fn timestamps_keep_microseconds(store: Arc<dyn Store>) {
    let nanos =
        Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap() + Duration::nanoseconds(123_456_789);
    let micros =
        Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap() + Duration::microseconds(123_456);
    let precise = Consent {
        created_at: nanos,
        expires_at: nanos,
        ..consent("c-1")
    };
    store.insert_consent(&precise).await.unwrap();
    let stored = store.consent("c-1").await.unwrap().unwrap();
    assert_eq!((stored.created_at, stored.expires_at), (micros, micros));
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

/// A consent records who authorised it as their bank knows them (a keyed digest); the
/// person's consents at one bank are found together across platforms, newest first, and
/// never those of another person or of the same digest at another bank.
pub async fn consents_of_a_bank_person_across_platforms(store: Arc<dyn Store>) {
    let older = consent("c-1");
    let newer = Consent {
        client_id: "platform-b".to_owned(),
        user_ref: "b-77".to_owned(),
        created_at: t0() + Duration::minutes(1),
        ..consent("c-2")
    };
    let someone_else = consent("c-3");
    let other_bank = Consent {
        bank_id: "stet-bank".to_owned(),
        ..consent("c-4")
    };
    for consent in [&older, &newer, &someone_else, &other_bank] {
        store.insert_consent(consent).await.unwrap();
    }
    assert!(
        store
            .consents_of_bank_person("demo-bank", "bp_alice")
            .await
            .unwrap()
            .is_empty()
    );
    for (id, person) in [
        ("c-1", "bp_alice"),
        ("c-2", "bp_alice"),
        ("c-3", "bp_bob"),
        ("c-4", "bp_alice"),
    ] {
        assert!(store.set_bank_person(id, person).await.unwrap(), "{id}");
    }
    assert!(!store.set_bank_person("unknown", "bp_alice").await.unwrap());
    assert!(!store.set_bank_person("c\0x", "bp_alice").await.unwrap());

    let ids = async |bank: &str, person: &str| -> Vec<String> {
        store
            .consents_of_bank_person(bank, person)
            .await
            .unwrap()
            .into_iter()
            .map(|consent| consent.id)
            .collect()
    };
    assert_eq!(ids("demo-bank", "bp_alice").await, ["c-2", "c-1"]);
    assert_eq!(ids("demo-bank", "bp_bob").await, ["c-3"]);
    assert_eq!(ids("stet-bank", "bp_alice").await, ["c-4"]);
    assert!(ids("demo-bank", "bp_carol").await.is_empty());
    assert!(ids("demo-bank", "bp_\0").await.is_empty());
    // The consents come back whole, as stored.
    let found = store
        .consents_of_bank_person("demo-bank", "bp_alice")
        .await
        .unwrap();
    assert_eq!(found, [newer, older]);
    // A state change keeps the link: a revoked consent is still the person's.
    assert!(
        store
            .transition_consent(
                "c-1",
                ConsentStatus::AwaitingAuthorisation,
                ConsentStatus::Rejected
            )
            .await
            .unwrap()
    );
    assert_eq!(ids("demo-bank", "bp_alice").await, ["c-2", "c-1"]);
}
