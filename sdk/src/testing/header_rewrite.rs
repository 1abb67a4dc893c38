//! The header-rewrite harness.
//!
//! ```
//! use switchyard_sdk::{Config, Context, Edit, Header, HeaderRewrite, Interest, PhaseInterest};
//! use switchyard_sdk::testing::HeaderRewriteHarness;
//!
//! struct HideServer;
//! impl HeaderRewrite for HideServer {
//!     fn configure(_: &Config) -> Result<Self, String> { Ok(HideServer) }
//!     fn interest(&self) -> Interest {
//!         Interest { response: PhaseInterest::headers(["server"]), ..Interest::default() }
//!     }
//!     fn on_response(&mut self, _: &Context, _: u16, _: &[Header]) -> Vec<Edit> {
//!         vec![Edit::remove("server"), Edit::set("content-length", "0")]
//!     }
//! }
//! let mut h = HeaderRewriteHarness::<HideServer>::new("{}").unwrap();
//! let out = h.response(200, &[("Server", "Apache"), ("Content-Length", "5")]);
//! assert!(out.called);
//! assert_eq!(out.get("server"), None);
//! assert_eq!(out.get("content-length"), Some("5")); // refused: framing header
//! assert_eq!(out.refused.len(), 1);
//! // Not called for a message without the header it asked for.
//! assert!(!h.response(200, &[("content-length", "5")]).called);
//! ```

use crate::config::Config;
use crate::header::Header;
use crate::header_rewrite::{Context, Edit, HeaderRewrite, Interest, PhaseInterest};
use crate::rules;

/// Runs a [`HeaderRewrite`] natively, as the host would: configures it, asks for its interest
/// once, and for each message calls it (or not) with the headers the interest selects, then
/// applies its edits in order.
#[derive(Debug)]
pub struct HeaderRewriteHarness<P: HeaderRewrite> {
    plugin: P,
    interest: Interest,
    context: Context,
}

/// What became of a message's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// Whether the plugin was called at all (its interest selected the message).
    pub called: bool,
    /// The edits the plugin returned, in order, refused ones included.
    pub edits: Vec<Edit>,
    /// The edits the host would refuse, and why; the others were applied.
    pub refused: Vec<Refused>,
    /// The message's headers after the edits, names in lowercase, in order.
    pub headers: Vec<Header>,
}

/// An edit the host would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The edit.
    pub edit: Edit,
    /// Why the host refuses it.
    pub reason: String,
}

impl Rewritten {
    /// The first value of header `name` (any case) after the edits.
    pub fn get(&self, name: &str) -> Option<&str> {
        crate::header::find(&self.headers, name)
    }

    /// Every value of header `name` (any case) after the edits, in order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|h| h.is(name)).map(|h| h.value.as_str()).collect()
    }
}

impl<P: HeaderRewrite> HeaderRewriteHarness<P> {
    /// Configures the plugin with a JSON config table and asks for its interest, as the host
    /// would. The context starts as a route `/` reached over `http` with no Host header, no
    /// targets and no member; set what a test needs with the builder methods.
    ///
    /// Header names in the interest are lowercased, as the host does.
    ///
    /// # Panics
    /// When the interest names a header that is neither `*` nor a valid header name (it could
    /// never match).
    pub fn new(config_json: &str) -> Result<Self, String> {
        let config = Config::from_json(config_json)?;
        let plugin = P::configure(&config)?;
        let mut interest = plugin.interest();
        for name in interest.request.headers.iter_mut().chain(&mut interest.response.headers) {
            assert!(name == "*" || rules::is_token(name), "interest names {name:?}: names must be header names or `*`");
            name.make_ascii_lowercase();
        }
        let context = Context {
            public_prefix: "/".to_string(),
            public_scheme: "http".to_string(),
            ..Context::default()
        };
        Ok(Self { plugin, interest, context })
    }

    /// The plugin value.
    pub fn plugin(&mut self) -> &mut P {
        &mut self.plugin
    }

    /// The interest the plugin declared.
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// The context every message is given.
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    /// Replaces the whole context.
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Sets how clients reach the route: scheme, host (as in their Host header, empty for
    /// none) and the route's prefix.
    pub fn public(mut self, scheme: &str, host: &str, prefix: &str) -> Self {
        self.context.public_scheme = scheme.to_string();
        self.context.public_host = host.to_string();
        self.context.public_prefix = prefix.to_string();
        self
    }

    /// Sets the route's targets (its backend, or its balancer's members in order). The first
    /// becomes the member too, until [`member`](Self::member) says otherwise.
    pub fn targets(mut self, targets: &[&str]) -> Self {
        self.context.targets = targets.iter().map(|t| t.to_string()).collect();
        if let Some(first) = targets.first() {
            self.context.member = first.to_string();
        }
        self
    }

    /// Sets the member the message goes to or comes from.
    pub fn member(mut self, member: &str) -> Self {
        self.context.member = member.to_string();
        self
    }

    /// A request with these headers, on its way to the member.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Rewritten {
        let (plugin, context) = (&mut self.plugin, &self.context);
        run(&self.interest.request, headers, |selected| plugin.on_request(context, method, path, selected))
    }

    /// A response with this status and headers, on its way to the client.
    pub fn response(&mut self, status: u16, headers: &[(&str, &str)]) -> Rewritten {
        let (plugin, context) = (&mut self.plugin, &self.context);
        run(&self.interest.response, headers, |selected| plugin.on_response(context, status, selected))
    }
}

/// Calls the plugin as the host does for one message, and applies its edits.
fn run(interest: &PhaseInterest, headers: &[(&str, &str)], call: impl FnOnce(&[Header]) -> Vec<Edit>) -> Rewritten {
    let mut headers: Vec<Header> = headers.iter().map(|&(n, v)| Header::new(n.to_ascii_lowercase(), v)).collect();
    let selected: Vec<Header> = headers.iter().filter(|h| interest.selects(&h.name)).cloned().collect();
    if selected.is_empty() && !interest.always {
        return Rewritten { called: false, edits: Vec::new(), refused: Vec::new(), headers };
    }
    let edits = call(&selected);
    let mut refused = Vec::new();
    for edit in &edits {
        let value = match edit {
            Edit::Set(h) | Edit::Append(h) => Some(h.value.as_str()),
            Edit::Remove(_) => None,
        };
        if let Err(reason) = rules::check_edit(edit.name(), value) {
            refused.push(Refused { edit: edit.clone(), reason });
            continue;
        }
        apply(&mut headers, edit);
    }
    Rewritten { called: true, edits, refused, headers }
}

/// Applies one valid edit: `set` replaces the first value in place and drops the others (or
/// appends when absent), `append` adds at the end, `remove` drops every value.
fn apply(headers: &mut Vec<Header>, edit: &Edit) {
    let name = edit.name().to_ascii_lowercase();
    match edit {
        Edit::Set(h) => match headers.iter().position(|x| x.name == name) {
            Some(first) => {
                headers[first].value = h.value.clone();
                let mut i = 0;
                headers.retain(|x| {
                    i += 1;
                    i - 1 == first || x.name != name
                });
            }
            None => headers.push(Header::new(name, h.value.clone())),
        },
        Edit::Append(h) => headers.push(Header::new(name, h.value.clone())),
        Edit::Remove(_) => headers.retain(|x| x.name != name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the edits in its config, seeing `x-a` on requests and every header always on
    /// responses.
    struct Scripted(Vec<Edit>, Vec<Header>);
    impl HeaderRewrite for Scripted {
        fn configure(config: &Config) -> Result<Self, String> {
            let mut edits = Vec::new();
            for e in config.get("edits").and_then(|v| v.as_array()).into_iter().flatten() {
                let e: Vec<&str> = e.as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
                edits.push(match e[..] {
                    ["set", n, v] => Edit::set(n, v),
                    ["append", n, v] => Edit::append(n, v),
                    ["remove", n] => Edit::remove(n),
                    _ => return Err(format!("bad edit {e:?}")),
                });
            }
            Ok(Scripted(edits, Vec::new()))
        }
        fn interest(&self) -> Interest {
            Interest { request: PhaseInterest::headers(["x-a", "x-b"]), response: PhaseInterest::all() }
        }
        fn on_request(&mut self, _: &Context, _: &str, _: &str, headers: &[Header]) -> Vec<Edit> {
            self.1 = headers.to_vec();
            self.0.clone()
        }
        fn on_response(&mut self, _: &Context, _: u16, headers: &[Header]) -> Vec<Edit> {
            self.1 = headers.to_vec();
            self.0.clone()
        }
    }

    fn harness(edits: &str) -> HeaderRewriteHarness<Scripted> {
        HeaderRewriteHarness::new(&format!(r#"{{"edits": {edits}}}"#)).expect("configure")
    }

    #[test]
    fn sees_only_selected_headers_and_is_skipped_without_them() {
        let mut h = harness("[]");
        let out = h.request("GET", "/", &[("X-B", "1"), ("Other", "2"), ("x-a", "3")]);
        assert!(out.called);
        assert_eq!(h.plugin().1, [Header::new("x-b", "1"), Header::new("x-a", "3")]);
        assert!(!h.request("GET", "/", &[("Other", "2")]).called);
        // `always` with `*`: called with no headers at all, and sees every header.
        assert!(h.response(204, &[]).called);
        h.response(200, &[("A", "1"), ("B", "2")]);
        assert_eq!(h.plugin().1.len(), 2);
    }

    #[test]
    fn applies_set_append_remove_in_order() {
        let mut h = harness(
            r#"[["set", "X-A", "new"], ["append", "x-a", "more"], ["remove", "x-b"], ["set", "x-c", "added"]]"#,
        );
        let out = h.request("GET", "/", &[("x-a", "1"), ("x-b", "2"), ("x-a", "3"), ("x-b", "4"), ("z", "5")]);
        let names: Vec<(&str, &str)> = out.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
        assert_eq!(names, [("x-a", "new"), ("z", "5"), ("x-a", "more"), ("x-c", "added")]);
        assert!(out.refused.is_empty());
    }

    #[test]
    fn refuses_what_the_host_refuses_and_applies_the_rest() {
        let mut h = harness(
            r#"[["set", "x-a", "a\r\nInjected: 1"], ["set", "Host", "evil"], ["remove", "Connection"],
                ["append", "bad name", "x"], ["set", "x-a", "ok"], ["append", "x-nul", "a\u0000b"],
                ["set", "upgrade", "h2c"], ["set", "x-tab", "a\tb"]]"#,
        );
        let out = h.request("GET", "/", &[("x-a", "1"), ("host", "h"), ("connection", "close")]);
        assert_eq!(out.refused.len(), 6, "{:?}", out.refused);
        assert_eq!(out.get("x-a"), Some("ok"));
        assert_eq!(out.get("host"), Some("h"));
        assert_eq!(out.get("connection"), Some("close"));
        assert_eq!(out.get("x-tab"), Some("a\tb"));
        assert!(out.refused[0].reason.contains("control character 0x0d"), "{}", out.refused[0].reason);
    }

    struct Named(&'static str);
    impl HeaderRewrite for Named {
        fn configure(config: &Config) -> Result<Self, String> {
            Ok(Named(if config.get("bad").is_some() { "x y" } else { "Location" }))
        }
        fn interest(&self) -> Interest {
            Interest { request: PhaseInterest::headers([self.0]), ..Interest::default() }
        }
    }

    #[test]
    fn interest_names_are_lowercased_like_the_host_does() {
        let mut h = HeaderRewriteHarness::<Named>::new("{}").expect("configure");
        assert_eq!(h.interest().request.headers, ["location"]);
        assert!(h.request("GET", "/", &[("LOCATION", "/x")]).called);
    }

    #[test]
    #[should_panic(expected = "must be header names")]
    fn interest_names_must_be_header_names() {
        let _ = HeaderRewriteHarness::<Named>::new(r#"{"bad": true}"#);
    }
}
