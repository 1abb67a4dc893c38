//! The rest of an upload, when the member answered before reading all of it, sent by a task
//! of its own.
//!
//! The response body cannot drive it: hyper stops polling a response body while its write
//! buffer is full, so a client that uploads without reading the answer would leave the
//! upload, and every check on the client's body (size limit, rate, chunk framing), unpolled,
//! and the member holding half a request for as long as the client liked. The pump writes
//! through a second handle on the member socket (the response body keeps reading through the
//! first), and when the client's body fails it shuts the socket down both ways at once: the
//! member sees the connection end the moment the proxy gives the exchange up.

use std::net::Shutdown;

use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::request::BodyWriteError;
use super::upload::Upload;

/// How the pumped upload ended.
#[derive(Debug)]
pub(crate) enum PumpEnd {
    /// All of it was sent.
    Sent,
    /// The member stopped reading it (the connection is out of step).
    MemberStopped,
    /// The client's body failed; the member connection was shut down.
    ClientFailed(String),
}

/// A running pump: how it ended, once it has; aborted when dropped.
#[derive(Debug)]
pub(crate) struct Pump {
    end: oneshot::Receiver<PumpEnd>,
    task: AbortHandle,
}

impl Pump {
    /// Starts sending `upload` to the member behind `stream`, on a task of the current
    /// runtime. Fails when the socket cannot be given a second handle.
    pub(crate) fn start(stream: &TcpStream, mut upload: Upload) -> std::io::Result<Self> {
        let second = socket2::SockRef::from(stream).try_clone()?;
        let std_stream = std::net::TcpStream::from(second);
        std_stream.set_nonblocking(true)?;
        let mut writer = TcpStream::from_std(std_stream)?;
        let (done, end) = oneshot::channel();
        let task = tokio::spawn(async move {
            let result = std::future::poll_fn(|cx| upload.poll_send(cx, &mut writer)).await;
            let outcome = match result {
                Ok(()) => PumpEnd::Sent,
                Err(BodyWriteError::Member(_)) => PumpEnd::MemberStopped,
                Err(BodyWriteError::Client(e)) => {
                    // Both ways: the member's reads end, and the response body's reads too.
                    let _ = socket2::SockRef::from(&writer).shutdown(Shutdown::Both);
                    PumpEnd::ClientFailed(e.to_string())
                }
            };
            let _ = done.send(outcome);
        });
        Ok(Self { end, task: task.abort_handle() })
    }

    /// How it ended, if it has.
    pub(crate) fn ended(&mut self) -> Option<PumpEnd> {
        self.end.try_recv().ok()
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        // The answer was dropped (client gone, or done): the upload has no one to go to.
        self.task.abort();
    }
}
