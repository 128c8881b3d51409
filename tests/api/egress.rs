//! SSRF: with production's egress policy, a bank cannot register an adapter that points
//! bankgate at loopback, a private network or any other special-purpose address, however the
//! address is spelled; the sandbox banks the gateway started itself stay reachable.

use bankgate::demo::account_information;
use bankgate::model::Scope;

use crate::registration::{
    bank_principal, manifest, proprietary_sandbox, provide_credentials, put_adapter,
};
use crate::support::{Options, StoreKind, TestGateway};

on_both_stores!(registered_adapters_reach_public_addresses_only);

/// Every address form of the hardening report, and more from the special-purpose registries,
/// with the range the refusal names.
const REFUSED: &[(&str, &str)] = &[
    ("[::ffff:127.0.0.1]", "IPv4-mapped 127.0.0.1, loopback"),
    ("[::ffff:7f00:1]", "IPv4-mapped 127.0.0.1, loopback"),
    (
        "[::ffff:169.254.169.254]",
        "IPv4-mapped 169.254.169.254, link-local",
    ),
    ("[::ffff:10.0.0.1]", "IPv4-mapped 10.0.0.1, private-use"),
    ("[::127.0.0.1]", "IPv4-compatible 127.0.0.1, loopback"),
    (
        "[64:ff9b::7f00:1]",
        "NAT64-translated (RFC 6052) 127.0.0.1, loopback",
    ),
    ("[2002:7f00:1::]", "6to4 (RFC 3056) 127.0.0.1, loopback"),
    ("localhost.", "RFC 6761"),
    ("foo.localhost", "RFC 6761"),
    ("100.64.0.1", "shared address space"),
    ("0.1.2.3", "this network"),
    ("198.18.0.1", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "limited broadcast"),
    ("127.0.0.1", "loopback"),
    ("2130706433", "loopback"),
    ("169.254.169.254", "link-local"),
    ("[fd00::1]", "unique local"),
    ("[fe80::1]", "link-local"),
    ("[2001:db8::1]", "documentation"),
    ("192.0.2.1", "TEST-NET-1"),
];

async fn registered_adapters_reach_public_addresses_only(kind: StoreKind) {
    let gateway = TestGateway::start_with(
        kind,
        Options {
            public_hosts_only: true,
            ..Options::default()
        },
    )
    .await;
    provide_credentials(&gateway);

    // The bundled sandbox listens on loopback, at the address this gateway bound for it.
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts],
        "u-egress",
    );
    let (token, _) = gateway
        .platform
        .connect(&detail)
        .await
        .expect("consent flow");
    let (status, body) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    // A bank's own sandbox on loopback is another matter.
    let sandbox = proprietary_sandbox().await;
    let principal = bank_principal(&gateway, "acme-admin", "acme-bank").await;
    let bank_token = principal.client_credentials().await.expect("bank token");
    let on_loopback = manifest("acme-bank", &sandbox, serde_json::json!({}));
    let (status, content_type, problem) =
        put_adapter(&gateway, Some(&bank_token), "acme-bank", "", &on_loopback).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1 is not a public address: loopback"),
        "{problem}"
    );

    let origin = sandbox.origin.clone();
    for (host, range) in REFUSED {
        let mut registration = on_loopback.clone();
        let url = format!("https://{host}:8443");
        let api_base_url = registration["api_base_url"]
            .as_str()
            .unwrap()
            .replace(&origin, &url);
        registration["api_base_url"] = api_base_url.into();
        for field in [
            "authorization_endpoint",
            "token_endpoint",
            "revocation_endpoint",
            "issuer",
        ] {
            if let Some(value) = registration["oauth"][field].as_str() {
                registration["oauth"][field] = value.replace(&origin, &url).into();
            }
        }
        for query in ["", "?check=live"] {
            let (status, _, problem) = put_adapter(
                &gateway,
                Some(&bank_token),
                "acme-bank",
                query,
                &registration,
            )
            .await;
            assert_eq!(status, 400, "{url}{query}: {problem}");
            let detail = problem["detail"].as_str().unwrap();
            assert!(
                detail.contains("public address") && detail.contains(range),
                "{url}{query}: {detail}"
            );
        }
    }
    // Nothing of it reached the store or the live check's target.
    assert!(gateway.app.banks.get("acme-bank").is_none());
    assert_eq!(gateway.app.store.bank("acme-bank").await.unwrap(), None);
    assert_eq!(sandbox.faults.hits("/"), 0);
}
