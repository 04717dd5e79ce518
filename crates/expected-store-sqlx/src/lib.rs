//! SQLite, PostgreSQL and MySQL/MariaDB stores for [`expected`](expected_core)
//! (persistent "remember me" logins), on [sqlx](https://docs.rs/sqlx) 0.9 and
//! tokio.
//!
//! Each store implements the whole [`Store`](expected_core::Store) contract
//! and passes the `expected-conformance` suite against a real server:
//!
//! | feature    | store           | for                            |
//! |------------|-----------------|--------------------------------|
//! | `sqlite`   | `SqliteStore`   | SQLite (bundled): one machine, no server |
//! | `postgres` | `PgStore`       | PostgreSQL 12+                 |
//! | `mysql`    | `MySqlStore`    | MySQL 8, MariaDB 10.5+         |
//! | `cli`      | `expected-sqlx` | migrations and the operator's commands |
//!
//! No feature is on by default: enable the backends you use. sqlx itself is
//! built without default features (no macros, no TLS, no `migrate`); to reach
//! a server over TLS, depend on [`sqlx`] yourself with the TLS feature you
//! want (`sqlx = { version = "0.9", features = ["tls-rustls"] }`): Cargo
//! unifies the features. This crate re-exports the [`sqlx`] it uses.
//!
//! SQLite, the embedded default: a file next to the application (its writes
//! take turns on one writer: see [SQLite](#sqlite-one-writer-and-durability)).
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use expected_core::{Config, Expected, Presented, Username};
//! use expected_store_sqlx::SqliteStore;
//!
//! let store = SqliteStore::connect("sqlite://app.db").await?; // created if missing, WAL, synchronous = FULL
//! store.migrate().await?; // idempotent; or run `expected-sqlx migrate`, or ship schema/sqlite.sql
//!
//! let engine = Expected::new(store, Config::default());
//! let alice = Username::new("alice")?;
//! let registration = engine.register(&alice, true, &Presented::default()).await?;
//! assert!(registration.serial.is_some());
//! # Ok(()) }
//! ```
//!
//! PostgreSQL (MySQL is the same with `MySqlStore`), with a pool you tune,
//! starting from the store's own options ([`pool_options`]: sqlx's, but a
//! connection is pinged before use only after a second idle, not before
//! every statement):
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use expected_core::{Config, Expected};
//! use expected_store_sqlx::{PgStore, pool_options};
//!
//! let pool = pool_options().max_connections(20).connect("postgres://app@db/app").await?;
//! let store = PgStore::new(pool);
//! store.migrate().await?;
//! let engine = Expected::new(store, Config::default());
//! # let _ = engine;
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
//!   friendly, the same on every backend (`datetime(expires_at / 1000000,
//!   'unixepoch')` on SQLite, `to_timestamp(expires_at / 1e6)` on PostgreSQL,
//!   `FROM_UNIXTIME(expires_at / 1000000)` on MySQL read them);
//! - serials and digests as raw bytes (`BLOB`, `BYTEA`, `BINARY(n)`); only
//!   SHA-256 digests of tokens and session ids, never the secrets;
//! - usernames as text (`VARBINARY(255)` on MySQL, compared byte for byte:
//!   `alice`, `Alice` and `alice ` are three users);
//! - **anonymous sessions under the username `''`**, which is never a valid
//!   [`Username`](expected_core::Username): the `(username, digest)` primary
//!   key then keys a user's session and an anonymous one alike, an anonymous
//!   lookup (`username = ''`) can never find a user's session nor the other
//!   way round, and every per-user statement (`username = ?`) leaves them
//!   alone. An anonymous session has `login_serial`, `method` and
//!   `authenticated_at` `NULL`;
//! - a user's session's `method` as text (`password` or `remembered`) and its
//!   `authenticated_at`, a login's `authenticated_at`;
//! - session data as JSON text (`TEXT` on SQLite; `JSON` on PostgreSQL, which
//!   keeps the text exactly as written, unlike `JSONB`; `LONGTEXT` on MySQL);
//! - the client IP address as text.
//!
//! Indexes: the primary keys `(username, serial)` and `(username, digest)`
//! serve every per-user operation and every session lookup, anonymous ones
//! included; `(username, login_serial)` on sessions serves deleting a login's
//! sessions; `expires_at` on both tables serves cleaning. Ending a login
//! (`delete_login`, a rotation) looks its sessions up by
//! `(username, login_serial)` and its bound one by the primary key, each
//! part on its own (an `OR` of the two has PostgreSQL and SQLite read every
//! session of the user; MySQL's `delete_login` merges the two indexes, and
//! its rotation reads the two parts with a `UNION`, then deletes by key), so
//! its cost is what the login holds, and a serial that does not exist costs
//! a lookup. The cap
//! on a user's sessions ranks the user's rows by `expires_at` within their
//! primary-key range: at most the cap and one once the cap holds, so no
//! index of its own is needed (and no migration).
//!
//! # Migrations
//!
//! The schema is embedded and versioned ([`Tables::migrations`]):
//!
//! - **version 1**: the two tables and their indexes;
//! - **version 2**: `authenticated_at` on logins, `method` and
//!   `authenticated_at` on sessions. It upgrades a version-1 database in
//!   place, keeping every login and session, with the conservative meaning of
//!   what version 1 did not record: a login was last authenticated by
//!   password when it was registered (`authenticated_at = created_at`), and a
//!   session counts as opened by the remember-me cookie (`method =
//!   'remembered'`, `authenticated_at = created_at`), so that no upgraded
//!   session is "fresh" until the password is confirmed on it.
//!
//! The version-2 columns are nullable (an anonymous session has no method)
//! and have no default. A version-1 store still running during a rolling
//! upgrade keeps working: the rows it writes lack them, and read back with
//! the same version-1 meaning. A user's session with only one of `method`
//! and `authenticated_at`, or an anonymous one with a `login_serial`,
//! `method` or `authenticated_at`, reads as `Corrupt`.
//!
//! Three ways to apply the schema:
//!
//! - `store.migrate().await` (every store has it): creates what is missing,
//!   upgrades what is older, and records each applied version in the crate's
//!   **own** migrations table, never sqlx's `_sqlx_migrations`, so it cannot
//!   clash with the application's own sqlx migrations. Idempotent, and safe
//!   to run from many processes at once (SQLite: `BEGIN IMMEDIATE`, the whole
//!   run one transaction; PostgreSQL: a transaction-scoped advisory lock and
//!   transactional DDL, likewise all or nothing; MySQL: `GET_LOCK`, and since
//!   MySQL commits DDL at once, every statement can run again after a run cut
//!   short: MySQL 8 has no `ADD COLUMN IF NOT EXISTS`, so version 2 prepares
//!   each `ALTER TABLE` only when `information_schema` lacks the column).
//! - the command line, built with the `cli` feature:
//!
//!   ```text
//!   cargo run -p expected-store-sqlx --features cli,sqlite --bin expected-sqlx -- \
//!       migrate --database-url sqlite://app.db [--table-prefix auth_]
//!   expected-sqlx schema --backend mysql [--table-prefix auth_]   # prints the SQL
//!   ```
//!
//!   The same command answers an incident without code (the commands of
//!   `expected_core::admin`; exit codes 0 done, 1 store failed, 2 usage, 3
//!   nothing found):
//!
//!   ```text
//!   expected-sqlx logins list alice [--json]      # serial, created, last used, IP, user agent
//!   expected-sqlx logins revoke alice SERIAL      # one device
//!   expected-sqlx logins revoke alice --all       # every login and session: log out everywhere
//!   expected-sqlx sessions count                  # live sessions, users' and visitors'
//!   expected-sqlx clean                           # one cleaning pass
//!   ```
//!
//! - your own tooling: [`Tables::schema_sql`] renders the script below for
//!   any table names; the default-named scripts ship in the crate's
//!   `schema/` directory. It runs every migration in order, so it creates a
//!   new database or upgrades a version-1 one, and records the versions so
//!   that a later `migrate()` does nothing. Running it again changes nothing;
//!   on SQLite, which has no `ADD COLUMN IF NOT EXISTS`, the version-2
//!   `ALTER TABLE`s then fail with "duplicate column name" (the backfills
//!   only touch `NULL`s, so the rest is harmless).
//!
//! ## SQLite
//!
//! ```sql
#![doc = include_str!("../schema/sqlite.sql")]
//! ```
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
//! # Round trips
//!
//! What each operation sends, per backend. "1" is one statement in one round
//! trip; a transaction's `BEGIN` and `COMMIT` are round trips of their own.
//! SQLite has no network: there the numbers count statements handed to
//! sqlx's SQLite worker thread.
//!
//! | operation                 | SQLite | PostgreSQL | MySQL / MariaDB |
//! |---------------------------|--------|------------|-----------------|
//! | `create_login`            | 1 (`INSERT … ON CONFLICT DO NOTHING`) | 1 (as SQLite) | 1 (`INSERT`, duplicate key caught) |
//! | `get_login`, `list_logins`| 1      | 1          | 1               |
//! | `rotate_login`            | 4: `BEGIN IMMEDIATE`, CAS `UPDATE` (refused if the new session's digest is taken), one command of the `INSERT` session, the `DELETE` of the login's other sessions, the `DELETE` beyond the cap when one is given and the `UPDATE` binding, `COMMIT`; refused: 4 (a `SELECT` tells why, `ROLLBACK`) | **1** (see below); +1 read in a lost race | 7: `BEGIN` (at `READ COMMITTED`, in the round trip of `START TRANSACTION`), CAS `UPDATE`, `INSERT` session, a `SELECT` of the login's other sessions (the bound one, the ones it opened) and a `DELETE` by key of each (usually 1), `UPDATE` binding, `COMMIT`, and with a cap a `SELECT` of the sessions beyond it (and a `DELETE` of each found); refused: 4 |
//! | `rotate_current` (the optimistic cookie login) | the default: `get_login`, then `rotate_login` when it applies (1 + 4) | **1** (the `rotate_login` CTE, see below); +1 read in a lost race | the default (1 + 7) |
//! | `create_remembered` (a password login with "remember me") | the default: `create_login` (of the login unbound), `create_grace_session` (4: it creates the session and binds the login, as `create_session` under a session cap costs), then with a per-user login cap `list_logins` (1) | **1** (CTE, see below) | the default, as SQLite |
//! | `create_grace_session`    | 4: `BEGIN IMMEDIATE`, `UPDATE` binding (0 rows: no login, `ROLLBACK`), `INSERT` session, `COMMIT`, and with a cap a `SELECT` of the sessions beyond it (and a `DELETE` of each found) | 1 (CTE) | as SQLite, with `BEGIN` (at `READ COMMITTED`) |
//! | `delete_login`            | 4: `BEGIN IMMEDIATE`, 2 `DELETE`s, `COMMIT` | 1 (CTE); +1 if the bound session was not among those deleted | 1 (multi-table `DELETE`); +1 when the login is gone, for the sessions it opened |
//! | `delete_user`, `delete_user_except` | 5: `BEGIN IMMEDIATE`, `SELECT` the logins, 2 `DELETE`s, `COMMIT` | 1 (CTE); +1 if a deleted login's bound session was not among those deleted | 5, as SQLite, the logins read `FOR UPDATE` |
//! | `confirm_password`        | 4: `BEGIN IMMEDIATE`, `UPDATE` session, `UPDATE` login, `COMMIT` (3 without a login; unknown session: 3) | 1 (CTE) | 1 (multi-table `UPDATE`) |
//! | `delete_expired_logins`   | 4 per batch: `BEGIN IMMEDIATE`, 2 `DELETE`s (the logins' `… RETURNING`), `COMMIT` | 1 per batch (CTE: logins and their sessions) | 4 per batch: `BEGIN`, `SELECT … FOR UPDATE`, multi-table `DELETE`, `COMMIT` |
//! | `delete_expired_sessions` | 1 per batch | 1 per batch | 1 per batch  |
//! | `create_session`          | 1; a user's under a cap: 4 (`BEGIN IMMEDIATE`, `INSERT`, `SELECT` the sessions beyond the cap, `COMMIT`; and a `DELETE` of each found) | 1; a user's under a cap: 1 (CTE) | as SQLite, with `BEGIN` (at `READ COMMITTED`) |
//! | `get_session`, `save_session`, `touch_session`, `delete_session` | 1 | 1 | 1 |
//!
//! A cleaning call runs batches until one comes back short, so it costs one
//! more batch than `n / batch` when `n` is a multiple of the batch size.
//!
//! On top of these, sqlx checks each connection that comes back to its pool
//! with a ping: one more round trip per operation, off the caller's path (in
//! a task of sqlx's, though the connection is not lent again before it
//! ends). sqlx's default options ping once more before lending a
//! connection; the pools [`PgStore::connect`](crate::PgStore) and
//! [`MySqlStore::connect`](crate::MySqlStore) open ([`pool_options`]) ping
//! then only a connection idle for [`IDLE_BEFORE_PING`] or more.
//!
//! **Rotation** is always a compare-and-swap: an `UPDATE … WHERE username = ?
//! AND serial = ? AND token = ?` of the login, never a read followed by a
//! write. It stores the new session exactly as given (its method and
//! `authenticated_at` included) and never writes the login's
//! `authenticated_at`.
//!
//! - SQLite runs it as a `BEGIN IMMEDIATE` transaction on the store's one
//!   writer (the store's writes take turns in the process; another process's
//!   writer is waited for on the database lock, for the busy timeout). The
//!   CAS `UPDATE` comes first, refused if the new session's digest is taken
//!   (its rows-affected count says whether it won). Once it has won nothing
//!   else can fail for a reason to report (no other writer runs inside the
//!   transaction), so the rest is one command of several statements, one
//!   round trip to SQLite's thread: the new session's `INSERT`, the `DELETE`
//!   of every other session of the login (its `login_serial`, and the old
//!   bound one, read from the still-unchanged `session_digest` column), with
//!   a cap the `DELETE` of the user's sessions that expire first beyond it,
//!   and the `UPDATE` binding the new session; then `COMMIT`. When the CAS
//!   matched nothing, one `SELECT` tells `NotFound`, `NotCurrent` and
//!   `SessionExists` apart, then `ROLLBACK`.
//! - On PostgreSQL, one statement does everything: its CTEs run the
//!   conditional `UPDATE` (refused if the new session digest is taken), delete
//!   the login's other sessions, insert the new one and apply the cap (ranking
//!   the user's other sessions in the snapshot, the login's own left out),
//!   and report what the
//!   snapshot saw (login found? token current? digest taken?). When the CAS
//!   matched nothing, that report answers `NotFound`, `NotCurrent` or
//!   `SessionExists` at once; only when the login looked current but a
//!   concurrent rotation or deletion got there first does a follow-up `SELECT`
//!   tell `NotCurrent` from `NotFound`. A digest taken concurrently (a unique
//!   violation) answers `SessionExists`; the statement wrote nothing.
//! - MySQL has no `UPDATE … RETURNING` (nor several statements in one
//!   prepared command), so it runs a transaction of one statement a round
//!   trip: the CAS `UPDATE` (which locks the login row until `COMMIT`), the
//!   new session's `INSERT` (a duplicate key rolls back and answers
//!   `SessionExists`), a `SELECT` of the login's other sessions (the bound
//!   one, read from the still-unchanged `session_digest` column, and those
//!   it opened) and the `DELETE` of each by its primary key, with a cap the
//!   `SELECT` of the user's sessions that expire first beyond it and the
//!   `DELETE` of each, the `UPDATE` binding, `COMMIT`. When the CAS matched
//!   nothing, one `SELECT` tells `NotCurrent` from `NotFound`, then
//!   `ROLLBACK`. That transaction (and a session's creation under a cap, and
//!   a grace session's) runs at `READ COMMITTED`, so that it locks only the
//!   rows it writes: at InnoDB's default `REPEATABLE READ`, rotations of two
//!   devices of one user deadlocked on each other's sessions (the gaps and
//!   the scans of the user's rows), and 32 concurrent browsers on three
//!   users exhausted the retries of 25 of 4 315 cookie logins. Every write
//!   names its rows by the whole primary key (the sessions to delete are
//!   found by a plain read first: a `DELETE` through the `(username,
//!   login_serial)` index locks the index record past its range, another
//!   device's session), and the login row's lock orders the rotation with a
//!   racing deletion, which keeps the default level.
//!
//! **A cookie login** is one `rotate_current`. On PostgreSQL it is the rotation
//! statement above with the presented token's digest as the expected one and
//! two more conditions in the `UPDATE`'s `WHERE` (`expires_at > now`,
//! `created_at >= created_since`, bounds the engine computes), the new
//! session's `authenticated_at` taken from the row (`UPDATE … RETURNING`), and
//! the login's snapshot read as its answer when it did not apply (so a grace,
//! theft or expiry is judged without a second statement): **one statement per
//! cookie login**, where it was two (`get_login`, `rotate_login`). SQLite and
//! MySQL/MariaDB keep the trait's default, `get_login` then `rotate_login`:
//! their rotation is already a transaction of several round trips (no `UPDATE …
//! RETURNING`), so folding the read into it would save one of five commands
//! on SQLite, which has no network to save, and one of eight round trips on
//! MySQL, whose transaction the deadlock fix above has just reshaped; it is
//! left for later. (Each is a method of the crate's internal `Dialect` trait,
//! `rotate_current` and `create_remembered`, whose default is the contract's:
//! a backend that does one in fewer round trips overrides it.)
//!
//! **A password login with "remember me"** is one `create_remembered`, then
//! one `delete_login` per login the per-user cap (`max_logins_per_user`)
//! ends, chosen by the engine from the user's other logins that
//! `create_remembered` answers. On PostgreSQL `create_remembered` is one
//! statement: its CTEs insert the login (unless the session's digest is
//! taken, or its serial: `ON CONFLICT DO NOTHING`), the session only if the
//! login went in (a digest taken concurrently fails the statement with a
//! unique violation, writing nothing), apply the session cap, and answer the
//! user's other logins from the snapshot: **one statement under the login
//! cap, two for a user at it** (and `delete_login`), where it was three and
//! four (`create_login`, `create_session`, `list_logins`, `delete_login`;
//! `a_remembered_login_is_at_most_two_statements` in `tests/postgres.rs`
//! counts them in `pg_stat_database`). SQLite and MySQL/MariaDB keep the
//! trait's default, as for the cookie login: a user's session under a cap is
//! already a transaction of four round trips there, which the login's
//! `INSERT` and the listing would join for two saved of six (on MySQL a
//! transaction the deadlock fix has just reshaped), and SQLite has no network
//! to save. Without "remember me" a password login is one `create_session` on
//! every backend, as before.
//!
//! **Deleting a login or a user, or logging out the other devices, while a
//! login is being rotated** must not leave the rotation's new session behind.
//! SQLite serializes writers. MySQL locks the logins it deletes first
//! (`SELECT … FOR UPDATE`, or the multi-table `DELETE`'s own locks), so a
//! racing rotation either commits before (and its new session, read current,
//! is deleted) or finds its login gone. A PostgreSQL statement reads one
//! snapshot, so a session committed by a rotation it waited for is invisible
//! to it: the statement returns the deleted logins' bound session digests,
//! and if one of them was not deleted a second statement, with a fresh
//! snapshot, deletes the sessions those logins opened or were bound to (it
//! also runs, harmlessly, when such a session had simply ended earlier).
//! `delete_user` is `delete_user_except` keeping nothing: the same
//! statements, with the kept session and login bound as `NULL` and compared
//! null-safely (`IS`, `IS NOT DISTINCT FROM`, `<=>`).
//!
//! **Sessions never outlive their login.** `delete_login` deletes the
//! login's bound session and every session with `login_serial` equal to its
//! serial, even when the login itself is already gone, and
//! `delete_expired_logins` does the same for every login it deletes.
//!
//! **A grace session** (`create_grace_session`) is bound to its login
//! first: an `UPDATE` of the login's `session_digest`, whose row count says
//! whether the login exists, then the session's `INSERT`, in one transaction
//! (one statement on PostgreSQL). The `UPDATE` orders it with a racing
//! deletion of the login, as a rotation is: the deletion either comes first
//! (no row: `LoginGone`, nothing written) or waits and then deletes the
//! session too. On PostgreSQL the deletion's snapshot may not see the new
//! session, but it returns the login's bound digest, now the grace session's,
//! and its fresh-snapshot second statement ends it.
//!
//! **Confirming the password** writes the session first and the login only
//! if the session exists (in one statement, or one transaction on SQLite), so
//! an unknown session answers `false` and writes nothing.
//!
//! **Cleaning** deletes at most [`DEFAULT_BATCH`] logins or sessions per
//! batch (`with_batch_size` changes it), found by the `expires_at` index,
//! looping until a batch comes back short, so it can run while serving.
//! Anonymous sessions are cleaned like any other. On PostgreSQL a batch skips
//! rows being written (`FOR UPDATE SKIP LOCKED`) and rechecks `expires_at` on
//! rows changed meanwhile; on MySQL a batch locks its logins (`SELECT … FOR
//! UPDATE`) before deleting exactly those and their sessions, binding two
//! values per login, so a MySQL batch is at most
//! [`MySqlStore::MAX_BATCH`] (32 767) whatever `with_batch_size` asks: MySQL
//! takes at most 65 535 placeholders in a statement.
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
//! statement or one transaction, so a failed one changed nothing, and it
//! waits for no other operation meanwhile (a turn of SQLite's writer ends
//! before the pause). Many simultaneous rotations of one login, each on its
//! own pooled connection (on SQLite, each taking its turn on the writer),
//! give exactly one `Rotated` and no error.
//!
//! # SQLite: one writer, and durability
//!
//! SQLite lets one connection write at a time, so the store's writes take
//! turns on **one writer** in the process, in the order they came, and its
//! reads run in parallel on the pool (WAL mode: a read does not wait for a
//! commit). Pooled connections that each wrote competed for SQLite's lock
//! instead, and the losers slept in the busy handler: at 32 concurrent
//! cookie logins over HTTP the p99 fell from 87 ms to 15 ms, and
//! anonymous writes went 35 % faster (`docs/benchmarks.md`, "SQLite: one
//! writer").
//!
//! The writes that queue up on the store's own writer while one runs are
//! made durable together (**group commit**): they run in one transaction of
//! the writer's, each write's own transaction a savepoint in it, and the
//! last of them commits for all; none answers before that commit is on the
//! disk, and if it fails, all of them fail (nothing of theirs was kept). A
//! write that fails fails alone (its savepoint is rolled back) and the group
//! is committed then, before anyone writes in it again. So 32 connections
//! wait for one `fsync` or two rather than 32: at 32 concurrent cookie
//! logins over HTTP the rate rose 2.5 to 2.9 times and the p99 fell from
//! 36–53 ms to a median of 17 ms, on a disk where one connection alone
//! commits about 1 100 rotations a second (`docs/benchmarks.md`, "SQLite:
//! group commit").
//!
//! - `SqliteStore::connect(url)` and `SqliteStore::builder()` create the
//!   file if missing, use WAL, and open a pool of readers and a writer of the
//!   store's own (one connection, same options, held by the store);
//!   `SqliteStore::close` closes both.
//! - `SqliteStore::new(pool)` (and `with_tables`) on a pool of yours opens
//!   nothing more: its writes take turns on your pool's connections, so the
//!   pool's size, options and `close()` keep their meaning; each commits on
//!   its own (no group commit: a group holds one connection).
//! - Another process on the same file has its own writer: the two meet
//!   SQLite's lock, taken at once by `BEGIN IMMEDIATE`, waited for up to the
//!   busy timeout (sqlx's default 5 s) and retried.
//!
//! Commits are durable by default: WAL with `synchronous = FULL` (every
//! commit waits for the WAL to reach the disk). `synchronous = NORMAL` is an
//! opt-in (`SqliteStore::builder().synchronous(Synchronous::Normal)`): faster
//! commits that a power cut (not an application crash) may undo. A lost
//! rotation makes the browser's next cookie look stolen, and every login of
//! that user is revoked as a theft, unless token keys are configured
//! (`docs/protocol.md` §13), which heal up to `rollback_steps` (32) lost
//! rotations of a login. `Synchronous` states the trade-off.
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use expected_store_sqlx::{SqliteStore, Synchronous};
//!
//! let store = SqliteStore::builder()
//!     .synchronous(Synchronous::Normal) // with token keys configured
//!     .max_readers(16)
//!     .connect("sqlite://app.db")
//!     .await?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```
//!
//! `sqlite::memory:` gives each store (or pool) its own database shared by
//! its connections, which lives as long as one of them: a store from
//! `connect` keeps it alive with its writer; on a pool of yours, set
//! `min_connections(1)` and no idle timeout or max lifetime.
//!
//! # How the crate is built
//!
//! One store, [`SqlStore`], written once over a sealed SQL dialect (the
//! contract, constructors, batching, retries and migrations' bookkeeping);
//! `PgStore`, `MySqlStore` and `SqliteStore` name it on each dialect. What
//! is a backend's own (PostgreSQL's single-statement CTEs, MySQL's
//! multi-table `DELETE` and `UPDATE`, SQLite's `BEGIN IMMEDIATE` and its
//! writer, each one's transient errors and migration lock) is behind the
//! dialect, in the backend's module.
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
mod contract;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod dialect;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod driver;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod error;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod migrate;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod pool;
mod schema;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod statements;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod store;
mod tables;
#[cfg(any(feature = "mysql", feature = "sqlite"))]
mod transactional;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub use pool::{IDLE_BEFORE_PING, pool_options};
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use schema::Migration;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder, Synchronous};
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub use store::SqlStore;
pub use tables::{Backend, MAX_TABLE_NAME_LEN, TableNameError, Tables};

/// The sqlx this crate is built on, for its pool types and options.
pub use sqlx;

/// Rows deleted by one cleaning statement unless set otherwise.
pub const DEFAULT_BATCH: u32 = 1000;

/// This crate's README, compiled as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
