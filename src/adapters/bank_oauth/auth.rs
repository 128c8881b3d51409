//! bankgate's credentials at a bank beyond its client secret, as the bank's manifest asks for
//! them: the key that signs `private_key_jwt` client assertions (RFC 7523) and the key that
//! signs DPoP proofs (RFC 9449), each loaded from the PKCS#8 PEM file an environment variable
//! names; and the client authentication every back-channel call to the bank's authorization
//! server carries (token, PAR, revocation).
//!
//! A bundled sandbox bank whose variables are unset gets fresh keys at every start (like its
//! fresh client secret); any other bank must name its key files, since every gateway instance
//! must sign with the same keys.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::adapters::manifest::OAuthEndpoints;
use crate::adapters::{AdapterError, Bank};
use crate::jose::keys::pem_contents;
use crate::jose::{AuthMethod, CLIENT_ASSERTION_TYPE, ClientKey, basic_header};

/// Errors loading bankgate's keys for a bank; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BankKeyError {
    #[error(
        "set {0} to the path of a private key (PKCS#8 PEM of P-256, Ed25519 or RSA: `bankgate keys bank`)"
    )]
    Missing(String),
    #[error("the manifest must name the key file's environment variable in oauth.{0}")]
    Unnamed(&'static str),
    /// The message names the variable, never its value (a path, or whatever a manifest
    /// pointed the reference at).
    #[error("the key file named by {var} {message}")]
    Load { var: String, message: &'static str },
    #[error("key generation failed")]
    Generate,
}

/// The keys bankgate signs with towards one bank. Never logged.
#[derive(Default)]
pub struct BankKeys {
    /// Signs `private_key_jwt` client assertions (manifest `token_endpoint_auth_method`).
    pub assertion: Option<Arc<ClientKey>>,
    /// Signs DPoP proofs (manifest `dpop = true`).
    pub dpop: Option<Arc<ClientKey>>,
    /// The latest DPoP nonce the bank's authorization server handed out.
    nonce: Arc<Mutex<Option<String>>>,
    /// The latest DPoP nonce the bank's resource server handed out (its data calls'): a
    /// server's nonces are its own (RFC 9449 §9).
    resource_nonce: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for BankKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankKeys")
            .field("assertion", &self.assertion.as_ref().map(|key| &key.kid))
            .field("dpop", &self.dpop.as_ref().map(|key| &key.kid))
            .finish_non_exhaustive()
    }
}

impl BankKeys {
    /// The keys `oauth` asks for, read from the files its environment variables name (looked
    /// up with `env`). With `ephemeral_allowed` (a bundled sandbox bankgate starts itself), an
    /// unset variable means a fresh key instead of an error.
    pub fn load(
        oauth: &OAuthEndpoints,
        env: impl Fn(&str) -> Option<String>,
        ephemeral_allowed: bool,
    ) -> Result<BankKeys, BankKeyError> {
        let key = |var: Option<&String>, field: &'static str| {
            let path = var.and_then(|var| env(var)).filter(|path| !path.is_empty());
            match (path, var) {
                (Some(path), Some(var)) => {
                    load_pem(Path::new(&path))
                        .map(Arc::new)
                        .map_err(|message| BankKeyError::Load {
                            var: var.clone(),
                            message,
                        })
                }
                (Some(_), None) => Err(BankKeyError::Unnamed(field)),
                (None, _) if ephemeral_allowed => ClientKey::generate_es256()
                    .map(Arc::new)
                    .map_err(|_| BankKeyError::Generate),
                (None, Some(var)) => Err(BankKeyError::Missing(var.clone())),
                (None, None) => Err(BankKeyError::Unnamed(field)),
            }
        };
        let assertion = match oauth.token_endpoint_auth_method {
            AuthMethod::PrivateKeyJwt => Some(key(
                oauth.client_key_file_env.as_ref(),
                "client_key_file_env",
            )?),
            AuthMethod::ClientSecretBasic => None,
        };
        let dpop = if oauth.dpop {
            Some(key(oauth.dpop_key_file_env.as_ref(), "dpop_key_file_env")?)
        } else {
            None
        };
        Ok(BankKeys {
            assertion,
            dpop,
            nonce: Arc::default(),
            resource_nonce: Arc::default(),
        })
    }

    /// Where the latest DPoP nonce of the bank's authorization server is kept (shared by
    /// every call to the bank).
    pub fn nonce_slot(&self) -> Arc<Mutex<Option<String>>> {
        self.nonce.clone()
    }

    /// Where the latest DPoP nonce of the bank's resource server is kept (shared by every
    /// data call to the bank).
    pub fn resource_nonce_slot(&self) -> Arc<Mutex<Option<String>>> {
        self.resource_nonce.clone()
    }

    /// The resource server's latest nonce, if it handed one out.
    pub fn resource_nonce(&self) -> Option<String> {
        self.resource_nonce
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Loads a private key from a PKCS#8 PEM file: P-256 (ES256), Ed25519 (EdDSA) or RSA of 2048
/// bits or more (PS256), for a bank that takes that algorithm. The error says what is wrong
/// without naming the path.
pub fn load_pem(path: &Path) -> Result<ClientKey, &'static str> {
    let pem = std::fs::read_to_string(path).map_err(|_| "cannot be read")?;
    let der = pem_contents(&pem).ok_or("is not a PEM file")?;
    ClientKey::from_pkcs8(&der)
        .map_err(|_| "is not a PKCS#8 private key of P-256, Ed25519 or RSA (2048 bits or more)")
}

/// The audience of client assertions at the bank: its issuer identifier (FAPI 2.0 §5.3.2.1),
/// or its token endpoint when the manifest names no issuer (RFC 7523 §3).
pub fn assertion_audience(bank: &Bank) -> &str {
    let oauth = &bank.manifest.oauth;
    oauth.issuer.as_deref().unwrap_or(&oauth.token_endpoint)
}

/// The body parameters of a `private_key_jwt` client authentication at the bank, or `None`
/// when bankgate authenticates with its secret (HTTP Basic).
pub fn assertion_params(bank: &Bank) -> Result<Option<[(&'static str, String); 2]>, AdapterError> {
    let Some(key) = &bank.keys.assertion else {
        return Ok(None);
    };
    let assertion = key
        .client_assertion(&bank.client_id, assertion_audience(bank))
        .map_err(|_| AdapterError::Refused("the client assertion could not be signed".into()))?;
    Ok(Some([
        ("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()),
        ("client_assertion", assertion),
    ]))
}

/// Client authentication for a form POST to the bank's authorization server: the assertion
/// parameters (with `client_id`) appended to `form`, or the `Authorization: Basic` value to
/// send.
pub fn authenticate(
    bank: &Bank,
    form: &mut Vec<(String, String)>,
) -> Result<Option<String>, AdapterError> {
    match assertion_params(bank)? {
        Some(params) => {
            if !form.iter().any(|(name, _)| name == "client_id") {
                form.push(("client_id".into(), bank.client_id.clone()));
            }
            form.extend(
                params
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value)),
            );
            Ok(None)
        }
        None => {
            let secret = bank.client_secret().ok_or_else(|| {
                AdapterError::Refused("bankgate has neither a key nor a secret at the bank".into())
            })?;
            Ok(Some(basic_header(&bank.client_id, secret)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth(toml_text: &str) -> OAuthEndpoints {
        toml::from_str(&format!(
            r#"
            authorization_endpoint = "https://bank.example/authorize"
            token_endpoint = "https://bank.example/token"
            client_id_env = "ID"
            client_secret_env = "SECRET"
            {toml_text}
            "#
        ))
        .unwrap()
    }

    #[test]
    fn keys_come_from_the_named_files_or_are_ephemeral_for_sandboxes() {
        let pem = crate::jose::keys::SigningKey::generate_pem().unwrap();
        let path = std::env::temp_dir().join(format!("bankgate-bank-key-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, &pem).unwrap();
        let file = path.display().to_string();
        let fapi = oauth(
            r#"token_endpoint_auth_method = "private_key_jwt"
            client_key_file_env = "CLIENT_KEY"
            dpop = true
            dpop_key_file_env = "DPOP_KEY""#,
        );
        let env = |var: &str| (var == "CLIENT_KEY" || var == "DPOP_KEY").then(|| file.clone());
        let first = BankKeys::load(&fapi, env, false).unwrap();
        let second = BankKeys::load(&fapi, env, false).unwrap();
        let kid = |key: &Option<Arc<ClientKey>>| key.as_ref().unwrap().kid.clone();
        assert_eq!(
            kid(&first.assertion),
            kid(&second.assertion),
            "same file, same key"
        );
        assert_eq!(kid(&first.dpop), kid(&first.assertion));

        // Unset variables: an error naming the variable, or fresh keys for a sandbox.
        let error = BankKeys::load(&fapi, |_| None, false).unwrap_err();
        assert!(error.to_string().contains("CLIENT_KEY"), "{error}");
        let unnamed = oauth(r#"dpop = true"#);
        let error = BankKeys::load(&unnamed, |_| None, false).unwrap_err();
        assert!(
            error.to_string().contains("oauth.dpop_key_file_env"),
            "{error}"
        );
        let sandbox = BankKeys::load(&fapi, |_| None, true).unwrap();
        assert_ne!(kid(&sandbox.assertion), kid(&first.assertion));
        assert_ne!(kid(&sandbox.assertion), kid(&sandbox.dpop));

        // A secret-based bank needs no key at all.
        let plain = BankKeys::load(&oauth(""), |_| None, false).unwrap();
        assert!(plain.assertion.is_none() && plain.dpop.is_none());

        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let error = BankKeys::load(&fapi, env, false).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(
            error.contains("CLIENT_KEY") && error.contains("PKCS#8"),
            "{error}"
        );
        assert!(
            !error.contains(&file),
            "the path stays out of messages: {error}"
        );
    }
}
