//! Header rewriting: the seam between the proxy and whatever edits headers (normally a chain
//! of Wasm plugins, httpd's ProxyPassReverse first), and the host's side of the contract —
//! choosing which headers a rewriter sees, checking every edit it returns, applying the good
//! ones in order and counting the refused ones. Nothing here knows about Wasm.

mod apply;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;

pub use apply::{EditRefused, apply_edit, selected_headers};

/// An HTTP header as rewriters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name, lowercase.
    pub name: String,
    /// The value (invalid UTF-8 replaced by U+FFFD).
    pub value: String,
}

/// One change a rewriter asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Replace every value of the header (adding it if absent).
    Set(Header),
    /// Add a value.
    Append(Header),
    /// Remove every value of the header with this name.
    Remove(String),
}

/// Which messages of one direction a rewriter wants, and which of their headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhaseInterest {
    /// Lowercase header names; `*` means all.
    pub headers: Vec<String>,
    /// Call for every message, not only those carrying one of `headers`.
    pub always: bool,
}

impl PhaseInterest {
    /// Whether the rewriter wants every header.
    pub fn all(&self) -> bool {
        self.headers.iter().any(|h| h == "*")
    }

    /// Whether the rewriter never needs to be called in this direction.
    pub fn never(&self) -> bool {
        !self.always && self.headers.is_empty()
    }
}

/// What a rewriter wants to see, both ways.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interest {
    /// Requests on their way to a member.
    pub request: PhaseInterest,
    /// Responses on their way to the client.
    pub response: PhaseInterest,
}

/// Where a message goes or comes from.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The route's prefix as configured.
    pub public_prefix: &'a str,
    /// The scheme clients use.
    pub public_scheme: &'a str,
    /// The host the client asked for (its Host header), or empty.
    pub public_host: &'a str,
    /// The route's target URLs: its backend, or every member of its balancer.
    pub targets: &'a [String],
    /// The member this message goes to or comes from.
    pub member: &'a str,
    /// The rewriter's position in the chain.
    pub position: u32,
}

/// Why a rewriter gave no answer. The message is then forwarded as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RewriteError(pub String);

/// Something that edits headers. Implementations are shared by every request of a route and
/// must allow concurrent calls.
pub trait HeaderRewriter: Send + Sync + 'static {
    /// A name for logs.
    fn name(&self) -> &str;
    /// What to call it for.
    fn interest(&self) -> &Interest;
    /// Edits for a request about to go to `context.member`.
    fn on_request(&self, context: &Context<'_>, method: &str, path: &str, headers: &[Header]) -> Result<Vec<Edit>, RewriteError>;
    /// Edits for a response about to go to the client.
    fn on_response(&self, context: &Context<'_>, status: u16, headers: &[Header]) -> Result<Vec<Edit>, RewriteError>;
    /// How its calls went, for `/metrics`; `None` for a rewriter that does not count them.
    fn calls(&self) -> Option<crate::observe::PluginCalls> {
        None
    }
}

/// Counters of a route's rewrite chain.
#[derive(Debug, Default)]
pub struct RewriteStats {
    /// Calls made to rewriters.
    pub calls: AtomicU64,
    /// Edits applied.
    pub applied: AtomicU64,
    /// Edits refused (invalid name or value, a framing, hop-by-hop or Host header).
    pub refused: AtomicU64,
    /// Calls that failed (trap, circuit open): the message went on unchanged by that rewriter.
    pub failures: AtomicU64,
}

/// The rewriters of one route, applied in order.
pub struct RewriteChain {
    rewriters: Vec<Arc<dyn HeaderRewriter>>,
    stats: RewriteStats,
}

/// Which direction a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Request,
    Response,
}

impl RewriteChain {
    /// A chain of `rewriters`, called in this order.
    pub fn new(rewriters: Vec<Arc<dyn HeaderRewriter>>) -> Self {
        Self { rewriters, stats: RewriteStats::default() }
    }

    /// The chain's counters.
    pub fn stats(&self) -> &RewriteStats {
        &self.stats
    }

    /// The rewriters, in the order they are called.
    pub fn rewriters(&self) -> &[Arc<dyn HeaderRewriter>] {
        &self.rewriters
    }

    /// Whether some rewriter may edit requests (a request's headers are then a map).
    pub fn edits_requests(&self) -> bool {
        self.rewriters.iter().any(|r| !r.interest().request.never())
    }

    /// Lets every rewriter edit a request's headers.
    pub fn on_request(&self, context: &Context<'_>, method: &str, path: &str, headers: &mut HeaderMap) {
        self.run(context, Phase::Request, headers, |r, ctx, seen| r.on_request(ctx, method, path, seen));
    }

    /// Lets every rewriter edit a response's headers.
    pub fn on_response(&self, context: &Context<'_>, status: u16, headers: &mut HeaderMap) {
        self.run(context, Phase::Response, headers, |r, ctx, seen| r.on_response(ctx, status, seen));
    }

    fn run(
        &self,
        context: &Context<'_>,
        phase: Phase,
        headers: &mut HeaderMap,
        call: impl Fn(&dyn HeaderRewriter, &Context<'_>, &[Header]) -> Result<Vec<Edit>, RewriteError>,
    ) {
        for (position, rewriter) in self.rewriters.iter().enumerate() {
            let interest = match phase {
                Phase::Request => &rewriter.interest().request,
                Phase::Response => &rewriter.interest().response,
            };
            let Some(seen) = selected_headers(interest, headers) else { continue };
            self.stats.calls.fetch_add(1, Ordering::Relaxed);
            let context = Context { position: position as u32, ..context.clone() };
            let edits = match call(rewriter.as_ref(), &context, &seen) {
                Ok(edits) => edits,
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(rewriter = rewriter.name(), error = %e, ?phase, "header rewrite failed; headers left as they were");
                    continue;
                }
            };
            for edit in &edits {
                match apply_edit(headers, edit) {
                    Ok(()) => self.stats.applied.fetch_add(1, Ordering::Relaxed),
                    Err(refused) => {
                        tracing::warn!(rewriter = rewriter.name(), ?phase, reason = %refused, "header edit refused");
                        self.stats.refused.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }
    }
}

#[cfg(test)]
mod tests;
