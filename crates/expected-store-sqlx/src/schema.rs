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
    /// The statements, each safe to run again (`IF NOT EXISTS`).
    pub statements: Vec<String>,
}

impl Tables {
    /// The migrations for `backend`, oldest first.
    pub fn migrations(&self, backend: Backend) -> Vec<Migration> {
        vec![Migration { version: 1, description: "logins and sessions", statements: initial(backend, self) }]
    }

    /// The whole schema for `backend` as one idempotent SQL script, for teams
    /// that run their own migration tooling: the tables, their indexes, and
    /// this crate's migrations table recording that version 1 is applied (so
    /// that a later `migrate()` finds nothing to do).
    pub fn schema_sql(&self, backend: Backend) -> String {
        let mut script = String::new();
        for migration in self.migrations(backend) {
            for statement in &migration.statements {
                script.push_str(statement);
                script.push_str(";\n\n");
            }
        }
        script.push_str(&migrations_table(backend, self));
        script.push_str(";\n\n");
        let (insert, or_nothing) = if backend == Backend::MySql {
            ("INSERT IGNORE", "")
        } else {
            ("INSERT", " ON CONFLICT DO NOTHING")
        };
        script.push_str(&format!(
            "{insert} INTO {} (version, description, applied_at) VALUES (1, 'logins and sessions', 0){or_nothing};\n",
            backend.quote(self.migrations_table())
        ));
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

/// Version 1: the two tables and their indexes.
fn initial(backend: Backend, tables: &Tables) -> Vec<String> {
    let logins = backend.quote(tables.logins());
    let sessions = backend.quote(tables.sessions());
    let index = |table: &str, suffix: &str| backend.quote(&format!("{table}_{suffix}"));
    let logins_expiry = index(tables.logins(), "expires_at_idx");
    let sessions_login = index(tables.sessions(), "login_idx");
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
