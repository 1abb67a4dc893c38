//! Upgrades: a WebSocket echo through the proxy where `upgrade = ["websocket"]` allows it
//! (per route, per member), plain HTTP where it does not, and never `Upgrade: h2c`.

use std::time::{Duration, Instant};

use switchyard_tests::client::{RawConn, status_of};
use switchyard_tests::member::Member;
use switchyard_tests::proxy::{TestProxy, config};
use switchyard_tests::websocket::{read_frame, write_frame};

const HANDSHAKE: &str = "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_proxy() {
    let m = Member::start("ws").await;
    let allowed = Member::start("member-allowed").await;
    let toml = format!(
        "[[route]]\npath = \"/chat\"\nbackend = \"{}/\"\nupgrade = [\"websocket\"]\n\
         [[route]]\npath = \"/\"\nbalancer = \"b\"\n[balancer.b]\n[[balancer.b.member]]\nurl = \"{}\"\nupgrade = [\"WebSocket\"]\n",
        m.url(),
        allowed.url()
    );
    let proxy = TestProxy::start(&config(&toml)).await;
    for (path, name) in [("/chat/ws", "ws"), ("/ws", "member-allowed")] {
        let mut conn = RawConn::connect(proxy.addr).await;
        assert!(conn.send(HANDSHAKE.replacen("/ws", path, 1).as_bytes()).await);
        let head = conn.response().await.expect("101");
        assert_eq!(status_of(&head), 101, "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("upgrade: websocket") && lower.contains("connection: upgrade"), "{head}");
        assert!(lower.contains("sec-websocket-accept: "), "the member's handshake answer comes through: {head}");
        let (mut stream, early) = conn.into_parts();
        assert!(early.is_empty());
        for text in ["hello", "second frame", "third"] {
            write_frame(&mut stream, text, Some([1, 2, 3, 4])).await.expect("write");
            let echoed = tokio::time::timeout(switchyard_tests::client::REQUEST_DEADLINE, read_frame(&mut stream)).await.expect("in time");
            assert_eq!(echoed.as_deref(), Some(format!("{name}: {text}").as_str()));
        }
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_not_allowed_go_as_plain_http() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    // No upgrade allowed on this route: the member sees a plain GET and answers 426.
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(HANDSHAKE.as_bytes()).await);
    let reply = conn.response().await.expect("reply");
    assert_eq!(status_of(&reply), 426, "{reply}");
    assert!(reply.contains("x-seen-upgrade: \r\n"), "no Upgrade reached the member: {reply}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_is_never_forwarded_even_where_websocket_is_allowed() {
    let m = Member::start("m").await;
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\nupgrade = [\"websocket\"]\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let h2c = "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    assert!(conn.send(h2c.as_bytes()).await);
    let reply = conn.response().await.expect("reply");
    assert_eq!(status_of(&reply), 426, "{reply}");
    assert!(reply.contains("x-seen-upgrade: \r\n"), "h2c did not reach the member: {reply}");
    // And a config asking for it is refused.
    let bad = config(&format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\nupgrade = [\"h2c\"]\n", m.url()));
    let err = TestProxy::try_start(&bad).await.err().expect("refused");
    assert!(err.contains("route[0].upgrade[0]: unknown upgrade protocol `h2c`"), "{err}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_tunnel_until_the_deadline() {
    let m = Member::start("ws").await;
    let toml = format!("[server]\nshutdown_timeout = \"1s\"\n[[route]]\npath = \"/\"\nbackend = \"{}/\"\nupgrade = [\"websocket\"]\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(HANDSHAKE.as_bytes()).await);
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(101));
    let (mut stream, _) = conn.into_parts();
    let stopping = tokio::spawn(proxy.stop());
    // During the drain the tunnel still carries frames…
    write_frame(&mut stream, "still there?", Some([9, 8, 7, 6])).await.expect("write");
    let echoed = tokio::time::timeout(switchyard_tests::client::REQUEST_DEADLINE, read_frame(&mut stream)).await.expect("in time");
    assert_eq!(echoed.as_deref(), Some("ws: still there?"));
    // …and is closed when the deadline passes.
    tokio::time::timeout(switchyard_tests::client::REQUEST_DEADLINE, stopping).await.expect("stopped in time").expect("stop");
    let after = tokio::time::timeout(switchyard_tests::client::REQUEST_DEADLINE, read_frame(&mut stream)).await.expect("in time");
    assert_eq!(after, None, "the tunnel is closed once the proxy has stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_is_closed_after_the_member_timeout() {
    let m = Member::start("ws").await;
    let idle = Duration::from_secs(1);
    let toml = format!("[[route]]\npath = \"/\"\nbackend = \"{}/\"\ntimeout = \"1s\"\nupgrade = [\"websocket\"]\n", m.url());
    let proxy = TestProxy::start(&config(&toml)).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    assert!(conn.send(HANDSHAKE.as_bytes()).await);
    assert_eq!(conn.response().await.as_deref().map(status_of), Some(101));
    let (mut stream, _) = conn.into_parts();
    // The idle clock restarts whenever the tunnel carries a byte; the last bytes it carries are
    // this frame and its echo, both moved after this instant. So a tunnel that honours its
    // timeout cannot close sooner than `idle` after it, however slow the machine.
    let last_sent = Instant::now();
    write_frame(&mut stream, "hi", Some([1, 1, 1, 1])).await.expect("write");
    let deadline = switchyard_tests::client::REQUEST_DEADLINE;
    assert_eq!(tokio::time::timeout(deadline, read_frame(&mut stream)).await.expect("in time").as_deref(), Some("ws: hi"));
    // Nothing more either way: the proxy closes the tunnel (within the test's deadline, many
    // times the timeout), and not before it has been idle for (most of) the timeout.
    assert_eq!(tokio::time::timeout(deadline, read_frame(&mut stream)).await.expect("closed in time"), None);
    let open_for = last_sent.elapsed();
    assert!(open_for >= idle.mul_f64(0.8), "the idle tunnel was closed after {open_for:?}, before its {idle:?} timeout");
    proxy.stop().await;
}
