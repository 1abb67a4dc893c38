//! An abandoned member exchange is cut at once: when the proxy gives a request up mid-body
//! (body over the limit, a bad later chunk, a client too slow or gone), the member's
//! connection, which holds part of the request, is closed within a short bound, whether the
//! member had answered yet or not, and whether the client reads the answer or not. Run in
//! loops: the timing of the client's and the member's bytes varies from run to run.

use std::time::Duration;

use switchyard_tests::client::{RawConn, status_of};
use switchyard_tests::recorder::Recorder;
use switchyard_tests::proxy::{TestProxy, config};

/// A chunk of the upload: 60,000 bytes, so two pass the 100,000-byte limit.
fn chunk() -> Vec<u8> {
    let mut c = format!("{:x}\r\n", 60_000).into_bytes();
    c.extend(std::iter::repeat_n(b'u', 60_000));
    c.extend_from_slice(b"\r\n");
    c
}

#[derive(Debug, Clone, Copy)]
enum Abandon {
    OverLimit,
    BadChunk,
    TooSlow,
    ClientGone,
}

/// Within how long the member must see its connection end after the proxy could know.
const BOUND: Duration = Duration::from_secs(2);

async fn run(early_answer: Option<usize>, how: Abandon, runs: usize) {
    let mut member = Recorder::start(early_answer).await;
    let toml = format!(
        "[limits]\nbody = 100000\n[timeouts]\nbody = \"300ms\"\nbody_min_rate = 0\n[[route]]\npath = \"/\"\nbackend = \"{}/\"\n",
        member.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    for run in 0..runs {
        let mut open = RawConn::connect(proxy.addr).await;
        let mut first = b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        first.extend(chunk());
        assert!(open.send(&first).await);
        let conn = member.received_at_least(60_000, Duration::from_secs(10)).await.expect("the first chunk reaches the member");
        match how {
            Abandon::OverLimit => assert!(open.send(&chunk()).await),
            Abandon::BadChunk => assert!(open.send(b"zz\r\n").await),
            Abandon::TooSlow => {}
            Abandon::ClientGone => {}
        }
        // Kept open (and never read) until the member's side is checked, unless it is the
        // client that goes.
        let client = (!matches!(how, Abandon::ClientGone)).then_some(open);
        let bound = if matches!(how, Abandon::TooSlow) { BOUND + Duration::from_millis(300) } else { BOUND };
        assert!(member.closed_within(conn, bound).await, "run {run} ({how:?}, early answer {early_answer:?}): the member's connection stayed open");
        if let (None, Some(mut client)) = (early_answer, client) {
            // The member never answered: the client gets the proxy's refusal.
            let answer = client.response_within(Duration::from_secs(5)).await.unwrap_or_default();
            let want = match how {
                Abandon::OverLimit => 413,
                Abandon::BadChunk => 400,
                _ => 408,
            };
            assert_eq!(status_of(&answer), want, "run {run} ({how:?}): {answer}");
        }
    }
    proxy.stop().await;
}

/// The member answers at once with more than the proxy holds back (so the answer streams
/// while the upload goes on) and the client never reads it: hyper then stops polling the
/// answer, and the upload must still be watched.
const LARGE_EARLY_ANSWER: Option<usize> = Some(32 << 20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_with_an_early_answer_cuts_the_member_50_times() {
    run(LARGE_EARLY_ANSWER, Abandon::OverLimit, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_chunk_slow_client_or_gone_client_with_an_early_answer_cuts_the_member() {
    for how in [Abandon::BadChunk, Abandon::TooSlow, Abandon::ClientGone] {
        run(LARGE_EARLY_ANSWER, how, 5).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_abandonment_before_an_answer_cuts_the_member_and_answers_the_client() {
    run(None, Abandon::OverLimit, 50).await;
    for how in [Abandon::BadChunk, Abandon::TooSlow, Abandon::ClientGone] {
        run(None, how, 5).await;
    }
}
