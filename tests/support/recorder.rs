//! A member that reports every byte each connection sends it and the moment the connection
//! ends, optionally answering early while it goes on reading (for tests of abandoned
//! exchanges).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

/// What a [`Recorder`] sees of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A connection has sent bytes.
    Received {
        /// Which connection (in accept order).
        conn: usize,
        /// Bytes it sent so far, head included.
        total: usize,
    },
    /// A connection ended: the peer closed or shut it down, or reset it.
    Closed {
        /// Which connection.
        conn: usize,
    },
}

/// A member that reports every byte it receives and the moment each connection ends. With
/// `early_answer = Some(n)` it answers `200` with an `n`-byte body as soon as a request head
/// has arrived, while it goes on reading the request body (an early answer, as an echo or a
/// streaming member gives); with `None` it never answers. Stopped on drop.
pub struct Recorder {
    /// Where it listens.
    pub addr: SocketAddr,
    events: tokio::sync::mpsc::UnboundedReceiver<Seen>,
    stop: watch::Sender<bool>,
}

impl Recorder {
    /// Starts one on a free loopback port.
    pub async fn start(early_answer: Option<usize>) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind recorder");
        let addr = listener.local_addr().expect("addr");
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            for conn in 0.. {
                let mut stopped = stopped.clone();
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    _ = stopped.wait_for(|s| *s) => return,
                };
                let events = events_tx.clone();
                tokio::spawn(async move {
                    let (mut reader, writer) = stream.into_split();
                    let mut writer = Some(writer);
                    let mut buf = vec![0u8; 65536];
                    let mut total = 0;
                    let mut head: Vec<u8> = Vec::new();
                    let mut answering = None;
                    loop {
                        let n = tokio::select! {
                            n = tokio::io::AsyncReadExt::read(&mut reader, &mut buf) => n,
                            _ = stopped.wait_for(|s| *s) => break,
                        };
                        let n = match n {
                            Ok(0) | Err(_) => {
                                let _ = events.send(Seen::Closed { conn });
                                break;
                            }
                            Ok(n) => n,
                        };
                        total += n;
                        if answering.is_none() && head.len() < 65536 {
                            head.extend_from_slice(&buf[..n]);
                            if let Some(size) = early_answer
                                && head.windows(4).any(|w| w == b"\r\n\r\n")
                                && let Some(mut writer) = writer.take()
                            {
                                // The answer goes out from its own task while the body is read.
                                answering = Some(tokio::spawn(async move {
                                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
                                    if tokio::io::AsyncWriteExt::write_all(&mut writer, head.as_bytes()).await.is_err() {
                                        return;
                                    }
                                    let piece = vec![b'x'; 65536];
                                    let mut left = size;
                                    while left > 0 {
                                        let step = left.min(piece.len());
                                        if tokio::io::AsyncWriteExt::write_all(&mut writer, &piece[..step]).await.is_err() {
                                            return;
                                        }
                                        left -= step;
                                    }
                                }));
                            }
                        }
                        let _ = events.send(Seen::Received { conn, total });
                    }
                    if let Some(task) = answering {
                        task.abort();
                    }
                });
            }
        });
        Recorder { addr, events, stop }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits (up to `limit`) until some connection has received at least `bytes`; which one.
    pub async fn received_at_least(&mut self, bytes: usize, limit: Duration) -> Option<usize> {
        let wait = async {
            while let Some(seen) = self.events.recv().await {
                if let Seen::Received { conn, total } = seen
                    && total >= bytes
                {
                    return Some(conn);
                }
            }
            None
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }

    /// Waits (up to `limit`) until connection `conn` has ended; whether it did.
    pub async fn closed_within(&mut self, conn: usize, limit: Duration) -> bool {
        let wait = async {
            while let Some(seen) = self.events.recv().await {
                if seen == (Seen::Closed { conn }) {
                    return true;
                }
            }
            false
        };
        tokio::time::timeout(limit, wait).await.unwrap_or(false)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

