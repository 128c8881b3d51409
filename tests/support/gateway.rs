//! A gateway serving in the test's process, shared by every test binary that starts one
//! (`tests/api`, `tests/audit`, `tests/browser`).
//!
//! Include it with `#[path = "../support/gateway.rs"] #[allow(dead_code)] mod gateway;` (each
//! binary uses a different part of it). [`Served::start`] starts a gateway from a
//! configuration — with its bundled sandbox banks — and serves it on loopback until the value
//! is dropped; [`Served::serve`] serves one a test assembled itself.

use std::sync::Arc;

use bankgate::app::App;
use bankgate::config::Config;
use bankgate::gateway::Gateway;
use bankgate::oauth::registration::{Registered, Registration};

/// A gateway serving on loopback; it stops when this is dropped.
pub struct Served {
    pub app: Arc<App>,
    /// `http://127.0.0.1:<port>`, where it serves.
    pub base: String,
    /// `http://…/metrics`, when the configuration turned metrics on.
    pub metrics_url: Option<String>,
    /// Each bundled sandbox bank's origin and what it is told to get wrong (`tests/notify`
    /// makes one fail; the other binaries leave them alone).
    #[allow(dead_code)]
    pub sandbox_faults: Vec<(String, Arc<bankgate_sandbox::faults::Faults>)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Served {
    /// Starts a gateway with `config` and serves it.
    pub async fn start(config: Config) -> Served {
        let gateway = Gateway::start(config).await.expect("gateway starts");
        let base = gateway.app.config.public_url.clone();
        Served::serve(gateway, base)
    }

    /// Serves `gateway`, reached at `base`.
    pub fn serve(gateway: Gateway, base: String) -> Served {
        let app = gateway.app.clone();
        let metrics_url = gateway
            .metrics
            .as_ref()
            .map(|(_, addr)| format!("http://{addr}/metrics"));
        let sandbox_faults = gateway
            .sandboxes
            .iter()
            .map(|sandbox| (sandbox.origin.clone(), sandbox.faults.clone()))
            .collect();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(gateway.serve(async move {
            let _ = stopped.await;
        }));
        Served {
            app,
            base,
            metrics_url,
            sandbox_faults,
            stop: Some(stop),
        }
    }

    /// Registers a client (with a fresh secret, returned).
    pub async fn register(&self, registration: Registration) -> Registered {
        let client_id = registration.client_id.clone();
        self.app
            .registrar
            .register(&self.app.policies.current(), registration)
            .await
            .unwrap_or_else(|error| panic!("{client_id} registers: {error}"))
    }
}
