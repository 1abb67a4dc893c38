//! What each plugin store holds: a deny-all WASI context, the memory cap, and the log import.
//!
//! Plugins get no preopened directories, no environment, no arguments, no sockets and an empty
//! stdin. Whatever they write to stdout or stderr becomes log lines (info and warn), tagged
//! with the plugin's label, so a guest's panic message reaches the operator.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// The longest single log line a plugin can write; longer ones are cut.
const MAX_LINE: usize = 4096;

/// Data of one plugin store.
pub(crate) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// Names the plugin in log lines, e.g. `balancer myset lbmethod x.wasm`.
    pub(crate) label: Arc<str>,
}

impl PluginState {
    /// A store state with no capabilities and `memory_limit` bytes of linear memory at most.
    pub(crate) fn new(label: Arc<str>, memory_limit: u64) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(LogStream::new(&label, 2))
            .stderr(LogStream::new(&label, 3))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(memory_limit).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .instances(16)
            .memories(4)
            .tables(16)
            .build();
        Self { wasi: wasi.build(), table: ResourceTable::new(), limits, label }
    }

    /// The guest's resources (streams, pollables).
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The limiter wasmtime consults on every memory or table growth.
    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Writes one plugin log line at `level` (0 trace … 4 error).
pub(crate) fn log_line(label: &str, level: u8, message: &str) {
    let message = sanitize(message);
    match level {
        0 => tracing::trace!(plugin = label, "{message}"),
        1 => tracing::debug!(plugin = label, "{message}"),
        2 => tracing::info!(plugin = label, "{message}"),
        3 => tracing::warn!(plugin = label, "{message}"),
        _ => tracing::error!(plugin = label, "{message}"),
    }
}

/// Whether a plugin line at `level` would be written.
pub(crate) fn log_enabled(level: u8) -> bool {
    match level {
        0 => tracing::enabled!(tracing::Level::TRACE),
        1 => tracing::enabled!(tracing::Level::DEBUG),
        2 => tracing::enabled!(tracing::Level::INFO),
        3 => tracing::enabled!(tracing::Level::WARN),
        _ => tracing::enabled!(tracing::Level::ERROR),
    }
}

/// Cuts a line at [`MAX_LINE`] bytes and escapes control characters, so a plugin cannot forge
/// log lines or flood the log with one write.
fn sanitize(message: &str) -> String {
    let mut cut = message.trim_end_matches(['\n', '\r']);
    if cut.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !cut.is_char_boundary(end) {
            end -= 1;
        }
        cut = &cut[..end];
    }
    cut.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// A guest's stdout or stderr, turned into log lines (info and warn).
///
/// Writes are gathered into lines, because language runtimes write a line in pieces (Python
/// writes the text and its newline separately). A complete line is logged at once; a partial
/// one when the guest flushes, when it grows past [`MAX_LINE`], or when the instance goes.
struct LogStream {
    lines: Arc<LineBuffer>,
}

impl LogStream {
    fn new(label: &Arc<str>, level: u8) -> Self {
        Self { lines: Arc::new(LineBuffer { label: Arc::clone(label), level, pending: Mutex::new(Vec::new()) }) }
    }
}

/// The part of the output not yet logged.
struct LineBuffer {
    label: Arc<str>,
    level: u8,
    pending: Mutex<Vec<u8>>,
}

impl LineBuffer {
    fn write(&self, bytes: &[u8]) {
        let ready = match self.pending.lock() {
            Ok(mut pending) => take_lines(&mut pending, bytes),
            Err(_) => return,
        };
        if let Some(ready) = ready {
            self.log(&ready);
        }
    }

    fn flush(&self) {
        let rest = self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        self.log(&rest);
    }

    fn log(&self, bytes: &[u8]) {
        for line in String::from_utf8_lossy(bytes).lines().filter(|l| !l.trim().is_empty()) {
            log_line(&self.label, self.level, line);
        }
    }
}

/// Appends `bytes` to `pending` and takes off what is ready to log: every complete line, or
/// everything once a line grows past [`MAX_LINE`].
fn take_lines(pending: &mut Vec<u8>, bytes: &[u8]) -> Option<Vec<u8>> {
    pending.extend_from_slice(bytes);
    if pending.len() > MAX_LINE {
        return Some(std::mem::take(pending));
    }
    let end = pending.iter().rposition(|&b| b == b'\n')?;
    Some(pending.drain(..=end).collect())
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        self.flush();
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LogWriter(Arc::clone(&self.lines)))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LogWriter(Arc::clone(&self.lines)))
    }
}

/// Accepts every write at once: no blocking, no background task.
struct LogWriter(Arc<LineBuffer>);

#[wasmtime_wasi::async_trait]
impl Pollable for LogWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LogWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.0.flush();
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.flush();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_logged_by_whole_lines() {
        let mut pending = Vec::new();
        assert_eq!(take_lines(&mut pending, b"Traceback: "), None);
        assert_eq!(take_lines(&mut pending, b"boom"), None);
        assert_eq!(take_lines(&mut pending, b"\nnext"), Some(b"Traceback: boom\n".to_vec()));
        assert_eq!(pending, b"next");
        assert_eq!(take_lines(&mut pending, &vec![b'x'; MAX_LINE]).map(|l| l.len()), Some(MAX_LINE + 4), "a runaway line is cut loose");
        assert!(pending.is_empty());
    }

    #[test]
    fn log_lines_are_cut_and_escaped() {
        assert_eq!(sanitize("hello\n"), "hello");
        assert_eq!(sanitize("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(sanitize("fake\rline"), "fake\\rline");
        assert_eq!(sanitize(&"é".repeat(5000)).len(), MAX_LINE);
    }
}
