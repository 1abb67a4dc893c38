//! The balancer manager: a listener of its own (`[admin]`), separate from the traffic
//! listeners, serving
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /` | the page: every balancer and member, with forms to edit them |
//! | `GET /api/balancers` | every balancer with its members, flags and counters (and the nonce) |
//! | `GET /api/balancers/{name}` | one balancer |
//! | `PATCH /api/balancers/{name}/members/{index}` | a member's `loadfactor` and status flags |
//! | `POST /api/reload` | re-read the config file (as SIGHUP) |
//! | `GET /metrics` | Prometheus text: members' counters, flags and health checks |
//! | `POST /balancer-manager` | httpd's form/query shape (`b`, `w`, `nonce`, `w_lf`, `w_status_X`) onto the same edit |
//!
//! Protection (`guard`): a bearer token when `[admin] token` is set (required beyond
//! loopback), compared in constant time; every state change carries the per-process nonce
//! and, when a browser sends Origin or Referer, one naming this listener; GET never changes
//! state; request bodies are limited; every input is validated before anything changes.
//! Edits apply to the live members at once (flags and loadfactor are atomics the next pick
//! reads); what needs a rebuilt proxy (lbset, route, adding members…) is refused with the
//! reason.

mod api;
mod guard;
mod metrics;
mod page;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{self, TokenSource};
use crate::server::Reloader;

/// Largest admin request body.
const BODY_LIMIT: usize = 64 * 1024;

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
}

/// What every admin request sees.
pub(crate) struct AdminState {
    reloader: Reloader,
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
pub async fn start(settings: &config::Admin, reloader: Reloader) -> Result<RunningAdmin, AdminError> {
    let token = match &settings.token {
        None => None,
        Some(TokenSource::File(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| AdminError::Token(format!("{}: {e}", path.display())))?;
            Some(text.trim().to_string())
        }
        Some(TokenSource::Env(var)) => Some(std::env::var(var).map_err(|_| AdminError::Token(format!("environment variable {var} is not set")))?),
    };
    if token.as_deref().is_some_and(str::is_empty) {
        return Err(AdminError::Token("the token is empty".into()));
    }
    let listener = TcpListener::bind(settings.addr).await.map_err(|source| AdminError::Bind { addr: settings.addr, source })?;
    let addr = listener.local_addr().map_err(|source| AdminError::Bind { addr: settings.addr, source })?;
    let state = Arc::new(AdminState { reloader, token, nonce: guard::new_nonce() });
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                _ = stopped.wait_for(|s| *s) => return,
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(handle(&state, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    tracing::info!(%addr, "balancer manager listening");
    Ok(RunningAdmin { addr, stop })
}

/// One admin request: checked, then routed.
async fn handle(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Err(refusal) = guard::authorised(state, &req) {
        return refusal.response();
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return api::error(StatusCode::PAYLOAD_TOO_LARGE, format!("admin request bodies are limited to {BODY_LIMIT} bytes")),
    };
    let changes = !matches!(parts.method, Method::GET | Method::HEAD);
    if changes && let Err(refusal) = guard::may_change(state, &parts, &body) {
        return refusal.response();
    }
    let path = parts.uri.path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let proxy = state.reloader.current();
    match (&parts.method, segments.as_slice()) {
        (&Method::GET, [""]) | (&Method::GET, ["balancer-manager"]) => page::render(&proxy, &state.nonce),
        (&Method::GET, ["api", "balancers"]) => api::list(&proxy, &state.nonce),
        (&Method::GET, ["api", "balancers", name]) => api::one(&proxy, name),
        (&Method::PATCH, ["api", "balancers", name, "members", index]) => api::patch_member(&proxy, name, index, &body),
        (&Method::POST, ["api", "reload"]) => api::reload(&state.reloader).await,
        (&Method::POST, ["balancer-manager"]) => api::httpd_form(&proxy, parts.uri.query(), &body),
        (&Method::GET, ["metrics"]) => metrics::render(&proxy),
        (_, ["api", ..]) | (_, ["metrics"]) | (_, ["balancer-manager"]) | (_, [""]) => api::error(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not allowed on {path}", parts.method)),
        _ => api::error(StatusCode::NOT_FOUND, format!("no admin resource at {path}")),
    }
}
