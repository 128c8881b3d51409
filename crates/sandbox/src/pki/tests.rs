//! The test PKI read back with x509-parser: roles, authority, kinds, validity, issuer and
//! signatures.

use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

/// The OIDs the certificate's qcStatements name, in order.
fn statement_ids(certificate: &X509Certificate<'_>) -> Vec<Vec<u64>> {
    let extension = certificate
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.3")
        .expect("qcStatements");
    assert!(!extension.critical);
    yasna::parse_der(extension.value, |reader| {
        reader.collect_sequence_of(|reader| {
            reader.read_sequence(|reader| {
                let id = reader.next().read_oid()?;
                reader.read_optional(|reader| reader.read_der())?;
                Ok(id.components().clone())
            })
        })
    })
    .unwrap()
}

fn qc_type(certificate: &X509Certificate<'_>) -> Vec<u64> {
    let extension = certificate
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.3")
        .unwrap();
    let types = yasna::parse_der(extension.value, |reader| {
        reader.collect_sequence_of(|reader| {
            reader.read_sequence(|reader| {
                let id = reader.next().read_oid()?;
                if id.components().as_slice() == OID_QC_TYPE {
                    let kinds = reader.next().collect_sequence_of(|r| r.read_oid())?;
                    return Ok(kinds.into_iter().map(|k| k.components().clone()).collect());
                }
                reader.read_optional(|reader| reader.read_der())?;
                Ok(Vec::new())
            })
        })
    })
    .unwrap();
    types.into_iter().flatten().next().unwrap()
}

#[test]
fn a_qwac_carries_the_psd2_statement_and_chains_to_the_ca() {
    let pki = TestPki::generate().unwrap();
    let request = PspCertificate::new(
        Kind::Qwac,
        "bankgate",
        &[Role::AccountInformation, Role::PaymentInitiation],
        365,
    );
    let qwac = pki.issue_psp(&request).unwrap();

    let statement = psd2_statement(&qwac.der).unwrap();
    assert_eq!(
        statement.roles,
        vec![Role::AccountInformation, Role::PaymentInitiation]
    );
    assert_eq!(statement.nca_id, "DE-BAFIN");
    assert_eq!(
        statement.nca_name,
        "Federal Financial Supervisory Authority"
    );

    let certificate = parse(&qwac.der);
    let ca = parse(pki.ca_der());
    assert!(ca.is_ca());
    assert_eq!(certificate.issuer(), ca.subject());
    certificate
        .verify_signature(Some(ca.public_key()))
        .expect("signed by the test CA");
    assert!(certificate.validity().is_valid());
    assert_eq!(
        certificate.validity().not_after.timestamp(),
        request.not_after.timestamp()
    );
    assert_eq!(
        statement_ids(&certificate),
        vec![
            OID_QC_COMPLIANCE.to_vec(),
            OID_QC_TYPE.to_vec(),
            OID_PSD2_QC_STATEMENT.to_vec()
        ]
    );
    assert_eq!(qc_type(&certificate), OID_QCT_WEB);
    let eku = certificate.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && eku.server_auth);
    let organization_id = certificate
        .subject()
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == "2.5.4.97")
        .unwrap();
    assert_eq!(organization_id.as_str().unwrap(), "PSDDE-BAFIN-999999");
    // The chain a TLS client presents: the certificate, then the CA.
    assert_eq!(
        pem_certificates(&qwac.chain_pem),
        vec![qwac.der.clone(), pki.ca_der().to_vec()]
    );
}

#[test]
fn a_qsealc_is_an_rsa_seal_with_its_own_roles() {
    let pki = TestPki::generate().unwrap();
    let seal = pki
        .issue_psp(&PspCertificate::new(
            Kind::Qsealc,
            "bankgate",
            &[Role::AccountInformation],
            30,
        ))
        .unwrap();
    let certificate = parse(&seal.der);
    assert_eq!(qc_type(&certificate), OID_QCT_ESEAL);
    assert_eq!(
        psd2_statement(&seal.der).unwrap().roles,
        vec![Role::AccountInformation]
    );
    let key_usage = certificate.key_usage().unwrap().unwrap().value;
    assert!(key_usage.digital_signature() && key_usage.non_repudiation());
    assert!(certificate.extended_key_usage().unwrap().is_none());
    assert!(matches!(
        certificate.public_key().parsed().unwrap(),
        x509_parser::public_key::PublicKey::RSA(_)
    ));
    assert!(seal.key_pem.contains("BEGIN PRIVATE KEY"));
}

#[test]
fn an_expired_certificate_says_so() {
    let pki = TestPki::generate().unwrap();
    let mut request = PspCertificate::new(Kind::Qwac, "bankgate", &[Role::AccountInformation], 1);
    request.not_before = Utc::now() - Duration::days(30);
    request.not_after = Utc::now() - Duration::days(1);
    let expired = pki.issue_psp(&request).unwrap();
    assert!(!parse(&expired.der).validity().is_valid());
}

#[test]
fn a_loaded_ca_issues_certificates_that_chain_to_it() {
    let first = TestPki::generate().unwrap();
    let again = TestPki::load(&first.ca_pem, &first.ca_key_pem).unwrap();
    let server = again.issue_server(&["localhost", "127.0.0.1"], 30).unwrap();
    let certificate = parse(&server.der);
    let ca = parse(first.ca_der());
    assert_eq!(certificate.issuer(), ca.subject());
    certificate.verify_signature(Some(ca.public_key())).unwrap();
    let Some(names) = certificate
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(names) => Some(names),
            _ => None,
        })
    else {
        panic!("no subjectAltName")
    };
    assert_eq!(names.general_names.len(), 2);
    assert!(matches!(
        psd2_statement(&server.der),
        Err(PkiError::NoPsd2Statement)
    ));
}

#[test]
fn a_role_name_that_disagrees_with_its_oid_is_refused() {
    let statement = Psd2Statement {
        roles: vec![Role::AccountInformation],
        nca_name: "x".into(),
        nca_id: "DE-X".into(),
    };
    let good = qc_statements(Kind::Qwac, &statement);
    assert_eq!(parse_qc_statements(&good).unwrap().unwrap(), statement);
    // Rename PSP_AI to PSP_PI while keeping the OID of PSP_AI.
    let mut forged = good.clone();
    let at = forged.windows(6).position(|w| w == b"PSP_AI").unwrap();
    forged[at..at + 6].copy_from_slice(b"PSP_PI");
    assert!(matches!(
        parse_qc_statements(&forged),
        Err(PkiError::Statement(_))
    ));
    assert!(matches!(
        Role::parse("PSP_XX"),
        Err(PkiError::UnknownRole(_))
    ));
    assert_eq!(Role::parse("PSP_PI").unwrap(), Role::PaymentInitiation);
}
