//! Just enough WebSocket (RFC 6455) for the tests: the member's answer to an upgrade, an echo
//! of text frames, and a client that sends one masked frame and reads one back. Payloads
//! are short (< 126 bytes); the handshake's accept key is not checked (the proxy does not
//! look at it either).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

type Body = BoxBody<Bytes, hyper::Error>;

fn full(text: &str) -> Body {
    Full::new(Bytes::from(text.to_string())).map_err(|never| match never {}).boxed()
}

/// The member's answer on `/ws`: 101 and an echo task for an upgrade, else 426.
pub(crate) fn member_answer(mut req: Request<Incoming>, name: String) -> Response<Body> {
    let upgrade = req.headers().get("upgrade").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if upgrade.as_deref() != Some("websocket") {
        let mut r = Response::new(full("upgrade required"));
        *r.status_mut() = StatusCode::UPGRADE_REQUIRED;
        r.headers_mut().insert("x-seen-upgrade", upgrade.unwrap_or_default().parse().expect("header"));
        return r;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut io = TokioIo::new(upgraded);
            while let Some(text) = read_frame(&mut io).await {
                let reply = format!("{name}: {text}");
                if write_frame(&mut io, &reply, None).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("upgrade", "websocket".parse().expect("header"));
    h.insert("connection", "upgrade".parse().expect("header"));
    h.insert("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".parse().expect("header"));
    r
}

/// Writes one text frame, masked with `mask` (clients must mask, servers must not).
pub async fn write_frame<W: AsyncWrite + Unpin>(io: &mut W, text: &str, mask: Option<[u8; 4]>) -> std::io::Result<()> {
    let payload = text.as_bytes();
    assert!(payload.len() < 126, "short frames only");
    let mut frame = vec![0x81, payload.len() as u8];
    match mask {
        Some(key) => {
            frame[1] |= 0x80;
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    io.write_all(&frame).await?;
    io.flush().await
}

/// Reads one text frame; `None` at the end of the stream or on a close frame.
pub async fn read_frame<R: AsyncRead + Unpin>(io: &mut R) -> Option<String> {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.ok()?;
    if head[0] & 0x0f == 0x8 {
        return None;
    }
    let len = usize::from(head[1] & 0x7f);
    let key = if head[1] & 0x80 != 0 {
        let mut k = [0u8; 4];
        io.read_exact(&mut k).await.ok()?;
        Some(k)
    } else {
        None
    };
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await.ok()?;
    if let Some(k) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    String::from_utf8(payload).ok()
}
