//! Traces: a proxy records a balancer's picks and completions (`record = "FILE"`), and
//! `plugin replay` of the method that was live reproduces its every choice — byrequests,
//! bybusyness and bytraffic, with requests in flight, sticky sessions and varied sizes.

use std::path::Path;

use http::Request;
use http_body_util::Full;
use switchyard_tests::client::TestClient;
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config, temp_dir};
use switchyard_tests::eventually;

/// Runs a mixed workload through balancer `web` (members a, b, c; loadfactors 1, 2, 1;
/// routes ra, rb, rc) picked by `method`, recording a trace; returns its text and how many
/// requests were sent. Picks never race (each request is sent once the previous one reached
/// its member), so the live sequence is well defined.
async fn recorded(method: &str, label: &str) -> (String, std::path::PathBuf, usize) {
    let members = [Member::start("a").await, Member::start("b").await, Member::start("c").await];
    let dir = temp_dir(&format!("trace-{label}-{method}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let trace = dir.join("web.jsonl");
    let _ = std::fs::remove_file(&trace);
    let mut toml = format!(
        "[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\nlbmethod = \"{method}\"\nstickysession = \"ROUTEID\"\nrecord = \"{}\"\n",
        trace.display()
    );
    for (m, (lf, route)) in members.iter().zip([(1, "ra"), (2, "rb"), (1, "rc")]) {
        toml.push_str(&format!("[[balancer.web.member]]\nurl = \"{}\"\nloadfactor = {lf}\nroute = \"{route}\"\n", m.url()));
    }
    let proxy = TestProxy::start(&config(&toml)).await;
    let client = TestClient::http1();
    let served = || members.iter().map(Member::requests).sum::<usize>();
    let mut slow = Vec::new();
    let requests = 30;
    for k in 0..requests {
        if k % 7 == 6 {
            let request = Request::get(proxy.url("/bytes/300")).header("cookie", "ROUTEID=s1.rb").body(Full::default()).expect("request");
            assert_eq!(client.send(request).await.status, 200);
        } else if k % 4 == 0 {
            // A request kept in flight while the next ones are placed.
            let url = proxy.url("/sleep/300");
            slow.push(tokio::spawn(async move { TestClient::http1().get(&url).await.status }));
            eventually("the slow request reached its member", || served() == k + 1).await;
        } else {
            let size = (k * 397) % 3000;
            assert_eq!(client.get(&proxy.url(&format!("/bytes/{size}"))).await.status, 200);
        }
    }
    for s in slow {
        assert_eq!(s.await.expect("slow request"), 200);
    }
    proxy.stop().await;
    let picks = || std::fs::read_to_string(&trace).unwrap_or_default().lines().filter(|l| l.contains("\"pick\"")).count();
    eventually("every pick is in the trace", || picks() == requests).await;
    (std::fs::read_to_string(&trace).expect("trace"), trace, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_live_method_reproduces_its_every_choice() {
    for method in ["byrequests", "bybusyness", "bytraffic"] {
        let (text, file, requests) = recorded(method, "live").await;
        let busy_seen = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|l| l["pick"]["busy"].as_array().map(|b| b.iter().filter_map(serde_json::Value::as_u64).sum::<u64>()))
            .max();
        assert!(busy_seen.is_some_and(|b| b > 0), "{method}: some pick saw a request in flight");
        assert!(text.contains("\"route\":\"rb\""), "{method}: sticky requests are recorded with their route");
        assert!(text.contains("\"done\""), "{method}: completions are recorded");
        let replay = switchyard::trace::replay_file(Path::new(method), &file, "{}").await.expect("replays");
        assert_eq!(replay.segments.len(), 1);
        let segment = &replay.segments[0];
        assert_eq!(segment.chosen.len(), requests);
        let recorded: Vec<Option<usize>> = segment.recorded.iter().copied().map(Some).collect();
        assert_eq!(segment.chosen, recorded, "{method}: the replay chose what the live proxy chose");
        assert!(segment.recorded_per_member().iter().all(|&n| n > 0), "{method}: every member was used: {:?}", segment.recorded_per_member());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_method_replayed_shows_what_it_would_have_chosen() {
    let (text, file, requests) = recorded("byrequests", "other").await;
    let replay = switchyard::trace::replay_file(Path::new(switchyard_tests::GUEST_MISBEHAVE), &file, r#"{"mode": "ok"}"#).await.expect("replays");
    let segment = &replay.segments[0];
    // `ok` always picks the first candidate: every request the method placed goes to a;
    // sticky requests still follow their session to b.
    let sticky = text.lines().filter(|l| l.contains("\"pick\"") && l.contains("\"route\":\"rb\"")).count();
    assert_eq!(segment.per_member(), vec![(requests - sticky) as u64, sticky as u64, 0]);
    assert!(segment.matched() < requests, "it differs from the live byrequests");
    let csv = switchyard::trace::report::render(&replay, switchyard::trace::report::Format::Csv, std::time::Duration::from_secs(60));
    assert!(csv.starts_with("segment,t_us,\"http://127.0.0.1:"), "{csv}");
}

/// Records byrequests over a (answering in 30 ms), b and c under three concurrent clients.
/// `UPDATE_TRACES=1` also writes it to `examples/traces/slow-member.jsonl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_aware_method_replayed_over_a_slow_member_trace_avoids_it() {
    let members = [Member::start("a").await, Member::start("b").await, Member::start("c").await];
    members[0].set_delay(30);
    let dir = temp_dir("trace-slow");
    std::fs::create_dir_all(&dir).expect("dir");
    let trace = dir.join("slow.jsonl");
    let _ = std::fs::remove_file(&trace);
    let mut toml = format!("[[route]]\npath = \"/\"\nbalancer = \"web\"\n[balancer.web]\nrecord = \"{}\"\n", trace.display());
    for m in &members {
        toml.push_str(&format!("[[balancer.web.member]]\nurl = \"{}\"\n", m.url()));
    }
    let proxy = TestProxy::start(&config(&toml)).await;
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let url = proxy.url("/bytes/200");
            tokio::spawn(async move {
                let client = TestClient::http1();
                for _ in 0..20 {
                    assert_eq!(client.get(&url).await.status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client");
    }
    proxy.stop().await;
    let dones = || std::fs::read_to_string(&trace).unwrap_or_default().lines().filter(|l| l.contains("\"done\"")).count();
    eventually("every completion is in the trace", || dones() == 60).await;
    if std::env::var_os("UPDATE_TRACES").is_some() {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/traces/slow-member.jsonl");
        std::fs::copy(&trace, out).expect("update the example trace");
    }
    let replay = switchyard::trace::replay_file(Path::new(switchyard_tests::GUEST_PEAK_EWMA), &trace, "{}").await.expect("replays");
    let segment = &replay.segments[0];
    let (live, peak) = (segment.recorded_per_member()[0], segment.per_member()[0]);
    assert!(live >= 15, "byrequests gave the slow member its third: {live}");
    assert!(peak * 3 <= live, "peak-EWMA would have sent it {peak}, byrequests sent {live}");
}
