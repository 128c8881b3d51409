//! Slow and greedy clients against a real listener: a head that never ends is cut off, and
//! connections beyond the per-IP cap are closed at once while the admitted ones keep working.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// Long enough for any machine to notice a closed connection; only a bound, never asserted.
const PATIENCE: Duration = Duration::from_secs(20);

async fn start(settings: ServerSettings) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/", get(|| async { "ok" }));
    let service = router.into_service::<Body>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, service, settings, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: gateway\r\n\r\n";

/// Sends one request on `stream` and reads its answer (the body is `ok`).
async fn round_trip(stream: &mut TcpStream) -> String {
    stream.write_all(REQUEST).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 512];
    while !answer.ends_with(b"ok") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(answer).unwrap()
}

/// Whether the server closed `stream` (EOF or reset) without sending anything.
async fn closed_without_answer(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 512];
    match tokio::time::timeout(PATIENCE, stream.read(&mut buffer)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[tokio::test]
async fn a_head_that_never_ends_is_cut_off() {
    let (addr, _stop) = start(ServerSettings {
        header_read_timeout: Duration::from_millis(200),
        max_connections_per_ip: None,
    })
    .await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    // Half a request head, and then nothing.
    slow.write_all(b"GET / HTTP/1.1\r\nhost: gateway\r\nx-slow: ")
        .await
        .unwrap();
    assert!(closed_without_answer(&mut slow).await);

    // A connection that says nothing at all is cut off too.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_without_answer(&mut silent).await);

    // A client that sends its head gets its answer.
    let mut prompt = TcpStream::connect(addr).await.unwrap();
    assert!(round_trip(&mut prompt).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_beyond_the_per_ip_cap_are_closed() {
    let (addr, _stop) = start(ServerSettings {
        header_read_timeout: Duration::from_secs(30),
        max_connections_per_ip: Some(2),
    })
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(round_trip(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(round_trip(&mut second).await.starts_with("HTTP/1.1 200"));

    let mut third = TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(REQUEST).await;
    assert!(closed_without_answer(&mut third).await);

    // The admitted connections keep working (keep-alive).
    assert!(round_trip(&mut first).await.starts_with("HTTP/1.1 200"));

    // Once one closes, its place is free again.
    drop(second);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut next = TcpStream::connect(addr).await.unwrap();
        if next.write_all(REQUEST).await.is_ok() {
            let mut buffer = [0u8; 512];
            if let Ok(Ok(n)) = tokio::time::timeout(PATIENCE, next.read(&mut buffer)).await
                && n > 0
            {
                assert!(buffer.starts_with(b"HTTP/1.1 200"));
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never freed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns_when_connections_close() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Router::new()
        .route("/", get(|| async { "ok" }))
        .into_service::<Body>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let settings = ServerSettings {
        header_read_timeout: Duration::from_secs(30),
        max_connections_per_ip: None,
    };
    let served = tokio::spawn(serve(listener, service, settings, async move {
        let _ = stopped.await;
    }));
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert!(round_trip(&mut open).await.starts_with("HTTP/1.1 200"));
    stop.send(()).unwrap();
    // The idle keep-alive connection is closed, and serving ends.
    assert!(closed_without_answer(&mut open).await);
    tokio::time::timeout(PATIENCE, served)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
