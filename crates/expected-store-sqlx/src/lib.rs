//! PostgreSQL, MySQL/MariaDB and SQLite stores for `expected`, on sqlx.
//!
//! (Full documentation below.)

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod codec;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod common;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
mod error;
mod schema;
mod tables;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "mysql")]
pub use mysql::MySqlStore;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use schema::Migration;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use tables::{Backend, MAX_TABLE_NAME_LEN, TableNameError, Tables};

/// The sqlx this crate is built on, for its pool types and options.
pub use sqlx;

/// Rows deleted by one cleaning statement unless set otherwise.
pub const DEFAULT_BATCH: u32 = 1000;
