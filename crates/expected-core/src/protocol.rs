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
use crate::keys::KeyId;
use crate::record::{AuthMethod, ClientMeta, Login, PreviousToken, SessionData, SessionRecord, SessionUser};
use crate::secret::{SealedSuccessor, Serial, SessionDigest, SessionId, Token, Username};
use crate::store::{CurrentRotation, Rotation};

/// Why a presented auth cookie is taken for a replayed copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TheftCause {
    /// The token is neither the current one, nor the previous one inside the
    /// grace window, nor one the server's key derives ahead of the store: a
    /// stale copy, a token two or more rotations old, or a forged one.
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
    /// The presented token is `steps` rotations *ahead* of the stored one:
    /// the store lost its last rotations (a failover to a replica that missed
    /// them, a backup restore), and the token is what the server's key
    /// derives from the stored one ([`crate::keys`]). Rotate it as if it
    /// were current: the store catches up, nothing is revoked.
    Ahead {
        /// How many successor steps lead from the stored token to the
        /// presented one (1 to [`Config::rollback_steps`]).
        steps: u16,
    },
    /// The presented token is the previous one, inside the grace window, from
    /// the client the rotation recorded (as the [`GraceBinding`] asks): the
    /// request is authenticated without another rotation, and the client gets
    /// the successor credentials, opened from the seal.
    Grace {
        /// The current token, which the client should now hold.
        token: Token,
        /// The key that derived it (for the cookie), when one of the
        /// configured keys did.
        key: Option<KeyId>,
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
/// ([`client_match`]). Any other token is walked forward from the stored
/// one ([`steps_ahead`]) before it is taken for theft.
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
            let key = config
                .token_keys()
                .and_then(|keys| keys.derived_by(&login.serial, &previous.digest, &token))
                .cloned();
            Judgement::Grace { token, key, session: bound.then_some(session) }
        }
        Some(previous) if previous.digest.matches(&cookie.token) => theft(TheftCause::StaleToken),
        _ => match steps_ahead(cookie, login, config) {
            Some(steps) => Judgement::Ahead { steps },
            None => theft(TheftCause::StaleToken),
        },
    }
}

/// How many rotations `cookie`'s token is ahead of the login's stored token:
/// the walk of [`TokenKey::steps_ahead`](crate::keys::TokenKey::steps_ahead)
/// with the key the cookie names, at most [`Config::rollback_steps`] steps.
/// `None` without token keys, for a key-less (format 1) cookie, for a key id
/// that is not configured, and for any token not on that walk.
pub fn steps_ahead(cookie: &AuthCookie, login: &Login, config: &Config) -> Option<u16> {
    let key = config.token_keys()?.get(cookie.key.as_ref()?)?;
    key.steps_ahead(&login.serial, &login.token, &cookie.token, config.rollback_steps())
}

/// The token that replaces a presented one, and the key that derived it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor {
    /// The new token.
    pub token: Token,
    /// The key that derived it; `None` for a random one.
    pub key: Option<KeyId>,
}

impl From<Token> for Successor {
    /// A random successor, derived by no key.
    fn from(token: Token) -> Self {
        Self { token, key: None }
    }
}

/// The successor of `presented` under the configured current key, `None`
/// without token keys (the engine then draws a random one).
pub fn derived_successor(presented: &AuthCookie, config: &Config) -> Option<Successor> {
    let key = config.token_keys()?.current();
    let token = key.successor(&presented.serial, &presented.token.digest());
    Some(Successor { token, key: Some(key.id().clone()) })
}

/// The key id a login's first cookie carries: the current key's, when token
/// keys are configured.
pub fn issuing_key(config: &Config) -> Option<KeyId> {
    config.token_keys().map(|keys| keys.current().id().clone())
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
///
/// `presented` is the digest of the cookie's id ([`SessionId::digest`]):
/// the caller computed it to look the session up, and hashing the id again
/// here would only repeat that work on every request. It is compared with
/// the stored digest in constant time all the same: the store found the
/// session by it, but a store need not compare keys in constant time, nor
/// be right.
pub fn judge_session(
    cookie: &SessionCookie,
    presented: &SessionDigest,
    session: Option<&SessionRecord>,
    now: OffsetDateTime,
    config: &Config,
) -> SessionJudgement {
    let Some(session) = session else {
        return SessionJudgement::Unknown;
    };
    if session.username() != cookie.username.as_ref() || !session.digest.ct_eq(presented) {
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
    (login, AuthCookie { username: username.clone(), serial, token, key: issuing_key(config) })
}

/// The rotation for a cookie login with the token `presented` of `login`
/// (its current one, or one [ahead](Judgement::Ahead) of it), given the
/// `token` and session `id` to replace it with.
///
/// Returns the rotation for [`Store::rotate_login`](crate::Store::rotate_login)
/// and the new auth cookie. The compare-and-swap expects the login's stored
/// token; the presented one becomes `previous`, so that a concurrent request
/// that presents it too gets grace, also after a heal. The new session is
/// [`AuthMethod::Remembered`] with the login's `authenticated_at`; the login
/// keeps its lifetime from `created_at`.
pub fn rotation(
    presented: &AuthCookie,
    login: &Login,
    token: impl Into<Successor>,
    id: &SessionId,
    client: ClientMeta,
    now: OffsetDateTime,
    config: &Config,
) -> (Rotation, AuthCookie) {
    let expires_at = login_expiry(now, login.created_at, config);
    let user = remembered_user(login);
    let (mut rotation, cookie) =
        planned_rotation(presented, user, token, id, client, now, expires_at, config);
    rotation.expected = login.token;
    (rotation, cookie)
}

/// The optimistic rotation of a cookie login, planned before the login is
/// read ([`Store::rotate_current`](crate::Store::rotate_current)): the
/// rotation [`rotation`] would plan if the presented token were the login's
/// current one, with the conditions under which it is exactly that.
///
/// What [`rotation`] takes from the stored login is its current token (here
/// the presented one's digest: the compare-and-swap tests the judgement
/// [`Judgement::Current`]), its liveness (the store checks `now <
/// expires_at`), its `created_at` (for `expires_at = min(now + max age,
/// created_at + lifetime)`: the plan takes `now + max age` and applies only
/// to a login created at or after `now + max age - lifetime`, one whose
/// lifetime cap does not bind) and its `authenticated_at` (which the store
/// copies into the new session). So the store decides nothing: it checks a
/// digest and two bounds computed here, and a login that fails any of them
/// is judged by [`judge`] as before. `None` when the bounds overflow the
/// calendar (the engine then reads and judges the login first).
pub fn current_rotation(
    presented: &AuthCookie,
    token: impl Into<Successor>,
    id: &SessionId,
    client: ClientMeta,
    now: OffsetDateTime,
    config: &Config,
) -> Option<(CurrentRotation, AuthCookie)> {
    let expires_at = now.checked_add(config.max_age())?;
    let created_since = expires_at.checked_sub(config.lifetime())?;
    let user = SessionUser {
        username: presented.username.clone(),
        login: Some(presented.serial),
        method: AuthMethod::Remembered,
        // A placeholder: the store writes the login's own.
        authenticated_at: now,
    };
    let (rotation, cookie) = planned_rotation(presented, user, token, id, client, now, expires_at, config);
    Some((CurrentRotation { rotation, now, created_since }, cookie))
}

/// The rotation replacing `presented` for a new session owned by `user`,
/// the login expiring at `expires_at`.
#[allow(clippy::too_many_arguments)]
fn planned_rotation(
    presented: &AuthCookie,
    user: SessionUser,
    token: impl Into<Successor>,
    id: &SessionId,
    client: ClientMeta,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
    config: &Config,
) -> (Rotation, AuthCookie) {
    let Successor { token, key } = token.into();
    let session = new_session(Some(user), id, SessionData::new(), now, config);
    let presented_digest = presented.token.digest();
    let rotation = Rotation {
        username: presented.username.clone(),
        serial: presented.serial,
        expected: presented_digest,
        token: token.digest(),
        previous: PreviousToken {
            digest: presented_digest,
            rotated_at: now,
            sealed: SealedSuccessor::seal(&presented.token, &token, id),
        },
        session,
        last_used_at: now,
        expires_at,
        client,
        max_sessions: config.max_sessions_per_user(),
    };
    let cookie = AuthCookie { username: presented.username.clone(), serial: presented.serial, token, key };
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

/// The logins a new login ends under the per-user cap `max`: `others` being
/// the user's other logins, the least recently used (`last_used_at`, then
/// `created_at`) beyond `max - 1` of them, so that with the new one the user
/// holds at most `max`. The new login is never among them.
pub fn logins_over_cap(others: &[Login], max: std::num::NonZeroUsize) -> Vec<Serial> {
    let excess = (others.len() + 1).saturating_sub(max.get());
    let mut oldest: Vec<&Login> = others.iter().collect();
    oldest.sort_by_key(|login| (login.last_used_at, login.created_at));
    oldest.into_iter().take(excess).map(|login| login.serial).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn the_cap_ends_the_least_recently_used_logins_beyond_it() {
        let config = Config::default();
        let cap = |n| std::num::NonZeroUsize::new(n).unwrap_or(std::num::NonZeroUsize::MIN);
        let mut logins = Vec::new();
        for (n, (used, created)) in [(30, 0), (10, 5), (10, 1), (20, 0)].into_iter().enumerate() {
            let (_, mut login) = login_under(&config);
            login.serial = Serial::from_bytes([n as u8 + 1; 16]);
            login.last_used_at = at(used);
            login.created_at = at(created);
            logins.push(login);
        }
        let serial = |n: usize| logins[n].serial;
        // Four others and the new one: a cap of 5 ends none, 3 the two least
        // recently used (a tie in use broken by the older creation), 1 all.
        assert_eq!(logins_over_cap(&logins, cap(5)), vec![]);
        assert_eq!(logins_over_cap(&logins, cap(4)), vec![serial(2)]);
        assert_eq!(logins_over_cap(&logins, cap(3)), vec![serial(2), serial(1)]);
        assert_eq!(logins_over_cap(&logins, cap(1)), vec![serial(2), serial(1), serial(3), serial(0)]);
        assert_eq!(logins_over_cap(&[], cap(1)), vec![]);
    }

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
        let (cookie, login) = login_under(&config);
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
            Judgement::Grace { token: next.token.clone(), key: None, session: Some(id) }
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
        let grace = Judgement::Grace { token, key: None, session: Some(SessionId::from_bytes([3; 32])) };
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
            judge_session(&cookie, &cookie.id.digest(), Some(&session), at(1), &config),
            SessionJudgement::Live { touch: false }
        );
        assert_eq!(
            judge_session(&cookie, &cookie.id.digest(), Some(&session), at(idle / 4), &config),
            SessionJudgement::Live { touch: true }
        );
        assert_eq!(
            judge_session(&cookie, &cookie.id.digest(), Some(&session), at(idle), &config),
            SessionJudgement::Expired
        );
        let other = SessionCookie {
            username: Some(Username::new("bob").unwrap_or_else(|e| panic!("{e}"))),
            ..cookie.clone()
        };
        assert_eq!(
            judge_session(&other, &other.id.digest(), Some(&session), at(1), &config),
            SessionJudgement::Unknown
        );
        // The digest is what is compared: another id's digest next to the
        // right username finds nothing, even when the store answered this
        // session for it.
        let stranger = SessionId::from_bytes([9; 32]).digest();
        assert_eq!(
            judge_session(&cookie, &stranger, Some(&session), at(1), &config),
            SessionJudgement::Unknown
        );
        let anonymous = SessionCookie { username: None, ..cookie };
        assert_eq!(
            judge_session(&anonymous, &anonymous.id.digest(), Some(&session), at(1), &config),
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
                judge_session(&cookie, &cookie.id.digest(), Some(&session), at(now), &config)
            {
                session.expires_at = session_expiry(at(now), session.created_at, &config);
            }
            assert!(session.expires_at <= at(absolute), "expiry pushed past the absolute timeout at {now}");
            now += idle / 3;
        }
        assert_eq!(session.expires_at, at(absolute));
        assert_eq!(
            judge_session(&cookie, &cookie.id.digest(), Some(&session), at(absolute), &config),
            SessionJudgement::Expired
        );
        assert_eq!(
            judge_session(&cookie, &cookie.id.digest(), Some(&session), at(absolute - 1), &config),
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

    // ---- Rollback: tokens ahead of the store ----------------------------

    fn key(id: &str, byte: u8) -> crate::keys::TokenKey {
        let id = KeyId::new(id).unwrap_or_else(|e| panic!("{e}"));
        crate::keys::TokenKey::new(id, &[byte; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A config whose current key is `current` and whose fallbacks are
    /// `fallbacks`, walking `steps`.
    fn keyed(current: &str, fallbacks: &[&str], steps: u16) -> Config {
        let byte = |id: &str| id.bytes().fold(0u8, u8::wrapping_add);
        let keys = crate::keys::TokenKeys::new(
            key(current, byte(current)),
            fallbacks.iter().map(|id| key(id, byte(id))).collect(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Config::builder()
            .token_keys(Some(keys))
            .rollback_steps(steps)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A login registered under `config`, and its first cookie.
    fn login_under(config: &Config) -> (AuthCookie, Login) {
        let user = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
        let session = new_session(
            Some(password_user(&user, None, at(0))),
            &SessionId::from_bytes([9; 32]),
            SessionData::new(),
            at(0),
            config,
        );
        let (login, cookie) = new_login(
            &user,
            Serial::from_bytes([1; 16]),
            Token::from_bytes([2; 32]),
            &session,
            nobody(),
            at(0),
            config,
        );
        (cookie, login)
    }

    /// One cookie login with `cookie` at `now`, as the engine makes it:
    /// the derived successor, applied to `login`.
    fn rotate(login: &mut Login, cookie: &AuthCookie, now: OffsetDateTime, config: &Config) -> AuthCookie {
        let next = derived_successor(cookie, config).unwrap_or_else(|| panic!("keys are configured"));
        let id = SessionId::from_bytes([now.second(); 32]);
        let (rotation, cookie) = rotation(cookie, login, next, &id, nobody(), now, config);
        apply_rotation(login, &rotation);
        cookie
    }

    /// `n` rotations 100 s apart from the first cookie: every cookie the
    /// device held (index 0 is the first), and the login after each.
    fn chain(config: &Config, n: usize) -> (Vec<AuthCookie>, Vec<Login>) {
        let (cookie, mut login) = login_under(config);
        let (mut cookies, mut logins) = (vec![cookie], vec![login.clone()]);
        for i in 1..=n {
            let next = rotate(&mut login, &cookies[i - 1], at(100 * i as i64), config);
            cookies.push(next);
            logins.push(login.clone());
        }
        (cookies, logins)
    }

    #[test]
    fn a_store_rolled_back_heals_and_replays_stay_theft() {
        let config = keyed("k1", &[], 8);
        let (cookies, logins) = chain(&config, 6);
        assert_eq!(cookies[6].key.as_ref().map(KeyId::as_str), Some("k1"), "the cookie names its key");
        // The store is restored to its state after the second rotation.
        let mut restored = logins[2].clone();
        let later = at(10_000);
        let judged =
            |cookie: &AuthCookie, login: &Login| judge(cookie, Some(login), &nobody(), later, &config);
        assert_eq!(judged(&cookies[6], &restored), Judgement::Ahead { steps: 4 }, "four lost rotations");
        assert_eq!(judged(&cookies[3], &restored), Judgement::Ahead { steps: 1 });
        assert_eq!(judged(&cookies[2], &restored), Judgement::Current, "the backup's own token");
        assert_eq!(judged(&cookies[1], &restored), stale(), "a cookie from before the backup is theft");
        assert_eq!(judged(&cookies[0], &restored), stale());

        // The heal: the rotation expects the stored token and replaces the presented one.
        let healed = rotate(&mut restored, &cookies[6], later, &config);
        assert_eq!(restored.previous.map(|p| p.digest), Some(cookies[6].token.digest()));
        assert_eq!(
            healed.token,
            derived_successor(&cookies[6], &config).map(|s| s.token).unwrap_or_else(|| panic!())
        );
        assert_eq!(judged(&healed, &restored), Judgement::Current, "healed: the next cookie login is plain");
        for (i, old) in cookies[..6].iter().enumerate() {
            assert_eq!(judged(old, &restored), stale(), "cookie {i}, behind the healed store, is theft");
        }
        // Inside the grace window of the heal, the presented token converges.
        assert!(matches!(
            judge(&cookies[6], Some(&restored), &nobody(), later, &config),
            Judgement::Grace { token, key: Some(_), .. } if token == healed.token
        ));
    }

    #[test]
    fn more_lost_rotations_than_the_bound_are_theft() {
        let config = keyed("k1", &[], 3);
        let (cookies, logins) = chain(&config, 5);
        let judged = |cookie: &AuthCookie| judge(cookie, Some(&logins[1]), &nobody(), at(10_000), &config);
        assert_eq!(judged(&cookies[4]), Judgement::Ahead { steps: 3 }, "exactly the bound heals");
        assert_eq!(judged(&cookies[5]), stale(), "one more is taken for theft");
        let off = keyed("k1", &[], 0);
        assert_eq!(
            judge(&cookies[2], Some(&logins[1]), &nobody(), at(10_000), &off),
            stale(),
            "zero disables"
        );
    }

    #[test]
    fn a_token_ahead_of_the_store_needs_the_key() {
        let config = keyed("k1", &[], 8);
        let (cookies, logins) = chain(&config, 3);
        let store = &logins[1];
        let judged =
            |cookie: &AuthCookie, config: &Config| judge(cookie, Some(store), &nobody(), at(10_000), config);
        assert_eq!(judged(&cookies[2], &config), Judgement::Ahead { steps: 1 });
        // A cookie thief without the key steps ahead with a key of its own.
        let guess = key("k1", 0xAA).successor(&store.serial, &store.token);
        assert_eq!(judged(&AuthCookie { token: guess, ..cookies[2].clone() }, &config), stale());
        // Or with a random token.
        let random = Token::from_bytes([0x55; 32]);
        assert_eq!(judged(&AuthCookie { token: random, ..cookies[2].clone() }, &config), stale());
        // The right token under a key id the server does not have, or none.
        let unknown = Some(KeyId::new("k9").unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(judged(&AuthCookie { key: unknown, ..cookies[2].clone() }, &config), stale());
        assert_eq!(judged(&AuthCookie { key: None, ..cookies[2].clone() }, &config), stale());
        // A server without keys never walks.
        assert_eq!(judged(&cookies[2], &Config::default()), stale());
        // The walk is for this login only: another serial's chain does not lead there.
        let other = Login { serial: Serial::from_bytes([7; 16]), ..store.clone() };
        let moved = AuthCookie { serial: other.serial, ..cookies[2].clone() };
        assert_eq!(judge(&moved, Some(&other), &nobody(), at(10_000), &config), stale());
    }

    #[test]
    fn fallback_keys_keep_rolled_back_logins_healing_across_a_key_change() {
        let before = keyed("old", &[], 8);
        let (cookies, logins) = chain(&before, 3);
        let after = keyed("new", &["old"], 8);
        let judged = |cookie: &AuthCookie, login: &Login, config: &Config| {
            judge(cookie, Some(login), &nobody(), at(10_000), config)
        };
        assert_eq!(judged(&cookies[3], &logins[3], &after), Judgement::Current, "no one is logged out");
        assert_eq!(
            judged(&cookies[3], &logins[1], &after),
            Judgement::Ahead { steps: 2 },
            "the fallback walks"
        );
        let mut healed = logins[1].clone();
        let next = rotate(&mut healed, &cookies[3], at(10_000), &after);
        assert_eq!(
            next.key.as_ref().map(KeyId::as_str),
            Some("new"),
            "the heal moves the login to the new key"
        );
        let dropped = keyed("new", &[], 8);
        assert_eq!(
            judged(&cookies[3], &logins[3], &dropped),
            Judgement::Current,
            "a current token needs no key"
        );
        assert_eq!(
            judged(&cookies[3], &logins[1], &dropped),
            stale(),
            "with the old key dropped, a rollback across the change cannot heal"
        );
        // Grace names the key that derived the successor.
        let mut raced = logins[3].clone();
        let won = rotate(&mut raced, &cookies[3], at(10_000), &after);
        match judge(&cookies[3], Some(&raced), &nobody(), at(10_001), &after) {
            Judgement::Grace { token, key, .. } => {
                assert_eq!(token, won.token);
                assert_eq!(key.as_ref().map(KeyId::as_str), Some("new"));
            }
            other => panic!("expected grace, got {other:?}"),
        }
    }

    #[test]
    fn rollback_steps_need_keys_and_a_bound() {
        assert_eq!(
            Config::builder().rollback_steps(4).build(),
            Err(crate::ConfigError::RollbackStepsWithoutKeys(4))
        );
        let keys = crate::keys::TokenKeys::new(key("k", 1), Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Config::builder().token_keys(Some(keys)).rollback_steps(5000).build(),
            Err(crate::ConfigError::TooManyRollbackSteps(5000))
        );
        assert_eq!(Config::default().rollback_steps(), 0, "no keys, no walk");
        assert_eq!(keyed("k", &[], 32).rollback_steps(), 32);
    }

    proptest::proptest! {
        /// Whatever the rotations and wherever the store is rolled back to,
        /// the device's latest cookie heals within the bound and is theft
        /// beyond it, and every cookie older than the restored one is theft.
        #[test]
        fn rollbacks_heal_within_the_bound_only(rotations in 0usize..12, back in 0usize..12, bound in 0u16..8) {
            let config = keyed("k", &[], bound);
            let (cookies, logins) = chain(&config, rotations);
            let restored_at = rotations.saturating_sub(back);
            let store = &logins[restored_at];
            let lost = rotations - restored_at;
            let latest = judge(&cookies[rotations], Some(store), &nobody(), at(10_000), &config);
            let expected = match lost {
                0 => Judgement::Current,
                n if n <= usize::from(bound) => Judgement::Ahead { steps: n as u16 },
                _ => stale(),
            };
            proptest::prop_assert_eq!(latest, expected);
            for old in &cookies[..restored_at] {
                proptest::prop_assert_eq!(judge(old, Some(store), &nobody(), at(10_000), &config), stale());
            }
        }
    }
}
