//! The access log: a bounded queue of [`Entry`]s and the thread that formats and writes them.
//!
//! Writing never blocks a worker: [`AccessLog::record`] only tries to queue, and a full queue
//! drops the line and counts it ([`AccessLog::dropped`]). The writer flushes whenever the
//! queue runs empty, so a quiet proxy's lines are on disk at once and a busy one's go out in
//! large writes. [`AccessLog::reopen`] (SIGUSR1) makes the writer open the file again by name,
//! after logrotate moved it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Method, Version};

use super::render::Renderer;
use crate::config::{self, AccessFormat, LogItem, LogTarget};

/// What one answered request leaves in the log.
#[derive(Debug)]
pub struct Entry {
    /// When the request arrived (the writer turns it into a wall-clock time).
    pub arrived: Instant,
    /// The client's address.
    pub client: IpAddr,
    /// The method.
    pub method: Method,
    /// The request target as the client sent it (its path and query are logged).
    pub target: http::Uri,
    /// The protocol version.
    pub version: Version,
    /// The status sent to the client.
    pub status: u16,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// From arrival to the end of the answer (or until the client went away).
    pub duration: Duration,
    /// From arrival to the member's response head, when a member answered.
    pub member_time: Option<Duration>,
    /// The matched route's prefix.
    pub route: Option<Arc<str>>,
    /// The balancer that chose the member.
    pub balancer: Option<Arc<str>>,
    /// The member that answered (or was last tried).
    pub member: Option<Arc<str>>,
    /// Members tried.
    pub attempts: u32,
    /// The sticky route the request asked for.
    pub sticky: Option<String>,
    /// The request id sent to the member.
    pub request_id: Option<HeaderValue>,
    /// The request headers the format names, in [`AccessLog::request_headers`] order.
    pub request_headers: Vec<Option<HeaderValue>>,
    /// The response headers the format names, in [`AccessLog::response_headers`] order.
    pub response_headers: Vec<Option<HeaderValue>>,
}

/// An entry waiting for its answer to end: the response body counts what it sends and
/// [`PendingEntry::finish`]es it when done or dropped.
#[derive(Debug)]
pub struct PendingEntry {
    log: Arc<AccessLog>,
    entry: Entry,
    body_in: Option<Arc<AtomicU64>>,
}

impl PendingEntry {
    /// `entry`, for `log`; `body_in` counts the request's body. One allocation, which is
    /// what travels to the writer.
    pub fn new(log: Arc<AccessLog>, entry: Entry, body_in: Option<Arc<AtomicU64>>) -> Box<Self> {
        Box::new(Self { log, entry, body_in })
    }

    /// The answer is over, after `bytes_out` body bytes: the line is queued.
    pub fn finish(mut self: Box<Self>, bytes_out: u64) {
        self.entry.duration = self.entry.arrived.elapsed();
        self.entry.bytes_out = bytes_out;
        if let Some(counter) = &self.body_in {
            self.entry.bytes_in = counter.load(Ordering::Relaxed);
        }
        let log = Arc::clone(&self.log);
        log.record(self);
    }
}

/// Why the access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("access_log: cannot open {path}: {source}")]
pub struct AccessLogError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

enum Message {
    Line(Box<PendingEntry>),
    Reopen,
}

/// A running access log; the writer thread ends (after writing what is queued) when the
/// last handle is dropped.
pub struct AccessLog {
    settings: config::AccessLog,
    sender: SyncSender<Message>,
    /// Set by [`AccessLog::reopen`], taken by the writer.
    reopen: Arc<AtomicBool>,
    dropped: AtomicU64,
    request_headers: Vec<HeaderName>,
    response_headers: Vec<HeaderName>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Opens the log `settings` describe and starts its writer.
    pub fn open(settings: &config::AccessLog) -> Result<Arc<Self>, AccessLogError> {
        let sink = Sink::open(&settings.target)?;
        let (sender, receiver) = sync_channel(settings.buffer);
        let names = |want: fn(&LogItem) -> Option<&HeaderName>| match &settings.format {
            AccessFormat::Text(items) => items.iter().filter_map(want).cloned().collect(),
            AccessFormat::Json => Vec::new(),
        };
        let request_headers: Vec<HeaderName> = names(|i| if let LogItem::RequestHeader(h) = i { Some(h) } else { None });
        let response_headers: Vec<HeaderName> = names(|i| if let LogItem::ResponseHeader(h) = i { Some(h) } else { None });
        let renderer = Renderer::new(settings.format.clone());
        let reopen = Arc::new(AtomicBool::new(false));
        let writer_reopen = Arc::clone(&reopen);
        std::thread::Builder::new()
            .name("switchyard-access-log".into())
            .spawn(move || write_lines(receiver, sink, renderer, &writer_reopen))
            .map_err(|source| AccessLogError { path: target_path(&settings.target), source })?;
        Ok(Arc::new(Self { settings: settings.clone(), sender, reopen, dropped: AtomicU64::new(0), request_headers, response_headers }))
    }

    /// The settings it was opened with (a reload with the same ones keeps it).
    pub fn settings(&self) -> &config::AccessLog {
        &self.settings
    }

    /// Request headers the format shows (`%{Name}i`), in [`Entry::request_headers`] order.
    pub fn request_headers(&self) -> &[HeaderName] {
        &self.request_headers
    }

    /// Response headers the format shows (`%{Name}o`), in [`Entry::response_headers`] order.
    pub fn response_headers(&self) -> &[HeaderName] {
        &self.response_headers
    }

    /// Queues `entry` for writing, or drops and counts it when the queue is full.
    fn record(&self, entry: Box<PendingEntry>) {
        match self.sender.try_send(Message::Line(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Makes the writer open its file again by name (after logrotate moved it). Never waits:
    /// when the queue is full, the writer sees the request before its next line.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
        let _ = self.sender.try_send(Message::Reopen);
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Where lines are written.
enum Sink {
    Stderr(io::Stderr),
    File { path: PathBuf, out: BufWriter<File> },
}

impl Sink {
    fn open(target: &LogTarget) -> Result<Self, AccessLogError> {
        match target {
            LogTarget::Stderr => Ok(Sink::Stderr(io::stderr())),
            LogTarget::File(path) => Ok(Sink::File { path: path.clone(), out: BufWriter::with_capacity(64 * 1024, open_file(path)?) }),
        }
    }

    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stderr(e) => e,
            Sink::File { out, .. } => out,
        }
    }

    fn reopen(&mut self) {
        if let Sink::File { path, out } = self {
            let _ = out.flush();
            match open_file(path) {
                Ok(file) => *out = BufWriter::with_capacity(64 * 1024, file),
                Err(e) => tracing::warn!(error = %e, "access log not reopened; writing on to the old file"),
            }
        }
    }
}

fn open_file(path: &Path) -> Result<File, AccessLogError> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|source| AccessLogError { path: path.to_path_buf(), source })
}

fn target_path(target: &LogTarget) -> PathBuf {
    match target {
        LogTarget::Stderr => PathBuf::from("stderr"),
        LogTarget::File(p) => p.clone(),
    }
}

/// The writer thread: formats and writes until every handle is gone, flushing whenever the
/// queue runs empty.
fn write_lines(receiver: Receiver<Message>, mut sink: Sink, mut renderer: Renderer, reopen: &AtomicBool) {
    let mut line = Vec::with_capacity(512);
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            if reopen.swap(false, Ordering::AcqRel) {
                sink.reopen();
            }
            match message {
                Message::Line(entry) => {
                    line.clear();
                    renderer.render(&entry.entry, &mut line);
                    if let Err(e) = sink.out().write_all(&line) {
                        tracing::warn!(error = %e, "access log write failed");
                    }
                }
                Message::Reopen => {}
            }
            next = receiver.try_recv().ok();
        }
        let _ = sink.out().flush();
    }
    let _ = sink.out().flush();
}
