//! TLS for the tests: a certificate authority made on the spot (rcgen), certificates signed
//! by it (written to PEM files the proxy's config names), a TLS client that reports what it
//! negotiated, and server configs for TLS members.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

/// The crypto provider the tests use: ring, as the proxy does.
#[allow(deprecated)] // ring's provider lacks post-quantum groups; fine for tests
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority and a folder its certificates are written to.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
    /// Where files go.
    pub dir: PathBuf,
}

/// A certificate and its key, as files and as PEM text.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// The certificate chain file (leaf only).
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
    /// The leaf in DER, to compare with what a peer presented.
    pub der: Vec<u8>,
}

impl TestCa {
    /// A new CA named `name`, its files in a fresh folder.
    pub fn new(name: &str) -> TestCa {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("switchyard-tls-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).expect("tls dir");
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).expect("CA cert");
        let pem = cert.pem();
        std::fs::write(dir.join("ca.pem"), &pem).expect("write CA");
        TestCa { issuer: Issuer::new(params, key), pem, dir }
    }

    /// The CA certificate's file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server and client certificate for `names` (DNS names or IP addresses), valid now.
    pub fn issue(&self, file: &str, names: &[&str]) -> CertPair {
        self.issue_with(file, names, |_| {})
    }

    /// A certificate for `names` that expired in 2001.
    pub fn expired(&self, file: &str, names: &[&str]) -> CertPair {
        self.issue_with(file, names, |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
    }

    fn issue_with(&self, file: &str, names: &[&str], adjust: impl FnOnce(&mut CertificateParams)) -> CertPair {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let (cert_file, key_file) = (self.dir.join(format!("{file}.pem")), self.dir.join(format!("{file}.key")));
        std::fs::write(&cert_file, cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        CertPair { cert: cert_file, key: key_file, der: cert.der().to_vec() }
    }

    /// Roots holding this CA only.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.pem.as_bytes()).expect("CA pem")).expect("add CA");
        roots
    }

    /// A TLS server config presenting `pair`, asking for a client certificate signed by
    /// this CA when `require_client` (mutual TLS).
    pub fn server_config(&self, pair: &CertPair, require_client: bool) -> Arc<rustls::ServerConfig> {
        let builder = rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().expect("versions");
        let builder = if require_client {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()), provider()).build().expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(load_certs(&pair.cert), load_key(&pair.key)).expect("server cert");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn load_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path).expect("cert file").collect::<Result<_, _>>().expect("certs")
}

fn load_key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).expect("key file")
}

/// What a TLS exchange with the proxy came to.
#[derive(Debug)]
pub struct TlsReply {
    /// The status.
    pub status: StatusCode,
    /// The body, as text.
    pub body: String,
    /// A header's values, by name, as text.
    pub headers: http::HeaderMap,
    /// The protocol ALPN chose (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
    /// The certificate the server presented (DER).
    pub peer_cert: Vec<u8>,
}

/// GETs `path` from `addr` over TLS, asking for `server_name` (SNI) and offering `alpn`;
/// trusts `ca` only. HTTP/2 when ALPN says `h2`.
pub async fn get(addr: std::net::SocketAddr, server_name: &str, path: &str, ca: &TestCa, alpn: &[&str]) -> Result<TlsReply, String> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let exchange = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
        let tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let alpn = conn.alpn_protocol().map(|a| String::from_utf8_lossy(a).into_owned());
        let peer_cert = conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
        // HTTP/2 takes the whole URL (its :authority); HTTP/1.1 the path and a Host header.
        let request = if alpn.as_deref() == Some("h2") {
            Request::get(format!("https://{server_name}{path}")).body(Full::<Bytes>::default())
        } else {
            Request::get(path).header("host", server_name).body(Full::<Bytes>::default())
        }
        .map_err(|e| e.to_string())?;
        let response = if alpn.as_deref() == Some("h2") {
            let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            sender.send_request(request).await.map_err(|e| e.to_string())?
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            sender.send_request(request).await.map_err(|e| e.to_string())?
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(TlsReply { status: parts.status, body: String::from_utf8_lossy(&body).into_owned(), headers: parts.headers, alpn, peer_cert })
    };
    tokio::time::timeout(crate::client::REQUEST_DEADLINE, exchange).await.map_err(|_| "timed out".to_string())?
}
