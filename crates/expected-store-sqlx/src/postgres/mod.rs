//! The PostgreSQL dialect: every operation of its own is one statement
//! (`sql.rs`), run on the pool.

mod sql;

use std::num::NonZeroUsize;

use expected_core::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated, Rotation,
};
use expected_core::{Login, Serial, SessionRecord, Store as _, StoreError, Username};
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgPool, PgQueryResult, PgRow};
use sqlx::{Connection as _, Row as _, Transaction};

use self::sql::Sql;
use crate::codec::{LoginValues, SessionValues, expired, from_micros, micros, serial_from};
use crate::contract::login_row;
use crate::dialect::{Connection, Dialect};
use crate::driver::{BoxFuture, RowsAffected, Stmt};
use crate::error::{Failure, Transience, store_error};
use crate::statements::{CommonSql, others_kept};
use crate::store::SqlStore;
use crate::tables::{Backend, Tables};

/// The PostgreSQL dialect (PostgreSQL 12 or later).
#[derive(Debug, Clone, Copy)]
pub struct Postgres;

/// The [`Store`](expected_core::Store) on PostgreSQL 12 or later: a
/// [`SqlStore`] of the PostgreSQL dialect, whose methods it has.
///
/// Every operation is one statement on the pool but the cleaning of
/// expired logins (one statement per batch) and the rare second statement
/// of a deletion that raced a rotation (see the crate docs).
pub type PgStore = SqlStore<Postgres>;

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        PgQueryResult::rows_affected(self)
    }
}

impl Dialect for Postgres {
    type Db = sqlx::Postgres;
    type Sql = Sql;
    type Writer = ();
    type WriteConn = sqlx::pool::PoolConnection<sqlx::Postgres>;

    const BACKEND: Backend = Backend::Postgres;

    fn classify(error: &dyn DatabaseError) -> Transience {
        match error.code().as_deref() {
            // serialization_failure, deadlock_detected
            Some("40001" | "40P01") => Transience::Conflict,
            _ => Transience::No,
        }
    }

    fn bind_name(stmt: Stmt<Self>, name: &str) -> Stmt<Self> {
        stmt.bind(name)
    }

    fn sql(tables: &Tables, batch: u32) -> Sql {
        Sql::new(tables, batch)
    }

    fn common(sql: &Sql) -> &CommonSql {
        &sql.common
    }

    fn writer(_: &PgPool) {}

    async fn write(pool: &PgPool, (): &()) -> Result<Self::WriteConn, sqlx::Error> {
        pool.acquire().await
    }

    fn begin(
        conn: &mut Connection<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'_, sqlx::Postgres>, sqlx::Error>> {
        Box::pin(conn.begin())
    }

    async fn connect(url: &str) -> Result<(PgPool, ()), StoreError> {
        let pool = crate::pool_options::<sqlx::Postgres>()
            .connect(url)
            .await
            .map_err(|e| store_error(e, Self::classify))?;
        Ok((pool, ()))
    }

    /// One transaction under a transaction-scoped advisory lock: DDL is
    /// transactional, so a failed migration leaves nothing behind.
    async fn migrate(store: &PgStore) -> Result<Vec<i64>, StoreError> {
        store.retry(|| async {
            let mut tx = store.pool.begin().await?;
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtext('expected-store-sqlx:' || coalesce(current_schema(), '') || '.' || $1))",
            )
            .bind(store.tables.migrations_table())
            .execute(&mut *tx)
            .await?;
            let done = crate::migrate::apply::<Self>(&mut tx, &store.tables).await?;
            tx.commit().await?;
            Ok(done)
        })
        .await
    }

    async fn rotate(store: &PgStore, rotation: &Rotation) -> Result<Rotated, StoreError> {
        rotate(store, rotation).await
    }

    /// One statement (`rotate_current`); a second, a read, only when a
    /// concurrent rotation or delete committed after the statement's
    /// snapshot (see [`rotate_current`]).
    async fn rotate_current(
        store: &PgStore,
        attempt: &CurrentRotation,
    ) -> Result<CurrentRotated, StoreError> {
        rotate_current(store, attempt).await
    }

    /// One statement (`remembered`).
    async fn create_remembered(
        store: &PgStore,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        remembered(store, login, session, max_sessions, list_logins).await
    }

    async fn insert_capped(
        store: &PgStore,
        session: &SessionRecord,
        max: NonZeroUsize,
    ) -> Result<Inserted, StoreError> {
        let values = SessionValues::of(session)?;
        store
            .retry(|| async {
                let created = Stmt::<Self>::new(&store.sql.insert_capped)
                    .session(&values)
                    .bind(others_kept(Some(max)))
                    .query()
                    .fetch_one(&store.pool)
                    .await;
                match created {
                    // The digest was taken after our snapshot: nothing written.
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                        Ok(Inserted::AlreadyExists)
                    }
                    other => Ok(if other?.try_get(0)? { Inserted::Created } else { Inserted::AlreadyExists }),
                }
            })
            .await
    }

    async fn create_grace(
        store: &PgStore,
        session: &SessionRecord,
        max: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        let values = SessionValues::of(session)?;
        store
            .retry(|| async {
                let row = Stmt::<Self>::new(&store.sql.grace)
                    .session(&values)
                    .bind(others_kept(max))
                    .query()
                    .fetch_one(&store.pool)
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

    async fn remove_login(store: &PgStore, user: &Username, serial: &Serial) -> Result<bool, StoreError> {
        remove_login(store, user, serial).await
    }

    async fn remove_user(
        store: &PgStore,
        user: &Username,
        keep: Option<&Keep>,
    ) -> Result<Deleted, StoreError> {
        remove_user(store, user, keep).await
    }

    /// One statement: the session first, the login only if the session
    /// exists.
    async fn confirm(store: &PgStore, confirmation: &Confirmation) -> Result<bool, StoreError> {
        store
            .retry(|| async {
                let row = Stmt::<Self>::new(&store.sql.confirm)
                    .user(&confirmation.username)
                    .bind(&confirmation.session.as_bytes()[..])
                    .bind(confirmation.login.as_ref().map(|serial| &serial.as_bytes()[..]))
                    .bind(micros(confirmation.at))
                    .query()
                    .fetch_one(&store.pool)
                    .await?;
                Ok(row.try_get(0)?)
            })
            .await
    }

    /// One statement: up to a batch of expired logins (skipping any being
    /// written) and the sessions they opened.
    async fn expire_logins_batch(store: &PgStore, now: i64) -> Result<Vec<ExpiredLogin>, StoreError> {
        let keys = store
            .retry(|| async {
                let rows = Stmt::<Self>::new(&store.sql.expire_logins)
                    .bind(now)
                    .query()
                    .fetch_all(&store.pool)
                    .await?;
                Ok(rows
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect::<Result<Vec<(String, Vec<u8>)>, sqlx::Error>>()?)
            })
            .await?;
        expired(keys)
    }
}

/// What the rotation statement reports: whether it rotated, whether the
/// login exists, whether its token was current, whether the new session's
/// digest was taken (all as its snapshot saw them).
fn reported(row: &PgRow) -> Result<(bool, bool, bool, bool), sqlx::Error> {
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?))
}

/// One statement; a second (`login_exists`) only when the login looked
/// current but a concurrent rotation or deletion got there first.
async fn rotate(store: &PgStore, rotation: &Rotation) -> Result<Rotated, StoreError> {
    let session = SessionValues::of(&rotation.session)?;
    let client_ip = rotation.client.ip.map(|ip| ip.to_string());
    let outcome = store
        .retry(|| async {
            let row = Stmt::<Postgres>::new(&store.sql.rotate)
                .rotated_login_key(rotation)
                .rotated_login_state(rotation, client_ip.as_deref())
                .session(&session)
                .bind(others_kept(rotation.max_sessions))
                .query()
                .fetch_one(&store.pool)
                .await;
            let row = match row {
                // The new session's digest was taken after our snapshot.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                    return Ok(Some(Rotated::SessionExists));
                }
                other => other?,
            };
            Ok(match reported(&row)? {
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
    let exists = store
        .retry(|| async {
            Ok(Stmt::<Postgres>::new(&store.sql.login_exists)
                .user(&rotation.username)
                .bind(&rotation.serial.as_bytes()[..])
                .query()
                .fetch_optional(&store.pool)
                .await?)
        })
        .await?;
    Ok(if exists.is_some() { Rotated::NotCurrent } else { Rotated::NotFound })
}

/// `rotate_current` in one statement: the rotation applies only to a login
/// the attempt applies to, or answers the login as the statement's snapshot
/// holds it. A second statement, a read, only when a concurrent rotation or
/// delete committed after that snapshot (the login it read looks rotatable,
/// yet the `UPDATE`, which re-checks the newest row version, did not apply).
async fn rotate_current(store: &PgStore, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
    let rotation = &attempt.rotation;
    let session = SessionValues::of(&rotation.session)?;
    let client_ip = rotation.client.ip.map(|ip| ip.to_string());
    let found = store
        .retry(|| async {
            let mut conn = store.write().await?;
            let row = Stmt::<Postgres>::new(&store.sql.rotate_current)
                .rotated_login_key(rotation)
                .rotated_login_state(rotation, client_ip.as_deref())
                .session(&session)
                .bind(others_kept(rotation.max_sessions))
                .bind(micros(attempt.now))
                .bind(micros(attempt.created_since))
                .fetch_one(&mut conn)
                .await;
            let row = match row {
                // The new session's digest was taken after our snapshot.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => return Ok(None),
                other => other?,
            };
            let rotated: Option<i64> = row.get(0)?;
            let clash: bool = row.get(1)?;
            Ok(Some((rotated, clash, login_row(&row, 2)?)))
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
    // Rotatable in our snapshot, yet not rotated: what won the race is newer
    // than the snapshot.
    Ok(CurrentRotated::NotApplied(store.get_login(&rotation.username, &rotation.serial).await?))
}

/// `create_remembered` in one statement: the login, its session and the cap
/// on the user's sessions, and the user's other logins when asked.
async fn remembered(
    store: &PgStore,
    login: &Login,
    session: &SessionRecord,
    max_sessions: Option<NonZeroUsize>,
    list_logins: bool,
) -> Result<Remembered, StoreError> {
    // The session goes under the login's user: one naming somebody else
    // would be counted against, and deleted with, the wrong logins.
    expected_core::store::remembered_owner(login, session)?;
    let login_values = LoginValues::of(login);
    let values = SessionValues::of(session)?;
    let found = store
        .retry(|| async {
            let mut conn = store.write().await?;
            let rows = Stmt::<Postgres>::new(&store.sql.remembered)
                .login(&login.username, &login_values)
                .session(&values)
                .bind(others_kept(max_sessions))
                .bind(list_logins)
                .fetch_all(&mut conn)
                .await;
            let rows = match rows {
                // The digest was taken after our snapshot: nothing written.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => return Ok(None),
                other => other?,
            };
            // The statement answers at least one row (a LEFT JOIN on one).
            let Some(first) = rows.first() else { return Err(Failure::from(sqlx::Error::RowNotFound)) };
            let (created, clash): (bool, bool) = (first.get(0)?, first.get(1)?);
            let mut others = Vec::new();
            for row in &rows {
                others.extend(login_row(row, 2)?);
            }
            Ok(Some((created, clash, others)))
        })
        .await?;
    Ok(match found {
        None | Some((false, true, _)) => Remembered::SessionExists,
        Some((false, false, _)) => Remembered::LoginExists,
        Some((true, _, others)) if list_logins => Remembered::Created {
            others: Some(
                others.into_iter().map(|row| row.into_login(&login.username)).collect::<Result<_, _>>()?,
            ),
        },
        Some((true, ..)) => Remembered::Created { others: None },
    })
}

async fn remove_login(store: &PgStore, user: &Username, serial: &Serial) -> Result<bool, StoreError> {
    let (existed, bound, bound_deleted) = store
        .retry(|| async {
            let row = Stmt::<Postgres>::new(&store.sql.delete_login)
                .user(user)
                .bind(&serial.as_bytes()[..])
                .query()
                .fetch_one(&store.pool)
                .await?;
            let found: (bool, Option<Vec<u8>>, bool) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            Ok(found)
        })
        .await?;
    if let (true, Some(bound), false) = (existed, &bound, bound_deleted) {
        // The login was rotated while we waited for its row: its new
        // session was committed after our snapshot, so a second statement
        // (with a fresh one) ends it. Also runs, harmlessly, when the bound
        // session had already ended.
        store
            .retry(|| async {
                Ok(Stmt::<Postgres>::new(&store.sql.delete_login_sessions)
                    .user(user)
                    .bind(&serial.as_bytes()[..])
                    .bind(bound.as_slice())
                    .query()
                    .execute(&store.pool)
                    .await?)
            })
            .await?;
    }
    Ok(existed)
}

/// Deletes the user's logins but `keep.login` and sessions but
/// `keep.session`; everything when `keep` is `None`.
async fn remove_user(store: &PgStore, user: &Username, keep: Option<&Keep>) -> Result<Deleted, StoreError> {
    let kept_session = keep.map(|keep| &keep.session.as_bytes()[..]);
    let kept_login = keep.and_then(|keep| keep.login.as_ref()).map(|serial| &serial.as_bytes()[..]);
    let (serials, sessions, missed) = store
        .retry(|| async {
            let row = Stmt::<Postgres>::new(&store.sql.delete_user)
                .user(user)
                .bind(kept_session)
                .bind(kept_login)
                .query()
                .fetch_one(&store.pool)
                .await?;
            let found: (Vec<Vec<u8>>, i64, Vec<Vec<u8>>) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            Ok(found)
        })
        .await?;
    let mut sessions = sessions.unsigned_abs();
    if !missed.is_empty() {
        // A deleted login's bound session was not among the deleted ones:
        // a rotation committed after our snapshot (we waited for its login
        // row) may have created it, invisible to us. A second statement,
        // with a fresh snapshot, ends what those logins opened. Also runs,
        // harmlessly, when the bound session had simply ended earlier.
        let done = store
            .retry(|| async {
                Ok(Stmt::<Postgres>::new(&store.sql.delete_opened_sessions)
                    .user(user)
                    .bind(kept_session)
                    .query()
                    .bind(&serials)
                    .bind(&missed)
                    .execute(&store.pool)
                    .await?)
            })
            .await?;
        sessions += done.rows_affected();
    }
    let serials = serials.into_iter().map(serial_from).collect::<Result<_, _>>()?;
    Ok(Deleted::new(serials, sessions))
}
