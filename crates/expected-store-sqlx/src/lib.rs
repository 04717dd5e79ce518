//! PostgreSQL, MySQL/MariaDB and SQLite stores for [`expected`](expected_core)
//! (persistent "remember me" logins), on [sqlx](https://docs.rs/sqlx) 0.9 and
//! tokio.
//!
//! Each store implements the whole [`Store`](expected_core::Store) contract
//! and passes the `expected-conformance` suite against a real server:
//!
//! | feature    | store           | for                            |
//! |------------|-----------------|--------------------------------|
//! | `postgres` | `PgStore`       | PostgreSQL 12+                 |
//! | `mysql`    | `MySqlStore`    | MySQL 8, MariaDB 10.5+         |
//! | `sqlite`   | `SqliteStore`   | SQLite (bundled)               |
//! | `cli`      | `expected-sqlx` | the migration command          |
//!
//! No feature is on by default: enable the backends you use. sqlx itself is
//! built without default features (no macros, no TLS, no `migrate`); to reach
//! a server over TLS, depend on [`sqlx`] yourself with the TLS feature you
//! want (`sqlx = { version = "0.9", features = ["tls-rustls"] }`): Cargo
//! unifies the features. This crate re-exports the [`sqlx`] it uses.
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use expected_core::{Config, Expected, Presented, Username};
//! use expected_store_sqlx::PgStore;
//! use expected_store_sqlx::sqlx::postgres::PgPoolOptions;
//!
//! let pool = PgPoolOptions::new().max_connections(20).connect("postgres://app@db/app").await?;
//! let store = PgStore::new(pool);
//! store.migrate().await?; // idempotent; or run `expected-sqlx migrate`, or ship schema/postgres.sql
//!
//! let engine = Expected::new(store, Config::default());
//! let alice = Username::new("alice")?;
//! let registration = engine.register(&alice, true, &Presented::default()).await?;
//! assert!(registration.serial.is_some());
//! # Ok(()) }
//! ```
//!
//! # Tables
//!
//! Three tables, named by [`Tables`]: by default `expected_logins`,
//! `expected_sessions` and `expected_migrations`. Use
//! [`Tables::with_prefix`] (or [`Tables::new`]) and the stores'
//! `with_tables` constructors to rename them; names are validated as
//! identifiers (`[a-z_][a-z0-9_]*`, at most 40 characters) and always quoted.
//! To put them in a PostgreSQL schema, set the pool's `search_path`
//! (`PgConnectOptions::options([("search_path", "auth")])`).
//!
//! What is stored:
//!
//! - timestamps as `BIGINT` **microseconds since the Unix epoch, UTC**: exact
//!   for the contract's microsecond timestamps, totally ordered and index
//!   friendly, the same on every backend (`to_timestamp(expires_at / 1e6)` on
//!   PostgreSQL, `FROM_UNIXTIME(expires_at / 1000000)` on MySQL,
//!   `datetime(expires_at / 1000000, 'unixepoch')` on SQLite read them);
//! - serials and digests as raw bytes (`BYTEA`, `BINARY(n)`, `BLOB`); only
//!   SHA-256 digests of tokens and session ids, never the secrets;
//! - usernames as text (`VARBINARY(255)` on MySQL, compared byte for byte:
//!   `alice`, `Alice` and `alice ` are three users);
//! - session data as JSON text (`JSON` on PostgreSQL, which keeps the text
//!   exactly as written, unlike `JSONB`; `LONGTEXT` on MySQL; `TEXT` on SQLite);
//! - the client IP address as text.
//!
//! Indexes: the primary keys `(username, serial)` and `(username, digest)`
//! serve every per-user operation; `(username, login_serial)` on sessions
//! serves deleting a login's sessions; `expires_at` on both tables serves
//! cleaning.
//!
//! # Migrations
//!
//! The schema is embedded and versioned ([`Tables::migrations`]). Three ways
//! to apply it:
//!
//! - `store.migrate().await` (every store has it): creates what is missing
//!   and records each applied version in the crate's **own** migrations
//!   table, never sqlx's `_sqlx_migrations`, so it cannot clash with the
//!   application's own sqlx migrations. Idempotent, and safe to run from many
//!   processes at once (PostgreSQL: a transaction-scoped advisory lock and
//!   transactional DDL; MySQL: `GET_LOCK`; SQLite: `BEGIN IMMEDIATE`).
//! - the command line, built with the `cli` feature:
//!
//!   ```text
//!   cargo run -p expected-store-sqlx --features cli,postgres --bin expected-sqlx -- \
//!       migrate --database-url postgres://app@db/app [--table-prefix auth_]
//!   expected-sqlx schema --backend mysql [--table-prefix auth_]   # prints the SQL
//!   ```
//!
//! - your own tooling: [`Tables::schema_sql`] renders the script below for
//!   any table names; the default-named scripts ship in the crate's
//!   `schema/` directory. Every statement is idempotent, and the script marks
//!   version 1 applied so that a later `migrate()` does nothing.
//!
//! ## PostgreSQL
//!
//! ```sql
#![doc = include_str!("../schema/postgres.sql")]
//! ```
//!
//! ## MySQL / MariaDB
//!
//! ```sql
#![doc = include_str!("../schema/mysql.sql")]
//! ```
//!
//! ## SQLite
//!
//! ```sql
#![doc = include_str!("../schema/sqlite.sql")]
//! ```
//!
//! # Round trips
//!
//! What each operation sends, per backend. "1" is one statement in one round
//! trip; a transaction's `BEGIN` and `COMMIT` are round trips of their own.
//! SQLite has no network: there the numbers count statements handed to
//! sqlx's SQLite worker thread.
//!
//! | operation                 | PostgreSQL | MySQL / MariaDB | SQLite |
//! |---------------------------|------------|-----------------|--------|
//! | `create_login`            | 1 (`INSERT … ON CONFLICT DO NOTHING`) | 1 (`INSERT`, duplicate key caught) | 1 (as PostgreSQL) |
//! | `get_login`, `list_logins`| 1          | 1               | 1      |
//! | `rotate_login`            | **1** (see below); +1 read in a lost race | 6: `BEGIN`, CAS `UPDATE`, `INSERT` session, `DELETE` old session, `UPDATE` binding, `COMMIT`; refused: 4 | as MySQL, with `BEGIN IMMEDIATE` |
//! | `delete_login`            | 1 (CTE); +1 if the bound session was not among those deleted | 1 (multi-table `DELETE`); +1 when the login is gone, for the sessions it opened | 4: `BEGIN IMMEDIATE`, 2 `DELETE`s, `COMMIT` |
//! | `delete_user`             | 1 (CTE); +1 if a bound session was not among those deleted | 4: `BEGIN`, 2 `DELETE`s, `COMMIT` | 4 (as MySQL) |
//! | `delete_expired_logins`   | 1 per batch (CTE: logins and their sessions) | 4 per batch: `BEGIN`, `SELECT … FOR UPDATE`, multi-table `DELETE`, `COMMIT` | 4 per batch: `BEGIN IMMEDIATE`, 2 `DELETE`s, `COMMIT` |
//! | `delete_expired_sessions` | 1 per batch | 1 per batch    | 1 per batch |
//! | `create_session`          | 1          | 1               | 1      |
//! | `get_session`, `save_session`, `touch_session`, `delete_session` | 1 | 1 | 1 |
//!
//! A cleaning call runs batches until one comes back short, so it costs one
//! more batch than `n / batch` when `n` is a multiple of the batch size.
//!
//! **Rotation** is always a compare-and-swap: an `UPDATE … WHERE username = ?
//! AND serial = ? AND token = ?` of the login, never a read followed by a
//! write.
//!
//! - On PostgreSQL, one statement does everything: its CTEs run the
//!   conditional `UPDATE` (refused if the new session digest is taken), delete
//!   the old bound session and insert the new one, and report what the
//!   snapshot saw (login found? token current? digest taken?). When the CAS
//!   matched nothing, that report answers `NotFound`, `NotCurrent` or
//!   `SessionExists` at once; only when the login looked current but a
//!   concurrent rotation or deletion got there first does a follow-up `SELECT`
//!   tell `NotCurrent` from `NotFound`. A digest taken concurrently (a unique
//!   violation) answers `SessionExists`; the statement wrote nothing.
//! - MySQL has no `UPDATE … RETURNING`, so the rotation is a transaction: the
//!   CAS `UPDATE` (its rows-affected count says whether it won; the row stays
//!   locked), the new session's `INSERT` (a duplicate key rolls back and
//!   answers `SessionExists`), the `DELETE` of the old bound session (read
//!   from the still-unchanged `session_digest` column), the `UPDATE` binding
//!   the new session, `COMMIT`. When the CAS matched nothing, one `SELECT`
//!   tells `NotCurrent` from `NotFound`, then `ROLLBACK`.
//! - SQLite runs the same statements as MySQL in a `BEGIN IMMEDIATE`
//!   transaction (writers queue on the database lock for the busy timeout).
//!
//! **Deleting a login or a user while it is being rotated** must not leave
//! the rotation's new session behind. MySQL and SQLite lock (or read the
//! latest rows) so it cannot happen. A PostgreSQL statement reads one
//! snapshot, so a session committed by a rotation it waited for is invisible
//! to it: the statement returns the deleted logins' bound session digests,
//! and if one of them was not deleted a second statement, with a fresh
//! snapshot, deletes it (it also runs, harmlessly, when that session had
//! simply ended earlier).
//!
//! **Sessions never outlive their login.** `delete_login` deletes the
//! login's bound session and every session with `login_serial` equal to its
//! serial, even when the login itself is already gone, and
//! `delete_expired_logins` does the same for every login it deletes.
//!
//! **Cleaning** deletes at most [`DEFAULT_BATCH`] logins or sessions per
//! batch (`with_batch_size` changes it), found by the `expires_at` index,
//! looping until a batch comes back short, so it can run while serving. On
//! PostgreSQL a batch skips rows being written (`FOR UPDATE SKIP LOCKED`) and
//! rechecks `expires_at` on rows changed meanwhile; on MySQL a batch locks
//! its logins (`SELECT … FOR UPDATE`) before deleting exactly those and their
//! sessions.
//!
//! # Errors and concurrency
//!
//! Failures are [`StoreError`](expected_core::StoreError)s, never panics:
//! connection, I/O, TLS and pool errors (and SQLSTATE class 08, PostgreSQL's
//! shutdown codes, SQLite's busy database) are `Unavailable`; rows that do not
//! decode are `Corrupt`; the rest is `Backend`.
//!
//! Deadlocks and serialization failures (PostgreSQL `40001`/`40P01`,
//! MySQL/MariaDB `1213` and `1020`) and a busy SQLite are retried inside the
//! store, up to 12 attempts with a short jittered pause: each attempt is one
//! statement or one transaction, so a failed one changed nothing. Many
//! simultaneous rotations of one login, each on its own pooled connection,
//! give exactly one `Rotated` and no error.
//!
//! # SQLite notes
//!
//! Use WAL mode for a file read while written (`SqliteStore::connect`
//! does). `sqlite::memory:` gives each pool its own database shared by the
//! pool's connections, which lives as long as one of them: set
//! `min_connections(1)` and no idle timeout or max lifetime.
//!
//! # Minimum Rust version
//!
//! 1.94, sqlx 0.9's.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod codec;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod common;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod error;
mod schema;
mod tables;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use schema::Migration;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use tables::{Backend, MAX_TABLE_NAME_LEN, TableNameError, Tables};

/// The sqlx this crate is built on, for its pool types and options.
pub use sqlx;

/// Rows deleted by one cleaning statement unless set otherwise.
pub const DEFAULT_BATCH: u32 = 1000;
