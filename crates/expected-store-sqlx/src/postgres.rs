//! The PostgreSQL store.

use std::sync::Arc;

use expected_core::store::{Deleted, Rotated, Rotation};
use expected_core::{Serial, StoreError, Username};
use sqlx::Row as _;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::DEFAULT_BATCH;
use crate::codec::{SessionValues, micros};
use crate::common::{CommonSql, SqlText, sql, store_impl};
use crate::error::{Failure, Transience, retry, store_error};
use crate::tables::{Backend, Tables};

type Db = sqlx::Postgres;

fn classify(error: &dyn DatabaseError) -> Transience {
    match error.code().as_deref() {
        // serialization_failure, deadlock_detected
        Some("40001" | "40P01") => Transience::Conflict,
        _ => Transience::No,
    }
}

fn username(user: &Username) -> &str {
    user.as_str()
}

#[derive(Debug)]
struct Sql {
    common: CommonSql,
    rotate: SqlText,
    login_exists: SqlText,
    delete_login: SqlText,
    delete_login_sessions: SqlText,
    delete_user: SqlText,
    delete_user_sessions: SqlText,
    expire_logins: SqlText,
}

impl Sql {
    fn new(tables: &Tables, batch: u32) -> Self {
        let logins = Backend::Postgres.quote(tables.logins());
        let sessions = Backend::Postgres.quote(tables.sessions());
        let text = |s: String| -> SqlText { s.into() };
        Self {
            common: CommonSql::new(Backend::Postgres, tables, batch),
            // One statement: the compare-and-swap, the old bound session's
            // deletion and the new session's insertion, plus what tells a
            // refusal apart. All parts see one snapshot; the UPDATE re-checks
            // `token = $3` on the newest row version after waiting for a
            // concurrent rotation, so only one rotation wins.
            rotate: text(format!(
                "WITH current_login AS (\
                    SELECT token FROM {logins} WHERE username = $1 AND serial = $2\
                ), clash AS (\
                    SELECT 1 FROM {sessions} WHERE username = $13 AND digest = $8\
                ), rotated AS (\
                    UPDATE {logins} SET token = $4, previous_token = $5, previous_rotated_at = $6, \
                        previous_sealed = $7, session_digest = $8, last_used_at = $9, expires_at = $10, \
                        client_ip = $11, user_agent = $12 \
                    WHERE username = $1 AND serial = $2 AND token = $3 AND NOT EXISTS (SELECT 1 FROM clash) \
                    RETURNING 1\
                ), old_session AS (\
                    DELETE FROM {sessions} AS s USING {logins} AS l \
                    WHERE EXISTS (SELECT 1 FROM rotated) AND l.username = $1 AND l.serial = $2 \
                        AND s.username = l.username AND s.digest = l.session_digest \
                    RETURNING 1\
                ), new_session AS (\
                    INSERT INTO {sessions} (username, digest, login_serial, data, created_at, expires_at) \
                    SELECT $13, $8, $14, $15::json, $16, $17 FROM rotated \
                    RETURNING 1\
                ) \
                SELECT EXISTS (SELECT 1 FROM rotated), EXISTS (SELECT 1 FROM current_login), \
                    EXISTS (SELECT 1 FROM current_login WHERE token = $3), EXISTS (SELECT 1 FROM clash)"
            )),
            login_exists: text(format!("SELECT 1 FROM {logins} WHERE username = $1 AND serial = $2")),
            delete_login: text(format!(
                "WITH gone AS (\
                    DELETE FROM {logins} WHERE username = $1 AND serial = $2 RETURNING session_digest\
                ), gone_sessions AS (\
                    DELETE FROM {sessions} WHERE username = $1 \
                        AND (login_serial = $2 OR digest IN (SELECT session_digest FROM gone)) \
                    RETURNING digest\
                ) \
                SELECT EXISTS (SELECT 1 FROM gone), (SELECT session_digest FROM gone), \
                    EXISTS (SELECT 1 FROM gone_sessions s JOIN gone g ON s.digest = g.session_digest)"
            )),
            delete_login_sessions: text(format!(
                "DELETE FROM {sessions} WHERE username = $1 AND (login_serial = $2 OR digest = $3)"
            )),
            delete_user: text(format!(
                "WITH gone AS (\
                    DELETE FROM {logins} WHERE username = $1 RETURNING session_digest\
                ), gone_sessions AS (\
                    DELETE FROM {sessions} WHERE username = $1 RETURNING digest\
                ) \
                SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM gone_sessions), \
                    EXISTS (SELECT 1 FROM gone g WHERE g.session_digest IS NOT NULL AND NOT EXISTS \
                        (SELECT 1 FROM gone_sessions s WHERE s.digest = g.session_digest))"
            )),
            delete_user_sessions: text(format!("DELETE FROM {sessions} WHERE username = $1")),
            // One batch: up to `batch` expired logins (skipping any being
            // written, rechecking expiry on rows changed meanwhile) and the
            // sessions they opened, counted by logins.
            expire_logins: text(format!(
                "WITH gone AS (\
                    DELETE FROM {logins} WHERE (username, serial) IN (SELECT username, serial FROM {logins} \
                        WHERE expires_at <= $1 LIMIT {batch} FOR UPDATE SKIP LOCKED) AND expires_at <= $1 \
                    RETURNING username, serial, session_digest\
                ), gone_sessions AS (\
                    DELETE FROM {sessions} AS s USING gone AS g WHERE s.username = g.username \
                        AND (s.login_serial = g.serial OR s.digest = g.session_digest) \
                    RETURNING 1\
                ) \
                SELECT count(*) FROM gone"
            )),
        }
    }
}

/// The [`Store`](expected_core::Store) on PostgreSQL.
///
/// Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    tables: Tables,
    batch: u32,
    sql: Arc<Sql>,
}

impl PgStore {
    /// A store on `pool` with the default [`Tables`].
    pub fn new(pool: PgPool) -> Self {
        Self::with_tables(pool, Tables::default())
    }

    /// A store on `pool` with the given table names.
    pub fn with_tables(pool: PgPool, tables: Tables) -> Self {
        let sql = Arc::new(Sql::new(&tables, DEFAULT_BATCH));
        Self { pool, tables, batch: DEFAULT_BATCH, sql }
    }

    /// Connects a pool with sqlx's default options (use [`PgStore::new`]
    /// with your own [`PgPoolOptions`] to tune it). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new().connect(url).await.map_err(|e| store_error(e, classify))?;
        Ok(Self::new(pool))
    }

    /// Sets how many rows one cleaning statement deletes at most (default
    /// [`DEFAULT_BATCH`]; at least 1).
    pub fn with_batch_size(mut self, batch: u32) -> Self {
        self.batch = batch.max(1);
        self.sql = Arc::new(Sql::new(&self.tables, self.batch));
        self
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates or upgrades the schema, answering the versions it applied
    /// (none when it was up to date): idempotent, and safe to run from
    /// several processes at once (a transaction-scoped advisory lock
    /// serializes them; DDL is transactional, so a failed migration leaves
    /// nothing behind).
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        retry(classify, || self.migrate_once()).await
    }

    async fn migrate_once(&self) -> Result<Vec<i64>, Failure> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('expected-store-sqlx:' || coalesce(current_schema(), '') || '.' || $1))",
        )
        .bind(self.tables.migrations_table())
        .execute(&mut *tx)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(crate::schema::migrations_table(Backend::Postgres, &self.tables)))
            .execute(&mut *tx)
            .await?;
        let table = Backend::Postgres.quote(self.tables.migrations_table());
        let applied: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT version FROM {table}")))
                .fetch_all(&mut *tx)
                .await?;
        let mut done = Vec::new();
        for migration in self.tables.migrations(Backend::Postgres) {
            if applied.contains(&migration.version) {
                continue;
            }
            for statement in migration.statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (version, description, applied_at) VALUES ($1, $2, $3)"
            )))
            .bind(migration.version)
            .bind(migration.description)
            .bind(micros(expected_core::time::OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await?;
            done.push(migration.version);
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn rotate(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        let session = SessionValues::of(&rotation.session)?;
        let client_ip = rotation.client.ip.map(|ip| ip.to_string());
        let outcome = retry(classify, || async {
            let row = sqlx::query(sql(&self.sql.rotate))
                .bind(username(&rotation.username))
                .bind(&rotation.serial.as_bytes()[..])
                .bind(&rotation.expected.as_bytes()[..])
                .bind(&rotation.token.as_bytes()[..])
                .bind(&rotation.previous.digest.as_bytes()[..])
                .bind(micros(rotation.previous.rotated_at))
                .bind(&rotation.previous.sealed.as_bytes()[..])
                .bind(session.digest)
                .bind(micros(rotation.last_used_at))
                .bind(micros(rotation.expires_at))
                .bind(client_ip.as_deref())
                .bind(rotation.client.user_agent.as_deref())
                .bind(username(&rotation.session.username))
                .bind(session.login_serial)
                .bind(session.data.as_str())
                .bind(session.created_at)
                .bind(session.expires_at)
                .fetch_one(&self.pool)
                .await;
            let row = match row {
                // The new session's digest was taken after our snapshot.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                    return Ok(Some(Rotated::SessionExists));
                }
                other => other?,
            };
            let (rotated, found, current, clash): (bool, bool, bool, bool) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            Ok(match (rotated, found, current, clash) {
                (true, ..) => Some(Rotated::Rotated),
                (false, false, ..) => Some(Rotated::NotFound),
                (false, true, false, _) => Some(Rotated::NotCurrent),
                (false, true, true, true) => Some(Rotated::SessionExists),
                // Current in our snapshot, yet not updated: a concurrent
                // rotation won or a concurrent delete removed the login.
                (false, true, true, false) => None,
            })
        })
        .await?;
        if let Some(outcome) = outcome {
            return Ok(outcome);
        }
        let exists = retry(classify, || async {
            Ok(sqlx::query(sql(&self.sql.login_exists))
                .bind(username(&rotation.username))
                .bind(&rotation.serial.as_bytes()[..])
                .fetch_optional(&self.pool)
                .await?)
        })
        .await?;
        Ok(if exists.is_some() { Rotated::NotCurrent } else { Rotated::NotFound })
    }

    async fn remove_login(&self, user: &Username, serial: &Serial) -> Result<bool, StoreError> {
        let (existed, bound, bound_deleted) = retry(classify, || async {
            let row = sqlx::query(sql(&self.sql.delete_login))
                .bind(username(user))
                .bind(&serial.as_bytes()[..])
                .fetch_one(&self.pool)
                .await?;
            let found: (bool, Option<Vec<u8>>, bool) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            Ok(found)
        })
        .await?;
        if let (true, Some(bound), false) = (existed, &bound, bound_deleted) {
            // The login was rotated while we waited for its row: its new
            // session was committed after our snapshot, so a second statement
            // (with a fresh one) ends it. Also runs, harmlessly, when the
            // bound session had already ended.
            retry(classify, || async {
                Ok(sqlx::query(sql(&self.sql.delete_login_sessions))
                    .bind(username(user))
                    .bind(&serial.as_bytes()[..])
                    .bind(bound.as_slice())
                    .execute(&self.pool)
                    .await?)
            })
            .await?;
        }
        Ok(existed)
    }

    async fn expire_logins(&self, now: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let count: i64 = retry(classify, || async {
                Ok(sqlx::query_scalar(sql(&self.sql.expire_logins)).bind(now).fetch_one(&self.pool).await?)
            })
            .await?;
            total += count.unsigned_abs();
            if count < i64::from(self.batch) {
                return Ok(total);
            }
        }
    }

    async fn remove_user(&self, user: &Username) -> Result<Deleted, StoreError> {
        let (logins, sessions, missed) = retry(classify, || async {
            let row =
                sqlx::query(sql(&self.sql.delete_user)).bind(username(user)).fetch_one(&self.pool).await?;
            let found: (i64, i64, bool) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            Ok(found)
        })
        .await?;
        let mut deleted = Deleted { logins: logins.unsigned_abs(), sessions: sessions.unsigned_abs() };
        if missed {
            // A login's bound session was not among the deleted ones: it may
            // have been created by a rotation committed after our snapshot.
            let done = retry(classify, || async {
                Ok(sqlx::query(sql(&self.sql.delete_user_sessions))
                    .bind(username(user))
                    .execute(&self.pool)
                    .await?)
            })
            .await?;
            deleted.sessions += done.rows_affected();
        }
        Ok(deleted)
    }
}

store_impl!(PgStore);
