//! The balancer manager's page: server-rendered HTML laid out like httpd's, every value
//! escaped, each member with a form that posts to `/balancer-manager` (httpd's shape) — the
//! same edit the JSON API makes. No script, nothing fetched from elsewhere.

use std::fmt::Write;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;

use crate::config::StatusFlags;
use crate::proxy::Proxy;

/// Flags the page offers to set and clear.
const FORM_FLAGS: [(char, &str); 6] = [('D', "Disabled"), ('S', "Stopped"), ('I', "Ignore errors"), ('N', "Draining"), ('R', "Hot spare"), ('H', "Hot standby")];

pub(super) fn render(proxy: &Proxy, nonce: &str) -> Response<Full<Bytes>> {
    let mut h = String::with_capacity(8192);
    h.push_str("<!doctype html><html><head><meta charset=\"utf-8\"><title>Switchyard balancer manager</title><style>\
        body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:2em}\
        th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left}th{background:#eee}.changed{background:#ffd}\
        form{margin:0}</style></head><body><h1>Switchyard balancer manager</h1>");
    for (bi, b) in proxy.balancers().iter().enumerate() {
        let f = b.failover();
        let _ = write!(
            h,
            "<h2>balancer://{}</h2><table><tr><th>LB method</th><th>Max attempts</th><th>Sticky session</th><th>No failover</th><th>Failover timeout</th><th>Fail on status</th></tr>\
             <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr></table>",
            esc(b.name()),
            esc(b.lbmethod().name()),
            b.maxattempts(),
            esc(&b.sticky().map(|s| s.cookie.clone()).unwrap_or_else(|| "(none)".into())),
            if f.nofailover { "On" } else { "Off" },
            f.timeout,
            esc(&f.failonstatus.iter().map(u16::to_string).collect::<Vec<_>>().join(","))
        );
        h.push_str("<table><tr><th>Worker URL</th><th>Route</th><th>Redirect</th><th>Factor</th><th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th><th>Errors</th><th>Health check</th><th>Edit</th></tr>");
        for (mi, m) in b.members().iter().enumerate() {
            let s = m.snapshot();
            let health = proxy.health_status(bi, mi).map_or_else(
                || "-".to_string(),
                |hs| format!("{} probes, {} failed{}", hs.probes, hs.failures, hs.last.map(|v| format!("; last: {}", v.reason)).unwrap_or_default()),
            );
            let lf_changed = if s.lbfactor != m.config.lbfactor { " class=\"changed\"" } else { "" };
            let status_changed = if s.status.without(StatusFlags::IN_ERROR.union(StatusFlags::HEALTH_FAILED)) != m.config.status { " class=\"changed\"" } else { "" };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td{lf_changed}>{}</td><td>{}</td><td{status_changed}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
                esc(&m.config.url),
                esc(&m.config.route),
                esc(&m.config.redirect),
                f64::from(s.lbfactor) / 100.0,
                m.config.lbset,
                esc(&s.status.names()),
                s.elected,
                s.busy,
                s.lbstatus,
                s.transferred,
                s.read,
                s.errors,
                esc(&health)
            );
            let _ = write!(
                h,
                "<form method=\"post\" action=\"/balancer-manager\"><input type=\"hidden\" name=\"b\" value=\"{}\"><input type=\"hidden\" name=\"w\" value=\"{}\"><input type=\"hidden\" name=\"nonce\" value=\"{}\">\
                 <label>Load factor <input name=\"w_lf\" size=\"4\" value=\"{}\"></label> ",
                esc(b.name()),
                esc(&m.config.url),
                esc(nonce),
                f64::from(s.lbfactor) / 100.0
            );
            for (letter, label) in FORM_FLAGS {
                let Some((flag, _, _)) = StatusFlags::ALL.iter().find(|(_, l, _)| *l == letter) else { continue };
                let on = s.status.contains(*flag);
                let _ = write!(
                    h,
                    "<label>{label} <select name=\"w_status_{letter}\"><option value=\"0\"{}>Off</option><option value=\"1\"{}>On</option></select></label> ",
                    if on { "" } else { " selected" },
                    if on { " selected" } else { "" }
                );
            }
            h.push_str("<button type=\"submit\">Submit</button></form></td></tr>");
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>");
    let mut r = Response::new(Full::new(Bytes::from(h)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"));
    r
}

/// HTML-escaped text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(super::esc("<script>\"x\"&'y'"), "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;");
    }
}
