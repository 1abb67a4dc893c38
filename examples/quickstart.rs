//! `cargo run --example quickstart`: three demo members on 127.0.0.1:9001-9003 and the proxy
//! on 127.0.0.1:8080 with `examples/quickstart.toml`, until ctrl-c.

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    for (n, port) in [(1, 9001), (2, 9002), (3, 9003)] {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| anyhow::anyhow!("demo member {n} cannot listen on 127.0.0.1:{port}: {e}"))?;
        tokio::spawn(demo_member(n, listener));
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.toml");
    let config = switchyard::config::load(&file)?;
    let running = switchyard::server::start(&config).await?;
    println!("\nSwitchyard is listening on http://{}", running.addrs[0]);
    println!("  curl http://{}/app/          balanced over members 1-3 (byrequests, member 3 has loadfactor 2)", running.addrs[0]);
    println!("  curl http://{}/static/x      excluded: 404", running.addrs[0]);
    println!("  curl http://{}/anything      member 1 directly", running.addrs[0]);
    println!("ctrl-c stops it.\n");
    let stop = running.shutdown_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    running.wait().await;
    Ok(())
}

/// A member that answers every request with its number and the path it was asked for.
async fn demo_member(n: u32, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| async move {
                let text = format!("hello from member {n} ({} {})\n", req.method(), req.uri());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
