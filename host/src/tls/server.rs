//! The TLS side of a listener: the certificates (a default one, more chosen by SNI), ALPN
//! `h2` and `http/1.1`, and the handshake with its deadline and its answer to plain HTTP.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::version::{TLS12, TLS13};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{TlsError, certified_key, provider};
use crate::config::ListenTls;

/// What a plain-HTTP client on a TLS port is told.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 46\r\nconnection: close\r\n\r\nThis port speaks TLS: use https:// to reach it\n";

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// A TLS listener's acceptor, built from its settings; a reload builds a new one (new
/// certificates for new connections; open ones keep theirs).
pub struct ServerTls {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("handshake_timeout", &self.handshake_timeout).finish_non_exhaustive()
    }
}

/// How a handshake ended.
pub enum Handshake {
    /// TLS is up.
    Done(Box<TlsStream<TcpStream>>),
    /// The client spoke plain HTTP; it was answered 400 and the connection closed.
    PlainHttp,
    /// Not within the handshake deadline.
    TimedOut,
    /// The handshake failed (no shared version or cipher, a closed connection…).
    Failed(io::Error),
}

impl ServerTls {
    /// Loads the certificates `settings` name.
    pub fn new(settings: &ListenTls) -> Result<Arc<Self>, TlsError> {
        let default = Arc::new(certified_key(&settings.cert)?);
        let mut by_name = HashMap::new();
        for sni in &settings.sni {
            let key = Arc::new(certified_key(&sni.files)?);
            for name in &sni.names {
                by_name.entry(name.clone()).or_insert_with(|| Arc::clone(&key));
            }
        }
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&TLS12, &TLS13])
            .map_err(|source| TlsError::Rustls { what: "TLS versions".into(), source })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(ByName { default, by_name }));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(Self { acceptor: TlsAcceptor::from(Arc::new(config)), handshake_timeout: settings.handshake_timeout }))
    }

    /// Runs the handshake on a new connection. A client whose first byte is not a TLS
    /// handshake record speaks plain HTTP: it gets a 400 saying so, not a binary alert.
    pub async fn accept(&self, mut tcp: TcpStream) -> Handshake {
        let deadline = tokio::time::Instant::now() + self.handshake_timeout;
        let mut first = [0u8; 1];
        match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
            Err(_) => return Handshake::TimedOut,
            Ok(Err(e)) => return Handshake::Failed(e),
            Ok(Ok(0)) => return Handshake::Failed(io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(_)) => {}
        }
        if first[0] != TLS_HANDSHAKE {
            refuse_plain_http(&mut tcp).await;
            return Handshake::PlainHttp;
        }
        match tokio::time::timeout_at(deadline, self.acceptor.accept(tcp)).await {
            Err(_) => Handshake::TimedOut,
            Ok(Err(e)) => Handshake::Failed(e),
            Ok(Ok(tls)) => Handshake::Done(Box::new(tls)),
        }
    }
}

/// Answers a plain-HTTP client, then reads (and drops) what it still sends for a moment, so
/// closing does not reset the connection under the answer.
async fn refuse_plain_http(tcp: &mut TcpStream) {
    let answer = async {
        tcp.write_all(PLAIN_HTTP_ANSWER).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), answer).await;
}

/// Picks the certificate for the name a client asks for: an exact name, then a `*.` wildcard
/// one label deep, then the default (also for clients that send no name).
#[derive(Debug)]
struct ByName {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands the name over lower-cased.
        let chosen = hello.server_name().and_then(|name| {
            self.by_name
                .get(name)
                .or_else(|| name.split_once('.').and_then(|(_, parent)| self.by_name.get(&format!("*.{parent}"))))
        });
        Some(Arc::clone(chosen.unwrap_or(&self.default)))
    }
}
