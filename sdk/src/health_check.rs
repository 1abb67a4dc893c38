//! The health-check trait and the plain types it works with.
//!
//! These mirror `wit/health-check.wit` without exposing generated bindings. The host owns the
//! schedule, the sockets and the pass/fail counting; a health check only says what probe to
//! send ([`HealthCheck::probe`]) and whether what came back is healthy ([`HealthCheck::judge`]).

use crate::config::Config;
pub use crate::header::Header;

/// Health-check logic (httpd's mod_proxy_hcheck `hcmethod`, `hcuri` and `hcexpr`).
///
/// Only [`configure`](HealthCheck::configure) and [`probe`](HealthCheck::probe) are required.
/// One value lives in each Wasm instance and may serve many members in any order; the host may
/// replace it at any time, so keep no state you cannot lose. `probe` and then `judge` are
/// called once per probe of a member (every `hcinterval`): not a hot path.
pub trait HealthCheck: Sized + 'static {
    /// Builds the check from its config table (empty when the operator gave none). An error
    /// refuses the plugin, and the proxy does not start, with this message.
    fn configure(config: &Config) -> Result<Self, String>;

    /// Describes the probe to send to `member` now (the WIT's `describe-probe`).
    ///
    /// The host refuses (and counts as a failed check) a probe it cannot send: an invalid
    /// method, a path not in origin form, an invalid header, or one of Host, Content-Length,
    /// Transfer-Encoding or Connection, which the host writes itself.
    fn probe(&mut self, member: &Member) -> Probe;

    /// Judges the outcome of the probe [`probe`](HealthCheck::probe) described for `member`. The default is httpd's
    /// rule without `hcexpr` ([`default_verdict`]): a TCP connect passes, a failed probe fails
    /// with its reason, and a response passes when its status is 2xx or 3xx.
    fn judge(&mut self, member: &Member, outcome: &Outcome) -> Verdict {
        let _ = member;
        default_verdict(outcome)
    }
}

/// httpd's judgement when no `hcexpr` is set: a TCP connect passes, a failed probe fails with
/// what happened, and a response passes when its status is in 200..=399.
pub fn default_verdict(outcome: &Outcome) -> Verdict {
    match outcome {
        Outcome::Connected => Verdict::pass("connected"),
        Outcome::Failed(why) => Verdict::fail(why.clone()),
        Outcome::Response(r) if (200..=399).contains(&r.status) => Verdict::pass(format!("status {}", r.status)),
        Outcome::Response(r) => Verdict::fail(format!("status {} not in 200..399", r.status)),
    }
}

/// The member being checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's URL as configured, e.g. `http://10.0.0.5:8080/app`.
    pub url: String,
    /// The host the probe connects to, e.g. `10.0.0.5`.
    pub host: String,
    /// The port the probe connects to.
    pub port: u16,
    /// The path of the member's URL without a trailing slash (`/app`, or empty).
    pub base_path: String,
}

impl Member {
    /// Parses an `http://host[:port][/path]` URL the way the host describes a member (port 80
    /// when none is given; the base path without its trailing slash). `None` for anything else.
    pub fn from_url(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("http://")?;
        let (authority, path) = rest.find(['/', '?', '#']).map_or((rest, ""), |i| rest.split_at(i));
        if path.contains(['?', '#']) || authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => (&authority[..i], authority[i + 1..].parse().ok()?),
            _ => (authority, 80),
        };
        Some(Self {
            url: url.to_string(),
            host: host.to_string(),
            port,
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// `base_path` joined to `path` with exactly one slash: `/app` and `health` or `/health`
    /// give `/app/health`, and `/` gives `/app/`; an empty `path` gives the base path itself,
    /// or `/` when that is empty too. This is how httpd builds the target from the member URL
    /// and `hcuri`, without its double slashes.
    pub fn path(&self, path: &str) -> String {
        let rest = path.trim_start_matches('/');
        let mut out = String::with_capacity(self.base_path.len() + rest.len() + 1);
        out.push_str(&self.base_path);
        if !path.is_empty() || out.is_empty() {
            out.push('/');
        }
        out.push_str(rest);
        out
    }
}

/// The HTTP version a probe speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTP/1.0: the connection closes after the response.
    #[default]
    Http10,
    /// HTTP/1.1, with `Connection: close`.
    Http11,
}

/// An HTTP request to send. The host adds `Host`, `Connection: close` and, when needed,
/// `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// The method, e.g. `GET`, `HEAD`, `OPTIONS`.
    pub method: String,
    /// The request target in origin form, e.g. `/app/health?deep=1`.
    pub path: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: HttpVersion,
    /// Extra request headers.
    pub headers: Vec<Header>,
    /// How many bytes of the response body to read and hand to `judge` (the host caps this at
    /// [`MAX_BODY_LIMIT`]; 0 reads no body).
    pub body_limit: u32,
}

/// The most body bytes the host reads for a probe.
pub const MAX_BODY_LIMIT: u32 = 64 * 1024;

impl HttpProbe {
    /// A probe with `method` and `path`, HTTP/1.0, no extra headers, reading no body.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self { method: method.into(), path: path.into(), version: HttpVersion::Http10, headers: Vec::new(), body_limit: 0 }
    }

    /// Speaks `version`.
    pub fn version(mut self, version: HttpVersion) -> Self {
        self.version = version;
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Reads up to `limit` bytes of the response body.
    pub fn body_limit(mut self, limit: u32) -> Self {
        self.body_limit = limit;
        self
    }
}

/// What to do to check a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Open a TCP connection and close it again.
    Tcp,
    /// Send an HTTP request and read the response.
    Http(HttpProbe),
}

/// An HTTP response as the host read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The response headers, in the order received, names as the member sent them.
    pub headers: Vec<Header>,
    /// The first `body_limit` bytes of the body (fewer when the body is shorter).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of the first header called `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::header::find(&self.headers, name)
    }
}

/// What happened to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A TCP probe connected.
    Connected,
    /// The probe could not be completed (connect failed or timed out, the member closed the
    /// connection, sent something that is not HTTP, or did not answer in time): what happened.
    Failed(String),
    /// An HTTP probe got a response.
    Response(HttpResponse),
}

impl Outcome {
    /// A response with a status, headers given as `(name, value)` pairs, and a body.
    pub fn response(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Self {
        Outcome::Response(HttpResponse {
            status,
            headers: headers.iter().map(|&(n, v)| Header::new(n, v)).collect(),
            body: body.into(),
        })
    }
}

/// The judgement of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the probe passed.
    pub healthy: bool,
    /// Why, for the log and the balancer manager (e.g. `status 503 not in 200..399`).
    pub reason: String,
}

impl Verdict {
    /// A passed probe.
    pub fn pass(reason: impl Into<String>) -> Self {
        Self { healthy: true, reason: reason.into() }
    }

    /// A failed probe.
    pub fn fail(reason: impl Into<String>) -> Self {
        Self { healthy: false, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_from_url() {
        let m = Member::from_url("http://10.0.0.5:8080/app/").expect("valid");
        assert_eq!((m.host.as_str(), m.port, m.base_path.as_str()), ("10.0.0.5", 8080, "/app"));
        let m = Member::from_url("http://example.com").expect("valid");
        assert_eq!((m.host.as_str(), m.port, m.base_path.as_str()), ("example.com", 80, ""));
        let m = Member::from_url("http://[::1]:9001/").expect("valid");
        assert_eq!((m.host.as_str(), m.port, m.base_path.as_str()), ("[::1]", 9001, ""));
        let m = Member::from_url("http://[::1]").expect("valid");
        assert_eq!((m.host.as_str(), m.port), ("[::1]", 80));
        for bad in ["https://x", "http://", "http://x:y", "http://x/?q", "http://u@x"] {
            assert_eq!(Member::from_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn member_path_joins_with_one_slash() {
        let app = Member::from_url("http://h/app").expect("valid");
        let root = Member::from_url("http://h").expect("valid");
        assert_eq!(app.path("/health"), "/app/health");
        assert_eq!(app.path("health?x=1"), "/app/health?x=1");
        assert_eq!(app.path(""), "/app");
        assert_eq!(app.path("/"), "/app/");
        assert_eq!(app.path("//x"), "/app/x");
        assert_eq!(root.path(""), "/");
        assert_eq!(root.path("/"), "/");
        assert_eq!(root.path("/health"), "/health");
    }

    #[test]
    fn default_verdict_is_httpds() {
        assert!(default_verdict(&Outcome::Connected).healthy);
        assert_eq!(default_verdict(&Outcome::Failed("refused".into())), Verdict::fail("refused"));
        assert_eq!(default_verdict(&Outcome::response(302, &[], "")), Verdict::pass("status 302"));
        assert_eq!(default_verdict(&Outcome::response(199, &[], "")), Verdict::fail("status 199 not in 200..399"));
        assert_eq!(default_verdict(&Outcome::response(400, &[], "")), Verdict::fail("status 400 not in 200..399"));
    }
}
