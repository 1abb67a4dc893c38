//! WebSocket upgrades, as httpd's `upgrade=websocket`: allowed per route or per member,
//! forwarded only when the client asks for exactly that, and tunnelled only after the member
//! answered `101 Switching Protocols`.
//!
//! Every other `Upgrade` (h2c, TLS, anything) is a hop-by-hop header like the rest and is not
//! forwarded: the request goes to the member as plain HTTP. Until the member's 101 nothing
//! but HTTP crosses the proxy; after it, the connection's guard stops reading HTTP and the
//! bytes are relayed as they come.

use std::sync::{Arc, Mutex};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::body::ResponseBody;
use crate::codec::ascii::eq_ignore_case;
use crate::codec::fields::connection_has;
use crate::codec::lines::HeaderView;
use crate::edge::ConnShared;
use crate::upstream::{SwitchedResponse, Tunnel};

/// Carries a member's side of a tunnel from the exchange to the service, in the 101
/// response's extensions (hyper hands the client's side over only once the 101 is written).
#[derive(Debug, Clone)]
struct TunnelSlot(Arc<Mutex<Option<Tunnel>>>);

impl TunnelSlot {
    /// Takes the member side out (once).
    fn take(&self) -> Option<Tunnel> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// The client's 101 for a member that switched to WebSocket.
pub(crate) fn switched_response(switched: SwitchedResponse) -> Response<ResponseBody> {
    let SwitchedResponse { mut headers, tunnel } = switched;
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let mut response = Response::new(ResponseBody::Local(None));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = headers;
    response.extensions_mut().insert(TunnelSlot(Arc::new(Mutex::new(Some(tunnel)))));
    response
}

/// Whether `request`, with its header fields `headers`, asks for a WebSocket upgrade: HTTP/1.1 GET, `Upgrade: websocket` (that
/// one protocol) and `upgrade` among the Connection tokens.
pub(crate) fn wants_websocket<B>(request: &Request<B>, headers: HeaderView<'_>) -> bool {
    if request.version() != Version::HTTP_11 || request.method() != Method::GET {
        return false;
    }
    let mut upgrade = headers.get_all(&header::UPGRADE);
    let Some(first) = upgrade.next() else { return false };
    let websocket = eq_ignore_case(first.trim_ascii(), b"websocket") && upgrade.next().is_none();
    websocket && connection_has(headers, b"upgrade")
}

/// Asks the member for the upgrade (the client's own Upgrade and Connection are gone by now).
pub(crate) fn ask_member(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// If the member switched protocols, joins the client's connection to the member's once
/// hyper hands it over, and tells the guard the connection is no longer HTTP.
pub(crate) fn start_tunnel(response: &mut Response<ResponseBody>, on_upgrade: Option<OnUpgrade>, conn: &Arc<ConnShared>) {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let member = response.extensions_mut().remove::<TunnelSlot>().and_then(|slot| slot.take());
    let (Some(member), Some(on_upgrade)) = (member, on_upgrade) else {
        return;
    };
    let counted = conn.set_tunnel();
    tokio::spawn(async move {
        let _counted = counted;
        match on_upgrade.await {
            Ok(client) => member.run(TokioIo::new(client)).await,
            Err(e) => tracing::debug!(error = %e, "client connection not handed over for the tunnel"),
        }
    });
}
