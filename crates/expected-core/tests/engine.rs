//! Engine behaviour beyond the store conformance suite: malformed input,
//! hooks, sliding sessions, session cycling, the cleaner, the `http` glue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use expected_core::credential::CookieError;
use expected_core::store::StoreErrorKind;
use expected_core::time::Duration;
use expected_core::{
    AuthCookie, ChaChaTokens, Clock, Config, CookieKind, Expected, Hooks, ManualClock, Outcome, Presented,
    SessionCookie, SetCookie, Store, StoreError, TokenSource, Username,
};
use expected_store_memory::MemoryStore;

type Engine = Expected<Arc<MemoryStore>>;

fn user(name: &str) -> Username {
    Username::new(name).unwrap_or_else(|e| panic!("{e}"))
}

fn setup() -> (Engine, Arc<MemoryStore>, ManualClock) {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::starting_now();
    let config = Config::builder().secure(false).build().unwrap_or_else(|e| panic!("{e}"));
    let engine = Expected::new(store.clone(), config)
        .with_clock(clock.clone())
        .with_tokens(ChaChaTokens::from_seed([7; 32]));
    (engine, store, clock)
}

#[derive(Debug, Clone, Default)]
struct Jar {
    session: Option<String>,
    auth: Option<String>,
}

impl Jar {
    fn presented(&self) -> Presented<'_> {
        Presented {
            session: self.session.as_deref().into(),
            auth: self.auth.as_deref().into(),
            ..Presented::default()
        }
    }
    fn apply(&mut self, cookies: &[SetCookie]) {
        for cookie in cookies {
            let value = (!cookie.is_removal()).then(|| cookie.value().to_owned());
            match cookie.kind() {
                CookieKind::Session => self.session = value,
                CookieKind::Auth => self.auth = value,
            }
        }
    }
    fn auth_only(&self) -> Self {
        Self { session: None, auth: self.auth.clone() }
    }
}

async fn register(engine: &Engine, name: &str, remember: bool) -> Jar {
    let registration = engine.register(&user(name), remember, &Presented::default()).await;
    let mut jar = Jar::default();
    jar.apply(&registration.unwrap_or_else(|e| panic!("register: {e}")).cookies);
    jar
}

async fn login_count(store: &MemoryStore, name: &str) -> usize {
    store.list_logins(&user(name)).await.map(|l| l.len()).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn malformed_auth_cookies_are_typed_cleared_and_change_nothing() {
    let (engine, store, _) = setup();
    let jar = register(&engine, "alice", true).await;
    let good = jar.auth.clone().unwrap_or_default();
    let oversize = "A".repeat(5000);
    let wrong_parts = format!("{good}.extra");
    type Check = fn(&CookieError) -> bool;
    let cases: [(&str, Check); 4] = [
        (&oversize, |e| matches!(e, CookieError::Oversize(5000))),
        (&wrong_parts, |e| matches!(e, CookieError::WrongPartCount { .. })),
        ("3.YWxpY2U.AAAA.AAAA", |e| matches!(e, CookieError::UnsupportedVersion)),
        ("1.%%%.AAAA.AAAA", |e| matches!(e, CookieError::BadEncoding(_))),
    ];
    for (value, expected) in cases {
        let result = engine.authenticate(&Presented { auth: value.into(), ..Presented::default() }).await;
        match &result.outcome {
            Outcome::Malformed(CookieKind::Auth, error) => assert!(expected(error), "{value:.40}: {error:?}"),
            other => panic!("{value:.40}: expected Malformed, got {other:?}"),
        }
        assert_eq!(result.cookies.len(), 1);
        assert!(result.cookies[0].is_removal() && result.cookies[0].kind() == CookieKind::Auth);
    }
    assert_eq!(login_count(&store, "alice").await, 1, "malformed cookies change nothing");
    let after = engine.authenticate(&jar.auth_only().presented()).await;
    assert!(matches!(after.outcome, Outcome::CookieLogin(_)), "the real cookie still works");
}

#[tokio::test]
async fn malformed_session_cookie_falls_through_to_the_auth_cookie() {
    let (engine, _, _) = setup();
    let jar = register(&engine, "alice", true).await;
    let garbage = Presented { session: "not-a-session".into(), ..Presented::default() };
    let result = engine.authenticate(&garbage).await;
    assert!(matches!(result.outcome, Outcome::Malformed(CookieKind::Session, _)), "{:?}", result.outcome);
    assert!(result.cookies.iter().all(|c| c.is_removal() && c.kind() == CookieKind::Session));

    let with_auth = Presented {
        session: "not-a-session".into(),
        auth: jar.auth.as_deref().into(),
        ..Presented::default()
    };
    let result = engine.authenticate(&with_auth).await;
    assert!(matches!(result.outcome, Outcome::CookieLogin(_)), "{:?}", result.outcome);
    let kinds: Vec<_> = result.cookies.iter().map(|c| (c.kind(), c.is_removal())).collect();
    assert_eq!(kinds, vec![(CookieKind::Session, false), (CookieKind::Auth, false)], "replaced, not cleared");
}

#[tokio::test]
async fn no_cookies_is_anonymous_with_no_cookie_changes() {
    let (engine, _, _) = setup();
    let result = engine.authenticate(&Presented::default()).await;
    assert!(matches!(result.outcome, Outcome::Anonymous));
    assert!(result.cookies.is_empty());
}

struct Directory {
    valid: AtomicBool,
    reachable: AtomicBool,
}

#[async_trait]
impl Hooks for Directory {
    async fn is_user_valid(&self, _: &Username) -> Result<bool, StoreError> {
        if !self.reachable.load(Ordering::SeqCst) {
            return Err(StoreError::new(StoreErrorKind::Unavailable, "directory down"));
        }
        Ok(self.valid.load(Ordering::SeqCst))
    }
}

#[tokio::test]
async fn user_validity_hook_drops_disabled_accounts_and_fails_closed() {
    let (engine, store, clock) = setup();
    let directory = Arc::new(Directory { valid: AtomicBool::new(true), reachable: AtomicBool::new(true) });
    let engine = engine.with_hooks(directory.clone());
    let jar = register(&engine, "alice", true).await;
    clock.advance(Duration::hours(1));

    directory.reachable.store(false, Ordering::SeqCst);
    let result = engine.authenticate(&jar.auth_only().presented()).await;
    assert!(matches!(result.outcome, Outcome::Unavailable(_)), "{:?}", result.outcome);
    assert!(result.cookies.is_empty());
    assert_eq!(login_count(&store, "alice").await, 1);

    directory.reachable.store(true, Ordering::SeqCst);
    directory.valid.store(false, Ordering::SeqCst);
    let result = engine.authenticate(&jar.auth_only().presented()).await;
    assert!(matches!(&result.outcome, Outcome::UserRejected(name) if name.as_str() == "alice"));
    assert!(result.cookies.iter().all(SetCookie::is_removal));
    assert_eq!(login_count(&store, "alice").await, 0, "a disabled account's logins are dropped");
}

#[tokio::test]
async fn sessions_slide_with_few_writes_and_die_when_idle() {
    let (engine, store, clock) = setup();
    let jar = register(&engine, "alice", false).await;
    let cookie =
        SessionCookie::parse(jar.session.as_deref().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let stored = || async {
        store.get_session(Some(&user("alice")), &cookie.id.digest()).await.unwrap_or_else(|e| panic!("{e}"))
    };
    let first_expiry = stored().await.map(|s| s.expires_at);

    clock.advance(Duration::minutes(5));
    assert!(matches!(engine.authenticate(&jar.presented()).await.outcome, Outcome::Session(_)));
    assert_eq!(stored().await.map(|s| s.expires_at), first_expiry, "no write in the first quarter");

    clock.advance(Duration::minutes(5));
    assert!(matches!(engine.authenticate(&jar.presented()).await.outcome, Outcome::Session(_)));
    let touched = stored().await.map(|s| s.expires_at);
    assert_eq!(touched, Some(engine.now() + Duration::minutes(30)), "touched after a quarter");

    // Used every 20 minutes, it outlives its first expiry by far.
    for _ in 0..6 {
        clock.advance(Duration::minutes(20));
        assert!(matches!(engine.authenticate(&jar.presented()).await.outcome, Outcome::Session(_)));
    }
    clock.advance(Duration::minutes(30));
    let result = engine.authenticate(&jar.presented()).await;
    assert!(matches!(result.outcome, Outcome::Anonymous), "idle for the whole timeout: {:?}", result.outcome);
    assert!(result.cookies.iter().all(|c| c.is_removal() && c.kind() == CookieKind::Session));
}

#[tokio::test]
async fn session_data_saves_and_never_resurrects_after_remote_logout() {
    let (engine, _, _) = setup();
    let jar = register(&engine, "alice", true).await;
    let result = engine.authenticate(&jar.presented()).await;
    let mut session =
        result.outcome.into_authenticated().map(|a| a.into_session()).unwrap_or_else(|| panic!("hit"));
    session.data.insert("theme".into(), serde_json::json!("dark"));
    assert!(engine.save_session(&mut session).await.unwrap_or_else(|e| panic!("{e}")));
    let again = engine.authenticate(&jar.presented()).await;
    let data = again.outcome.into_authenticated().map(|a| a.into_session().data).unwrap_or_default();
    assert_eq!(data.get("theme"), Some(&serde_json::json!("dark")));

    let serial = session.login().unwrap_or_else(|| panic!("remembered"));
    assert!(engine.revoke(&user("alice"), &serial).await.unwrap_or_else(|e| panic!("{e}")));
    assert!(!engine.save_session(&mut session).await.unwrap_or_else(|e| panic!("{e}")), "no resurrection");
    assert!(engine.authenticate(&jar.presented()).await.outcome.authenticated().is_none());
}

#[tokio::test]
async fn register_cycles_a_fixated_session_and_replaces_this_devices_login() {
    let (engine, store, _) = setup();
    let old = register(&engine, "alice", true).await;
    // Logging in again on the same device: the old session and login end.
    let registration = engine.register(&user("alice"), true, &old.presented()).await;
    let mut jar = Jar::default();
    jar.apply(&registration.unwrap_or_else(|e| panic!("{e}")).cookies);
    assert_ne!(jar.session, old.session, "a new session id on every login (no fixation)");
    assert!(engine.authenticate(&old.presented()).await.outcome.authenticated().is_none());
    assert_eq!(login_count(&store, "alice").await, 1, "one device, one login");

    // A session id planted by an attacker is never adopted.
    let planted =
        SessionCookie { username: Some(user("alice")), id: ChaChaTokens::from_os().session_id() }.encode();
    let registration = engine
        .register(
            &user("alice"),
            false,
            &Presented { session: planted.as_str().into(), ..Presented::default() },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let issued =
        registration.cookies.iter().find(|c| c.kind() == CookieKind::Session).map(|c| c.value().to_owned());
    assert!(issued.is_some() && issued.as_deref() != Some(planted.as_str()));
}

#[tokio::test]
async fn logout_needs_proof_to_delete_a_login() {
    let (engine, store, clock) = setup();
    let jar = register(&engine, "alice", true).await;
    let cookie = AuthCookie::parse(jar.auth.as_deref().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let forged = AuthCookie { token: ChaChaTokens::from_os().token(), ..cookie }.encode();
    let cleared = engine.logout(&Presented { auth: forged.as_str().into(), ..Presented::default() }).await;
    assert_eq!(cleared.map(|c| c.len()).unwrap_or_default(), 2, "logout always clears both cookies");
    assert_eq!(login_count(&store, "alice").await, 1, "an unproven cookie deletes nothing");

    clock.advance(Duration::hours(1));
    let cleared = engine.logout(&jar.auth_only().presented()).await;
    assert!(cleared.is_ok());
    assert_eq!(login_count(&store, "alice").await, 0, "the current token proves the login");
}

#[tokio::test]
async fn grace_without_the_successor_session_opens_one_that_revoke_ends() {
    let (engine, store, clock) = setup();
    let jar = register(&engine, "alice", true).await;
    clock.advance(Duration::hours(1));
    let mut winner = jar.auth_only();
    let result = engine.authenticate(&winner.presented()).await;
    winner.apply(&result.cookies);
    let session =
        result.outcome.into_authenticated().map(|a| a.into_session()).unwrap_or_else(|| panic!("login"));
    assert!(
        engine.delete_session(Some(&user("alice")), &session.digest).await.unwrap_or_else(|e| panic!("{e}"))
    );

    let mut loser = jar.auth_only();
    let result = engine.authenticate(&loser.presented()).await;
    loser.apply(&result.cookies);
    assert!(matches!(result.outcome, Outcome::Grace(_)), "{:?}", result.outcome);
    assert_eq!(loser.auth, winner.auth);
    assert!(matches!(engine.authenticate(&loser.presented()).await.outcome, Outcome::Session(_)));

    let serial = session.login().unwrap_or_else(|| panic!("remembered"));
    assert!(engine.revoke(&user("alice"), &serial).await.unwrap_or_else(|e| panic!("{e}")));
    assert!(engine.authenticate(&loser.presented()).await.outcome.authenticated().is_none());
    assert_eq!(login_count(&store, "alice").await, 0);
}

#[tokio::test]
async fn a_record_whose_seal_does_not_match_fails_closed() {
    let (engine, store, clock) = setup();
    let jar = register(&engine, "alice", true).await;
    clock.advance(Duration::hours(1));
    let result = engine.authenticate(&jar.auth_only().presented()).await;
    assert!(matches!(result.outcome, Outcome::CookieLogin(_)));
    // Corrupt the stored record: a current token the seal does not open to.
    let cookie = AuthCookie::parse(jar.auth.as_deref().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let mut login =
        store.get_login(&cookie.username, &cookie.serial).await.ok().flatten().unwrap_or_else(|| panic!());
    login.token = ChaChaTokens::from_os().token().digest();
    assert!(store.delete_login(&cookie.username, &cookie.serial).await.unwrap_or_default());
    let _ = store.create_login(&login).await;

    let result = engine.authenticate(&jar.auth_only().presented()).await;
    match &result.outcome {
        Outcome::Unavailable(error) => assert_eq!(error.kind(), StoreErrorKind::Corrupt),
        other => panic!("expected a corrupt-store failure, got {other:?}"),
    }
    assert!(result.cookies.is_empty());
    assert_eq!(login_count(&store, "alice").await, 1, "not treated as theft");
}

#[tokio::test]
async fn devices_are_most_recent_first_with_the_callers_marked() {
    let (engine, _, clock) = setup();
    let old = register(&engine, "alice", true).await;
    clock.advance(Duration::minutes(1));
    let new = register(&engine, "alice", true).await;
    let result = engine.authenticate(&new.presented()).await;
    let session = result.outcome.into_authenticated().map(|a| a.into_session());
    let devices = engine.devices(&user("alice"), session.as_ref()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(devices.len(), 2);
    assert!(devices[0].current && !devices[1].current);
    assert!(devices[0].last_used_at > devices[1].last_used_at);
    let theirs = engine.devices(&user("bob"), session.as_ref()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(theirs.is_empty());
    let _ = old;
}

#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn the_cleaner_runs_every_period_and_survives_errors() {
    let store = Arc::new(expected_conformance::Flaky::new(MemoryStore::new()));
    let clock = ManualClock::starting_now();
    let config = Config::builder().secure(false).build().unwrap_or_else(|e| panic!("{e}"));
    let engine = Arc::new(Expected::new(store.clone(), config).with_clock(clock.clone()));
    let expired = || async { store.inner().delete_expired_sessions(clock.now()).await.unwrap_or_default() };
    let settle = || async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    };
    let registered = engine.register(&user("alice"), false, &Presented::default()).await;
    assert!(registered.is_ok());
    clock.advance(Duration::hours(1));
    // The first pass runs at once, and fails: the store is down.
    store.set_down(true);
    let cleaner = engine.clone().spawn_cleaner();
    settle().await;
    store.set_down(false);
    assert!(!cleaner.is_finished(), "a failed pass does not stop the cleaner");

    // The next pass, a period later, cleans what the failed one could not.
    tokio::time::advance(std::time::Duration::from_secs(86_400)).await;
    settle().await;
    assert_eq!(expired().await, 0, "the second pass cleaned alice's expired session");

    let registered = engine.register(&user("bob"), false, &Presented::default()).await;
    assert!(registered.is_ok());
    clock.advance(Duration::hours(1));
    tokio::time::advance(std::time::Duration::from_secs(3_600)).await;
    settle().await;
    assert_eq!(expired().await, 1, "no pass before the period is over");
    cleaner.abort();
}

#[cfg(feature = "http")]
#[tokio::test]
async fn http_headers_in_and_out() {
    use http::header::{COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
    let (engine, _, _) = setup();
    let jar = register(&engine, "zoë.o'brien", true).await;
    let mut request = HeaderMap::new();
    let line = format!("theme=dark; remember_me={}", jar.auth.clone().unwrap_or_default());
    request.insert(COOKIE, HeaderValue::from_str(&line).unwrap_or_else(|e| panic!("{e}")));
    let cookies =
        expected_core::http::presented_cookies(&request, engine.config()).unwrap_or_else(|e| panic!("{e}"));
    let result =
        engine.authenticate(&Presented { auth: cookies.auth_values(), ..Presented::default() }).await;
    assert_eq!(result.outcome.username().map(Username::as_str), Some("zoë.o'brien"));
    let mut response = HeaderMap::new();
    expected_core::http::append_set_cookies(&mut response, &result.cookies);
    let set: Vec<_> = response.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(set.len(), 2);
    assert!(
        set.iter().any(|v| v.starts_with("session=1."))
            && set.iter().any(|v| v.starts_with("remember_me=1."))
    );
}

/// What a store receives never contains a token or a session id in clear:
/// neither the raw bytes nor their base64url, in any record the engine
/// writes, through registration, rotation and grace.
#[tokio::test]
async fn no_secret_reaches_the_store_in_clear() {
    let (engine, store, clock) = setup();
    let mut jar = register(&engine, "alice", true).await;
    let mut secrets = Vec::new();
    let mut remember = |jar: &Jar| {
        let auth =
            AuthCookie::parse(jar.auth.as_deref().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        let session = SessionCookie::parse(jar.session.as_deref().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        secrets.push(auth.token.as_bytes().to_vec());
        secrets.push(session.id.as_bytes().to_vec());
    };
    remember(&jar);
    clock.advance(Duration::hours(1));
    let stale = jar.auth_only();
    let result = engine.authenticate(&stale.presented()).await;
    jar.apply(&result.cookies);
    remember(&jar);
    let grace = engine.authenticate(&stale.presented()).await;
    assert!(matches!(grace.outcome, Outcome::Grace(_)));

    let logins = store.list_logins(&user("alice")).await.unwrap_or_else(|e| panic!("{e}"));
    let mut written = serde_json::to_string(&logins).unwrap_or_default();
    for login in &logins {
        written.push_str(&format!("{login:?}"));
        if let Some(digest) = login.session {
            let session = store.get_session(Some(&user("alice")), &digest).await.ok().flatten();
            written.push_str(&serde_json::to_string(&session).unwrap_or_default());
        }
    }
    assert!(written.contains(&logins[0].token.to_base64()), "the dump holds the records");
    for secret in &secrets {
        let encoded = base64_url(secret);
        assert!(!written.contains(&encoded), "a secret reached the store in clear");
        assert!(!written.as_bytes().windows(secret.len()).any(|w| w == secret.as_slice()));
    }
}

fn base64_url(bytes: &[u8]) -> String {
    expected_core::Token::from_bytes(bytes.try_into().unwrap_or([0; 32])).to_base64()
}

#[derive(Default)]
struct CountingDirectory(std::sync::atomic::AtomicUsize);

#[async_trait]
impl Hooks for CountingDirectory {
    async fn is_user_valid(&self, _: &Username) -> Result<bool, StoreError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }
}

/// Racing requests with one cookie ask the user-validity hook once each, even
/// those that lose the rotation race and go round again as grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_user_hook_is_asked_once_per_request_under_races() {
    let (engine, _, clock) = setup();
    let directory = Arc::new(CountingDirectory::default());
    let engine = Arc::new(engine.with_hooks(directory.clone()));
    let jar = register(&engine, "alice", true).await;
    clock.advance(Duration::hours(1));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (engine, jar) = (engine.clone(), jar.auth_only());
        tasks.push(tokio::spawn(async move { engine.authenticate(&jar.presented()).await.outcome }));
    }
    for task in tasks {
        let outcome = task.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(outcome, Outcome::CookieLogin(_) | Outcome::Grace(_)), "{outcome:?}");
    }
    assert_eq!(directory.0.load(Ordering::SeqCst), 20);
}

/// Records every hook call.
#[derive(Default)]
struct Recorder {
    sign_ins: std::sync::Mutex<Vec<expected_core::SignIn>>,
    ended: std::sync::Mutex<Vec<expected_core::LoginsEnded>>,
    thefts: std::sync::Mutex<usize>,
}

impl Recorder {
    fn causes(&self) -> Vec<(expected_core::EndCause, usize)> {
        let ended = self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ended.iter().map(|event| (event.cause, event.serials.len())).collect()
    }
}

#[async_trait]
impl Hooks for Recorder {
    async fn on_sign_in(&self, event: &expected_core::SignIn) {
        self.sign_ins.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event.clone());
    }
    async fn on_logins_ended(&self, event: &expected_core::LoginsEnded) {
        self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event.clone());
    }
    async fn on_theft(&self, _: &expected_core::TheftReport) {
        *self.thefts.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    }
}

#[tokio::test]
async fn hooks_hear_of_sign_ins_and_of_every_way_logins_end() {
    use expected_core::EndCause;
    let (engine, _, clock) = setup();
    let recorder = Arc::new(Recorder::default());
    let config = Config::builder()
        .secure(false)
        .max_logins_per_user(std::num::NonZeroUsize::new(2))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let engine =
        Expected::new(engine.store().clone(), config).with_clock(clock.clone()).with_hooks(recorder.clone());

    let first = register(&engine, "alice", true).await;
    let signed = recorder.sign_ins.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(signed.len(), 1, "a password login is a sign-in");
    assert!(signed[0].serial.is_some(), "a remembered sign-in names its new device");
    let _second = register(&engine, "alice", true).await;
    let _third = register(&engine, "alice", true).await;
    assert_eq!(recorder.causes(), vec![(EndCause::Evicted, 1)], "over the cap of 2, one login evicted");

    // The same device logging in again replaces its own login.
    let again = engine.register(&user("alice"), true, &_third.presented()).await;
    let third = {
        let mut jar = Jar::default();
        jar.apply(&again.unwrap_or_else(|e| panic!("{e}")).cookies);
        jar
    };
    assert_eq!(
        recorder.causes().last(),
        Some(&(EndCause::Replaced, 1)),
        "re-login replaces this device's login"
    );

    let cookies = engine.logout(&third.presented()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(cookies.iter().all(SetCookie::is_removal));
    assert_eq!(recorder.causes().last(), Some(&(EndCause::Logout, 1)), "logout ends this device's login");

    let serials: Vec<_> = engine
        .devices(&user("alice"), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|d| d.serial)
        .collect();
    assert_eq!(serials.len(), 1);
    assert!(engine.revoke(&user("alice"), &serials[0]).await.unwrap_or_default());
    assert_eq!(recorder.causes().last(), Some(&(EndCause::Revoked, 1)));
    assert!(!engine.revoke(&user("alice"), &serials[0]).await.unwrap_or(true));
    assert_eq!(recorder.causes().len(), 4, "revoking an unknown serial tells nobody");

    // Theft: the report, then every serial ended.
    let victim = register(&engine, "alice", true).await;
    let _laptop = register(&engine, "alice", true).await;
    clock.advance(Duration::hours(1));
    let rotated = engine.authenticate(&victim.auth_only().presented()).await;
    assert!(matches!(rotated.outcome, Outcome::CookieLogin(_)));
    clock.advance(Duration::minutes(5));
    let replay = engine.authenticate(&victim.auth_only().presented()).await;
    assert!(matches!(replay.outcome, Outcome::Theft(_)));
    assert_eq!(*recorder.thefts.lock().unwrap_or_else(std::sync::PoisonError::into_inner), 1);
    assert_eq!(recorder.causes().last(), Some(&(EndCause::Theft, 2)), "both devices' serials reported");

    // Logout everywhere and logout others.
    let phone = register(&engine, "alice", true).await;
    let _tablet = register(&engine, "alice", true).await;
    let hit = engine.authenticate(&phone.presented()).await;
    let session = hit.outcome.into_authenticated().map(|a| a.into_session()).unwrap_or_else(|| panic!("hit"));
    let others = engine.logout_others(&session).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(others.logins, 1);
    assert_eq!(recorder.causes().last(), Some(&(EndCause::LogoutOthers, 1)));
    let everywhere = engine.logout_everywhere(&user("alice")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(everywhere.logins, 1, "this device's login was still there");
    assert_eq!(recorder.causes().last(), Some(&(EndCause::LogoutEverywhere, 1)));

    // Expiry, by cleaning.
    let _old = register(&engine, "alice", true).await;
    clock.advance(Duration::days(91));
    let cleaned = engine.clean().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cleaned.logins, 1);
    assert_eq!(recorder.causes().last(), Some(&(EndCause::Expired, 1)), "cleaning reports expired logins");
    let _ = first;
}

#[tokio::test]
async fn devices_serialize_with_rfc3339_times_and_base64_serials() {
    let (engine, _, _) = setup();
    let jar = register(&engine, "alice", true).await;
    let hit = engine.authenticate(&jar.presented()).await;
    let session = hit.outcome.into_authenticated().map(|a| a.into_session());
    let devices = engine.devices(&user("alice"), session.as_ref()).await.unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_value(&devices).unwrap_or_else(|e| panic!("{e}"));
    let device = &json[0];
    let created = device["created_at"].as_str().unwrap_or_default();
    assert!(
        expected_core::time::OffsetDateTime::parse(
            created,
            &expected_core::time::format_description::well_known::Rfc3339
        )
        .is_ok(),
        "created_at is RFC 3339: {created}"
    );
    assert_eq!(
        device["serial"].as_str(),
        Some(devices[0].serial.to_base64().as_str()),
        "serial in base64url"
    );
    assert_eq!(device["current"], serde_json::json!(true), "the asking session's device is current");
    assert!(device["authenticated_at"].is_string(), "authenticated_at is shown: {device}");
}
