//! Conformance case for the retention of operational records: one run deletes what has served
//! (a consent past its retention with everything kept for it, an abandoned consent, the grant
//! of an ended consent, expired requests, codes and tokens, finished deliveries, old access
//! counts) and keeps everything else, on both stores.

use std::sync::Arc;

use bankgate::adapters::StoredGrant;
use bankgate::lifecycle::retention::{PERIODS, Purged};
use bankgate::lifecycle::{DeliveryOutcome, WebhookDelivery};
use bankgate::oauth::{IssuedToken, PushedRequest, RefreshToken, StoredCode};
use bankgate::payments::{
    Amount, CreditorAccount, PAYMENT_INITIATION, Payment, PaymentRequest, Submission,
};
use bankgate::store::Store;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::{account, bank_authorization, code, consent, sealed, t0};
use bankgate::consent::{Consent, ConsentStatus};

/// When the run happens: 200 days after the fixtures' instant.
fn now() -> DateTime<Utc> {
    t0() + Duration::days(200)
}

fn days(n: i64) -> DateTime<Utc> {
    t0() + Duration::days(n)
}

fn consent_at(
    id: &str,
    status: ConsentStatus,
    created: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Consent {
    Consent {
        status,
        created_at: created,
        expires_at: expires,
        ..consent(id)
    }
}

fn grant(consent_id: &str) -> StoredGrant {
    StoredGrant {
        consent_id: consent_id.to_owned(),
        sealed: sealed("k1", b"tokens"),
        updated_at: t0(),
    }
}

fn refresh(hash: &str, consent_id: &str, expires: DateTime<Utc>) -> RefreshToken {
    RefreshToken {
        token_hash: hash.to_owned(),
        client_id: "platform-a".to_owned(),
        consent_id: consent_id.to_owned(),
        created_at: t0(),
        expires_at: expires,
        revoked_at: None,
    }
}

fn access_token(jti: &str, consent_id: Option<&str>) -> IssuedToken {
    IssuedToken {
        jti: jti.to_owned(),
        client_id: "platform-a".to_owned(),
        consent_id: consent_id.map(str::to_owned),
        expires_at: now() + Duration::hours(1),
    }
}

fn delivery(id: &str, created: DateTime<Utc>) -> WebhookDelivery {
    WebhookDelivery {
        id: id.to_owned(),
        client_id: "platform-a".to_owned(),
        event: "consent.revoked".to_owned(),
        consent_id: "c-live".to_owned(),
        dedupe_key: format!("consent.revoked:{id}"),
        url: "https://app.example/hooks".to_owned(),
        payload: "header.claims.signature".to_owned(),
        status: bankgate::lifecycle::DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: created,
        last_error: None,
        created_at: created,
        delivered_at: None,
    }
}

fn payment(consent_id: &str) -> Payment {
    Payment {
        id: "pay_kept".to_owned(),
        client_id: "platform-a".to_owned(),
        consent_id: consent_id.to_owned(),
        bank_id: "stet-bank".to_owned(),
        request: PaymentRequest {
            kind: PAYMENT_INITIATION.to_owned(),
            bank: "stet-bank".to_owned(),
            purpose: "p2p-payment".to_owned(),
            instructed_amount: Amount {
                currency: "EUR".to_owned(),
                amount: "10.00".parse().unwrap(),
            },
            creditor: None,
            creditor_account: CreditorAccount {
                iban: "DE89370400440532013000".to_owned(),
            },
            creditor_name: "Friend".to_owned(),
            remittance: None,
            instant: true,
            user_ref: "u-81f3".to_owned(),
            verification: None,
        },
        submission: Submission::Recorded,
        bank_payment_id: None,
        status: None,
        created_at: t0(),
        updated_at: t0(),
        next_poll_at: None,
        polls: 0,
    }
}

pub async fn retention_deletes_what_has_served_and_keeps_the_rest(store: Arc<dyn Store>) {
    let today = now().date_naive();

    // Consents: past retention, in use, revoked early, abandoned, just started, paid.
    for consent in [
        consent_at("c-old", ConsentStatus::Authorised, t0(), days(90)),
        consent_at("c-live", ConsentStatus::Authorised, days(150), days(240)),
        consent_at("c-revoked", ConsentStatus::Revoked, days(150), days(240)),
        consent_at(
            "c-abandoned",
            ConsentStatus::AwaitingAuthorisation,
            days(190),
            days(280),
        ),
        consent_at(
            "c-starting",
            ConsentStatus::AwaitingAuthorisation,
            days(198),
            days(288),
        ),
        consent_at("c-paid", ConsentStatus::Expired, t0(), days(90)),
    ] {
        store.insert_consent(&consent).await.unwrap();
    }
    store.insert_payment(&payment("c-paid")).await.unwrap();
    for consent_id in ["c-old", "c-live", "c-revoked", "c-paid"] {
        store.put_grant(&grant(consent_id)).await.unwrap();
        store
            .put_account_refs(consent_id, &[account("acc_1", "r1")])
            .await
            .unwrap();
    }

    // Requests and bank authorizations: one expired, one not.
    for (uri, expires) in [
        ("urn:old", days(199)),
        ("urn:new", now() + Duration::minutes(1)),
    ] {
        let request = PushedRequest {
            request_uri: uri.to_owned(),
            client_id: "platform-a".to_owned(),
            request: json!({}),
            expires_at: expires,
        };
        store.insert_pushed_request(&request).await.unwrap();
    }
    let mut old_authorization = bank_authorization("state-old");
    old_authorization.consent_id = "c-old".to_owned();
    let mut new_authorization = bank_authorization("state-new");
    new_authorization.consent_id = "c-starting".to_owned();
    new_authorization.expires_at = now() + Duration::minutes(5);
    for authorization in [&old_authorization, &new_authorization] {
        store
            .insert_bank_authorization(authorization)
            .await
            .unwrap();
    }

    // Codes: the old consent's, one a day past its expiry, one less than a day.
    let mut code_old = code("code-old");
    code_old.consent_id = "c-old".to_owned();
    let mut code_stale = code("code-stale");
    code_stale.consent_id = "c-live".to_owned();
    code_stale.expires_at = days(198);
    let mut code_recent = code("code-recent");
    code_recent.consent_id = "c-live".to_owned();
    code_recent.expires_at = now() - Duration::hours(12);
    for code in [&code_old, &code_stale, &code_recent] {
        store.insert_code(code).await.unwrap();
    }

    // Refresh tokens: the old consent's, revoked long ago, revoked an hour ago, expired, live.
    let mut revoked_long = refresh("rt-revoked-long", "c-live", days(240));
    revoked_long.revoked_at = Some(days(198));
    let mut revoked_recent = refresh("rt-revoked-recent", "c-live", days(240));
    revoked_recent.revoked_at = Some(now() - Duration::hours(1));
    for token in [
        refresh("rt-old", "c-old", now() + Duration::days(1)),
        revoked_long,
        revoked_recent,
        refresh("rt-expired", "c-live", days(199)),
        refresh("rt-live", "c-live", days(240)),
    ] {
        store.insert_refresh_token(&token).await.unwrap();
    }
    for token in [
        access_token("at-old", Some("c-old")),
        access_token("at-live", Some("c-live")),
        access_token("at-management", None),
    ] {
        store.record_access_token(&token).await.unwrap();
    }

    // Deliveries: delivered long ago, pending as long, failed recently.
    for (id, created) in [
        ("d-delivered", days(100)),
        ("d-pending", days(100)),
        ("d-failed", days(180)),
    ] {
        assert!(store.enqueue_webhook(&delivery(id, created)).await.unwrap());
    }
    let claimed = store
        .claim_webhooks(now(), 10, now() + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    for delivery in &claimed {
        let outcome = match delivery.id.as_str() {
            "d-delivered" => DeliveryOutcome::Delivered,
            "d-failed" => DeliveryOutcome::Failed {
                error: "gone".into(),
            },
            _ => DeliveryOutcome::Retry {
                at: now() + Duration::minutes(5),
                error: "busy".into(),
            },
        };
        store
            .finish_webhook(&delivery.id, &outcome, now())
            .await
            .unwrap();
    }

    // Access counts: the old consent's today, the live one's two days ago, yesterday, today.
    let spend = |consent_id: &'static str, day| {
        let store = store.clone();
        async move { store.spend_unattended(consent_id, day, 1).await.unwrap() }
    };
    assert!(spend("c-old", today).await);
    for ago in [2, 1, 0] {
        assert!(spend("c-live", today - Duration::days(ago)).await);
    }

    let purged = store
        .purge_operational(&PERIODS.cutoffs(now()))
        .await
        .unwrap();
    assert_eq!(
        purged,
        Purged {
            consents: 2,
            grants: 2,
            account_refs: 1,
            pushed_requests: 1,
            bank_authorizations: 1,
            codes: 2,
            refresh_tokens: 3,
            access_tokens: 1,
            deliveries: 1,
            access_counts: 2,
        }
    );
    // A second run finds nothing more.
    let again = store
        .purge_operational(&PERIODS.cutoffs(now()))
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    for (consent_id, kept) in [
        ("c-old", false),
        ("c-live", true),
        ("c-revoked", true),
        ("c-abandoned", false),
        ("c-starting", true),
        ("c-paid", true),
    ] {
        assert_eq!(
            store.consent(consent_id).await.unwrap().is_some(),
            kept,
            "{consent_id}"
        );
    }
    for (consent_id, kept) in [
        ("c-old", false),
        ("c-live", true),
        ("c-revoked", false),
        ("c-paid", true),
    ] {
        assert_eq!(
            store.grant(consent_id).await.unwrap().is_some(),
            kept,
            "grant of {consent_id}"
        );
    }
    for (consent_id, kept) in [("c-old", false), ("c-live", true), ("c-revoked", true)] {
        assert_eq!(
            store
                .account_ref(consent_id, "acc_1")
                .await
                .unwrap()
                .is_some(),
            kept,
            "account of {consent_id}"
        );
    }
    assert!(
        store
            .take_pushed_request("urn:old")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .take_pushed_request("urn:new")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .take_bank_authorization("state-old")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .take_bank_authorization("state-new")
            .await
            .unwrap()
            .is_some()
    );
    for (hash, kept) in [
        ("code-old", false),
        ("code-stale", false),
        ("code-recent", true),
    ] {
        let known = !matches!(store.code(hash).await.unwrap(), StoredCode::Unknown);
        assert_eq!(known, kept, "{hash}");
    }
    for (hash, kept) in [
        ("rt-old", false),
        ("rt-revoked-long", false),
        ("rt-revoked-recent", true),
        ("rt-expired", false),
        ("rt-live", true),
    ] {
        assert_eq!(
            store.refresh_token(hash).await.unwrap().is_some(),
            kept,
            "{hash}"
        );
    }
    // Revoking finds only the tokens still on record.
    for (jti, kept) in [
        ("at-old", false),
        ("at-live", true),
        ("at-management", true),
    ] {
        assert_eq!(store.revoke_access_token(jti).await.unwrap(), kept, "{jti}");
    }
    let mut deliveries: Vec<String> = store
        .webhook_deliveries("platform-a")
        .await
        .unwrap()
        .into_iter()
        .map(|delivery| delivery.id)
        .collect();
    deliveries.sort();
    assert_eq!(deliveries, ["d-failed", "d-pending"]);
    // A count that is gone can be spent again; one that is kept cannot.
    assert!(spend("c-live", today - Duration::days(2)).await);
    assert!(!spend("c-live", today - Duration::days(1)).await);
    assert!(!spend("c-live", today).await);
}
