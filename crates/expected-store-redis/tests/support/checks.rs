//! Redis-specific checks, run on the single server and on the cluster: the
//! key layout, TTLs, index upkeep as Redis expires records, cleaning days
//! ahead of Redis, corrupt data, prefix isolation.

use expected_core::store::{Inserted, Rotated};
use expected_core::time::{Duration, OffsetDateTime};
use expected_core::{
    ChaChaTokens, ClientMeta, Config, Login, Session, SessionData, Store, StoreErrorKind, TokenSource as _,
    Username, protocol,
};
use expected_store_redis::RedisStore;
use expected_store_redis::redis;

use super::keys_under;

pub(crate) fn user(name: &str) -> Username {
    Username::new(name).unwrap_or_else(|error| panic!("{name:?}: {error}"))
}

pub(crate) fn now() -> OffsetDateTime {
    expected_core::clock::to_store_precision(OffsetDateTime::now_utc())
}

fn config() -> Config {
    Config::builder().secure(false).build().unwrap_or_else(|error| panic!("{error}"))
}

/// A login and the session it opened, expiring as configured from `at`.
pub(crate) fn login_at(name: &Username, at: OffsetDateTime) -> (Login, Session, expected_core::AuthCookie) {
    let tokens = ChaChaTokens::from_os();
    let serial = tokens.serial();
    let session =
        protocol::new_session(name, &tokens.session_id(), Some(serial), SessionData::new(), at, &config());
    let client = ClientMeta::new(Some([192, 0, 2, 1].into()), Some("curl/8"));
    let (login, cookie) = protocol::new_login(name, serial, tokens.token(), &session, client, at, &config());
    (login, session, cookie)
}

/// What a key holds: the part after its hash tag (`l`, `s`, `L`, `S`).
fn kind_of(key: &str) -> &str {
    let after = key.find("}:").map_or("", |at| &key[at + 2..]);
    after.split(':').next().unwrap_or("")
}

/// Milliseconds since the epoch, rounded up.
fn ms_ceil(at: OffsetDateTime) -> i64 {
    i64::try_from((at.unix_timestamp_nanos() + 999_999).div_euclid(1_000_000)).expect("ms")
}

async fn connection(nodes: &[String]) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(nodes[0].as_str()).unwrap_or_else(|e| panic!("{e}"));
    client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("{e}"))
}

/// The node of `nodes` holding `key`.
async fn node_of(nodes: &[String], key: &str) -> redis::aio::MultiplexedConnection {
    for node in nodes {
        let mut connection = connection(std::slice::from_ref(node)).await;
        let exists: i64 = redis::cmd("EXISTS").arg(key).query_async(&mut connection).await.unwrap_or(0);
        if exists == 1 {
            return connection;
        }
    }
    panic!("no node holds {key}");
}

/// Six keys per user with one login and one session, one hash tag, TTLs at
/// the records' `expires_at`, fields holding the canonical JSON.
pub(crate) async fn layout_and_ttls(store: &RedisStore, nodes: &[String]) {
    let name = user("{zoë}:o'brien");
    let (login, session, cookie) = login_at(&name, now());
    assert_eq!(store.create_login(&login).await.expect("create_login"), Inserted::Created);
    assert_eq!(store.create_session(&session).await.expect("create_session"), Inserted::Created);
    let keys = keys_under(nodes, store.prefix()).await.expect("scan");
    assert_eq!(keys.len(), 6, "{keys:#?}");
    let tags: std::collections::BTreeSet<&str> =
        keys.iter().map(|key| &key[key.find('{').expect("tag")..=key.find('}').expect("tag")]).collect();
    assert_eq!(tags.len(), 1, "one hash tag: {keys:#?}");
    let login_key = keys.iter().find(|key| key.contains(":l:")).expect("login key");
    assert!(login_key.ends_with(&login.serial.to_base64()), "{login_key}");
    let mut connection = node_of(nodes, login_key).await;
    let expire_ms: i64 =
        redis::cmd("PEXPIRETIME").arg(login_key).query_async(&mut connection).await.expect("PEXPIRETIME");
    let expected_ms = ms_ceil(login.expires_at);
    assert_eq!(expire_ms, expected_ms, "the login's TTL ends at its expires_at");
    let token: String =
        redis::cmd("HGET").arg(login_key).arg("token").query_async(&mut connection).await.expect("HGET");
    assert_eq!(token, serde_json::to_string(&login.token).expect("json"));
    let session_key = keys.iter().find(|key| key.contains(":s:")).expect("session key");
    let expire_ms: i64 =
        redis::cmd("PEXPIRETIME").arg(session_key).query_async(&mut connection).await.expect("PEXPIRETIME");
    let expected_ms = ms_ceil(session.expires_at);
    assert_eq!(expire_ms, expected_ms, "the session's TTL ends at its expires_at");
    // Rotation moves the login's TTL and gives the new session its own.
    let later = now() + Duration::minutes(5);
    let tokens = ChaChaTokens::from_os();
    let id = tokens.session_id();
    let rotation =
        protocol::rotation(&cookie, tokens.token(), &id, ClientMeta::default(), later, &config()).0;
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate"), Rotated::Rotated);
    let expire_ms: i64 =
        redis::cmd("PEXPIRETIME").arg(login_key).query_async(&mut connection).await.expect("PEXPIRETIME");
    let expected_ms = ms_ceil(rotation.expires_at);
    assert_eq!(expire_ms, expected_ms, "rotation refreshes the login's TTL");
    let mut rotated = login.clone();
    protocol::apply_rotation(&mut rotated, &rotation);
    assert_eq!(store.get_login(&name, &login.serial).await.expect("get"), Some(rotated));
    assert_eq!(store.get_session(&name, &session.digest).await.expect("get"), None, "old session deleted");
    assert_eq!(store.get_session(&name, &id.digest()).await.expect("get"), Some(rotation.session.clone()));
    // A touch moves the session's TTL and keeps its data.
    let new_key = keys_under(nodes, store.prefix())
        .await
        .expect("scan")
        .into_iter()
        .find(|key| kind_of(key) == "s")
        .expect("the new session");
    let touched = rotation.session.expires_at + Duration::minutes(10);
    assert!(store.touch_session(&name, &id.digest(), touched).await.expect("touch"));
    let expire_ms: i64 =
        redis::cmd("PEXPIRETIME").arg(&new_key).query_async(&mut connection).await.expect("PEXPIRETIME");
    assert_eq!(expire_ms, ms_ceil(touched), "a touch moves the session's TTL");
    let read = store.get_session(&name, &id.digest()).await.expect("get").expect("session");
    assert_eq!(read, Session { expires_at: touched, ..rotation.session.clone() });
    let deleted = store.delete_user(&name).await.expect("delete_user");
    assert_eq!((deleted.logins, deleted.sessions), (1, 1));
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), Vec::<String>::new(), "nothing left");
}

/// Records Redis expired on its own vanish from reads and from the indexes,
/// and a login that Redis expired takes the sessions it opened with it once
/// an operation comes across it.
pub(crate) async fn redis_expiry_keeps_indexes_clean(store: &RedisStore, nodes: &[String]) {
    let name = user("short-lived");
    let start = now();
    let (mut login, opened, _) = login_at(&name, start);
    login.expires_at = start + Duration::milliseconds(300);
    let (_, mut plain, _) = login_at(&name, start);
    plain.login = None;
    plain.expires_at = start + Duration::milliseconds(300);
    let (keeper, _, _) = login_at(&name, start);
    assert_eq!(store.create_login(&login).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_login(&keeper).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&opened).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&plain).await.expect("create"), Inserted::Created);
    assert_eq!(store.list_logins(&name).await.expect("list").len(), 2);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(store.get_login(&name, &login.serial).await.expect("get"), None);
    assert_eq!(store.get_session(&name, &plain.digest).await.expect("get"), None);
    assert!(!store.save_session(&plain).await.expect("save"), "an expired session is not resurrected");
    assert!(!store.touch_session(&name, &plain.digest, now()).await.expect("touch"), "nor touched back");
    assert_eq!(store.get_session(&name, &opened.digest).await.expect("get"), Some(opened.clone()));
    assert_eq!(store.list_logins(&name).await.expect("list"), vec![keeper.clone()]);
    assert_eq!(store.get_session(&name, &opened.digest).await.expect("get"), None, "ended with its login");
    // A new session prunes the stale session entry.
    let (_, fresh, _) = login_at(&name, now());
    assert_eq!(store.create_session(&fresh).await.expect("create"), Inserted::Created);
    let keys = keys_under(nodes, store.prefix()).await.expect("scan");
    assert_eq!(keys.len(), 6, "one login, one session, four indexes: {keys:#?}");
    let mut connection = node_of(nodes, keys.iter().find(|k| kind_of(k) == "L").expect("bucket index")).await;
    for key in keys.iter().filter(|key| matches!(kind_of(key), "L" | "S")) {
        let members: i64 = redis::cmd("ZCARD").arg(key).query_async(&mut connection).await.expect("ZCARD");
        assert_eq!(members, 1, "{key} lost its stale entry");
    }
    assert_eq!(store.delete_expired_logins(now()).await.expect("clean"), 0, "Redis already dropped it");
}

/// Cleaning deletes exactly what is due at `now`, days before Redis would,
/// and a cleaned login takes its sessions along.
pub(crate) async fn cleaning_is_exact_ahead_of_redis(store: &RedisStore, nodes: &[String]) {
    let start = now();
    let mut logins = Vec::new();
    let mut sessions = Vec::new();
    for (i, name) in ["ann", "bob", "cyd", "dee", "eve"].iter().enumerate() {
        let name = user(name);
        let (mut login, mut session, _) = login_at(&name, start);
        login.expires_at = start + Duration::days(1 + i as i64);
        session.expires_at = start + Duration::hours(1 + i as i64);
        assert_eq!(store.create_login(&login).await.expect("create"), Inserted::Created);
        assert_eq!(store.create_session(&session).await.expect("create"), Inserted::Created);
        logins.push(login);
        sessions.push(session);
    }
    let (_, mut plain, _) = login_at(&user("fay"), start);
    plain.login = None;
    plain.expires_at = start + Duration::hours(2);
    assert_eq!(store.create_session(&plain).await.expect("create"), Inserted::Created);
    let day = |n: i64| start + Duration::days(n);
    let hour = |n: i64| start + Duration::hours(n);
    assert_eq!(store.delete_expired_logins(day(1) - Duration::microseconds(1)).await.expect("clean"), 0);
    assert_eq!(store.delete_expired_logins(day(1)).await.expect("clean"), 1, "ann's");
    assert_eq!(store.get_session(&sessions[0].username, &sessions[0].digest).await.expect("get"), None);
    assert_eq!(store.delete_expired_logins(day(1)).await.expect("clean"), 0);
    assert_eq!(store.delete_expired_sessions(hour(2) - Duration::microseconds(1)).await.expect("clean"), 0);
    assert_eq!(store.delete_expired_sessions(hour(2)).await.expect("clean"), 2, "bob's and fay's");
    assert_eq!(store.delete_expired_logins(day(3)).await.expect("clean"), 2, "bob's and cyd's");
    assert_eq!(store.get_session(&sessions[2].username, &sessions[2].digest).await.expect("get"), None);
    assert_eq!(
        store.get_session(&sessions[3].username, &sessions[3].digest).await.expect("get"),
        Some(sessions[3].clone())
    );
    assert_eq!(
        store.get_login(&logins[3].username, &logins[3].serial).await.expect("get"),
        Some(logins[3].clone())
    );
    assert_eq!(store.get_login(&logins[2].username, &logins[2].serial).await.expect("get"), None);
    assert_eq!(store.delete_expired_logins(day(30)).await.expect("clean"), 2, "dee's and eve's");
    assert_eq!(store.delete_expired_sessions(day(30)).await.expect("clean"), 0, "gone with their logins");
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), Vec::<String>::new(), "nothing left");
}

/// Cleaning walks more than one batch in a bucket.
pub(crate) async fn cleaning_many_in_one_bucket(store: &RedisStore, nodes: &[String]) {
    let name = user("many");
    let start = now();
    let (login, _, _) = login_at(&name, start);
    for _ in 0..1200 {
        let (_, mut session, _) = login_at(&name, start);
        session.expires_at = start + Duration::minutes(1);
        assert_eq!(store.create_session(&session).await.expect("create"), Inserted::Created);
    }
    assert_eq!(store.create_login(&login).await.expect("create"), Inserted::Created);
    assert_eq!(store.delete_expired_sessions(start + Duration::minutes(1)).await.expect("clean"), 1200);
    assert_eq!(store.list_logins(&name).await.expect("list"), vec![login]);
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan").len(), 3, "the login and its indexes");
}

/// Data that does not decode is a Corrupt error, not a panic or a None.
pub(crate) async fn corrupt_records_are_errors(store: &RedisStore, nodes: &[String]) {
    let name = user("mangled");
    let (login, session, _) = login_at(&name, now());
    assert_eq!(store.create_login(&login).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&session).await.expect("create"), Inserted::Created);
    let keys = keys_under(nodes, store.prefix()).await.expect("scan");
    let login_key = keys.iter().find(|key| key.contains(":l:")).expect("login key");
    let session_key = keys.iter().find(|key| key.contains(":s:")).expect("session key");
    let mut connection = node_of(nodes, login_key).await;
    let _: i64 = redis::cmd("HSET")
        .arg(login_key)
        .arg("expires_at")
        .arg("{not json")
        .query_async(&mut connection)
        .await
        .expect("HSET");
    let _: i64 =
        redis::cmd("HDEL").arg(session_key).arg("data").query_async(&mut connection).await.expect("HDEL");
    let error = store.get_login(&name, &login.serial).await.expect_err("corrupt login");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let error = store.list_logins(&name).await.expect_err("corrupt login");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let error = store.get_session(&name, &session.digest).await.expect_err("corrupt session");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let deleted = store.delete_user(&name).await.expect("delete_user still works");
    assert_eq!((deleted.logins, deleted.sessions), (1, 1));
}

/// Two prefixes on one server share nothing.
pub(crate) async fn prefixes_isolate(store: &RedisStore, other: &RedisStore) {
    let name = user("shared-name");
    let (login, session, _) = login_at(&name, now());
    for store in [store, other] {
        assert_eq!(store.create_login(&login).await.expect("create"), Inserted::Created);
        assert_eq!(store.create_session(&session).await.expect("create"), Inserted::Created);
    }
    let deleted = store.delete_user(&name).await.expect("delete_user");
    assert_eq!((deleted.logins, deleted.sessions), (1, 1));
    assert_eq!(other.get_login(&name, &login.serial).await.expect("get"), Some(login.clone()));
    assert_eq!(other.delete_expired_logins(now() + Duration::days(1000)).await.expect("clean"), 1);
    assert_eq!(store.delete_expired_logins(now() + Duration::days(1000)).await.expect("clean"), 0);
}

/// A key of ours holding another type is Corrupt, from a plain read and from
/// inside a script; a key of another prefix in the way changes nothing.
pub(crate) async fn wrong_types_are_corrupt(store: &RedisStore, nodes: &[String]) {
    let name = user("typed");
    let (login, session, cookie) = login_at(&name, now());
    assert_eq!(store.create_login(&login).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&session).await.expect("create"), Inserted::Created);
    let keys = keys_under(nodes, store.prefix()).await.expect("scan");
    let login_key = keys.iter().find(|key| kind_of(key) == "l").expect("login key");
    let mut connection = node_of(nodes, login_key).await;
    let _: i64 = redis::cmd("DEL").arg(login_key).query_async(&mut connection).await.expect("DEL");
    let _: () = redis::cmd("SET").arg(login_key).arg("x").query_async(&mut connection).await.expect("SET");
    let error = store.get_login(&name, &login.serial).await.expect_err("a string where a hash belongs");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let tokens = ChaChaTokens::from_os();
    let rotation = protocol::rotation(
        &cookie,
        tokens.token(),
        &tokens.session_id(),
        ClientMeta::default(),
        now(),
        &config(),
    )
    .0;
    let error = store.rotate_login(&rotation).await.expect_err("a string where a hash belongs");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    assert_eq!(store.get_session(&name, &session.digest).await.expect("get"), Some(session.clone()));
    let deleted = store.delete_user(&name).await.expect("delete_user removes the stray key too");
    assert_eq!((deleted.logins, deleted.sessions), (1, 1));
}
