//! The operations MySQL and SQLite run as the same write transactions of
//! several statements ([`Transactional`]): a grace session, a session under
//! a cap, deleting a user's logins and sessions; and the steps of MySQL's
//! rotation (SQLite's sends fewer commands: `sqlite/rotation.rs`).
//!
//! Each attempt takes the writer, begins the dialect's write transaction
//! (MySQL `BEGIN`, SQLite `BEGIN IMMEDIATE`; a session's creation under a
//! cap or as a grace session with
//! [`Transactional::begin_session_write`], on MySQL at `READ COMMITTED`),
//! runs its statements on it and only on it, and commits or rolls back
//! before letting the writer go: a retry's pause is outside.
//!
//! The sessions a transaction deletes beside the ones its user names (the
//! cap's) are read first by a plain `SELECT`, then deleted one by one by the
//! whole primary key: on MySQL a `DELETE` that scans the user's range locks
//! rows and gaps of the user's other devices, and rotations of two devices
//! deadlocked on each other (see `MySql::begin_session_write`).

use std::num::NonZeroUsize;

use expected_core::store::{Deleted, GraceInserted, Inserted, Keep};
use expected_core::{SessionRecord, StoreError, Username};

use crate::codec::{SessionValues, serial_from};
use crate::dialect::{Connection, Transactional};
use crate::driver::Stmt;
use crate::statements::others_kept;
use crate::store::SqlStore;

/// A user's session and the cap on the user's sessions, in one write
/// transaction.
pub(crate) async fn insert_capped<D: Transactional>(
    store: &SqlStore<D>,
    session: &SessionRecord,
    max: NonZeroUsize,
) -> Result<Inserted, StoreError> {
    let values = SessionValues::of(session)?;
    store
        .retry(|| async {
            let mut conn = store.write().await?;
            let mut tx = D::begin_session_write(&mut conn).await?;
            if !insert_session_in(store, &mut tx, &values).await? {
                tx.rollback().await?;
                return Ok(Inserted::AlreadyExists);
            }
            if let Some(user) = values.owner {
                evict_in(store, &mut tx, user, values.digest, Some(max)).await?;
            }
            tx.commit().await?;
            Ok(Inserted::Created)
        })
        .await
}

/// A grace session for a login that still exists, in one write
/// transaction: binding it to the login first (on MySQL the row lock orders
/// a racing delete of the login before or after us; SQLite serializes
/// writers), then the insert, which a duplicate key rolls back with the
/// binding.
pub(crate) async fn create_grace<D: Transactional>(
    store: &SqlStore<D>,
    session: &SessionRecord,
    max_sessions: Option<NonZeroUsize>,
) -> Result<GraceInserted, StoreError> {
    let values = SessionValues::of(session)?;
    let Some(serial) = values.login_serial else { return Ok(GraceInserted::LoginGone) };
    let tx_sql = D::tx(&store.sql);
    store
        .retry(|| async {
            let mut conn = store.write().await?;
            let mut tx = D::begin_session_write(&mut conn).await?;
            let bound = Stmt::<D>::new(&tx_sql.bind_session)
                .bind(values.digest)
                .owner(values.owner)
                .bind(serial)
                .execute(&mut tx)
                .await?;
            if bound == 0 {
                tx.rollback().await?;
                return Ok(GraceInserted::LoginGone);
            }
            if !insert_session_in(store, &mut tx, &values).await? {
                tx.rollback().await?;
                return Ok(GraceInserted::AlreadyExists);
            }
            if let Some(user) = values.owner {
                evict_in(store, &mut tx, user, values.digest, max_sessions).await?;
            }
            tx.commit().await?;
            Ok(GraceInserted::Created)
        })
        .await
}

/// Deletes the user's logins but `keep.login` and sessions but
/// `keep.session`; everything when `keep` is `None`. The logins are read
/// first (on MySQL locked, `FOR UPDATE`: a rotation of one of them waits, or
/// is waited for, so its new session is deleted too).
pub(crate) async fn remove_user<D: Transactional>(
    store: &SqlStore<D>,
    user: &Username,
    keep: Option<&Keep>,
) -> Result<Deleted, StoreError> {
    let kept_login = keep.and_then(|keep| keep.login.as_ref()).map(|serial| &serial.as_bytes()[..]);
    let kept_session = keep.map(|keep| &keep.session.as_bytes()[..]);
    let tx_sql = D::tx(&store.sql);
    let (serials, sessions) = store
        .retry(|| async {
            let mut conn = store.write().await?;
            let mut tx = D::begin(&mut conn).await?;
            let rows =
                Stmt::<D>::new(&tx_sql.user_serials).user(user).bind(kept_login).fetch_all(&mut tx).await?;
            let serials = rows.iter().map(|row| row.get::<Vec<u8>>(0)).collect::<Result<Vec<_>, _>>()?;
            let sessions = Stmt::<D>::new(&tx_sql.delete_user_sessions)
                .user(user)
                .bind(kept_session)
                .execute(&mut tx)
                .await?;
            Stmt::<D>::new(&tx_sql.delete_user_logins).user(user).bind(kept_login).execute(&mut tx).await?;
            tx.commit().await?;
            Ok((serials, sessions))
        })
        .await?;
    let serials = serials.into_iter().map(serial_from).collect::<Result<_, _>>()?;
    Ok(Deleted::new(serials, sessions))
}

/// Inserts a session inside the transaction on `conn`: `false` when its
/// key is taken (a duplicate key, or nothing inserted), for the caller to
/// roll back.
pub(crate) async fn insert_session_in<D: Transactional>(
    store: &SqlStore<D>,
    conn: &mut Connection<D>,
    values: &SessionValues<'_>,
) -> Result<bool, sqlx::Error> {
    match Stmt::<D>::new(&store.common().insert_session).session(values).execute(conn).await {
        Ok(inserted) => Ok(inserted > 0),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(false),
        Err(error) => Err(error),
    }
}

/// Deletes, inside the transaction on `conn`, the user's sessions that
/// expire first beyond `max`, counting `keep` (the session just created,
/// which stays); nothing without a cap. They are read first, then deleted
/// one by one by key (see `TxSql::sessions_beyond`): usually none.
pub(crate) async fn evict_in<D: Transactional>(
    store: &SqlStore<D>,
    conn: &mut Connection<D>,
    user: &Username,
    keep: &[u8],
    max: Option<NonZeroUsize>,
) -> Result<(), sqlx::Error> {
    let Some(others) = others_kept(max) else { return Ok(()) };
    let beyond = Stmt::<D>::new(&D::tx(&store.sql).sessions_beyond)
        .user(user)
        .bind(keep)
        .bind(others)
        .fetch_all(&mut *conn)
        .await?;
    for row in &beyond {
        let digest: Vec<u8> = row.get(0)?;
        delete_session_in(store, &mut *conn, user, &digest).await?;
    }
    Ok(())
}

/// Deletes the user's session `digest` inside the transaction on `conn`, by
/// the whole primary key.
pub(crate) async fn delete_session_in<D: Transactional>(
    store: &SqlStore<D>,
    conn: &mut Connection<D>,
    user: &Username,
    digest: &[u8],
) -> Result<(), sqlx::Error> {
    Stmt::<D>::new(&D::tx(&store.sql).delete_session_by_key).user(user).bind(digest).execute(conn).await?;
    Ok(())
}
