//! What each plugin store holds: a deny-all WASI context, the memory cap, and the log import.
//!
//! Plugins get no preopened directories, no environment, no arguments, no sockets and an empty
//! stdin. Whatever they write to stdout or stderr becomes log lines (info and warn), tagged
//! with the plugin's label, so a guest's panic message reaches the operator.

use std::pin::Pin;
use std::sync::Arc;
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
        wasi.stdout(LogStream { label: Arc::clone(&label), stream: Stream::Stdout })
            .stderr(LogStream { label: Arc::clone(&label), stream: Stream::Stderr })
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

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// A guest's stdout or stderr, turned into log lines.
struct LogStream {
    label: Arc<str>,
    stream: Stream,
}

impl LogStream {
    fn write_bytes(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let level = match self.stream {
                Stream::Stdout => 2,
                Stream::Stderr => 3,
            };
            log_line(&self.label, level, line);
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LogWriter(LogStream { label: Arc::clone(&self.label), stream: self.stream }))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LogWriter(LogStream { label: Arc::clone(&self.label), stream: self.stream }))
    }
}

/// Accepts every write at once and logs it: no buffering, no blocking, no background task.
struct LogWriter(LogStream);

#[wasmtime_wasi::async_trait]
impl Pollable for LogWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LogWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.0.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
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
    fn log_lines_are_cut_and_escaped() {
        assert_eq!(sanitize("hello\n"), "hello");
        assert_eq!(sanitize("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(sanitize("fake\rline"), "fake\\rline");
        assert_eq!(sanitize(&"é".repeat(5000)).len(), MAX_LINE);
    }
}
