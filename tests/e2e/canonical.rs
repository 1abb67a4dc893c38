//! Routing on the canonical path: no spelling of a path (percent-encoded letters in any case,
//! encoded dots, `..`, `//`, `/./`, encoded slashes) reaches a member under another route's
//! prefix or walks around an exclusion; members get the canonical path, or the client's own
//! spelling on a `nocanon` route. On HTTP/1.1 (the fast path) and HTTP/2 alike.

use http::StatusCode;
use switchyard_tests::client::{TestClient, raw_exchange, status_of};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

/// What a spelling must lead to.
enum Want {
    /// This member, receiving this target.
    At(&'static str, &'static str),
    /// This status from the proxy itself; no member sees the request.
    Refused(u16),
}
use Want::{At, Refused};

const TABLE: &[(&str, Want)] = &[
    // The exclusion of /static/, spelled every way.
    ("/static/x", Refused(404)),
    ("/%73tatic/x", Refused(404)),
    ("/%73%74%61%74%69%63/x", Refused(404)),
    ("/a/../static/x", Refused(404)),
    ("/a/%2e%2e/static/x", Refused(404)),
    ("/a/%2E%2E/static/x", Refused(404)),
    ("/a/.%2E/static/x", Refused(404)),
    ("//static/x", Refused(404)),
    ("/./static/x", Refused(404)),
    ("/%2e/static/x", Refused(404)),
    ("/static//x", Refused(404)),
    ("/public/../static/./x", Refused(404)),
    // Refused outright: encoded separators where the route does not allow them, a climb
    // above the root, NUL, a broken escape.
    ("/public/..%2fstatic/x", Refused(400)),
    ("/public/..%2Fstatic/x", Refused(400)),
    ("/public/..%5cstatic/x", Refused(400)),
    ("/..%2fadmin/x", Refused(400)),
    ("/../static/x", Refused(400)),
    ("/public/../../admin/x", Refused(400)),
    ("/%2e%2e/admin/x", Refused(400)),
    ("/x%00", Refused(400)),
    ("/x%zz", Refused(400)),
    ("/x%4", Refused(400)),
    // `..;` (servlet containers drop the parameter, then climb) and `;` parameters on the way
    // to a prefix walk around nothing.
    ("/public/..;/admin/x", Refused(400)),
    ("/public/..;x/static/x", Refused(400)),
    ("/static;x/y", Refused(404)),
    ("/static;jsessionid=1/y", Refused(404)),
    // The protected route, reached only by its own prefix; members get the canonical path.
    ("/admin/x", At("admin", "/internal/x")),
    ("/ad%6din/x", At("admin", "/internal/x")),
    ("/ad%6Din/x", At("admin", "/internal/x")),
    ("/%61%64%6D%69%6E/x", At("admin", "/internal/x")),
    ("/public/../admin/x", At("admin", "/internal/x")),
    ("/%2E/ad%6din//./x/../y?q=%2e%2e/../z", At("admin", "/internal/y?q=%2e%2e/../z")),
    ("/admin/a%20b/%3f", At("admin", "/internal/a%20b/%3F")),
    ("/admin/x/..", At("admin", "/internal/")),
    ("/admin;jsessionid=1/x", At("admin", "/internal;jsessionid=1/x")),
    // ... and never by a spelling that only looks like it.
    ("/admin/../public/x", At("public", "/public/x")),
    ("/admin/%2e%2e/public/x", At("public", "/public/x")),
    ("/adminx", At("public", "/adminx")),
    ("/admin%2e/x", At("public", "/admin./x")),
    // A route allowing encoded slashes forwards them still encoded.
    ("/enc/a%2fb", At("public", "/enc/a%2Fb")),
    ("/enc/..%2F..%2Fadmin", At("public", "/enc/..%2F..%2Fadmin")),
    // A nocanon route forwards the client's spelling, but is routed on the canonical path.
    ("/raw/a%2fb/%7e", At("public", "/raw/a%2fb/%7e")),
    // ... but never a dot segment, which could climb out of the member's base path.
    ("/raw/a%2fb/./%7e", At("public", "/raw/a%2Fb/~")),
    ("/r%61w/%7e", At("public", "/raw/%7e")),
    ("/raw/../admin/x", At("admin", "/internal/x")),
];

const ROUTES: &str = r#"
[[route]]
path = "/static/"
exclude = true
[[route]]
path = "/admin"
backend = "ADMIN/internal"
[[route]]
path = "/enc"
backend = "PUBLIC/enc"
allow_encoded_slashes = true
[[route]]
path = "/raw"
backend = "PUBLIC/raw"
nocanon = true
allow_encoded_slashes = true
[[route]]
path = "/"
backend = "PUBLIC/"
"#;

async fn check_table(client: TestClient) {
    let admin = Member::start("admin").await;
    let public = Member::start("public").await;
    let toml = ROUTES.replace("ADMIN", &admin.url()).replace("PUBLIC", &public.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    for (spelling, want) in TABLE {
        let reply = client.get(&proxy.url(spelling)).await;
        match want {
            Refused(status) => assert_eq!(reply.status.as_u16(), *status, "{spelling}: {}", reply.text()),
            At(member, target) => {
                assert_eq!(reply.status, StatusCode::OK, "{spelling}: {}", reply.text());
                assert_eq!((reply.header("x-member").as_str(), reply.header("x-seen-target").as_str()), (*member, *target), "{spelling}");
            }
        }
    }
    let reached = |m: &str| TABLE.iter().filter(|(_, w)| matches!(w, At(name, _) if *name == m)).count();
    assert_eq!(admin.requests(), reached("admin"), "only the admin rows reach the admin member");
    assert_eq!(public.requests(), reached("public"), "refusals reach no member");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_spellings_route_canonically_over_http1() {
    check_table(TestClient::http1()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_spellings_route_canonically_over_http2() {
    check_table(TestClient::http2()).await;
}

/// A raw request line, as a client that does not normalise anything would send it, on a
/// request hyper's server parses (it has a body, so the fast path hands it over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_request_lines_route_canonically_on_both_http1_parsers() {
    let admin = Member::start("admin").await;
    let public = Member::start("public").await;
    let toml = ROUTES.replace("ADMIN", &admin.url()).replace("PUBLIC", &public.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let addr = proxy.addr;
    for body in ["", "Content-Length: 2\r\n\r\nhi"] {
        let head_end = if body.is_empty() { "\r\n" } else { "" };
        for (target, want) in [("/%73tatic/x", 404), ("/a/../static/x", 404), ("/public/..%2fstatic/x", 400), ("/../x", 400)] {
            let request = format!("POST {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{body}{head_end}");
            let request = if body.is_empty() { request.replacen("POST", "GET", 1) } else { request };
            let answer = raw_exchange(addr, request.as_bytes()).await;
            assert_eq!(status_of(&answer), want, "{target} ({}): {answer}", if body.is_empty() { "fast path" } else { "hyper" });
        }
    }
    assert_eq!(admin.requests() + public.requests(), 0);
    proxy.stop().await;
}
