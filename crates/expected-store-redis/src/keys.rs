//! Key names: which bucket a user lands in and what each key is called.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use expected_core::{Serial, SessionDigest, Username};
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

/// `<prefix>:{<bucket>}:`, the start of every key of a bucket.
pub(crate) fn bucket_base(prefix: &str, bucket: u16) -> String {
    format!("{prefix}:{{{bucket:04}}}:")
}

/// A user's key names.
#[derive(Debug, Clone)]
pub(crate) struct UserKeys {
    /// `<prefix>:{<bucket>}:`
    pub(crate) base: String,
    /// base64url of the username's UTF-8 bytes (no `:`, `{` or `}`).
    pub(crate) user: String,
}

impl UserKeys {
    pub(crate) fn new(prefix: &str, username: &Username) -> Self {
        Self {
            base: bucket_base(prefix, bucket_of(username)),
            user: URL_SAFE_NO_PAD.encode(username.as_str().as_bytes()),
        }
    }

    /// The login hash.
    pub(crate) fn login(&self, serial: &Serial) -> String {
        format!("{}l:{}:{}", self.base, self.user, serial.to_base64())
    }

    /// The session hash.
    pub(crate) fn session(&self, digest: &SessionDigest) -> String {
        format!("{}s:{}:{}", self.base, self.user, digest.to_base64())
    }

    /// The four index keys every user script gets, in the order the scripts
    /// expect: the user's logins, the user's sessions, the bucket's logins,
    /// the bucket's sessions.
    pub(crate) fn indexes(&self) -> [String; 4] {
        [
            format!("{}L:{}", self.base, self.user),
            format!("{}S:{}", self.base, self.user),
            format!("{}L", self.base),
            format!("{}S", self.base),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Username {
        Username::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn keys_share_one_hash_tag_and_escape_braces() {
        let keys = UserKeys::new("app", &user("{evil}:name"));
        let serial = Serial::from_bytes([1; 16]);
        let digest = SessionDigest::from_bytes([2; 32]);
        let all = [keys.login(&serial), keys.session(&digest)].into_iter().chain(keys.indexes());
        let tag = format!("{{{:04}}}", bucket_of(&user("{evil}:name")));
        for key in all {
            let open = key.find('{').unwrap_or(usize::MAX);
            let close = key.find('}').unwrap_or(usize::MAX);
            assert_eq!(&key[open..=close], tag, "{key}");
            assert_eq!(key.matches('{').count(), 1, "{key}");
            assert_eq!(key.matches('}').count(), 1, "{key}");
        }
    }

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket_of(&user("alice")), bucket_of(&user("alice")));
        let used: std::collections::HashSet<u16> =
            (0..5000).map(|i| bucket_of(&user(&format!("user{i}")))).collect();
        assert!(used.len() > 900, "{}", used.len());
        assert!(used.iter().all(|b| *b < BUCKETS));
    }
}
