//! What the backend test files share: the harness, and the checks of this
//! crate's own that every backend runs.

#![allow(dead_code, unreachable_pub, unused_imports, unused_macros)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use expected_conformance::Unreachable;

mod harness;
mod upgrade;

pub(crate) use harness::suite;
pub use harness::{
    Backend, Fresh, SqlStore, cleaning_runs_in_batches, migrate_is_idempotent_with_own_table_and_prefix,
    revocation_races_rotation, revoke_cost, upgrade_from_version_1,
};

/// A name no other test (in this or another process) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// `bytes` in lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An environment variable, or a default.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// How long connecting may take before the server counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects `C` to `url` (`what` names the server in the error); a server
/// that does not answer within [`CONNECT_TIMEOUT`] is unreachable.
pub async fn connect<C: expected_store_sqlx::sqlx::Connection>(
    what: &str,
    url: &str,
) -> Result<C, Unreachable> {
    match tokio::time::timeout(CONNECT_TIMEOUT, C::connect(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(Unreachable(format!("{what} at {url}: {error}"))),
        Err(_) => Err(Unreachable(format!("{what} at {url}: connection timed out"))),
    }
}

/// 10 expired and 2 live logins; the sessions of 5 of the expired ones
/// expired too, the other 5 are live yet must go with their logins. Cleaned
/// in batches of 3.
pub async fn check_batched_cleaning<S: expected_core::Store>(store: S) {
    use expected_core::protocol::{new_login, new_session, password_user};
    use expected_core::time::{Duration, OffsetDateTime};
    use expected_core::{ChaChaTokens, ClientMeta, Config, SessionData, TokenSource, Username};

    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let tokens = ChaChaTokens::from_os();
    let config = Config::default();
    let user = Username::new("batch").unwrap_or_else(|e| panic!("{e}"));
    let mut sessions = Vec::new();
    for i in 0..12 {
        let login_expires = if i < 10 { now - Duration::seconds(i) } else { now + Duration::hours(1) };
        let session_expires = if i < 5 { now - Duration::seconds(i) } else { now + Duration::hours(1) };
        let serial = tokens.serial();
        let owner = Some(password_user(&user, Some(serial), now));
        let mut session = new_session(owner, &tokens.session_id(), SessionData::new(), now, &config);
        session.expires_at = session_expires;
        let (mut login, _) =
            new_login(&user, serial, tokens.token(), &session, ClientMeta::default(), now, &config);
        login.expires_at = login_expires;
        assert_eq!(store.create_login(&login).await.ok(), Some(expected_core::store::Inserted::Created));
        assert_eq!(
            store.create_session(&session, None).await.ok(),
            Some(expected_core::store::Inserted::Created)
        );
        sessions.push(session);
    }
    assert_eq!(store.delete_expired_sessions(now).await.ok(), Some(5));
    let mut expired = store.delete_expired_logins(now).await.unwrap_or_else(|e| panic!("{e}"));
    expired.sort();
    let mut serials: Vec<_> = sessions[..10].iter().filter_map(|session| session.login()).collect();
    serials.sort();
    assert_eq!(expired.iter().map(|login| login.serial).collect::<Vec<_>>(), serials, "which logins went");
    assert!(expired.iter().all(|login| login.username == user), "whose logins went");
    assert_eq!(store.list_logins(&user).await.map(|l| l.len()).ok(), Some(2));
    for (i, session) in sessions.iter().enumerate() {
        let left = store.get_session(Some(&user), &session.digest).await.ok().map(|s| s.is_some());
        assert_eq!(left, Some(i >= 10), "session {i}: only the live logins' sessions stay");
    }
    assert_eq!(store.delete_expired_logins(now).await.ok(), Some(Vec::new()));
    assert_eq!(store.delete_expired_sessions(now).await.ok(), Some(0));
}

/// How [`check_revocation_races_rotation`] revokes the rotating login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// `delete_login` of that login.
    Login,
    /// `delete_user` of its user.
    User,
    /// `delete_user_except`, keeping another device of the same user.
    OtherDevices,
}

/// A login rotated over and over while it is revoked (see [`Revocation`]):
/// once both are done, neither the login nor any session it opened may be
/// left, whatever the interleaving; a device kept by `delete_user_except`
/// is left whole.
pub async fn check_revocation_races_rotation<S: expected_core::Store + Clone>(store: S, how: Revocation) {
    use expected_core::protocol::{apply_rotation, new_login, new_session, password_user, rotation};
    use expected_core::store::{Keep, Rotated};
    use expected_core::time::OffsetDateTime;
    use expected_core::{ChaChaTokens, ClientMeta, Config, SessionData, TokenSource, Username};

    let config = Config::default();
    let tokens = ChaChaTokens::from_os();
    let user = Username::new("racer").unwrap_or_else(|e| panic!("{e}"));
    let device = |now| {
        let serial = tokens.serial();
        let id = tokens.session_id();
        let owner = Some(password_user(&user, Some(serial), now));
        let session = new_session(owner, &id, SessionData::new(), now, &config);
        let (login, cookie) =
            new_login(&user, serial, tokens.token(), &session, ClientMeta::default(), now, &config);
        (login, cookie, session)
    };
    for round in 0..6u64 {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let (kept_login, _, kept_session) = device(now);
        let (mut login, mut cookie, session) = device(now);
        for (login, session) in [(&kept_login, &kept_session), (&login, &session)] {
            assert!(store.create_login(login).await.is_ok());
            assert!(store.create_session(session, None).await.is_ok());
        }
        let serial = login.serial;
        let rotator = {
            let store = store.clone();
            let config = config.clone();
            let first = session.digest;
            tokio::spawn(async move {
                let tokens = ChaChaTokens::from_os();
                let mut ids = vec![first];
                for _ in 0..200 {
                    let id = tokens.session_id();
                    let (r, next) =
                        rotation(&cookie, &login, tokens.token(), &id, ClientMeta::default(), now, &config);
                    ids.push(id.digest());
                    match store.rotate_login(&r).await.unwrap_or_else(|e| panic!("rotate_login: {e}")) {
                        Rotated::Rotated => {
                            cookie = next;
                            apply_rotation(&mut login, &r);
                        }
                        Rotated::NotFound => break,
                        other => panic!("a lone rotator got {other:?}"),
                    }
                }
                ids
            })
        };
        tokio::time::sleep(Duration::from_millis(2 + 3 * round)).await;
        match how {
            Revocation::Login => {
                let found = store.delete_login(&user, &serial).await.unwrap_or_else(|e| panic!("{e}"));
                assert!(found, "delete_login finds the login");
            }
            Revocation::User => {
                let deleted = store.delete_user(&user).await.unwrap_or_else(|e| panic!("delete_user: {e}"));
                assert_eq!(deleted.logins, 2, "round {round}: {deleted:?}");
            }
            Revocation::OtherDevices => {
                let keep = Keep { session: kept_session.digest, login: Some(kept_login.serial) };
                let deleted = store.delete_user_except(&user, &keep).await.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(deleted.serials, [serial], "round {round}: only the other device's login");
            }
        }
        let ids = rotator.await.unwrap_or_else(|e| panic!("rotator: {e}"));
        assert_eq!(store.get_login(&user, &serial).await.ok(), Some(None), "the login is gone");
        for digest in &ids {
            assert_eq!(
                store.get_session(Some(&user), digest).await.ok(),
                Some(None),
                "round {round}: a session opened by the revoked login survived"
            );
        }
        if how == Revocation::OtherDevices {
            let kept = store.get_session(Some(&user), &kept_session.digest).await.ok().flatten();
            assert_eq!(kept.as_ref(), Some(&kept_session), "round {round}: the kept session");
            let login = store.get_login(&user, &kept_login.serial).await.ok().flatten();
            assert_eq!(login.as_ref(), Some(&kept_login), "round {round}: the kept login");
        }
        assert!(store.delete_user(&user).await.is_ok());
    }
}
