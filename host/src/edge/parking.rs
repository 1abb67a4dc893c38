//! When a plain HTTP/1 connection idle between requests is parked (its socket handed from
//! its task to the worker's own epoll set, see `server::park`): worked out once per config,
//! and the instant for each wait, rounded so that a worker's connections that went quiet
//! together are parked on one wakeup of its timer.

use std::time::Duration;

use tokio::time::Instant;

/// The longest slot parking times are rounded to (see [`Parking`]).
const PARK_SLOT: Duration = Duration::from_millis(100);

/// The longest keep-alive a parked connection may have; a connection kept longer idles as a
/// task (a year is "for ever" here, and keeps deadlines far from any clock's range).
const PARK_LIMIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// When plain HTTP/1 connections idle between requests are parked (see `server::park`),
/// worked out once per config rather than on every wait.
///
/// A connection is parked `after` its idling began, rounded up to a slot of half that (at
/// most [`PARK_SLOT`]), counted from a fixed instant: the connections of a worker that went
/// idle within the same slot are parked on one wakeup of its timer rather than one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parking {
    after: Duration,
    /// The slot, in nanoseconds: this runs on every wait between requests, and a u128
    /// division is a library call (u64 nanoseconds last 584 years).
    slot: u64,
}

impl Parking {
    /// Parking for connections idle `park` before their `keepalive` ends; `None` when they
    /// never park: the keep-alive ends first (or within the slot), or is over a year.
    pub fn new(park: Duration, keepalive: Duration) -> Option<Self> {
        let slot = PARK_SLOT.min(park / 2);
        (park + slot < keepalive && keepalive <= PARK_LIMIT).then(|| Self { after: park, slot: nanos(slot).max(1) })
    }

    /// When a connection idle since `since` is parked.
    pub(super) fn at(self, since: Instant) -> Instant {
        // Only a reference point shared by every connection; which instant it is does not matter.
        static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
        let origin = *ORIGIN;
        let after = nanos((since + self.after).saturating_duration_since(origin));
        origin + Duration::from_nanos(after.div_ceil(self.slot).saturating_mul(self.slot))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parks_only_within_the_keepalive_and_on_shared_slots() {
        let ms = Duration::from_millis;
        assert!(Parking::new(ms(100), ms(140)).is_none(), "the keep-alive ends within the slot");
        assert!(Parking::new(ms(100), PARK_LIMIT + ms(1)).is_none(), "a keep-alive over a year idles as a task");
        let parking = Parking::new(ms(100), ms(5000)).expect("parks");
        let since = Instant::now();
        let at = parking.at(since);
        // Slots of 50 ms (half of `park`): at least `park` later, less than a slot beyond.
        assert!(at >= since + ms(100) && at < since + ms(150), "{:?}", at - since);
        // Connections that went quiet a millisecond apart park together or one slot apart.
        let next = parking.at(since + ms(1));
        assert!(next == at || next == at + ms(50), "{:?}", next - at);
    }
}
