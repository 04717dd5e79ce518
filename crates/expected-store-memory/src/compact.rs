//! The compact form the store keeps records in, and the way back.
//!
//! A [`Login`] or a [`SessionRecord`] as the engine hands it over carries its
//! owner's username (a `String` per record), its user agent (another),
//! session data (a map, empty for almost every session) and 16-byte times.
//! The store keeps each record under its owner instead, so the username is
//! the key of the owner's entry and nowhere else; user agents are interned
//! ([`UserAgents`]), times take 12 bytes ([`Stamp`]), empty data takes no
//! allocation, and the rarely present previous token is boxed. Decoding
//! gives back exactly what was encoded (the unit tests below check every
//! field).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use expected_core::record::{AuthMethod, ClientMeta, PreviousToken, SessionData, SessionUser};
use expected_core::time::{OffsetDateTime, UtcOffset};
use expected_core::{Login, Serial, SessionDigest, SessionRecord, StoreError, TokenDigest, Username};

/// Bits of a [`Stamp`]'s first word that hold the UTC offset.
const OFFSET_BITS: u32 = 18;
/// Added to the offset's seconds (at most ±93 599: ±25:59:59) to make them
/// fit `OFFSET_BITS` unsigned bits.
const OFFSET_BIAS: i32 = 1 << (OFFSET_BITS - 1);

/// An `OffsetDateTime` in 12 bytes at 4-byte alignment (the original takes
/// 16): its local date and time as seconds since 1970-01-01 00:00, shifted
/// left by [`OFFSET_BITS`] with the biased UTC offset below them, as two
/// `u32` halves, then the nanoseconds. The offset is kept so that the round
/// trip is exact, not merely the same instant; the local time rather than
/// the UTC one is kept because it is what is always in `time`'s range (at
/// `PrimitiveDateTime::MIN` with a positive offset, the UTC time is not).
///
/// The seconds of any `OffsetDateTime` fit: ±999 999 years (the `time`
/// crate's `large-dates` range) are under 2^45 seconds, 45 + 18 < 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp([u32; 3]);

impl Stamp {
    pub(crate) fn new(at: OffsetDateTime) -> Self {
        let offset = at.offset().whole_seconds();
        let local = at.unix_timestamp() + i64::from(offset);
        let word = ((local << OFFSET_BITS) | i64::from(offset + OFFSET_BIAS)) as u64;
        Self([(word >> 32) as u32, word as u32, at.nanosecond()])
    }

    /// (local seconds, offset seconds).
    fn parts(self) -> (i64, i32) {
        let word = ((u64::from(self.0[0]) << 32) | u64::from(self.0[1])) as i64;
        (word >> OFFSET_BITS, (word & ((1 << OFFSET_BITS) - 1)) as i32 - OFFSET_BIAS)
    }

    /// The instant, as (Unix seconds, nanoseconds): what ordering and
    /// expiry compare, whatever the offset.
    pub(crate) fn instant(self) -> (i64, u32) {
        let (local, offset) = self.parts();
        (local - i64::from(offset), self.0[2])
    }

    /// Whether the instant is at or before `now`'s.
    pub(crate) fn is_reached(self, now: Stamp) -> bool {
        self.instant() <= now.instant()
    }

    pub(crate) fn get(self) -> Result<OffsetDateTime, StoreError> {
        let (local, offset) = self.parts();
        let offset = UtcOffset::from_whole_seconds(offset).ok();
        OffsetDateTime::from_unix_timestamp(local)
            .ok()
            .and_then(|local| local.replace_nanosecond(self.0[2]).ok())
            .zip(offset)
            .map(|(local, offset)| local.replace_offset(offset))
            .ok_or_else(|| StoreError::corrupt("a stored time does not decode"))
    }
}

/// The user agents the store's logins name, each held once.
///
/// Every login from the same browser build shares one `Arc<str>`. An
/// interned agent no record refers to any more is dropped by the next
/// [`sweep`](Self::sweep), which runs whenever the set has doubled since the
/// last one (and on every cleaning pass): the set never holds more than
/// twice the distinct agents that records referred to at the last sweep
/// (at least [`MIN_SWEEP`]), however many distinct agents clients send.
#[derive(Debug, Clone)]
pub(crate) struct UserAgents {
    interned: HashSet<Arc<str>>,
    /// The size at which the next insertion sweeps first.
    sweep_at: usize,
}

/// The interner's size below which it never sweeps: sweeping a handful of
/// entries over and over would cost more than keeping them.
pub(crate) const MIN_SWEEP: usize = 64;

impl Default for UserAgents {
    fn default() -> Self {
        Self { interned: HashSet::new(), sweep_at: MIN_SWEEP }
    }
}

impl UserAgents {
    /// The shared copy of `agent`.
    pub(crate) fn intern(&mut self, agent: &str) -> Arc<str> {
        if let Some(shared) = self.interned.get(agent) {
            return Arc::clone(shared);
        }
        if self.interned.len() >= self.sweep_at {
            self.sweep();
        }
        let shared: Arc<str> = Arc::from(agent);
        self.interned.insert(Arc::clone(&shared));
        shared
    }

    /// Shares `agent`, already held by a record, from now on (restoring a
    /// snapshot).
    pub(crate) fn adopt(&mut self, agent: &Arc<str>) {
        if !self.interned.contains(agent) {
            self.interned.insert(Arc::clone(agent));
        }
    }

    /// Drops every agent that only the interner still holds.
    pub(crate) fn sweep(&mut self) {
        self.interned.retain(|agent| Arc::strong_count(agent) > 1);
        self.interned.shrink_to_fit();
        self.sweep_at = (2 * self.interned.len()).max(MIN_SWEEP);
    }

    /// How many agents are interned.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.interned.len()
    }
}

/// A [`Login`] without its username (its owner's key).
#[derive(Debug, Clone)]
pub(crate) struct StoredLogin {
    pub(crate) serial: Serial,
    pub(crate) token: TokenDigest,
    /// Boxed: a login holds one only once used, and 112 bytes inline would
    /// weigh on every fresh login.
    previous: Option<Box<PreviousToken>>,
    pub(crate) session: Option<SessionDigest>,
    created_at: Stamp,
    last_used_at: Stamp,
    pub(crate) expires_at: Stamp,
    pub(crate) authenticated_at: Stamp,
    ip: Option<IpAddr>,
    user_agent: Option<Arc<str>>,
}

impl StoredLogin {
    pub(crate) fn new(login: &Login, agents: &mut UserAgents) -> Self {
        Self {
            serial: login.serial,
            token: login.token,
            previous: login.previous.map(Box::new),
            session: login.session,
            created_at: Stamp::new(login.created_at),
            last_used_at: Stamp::new(login.last_used_at),
            expires_at: Stamp::new(login.expires_at),
            authenticated_at: Stamp::new(login.authenticated_at),
            ip: login.client.ip,
            user_agent: login.client.user_agent.as_deref().map(|agent| agents.intern(agent)),
        }
    }

    /// The login as it was written, `username`'s.
    pub(crate) fn get(&self, username: &Username) -> Result<Login, StoreError> {
        Ok(Login {
            username: username.clone(),
            serial: self.serial,
            token: self.token,
            previous: self.previous.as_deref().copied(),
            session: self.session,
            created_at: self.created_at.get()?,
            last_used_at: self.last_used_at.get()?,
            expires_at: self.expires_at.get()?,
            client: ClientMeta { ip: self.ip, user_agent: self.user_agent.as_deref().map(str::to_owned) },
            authenticated_at: self.authenticated_at.get()?,
        })
    }

    /// The user agent, to share again after a restore.
    pub(crate) fn user_agent(&self) -> Option<&Arc<str>> {
        self.user_agent.as_ref()
    }
}

/// Session data, `None` when empty: almost every session's, and then it
/// costs one pointer.
fn store_data(data: &SessionData) -> Option<Box<SessionData>> {
    (!data.is_empty()).then(|| Box::new(data.clone()))
}

/// A logged-in user's [`SessionRecord`] without its username (its owner's
/// key).
#[derive(Debug, Clone)]
pub(crate) struct StoredSession {
    pub(crate) digest: SessionDigest,
    pub(crate) login: Option<Serial>,
    pub(crate) method: AuthMethod,
    pub(crate) authenticated_at: Stamp,
    created_at: Stamp,
    pub(crate) expires_at: Stamp,
    data: Option<Box<SessionData>>,
}

impl StoredSession {
    /// The compact form of a user's session (`user`: its owner part).
    pub(crate) fn new(session: &SessionRecord, user: &SessionUser) -> Self {
        Self {
            digest: session.digest,
            login: user.login,
            method: user.method,
            authenticated_at: Stamp::new(user.authenticated_at),
            created_at: Stamp::new(session.created_at),
            expires_at: Stamp::new(session.expires_at),
            data: store_data(&session.data),
        }
    }

    /// The session as it was written, `username`'s.
    pub(crate) fn get(&self, username: &Username) -> Result<SessionRecord, StoreError> {
        Ok(SessionRecord {
            digest: self.digest,
            user: Some(SessionUser {
                username: username.clone(),
                login: self.login,
                method: self.method,
                authenticated_at: self.authenticated_at.get()?,
            }),
            data: self.data.as_deref().cloned().unwrap_or_default(),
            created_at: self.created_at.get()?,
            expires_at: self.expires_at.get()?,
        })
    }

    /// What `save_session` writes: the data and the expiry.
    pub(crate) fn save(&mut self, session: &SessionRecord) {
        self.data = store_data(&session.data);
        self.expires_at = Stamp::new(session.expires_at);
    }
}

/// An anonymous visitor's [`SessionRecord`], without its key (the digest).
#[derive(Debug, Clone)]
pub(crate) struct StoredAnonymous {
    created_at: Stamp,
    pub(crate) expires_at: Stamp,
    data: Option<Box<SessionData>>,
}

impl StoredAnonymous {
    pub(crate) fn new(session: &SessionRecord) -> Self {
        Self {
            created_at: Stamp::new(session.created_at),
            expires_at: Stamp::new(session.expires_at),
            data: store_data(&session.data),
        }
    }

    /// The session as it was written, under `digest`.
    pub(crate) fn get(&self, digest: SessionDigest) -> Result<SessionRecord, StoreError> {
        Ok(SessionRecord {
            digest,
            user: None,
            data: self.data.as_deref().cloned().unwrap_or_default(),
            created_at: self.created_at.get()?,
            expires_at: self.expires_at.get()?,
        })
    }

    /// What `save_session` writes: the data and the expiry.
    pub(crate) fn save(&mut self, session: &SessionRecord) {
        self.data = store_data(&session.data);
        self.expires_at = Stamp::new(session.expires_at);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use expected_core::record::MAX_USER_AGENT_BYTES;
    use expected_core::secret::{MAX_USERNAME_BYTES, SealedSuccessor};
    use expected_core::time::{Duration, PrimitiveDateTime};
    use time::macros::{datetime, offset};

    use super::*;

    type Result = std::result::Result<(), Box<dyn std::error::Error>>;

    /// Times at the edges: the epoch, before it with nanoseconds, far
    /// offsets both ways, the first and last instants `time` represents.
    fn times() -> Vec<OffsetDateTime> {
        vec![
            OffsetDateTime::UNIX_EPOCH,
            datetime!(2030-01-02 03:04:05.678_901_234 UTC),
            datetime!(1969-12-31 23:59:59.999_999_999 UTC),
            datetime!(2030-06-01 12:00:00.000_000_001 +05:45),
            datetime!(2030-06-01 12:00 -12:00),
            datetime!(2030-06-01 12:00 +25:59:59),
            datetime!(2030-06-01 12:00 -25:59:59),
            PrimitiveDateTime::MIN.assume_utc(),
            PrimitiveDateTime::MAX.assume_utc(),
            PrimitiveDateTime::MIN.assume_offset(offset!(+25:59:59)),
            PrimitiveDateTime::MAX.assume_offset(offset!(-25:59:59)),
        ]
    }

    #[test]
    fn stamps_round_trip_instant_and_offset() -> Result {
        for at in times() {
            let back = Stamp::new(at).get()?;
            // `==` on `OffsetDateTime` compares instants only.
            assert_eq!((back, back.offset()), (at, at.offset()), "{at}");
        }
        Ok(())
    }

    #[test]
    fn stamps_order_as_their_instants() {
        let times = times();
        for a in &times {
            for b in &times {
                let (sa, sb) = (Stamp::new(*a), Stamp::new(*b));
                assert_eq!(sa.instant().cmp(&sb.instant()), a.cmp(b), "{a} against {b}");
                assert_eq!(sa.is_reached(sb), a <= b, "{a} against {b}");
            }
        }
    }

    fn username(text: &str) -> std::result::Result<Username, Box<dyn std::error::Error>> {
        Ok(Username::new(text)?)
    }

    fn longest_username() -> std::result::Result<Username, Box<dyn std::error::Error>> {
        // Multi-byte characters up to the last byte allowed.
        let mut name = "é".repeat(MAX_USERNAME_BYTES / 2);
        name.push('x');
        assert_eq!(name.len(), MAX_USERNAME_BYTES);
        username(&name)
    }

    fn previous() -> PreviousToken {
        PreviousToken {
            digest: TokenDigest::from_bytes([7; 32]),
            rotated_at: datetime!(2030-01-01 00:00:00.5 +01:00),
            sealed: SealedSuccessor::from_bytes([9; 64]),
        }
    }

    fn login(username: Username, client: ClientMeta) -> Login {
        let at = datetime!(2030-01-02 03:04:05.678_901_234 UTC);
        Login {
            username,
            serial: Serial::from_bytes([1; 16]),
            token: TokenDigest::from_bytes([2; 32]),
            previous: None,
            session: None,
            created_at: at,
            last_used_at: at + Duration::nanoseconds(1),
            expires_at: at + Duration::days(30),
            client,
            authenticated_at: at - Duration::seconds(1),
        }
    }

    #[test]
    fn logins_round_trip_every_field() -> Result {
        let clients = [
            ClientMeta::default(),
            ClientMeta::new(Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))), None),
            ClientMeta::new(
                Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
                Some("Firefox"),
            ),
            ClientMeta::new(None, Some("")),
            ClientMeta::new(None, Some(&"ü".repeat(MAX_USER_AGENT_BYTES))),
        ];
        let mut agents = UserAgents::default();
        for name in [username("a")?, longest_username()?] {
            for client in &clients {
                for previous in [None, Some(previous())] {
                    for session in [None, Some(SessionDigest::from_bytes([3; 32]))] {
                        let mut login = login(name.clone(), client.clone());
                        login.previous = previous;
                        login.session = session;
                        let back = StoredLogin::new(&login, &mut agents).get(&name)?;
                        assert_eq!(back, login);
                        for (back, at) in [
                            (back.created_at, login.created_at),
                            (back.last_used_at, login.last_used_at),
                            (back.expires_at, login.expires_at),
                            (back.authenticated_at, login.authenticated_at),
                        ] {
                            assert_eq!(back.offset(), at.offset());
                        }
                    }
                }
            }
        }
        // A non-UTC time in every field too, offsets included.
        let mut login = login(username("zoë")?, clients[2].clone());
        let [a, b, c, d] = [
            datetime!(2030-06-01 12:00 +05:45),
            datetime!(2030-06-01 12:00:00.000_000_001 -03:00),
            datetime!(2031-06-01 12:00 +25:59:59),
            datetime!(2029-06-01 12:00 -00:00:01),
        ];
        (login.created_at, login.last_used_at, login.expires_at, login.authenticated_at) = (a, b, c, d);
        login.previous = Some(previous());
        let back = StoredLogin::new(&login, &mut agents).get(&login.username)?;
        assert_eq!(back, login);
        assert_eq!(
            [back.created_at, back.last_used_at, back.expires_at, back.authenticated_at].map(|t| t.offset()),
            [a, b, c, d].map(|t| t.offset())
        );
        assert_eq!(back.previous.map(|p| p.rotated_at.offset()), Some(offset!(+01:00)));
        Ok(())
    }

    fn data(value: serde_json::Value) -> SessionData {
        match value {
            serde_json::Value::Object(map) => map,
            _ => SessionData::new(),
        }
    }

    #[test]
    fn sessions_round_trip_every_field() -> Result {
        let at = datetime!(2030-01-02 03:04:05.678_901_234 +02:00);
        let datas = [
            SessionData::new(),
            data(serde_json::json!({"cart": [1, 2.5, "three", null, {"deep": true}], "": ""})),
        ];
        for name in [username("a")?, longest_username()?] {
            for login in [None, Some(Serial::from_bytes([4; 16]))] {
                for method in [AuthMethod::Password, AuthMethod::Remembered] {
                    for data in &datas {
                        let user = SessionUser {
                            username: name.clone(),
                            login,
                            method,
                            authenticated_at: at - Duration::nanoseconds(1),
                        };
                        let session = SessionRecord {
                            digest: SessionDigest::from_bytes([5; 32]),
                            user: Some(user.clone()),
                            data: data.clone(),
                            created_at: at,
                            expires_at: at + Duration::minutes(30),
                        };
                        let back = StoredSession::new(&session, &user).get(&name)?;
                        assert_eq!(back, session);
                        assert_eq!(back.created_at.offset(), at.offset());
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn anonymous_sessions_round_trip_every_field() -> Result {
        let at = datetime!(2030-01-02 03:04:05.000_000_001 UTC);
        for data in [SessionData::new(), data(serde_json::json!({"theme": "dark", "n": 1}))] {
            let session = SessionRecord {
                digest: SessionDigest::from_bytes([6; 32]),
                user: None,
                data,
                created_at: at,
                expires_at: at + Duration::minutes(30),
            };
            let back = StoredAnonymous::new(&session).get(session.digest)?;
            assert_eq!(back, session);
        }
        Ok(())
    }

    #[test]
    fn saving_a_session_replaces_its_data_and_expiry_only() -> Result {
        let name = username("alice")?;
        let at = datetime!(2030-01-02 03:04:05 UTC);
        let user = SessionUser {
            username: name.clone(),
            login: None,
            method: AuthMethod::Password,
            authenticated_at: at,
        };
        let mut session = SessionRecord {
            digest: SessionDigest::from_bytes([5; 32]),
            user: Some(user.clone()),
            data: data(serde_json::json!({"a": 1})),
            created_at: at,
            expires_at: at + Duration::minutes(30),
        };
        let mut stored = StoredSession::new(&session, &user);
        session.data = SessionData::new();
        session.expires_at = at + Duration::minutes(60);
        stored.save(&session);
        assert_eq!(stored.get(&name)?, session);
        session.data = data(serde_json::json!({"b": [2]}));
        stored.save(&session);
        assert_eq!(stored.get(&name)?, session);
        Ok(())
    }

    #[test]
    fn equal_user_agents_are_held_once() {
        let mut agents = UserAgents::default();
        let first = agents.intern("Mozilla/5.0");
        let second = agents.intern(&String::from("Mozilla/5.0"));
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(agents.len(), 1);
    }

    #[test]
    fn the_interner_drops_agents_no_record_holds() {
        let mut agents = UserAgents::default();
        let kept: Vec<Arc<str>> = (0..10).map(|i| agents.intern(&format!("kept {i}"))).collect();
        // A client sending a new agent with every request: nothing keeps
        // them but the interner.
        for i in 0..100_000 {
            drop(agents.intern(&format!("attack {i}")));
            assert!(agents.len() <= MIN_SWEEP + 1, "{} agents after {i}", agents.len());
        }
        agents.sweep();
        assert_eq!(agents.len(), kept.len(), "only the agents records hold are left");
        for agent in &kept {
            assert!(Arc::ptr_eq(agent, &agents.intern(agent)), "{agent} is still shared");
        }
    }
}
