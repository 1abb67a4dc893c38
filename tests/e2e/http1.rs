//! The HTTP/1.1 fast path (plain requests served without hyper's server) and its hand-off to
//! hyper: answers in order across the hand-off, what the fast path writes itself, and large
//! answers moved socket to socket (whole, counted, logged; cut off when the member fails).

use switchyard_tests::client::{RawConn, raw_exchange, status_of};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_plain_requests_then_one_with_a_body_are_answered_in_order() {
    let m = Member::start("m").await;
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url()))).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    // Two plain GETs (the fast path), a POST with a body (handed to hyper with the bytes
    // behind it), then another GET (hyper's now): one write, four answers in order.
    let pipelined = "GET /a HTTP/1.1\r\nHost: t\r\n\r\n\
                     GET /b HTTP/1.1\r\nHost: t\r\n\r\n\
                     POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
                     GET /c HTTP/1.1\r\nHost: t\r\n\r\n";
    assert!(conn.send(pipelined.as_bytes()).await);
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let reply = conn.response().await.expect("an answer");
        assert_eq!(status_of(&reply), 200, "{reply}");
        bodies.push(reply.split("\r\n\r\n").nth(1).unwrap_or_default().to_string());
    }
    assert_eq!(bodies, ["m", "m", "hello", "m"]);
    assert_eq!(m.requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_delimited_answer_is_sent_chunked_with_a_date_and_the_member_spelling_kept() {
    // A member answering without a length, without a Date, and ending the body by closing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let member = tokio::spawn(async move {
        for _ in 0..2 {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Spelled-Thus: Kept\r\nConnection: close\r\n\r\nhello").await;
        }
    });
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"http://{addr}/\"\n"))).await;
    let reply = raw_exchange(proxy.addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await;
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nX-Spelled-Thus: Kept\r\n"), "the member's lines pass as it wrote them: {head}");
    assert!(head.contains("\r\ntransfer-encoding: chunked\r\n"), "{head}");
    assert!(head.contains("\r\ndate: "), "a Date is added when the member sent none: {head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(!head.contains("Connection: close"), "the member's Connection is hop-by-hop: {head}");
    assert_eq!(body, "5\r\nhello\r\n0\r\n\r\n");
    // HEAD: the same head, no body at all.
    let reply = raw_exchange(proxy.addr, b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await;
    assert!(reply.ends_with("\r\n\r\n") && status_of(&reply) == 200, "{reply:?}");
    member.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_gives_up_its_request() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbalancer = \"b\"\n\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let member = &proxy.running.proxy.balancers()[0].members()[0];
    let busy_becomes = |n: u64| busy_becomes(member, n);
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(b"GET /sleep/60000 HTTP/1.1\r\nHost: t\r\n\r\n").await);
    assert!(busy_becomes(1).await, "the request reached the member");
    drop(conn);
    // The member would answer after a minute; the request is given up within the (at least)
    // 10 s looked at.
    assert!(busy_becomes(0).await, "the member exchange ends when the client goes away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_httparse_takes_but_http_refuses_reaches_hyper_whole() {
    let m = Member::start("m").await;
    let proxy = TestProxy::start(&config(&format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url()))).await;
    // httparse accepts the backtick in the target; `http::Uri` does not. The fast path must
    // give the whole head back for hyper to refuse (found by the request_head fuzz target).
    let reply = raw_exchange(proxy.addr, b"GET /a`b HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(status_of(&reply), 400, "{reply:?}");
    assert_eq!(m.requests(), 0);
}

/// Reads one answer with a Content-Length body off `stream`: (head, body); `None` when the
/// connection ends first, with what arrived of the body.
async fn read_counted(stream: &mut tokio::net::TcpStream, pending: &mut Vec<u8>) -> Result<(String, Vec<u8>), Vec<u8>> {
    let read = async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().expect("a length")))
                    .expect("a Content-Length");
                if pending.len() >= end + 4 + length {
                    let body = pending[end + 4..end + 4 + length].to_vec();
                    pending.drain(..end + 4 + length);
                    return Ok((head, body));
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(std::mem::take(pending)),
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read).await.expect("an answer, or the connection closed, in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_move_socket_to_socket_whole_counted_and_logged() {
    let m = Member::start("m").await;
    let dir = std::env::temp_dir().join(format!("switchyard-splice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join("access.log");
    let _ = std::fs::remove_file(&log);
    let toml = format!(
        "[access_log]\npath = \"{}\"\nformat = \"%U %B\"\n[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\n",
        log.display(),
        m.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.expect("connect");
    let mut pending = Vec::new();
    // Two large answers (more than a pipe holds, so several fills), one large enough to be
    // split over many, and a small one after them: all whole, on one client connection.
    for size in [300_000usize, 5_000_000, 300_000, 2] {
        stream.write_all(format!("GET /bytes/{size} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).await.expect("send");
        let (head, body) = read_counted(&mut stream, &mut pending).await.expect("a whole answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body.len(), size);
        assert!(body == switchyard_tests::member::pattern(size), "the {size}-byte body arrives as sent");
    }
    assert_eq!(m.connections(), 1, "the member connection stays in step and is reused after each");
    let member = proxy.running.proxy.balancers()[0].members()[0].snapshot();
    assert!(member.read >= 5_600_002, "bytes from the member are counted: {}", member.read);
    // The access log's body bytes (%B) count what reached the client.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 4 || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(lines, "/bytes/300000 300000\n/bytes/5000000 5000000\n/bytes/300000 300000\n/bytes/2 2\n");
    proxy.stop().await;
}

/// A member that answers every connection with a head promising 300,000 bytes and 100,000
/// of them, then closes the connection, or holds it open saying nothing (`hold`).
async fn short_member(hold: bool) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n").await;
                let _ = stream.write_all(&vec![b'x'; 100_000]).await;
                if hold {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_cut_short_or_stalled_closes_the_client_connection() {
    for hold in [false, true] {
        let (addr, member) = short_member(hold).await;
        // A stalled member is cut off after its timeout.
        let toml = format!("[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"http://{addr}\"\ntimeout = \"300ms\"\n");
        let proxy = TestProxy::start(&config(&toml)).await;
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.expect("connect");
        stream.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("send");
        let mut pending = Vec::new();
        let got = read_counted(&mut stream, &mut pending).await.expect_err("the connection closes before the body is whole");
        let body_at = got.windows(4).position(|w| w == b"\r\n\r\n").expect("the head arrived") + 4;
        assert!(got.starts_with(b"HTTP/1.1 200"), "hold {hold}");
        assert_eq!(got.len() - body_at, 100_000, "hold {hold}: what the member sent, and no more");
        proxy.stop().await;
        member.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_in_the_middle_of_a_large_answer_leaves_nothing_behind() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.expect("connect");
    stream.write_all(b"GET /bytes/50000000 HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("send");
    let mut got = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    while got < 1_000_000 {
        got += stream.read(&mut chunk).await.expect("read");
    }
    // Gone with most of the answer unread: the proxy's writes fail (no signal kills it).
    drop(stream);
    let member = &proxy.running.proxy.balancers()[0].members()[0];
    assert!(busy_becomes(member, 0).await, "the member exchange ends with the client");
    let mut again = tokio::net::TcpStream::connect(proxy.addr).await.expect("the proxy still accepts");
    again.write_all(b"GET /bytes/300000 HTTP/1.1\r\nHost: t\r\n\r\n").await.expect("send");
    let (_, body) = read_counted(&mut again, &mut Vec::new()).await.expect("a whole answer");
    assert!(body == switchyard_tests::member::pattern(300_000));
    proxy.stop().await;
}

/// Whether `member`'s busy count becomes `n` within about 10 s.
async fn busy_becomes(member: &switchyard::proxy::ProxyMember, n: u64) -> bool {
    for _ in 0..500 {
        if member.busy() == n {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}
