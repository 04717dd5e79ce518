//! Records to hash fields and back, times to scores, Redis errors to store
//! errors.

use expected_core::time::OffsetDateTime;
use expected_core::{StoreError, StoreErrorKind};
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

/// A record back from the flat field/value array `HGETALL` answers; `None`
/// when the array is empty (no such key).
pub(crate) fn from_fields<T: serde::de::DeserializeOwned>(
    flat: Vec<Vec<u8>>,
) -> Result<Option<T>, StoreError> {
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
    serde_json::from_value(Value::Object(fields))
        .map(Some)
        .map_err(|error| StoreError::corrupt(format!("record does not decode: {error}")))
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

    #[test]
    fn expiry_rounds_up_to_the_millisecond() {
        let at = datetime!(2030-01-02 03:04:05.678901 UTC);
        let ms = at.unix_timestamp() * 1000 + 679;
        assert_eq!(expire_at_ms(at, 0), ms.to_string());
        assert_eq!(expire_at_ms(at, 1000), (ms + 1000).to_string());
        assert_eq!(expire_at_ms(datetime!(1960-01-01 0:00 UTC), 0), "1");
    }
}
