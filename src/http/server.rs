//! Serving connections: the accept loop in front of the stack.
//!
//! - **Header-read timeout** (`header_read_timeout_ms`): a connection that has not sent a
//!   complete request head within it is closed — a client that opens connections and never
//!   finishes its headers (slowloris) holds nothing for long. The same timeout bounds how long
//!   an idle keep-alive connection waits for its next request.
//! - **Per-IP connection cap** (`max_connections_per_ip`, 0 = none): a connection beyond it is
//!   closed as soon as it is accepted, so one address cannot take every file descriptor.
//!   Behind a load balancer or reverse proxy every connection comes from its address: raise
//!   the cap accordingly (or turn it off and cap at the proxy).
//! - **The peer address** of each connection goes on every request it carries as axum's
//!   `ConnectInfo<SocketAddr>` extension (what `into_make_service_with_connect_info` would
//!   insert), for what is counted per client address: the sign-in starts
//!   (`broker::sign_in::StartLimit`). It is the TCP peer: behind a reverse proxy, the proxy's.
//! - **Graceful shutdown**: when `shutdown` completes, the listener stops accepting, each
//!   open connection finishes the request it is serving and closes, and [`serve`] returns
//!   once all are closed.
//!
//! HTTP/1.1 with keep-alive, as hyper's server connection serves it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

use crate::config::ServerSettings;

/// Open connections per IP address.
#[derive(Debug, Default)]
struct Connections {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection, counted until it is dropped.
struct Counted {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    /// Counts a connection from `ip`, unless `ip` has `max` open already.
    fn admit(self: &Arc<Self>, ip: IpAddr, max: Option<usize>) -> Option<Counted> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let open = per_ip.entry(ip).or_insert(0);
        if max.is_some_and(|max| *open >= max) {
            return None;
        }
        *open += 1;
        Some(Counted {
            connections: self.clone(),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut per_ip = self
            .connections
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = per_ip.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Whether an accept error concerns one connection only (the loop goes on at once).
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Serves `service` on `listener` until `shutdown` completes, then waits for the open
/// connections to finish their requests.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let connections = Arc::new(Connections::default());
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    // Out of file descriptors, most likely: let connections close first.
                    tracing::error!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(counted) = connections.admit(peer.ip(), settings.max_connections_per_ip) else {
            tracing::debug!(peer = %peer.ip(), "connection refused: per-IP cap reached");
            drop(stream);
            continue;
        };
        let service = service
            .clone()
            .map_request(move |request: hyper::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(counted);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests;
