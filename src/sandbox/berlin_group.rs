//! The Berlin Group (NextGenPSD2) sandbox bank.

use super::SandboxConfig;

/// The sandbox's routes; `origin` is where it listens (`http://127.0.0.1:<port>`).
pub fn router(_config: &SandboxConfig, _origin: &str) -> axum::Router {
    axum::Router::new()
}
