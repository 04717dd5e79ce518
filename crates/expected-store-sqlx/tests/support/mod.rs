//! What the backend test files share: the harness, and the checks of this
//! crate's own that every backend runs.

#![allow(dead_code, unreachable_pub, unused_imports, unused_macros)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use expected_conformance::Unreachable;

mod harness;

pub(crate) use harness::suite;
pub use harness::{
    Backend, Fresh, cleaning_runs_in_batches, migrate_is_idempotent_with_own_table_and_prefix,
    revocation_races_rotation,
};

/// A name no other test (in this or another process) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
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
    use expected_core::protocol::{new_login, new_session};
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
        let mut session =
            new_session(&user, &tokens.session_id(), Some(serial), SessionData::new(), now, &config);
        session.expires_at = session_expires;
        let (mut login, _) =
            new_login(&user, serial, tokens.token(), &session, ClientMeta::default(), now, &config);
        login.expires_at = login_expires;
        assert_eq!(store.create_login(&login).await.ok(), Some(expected_core::store::Inserted::Created));
        assert_eq!(store.create_session(&session).await.ok(), Some(expected_core::store::Inserted::Created));
        sessions.push(session);
    }
    assert_eq!(store.delete_expired_sessions(now).await.ok(), Some(5));
    assert_eq!(store.delete_expired_logins(now).await.ok(), Some(10));
    assert_eq!(store.list_logins(&user).await.map(|l| l.len()).ok(), Some(2));
    for (i, session) in sessions.iter().enumerate() {
        let left = store.get_session(&user, &session.digest).await.ok().map(|s| s.is_some());
        assert_eq!(left, Some(i >= 10), "session {i}: only the live logins' sessions stay");
    }
    assert_eq!(store.delete_expired_logins(now).await.ok(), Some(0));
    assert_eq!(store.delete_expired_sessions(now).await.ok(), Some(0));
}

/// A login rotated over and over while it is revoked (`delete_login`, or
/// `delete_user` when `whole_user`): once both are done, neither the login
/// nor any session it opened may be left, whatever the interleaving.
pub async fn check_revocation_races_rotation<S: expected_core::Store + Clone>(store: S, whole_user: bool) {
    use expected_core::protocol::{new_login, new_session, rotation};
    use expected_core::store::Rotated;
    use expected_core::time::OffsetDateTime;
    use expected_core::{ChaChaTokens, ClientMeta, Config, SessionData, TokenSource, Username};

    let config = Config::default();
    let tokens = ChaChaTokens::from_os();
    let user = Username::new("racer").unwrap_or_else(|e| panic!("{e}"));
    for round in 0..6u64 {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let serial = tokens.serial();
        let first_id = tokens.session_id();
        let session = new_session(&user, &first_id, Some(serial), SessionData::new(), now, &config);
        let (login, mut cookie) =
            new_login(&user, serial, tokens.token(), &session, ClientMeta::default(), now, &config);
        assert!(store.create_login(&login).await.is_ok());
        assert!(store.create_session(&session).await.is_ok());
        let rotator = {
            let store = store.clone();
            let config = config.clone();
            tokio::spawn(async move {
                let tokens = ChaChaTokens::from_os();
                let mut ids = vec![first_id.digest()];
                for _ in 0..200 {
                    let id = tokens.session_id();
                    let (r, next) =
                        rotation(&cookie, tokens.token(), &id, ClientMeta::default(), now, &config);
                    ids.push(id.digest());
                    match store.rotate_login(&r).await.unwrap_or_else(|e| panic!("rotate_login: {e}")) {
                        Rotated::Rotated => cookie = next,
                        Rotated::NotFound => break,
                        other => panic!("a lone rotator got {other:?}"),
                    }
                }
                ids
            })
        };
        tokio::time::sleep(Duration::from_millis(2 + 3 * round)).await;
        if whole_user {
            assert!(store.delete_user(&user).await.is_ok());
        } else {
            assert!(store.delete_login(&user, &serial).await.unwrap_or_else(|e| panic!("delete_login: {e}")));
        }
        let ids = rotator.await.unwrap_or_else(|e| panic!("rotator: {e}"));
        assert_eq!(store.get_login(&user, &serial).await.ok(), Some(None), "the login is gone");
        for digest in &ids {
            assert_eq!(
                store.get_session(&user, digest).await.ok(),
                Some(None),
                "round {round}: a session opened by the revoked login survived"
            );
        }
    }
}
