//! Writing a request to a member: the head the proxy serialises itself, then the body.
//!
//! Nothing of the client's framing crosses: Content-Length and Transfer-Encoding are always
//! the proxy's own, chosen from what it knows about the body — a known length is sent as
//! Content-Length, an unknown one chunked, none as nothing (or `Content-Length: 0` for methods
//! that normally carry a body, as curl and hyper do).

use std::time::Duration;

use http::request::Parts;
use http::{HeaderValue, Method};
use http_body::Body;
use tokio::io::AsyncWriteExt;

use crate::codec::fields::{is_framing_or_expect, write_field};
use crate::tls::MemberStream;

/// How the request body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFraming {
    None,
    Length(u64),
    Chunked,
}

impl RequestFraming {
    /// Whether any body bytes follow the head.
    pub(crate) fn has_body(self) -> bool {
        !matches!(self, RequestFraming::None | RequestFraming::Length(0))
    }
}

/// Chooses the framing for `body`.
pub(crate) fn framing<B: Body>(method: &Method, body: &B) -> RequestFraming {
    if body.is_end_stream() {
        return if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            RequestFraming::Length(0)
        } else {
            RequestFraming::None
        };
    }
    match body.size_hint().exact() {
        Some(n) => RequestFraming::Length(n),
        None => RequestFraming::Chunked,
    }
}

/// Where a request's header lines come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HeadFields<'a> {
    /// The request's header map.
    Map,
    /// Lines already written for every member (a plain request's client lines, see
    /// `proxy::headers`), after this member's Host. The request's map is not read.
    Written {
        /// The Host line's value, if the member gets one.
        host: Option<&'a HeaderValue>,
        /// Whole field lines, each ended by CRLF, none of them Host or a framing header.
        lines: &'a [u8],
    },
}

/// Appends the request head to `out`: request line, header fields from `fields` (minus any
/// framing header), the proxy's framing header, `Expect: 100-continue` when asked, blank line.
/// `parts.uri` must be in origin form.
pub(crate) fn encode_head(parts: &Parts, fields: HeadFields<'_>, framing: RequestFraming, expect_continue: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    match fields {
        HeadFields::Map => {
            for (name, value) in &parts.headers {
                if !is_framing_or_expect(name.as_str().as_bytes()) {
                    write_field(out, name.as_str().as_bytes(), value.as_bytes());
                }
            }
        }
        HeadFields::Written { host, lines } => {
            debug_assert!(parts.headers.is_empty(), "a request with written lines has its headers there, not in its map");
            if let Some(host) = host {
                write_field(out, b"host", host.as_bytes());
            }
            out.extend_from_slice(lines);
        }
    }
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => write_field(out, b"content-length", n.to_string().as_bytes()),
        RequestFraming::Chunked => write_field(out, b"transfer-encoding", b"chunked"),
    }
    if expect_continue {
        write_field(out, b"expect", b"100-continue");
    }
    out.extend_from_slice(b"\r\n");
}

/// Why the body could not be delivered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyWriteError<E: std::fmt::Display> {
    /// The client's body failed (it went away, or sent a malformed body).
    #[error("client body: {0}")]
    Client(E),
    /// Writing to the member failed or stalled.
    #[error("writing to the member: {0}")]
    Member(std::io::Error),
}

/// Writes all of `bytes`, failing if the member stops reading for `timeout`.
pub(crate) async fn write_within(stream: &mut MemberStream, bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
    // The flush sends what TLS still holds (a no-op on plain TCP).
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match crate::deadline::within(timeout, write).await {
        Some(result) => result,
        None => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "member stopped reading")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_lines_follow_the_members_host() {
        let (parts, ()) = http::Request::get("/a?b").body(()).expect("request").into_parts();
        let host = HeaderValue::from_static("m:9");
        let mut out = Vec::new();
        encode_head(&parts, HeadFields::Written { host: Some(&host), lines: b"User-Agent: u\r\n" }, RequestFraming::None, false, &mut out);
        assert_eq!(String::from_utf8(out).expect("utf8"), "GET /a?b HTTP/1.1\r\nhost: m:9\r\nUser-Agent: u\r\n\r\n");
    }

    #[test]
    fn head_is_serialised_by_the_proxy() {
        let mut request = http::Request::post("/upload?x=1")
            .header("host", "m:9")
            .header("content-length", "999")
            .header("transfer-encoding", "gzip")
            .header("x-a", "1")
            .header("expect", "100-continue")
            .body(())
            .expect("request");
        *request.uri_mut() = "/upload?x=1".parse().expect("uri");
        let (parts, ()) = request.into_parts();
        let mut out = Vec::new();
        encode_head(&parts, HeadFields::Map, RequestFraming::Chunked, true, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "POST /upload?x=1 HTTP/1.1\r\nhost: m:9\r\nx-a: 1\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n"
        );
    }
}
