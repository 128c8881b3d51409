//! A TCP proxy in front of the real PostgreSQL server, for outages that other tests running
//! against the same server do not feel: `cut` closes every connection through it and refuses
//! new ones until `restore`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Default)]
struct State {
    down: AtomicBool,
    connections: Mutex<Vec<AbortHandle>>,
}

/// A running proxy; stops (closing its connections) when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State::default());
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if shared.down.load(Ordering::SeqCst) {
                    // The server is "down": the connection is closed at once.
                    drop(client);
                    continue;
                }
                let forward = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut connections = shared
                    .connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                connections.retain(|connection| !connection.is_finished());
                connections.push(forward.abort_handle());
            }
        });
        Proxy {
            addr,
            state,
            accept,
        }
    }

    /// The database "goes away": open connections are closed, new ones refused.
    pub fn cut(&self) {
        self.state.down.store(true, Ordering::SeqCst);
        let connections: Vec<AbortHandle> = self
            .state
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for connection in connections {
            connection.abort();
        }
    }

    /// The database is back.
    pub fn restore(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// `url` (a `postgres://` URL) pointed at this proxy.
    pub fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a postgres:// URL");
        url.set_host(Some(&self.addr.ip().to_string()))
            .expect("host");
        url.set_port(Some(self.addr.port())).expect("port");
        url.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
