//! TLS settings: a listener's certificates (`[listen.tls]`, `[[listen.tls.sni]]`) and how
//! `https://` members are reached (`tls` on a member, a route's backend, or a balancer for
//! all its members) — raw form, checked form and the checks, kept together.
//!
//! Files are named here and read when the proxy is built (start, `--check`, reload), so a
//! bad certificate is refused with its file named, and a reload re-reads them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::locate::Seg;
use super::units::DurationValue;
use super::problems::{Problems, index, key};

/// `[listen.tls]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListenTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub handshake_timeout: Option<DurationValue>,
    pub sni: Option<Vec<RawSniCert>>,
}

/// `[[listen.tls.sni]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSniCert {
    pub names: Vec<String>,
    pub cert: String,
    pub key: String,
}

/// `tls = { … }` of a member, backend or balancer, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMemberTls {
    pub ca: Option<String>,
    pub verify: Option<bool>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

impl RawMemberTls {
    /// These keys, with `base`'s filling the gaps (a member's over its balancer's).
    pub(crate) fn over(&self, base: Option<&RawMemberTls>) -> RawMemberTls {
        let Some(base) = base else { return self.clone() };
        RawMemberTls {
            ca: self.ca.clone().or_else(|| base.ca.clone()),
            verify: self.verify.or(base.verify),
            cert: self.cert.clone().or_else(|| base.cert.clone()),
            key: self.key.clone().or_else(|| base.key.clone()),
        }
    }
}

/// A listener's TLS: clients must speak TLS 1.2 or 1.3 to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenTls {
    /// The default certificate: a PEM chain and its key.
    pub cert: CertFiles,
    /// More certificates, chosen by the name the client asks for (SNI).
    pub sni: Vec<SniCert>,
    /// How long a client has to finish the handshake.
    pub handshake_timeout: Duration,
}

/// A certificate chain file and its private key file (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A certificate served to clients asking for one of `names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCert {
    /// Host names, lower case; `*.example.com` matches one label.
    pub names: Vec<String>,
    /// The certificate.
    pub files: CertFiles,
}

/// How an `https://` member is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTls {
    /// The name sent as SNI and checked against the certificate: the URL's host.
    pub server_name: String,
    /// Trusted roots (PEM); `None`: the system's.
    pub ca: Option<PathBuf>,
    /// Whether the member's certificate is checked (on unless turned off, with a warning).
    pub verify: bool,
    /// The proxy's client certificate (mutual TLS).
    pub client_cert: Option<CertFiles>,
}

/// Default time a client has to finish a TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn listen_tls(here: &[Seg], raw: &RawListenTls, base_dir: &Path, p: &mut Problems) -> Option<ListenTls> {
    let here = key(here, "tls");
    let (Some(cert), Some(key_file)) = (&raw.cert, &raw.key) else {
        p.push(&here, "a TLS listener needs both cert and key (PEM files)");
        return None;
    };
    let handshake_timeout = raw.handshake_timeout.map_or(DEFAULT_HANDSHAKE_TIMEOUT, |d| d.0);
    if handshake_timeout.is_zero() {
        p.push(&key(&here, "handshake_timeout"), "must be more than 0");
    }
    let mut sni = Vec::new();
    for (i, s) in raw.sni.iter().flatten().enumerate() {
        let at = index(&key(&here, "sni"), i);
        if s.names.is_empty() {
            p.push(&key(&at, "names"), "give at least one host name");
        }
        for name in &s.names {
            let bare = name.strip_prefix("*.").unwrap_or(name);
            if bare.is_empty() || !bare.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) {
                p.push(&key(&at, "names"), format!("`{name}` is not a host name (a wildcard is `*.` and a name)"));
            }
        }
        sni.push(SniCert {
            names: s.names.iter().map(|n| n.to_ascii_lowercase()).collect(),
            files: CertFiles { cert: base_dir.join(&s.cert), key: base_dir.join(&s.key) },
        });
    }
    Some(ListenTls { cert: CertFiles { cert: base_dir.join(cert), key: base_dir.join(key_file) }, sni, handshake_timeout })
}

/// The TLS settings of a member whose URL is `https://` (`host` is the URL's host); `raw`
/// on an `http://` member is refused.
pub(crate) fn member_tls(here: &[Seg], https: bool, host: &str, raw: Option<&RawMemberTls>, base_dir: &Path, p: &mut Problems) -> Option<MemberTls> {
    if !https {
        if raw.is_some_and(|r| r.ca.is_some() || r.verify.is_some() || r.cert.is_some() || r.key.is_some()) {
            p.push(&key(here, "tls"), "tls settings apply to https:// members only");
        }
        return None;
    }
    let raw = raw.cloned().unwrap_or_default();
    let client_cert = match (&raw.cert, &raw.key) {
        (Some(cert), Some(k)) => Some(CertFiles { cert: base_dir.join(cert), key: base_dir.join(k) }),
        (None, None) => None,
        _ => {
            p.push(&key(here, "tls"), "a client certificate needs both cert and key");
            None
        }
    };
    Some(MemberTls {
        server_name: host.trim_start_matches('[').trim_end_matches(']').to_string(),
        ca: raw.ca.as_ref().map(|ca| base_dir.join(ca)),
        verify: raw.verify.unwrap_or(true),
        client_cert,
    })
}
