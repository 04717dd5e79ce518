//! Time, injected: the protocol never reads a global clock.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// Where the engine reads the current time from.
pub trait Clock: Send + Sync + 'static {
    /// The current time in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// Truncates to whole microseconds in UTC: the precision every store keeps
/// (PostgreSQL `timestamptz`, MySQL `DATETIME(6)`), so a record reads back
/// exactly as it was written.
pub fn to_store_precision(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(at)
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to: for tests and simulations.
///
/// Clones share one time, so a test can keep a handle and advance the clock
/// of an engine it has handed a clone to.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// A clock standing at the current system time, in store precision.
    pub fn starting_now() -> Self {
        Self::new(to_store_precision(OffsetDateTime::now_utc()))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time() {
        let clock = ManualClock::new(time::macros::datetime!(2030-01-01 0:00 UTC));
        let other = clock.clone();
        clock.advance(Duration::seconds(5));
        assert_eq!(other.now(), time::macros::datetime!(2030-01-01 0:00:05 UTC));
    }

    #[test]
    fn store_precision_drops_nanoseconds_and_normalizes_offset() {
        let at = time::macros::datetime!(2030-01-01 1:00:00.123456789 +1);
        let truncated = to_store_precision(at);
        assert_eq!(truncated, time::macros::datetime!(2030-01-01 0:00:00.123456 UTC));
        assert_eq!(truncated.offset(), time::UtcOffset::UTC);
    }
}
