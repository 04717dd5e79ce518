//! A Redis and Redis Cluster [`Store`] for `expected`: every operation is one
//! atomic Lua script (or one plain read), records expire by Redis TTL, and all
//! keys of one user (or of one anonymous session) share a hash tag so a
//! cluster runs each operation on one node.
//!
//! It passes the whole `expected-conformance` suite, on a single Redis and on a
//! Redis Cluster.
//!
//! ```no_run
//! use expected_core::{Config, Expected, Presented, Username};
//! use expected_store_redis::RedisStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder().prefix("myapp:remember").connect("redis://127.0.0.1:6379").await?;
//! let engine = Expected::new(store, Config::default());
//! let alice = Username::new("alice")?;
//! let registration = engine.register(&alice, true, &Presented::default()).await?;
//! assert_eq!(engine.devices(&alice, Some(&registration.session)).await?.len(), 1);
//! # Ok(()) }
//! ```
//!
//! With the `cluster` feature, `RedisStoreBuilder::connect_cluster` gives the
//! same store over the redis crate's async cluster client.
//!
//! With the `cli` feature, the `expected-redis` command answers an incident
//! without code (the commands of `expected_core::admin`; exit codes 0 done,
//! 1 store failed, 2 usage, 3 nothing found):
//!
//! ```text
//! expected-redis --redis-url redis://127.0.0.1:6379 --key-prefix myapp:remember logins list alice [--json]
//! expected-redis … logins revoke alice SERIAL     # one device
//! expected-redis … logins revoke alice --all      # every login and session
//! expected-redis … sessions count
//! expected-redis … clean
//! expected-redis --cluster --redis-url redis://node-1:7000,redis://node-2:7000 … sessions count
//! ```
//!
//! # Requirements
//!
//! Redis 5.0 or later (tested with 7.0): the scripts read `TIME` before
//! writing, which needs the script effects replication that is the default
//! from 5.0 on. Everything else (`EVALSHA`, `SCRIPT LOAD`, `HSET` with several
//! fields, `PEXPIREAT`, sorted sets, nested arrays in script answers) is
//! older. The scripts are loaded on demand: an `EVALSHA` that meets
//! `NOSCRIPT` (a fresh or restarted server) loads the script with
//! `SCRIPT LOAD` (on every primary, in a cluster) and runs it again, which
//! costs two more round trips once per server.
//!
//! Clocks: Redis drops a record at its `expires_at` as Redis's own clock tells
//! it. If the application's clocks may run behind Redis's, give the TTL a
//! margin with [`RedisStoreBuilder::ttl_margin`] so that no record goes before
//! its time.
//!
//! # Key layout
//!
//! Users are spread over 1024 buckets, by the first two bytes of
//! SHA-256(username). A bucket is one hash tag, so one cluster slot. With
//! `P` the prefix (default `expected`), `B` the bucket as four digits, `U` the
//! username's UTF-8 bytes in unpadded base64url (usernames may hold `{`, `}`
//! and `:`; base64url holds none of them), `S` a serial and `D` a session
//! digest, both base64url:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P:{B}:l:U:S` | hash | a login, TTL at its `expires_at` |
//! | `P:{B}:s:U:D` | hash | a user's session, TTL at its `expires_at` |
//! | `P:{B}:L:U` | sorted set | the user's serials, scored by `expires_at` |
//! | `P:{B}:S:U` | sorted set | the user's session digests, scored by `expires_at` |
//! | `P:{B}:O:U:S` | set | the digests of the user's sessions that the login `S` opened, TTL at the latest of their expiries |
//! | `P:{B}:I:U` | string | a marker: the user's `O` sets are complete (see below), TTL at the latest expiry of the user's sessions |
//! | `P:{B}:L` | sorted set | `U:S` of every login in the bucket, scored by `expires_at` |
//! | `P:{B}:S` | sorted set | `U:D` of every user's session in the bucket, scored by `expires_at` |
//! | `P:{B}:a:D` | hash | an anonymous session, TTL at its `expires_at` |
//! | `P:{B}:A` | sorted set | the digests of the bucket's anonymous sessions, scored by `expires_at` |
//!
//! **Anonymous sessions** have no user to pick a bucket, so they take the
//! bucket of their digest: its first two bytes, modulo 1024 (the digest is
//! SHA-256 of a random id, so they spread as evenly as users). Every
//! operation on one finds its bucket from the digest alone, and its key and
//! index share that tag like a user's. Their keys can never be a user's:
//! `a:` and `A` are kinds of key no user has, and no user operation
//! (`delete_user`, `delete_user_except`, `delete_login`) walks the `A` index,
//! so none reaches them. A lookup with an owner reads only that owner's key
//! (`s:U:D` or `a:D`): an anonymous lookup never finds a user's session, nor
//! the other way round.
//!
//! A login hash has one field per serde field of [`Login`], each value that
//! field's canonical JSON. A session hash is **packed**: its field `packed`
//! holds the canonical JSON of `digest`, `data`, `created_at`, `expires_at`
//! and the user's `username`, `login`, `method` and `authenticated_at`, in
//! that order, joined by byte 31 (the unit separator, which no JSON text
//! holds unescaped; a value is empty where an anonymous session has no user),
//! so that a session hit is one `HGET` of one value; beside it, the field
//! `login` (the same JSON) lets a script compare a session's login byte for
//! byte. A script that writes into a session (a save, a touch, a password
//! confirmation, the new session of a cookie login) replaces values of the
//! packed string by position, splitting on the separator, never parsing JSON;
//! one that finds a packed value of another shape refuses it (`CORRUPT`,
//! [`StoreErrorKind::Corrupt`]) before writing anything. Version 0.1 wrote
//! one hash field per value instead (the user's fields flat beside the
//! others): such a session is read by an `HMGET` of those fields after the
//! `HGET` finds no packed value, and written into field by field, so it
//! stays readable until it expires. Scores are microseconds since the Unix
//! epoch. The per-bucket sets are why users share buckets rather than each
//! having a tag of their own: they let every write keep the index that
//! cleaning walks in the same atomic script, on the same node, and let
//! cleaning visit only what is due.
//!
//! **Ending a login touches only what it holds.** Its bound session is named
//! by the login, and the sessions it opened are in its `O` set, so
//! `delete_login` and a rotation read that set, not the user's `S` index:
//! revoking a serial that does not exist is a few lookups however many
//! sessions the user has, and ending a login costs its own sessions. Every
//! script that writes, deletes, caps or cleans a user's session keeps the set
//! of the session's login; a set lives as long as its longest-lived session
//! and goes with its login. Entries of sessions Redis expired on its own are
//! dropped when the set is next read (a member whose key is gone).
//!
//! **Sessions per user are capped** in the script that creates one
//! (`create_session`, the rotation, a grace session): over the cap it is
//! given, the user's `S` index gives the sessions that expire first, which it
//! deletes, never the new one. So the scripts that walk all of a user's
//! sessions (`delete_user`, `delete_user_except`, the lazy build below) walk
//! at most the cap.
//!
//! Records written by version 0.1 of this store, which may still sit in a
//! production Redis, are read rather than refused as corrupt: the keys are
//! the same, a 0.1 login has no `authenticated_at` (it reads as its
//! `created_at`, the password login that registered it), and a 0.1 session
//! has `username` and `login` but no `method` nor `authenticated_at` (it
//! reads as [`Remembered`](expected_core::AuthMethod::Remembered) at its
//! `created_at`: the cautious reading, so that an application asking for a
//! fresh password asks). The first confirmation writes the missing fields;
//! a rotation leaves a 0.1 login's `authenticated_at` absent, and so read the
//! same. Version 0.1 kept no `O` sets (it found a login's sessions by reading
//! the `login` field of every session of the user): the `I:U` marker tells a
//! user whose sets are complete. The first script that needs the sets of a
//! user without the marker (ending a login, creating a session) builds them
//! from the user's `S` index, once, in that script (as costly as a 0.1
//! revocation, for that one call), then sets the marker; nothing else needs
//! migrating, and a user whose sessions have all expired needs nothing. Do
//! not run 0.1 and 0.2 processes side by side on one prefix: a session a 0.1
//! process creates for a user who already has the marker is in no set, and a
//! 0.2 revocation of its login would miss it.
//!
//! Index entries of records that Redis expired on its own are dropped when an
//! operation comes across them (a key that no longer exists, never by clock),
//! and by cleaning. A login found gone that way ends the sessions it opened,
//! as cleaning it would have: a session never outlives its login for longer
//! than it takes an operation on that user, or the next cleaning, to notice.
//!
//! # Round trips
//!
//! | operation | round trips | how |
//! | --- | --- | --- |
//! | `create_login`, `create_session` | 1 | script: refuse if the key exists, `HSET`, `PEXPIREAT`, index (a user's session in its login's set too), then cap the user's sessions |
//! | `get_login` | 1 | `HGETALL` |
//! | `get_session` | 1 | `HGET` of the packed session; 2 when there is no such session or version 0.1 wrote it (then an `HMGET` of its fields) |
//! | `rotate_login` | 1 | script: compare `token`, refuse if the new session exists, delete the bound session and every session in the login's set, update the login, create the session as given, cap the user's sessions |
//! | `rotate_current` | 1 | script: `rotate_login`'s, comparing `token` with the presented digest and applying only to a login live at the attempt's `now` and created at or after its `created_since` (the login's `expires_at` and `created_at` brought to a sortable UTC form in the script), the new session taking the login's `authenticated_at`; when it does not apply, the login's `HGETALL` is the answer. A cookie login is this one script (it was `HGETALL`, then `rotate_login`'s script) |
//! | `create_remembered` | 1 | script: refuse if the login or the session exists, read the user's other logins when asked (as `list_logins` does), write the login, create the session, cap the user's sessions. A password login with "remember me" is this one script under the per-user login cap, and a `delete_login` for each login the cap ends, decided by the engine from the logins answered: two for a user at the cap (it was `create_login`, `create_session`, `list_logins`, then `delete_login`: three and four) |
//! | `create_grace_session` | 1 | script: refuse unless the login exists and the session does not, create the session, set the login's `session`, cap the user's sessions |
//! | `list_logins` | 1 | script: read the user's index and each login |
//! | `delete_login` | 1 | script: the login, its bound session, every session in its set (even when the login is gone): a few lookups for a serial that does not exist |
//! | `delete_user` | 1 | script: everything in the user's two indexes, answering the serials deleted |
//! | `delete_user_except` | 1 | the same script, skipping the kept session and login |
//! | `confirm_password` | 1 | script: refuse unless the session exists, write its `method` and `authenticated_at`, and the login's `authenticated_at` if the login is still there |
//! | `save_session` | 1 | script: refuse unless the key exists, update `data` and `expires_at` |
//! | `touch_session` | 1 | script: refuse unless the key exists, update `expires_at` alone (a concurrent save keeps its data) |
//! | `delete_session` | 1 | script |
//! | `delete_expired_logins`, `delete_expired_sessions` | 1 per bucket (1024), more for buckets with over 512 due records in one index | script per bucket, 16 at a time; sessions cover the bucket's users' and anonymous ones in one script |
//!
//! Every script is atomic: of racing rotations of one login exactly one wins,
//! a delete and a rotation never interleave. A rotation writes the fields
//! [`apply_rotation`] sets (every field but `username`, `serial`,
//! `created_at` and `authenticated_at`) after comparing the stored `token`
//! field with the expected digest, inside the script: there is no
//! read-then-write. Logging out the other devices is one script on the
//! user's bucket, so a rotation of another device runs wholly before it (and
//! its new session is deleted with the rest) or wholly after it (and finds
//! its login gone).
//!
//! # Cleaning
//!
//! `delete_expired_*(now)` deletes exactly the records with
//! `expires_at <= now`, whether or not Redis has expired them yet (it has not
//! when `now` runs ahead of Redis's clock, as in tests): every record is in its
//! bucket's sorted set (`L`, `S` or `A`), scored by its `expires_at`, from the
//! script that wrote it. A cleaned login takes its bound session and the
//! sessions it opened along (they are not counted as sessions). Cleaning runs
//! one script per bucket (16 buckets at a time), each deleting at most 512 due
//! records per index and running again while it finds more, so that no script
//! blocks Redis for long. It is atomic per bucket only, which a background
//! task needs no more than. A call that fails half-way has cleaned some
//! buckets, as a retry would have.
//!
//! # In a cluster
//!
//! The 1024 buckets are 1024 hash tags: a cluster spreads them over its
//! primaries by slot, and every script runs on the one primary owning its
//! bucket, routed by its first key. Scripts also touch keys they build from the
//! bucket and the user (a bound session, the sessions of a login): those share
//! the tag, so the slot. Anonymous sessions live in the bucket of their
//! digest, beside the users of that bucket (see the key layout), so a script
//! on one of them is in one slot too, and cleaning a bucket covers both in one
//! script. While a slot migrates, Redis may refuse such a key in the middle of
//! a script; Redis does not roll scripts back, so the scripts check before
//! they write and delete built keys before declared ones, which leaves at most
//! part of what a retry finishes. `SCRIPT LOAD` goes to every primary.
//!
//! # Failures
//!
//! A lost connection, a timeout or a cluster in the middle of a failover is
//! [`StoreErrorKind::Unavailable`]; data that does not decode is
//! [`StoreErrorKind::Corrupt`]; anything else Redis refuses is
//! [`StoreErrorKind::Backend`]. The connection manager (and the cluster
//! client) reconnect by themselves: the first calls after an outage fail, the
//! next ones work. A call that timed out may still have run on the server: a
//! retried create then finds its own record, a retried rotation finds the
//! token already rotated, which the engine's grace window absorbs.
//!
//! [`StoreErrorKind::Unavailable`]: expected_core::StoreErrorKind::Unavailable
//! [`StoreErrorKind::Corrupt`]: expected_core::StoreErrorKind::Corrupt
//! [`StoreErrorKind::Backend`]: expected_core::StoreErrorKind::Backend

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod codec;
mod keys;
mod scripts;

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use expected_core::protocol::apply_rotation;
use expected_core::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated, Rotation,
};
use expected_core::time::OffsetDateTime;
use expected_core::{
    AuthMethod, ClientMeta, Login, Serial, SessionDigest, SessionRecord, Store, StoreError, StoreErrorKind,
    Username,
};
use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, RedisFuture, Script, Value};

pub use redis;

use codec::{
    PACKED_FIELD, SESSION_FIELDS, SESSION_FIELDS_BYTES, Sought, cutoff_of, decode_login,
    decode_packed_session, decode_session, expire_at_ms, field_args, flat_hash, login_fields,
    packed_session_args, score_of, session_fields, session_values, store_error, to_fields,
};
use keys::{BUCKETS, Keys, bucket_base, expired_login_of, serial_of};
use scripts::SCRIPTS;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "expected";

/// How many index entries one cleaning script handles at most.
const CLEAN_BATCH: usize = 512;

/// How many buckets cleaning works on at once.
const CLEAN_CONCURRENCY: usize = 16;

/// Login fields a rotation leaves as they are (`authenticated_at` changes by
/// a password confirmation only).
const ROTATION_KEEPS: [&str; 4] = ["username", "serial", "created_at", "authenticated_at"];

/// The connection: one Redis, or a cluster.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(cmd, offset, count),
            #[cfg(feature = "cluster")]
            Self::Cluster(connection) => connection.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            #[cfg(feature = "cluster")]
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

impl Connection {
    /// One command's answer, a server's error reply as an error (as
    /// `Cmd::query_async` answers it), sent on one Redis without the boxed
    /// future that `ConnectionLike` wraps every command of the manager in
    /// (its allocation, one per session hit).
    async fn send(&mut self, command: &Cmd) -> redis::RedisResult<Value> {
        let answer = match self {
            Self::Single(connection) => connection.send_packed_command(command).await?,
            #[cfg(feature = "cluster")]
            Self::Cluster(connection) => connection.req_packed_command(command).await?,
        };
        answer.extract_error()
    }
}

/// The Redis store. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: Arc<str>,
    ttl_margin_ms: i128,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.connection {
            Connection::Single(_) => "single",
            #[cfg(feature = "cluster")]
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore")
            .field("connection", &kind)
            .field("prefix", &self.prefix)
            .field("ttl_margin_ms", &self.ttl_margin_ms)
            .finish()
    }
}

/// Configures and connects a [`RedisStore`].
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    prefix: String,
    response_timeout: Option<Duration>,
    connection_timeout: Duration,
    reconnect_retries: usize,
    ttl_margin: Duration,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            response_timeout: Some(Duration::from_secs(2)),
            connection_timeout: Duration::from_secs(1),
            reconnect_retries: 2,
            ttl_margin: Duration::ZERO,
        }
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key, so that applications can share a Redis
    /// (default [`DEFAULT_PREFIX`]). Not empty, and without `{` or `}`: the
    /// hash tag that follows it must be the first in the key.
    ///
    /// ```no_run
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), expected_core::StoreError> {
    /// // Two applications on one Redis:
    /// let store = RedisStore::builder().prefix("shop:remember").connect("redis://127.0.0.1:6379").await?;
    /// assert_eq!(store.prefix(), "shop:remember");
    /// # Ok(()) }
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long to wait for an answer before failing with
    /// [`StoreErrorKind::Unavailable`] (default 2 s; `None` waits forever).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), expected_core::StoreError> {
    /// // Fail fast (a 503, no cookie change) rather than hold requests:
    /// let store = RedisStore::builder()
    ///     .response_timeout(Some(Duration::from_millis(500)))
    ///     .connect("redis://127.0.0.1:6379")
    ///     .await?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long one connection attempt may take (default 1 s).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), expected_core::StoreError> {
    /// let store = RedisStore::builder()
    ///     .connection_timeout(Duration::from_secs(3))
    ///     .connect("redis://redis.internal:6379")
    ///     .await?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How many times a lost connection is retried, with exponential backoff,
    /// before the calls waiting on it fail (default 2). The next call tries
    /// again either way. For a cluster, how many times the cluster client
    /// retries a request (after a redirection, a failover or a lost
    /// connection).
    ///
    /// ```no_run
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), expected_core::StoreError> {
    /// let store = RedisStore::builder().reconnect_retries(5).connect("redis://127.0.0.1:6379").await?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// How long Redis keeps a record past its `expires_at` (default zero):
    /// set it to the worst skew between the application's clocks and
    /// Redis's. Cleaning still deletes exactly the records with
    /// `expires_at <= now`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), expected_core::StoreError> {
    /// // Application servers whose clocks may run up to 2 s behind Redis's:
    /// let store = RedisStore::builder()
    ///     .ttl_margin(Duration::from_secs(2))
    ///     .connect("redis://127.0.0.1:6379")
    ///     .await?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    pub fn ttl_margin(mut self, margin: Duration) -> Self {
        self.ttl_margin = margin;
        self
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_response_timeout(self.response_timeout)
            .set_connection_timeout(Some(self.connection_timeout))
            .set_number_of_retries(self.reconnect_retries)
            .set_max_delay(Duration::from_secs(2))
    }

    /// Connects to one Redis, waiting for the first connection.
    ///
    /// ```no_run
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), expected_core::StoreError> {
    /// let store = RedisStore::builder().connect("redis://:password@127.0.0.1:6379/0").await?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self, url: impl IntoConnectionInfo) -> Result<RedisStore, StoreError> {
        self.check()?;
        let client = redis::Client::open(url).map_err(store_error)?;
        let manager =
            ConnectionManager::new_with_config(client, self.manager_config()).await.map_err(store_error)?;
        self.build(Connection::Single(manager))
    }

    /// A store for one Redis that connects on first use: never fails for an
    /// unreachable server, only for a bad URL or prefix.
    ///
    /// ```no_run
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), expected_core::StoreError> {
    /// // Start serving even while Redis is still coming up (requests answer 503 until it is):
    /// let store = RedisStore::builder().connect_lazy("redis://127.0.0.1:6379")?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    pub fn connect_lazy(self, url: impl IntoConnectionInfo) -> Result<RedisStore, StoreError> {
        self.check()?;
        let client = redis::Client::open(url).map_err(store_error)?;
        let manager =
            ConnectionManager::new_lazy_with_config(client, self.manager_config()).map_err(store_error)?;
        self.build(Connection::Single(manager))
    }

    /// A store over a connection manager configured by the caller (the
    /// timeout and retry settings of this builder do not apply).
    ///
    /// ```no_run
    /// use expected_store_redis::redis::{self, aio::{ConnectionManager, ConnectionManagerConfig}};
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// // A manager the application already has (and shares):
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let manager = ConnectionManager::new_with_config(client, ConnectionManagerConfig::new()).await?;
    /// let store = RedisStore::builder().with_manager(manager)?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    pub fn with_manager(self, manager: ConnectionManager) -> Result<RedisStore, StoreError> {
        self.check()?;
        self.build(Connection::Single(manager))
    }

    /// Connects to a Redis Cluster through any of its nodes.
    ///
    /// ```no_run
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), expected_core::StoreError> {
    /// let store = RedisStore::builder()
    ///     .connect_cluster(["redis://node-1:7000", "redis://node-2:7000", "redis://node-3:7000"])
    ///     .await?;
    /// assert!(store.is_cluster());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub async fn connect_cluster<T: IntoConnectionInfo>(
        self,
        nodes: impl IntoIterator<Item = T>,
    ) -> Result<RedisStore, StoreError> {
        self.check()?;
        let mut client = redis::cluster::ClusterClient::builder(nodes)
            .connection_timeout(self.connection_timeout)
            .retries(u32::try_from(self.reconnect_retries).unwrap_or(u32::MAX));
        if let Some(timeout) = self.response_timeout {
            client = client.response_timeout(timeout);
        }
        let client = client.build().map_err(store_error)?;
        let connection = client.get_async_connection().await.map_err(store_error)?;
        self.build(Connection::Cluster(connection))
    }

    /// A store over a cluster connection configured by the caller.
    ///
    /// ```no_run
    /// use expected_store_redis::redis::cluster::ClusterClient;
    /// use expected_store_redis::RedisStore;
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = ClusterClient::builder(["redis://node-1:7000"]).read_from_replicas().build()?;
    /// let store = RedisStore::builder().with_cluster(client.get_async_connection().await?)?;
    /// # let _ = store;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn with_cluster(
        self,
        connection: redis::cluster_async::ClusterConnection,
    ) -> Result<RedisStore, StoreError> {
        self.check()?;
        self.build(Connection::Cluster(connection))
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(StoreError::new(
                StoreErrorKind::Backend,
                format!(
                    "invalid key prefix {:?}: it must be non-empty and hold no '{{' or '}}'",
                    self.prefix
                ),
            ));
        }
        Ok(())
    }

    fn build(self, connection: Connection) -> Result<RedisStore, StoreError> {
        Ok(RedisStore {
            connection,
            prefix: self.prefix.into(),
            ttl_margin_ms: i128::try_from(self.ttl_margin.as_millis()).unwrap_or(i128::MAX / 2),
        })
    }
}

/// A script call under construction: record keys, index keys, arguments.
///
/// Record keys come first so that a script finds them at `KEYS[1]` (and
/// `KEYS[2]`) whoever owns them: a user has four index keys, anonymous
/// sessions one.
struct Call<'a> {
    script: &'a Script,
    keys: Vec<String>,
    indexes: Vec<String>,
    args: Vec<String>,
}

impl<'a> Call<'a> {
    /// A script on the records of one owner (a user, or anonymous sessions):
    /// `[base, owner]` first, the owner's indexes declared after the record
    /// keys.
    fn on(script: &'a Script, keys: &Keys) -> Self {
        Self {
            script,
            keys: Vec::new(),
            indexes: keys.indexes(),
            args: vec![keys.base.clone(), keys.user.clone()],
        }
    }

    /// A cleaning script on the indexes of the bucket at `base`, ending in
    /// `kinds` (`L`, `S`, `A`).
    fn bucket(script: &'a Script, base: &str, kinds: &[&str]) -> Self {
        Self {
            script,
            keys: kinds.iter().map(|kind| format!("{base}{kind}")).collect(),
            indexes: Vec::new(),
            args: vec![base.to_owned(), String::new()],
        }
    }

    fn key(mut self, key: String) -> Self {
        self.keys.push(key);
        self
    }

    fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    fn args(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.args.extend(args);
        self
    }
}

impl RedisStore {
    /// A builder with the default settings.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// Connects to one Redis with the default settings.
    pub async fn connect(url: impl IntoConnectionInfo) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many live sessions (`expires_at > now`) the store holds, users'
    /// and visitors': what `expected-redis sessions count` prints. One
    /// script per bucket (`ZCOUNT` on its two session indexes), 16 at a time.
    pub async fn count_sessions(
        &self,
        now: OffsetDateTime,
    ) -> Result<expected_core::store::SessionCount, StoreError> {
        static COUNT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
            // ARGV[1], ARGV[2] are the bucket base and user every call
            // carries; ARGV[3] the cutoff. Scores are expiry microseconds,
            // so `(cutoff` counts exactly the sessions with now < expires_at.
            Script::new(
                "local live = '(' .. ARGV[3] \
                 return {redis.call('ZCOUNT', KEYS[1], live, '+inf'), redis.call('ZCOUNT', KEYS[2], live, '+inf')}",
            )
        });
        let cutoff = cutoff_of(now);
        let counts: Vec<(u64, u64)> = stream::iter(0..BUCKETS)
            .map(|bucket| {
                let base = bucket_base(&self.prefix, bucket);
                let call = Call::bucket(&COUNT, &base, &["S", "A"]).arg(cutoff.clone());
                async move { self.run::<(u64, u64)>(call).await }
            })
            .buffer_unordered(CLEAN_CONCURRENCY)
            .try_collect()
            .await?;
        let (users, anonymous) = counts.into_iter().fold((0, 0), |(u, a), (bu, ba)| (u + bu, a + ba));
        Ok(expected_core::store::SessionCount { users, anonymous })
    }

    /// Whether the store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        match self.connection {
            Connection::Single(_) => false,
            #[cfg(feature = "cluster")]
            Connection::Cluster(_) => true,
        }
    }

    fn keys(&self, username: &Username) -> Keys {
        Keys::user(&self.prefix, username)
    }

    fn session_keys(&self, owner: Option<&Username>, digest: &SessionDigest) -> Keys {
        Keys::owner(&self.prefix, owner, digest)
    }

    async fn run<T: FromRedisValue>(&self, call: Call<'_>) -> Result<T, StoreError> {
        let mut invocation = call.script.prepare_invoke();
        for key in call.keys.iter().chain(&call.indexes) {
            invocation.key(key);
        }
        for arg in &call.args {
            invocation.arg(arg);
        }
        let mut connection = self.connection.clone();
        invocation.invoke_async(&mut connection).await.map_err(store_error)
    }

    async fn hgetall(&self, key: String) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut connection = self.connection.clone();
        let answer: Value =
            redis::cmd("HGETALL").arg(key).query_async(&mut connection).await.map_err(store_error)?;
        flat_hash(answer)
    }

    fn expire_at(&self, at: OffsetDateTime) -> String {
        expire_at_ms(at, self.ttl_margin_ms)
    }

    /// The call that writes the record `key`, indexed as `member` under its
    /// `expires_at`: `ARGV[3..=5]` member, score and PEXPIREAT.
    fn record_call<'a>(
        &self,
        script: &'a Script,
        keys: &Keys,
        key: String,
        member: String,
        expires_at: OffsetDateTime,
    ) -> Call<'a> {
        Call::on(script, keys).key(key).arg(member).arg(score_of(expires_at)).arg(self.expire_at(expires_at))
    }

    /// Runs a create script answering 1 (created) or 0 (exists).
    async fn create(&self, call: Call<'_>) -> Result<Inserted, StoreError> {
        match self.run::<i64>(call).await? {
            1 => Ok(Inserted::Created),
            _ => Ok(Inserted::AlreadyExists),
        }
    }

    /// Runs a cleaning script on every bucket's indexes `kinds`, again on a
    /// bucket while it answers a full batch, and collects what each run
    /// answered it deleted.
    async fn clean<T>(
        &self,
        now: OffsetDateTime,
        script: &Script,
        kinds: &[&str],
    ) -> Result<Vec<T>, StoreError>
    where
        T: FromRedisValue + Send + 'static,
    {
        let cutoff = cutoff_of(now);
        stream::iter(0..BUCKETS)
            .map(|bucket| {
                let base = bucket_base(&self.prefix, bucket);
                let cutoff = &cutoff;
                async move {
                    let mut answers = Vec::new();
                    loop {
                        let call = Call::bucket(script, &base, kinds)
                            .arg(cutoff.clone())
                            .arg(CLEAN_BATCH.to_string());
                        let (deleted, visited): (T, usize) = self.run(call).await?;
                        answers.push(deleted);
                        if visited < CLEAN_BATCH {
                            return Ok::<Vec<T>, StoreError>(answers);
                        }
                    }
                }
            })
            .buffer_unordered(CLEAN_CONCURRENCY)
            .try_concat()
            .await
    }

    /// Replaces some fields of an existing session and moves its expiry.
    async fn update_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<bool, StoreError> {
        let keys = self.session_keys(owner, digest);
        let call = self
            .record_call(&SCRIPTS.update_session, &keys, keys.session(digest), digest.to_base64(), expires_at)
            .args(field_args(fields));
        Ok(self.run::<i64>(call).await? == 1)
    }

    /// Runs the script behind `delete_user` and `delete_user_except`.
    async fn delete_user_but(&self, username: &Username, keep: Option<&Keep>) -> Result<Deleted, StoreError> {
        let keys = self.keys(username);
        // No digest or serial is empty in base64url: '' keeps nothing.
        let session = keep.map(|keep| keep.session.to_base64()).unwrap_or_default();
        let login = keep.and_then(|keep| keep.login).map(|serial| serial.to_base64()).unwrap_or_default();
        let call = Call::on(&SCRIPTS.delete_user, &keys).arg(session).arg(login);
        let (sessions, serials): (u64, Vec<String>) = self.run(call).await?;
        let serials = serials.iter().map(|serial| serial_of(serial)).collect::<Result<_, _>>()?;
        Ok(Deleted::new(serials, sessions))
    }
}

/// The fields a rotation writes into the login, as `apply_rotation` defines
/// them: everything but [`ROTATION_KEEPS`].
fn rotated_login_fields(
    rotation: &Rotation,
) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    // Whatever this login held before, apply_rotation overwrites every field
    // but the kept ones; a field added to Login breaks this literal, and so
    // gets looked at here.
    let mut login = Login {
        username: rotation.username.clone(),
        serial: rotation.serial,
        token: rotation.expected,
        previous: None,
        session: None,
        created_at: rotation.last_used_at,
        last_used_at: rotation.last_used_at,
        expires_at: rotation.expires_at,
        client: ClientMeta::default(),
        authenticated_at: rotation.last_used_at,
    };
    apply_rotation(&mut login, rotation);
    let mut fields = login_fields(&login)?;
    fields.retain(|name, _| !ROTATION_KEEPS.contains(&name.as_str()));
    Ok(fields)
}

/// An instant as `YYYY-MM-DDTHH:MM:SS.fffffffff` in UTC, to the nanosecond
/// (as exact as the records' RFC 3339 times): a string that sorts as the
/// instant (the scripts compare a record's times in this form).
fn sortable(at: OffsetDateTime) -> String {
    let at = at.to_offset(expected_core::time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.nanosecond()
    )
}

/// The `authenticated_at` a rotation carried into its new session.
#[derive(serde::Deserialize)]
struct Carried {
    #[serde(with = "expected_core::time::serde::rfc3339")]
    authenticated_at: OffsetDateTime,
}

/// A session's `expires_at` as the session serializes it, for a touch.
#[derive(serde::Serialize)]
struct Expiry {
    #[serde(with = "expected_core::time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// What a password confirmation writes, as a session's user serializes it.
#[derive(serde::Serialize)]
struct Confirmed {
    method: AuthMethod,
    #[serde(with = "expected_core::time::serde::rfc3339")]
    authenticated_at: OffsetDateTime,
}

/// The JSON of field `name` of `fields`, which the caller built.
fn field_json(fields: &serde_json::Map<String, serde_json::Value>, name: &str) -> Result<String, StoreError> {
    fields
        .get(name)
        .map(serde_json::Value::to_string)
        .ok_or_else(|| StoreError::new(StoreErrorKind::Backend, format!("no {name} field to write")))
}

/// The script arguments that write a new session: packed
/// ([`packed_session_args`]), the layout this store writes.
fn session_args(session: &SessionRecord) -> Result<Vec<String>, StoreError> {
    packed_session_args(&session_fields(session)?)
}

/// A cap on a user's sessions as a script argument: `''` for none.
fn cap_arg(max: Option<NonZeroUsize>) -> String {
    max.map(|max| max.to_string()).unwrap_or_default()
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::wrap(StoreErrorKind::Backend, error))
}

#[async_trait]
impl Store for RedisStore {
    async fn create_login(&self, login: &Login) -> Result<Inserted, StoreError> {
        let keys = self.keys(&login.username);
        let fields = login_fields(login)?;
        let key = keys.login(&login.serial);
        let member = login.serial.to_base64();
        let call = self.record_call(&SCRIPTS.create_login, &keys, key, member, login.expires_at);
        self.create(call.args(field_args(&fields))).await
    }

    async fn get_login(&self, username: &Username, serial: &Serial) -> Result<Option<Login>, StoreError> {
        match decode_login(self.hgetall(self.keys(username).login(serial)).await?)? {
            Some(login) if login.username != *username || login.serial != *serial => {
                Err(StoreError::corrupt("a login hash holds another login"))
            }
            found => Ok(found),
        }
    }

    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        let session = &rotation.session;
        rotation.session_owner()?;
        let keys = self.keys(&rotation.username);
        let login_args = field_args(&rotated_login_fields(rotation)?);
        let session_args = session_args(session)?;
        let call = Call::on(&SCRIPTS.rotate_login, &keys)
            .key(keys.login(&rotation.serial))
            .key(keys.session(&session.digest))
            .arg(rotation.serial.to_base64())
            .arg(json(&rotation.expected)?)
            .arg(session.digest.to_base64())
            .arg(score_of(rotation.expires_at))
            .arg(self.expire_at(rotation.expires_at))
            .arg(score_of(session.expires_at))
            .arg(self.expire_at(session.expires_at))
            .arg(cap_arg(rotation.max_sessions))
            .arg(login_args.len().to_string())
            .args(login_args)
            .args(session_args);
        match self.run::<String>(call).await?.as_str() {
            "rotated" => Ok(Rotated::Rotated),
            "not_current" => Ok(Rotated::NotCurrent),
            "not_found" => Ok(Rotated::NotFound),
            "session_exists" => Ok(Rotated::SessionExists),
            "corrupt" => Err(StoreError::corrupt("a login hash has no token field")),
            other => {
                Err(StoreError::new(StoreErrorKind::Backend, format!("rotation script answered {other:?}")))
            }
        }
    }

    async fn rotate_current(&self, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
        let rotation = &attempt.rotation;
        let session = &rotation.session;
        rotation.session_owner()?;
        let keys = self.keys(&rotation.username);
        let login_args = field_args(&rotated_login_fields(rotation)?);
        let session_args = session_args(session)?;
        let call = Call::on(&SCRIPTS.rotate_current, &keys)
            .key(keys.login(&rotation.serial))
            .key(keys.session(&session.digest))
            .arg(rotation.serial.to_base64())
            .arg(json(&rotation.expected)?)
            .arg(session.digest.to_base64())
            .arg(score_of(rotation.expires_at))
            .arg(self.expire_at(rotation.expires_at))
            .arg(score_of(session.expires_at))
            .arg(self.expire_at(session.expires_at))
            .arg(cap_arg(rotation.max_sessions))
            .arg(sortable(attempt.now))
            .arg(sortable(attempt.created_since))
            .arg(login_args.len().to_string())
            .args(login_args)
            .args(session_args);
        let answer: Vec<Value> = self.run(call).await?;
        let mut answer = answer.into_iter();
        let tag = match answer.next() {
            Some(Value::BulkString(tag)) => tag,
            Some(Value::SimpleString(tag)) => tag.into_bytes(),
            other => {
                return Err(StoreError::corrupt(format!("rotate_current answered {other:?}")));
            }
        };
        match (tag.as_slice(), answer.next()) {
            (b"rotated", Some(Value::BulkString(at))) => {
                let Carried { authenticated_at } =
                    serde_json::from_slice(&[&b"{\"authenticated_at\":"[..], &at, b"}"].concat())
                        .map_err(|error| StoreError::corrupt(format!("authenticated_at: {error}")))?;
                Ok(CurrentRotated::Rotated { authenticated_at })
            }
            (b"session_exists", None) => Ok(CurrentRotated::SessionExists),
            (b"login", Some(record)) => match decode_login(flat_hash(record)?)? {
                Some(login) if login.username != rotation.username || login.serial != rotation.serial => {
                    Err(StoreError::corrupt("a login hash holds another login"))
                }
                found => Ok(CurrentRotated::NotApplied(found)),
            },
            (tag, _) => Err(StoreError::new(
                StoreErrorKind::Backend,
                format!("rotate_current answered {:?}", String::from_utf8_lossy(tag)),
            )),
        }
    }

    async fn create_remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        expected_core::store::remembered_owner(login, session)?;
        let keys = self.keys(&login.username);
        let login_args = field_args(&login_fields(login)?);
        let session_args = session_args(session)?;
        let call = Call::on(&SCRIPTS.create_remembered, &keys)
            .key(keys.login(&login.serial))
            .key(keys.session(&session.digest))
            .arg(login.serial.to_base64())
            .arg(score_of(login.expires_at))
            .arg(self.expire_at(login.expires_at))
            .arg(session.digest.to_base64())
            .arg(score_of(session.expires_at))
            .arg(self.expire_at(session.expires_at))
            .arg(cap_arg(max_sessions))
            .arg(if list_logins { "1" } else { "" })
            .arg(login_args.len().to_string())
            .args(login_args)
            .args(session_args);
        let answer: Vec<Value> = self.run(call).await?;
        let mut answer = answer.into_iter();
        let tag = match answer.next() {
            Some(Value::BulkString(tag)) => tag,
            Some(Value::SimpleString(tag)) => tag.into_bytes(),
            other => return Err(StoreError::corrupt(format!("create_remembered answered {other:?}"))),
        };
        match (tag.as_slice(), answer.next()) {
            (b"login_exists", None) => Ok(Remembered::LoginExists),
            (b"session_exists", None) => Ok(Remembered::SessionExists),
            (b"created", Some(Value::Array(records))) if list_logins => {
                let mut others = Vec::with_capacity(records.len());
                for record in records {
                    match decode_login(flat_hash(record)?)? {
                        Some(other) if other.username == login.username => others.push(other),
                        _ => {
                            return Err(StoreError::corrupt(
                                "a user's login index points at another user's login",
                            ));
                        }
                    }
                }
                Ok(Remembered::Created { others: Some(others) })
            }
            (b"created", Some(_)) => Ok(Remembered::Created { others: None }),
            (tag, _) => Err(StoreError::new(
                StoreErrorKind::Backend,
                format!("create_remembered answered {:?}", String::from_utf8_lossy(tag)),
            )),
        }
    }

    async fn list_logins(&self, username: &Username) -> Result<Vec<Login>, StoreError> {
        let keys = self.keys(username);
        let records: Vec<Vec<Vec<u8>>> = self.run(Call::on(&SCRIPTS.list_logins, &keys)).await?;
        let mut logins = Vec::with_capacity(records.len());
        for record in records {
            match decode_login(record)? {
                Some(login) if login.username == *username => logins.push(login),
                _ => return Err(StoreError::corrupt("a user's login index points at another user's login")),
            }
        }
        Ok(logins)
    }

    async fn delete_login(&self, username: &Username, serial: &Serial) -> Result<bool, StoreError> {
        let keys = self.keys(username);
        let call = Call::on(&SCRIPTS.delete_login, &keys).key(keys.login(serial)).arg(serial.to_base64());
        Ok(self.run::<i64>(call).await? == 1)
    }

    async fn delete_user(&self, username: &Username) -> Result<Deleted, StoreError> {
        self.delete_user_but(username, None).await
    }

    async fn delete_user_except(&self, username: &Username, keep: &Keep) -> Result<Deleted, StoreError> {
        self.delete_user_but(username, Some(keep)).await
    }

    async fn confirm_password(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        let keys = self.keys(&confirmation.username);
        let fields =
            to_fields(&Confirmed { method: AuthMethod::Password, authenticated_at: confirmation.at })?;
        let mut call = Call::on(&SCRIPTS.confirm_password, &keys).key(keys.session(&confirmation.session));
        if let Some(serial) = &confirmation.login {
            call = call.key(keys.login(serial));
        }
        let call = call
            .arg(confirmation.login.map(|serial| serial.to_base64()).unwrap_or_default())
            .arg(field_json(&fields, "method")?)
            .arg(field_json(&fields, "authenticated_at")?);
        Ok(self.run::<i64>(call).await? == 1)
    }

    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<Vec<ExpiredLogin>, StoreError> {
        let members: Vec<Vec<String>> = self.clean(now, &SCRIPTS.clean_logins, &["L"]).await?;
        members.iter().flatten().map(|member| expired_login_of(member)).collect()
    }

    async fn create_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<Inserted, StoreError> {
        let keys = self.session_keys(session.username(), &session.digest);
        let key = keys.session(&session.digest);
        let member = session.digest.to_base64();
        let call = self.record_call(&SCRIPTS.create_session, &keys, key, member, session.expires_at);
        self.create(call.arg(cap_arg(max_sessions)).args(session_args(session)?)).await
    }

    async fn create_grace_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        let (Some(username), Some(serial)) = (session.username(), session.login()) else {
            // No login can exist for a session that names none.
            return Ok(GraceInserted::LoginGone);
        };
        let keys = self.keys(username);
        let call = Call::on(&SCRIPTS.create_grace_session, &keys)
            .key(keys.login(&serial))
            .key(keys.session(&session.digest))
            .arg(session.digest.to_base64())
            .arg(score_of(session.expires_at))
            .arg(self.expire_at(session.expires_at))
            .arg(json(&session.digest)?)
            .arg(cap_arg(max_sessions))
            .args(session_args(session)?);
        match self.run::<String>(call).await?.as_str() {
            "created" => Ok(GraceInserted::Created),
            "login_gone" => Ok(GraceInserted::LoginGone),
            "exists" => Ok(GraceInserted::AlreadyExists),
            other => Err(StoreError::new(
                StoreErrorKind::Backend,
                format!("grace session script answered {other:?}"),
            )),
        }
    }

    async fn get_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let key = keys::session_key(&self.prefix, owner, digest);
        let mut connection = self.connection.clone();
        let sought = keys::digest_text(&key).map(|text| Sought { digest, text });
        // The hit's one round trip: one value, the packed session.
        let mut command = Cmd::with_capacity(3, 4 + key.len() + PACKED_FIELD.len());
        command.arg("HGET").arg(&key).arg(PACKED_FIELD);
        let answer = connection.send(&command).await.map_err(store_error)?;
        let found = match answer {
            Value::BulkString(packed) => Some(decode_packed_session(&packed, sought)?),
            Value::Nil => {
                // No such session, or one written field by field (version
                // 0.1): its known fields by name, values only. The command
                // is sized up front (grown argument by argument it was
                // reallocated four times).
                let mut command =
                    Cmd::with_capacity(2 + SESSION_FIELDS.len(), 5 + key.len() + SESSION_FIELDS_BYTES);
                let answer: Value = command
                    .arg("HMGET")
                    .arg(&key)
                    .arg(&SESSION_FIELDS[..])
                    .query_async(&mut connection)
                    .await
                    .map_err(store_error)?;
                decode_session(&session_values(answer)?.each_ref().map(Option::as_deref), sought)?
            }
            other => return Err(StoreError::corrupt(format!("HGET of a packed session answered {other:?}"))),
        };
        match found {
            Some(session) if session.username() != owner || session.digest != *digest => {
                Err(StoreError::corrupt("a session hash holds another session"))
            }
            found => Ok(found),
        }
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<bool, StoreError> {
        let mut fields = session_fields(session)?;
        fields.retain(|name, _| name == "data" || name == "expires_at");
        self.update_session(session.username(), &session.digest, session.expires_at, &fields).await
    }

    async fn touch_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut fields = to_fields(&Expiry { expires_at })?;
        fields.retain(|name, _| name == "expires_at");
        self.update_session(owner, digest, expires_at, &fields).await
    }

    async fn delete_session(
        &self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError> {
        let keys = self.session_keys(owner, digest);
        let call = Call::on(&SCRIPTS.delete_session, &keys).key(keys.session(digest)).arg(digest.to_base64());
        Ok(self.run::<i64>(call).await? == 1)
    }

    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let counts: Vec<u64> = self.clean(now, &SCRIPTS.clean_sessions, &["S", "A"]).await?;
        Ok(counts.into_iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expected_core::{SessionData, SessionId, SessionUser};
    use time::macros::datetime;

    fn session(username: &Username, login: Option<Serial>, at: OffsetDateTime) -> SessionRecord {
        SessionRecord {
            digest: SessionId::from_bytes([1; 32]).digest(),
            user: Some(SessionUser {
                username: username.clone(),
                login,
                method: AuthMethod::Remembered,
                authenticated_at: at,
            }),
            data: SessionData::new(),
            created_at: at,
            expires_at: at,
        }
    }

    #[test]
    fn touches_and_confirmations_write_fields_as_a_session_does() -> Result<(), Box<dyn std::error::Error>> {
        let alice = Username::new("alice")?;
        for at in [
            datetime!(2030-01-02 03:04:05.678901 UTC),
            datetime!(2030-01-02 03:04:05 UTC),
            datetime!(1999-12-31 23:59:59.5 UTC),
        ] {
            let mut stored = session(&alice, None, at);
            let written = session_fields(&stored)?;
            assert_eq!(to_fields(&Expiry { expires_at: at })?.get("expires_at"), written.get("expires_at"));
            if let Some(user) = stored.user.as_mut() {
                user.method = AuthMethod::Password;
            }
            let confirmed = session_fields(&stored)?;
            let fields = to_fields(&Confirmed { method: AuthMethod::Password, authenticated_at: at })?;
            for name in ["method", "authenticated_at"] {
                assert_eq!(Some(field_json(&fields, name)?), confirmed.get(name).map(ToString::to_string));
            }
        }
        Ok(())
    }

    #[test]
    fn a_rotation_writes_every_field_but_the_kept_ones() -> Result<(), Box<dyn std::error::Error>> {
        let at = datetime!(2030-01-02 03:04:05.678901 UTC);
        let alice = Username::new("alice")?;
        let token = expected_core::Token::from_bytes([3; 32]);
        let rotation = Rotation {
            username: alice.clone(),
            serial: Serial::from_bytes([2; 16]),
            expected: token.digest(),
            token: expected_core::Token::from_bytes([4; 32]).digest(),
            previous: expected_core::PreviousToken {
                digest: token.digest(),
                rotated_at: at,
                sealed: expected_core::SealedSuccessor::from_bytes([5; 64]),
            },
            session: session(&alice, Some(Serial::from_bytes([2; 16])), at),
            last_used_at: at,
            expires_at: at,
            client: ClientMeta::new(None, Some("agent")),
            max_sessions: None,
        };
        let fields = rotated_login_fields(&rotation)?;
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["client", "expires_at", "last_used_at", "previous", "session", "token"]);
        Ok(())
    }
}

/// This crate's README, compiled as doctests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
