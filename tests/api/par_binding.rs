//! Pushed authorization requests, the rest of RFC 9126 and RFC 9449 §10 (issue 5, items 4
//! and 5): a DPoP proof or `dpop_jkt` at PAR binds the authorization code to a key, which the
//! token request must then prove; a pushed request may not carry a `request_uri`.

use bankgate::demo::{FlowTrace, PlatformClient, account_information};
use bankgate::jose::ClientKey;
use bankgate::model::Scope;
use serde_json::Value;

use super::support::{StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    a_proof_at_par_binds_the_code_to_its_key,
    dpop_jkt_at_par_binds_the_code_too,
    par_refuses_a_request_uri_inside_the_pushed_request,
);

/// The token endpoint's refusal of `form`, as `(status, error code)`.
async fn token_refusal(client: &PlatformClient, form: &[(&str, &str)]) -> (u16, Value) {
    let answer = client
        .send(reqwest::Method::POST, "/oauth/token", None, Some(form))
        .await
        .unwrap();
    (answer.status, answer.json()["error"].clone())
}

/// The same registered client, proving with another DPoP key.
fn with_other_key(client: &PlatformClient) -> PlatformClient {
    client
        .without_dpop()
        .unwrap()
        .with_dpop(ClientKey::generate_ed25519().unwrap())
}

async fn a_proof_at_par_binds_the_code_to_its_key(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    // A FAPI client sends a DPoP proof with every request, PAR included.
    let platform = gateway.fapi_platform("bound-app", None).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-par-1");

    // Redeemed with a proof by another key (the code was stolen along with the client's
    // credentials, but not its DPoP key): refused, and the code stays for its key.
    let pushed = platform.push(&detail).await.unwrap();
    let code = platform
        .approve(&pushed, &mut FlowTrace::default())
        .await
        .unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", super::support::REDIRECT_URI),
        ("code_verifier", pushed.code_verifier.as_str()),
    ];
    let (status, error) = token_refusal(&with_other_key(&platform), &form).await;
    assert_eq!((status, error.as_str()), (400, Some("invalid_dpop_proof")));

    // With the key of the pushed request: a token bound to it.
    let token = platform.exchange(&code, &pushed).await.unwrap();
    let claims = gateway.app.tokens.verify(&token.access_token).unwrap();
    assert_eq!(
        claims.jkt(),
        Some(platform.dpop_key().unwrap().thumbprint())
    );
}

async fn dpop_jkt_at_par_binds_the_code_too(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let key = ClientKey::generate_es256().unwrap();
    // A client that sends no proof at PAR names its key instead.
    let plain = &gateway.platform;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-par-2");

    let pushed = plain
        .push_with(&detail, &[("dpop_jkt", key.thumbprint())])
        .await
        .unwrap();
    let code = plain
        .approve(&pushed, &mut FlowTrace::default())
        .await
        .unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", super::support::REDIRECT_URI),
        ("code_verifier", pushed.code_verifier.as_str()),
    ];
    // Without any proof: refused.
    let (status, error) = token_refusal(plain, &form).await;
    assert_eq!((status, error.as_str()), (400, Some("invalid_dpop_proof")));

    // With a proof by the named key: a DPoP-bound token.
    let pushed = plain
        .push_with(&detail, &[("dpop_jkt", key.thumbprint())])
        .await
        .unwrap();
    let code = plain
        .approve(&pushed, &mut FlowTrace::default())
        .await
        .unwrap();
    let prover = plain.via(&gateway.base).unwrap().with_dpop(key);
    let token = prover.exchange(&code, &pushed).await.unwrap();
    assert_eq!(token.token_type, "DPoP");

    // A proof and a `dpop_jkt` that disagree, and a `dpop_jkt` that is no thumbprint.
    let fapi = gateway.fapi_platform("proving-app", None).await;
    let other = ClientKey::generate_ed25519().unwrap();
    let error = fapi
        .push_with(&detail, &[("dpop_jkt", other.thumbprint())])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("invalid_dpop_proof"), "{error}");
    let error = plain
        .push_with(&detail, &[("dpop_jkt", "not-a-thumbprint")])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("invalid_request") && error.contains("dpop_jkt"),
        "{error}"
    );
}

/// RFC 9126 §2.1: `request_uri` must not be provided in a pushed request.
async fn par_refuses_a_request_uri_inside_the_pushed_request(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-par-3");
    let earlier = gateway.platform.push(&detail).await.unwrap();
    let error = gateway
        .platform
        .push_with(&detail, &[("request_uri", earlier.request_uri.as_str())])
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("(400)")
            && error.contains("invalid_request")
            && error.contains("request_uri"),
        "{error}"
    );
    // The earlier request is untouched: it still opens the consent screen.
    let mut trace = FlowTrace::default();
    gateway
        .platform
        .approve(&earlier, &mut trace)
        .await
        .expect("the earlier pushed request still works");
}
