//! The MySQL / MariaDB dialect: the shared write transactions, and its own
//! multi-table `DELETE` and `UPDATE` where one statement does.

use std::num::NonZeroUsize;

use expected_core::store::{
    Confirmation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep, Rotated, Rotation,
};
use expected_core::{AuthMethod, Serial, SessionRecord, StoreError, StoreErrorKind, Username};
use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlDatabaseError, MySqlPool, MySqlQueryResult};
use sqlx::{Connection as _, Transaction};

use crate::codec::{SessionValues, expired, micros};
use crate::dialect::{Connection, Dialect, Transactional};
use crate::driver::{BoxFuture, RowsAffected, Stmt};
use crate::error::{Failure, Transience, store_error};
use crate::statements::{CommonSql, SqlText, TxSql};
use crate::store::SqlStore;
use crate::tables::{Backend, Tables};
use crate::transactional;

/// The MySQL dialect (MySQL 8, MariaDB 10.5 or later).
#[derive(Debug, Clone, Copy)]
pub struct MySql;

/// The [`Store`](expected_core::Store) on MySQL 8 or MariaDB 10.5+: a
/// [`SqlStore`] of the MySQL dialect, whose methods it has.
pub type MySqlStore = SqlStore<MySql>;

/// MySQL's statements: the shared ones, the transactions' (shared with
/// SQLite), and its own multi-table `DELETE` and `UPDATE`.
#[derive(Debug)]
pub struct Sql {
    common: CommonSql,
    tx: TxSql,
    rotate_cas: SqlText,
    rotate_replaced: SqlText,
    rotate_bind: SqlText,
    login_exists: SqlText,
    delete_login: SqlText,
    delete_login_sessions: SqlText,
    confirm: SqlText,
    expired_logins: SqlText,
    expire_logins_prefix: String,
}

impl Sql {
    fn new(tables: &Tables, batch: u32) -> Self {
        let logins = Backend::MySql.quote(tables.logins());
        let sessions = Backend::MySql.quote(tables.sessions());
        Self {
            common: CommonSql::new(Backend::MySql, tables, batch),
            tx: TxSql::new(Backend::MySql, tables),
            // The compare-and-swap. It leaves session_digest alone: the old
            // value names the session to delete, and the row is locked by
            // this transaction from here on. authenticated_at is not set: a
            // rotation never changes it.
            rotate_cas: format!(
                "UPDATE {logins} SET token = ?, previous_token = ?, previous_rotated_at = ?, \
                 previous_sealed = ?, last_used_at = ?, expires_at = ?, client_ip = ?, user_agent = ? \
                 WHERE username = ? AND serial = ? AND token = ?"
            )
            .into(),
            // Every session of the login but the new one (the third `?`):
            // the bound one and every one it opened (a grace session, a
            // cycled one, a copy), read by a plain query (at READ COMMITTED,
            // a consistent read that locks nothing) and then deleted one by
            // one by the primary key (`TxSql::delete_session_by_key`). A
            // DELETE that finds its rows through the `(username,
            // login_serial)` index locks the index record past the range,
            // which may be another device's session, so it waits on that
            // device's rotation or deletion (and two rotations of one user
            // deadlocked); a DELETE by the whole primary key locks exactly
            // its row. The login's row is locked by the CAS, and every
            // writer of a session bound to it (a rotation, a grace session)
            // takes that lock first, so the read misses none of theirs; a
            // session cycled at this very instant may be missed, as
            // PostgreSQL's DELETE would miss it.
            rotate_replaced: format!(
                "SELECT digest FROM {sessions} WHERE username = ? AND login_serial = ? AND digest <> ? \
                 UNION SELECT session_digest FROM {logins} WHERE username = ? AND serial = ? \
                 AND session_digest IS NOT NULL AND session_digest <> ?"
            )
            .into(),
            rotate_bind: format!("UPDATE {logins} SET session_digest = ? WHERE username = ? AND serial = ?")
                .into(),
            login_exists: format!("SELECT 1 FROM {logins} WHERE username = ? AND serial = ?").into(),
            // One statement for the login, its bound session and the
            // sessions it opened; InnoDB locks the login row first and reads
            // the sessions current (not from a snapshot).
            delete_login: format!(
                "DELETE l, s FROM {logins} AS l LEFT JOIN {sessions} AS s \
                 ON s.username = l.username AND (s.digest = l.session_digest OR s.login_serial = l.serial) \
                 WHERE l.username = ? AND l.serial = ?"
            )
            .into(),
            // The sessions of a login that is gone, through their
            // `(username, login_serial)` index, named: the multi-table form
            // is the only DELETE that takes an index hint.
            delete_login_sessions: format!(
                "DELETE s FROM {sessions} AS s FORCE INDEX ({index}) \
                 WHERE s.username = ? AND s.login_serial = ?",
                index = Backend::MySql.quote(&crate::schema::sessions_login_index(tables))
            )
            .into(),
            // One statement, atomic on its own: the session and, joined to
            // it (so only when the session exists), its login. With
            // CLIENT_FOUND_ROWS (sqlx sets it) rows affected counts the rows
            // matched, so a confirmation writing the values already there
            // still answers true.
            confirm: format!(
                "UPDATE {sessions} AS s LEFT JOIN {logins} AS l ON l.username = s.username AND l.serial = ? \
                 SET s.method = '{password}', s.authenticated_at = ?, l.authenticated_at = ? \
                 WHERE s.username = ? AND s.digest = ?",
                password = AuthMethod::Password.as_str()
            )
            .into(),
            expired_logins: format!(
                "SELECT username, serial FROM {logins} WHERE expires_at <= ? \
                 ORDER BY expires_at LIMIT {batch} FOR UPDATE"
            )
            .into(),
            expire_logins_prefix: format!(
                "DELETE l, s FROM {logins} AS l LEFT JOIN {sessions} AS s \
                 ON s.username = l.username AND (s.digest = l.session_digest OR s.login_serial = l.serial) \
                 WHERE l.expires_at <= ? AND (l.username, l.serial) IN "
            ),
        }
    }

    /// The batch delete for `n` locked logins: `(?, ?)` pairs after the
    /// prefix, values bound, never spliced.
    fn expire_logins(&self, n: usize) -> SqlText {
        let pairs = vec!["(?, ?)"; n].join(", ");
        format!("{}({pairs})", self.expire_logins_prefix).into()
    }
}

/// The most placeholders one prepared statement takes: the protocol counts
/// them in 16 bits, and the server refuses more ("too many placeholders").
const MAX_PLACEHOLDERS: u32 = u16::MAX as u32;

impl MySqlStore {
    /// The largest batch: a batch of expired logins is deleted by one
    /// statement that binds `now` and each login's username and serial, so
    /// `1 + 2 × batch` placeholders, of which MySQL and MariaDB take at most
    /// 65 535.
    pub const MAX_BATCH: u32 = (MAX_PLACEHOLDERS - 1) / 2;
}

impl RowsAffected for MySqlQueryResult {
    fn rows_affected(&self) -> u64 {
        MySqlQueryResult::rows_affected(self)
    }
}

impl Dialect for MySql {
    type Db = sqlx::MySql;
    type Sql = Sql;
    type Writer = ();
    type WriteConn = sqlx::pool::PoolConnection<sqlx::MySql>;

    const BACKEND: Backend = Backend::MySql;

    const MAX_BATCH: u32 = MySqlStore::MAX_BATCH;

    fn classify(error: &dyn DatabaseError) -> Transience {
        match error.try_downcast_ref::<MySqlDatabaseError>().map(MySqlDatabaseError::number) {
            // ER_LOCK_DEADLOCK; ER_CHECKREAD (MariaDB's snapshot isolation).
            Some(1213 | 1020) => Transience::Conflict,
            _ => Transience::No,
        }
    }

    /// Usernames are `VARBINARY`: bound as their UTF-8 bytes, compared
    /// exactly.
    fn bind_name(stmt: Stmt<Self>, name: &str) -> Stmt<Self> {
        stmt.bind(name.as_bytes())
    }

    fn sql(tables: &Tables, batch: u32) -> Sql {
        Sql::new(tables, batch)
    }

    fn common(sql: &Sql) -> &CommonSql {
        &sql.common
    }

    fn writer(_: &MySqlPool) {}

    async fn write(pool: &MySqlPool, (): &()) -> Result<Self::WriteConn, sqlx::Error> {
        pool.acquire().await
    }

    fn begin(
        conn: &mut Connection<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'_, sqlx::MySql>, sqlx::Error>> {
        Box::pin(conn.begin())
    }

    async fn connect(url: &str) -> Result<(MySqlPool, ()), StoreError> {
        let pool = crate::pool_options::<sqlx::MySql>()
            .connect(url)
            .await
            .map_err(|e| store_error(e, Self::classify))?;
        Ok((pool, ()))
    }

    /// Under `GET_LOCK` (MySQL commits DDL at once: every statement is
    /// idempotent on its own).
    async fn migrate(store: &MySqlStore) -> Result<Vec<i64>, StoreError> {
        let mut conn = store.pool.acquire().await.map_err(|e| store_error(e, Self::classify))?;
        let lock = format!("expected-store-sqlx.{}", store.tables.migrations_table());
        let locked: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK(LEFT(CONCAT(COALESCE(DATABASE(), ''), '.', ?), 64), 60)")
                .bind(&lock)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| store_error(e, Self::classify))?;
        if locked != Some(1) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "another migration held the migration lock for 60 s",
            ));
        }
        let outcome = crate::migrate::apply::<Self>(&mut conn, &store.tables)
            .await
            .map_err(|e: Failure| e.into_store(Self::classify));
        let released = sqlx::query("SELECT RELEASE_LOCK(LEFT(CONCAT(COALESCE(DATABASE(), ''), '.', ?), 64))")
            .bind(&lock)
            .execute(&mut *conn)
            .await;
        if released.is_err() {
            // The lock dies with the connection: do not hand it back.
            conn.detach();
        }
        outcome
    }

    async fn rotate(store: &MySqlStore, rotation: &Rotation) -> Result<Rotated, StoreError> {
        rotate(store, rotation).await
    }

    async fn insert_capped(
        store: &MySqlStore,
        session: &SessionRecord,
        max: NonZeroUsize,
    ) -> Result<Inserted, StoreError> {
        transactional::insert_capped(store, session, max).await
    }

    async fn create_grace(
        store: &MySqlStore,
        session: &SessionRecord,
        max: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        transactional::create_grace(store, session, max).await
    }

    /// One multi-table `DELETE`; when the login is gone, one more for the
    /// sessions it opened.
    async fn remove_login(store: &MySqlStore, user: &Username, serial: &Serial) -> Result<bool, StoreError> {
        let deleted = store
            .retry(|| async {
                let mut conn = store.write().await?;
                Ok(Stmt::<Self>::new(&store.sql.delete_login)
                    .user(user)
                    .bind(&serial.as_bytes()[..])
                    .execute(&mut conn)
                    .await?)
            })
            .await?;
        if deleted > 0 {
            return Ok(true);
        }
        // No login: end the sessions it opened all the same (the join above
        // starts from the login, so it found none of them).
        store
            .retry(|| async {
                let mut conn = store.write().await?;
                Ok(Stmt::<Self>::new(&store.sql.delete_login_sessions)
                    .user(user)
                    .bind(&serial.as_bytes()[..])
                    .execute(&mut conn)
                    .await?)
            })
            .await?;
        Ok(false)
    }

    async fn remove_user(
        store: &MySqlStore,
        user: &Username,
        keep: Option<&Keep>,
    ) -> Result<Deleted, StoreError> {
        transactional::remove_user(store, user, keep).await
    }

    /// One multi-table `UPDATE`.
    async fn confirm(store: &MySqlStore, confirmation: &Confirmation) -> Result<bool, StoreError> {
        let at = micros(confirmation.at);
        let changed = store
            .retry(|| async {
                let mut conn = store.write().await?;
                Ok(Stmt::<Self>::new(&store.sql.confirm)
                    .bind(confirmation.login.as_ref().map(|serial| &serial.as_bytes()[..]))
                    .bind(at)
                    .bind(at)
                    .user(&confirmation.username)
                    .bind(&confirmation.session.as_bytes()[..])
                    .execute(&mut conn)
                    .await?)
            })
            .await?;
        Ok(changed > 0)
    }

    /// One transaction: lock up to a batch of expired logins, delete them
    /// and the sessions they opened in one statement, commit.
    async fn expire_logins_batch(store: &MySqlStore, now: i64) -> Result<Vec<ExpiredLogin>, StoreError> {
        let keys = store
            .retry(|| async {
                let mut conn = store.write().await?;
                let mut tx = Self::begin(&mut conn).await?;
                let rows = Stmt::<Self>::new(&store.sql.expired_logins).bind(now).fetch_all(&mut tx).await?;
                let keys = rows
                    .iter()
                    .map(|row| Ok((row.get::<Vec<u8>>(0)?, row.get::<Vec<u8>>(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                if keys.is_empty() {
                    tx.commit().await?;
                    return Ok(keys);
                }
                let mut delete = Stmt::<Self>::new(&store.sql.expire_logins(keys.len())).bind(now);
                for (user, serial) in &keys {
                    delete = delete.bind(user.as_slice()).bind(serial.as_slice());
                }
                delete.execute(&mut tx).await?;
                tx.commit().await?;
                Ok(keys)
            })
            .await?;
        expired(keys)
    }
}

/// The compare-and-swap of the login, the new session, the deletion of the
/// login's other sessions (read, then deleted by key), the cap, and the new
/// binding, in one write transaction at READ COMMITTED
/// ([`Transactional::begin_session_write`]) of one statement a round trip.
/// When the CAS matches nothing, one `SELECT` tells `NotCurrent` from
/// `NotFound`.
async fn rotate(store: &MySqlStore, rotation: &Rotation) -> Result<Rotated, StoreError> {
    let session = SessionValues::of(&rotation.session)?;
    let client_ip = rotation.client.ip.map(|ip| ip.to_string());
    let serial = &rotation.serial.as_bytes()[..];
    let sql = &store.sql;
    store
        .retry(|| async {
            let mut conn = store.write().await?;
            let mut tx = MySql::begin_session_write(&mut conn).await?;
            let swapped = Stmt::<MySql>::new(&sql.rotate_cas)
                .rotated_login_state(rotation, client_ip.as_deref())
                .rotated_login_key(rotation)
                .execute(&mut tx)
                .await?;
            if swapped == 0 {
                // The CAS matched nothing: not current, or no login.
                let exists = Stmt::<MySql>::new(&sql.login_exists)
                    .user(&rotation.username)
                    .bind(serial)
                    .fetch_optional(&mut tx)
                    .await?;
                tx.rollback().await?;
                return Ok(if exists.is_some() { Rotated::NotCurrent } else { Rotated::NotFound });
            }
            if !transactional::insert_session_in(store, &mut tx, &session).await? {
                tx.rollback().await?;
                return Ok(Rotated::SessionExists);
            }
            let replaced = Stmt::<MySql>::new(&sql.rotate_replaced)
                .user(&rotation.username)
                .bind(serial)
                .bind(session.digest)
                .user(&rotation.username)
                .bind(serial)
                .bind(session.digest)
                .fetch_all(&mut tx)
                .await?;
            for row in &replaced {
                let digest: Vec<u8> = row.get(0)?;
                transactional::delete_session_in(store, &mut tx, &rotation.username, &digest).await?;
            }
            transactional::evict_in(
                store,
                &mut tx,
                &rotation.username,
                session.digest,
                rotation.max_sessions,
            )
            .await?;
            Stmt::<MySql>::new(&sql.rotate_bind)
                .bind(session.digest)
                .user(&rotation.username)
                .bind(serial)
                .execute(&mut tx)
                .await?;
            tx.commit().await?;
            Ok(Rotated::Rotated)
        })
        .await
}

impl Transactional for MySql {
    fn tx(sql: &Sql) -> &TxSql {
        &sql.tx
    }

    /// At READ COMMITTED (the next transaction only; the connection's own
    /// level is untouched), in the same round trip as its start.
    ///
    /// Under InnoDB's default REPEATABLE READ, the statements that delete a
    /// login's old sessions and evict a user's sessions beyond the cap lock
    /// every row they scan of the user's range of the sessions' primary key,
    /// with the gaps, and a subquery share-locks the rows it reads:
    /// rotations of two devices of one user then deadlock on each other's
    /// new session (InnoDB 1213, measured by the HTTP benchmark: 25 of 4 315
    /// cookie logins failed after every retry with 10 browsers per user).
    /// READ COMMITTED locks only the rows a statement changes, with no gap
    /// locks, and its plain reads lock nothing. Nothing here needs more:
    /// every write names its rows by the whole primary key, the login's row
    /// lock (taken first, by the compare-and-swap or the binding) orders a
    /// rotation with a racing `delete_login` or `delete_user` (which stay at
    /// the default level: they read the serials they delete under a lock
    /// with its gap), and a cap counted while another creation is
    /// uncommitted can leave the user one session over it until the next
    /// creation, as documented on `Store`'s rules ("Sessions per user are
    /// capped").
    fn begin_session_write(
        conn: &mut Connection<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'_, sqlx::MySql>, sqlx::Error>> {
        Box::pin(conn.begin_with("SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION"))
    }
}
