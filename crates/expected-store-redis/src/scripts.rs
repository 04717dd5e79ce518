//! The Lua scripts. Each runs atomically on the node that owns its bucket.
//!
//! Scripts get `KEYS = [record key(s)…, index keys…]` and `ARGV = [bucket
//! base, owner, …]`, the owner being a user's base64url name or `''` for the
//! anonymous sessions of the bucket (a username is never empty). Index keys
//! are declared for the cluster's sake but never read from `KEYS`: the
//! prelude builds them, like the keys of records found through an index (a
//! bound session, the sessions of a login, the users of a bucket), from the
//! base and the owner, so they carry the same hash tag and live in the same
//! slot as the declared keys. Cleaning scripts get `KEYS = [bucket
//! index(es)]` and `ARGV = [bucket base, '', now, batch]`.
//!
//! Each login's sessions are in a set of their own (`O:U:S`), so that ending
//! one login touches only what it holds: a revocation of a serial that does
//! not exist is a few lookups, however many sessions the user has. The sets
//! are kept by every script that writes, deletes or caps a user's session,
//! and built once per user, lazily, for records written before them (see
//! `ensure_indexed` in the prelude). Every script that creates a user's
//! session also caps the user's sessions (`cap_sessions`), so the scripts
//! that walk all of a user's sessions (`DELETE_USER`, the lazy build) walk
//! at most the cap.
//!
//! A login is a hash with one field per serde field, each value that field's
//! canonical JSON; a session is a hash holding its values packed in one
//! field, `packed`, and its `login` beside it (see `codec.rs`; a session of
//! version 0.1 has one field per value, its user's fields at the top level).
//! Scripts only ever compare such values byte for byte (`token`, `session`,
//! `login`) or overwrite them with values computed in Rust, in a packed
//! session by position (`set_session_fields`); they never parse JSON. A JSON string of base64url needs no escaping,
//! so `"…"` minus its quotes is the raw digest or serial, and a serial in
//! quotes is its JSON.
//!
//! Scripts check before they write, and touch built keys before declared
//! ones, so that one refused mid-way (Redis does not roll a script back) has
//! only done part of what a retry finishes.
//!
//! Scores are microseconds since the Unix epoch, passed as integer strings:
//! exact in a double until the year 2255.

use std::sync::LazyLock;

use redis::Script;

/// Shared helpers, prepended to every script.
const PRELUDE: &str = r#"
local base, user = ARGV[1], ARGV[2]
local bucket_logins, bucket_sessions, anonymous = base .. 'L', base .. 'S', base .. 'A'
local user_logins, user_sessions, indexed

-- Points the helpers at another owner in the bucket (cleaning walks many).
-- '' is nobody: anonymous sessions, indexed in the bucket's A set alone.
local function set_user(name)
  user = name
  user_logins = base .. 'L:' .. name
  indexed = base .. 'I:' .. name
  if name == '' then user_sessions = anonymous else user_sessions = base .. 'S:' .. name end
end
set_user(user)

local function login_key(serial) return base .. 'l:' .. user .. ':' .. serial end
local function session_key(digest)
  if user == '' then return base .. 'a:' .. digest end
  return base .. 's:' .. user .. ':' .. digest
end
-- The set of the digests of the user's sessions that the login `serial`
-- opened.
local function opened_key(serial) return base .. 'O:' .. user .. ':' .. serial end

-- The base64url inside a JSON string, or nil for JSON null or no value.
local function unquote(json)
  if not json or json == 'null' then return nil end
  return string.sub(json, 2, -2)
end

-- A field of a hash, or nil when the key is gone (or holds another type:
-- deleting never fails on someone else's key).
local function field(key, name)
  local value = redis.pcall('HGET', key, name)
  if type(value) ~= 'string' then return nil end
  return value
end

-- Redis's clock in milliseconds, read once per script.
local clock_ms
local function now_ms()
  if not clock_ms then
    local time = redis.call('TIME')
    clock_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  end
  return clock_ms
end

-- Pushes the expiry of an existing key out to `at` (ms since the epoch; nil
-- for never) when it would end sooner.
local function extend(key, at)
  local ttl = redis.call('PTTL', key)
  if ttl == -2 then return end
  if not at then
    redis.call('PERSIST', key)
  elseif ttl == -1 or now_ms() + ttl < at then
    redis.call('PEXPIREAT', key, at)
  end
end

-- Deletes a session and its index entries, but not its entry in the set
-- of its login; 1 when the record existed. An anonymous session's index is
-- its bucket's own, a user's has a second one.
local function unlink_session(digest)
  local existed = redis.call('DEL', session_key(digest))
  redis.call('ZREM', user_sessions, digest)
  if user ~= '' then redis.call('ZREM', bucket_sessions, user .. ':' .. digest) end
  return existed
end

-- Deletes a session, its index entries and its entry in the set of the
-- login that opened it; 1 when the record existed.
local function drop_session(digest)
  if user ~= '' then
    local opened_by = unquote(field(session_key(digest), 'login'))
    if opened_by then redis.call('SREM', opened_key(opened_by), digest) end
  end
  return unlink_session(digest)
end

-- The user's marker goes once the user has no session left.
local function forget_if_empty()
  if user ~= '' and redis.call('ZCARD', user_sessions) == 0 then redis.call('DEL', indexed) end
end

-- Adds a user's session to the set of the login that opened it, if any;
-- the set lives as long as its longest-lived session (`at`, ms).
local function index_opened(digest, at)
  local serial = unquote(field(session_key(digest), 'login'))
  if serial then
    redis.call('SADD', opened_key(serial), digest)
    extend(opened_key(serial), at)
  end
end

-- The per-login sets are complete for the user while the marker I:U
-- exists. Records written before them (version 0.1) are in no set: the
-- first script that needs the sets of a user without the marker walks the
-- user's sessions once to build them and sets the marker, which lives as
-- long as the user's longest-lived session. Every script that writes a
-- user's session keeps both, so from then on ending a login reads its set
-- alone.
local function ensure_indexed()
  if user == '' or redis.call('EXISTS', indexed) == 1 then return end
  local live, latest, forever = false, 0, false
  for _, digest in ipairs(redis.call('ZRANGE', user_sessions, 0, -1)) do
    local ttl = redis.call('PTTL', session_key(digest))
    if ttl == -2 then
      drop_session(digest)
    else
      local at = nil
      if ttl >= 0 then
        at = now_ms() + ttl
        latest = math.max(latest, at)
      else
        forever = true
      end
      index_opened(digest, at)
      live = true
    end
  end
  if live then
    redis.call('SET', indexed, '1')
    if not forever then redis.call('PEXPIREAT', indexed, latest) end
  end
end

-- Deletes every session of the user opened by the login `serial`, found in
-- the login's set: the work is what the login holds, not what the user
-- holds. Entries of sessions that are gone go too.
local function drop_sessions_of(serial)
  ensure_indexed()
  local wanted = '"' .. serial .. '"'
  for _, digest in ipairs(redis.call('SMEMBERS', opened_key(serial))) do
    local opened_by = field(session_key(digest), 'login')
    if opened_by == wanted or (not opened_by and redis.call('EXISTS', session_key(digest)) == 0) then
      drop_session(digest)
    end
  end
  redis.call('DEL', opened_key(serial))
end

-- Deletes a login and its index entries, not its sessions; 1 when it existed.
local function drop_login(serial)
  local existed = redis.call('DEL', login_key(serial))
  redis.call('ZREM', user_logins, serial)
  redis.call('ZREM', bucket_logins, user .. ':' .. serial)
  return existed
end

-- Ends a login: its bound session, every session it opened (even when the
-- login itself is gone), then the login and its index entries. 1 when the
-- login existed.
local function end_login(serial)
  local bound = unquote(field(login_key(serial), 'session'))
  if bound then drop_session(bound) end
  drop_sessions_of(serial)
  return drop_login(serial)
end

-- Sets a record's expiry and indexes it under its expires_at (for a user,
-- in the bucket's index too).
local function expire_and_index(key, index, bucket_index, member, score, at)
  redis.call('PEXPIREAT', key, at)
  redis.call('ZADD', index, score, member)
  if user ~= '' then redis.call('ZADD', bucket_index, score, user .. ':' .. member) end
end

-- Writes the fields ARGV[from..to] into a record, then expires and indexes
-- it.
local function put(key, index, bucket_index, member, score, at, from, to)
  redis.call('HSET', key, unpack(ARGV, from, to))
  expire_and_index(key, index, bucket_index, member, score, at)
end

-- Expires and indexes a session and, for a user's, keeps its login's set
-- and the user's marker alive as long as it.
local function index_session(key, digest, score, at)
  expire_and_index(key, user_sessions, bucket_sessions, digest, score, at)
  if user ~= '' then
    index_opened(digest, tonumber(at))
    extend(indexed, tonumber(at))
  end
end

-- Writes a new session (the fields ARGV[from..to], in the layout Rust chose)
-- and indexes it.
local function put_session(key, digest, score, at, from, to)
  redis.call('HSET', key, unpack(ARGV, from, to))
  index_session(key, digest, score, at)
end

-- Where each value sits in a packed session (`codec.rs`, format 1): the
-- values of these fields in this order, joined by byte 31, which no JSON
-- text holds unescaped; '' for a field the session does not have.
local packed_slots = {
  digest = 1, data = 2, created_at = 3, expires_at = 4,
  username = 5, login = 6, method = 7, authenticated_at = 8,
}

-- The values of the existing session `key` when it is packed, nil when it
-- has one field per value. A packed value that is not format 1 is an error
-- (CORRUPT), raised before the caller writes anything.
local function packed_values(key)
  local packed = redis.call('HGET', key, 'packed')
  if not packed then return nil end
  local values = {}
  for value in string.gmatch(packed .. '\31', '([^\31]*)\31') do values[#values + 1] = value end
  if #values ~= 8 then error({err = 'CORRUPT a packed session holds ' .. #values .. ' values'}) end
  return values
end

-- Writes the field/value pairs `pairs` into an existing session in the
-- layout it was written in, whichever process wrote it: into its packed
-- value (`values`, from packed_values) or as fields (`values` nil).
local function set_session_fields(key, values, pairs)
  if not values then
    redis.call('HSET', key, unpack(pairs))
    return
  end
  for i = 1, #pairs, 2 do
    local slot = packed_slots[pairs[i]]
    if not slot then error({err = 'ERR a session has no field ' .. pairs[i]}) end
    values[slot] = pairs[i + 1]
  end
  redis.call('HSET', key, 'packed', table.concat(values, '\31'))
end

-- Deletes the user's sessions that expire first (the lowest scores: entries
-- of sessions Redis already dropped count, and go, first) until at most
-- `cap` are left (a decimal string; '' is no limit), never `keep`.
local function cap_sessions(keep, cap)
  local max = tonumber(cap)
  if user == '' or not max then return end
  local excess = redis.call('ZCARD', user_sessions) - max
  if excess <= 0 then return end
  for _, digest in ipairs(redis.call('ZRANGE', user_sessions, 0, excess)) do
    if excess > 0 and digest ~= keep then
      drop_session(digest)
      excess = excess - 1
    end
  end
end

-- Creates a session with put_session, then caps the user's sessions at
-- `cap`, keeping the new one.
local function create_session(key, digest, score, at, from, to, cap)
  if user ~= '' then
    ensure_indexed()
    redis.call('SET', indexed, '1', 'NX')
  end
  put_session(key, digest, score, at, from, to)
  cap_sessions(digest, cap)
end

-- The index entries due by Redis's clock, a few at a time.
local function due_entries(index)
  local time = redis.call('TIME')
  local now = time[1] .. string.format('%06d', tonumber(time[2]))
  return redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, 16)
end

-- Follows up on logins Redis expired on its own: their sessions end with
-- them. Only entries whose key is gone are touched, whatever the clocks say.
local function prune_logins()
  for _, serial in ipairs(due_entries(user_logins)) do
    if redis.call('EXISTS', login_key(serial)) == 0 then end_login(serial) end
  end
end

-- Drops index entries of sessions Redis expired on its own.
local function prune_sessions()
  for _, digest in ipairs(due_entries(user_sessions)) do
    if redis.call('EXISTS', session_key(digest)) == 0 then drop_session(digest) end
  end
end
"#;

/// `KEYS[1]` login; `ARGV[3]` serial, `[4]` score, `[5]` PEXPIREAT,
/// `[6..]` field/value pairs. Answers 1 when created, 0 when it exists.
const CREATE_LOGIN: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
prune_logins()
put(KEYS[1], user_logins, bucket_logins, ARGV[3], ARGV[4], ARGV[5], 6, #ARGV)
return 1
"#;

/// `KEYS[1]` session (a user's or anonymous); `ARGV[3]` digest, `[4]` score,
/// `[5]` PEXPIREAT, `[6]` the cap on the user's sessions (`''` for none),
/// `[7..]` field/value pairs. Answers 1 when created, 0 when it exists
/// (deleting nothing).
const CREATE_SESSION: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
prune_sessions()
create_session(KEYS[1], ARGV[3], ARGV[4], ARGV[5], 7, #ARGV, ARGV[6])
return 1
"#;

/// A grace session bound to its login, if the login exists.
///
/// `KEYS[1]` login, `KEYS[2]` session; `ARGV[3]` digest, `[4]` score, `[5]`
/// PEXPIREAT, `[6]` the digest as the login's `session` field (JSON), `[7]`
/// the cap on the user's sessions (`''` for none), `[8..]` the session's
/// field/value pairs. Answers 'created', 'login_gone' or 'exists', writing
/// nothing but on 'created'. The login keeps its TTL (`HSET` on an existing
/// key does not touch it).
const CREATE_GRACE_SESSION: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 'login_gone' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'exists' end
prune_sessions()
redis.call('HSET', KEYS[1], 'session', ARGV[6])
create_session(KEYS[2], ARGV[3], ARGV[4], ARGV[5], 8, #ARGV, ARGV[7])
return 'created'
"#;

/// The compare-and-swap rotation.
///
/// `KEYS[1]` login, `KEYS[2]` new session; `ARGV[3]` serial, `[4]` expected
/// token (JSON), `[5]` new session digest, `[6]`/`[7]` login score and
/// PEXPIREAT, `[8]`/`[9]` session score and PEXPIREAT, `[10]` the cap on the
/// user's sessions (`''` for none), `[11]` how many ARGV the login's
/// field/value pairs take, then those pairs, then the session's. Every
/// session of the login goes (its bound one and every one it opened, found
/// in the login's set) before the new one is written and the user's
/// sessions are capped.
const ROTATE_LOGIN: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not_found' end
local token = redis.call('HGET', KEYS[1], 'token')
if not token then return 'corrupt' end
if token ~= ARGV[4] then return 'not_current' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'session_exists' end
local old = unquote(field(KEYS[1], 'session'))
if old then drop_session(old) end
drop_sessions_of(ARGV[3])
local login_args = tonumber(ARGV[11])
put(KEYS[1], user_logins, bucket_logins, ARGV[3], ARGV[6], ARGV[7], 12, 11 + login_args)
create_session(KEYS[2], ARGV[5], ARGV[8], ARGV[9], 12 + login_args, #ARGV, ARGV[10])
prune_logins()
prune_sessions()
return 'rotated'
"#;

/// The optimistic cookie login (`Store::rotate_current`): `ROTATE_LOGIN`
/// with the presented token as the expected one, applying only to a login
/// live at `ARGV[11]` and created at or after `ARGV[12]` (both
/// `YYYY-MM-DDTHH:MM:SS.fffffffff`, UTC, to the nanosecond, which sort as
/// the instants they are;
/// the login's `expires_at` and `created_at` are brought to that form, and a
/// value not in canonical UTC form never applies). `[13]` how many ARGV the
/// login's field/value pairs take, from `[14]`, then the session's. The new
/// session takes the login's `authenticated_at` (a 0.1 login's
/// `created_at`). Answers `{'rotated', authenticated_at JSON}`,
/// `{'session_exists'}`, or `{'login', HGETALL of the login}` (empty: no
/// login) when the rotation does not apply, so that the engine judges the
/// login without another round trip.
const ROTATE_CURRENT: &str = r#"
local function sortable(json)
  if not json then return nil end
  local stamp, fraction = string.match(json, '^"(%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d)%.?(%d*)Z"$')
  if not stamp or #fraction > 9 then return nil end
  return stamp .. '.' .. fraction .. string.rep('0', 9 - #fraction)
end
local found = redis.call('HMGET', KEYS[1], 'token', 'expires_at', 'created_at', 'authenticated_at')
local token, expires, created, authenticated = found[1], found[2], found[3], found[4]
local live, young = sortable(expires), sortable(created)
if not token or token ~= ARGV[4] or not live or live <= ARGV[11] or not young or young < ARGV[12] then
  return {'login', redis.call('HGETALL', KEYS[1])}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'session_exists'} end
local old = unquote(field(KEYS[1], 'session'))
if old then drop_session(old) end
drop_sessions_of(ARGV[3])
local login_args = tonumber(ARGV[13])
put(KEYS[1], user_logins, bucket_logins, ARGV[3], ARGV[6], ARGV[7], 14, 13 + login_args)
create_session(KEYS[2], ARGV[5], ARGV[8], ARGV[9], 14 + login_args, #ARGV, ARGV[10])
local carried = authenticated
if type(carried) ~= 'string' then carried = created end
set_session_fields(KEYS[2], packed_values(KEYS[2]), {'authenticated_at', carried})
prune_logins()
prune_sessions()
return {'rotated', carried}
"#;

/// A password login with "remember me" (`Store::create_remembered`): the
/// login and its session together.
///
/// `KEYS[1]` login, `KEYS[2]` session; `ARGV[3]` serial, `[4]`/`[5]` login
/// score and PEXPIREAT, `[6]` session digest, `[7]`/`[8]` session score and
/// PEXPIREAT, `[9]` the cap on the user's sessions (`''` for none), `[10]`
/// `'1'` to answer the user's other logins, `[11]` how many ARGV the login's
/// field/value pairs take, from `[12]`, then the session's. Answers
/// `{'login_exists'}` or `{'session_exists'}`, writing nothing, or
/// `{'created', {HGETALL of each other login}}` (read before the new login
/// is written; a login Redis expired on its own takes its sessions with it,
/// as in `LIST_LOGINS`).
const CREATE_REMEMBERED: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return {'login_exists'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'session_exists'} end
prune_logins()
prune_sessions()
local others = {}
if ARGV[10] == '1' then
  for _, serial in ipairs(redis.call('ZRANGE', user_logins, 0, -1)) do
    local record = redis.call('HGETALL', login_key(serial))
    if #record == 0 then
      end_login(serial)
    else
      others[#others + 1] = record
    end
  end
end
local login_args = tonumber(ARGV[11])
put(KEYS[1], user_logins, bucket_logins, ARGV[3], ARGV[4], ARGV[5], 12, 11 + login_args)
create_session(KEYS[2], ARGV[6], ARGV[7], ARGV[8], 12 + login_args, #ARGV, ARGV[9])
return {'created', others}
"#;

/// Answers every live login of the user as a flat field/value array; a login
/// Redis expired on its own takes its sessions with it.
const LIST_LOGINS: &str = r#"
local found = {}
for _, serial in ipairs(redis.call('ZRANGE', user_logins, 0, -1)) do
  local record = redis.call('HGETALL', login_key(serial))
  if #record == 0 then
    end_login(serial)
  else
    found[#found + 1] = record
  end
end
forget_if_empty()
return found
"#;

/// `KEYS[1]` login; `ARGV[3]` serial. Ends the login and its sessions (its
/// bound one and those in its set: one lookup for a login that does not
/// exist); 1 when the login existed.
const DELETE_LOGIN: &str = r#"
local existed = end_login(ARGV[3])
forget_if_empty()
return existed
"#;

/// Deletes every login and session of the user but the session `ARGV[3]` and
/// the login `ARGV[4]` (`''` for none: no digest or serial is empty), so
/// `delete_user` and `delete_user_except` are the same script. The kept
/// login's other sessions are in the user's index like any other and go.
/// The sets of the deleted logins go with them (but one holding the kept
/// session); the sessions are not looked up one by one for their login's
/// set, so a set of a login already gone keeps entries of sessions deleted
/// here until it expires or is next read (entries whose key is gone are
/// dropped then). Answers `{sessions deleted, {serials of the logins
/// deleted}}`, counting only records that were still there.
const DELETE_USER: &str = r#"
local keep_session, keep_login = ARGV[3], ARGV[4]
local sessions, serials = 0, {}
for _, digest in ipairs(redis.call('ZRANGE', user_sessions, 0, -1)) do
  if digest ~= keep_session then sessions = sessions + unlink_session(digest) end
end
for _, serial in ipairs(redis.call('ZRANGE', user_logins, 0, -1)) do
  if serial ~= keep_login then
    if drop_login(serial) == 1 then serials[#serials + 1] = serial end
    if keep_session == '' or redis.call('SISMEMBER', opened_key(serial), keep_session) == 0 then
      redis.call('DEL', opened_key(serial))
    end
  end
end
forget_if_empty()
return {sessions, serials}
"#;

/// `KEYS[1]` the user's session (`KEYS[2]` its login, when it has one);
/// `ARGV[3]` the login's serial or `''`, `[4]` the new `method` (JSON), `[5]`
/// the new `authenticated_at` (JSON). Writes both into the session and
/// `authenticated_at` into the login if it is still there (a confirmation
/// never creates a hash). 0, writing nothing, when the session does not
/// exist.
const CONFIRM_PASSWORD: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local values = packed_values(KEYS[1])
if ARGV[3] ~= '' and redis.call('EXISTS', login_key(ARGV[3])) == 1 then
  redis.call('HSET', login_key(ARGV[3]), 'authenticated_at', ARGV[5])
end
set_session_fields(KEYS[1], values, {'method', ARGV[4], 'authenticated_at', ARGV[5]})
return 1
"#;

/// `KEYS[1]` session (a user's or anonymous); `ARGV[3]` digest, `[4]` score,
/// `[5]` PEXPIREAT, `[6..]` the field/value pairs to replace (`data` and
/// `expires_at` for a save, `expires_at` alone for a touch). Never creates
/// the session: 1 when it existed.
const UPDATE_SESSION: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
set_session_fields(KEYS[1], packed_values(KEYS[1]), {unpack(ARGV, 6, #ARGV)})
index_session(KEYS[1], ARGV[3], ARGV[4], ARGV[5])
return 1
"#;

/// `ARGV[3]` digest. 1 when the session (a user's or anonymous) existed.
const DELETE_SESSION: &str = r#"
local existed = drop_session(ARGV[3])
forget_if_empty()
return existed
"#;

/// Cleans logins from one bucket: `ARGV[3]` now (µs), `[4]` batch size. Ends
/// the logins indexed at or before now, with their sessions, and answers
/// `{{U:S of the logins deleted}, entries visited}`; a full batch means call
/// again.
const CLEAN_LOGINS: &str = r#"
local due = redis.call('ZRANGEBYSCORE', bucket_logins, '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local deleted = {}
for _, member in ipairs(due) do
  local name, serial = string.match(member, '^([^:]+):(.*)$')
  if name then
    set_user(name)
    if end_login(serial) == 1 then deleted[#deleted + 1] = member end
    forget_if_empty()
  else
    redis.call('ZREM', bucket_logins, member)
  end
end
return {deleted, #due}
"#;

/// Cleans sessions from one bucket, users' and anonymous ones (`KEYS =
/// [bucket sessions, bucket anonymous sessions]`), as [`CLEAN_LOGINS`] does
/// logins: answers `{sessions deleted, most entries visited in one index}`.
const CLEAN_SESSIONS: &str = r#"
local batch = tonumber(ARGV[4])
local deleted = 0
local due = redis.call('ZRANGEBYSCORE', bucket_sessions, '-inf', ARGV[3], 'LIMIT', 0, batch)
for _, member in ipairs(due) do
  local name, digest = string.match(member, '^([^:]+):(.*)$')
  if name then
    set_user(name)
    deleted = deleted + drop_session(digest)
    forget_if_empty()
  else
    redis.call('ZREM', bucket_sessions, member)
  end
end
local due_anonymous = redis.call('ZRANGEBYSCORE', anonymous, '-inf', ARGV[3], 'LIMIT', 0, batch)
set_user('')
for _, digest in ipairs(due_anonymous) do
  deleted = deleted + drop_session(digest)
end
return {deleted, math.max(#due, #due_anonymous)}
"#;

/// Every script, hashed once.
pub(crate) struct Scripts {
    pub(crate) create_login: Script,
    pub(crate) create_session: Script,
    pub(crate) create_grace_session: Script,
    pub(crate) rotate_login: Script,
    pub(crate) rotate_current: Script,
    pub(crate) create_remembered: Script,
    pub(crate) list_logins: Script,
    pub(crate) delete_login: Script,
    pub(crate) delete_user: Script,
    pub(crate) confirm_password: Script,
    pub(crate) update_session: Script,
    pub(crate) delete_session: Script,
    pub(crate) clean_logins: Script,
    pub(crate) clean_sessions: Script,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create_login: script(CREATE_LOGIN),
    create_session: script(CREATE_SESSION),
    create_grace_session: script(CREATE_GRACE_SESSION),
    rotate_login: script(ROTATE_LOGIN),
    rotate_current: script(ROTATE_CURRENT),
    create_remembered: script(CREATE_REMEMBERED),
    list_logins: script(LIST_LOGINS),
    delete_login: script(DELETE_LOGIN),
    delete_user: script(DELETE_USER),
    confirm_password: script(CONFIRM_PASSWORD),
    update_session: script(UPDATE_SESSION),
    delete_session: script(DELETE_SESSION),
    clean_logins: script(CLEAN_LOGINS),
    clean_sessions: script(CLEAN_SESSIONS),
});
