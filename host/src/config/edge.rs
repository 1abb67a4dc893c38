//! The client edge: `[limits]`, `[timeouts]`, `[forwarded]` and the `upgrade` key of routes
//! and members — raw form, checked form and the checks, kept together so the rest of the
//! config code only gains one field per section.
//!
//! Names follow httpd and nginx where they have one: `request_line` is httpd's
//! `LimitRequestLine`, `header_fields` its `LimitRequestFields`, `body` its
//! `LimitRequestBody` (0 = no limit); `header`/`body`/`body_min_rate` follow mod_reqtimeout's
//! `RequestReadTimeout header=… body=…,MinRate=…`; `keepalive` is `KeepAliveTimeout`.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::locate::Seg;
use super::units::{DurationValue, SizeValue};
use super::problems::Problems;

/// `[limits]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub request_line: Option<SizeValue>,
    pub header_fields: Option<u32>,
    pub header_size: Option<SizeValue>,
    pub body: Option<SizeValue>,
    pub connections: Option<u32>,
}

/// `[timeouts]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub header: Option<DurationValue>,
    pub keepalive: Option<DurationValue>,
    pub park: Option<DurationValue>,
    pub body: Option<DurationValue>,
    pub body_min_rate: Option<SizeValue>,
}

/// `[forwarded]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwarded {
    pub trusted: Option<Vec<String>>,
}

/// `[limits]`: how big a request may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target, version), in bytes; longer gets 414.
    pub request_line: usize,
    /// Most header fields in a request; more gets 431.
    pub header_fields: usize,
    /// Largest header block (every field line, without the request line); larger gets 431.
    pub header_size: usize,
    /// Largest request body; larger gets 413 (checked on Content-Length before reading, and
    /// while a chunked body streams). `None`: no limit.
    pub body: Option<u64>,
    /// Most client connections open at once, for the whole process; further clients wait in
    /// the listen backlog.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { request_line: 8190, header_fields: 100, header_size: 32 * 1024, body: Some(1 << 30), connections: 10_000 }
    }
}

/// `[timeouts]`: how long the proxy waits for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time to receive a whole request head, from its first byte (from the accept for a
    /// connection's first request). A client that started a head gets 408; one that sent
    /// nothing is closed silently.
    pub header: Duration,
    /// Time an idle keep-alive connection is kept open waiting for the next request.
    pub keepalive: Duration,
    /// Time a plain HTTP/1 keep-alive connection idles before it is parked: held as a bare
    /// socket, without a task, until the client writes. At `keepalive` or more: never.
    pub park: Duration,
    /// Longest the proxy waits for the next bytes of a request body; also the grace period
    /// before `body_min_rate` applies. 408 when exceeded.
    pub body: Duration,
    /// Slowest average body rate accepted, in bytes per second of waiting for the client,
    /// after `body` seconds of grace (mod_reqtimeout's MinRate). 0: no rate check.
    pub body_min_rate: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(20),
            keepalive: Duration::from_secs(60),
            park: Duration::from_millis(100),
            body: Duration::from_secs(20),
            body_min_rate: 500,
        }
    }
}

/// `[forwarded]`: whose X-Forwarded-* and Forwarded headers are believed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarded {
    /// Peers (addresses or CIDR ranges) whose forwarding headers are appended to; from every
    /// other peer they are removed and replaced with the proxy's own.
    pub trusted: Vec<IpNet>,
}

impl Forwarded {
    /// Whether `peer`'s forwarding headers are believed.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|net| net.contains(peer))
    }
}

/// An address range: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address (a single host).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("`{text}` is not an address or a CIDR range such as \"10.0.0.0/8\""))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("`{text}`: the prefix length must be 0..={max}")),
            },
        };
        Ok(Self { addr: addr.to_canonical(), prefix })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// Protocols a route or member may be upgraded to (httpd's `upgrade=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Upgrades {
    /// `websocket`: `Upgrade: websocket` is forwarded and a 101 answer becomes a tunnel.
    pub websocket: bool,
}

impl Upgrades {
    /// Either set's protocols.
    pub fn union(self, other: Upgrades) -> Upgrades {
        Upgrades { websocket: self.websocket || other.websocket }
    }
}

fn key(path: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Key(k.to_string()));
    p
}

/// Checks `[limits]`.
pub(crate) fn limits(raw: &RawLimits, p: &mut Problems) -> Limits {
    let here = [Seg::Key("limits".into())];
    let d = Limits::default();
    let mut size = |name: &str, v: Option<SizeValue>, default: usize, min: u64, max: u64| -> usize {
        let Some(v) = v else { return default };
        if v.0 < min || v.0 > max {
            p.push(&key(&here, name), format!("must be between {min} and {max} bytes, got {}", v.0));
            return default;
        }
        v.0 as usize
    };
    let request_line = size("request_line", raw.request_line, d.request_line, 64, 1 << 20);
    let header_size = size("header_size", raw.header_size, d.header_size, 256, 1 << 20);
    let header_fields = match raw.header_fields {
        None => d.header_fields,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(n) => {
            p.push(&key(&here, "header_fields"), format!("must be between 1 and 10000, got {n}"));
            d.header_fields
        }
    };
    let connections = match raw.connections {
        None => d.connections,
        Some(0) => {
            p.push(&key(&here, "connections"), "must be at least 1");
            d.connections
        }
        Some(n) => n as usize,
    };
    let body = match raw.body {
        None => d.body,
        Some(SizeValue(0)) => None,
        Some(SizeValue(n)) => Some(n),
    };
    Limits { request_line, header_fields, header_size, body, connections }
}

/// The shortest `timeouts.park`: a woken connection must have time to read the bytes that
/// woke it before it could park again.
const MIN_PARK: Duration = Duration::from_millis(10);

/// Checks `[timeouts]`.
pub(crate) fn timeouts(raw: &RawTimeouts, p: &mut Problems) -> Timeouts {
    let here = [Seg::Key("timeouts".into())];
    let d = Timeouts::default();
    let mut at_least = |name: &str, v: Option<DurationValue>, default: Duration, least: Duration, why: &str| -> Duration {
        match v {
            None => default,
            Some(v) if v.0 >= least => v.0,
            Some(_) => {
                p.push(&key(&here, name), why);
                default
            }
        }
    };
    const POSITIVE: &str = "must be at least 1ms";
    let one_ms = Duration::from_millis(1);
    Timeouts {
        header: at_least("header", raw.header, d.header, one_ms, POSITIVE),
        keepalive: at_least("keepalive", raw.keepalive, d.keepalive, one_ms, POSITIVE),
        park: at_least("park", raw.park, d.park, MIN_PARK, "must be at least 10ms (set it to `keepalive` or more to never park)"),
        body: at_least("body", raw.body, d.body, one_ms, POSITIVE),
        body_min_rate: raw.body_min_rate.map_or(d.body_min_rate, |r| r.0),
    }
}

/// Checks `[forwarded]`.
pub(crate) fn forwarded(raw: &RawForwarded, p: &mut Problems) -> Forwarded {
    let here = key(&[Seg::Key("forwarded".into())], "trusted");
    let mut trusted = Vec::new();
    for (i, text) in raw.trusted.iter().flatten().enumerate() {
        match IpNet::parse(text) {
            Ok(net) => trusted.push(net),
            Err(e) => {
                let mut at = here.clone();
                at.push(Seg::Index(i));
                p.push(&at, e);
            }
        }
    }
    Forwarded { trusted }
}

/// Checks an `upgrade = ["websocket"]` list at `here`.
pub(crate) fn upgrades(here: &[Seg], raw: Option<&Vec<String>>, p: &mut Problems) -> Upgrades {
    let mut out = Upgrades::default();
    for (i, name) in raw.into_iter().flatten().enumerate() {
        match name.to_ascii_lowercase().as_str() {
            "websocket" => out.websocket = true,
            other => {
                let mut at = key(here, "upgrade");
                at.push(Seg::Index(i));
                let why = if other == "h2c" { " (h2c upgrades are never forwarded)" } else { "" };
                p.push(&at, format!("unknown upgrade protocol `{name}`: only \"websocket\" is supported{why}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_ranges() {
        let net = IpNet::parse("10.1.0.0/16").expect("valid");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        let host = IpNet::parse("127.0.0.1").expect("valid");
        assert!(host.contains("127.0.0.1".parse().expect("ip")));
        assert!(!host.contains("127.0.0.2".parse().expect("ip")));
        let odd = IpNet::parse("192.168.0.128/25").expect("valid");
        assert!(odd.contains("192.168.0.200".parse().expect("ip")));
        assert!(!odd.contains("192.168.0.127".parse().expect("ip")));
        assert!(IpNet::parse("::/0").expect("valid").contains("2001:db8::1".parse().expect("ip")));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("ten").is_err());
        let f = Forwarded { trusted: vec![IpNet::parse("127.0.0.1").expect("valid")] };
        assert!(f.trusts("::ffff:127.0.0.1".parse().expect("ip")), "v4-mapped v6 peers match v4 ranges");
    }
}
