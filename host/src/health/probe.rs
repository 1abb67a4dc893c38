//! One probe: a connect (the member client's, with the TLS handshake for an https member),
//! or an HTTP/1.x request on a fresh connection whose response head and the first bytes of
//! its body are read by the proxy's own codec — all within one timeout.

use std::time::Duration;

use bytes::BytesMut;
use http::Method;
use http::uri::Authority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use switchyard_sdk::rules;

use super::{HttpProbe, HttpResponse, MAX_BODY, Outcome, Probe, Target};
use crate::codec::body::{BodyDecoder, Decoded, Framing};
use crate::codec::response::{self, Fields, MAX_HEAD_BYTES};
use crate::tls::{MemberConnector, MemberStream};
use crate::upstream;

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
    let authority = match Authority::try_from(format!("{}:{}", target.host, target.port)) {
        Ok(authority) => authority,
        Err(e) => return Outcome::Failed(format!("cannot connect to {}:{}: {e}", target.host, target.port)),
    };
    let mut stream = match upstream::connect(&authority, tls).await {
        Ok(stream) => stream,
        Err(e) => return Outcome::Failed(e.to_string()),
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

/// Reads the response head and up to `body_limit` bytes of the body, by the rules the proxy
/// holds every member answer to ([`codec::response`]): an answer a request would get a 502
/// for fails the probe.
async fn read_response(stream: &mut MemberStream, http: &HttpProbe) -> Result<HttpResponse, String> {
    let method = Method::from_bytes(http.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(4096);
    let head = loop {
        match response::parse_with(&mut buf, &method, true) {
            // An interim answer: skip it and read the real one.
            Ok(Some(head)) if head.status.is_informational() => continue,
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(e) => return Err(format!("the answer is not valid HTTP: {e}")),
        }
        if read_more(stream, &mut buf).await? == 0 {
            return Err(if buf.is_empty() { "the member closed the connection without answering".into() } else { "the member closed the connection in the middle of the response head".into() });
        }
    };
    let headers = match head.fields {
        Fields::Raw(raw) => raw.lines().map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), String::from_utf8_lossy(v).into_owned())).collect(),
        Fields::Map(map) => map.iter().map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
    };
    let limit = http.body_limit.min(MAX_BODY) as usize;
    let body = if limit == 0 { Vec::new() } else { read_body(stream, buf, head.framing, limit).await? };
    Ok(HttpResponse { status: head.status.as_u16(), headers, body })
}

/// Up to `limit` body bytes. A body cut short is judged on what arrived (a probe reads a
/// prefix, and the response has already been received); a malformed one fails the probe.
async fn read_body(stream: &mut MemberStream, mut buf: BytesMut, framing: Framing, limit: usize) -> Result<Vec<u8>, String> {
    let mut decoder = BodyDecoder::new(framing);
    let mut body = Vec::new();
    while body.len() < limit {
        match decoder.decode(&mut buf).map_err(|e| format!("the answer's body is malformed: {e}"))? {
            Decoded::Data(data) => body.extend_from_slice(&data),
            Decoded::Trailers(_) | Decoded::End => break,
            Decoded::NeedMore => match read_more(stream, &mut buf).await {
                Ok(n) if n > 0 => {}
                _ => break,
            },
        }
    }
    body.truncate(limit);
    Ok(body)
}

async fn read_more(stream: &mut MemberStream, buf: &mut BytesMut) -> Result<usize, String> {
    if buf.len() > MAX_HEAD_BYTES + MAX_BODY as usize {
        return Err("the answer is larger than a probe reads".into());
    }
    buf.reserve(4096);
    stream.read_buf(buf).await.map_err(|e| format!("reading the answer failed: {e}"))
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
    fn request_heads() {
        let target = Target { url: "http://h:8080/app".into(), host: "h".into(), port: 8080, base_path: "/app".into() };
        let head = String::from_utf8(request_head(&target, &http("HEAD", "/app/health", &[("x-a", "1")]), false)).expect("utf8");
        assert_eq!(head, "HEAD /app/health HTTP/1.1\r\nhost: h:8080\r\nx-a: 1\r\nconnection: close\r\n\r\n");
        let target = Target { url: "https://h/app".into(), host: "h".into(), port: 443, base_path: "/app".into() };
        let head = String::from_utf8(request_head(&target, &http("GET", "/", &[]), true)).expect("utf8");
        assert!(head.contains("\r\nhost: h\r\n"), "no :443 for https: {head}");
    }

    /// Probes a member on loopback that answers every connection with `answer`.
    async fn probe_answered(answer: &'static [u8], body_limit: u32) -> Outcome {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let member = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request).await;
            let _ = conn.write_all(answer).await;
        });
        let target = Target { url: format!("http://127.0.0.1:{port}"), host: "127.0.0.1".into(), port, base_path: "/".into() };
        let mut get = http("GET", "/health", &[]);
        get.body_limit = body_limit;
        let outcome = run(&target, &Probe::Http(get), Duration::from_secs(5), None).await;
        member.abort();
        outcome
    }

    #[tokio::test]
    async fn answers_are_held_to_the_proxy_framing_rules() {
        let failed = |o: &Outcome, what: &str| matches!(o, Outcome::Failed(why) if why.contains(what));
        let xchunked = probe_answered(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 64).await;
        assert!(failed(&xchunked, "Transfer-Encoding"), "{xchunked:?}");
        let both = probe_answered(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 64).await;
        assert!(failed(&both, "both Content-Length and Transfer-Encoding"), "{both:?}");
        let bad_chunk = probe_answered(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", 64).await;
        assert!(failed(&bad_chunk, "malformed"), "{bad_chunk:?}");
    }

    #[tokio::test]
    async fn bodies_are_decoded_up_to_the_limit() {
        let chunked = probe_answered(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 64).await;
        let Outcome::Response(r) = chunked else { panic!("{chunked:?}") };
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
        assert!(r.headers.contains(&("connection".into(), "close".into())), "the judge sees every line: {:?}", r.headers);
        let prefix = probe_answered(b"HTTP/1.1 503 Busy\r\nContent-Length: 10\r\n\r\nabcdefghij", 4).await;
        let Outcome::Response(r) = prefix else { panic!("{prefix:?}") };
        assert_eq!((r.status, r.body.as_slice()), (503, &b"abcd"[..]));
        let cut = probe_answered(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 64).await;
        let Outcome::Response(r) = cut else { panic!("{cut:?}") };
        assert_eq!(r.body, b"abc", "a body cut short is judged on what arrived");
    }
}
