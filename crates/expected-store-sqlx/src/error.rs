//! sqlx errors to [`StoreError`]s, and retrying transient failures.

use std::future::Future;
use std::time::Duration;

use expected_core::StoreError;
use expected_core::store::StoreErrorKind;
use sqlx::error::DatabaseError;

/// How often an operation is tried when the backend reports a deadlock, a
/// serialization failure or a busy database.
pub(crate) const ATTEMPTS: u32 = 12;

/// What an attempt can fail with: a sqlx error (maybe transient) or a final
/// store error. (Public for [`Dialect::attempt`](crate::dialect::Dialect),
/// in a module the crate does not export.)
#[derive(Debug)]
pub enum Failure {
    /// A sqlx error, retried if transient.
    Sql(sqlx::Error),
    /// A final store error.
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Sql(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

#[cfg(feature = "mysql")]
impl Failure {
    /// The final store error.
    pub(crate) fn into_store(self, classify: fn(&dyn DatabaseError) -> Transience) -> StoreError {
        match self {
            Self::Sql(error) => store_error(error, classify),
            Self::Store(error) => error,
        }
    }
}

/// How a backend classifies its database errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// Deadlock or serialization failure: retry at once.
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    Conflict,
    /// The database is busy or locked: retry, then report it unavailable.
    Busy,
    /// Not transient.
    No,
}

/// Maps a sqlx error (not retried, or retried too often) to a store error.
pub(crate) fn store_error(error: sqlx::Error, classify: fn(&dyn DatabaseError) -> Transience) -> StoreError {
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(error),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::wrap(StoreErrorKind::Corrupt, error)
        }
        sqlx::Error::Database(db) if connection_lost(&**db) || classify(&**db) == Transience::Busy => {
            StoreError::unavailable(error)
        }
        _ => StoreError::backend(error),
    }
}

/// SQLSTATE class 08 (connection exception), PostgreSQL's shutdown and
/// too-many-connections codes.
fn connection_lost(error: &dyn DatabaseError) -> bool {
    error
        .code()
        .is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300"))
}

fn transience(error: &sqlx::Error, classify: fn(&dyn DatabaseError) -> Transience) -> Transience {
    match error {
        sqlx::Error::Database(db) => classify(&**db),
        _ => Transience::No,
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has failed
/// transiently [`ATTEMPTS`] times. Every attempt is a whole transaction (or a
/// single statement), so a failed one changed nothing.
pub(crate) async fn retry<T, F, Fut>(
    classify: fn(&dyn DatabaseError) -> Transience,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure::Store(error)) => return Err(error),
            Err(Failure::Sql(error)) => {
                if tries >= ATTEMPTS || transience(&error, classify) == Transience::No {
                    return Err(store_error(error, classify));
                }
                tokio::time::sleep(backoff(tries)).await;
            }
        }
    }
}

/// A short, growing, jittered pause so that the racers of a deadlock do not
/// collide again in lockstep.
fn backoff(tries: u32) -> Duration {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = seed ^ tries.wrapping_mul(0x9E37_79B9);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    let ceiling_us = 1_000u32.saturating_mul(tries.min(8));
    Duration::from_micros(u64::from(x % ceiling_us.max(1)) + 100)
}
