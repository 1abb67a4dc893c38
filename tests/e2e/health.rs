//! Health checks against real members: out of rotation after `hcfails` failed probes, back
//! after `hcpasses` passes, TCP checks, `hcexpr` on the body, stopped members left alone, and
//! bad expressions refused at load with file, line and key.

use std::time::{Duration, Instant};

use switchyard::config::StatusFlags;
use switchyard::health::HealthStatus;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::{Member, refusing_port};
use switchyard_tests::proxy::{TestProxy, config};

/// A proxy routing `/` to balancer `b`; members are (url, member keys).
async fn proxy(members: &[(String, &str)]) -> TestProxy {
    let mut toml = "[[route]]\npath = \"/\"\nbalancer = \"b\"\n\n[balancer.b]\n".to_string();
    for (url, keys) in members {
        toml.push_str(&format!("[[balancer.b.member]]\nurl = \"{url}\"\n{keys}\n"));
    }
    TestProxy::start(&config(&toml)).await
}

fn flags(proxy: &TestProxy, member: usize) -> StatusFlags {
    proxy.running.proxy.balancers()[0].members()[member].status()
}

fn health(proxy: &TestProxy, member: usize) -> HealthStatus {
    proxy.running.proxy.health_status(0, member).expect("member is health-checked")
}

/// Waits (bounded) until member `member`'s C flag is `failed`.
async fn until_c(proxy: &TestProxy, member: usize, failed: bool) {
    switchyard_tests::eventually(&format!("member {member} gets C = {failed}"), || flags(proxy, member).contains(StatusFlags::HEALTH_FAILED) == failed).await;
}

/// Waits (bounded) until member `member`'s C flag is `failed`, checking at every look that it
/// flips when `run` — the member's results in a row of the new kind, from counters read
/// before its health was changed — reaches `needed`: never with fewer, never left unflipped
/// with more.
///
/// The probe loop counts a result before it flips C, and flips C before its next probe. So
/// each look reads the counters, then the flag, then the counters again: a flipped flag with
/// fewer than `needed` results counted after it, or an unflipped one with more than `needed`
/// counted before it, is wrong however late the test looks (an exact count compared after
/// the flip would break whenever a probe lands in between). A flip exactly one result late
/// looks like that race from here; the counter's unit tests (`health/counter.rs`) pin it.
/// Returns the counters of the look that saw the flip.
async fn until_c_after(proxy: &TestProxy, member: usize, failed: bool, needed: u64, run: impl Fn(&HealthStatus) -> u64) -> HealthStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = run(&health(proxy, member));
        let flipped = flags(proxy, member).contains(StatusFlags::HEALTH_FAILED) == failed;
        let after = health(proxy, member);
        if flipped {
            let counted = run(&after);
            assert!(counted >= needed, "member {member} got C = {failed} after only {counted} results in a row, not {needed}: {after:?}");
            return after;
        }
        assert!(before <= needed, "member {member} still has C = {} after {before} results in a row ({needed} flip it): {after:?}", !failed);
        assert!(Instant::now() < deadline, "member {member} never got C = {failed}: {after:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded) until member `member` has been probed `n` more times.
async fn probes(proxy: &TestProxy, member: usize, n: u64) {
    let target = health(proxy, member).probes + n;
    switchyard_tests::eventually(&format!("member {member} is probed {n} more times"), || health(proxy, member).probes >= target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_member_leaves_rotation_and_comes_back() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let hc = "hcmethod = \"GET\"\nhcuri = \"/health\"\nhcinterval = \"100ms\"\nhcfails = 3\nhcpasses = 2";
    let proxy = proxy(&[(a.url(), hc), (b.url(), "")]).await;
    probes(&proxy, 0, 2).await;
    assert!(!flags(&proxy, 0).contains(StatusFlags::HEALTH_FAILED));
    assert_eq!(TestClient::http1().members_of(&proxy.url("/"), 4).await, ["a", "b", "a", "b"]);

    // Counted from before the health changes: a probe already under way then may still see
    // the old answer, and it is the only one, so every failure after this is in the run.
    let start = health(&proxy, 0);
    a.set_health(503, "DOWN");
    // C once hcfails failed probes in a row are counted, not before (and not left off after).
    let status = until_c_after(&proxy, 0, true, 3, |s| s.failures - start.failures).await;
    let last = status.last.expect("a verdict");
    assert!(!last.healthy && last.reason.contains("503"), "{last:?}");
    assert_eq!(TestClient::http1().members_of(&proxy.url("/"), 4).await, ["b"; 4], "out of rotation");

    // Back once hcpasses passes in a row are counted, not before: every probe since `start`
    // that did not fail (only the one under way at the change can still fail, before the run).
    let start = health(&proxy, 0);
    a.set_health(200, "UP");
    until_c_after(&proxy, 0, false, 2, |s| (s.probes - start.probes).saturating_sub(s.failures - start.failures)).await;
    // The loop counts a transition just after it flips the flag.
    switchyard_tests::eventually("the recovery is counted", || health(&proxy, 0).transitions >= 2).await;
    assert_eq!(health(&proxy, 0).transitions, 2, "C set once and cleared once");
    let back = TestClient::http1().members_of(&proxy.url("/"), 4).await;
    assert!(back.contains(&"a".to_string()), "back in rotation: {back:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_check_takes_out_a_closed_port() {
    let closed = refusing_port();
    let b = Member::start("b").await;
    let tcp = "hcmethod = \"TCP\"\nhcinterval = \"100ms\"";
    let proxy = proxy(&[(format!("http://{}", closed.addr), tcp), (b.url(), tcp)]).await;
    until_c(&proxy, 0, true).await;
    let last = health(&proxy, 0).last.expect("a verdict");
    assert!(!last.healthy && last.reason.contains("connect"), "{last:?}");
    probes(&proxy, 1, 2).await;
    assert!(!flags(&proxy, 1).contains(StatusFlags::HEALTH_FAILED), "the open port passes");
    // No request ever tried the closed member: the health check kept it out.
    assert_eq!(TestClient::http1().members_of(&proxy.url("/"), 3).await, ["b"; 3]);
    assert_eq!(proxy.running.proxy.balancers()[0].members()[0].snapshot().errors, 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hcexpr_judges_the_body() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let expr = "hcmethod = \"GET11\"\nhcuri = \"/health\"\nhcinterval = \"100ms\"\nhcexpr = 'status in 200..399 and body contains \"UP\"'";
    let proxy = proxy(&[(a.url(), expr), (b.url(), "")]).await;
    probes(&proxy, 0, 2).await;
    assert!(!flags(&proxy, 0).contains(StatusFlags::HEALTH_FAILED));
    a.set_health(200, "status: DEGRADED");
    until_c(&proxy, 0, true).await;
    let last = health(&proxy, 0).last.expect("a verdict");
    assert!(last.reason.contains("UP"), "the reason names the failed condition: {last:?}");
    a.set_health(200, "all systems UP");
    until_c(&proxy, 0, false).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_members_are_not_probed() {
    let a = Member::start("a").await;
    let b = Member::start("b").await;
    let hc = "hcmethod = \"GET\"\nhcuri = \"/health\"\nhcinterval = \"100ms\"";
    let stopped = format!("{hc}\nstatus = \"S\"");
    let proxy = proxy(&[(a.url(), &stopped), (b.url(), hc)]).await;
    probes(&proxy, 1, 3).await;
    assert_eq!(health(&proxy, 0).probes, 0);
    assert_eq!(a.requests(), 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_expression_is_refused_at_load_with_its_place() {
    let a = Member::start("a").await;
    let toml = config(&format!(
        "[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\nhcmethod = \"GET\"\nhcexpr = 'status in abc'\n",
        a.url()
    ));
    let error = TestProxy::try_start(&toml).await.err().expect("refused");
    assert!(error.starts_with("test.toml:11: balancer.b.member[0].hcexpr: "), "{error}");
    assert!(error.contains("status in abc"), "the message quotes the expression: {error}");
}
