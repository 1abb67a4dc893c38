//! Formatting an [`Entry`] as one line: an httpd `LogFormat` or a JSON object. Runs on the
//! worker that answered the request, when its answer ends; each thread keeps a renderer of
//! its own.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Version};
use serde::Serialize;

use super::access::Entry;
use crate::config::{AccessFormat, LogItem};

/// Formats entries; keeps the last second's timestamp text.
pub(super) struct Renderer {
    format: AccessFormat,
    /// The Unix second `clf_time` and `iso_time` are for.
    second: u64,
    clf_time: String,
    iso_time: String,
}

impl Renderer {
    pub(super) fn new(format: AccessFormat) -> Self {
        Self { format, second: u64::MAX, clf_time: String::new(), iso_time: String::new() }
    }

    /// Appends `entry`'s line, with its newline, to `out`.
    pub(super) fn render(&mut self, entry: &Entry, out: &mut Vec<u8>) {
        // The wall clock is read once, when the line is made: arrival = now − age.
        let time = SystemTime::now().checked_sub(entry.arrived.elapsed()).unwrap_or(UNIX_EPOCH);
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        if since_epoch.as_secs() != self.second {
            self.second = since_epoch.as_secs();
            let (date, (h, m, s)) = civil(self.second);
            let (year, month, day) = date;
            let name = MONTHS[usize::from(month - 1)];
            self.clf_time = format!("[{day:02}/{name}/{year}:{h:02}:{m:02}:{s:02} +0000]");
            self.iso_time = format!("{year}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
        }
        match &self.format {
            AccessFormat::Text(items) => self.text(items, entry, out),
            AccessFormat::Json => self.json(entry, since_epoch.subsec_millis(), out),
        }
        out.push(b'\n');
    }

    fn text(&self, items: &[LogItem], e: &Entry, out: &mut Vec<u8>) {
        let (mut request_header, mut response_header) = (0, 0);
        let target = e.target.path_and_query().map_or("/", |p| p.as_str());
        let (path, query) = (e.target.path(), e.target.query());
        for item in items {
            // Writing to a Vec cannot fail.
            let _ = match item {
                LogItem::Literal(text) => out.write_all(text.as_bytes()),
                LogItem::ClientIp => {
                    client(out, e.client);
                    Ok(())
                }
                LogItem::Dash => out.write_all(b"-"),
                LogItem::Time => out.write_all(self.clf_time.as_bytes()),
                LogItem::RequestLine => {
                    let _ = escaped(out, e.method.as_str().as_bytes());
                    out.push(b' ');
                    let _ = escaped(out, target.as_bytes());
                    write!(out, " {}", protocol(e.version))
                }
                LogItem::Method => escaped(out, e.method.as_str().as_bytes()),
                LogItem::Path => escaped(out, path.as_bytes()),
                LogItem::Query => match query {
                    Some(q) => {
                        out.push(b'?');
                        escaped(out, q.as_bytes())
                    }
                    None => Ok(()),
                },
                LogItem::Protocol => out.write_all(protocol(e.version).as_bytes()),
                LogItem::Status => number(out, e.status),
                LogItem::BytesClf if e.bytes_out == 0 => out.write_all(b"-"),
                LogItem::BytesClf | LogItem::BytesOut => number(out, e.bytes_out),
                LogItem::BytesIn => number(out, e.bytes_in),
                LogItem::Micros => number(out, e.duration.as_micros()),
                LogItem::Seconds => number(out, e.duration.as_secs()),
                LogItem::RequestId => header_or_dash(out, e.request_id.as_ref()),
                LogItem::RequestHeader(_) => {
                    request_header += 1;
                    header_or_dash(out, e.request_headers.get(request_header - 1).and_then(Option::as_ref))
                }
                LogItem::ResponseHeader(_) => {
                    response_header += 1;
                    header_or_dash(out, e.response_headers.get(response_header - 1).and_then(Option::as_ref))
                }
            };
        }
    }

    fn json(&self, e: &Entry, millis: u32, out: &mut Vec<u8>) {
        let text = |v: Option<&HeaderValue>| v.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let line = JsonLine {
            time: format!("{}.{millis:03}Z", self.iso_time),
            client: e.client.to_string(),
            method: e.method.as_str(),
            target: e.target.path_and_query().map_or("/", |p| p.as_str()),
            protocol: protocol(e.version),
            status: e.status,
            bytes_in: e.bytes_in,
            bytes_out: e.bytes_out,
            duration_us: u64::try_from(e.duration.as_micros()).unwrap_or(u64::MAX),
            member_us: e.member_time.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            route: e.route.as_deref(),
            balancer: e.balancer.as_deref(),
            member: e.member.as_deref(),
            attempts: e.attempts,
            sticky: e.sticky.as_deref(),
            request_id: text(e.request_id.as_ref()),
        };
        if let Err(err) = serde_json::to_writer(&mut *out, &line) {
            tracing::warn!(error = %err, "access log line not encoded");
        }
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    client: String,
    method: &'a str,
    target: &'a str,
    protocol: &'static str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_us: u64,
    member_us: Option<u64>,
    route: Option<&'a str>,
    balancer: Option<&'a str>,
    member: Option<&'a str>,
    attempts: u32,
    sticky: Option<&'a str>,
    request_id: Option<String>,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// A number in decimal (`itoa`: `core::fmt` took four times as long, a line's largest part).
fn number(out: &mut Vec<u8>, n: impl itoa::Integer) -> std::io::Result<()> {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    Ok(())
}

/// The client's address as `Display` writes it; an IPv4 one octet by octet, without
/// `core::fmt`'s padding machinery.
fn client(out: &mut Vec<u8>, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{address}");
        }
    }
}

fn header_or_dash(out: &mut Vec<u8>, value: Option<&HeaderValue>) -> std::io::Result<()> {
    match value {
        Some(v) => escaped(out, v.as_bytes()),
        None => out.write_all(b"-"),
    }
}

/// As httpd writes client-supplied text: `"` and `\` escaped with a backslash, control and
/// non-ASCII bytes as `\xhh`, so a line cannot be forged or broken.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) -> std::io::Result<()> {
    // Most text needs nothing escaped: one copy then.
    if bytes.iter().all(|&b| matches!(b, 0x20..=0x7e) && b != b'"' && b != b'\\') {
        out.extend_from_slice(bytes);
        return Ok(());
    }
    for &b in bytes {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => out.push(b),
            _ => write!(out, "\\x{b:02x}")?,
        }
    }
    Ok(())
}

/// The UTC calendar date and time of day of Unix second `secs` (Howard Hinnant's
/// `civil_from_days`).
fn civil(secs: u64) -> ((i64, u8, u8), (u64, u64, u64)) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (month, day) = (u8::try_from(month).unwrap_or(1), u8::try_from(day).unwrap_or(1));
    ((year, month, day), (rem / 3600, rem % 3600 / 60, rem % 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_read_as_display_writes_them() {
        for address in ["0.0.0.0", "127.0.0.1", "10.20.255.9", "255.255.255.255", "::1", "2001:db8::8:800:200c:417a", "::ffff:1.2.3.4"] {
            let ip: IpAddr = address.parse().expect("address");
            let mut out = Vec::new();
            client(&mut out, ip);
            assert_eq!(String::from_utf8(out).expect("utf-8"), ip.to_string());
        }
        for n in [0u64, 9, 10, 404, 65_536, u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, n).expect("vec");
            assert_eq!(String::from_utf8(out).expect("utf-8"), n.to_string());
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), ((1970, 1, 1), (0, 0, 0)));
        assert_eq!(civil(951_782_400), ((2000, 2, 29), (0, 0, 0)));
        assert_eq!(civil(1_796_517_296), ((2026, 12, 6), (0, 34, 56)));
    }

    #[test]
    fn client_text_cannot_break_a_line() {
        let mut out = Vec::new();
        escaped(&mut out, b"a\"b\\c\nd\xff").expect("a Vec takes it");
        assert_eq!(out, b"a\\\"b\\\\c\\x0ad\\xff");
    }
}
