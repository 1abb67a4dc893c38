//! Deadlines that cost nothing when the work finishes at once.
//!
//! A tokio timeout registers a timer on every call, even when the future is ready on its first
//! poll. Most writes to a socket and every well-behaved plugin call complete at once, so
//! [`within`] polls the future once first and arms a timer only if it has to wait.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

/// Runs `future` for at most `limit`; `None` when the limit passed first.
pub(crate) async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    if let Poll::Ready(output) = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await {
        return Some(output);
    }
    tokio::time::timeout(limit, future).await.ok()
}
