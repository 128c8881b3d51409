//! Bank manifests (`adapters/*.toml`): who the bank is, which profile speaks its API, where its
//! endpoints are, and which environment variables hold bankgate's credentials there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors loading or validating a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{bank}: {message}")]
    Invalid { bank: String, message: String },
    #[error("{bank}: environment variable {var} is not set")]
    MissingCredential { bank: String, var: String },
}

/// A bank's adapter manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Stable bank id, e.g. `demo-bank`.
    pub id: String,
    pub name: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The profile speaking the bank's API, e.g. `berlin-group`.
    pub profile: String,
    pub api_base_url: String,
    pub oauth: OAuthEndpoints,
    #[serde(default)]
    pub limits: Limits,
    /// Present for the bundled sandbox banks: `serve` starts them itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSpec>,
}

/// The bank's authorization server, and where bankgate's credentials for it are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthEndpoints {
    /// The `iss` the bank puts in its authorization responses (RFC 9207), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Name of the environment variable holding bankgate's client id at the bank.
    pub client_id_env: String,
    /// Name of the environment variable holding bankgate's client secret at the bank.
    pub client_secret_env: String,
}

/// Per-bank limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Timeout of one call to the bank.
    #[serde(default = "Limits::default_timeout_ms")]
    pub timeout_ms: u64,
}

impl Limits {
    fn default_timeout_ms() -> u64 {
        10_000
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: Self::default_timeout_ms(),
        }
    }
}

/// How the bundled sandbox for this bank is started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// The loopback port the manifest's URLs point at.
    pub port: u16,
}

impl Manifest {
    /// Parses and validates one manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|error| ManifestError::Parse {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Loads every `*.toml` in `dir`, sorted by file name.
    pub fn load_dir(dir: &Path) -> Result<Vec<Manifest>, ManifestError> {
        let read_error = |source| ManifestError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_error)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();
        paths.iter().map(|path| Manifest::load(path)).collect()
    }

    /// Checks what serde cannot: a known profile, well-formed URLs, a sane id.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            bank: self.id.clone(),
            message,
        };
        let id_ok = !self.id.is_empty()
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            return Err(invalid(
                "id must be lowercase letters, digits and '-'".into(),
            ));
        }
        if super::profile(&self.profile).is_none() {
            return Err(invalid(format!("unknown profile {:?}", self.profile)));
        }
        if self.country.len() != 2 || !self.country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(invalid("country must be an ISO 3166-1 alpha-2 code".into()));
        }
        let urls = [
            ("api_base_url", Some(&self.api_base_url)),
            (
                "oauth.authorization_endpoint",
                Some(&self.oauth.authorization_endpoint),
            ),
            ("oauth.token_endpoint", Some(&self.oauth.token_endpoint)),
            (
                "oauth.revocation_endpoint",
                self.oauth.revocation_endpoint.as_ref(),
            ),
        ];
        for (field, url) in urls {
            let Some(url) = url else { continue };
            let parsed =
                url::Url::parse(url).map_err(|error| invalid(format!("{field}: {error}")))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(invalid(format!("{field}: scheme must be https")));
            }
        }
        Ok(())
    }

    /// Points every URL of a sandbox manifest at `origin` (e.g. `http://127.0.0.1:40123`),
    /// for a sandbox started on another port than the manifest names.
    pub fn rebase(&mut self, origin: &str) {
        let Some(sandbox) = &self.sandbox else { return };
        let old = format!("http://127.0.0.1:{}", sandbox.port);
        let origin = origin.trim_end_matches('/');
        let swap = |url: &mut String| {
            if let Some(rest) = url.strip_prefix(&old) {
                *url = format!("{origin}{rest}");
            }
        };
        swap(&mut self.api_base_url);
        swap(&mut self.oauth.authorization_endpoint);
        swap(&mut self.oauth.token_endpoint);
        if let Some(issuer) = &mut self.oauth.issuer {
            swap(issuer);
        }
        if let Some(url) = &mut self.oauth.revocation_endpoint {
            swap(url);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        toml::from_str(
            r#"
            id = "demo-bank"
            name = "Demo Bank"
            country = "DE"
            profile = "berlin-group"
            api_base_url = "http://127.0.0.1:8091"
            [oauth]
            issuer = "http://127.0.0.1:8091"
            authorization_endpoint = "http://127.0.0.1:8091/oauth/authorize"
            token_endpoint = "http://127.0.0.1:8091/oauth/token"
            client_id_env = "DEMO_BANK_CLIENT_ID"
            client_secret_env = "DEMO_BANK_CLIENT_SECRET"
            [sandbox]
            port = 8091
            "#,
        )
        .unwrap()
    }

    #[test]
    fn valid_manifest_passes_and_rebases() {
        let mut manifest = manifest();
        manifest.validate().unwrap();
        manifest.rebase("http://127.0.0.1:40000");
        assert_eq!(
            manifest.oauth.token_endpoint,
            "http://127.0.0.1:40000/oauth/token"
        );
        assert_eq!(
            manifest.oauth.issuer.as_deref(),
            Some("http://127.0.0.1:40000")
        );
    }

    #[track_caller]
    fn check_invalid(edit: impl FnOnce(&mut Manifest), message: &str) {
        let mut manifest = manifest();
        edit(&mut manifest);
        let error = manifest.validate().unwrap_err().to_string();
        assert!(error.contains(message), "{error}");
    }

    #[test]
    fn invalid_manifests_are_rejected() {
        check_invalid(|m| m.profile = "swift".into(), "unknown profile");
        check_invalid(|m| m.id = "Demo Bank".into(), "id must be");
        check_invalid(|m| m.api_base_url = "not a url".into(), "api_base_url");
        check_invalid(|m| m.oauth.token_endpoint = "ftp://x/y".into(), "scheme");
        check_invalid(|m| m.country = "Germany".into(), "country");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<Manifest>("id = \"x\"\nsecret = \"inline\"").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }
}
