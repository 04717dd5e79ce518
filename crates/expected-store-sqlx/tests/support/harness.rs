//! The harness every backend file uses: what differs between backends is a
//! [`Backend`] (making and dropping a fresh database, schema or file); the
//! conformance suite and this crate's own checks run over it alike
//! ([`suite!`]).

use expected_conformance::{Harness, RollbackHarness, Unreachable};
use expected_core::{Store, StoreError};
use expected_store_sqlx::Tables;

/// What one backend does differently.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The store on this backend.
    type Store: SqlStore;

    /// The query listing the names of the store's tables, sorted.
    const TABLE_NAMES: &'static str;

    /// What a production database does to the sessions table (default
    /// names) in the background: gathers the planner's statistics, and
    /// vacuums the rows deleted before.
    const SETTLE: &'static str;

    /// The version-1 schema script as this crate shipped it (default table
    /// names), frozen: what a database to upgrade was made with.
    const VERSION_1: &'static str;

    /// `bytes` as an SQL literal.
    fn blob(bytes: &[u8]) -> String;

    /// A store with `tables` on a fresh, empty database (or schema, or file)
    /// that no other call shares; not migrated yet.
    async fn create(&self, tables: Tables) -> Result<Self::Store, Unreachable>;

    /// Closes the store's pool and drops what [`Backend::create`] made.
    async fn drop(&self, store: &Self::Store);
}

/// What the checks ask of a store beyond [`Store`]: the inherent methods
/// every store of this crate has, and reading one column.
#[async_trait::async_trait]
pub trait SqlStore: Store + Clone {
    /// Creates or upgrades the schema.
    async fn migrate(&self) -> Result<Vec<i64>, StoreError>;
    /// Sets how many rows one cleaning statement deletes at most.
    fn with_batch_size(self, batch: u32) -> Self;
    /// The integers a query answers, one a row.
    async fn integers(&self, sql: &'static str) -> Vec<i64>;
    /// The strings a query answers, one a row.
    async fn strings(&self, sql: &'static str) -> Vec<String>;
    /// Runs SQL (one or more statements) as given.
    async fn execute(&self, sql: String);
    /// The store's table names.
    fn table_names(&self) -> &Tables;
}

macro_rules! sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl SqlStore for $store {
            async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
                <$store>::migrate(self).await
            }
            fn with_batch_size(self, batch: u32) -> Self {
                <$store>::with_batch_size(self, batch)
            }
            async fn integers(&self, sql: &'static str) -> Vec<i64> {
                let rows = expected_store_sqlx::sqlx::query_scalar(sql).fetch_all(self.pool()).await;
                rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            async fn strings(&self, sql: &'static str) -> Vec<String> {
                let rows = expected_store_sqlx::sqlx::query_scalar(sql).fetch_all(self.pool()).await;
                rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            async fn execute(&self, sql: String) {
                let query = expected_store_sqlx::sqlx::raw_sql(expected_store_sqlx::sqlx::AssertSqlSafe(sql));
                query.execute(self.pool()).await.unwrap_or_else(|e| panic!("{e}"));
            }
            fn table_names(&self) -> &Tables {
                <$store>::tables(self)
            }
        }
    };
}

#[cfg(feature = "postgres")]
sql_store!(expected_store_sqlx::PgStore);
#[cfg(feature = "mysql")]
sql_store!(expected_store_sqlx::MySqlStore);
#[cfg(feature = "sqlite")]
sql_store!(expected_store_sqlx::SqliteStore);

/// Fresh, migrated stores of a [`Backend`], dropped after each case.
pub struct Fresh<B> {
    backend: B,
    tables: Tables,
    /// Made with [`Backend::VERSION_1`] instead of migrated.
    version_1: bool,
}

impl<B: Backend> Fresh<B> {
    /// With the default [`Tables`].
    pub fn new(backend: B) -> Self {
        Self::with_tables(backend, Tables::default())
    }

    /// With the given table names.
    pub fn with_tables(backend: B, tables: Tables) -> Self {
        Self { backend, tables, version_1: false }
    }

    /// With the version-1 schema, not migrated.
    pub fn at_version_1(backend: B) -> Self {
        Self { version_1: true, ..Self::new(backend) }
    }
}

#[async_trait::async_trait]
impl<B: Backend> Harness for Fresh<B> {
    type Store = B::Store;

    async fn store(&self) -> Result<B::Store, Unreachable> {
        let store = self.backend.create(self.tables.clone()).await?;
        if self.version_1 {
            store.execute(B::VERSION_1.to_owned()).await;
        } else {
            store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
        }
        Ok(store)
    }

    async fn cleanup(&self, store: &B::Store) {
        self.backend.drop(store).await;
    }
}

/// The rollback cases' snapshot: a copy of the logins and sessions tables
/// beside them (`CREATE TABLE … AS SELECT *`), and the restore: both tables
/// emptied and refilled from the copies. A logical snapshot stands in for a
/// backup here; `tests/backup.rs` restores real ones (`pg_dump` and
/// `pg_restore`, SQLite's `VACUUM INTO`) under concurrent cookie logins.
#[async_trait::async_trait]
impl<B: Backend> RollbackHarness for Fresh<B> {
    type Snapshot = String;

    async fn snapshot(&self, store: &B::Store) -> Result<String, Unreachable> {
        let tag = super::unique_name("snap");
        let tables = store.table_names();
        for table in [tables.logins(), tables.sessions()] {
            store.execute(format!("CREATE TABLE {table}_{tag} AS SELECT * FROM {table}")).await;
        }
        Ok(tag)
    }

    async fn restore(&self, store: &B::Store, tag: &String) -> Result<(), Unreachable> {
        let (logins, sessions) = (store.table_names().logins(), store.table_names().sessions());
        store
            .execute(format!(
                "DELETE FROM {sessions}; DELETE FROM {logins}; \
                 INSERT INTO {logins} SELECT * FROM {logins}_{tag}; \
                 INSERT INTO {sessions} SELECT * FROM {sessions}_{tag};"
            ))
            .await;
        Ok(())
    }
}

/// Migrating again, and again, changes nothing; the tables take the prefix.
pub fn migrate_is_idempotent_with_own_table_and_prefix<B: Backend>(backend: B) {
    let tables = Tables::with_prefix("auth_").unwrap_or_else(|e| panic!("{e}"));
    let name = "migrate_is_idempotent_with_own_table_and_prefix";
    expected_conformance::run(Fresh::with_tables(backend, tables), name, |store| async move {
        store.migrate().await.unwrap_or_else(|e| panic!("second migrate: {e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("third migrate: {e}"));
        let versions = store.integers("SELECT version FROM auth_migrations ORDER BY version").await;
        assert_eq!(versions, [1, 2]);
        assert_eq!(store.strings(B::TABLE_NAMES).await, ["auth_logins", "auth_migrations", "auth_sessions"]);
    });
}

/// [`super::check_batched_cleaning`], in batches of 3.
pub fn cleaning_runs_in_batches<B: Backend>(backend: B) {
    expected_conformance::run(Fresh::new(backend), "cleaning_runs_in_batches", |store| async move {
        super::check_batched_cleaning((*store).clone().with_batch_size(3)).await;
    });
}

/// [`super::check_revocation_races_rotation`], by login, by user and by
/// logging out the other devices.
pub fn revocation_races_rotation<B: Backend>(backend: B) {
    use super::Revocation;
    expected_conformance::run(Fresh::new(backend), "revocation_races_rotation", |store| async move {
        for how in [Revocation::Login, Revocation::User, Revocation::OtherDevices] {
            super::check_revocation_races_rotation(store.clone(), how).await;
        }
    });
}

/// [`super::upgrade::check_upgrade_from_version_1`] on a version-1 database.
pub fn upgrade_from_version_1<B: Backend>(backend: B) {
    expected_conformance::run(Fresh::at_version_1(backend), "upgrade_from_version_1", |store| async move {
        super::upgrade::check_upgrade_from_version_1((*store).clone(), B::blob).await;
    });
}

/// [`expected_conformance::cost::revoke_cost`] with 10 000 and 64 sessions
/// on one user, printed as the rows of `docs/benchmarks.md`.
#[allow(clippy::print_stdout)] // its figures are what it is for
pub fn revoke_cost<B: Backend>(backend: B) {
    expected_conformance::run(Fresh::new(backend), "revoke_cost", |store| async move {
        // The statistics a production database has (without them the
        // planner takes the user's rows for a handful), and no dead rows
        // of the rounds before.
        let settle = || store.execute(B::SETTLE.to_owned());
        let rows = [
            expected_conformance::cost::revoke_cost(&*store, 10_000, 3, settle).await,
            expected_conformance::cost::revoke_cost(&*store, 64, 20, settle).await,
        ];
        let mut table = String::from(expected_conformance::cost::HEADER);
        for row in rows {
            table.push_str(&format!("\n{row}"));
        }
        println!("{table}");
    });
}

/// The conformance suite and this crate's own checks, each on a fresh store
/// of `$backend` (an expression, evaluated once per test).
macro_rules! suite {
    ($backend:expr) => {
        expected_conformance::tests!($crate::support::Fresh::new($backend));
        expected_conformance::rollback_tests!($crate::support::Fresh::new($backend));

        #[test]
        fn migrate_is_idempotent_with_own_table_and_prefix() {
            $crate::support::migrate_is_idempotent_with_own_table_and_prefix($backend);
        }

        #[test]
        fn cleaning_runs_in_batches() {
            $crate::support::cleaning_runs_in_batches($backend);
        }

        #[test]
        fn revocation_races_rotation() {
            $crate::support::revocation_races_rotation($backend);
        }

        #[test]
        fn upgrade_from_version_1() {
            $crate::support::upgrade_from_version_1($backend);
        }

        /// A measurement: `cargo test --release -p expected-store-sqlx
        /// --features … --test … -- --ignored revoke_cost --nocapture`.
        #[test]
        #[ignore = "a measurement for docs/benchmarks.md, not a check"]
        fn revoke_cost() {
            $crate::support::revoke_cost($backend);
        }
    };
}
pub(crate) use suite;
