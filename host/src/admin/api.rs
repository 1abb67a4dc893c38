//! The JSON API: balancers and members as JSON, and each call turned into one
//! [`Change`] for the control layer — the one path the page's forms and httpd's
//! `/balancer-manager` shape take too.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use crate::config::{self, StatusFlags};
use crate::control::overlay::same_url;
use crate::control::{Change, Control, ControlError, DirError, LbMethodChoice, MemberChange, MemberRef, View};
use crate::proxy::{Proxy, ProxyBalancer, ProxyMember};

/// An admin answer.
pub(super) type Answer = Response<Full<Bytes>>;

/// A JSON answer.
pub(super) fn json_response(status: StatusCode, value: &Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

/// A JSON error with its reason.
pub(super) fn error(status: StatusCode, reason: impl Into<String>) -> Answer {
    json_response(status, &json!({ "error": reason.into() }))
}

/// A refused change, with the status its cause deserves.
pub(super) fn refused(e: &ControlError) -> Answer {
    let status = match e {
        ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        ControlError::Unavailable(_) | ControlError::InUse(_) => StatusCode::CONFLICT,
        ControlError::Dir(DirError::Name(_) | DirError::NotAFile(_) | DirError::NotAComponent(_)) => StatusCode::BAD_REQUEST,
        ControlError::Dir(DirError::Version(_)) => StatusCode::NOT_FOUND,
        ControlError::Dir(DirError::Io { source, .. }) if source.kind() == std::io::ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ControlError::Dir(DirError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND,
        // Outside the directory (a symlink leading out), as cap-std refuses it.
        ControlError::Dir(DirError::Io { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => StatusCode::BAD_REQUEST,
        ControlError::NotKept(_) | ControlError::Dir(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ControlError::Invalid(_) | ControlError::File(_) | ControlError::Refused(_) => StatusCode::BAD_REQUEST,
    };
    error(status, format!("refused; nothing changed: {e}"))
}

pub(super) fn list(control: &Control, nonce: &str) -> Answer {
    let (proxy, view) = (control.current(), control.view());
    let balancers: Vec<Value> = proxy.balancers().iter().enumerate().map(|(i, b)| balancer_json(&proxy, &view, i, b)).collect();
    json_response(StatusCode::OK, &json!({ "nonce": nonce, "balancers": balancers, "overrides": !view.overlay.is_empty() }))
}

pub(super) fn one(control: &Control, name: &str) -> Answer {
    let (proxy, view) = (control.current(), control.view());
    match proxy.balancers().iter().position(|b| b.name() == name) {
        Some(i) => json_response(StatusCode::OK, &balancer_json(&proxy, &view, i, &proxy.balancers()[i])),
        None => error(StatusCode::NOT_FOUND, format!("no balancer named {name}")),
    }
}

pub(super) fn overrides(control: &Control) -> Answer {
    let view = control.view();
    json_response(StatusCode::OK, &json!({ "overlay": view.overlay, "passed_over": view.passed_over }))
}

pub(super) fn balancer_json(proxy: &Proxy, view: &View, index: usize, b: &ProxyBalancer) -> Value {
    let file = view.file.balancers.iter().find(|f| f.name == b.name());
    let changes = view.overlay.balancers.get(b.name());
    let members: Vec<Value> = b.members().iter().enumerate().map(|(i, m)| member_json(proxy, view, index, i, m)).collect();
    let failover = b.failover();
    let stats = b.stats();
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    json!({
        "name": b.name(),
        "lbmethod": b.lbmethod().name(),
        "lbmethod_version": b.lbmethod().version(),
        "lbmethod_config": method_config(view, b.name()),
        "rollback_available": changes.is_some_and(|c| c.rollback.is_some()),
        "maxattempts": b.maxattempts(),
        "nofailover": failover.nofailover,
        "forcerecovery": failover.forcerecovery,
        "failonstatus": failover.failonstatus,
        "failontimeout": failover.failontimeout,
        "timeout_ms": failover.timeout.as_millis() as u64,
        "stickysession": b.sticky().map(crate::config::StickySession::names),
        "stickysessionsep": b.sticky().map(|s| s.separator.map(String::from).unwrap_or_default()),
        "scolonpathdelim": b.sticky().is_some_and(|s| s.scolon_path_delim),
        "lbmethod_failures": stats.method_failures.load(relaxed),
        "refused_answers": stats.refused_answers.load(relaxed),
        "fallbacks": stats.fallbacks.load(relaxed),
        "fallbacks_to_previous": stats.fallbacks_to_previous.load(relaxed),
        "planned_picks": stats.planned_picks.load(relaxed),
        "previous_lbmethod": b.previous_method().map(|m| m.name().to_string()),
        "shadow": b.shadow().map(|shadow| shadow_json(b, shadow)),
        "changed_from_config": {
            "settings": changes.map(|c| c.settings.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
            "lbmethod": changes.is_some_and(|c| c.lbmethod.is_some()),
            "removed_members": changes.map(|c| c.removed.iter().cloned().collect::<Vec<_>>()).unwrap_or_default(),
            "in_file": file.is_some(),
        },
        "members": members,
    })
}

pub(super) fn member_json(proxy: &Proxy, view: &View, balancer: usize, index: usize, m: &ProxyMember) -> Value {
    let s = m.snapshot();
    let health = proxy.health_status(balancer, index).map(|h| {
        let spec = m.config.health.as_ref();
        json!({
            "probes": h.probes,
            "failures": h.failures,
            "last": h.last.as_ref().map(|v| json!({ "healthy": v.healthy, "reason": v.reason })),
            "check": spec.map(|c| c.plugin.source.to_string()),
            "config": spec.and_then(|c| serde_json::from_str::<Value>(&c.plugin.config_json).ok()),
            "interval_ms": spec.map(|c| c.interval.as_millis() as u64),
            "timeout_ms": spec.map(|c| c.timeout.as_millis() as u64),
            "passes": spec.map(|c| c.passes),
            "fails": spec.map(|c| c.fails),
        })
    });
    // httpd's "Init": the member is set up in this process (its pool made) — every member
    // the proxy in service has; then its flags, or "Ok".
    let set: Vec<&str> = StatusFlags::ALL.iter().filter(|(f, _, _)| s.status.contains(*f)).map(|(_, _, n)| *n).collect();
    let flag_names: Vec<&str> = std::iter::once("Init").chain(if set.is_empty() { vec!["Ok"] } else { set }).collect();
    let name = proxy.balancers()[balancer].name();
    json!({
        "index": index,
        "url": m.config.url,
        "route": m.config.route,
        "redirect": m.config.redirect,
        "loadfactor": f64::from(s.lbfactor) / 100.0,
        "lbset": m.config.lbset,
        "status": s.status.to_string(),
        "flags": flag_names,
        "elected": s.elected,
        "busy": s.busy,
        "lbstatus": s.lbstatus,
        "transferred": s.transferred,
        "read": s.read,
        "errors": s.errors,
        "health": health,
        "changed_from_config": changed(view, name, &m.config),
    })
}

/// The config of the lbmethod balancer `balancer` runs: the one a runtime change gave it, else
/// the file's.
pub(super) fn method_config(view: &View, balancer: &str) -> Value {
    let chosen = view.overlay.balancers.get(balancer).and_then(|c| c.lbmethod.as_ref()).map(|c| c.config().clone());
    chosen
        .or_else(|| view.file.balancers.iter().find(|b| b.name == balancer).and_then(|b| serde_json::from_str(&b.lbmethod.config_json).ok()))
        .unwrap_or_else(|| json!({}))
}

/// Which of a member's values differ from the config file (`added`: not in the file).
pub(super) fn changed(view: &View, balancer: &str, m: &config::Member) -> Value {
    let in_file = view.file.balancers.iter().find(|b| b.name == balancer).and_then(|b| b.members.iter().find(|f| same_url(&f.url, &m.url)));
    let Some(f) = in_file else { return json!({ "added": true }) };
    let runtime = StatusFlags::RUNTIME;
    json!({
        "added": false,
        "loadfactor": f.lbfactor != m.lbfactor,
        "lbset": f.lbset != m.lbset,
        "route": f.route != m.route,
        "redirect": f.redirect != m.redirect,
        "status": f.status.without(runtime) != m.status.without(runtime),
        "health": !same_check(f.health.as_ref(), m.health.as_ref()),
    })
}

/// Whether two members are checked the same way (where each was set is not compared).
fn same_check(a: Option<&config::HealthCheckSpec>, b: Option<&config::HealthCheckSpec>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            (a.interval, a.timeout, a.passes, a.fails) == (b.interval, b.timeout, b.passes, b.fails)
                && a.plugin.source == b.plugin.source
                && a.plugin.config_json == b.plugin.config_json
        }
        _ => false,
    }
}

/// The JSON body as an object.
fn object(body: &[u8]) -> Result<Map<String, Value>, ControlError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ControlError::Invalid("the body must be a JSON object".into())),
        Err(e) => Err(ControlError::Invalid(format!("the body is not JSON: {e}"))),
    }
}

/// A member named in a path: its number, or its URL percent-encoded (stable while other
/// members come and go).
fn member_ref(segment: &str) -> Result<MemberRef, ControlError> {
    match segment.parse() {
        Ok(index) => Ok(MemberRef::Index(index)),
        Err(_) => {
            let url = super::httpd::decode(segment);
            if url.contains("://") {
                Ok(MemberRef::Url(url))
            } else {
                Err(ControlError::NotFound(format!("`{segment}` is neither a member number (from 0) nor a member URL")))
            }
        }
    }
}

/// `PATCH …/members/{index}`: `loadfactor`, `lbset`, `route`, `redirect`, `status` ("+D-S").
pub(super) fn member_change(balancer: &str, index: &str, body: &[u8]) -> Result<Change, ControlError> {
    let member = member_ref(index)?;
    let mut change = MemberChange::default();
    for (key, value) in object(body)? {
        if key == "status" {
            let spec = value.as_str().ok_or_else(|| ControlError::Invalid("status must be a string such as \"+D\" or \"-S\"".into()))?;
            change.status = Some(spec.to_string());
        } else {
            change.keys.insert(key, value);
        }
    }
    Ok(Change::Member { balancer: balancer.to_string(), member, change })
}

/// `POST …/members`: the new member as the file would write it.
pub(super) fn add_member(balancer: &str, body: &[u8]) -> Result<Change, ControlError> {
    let member: BTreeMap<String, Value> = object(body)?.into_iter().collect();
    Ok(Change::AddMember { balancer: balancer.to_string(), member })
}

pub(super) fn remove_member(balancer: &str, index: &str) -> Result<Change, ControlError> {
    Ok(Change::RemoveMember { balancer: balancer.to_string(), member: member_ref(index)? })
}

/// `PATCH /api/balancers/{name}`: balancer keys.
pub(super) fn balancer_change(balancer: &str, body: &[u8]) -> Result<Change, ControlError> {
    Ok(Change::Balancer { balancer: balancer.to_string(), settings: object(body)?.into_iter().collect() })
}

/// `PUT …/lbmethod`: `{"builtin": NAME}`, `{"sha256": HEX}` (an uploaded version) or
/// `{"file": NAME}` (a file in the plugins directory), with an optional `config`; or the
/// component itself as the body (`Content-Type: application/wasm`).
pub(super) fn lbmethod_change(control: &Control, balancer: &str, wasm: bool, body: &[u8]) -> Result<Change, ControlError> {
    Ok(Change::LbMethod { balancer: balancer.to_string(), choice: method_choice(control, wasm, body)? })
}

/// `PUT …/shadow`: a method to run in shadow, given as for `PUT …/lbmethod`.
pub(super) fn shadow_change(control: &Control, balancer: &str, wasm: bool, body: &[u8]) -> Result<Change, ControlError> {
    Ok(Change::Shadow { balancer: balancer.to_string(), choice: Some(method_choice(control, wasm, body)?) })
}

/// `DELETE …/shadow`: no shadow.
pub(super) fn shadow_removal(balancer: &str) -> Change {
    Change::Shadow { balancer: balancer.to_string(), choice: None }
}

/// A method as the API names one: the component as the body, or a JSON object.
fn method_choice(control: &Control, wasm: bool, body: &[u8]) -> Result<LbMethodChoice, ControlError> {
    if wasm {
        let sha256 = upload(control, body)?;
        return Ok(LbMethodChoice::Stored { sha256, config: json!({}) });
    }
    let fields = object(body)?;
    let config = fields.get("config").cloned().unwrap_or_else(|| json!({}));
    if let Some(key) = fields.keys().find(|k| !["builtin", "sha256", "file", "config"].contains(&k.as_str())) {
        return Err(ControlError::Invalid(format!("unknown field `{key}` (give builtin, sha256 or file, and config)")));
    }
    let text = |k: &str| fields.get(k).map(|v| v.as_str().map(str::to_string).ok_or_else(|| ControlError::Invalid(format!("{k} must be a string"))));
    let choice = match (text("builtin").transpose()?, text("sha256").transpose()?, text("file").transpose()?) {
        (Some(name), None, None) => LbMethodChoice::Builtin { name, config },
        // Named as the page shows it (`sha256:` and a prefix) or whole: resolved with the change.
        (None, Some(sha256), None) => LbMethodChoice::Stored { sha256, config },
        (None, None, Some(file)) => {
            let store = control.store().ok_or_else(no_store)?;
            LbMethodChoice::Stored { sha256: store.import(&file)?, config }
        }
        _ => return Err(ControlError::Invalid("give exactly one of builtin, sha256 or file".into())),
    };
    Ok(choice)
}

/// `GET /api/plugins`: the versions kept.
pub(super) fn versions(control: &Control) -> Answer {
    let versions: Vec<Value> = control.store().map(|s| s.versions()).unwrap_or_default().into_iter().map(|(sha256, size)| json!({ "sha256": sha256, "size": size })).collect();
    json_response(StatusCode::OK, &json!({ "versions": versions, "uploads": control.store().is_some() }))
}

/// `DELETE /api/plugins/{version}`: forgets a kept version nothing uses (409 otherwise).
pub(super) async fn forget_version(control: &Control, peer: std::net::SocketAddr, given: &str) -> Answer {
    match control.forget_version(given).await {
        Ok(sha) => {
            tracing::info!(%peer, version = %crate::plugin::version_of(&sha), "balancer manager: plugin version forgotten");
            json_response(StatusCode::OK, &json!({ "removed": sha }))
        }
        Err(e) => {
            tracing::warn!(%peer, version = given, reason = %e, "balancer manager: plugin version not forgotten");
            refused(&e)
        }
    }
}

/// `POST /api/plugins`: keeps a component in the plugins directory (what is plainly not one
/// is refused, in words, and not kept); answers its SHA-256.
pub(super) fn upload(control: &Control, body: &[u8]) -> Result<String, ControlError> {
    let store = control.store().ok_or_else(no_store)?;
    Ok(store.put(body)?)
}

fn no_store() -> ControlError {
    ControlError::Unavailable("plugin uploads need `[admin] plugins` (a directory) in the config".into())
}

/// Makes `change`, asked for by `peer`, and says so in the log (httpd's manager leaves its
/// trail in the error log too): what was asked, by whom, and whether it was applied.
pub(super) async fn logged_change(control: &Control, peer: std::net::SocketAddr, change: Result<Change, ControlError>) -> Result<crate::control::Applied, ControlError> {
    let asked = match &change {
        Ok(change) => describe(change),
        Err(_) => "(not understood)".to_string(),
    };
    let outcome = match change {
        Ok(change) => control.change(change).await,
        Err(e) => Err(e),
    };
    match &outcome {
        Ok(applied) => tracing::info!(%peer, change = %asked, members_kept = applied.members_kept, "balancer manager: change applied"),
        Err(e) => tracing::warn!(%peer, change = %asked, reason = %e, "balancer manager: change refused"),
    }
    outcome
}

/// A change in a line for the log; a plugin's config is left out (it may hold secrets).
fn describe(change: &Change) -> String {
    match change {
        Change::LbMethod { balancer, choice } => format!("lbmethod of {balancer} to {}", choice.label()),
        Change::Shadow { balancer, choice } => format!("shadow of {balancer} to {}", choice.as_ref().map_or_else(|| "none".to_string(), LbMethodChoice::label)),
        Change::Batch(changes) => changes.iter().map(describe).collect::<Vec<_>>().join("; "),
        other => format!("{other:?}"),
    }
}

/// Answers a change made: the balancer as it is now.
pub(super) async fn made(control: &Control, peer: std::net::SocketAddr, balancer: Option<&str>, change: Result<Change, ControlError>) -> Answer {
    let outcome = logged_change(control, peer, change).await;
    match (outcome, balancer) {
        (Err(e), _) => refused(&e),
        (Ok(_), Some(name)) => one(control, name),
        (Ok(applied), None) => json_response(StatusCode::OK, &json!({ "applied": true, "members_kept": applied.members_kept })),
    }
}

/// A shadow method and what it would have done.
fn shadow_json(b: &crate::proxy::ProxyBalancer, shadow: &crate::balancer::Shadow) -> Value {
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let s = shadow.stats();
    let (agreed, disagreed) = (s.agreed.load(relaxed), s.disagreed.load(relaxed));
    let compared = agreed + disagreed;
    json!({
        "lbmethod": shadow.method().name(),
        "agreed": agreed,
        "disagreed": disagreed,
        "failed": s.failed.load(relaxed),
        "dropped": s.dropped.load(relaxed),
        "agreement": (compared > 0).then(|| agreed as f64 / compared as f64),
        "members": b.members().iter().zip(s.would_pick.iter().zip(s.lbstatus.iter())).map(|(m, (would, lbstatus))| json!({
            "url": m.config.url,
            "would_pick": would.load(relaxed),
            "lbstatus": lbstatus.load(relaxed),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_before_any_change() {
        assert!(matches!(member_change("web", "x", b"{}"), Err(ControlError::NotFound(_))));
        assert!(matches!(member_change("web", "0", b"[1]"), Err(ControlError::Invalid(_))));
        assert!(matches!(member_change("web", "0", br#"{"status": 1}"#), Err(ControlError::Invalid(_))));
        assert!(matches!(add_member("web", b"nope"), Err(ControlError::Invalid(_))));
    }
}
