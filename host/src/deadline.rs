//! Deadlines that cost nothing when the work finishes at once.
//!
//! A tokio timeout registers a timer on every call, even when the future is ready on its first
//! poll. Most writes to a socket and every well-behaved plugin call complete at once, so
//! [`within`] polls the future first and arms a timer only once it has to wait.
//!
//! [`Within`] is a plain future rather than an `async fn`: an `async fn` holds its argument
//! and the pinned copy of it side by side, so a deadline around a future took twice that
//! future's room, in every layer of the request path above it.
//!
//! A connection that waits under the same deadline again and again (a member connection, for
//! each answer's head) keeps one timer, a [`KeptTimer`], for [`within_kept`]: a new timer is
//! put in the runtime's timer wheel and taken out again, every time (about 500 instructions
//! of a small proxied request), where the kept one stays registered and is moved on only
//! when it fires before the deadline of its current use.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::{self, Handle};
use tokio::time::{Instant, Sleep};

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

/// A timer kept from one deadline to the next (see [`within_kept`]). Made on first use, on
/// the runtime of that use; used on another runtime it is made anew there, since a timer
/// belongs to the runtime that drives it.
///
/// Armed for a later deadline than the one it is set to, it is left as it is: when it fires
/// early, [`KeptTimer::poll`] sees the deadline has not come and moves it on then. A member
/// connection's deadlines move later with every request, and moving the registered timer each
/// time cost a conversion of the deadline and, at times, a turn of the timer wheel's lock;
/// this way it moves about once per timeout.
#[derive(Debug, Default)]
pub(crate) struct KeptTimer {
    timer: Option<(Option<runtime::Id>, Pin<Box<Sleep>>)>,
}

impl KeptTimer {
    /// Makes the timer fire by `deadline` (see the type's header).
    fn arm(&mut self, deadline: Instant) {
        let here = Handle::try_current().ok().map(|h| h.id());
        match &mut self.timer {
            Some((made_on, timer)) if *made_on == here => {
                if timer.deadline() > deadline {
                    timer.as_mut().reset(deadline);
                }
            }
            kept => *kept = Some((here, Box::pin(tokio::time::sleep_until(deadline)))),
        }
    }

    /// Whether `deadline`, the one it was last armed for, has passed (never, when never armed).
    fn poll(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let Some((_, timer)) = &mut self.timer else { return Poll::Pending };
        std::task::ready!(timer.as_mut().poll(cx));
        if timer.deadline() >= deadline {
            return Poll::Ready(());
        }
        // Fired for an earlier use's deadline: on to this one's.
        timer.as_mut().reset(deadline);
        timer.as_mut().poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// A future run for at most a limit, timed by a kept timer (see [`within_kept`]).
    pub(crate) struct WithinKept<'t, F> {
        #[pin]
        future: F,
        deadline: Instant,
        timer: &'t mut KeptTimer,
        armed: bool,
    }
}

/// Runs `future` until `deadline` at most, timed by `timer`. Nothing is armed when it is
/// ready at once (as with [`within`]); the caller's reading of the clock makes the deadline, so
/// there is no second reading here.
pub(crate) fn within_kept<F: Future>(deadline: Instant, timer: &mut KeptTimer, future: F) -> WithinKept<'_, F> {
    WithinKept { future, deadline, timer, armed: false }
}

impl<F: Future> Future for WithinKept<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        if !*this.armed {
            this.timer.arm(*this.deadline);
            *this.armed = true;
        }
        match this.timer.poll(cx, *this.deadline) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
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

    #[tokio::test]
    async fn a_kept_timer_times_each_use_from_its_own_start() {
        let mut timer = KeptTimer::default();
        assert_eq!(within_kept(Instant::now() + Duration::from_millis(10), &mut timer, async { 1 }).await, Some(1), "ready at once: not armed");
        assert!(timer.timer.is_none());
        let slow = tokio::time::sleep(Duration::from_secs(60));
        assert_eq!(within_kept(Instant::now() + Duration::from_millis(20), &mut timer, slow).await, None, "cut at the limit");
        // Armed again after it fired (registered anew), it times the next use: one within
        // its limit finishes, one beyond it is cut.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let waits = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            "done"
        };
        assert_eq!(within_kept(Instant::now() + Duration::from_secs(5), &mut timer, waits).await, Some("done"));
        let slow = tokio::time::sleep(Duration::from_secs(60));
        assert_eq!(within_kept(Instant::now() + Duration::from_millis(20), &mut timer, slow).await, None, "and cut again after re-arming");
    }

    #[tokio::test]
    async fn a_pending_kept_timer_moved_later_times_the_new_use() {
        // The usual case: the last use finished long before its deadline, and the timer, still
        // registered, is moved to the next use's later deadline.
        let mut timer = KeptTimer::default();
        let quick = tokio::time::sleep(Duration::from_millis(300));
        assert_eq!(within_kept(Instant::now() + Duration::from_millis(1000), &mut timer, quick).await, Some(()));
        // Started 300 ms after the first, this use ends past the first deadline (1,000 ms)
        // and before its own (1,300 ms). (The future is polled before the timer, so a late
        // turn of the runtime cannot make this fail; it could only hide a fault.)
        let longer = tokio::time::sleep(Duration::from_millis(900));
        assert_eq!(within_kept(Instant::now() + Duration::from_millis(1000), &mut timer, longer).await, Some(()));
    }

    #[tokio::test]
    async fn a_kept_timer_set_earlier_than_a_use_waits_for_that_use_and_no_longer() {
        // Armed for 100 ms, then for 400 ms: the timer is left at 100 ms, fires there, and
        // the use goes on to its own deadline (a sleep of 250 ms finishes); a use that runs
        // past its deadline is cut at it.
        let mut timer = KeptTimer::default();
        let start = Instant::now();
        assert_eq!(within_kept(start + Duration::from_millis(100), &mut timer, tokio::time::sleep(Duration::from_millis(10))).await, Some(()));
        let finishes = tokio::time::sleep(Duration::from_millis(250));
        assert_eq!(within_kept(start + Duration::from_millis(400), &mut timer, finishes).await, Some(()), "not cut at the earlier deadline");
        let slow = tokio::time::sleep(Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_millis(200);
        assert_eq!(within_kept(deadline, &mut timer, slow).await, None, "cut at its own deadline");
        assert!(Instant::now() >= deadline, "not before it");
    }

    #[test]
    fn a_kept_timer_moved_to_another_runtime_is_made_anew_there() {
        let mut timer = KeptTimer::default();
        let first = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let slow = || tokio::time::sleep(Duration::from_secs(60));
        assert_eq!(first.block_on(async { within_kept(Instant::now() + Duration::from_millis(10), &mut timer, slow()).await }), None);
        drop(first);
        // The first runtime is gone: polling its timer would panic.
        let second = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        assert_eq!(second.block_on(async { within_kept(Instant::now() + Duration::from_millis(10), &mut timer, slow()).await }), None);
    }
}
