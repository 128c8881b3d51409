//! bankgate's eIDAS identity at a bank (PSD2 RTS on SCA Art. 34): the QWAC it presents in
//! mutual TLS and the QSealC it signs requests with, from the files the bank manifest's
//! `[eidas]` variables name.
//!
//! - **Mutual TLS.** The bank's HTTP client runs on a rustls configuration whose client
//!   certificate comes from [`ClientIdentity`]: a slot read at every handshake, which
//!   [`Eidas::reload`] replaces, so a rotated certificate is presented from the next connection
//!   on without a restart. The bank's server certificate is checked against the public web
//!   roots and, when `ca_file_env` names one, the bank's own CA.
//! - **Berlin Group request signatures** (NextGenPSD2 Implementation Guidelines, "Signing
//!   messages at application layer", after draft-cavage-http-signatures-10): `Digest:
//!   SHA-256=<base64 of the body's SHA-256>`, `TPP-Signature-Certificate: <base64 DER of the
//!   QSealC>`, and `Signature: keyId="SN=<serial, hex>,CA=<issuer DN>",algorithm="rsa-sha256",
//!   headers="digest x-request-id …",signature="<base64 RSASSA-PKCS1-v1_5 SHA-256>"` over the
//!   lines `name: value` of the headers it lists — `digest` and `x-request-id` always, `psu-id`,
//!   `psu-corporate-id`, `tpp-redirect-uri` and `date` when the request has them — on every
//!   call to the bank's API (`api_base_url`), not to its authorization server.
//! - **Expiry** ([`Eidas::certificates`]): what each certificate is for and when it ends, for
//!   the operator's bank view, the metrics and the warning logged 30 days ahead
//!   ([`WARN_DAYS`]).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::AdapterError;

/// How many days before a certificate ends bankgate starts warning.
pub const WARN_DAYS: i64 = 30;

/// A manifest's `[eidas]`: the names of the environment variables holding the paths of
/// bankgate's certificates and keys at this bank (never the material itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EidasSpec {
    /// The QWAC for mutual TLS: its chain (PEM, the certificate first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qwac_cert_file_env: Option<String>,
    /// The QWAC's private key (PKCS#8 PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qwac_key_file_env: Option<String>,
    /// The QSealC that signs requests (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qseal_cert_file_env: Option<String>,
    /// The QSealC's private key (RSA, PKCS#8 PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qseal_key_file_env: Option<String>,
    /// STET: the signature's `keyId`, where the bank retrieves the QSealC (the URL bankgate's
    /// operator published it at, or the identifier the bank registered it under).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qseal_key_id: Option<String>,
    /// A CA (PEM) trusted for the bank's TLS server certificate besides the public web roots
    /// (a bank's test environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file_env: Option<String>,
}

impl EidasSpec {
    /// Checks the pairs: a certificate with its key, and signatures only where the bank's
    /// standard has them.
    pub fn validate(&self, profile: &str) -> Result<(), String> {
        let pair = |cert: &Option<String>, key: &Option<String>, what: &str| {
            if cert.is_some() != key.is_some() {
                Err(format!(
                    "eidas.{what}_cert_file_env and eidas.{what}_key_file_env go together"
                ))
            } else {
                Ok(())
            }
        };
        pair(&self.qwac_cert_file_env, &self.qwac_key_file_env, "qwac")?;
        pair(&self.qseal_cert_file_env, &self.qseal_key_file_env, "qseal")?;
        if self.qseal_cert_file_env.is_some() {
            match Style::of(profile) {
                None => {
                    return Err(format!(
                        "eidas.qseal_*: bankgate signs requests for Berlin Group and STET banks, \
                         not {profile:?}"
                    ));
                }
                Some(Style::Stet) if self.qseal_key_id.is_none() => {
                    return Err(
                        "eidas.qseal_key_id: a STET bank retrieves the QSealC by its key id".into(),
                    );
                }
                Some(_) => {}
            }
        }
        if self.qwac_cert_file_env.is_none() && self.qseal_cert_file_env.is_none() {
            return Err("eidas names neither a QWAC nor a QSealC".into());
        }
        Ok(())
    }
}

fn refused(message: String) -> AdapterError {
    AdapterError::Refused(message)
}

/// The certificates of a PEM text, in order.
fn pem_certificates(text: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .filter_map(Result::ok)
        .filter(|pem| pem.label == "CERTIFICATE")
        .map(|pem| pem.contents)
        .collect()
}

/// The first PKCS#8 private key of a PEM text.
fn pem_private_key(text: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(text.as_bytes())
        .filter_map(Result::ok)
        .find(|pem| pem.label == "PRIVATE KEY")
        .map(|pem| pem.contents)
}

/// How a bank's standard signs requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// NextGenPSD2: `Digest` always, `keyId` = `SN=…,CA=…`, the certificate in
    /// `TPP-Signature-Certificate`.
    BerlinGroup,
    /// STET PSD2 API v1.6 (Part 3, HTTP signature after draft-cavage-http-signatures-12):
    /// `(request-target)` signed, `Digest` with a body, `keyId` where the bank retrieves the
    /// certificate.
    Stet,
}

impl Style {
    /// The style of a bank profile, if its standard signs requests.
    pub fn of(profile: &str) -> Option<Style> {
        match profile {
            "berlin-group" => Some(Style::BerlinGroup),
            "stet" => Some(Style::Stet),
            _ => None,
        }
    }
}

/// The material of an identity: PEM texts, as read from files or made in memory.
#[derive(Clone, Default)]
pub struct Material {
    pub qwac: Option<(String, String)>,
    pub qseal: Option<(String, String)>,
    pub ca: Option<String>,
    /// STET: the QSealC's key id (from the manifest, or chosen with a made certificate).
    pub qseal_key_id: Option<String>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("qwac", &self.qwac.is_some())
            .field("qseal", &self.qseal.is_some())
            .field("ca", &self.ca.is_some())
            .finish()
    }
}

impl Material {
    /// Reads the files `spec`'s variables name (through `env`).
    pub fn read(
        spec: &EidasSpec,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Material, AdapterError> {
        let file = |var: &Option<String>| -> Result<Option<String>, AdapterError> {
            let Some(var) = var else { return Ok(None) };
            let path = env(var).ok_or_else(|| refused(format!("set {var}")))?;
            std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|error| refused(format!("{var}: cannot read {path}: {error}")))
        };
        let both = |cert, key| -> Result<Option<(String, String)>, AdapterError> {
            Ok(match (file(cert)?, file(key)?) {
                (Some(cert), Some(key)) => Some((cert, key)),
                _ => None,
            })
        };
        Ok(Material {
            qwac: both(&spec.qwac_cert_file_env, &spec.qwac_key_file_env)?,
            qseal: both(&spec.qseal_cert_file_env, &spec.qseal_key_file_env)?,
            ca: file(&spec.ca_file_env)?,
            qseal_key_id: spec.qseal_key_id.clone(),
        })
    }
}

/// The QSealC and its key: what signs.
struct Seal {
    certificate: Vec<u8>,
    key: RsaKeyPair,
    /// `SN=<serial, hex>,CA=<issuer DN>`.
    key_id: String,
}

/// What one certificate is for, and its validity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// `qwac` (mutual TLS) or `qseal` (request signatures).
    pub usage: &'static str,
    pub subject: String,
    pub issuer: String,
    /// The serial number, hex.
    pub serial: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl CertificateInfo {
    fn of(usage: &'static str, der: &[u8]) -> Result<CertificateInfo, AdapterError> {
        let (_, certificate) = X509Certificate::from_der(der)
            .map_err(|error| refused(format!("{usage}: not a certificate: {error}")))?;
        let time = |time: x509_parser::time::ASN1Time| {
            DateTime::from_timestamp(time.timestamp(), 0).unwrap_or_default()
        };
        Ok(CertificateInfo {
            usage,
            subject: certificate.subject().to_string(),
            issuer: certificate.issuer().to_string(),
            serial: certificate.raw_serial_as_string().replace(':', ""),
            not_before: time(certificate.validity().not_before),
            not_after: time(certificate.validity().not_after),
        })
    }

    /// Whole days left at `now` (negative once it ended).
    pub fn days_left(&self, now: DateTime<Utc>) -> i64 {
        (self.not_after - now).num_days()
    }
}

/// The client certificate rustls presents: whatever the slot holds at the handshake.
#[derive(Default)]
pub struct ClientIdentity {
    key: ArcSwapOption<CertifiedKey>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

impl rustls::client::ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.key.load_full()
    }

    fn has_certs(&self) -> bool {
        self.key.load().is_some()
    }
}

/// bankgate's eIDAS identity at one bank.
pub struct Eidas {
    bank: String,
    /// How the bank's standard signs (none: the bank takes no signatures).
    style: Option<Style>,
    /// Where the material comes from: the manifest's variables, or (`None`) made in memory
    /// for a bundled sandbox, which a reload leaves as it is.
    spec: Option<EidasSpec>,
    tls: Arc<ClientIdentity>,
    seal: ArcSwapOption<Seal>,
    certificates: arc_swap::ArcSwap<Vec<CertificateInfo>>,
    roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Eidas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eidas")
            .field("bank", &self.bank)
            .finish_non_exhaustive()
    }
}

impl Eidas {
    /// The identity `material` makes for `bank`: read from the files the manifest's `spec`
    /// names, or (`spec` `None`) made in memory.
    pub fn new(
        bank: &str,
        profile: &str,
        spec: Option<EidasSpec>,
        material: &Material,
    ) -> Result<Eidas, AdapterError> {
        let roots = material
            .ca
            .as_deref()
            .map(pem_certificates)
            .unwrap_or_default();
        let eidas = Eidas {
            bank: bank.to_owned(),
            style: Style::of(profile),
            spec,
            tls: Arc::default(),
            seal: ArcSwapOption::empty(),
            certificates: arc_swap::ArcSwap::from_pointee(Vec::new()),
            roots,
        };
        eidas.install(material)?;
        Ok(eidas)
    }

    /// Replaces the certificates with `material`'s (all or nothing).
    fn install(&self, material: &Material) -> Result<(), AdapterError> {
        let mut infos = Vec::new();
        let tls = match &material.qwac {
            Some((chain, key)) => {
                let chain = pem_certificates(chain);
                let first = chain
                    .first()
                    .ok_or_else(|| refused("qwac: no certificate in the file".into()))?;
                infos.push(CertificateInfo::of("qwac", first)?);
                let key = pem_private_key(key)
                    .ok_or_else(|| refused("qwac: no PKCS#8 private key in the file".into()))?;
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
                let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
                    .map_err(|error| refused(format!("qwac: the key is not usable: {error}")))?;
                let chain = chain.into_iter().map(CertificateDer::from).collect();
                Some(Arc::new(CertifiedKey::new(chain, signing)))
            }
            None => None,
        };
        let seal = match &material.qseal {
            Some((cert, key)) => {
                let certificate = pem_certificates(cert)
                    .into_iter()
                    .next()
                    .ok_or_else(|| refused("qseal: no certificate in the file".into()))?;
                let info = CertificateInfo::of("qseal", &certificate)?;
                let key = pem_private_key(key)
                    .ok_or_else(|| refused("qseal: no PKCS#8 private key in the file".into()))?;
                let key = RsaKeyPair::from_pkcs8(&key)
                    .map_err(|_| refused("qseal: the key is not an RSA key".into()))?;
                let key_id = match self.style {
                    Some(Style::Stet) => material.qseal_key_id.clone().ok_or_else(|| {
                        refused("qseal: a STET bank needs eidas.qseal_key_id".into())
                    })?,
                    _ => format!("SN={},CA={}", info.serial, info.issuer),
                };
                infos.push(info);
                Some(Arc::new(Seal {
                    certificate,
                    key,
                    key_id,
                }))
            }
            None => None,
        };
        self.tls.key.store(tls);
        self.seal.store(seal);
        self.certificates.store(Arc::new(infos));
        Ok(())
    }

    /// Reads the files again (rotation without restart): the next connection presents the new
    /// QWAC, the next request is signed with the new QSealC. On failure the old ones stay.
    pub fn reload(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), AdapterError> {
        let Some(spec) = &self.spec else {
            return Ok(());
        };
        let material = Material::read(spec, env)?;
        self.install(&material)?;
        self.warn_if_ending(Utc::now());
        Ok(())
    }

    /// Refuses to call the bank with a certificate that ended (or has not begun): the bank
    /// would refuse the handshake or the signature, and under TLS 1.3 its refusal may reach
    /// bankgate as a bare connection failure; this says which certificate and when.
    pub fn check_validity(&self, now: DateTime<Utc>) -> Result<(), AdapterError> {
        for certificate in self.certificates.load().iter() {
            let name = match certificate.usage {
                "qwac" => "client certificate (QWAC)",
                _ => "seal (QSealC)",
            };
            if certificate.not_after < now {
                return Err(AdapterError::Tls(format!(
                    "bankgate's {name} at this bank expired on {}",
                    certificate.not_after.format("%Y-%m-%d")
                )));
            }
            if certificate.not_before > now {
                return Err(AdapterError::Tls(format!(
                    "bankgate's {name} at this bank is valid only from {}",
                    certificate.not_before.format("%Y-%m-%d")
                )));
            }
        }
        Ok(())
    }

    /// The certificates in use.
    pub fn certificates(&self) -> Vec<CertificateInfo> {
        self.certificates.load().as_ref().clone()
    }

    /// Logs a warning for each certificate ending within [`WARN_DAYS`] (or ended) at `now`;
    /// returns how many.
    pub fn warn_if_ending(&self, now: DateTime<Utc>) -> usize {
        let mut ending = 0;
        for certificate in self.certificates.load().iter() {
            let days_left = certificate.days_left(now);
            if days_left < WARN_DAYS {
                ending += 1;
                tracing::warn!(
                    bank = %self.bank,
                    certificate = certificate.usage,
                    not_after = %certificate.not_after,
                    days_left,
                    "eIDAS certificate ends soon: rotate it (files, then SIGHUP)"
                );
            }
        }
        ending
    }

    /// The rustls configuration of the bank's client: the public web roots and the bank's CA,
    /// the QWAC from the slot.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, AdapterError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in &self.roots {
            roots
                .add(CertificateDer::from(root.clone()))
                .map_err(|error| refused(format!("eidas.ca_file_env: {error}")))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| refused(format!("TLS configuration: {error}")))?
            .with_root_certificates(roots);
        let wants_qwac = self
            .spec
            .as_ref()
            .is_some_and(|spec| spec.qwac_cert_file_env.is_some());
        let mut config = if wants_qwac || self.tls.key.load().is_some() {
            builder.with_client_cert_resolver(self.tls.clone())
        } else {
            builder.with_no_client_auth()
        };
        // As reqwest's own configuration: HTTP/2 and HTTP/1.1 by ALPN.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // No session resumption: a resumed session carries the certificate of the handshake it
        // came from, and after a rotation the bank must see the new one. (Pooled connections
        // keep the cost of a full handshake to new connections.)
        config.resumption = rustls::client::Resumption::disabled();
        Ok(config)
    }

    /// The CAs trusted for the bank's server certificate besides the public roots (DER).
    pub fn bank_roots(&self) -> &[Vec<u8>] {
        &self.roots
    }

    /// Signs `request` as the bank's standard asks, when there is a QSealC.
    pub fn sign(&self, request: &mut reqwest::Request) -> Result<(), AdapterError> {
        let (Some(seal), Some(style)) = (self.seal.load_full(), self.style) else {
            return Ok(());
        };
        let body = match request.body() {
            None => &[][..],
            Some(body) => body
                .as_bytes()
                .ok_or_else(|| refused("a streamed body cannot be signed".into()))?,
        };
        let digest = format!("SHA-256={}", STANDARD.encode(crate::crypto::sha256(body)));
        let with_digest = style == Style::BerlinGroup || !body.is_empty();
        let target = request_target(request.method(), request.url());
        let headers = request.headers_mut();
        if !headers.contains_key(X_REQUEST_ID) {
            return Err(refused("a signed request needs an X-Request-ID".into()));
        }
        let mut signed = Vec::new();
        if style == Style::Stet {
            signed.push(REQUEST_TARGET);
        }
        if with_digest {
            headers.insert(DIGEST, header_value(&digest)?);
            signed.push(DIGEST);
        }
        let optional: &[&'static str] = match style {
            Style::BerlinGroup => &[
                X_REQUEST_ID,
                PSU_ID,
                PSU_CORPORATE_ID,
                TPP_REDIRECT_URI,
                DATE,
            ],
            Style::Stet => &[X_REQUEST_ID, PSU_IP_ADDRESS, DATE],
        };
        signed.extend(optional.iter().filter(|name| headers.contains_key(**name)));
        let signing_string = signing_string(headers, &signed, &target)?;
        let mut signature = vec![0; seal.key.public_modulus_len()];
        seal.key
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_string.as_bytes(),
                &mut signature,
            )
            .map_err(|_| refused("the request could not be signed".into()))?;
        let value = format!(
            "keyId=\"{}\",algorithm=\"rsa-sha256\",headers=\"{}\",signature=\"{}\"",
            seal.key_id,
            signed.join(" "),
            STANDARD.encode(&signature)
        );
        headers.insert(SIGNATURE, header_value(&value)?);
        if style == Style::BerlinGroup {
            headers.insert(
                TPP_SIGNATURE_CERTIFICATE,
                header_value(&STANDARD.encode(&seal.certificate))?,
            );
        }
        Ok(())
    }
}

/// draft-cavage's `(request-target)`: the method in lower case, a space, the path and query.
pub fn request_target(method: &reqwest::Method, url: &url::Url) -> String {
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    format!("{} {target}", method.as_str().to_ascii_lowercase())
}

/// The Berlin Group's signature headers (lower case, as in a signature's `headers`).
pub const DIGEST: &str = "digest";
pub const SIGNATURE: &str = "signature";
pub const TPP_SIGNATURE_CERTIFICATE: &str = "tpp-signature-certificate";
const X_REQUEST_ID: &str = "x-request-id";
const PSU_ID: &str = "psu-id";
const PSU_CORPORATE_ID: &str = "psu-corporate-id";
const TPP_REDIRECT_URI: &str = "tpp-redirect-uri";
const DATE: &str = "date";
const PSU_IP_ADDRESS: &str = "psu-ip-address";
/// The pseudo-header of draft-cavage (in the signing string only, never on the wire).
pub const REQUEST_TARGET: &str = "(request-target)";

fn header_value(value: &str) -> Result<reqwest::header::HeaderValue, AdapterError> {
    reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| refused("a signature header is not a valid header value".into()))
}

/// The signing string of draft-cavage-http-signatures §2.3 over `names` (lower case): one line
/// `name: value` each, joined by `\n`; the pseudo-header `(request-target)` is `target`.
pub fn signing_string(
    headers: &reqwest::header::HeaderMap,
    names: &[&str],
    target: &str,
) -> Result<String, AdapterError> {
    let mut lines = Vec::with_capacity(names.len());
    for name in names {
        let value = if *name == REQUEST_TARGET {
            target
        } else {
            headers
                .get(*name)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| refused(format!("header {name} is missing or not text")))?
        };
        lines.push(format!("{name}: {}", value.trim()));
    }
    Ok(lines.join("\n"))
}

/// What a failed connection to a bank says of TLS, when it was the handshake: the rustls
/// error found in its causes, in words naming the certificate problem.
pub fn handshake_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(describe(tls));
        }
        cause = current.source();
    }
    None
}

fn describe(error: &rustls::Error) -> String {
    use rustls::AlertDescription as Alert;
    match error {
        rustls::Error::AlertReceived(Alert::CertificateExpired) => {
            "the bank refused bankgate's client certificate (QWAC): expired".into()
        }
        rustls::Error::AlertReceived(Alert::CertificateRequired) => {
            "the bank requires a client certificate (QWAC) and bankgate presented none".into()
        }
        // A certificate of another CA under the same name fails its signature check, which
        // the bank reports as a decrypt error.
        rustls::Error::AlertReceived(
            Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::DecryptError
            | Alert::UnsupportedCertificate,
        ) => "the bank refused bankgate's client certificate (QWAC)".into(),
        rustls::Error::AlertReceived(alert) => {
            format!("the bank ended the TLS handshake: {alert:?}")
        }
        rustls::Error::InvalidCertificate(reason) => {
            format!("the bank's server certificate is not valid: {reason:?}")
        }
        other => format!("TLS handshake with the bank failed: {other}"),
    }
}
