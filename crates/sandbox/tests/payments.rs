//! Sandbox banks that move money, over real HTTP: payments initiated at the Berlin Group and
//! STET sandboxes, approved through their OAuth authorization servers, executed on one shared
//! ledger and visible in both banks' balances and transactions; rejections; bank-side
//! idempotency and the payment counters; statuses that move on the sandbox clock.

use std::sync::Arc;

use bankgate_sandbox::ledger::Ledger;
use bankgate_sandbox::{Approval, Sandbox, SandboxConfig};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CLIENT_ID: &str = "bankgate";
const CLIENT_SECRET: &str = "sandbox-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:1/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// Alice's current account (EUR), the payer unless a test says otherwise.
const ALICE_GIRO: &str = "DE92999900000012345601";
/// Carol's main account (EUR): a payee at another sandbox bank.
const CAROL_MAIN: &str = "NL18BKGT0417164300";

/// Two sandbox banks on one fresh ledger, and an HTTP client that follows no redirect.
struct Banks {
    bg: Sandbox,
    stet: Sandbox,
    ledger: Arc<Ledger>,
    http: reqwest::Client,
}

async fn start(profile: &str, ledger: &Arc<Ledger>) -> Sandbox {
    bankgate_sandbox::start_on(
        SandboxConfig {
            profile: profile.into(),
            addr: ([127, 0, 0, 1], 0).into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            approval: Approval::Auto,
            fapi: Default::default(),
        },
        ledger.clone(),
    )
    .await
    .expect("the sandbox starts")
}

async fn banks() -> Banks {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ledger = Arc::new(Ledger::default());
    Banks {
        bg: start("berlin-group", &ledger).await,
        stet: start("stet", &ledger).await,
        ledger,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client"),
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn challenge() -> String {
    use aws_lc_rs::digest;
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, VERIFIER.as_bytes()))
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body");
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

impl Banks {
    /// Runs the authorization code flow at `sandbox` with `params` (scope and the like) and
    /// returns the access token.
    async fn authorise(&self, sandbox: &Sandbox, params: &[(&str, &str)]) -> String {
        let challenge = challenge();
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("state", "st-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        query.extend_from_slice(params);
        let response = self
            .http
            .get(format!("{}/oauth/authorize", sandbox.origin))
            .query(&query)
            .send()
            .await
            .expect("the bank answers");
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let location = url::Url::parse(&location).unwrap();
        let code = location
            .query_pairs()
            .find(|(name, _)| name == "code")
            .map(|(_, code)| code.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"));
        let token = self
            .http
            .post(format!("{}/oauth/token", sandbox.origin))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .unwrap();
        let token = answer(token).await;
        assert_eq!(token.status, StatusCode::OK, "{}", token.body);
        token.body["access_token"].as_str().unwrap().to_owned()
    }

    // -- Berlin Group ---------------------------------------------------------------------

    async fn bg_create(&self, product: &str, body: &Value, request_id: &str) -> Answer {
        let response = self
            .http
            .post(format!("{}/v1/payments/{product}", self.bg.origin))
            .header("x-request-id", request_id)
            .json(body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// Creates a payment and has Alice approve it; returns its id.
    async fn bg_pay(&self, product: &str, body: &Value) -> String {
        let created = self.bg_create(product, body, &request_id()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["paymentId"].as_str().unwrap().to_owned();
        self.authorise(&self.bg, &[("scope", &format!("PIS:{id}"))])
            .await;
        id
    }

    async fn bg_status(&self, product: &str, id: &str) -> Answer {
        let response = self
            .http
            .get(format!(
                "{}/v1/payments/{product}/{id}/status",
                self.bg.origin
            ))
            .header("x-request-id", request_id())
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// The BG balances of an account, read with a fresh AIS consent approved by `customer`.
    async fn bg_balances(&self, customer: &str, account: &str) -> Value {
        let (consent, token) = self.bg_consent(customer).await;
        let response = self
            .http
            .get(format!("{}/v1/accounts/{account}/balances", self.bg.origin))
            .header("x-request-id", request_id())
            .header("consent-id", &consent)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let answer = answer(response).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body
    }

    async fn bg_transactions(&self, customer: &str, account: &str) -> Value {
        let (consent, token) = self.bg_consent(customer).await;
        let response = self
            .http
            .get(format!(
                "{}/v1/accounts/{account}/transactions?bookingStatus=both",
                self.bg.origin
            ))
            .header("x-request-id", request_id())
            .header("consent-id", &consent)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let answer = answer(response).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body
    }

    async fn bg_consent(&self, customer: &str) -> (String, String) {
        let response = self
            .http
            .post(format!("{}/v1/consents", self.bg.origin))
            .header("x-request-id", request_id())
            .json(&json!({
                "access": {"allPsd2": "allAccounts"},
                "recurringIndicator": true,
                "validUntil": "9999-12-31",
                "frequencyPerDay": 4,
            }))
            .send()
            .await
            .unwrap();
        let created = answer(response).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let consent = created.body["consentId"].as_str().unwrap().to_owned();
        let token = self
            .authorise(
                &self.bg,
                &[
                    ("scope", &format!("AIS:{consent}")),
                    ("login_hint", customer),
                ],
            )
            .await;
        (consent, token)
    }

    // -- STET -----------------------------------------------------------------------------

    async fn stet_create(&self, body: &Value, request_id: &str) -> Answer {
        let response = self
            .http
            .post(format!("{}/v1/payment-requests", self.stet.origin))
            .header("x-request-id", request_id)
            .json(body)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// Creates a payment request and has Alice approve it; returns its id and the token.
    async fn stet_approve(&self, body: &Value) -> (String, String) {
        let created = self.stet_create(body, &request_id()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let href = created.body["_links"]["consentApproval"]["href"]
            .as_str()
            .unwrap();
        let id = url::Url::parse(href)
            .unwrap()
            .query_pairs()
            .find(|(name, _)| name == "paymentRequestResourceId")
            .map(|(_, id)| id.into_owned())
            .unwrap();
        let token = self
            .authorise(
                &self.stet,
                &[("scope", "pisp"), ("paymentRequestResourceId", &id)],
            )
            .await;
        (id, token)
    }

    async fn stet_confirm(&self, id: &str, token: &str) -> Answer {
        let response = self
            .http
            .post(format!(
                "{}/v1/payment-requests/{id}/confirmation",
                self.stet.origin
            ))
            .header("x-request-id", request_id())
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn stet_read(&self, id: &str, token: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/payment-requests/{id}", self.stet.origin))
            .header("x-request-id", request_id())
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let answer = answer(response).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body
    }

    /// Alice's STET data token (`aisp`).
    async fn stet_data_token(&self) -> String {
        self.authorise(&self.stet, &[("scope", "aisp")]).await
    }

    async fn stet_get(&self, path: &str, token: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.stet.origin))
            .header("x-request-id", request_id())
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let answer = answer(response).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body
    }

    async fn admin(&self, sandbox: &Sandbox, method: reqwest::Method, path: &str) -> Answer {
        let response = self
            .http
            .request(method, format!("{}{path}", sandbox.origin))
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn advance(&self, minutes: u32) {
        let advanced = self
            .admin(
                &self.bg,
                reqwest::Method::POST,
                &format!("/sandbox/clock/advance?minutes={minutes}"),
            )
            .await;
        assert_eq!(advanced.status, StatusCode::OK);
    }
}

fn bg_body(amount: &str, creditor_iban: &str) -> Value {
    json!({
        "endToEndIdentification": "e2e-1",
        "instructedAmount": {"currency": "EUR", "amount": amount},
        "creditorAccount": {"iban": creditor_iban},
        "creditorName": "Carol Nguyen",
        "remittanceInformationUnstructured": "pizza",
    })
}

fn stet_body(amount: &str, creditor_iban: &str, instant: bool) -> Value {
    let mut payment_type = json!({"serviceLevel": "SEPA"});
    if instant {
        payment_type["localInstrument"] = "INST".into();
    }
    json!({
        "paymentInformationId": "pmt-1",
        "creationDateTime": "2026-12-05T08:00:00.000+00:00",
        "numberOfTransactions": 1,
        "initiatingParty": {"name": "bankgate"},
        "paymentTypeInformation": payment_type,
        "creditor": {"name": "Carol Nguyen"},
        "creditorAccount": {"iban": creditor_iban},
        "chargeBearer": "SLEV",
        "creditTransferTransaction": [{
            "paymentId": {"instructionId": "pmt-1", "endToEndId": "pmt-1"},
            "instructedAmount": {"currency": "EUR", "amount": amount},
            "remittanceInformation": ["pizza"],
        }],
        "supplementaryData": {"acceptedAuthenticationApproach": ["REDIRECT"]},
    })
}

/// The amount of the balance of `kind` in a Berlin Group balance list.
fn bg_balance(balances: &Value, kind: &str) -> String {
    balances["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|balance| balance["balanceType"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {balances}"))["balanceAmount"]["amount"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The amount of the STET balance of `code` (and `name`, for `OTHR`).
fn stet_balance(balances: &Value, code: &str) -> String {
    balances["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|balance| balance["balanceType"] == code)
        .unwrap_or_else(|| panic!("no {code} in {balances}"))["balanceAmount"]["amount"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_payment_at_the_stet_bank_moves_money_to_a_payee_at_the_berlin_group_bank() {
    let banks = banks().await;
    let carol_before = banks.bg_balances("carol", "carol-main").await;
    assert_eq!(bg_balance(&carol_before, "interimAvailable"), "919.02");

    let (id, token) = banks
        .stet_approve(&stet_body("12.50", CAROL_MAIN, false))
        .await;
    let approved = banks.stet_read(&id, &token).await;
    assert_eq!(
        approved["paymentRequest"]["paymentInformationStatus"],
        "ACCP"
    );
    // Approved, not confirmed: no money has moved.
    assert!(banks.ledger.movements(ALICE_GIRO).is_empty());

    let confirmed = banks.stet_confirm(&id, &token).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let read = banks.stet_read(&id, &token).await;
    let request = &read["paymentRequest"];
    assert_eq!(request["paymentInformationStatus"], "ACTC");
    assert_eq!(request["debtorAccount"]["iban"], ALICE_GIRO);
    assert_eq!(
        request["creditTransferTransaction"][0]["instructedAmount"]["amount"],
        "12.50"
    );
    assert_eq!(
        request["creditTransferTransaction"][0]["paymentId"]["endToEndId"],
        "pmt-1"
    );

    // The payer's side, at the STET bank: the expected balance and a pending debit.
    let data = banks.stet_data_token().await;
    let balances = banks
        .stet_get("/v1/accounts/alice-giro/balances", &data)
        .await;
    assert_eq!(stet_balance(&balances, "XPCD"), "-251.99");
    let transactions = banks
        .stet_get("/v1/accounts/alice-giro/transactions", &data)
        .await;
    let debit = &transactions["transactions"][0];
    assert_eq!(debit["transactionAmount"]["amount"], "12.50");
    assert_eq!(debit["creditDebitIndicator"], "DBIT");
    assert_eq!(debit["status"], "PDNG");
    assert_eq!(debit["relatedParties"]["creditor"]["name"], "Carol Nguyen");

    // The payee's side, at the Berlin Group bank: credited exactly.
    let carol_after = banks.bg_balances("carol", "carol-main").await;
    assert_eq!(bg_balance(&carol_after, "interimAvailable"), "931.52");
    let report = banks.bg_transactions("carol", "carol-main").await;
    let credit = &report["transactions"]["pending"][0];
    assert_eq!(credit["transactionAmount"]["amount"], "12.50");
    assert_eq!(credit["debtorName"], "Alice Schmidt");

    // Over time: settlement in process, then settled and booked on both sides.
    banks.advance(1).await;
    let read = banks.stet_read(&id, &token).await;
    assert_eq!(read["paymentRequest"]["paymentInformationStatus"], "ACSP");
    banks.advance(10).await;
    let read = banks.stet_read(&id, &token).await;
    assert_eq!(read["paymentRequest"]["paymentInformationStatus"], "ACSC");
    let transactions = banks
        .stet_get("/v1/accounts/alice-giro/transactions", &data)
        .await;
    assert_eq!(transactions["transactions"][0]["status"], "BOOK");
    let report = banks.bg_transactions("carol", "carol-main").await;
    assert_eq!(
        report["transactions"]["booked"][0]["transactionAmount"]["amount"],
        "12.50"
    );

    let counts = banks
        .admin(&banks.stet, reqwest::Method::GET, "/sandbox/payments")
        .await;
    assert_eq!(counts.body["created"], 1);
    assert_eq!(counts.body["confirmations"], 1);
    assert_eq!(counts.body["executed"], 1);
    // Any bank shows the ledger of any sandbox account.
    let moved = banks
        .admin(
            &banks.bg,
            reqwest::Method::GET,
            &format!("/sandbox/accounts/{ALICE_GIRO}/movements"),
        )
        .await;
    assert_eq!(moved.body["movements"][0]["amount"], "-12.50");
    assert_eq!(moved.body["movements"][0]["status"], "booked");
}

#[tokio::test]
async fn berlin_group_statuses_move_on_the_sandbox_clock() {
    let banks = banks().await;
    let created = banks
        .bg_create(
            "sepa-credit-transfers",
            &bg_body("20.00", CAROL_MAIN),
            &request_id(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["transactionStatus"], "RCVD");
    assert!(created.body["_links"]["scaOAuth"]["href"].is_string());
    let id = created.body["paymentId"].as_str().unwrap().to_owned();
    let status = banks.bg_status("sepa-credit-transfers", &id).await;
    assert_eq!(status.body["transactionStatus"], "RCVD");

    banks
        .authorise(&banks.bg, &[("scope", &format!("PIS:{id}"))])
        .await;
    let status = banks.bg_status("sepa-credit-transfers", &id).await;
    assert_eq!(status.body["transactionStatus"], "ACTC");
    assert_eq!(status.body["debtorAccount"]["iban"], ALICE_GIRO);
    banks.advance(1).await;
    let status = banks.bg_status("sepa-credit-transfers", &id).await;
    assert_eq!(status.body["transactionStatus"], "ACSP");
    banks.advance(10).await;
    let status = banks.bg_status("sepa-credit-transfers", &id).await;
    assert_eq!(status.body["transactionStatus"], "ACSC");

    // The payment is found under its own product only.
    let elsewhere = banks.bg_status("instant-sepa-credit-transfers", &id).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);

    // An instant payment settles at once.
    let instant = banks
        .bg_pay(
            "instant-sepa-credit-transfers",
            &bg_body("1.25", CAROL_MAIN),
        )
        .await;
    let status = banks
        .bg_status("instant-sepa-credit-transfers", &instant)
        .await;
    assert_eq!(status.body["transactionStatus"], "ACSC");
    let alice = banks.bg_balances("alice", "alice-giro").await;
    assert_eq!(bg_balance(&alice, "interimAvailable"), "1739.26");
}

#[tokio::test]
async fn banks_reject_what_they_cannot_pay_and_move_nothing() {
    let banks = banks().await;
    // Insufficient funds: Alice has 1760.51 EUR available.
    let id = banks
        .bg_pay("sepa-credit-transfers", &bg_body("1760.52", CAROL_MAIN))
        .await;
    let status = banks.bg_status("sepa-credit-transfers", &id).await;
    assert_eq!(status.body["transactionStatus"], "RJCT");
    let (id, token) = banks
        .stet_approve(&stet_body("5000.00", CAROL_MAIN, true))
        .await;
    banks.stet_confirm(&id, &token).await;
    let read = banks.stet_read(&id, &token).await;
    assert_eq!(read["paymentRequest"]["paymentInformationStatus"], "RJCT");
    assert_eq!(read["paymentRequest"]["statusReasonInformation"], "AM04");

    // A closed payee account.
    let closed = banks
        .admin(
            &banks.bg,
            reqwest::Method::POST,
            &format!("/sandbox/accounts/{CAROL_MAIN}/close"),
        )
        .await;
    assert_eq!(closed.status, StatusCode::NO_CONTENT);
    let (id, token) = banks
        .stet_approve(&stet_body("1.00", CAROL_MAIN, true))
        .await;
    banks.stet_confirm(&id, &token).await;
    let read = banks.stet_read(&id, &token).await;
    assert_eq!(read["paymentRequest"]["statusReasonInformation"], "AC04");

    // A blocked payee account (Carol's savings).
    let (id, token) = banks
        .stet_approve(&stet_body("1.00", "IE86BKGT99002148270605", true))
        .await;
    banks.stet_confirm(&id, &token).await;
    let read = banks.stet_read(&id, &token).await;
    assert_eq!(read["paymentRequest"]["statusReasonInformation"], "AC06");

    assert!(banks.ledger.movements(ALICE_GIRO).is_empty());
    assert!(banks.ledger.movements(CAROL_MAIN).is_empty());
    let alice = banks.bg_balances("alice", "alice-giro").await;
    assert_eq!(bg_balance(&alice, "interimAvailable"), "1760.51");

    // Malformed orders never become payments.
    for (body, what) in [
        (bg_body("0.00", CAROL_MAIN), "zero"),
        (bg_body("1.005", CAROL_MAIN), "three decimals"),
        (bg_body("-1.00", CAROL_MAIN), "negative"),
        (json!({"creditorName": "x"}), "no amount"),
    ] {
        let refused = banks
            .bg_create("sepa-credit-transfers", &body, &request_id())
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(refused.body["tppMessages"][0]["code"], "FORMAT_ERROR");
    }
    let unknown = banks
        .bg_create(
            "cross-border-credit-transfers",
            &bg_body("1.00", CAROL_MAIN),
            &request_id(),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let counts = banks
        .admin(&banks.bg, reqwest::Method::GET, "/sandbox/payments")
        .await;
    assert_eq!(counts.body["created"], 1);
    assert_eq!(counts.body["rejected"], 1);
    assert_eq!(counts.body["executed"], 0);
}

#[tokio::test]
async fn a_payment_is_created_and_executed_once_at_the_bank() {
    let banks = banks().await;
    // Berlin Group: the same X-Request-ID and body answer the same payment.
    let key = request_id();
    let body = bg_body("3.00", CAROL_MAIN);
    let first = banks.bg_create("sepa-credit-transfers", &body, &key).await;
    let again = banks.bg_create("sepa-credit-transfers", &body, &key).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(first.body["paymentId"], again.body["paymentId"]);
    let other = banks
        .bg_create("sepa-credit-transfers", &bg_body("4.00", CAROL_MAIN), &key)
        .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    let counts = banks
        .admin(&banks.bg, reqwest::Method::GET, "/sandbox/payments")
        .await;
    assert_eq!(counts.body["created"], 1);
    assert_eq!(counts.body["replayed"], 1);
    assert_eq!(banks.bg.payments.created(), 1);

    // A payment approved once cannot be approved again.
    let id = first.body["paymentId"].as_str().unwrap();
    banks
        .authorise(&banks.bg, &[("scope", &format!("PIS:{id}"))])
        .await;
    let response = banks
        .http
        .get(format!("{}/oauth/authorize", banks.bg.origin))
        .query(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", &challenge()),
            ("code_challenge_method", "S256"),
            ("scope", &format!("PIS:{id}")),
        ])
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("error=invalid_scope"), "{location}");
    assert_eq!(banks.ledger.movements(ALICE_GIRO).len(), 1);

    // STET: a second confirmation is a conflict and moves nothing.
    let (id, token) = banks
        .stet_approve(&stet_body("2.00", CAROL_MAIN, false))
        .await;
    assert_eq!(banks.stet_confirm(&id, &token).await.status, StatusCode::OK);
    assert_eq!(
        banks.stet_confirm(&id, &token).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(banks.ledger.movements(ALICE_GIRO).len(), 2);
    assert_eq!(banks.stet.payments.confirmations(), 2);
    assert_eq!(banks.stet.payments.executed(), 1);
    // The same X-Request-ID with the same body at STET: the same payment request.
    let key = request_id();
    let body = stet_body("2.50", CAROL_MAIN, false);
    let first = banks.stet_create(&body, &key).await;
    let again = banks.stet_create(&body, &key).await;
    assert_eq!(
        first.body["_links"]["consentApproval"],
        again.body["_links"]["consentApproval"]
    );
    assert_eq!(
        banks
            .stet_create(&stet_body("9.99", CAROL_MAIN, false), &key)
            .await
            .status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn a_stet_bank_that_asks_no_confirmation_executes_at_approval() {
    let banks = banks().await;
    let switched = banks
        .admin(
            &banks.stet,
            reqwest::Method::POST,
            "/sandbox/payments/confirmation?required=false",
        )
        .await;
    assert_eq!(switched.status, StatusCode::NO_CONTENT);
    let (id, token) = banks
        .stet_approve(&stet_body("7.00", CAROL_MAIN, true))
        .await;
    let read = banks.stet_read(&id, &token).await;
    assert_eq!(read["paymentRequest"]["paymentInformationStatus"], "ACSC");
    // Confirming what needs no confirmation is a conflict, and nothing moves twice.
    assert_eq!(
        banks.stet_confirm(&id, &token).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(banks.ledger.movements(CAROL_MAIN).len(), 1);
}

#[tokio::test]
async fn the_berlin_group_redirect_approach_sends_the_customer_back_to_the_tpp() {
    let banks = banks().await;
    let response = banks
        .http
        .post(format!(
            "{}/v1/payments/sepa-credit-transfers",
            banks.bg.origin
        ))
        .header("x-request-id", request_id())
        .header("tpp-redirect-uri", "https://tpp.example/ok?p=1")
        .header("tpp-nok-redirect-uri", "https://tpp.example/nok")
        .json(&bg_body("5.00", CAROL_MAIN))
        .send()
        .await
        .unwrap();
    let created = answer(response).await;
    assert_eq!(created.headers["aspsp-sca-approach"], "REDIRECT");
    let page = created.body["_links"]["scaRedirect"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = banks.http.get(&page).send().await.unwrap();
    assert_eq!(shown.status(), StatusCode::OK);
    let html = shown.text().await.unwrap();
    assert!(
        html.contains("pay 5.00 EUR to Carol Nguyen (NL18…4300)"),
        "{html}"
    );
    let decided = banks
        .http
        .post(&page)
        .form(&[("customer", "bob"), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), StatusCode::FOUND);
    assert_eq!(decided.headers()["location"], "https://tpp.example/ok?p=1");
    let id = created.body["paymentId"].as_str().unwrap();
    let status = banks.bg_status("sepa-credit-transfers", id).await;
    assert_eq!(status.body["transactionStatus"], "ACTC");
    // Bob pays EUR from his multi-currency wallet.
    assert_eq!(
        status.body["debtorAccount"]["iban"],
        "GB40BKGT40051531926827"
    );
}

#[tokio::test]
async fn an_answer_lost_after_the_bank_acted_leaves_one_payment_to_look_up() {
    use bankgate_sandbox::faults::Fault;
    let banks = banks().await;
    banks
        .bg
        .faults
        .set_times("/v1/payments/", Fault::AnswerLost, 1);
    let key = request_id();
    let body = bg_body("6.00", CAROL_MAIN);
    let lost = banks
        .http
        .post(format!(
            "{}/v1/payments/sepa-credit-transfers",
            banks.bg.origin
        ))
        .header("x-request-id", &key)
        .json(&body)
        .send()
        .await;
    let lost = match lost {
        Ok(response) => response.bytes().await.is_err(),
        Err(_) => true,
    };
    assert!(lost, "the answer must not get through");
    // The bank acted: one payment exists, and asking again with the same request id finds it.
    assert_eq!(banks.bg.payments.created(), 1);
    let again = banks.bg_create("sepa-credit-transfers", &body, &key).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(banks.bg.payments.created(), 1);
    assert_eq!(banks.bg.payments.replayed(), 1);
}
