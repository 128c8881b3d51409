//! eIDAS at a sandbox bank, as a PSD2 interface enforces it (RTS on SCA Art. 34): the bank
//! serves TLS with a certificate of the test CA ([`crate::pki`]), asks the third party for its
//! QWAC (mutual TLS; the customer's browser at the authorization page and anyone reading the
//! metadata need none), checks that the certificate comes from the CA it trusts, has not
//! expired and carries the PSD2 role the request needs (account information: `PSP_AI`;
//! payments: `PSP_PI`), and — Berlin Group — verifies the request's signature
//! (NextGenPSD2 Implementation Guidelines, "Signing messages at application layer", after
//! draft-cavage-http-signatures-10): a QSealC of the same CA in `TPP-Signature-Certificate`,
//! `Digest` equal to the SHA-256 of the body, and `Signature` (`rsa-sha256`) over at least
//! `digest` and `x-request-id` (and `psu-id`, `psu-corporate-id`, `tpp-redirect-uri` when the
//! request has them), its `keyId` naming that certificate (`SN=<serial>,CA=<issuer>`).
//!
//! Refusals are the Berlin Group's (401 with `tppMessages`: `CERTIFICATE_MISSING`,
//! `CERTIFICATE_INVALID`, `CERTIFICATE_EXPIRED`, `ROLE_INVALID`, `SIGNATURE_MISSING`,
//! `SIGNATURE_INVALID`) whatever the bank's standard; an expired or foreign QWAC is refused in
//! the handshake itself.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pki::{self, Role};

/// What a sandbox bank asks of its third party under eIDAS.
#[derive(Debug, Clone)]
pub struct SandboxEidas {
    /// The CA (PEM) whose QWACs and QSealCs the bank accepts.
    pub ca_pem: String,
    /// The bank's TLS server certificate chain (PEM) and key (PKCS#8 PEM), for `127.0.0.1`.
    pub server_chain_pem: String,
    pub server_key_pem: String,
    /// Mutual TLS: a QWAC of the CA with the role the request needs.
    pub require_client_certificate: bool,
    /// Request signatures (Berlin Group, STET): a QSealC of the CA with the role the request
    /// needs.
    pub require_signatures: bool,
    /// STET: the QSealCs (PEM) third parties registered with the bank, by the key id their
    /// signatures name (a STET bank retrieves the certificate by its `keyId`).
    pub registered_seals: Vec<(String, String)>,
}

/// Who connected: the address, and the certificate chain's first certificate (DER) when the
/// client presented one.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub certificate: Option<Arc<Vec<u8>>>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Peer {
        stream.remote_addr().clone()
    }
}

/// A TLS listener for `axum::serve`: handshakes run off the accept path (one slow or failing
/// client holds up no other), and a failed one never becomes a connection.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, Peer)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` with `config`.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (send, accepted) = mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                // Until the server is gone (the listener closes with this task).
                let accepted = tokio::select! {
                    accepted = tcp.accept() => accepted,
                    () = send.closed() => return,
                };
                let Ok((stream, addr)) = accepted else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let send = send.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream).into_fallible(),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls)) => {
                            let certificate = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .map(|first| Arc::new(first.to_vec()));
                            let _ = send.send((tls, Peer { addr, certificate })).await;
                        }
                        Ok(Err((error, mut io))) => {
                            tracing::debug!(%error, "sandbox TLS handshake refused");
                            // The alert is written; read what the client sent meanwhile (its
                            // request, under TLS 1.3) before closing, so that it reads the
                            // alert rather than a connection reset.
                            let drain = async {
                                let mut buffer = [0u8; 4096];
                                while let Ok(1..) =
                                    tokio::io::AsyncReadExt::read(&mut io, &mut buffer).await
                                {
                                }
                            };
                            let _ =
                                tokio::time::timeout(std::time::Duration::from_millis(500), drain)
                                    .await;
                        }
                        Err(_) => tracing::debug!("sandbox TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { accepted, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local,
            certificate: None,
        })
    }
}

/// The bank's TLS configuration: its server certificate, and client certificates of the CA
/// (asked for; a client without one gets through the handshake and is refused per request,
/// when the bank requires one).
pub fn server_config(eidas: &SandboxEidas) -> Result<rustls::ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(eidas.server_chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|error| format!("server certificate: {error}"))?;
    let key = PrivateKeyDer::from_pem_slice(eidas.server_key_pem.as_bytes())
        .map_err(|error| format!("server key: {error}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(eidas.ca_pem.as_bytes()) {
        let ca = ca.map_err(|error| format!("CA: {error}"))?;
        roots.add(ca).map_err(|error| format!("CA: {error}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|error| format!("client verifier: {error}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|error| format!("server certificate: {error}"))?;
    // HTTP/1.1 only: a refusal closes its connection (`Connection: close`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// How the bank's standard signs requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `Digest` always, `keyId` `SN=…,CA=…`, the certificate in `TPP-Signature-Certificate`.
    BerlinGroup,
    /// `(request-target)` signed, `Digest` with a body, the certificate found by `keyId`.
    Stet,
}

/// What the enforcement layer knows.
pub struct Enforcement {
    pub eidas: SandboxEidas,
    /// How signatures are checked, when the standard has them.
    style: Option<Style>,
    ca_der: Vec<u8>,
    /// The bank's API paths start with this (its authorization server's do not).
    api_prefix: String,
}

impl Enforcement {
    pub fn new(
        eidas: SandboxEidas,
        profile: &str,
        api_prefix: &str,
    ) -> Result<Enforcement, String> {
        let ca_der = pki::pem_certificates(&eidas.ca_pem)
            .into_iter()
            .next()
            .ok_or("no CA certificate")?;
        let style = match profile {
            "berlin-group" => Some(Style::BerlinGroup),
            "stet" => Some(Style::Stet),
            _ => None,
        };
        if eidas.require_signatures && style.is_none() {
            return Err(format!("{profile}: this sandbox checks no signatures"));
        }
        Ok(Enforcement {
            eidas,
            style,
            ca_der,
            api_prefix: api_prefix.to_owned(),
        })
    }
}

/// A Berlin Group refusal: 401 with one `tppMessages` entry. The connection is closed with
/// it: the client comes back on a new one (with a new certificate, if it changed its own).
pub struct Refusal {
    code: &'static str,
    text: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body =
            json!({"tppMessages": [{"category": "ERROR", "code": self.code, "text": self.text}]});
        (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::CONNECTION, "close")],
            axum::Json(body),
        )
            .into_response()
    }
}

fn refuse(code: &'static str, text: &str) -> Refusal {
    Refusal {
        code,
        text: text.to_owned(),
    }
}

/// The PSD2 role a request needs, from its path: payments need `PSP_PI`, account data and
/// consents `PSP_AI`; the authorization server and metadata, any role.
pub fn role_for(path: &str) -> Option<Role> {
    let path = path.to_ascii_lowercase();
    if path.contains("payment") {
        Some(Role::PaymentInitiation)
    } else if ["account", "consent", "balance", "transaction"]
        .iter()
        .any(|word| path.contains(word))
    {
        Some(Role::AccountInformation)
    } else {
        None
    }
}

/// The certificate `der`, checked: issued by the CA, valid now, with `needed` among its PSD2
/// roles. The refusal otherwise.
fn check_certificate(
    enforcement: &Enforcement,
    der: &[u8],
    needed: Option<Role>,
    what: &str,
) -> Result<(), Refusal> {
    let (_, certificate) = X509Certificate::from_der(der).map_err(|_| {
        refuse(
            "CERTIFICATE_INVALID",
            &format!("the {what} is not a certificate"),
        )
    })?;
    let (_, ca) = X509Certificate::from_der(&enforcement.ca_der)
        .map_err(|_| refuse("CERTIFICATE_INVALID", "the bank's CA is unreadable"))?;
    if certificate.issuer() != ca.subject()
        || certificate.verify_signature(Some(ca.public_key())).is_err()
    {
        return Err(refuse(
            "CERTIFICATE_INVALID",
            &format!("the {what} was not issued by a trust service this bank accepts"),
        ));
    }
    if !certificate.validity().is_valid() {
        return Err(refuse(
            "CERTIFICATE_EXPIRED",
            &format!("the {what} is not valid now"),
        ));
    }
    let statement = pki::psd2_statement(der).map_err(|_| {
        refuse(
            "CERTIFICATE_INVALID",
            &format!("the {what} has no PSD2 roles"),
        )
    })?;
    if let Some(role) = needed
        && !statement.roles.contains(&role)
    {
        return Err(refuse(
            "ROLE_INVALID",
            &format!("the {what} does not carry the role {role} this request needs"),
        ));
    }
    Ok(())
}

/// The layer: mutual TLS and signatures, as the bank's [`SandboxEidas`] asks.
pub async fn enforce(
    State(enforcement): State<Arc<Enforcement>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let needed = role_for(&path);
    // The customer's browser comes to the authorization page and the metadata without a QWAC;
    // everything the third party calls needs one.
    let for_people = path == "/oauth/authorize" || path.starts_with("/.well-known/");
    if enforcement.eidas.require_client_certificate && !for_people {
        let Some(certificate) = &peer.certificate else {
            return refuse(
                "CERTIFICATE_MISSING",
                "a QWAC is required in the TLS handshake",
            )
            .into_response();
        };
        if let Err(refusal) = check_certificate(&enforcement, certificate, needed, "QWAC") {
            return refusal.into_response();
        }
    }
    if !(enforcement.eidas.require_signatures && path.starts_with(&enforcement.api_prefix)) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 4 << 20).await else {
        return refuse("FORMAT_ERROR", "the body could not be read").into_response();
    };
    let verified = match enforcement.style {
        Some(Style::Stet) => verify_stet(
            &enforcement,
            &parts.method,
            &parts.uri,
            &parts.headers,
            &body,
            needed,
        ),
        _ => verify_signature(&enforcement, &parts.headers, &body, needed),
    };
    if let Err(refusal) = verified {
        return refusal.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// The signature parameters of a `Signature` header.
struct SignatureParams {
    key_id: String,
    algorithm: String,
    headers: Vec<String>,
    signature: Vec<u8>,
}

/// The parameters of a `Signature` header whose algorithm is `rsa-sha256`.
fn signature_params(value: &str) -> Result<SignatureParams, Refusal> {
    let params = parse_signature(value)
        .ok_or_else(|| refuse("SIGNATURE_INVALID", "the Signature header is malformed"))?;
    if !params.algorithm.eq_ignore_ascii_case("rsa-sha256") {
        return Err(refuse(
            "SIGNATURE_INVALID",
            "the algorithm must be rsa-sha256",
        ));
    }
    Ok(params)
}

fn parse_signature(value: &str) -> Option<SignatureParams> {
    let mut key_id = None;
    let mut algorithm = None;
    let mut headers = None;
    let mut signature = None;
    // name="value" pairs, separated by commas (values hold no `"`).
    let mut rest = value.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start().strip_prefix('"')?;
        let (value, after) = after.split_once('"')?;
        match name.trim() {
            "keyId" => key_id = Some(value.to_owned()),
            "algorithm" => algorithm = Some(value.to_owned()),
            "headers" => {
                headers = Some(
                    value
                        .split_ascii_whitespace()
                        .map(str::to_ascii_lowercase)
                        .collect(),
                );
            }
            "signature" => signature = STANDARD.decode(value).ok(),
            _ => {}
        }
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    Some(SignatureParams {
        key_id: key_id?,
        algorithm: algorithm?,
        headers: headers?,
        signature: signature?,
    })
}

fn verify_signature(
    enforcement: &Enforcement,
    headers: &HeaderMap,
    body: &[u8],
    needed: Option<Role>,
) -> Result<(), Refusal> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(certificate), Some(signature), Some(digest)) = (
        text("tpp-signature-certificate"),
        text("signature"),
        text("digest"),
    ) else {
        return Err(refuse(
            "SIGNATURE_MISSING",
            "this bank requires Digest, Signature and TPP-Signature-Certificate",
        ));
    };
    let der = STANDARD.decode(certificate.trim()).map_err(|_| {
        refuse(
            "CERTIFICATE_INVALID",
            "TPP-Signature-Certificate is not base64",
        )
    })?;
    check_certificate(enforcement, &der, needed, "QSealC")?;
    let expected = format!("SHA-256={}", STANDARD.encode(sha256(body)));
    if digest.trim() != expected {
        return Err(refuse(
            "SIGNATURE_INVALID",
            "the Digest does not match the body",
        ));
    }
    let params = signature_params(signature)?;
    let (_, parsed) = X509Certificate::from_der(&der)
        .map_err(|_| refuse("CERTIFICATE_INVALID", "the QSealC is not a certificate"))?;
    let key_id = format!(
        "SN={},CA={}",
        parsed.raw_serial_as_string().replace(':', ""),
        parsed.issuer()
    );
    if !params.key_id.eq_ignore_ascii_case(&key_id) {
        return Err(refuse(
            "SIGNATURE_INVALID",
            "the keyId does not name the certificate sent",
        ));
    }
    let mut must_sign = vec!["digest", "x-request-id"];
    for name in ["psu-id", "psu-corporate-id", "tpp-redirect-uri"] {
        if headers.contains_key(name) {
            must_sign.push(name);
        }
    }
    covers(&params, &must_sign)?;
    verify_lines(&parsed, &params, |name| text(name).map(str::to_owned))
}

/// Refuses a signature that does not cover every one of `must_sign`.
fn covers(params: &SignatureParams, must_sign: &[&str]) -> Result<(), Refusal> {
    match must_sign
        .iter()
        .find(|name| !params.headers.iter().any(|signed| signed == *name))
    {
        Some(missing) => Err(refuse(
            "SIGNATURE_INVALID",
            &format!("the signature does not cover {missing}"),
        )),
        None => Ok(()),
    }
}

/// Verifies `params`' signature with `certificate`'s key over the lines `name: value` of the
/// headers it names (`value_of` answers each, `(request-target)` included).
fn verify_lines(
    certificate: &X509Certificate<'_>,
    params: &SignatureParams,
    value_of: impl Fn(&str) -> Option<String>,
) -> Result<(), Refusal> {
    let mut lines = Vec::with_capacity(params.headers.len());
    for name in &params.headers {
        let value = value_of(name).ok_or_else(|| {
            refuse(
                "SIGNATURE_INVALID",
                &format!("the signed header {name} is missing"),
            )
        })?;
        lines.push(format!("{name}: {}", value.trim()));
    }
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        certificate.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(lines.join("\n").as_bytes(), &params.signature)
        .map_err(|_| refuse("SIGNATURE_INVALID", "the signature does not verify"))
}

/// STET's HTTP signature: the certificate registered under `keyId`, checked as a QSealC of
/// the CA with the role; `(request-target)` and `x-request-id` signed, and `digest` — equal to
/// the body's — whenever there is a body.
fn verify_stet(
    enforcement: &Enforcement,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    needed: Option<Role>,
) -> Result<(), Refusal> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let Some(signature) = text("signature") else {
        return Err(refuse(
            "SIGNATURE_MISSING",
            "this bank requires a Signature",
        ));
    };
    let params = signature_params(signature)?;
    let pem = enforcement
        .eidas
        .registered_seals
        .iter()
        .find(|(key_id, _)| *key_id == params.key_id)
        .map(|(_, pem)| pem)
        .ok_or_else(|| {
            refuse(
                "CERTIFICATE_INVALID",
                "no certificate is registered under this keyId",
            )
        })?;
    let der = pki::pem_certificates(pem)
        .into_iter()
        .next()
        .ok_or_else(|| {
            refuse(
                "CERTIFICATE_INVALID",
                "the registered certificate is unreadable",
            )
        })?;
    check_certificate(enforcement, &der, needed, "QSealC")?;
    let mut must_sign = vec!["(request-target)", "x-request-id"];
    if !body.is_empty() {
        let Some(digest) = text("digest") else {
            return Err(refuse(
                "SIGNATURE_MISSING",
                "a request with a body needs a Digest",
            ));
        };
        let expected = format!("SHA-256={}", STANDARD.encode(sha256(body)));
        if digest.trim() != expected {
            return Err(refuse(
                "SIGNATURE_INVALID",
                "the Digest does not match the body",
            ));
        }
        must_sign.push("digest");
    }
    covers(&params, &must_sign)?;
    let (_, parsed) = X509Certificate::from_der(&der)
        .map_err(|_| refuse("CERTIFICATE_INVALID", "the QSealC is not a certificate"))?;
    let target = format!(
        "{} {}",
        method.as_str().to_ascii_lowercase(),
        uri.path_and_query().map_or("/", |path| path.as_str())
    );
    verify_lines(&parsed, &params, |name| {
        if name == "(request-target)" {
            Some(target.clone())
        } else {
            text(name).map(str::to_owned)
        }
    })
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}
