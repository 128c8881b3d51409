//! eIDAS: bankgate's certificates at banks. `bankgate keys pki` writes a test PKI whose
//! certificates carry the ETSI PSD2 QC statement.

use std::path::{Path, PathBuf};
use std::process::Command;

use bankgate_sandbox::pki::{Role, pem_certificates, psd2_statement};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A fresh directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("bankgate-eidas-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keys_pki(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bankgate"))
        .env_remove("BANKGATE_CONFIG")
        .env("RUST_LOG", "warn")
        .args(["keys", "pki"])
        .args(args)
        .output()
        .expect("the bankgate binary runs")
}

fn chain(path: &Path) -> Vec<Vec<u8>> {
    pem_certificates(&std::fs::read_to_string(path).unwrap())
}

/// `bankgate keys pki` writes a CA, a QWAC and a QSealC with the roles asked for, valid for the
/// days asked for, chaining to the CA; `--ca` issues new ones from the same CA (rotation).
#[test]
fn keys_pki_writes_certificates_with_the_psd2_roles() {
    let scratch = Scratch::new();
    let out = scratch.0.join("pki");
    let output = keys_pki(&[
        "--out",
        out.to_str().unwrap(),
        "--roles",
        "PSP_AI,PSP_PI",
        "--days",
        "90",
        "--organization-id",
        "PSDDE-BAFIN-123456",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("NOT qualified"), "{stdout}");

    let ca_der = chain(&out.join("ca.pem")).remove(0);
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert!(ca.is_ca());
    for (file, eseal) in [("qwac.pem", false), ("qseal.pem", true)] {
        let certificates = chain(&out.join(file));
        assert_eq!(
            certificates.len(),
            2,
            "{file}: the certificate, then the CA"
        );
        assert_eq!(certificates[1], ca_der);
        let (_, leaf) = X509Certificate::from_der(&certificates[0]).unwrap();
        leaf.verify_signature(Some(ca.public_key()))
            .expect("issued by the CA");
        let statement = psd2_statement(&certificates[0]).unwrap();
        assert_eq!(
            statement.roles,
            vec![Role::AccountInformation, Role::PaymentInitiation],
            "{file}"
        );
        assert_eq!(statement.nca_id, "DE-BAFIN");
        let days =
            (leaf.validity().not_after.timestamp() - chrono::Utc::now().timestamp()) / 86_400;
        assert!((89..=90).contains(&days), "{file}: valid {days} more days");
        assert!(leaf.validity().is_valid());
        assert!(
            leaf.subject().to_string().contains("PSDDE-BAFIN-123456"),
            "{}",
            leaf.subject()
        );
        assert_eq!(
            eseal,
            leaf.extended_key_usage().unwrap().is_none(),
            "{file}: a seal has no TLS key usage"
        );
    }
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("qwac.key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o077, 0, "private keys are the owner's only");

    // Rotation: new certificates from the same CA, here with one role only.
    let rotated = scratch.0.join("rotated");
    let output = keys_pki(&[
        "--out",
        rotated.to_str().unwrap(),
        "--ca",
        out.to_str().unwrap(),
        "--roles",
        "PSP_AI",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(chain(&rotated.join("ca.pem"))[0], ca_der);
    let qwac = chain(&rotated.join("qwac.pem")).remove(0);
    assert_ne!(qwac, chain(&out.join("qwac.pem"))[0]);
    let (_, leaf) = X509Certificate::from_der(&qwac).unwrap();
    leaf.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(
        psd2_statement(&qwac).unwrap().roles,
        vec![Role::AccountInformation]
    );

    let output = keys_pki(&["--out", out.to_str().unwrap(), "--roles", "PSP_XX"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("PSP_XX"));
}
