//! Server-held token keys: successor tokens derived from their predecessors,
//! so that a store that lost its last writes heals instead of raising theft.
//!
//! A login's first token is drawn at random ([`TokenSource`](crate::TokenSource)).
//! With [`TokenKeys`] configured ([`ConfigBuilder::token_keys`](crate::ConfigBuilder::token_keys)),
//! every later token is
//!
//! ```text
//! successor = HMAC-SHA256(key, "expected/v1/successor\0" ‖ serial ‖ SHA-256(previous token))
//! ```
//!
//! and the auth cookie names the key that derived its token
//! ([`AuthCookie::key`](crate::AuthCookie::key)). `SHA-256(previous token)` is
//! exactly what the store keeps of the current token, so from the stored
//! digest alone the server can compute the next token, and the one after it:
//! a browser that presents a token *ahead* of the store (the store was
//! restored from a backup, or a replica that missed the last rotations was
//! promoted) is recognised by walking forward at most
//! [`Config::rollback_steps`](crate::Config::rollback_steps) steps, and the
//! rotation is re-applied instead of revoking the user. A token *behind* the
//! store (a replayed copy) is still theft. See `docs/protocol.md` §13 for what
//! a thief who holds the key, the database, a cookie or several of them can do.
//!
//! Keys come from configuration, never from the store: the current one
//! derives every new token; fallback keys are still accepted for walking,
//! so a key can be replaced without logging anyone out.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroize as _;

use crate::secret::{Serial, Token, TokenDigest};

/// Shortest key accepted, in bytes: 256 bits, the HMAC-SHA256 output size.
pub const MIN_KEY_BYTES: usize = 32;

/// Longest key accepted, in bytes (a key longer than SHA-256's block is
/// hashed down by HMAC anyway; the bound keeps configuration errors visible).
pub const MAX_KEY_BYTES: usize = 64;

/// Longest key id, in bytes. The id travels in every auth cookie.
pub const MAX_KEY_ID_BYTES: usize = 16;

/// Domain separation of the successor derivation.
const SUCCESSOR_LABEL: &[u8] = b"expected/v1/successor\0";

/// Why a key, a key id or a key list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key id is the empty string.
    #[error("a token key id must not be empty")]
    EmptyId,
    /// The key id is longer than [`MAX_KEY_ID_BYTES`].
    #[error("token key id {0:?} is longer than {MAX_KEY_ID_BYTES} bytes")]
    IdTooLong(String),
    /// The key id has a character other than `A-Z a-z 0-9 - _`.
    #[error("token key id {0:?} may only hold A-Z, a-z, 0-9, '-' and '_'")]
    IdCharacter(String),
    /// The key is shorter than [`MIN_KEY_BYTES`].
    #[error("token key {id:?} is {bytes} bytes; at least {MIN_KEY_BYTES} random bytes are required")]
    TooShort {
        /// The key's id.
        id: String,
        /// Its length.
        bytes: usize,
    },
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("token key {id:?} is {bytes} bytes; at most {MAX_KEY_BYTES} are accepted")]
    TooLong {
        /// The key's id.
        id: String,
        /// Its length.
        bytes: usize,
    },
    /// The key is not unpadded base64url.
    #[error("token key {0:?} is not unpadded base64url")]
    BadEncoding(String),
    /// An entry of a key list is not `id:base64url-key`.
    #[error("token key entry {0} is not of the form id:base64url-key")]
    BadEntry(usize),
    /// The key list is empty.
    #[error("no token key given: the list needs at least the current key (id:base64url-key)")]
    NoKeys,
    /// Two keys of one list have the same id.
    #[error("token key id {0:?} appears twice")]
    DuplicateId(String),
}

/// The name of a [`TokenKey`], carried in each auth cookie: 1 to
/// [`MAX_KEY_ID_BYTES`] bytes of `A-Z a-z 0-9 - _` (the base64url alphabet,
/// so that it needs no escaping in a cookie). Not secret.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, KeyError> {
        let id = id.into();
        if id.is_empty() {
            return Err(KeyError::EmptyId);
        }
        if id.len() > MAX_KEY_ID_BYTES {
            return Err(KeyError::IdTooLong(id));
        }
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(KeyError::IdCharacter(id));
        }
        Ok(Self(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One server-held key: an id and 32 to 64 secret bytes.
///
/// The secret bytes are wiped when the key is dropped. `Debug` shows the id
/// only.
#[derive(Clone)]
pub struct TokenKey {
    id: KeyId,
    secret: Box<[u8]>,
    /// HMAC keyed once: each derivation clones it (two compressions saved).
    mac: Hmac<Sha256>,
}

impl TokenKey {
    /// A key from its id and secret bytes (at least [`MIN_KEY_BYTES`]
    /// random bytes: `openssl rand -base64 32`, say).
    pub fn new(id: KeyId, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort { id: id.0, bytes: secret.len() });
        }
        if secret.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong { id: id.0, bytes: secret.len() });
        }
        let mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(secret)
            .map_err(|_| KeyError::TooShort { id: id.0.clone(), bytes: secret.len() })?;
        Ok(Self { id, secret: secret.into(), mac })
    }

    /// Parses `id:base64url-secret` (unpadded base64url; padding is
    /// tolerated and stripped).
    pub fn parse(entry: &str) -> Result<Self, KeyError> {
        Self::parse_entry(entry, 1)
    }

    fn parse_entry(entry: &str, position: usize) -> Result<Self, KeyError> {
        let Some((id, secret)) = entry.trim().split_once(':') else {
            return Err(KeyError::BadEntry(position));
        };
        let id = KeyId::new(id.trim())?;
        let mut bytes = URL_SAFE_NO_PAD
            .decode(secret.trim().trim_end_matches('='))
            .map_err(|_| KeyError::BadEncoding(id.0.clone()))?;
        let key = Self::new(id, &bytes);
        bytes.zeroize();
        key
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The successor of the token whose digest is `previous`, for the login
    /// `serial`: `HMAC-SHA256(key, label ‖ serial ‖ previous)`.
    pub fn successor(&self, serial: &Serial, previous: &TokenDigest) -> Token {
        let mut mac = self.mac.clone();
        mac.update(SUCCESSOR_LABEL);
        mac.update(serial.as_bytes());
        mac.update(previous.as_bytes());
        let mut bytes: [u8; 32] = mac.finalize().into_bytes().into();
        let token = Token::from_bytes(bytes);
        bytes.zeroize();
        token
    }

    /// How many successor steps from the stored digest `stored` lead to
    /// `presented`, looking at most `steps` ahead; `None` when it is not
    /// among them (a token behind the store, another key's, or a forgery).
    ///
    /// Each step costs one HMAC-SHA256 and one SHA-256 of 32 bytes; tokens
    /// are compared in constant time.
    pub fn steps_ahead(
        &self,
        serial: &Serial,
        stored: &TokenDigest,
        presented: &Token,
        steps: u16,
    ) -> Option<u16> {
        let mut digest = *stored;
        for step in 1..=steps {
            let next = self.successor(serial, &digest);
            if bool::from(next.as_bytes().ct_eq(presented.as_bytes())) {
                return Some(step);
            }
            digest = next.digest();
        }
        None
    }
}

impl PartialEq for TokenKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && bool::from(self.secret.ct_eq(&other.secret))
    }
}

impl Eq for TokenKey {}

impl Drop for TokenKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The current key, which derives every new token, and the fallback keys,
/// still accepted when a presented token has to be walked to.
///
/// Rotating a key: deploy with the new key current and the old one as a
/// fallback. Cookies derived under the old key keep working (a current token
/// needs no key at all; only the walk after a rollback does), and each
/// login's next rotation moves it to the new key. Drop the fallback once no
/// store state you might restore is older than the change (at the latest,
/// after the cookie max age).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeys {
    current: TokenKey,
    fallbacks: Vec<TokenKey>,
}

impl TokenKeys {
    /// The current key and its fallbacks; ids must differ.
    pub fn new(current: TokenKey, fallbacks: Vec<TokenKey>) -> Result<Self, KeyError> {
        for (i, key) in fallbacks.iter().enumerate() {
            let earlier = std::iter::once(&current).chain(&fallbacks[..i]);
            if earlier.into_iter().any(|other| other.id == key.id) {
                return Err(KeyError::DuplicateId(key.id.0.clone()));
            }
        }
        Ok(Self { current, fallbacks })
    }

    /// Parses a comma-separated list of `id:base64url-secret`, the current
    /// key first (the form of the demos' `EXPECTED_TOKEN_KEYS`).
    pub fn parse(list: &str) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for (i, entry) in list.split(',').enumerate() {
            if entry.trim().is_empty() {
                if list.trim().is_empty() {
                    return Err(KeyError::NoKeys);
                }
                return Err(KeyError::BadEntry(i + 1));
            }
            keys.push(TokenKey::parse_entry(entry, i + 1)?);
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or(KeyError::NoKeys)?;
        Self::new(current, keys.collect())
    }

    /// The key that derives new tokens.
    pub fn current(&self) -> &TokenKey {
        &self.current
    }

    /// The older keys, still accepted.
    pub fn fallbacks(&self) -> &[TokenKey] {
        &self.fallbacks
    }

    /// The key named `id`, current or fallback.
    pub fn get(&self, id: &KeyId) -> Option<&TokenKey> {
        std::iter::once(&self.current).chain(&self.fallbacks).find(|key| &key.id == id)
    }

    /// Which of the keys derived `token` as the successor of `previous`
    /// (one HMAC per key): the key id a client converging on `token` through
    /// the grace window must carry.
    pub fn derived_by(&self, serial: &Serial, previous: &TokenDigest, token: &Token) -> Option<&KeyId> {
        std::iter::once(&self.current)
            .chain(&self.fallbacks)
            .find(|key| bool::from(key.successor(serial, previous).as_bytes().ct_eq(token.as_bytes())))
            .map(TokenKey::id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> TokenKey {
        TokenKey::new(KeyId::new(id).unwrap_or_else(|e| panic!("{e}")), &[byte; 32])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// RFC 4231 test case 2 is for short keys, which are refused here; test
    /// case 6 uses a 131-byte key. So the construction is checked against
    /// HMAC computed by hand from SHA-256 (RFC 2104), for a 32-byte key.
    #[test]
    fn successors_are_hmac_sha256_over_label_serial_and_previous_digest() {
        use sha2::Digest as _;
        let secret = [7u8; 32];
        let serial = Serial::from_bytes([1; 16]);
        let previous = Token::from_bytes([2; 32]).digest();
        let mut message = SUCCESSOR_LABEL.to_vec();
        message.extend_from_slice(serial.as_bytes());
        message.extend_from_slice(previous.as_bytes());
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for i in 0..32 {
            ipad[i] ^= secret[i];
            opad[i] ^= secret[i];
        }
        let inner = Sha256::new().chain_update(ipad).chain_update(&message).finalize();
        let outer: [u8; 32] = Sha256::new().chain_update(opad).chain_update(inner).finalize().into();
        let derived = key("k1", 7).successor(&serial, &previous);
        assert_eq!(derived.as_bytes(), &outer);
    }

    #[test]
    fn the_walk_finds_tokens_ahead_and_only_ahead() {
        let k = key("k1", 7);
        let serial = Serial::from_bytes([1; 16]);
        let first = Token::from_bytes([2; 32]);
        let mut chain = vec![first];
        for _ in 0..5 {
            let next = k.successor(&serial, &chain[chain.len() - 1].digest());
            chain.push(next);
        }
        let stored = chain[2].digest();
        assert_eq!(k.steps_ahead(&serial, &stored, &chain[3], 8), Some(1));
        assert_eq!(k.steps_ahead(&serial, &stored, &chain[5], 8), Some(3));
        assert_eq!(k.steps_ahead(&serial, &stored, &chain[5], 2), None, "beyond the bound");
        assert_eq!(k.steps_ahead(&serial, &stored, &chain[1], 8), None, "behind the store");
        assert_eq!(k.steps_ahead(&serial, &stored, &chain[2], 8), None, "the stored one is not ahead");
        assert_eq!(key("k2", 8).steps_ahead(&serial, &stored, &chain[3], 8), None, "another key");
        let other = Serial::from_bytes([9; 16]);
        assert_eq!(k.steps_ahead(&other, &stored, &chain[3], 8), None, "another login's chain");
    }

    #[test]
    fn key_lists_parse_and_refuse_what_is_wrong() {
        let b64 = |n: usize| URL_SAFE_NO_PAD.encode(vec![5u8; n]);
        let keys =
            TokenKeys::parse(&format!("new:{}, old:{}=", b64(32), b64(48))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.current().id().as_str(), "new");
        assert_eq!(keys.fallbacks().len(), 1);
        assert!(keys.get(&KeyId::new("old").unwrap_or_else(|e| panic!("{e}"))).is_some());
        assert!(keys.get(&KeyId::new("gone").unwrap_or_else(|e| panic!("{e}"))).is_none());
        let cases = [
            (String::new(), KeyError::NoKeys),
            ("  ".to_owned(), KeyError::NoKeys),
            (b64(32), KeyError::BadEntry(1)),
            (format!("a:{},", b64(32)), KeyError::BadEntry(2)),
            (format!(":{}", b64(32)), KeyError::EmptyId),
            (format!("a.b:{}", b64(32)), KeyError::IdCharacter("a.b".to_owned())),
            (format!("{}:{}", "x".repeat(17), b64(32)), KeyError::IdTooLong("x".repeat(17))),
            (format!("a:{}", b64(31)), KeyError::TooShort { id: "a".to_owned(), bytes: 31 }),
            (format!("a:{}", b64(65)), KeyError::TooLong { id: "a".to_owned(), bytes: 65 }),
            ("a:not base64!".to_owned(), KeyError::BadEncoding("a".to_owned())),
            (format!("a:{},a:{}", b64(32), b64(32)), KeyError::DuplicateId("a".to_owned())),
        ];
        for (list, error) in cases {
            assert_eq!(TokenKeys::parse(&list).err(), Some(error), "{list}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret_and_grace_finds_the_deriving_key() {
        let keys = TokenKeys::new(key("new", 1), vec![key("old", 2)]).unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{keys:?}");
        assert!(shown.contains("new") && !shown.contains("[1, 1"), "{shown}");
        let serial = Serial::from_bytes([3; 16]);
        let previous = Token::from_bytes([4; 32]).digest();
        let by_old = key("old", 2).successor(&serial, &previous);
        assert_eq!(keys.derived_by(&serial, &previous, &by_old).map(KeyId::as_str), Some("old"));
        assert_eq!(keys.derived_by(&serial, &previous, &Token::from_bytes([5; 32])), None);
    }
}
