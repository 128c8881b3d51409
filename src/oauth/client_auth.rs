//! Client authentication at bankgate's token and PAR endpoints: `client_secret_basic`
//! (RFC 6749 §2.3.1) for now; `private_key_jwt` joins it with FAPI 2.0.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::OAuthError;
use crate::store::Client;

/// Credentials presented with HTTP Basic.
pub struct BasicCredentials {
    pub client_id: String,
    secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl BasicCredentials {
    /// Parses an `Authorization: Basic …` header value; id and secret are form-urlencoded.
    pub fn parse(header: Option<&str>) -> Result<BasicCredentials, OAuthError> {
        let invalid = || OAuthError::new("invalid_client", "client authentication failed");
        let encoded = header
            .and_then(|value| value.strip_prefix("Basic "))
            .ok_or_else(invalid)?;
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
        let unescape = |part: &str| {
            url::form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default()
        };
        Ok(BasicCredentials {
            client_id: unescape(id),
            secret: unescape(secret),
        })
    }

    /// Checks the secret against the registered client (Argon2, constant time).
    pub fn verify(&self, client: Option<&Client>) -> Result<(), OAuthError> {
        match client {
            Some(client) if crate::crypto::verify_secret(&self.secret, &client.secret_hash) => {
                Ok(())
            }
            _ => Err(OAuthError::new(
                "invalid_client",
                "client authentication failed",
            )),
        }
    }
}

/// Encodes credentials for `Authorization: Basic` (used by the demo platform and tests).
pub fn basic_header(client_id: &str, secret: &str) -> String {
    let escape =
        |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", escape(client_id), escape(secret)))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_round_trips_with_reserved_characters() {
        let header = basic_header("platform:a", "s3c ret/+");
        let credentials = BasicCredentials::parse(Some(&header)).unwrap();
        assert_eq!(credentials.client_id, "platform:a");
        assert_eq!(credentials.secret, "s3c ret/+");
    }

    #[test]
    fn malformed_headers_are_invalid_client() {
        for header in [
            None,
            Some("Bearer x"),
            Some("Basic !!!"),
            Some("Basic Zm9v"),
        ] {
            let error = BasicCredentials::parse(header).unwrap_err();
            assert_eq!(error.code, "invalid_client");
            assert_eq!(error.status, 401);
        }
    }
}
