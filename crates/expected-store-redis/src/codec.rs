//! Records to hash fields and back, times to scores, Redis errors to store
//! errors.

use expected_core::time::OffsetDateTime;
use expected_core::{
    AuthMethod, Login, Serial, SessionData, SessionDigest, SessionRecord, SessionUser, StoreError,
    StoreErrorKind, Username,
};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use serde_json::{Map, Value};

/// A record as hash fields: one per serde field, each value that field's
/// canonical JSON.
pub(crate) fn to_fields<T: serde::Serialize>(record: &T) -> Result<Map<String, Value>, StoreError> {
    match serde_json::to_value(record) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(StoreError::new(StoreErrorKind::Backend, "record does not serialize to a JSON object")),
        Err(error) => Err(StoreError::wrap(StoreErrorKind::Backend, error)),
    }
}

/// Field/value pairs as script arguments.
pub(crate) fn field_args(fields: &Map<String, Value>) -> Vec<String> {
    fields.iter().flat_map(|(name, value)| [name.clone(), value.to_string()]).collect()
}

/// The answer of `HGETALL` as a flat field/value list: an array under RESP2,
/// a map under RESP3.
pub(crate) fn flat_hash(answer: redis::Value) -> Result<Vec<Vec<u8>>, StoreError> {
    let items: Vec<redis::Value> = match answer {
        redis::Value::Nil => return Ok(Vec::new()),
        redis::Value::Array(items) => items,
        redis::Value::Map(pairs) => pairs.into_iter().flat_map(|(name, value)| [name, value]).collect(),
        other => return Err(StoreError::corrupt(format!("HGETALL answered {other:?}"))),
    };
    items
        .into_iter()
        .map(|item| match item {
            redis::Value::BulkString(bytes) => Ok(bytes),
            redis::Value::SimpleString(text) => Ok(text.into_bytes()),
            other => Err(StoreError::corrupt(format!("a hash field is {other:?}"))),
        })
        .collect()
}

/// The fields of a record hash from the flat field/value array `HGETALL`
/// answers, each value parsed as JSON; `None` when the array is empty (no
/// such key).
fn fields_of(flat: Vec<Vec<u8>>) -> Result<Option<Map<String, Value>>, StoreError> {
    if flat.is_empty() {
        return Ok(None);
    }
    if flat.len() % 2 != 0 {
        return Err(StoreError::corrupt("a record hash answered an odd number of values"));
    }
    let mut fields = Map::new();
    let mut flat = flat.into_iter();
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        let name =
            String::from_utf8(name).map_err(|_| StoreError::corrupt("a record field name is not UTF-8"))?;
        let value: Value = serde_json::from_slice(&value)
            .map_err(|error| StoreError::corrupt(format!("record field {name:?} is not JSON: {error}")))?;
        fields.insert(name, value);
    }
    Ok(Some(fields))
}

fn decode<T: serde::de::DeserializeOwned>(fields: Map<String, Value>) -> Result<T, StoreError> {
    serde_json::from_value(Value::Object(fields))
        .map_err(|error| StoreError::corrupt(format!("record does not decode: {error}")))
}

/// The fields of a login hash: one per serde field of [`Login`].
pub(crate) fn login_fields(login: &Login) -> Result<Map<String, Value>, StoreError> {
    to_fields(login)
}

/// A login back from its hash; `None` when there is no such key.
///
/// Version 0.1 wrote no `authenticated_at`: such a login was last
/// authenticated by password when it was registered, at `created_at`.
pub(crate) fn decode_login(flat: Vec<Vec<u8>>) -> Result<Option<Login>, StoreError> {
    let Some(mut fields) = fields_of(flat)? else { return Ok(None) };
    if !fields.contains_key("authenticated_at") {
        if let Some(created_at) = fields.get("created_at").cloned() {
            fields.insert("authenticated_at".to_owned(), created_at);
        }
    }
    decode(fields).map(Some)
}

/// The fields of a session hash: the serde fields of [`SessionRecord`] but
/// `user`, whose own fields (`username`, `login`, `method`,
/// `authenticated_at`) sit beside them, absent for an anonymous session.
/// Flat, so that a script compares a session's `login` byte for byte without
/// parsing JSON, and so that a 0.1 session (which had `username` and `login`
/// there) is the same hash minus two fields.
pub(crate) fn session_fields(session: &SessionRecord) -> Result<Map<String, Value>, StoreError> {
    let mut fields = to_fields(session)?;
    match fields.remove("user") {
        Some(Value::Object(user)) => fields.extend(user),
        Some(Value::Null) | None => {}
        Some(_) => return Err(StoreError::new(StoreErrorKind::Backend, "a session user is not an object")),
    }
    Ok(fields)
}

/// A timestamp field's JSON: an RFC 3339 string, as [`SessionRecord`]'s
/// serde writes it.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Timestamp(#[serde(with = "expected_core::time::serde::rfc3339")] OffsetDateTime);

/// The fields a session read asks for, in the order `HMGET` answers them:
/// every field [`session_fields`] writes, 0.1's included, and nothing else.
pub(crate) const SESSION_FIELDS: [&str; 8] =
    ["digest", "data", "created_at", "expires_at", "username", "login", "method", "authenticated_at"];

/// The bytes of [`SESSION_FIELDS`]' names together, to size a read's command.
pub(crate) const SESSION_FIELDS_BYTES: usize = {
    let mut total = 0;
    let mut index = 0;
    while index < SESSION_FIELDS.len() {
        total += SESSION_FIELDS[index].len();
        index += 1;
    }
    total
};

/// The hash field holding a session in the packed layout, the one this
/// store writes: the values of [`SESSION_FIELDS`] in that order, each the
/// JSON [`session_fields`] gives it or empty when the session has no such
/// field (an anonymous session's user fields), joined by
/// [`PACKED_SEPARATOR`]. One value for a hit to fetch (`HGET`) and redis-rs
/// to parse, where the fields were eight. Beside it the hash keeps `login`,
/// which the scripts read. This is format 1: a later format takes another
/// field name, so a reader never mistakes one for the other.
pub(crate) const PACKED_FIELD: &str = "packed";

/// The byte between a packed session's values: U+001F, the unit separator,
/// which no JSON text holds unescaped (inside strings JSON escapes every
/// control character; outside them it allows only space, tab, CR and LF).
/// No JSON text is empty either, so an empty value is an absent field.
pub(crate) const PACKED_SEPARATOR: u8 = 0x1f;

/// The fields of a session ([`session_fields`]) as the script arguments
/// that write it in the packed layout: `login` when the session has one
/// (JSON null for a user's session opened without "remember me"), for the
/// scripts, and [`PACKED_FIELD`].
pub(crate) fn packed_session_args(fields: &Map<String, Value>) -> Result<Vec<String>, StoreError> {
    if let Some(name) = fields.keys().find(|name| !SESSION_FIELDS.contains(&name.as_str())) {
        // A field the packed format has no place for would be lost.
        return Err(StoreError::new(
            StoreErrorKind::Backend,
            format!("session field {name:?} has no place in a packed session"),
        ));
    }
    let mut packed = String::with_capacity(384);
    for (index, name) in SESSION_FIELDS.iter().enumerate() {
        if index > 0 {
            packed.push(char::from(PACKED_SEPARATOR));
        }
        if let Some(value) = fields.get(*name) {
            use std::fmt::Write as _;
            // `Value`'s Display is its compact JSON, as `field_args` writes.
            let _ = write!(packed, "{value}");
        }
    }
    let mut args = Vec::with_capacity(4);
    if let Some(login) = fields.get("login") {
        args.push("login".to_owned());
        args.push(login.to_string());
    }
    args.push(PACKED_FIELD.to_owned());
    args.push(packed);
    Ok(args)
}

/// A packed session's values, one per [`SESSION_FIELDS`] (`None` for an
/// empty one); anything but exactly that many is corrupt.
pub(crate) fn unpack_session(packed: &[u8]) -> Result<[Option<&[u8]>; SESSION_FIELDS.len()], StoreError> {
    let mut values = [None; SESSION_FIELDS.len()];
    // The separators found by memchr's vectorized search: a session hit
    // splits one packed value of a few hundred bytes, which a byte-at-a-time
    // `split` spent most of its decoding time on.
    let mut separators = memchr::memchr_iter(PACKED_SEPARATOR, packed);
    let mut start = 0;
    for (index, slot) in values.iter_mut().enumerate() {
        let end = if index + 1 < SESSION_FIELDS.len() {
            separators.next().ok_or_else(|| {
                StoreError::corrupt(format!(
                    "a packed session holds fewer than {} values",
                    SESSION_FIELDS.len()
                ))
            })?
        } else {
            packed.len()
        };
        let part = &packed[start..end];
        *slot = (!part.is_empty()).then_some(part);
        start = end + 1;
    }
    if separators.next().is_some() {
        return Err(StoreError::corrupt(format!(
            "a packed session holds more than {} values",
            SESSION_FIELDS.len()
        )));
    }
    Ok(values)
}

/// A session back from its packed value ([`packed_session_args`]). A packed
/// value is there only for a session: one with no value at all is corrupt,
/// not absent.
pub(crate) fn decode_packed_session(
    packed: &[u8],
    sought: Option<Sought<'_>>,
) -> Result<SessionRecord, StoreError> {
    decode_session(&unpack_session(packed)?, sought)?
        .ok_or_else(|| StoreError::corrupt("a packed session holds no value"))
}

/// The session a read looks for: its digest, and that digest's base64url as
/// its key ends with it ([`keys::digest_text`](crate::keys::digest_text)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sought<'a> {
    pub(crate) digest: &'a SessionDigest,
    pub(crate) text: &'a str,
}

/// The answer of `HMGET key` [`SESSION_FIELDS`]: one value or nil per
/// field, in that order (all nil when there is no such key). Moved out of
/// redis-rs's reply into an array, not collected into a new `Vec`.
pub(crate) fn session_values(
    answer: redis::Value,
) -> Result<[Option<Vec<u8>>; SESSION_FIELDS.len()], StoreError> {
    let redis::Value::Array(items) = answer else {
        return Err(StoreError::corrupt(format!("HMGET answered {answer:?}")));
    };
    let items: [redis::Value; SESSION_FIELDS.len()] = items
        .try_into()
        .map_err(|items: Vec<_>| StoreError::corrupt(format!("HMGET answered {} values", items.len())))?;
    let mut values: [Option<Vec<u8>>; SESSION_FIELDS.len()] = Default::default();
    for (slot, item) in values.iter_mut().zip(items) {
        *slot = match item {
            redis::Value::Nil => None,
            redis::Value::BulkString(bytes) => Some(bytes),
            redis::Value::SimpleString(text) => Some(text.into_bytes()),
            other => return Err(StoreError::corrupt(format!("a hash field is {other:?}"))),
        };
    }
    Ok(values)
}

/// The JSON `value` of field `name`, decoded, when the hash has the field.
fn field<T: serde::de::DeserializeOwned>(value: Option<&[u8]>, name: &str) -> Result<Option<T>, StoreError> {
    value
        .map(|value| {
            serde_json::from_slice(value).map_err(|error| {
                StoreError::corrupt(format!("session field {name:?} does not decode: {error}"))
            })
        })
        .transpose()
}

/// A required field, or the corruption of its absence.
fn required<T>(slot: Option<T>, name: &str) -> Result<T, StoreError> {
    slot.ok_or_else(|| StoreError::corrupt(format!("a session hash has no field {name:?}")))
}

/// A session back from its values, one per [`SESSION_FIELDS`]: a packed
/// session's ([`unpack_session`]), or the fields of a version 0.1 hash as
/// `HMGET` answers them ([`session_values`]); `None` when there is none of
/// them (no such key).
///
/// Every session hit decodes one, so each value's JSON goes straight into
/// its type: no intermediate JSON tree, no field map. A field a later
/// version adds is not read; every field this version knows must be
/// well-formed, and a
/// malformed or missing one is [`StoreErrorKind::Corrupt`], never a panic.
///
/// Version 0.1 wrote only `username` and `login` of the user: such a session
/// reads as opened by the remember-me cookie at `created_at`, the cautious
/// reading (an application asking for a fresh password gets one asked).
/// Half of the newer user fields (`method` without `authenticated_at`, or the
/// reverse) is neither version, and corrupt; so is a user field without a
/// `username`.
pub(crate) fn decode_session(
    values: &[Option<&[u8]>],
    sought: Option<Sought<'_>>,
) -> Result<Option<SessionRecord>, StoreError> {
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let [digest, data, created_at, expires_at, username, login, method, authenticated_at] = values else {
        return Err(StoreError::corrupt(format!("a session read answered {} values", values.len())));
    };
    let created_at = required(timestamp(*created_at, "created_at")?, "created_at")?;
    // A username may hold quotes and backslashes, whose JSON escapes only
    // serde_json reads: only a plain one is taken as it stands. It never
    // holds a control character (`Username::new` refuses them).
    let username: Option<Username> = string_field(*username, "username", |text| {
        has_no_escape(text).then(|| Username::new(text).ok()).flatten()
    })?;
    // `Some(None)`: a `login` field holding JSON null (no remember-me).
    let login: Option<Option<Serial>> = match *login {
        Some(b"null") => Some(None),
        other => string_field(other, "login", |text| Serial::from_base64(text).ok().map(Some))?,
    };
    let method: Option<AuthMethod> = string_field(*method, "method", |text| {
        [AuthMethod::Password, AuthMethod::Remembered].into_iter().find(|method| method.as_str() == text)
    })?;
    let authenticated_at = timestamp(*authenticated_at, "authenticated_at")?;
    let has_user = username.is_some() || login.is_some() || method.is_some() || authenticated_at.is_some();
    let user = if has_user {
        let (method, authenticated_at) = match (method, authenticated_at) {
            (Some(method), Some(at)) => (method, at),
            (None, None) => (AuthMethod::Remembered, created_at),
            (Some(_), None) => {
                return Err(StoreError::corrupt("a session hash has no field \"authenticated_at\""));
            }
            (None, Some(_)) => return Err(StoreError::corrupt("a session hash has no field \"method\"")),
        };
        let username: Username = required(username, "username")?;
        Some(SessionUser { username, login: login.flatten(), method, authenticated_at })
    } else {
        None
    };
    let digest = match (sought, digest.and_then(quoted_text)) {
        // The sought digest's own text: its bytes, without decoding them.
        // base64url without padding writes a value one way only, and the
        // decoder refuses any other spelling, so equal texts are equal
        // digests, and a different text is never taken for the sought one.
        (Some(sought), Some(text)) if text == sought.text => Some(*sought.digest),
        _ => string_field(*digest, "digest", |text| SessionDigest::from_base64(text).ok())?,
    };
    Ok(Some(SessionRecord {
        digest: required::<SessionDigest>(digest, "digest")?,
        user,
        data: required::<SessionData>(field(*data, "data")?, "data")?,
        created_at,
        expires_at: required(timestamp(*expires_at, "expires_at")?, "expires_at")?,
    }))
}

/// The text between the quotes of a JSON string value, unchecked for
/// escapes: for a parser that refuses every text holding a backslash, a
/// quote or a control character (base64url, RFC 3339 times, method names),
/// so that whatever it takes means what its JSON means. `None` for a value
/// that is not a quoted UTF-8 text.
fn quoted_text(value: &[u8]) -> Option<&str> {
    let text = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    std::str::from_utf8(text).ok()
}

/// Whether `text` (between a JSON string's quotes) holds no quote or
/// backslash: a string whose text means what its JSON means for a parser
/// that takes quotes or backslashes (a username); control characters,
/// which JSON always escapes, such a parser must refuse itself.
fn has_no_escape(text: &str) -> bool {
    memchr::memchr2(b'\\', b'"', text.as_bytes()).is_none()
}

/// A field whose JSON is a string, parsed by `parse` straight from its text
/// ([`quoted_text`]: `parse` must refuse any text holding a backslash, a
/// quote or a control character; every session read decodes six such
/// fields); anything `parse` does not take (an escape, another JSON type, a
/// bad value) goes through serde_json as [`field`] does, which decides it
/// the same way with the same parser and names what is wrong.
fn string_field<T: serde::de::DeserializeOwned>(
    value: Option<&[u8]>,
    name: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, StoreError> {
    let Some(bytes) = value else { return Ok(None) };
    match quoted_text(bytes).and_then(parse) {
        Some(parsed) => Ok(Some(parsed)),
        None => field(Some(bytes), name),
    }
}

/// A timestamp field: RFC 3339, as [`SessionRecord`]'s serde writes it.
fn timestamp(value: Option<&[u8]>, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    // Any other form goes to serde_json's path, whose RFC 3339 parser decides.
    Ok(string_field(value, name, |text| canonical_utc(text).map(Timestamp))?.map(|Timestamp(at)| at))
}

/// `YYYY-MM-DDTHH:MM:SS[.F]Z` (one to nine fractional digits), the form
/// this store's times are written in, read without the general RFC 3339
/// parser (a session read has three). `None` for any other text, which
/// that parser then decides: a lowercase `t` or `z`, an offset, a leap
/// second, a date or time out of range.
fn canonical_utc(text: &str) -> Option<OffsetDateTime> {
    use expected_core::time::{Date, Month, PrimitiveDateTime, Time};
    let bytes = text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if bytes.len() < 20 || bytes.last() != Some(&b'Z') || separators.iter().any(|&(at, sep)| bytes[at] != sep)
    {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |value, &digit| {
            digit.is_ascii_digit().then(|| value * 10 + u32::from(digit - b'0'))
        })
    };
    let nanos = match &bytes[19..bytes.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(digits)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let small = |digits: &[u8]| number(digits).and_then(|value| u8::try_from(value).ok());
    let year = i32::try_from(number(&bytes[0..4])?).ok()?;
    let month = Month::try_from(small(&bytes[5..7])?).ok()?;
    let date = Date::from_calendar_date(year, month, small(&bytes[8..10])?).ok()?;
    let time =
        Time::from_hms_nano(small(&bytes[11..13])?, small(&bytes[14..16])?, small(&bytes[17..19])?, nanos)
            .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Microseconds since the Unix epoch, rounded up: a record's score.
pub(crate) fn score_of(at: OffsetDateTime) -> String {
    let nanos = at.unix_timestamp_nanos();
    let micros = nanos.div_euclid(1000) + i128::from(nanos.rem_euclid(1000) != 0);
    micros.to_string()
}

/// Microseconds since the Unix epoch, rounded down: a cutoff. A record with
/// `expires_at <= now` has `score_of(expires_at) <= cutoff_of(now)`, and only
/// such a record.
pub(crate) fn cutoff_of(now: OffsetDateTime) -> String {
    now.unix_timestamp_nanos().div_euclid(1000).to_string()
}

/// The `PEXPIREAT` argument for a record expiring at `at`: milliseconds since
/// the epoch, rounded up so Redis never drops a record before its time, plus
/// `margin_ms`, and at least 1 (Redis refuses negative times and an expired
/// record may go at once).
pub(crate) fn expire_at_ms(at: OffsetDateTime, margin_ms: i128) -> String {
    let nanos = at.unix_timestamp_nanos();
    let millis = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    // Redis keeps expiry times as signed 64-bit milliseconds and refuses
    // ones that overflow when it adds them up; stay far below.
    (millis + margin_ms).clamp(1, i128::from(i64::MAX / 4)).to_string()
}

/// What a Redis failure means to the engine.
pub(crate) fn store_error(error: RedisError) -> StoreError {
    let kind = match error.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => StoreErrorKind::Unavailable,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask
            | ServerErrorKind::ReadOnly,
        ) => StoreErrorKind::Unavailable,
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => StoreErrorKind::Corrupt,
        _ if error.code() == Some("BUSY") => StoreErrorKind::Unavailable,
        // One of our keys holds another type: someone else wrote there.
        _ if error.code() == Some("WRONGTYPE") => StoreErrorKind::Corrupt,
        // A script refused a record it found malformed (`packed_values`).
        _ if error.code() == Some("CORRUPT") => StoreErrorKind::Corrupt,
        _ if error.is_timeout() || error.is_connection_dropped() || error.is_connection_refusal() => {
            StoreErrorKind::Unavailable
        }
        _ => StoreErrorKind::Backend,
    };
    StoreError::wrap(kind, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn scores_and_cutoffs_agree_on_the_boundary() {
        let at = datetime!(2030-01-02 03:04:05.678901 UTC);
        assert_eq!(score_of(at), cutoff_of(at));
        let later = at + expected_core::time::Duration::nanoseconds(1);
        assert!(score_of(later) > cutoff_of(later), "sub-µs records never fall under a cutoff early");
        let before = datetime!(1969-12-31 23:59:59.999999 UTC);
        assert_eq!(score_of(before), "-1");
        assert_eq!(cutoff_of(before), "-1");
    }

    #[test]
    fn hashes_flatten_under_both_protocols() -> Result<(), StoreError> {
        use redis::Value;
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let resp2 = Value::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]);
        let resp3 = Value::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk("2"))]);
        assert_eq!(flat_hash(resp2)?, flat_hash(resp3)?);
        assert_eq!(flat_hash(Value::Array(vec![]))?, Vec::<Vec<u8>>::new());
        assert_eq!(flat_hash(Value::Nil)?, Vec::<Vec<u8>>::new());
        assert!(flat_hash(Value::Int(3)).is_err());
        Ok(())
    }

    #[test]
    fn redis_errors_map_to_store_error_kinds() {
        let io = RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(store_error(io).kind(), StoreErrorKind::Unavailable);
        let timeout = RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        assert_eq!(store_error(timeout).kind(), StoreErrorKind::Unavailable);
        let down = RedisError::from((ErrorKind::Server(ServerErrorKind::ClusterDown), "down"));
        assert_eq!(store_error(down).kind(), StoreErrorKind::Unavailable);
        let loading = RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"));
        assert_eq!(store_error(loading).kind(), StoreErrorKind::Unavailable);
        let parse = RedisError::from((ErrorKind::UnexpectedReturnType, "not a number"));
        assert_eq!(store_error(parse).kind(), StoreErrorKind::Corrupt);
        let script =
            RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "Error running script"));
        assert_eq!(store_error(script).kind(), StoreErrorKind::Backend);
    }

    /// What `HMGET key` [`SESSION_FIELDS`] answers for the hash holding
    /// the flat field/value pairs `flat` (a later pair for the same field
    /// overwrites an earlier one, as `HSET` does).
    fn hmget(flat: Vec<Vec<u8>>) -> Vec<Option<Vec<u8>>> {
        let mut values = vec![None; SESSION_FIELDS.len()];
        for pair in flat.chunks_exact(2) {
            if let Some(slot) = SESSION_FIELDS.iter().position(|name| name.as_bytes() == pair[0]) {
                values[slot] = Some(pair[1].clone());
            }
        }
        values
    }

    /// What a session read decodes from the hash `flat`, both ways: through
    /// its fields (`HMGET`, a session of version 0.1) and through the packed
    /// value of the same values. The two must agree on every input, good or
    /// bad, that has a packed form (no value empty or holding the separator).
    fn read(flat: Vec<Vec<u8>>) -> Result<Option<SessionRecord>, StoreError> {
        let values = hmget(flat);
        let borrowed: Vec<Option<&[u8]>> = values.iter().map(Option::as_deref).collect();
        let by_fields = decode_session(&borrowed, None);
        if let Ok(Some(record)) = &by_fields {
            // Read as a lookup by its own digest reads it (the text compared,
            // not decoded), and as one by another digest reads the stored
            // digest, for the caller to refuse.
            let text = record.digest.to_base64();
            let own = Some(Sought { digest: &record.digest, text: &text });
            assert_eq!(decode_session(&borrowed, own).ok(), Some(Some(record.clone())));
            let other = SessionDigest::from_bytes(record.digest.as_bytes().map(|byte| !byte));
            let other_text = other.to_base64();
            let other = Some(Sought { digest: &other, text: &other_text });
            assert_eq!(decode_session(&borrowed, other).ok(), Some(Some(record.clone())));
        }
        let packable =
            values.iter().flatten().all(|value| !value.is_empty() && !value.contains(&PACKED_SEPARATOR));
        if packable && values.iter().any(Option::is_some) {
            let packed = values.iter().map(|value| value.clone().unwrap_or_default()).collect::<Vec<_>>();
            let by_packed = decode_packed_session(&packed.join(&PACKED_SEPARATOR), None).map(Some);
            assert_eq!(
                by_fields.as_ref().map_err(StoreError::kind),
                by_packed.as_ref().map_err(StoreError::kind),
                "the packed layout reads {values:?} as the fields do"
            );
        }
        by_fields
    }

    #[test]
    fn session_reads_take_hmget_answers_only() -> Result<(), StoreError> {
        use redis::Value;
        let nils = Value::Array(vec![Value::Nil; SESSION_FIELDS.len()]);
        assert_eq!(
            decode_session(&session_values(nils)?.each_ref().map(Option::as_deref), None)?,
            None,
            "no such key"
        );
        let mut items = vec![Value::Nil; SESSION_FIELDS.len()];
        items[0] = Value::BulkString(b"x".to_vec());
        assert_eq!(session_values(Value::Array(items.clone()))?[0], Some(b"x".to_vec()));
        items.pop();
        assert!(session_values(Value::Array(items)).is_err_and(|e| e.kind() == StoreErrorKind::Corrupt));
        let mut items = vec![Value::Nil; SESSION_FIELDS.len()];
        items[3] = Value::Int(7);
        assert!(session_values(Value::Array(items)).is_err_and(|e| e.kind() == StoreErrorKind::Corrupt));
        assert!(session_values(Value::Nil).is_err_and(|e| e.kind() == StoreErrorKind::Corrupt));
        assert!(
            decode_session(&[None, Some(&b"{}"[..])], None)
                .is_err_and(|e| e.kind() == StoreErrorKind::Corrupt)
        );
        Ok(())
    }

    #[test]
    fn sessions_read_back_every_field_they_write() -> Result<(), Box<dyn std::error::Error>> {
        let user = password_user("zoë")?;
        // A field written but not read back would be lost on every hit.
        let mut written: Vec<String> = session_fields(&session(Some(user)))?.keys().cloned().collect();
        let mut read: Vec<String> = SESSION_FIELDS.iter().map(|name| (*name).to_owned()).collect();
        written.sort();
        read.sort();
        assert_eq!(written, read);
        Ok(())
    }

    fn flat(fields: &Map<String, Value>) -> Vec<Vec<u8>> {
        field_args(fields).into_iter().map(String::into_bytes).collect()
    }

    fn session(user: Option<SessionUser>) -> SessionRecord {
        let at = datetime!(2030-01-02 03:04:05.678901 UTC);
        let mut data = expected_core::SessionData::new();
        data.insert("cart".to_owned(), Value::from(3));
        SessionRecord {
            digest: SessionDigest::from_bytes([1; 32]),
            user,
            data,
            created_at: at,
            expires_at: at + expected_core::time::Duration::hours(1),
        }
    }

    /// `name`, logged in with a password and "remember me".
    fn password_user(name: &str) -> Result<SessionUser, expected_core::UsernameError> {
        Ok(SessionUser {
            username: Username::new(name)?,
            login: Some(Serial::from_bytes([2; 16])),
            method: AuthMethod::Password,
            authenticated_at: datetime!(2030-01-01 0:00 UTC),
        })
    }

    /// Fields as (name, JSON bytes) pairs, to mutate.
    fn pairs_of(fields: &Map<String, Value>) -> Pairs {
        fields.iter().map(|(name, value)| (name.clone(), value.to_string().into_bytes())).collect()
    }

    #[test]
    fn sessions_flatten_their_user_and_read_back() -> Result<(), Box<dyn std::error::Error>> {
        let user = password_user("zoë")?;
        for session in
            [session(Some(user.clone())), session(Some(SessionUser { login: None, ..user })), session(None)]
        {
            let fields = session_fields(&session)?;
            assert!(!fields.contains_key("user"));
            assert_eq!(fields.contains_key("username"), session.user.is_some());
            if let Some(serial) = session.login() {
                assert_eq!(fields.get("login"), Some(&Value::from(serial.to_base64())));
            }
            assert_eq!(read(flat(&fields))?, Some(session));
        }
        assert_eq!(read(Vec::new())?, None);
        Ok(())
    }

    #[test]
    fn version_0_1_records_read_with_their_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let alice = Username::new("alice")?;
        let old = session(Some(SessionUser {
            username: alice.clone(),
            login: None,
            method: AuthMethod::Remembered,
            authenticated_at: session(None).created_at,
        }));
        let mut fields = session_fields(&old)?;
        fields.remove("method");
        fields.remove("authenticated_at");
        assert_eq!(read(flat(&fields))?, Some(old));
        // Half of the new fields is neither version: corrupt.
        fields.insert("method".to_owned(), Value::from("password"));
        let error = read(flat(&fields)).err().map(|error| error.kind());
        assert_eq!(error, Some(StoreErrorKind::Corrupt));
        // A user's field without a username is no session either.
        let mut fields = session_fields(&session(None))?;
        fields.insert("login".to_owned(), Value::Null);
        let error = read(flat(&fields)).err().map(|error| error.kind());
        assert_eq!(error, Some(StoreErrorKind::Corrupt));

        let at = datetime!(2030-01-02 03:04:05.678901 UTC);
        let login = Login {
            username: alice,
            serial: Serial::from_bytes([2; 16]),
            token: expected_core::TokenDigest::from_bytes([3; 32]),
            previous: None,
            session: None,
            created_at: at,
            last_used_at: at + expected_core::time::Duration::days(1),
            expires_at: at + expected_core::time::Duration::days(30),
            client: expected_core::ClientMeta::default(),
            authenticated_at: at,
        };
        let mut fields = login_fields(&login)?;
        assert_eq!(decode_login(flat(&fields))?, Some(login.clone()));
        fields.remove("authenticated_at");
        assert_eq!(decode_login(flat(&fields))?, Some(login));
        Ok(())
    }

    /// A hash's fields as (name, value) pairs, to mutate.
    type Pairs = Vec<(String, Vec<u8>)>;

    /// A logged-in user's session fields.
    fn user_session_fields() -> Result<Map<String, Value>, Box<dyn std::error::Error>> {
        let user = password_user("zoë")?;
        Ok(session_fields(&session(Some(user)))?)
    }

    /// A logged-in user's session hash.
    fn user_session_pairs() -> Result<Pairs, Box<dyn std::error::Error>> {
        let fields = user_session_fields()?;
        Ok(pairs_of(&fields))
    }

    fn flatten(pairs: &[(String, Vec<u8>)]) -> Vec<Vec<u8>> {
        pairs.iter().flat_map(|(name, value)| [name.clone().into_bytes(), value.clone()]).collect()
    }

    fn corrupt(flat: Vec<Vec<u8>>) -> bool {
        read(flat).err().map(|error| error.kind()) == Some(StoreErrorKind::Corrupt)
    }

    #[test]
    fn every_malformed_session_field_is_corrupt_not_a_panic() -> Result<(), Box<dyn std::error::Error>> {
        let pairs = user_session_pairs()?;
        assert!(read(flatten(&pairs))?.is_some(), "the unmutated hash reads");
        // Values that are not JSON, or JSON of another type, or of the right
        // type but no valid value (a short digest, a bad date, a bad name).
        let garbage: [&[u8]; 14] = [
            b"",
            b"{",
            b"\"",
            b"\xff\xfe",
            b"42",
            b"[]",
            b"{}",
            b"true",
            b"\"AAAA\"",
            b"\"2030-13-45T25:61:00Z\"",
            b"\"not a date\"",
            b"\"has space\\u0000\"",
            b"\"password\" trailing",
            b"18446744073709551616999",
        ];
        for index in 0..pairs.len() {
            for bad in garbage {
                let mut mutated = pairs.clone();
                mutated[index].1 = bad.to_vec();
                let name = &pairs[index].0;
                // What is a valid value of the field after all: `login`
                // may be null, `data` any object, a username any string
                // without control characters.
                let reads = match name.as_str() {
                    "login" => bad == b"null",
                    "data" => bad == b"{}",
                    "username" => bad.starts_with(b"\"") && bad.ends_with(b"\"") && !bad.contains(&b'\\'),
                    _ => false,
                };
                let decoded = read(flatten(&mutated));
                assert!(
                    reads || decoded.as_ref().err().map(StoreError::kind) == Some(StoreErrorKind::Corrupt),
                    "{name} = {:?} answered {decoded:?}",
                    String::from_utf8_lossy(bad)
                );
            }
        }
        Ok(())
    }

    #[test]
    fn canonical_times_read_as_the_rfc3339_parser_reads_them() {
        use expected_core::time::format_description::well_known::Rfc3339;
        // Every time this store writes takes the short way, to the same value.
        let start = datetime!(1999-12-31 23:59:59.999999 UTC);
        for step in 0..2000i64 {
            let at = start + expected_core::time::Duration::microseconds(step * 7_919_113_337);
            let text = at.format(&Rfc3339).unwrap_or_default();
            assert_eq!(canonical_utc(&text), Some(at), "{text}");
        }
        // Text it does not take is left to the parser; what it takes, the
        // parser reads the same.
        let texts = [
            "2024-02-29T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2030-01-02T03:04:05.1Z",
            "2030-01-02T03:04:05.123456789Z",
            "2030-01-02T03:04:05.1234567890Z",
            "2030-01-02T03:04:05.Z",
            "2030-01-02T03:04:05z",
            "2030-01-02t03:04:05Z",
            "2030-01-02T03:04:05+00:00",
            "2016-12-31T23:59:60Z",
            "2030-13-02T03:04:05Z",
            "2030-00-02T03:04:05Z",
            "2030-01-32T03:04:05Z",
            "2030-01-02T24:04:05Z",
            "2030-01-02T03:60:05Z",
            "+030-01-02T03:04:05Z",
            "2030-01-02T03:04:5Z",
            "2030-01-02T03:04:05",
            "",
        ];
        for text in texts {
            if let Some(at) = canonical_utc(text) {
                assert_eq!(OffsetDateTime::parse(text, &Rfc3339).ok(), Some(at), "{text}");
            }
        }
        assert_eq!(canonical_utc("2030-01-02T03:04:05.1234567890Z"), None);
        assert_eq!(canonical_utc("2030-01-02T03:04:05+00:00"), None);
        assert_eq!(canonical_utc("2016-12-31T23:59:60Z"), None);
        assert_eq!(canonical_utc("2023-02-29T12:00:00Z"), None);
    }

    #[test]
    fn escaped_strings_read_as_their_plain_form() -> Result<(), Box<dyn std::error::Error>> {
        // The plain strings take the fast path, the escaped ones serde_json:
        // both must read the same record.
        let pairs = user_session_pairs()?;
        let plain = read(flatten(&pairs))?;
        assert!(plain.is_some());
        let mut escaped_any = 0;
        for index in 0..pairs.len() {
            let value = &pairs[index].1;
            let Some(text) = value.strip_prefix(b"\"").and_then(|rest| rest.strip_suffix(b"\"")) else {
                continue;
            };
            let Some((&first, rest)) = text.split_first() else { continue };
            let mut escaped = format!("\"\\u{first:04x}").into_bytes();
            escaped.extend_from_slice(rest);
            escaped.push(b'"');
            let mut mutated = pairs.clone();
            mutated[index].1 = escaped;
            assert_eq!(read(flatten(&mutated))?, plain, "{}", pairs[index].0);
            escaped_any += 1;
        }
        assert_eq!(escaped_any, 7, "every string field but data was escaped once");
        // Whitespace around a string is JSON too, read the slow way.
        let mut spaced = pairs.clone();
        let method = spaced.iter_mut().find(|(name, _)| name == "method").ok_or("no method field")?;
        method.1 = b" \"password\" ".to_vec();
        assert_eq!(read(flatten(&spaced))?, plain);
        Ok(())
    }

    #[test]
    fn quotes_and_backslashes_read_as_their_json_means() -> Result<(), Box<dyn std::error::Error>> {
        // A username may hold both: its JSON escapes them, and the read
        // must undo the escapes, never take the escaped text as the name.
        let user = password_user(r#"a"b\c"#)?;
        let record = session(Some(user));
        let pairs = pairs_of(&session_fields(&record)?);
        assert_eq!(read(flatten(&pairs))?, Some(record));
        // In the fields read without serde_json (base64url, times, the
        // method), a raw quote or backslash is no JSON string at all, and
        // corrupt: the parsers of those fields refuse both.
        for name in ["digest", "login", "created_at", "expires_at", "method", "authenticated_at"] {
            let mut base = user_session_pairs()?;
            let slot = base.iter().position(|(field, _)| field == name).ok_or(name)?;
            for raw in [b'"', b'\\'] {
                let mut mutated = base.clone();
                let value = &mut mutated[slot].1;
                value.insert(value.len() / 2, raw);
                assert!(corrupt(flatten(&mutated)), "{name} with a raw {}", char::from(raw));
            }
            base[slot].1.insert(1, b' ');
            assert!(corrupt(flatten(&base)), "{name} with a space inside");
        }
        Ok(())
    }

    #[test]
    fn missing_and_unknown_session_fields() -> Result<(), Box<dyn std::error::Error>> {
        let pairs = user_session_pairs()?;
        for required in ["digest", "data", "created_at", "expires_at", "username"] {
            let without: Vec<_> = pairs.iter().filter(|(name, _)| name != required).cloned().collect();
            assert!(corrupt(flatten(&without)), "without {required}");
        }
        // A field a later version adds is not read, whatever it holds.
        let mut later = pairs.clone();
        later.push(("later_field".to_owned(), b"\xff not json".to_vec()));
        later.push((String::from_utf8_lossy(b"\xff").into_owned(), b"{".to_vec()));
        assert_eq!(read(flatten(&later))?, read(flatten(&pairs))?);
        Ok(())
    }

    #[test]
    fn truncated_session_values_never_panic() -> Result<(), Box<dyn std::error::Error>> {
        let pairs = user_session_pairs()?;
        for index in 0..pairs.len() {
            for cut in 0..pairs[index].1.len() {
                let mut mutated = pairs.clone();
                mutated[index].1.truncate(cut);
                // Every value is a JSON string or object: any prefix loses
                // its closing quote or brace.
                let decoded = read(flatten(&mutated));
                assert!(
                    decoded.is_err_and(|error| error.kind() == StoreErrorKind::Corrupt),
                    "{} cut at {cut}",
                    pairs[index].0
                );
            }
        }
        Ok(())
    }

    /// The packed value among a session's script arguments.
    fn packed_of(args: &[String]) -> Option<&[u8]> {
        args.chunks_exact(2).find(|pair| pair[0] == PACKED_FIELD).map(|pair| pair[1].as_bytes())
    }

    #[test]
    fn packed_sessions_read_back_with_login_beside_them() -> Result<(), Box<dyn std::error::Error>> {
        let user = password_user("zoë \"quoted\"")?;
        let mut with_separator = session(None);
        // A separator in the data is escaped by its JSON, never raw.
        with_separator.data.insert("note".to_owned(), Value::from("a\u{1f}b\u{1f}"));
        for session in [
            session(Some(user.clone())),
            session(Some(SessionUser { login: None, ..user })),
            session(None),
            with_separator,
        ] {
            let args = packed_session_args(&session_fields(&session)?)?;
            let names: Vec<&str> = args.iter().step_by(2).map(String::as_str).collect();
            let login = session_fields(&session)?.get("login").map(ToString::to_string);
            let expected_names: &[&str] = if login.is_some() { &["login", "packed"] } else { &["packed"] };
            assert_eq!(names, expected_names);
            assert_eq!(args.get(1).filter(|_| login.is_some()), login.as_ref(), "login as its fields' JSON");
            let packed = packed_of(&args).ok_or("no packed value")?;
            let separators = packed.iter().filter(|&&byte| byte == PACKED_SEPARATOR).count();
            assert_eq!(separators, SESSION_FIELDS.len() - 1, "{:?}", String::from_utf8_lossy(packed));
            assert_eq!(decode_packed_session(packed, None)?, session);
        }
        Ok(())
    }

    #[test]
    fn malformed_packed_sessions_are_corrupt_not_a_panic() -> Result<(), Box<dyn std::error::Error>> {
        let args = packed_session_args(&user_session_fields()?)?;
        let packed = packed_of(&args).ok_or("no packed value")?.to_vec();
        assert!(decode_packed_session(&packed, None).is_ok(), "the unmutated value reads");
        let is_corrupt = |value: &[u8]| {
            decode_packed_session(value, None).err().map(|error| error.kind())
                == Some(StoreErrorKind::Corrupt)
        };
        // Every shorter value: a value cut, or a separator missing.
        for cut in 0..packed.len() {
            assert!(is_corrupt(&packed[..cut]), "cut at {cut}");
        }
        let separator = [PACKED_SEPARATOR];
        assert!(is_corrupt(&[&packed[..], &separator].concat()), "nine values");
        assert!(is_corrupt(&[&separator[..], &packed].concat()), "nine values, the first empty");
        assert!(is_corrupt(&vec![PACKED_SEPARATOR; SESSION_FIELDS.len() - 1]), "eight empty values");
        assert!(is_corrupt(b""), "one empty value");
        // A field the packed format has no place for is refused, not lost.
        let mut fields = session_fields(&session(None))?;
        fields.insert("later_field".to_owned(), Value::from(1));
        let error = packed_session_args(&fields).err().map(|error| error.kind());
        assert_eq!(error, Some(StoreErrorKind::Backend));
        Ok(())
    }

    #[test]
    fn expiry_rounds_up_to_the_millisecond() {
        let at = datetime!(2030-01-02 03:04:05.678901 UTC);
        let ms = at.unix_timestamp() * 1000 + 679;
        assert_eq!(expire_at_ms(at, 0), ms.to_string());
        assert_eq!(expire_at_ms(at, 1000), (ms + 1000).to_string());
        assert_eq!(expire_at_ms(datetime!(1960-01-01 0:00 UTC), 0), "1");
    }
}
