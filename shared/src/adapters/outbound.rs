//! Where calendar requests may go: the outbound URL policy.
//!
//! A resource's calendar URL is written by an admin, and the calendar writer
//! sends requests (with the resource's credentials) to it from inside AWS.
//! Without a policy, a URL naming `http://169.254.169.254/`, a VPC address or
//! a name that resolves to one turns the writer into a proxy into the
//! network it runs in (SSRF). The policy is applied twice:
//! - when a resource is saved (`PUT /v1/resources/{id}`,
//!   [`OutboundPolicy::check_resolved`]): the scheme, an IP-literal host, and
//!   every address the host name resolves to now;
//! - on every connection the calendar clients make ([`http::client`](super::http::client)):
//!   a resolver ([`PolicyResolver`]) that drops refused addresses from every
//!   lookup (so a name that changes its answer later, DNS rebinding included,
//!   still cannot reach them), and a check of the scheme and IP-literal hosts
//!   before every request and redirect ([`OutboundPolicy::check_url`]),
//!   since the HTTP client connects to an IP literal without asking the
//!   resolver. The clients use no proxy, so the resolver sees every name.
//!
//! Two modes ([`OutboundMode`]), from `SLOTGUARD_OUTBOUND`:
//! - `strict` (the default, and what the template deploys): `https` only, to
//!   public unicast addresses only;
//! - `local` (the local stack, the tests): also `http`, and loopback.
//!
//! No mode ever allows link-local (169.254.0.0/16 with the metadata service,
//! fe80::/10), private (10/8, 172.16/12, 192.168/16, fc00::/7), shared
//! CGNAT (100.64/10), unspecified, multicast, broadcast, documentation or
//! other reserved addresses, in IPv4 or any IPv6 form that embeds one
//! (`::ffff:10.0.0.1`, `64:ff9b::a00:1`). The one exception is an explicit
//! list of addresses (`SLOTGUARD_OUTBOUND_ALLOW`) the operator configures,
//! for a calendar server inside their own network or the Docker gateway of
//! `sam local`; it may name private, CGNAT or loopback addresses, never a
//! link-local, metadata, unspecified, multicast or reserved one.

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long a save waits for the calendar host's name to resolve.
const PUT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What an address is, as far as outbound requests are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally routable unicast: where hosted calendars live.
    Public,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) and IPv6 unique local (fc00::/7).
    Private,
    /// 100.64.0.0/10, carrier-grade NAT (RFC 6598).
    SharedCgnat,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// An instance metadata service: 169.254.169.254, 169.254.170.2 (ECS
    /// task metadata), fd00:ec2::254.
    Metadata,
    /// 0.0.0.0/8, `::`.
    Unspecified,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// Everything else that is not public: broadcast, documentation,
    /// benchmarking, 240/4, IETF protocol assignments, 6to4, Teredo,
    /// IPv4-compatible IPv6, IPv6 outside 2000::/3.
    Reserved,
}

impl AddressClass {
    /// Classifies an address. IPv6 forms that embed an IPv4 address
    /// (`::ffff:a.b.c.d`, the NAT64 prefix `64:ff9b::/96`) are classified
    /// by that address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => Self::of_v6(v6),
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets();
        match (a, b, c, d) {
            (169, 254, 169, 254) | (169, 254, 170, 2) => Self::Metadata,
            (0, ..) => Self::Unspecified,
            (127, ..) => Self::Loopback,
            (10, ..) | (172, 16..=31, ..) | (192, 168, ..) => Self::Private,
            (100, 64..=127, ..) => Self::SharedCgnat,
            (169, 254, ..) => Self::LinkLocal,
            (224..=239, ..) => Self::Multicast,
            // IETF protocol assignments, TEST-NET-1/2/3, 6to4 relay anycast,
            // benchmarking, 240/4 and the broadcast address.
            (192, 0, 0 | 2, _) | (198, 51, 100, _) | (203, 0, 113, _) | (192, 88, 99, _) | (198, 18..=19, ..) => {
                Self::Reserved
            }
            (240..=255, ..) => Self::Reserved,
            _ => Self::Public,
        }
    }

    fn of_v6(ip: Ipv6Addr) -> Self {
        if let Some(v4) = ip.to_ipv4_mapped() {
            return Self::of_v4(v4);
        }
        let s = ip.segments();
        // The NAT64 well-known prefix reaches the IPv4 address it embeds.
        if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            let [a, b] = s[6].to_be_bytes();
            let [c, d] = s[7].to_be_bytes();
            return Self::of_v4(Ipv4Addr::new(a, b, c, d));
        }
        if ip.is_unspecified() {
            return Self::Unspecified;
        }
        if ip.is_loopback() {
            return Self::Loopback;
        }
        if s == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254] {
            return Self::Metadata;
        }
        match s[0] {
            0xfc00..=0xfdff => Self::Private,
            0xfe80..=0xfebf => Self::LinkLocal,
            0xff00..=0xffff => Self::Multicast,
            // 2001::/23 (IETF protocol assignments: Teredo, documentation
            // 2001:db8::/32, ORCHID...), 6to4 (2002::/16), documentation
            // 3fff::/20, SRv6 SIDs 5f00::/16.
            0x2001 if s[1] < 0x0200 || s[1] == 0x0db8 => Self::Reserved,
            0x2002 => Self::Reserved,
            0x3fff if s[1] < 0x1000 => Self::Reserved,
            0x2000..=0x3fff => Self::Public,
            // Everything outside global unicast: IPv4-compatible (::/96),
            // discard-only (100::/64), site-local (fec0::/10), unassigned.
            _ => Self::Reserved,
        }
    }

    /// How a refusal names the class.
    fn describe(self) -> &'static str {
        match self {
            Self::Public => "a public address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private network address",
            Self::SharedCgnat => "a shared (carrier-grade NAT) address",
            Self::LinkLocal => "a link-local address",
            Self::Metadata => "an instance metadata service address",
            Self::Unspecified => "an unspecified address",
            Self::Multicast => "a multicast address",
            Self::Reserved => "a reserved or special-purpose address",
        }
    }
}

/// Which destinations the calendar clients may reach (module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutboundMode {
    /// `https` to public unicast addresses only: every deployed stack.
    #[default]
    Strict,
    /// Also plain `http` and loopback: the local stack and the tests.
    Local,
}

/// A request the policy refuses, with the reason. Also the error the
/// calendar clients' resolver returns, so a refused connection can be told
/// from a network failure ([`is_refusal`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutboundRefused(pub String);

/// Whether `err` or one of its sources is an [`OutboundRefused`].
pub fn is_refusal(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<OutboundRefused>().is_some() {
            return true;
        }
        current = e.source();
    }
    false
}

/// The outbound URL policy: a mode, and the operator's explicit exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    mode: OutboundMode,
    also_allowed: Vec<IpAddr>,
}

impl OutboundPolicy {
    /// `https` to public addresses only.
    pub fn strict() -> Self {
        Self { mode: OutboundMode::Strict, also_allowed: Vec::new() }
    }

    /// Also `http`, and loopback.
    pub fn local() -> Self {
        Self { mode: OutboundMode::Local, also_allowed: Vec::new() }
    }

    /// The policy `SLOTGUARD_OUTBOUND` (`strict`, `local`; empty: strict) and
    /// `SLOTGUARD_OUTBOUND_ALLOW` (comma-separated IP addresses) describe.
    pub fn parse(mode: &str, allow: &str) -> Result<Self, String> {
        let mode = match mode.trim().to_ascii_lowercase().as_str() {
            "" | "strict" => OutboundMode::Strict,
            "local" => OutboundMode::Local,
            other => return Err(format!("SLOTGUARD_OUTBOUND must be strict or local, not {other:?}")),
        };
        let mut policy = Self { mode, also_allowed: Vec::new() };
        for entry in allow.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let ip: IpAddr = entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("SLOTGUARD_OUTBOUND_ALLOW: {entry:?} is not an IP address"))?;
            policy = policy.allowing(ip)?;
        }
        Ok(policy)
    }

    /// Also allows `ip`, which must be a private, CGNAT or loopback address:
    /// link-local, metadata, unspecified, multicast and reserved addresses
    /// cannot be allowed (public ones need no exception).
    pub fn allowing(mut self, ip: IpAddr) -> Result<Self, String> {
        let ip = canonical(ip);
        match AddressClass::of(ip) {
            AddressClass::Private | AddressClass::SharedCgnat | AddressClass::Loopback => {
                self.also_allowed.push(ip);
                Ok(self)
            }
            class => Err(format!("SLOTGUARD_OUTBOUND_ALLOW: {ip} is {} and cannot be allowed", class.describe())),
        }
    }

    pub fn mode(&self) -> OutboundMode {
        self.mode
    }

    /// Whether requests may go to `ip`; the error says why not.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), OutboundRefused> {
        let ip = canonical(ip);
        if self.also_allowed.contains(&ip) {
            return Ok(());
        }
        match AddressClass::of(ip) {
            AddressClass::Public => Ok(()),
            AddressClass::Loopback if self.mode == OutboundMode::Local => Ok(()),
            class => Err(OutboundRefused(format!("{ip} is {}", class.describe()))),
        }
    }

    /// Whether requests may use `scheme`.
    pub fn check_scheme(&self, scheme: &str) -> Result<(), OutboundRefused> {
        match (scheme, self.mode) {
            ("https", _) | ("http", OutboundMode::Local) => Ok(()),
            ("http", OutboundMode::Strict) => Err(OutboundRefused("plain http is refused: use https".into())),
            (other, _) => Err(OutboundRefused(format!("{other}: is not an http(s) URL"))),
        }
    }

    /// What can be checked of `url` without a lookup: the scheme, the
    /// absence of credentials in the URL, and an IP-literal host. Host
    /// names are checked by [`PolicyResolver`] at connect time.
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundRefused> {
        self.check_scheme(url.scheme())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundRefused("credentials do not belong in the URL: name a secret in credentials".into()));
        }
        match host(url)? {
            Host::Ip(ip) => self.check_ip(ip),
            Host::Name(_) => Ok(()),
        }
    }

    /// [`check_url`](Self::check_url), and for a host name, every address
    /// it resolves to now: one refused address refuses the URL (the admin
    /// hears about it at once; at connect time the resolver would only drop
    /// it), and so does a name that does not resolve (almost always a typo;
    /// a save is cheap to repeat if DNS was down).
    pub async fn check_resolved(&self, url: &Url) -> Result<(), OutboundRefused> {
        self.check_url(url)?;
        let Host::Name(host) = host(url)? else { return Ok(()) };
        let lookup = tokio::time::timeout(PUT_LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await;
        let addrs: Vec<SocketAddr> = match lookup {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(_)) | Err(_) => Vec::new(),
        };
        if addrs.is_empty() {
            return Err(OutboundRefused(format!("the host {host} does not resolve")));
        }
        for addr in addrs {
            self.check_ip(addr.ip()).map_err(|e| OutboundRefused(format!("the host {host} resolves to {e}")))?;
        }
        Ok(())
    }
}

/// A URL's host: an address, or a name to look up.
enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// The host of `url`. The URL parser has already read every IPv4 spelling
/// (`2130706433`, `0x7f.1`, `127.1`) as the address it means and written it
/// out in dotted decimal, and an IPv6 literal in brackets.
fn host(url: &Url) -> Result<Host<'_>, OutboundRefused> {
    let text = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| OutboundRefused("the URL has no host".into()))?;
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    Ok(bare.parse().map_or(Host::Name(text), Host::Ip))
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so a mapped address matches its IPv4 form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The calendar clients' resolver: the system's (`getaddrinfo`, as the HTTP
/// client's default), keeping only the addresses the policy allows. A name
/// left with none fails to connect with an [`OutboundRefused`].
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: OutboundPolicy,
}

impl PolicyResolver {
    pub fn new(policy: OutboundPolicy) -> Self {
        Self { policy }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match policy.check_ip(addr.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refused.map_or_else(|| "no addresses".to_owned(), |e| e.0);
                let err = OutboundRefused(format!("refusing to connect to {host}: it resolves to {why}"));
                return Err(Box::new(err) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl fmt::Display for OutboundMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Strict => "strict",
            Self::Local => "local",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressClass::*;

    fn class(ip: &str) -> AddressClass {
        AddressClass::of(ip.parse().unwrap())
    }

    #[test]
    fn ipv4_addresses_are_classified_at_the_edges_of_their_ranges() {
        let cases = [
            ("0.0.0.0", Unspecified),
            ("0.255.255.255", Unspecified),
            ("1.1.1.1", Public),
            ("9.255.255.255", Public),
            ("10.0.0.0", Private),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("11.0.0.0", Public),
            ("100.63.255.255", Public),
            ("100.64.0.0", SharedCgnat),
            ("100.100.100.200", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("100.128.0.0", Public),
            ("126.255.255.255", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("128.0.0.0", Public),
            ("169.253.255.255", Public),
            ("169.254.0.1", LinkLocal),
            ("169.254.169.254", Metadata),
            ("169.254.170.2", Metadata),
            ("169.254.255.255", LinkLocal),
            ("169.255.0.0", Public),
            ("172.15.255.255", Public),
            ("172.16.0.0", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Public),
            ("192.0.0.8", Reserved),
            ("192.0.1.1", Public),
            ("192.0.2.1", Reserved),
            ("192.88.99.1", Reserved),
            ("192.167.255.255", Public),
            ("192.168.0.1", Private),
            ("192.168.255.255", Private),
            ("192.169.0.0", Public),
            ("198.17.255.255", Public),
            ("198.18.0.0", Reserved),
            ("198.19.255.255", Reserved),
            ("198.20.0.0", Public),
            ("198.51.100.7", Reserved),
            ("203.0.113.9", Reserved),
            ("223.255.255.255", Public),
            ("224.0.0.1", Multicast),
            ("239.255.255.255", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.255", Reserved),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_addresses_and_the_ipv4_they_embed_are_classified() {
        let cases = [
            ("::", Unspecified),
            ("::1", Loopback),
            ("::2", Reserved),
            // IPv4-mapped: classified as the IPv4 address.
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", Metadata),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:8.8.8.8", Public),
            // IPv4-compatible (deprecated): never reached.
            ("::10.0.0.1", Reserved),
            ("::8.8.8.8", Reserved),
            // NAT64 well-known prefix: the embedded IPv4 address.
            ("64:ff9b::a00:1", Private),
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("64:ff9b::808:808", Public),
            ("64:ff9b:1::1", Reserved),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("2001:1ff:ffff::1", Reserved),
            ("2001:200::1", Public),
            ("2001:db8::1", Reserved),
            ("2002:a00:1::1", Reserved),
            ("2606:4700:4700::1111", Public),
            ("2a00:1450:4001:80b::200e", Public),
            ("3ffe::1", Public),
            ("3fff::1", Reserved),
            ("3fff:fff::1", Reserved),
            ("3fff:1000::1", Public),
            ("4000::1", Reserved),
            ("5f00::1", Reserved),
            ("fbff::1", Reserved),
            ("fc00::1", Private),
            ("fd00:ec2::254", Metadata),
            ("fd00:ec2::253", Private),
            ("fdff:ffff::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Reserved),
            ("ff02::1", Multicast),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn strict_allows_https_to_public_addresses_only() {
        let strict = OutboundPolicy::strict();
        assert!(strict.check_url(&url("https://93.184.215.14/dav/")).is_ok());
        assert!(strict.check_url(&url("https://[2606:4700::1]/dav/")).is_ok());
        assert!(strict.check_url(&url("https://caldav.example.com/dav/")).is_ok(), "names are checked on lookup");
        for refused in [
            "http://93.184.215.14/dav/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::ffff:a00:1]/",
            "https://[fd00:ec2::254]/",
            "https://0.0.0.0/",
            "https://100.64.0.1/",
            "ftp://93.184.215.14/",
        ] {
            assert!(strict.check_url(&url(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn ip_literals_in_any_spelling_are_read_as_their_address() {
        // The URL parser reads these the way browsers and HTTP clients do.
        let local = OutboundPolicy::local();
        for spelling in ["http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://017700000001/"] {
            assert!(local.check_url(&url(spelling)).is_ok(), "{spelling} is loopback");
            assert!(OutboundPolicy::strict().check_url(&url(spelling)).is_err(), "{spelling}");
        }
        for spelling in ["http://0xa9fea9fe/", "http://169.254.43518/", "http://0251.0376.0251.0376/"] {
            let err = local.check_url(&url(spelling)).unwrap_err();
            assert!(err.0.contains("metadata"), "{spelling}: {err}");
        }
    }

    #[test]
    fn local_adds_http_and_loopback_and_nothing_else() {
        let local = OutboundPolicy::local();
        for allowed in
            ["http://127.0.0.1:5232/user/", "http://[::1]:5232/", "http://[::ffff:127.0.0.1]/", "https://8.8.8.8/"]
        {
            assert!(local.check_url(&url(allowed)).is_ok(), "{allowed}");
        }
        for refused in [
            "http://169.254.169.254/",
            "http://10.0.0.1/",
            "http://[::ffff:10.0.0.1]/",
            "http://172.17.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[fc00::1]/",
            "http://224.0.0.1/",
            "http://[ff02::1]/",
        ] {
            assert!(local.check_url(&url(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        let err = OutboundPolicy::local().check_url(&url("http://ada:pw@127.0.0.1/")).unwrap_err();
        assert!(err.0.contains("credentials"), "{err}");
        assert!(OutboundPolicy::local().check_url(&url("http://ada@127.0.0.1/")).is_err());
    }

    #[test]
    fn the_policy_reads_its_settings_and_allows_only_private_exceptions() {
        assert_eq!(OutboundPolicy::parse("", "").unwrap(), OutboundPolicy::strict());
        assert_eq!(OutboundPolicy::parse("LOCAL", " ").unwrap(), OutboundPolicy::local());
        assert!(OutboundPolicy::parse("off", "").is_err());
        let policy = OutboundPolicy::parse("local", "172.18.0.1, [fd12::1]").unwrap();
        assert!(policy.check_url(&url("http://172.18.0.1:15232/user/")).is_ok());
        assert!(policy.check_url(&url("http://[::ffff:172.18.0.1]/")).is_ok(), "the mapped form too");
        assert!(policy.check_url(&url("http://[fd12::1]/")).is_ok());
        assert!(policy.check_url(&url("http://172.18.0.2/")).is_err(), "only the address named");
        assert!(policy.check_url(&url("http://10.0.0.1/")).is_err());
        for never in ["169.254.169.254", "169.254.1.1", "fd00:ec2::254", "0.0.0.0", "224.0.0.1", "192.0.2.1", "x"] {
            assert!(OutboundPolicy::parse("local", never).is_err(), "{never}");
        }
        let strict = OutboundPolicy::parse("strict", "10.1.2.3").unwrap();
        assert!(strict.check_url(&url("https://10.1.2.3/")).is_ok());
        assert!(strict.check_url(&url("http://10.1.2.3/")).is_err(), "strict keeps https");
    }

    #[tokio::test]
    async fn a_save_resolves_the_name_and_refuses_refused_addresses() {
        let strict = OutboundPolicy::strict();
        let err = strict.check_resolved(&url("https://localhost:8443/dav/")).await.unwrap_err();
        assert!(err.0.contains("localhost resolves to") && err.0.contains("loopback"), "{err}");
        assert!(OutboundPolicy::local().check_resolved(&url("http://localhost:5232/")).await.is_ok());
        let err = strict.check_resolved(&url("https://no-such-host.invalid/")).await.unwrap_err();
        assert!(err.0.contains("does not resolve"), "{err}");
        assert!(strict.check_resolved(&url("https://10.0.0.1/")).await.is_err());
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses_and_fails_when_none_is_left() {
        let strict = PolicyResolver::new(OutboundPolicy::strict());
        let err = strict.resolve("localhost".parse().unwrap()).await.err().expect("refused");
        assert!(is_refusal(err.as_ref()), "{err}");
        assert!(err.to_string().contains("refusing to connect to localhost"), "{err}");
        let local = PolicyResolver::new(OutboundPolicy::local());
        let addrs: Vec<SocketAddr> = local.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
