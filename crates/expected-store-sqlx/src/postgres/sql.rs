//! PostgreSQL's statements. Each operation of its own is one statement (a
//! CTE over both tables); to add one, add its text here and the code that
//! runs it to `postgres/mod.rs`.

use expected_core::AuthMethod;

use crate::statements::{CommonSql, LOGIN_COLUMNS, SESSION_COLUMNS, SqlText};
use crate::tables::{Backend, Tables};

/// PostgreSQL's statements: the shared ones, and its own single-statement
/// operations (CTEs that change both tables and report what they saw).
#[derive(Debug)]
pub struct Sql {
    pub(crate) common: CommonSql,
    pub(crate) insert_capped: SqlText,
    pub(crate) rotate: SqlText,
    pub(crate) rotate_current: SqlText,
    pub(crate) remembered: SqlText,
    pub(crate) grace: SqlText,
    pub(crate) login_exists: SqlText,
    pub(crate) delete_login: SqlText,
    pub(crate) delete_login_sessions: SqlText,
    pub(crate) delete_user: SqlText,
    pub(crate) delete_opened_sessions: SqlText,
    pub(crate) confirm: SqlText,
    pub(crate) expire_logins: SqlText,
}

impl Sql {
    pub(crate) fn new(tables: &Tables, batch: u32) -> Self {
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
