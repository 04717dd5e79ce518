//! The protocol as pure decisions.
//!
//! Every function here is a function of what the client presented, what the
//! store holds, the time and the configuration: no I/O, no clock, no random
//! source. The [engine](crate::Expected) reads the inputs and applies the
//! results; tests drive these functions directly.

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::config::{Config, GraceBinding};
use crate::credential::{AuthCookie, SessionCookie};
use crate::record::{AuthMethod, ClientMeta, Login, PreviousToken, SessionData, SessionRecord, SessionUser};
use crate::secret::{SealedSuccessor, Serial, SessionId, Token, Username};
use crate::store::Rotation;

/// Why a presented auth cookie is taken for a replayed copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TheftCause {
    /// The token is neither the current one nor the previous one inside the
    /// grace window: a stale copy, a token two or more rotations old, or a
    /// forged one.
    StaleToken,
    /// The previous token inside the grace window, from another `User-Agent`
    /// than the client the rotation recorded: another browser holds this
    /// device's previous token ([`GraceBinding::Client`] and
    /// [`GraceBinding::UserAgent`]).
    ForeignClient,
}

impl TheftCause {
    /// `stale_token` or `foreign_client`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StaleToken => "stale_token",
            Self::ForeignClient => "foreign_client",
        }
    }
}

/// What a presented auth cookie is worth against the stored login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// No login under that username and serial: not authenticated.
    Unknown,
    /// The login exists but was unused for longer than the cookie max age, or
    /// outlived its lifetime: it is deleted, not authenticated.
    Expired,
    /// The presented token is the current one: rotate it.
    Current,
    /// The presented token is the previous one, inside the grace window, from
    /// the client the rotation recorded (as the [`GraceBinding`] asks): the
    /// request is authenticated without another rotation, and the client gets
    /// the successor credentials, opened from the seal.
    Grace {
        /// The current token, which the client should now hold.
        token: Token,
        /// The session the rotation opened, if the login is still bound to it.
        session: Option<SessionId>,
    },
    /// The presented token is the previous one, inside the grace window, with
    /// the `User-Agent` the rotation recorded but from another network
    /// ([`GraceBinding::Client`]): no successor is handed out and nothing is
    /// revoked. The same browser after a network change (Wi-Fi to mobile)
    /// is the likely presenter, and revoking for it would log a phone out
    /// everywhere; a thief with a copied browser profile is the unlikely one,
    /// and gets nothing.
    GraceRefused {
        /// The client the winning rotation recorded (`Login::client`).
        recorded: ClientMeta,
    },
    /// The serial is known but the token is a replayed copy ([`TheftCause`]).
    /// Every login and session of the user is deleted.
    Theft {
        /// Why it is theft.
        cause: TheftCause,
        /// The client the login recorded at its last use (for
        /// [`TheftCause::ForeignClient`], the winning rotation's).
        recorded: ClientMeta,
    },
    /// The seal of the previous token did not open to the current token: the
    /// store returned a record that was not written atomically. Treated as a
    /// store failure (fail closed).
    Inconsistent,
}

/// Judges `cookie`, presented by `client`, against the login the store
/// returned for its username and serial.
///
/// Digests are compared in constant time. A login whose username differs from
/// the cookie's never authenticates (it is [`Judgement::Unknown`]). The
/// previous token inside the grace window is judged against the client the
/// rotation recorded, as [`Config::grace_binding`] asks
/// ([`client_match`]).
pub fn judge(
    cookie: &AuthCookie,
    login: Option<&Login>,
    client: &ClientMeta,
    now: OffsetDateTime,
    config: &Config,
) -> Judgement {
    let Some(login) = login else {
        return Judgement::Unknown;
    };
    if login.username != cookie.username || login.serial != cookie.serial {
        return Judgement::Unknown;
    }
    if !login.is_live(now) {
        return Judgement::Expired;
    }
    if login.token.matches(&cookie.token) {
        return Judgement::Current;
    }
    let theft = |cause| Judgement::Theft { cause, recorded: login.client.clone() };
    match &login.previous {
        Some(previous) if previous.digest.matches(&cookie.token) && in_grace(previous, now, config) => {
            // Checked before the seal is opened: a client that gets no
            // successor has no business seeing it.
            match client_match(&login.client, client, config.grace_binding()) {
                ClientMatch::Same => {}
                ClientMatch::OtherNetwork => {
                    return Judgement::GraceRefused { recorded: login.client.clone() };
                }
                ClientMatch::OtherAgent => return theft(TheftCause::ForeignClient),
            }
            let (token, session) = previous.sealed.open(&cookie.token);
            if !login.token.matches(&token) {
                return Judgement::Inconsistent;
            }
            let bound = login.session.is_some_and(|digest| digest.matches(&session));
            Judgement::Grace { token, session: bound.then_some(session) }
        }
        _ => theft(TheftCause::StaleToken),
    }
}

/// How a client presenting the previous token compares with the client the
/// rotation recorded, under a [`GraceBinding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMatch {
    /// The client the binding asks for: grace.
    Same,
    /// The same `User-Agent` from another network ([`GraceBinding::Client`]
    /// only): no grace, no revocation.
    OtherNetwork,
    /// Another `User-Agent`: theft.
    OtherAgent,
}

/// Compares the client that presents the previous token (`presenter`) with
/// the one the rotation recorded (`recorded`), as `binding` asks.
///
/// User agents are compared exactly, as [`ClientMeta::new`] keeps them (cut
/// and stripped of control characters the same way on both sides), so two
/// clients that send none match. Networks are compared by [`same_network`].
pub fn client_match(recorded: &ClientMeta, presenter: &ClientMeta, binding: GraceBinding) -> ClientMatch {
    match binding {
        GraceBinding::Off => ClientMatch::Same,
        _ if recorded.user_agent != presenter.user_agent => ClientMatch::OtherAgent,
        GraceBinding::UserAgent => ClientMatch::Same,
        _ if !same_network(recorded.ip, presenter.ip) => ClientMatch::OtherNetwork,
        _ => ClientMatch::Same,
    }
}

/// Whether two client addresses are on the same network: the same /24 for
/// IPv4, the same /48 for IPv6 (an IPv4-mapped IPv6 address counts as the
/// IPv4 one). Two unknown addresses match (a transport that has none, such as
/// a local socket); a known one never matches an unknown one, nor an IPv4
/// address an IPv6 one.
pub fn same_network(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a.map(|ip| ip.to_canonical()), b.map(|ip| ip.to_canonical())) {
        (None, None) => true,
        (Some(IpAddr::V4(a)), Some(IpAddr::V4(b))) => a.octets()[..3] == b.octets()[..3],
        (Some(IpAddr::V6(a)), Some(IpAddr::V6(b))) => a.segments()[..3] == b.segments()[..3],
        _ => false,
    }
}

/// Whether a rotation at `previous.rotated_at` is still inside the grace window
/// at `now`: `|now - rotated_at| < grace`. The window is open at its end, so
/// exactly `grace` after the rotation it is over, and a zero grace period
/// disables it. It extends as far before the rotation as after it, so that
/// servers whose clocks lag the one that rotated by less than the grace period
/// do not mistake a concurrent request for theft.
pub fn in_grace(previous: &PreviousToken, now: OffsetDateTime, config: &Config) -> bool {
    let grace = config.grace();
    grace.is_positive() && (now - previous.rotated_at).abs() < grace
}

/// What a presented session cookie is worth against the stored session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionJudgement {
    /// No such session for that user.
    Unknown,
    /// The session's idle or absolute timeout has passed.
    Expired,
    /// The session is valid.
    Live {
        /// Whether to push its expiry out now. Sliding expiry without a write
        /// on every request: the session is touched once a quarter of the idle
        /// timeout has gone by since the last touch.
        touch: bool,
    },
}

/// Judges a session cookie against the stored session.
pub fn judge_session(
    cookie: &SessionCookie,
    session: Option<&SessionRecord>,
    now: OffsetDateTime,
    config: &Config,
) -> SessionJudgement {
    let Some(session) = session else {
        return SessionJudgement::Unknown;
    };
    if session.username() != cookie.username.as_ref() || !session.digest.matches(&cookie.id) {
        return SessionJudgement::Unknown;
    }
    if !session.is_live(now) {
        return SessionJudgement::Expired;
    }
    let idle = config.idle();
    let remaining = session.expires_at - now;
    // Past the absolute timeout's reach a touch would write the same expiry.
    let moves = session_expiry(now, session.created_at, config) > session.expires_at;
    SessionJudgement::Live { touch: moves && remaining <= idle - idle / 4 }
}

/// When a session created at `created_at` and touched at `now` expires: the
/// idle timeout from now, never past the absolute timeout from its creation.
pub fn session_expiry(now: OffsetDateTime, created_at: OffsetDateTime, config: &Config) -> OffsetDateTime {
    now.saturating_add(config.idle()).min(created_at.saturating_add(config.absolute()))
}

/// When a login registered at `created_at` and used at `now` expires: the
/// cookie max age from now, never past the login lifetime from its password
/// login.
pub fn login_expiry(now: OffsetDateTime, created_at: OffsetDateTime, config: &Config) -> OffsetDateTime {
    now.saturating_add(config.max_age()).min(created_at.saturating_add(config.lifetime()))
}

/// A new session record for the secret `id`: a user's, or an anonymous
/// visitor's (`user: None`).
pub fn new_session(
    user: Option<SessionUser>,
    id: &SessionId,
    data: SessionData,
    now: OffsetDateTime,
    config: &Config,
) -> SessionRecord {
    SessionRecord {
        digest: id.digest(),
        user,
        data,
        created_at: now,
        expires_at: session_expiry(now, now, config),
    }
}

/// The owner of a session a password login opens at `now`.
pub fn password_user(username: &Username, login: Option<Serial>, now: OffsetDateTime) -> SessionUser {
    SessionUser { username: username.clone(), login, method: AuthMethod::Password, authenticated_at: now }
}

/// The owner of a session the remember-me cookie of `login` opens: method
/// [`AuthMethod::Remembered`], and the login's `authenticated_at`.
pub fn remembered_user(login: &Login) -> SessionUser {
    SessionUser {
        username: login.username.clone(),
        login: Some(login.serial),
        method: AuthMethod::Remembered,
        authenticated_at: login.authenticated_at,
    }
}

/// A new login record and the cookie that carries it.
pub fn new_login(
    username: &Username,
    serial: Serial,
    token: Token,
    session: &SessionRecord,
    client: ClientMeta,
    now: OffsetDateTime,
    config: &Config,
) -> (Login, AuthCookie) {
    let login = Login {
        username: username.clone(),
        serial,
        token: token.digest(),
        previous: None,
        session: Some(session.digest),
        created_at: now,
        last_used_at: now,
        expires_at: login_expiry(now, now, config),
        client,
        authenticated_at: now,
    };
    (login, AuthCookie { username: username.clone(), serial, token })
}

/// The rotation for a cookie login with the current token `presented` of
/// `login`, given the fresh `token` and session `id` to replace it with.
///
/// Returns the rotation for [`Store::rotate_login`](crate::Store::rotate_login)
/// and the new auth cookie. The new session is
/// [`AuthMethod::Remembered`] with the login's `authenticated_at`; the login
/// keeps its lifetime from `created_at`.
pub fn rotation(
    presented: &AuthCookie,
    login: &Login,
    token: Token,
    id: &SessionId,
    client: ClientMeta,
    now: OffsetDateTime,
    config: &Config,
) -> (Rotation, AuthCookie) {
    let session = new_session(Some(remembered_user(login)), id, SessionData::new(), now, config);
    let expected = presented.token.digest();
    let rotation = Rotation {
        username: presented.username.clone(),
        serial: presented.serial,
        expected,
        token: token.digest(),
        previous: PreviousToken {
            digest: expected,
            rotated_at: now,
            sealed: SealedSuccessor::seal(&presented.token, &token, id),
        },
        session,
        last_used_at: now,
        expires_at: login_expiry(now, login.created_at, config),
        client,
        max_sessions: config.max_sessions_per_user(),
    };
    let cookie = AuthCookie { username: presented.username.clone(), serial: presented.serial, token };
    (rotation, cookie)
}

/// Applies a rotation to a login record: what a store's compare-and-swap
/// writes when it succeeds. Stores that keep whole records (memory, Redis) can
/// use it so that every store writes the same thing.
pub fn apply_rotation(login: &mut Login, rotation: &Rotation) {
    login.token = rotation.token;
    login.previous = Some(rotation.previous);
    login.session = Some(rotation.session.digest);
    login.last_used_at = rotation.last_used_at;
    login.expires_at = rotation.expires_at;
    login.client = rotation.client.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn at(seconds: i64) -> OffsetDateTime {
        time::macros::datetime!(2030-01-01 0:00 UTC) + Duration::seconds(seconds)
    }

    /// The client of every request in these tests but the binding ones: no
    /// address, no user agent (what the rotations below record too).
    fn nobody() -> ClientMeta {
        ClientMeta::default()
    }

    /// A stale or forged token's judgement, for a login last used by
    /// [`nobody`].
    fn stale() -> Judgement {
        Judgement::Theft { cause: TheftCause::StaleToken, recorded: nobody() }
    }

    fn setup() -> (Config, AuthCookie, Login) {
        let config = Config::default();
        let user = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
        let session = new_session(
            Some(password_user(&user, None, at(0))),
            &SessionId::from_bytes([9; 32]),
            SessionData::new(),
            at(0),
            &config,
        );
        let (login, cookie) = new_login(
            &user,
            Serial::from_bytes([1; 16]),
            Token::from_bytes([2; 32]),
            &session,
            ClientMeta::default(),
            at(0),
            &config,
        );
        (config, cookie, login)
    }

    #[test]
    fn current_token_rotates_and_previous_gets_grace_then_theft() {
        let (config, cookie, mut login) = setup();
        assert_eq!(judge(&cookie, Some(&login), &nobody(), at(1), &config), Judgement::Current);
        let id = SessionId::from_bytes([3; 32]);
        let (rotation, next) =
            rotation(&cookie, &login, Token::from_bytes([4; 32]), &id, ClientMeta::default(), at(1), &config);
        apply_rotation(&mut login, &rotation);
        assert_eq!(judge(&next, Some(&login), &nobody(), at(2), &config), Judgement::Current);
        assert_eq!(
            judge(&cookie, Some(&login), &nobody(), at(30), &config),
            Judgement::Grace { token: next.token.clone(), session: Some(id) }
        );
        // The window is open at its end: 30 s after the rotation it is over.
        assert_eq!(judge(&cookie, Some(&login), &nobody(), at(31), &config), stale());
        let forged = AuthCookie { token: Token::from_bytes([5; 32]), ..cookie.clone() };
        assert_eq!(judge(&forged, Some(&login), &nobody(), at(2), &config), stale());
    }

    /// A login rotated at 1 s by `winner`, and the cookie with the token
    /// that rotation replaced.
    fn rotated_by(winner: &ClientMeta, config: &Config) -> (AuthCookie, Login, Token) {
        let (_, cookie, mut login) = setup();
        let id = SessionId::from_bytes([3; 32]);
        let token = Token::from_bytes([4; 32]);
        let (rotation, _) = rotation(&cookie, &login, token.clone(), &id, winner.clone(), at(1), config);
        apply_rotation(&mut login, &rotation);
        (cookie, login, token)
    }

    fn client(ip: &str, agent: &str) -> ClientMeta {
        ClientMeta::new(ip.parse().ok(), Some(agent))
    }

    #[test]
    fn grace_is_for_the_client_the_rotation_recorded() {
        let config = Config::default();
        let phone = client("203.0.113.7", "Phone/1");
        let (cookie, login, token) = rotated_by(&phone, &config);
        let grace = Judgement::Grace { token, session: Some(SessionId::from_bytes([3; 32])) };
        let judged = |presenter: &ClientMeta| judge(&cookie, Some(&login), presenter, at(2), &config);
        assert_eq!(judged(&phone), grace, "the rotating client itself converges");
        assert_eq!(judged(&client("203.0.113.250", "Phone/1")), grace, "the same /24 is the same network");
        assert_eq!(
            judged(&client("198.51.100.7", "Phone/1")),
            Judgement::GraceRefused { recorded: phone.clone() },
            "the same user agent from another network is refused, not theft"
        );
        assert_eq!(
            judged(&client("203.0.113.7", "Thief/9")),
            Judgement::Theft { cause: TheftCause::ForeignClient, recorded: phone.clone() },
            "another user agent with the previous token is theft, even from the same address"
        );
        assert_eq!(
            judged(&ClientMeta::new(phone.ip, None)),
            Judgement::Theft { cause: TheftCause::ForeignClient, recorded: phone.clone() },
            "no user agent is another user agent"
        );
        // Past the window the previous token is stale whoever presents it.
        assert_eq!(
            judge(&cookie, Some(&login), &phone, at(31), &config),
            Judgement::Theft { cause: TheftCause::StaleToken, recorded: phone.clone() }
        );
    }

    #[test]
    fn the_user_agent_binding_ignores_the_network_and_off_ignores_the_client()
    -> Result<(), crate::ConfigError> {
        let phone = client("203.0.113.7", "Phone/1");
        for (binding, moved, foreign) in
            [(GraceBinding::UserAgent, true, false), (GraceBinding::Off, true, true)]
        {
            let config = Config::builder().grace_binding(binding).build()?;
            let (cookie, login, _) = rotated_by(&phone, &config);
            let judged = |presenter: &ClientMeta| judge(&cookie, Some(&login), presenter, at(2), &config);
            let other_network = judged(&client("198.51.100.7", "Phone/1"));
            assert_eq!(
                matches!(other_network, Judgement::Grace { .. }),
                moved,
                "{binding:?}: {other_network:?}"
            );
            let other_agent = judged(&client("203.0.113.7", "Thief/9"));
            assert_eq!(
                matches!(other_agent, Judgement::Grace { .. }),
                foreign,
                "{binding:?}: {other_agent:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        let ip = |text: &str| text.parse::<IpAddr>().ok();
        assert!(same_network(ip("192.0.2.1"), ip("192.0.2.254")));
        assert!(!same_network(ip("192.0.2.1"), ip("192.0.3.1")));
        assert!(same_network(ip("2001:db8:1::1"), ip("2001:db8:1:ffff::2")));
        assert!(!same_network(ip("2001:db8:1::1"), ip("2001:db8:2::1")));
        assert!(same_network(ip("::ffff:192.0.2.1"), ip("192.0.2.9")), "IPv4-mapped is IPv4");
        assert!(!same_network(ip("192.0.2.1"), ip("2001:db8::1")));
        assert!(same_network(None, None), "no address on either side");
        assert!(!same_network(ip("192.0.2.1"), None), "an address never matches none");
    }

    #[test]
    fn the_window_tolerates_lagging_clocks_within_the_grace_period() {
        let (config, cookie, mut login) = setup();
        let id = SessionId::from_bytes([3; 32]);
        let (rotation, _) = rotation(
            &cookie,
            &login,
            Token::from_bytes([4; 32]),
            &id,
            ClientMeta::default(),
            at(100),
            &config,
        );
        apply_rotation(&mut login, &rotation);
        assert!(matches!(judge(&cookie, Some(&login), &nobody(), at(71), &config), Judgement::Grace { .. }));
        assert_eq!(judge(&cookie, Some(&login), &nobody(), at(70), &config), stale());
    }

    #[test]
    fn zero_grace_disables_the_window() -> Result<(), crate::ConfigError> {
        let (_, cookie, mut login) = setup();
        let config = Config::builder().grace_period(std::time::Duration::ZERO).build()?;
        let id = SessionId::from_bytes([3; 32]);
        let (rotation, _) =
            rotation(&cookie, &login, Token::from_bytes([4; 32]), &id, ClientMeta::default(), at(1), &config);
        apply_rotation(&mut login, &rotation);
        assert_eq!(judge(&cookie, Some(&login), &nobody(), at(1), &config), stale());
        assert_eq!(
            judge(&cookie, Some(&login), &nobody(), at(0), &config),
            stale(),
            "even on a lagging clock"
        );
        Ok(())
    }

    #[test]
    fn another_users_cookie_never_matches() {
        let (config, cookie, login) = setup();
        let mallory =
            AuthCookie { username: Username::new("mallory").unwrap_or_else(|e| panic!("{e}")), ..cookie };
        assert_eq!(judge(&mallory, Some(&login), &nobody(), at(1), &config), Judgement::Unknown);
        assert_eq!(judge(&mallory, None, &nobody(), at(1), &config), Judgement::Unknown);
    }

    #[test]
    fn logins_expire_after_the_max_age() {
        let (config, cookie, login) = setup();
        let max_age = config.max_age().whole_seconds();
        assert_eq!(judge(&cookie, Some(&login), &nobody(), at(max_age - 1), &config), Judgement::Current);
        assert_eq!(judge(&cookie, Some(&login), &nobody(), at(max_age), &config), Judgement::Expired);
    }

    #[test]
    fn a_seal_that_does_not_open_to_the_current_token_is_inconsistent() {
        let (config, cookie, mut login) = setup();
        let id = SessionId::from_bytes([3; 32]);
        let (rotation, _) =
            rotation(&cookie, &login, Token::from_bytes([4; 32]), &id, ClientMeta::default(), at(1), &config);
        apply_rotation(&mut login, &rotation);
        login.token = Token::from_bytes([7; 32]).digest();
        assert_eq!(judge(&cookie, Some(&login), &nobody(), at(2), &config), Judgement::Inconsistent);
    }

    #[test]
    fn sessions_slide_without_a_write_per_request() {
        let (config, _, _) = setup();
        let user = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
        let id = SessionId::from_bytes([3; 32]);
        let session =
            new_session(Some(password_user(&user, None, at(0))), &id, SessionData::new(), at(0), &config);
        let cookie = SessionCookie { username: Some(user.clone()), id };
        let idle = config.idle().whole_seconds();
        assert_eq!(
            judge_session(&cookie, Some(&session), at(1), &config),
            SessionJudgement::Live { touch: false }
        );
        assert_eq!(
            judge_session(&cookie, Some(&session), at(idle / 4), &config),
            SessionJudgement::Live { touch: true }
        );
        assert_eq!(judge_session(&cookie, Some(&session), at(idle), &config), SessionJudgement::Expired);
        let other = SessionCookie {
            username: Some(Username::new("bob").unwrap_or_else(|e| panic!("{e}"))),
            ..cookie.clone()
        };
        assert_eq!(judge_session(&other, Some(&session), at(1), &config), SessionJudgement::Unknown);
        let anonymous = SessionCookie { username: None, ..cookie };
        assert_eq!(
            judge_session(&anonymous, Some(&session), at(1), &config),
            SessionJudgement::Unknown,
            "an anonymous cookie must not reach a user's session"
        );
    }

    #[test]
    fn sessions_end_at_the_absolute_timeout_however_active() {
        let (config, _, _) = setup();
        let user = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
        let id = SessionId::from_bytes([3; 32]);
        let mut session =
            new_session(Some(password_user(&user, None, at(0))), &id, SessionData::new(), at(0), &config);
        let cookie = SessionCookie { username: Some(user), id };
        let absolute = config.absolute().whole_seconds();
        let idle = config.idle().whole_seconds();
        // Touched every few minutes, it still ends at the absolute timeout.
        let mut now = 0;
        while now < absolute {
            if let SessionJudgement::Live { touch: true } =
                judge_session(&cookie, Some(&session), at(now), &config)
            {
                session.expires_at = session_expiry(at(now), session.created_at, &config);
            }
            assert!(session.expires_at <= at(absolute), "expiry pushed past the absolute timeout at {now}");
            now += idle / 3;
        }
        assert_eq!(session.expires_at, at(absolute));
        assert_eq!(judge_session(&cookie, Some(&session), at(absolute), &config), SessionJudgement::Expired);
        assert_eq!(
            judge_session(&cookie, Some(&session), at(absolute - 1), &config),
            SessionJudgement::Live { touch: false },
            "no touch once the expiry cannot move"
        );
    }

    #[test]
    fn logins_end_at_their_lifetime_however_often_used() {
        let (config, cookie, mut login) = setup();
        let lifetime = config.lifetime().whole_seconds();
        let day = 86_400;
        let mut now = day;
        let mut cookie = cookie;
        while now < lifetime {
            assert_eq!(
                judge(&cookie, Some(&login), &nobody(), at(now), &config),
                Judgement::Current,
                "at {now}"
            );
            let id = SessionId::from_bytes([3; 32]);
            let token = Token::from_bytes([(now % 250) as u8; 32]);
            let (rotation, next) =
                rotation(&cookie, &login, token, &id, ClientMeta::default(), at(now), &config);
            assert_eq!(rotation.session.user.as_ref().map(|u| u.method), Some(AuthMethod::Remembered));
            assert_eq!(rotation.session.user.as_ref().map(|u| u.authenticated_at), Some(at(0)));
            apply_rotation(&mut login, &rotation);
            assert!(login.expires_at <= at(lifetime), "login outlives its lifetime at {now}");
            cookie = next;
            now += 30 * day;
        }
        assert_eq!(judge(&cookie, Some(&login), &nobody(), at(lifetime), &config), Judgement::Expired);
        assert_eq!(login.authenticated_at, at(0), "rotations never change authenticated_at");
    }
}
