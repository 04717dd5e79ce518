//! Records to column values and back: the same on every backend.
//!
//! Timestamps are `BIGINT` microseconds since the Unix epoch (UTC): exact,
//! totally ordered, index friendly and identical on the three backends.
//! Digests and serials are raw bytes, IP addresses text, session data JSON
//! text.

use std::net::IpAddr;

use expected_core::time::OffsetDateTime;
use expected_core::{
    ClientMeta, Login, PreviousToken, SealedSuccessor, Serial, Session, SessionData, SessionDigest,
    StoreError, TokenDigest, Username,
};

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
        Ok(Login {
            username: username.clone(),
            serial: Serial::from_bytes(fixed(self.serial, "serial")?),
            token: TokenDigest::from_bytes(fixed(self.token, "token")?),
            previous,
            session: self
                .session_digest
                .map(|digest| fixed(digest, "session_digest").map(SessionDigest::from_bytes))
                .transpose()?,
            created_at: from_micros(self.created_at, "created_at")?,
            last_used_at: from_micros(self.last_used_at, "last_used_at")?,
            expires_at: from_micros(self.expires_at, "expires_at")?,
            client: ClientMeta { ip, user_agent: self.user_agent },
        })
    }
}

/// A session's columns, as read (without username and digest, its key).
#[derive(Debug)]
pub(crate) struct SessionRow {
    pub(crate) login_serial: Option<Vec<u8>>,
    pub(crate) data: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

impl SessionRow {
    pub(crate) fn into_session(
        self,
        username: &Username,
        digest: &SessionDigest,
    ) -> Result<Session, StoreError> {
        let data: SessionData = serde_json::from_str(&self.data)
            .map_err(|error| StoreError::corrupt(format!("data: not a JSON object: {error}")))?;
        Ok(Session {
            digest: *digest,
            username: username.clone(),
            login: self
                .login_serial
                .map(|serial| fixed(serial, "login_serial").map(Serial::from_bytes))
                .transpose()?,
            data,
            created_at: from_micros(self.created_at, "created_at")?,
            expires_at: from_micros(self.expires_at, "expires_at")?,
        })
    }
}

/// A login's values, ready to bind, in column order.
pub(crate) struct LoginValues<'a> {
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
        }
    }
}

/// A session's values, ready to bind.
pub(crate) struct SessionValues<'a> {
    pub(crate) digest: &'a [u8],
    pub(crate) login_serial: Option<&'a [u8]>,
    pub(crate) data: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

impl<'a> SessionValues<'a> {
    pub(crate) fn of(session: &'a Session) -> Result<Self, StoreError> {
        Ok(Self {
            digest: session.digest.as_bytes(),
            login_serial: session.login.as_ref().map(|s| &s.as_bytes()[..]),
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
