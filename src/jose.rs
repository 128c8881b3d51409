//! JOSE and client authentication shared by bankgate's two OAuth roles — authorization server
//! to platforms (`oauth`) and client of every bank (`adapters::bank_oauth`): public JWKs
//! (validation, RFC 7638 thumbprints, pinned algorithms), [`ClientKey`], the private key a
//! platform (or bankgate, towards a bank) signs client assertions and DPoP proofs with,
//! [`keys`] (the gateway's own signing keys), the wire names of client assertions and DPoP, the
//! client authentication methods ([`AuthMethod`]) and [`basic_header`].
//!
//! Only three algorithms exist here, each pinned to one key type (FAPI 2.0 §5.4):
//! ES256 ↔ EC P-256, EdDSA ↔ OKP Ed25519, PS256 ↔ RSA (≥ 2048 bits). Keys come from
//! registration, never from a token's `jku`, `x5u` or `jwk` header (DPoP proofs excepted).

pub mod keys;

use crate::model::WireName;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// JWK members that only private or symmetric keys have.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The JOSE `typ` of DPoP proofs.
pub const DPOP_TYP: &str = "dpop+jwt";

/// The request header carrying a DPoP proof.
pub const DPOP_HEADER: &str = "dpop";

/// The response header carrying a fresh DPoP nonce.
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// How a client authenticates at an authorization server's token and PAR endpoints: a
/// platform at bankgate's, bankgate at a bank's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with a secret.
    #[default]
    ClientSecretBasic,
    /// A JWT signed with one of the client's registered keys (RFC 7523, FAPI 2.0).
    PrivateKeyJwt,
}

impl WireName for AuthMethod {}

/// Encodes credentials for `Authorization: Basic`, id and secret form-urlencoded first
/// (RFC 6749 §2.3.1).
pub fn basic_header(client_id: &str, secret: &str) -> String {
    let escape =
        |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", escape(client_id), escape(secret)))
    )
}

/// The most keys a client may register.
pub const MAX_CLIENT_KEYS: usize = 10;

/// A validated public key: its id, its one algorithm, and the key to verify with.
#[derive(Clone)]
pub struct PublicKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub decoding: DecodingKey,
    /// RFC 7638 thumbprint (base64url SHA-256).
    pub thumbprint: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// Why a JWK or JWK Set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("a JWK must be a JSON object")]
    NotAnObject,
    #[error("private or symmetric key material ({0}) is not accepted")]
    Private(&'static str),
    #[error("unsupported key type: use EC P-256, OKP Ed25519 or RSA of at least 2048 bits")]
    Unsupported,
    #[error("key member {0} is missing or malformed")]
    Malformed(&'static str),
    #[error("alg {0:?} does not match the key type (ES256, EdDSA or PS256 only)")]
    AlgMismatch(String),
    #[error("use must be sig")]
    Use,
    #[error("a JWK Set needs a keys array of 1 to {MAX_CLIENT_KEYS} keys")]
    KeyCount,
    #[error("with several keys every key needs a unique kid")]
    Kid,
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, JwkError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .ok_or(JwkError::Malformed(name))
}

fn decoded_len(value: &str, name: &'static str) -> Result<usize, JwkError> {
    URL_SAFE_NO_PAD
        .decode(value)
        .map(|bytes| bytes.len())
        .map_err(|_| JwkError::Malformed(name))
}

/// Validates one public JWK and pins its algorithm.
pub fn public_key(jwk: &Value) -> Result<PublicKey, JwkError> {
    let object = jwk.as_object().ok_or(JwkError::NotAnObject)?;
    if let Some(private) = PRIVATE_MEMBERS
        .into_iter()
        .find(|name| object.contains_key(*name))
    {
        return Err(JwkError::Private(private));
    }
    if object
        .get("use")
        .is_some_and(|key_use| key_use.as_str() != Some("sig"))
    {
        return Err(JwkError::Use);
    }
    let kty = member(object, "kty")?;
    let (alg, decoding, thumbprint_input) = match kty {
        "EC" => {
            if member(object, "crv")? != "P-256" {
                return Err(JwkError::Unsupported);
            }
            let (x, y) = (member(object, "x")?, member(object, "y")?);
            if decoded_len(x, "x")? != 32 || decoded_len(y, "y")? != 32 {
                return Err(JwkError::Malformed("x/y"));
            }
            let decoding =
                DecodingKey::from_ec_components(x, y).map_err(|_| JwkError::Malformed("x/y"))?;
            (
                Algorithm::ES256,
                decoding,
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            )
        }
        "OKP" => {
            if member(object, "crv")? != "Ed25519" {
                return Err(JwkError::Unsupported);
            }
            let x = member(object, "x")?;
            if decoded_len(x, "x")? != 32 {
                return Err(JwkError::Malformed("x"));
            }
            let decoding =
                DecodingKey::from_ed_components(x).map_err(|_| JwkError::Malformed("x"))?;
            (
                Algorithm::EdDSA,
                decoding,
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            )
        }
        "RSA" => {
            let (n, e) = (member(object, "n")?, member(object, "e")?);
            if decoded_len(n, "n")? < 256 {
                return Err(JwkError::Unsupported);
            }
            decoded_len(e, "e")?;
            let decoding =
                DecodingKey::from_rsa_components(n, e).map_err(|_| JwkError::Malformed("n/e"))?;
            (
                Algorithm::PS256,
                decoding,
                format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            )
        }
        _ => return Err(JwkError::Unsupported),
    };
    if let Some(declared) = object.get("alg") {
        let expected = alg_name(alg);
        if declared.as_str() != Some(expected) {
            return Err(JwkError::AlgMismatch(declared.to_string()));
        }
    }
    let kid = match object.get("kid") {
        None => None,
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= 256 => Some(kid.clone()),
        Some(_) => return Err(JwkError::Malformed("kid")),
    };
    Ok(PublicKey {
        kid,
        alg,
        decoding,
        thumbprint: URL_SAFE_NO_PAD.encode(crate::crypto::sha256(thumbprint_input.as_bytes())),
    })
}

/// The JOSE name of one of the three algorithms.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::PS256 => "PS256",
        _ => "unsupported",
    }
}

/// A client's registered keys (a validated JWK Set).
#[derive(Debug, Clone)]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
}

impl KeySet {
    /// Validates a JWK Set: 1 to [`MAX_CLIENT_KEYS`] public signing keys; with more than one,
    /// each has a unique `kid`.
    pub fn parse(jwks: &Value) -> Result<KeySet, JwkError> {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .filter(|keys| (1..=MAX_CLIENT_KEYS).contains(&keys.len()))
            .ok_or(JwkError::KeyCount)?;
        let keys = keys.iter().map(public_key).collect::<Result<Vec<_>, _>>()?;
        if keys.len() > 1 {
            let mut kids: Vec<&str> = keys.iter().filter_map(|key| key.kid.as_deref()).collect();
            kids.sort_unstable();
            kids.dedup();
            if kids.len() != keys.len() {
                return Err(JwkError::Kid);
            }
        }
        Ok(KeySet { keys })
    }

    /// The key a JWT header names: by `kid`, or the only key when there is no `kid`.
    pub fn find(&self, kid: Option<&str>) -> Option<&PublicKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|key| key.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

/// Decodes a compact JWS's protected header as raw JSON (so that members the `jsonwebtoken`
/// header type drops, such as a JWK's `d`, are still seen).
pub fn raw_header(token: &str) -> Option<Map<String, Value>> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(header) => Some(header),
        _ => None,
    }
}

/// The smallest RSA modulus a key may have (2048 bits, FAPI 2.0 §5.4).
const MIN_RSA_BYTES: usize = 256;

/// A private signing key held by a client of an authorization server: a platform towards
/// bankgate (demo, tests) or bankgate towards a bank. Its public half is [`ClientKey::jwk`].
pub struct ClientKey {
    pub alg: Algorithm,
    pub kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Errors generating a key or signing.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("key generation failed")]
    Generate,
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl ClientKey {
    /// A fresh EC P-256 key (ES256).
    pub fn generate_es256() -> Result<ClientKey, SignError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| SignError::Generate)?;
        ClientKey::from_es256_pkcs8(document.as_ref())
    }

    /// An EC P-256 key from PKCS#8 DER.
    pub fn from_es256_pkcs8(der: &[u8]) -> Result<ClientKey, SignError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| SignError::Generate)?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(SignError::Generate);
        }
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Ok(ClientKey::new(
            Algorithm::ES256,
            EncodingKey::from_ec_der(der),
            jwk,
        ))
    }

    /// A private key from PKCS#8 DER, signing with the one algorithm its type pins (FAPI 2.0
    /// allows these three): EC P-256 → ES256, Ed25519 → EdDSA, RSA of 2048 bits or more →
    /// PS256.
    pub fn from_pkcs8(der: &[u8]) -> Result<ClientKey, SignError> {
        if let Ok(key) = ClientKey::from_es256_pkcs8(der) {
            return Ok(key);
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            // jsonwebtoken signs from a PKCS#8 v2 document (public key included).
            let document = pair.to_pkcs8().map_err(|_| SignError::Generate)?;
            let jwk = json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            return Ok(ClientKey::new(
                Algorithm::EdDSA,
                EncodingKey::from_ed_der(document.as_ref()),
                jwk,
            ));
        }
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(der).map_err(|_| SignError::Generate)?;
        let public = aws_lc_rs::signature::KeyPair::public_key(&pair);
        if public.modulus_len() < MIN_RSA_BYTES {
            return Err(SignError::Generate);
        }
        let jwk = json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        });
        // jsonwebtoken signs RSA from PKCS#1, which its PEM reader takes out of PKCS#8.
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        Ok(ClientKey::new(Algorithm::PS256, encoding, jwk))
    }

    /// A fresh private key for `alg` (ES256, EdDSA or PS256 with 2048 bits) as PKCS#8 PEM:
    /// what `bankgate keys bank` prints for a bank's `client_key_file_env` or
    /// `dpop_key_file_env`.
    pub fn generate_pkcs8_pem(alg: Algorithm) -> Result<String, SignError> {
        let random = SystemRandom::new();
        let der: Vec<u8> = match alg {
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
                    .map_err(|_| SignError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&random)
                .map_err(|_| SignError::Generate)?
                .as_ref()
                .to_vec(),
            Algorithm::PS256 => {
                use aws_lc_rs::encoding::AsDer;
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| SignError::Generate)?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    pair.as_der().map_err(|_| SignError::Generate)?;
                der.as_ref().to_vec()
            }
            _ => return Err(SignError::Generate),
        };
        Ok(pem::encode_config(
            &pem::Pem::new("PRIVATE KEY", der),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        ))
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn generate_ed25519() -> Result<ClientKey, SignError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| SignError::Generate)?;
        let pair =
            Ed25519KeyPair::from_pkcs8(document.as_ref()).map_err(|_| SignError::Generate)?;
        let jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        });
        Ok(ClientKey::new(
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(document.as_ref()),
            jwk,
        ))
    }

    fn new(alg: Algorithm, encoding: EncodingKey, mut jwk: Value) -> ClientKey {
        let thumbprint = public_key(&jwk)
            .map(|key| key.thumbprint)
            .unwrap_or_default();
        if let Some(object) = jwk.as_object_mut() {
            object.insert("kid".into(), Value::String(thumbprint.clone()));
            object.insert("alg".into(), Value::String(alg_name(alg).into()));
            object.insert("use".into(), Value::String("sig".into()));
        }
        ClientKey {
            alg,
            kid: thumbprint,
            encoding,
            jwk,
        }
    }

    /// The public key as a JWK (with `kid`, `alg`, `use`).
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The public key as a JWK Set, as a client registers it.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// The RFC 7638 thumbprint of the public key (also its `kid`).
    pub fn thumbprint(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` with `typ` in the header and either the `kid` or the public JWK.
    pub fn sign(
        &self,
        typ: Option<&str>,
        embed_jwk: bool,
        claims: &impl Serialize,
    ) -> Result<String, SignError> {
        let mut header = Header::new(self.alg);
        header.typ = typ.map(str::to_owned);
        if embed_jwk {
            let mut public = self.jwk.clone();
            if let Some(object) = public.as_object_mut() {
                object.remove("kid");
                object.remove("use");
                object.remove("alg");
            }
            header.jwk = Some(
                serde_json::from_value(public).map_err(|error| SignError::Sign(error.into()))?,
            );
        } else {
            header.kid = Some(self.kid.clone());
        }
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// Signs arbitrary header and claims JSON as a compact JWS with this key's algorithm: for
    /// tests that need malformed tokens (the header is used as given, `alg` included).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> Result<String, SignError> {
        let encode = |value: &Value| {
            serde_json::to_vec(value)
                .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
                .map_err(|error| SignError::Sign(error.into()))
        };
        let message = format!("{}.{}", encode(header)?, encode(claims)?);
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg)?;
        Ok(format!("{message}.{signature}"))
    }

    /// Signs a JWS signing input as it is (for a detached or unencoded payload, RFC 7797):
    /// the base64url signature.
    pub fn sign_input(&self, input: &[u8]) -> Result<String, SignError> {
        Ok(jsonwebtoken::crypto::sign(input, &self.encoding, self.alg)?)
    }

    /// A `private_key_jwt` client assertion (RFC 7523) for `client_id` towards `audience`
    /// (FAPI 2.0: the authorization server's issuer), valid for 60 s.
    pub fn client_assertion(&self, client_id: &str, audience: &str) -> Result<String, SignError> {
        let now = chrono::Utc::now().timestamp();
        let jti = crate::crypto::random_token(16).map_err(|_| SignError::Generate)?;
        self.sign(
            None,
            false,
            &json!({
                "iss": client_id,
                "sub": client_id,
                "aud": audience,
                "iat": now,
                "exp": now + 60,
                "jti": jti,
            }),
        )
    }

    /// A DPoP proof (RFC 9449 §4) for `method` on `url` (query and fragment dropped), bound to
    /// `access_token` (`ath`) and carrying the server's `nonce` when given.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, SignError> {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let mut claims = json!({
            "jti": crate::crypto::random_token(16).map_err(|_| SignError::Generate)?,
            "htm": method,
            "htu": htu,
            "iat": chrono::Utc::now().timestamp(),
        });
        if let Some(token) = access_token {
            claims["ath"] = Value::String(access_token_hash(token));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::String(nonce.to_owned());
        }
        self.sign(Some(DPOP_TYP), true, &claims)
    }
}

/// `ath`: base64url(SHA-256(access token)).
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(crate::crypto::sha256(access_token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_validate_with_their_thumbprint() {
        for key in [
            ClientKey::generate_es256().unwrap(),
            ClientKey::generate_ed25519().unwrap(),
        ] {
            let set = KeySet::parse(&key.jwks()).unwrap();
            let public = set.find(Some(&key.kid)).unwrap();
            assert_eq!(public.thumbprint, key.kid);
            assert_eq!(public.alg, key.alg);
        }
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "PS256",
        });
        assert_eq!(
            public_key(&jwk).unwrap().thumbprint,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[track_caller]
    fn check_refused(jwk: Value, expected: JwkError) {
        assert_eq!(public_key(&jwk).unwrap_err(), expected, "{jwk}");
    }

    #[test]
    fn private_symmetric_and_mismatched_keys_are_refused() {
        let key = ClientKey::generate_es256().unwrap();
        let mut private = key.jwk().clone();
        private["d"] = json!("AAAA");
        check_refused(private, JwkError::Private("d"));
        check_refused(
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            JwkError::Private("k"),
        );
        let mut wrong_alg = key.jwk().clone();
        wrong_alg["alg"] = json!("HS256");
        check_refused(wrong_alg, JwkError::AlgMismatch("\"HS256\"".into()));
        let mut encryption = key.jwk().clone();
        encryption["use"] = json!("enc");
        check_refused(encryption, JwkError::Use);
        check_refused(
            json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
            JwkError::Unsupported,
        );
        check_refused(
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
            JwkError::Unsupported,
        );
    }

    #[test]
    fn key_sets_need_unique_kids() {
        let (a, b) = (
            ClientKey::generate_es256().unwrap(),
            ClientKey::generate_ed25519().unwrap(),
        );
        let set = KeySet::parse(&json!({"keys": [a.jwk(), b.jwk()]})).unwrap();
        assert_eq!(set.find(Some(&b.kid)).unwrap().alg, Algorithm::EdDSA);
        assert!(set.find(None).is_none(), "no kid, several keys");
        let mut no_kid = a.jwk().clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        assert_eq!(
            KeySet::parse(&json!({"keys": [no_kid, b.jwk()]})).unwrap_err(),
            JwkError::Kid
        );
        assert_eq!(
            KeySet::parse(&json!({"keys": []})).unwrap_err(),
            JwkError::KeyCount
        );
    }
}
