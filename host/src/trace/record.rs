//! Recording a balancer's trace (`record = "FILE"` on a balancer): every pick and completion,
//! written by a thread of its own.
//!
//! The request's thread pushes the record the balancer built onto a queue under a lock held
//! for the push alone, and never waits for the file: the writer drains the queue every few
//! milliseconds. When the queue is full (the disk cannot keep up), records are dropped, and
//! the log says how many.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::format::{Done, Event, Header, Line, Pick, TraceMember, VERSION};
use crate::balancer::{Completion, PickObserver, PickRecord};
use crate::config::{self, StatusFlags};

/// Records waiting for the writer; more are dropped.
const QUEUE: usize = 64 * 1024;

/// How often the writer looks for records.
const DRAIN: Duration = Duration::from_millis(5);

/// Why a trace file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot record a trace to {path}: {source}")]
pub struct RecordError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Records one balancer's picks and completions to a trace file.
pub struct Recorder {
    started: Instant,
    queue: Arc<Queue>,
}

#[derive(Default)]
struct Queue {
    items: Mutex<Vec<Item>>,
    dropped: AtomicU64,
    /// Set when the balancer goes: the writer writes what is left and ends.
    closed: AtomicBool,
}

enum Item {
    Pick(u64, PickRecord),
    Done(u64, Completion),
}

impl Recorder {
    /// Appends a new segment for `balancer` to the trace at `path` and starts its writer.
    pub fn open(path: &Path, balancer: &config::Balancer) -> Result<Arc<Self>, RecordError> {
        let fail = |source| RecordError { path: path.to_path_buf(), source };
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(fail)?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        let header = Line::Header(Header {
            switchyard_trace: VERSION,
            balancer: balancer.name.clone(),
            members: balancer
                .members
                .iter()
                .map(|m| TraceMember {
                    url: m.url.clone(),
                    loadfactor: f64::from(m.lbfactor) / 100.0,
                    lbset: m.lbset,
                    route: m.route.clone(),
                    status: m.status.letters(),
                })
                .collect(),
        });
        write_line(&mut out, &header).and_then(|()| out.flush()).map_err(fail)?;
        let queue = Arc::new(Queue::default());
        let writer = Arc::clone(&queue);
        let started = Instant::now();
        std::thread::Builder::new()
            .name(format!("trace-{}", balancer.name))
            .spawn(move || write_all(&writer, out, started))
            .map_err(fail)?;
        Ok(Arc::new(Self { started, queue }))
    }

    fn push(&self, item: impl FnOnce(u64) -> Item) {
        let Ok(mut items) = self.queue.items.lock() else { return };
        if items.len() >= QUEUE {
            self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Taken under the lock, so the trace's times never go backwards.
        let t = micros(self.started.elapsed());
        items.push(item(t));
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Relaxed);
    }
}

impl PickObserver for Recorder {
    fn picked(&self, pick: PickRecord) {
        self.push(|t| Item::Pick(t, pick));
    }

    fn completed(&self, completion: &Completion) {
        self.push(|t| Item::Done(t, *completion));
    }
}

/// The writer: turns records into lines until the balancer goes, then writes what is left.
fn write_all(queue: &Queue, mut out: BufWriter<File>, started: Instant) {
    let mut flags: Vec<StatusFlags> = Vec::new();
    let mut dropped_told = 0;
    loop {
        let closed = queue.closed.load(Ordering::Relaxed);
        let items = queue.items.lock().map(|mut items| std::mem::take(&mut *items)).unwrap_or_default();
        for item in items {
            let event = match item {
                Item::Pick(t, pick) => Event { t, pick: Some(pick_event(pick, &mut flags)), done: None },
                Item::Done(t, c) => {
                    // The completion's own end, on the trace's clock.
                    let t = c.finished.checked_duration_since(started).map_or(t, micros);
                    Event { t, pick: None, done: Some(done_event(&c)) }
                }
            };
            if let Err(e) = write_line(&mut out, &Line::Event(event)) {
                tracing::warn!(error = %e, "trace write failed; recording stops");
                return;
            }
        }
        let dropped = queue.dropped.load(Ordering::Relaxed);
        if dropped > dropped_told {
            tracing::warn!(dropped, "trace records dropped: the writer could not keep up");
            dropped_told = dropped;
        }
        let _ = out.flush();
        if closed {
            return;
        }
        std::thread::sleep(DRAIN);
    }
}

fn pick_event(pick: PickRecord, last_flags: &mut Vec<StatusFlags>) -> Pick {
    let now: Vec<StatusFlags> = pick.members.iter().map(|m| m.status).collect();
    let flags = (now != *last_flags).then(|| now.iter().map(|f| f.letters()).collect());
    *last_flags = now;
    Pick {
        key: pick.key,
        route: pick.route,
        chosen: pick.chosen,
        tried: pick.tried,
        busy: pick.members.iter().map(|m| m.busy).collect(),
        transferred: pick.members.iter().map(|m| m.transferred).collect(),
        read: pick.members.iter().map(|m| m.read).collect(),
        flags,
    }
}

fn done_event(c: &Completion) -> Done {
    Done {
        member: c.member,
        outcome: super::format::outcome_name(c.outcome).to_string(),
        status: c.status,
        head_us: c.head.map(micros),
        total_us: micros(c.total),
        received: c.received,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn write_line(out: &mut impl Write, line: &Line) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}
