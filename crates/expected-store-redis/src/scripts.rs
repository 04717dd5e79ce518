//! The Lua scripts. Each runs atomically on the node that owns its bucket.
//!
//! User scripts get `KEYS = [user logins, user sessions, bucket logins,
//! bucket sessions, record key(s)…]` and `ARGV = [bucket base, user, …]`.
//! Keys of records found through an index (a bound session, the sessions of a
//! login) are built from the base and the user, so they carry the same hash
//! tag and live in the same slot as the declared keys.
//!
//! Records are hashes with one field per serde field, each value that field's
//! canonical JSON. Scripts only ever compare such values byte for byte
//! (`token`, `session`, `login`) or overwrite them with values computed in
//! Rust; they never parse JSON. A JSON string of base64url needs no escaping,
//! so `"…"` minus its quotes is the raw digest or serial.
//!
//! Scripts check before they write, and touch built keys before declared
//! ones, so that one refused mid-way (Redis does not roll a script back) has
//! only done part of what a retry finishes.
//!
//! Scores are microseconds since the Unix epoch, passed as integer strings:
//! exact in a double until the year 2255.

use std::sync::LazyLock;

use redis::Script;

/// Shared helpers, prepended to every user script.
const PRELUDE: &str = r#"
local base, user = ARGV[1], ARGV[2]
local user_logins, user_sessions, bucket_logins, bucket_sessions = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local function login_key(serial) return base .. 'l:' .. user .. ':' .. serial end
local function session_key(digest) return base .. 's:' .. user .. ':' .. digest end

-- The base64url inside a JSON string, or nil for JSON null or no value.
local function unquote(json)
  if not json or json == 'null' then return nil end
  return string.sub(json, 2, -2)
end

-- Deletes a login and its index entries; 1 when the record existed. The
-- record goes first: should Redis refuse a key the script built (a slot
-- being migrated), nothing of this record has changed yet.
local function drop_login(serial)
  local existed = redis.call('DEL', login_key(serial))
  redis.call('ZREM', user_logins, serial)
  redis.call('ZREM', bucket_logins, user .. ':' .. serial)
  return existed
end

-- Deletes a session and its index entries; 1 when the record existed.
local function drop_session(digest)
  local existed = redis.call('DEL', session_key(digest))
  redis.call('ZREM', user_sessions, digest)
  redis.call('ZREM', bucket_sessions, user .. ':' .. digest)
  return existed
end

-- Writes the fields ARGV[from..to] into a record, sets its expiry and
-- indexes it under its expires_at.
local function put(key, index, bucket_index, member, score, at, from, to)
  redis.call('HSET', key, unpack(ARGV, from, to))
  redis.call('PEXPIREAT', key, at)
  redis.call('ZADD', index, score, member)
  redis.call('ZADD', bucket_index, score, user .. ':' .. member)
end

-- Drops a few index entries whose record Redis already expired. Only
-- entries whose key is gone are removed, whatever the clocks say.
local function prune(index, bucket_index, key_of)
  local time = redis.call('TIME')
  local now = time[1] .. string.format('%06d', tonumber(time[2]))
  local stale = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, 16)
  for _, member in ipairs(stale) do
    if redis.call('EXISTS', key_of(member)) == 0 then
      redis.call('ZREM', index, member)
      redis.call('ZREM', bucket_index, user .. ':' .. member)
    end
  end
end
"#;

/// `KEYS[5]` login; `ARGV[3]` serial, `[4]` score, `[5]` PEXPIREAT,
/// `[6..]` field/value pairs. Answers 1 when created, 0 when it exists.
const CREATE_LOGIN: &str = r#"
if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
prune(user_logins, bucket_logins, login_key)
put(KEYS[5], user_logins, bucket_logins, ARGV[3], ARGV[4], ARGV[5], 6, #ARGV)
return 1
"#;

/// `KEYS[5]` session; `ARGV[3]` digest, `[4]` score, `[5]` PEXPIREAT,
/// `[6..]` field/value pairs. Answers 1 when created, 0 when it exists.
const CREATE_SESSION: &str = r#"
if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
prune(user_sessions, bucket_sessions, session_key)
put(KEYS[5], user_sessions, bucket_sessions, ARGV[3], ARGV[4], ARGV[5], 6, #ARGV)
return 1
"#;

/// The compare-and-swap rotation.
///
/// `KEYS[5]` login, `KEYS[6]` new session; `ARGV[3]` serial, `[4]` expected
/// token (JSON), `[5]` new session digest, `[6]`/`[7]` login score and
/// PEXPIREAT, `[8]`/`[9]` session score and PEXPIREAT, `[10]` how many ARGV
/// the login's field/value pairs take, then those pairs, then the session's.
const ROTATE_LOGIN: &str = r#"
if redis.call('EXISTS', KEYS[5]) == 0 then return 'not_found' end
local token = redis.call('HGET', KEYS[5], 'token')
if not token then return 'corrupt' end
if token ~= ARGV[4] then return 'not_current' end
if redis.call('EXISTS', KEYS[6]) == 1 then return 'session_exists' end
local old = unquote(redis.call('HGET', KEYS[5], 'session'))
if old then drop_session(old) end
local login_args = tonumber(ARGV[10])
put(KEYS[5], user_logins, bucket_logins, ARGV[3], ARGV[6], ARGV[7], 11, 10 + login_args)
put(KEYS[6], user_sessions, bucket_sessions, ARGV[5], ARGV[8], ARGV[9], 11 + login_args, #ARGV)
prune(user_logins, bucket_logins, login_key)
prune(user_sessions, bucket_sessions, session_key)
return 'rotated'
"#;

/// Answers every live login of the user as a flat field/value array, and
/// drops index entries whose record is gone.
const LIST_LOGINS: &str = r#"
local found = {}
for _, serial in ipairs(redis.call('ZRANGE', user_logins, 0, -1)) do
  local record = redis.call('HGETALL', login_key(serial))
  if #record == 0 then
    redis.call('ZREM', user_logins, serial)
    redis.call('ZREM', bucket_logins, user .. ':' .. serial)
  else
    found[#found + 1] = record
  end
end
return found
"#;

/// `KEYS[5]` login; `ARGV[3]` serial, `[4]` serial as JSON. Deletes the login,
/// its bound session and every session whose `login` is this serial.
const DELETE_LOGIN: &str = r#"
if redis.call('EXISTS', KEYS[5]) == 0 then
  drop_login(ARGV[3])
  return 0
end
local bound = unquote(redis.call('HGET', KEYS[5], 'session'))
if bound then drop_session(bound) end
for _, digest in ipairs(redis.call('ZRANGE', user_sessions, 0, -1)) do
  local opened_by = redis.call('HGET', session_key(digest), 'login')
  if opened_by == ARGV[4] then
    drop_session(digest)
  elseif not opened_by and redis.call('EXISTS', session_key(digest)) == 0 then
    drop_session(digest)
  end
end
drop_login(ARGV[3])
return 1
"#;

/// Deletes every login and session of the user: `{logins, sessions}`.
const DELETE_USER: &str = r#"
local logins, sessions = 0, 0
for _, serial in ipairs(redis.call('ZRANGE', user_logins, 0, -1)) do
  logins = logins + drop_login(serial)
end
for _, digest in ipairs(redis.call('ZRANGE', user_sessions, 0, -1)) do
  sessions = sessions + drop_session(digest)
end
return {logins, sessions}
"#;

/// `KEYS[5]` session; `ARGV[3]` digest, `[4]` score, `[5]` PEXPIREAT,
/// `[6..]` the `data` and `expires_at` pairs. Never creates the session.
const SAVE_SESSION: &str = r#"
if redis.call('EXISTS', KEYS[5]) == 0 then return 0 end
put(KEYS[5], user_sessions, bucket_sessions, ARGV[3], ARGV[4], ARGV[5], 6, #ARGV)
return 1
"#;

/// `ARGV[3]` digest. 1 when the session existed.
const DELETE_SESSION: &str = r#"
return drop_session(ARGV[3])
"#;

/// Cleans one bucket. `KEYS[1]` the bucket's index of one kind; `ARGV[1]`
/// bucket base, `[2]` record kind (`l` or `s`), `[3]` user index kind (`L`
/// or `S`), `[4]` now (µs), `[5]` batch size. Deletes the records indexed at
/// or before now and answers `{deleted, entries visited}`; a full batch means
/// call again.
const CLEAN: &str = r#"
local base, kind, index_kind = ARGV[1], ARGV[2], ARGV[3]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
local deleted = 0
for _, member in ipairs(due) do
  local user, id = string.match(member, '^([^:]*):(.*)$')
  deleted = deleted + redis.call('DEL', base .. kind .. ':' .. member)
  redis.call('ZREM', KEYS[1], member)
  if user then redis.call('ZREM', base .. index_kind .. ':' .. user, id) end
end
return {deleted, #due}
"#;

/// Every script, hashed once.
pub(crate) struct Scripts {
    pub(crate) create_login: Script,
    pub(crate) create_session: Script,
    pub(crate) rotate_login: Script,
    pub(crate) list_logins: Script,
    pub(crate) delete_login: Script,
    pub(crate) delete_user: Script,
    pub(crate) save_session: Script,
    pub(crate) delete_session: Script,
    pub(crate) clean: Script,
}

fn user_script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create_login: user_script(CREATE_LOGIN),
    create_session: user_script(CREATE_SESSION),
    rotate_login: user_script(ROTATE_LOGIN),
    list_logins: user_script(LIST_LOGINS),
    delete_login: user_script(DELETE_LOGIN),
    delete_user: user_script(DELETE_USER),
    save_session: user_script(SAVE_SESSION),
    delete_session: user_script(DELETE_SESSION),
    clean: Script::new(CLEAN),
});
