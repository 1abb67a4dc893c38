//! Sticky sessions through the real proxy: routes from cookies and URL parameters, draining
//! members keeping their sessions, redirect, nofailover, and a route cookie the proxy inserts
//! itself.

use http::{Request, StatusCode};
use http_body_util::Full;
use switchyard::config::StatusFlags;
use switchyard_tests::client::{Reply, TestClient};
use switchyard_tests::member::{Member, refusing_port};
use switchyard_tests::proxy::{TestProxy, config};

/// A proxy routing `/` to balancer `b` with `settings`; members are (url, member keys).
async fn proxy(settings: &str, members: &[(String, String)]) -> TestProxy {
    let mut toml = format!("[[route]]\npath = \"/\"\nbalancer = \"b\"\n\n[balancer.b]\n{settings}\n");
    for (url, keys) in members {
        toml.push_str(&format!("[[balancer.b.member]]\nurl = \"{url}\"\n{keys}\n"));
    }
    TestProxy::start(&config(&toml)).await
}

async fn get(proxy: &TestProxy, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::get(proxy.url(path));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    TestClient::http1().send(request.body(Full::default()).expect("request")).await
}

fn routed(url: String, route: &str, more: &str) -> (String, String) {
    (url, format!("route = \"{route}\"\n{more}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sticks_to_its_member_by_cookie_or_url() {
    let (a, b, c) = (Member::start("a").await, Member::start("b").await, Member::start("c").await);
    let members = [routed(a.url(), "ra", ""), routed(b.url(), "rb", ""), routed(c.url(), "rc", "")];
    let proxy = proxy("stickysession = \"JSESSIONID|jsessionid\"", &members).await;
    for _ in 0..3 {
        assert_eq!(get(&proxy, "/", Some("JSESSIONID=0A1B2C.rb")).await.header("x-member"), "b");
    }
    assert_eq!(get(&proxy, "/x;jsessionid=0A1B2C.rc", Some("JSESSIONID=0A1B2C.rb")).await.header("x-member"), "c", "the URL wins");
    assert_eq!(get(&proxy, "/x?jsessionid=0A1B2C.ra", None).await.header("x-member"), "a");
    // The sticky hits went through the Wasm lbmethod's sticky-hit hook (httpd's bookkeeping):
    // each hit adds every usable member's lbfactor (100) and takes the total (300) off the chosen.
    let lbstatus: Vec<i64> = proxy.running.proxy.balancers()[0].members().iter().map(|m| m.lbstatus()).collect();
    assert_eq!(lbstatus, [500 - 300, 500 - 900, 500 - 300]);
    assert_eq!(proxy.running.proxy.balancers()[0].stats().sticky_hits.load(std::sync::atomic::Ordering::Relaxed), 5);
    // A request without a session is balanced, favouring the members the sessions starved.
    assert_eq!(get(&proxy, "/", None).await.header("x-member"), "a");
    assert_eq!(get(&proxy, "/", Some("JSESSIONID=nosep")).await.header("x-member"), "c", "no separator: no route");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_member_keeps_its_sessions_and_gets_no_new_ones() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let proxy = proxy("stickysession = \"JSESSIONID\"", &[routed(a.url(), "ra", "status = \"+N\""), routed(b.url(), "rb", "")]).await;
    for _ in 0..3 {
        assert_eq!(get(&proxy, "/", Some("JSESSIONID=s.ra")).await.header("x-member"), "a");
        assert_eq!(get(&proxy, "/", None).await.header("x-member"), "b");
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_member_redirects_its_sessions() {
    let dead = refusing_port();
    let (b, c) = (Member::start("b").await, Member::start("c").await);
    let members = [routed(format!("http://{}", dead.addr), "ra", "redirect = \"rc\""), routed(b.url(), "rb", ""), routed(c.url(), "rc", "")];
    let proxy = proxy("stickysession = \"JSESSIONID\"", &members).await;
    // a is not known dead yet: its connect is refused, it is put in error, and the same request
    // follows its redirect.
    for _ in 0..3 {
        let reply = get(&proxy, "/", Some("JSESSIONID=s.ra")).await;
        assert_eq!((reply.status, reply.header("x-member").as_str()), (StatusCode::OK, "c"));
    }
    let members = proxy.running.proxy.balancers()[0].members();
    assert!(members[0].status().contains(StatusFlags::IN_ERROR));
    assert_eq!(members[0].snapshot().errors, 1, "tried once, then skipped while in error");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nofailover_answers_503_rather_than_break_a_session() {
    let dead = refusing_port();
    let b = Member::start("b").await;
    let members = [routed(format!("http://{}", dead.addr), "ra", ""), routed(b.url(), "rb", "")];
    let proxy = proxy("stickysession = \"JSESSIONID\"\nnofailover = true", &members).await;
    assert_eq!(get(&proxy, "/", Some("JSESSIONID=s.ra")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&proxy, "/", Some("JSESSIONID=s.ra")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b.requests(), 0, "the session never moved to b");
    assert_eq!(get(&proxy, "/", Some("JSESSIONID=s.rb")).await.header("x-member"), "b");
    assert_eq!(get(&proxy, "/", None).await.header("x-member"), "b", "requests without a session still fail over");
    proxy.stop().await;

    // Without nofailover the session moves.
    let proxy = self::proxy("stickysession = \"JSESSIONID\"", &members).await;
    assert_eq!(get(&proxy, "/", Some("JSESSIONID=s.ra")).await.header("x-member"), "b");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_inserts_a_route_cookie_when_asked() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let settings = "stickysession = { name = \"ROUTEID\", insert = true, max_age = \"1h\" }";
    let proxy = proxy(settings, &[routed(a.url(), "one", ""), (b.url(), String::new())]).await;
    let first = get(&proxy, "/", None).await;
    assert_eq!(first.header("x-member"), "a");
    assert_eq!(first.header("set-cookie"), "ROUTEID=.one; Path=/; Max-Age=3600; HttpOnly");
    let cookie = first.header("set-cookie").split(';').next().expect("pair").to_string();
    for _ in 0..3 {
        let again = get(&proxy, "/", Some(&cookie)).await;
        assert_eq!(again.header("x-member"), "a");
        assert!(again.headers.get("set-cookie").is_none(), "no cookie when the session stays");
    }
    // b has no route of its own: it gets a stable one derived from its URL.
    let second = get(&proxy, "/", None).await;
    assert_eq!(second.header("x-member"), "b");
    let b_cookie = second.header("set-cookie");
    assert!(b_cookie.starts_with("ROUTEID=.") && b_cookie.len() > "ROUTEID=.".len(), "{b_cookie}");
    let b_pair = b_cookie.split(';').next().expect("pair").to_string();
    assert_eq!(get(&proxy, "/", Some(&b_pair)).await.header("x-member"), "b");

    // The member dies: the session moves, and the client is told its new route.
    let _addr = a.stop().await;
    let moved = get(&proxy, "/", Some(&cookie)).await;
    assert_eq!(moved.header("x-member"), "b");
    assert_eq!(moved.header("set-cookie"), b_cookie);
    proxy.stop().await;
}
