//! The gateway's signing keys (ES256): the current [`SigningKey`] signs access tokens; the
//! previous keys ([`VerifyingKey`], public halves) still verify after a rotation. All are
//! published in the JWKS.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;

/// Errors loading or generating the signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    #[error("key generation failed")]
    Generate,
}

/// The public half of a key as a JWK (RFC 7517).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub y: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub key_use: &'static str,
    pub alg: &'static str,
}

/// An ES256 signing key with its id; parsed once at start, never per request.
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub jwk: PublicJwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The DER bytes of a PEM text.
pub fn pem_contents(text: &str) -> Option<Vec<u8>> {
    pem::parse(text).ok().map(pem::Pem::into_contents)
}

impl SigningKey {
    /// Loads a P-256 private key from a PKCS#8 PEM file.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let load_error = |message: String| KeyError::Load {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read_to_string(path).map_err(|error| load_error(error.to_string()))?;
        let der = pem_contents(&pem).ok_or_else(|| load_error("not a PEM file".into()))?;
        SigningKey::from_pkcs8(&der).map_err(|message| load_error(message.into()))
    }

    /// A fresh key (development and tests; tokens die with the process).
    pub fn generate() -> Result<SigningKey, KeyError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| KeyError::Generate)?;
        SigningKey::from_pkcs8(document.as_ref()).map_err(|_| KeyError::Generate)
    }

    /// A fresh key as PKCS#8 PEM, for `bankgate keys generate`.
    pub fn generate_pem() -> Result<String, KeyError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| KeyError::Generate)?;
        let pem = pem::Pem::new("PRIVATE KEY", document.as_ref());
        Ok(pem::encode_config(
            &pem,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        ))
    }

    fn from_pkcs8(der: &[u8]) -> Result<SigningKey, &'static str> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| "not a PKCS#8 P-256 private key")?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 0x04 {
            return Err("unexpected public key encoding");
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        // RFC 7638 thumbprint: members in lexicographic order, no whitespace.
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(crate::crypto::sha256(thumbprint_input.as_bytes()));
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| "bad public key")?;
        Ok(SigningKey {
            kid: kid.clone(),
            encoding: EncodingKey::from_ec_der(der),
            decoding,
            jwk: PublicJwk {
                kty: "EC",
                crv: "P-256",
                x,
                y,
                kid,
                key_use: "sig",
                alg: "ES256",
            },
        })
    }
}

/// A key that only verifies: a previous signing key after rotation.
pub struct VerifyingKey {
    pub kid: String,
    pub decoding: DecodingKey,
    pub jwk: PublicJwk,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// The public half of a signing key.
    pub fn from_signing_key(key: &SigningKey) -> VerifyingKey {
        VerifyingKey {
            kid: key.kid.clone(),
            decoding: key.decoding.clone(),
            jwk: key.jwk.clone(),
        }
    }

    /// Loads a previous key from a file: a PKCS#8 PEM private key (as `keys signing` writes)
    /// or a public JWK (JSON, EC P-256) as the JWKS published it.
    pub fn load(path: &Path) -> Result<VerifyingKey, KeyError> {
        let load_error = |message: String| KeyError::Load {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|error| load_error(error.to_string()))?;
        if text.trim_start().starts_with('{') {
            let jwk: serde_json::Value = serde_json::from_str(&text)
                .map_err(|error| load_error(format!("not a JWK: {error}")))?;
            let public = super::public_key(&jwk).map_err(|error| load_error(error.to_string()))?;
            if public.alg != jsonwebtoken::Algorithm::ES256 {
                return Err(load_error("signing keys are EC P-256 (ES256)".into()));
            }
            let coordinate = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
            return Ok(VerifyingKey {
                kid: public.thumbprint.clone(),
                decoding: public.decoding,
                jwk: PublicJwk {
                    kty: "EC",
                    crv: "P-256",
                    x: coordinate("x"),
                    y: coordinate("y"),
                    kid: public.thumbprint,
                    key_use: "sig",
                    alg: "ES256",
                },
            });
        }
        Ok(VerifyingKey::from_signing_key(&SigningKey::load(path)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pem_loads_with_the_same_thumbprint() {
        let pem = SigningKey::generate_pem().unwrap();
        let dir = std::env::temp_dir().join(format!("bankgate-key-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, &pem).unwrap();
        let first = SigningKey::load(&dir).unwrap();
        let second = SigningKey::load(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(first.kid, second.kid);
        assert_eq!(first.jwk.crv, "P-256");
    }

    #[test]
    fn previous_keys_load_from_pem_or_public_jwk() {
        let pem = SigningKey::generate_pem().unwrap();
        let path = std::env::temp_dir().join(format!("bankgate-prev-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, &pem).unwrap();
        let signing = SigningKey::load(&path).unwrap();
        let from_pem = VerifyingKey::load(&path).unwrap();
        std::fs::write(&path, serde_json::to_string(&signing.jwk).unwrap()).unwrap();
        let from_jwk = VerifyingKey::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_pem.kid, signing.kid);
        assert_eq!(from_jwk.kid, signing.kid);
        assert_eq!(from_jwk.jwk, signing.jwk);
    }
}
