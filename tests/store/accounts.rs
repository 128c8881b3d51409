//! Conformance cases for account references. Each case runs on both stores (listed in
//! `conformance!` in `main.rs`).

use super::*;

pub async fn account_refs_idempotent(store: Arc<dyn Store>) {
    let refs = [account("a-1", "bank-ref-1"), account("a-2", "bank-ref-2")];
    store.put_account_refs("c-1", &refs).await.unwrap();
    store.put_account_refs("c-1", &refs).await.unwrap();
    store.put_account_refs("c-1", &[]).await.unwrap();
    assert_eq!(
        store.account_ref("c-1", "a-1").await.unwrap(),
        Some(refs[0].clone())
    );
    assert_eq!(
        store.account_ref("c-1", "a-2").await.unwrap(),
        Some(refs[1].clone())
    );
    assert_eq!(store.account_ref("c-1", "a-3").await.unwrap(), None);
    assert_eq!(store.account_ref("c-2", "a-1").await.unwrap(), None);

    // The first mapping stays: an account id is never redirected to another bank account.
    store
        .put_account_refs(
            "c-1",
            &[account("a-1", "elsewhere"), account("a-3", "bank-ref-3")],
        )
        .await
        .unwrap();
    assert_eq!(
        store.account_ref("c-1", "a-1").await.unwrap(),
        Some(refs[0].clone())
    );
    assert_eq!(
        store.account_ref("c-1", "a-3").await.unwrap(),
        Some(account("a-3", "bank-ref-3"))
    );

    // The same id twice in one call: the first wins there too.
    store
        .put_account_refs("c-2", &[account("a-1", "first"), account("a-1", "second")])
        .await
        .unwrap();
    assert_eq!(
        store.account_ref("c-2", "a-1").await.unwrap(),
        Some(account("a-1", "first"))
    );
}
