//! One probe: a connect (with the TLS handshake for an https member), or an HTTP/1.x request
//! on a fresh connection whose response head and the first bytes of its body are read — all
//! within one timeout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use switchyard_sdk::rules;

use super::{HttpProbe, HttpResponse, MAX_BODY, Outcome, Probe, Target};
use crate::tls::{MemberConnector, MemberStream};

/// Largest response head a probe accepts.
const MAX_HEAD: usize = 64 * 1024;
/// Most response headers a probe accepts.
const MAX_HEADERS: usize = 128;

/// Sends `probe` to `target`; every failure is an [`Outcome::Failed`] saying what happened.
pub(crate) async fn run(target: &Target, probe: &Probe, timeout: Duration, tls: Option<&MemberConnector>) -> Outcome {
    if let Probe::Http(http) = probe
        && let Err(why) = check(http)
    {
        return Outcome::Failed(format!("the health check asked for an invalid probe: {why}"));
    }
    match tokio::time::timeout(timeout, exchange(target, probe, tls)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failed(format!("no answer within {timeout:?}")),
    }
}

async fn exchange(target: &Target, probe: &Probe, tls: Option<&MemberConnector>) -> Outcome {
    let tcp = match TcpStream::connect((target.host.as_str(), target.port)).await {
        Ok(stream) => stream,
        Err(e) => return Outcome::Failed(format!("connect to {}:{} failed: {e}", target.host, target.port)),
    };
    let _ = tcp.set_nodelay(true);
    let mut stream = match tls {
        None => MemberStream::Plain(tcp),
        Some(tls) => match tls.connect(tcp).await {
            Ok(stream) => MemberStream::Tls(Box::new(stream)),
            Err(e) => return Outcome::Failed(format!("TLS with {}:{} failed: {e}", target.host, target.port)),
        },
    };
    let Probe::Http(http) = probe else { return Outcome::Connected };
    let head = request_head(target, http, tls.is_some());
    let sent = async {
        stream.write_all(&head).await?;
        stream.flush().await
    };
    if let Err(e) = sent.await {
        return Outcome::Failed(format!("sending the probe failed: {e}"));
    }
    match read_response(&mut stream, http).await {
        Ok(response) => Outcome::Response(response),
        Err(why) => Outcome::Failed(why),
    }
}

/// Refuses what the host would not send: the WIT contract's rules, as the SDK's test harness
/// applies them.
fn check(http: &HttpProbe) -> Result<(), String> {
    rules::check_method(&http.method)?;
    rules::check_origin_form(&http.path)?;
    for (name, value) in &http.headers {
        rules::check_probe_header(name, value)?;
    }
    Ok(())
}

fn request_head(target: &Target, http: &HttpProbe, https: bool) -> Vec<u8> {
    let version = if http.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let default_port = if https { 443 } else { 80 };
    let host = if target.port == default_port { target.host.clone() } else { format!("{}:{}", target.host, target.port) };
    let mut head = format!("{} {} {version}\r\nhost: {host}\r\n", http.method, http.path);
    for (name, value) in &http.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    head.into_bytes()
}

/// Reads the response head and up to `body_limit` bytes of the body.
async fn read_response(stream: &mut MemberStream, http: &HttpProbe) -> Result<HttpResponse, String> {
    let mut buf = Vec::with_capacity(4096);
    let (status, headers, head_len) = loop {
        if read_more(stream, &mut buf).await? == 0 {
            return Err(if buf.is_empty() { "the member closed the connection without answering".into() } else { "the member closed the connection in the middle of the response head".into() });
        }
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut slots);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = response.code.unwrap_or(0);
                if (100..200).contains(&status) {
                    // An interim answer: skip it and read the real one.
                    buf.drain(..len);
                    continue;
                }
                let headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                break (status, headers, len);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err("the response head is too large".into()),
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("the answer is not HTTP: {e}")),
        }
    };
    check_framing(&headers)?;
    let limit = http.body_limit.min(MAX_BODY) as usize;
    let no_body = http.method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304;
    let body = if limit == 0 || no_body { Vec::new() } else { read_body(stream, buf.split_off(head_len), &headers, limit).await };
    Ok(HttpResponse { status, headers, body })
}

/// The framing rules the proxy holds member answers to (`upstream/response.rs`): a
/// Transfer-Encoding is exactly `chunked`, and never beside a Content-Length. A probe answered
/// otherwise fails, as a request answered so would get a 502.
fn check_framing(headers: &[(String, String)]) -> Result<(), String> {
    let te: Vec<&str> = headers.iter().filter(|(n, _)| n == "transfer-encoding").map(|(_, v)| v.trim()).collect();
    let has_length = headers.iter().any(|(n, _)| n == "content-length");
    match te.as_slice() {
        [] => Ok(()),
        [one] if one.eq_ignore_ascii_case("chunked") && !has_length => Ok(()),
        [_] if has_length => Err("the answer has both Content-Length and Transfer-Encoding".into()),
        _ => Err(format!("the answer's Transfer-Encoding is not exactly chunked: {}", te.join(", "))),
    }
}

/// Up to `limit` body bytes, decoding chunked framing. A body cut short is judged on what
/// arrived: a probe reads a prefix, and the response has already been received.
async fn read_body(stream: &mut MemberStream, mut raw: Vec<u8>, headers: &[(String, String)], limit: usize) -> Vec<u8> {
    // `check_framing` let through only exactly `chunked`.
    let chunked = headers.iter().any(|(n, _)| n == "transfer-encoding");
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.trim().parse::<usize>().ok());
    let wanted = length.map_or(limit, |l| l.min(limit));
    loop {
        let decoded = if chunked { dechunk(&raw, limit) } else { Decoded { data: raw.clone(), done: raw.len() >= wanted } };
        if decoded.done || decoded.data.len() >= limit || (!chunked && raw.len() >= wanted) {
            let mut data = decoded.data;
            data.truncate(if chunked { limit } else { wanted });
            return data;
        }
        match read_more(stream, &mut raw).await {
            Ok(n) if n > 0 => {}
            _ => {
                let mut data = decoded.data;
                data.truncate(limit);
                return data;
            }
        }
    }
}

/// What a chunked body's bytes so far decode to.
struct Decoded {
    data: Vec<u8>,
    /// The last chunk was seen, or `limit` bytes are decoded.
    done: bool,
}

fn dechunk(raw: &[u8], limit: usize) -> Decoded {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = raw[at..].windows(2).position(|w| w == b"\r\n") else { return Decoded { data, done: false } };
        let line = &raw[at..at + line_end];
        let digits = line.split(|&b| b == b';').next().unwrap_or_default();
        let Some(size) = std::str::from_utf8(digits).ok().and_then(|d| usize::from_str_radix(d.trim(), 16).ok()) else {
            // Not valid chunking: judge what was decoded.
            return Decoded { data, done: true };
        };
        if size == 0 {
            return Decoded { data, done: true };
        }
        let start = at + line_end + 2;
        let available = raw.len().saturating_sub(start).min(size);
        data.extend_from_slice(&raw[start..start + available]);
        if data.len() >= limit {
            return Decoded { data, done: true };
        }
        if available < size || raw.len() < start + size + 2 {
            return Decoded { data, done: false };
        }
        at = start + size + 2;
    }
}

async fn read_more(stream: &mut MemberStream, buf: &mut Vec<u8>) -> Result<usize, String> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await.map_err(|e| format!("reading the answer failed: {e}"))?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(method: &str, path: &str, headers: &[(&str, &str)]) -> HttpProbe {
        HttpProbe {
            method: method.into(),
            path: path.into(),
            http10: false,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body_limit: 0,
        }
    }

    #[test]
    fn probes_the_host_would_not_send_are_refused() {
        assert!(check(&http("GET", "/health", &[("x-probe", "1")])).is_ok());
        assert!(check(&http("", "/", &[])).is_err());
        assert!(check(&http("GE T", "/", &[])).is_err());
        assert!(check(&http("GET", "health", &[])).is_err());
        assert!(check(&http("GET", "/a b", &[])).is_err());
        assert!(check(&http("GET", "/", &[("Host", "x")])).is_err());
        assert!(check(&http("GET", "/", &[("content-length", "1")])).is_err());
        assert!(check(&http("GET", "/", &[("x", "a\r\nb: c")])).is_err());
    }

    #[test]
    fn framing_is_checked_as_for_requests() {
        let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>();
        assert!(check_framing(&h(&[("transfer-encoding", "Chunked")])).is_ok());
        assert!(check_framing(&h(&[("content-length", "2")])).is_ok());
        assert!(check_framing(&h(&[("transfer-encoding", "gzip, chunked")])).is_err());
        assert!(check_framing(&h(&[("transfer-encoding", "xchunked")])).is_err());
        assert!(check_framing(&h(&[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")])).is_err());
        assert!(check_framing(&h(&[("transfer-encoding", "chunked"), ("content-length", "2")])).is_err());
    }

    #[test]
    fn request_heads() {
        let target = Target { url: "http://h:8080/app".into(), host: "h".into(), port: 8080, base_path: "/app".into() };
        let head = String::from_utf8(request_head(&target, &http("HEAD", "/app/health", &[("x-a", "1")]), false)).expect("utf8");
        assert_eq!(head, "HEAD /app/health HTTP/1.1\r\nhost: h:8080\r\nx-a: 1\r\nconnection: close\r\n\r\n");
        let target = Target { url: "https://h/app".into(), host: "h".into(), port: 443, base_path: "/app".into() };
        let head = String::from_utf8(request_head(&target, &http("GET", "/", &[]), true)).expect("utf8");
        assert!(head.contains("\r\nhost: h\r\n"), "no :443 for https: {head}");
    }

    #[test]
    fn chunked_prefixes() {
        let d = dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 100);
        assert_eq!((d.data.as_slice(), d.done), (&b"abcde"[..], true));
        let d = dechunk(b"3\r\nabc\r\n5\r\nde", 100);
        assert_eq!((d.data.as_slice(), d.done), (&b"abcde"[..], false));
        let d = dechunk(b"5\r\nabcde\r\n", 3);
        assert_eq!((&d.data[..3], d.done), (&b"abc"[..], true));
    }
}
