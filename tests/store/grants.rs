//! Conformance cases for sealed bank grants: put, replace, read, and the compare-and-set
//! replacement. Each case runs on both stores (listed in `conformance!` in `main.rs`).

use super::*;

pub async fn grants_put_replace_get(store: Arc<dyn Store>) {
    assert_eq!(store.grant("c-1").await.unwrap(), None);
    let grant = StoredGrant {
        consent_id: "c-1".to_owned(),
        sealed: sealed("k1", b"\x00sealed tokens\xff"),
        updated_at: t0(),
    };
    store.put_grant(&grant).await.unwrap();
    assert_eq!(store.grant("c-1").await.unwrap(), Some(grant.clone()));

    let refreshed = StoredGrant {
        sealed: sealed("k2", b"refreshed tokens"),
        updated_at: t0() + Duration::hours(1),
        ..grant.clone()
    };
    store.put_grant(&refreshed).await.unwrap();
    assert_eq!(store.grant("c-1").await.unwrap(), Some(refreshed));

    let other = StoredGrant {
        consent_id: "c-2".to_owned(),
        ..grant
    };
    store.put_grant(&other).await.unwrap();
    assert_eq!(store.grant("c-2").await.unwrap(), Some(other));
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
