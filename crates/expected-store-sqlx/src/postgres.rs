//! The PostgreSQL store.

use std::num::NonZeroUsize;
use std::sync::Arc;

use expected_core::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated, Rotation,
};
use expected_core::{AuthMethod, Login, Serial, SessionRecord, StoreError, StoreErrorKind, Username};
use sqlx::Row as _;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::DEFAULT_BATCH;
use crate::codec::{LoginRow, LoginValues, SessionValues, from_micros, micros, owner_name, serial_from};
use crate::common::{
    CommonSql, LOGIN_COLUMNS, SESSION_COLUMNS, SqlText, bind_login, bind_session, expire_in_batches,
    others_kept, sql, store_impl,
};
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

/// A session's owner: the username, or `''` for an anonymous session.
fn owner(owner: Option<&Username>) -> &str {
    owner_name(owner)
}

#[derive(Debug)]
struct Sql {
    common: CommonSql,
    insert_capped: SqlText,
    rotate: SqlText,
    rotate_current: SqlText,
    remembered: SqlText,
    grace: SqlText,
    login_exists: SqlText,
    delete_login: SqlText,
    delete_login_sessions: SqlText,
    delete_user: SqlText,
    delete_opened_sessions: SqlText,
    confirm: SqlText,
    expire_logins: SqlText,
}

impl Sql {
    fn new(tables: &Tables, batch: u32) -> Self {
        let logins = Backend::Postgres.quote(tables.logins());
        let sessions = Backend::Postgres.quote(tables.sessions());
        let text = |s: String| -> SqlText { s.into() };
        Self {
            common: CommonSql::new(Backend::Postgres, tables, batch),
            // One statement: a user's session (values $1 to $8 in
            // SESSION_COLUMNS order) and, if it was inserted, the deletion of
            // the user's other sessions but the $9 that expire last (the
            // snapshot does not hold the new row). The user's rows are a
            // range of the primary key: at most the cap and one once the cap
            // holds.
            insert_capped: text(format!(
                "WITH created AS (\
                    INSERT INTO {sessions} ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6::json, $7, $8) \
                    ON CONFLICT DO NOTHING RETURNING 1\
                ), evicted AS (\
                    DELETE FROM {sessions} WHERE username = $1 AND EXISTS (SELECT 1 FROM created) \
                        AND digest IN (SELECT digest FROM {sessions} WHERE username = $1 AND digest <> $2 \
                            ORDER BY expires_at DESC OFFSET $9) \
                    RETURNING 1\
                ) \
                SELECT EXISTS (SELECT 1 FROM created)"
            )),
            // One statement: the compare-and-swap, the deletion of every
            // session of the login (its bound one and every one it opened),
            // the new session's insertion, the cap on the user's sessions,
            // plus what tells a refusal apart. All parts see one snapshot;
            // the UPDATE re-checks `token = $3` on the newest row version
            // after waiting for a concurrent rotation, so only one rotation
            // wins. The login's values are $1 to $11, the new session's (in
            // SESSION_COLUMNS order) $12 to $19, then how many of the user's
            // other sessions the cap keeps ($20, NULL for no cap: those of
            // the login being deleted do not count). authenticated_at is not
            // set: a rotation never changes it.
            rotate: text(format!(
                "WITH current_login AS (\
                    SELECT token, session_digest FROM {logins} WHERE username = $1 AND serial = $2\
                ), clash AS (\
                    SELECT 1 FROM {sessions} WHERE username = $12 AND digest = $13\
                ), rotated AS (\
                    UPDATE {logins} SET token = $4, previous_token = $5, previous_rotated_at = $6, \
                        previous_sealed = $7, session_digest = $13, last_used_at = $8, expires_at = $9, \
                        client_ip = $10, user_agent = $11 \
                    WHERE username = $1 AND serial = $2 AND token = $3 AND NOT EXISTS (SELECT 1 FROM clash) \
                    RETURNING 1\
                ), old_sessions AS (\
                    DELETE FROM {sessions} WHERE EXISTS (SELECT 1 FROM rotated) \
                        AND username = $1 AND digest <> $13 \
                        AND digest IN (SELECT digest FROM {sessions} WHERE username = $1 AND login_serial = $2 \
                            UNION ALL SELECT session_digest FROM current_login) \
                    RETURNING 1\
                ), evicted AS (\
                    DELETE FROM {sessions} WHERE username = $1 AND $20::bigint IS NOT NULL \
                        AND EXISTS (SELECT 1 FROM rotated) \
                        AND digest IN (SELECT digest FROM {sessions} WHERE username = $1 AND digest <> $13 \
                            AND login_serial IS DISTINCT FROM $2 \
                            AND digest IS DISTINCT FROM (SELECT session_digest FROM current_login) \
                            ORDER BY expires_at DESC OFFSET $20) \
                    RETURNING 1\
                ), new_session AS (\
                    INSERT INTO {sessions} ({SESSION_COLUMNS}) \
                    SELECT $12, $13, $14, $15, $16, $17::json, $18, $19 FROM rotated \
                    RETURNING 1\
                ) \
                SELECT EXISTS (SELECT 1 FROM rotated), EXISTS (SELECT 1 FROM current_login), \
                    EXISTS (SELECT 1 FROM current_login WHERE token = $3), EXISTS (SELECT 1 FROM clash)"
            )),
            // One statement, the optimistic cookie login
            // (`Store::rotate_current`): the `rotate` statement above with
            // the presented token's digest as $3, applying only to a login
            // live at $21 (`expires_at > now`) and created at or after $22
            // (its lifetime cap does not bind), the new session taking the
            // login's `authenticated_at` from the row (its $16 is not used;
            // a version-1 row's NULL reads as `created_at`). When it does not
            // apply it answers the login as its snapshot holds it, so the
            // engine judges it without a second statement. Answers the
            // rotated login's `authenticated_at` (NULL: not rotated), the
            // clash, then the login's LOGIN_COLUMNS (NULL: no such login).
            rotate_current: text(format!(
                "WITH current_login AS (\
                    SELECT {LOGIN_COLUMNS} FROM {logins} WHERE username = $1 AND serial = $2\
                ), clash AS (\
                    SELECT 1 FROM {sessions} WHERE username = $12 AND digest = $13\
                ), rotated AS (\
                    UPDATE {logins} SET token = $4, previous_token = $5, previous_rotated_at = $6, \
                        previous_sealed = $7, session_digest = $13, last_used_at = $8, expires_at = $9, \
                        client_ip = $10, user_agent = $11 \
                    WHERE username = $1 AND serial = $2 AND token = $3 AND expires_at > $21 \
                        AND created_at >= $22 AND NOT EXISTS (SELECT 1 FROM clash) \
                    RETURNING coalesce(authenticated_at, created_at) AS authenticated_at\
                ), old_sessions AS (\
                    DELETE FROM {sessions} WHERE EXISTS (SELECT 1 FROM rotated) \
                        AND username = $1 AND digest <> $13 \
                        AND digest IN (SELECT digest FROM {sessions} WHERE username = $1 AND login_serial = $2 \
                            UNION ALL SELECT session_digest FROM current_login) \
                    RETURNING 1\
                ), evicted AS (\
                    DELETE FROM {sessions} WHERE username = $1 AND $20::bigint IS NOT NULL \
                        AND EXISTS (SELECT 1 FROM rotated) \
                        AND digest IN (SELECT digest FROM {sessions} WHERE username = $1 AND digest <> $13 \
                            AND login_serial IS DISTINCT FROM $2 \
                            AND digest IS DISTINCT FROM (SELECT session_digest FROM current_login) \
                            ORDER BY expires_at DESC OFFSET $20) \
                    RETURNING 1\
                ), new_session AS (\
                    INSERT INTO {sessions} ({SESSION_COLUMNS}) \
                    SELECT $12, $13, $14, $15, r.authenticated_at, $17::json, $18, $19 FROM rotated r \
                    RETURNING 1\
                ) \
                SELECT (SELECT authenticated_at FROM rotated), EXISTS (SELECT 1 FROM clash), c.* \
                FROM (SELECT 1) AS one LEFT JOIN current_login c ON true"
            )),
            // One statement, a password login with "remember me"
            // (`Store::create_remembered`): the login ($1 to $13, username
            // first then LOGIN_COLUMNS), unless the session's digest is
            // taken or its serial is (ON CONFLICT waits for a racing insert
            // of the serial, then does nothing); its session ($14 to $21 in
            // SESSION_COLUMNS order) only if the login was inserted (a
            // digest taken after our snapshot fails the statement with a
            // unique violation: nothing written); the cap on the user's
            // sessions ($22 of the others kept, NULL: all); then, when $23,
            // the user's other logins as the snapshot holds them (it does not
            // hold the new row). Answers one row per other login (or one with
            // NULL login columns): inserted, clash, LOGIN_COLUMNS.
            remembered: text(format!(
                "WITH clash AS (\
                    SELECT 1 FROM {sessions} WHERE username = $14 AND digest = $15\
                ), new_login AS (\
                    INSERT INTO {logins} (username, {LOGIN_COLUMNS}) \
                    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
                    WHERE NOT EXISTS (SELECT 1 FROM clash) \
                    ON CONFLICT DO NOTHING RETURNING 1\
                ), created AS (\
                    INSERT INTO {sessions} ({SESSION_COLUMNS}) \
                    SELECT $14, $15, $16, $17, $18, $19::json, $20, $21 FROM new_login \
                    RETURNING 1\
                ), evicted AS (\
                    DELETE FROM {sessions} WHERE username = $14 AND $22::bigint IS NOT NULL \
                        AND EXISTS (SELECT 1 FROM new_login) \
                        AND digest IN (SELECT digest FROM {sessions} WHERE username = $14 AND digest <> $15 \
                            ORDER BY expires_at DESC OFFSET $22) \
                    RETURNING 1\
                ) \
                SELECT EXISTS (SELECT 1 FROM new_login), EXISTS (SELECT 1 FROM clash), o.* \
                FROM (SELECT 1) AS one LEFT JOIN \
                    (SELECT {LOGIN_COLUMNS} FROM {logins} WHERE username = $1 AND $23::boolean) AS o \
                    ON EXISTS (SELECT 1 FROM new_login)"
            )),
            // One statement: bind the new session to its login (the UPDATE
            // waits for, or is waited for by, a racing delete of the login:
            // either it finds the login gone, or the delete returns this
            // session as the bound one, which `remove_login` and
            // `remove_user` end with a fresh snapshot if theirs missed it),
            // then insert it, unless its digest is taken. The session's
            // values are $1 to $8 in SESSION_COLUMNS order, its login's
            // serial being $3; the cap keeps $9 of the user's other sessions
            // (NULL: all).
            grace: text(format!(
                "WITH clash AS (\
                    SELECT 1 FROM {sessions} WHERE username = $1 AND digest = $2\
                ), bound AS (\
                    UPDATE {logins} SET session_digest = $2 \
                    WHERE username = $1 AND serial = $3 AND NOT EXISTS (SELECT 1 FROM clash) \
                    RETURNING 1\
                ), created AS (\
                    INSERT INTO {sessions} ({SESSION_COLUMNS}) \
                    SELECT $1, $2, $3, $4, $5, $6::json, $7, $8 FROM bound \
                    RETURNING 1\
                ), evicted AS (\
                    DELETE FROM {sessions} WHERE username = $1 AND $9::bigint IS NOT NULL \
                        AND EXISTS (SELECT 1 FROM created) \
                        AND digest IN (SELECT digest FROM {sessions} WHERE username = $1 AND digest <> $2 \
                            ORDER BY expires_at DESC OFFSET $9) \
                    RETURNING 1\
                ) \
                SELECT EXISTS (SELECT 1 FROM bound), EXISTS (SELECT 1 FROM clash)"
            )),
            login_exists: text(format!("SELECT 1 FROM {logins} WHERE username = $1 AND serial = $2")),
            // The login, its bound session and the sessions it opened,
            // each found by an index (an OR of the two would have the
            // planner read every session of the user).
            delete_login: text(format!(
                "WITH gone AS (\
                    DELETE FROM {logins} WHERE username = $1 AND serial = $2 RETURNING session_digest\
                ), gone_sessions AS (\
                    DELETE FROM {sessions} WHERE username = $1 \
                        AND digest IN (SELECT digest FROM {sessions} WHERE username = $1 AND login_serial = $2 \
                            UNION ALL SELECT session_digest FROM gone) \
                    RETURNING digest\
                ) \
                SELECT EXISTS (SELECT 1 FROM gone), (SELECT session_digest FROM gone), \
                    EXISTS (SELECT 1 FROM gone_sessions s JOIN gone g ON s.digest = g.session_digest)"
            )),
            delete_login_sessions: text(format!(
                "DELETE FROM {sessions} WHERE username = $1 AND (login_serial = $2 OR digest = $3)"
            )),
            // Every login of the user but $3 and every session but $2, or
            // all of them when those are NULL (`delete_user`); answers the
            // serials, the count of sessions, and the deleted logins' bound
            // sessions that were not among them (see `remove_user`).
            delete_user: text(format!(
                "WITH gone AS (\
                    DELETE FROM {logins} WHERE username = $1 AND serial IS DISTINCT FROM $3 \
                    RETURNING serial, session_digest\
                ), gone_sessions AS (\
                    DELETE FROM {sessions} WHERE username = $1 AND digest IS DISTINCT FROM $2 RETURNING digest\
                ) \
                SELECT ARRAY(SELECT serial FROM gone), (SELECT count(*) FROM gone_sessions), \
                    ARRAY(SELECT g.session_digest FROM gone g WHERE g.session_digest IS NOT NULL AND NOT EXISTS \
                        (SELECT 1 FROM gone_sessions s WHERE s.digest = g.session_digest))"
            )),
            // The sessions the logins $3 opened or were bound to ($4), but
            // $2; with a fresh snapshot.
            delete_opened_sessions: text(format!(
                "DELETE FROM {sessions} WHERE username = $1 AND digest IS DISTINCT FROM $2 \
                    AND (login_serial = ANY($3) OR digest = ANY($4))"
            )),
            // The session first: the login is written only if it exists.
            confirm: text(format!(
                "WITH confirmed AS (\
                    UPDATE {sessions} SET method = '{password}', authenticated_at = $4 \
                    WHERE username = $1 AND digest = $2 RETURNING 1\
                ), login AS (\
                    UPDATE {logins} SET authenticated_at = $4 \
                    WHERE username = $1 AND serial = $3 AND EXISTS (SELECT 1 FROM confirmed) RETURNING 1\
                ) \
                SELECT EXISTS (SELECT 1 FROM confirmed)",
                password = AuthMethod::Password.as_str()
            )),
            // One batch: up to `batch` expired logins (skipping any being
            // written, rechecking expiry on rows changed meanwhile) and the
            // sessions they opened; answers the logins.
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
                SELECT username, serial FROM gone"
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
    ///
    /// ```no_run
    /// use expected_store_sqlx::{PgStore, Tables};
    /// use expected_store_sqlx::sqlx::PgPool;
    ///
    /// # #[cfg(feature = "postgres")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = PgPool::connect("postgres://app@db/app").await?;
    /// // Tables `auth_logins`, `auth_sessions` and `auth_migrations`:
    /// let store = PgStore::with_tables(pool, Tables::with_prefix("auth_")?);
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// use expected_store_sqlx::PgStore;
    ///
    /// # #[cfg(feature = "postgres")]
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// // Shorter statements (less lock time per statement), more of them:
    /// let store = PgStore::connect("postgres://app@db/app").await?.with_batch_size(500);
    /// let cleaned = expected_core::Expected::new(store, Default::default()).clean().await?;
    /// # let _ = cleaned;
    /// # Ok(()) }
    /// ```
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
            let query = sqlx::query(sql(&self.sql.rotate))
                .bind(username(&rotation.username))
                .bind(&rotation.serial.as_bytes()[..])
                .bind(&rotation.expected.as_bytes()[..])
                .bind(&rotation.token.as_bytes()[..])
                .bind(&rotation.previous.digest.as_bytes()[..])
                .bind(micros(rotation.previous.rotated_at))
                .bind(&rotation.previous.sealed.as_bytes()[..])
                .bind(micros(rotation.last_used_at))
                .bind(micros(rotation.expires_at))
                .bind(client_ip.as_deref())
                .bind(rotation.client.user_agent.as_deref());
            let row = bind_session!(query, owner(session.owner), &session)
                .bind(others_kept(rotation.max_sessions))
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

    /// [`Store::rotate_current`](expected_core::Store::rotate_current) in
    /// one statement (`rotate_current`); a second, a read, only when a
    /// concurrent rotation or delete committed after the statement's
    /// snapshot (the login it read looks rotatable, yet the UPDATE, which
    /// re-checks the newest row version, did not apply).
    async fn rotate_current_once(&self, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
        let rotation = &attempt.rotation;
        let session = SessionValues::of(&rotation.session)?;
        let client_ip = rotation.client.ip.map(|ip| ip.to_string());
        let found = retry(classify, || async {
            let query = sqlx::query(sql(&self.sql.rotate_current))
                .bind(username(&rotation.username))
                .bind(&rotation.serial.as_bytes()[..])
                .bind(&rotation.expected.as_bytes()[..])
                .bind(&rotation.token.as_bytes()[..])
                .bind(&rotation.previous.digest.as_bytes()[..])
                .bind(micros(rotation.previous.rotated_at))
                .bind(&rotation.previous.sealed.as_bytes()[..])
                .bind(micros(rotation.last_used_at))
                .bind(micros(rotation.expires_at))
                .bind(client_ip.as_deref())
                .bind(rotation.client.user_agent.as_deref());
            let row = bind_session!(query, owner(session.owner), &session)
                .bind(others_kept(rotation.max_sessions))
                .bind(micros(attempt.now))
                .bind(micros(attempt.created_since))
                .fetch_one(&self.pool)
                .await;
            let row = match row {
                // The new session's digest was taken after our snapshot.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => return Ok(None),
                other => other?,
            };
            let rotated: Option<i64> = row.try_get(0)?;
            let clash: bool = row.try_get(1)?;
            let serial: Option<Vec<u8>> = row.try_get(2)?;
            let login = match serial {
                None => None,
                Some(serial) => Some(LoginRow {
                    serial,
                    token: row.try_get(3)?,
                    previous_token: row.try_get(4)?,
                    previous_rotated_at: row.try_get(5)?,
                    previous_sealed: row.try_get(6)?,
                    session_digest: row.try_get(7)?,
                    created_at: row.try_get(8)?,
                    last_used_at: row.try_get(9)?,
                    expires_at: row.try_get(10)?,
                    client_ip: row.try_get(11)?,
                    user_agent: row.try_get(12)?,
                    authenticated_at: row.try_get(13)?,
                }),
            };
            Ok(Some((rotated, clash, login)))
        })
        .await?;
        let Some((rotated, clash, login)) = found else { return Ok(CurrentRotated::SessionExists) };
        if let Some(at) = rotated {
            return Ok(CurrentRotated::Rotated { authenticated_at: from_micros(at, "authenticated_at")? });
        }
        let Some(login) = login.map(|row| row.into_login(&rotation.username)).transpose()? else {
            return Ok(CurrentRotated::NotApplied(None));
        };
        if !attempt.applies_to(&login) {
            return Ok(CurrentRotated::NotApplied(Some(login)));
        }
        if clash {
            return Ok(CurrentRotated::SessionExists);
        }
        // Rotatable in our snapshot, yet not rotated: what won the race is
        // newer than the snapshot.
        Ok(CurrentRotated::NotApplied(
            <Self as expected_core::Store>::get_login(self, &rotation.username, &rotation.serial).await?,
        ))
    }

    /// [`Store::create_remembered`](expected_core::Store::create_remembered)
    /// in one statement (`remembered`).
    async fn remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        // The session goes under the login's user: one naming somebody else
        // would be counted against, and deleted with, the wrong logins.
        if session.username() != Some(&login.username) {
            return Err(StoreError::new(
                StoreErrorKind::Backend,
                "a remembered login's session must belong to the login's user",
            ));
        }
        let login_values = LoginValues::of(login);
        let values = SessionValues::of(session)?;
        let found = retry(classify, || async {
            let query = sqlx::query(sql(&self.sql.remembered));
            let query = bind_login!(query, username(&login.username), &login_values);
            let rows = bind_session!(query, owner(values.owner), &values)
                .bind(others_kept(max_sessions))
                .bind(list_logins)
                .fetch_all(&self.pool)
                .await;
            let rows = match rows {
                // The digest was taken after our snapshot: nothing written.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => return Ok(None),
                other => other?,
            };
            let Some(first) = rows.first() else {
                return Err(Failure::from(sqlx::Error::RowNotFound));
            };
            let (created, clash): (bool, bool) = (first.try_get(0)?, first.try_get(1)?);
            let mut others = Vec::new();
            for row in &rows {
                let serial: Option<Vec<u8>> = row.try_get(2)?;
                let Some(serial) = serial else { continue };
                others.push(LoginRow {
                    serial,
                    token: row.try_get(3)?,
                    previous_token: row.try_get(4)?,
                    previous_rotated_at: row.try_get(5)?,
                    previous_sealed: row.try_get(6)?,
                    session_digest: row.try_get(7)?,
                    created_at: row.try_get(8)?,
                    last_used_at: row.try_get(9)?,
                    expires_at: row.try_get(10)?,
                    client_ip: row.try_get(11)?,
                    user_agent: row.try_get(12)?,
                    authenticated_at: row.try_get(13)?,
                });
            }
            Ok(Some((created, clash, others)))
        })
        .await?;
        Ok(match found {
            None | Some((false, true, _)) => Remembered::SessionExists,
            Some((false, false, _)) => Remembered::LoginExists,
            Some((true, _, others)) if list_logins => Remembered::Created {
                others: Some(
                    others
                        .into_iter()
                        .map(|row| row.into_login(&login.username))
                        .collect::<Result<_, _>>()?,
                ),
            },
            Some((true, ..)) => Remembered::Created { others: None },
        })
    }

    async fn insert_capped(
        &self,
        session: &SessionRecord,
        max: NonZeroUsize,
    ) -> Result<Inserted, StoreError> {
        let values = SessionValues::of(session)?;
        retry(classify, || async {
            let query = sqlx::query_scalar(sql(&self.sql.insert_capped));
            let created: Result<bool, _> = bind_session!(query, owner(values.owner), &values)
                .bind(others_kept(Some(max)))
                .fetch_one(&self.pool)
                .await;
            match created {
                // The digest was taken after our snapshot: nothing written.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                    Ok(Inserted::AlreadyExists)
                }
                other => Ok(if other? { Inserted::Created } else { Inserted::AlreadyExists }),
            }
        })
        .await
    }

    async fn create_grace(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        let values = SessionValues::of(session)?;
        retry(classify, || async {
            let query = sqlx::query(sql(&self.sql.grace));
            let row = bind_session!(query, owner(values.owner), &values)
                .bind(others_kept(max_sessions))
                .fetch_one(&self.pool)
                .await;
            let row = match row {
                // The digest was taken after our snapshot: nothing written.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                    return Ok(GraceInserted::AlreadyExists);
                }
                other => other?,
            };
            let (created, clash): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
            Ok(match (created, clash) {
                (true, _) => GraceInserted::Created,
                (false, true) => GraceInserted::AlreadyExists,
                (false, false) => GraceInserted::LoginGone,
            })
        })
        .await
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

    async fn expire_logins(&self, now: i64) -> Result<Vec<ExpiredLogin>, StoreError> {
        expire_in_batches(self.batch, || {
            retry(classify, || async {
                let keys: Vec<(String, Vec<u8>)> =
                    sqlx::query_as(sql(&self.sql.expire_logins)).bind(now).fetch_all(&self.pool).await?;
                Ok(keys)
            })
        })
        .await
    }

    async fn confirm(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        retry(classify, || async {
            Ok(sqlx::query_scalar(sql(&self.sql.confirm))
                .bind(username(&confirmation.username))
                .bind(&confirmation.session.as_bytes()[..])
                .bind(confirmation.login.as_ref().map(|serial| &serial.as_bytes()[..]))
                .bind(micros(confirmation.at))
                .fetch_one(&self.pool)
                .await?)
        })
        .await
    }

    /// Deletes the user's logins but `keep.login` and sessions but
    /// `keep.session`; everything when `keep` is `None`.
    async fn remove_user(&self, user: &Username, keep: Option<&Keep>) -> Result<Deleted, StoreError> {
        let kept_session = keep.map(|keep| &keep.session.as_bytes()[..]);
        let kept_login = keep.and_then(|keep| keep.login.as_ref()).map(|serial| &serial.as_bytes()[..]);
        let (serials, sessions, missed) = retry(classify, || async {
            let row = sqlx::query(sql(&self.sql.delete_user))
                .bind(username(user))
                .bind(kept_session)
                .bind(kept_login)
                .fetch_one(&self.pool)
                .await?;
            let found: (Vec<Vec<u8>>, i64, Vec<Vec<u8>>) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            Ok(found)
        })
        .await?;
        let mut sessions = sessions.unsigned_abs();
        if !missed.is_empty() {
            // A deleted login's bound session was not among the deleted
            // ones: a rotation committed after our snapshot (we waited for
            // its login row) may have created it, invisible to us. A second
            // statement, with a fresh snapshot, ends what those logins
            // opened. Also runs, harmlessly, when the bound session had
            // simply ended earlier.
            let done = retry(classify, || async {
                Ok(sqlx::query(sql(&self.sql.delete_opened_sessions))
                    .bind(username(user))
                    .bind(kept_session)
                    .bind(&serials)
                    .bind(&missed)
                    .execute(&self.pool)
                    .await?)
            })
            .await?;
            sessions += done.rows_affected();
        }
        let serials = serials.into_iter().map(serial_from).collect::<Result<_, _>>()?;
        Ok(Deleted::new(serials, sessions))
    }
}

store_impl!(PgStore, {
    async fn rotate_current(
        &self,
        attempt: &expected_core::store::CurrentRotation,
    ) -> Result<expected_core::store::CurrentRotated, expected_core::StoreError> {
        self.rotate_current_once(attempt).await
    }

    async fn create_remembered(
        &self,
        login: &expected_core::Login,
        session: &expected_core::SessionRecord,
        max_sessions: Option<std::num::NonZeroUsize>,
        list_logins: bool,
    ) -> Result<expected_core::store::Remembered, expected_core::StoreError> {
        self.remembered(login, session, max_sessions, list_logins).await
    }
});
