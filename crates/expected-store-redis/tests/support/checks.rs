//! Redis-specific checks, run on the single server and on the cluster: the
//! key layout (anonymous sessions included), TTLs, index upkeep as Redis
//! expires records, cleaning days ahead of Redis, corrupt data, records of
//! version 0.1, prefix isolation.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use expected_core::store::{Confirmation, ExpiredLogin, Inserted, Rotated};
use expected_core::time::{Duration, OffsetDateTime};
use expected_core::{
    AuthCookie, AuthMethod, ChaChaTokens, ClientMeta, Config, Login, SessionData, SessionDigest,
    SessionRecord, SessionUser, Store, StoreErrorKind, Token, TokenSource as _, Username, protocol,
};
use expected_store_redis::RedisStore;
use expected_store_redis::redis;
use sha2::{Digest as _, Sha256};

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

/// A login and the password session it opened, expiring as configured from
/// `at`.
pub(crate) fn login_at(name: &Username, at: OffsetDateTime) -> (Login, SessionRecord, AuthCookie) {
    let tokens = ChaChaTokens::from_os();
    let serial = tokens.serial();
    let user = protocol::password_user(name, Some(serial), at);
    let session = protocol::new_session(Some(user), &tokens.session_id(), SessionData::new(), at, &config());
    let client = ClientMeta::new(Some([192, 0, 2, 1].into()), Some("curl/8"));
    let (login, cookie) = protocol::new_login(name, serial, tokens.token(), &session, client, at, &config());
    (login, session, cookie)
}

/// A session of `name` opened by no login (no "remember me").
fn plain_session(name: &Username, at: OffsetDateTime) -> SessionRecord {
    let user = protocol::password_user(name, None, at);
    protocol::new_session(
        Some(user),
        &ChaChaTokens::from_os().session_id(),
        SessionData::new(),
        at,
        &config(),
    )
}

/// An anonymous visitor's session.
fn anonymous_session(at: OffsetDateTime) -> SessionRecord {
    protocol::new_session(None, &ChaChaTokens::from_os().session_id(), SessionData::new(), at, &config())
}

/// The rotation a cookie login with `cookie` on `login` makes at `at`.
fn rotation_of(cookie: &AuthCookie, login: &Login, at: OffsetDateTime) -> expected_core::store::Rotation {
    let tokens = ChaChaTokens::from_os();
    protocol::rotation(
        cookie,
        login,
        tokens.token(),
        &tokens.session_id(),
        ClientMeta::default(),
        at,
        &config(),
    )
    .0
}

/// The bucket of a user, computed here apart from the store: the key layout
/// is a contract with the data already in Redis.
fn bucket_of(name: &Username) -> u16 {
    let digest = Sha256::digest(name.as_str().as_bytes());
    u16::from_be_bytes([digest[0], digest[1]]) % 1024
}

/// The bucket of an anonymous session: the first two bytes of its digest.
fn bucket_of_session(digest: &SessionDigest) -> u16 {
    u16::from_be_bytes([digest.as_bytes()[0], digest.as_bytes()[1]]) % 1024
}

/// `P:{B}:`
fn base_of(prefix: &str, bucket: u16) -> String {
    format!("{prefix}:{{{bucket:04}}}:")
}

/// A digest in `bucket`, random otherwise.
fn digest_in(bucket: u16) -> SessionDigest {
    let mut bytes = *ChaChaTokens::from_os().session_id().digest().as_bytes();
    bytes[..2].copy_from_slice(&bucket.to_be_bytes());
    SessionDigest::from_bytes(bytes)
}

/// Microseconds since the epoch, rounded up: a score.
fn score(at: OffsetDateTime) -> i64 {
    i64::try_from((at.unix_timestamp_nanos() + 999).div_euclid(1000)).expect("µs")
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
    let rotation = rotation_of(&cookie, &login, later);
    let id = rotation.session.digest;
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate"), Rotated::Rotated);
    let expire_ms: i64 =
        redis::cmd("PEXPIRETIME").arg(login_key).query_async(&mut connection).await.expect("PEXPIRETIME");
    let expected_ms = ms_ceil(rotation.expires_at);
    assert_eq!(expire_ms, expected_ms, "rotation refreshes the login's TTL");
    let mut rotated = login.clone();
    protocol::apply_rotation(&mut rotated, &rotation);
    assert_eq!(store.get_login(&name, &login.serial).await.expect("get"), Some(rotated));
    let owner = Some(&name);
    assert_eq!(store.get_session(owner, &session.digest).await.expect("get"), None, "old session deleted");
    assert_eq!(store.get_session(owner, &id).await.expect("get"), Some(rotation.session.clone()));
    // A touch moves the session's TTL and keeps its data.
    let new_key = keys_under(nodes, store.prefix())
        .await
        .expect("scan")
        .into_iter()
        .find(|key| kind_of(key) == "s")
        .expect("the new session");
    let touched = rotation.session.expires_at + Duration::minutes(10);
    assert!(store.touch_session(owner, &id, touched).await.expect("touch"));
    let expire_ms: i64 =
        redis::cmd("PEXPIRETIME").arg(&new_key).query_async(&mut connection).await.expect("PEXPIRETIME");
    assert_eq!(expire_ms, ms_ceil(touched), "a touch moves the session's TTL");
    let read = store.get_session(owner, &id).await.expect("get").expect("session");
    assert_eq!(read, SessionRecord { expires_at: touched, ..rotation.session.clone() });
    // The session hash holds the user's fields beside the others, flat.
    let fields: Vec<String> =
        redis::cmd("HKEYS").arg(&new_key).query_async(&mut connection).await.expect("HKEYS");
    let mut fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["authenticated_at", "created_at", "data", "digest", "expires_at", "login", "method", "username"]
    );
    let deleted = store.delete_user(&name).await.expect("delete_user");
    assert_eq!((deleted.logins, deleted.sessions, deleted.serials), (1, 1, vec![login.serial]));
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
    let mut plain = plain_session(&name, start);
    plain.expires_at = start + Duration::milliseconds(300);
    let mut visitor = anonymous_session(start);
    visitor.expires_at = start + Duration::milliseconds(300);
    let (keeper, _, _) = login_at(&name, start);
    assert_eq!(store.create_login(&login).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_login(&keeper).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&opened).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&plain).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&visitor).await.expect("create"), Inserted::Created);
    assert_eq!(store.list_logins(&name).await.expect("list").len(), 2);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let owner = Some(&name);
    assert_eq!(store.get_login(&name, &login.serial).await.expect("get"), None);
    assert_eq!(store.get_session(owner, &plain.digest).await.expect("get"), None);
    assert!(!store.save_session(&plain).await.expect("save"), "an expired session is not resurrected");
    assert!(!store.touch_session(owner, &plain.digest, now()).await.expect("touch"), "nor touched back");
    assert_eq!(store.get_session(None, &visitor.digest).await.expect("get"), None);
    assert!(!store.save_session(&visitor).await.expect("save"), "nor an anonymous one");
    // A confirmation on a session whose login Redis expired writes the
    // session and never creates a partial login hash.
    let confirmation =
        Confirmation { username: name.clone(), session: opened.digest, login: Some(login.serial), at: now() };
    assert!(store.confirm_password(&confirmation).await.expect("confirm"));
    assert_eq!(store.get_login(&name, &login.serial).await.expect("get"), None, "no login written");
    let confirmed = store.get_session(owner, &opened.digest).await.expect("get").expect("still there");
    assert_eq!(confirmed.user.map(|user| user.authenticated_at), Some(confirmation.at));
    assert_eq!(store.list_logins(&name).await.expect("list"), vec![keeper.clone()]);
    assert_eq!(store.get_session(owner, &opened.digest).await.expect("get"), None, "ended with its login");
    // A new session prunes the stale session entry, an anonymous one the
    // stale anonymous entry of its bucket.
    let (_, fresh, _) = login_at(&name, now());
    assert_eq!(store.create_session(&fresh).await.expect("create"), Inserted::Created);
    let mut again = anonymous_session(now());
    again.digest = digest_in(bucket_of_session(&visitor.digest));
    assert_eq!(store.create_session(&again).await.expect("create"), Inserted::Created);
    let keys = keys_under(nodes, store.prefix()).await.expect("scan");
    assert_eq!(keys.len(), 8, "one login, two sessions, five indexes: {keys:#?}");
    for key in keys.iter().filter(|key| matches!(kind_of(key), "L" | "S" | "A")) {
        let mut connection = node_of(nodes, key).await;
        let members: i64 = redis::cmd("ZCARD").arg(key).query_async(&mut connection).await.expect("ZCARD");
        assert_eq!(members, 1, "{key} lost its stale entry");
    }
    assert_eq!(store.delete_expired_logins(now()).await.expect("clean"), vec![], "Redis already dropped it");
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
    let mut plain = plain_session(&user("fay"), start);
    plain.expires_at = start + Duration::hours(2);
    assert_eq!(store.create_session(&plain).await.expect("create"), Inserted::Created);
    let mut visitors = Vec::new();
    for hours in [2, 3] {
        let mut visitor = anonymous_session(start);
        visitor.expires_at = start + Duration::hours(hours);
        assert_eq!(store.create_session(&visitor).await.expect("create"), Inserted::Created);
        visitors.push(visitor);
    }
    let day = |n: i64| start + Duration::days(n);
    let hour = |n: i64| start + Duration::hours(n);
    let expired =
        |at: usize| vec![ExpiredLogin { username: logins[at].username.clone(), serial: logins[at].serial }];
    let sorted = |mut list: Vec<ExpiredLogin>| {
        list.sort();
        list
    };
    let session_of = |at: usize| (sessions[at].username(), sessions[at].digest);
    assert_eq!(store.delete_expired_logins(day(1) - Duration::microseconds(1)).await.expect("clean"), vec![]);
    assert_eq!(store.delete_expired_logins(day(1)).await.expect("clean"), expired(0), "ann's");
    assert_eq!(store.get_session(session_of(0).0, &session_of(0).1).await.expect("get"), None);
    assert_eq!(store.delete_expired_logins(day(1)).await.expect("clean"), vec![]);
    assert_eq!(store.delete_expired_sessions(hour(2) - Duration::microseconds(1)).await.expect("clean"), 0);
    assert_eq!(store.delete_expired_sessions(hour(2)).await.expect("clean"), 3, "bob's, fay's, a visitor's");
    assert_eq!(store.get_session(None, &visitors[0].digest).await.expect("get"), None);
    assert_eq!(store.get_session(None, &visitors[1].digest).await.expect("get"), Some(visitors[1].clone()));
    let both = sorted([expired(1), expired(2)].concat());
    assert_eq!(sorted(store.delete_expired_logins(day(3)).await.expect("clean")), both, "bob's and cyd's");
    assert_eq!(store.get_session(session_of(2).0, &session_of(2).1).await.expect("get"), None);
    assert_eq!(
        store.get_session(session_of(3).0, &session_of(3).1).await.expect("get"),
        Some(sessions[3].clone())
    );
    assert_eq!(
        store.get_login(&logins[3].username, &logins[3].serial).await.expect("get"),
        Some(logins[3].clone())
    );
    assert_eq!(store.get_login(&logins[2].username, &logins[2].serial).await.expect("get"), None);
    let both = sorted([expired(3), expired(4)].concat());
    assert_eq!(sorted(store.delete_expired_logins(day(30)).await.expect("clean")), both, "dee's and eve's");
    assert_eq!(store.delete_expired_sessions(day(30)).await.expect("clean"), 1, "the other visitor's");
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), Vec::<String>::new(), "nothing left");
}

/// Cleaning walks more than one batch in a bucket, of users' sessions and of
/// anonymous ones (fewer of those: the batches of the two indexes end apart).
pub(crate) async fn cleaning_many_in_one_bucket(store: &RedisStore, nodes: &[String]) {
    let name = user("many");
    let start = now();
    let (login, _, _) = login_at(&name, start);
    for _ in 0..1200 {
        let (_, mut session, _) = login_at(&name, start);
        session.expires_at = start + Duration::minutes(1);
        assert_eq!(store.create_session(&session).await.expect("create"), Inserted::Created);
    }
    for _ in 0..700 {
        let mut visitor = anonymous_session(start);
        visitor.digest = digest_in(bucket_of(&name));
        visitor.expires_at = start + Duration::minutes(1);
        assert_eq!(store.create_session(&visitor).await.expect("create"), Inserted::Created);
    }
    assert_eq!(store.create_login(&login).await.expect("create"), Inserted::Created);
    assert_eq!(store.delete_expired_sessions(start + Duration::minutes(1)).await.expect("clean"), 1900);
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
    let error = store.get_session(Some(&name), &session.digest).await.expect_err("corrupt session");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let deleted = store.delete_user(&name).await.expect("delete_user still works");
    assert_eq!((deleted.logins, deleted.sessions), (1, 1));
    // An anonymous session that names a user, or half a user, is corrupt too.
    let visitor = anonymous_session(now());
    assert_eq!(store.create_session(&visitor).await.expect("create"), Inserted::Created);
    let key = format!(
        "{}a:{}",
        base_of(store.prefix(), bucket_of_session(&visitor.digest)),
        visitor.digest.to_base64()
    );
    let mut connection = node_of(nodes, &key).await;
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg("login")
        .arg("null")
        .query_async(&mut connection)
        .await
        .expect("HSET");
    let error = store.get_session(None, &visitor.digest).await.expect_err("half a user");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg("username")
        .arg(serde_json::to_string(&name).expect("json"))
        .query_async(&mut connection)
        .await
        .expect("HSET");
    let error = store
        .get_session(None, &visitor.digest)
        .await
        .expect_err("a user's session where an anonymous one belongs");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    assert!(store.delete_session(None, &visitor.digest).await.expect("delete still works"));
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
    assert_eq!(other.delete_expired_logins(now() + Duration::days(1000)).await.expect("clean").len(), 1);
    assert_eq!(store.delete_expired_logins(now() + Duration::days(1000)).await.expect("clean"), vec![]);
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
    let rotation = rotation_of(&cookie, &login, now());
    let error = store.rotate_login(&rotation).await.expect_err("a string where a hash belongs");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let error = store
        .confirm_password(&Confirmation {
            username: name.clone(),
            session: session.digest,
            login: Some(login.serial),
            at: now(),
        })
        .await
        .expect_err("a string where a hash belongs");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    assert_eq!(store.get_session(Some(&name), &session.digest).await.expect("get"), Some(session.clone()));
    let deleted = store.delete_user(&name).await.expect("delete_user removes the stray key too");
    assert_eq!((deleted.logins, deleted.sessions), (1, 1));
}

/// An anonymous session lives in the bucket of its digest under `a:D`,
/// indexed in the bucket's `A` set, with a TTL and no user fields; a user's
/// session with the very same digest is another record, and no user
/// operation reaches the anonymous one.
pub(crate) async fn anonymous_sessions_layout(store: &RedisStore, nodes: &[String]) {
    let start = now();
    let mut visitor = anonymous_session(start);
    visitor.data.insert("theme".to_owned(), serde_json::Value::from("dark"));
    assert_eq!(store.create_session(&visitor).await.expect("create"), Inserted::Created);
    let base = base_of(store.prefix(), bucket_of_session(&visitor.digest));
    let key = format!("{base}a:{}", visitor.digest.to_base64());
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), vec![format!("{base}A"), key.clone()]);
    let mut connection = node_of(nodes, &key).await;
    let expire_ms: i64 =
        redis::cmd("PEXPIRETIME").arg(&key).query_async(&mut connection).await.expect("PEXPIRETIME");
    assert_eq!(expire_ms, ms_ceil(visitor.expires_at), "the session's TTL ends at its expires_at");
    let mut fields: Vec<String> =
        redis::cmd("HKEYS").arg(&key).query_async(&mut connection).await.expect("HKEYS");
    fields.sort_unstable();
    assert_eq!(fields, ["created_at", "data", "digest", "expires_at"]);
    let indexed: Vec<(String, i64)> = redis::cmd("ZRANGE")
        .arg(format!("{base}A"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut connection)
        .await
        .expect("ZRANGE");
    assert_eq!(indexed, [(visitor.digest.to_base64(), score(visitor.expires_at))]);

    // The same digest as a user's session: two records, each found by its
    // owner only.
    let name = user("visitor-too");
    let (login, _, cookie) = login_at(&name, start);
    let mut own = plain_session(&name, start);
    own.digest = visitor.digest;
    assert_eq!(store.create_login(&login).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&own).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&visitor).await.expect("create"), Inserted::AlreadyExists);
    assert_eq!(store.get_session(None, &visitor.digest).await.expect("get"), Some(visitor.clone()));
    assert_eq!(store.get_session(Some(&name), &visitor.digest).await.expect("get"), Some(own.clone()));
    let touched = visitor.expires_at + Duration::minutes(3);
    assert!(store.touch_session(None, &visitor.digest, touched).await.expect("touch"));
    let expire_ms: i64 =
        redis::cmd("PEXPIRETIME").arg(&key).query_async(&mut connection).await.expect("PEXPIRETIME");
    assert_eq!(expire_ms, ms_ceil(touched), "a touch moves an anonymous session's TTL");
    let visitor = SessionRecord { expires_at: touched, ..visitor };

    // No user operation reaches it, even in the same bucket: logging out the
    // other devices, a rotation, the whole user.
    let mut neighbour = anonymous_session(start);
    neighbour.digest = digest_in(bucket_of(&name));
    assert_eq!(store.create_session(&neighbour).await.expect("create"), Inserted::Created);
    let rotation = rotation_of(&cookie, &login, now());
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate"), Rotated::Rotated);
    assert!(
        store
            .confirm_password(&Confirmation {
                username: name.clone(),
                session: own.digest,
                login: None,
                at: now()
            })
            .await
            .expect("confirm")
    );
    let keep = expected_core::store::Keep { session: own.digest, login: None };
    let deleted = store.delete_user_except(&name, &keep).await.expect("delete_user_except");
    assert_eq!(
        (deleted.sessions, deleted.serials),
        (1, vec![login.serial]),
        "the rotated session and its login"
    );
    let deleted = store.delete_user(&name).await.expect("delete_user");
    assert_eq!((deleted.logins, deleted.sessions), (0, 1), "the kept session");
    assert_eq!(store.get_session(None, &visitor.digest).await.expect("get"), Some(visitor.clone()));
    assert_eq!(store.get_session(None, &neighbour.digest).await.expect("get"), Some(neighbour.clone()));
    assert_eq!(store.get_session(Some(&name), &neighbour.digest).await.expect("get"), None);
    let user_kinds: Vec<String> = keys_under(nodes, store.prefix())
        .await
        .expect("scan")
        .into_iter()
        .filter(|key| !matches!(kind_of(key), "a" | "A"))
        .collect();
    assert_eq!(user_kinds, Vec::<String>::new(), "nothing of the user is left");

    // Deleted and cleaned like any session, and counted.
    assert!(store.delete_session(None, &neighbour.digest).await.expect("delete"));
    assert!(!store.delete_session(None, &neighbour.digest).await.expect("delete"));
    assert_eq!(store.delete_expired_sessions(touched - Duration::microseconds(1)).await.expect("clean"), 0);
    assert_eq!(store.delete_expired_sessions(touched).await.expect("clean"), 1);
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), Vec::<String>::new(), "nothing left");
}

/// `at` as version 0.1 wrote it: the canonical RFC 3339 JSON string.
fn json_time(at: OffsetDateTime) -> String {
    let text = at.format(&expected_core::time::format_description::well_known::Rfc3339).expect("format");
    serde_json::to_string(&text).expect("json")
}

/// Writes one record hash and its index entries as version 0.1 of this
/// store did: `HSET`, `PEXPIREAT`, then the owner's and the bucket's index.
async fn write_0_1(
    nodes: &[String],
    base: &str,
    (kind, index): (&str, &str),
    user: &str,
    member: &str,
    expires_at: OffsetDateTime,
    fields: &[(&str, String)],
) {
    let key = format!("{base}{kind}:{user}:{member}");
    let mut connection = None;
    // The node owning the bucket: the one whose HSET is not redirected.
    for node in nodes {
        let mut candidate = self::connection(std::slice::from_ref(node)).await;
        let mut hset = redis::cmd("HSET");
        hset.arg(&key);
        for (name, value) in fields {
            hset.arg(*name).arg(value);
        }
        if hset.query_async::<i64>(&mut candidate).await.is_ok() {
            connection = Some(candidate);
            break;
        }
    }
    let mut connection = connection.expect("a node owns the bucket");
    let _: i64 = redis::cmd("PEXPIREAT")
        .arg(&key)
        .arg(ms_ceil(expires_at))
        .query_async(&mut connection)
        .await
        .expect("PEXPIREAT");
    for (set, entry) in [
        (format!("{base}{index}:{user}"), member.to_owned()),
        (format!("{base}{index}"), format!("{user}:{member}")),
    ] {
        let _: i64 = redis::cmd("ZADD")
            .arg(set)
            .arg(score(expires_at))
            .arg(entry)
            .query_async(&mut connection)
            .await
            .expect("ZADD");
    }
}

/// Records written by version 0.1 (logins without `authenticated_at`,
/// sessions with `username` and `login` at the top level and neither
/// `method` nor `authenticated_at`) read back with their defaults and go
/// through every operation.
pub(crate) async fn reads_version_0_1_records(store: &RedisStore, nodes: &[String]) {
    let name = user("olga:{0.1}");
    let created = now().replace_nanosecond(0).expect("whole seconds") - Duration::days(2);
    let used = created + Duration::days(1);
    let expires = created + Duration::days(30);
    let base = base_of(store.prefix(), bucket_of(&name));
    let encoded = URL_SAFE_NO_PAD.encode(name.as_str().as_bytes());
    let tokens = ChaChaTokens::from_os();
    let serial = tokens.serial();
    let token = Token::from_bytes([7; 32]);
    let (bound, plain) = (tokens.session_id().digest(), tokens.session_id().digest());
    let quoted = |text: String| serde_json::to_string(&text).expect("json");
    let username_json = serde_json::to_string(name.as_str()).expect("json");
    write_0_1(
        nodes,
        &base,
        ("l", "L"),
        &encoded,
        &serial.to_base64(),
        expires,
        &[
            ("username", username_json.clone()),
            ("serial", quoted(serial.to_base64())),
            ("token", quoted(token.digest().to_base64())),
            ("previous", "null".to_owned()),
            ("session", quoted(bound.to_base64())),
            ("created_at", json_time(created)),
            ("last_used_at", json_time(used)),
            ("expires_at", json_time(expires)),
            ("client", r#"{"ip":"192.0.2.1","user_agent":"curl/8"}"#.to_owned()),
        ],
    )
    .await;
    for (digest, login) in [(bound, quoted(serial.to_base64())), (plain, "null".to_owned())] {
        write_0_1(
            nodes,
            &base,
            ("s", "S"),
            &encoded,
            &digest.to_base64(),
            expires,
            &[
                ("digest", quoted(digest.to_base64())),
                ("username", username_json.clone()),
                ("login", login),
                ("data", r#"{"cart":[1,2]}"#.to_owned()),
                ("created_at", json_time(created)),
                ("expires_at", json_time(expires)),
            ],
        )
        .await;
    }

    let login = Login {
        username: name.clone(),
        serial,
        token: token.digest(),
        previous: None,
        session: Some(bound),
        created_at: created,
        last_used_at: used,
        expires_at: expires,
        client: ClientMeta::new(Some([192, 0, 2, 1].into()), Some("curl/8")),
        authenticated_at: created,
    };
    assert_eq!(store.get_login(&name, &serial).await.expect("get_login"), Some(login.clone()));
    assert_eq!(store.list_logins(&name).await.expect("list_logins"), vec![login.clone()]);
    let mut data = SessionData::new();
    data.insert("cart".to_owned(), serde_json::json!([1, 2]));
    let session = |digest: SessionDigest, login: Option<expected_core::Serial>| SessionRecord {
        digest,
        user: Some(SessionUser {
            username: name.clone(),
            login,
            method: AuthMethod::Remembered,
            authenticated_at: created,
        }),
        data: data.clone(),
        created_at: created,
        expires_at: expires,
    };
    let owner = Some(&name);
    assert_eq!(store.get_session(owner, &bound).await.expect("get"), Some(session(bound, Some(serial))));
    assert_eq!(store.get_session(owner, &plain).await.expect("get"), Some(session(plain, None)));
    assert_eq!(store.get_session(None, &plain).await.expect("get"), None, "a user's, not anonymous");

    // A save keeps the user as read; a confirmation writes the new fields.
    let mut saved = session(plain, None);
    saved.data.insert("seen".to_owned(), serde_json::Value::from(true));
    assert!(store.save_session(&saved).await.expect("save"));
    assert_eq!(store.get_session(owner, &plain).await.expect("get"), Some(saved.clone()));
    let at = now();
    let confirmation = Confirmation { username: name.clone(), session: plain, login: None, at };
    assert!(store.confirm_password(&confirmation).await.expect("confirm"));
    let confirmed = store.get_session(owner, &plain).await.expect("get").expect("session");
    let user = confirmed.user.as_ref().expect("user");
    assert_eq!((user.method, user.authenticated_at), (AuthMethod::Password, at));
    assert_eq!(store.get_login(&name, &serial).await.expect("get"), Some(login.clone()), "no login named");

    // The 0.1 login rotates: its bound 0.1 session goes, its authenticated_at
    // stays what it read as, and the new session carries it.
    let cookie = AuthCookie { username: name.clone(), serial, token, key: None };
    let rotation = rotation_of(&cookie, &login, now());
    assert_eq!(rotation.session.user.as_ref().map(|user| user.authenticated_at), Some(created));
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate"), Rotated::Rotated);
    let mut rotated = login.clone();
    protocol::apply_rotation(&mut rotated, &rotation);
    assert_eq!(store.get_login(&name, &serial).await.expect("get"), Some(rotated));
    assert_eq!(store.get_session(owner, &bound).await.expect("get"), None, "the bound 0.1 session went");
    assert_eq!(
        store.get_session(owner, &rotation.session.digest).await.expect("get"),
        Some(rotation.session.clone())
    );

    // Ending the 0.1 login ends the sessions it opened, matched by the
    // 0.1 `login` field.
    let mut opened = session(tokens.session_id().digest(), Some(serial));
    opened.data = SessionData::new();
    assert_eq!(store.create_session(&opened).await.expect("create"), Inserted::Created);
    assert!(store.delete_login(&name, &serial).await.expect("delete_login"));
    assert_eq!(store.get_session(owner, &opened.digest).await.expect("get"), None);
    assert_eq!(store.get_session(owner, &rotation.session.digest).await.expect("get"), None);
    let deleted = store.delete_user(&name).await.expect("delete_user");
    assert_eq!((deleted.logins, deleted.sessions), (0, 1), "the confirmed 0.1 session");
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), Vec::<String>::new(), "nothing left");
}
