//! The header-rewrite trait and the plain types it works with.
//!
//! These mirror `wit/header-rewrite.wit` without exposing generated bindings. The host owns
//! the messages: it asks the plugin once which headers it wants to see ([`Interest`]), calls it
//! only for messages carrying one of them (or for every message, when asked to), and applies
//! the [`Edit`]s it returns, in order, refusing any that would break the message.

use crate::config::Config;
pub use crate::header::Header;

/// Edits to request and response headers (httpd's ProxyPassReverse and friends).
///
/// [`configure`](HeaderRewrite::configure) and [`interest`](HeaderRewrite::interest) are
/// required; [`on_request`](HeaderRewrite::on_request) and
/// [`on_response`](HeaderRewrite::on_response) default to no edits. One value lives in each
/// Wasm instance and may serve many requests of many routes in any order; the host may replace
/// it at any time, so keep no state you cannot lose.
pub trait HeaderRewrite: Sized + 'static {
    /// Builds the plugin from its config table (empty when the operator gave none). An error
    /// refuses the plugin with this message.
    fn configure(config: &Config) -> Result<Self, String>;

    /// Which messages to call the plugin for, and which of their headers to hand it (the
    /// WIT's `wants`). Asked once, after `configure`. Ask for as little as you need: a plugin that wants every
    /// message is on the hot path of every request.
    fn interest(&self) -> Interest;

    /// Edits for a request about to be sent to `context.member`. `headers` holds the
    /// request's headers that the interest selects (names in lowercase), in message order.
    /// The default makes no edits.
    fn on_request(&mut self, context: &Context, method: &str, path: &str, headers: &[Header]) -> Vec<Edit> {
        let _ = (context, method, path, headers);
        Vec::new()
    }

    /// Edits for a response about to be sent to the client. `headers` holds the response's
    /// headers that the interest selects (names in lowercase), in message order. The default
    /// makes no edits.
    fn on_response(&mut self, context: &Context, status: u16, headers: &[Header]) -> Vec<Edit> {
        let _ = (context, status, headers);
        Vec::new()
    }
}

/// One change to the headers. The host applies a message's edits in order, each seeing the
/// headers as the ones before left them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Replace every value of the header with this one (adding it if absent).
    Set(Header),
    /// Add a value, keeping the existing ones.
    Append(Header),
    /// Remove every value of the header with this name.
    Remove(String),
}

impl Edit {
    /// [`Edit::Set`] from a name and a value.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        Edit::Set(Header::new(name, value))
    }

    /// [`Edit::Append`] from a name and a value.
    pub fn append(name: impl Into<String>, value: impl Into<String>) -> Self {
        Edit::Append(Header::new(name, value))
    }

    /// [`Edit::Remove`] of a name.
    pub fn remove(name: impl Into<String>) -> Self {
        Edit::Remove(name.into())
    }

    /// The name of the header this edit changes.
    pub fn name(&self) -> &str {
        match self {
            Edit::Set(h) | Edit::Append(h) => &h.name,
            Edit::Remove(name) => name,
        }
    }
}

/// Which messages a plugin is called for, in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhaseInterest {
    /// Header names (lowercase) the plugin wants to see; `*` means every header.
    pub headers: Vec<String>,
    /// `false`: call the plugin only for messages carrying at least one of `headers`.
    /// `true`: call it for every message (to add headers, say).
    pub always: bool,
}

impl PhaseInterest {
    /// No header, never called.
    pub fn none() -> Self {
        Self::default()
    }

    /// Called for messages carrying any of `names` (given in lowercase), seeing only those.
    pub fn headers<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { headers: names.into_iter().map(Into::into).collect(), always: false }
    }

    /// Called for every message, seeing every header.
    pub fn all() -> Self {
        Self { headers: vec!["*".to_string()], always: true }
    }

    /// Called for every message, whether or not it carries one of the headers.
    pub fn always(mut self) -> Self {
        self.always = true;
        self
    }

    /// Whether a message with a header called `name` (lowercase) is selected, and whether the
    /// plugin sees that header.
    pub fn selects(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h == "*" || h.eq_ignore_ascii_case(name))
    }
}

/// What a plugin wants to see, both ways.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interest {
    /// Requests on their way to a member.
    pub request: PhaseInterest,
    /// Responses on their way to the client.
    pub response: PhaseInterest,
}

/// Where a message is going or coming from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// The route's path prefix as configured, e.g. `/images/`.
    pub public_prefix: String,
    /// The scheme clients use to reach the proxy, e.g. `http`.
    pub public_scheme: String,
    /// The host (and port) the client asked for, from its Host header; empty when it sent
    /// none.
    pub public_host: String,
    /// The route's target URLs as configured: its backend, or every member of its balancer,
    /// in config order.
    pub targets: Vec<String>,
    /// The URL of the member this request goes to, or this response came from.
    pub member: String,
    /// The plugin's position in the route's chain, from 0.
    pub position: u32,
}
