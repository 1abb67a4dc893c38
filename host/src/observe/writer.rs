//! The access log's writer thread, and what it shares with the workers: every worker's batch
//! of lines, and the orders (reopen, close) the handles give it. See [`access`](super::access)
//! for when it is woken and why.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::config::LogTarget;

/// Why the access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("access_log: cannot open {path}: {source}")]
pub struct AccessLogError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

/// What the workers and the handles share with the writer.
#[derive(Debug)]
pub(super) struct Shared {
    /// Every worker's batch (one per thread that logged to this log).
    pub(super) batches: Mutex<Vec<Arc<Mutex<Batch>>>>,
    /// Set by [`AccessLog::reopen`](super::AccessLog::reopen), taken by the writer.
    pub(super) reopen: AtomicBool,
    /// Set by [`AccessLog::close`](super::AccessLog::close) and when the last handle goes: write what is gathered,
    /// then stop.
    pub(super) close: AtomicBool,
    /// Set while the writer sleeps until woken (nothing came for a whole round): any line
    /// wakes it then; between rounds, only a batch half full does.
    pub(super) asleep: AtomicBool,
    pub(super) dropped: AtomicU64,
}

/// Lines one worker made since the writer last took them.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) text: Vec<u8>,
    pub(super) lines: usize,
}

/// A lock that a panic elsewhere did not spoil: a batch is text and a count, whole after any
/// line.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where lines are written.
pub(super) enum Sink {
    Stderr(io::Stderr),
    File { path: PathBuf, out: BufWriter<File> },
}

impl Sink {
    pub(super) fn open(target: &LogTarget) -> Result<Self, AccessLogError> {
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

pub(super) fn target_path(target: &LogTarget) -> PathBuf {
    match target {
        LogTarget::Stderr => PathBuf::from("stderr"),
        LogTarget::File(p) => p.clone(),
    }
}

/// Room a batch keeps after a round, at most: about two thousand lines.
const KEPT_ROOM: usize = 256 * 1024;

/// The writer thread's state: the batches and where lines go.
pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) sink: Sink,
    pub(super) flush: Duration,
}

impl Writer {
    /// Writes rounds until told to close.
    pub(super) fn run(mut self) {
        let mut spare = Vec::new();
        loop {
            let closing = self.shared.close.load(Ordering::Acquire);
            let wrote = self.round(&mut spare);
            let _ = self.sink.out().flush();
            if closing {
                return;
            }
            if wrote {
                // Lines are coming: let the next ones gather (a batch filling up cuts it short).
                std::thread::park_timeout(self.flush);
            } else {
                // Nothing came for a whole round: sleep until a line comes. Said before the
                // batches are looked at once more, so a line added meanwhile is seen here or
                // its worker sees the flag and wakes this thread.
                self.shared.asleep.store(true, Ordering::SeqCst);
                if !self.anything() {
                    std::thread::park();
                }
                self.shared.asleep.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Whether any batch holds a line.
    fn anything(&self) -> bool {
        lock(&self.shared.batches).iter().any(|batch| lock(batch).lines > 0)
    }

    /// Takes every batch and writes it; whether there was anything.
    fn round(&mut self, spare: &mut Vec<u8>) -> bool {
        if self.shared.reopen.swap(false, Ordering::AcqRel) {
            self.sink.reopen();
        }
        let batches = lock(&self.shared.batches).clone();
        let mut wrote = false;
        for batch in batches {
            {
                let mut batch = lock(&batch);
                if batch.lines == 0 {
                    continue;
                }
                // The worker gets back the spare's room; the lines leave the lock at once.
                std::mem::swap(&mut batch.text, spare);
                batch.lines = 0;
            }
            if let Err(e) = self.sink.out().write_all(spare) {
                tracing::warn!(error = %e, "access log write failed");
            }
            spare.clear();
            // A burst's room is not kept for ever (it goes round the workers' batches).
            spare.shrink_to(KEPT_ROOM);
            wrote = true;
        }
        // A batch only the list holds belongs to a thread that went away or now logs to
        // another log: forgotten once empty.
        lock(&self.shared.batches).retain(|batch| Arc::strong_count(batch) > 1 || lock(batch).lines > 0);
        wrote
    }
}
