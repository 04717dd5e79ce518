//! The schema, as versioned migrations per backend.

use crate::tables::{Backend, Tables};

/// One migration: a version, a description and idempotent statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Applied in increasing order, each once; recorded in the migrations
    /// table.
    pub version: i64,
    /// What it does.
    pub description: &'static str,
    /// The statements. On PostgreSQL and MySQL each is safe to run again
    /// (`IF NOT EXISTS`, or a guard on `information_schema`), because MySQL
    /// commits DDL at once and a migration cut short must be able to run
    /// again. SQLite has no `ADD COLUMN IF NOT EXISTS`: there a migration
    /// runs in one transaction with its record in the migrations table, and
    /// its `ALTER TABLE`s fail (changing nothing) when run again.
    pub statements: Vec<String>,
}

impl Tables {
    /// The migrations for `backend`, oldest first.
    pub fn migrations(&self, backend: Backend) -> Vec<Migration> {
        vec![
            Migration { version: 1, description: "logins and sessions", statements: initial(backend, self) },
            Migration {
                version: 2,
                description: "anonymous sessions, authentication method and time",
                statements: authentication(backend, self),
            },
        ]
    }

    /// The whole schema for `backend` as one SQL script, for teams that run
    /// their own migration tooling: every migration in order (so it also
    /// upgrades a database at an older version), then this crate's
    /// migrations table recording each version applied (so that a later
    /// `migrate()` finds nothing to do). Running it again changes nothing; on
    /// SQLite the version-2 `ALTER TABLE`s then fail with "duplicate column
    /// name", harmlessly.
    pub fn schema_sql(&self, backend: Backend) -> String {
        let mut script = String::new();
        let migrations = self.migrations(backend);
        for migration in &migrations {
            script.push_str(&format!("-- Version {}: {}.\n\n", migration.version, migration.description));
            for statement in &migration.statements {
                script.push_str(statement);
                script.push_str(";\n\n");
            }
        }
        script.push_str("-- This crate's record of the versions applied.\n\n");
        script.push_str(&migrations_table(backend, self));
        script.push_str(";\n\n");
        let (insert, or_nothing) = if backend == Backend::MySql {
            ("INSERT IGNORE", "")
        } else {
            ("INSERT", " ON CONFLICT DO NOTHING")
        };
        for migration in &migrations {
            script.push_str(&format!(
                "{insert} INTO {} (version, description, applied_at) VALUES ({}, '{}', 0){or_nothing};\n",
                backend.quote(self.migrations_table()),
                migration.version,
                migration.description,
            ));
        }
        script
    }
}

/// The table recording which migrations ran.
pub(crate) fn migrations_table(backend: Backend, tables: &Tables) -> String {
    let name = backend.quote(tables.migrations_table());
    match backend {
        Backend::Postgres | Backend::Sqlite => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n    \
                version BIGINT NOT NULL PRIMARY KEY,\n    \
                description TEXT NOT NULL,\n    \
                applied_at BIGINT NOT NULL\n\
            )"
        ),
        Backend::MySql => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n    \
                version BIGINT NOT NULL PRIMARY KEY,\n    \
                description VARCHAR(255) NOT NULL,\n    \
                applied_at BIGINT NOT NULL\n\
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        ),
    }
}

/// The name of the sessions' `(username, login_serial)` index, unquoted.
pub(crate) fn sessions_login_index(tables: &Tables) -> String {
    format!("{}_login_idx", tables.sessions())
}

/// Version 1: the two tables and their indexes.
fn initial(backend: Backend, tables: &Tables) -> Vec<String> {
    let logins = backend.quote(tables.logins());
    let sessions = backend.quote(tables.sessions());
    let index = |table: &str, suffix: &str| backend.quote(&format!("{table}_{suffix}"));
    let logins_expiry = index(tables.logins(), "expires_at_idx");
    let sessions_login = backend.quote(&sessions_login_index(tables));
    let sessions_expiry = index(tables.sessions(), "expires_at_idx");
    match backend {
        Backend::Postgres | Backend::Sqlite => {
            let (text, bytes, json) = if backend == Backend::Postgres {
                ("TEXT", "BYTEA", "JSON")
            } else {
                ("TEXT", "BLOB", "TEXT")
            };
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {logins} (\n    \
                        username {text} NOT NULL,\n    \
                        serial {bytes} NOT NULL,\n    \
                        token {bytes} NOT NULL,\n    \
                        previous_token {bytes},\n    \
                        previous_rotated_at BIGINT,\n    \
                        previous_sealed {bytes},\n    \
                        session_digest {bytes},\n    \
                        created_at BIGINT NOT NULL,\n    \
                        last_used_at BIGINT NOT NULL,\n    \
                        expires_at BIGINT NOT NULL,\n    \
                        client_ip {text},\n    \
                        user_agent {text},\n    \
                        PRIMARY KEY (username, serial)\n\
                    )"
                ),
                format!("CREATE INDEX IF NOT EXISTS {logins_expiry} ON {logins} (expires_at)"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {sessions} (\n    \
                        username {text} NOT NULL,\n    \
                        digest {bytes} NOT NULL,\n    \
                        login_serial {bytes},\n    \
                        data {json} NOT NULL,\n    \
                        created_at BIGINT NOT NULL,\n    \
                        expires_at BIGINT NOT NULL,\n    \
                        PRIMARY KEY (username, digest)\n\
                    )"
                ),
                format!("CREATE INDEX IF NOT EXISTS {sessions_login} ON {sessions} (username, login_serial)"),
                format!("CREATE INDEX IF NOT EXISTS {sessions_expiry} ON {sessions} (expires_at)"),
            ]
        }
        // MySQL 8 has no CREATE INDEX IF NOT EXISTS: the indexes are part of
        // the (idempotent) CREATE TABLE. Usernames are VARBINARY: compared
        // byte for byte, with no case folding and no trailing-space padding.
        Backend::MySql => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {logins} (\n    \
                    username VARBINARY(255) NOT NULL,\n    \
                    serial BINARY(16) NOT NULL,\n    \
                    token BINARY(32) NOT NULL,\n    \
                    previous_token BINARY(32) NULL,\n    \
                    previous_rotated_at BIGINT NULL,\n    \
                    previous_sealed BINARY(64) NULL,\n    \
                    session_digest BINARY(32) NULL,\n    \
                    created_at BIGINT NOT NULL,\n    \
                    last_used_at BIGINT NOT NULL,\n    \
                    expires_at BIGINT NOT NULL,\n    \
                    client_ip VARCHAR(64) NULL,\n    \
                    user_agent TEXT NULL,\n    \
                    PRIMARY KEY (username, serial),\n    \
                    INDEX {logins_expiry} (expires_at)\n\
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {sessions} (\n    \
                    username VARBINARY(255) NOT NULL,\n    \
                    digest BINARY(32) NOT NULL,\n    \
                    login_serial BINARY(16) NULL,\n    \
                    data LONGTEXT NOT NULL,\n    \
                    created_at BIGINT NOT NULL,\n    \
                    expires_at BIGINT NOT NULL,\n    \
                    PRIMARY KEY (username, digest),\n    \
                    INDEX {sessions_login} (username, login_serial),\n    \
                    INDEX {sessions_expiry} (expires_at)\n\
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
            ),
        ],
    }
}

/// Version 2: a login's `authenticated_at`, a session's `method` and
/// `authenticated_at`, each backfilled with the conservative version-1
/// meaning (the password was entered when the login or session was created;
/// a session was opened by the cookie, so it is not fresh).
///
/// The columns are nullable: an anonymous session has no method, and a
/// version-1 store still running during a rolling upgrade writes rows
/// without them, which read back with the same version-1 meaning. Every
/// statement can run again: the backfills only touch rows still `NULL`, and
/// skip anonymous sessions (username `''`).
fn authentication(backend: Backend, tables: &Tables) -> Vec<String> {
    let logins = backend.quote(tables.logins());
    let sessions = backend.quote(tables.sessions());
    let logins_backfill =
        format!("UPDATE {logins} SET authenticated_at = created_at WHERE authenticated_at IS NULL");
    let sessions_backfill = format!(
        "UPDATE {sessions} SET method = 'remembered', authenticated_at = created_at \
         WHERE method IS NULL AND username <> ''"
    );
    match backend {
        Backend::Postgres => vec![
            format!("ALTER TABLE {logins} ADD COLUMN IF NOT EXISTS authenticated_at BIGINT"),
            logins_backfill,
            format!(
                "ALTER TABLE {sessions} ADD COLUMN IF NOT EXISTS method TEXT, \
                 ADD COLUMN IF NOT EXISTS authenticated_at BIGINT"
            ),
            sessions_backfill,
        ],
        // MySQL 8 has no ADD COLUMN IF NOT EXISTS (MariaDB has): the ALTER
        // is prepared only when information_schema lacks the column. One
        // ALTER per table, which MySQL and MariaDB apply all or nothing.
        Backend::MySql => {
            let guarded = |table: &str, column: &str, alter: String| {
                vec![
                    format!(
                        "SET @expected_ddl = IF(EXISTS (SELECT 1 FROM information_schema.columns \
                         WHERE table_schema = DATABASE() AND table_name = '{table}' AND column_name = '{column}'), \
                         'DO 0', '{alter}')"
                    ),
                    "PREPARE expected_ddl FROM @expected_ddl".to_owned(),
                    "EXECUTE expected_ddl".to_owned(),
                    "DEALLOCATE PREPARE expected_ddl".to_owned(),
                ]
            };
            let mut statements = guarded(
                tables.logins(),
                "authenticated_at",
                format!("ALTER TABLE {logins} ADD COLUMN authenticated_at BIGINT NULL"),
            );
            statements.push(logins_backfill);
            statements.extend(guarded(
                tables.sessions(),
                "method",
                format!(
                    "ALTER TABLE {sessions} ADD COLUMN method VARCHAR(16) NULL, \
                     ADD COLUMN authenticated_at BIGINT NULL"
                ),
            ));
            statements.push(sessions_backfill);
            statements
        }
        Backend::Sqlite => vec![
            format!("ALTER TABLE {logins} ADD COLUMN authenticated_at BIGINT"),
            logins_backfill,
            format!("ALTER TABLE {sessions} ADD COLUMN method TEXT"),
            format!("ALTER TABLE {sessions} ADD COLUMN authenticated_at BIGINT"),
            sessions_backfill,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scripts shipped in `schema/` (and shown in the crate docs) are
    /// exactly what the code runs.
    #[test]
    fn shipped_scripts_match_the_code() {
        let tables = Tables::default();
        for (backend, shipped) in [
            (Backend::Postgres, include_str!("../schema/postgres.sql")),
            (Backend::MySql, include_str!("../schema/mysql.sql")),
            (Backend::Sqlite, include_str!("../schema/sqlite.sql")),
        ] {
            assert_eq!(
                tables.schema_sql(backend),
                shipped,
                "schema/{backend}.sql is stale: regenerate it with `expected-sqlx schema --backend {backend}`"
            );
        }
    }
}
