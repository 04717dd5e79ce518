//! The pool options of the stores' own constructors, public so that a pool
//! you tune can start from them.

use std::time::Duration;

use sqlx::pool::{PoolConnectionMetadata, PoolOptions};
use sqlx::{Connection as _, Database};

use crate::driver::BoxFuture;

/// How long a pooled connection may have sat idle and still be handed out
/// without a ping first.
pub const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// sqlx's default pool options, but for the ping before each acquire:
/// [`PgStore::connect`](crate::PgStore) and
/// [`MySqlStore::connect`](crate::MySqlStore) open their pool with these.
///
/// sqlx's default (`test_before_acquire(true)`) pings every connection it
/// hands out, one more round trip to the server before each statement, on
/// top of the ping sqlx always makes when a connection comes back to the
/// pool. A store's statements are short and frequent (a session hit is one),
/// so a busy pool's connections were checked moments before: these options
/// ping only a connection that has been idle for at least
/// [`IDLE_BEFORE_PING`], which is where a connection dies unseen (the server
/// restarted, an idle timeout, a dropped link). The check on release stays.
/// A connection that breaks between its release and its next use fails that
/// one statement, as one that breaks during a statement does: the store
/// answers it with [`StoreErrorKind::Unavailable`](expected_core::StoreErrorKind)
/// and the pool replaces the connection.
///
/// ```no_run
/// # #[cfg(feature = "postgres")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use expected_store_sqlx::{PgStore, pool_options};
///
/// let pool = pool_options().max_connections(20).connect("postgres://app@db/app").await?;
/// let store = PgStore::new(pool);
/// # let _ = store;
/// # Ok(()) }
/// ```
pub fn pool_options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new().test_before_acquire(false).before_acquire(ping_if_idle::<DB>)
}

/// The check before an acquire: a ping if the connection sat idle long.
fn ping_if_idle<DB: Database>(
    conn: &mut DB::Connection,
    meta: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if meta.idle_for >= IDLE_BEFORE_PING {
            conn.ping().await?;
        }
        Ok(true)
    })
}
