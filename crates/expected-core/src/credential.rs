//! The values of the two cookies, and their strict parsers.
//!
//! Auth cookie (the "remember me" credential):
//! `2.<base64url(username)>.<base64url(serial)>.<key id>.<base64url(token)>`
//! when [token keys](crate::keys) are configured (the key id names the key
//! that derived the token), and the key-less
//! `1.<base64url(username)>.<base64url(serial)>.<base64url(token)>` without
//! them; both are read, whatever is configured, so a deployment that adds
//! keys logs no one out (a login moves to format 2 on its next rotation).
//! Session cookie: `1.<base64url(username)>.<base64url(session id)>` for a
//! logged-in user, `1.<base64url(session id)>` for an anonymous visitor.
//!
//! base64url never produces `.`, so the dots split unambiguously, and any
//! UTF-8 username round-trips. The username travels in the session cookie
//! too so that a store can keep all of a user's keys together (one Redis
//! Cluster slot) and look a session up without a global index.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::KeyId;
use crate::secret::{
    DecodeError, MAX_USERNAME_BYTES, Serial, SessionId, Token, Username, UsernameError, encode_b64,
};

/// The format version of session cookies, and of auth cookies without a key
/// id.
pub const VERSION: &str = "1";

/// The format version of auth cookies that carry a key id.
pub const KEYED_VERSION: &str = "2";

/// Longest cookie value the parsers look at, in bytes. Anything longer is
/// refused before it is split or decoded.
pub const MAX_COOKIE_VALUE_BYTES: usize = 4096;

/// Which part of a cookie value was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The username.
    Username,
    /// The login's serial.
    Serial,
    /// The login's token.
    Token,
    /// The session id.
    SessionId,
    /// The id of the key that derived the token.
    KeyId,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Username => "username",
            Self::Serial => "serial",
            Self::Token => "token",
            Self::SessionId => "session id",
            Self::KeyId => "key id",
        })
    }
}

/// Why a cookie value was refused. Every malformed form has its own variant;
/// none of them panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// Longer than [`MAX_COOKIE_VALUE_BYTES`].
    #[error("cookie value is {0} bytes, over the {MAX_COOKIE_VALUE_BYTES}-byte limit")]
    Oversize(usize),
    /// Not the number of dot-separated parts the format has.
    #[error("cookie value has {found} parts, expected {expected}")]
    WrongPartCount {
        /// Parts the format has.
        expected: usize,
        /// Parts found.
        found: usize,
    },
    /// A version this release does not read.
    #[error("unsupported cookie format version")]
    UnsupportedVersion,
    /// A part is empty.
    #[error("empty {0} in cookie value")]
    EmptyField(Field),
    /// A part is not valid unpadded base64url, or decodes to the wrong length.
    #[error("{0} in cookie value is not valid base64url of the right length")]
    BadEncoding(Field),
    /// The username decodes to bytes that are not UTF-8.
    #[error("username in cookie value is not UTF-8")]
    UsernameNotUtf8,
    /// The username is not a valid [`Username`].
    #[error("username in cookie value is invalid: {0}")]
    InvalidUsername(UsernameError),
}

/// The auth ("remember me") cookie: a login's username, serial and token.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCookie {
    /// Whose login.
    pub username: Username,
    /// Which login.
    pub serial: Serial,
    /// The login's token, as this client last received it.
    pub token: Token,
    /// The key that derived `token` from its predecessor (for a login's
    /// first, random token: the key current when it was issued); `None` in
    /// the key-less format 1.
    pub key: Option<KeyId>,
}

/// The session cookie: a username (none for an anonymous visitor) and the
/// session id.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// Whose session; `None` for an anonymous visitor's.
    pub username: Option<Username>,
    /// The session's secret id.
    pub id: SessionId,
}

impl fmt::Debug for AuthCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCookie")
            .field("username", &self.username)
            .field("serial", &self.serial)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookie").field("username", &self.username).finish_non_exhaustive()
    }
}

/// Splits a value into at most `N` parts after checking its size, answering
/// how many it has.
fn split_up_to<const N: usize>(value: &str) -> Result<([&str; N], usize), CookieError> {
    if value.len() > MAX_COOKIE_VALUE_BYTES {
        return Err(CookieError::Oversize(value.len()));
    }
    let mut parts = [""; N];
    let mut found = 0;
    for part in value.split('.') {
        if found < N {
            parts[found] = part;
        }
        found += 1;
    }
    if found > N {
        return Err(CookieError::WrongPartCount { expected: N, found });
    }
    Ok((parts, found))
}

fn field<T>(
    text: &str,
    which: Field,
    decode: impl FnOnce(&str) -> Result<T, DecodeError>,
) -> Result<T, CookieError> {
    if text.is_empty() {
        return Err(CookieError::EmptyField(which));
    }
    decode(text).map_err(|_| CookieError::BadEncoding(which))
}

/// Room for base64's conservative estimate of the longest username's
/// bytes (its 340 characters estimated at 255).
const USERNAME_BUFFER: usize = MAX_USERNAME_BYTES.div_ceil(3) * 3;

fn username(text: &str) -> Result<Username, CookieError> {
    if text.is_empty() {
        return Err(CookieError::EmptyField(Field::Username));
    }
    // base64 of the longest username, checked before decoding.
    if text.len() > MAX_USERNAME_BYTES.div_ceil(3) * 4 {
        return Err(CookieError::InvalidUsername(UsernameError::TooLong));
    }
    // Decoded on the stack, then copied once into the name's own `String`:
    // base64's `decode` answers a zeroed `Vec`, a `calloc`, which glibc
    // serves under its arena lock on every request.
    let mut buffer = [0u8; USERNAME_BUFFER];
    let len = URL_SAFE_NO_PAD
        .decode_slice(text, &mut buffer)
        .map_err(|_| CookieError::BadEncoding(Field::Username))?;
    let name = std::str::from_utf8(&buffer[..len]).map_err(|_| CookieError::UsernameNotUtf8)?;
    Username::new(name).map_err(CookieError::InvalidUsername)
}

impl AuthCookie {
    /// Parses an auth cookie value, of either format.
    pub fn parse(value: &str) -> Result<Self, CookieError> {
        let (parts, found) = split_up_to::<5>(value)?;
        let expected = if parts[0] == KEYED_VERSION { 5 } else { 4 };
        if found != expected {
            return Err(CookieError::WrongPartCount { expected, found });
        }
        let (user, serial, key, token) = match parts {
            [KEYED_VERSION, user, serial, key, token] => (user, serial, Some(key), token),
            [VERSION, user, serial, token, _] => (user, serial, None, token),
            _ => return Err(CookieError::UnsupportedVersion),
        };
        let key = match key {
            None => None,
            Some("") => return Err(CookieError::EmptyField(Field::KeyId)),
            Some(id) => Some(KeyId::new(id).map_err(|_| CookieError::BadEncoding(Field::KeyId))?),
        };
        Ok(Self {
            username: username(user)?,
            serial: field(serial, Field::Serial, Serial::from_base64)?,
            token: field(token, Field::Token, Token::from_base64)?,
            key,
        })
    }

    /// The cookie value: format 2 with a key id, format 1 without.
    pub fn encode(&self) -> String {
        let user = encode_b64(self.username.as_str().as_bytes());
        let (serial, token) = (self.serial.to_base64(), self.token.to_base64());
        match &self.key {
            Some(key) => format!("{KEYED_VERSION}.{user}.{serial}.{key}.{token}"),
            None => format!("{VERSION}.{user}.{serial}.{token}"),
        }
    }
}

impl SessionCookie {
    /// Parses a session cookie value: a user's (three parts) or an anonymous
    /// visitor's (two).
    pub fn parse(value: &str) -> Result<Self, CookieError> {
        let (parts, found) = split_up_to::<3>(value)?;
        let (user, id) = match found {
            3 => (Some(parts[1]), parts[2]),
            2 => (None, parts[1]),
            _ => return Err(CookieError::WrongPartCount { expected: 3, found }),
        };
        if parts[0] != VERSION {
            return Err(CookieError::UnsupportedVersion);
        }
        let username = user.map(username).transpose()?;
        Ok(Self { username, id: field(id, Field::SessionId, SessionId::from_base64)? })
    }

    /// The cookie value.
    pub fn encode(&self) -> String {
        match &self.username {
            Some(user) => {
                format!("{VERSION}.{}.{}", encode_b64(user.as_str().as_bytes()), self.id.to_base64())
            }
            None => format!("{VERSION}.{}", self.id.to_base64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(name: &str) -> AuthCookie {
        AuthCookie {
            username: Username::new(name).unwrap_or_else(|e| panic!("{e}")),
            serial: Serial::from_bytes([1; 16]),
            token: Token::from_bytes([2; 32]),
            key: None,
        }
    }

    fn keyed(name: &str) -> AuthCookie {
        AuthCookie { key: Some(KeyId::new("k-2024_1").unwrap_or_else(|e| panic!("{e}"))), ..auth(name) }
    }

    #[test]
    fn keyed_cookies_round_trip_and_refuse_bad_key_ids() {
        let cookie = keyed("zoë");
        let value = cookie.encode();
        assert!(value.starts_with("2.") && value.contains(".k-2024_1."), "{value}");
        assert_eq!(AuthCookie::parse(&value), Ok(cookie));
        let parts: Vec<&str> = value.split('.').collect();
        let with = |i: usize, v: &str| {
            let mut p = parts.clone();
            p[i] = v;
            p.join(".")
        };
        assert_eq!(AuthCookie::parse(&with(3, "")), Err(CookieError::EmptyField(Field::KeyId)));
        assert_eq!(AuthCookie::parse(&with(3, "a+b")), Err(CookieError::BadEncoding(Field::KeyId)));
        assert_eq!(AuthCookie::parse(&with(3, &"k".repeat(17))), Err(CookieError::BadEncoding(Field::KeyId)));
        assert_eq!(
            AuthCookie::parse(&parts[..4].join(".")),
            Err(CookieError::WrongPartCount { expected: 5, found: 4 })
        );
        // A format-1 cookie still reads, key-less.
        assert_eq!(AuthCookie::parse(&auth("alice").encode()).map(|c| c.key), Ok(None));
    }

    #[test]
    fn any_username_round_trips() {
        for name in ["alice", "zoë.o'brien", "a.b.c", "with space", "\"q\"", "日本", "a;b=c,d"] {
            let cookie = auth(name);
            let value = cookie.encode();
            assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{value}");
            assert_eq!(AuthCookie::parse(&value), Ok(cookie));
        }
        // Every length up to the longest name, whose base64 fills the
        // decoder's buffer on the stack to its last byte.
        for len in 1..=MAX_USERNAME_BYTES {
            let cookie =
                auth(&"é".repeat(len / 2).chars().chain("x".repeat(len % 2).chars()).collect::<String>());
            assert_eq!(cookie.username.as_str().len(), len);
            assert_eq!(AuthCookie::parse(&cookie.encode()), Ok(cookie));
        }
        let session =
            SessionCookie { username: Some(auth("zoë").username), id: SessionId::from_bytes([3; 32]) };
        assert_eq!(SessionCookie::parse(&session.encode()), Ok(session));
        let anonymous = SessionCookie { username: None, id: SessionId::from_bytes([4; 32]) };
        assert_eq!(anonymous.encode().split('.').count(), 2, "{}", anonymous.encode());
        assert_eq!(SessionCookie::parse(&anonymous.encode()), Ok(anonymous));
    }

    #[test]
    fn every_malformed_form_has_its_error() {
        let good = auth("alice").encode();
        let parts: Vec<&str> = good.split('.').collect();
        let with = |i: usize, v: &str| {
            let mut p = parts.clone();
            p[i] = v;
            p.join(".")
        };
        let cases: Vec<(String, CookieError)> = vec![
            ("x".repeat(5000), CookieError::Oversize(5000)),
            (String::new(), CookieError::WrongPartCount { expected: 4, found: 1 }),
            (parts[..3].join("."), CookieError::WrongPartCount { expected: 4, found: 3 }),
            (format!("{good}.x"), CookieError::WrongPartCount { expected: 4, found: 5 }),
            (with(0, "3"), CookieError::UnsupportedVersion),
            (with(0, "2"), CookieError::WrongPartCount { expected: 5, found: 4 }),
            (with(1, ""), CookieError::EmptyField(Field::Username)),
            (with(2, ""), CookieError::EmptyField(Field::Serial)),
            (with(3, ""), CookieError::EmptyField(Field::Token)),
            (with(1, "!!!"), CookieError::BadEncoding(Field::Username)),
            (with(2, "AAAA"), CookieError::BadEncoding(Field::Serial)),
            (with(3, parts[2]), CookieError::BadEncoding(Field::Token)),
            (with(3, &format!("{}=", parts[3])), CookieError::BadEncoding(Field::Token)),
            (with(1, &encode_b64(&[0xff, 0xfe])), CookieError::UsernameNotUtf8),
            (with(1, &encode_b64(b"a\x00b")), CookieError::InvalidUsername(UsernameError::ControlCharacter)),
            (with(1, &"A".repeat(400)), CookieError::InvalidUsername(UsernameError::TooLong)),
            (with(1, &"A".repeat(341)), CookieError::InvalidUsername(UsernameError::TooLong)),
            // The longest text decoded: 255 bytes, here all NUL.
            (with(1, &"A".repeat(340)), CookieError::InvalidUsername(UsernameError::ControlCharacter)),
            (with(1, &format!("{}!", "A".repeat(339))), CookieError::BadEncoding(Field::Username)),
        ];
        for (value, error) in cases {
            assert_eq!(AuthCookie::parse(&value), Err(error), "{value:.80}");
        }
        assert_eq!(SessionCookie::parse(&good), Err(CookieError::WrongPartCount { expected: 3, found: 4 }));
        assert_eq!(SessionCookie::parse("1"), Err(CookieError::WrongPartCount { expected: 3, found: 1 }));
        assert_eq!(SessionCookie::parse("2.AAAA"), Err(CookieError::UnsupportedVersion));
        assert_eq!(SessionCookie::parse("1."), Err(CookieError::EmptyField(Field::SessionId)));
        assert_eq!(SessionCookie::parse("1..AAAA"), Err(CookieError::EmptyField(Field::Username)));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!("{:?}", auth("alice"));
        assert!(!shown.contains(&Token::from_bytes([2; 32]).to_base64()), "{shown}");
    }
}
