//! The proxy as a TLS client of `https://` members: a connector per member (its roots, its
//! name, its client certificate), and the stream a member connection reads and writes,
//! plain or TLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::version::{TLS12, TLS13};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{TlsError, load_certs, load_key, provider};
use crate::config::MemberTls;

/// How the proxy opens TLS to one member.
pub struct MemberConnector {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for MemberConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberConnector").field("name", &self.name).finish_non_exhaustive()
    }
}

impl MemberConnector {
    /// Loads what `settings` name: the roots (`ca`, else the system's), the client
    /// certificate. Warns when verification is off.
    pub fn new(settings: &MemberTls) -> Result<Arc<Self>, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&TLS12, &TLS13])
            .map_err(|source| TlsError::Rustls { what: "TLS versions".into(), source })?;
        let builder = if settings.verify {
            builder.with_root_certificates(roots(settings)?)
        } else {
            tracing::warn!(member = %settings.server_name, "tls verify = false: the member's certificate is not checked");
            builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider().signature_verification_algorithms)))
        };
        let mut config = match &settings.client_cert {
            Some(files) => builder
                .with_client_auth_cert(load_certs(&files.cert)?, load_key(&files.key)?)
                .map_err(|source| TlsError::Rustls { what: format!("client certificate {}", files.cert.display()), source })?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(settings.server_name.clone())
            .map_err(|e| TlsError::File { path: settings.server_name.clone().into(), reason: format!("not a host name: {e}") })?;
        Ok(Arc::new(Self { connector: TlsConnector::from(Arc::new(config)), name }))
    }

    /// Runs the handshake over `tcp`.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
}

fn roots(settings: &MemberTls) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match &settings.ca {
        Some(ca) => {
            for cert in load_certs(ca)? {
                roots.add(cert).map_err(|source| TlsError::Rustls { what: format!("{}", ca.display()), source })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "a system root certificate could not be read");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(member = %settings.server_name, "no system root certificates found: give the member a tls.ca");
            }
        }
    }
    Ok(roots)
}

/// Accepts any certificate, but still checks the handshake's signatures (the member holds
/// the key of the certificate it sent). Only for `verify = false`.
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A member connection's byte stream.
#[derive(Debug)]
pub enum MemberStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
    /// The reading half, once the writing half went to a task of its own (an upload that
    /// goes on while the answer is read); such a connection is never reused.
    Reading(ReadHalf<Box<MemberStream>>),
    /// Nothing: the stream was taken (for a moment, while it is split).
    Closed,
}

impl MemberStream {
    /// The TCP socket underneath, while the stream is whole.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            MemberStream::Plain(tcp) => Some(tcp),
            MemberStream::Tls(tls) => Some(tls.get_ref().0),
            MemberStream::Reading(_) | MemberStream::Closed => None,
        }
    }

    /// The TCP socket, when the stream is plain and whole (no TLS to see its bytes).
    pub fn plain(&self) -> Option<&TcpStream> {
        match self {
            MemberStream::Plain(tcp) => Some(tcp),
            _ => None,
        }
    }

    /// Whether an idle connection can still carry a request: the member has not closed it
    /// and has sent nothing unasked. A TLS record that carries no data (a session ticket) is
    /// taken in passing.
    pub fn still_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        match self {
            MemberStream::Plain(tcp) => matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            MemberStream::Closed => false,
            MemberStream::Tls(_) | MemberStream::Reading(_) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut buf = ReadBuf::new(&mut probe);
                Pin::new(self).poll_read(&mut cx, &mut buf).is_pending()
            }
        }
    }
}

impl AsyncRead for MemberStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MemberStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MemberStream::Reading(s) => Pin::new(s).poll_read(cx, buf),
            MemberStream::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for MemberStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MemberStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MemberStream::Reading(_) | MemberStream::Closed => Poll::Ready(Err(read_only())),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MemberStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            MemberStream::Reading(_) | MemberStream::Closed => Poll::Ready(Err(read_only())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MemberStream::Plain(s) => s.is_write_vectored(),
            MemberStream::Tls(s) => s.is_write_vectored(),
            MemberStream::Reading(_) | MemberStream::Closed => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MemberStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MemberStream::Reading(_) | MemberStream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MemberStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MemberStream::Reading(_) | MemberStream::Closed => Poll::Ready(Ok(())),
        }
    }
}

fn read_only() -> io::Error {
    io::Error::other("the writing half of this member connection is elsewhere")
}
