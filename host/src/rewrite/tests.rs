//! The host's side of header rewriting, with native rewriters.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use http::HeaderMap;

use super::*;

/// Returns fixed edits and records what it was shown.
struct Scripted {
    interest: Interest,
    edits: Vec<Edit>,
    seen: Mutex<Vec<Vec<Header>>>,
    fail: bool,
}

impl Scripted {
    fn new(interest: Interest, edits: Vec<Edit>) -> Arc<Self> {
        Arc::new(Self { interest, edits, seen: Mutex::new(Vec::new()), fail: false })
    }
}

impl HeaderRewriter for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn interest(&self) -> &Interest {
        &self.interest
    }
    fn on_request(&self, _: &Context<'_>, _: &str, _: &str, headers: &[Header]) -> Result<Vec<Edit>, RewriteError> {
        self.seen.lock().expect("lock").push(headers.to_vec());
        if self.fail {
            return Err(RewriteError("trapped".into()));
        }
        Ok(self.edits.clone())
    }
    fn on_response(&self, c: &Context<'_>, _: u16, headers: &[Header]) -> Result<Vec<Edit>, RewriteError> {
        self.on_request(c, "", "", headers)
    }
}

fn header(name: &str, value: &str) -> Header {
    Header { name: name.into(), value: value.into() }
}

fn response_interest(headers: &[&str], always: bool) -> Interest {
    Interest { request: PhaseInterest::default(), response: PhaseInterest { headers: headers.iter().map(|h| h.to_string()).collect(), always } }
}

fn context() -> Context<'static> {
    Context { public_prefix: "/app/", public_scheme: "http", public_host: "example.com", targets: &[], member: "http://m:1", position: 0 }
}

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(http::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
    }
    h
}

#[test]
fn a_rewriter_sees_only_what_it_asked_for_and_is_skipped_otherwise() {
    let r = Scripted::new(response_interest(&["location"], false), vec![]);
    let chain = RewriteChain::new(vec![r.clone()]);
    let mut plain = map(&[("content-type", "text/plain")]);
    chain.on_response(&context(), 200, &mut plain);
    assert!(r.seen.lock().expect("lock").is_empty(), "not called without a Location");
    let mut redirect = map(&[("content-type", "text/plain"), ("Location", "http://m:1/x")]);
    chain.on_response(&context(), 302, &mut redirect);
    assert_eq!(*r.seen.lock().expect("lock"), [vec![header("location", "http://m:1/x")]]);
    chain.on_request(&context(), "GET", "/", &mut redirect);
    assert_eq!(r.seen.lock().expect("lock").len(), 1, "no request interest: never called for requests");
    assert_eq!(chain.stats().calls.load(Ordering::Relaxed), 1);
}

#[test]
fn always_and_star() {
    let r = Scripted::new(response_interest(&["*"], true), vec![]);
    let chain = RewriteChain::new(vec![r.clone()]);
    chain.on_response(&context(), 200, &mut HeaderMap::new());
    chain.on_response(&context(), 200, &mut map(&[("a", "1"), ("b", "2")]));
    assert_eq!(*r.seen.lock().expect("lock"), [vec![], vec![header("a", "1"), header("b", "2")]]);
}

#[test]
fn edits_apply_in_order_and_bad_ones_are_refused_and_counted() {
    let edits = vec![
        Edit::Set(header("Location", "http://example.com/app/x")),
        Edit::Append(header("x-added", "1")),
        Edit::Append(header("x-added", "2")),
        Edit::Set(header("x-evil", "a\r\nSet-Cookie: stolen=1")),
        Edit::Set(header("x-nul", "a\0b")),
        Edit::Set(header("bad name", "x")),
        Edit::Set(header("content-length", "0")),
        Edit::Remove("Transfer-Encoding".into()),
        Edit::Set(header("host", "elsewhere")),
        Edit::Append(header("connection", "close")),
        Edit::Remove("x-gone".into()),
    ];
    let r = Scripted::new(response_interest(&["location"], false), edits);
    let chain = RewriteChain::new(vec![r]);
    let mut h = map(&[("location", "http://m:1/x"), ("x-gone", "1"), ("content-length", "5")]);
    chain.on_response(&context(), 302, &mut h);
    assert_eq!(h["location"], "http://example.com/app/x");
    let added: Vec<&str> = h.get_all("x-added").iter().map(|v| v.to_str().expect("ascii")).collect();
    assert_eq!(added, ["1", "2"]);
    assert!(!h.contains_key("x-evil") && !h.contains_key("x-nul") && !h.contains_key("x-gone"));
    assert_eq!(h["content-length"], "5", "framing untouched");
    assert!(!h.contains_key("host") && !h.contains_key("connection"));
    assert_eq!(chain.stats().applied.load(Ordering::Relaxed), 4);
    assert_eq!(chain.stats().refused.load(Ordering::Relaxed), 7);
}

#[test]
fn a_chain_passes_headers_along_and_survives_a_failing_link() {
    let first = Scripted::new(response_interest(&["location"], false), vec![Edit::Set(header("location", "/one"))]);
    let failing = Arc::new(Scripted { interest: response_interest(&["location"], false), edits: vec![], seen: Mutex::new(vec![]), fail: true });
    let last = Scripted::new(response_interest(&["location"], false), vec![Edit::Append(header("x-saw", "yes"))]);
    let chain = RewriteChain::new(vec![first, failing.clone(), last.clone()]);
    let mut h = map(&[("location", "/zero")]);
    chain.on_response(&context(), 302, &mut h);
    assert_eq!(*failing.seen.lock().expect("lock"), [vec![header("location", "/one")]], "the second sees the first's result");
    assert_eq!(h["location"], "/one", "the failing link changed nothing");
    assert_eq!(*last.seen.lock().expect("lock"), [vec![header("location", "/one")]], "the link after a failing one sees the headers as they were");
    assert_eq!(h["x-saw"], "yes");
    assert_eq!(chain.stats().failures.load(Ordering::Relaxed), 1);
}
