//! Failover with httpd's semantics against real members that are stopped and restarted:
//! tiers (spares, standbys, lbsets), retry, forcerecovery, failonstatus, failontimeout, the
//! balancer timeout, ping, and a client loop that never sees an error while members die.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use http_body_util::Full;
use switchyard::config::StatusFlags;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::{Blackhole, Member};
use switchyard_tests::proxy::{TestProxy, config};

/// Waits (bounded) until `member` has served `more` requests beyond what it had.
async fn wait_for(member: &Member, more: usize) {
    let target = member.requests() + more;
    for _ in 0..1000 {
        if member.requests() >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("member {} did not get {more} more requests", member.name);
}

/// A proxy routing `/` to balancer `b` with `settings`, over `members` (url, member keys).
async fn proxy(settings: &str, members: &[(String, &str)]) -> TestProxy {
    let mut toml = format!("[[route]]\npath = \"/\"\nbalancer = \"b\"\n\n[balancer.b]\n{settings}\n");
    for (url, keys) in members {
        toml.push_str(&format!("[[balancer.b.member]]\nurl = \"{url}\"\n{keys}\n"));
    }
    TestProxy::start(&config(&toml)).await
}

/// The member each of `n` sequential GETs reached, or `<STATUS>` for a failed one.
async fn sequence(proxy: &TestProxy, n: usize) -> Vec<String> {
    let client = TestClient::http1();
    let mut seen = Vec::new();
    for _ in 0..n {
        let reply = client.get(&proxy.url("/")).await;
        seen.push(if reply.status == StatusCode::OK { reply.header("x-member") } else { format!("<{}>", reply.status.as_u16()) });
    }
    seen
}

fn flags(proxy: &TestProxy, member: usize) -> StatusFlags {
    proxy.running.proxy.balancers()[0].members()[member].status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spares_and_standbys_take_over_one_for_one_as_members_die() {
    let b1 = Member::start("b1").await;
    let b2 = Member::start("b2").await;
    let b3 = Member::start("b3").await;
    let b4 = Member::start("b4").await;
    let members = [(b1.url(), ""), (b2.url(), ""), (b3.url(), "status = \"+R\""), (b4.url(), "status = \"+H\"")];
    let proxy = proxy("lbmethod = \"byrequests\"", &members).await;
    assert_eq!(sequence(&proxy, 4).await, ["b1", "b2", "b1", "b2"], "spare and standby idle while all are up");

    // b1 dies: its request fails over within the request; the spare b3 replaces it.
    b1.stop().await;
    assert_eq!(sequence(&proxy, 6).await, ["b2", "b3", "b2", "b3", "b2", "b3"]);
    assert!(flags(&proxy, 0).contains(StatusFlags::IN_ERROR));
    b2.stop().await;
    assert_eq!(sequence(&proxy, 3).await, ["b3", "b3", "b3"], "one spare for two dead members: only b3");
    b3.stop().await;
    assert_eq!(sequence(&proxy, 3).await, ["b4", "b4", "b4"], "the standby when no member or spare is left");
    b4.stop().await;
    assert_eq!(sequence(&proxy, 2).await, ["<503>", "<503>"]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lbsets_are_tried_in_order_after_the_lower_sets_standby() {
    let a0 = Member::start("a0").await;
    let h0 = Member::start("h0").await;
    let a1 = Member::start("a1").await;
    let c1 = Member::start("c1").await;
    let members =
        [(a1.url(), "lbset = 1"), (a0.url(), "lbset = 0"), (h0.url(), "lbset = 0\nstatus = \"+H\""), (c1.url(), "lbset = 1")];
    let proxy = proxy("", &members).await;
    assert_eq!(sequence(&proxy, 3).await, ["a0", "a0", "a0"], "lbset 0 first, whatever the config order");
    a0.stop().await;
    assert_eq!(sequence(&proxy, 3).await, ["h0", "h0", "h0"], "lbset 0's standby before any member of lbset 1");
    h0.stop().await;
    assert_eq!(sequence(&proxy, 4).await, ["a1", "c1", "a1", "c1"]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_from_the_dead_takes_traffic_after_its_retry_time() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let retry = Duration::from_millis(800);
    let proxy = proxy("", &[(a.url(), "retry = \"800ms\""), (b.url(), "")]).await;
    let addr = a.stop().await;
    assert_eq!(sequence(&proxy, 3).await, ["b", "b", "b"]);
    let errored_at = Instant::now();
    let a = Member::start_on("a", addr).await;
    if errored_at.elapsed() < retry / 2 {
        assert_eq!(sequence(&proxy, 2).await, ["b", "b"], "still in error within its retry time");
    }
    let mut back = false;
    for _ in 0..200 {
        if sequence(&proxy, 1).await == ["a"] {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "a is retried once its retry time has passed");
    assert!(errored_at.elapsed() >= retry / 2, "not retried early");
    assert!(!flags(&proxy, 0).contains(StatusFlags::IN_ERROR));
    assert_eq!(sequence(&proxy, 4).await.iter().filter(|m| *m == "a").count(), 2, "and shares the load again");
    drop(a);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forcerecovery_retries_every_member_when_all_are_in_error() {
    for (setting, after_restart) in [("", true), ("forcerecovery = false", false)] {
        let a = Member::start("a").await;
        let b = Member::start("b").await;
        let proxy = proxy(setting, &[(a.url(), ""), (b.url(), "")]).await;
        let (a_addr, b_addr) = (a.stop().await, b.stop().await);
        assert_eq!(sequence(&proxy, 1).await, ["<503>"]);
        assert!(flags(&proxy, 0).contains(StatusFlags::IN_ERROR) && flags(&proxy, 1).contains(StatusFlags::IN_ERROR));
        let _a = Member::start_on("a", a_addr).await;
        let _b = Member::start_on("b", b_addr).await;
        // retry is 60 s: only a forced recovery brings them back now.
        let seen = sequence(&proxy, 1).await;
        assert_eq!(seen[0] != "<503>", after_restart, "{setting:?}: {seen:?}");
        proxy.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failonstatus_puts_the_member_in_error_and_still_answers() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let proxy = proxy("failonstatus = [503, 502]", &[(a.url(), ""), (b.url(), "")]).await;
    let reply = TestClient::http1().get(&proxy.url("/status/503")).await;
    assert_eq!((reply.status.as_u16(), reply.header("x-member").as_str()), (503, "a"), "the client gets the member's answer");
    assert!(flags(&proxy, 0).contains(StatusFlags::IN_ERROR));
    assert_eq!(sequence(&proxy, 3).await, ["b", "b", "b"]);
    let reply = TestClient::http1().get(&proxy.url("/status/500")).await;
    assert_eq!(reply.status, 500);
    assert!(!flags(&proxy, 1).contains(StatusFlags::IN_ERROR), "500 is not listed");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failontimeout_puts_a_slow_member_in_error() {
    for (setting, in_error) in [("failontimeout = true", true), ("", false)] {
        let a = Member::start("a").await;
        let b = Member::start("b").await;
        let proxy = proxy(setting, &[(a.url(), "timeout = \"200ms\""), (b.url(), "")]).await;
        let reply = TestClient::http1().get(&proxy.url("/sleep/2000")).await;
        assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(flags(&proxy, 0).contains(StatusFlags::IN_ERROR), in_error, "{setting:?}");
        proxy.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancer_timeout_waits_for_a_member_to_come_back() {
    let a = Member::start("a").await;
    let settings = "forcerecovery = false\ntimeout = \"5s\"";
    let proxy = proxy(settings, &[(a.url(), "retry = \"500ms\"")]).await;
    let addr = a.stop().await;
    assert_eq!(sequence(&proxy, 1).await, ["<503>"], "every member tried: no waiting");
    let _a = Member::start_on("a", addr).await;
    // In error for a while yet: the request waits for the retry time instead of failing.
    assert_eq!(sequence(&proxy, 1).await, ["a"]);
    proxy.stop().await;

    let a = Member::start("a").await;
    let proxy = self::proxy("forcerecovery = false", &[(a.url(), "retry = \"60s\"")]).await;
    let addr = a.stop().await;
    assert_eq!(sequence(&proxy, 1).await, ["<503>"]);
    let _a = Member::start_on("a", addr).await;
    assert_eq!(sequence(&proxy, 1).await, ["<503>"], "without a timeout: 503 at once");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_fails_over_from_a_member_that_does_not_answer() {
    let hole = Blackhole::start().await;
    let b = Member::start("b").await;
    let proxy = proxy("", &[(hole.url(), "ping = \"200ms\""), (b.url(), "ping = \"2s\"")]).await;
    let post = Request::post(proxy.url("/echo")).body(Full::from("precious body")).expect("request");
    let reply = TestClient::http1().send(post).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!((reply.header("x-member").as_str(), reply.text().as_str()), ("b", "precious body"));
    assert!(flags(&proxy, 0).contains(StatusFlags::IN_ERROR));
    let seen = hole.received();
    assert!(seen.contains("expect: 100-continue"), "{seen}");
    assert!(!seen.contains("precious"), "the silent member never got the body: {seen}");
    assert_eq!(reply.seen("expect"), ["100-continue"], "b was pinged too, and answered");
    let get = TestClient::http1().get(&proxy.url("/echo")).await;
    assert_eq!(get.seen("expect"), Vec::<String>::new(), "requests without a body are not pinged");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_loop_sees_no_error_while_a_member_is_killed_and_restarted_twice() {
    let a = Member::start("a").await;
    let mut b = Member::start("b").await;
    let c = Member::start("c").await;
    let keys = "retry = \"300ms\"";
    let proxy = Arc::new(proxy("", &[(a.url(), keys), (b.url(), keys), (c.url(), keys)]).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (proxy, stop, ok, failed) = (Arc::clone(&proxy), Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
        clients.push(tokio::spawn(async move {
            let client = TestClient::http1();
            // Bounded: the test stops the loop long before this.
            for _ in 0..200_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let reply = client.get(&proxy.url("/sleep/2")).await;
                let counter = if reply.status == StatusCode::OK { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    wait_for(&b, 50).await;
    for _ in 0..2 {
        let addr = b.stop().await;
        wait_for(&a, 100).await;
        b = Member::start_on("b", addr).await;
        wait_for(&b, 50).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client loop");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    let errors = proxy.running.proxy.balancers()[0].members()[1].snapshot().errors;
    assert!(errors >= 2, "b was put in error each time it died ({errors})");
    drop((a, b, c));
    if let Ok(proxy) = Arc::try_unwrap(proxy) {
        proxy.stop().await;
    }
}
