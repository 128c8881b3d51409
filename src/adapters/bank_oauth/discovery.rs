//! A bank's authorization server endpoints from its metadata (RFC 8414, or OpenID Connect
//! Discovery), read from its `issuer` alone: a manifest may leave out
//! `authorization_endpoint` and `token_endpoint` (and the revocation and PAR endpoints), and
//! whatever it does give must agree with the metadata.
//!
//! The metadata's `issuer` must be the manifest's, character for character (RFC 8414 §3.3),
//! so that a document served elsewhere cannot name another server's endpoints.

use serde::Deserialize;

use crate::adapters::manifest::OAuthEndpoints;

/// The metadata members bankgate reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub pushed_authorization_request_endpoint: Option<String>,
}

/// The largest metadata document read.
const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Where an issuer's metadata is published: RFC 8414 §3.1 (the well-known segment between the
/// host and the issuer's path), then OpenID Connect Discovery (appended to the issuer).
pub fn metadata_urls(issuer: &str) -> Result<Vec<url::Url>, String> {
    let parsed = url::Url::parse(issuer).map_err(|_| "oauth.issuer is not a URL".to_owned())?;
    let path = parsed.path().trim_end_matches('/');
    let mut rfc8414 = parsed.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let mut openid = parsed.clone();
    openid.set_path(&format!("{path}/.well-known/openid-configuration"));
    Ok(vec![rfc8414, openid])
}

/// Reads the metadata of `issuer` with `http` (the bank's egress-bound client): the first of
/// [`metadata_urls`] that answers with a JSON document naming exactly this issuer.
pub async fn fetch(http: &reqwest::Client, issuer: &str) -> Result<Metadata, String> {
    let mut failure = format!("no metadata found for the issuer {issuer}");
    for url in metadata_urls(issuer)? {
        let answer = match http.get(url.clone()).send().await {
            Ok(answer) if answer.status().is_success() => answer,
            Ok(answer) => {
                failure = format!("the metadata at {url} answered HTTP {}", answer.status());
                continue;
            }
            Err(_) => {
                failure = format!("the metadata at {url} is unreachable");
                continue;
            }
        };
        if answer
            .content_length()
            .is_some_and(|length| length > MAX_METADATA_BYTES as u64)
        {
            return Err(format!("the metadata at {url} is too large"));
        }
        let body = answer
            .bytes()
            .await
            .map_err(|_| format!("the metadata at {url} could not be read"))?;
        if body.len() > MAX_METADATA_BYTES {
            return Err(format!("the metadata at {url} is too large"));
        }
        let metadata: Metadata = serde_json::from_slice(&body)
            .map_err(|_| format!("the metadata at {url} is not a metadata document"))?;
        if metadata.issuer.as_deref() != Some(issuer) {
            return Err(format!(
                "the metadata at {url} names another issuer than oauth.issuer"
            ));
        }
        return Ok(metadata);
    }
    Err(failure)
}

/// Fills what `oauth` leaves out from `metadata`, and refuses what it gives otherwise: each
/// endpoint the manifest names must be the metadata's (when the metadata names it).
pub fn apply(oauth: &mut OAuthEndpoints, metadata: &Metadata) -> Result<(), String> {
    let required = [
        (
            "authorization_endpoint",
            &mut oauth.authorization_endpoint,
            &metadata.authorization_endpoint,
        ),
        (
            "token_endpoint",
            &mut oauth.token_endpoint,
            &metadata.token_endpoint,
        ),
    ];
    let discovering = required.iter().any(|(_, given, _)| given.is_empty());
    for (name, given, published) in required {
        match (given.is_empty(), published) {
            (true, Some(published)) => *given = published.clone(),
            (true, None) => return Err(format!("the bank's metadata names no {name}")),
            (false, Some(published)) if given != published => {
                return Err(format!("oauth.{name} differs from the bank's metadata"));
            }
            (false, _) => {}
        }
    }
    let optional = [
        (
            "revocation_endpoint",
            &mut oauth.revocation_endpoint,
            &metadata.revocation_endpoint,
        ),
        (
            "pushed_authorization_request_endpoint",
            &mut oauth.pushed_authorization_request_endpoint,
            &metadata.pushed_authorization_request_endpoint,
        ),
    ];
    for (name, given, published) in optional {
        match (given.as_ref(), published) {
            // From the issuer alone, every endpoint the bank offers is used.
            (None, Some(published)) if discovering => *given = Some(published.clone()),
            (Some(given), Some(published)) if given != published => {
                return Err(format!("oauth.{name} differs from the bank's metadata"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `oauth` completed from its issuer's metadata when it leaves endpoints out (a manifest that
/// names them all is used as it is; the live check of a registration compares them).
pub async fn complete(http: &reqwest::Client, oauth: &mut OAuthEndpoints) -> Result<(), String> {
    if !oauth.needs_discovery() {
        return Ok(());
    }
    let issuer = oauth
        .issuer
        .clone()
        .ok_or("oauth.issuer is needed to read the endpoints the manifest leaves out")?;
    let metadata = fetch(http, &issuer).await?;
    apply(oauth, &metadata)
}

/// `manifest` completed from its issuer's metadata ([`complete`]), read through a client that
/// connects only where `egress` allows, and validated again with what it read.
pub async fn complete_manifest(
    manifest: &mut crate::adapters::Manifest,
    egress: &crate::egress::Egress,
) -> Result<(), crate::adapters::ManifestError> {
    if !manifest.oauth.needs_discovery() {
        return Ok(());
    }
    let invalid = |message: String| crate::adapters::ManifestError::Invalid {
        bank: manifest.id.clone(),
        message,
    };
    let http = egress
        .client_builder()
        .timeout(std::time::Duration::from_millis(manifest.limits.timeout_ms))
        .build()
        .map_err(|error| invalid(error.to_string()))?;
    complete(&http, &mut manifest.oauth)
        .await
        .map_err(|message| invalid(format!("oauth metadata: {message}")))?;
    manifest.validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_up_where_rfc_8414_and_openid_put_it() {
        let urls = metadata_urls("https://bank.example").unwrap();
        assert_eq!(
            urls[0].as_str(),
            "https://bank.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            urls[1].as_str(),
            "https://bank.example/.well-known/openid-configuration"
        );
        let urls = metadata_urls("https://bank.example/tenant/psd2").unwrap();
        assert_eq!(
            urls[0].as_str(),
            "https://bank.example/.well-known/oauth-authorization-server/tenant/psd2"
        );
        assert_eq!(
            urls[1].as_str(),
            "https://bank.example/tenant/psd2/.well-known/openid-configuration"
        );
    }
}
