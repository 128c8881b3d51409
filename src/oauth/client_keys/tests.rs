//! A client's published key set against a real HTTP server that counts its requests: cached,
//! fetched again for an unknown `kid` (rotation), not more often than allowed, never from a
//! private address unless allowed, and never more than 64 KiB.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use serde_json::Value;

use super::*;
use crate::jose::ClientKey;

/// A client's JWKS endpoint: serves whatever `published` holds, counting requests.
struct Publisher {
    published: Arc<Mutex<Value>>,
    requests: Arc<AtomicUsize>,
    uri: String,
}

async fn publisher(initial: Value) -> Publisher {
    let published = Arc::new(Mutex::new(initial));
    let requests = Arc::new(AtomicUsize::new(0));
    let (serving, counting) = (published.clone(), requests.clone());
    let router = Router::new().route(
        "/jwks.json",
        get(move || {
            let serving = serving.clone();
            let counting = counting.clone();
            async move {
                counting.fetch_add(1, Ordering::SeqCst);
                let body = serving.lock().unwrap().clone();
                (
                    [("content-type", "application/jwk-set+json")],
                    body.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Publisher {
        published,
        requests,
        uri: format!("http://{addr}/jwks.json"),
    }
}

fn client(jwks_uri: &str) -> Client {
    Client::with_keys(None, Some(jwks_uri.to_owned()))
}

/// A publisher bankgate may not reach: the fetch is refused, and it was asked nothing.
#[track_caller]
fn check_not_reached(error: &impl std::fmt::Display, publisher: &Publisher) {
    assert_eq!(
        error.to_string(),
        "the client's jwks_uri could not be fetched: unreachable, or not at a public address"
    );
    assert_eq!(publisher.requests.load(Ordering::SeqCst), 0);
}

fn loopback_keys() -> ClientKeys {
    // The publisher listens on loopback: the development opt-out.
    ClientKeys::new(&Egress::new(true)).unwrap()
}

#[tokio::test]
async fn a_published_set_is_cached_and_fetched_again_for_a_new_kid() {
    let old = ClientKey::generate_es256().unwrap();
    let new = ClientKey::generate_es256().unwrap();
    let publisher = publisher(old.jwks()).await;
    let client = client(&publisher.uri);
    let keys = loopback_keys().with_intervals(MAX_AGE, Duration::ZERO);

    for _ in 0..3 {
        let set = keys.for_client(&client, Some(&old.kid)).await.unwrap();
        assert!(set.find(Some(&old.kid)).is_some());
    }
    assert_eq!(publisher.requests.load(Ordering::SeqCst), 1, "cached");

    // The client rotates: publishes the new key and signs with it.
    *publisher.published.lock().unwrap() = new.jwks();
    let set = keys.for_client(&client, Some(&new.kid)).await.unwrap();
    assert!(set.find(Some(&new.kid)).is_some());
    assert!(set.find(Some(&old.kid)).is_none(), "the old key is gone");
    assert_eq!(publisher.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unknown_kids_do_not_fetch_more_often_than_allowed() {
    let key = ClientKey::generate_es256().unwrap();
    let publisher = publisher(key.jwks()).await;
    let client = client(&publisher.uri);
    let keys = loopback_keys().with_intervals(MAX_AGE, Duration::from_secs(3600));
    keys.for_client(&client, Some(&key.kid)).await.unwrap();
    assert_eq!(publisher.requests.load(Ordering::SeqCst), 1);
    // An attacker names kid after kid: one fetch for the first (the client may have rotated),
    // then the cached set answers (without those kids).
    for n in 0..20 {
        let set = keys
            .for_client(&client, Some(&format!("made-up-{n}")))
            .await
            .unwrap();
        assert!(set.find(Some(&format!("made-up-{n}"))).is_none());
    }
    assert_eq!(publisher.requests.load(Ordering::SeqCst), 2);
    // Concurrent callers share the first fetch, and the kids it lacks bring one more.
    let fresh = Arc::new(loopback_keys().with_intervals(MAX_AGE, Duration::from_secs(3600)));
    let asks: Vec<_> = (0..16)
        .map(|n| {
            let (fresh, client) = (fresh.clone(), client.clone());
            tokio::spawn(async move { fresh.for_client(&client, Some(&format!("k{n}"))).await })
        })
        .collect();
    for ask in asks {
        ask.await.unwrap().unwrap();
    }
    assert_eq!(
        publisher.requests.load(Ordering::SeqCst),
        4,
        "two fetches per cache"
    );
}

#[tokio::test]
async fn a_private_or_oversized_or_broken_set_is_refused_with_a_reason() {
    let key = ClientKey::generate_es256().unwrap();
    let publisher = publisher(key.jwks()).await;
    // Production's policy: the publisher is on loopback.
    let public_only = ClientKeys::new(&Egress::new(false)).unwrap();
    let error = public_only
        .for_client(&client(&publisher.uri), Some(&key.kid))
        .await
        .unwrap_err();
    check_not_reached(&error, &publisher);

    let keys = loopback_keys().with_intervals(MAX_AGE, Duration::ZERO);
    let huge = serde_json::json!({"keys": [], "padding": "x".repeat(MAX_JWKS_BYTES)});
    for (published, expected) in [
        (huge, "the answer is larger than 64 KiB"),
        (Value::String("nope".into()), "not a usable JWK Set"),
        (serde_json::json!({"keys": []}), "not a usable JWK Set"),
    ] {
        *publisher.published.lock().unwrap() = published;
        let error = keys
            .for_client(&client(&publisher.uri), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error}");
    }
    let missing = client(&publisher.uri.replace("jwks.json", "missing.json"));
    let error = keys.for_client(&missing, None).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the client's jwks_uri could not be fetched: answered HTTP 404"
    );
}

/// Resolves one name to loopback, as a DNS server under an attacker's control would.
struct Rebinding;

impl crate::egress::Lookup for Rebinding {
    fn lookup(
        &self,
        _name: &str,
    ) -> futures_util::future::BoxFuture<'static, std::io::Result<Vec<std::net::IpAddr>>> {
        Box::pin(async { Ok(vec![std::net::IpAddr::from([127, 0, 0, 1])]) })
    }
}

#[tokio::test]
async fn a_public_name_that_resolves_to_loopback_is_not_fetched() {
    let key = ClientKey::generate_es256().unwrap();
    let publisher = publisher(key.jwks()).await;
    let port = publisher.uri.rsplit(':').next().unwrap();
    let keys = ClientKeys::new(&Egress::new(false).with_lookup(Arc::new(Rebinding))).unwrap();
    let rebinding = client(&format!("http://keys.platform.example:{port}/jwks.json"));
    let error = keys
        .for_client(&rebinding, Some(&key.kid))
        .await
        .unwrap_err();
    check_not_reached(&error, &publisher);
}
