//! Test helpers every profile's tests share: the official fixtures (read from
//! `$BANKGATE_FIXTURES`, failing — never skipping — when they are missing), reviewed
//! expectations under `tests/expected/<profile>/` (`UPDATE_EXPECT=1` rewrites them), and a
//! sandbox bank with the OAuth dance done by hand.

use std::path::PathBuf;

use chrono::{Days, Utc};
use serde_json::Value;

use crate::adapters::{
    AccountRef, Bank, BankAccount, BankConsent, BankSession, ConsentRequest, History, Manifest,
    PaymentOrder, Profile,
};
use crate::crypto;
use crate::model::{Balance, BalanceType, Scope, Transaction};
use bankgate_sandbox::{self as sandbox, Approval, Sandbox, SandboxConfig};

/// Where bankgate's callback would be; the sandbox only compares it.
pub const REDIRECT_URI: &str = "http://127.0.0.1:1/oauth/callback";

/// A payment order of `amount` EUR to Carol Nguyen's account at a sandbox bank, "pizza".
pub fn order(payment_id: &str, amount: &str, instant: bool) -> PaymentOrder {
    PaymentOrder {
        payment_id: payment_id.into(),
        amount: amount.parse().expect("an amount"),
        currency: "EUR".into(),
        creditor_iban: "NL18BKGT0417164300".into(),
        creditor_name: "Carol Nguyen".into(),
        remittance: Some("pizza".into()),
        instant,
    }
}

/// A recurring consent to `scopes` for 90 days, four unattended reads a day.
pub fn consent_request(scopes: &[Scope]) -> ConsentRequest {
    ConsentRequest {
        scopes: scopes.to_vec(),
        valid_until: Utc::now().date_naive() + Days::new(90),
        frequency_per_day: 4,
        recurring: true,
    }
}

/// `$BANKGATE_FIXTURES/<dir>` (default: `../shared/fixtures` next to the crate).
#[track_caller]
pub fn fixtures_dir(dir: &str) -> PathBuf {
    let root = std::env::var_os("BANKGATE_FIXTURES").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures")),
        PathBuf::from,
    );
    let path = root.join(dir);
    assert!(
        path.is_dir(),
        "{dir} fixtures not found at {}: set BANKGATE_FIXTURES to the directory that holds \
         {dir}/ (the shared fixtures)",
        path.display()
    );
    path
}

/// Every JSON fixture of `dir` as (file name, text), sorted by name.
#[track_caller]
pub fn fixtures(dir: &str) -> Vec<(String, String)> {
    let path = fixtures_dir(dir);
    let mut fixtures: Vec<(String, String)> = std::fs::read_dir(&path)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    fixtures.sort();
    assert!(!fixtures.is_empty(), "no fixtures in {}", path.display());
    fixtures
}

/// One fixture of `dir` by the end of its name.
#[track_caller]
pub fn fixture(dir: &str, suffix: &str) -> String {
    fixtures(dir)
        .into_iter()
        .find(|(name, _)| name.ends_with(suffix))
        .unwrap_or_else(|| panic!("no fixture named {dir}/*{suffix}"))
        .1
}

/// Normalises every JSON fixture of `dir` with `normalise`, compares each with its expected
/// output (see [`check_expected`]) and returns how many were checked.
#[track_caller]
pub fn check_every_fixture<E: std::fmt::Display>(
    dir: &str,
    normalise: impl Fn(&str, &str) -> Result<Value, E>,
) -> usize {
    check_fixtures(dir, |_| true, normalise)
}

/// As [`check_every_fixture`], for the fixtures of `dir` whose name `wanted` accepts.
#[track_caller]
pub fn check_fixtures<E: std::fmt::Display>(
    dir: &str,
    wanted: impl Fn(&str) -> bool,
    normalise: impl Fn(&str, &str) -> Result<Value, E>,
) -> usize {
    let mut n_checked = 0;
    for (name, text) in fixtures(dir).iter().filter(|(name, _)| wanted(name)) {
        let actual = normalise(name, text).unwrap_or_else(|error| panic!("{name}: {error}"));
        check_expected(dir, name, &actual);
        n_checked += 1;
    }
    n_checked
}

/// Compares `actual` with `tests/expected/<dir>/<name>`, or rewrites it when
/// `UPDATE_EXPECT=1`.
#[track_caller]
pub fn check_expected(dir: &str, name: &str, actual: &Value) {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/expected"))
        .join(dir)
        .join(name);
    let text = format!("{}\n", serde_json::to_string_pretty(actual).unwrap());
    if std::env::var_os("UPDATE_EXPECT").is_some_and(|value| value == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error}; run with UPDATE_EXPECT=1 and review the result",
            path.display()
        )
    });
    let expected: Value = serde_json::from_str(&expected).unwrap();
    assert_eq!(
        actual,
        &expected,
        "{dir}/{name} normalises differently from {}; run with UPDATE_EXPECT=1 and review the diff",
        path.display()
    );
}

/// A sandbox bank of `profile` on a free loopback port, approving every consent, where
/// bankgate is the client `bankgate` with `client_secret` (and no FAPI requirements).
pub fn sandbox_config(profile: &str, client_secret: &str) -> SandboxConfig {
    // reqwest is built without a default TLS provider; `Bank::new` panics unless one is set.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    SandboxConfig {
        profile: profile.into(),
        addr: ([127, 0, 0, 1], 0).into(),
        client_id: "bankgate".into(),
        client_secret: client_secret.into(),
        approval: Approval::Auto,
        fapi: Default::default(),
    }
}

/// Starts the sandbox of `profile` ([`sandbox_config`]) and a [`Bank`] for it whose API base
/// is the origin plus `api_path`.
pub async fn sandbox_bank(profile: &str, bank_id: &str, api_path: &str) -> (Sandbox, Bank) {
    let client_secret = crypto::random_token(24).unwrap();
    let sandbox = sandbox::start(sandbox_config(profile, &client_secret))
        .await
        .unwrap();
    let bank = sandbox_bank_at(&sandbox, profile, bank_id, api_path, &client_secret, "");
    (sandbox, bank)
}

/// A [`Bank`] speaking `profile` to `sandbox`, whose API base is the origin plus `api_path`,
/// where bankgate's secret is `client_secret`; `oauth` adds lines to the manifest's `[oauth]`
/// table.
pub fn sandbox_bank_at(
    sandbox: &Sandbox,
    profile: &str,
    bank_id: &str,
    api_path: &str,
    client_secret: &str,
    oauth: &str,
) -> Bank {
    let origin = &sandbox.origin;
    let manifest: Manifest = toml::from_str(&format!(
        r#"
        id = "{bank_id}"
        name = "Test Bank"
        country = "FR"
        profile = "{profile}"
        api_base_url = "{origin}{api_path}"
        [oauth]
        issuer = "{origin}"
        authorization_endpoint = "{origin}/oauth/authorize"
        token_endpoint = "{origin}/oauth/token"
        revocation_endpoint = "{origin}/oauth/revoke"
        client_id_env = "TEST_BANK_CLIENT_ID"
        client_secret_env = "TEST_BANK_CLIENT_SECRET"
        {oauth}
        "#
    ))
    .unwrap();
    // The sandbox listens on loopback: the development opt-out.
    let egress = crate::egress::Egress::new(true);
    Bank::new(
        manifest,
        "bankgate".into(),
        Some(client_secret.into()),
        &egress,
    )
    .unwrap()
}

/// Follows the authorization redirect by hand (as `customer` when given) and returns the
/// code, checking `state` and `iss` on the way back.
pub async fn authorize(
    bank: &Bank,
    consent: &BankConsent,
    verifier: &str,
    customer: Option<&str>,
) -> String {
    let mut url = url::Url::parse(&bank.manifest.oauth.authorization_endpoint).unwrap();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &bank.client_id)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("state", "state-42")
            .append_pair("code_challenge", &crypto::pkce_s256(verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("scope", &consent.oauth_scopes.join(" "));
        for (key, value) in &consent.authorization_params {
            query.append_pair(key, value);
        }
        if let Some(customer) = customer {
            query.append_pair("login_hint", customer);
        }
    }
    let response = bank.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    let location = url::Url::parse(location).unwrap();
    assert!(location.as_str().starts_with(REDIRECT_URI));
    let parameter = |name: &str| {
        location
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(parameter("state").as_deref(), Some("state-42"));
    assert_eq!(parameter("iss"), bank.manifest.oauth.issuer);
    parameter("code").unwrap_or_else(|| panic!("no code in {location}"))
}

/// Sends a request to a sandbox bank; returns the status and the JSON answer.
pub async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Redeems a code with the PKCE verifier; returns the status and the JSON answer.
pub async fn exchange(bank: &Bank, code: &str, verifier: &str) -> (u16, Value) {
    answer(
        bank.http
            .post(&bank.manifest.oauth.token_endpoint)
            .basic_auth(&bank.client_id, bank.client_secret())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ]),
    )
    .await
}

/// Authorises `consent` (as `customer` when given) and returns the token answer.
pub async fn tokens(bank: &Bank, consent: &BankConsent, customer: Option<&str>) -> Value {
    let verifier = crypto::random_token(32).unwrap();
    let code = authorize(bank, consent, &verifier, customer).await;
    let (status, tokens) = exchange(bank, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    tokens
}

/// The session at a sandbox bank of its token answer, with the bank's consent id where the
/// standard has one.
pub fn session<'a>(
    bank: &'a Bank,
    tokens: &'a Value,
    bank_consent_id: Option<&'a str>,
) -> BankSession<'a> {
    BankSession {
        bank,
        access_token: tokens["access_token"].as_str().unwrap(),
        bank_consent_id,
    }
}

/// Alice's accounts at a sandbox bank through `profile`: checks that they are her giro,
/// savings and card accounts, in that order.
pub async fn alice_accounts(profile: &dyn Profile, session: BankSession<'_>) -> Vec<BankAccount> {
    let accounts = profile.accounts(session).await.unwrap();
    let refs: Vec<&str> = accounts.iter().map(|a| a.bank_ref.as_str()).collect();
    assert_eq!(refs, ["alice-giro", "alice-savings", "alice-card"]);
    accounts
}

/// The account `bank_ref` at the bank, under the canonical id `account_id`.
pub fn account(bank_ref: &str, account_id: &str) -> AccountRef {
    AccountRef {
        account_id: account_id.to_owned(),
        bank_ref: bank_ref.to_owned(),
    }
}

/// The balance of `kind` among `balances`; there must be one.
#[track_caller]
pub fn balance(balances: &[Balance], kind: BalanceType) -> &Balance {
    balances
        .iter()
        .find(|b| b.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} balance in {balances:?}"))
}

/// Alice's history at a sandbox bank through `profile`: checks that her giro account (the
/// first of `accounts`) has 16 transactions, 9 of them in the last 30 days, and that her
/// savings account's (the second) sub-cent accrual reads `accrual` in the decimals the standard
/// keeps; returns the giro account's transactions.
pub async fn alice_history(
    profile: &dyn Profile,
    session: BankSession<'_>,
    accounts: &[BankAccount],
    accrual: &str,
) -> Vec<Transaction> {
    let history = |account, from| profile.transactions(session, History { account, from });
    let (giro, savings) = (accounts[0].account_ref(), accounts[1].account_ref());
    assert_eq!(giro.bank_ref, "alice-giro");
    let all = history(&giro, None).await.unwrap();
    assert_eq!(all.len(), 16);
    let from = Utc::now().date_naive() - Days::new(30);
    assert_eq!(history(&giro, Some(from)).await.unwrap().len(), 9);
    let savings = history(&savings, None).await.unwrap();
    let sub_cent = savings.iter().find(|t| t.id == "tx-alice-sav-11").unwrap();
    assert_eq!(sub_cent.amount.to_string(), accrual);
    all
}

/// Arbitrary JSON: scalars of every kind (long and odd numbers included), arrays and objects
/// whose keys are often the field names the wire types look for.
pub fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    const KEYS: &[&str] = &[
        "accounts",
        "balances",
        "transactions",
        "booked",
        "pending",
        "amount",
        "currency",
        "balanceAmount",
        "balanceType",
        "transactionAmount",
        "creditDebitIndicator",
        "status",
        "bookingDate",
        "valueDate",
        "resourceId",
        "accountId",
        "iban",
        "Data",
        "Account",
        "Balance",
        "Transaction",
        "Amount",
        "Currency",
        "CreditDebitIndicator",
        "Type",
        "AccountId",
        "Identification",
        "SchemeName",
        "debitCreditMemo",
        "currentBalance",
        "availableBalance",
        "accountCategory",
        "postedTimestamp",
        "remittanceInformation",
        "name",
        "error",
        "tppMessages",
        "_links",
        "next",
        "href",
        "depositAccount",
    ];
    let number = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "-?[0-9]{1,40}(\\.[0-9]{1,40})?([eE][-+]?[0-9]{1,5})?",
    ]
    .prop_filter_map("a JSON number", |text| {
        serde_json::from_str::<serde_json::Number>(&text).ok()
    });
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number.prop_map(Value::Number),
        ".{0,12}".prop_map(Value::String),
        "-?[0-9]{1,6}(\\.[0-9]{0,6})?".prop_map(Value::String),
        prop_oneof![
            Just("CRDT"),
            Just("DBIT"),
            Just("Credit"),
            Just("Debit"),
            Just("BOOK"),
            Just("PDNG"),
            Just("EUR"),
            Just("2025-03-04"),
            Just("2025-03-04T10:00:00Z"),
            Just("DEBIT"),
            Just("MEMO"),
            Just("DE89370400440532013000"),
            Just("OTHR"),
        ]
        .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    proptest::sample::select(KEYS).prop_map(str::to_owned),
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}
