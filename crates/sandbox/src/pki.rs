//! The test PKI of the sandbox banks: a test certification authority standing in for a
//! qualified trust service provider. It issues what a PSD2 third party holds under eIDAS —
//! a QWAC (website authentication, presented in mutual TLS) and a QSealC (electronic seal,
//! signing requests) — carrying the ETSI PSD2 QC statement (ETSI TS 119 495: the PSP roles and
//! the national competent authority), and the banks' own TLS server certificates. It also reads
//! a PSD2 QC statement back, as a bank does to check a caller's roles.
//!
//! Nothing here is qualified: the CA says so in its name. `bankgate keys pki` writes one to
//! disk; a sandbox with eIDAS enforcement trusts only the CA it is given.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// `id-pe-qcStatements` (RFC 3739): the extension holding the QC statements.
pub const OID_QC_STATEMENTS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 3];
/// `id-etsi-qcs-QcCompliance` (ETSI EN 319 412-5): an EU qualified certificate.
pub const OID_QC_COMPLIANCE: &[u64] = &[0, 4, 0, 1862, 1, 1];
/// `id-etsi-qcs-QcType` (ETSI EN 319 412-5), with one of the two types below.
pub const OID_QC_TYPE: &[u64] = &[0, 4, 0, 1862, 1, 6];
/// `id-etsi-qct-eseal`: a certificate for electronic seals (QSealC).
pub const OID_QCT_ESEAL: &[u64] = &[0, 4, 0, 1862, 1, 6, 2];
/// `id-etsi-qct-web`: a certificate for website authentication (QWAC).
pub const OID_QCT_WEB: &[u64] = &[0, 4, 0, 1862, 1, 6, 3];
/// `id-etsi-psd2-qcStatement` (ETSI TS 119 495): the PSP's roles and its authority.
pub const OID_PSD2_QC_STATEMENT: &[u64] = &[0, 4, 0, 19495, 2];
/// `organizationIdentifier` (X.520): the PSP's authorisation number,
/// `PSD<country>-<NCA id>-<number>` (ETSI TS 119 495 §5.2.1).
pub const OID_ORGANIZATION_IDENTIFIER: &[u64] = &[2, 5, 4, 97];

/// Errors issuing or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("not a certificate: {0}")]
    Parse(String),
    #[error("the certificate has no PSD2 QC statement")]
    NoPsd2Statement,
    #[error("PSD2 QC statement not understood: {0}")]
    Statement(String),
    #[error("unknown PSP role {0:?} (PSP_AS, PSP_PI, PSP_AI, PSP_IC)")]
    UnknownRole(String),
}

/// A PSP role of ETSI TS 119 495 §5.1: what the national competent authority authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `PSP_AS`: account servicing (a bank).
    AccountServicing,
    /// `PSP_PI`: payment initiation.
    PaymentInitiation,
    /// `PSP_AI`: account information.
    AccountInformation,
    /// `PSP_IC`: issuing of card-based payment instruments.
    CardIssuing,
}

impl Role {
    /// Every role, in the standard's order.
    pub const ALL: [Role; 4] = [
        Role::AccountServicing,
        Role::PaymentInitiation,
        Role::AccountInformation,
        Role::CardIssuing,
    ];

    /// The role's `roleOfPspName`.
    pub fn name(self) -> &'static str {
        match self {
            Role::AccountServicing => "PSP_AS",
            Role::PaymentInitiation => "PSP_PI",
            Role::AccountInformation => "PSP_AI",
            Role::CardIssuing => "PSP_IC",
        }
    }

    /// The role's `roleOfPspOid` (`id-psd2-role-psp-*`, 0.4.0.19495.1.n).
    pub fn oid(self) -> [u64; 6] {
        let n = match self {
            Role::AccountServicing => 1,
            Role::PaymentInitiation => 2,
            Role::AccountInformation => 3,
            Role::CardIssuing => 4,
        };
        [0, 4, 0, 19495, 1, n]
    }

    /// The role named `name` (`PSP_AI`).
    pub fn parse(name: &str) -> Result<Role, PkiError> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == name)
            .ok_or_else(|| PkiError::UnknownRole(name.to_owned()))
    }

    fn from_oid(components: &[u64]) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.oid().as_slice() == components)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The PSD2 QC statement's content (`PSD2QcType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Psd2Statement {
    /// `rolesOfPSP`. A role is recognised by its OID; the name must agree with it.
    pub roles: Vec<Role>,
    /// `nCAName`: the competent authority's name, e.g. `Federal Financial Supervisory Authority`.
    pub nca_name: String,
    /// `nCAId`: the authority's identifier, `<country>-<abbreviation>`, e.g. `DE-BAFIN`.
    pub nca_id: String,
}

/// Which certificate of a PSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Qualified website authentication certificate: TLS client authentication (mutual TLS).
    Qwac,
    /// Qualified electronic seal certificate: request signatures.
    Qsealc,
}

/// What a PSP certificate says.
#[derive(Debug, Clone)]
pub struct PspCertificate {
    pub kind: Kind,
    /// The PSP's legal name (subject `O`, and `CN` unless `common_name` is given).
    pub organization: String,
    /// The authorisation number (`organizationIdentifier`), e.g. `PSDDE-BAFIN-123456`.
    pub organization_id: String,
    /// ISO 3166-1 alpha-2 of the PSP (subject `C`).
    pub country: String,
    pub statement: Psd2Statement,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl PspCertificate {
    /// A certificate of `kind` for `organization` with `roles`, valid from a day ago for
    /// `days`, under the German authority (test values).
    pub fn new(kind: Kind, organization: &str, roles: &[Role], days: i64) -> PspCertificate {
        let now = Utc::now();
        PspCertificate {
            kind,
            organization: organization.to_owned(),
            organization_id: "PSDDE-BAFIN-999999".to_owned(),
            country: "DE".to_owned(),
            statement: Psd2Statement {
                roles: roles.to_vec(),
                nca_name: "Federal Financial Supervisory Authority".to_owned(),
                nca_id: "DE-BAFIN".to_owned(),
            },
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// A certificate issued by the test CA, with its private key.
#[derive(Clone)]
pub struct Issued {
    /// The certificate alone (PEM).
    pub certificate_pem: String,
    /// The certificate followed by the CA's (PEM): what a TLS peer presents.
    pub chain_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The certificate (DER).
    pub der: Vec<u8>,
    /// Its last valid moment.
    pub not_after: DateTime<Utc>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The test certification authority.
pub struct TestPki {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate (PEM): the trust anchor a sandbox bank is given.
    pub ca_pem: String,
    /// The CA's private key (PKCS#8 PEM), to issue more certificates later
    /// ([`TestPki::load`]).
    pub ca_key_pem: String,
    ca_der: Vec<u8>,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

impl TestPki {
    /// A new CA (P-256), valid from a day ago for ten years.
    pub fn generate() -> Result<TestPki, PkiError> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CountryName, "DE");
        name.push(DnType::OrganizationName, "bankgate test trust service");
        name.push(
            DnType::CommonName,
            "bankgate test CA (not qualified, sandbox only)",
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = Utc::now();
        params.not_before = to_time(now - Duration::days(1));
        params.not_after = to_time(now + Duration::days(3650));
        params.serial_number = Some(serial());
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let certificate = params.self_signed(&key)?;
        Ok(TestPki {
            ca_pem: certificate.pem(),
            ca_key_pem: key.serialize_pem(),
            ca_der: certificate.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA of an earlier [`TestPki::generate`], from its certificate and key (PEM).
    pub fn load(ca_pem: &str, ca_key_pem: &str) -> Result<TestPki, PkiError> {
        let key = KeyPair::from_pem(ca_key_pem)?;
        let ca_der = pem_certificates(ca_pem)
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Parse("no CERTIFICATE block".into()))?;
        let issuer = Issuer::from_ca_cert_pem(ca_pem, key)?;
        Ok(TestPki {
            issuer,
            ca_pem: ca_pem.to_owned(),
            ca_key_pem: ca_key_pem.to_owned(),
            ca_der,
        })
    }

    /// The CA's certificate (DER).
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// Issues a PSP certificate: a QWAC with a P-256 key (client and server authentication),
    /// or a QSealC with an RSA 2048 key (digital signature and non-repudiation), each with the
    /// QC statements of its kind and the PSD2 statement.
    pub fn issue_psp(&self, request: &PspCertificate) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CountryName, request.country.as_str());
        name.push(DnType::OrganizationName, request.organization.as_str());
        name.push(
            DnType::CustomDnType(OID_ORGANIZATION_IDENTIFIER.to_vec()),
            request.organization_id.as_str(),
        );
        name.push(DnType::CommonName, request.organization.as_str());
        params.distinguished_name = name;
        params.not_before = to_time(request.not_before);
        params.not_after = to_time(request.not_after);
        params.serial_number = Some(serial());
        params.use_authority_key_identifier_extension = true;
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            OID_QC_STATEMENTS,
            qc_statements(request.kind, &request.statement),
        )];
        let key = match request.kind {
            Kind::Qwac => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ClientAuth,
                    ExtendedKeyUsagePurpose::ServerAuth,
                ];
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?
            }
            Kind::Qsealc => {
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::ContentCommitment,
                ];
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?
            }
        };
        self.issue(params, key, request.not_after)
    }

    /// Issues a TLS server certificate for a sandbox bank at `hosts` (names or IP addresses),
    /// valid from a day ago for `days`.
    pub fn issue_server(&self, hosts: &[&str], days: i64) -> Result<Issued, PkiError> {
        let hosts: Vec<String> = hosts.iter().map(|host| (*host).to_owned()).collect();
        let mut params = CertificateParams::new(hosts)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "bankgate sandbox bank");
        name.push(DnType::CommonName, "sandbox bank");
        params.distinguished_name = name;
        let now = Utc::now();
        let not_after = now + Duration::days(days);
        params.not_before = to_time(now - Duration::days(1));
        params.not_after = to_time(not_after);
        params.serial_number = Some(serial());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        debug_assert!(
            params
                .subject_alt_names
                .iter()
                .all(|san| matches!(san, SanType::DnsName(_) | SanType::IpAddress(_)))
        );
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        self.issue(params, key, not_after)
    }

    fn issue(
        &self,
        params: CertificateParams,
        key: KeyPair,
        not_after: DateTime<Utc>,
    ) -> Result<Issued, PkiError> {
        let certificate = params.signed_by(&key, &self.issuer)?;
        let certificate_pem = certificate.pem();
        Ok(Issued {
            chain_pem: format!("{certificate_pem}{}", self.ca_pem),
            certificate_pem,
            key_pem: key.serialize_pem(),
            der: certificate.der().to_vec(),
            not_after,
        })
    }
}

/// The DER of the `qcStatements` extension of a PSP certificate of `kind`: QcCompliance,
/// QcType (web or eseal) and the PSD2 statement
/// (`PSD2QcType ::= SEQUENCE { rolesOfPSP, nCAName, nCAId }`,
/// `RoleOfPSP ::= SEQUENCE { roleOfPspOid, roleOfPspName }`).
pub fn qc_statements(kind: Kind, statement: &Psd2Statement) -> Vec<u8> {
    use yasna::models::ObjectIdentifier;
    let oid = ObjectIdentifier::from_slice;
    yasna::construct_der(|writer| {
        writer.write_sequence_of(|writer| {
            writer
                .next()
                .write_sequence(|writer| writer.next().write_oid(&oid(OID_QC_COMPLIANCE)));
            writer.next().write_sequence(|writer| {
                writer.next().write_oid(&oid(OID_QC_TYPE));
                writer.next().write_sequence_of(|writer| {
                    writer.next().write_oid(&oid(match kind {
                        Kind::Qwac => OID_QCT_WEB,
                        Kind::Qsealc => OID_QCT_ESEAL,
                    }))
                });
            });
            writer.next().write_sequence(|writer| {
                writer.next().write_oid(&oid(OID_PSD2_QC_STATEMENT));
                writer.next().write_sequence(|writer| {
                    writer.next().write_sequence_of(|writer| {
                        for role in &statement.roles {
                            writer.next().write_sequence(|writer| {
                                writer.next().write_oid(&oid(&role.oid()));
                                writer.next().write_utf8_string(role.name());
                            });
                        }
                    });
                    writer.next().write_utf8_string(&statement.nca_name);
                    writer.next().write_utf8_string(&statement.nca_id);
                });
            });
        })
    })
}

/// The PSD2 QC statement of a certificate (DER), as a bank reads it to learn the caller's
/// roles. A role whose name disagrees with its OID, or an unknown role OID, is an error.
pub fn psd2_statement(certificate_der: &[u8]) -> Result<Psd2Statement, PkiError> {
    let (_, certificate) = X509Certificate::from_der(certificate_der)
        .map_err(|error| PkiError::Parse(error.to_string()))?;
    let wanted = oid_string(OID_QC_STATEMENTS);
    let extension = certificate
        .extensions()
        .iter()
        .find(|extension| extension.oid.to_id_string() == wanted)
        .ok_or(PkiError::NoPsd2Statement)?;
    parse_qc_statements(extension.value)?.ok_or(PkiError::NoPsd2Statement)
}

fn parse_qc_statements(der: &[u8]) -> Result<Option<Psd2Statement>, PkiError> {
    let statements = yasna::parse_der(der, |reader| {
        reader.collect_sequence_of(|reader| {
            reader.read_sequence(|reader| {
                let id = reader.next().read_oid()?;
                if id.components().as_slice() != OID_PSD2_QC_STATEMENT {
                    reader.read_optional(|reader| reader.read_der())?;
                    return Ok(None);
                }
                reader.next().read_sequence(|reader| {
                    let roles = reader.next().collect_sequence_of(|reader| {
                        reader.read_sequence(|reader| {
                            let oid = reader.next().read_oid()?;
                            let name = reader.next().read_utf8string()?;
                            Ok((oid.components().clone(), name))
                        })
                    })?;
                    let nca_name = reader.next().read_utf8string()?;
                    let nca_id = reader.next().read_utf8string()?;
                    Ok(Some((roles, nca_name, nca_id)))
                })
            })
        })
    })
    .map_err(|error| PkiError::Statement(error.to_string()))?;
    let Some((roles, nca_name, nca_id)) = statements.into_iter().flatten().next() else {
        return Ok(None);
    };
    let roles = roles
        .into_iter()
        .map(|(oid, name)| match Role::from_oid(&oid) {
            Some(role) if role.name() == name => Ok(role),
            Some(role) => Err(PkiError::Statement(format!(
                "role {name:?} carries the OID of {role}"
            ))),
            None => Err(PkiError::UnknownRole(name)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Psd2Statement {
        roles,
        nca_name,
        nca_id,
    }))
}

/// The DER of every `CERTIFICATE` block of a PEM text, in order.
pub fn pem_certificates(pem_text: &str) -> Vec<Vec<u8>> {
    let mut certificates = Vec::new();
    let mut rest = pem_text;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(end) = body.find(END) else { break };
        let base64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
        use base64::Engine;
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(base64) {
            certificates.push(der);
        }
        rest = &body[end + END.len()..];
    }
    certificates
}

fn oid_string(components: &[u64]) -> String {
    components
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A random positive serial number of 16 bytes (RFC 5280 allows up to 20).
fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // A failing system random generator leaves zeros: serials then repeat, nothing worse in a
    // test PKI.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x10;
    SerialNumber::from_slice(&bytes)
}

fn to_time(moment: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(moment.timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests;
