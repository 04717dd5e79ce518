//! The protocol as pure decisions.
//!
//! Every function here is a function of what the client presented, what the
//! store holds, the time and the configuration: no I/O, no clock, no random
//! source. The [engine](crate::Expected) reads the inputs and applies the
//! results; tests drive these functions directly.

use time::OffsetDateTime;

use crate::config::Config;
use crate::credential::{AuthCookie, SessionCookie};
use crate::record::{ClientMeta, Login, PreviousToken, Session, SessionData};
use crate::secret::{SealedSuccessor, Serial, SessionId, Token, Username};
use crate::store::Rotation;

/// What a presented auth cookie is worth against the stored login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// No login under that username and serial: not authenticated.
    Unknown,
    /// The login exists but was unused for longer than the cookie max age: it
    /// is deleted, not authenticated.
    Expired,
    /// The presented token is the current one: rotate it.
    Current,
    /// The presented token is the previous one, inside the grace window: the
    /// request is authenticated without another rotation, and the client gets
    /// the successor credentials, opened from the seal.
    Grace {
        /// The current token, which the client should now hold.
        token: Token,
        /// The session the rotation opened, if the login is still bound to it.
        session: Option<SessionId>,
    },
    /// The serial is known but the token is neither current nor previous inside
    /// the grace window: somebody replayed an old cookie. Every login and
    /// session of the user is deleted.
    Theft,
    /// The seal of the previous token did not open to the current token: the
    /// store returned a record that was not written atomically. Treated as a
    /// store failure (fail closed).
    Inconsistent,
}

/// Judges `cookie` against the login the store returned for its username and
/// serial.
///
/// Digests are compared in constant time. A login whose username differs from
/// the cookie's never authenticates (it is [`Judgement::Unknown`]).
pub fn judge(cookie: &AuthCookie, login: Option<&Login>, now: OffsetDateTime, config: &Config) -> Judgement {
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
    match &login.previous {
        Some(previous) if previous.digest.matches(&cookie.token) && in_grace(previous, now, config) => {
            let (token, session) = previous.sealed.open(&cookie.token);
            if !login.token.matches(&token) {
                return Judgement::Inconsistent;
            }
            let bound = login.session.is_some_and(|digest| digest.matches(&session));
            Judgement::Grace { token, session: bound.then_some(session) }
        }
        _ => Judgement::Theft,
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
    /// The session's idle timeout has passed.
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
    session: Option<&Session>,
    now: OffsetDateTime,
    config: &Config,
) -> SessionJudgement {
    let Some(session) = session else {
        return SessionJudgement::Unknown;
    };
    if session.username != cookie.username || !session.digest.matches(&cookie.id) {
        return SessionJudgement::Unknown;
    }
    if !session.is_live(now) {
        return SessionJudgement::Expired;
    }
    let idle = config.idle();
    let remaining = session.expires_at - now;
    SessionJudgement::Live { touch: remaining <= idle - idle / 4 }
}

/// When a session touched at `now` expires.
pub fn session_expiry(now: OffsetDateTime, config: &Config) -> OffsetDateTime {
    now.saturating_add(config.idle())
}

/// When a login used at `now` expires.
pub fn login_expiry(now: OffsetDateTime, config: &Config) -> OffsetDateTime {
    now.saturating_add(config.max_age())
}

/// A new session record for the secret `id`.
pub fn new_session(
    username: &Username,
    id: &SessionId,
    login: Option<Serial>,
    data: SessionData,
    now: OffsetDateTime,
    config: &Config,
) -> Session {
    Session {
        digest: id.digest(),
        username: username.clone(),
        login,
        data,
        created_at: now,
        expires_at: session_expiry(now, config),
    }
}

/// A new login record and the cookie that carries it.
pub fn new_login(
    username: &Username,
    serial: Serial,
    token: Token,
    session: &Session,
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
        expires_at: login_expiry(now, config),
        client,
    };
    (login, AuthCookie { username: username.clone(), serial, token })
}

/// The rotation for a cookie login with the current token `presented`, given
/// the fresh `token` and session `id` to replace it with.
///
/// Returns the rotation for [`Store::rotate_login`](crate::Store::rotate_login)
/// and the new auth cookie.
pub fn rotation(
    presented: &AuthCookie,
    token: Token,
    id: &SessionId,
    client: ClientMeta,
    now: OffsetDateTime,
    config: &Config,
) -> (Rotation, AuthCookie) {
    let session =
        new_session(&presented.username, id, Some(presented.serial), SessionData::new(), now, config);
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
        expires_at: login_expiry(now, config),
        client,
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

    fn setup() -> (Config, AuthCookie, Login) {
        let config = Config::default();
        let user = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
        let session =
            new_session(&user, &SessionId::from_bytes([9; 32]), None, SessionData::new(), at(0), &config);
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
        assert_eq!(judge(&cookie, Some(&login), at(1), &config), Judgement::Current);
        let id = SessionId::from_bytes([3; 32]);
        let (rotation, next) =
            rotation(&cookie, Token::from_bytes([4; 32]), &id, ClientMeta::default(), at(1), &config);
        apply_rotation(&mut login, &rotation);
        assert_eq!(judge(&next, Some(&login), at(2), &config), Judgement::Current);
        assert_eq!(
            judge(&cookie, Some(&login), at(30), &config),
            Judgement::Grace { token: next.token.clone(), session: Some(id) }
        );
        // The window is open at its end: 30 s after the rotation it is over.
        assert_eq!(judge(&cookie, Some(&login), at(31), &config), Judgement::Theft);
        let forged = AuthCookie { token: Token::from_bytes([5; 32]), ..cookie.clone() };
        assert_eq!(judge(&forged, Some(&login), at(2), &config), Judgement::Theft);
    }

    #[test]
    fn the_window_tolerates_lagging_clocks_within_the_grace_period() {
        let (config, cookie, mut login) = setup();
        let id = SessionId::from_bytes([3; 32]);
        let (rotation, _) =
            rotation(&cookie, Token::from_bytes([4; 32]), &id, ClientMeta::default(), at(100), &config);
        apply_rotation(&mut login, &rotation);
        assert!(matches!(judge(&cookie, Some(&login), at(71), &config), Judgement::Grace { .. }));
        assert_eq!(judge(&cookie, Some(&login), at(70), &config), Judgement::Theft);
    }

    #[test]
    fn zero_grace_disables_the_window() -> Result<(), crate::ConfigError> {
        let (_, cookie, mut login) = setup();
        let config = Config::builder().grace_period(std::time::Duration::ZERO).build()?;
        let id = SessionId::from_bytes([3; 32]);
        let (rotation, _) =
            rotation(&cookie, Token::from_bytes([4; 32]), &id, ClientMeta::default(), at(1), &config);
        apply_rotation(&mut login, &rotation);
        assert_eq!(judge(&cookie, Some(&login), at(1), &config), Judgement::Theft);
        assert_eq!(judge(&cookie, Some(&login), at(0), &config), Judgement::Theft, "even on a lagging clock");
        Ok(())
    }

    #[test]
    fn another_users_cookie_never_matches() {
        let (config, cookie, login) = setup();
        let mallory =
            AuthCookie { username: Username::new("mallory").unwrap_or_else(|e| panic!("{e}")), ..cookie };
        assert_eq!(judge(&mallory, Some(&login), at(1), &config), Judgement::Unknown);
        assert_eq!(judge(&mallory, None, at(1), &config), Judgement::Unknown);
    }

    #[test]
    fn logins_expire_after_the_max_age() {
        let (config, cookie, login) = setup();
        let max_age = config.max_age().whole_seconds();
        assert_eq!(judge(&cookie, Some(&login), at(max_age - 1), &config), Judgement::Current);
        assert_eq!(judge(&cookie, Some(&login), at(max_age), &config), Judgement::Expired);
    }

    #[test]
    fn a_seal_that_does_not_open_to_the_current_token_is_inconsistent() {
        let (config, cookie, mut login) = setup();
        let id = SessionId::from_bytes([3; 32]);
        let (rotation, _) =
            rotation(&cookie, Token::from_bytes([4; 32]), &id, ClientMeta::default(), at(1), &config);
        apply_rotation(&mut login, &rotation);
        login.token = Token::from_bytes([7; 32]).digest();
        assert_eq!(judge(&cookie, Some(&login), at(2), &config), Judgement::Inconsistent);
    }

    #[test]
    fn sessions_slide_without_a_write_per_request() {
        let (config, _, _) = setup();
        let user = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
        let id = SessionId::from_bytes([3; 32]);
        let session = new_session(&user, &id, None, SessionData::new(), at(0), &config);
        let cookie = SessionCookie { username: user.clone(), id };
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
        let other =
            SessionCookie { username: Username::new("bob").unwrap_or_else(|e| panic!("{e}")), ..cookie };
        assert_eq!(judge_session(&other, Some(&session), at(1), &config), SessionJudgement::Unknown);
    }
}
