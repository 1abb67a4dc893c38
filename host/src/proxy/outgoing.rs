//! The request as it goes to members: the header rules applied once (to its map, or written
//! from a plain request's lines), and what each attempt adds for its member (its path and
//! Host).

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Uri, Version, header, request::Parts};

use super::body::RequestBody;
use super::respond::ProxyError;
use super::route::{self, forward_path};
use super::{ProxyMember, headers, upgrade};
use crate::codec::lines::{HeaderLines, HeaderView};
use crate::config::Upgrades;
use crate::head_buffer::HeadBuffer;
use crate::upstream::HeadFields;

/// Who a request is relayed for, and how: what the forwarding rules need.
pub(super) struct Way<'a> {
    /// The client's X-Forwarded-For entry.
    pub(super) forwarded_for: &'a HeaderValue,
    /// Whether the client is a proxy of ours (its forwarding headers are kept and extended).
    pub(super) trusted: bool,
    /// The public scheme: `https` on a TLS listener.
    pub(super) scheme: &'static str,
    /// The request's `X-Request-Id`, when the access log gives requests one.
    pub(super) request_id: Option<&'a HeaderValue>,
}

/// What a member's base path is joined to: the route's rest of the client's path, and the
/// client's query.
pub(super) enum Rest {
    /// The rest is the tail of the client's path from `at` (as on most routes: the client
    /// spelled its path canonically). The client's path is kept, which shares the head's
    /// bytes, instead of copying the rest into a string of its own for every request.
    Tail { client: PathAndQuery, at: usize },
    /// The rest is spelled otherwise (canonicalized).
    Spelled { rest: String, query: Option<String> },
}

impl Rest {
    /// `rest`, which the client's `uri` may end with.
    pub(super) fn of(uri: &Uri, rest: &str) -> Self {
        if let Some(client) = uri.path_and_query() {
            let path = client.path();
            if let Some(at) = path.len().checked_sub(rest.len())
                && path.get(at..) == Some(rest)
            {
                return Rest::Tail { client: client.clone(), at };
            }
        }
        Rest::Spelled { rest: rest.to_string(), query: uri.query().map(str::to_string) }
    }

    fn rest(&self) -> &str {
        match self {
            Rest::Tail { client, at } => client.path().get(*at..).unwrap_or_default(),
            Rest::Spelled { rest, .. } => rest,
        }
    }

    fn query(&self) -> Option<&str> {
        match self {
            Rest::Tail { client, .. } => client.query(),
            Rest::Spelled { query, .. } => query.as_deref(),
        }
    }
}

/// The request as it goes to members, minus what depends on the member (URI, Host).
pub(crate) struct Outgoing {
    rest: Rest,
    client_host: Option<HeaderValue>,
    preserve_host: bool,
    /// Whether the request may be sent again after an exchange broke: an idempotent method
    /// and no body (the parts come back with the failure; there is no body to replay).
    replayable: bool,
    /// The client asked for a WebSocket upgrade; what the route allows (a member may allow
    /// it too).
    pub(super) upgrade: Option<Upgrades>,
    /// The public scheme: `https` on a TLS listener.
    scheme: &'static str,
    /// A plain request's header lines as every member gets them (Host aside), written once;
    /// the parts' map is then empty. `None`: the parts' map holds the headers.
    written: Option<HeadBuffer>,
}

impl Outgoing {
    /// Applies the header rules (see [`headers`]) to the request: to `parts`' map, or, for a
    /// plain request with its client's `lines`, once into the lines every member gets (into
    /// the map when `map_wanted`). Returns what each attempt needs.
    pub(super) fn prepare(parts: &mut Parts, lines: Option<HeaderLines>, map_wanted: bool, rest: Rest, no_body: bool, preserve_host: bool, way: &Way<'_>) -> Self {
        let lines = match lines {
            Some(lines) if map_wanted => {
                parts.headers = lines.into_map();
                None
            }
            lines => lines,
        };
        let fields = HeaderView::of(&parts.headers, lines.as_ref());
        // An absolute-form target's authority wins over Host (RFC 9112 §3.2.2).
        let client_host = match parts.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => fields.value(&header::HOST),
        };
        let forwarding = headers::Forwarding::decide(fields, way.forwarded_for, client_host.as_ref(), way.scheme, way.trusted);
        let written = match lines {
            Some(lines) => Some(headers::write_lines(&lines, &forwarding, way.request_id)),
            None => {
                headers::apply(&mut parts.headers, &forwarding, way.request_id);
                None
            }
        };
        parts.version = Version::HTTP_11;
        let replayable = is_idempotent(&parts.method) && no_body;
        Self { rest, client_host, preserve_host, replayable, upgrade: None, scheme: way.scheme, written }
    }

    /// The host the client asked for, as text (empty when it named none).
    pub(crate) fn client_host(&self) -> &str {
        self.client_host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("")
    }

    /// The scheme clients use: `https` on a TLS listener.
    pub(crate) fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// Whether the request may be sent again after an exchange broke.
    pub(crate) fn replayable(&self) -> bool {
        self.replayable
    }

    /// The Host `member` gets: the client's with `preserve_host`, else the member's own.
    fn host_for<'a>(&'a self, member: &'a ProxyMember) -> Option<&'a HeaderValue> {
        if self.preserve_host { self.client_host.as_ref() } else { member.conn.host_header() }
    }

    /// Where the head sent to `member` takes its header lines from.
    pub(crate) fn head_fields<'a>(&'a self, member: &'a ProxyMember) -> HeadFields<'a> {
        self.head_fields_with(self.host_for(member))
    }

    /// Where a head takes its header lines from, its member's Host being `host`.
    fn head_fields_with<'a>(&'a self, host: Option<&'a HeaderValue>) -> HeadFields<'a> {
        match &self.written {
            Some(lines) => HeadFields::Written { host, lines },
            None => HeadFields::Map,
        }
    }

    /// The request for `member`, with its path and (in its map) Host.
    pub(crate) fn for_member(&self, mut parts: Parts, body: RequestBody, member: &ProxyMember) -> Result<Request<RequestBody>, ProxyError> {
        let base = &member.config.base_path;
        // The parts' URI is the client's (or the last member's): kept when it is already the
        // path this member gets, as on most routes, instead of built and parsed again.
        let unchanged = parts.uri.scheme().is_none()
            && parts.uri.path_and_query().is_some_and(|sent| route::is_forward_path(sent.as_str(), base, self.rest.rest(), self.rest.query()));
        if !unchanged {
            let path = forward_path(base, self.rest.rest(), self.rest.query());
            parts.uri = path.parse::<Uri>().map_err(|e| ProxyError::BadRequest { reason: format!("path `{path}`: {e}") })?;
        }
        if self.written.is_none() {
            set_host(&mut parts.headers, self.host_for(member));
        }
        if let Some(route) = self.upgrade {
            if route.union(member.config.upgrade).websocket {
                upgrade::ask_member(&mut parts.headers);
            } else {
                // A member tried earlier may have been allowed the upgrade; this one is not.
                parts.headers.remove(header::UPGRADE);
                parts.headers.remove(header::CONNECTION);
            }
        }
        Ok(Request::from_parts(parts, body))
    }
}

/// Sets (or removes) a request map's Host.
fn set_host(headers: &mut http::HeaderMap, host: Option<&HeaderValue>) {
    match host {
        Some(h) => headers.insert(header::HOST, h.clone()),
        None => headers.remove(header::HOST),
    };
}

/// The heads a member gets for a plain request (`method`, `uri`, the client's `lines`) from
/// `peer`, both ways: through a header map and through written lines, the member's Host
/// being `host`. For the request-head fuzz target, which holds them equal.
pub(crate) fn member_heads(
    method: &Method,
    uri: &Uri,
    lines: &HeaderLines,
    peer: &HeaderValue,
    trusted: bool,
    request_id: Option<&HeaderValue>,
    host: Option<&HeaderValue>,
) -> [Vec<u8>; 2] {
    let way = Way { forwarded_for: peer, trusted, scheme: "https", request_id };
    let parts = || {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = method.clone();
        parts.uri = uri.clone();
        parts
    };
    let framing = crate::upstream::RequestFraming::None;
    let mut by_map = parts();
    let outgoing = Outgoing::prepare(&mut by_map, Some(lines.clone()), true, Rest::of(uri, ""), true, false, &way);
    set_host(&mut by_map.headers, host);
    let mut map_head = Vec::new();
    crate::upstream::encode_head(&by_map, outgoing.head_fields_with(host), framing, false, &mut map_head);
    let mut by_lines = parts();
    let outgoing = Outgoing::prepare(&mut by_lines, Some(lines.clone()), false, Rest::of(uri, ""), true, false, &way);
    let mut lines_head = Vec::new();
    crate::upstream::encode_head(&by_lines, outgoing.head_fields_with(host), framing, false, &mut lines_head);
    [map_head, lines_head]
}

fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}
