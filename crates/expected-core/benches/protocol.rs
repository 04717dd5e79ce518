//! The pure path of a cookie login, step by step: parse the auth cookie,
//! judge it against the stored login, plan the rotation, render the two
//! `Set-Cookie` headers; then the whole path, and for reference one SHA-256
//! of 32 bytes, the six SHA-256 computations the path makes, and one draw
//! of fresh secrets. No store, no I/O.
//!
//! `cargo bench -p expected-core --bench protocol`; the figures are in `docs/benchmarks.md`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, criterion_main};
use expected_core::keys::{KeyId, TokenKey, TokenKeys};
use expected_core::protocol::{self, Judgement};
use expected_core::{
    AuthCookie, ChaChaTokens, ClientMeta, Config, Login, OsTokens, SessionCookie, SessionData, SetCookie,
    TokenSource, Username,
};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

/// A login as the store returns it, and the cookie that carries it.
struct Fixture {
    config: Config,
    tokens: ChaChaTokens,
    client: ClientMeta,
    /// When the benchmarked request arrives.
    now: OffsetDateTime,
    /// The auth cookie's value, as the request carries it.
    value: String,
    /// The parsed cookie, holding the login's current token.
    cookie: AuthCookie,
    /// The stored login, whose current token is `cookie`'s.
    login: Login,
    /// The same login one second after a rotation away from `cookie`'s token:
    /// `cookie` is now the previous token, inside the grace window.
    rotated: Login,
}

/// The keys of the keyed fixture: one current key.
fn keys() -> TokenKeys {
    let key = TokenKey::new(KeyId::new("bench").unwrap_or_else(|e| panic!("{e}")), &[0x42; 32])
        .unwrap_or_else(|e| panic!("{e}"));
    TokenKeys::new(key, Vec::new()).unwrap_or_else(|e| panic!("{e}"))
}

impl Fixture {
    fn new() -> Self {
        Self::with(Config::default())
    }

    /// With token keys: successors derived, the walk on.
    fn keyed() -> Self {
        Self::with(Config::builder().token_keys(Some(keys())).build().unwrap_or_else(|e| panic!("{e}")))
    }

    fn with(config: Config) -> Self {
        let tokens = ChaChaTokens::from_seed([7; 32]);
        let client = ClientMeta::new(
            Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
            Some("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
        );
        let registered = time::macros::datetime!(2030-01-01 0:00 UTC);
        let now = registered + time::Duration::days(3);
        let user = Username::new("alice@example.com").unwrap_or_else(|e| panic!("{e}"));
        let id = tokens.session_id();
        let serial = tokens.serial();
        let owner = protocol::password_user(&user, Some(serial), registered);
        let session = protocol::new_session(Some(owner), &id, SessionData::new(), registered, &config);
        let (login, cookie) =
            protocol::new_login(&user, serial, tokens.token(), &session, client.clone(), registered, &config);
        assert_eq!(protocol::judge(&cookie, Some(&login), &client, now, &config), Judgement::Current);

        let mut rotated = login.clone();
        let (rotation, _) = protocol::rotation(
            &cookie,
            &login,
            tokens.token(),
            &tokens.session_id(),
            client.clone(),
            now,
            &config,
        );
        protocol::apply_rotation(&mut rotated, &rotation);
        let later = now + time::Duration::seconds(1);
        assert!(matches!(
            protocol::judge(&cookie, Some(&rotated), &client, later, &config),
            Judgement::Grace { session: Some(_), .. }
        ));

        Self { value: cookie.encode(), config, tokens, client, now, cookie, login, rotated }
    }
}

fn steps(c: &mut Criterion) {
    let f = Fixture::new();

    c.bench_function("parse_auth_cookie", |b| {
        b.iter(|| AuthCookie::parse(black_box(&f.value)));
    });

    c.bench_function("judge_current", |b| {
        b.iter(|| {
            protocol::judge(black_box(&f.cookie), Some(black_box(&f.login)), &f.client, f.now, &f.config)
        });
    });

    let later = f.now + time::Duration::seconds(1);
    c.bench_function("judge_grace", |b| {
        b.iter(|| {
            protocol::judge(black_box(&f.cookie), Some(black_box(&f.rotated)), &f.client, later, &f.config)
        });
    });

    let token = f.tokens.token();
    let id = f.tokens.session_id();
    c.bench_function("plan_rotation", |b| {
        b.iter(|| {
            protocol::rotation(
                black_box(&f.cookie),
                black_box(&f.login),
                token.clone(),
                black_box(&id),
                f.client.clone(),
                f.now,
                &f.config,
            )
        });
    });

    let (_, next) = protocol::rotation(&f.cookie, &f.login, token, &id, f.client.clone(), f.now, &f.config);
    let session_cookie = SessionCookie { username: Some(f.cookie.username.clone()), id };
    c.bench_function("render_set_cookies", |b| {
        b.iter(|| {
            [
                SetCookie::session(black_box(&session_cookie), &f.config).header_value(),
                SetCookie::auth(black_box(&next), &f.config).header_value(),
            ]
        });
    });
}

/// What the engine does between reading the login and writing the rotation,
/// and after: everything of a cookie login but the two store round trips.
fn whole_path(c: &mut Criterion) {
    let f = Fixture::new();
    c.bench_function("cookie_login_pure_path", |b| {
        b.iter(|| {
            let cookie = AuthCookie::parse(black_box(&f.value)).unwrap_or_else(|e| panic!("{e}"));
            let judgement = protocol::judge(&cookie, Some(black_box(&f.login)), &f.client, f.now, &f.config);
            assert!(judgement == Judgement::Current);
            let token = f.tokens.token();
            let id = f.tokens.session_id();
            let (rotation, next) =
                protocol::rotation(&cookie, &f.login, token, &id, f.client.clone(), f.now, &f.config);
            let session_cookie = SessionCookie { username: Some(cookie.username.clone()), id };
            let headers = [
                SetCookie::session(&session_cookie, &f.config).header_value(),
                SetCookie::auth(&next, &f.config).header_value(),
            ];
            (rotation, headers)
        });
    });
}

/// The same with token keys (`docs/protocol.md` §13): the successor is an
/// HMAC of the presented token's digest instead of a draw, and what the walk
/// costs a token ahead of the store and a forged one.
fn keyed(c: &mut Criterion) {
    let f = Fixture::keyed();
    c.bench_function("cookie_login_pure_path_derived", |b| {
        b.iter(|| {
            let cookie = AuthCookie::parse(black_box(&f.value)).unwrap_or_else(|e| panic!("{e}"));
            let judgement = protocol::judge(&cookie, Some(black_box(&f.login)), &f.client, f.now, &f.config);
            assert!(judgement == Judgement::Current);
            let token = protocol::derived_successor(&cookie, &f.config).unwrap_or_else(|| panic!("keyed"));
            let id = f.tokens.session_id();
            let (rotation, next) =
                protocol::rotation(&cookie, &f.login, token, &id, f.client.clone(), f.now, &f.config);
            let session_cookie = SessionCookie { username: Some(cookie.username.clone()), id };
            let headers = [
                SetCookie::session(&session_cookie, &f.config).header_value(),
                SetCookie::auth(&next, &f.config).header_value(),
            ];
            (rotation, headers)
        });
    });

    c.bench_function("derive_successor", |b| {
        b.iter(|| protocol::derived_successor(black_box(&f.cookie), &f.config));
    });

    // The store lost one rotation: the cookie holds the successor of the
    // stored token.
    let ahead = AuthCookie {
        token: protocol::derived_successor(&f.cookie, &f.config).map(|s| s.token).unwrap_or_else(|| panic!()),
        ..f.cookie.clone()
    };
    c.bench_function("judge_ahead_1", |b| {
        b.iter(|| protocol::judge(black_box(&ahead), Some(black_box(&f.login)), &f.client, f.now, &f.config));
    });

    // A forged token: the whole walk (32 steps, the default) before theft.
    let forged = AuthCookie { token: f.tokens.token(), ..f.cookie.clone() };
    assert!(matches!(
        protocol::judge(&forged, Some(&f.login), &f.client, f.now, &f.config),
        Judgement::Theft { .. }
    ));
    c.bench_function("judge_forged_full_walk_32", |b| {
        b.iter(|| {
            protocol::judge(black_box(&forged), Some(black_box(&f.login)), &f.client, f.now, &f.config)
        });
    });
}

fn reference(c: &mut Criterion) {
    let bytes = [0x5a_u8; 32];
    c.bench_function("sha256_32_bytes", |b| {
        b.iter(|| Sha256::digest(black_box(bytes)));
    });

    // The six SHA-256 computations of `cookie_login_pure_path`, with the
    // same input lengths: the presented token three times (judge's compare,
    // the compare-and-swap's expected digest, the previous digest), the new
    // token, the new session id, and the two seal pads (label ‖ presented
    // token: 23 + 32 and 25 + 32 bytes, the labels of `secret::seal_pad`).
    let token_label = b"expected/v1/seal/token\0";
    let session_label = b"expected/v1/seal/session\0";
    c.bench_function("sha256_of_the_cookie_login_path", |b| {
        b.iter(|| {
            // Each input through black_box, so no digest is computed once for two.
            [
                Sha256::digest(black_box(bytes)),
                Sha256::digest(black_box(bytes)),
                Sha256::digest(black_box([0x17_u8; 32])),
                Sha256::digest(black_box([0x29_u8; 32])),
                Sha256::new().chain_update(token_label).chain_update(black_box(bytes)).finalize(),
                Sha256::new().chain_update(session_label).chain_update(black_box(bytes)).finalize(),
            ]
        });
    });

    let tokens = ChaChaTokens::from_seed([9; 32]);
    c.bench_function("draw_token_and_session_id", |b| {
        b.iter(|| (tokens.token(), tokens.session_id()));
    });

    // The engine's default: one system call per secret.
    c.bench_function("draw_token_and_session_id_os", |b| {
        b.iter(|| (OsTokens.token(), OsTokens.session_id()));
    });
}

/// Every benchmark, kept short (1 s warm-up, 2 s measurement, 30 samples)
/// so that the whole run takes about a minute. What `criterion_group!` would
/// generate, with a doc comment.
fn benches() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    steps(&mut criterion);
    whole_path(&mut criterion);
    keyed(&mut criterion);
    reference(&mut criterion);
}

criterion_main!(benches);
