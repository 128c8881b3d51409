//! The UK OBIE sandbox bank's domestic payments over real HTTP: a TPP registered with its
//! key (private_key_jwt) creates a payment consent, the customer authorises it, the TPP posts
//! the payment; every POST carries a detached JWS (`x-jws-signature`, b64=false) that the bank
//! verifies against the registered key — a tampered body is refused and moves nothing — and an
//! `x-idempotency-key` under which nothing happens twice. Statuses move on the sandbox clock.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use bankgate_sandbox::ledger::{Ledger, SETTLEMENT};
use bankgate_sandbox::{Approval, Sandbox, SandboxConfig, SandboxFapi};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

const CLIENT_ID: &str = "bankgate";
const REDIRECT_URI: &str = "http://127.0.0.1:1/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const ALICE_GIRO: &str = "DE92999900000012345601";
const CAROL_MAIN: &str = "NL18BKGT0417164300";
const KID: &str = "tpp-signing-1";

/// An ES256 key of the TPP: what it signs with and its public JWK.
struct TppKey {
    encoding: EncodingKey,
    jwk: Value,
}

impl TppKey {
    fn generate() -> TppKey {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        TppKey {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }

    fn assertion(&self, audience: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        let claims = json!({
            "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": audience,
            "iat": now, "exp": now + 30, "jti": uuid::Uuid::new_v4().to_string(),
        });
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }

    /// The detached JWS of `body` with `header` (OBIE's critical claims unless a test says
    /// otherwise).
    fn detached_with(&self, header: &Value, body: &[u8]) -> String {
        let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
        let mut message = encoded.clone().into_bytes();
        message.push(b'.');
        message.extend_from_slice(body);
        let signature =
            jsonwebtoken::crypto::sign(&message, &self.encoding, Algorithm::ES256).unwrap();
        format!("{encoded}..{signature}")
    }

    fn detached(&self, body: &[u8]) -> String {
        self.detached_with(&ob_header(), body)
    }
}

fn ob_header() -> Value {
    json!({
        "alg": "ES256",
        "kid": KID,
        "typ": "JOSE",
        "cty": "application/json",
        "b64": false,
        "http://openbanking.org.uk/iat": chrono::Utc::now().timestamp() - 1,
        "http://openbanking.org.uk/iss": CLIENT_ID,
        "http://openbanking.org.uk/tan": "openbanking.org.uk",
        "crit": ["b64", "http://openbanking.org.uk/iat",
                 "http://openbanking.org.uk/iss", "http://openbanking.org.uk/tan"],
    })
}

struct Bank {
    sandbox: Sandbox,
    ledger: Arc<Ledger>,
    key: TppKey,
    http: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn bank() -> Bank {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let key = TppKey::generate();
    let ledger = Arc::new(Ledger::default());
    let sandbox = bankgate_sandbox::start_on(
        SandboxConfig {
            profile: "obie".into(),
            addr: ([127, 0, 0, 1], 0).into(),
            client_id: CLIENT_ID.into(),
            client_secret: "unused-secret".into(),
            approval: Approval::Auto,
            fapi: SandboxFapi {
                client_jwks: Some(json!({ "keys": [key.jwk.clone()] })),
                ..SandboxFapi::default()
            },
        },
        ledger.clone(),
    )
    .await
    .unwrap();
    Bank {
        sandbox,
        ledger,
        key,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

fn consent_body(amount: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "Data": {"Initiation": {
            "InstructionIdentification": "pay-1",
            "EndToEndIdentification": "pay-1",
            "InstructedAmount": {"Amount": amount, "Currency": "EUR"},
            "CreditorAccount": {"SchemeName": "UK.OBIE.IBAN", "Identification": CAROL_MAIN,
                                "Name": "Carol Nguyen"},
            "RemittanceInformation": {"Unstructured": "pizza"},
        }},
        "Risk": {},
    }))
    .unwrap()
}

impl Bank {
    fn url(&self, path: &str) -> String {
        format!("{}/open-banking/v4.0/pisp{path}", self.sandbox.origin)
    }

    async fn token(&self, form: &[(&str, &str)]) -> String {
        let assertion = self.key.assertion(&self.sandbox.origin);
        let mut form = form.to_vec();
        form.extend_from_slice(&[
            ("client_id", CLIENT_ID),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ]);
        let response = self
            .http
            .post(format!("{}/oauth/token", self.sandbox.origin))
            .form(&form)
            .send()
            .await
            .unwrap();
        let token = answer(response).await;
        assert_eq!(token.status, StatusCode::OK, "{}", token.body);
        token.body["access_token"].as_str().unwrap().to_owned()
    }

    async fn client_token(&self) -> String {
        self.token(&[("grant_type", "client_credentials"), ("scope", "payments")])
            .await
    }

    async fn post(&self, path: &str, token: &str, key: &str, body: &[u8], jws: &str) -> Answer {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("x-fapi-interaction-id", uuid::Uuid::new_v4().to_string())
            .header("x-idempotency-key", key)
            .header("x-jws-signature", jws)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    /// Creates a consent for `amount` EUR and has Alice authorise it; returns the consent id
    /// and its token.
    async fn authorised_consent(&self, amount: &str) -> (String, String) {
        let client = self.client_token().await;
        let body = consent_body(amount);
        let created = self
            .post(
                "/domestic-payment-consents",
                &client,
                &uuid::Uuid::new_v4().to_string(),
                &body,
                &self.key.detached(&body),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        assert_eq!(created.body["Data"]["Status"], "AWAU");
        let consent = created.body["Data"]["ConsentId"]
            .as_str()
            .unwrap()
            .to_owned();
        let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            VERIFIER.as_bytes(),
        ));
        let claims =
            json!({"id_token": {"openbanking_intent_id": {"value": consent, "essential": true}}})
                .to_string();
        let response = self
            .http
            .get(format!("{}/oauth/authorize", self.sandbox.origin))
            .query(&[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "openid payments"),
                ("claims", &claims),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        let code = location
            .query_pairs()
            .find(|(name, _)| name == "code")
            .map(|(_, code)| code.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"));
        let token = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
            ])
            .await;
        (consent, token)
    }
}

fn payment_body(consent: &str, amount: &str) -> Vec<u8> {
    let consent_body: Value = serde_json::from_slice(&consent_body(amount)).unwrap();
    serde_json::to_vec(&json!({
        "Data": {"ConsentId": consent, "Initiation": consent_body["Data"]["Initiation"]},
        "Risk": {},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_signed_domestic_payment_moves_money_once() {
    let bank = bank().await;
    let (consent, token) = bank.authorised_consent("12.50").await;
    let client = bank.client_token().await;
    let state = bank
        .get(&format!("/domestic-payment-consents/{consent}"), &client)
        .await;
    assert_eq!(state.body["Data"]["Status"], "AUTH");
    let funds = bank
        .get(
            &format!("/domestic-payment-consents/{consent}/funds-confirmation"),
            &token,
        )
        .await;
    assert_eq!(
        funds.body["Data"]["FundsAvailableResult"]["FundsAvailable"],
        true
    );
    assert!(bank.ledger.movements(ALICE_GIRO).is_empty());

    let body = payment_body(&consent, "12.50");
    let key = uuid::Uuid::new_v4().to_string();
    let made = bank
        .post(
            "/domestic-payments",
            &token,
            &key,
            &body,
            &bank.key.detached(&body),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let data = &made.body["Data"];
    assert_eq!(data["Status"], "ACTC");
    assert_eq!(data["Debtor"]["Identification"], ALICE_GIRO);
    assert_eq!(data["Initiation"]["InstructedAmount"]["Amount"], "12.50");
    let id = data["DomesticPaymentId"].as_str().unwrap().to_owned();

    // The same key and body: the same payment, nothing moves twice.
    let again = bank
        .post(
            "/domestic-payments",
            &token,
            &key,
            &body,
            &bank.key.detached(&body),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["Data"]["DomesticPaymentId"], id.as_str());
    // Another key for a consumed consent: refused.
    let other = bank
        .post(
            "/domestic-payments",
            &token,
            &uuid::Uuid::new_v4().to_string(),
            &body,
            &bank.key.detached(&body),
        )
        .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        other.body["Errors"][0]["ErrorCode"],
        "UK.OBIE.Resource.InvalidConsentStatus"
    );
    assert_eq!(bank.ledger.movements(ALICE_GIRO).len(), 1);
    assert_eq!(bank.ledger.movements(CAROL_MAIN).len(), 1);
    assert_eq!(bank.sandbox.payments.executed(), 1);
    assert_eq!(bank.sandbox.payments.confirmations(), 3);

    let consumed = bank
        .get(&format!("/domestic-payment-consents/{consent}"), &client)
        .await;
    assert_eq!(consumed.body["Data"]["Status"], "COND");
    bank.ledger.clock().advance(SETTLEMENT);
    let settled = bank.get(&format!("/domestic-payments/{id}"), &client).await;
    assert_eq!(settled.body["Data"]["Status"], "ACSC");
    // 3.1 speaks names.
    let v3 = bank
        .http
        .get(format!(
            "{}/open-banking/v3.1/pisp/domestic-payments/{id}",
            bank.sandbox.origin
        ))
        .bearer_auth(&client)
        .send()
        .await
        .unwrap();
    let v3 = answer(v3).await;
    assert_eq!(v3.body["Data"]["Status"], "AcceptedSettlementCompleted");
}

#[tokio::test]
async fn a_tampered_or_badly_signed_request_is_refused_and_changes_nothing() {
    let bank = bank().await;
    let (consent, token) = bank.authorised_consent("12.50").await;
    let signed = payment_body(&consent, "12.50");
    let tampered = payment_body(&consent, "1250.00");
    let check = |answer: Answer, code: &str| {
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert_eq!(
            answer.body["Errors"][0]["ErrorCode"], code,
            "{}",
            answer.body
        );
    };
    let key = || uuid::Uuid::new_v4().to_string();
    // The body changed after signing.
    check(
        bank.post(
            "/domestic-payments",
            &token,
            &key(),
            &tampered,
            &bank.key.detached(&signed),
        )
        .await,
        "UK.OBIE.Signature.Invalid",
    );
    // Signed by a key the TPP never registered, under its kid.
    let stranger = TppKey::generate();
    check(
        bank.post(
            "/domestic-payments",
            &token,
            &key(),
            &signed,
            &stranger.detached(&signed),
        )
        .await,
        "UK.OBIE.Signature.Invalid",
    );
    // No signature; an encoded payload (b64 true); a claim missing from crit; another iss.
    check(
        bank.post("/domestic-payments", &token, &key(), &signed, "")
            .await,
        "UK.OBIE.Signature.Malformed",
    );
    let mut header = ob_header();
    header["b64"] = true.into();
    check(
        bank.post(
            "/domestic-payments",
            &token,
            &key(),
            &signed,
            &bank.key.detached_with(&header, &signed),
        )
        .await,
        "UK.OBIE.Signature.InvalidClaim",
    );
    let mut header = ob_header();
    header["crit"] = json!([
        "b64",
        "http://openbanking.org.uk/iat",
        "http://openbanking.org.uk/iss"
    ]);
    check(
        bank.post(
            "/domestic-payments",
            &token,
            &key(),
            &signed,
            &bank.key.detached_with(&header, &signed),
        )
        .await,
        "UK.OBIE.Signature.MissingClaim",
    );
    let mut header = ob_header();
    header["http://openbanking.org.uk/iss"] = "someone-else".into();
    check(
        bank.post(
            "/domestic-payments",
            &token,
            &key(),
            &signed,
            &bank.key.detached_with(&header, &signed),
        )
        .await,
        "UK.OBIE.Signature.InvalidClaim",
    );
    // Nothing was submitted, nothing moved, and the consent is still usable.
    assert_eq!(bank.sandbox.payments.confirmations(), 0);
    assert!(bank.ledger.movements(ALICE_GIRO).is_empty());
    let made = bank
        .post(
            "/domestic-payments",
            &token,
            &key(),
            &signed,
            &bank.key.detached(&signed),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);

    // A consent request is verified the same way.
    let client = bank.client_token().await;
    let body = consent_body("3.00");
    check(
        bank.post(
            "/domestic-payment-consents",
            &client,
            &key(),
            &consent_body("300.00"),
            &bank.key.detached(&body),
        )
        .await,
        "UK.OBIE.Signature.Invalid",
    );
    assert_eq!(bank.sandbox.payments.created(), 1);
}

#[tokio::test]
async fn a_payment_the_bank_cannot_make_is_rejected_with_a_reason() {
    let bank = bank().await;
    let (consent, token) = bank.authorised_consent("5000.00").await;
    let funds = bank
        .get(
            &format!("/domestic-payment-consents/{consent}/funds-confirmation"),
            &token,
        )
        .await;
    assert_eq!(
        funds.body["Data"]["FundsAvailableResult"]["FundsAvailable"],
        false
    );
    let body = payment_body(&consent, "5000.00");
    let made = bank
        .post(
            "/domestic-payments",
            &token,
            &uuid::Uuid::new_v4().to_string(),
            &body,
            &bank.key.detached(&body),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["Data"]["Status"], "RJCT");
    assert_eq!(
        made.body["Data"]["StatusReason"][0]["StatusReasonCode"],
        "AM04"
    );
    assert!(bank.ledger.movements(ALICE_GIRO).is_empty());
    // The initiation must be the consent's.
    let (consent, token) = bank.authorised_consent("2.00").await;
    let body = payment_body(&consent, "3.00");
    let refused = bank
        .post(
            "/domestic-payments",
            &token,
            &uuid::Uuid::new_v4().to_string(),
            &body,
            &bank.key.detached(&body),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.body["Errors"][0]["ErrorCode"],
        "UK.OBIE.Resource.ConsentMismatch"
    );
}
