//! Deadlines that cost nothing when the work finishes at once.
//!
//! A tokio timeout registers a timer on every call, even when the future is ready on its first
//! poll. Most writes to a socket and every well-behaved plugin call complete at once, so
//! [`within`] polls the future first and arms a timer only once it has to wait.
//!
//! [`Within`] is a plain future rather than an `async fn`: an `async fn` holds its argument
//! and the pinned copy of it side by side, so a deadline around a future took twice that
//! future's room, in every layer of the request path above it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

pin_project_lite::pin_project! {
    /// A future run for at most a limit (see [`within`]).
    pub(crate) struct Within<F> {
        #[pin]
        future: F,
        limit: Duration,
        #[pin]
        timer: Option<Sleep>,
    }
}

/// Runs `future` for at most `limit`; `None` when the limit passed first.
pub(crate) fn within<F: Future>(limit: Duration, future: F) -> Within<F> {
    Within { future, limit, timer: None }
}

impl<F: Future> Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(*this.limit)));
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(None),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_future_finishes_within_its_limit_or_is_cut_at_it() {
        assert_eq!(within(Duration::from_millis(10), async { 7 }).await, Some(7), "ready at once");
        let waits_then_answers = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            "done"
        };
        assert_eq!(within(Duration::from_secs(10), waits_then_answers).await, Some("done"), "pending first, then ready");
        assert_eq!(within(Duration::from_millis(10), tokio::time::sleep(Duration::from_secs(60))).await, None, "cut at the limit");
    }
}
