//! The limit on sign-in starts per client address (`sign_in_starts_per_minute`).
//!
//! Starting a sign-in needs no credentials, yet it stores a pending bank authorization and, at
//! a bank that wants PAR, calls the bank. [`StartLimit`] bounds how fast one client address can
//! make bankgate do that: a keyed GCRA limiter (`governor`) allowing a burst of N starts and one
//! more every 60/N seconds, per client. Over it, [`StartLimit::admit`] answers [`Throttled`]
//! with the seconds until the next start would be admitted, before anything is written or sent.
//!
//! - **The client** is the connection's peer address (`http::server` puts it on every request):
//!   an IPv4 address, or the /64 an IPv6 address belongs to (one subscriber's network, usually;
//!   an IPv4 address inside IPv6 counts as the IPv4 one). Behind a reverse proxy or load balancer
//!   every start comes from the proxy's address, so all people behind it share one limit:
//!   raise it accordingly, or turn it off (0) and limit at the proxy.
//! - **No known peer** (only when the service is called in process, never through
//!   `http::server`): such requests share one key of their own. They are limited together,
//!   never exempt.
//! - **Per instance.** The counts are in memory; with several instances a client may start up
//!   to the limit on each.
//! - **Memory.** [`StartLimit::forget_idle`] (governor's `retain_recent`, then
//!   `shrink_to_fit`) drops every client whose starts have all replenished — one that would be
//!   admitted as if it had never started; `Gateway::serve` calls it every [`FORGET_EVERY`],
//!   whatever the maintenance settings. So the limiter holds only the clients that started in
//!   the last few minutes (at most about two minutes and one run after a client's last start).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// How often [`StartLimit::forget_idle`] runs while serving: the window a client's starts
/// replenish in.
pub const FORGET_EVERY: Duration = Duration::from_secs(60);

/// Who a start is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    /// An IPv4 address, or an IPv6 address's /64.
    Address(IpAddr),
    /// A request with no known peer address.
    Unknown,
}

impl Client {
    fn of(peer: Option<IpAddr>) -> Client {
        match peer {
            None => Client::Unknown,
            Some(IpAddr::V4(ip)) => Client::Address(IpAddr::V4(ip)),
            Some(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(ip) => Client::Address(IpAddr::V4(ip)),
                None => {
                    let network = u128::from(ip) & !u128::from(u64::MAX);
                    Client::Address(IpAddr::V6(network.into()))
                }
            },
        }
    }
}

type Limiter<C> =
    RateLimiter<Client, DashMapStateStore<Client>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The sign-in starts each client address may make; `None` inside: no limit.
pub struct StartLimit<C: Clock = DefaultClock> {
    limiter: Option<Limiter<C>>,
}

/// A start refused: the client made as many as it may for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the client's next start would be admitted (at least 1).
    pub retry_after_secs: u64,
}

impl StartLimit {
    /// `per_minute` starts per client address a minute (a burst of that many, then one every
    /// 60/`per_minute` seconds); 0: no limit.
    pub fn per_minute(per_minute: u32) -> StartLimit {
        StartLimit::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock> StartLimit<C> {
    /// [`StartLimit::per_minute`] on `clock`.
    pub fn with_clock(per_minute: u32, clock: C) -> StartLimit<C> {
        StartLimit {
            limiter: NonZeroU32::new(per_minute)
                .map(|n| RateLimiter::dashmap_with_clock(Quota::per_minute(n), clock)),
        }
    }

    /// Counts a start by `peer` (`None`: no known address), or refuses it.
    pub fn admit(&self, peer: Option<IpAddr>) -> Result<(), Throttled> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&Client::of(peer)).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            Throttled {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }

    /// Forgets the clients whose starts have all replenished (they would be admitted as new).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many clients the limiter holds a state for.
    pub fn clients(&self) -> usize {
        self.limiter.as_ref().map_or(0, |limiter| limiter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_for_the_next_start() {
        let clock = FakeRelativeClock::default();
        let limit = StartLimit::with_clock(3, clock.clone());
        for _ in 0..3 {
            assert_eq!(limit.admit(ip("192.0.2.1")), Ok(()));
        }
        // One start replenishes every 20 s.
        assert_eq!(
            limit.admit(ip("192.0.2.1")),
            Err(Throttled {
                retry_after_secs: 20
            })
        );
        clock.advance(Duration::from_millis(19_500));
        assert_eq!(
            limit.admit(ip("192.0.2.1")),
            Err(Throttled {
                retry_after_secs: 1
            })
        );
        // Another address has its own count.
        assert_eq!(limit.admit(ip("192.0.2.2")), Ok(()));
        clock.advance(Duration::from_millis(500));
        assert_eq!(limit.admit(ip("192.0.2.1")), Ok(()));
        assert!(limit.admit(ip("192.0.2.1")).is_err());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limit = StartLimit::with_clock(1, FakeRelativeClock::default());
        assert_eq!(limit.admit(ip("2001:db8:1:2::1")), Ok(()));
        assert!(limit.admit(ip("2001:db8:1:2:ffff::9")).is_err(), "same /64");
        assert_eq!(limit.admit(ip("2001:db8:1:3::1")), Ok(()), "another /64");
        assert_eq!(limit.admit(ip("198.51.100.7")), Ok(()));
        let mapped = Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped();
        assert!(limit.admit(Some(IpAddr::V6(mapped))).is_err());
        assert_eq!(
            Client::of(Some(IpAddr::V6(Ipv6Addr::LOCALHOST))),
            Client::Address(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        );
    }

    #[test]
    fn requests_without_a_peer_share_one_limit() {
        let limit = StartLimit::with_clock(2, FakeRelativeClock::default());
        assert_eq!(limit.admit(None), Ok(()));
        assert_eq!(limit.admit(None), Ok(()));
        assert!(limit.admit(None).is_err(), "not exempt");
        assert_eq!(limit.admit(ip("192.0.2.1")), Ok(()), "nor anyone's");
    }

    #[test]
    fn zero_is_no_limit() {
        let limit = StartLimit::with_clock(0, FakeRelativeClock::default());
        for _ in 0..1000 {
            assert_eq!(limit.admit(ip("192.0.2.1")), Ok(()));
        }
        assert_eq!(limit.clients(), 0);
    }

    #[test]
    fn idle_clients_are_forgotten_and_busy_ones_kept() {
        let clock = FakeRelativeClock::default();
        let limit = StartLimit::with_clock(2, clock.clone());
        for n in 0..100u8 {
            limit
                .admit(Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))))
                .unwrap();
        }
        assert_eq!(limit.clients(), 100);
        limit.forget_idle();
        assert_eq!(
            limit.clients(),
            100,
            "their starts have not replenished yet"
        );
        clock.advance(Duration::from_secs(61));
        // One client starts again (now busy); the others' one start has replenished.
        limit.admit(ip("10.0.0.1")).unwrap();
        limit.admit(ip("10.0.0.1")).unwrap();
        limit.forget_idle();
        assert_eq!(limit.clients(), 1);
        assert!(limit.admit(ip("10.0.0.1")).is_err(), "its count is kept");
        clock.advance(Duration::from_secs(120));
        limit.forget_idle();
        assert_eq!(limit.clients(), 0);
    }
}
