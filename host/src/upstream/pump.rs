//! The rest of an upload, when the member answered before reading all of it, sent by a task
//! of its own.
//!
//! The response body cannot drive it: hyper stops polling a response body while its write
//! buffer is full, so a client that uploads without reading the answer would leave the
//! upload, and every check on the client's body (size limit, rate, chunk framing), unpolled,
//! and the member holding half a request for as long as the client liked. The member stream
//! is split: the response body keeps the reading half, the pump writes through the other.
//! When the client's body fails, the pump shuts the socket down both ways at once: the member
//! sees the connection end the moment the proxy gives the exchange up.

use std::net::Shutdown;

use tokio::io::WriteHalf;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::OutgoingBody;
use super::request::BodyWriteError;
use super::upload::Upload;
use crate::tls::MemberStream;

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
    /// Splits `stream`: it keeps the reading half, and a task of the current runtime sends
    /// `upload` through the writing half. Such a connection is never reused.
    pub(crate) fn start<B: OutgoingBody>(stream: &mut MemberStream, mut upload: Upload<B>) -> Self {
        // A second handle on the socket, only to shut it down: dropping a writing half cannot
        // end the member's side while the reading half is still held.
        let socket = stream.tcp().and_then(|tcp| socket2::SockRef::from(tcp).try_clone().ok());
        let whole = std::mem::replace(stream, MemberStream::Closed);
        let (reading, mut writing): (_, WriteHalf<Box<MemberStream>>) = tokio::io::split(Box::new(whole));
        *stream = MemberStream::Reading(reading);
        let (done, end) = oneshot::channel();
        let task = tokio::spawn(async move {
            let result = std::future::poll_fn(|cx| upload.poll_send(cx, &mut writing)).await;
            let outcome = match result {
                Ok(()) => PumpEnd::Sent,
                Err(BodyWriteError::Member(_)) => PumpEnd::MemberStopped,
                Err(BodyWriteError::Client(e)) => {
                    // Both ways: the member's reads end, and the response body's reads too.
                    if let Some(socket) = &socket {
                        let _ = socket.shutdown(Shutdown::Both);
                    }
                    PumpEnd::ClientFailed(e.to_string())
                }
            };
            let _ = done.send(outcome);
        });
        Self { end, task: task.abort_handle() }
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
