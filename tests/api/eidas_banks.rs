//! eIDAS at the banks, enforced: a Berlin Group sandbox bank serving TLS under a test CA asks
//! for bankgate's QWAC (mutual TLS) and verifies its request signatures (QSealC, `Digest`,
//! `Signature`, `TPP-Signature-Certificate`). The right certificates are accepted; no QWAC, a
//! QWAC without the role the request needs, an expired one or one of another CA are refused;
//! every signature check refuses a tampered body, a tampered header, missing headers, a wrong
//! digest, a signature that does not cover what it must, another certificate's key id, an
//! expired seal and a seal without the role; a certificate is rotated without a restart. And a
//! whole gateway whose bundled Berlin Group bank asks for eIDAS runs the consent flow and reads
//! data through it.

use std::path::PathBuf;

use bankgate::adapters::eidas::{EidasSpec, Material, WARN_DAYS};
use bankgate::adapters::{Adapter, AdapterError, ConsentRequest, Manifest};
use bankgate::demo::account_information;
use bankgate::egress::Egress;
use bankgate::model::Scope;
use bankgate_sandbox::eidas::SandboxEidas;
use bankgate_sandbox::pki::{Issued, Kind, PspCertificate, Role, TestPki};
use bankgate_sandbox::{Approval, Sandbox, SandboxConfig, SandboxFapi};
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use super::support::{Options, StoreKind, TestGateway};

const BOTH: &[Role] = &[Role::AccountInformation, Role::PaymentInitiation];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A certificate of `kind` from `pki` with `roles`, valid for `days` (negative: ended).
fn issue(pki: &TestPki, kind: Kind, roles: &[Role], days: i64) -> Issued {
    let mut request = PspCertificate::new(kind, "bankgate", roles, days.max(1));
    if days < 0 {
        request.not_before = Utc::now() - Duration::days(30);
        request.not_after = Utc::now() + Duration::days(days);
    }
    pki.issue_psp(&request).unwrap()
}

/// Material from a QWAC and a QSealC (either may be left out), trusting `pki`'s CA.
fn material(pki: &TestPki, qwac: Option<&Issued>, qseal: Option<&Issued>) -> Material {
    Material {
        qwac: qwac.map(|issued| (issued.chain_pem.clone(), issued.key_pem.clone())),
        qseal: qseal.map(|issued| (issued.certificate_pem.clone(), issued.key_pem.clone())),
        ca: Some(pki.ca_pem.clone()),
        qseal_key_id: None,
    }
}

/// A Berlin Group sandbox bank enforcing eIDAS under `pki`.
async fn bank(pki: &TestPki) -> Sandbox {
    sandbox_bank(pki, "berlin-group", Vec::new()).await
}

/// A sandbox bank of `profile` enforcing eIDAS under `pki`, the seals of `registered_seals`
/// registered with it (STET).
async fn sandbox_bank(
    pki: &TestPki,
    profile: &str,
    registered_seals: Vec<(String, String)>,
) -> Sandbox {
    let server = pki.issue_server(&["127.0.0.1", "localhost"], 30).unwrap();
    bankgate_sandbox::start(SandboxConfig {
        profile: profile.into(),
        addr: "127.0.0.1:0".parse().unwrap(),
        client_id: "bankgate".into(),
        client_secret: "sandbox-secret".into(),
        approval: Approval::Auto,
        fapi: SandboxFapi {
            eidas: Some(SandboxEidas {
                ca_pem: pki.ca_pem.clone(),
                server_chain_pem: server.chain_pem,
                server_key_pem: server.key_pem,
                require_client_certificate: true,
                require_signatures: true,
                registered_seals,
            }),
            ..SandboxFapi::default()
        },
    })
    .await
    .unwrap()
}

/// The bundled Berlin Group manifest, pointed at `sandbox`, with `[eidas]` naming `spec`.
fn manifest(sandbox: &Sandbox, spec: EidasSpec) -> Manifest {
    let mut manifest = bundled("demo-bank", sandbox);
    manifest.eidas = Some(spec);
    manifest
}

/// The bundled manifest of `bank`, pointed at `sandbox`.
fn bundled(bank: &str, sandbox: &Sandbox) -> Manifest {
    let path = manifest_dir().join(format!("adapters/{bank}.toml"));
    let mut manifest = Manifest::load(&path).unwrap();
    manifest.rebase(&sandbox.origin);
    manifest.sandbox = None;
    manifest.verification_of_payee = None;
    manifest
}

fn spec() -> EidasSpec {
    EidasSpec {
        qwac_cert_file_env: Some("T_QWAC_CERT".into()),
        qwac_key_file_env: Some("T_QWAC_KEY".into()),
        qseal_cert_file_env: Some("T_QSEAL_CERT".into()),
        qseal_key_file_env: Some("T_QSEAL_KEY".into()),
        ca_file_env: Some("T_CA".into()),
        qseal_key_id: None,
    }
}

/// bankgate's adapter for `sandbox` with the identity `material` makes (in memory).
fn adapter(sandbox: &Sandbox, material: &Material) -> Adapter {
    let mut adapter = Adapter::new(
        manifest(sandbox, spec()),
        "bankgate".into(),
        Some("sandbox-secret".into()),
        1,
        &Egress::new(true),
    )
    .unwrap();
    let identity =
        bankgate::adapters::eidas::Eidas::new("demo-bank", "berlin-group", None, material).unwrap();
    adapter.bank.set_eidas(identity).unwrap();
    adapter
}

/// A consent creation (`POST /v1/consents`) through `adapter`'s client, signed, then changed
/// by `tamper`: the status and the bank's `tppMessages` code — or the connection's failure.
async fn raw_consent(
    adapter: &Adapter,
    tamper: impl FnOnce(&mut reqwest::Request),
) -> Result<(u16, String), AdapterError> {
    let bank = &adapter.bank;
    let body = json!({
        "access": {"balances": [], "accounts": []},
        "recurringIndicator": true,
        "validUntil": (Utc::now() + Duration::days(30)).format("%Y-%m-%d").to_string(),
        "frequencyPerDay": 4,
        "combinedServiceIndicator": false
    });
    let mut request = bank
        .http
        .post(bank.url("/v1/consents"))
        .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
        .header("TPP-Redirect-URI", "http://127.0.0.1/callback")
        .json(&body)
        .build()
        .unwrap();
    bank.eidas.as_ref().unwrap().sign(&mut request).unwrap();
    tamper(&mut request);
    let response = bank
        .http
        .execute(request)
        .await
        .map_err(AdapterError::from)?;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let code = answer["tppMessages"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((status, code))
}

/// What the broker asks a bank for: balances, for a month.
fn consent_request() -> ConsentRequest {
    ConsentRequest {
        scopes: vec![Scope::Accounts, Scope::Balances],
        valid_until: (Utc::now() + Duration::days(30)).date_naive(),
        frequency_per_day: 4,
        recurring: true,
    }
}

/// A change made to a request after it was signed.
type Tamper = Box<dyn FnOnce(&mut reqwest::Request) + Send>;

/// Sets `header` to `value`.
fn set(header: &'static str, value: String) -> Tamper {
    Box::new(move |request| {
        request.headers_mut().insert(header, value.parse().unwrap());
    })
}

/// Takes `header` out.
fn without(header: &'static str) -> Tamper {
    Box::new(move |request| {
        request.headers_mut().remove(header);
    })
}

/// Replaces `from` by `to` in the `Signature` header (which must hold `from`).
fn in_signature(from: &'static str, to: &'static str) -> Tamper {
    Box::new(move |request| {
        let value = request.headers()["signature"].to_str().unwrap().to_owned();
        let changed = value.replacen(from, to, 1);
        assert_ne!(value, changed, "{value}");
        request
            .headers_mut()
            .insert("signature", changed.parse().unwrap());
    })
}

/// Replaces the body.
fn body(text: &'static str) -> Tamper {
    Box::new(move |request| *request.body_mut() = Some(text.into()))
}

#[track_caller]
fn refused(outcome: Result<(u16, String), AdapterError>, code: &str) {
    match outcome {
        Ok((status, got)) => {
            assert_eq!((status, got.as_str()), (401, code));
        }
        Err(error) => panic!("{code} expected, the connection failed: {error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_qwac_of_the_ca_with_the_role_and_unexpired() {
    let pki = TestPki::generate().unwrap();
    let sandbox = bank(&pki).await;
    let qseal = issue(&pki, Kind::Qsealc, BOTH, 30);

    // The right certificates: the consent is created.
    let good = adapter(
        &sandbox,
        &material(&pki, Some(&issue(&pki, Kind::Qwac, BOTH, 30)), Some(&qseal)),
    );
    let (status, _) = raw_consent(&good, |_| {}).await.unwrap();
    assert_eq!(status, 201);
    // And through the Berlin Group profile, as the broker creates one.
    let consent = good
        .profile
        .create_consent(&good.bank, &consent_request())
        .await
        .expect("a consent over mutual TLS, signed");
    assert!(!consent.oauth_scopes.is_empty());

    // No QWAC: refused per request.
    let none = adapter(&sandbox, &material(&pki, None, Some(&qseal)));
    refused(raw_consent(&none, |_| {}).await, "CERTIFICATE_MISSING");

    // A QWAC for payments only: no account information.
    let payments_only = issue(&pki, Kind::Qwac, &[Role::PaymentInitiation], 30);
    let wrong_role = adapter(
        &sandbox,
        &material(&pki, Some(&payments_only), Some(&qseal)),
    );
    refused(raw_consent(&wrong_role, |_| {}).await, "ROLE_INVALID");

    // An expired QWAC, and one of another CA: the bank refuses the handshake itself. Under
    // TLS 1.3 its alert may race the request bankgate already sent, so the failure reads as
    // the refused handshake or as the connection it closed — never as an answer.
    let expired = issue(&pki, Kind::Qwac, BOTH, -1);
    let other_pki = TestPki::generate().unwrap();
    let foreign = issue(&other_pki, Kind::Qwac, BOTH, 30);
    for (qwac, words) in [
        (&expired, "expired"),
        (&foreign, "refused bankgate's client certificate"),
    ] {
        let refused_at_handshake = adapter(&sandbox, &material(&pki, Some(qwac), Some(&qseal)));
        match raw_consent(&refused_at_handshake, |_| {}).await {
            Err(AdapterError::Tls(problem)) => assert!(problem.contains(words), "{problem}"),
            Err(AdapterError::Transport(_)) => {}
            other => panic!("a refused handshake expected: {other:?}"),
        }
    }
    // Through the profile, as the broker calls the bank: an expired certificate is not even
    // sent, and the error names the bank and the certificate.
    let fresh_qwac = issue(&pki, Kind::Qwac, BOTH, 30);
    let expired_seal = issue(&pki, Kind::Qsealc, BOTH, -1);
    for (qwac, seal, words) in [
        (
            &expired,
            &qseal,
            "client certificate (QWAC) at this bank expired on",
        ),
        (
            &fresh_qwac,
            &expired_seal,
            "seal (QSealC) at this bank expired on",
        ),
    ] {
        let stale = adapter(&sandbox, &material(&pki, Some(qwac), Some(seal)));
        let error = stale
            .profile
            .create_consent(&stale.bank, &consent_request())
            .await
            .unwrap_err();
        assert_eq!(error.bank(), Some("demo-bank"), "{error:?}");
        assert_eq!(error.kind(), "tls", "{error:?}");
        let detail = bankgate::Error::from(error).safe_detail();
        assert!(
            detail.contains("demo-bank")
                && detail.contains("TLS handshake")
                && detail.contains(words),
            "{detail}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signature_check_refuses_what_was_changed_or_left_out() {
    let pki = TestPki::generate().unwrap();
    let sandbox = bank(&pki).await;
    let qwac = issue(&pki, Kind::Qwac, BOTH, 30);
    let qseal = issue(&pki, Kind::Qsealc, BOTH, 30);
    let signer = adapter(&sandbox, &material(&pki, Some(&qwac), Some(&qseal)));

    let (status, _) = raw_consent(&signer, |_| {}).await.unwrap();
    assert_eq!(status, 201, "signed as it is: accepted");

    let cases: Vec<(&str, Tamper, &str)> = vec![
        // The body changed after signing: the digest no longer matches.
        (
            "a tampered body",
            body(r#"{"access":{"allPsd2":"allAccounts"}}"#),
            "SIGNATURE_INVALID",
        ),
        // A signed header changed: the signature no longer verifies.
        (
            "another request id",
            set("x-request-id", uuid::Uuid::new_v4().to_string()),
            "SIGNATURE_INVALID",
        ),
        (
            "another redirect",
            set("tpp-redirect-uri", "https://evil.example/cb".into()),
            "SIGNATURE_INVALID",
        ),
        // Headers left out.
        ("no signature", without("signature"), "SIGNATURE_MISSING"),
        ("no digest", without("digest"), "SIGNATURE_MISSING"),
        (
            "no certificate",
            without("tpp-signature-certificate"),
            "SIGNATURE_MISSING",
        ),
        // A wrong digest (of another body) with the body unchanged.
        (
            "a wrong digest",
            set(
                "digest",
                "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
            ),
            "SIGNATURE_INVALID",
        ),
        // A signature that does not cover what it must (x-request-id, tpp-redirect-uri).
        (
            "a narrowed signature",
            in_signature(
                "headers=\"digest x-request-id tpp-redirect-uri\"",
                "headers=\"digest\"",
            ),
            "SIGNATURE_INVALID",
        ),
        // A key id naming another certificate.
        (
            "another key id",
            in_signature("keyId=\"SN=", "keyId=\"SN=00"),
            "SIGNATURE_INVALID",
        ),
    ];
    for (what, tamper, code) in cases {
        eprintln!("{what}");
        refused(raw_consent(&signer, tamper).await, code);
    }
    // A seal that expired, one without the account information role, one of another CA.
    let expired_seal = issue(&pki, Kind::Qsealc, BOTH, -1);
    let expired = adapter(&sandbox, &material(&pki, Some(&qwac), Some(&expired_seal)));
    refused(raw_consent(&expired, |_| {}).await, "CERTIFICATE_EXPIRED");
    let payments_seal = issue(&pki, Kind::Qsealc, &[Role::PaymentInitiation], 30);
    let wrong_role = adapter(&sandbox, &material(&pki, Some(&qwac), Some(&payments_seal)));
    refused(raw_consent(&wrong_role, |_| {}).await, "ROLE_INVALID");
    let other_pki = TestPki::generate().unwrap();
    let foreign_seal = issue(&other_pki, Kind::Qsealc, BOTH, 30);
    let foreign = adapter(&sandbox, &material(&pki, Some(&qwac), Some(&foreign_seal)));
    refused(raw_consent(&foreign, |_| {}).await, "CERTIFICATE_INVALID");
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_rotated_without_a_restart() {
    let pki = TestPki::generate().unwrap();
    let sandbox = bank(&pki).await;
    let dir =
        Scratch(std::env::temp_dir().join(format!("bankgate-rotation-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.0.join(name), text).unwrap();
    let env = |var: &str| -> Option<String> {
        let file = match var {
            "T_QWAC_CERT" => "qwac.pem",
            "T_QWAC_KEY" => "qwac.key.pem",
            "T_QSEAL_CERT" => "qseal.pem",
            "T_QSEAL_KEY" => "qseal.key.pem",
            "T_CA" => "ca.pem",
            _ => return None,
        };
        Some(dir.0.join(file).to_string_lossy().into_owned())
    };
    let put = |qwac: &Issued, qseal: &Issued| {
        write("qwac.pem", &qwac.chain_pem);
        write("qwac.key.pem", &qwac.key_pem);
        write("qseal.pem", &qseal.certificate_pem);
        write("qseal.key.pem", &qseal.key_pem);
        write("ca.pem", &pki.ca_pem);
    };
    // First a QWAC about to end, for payments only: account information is refused, and
    // bankgate warns that it ends within the warning period.
    let ending = issue(&pki, Kind::Qwac, &[Role::PaymentInitiation], 5);
    put(&ending, &issue(&pki, Kind::Qsealc, BOTH, 5));
    let mut adapter = Adapter::new(
        manifest(&sandbox, spec()),
        "bankgate".into(),
        Some("sandbox-secret".into()),
        1,
        &Egress::new(true),
    )
    .unwrap();
    let identity = bankgate::adapters::eidas::Eidas::new(
        "demo-bank",
        "berlin-group",
        Some(spec()),
        &Material::read(&spec(), &env).unwrap(),
    )
    .unwrap();
    assert_eq!(
        identity.warn_if_ending(Utc::now()),
        2,
        "both end within {WARN_DAYS} days"
    );
    adapter.bank.set_eidas(identity).unwrap();
    refused(raw_consent(&adapter, |_| {}).await, "ROLE_INVALID");
    let before = adapter.bank.eidas.as_ref().unwrap().certificates();

    // New files, then a reload (what SIGHUP does): the same client presents the new QWAC on
    // its next connection and signs with the new seal.
    let renewed = issue(&pki, Kind::Qwac, BOTH, 365);
    let renewed_seal = issue(&pki, Kind::Qsealc, BOTH, 365);
    put(&renewed, &renewed_seal);
    let eidas = adapter.bank.eidas.clone().unwrap();
    eidas.reload(&env).unwrap();
    let (status, _) = raw_consent(&adapter, |_| {}).await.unwrap();
    assert_eq!(status, 201, "accepted with the rotated certificate");
    let after = eidas.certificates();
    assert_eq!(after.len(), 2);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.usage, new.usage);
        assert_ne!(old.serial, new.serial, "{}", new.usage);
        assert!(new.not_after > old.not_after + Duration::days(300));
    }
    assert_eq!(eidas.warn_if_ending(Utc::now()), 0);

    // A broken file keeps the certificates in use.
    write("qwac.pem", "not a certificate");
    assert!(eidas.reload(&env).is_err());
    assert_eq!(eidas.certificates(), after);
    let (status, _) = raw_consent(&adapter, |_| {}).await.unwrap();
    assert_eq!(status, 201);
}

/// The bundled manifests, with `[eidas]` added to the Berlin Group bank's: the gateway starts
/// that sandbox with a test PKI and enforcement, and gives itself the certificates.
fn adapters_with_eidas() -> Scratch {
    let dir =
        Scratch(std::env::temp_dir().join(format!("bankgate-adapters-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).unwrap();
    for entry in std::fs::read_dir(manifest_dir().join("adapters")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(prefix) = match name.as_str() {
            "demo-bank.toml" => Some("DEMO_BANK"),
            "stet-bank.toml" => Some("STET_BANK"),
            _ => None,
        } {
            text.push_str(&format!(
                "\n[eidas]\nqwac_cert_file_env = \"{prefix}_QWAC_CERT_FILE\"\n\
                 qwac_key_file_env = \"{prefix}_QWAC_KEY_FILE\"\n\
                 qseal_cert_file_env = \"{prefix}_QSEAL_CERT_FILE\"\n\
                 qseal_key_file_env = \"{prefix}_QSEAL_KEY_FILE\"\n"
            ));
            if prefix == "STET_BANK" {
                text.push_str("qseal_key_id = \"https://bankgate.example/eidas/qseal.pem\"\n");
            }
        }
        std::fs::write(dir.0.join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_reads_data_from_a_bank_that_asks_for_eidas() {
    let adapters = adapters_with_eidas();
    let gateway = TestGateway::start_with(
        StoreKind::Memory,
        Options {
            adapters_dir: Some(adapters.0.clone()),
            metrics: true,
            ..Options::default()
        },
    )
    .await;
    let bank = gateway.app.broker().banks.get("demo-bank").unwrap();
    assert!(
        bank.bank.manifest.api_base_url.starts_with("https://"),
        "TLS"
    );
    let certificates = bank.bank.eidas.as_ref().unwrap().certificates();
    assert_eq!(
        certificates.iter().map(|c| c.usage).collect::<Vec<_>>(),
        ["qwac", "qseal"]
    );
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-eidas",
    );
    // The person's browser trusts the bank's website (here: the test CA).
    let mut platform = gateway
        .another_platform("eidas-reader", &["balance-alerts"])
        .await;
    let mut browser = bankgate::crypto::http_client_builder();
    for root in bank.bank.eidas.as_ref().unwrap().bank_roots() {
        browser = browser.add_root_certificate(reqwest::Certificate::from_der(root).unwrap());
    }
    platform.http = browser.build().unwrap();
    let (token, _) = platform.connect(&detail).await.expect("consent flow");
    let (status, accounts) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    assert!(!accounts["accounts"].as_array().unwrap().is_empty());
    // The STET bank too (its own signature profile), with a browser trusting both CAs.
    let stet = gateway.app.broker().banks.get("stet-bank").unwrap();
    assert!(stet.bank.manifest.api_base_url.starts_with("https://"));
    let mut browser = bankgate::crypto::http_client_builder();
    for adapter in [&bank, &stet] {
        for root in adapter.bank.eidas.as_ref().unwrap().bank_roots() {
            browser = browser.add_root_certificate(reqwest::Certificate::from_der(root).unwrap());
        }
    }
    platform.http = browser.build().unwrap();
    let detail = account_information(
        "stet-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-eidas",
    );
    let (token, _) = platform
        .connect(&detail)
        .await
        .expect("consent flow at STET");
    let (status, accounts) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    assert!(!accounts["accounts"].as_array().unwrap().is_empty());

    // The operator sees the certificates and when they end.
    let shown: Value = reqwest::get(format!("{}/v1/banks/demo-bank", gateway.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let certificates = shown["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 2, "{shown}");
    for certificate in certificates {
        let days_left = certificate["days_left"].as_i64().unwrap();
        assert!((360..=365).contains(&days_left), "{certificate}");
        assert_eq!(certificate["ends_soon"], false);
        assert!(
            certificate["subject"]
                .as_str()
                .unwrap()
                .contains("bankgate")
        );
        assert!(certificate["not_after"].is_string());
    }
    let other: Value = reqwest::get(format!("{}/v1/banks/obie-bank", gateway.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(other.get("certificates").is_none(), "a bank without eIDAS");

    // And so does the metric operators alert on.
    let metrics_url = gateway.metrics_url.clone().expect("metrics listener");
    let scraped = reqwest::get(metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for certificate in ["qwac", "qseal"] {
        let series = format!(
            "bankgate_bank_certificate_expiry_timestamp_seconds{{bank=\"demo-bank\",certificate=\"{certificate}\"}}"
        );
        let line = scraped
            .lines()
            .find(|line| line.starts_with(&series))
            .unwrap_or_else(|| panic!("no {series} in {scraped}"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        let days = (value - Utc::now().timestamp() as f64) / 86_400.0;
        assert!((360.0..=366.0).contains(&days), "{line}");
    }
}

/// STET's HTTP signature: `(request-target)` signed, `Digest` with a body, the QSealC found by
/// the key id it was registered under.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stet_signatures_cover_the_request_target_and_name_a_registered_seal() {
    const KEY_ID: &str = "https://bankgate.example/eidas/qseal.pem";
    let pki = TestPki::generate().unwrap();
    let qwac = issue(&pki, Kind::Qwac, BOTH, 30);
    let qseal = issue(&pki, Kind::Qsealc, BOTH, 30);
    let sandbox = sandbox_bank(
        &pki,
        "stet",
        vec![(KEY_ID.into(), qseal.certificate_pem.clone())],
    )
    .await;
    let manifest = bundled("stet-bank", &sandbox);
    let mut adapter = Adapter::new(
        manifest,
        "bankgate".into(),
        Some("sandbox-secret".into()),
        1,
        &Egress::new(true),
    )
    .unwrap();
    let signer = |key_id: &str| {
        let mut material = material(&pki, Some(&qwac), Some(&qseal));
        material.qseal_key_id = Some(key_id.to_owned());
        bankgate::adapters::eidas::Eidas::new("stet-bank", "stet", None, &material).unwrap()
    };
    adapter.bank.set_eidas(signer(KEY_ID)).unwrap();

    // A payment request (a body) without a token: past the signature, the bank's own answer.
    let send = |tamper: Tamper| {
        let bank = &adapter.bank;
        let mut request = bank
            .http
            .post(bank.url("/v1/payment-requests"))
            .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
            .json(&json!({"paymentInformationId": "p-1"}))
            .build()
            .unwrap();
        bank.eidas.as_ref().unwrap().sign(&mut request).unwrap();
        let value = request.headers()["signature"].to_str().unwrap().to_owned();
        assert!(
            value.contains("headers=\"(request-target) digest x-request-id\""),
            "{value}"
        );
        assert!(request.headers().get("tpp-signature-certificate").is_none());
        tamper(&mut request);
        async move {
            let response = bank.http.execute(request).await.unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            (
                status,
                answer["tppMessages"][0]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    let (status, code) = send(Box::new(|_| {})).await;
    assert!(code.is_empty(), "the signature passes: {status} {code}");
    assert_ne!(status, 201, "no token: the bank itself refuses");

    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "a tampered body",
            body(r#"{"paymentInformationId":"p-2"}"#),
            "SIGNATURE_INVALID",
        ),
        (
            "another path",
            Box::new(|request| {
                request
                    .url_mut()
                    .set_path("/v1/payment-requests/p-1/confirmation")
            }),
            "SIGNATURE_INVALID",
        ),
        (
            "the request target left out",
            in_signature("(request-target) ", ""),
            "SIGNATURE_INVALID",
        ),
        ("no digest", without("digest"), "SIGNATURE_MISSING"),
        ("no signature", without("signature"), "SIGNATURE_MISSING"),
        (
            "an unregistered key id",
            in_signature(KEY_ID, "https://evil.example/q.pem"),
            "CERTIFICATE_INVALID",
        ),
    ];
    for (what, tamper, expected) in cases {
        let (status, code) = send(tamper).await;
        assert_eq!((status, code.as_str()), (401, expected), "{what}");
    }
}
