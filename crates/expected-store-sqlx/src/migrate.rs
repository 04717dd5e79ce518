//! Applying the embedded migrations ([`Tables::migrations`]): what every
//! dialect does once it holds its migration lock (PostgreSQL's advisory
//! lock, MySQL's `GET_LOCK`, SQLite's `BEGIN IMMEDIATE`).

use expected_core::time::OffsetDateTime;

use crate::codec::micros;
use crate::dialect::{Connection, Dialect};
use crate::driver::{Driver as _, Stmt};
use crate::error::Failure;
use crate::schema::migrations_table;
use crate::tables::Tables;

/// Creates the migrations table if missing, then runs every migration it
/// does not record, in order, each recorded once all its statements ran.
/// Answers the versions applied.
pub(crate) async fn apply<D: Dialect>(
    conn: &mut Connection<D>,
    tables: &Tables,
) -> Result<Vec<i64>, Failure> {
    let backend = D::BACKEND;
    D::Db::run_script(conn, migrations_table(backend, tables)).await?;
    let table = backend.quote(tables.migrations_table());
    let select = format!("SELECT version FROM {table}").into();
    let applied = Stmt::<D>::new(&select).fetch_all(conn).await?;
    let applied = applied.iter().map(|row| row.get::<i64>(0)).collect::<Result<Vec<_>, _>>()?;
    let insert =
        format!("INSERT INTO {table} (version, description, applied_at) VALUES ({})", backend.params(1, 3))
            .into();
    let mut done = Vec::new();
    for migration in tables.migrations(backend) {
        if applied.contains(&migration.version) {
            continue;
        }
        for statement in migration.statements {
            D::Db::run_script(conn, statement).await?;
        }
        Stmt::<D>::new(&insert)
            .bind(migration.version)
            .bind(migration.description)
            .bind(micros(OffsetDateTime::now_utc()))
            .execute(conn)
            .await?;
        done.push(migration.version);
    }
    Ok(done)
}
