//! Table names, validated, and the backends they are written for.

use std::fmt;

/// The SQL dialects this crate speaks. Always available, whatever the
/// features, so that the schema can be printed for any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL 12 or later.
    Postgres,
    /// MySQL 8 or MariaDB 10.5 or later.
    MySql,
    /// SQLite 3.35 or later (the store uses `DELETE … RETURNING`; the
    /// bundled one is newer).
    Sqlite,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::Postgres, Backend::MySql, Backend::Sqlite];

    /// The backend a database URL names (`postgres://`, `postgresql://`,
    /// `mysql://`, `mariadb://`, `sqlite:`), if any.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    /// Quotes a validated identifier.
    pub(crate) fn quote(self, name: &str) -> String {
        match self {
            Self::MySql => format!("`{name}`"),
            Self::Postgres | Self::Sqlite => format!("\"{name}\""),
        }
    }

    /// The `n`th (from 1) bind parameter.
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    pub(crate) fn param(self, n: usize) -> String {
        match self {
            Self::MySql => "?".to_owned(),
            Self::Postgres | Self::Sqlite => format!("${n}"),
        }
    }

    /// `a` equals `b`, `NULL` equal to `NULL` and unequal to anything else:
    /// never `NULL` itself, so that `NOT` of it is safe.
    #[cfg(any(feature = "mysql", feature = "sqlite"))]
    pub(crate) fn same(self, a: &str, b: &str) -> String {
        match self {
            Self::Postgres => format!("{a} IS NOT DISTINCT FROM {b}"),
            Self::MySql => format!("{a} <=> {b}"),
            Self::Sqlite => format!("{a} IS {b}"),
        }
    }

    /// Bind parameters `from..=to`, comma separated.
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    pub(crate) fn params(self, from: usize, to: usize) -> String {
        (from..=to).map(|n| self.param(n)).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
            Self::Sqlite => "sqlite",
        })
    }
}

/// Longest table name accepted: index names add a suffix of at most 16
/// characters and must stay within PostgreSQL's 63 and MySQL's 64.
pub const MAX_TABLE_NAME_LEN: usize = 40;

/// Why a table name or prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNameError {
    name: String,
    reason: &'static str,
}

impl fmt::Display for TableNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid table name {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for TableNameError {}

/// Validates a table name: `[a-z_][a-z0-9_]*`, at most
/// [`MAX_TABLE_NAME_LEN`] characters. Lower case only, so that the name means
/// the same quoted or not, on every backend and file system.
fn validate(name: &str) -> Result<(), TableNameError> {
    let refuse = |reason| Err(TableNameError { name: name.to_owned(), reason });
    let mut chars = name.chars();
    match chars.next() {
        None => return refuse("empty"),
        Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
            return refuse("must start with a lower-case ASCII letter or `_`");
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return refuse("only lower-case ASCII letters, digits and `_` are allowed");
    }
    if name.len() > MAX_TABLE_NAME_LEN {
        return refuse("longer than 40 characters");
    }
    Ok(())
}

/// The names of the three tables the store uses.
///
/// The default is `expected_logins`, `expected_sessions` and
/// `expected_migrations`. The migrations table is this crate's own, never
/// sqlx's `_sqlx_migrations`, so the application's sqlx migrations and these
/// never see each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    logins: String,
    sessions: String,
    migrations: String,
}

impl Default for Tables {
    fn default() -> Self {
        Self {
            logins: "expected_logins".to_owned(),
            sessions: "expected_sessions".to_owned(),
            migrations: "expected_migrations".to_owned(),
        }
    }
}

impl Tables {
    /// `{prefix}logins`, `{prefix}sessions` and `{prefix}migrations`.
    /// The prefix may be empty.
    ///
    /// ```
    /// use expected_store_sqlx::Tables;
    ///
    /// let tables = Tables::with_prefix("auth_")?;
    /// assert_eq!((tables.logins(), tables.sessions()), ("auth_logins", "auth_sessions"));
    /// # Ok::<(), expected_store_sqlx::TableNameError>(())
    /// ```
    pub fn with_prefix(prefix: &str) -> Result<Self, TableNameError> {
        Self::new(format!("{prefix}logins"), format!("{prefix}sessions"), format!("{prefix}migrations"))
    }

    /// Three explicit names, which must differ.
    ///
    /// ```
    /// use expected_store_sqlx::Tables;
    ///
    /// let tables = Tables::new("remember_logins", "web_sessions", "remember_migrations")?;
    /// assert_eq!(tables.sessions(), "web_sessions");
    /// // Lower-case ASCII letters, digits and `_` only:
    /// assert!(Tables::new("auth.logins", "auth.sessions", "auth.migrations").is_err());
    /// # Ok::<(), expected_store_sqlx::TableNameError>(())
    /// ```
    pub fn new(
        logins: impl Into<String>,
        sessions: impl Into<String>,
        migrations: impl Into<String>,
    ) -> Result<Self, TableNameError> {
        let tables = Self { logins: logins.into(), sessions: sessions.into(), migrations: migrations.into() };
        for name in [&tables.logins, &tables.sessions, &tables.migrations] {
            validate(name)?;
        }
        if tables.logins == tables.sessions
            || tables.logins == tables.migrations
            || tables.sessions == tables.migrations
        {
            return Err(TableNameError { name: tables.logins, reason: "the three table names must differ" });
        }
        Ok(tables)
    }

    /// The logins table.
    pub fn logins(&self) -> &str {
        &self.logins
    }

    /// The sessions table.
    pub fn sessions(&self) -> &str {
        &self.sessions
    }

    /// This crate's migrations table.
    pub fn migrations_table(&self) -> &str {
        &self.migrations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(Tables::with_prefix("").is_ok());
        assert!(Tables::with_prefix("app_auth_").is_ok());
        for bad in ["A_", "1x_", "x-", "x y_", "x\"_", "x`_", "é_", "x;drop_", &"x".repeat(40)] {
            assert!(Tables::with_prefix(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(Tables::new("a", "a", "b").is_err());
        assert_eq!(Tables::new("l", "s", "m").map(|t| t.logins().to_owned()), Ok("l".to_owned()));
    }

    #[test]
    fn urls_name_their_backend() {
        assert_eq!(Backend::from_url("postgres://x/y"), Some(Backend::Postgres));
        assert_eq!(Backend::from_url("postgresql://x/y"), Some(Backend::Postgres));
        assert_eq!(Backend::from_url("mariadb://x/y"), Some(Backend::MySql));
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("redis://x"), None);
    }
}
