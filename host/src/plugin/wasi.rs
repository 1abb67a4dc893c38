//! The WASI a plugin sees: everything a language runtime imports, granting nothing, and never
//! blocking — so plugins are called synchronously, with no fibers and no tokio.
//!
//! Plugins have no preopened directories, no environment, no arguments, no sockets and an
//! empty stdin; stdout and stderr go to the log. Where WASI would wait (a blocking read or
//! write, `poll`, `pollable.block`, hence any sleep), the call completes only if it can do so
//! at once; otherwise the plugin traps with "plugins may not block". Plugins are policy, run
//! on every request: waiting is never right for them.
//!
//! Why this exists: wasmtime-wasi's synchronous bindings run each potentially blocking call on
//! a nested tokio runtime (`in_tokio`), which panics inside our runtime as soon as a guest
//! writes to stdout — including the message of a guest panic. Its asynchronous bindings avoid
//! that but make every call run on a fiber, which measured ~60% slower per `pick`. So the
//! interfaces whose synchronous bindings call `in_tokio` (wasi:io poll and streams, and
//! `udp-create-socket`) are implemented here by polling wasmtime-wasi's asynchronous
//! implementation exactly once; all other interfaces use wasmtime-wasi's synchronous code,
//! whose remaining `in_tokio` calls need a file descriptor or socket a plugin cannot obtain.
//! The plugin runtime also catches a host panic during a call and treats it as a trap.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::sync::io::{poll as sync_poll, streams as sync_streams};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io as async_io, random, sockets, sync};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, SocketResult, StreamError, StreamResult};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsCtxView, WasiSocketsView};

use super::state::PluginState;

const WOULD_BLOCK: &str = "plugins may not block (a blocking WASI read, write, poll or sleep)";

/// Polls `future` once: its output if it is ready now.
fn now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn would_block() -> wasmtime::Error {
    wasmtime::format_err!("{WOULD_BLOCK}")
}

/// Adds the whole deny-all, never-blocking WASI to `linker`.
pub(crate) fn add_to_linker(l: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    async_io::error::add_to_linker::<PluginState, Table>(l, |s| s.table())?;
    sync_poll::add_to_linker::<PluginState, NoBlockIo>(l, |s| NoBlock(s.table()))?;
    sync_streams::add_to_linker::<PluginState, NoBlockIo>(l, |s| NoBlock(s.table()))?;

    clocks::wall_clock::add_to_linker::<PluginState, WasiClocks>(l, |s| s.clocks())?;
    clocks::monotonic_clock::add_to_linker::<PluginState, WasiClocks>(l, |s| s.clocks())?;
    random::random::add_to_linker::<PluginState, WasiRandom>(l, |s| s.random())?;
    random::insecure::add_to_linker::<PluginState, WasiRandom>(l, |s| s.random())?;
    random::insecure_seed::add_to_linker::<PluginState, WasiRandom>(l, |s| s.random())?;
    cli::exit::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    cli::environment::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    cli::stdin::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    cli::stdout::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    cli::stderr::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_input::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_output::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_stdin::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_stdout::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    cli::terminal_stderr::add_to_linker::<PluginState, WasiCli>(l, |s| s.cli())?;
    filesystem::preopens::add_to_linker::<PluginState, WasiFilesystem>(l, |s| s.filesystem())?;
    sync::filesystem::types::add_to_linker::<PluginState, WasiFilesystem>(l, |s| s.filesystem())?;

    sockets::tcp_create_socket::add_to_linker::<PluginState, WasiSockets>(l, |s| s.sockets())?;
    sockets::instance_network::add_to_linker::<PluginState, WasiSockets>(l, |s| s.sockets())?;
    sockets::network::add_to_linker::<PluginState, WasiSockets>(l, &Default::default(), |s| s.sockets())?;
    sockets::ip_name_lookup::add_to_linker::<PluginState, WasiSockets>(l, |s| s.sockets())?;
    sync::sockets::tcp::add_to_linker::<PluginState, WasiSockets>(l, |s| s.sockets())?;
    sync::sockets::udp::add_to_linker::<PluginState, WasiSockets>(l, |s| s.sockets())?;
    sync::sockets::udp_create_socket::add_to_linker::<PluginState, NoBlockSockets>(l, |s| NoBlockSocket(s.sockets()))?;
    Ok(())
}

/// `HasData` for the plain resource table.
struct Table;
impl HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

/// The resource table, with wasi:io implemented by polling once.
pub(crate) struct NoBlock<'a>(&'a mut ResourceTable);

struct NoBlockIo;
impl HasData for NoBlockIo {
    type Data<'a> = NoBlock<'a>;
}

impl sync_streams::Host for NoBlock<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<sync_streams::StreamError> {
        Ok(async_io::streams::Host::convert_stream_error(self.0, err)?.into())
    }
}

impl sync_poll::Host for NoBlock<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        now(async_io::poll::Host::poll(self.0, pollables)).ok_or_else(would_block)?
    }
}

impl sync_poll::HostPollable for NoBlock<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        now(async_io::poll::HostPollable::ready(self.0, pollable)).unwrap_or(Ok(false))
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        now(async_io::poll::HostPollable::block(self.0, pollable)).ok_or_else(would_block)?
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_io::poll::HostPollable::drop(self.0, pollable)
    }
}

impl sync_streams::HostOutputStream for NoBlock<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        now(async_io::streams::HostOutputStream::drop(self.0, stream)).ok_or_else(would_block)?
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        async_io::streams::HostOutputStream::check_write(self.0, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        async_io::streams::HostOutputStream::write(self.0, stream, bytes)
    }

    fn blocking_write_and_flush(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        now(async_io::streams::HostOutputStream::blocking_write_and_flush(self.0, stream, bytes))
            .unwrap_or_else(|| Err(StreamError::trap(WOULD_BLOCK)))
    }

    fn blocking_write_zeroes_and_flush(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        now(async_io::streams::HostOutputStream::blocking_write_zeroes_and_flush(self.0, stream, len))
            .unwrap_or_else(|| Err(StreamError::trap(WOULD_BLOCK)))
    }

    fn subscribe(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        async_io::streams::HostOutputStream::subscribe(self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        async_io::streams::HostOutputStream::write_zeroes(self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        async_io::streams::HostOutputStream::flush(self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        now(async_io::streams::HostOutputStream::blocking_flush(self.0, stream)).unwrap_or_else(|| Err(StreamError::trap(WOULD_BLOCK)))
    }

    fn splice(&mut self, dst: Resource<DynOutputStream>, src: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        async_io::streams::HostOutputStream::splice(self.0, dst, src, len)
    }

    fn blocking_splice(&mut self, dst: Resource<DynOutputStream>, src: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        now(async_io::streams::HostOutputStream::blocking_splice(self.0, dst, src, len))
            .unwrap_or_else(|| Err(StreamError::trap(WOULD_BLOCK)))
    }
}

impl sync_streams::HostInputStream for NoBlock<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        now(async_io::streams::HostInputStream::drop(self.0, stream)).ok_or_else(would_block)?
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        async_io::streams::HostInputStream::read(self.0, stream, len)
    }

    fn blocking_read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        now(async_io::streams::HostInputStream::blocking_read(self.0, stream, len)).unwrap_or_else(|| Err(StreamError::trap(WOULD_BLOCK)))
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        async_io::streams::HostInputStream::skip(self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        now(async_io::streams::HostInputStream::blocking_skip(self.0, stream, len)).unwrap_or_else(|| Err(StreamError::trap(WOULD_BLOCK)))
    }

    fn subscribe(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        async_io::streams::HostInputStream::subscribe(self.0, stream)
    }
}

/// The sockets context, with `udp-create-socket` polled once (it is denied anyway).
pub(crate) struct NoBlockSocket<'a>(WasiSocketsCtxView<'a>);

struct NoBlockSockets;
impl HasData for NoBlockSockets {
    type Data<'a> = NoBlockSocket<'a>;
}

impl sync::sockets::udp_create_socket::Host for NoBlockSocket<'_> {
    fn create_udp_socket(
        &mut self,
        family: sockets::network::IpAddressFamily,
    ) -> SocketResult<Resource<wasmtime_wasi::p2::UdpSocket>> {
        now(sockets::udp_create_socket::Host::create_udp_socket(&mut self.0, family))
            .unwrap_or_else(|| Err(wasmtime_wasi::p2::SocketError::trap(would_block())))
    }
}

impl sockets::network::Host for NoBlockSocket<'_> {
    fn convert_error_code(&mut self, error: wasmtime_wasi::p2::SocketError) -> wasmtime::Result<sockets::network::ErrorCode> {
        sockets::network::Host::convert_error_code(&mut self.0, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::io::error::Error>,
    ) -> wasmtime::Result<Option<sockets::network::ErrorCode>> {
        sockets::network::Host::network_error_code(&mut self.0, err)
    }
}

impl sockets::network::HostNetwork for NoBlockSocket<'_> {
    fn drop(&mut self, this: Resource<sockets::network::Network>) -> wasmtime::Result<()> {
        sockets::network::HostNetwork::drop(&mut self.0, this)
    }
}
