//! The statements the dialects share: built once per store from the table
//! names, with every value a bind parameter.

use std::sync::Arc;

use sqlx::AssertSqlSafe;

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
/// order (as [`Stmt::session`](crate::driver::Stmt::session) binds them).
pub(crate) const SESSION_COLUMNS: &str =
    "username, digest, login_serial, method, authenticated_at, data, created_at, expires_at";

/// The session columns read back (all but the key), in
/// [`SessionRow`](crate::codec::SessionRow) order, `data` as `{data}`.
fn session_read_columns(data: &str) -> String {
    format!("login_serial, method, authenticated_at, {data}, created_at, expires_at")
}

/// Statements whose logic is the same on every backend.
#[derive(Debug)]
pub struct CommonSql {
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

/// Statements of the transactions MySQL and SQLite share: a grace session,
/// the cap on a user's sessions, a user's deletion (neither can modify two
/// tables in one statement with `RETURNING`).
#[cfg(any(feature = "mysql", feature = "sqlite"))]
#[derive(Debug)]
pub(crate) struct TxSql {
    pub(crate) bind_session: SqlText,
    pub(crate) sessions_beyond: SqlText,
    pub(crate) delete_session_by_key: SqlText,
    pub(crate) user_serials: SqlText,
    pub(crate) delete_user_logins: SqlText,
    pub(crate) delete_user_sessions: SqlText,
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
            // Binds a session ($1) to its login (the grace session's
            // binding, before its insert).
            bind_session: text(format!(
                "UPDATE {logins} SET session_digest = {} WHERE username = {} AND serial = {}",
                p(1),
                p(2),
                p(3)
            )),
            // The cap, inside the transaction that created the session $2
            // (visible here, never deleted): the user's other sessions but
            // the $3 that expire last. The user's rows are a range of the
            // primary key, at most the cap and one once the cap holds. A
            // plain read (on MySQL at READ COMMITTED, a consistent read that
            // locks nothing), almost always empty; only what it finds is
            // deleted, by the primary key (`delete_session_by_key`), so that
            // a user's creations under the cap lock none of each other's
            // rows. SQLite takes -1 as no limit.
            sessions_beyond: text(format!(
                "SELECT digest FROM {sessions} WHERE username = {} AND digest <> {} \
                 ORDER BY expires_at DESC LIMIT {} OFFSET {}",
                p(1),
                p(2),
                if backend == Backend::MySql { "18446744073709551615" } else { "-1" },
                p(3)
            )),
            // One session, by the whole primary key: on MySQL the lock of
            // exactly its row.
            delete_session_by_key: text(format!(
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
