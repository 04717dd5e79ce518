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
    opened_by(name, None, at)
}

/// A password session of `name` opened by the login `serial` (not its bound
/// one), or by none.
fn opened_by(name: &Username, serial: Option<expected_core::Serial>, at: OffsetDateTime) -> SessionRecord {
    let user = protocol::password_user(name, serial, at);
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

/// Eight keys per user with one login and the session it opened, one hash
/// tag, TTLs at the records' `expires_at` (the login's set of sessions and
/// the user's marker as long as the session), fields holding the canonical
/// JSON.
pub(crate) async fn layout_and_ttls(store: &RedisStore, nodes: &[String]) {
    let name = user("{zoë}:o'brien");
    let (login, session, cookie) = login_at(&name, now());
    assert_eq!(store.create_login(&login).await.expect("create_login"), Inserted::Created);
    assert_eq!(store.create_session(&session, None).await.expect("create_session"), Inserted::Created);
    let keys = keys_under(nodes, store.prefix()).await.expect("scan");
    let kinds: Vec<&str> = keys.iter().map(|key| kind_of(key)).collect();
    assert_eq!(kinds, ["I", "L", "L", "O", "S", "S", "l", "s"], "{keys:#?}");
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
    let opened_key = keys.iter().find(|key| kind_of(key) == "O").expect("the login's set");
    assert!(opened_key.ends_with(&format!(":{}", login.serial.to_base64())), "{opened_key}");
    let members: Vec<String> =
        redis::cmd("SMEMBERS").arg(opened_key).query_async(&mut connection).await.expect("SMEMBERS");
    assert_eq!(members, [session.digest.to_base64()], "the login's set holds the session it opened");
    for key in [opened_key, keys.iter().find(|key| kind_of(key) == "I").expect("the marker")] {
        let expire_ms: i64 =
            redis::cmd("PEXPIRETIME").arg(key).query_async(&mut connection).await.expect("PEXPIRETIME");
        assert_eq!(expire_ms, expected_ms, "{key} lives as long as the session");
    }
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
    let members: Vec<String> =
        redis::cmd("SMEMBERS").arg(opened_key).query_async(&mut connection).await.expect("SMEMBERS");
    assert_eq!(members, [id.to_base64()], "after a rotation the login's set holds its new session alone");
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
    for key in [opened_key, keys.iter().find(|key| kind_of(key) == "I").expect("the marker")] {
        let expire_ms: i64 =
            redis::cmd("PEXPIRETIME").arg(key).query_async(&mut connection).await.expect("PEXPIRETIME");
        assert_eq!(expire_ms, ms_ceil(touched), "a touch moves the TTL of {key} along");
    }
    let read = store.get_session(owner, &id).await.expect("get").expect("session");
    assert_eq!(read, SessionRecord { expires_at: touched, ..rotation.session.clone() });
    // The session hash holds the packed session, and its login beside it
    // for the scripts.
    let fields: Vec<String> =
        redis::cmd("HKEYS").arg(&new_key).query_async(&mut connection).await.expect("HKEYS");
    let mut fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["login", "packed"]);
    assert_eq!(hget(&mut connection, &new_key, "packed").await, Some(packed(&read)), "the packed layout");
    let login_json = serde_json::to_string(&login.serial).expect("json").into_bytes();
    assert_eq!(hget(&mut connection, &new_key, "login").await, Some(login_json));
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
    assert_eq!(store.create_session(&opened, None).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&plain, None).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&visitor, None).await.expect("create"), Inserted::Created);
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
    assert_eq!(store.create_session(&fresh, None).await.expect("create"), Inserted::Created);
    let mut again = anonymous_session(now());
    again.digest = digest_in(bucket_of_session(&visitor.digest));
    assert_eq!(store.create_session(&again, None).await.expect("create"), Inserted::Created);
    let keys = keys_under(nodes, store.prefix()).await.expect("scan");
    assert_eq!(
        keys.len(),
        10,
        "one login, two sessions, five indexes, the user's marker and the set of the login `fresh` names: \
         {keys:#?}"
    );
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
        assert_eq!(store.create_session(&session, None).await.expect("create"), Inserted::Created);
        logins.push(login);
        sessions.push(session);
    }
    let mut plain = plain_session(&user("fay"), start);
    plain.expires_at = start + Duration::hours(2);
    assert_eq!(store.create_session(&plain, None).await.expect("create"), Inserted::Created);
    let mut visitors = Vec::new();
    for hours in [2, 3] {
        let mut visitor = anonymous_session(start);
        visitor.expires_at = start + Duration::hours(hours);
        assert_eq!(store.create_session(&visitor, None).await.expect("create"), Inserted::Created);
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
        assert_eq!(store.create_session(&session, None).await.expect("create"), Inserted::Created);
    }
    for _ in 0..700 {
        let mut visitor = anonymous_session(start);
        visitor.digest = digest_in(bucket_of(&name));
        visitor.expires_at = start + Duration::minutes(1);
        assert_eq!(store.create_session(&visitor, None).await.expect("create"), Inserted::Created);
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
    assert_eq!(store.create_session(&session, None).await.expect("create"), Inserted::Created);
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
    let error = store.get_login(&name, &login.serial).await.expect_err("corrupt login");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let error = store.list_logins(&name).await.expect_err("corrupt login");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    // A packed session with a value too few, and one with a value that is
    // no JSON: reads are corrupt, and the scripts that would write into it
    // refuse it, writing nothing.
    let whole = packed(&session);
    let authenticated_before = hget(&mut connection, login_key, "authenticated_at").await;
    assert!(authenticated_before.is_some());
    let separator = whole.iter().rposition(|&byte| byte == 0x1f).expect("a separator");
    let short = whole[..separator].to_vec();
    let bad_data = packed_with(&session, &[(1, "{not json")]);
    // A session's hash holding another session's value (a digest that is
    // not the one its key names) is corrupt, never that other session; its
    // own digest written back the same way reads as before.
    let other = expected_core::SessionId::from_bytes([9; 32]).digest();
    for (digest, holds_its_own) in [(other, false), (session.digest, true)] {
        let digest_json = serde_json::to_string(&digest).expect("json");
        let _: i64 = redis::cmd("HSET")
            .arg(session_key)
            .arg("packed")
            .arg(packed_with(&session, &[(0, &digest_json)]))
            .query_async(&mut connection)
            .await
            .expect("HSET");
        let read = store.get_session(Some(&name), &session.digest).await;
        if holds_its_own {
            assert_eq!(read.expect("its own session"), Some(session.clone()));
        } else {
            let error = read.expect_err("another session's value");
            assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
        }
    }
    for mangled in [short, bad_data] {
        let _: i64 = redis::cmd("HSET")
            .arg(session_key)
            .arg("packed")
            .arg(&mangled)
            .query_async(&mut connection)
            .await
            .expect("HSET");
        let error = store.get_session(Some(&name), &session.digest).await.expect_err("corrupt session");
        assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
        if mangled.iter().filter(|&&byte| byte == 0x1f).count() == 7 {
            continue; // the scripts split values; they do not parse JSON
        }
        let later = session.expires_at + Duration::minutes(1);
        let error = store.touch_session(Some(&name), &session.digest, later).await.expect_err("touch");
        assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
        let error = store.save_session(&session).await.expect_err("save");
        assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
        let confirmation = Confirmation {
            username: name.clone(),
            session: session.digest,
            login: Some(login.serial),
            at: later,
        };
        let error = store.confirm_password(&confirmation).await.expect_err("confirm");
        assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
        assert_eq!(hget(&mut connection, session_key, "packed").await, Some(mangled), "nothing written");
        let authenticated = hget(&mut connection, login_key, "authenticated_at").await;
        assert_eq!(authenticated, authenticated_before, "the login's authenticated_at stays");
        let expire_ms: i64 = redis::cmd("PEXPIRETIME")
            .arg(session_key)
            .query_async(&mut connection)
            .await
            .expect("PEXPIRETIME");
        assert_eq!(expire_ms, ms_ceil(session.expires_at), "the TTL stays");
    }
    let deleted = store.delete_user(&name).await.expect("delete_user still works");
    assert_eq!((deleted.logins, deleted.sessions), (1, 1));
    // An anonymous session that names a user, or half a user, is corrupt too.
    let visitor = anonymous_session(now());
    assert_eq!(store.create_session(&visitor, None).await.expect("create"), Inserted::Created);
    let key = format!(
        "{}a:{}",
        base_of(store.prefix(), bucket_of_session(&visitor.digest)),
        visitor.digest.to_base64()
    );
    let mut connection = node_of(nodes, &key).await;
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg("packed")
        .arg(packed_with(&visitor, &[(5, "null")]))
        .query_async(&mut connection)
        .await
        .expect("HSET");
    let error = store.get_session(None, &visitor.digest).await.expect_err("half a user");
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let username = serde_json::to_string(&name).expect("json");
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg("packed")
        .arg(packed_with(&visitor, &[(4, &username), (5, "null")]))
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
        assert_eq!(store.create_session(&session, None).await.expect("create"), Inserted::Created);
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
    assert_eq!(store.create_session(&session, None).await.expect("create"), Inserted::Created);
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
    assert_eq!(store.create_session(&visitor, None).await.expect("create"), Inserted::Created);
    let base = base_of(store.prefix(), bucket_of_session(&visitor.digest));
    let key = format!("{base}a:{}", visitor.digest.to_base64());
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), vec![format!("{base}A"), key.clone()]);
    let mut connection = node_of(nodes, &key).await;
    let expire_ms: i64 =
        redis::cmd("PEXPIRETIME").arg(&key).query_async(&mut connection).await.expect("PEXPIRETIME");
    assert_eq!(expire_ms, ms_ceil(visitor.expires_at), "the session's TTL ends at its expires_at");
    let fields: Vec<String> =
        redis::cmd("HKEYS").arg(&key).query_async(&mut connection).await.expect("HKEYS");
    assert_eq!(fields, ["packed"], "an anonymous session has no login");
    assert_eq!(hget(&mut connection, &key, "packed").await, Some(packed(&visitor)));
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
    assert_eq!(store.create_session(&own, None).await.expect("create"), Inserted::Created);
    assert_eq!(store.create_session(&visitor, None).await.expect("create"), Inserted::AlreadyExists);
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
    assert_eq!(store.create_session(&neighbour, None).await.expect("create"), Inserted::Created);
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

/// A session's packed value, built here apart from the store (the layout
/// is a contract with the data already in Redis): the JSON of `digest`,
/// `data`, `created_at`, `expires_at`, `username`, `login`, `method` and
/// `authenticated_at`, empty for the user fields of an anonymous session,
/// joined by byte 31.
fn packed(session: &SessionRecord) -> Vec<u8> {
    packed_with(session, &[])
}

/// [`packed`] with some values replaced (`(index, value)`).
fn packed_with(session: &SessionRecord, replaced: &[(usize, &str)]) -> Vec<u8> {
    let record = serde_json::to_value(session).expect("json");
    let user = record.get("user").filter(|user| user.is_object());
    let top = |name: &str| record.get(name).map(ToString::to_string).expect("a session field");
    let of_user =
        |name: &str| user.and_then(|user| user.get(name)).map(ToString::to_string).unwrap_or_default();
    let mut values = [
        top("digest"),
        top("data"),
        top("created_at"),
        top("expires_at"),
        of_user("username"),
        of_user("login"),
        of_user("method"),
        of_user("authenticated_at"),
    ];
    for &(index, value) in replaced {
        values[index] = value.to_owned();
    }
    values.join("\u{1f}").into_bytes()
}

/// `HGET key field`, nil as `None`.
async fn hget(connection: &mut redis::aio::MultiplexedConnection, key: &str, field: &str) -> Option<Vec<u8>> {
    redis::cmd("HGET").arg(key).arg(field).query_async(connection).await.expect("HGET")
}

/// `at` as version 0.1 wrote it: the canonical RFC 3339 JSON string.
fn json_time(at: OffsetDateTime) -> String {
    let text = at.format(&expected_core::time::format_description::well_known::Rfc3339).expect("format");
    serde_json::to_string(&text).expect("json")
}

/// Writes one record hash and its index entries as version 0.1 of this
/// store did: `HSET`, `PEXPIREAT`, then the owner's and the bucket's index.
async fn write_0_1(
    (store, nodes): (&RedisStore, &[String]),
    name: &Username,
    (kind, index): (&str, &str),
    member: &str,
    expires_at: OffsetDateTime,
    fields: &[(&str, String)],
) {
    let base = base_of(store.prefix(), bucket_of(name));
    let user = URL_SAFE_NO_PAD.encode(name.as_str().as_bytes());
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

/// A JSON string.
fn quoted(text: String) -> String {
    serde_json::to_string(&text).expect("json")
}

/// Writes `login` as version 0.1 did: no `authenticated_at`.
async fn write_0_1_login(store: &RedisStore, nodes: &[String], login: &Login) {
    let name = &login.username;
    let bound = login.session.map_or_else(|| "null".to_owned(), |digest| quoted(digest.to_base64()));
    write_0_1(
        (store, nodes),
        name,
        ("l", "L"),
        &login.serial.to_base64(),
        login.expires_at,
        &[
            ("username", quoted(name.as_str().to_owned())),
            ("serial", quoted(login.serial.to_base64())),
            ("token", quoted(login.token.to_base64())),
            ("previous", "null".to_owned()),
            ("session", bound),
            ("created_at", json_time(login.created_at)),
            ("last_used_at", json_time(login.last_used_at)),
            ("expires_at", json_time(login.expires_at)),
            ("client", serde_json::to_string(&login.client).expect("json")),
        ],
    )
    .await;
}

/// Writes a user's `session` as version 0.1 did: `username` and `login` at
/// the top level, neither `method` nor `authenticated_at`.
pub(crate) async fn write_0_1_session(store: &RedisStore, nodes: &[String], session: &SessionRecord) {
    let name = session.username().expect("a user's session");
    let login = session.login().map_or_else(|| "null".to_owned(), |serial| quoted(serial.to_base64()));
    write_0_1(
        (store, nodes),
        name,
        ("s", "S"),
        &session.digest.to_base64(),
        session.expires_at,
        &[
            ("digest", quoted(session.digest.to_base64())),
            ("username", quoted(name.as_str().to_owned())),
            ("login", login),
            ("data", serde_json::to_string(&session.data).expect("json")),
            ("created_at", json_time(session.created_at)),
            ("expires_at", json_time(session.expires_at)),
        ],
    )
    .await;
}

/// A user's session as version 0.1 reads back: `Remembered` at its
/// `created_at`.
pub(crate) fn session_0_1(
    name: &Username,
    digest: SessionDigest,
    login: Option<expected_core::Serial>,
    data: &SessionData,
    (created, expires): (OffsetDateTime, OffsetDateTime),
) -> SessionRecord {
    SessionRecord {
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
    let tokens = ChaChaTokens::from_os();
    let serial = tokens.serial();
    let token = Token::from_bytes([7; 32]);
    let (bound, plain) = (tokens.session_id().digest(), tokens.session_id().digest());
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
    let mut data = SessionData::new();
    data.insert("cart".to_owned(), serde_json::json!([1, 2]));
    let session = |digest, login| session_0_1(&name, digest, login, &data, (created, expires));
    write_0_1_login(store, nodes, &login).await;
    for written in [session(bound, Some(serial)), session(plain, None)] {
        write_0_1_session(store, nodes, &written).await;
    }

    assert_eq!(store.get_login(&name, &serial).await.expect("get_login"), Some(login.clone()));
    assert_eq!(store.list_logins(&name).await.expect("list_logins"), vec![login.clone()]);
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
    assert_eq!(store.create_session(&opened, None).await.expect("create"), Inserted::Created);
    assert!(store.delete_login(&name, &serial).await.expect("delete_login"));
    assert_eq!(store.get_session(owner, &opened.digest).await.expect("get"), None);
    assert_eq!(store.get_session(owner, &rotation.session.digest).await.expect("get"), None);
    let deleted = store.delete_user(&name).await.expect("delete_user");
    assert_eq!((deleted.logins, deleted.sessions), (0, 1), "the confirmed 0.1 session");
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), Vec::<String>::new(), "nothing left");
}

/// How many of `keys` (all of one slot) a command read or wrote since the
/// last [`untouched_for`]: those whose `OBJECT IDLETIME` (whole seconds
/// since the last access; reading it is no access) is below `seconds`.
async fn touched(nodes: &[String], keys: &[String], seconds: i64) -> Vec<String> {
    let mut connection = node_of(nodes, &keys[0]).await;
    let mut pipeline = redis::pipe();
    for key in keys {
        pipeline.cmd("OBJECT").arg("IDLETIME").arg(key);
    }
    let idle: Vec<i64> = pipeline.query_async(&mut connection).await.expect("OBJECT IDLETIME");
    keys.iter().zip(idle).filter(|(_, idle)| *idle < seconds).map(|(key, _)| key.clone()).collect()
}

/// Lets the keys' last access age past two seconds, the resolution of
/// `OBJECT IDLETIME` being one.
async fn untouched_for() -> i64 {
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    2
}

/// The session keys of `sessions` (of one user).
fn session_keys_of(keys: &[String], sessions: &[SessionRecord]) -> Vec<String> {
    sessions
        .iter()
        .map(|session| {
            let suffix = format!(":{}", session.digest.to_base64());
            keys.iter()
                .find(|key| kind_of(key) == "s" && key.ends_with(&suffix))
                .expect("session key")
                .clone()
        })
        .collect()
}

/// Revoking a serial that does not exist reads none of the user's sessions,
/// and ending a login (by revocation or by a rotation, which ends the
/// login's other sessions) reads only the sessions it opened, however many
/// the user has: the per-login sets make the work that of the login. A
/// script that walked the user's sessions (as version 0.1 did, reading each
/// one's `login`) would touch all 1000.
pub(crate) async fn ending_a_login_reads_only_its_sessions(store: &RedisStore, nodes: &[String]) {
    let name = user("busy");
    let start = now();
    let (login, bound, cookie) = login_at(&name, start);
    let (other_login, other_bound, _) = login_at(&name, start);
    for record in [&login, &other_login] {
        assert_eq!(store.create_login(record).await.expect("create_login"), Inserted::Created);
    }
    let opened = [opened_by(&name, Some(login.serial), start), opened_by(&name, Some(login.serial), start)];
    let mut bystanders: Vec<SessionRecord> = (0..1000).map(|_| plain_session(&name, start)).collect();
    bystanders.push(other_bound);
    for session in opened.iter().chain([&bound]).chain(&bystanders) {
        assert_eq!(store.create_session(session, None).await.expect("create"), Inserted::Created);
    }
    let keys = keys_under(nodes, store.prefix()).await.expect("scan");
    let watched = session_keys_of(&keys, &bystanders);

    let seconds = untouched_for().await;
    let missing = ChaChaTokens::from_os().serial();
    assert!(!store.delete_login(&name, &missing).await.expect("delete_login"), "no such login");
    let read = touched(nodes, &watched, seconds).await;
    assert!(read.is_empty(), "revoking a missing serial read {} of the user's 1001 sessions", read.len());

    let seconds = untouched_for().await;
    let mut rotation = rotation_of(&cookie, &login, now());
    rotation.max_sessions = None;
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate"), Rotated::Rotated);
    let read = touched(nodes, &watched, seconds).await;
    assert!(read.is_empty(), "a rotation read {} sessions of the user's other logins", read.len());
    for session in opened.iter().chain([&bound]) {
        let found = store.get_session(Some(&name), &session.digest).await.expect("get");
        assert_eq!(found, None, "the rotation ended every other session of its login");
    }

    let seconds = untouched_for().await;
    assert!(store.delete_login(&name, &login.serial).await.expect("delete_login"), "the login exists");
    let read = touched(nodes, &watched, seconds).await;
    assert!(read.is_empty(), "revoking one login read {} sessions of the user's other logins", read.len());
    let found = store.get_session(Some(&name), &rotation.session.digest).await.expect("get");
    assert_eq!(found, None, "revoking the login ended its session");
    for session in [&bystanders[0], &bystanders[1000]] {
        let found = store.get_session(Some(&name), &session.digest).await.expect("get");
        assert_eq!(found.as_ref(), Some(session), "the user's other sessions stay");
    }
    let deleted = store.delete_user(&name).await.expect("delete_user");
    assert_eq!((deleted.logins, deleted.sessions), (1, 1001), "the other login and every other session");
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), Vec::<String>::new(), "nothing left");
}

/// Capping a user's sessions keeps the per-login sets and the indexes
/// whole: a session deleted over the cap leaves its login's set, the
/// bucket's index and the user's index, and the login still ends the
/// sessions it kept.
pub(crate) async fn capped_sessions_leave_no_index_entry(store: &RedisStore, nodes: &[String]) {
    let name = user("capped");
    let start = now();
    let (login, mut bound, _) = login_at(&name, start);
    bound.expires_at = start + Duration::seconds(30);
    assert_eq!(store.create_login(&login).await.expect("create_login"), Inserted::Created);
    let cap = std::num::NonZeroUsize::new(3);
    let mut sessions = vec![bound];
    for minutes in 1..6 {
        let mut session = opened_by(&name, Some(login.serial), start);
        session.expires_at = start + Duration::minutes(minutes);
        sessions.push(session);
    }
    for session in &sessions {
        assert_eq!(store.create_session(session, cap).await.expect("create"), Inserted::Created);
    }
    let kept = &sessions[3..];
    let keys = keys_under(nodes, store.prefix()).await.expect("scan");
    let opened_key = keys.iter().find(|key| kind_of(key) == "O").expect("the login's set").clone();
    let mut connection = node_of(nodes, &opened_key).await;
    let mut members: Vec<String> =
        redis::cmd("SMEMBERS").arg(&opened_key).query_async(&mut connection).await.expect("SMEMBERS");
    members.sort();
    let mut wanted: Vec<String> = kept.iter().map(|session| session.digest.to_base64()).collect();
    wanted.sort();
    assert_eq!(members, wanted, "the login's set holds exactly the sessions the cap kept");
    for index in keys.iter().filter(|key| kind_of(key) == "S") {
        let count: i64 = redis::cmd("ZCARD").arg(index).query_async(&mut connection).await.expect("ZCARD");
        assert_eq!(count, 3, "{index} holds the three sessions kept");
    }
    assert_eq!(session_keys_of(&keys, kept).len(), 3);
    assert!(store.delete_login(&name, &login.serial).await.expect("delete_login"));
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), Vec::<String>::new(), "nothing left");
}

/// A user whose sessions were written by version 0.1 has no per-login sets
/// nor marker: the first script that needs them builds them from the user's
/// index (a revocation of a missing serial included), after which ending
/// the 0.1 login ends the 0.1 sessions it opened, bound or not, and leaves
/// the others.
pub(crate) async fn indexes_version_0_1_sessions_lazily(store: &RedisStore, nodes: &[String]) {
    let name = user("olga:{lazy}");
    let created = now().replace_nanosecond(0).expect("whole seconds") - Duration::days(1);
    let expires = created + Duration::days(30);
    let tokens = ChaChaTokens::from_os();
    let serial = tokens.serial();
    let digests: Vec<SessionDigest> = (0..4).map(|_| tokens.session_id().digest()).collect();
    let (bound, opened, plain) = (digests[0], &digests[1..3], digests[3]);
    let login = Login {
        username: name.clone(),
        serial,
        token: Token::from_bytes([7; 32]).digest(),
        previous: None,
        session: Some(bound),
        created_at: created,
        last_used_at: created,
        expires_at: expires,
        client: ClientMeta::default(),
        authenticated_at: created,
    };
    write_0_1_login(store, nodes, &login).await;
    for digest in &digests {
        let opened_by = (*digest != plain).then_some(serial);
        let session = session_0_1(&name, *digest, opened_by, &SessionData::new(), (created, expires));
        write_0_1_session(store, nodes, &session).await;
    }
    let kinds = |keys: Vec<String>| keys.iter().map(|key| kind_of(key).to_owned()).collect::<Vec<_>>();
    let before = kinds(keys_under(nodes, store.prefix()).await.expect("scan"));
    assert!(!before.iter().any(|kind| kind == "I" || kind == "O"), "0.1 wrote no sets: {before:?}");

    assert!(!store.delete_login(&name, &tokens.serial()).await.expect("delete_login"), "no such login");
    let after = kinds(keys_under(nodes, store.prefix()).await.expect("scan"));
    assert_eq!(after.iter().filter(|kind| *kind == "I").count(), 1, "the marker is set: {after:?}");
    assert_eq!(
        after.iter().filter(|kind| *kind == "O").count(),
        1,
        "the 0.1 login's set is built: {after:?}"
    );

    assert!(store.delete_login(&name, &serial).await.expect("delete_login"), "the 0.1 login exists");
    let owner = Some(&name);
    for digest in opened.iter().chain([&bound]) {
        assert_eq!(
            store.get_session(owner, digest).await.expect("get"),
            None,
            "the 0.1 login's sessions end"
        );
    }
    assert!(store.get_session(owner, &plain).await.expect("get").is_some(), "the plain 0.1 session stays");
    let deleted = store.delete_user(&name).await.expect("delete_user");
    assert_eq!((deleted.logins, deleted.sessions), (0, 1), "the plain 0.1 session");
    assert_eq!(keys_under(nodes, store.prefix()).await.expect("scan"), Vec::<String>::new(), "nothing left");
}
