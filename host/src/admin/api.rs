//! The JSON API's handlers, and the one member edit every way of asking goes through (the
//! JSON `PATCH`, the page's forms and httpd's `/balancer-manager` shape).

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::config::StatusFlags;
use crate::proxy::{Proxy, ProxyBalancer, ProxyMember};
use crate::server::Reloader;

/// A JSON answer.
pub(super) fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

/// A JSON error with its reason.
pub(super) fn error(status: StatusCode, reason: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": reason.into() }))
}

pub(super) fn list(proxy: &Proxy, nonce: &str) -> Response<Full<Bytes>> {
    let balancers: Vec<Value> = proxy.balancers().iter().enumerate().map(|(i, b)| balancer_json(proxy, i, b)).collect();
    json_response(StatusCode::OK, &json!({ "nonce": nonce, "balancers": balancers }))
}

pub(super) fn one(proxy: &Proxy, name: &str) -> Response<Full<Bytes>> {
    match proxy.balancers().iter().position(|b| b.name() == name) {
        Some(i) => json_response(StatusCode::OK, &balancer_json(proxy, i, &proxy.balancers()[i])),
        None => error(StatusCode::NOT_FOUND, format!("no balancer named {name}")),
    }
}

pub(super) fn balancer_json(proxy: &Proxy, index: usize, b: &ProxyBalancer) -> Value {
    let members: Vec<Value> = b.members().iter().enumerate().map(|(i, m)| member_json(proxy, index, i, m)).collect();
    let failover = b.failover();
    json!({
        "name": b.name(),
        "lbmethod": b.lbmethod().name(),
        "maxattempts": b.maxattempts(),
        "nofailover": failover.nofailover,
        "forcerecovery": failover.forcerecovery,
        "failonstatus": failover.failonstatus,
        "failontimeout": failover.failontimeout,
        "timeout_ms": failover.timeout.as_millis() as u64,
        "stickysession": b.sticky().map(|s| s.cookie.clone()),
        "members": members,
    })
}

pub(super) fn member_json(proxy: &Proxy, balancer: usize, index: usize, m: &ProxyMember) -> Value {
    let s = m.snapshot();
    let health = proxy.health_status(balancer, index).map(|h| {
        json!({
            "probes": h.probes,
            "failures": h.failures,
            "last": h.last.as_ref().map(|v| json!({ "healthy": v.healthy, "reason": v.reason })),
        })
    });
    let flag_names: Vec<&str> = StatusFlags::ALL.iter().filter(|(f, _, _)| s.status.contains(*f)).map(|(_, _, n)| *n).collect();
    json!({
        "index": index,
        "url": m.config.url,
        "route": m.config.route,
        "redirect": m.config.redirect,
        "loadfactor": f64::from(s.lbfactor) / 100.0,
        "lbset": m.config.lbset,
        "status": s.status.to_string(),
        "flags": if flag_names.is_empty() { vec!["Ok"] } else { flag_names },
        "elected": s.elected,
        "busy": s.busy,
        "lbstatus": s.lbstatus,
        "transferred": s.transferred,
        "read": s.read,
        "errors": s.errors,
        "health": health,
        "changed_from_config": {
            "loadfactor": s.lbfactor != m.config.lbfactor,
            "status": s.status.without(StatusFlags::IN_ERROR.union(StatusFlags::HEALTH_FAILED)) != m.config.status.without(StatusFlags::IN_ERROR.union(StatusFlags::HEALTH_FAILED)),
        },
    })
}

/// An edit of one member, validated whole before anything changes.
#[derive(Debug, Default)]
pub(super) struct MemberEdit {
    /// loadfactor × 100.
    lbfactor: Option<u32>,
    /// Flags to set and to clear.
    set: StatusFlags,
    clear: StatusFlags,
}

impl MemberEdit {
    /// From the JSON body of a `PATCH`: `loadfactor` (1..100, decimals allowed) and `status`
    /// (httpd's `"+D"`, `"-S+N"`…); any other key is refused with the reason.
    fn from_json(body: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let Value::Object(fields) = value else { return Err("the body must be a JSON object".into()) };
        let mut edit = MemberEdit::default();
        for (key, value) in &fields {
            match key.as_str() {
                "loadfactor" => edit.lbfactor = Some(lbfactor(value.as_f64().ok_or("loadfactor must be a number")?)?),
                "status" => edit.status(value.as_str().ok_or("status must be a string such as \"+D\" or \"-S\"")?)?,
                "lbset" | "route" | "redirect" | "url" => {
                    return Err(format!("{key} cannot be changed at runtime yet: edit the config file and POST /api/reload"));
                }
                other => return Err(format!("unknown field `{other}` (editable: loadfactor, status)")),
            }
        }
        if fields.is_empty() {
            return Err("nothing to change: give loadfactor and/or status".into());
        }
        Ok(edit)
    }

    /// An httpd status string applied as set/clear flags (after any earlier ones).
    fn status(&mut self, spec: &str) -> Result<(), String> {
        let (set, clear) = StatusFlags::changes(spec)?;
        self.set = self.set.without(clear).union(set);
        self.clear = self.clear.without(set).union(clear);
        Ok(())
    }

    /// Applies the edit to the live member: the next pick sees it.
    fn apply(&self, m: &ProxyMember) {
        if let Some(lf) = self.lbfactor {
            m.set_lbfactor(lf);
        }
        if self.set != StatusFlags::empty() {
            m.set_status(self.set, true);
        }
        if self.clear != StatusFlags::empty() {
            m.set_status(self.clear, false);
        }
    }
}

/// loadfactor as lbfactor, checked as the config file's is.
fn lbfactor(lf: f64) -> Result<u32, String> {
    crate::config::lbfactor(lf).map_err(|e| format!("loadfactor {e}"))
}

pub(super) fn patch_member(proxy: &Proxy, balancer: &str, index: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let Some((bi, b)) = proxy.balancers().iter().enumerate().find(|(_, b)| b.name() == balancer) else {
        return error(StatusCode::NOT_FOUND, format!("no balancer named {balancer}"));
    };
    let Some((mi, m)) = index.parse::<usize>().ok().and_then(|i| b.members().get(i).map(|m| (i, m))) else {
        return error(StatusCode::NOT_FOUND, format!("balancer {balancer} has no member {index} (members are numbered from 0)"));
    };
    match MemberEdit::from_json(body) {
        Ok(edit) => {
            edit.apply(m);
            tracing::info!(balancer, member = %m.config.url, "member edited from the balancer manager");
            json_response(StatusCode::OK, &member_json(proxy, bi, mi, m))
        }
        Err(reason) => error(StatusCode::BAD_REQUEST, reason),
    }
}

/// httpd's balancer-manager shape: `b` (balancer), `w` (member URL), `w_lf`, `w_status_X`
/// (`0`/`1`), in the query or a form body; other httpd fields (`w_ls`, `w_wr`, `w_rr`, balancer
/// edits) are refused with the reason, as the JSON API refuses them.
pub(super) fn httpd_form(proxy: &Proxy, query: Option<&str>, body: &[u8]) -> Response<Full<Bytes>> {
    let mut fields = query.map(form).unwrap_or_default();
    if let Ok(text) = std::str::from_utf8(body) {
        fields.extend(form(text));
    }
    let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let Some(balancer) = get("b") else { return error(StatusCode::BAD_REQUEST, "b (the balancer's name) is required") };
    let Some((bi, b)) = proxy.balancers().iter().enumerate().find(|(_, x)| x.name() == balancer) else {
        return error(StatusCode::NOT_FOUND, format!("no balancer named {balancer}"));
    };
    let Some(url) = get("w") else { return error(StatusCode::BAD_REQUEST, "w (the member's URL) is required; balancer edits are not supported yet") };
    let Some((mi, m)) = b.members().iter().enumerate().find(|(_, m)| m.config.url.trim_end_matches('/') == url.trim_end_matches('/')) else {
        return error(StatusCode::NOT_FOUND, format!("balancer {balancer} has no member {url}"));
    };
    let mut edit = MemberEdit::default();
    for (key, value) in &fields {
        let outcome = match key.as_str() {
            "b" | "w" | "nonce" => Ok(()),
            "w_lf" => value.parse::<f64>().map_err(|_| format!("w_lf `{value}` is not a number")).and_then(lbfactor).map(|lf| edit.lbfactor = Some(lf)),
            k if k.starts_with("w_status_") => {
                let letter = &k["w_status_".len()..];
                match value.as_str() {
                    "1" => edit.status(&format!("+{letter}")),
                    "0" => edit.status(&format!("-{letter}")),
                    other => Err(format!("{k} must be 0 or 1, got `{other}`")),
                }
            }
            "w_ls" | "w_wr" | "w_rr" | "w_hm" | "w_hu" | "w_hi" | "w_hp" | "w_hf" | "w_hv" => {
                Err(format!("{key} cannot be changed at runtime yet: edit the config file and reload"))
            }
            other => Err(format!("unknown field `{other}`")),
        };
        if let Err(reason) = outcome {
            return error(StatusCode::BAD_REQUEST, reason);
        }
    }
    edit.apply(m);
    tracing::info!(balancer, member = %m.config.url, "member edited from the balancer manager");
    json_response(StatusCode::OK, &member_json(proxy, bi, mi, m))
}

pub(super) async fn reload(reloader: &Reloader) -> Response<Full<Bytes>> {
    match reloader.reload_file().await {
        Ok(report) => json_response(StatusCode::OK, &json!({ "reloaded": true, "members_kept": report.members_kept })),
        Err(reason) => error(StatusCode::BAD_REQUEST, format!("config refused; the running config stays: {reason}")),
    }
}

/// `application/x-www-form-urlencoded` pairs (also a query string), decoded.
pub(super) fn form(text: &str) -> Vec<(String, String)> {
    text.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    }).collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], crate::canon::escaped_byte(bytes, i)) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        assert_eq!(form("b=my+set&w=http%3A%2F%2Fn1%3A8080&x"), [("b".into(), "my set".into()), ("w".into(), "http://n1:8080".into()), ("x".into(), String::new())]);
        assert_eq!(form("a=%zz&b=%4"), [("a".into(), "%zz".into()), ("b".into(), "%4".into())]);
    }

    #[test]
    fn edits_are_validated_whole() {
        assert!(MemberEdit::from_json(br#"{"loadfactor": 0}"#).unwrap_err().contains("between 1 and 100"));
        assert!(MemberEdit::from_json(br#"{"loadfactor": 101}"#).is_err());
        assert!(MemberEdit::from_json(br#"{"status": "+X"}"#).unwrap_err().contains("unknown status flag"));
        assert!(MemberEdit::from_json(br#"{"lbset": 100}"#).unwrap_err().contains("cannot be changed at runtime"));
        assert!(MemberEdit::from_json(br#"{"colour": 1}"#).unwrap_err().contains("unknown field"));
        assert!(MemberEdit::from_json(b"{}").is_err());
        let edit = MemberEdit::from_json(br#"{"loadfactor": 2.5, "status": "+D-S"}"#).expect("valid");
        assert_eq!(edit.lbfactor, Some(250));
        assert_eq!((edit.set, edit.clear), (StatusFlags::DISABLED, StatusFlags::STOPPED));
    }
}
