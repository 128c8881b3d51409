//! Cryptographic helpers: random tokens, SHA-256, AEAD sealing of bank grants, digests of
//! client secrets.
//!
//! One crypto library for the whole binary: aws-lc-rs (also behind jsonwebtoken and rustls).
//!
//! Client secrets (and registration access tokens) are 256-bit random values the gateway
//! generates, so they need no password hash: the store keeps an HMAC-SHA-256 of each under a
//! key derived from the grant key ([`Sealer::digest_secret`]), compared in constant time. A
//! check costs one HMAC whatever the caller sends, a known client id or not.

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
    secrets: hmac::Key,
    account_ids: hmac::Key,
    bank_persons: hmac::Key,
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
        // The MAC keys are derived, so one configured secret serves every use.
        let derive = |label: &[u8]| {
            let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), label);
            hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
        };
        Ok(Sealer {
            key_id: key_id.to_owned(),
            aead: LessSafeKey::new(unbound),
            mac: derive(b"bankgate mac key"),
            secrets: derive(b"bankgate client secret key"),
            account_ids: derive(b"bankgate account id key"),
            bank_persons: derive(b"bankgate bank person key"),
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

    /// The account id `platform` sees for the account the bank-wide `account_key` names:
    /// `acc_` + 96 bits of HMAC-SHA-256 (hex) under a key of its own derived from this key,
    /// over the platform and the account key. Stable for one platform (across consents and
    /// re-consent), unrelated across platforms, and not computable — so not enumerable —
    /// without the key.
    pub fn account_id(&self, platform: &str, account_key: &str) -> String {
        let message = format!("{platform}\0{account_key}");
        let tag = hmac::sign(&self.account_ids, message.as_bytes());
        format!("acc_{}", hex::encode(&tag.as_ref()[..12]))
    }

    /// How bankgate keeps the person a bank's identifier `subject` names at `bank`: `bp_` + 128
    /// bits of HMAC-SHA-256 (hex) under a key of its own derived from this key, over the bank
    /// and the subject. The same person at the same bank always gets the same digest (so
    /// their consents across platforms are found together); the bank's identifier is not
    /// stored and cannot be computed back, nor tried, without the key.
    pub fn bank_person(&self, bank: &str, subject: &str) -> String {
        let message = format!("{bank}\0{subject}");
        let tag = hmac::sign(&self.bank_persons, message.as_bytes());
        format!("bp_{}", hex::encode(&tag.as_ref()[..16]))
    }

    /// Checks a MAC made by [`Sealer::mac`] in constant time.
    pub fn verify_mac(&self, message: &[u8], tag: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        hmac::verify(&self.mac, message, &tag).is_ok()
    }
}

/// The prefix of a stored secret digest: `hmac-sha256:<key id>:<base64url digest>`.
const SECRET_DIGEST_PREFIX: &str = "hmac-sha256:";

/// What a stored digest says of a presented secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretCheck {
    /// The secret is the one the digest was made of.
    Matches,
    /// Another secret (or no client: see [`Sealer::check_secret`]).
    Wrong,
    /// An Argon2 hash stored by an earlier version: never checked (an Argon2 verification
    /// costs 18 ms of CPU and 19 MiB, and anyone can ask for one). A new secret is needed.
    Legacy,
    /// A digest under another grant key (its id): this gateway cannot check it.
    OtherKey(String),
}

impl Sealer {
    /// The digest of a generated client secret (or registration access token) to store:
    /// `hmac-sha256:<key id>:<base64url HMAC-SHA-256>` under a key derived from this key.
    pub fn digest_secret(&self, secret: &str) -> String {
        let tag = hmac::sign(&self.secrets, secret.as_bytes());
        format!(
            "{SECRET_DIGEST_PREFIX}{}:{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Checks `secret` against a stored digest, in constant time. With no digest (an unknown
    /// client) it does the same work and answers [`SecretCheck::Wrong`], so that the cost of a
    /// check says nothing about which client ids exist.
    pub fn check_secret(&self, secret: &str, stored: Option<&str>) -> SecretCheck {
        let presented = hmac::sign(&self.secrets, secret.as_bytes());
        let Some(stored) = stored else {
            let _ = constant_time_eq(presented.as_ref(), &[0u8; 32]);
            return SecretCheck::Wrong;
        };
        if stored.starts_with("$argon2") {
            return SecretCheck::Legacy;
        }
        let Some((key_id, digest)) = stored
            .strip_prefix(SECRET_DIGEST_PREFIX)
            .and_then(|rest| rest.rsplit_once(':'))
        else {
            return SecretCheck::Wrong;
        };
        if key_id != self.key_id {
            return SecretCheck::OtherKey(key_id.to_owned());
        }
        match URL_SAFE_NO_PAD.decode(digest) {
            Ok(digest) if constant_time_eq(presented.as_ref(), &digest) => SecretCheck::Matches,
            _ => SecretCheck::Wrong,
        }
    }
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
    fn secret_digests_check_in_constant_time_and_name_what_they_cannot_check() {
        let sealer = Sealer::from_bytes("k1", &[7u8; 32]).unwrap();
        let secret = random_token(32).unwrap();
        let digest = sealer.digest_secret(&secret);
        assert!(digest.starts_with("hmac-sha256:k1:"), "{digest}");
        assert!(!digest.contains(&secret));
        // Keyed: the same secret under another grant key digests differently.
        let other = Sealer::from_bytes("k1", &[8u8; 32]).unwrap();
        assert_ne!(other.digest_secret(&secret), digest);
        for (presented, stored, expected) in [
            (secret.as_str(), Some(digest.as_str()), SecretCheck::Matches),
            ("wrong", Some(digest.as_str()), SecretCheck::Wrong),
            ("", Some(digest.as_str()), SecretCheck::Wrong),
            (secret.as_str(), None, SecretCheck::Wrong),
            (secret.as_str(), Some("garbage"), SecretCheck::Wrong),
            (
                secret.as_str(),
                Some("hmac-sha256:k1:!!"),
                SecretCheck::Wrong,
            ),
            (
                secret.as_str(),
                Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
                SecretCheck::Legacy,
            ),
            (
                secret.as_str(),
                Some("hmac-sha256:k0:AAAA"),
                SecretCheck::OtherKey("k0".into()),
            ),
        ] {
            assert_eq!(
                sealer.check_secret(presented, stored),
                expected,
                "{presented:?} against {stored:?}"
            );
        }
    }

    #[test]
    fn account_ids_are_per_platform_and_per_key() {
        let sealer = Sealer::from_bytes("k1", &[7; 32]).unwrap();
        let id = sealer.account_id("messenger", "acc_0123");
        assert!(id.starts_with("acc_") && id.len() == 4 + 24, "{id}");
        assert_eq!(id, sealer.account_id("messenger", "acc_0123"));
        assert_ne!(id, sealer.account_id("social", "acc_0123"));
        assert_ne!(id, sealer.account_id("messenger", "acc_0124"));
        let other_key = Sealer::from_bytes("k1", &[8; 32]).unwrap();
        assert_ne!(id, other_key.account_id("messenger", "acc_0123"));
    }

    #[test]
    fn mac_verifies_only_its_message() {
        let sealer = Sealer::ephemeral().unwrap();
        let tag = sealer.mac(b"consent-1");
        assert!(sealer.verify_mac(b"consent-1", &tag));
        assert!(!sealer.verify_mac(b"consent-2", &tag));
    }
}
