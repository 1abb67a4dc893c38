//! httpd's `balancer-manager?xml=1`: every balancer and member in the XML httpd writes (its
//! `httpd:` element names), so monitoring scripts written for httpd read us unchanged. Read
//! only, like the rest of GET.

use std::fmt::Write;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;

use crate::control::Control;

/// The whole state as httpd's XML.
pub(super) fn render(control: &Control) -> Response<Full<Bytes>> {
    let proxy = control.current();
    let mut x = String::with_capacity(4096);
    x.push_str("<?xml version='1.0' encoding='UTF-8' ?>\n<httpd:manager xmlns:httpd='http://httpd.apache.org'>\n  <httpd:balancers>\n");
    for b in proxy.balancers() {
        let failover = b.failover();
        let method = b.lbmethod();
        x.push_str("    <httpd:balancer>\n");
        element(&mut x, 6, "name", &format!("balancer://{}", b.name()));
        if let Some(sticky) = b.sticky() {
            element(&mut x, 6, "stickysession", &sticky.names());
            element(&mut x, 6, "stickysessionsep", &sticky.separator.map(String::from).unwrap_or_default());
            element(&mut x, 6, "scolonpathdelim", super::page::on_off(sticky.scolon_path_delim));
        }
        element(&mut x, 6, "nofailover", super::page::on_off(failover.nofailover));
        element(&mut x, 6, "timeout", &failover.timeout.as_secs().to_string());
        element(&mut x, 6, "maxattempts", &b.maxattempts().to_string());
        element(&mut x, 6, "lbmethod", method.name());
        element(&mut x, 6, "lbmethod_version", method.version());
        x.push_str("      <httpd:workers>\n");
        for m in b.members() {
            let s = m.snapshot();
            let (scheme, rest) = m.config.url.split_once("://").unwrap_or(("http", &m.config.url));
            let authority = &m.config.authority;
            x.push_str("        <httpd:worker>\n");
            element(&mut x, 10, "name", &m.config.url);
            element(&mut x, 10, "scheme", scheme);
            element(&mut x, 10, "hostname", authority.host());
            element(&mut x, 10, "port", &authority.port_u16().map(|p| p.to_string()).unwrap_or_default());
            element(&mut x, 10, "path", rest.find('/').map_or("/", |i| &rest[i..]));
            element(&mut x, 10, "loadfactor", &(f64::from(s.lbfactor) / 100.0).to_string());
            element(&mut x, 10, "route", &m.config.route);
            element(&mut x, 10, "redirect", &m.config.redirect);
            element(&mut x, 10, "busy", &s.busy.to_string());
            element(&mut x, 10, "lbset", &m.config.lbset.to_string());
            element(&mut x, 10, "retry", &m.config.retry.as_secs().to_string());
            element(&mut x, 10, "lbstatus", &s.lbstatus.to_string());
            element(&mut x, 10, "transferred", &s.transferred.to_string());
            element(&mut x, 10, "read", &s.read.to_string());
            element(&mut x, 10, "elected", &s.elected.to_string());
            element(&mut x, 10, "errors", &s.errors.to_string());
            element(&mut x, 10, "status", &super::page::httpd_status(s.status));
            x.push_str("        </httpd:worker>\n");
        }
        x.push_str("      </httpd:workers>\n    </httpd:balancer>\n");
    }
    x.push_str("  </httpd:balancers>\n</httpd:manager>\n");
    let mut r = Response::new(Full::new(Bytes::from(x)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `<httpd:NAME>text</httpd:NAME>` on a line of its own, the text escaped.
fn element(x: &mut String, indent: usize, name: &str, text: &str) {
    // The page's escaping: its `&#39;` is XML's too.
    let _ = writeln!(x, "{:indent$}<httpd:{name}>{}</httpd:{name}>", "", super::page::esc(text));
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        let mut x = String::new();
        super::element(&mut x, 2, "route", "<script>&'\"");
        assert_eq!(x, "  <httpd:route>&lt;script&gt;&amp;&#39;&quot;</httpd:route>\n");
    }
}
