//! The person behind a consent, as their bank knows them: a bank that is an OpenID provider
//! names who approved in the ID token of its token answer (`sub`), and the consent records it
//! — as a keyed digest only — so that the person's consents at that bank are found together
//! across platforms.

use bankgate::demo::account_information;
use bankgate::model::Scope;

use super::support::{StoreKind, TestGateway};

on_both_stores!(consents_record_the_bank_person_across_platforms);

const PURPOSE: &str = "balance-alerts";
const SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];
/// The sandbox customer the banks approve as when nobody says otherwise.
const CUSTOMER: &str = "alice";

async fn consents_record_the_bank_person_across_platforms(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let chat = gateway.another_platform("chat-a", &[PURPOSE]).await;
    let social = gateway.another_platform("social-b", &[PURPOSE]).await;
    let store = gateway.app.store.clone();
    let sealer = gateway.app.sealer.clone();

    // Two platforms, two user references, one person at the OBIE bank (which asks `openid`).
    let mut at_obie = Vec::new();
    for (platform, user_ref) in [(&chat, "chat-u1"), (&social, "social-u9")] {
        let detail = account_information("obie-bank", PURPOSE, SCOPES, user_ref);
        let (token, _) = platform.connect(&detail).await.expect("consent flow");
        at_obie.push(token.consent_id);
    }
    // The same person at the FDX bank.
    let detail = account_information("fdx-bank", PURPOSE, SCOPES, "chat-u1");
    let (fdx, _) = chat.connect(&detail).await.expect("consent flow at FDX");

    let person = sealer.bank_person("obie-bank", CUSTOMER);
    assert!(
        person.starts_with("bp_") && !person.contains(CUSTOMER),
        "{person}"
    );
    let mut found: Vec<String> = store
        .consents_of_bank_person("obie-bank", &person)
        .await
        .unwrap()
        .into_iter()
        .map(|consent| consent.id)
        .collect();
    found.sort();
    at_obie.sort();
    assert_eq!(found, at_obie, "both platforms' consents, nothing else");

    // One person, another bank: another digest, and there only that bank's consent.
    let at_fdx = sealer.bank_person("fdx-bank", CUSTOMER);
    assert_ne!(at_fdx, person);
    let found = store
        .consents_of_bank_person("fdx-bank", &at_fdx)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, fdx.consent_id);

    // The Berlin Group and STET banks name who approved too (their manifests ask `openid`).
    for bank in ["demo-bank", "stet-bank"] {
        let detail = account_information(bank, PURPOSE, SCOPES, "chat-u1");
        let (token, _) = chat.connect(&detail).await.expect("consent flow");
        let found = store
            .consents_of_bank_person(bank, &sealer.bank_person(bank, CUSTOMER))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{bank}");
        assert_eq!(found[0].id, token.consent_id, "{bank}");
    }

    // Another customer of the bank has none of them.
    let bob = sealer.bank_person("obie-bank", "bob");
    assert!(
        store
            .consents_of_bank_person("obie-bank", &bob)
            .await
            .unwrap()
            .is_empty()
    );
}
