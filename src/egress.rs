//! Egress: every connection bankgate opens to a host that someone else named — a registered
//! bank's API and authorization server, a platform's `jwks_uri`, a platform's webhook URL —
//! goes to a globally reachable address, or nowhere.
//!
//! One function decides what is global ([`check_ip`]): the IANA IPv4 and IPv6 Special-Purpose
//! Address Registries (RFC 6890 and their updates), multicast, and everything outside IPv6's
//! global unicast space, with IPv4 addresses carried inside IPv6 (IPv4-mapped and -compatible,
//! NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) unwrapped and judged as IPv4. [`check_name`] refuses
//! the names that mean "this machine" or "this network" (`localhost`, `*.localhost`, `*.local`,
//! `*.internal`, `*.home.arpa`, with or without a trailing dot) before any lookup.
//!
//! [`Egress`] applies them three times, so that neither a literal address nor a name whose DNS
//! answer changes (rebinding) gets through:
//! 1. when a URL is registered ([`Egress::check_url`], and [`Egress::check_url_resolved`] which
//!    also resolves the name) — the caller learns at once why;
//! 2. when a name is resolved for a connection: the HTTP clients [`Egress::client_builder`]
//!    makes resolve through [`Egress`] itself, which refuses the name if any address it
//!    resolves to is not global, so no connection is even attempted;
//! 3. when a connection is open: its peer address is checked before a byte of HTTP is written
//!    (a URL with a literal address bypasses name resolution; after TLS, for `https`).
//!
//! The clients follow no redirects and use no proxy (a proxy would resolve the name itself).
//! An operator opts out for a development network (`allow_private_bank_hosts`,
//! `allow_private_platform_hosts`: the embedded default, whose sandboxes and test receivers
//! listen on loopback); the sandbox banks a gateway starts itself are reachable at exactly the
//! address it bound ([`Egress::allowing`]).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use hyper_util::client::legacy::connect::{Connection, HttpInfo};
use ipnet::{Ipv4Net, Ipv6Net};
use tower::{BoxError, Layer, Service};

/// Why an address or name is not one bankgate connects to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// An address from a special-purpose range.
    #[error("{address} is not a public address: {range}")]
    Address { address: IpAddr, range: String },
    /// A name reserved for this machine or a local network.
    #[error("{name} is not a public host name: {reason}")]
    Name { name: String, reason: &'static str },
    /// A name that resolves to an address from a special-purpose range.
    #[error("{name} resolves to {address}, which is not a public address: {range}")]
    Resolved {
        name: String,
        address: IpAddr,
        range: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Classification

/// What a prefix of the registries means here.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Globally reachable (an exception inside a larger special-purpose block).
    Global,
    /// Not globally reachable: the range's name and its reference.
    Special(&'static str),
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, p: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), p)
}

/// The IPv4 Special-Purpose Address Registry, multicast and limited broadcast. The first
/// matching prefix decides, so exceptions precede the blocks that contain them.
const IPV4: &[(Ipv4Net, Verdict)] = &[
    (
        v4(0, 0, 0, 0, 8),
        Verdict::Special("\"this network\" (RFC 791)"),
    ),
    (
        v4(10, 0, 0, 0, 8),
        Verdict::Special("private-use (RFC 1918)"),
    ),
    (
        v4(100, 64, 0, 0, 10),
        Verdict::Special("shared address space (RFC 6598)"),
    ),
    (v4(127, 0, 0, 0, 8), Verdict::Special("loopback (RFC 1122)")),
    (
        v4(169, 254, 0, 0, 16),
        Verdict::Special("link-local (RFC 3927)"),
    ),
    (
        v4(172, 16, 0, 0, 12),
        Verdict::Special("private-use (RFC 1918)"),
    ),
    // PCP and TURN anycast are global; the rest of 192.0.0.0/24 is not.
    (v4(192, 0, 0, 9, 32), Verdict::Global),
    (v4(192, 0, 0, 10, 32), Verdict::Global),
    (
        v4(192, 0, 0, 0, 24),
        Verdict::Special("IETF protocol assignments (RFC 6890)"),
    ),
    (
        v4(192, 0, 2, 0, 24),
        Verdict::Special("documentation, TEST-NET-1 (RFC 5737)"),
    ),
    (
        v4(192, 88, 99, 0, 24),
        Verdict::Special("deprecated 6to4 relay anycast (RFC 7526)"),
    ),
    (
        v4(192, 168, 0, 0, 16),
        Verdict::Special("private-use (RFC 1918)"),
    ),
    (
        v4(198, 18, 0, 0, 15),
        Verdict::Special("benchmarking (RFC 2544)"),
    ),
    (
        v4(198, 51, 100, 0, 24),
        Verdict::Special("documentation, TEST-NET-2 (RFC 5737)"),
    ),
    (
        v4(203, 0, 113, 0, 24),
        Verdict::Special("documentation, TEST-NET-3 (RFC 5737)"),
    ),
    (
        v4(224, 0, 0, 0, 4),
        Verdict::Special("multicast (RFC 5771)"),
    ),
    (
        v4(255, 255, 255, 255, 32),
        Verdict::Special("limited broadcast (RFC 919)"),
    ),
    (v4(240, 0, 0, 0, 4), Verdict::Special("reserved (RFC 1112)")),
];

/// The IPv6 Special-Purpose Address Registry and the non-unicast blocks, for addresses that
/// carry no IPv4 address (those are unwrapped first). The first matching prefix decides.
const IPV6: &[(Ipv6Net, Verdict)] = &[
    (
        v6(0, 0, 0, 0, 0, 0, 0, 0, 128),
        Verdict::Special("unspecified (RFC 4291)"),
    ),
    (
        v6(0, 0, 0, 0, 0, 0, 0, 1, 128),
        Verdict::Special("loopback (RFC 4291)"),
    ),
    (
        v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48),
        Verdict::Special("local-use IPv4/IPv6 translation (RFC 8215)"),
    ),
    (
        v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64),
        Verdict::Special("discard-only (RFC 6666)"),
    ),
    (
        v6(0x100, 0, 0, 1, 0, 0, 0, 0, 64),
        Verdict::Special("dummy prefix (RFC 9780)"),
    ),
    (
        v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32),
        Verdict::Special("Teredo (RFC 4380)"),
    ),
    // Anycast services, AMT, AS112 and ORCHIDv2 inside 2001::/23 are global.
    (v6(0x2001, 1, 0, 0, 0, 0, 0, 1, 128), Verdict::Global),
    (v6(0x2001, 1, 0, 0, 0, 0, 0, 2, 128), Verdict::Global),
    (v6(0x2001, 1, 0, 0, 0, 0, 0, 3, 128), Verdict::Global),
    (v6(0x2001, 3, 0, 0, 0, 0, 0, 0, 32), Verdict::Global),
    (v6(0x2001, 4, 0x112, 0, 0, 0, 0, 0, 48), Verdict::Global),
    (v6(0x2001, 0x20, 0, 0, 0, 0, 0, 0, 28), Verdict::Global),
    (v6(0x2001, 0x30, 0, 0, 0, 0, 0, 0, 28), Verdict::Global),
    (
        v6(0x2001, 2, 0, 0, 0, 0, 0, 0, 48),
        Verdict::Special("benchmarking (RFC 5180)"),
    ),
    (
        v6(0x2001, 0x10, 0, 0, 0, 0, 0, 0, 28),
        Verdict::Special("deprecated ORCHID (RFC 4843)"),
    ),
    (
        v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23),
        Verdict::Special("IETF protocol assignments (RFC 2928)"),
    ),
    (
        v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32),
        Verdict::Special("documentation (RFC 3849)"),
    ),
    (
        v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20),
        Verdict::Special("documentation (RFC 9637)"),
    ),
    (
        v6(0x5f00, 0, 0, 0, 0, 0, 0, 0, 16),
        Verdict::Special("segment routing SIDs (RFC 9602)"),
    ),
    (
        v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7),
        Verdict::Special("unique local (RFC 4193)"),
    ),
    (
        v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10),
        Verdict::Special("link-local (RFC 4291)"),
    ),
    (
        v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10),
        Verdict::Special("deprecated site-local (RFC 3879)"),
    ),
    (
        v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8),
        Verdict::Special("multicast (RFC 4291)"),
    ),
];

/// IPv6's global unicast space (RFC 4291 §2.4); nothing outside it is allocated for it.
const GLOBAL_UNICAST: Ipv6Net = v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3);

/// The IPv4 address an IPv6 address carries, and how: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::a.b.c.d`, RFC 6052) or 6to4
/// (`2002:aabb:ccdd::/48`, RFC 3056).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Ipv4Addr, &'static str)> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some((low, "IPv4-mapped")),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some((low, "IPv4-compatible")),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some((low, "NAT64-translated (RFC 6052)")),
        [0x2002, high, middle, ..] => Some((
            Ipv4Addr::new(
                (high >> 8) as u8,
                high as u8,
                (middle >> 8) as u8,
                middle as u8,
            ),
            "6to4 (RFC 3056)",
        )),
        _ => None,
    }
}

fn check_ipv4(ip: Ipv4Addr) -> Result<(), &'static str> {
    match IPV4.iter().find(|(net, _)| net.contains(&ip)) {
        Some((_, Verdict::Special(range))) => Err(range),
        Some((_, Verdict::Global)) | None => Ok(()),
    }
}

/// Whether `ip` is globally reachable; if not, the special-purpose range it belongs to (for
/// an IPv6 address carrying an IPv4 one, the IPv4 address's range, and how it was carried).
pub fn check_ip(ip: IpAddr) -> Result<(), Refused> {
    let refuse = |range: String| Err(Refused::Address { address: ip, range });
    match ip {
        IpAddr::V4(v4) => check_ipv4(v4).or_else(|range| refuse(range.to_owned())),
        IpAddr::V6(v6) => {
            if let Some((v4, how)) = embedded_ipv4(v6) {
                return check_ipv4(v4).or_else(|range| refuse(format!("{how} {v4}, {range}")));
            }
            match IPV6.iter().find(|(net, _)| net.contains(&v6)) {
                Some((_, Verdict::Special(range))) => refuse((*range).to_owned()),
                Some((_, Verdict::Global)) => Ok(()),
                None if GLOBAL_UNICAST.contains(&v6) => Ok(()),
                None => refuse("outside the global unicast space (RFC 4291)".to_owned()),
            }
        }
    }
}

/// Names that never mean a host on the internet, by suffix (after lowercasing and dropping
/// one trailing dot).
const LOCAL_NAMES: &[(&str, &str)] = &[
    ("localhost", "this machine (RFC 6761)"),
    ("local", "a multicast DNS name on the local link (RFC 6762)"),
    ("home.arpa", "a home network name (RFC 8375)"),
    ("internal", "a private-use name (ICANN, 2024)"),
];

/// Whether a host name may name a host on the internet: not `localhost` nor a name under
/// `.localhost`, `.local`, `.home.arpa` or `.internal` (trailing dot or not, any case).
pub fn check_name(name: &str) -> Result<(), Refused> {
    let normal = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    for (suffix, reason) in LOCAL_NAMES {
        let under = normal
            .strip_suffix(suffix)
            .is_some_and(|head| head.is_empty() || head.ends_with('.'));
        if under {
            return Err(Refused::Name {
                name: name.to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Name resolution

/// Resolves host names to addresses: the system resolver in production ([`SystemLookup`]); a
/// fixed table in tests (a public-looking name that resolves to loopback is the rebinding case).
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `name`.
    fn lookup(&self, name: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`, on tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, name: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let name = name.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((name.as_str(), 0)).await?;
            Ok(addrs.map(|addr| addr.ip()).collect())
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The policy

/// Where bankgate may connect: global addresses only, or (a development network's opt-out)
/// anywhere; plus the exact addresses of sandbox banks this gateway started.
#[derive(Clone)]
pub struct Egress {
    allow_private: bool,
    /// Socket addresses reachable even when private: the sandboxes this gateway bound.
    allowed: Arc<[SocketAddr]>,
    lookup: Arc<dyn Lookup>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("allow_private", &self.allow_private)
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl Egress {
    /// Global addresses only (with `allow_private`, any address), resolving with the system.
    pub fn new(allow_private: bool) -> Egress {
        Egress {
            allow_private,
            allowed: Arc::new([]),
            lookup: Arc::new(SystemLookup),
        }
    }

    /// The same policy resolving names with `lookup`.
    pub fn with_lookup(mut self, lookup: Arc<dyn Lookup>) -> Egress {
        self.lookup = lookup;
        self
    }

    /// The same policy, also reaching exactly `addr` (a sandbox bank this gateway started).
    pub fn allowing(mut self, addr: SocketAddr) -> Egress {
        let mut allowed = self.allowed.to_vec();
        allowed.push(addr);
        self.allowed = allowed.into();
        self
    }

    /// Whether private addresses are allowed (the development opt-out).
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Whether a connection to `peer` may carry a request.
    pub fn check_peer(&self, peer: SocketAddr) -> Result<(), Refused> {
        if self.allow_private || self.allowed.contains(&peer) {
            return Ok(());
        }
        check_ip(peer.ip())
    }

    fn check_resolved(&self, name: &str, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_private || self.allowed.iter().any(|addr| addr.ip() == ip) {
            return Ok(());
        }
        check_ip(ip).map_err(|refused| match refused {
            Refused::Address { address, range } => Refused::Resolved {
                name: name.to_owned(),
                address,
                range,
            },
            other => other,
        })
    }

    /// Whether `url`'s host may be connected to, as written: a literal address must be
    /// global, a name must not be a local one. Nothing is resolved (see
    /// [`Egress::check_url_resolved`]).
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        let port = url.port_or_known_default().unwrap_or(0);
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_peer(SocketAddr::new(ip.into(), port)),
            Some(url::Host::Ipv6(ip)) => self.check_peer(SocketAddr::new(ip.into(), port)),
            Some(url::Host::Domain(name)) if !self.allow_private => check_name(name),
            Some(url::Host::Domain(_)) | None => Ok(()),
        }
    }

    /// [`Egress::check_url`], then the name's addresses now: every one must be global. A
    /// name that does not resolve passes (there is nothing to connect to; a connection is
    /// checked again when it is made).
    pub async fn check_url_resolved(&self, url: &url::Url) -> Result<(), Refused> {
        self.check_url(url)?;
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        let Ok(addresses) = self.lookup.lookup(name).await else {
            return Ok(());
        };
        addresses
            .into_iter()
            .try_for_each(|ip| self.check_resolved(name, ip))
    }

    /// Resolves `name` for a connection: every address must be global.
    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, BoxError> {
        if !self.allow_private {
            check_name(name)?;
        }
        let addresses = self.lookup.lookup(name).await?;
        for ip in &addresses {
            self.check_resolved(name, *ip)?;
        }
        Ok(addresses)
    }

    /// A reqwest client builder whose connections obey this policy: names resolve through it,
    /// every connection's peer is checked, no redirect is followed, no proxy is used. TLS via
    /// aws-lc-rs.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        crate::crypto::install_tls_provider();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(self.clone()))
            .connector_layer(PeerCheckLayer {
                egress: self.clone(),
            })
    }
}

impl reqwest::dns::Resolve for Egress {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.clone();
        Box::pin(async move {
            let addresses = Egress::resolve(&egress, name.as_str()).await?;
            let addrs: reqwest::dns::Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The connection check

/// Checks the peer of every connection the client opens (a layer of reqwest's connector).
#[derive(Clone)]
struct PeerCheckLayer {
    egress: Egress,
}

impl<S> Layer<S> for PeerCheckLayer {
    type Service = PeerCheck<S>;

    fn layer(&self, inner: S) -> PeerCheck<S> {
        PeerCheck {
            inner,
            egress: self.egress.clone(),
        }
    }
}

#[derive(Clone)]
struct PeerCheck<S> {
    inner: S,
    egress: Egress,
}

impl<S, R> Service<R> for PeerCheck<S>
where
    S: Service<R, Error = BoxError>,
    S::Response: Connection + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let connecting = self.inner.call(request);
        let egress = self.egress.clone();
        Box::pin(async move {
            let connection = connecting.await?;
            let mut extensions = http::Extensions::new();
            connection.connected().get_extras(&mut extensions);
            // Without the peer address there is nothing to vouch for: fail closed.
            let peer = extensions
                .get::<HttpInfo>()
                .map(HttpInfo::remote_addr)
                .ok_or("the connection's peer address is unknown")?;
            egress.check_peer(peer)?;
            Ok(connection)
        })
    }
}

#[cfg(test)]
mod tests;
