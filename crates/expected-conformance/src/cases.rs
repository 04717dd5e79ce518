//! The cases, one function each. Every case takes a fresh, empty store.
//!
//! Store-level cases call the [`Store`] methods directly; `engine_*` cases run
//! the protocol through an [`Expected`](expected_core::Expected) engine over
//! the store, with a manual clock.

use std::collections::HashSet;
use std::sync::Arc;

use expected_core::protocol::apply_rotation;
use expected_core::store::{Deleted, Inserted, Rotated};
use expected_core::time::Duration;
use expected_core::{
    AuthCookie, ClientMeta, Config, Outcome, PreviousToken, SealedSuccessor, Session, SessionCookie, Store,
    TokenSource,
};
use serde_json::json;

use crate::flaky::Flaky;
use crate::support::*;

// ---------------------------------------------------------------- logins

/// A login (with a previous token, a bound session, an IPv6 client and a
/// non-ASCII user agent) reads back exactly as written.
pub async fn login_round_trips_exactly<S: Store>(store: Arc<S>) {
    let now = now();
    let name = user("zoë.o'brien");
    let mut fresh = fresh_login(&name, now);
    let tokens = tokens();
    fresh.login.previous = Some(PreviousToken {
        digest: tokens.token().digest(),
        rotated_at: after(now, -5),
        sealed: SealedSuccessor::seal(&tokens.token(), &tokens.token(), &tokens.session_id()),
    });
    fresh.login.client =
        ClientMeta::new(Some("2001:db8::1".parse().expect("ipv6")), Some("Navigateur/1.0 (Zoë)"));
    assert_eq!(store.create_login(&fresh.login).await.expect("create_login"), Inserted::Created);
    let read = store.get_login(&name, &fresh.login.serial).await.expect("get_login");
    assert_eq!(read.as_ref(), Some(&fresh.login), "a login must read back exactly as written");

    let bare = fresh_login(&name, now);
    let mut bare_login = bare.login.clone();
    bare_login.session = None;
    bare_login.client = ClientMeta::default();
    assert_eq!(store.create_login(&bare_login).await.expect("create_login"), Inserted::Created);
    let read = store.get_login(&name, &bare_login.serial).await.expect("get_login");
    assert_eq!(read, Some(bare_login), "empty optional fields must read back as empty");
}

/// Creating a login under an existing `(username, serial)` answers
/// `AlreadyExists` and leaves the stored login untouched.
pub async fn create_login_never_overwrites<S: Store>(store: Arc<S>) {
    let now = now();
    let name = user("alice");
    let fresh = fresh_login(&name, now);
    assert_eq!(store.create_login(&fresh.login).await.expect("create_login"), Inserted::Created);
    let mut impostor = fresh_login(&name, after(now, 10)).login;
    impostor.serial = fresh.login.serial;
    assert_eq!(
        store.create_login(&impostor).await.expect("create_login"),
        Inserted::AlreadyExists,
        "a duplicate serial must be refused"
    );
    let read = store.get_login(&name, &fresh.login.serial).await.expect("get_login");
    assert_eq!(read, Some(fresh.login), "the first login must be untouched");
}

/// A login is found only under its own username and serial; another user
/// cannot read, delete or list it.
pub async fn get_login_needs_owner_and_serial<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    assert_eq!(store.get_login(&bob, &fresh.login.serial).await.expect("get_login"), None);
    let other_serial = tokens().serial();
    assert_eq!(store.get_login(&alice, &other_serial).await.expect("get_login"), None);
    assert!(store.list_logins(&bob).await.expect("list_logins").is_empty());
    assert!(!store.delete_login(&bob, &fresh.login.serial).await.expect("delete_login"));
    assert_eq!(store.get_session(&bob, &fresh.session.digest).await.expect("get_session"), None);
    assert!(!store.delete_session(&bob, &fresh.session.digest).await.expect("delete_session"));
    let read = store.get_login(&alice, &fresh.login.serial).await.expect("get_login");
    assert_eq!(read, Some(fresh.login), "bob's attempts must not touch alice's login");
    let session = store.get_session(&alice, &fresh.session.digest).await.expect("get_session");
    assert_eq!(session, Some(fresh.session));
}

/// Usernames that differ only by dots, case, quotes, braces or Unicode are
/// different users whose records never mix.
pub async fn tricky_usernames_stay_apart<S: Store>(store: Arc<S>) {
    let now = now();
    let names = [
        "alice",
        "alice ",
        " alice",
        "Alice",
        "alice.",
        ".alice",
        "al.ice",
        "zoë.o'brien",
        "zoe.o'brien",
        "\"quoted\"",
        "a b",
        "{tag}",
        "a:b",
        "a*",
        "a%2Eb",
        "日本語",
        "a\\b",
        "a/b",
    ];
    let mut all = Vec::new();
    for name in names {
        let name = user(name);
        let fresh = fresh_login(&name, now);
        created(&*store, &fresh).await;
        all.push((name, fresh));
    }
    for (name, fresh) in &all {
        let listed = store.list_logins(name).await.expect("list_logins");
        assert_eq!(listed, vec![fresh.login.clone()], "{name:?} must see exactly its own login");
    }
    let (victim, _) = &all[0];
    let deleted = store.delete_user(victim).await.expect("delete_user");
    assert_eq!(deleted, Deleted { logins: 1, sessions: 1 });
    for (name, fresh) in &all[1..] {
        let read = store.get_login(name, &fresh.login.serial).await.expect("get_login");
        assert!(read.is_some(), "deleting {victim:?} must not delete {name:?}");
        let session = store.get_session(name, &fresh.session.digest).await.expect("get_session");
        assert!(session.is_some(), "deleting {victim:?} must not delete the session of {name:?}");
    }
}

/// A user may have many logins; listing returns all of them and only them.
pub async fn many_logins_per_user<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut serials = HashSet::new();
    for i in 0..30 {
        let fresh = fresh_login(&alice, after(now, i));
        serials.insert(fresh.login.serial);
        created(&*store, &fresh).await;
    }
    for _ in 0..2 {
        created(&*store, &fresh_login(&bob, now)).await;
    }
    let listed = store.list_logins(&alice).await.expect("list_logins");
    assert_eq!(listed.len(), 30);
    assert_eq!(listed.iter().map(|l| l.serial).collect::<HashSet<_>>(), serials);
    assert!(listed.iter().all(|l| l.username == alice));
    assert_eq!(store.list_logins(&bob).await.expect("list_logins").len(), 2);
}

/// A rotation expecting the current digest swaps the token, records the
/// previous one, binds the new session, deletes the old bound session and
/// nothing else.
pub async fn rotate_swaps_token_and_binds_session<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    let unrelated = plain_session(&alice, now);
    assert_eq!(store.create_session(&unrelated).await.expect("create_session"), Inserted::Created);

    let (rotation, token, id) = rotation_for(&fresh, after(now, 60));
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate_login"), Rotated::Rotated);

    let mut expected = fresh.login.clone();
    apply_rotation(&mut expected, &rotation);
    let read = store.get_login(&alice, &fresh.login.serial).await.expect("get_login");
    assert_eq!(
        read.as_ref(),
        Some(&expected),
        "the rotated login must be exactly what apply_rotation writes"
    );
    let read = read.expect("checked above");
    assert!(read.token.matches(&token));
    assert_eq!(read.session, Some(id.digest()));
    assert_eq!(
        store.get_session(&alice, &fresh.session.digest).await.expect("get_session"),
        None,
        "the old bound session must be deleted"
    );
    assert_eq!(
        store.get_session(&alice, &id.digest()).await.expect("get_session"),
        Some(rotation.session.clone()),
        "the new session must be created"
    );
    assert_eq!(
        store.get_session(&alice, &unrelated.digest).await.expect("get_session"),
        Some(unrelated),
        "other sessions of the user stay"
    );
}

/// A rotation expecting a digest that is no longer current answers
/// `NotCurrent` and writes nothing.
pub async fn rotate_refuses_stale_token<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    let (first, _, _) = rotation_for(&fresh, after(now, 1));
    assert_eq!(store.rotate_login(&first).await.expect("rotate_login"), Rotated::Rotated);
    let before = store.get_login(&alice, &fresh.login.serial).await.expect("get_login");

    let (stale, _, stale_id) = rotation_for(&fresh, after(now, 2));
    assert_eq!(store.rotate_login(&stale).await.expect("rotate_login"), Rotated::NotCurrent);
    let after_stale = store.get_login(&alice, &fresh.login.serial).await.expect("get_login");
    assert_eq!(after_stale, before, "a refused rotation must not change the login");
    assert_eq!(
        store.get_session(&alice, &stale_id.digest()).await.expect("get_session"),
        None,
        "a refused rotation must not create its session"
    );
    assert!(
        store.get_session(&alice, &first.session.digest).await.expect("get_session").is_some(),
        "a refused rotation must not delete the bound session"
    );
}

/// Rotating a login that does not exist answers `NotFound` and writes nothing.
pub async fn rotate_unknown_login<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    let (rotation, _, id) = rotation_for(&fresh, now);
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate_login"), Rotated::NotFound);
    assert_eq!(store.get_session(&alice, &id.digest()).await.expect("get_session"), None);
    assert_eq!(store.get_login(&alice, &fresh.login.serial).await.expect("get_login"), None);
}

/// A rotation whose new session digest exists answers `SessionExists` and
/// overwrites nothing.
pub async fn rotate_refuses_existing_session<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    let mut occupant = plain_session(&alice, now);
    occupant.data.insert("mine".into(), json!(true));
    assert_eq!(store.create_session(&occupant).await.expect("create_session"), Inserted::Created);

    let (mut rotation, _, _) = rotation_for(&fresh, after(now, 1));
    rotation.session.digest = occupant.digest;
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate_login"), Rotated::SessionExists);
    assert_eq!(store.get_login(&alice, &fresh.login.serial).await.expect("get_login"), Some(fresh.login));
    assert_eq!(store.get_session(&alice, &occupant.digest).await.expect("get_session"), Some(occupant));
    assert!(
        store.get_session(&alice, &fresh.session.digest).await.expect("get_session").is_some(),
        "the old bound session must stay when the rotation is refused"
    );
}

/// Deleting a login deletes its bound session and every session it opened,
/// and nothing else.
pub async fn delete_login_ends_its_sessions<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let doomed = fresh_login(&alice, now);
    let kept = fresh_login(&alice, now);
    created(&*store, &doomed).await;
    created(&*store, &kept).await;
    let mut opened_by_doomed = plain_session(&alice, now);
    opened_by_doomed.login = Some(doomed.login.serial);
    let plain = plain_session(&alice, now);
    for session in [&opened_by_doomed, &plain] {
        assert_eq!(store.create_session(session).await.expect("create_session"), Inserted::Created);
    }

    assert!(store.delete_login(&alice, &doomed.login.serial).await.expect("delete_login"));
    assert_eq!(store.get_login(&alice, &doomed.login.serial).await.expect("get_login"), None);
    for gone in [&doomed.session, &opened_by_doomed] {
        assert_eq!(
            store.get_session(&alice, &gone.digest).await.expect("get_session"),
            None,
            "a deleted login's sessions must end with it"
        );
    }
    assert!(store.get_login(&alice, &kept.login.serial).await.expect("get_login").is_some());
    for stays in [&kept.session, &plain] {
        assert!(store.get_session(&alice, &stays.digest).await.expect("get_session").is_some());
    }
}

/// Deleting a login whose record is already gone still ends the sessions it
/// opened (answering `false`).
pub async fn delete_login_ends_sessions_of_a_gone_login<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    // Only the session exists: its login was cleaned or lost.
    assert_eq!(store.create_session(&fresh.session).await.expect("create_session"), Inserted::Created);
    let other = plain_session(&alice, now);
    assert_eq!(store.create_session(&other).await.expect("create_session"), Inserted::Created);
    assert!(!store.delete_login(&alice, &fresh.login.serial).await.expect("delete_login"));
    assert_eq!(store.get_session(&alice, &fresh.session.digest).await.expect("get_session"), None);
    assert_eq!(store.get_session(&alice, &other.digest).await.expect("get_session"), Some(other));
}

/// Deleting a login that does not exist answers `false`.
pub async fn delete_login_unknown<S: Store>(store: Arc<S>) {
    let alice = user("alice");
    assert!(!store.delete_login(&alice, &tokens().serial()).await.expect("delete_login"));
    let fresh = fresh_login(&alice, now());
    created(&*store, &fresh).await;
    assert!(store.delete_login(&alice, &fresh.login.serial).await.expect("delete_login"));
    assert!(!store.delete_login(&alice, &fresh.login.serial).await.expect("delete_login"), "only once");
}

/// `delete_user` removes every login and session of the user, counts them
/// exactly, and leaves other users alone.
pub async fn delete_user_removes_only_that_user<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    for _ in 0..3 {
        created(&*store, &fresh_login(&alice, now)).await;
    }
    let plain = plain_session(&alice, now);
    assert_eq!(store.create_session(&plain).await.expect("create_session"), Inserted::Created);
    let bobs = fresh_login(&bob, now);
    created(&*store, &bobs).await;

    let deleted = store.delete_user(&alice).await.expect("delete_user");
    assert_eq!(deleted, Deleted { logins: 3, sessions: 4 });
    assert!(store.list_logins(&alice).await.expect("list_logins").is_empty());
    assert_eq!(store.get_session(&alice, &plain.digest).await.expect("get_session"), None);
    assert_eq!(store.list_logins(&bob).await.expect("list_logins"), vec![bobs.login.clone()]);
    assert!(store.get_session(&bob, &bobs.session.digest).await.expect("get_session").is_some());
    assert_eq!(store.delete_user(&alice).await.expect("delete_user"), Deleted::default());
}

/// `delete_expired_logins(now)` deletes exactly the logins with
/// `expires_at <= now`, counted.
pub async fn expired_logins_cleaned_at_cutoff<S: Store>(store: Arc<S>) {
    // A cutoff a day ahead: every record is still alive in real time, so a
    // store with its own expiry (TTLs) keeps them until the cleaner runs.
    let cutoff = after(now(), 86_400);
    let alice = user("alice");
    let mut expected_left = HashSet::new();
    for (offset, stays) in [
        (Duration::seconds(-1), false),
        (Duration::ZERO, false),
        (Duration::microseconds(1), true),
        (Duration::days(1), true),
    ] {
        let mut fresh = fresh_login(&alice, now());
        fresh.login.expires_at = cutoff + offset;
        fresh.login.session = None;
        assert_eq!(store.create_login(&fresh.login).await.expect("create_login"), Inserted::Created);
        if stays {
            expected_left.insert(fresh.login.serial);
        }
    }
    assert_eq!(store.delete_expired_logins(cutoff).await.expect("delete_expired_logins"), 2);
    let left = store.list_logins(&alice).await.expect("list_logins");
    assert_eq!(left.iter().map(|l| l.serial).collect::<HashSet<_>>(), expected_left);
    assert_eq!(store.delete_expired_logins(cutoff).await.expect("delete_expired_logins"), 0, "idempotent");
}

/// Cleaning an expired login ends the sessions it opened too, however alive
/// they are: a session never outlives its login.
pub async fn expired_logins_take_their_sessions<S: Store>(store: Arc<S>) {
    let cutoff = after(now(), 86_400);
    let alice = user("alice");
    let mut expired = fresh_login(&alice, now());
    expired.login.expires_at = cutoff;
    expired.session.expires_at = after(cutoff, 3600);
    created(&*store, &expired).await;
    let mut opened = plain_session(&alice, now());
    opened.login = Some(expired.login.serial);
    opened.expires_at = after(cutoff, 3600);
    let live = fresh_login(&alice, now());
    created(&*store, &live).await;
    for session in [&opened] {
        assert_eq!(store.create_session(session).await.expect("create_session"), Inserted::Created);
    }

    assert_eq!(store.delete_expired_logins(cutoff).await.expect("delete_expired_logins"), 1);
    for gone in [&expired.session, &opened] {
        assert_eq!(store.get_session(&alice, &gone.digest).await.expect("get_session"), None);
    }
    assert!(store.get_login(&alice, &live.login.serial).await.expect("get_login").is_some());
    assert!(store.get_session(&alice, &live.session.digest).await.expect("get_session").is_some());
}

// -------------------------------------------------------------- sessions

/// A session with nested JSON data reads back exactly.
pub async fn session_round_trips_with_data<S: Store>(store: Arc<S>) {
    let now = now();
    let name = user("日本語 user");
    let mut session = plain_session(&name, now);
    session.login = Some(tokens().serial());
    let data = json!({
        "cart": [1, 2, {"sku": "zoë-42", "qty": 3}],
        "flags": {"beta": true, "theme": null},
        "big": 9_007_199_254_740_993_i64,
        "text": "quote \" backslash \\ newline \n",
    });
    session.data = data.as_object().cloned().unwrap_or_default();
    assert_eq!(store.create_session(&session).await.expect("create_session"), Inserted::Created);
    let read = store.get_session(&name, &session.digest).await.expect("get_session");
    assert_eq!(read, Some(session));
}

/// Creating a session under an existing digest answers `AlreadyExists` and
/// leaves it untouched.
pub async fn create_session_never_overwrites<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let mut session = plain_session(&alice, now);
    session.data.insert("owner".into(), json!("first"));
    assert_eq!(store.create_session(&session).await.expect("create_session"), Inserted::Created);
    let mut second = session.clone();
    second.data.insert("owner".into(), json!("second"));
    assert_eq!(store.create_session(&second).await.expect("create_session"), Inserted::AlreadyExists);
    assert_eq!(store.get_session(&alice, &session.digest).await.expect("get_session"), Some(session));
}

/// A session is found, saved and deleted only under its owner's username.
pub async fn get_session_needs_owner<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let session = plain_session(&alice, now);
    assert_eq!(store.create_session(&session).await.expect("create_session"), Inserted::Created);
    assert_eq!(store.get_session(&bob, &session.digest).await.expect("get_session"), None);
    let mut hijack = session.clone();
    hijack.username = bob.clone();
    hijack.data.insert("admin".into(), json!(true));
    assert!(!store.save_session(&hijack).await.expect("save_session"), "bob cannot save alice's session");
    assert!(!store.delete_session(&bob, &session.digest).await.expect("delete_session"));
    assert_eq!(store.get_session(&alice, &session.digest).await.expect("get_session"), Some(session));
    assert_eq!(
        store.get_session(&bob, &hijack.digest).await.expect("get_session"),
        None,
        "not created for bob"
    );
}

/// Saving replaces the data and `expires_at` and nothing else.
pub async fn save_session_updates_data_and_expiry<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let session = plain_session(&alice, now);
    assert_eq!(store.create_session(&session).await.expect("create_session"), Inserted::Created);
    let mut changed = session.clone();
    changed.data.insert("visits".into(), json!(2));
    changed.expires_at = after(session.expires_at, 600);
    let mut tampered = changed.clone();
    tampered.created_at = after(now, -3600);
    tampered.login = Some(tokens().serial());
    assert!(store.save_session(&tampered).await.expect("save_session"));
    let read = store.get_session(&alice, &session.digest).await.expect("get_session");
    assert_eq!(read, Some(changed), "save changes data and expires_at only, never created_at or login");
}

/// Touching pushes out `expires_at` only; it never creates a session and
/// never touches another user's.
pub async fn touch_session_changes_only_expiry<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut session = plain_session(&alice, now);
    session.data.insert("cart".into(), json!(["book"]));
    assert_eq!(store.create_session(&session).await.expect("create_session"), Inserted::Created);
    let mut saved = session.clone();
    saved.data.insert("cart".into(), json!(["book", "pen"]));
    assert!(store.save_session(&saved).await.expect("save_session"));

    let later = after(session.expires_at, 900);
    assert!(store.touch_session(&alice, &session.digest, later).await.expect("touch_session"));
    let read = store.get_session(&alice, &session.digest).await.expect("get_session");
    assert_eq!(read, Some(Session { expires_at: later, ..saved }), "a touch keeps the data a save wrote");

    assert!(!store.touch_session(&bob, &session.digest, later).await.expect("touch_session"));
    let missing = plain_session(&alice, now);
    assert!(!store.touch_session(&alice, &missing.digest, later).await.expect("touch_session"));
    assert_eq!(store.get_session(&alice, &missing.digest).await.expect("get_session"), None, "no creation");
}

/// Saving a deleted session answers `false` and does not bring it back.
pub async fn save_session_never_resurrects<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let session = plain_session(&alice, now);
    assert_eq!(store.create_session(&session).await.expect("create_session"), Inserted::Created);
    assert!(store.delete_session(&alice, &session.digest).await.expect("delete_session"));
    assert!(!store.save_session(&session).await.expect("save_session"));
    assert_eq!(store.get_session(&alice, &session.digest).await.expect("get_session"), None);
    let never_created = plain_session(&alice, now);
    assert!(!store.save_session(&never_created).await.expect("save_session"));
    assert_eq!(store.get_session(&alice, &never_created.digest).await.expect("get_session"), None);
}

/// Deleting a session deletes that one only, once.
pub async fn delete_session_removes_one<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let (a, b) = (plain_session(&alice, now), plain_session(&alice, now));
    for session in [&a, &b] {
        assert_eq!(store.create_session(session).await.expect("create_session"), Inserted::Created);
    }
    assert!(store.delete_session(&alice, &a.digest).await.expect("delete_session"));
    assert!(!store.delete_session(&alice, &a.digest).await.expect("delete_session"));
    assert_eq!(store.get_session(&alice, &a.digest).await.expect("get_session"), None);
    assert_eq!(store.get_session(&alice, &b.digest).await.expect("get_session"), Some(b));
}

/// `delete_expired_sessions(now)` deletes exactly the sessions with
/// `expires_at <= now`, counted, across users.
pub async fn expired_sessions_cleaned_at_cutoff<S: Store>(store: Arc<S>) {
    let cutoff = after(now(), 86_400);
    let mut left = Vec::new();
    for (name, offset, stays) in [
        ("alice", Duration::seconds(-1), false),
        ("alice", Duration::ZERO, false),
        ("bob", Duration::ZERO, false),
        ("alice", Duration::microseconds(1), true),
        ("bob", Duration::hours(1), true),
    ] {
        let name = user(name);
        let mut session = plain_session(&name, now());
        session.expires_at = cutoff + offset;
        assert_eq!(store.create_session(&session).await.expect("create_session"), Inserted::Created);
        if stays {
            left.push(session);
        }
    }
    assert_eq!(store.delete_expired_sessions(cutoff).await.expect("delete_expired_sessions"), 3);
    for session in left {
        let read = store.get_session(&session.username, &session.digest).await.expect("get_session");
        assert_eq!(read, Some(session), "a session expiring after the cutoff stays");
    }
    assert_eq!(store.delete_expired_sessions(cutoff).await.expect("delete_expired_sessions"), 0);
}

// ----------------------------------------------------------- concurrency

/// 50 concurrent rotations of one login expecting the same digest: exactly
/// one wins, the login holds the winner's token, only its session exists.
pub async fn concurrent_rotations_have_one_winner<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (rotation, token, id) = rotation_for(&fresh, after(now, 1));
        let store = store.clone();
        tasks.push(tokio::spawn(async move { (store.rotate_login(&rotation).await, token, id) }));
    }
    let mut winners = Vec::new();
    let mut ids = Vec::new();
    for task in tasks {
        let (result, token, id) = task.await.expect("task");
        match result.expect("a racing rotation must not fail (no deadlock errors may leak out)") {
            Rotated::Rotated => winners.push(token),
            Rotated::NotCurrent => {}
            other => panic!("a losing rotation must answer NotCurrent, got {other:?}"),
        }
        ids.push(id);
    }
    assert_eq!(winners.len(), 1, "exactly one of 50 concurrent rotations wins");
    let login = store.get_login(&alice, &fresh.login.serial).await.expect("get_login").expect("login exists");
    assert!(login.token.matches(&winners[0]), "the login holds the winner's token");
    let mut live = 0;
    for id in &ids {
        if store.get_session(&alice, &id.digest()).await.expect("get_session").is_some() {
            live += 1;
            assert_eq!(login.session, Some(id.digest()), "the only new session is the bound one");
        }
    }
    assert_eq!(live, 1, "only the winner's session is created");
}

/// 50 concurrent deletes of one login: exactly one answers `true`.
pub async fn concurrent_deletes_have_one_winner<S: Store>(store: Arc<S>) {
    let alice = user("alice");
    let fresh = fresh_login(&alice, now());
    created(&*store, &fresh).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (store, alice, serial) = (store.clone(), alice.clone(), fresh.login.serial);
        tasks.push(tokio::spawn(async move { store.delete_login(&alice, &serial).await }));
    }
    let mut deleted = 0;
    for task in tasks {
        if task.await.expect("task").expect("delete_login") {
            deleted += 1;
        }
    }
    assert_eq!(deleted, 1, "exactly one of 50 concurrent deletes finds the login");
    assert_eq!(store.get_session(&alice, &fresh.session.digest).await.expect("get_session"), None);
}

/// 50 concurrent creates of one serial: exactly one is created, and it is the
/// one stored.
pub async fn concurrent_creates_have_one_winner<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let serial = tokens().serial();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let mut login = fresh_login(&alice, now).login;
        login.serial = serial;
        let store = store.clone();
        tasks.push(tokio::spawn(async move { (store.create_login(&login).await, login) }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (result, login) = task.await.expect("task");
        if result.expect("create_login") == Inserted::Created {
            winners.push(login);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of 50 concurrent creates of one serial succeeds");
    let stored = store.get_login(&alice, &serial).await.expect("get_login");
    assert_eq!(stored.as_ref(), winners.first(), "the stored login is the winner's, never overwritten");
}

/// Revocations racing rotations of the same login (20 rounds each of
/// `delete_login` and `delete_user`): once the login is gone, no session it
/// opened survives, whichever finished first.
pub async fn concurrent_revocation_and_rotation_leave_nothing<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    for round in 0..40 {
        let fresh = fresh_login(&alice, now);
        created(&*store, &fresh).await;
        let (rotation, _, id) = rotation_for(&fresh, after(now, 1));
        let rotate = {
            let store = store.clone();
            tokio::spawn(async move { store.rotate_login(&rotation).await })
        };
        let revoke = {
            let (store, alice, serial) = (store.clone(), alice.clone(), fresh.login.serial);
            tokio::spawn(async move {
                if round % 2 == 0 {
                    store.delete_login(&alice, &serial).await.map(|_| ())
                } else {
                    store.delete_user(&alice).await.map(|_| ())
                }
            })
        };
        let rotated = rotate.await.expect("task").expect("a racing rotation must not fail");
        revoke.await.expect("task").expect("a racing revocation must not fail");
        assert!(matches!(rotated, Rotated::Rotated | Rotated::NotFound), "round {round}: {rotated:?}");
        assert_eq!(store.get_login(&alice, &fresh.login.serial).await.expect("get_login"), None);
        for digest in [fresh.session.digest, id.digest()] {
            let left = store.get_session(&alice, &digest).await.expect("get_session");
            assert_eq!(left, None, "round {round}: a session of a revoked login survived the race");
        }
    }
}

// ---------------------------------------------------------------- engine

/// Register with "remember me", then the session cookie alone authenticates,
/// with no rotation and no cookie changes.
pub async fn engine_register_and_session_hit<S: Store>(store: Arc<S>) {
    let clock = clock();
    let engine = engine(store.clone(), &clock, config());
    let alice = user("alice");
    let (mut jar, registration) = register(&engine, &alice, true).await;
    let serial = registration.serial.expect("remembered");
    let before = store.get_login(&alice, &serial).await.expect("get_login");

    clock.advance(Duration::minutes(5));
    let result = visit(&engine, &mut jar).await;
    match &result.outcome {
        Outcome::Session(auth) => assert_eq!(auth.username(), &alice),
        other => panic!("expected a session hit, got {other:?}"),
    }
    assert!(result.cookies.is_empty(), "a session hit sets no cookie");
    assert_eq!(store.get_login(&alice, &serial).await.expect("get_login"), before, "no rotation on a hit");

    let devices = engine.devices(&alice, Some(&registration.session)).await.expect("devices");
    assert_eq!(devices.len(), 1);
    assert!(devices[0].current);
    assert_eq!(devices[0].serial, serial);

    let (mut plain, plain_registration) = register(&engine, &user("bob"), false).await;
    assert_eq!(plain_registration.serial, None);
    assert!(visit(&engine, &mut plain).await.outcome.authenticated().is_some());
    assert!(
        store.list_logins(&user("bob")).await.expect("list_logins").is_empty(),
        "no login without remember"
    );
}

/// Without a session, the auth cookie logs in: the token is rotated, a new
/// session id is issued and the old session no longer works.
pub async fn engine_cookie_login_rotates_and_cycles_session<S: Store>(store: Arc<S>) {
    let clock = clock();
    let engine = engine(store.clone(), &clock, config());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;
    let serial = registration.serial.expect("remembered");

    clock.advance(Duration::hours(2));
    let mut browser = jar.clone();
    let result = visit(&engine, &mut browser).await;
    assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "got {:?}", result.outcome);
    assert_ne!(browser.session, jar.session, "a cookie login issues a new session id");
    assert_ne!(browser.auth, jar.auth, "a cookie login rotates the token");
    let rotated = AuthCookie::parse(browser.auth.as_deref().expect("auth cookie")).expect("parses");
    assert_eq!(rotated.serial, serial, "the serial stays for the life of the login");
    let login = store.get_login(&alice, &serial).await.expect("get_login").expect("login");
    assert!(login.token.matches(&rotated.token));
    assert_eq!(login.last_used_at, engine.now());

    let old = engine.authenticate(&jar.only_session().presented()).await;
    assert!(old.outcome.authenticated().is_none(), "the old session died: got {:?}", old.outcome);
    let again = visit(&engine, &mut browser.clone()).await;
    assert!(matches!(again.outcome, Outcome::Session(_)), "the new session works: got {:?}", again.outcome);
}

/// The previous token inside the grace window authenticates without another
/// rotation and hands back exactly the winner's cookies.
pub async fn engine_grace_converges_on_successor<S: Store>(store: Arc<S>) {
    let clock = clock();
    let engine = engine(store.clone(), &clock, config());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;
    let serial = registration.serial.expect("remembered");
    clock.advance(Duration::hours(1));
    let stale = jar.without_session();
    let mut winner = stale.clone();
    assert!(matches!(visit(&engine, &mut winner).await.outcome, Outcome::CookieLogin(_)));
    let after_rotation = store.get_login(&alice, &serial).await.expect("get_login");

    clock.advance(Duration::seconds(29));
    let mut loser = stale.clone();
    let result = visit(&engine, &mut loser).await;
    assert!(matches!(result.outcome, Outcome::Grace(_)), "previous token in grace: got {:?}", result.outcome);
    assert_eq!(result.outcome.username(), Some(&alice));
    assert_eq!(loser.auth, winner.auth, "the loser gets the winner's token");
    assert_eq!(loser.session, winner.session, "the loser joins the winner's session");
    assert_eq!(
        store.get_login(&alice, &serial).await.expect("get_login"),
        after_rotation,
        "no second rotation"
    );
    assert!(matches!(visit(&engine, &mut loser).await.outcome, Outcome::Session(_)));
}

/// 50 concurrent requests with the same auth cookie: one rotates, the other
/// 49 get grace, and all converge on the same cookies.
pub async fn engine_concurrent_cookie_logins_converge<S: Store>(store: Arc<S>) {
    let clock = clock();
    let engine = Arc::new(engine(store.clone(), &clock, config()));
    let alice = user("alice");
    let (jar, _) = register(&engine, &alice, true).await;
    clock.advance(Duration::hours(1));
    let stale = jar.without_session();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (engine, mut browser) = (engine.clone(), stale.clone());
        tasks.push(tokio::spawn(async move {
            let result = visit(&engine, &mut browser).await;
            (result.outcome, browser)
        }));
    }
    let (mut logins, mut graces) = (0, 0);
    let mut jars = HashSet::new();
    for task in tasks {
        let (outcome, browser) = task.await.expect("task");
        match outcome {
            Outcome::CookieLogin(_) => logins += 1,
            Outcome::Grace(_) => graces += 1,
            other => panic!("a concurrent request with the current cookie must not get {other:?}"),
        }
        jars.insert((browser.session, browser.auth));
    }
    assert_eq!((logins, graces), (1, 49), "one rotation, 49 grace");
    assert_eq!(jars.len(), 1, "every request ends with the same cookies");
}

/// A replayed token after the grace window: every login and session of that
/// user is deleted, the hook is called, cookies are cleared; other users are
/// untouched.
pub async fn engine_theft_revokes_that_user_only<S: Store>(store: Arc<S>) {
    let clock = clock();
    let hooks = Recorder::default();
    let engine = engine(store.clone(), &clock, config()).with_hooks(hooks.clone());
    let (alice, bob) = (user("alice"), user("bob"));
    let (victim, registration) = register(&engine, &alice, true).await;
    let stolen = victim.without_session();

    // The other devices log in just before the theft, so their sessions are
    // live when it is detected.
    clock.advance(Duration::hours(1));
    let (mut laptop, _) = register(&engine, &alice, true).await;
    let (bobs, _) = register(&engine, &bob, true).await;
    let laptop_session = engine.authenticate(&laptop.only_session().presented()).await;
    assert!(matches!(laptop_session.outcome, Outcome::Session(_)));
    let mut victim_now = stolen.clone();
    assert!(matches!(visit(&engine, &mut victim_now).await.outcome, Outcome::CookieLogin(_)));
    clock.advance(Duration::seconds(31));
    let mut thief = stolen.clone();
    let result = visit(&engine, &mut thief).await;
    let Outcome::Theft(report) = &result.outcome else { panic!("expected theft, got {:?}", result.outcome) };
    assert!(result.outcome.theft_detected());
    assert_eq!(report.username, alice);
    assert_eq!(report.serial, registration.serial.expect("remembered"));
    assert_eq!(report.deleted, Deleted { logins: 2, sessions: 2 });
    assert_eq!(hooks.reports(), vec![report.clone()], "the theft hook is called once");
    assert_eq!((thief.session.as_ref(), thief.auth.as_ref()), (None, None), "both cookies are cleared");

    assert!(store.list_logins(&alice).await.expect("list_logins").is_empty());
    assert!(visit(&engine, &mut victim_now).await.outcome.authenticated().is_none(), "victim logged out too");
    let laptop_result = visit(&engine, &mut laptop.clone().only_session()).await;
    assert!(laptop_result.outcome.authenticated().is_none(), "every session of the user ends");
    assert!(matches!(visit(&engine, &mut laptop.without_session()).await.outcome, Outcome::UnknownLogin));
    assert!(matches!(visit(&engine, &mut laptop).await.outcome, Outcome::UnknownLogin));
    assert!(
        matches!(visit(&engine, &mut bobs.clone()).await.outcome, Outcome::Session(_)),
        "bob keeps his session"
    );
    assert!(matches!(visit(&engine, &mut bobs.without_session()).await.outcome, Outcome::CookieLogin(_)));
}

/// The grace window ends exactly `grace` after the rotation (it is open at
/// that end), and a forged token for a known serial is theft even inside it.
pub async fn engine_theft_after_grace_window<S: Store>(store: Arc<S>) {
    let clock = clock();
    let engine = engine(store.clone(), &clock, config());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;
    let stolen = jar.without_session();
    clock.advance(Duration::hours(1));
    let mut winner = stolen.clone();
    assert!(matches!(visit(&engine, &mut winner).await.outcome, Outcome::CookieLogin(_)));

    clock.advance(Duration::seconds(30) - Duration::microseconds(1));
    assert!(
        matches!(visit(&engine, &mut stolen.clone()).await.outcome, Outcome::Grace(_)),
        "last µs of grace"
    );

    let cookie = AuthCookie::parse(stolen.auth.as_deref().expect("auth")).expect("parses");
    let forged = AuthCookie { token: tokens().token(), ..cookie };
    let forged_jar = Jar { session: None, auth: Some(forged.encode()) };
    let result = visit(&engine, &mut forged_jar.clone()).await;
    assert!(result.outcome.theft_detected(), "a forged token is theft: got {:?}", result.outcome);
    assert_eq!(
        store.get_login(&alice, &registration.serial.expect("remembered")).await.expect("get_login"),
        None
    );

    // Same again, replaying exactly at the end of the window.
    let (jar, _) = register(&engine, &alice, true).await;
    let stolen = jar.without_session();
    clock.advance(Duration::hours(1));
    assert!(matches!(visit(&engine, &mut stolen.clone()).await.outcome, Outcome::CookieLogin(_)));
    clock.advance(Duration::seconds(30));
    assert!(visit(&engine, &mut stolen.clone()).await.outcome.theft_detected(), "grace ends at 30 s exactly");
}

/// A cookie naming another user (with a valid serial and token of someone
/// else) never authenticates and revokes nothing; nor does a session cookie
/// under another username.
pub async fn engine_foreign_username_never_authenticates<S: Store>(store: Arc<S>) {
    let clock = clock();
    let engine = engine(store.clone(), &clock, config());
    let (alice, mallory) = (user("alice"), user("mallory"));
    let (jar, registration) = register(&engine, &alice, true).await;
    let cookie = AuthCookie::parse(jar.auth.as_deref().expect("auth")).expect("parses");
    let session = SessionCookie::parse(jar.session.as_deref().expect("session")).expect("parses");

    let forged_auth = AuthCookie { username: mallory.clone(), ..cookie };
    let result =
        engine.authenticate(&Jar { session: None, auth: Some(forged_auth.encode()) }.presented()).await;
    assert!(matches!(result.outcome, Outcome::UnknownLogin), "got {:?}", result.outcome);
    let forged_session = SessionCookie { username: mallory, ..session };
    let result =
        engine.authenticate(&Jar { session: Some(forged_session.encode()), auth: None }.presented()).await;
    assert!(matches!(result.outcome, Outcome::Anonymous), "got {:?}", result.outcome);

    let serial = registration.serial.expect("remembered");
    assert!(
        store.get_login(&alice, &serial).await.expect("get_login").is_some(),
        "alice's login is untouched"
    );
    clock.advance(Duration::hours(1));
    assert!(matches!(visit(&engine, &mut jar.without_session()).await.outcome, Outcome::CookieLogin(_)));
}

/// A login unused for longer than the cookie max age is refused and deleted.
pub async fn engine_expired_login_is_deleted<S: Store>(store: Arc<S>) {
    let clock = clock();
    let config = config();
    let engine = engine(store.clone(), &clock, config.clone());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;
    clock.advance(Duration::try_from(config.cookie_max_age()).expect("duration"));
    let mut browser = jar.without_session();
    let result = visit(&engine, &mut browser).await;
    assert!(matches!(result.outcome, Outcome::ExpiredLogin), "got {:?}", result.outcome);
    assert_eq!(browser.auth, None, "the auth cookie is cleared");
    let serial = registration.serial.expect("remembered");
    assert_eq!(store.get_login(&alice, &serial).await.expect("get_login"), None, "the login is deleted");
}

/// Logging out ends this device's session and login and no other device's.
pub async fn engine_logout_ends_this_device_only<S: Store>(store: Arc<S>) {
    let clock = clock();
    let engine = engine(store.clone(), &clock, config());
    let alice = user("alice");
    let (phone, _) = register(&engine, &alice, true).await;
    let (laptop, laptop_registration) = register(&engine, &alice, true).await;

    let cleared = engine.logout(&phone.presented()).await.expect("logout");
    let mut after_logout = phone.clone();
    after_logout.apply(&cleared);
    assert_eq!((after_logout.session, after_logout.auth), (None, None), "logout clears both cookies");
    assert!(engine.authenticate(&phone.only_session().presented()).await.outcome.authenticated().is_none());
    assert!(matches!(
        engine.authenticate(&phone.without_session().presented()).await.outcome,
        Outcome::UnknownLogin
    ));
    let logins = store.list_logins(&alice).await.expect("list_logins");
    assert_eq!(
        logins.iter().map(|l| l.serial).collect::<Vec<_>>(),
        vec![laptop_registration.serial.expect("s")]
    );
    assert!(matches!(engine.authenticate(&laptop.presented()).await.outcome, Outcome::Session(_)));
}

/// Revoking another device's login ends its session at once (remote logout).
pub async fn engine_remote_logout_ends_session_at_once<S: Store>(store: Arc<S>) {
    let clock = clock();
    let engine = engine(store.clone(), &clock, config());
    let alice = user("alice");
    let (phone, phone_registration) = register(&engine, &alice, true).await;
    let (laptop, laptop_registration) = register(&engine, &alice, true).await;
    let devices = engine.devices(&alice, Some(&laptop_registration.session)).await.expect("devices");
    assert_eq!(devices.len(), 2);
    let phone_serial = phone_registration.serial.expect("remembered");
    assert!(devices.iter().any(|d| d.serial == phone_serial && !d.current));

    assert!(engine.revoke(&alice, &phone_serial).await.expect("revoke"));
    let result = engine.authenticate(&phone.presented()).await;
    assert!(
        result.outcome.authenticated().is_none(),
        "the revoked device is out at once: {:?}",
        result.outcome
    );
    assert!(!engine.revoke(&user("bob"), &laptop_registration.serial.expect("s")).await.expect("revoke"));
    assert!(matches!(engine.authenticate(&laptop.presented()).await.outcome, Outcome::Session(_)));
    let _ = store;
}

/// Logging out everywhere deletes every login and session of the user.
pub async fn engine_logout_everywhere<S: Store>(store: Arc<S>) {
    let clock = clock();
    let engine = engine(store.clone(), &clock, config());
    let alice = user("alice");
    let mut jars = Vec::new();
    for remember in [true, true, false] {
        jars.push(register(&engine, &alice, remember).await.0);
    }
    let (bobs, _) = register(&engine, &user("bob"), true).await;
    let deleted = engine.logout_everywhere(&alice).await.expect("logout_everywhere");
    assert_eq!(deleted, Deleted { logins: 2, sessions: 3 });
    for jar in &jars {
        assert!(engine.authenticate(&jar.presented()).await.outcome.authenticated().is_none());
    }
    assert!(matches!(engine.authenticate(&bobs.presented()).await.outcome, Outcome::Session(_)));
}

/// Over the per-user cap, registering evicts the least recently used login.
pub async fn engine_login_cap_evicts_least_recently_used<S: Store>(store: Arc<S>) {
    let clock = clock();
    let config = Config::builder()
        .secure(false)
        .max_logins_per_user(std::num::NonZeroUsize::new(3))
        .build()
        .expect("config");
    let engine = engine(store.clone(), &clock, config);
    let alice = user("alice");
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(register(&engine, &alice, true).await);
        clock.advance(Duration::minutes(1));
    }
    // The first device is used again, so the second is now the least recent.
    clock.advance(Duration::hours(1));
    assert!(matches!(
        visit(&engine, &mut devices[0].0.without_session()).await.outcome,
        Outcome::CookieLogin(_)
    ));
    let (_, newest) = register(&engine, &alice, true).await;

    let left: HashSet<_> =
        store.list_logins(&alice).await.expect("list_logins").iter().map(|l| l.serial).collect();
    let expected: HashSet<_> =
        [&devices[0].1, &devices[2].1, &newest].iter().map(|r| r.serial.expect("remembered")).collect();
    assert_eq!(left, expected, "the least recently used login is evicted");
}

/// Cleaning removes expired sessions and logins and nothing alive.
pub async fn engine_cleaning_removes_only_expired<S: Store>(store: Arc<S>) {
    let clock = clock();
    let config = config();
    let engine = engine(store.clone(), &clock, config.clone());
    let (alice, bob) = (user("alice"), user("bob"));
    let (alice_jar, _) = register(&engine, &alice, true).await;
    let _bob = register(&engine, &bob, false).await;
    assert_eq!(
        engine.clean().await.expect("clean"),
        expected_core::Cleaned::default(),
        "nothing expired yet"
    );

    clock.advance(Duration::try_from(config.session_idle_timeout()).expect("duration"));
    let cleaned = engine.clean().await.expect("clean");
    assert_eq!((cleaned.logins, cleaned.sessions), (0, 2), "both sessions idled out; the login lives");
    let mut alice_now = alice_jar.clone();
    assert!(matches!(visit(&engine, &mut alice_now).await.outcome, Outcome::CookieLogin(_)));

    clock.advance(Duration::try_from(config.cookie_max_age()).expect("duration"));
    let cleaned = engine.clean().await.expect("clean");
    // The login's session went with the login, so no session was left to
    // expire on its own.
    assert_eq!((cleaned.logins, cleaned.sessions), (1, 0));
    assert!(store.list_logins(&alice).await.expect("list_logins").is_empty());
    let session = SessionCookie::parse(alice_now.session.as_deref().expect("session")).expect("parses");
    let stored = store.get_session(&alice, &session.id.digest()).await.expect("get_session");
    assert_eq!(stored, None, "the session opened by the cleaned login is gone");
}

/// While the store is down every request fails closed with no cookie change;
/// once it is back, the same cookies work: nothing was lost or rotated.
pub async fn engine_store_outage_fails_closed<S: Store>(store: Arc<S>) {
    let clock = clock();
    let flaky = Arc::new(Flaky::new(store.clone()));
    let engine = engine(flaky.clone(), &clock, config());
    let alice = user("alice");
    let (jar, _) = register(&engine, &alice, true).await;

    flaky.set_down(true);
    for presented in [jar.clone(), jar.without_session(), jar.only_session()] {
        let result = engine.authenticate(&presented.presented()).await;
        assert!(matches!(result.outcome, Outcome::Unavailable(_)), "got {:?}", result.outcome);
        assert!(result.cookies.is_empty(), "fail closed without touching cookies");
    }
    assert!(engine.register(&alice, true, &jar.presented()).await.is_err());
    assert!(engine.logout(&jar.presented()).await.is_err());
    assert!(engine.devices(&alice, None).await.is_err());

    flaky.set_down(false);
    assert!(matches!(engine.authenticate(&jar.presented()).await.outcome, Outcome::Session(_)));
    clock.advance(Duration::hours(1));
    let result = engine.authenticate(&jar.without_session().presented()).await;
    assert!(
        matches!(result.outcome, Outcome::CookieLogin(_)),
        "the same auth cookie still works: {:?}",
        result.outcome
    );
    assert_eq!(store.list_logins(&alice).await.expect("list_logins").len(), 1, "nothing lost");
}
