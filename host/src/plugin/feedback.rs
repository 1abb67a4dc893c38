//! Completion feedback for lbmethods that ask for it: the balancer's ended attempts, kept in a
//! ring per loaded method, handed to each instance with its next `pick` as the WIT `feedback`
//! table. The table's column layout (`completion-field`) is written here and nowhere else.
//!
//! Every instance reads the whole ring through its own [`Cursor`], so a method sees every
//! completion whichever instance picked the member. One short lock per completion and per
//! pick, only for methods that asked.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Instant;

use crate::balancer::{AttemptOutcome, Completion};

/// Completions kept per loaded method; an instance further behind misses the oldest.
pub(crate) const CAPACITY: usize = 1024;

/// Fields per completion in `switchyard:plugin@0.2.0`, in `completion-field` order.
const FIELDS: usize = 7;

/// The ended attempts of one balancer, for one loaded method.
#[derive(Debug, Default)]
pub(crate) struct FeedbackLog {
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    /// Sequence number of the next completion.
    next: u64,
    /// The first sequence number after the last membership change: member positions before
    /// it may be stale, so those completions are never delivered.
    floor: u64,
    slots: Vec<Completion>,
}

/// Where one instance is in the log, and its reusable table.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// The next sequence number to deliver; `None` for an instance that has seen nothing yet
    /// (it gets the history the ring still holds, and misses nothing).
    next: Option<u64>,
    /// The last table handed over, column-major; reused so a pick allocates nothing.
    pub(crate) values: Vec<i64>,
}

/// What [`FeedbackLog::take`] put in the cursor's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// The host clock now, in microseconds.
    pub(crate) now: u64,
    /// Completions in the table.
    pub(crate) count: u32,
    /// Completions the instance fell too far behind to get.
    pub(crate) missed: u64,
}

impl FeedbackLog {
    /// Records an ended attempt.
    pub(crate) fn push(&self, completion: &Completion) {
        let Ok(mut ring) = self.ring.lock() else { return };
        let at = (ring.next % CAPACITY as u64) as usize;
        if ring.slots.len() < CAPACITY {
            ring.slots.push(*completion);
        } else {
            ring.slots[at] = *completion;
        }
        ring.next += 1;
    }

    /// The membership changed: what was recorded so far names stale member positions.
    pub(crate) fn forget(&self) {
        if let Ok(mut ring) = self.ring.lock() {
            ring.floor = ring.next;
        }
    }

    /// Fills `cursor.values` with the completions it has not seen, as the WIT table, for a
    /// pick at `now`.
    pub(crate) fn take(&self, cursor: &mut Cursor, now: Instant) -> Taken {
        let now = micros(now);
        cursor.values.clear();
        let Ok(ring) = self.ring.lock() else { return Taken { now, count: 0, missed: 0 } };
        let oldest_kept = ring.next.saturating_sub(CAPACITY as u64).max(ring.floor);
        let wanted = cursor.next.unwrap_or(oldest_kept).max(ring.floor);
        let from = wanted.max(oldest_kept);
        let missed = from - wanted;
        let count = (ring.next - from) as usize;
        cursor.values.resize(FIELDS * count, 0);
        for (i, seq) in (from..ring.next).enumerate() {
            let c = &ring.slots[(seq % CAPACITY as u64) as usize];
            let row = [
                c.member as i64,
                outcome_code(c.outcome),
                i64::from(c.status),
                c.head.map_or(-1, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
                i64::try_from(c.total.as_micros()).unwrap_or(i64::MAX),
                i64::try_from(c.received).unwrap_or(i64::MAX),
                i64::try_from(micros(c.finished)).unwrap_or(i64::MAX),
            ];
            for (field, value) in row.into_iter().enumerate() {
                cursor.values[field * count + i] = value;
            }
        }
        cursor.next = Some(ring.next);
        Taken { now, count: count as u32, missed }
    }
}

/// The `completion-outcome` discriminant.
fn outcome_code(outcome: AttemptOutcome) -> i64 {
    match outcome {
        AttemptOutcome::Response => 0,
        AttemptOutcome::ConnectFailed => 1,
        AttemptOutcome::TimedOut => 2,
        AttemptOutcome::Broken => 3,
    }
}

/// Microseconds on the clock plugins see: monotonic, from the first time anyone asked.
pub(crate) fn micros(at: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn completion(member: usize) -> Completion {
        Completion {
            member,
            outcome: AttemptOutcome::Response,
            status: 200,
            head: Some(Duration::from_micros(1500)),
            total: Duration::from_micros(2000),
            received: 10,
            finished: Instant::now(),
        }
    }

    #[test]
    fn each_cursor_sees_every_completion_once_in_columns() {
        let log = FeedbackLog::default();
        let (mut a, mut b) = (Cursor::default(), Cursor::default());
        log.push(&completion(0));
        log.push(&completion(2));
        let taken = log.take(&mut a, Instant::now());
        assert_eq!((taken.count, taken.missed), (2, 0));
        assert_eq!(&a.values[0..2], &[0, 2], "member column");
        assert_eq!(&a.values[4..6], &[200, 200], "status column");
        assert_eq!(&a.values[6..8], &[1500, 1500], "head-micros column");
        assert_eq!(log.take(&mut a, Instant::now()).count, 0, "nothing new");
        log.push(&completion(1));
        assert_eq!(log.take(&mut a, Instant::now()).count, 1);
        assert_eq!(log.take(&mut b, Instant::now()).count, 3, "another instance gets the history");
    }

    #[test]
    fn an_instance_far_behind_misses_the_oldest() {
        let log = FeedbackLog::default();
        let mut slow = Cursor::default();
        log.take(&mut slow, Instant::now());
        for i in 0..CAPACITY + 10 {
            log.push(&completion(i % 3));
        }
        let taken = log.take(&mut slow, Instant::now());
        assert_eq!((taken.count as usize, taken.missed), (CAPACITY, 10));
    }

    #[test]
    fn a_membership_change_drops_what_came_before() {
        let log = FeedbackLog::default();
        let mut cursor = Cursor::default();
        log.push(&completion(5));
        log.forget();
        log.push(&completion(0));
        let taken = log.take(&mut cursor, Instant::now());
        assert_eq!((taken.count, taken.missed), (1, 0));
        assert_eq!(cursor.values[0], 0);
    }
}
