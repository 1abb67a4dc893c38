//! Header rewriting through the real proxy: ProxyPassReverse on redirects from balancer
//! members, cookie domain and path maps, and a rewrite plugin whose bad edits are refused
//! while the response is still served.

use std::sync::atomic::Ordering;

use http::Request;
use http_body_util::Full;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};

async fn get(proxy: &TestProxy, path: &str) -> switchyard_tests::client::Reply {
    let request = Request::get(proxy.url(path)).header("host", "www.example.com").body(Full::default()).expect("request");
    TestClient::http1().send(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_from_any_member_reach_the_client_as_the_public_url() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let toml = config(&format!(
        "[[route]]\npath = \"/images/\"\nbalancer = \"b\"\nreverse = true\n\
         [balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\n[[balancer.b.member]]\nurl = \"{}\"\n",
        a.url(),
        b.url()
    ));
    let proxy = TestProxy::start(&toml).await;
    for member in ["a", "b"] {
        let reply = get(&proxy, "/images/location/x/y.png?size=2").await;
        assert_eq!((reply.status.as_u16(), reply.header("x-member").as_str()), (302, member));
        assert_eq!(reply.header("location"), "http://www.example.com/images/x/y.png?size=2");
        assert_eq!(reply.header("content-location"), "http://www.example.com/images/x/y.png?size=2");
        assert!(reply.header("x-untouched").starts_with("http://127.0.0.1:"), "only the headers ProxyPassReverse names");
    }
    let plain = get(&proxy, "/images/plain").await;
    assert_eq!(plain.status, 200);
    let stats = proxy.running.proxy.rewrite_stats(0).expect("route 0 rewrites");
    assert_eq!(stats.calls.load(Ordering::Relaxed), 2, "responses without those headers never reach the plugin");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_domain_and_path_are_rewritten() {
    let m = Member::start("m").await;
    let toml = config(&format!(
        "[[route]]\npath = \"/shop/\"\nbackend = \"{}/\"\n\
         reverse_cookie_domain = {{ \"backend.internal\" = \"www.example.com\" }}\n\
         reverse_cookie_path = {{ \"/app/\" = \"/shop/\" }}\n",
        m.url()
    ));
    let proxy = TestProxy::start(&toml).await;
    let reply = get(&proxy, "/shop/cookie").await;
    let cookies: Vec<String> =
        reply.headers.get_all("set-cookie").iter().map(|v| v.to_str().expect("ascii").to_string()).collect();
    assert_eq!(
        cookies,
        ["sid=abc.1; Domain=www.example.com; Path=/shop/x; HttpOnly", "theme=dark;path=/;domain=other.example"],
        "mapped attributes rewritten, everything else byte for byte"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_plugin_cannot_smuggle_headers_and_its_traps_lose_nothing() {
    let m = Member::start("m").await;
    // The misbehaving plugin, then ProxyPassReverse (which maps a request's Destination to the
    // member): a link after the one that traps must still do its part.
    let toml = config(&format!(
        "[[route]]\npath = \"/\"\nbackend = \"{}/\"\nrewrite = [{{ path = \"{}\" }}, {{ name = \"proxypassreverse\" }}]\n",
        m.url(),
        switchyard_tests::GUEST_BADREWRITE
    ));
    let proxy = TestProxy::start(&toml).await;
    let reply = get(&proxy, "/bytes/1000").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 1000, "framing is the proxy's: the body arrives whole");
    assert_eq!(reply.header("x-good"), "yes", "the valid edit applies");
    assert!(reply.headers.get("x-evil").is_none() && reply.headers.get("x-nul").is_none());
    assert!(reply.headers.get("set-cookie").is_none(), "no header was smuggled in");
    let stats = proxy.running.proxy.rewrite_stats(0).expect("route 0 rewrites");
    assert_eq!((stats.applied.load(Ordering::Relaxed), stats.refused.load(Ordering::Relaxed)), (1, 3));

    // The first link traps in the request phase: the request still goes through, with the
    // headers that link was shown left as they were, and the next link's edit applied.
    let trapping = Request::get(proxy.url("/echo"))
        .header("host", "www.example.com")
        .header("x-trap", "1")
        .header("destination", "http://www.example.com/dav/x")
        .body(Full::from("payload"))
        .expect("request");
    let reply = TestClient::http1().send(trapping).await;
    assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "payload"));
    assert_eq!(reply.seen("x-trap"), ["1"]);
    assert_eq!(reply.seen("destination"), [format!("{}/dav/x", m.url())], "the link after the trap still edits");
    assert_eq!(stats.failures.load(Ordering::Relaxed), 1);
    proxy.stop().await;
}
