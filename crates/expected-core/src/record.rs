//! What a store keeps: [`Login`]s (one per device) and [`SessionRecord`]s.
//!
//! The stored session is a *record*; the handle a request handler holds on it
//! is the adapters' `Session` extractor. The names differ on purpose.
//!
//! Both serialize with serde to one canonical form (RFC 3339 UTC times, at
//! most six fractional digits with trailing zeros trimmed; base64url bytes),
//! which key-value stores may use as is.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::secret::{SealedSuccessor, Serial, SessionDigest, TokenDigest, Username};

/// Longest user agent kept, in bytes; longer ones are cut at a character
/// boundary so that a client cannot make the store hold arbitrary data.
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// What is known of the client behind a request, kept with a login for the
/// devices list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMeta {
    /// The client's IP address, as the adapter determined it.
    pub ip: Option<IpAddr>,
    /// The `User-Agent`, cut to [`MAX_USER_AGENT_BYTES`].
    pub user_agent: Option<String>,
}

impl ClientMeta {
    /// Metadata from an address and a user agent, the latter cut to size and
    /// stripped of control characters.
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent.map(|agent| {
            // Every request builds one, and a browser's agent is printable
            // ASCII within the bound: copied whole, not char by char.
            if agent.len() <= MAX_USER_AGENT_BYTES && is_printable_ascii(agent.as_bytes()) {
                return agent.to_owned();
            }
            let mut kept = String::with_capacity(agent.len().min(MAX_USER_AGENT_BYTES));
            for c in agent.chars().filter(|c| !c.is_control()) {
                if kept.len() + c.len_utf8() > MAX_USER_AGENT_BYTES {
                    break;
                }
                kept.push(c);
            }
            kept
        });
        Self { ip, user_agent }
    }
}

/// Whether every byte is printable ASCII (space to `~`). A fold without an
/// early exit, which the compiler turns into a few vector instructions: it
/// runs on every request's user agent.
fn is_printable_ascii(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |printable, &byte| printable & (byte.wrapping_sub(b' ') < b'~' - b' ' + 1))
}

/// The token a login held before its last rotation, kept for the grace window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousToken {
    /// Digest of the replaced token.
    pub digest: TokenDigest,
    /// When it was replaced.
    #[serde(with = "time::serde::rfc3339")]
    pub rotated_at: OffsetDateTime,
    /// The token and session id that replaced it, sealed under it.
    pub sealed: SealedSuccessor,
}

/// A persistent login: one device that ticked "remember me".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// Whose login this is.
    pub username: Username,
    /// The login's identity for its whole life.
    pub serial: Serial,
    /// Digest of the current token.
    pub token: TokenDigest,
    /// The token before the last rotation, if there was one.
    pub previous: Option<PreviousToken>,
    /// Digest of the session this login opened last; it is deleted with the
    /// login (remote logout) and replaced on rotation.
    pub session: Option<SessionDigest>,
    /// When the login was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the login was last used to open a session.
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    /// When the login stops being valid unless used again:
    /// `last_used_at + cookie max age`, never past `created_at + login lifetime`.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The client that used it last.
    pub client: ClientMeta,
    /// When the user last entered their password on this device: the
    /// registration, or the latest [`confirm_password`](crate::Exchange::confirm_password).
    /// Carried unchanged across every rotation.
    #[serde(with = "time::serde::rfc3339")]
    pub authenticated_at: OffsetDateTime,
}

impl Login {
    /// Whether the login is still valid at `now` (`now < expires_at`).
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

/// Session data: a JSON object, as the application fills it.
pub type SessionData = serde_json::Map<String, serde_json::Value>;

/// How the user behind a session proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A password login opened the session, or the password was confirmed
    /// since ([`Exchange::confirm_password`](crate::Exchange::confirm_password)).
    Password,
    /// The remember-me cookie opened the session (a cookie login or its grace
    /// answer): the user has not typed a password on it.
    Remembered,
}

impl AuthMethod {
    /// `password` or `remembered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Remembered => "remembered",
        }
    }
}

/// Whose a session is, and how and when they proved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    /// The logged-in user.
    pub username: Username,
    /// The login (device) that opened the session, when "remember me" was
    /// chosen; the session ends with it.
    pub login: Option<Serial>,
    /// How the session was opened or last confirmed.
    pub method: AuthMethod,
    /// When the user last entered their password on this device.
    #[serde(with = "time::serde::rfc3339")]
    pub authenticated_at: OffsetDateTime,
}

/// A server-side session as the store keeps it: an anonymous visitor's
/// (`user: None`) or a logged-in user's.
///
/// A store keys it by `(owner, digest)`, the owner being the username or, for
/// an anonymous session, nobody: an anonymous lookup never finds a user's
/// session and the other way round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Digest of the session id: the key.
    pub digest: SessionDigest,
    /// The logged-in user, or `None` for an anonymous visitor.
    pub user: Option<SessionUser>,
    /// The application's data.
    pub data: SessionData,
    /// When the session was opened. The absolute timeout counts from here.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the session ends unless touched again: the sliding idle timeout,
    /// never past `created_at` plus the absolute timeout.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl SessionRecord {
    /// Whether the session is still valid at `now` (`now < expires_at`).
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }

    /// The owner's username; `None` for an anonymous session.
    pub fn username(&self) -> Option<&Username> {
        self.user.as_ref().map(|user| &user.username)
    }

    /// The login that opened the session, if any.
    pub fn login(&self) -> Option<Serial> {
        self.user.as_ref().and_then(|user| user.login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_bounded_and_cleaned() {
        let long = "é".repeat(400);
        let meta = ClientMeta::new(None, Some(&long));
        let kept = meta.user_agent.unwrap_or_default();
        assert!(kept.len() <= MAX_USER_AGENT_BYTES);
        assert_eq!(kept.len(), 512);
        let meta = ClientMeta::new(None, Some("Mozilla\r\n/5.0"));
        assert_eq!(meta.user_agent.as_deref(), Some("Mozilla/5.0"));
        // Printable ASCII is kept as is up to the bound, then cut; DEL is a
        // control character like the others.
        let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(ClientMeta::new(None, Some(browser)).user_agent.as_deref(), Some(browser));
        let at_bound = "a".repeat(MAX_USER_AGENT_BYTES);
        assert_eq!(ClientMeta::new(None, Some(&at_bound)).user_agent.as_deref(), Some(at_bound.as_str()));
        let over = "b".repeat(MAX_USER_AGENT_BYTES + 1);
        assert_eq!(
            ClientMeta::new(None, Some(&over)).user_agent.map(|kept| kept.len()),
            Some(MAX_USER_AGENT_BYTES)
        );
        assert_eq!(ClientMeta::new(None, Some("a\u{7f}b")).user_agent.as_deref(), Some("ab"));
    }

    #[test]
    fn printable_ascii_is_space_to_tilde_and_nothing_else() {
        for byte in 0..=u8::MAX {
            let printable = (b' '..=b'~').contains(&byte);
            assert_eq!(is_printable_ascii(&[b'a', byte, b'z']), printable, "{byte:#04x}");
            // And wherever it sits in a longer agent (the vectorized body
            // and its tail).
            let mut agent = vec![b'x'; 70];
            agent[byte as usize % 70] = byte;
            assert_eq!(is_printable_ascii(&agent), printable, "{byte:#04x} in 70 bytes");
        }
        assert!(is_printable_ascii(b""));
    }

    #[test]
    fn records_serialize_canonically() -> Result<(), serde_json::Error> {
        let at = time::macros::datetime!(2030-01-02 03:04:05.678901 UTC);
        let session = SessionRecord {
            digest: SessionDigest::from_bytes([1; 32]),
            user: Some(SessionUser {
                username: Username::new("zoë").map_err(serde::de::Error::custom)?,
                login: Some(Serial::from_bytes([2; 16])),
                method: AuthMethod::Remembered,
                authenticated_at: at,
            }),
            data: SessionData::new(),
            created_at: at,
            expires_at: at,
        };
        let json = serde_json::to_string(&session)?;
        assert!(json.contains("\"2030-01-02T03:04:05.678901Z\""), "{json}");
        assert!(json.contains("\"method\":\"remembered\""), "{json}");
        assert_eq!(serde_json::from_str::<SessionRecord>(&json)?, session);
        Ok(())
    }
}
