//! The balancer manager: a listener of its own (`[admin]`), separate from the traffic
//! listeners, serving
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /` | the page: every balancer and member, with forms to change them |
//! | `GET /api/balancers` | every balancer with its members, flags and counters (and the nonce) |
//! | `GET /api/balancers/{name}` | one balancer |
//! | `PATCH /api/balancers/{name}` | balancer settings (maxattempts, timeout, nofailover…) |
//! | `PATCH /api/balancers/{name}/members/{index}` | a member's loadfactor, lbset, route, redirect, status flags |
//! | `POST /api/balancers/{name}/members` | add a member |
//! | `DELETE /api/balancers/{name}/members/{index}` | remove a member |
//! | `PUT /api/balancers/{name}/lbmethod` | change the lbmethod: a default one, an uploaded version, or the component as the body (hot swap) |
//! | `POST /api/balancers/{name}/lbmethod/rollback` | back to the lbmethod before the last change |
//! | `PUT /api/balancers/{name}/shadow` | run a method in shadow beside the balancer's own (given as for `lbmethod`) |
//! | `DELETE /api/balancers/{name}/shadow` | stop the shadow |
//! | `GET /api/plugins` | the versions kept in the plugins directory |
//! | `POST /api/plugins` | keep a component in the plugins directory; answers its SHA-256 |
//! | `DELETE /api/plugins/{version}` | forget a kept version no balancer uses |
//! | `POST /api/reload` | re-read the config file (as SIGHUP); runtime changes stay laid over it |
//! | `GET /api/overrides`, `DELETE /api/overrides` | the runtime changes; forget them all |
//! | `GET /metrics` | Prometheus text |
//! | `POST /balancer-manager` | httpd's form/query shape, onto the same changes (`httpd`) |
//! | `GET /balancer-manager?xml=1` | httpd's XML of every balancer and member (`xml`) |
//!
//! Every change goes through [`Control::change`]: built whole, kept (with `persist`), then
//! published, or refused with its reason and nothing changed.
//!
//! Protection (`guard`): a bearer token when `[admin] token` is set (required beyond
//! loopback), compared in constant time; every state change carries the per-process nonce
//! and, when a browser sends Origin or Referer, one naming this listener; GET never changes
//! state; request bodies are limited (plugin uploads have a limit of their own).

mod api;
mod guard;
mod httpd;
mod metrics;
mod page;
mod xml;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{self, TokenSource};
use crate::control::{Change, Control};

/// Largest admin request body.
const BODY_LIMIT: usize = 64 * 1024;
/// Largest plugin upload (a Python component is ~20 MB).
const PLUGIN_LIMIT: usize = 64 << 20;
/// Most admin connections open at once: more are closed as they come, so no one can hold
/// the process's file descriptors (which the traffic listeners need) through this listener.
const MAX_CONNECTIONS: usize = 64;
/// How long a request's head may take to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request's body may take to arrive (a plugin upload included).
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one admin connection may stay open, kept alive or not.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// A token shorter than this is warned about.
const SHORT_TOKEN: usize = 16;

/// Why the balancer manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Its address could not be bound.
    #[error("admin listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The token could not be read.
    #[error("admin token: {0}")]
    Token(String),
    /// No nonce could be drawn from the OS's random source.
    #[error("admin nonce: the OS's random source failed: {0}")]
    Nonce(getrandom::Error),
}

/// What every admin request sees.
pub(crate) struct AdminState {
    control: Arc<Control>,
    /// The bound address.
    addr: SocketAddr,
    token: Option<String>,
    nonce: String,
}

/// A running balancer manager; stopped when dropped.
pub struct RunningAdmin {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for RunningAdmin {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts the balancer manager `settings` describe, on the current runtime.
pub async fn start(settings: &config::Admin, control: Arc<Control>) -> Result<RunningAdmin, AdminError> {
    let token = match &settings.token {
        None => None,
        Some(TokenSource::File(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| AdminError::Token(format!("{}: {e}", path.display())))?;
            warn_if_readable_by_others(path);
            Some(text.trim().to_string())
        }
        Some(TokenSource::Env(var)) => Some(std::env::var(var).map_err(|_| AdminError::Token(format!("environment variable {var} is not set")))?.trim().to_string()),
    };
    match token.as_deref() {
        Some("") => return Err(AdminError::Token("the token is empty".into())),
        Some(t) if t.len() < SHORT_TOKEN => tracing::warn!(length = t.len(), "the admin token is short: use {SHORT_TOKEN} characters or more (e.g. `openssl rand -hex 32`)"),
        _ => {}
    }
    let nonce = guard::new_nonce().map_err(AdminError::Nonce)?;
    let listener = TcpListener::bind(settings.addr).await.map_err(|source| AdminError::Bind { addr: settings.addr, source })?;
    let addr = listener.local_addr().map_err(|source| AdminError::Bind { addr: settings.addr, source })?;
    let state = Arc::new(AdminState { control, addr, token, nonce });
    let (stop, mut stopped) = watch::channel(false);
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopped.wait_for(|s| *s) => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "balancer manager: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
                tracing::warn!(%peer, "balancer manager: {MAX_CONNECTIONS} connections open already; this one is closed");
                continue;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(handle(&state, peer, req).await) }
                });
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http1().timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT);
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                // At the end of its lifetime a connection is told to close once the request
                // it is serving (a change being made, say) is answered; then given a bounded
                // time for that.
                if tokio::time::timeout(CONNECTION_LIFETIME, connection.as_mut()).await.is_err() {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(BODY_TIMEOUT, connection).await;
                }
                drop(permit);
            });
        }
    });
    tracing::info!(%addr, "balancer manager listening");
    Ok(RunningAdmin { addr, stop })
}

/// Warns when the token file can be read by others than its owner.
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "the admin token file can be read by others than its owner (chmod 600 it)");
    }
}

/// The methods a resource allows, for a 405 (`None`: no such resource, 404).
fn allowed(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        [""] | ["manager.js"] | ["metrics"] | ["api", "overrides"] => "GET, HEAD",
        ["balancer-manager"] => "GET, HEAD, POST",
        ["api", "balancers"] => "GET, HEAD",
        ["api", "balancers", _] => "GET, HEAD, PATCH",
        ["api", "balancers", _, "members"] => "POST",
        ["api", "balancers", _, "members", _] => "PATCH, DELETE",
        ["api", "balancers", _, "lbmethod"] => "PUT",
        ["api", "balancers", _, "shadow"] => "PUT, DELETE",
        ["api", "balancers", _, "lbmethod", "rollback"] | ["api", "reload"] => "POST",
        ["api", "plugins"] => "GET, HEAD, POST",
        ["api", "plugins", _] => "DELETE",
        _ => return None,
    })
}

/// One admin request: checked, then routed; every answer marked as not to be sniffed.
async fn handle(state: &AdminState, peer: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut answer = route(state, peer, req).await;
    answer.headers_mut().insert(http::header::X_CONTENT_TYPE_OPTIONS, http::HeaderValue::from_static("nosniff"));
    answer
}

async fn route(state: &AdminState, peer: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Err(refusal) = guard::authorised(state, &req) {
        return refusal.response();
    }
    let (mut parts, body) = req.into_parts();
    // HEAD is GET without the body (hyper leaves the body out).
    if parts.method == Method::HEAD {
        parts.method = Method::GET;
    }
    let path = parts.uri.path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let wasm = content_type.starts_with("application/wasm");
    let changes = !matches!(parts.method, Method::GET | Method::HEAD);
    // A nonce in the header or the query is checked before the body is read; only such a
    // request may send a plugin's worth of body.
    let early = changes && guard::nonce_outside_body(&parts);
    if early && let Err(refusal) = guard::may_change(state, &parts, None) {
        return refusal.response();
    }
    let limit = match segments.as_slice() {
        ["api", "plugins"] | ["api", "balancers", _, "lbmethod" | "shadow"] if early && (wasm || segments[1] == "plugins") => PLUGIN_LIMIT,
        _ => BODY_LIMIT,
    };
    let body = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return api::error(StatusCode::PAYLOAD_TOO_LARGE, format!("this admin request's body is limited to {limit} bytes")),
        Err(_) => return api::error(StatusCode::REQUEST_TIMEOUT, format!("the body did not arrive within {BODY_TIMEOUT:?}")),
    };
    if changes && !early && let Err(refusal) = guard::may_change(state, &parts, Some(&body)) {
        return refusal.response();
    }
    let control = &*state.control;
    match (&parts.method, segments.as_slice()) {
        // httpd 2.4 changes nothing on GET either (it reads only b, w and nonce from a query);
        // a script that asks for a change that way is told, not shown the page as if it worked.
        (&Method::GET, ["balancer-manager"]) if httpd::wants_xml(parts.uri.query()) => xml::render(control),
        (&Method::GET, ["balancer-manager"]) if let Some(field) = httpd::edit_field(parts.uri.query()) => {
            let reason = format!("`{field}` asks for a change, and GET never changes anything: send the same fields with POST (curl -d '…' or -X POST)");
            let mut r = api::error(StatusCode::METHOD_NOT_ALLOWED, reason);
            r.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static("GET, POST"));
            r
        }
        (&Method::GET, [""]) | (&Method::GET, ["balancer-manager"]) => page::render(control, &state.nonce),
        (&Method::GET, ["manager.js"]) => page::script(),
        (&Method::GET, ["api", "balancers"]) => api::list(control, &state.nonce),
        (&Method::GET, ["api", "balancers", name]) => api::one(control, name),
        (&Method::PATCH, ["api", "balancers", name]) => api::made(control, peer, Some(name), api::balancer_change(name, &body)).await,
        (&Method::PATCH, ["api", "balancers", name, "members", index]) => api::made(control, peer, Some(name), api::member_change(name, index, &body)).await,
        (&Method::POST, ["api", "balancers", name, "members"]) => api::made(control, peer, Some(name), api::add_member(name, &body)).await,
        (&Method::DELETE, ["api", "balancers", name, "members", index]) => api::made(control, peer, Some(name), api::remove_member(name, index)).await,
        (&Method::PUT, ["api", "balancers", name, "lbmethod"]) => api::made(control, peer, Some(name), api::lbmethod_change(control, name, wasm, &body)).await,
        (&Method::PUT, ["api", "balancers", name, "shadow"]) => api::made(control, peer, Some(name), api::shadow_change(control, name, wasm, &body)).await,
        (&Method::DELETE, ["api", "balancers", name, "shadow"]) => api::made(control, peer, Some(name), Ok(api::shadow_removal(name))).await,
        (&Method::POST, ["api", "balancers", name, "lbmethod", "rollback"]) => {
            api::made(control, peer, Some(name), Ok(Change::Rollback { balancer: name.to_string() })).await
        }
        (&Method::GET, ["api", "plugins"]) => api::versions(control),
        (&Method::DELETE, ["api", "plugins", version]) => api::forget_version(control, peer, version).await,
        (&Method::POST, ["api", "plugins"]) => match api::upload(control, &body) {
            Ok(sha256) => api::json_response(StatusCode::CREATED, &serde_json::json!({ "sha256": sha256, "size": body.len() })),
            Err(e) => api::refused(&e),
        },
        (&Method::POST, ["api", "reload"]) => api::made(control, peer, None, Ok(Change::ReloadFile)).await,
        (&Method::GET, ["api", "overrides"]) => api::overrides(control),
        (&Method::DELETE, ["api", "overrides"]) => api::made(control, peer, None, Ok(Change::DropOverrides)).await,
        (&Method::POST, ["balancer-manager"]) => {
            let browser = parts.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
            let (name, change) = match httpd::change(parts.uri.query(), &body) {
                Ok((name, change)) => (name, Ok(change)),
                Err(e) => (String::new(), Err(e)),
            };
            match api::logged_change(control, peer, change).await {
                // A browser's form post goes back to the page (post/redirect/get).
                Ok(_) if browser => page::back_to_page(),
                Ok(_) => api::one(control, &name),
                Err(e) => api::refused(&e),
            }
        }
        (&Method::GET, ["metrics"]) => metrics::render(control),
        (method, segments) => match allowed(segments) {
            Some(allow) => {
                let mut r = api::error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {path} (allowed: {allow})"));
                r.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
                r
            }
            None => api::error(StatusCode::NOT_FOUND, format!("no admin resource at {path}")),
        },
    }
}
