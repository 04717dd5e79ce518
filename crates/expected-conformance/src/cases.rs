//! The cases, one function each. Every case takes a fresh, empty store.
//!
//! Store-level cases call the [`Store`] methods directly; `engine_*` cases run
//! the protocol through an [`Expected`](expected_core::Expected) engine over
//! the store, with a manual clock. Every assertion names the rule it checks.

use std::collections::HashSet;
use std::sync::Arc;

use expected_core::protocol::{self, apply_rotation, remembered_user};
use expected_core::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated,
};
use expected_core::time::Duration;
use expected_core::{
    AuthCookie, AuthMethod, ClientMeta, EndCause, GraceBinding, Login, Outcome, PreviousToken,
    SealedSuccessor, SessionCookie, SessionData, SessionRecord, SessionUser, Store, TheftCause, TokenSource,
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
    insert_login(&*store, &fresh.login).await;
    let read = login_at(&*store, &name, &fresh.login.serial).await;
    assert_eq!(read.as_ref(), Some(&fresh.login), "a login must read back exactly as written");

    let bare = fresh_login(&name, now);
    let mut bare_login = bare.login.clone();
    bare_login.session = None;
    bare_login.client = ClientMeta::default();
    insert_login(&*store, &bare_login).await;
    let read = login_at(&*store, &name, &bare_login.serial).await;
    assert_eq!(read, Some(bare_login), "empty optional fields must read back as empty");
}

/// Creating a login under an existing `(username, serial)` answers
/// `AlreadyExists` and leaves the stored login untouched.
pub async fn create_login_never_overwrites<S: Store>(store: Arc<S>) {
    let now = now();
    let name = user("alice");
    let fresh = fresh_login(&name, now);
    insert_login(&*store, &fresh.login).await;
    let mut impostor = fresh_login(&name, after(now, 10)).login;
    impostor.serial = fresh.login.serial;
    assert_eq!(
        store.create_login(&impostor).await.expect("create_login"),
        Inserted::AlreadyExists,
        "a duplicate serial must be refused"
    );
    let read = login_at(&*store, &name, &fresh.login.serial).await;
    assert_eq!(read, Some(fresh.login), "the first login must be untouched by a refused create");
}

/// A login is found only under its own username and serial; another user
/// cannot read, delete or list it.
pub async fn get_login_needs_owner_and_serial<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    assert_eq!(
        login_at(&*store, &bob, &fresh.login.serial).await,
        None,
        "a login must not be found under another username"
    );
    assert_eq!(
        login_at(&*store, &alice, &tokens().serial()).await,
        None,
        "a login must not be found under another serial"
    );
    assert!(
        store.list_logins(&bob).await.expect("list_logins").is_empty(),
        "another user's logins must not be listed"
    );
    assert!(
        !store.delete_login(&bob, &fresh.login.serial).await.expect("delete_login"),
        "another user cannot delete a login"
    );
    assert_eq!(
        session_at(&*store, Some(&bob), &fresh.session.digest).await,
        None,
        "a session must not be found under another username"
    );
    assert!(
        !store.delete_session(Some(&bob), &fresh.session.digest).await.expect("delete_session"),
        "another user cannot delete a session"
    );
    let read = login_at(&*store, &alice, &fresh.login.serial).await;
    assert_eq!(read, Some(fresh.login), "bob's attempts must not touch alice's login");
    assert_kept(&*store, &fresh.session, "bob's attempts must not touch alice's session").await;
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
    let (victim, victims) = &all[0];
    let deleted = store.delete_user(victim).await.expect("delete_user");
    assert_eq!(
        deleted,
        Deleted::new(vec![victims.login.serial], 1),
        "delete_user of {victim:?} deletes its one login and one session, and nobody else's"
    );
    for (name, fresh) in &all[1..] {
        let read = login_at(&*store, name, &fresh.login.serial).await;
        assert!(read.is_some(), "deleting {victim:?} must not delete {name:?}");
        let session = stored(&*store, &fresh.session).await;
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
    assert_eq!(listed.len(), 30, "list_logins returns every one of 30 logins");
    assert_eq!(
        listed.iter().map(|l| l.serial).collect::<HashSet<_>>(),
        serials,
        "list_logins returns exactly the user's serials"
    );
    assert!(listed.iter().all(|l| l.username == alice), "list_logins returns only the user's logins");
    assert_eq!(
        store.list_logins(&bob).await.expect("list_logins").len(),
        2,
        "another user's logins are listed apart"
    );
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
    insert_session(&*store, &unrelated).await;

    let (rotation, token, id) = rotation_for(&fresh, after(now, 60));
    assert_eq!(
        store.rotate_login(&rotation).await.expect("rotate_login"),
        Rotated::Rotated,
        "a rotation expecting the current digest rotates"
    );

    let mut expected = fresh.login.clone();
    apply_rotation(&mut expected, &rotation);
    let read = login_at(&*store, &alice, &fresh.login.serial).await;
    assert_eq!(
        read.as_ref(),
        Some(&expected),
        "the rotated login must be exactly what apply_rotation writes"
    );
    let read = read.expect("checked above");
    assert!(read.token.matches(&token), "the rotated login holds the new token's digest");
    assert_eq!(read.session, Some(id.digest()), "the rotated login is bound to the new session");
    assert_gone(&*store, &fresh.session, "the old bound session must be deleted").await;
    assert_kept(&*store, &rotation.session, "the new session must be created").await;
    assert_kept(&*store, &unrelated, "other sessions of the user stay").await;
}

/// A rotation expecting a digest that is no longer current answers
/// `NotCurrent` and writes nothing.
pub async fn rotate_refuses_stale_token<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    let (first, _, _) = rotation_for(&fresh, after(now, 1));
    assert_eq!(
        store.rotate_login(&first).await.expect("rotate_login"),
        Rotated::Rotated,
        "the first rotation rotates"
    );
    let before = login_at(&*store, &alice, &fresh.login.serial).await;

    let (stale, _, stale_id) = rotation_for(&fresh, after(now, 2));
    assert_eq!(
        store.rotate_login(&stale).await.expect("rotate_login"),
        Rotated::NotCurrent,
        "a rotation expecting a replaced digest answers NotCurrent"
    );
    let after_stale = login_at(&*store, &alice, &fresh.login.serial).await;
    assert_eq!(after_stale, before, "a refused rotation must not change the login");
    assert_eq!(
        session_at(&*store, Some(&alice), &stale_id.digest()).await,
        None,
        "a refused rotation must not create its session"
    );
    assert_kept(&*store, &first.session, "a refused rotation must not delete the bound session").await;
}

/// Rotating a login that does not exist answers `NotFound` and writes nothing.
pub async fn rotate_unknown_login<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    let (rotation, _, id) = rotation_for(&fresh, now);
    assert_eq!(
        store.rotate_login(&rotation).await.expect("rotate_login"),
        Rotated::NotFound,
        "rotating an unknown login answers NotFound"
    );
    assert_eq!(
        session_at(&*store, Some(&alice), &id.digest()).await,
        None,
        "rotating an unknown login creates no session"
    );
    assert_eq!(
        login_at(&*store, &alice, &fresh.login.serial).await,
        None,
        "rotating an unknown login creates no login"
    );
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
    insert_session(&*store, &occupant).await;

    let (mut rotation, _, _) = rotation_for(&fresh, after(now, 1));
    rotation.session.digest = occupant.digest;
    assert_eq!(
        store.rotate_login(&rotation).await.expect("rotate_login"),
        Rotated::SessionExists,
        "a rotation onto an existing session digest answers SessionExists"
    );
    assert_eq!(
        login_at(&*store, &alice, &fresh.login.serial).await,
        Some(fresh.login),
        "a refused rotation must not change the login"
    );
    assert_kept(&*store, &occupant, "a refused rotation must not overwrite the existing session").await;
    assert_kept(&*store, &fresh.session, "the old bound session must stay when the rotation is refused")
        .await;
}

/// A rotation (`rotate_login`, `rotate_current`) whose new session is not the
/// login's user's, another user's or an anonymous one, is refused with an
/// error and writes nothing: filed under the login's user, that session
/// would read back as corrupt or be ended with the wrong logins.
pub async fn rotate_refuses_a_session_of_another_user<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    for (owner, what) in [(Some(&bob), "another user's"), (None, "an anonymous")] {
        let (mut rotation, _, _) = rotation_for(&fresh, after(now, 1));
        rotation.session = owned_by(&rotation.session, owner);
        let answer = store.rotate_login(&rotation).await;
        assert!(answer.is_err(), "rotate_login onto {what} session must be refused, answered {answer:?}");
        let mut attempt = current_for(&fresh, after(now, 1));
        attempt.rotation.session = owned_by(&attempt.rotation.session, owner);
        let answer = store.rotate_current(&attempt).await;
        assert!(answer.is_err(), "rotate_current onto {what} session must be refused, answered {answer:?}");
        assert_eq!(
            login_at(&*store, &alice, &fresh.login.serial).await,
            Some(fresh.login.clone()),
            "a refused rotation onto {what} session must not change the login"
        );
        for digest in [rotation.session.digest, attempt.rotation.session.digest] {
            for owner in [Some(&alice), Some(&bob), None] {
                assert_eq!(
                    session_at(&*store, owner, &digest).await,
                    None,
                    "a refused rotation onto {what} session creates no session"
                );
            }
        }
        assert_kept(&*store, &fresh.session, "a refused rotation keeps the bound session").await;
    }
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
    let opened_by_doomed = opened_by(&alice, doomed.login.serial, now);
    let plain = plain_session(&alice, now);
    for session in [&opened_by_doomed, &plain] {
        insert_session(&*store, session).await;
    }

    assert!(
        store.delete_login(&alice, &doomed.login.serial).await.expect("delete_login"),
        "deleting an existing login answers true"
    );
    assert_eq!(login_at(&*store, &alice, &doomed.login.serial).await, None, "a deleted login is gone");
    for gone in [&doomed.session, &opened_by_doomed] {
        assert_gone(&*store, gone, "a deleted login's sessions must end with it").await;
    }
    assert!(
        login_at(&*store, &alice, &kept.login.serial).await.is_some(),
        "deleting a login leaves the user's other logins"
    );
    for stays in [&kept.session, &plain] {
        assert_kept(&*store, stays, "deleting a login leaves sessions it did not open").await;
    }
}

/// Deleting a login whose record is already gone still ends the sessions it
/// opened (answering `false`).
pub async fn delete_login_ends_sessions_of_a_gone_login<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    // Only the session exists: its login was cleaned or lost.
    insert_session(&*store, &fresh.session).await;
    let other = plain_session(&alice, now);
    insert_session(&*store, &other).await;
    assert!(
        !store.delete_login(&alice, &fresh.login.serial).await.expect("delete_login"),
        "deleting a login that is gone answers false"
    );
    assert_gone(&*store, &fresh.session, "the sessions of a gone login end when it is deleted").await;
    assert_kept(&*store, &other, "sessions opened by no login stay").await;
}

/// Deleting a login that does not exist answers `false`.
pub async fn delete_login_unknown<S: Store>(store: Arc<S>) {
    let alice = user("alice");
    assert!(
        !store.delete_login(&alice, &tokens().serial()).await.expect("delete_login"),
        "deleting an unknown login answers false"
    );
    let fresh = fresh_login(&alice, now());
    created(&*store, &fresh).await;
    assert!(
        store.delete_login(&alice, &fresh.login.serial).await.expect("delete_login"),
        "deleting an existing login answers true"
    );
    assert!(
        !store.delete_login(&alice, &fresh.login.serial).await.expect("delete_login"),
        "a login is deleted only once"
    );
}

/// `delete_user` removes every login and session of the user, counts them
/// exactly, reports exactly the serials deleted, and leaves other users
/// alone.
pub async fn delete_user_removes_only_that_user<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut serials = Vec::new();
    for _ in 0..3 {
        let fresh = fresh_login(&alice, now);
        created(&*store, &fresh).await;
        serials.push(fresh.login.serial);
    }
    let plain = plain_session(&alice, now);
    insert_session(&*store, &plain).await;
    let bobs = fresh_login(&bob, now);
    created(&*store, &bobs).await;

    let deleted = store.delete_user(&alice).await.expect("delete_user");
    assert_eq!(
        (deleted.logins, deleted.sessions),
        (3, 4),
        "delete_user counts exactly the user's 3 logins and 4 sessions"
    );
    assert_eq!(sorted(deleted.serials), sorted(serials), "delete_user reports exactly the serials deleted");
    assert!(store.list_logins(&alice).await.expect("list_logins").is_empty(), "the user has no login left");
    assert_gone(&*store, &plain, "delete_user deletes sessions opened by no login").await;
    assert_eq!(
        store.list_logins(&bob).await.expect("list_logins"),
        vec![bobs.login.clone()],
        "delete_user leaves other users' logins"
    );
    assert_kept(&*store, &bobs.session, "delete_user leaves other users' sessions").await;
    assert_eq!(
        store.delete_user(&alice).await.expect("delete_user"),
        Deleted::default(),
        "deleting a user with nothing left deletes nothing"
    );
}

/// `delete_expired_logins(now)` deletes exactly the logins with
/// `expires_at <= now`, and reports exactly those.
pub async fn expired_logins_cleaned_at_cutoff<S: Store>(store: Arc<S>) {
    // A cutoff a day ahead: every record is still alive in real time, so a
    // store with its own expiry (TTLs) keeps them until the cleaner runs.
    let cutoff = after(now(), 86_400);
    let alice = user("alice");
    let mut expected_left = HashSet::new();
    let mut expected_gone = Vec::new();
    for (offset, stays) in [
        (Duration::seconds(-1), false),
        (Duration::ZERO, false),
        (Duration::microseconds(1), true),
        (Duration::days(1), true),
    ] {
        let mut fresh = fresh_login(&alice, now());
        fresh.login.expires_at = cutoff + offset;
        fresh.login.session = None;
        insert_login(&*store, &fresh.login).await;
        if stays {
            expected_left.insert(fresh.login.serial);
        } else {
            expected_gone.push(ExpiredLogin { username: alice.clone(), serial: fresh.login.serial });
        }
    }
    let mut gone = store.delete_expired_logins(cutoff).await.expect("delete_expired_logins");
    gone.sort();
    expected_gone.sort();
    assert_eq!(gone, expected_gone, "exactly the logins expiring at or before the cutoff are reported");
    let left = store.list_logins(&alice).await.expect("list_logins");
    assert_eq!(
        left.iter().map(|l| l.serial).collect::<HashSet<_>>(),
        expected_left,
        "logins expiring after the cutoff (by 1 µs included) stay"
    );
    assert_eq!(
        store.delete_expired_logins(cutoff).await.expect("delete_expired_logins"),
        Vec::new(),
        "cleaning is idempotent: a second pass deletes nothing"
    );
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
    let mut opened = opened_by(&alice, expired.login.serial, now());
    opened.expires_at = after(cutoff, 3600);
    let live = fresh_login(&alice, now());
    created(&*store, &live).await;
    insert_session(&*store, &opened).await;

    assert_eq!(
        store.delete_expired_logins(cutoff).await.expect("delete_expired_logins"),
        vec![ExpiredLogin { username: alice.clone(), serial: expired.login.serial }],
        "exactly the expired login is cleaned"
    );
    for gone in [&expired.session, &opened] {
        assert_gone(&*store, gone, "the sessions of a cleaned login end with it, however alive").await;
    }
    assert!(login_at(&*store, &alice, &live.login.serial).await.is_some(), "a live login survives cleaning");
    assert_kept(&*store, &live.session, "a live login's session survives cleaning").await;
}

// -------------------------------------------------------------- sessions

/// A session with nested JSON data reads back exactly.
pub async fn session_round_trips_with_data<S: Store>(store: Arc<S>) {
    let now = now();
    let name = user("日本語 user");
    let mut session = opened_by(&name, tokens().serial(), now);
    session.data = data(json!({
        "cart": [1, 2, {"sku": "zoë-42", "qty": 3}],
        "flags": {"beta": true, "theme": null},
        "big": 9_007_199_254_740_993_i64,
        "text": "quote \" backslash \\ newline \n",
    }));
    insert_session(&*store, &session).await;
    assert_kept(&*store, &session, "a session with nested JSON data reads back exactly").await;
}

/// Creating a session under an existing digest answers `AlreadyExists` and
/// leaves it untouched.
pub async fn create_session_never_overwrites<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let mut session = plain_session(&alice, now);
    session.data.insert("owner".into(), json!("first"));
    insert_session(&*store, &session).await;
    assert_create_refused(&*store, &session, data(json!({"owner": "second"})), "a user's session").await;
}

/// A session is found, saved and deleted only under its owner's username.
pub async fn get_session_needs_owner<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let session = plain_session(&alice, now);
    insert_session(&*store, &session).await;
    assert_eq!(
        session_at(&*store, Some(&bob), &session.digest).await,
        None,
        "a session is not found under another username"
    );
    let mut hijack = owned_by(&session, Some(&bob));
    hijack.data.insert("admin".into(), json!(true));
    assert!(!store.save_session(&hijack).await.expect("save_session"), "bob cannot save alice's session");
    assert!(
        !store.delete_session(Some(&bob), &session.digest).await.expect("delete_session"),
        "bob cannot delete alice's session"
    );
    assert_kept(&*store, &session, "bob's attempts leave alice's session untouched").await;
    assert_gone(&*store, &hijack, "a refused save creates no session for bob").await;
}

/// Saving replaces the data and `expires_at` and nothing else.
pub async fn save_session_updates_data_and_expiry<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let session = plain_session(&alice, now);
    insert_session(&*store, &session).await;
    let mut changed = session.clone();
    changed.data.insert("visits".into(), json!(2));
    changed.expires_at = after(session.expires_at, 600);
    let mut tampered = changed.clone();
    tampered.created_at = after(now, -3600);
    tampered.user = Some(SessionUser {
        username: alice.clone(),
        login: Some(tokens().serial()),
        method: AuthMethod::Remembered,
        authenticated_at: after(now, -7200),
    });
    assert!(
        store.save_session(&tampered).await.expect("save_session"),
        "saving an existing session answers true"
    );
    assert_kept(
        &*store,
        &changed,
        "save changes data and expires_at only, never created_at, the login, the method or authenticated_at",
    )
    .await;
}

/// Touching pushes out `expires_at` only; it never creates a session and
/// never touches another user's.
pub async fn touch_session_changes_only_expiry<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut session = plain_session(&alice, now);
    session.data.insert("cart".into(), json!(["book"]));
    insert_session(&*store, &session).await;
    let mut saved = session.clone();
    saved.data.insert("cart".into(), json!(["book", "pen"]));
    assert!(
        store.save_session(&saved).await.expect("save_session"),
        "saving an existing session answers true"
    );

    let later = after(session.expires_at, 900);
    assert!(
        store.touch_session(Some(&alice), &session.digest, later).await.expect("touch_session"),
        "touching an existing session answers true"
    );
    assert_kept(
        &*store,
        &SessionRecord { expires_at: later, ..saved },
        "a touch keeps the data a save wrote",
    )
    .await;

    assert!(
        !store.touch_session(Some(&bob), &session.digest, later).await.expect("touch_session"),
        "another user cannot touch a session"
    );
    let missing = plain_session(&alice, now);
    assert!(
        !store.touch_session(Some(&alice), &missing.digest, later).await.expect("touch_session"),
        "touching a missing session answers false"
    );
    assert_gone(&*store, &missing, "a touch never creates a session").await;
}

/// Saving a deleted session answers `false` and does not bring it back.
pub async fn save_session_never_resurrects<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let session = plain_session(&alice, now);
    insert_session(&*store, &session).await;
    assert!(
        store.delete_session(Some(&alice), &session.digest).await.expect("delete_session"),
        "deleting an existing session answers true"
    );
    assert!(
        !store.save_session(&session).await.expect("save_session"),
        "saving a deleted session answers false"
    );
    assert_gone(&*store, &session, "saving a deleted session does not bring it back").await;
    let never_created = plain_session(&alice, now);
    assert!(
        !store.save_session(&never_created).await.expect("save_session"),
        "saving a session never created answers false"
    );
    assert_gone(&*store, &never_created, "saving never creates a session").await;
}

/// Deleting a session deletes that one only, once.
pub async fn delete_session_removes_one<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let (a, b) = (plain_session(&alice, now), plain_session(&alice, now));
    for session in [&a, &b] {
        insert_session(&*store, session).await;
    }
    assert!(
        store.delete_session(Some(&alice), &a.digest).await.expect("delete_session"),
        "deleting an existing session answers true"
    );
    assert!(
        !store.delete_session(Some(&alice), &a.digest).await.expect("delete_session"),
        "a session is deleted only once"
    );
    assert_gone(&*store, &a, "a deleted session is gone").await;
    assert_kept(&*store, &b, "deleting one session leaves the others").await;
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
        let mut session = plain_session(&user(name), now());
        session.expires_at = cutoff + offset;
        insert_session(&*store, &session).await;
        if stays {
            left.push(session);
        }
    }
    assert_eq!(
        store.delete_expired_sessions(cutoff).await.expect("delete_expired_sessions"),
        3,
        "exactly the 3 sessions expiring at or before the cutoff are counted"
    );
    for session in &left {
        assert_kept(&*store, session, "a session expiring after the cutoff (by 1 µs included) stays").await;
    }
    assert_eq!(
        store.delete_expired_sessions(cutoff).await.expect("delete_expired_sessions"),
        0,
        "cleaning is idempotent: a second pass deletes nothing"
    );
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
    let login = login_at(&*store, &alice, &fresh.login.serial).await.expect("the rotated login exists");
    assert!(login.token.matches(&winners[0]), "the login holds the winner's token");
    let mut live = 0;
    for id in &ids {
        if session_at(&*store, Some(&alice), &id.digest()).await.is_some() {
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
    assert_gone(&*store, &fresh.session, "the login's session ends with it").await;
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
    let stored = login_at(&*store, &alice, &serial).await;
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
        let revoke = spawn_revocation(&store, &alice, fresh.login.serial, round);
        let rotated = rotate.await.expect("task").expect("a racing rotation must not fail");
        revoke.await.expect("task").expect("a racing revocation must not fail");
        assert!(
            matches!(rotated, Rotated::Rotated | Rotated::NotFound),
            "round {round}: a rotation racing a revocation either rotates or finds nothing, got {rotated:?}"
        );
        assert_eq!(
            login_at(&*store, &alice, &fresh.login.serial).await,
            None,
            "round {round}: the revoked login is gone"
        );
        for digest in [fresh.session.digest, id.digest()] {
            let left = session_at(&*store, Some(&alice), &digest).await;
            assert_eq!(left, None, "round {round}: a session of a revoked login survived the race");
        }
    }
}

// ------------------------------------------------- rotations and grace

/// A rotation ends every session the login opened (its bound one and every
/// one with `session.user.login == Some(serial)`: a grace session, a cycled
/// one, a copy kept alive elsewhere), all but its new one; sessions of other
/// logins, sessions without a login, other users' and anonymous sessions
/// stay.
pub async fn rotate_ends_every_session_of_the_login<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let fresh = fresh_login(&alice, now);
    let other = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    created(&*store, &other).await;
    let serial = fresh.login.serial;
    let opened = [opened_by(&alice, serial, now), opened_by(&alice, serial, now)];
    let plain = plain_session(&alice, now);
    let bobs_of_same_serial = opened_by(&bob, serial, now);
    let anonymous = anonymous_session(now);
    for session in opened.iter().chain([&plain, &bobs_of_same_serial, &anonymous]) {
        insert_session(&*store, session).await;
    }

    let (rotation, _, _) = rotation_for(&fresh, after(now, 60));
    assert_eq!(
        store.rotate_login(&rotation).await.expect("rotate_login"),
        Rotated::Rotated,
        "a rotation expecting the current digest rotates"
    );
    assert_gone(&*store, &fresh.session, "a rotation ends the login's old bound session").await;
    for session in &opened {
        assert_gone(&*store, session, "a rotation ends every other session the login opened").await;
    }
    assert_kept(&*store, &rotation.session, "a rotation keeps its own new session").await;
    assert_kept(&*store, &other.session, "a rotation leaves the sessions of the user's other logins").await;
    assert_kept(&*store, &plain, "a rotation leaves the user's sessions that no login opened").await;
    assert_kept(&*store, &bobs_of_same_serial, "a rotation leaves another user's sessions").await;
    assert_kept(&*store, &anonymous, "a rotation leaves anonymous sessions").await;
}

/// `create_session` given a cap leaves the user with at most that many
/// sessions, deleting the ones that expire first (whatever order they were
/// created in), never the new one, and not their logins; a refused create
/// deletes nothing, no cap deletes nothing, a user already over the cap is
/// trimmed to it at once, and neither another user's nor anonymous sessions
/// are counted or deleted.
pub async fn create_session_caps_sessions_per_user<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let fresh = fresh_login(&alice, now);
    insert_login(&*store, &fresh.login).await;
    let by_login = expiring(&alice, Some(fresh.login.serial), now, 10);
    let (middle, late) = (expiring(&alice, None, now, 20), expiring(&alice, None, now, 40));
    let bobs = expiring(&bob, None, now, 1);
    let visitors = [anonymous_session(now), anonymous_session(now), anonymous_session(now)];
    for session in [&late, &by_login, &middle, &bobs].into_iter().chain(&visitors) {
        insert_session(&*store, session).await;
    }

    let fourth = expiring(&alice, None, now, 30);
    insert_capped(&*store, &fourth, cap(3), "a session over the cap is created").await;
    assert_gone(&*store, &by_login, "over the cap, the user's session that expires first is deleted").await;
    for (session, what) in [(&middle, "the second earliest"), (&late, "the latest"), (&fourth, "the new one")]
    {
        assert_kept(&*store, session, &format!("at the cap, {what} of the user's sessions stays")).await;
    }
    assert_eq!(
        login_at(&*store, &alice, &fresh.login.serial).await.as_ref(),
        Some(&fresh.login),
        "a session deleted over the cap leaves the login that opened it"
    );

    let earliest = expiring(&alice, None, now, 5);
    insert_capped(&*store, &earliest, cap(3), "a session expiring before all others is created").await;
    assert_kept(&*store, &earliest, "the session being created is never deleted over the cap").await;
    assert_gone(&*store, &middle, "the next earliest goes in its place").await;
    let refused = SessionRecord { data: data(json!({"other": true})), ..earliest.clone() };
    assert_eq!(
        store.create_session(&refused, cap(1)).await.expect("create_session"),
        Inserted::AlreadyExists,
        "a create under a taken key is refused, cap or not"
    );
    for session in [&earliest, &late, &fourth] {
        assert_kept(&*store, session, "a refused create deletes nothing over the cap").await;
    }

    let (extra, another) = (expiring(&alice, None, now, 45), expiring(&alice, None, now, 35));
    insert_capped(&*store, &extra, None, "without a cap a session is created").await;
    insert_capped(&*store, &another, None, "without a cap a session is created").await;
    for session in [&earliest, &late, &fourth, &extra, &another] {
        assert_kept(&*store, session, "without a cap no session is deleted").await;
    }
    let last = expiring(&alice, None, now, 50);
    insert_capped(&*store, &last, cap(2), "a session is created for a user over the cap").await;
    assert_kept(&*store, &last, "a user over the cap keeps the new session").await;
    assert_kept(&*store, &extra, "and the one expiring last of the others").await;
    for session in [&earliest, &late, &fourth, &another] {
        assert_gone(&*store, session, "a user over the cap is trimmed to it by one create").await;
    }

    let fourth_visitor = anonymous_session(now);
    insert_capped(&*store, &fourth_visitor, cap(1), "an anonymous session is created").await;
    for visitor in visitors.iter().chain([&fourth_visitor]) {
        assert_kept(&*store, visitor, "anonymous sessions are neither capped nor deleted by a cap").await;
    }
    assert_kept(&*store, &bobs, "another user's sessions are neither counted nor deleted").await;
}

/// A rotation given a cap first ends the login's other sessions, then
/// deletes the user's sessions that expire first beyond the cap (never the
/// new one, never one more than needed); a refused rotation deletes
/// nothing.
pub async fn rotate_caps_sessions_per_user<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let mut fresh = fresh_login(&alice, now);
    fresh.session.expires_at = after(now, 600);
    created(&*store, &fresh).await;
    let serial = fresh.login.serial;
    let opened = expiring(&alice, Some(serial), now, 12);
    let (first, second, third) =
        (expiring(&alice, None, now, 20), expiring(&alice, None, now, 40), expiring(&alice, None, now, 50));
    for session in [&opened, &first, &second, &third] {
        insert_session(&*store, session).await;
    }

    let (mut rotation, _, _) = rotation_for(&fresh, after(now, 60));
    rotation.max_sessions = cap(3);
    assert_eq!(
        store.rotate_login(&rotation).await.expect("rotate_login"),
        Rotated::Rotated,
        "a rotation over the cap rotates"
    );
    assert_gone(&*store, &fresh.session, "a capped rotation ends the login's bound session").await;
    assert_gone(&*store, &opened, "a capped rotation ends the sessions the login opened").await;
    assert_gone(&*store, &first, "beyond the cap, the user's session that expires first goes").await;
    assert_kept(&*store, &second, "the cap counts after the login's own sessions ended: no more goes").await;
    assert_kept(&*store, &third, "the user's latest session stays").await;
    assert_kept(&*store, &rotation.session, "the rotation's new session stays").await;

    let mut stale = rotation.clone();
    stale.max_sessions = cap(1);
    assert_eq!(
        store.rotate_login(&stale).await.expect("rotate_login"),
        Rotated::NotCurrent,
        "a rotation expecting a replaced token is refused"
    );
    for session in [&second, &third, &rotation.session] {
        assert_kept(&*store, session, "a refused rotation deletes nothing over the cap").await;
    }
}

/// A grace session given a cap leaves the user with at most that many
/// sessions, the login's bound one included in the count; a refused grace
/// session deletes nothing.
pub async fn grace_session_caps_sessions_per_user<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let mut fresh = remembered_login(&alice, now);
    fresh.session.expires_at = after(now, 600);
    created(&*store, &fresh).await;
    let plain = expiring(&alice, None, now, 20);
    insert_session(&*store, &plain).await;
    let grace = session_of(Some(remembered_user(&fresh.login)), after(now, 5));

    assert_eq!(
        store.create_grace_session(&grace, cap(2)).await.expect("create_grace_session"),
        GraceInserted::Created,
        "a grace session over the cap is created"
    );
    assert_gone(&*store, &fresh.session, "over the cap, the session that expires first goes").await;
    assert_kept(&*store, &plain, "at the cap, the user's other session stays").await;
    assert_kept(&*store, &grace, "the grace session being created is never deleted over the cap").await;
    let bound = login_at(&*store, &alice, &fresh.login.serial).await.and_then(|login| login.session);
    assert_eq!(bound, Some(grace.digest), "the capped grace session is bound to its login");

    let stray = fresh_login(&alice, now);
    let orphan = session_of(Some(remembered_user(&stray.login)), now);
    assert_eq!(
        store.create_grace_session(&orphan, cap(1)).await.expect("create_grace_session"),
        GraceInserted::LoginGone,
        "a grace session for a missing login is refused"
    );
    for session in [&plain, &grace] {
        assert_kept(&*store, session, "a refused grace session deletes nothing over the cap").await;
    }
}

/// `create_grace_session` creates the session exactly as given and binds it
/// to its login (`login.session`, nothing else of the login changes) while
/// the login exists; answers `AlreadyExists` for a taken key and `LoginGone`
/// for a login that is gone or a session naming none, writing nothing; and
/// the session it made ends with the login's next rotation.
pub async fn grace_session_needs_its_login<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = remembered_login(&alice, now);
    created(&*store, &fresh).await;
    let serial = fresh.login.serial;
    let mut grace = session_of(Some(remembered_user(&fresh.login)), after(now, 5));
    grace.expires_at = with_micros(grace.expires_at, 7);

    assert_eq!(
        store.create_grace_session(&grace, None).await.expect("create_grace_session"),
        GraceInserted::Created,
        "a grace session for a login that exists is created"
    );
    assert_kept(&*store, &grace, "the grace session is stored exactly as given").await;
    let bound = Login { session: Some(grace.digest), ..fresh.login.clone() };
    assert_eq!(
        login_at(&*store, &alice, &serial).await,
        Some(bound),
        "the grace session becomes the login's bound session, and nothing else of the login changes"
    );
    assert_kept(&*store, &fresh.session, "creating a grace session deletes no session").await;

    let taken = SessionRecord { data: data(json!({"other": true})), ..grace.clone() };
    assert_eq!(
        store.create_grace_session(&taken, None).await.expect("create_grace_session"),
        GraceInserted::AlreadyExists,
        "a grace session under a taken key is refused"
    );
    assert_kept(&*store, &grace, "a refused grace session overwrites nothing").await;

    let stray = fresh_login(&alice, now);
    let orphan = session_of(Some(remembered_user(&stray.login)), now);
    assert_eq!(
        store.create_grace_session(&orphan, None).await.expect("create_grace_session"),
        GraceInserted::LoginGone,
        "a grace session for a login that does not exist is refused"
    );
    assert_gone(&*store, &orphan, "a grace session refused for its missing login is not stored").await;
    assert_eq!(login_at(&*store, &alice, &stray.login.serial).await, None, "no login is created either");
    let unbound = plain_session(&alice, now);
    assert_eq!(
        store.create_grace_session(&unbound, None).await.expect("create_grace_session"),
        GraceInserted::LoginGone,
        "a grace session naming no login is refused"
    );
    assert_gone(&*store, &unbound, "a session naming no login is not stored").await;

    let current = Fresh { login: login_at(&*store, &alice, &serial).await.expect("the login"), ..fresh };
    let (rotation, _, _) = rotation_for(&current, after(now, 60));
    assert_eq!(store.rotate_login(&rotation).await.expect("rotate_login"), Rotated::Rotated, "it rotates");
    assert_gone(&*store, &grace, "a grace session ends at its login's next rotation").await;
    assert!(
        store.delete_login(&alice, &serial).await.expect("delete_login"),
        "the rotated login is still there to delete"
    );
    let after_delete = session_of(Some(remembered_user(&current.login)), now);
    assert_eq!(
        store.create_grace_session(&after_delete, None).await.expect("create_grace_session"),
        GraceInserted::LoginGone,
        "once the login is deleted, no grace session is created for it"
    );
    assert_gone(&*store, &after_delete, "nor stored").await;
}

/// `create_grace_session` racing revocations of its login (20 rounds each of
/// `delete_login` and `delete_user`, half of them with the login's bound
/// session still stored): once the login is gone, no grace session of it is
/// left, whichever finished first.
pub async fn concurrent_revocation_and_grace_session_leave_nothing<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    for round in 0..40 {
        let fresh = remembered_login(&alice, now);
        if round % 4 < 2 {
            created(&*store, &fresh).await;
        } else {
            // The bound session is gone already, as when a grace request
            // falls back to a fresh session.
            insert_login(&*store, &fresh.login).await;
        }
        let grace = session_of(Some(remembered_user(&fresh.login)), now);
        let create = {
            let (store, grace) = (store.clone(), grace.clone());
            tokio::spawn(async move { store.create_grace_session(&grace, None).await })
        };
        let revoke = spawn_revocation(&store, &alice, fresh.login.serial, round);
        let created = create.await.expect("task").expect("a racing create_grace_session must not fail");
        revoke.await.expect("task").expect("a racing revocation must not fail");
        assert!(
            matches!(created, GraceInserted::Created | GraceInserted::LoginGone),
            "round {round}: a grace session racing a revocation is created or finds no login, got {created:?}"
        );
        assert_eq!(
            login_at(&*store, &alice, &fresh.login.serial).await,
            None,
            "round {round}: the revoked login is gone"
        );
        for session in [&grace, &fresh.session] {
            assert_gone(
                &*store,
                session,
                &format!("round {round}: a session of a revoked login survived the race"),
            )
            .await;
        }
    }
}

// ---------------------------------------------------- anonymous sessions

/// An anonymous visitor's session (`user: None`) with nested data reads back
/// exactly under no owner, and a second create with its digest is refused.
pub async fn anonymous_session_round_trips<S: Store>(store: Arc<S>) {
    let now = now();
    let mut session = anonymous_session(now);
    session.data = data(json!({
        "cart": [{"sku": "zoë-42", "qty": 3}],
        "locale": "fr-CA",
        "consent": {"analytics": false, "at": null},
    }));
    session.created_at = with_micros(now, 1);
    session.expires_at = with_micros(after(now, 1800), 999_999);
    insert_session(&*store, &session).await;
    assert_kept(&*store, &session, "an anonymous session reads back exactly under no owner").await;
    assert_create_refused(&*store, &session, data(json!({"cart": []})), "an anonymous session").await;
}

/// Anonymous and users' sessions never mix: an anonymous lookup never finds
/// a user's session nor a user's lookup an anonymous one, even when both have
/// the same digest; saving, touching or deleting one never reaches the other.
pub async fn anonymous_and_user_sessions_never_mix<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let alices = plain_session(&alice, now);
    let visitors = anonymous_session(now);
    insert_session(&*store, &alices).await;
    insert_session(&*store, &visitors).await;
    assert_eq!(
        session_at(&*store, None, &alices.digest).await,
        None,
        "an anonymous lookup never finds a user's session"
    );
    assert_eq!(
        session_at(&*store, Some(&alice), &visitors.digest).await,
        None,
        "a user's lookup never finds an anonymous session"
    );

    // The same digest under both owners: two records, keyed (owner, digest).
    let mut twin = owned_by(&alices, None);
    twin.data = data(json!({"twin": "anonymous"}));
    assert_eq!(
        store.create_session(&twin, None).await.expect("create_session"),
        Inserted::Created,
        "sessions are keyed (owner, digest): an anonymous session may share a user's session digest"
    );
    assert_kept(&*store, &alices, "creating the anonymous twin leaves the user's session alone").await;
    assert_kept(&*store, &twin, "the anonymous twin reads back as itself").await;

    let mut saved = twin.clone();
    saved.data = data(json!({"twin": "saved"}));
    saved.expires_at = after(twin.expires_at, 60);
    assert!(store.save_session(&saved).await.expect("save_session"), "the anonymous twin can be saved");
    assert_kept(&*store, &alices, "saving the anonymous twin does not reach the user's session").await;
    let touched = after(twin.expires_at, 120);
    assert!(
        store.touch_session(None, &twin.digest, touched).await.expect("touch_session"),
        "the anonymous twin can be touched"
    );
    assert_kept(&*store, &alices, "touching the anonymous twin does not reach the user's session").await;
    assert_kept(
        &*store,
        &SessionRecord { expires_at: touched, ..saved },
        "the anonymous twin holds its own save and touch",
    )
    .await;
    assert!(
        store.delete_session(None, &twin.digest).await.expect("delete_session"),
        "the anonymous twin can be deleted"
    );
    assert_kept(&*store, &alices, "deleting the anonymous twin does not reach the user's session").await;

    let mut hijack = owned_by(&visitors, Some(&alice));
    hijack.data = data(json!({"admin": true}));
    assert!(
        !store.save_session(&hijack).await.expect("save_session"),
        "a user cannot save an anonymous session"
    );
    assert!(
        !store.touch_session(Some(&alice), &visitors.digest, after(now, 9000)).await.expect("touch_session"),
        "a user cannot touch an anonymous session"
    );
    assert!(
        !store.delete_session(Some(&alice), &visitors.digest).await.expect("delete_session"),
        "a user cannot delete an anonymous session"
    );
    assert!(
        !store.touch_session(None, &alices.digest, after(now, 9000)).await.expect("touch_session"),
        "an anonymous touch cannot reach a user's session"
    );
    assert!(
        !store.delete_session(None, &alices.digest).await.expect("delete_session"),
        "an anonymous delete cannot reach a user's session"
    );
    assert_kept(&*store, &visitors, "the user's attempts leave the anonymous session untouched").await;
    assert_kept(&*store, &alices, "the anonymous attempts leave the user's session untouched").await;
}

/// Anonymous sessions are saved (data and expiry only), touched (expiry
/// only, keeping a save's data) and deleted once, and a deleted one is never
/// brought back by a save or a touch.
pub async fn anonymous_session_save_touch_delete<S: Store>(store: Arc<S>) {
    let now = now();
    let session = anonymous_session(now);
    insert_session(&*store, &session).await;

    let mut saved = session.clone();
    saved.data = data(json!({"cart": ["book"]}));
    saved.expires_at = after(session.expires_at, 600);
    let mut tampered = saved.clone();
    tampered.created_at = after(now, -3600);
    assert!(
        store.save_session(&tampered).await.expect("save_session"),
        "saving an anonymous session answers true"
    );
    assert_kept(&*store, &saved, "saving an anonymous session changes data and expires_at only").await;

    let later = after(session.expires_at, 900);
    assert!(
        store.touch_session(None, &session.digest, later).await.expect("touch_session"),
        "touching an anonymous session answers true"
    );
    let touched = SessionRecord { expires_at: later, ..saved.clone() };
    assert_kept(&*store, &touched, "touching an anonymous session keeps the data a save wrote").await;

    assert!(
        store.delete_session(None, &session.digest).await.expect("delete_session"),
        "deleting an anonymous session answers true"
    );
    assert!(
        !store.delete_session(None, &session.digest).await.expect("delete_session"),
        "an anonymous session is deleted only once"
    );
    assert!(
        !store.save_session(&saved).await.expect("save_session"),
        "saving a deleted anonymous session answers false"
    );
    assert!(
        !store.touch_session(None, &session.digest, after(later, 60)).await.expect("touch_session"),
        "touching a deleted anonymous session answers false"
    );
    assert_gone(&*store, &session, "a deleted anonymous session is never resurrected").await;
    let never = anonymous_session(now);
    assert!(
        !store.save_session(&never).await.expect("save_session"),
        "saving an unknown anonymous session answers false"
    );
    assert!(
        !store.touch_session(None, &never.digest, later).await.expect("touch_session"),
        "touching an unknown anonymous session answers false"
    );
    assert_gone(&*store, &never, "neither a save nor a touch creates an anonymous session").await;
}

/// `delete_expired_sessions(now)` cleans anonymous sessions like users':
/// exactly those with `expires_at <= now`, counted together with the users'.
pub async fn anonymous_sessions_cleaned_at_cutoff<S: Store>(store: Arc<S>) {
    let cutoff = after(now(), 86_400);
    let alice = user("alice");
    let mut left = Vec::new();
    let mut doomed = Vec::new();
    for (anonymous, offset, stays) in [
        (true, Duration::seconds(-1), false),
        (true, Duration::ZERO, false),
        (false, Duration::ZERO, false),
        (true, Duration::microseconds(1), true),
        (false, Duration::microseconds(1), true),
        (true, Duration::hours(1), true),
        (false, Duration::seconds(-60), false),
    ] {
        let mut session = if anonymous { anonymous_session(now()) } else { plain_session(&alice, now()) };
        session.expires_at = cutoff + offset;
        insert_session(&*store, &session).await;
        if stays { left.push(session) } else { doomed.push(session) }
    }
    assert_eq!(
        store.delete_expired_sessions(cutoff).await.expect("delete_expired_sessions"),
        4,
        "exactly the 4 sessions (2 anonymous, 2 alice's) expiring at or before the cutoff are counted"
    );
    for session in &left {
        assert_kept(&*store, session, "a session expiring after the cutoff stays, anonymous or not").await;
    }
    for session in &doomed {
        assert_gone(&*store, session, "a session expiring at or before the cutoff is gone, anonymous or not")
            .await;
    }
    assert_eq!(
        store.delete_expired_sessions(cutoff).await.expect("delete_expired_sessions"),
        0,
        "cleaning anonymous sessions is idempotent"
    );
}

/// No user operation touches an anonymous session, not even one sharing a
/// digest with the user's sessions: `delete_login`, `delete_user`,
/// `delete_user_except`, `confirm_password`, `rotate_login` and
/// `delete_expired_logins` leave them exactly as they were, and do not count
/// them.
pub async fn user_operations_never_touch_anonymous_sessions<S: Store>(store: Arc<S>) {
    let now = now();
    let cutoff = after(now, 86_400);
    let alice = user("alice");
    let mut anonymous = Vec::new();
    let mut logins = Vec::new();
    for _ in 0..5 {
        let fresh = fresh_login(&alice, now);
        created(&*store, &fresh).await;
        // An anonymous session with the digest of this login's session.
        let twin = owned_by(&fresh.session, None);
        insert_session(&*store, &twin).await;
        anonymous.push(twin);
        logins.push(fresh);
    }
    let stranger = anonymous_session(now);
    insert_session(&*store, &stranger).await;
    anonymous.push(stranger);

    let (rotation, _, _) = rotation_for(&logins[0], after(now, 1));
    assert_eq!(
        store.rotate_login(&rotation).await.expect("rotate_login"),
        Rotated::Rotated,
        "the rotation rotates"
    );
    let confirmation = Confirmation {
        username: alice.clone(),
        session: logins[1].session.digest,
        login: Some(logins[1].login.serial),
        at: after(now, 2),
    };
    assert!(
        store.confirm_password(&confirmation).await.expect("confirm_password"),
        "alice's session is confirmed"
    );
    assert!(
        store.delete_login(&alice, &logins[1].login.serial).await.expect("delete_login"),
        "alice's login is deleted"
    );
    let keep = Keep { session: logins[2].session.digest, login: Some(logins[2].login.serial) };
    let deleted = store.delete_user_except(&alice, &keep).await.expect("delete_user_except");
    assert_eq!(
        (deleted.logins, deleted.sessions),
        (3, 3),
        "delete_user_except counts alice's three other logins and their three sessions, no anonymous one"
    );
    let mut expiring = fresh_login(&alice, now);
    expiring.login.expires_at = cutoff;
    created(&*store, &expiring).await;
    let twin = owned_by(&expiring.session, None);
    insert_session(&*store, &twin).await;
    anonymous.push(twin);
    let expired = store.delete_expired_logins(cutoff).await.expect("delete_expired_logins");
    assert_eq!(
        expired,
        vec![ExpiredLogin { username: alice.clone(), serial: expiring.login.serial }],
        "cleaning logins reports exactly the expired login"
    );
    let deleted = store.delete_user(&alice).await.expect("delete_user");
    assert_eq!(
        summary(&deleted),
        (1, 1, vec![logins[2].login.serial]),
        "delete_user counts alice's last login and session, no anonymous one"
    );
    for session in &anonymous {
        assert_kept(&*store, session, "no user operation touches an anonymous session").await;
    }
}

// ------------------------------------------ how and when users proved it

/// A session's owner (username, login, method `Password` or `Remembered`,
/// `authenticated_at`) reads back exactly, to the microsecond, and a save or a
/// touch leaves it as it was.
pub async fn session_user_round_trips_at_microseconds<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("zoë.o'brien");
    let mut written = Vec::new();
    for (method, login, micros) in [
        (AuthMethod::Password, None, 1),
        (AuthMethod::Password, Some(tokens().serial()), 999_999),
        (AuthMethod::Remembered, Some(tokens().serial()), 123_457),
        (AuthMethod::Remembered, None, 500_001),
    ] {
        let at = with_micros(after(now, -86_400), micros);
        let mut session = session_of(
            Some(SessionUser { username: alice.clone(), login, method, authenticated_at: at }),
            now,
        );
        session.created_at = with_micros(after(now, -60), 999_999 - micros);
        session.expires_at = with_micros(after(now, 1800), micros);
        insert_session(&*store, &session).await;
        written.push(session);
    }
    for session in &written {
        assert_kept(&*store, session, "a session's method and authenticated_at read back to the microsecond")
            .await;
    }
    let mut saved = written[2].clone();
    saved.data = data(json!({"saved": true}));
    assert!(
        store.save_session(&saved).await.expect("save_session"),
        "saving an existing session answers true"
    );
    let later = with_micros(after(now, 3600), 7);
    assert!(
        store.touch_session(Some(&alice), &saved.digest, later).await.expect("touch_session"),
        "touching an existing session answers true"
    );
    assert_kept(
        &*store,
        &SessionRecord { expires_at: later, ..saved },
        "a save and a touch keep the method and authenticated_at",
    )
    .await;
}

/// A login's `authenticated_at` reads back to the microsecond and survives
/// every rotation unchanged, while the rest of the login follows
/// `apply_rotation`.
pub async fn login_authenticated_at_survives_rotations<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let mut fresh = fresh_login(&alice, now);
    let authenticated_at = with_micros(after(now, -3 * 86_400), 654_321);
    fresh.login.authenticated_at = authenticated_at;
    created(&*store, &fresh).await;
    assert_eq!(
        login_at(&*store, &alice, &fresh.login.serial).await,
        Some(fresh.login.clone()),
        "a login's authenticated_at reads back to the microsecond"
    );
    let mut expected = fresh.login.clone();
    for round in 1..=3 {
        let current =
            Fresh { login: expected.clone(), cookie: fresh.cookie.clone(), session: fresh.session.clone() };
        let (rotation, token, _) = rotation_for(&current, after(now, round * 60));
        assert_eq!(
            store.rotate_login(&rotation).await.expect("rotate_login"),
            Rotated::Rotated,
            "rotation {round} expecting the current digest rotates"
        );
        apply_rotation(&mut expected, &rotation);
        let read = login_at(&*store, &alice, &fresh.login.serial).await.expect("the rotated login exists");
        assert_eq!(read.authenticated_at, authenticated_at, "rotation {round} leaves authenticated_at alone");
        assert_eq!(read, expected, "rotation {round} writes exactly what apply_rotation writes");
        fresh.cookie.token = token;
    }
}

/// A rotation stores its new session exactly as the engine built it
/// (`Remembered`, the login's `authenticated_at`, its creation and expiry to
/// the microsecond, and its data), under the login's user.
pub async fn rotation_stores_session_exactly<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let mut fresh = fresh_login(&alice, now);
    fresh.login.authenticated_at = with_micros(after(now, -86_400), 100_001);
    created(&*store, &fresh).await;
    let (mut rotation, _, id) = rotation_for(&fresh, with_micros(after(now, 60), 424_242));
    let user = rotation.session.user.clone().expect("a rotation opens a user's session");
    assert_eq!(
        (user.method, user.authenticated_at, user.login),
        (AuthMethod::Remembered, fresh.login.authenticated_at, Some(fresh.login.serial)),
        "the protocol builds a Remembered session carrying the login's authenticated_at"
    );
    rotation.session.data = data(json!({"carried": ["by", "the", "engine"]}));
    rotation.session.expires_at = with_micros(after(now, 1800), 3);
    assert_eq!(
        store.rotate_login(&rotation).await.expect("rotate_login"),
        Rotated::Rotated,
        "the rotation rotates"
    );
    assert_eq!(
        session_at(&*store, Some(&alice), &id.digest()).await.as_ref(),
        Some(&rotation.session),
        "the rotation's session is stored exactly as given"
    );
    assert_eq!(
        session_at(&*store, None, &id.digest()).await,
        None,
        "the rotation's session belongs to the user, not to an anonymous visitor"
    );
}

/// `confirm_password` makes the session `Password` with `authenticated_at`
/// the confirmation's, sets the login's `authenticated_at` to it too, and
/// changes nothing else: not the session's data, creation or expiry, not the
/// rest of the login, not any other session or login.
pub async fn confirm_password_updates_session_and_login_only<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let mut this = remembered_login(&alice, now);
    this.session.data = data(json!({"cart": ["book"]}));
    created(&*store, &this).await;
    let other = fresh_login(&alice, now);
    created(&*store, &other).await;
    let plain = plain_session(&alice, after(now, -60));
    insert_session(&*store, &plain).await;
    let bobs = fresh_login(&bob, now);
    created(&*store, &bobs).await;

    let at = with_micros(after(now, 60), 271_828);
    let confirmation = Confirmation {
        username: alice.clone(),
        session: this.session.digest,
        login: Some(this.login.serial),
        at,
    };
    assert!(
        store.confirm_password(&confirmation).await.expect("confirm_password"),
        "confirming a user's own session answers true"
    );
    let mut confirmed = this.session.clone();
    if let Some(owner) = confirmed.user.as_mut() {
        owner.method = AuthMethod::Password;
        owner.authenticated_at = at;
    }
    assert_kept(
        &*store,
        &confirmed,
        "confirm_password sets the session's method and authenticated_at, and nothing else",
    )
    .await;
    let login = Login { authenticated_at: at, ..this.login.clone() };
    assert_eq!(
        login_at(&*store, &alice, &this.login.serial).await,
        Some(login),
        "confirm_password sets the login's authenticated_at, and nothing else"
    );
    assert_eq!(
        login_at(&*store, &alice, &other.login.serial).await,
        Some(other.login.clone()),
        "confirm_password leaves the user's other logins"
    );
    for session in [&other.session, &plain, &bobs.session] {
        assert_kept(&*store, session, "confirm_password leaves every other session").await;
    }
    assert_eq!(
        login_at(&*store, &bob, &bobs.login.serial).await,
        Some(bobs.login.clone()),
        "confirm_password leaves other users' logins"
    );

    // A session opened by no login: only the session changes.
    let later = with_micros(after(now, 120), 5);
    let confirmation =
        Confirmation { username: alice.clone(), session: plain.digest, login: None, at: later };
    assert!(
        store.confirm_password(&confirmation).await.expect("confirm_password"),
        "confirming a session without a login answers true"
    );
    let mut plain_confirmed = plain.clone();
    if let Some(owner) = plain_confirmed.user.as_mut() {
        owner.authenticated_at = later;
    }
    assert_kept(&*store, &plain_confirmed, "confirm_password of a session without a login updates only it")
        .await;
    assert_eq!(
        store
            .list_logins(&alice)
            .await
            .expect("list_logins")
            .into_iter()
            .find(|l| l.authenticated_at == later),
        None,
        "confirming a session without a login touches no login"
    );
}

/// `confirm_password` answers `false` and writes nothing for an unknown
/// session, for another user's session (even naming that user's login), and
/// for an anonymous session.
pub async fn confirm_password_refuses_unknown_foreign_or_anonymous<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let alices = remembered_login(&alice, now);
    created(&*store, &alices).await;
    let visitor = anonymous_session(now);
    insert_session(&*store, &visitor).await;
    let twin = owned_by(&alices.session, None);
    insert_session(&*store, &twin).await;
    let at = with_micros(after(now, 60), 111_111);

    let refused = [
        (alice.clone(), anonymous_session(now).digest, Some(alices.login.serial), "an unknown session"),
        (bob.clone(), alices.session.digest, Some(alices.login.serial), "another user's session"),
        (alice.clone(), visitor.digest, Some(alices.login.serial), "an anonymous session"),
        (alice.clone(), visitor.digest, None, "an anonymous session, naming no login"),
    ];
    for (username, session, login, what) in refused {
        let confirmation = Confirmation { username, session, login, at };
        assert!(
            !store.confirm_password(&confirmation).await.expect("confirm_password"),
            "confirm_password of {what} answers false"
        );
        assert_eq!(
            login_at(&*store, &alice, &alices.login.serial).await.as_ref(),
            Some(&alices.login),
            "confirm_password of {what} writes no login"
        );
        for session in [&alices.session, &visitor, &twin] {
            assert_kept(&*store, session, &format!("confirm_password of {what} writes no session")).await;
        }
    }
}

// ------------------------------------------------ logging out the others

/// `delete_user_except` keeps exactly the given session and login: every
/// other login and session of the user goes, the kept login's other sessions
/// included, counted exactly with the serials reported; other users and
/// anonymous sessions stay.
pub async fn delete_user_except_keeps_exactly_that_session_and_login<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let this = fresh_login(&alice, now);
    created(&*store, &this).await;
    let sibling = opened_by(&alice, this.login.serial, now);
    insert_session(&*store, &sibling).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        let other = fresh_login(&alice, now);
        created(&*store, &other).await;
        others.push(other);
    }
    let bare = fresh_login(&alice, now).login;
    let bare = Login { session: None, ..bare };
    insert_login(&*store, &bare).await;
    let plain = plain_session(&alice, now);
    insert_session(&*store, &plain).await;
    let bobs = fresh_login(&bob, now);
    created(&*store, &bobs).await;
    let visitor = anonymous_session(now);
    insert_session(&*store, &visitor).await;

    let keep = Keep { session: this.session.digest, login: Some(this.login.serial) };
    let deleted = store.delete_user_except(&alice, &keep).await.expect("delete_user_except");
    let mut serials: Vec<_> = others.iter().map(|other| other.login.serial).collect();
    serials.push(bare.serial);
    assert_eq!(
        summary(&deleted),
        (4, 5, sorted(serials)),
        "delete_user_except deletes the 4 other logins and 5 other sessions (the kept login's other \
         session included) and reports exactly their serials"
    );
    assert_eq!(
        store.list_logins(&alice).await.expect("list_logins"),
        vec![this.login.clone()],
        "exactly the kept login is left, unchanged"
    );
    assert_kept(&*store, &this.session, "the kept session is left, unchanged").await;
    assert_gone(&*store, &sibling, "another session of the kept login goes too").await;
    assert_gone(&*store, &plain, "a session opened by no login goes").await;
    for other in &others {
        assert_gone(&*store, &other.session, "the other devices' sessions go").await;
    }
    assert_eq!(
        store.list_logins(&bob).await.expect("list_logins"),
        vec![bobs.login.clone()],
        "another user's logins stay"
    );
    assert_kept(&*store, &bobs.session, "another user's sessions stay").await;
    assert_kept(&*store, &visitor, "anonymous sessions stay").await;
    assert_eq!(
        store.delete_user_except(&alice, &keep).await.expect("delete_user_except"),
        Deleted::default(),
        "a second delete_user_except finds nothing more to delete"
    );
    assert_kept(&*store, &this.session, "a second delete_user_except keeps the session").await;
}

/// `delete_user_except` for a session opened by no login keeps only that
/// session: every login of the user goes, with its serial reported.
pub async fn delete_user_except_keeps_a_session_without_login<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let this = plain_session(&alice, now);
    insert_session(&*store, &this).await;
    let other = plain_session(&alice, now);
    insert_session(&*store, &other).await;
    let mut serials = Vec::new();
    for _ in 0..2 {
        let fresh = fresh_login(&alice, now);
        created(&*store, &fresh).await;
        serials.push(fresh.login.serial);
    }
    let keep = Keep { session: this.digest, login: None };
    let deleted = store.delete_user_except(&alice, &keep).await.expect("delete_user_except");
    assert_eq!(
        summary(&deleted),
        (2, 3, sorted(serials)),
        "keeping a session without a login deletes every login and the 3 other sessions"
    );
    assert!(store.list_logins(&alice).await.expect("list_logins").is_empty(), "no login of the user is left");
    assert_kept(&*store, &this, "the kept session without a login is left, unchanged").await;
    assert_gone(&*store, &other, "the user's other session without a login goes").await;
}

/// `delete_user_except` racing rotations of another device of the same user
/// (20 rounds): the rotation either finds the login gone or has its new
/// session deleted with the rest; no login or session of the other device
/// survives, and this device's are kept.
pub async fn concurrent_logout_others_and_rotation_leave_no_other_device<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let this = fresh_login(&alice, now);
    created(&*store, &this).await;
    let keep = Keep { session: this.session.digest, login: Some(this.login.serial) };
    for round in 0..20 {
        let other = fresh_login(&alice, now);
        created(&*store, &other).await;
        let (rotation, _, id) = rotation_for(&other, after(now, 1));
        let rotate = {
            let store = store.clone();
            tokio::spawn(async move { store.rotate_login(&rotation).await })
        };
        let logout = {
            let (store, alice) = (store.clone(), alice.clone());
            tokio::spawn(async move { store.delete_user_except(&alice, &keep).await })
        };
        let rotated =
            rotate.await.expect("task").expect("a rotation racing delete_user_except must not fail");
        let deleted =
            logout.await.expect("task").expect("delete_user_except racing a rotation must not fail");
        assert!(
            matches!(rotated, Rotated::Rotated | Rotated::NotFound),
            "round {round}: a rotation racing delete_user_except rotates or finds nothing, got {rotated:?}"
        );
        assert_eq!(
            summary(&deleted),
            (1, 1, vec![other.login.serial]),
            "round {round}: delete_user_except deletes exactly the other device's login and its one session"
        );
        assert_eq!(
            login_at(&*store, &alice, &other.login.serial).await,
            None,
            "round {round}: the other device's login survived delete_user_except"
        );
        for digest in [other.session.digest, id.digest()] {
            assert_eq!(
                session_at(&*store, Some(&alice), &digest).await,
                None,
                "round {round}: a session of the other device survived delete_user_except"
            );
        }
        assert_eq!(
            store.list_logins(&alice).await.expect("list_logins"),
            vec![this.login.clone()],
            "round {round}: this device's login is kept, unchanged"
        );
        assert_kept(&*store, &this.session, &format!("round {round}: this device's session is kept")).await;
    }
}

/// `delete_expired_logins` reports exactly the `(username, serial)` of every
/// login it deleted, across users, and nothing else.
pub async fn expired_logins_report_exactly_their_keys<S: Store>(store: Arc<S>) {
    let cutoff = after(now(), 86_400);
    let mut expected = Vec::new();
    for name in ["alice", "bob", "zoë.o'brien", "alice."] {
        let name = user(name);
        for (offset, expires) in [(-3600, true), (0, true), (1, false)] {
            let mut fresh = fresh_login(&name, now());
            fresh.login.expires_at = cutoff + Duration::microseconds(offset);
            created(&*store, &fresh).await;
            if expires {
                expected.push(ExpiredLogin { username: name.clone(), serial: fresh.login.serial });
            }
        }
    }
    let mut reported = store.delete_expired_logins(cutoff).await.expect("delete_expired_logins");
    reported.sort();
    expected.sort();
    assert_eq!(reported, expected, "cleaning reports exactly the keys of the logins it deleted");
    for login in &expected {
        assert_eq!(login_at(&*store, &login.username, &login.serial).await, None, "a reported login is gone");
    }
    assert_eq!(
        store.delete_expired_logins(cutoff).await.expect("delete_expired_logins"),
        Vec::new(),
        "a second pass reports nothing"
    );
}

// ---------------------------------------------------------------- engine

/// Register with "remember me", then the session cookie alone authenticates,
/// with no rotation and no cookie changes.
pub async fn engine_register_and_session_hit<S: Store>(store: Arc<S>) {
    let (clock, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (mut jar, registration) = register(&engine, &alice, true).await;
    let serial = registration.serial.expect("remembered");
    let before = login_at(&*store, &alice, &serial).await;

    clock.advance(Duration::minutes(5));
    let result = visit(&engine, &mut jar).await;
    match &result.outcome {
        Outcome::Session(auth) => assert_eq!(auth.username(), &alice, "the session hit is alice's"),
        other => panic!("a live session cookie must be a session hit, got {other:?}"),
    }
    assert!(result.cookies.is_empty(), "a session hit sets no cookie");
    assert_eq!(login_at(&*store, &alice, &serial).await, before, "no rotation on a session hit");

    let devices = engine.devices(&alice, Some(&registration.session)).await.expect("devices");
    assert_eq!(devices.len(), 1, "one registration with remember makes one device");
    assert!(devices[0].current, "the registering session's login is the current device");
    assert_eq!(devices[0].serial, serial, "the device is the registered login");

    let (mut plain, plain_registration) = register(&engine, &user("bob"), false).await;
    assert_eq!(plain_registration.serial, None, "no serial without remember");
    assert!(
        visit(&engine, &mut plain).await.outcome.authenticated().is_some(),
        "a session without a login authenticates"
    );
    assert!(
        store.list_logins(&user("bob")).await.expect("list_logins").is_empty(),
        "no login without remember"
    );
}

/// Without a session, the auth cookie logs in: the token is rotated, a new
/// session id is issued and the old session no longer works.
pub async fn engine_cookie_login_rotates_and_cycles_session<S: Store>(store: Arc<S>) {
    let (clock, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (jar, _, serial) = remembered(&engine, &alice).await;

    clock.advance(Duration::hours(2));
    let mut browser = jar.clone();
    assert_outcome!(
        visit(&engine, &mut browser).await.outcome,
        Outcome::CookieLogin(_),
        "an idled-out session with the current auth cookie is a cookie login"
    );
    assert_ne!(browser.session, jar.session, "a cookie login issues a new session id");
    assert_ne!(browser.auth, jar.auth, "a cookie login rotates the token");
    let rotated = browser.auth_cookie();
    assert_eq!(rotated.serial, serial, "the serial stays for the life of the login");
    let login = login_at(&*store, &alice, &serial).await.expect("the rotated login exists");
    assert!(login.token.matches(&rotated.token), "the store holds the rotated token");
    assert_eq!(login.last_used_at, engine.now(), "the rotation records when the login was used");

    let old = engine.authenticate(&jar.only_session().presented()).await;
    assert!(old.outcome.authenticated().is_none(), "the old session died: got {:?}", old.outcome);
    assert_outcome!(
        visit(&engine, &mut browser.clone()).await.outcome,
        Outcome::Session(_),
        "the new session works"
    );
}

/// The previous token inside the grace window authenticates without another
/// rotation and hands back exactly the winner's cookies.
pub async fn engine_grace_converges_on_successor<S: Store>(store: Arc<S>) {
    let (clock, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (jar, _, serial) = remembered(&engine, &alice).await;
    clock.advance(Duration::hours(1));
    let stale = jar.without_session();
    let mut winner = stale.clone();
    assert_outcome!(
        visit(&engine, &mut winner).await.outcome,
        Outcome::CookieLogin(_),
        "the first use of the auth cookie rotates"
    );
    let after_rotation = login_at(&*store, &alice, &serial).await;

    clock.advance(Duration::seconds(29));
    let mut loser = stale.clone();
    let result = visit(&engine, &mut loser).await;
    assert_outcome!(result.outcome, Outcome::Grace(_), "previous token in grace");
    assert_eq!(result.outcome.username(), Some(&alice), "grace authenticates the login's user");
    assert_eq!(loser.auth, winner.auth, "the loser gets the winner's token");
    assert_eq!(loser.session, winner.session, "the loser joins the winner's session");
    assert_eq!(login_at(&*store, &alice, &serial).await, after_rotation, "no second rotation in grace");
    assert_outcome!(
        visit(&engine, &mut loser).await.outcome,
        Outcome::Session(_),
        "the successor cookies work as a session hit"
    );
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
    assert_eq!((logins, graces), (1, 49), "50 concurrent cookie logins: one rotation, 49 grace");
    assert_eq!(jars.len(), 1, "every concurrent request ends with the same cookies");
}

/// A replayed token after the grace window: every login and session of that
/// user is deleted, the hook is called, cookies are cleared; other users are
/// untouched.
pub async fn engine_theft_revokes_that_user_only<S: Store>(store: Arc<S>) {
    let (clock, hooks, engine) = heard_engine(&store, config());
    let (alice, bob) = (user("alice"), user("bob"));
    let (victim, registration) = register(&engine, &alice, true).await;
    let stolen = victim.without_session();

    // The other devices log in just before the theft, so their sessions are
    // live when it is detected.
    clock.advance(Duration::hours(1));
    let (mut laptop, laptop_registration) = register(&engine, &alice, true).await;
    let (bobs, _) = register(&engine, &bob, true).await;
    assert_outcome!(
        outcome_of(&engine, &laptop.only_session()).await,
        Outcome::Session(_),
        "the laptop's fresh session is live"
    );
    let mut victim_now = stolen.clone();
    assert_outcome!(
        visit(&engine, &mut victim_now).await.outcome,
        Outcome::CookieLogin(_),
        "the victim's cookie logs in first"
    );
    clock.advance(Duration::seconds(31));
    let mut thief = stolen.clone();
    let result = visit(&engine, &mut thief).await;
    let Outcome::Theft(report) = &result.outcome else {
        panic!("a token replayed after the grace window is theft, got {:?}", result.outcome)
    };
    assert!(result.outcome.theft_detected(), "theft_detected agrees with the outcome");
    assert_eq!(report.username, alice, "the report names the victim");
    let serial = registration.serial.expect("remembered");
    assert_eq!(report.serial, serial, "the report names the replayed login");
    assert_eq!(
        summary(&report.deleted),
        (2, 2, sorted(vec![serial, laptop_registration.serial.expect("remembered")])),
        "theft deletes both of alice's logins and both live sessions, and reports their serials"
    );
    assert_eq!(hooks.reports(), vec![report.clone()], "the theft hook is called once");
    assert_eq!((thief.session.as_ref(), thief.auth.as_ref()), (None, None), "both cookies are cleared");

    assert!(store.list_logins(&alice).await.expect("list_logins").is_empty(), "alice has no login left");
    assert!(
        visit(&engine, &mut victim_now).await.outcome.authenticated().is_none(),
        "the victim is logged out too"
    );
    let laptop_result = visit(&engine, &mut laptop.clone().only_session()).await;
    assert!(laptop_result.outcome.authenticated().is_none(), "every session of the user ends");
    assert_outcome!(
        visit(&engine, &mut laptop.without_session()).await.outcome,
        Outcome::UnknownLogin,
        "every login of the user ends"
    );
    assert_outcome!(
        visit(&engine, &mut laptop).await.outcome,
        Outcome::UnknownLogin,
        "neither cookie of another device works"
    );
    assert_outcome!(
        visit(&engine, &mut bobs.clone()).await.outcome,
        Outcome::Session(_),
        "bob keeps his session"
    );
    assert_outcome!(
        visit(&engine, &mut bobs.without_session()).await.outcome,
        Outcome::CookieLogin(_),
        "bob keeps his login"
    );
}

/// The grace window ends exactly `grace` after the rotation (it is open at
/// that end), and a forged token for a known serial is theft even inside it.
pub async fn engine_theft_after_grace_window<S: Store>(store: Arc<S>) {
    let (clock, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;
    let stolen = jar.without_session();
    clock.advance(Duration::hours(1));
    let mut winner = stolen.clone();
    assert_outcome!(
        visit(&engine, &mut winner).await.outcome,
        Outcome::CookieLogin(_),
        "the first use rotates"
    );

    clock.advance(Duration::seconds(30) - Duration::microseconds(1));
    assert_outcome!(
        visit(&engine, &mut stolen.clone()).await.outcome,
        Outcome::Grace(_),
        "the previous token is accepted in the last µs of grace"
    );

    let forged = AuthCookie { token: tokens().token(), ..stolen.auth_cookie() };
    let forged_jar = Jar { session: None, auth: Some(forged.encode()) };
    let result = visit(&engine, &mut forged_jar.clone()).await;
    assert!(result.outcome.theft_detected(), "a forged token is theft: got {:?}", result.outcome);
    assert_eq!(
        login_at(&*store, &alice, &registration.serial.expect("remembered")).await,
        None,
        "theft deletes the login"
    );

    // Same again, replaying exactly at the end of the window.
    let (jar, _) = register(&engine, &alice, true).await;
    let stolen = jar.without_session();
    clock.advance(Duration::hours(1));
    assert_outcome!(
        visit(&engine, &mut stolen.clone()).await.outcome,
        Outcome::CookieLogin(_),
        "the first use rotates"
    );
    clock.advance(Duration::seconds(30));
    assert!(
        visit(&engine, &mut stolen.clone()).await.outcome.theft_detected(),
        "the grace window ends at 30 s exactly"
    );
}

/// A thief who copied both cookies polls with its own user agent, keeping the
/// victim's session alive; the victim's browser then makes a cookie login,
/// which ends that session. The thief's next request presents the previous
/// token inside the grace window from another user agent than the rotation
/// recorded: theft, not grace. Every login and session of the user ends, the
/// victim's new ones included, and the report names both clients.
pub async fn engine_polling_thief_is_caught_at_the_next_rotation<S: Store>(store: Arc<S>) {
    let (clock, hooks, engine) = heard_engine(&store, config());
    let (alice, bob) = (user("alice"), user("bob"));
    let (victim, registration) = register(&engine, &alice, true).await;
    let (laptop, laptop_registration) = register(&engine, &alice, true).await;
    let (bobs, _) = register(&engine, &bob, true).await;
    let victim_client = client_at([198, 51, 100, 7], "Mozilla/5.0 (victim)");
    let thief_client = client_at([203, 0, 113, 66], "curl/8.5 (thief)");

    let mut thief = victim.clone();
    for _ in 0..3 {
        clock.advance(Duration::minutes(5));
        assert_outcome!(
            visit_from(&engine, &mut thief, &thief_client).await.outcome,
            Outcome::Session(_),
            "the thief's copy of the session cookie is a session hit while the session lives"
        );
    }
    let mut restarted = victim.without_session();
    assert_outcome!(
        visit_from(&engine, &mut restarted, &victim_client).await.outcome,
        Outcome::CookieLogin(_),
        "the victim's browser, its session cookie lost, makes a cookie login"
    );
    clock.advance(Duration::seconds(3));
    let result = visit_from(&engine, &mut thief, &thief_client).await;
    let Outcome::Theft(report) = &result.outcome else {
        panic!(
            "the thief's next poll (the previous token, another user agent) must be theft, got {:?}",
            result.outcome
        )
    };
    let serials = sorted(vec![
        registration.serial.expect("remembered"),
        laptop_registration.serial.expect("remembered"),
    ]);
    assert_eq!(
        (report.cause, &report.client, &report.recorded),
        (TheftCause::ForeignClient, &thief_client, &victim_client),
        "the report names the presenter and the client the rotation recorded"
    );
    assert_eq!(
        summary(&report.deleted),
        (2, 2, serials),
        "theft deletes both of alice's logins and both live sessions (the victim's new one included)"
    );
    assert_eq!(hooks.reports(), vec![report.clone()], "the theft hook is called once");
    assert!(hooks.refusals().is_empty(), "a theft is no refused grace");
    assert_eq!(
        (thief.session.as_ref(), thief.auth.as_ref()),
        (None, None),
        "the thief's cookies are cleared"
    );
    assert!(
        visit_from(&engine, &mut restarted.clone(), &victim_client).await.outcome.authenticated().is_none(),
        "the victim's new session ended with the theft"
    );
    assert_outcome!(
        visit_from(&engine, &mut restarted.without_session(), &victim_client).await.outcome,
        Outcome::UnknownLogin,
        "the victim's rotated login ended with the theft"
    );
    assert_outcome!(
        visit(&engine, &mut laptop.without_session()).await.outcome,
        Outcome::UnknownLogin,
        "every other login of the user ended too"
    );
    assert_outcome!(visit(&engine, &mut bobs.clone()).await.outcome, Outcome::Session(_), "bob is untouched");
}

/// The previous token inside the grace window, from the rotation's user
/// agent but another network, gets no grace and revokes nothing: both
/// cookies cleared, the hook told, the login and the winner's session kept.
/// From the rotation's own /24 it converges; with `GraceBinding::UserAgent`
/// the network does not matter, and with `Off` nothing does.
pub async fn engine_grace_from_another_network_is_refused_without_revoking<S: Store>(store: Arc<S>) {
    let (clock, hooks, engine) = heard_engine(&store, config());
    let alice = user("alice");
    let wifi = client_at([192, 0, 2, 10], "Phone/1");
    let mobile = client_at([198, 51, 100, 20], "Phone/1");
    let (stale, winner, serial) = rotated_once(&engine, &clock, &alice, &wifi).await;
    let rotated = login_at(&*store, &alice, &serial).await;

    clock.advance(Duration::seconds(2));
    let mut moved = stale.clone();
    let result = visit_from(&engine, &mut moved, &mobile).await;
    let Outcome::GraceRefused(refusal) = &result.outcome else {
        panic!("the previous token from another network must be refused grace, got {:?}", result.outcome)
    };
    assert_eq!(
        (&refusal.username, refusal.serial, &refusal.client, &refusal.recorded),
        (&alice, serial, &mobile, &wifi),
        "the refusal names the login, the presenter and the client the rotation recorded"
    );
    assert!(result.outcome.authenticated().is_none(), "a refused grace authenticates nobody");
    assert_eq!((moved.session.as_ref(), moved.auth.as_ref()), (None, None), "both cookies are cleared");
    assert_eq!(hooks.refusals(), vec![refusal.clone()], "the refusal hook is called once");
    assert!(hooks.reports().is_empty() && hooks.ended().is_empty(), "nothing is revoked");
    assert_eq!(login_at(&*store, &alice, &serial).await, rotated, "the login is left exactly as rotated");
    engine.logout(&presented_from(&stale, &mobile)).await.expect("logout");
    assert_eq!(
        login_at(&*store, &alice, &serial).await,
        rotated,
        "a logout presenting the previous token from another network proves nothing and ends no login"
    );
    assert_outcome!(
        visit_from(&engine, &mut winner.clone(), &wifi).await.outcome,
        Outcome::Session(_),
        "the winner's session still works"
    );

    let mut same_network = stale.clone();
    let result = visit_from(&engine, &mut same_network, &client_at([192, 0, 2, 99], "Phone/1")).await;
    assert_outcome!(result.outcome, Outcome::Grace(_), "the rotation's /24 and user agent get grace");
    assert_eq!(
        (&same_network.session, &same_network.auth),
        (&winner.session, &winner.auth),
        "and converge on the winner's cookies"
    );

    for binding in [GraceBinding::UserAgent, GraceBinding::Off] {
        let (clock, engine) = engine_over(&store, config_with(|c| c.grace_binding(binding)));
        let (stale, _, _) = rotated_once(&engine, &clock, &alice, &wifi).await;
        clock.advance(Duration::seconds(2));
        // UserAgent ignores the network; Off ignores the user agent too.
        let presenter = if binding == GraceBinding::Off {
            client_at([203, 0, 113, 1], "Other/2")
        } else {
            mobile.clone()
        };
        assert_outcome!(
            visit_from(&engine, &mut stale.clone(), &presenter).await.outcome,
            Outcome::Grace(_),
            "{binding:?}: grace for {presenter:?}"
        );
    }
}

/// When the winning rotation's session is gone, a grace request opens a
/// fresh session bound to the login, and the login's next rotation ends it.
pub async fn engine_grace_fallback_session_ends_at_the_next_rotation<S: Store>(store: Arc<S>) {
    let (clock, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (stale, winner, serial) = rotated_once(&engine, &clock, &alice, &ClientMeta::default()).await;
    let won = winner.session_cookie().id.digest();
    assert!(
        engine.delete_session(Some(&alice), &won).await.expect("delete_session"),
        "the winner's session is deleted"
    );

    clock.advance(Duration::seconds(2));
    let mut late = stale.clone();
    let result = visit(&engine, &mut late).await;
    let Outcome::Grace(fallback) = &result.outcome else {
        panic!("the previous token in grace authenticates, got {:?}", result.outcome)
    };
    let fallback = fallback.session().clone();
    assert_ne!(fallback.digest, won, "the fallback is a fresh session");
    assert_eq!(late.auth, winner.auth, "the late request still gets the winner's token");
    assert_eq!(fallback.login(), Some(serial), "the fallback session is opened by the login");
    assert_kept(&*store, &fallback, "the fallback session is stored").await;
    let login = login_at(&*store, &alice, &serial).await.expect("the login exists");
    assert_eq!(login.session, Some(fallback.digest), "the fallback session is bound to the login");

    clock.advance(Duration::minutes(1));
    assert_outcome!(
        visit(&engine, &mut winner.without_session()).await.outcome,
        Outcome::CookieLogin(_),
        "the current token rotates again"
    );
    assert_gone(&*store, &fallback, "the login's next rotation ends the fallback session").await;
    assert!(
        visit(&engine, &mut late.only_session()).await.outcome.authenticated().is_none(),
        "the fallback session's cookie no longer works"
    );
}

/// A cookie naming another user (with a valid serial and token of someone
/// else) never authenticates and revokes nothing; nor does a session cookie
/// under another username.
pub async fn engine_foreign_username_never_authenticates<S: Store>(store: Arc<S>) {
    let (clock, engine) = engine_over(&store, config());
    let (alice, mallory) = (user("alice"), user("mallory"));
    let (jar, registration) = register(&engine, &alice, true).await;

    let forged_auth = AuthCookie { username: mallory.clone(), ..jar.auth_cookie() };
    assert_outcome!(
        engine
            .authenticate(&Jar { session: None, auth: Some(forged_auth.encode()) }.presented())
            .await
            .outcome,
        Outcome::UnknownLogin,
        "an auth cookie under another username is an unknown login"
    );
    let forged_session = SessionCookie { username: Some(mallory), ..jar.session_cookie() };
    assert_outcome!(
        engine
            .authenticate(&Jar { session: Some(forged_session.encode()), auth: None }.presented())
            .await
            .outcome,
        Outcome::Anonymous,
        "a session cookie under another username finds nothing"
    );

    let serial = registration.serial.expect("remembered");
    assert!(login_at(&*store, &alice, &serial).await.is_some(), "alice's login is untouched");
    clock.advance(Duration::hours(1));
    assert_outcome!(
        visit(&engine, &mut jar.without_session()).await.outcome,
        Outcome::CookieLogin(_),
        "alice's own cookie still logs in"
    );
}

/// A login unused for longer than the cookie max age is refused and deleted.
pub async fn engine_expired_login_is_deleted<S: Store>(store: Arc<S>) {
    let clock = clock();
    let config = config();
    let engine = engine(store.clone(), &clock, config.clone());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;
    clock.advance(span(config.cookie_max_age()));
    let mut browser = jar.without_session();
    assert_outcome!(
        visit(&engine, &mut browser).await.outcome,
        Outcome::ExpiredLogin,
        "a login unused for the cookie max age is expired"
    );
    assert_eq!(browser.auth, None, "the expired login's auth cookie is cleared");
    let serial = registration.serial.expect("remembered");
    assert_eq!(login_at(&*store, &alice, &serial).await, None, "the expired login is deleted");
}

/// Logging out ends this device's session and login and no other device's.
pub async fn engine_logout_ends_this_device_only<S: Store>(store: Arc<S>) {
    let (_, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (phone, _) = register(&engine, &alice, true).await;
    let (laptop, laptop_registration) = register(&engine, &alice, true).await;

    let cleared = engine.logout(&phone.presented()).await.expect("logout");
    let mut after_logout = phone.clone();
    after_logout.apply(&cleared);
    assert_eq!((after_logout.session, after_logout.auth), (None, None), "logout clears both cookies");
    assert!(
        outcome_of(&engine, &phone.only_session()).await.authenticated().is_none(),
        "the logged-out session no longer authenticates"
    );
    assert_outcome!(
        outcome_of(&engine, &phone.without_session()).await,
        Outcome::UnknownLogin,
        "the logged-out login no longer exists"
    );
    assert_eq!(
        serials_of(&*store, &alice).await,
        vec![laptop_registration.serial.expect("remembered")],
        "logout leaves exactly the other device's login"
    );
    assert_outcome!(outcome_of(&engine, &laptop).await, Outcome::Session(_), "the other device stays");
}

/// Revoking another device's login ends its session at once (remote logout).
pub async fn engine_remote_logout_ends_session_at_once<S: Store>(store: Arc<S>) {
    let (_, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (phone, phone_registration) = register(&engine, &alice, true).await;
    let (laptop, laptop_registration) = register(&engine, &alice, true).await;
    let devices = engine.devices(&alice, Some(&laptop_registration.session)).await.expect("devices");
    assert_eq!(devices.len(), 2, "two registrations with remember make two devices");
    let phone_serial = phone_registration.serial.expect("remembered");
    assert!(
        devices.iter().any(|d| d.serial == phone_serial && !d.current),
        "the phone is listed and is not the laptop's current device"
    );

    assert!(engine.revoke(&alice, &phone_serial).await.expect("revoke"), "revoking a device answers true");
    let result = engine.authenticate(&phone.presented()).await;
    assert!(
        result.outcome.authenticated().is_none(),
        "the revoked device is out at once: {:?}",
        result.outcome
    );
    assert!(
        !engine.revoke(&user("bob"), &laptop_registration.serial.expect("s")).await.expect("revoke"),
        "another user cannot revoke alice's device"
    );
    assert_outcome!(outcome_of(&engine, &laptop).await, Outcome::Session(_), "the laptop stays");
    assert_eq!(
        serials_of(&*store, &alice).await,
        vec![laptop_registration.serial.expect("s")],
        "only the laptop's login is left"
    );
}

/// Logging out everywhere deletes every login and session of the user.
pub async fn engine_logout_everywhere<S: Store>(store: Arc<S>) {
    let (_, engine) = engine_over(&store, config());
    let alice = user("alice");
    let mut jars = Vec::new();
    let mut serials = Vec::new();
    for remember in [true, true, false] {
        let (jar, registration) = register(&engine, &alice, remember).await;
        jars.push(jar);
        serials.extend(registration.serial);
    }
    let (bobs, _) = register(&engine, &user("bob"), true).await;
    let deleted = engine.logout_everywhere(&alice).await.expect("logout_everywhere");
    assert_eq!(
        summary(&deleted),
        (2, 3, sorted(serials)),
        "logout everywhere deletes alice's 2 logins and 3 sessions and reports their serials"
    );
    for jar in &jars {
        assert!(
            outcome_of(&engine, jar).await.authenticated().is_none(),
            "no device of alice authenticates after logging out everywhere"
        );
    }
    assert_outcome!(outcome_of(&engine, &bobs).await, Outcome::Session(_), "bob stays logged in");
    assert!(store.list_logins(&alice).await.expect("list_logins").is_empty(), "alice has no login left");
}

/// Over the per-user cap, registering evicts the least recently used login.
pub async fn engine_login_cap_evicts_least_recently_used<S: Store>(store: Arc<S>) {
    let clock = clock();
    let config = config_with(|c| c.max_logins_per_user(std::num::NonZeroUsize::new(3)));
    let engine = engine(store.clone(), &clock, config);
    let alice = user("alice");
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(register(&engine, &alice, true).await);
        clock.advance(Duration::minutes(1));
    }
    // The first device is used again, so the second is now the least recent.
    clock.advance(Duration::hours(1));
    assert_outcome!(
        visit(&engine, &mut devices[0].0.without_session()).await.outcome,
        Outcome::CookieLogin(_),
        "the first device logs in"
    );
    let (_, newest) = register(&engine, &alice, true).await;

    let expected = sorted(
        [&devices[0].1, &devices[2].1, &newest].iter().map(|r| r.serial.expect("remembered")).collect(),
    );
    assert_eq!(serials_of(&*store, &alice).await, expected, "the least recently used login is evicted");
}

/// Over `max_sessions_per_user`, opening a session ends the user's least
/// recently used one (a session used again moves to the back), of a device
/// without "remember me" or with; cycling the least recently used session
/// at the cap keeps the user logged in; a visitor's session is never
/// counted.
pub async fn engine_session_cap_evicts_least_recently_used<S: Store>(store: Arc<S>) {
    let clock = clock();
    let config = config_with(|c| c.max_sessions_per_user(std::num::NonZeroUsize::new(3)));
    let engine = engine(store.clone(), &clock, config);
    let alice = user("alice");
    let (visitor_jar, _) = visitor(&engine, data(json!({"cart": []}))).await;
    // Whether a session is still stored (read from the store: a visit would
    // touch it and change the order).
    let live = |session: SessionRecord| {
        let store = store.clone();
        async move { stored(&*store, &session).await.is_some() }
    };
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(register(&engine, &alice, false).await);
        clock.advance(Duration::minutes(1));
    }
    // Past a quarter of the idle timeout: a visit pushes the first
    // session's expiry out, so the second is now the least recently used.
    clock.advance(Duration::minutes(10));
    let first = visit(&engine, &mut devices[0].0).await;
    assert_outcome!(first.outcome, Outcome::Session(_), "the first session is live");
    clock.advance(Duration::minutes(1));
    let (_, fourth) = register(&engine, &alice, false).await;
    assert!(!live(devices[1].1.session.clone()).await, "over the cap, the least recently used session ends");
    for (session, which) in [
        (&devices[0].1.session, "the first, used again"),
        (&devices[2].1.session, "the third"),
        (&fourth.session, "the new"),
    ] {
        assert!(live(session.clone()).await, "{which} session stays at the cap");
    }
    assert_outcome!(
        outcome_of(&engine, &devices[1].0).await,
        Outcome::Anonymous,
        "the evicted session's cookie no longer authenticates"
    );

    clock.advance(Duration::minutes(1));
    let (remembered_jar, registration, serial) = remembered(&engine, &alice).await;
    assert!(
        !live(devices[2].1.session.clone()).await,
        "a remembered login's session evicts the least recently used one too"
    );
    assert_eq!(serials_of(&*store, &alice).await, vec![serial], "the remembered login exists");

    clock.advance(Duration::minutes(1));
    let session = stored(&*store, &devices[0].1.session).await.expect("the first session is still stored");
    let (cycled, cookie) = engine
        .cycle_session(&session)
        .await
        .expect("cycle_session")
        .expect("cycling the least recently used session at the cap answers the new one");
    assert_kept(&*store, &cycled, "the cycled session is stored").await;
    for (session, which) in [(&fourth.session, "the fourth"), (&registration.session, "the remembered")] {
        assert!(live(session.clone()).await, "cycling at the cap ends no other session: {which} stays");
    }
    let mut cycled_jar = Jar::default();
    cycled_jar.apply(&[cookie]);
    assert_outcome!(
        outcome_of(&engine, &cycled_jar).await,
        Outcome::Session(_),
        "the cycled session is live"
    );
    assert_outcome!(
        outcome_of(&engine, &remembered_jar).await,
        Outcome::Session(_),
        "the remembered device is logged in"
    );
    assert_outcome!(
        outcome_of(&engine, &visitor_jar).await,
        Outcome::AnonymousSession(_),
        "a visitor's session is neither counted nor evicted"
    );
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

    clock.advance(span(config.session_idle_timeout()));
    let cleaned = engine.clean().await.expect("clean");
    assert_eq!((cleaned.logins, cleaned.sessions), (0, 2), "both sessions idled out; the login lives");
    let mut alice_now = alice_jar.clone();
    assert_outcome!(
        visit(&engine, &mut alice_now).await.outcome,
        Outcome::CookieLogin(_),
        "the live login logs in after its session was cleaned"
    );

    clock.advance(span(config.cookie_max_age()));
    let cleaned = engine.clean().await.expect("clean");
    // The login's session went with the login, so no session was left to
    // expire on its own.
    assert_eq!(
        (cleaned.logins, cleaned.sessions),
        (1, 0),
        "the expired login is cleaned and takes its session with it"
    );
    assert!(store.list_logins(&alice).await.expect("list_logins").is_empty(), "the expired login is gone");
    let session = alice_now.session_cookie();
    assert_eq!(
        session_at(&*store, Some(&alice), &session.id.digest()).await,
        None,
        "the session opened by the cleaned login is gone"
    );
}

/// While the store is down every request fails closed with no cookie change;
/// once it is back, the same cookies work: nothing was lost or rotated.
pub async fn engine_store_outage_fails_closed<S: Store>(store: Arc<S>) {
    let clock = clock();
    let flaky = Arc::new(Flaky::new(store.clone()));
    let engine = engine(flaky.clone(), &clock, config());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;

    flaky.set_down(true);
    for presented in [jar.clone(), jar.without_session(), jar.only_session()] {
        let result = engine.authenticate(&presented.presented()).await;
        assert_outcome!(result.outcome, Outcome::Unavailable(_), "an outage answers Unavailable");
        assert!(result.cookies.is_empty(), "fail closed without touching cookies");
    }
    assert!(engine.register(&alice, true, &jar.presented()).await.is_err(), "register fails in an outage");
    assert!(engine.logout(&jar.presented()).await.is_err(), "logout fails in an outage");
    assert!(engine.devices(&alice, None).await.is_err(), "devices fails in an outage");
    assert!(engine.logout_others(&registration.session).await.is_err(), "logout_others fails in an outage");
    assert!(
        engine.confirm_password(&registration.session).await.is_err(),
        "confirm_password fails in an outage"
    );
    assert!(
        engine.create_anonymous(SessionData::new()).await.is_err(),
        "create_anonymous fails in an outage"
    );

    flaky.set_down(false);
    assert_outcome!(outcome_of(&engine, &jar).await, Outcome::Session(_), "the session survived the outage");
    clock.advance(Duration::hours(1));
    assert_outcome!(
        outcome_of(&engine, &jar.without_session()).await,
        Outcome::CookieLogin(_),
        "the same auth cookie still works"
    );
    assert_eq!(store.list_logins(&alice).await.expect("list_logins").len(), 1, "nothing lost in the outage");
}

// ------------------------------------------------ engine: the new flows

/// An anonymous visitor's session is a session hit of its own kind; a
/// password login from it carries its data into the new session under a new
/// id, and the anonymous record is gone.
pub async fn engine_register_carries_anonymous_data<S: Store>(store: Arc<S>) {
    let (clock, hooks, engine) = heard_engine(&store, config());
    let alice = user("alice");
    let cart = data(json!({"cart": ["book", {"sku": "pen", "qty": 2}]}));
    let (mut jar, anonymous) = visitor(&engine, cart.clone()).await;
    assert_kept(&*store, &anonymous, "create_anonymous stores the visitor's session").await;

    clock.advance(Duration::minutes(5));
    let result = visit(&engine, &mut jar).await;
    match &result.outcome {
        Outcome::AnonymousSession(session) => {
            assert_eq!(session.data, cart, "the anonymous session hit carries the visitor's data")
        }
        other => panic!("a live anonymous session cookie is an anonymous session hit, got {other:?}"),
    }
    assert!(result.outcome.authenticated().is_none(), "an anonymous session authenticates nobody");

    let (logged_in, registration) = register_from(&engine, &alice, true, &jar).await;
    assert_eq!(registration.session.data, cart, "register carries the anonymous session's data");
    assert_ne!(registration.session.digest, anonymous.digest, "register opens the session under a new id");
    assert_ne!(logged_in.session, jar.session, "register sets a new session cookie");
    assert_kept(&*store, &registration.session, "the carried session is stored as registered").await;
    assert_gone(&*store, &anonymous, "register deletes the anonymous record").await;
    assert_eq!(
        session_at(&*store, Some(&alice), &anonymous.digest).await,
        None,
        "the anonymous id does not become alice's"
    );
    assert_outcome!(
        outcome_of(&engine, &jar).await,
        Outcome::Anonymous,
        "the old anonymous cookie finds nothing after register"
    );
    let result = engine.authenticate(&logged_in.presented()).await;
    match &result.outcome {
        Outcome::Session(auth) => assert_eq!(auth.session().data, cart, "the new session holds the data"),
        other => panic!("the registered session is a session hit, got {other:?}"),
    }
    let sign_ins = hooks.sign_ins();
    assert_eq!(
        sign_ins.iter().map(|event| (&event.username, event.serial, event.at)).collect::<Vec<_>>(),
        vec![(&alice, registration.serial, engine.now())],
        "on_sign_in is called once for the password login, with its new serial"
    );
}

/// Logging out ends the session with its data: the record is gone, a save
/// does not bring it back, and a new login on that device starts empty. An
/// anonymous visitor's logout ends its session too.
pub async fn engine_logout_ends_session_data<S: Store>(store: Arc<S>) {
    let (_, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;
    let mut session = registration.session.clone();
    session.data = data(json!({"draft": "Dear Bob,"}));
    assert!(engine.save_session(&mut session).await.expect("save_session"), "a live session saves");
    assert_kept(&*store, &session, "the saved data is stored").await;

    let cleared = engine.logout(&jar.presented()).await.expect("logout");
    let mut after_logout = jar.clone();
    after_logout.apply(&cleared);
    assert_eq!((&after_logout.session, &after_logout.auth), (&None, &None), "logout clears both cookies");
    assert_gone(&*store, &session, "logout deletes the session and its data").await;
    assert!(
        !engine.save_session(&mut session.clone()).await.expect("save_session"),
        "saving a logged-out session answers false"
    );
    assert_gone(&*store, &session, "saving a logged-out session does not bring it back").await;
    let result = engine.authenticate(&jar.presented()).await;
    assert!(
        result.outcome.session().is_none(),
        "the logged-out cookies open no session: {:?}",
        result.outcome
    );
    let (_, again) = register_from(&engine, &alice, false, &jar).await;
    assert_eq!(again.session.data, SessionData::new(), "a new login after logout starts with no data");

    let (visitor_jar, anonymous) = visitor(&engine, data(json!({"cart": ["book"]}))).await;
    let cleared = engine.logout(&visitor_jar.presented()).await.expect("logout");
    let mut visitor_after = visitor_jar.clone();
    visitor_after.apply(&cleared);
    assert_eq!(visitor_after.session, None, "an anonymous logout clears the session cookie");
    assert_gone(&*store, &anonymous, "an anonymous logout deletes the visitor's session and its data").await;
}

/// A cookie login opens a `Remembered` session carrying the registration's
/// `authenticated_at`; confirming the password makes it `Password` with a new
/// `authenticated_at` on the session and the login, which the next cookie
/// login carries.
pub async fn engine_cookie_login_is_remembered_until_password_confirmed<S: Store>(store: Arc<S>) {
    let (clock, engine) = engine_over(&store, config());
    let alice = user("alice");
    let registered_at = engine.now();
    let (jar, _, serial) = remembered(&engine, &alice).await;

    clock.advance(Duration::hours(2));
    let mut browser = jar.clone();
    let result = visit(&engine, &mut browser).await;
    let Outcome::CookieLogin(auth) = result.outcome else {
        panic!("the auth cookie logs in once the session idled out, got {:?}", result.outcome)
    };
    assert_eq!(
        (auth.user().method, auth.user().authenticated_at, auth.user().login),
        (AuthMethod::Remembered, registered_at, Some(serial)),
        "a cookie login opens a Remembered session carrying the registration's authenticated_at"
    );
    assert_kept(&*store, auth.session(), "the cookie login's session is stored as answered").await;
    let login = login_at(&*store, &alice, &serial).await.expect("the login exists");
    assert_eq!(login.authenticated_at, registered_at, "a rotation leaves the login's authenticated_at");

    clock.advance(Duration::minutes(1));
    let confirmed_at = engine.now();
    let confirmed = engine
        .confirm_password(auth.session())
        .await
        .expect("confirm_password")
        .expect("confirming a live session answers it");
    let owner = confirmed.user.clone().expect("a user's session");
    assert_eq!(
        (owner.method, owner.authenticated_at, owner.login),
        (AuthMethod::Password, confirmed_at, Some(serial)),
        "confirm_password makes the session Password, authenticated now"
    );
    assert_kept(&*store, &confirmed, "the confirmed session is stored as answered").await;
    let login = login_at(&*store, &alice, &serial).await.expect("the login exists");
    assert_eq!(login.authenticated_at, confirmed_at, "confirm_password sets the login's authenticated_at");
    let devices = engine.devices(&alice, Some(&confirmed)).await.expect("devices");
    assert_eq!(
        devices.iter().map(|d| (d.serial, d.authenticated_at, d.current)).collect::<Vec<_>>(),
        vec![(serial, confirmed_at, true)],
        "the devices list shows the confirmed authenticated_at"
    );
    let result = visit(&engine, &mut browser).await;
    match &result.outcome {
        Outcome::Session(auth) => {
            assert_eq!(auth.user().method, AuthMethod::Password, "the confirmed session hits as Password")
        }
        other => panic!("the confirmed session is a session hit, got {other:?}"),
    }

    clock.advance(Duration::hours(2));
    let result = visit(&engine, &mut browser).await;
    let Outcome::CookieLogin(auth) = result.outcome else {
        panic!("the rotated auth cookie logs in again, got {:?}", result.outcome)
    };
    assert_eq!(
        (auth.user().method, auth.user().authenticated_at),
        (AuthMethod::Remembered, confirmed_at),
        "the next cookie login is Remembered again, carrying the confirmed authenticated_at"
    );
    let anonymous = anonymous_session(engine.now());
    assert_eq!(
        engine.confirm_password(&anonymous).await.expect("confirm_password"),
        None,
        "an anonymous session cannot be confirmed"
    );
}

/// The absolute session timeout ends a session however active it is: its
/// expiry never passes `created_at` + the absolute timeout, and at that
/// instant it no longer authenticates; the auth cookie then opens a new one.
pub async fn engine_absolute_timeout_ends_active_session<S: Store>(store: Arc<S>) {
    let clock = clock();
    let config = config_with(|c| c.session_absolute_timeout(std::time::Duration::from_secs(2 * 3600)));
    let engine = engine(store.clone(), &clock, config.clone());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;
    let deadline = registration.session.created_at + span(config.session_absolute_timeout());
    let session_only = jar.only_session();
    for minute in (10..=110).step_by(10) {
        clock.advance(Duration::minutes(10));
        assert_outcome!(
            outcome_of(&engine, &session_only).await,
            Outcome::Session(_),
            "minute {minute}: an active session lives until the absolute timeout"
        );
        let stored = stored(&*store, &registration.session).await.expect("the active session is stored");
        assert!(
            stored.expires_at <= deadline,
            "minute {minute}: a touch never pushes expires_at past created_at + the absolute timeout"
        );
    }
    clock.set(deadline - Duration::microseconds(1));
    assert_outcome!(
        outcome_of(&engine, &session_only).await,
        Outcome::Session(_),
        "the session lives until the last µs before the absolute timeout"
    );
    clock.set(deadline);
    let mut browser = session_only.clone();
    assert_outcome!(
        visit(&engine, &mut browser).await.outcome,
        Outcome::Anonymous,
        "at the absolute timeout the session no longer authenticates"
    );
    assert_eq!(browser.session, None, "the timed-out session cookie is cleared");

    let mut browser = jar.clone();
    let result = visit(&engine, &mut browser).await;
    let Outcome::CookieLogin(auth) = result.outcome else {
        panic!("after the absolute timeout the auth cookie opens a new session, got {:?}", result.outcome)
    };
    assert_eq!(auth.session().created_at, deadline, "the new session's absolute timeout counts from now");
}

/// The login lifetime ends a login however often it is used: used every day,
/// it still expires at its `created_at` + the lifetime, is refused and
/// deleted then, and the hooks hear that it expired.
pub async fn engine_login_lifetime_ends_a_login_used_daily<S: Store>(store: Arc<S>) {
    let clock = clock();
    let hooks = Recorder::default();
    let config = config_with(|c| c.login_lifetime(std::time::Duration::from_secs(10 * 86_400)));
    let engine = engine(store.clone(), &clock, config.clone()).with_hooks(hooks.clone());
    let alice = user("alice");
    let (mut browser, registration) = register(&engine, &alice, true).await;
    let serial = registration.serial.expect("remembered");
    let created_at = login_at(&*store, &alice, &serial).await.expect("the login exists").created_at;
    let end = created_at + span(config.login_lifetime());
    for day in 1..10 {
        clock.advance(Duration::days(1));
        assert_outcome!(
            visit(&engine, &mut browser).await.outcome,
            Outcome::CookieLogin(_),
            "day {day}: a login used daily logs in within its lifetime"
        );
        let login = login_at(&*store, &alice, &serial).await.expect("the login exists");
        assert_eq!(
            (login.created_at, login.expires_at),
            (created_at, end),
            "day {day}: a rotation keeps created_at and never pushes expires_at past the lifetime"
        );
    }
    clock.advance(Duration::days(1));
    assert_eq!(engine.now(), end, "the test stands at the end of the lifetime");
    assert_outcome!(
        visit(&engine, &mut browser).await.outcome,
        Outcome::ExpiredLogin,
        "at the end of its lifetime the login is expired, however recently used"
    );
    assert_eq!((&browser.session, &browser.auth), (&None, &None), "the expired login's cookies are cleared");
    assert_eq!(login_at(&*store, &alice, &serial).await, None, "the login past its lifetime is deleted");
    let ended = hooks.ended();
    assert_eq!(
        ended.iter().map(|e| (&e.username, e.serials.clone(), e.cause)).collect::<Vec<_>>(),
        vec![(&alice, vec![serial], EndCause::Expired)],
        "on_logins_ended hears that the login expired"
    );
}

/// Logging out the other devices keeps this session and its login and ends
/// every other login and session of the user (the hooks hear which), and
/// nobody else's.
pub async fn engine_logout_others_keeps_this_device<S: Store>(store: Arc<S>) {
    let (clock, hooks, engine) = heard_engine(&store, config());
    let (alice, bob) = (user("alice"), user("bob"));
    let (phone, phone_registration) = register(&engine, &alice, true).await;
    let (laptop, laptop_registration) = register(&engine, &alice, true).await;
    let (tablet, _) = register(&engine, &alice, false).await;
    let (bobs, _) = register(&engine, &bob, true).await;
    let (visitor_jar, _) = visitor(&engine, data(json!({"cart": ["book"]}))).await;
    let phone_serial = phone_registration.serial.expect("remembered");
    let laptop_serial = laptop_registration.serial.expect("remembered");

    let deleted = engine.logout_others(&phone_registration.session).await.expect("logout_others");
    assert_eq!(
        summary(&deleted),
        (1, 2, vec![laptop_serial]),
        "logout_others deletes the laptop's login and the laptop's and tablet's sessions"
    );
    assert_eq!(
        hooks.ended().iter().map(|e| (&e.username, e.serials.clone(), e.cause)).collect::<Vec<_>>(),
        vec![(&alice, vec![laptop_serial], EndCause::LogoutOthers)],
        "on_logins_ended hears which logins logout_others ended"
    );
    assert_outcome!(outcome_of(&engine, &phone).await, Outcome::Session(_), "this device stays logged in");
    assert_eq!(serials_of(&*store, &alice).await, vec![phone_serial], "exactly this device's login is left");
    assert_outcome!(
        outcome_of(&engine, &laptop).await,
        Outcome::UnknownLogin,
        "the other device's session and login are gone"
    );
    assert_outcome!(
        outcome_of(&engine, &tablet).await,
        Outcome::Anonymous,
        "another device's session without a login is gone"
    );
    assert_outcome!(outcome_of(&engine, &bobs).await, Outcome::Session(_), "another user stays logged in");
    assert_outcome!(
        outcome_of(&engine, &visitor_jar).await,
        Outcome::AnonymousSession(_),
        "an anonymous visitor's session stays"
    );

    clock.advance(Duration::hours(2));
    let result = visit(&engine, &mut phone.without_session()).await;
    assert_outcome!(result.outcome, Outcome::CookieLogin(_), "this device's login still logs in");
    let Some(session) = result.outcome.session() else { panic!("a cookie login has a session") };
    let deleted = engine.logout_others(session).await.expect("logout_others");
    assert_eq!(deleted, Deleted::default(), "with no other device left, logout_others deletes nothing");
    let anonymous = anonymous_session(engine.now());
    assert_eq!(
        engine.logout_others(&anonymous).await.expect("logout_others"),
        Deleted::default(),
        "an anonymous session has no other devices to log out"
    );
}

/// A session cookie in the anonymous form carrying a user's session id never
/// authenticates (nor finds an anonymous session), and a user's form
/// carrying an anonymous session's id finds nothing either; both real
/// sessions stay.
pub async fn engine_anonymous_cookie_never_authenticates_user_session<S: Store>(store: Arc<S>) {
    let (_, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, false).await;
    let (visitor_jar, anonymous) = visitor(&engine, data(json!({"cart": ["book"]}))).await;

    let forged = SessionCookie { username: None, id: jar.session_cookie().id };
    let mut forged_jar = Jar { session: Some(forged.encode()), auth: None };
    assert_outcome!(
        visit(&engine, &mut forged_jar).await.outcome,
        Outcome::Anonymous,
        "an anonymous-form cookie with a user's session id opens no session"
    );
    assert_eq!(forged_jar.session, None, "the forged anonymous-form cookie is cleared");

    let forged = SessionCookie { username: Some(alice.clone()), id: visitor_jar.session_cookie().id };
    assert_outcome!(
        engine.authenticate(&Jar { session: Some(forged.encode()), auth: None }.presented()).await.outcome,
        Outcome::Anonymous,
        "a user-form cookie with an anonymous session's id opens no session"
    );

    assert_kept(&*store, &registration.session, "alice's session is untouched by the forgeries").await;
    assert_kept(&*store, &anonymous, "the visitor's session is untouched by the forgeries").await;
    assert_outcome!(outcome_of(&engine, &jar).await, Outcome::Session(_), "alice's own cookie still works");
    assert_outcome!(
        outcome_of(&engine, &visitor_jar).await,
        Outcome::AnonymousSession(_),
        "the visitor's own cookie still works"
    );
}

/// Cycling a session gives it a new id and keeps its owner, data and
/// creation time; the old id stops working at once. Anonymous sessions cycle
/// the same way.
pub async fn engine_cycle_session_keeps_owner_data_and_creation<S: Store>(store: Arc<S>) {
    let (clock, engine) = engine_over(&store, config());
    let alice = user("alice");
    let (jar, registration) = register(&engine, &alice, true).await;
    let mut session = registration.session.clone();
    session.data = data(json!({"step": 2}));
    assert!(engine.save_session(&mut session).await.expect("save_session"), "a live session saves");
    let (visitor_jar, anonymous) = visitor(&engine, data(json!({"cart": ["book"]}))).await;

    clock.advance(Duration::minutes(10));
    for (old, old_jar) in [(&session, &jar), (&anonymous, &visitor_jar)] {
        let kind = if old.user.is_some() { "a user's session" } else { "an anonymous session" };
        let (next, cookie) = engine
            .cycle_session(old)
            .await
            .expect("cycle_session")
            .expect("cycling a live session answers the new one");
        assert_ne!(next.digest, old.digest, "cycling {kind} gives it a new id");
        assert_eq!(
            (&next.user, &next.data, next.created_at),
            (&old.user, &old.data, old.created_at),
            "cycling {kind} keeps its owner, data and creation time"
        );
        assert_kept(&*store, &next, &format!("the cycled {kind} is stored as answered")).await;
        assert_gone(&*store, old, &format!("the old id of {kind} is deleted")).await;
        let result = engine.authenticate(&old_jar.only_session().presented()).await;
        assert!(
            result.outcome.session().is_none(),
            "the old id of {kind} stops working: {:?}",
            result.outcome
        );
        let mut new_jar = Jar::default();
        new_jar.apply(&[cookie]);
        let result = engine.authenticate(&new_jar.presented()).await;
        assert_eq!(
            result.outcome.session().map(|s| &s.data),
            Some(&old.data),
            "the new id of {kind} opens the same data"
        );
    }
    assert_eq!(
        engine.cycle_session(&session).await.expect("cycle_session").map(|(s, _)| s),
        None,
        "cycling a session that is gone answers nothing"
    );
}

// ------------------------------------------------- optimistic rotation

/// The optimistic rotation of `fresh`'s presented token at `at`, with a
/// fresh successor and session id.
fn current_for(fresh: &Fresh, at: expected_core::time::OffsetDateTime) -> CurrentRotation {
    let tokens = tokens();
    let (attempt, _) = protocol::current_rotation(
        &fresh.cookie,
        tokens.token(),
        &tokens.session_id(),
        ClientMeta::new(Some([198, 51, 100, 4].into()), Some("Optimist/1.0")),
        at,
        &config(),
    )
    .expect("the bounds of a rotation now fit the calendar");
    attempt
}

/// `rotate_current` of the current token rotates, exactly as `rotate_login`
/// of the rotation planned from the login would: the login written as
/// `apply_rotation` writes it, the new session stored exactly (carrying the
/// login's `authenticated_at`, read from the row, not the placeholder), the
/// login's bound session and every session it opened deleted, the user's
/// other sessions kept; the answer is the login's `authenticated_at`.
pub async fn rotate_current_rotates_a_current_token<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let mut fresh = fresh_login(&alice, now);
    // Entered its password an hour before, to the microsecond: not `now`,
    // which is the placeholder the attempt carries.
    fresh.login.authenticated_at = with_micros(after(now, -3600), 654_321);
    created(&*store, &fresh).await;
    let opened = opened_by(&alice, fresh.login.serial, now);
    insert_session(&*store, &opened).await;
    let unrelated = plain_session(&alice, now);
    insert_session(&*store, &unrelated).await;

    let attempt = current_for(&fresh, after(now, 60));
    assert_ne!(
        attempt.rotation.session.user.as_ref().map(|u| u.authenticated_at),
        Some(fresh.login.authenticated_at)
    );
    let answer = store.rotate_current(&attempt).await.expect("rotate_current");
    assert_eq!(
        answer,
        CurrentRotated::Rotated { authenticated_at: fresh.login.authenticated_at },
        "an attempt on the current token of a live login whose lifetime does not bind rotates, \
         answering the login's authenticated_at"
    );
    let rotation = attempt.for_login(&fresh.login);
    let mut expected = fresh.login.clone();
    apply_rotation(&mut expected, &rotation);
    assert_eq!(
        login_at(&*store, &alice, &fresh.login.serial).await,
        Some(expected),
        "the rotated login must be exactly what apply_rotation writes"
    );
    assert_eq!(
        stored(&*store, &rotation.session).await,
        Some(rotation.session.clone()),
        "the new session must be stored exactly, with the login's authenticated_at"
    );
    assert_gone(&*store, &fresh.session, "the old bound session must be deleted").await;
    assert_gone(&*store, &opened, "a session the login opened must be deleted").await;
    assert_kept(&*store, &unrelated, "other sessions of the user stay").await;
}

/// `rotate_current` on a login whose times carry nanoseconds (a store given
/// them by a clock that does not truncate, as the engine's does, to the
/// microsecond) still rotates a current token: however the store compares
/// the bounds, a precision it was handed must not turn every cookie login
/// into the two-step path. (The Redis script once refused any time with
/// more than six fractional digits.)
pub async fn rotate_current_takes_nanosecond_times<S: Store>(store: Arc<S>) {
    use expected_core::time::OffsetDateTime;
    let now = now();
    let alice = user("alice");
    let mut fresh = fresh_login(&alice, now);
    let nanos = |at: OffsetDateTime| at.replace_nanosecond(123_456_789).expect("a nanosecond of the second");
    fresh.login.created_at = nanos(now - Duration::days(1));
    fresh.login.last_used_at = fresh.login.created_at;
    fresh.login.authenticated_at = fresh.login.created_at;
    fresh.login.expires_at = nanos(now + Duration::days(30));
    created(&*store, &fresh).await;
    let attempt = current_for(&fresh, nanos(after(now, 60)));
    let answer = store.rotate_current(&attempt).await.expect("rotate_current");
    assert!(
        matches!(answer, CurrentRotated::Rotated { .. }),
        "a current token of a live login with nanosecond times must rotate: {answer:?}"
    );
}

/// What `rotate_current` must not rotate, each answering `NotApplied` with
/// the login as stored and writing nothing: a token that is no longer
/// current, a login that does not exist (or is another user's), a login that
/// has expired at the attempt's `now` (`now == expires_at`), and a login
/// whose lifetime cap binds (created one microsecond before
/// `created_since`). A login created exactly at `created_since` rotates.
pub async fn rotate_current_leaves_what_does_not_apply<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");

    // Stale: the token was rotated away.
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    let (first, _, _) = rotation_for(&fresh, after(now, 1));
    assert_eq!(store.rotate_login(&first).await.expect("rotate_login"), Rotated::Rotated);
    let rotated = login_at(&*store, &alice, &fresh.login.serial).await;
    let stale = current_for(&fresh, after(now, 2));
    let answer = store.rotate_current(&stale).await.expect("rotate_current");
    assert_eq!(
        answer,
        CurrentRotated::NotApplied(rotated.clone()),
        "a stale token answers the login as stored"
    );
    assert_eq!(login_at(&*store, &alice, &fresh.login.serial).await, rotated, "and changes nothing");
    assert_gone(&*store, &stale.rotation.session, "a refused attempt creates no session").await;
    assert_kept(&*store, &first.session, "a refused attempt keeps the bound session").await;

    // Unknown, and another user's serial.
    let nobody = fresh_login(&alice, now);
    let unknown = current_for(&nobody, after(now, 2));
    assert_eq!(
        store.rotate_current(&unknown).await.expect("rotate_current"),
        CurrentRotated::NotApplied(None),
        "no such login answers NotApplied(None)"
    );
    assert_gone(&*store, &unknown.rotation.session, "an unknown login gets no session").await;
    let mut foreign = fresh_login(&alice, now);
    created(&*store, &foreign).await;
    foreign.cookie.username = user("bob");
    let theirs = current_for(&foreign, after(now, 2));
    assert_eq!(
        store.rotate_current(&theirs).await.expect("rotate_current"),
        CurrentRotated::NotApplied(None),
        "another user's serial is no login of this user"
    );
    assert_gone(&*store, &theirs.rotation.session, "nor does another user's").await;

    // Expired at the attempt's time: live means now < expires_at.
    let mut expiring = fresh_login(&alice, now);
    expiring.login.expires_at = with_micros(after(now, 3600), 250);
    created(&*store, &expiring).await;
    let late = current_for(&expiring, expiring.login.expires_at);
    assert_eq!(
        store.rotate_current(&late).await.expect("rotate_current"),
        CurrentRotated::NotApplied(Some(expiring.login.clone())),
        "a login expiring at the attempt's now is expired: not rotated, answered as stored"
    );
    assert_gone(&*store, &late.rotation.session, "an expired login gets no session").await;
    let just_live = current_for(&expiring, expiring.login.expires_at - Duration::microseconds(1));

    // The lifetime cap binds one microsecond before the bound, not at it.
    let attempt_at = after(now, 5);
    let bound = current_for(&fresh, attempt_at).created_since;
    let mut capped = fresh_login(&alice, now);
    capped.login.created_at = bound - Duration::microseconds(1);
    created(&*store, &capped).await;
    let binding = current_for(&capped, attempt_at);
    assert_eq!(binding.created_since, bound);
    assert_eq!(
        store.rotate_current(&binding).await.expect("rotate_current"),
        CurrentRotated::NotApplied(Some(capped.login.clone())),
        "a login whose lifetime cap binds is answered as stored, for the engine to plan the capped expiry"
    );
    assert_gone(&*store, &binding.rotation.session, "a refused attempt creates no session").await;
    let mut at_bound = fresh_login(&alice, now);
    at_bound.login.created_at = bound;
    created(&*store, &at_bound).await;
    let applies = current_for(&at_bound, attempt_at);
    assert!(
        matches!(
            store.rotate_current(&applies).await.expect("rotate_current"),
            CurrentRotated::Rotated { .. }
        ),
        "a login created exactly at created_since rotates (its cap is exactly now + max age)"
    );
    assert!(
        matches!(
            store.rotate_current(&just_live).await.expect("rotate_current"),
            CurrentRotated::Rotated { .. }
        ),
        "a login one microsecond before its expiry is live and rotates"
    );
}

/// `rotate_current` whose new session's digest exists answers
/// `SessionExists` and writes nothing.
pub async fn rotate_current_refuses_existing_session<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    let attempt = current_for(&fresh, after(now, 1));
    let squatter = owned_by(&attempt.rotation.session, Some(&alice));
    insert_session(&*store, &squatter).await;
    assert_eq!(
        store.rotate_current(&attempt).await.expect("rotate_current"),
        CurrentRotated::SessionExists,
        "an attempt whose session digest is taken answers SessionExists"
    );
    assert_eq!(
        login_at(&*store, &alice, &fresh.login.serial).await,
        Some(fresh.login.clone()),
        "and does not rotate"
    );
    assert_eq!(stored(&*store, &squatter).await, Some(squatter.clone()), "nor overwrite the session");
    assert_kept(&*store, &fresh.session, "nor delete the bound session").await;
}

/// 40 concurrent `rotate_current`s of one cookie and 10 `rotate_login`s
/// expecting the same digest: exactly one rotates; every losing attempt
/// answers the login as it found it, which no longer has the presented
/// token; only the winner's session exists.
pub async fn concurrent_current_rotations_have_one_winner<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let fresh = fresh_login(&alice, now);
    created(&*store, &fresh).await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let store = store.clone();
        if n % 5 == 4 {
            let (rotation, _, _) = rotation_for(&fresh, after(now, 1));
            tasks.push(tokio::spawn(async move {
                let rotated = store.rotate_login(&rotation).await.expect("a racing rotation must not fail");
                let won = match rotated {
                    Rotated::Rotated => true,
                    Rotated::NotCurrent => false,
                    other => panic!("a losing rotation must answer NotCurrent, got {other:?}"),
                };
                (won, rotation.token, rotation.session)
            }));
        } else {
            let attempt = current_for(&fresh, after(now, 1));
            tasks.push(tokio::spawn(async move {
                let answer = store
                    .rotate_current(&attempt)
                    .await
                    .expect("a racing attempt must not fail (no deadlock)");
                let won = match answer {
                    CurrentRotated::Rotated { .. } => true,
                    CurrentRotated::NotApplied(Some(login)) => {
                        assert!(
                            !attempt.applies_to(&login),
                            "a losing attempt answers the login it could not rotate, not a stale read"
                        );
                        false
                    }
                    other => panic!("a losing attempt must answer NotApplied(Some(login)), got {other:?}"),
                };
                (won, attempt.rotation.token, attempt.rotation.session)
            }));
        }
    }
    let mut winners = Vec::new();
    let mut sessions = Vec::new();
    for task in tasks {
        let (won, token, session) = task.await.expect("task");
        if won {
            winners.push(token);
        }
        sessions.push(session);
    }
    assert_eq!(winners.len(), 1, "exactly one of 50 concurrent rotations of one token wins");
    let login = login_at(&*store, &alice, &fresh.login.serial).await.expect("the rotated login exists");
    assert_eq!(login.token, winners[0], "the login holds the winner's token");
    let mut live = 0;
    for session in &sessions {
        if stored(&*store, session).await.is_some() {
            live += 1;
            assert_eq!(login.session, Some(session.digest), "the only new session is the bound one");
        }
    }
    assert_eq!(live, 1, "only the winner's session is created");
}

/// `create_remembered` creates a login and its session together, both
/// reading back exactly; asked, it answers the user's other logins exactly
/// as stored (not the new one, not another user's), and not asked, none.
/// The session is the login's: it ends with it.
pub async fn create_remembered_creates_login_and_session<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let earlier = fresh_login(&alice, now);
    created(&*store, &earlier).await;
    created(&*store, &fresh_login(&bob, now)).await;

    let fresh = fresh_login(&alice, after(now, 1));
    let answer = store.create_remembered(&fresh.login, &fresh.session, None, true).await;
    assert_eq!(
        answer.expect("create_remembered"),
        Remembered::Created { others: Some(vec![earlier.login.clone()]) },
        "asked, create_remembered answers the user's other logins as stored, and only those"
    );
    assert_eq!(
        login_at(&*store, &alice, &fresh.login.serial).await,
        Some(fresh.login.clone()),
        "the login is created"
    );
    assert_kept(&*store, &fresh.session, "its session is created with it").await;
    assert_kept(&*store, &earlier.session, "the user's other sessions stay").await;

    let second = fresh_login(&alice, after(now, 2));
    let answer = store.create_remembered(&second.login, &second.session, None, false).await;
    assert_eq!(
        answer.expect("create_remembered"),
        Remembered::Created { others: None },
        "not asked, create_remembered answers no logins"
    );
    assert_eq!(login_at(&*store, &alice, &second.login.serial).await, Some(second.login.clone()), "created");
    assert_kept(&*store, &second.session, "with its session").await;

    let carol = user("carol");
    let first = fresh_login(&carol, now);
    let answer = store.create_remembered(&first.login, &first.session, None, true).await;
    assert_eq!(
        answer.expect("create_remembered"),
        Remembered::Created { others: Some(Vec::new()) },
        "a user's first login has no others"
    );
    assert!(store.delete_login(&alice, &fresh.login.serial).await.expect("delete_login"), "the login exists");
    assert_gone(&*store, &fresh.session, "the session created with a login ends with it").await;
    assert_kept(&*store, &second.session, "and no other").await;
}

/// `create_remembered` refuses a taken serial (`LoginExists`) or a taken
/// session digest (`SessionExists`), writing nothing: neither record, nor
/// the deletions of the session cap.
pub async fn create_remembered_refuses_taken_serial_or_session<S: Store>(store: Arc<S>) {
    let now = now();
    let alice = user("alice");
    let existing = fresh_login(&alice, now);
    created(&*store, &existing).await;
    let early = expiring(&alice, None, now, 1);
    insert_session(&*store, &early).await;

    // The same serial, a new session and token.
    let mut twin = fresh_login(&alice, after(now, 1));
    twin.login.serial = existing.login.serial;
    let user = protocol::password_user(&alice, Some(existing.login.serial), after(now, 1));
    twin.session.user = Some(user);
    twin.login.session = Some(twin.session.digest);
    let answer = store.create_remembered(&twin.login, &twin.session, cap(1), true).await;
    assert_eq!(answer.expect("create_remembered"), Remembered::LoginExists, "a taken serial is refused");
    assert_eq!(
        login_at(&*store, &alice, &existing.login.serial).await,
        Some(existing.login.clone()),
        "not overwritten"
    );
    assert_gone(&*store, &twin.session, "a refused login creates no session").await;
    assert_kept(&*store, &early, "nor deletes one over the cap").await;
    assert_kept(&*store, &existing.session, "nor deletes one over the cap").await;

    // A new serial, a taken session digest.
    let fresh = fresh_login(&alice, after(now, 2));
    let squatter = owned_by(&fresh.session, Some(&alice));
    insert_session(&*store, &squatter).await;
    let answer = store.create_remembered(&fresh.login, &fresh.session, cap(1), true).await;
    assert_eq!(
        answer.expect("create_remembered"),
        Remembered::SessionExists,
        "a taken session digest is refused"
    );
    assert_eq!(login_at(&*store, &alice, &fresh.login.serial).await, None, "no login without its session");
    assert_kept(&*store, &squatter, "the taken session is not overwritten").await;
    assert_kept(&*store, &early, "nor any deleted over the cap").await;
    assert_eq!(
        serials_of(&*store, &alice).await,
        vec![existing.login.serial],
        "the user's logins are as they were"
    );
}

/// `create_remembered` refuses, with an error and writing nothing, a session
/// that is not the one the login opens: another user's, an anonymous
/// visitor's, or the user's own when the two do not name each other. Filed
/// under the login's user, another user's session would read back as
/// corrupt or be counted against (and ended with) the wrong logins.
pub async fn create_remembered_refuses_a_session_it_does_not_open<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let fresh = fresh_login(&alice, now);
    let serial = fresh.login.serial;

    let bobs = owned_by(&fresh.session, Some(&bob));
    let anonymous = owned_by(&fresh.session, None);
    let mut unbound = fresh.session.clone();
    unbound.user = Some(protocol::password_user(&alice, None, now));
    let mut elsewhere = fresh.login.clone();
    elsewhere.session = Some(anonymous_session(now).digest);
    for (login, session, what) in [
        (&fresh.login, &bobs, "another user's session"),
        (&fresh.login, &anonymous, "an anonymous session"),
        (&fresh.login, &unbound, "a session the login did not open"),
        (&elsewhere, &fresh.session, "a login bound to another session"),
    ] {
        let answer = store.create_remembered(login, session, None, true).await;
        assert!(answer.is_err(), "create_remembered refuses {what}, answered {answer:?}");
        assert_eq!(login_at(&*store, &alice, &serial).await, None, "refused, {what} creates no login");
        for owner in [Some(&alice), Some(&bob), None] {
            assert_eq!(
                session_at(&*store, owner, &fresh.session.digest).await,
                None,
                "refused, {what} creates no session under any owner"
            );
        }
    }
    assert!(serials_of(&*store, &alice).await.is_empty(), "the user has no login");
}

/// `create_remembered` caps the user's sessions as `create_session` does:
/// over `max_sessions`, the sessions that expire first go, never the new
/// one; another user's sessions and anonymous ones are not counted.
pub async fn create_remembered_caps_sessions_per_user<S: Store>(store: Arc<S>) {
    let now = now();
    let (alice, bob) = (user("alice"), user("bob"));
    let (first, middle, late) =
        (expiring(&alice, None, now, 10), expiring(&alice, None, now, 20), expiring(&alice, None, now, 40));
    let bobs = expiring(&bob, None, now, 1);
    let visitor = anonymous_session(now);
    for session in [&late, &first, &middle, &bobs, &visitor] {
        insert_session(&*store, session).await;
    }
    let mut fresh = fresh_login(&alice, now);
    // The new session expires before all others: it stays all the same.
    fresh.session.expires_at = now + Duration::minutes(5);
    let answer = store.create_remembered(&fresh.login, &fresh.session, cap(3), false).await;
    assert_eq!(
        answer.expect("create_remembered"),
        Remembered::Created { others: None },
        "created under the cap"
    );
    assert_kept(&*store, &fresh.session, "the session being created is never deleted over the cap").await;
    assert_gone(&*store, &first, "over the cap, the user's session that expires first is deleted").await;
    for (session, what) in [(&middle, "the second earliest"), (&late, "the latest")] {
        assert_kept(&*store, session, &format!("at the cap, {what} of the user's sessions stays")).await;
    }
    assert_kept(&*store, &bobs, "another user's session is not counted").await;
    assert_kept(&*store, &visitor, "an anonymous session is not counted").await;

    let another = fresh_login(&alice, after(now, 1));
    let answer = store.create_remembered(&another.login, &another.session, None, false).await;
    assert_eq!(answer.expect("create_remembered"), Remembered::Created { others: None }, "created");
    for session in [&fresh.session, &middle, &late, &another.session] {
        assert_kept(&*store, session, "without a cap no session is deleted").await;
    }
}
