//! SQLite's rotation: four commands to SQLite's thread instead of one per
//! statement.
//!
//! Every statement sqlx hands to a SQLite connection is a round trip to the
//! connection's thread, and the rotation runs on the one writer, so its
//! round trips are what every other write waits for. Inside `BEGIN
//! IMMEDIATE` nothing else writes, so once the compare-and-swap has won (and
//! refused a taken session digest), nothing the rest does can fail for a
//! reason to tell apart: the new session's `INSERT`, the `DELETE` of the
//! login's other sessions, the cap and the new binding are one command of
//! several statements, with the `COMMIT` after it. A refusal costs a
//! `SELECT` telling `NotFound`, `NotCurrent` and `SessionExists` apart,
//! then `ROLLBACK`.

use expected_core::StoreError;
use expected_core::store::{Rotated, Rotation};

use super::{Sqlite, SqliteStore};
use crate::codec::SessionValues;
use crate::dialect::Dialect as _;
use crate::driver::Stmt;
use crate::statements::{SESSION_COLUMNS, SqlText, others_kept};
use crate::tables::{Backend, Tables};

/// The rotation's statements.
#[derive(Debug)]
pub(super) struct RotationSql {
    /// The compare-and-swap, refused when the new session's digest is
    /// taken. The login's new values are $1 to $8, its key $9 and $10, the
    /// presented token's digest $11, the new session's key $12 and $13.
    cas: SqlText,
    /// Why the compare-and-swap was refused: whether the login ($1, $2)
    /// exists, and whether its token is still the presented one ($3).
    refused: SqlText,
    /// After the compare-and-swap: the new session (its values $1 to $8 in
    /// `SESSION_COLUMNS` order), the deletion of every other session of the
    /// login (user $9, serial $10: its bound one, still the old one, and
    /// every one it opened), and the new binding.
    rest: SqlText,
    /// The same, with the cap on the user's sessions before the binding:
    /// the user's other sessions but the $11 that expire last.
    rest_capped: SqlText,
}

impl RotationSql {
    pub(super) fn new(tables: &Tables) -> Self {
        let logins = Backend::Sqlite.quote(tables.logins());
        let sessions = Backend::Sqlite.quote(tables.sessions());
        let text = |s: String| -> SqlText { s.into() };
        // authenticated_at is not set: a rotation never changes it. The
        // binding (session_digest) is left to `rest`, which deletes the old
        // bound session first.
        let cas = format!(
            "UPDATE {logins} SET token = $1, previous_token = $2, previous_rotated_at = $3, \
             previous_sealed = $4, last_used_at = $5, expires_at = $6, client_ip = $7, user_agent = $8 \
             WHERE username = $9 AND serial = $10 AND token = $11 \
             AND NOT EXISTS (SELECT 1 FROM {sessions} WHERE username = $12 AND digest = $13)"
        );
        let refused = format!(
            "SELECT count(*), count(CASE WHEN token = $3 THEN 1 END) FROM {logins} \
             WHERE username = $1 AND serial = $2"
        );
        let insert =
            format!("INSERT INTO {sessions} ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        // Each of the login's sessions found by an index: with an OR of the
        // two, SQLite reads every session of the user.
        let delete_old = format!(
            "DELETE FROM {sessions} WHERE username = $9 AND digest <> $2 AND digest IN \
             (SELECT digest FROM {sessions} WHERE username = $9 AND login_serial = $10 \
              UNION ALL SELECT session_digest FROM {logins} WHERE username = $9 AND serial = $10)"
        );
        let evict = format!(
            "DELETE FROM {sessions} WHERE username = $9 AND digest IN (SELECT digest FROM \
             (SELECT digest FROM {sessions} WHERE username = $9 AND digest <> $2 \
              ORDER BY expires_at DESC LIMIT -1 OFFSET $11) AS beyond)"
        );
        let bind = format!("UPDATE {logins} SET session_digest = $2 WHERE username = $9 AND serial = $10");
        Self {
            cas: text(cas),
            refused: text(refused),
            rest: text(format!("{insert}; {delete_old}; {bind}")),
            rest_capped: text(format!("{insert}; {delete_old}; {evict}; {bind}")),
        }
    }
}

/// `rotate_login` on SQLite: `BEGIN IMMEDIATE`, the compare-and-swap, the
/// rest in one command, `COMMIT` (see the module's docs).
pub(super) async fn rotate(store: &SqliteStore, rotation: &Rotation) -> Result<Rotated, StoreError> {
    let session = SessionValues::of(&rotation.session)?;
    let client_ip = rotation.client.ip.map(|ip| ip.to_string());
    let serial = &rotation.serial.as_bytes()[..];
    let sql = &store.sql.rotation;
    let others = others_kept(rotation.max_sessions);
    store
        .retry(|| async {
            let mut conn = store.write().await?;
            let mut tx = Sqlite::begin(&mut conn).await?;
            let swapped = Stmt::<Sqlite>::new(&sql.cas)
                .rotated_login_state(rotation, client_ip.as_deref())
                .rotated_login_key(rotation)
                .owner(session.owner)
                .bind(session.digest)
                .execute(&mut tx)
                .await?;
            if swapped == 0 {
                let row = Stmt::<Sqlite>::new(&sql.refused)
                    .user(&rotation.username)
                    .bind(serial)
                    .bind(&rotation.expected.as_bytes()[..])
                    .fetch_one(&mut tx)
                    .await?;
                let (found, current) = (row.get::<i64>(0)? > 0, row.get::<i64>(1)? > 0);
                tx.rollback().await?;
                return Ok(match (found, current) {
                    (false, _) => Rotated::NotFound,
                    (true, false) => Rotated::NotCurrent,
                    // Current, yet refused: the new session's digest is taken.
                    (true, true) => Rotated::SessionExists,
                });
            }
            let rest = Stmt::<Sqlite>::new(if others.is_some() { &sql.rest_capped } else { &sql.rest })
                .session(&session)
                .user(&rotation.username)
                .bind(serial);
            let rest = match others {
                Some(others) => rest.bind(others),
                None => rest,
            };
            rest.execute(&mut tx).await?;
            tx.commit().await?;
            Ok(Rotated::Rotated)
        })
        .await
}
