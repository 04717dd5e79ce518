//! Key names: which bucket an owner's records land in and what each key is
//! called.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use expected_core::store::ExpiredLogin;
use expected_core::{Serial, SessionDigest, StoreError, Username};
use sha2::{Digest as _, Sha256};

/// How many buckets (hash tags) users are spread over. Part of the key
/// layout: every process sharing a prefix must agree on it.
pub(crate) const BUCKETS: u16 = 1024;

/// Which bucket a user's keys live in: the first two bytes of
/// SHA-256(username), modulo [`BUCKETS`].
pub(crate) fn bucket_of(username: &Username) -> u16 {
    let digest = Sha256::digest(username.as_str().as_bytes());
    u16::from_be_bytes([digest[0], digest[1]]) % BUCKETS
}

/// Which bucket an anonymous session lives in: the first two bytes of its
/// digest, modulo [`BUCKETS`]. The digest is already SHA-256 of a random id,
/// so anonymous sessions spread evenly, and every script on one of them
/// finds it (and its index) from the digest alone.
pub(crate) fn bucket_of_session(digest: &SessionDigest) -> u16 {
    let bytes = digest.as_bytes();
    u16::from_be_bytes([bytes[0], bytes[1]]) % BUCKETS
}

/// `<prefix>:{<bucket>}:`, the start of every key of a bucket.
pub(crate) fn bucket_base(prefix: &str, bucket: u16) -> String {
    let mut base = String::with_capacity(prefix.len() + 8);
    push_bucket_base(&mut base, prefix, bucket);
    base
}

/// Appends `<prefix>:{<bucket>}:` to `key`.
fn push_bucket_base(key: &mut String, prefix: &str, bucket: u16) {
    // By hand rather than `format!`: every store call names its keys.
    key.push_str(prefix);
    key.push_str(":{");
    let digits = [bucket / 1000 % 10, bucket / 100 % 10, bucket / 10 % 10, bucket % 10];
    key.extend(digits.map(|digit| char::from(b'0' + digit as u8)));
    key.push_str("}:");
}

/// The key of the session `digest` of `owner` (`None`: anonymous), as
/// [`Keys::session`] names it, built in one allocation: every session hit
/// names this key and nothing else, where [`Keys::owner`] would allocate
/// the bucket's base and the user's part first.
pub(crate) fn session_key(prefix: &str, owner: Option<&Username>, digest: &SessionDigest) -> String {
    let (bucket, user) = match owner {
        Some(username) => (bucket_of(username), username.as_str().as_bytes()),
        None => (bucket_of_session(digest), &[][..]),
    };
    let encoded = |len: usize| len.div_ceil(3) * 4;
    let mut key =
        String::with_capacity(prefix.len() + 10 + encoded(user.len()) + 1 + encoded(SessionDigest::LEN));
    push_bucket_base(&mut key, prefix, bucket);
    if user.is_empty() {
        key.push_str("a:");
    } else {
        key.push_str("s:");
        URL_SAFE_NO_PAD.encode_string(user, &mut key);
        key.push(':');
    }
    URL_SAFE_NO_PAD.encode_string(digest.as_bytes(), &mut key);
    key
}

/// How long a session digest's base64url is: the last characters of every
/// session key.
pub(crate) const DIGEST_TEXT_LEN: usize = (SessionDigest::LEN * 4).div_ceil(3);

/// The base64url of the digest a [`session_key`] names: its end. A read
/// compares the stored digest's text with it rather than decode that text
/// (about 600 instructions of a session hit).
pub(crate) fn digest_text(session_key: &str) -> Option<&str> {
    session_key.get(session_key.len().checked_sub(DIGEST_TEXT_LEN)?..)
}

/// `<base><kind><user>:<base64url of bytes>`, a record's key (`user` empty
/// for anonymous sessions, then without its `:`).
fn record_key(base: &str, kind: &str, user: &str, bytes: &[u8]) -> String {
    let mut key =
        String::with_capacity(base.len() + kind.len() + user.len() + 1 + bytes.len().div_ceil(3) * 4);
    key.push_str(base);
    key.push_str(kind);
    if !user.is_empty() {
        key.push_str(user);
        key.push(':');
    }
    URL_SAFE_NO_PAD.encode_string(bytes, &mut key);
    key
}

/// The key names of one owner of sessions: a user, or nobody (the anonymous
/// sessions of one bucket). The scripts build the same names from `base` and
/// `user` (see the prelude in `scripts.rs`).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `<prefix>:{<bucket>}:`
    pub(crate) base: String,
    /// base64url of the username's UTF-8 bytes (no `:`, `{` or `}`), or the
    /// empty string for anonymous sessions: a username is never empty, so
    /// neither is its base64url, and the two can never meet.
    pub(crate) user: String,
}

impl Keys {
    /// A user's keys.
    pub(crate) fn user(prefix: &str, username: &Username) -> Self {
        Self {
            base: bucket_base(prefix, bucket_of(username)),
            // `encode_string`, not `encode`: the latter starts from a
            // zeroed buffer, a `calloc` (glibc's arena lock, every call).
            user: {
                let bytes = username.as_str().as_bytes();
                let mut user = String::with_capacity(bytes.len().div_ceil(3) * 4);
                URL_SAFE_NO_PAD.encode_string(bytes, &mut user);
                user
            },
        }
    }

    /// The keys of the anonymous session `digest`, in its own bucket.
    pub(crate) fn anonymous(prefix: &str, digest: &SessionDigest) -> Self {
        Self { base: bucket_base(prefix, bucket_of_session(digest)), user: String::new() }
    }

    /// The keys of the session `digest` of `owner` (`None`: anonymous).
    pub(crate) fn owner(prefix: &str, owner: Option<&Username>, digest: &SessionDigest) -> Self {
        match owner {
            Some(username) => Self::user(prefix, username),
            None => Self::anonymous(prefix, digest),
        }
    }

    fn is_anonymous(&self) -> bool {
        self.user.is_empty()
    }

    /// The login hash (users only).
    pub(crate) fn login(&self, serial: &Serial) -> String {
        record_key(&self.base, "l:", &self.user, serial.as_bytes())
    }

    /// The session hash: `s:U:D` for a user's, `a:D` for an anonymous one.
    pub(crate) fn session(&self, digest: &SessionDigest) -> String {
        if self.is_anonymous() {
            record_key(&self.base, "a:", "", digest.as_bytes())
        } else {
            record_key(&self.base, "s:", &self.user, digest.as_bytes())
        }
    }

    /// The set of the user's sessions that the login `serial` opened (users
    /// only).
    #[cfg(test)]
    pub(crate) fn opened(&self, serial: &Serial) -> String {
        format!("{}O:{}:{}", self.base, self.user, serial.to_base64())
    }

    /// The index keys a script may write, declared after the record keys: a
    /// user's logins, the user's sessions, the bucket's logins, the bucket's
    /// sessions and the user's marker (its per-login sets are complete); for
    /// anonymous sessions, the bucket's anonymous index alone. The per-login
    /// sets (see [`Keys::opened`]) are built by the scripts, like the keys of
    /// the records they find.
    pub(crate) fn indexes(&self) -> Vec<String> {
        if self.is_anonymous() {
            vec![format!("{}A", self.base)]
        } else {
            vec![
                format!("{}L:{}", self.base, self.user),
                format!("{}S:{}", self.base, self.user),
                format!("{}L", self.base),
                format!("{}S", self.base),
                format!("{}I:{}", self.base, self.user),
            ]
        }
    }
}

/// A username back from its base64url in a key or an index entry.
fn username_of(encoded: &str) -> Result<Username, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| StoreError::corrupt(format!("{encoded:?} is not a base64url username")))?;
    let name = String::from_utf8(bytes)
        .map_err(|_| StoreError::corrupt(format!("{encoded:?} is not a UTF-8 username")))?;
    Username::new(name).map_err(|error| StoreError::corrupt(format!("{encoded:?} is no username: {error}")))
}

/// A serial back from its base64url in a key or an index entry.
pub(crate) fn serial_of(encoded: &str) -> Result<Serial, StoreError> {
    Serial::from_base64(encoded)
        .map_err(|error| StoreError::corrupt(format!("{encoded:?} is not a serial: {error}")))
}

/// The login a bucket's login index entry `U:S` names.
pub(crate) fn expired_login_of(member: &str) -> Result<ExpiredLogin, StoreError> {
    let (user, serial) = member
        .split_once(':')
        .ok_or_else(|| StoreError::corrupt(format!("login index entry {member:?} is not user:serial")))?;
    Ok(ExpiredLogin { username: username_of(user)?, serial: serial_of(serial)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_the_layout_the_scripts_build() {
        // The layout is shared with the scripts' prelude and with data
        // already stored: spelled out here as the format strings it was.
        for (prefix, bucket) in [("app", 0), ("expected", 7), ("x:y", 42), ("", 1023), ("p", 999)] {
            assert_eq!(bucket_base(prefix, bucket), format!("{prefix}:{{{bucket:04}}}:"));
        }
        let keys = Keys::user("app", &user("zoë"));
        let serial = Serial::from_bytes([1; 16]);
        let digest = SessionDigest::from_bytes([2; 32]);
        let base = &keys.base;
        let name = &keys.user;
        assert_eq!(keys.login(&serial), format!("{base}l:{name}:{}", serial.to_base64()));
        assert_eq!(keys.session(&digest), format!("{base}s:{name}:{}", digest.to_base64()));
        let anonymous = Keys::anonymous("app", &digest);
        assert_eq!(anonymous.session(&digest), format!("{}a:{}", anonymous.base, digest.to_base64()));
    }

    #[test]
    fn a_session_hit_names_the_key_the_scripts_name() {
        // `session_key` builds in one allocation what `Keys::session` names
        // (and the scripts with it): any owner, any prefix, any digest.
        let names = ["alice", "zoë", "日本", "with space", &"x".repeat(255)];
        for prefix in ["app", "", "x:y"] {
            for (index, name) in names.iter().enumerate() {
                let digest = SessionDigest::from_bytes([index as u8 * 37; 32]);
                let owner = user(name);
                let key = session_key(prefix, Some(&owner), &digest);
                assert_eq!(key, Keys::user(prefix, &owner).session(&digest));
                assert!(key.capacity() >= key.len());
                let anonymous = session_key(prefix, None, &digest);
                assert_eq!(anonymous, Keys::anonymous(prefix, &digest).session(&digest));
                for key in [&key, &anonymous] {
                    assert_eq!(digest_text(key), Some(digest.to_base64().as_str()), "{key}");
                }
            }
        }
    }

    fn user(name: &str) -> Username {
        Username::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn tag_of(key: &str) -> &str {
        let open = key.find('{').unwrap_or(0);
        let close = key.find('}').unwrap_or(0);
        assert_eq!(key.matches('{').count(), 1, "{key}");
        assert_eq!(key.matches('}').count(), 1, "{key}");
        &key[open..=close]
    }

    #[test]
    fn keys_share_one_hash_tag_and_escape_braces() {
        let keys = Keys::user("app", &user("{evil}:name"));
        let serial = Serial::from_bytes([1; 16]);
        let digest = SessionDigest::from_bytes([2; 32]);
        let all = [keys.login(&serial), keys.session(&digest), keys.opened(&serial)]
            .into_iter()
            .chain(keys.indexes());
        let tag = format!("{{{:04}}}", bucket_of(&user("{evil}:name")));
        for key in all {
            assert_eq!(tag_of(&key), tag, "{key}");
        }
    }

    #[test]
    fn anonymous_sessions_live_in_the_bucket_of_their_digest_apart_from_users() {
        let digest = SessionDigest::from_bytes([7; 32]);
        let keys = Keys::anonymous("app", &digest);
        let tag = format!("{{{:04}}}", bucket_of_session(&digest));
        assert_eq!(u16::from_be_bytes([7, 7]) % BUCKETS, bucket_of_session(&digest));
        for key in [keys.session(&digest)].into_iter().chain(keys.indexes()) {
            assert_eq!(tag_of(&key), tag, "{key}");
        }
        assert_eq!(keys.session(&digest), format!("app:{tag}:a:{}", digest.to_base64()));
        assert_eq!(keys.indexes(), [format!("app:{tag}:A")]);
        // No user's session or index can take an anonymous key's name.
        let named = Keys::user("app", &user("a"));
        assert!(named.session(&digest).contains(":s:"));
        assert!(named.indexes().iter().all(|key| !key.ends_with(":A")));
        assert_eq!(Keys::owner("app", None, &digest).session(&digest), keys.session(&digest));
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket_of(&user("alice")), bucket_of(&user("alice")));
        let used: std::collections::HashSet<u16> =
            (0..5000).map(|i| bucket_of(&user(&format!("user{i}")))).collect();
        assert!(used.len() > 900, "{}", used.len());
        assert!(used.iter().all(|b| *b < BUCKETS));
    }

    #[test]
    fn index_entries_decode_or_are_corrupt() -> Result<(), StoreError> {
        let keys = Keys::user("app", &user("zoë:{x}"));
        let serial = Serial::from_bytes([3; 16]);
        let found = expired_login_of(&format!("{}:{}", keys.user, serial.to_base64()))?;
        assert_eq!(found, ExpiredLogin { username: user("zoë:{x}"), serial });
        for bad in ["", "no-colon", ":AAAA", "!!:AAAAAAAAAAAAAAAAAAAAAA", "YQ:short"] {
            let error = expired_login_of(bad).err().map(|error| error.kind());
            assert_eq!(error, Some(expected_core::StoreErrorKind::Corrupt), "{bad:?}");
        }
        Ok(())
    }
}
