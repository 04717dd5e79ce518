//! The suite checks itself: its list of cases, the `Flaky` wrapper, and every
//! case run against the memory store (which the store crate runs too).

use expected_conformance::{CASES, Flaky, Harness, Operation, Unreachable};
use expected_core::store::{Confirmation, CurrentRotation, Keep, StoreErrorKind};
use expected_core::time::OffsetDateTime;
use expected_core::{
    ClientMeta, Config, Serial, SessionData, SessionDigest, SessionId, SessionRecord, Store, Token, Username,
    protocol,
};
use expected_store_memory::MemoryStore;

#[derive(Default)]
struct Memory;

#[async_trait::async_trait]
impl Harness for Memory {
    type Store = MemoryStore;

    async fn store(&self) -> Result<MemoryStore, Unreachable> {
        Ok(MemoryStore::new())
    }
}

mod memory {
    expected_conformance::tests!(super::Memory);
}

#[test]
fn case_names_are_unique() {
    let mut names: Vec<&str> = CASES.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "every case name appears once in the list");
}

#[test]
fn operations_index_their_own_counters() {
    for (index, operation) in Operation::ALL.iter().enumerate() {
        assert_eq!(*operation as usize, index, "Operation::ALL is in declaration order at {operation:?}");
    }
}

/// Calls every operation once, answering whether each failed as unavailable.
async fn call_each(store: &Flaky<MemoryStore>) -> Vec<(Operation, bool)> {
    let name = Username::new("alice").expect("username");
    let serial = Serial::from_bytes([1; 16]);
    let digest = SessionDigest::from_bytes([2; 32]);
    let now = OffsetDateTime::now_utc();
    let session =
        SessionRecord { digest, user: None, data: SessionData::new(), created_at: now, expires_at: now };
    let config = Config::default();
    let (login, cookie) = protocol::new_login(
        &name,
        serial,
        Token::from_bytes([3; 32]),
        &session,
        ClientMeta::default(),
        now,
        &config,
    );
    let id = SessionId::from_bytes([4; 32]);
    let (rotation, _) = protocol::rotation(
        &cookie,
        &login,
        Token::from_bytes([5; 32]),
        &id,
        ClientMeta::default(),
        now,
        &config,
    );
    let current = CurrentRotation { rotation: rotation.clone(), now, created_since: now };
    let keep = Keep { session: digest, login: None };
    let confirmation = Confirmation { username: name.clone(), session: digest, login: None, at: now };
    fn down<T>(result: Result<T, expected_core::StoreError>) -> bool {
        result.err().is_some_and(|error| error.kind() == StoreErrorKind::Unavailable)
    }
    vec![
        (Operation::CreateLogin, down(store.create_login(&login).await)),
        (Operation::GetLogin, down(store.get_login(&name, &serial).await)),
        (Operation::RotateLogin, down(store.rotate_login(&rotation).await)),
        (Operation::RotateCurrent, down(store.rotate_current(&current).await)),
        (Operation::CreateRemembered, down(store.create_remembered(&login, &session, None, false).await)),
        (Operation::ListLogins, down(store.list_logins(&name).await)),
        (Operation::DeleteLogin, down(store.delete_login(&name, &serial).await)),
        (Operation::DeleteUser, down(store.delete_user(&name).await)),
        (Operation::DeleteUserExcept, down(store.delete_user_except(&name, &keep).await)),
        (Operation::ConfirmPassword, down(store.confirm_password(&confirmation).await)),
        (Operation::DeleteExpiredLogins, down(store.delete_expired_logins(now).await)),
        (Operation::CreateSession, down(store.create_session(&session, None).await)),
        (Operation::CreateGraceSession, down(store.create_grace_session(&session, None).await)),
        (Operation::GetSession, down(store.get_session(None, &digest).await)),
        (Operation::SaveSession, down(store.save_session(&session).await)),
        (Operation::TouchSession, down(store.touch_session(None, &digest, now).await)),
        (Operation::DeleteSession, down(store.delete_session(None, &digest).await)),
        (Operation::DeleteExpiredSessions, down(store.delete_expired_sessions(now).await)),
    ]
}

#[tokio::test]
async fn flaky_counts_every_operation_and_fails_while_down() {
    let store = Flaky::new(MemoryStore::new());
    store.set_down(true);
    let called = call_each(&store).await;
    assert_eq!(called.len(), Operation::ALL.len(), "every operation is called");
    for (operation, failed) in called {
        assert!(failed, "{operation:?} fails as Unavailable while the backend is down");
        assert_eq!(store.calls(operation), 1, "{operation:?} is counted while down");
    }
    assert!(store.inner().is_empty(), "no call reaches the store while it is down");
    store.set_down(false);
    for (operation, failed) in call_each(&store).await {
        assert!(!failed, "{operation:?} reaches the store once it is back");
        assert_eq!(store.calls(operation), 2, "{operation:?} is counted while up");
    }
    assert_eq!(store.total_calls(), 2 * Operation::ALL.len(), "total_calls sums every operation's calls");
}
