//! Verification of payee end to end: a platform asks whether a name is the name on an
//! account, the bank holding the account answers in the EPC scheme's terms (the sandbox banks
//! of two standards), the platform sees the account masked and the name on the account only
//! with a close match, every answer is audited without the IBAN, and a platform asking too
//! many is throttled (audited, the bank not asked) — on both stores.

use bankgate::audit::{Action, Decision, Filter};
use bankgate_sandbox::faults::Fault;
use serde_json::{Value, json};

use crate::support::{Options, StoreKind, TestGateway};

on_both_stores!(
    each_of_the_four_answers_comes_from_the_payees_bank,
    enumeration_is_throttled_and_audited,
    bad_requests_and_wrong_tokens_are_refused,
);

/// Alice Schmidt's account (the Berlin Group sandbox answers for DE).
const ALICE_IBAN: &str = "DE92999900000012345601";
/// Bob Turner's account (the OBIE sandbox answers for GB).
const BOB_IBAN: &str = "GB62BKGT40051531926819";
/// A French IBAN (checksum valid) the STET sandbox does not hold.
const UNKNOWN_FR_IBAN: &str = "FR7630006000011234567890189";
/// A Spanish IBAN (checksum valid): no bank answers for Spain.
const SPANISH_IBAN: &str = "ES9121000418450200051332";

const PATH: &str = "/v1/payee-verifications";
const VOP_PATH: &str = "/vop/v1/payee-verifications";

async fn verify(gateway: &TestGateway, token: &str, iban: &str, name: &str) -> (u16, Value) {
    let answer = gateway
        .platform
        .post_json(token, PATH, &json!({"iban": iban, "name": name}), &[])
        .await
        .expect("the gateway answers");
    (answer.status, answer.json())
}

fn faults_of(
    gateway: &TestGateway,
    bank: &str,
) -> std::sync::Arc<bankgate_sandbox::faults::Faults> {
    let base = gateway
        .app
        .banks
        .get(bank)
        .expect("bank loaded")
        .bank
        .manifest
        .api_base_url
        .clone();
    gateway
        .sandbox_faults
        .iter()
        .find(|(origin, _)| base.starts_with(origin.as_str()))
        .expect("the bank's sandbox")
        .1
        .clone()
}

async fn verifications(gateway: &TestGateway) -> Vec<bankgate::audit::Record> {
    gateway
        .app
        .auditor
        .events(&Filter {
            action: Some(Action::PayeeVerified),
            ..Filter::default()
        })
        .await
        .expect("audit events")
}

async fn each_of_the_four_answers_comes_from_the_payees_bank(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.platform.client_credentials().await.expect("token");
    let cases: &[(&str, &str, Value)] = &[
        (
            ALICE_IBAN,
            "SCHMIDT Alice",
            json!({"result": "match", "account": "DE92 •••• 5601"}),
        ),
        (
            ALICE_IBAN,
            "A. Schmidt",
            json!({"result": "close_match", "account": "DE92 •••• 5601",
                "name_on_account": "Alice Schmidt"}),
        ),
        (
            ALICE_IBAN,
            "Bob Turner",
            json!({"result": "no_match", "account": "DE92 •••• 5601"}),
        ),
        // Another standard's bank, in the print form.
        (
            "GB62 BKGT 4005 1531 9268 19",
            "Bob Turner",
            json!({"result": "match", "account": "GB62 •••• 6819"}),
        ),
        // The bank answers NOAP for an account it does not hold.
        (
            UNKNOWN_FR_IBAN,
            "Jean Dupont",
            json!({"result": "not_possible", "account": "FR76 •••• 0189"}),
        ),
        // No bank answers for this country.
        (
            SPANISH_IBAN,
            "Juan García",
            json!({"result": "not_possible", "account": "ES91 •••• 1332"}),
        ),
    ];
    for (iban, name, expected) in cases {
        let (status, body) = verify(&gateway, &token, iban, name).await;
        assert_eq!(status, 200, "{iban} {name}: {body}");
        assert_eq!(&body, expected, "{iban} {name}");
    }

    // The payee's bank failing is not possible either, never an error the platform sees.
    let faults = faults_of(&gateway, "demo-bank");
    faults.set(VOP_PATH, Fault::Status(500));
    let (status, body) = verify(&gateway, &token, ALICE_IBAN, "Alice Schmidt").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "not_possible");
    assert!(!body.to_string().contains("sandbox-internal"), "{body}");
    faults.clear();

    // Every answer audited, with its result and the account masked, never in the clear.
    let events = verifications(&gateway).await;
    assert_eq!(events.len(), cases.len() + 1);
    let results: Vec<String> = events
        .iter()
        .map(|record| {
            let event = &record.event;
            assert_eq!(event.decision, Decision::Allow);
            assert_eq!(event.platform.as_deref(), Some("messenger"));
            let text = serde_json::to_string(event).unwrap();
            for iban in [ALICE_IBAN, BOB_IBAN, UNKNOWN_FR_IBAN, SPANISH_IBAN] {
                assert!(!text.contains(iban), "{text}");
            }
            event
                .fields
                .iter()
                .find_map(|fact| fact.strip_prefix("result:"))
                .expect("a result fact")
                .to_owned()
        })
        .collect();
    assert_eq!(
        results,
        [
            "match",
            "close_match",
            "no_match",
            "match",
            "not_possible",
            "not_possible",
            "not_possible"
        ]
    );
    assert_eq!(events[0].event.bank.as_deref(), Some("demo-bank"));
    assert_eq!(events[3].event.bank.as_deref(), Some("obie-bank"));
    assert_eq!(events[5].event.bank, None);
    assert!(
        events[0]
            .event
            .fields
            .contains(&"payee_account:DE92**************5601".to_owned()),
        "{:?}",
        events[0].event.fields
    );
}

async fn enumeration_is_throttled_and_audited(kind: StoreKind) {
    const LIMIT: u32 = 3;
    let gateway = TestGateway::start_with(
        kind,
        Options {
            payee_verifications_per_minute: Some(LIMIT),
            ..Options::default()
        },
    )
    .await;
    let token = gateway.platform.client_credentials().await.expect("token");
    let faults = faults_of(&gateway, "demo-bank");
    // Walking through account numbers: within one minute at most LIMIT are answered (a
    // minute may turn once while this runs, so twice LIMIT + 1 attempts surely meet the
    // throttle).
    let mut answered = 0;
    let mut throttled = None;
    for attempt in 0..(2 * LIMIT + 1) {
        let iban = if attempt % 2 == 0 {
            ALICE_IBAN
        } else {
            "DE65999900000012345602"
        };
        let hits = faults.hits(VOP_PATH);
        let answer = gateway
            .platform
            .post_json(
                &token,
                PATH,
                &json!({"iban": iban, "name": "Alice Schmidt"}),
                &[],
            )
            .await
            .unwrap();
        if answer.status == 429 {
            assert_eq!(
                faults.hits(VOP_PATH),
                hits,
                "a throttled request asks no bank"
            );
            throttled = Some(answer);
            break;
        }
        assert_eq!(answer.status, 200, "{}", answer.json());
        answered += 1;
    }
    let throttled = throttled.expect("the throttle answers 429");
    assert!(answered >= LIMIT, "{answered} answered before the throttle");
    let problem = throttled.json();
    assert_eq!(
        problem["type"],
        "https://bankgate.dev/problems/payee-verification-throttled"
    );
    assert_eq!(
        throttled.headers["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));

    // Only platforms ask.
    let other = gateway
        .compliance
        .client_credentials()
        .await
        .expect("token");
    let (status, _) = verify(&gateway, &other, ALICE_IBAN, "Alice Schmidt").await;
    assert_eq!(status, 403, "a compliance client is not a platform");

    let events = verifications(&gateway).await;
    let denied: Vec<_> = events
        .iter()
        .filter(|record| record.event.decision == Decision::Deny)
        .collect();
    assert_eq!(denied.len(), 1);
    let event = &denied[0].event;
    assert_eq!(
        event.reason.as_deref(),
        Some("payee-verification-throttled")
    );
    assert_eq!(event.platform.as_deref(), Some("messenger"));
    let text = serde_json::to_string(event).unwrap();
    assert!(
        !text.contains("12345601") && !text.contains("12345602"),
        "{text}"
    );
    assert!(text.contains("payee_account:DE"), "{text}");
    assert_eq!(
        events.len(),
        usize::try_from(answered).unwrap() + 1,
        "every answer and the refusal audited"
    );
}

async fn bad_requests_and_wrong_tokens_are_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.platform.client_credentials().await.expect("token");
    let (status, problem) = verify(&gateway, &token, "DE92999900000012345600", "Alice").await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["type"],
        "https://bankgate.dev/problems/payment-invalid-iban"
    );
    let (status, problem) = verify(&gateway, &token, ALICE_IBAN, " ").await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["type"],
        "https://bankgate.dev/problems/payment-invalid-creditor-name"
    );
    let answer = gateway
        .platform
        .post_json(&token, PATH, &json!({"iban": ALICE_IBAN}), &[])
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.json());
    // A consent's token is not a platform's management token.
    let detail = bankgate::demo::account_information(
        "demo-bank",
        "balance-alerts",
        &[bankgate::model::Scope::Accounts],
        "u-vop",
    );
    let (consent_token, _) = gateway.platform.connect(&detail).await.expect("consent");
    let (status, problem) = verify(
        &gateway,
        &consent_token.access_token,
        ALICE_IBAN,
        "Alice Schmidt",
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    // Nothing was asked, nothing audited as an answer.
    assert!(verifications(&gateway).await.is_empty());
}
