//! Upgrading a version-1 database: rows written by a version-1 store (a
//! login with a previous token and its bound session, a second device, a
//! session of no login) read back with the version-1 meaning after
//! `migrate()`, and every operation works on them.

use expected_core::protocol::{apply_rotation, new_login, new_session, password_user, rotation};
use expected_core::store::{Confirmation, Deleted, Inserted, Keep, Rotated};
use expected_core::time::{Duration, OffsetDateTime};
use expected_core::{
    AuthCookie, AuthMethod, ChaChaTokens, ClientMeta, Config, Login, SessionData, SessionRecord, Store,
    TokenSource, Username,
};

use super::harness::SqlStore;

/// Now, to the microsecond the store keeps.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.microsecond() * 1_000).unwrap_or(now)
}

fn micros(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000
}

/// The `INSERT` of a login as a version-1 store wrote it (no
/// `authenticated_at`), values as literals.
fn login_row(login: &Login, blob: fn(&[u8]) -> String) -> String {
    let previous = login.previous.as_ref();
    let or_null = |value: Option<String>| value.unwrap_or_else(|| "NULL".to_owned());
    format!(
        "INSERT INTO expected_logins (username, serial, token, previous_token, previous_rotated_at, \
         previous_sealed, session_digest, created_at, last_used_at, expires_at, client_ip, user_agent) \
         VALUES ('{}', {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        login.username.as_str(),
        blob(login.serial.as_bytes()),
        blob(login.token.as_bytes()),
        or_null(previous.map(|p| blob(p.digest.as_bytes()))),
        or_null(previous.map(|p| micros(p.rotated_at).to_string())),
        or_null(previous.map(|p| blob(p.sealed.as_bytes()))),
        or_null(login.session.map(|digest| blob(digest.as_bytes()))),
        micros(login.created_at),
        micros(login.last_used_at),
        micros(login.expires_at),
        or_null(login.client.ip.map(|ip| format!("'{ip}'"))),
        or_null(login.client.user_agent.as_ref().map(|agent| format!("'{agent}'"))),
    )
}

/// The `INSERT` of a user's session as a version-1 store wrote it (no
/// `method`, no `authenticated_at`).
fn session_row(session: &SessionRecord, blob: fn(&[u8]) -> String) -> String {
    let user = session.user.as_ref().unwrap_or_else(|| panic!("version 1 had no anonymous sessions"));
    let data = serde_json::to_string(&session.data).unwrap_or_else(|e| panic!("{e}"));
    format!(
        "INSERT INTO expected_sessions (username, digest, login_serial, data, created_at, expires_at) \
         VALUES ('{}', {}, {}, '{data}', {}, {})",
        user.username.as_str(),
        blob(session.digest.as_bytes()),
        user.login.map_or_else(|| "NULL".to_owned(), |serial| blob(serial.as_bytes())),
        micros(session.created_at),
        micros(session.expires_at),
    )
}

/// What a version-1 session reads back as: opened by the cookie as far as
/// anyone knows, authenticated when it was created.
fn as_version_1(session: &SessionRecord) -> SessionRecord {
    let mut read = session.clone();
    if let Some(user) = read.user.as_mut() {
        user.method = AuthMethod::Remembered;
        user.authenticated_at = session.created_at;
    }
    read
}

/// A device of `user` registered at `at`: its login, cookie and session.
fn device(user: &Username, at: OffsetDateTime) -> (Login, AuthCookie, SessionRecord) {
    let tokens = ChaChaTokens::from_os();
    let config = Config::default();
    let serial = tokens.serial();
    let session = new_session(
        Some(password_user(user, Some(serial), at)),
        &tokens.session_id(),
        SessionData::new(),
        at,
        &config,
    );
    let client = ClientMeta::new(Some([203, 0, 113, 7].into()), Some("Mozilla/5.0 (X11; Linux) Firefox/140"));
    let (login, cookie) = new_login(user, serial, tokens.token(), &session, client, at, &config);
    (login, cookie, session)
}

/// Version-1 rows, `migrate()` (twice), then reads, a cookie login and the
/// version-2 operations on them.
pub async fn check_upgrade_from_version_1<S: SqlStore>(store: S, blob: fn(&[u8]) -> String) {
    let tokens = ChaChaTokens::from_os();
    let config = Config::default();
    let alice = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
    let now = now();
    let registered = now - Duration::days(3);

    // Device A, registered three days ago and used once since: a previous
    // token, and bound to the session that cookie login opened.
    let (mut phone, first, _) = device(&alice, registered);
    let (used, phone_cookie) = rotation(
        &first,
        &phone,
        tokens.token(),
        &tokens.session_id(),
        ClientMeta::default(),
        now - Duration::days(1),
        &config,
    );
    apply_rotation(&mut phone, &used);
    let phone_session = used.session;
    // Device B, with the session its registration opened.
    let (laptop, _, laptop_session) = device(&alice, now - Duration::hours(5));
    // A password login without "remember me", with data.
    let mut plain = new_session(
        Some(password_user(&alice, None, now - Duration::hours(1))),
        &tokens.session_id(),
        SessionData::new(),
        now - Duration::hours(1),
        &config,
    );
    plain.data.insert("cart".to_owned(), serde_json::json!([1, "zoë"]));
    for sql in [
        login_row(&phone, blob),
        session_row(&phone_session, blob),
        login_row(&laptop, blob),
        session_row(&laptop_session, blob),
        session_row(&plain, blob),
    ] {
        store.execute(sql).await;
    }

    assert_eq!(store.migrate().await.ok(), Some(vec![2]), "migrate applies version 2 only");
    let read = |serial| {
        let store = store.clone();
        let alice = alice.clone();
        async move { store.get_login(&alice, &serial).await.unwrap_or_else(|e| panic!("get_login: {e}")) }
    };
    let session = |owner: Option<Username>, digest| {
        let store = store.clone();
        async move { store.get_session(owner.as_ref(), &digest).await.unwrap_or_else(|e| panic!("{e}")) }
    };
    // Version-1 logins were last authenticated at their registration
    // (new_login sets authenticated_at = created_at, as the backfill does).
    assert_eq!(phone.authenticated_at, phone.created_at);
    assert_eq!(read(phone.serial).await.as_ref(), Some(&phone), "the upgraded login reads back");
    assert_eq!(read(laptop.serial).await.as_ref(), Some(&laptop), "the second device too");
    for v1 in [&phone_session, &laptop_session, &plain] {
        let upgraded = session(Some(alice.clone()), v1.digest).await;
        assert_eq!(
            upgraded,
            Some(as_version_1(v1)),
            "a version-1 session: remembered, authenticated at creation"
        );
        assert_eq!(session(None, v1.digest).await, None, "no anonymous lookup finds a user's session");
    }

    assert_eq!(store.migrate().await.ok(), Some(Vec::new()), "a second migrate applies nothing");
    assert_eq!(store.integers("SELECT version FROM expected_migrations ORDER BY version").await, [1, 2]);
    assert_eq!(read(phone.serial).await.as_ref(), Some(&phone), "and changes nothing");

    // A cookie login of device A on the upgraded row.
    let id = tokens.session_id();
    let (cookie_login, _) =
        rotation(&phone_cookie, &phone, tokens.token(), &id, ClientMeta::default(), now, &config);
    let rotated = store.rotate_login(&cookie_login).await.unwrap_or_else(|e| panic!("rotate_login: {e}"));
    assert_eq!(rotated, Rotated::Rotated);
    apply_rotation(&mut phone, &cookie_login);
    assert_eq!(read(phone.serial).await.as_ref(), Some(&phone), "rotated, authenticated_at unchanged");
    assert_eq!(session(Some(alice.clone()), phone_session.digest).await, None, "the old bound session ends");
    let opened = session(Some(alice.clone()), id.digest()).await;
    assert_eq!(opened.as_ref(), Some(&cookie_login.session), "the new session is stored as given");

    // The password confirmed on that session: it and its login.
    let at = now + Duration::seconds(1);
    let confirmation =
        Confirmation { username: alice.clone(), session: id.digest(), login: Some(phone.serial), at };
    assert_eq!(store.confirm_password(&confirmation).await.ok(), Some(true));
    phone.authenticated_at = at;
    assert_eq!(read(phone.serial).await.as_ref(), Some(&phone), "the login's authenticated_at");
    let confirmed = session(Some(alice.clone()), id.digest()).await.and_then(|s| s.user);
    assert_eq!(confirmed.map(|user| (user.method, user.authenticated_at)), Some((AuthMethod::Password, at)));
    let unknown = Confirmation { session: tokens.session_id().digest(), ..confirmation };
    assert_eq!(store.confirm_password(&unknown).await.ok(), Some(false), "no such session");

    // An anonymous session beside the upgraded ones.
    let visitor = new_session(None, &tokens.session_id(), SessionData::new(), now, &config);
    assert_eq!(store.create_session(&visitor, None).await.ok(), Some(Inserted::Created));
    assert_eq!(session(None, visitor.digest).await.as_ref(), Some(&visitor));
    assert_eq!(session(Some(alice.clone()), visitor.digest).await, None);

    // Log out the other devices: device B and the plain session go.
    let keep = Keep { session: id.digest(), login: Some(phone.serial) };
    let deleted = store.delete_user_except(&alice, &keep).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deleted, Deleted::new(vec![laptop.serial], 2));
    assert_eq!(read(laptop.serial).await, None);
    for gone in [laptop_session.digest, plain.digest] {
        assert_eq!(session(Some(alice.clone()), gone).await, None);
    }
    assert_eq!(read(phone.serial).await.as_ref(), Some(&phone), "this device's login stays");

    // Everything of alice, and nothing of the visitor.
    let deleted = store.delete_user(&alice).await.unwrap_or_else(|e| panic!("delete_user: {e}"));
    assert_eq!(deleted, Deleted::new(vec![phone.serial], 1));
    assert_eq!(session(None, visitor.digest).await.as_ref(), Some(&visitor), "anonymous sessions stay");
    assert_eq!(store.delete_expired_sessions(visitor.expires_at).await.ok(), Some(1), "and are cleaned");
}
