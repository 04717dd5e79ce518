//! What the three backends share: the SQL of the simple operations and,
//! as macros expanded in each backend module (so that every sqlx type is
//! concrete), the code that runs it.

use std::future::Future;
use std::sync::Arc;

use expected_core::StoreError;
use expected_core::store::ExpiredLogin;
use sqlx::AssertSqlSafe;

use crate::codec::{UsernameColumn, serial_from};
use crate::tables::{Backend, Tables};

/// A statement's text, built once per store from the table names.
pub(crate) type SqlText = Arc<str>;

/// The text of a statement, for `sqlx::query`. Every statement of this crate
/// is built from validated, quoted table names and constant SQL: all values
/// are bind parameters.
pub(crate) fn sql(text: &SqlText) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(Arc::clone(text))
}

/// The login columns after `username`, in [`LoginValues`](crate::codec::LoginValues) order.
pub(crate) const LOGIN_COLUMNS: &str = "serial, token, previous_token, previous_rotated_at, previous_sealed, \
     session_digest, created_at, last_used_at, expires_at, client_ip, user_agent, authenticated_at";

/// The session columns, in [`SessionValues`](crate::codec::SessionValues)
/// order (as [`bind_session!`] binds them).
pub(crate) const SESSION_COLUMNS: &str =
    "username, digest, login_serial, method, authenticated_at, data, created_at, expires_at";

/// The session columns read back (all but the key), in
/// [`SessionRow`](crate::codec::SessionRow) order, `data` as `{data}`.
fn session_read_columns(data: &str) -> String {
    format!("login_serial, method, authenticated_at, {data}, created_at, expires_at")
}

/// Statements whose logic is the same on every backend.
#[derive(Debug)]
pub(crate) struct CommonSql {
    pub(crate) insert_login: SqlText,
    pub(crate) select_login: SqlText,
    pub(crate) select_logins: SqlText,
    pub(crate) insert_session: SqlText,
    pub(crate) select_session: SqlText,
    pub(crate) update_session: SqlText,
    pub(crate) delete_session: SqlText,
    pub(crate) touch_session: SqlText,
    pub(crate) expire_sessions: SqlText,
    pub(crate) count_sessions: SqlText,
}

impl CommonSql {
    pub(crate) fn new(backend: Backend, tables: &Tables, batch: u32) -> Self {
        let p = |n| backend.param(n);
        let logins = backend.quote(tables.logins());
        let sessions = backend.quote(tables.sessions());
        // PostgreSQL and SQLite insert-or-nothing; MySQL's INSERT IGNORE would
        // also swallow other errors, so there a duplicate key error is caught.
        let or_nothing = if backend == Backend::MySql { "" } else { " ON CONFLICT DO NOTHING" };
        let json = |n| if backend == Backend::Postgres { format!("{}::json", p(n)) } else { p(n) };
        let data = if backend == Backend::Postgres { "data::text" } else { "data" };
        let expire = |table: &str, key: &str| match backend {
            // Index range on expires_at; SKIP LOCKED lets cleaners run side
            // by side and never waits on a row being written; the outer
            // condition is checked again on rows changed meanwhile.
            Backend::Postgres => format!(
                "DELETE FROM {table} WHERE (username, {key}) IN (SELECT username, {key} FROM {table} \
                 WHERE expires_at <= $1 LIMIT {batch} FOR UPDATE SKIP LOCKED) AND expires_at <= $1"
            ),
            Backend::MySql => format!("DELETE FROM {table} WHERE expires_at <= ? LIMIT {batch}"),
            Backend::Sqlite => format!(
                "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE expires_at <= $1 LIMIT {batch})"
            ),
        };
        let text = |s: String| -> SqlText { s.into() };
        Self {
            insert_login: text(format!(
                "INSERT INTO {logins} (username, {LOGIN_COLUMNS}) VALUES ({}){or_nothing}",
                backend.params(1, 13)
            )),
            select_login: text(format!(
                "SELECT {LOGIN_COLUMNS} FROM {logins} WHERE username = {} AND serial = {}",
                p(1),
                p(2)
            )),
            select_logins: text(format!("SELECT {LOGIN_COLUMNS} FROM {logins} WHERE username = {}", p(1))),
            insert_session: text(format!(
                "INSERT INTO {sessions} ({SESSION_COLUMNS}) VALUES ({}, {}, {}, {}){or_nothing}",
                backend.params(1, 5),
                json(6),
                p(7),
                p(8)
            )),
            select_session: text(format!(
                "SELECT {} FROM {sessions} WHERE username = {} AND digest = {}",
                session_read_columns(data),
                p(1),
                p(2)
            )),
            update_session: text(format!(
                "UPDATE {sessions} SET data = {}, expires_at = {} WHERE username = {} AND digest = {}",
                json(1),
                p(2),
                p(3),
                p(4)
            )),
            delete_session: text(format!(
                "DELETE FROM {sessions} WHERE username = {} AND digest = {}",
                p(1),
                p(2)
            )),
            touch_session: text(format!(
                "UPDATE {sessions} SET expires_at = {} WHERE username = {} AND digest = {}",
                p(1),
                p(2),
                p(3)
            )),
            expire_sessions: text(expire(&sessions, "digest")),
            // COUNT, not SUM: a bigint on every backend. Anonymous sessions
            // are the ones under the empty username.
            count_sessions: text(format!(
                "SELECT COUNT(*), COUNT(CASE WHEN username = '' THEN 1 END) FROM {sessions} \
                 WHERE expires_at > {}",
                p(1)
            )),
        }
    }
}

/// How many of a user's other sessions a cap of `max` keeps beside the one
/// being created (`None`: no cap, keep them all).
pub(crate) fn others_kept(max: Option<std::num::NonZeroUsize>) -> Option<i64> {
    max.map(|max| i64::try_from(max.get() - 1).unwrap_or(i64::MAX))
}

/// Runs cleaning batches of logins until one comes back short of `batch`,
/// and answers every login deleted. `next` deletes one batch (one statement
/// or transaction, retried as a whole) and answers its `(username, serial)`
/// keys.
pub(crate) async fn expire_in_batches<U, F, Fut>(
    batch: u32,
    mut next: F,
) -> Result<Vec<ExpiredLogin>, StoreError>
where
    U: UsernameColumn,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<(U, Vec<u8>)>, StoreError>>,
{
    let mut expired = Vec::new();
    loop {
        let keys = next().await?;
        let full = keys.len() >= batch as usize;
        for (username, serial) in keys {
            expired.push(ExpiredLogin { username: username.into_username()?, serial: serial_from(serial)? });
        }
        if !full {
            return Ok(expired);
        }
    }
}

/// Binds a login's 13 columns (username first) to a query.
macro_rules! bind_login {
    ($query:expr, $username:expr, $values:expr) => {{
        let v = $values;
        $query
            .bind($username)
            .bind(v.serial)
            .bind(v.token)
            .bind(v.previous_token)
            .bind(v.previous_rotated_at)
            .bind(v.previous_sealed)
            .bind(v.session_digest)
            .bind(v.created_at)
            .bind(v.last_used_at)
            .bind(v.expires_at)
            .bind(v.client_ip.clone())
            .bind(v.user_agent)
            .bind(v.authenticated_at)
    }};
}
pub(crate) use bind_login;

/// Binds a session's [`SESSION_COLUMNS`] (`$owner`, how the backend binds
/// `owner_name`, first) to a query.
macro_rules! bind_session {
    ($query:expr, $owner:expr, $values:expr) => {{
        let v = $values;
        $query
            .bind($owner)
            .bind(v.digest)
            .bind(v.login_serial)
            .bind(v.method)
            .bind(v.authenticated_at)
            .bind(v.data.as_str())
            .bind(v.created_at)
            .bind(v.expires_at)
    }};
}
pub(crate) use bind_session;

/// Expands, in a backend module that defines `Db` (the sqlx database),
/// `classify` (its transient errors), `username` and `owner` (how a username
/// and a session's owner are bound) and a store type with `pool`,
/// `sql.common` and `batch` fields and `rotate`, `remove_login`,
/// `remove_user`, `confirm`, `expire_logins`, `create_grace` and
/// `insert_capped` methods, to the row decoders, the shared methods and the
/// `Store` impl.
macro_rules! store_impl {
    ($store:ty) => {
        $crate::common::store_impl!($store, {});
    };
    // `$extra`: more `Store` methods, which the backend implements itself
    // (PostgreSQL's `rotate_current`), the others keeping the default.
    ($store:ty, { $($extra:tt)* }) => {
        fn login_row(row: &<Db as sqlx::Database>::Row) -> Result<$crate::codec::LoginRow, sqlx::Error> {
            use sqlx::Row as _;
            Ok($crate::codec::LoginRow {
                serial: row.try_get(0)?,
                token: row.try_get(1)?,
                previous_token: row.try_get(2)?,
                previous_rotated_at: row.try_get(3)?,
                previous_sealed: row.try_get(4)?,
                session_digest: row.try_get(5)?,
                created_at: row.try_get(6)?,
                last_used_at: row.try_get(7)?,
                expires_at: row.try_get(8)?,
                client_ip: row.try_get(9)?,
                user_agent: row.try_get(10)?,
                authenticated_at: row.try_get(11)?,
            })
        }

        fn session_row(row: &<Db as sqlx::Database>::Row) -> Result<$crate::codec::SessionRow, sqlx::Error> {
            use sqlx::Row as _;
            Ok($crate::codec::SessionRow {
                login_serial: row.try_get(0)?,
                method: row.try_get(1)?,
                authenticated_at: row.try_get(2)?,
                data: row.try_get(3)?,
                created_at: row.try_get(4)?,
                expires_at: row.try_get(5)?,
            })
        }

        fn decode_login(
            row: &<Db as sqlx::Database>::Row,
            user: &expected_core::Username,
        ) -> Result<expected_core::Login, expected_core::StoreError> {
            login_row(row).map_err(|e| $crate::error::store_error(e, classify))?.into_login(user)
        }

        impl $store {
            /// How many live sessions (`expires_at > now`) the store holds,
            /// users' and visitors': what `expected-sqlx sessions count`
            /// prints. One statement, a scan of the expiry index.
            pub async fn count_sessions(
                &self,
                now: expected_core::time::OffsetDateTime,
            ) -> Result<expected_core::store::SessionCount, expected_core::StoreError> {
                use sqlx::Row as _;
                let row = $crate::error::retry(classify, || async {
                    Ok(sqlx::query($crate::common::sql(&self.sql.common.count_sessions))
                        .bind($crate::codec::micros(now))
                        .fetch_one(&self.pool)
                        .await?)
                })
                .await?;
                let counted = |index| {
                    row.try_get::<i64, _>(index)
                        .map(|n| u64::try_from(n).unwrap_or_default())
                        .map_err(|e| $crate::error::store_error(e, classify))
                };
                let (total, anonymous) = (counted(0)?, counted(1)?);
                Ok(expected_core::store::SessionCount { users: total.saturating_sub(anonymous), anonymous })
            }
        }

        #[async_trait::async_trait]
        impl expected_core::Store for $store {
            $($extra)*

            async fn create_login(
                &self,
                login: &expected_core::Login,
            ) -> Result<expected_core::store::Inserted, expected_core::StoreError> {
                self.insert_login(login).await
            }

            async fn get_login(
                &self,
                user: &expected_core::Username,
                serial: &expected_core::Serial,
            ) -> Result<Option<expected_core::Login>, expected_core::StoreError> {
                let row = $crate::error::retry(classify, || async {
                    Ok(sqlx::query($crate::common::sql(&self.sql.common.select_login))
                        .bind(username(user))
                        .bind(&serial.as_bytes()[..])
                        .fetch_optional(&self.pool)
                        .await?)
                })
                .await?;
                row.map(|row| decode_login(&row, user)).transpose()
            }

            async fn rotate_login(
                &self,
                rotation: &expected_core::store::Rotation,
            ) -> Result<expected_core::store::Rotated, expected_core::StoreError> {
                self.rotate(rotation).await
            }

            async fn list_logins(
                &self,
                user: &expected_core::Username,
            ) -> Result<Vec<expected_core::Login>, expected_core::StoreError> {
                let rows = $crate::error::retry(classify, || async {
                    Ok(sqlx::query($crate::common::sql(&self.sql.common.select_logins))
                        .bind(username(user))
                        .fetch_all(&self.pool)
                        .await?)
                })
                .await?;
                rows.iter().map(|row| decode_login(row, user)).collect()
            }

            async fn delete_login(
                &self,
                user: &expected_core::Username,
                serial: &expected_core::Serial,
            ) -> Result<bool, expected_core::StoreError> {
                self.remove_login(user, serial).await
            }

            async fn delete_user(
                &self,
                user: &expected_core::Username,
            ) -> Result<expected_core::store::Deleted, expected_core::StoreError> {
                self.remove_user(user, None).await
            }

            async fn delete_user_except(
                &self,
                user: &expected_core::Username,
                keep: &expected_core::store::Keep,
            ) -> Result<expected_core::store::Deleted, expected_core::StoreError> {
                self.remove_user(user, Some(keep)).await
            }

            async fn confirm_password(
                &self,
                confirmation: &expected_core::store::Confirmation,
            ) -> Result<bool, expected_core::StoreError> {
                self.confirm(confirmation).await
            }

            async fn delete_expired_logins(
                &self,
                now: expected_core::time::OffsetDateTime,
            ) -> Result<Vec<expected_core::store::ExpiredLogin>, expected_core::StoreError> {
                self.expire_logins($crate::codec::micros(now)).await
            }

            async fn create_session(
                &self,
                session: &expected_core::SessionRecord,
                max_sessions: Option<std::num::NonZeroUsize>,
            ) -> Result<expected_core::store::Inserted, expected_core::StoreError> {
                match (session.username(), max_sessions) {
                    // A user's session under a cap: the insert and the
                    // eviction in one step.
                    (Some(_), Some(max)) => self.insert_capped(session, max).await,
                    _ => self.insert_session(session).await,
                }
            }

            async fn create_grace_session(
                &self,
                session: &expected_core::SessionRecord,
                max_sessions: Option<std::num::NonZeroUsize>,
            ) -> Result<expected_core::store::GraceInserted, expected_core::StoreError> {
                if session.login().is_none() {
                    // No login can exist for a session that names none.
                    return Ok(expected_core::store::GraceInserted::LoginGone);
                }
                self.create_grace(session, max_sessions).await
            }

            async fn get_session(
                &self,
                user: Option<&expected_core::Username>,
                digest: &expected_core::SessionDigest,
            ) -> Result<Option<expected_core::SessionRecord>, expected_core::StoreError> {
                let row = $crate::error::retry(classify, || async {
                    Ok(sqlx::query($crate::common::sql(&self.sql.common.select_session))
                        .bind(owner(user))
                        .bind(&digest.as_bytes()[..])
                        .fetch_optional(&self.pool)
                        .await?)
                })
                .await?;
                let Some(row) = row else { return Ok(None) };
                let row = session_row(&row).map_err(|e| $crate::error::store_error(e, classify))?;
                row.into_session(user, digest).map(Some)
            }

            async fn save_session(
                &self,
                session: &expected_core::SessionRecord,
            ) -> Result<bool, expected_core::StoreError> {
                let data = $crate::codec::data_json(&session.data)?;
                let expires_at = $crate::codec::micros(session.expires_at);
                let done = $crate::error::retry(classify, || async {
                    Ok(sqlx::query($crate::common::sql(&self.sql.common.update_session))
                        .bind(data.as_str())
                        .bind(expires_at)
                        .bind(owner(session.username()))
                        .bind(&session.digest.as_bytes()[..])
                        .execute(&self.pool)
                        .await?)
                })
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn touch_session(
                &self,
                user: Option<&expected_core::Username>,
                digest: &expected_core::SessionDigest,
                expires_at: expected_core::time::OffsetDateTime,
            ) -> Result<bool, expected_core::StoreError> {
                let expires_at = $crate::codec::micros(expires_at);
                let done = $crate::error::retry(classify, || async {
                    Ok(sqlx::query($crate::common::sql(&self.sql.common.touch_session))
                        .bind(expires_at)
                        .bind(owner(user))
                        .bind(&digest.as_bytes()[..])
                        .execute(&self.pool)
                        .await?)
                })
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_session(
                &self,
                user: Option<&expected_core::Username>,
                digest: &expected_core::SessionDigest,
            ) -> Result<bool, expected_core::StoreError> {
                let done = $crate::error::retry(classify, || async {
                    Ok(sqlx::query($crate::common::sql(&self.sql.common.delete_session))
                        .bind(owner(user))
                        .bind(&digest.as_bytes()[..])
                        .execute(&self.pool)
                        .await?)
                })
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_expired_sessions(
                &self,
                now: expected_core::time::OffsetDateTime,
            ) -> Result<u64, expected_core::StoreError> {
                self.expire(&self.sql.common.expire_sessions, now).await
            }
        }

        impl $store {
            /// Deletes in batches of `self.batch` rows, one statement each,
            /// until a batch comes back short.
            async fn expire(
                &self,
                statement: &$crate::common::SqlText,
                now: expected_core::time::OffsetDateTime,
            ) -> Result<u64, expected_core::StoreError> {
                let now = $crate::codec::micros(now);
                let mut total = 0;
                loop {
                    let done = $crate::error::retry(classify, || async {
                        Ok(sqlx::query($crate::common::sql(statement)).bind(now).execute(&self.pool).await?)
                    })
                    .await?;
                    total += done.rows_affected();
                    if done.rows_affected() < u64::from(self.batch) {
                        return Ok(total);
                    }
                }
            }

            /// A plain create: insert-or-nothing, or a duplicate key caught.
            async fn create(
                &self,
                query: sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments>,
            ) -> Result<expected_core::store::Inserted, $crate::error::Failure> {
                use expected_core::store::Inserted;
                match query.execute(&self.pool).await {
                    Ok(done) if done.rows_affected() == 0 => Ok(Inserted::AlreadyExists),
                    Ok(_) => Ok(Inserted::Created),
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                        Ok(Inserted::AlreadyExists)
                    }
                    Err(error) => Err(error.into()),
                }
            }

            async fn insert_login(
                &self,
                login: &expected_core::Login,
            ) -> Result<expected_core::store::Inserted, expected_core::StoreError> {
                let values = $crate::codec::LoginValues::of(login);
                $crate::error::retry(classify, || {
                    let query = sqlx::query($crate::common::sql(&self.sql.common.insert_login));
                    self.create($crate::common::bind_login!(query, username(&login.username), &values))
                })
                .await
            }

            async fn insert_session(
                &self,
                session: &expected_core::SessionRecord,
            ) -> Result<expected_core::store::Inserted, expected_core::StoreError> {
                let values = $crate::codec::SessionValues::of(session)?;
                $crate::error::retry(classify, || {
                    let query = sqlx::query($crate::common::sql(&self.sql.common.insert_session));
                    self.create($crate::common::bind_session!(query, owner(values.owner), &values))
                })
                .await
            }
        }
    };
}
pub(crate) use store_impl;

/// Statements of the transactional rotation and user deletion, shared by
/// MySQL and SQLite (neither can modify two tables in one statement with
/// `RETURNING`).
#[cfg(any(feature = "mysql", feature = "sqlite"))]
#[derive(Debug)]
pub(crate) struct TxSql {
    pub(crate) rotate_cas: SqlText,
    pub(crate) rotate_replaced: SqlText,
    pub(crate) rotate_bind: SqlText,
    pub(crate) login_exists: SqlText,
    pub(crate) sessions_beyond: SqlText,
    pub(crate) evict_sessions: SqlText,
    pub(crate) user_serials: SqlText,
    pub(crate) delete_user_logins: SqlText,
    pub(crate) delete_user_sessions: SqlText,
}

/// The start of a `DELETE` of sessions (as `s`) found through their
/// `(username, login_serial)` index: on MySQL the multi-table form, the only
/// one that takes an index hint (`FORCE INDEX`, the index named as in
/// `schema.rs`).
#[cfg(feature = "mysql")]
pub(crate) fn delete_by_login(backend: Backend, tables: &Tables) -> String {
    let sessions = backend.quote(tables.sessions());
    if backend == Backend::MySql {
        let index = backend.quote(&crate::schema::sessions_login_index(tables));
        format!("DELETE s FROM {sessions} AS s FORCE INDEX ({index})")
    } else {
        format!("DELETE FROM {sessions} AS s")
    }
}

#[cfg(any(feature = "mysql", feature = "sqlite"))]
impl TxSql {
    pub(crate) fn new(backend: Backend, tables: &Tables) -> Self {
        let p = |n| backend.param(n);
        let logins = backend.quote(tables.logins());
        let sessions = backend.quote(tables.sessions());
        let text = |s: String| -> SqlText { s.into() };
        // SQLite's BEGIN IMMEDIATE already excludes every other writer.
        let lock = if backend == Backend::MySql { " FOR UPDATE" } else { "" };
        Self {
            // The compare-and-swap. It leaves session_digest alone: the old
            // value names the session to delete, and the row is locked by
            // this transaction from here on. authenticated_at is not set: a
            // rotation never changes it.
            rotate_cas: text(format!(
                "UPDATE {logins} SET token = {}, previous_token = {}, previous_rotated_at = {}, \
                 previous_sealed = {}, last_used_at = {}, expires_at = {}, client_ip = {}, user_agent = {} \
                 WHERE username = {} AND serial = {} AND token = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(8),
                p(9),
                p(10),
                p(11)
            )),
            // Every session of the login but the new one ($3): the bound one
            // and every one it opened (a grace session, a cycled one, a
            // copy), read by a plain query (on MySQL at READ COMMITTED, a
            // consistent read that locks nothing) and then deleted one by
            // one by the primary key (`evict_sessions`). A DELETE that finds
            // its rows through the `(username, login_serial)` index locks
            // the index record past the range, which may be another device's
            // session, so it waits on that device's rotation or deletion
            // (and two rotations of one user deadlocked); a DELETE by the
            // whole primary key locks exactly its row. The login's row is
            // locked by the CAS, and every writer of a session bound to it
            // (a rotation, a grace session) takes that lock first, so the
            // read misses none of theirs; a session cycled at this very
            // instant may be missed, as PostgreSQL's DELETE would miss it.
            rotate_replaced: text(format!(
                "SELECT digest FROM {sessions} WHERE username = {} AND login_serial = {} AND digest <> {} \
                 UNION SELECT session_digest FROM {logins} WHERE username = {} AND serial = {} \
                 AND session_digest IS NOT NULL AND session_digest <> {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6)
            )),
            rotate_bind: text(format!(
                "UPDATE {logins} SET session_digest = {} WHERE username = {} AND serial = {}",
                p(1),
                p(2),
                p(3)
            )),
            login_exists: text(format!(
                "SELECT 1 FROM {logins} WHERE username = {} AND serial = {}",
                p(1),
                p(2)
            )),
            // The cap, inside the transaction that created the session $2
            // (visible here, never deleted): the user's other sessions but
            // the $3 that expire last. The user's rows are a range of the
            // primary key, at most the cap and one once the cap holds. A
            // plain read (on MySQL at READ COMMITTED, a consistent read that
            // locks nothing), almost always empty; only what it finds is
            // deleted, by the primary key, so that a user's creations under
            // the cap lock none of each other's rows. SQLite takes -1 as no
            // limit.
            sessions_beyond: text(format!(
                "SELECT digest FROM {sessions} WHERE username = {} AND digest <> {} \
                 ORDER BY expires_at DESC LIMIT {} OFFSET {}",
                p(1),
                p(2),
                if backend == Backend::MySql { "18446744073709551615" } else { "-1" },
                p(3)
            )),
            evict_sessions: text(format!(
                "DELETE FROM {sessions} WHERE username = {} AND digest = {}",
                p(1),
                p(2)
            )),
            // A user deletion keeps the login and the session it is given, or
            // none when they are NULL (`delete_user`). The logins it deletes
            // are read (and on MySQL locked: a rotation of one of them waits,
            // or is waited for, so its new session is deleted too) first.
            user_serials: text(format!(
                "SELECT serial FROM {logins} WHERE username = {} AND NOT ({}){lock}",
                p(1),
                backend.same("serial", &p(2))
            )),
            delete_user_logins: text(format!(
                "DELETE FROM {logins} WHERE username = {} AND NOT ({})",
                p(1),
                backend.same("serial", &p(2))
            )),
            delete_user_sessions: text(format!(
                "DELETE FROM {sessions} WHERE username = {} AND NOT ({})",
                p(1),
                backend.same("digest", &p(2))
            )),
        }
    }
}

/// Expands, in the MySQL and SQLite modules (whose store has `sql.tx`, a
/// `begin` method opening a write transaction and a `begin_session_write`
/// one opening the write transaction of a rotation or a session's creation),
/// to `rotate`, `create_grace` and `remove_user` as transactions.
#[cfg(any(feature = "mysql", feature = "sqlite"))]
macro_rules! tx_impl {
    ($store:ty) => {
        impl $store {
            async fn rotate(
                &self,
                rotation: &expected_core::store::Rotation,
            ) -> Result<expected_core::store::Rotated, expected_core::StoreError> {
                use expected_core::store::Rotated;
                let session = $crate::codec::SessionValues::of(&rotation.session)?;
                let client_ip = rotation.client.ip.map(|ip| ip.to_string());
                let user = username(&rotation.username);
                let serial = &rotation.serial.as_bytes()[..];
                $crate::error::retry(classify, || async {
                    let mut tx = self.begin_session_write().await?;
                    let cas = sqlx::query($crate::common::sql(&self.sql.tx.rotate_cas))
                        .bind(&rotation.token.as_bytes()[..])
                        .bind(&rotation.previous.digest.as_bytes()[..])
                        .bind($crate::codec::micros(rotation.previous.rotated_at))
                        .bind(&rotation.previous.sealed.as_bytes()[..])
                        .bind($crate::codec::micros(rotation.last_used_at))
                        .bind($crate::codec::micros(rotation.expires_at))
                        .bind(client_ip.as_deref())
                        .bind(rotation.client.user_agent.as_deref())
                        .bind(user)
                        .bind(serial)
                        .bind(&rotation.expected.as_bytes()[..])
                        .execute(&mut *tx)
                        .await?;
                    if cas.rows_affected() == 0 {
                        // The CAS matched nothing: not current, or no login.
                        let exists = sqlx::query($crate::common::sql(&self.sql.tx.login_exists))
                            .bind(user)
                            .bind(serial)
                            .fetch_optional(&mut *tx)
                            .await?;
                        tx.rollback().await?;
                        return Ok(if exists.is_some() { Rotated::NotCurrent } else { Rotated::NotFound });
                    }
                    if !self.insert_session_in(&mut tx, &session).await? {
                        tx.rollback().await?;
                        return Ok(Rotated::SessionExists);
                    }
                    let replaced: Vec<Vec<u8>> =
                        sqlx::query_scalar($crate::common::sql(&self.sql.tx.rotate_replaced))
                            .bind(user)
                            .bind(serial)
                            .bind(session.digest)
                            .bind(user)
                            .bind(serial)
                            .bind(session.digest)
                            .fetch_all(&mut *tx)
                            .await?;
                    for digest in &replaced {
                        sqlx::query($crate::common::sql(&self.sql.tx.evict_sessions))
                            .bind(user)
                            .bind(digest.as_slice())
                            .execute(&mut *tx)
                            .await?;
                    }
                    self.evict_in(&mut tx, &rotation.username, session.digest, rotation.max_sessions).await?;
                    sqlx::query($crate::common::sql(&self.sql.tx.rotate_bind))
                        .bind(session.digest)
                        .bind(user)
                        .bind(serial)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Rotated::Rotated)
                })
                .await
            }

            /// Deletes inside `tx` the user's sessions that expire first
            /// beyond `max`, counting `keep` (the session just created, which
            /// stays); nothing without a cap.
            async fn evict_in(
                &self,
                tx: &mut sqlx::Transaction<'static, Db>,
                user: &expected_core::Username,
                keep: &[u8],
                max: Option<std::num::NonZeroUsize>,
            ) -> Result<(), sqlx::Error> {
                let Some(others) = $crate::common::others_kept(max) else { return Ok(()) };
                let beyond: Vec<Vec<u8>> =
                    sqlx::query_scalar($crate::common::sql(&self.sql.tx.sessions_beyond))
                        .bind(username(user))
                        .bind(keep)
                        .bind(others)
                        .fetch_all(&mut **tx)
                        .await?;
                for digest in &beyond {
                    sqlx::query($crate::common::sql(&self.sql.tx.evict_sessions))
                        .bind(username(user))
                        .bind(digest.as_slice())
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// A user's session and the cap on the user's sessions, in one
            /// write transaction.
            async fn insert_capped(
                &self,
                session: &expected_core::SessionRecord,
                max: std::num::NonZeroUsize,
            ) -> Result<expected_core::store::Inserted, expected_core::StoreError> {
                use expected_core::store::Inserted;
                let values = $crate::codec::SessionValues::of(session)?;
                $crate::error::retry(classify, || async {
                    let mut tx = self.begin_session_write().await?;
                    if !self.insert_session_in(&mut tx, &values).await? {
                        tx.rollback().await?;
                        return Ok(Inserted::AlreadyExists);
                    }
                    if let Some(user) = values.owner {
                        self.evict_in(&mut tx, user, values.digest, Some(max)).await?;
                    }
                    tx.commit().await?;
                    Ok(Inserted::Created)
                })
                .await
            }

            /// Inserts a session inside `tx`: `false` when its key is taken
            /// (a duplicate key, or nothing inserted), for the caller to roll
            /// back.
            async fn insert_session_in(
                &self,
                tx: &mut sqlx::Transaction<'static, Db>,
                values: &$crate::codec::SessionValues<'_>,
            ) -> Result<bool, sqlx::Error> {
                let insert = sqlx::query($crate::common::sql(&self.sql.common.insert_session));
                match $crate::common::bind_session!(insert, owner(values.owner), values)
                    .execute(&mut **tx)
                    .await
                {
                    Ok(done) => Ok(done.rows_affected() > 0),
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(false),
                    Err(error) => Err(error),
                }
            }

            /// A grace session for a login that still exists, in one write
            /// transaction: binding it to the login first (on MySQL the row
            /// lock orders a racing delete of the login before or after us;
            /// SQLite serializes writers), then the insert, which a duplicate
            /// key rolls back with the binding.
            async fn create_grace(
                &self,
                session: &expected_core::SessionRecord,
                max_sessions: Option<std::num::NonZeroUsize>,
            ) -> Result<expected_core::store::GraceInserted, expected_core::StoreError> {
                use expected_core::store::GraceInserted;
                let values = $crate::codec::SessionValues::of(session)?;
                let Some(serial) = values.login_serial else { return Ok(GraceInserted::LoginGone) };
                $crate::error::retry(classify, || async {
                    let mut tx = self.begin_session_write().await?;
                    let bound = sqlx::query($crate::common::sql(&self.sql.tx.rotate_bind))
                        .bind(values.digest)
                        .bind(owner(values.owner))
                        .bind(serial)
                        .execute(&mut *tx)
                        .await?;
                    if bound.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(GraceInserted::LoginGone);
                    }
                    if !self.insert_session_in(&mut tx, &values).await? {
                        tx.rollback().await?;
                        return Ok(GraceInserted::AlreadyExists);
                    }
                    if let Some(user) = values.owner {
                        self.evict_in(&mut tx, user, values.digest, max_sessions).await?;
                    }
                    tx.commit().await?;
                    Ok(GraceInserted::Created)
                })
                .await
            }

            /// Deletes the user's logins but `keep.login` and sessions but
            /// `keep.session`; everything when `keep` is `None`.
            async fn remove_user(
                &self,
                user: &expected_core::Username,
                keep: Option<&expected_core::store::Keep>,
            ) -> Result<expected_core::store::Deleted, expected_core::StoreError> {
                let kept_login =
                    keep.and_then(|keep| keep.login.as_ref()).map(|serial| &serial.as_bytes()[..]);
                let kept_session = keep.map(|keep| &keep.session.as_bytes()[..]);
                let (serials, sessions) = $crate::error::retry(classify, || async {
                    let mut tx = self.begin().await?;
                    let serials: Vec<Vec<u8>> =
                        sqlx::query_scalar($crate::common::sql(&self.sql.tx.user_serials))
                            .bind(username(user))
                            .bind(kept_login)
                            .fetch_all(&mut *tx)
                            .await?;
                    let sessions = sqlx::query($crate::common::sql(&self.sql.tx.delete_user_sessions))
                        .bind(username(user))
                        .bind(kept_session)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query($crate::common::sql(&self.sql.tx.delete_user_logins))
                        .bind(username(user))
                        .bind(kept_login)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok((serials, sessions.rows_affected()))
                })
                .await?;
                let serials =
                    serials.into_iter().map($crate::codec::serial_from).collect::<Result<_, _>>()?;
                Ok(expected_core::store::Deleted::new(serials, sessions))
            }
        }
    };
}
#[cfg(any(feature = "mysql", feature = "sqlite"))]
pub(crate) use tx_impl;
