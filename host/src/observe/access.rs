//! The access log: lines made on the worker that answered, gathered per worker, and the
//! thread that writes them.
//!
//! As nginx's workers do with `access_log … buffer=`, a worker formats a request's line when
//! its answer ends and appends it to a batch of its own (a lock nobody else takes but the
//! writer, once per round). The writer takes every worker's batch in rounds: it swaps each
//! for an empty one, writes and flushes, and then lets the next lines gather for `flush`. It
//! is woken early only when a batch passes half of `buffer` lines, or by any line once a round
//! found nothing and it sleeps for good (so a quiet proxy's line goes out at once).
//! Handing each entry to the writer over a queue woke it for almost every line (a futex call
//! on the worker and a context switch per request) and moved every entry's allocations to be
//! freed on another thread, which together cost a small request more than its line.
//!
//! Writing never blocks a worker for longer than another line's formatting: a worker whose
//! batch holds `buffer` lines drops new ones and counts them ([`AccessLog::dropped`]).
//! [`AccessLog::reopen`] (SIGUSR1) makes the writer open the file again by name, after
//! logrotate moved it; [`AccessLog::close`] writes what is gathered and stops the writer, at
//! shutdown.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Method, Version};

use super::render::Renderer;
use super::writer::{AccessLogError, Batch, Shared, Sink, Writer, lock, target_path};
use crate::config::{self, AccessFormat, LogItem};

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
    /// `entry`, for `log`; `body_in` counts the request's body. Boxed: it rides in the
    /// response body until the answer ends.
    pub fn new(log: Arc<AccessLog>, entry: Entry, body_in: Option<Arc<AtomicU64>>) -> Box<Self> {
        Box::new(Self { log, entry, body_in })
    }

    /// The answer is over, after `bytes_out` body bytes: the line is made and gathered.
    pub fn finish(self: Box<Self>, bytes_out: u64) {
        let PendingEntry { log, mut entry, body_in } = *self;
        entry.duration = entry.arrived.elapsed();
        entry.bytes_out = bytes_out;
        if let Some(counter) = &body_in {
            entry.bytes_in = counter.load(Ordering::Relaxed);
        }
        log.record(entry);
    }
}

/// What a thread keeps for the log it last wrote to: its batch, and the formatting state
/// (the current second's timestamp text) that goes with it.
struct Local {
    /// Which log (held, so that no later log can be mistaken for it).
    log: Arc<Shared>,
    batch: Arc<Mutex<Batch>>,
    renderer: Renderer,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// A running access log; the writer thread ends (after writing what is gathered) when
/// [`AccessLog::close`] is called or the last handle is dropped.
pub struct AccessLog {
    settings: config::AccessLog,
    shared: Arc<Shared>,
    /// The writer, to wake it.
    writer: Thread,
    /// The writer's handle until [`AccessLog::close`] waits for it.
    running: Mutex<Option<JoinHandle<()>>>,
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
        let names = |want: fn(&LogItem) -> Option<&HeaderName>| match &settings.format {
            AccessFormat::Text(items) => items.iter().filter_map(want).cloned().collect(),
            AccessFormat::Json => Vec::new(),
        };
        let request_headers: Vec<HeaderName> = names(|i| if let LogItem::RequestHeader(h) = i { Some(h) } else { None });
        let response_headers: Vec<HeaderName> = names(|i| if let LogItem::ResponseHeader(h) = i { Some(h) } else { None });
        let shared = Arc::new(Shared {
            batches: Mutex::new(Vec::new()),
            reopen: AtomicBool::new(false),
            close: AtomicBool::new(false),
            asleep: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        let writer = Writer { shared: Arc::clone(&shared), sink, flush: settings.flush };
        let running = std::thread::Builder::new()
            .name("switchyard-access-log".into())
            .spawn(move || writer.run())
            .map_err(|source| AccessLogError { path: target_path(&settings.target), source })?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            shared,
            writer: running.thread().clone(),
            running: Mutex::new(Some(running)),
            request_headers,
            response_headers,
        }))
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

    /// Makes `entry`'s line and adds it to this thread's batch, or drops and counts it when
    /// the batch already holds `buffer` lines (or the log is closed).
    fn record(&self, entry: Entry) {
        let limit = self.settings.buffer;
        let wake = LOCAL.try_with(|local| {
            let mut local = local.borrow_mut();
            if !local.as_ref().is_some_and(|mine| Arc::ptr_eq(&mine.log, &self.shared)) {
                *local = Some(self.local());
            }
            let Some(local) = local.as_mut() else { return false };
            let mut batch = lock(&local.batch);
            // Looked at under the batch's lock: the writer's last round takes this lock after
            // the flag is set, so a line is either in that round or counted here.
            if batch.lines >= limit || self.shared.close.load(Ordering::Acquire) {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            local.renderer.render(&entry, &mut batch.text);
            batch.lines += 1;
            // A writer between rounds is not woken for every line (it would take one line a
            // round); an asleep one is. Half the limit wakes either, lest the batch fill.
            // Read under the batch's lock, which the writer takes after saying it sleeps:
            // one of the two sees the other.
            batch.lines == limit.div_ceil(2) || self.settings.flush.is_zero() || self.shared.asleep.load(Ordering::SeqCst)
        });
        match wake {
            Ok(true) => self.writer.unpark(),
            Ok(false) => {}
            // A request ended while its thread was going away.
            Err(_) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A new batch for this thread, registered with the writer.
    fn local(&self) -> Local {
        let batch = Arc::new(Mutex::new(Batch::default()));
        lock(&self.shared.batches).push(Arc::clone(&batch));
        Local { log: Arc::clone(&self.shared), batch, renderer: Renderer::new(self.settings.format.clone()) }
    }

    /// Makes the writer open its file again by name (after logrotate moved it), before it
    /// writes its next lines.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
        self.writer.unpark();
    }

    /// Writes every line gathered so far and stops the writer; waits for it (at shutdown,
    /// when the workers are done: a line recorded afterwards is dropped and counted). Later
    /// calls return at once.
    pub fn close(&self) {
        let Some(running) = lock(&self.running).take() else { return };
        self.shared.close.store(true, Ordering::Release);
        self.writer.unpark();
        if running.join().is_err() {
            tracing::warn!("the access log's writer panicked");
        }
    }

    /// Lines dropped because a worker's batch was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // A log a reload replaced goes when its last request ends: its lines are written
        // before that request's worker goes on (one write and flush, once per such reload),
        // so none is lost if the process ends soon after.
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::LogTarget;

    fn entry(status: u16) -> Entry {
        Entry {
            arrived: Instant::now(),
            client: IpAddr::from([127, 0, 0, 1]),
            method: Method::GET,
            target: http::Uri::from_static("/x"),
            version: Version::HTTP_11,
            status,
            bytes_in: 0,
            bytes_out: 0,
            duration: Duration::ZERO,
            member_time: None,
            route: None,
            balancer: None,
            member: None,
            attempts: 0,
            sticky: None,
            request_id: None,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
        }
    }

    fn settings(path: &Path, buffer: usize, flush: Duration) -> config::AccessLog {
        config::AccessLog {
            target: LogTarget::File(path.to_path_buf()),
            format: AccessFormat::Text(vec![LogItem::Status]),
            buffer,
            flush,
            request_id: false,
        }
    }

    #[test]
    fn every_workers_lines_are_written_by_close_and_later_ones_are_counted() {
        let path = std::env::temp_dir().join(format!("switchyard-access-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        // A long flush: only close() can have written the last lines.
        let log = AccessLog::open(&settings(&path, 1000, Duration::from_secs(10))).expect("open");
        std::thread::scope(|threads| {
            for status in [200, 404] {
                let log = &log;
                threads.spawn(move || (0..300).for_each(|_| log.record(entry(status))));
            }
        });
        log.close();
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().filter(|l| *l == "200").count(), 300, "{text}");
        assert_eq!(text.lines().filter(|l| *l == "404").count(), 300);
        assert_eq!(text.lines().count(), 600);
        log.record(entry(500));
        assert_eq!(log.dropped(), 1, "a line after close is dropped and counted");
        log.close();
        let _ = std::fs::remove_file(&path);
    }

    fn written(path: &Path) -> usize {
        std::fs::read_to_string(path).unwrap_or_default().lines().count()
    }

    /// Waits (bounded) until `path` holds `n` lines.
    fn wait_for(path: &Path, n: usize) {
        for _ in 0..500 {
            if written(path) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} never held {n} lines", path.display());
    }

    #[test]
    fn a_writer_asleep_is_woken_by_one_line() {
        let path = std::env::temp_dir().join(format!("switchyard-access-quiet-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = AccessLog::open(&settings(&path, 1000, Duration::from_millis(20))).expect("open");
        for n in 1..=3 {
            // Long enough for a round with nothing in it: the writer sleeps until woken. No
            // timer would write this line; only the wake-up does.
            std::thread::sleep(Duration::from_millis(200));
            log.record(entry(200));
            wait_for(&path, n);
        }
        assert_eq!(log.dropped(), 0);
        log.close();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_batch_holds_buffer_lines_and_drops_and_counts_the_rest() {
        let path = std::env::temp_dir().join(format!("switchyard-access-full-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = AccessLog::open(&settings(&path, 4, Duration::from_secs(10))).expect("open");
        log.record(entry(200));
        wait_for(&path, 1);
        {
            // The writer cannot take any batch while the list is held.
            let _list = lock(&log.shared.batches);
            (0..9).for_each(|_| log.record(entry(404)));
            assert_eq!(log.dropped(), 5, "four fit, five are dropped");
        }
        log.close();
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().collect::<Vec<_>>(), ["200", "404", "404", "404", "404"]);
        let _ = std::fs::remove_file(&path);
    }
}
