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
/// 16): the Unix seconds shifted left by [`OFFSET_BITS`] with the biased UTC
/// offset below them, as two `u32` halves, then the nanoseconds. The offset
/// is kept so that the round trip is exact, not merely the same instant.
///
/// The seconds of any `OffsetDateTime` fit: ±999 999 years (the `time`
/// crate's `large-dates` range) are under 2^45 seconds, 45 + 18 < 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp([u32; 3]);

impl Stamp {
    pub(crate) fn new(at: OffsetDateTime) -> Self {
        let offset = i64::from(at.offset().whole_seconds() + OFFSET_BIAS);
        let word = ((at.unix_timestamp() << OFFSET_BITS) | offset) as u64;
        Self([(word >> 32) as u32, word as u32, at.nanosecond()])
    }

    fn word(self) -> i64 {
        ((u64::from(self.0[0]) << 32) | u64::from(self.0[1])) as i64
    }

    /// The instant, as (Unix seconds, nanoseconds): what ordering and
    /// expiry compare, whatever the offset.
    pub(crate) fn instant(self) -> (i64, u32) {
        (self.word() >> OFFSET_BITS, self.0[2])
    }

    /// Whether the instant is at or before `now`'s.
    pub(crate) fn is_reached(self, now: Stamp) -> bool {
        self.instant() <= now.instant()
    }

    pub(crate) fn get(self) -> Result<OffsetDateTime, StoreError> {
        let offset = (self.word() & ((1 << OFFSET_BITS) - 1)) as i32 - OFFSET_BIAS;
        let (seconds, nanosecond) = self.instant();
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .and_then(|utc| utc.replace_nanosecond(nanosecond).ok())
            .and_then(|utc| utc.checked_to_offset(UtcOffset::from_whole_seconds(offset).ok()?))
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
