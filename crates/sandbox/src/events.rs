//! Event notifications a sandbox bank pushes to its client (UK OBIE Real Time Event
//! Notification: a Security Event Token, RFC 8417, POSTed as `application/jwt` to the callback
//! URL the client registered): the bank's event-signing key (ES256, fresh at every start,
//! published as a JWK Set), the registered callback URL, and the sending.
//!
//! Sending is best effort, as a real bank's first attempt: a callback that fails is logged and
//! not retried (the client's own schedule still reads the data).

use std::sync::{Mutex, PoisonError};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The bank's event-signing key and its client's callback URL.
pub struct Publisher {
    key: EncodingKey,
    kid: String,
    jwk: Value,
    callback: Mutex<Option<String>>,
    /// Built at the first send (a TLS client needs the process's crypto provider installed).
    http: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Default for Publisher {
    fn default() -> Publisher {
        Publisher::new()
    }
}

impl Publisher {
    /// A publisher with a fresh P-256 key and no callback URL.
    ///
    /// # Panics
    /// If the system's random source fails (key generation cannot go on without it).
    pub fn new() -> Publisher {
        let der =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("a P-256 key from the system's random source");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref())
            .expect("the key just generated");
        let point = pair.public_key().as_ref();
        let kid = format!("events-{}", uuid::Uuid::new_v4().simple());
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        });
        Publisher {
            key: EncodingKey::from_ec_der(der.as_ref()),
            kid,
            jwk,
            callback: Mutex::new(None),
            http: std::sync::OnceLock::new(),
        }
    }

    /// The public keys its events verify with, as a JWK Set.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }

    /// Registers (or replaces) the client's callback URL.
    pub fn register(&self, url: String) {
        *self.callback.lock().unwrap_or_else(PoisonError::into_inner) = Some(url);
    }

    /// The registered callback URL.
    pub fn callback(&self) -> Option<String> {
        self.callback
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Signs `claims` as a SET with the bank's key.
    pub fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.key)
    }

    /// Signs `claims` and POSTs them to the callback URL, if one is registered; `true` if the
    /// client accepted them (202 or another 2xx).
    pub async fn send(&self, claims: &Value) -> bool {
        let Some(url) = self.callback() else {
            return false;
        };
        let token = match self.sign(claims) {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(%error, "cannot sign an event notification");
                return false;
            }
        };
        let http = self.http.get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|error| error.to_string())
        });
        let http = match http {
            Ok(http) => http,
            Err(error) => {
                tracing::warn!(%error, "no HTTP client to send event notifications");
                return false;
            }
        };
        let sent = http
            .post(&url)
            .header("content-type", "application/jwt")
            .body(token)
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => true,
            Ok(answer) => {
                tracing::info!(status = %answer.status(), "event notification refused");
                false
            }
            Err(error) => {
                tracing::info!(%error, "event notification not delivered");
                false
            }
        }
    }
}
