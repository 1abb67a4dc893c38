//! TLS with rustls (the ring provider): certificates loaded from PEM files, the acceptor of a
//! TLS listener ([`ServerTls`]: SNI, ALPN `h2`/`http/1.1`, a handshake deadline, a clear
//! refusal for plain HTTP), and the connector to `https://` members ([`MemberConnector`]:
//! verification on by default, SNI, optional client certificate).
//!
//! TLS 1.2 and 1.3 only, with rustls's safe defaults. Everything here is built when the proxy
//! is (start, `--check`, reload): a bad file is refused with its name, and the old
//! configuration keeps serving.

mod client;
mod server;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

pub use client::{MemberConnector, MemberStream};
pub use server::{Handshake, ServerTls};

/// Why a TLS setting could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (a key that does not match its certificate…).
    #[error("{what}: {source}")]
    Rustls {
        /// Which setting.
        what: String,
        /// Why.
        source: rustls::Error,
    },
}

/// The one crypto provider: ring, passed explicitly (no process-wide default to race for).
///
/// rustls 0.23.48 marks ring's provider deprecated because it has no post-quantum key
/// exchange (X25519MLKEM768, which aws-lc-rs offers). We keep ring: it builds with gcc alone
/// in a fraction of aws-lc-rs's build time on two cores, and every classical suite and group
/// rustls recommends is there. Switching is this one function.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// The certificates of a PEM file, leaf first.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::File { path: path.to_path_buf(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(format!("not a valid PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error("holds no CERTIFICATE".into()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File { path: path.to_path_buf(), reason: format!("no usable private key: {e}") })
}

/// A certificate chain and its key, checked to belong together.
pub(crate) fn certified_key(files: &crate::config::CertFiles) -> Result<CertifiedKey, TlsError> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    CertifiedKey::from_der(certs, key, &provider())
        .map_err(|source| TlsError::Rustls { what: format!("{} with {}", files.cert.display(), files.key.display()), source })
}
