//! Records to column values and back: the same on every backend.
//!
//! Timestamps are `BIGINT` microseconds since the Unix epoch (UTC): exact,
//! totally ordered, index friendly and identical on the three backends.
//! Digests and serials are raw bytes, IP addresses text, session data JSON
//! text. An anonymous session is stored under the username [`ANONYMOUS`].

use std::net::IpAddr;

use expected_core::store::ExpiredLogin;
use expected_core::time::OffsetDateTime;
use expected_core::{
    AuthMethod, ClientMeta, Login, PreviousToken, SealedSuccessor, Serial, SessionData, SessionDigest,
    SessionRecord, SessionUser, StoreError, TokenDigest, Username,
};

/// The `username` column of an anonymous session: the empty string, which is
/// never a valid [`Username`], so that no user's key can equal an anonymous
/// one and the `(username, digest)` primary key serves both.
pub(crate) const ANONYMOUS: &str = "";

/// What the `username` column holds for a session's owner.
pub(crate) fn owner_name(owner: Option<&Username>) -> &str {
    owner.map_or(ANONYMOUS, Username::as_str)
}

/// A login's `username` column as read: text, or bytes on MySQL (where it is
/// `VARBINARY`).
pub(crate) trait UsernameColumn {
    /// The username (of a login: never anonymous).
    fn into_username(self) -> Result<Username, StoreError>;
}

impl UsernameColumn for String {
    fn into_username(self) -> Result<Username, StoreError> {
        Username::new(self).map_err(|error| StoreError::corrupt(format!("username: {error}")))
    }
}

#[cfg(feature = "mysql")]
impl UsernameColumn for Vec<u8> {
    fn into_username(self) -> Result<Username, StoreError> {
        String::from_utf8(self).map_err(|_| StoreError::corrupt("username: not UTF-8"))?.into_username()
    }
}

/// The logins a cleaning batch deleted, from their `(username, serial)`
/// keys.
pub(crate) fn expired<U: UsernameColumn>(keys: Vec<(U, Vec<u8>)>) -> Result<Vec<ExpiredLogin>, StoreError> {
    keys.into_iter()
        .map(|(username, serial)| {
            Ok(ExpiredLogin { username: username.into_username()?, serial: serial_from(serial)? })
        })
        .collect()
}

/// Microseconds since the Unix epoch (sub-microsecond digits are dropped:
/// records carry microseconds).
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    let micros = at.unix_timestamp_nanos().div_euclid(1_000);
    // Every OffsetDateTime (years ±9999) is within ±2^58 µs.
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// The inverse of [`micros`].
pub(crate) fn from_micros(micros: i64, column: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| StoreError::corrupt(format!("{column}: {micros} µs is out of range")))
}

fn fixed<const N: usize>(bytes: Vec<u8>, column: &str) -> Result<[u8; N], StoreError> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| StoreError::corrupt(format!("{column}: {len} bytes where {N} are expected")))
}

/// A serial read from a `serial` column.
pub(crate) fn serial_from(bytes: Vec<u8>) -> Result<Serial, StoreError> {
    fixed(bytes, "serial").map(Serial::from_bytes)
}

/// A login's columns, as read (everything but the username, which every read
/// is keyed by).
#[derive(Debug)]
pub(crate) struct LoginRow {
    pub(crate) serial: Vec<u8>,
    pub(crate) token: Vec<u8>,
    pub(crate) previous_token: Option<Vec<u8>>,
    pub(crate) previous_rotated_at: Option<i64>,
    pub(crate) previous_sealed: Option<Vec<u8>>,
    pub(crate) session_digest: Option<Vec<u8>>,
    pub(crate) created_at: i64,
    pub(crate) last_used_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) client_ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    /// `NULL` only in a row written by a version-1 store (still running
    /// during a rolling upgrade, after the migration's backfill).
    pub(crate) authenticated_at: Option<i64>,
}

impl LoginRow {
    pub(crate) fn into_login(self, username: &Username) -> Result<Login, StoreError> {
        let previous = match (self.previous_token, self.previous_rotated_at, self.previous_sealed) {
            (None, None, None) => None,
            (Some(digest), Some(rotated_at), Some(sealed)) => Some(PreviousToken {
                digest: TokenDigest::from_bytes(fixed(digest, "previous_token")?),
                rotated_at: from_micros(rotated_at, "previous_rotated_at")?,
                sealed: SealedSuccessor::from_bytes(fixed(sealed, "previous_sealed")?),
            }),
            _ => return Err(StoreError::corrupt("previous_*: some columns are NULL and others are not")),
        };
        let ip = match self.client_ip {
            None => None,
            Some(text) => Some(
                text.parse::<IpAddr>()
                    .map_err(|_| StoreError::corrupt(format!("client_ip: {text:?} is not an address")))?,
            ),
        };
        let created_at = from_micros(self.created_at, "created_at")?;
        // A version-1 row: the password was last entered at registration.
        let authenticated_at = match self.authenticated_at {
            Some(micros) => from_micros(micros, "authenticated_at")?,
            None => created_at,
        };
        Ok(Login {
            username: username.clone(),
            serial: Serial::from_bytes(fixed(self.serial, "serial")?),
            token: TokenDigest::from_bytes(fixed(self.token, "token")?),
            previous,
            session: self
                .session_digest
                .map(|digest| fixed(digest, "session_digest").map(SessionDigest::from_bytes))
                .transpose()?,
            created_at,
            last_used_at: from_micros(self.last_used_at, "last_used_at")?,
            expires_at: from_micros(self.expires_at, "expires_at")?,
            client: ClientMeta { ip, user_agent: self.user_agent },
            authenticated_at,
        })
    }
}

/// A session's columns, as read (without username and digest, its key).
#[derive(Debug)]
pub(crate) struct SessionRow {
    pub(crate) login_serial: Option<Vec<u8>>,
    pub(crate) method: Option<String>,
    pub(crate) authenticated_at: Option<i64>,
    pub(crate) data: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

impl SessionRow {
    /// The record of the session keyed by `owner` (`None`: anonymous) and
    /// `digest`.
    pub(crate) fn into_session(
        self,
        owner: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<SessionRecord, StoreError> {
        let data: SessionData = serde_json::from_str(&self.data)
            .map_err(|error| StoreError::corrupt(format!("data: not a JSON object: {error}")))?;
        let created_at = from_micros(self.created_at, "created_at")?;
        let login = self
            .login_serial
            .map(|serial| fixed(serial, "login_serial").map(Serial::from_bytes))
            .transpose()?;
        let user = match owner {
            None => {
                if login.is_some() || self.method.is_some() || self.authenticated_at.is_some() {
                    return Err(StoreError::corrupt(
                        "an anonymous session has a login_serial, method or authenticated_at",
                    ));
                }
                None
            }
            Some(username) => {
                let (method, authenticated_at) = match (self.method.as_deref(), self.authenticated_at) {
                    // A version-1 row (see the crate docs): opened by the
                    // remember-me cookie as far as anyone knows, so never
                    // fresh.
                    (None, None) => (AuthMethod::Remembered, created_at),
                    (Some(method), Some(at)) => (method_from(method)?, from_micros(at, "authenticated_at")?),
                    _ => return Err(StoreError::corrupt("method and authenticated_at: one is NULL")),
                };
                Some(SessionUser { username: username.clone(), login, method, authenticated_at })
            }
        };
        Ok(SessionRecord {
            digest: *digest,
            user,
            data,
            created_at,
            expires_at: from_micros(self.expires_at, "expires_at")?,
        })
    }
}

fn method_from(text: &str) -> Result<AuthMethod, StoreError> {
    [AuthMethod::Password, AuthMethod::Remembered]
        .into_iter()
        .find(|method| method.as_str() == text)
        .ok_or_else(|| StoreError::corrupt(format!("method: {text:?} is not password or remembered")))
}

/// A login's values, ready to bind, in column order.
pub struct LoginValues<'a> {
    pub(crate) serial: &'a [u8],
    pub(crate) token: &'a [u8],
    pub(crate) previous_token: Option<&'a [u8]>,
    pub(crate) previous_rotated_at: Option<i64>,
    pub(crate) previous_sealed: Option<&'a [u8]>,
    pub(crate) session_digest: Option<&'a [u8]>,
    pub(crate) created_at: i64,
    pub(crate) last_used_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) client_ip: Option<String>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) authenticated_at: i64,
}

impl<'a> LoginValues<'a> {
    pub(crate) fn of(login: &'a Login) -> Self {
        Self {
            serial: login.serial.as_bytes(),
            token: login.token.as_bytes(),
            previous_token: login.previous.as_ref().map(|p| &p.digest.as_bytes()[..]),
            previous_rotated_at: login.previous.as_ref().map(|p| micros(p.rotated_at)),
            previous_sealed: login.previous.as_ref().map(|p| &p.sealed.as_bytes()[..]),
            session_digest: login.session.as_ref().map(|s| &s.as_bytes()[..]),
            created_at: micros(login.created_at),
            last_used_at: micros(login.last_used_at),
            expires_at: micros(login.expires_at),
            client_ip: login.client.ip.map(|ip| ip.to_string()),
            user_agent: login.client.user_agent.as_deref(),
            authenticated_at: micros(login.authenticated_at),
        }
    }
}

/// A session's values, ready to bind, in column order after the username
/// (which [`owner_name`] of `owner` gives).
pub struct SessionValues<'a> {
    pub(crate) owner: Option<&'a Username>,
    pub(crate) digest: &'a [u8],
    pub(crate) login_serial: Option<&'a [u8]>,
    pub(crate) method: Option<&'static str>,
    pub(crate) authenticated_at: Option<i64>,
    pub(crate) data: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

impl<'a> SessionValues<'a> {
    pub(crate) fn of(session: &'a SessionRecord) -> Result<Self, StoreError> {
        let user = session.user.as_ref();
        Ok(Self {
            owner: session.username(),
            digest: session.digest.as_bytes(),
            login_serial: user.and_then(|user| user.login.as_ref()).map(|s| &s.as_bytes()[..]),
            method: user.map(|user| user.method.as_str()),
            authenticated_at: user.map(|user| micros(user.authenticated_at)),
            data: data_json(&session.data)?,
            created_at: micros(session.created_at),
            expires_at: micros(session.expires_at),
        })
    }
}

/// Session data as JSON text.
pub(crate) fn data_json(data: &SessionData) -> Result<String, StoreError> {
    serde_json::to_string(data).map_err(StoreError::backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expected_core::time::macros::datetime;

    #[test]
    fn micros_round_trip_and_order() -> Result<(), StoreError> {
        for at in [
            datetime!(2030-01-02 03:04:05.678901 UTC),
            datetime!(1969-12-31 23:59:59.999999 UTC),
            OffsetDateTime::UNIX_EPOCH,
            datetime!(9999-12-31 23:59:59.999999 UTC),
            datetime!(-9999-01-01 0:00 UTC),
        ] {
            assert_eq!(from_micros(micros(at), "t")?, at);
        }
        assert_eq!(micros(datetime!(1969-12-31 23:59:59.999999 UTC)), -1);
        assert!(from_micros(i64::MAX, "t").is_err());
        Ok(())
    }
}
