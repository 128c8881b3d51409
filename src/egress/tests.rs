//! The classification table, and the checks at registration and at connect time against real
//! listeners (a name that resolves to loopback through a test resolver is the rebinding case).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::*;

#[track_caller]
fn check(address: &str, expected: Option<&str>) {
    let ip: IpAddr = address.parse().unwrap_or_else(|_| panic!("{address}"));
    match (check_ip(ip), expected) {
        (Ok(()), None) => {}
        (Err(refused), Some(range)) => {
            let text = refused.to_string();
            assert!(
                text.contains(range),
                "{address}: {text} should name {range}"
            );
        }
        (outcome, expected) => panic!("{address}: {outcome:?}, expected {expected:?}"),
    }
}

#[test]
fn every_form_the_hardening_report_listed_is_refused() {
    check("::ffff:127.0.0.1", Some("IPv4-mapped 127.0.0.1, loopback"));
    check("::ffff:7f00:1", Some("IPv4-mapped 127.0.0.1, loopback"));
    check(
        "::ffff:169.254.169.254",
        Some("IPv4-mapped 169.254.169.254, link-local"),
    );
    check("::ffff:10.0.0.1", Some("IPv4-mapped 10.0.0.1, private-use"));
    check("::127.0.0.1", Some("IPv4-compatible 127.0.0.1, loopback"));
    check(
        "64:ff9b::7f00:1",
        Some("NAT64-translated (RFC 6052) 127.0.0.1, loopback"),
    );
    check("2002:7f00:1::", Some("6to4 (RFC 3056) 127.0.0.1, loopback"));
    check("100.64.0.1", Some("shared address space"));
    check("0.1.2.3", Some("this network"));
    check("198.18.0.1", Some("benchmarking"));
    check("224.0.0.1", Some("multicast"));
    check("255.255.255.255", Some("limited broadcast"));
    for name in [
        "localhost.",
        "foo.localhost",
        "localhost",
        "LOCALHOST.",
        "a.b.localhost.",
    ] {
        let refused = check_name(name).expect_err(name);
        assert!(
            refused.to_string().contains("RFC 6761"),
            "{name}: {refused}"
        );
    }
}

#[test]
fn the_special_purpose_registries_are_refused() {
    for (address, range) in [
        // IPv4 Special-Purpose Address Registry.
        ("0.0.0.0", "this network"),
        ("10.1.2.3", "private-use"),
        ("100.127.255.254", "shared address space"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.255", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.16.0.1", "private-use"),
        ("172.31.255.255", "private-use"),
        ("192.0.0.1", "IETF protocol assignments"),
        ("192.0.0.8", "IETF protocol assignments"),
        ("192.0.0.170", "IETF protocol assignments"),
        ("192.0.2.1", "TEST-NET-1"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("192.168.1.1", "private-use"),
        ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "TEST-NET-2"),
        ("203.0.113.7", "TEST-NET-3"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("254.1.2.3", "reserved"),
        // IPv6 Special-Purpose Address Registry and the non-unicast blocks.
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:0.0.0.0", "this network"),
        ("::ffff:192.168.0.1", "private-use"),
        ("::ffff:100.64.0.1", "shared address space"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("64:ff9b::a00:1", "private-use"),
        ("64:ff9b:1::1", "local-use IPv4/IPv6 translation"),
        ("2002:a00:1::1", "6to4 (RFC 3056) 10.0.0.1, private-use"),
        ("2002:c0a8:101::", "private-use"),
        ("100::1", "discard-only"),
        ("100:0:0:1::1", "dummy prefix"),
        ("2001::1", "Teredo"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("2001:2::1", "benchmarking"),
        ("2001:10::1", "deprecated ORCHID"),
        ("2001:100::1", "IETF protocol assignments"),
        ("2001:db8::1", "documentation (RFC 3849)"),
        ("3fff::1", "documentation (RFC 9637)"),
        ("5f00::1", "segment routing"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("4000::1", "outside the global unicast space"),
        ("::2:1", "IPv4-compatible"),
    ] {
        check(address, Some(range));
    }
}

#[test]
fn public_addresses_pass() {
    for address in [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "172.32.0.1",
        "100.128.0.1",
        "198.20.0.1",
        "192.0.0.9",
        "192.0.0.10",
        "223.255.255.255",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "2001:1::1",
        "2001:3::1",
        "2001:4:112::1",
        "2001:20::1",
    ] {
        check(address, None);
    }
    for name in [
        "bank.example",
        "notlocalhost",
        "localhost.bank.example",
        "local.bank.com",
    ] {
        assert_eq!(check_name(name), Ok(()), "{name}");
    }
    for name in ["printer.local", "db.internal.", "router.home.arpa"] {
        assert!(check_name(name).is_err(), "{name}");
    }
}

#[test]
fn urls_are_checked_as_written_whatever_the_spelling() {
    let egress = Egress::new(false);
    for url in [
        "https://[::ffff:127.0.0.1]:8443/",
        "https://[::ffff:7f00:1]/",
        "https://[::127.0.0.1]/",
        "https://[64:ff9b::7f00:1]/",
        "https://[2002:7f00:1::]/",
        "https://localhost./",
        "https://foo.localhost/",
        // The WHATWG URL parser reads these as 127.0.0.1.
        "https://2130706433/",
        "https://0x7f.1/",
        "https://127.1/",
        "https://0177.0.0.1/",
    ] {
        let parsed = url::Url::parse(url).unwrap();
        assert!(egress.check_url(&parsed).is_err(), "{url} passed");
    }
    let public = url::Url::parse("https://api.bank.example/v1").unwrap();
    assert_eq!(egress.check_url(&public), Ok(()));
    let private = url::Url::parse("http://127.0.0.1:8091/").unwrap();
    assert_eq!(Egress::new(true).check_url(&private), Ok(()));
    let sandbox: SocketAddr = "127.0.0.1:8091".parse().unwrap();
    let bound = Egress::new(false).allowing(sandbox);
    assert_eq!(bound.check_url(&private), Ok(()));
    let elsewhere = url::Url::parse("http://127.0.0.1:8092/").unwrap();
    assert!(bound.check_url(&elsewhere).is_err());
}

/// Resolves names from a table, as a DNS server under an attacker's control would answer.
struct Table(HashMap<&'static str, Vec<IpAddr>>);

impl Lookup for Table {
    fn lookup(&self, name: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let answer = self.0.get(name).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("NXDOMAIN {name}"))
        });
        Box::pin(async move { answer })
    }
}

fn rebinding() -> Arc<dyn Lookup> {
    let ip = |text: &str| text.parse::<IpAddr>().unwrap();
    Arc::new(Table(HashMap::from([
        ("bank.test", vec![ip("127.0.0.1")]),
        ("split.test", vec![ip("8.8.8.8"), ip("10.0.0.7")]),
        ("mapped.test", vec![ip("::ffff:169.254.169.254")]),
        ("public.test", vec![ip("8.8.4.4")]),
    ])))
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_is_refused_at_registration() {
    let egress = Egress::new(false).with_lookup(rebinding());
    for (url, expected) in [
        ("https://bank.test/", "bank.test resolves to 127.0.0.1"),
        ("https://split.test/", "split.test resolves to 10.0.0.7"),
        (
            "https://mapped.test/",
            "IPv4-mapped 169.254.169.254, link-local",
        ),
    ] {
        let refused = egress
            .check_url_resolved(&url::Url::parse(url).unwrap())
            .await
            .expect_err(url)
            .to_string();
        assert!(refused.contains(expected), "{url}: {refused}");
    }
    for url in ["https://public.test/", "https://nxdomain.test/"] {
        let checked = egress
            .check_url_resolved(&url::Url::parse(url).unwrap())
            .await;
        assert_eq!(checked, Ok(()), "{url}");
    }
}

/// A listener that records every byte each connection sends, answering `200 ok` to a
/// request that arrives.
async fn recording_listener() -> (SocketAddr, Arc<std::sync::Mutex<Vec<Vec<u8>>>>, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (listener.local_addr().unwrap(), Arc::default(), listener)
}

fn spawn_server(listener: TcpListener, received: Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                let mut buffer = [0u8; 1024];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => bytes.extend_from_slice(&buffer[..n]),
                    }
                    if bytes.windows(4).any(|w| w == b"\r\n\r\n") {
                        use tokio::io::AsyncWriteExt;
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                            .await;
                        break;
                    }
                }
                received.lock().unwrap().push(bytes);
            });
        }
    });
}

/// The whole chain of an error's messages.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        text.push_str(": ");
        text.push_str(&error.to_string());
        source = error.source();
    }
    text
}

#[tokio::test]
async fn a_name_that_rebinds_to_loopback_is_refused_before_connecting() {
    let (addr, received, listener) = recording_listener().await;
    let client = Egress::new(false)
        .with_lookup(rebinding())
        .client_builder()
        .build()
        .unwrap();
    let error = client
        .get(format!("http://bank.test:{}/", addr.port()))
        .send()
        .await
        .expect_err("refused");
    let text = chain(&error);
    assert!(text.contains("bank.test resolves to 127.0.0.1"), "{text}");
    // Not even a TCP connection was made.
    assert!(listener.accept().now_or_never().is_none());
    assert!(received.lock().unwrap().is_empty());

    // The development opt-out reaches the same listener.
    spawn_server(listener, received.clone());
    let client = Egress::new(true)
        .with_lookup(rebinding())
        .client_builder()
        .build()
        .unwrap();
    let response = client
        .get(format!("http://bank.test:{}/", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_literal_private_address_gets_no_request() {
    let (addr, received, listener) = recording_listener().await;
    spawn_server(listener, received.clone());
    let client = Egress::new(false).client_builder().build().unwrap();
    let error = client
        .get(format!("http://127.0.0.1:{}/secret", addr.port()))
        .send()
        .await
        .expect_err("refused");
    let text = chain(&error);
    assert!(
        text.contains("127.0.0.1 is not a public address: loopback"),
        "{text}"
    );
    // The connection was opened (a literal needs no resolution) and closed without a byte.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while received.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection never closed"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(received.lock().unwrap().as_slice(), &[Vec::<u8>::new()]);

    // The exact address of a sandbox this gateway started is reachable; the next port is not.
    let sandbox = Egress::new(false)
        .allowing(addr)
        .client_builder()
        .build()
        .unwrap();
    let response = sandbox
        .get(format!("http://127.0.0.1:{}/", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (other, _, _other_listener) = recording_listener().await;
    let error = sandbox
        .get(format!("http://127.0.0.1:{}/", other.port()))
        .send()
        .await
        .expect_err("refused");
    assert!(chain(&error).contains("loopback"), "{}", chain(&error));
}
