//! The balancer manager's page: server-rendered HTML laid out like httpd's, every value
//! escaped, values that differ from the config file marked. Its forms post httpd's shape to
//! `/balancer-manager` (the same changes the JSON API makes); the few actions a form cannot
//! express (upload a plugin version, roll back, remove a member, forget runtime changes) are
//! buttons `manager.js` turns into JSON API calls. Nothing is fetched from elsewhere.

use std::fmt::Write;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use super::api::changed;
use crate::control::overlay::same_url;
use crate::config::{BUILTIN_LBMETHODS, PluginSource, StatusFlags};
use crate::control::{Control, LbMethodChoice};

/// Flags the page offers to set and clear: the configured ones. E and C are live state that
/// may change after the page was drawn (a form sending them back would undo that); the JSON
/// API and httpd's shape set them.
const FORM_FLAGS: [(char, &str); 6] = [('D', "Disabled"), ('S', "Stopped"), ('I', "Ignore errors"), ('N', "Draining"), ('R', "Hot spare"), ('H', "Hot standby")];

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1em}\
    th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#eee}\
    .changed{background:#ffd}form{margin:0}form.inline{display:inline}.note{color:#555}td.edit{min-width:40em}form.health{margin-top:.3em}";

pub(super) fn render(control: &Control, nonce: &str) -> Response<Full<Bytes>> {
    let (proxy, view) = (control.current(), control.view());
    let mut h = String::with_capacity(16384);
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"nonce\" content=\"{}\"><title>Switchyard balancer manager</title>\
         <style>{STYLE}</style><script src=\"/manager.js\" defer></script></head><body><h1>Switchyard balancer manager</h1>\
         <p><button data-call=\"POST /api/reload\">Reload the config file</button> ",
        esc(nonce)
    );
    if !view.overlay.is_empty() {
        h.push_str("<button data-call=\"DELETE /api/overrides\" data-confirm=\"Forget every runtime change?\">Forget runtime changes</button> <span class=\"note\">Marked values differ from the config file.</span>");
    }
    h.push_str("</p>");
    for note in &view.passed_over {
        let _ = write!(h, "<p class=\"note\">Kept change passed over: {}</p>", esc(note));
    }
    for (bi, b) in proxy.balancers().iter().enumerate() {
        let f = b.failover();
        let changes = view.overlay.balancers.get(b.name());
        let set = |key: &str| if changes.is_some_and(|c| c.settings.contains_key(key)) { " class=\"changed\"" } else { "" };
        let chosen = changes.and_then(|c| c.lbmethod.as_ref());
        let name = esc(b.name());
        let sticky = b.sticky().map_or_else(
            || "(none)".to_string(),
            crate::config::StickySession::names,
        );
        let _ = write!(
            h,
            "<h2>balancer://{name}</h2><table><tr><th>LB method</th><th>Version</th><th>Max attempts</th><th>Sticky session</th><th>No failover</th><th>Failover timeout</th><th>Fail on status</th><th>Fail on timeout</th><th>Force recovery</th></tr>\
             <tr><td{chosen}>{}</td><td{chosen}>{}</td><td{}>{}</td><td{}>{}</td><td{}>{}</td><td{}>{}</td><td{}>{}</td><td{}>{}</td><td{}>{}</td></tr></table>",
            esc(b.lbmethod().name()),
            esc(b.lbmethod().version()),
            set("maxattempts"),
            b.maxattempts(),
            set("stickysession"),
            esc(&sticky),
            set("nofailover"),
            on_off(f.nofailover),
            set("timeout"),
            if f.timeout.is_zero() { "-".to_string() } else { format!("{:?}", f.timeout) },
            set("failonstatus"),
            esc(&f.failonstatus.iter().map(u16::to_string).collect::<Vec<_>>().join(",")),
            set("failontimeout"),
            on_off(f.failontimeout),
            set("forcerecovery"),
            on_off(f.forcerecovery),
            chosen = if chosen.is_some() { " class=\"changed\"" } else { "" },
        );
        let versions = control.store().map(|s| s.versions()).unwrap_or_default();
        let current = match chosen {
            Some(LbMethodChoice::Stored { sha256, .. }) => format!("sha256:{sha256}"),
            _ => format!("builtin:{}", b.lbmethod().name()),
        };
        if let Some(shadow) = b.shadow() {
            shadow_table(&mut h, b, shadow);
        }
        let settings = Settings {
            maxattempts: b.maxattempts(),
            timeout: f.timeout,
            nofailover: f.nofailover,
            sticky: if b.sticky().is_some() { sticky.clone() } else { String::new() },
            method: current,
            method_config: super::api::method_config(&view, b.name()).to_string(),
            rollback: changes.is_some_and(|c| c.rollback.is_some()),
        };
        balancer_forms(&mut h, &name, nonce, &settings, &versions);
        h.push_str("<table><tr><th>Worker URL</th><th>Route</th><th>Redirect</th><th>Factor</th><th>Set</th><th>Status</th><th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th><th>Errors</th><th>Health check</th><th>Edit</th></tr>");
        for (mi, m) in b.members().iter().enumerate() {
            let s = m.snapshot();
            let health = match (proxy.health_status(bi, mi), m.config.health.as_ref()) {
                (Some(hs), Some(spec)) => format!(
                    "{} {} every {:?} (timeout {:?}; out after {} failed, back after {} passed): {} probes, {} failed{}",
                    spec.plugin.source,
                    spec.plugin.config_json,
                    spec.interval,
                    spec.timeout,
                    spec.fails,
                    spec.passes,
                    hs.probes,
                    hs.failures,
                    hs.last.map(|v| format!("; last: {}", v.reason)).unwrap_or_default()
                ),
                _ => "-".to_string(),
            };
            let diff = changed(&view, b.name(), &m.config);
            let in_file = view.file.balancers.iter().find(|f| f.name == b.name()).and_then(|f| f.members.iter().find(|f| same_url(&f.url, &m.config.url)));
            // A changed value is marked, with what the file says on hover.
            let mark = |key: &str| {
                if !diff.get(key).and_then(serde_json::Value::as_bool).unwrap_or(false) {
                    return String::new();
                }
                let file_value = match (key, in_file) {
                    ("added", _) | (_, None) => "not in the config file: added at run time".to_string(),
                    ("route", Some(f)) => format!("in the config file: {}", f.route),
                    ("redirect", Some(f)) => format!("in the config file: {}", f.redirect),
                    ("loadfactor", Some(f)) => format!("in the config file: {}", f64::from(f.lbfactor) / 100.0),
                    ("lbset", Some(f)) => format!("in the config file: {}", f.lbset),
                    (_, Some(f)) => format!("in the config file: {}", f.status.without(StatusFlags::RUNTIME).names()),
                };
                format!(" class=\"changed\" title=\"{}\"", esc(&file_value))
            };
            let manage = format!("/balancer-manager?b={}&w={}&nonce={}", url_segment(b.name()), url_segment(&m.config.url), url_segment(nonce));
            let _ = write!(
                h,
                "<tr><td{}><a href=\"{}\">{}</a></td><td{}>{}</td><td{}>{}</td><td{}>{}</td><td{}>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"edit\">",
                mark("added"),
                esc(&manage),
                esc(&m.config.url),
                mark("route"),
                esc(&m.config.route),
                mark("redirect"),
                esc(&m.config.redirect),
                mark("loadfactor"),
                f64::from(s.lbfactor) / 100.0,
                mark("lbset"),
                m.config.lbset,
                mark("status"),
                esc(&httpd_status(s.status)),
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
                "<form method=\"post\" action=\"/balancer-manager\">{}<input type=\"hidden\" name=\"w\" value=\"{}\">\
                 <label>Load factor <input name=\"w_lf\" size=\"4\" value=\"{}\"></label> <label>LB set <input name=\"w_ls\" size=\"2\" value=\"{}\"></label> \
                 <label>Route <input name=\"w_wr\" size=\"8\" value=\"{}\"></label> <label>Redirect <input name=\"w_rr\" size=\"8\" value=\"{}\"></label><br>",
                hidden(&name, nonce),
                esc(&m.config.url),
                f64::from(s.lbfactor) / 100.0,
                m.config.lbset,
                esc(&m.config.route),
                esc(&m.config.redirect)
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
            h.push_str("<button type=\"submit\">Submit</button></form>");
            health_form(&mut h, &name, nonce, &m.config);
            let _ = write!(
                h,
                "<button data-call=\"DELETE /api/balancers/{name}/members/{}\" data-confirm=\"Remove {}?\">Remove</button></td></tr>",
                esc(&url_segment(&m.config.url)),
                esc(&m.config.url)
            );
        }
        h.push_str("</table>");
        // Members of the file that a runtime change removed: shown, so the page says
        // everything that differs from the file, with a way back.
        for url in changes.map(|c| c.removed.iter()).into_iter().flatten() {
            let _ = write!(
                h,
                "<form method=\"post\" action=\"/balancer-manager\" class=\"removed changed\">{}<input type=\"hidden\" name=\"b_wyes\" value=\"1\"><input type=\"hidden\" name=\"b_nwrkr\" value=\"{url}\">\
                 Removed at run time (still in the config file): {url} <button type=\"submit\">Add back</button></form>",
                hidden(&name, nonce),
                url = esc(url)
            );
        }
    }
    h.push_str("</body></html>");
    let mut r = Response::new(Full::new(Bytes::from(h)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    r.headers_mut().insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// What the shadow method would have done: agreement, and per member the requests it would
/// have sent.
fn shadow_table(h: &mut String, b: &crate::proxy::ProxyBalancer, shadow: &crate::balancer::Shadow) {
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let s = shadow.stats();
    let (agreed, disagreed) = (s.agreed.load(relaxed), s.disagreed.load(relaxed));
    let agreement = if agreed + disagreed == 0 { "-".to_string() } else { format!("{:.1} %", 100.0 * agreed as f64 / (agreed + disagreed) as f64) };
    let name = esc(b.name());
    let _ = write!(
        h,
        "<table class=\"shadow\"><tr><th>Shadow LB method</th><th>Agreement</th><th>Agreed</th><th>Disagreed</th><th>Failed</th><th>Dropped</th><th>Would send</th><th></th></tr>\
         <tr><td>{}</td><td>{agreement}</td><td>{agreed}</td><td>{disagreed}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td><button data-call=\"DELETE /api/balancers/{name}/shadow\">Stop the shadow</button></td></tr></table>",
        esc(shadow.method().name()),
        s.failed.load(relaxed),
        s.dropped.load(relaxed),
        b.members().iter().zip(s.would_pick.iter()).map(|(m, n)| format!("{} {}", esc(&m.config.url), n.load(relaxed))).collect::<Vec<_>>().join(", "),
    );
}

/// The balancer-wide forms: settings, lbmethod (a default one or a kept version, with its
/// config), upload, rollback, a new member.
fn balancer_forms(h: &mut String, name: &str, nonce: &str, settings: &Settings, versions: &[(String, u64)]) {
    let selected = |value: &str| if value == settings.method { " selected" } else { "" };
    let mut methods: String = BUILTIN_LBMETHODS.iter().map(|m| format!("<option value=\"builtin:{m}\"{}>{m}</option>", selected(&format!("builtin:{m}")))).collect();
    for (sha, size) in versions {
        let value = format!("sha256:{sha}");
        let _ = write!(methods, "<option value=\"{value}\"{}>sha256:{} ({size} bytes)</option>", selected(&value), &sha[..12]);
    }
    let _ = write!(
        h,
        "<form data-lbmethod=\"/api/balancers/{name}/lbmethod\"><label>LB method <select name=\"lbm\">{methods}</select></label> \
         <label>config <input name=\"lbconfig\" size=\"30\" value=\"{config}\"></label> <button type=\"submit\">Change</button></form>\
         <label>Upload a new version <input type=\"file\" accept=\".wasm\" data-upload=\"/api/balancers/{name}/lbmethod\"></label> {}\
         <form data-lbmethod=\"/api/balancers/{name}/shadow\"><label>Shadow <select name=\"lbm\">{methods}</select></label> \
         <label>config <input name=\"lbconfig\" size=\"30\" value=\"{{}}\"></label> <button type=\"submit\">Run in shadow</button></form>\
         <form method=\"post\" action=\"/balancer-manager\">{hidden}<label>Max attempts <input name=\"b_max\" size=\"3\" value=\"{maxattempts}\"></label> \
         <label>Failover timeout (s) <input name=\"b_tmo\" size=\"4\" value=\"{timeout}\"></label> \
         <label>No failover <select name=\"b_sforce\"><option value=\"0\"{off}>Off</option><option value=\"1\"{on}>On</option></select></label> \
         <label>Sticky session <input name=\"b_ss\" size=\"16\" value=\"{sticky}\"></label> <button type=\"submit\">Set</button></form>\
         <form method=\"post\" action=\"/balancer-manager\">{hidden}<input type=\"hidden\" name=\"b_wyes\" value=\"1\"><label>Add member <input name=\"b_nwrkr\" size=\"30\" placeholder=\"http://host:port\"></label> <button type=\"submit\">Add</button></form>",
        if settings.rollback { format!("<button data-call=\"POST /api/balancers/{name}/lbmethod/rollback\">Roll back the lbmethod</button>") } else { String::new() },
        hidden = hidden(name, nonce),
        config = esc(&settings.method_config),
        maxattempts = settings.maxattempts,
        timeout = settings.timeout.as_secs_f64(),
        off = if settings.nofailover { "" } else { " selected" },
        on = if settings.nofailover { " selected" } else { "" },
        sticky = esc(&settings.sticky),
    );
}

/// What a balancer's forms show: the settings the settings form edits (httpd's `b_max`,
/// `b_tmo`, `b_sforce`, `b_ss`) and the method in service, with its config.
struct Settings {
    maxattempts: u32,
    timeout: std::time::Duration,
    nofailover: bool,
    sticky: String,
    /// `builtin:NAME` or `sha256:HEX`, as the method form's choices are named.
    method: String,
    method_config: String,
    /// Whether there is a method to roll back to.
    rollback: bool,
}

/// A member's health-check form (httpd's `w_hm`, `w_hu`, `w_he`, `w_hi`, `w_hp`, `w_hf`),
/// showing what it is checked with now. A member checked by a plugin of its own has no
/// method, URI or expression to set (its plugin's config says how it probes).
fn health_form(h: &mut String, balancer: &str, nonce: &str, m: &crate::config::Member) {
    let spec = m.health.as_ref();
    let custom = spec.is_some_and(|s| !matches!(&s.plugin.source, PluginSource::Builtin(b) if b == "hcheck"));
    let check: serde_json::Value = spec.and_then(|s| serde_json::from_str(&s.plugin.config_json).ok()).unwrap_or_default();
    let text = |key: &str| check.get(key).and_then(serde_json::Value::as_str).map(esc).unwrap_or_default();
    let _ = write!(h, "<form method=\"post\" action=\"/balancer-manager\" class=\"health\">{}<input type=\"hidden\" name=\"w\" value=\"{}\">Health check: ", hidden(balancer, nonce), esc(&m.url));
    if !custom {
        let _ = write!(
            h,
            "<label>method <input name=\"w_hm\" size=\"6\" value=\"{}\" placeholder=\"TCP\"></label> <label>URI <input name=\"w_hu\" size=\"10\" value=\"{}\"></label> \
             <label>expr <input name=\"w_he\" size=\"20\" value=\"{}\"></label> ",
            text("method"),
            text("uri"),
            text("expr")
        );
    }
    let _ = write!(
        h,
        "<label>interval <input name=\"w_hi\" size=\"5\" value=\"{}\" placeholder=\"30s\"></label> <label>passes <input name=\"w_hp\" size=\"2\" value=\"{}\"></label> \
         <label>fails <input name=\"w_hf\" size=\"2\" value=\"{}\"></label> <button type=\"submit\">Set</button></form>",
        spec.map(|s| duration_text(s.interval)).unwrap_or_default(),
        spec.map(|s| s.passes.to_string()).unwrap_or_default(),
        spec.map(|s| s.fails.to_string()).unwrap_or_default()
    );
}

/// A duration as the config writes one (`"30s"`, `"200ms"`).
fn duration_text(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// A member's status as httpd's manager shows it: "Init" (set up in this process, as every
/// member the proxy in service has), then its flags' names or "Ok".
pub(super) fn httpd_status(status: StatusFlags) -> String {
    format!("Init {}", status.names())
}

pub(super) fn on_off(on: bool) -> &'static str {
    if on { "On" } else { "Off" }
}

/// A member URL as one path segment (every byte but unreserved ones percent-encoded).
fn url_segment(url: &str) -> String {
    url.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn hidden(balancer: &str, nonce: &str) -> String {
    format!("<input type=\"hidden\" name=\"b\" value=\"{balancer}\"><input type=\"hidden\" name=\"nonce\" value=\"{}\">", esc(nonce))
}

/// After a browser's form post: back to the page.
pub(super) fn back_to_page() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/"));
    r
}

/// The page's script: buttons and file inputs become JSON API calls carrying the nonce.
pub(super) fn script() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(SCRIPT.as_bytes())));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const SCRIPT: &str = r#"'use strict';
const nonce = document.querySelector('meta[name=nonce]').content;
async function call(method, url, body, type) {
  const headers = { 'X-Nonce': nonce };
  if (type) headers['Content-Type'] = type;
  // From the origin, not relative to the page: a page opened as http://user:token@host/
  // would make a URL with credentials in it, which fetch refuses (the browser sends the
  // Basic credentials it was given with every request to the origin anyway).
  const r = await fetch(location.origin + url, { method, headers, body });
  if (r.ok) { location.reload(); return; }
  let reason = r.statusText;
  try { reason = (await r.json()).error; } catch (e) {}
  alert(reason);
}
for (const b of document.querySelectorAll('button[data-call]')) {
  b.addEventListener('click', () => {
    if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
    const [method, url] = b.dataset.call.split(' ');
    call(method, url);
  });
}
for (const form of document.querySelectorAll('form[data-lbmethod]')) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const [kind, id] = form.querySelector('[name=lbm]').value.split(':');
    let config;
    try { config = JSON.parse(form.querySelector('[name=lbconfig]').value || '{}'); } catch (e) { alert('the config is not JSON: ' + e.message); return; }
    const body = kind === 'builtin' ? { builtin: id, config } : { sha256: id, config };
    call('PUT', form.dataset.lbmethod, JSON.stringify(body), 'application/json');
  });
}
for (const input of document.querySelectorAll('input[data-upload]')) {
  input.addEventListener('change', () => {
    if (input.files.length) call('PUT', input.dataset.upload, input.files[0], 'application/wasm');
  });
}
"#;

/// HTML-escaped text (XML-escaped too).
pub(super) fn esc(s: &str) -> String {
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
