//! Conformance cases for bank manifests: every version kept, the newest wins, concurrent
//! registrations. Each case runs on both stores (listed in `conformance!` in `main.rs`).

use super::*;

pub async fn bank_versions_are_all_kept(store: Arc<dyn Store>) {
    assert!(store.bank_versions("nova-bank").await.unwrap().is_empty());
    let manifests = [
        json!({"profile": "mapping", "limits": {"timeout_ms": 1000}}),
        json!({"profile": "mapping", "limits": {"timeout_ms": 2000}}),
        json!({"profile": "mapping", "limits": {"timeout_ms": 2000}}),
        json!({"profile": "mapping", "limits": {"timeout_ms": 1000}}),
    ];
    for manifest in &manifests {
        store.put_bank("nova-bank", manifest).await.unwrap();
    }
    store
        .put_bank("other-bank", &json!({"profile": "stet"}))
        .await
        .unwrap();
    let versions = store.bank_versions("nova-bank").await.unwrap();
    let numbers: Vec<i32> = versions.iter().map(|version| version.version).collect();
    assert_eq!(
        numbers,
        [1, 2, 3],
        "an unchanged manifest is no new version"
    );
    assert_eq!(versions[0].manifest, manifests[0]);
    assert_eq!(
        versions[2].manifest, manifests[3],
        "going back is a new version"
    );
    assert!(
        versions
            .iter()
            .all(|version| version.bank_id == "nova-bank")
    );
    assert_eq!(
        store.bank("nova-bank").await.unwrap().as_ref(),
        versions.last()
    );
}

pub async fn bank_versions(store: Arc<dyn Store>) {
    assert_eq!(store.bank("demo-bank").await.unwrap(), None);
    assert!(store.banks().await.unwrap().is_empty());

    let first = json!({"name": "Demo", "profile": "berlin-group", "limits": {"rps": 5}});
    let v1 = store.put_bank("demo-bank", &first).await.unwrap();
    assert_eq!((v1.bank_id.as_str(), v1.version), ("demo-bank", 1));
    assert_eq!(v1.manifest, first);

    // The same manifest, keys in another order: no new version.
    let same = json!({"limits": {"rps": 5}, "profile": "berlin-group", "name": "Demo"});
    assert_eq!(store.put_bank("demo-bank", &same).await.unwrap(), v1);

    let changed = json!({"name": "Demo", "profile": "berlin-group", "limits": {"rps": 10}});
    let v2 = store.put_bank("demo-bank", &changed).await.unwrap();
    assert_eq!((v2.version, &v2.manifest), (2, &changed));
    assert_eq!(store.bank("demo-bank").await.unwrap(), Some(v2.clone()));

    // Going back is a change too: versions only grow.
    let v3 = store.put_bank("demo-bank", &first).await.unwrap();
    assert_eq!((v3.version, &v3.manifest), (3, &first));

    let other = store
        .put_bank("another-bank", &json!({"name": "Another"}))
        .await
        .unwrap();
    assert_eq!(other.version, 1);
    assert_eq!(store.banks().await.unwrap(), vec![other, v3]);
}

pub async fn bank_versions_concurrent(store: Arc<dyn Store>) {
    for round in 0..ROUNDS {
        // Eight different manifests at once: eight versions, none lost or doubled.
        let bank_id = format!("busy-bank-{round}");
        let versions = race(8, |i| {
            let store = store.clone();
            let bank_id = bank_id.clone();
            async move {
                store
                    .put_bank(&bank_id, &json!({"revision": i}))
                    .await
                    .unwrap()
                    .version
            }
        })
        .await;
        let versions: BTreeSet<i32> = versions.into_iter().collect();
        assert_eq!(versions, (1..=8).collect(), "round {round}");
        assert_eq!(store.bank(&bank_id).await.unwrap().unwrap().version, 8);

        // Eight identical registrations at once: one version.
        let bank_id = format!("calm-bank-{round}");
        let versions = race(8, |_| {
            let store = store.clone();
            let bank_id = bank_id.clone();
            async move {
                store
                    .put_bank(&bank_id, &json!({"name": "Calm"}))
                    .await
                    .unwrap()
                    .version
            }
        })
        .await;
        assert_eq!(versions, vec![1; 8], "round {round}");
    }
}
