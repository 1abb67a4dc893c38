//! Completion feedback: how the balancer's attempts ended, for latency- and error-aware
//! methods (since version 0.2 of the contract).
//!
//! A method asks for it with [`LbMethod::wants_completions`](crate::LbMethod::wants_completions);
//! the host then calls [`LbMethod::complete`](crate::LbMethod::complete) before every `pick`
//! with the attempts that ended since this instance's last pick, oldest first, and the
//! request's [`Request::now`](crate::Request::now) carries the host's clock. Every instance
//! sees every completion of its balancer.

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A response head came back; the attempt ended with its body.
    Response,
    /// The member could not be reached; the request never got there.
    ConnectFailed,
    /// The member took the request and sent no head within its timeout.
    TimedOut,
    /// The member took the request and broke the exchange before a head.
    Broken,
}

impl AttemptOutcome {
    /// The outcome a `completion-outcome` discriminant names; an unknown one (from a newer
    /// host) reads as `Broken`.
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => AttemptOutcome::Response,
            1 => AttemptOutcome::ConnectFailed,
            2 => AttemptOutcome::TimedOut,
            _ => AttemptOutcome::Broken,
        }
    }

    /// The discriminant, as the host sends it.
    pub fn code(self) -> i64 {
        match self {
            AttemptOutcome::Response => 0,
            AttemptOutcome::ConnectFailed => 1,
            AttemptOutcome::TimedOut => 2,
            AttemptOutcome::Broken => 3,
        }
    }
}

/// One ended attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Position of the member in the list last given to `reset`.
    pub member: usize,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The response status; 0 when no head came back.
    pub status: u16,
    /// Microseconds from the start of the attempt to the response head, when one came.
    pub head_micros: Option<u64>,
    /// Microseconds from the start of the attempt to its end.
    pub total_micros: u64,
    /// Response body bytes read from the member (approximate: bytes that arrived together
    /// with the head are not counted).
    pub received: u64,
    /// When it ended, on the clock of [`Request::now`](crate::Request::now).
    pub finished_at: u64,
}

/// The fields of a completion, in the column order of the WIT `completion-field` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum CompletionField {
    /// Member position.
    Member = 0,
    /// Outcome discriminant.
    Outcome = 1,
    /// Status code.
    Status = 2,
    /// Microseconds to the head, or -1.
    HeadMicros = 3,
    /// Microseconds in all.
    TotalMicros = 4,
    /// Body bytes read.
    Received = 5,
    /// When it ended.
    FinishedAt = 6,
}

impl CompletionField {
    /// How many fields version 0.2 of the contract sends.
    pub const COUNT: usize = 7;
}

/// The attempts that ended since the last pick, as a table with one column per
/// [`CompletionField`].
#[derive(Debug, Clone, Copy)]
pub struct Completions<'a> {
    count: usize,
    values: &'a [i64],
    missed: u64,
}

impl<'a> Completions<'a> {
    /// Views a column-major table of `count` rows, as the host packs it; `missed` is how many
    /// completions the instance fell too far behind to get. A `values` list too short for
    /// `count` rows is cut to the rows it can hold.
    pub fn from_columns(count: usize, values: &'a [i64], missed: u64) -> Self {
        let count = count.min(values.len() / CompletionField::COUNT);
        Self { count, values, missed }
    }

    /// Number of completions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none ended since the last pick.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Completions this instance never got (it fell behind the host's buffer).
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// One field of every completion.
    pub fn column(&self, field: CompletionField) -> &'a [i64] {
        let start = field as usize * self.count;
        &self.values[start..start + self.count]
    }

    /// The completions, oldest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Completion> + '_ {
        (0..self.count).map(|i| self.row(i))
    }

    fn row(&self, i: usize) -> Completion {
        let at = |field: CompletionField| self.values[field as usize * self.count + i];
        let unsigned = |field: CompletionField| u64::try_from(at(field)).unwrap_or(0);
        Completion {
            member: unsigned(CompletionField::Member) as usize,
            outcome: AttemptOutcome::from_code(at(CompletionField::Outcome)),
            status: u16::try_from(at(CompletionField::Status)).unwrap_or(0),
            head_micros: u64::try_from(at(CompletionField::HeadMicros)).ok(),
            total_micros: unsigned(CompletionField::TotalMicros),
            received: unsigned(CompletionField::Received),
            finished_at: unsigned(CompletionField::FinishedAt),
        }
    }
}

/// Packs completions into the host's column-major table (for tests and tools that play the
/// host).
pub fn to_columns(completions: &[Completion]) -> Vec<i64> {
    let n = completions.len();
    let mut values = vec![0i64; CompletionField::COUNT * n];
    for (i, c) in completions.iter().enumerate() {
        let row = [
            c.member as i64,
            c.outcome.code(),
            i64::from(c.status),
            c.head_micros.map_or(-1, |h| i64::try_from(h).unwrap_or(i64::MAX)),
            i64::try_from(c.total_micros).unwrap_or(i64::MAX),
            i64::try_from(c.received).unwrap_or(i64::MAX),
            i64::try_from(c.finished_at).unwrap_or(i64::MAX),
        ];
        for (field, value) in row.into_iter().enumerate() {
            values[field * n + i] = value;
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        let done = [
            Completion { member: 2, outcome: AttemptOutcome::Response, status: 200, head_micros: Some(900), total_micros: 1200, received: 5, finished_at: 77 },
            Completion { member: 0, outcome: AttemptOutcome::TimedOut, status: 0, head_micros: None, total_micros: 3_000_000, received: 0, finished_at: 78 },
        ];
        let values = to_columns(&done);
        let view = Completions::from_columns(2, &values, 4);
        assert_eq!(view.iter().collect::<Vec<_>>(), done);
        assert_eq!(view.missed(), 4);
        assert_eq!(view.column(CompletionField::Member), &[2, 0]);
    }
}
