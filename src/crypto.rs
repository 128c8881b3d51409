//! Cryptographic helpers: random tokens, SHA-256, AEAD sealing of bank grants, client secrets.
//!
//! One crypto library for the whole binary: aws-lc-rs (also behind jsonwebtoken and rustls).
//! Argon2 hashes client secrets.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Errors of the crypto helpers.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the system random generator failed")]
    Random,
    #[error("key must be 32 bytes of base64")]
    BadKey,
    #[error("sealed data is corrupt or was sealed with another key")]
    Open,
    #[error("unknown key id {0}")]
    UnknownKey(String),
    #[error("secret hashing failed")]
    Hash,
}

/// Installs aws-lc-rs as the process's TLS crypto provider (once). Every HTTP client bankgate
/// builds calls this first, so rustls never needs a second crypto library.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is just as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A reqwest client builder for back-channel calls: TLS via aws-lc-rs, no redirects followed.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
}

/// `n` random bytes as unpadded base64url: for codes, state, request URIs, ids.
pub fn random_token(n_bytes: usize) -> Result<String, CryptoError> {
    let mut bytes = vec![0u8; n_bytes];
    rand::fill(&mut bytes).map_err(|_| CryptoError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// SHA-256 of `bytes`, hex encoded.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// The PKCE S256 challenge of a verifier (RFC 7636).
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

/// Compares two byte strings in constant time.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// A 256-bit key that seals secrets at rest (AES-256-GCM) and MACs form tokens, with an id so
/// that keys can be rotated: the id travels with every sealed value.
pub struct Sealer {
    key_id: String,
    aead: LessSafeKey,
    mac: hmac::Key,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A value sealed by a [`Sealer`]: key id, nonce and ciphertext (with tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Sealer {
    /// Builds a sealer from a base64 (standard or url-safe) 32-byte key.
    pub fn from_base64(key_id: &str, key_b64: &str) -> Result<Self, CryptoError> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_b64.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(key_b64.trim()))
            .map_err(|_| CryptoError::BadKey)?;
        Self::from_bytes(key_id, &key)
    }

    /// Builds a sealer from 32 raw bytes.
    pub fn from_bytes(key_id: &str, key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::BadKey)?;
        // The MAC key is derived, so one configured secret serves both uses.
        let mac_key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), b"bankgate mac key");
        Ok(Sealer {
            key_id: key_id.to_owned(),
            aead: LessSafeKey::new(unbound),
            mac: hmac::Key::new(hmac::HMAC_SHA256, mac_key.as_ref()),
        })
    }

    /// A fresh random key (development only: sealed data dies with the process).
    pub fn ephemeral() -> Result<Self, CryptoError> {
        let mut key = [0u8; 32];
        rand::fill(&mut key).map_err(|_| CryptoError::Random)?;
        Self::from_bytes("ephemeral", &key)
    }

    /// The id of the key that seals.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `plaintext`, binding it to `context` (e.g. the consent id) as associated data.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut buffer = plaintext.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buffer,
            )
            .map_err(|_| CryptoError::Open)?;
        Ok(Sealed {
            key_id: self.key_id.clone(),
            nonce: nonce.to_vec(),
            ciphertext: buffer,
        })
    }

    /// Opens a value sealed with the same key and context.
    pub fn open(&self, context: &[u8], sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        if sealed.key_id != self.key_id {
            return Err(CryptoError::UnknownKey(sealed.key_id.clone()));
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| CryptoError::Open)?;
        let mut buffer = sealed.ciphertext.clone();
        let plaintext = self
            .aead
            .open_in_place(nonce, Aad::from(context), &mut buffer)
            .map_err(|_| CryptoError::Open)?;
        Ok(plaintext.to_vec())
    }

    /// A MAC of `message`, base64url: binds form tokens to what they were issued for.
    pub fn mac(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.mac, message).as_ref())
    }

    /// Checks a MAC made by [`Sealer::mac`] in constant time.
    pub fn verify_mac(&self, message: &[u8], tag: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        hmac::verify(&self.mac, message, &tag).is_ok()
    }
}

/// Hashes a client secret for storage (Argon2id, PHC string).
pub fn hash_secret(secret: &str) -> Result<String, CryptoError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    rand::fill(&mut salt).map_err(|_| CryptoError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| CryptoError::Hash)?;
    argon2::Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| CryptoError::Hash)
}

/// Checks a client secret against its stored hash.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(secret.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() {
        let sealer = Sealer::ephemeral().unwrap();
        let sealed = sealer.seal(b"consent-1", b"bank token").unwrap();
        assert_ne!(sealed.ciphertext, b"bank token");
        assert_eq!(sealer.open(b"consent-1", &sealed).unwrap(), b"bank token");
        assert!(sealer.open(b"consent-2", &sealed).is_err());
        let other = Sealer::ephemeral().unwrap();
        assert!(other.open(b"consent-1", &sealed).is_err());
    }

    #[test]
    fn pkce_s256_matches_openssl() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn secrets_hash_and_verify() {
        let hash = hash_secret("s3cret").unwrap();
        assert!(hash.starts_with("$argon2"));
        assert!(verify_secret("s3cret", &hash));
        assert!(!verify_secret("other", &hash));
    }

    #[test]
    fn mac_verifies_only_its_message() {
        let sealer = Sealer::ephemeral().unwrap();
        let tag = sealer.mac(b"consent-1");
        assert!(sealer.verify_mac(b"consent-1", &tag));
        assert!(!sealer.verify_mac(b"consent-2", &tag));
    }
}
