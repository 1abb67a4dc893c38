//! Promises of the README that the request path must keep while its code moves: exact
//! attempt counts under `maxattempts`, the member pool (`max` with `acquire`, `ttl`, reuse),
//! no retry after a member timeout, a refusing single backend tried again by the next
//! request, and `hashkey` sources reaching the lbmethod end to end.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use switchyard_tests::GUEST_RENDEZVOUS_RS;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::{Member, refusing_port};
use switchyard_tests::proxy::{TestProxy, config};

/// Three refusing members then a live one; the statuses of `n` requests and each member's
/// error count (one per connect attempt that was refused).
async fn attempts(maxattempts: u32, n: usize) -> (Vec<u16>, Vec<u64>) {
    let live = Member::start("live").await;
    let refusing: Vec<_> = (0..3).map(|_| refusing_port()).collect();
    let mut toml = format!("[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\nmaxattempts = {maxattempts}\n");
    for r in &refusing {
        toml.push_str(&format!("[[balancer.b.member]]\nurl = \"http://{}\"\n", r.addr));
    }
    toml.push_str(&format!("[[balancer.b.member]]\nurl = \"{}\"\n", live.url()));
    let proxy = TestProxy::start(&config(&toml)).await;
    let client = TestClient::http1();
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(client.get(&proxy.url("/")).await.status.as_u16());
    }
    let errors = proxy.running.proxy.balancers()[0].members().iter().map(|m| m.snapshot().errors).collect();
    proxy.stop().await;
    (statuses, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxattempts_bounds_the_connect_attempts_exactly() {
    // No retry: each request tries one member (byrequests order), the fourth reaches the live one.
    assert_eq!(attempts(0, 4).await, (vec![503, 503, 503, 200], vec![1, 1, 1, 0]));
    // One retry: the first request tries two refusing members, the second one more and then the live one.
    assert_eq!(attempts(1, 2).await, (vec![503, 200], vec![1, 1, 1, 0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_answers_503_after_acquire() {
    let m = Member::start("m").await;
    // `max` is per worker thread (as httpd's is per child process): one worker here.
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\nmax = 1\nacquire = \"100ms\"\n[server]\nworkers = 1\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    // The member sleeps far longer than the second request takes even on a loaded machine.
    let slow = tokio::spawn({
        let url = proxy.url("/sleep/3000");
        async move { TestClient::http1().get(&url).await.status }
    });
    eventually("the slow request reached the member", || m.requests() == 1).await;
    let waited = std::time::Instant::now();
    let reply = TestClient::http1().get(&proxy.url("/x")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "the one connection is busy: {}", reply.text());
    assert!(waited.elapsed() >= Duration::from_millis(90), "refused after waiting for acquire (100 ms), not at once");
    assert!(!slow.is_finished(), "refused while the slow request held the connection, not when it ended");
    assert_eq!(slow.await.expect("the slow request"), StatusCode::OK);
    assert_eq!(m.requests(), 1, "the refused request never reached the member");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_are_reused_until_their_ttl() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\nttl = \"300ms\"\n[server]\nworkers = 1\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let client = TestClient::http1();
    for _ in 0..3 {
        assert_eq!(client.get(&proxy.url("/x")).await.status, StatusCode::OK);
    }
    assert_eq!((m.requests(), m.connections()), (3, 1), "one member connection, reused");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(client.get(&proxy.url("/x")).await.status, StatusCode::OK);
    assert_eq!(m.connections(), 2, "the idle connection was closed after its ttl");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_timeout_is_not_retried() {
    let (a, b) = (Member::start("a").await, Member::start("b").await);
    let toml = format!(
        "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\nmaxattempts = 1\n[[balancer.b.member]]\nurl = \"{}\"\ntimeout = \"200ms\"\n[[balancer.b.member]]\nurl = \"{}\"\ntimeout = \"200ms\"\n",
        a.url(),
        b.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    assert_eq!(TestClient::http1().get(&proxy.url("/sleep/1000")).await.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(a.requests() + b.requests(), 1, "the request may have had effects: it is sent once");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_single_backend_is_tried_again_by_the_next_request() {
    let refusing = refusing_port();
    let addr = refusing.addr;
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"http://{addr}/\"\n"))).await;
    let client = TestClient::http1();
    assert_eq!(client.get(&proxy.url("/x")).await.status, StatusCode::SERVICE_UNAVAILABLE);
    drop(refusing);
    let m = Member::start_on("m", addr).await;
    assert_eq!(client.get(&proxy.url("/x")).await.status, StatusCode::OK, "no retry wait for the only backend");
    assert_eq!(m.requests(), 1);
    proxy.stop().await;
}

/// The member each request reached, under weighted rendezvous hashing on `hashkey`.
async fn hashed(hashkey: &str, requests: &[(&str, Option<&str>)]) -> Vec<String> {
    let members: Vec<Member> = start_members(["m1", "m2", "m3", "m4"]).await;
    let mut toml = format!(
        "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\nhashkey = \"{hashkey}\"\nlbmethod = {{ path = \"{GUEST_RENDEZVOUS_RS}\", config = {{ keyless = \"refuse\" }} }}\n"
    );
    for m in &members {
        toml.push_str(&format!("[[balancer.b.member]]\nurl = \"{}\"\n", m.url()));
    }
    let proxy = TestProxy::start(&config(&toml)).await;
    let client = TestClient::http1();
    let mut seen = Vec::new();
    for (path, cookie) in requests {
        let mut request = Request::get(proxy.url(path));
        if let Some(c) = cookie {
            request = request.header("cookie", *c);
        }
        let reply = client.send(request.body(Full::new(Bytes::new())).expect("request")).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} {cookie:?}: {}", reply.text());
        seen.push(reply.header("x-member"));
    }
    proxy.stop().await;
    seen
}

async fn start_members<const N: usize>(names: [&str; N]) -> Vec<Member> {
    let mut out = Vec::with_capacity(N);
    for n in names {
        out.push(Member::start(n).await);
    }
    out
}

fn distinct(seen: &[String]) -> usize {
    seen.iter().collect::<std::collections::HashSet<_>>().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashkey_sources_reach_the_lbmethod() {
    // path: one path, one member; many paths spread.
    let paths: Vec<String> = (0..24).map(|i| format!("/item/{i}")).collect();
    let mut asks: Vec<(&str, Option<&str>)> = vec![("/same", None); 4];
    asks.extend(paths.iter().map(|p| (p.as_str(), None)));
    let seen = hashed("path", &asks).await;
    assert_eq!(distinct(&seen[..4]), 1, "{seen:?}");
    assert!(distinct(&seen[4..]) >= 3, "different keys spread: {seen:?}");

    // cookie: the session cookie's value is the key; other cookies do not matter.
    let cookies: Vec<String> = (0..24).map(|i| format!("theme=dark; sid=user{i}")).collect();
    let mut asks: Vec<(&str, Option<&str>)> = vec![("/a", Some("sid=alice")), ("/b", Some("x=1; sid=alice")), ("/c", Some("sid=alice; y=2"))];
    asks.extend(cookies.iter().map(|c| ("/", Some(c.as_str()))));
    let seen = hashed("cookie:sid", &asks).await;
    assert_eq!(distinct(&seen[..3]), 1, "{seen:?}");
    assert!(distinct(&seen[3..]) >= 3, "{seen:?}");

    // client_ip: every request here comes from 127.0.0.1, so one member takes them all.
    let seen = hashed("client_ip", &[("/a", None), ("/b", None), ("/c", Some("sid=x"))]).await;
    assert_eq!(distinct(&seen), 1, "{seen:?}");
}

use switchyard_tests::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_follow_their_template_timeout_and_flags() {
    use switchyard::config::StatusFlags;
    use switchyard_tests::member::Blackhole;
    let b = Member::start("b").await;
    let (deep, silent) = (Blackhole::start().await, Blackhole::start().await);
    let toml = format!(
        "[hctemplate.web]\nhcmethod = \"GET\"\nhcuri = \"/health\"\nhcinterval = \"100ms\"\nhcfails = 2\n\
         [[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n\
         [[balancer.b.member]]\nurl = \"{}\"\nhctemplate = \"web\"\nhcuri = \"/health/deep\"\nhctimeout = \"150ms\"\n\
         [[balancer.b.member]]\nurl = \"{}\"\nhctemplate = \"web\"\nstatus = \"D\"\n\
         [[balancer.b.member]]\nurl = \"{}\"\nhctemplate = \"web\"\nhctimeout = \"150ms\"\n",
        deep.url(),
        b.url(),
        silent.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let running = &proxy.running.proxy;
    let members = running.balancers()[0].members();
    // The template's method, the member's own path.
    eventually("the override path is probed", || received_probe(&deep.received(), "/health/deep")).await;
    // A disabled member is still probed (so it is known healthy before it is enabled).
    eventually("the disabled member is probed and healthy", || running.health_status(0, 1).is_some_and(|h| h.probes >= 2 && h.failures == 0)).await;
    assert!(b.requests() >= 2 && !members[1].status().contains(StatusFlags::HEALTH_FAILED));
    // A member that accepts but never answers fails at hctimeout, twice in a row, and gets C.
    eventually("the silent member gets C", || members[2].status().contains(StatusFlags::HEALTH_FAILED)).await;
    let last = running.health_status(0, 2).and_then(|h| h.last).expect("a verdict");
    assert!(!last.healthy, "{last:?}");
    assert!(received_probe(&silent.received(), "/health"), "the template's path: {}", silent.received());
    proxy.stop().await;
}

fn received_probe(raw: &str, path: &str) -> bool {
    raw.contains(&format!("GET {path} HTTP/1.0"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_probes_end_an_error_before_its_retry_time() {
    use switchyard::config::StatusFlags;
    let refusing = refusing_port();
    let addr = refusing.addr;
    let other = Member::start("other").await;
    let toml = format!(
        "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n\
         [[balancer.b.member]]\nurl = \"http://{addr}\"\nretry = \"1h\"\nhcmethod = \"GET\"\nhcuri = \"/health\"\nhcinterval = \"100ms\"\nhcpasses = 2\n\
         [[balancer.b.member]]\nurl = \"{}\"\n",
        other.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let member = std::sync::Arc::clone(&proxy.running.proxy.balancers()[0].members()[0]);
    eventually("the refusing member is out (E by traffic or C by probes)", || {
        member.status().intersects(StatusFlags::IN_ERROR.union(StatusFlags::HEALTH_FAILED))
    })
    .await;
    // Traffic puts it in error too (E, retry 1 h) if the probes have not yet.
    let client = TestClient::http1();
    for _ in 0..3 {
        assert_eq!(client.get(&proxy.url("/")).await.status, StatusCode::OK);
    }
    drop(refusing);
    let _back = Member::start_on("back", addr).await;
    eventually("two passing probes clear E and C long before the hour", || {
        !member.status().intersects(StatusFlags::IN_ERROR.union(StatusFlags::HEALTH_FAILED))
    })
    .await;
    let seen = client.members_of(&proxy.url("/"), 4).await;
    assert!(seen.contains(&"back".to_string()), "back in rotation: {seen:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_live_state_and_new_limits_apply_to_new_connections() {
    use switchyard::config::StatusFlags;
    use switchyard_tests::member::Blackhole;
    let (m, other) = (Member::start("m").await, Member::start("other").await);
    let silent = Blackhole::start().await;
    let toml = |limits: &str| {
        config(&format!(
            "[server]\nworkers = 1\n{limits}[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n\
             [[balancer.b.member]]\nurl = \"{}\"\n[[balancer.b.member]]\nurl = \"{}\"\n\
             [[balancer.b.member]]\nurl = \"{}\"\nhcmethod = \"GET\"\nhcinterval = \"100ms\"\nhctimeout = \"100ms\"\nhcfails = 1\n",
            m.url(),
            other.url(),
            silent.url()
        ))
    };
    let proxy = TestProxy::start(&toml("")).await;
    let silent_member = std::sync::Arc::clone(&proxy.running.proxy.balancers()[0].members()[2]);
    eventually("the silent member gets C", || silent_member.status().contains(StatusFlags::HEALTH_FAILED)).await;
    let client = TestClient::http1();
    client.members_of(&proxy.url("/"), 4).await;
    let before = proxy.running.proxy.balancers()[0].members()[0].snapshot();
    assert_eq!((before.elected, m.connections()), (2, 1));

    // A 2 KiB header is within the old limits; the new ones refuse it, on new connections only.
    proxy.reload(&toml("[limits]\nheader_size = \"1KiB\"\n")).await.expect("reload");
    let big = "x".repeat(2048);
    let with_big_header = || Request::get(proxy.url("/")).header("x-big", big.as_str()).body(Full::new(Bytes::new())).expect("request");
    assert_eq!(client.send(with_big_header()).await.status, StatusCode::OK, "a connection accepted before keeps its limits");
    let fresh = TestClient::http1();
    assert_eq!(fresh.send(with_big_header()).await.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "a new one gets the new limits");

    let current = proxy.running.current();
    let members = current.balancers()[0].members();
    let after = members[0].snapshot();
    assert!(after.elected >= before.elected && after.transferred > before.transferred && after.read > before.read, "{before:?} → {after:?}");
    assert_eq!(after.lbstatus, members[0].lbstatus());
    assert!(members[2].status().contains(StatusFlags::HEALTH_FAILED), "C survives while the member is still checked");
    client.members_of(&proxy.url("/"), 2).await;
    assert_eq!(m.connections(), 1, "the member's pooled connection was kept");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_that_traps_fails_its_probes_only() {
    use switchyard::config::StatusFlags;
    for (at, reason, reaches_member) in [("probe", "failed to describe a probe", false), ("judge", "failed to judge", true)] {
        let (a, b) = (Member::start("a").await, Member::start("b").await);
        let toml = format!(
            "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n\
             [[balancer.b.member]]\nurl = \"{}\"\nhealthcheck = {{ path = \"{}\", config = {{ at = \"{at}\", port = {} }} }}\nhcinterval = \"100ms\"\nhcfails = 2\n\
             [[balancer.b.member]]\nurl = \"{}\"\n",
            a.url(),
            switchyard_tests::GUEST_BADCHECK,
            a.url().rsplit(':').next().expect("a port"),
            b.url()
        );
        let proxy = TestProxy::start(&config(&toml)).await;
        let running = std::sync::Arc::clone(&proxy.running.proxy);
        let checked = std::sync::Arc::clone(&running.balancers()[0].members()[0]);
        eventually("the trapping check takes its member out", || checked.status().contains(StatusFlags::HEALTH_FAILED)).await;
        let last = running.health_status(0, 0).and_then(|h| h.last).expect("a verdict");
        assert!(!last.healthy && last.reason.contains(reason), "{at}: {last:?}");
        assert_eq!(a.requests() > 0, reaches_member, "{at}: the probe reached the member only when it was described");
        let client = TestClient::http1();
        assert_eq!(client.members_of(&proxy.url("/"), 4).await, ["b"; 4], "{at}: the proxy serves on with the other member");
        proxy.stop().await;
    }
}

/// One cookie parser: a cookie spelled with quotes and spaces is the same cookie to sticky
/// sessions and to `hashkey = "cookie:…"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quoted_spaced_cookie_means_the_same_to_sticky_sessions_and_to_hashing() {
    let spellings = ["ROUTEID=sess.r2", "ROUTEID=\"sess.r2\"", "theme=dark;  ROUTEID = \"sess.r2\" ", "ROUTEID= sess.r2 ;x=1"];
    // Hashing: every spelling is one key (a key the method cannot read is refused: 503).
    let asks: Vec<(&str, Option<&str>)> = spellings.iter().map(|c| ("/", Some(*c))).collect();
    let seen = hashed("cookie:ROUTEID", &asks).await;
    assert_eq!(distinct(&seen), 1, "{seen:?}");

    // Sticky sessions: every spelling names route r2.
    let members: Vec<Member> = start_members(["m1", "m2", "m3"]).await;
    let mut toml = String::from("[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\nstickysession = \"ROUTEID\"\n");
    for (i, m) in members.iter().enumerate() {
        toml.push_str(&format!("[[balancer.b.member]]\nurl = \"{}\"\nroute = \"r{}\"\n", m.url(), i + 1));
    }
    let proxy = TestProxy::start(&config(&toml)).await;
    let client = TestClient::http1();
    for cookie in spellings {
        for _ in 0..2 {
            let request = Request::get(proxy.url("/")).header("cookie", cookie).body(Full::new(Bytes::new())).expect("request");
            assert_eq!(client.send(request).await.header("x-member"), "m2", "{cookie:?}");
        }
    }
    proxy.stop().await;
}
