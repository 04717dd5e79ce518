//! The values a login is made of: who ([`Username`]), which device ([`Serial`]),
//! the bearer secrets ([`Token`], [`SessionId`]) and their stored forms
//! ([`TokenDigest`], [`SessionDigest`], [`SealedSuccessor`]).
//!
//! Secrets never reach a store: only their SHA-256 digests do, and digests are
//! compared in constant time. [`Token`] and [`SessionId`] overwrite their
//! bytes with zeros when dropped ([`zeroize`]); fresh ones come from
//! [`OsTokens`], the operating system's random source, one draw per secret.

use std::fmt;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng, TryRngCore};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Longest username accepted, in bytes of UTF-8.
///
/// Bounded so that every store can index it (255 bytes fits a MySQL
/// `VARCHAR(255)` index with `utf8mb4`) and so that cookies stay small.
pub const MAX_USERNAME_BYTES: usize = 255;

/// Why a string is not a valid [`Username`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsernameError {
    /// The username is the empty string.
    #[error("username is empty")]
    Empty,
    /// The username is longer than [`MAX_USERNAME_BYTES`].
    #[error("username is longer than {MAX_USERNAME_BYTES} bytes")]
    TooLong,
    /// The username contains a control character (including NUL, which
    /// PostgreSQL cannot store in `text`).
    #[error("username contains a control character")]
    ControlCharacter,
}

/// The user a login belongs to, as the application names them.
///
/// Any UTF-8 string of 1 to [`MAX_USERNAME_BYTES`] bytes without control
/// characters: dots, spaces, quotes, `@` and non-ASCII letters are all fine.
///
/// **Both cookies carry it, in base64url: readable, not secret.** Anyone who
/// sees a cookie (a proxy's log of `Cookie` headers, a browser extension, a
/// shared computer) reads it. When your usernames are e-mail addresses or
/// otherwise personal, pass an opaque, stable account id (a database key, a
/// UUID) instead, and map it back to your user yourself; a renamed user then
/// keeps their logins too.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// Validates `name` as a username.
    pub fn new(name: impl Into<String>) -> Result<Self, UsernameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(UsernameError::Empty);
        }
        if name.len() > MAX_USERNAME_BYTES {
            return Err(UsernameError::TooLong);
        }
        if has_control_character(&name) {
            return Err(UsernameError::ControlCharacter);
        }
        Ok(Self(name))
    }

    /// The username as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The short pseudonym the library's traces name this user by
    /// ([`UserTag`]): never the username itself.
    pub fn tag(&self) -> UserTag {
        let digest = Sha256::new().chain_update(USER_TAG_LABEL).chain_update(self.0.as_bytes()).finalize();
        let mut prefix = [0u8; 4];
        prefix.copy_from_slice(&digest[..4]);
        UserTag(prefix)
    }
}

const USER_TAG_LABEL: &[u8] = b"expected/v1/user-tag\0";

/// Whether `name` holds a control character (Unicode's `Cc`: U+0000 to
/// U+001F and U+007F to U+009F). Every request with a session or
/// remember-me cookie checks a username or two, nearly always ASCII, which
/// a byte scan checks without decoding characters.
fn has_control_character(name: &str) -> bool {
    if name.is_ascii() {
        name.bytes().any(|byte| byte.is_ascii_control())
    } else {
        name.chars().any(char::is_control)
    }
}

/// What the library's `tracing` spans and events record for a user (their
/// `user` field): the first 4 bytes of `SHA-256("expected/v1/user-tag\0" ‖
/// username)`, as 8 lowercase hex digits. [`Username::tag`] computes it.
///
/// It lets an operator follow one user through the traces, and find a user's
/// lines by computing their tag, without the traces holding usernames (which
/// may be e-mail addresses). It is a **pseudonym, not a secret**: anyone who
/// can guess a username can compute its tag and confirm the guess, and with
/// 32 bits two users share a tag about once in 4 billion pairs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserTag([u8; 4]);

impl fmt::Display for UserTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for UserTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserTag({self})")
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Username {
    type Error = UsernameError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<String> for Username {
    type Error = UsernameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl serde::Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Bytes that were expected to be base64url of a fixed length and were not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not base64url of a {expected}-byte value")]
pub struct DecodeError {
    /// The length in bytes the value must have.
    pub expected: usize,
}

pub(crate) fn encode_b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url into exactly `N` bytes.
pub(crate) fn decode_fixed<const N: usize>(text: &str) -> Result<[u8; N], DecodeError> {
    let error = DecodeError { expected: N };
    // Reject before decoding anything long: the length of N bytes is known.
    if text.len() != N.div_ceil(3) * 4 - (3 - N % 3) % 3 {
        return Err(error);
    }
    // Into a buffer on the stack, not a `Vec`: every request decodes one
    // or two of these, and a heap buffer here was a `calloc`, which glibc
    // serves under its arena lock (no per-thread cache), contended on a
    // busy server. The buffer holds base64's conservative estimate for the
    // longest value (64 bytes: 86 characters, estimated at 66).
    const { assert!(N <= 64 && DECODE_BUFFER >= 66, "decode_fixed is for values of at most 64 bytes") };
    let mut buffer = [0u8; DECODE_BUFFER];
    let decoded = URL_SAFE_NO_PAD.decode_slice(text, &mut buffer);
    let fixed = match decoded {
        Ok(len) if len == N => {
            let mut fixed = [0u8; N];
            fixed.copy_from_slice(&buffer[..N]);
            Ok(fixed)
        }
        _ => Err(error),
    };
    // The decoded bytes may be a token or a session id: leave no copy behind.
    buffer.zeroize();
    fixed
}

/// The stack buffer [`decode_fixed`] decodes into.
const DECODE_BUFFER: usize = 72;

/// Implements the shared surface of a fixed-size, base64url-rendered value.
macro_rules! fixed_bytes {
    ($name:ident, $len:expr) => {
        impl $name {
            /// Length of the value in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes (as read back from a store).
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes (as written to a store).
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Parses the unpadded base64url form.
            pub fn from_base64(text: &str) -> Result<Self, DecodeError> {
                decode_fixed::<$len>(text).map(Self)
            }

            /// The unpadded base64url form.
            pub fn to_base64(&self) -> String {
                encode_b64(&self.0)
            }
        }
    };
}

/// Serde as base64url text, for values a store keeps. Secrets get none, so
/// they cannot be serialized into a log or a record by accident.
macro_rules! stored_value {
    ($name:ident) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_base64())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::from_base64(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A digest's 32 bytes as four words, for `subtle` to compare: the same
/// constant-time comparison in four steps instead of thirty-two (every
/// session hit and cookie login compares one digest; byte by byte it was
/// about 350 instructions).
fn digest_words(bytes: &[u8; 32]) -> [u64; 4] {
    let mut words = [0u64; 4];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(chunk);
        *word = u64::from_ne_bytes(eight);
    }
    words
}

/// Implements the digest side of a secret: SHA-256 and constant-time equality.
macro_rules! digest_type {
    ($digest:ident, $secret:ident) => {
        fixed_bytes!($digest, 32);
        stored_value!($digest);

        impl $digest {
            /// The SHA-256 digest of `secret`.
            pub fn of(secret: &$secret) -> Self {
                Self(Sha256::digest(&secret.0).into())
            }

            /// Whether `secret` hashes to this digest, compared in constant time.
            pub fn matches(&self, secret: &$secret) -> bool {
                self.ct_eq(&Self::of(secret))
            }

            /// Constant-time equality of two digests.
            pub fn ct_eq(&self, other: &Self) -> bool {
                bool::from(digest_words(&self.0).ct_eq(&digest_words(&other.0)))
            }
        }

        impl fmt::Debug for $digest {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // A short prefix identifies a record in logs without being useful to anyone.
                write!(f, concat!(stringify!($digest), "({}…)"), &self.to_base64()[..8])
            }
        }

        impl $secret {
            /// The digest a store keeps in place of this secret.
            pub fn digest(&self) -> $digest {
                $digest::of(self)
            }
        }

        impl fmt::Debug for $secret {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($secret), "(redacted)"))
            }
        }
    };
}

/// Identifies one login (one device) for its whole life: 128 random bits.
///
/// Not a secret on its own (it is useless without the token), so it is stored
/// in clear and used as the key of the login.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial([u8; 16]);
fixed_bytes!(Serial, 16);
stored_value!(Serial);

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_base64())
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// The one-use secret of a login: 256 random bits, replaced on every cookie
/// login. Only its [`TokenDigest`] is stored.
///
/// Its bytes are overwritten with zeros when it is dropped, so a freed token
/// does not linger in the heap or on the stack for a later memory disclosure
/// (a core dump, a swap file, a read past a buffer). Every clone is a copy
/// wiped on its own drop. The base64 text of a cookie that carries it (the
/// `String`s of [`AuthCookie::encode`](crate::AuthCookie::encode), of
/// [`SetCookie`](crate::SetCookie) and of the HTTP headers) is not wiped.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Token([u8; 32]);
fixed_bytes!(Token, 32);

/// The secret that names a server-side session: 256 random bits. Only its
/// [`SessionDigest`] is stored.
///
/// Wiped when dropped, like [`Token`].
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SessionId([u8; 32]);
fixed_bytes!(SessionId, 32);

/// SHA-256 of a [`Token`]: what a store keeps of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);
digest_type!(TokenDigest, Token);

/// SHA-256 of a [`SessionId`]: what a store keeps of it, and its key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionDigest([u8; 32]);
digest_type!(SessionDigest, SessionId);

const SEAL_TOKEN_LABEL: &[u8] = b"expected/v1/seal/token\0";
const SEAL_SESSION_LABEL: &[u8] = b"expected/v1/seal/session\0";

fn seal_pad(previous: &Token) -> [u8; 64] {
    let mut pad = [0u8; 64];
    let (token_pad, session_pad) = pad.split_at_mut(32);
    token_pad.copy_from_slice(
        &Sha256::new().chain_update(SEAL_TOKEN_LABEL).chain_update(previous.as_bytes()).finalize(),
    );
    session_pad.copy_from_slice(
        &Sha256::new().chain_update(SEAL_SESSION_LABEL).chain_update(previous.as_bytes()).finalize(),
    );
    pad
}

/// The successor token and session id of a rotation, sealed under the token
/// they replaced.
///
/// `sealed = (successor token ‖ successor session id) XOR
/// (SHA-256(label₁ ‖ previous token) ‖ SHA-256(label₂ ‖ previous token))`.
///
/// Only a request that presents the previous token can open it, which is what
/// lets a request that lost the rotation race (or whose response was lost)
/// converge on the winner's cookies inside the grace window. A store dump holds
/// only `SHA-256(previous token)`, from which the pad cannot be computed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealedSuccessor([u8; 64]);
fixed_bytes!(SealedSuccessor, 64);
stored_value!(SealedSuccessor);

impl SealedSuccessor {
    /// Seals `token` and `session` under `previous`.
    pub fn seal(previous: &Token, token: &Token, session: &SessionId) -> Self {
        let mut pad = seal_pad(previous);
        let mut out = [0u8; 64];
        for (i, byte) in out.iter_mut().enumerate() {
            let plain = if i < 32 { token.0[i] } else { session.0[i - 32] };
            *byte = plain ^ pad[i];
        }
        // The pad opens the seal: as secret as what it seals.
        pad.zeroize();
        Self(out)
    }

    /// Opens the seal with the previous token. The result is only meaningful
    /// when `previous` is the token it was sealed under: callers check the
    /// opened values against the stored digests.
    pub fn open(&self, previous: &Token) -> (Token, SessionId) {
        let mut pad = seal_pad(previous);
        // Opened straight into the wiped-on-drop types: no plain copy left.
        let mut token = Token([0; 32]);
        let mut session = SessionId([0; 32]);
        for i in 0..32 {
            token.0[i] = self.0[i] ^ pad[i];
            session.0[i] = self.0[32 + i] ^ pad[32 + i];
        }
        pad.zeroize();
        (token, session)
    }
}

impl fmt::Debug for SealedSuccessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSuccessor(..)")
    }
}

/// Where fresh serials, tokens and session ids come from.
///
/// Injected into the engine ([`Expected::with_tokens`](crate::Expected::with_tokens))
/// so tests can be deterministic. The default, [`OsTokens`], draws every
/// secret from the operating system.
pub trait TokenSource: Send + Sync + 'static {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&self, buf: &mut [u8]);

    /// A fresh serial.
    fn serial(&self) -> Serial {
        let mut serial = Serial([0; 16]);
        self.fill(&mut serial.0);
        serial
    }

    /// A fresh token.
    fn token(&self) -> Token {
        // Filled in place: no plain copy of the secret outlives the call.
        let mut token = Token([0; 32]);
        self.fill(&mut token.0);
        token
    }

    /// A fresh session id.
    fn session_id(&self) -> SessionId {
        let mut id = SessionId([0; 32]);
        self.fill(&mut id.0);
        id
    }

    /// The source's type name, for the engine's `Debug` (so logs and tests
    /// can tell which source an engine draws from).
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// The operating system's random source (`getrandom(2)` on Linux, `getentropy`
/// on macOS, `ProcessPrng` on Windows, through `rand_core::OsRng`): the
/// default [`TokenSource`].
///
/// Every serial, token and session id is its own draw from the kernel. The
/// process keeps no generator state, so nothing can repeat: a process that
/// forks after building the engine (a pre-forking server, a daemon that
/// forks to detach) gives each child different secrets, which a generator
/// seeded once and copied by `fork()` would not. A draw costs a system call
/// (under a microsecond; a cookie login draws two, about 1.5 µs in
/// `docs/benchmarks.md`): the store's round trip dwarfs it.
///
/// Should the operating system ever fail to provide randomness (it does not,
/// on the supported platforms, once booted), the draw panics rather than hand
/// out a guessable secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OsTokens;

impl TokenSource for OsTokens {
    fn fill(&self, buf: &mut [u8]) {
        if let Err(error) = OsRng.try_fill_bytes(buf) {
            panic!("the operating system's random source failed: {error}");
        }
    }
}

/// ChaCha20, seeded once: deterministic from [`ChaChaTokens::from_seed`], for
/// tests and benchmarks.
///
/// **Not for production.** Its state lives in the process: a process that
/// forks after creating it hands both children the same generator, and they
/// issue the same tokens and session ids. Use [`OsTokens`] (the engine's
/// default).
pub struct ChaChaTokens(Mutex<ChaCha20Rng>);

impl ChaChaTokens {
    /// Seeded from the operating system's random source, once (see the type's
    /// docs: not fork-safe).
    pub fn from_os() -> Self {
        Self(Mutex::new(ChaCha20Rng::from_os_rng()))
    }

    /// Seeded with a fixed value: deterministic, for tests only.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(Mutex::new(ChaCha20Rng::from_seed(seed)))
    }
}

impl Default for ChaChaTokens {
    fn default() -> Self {
        Self::from_os()
    }
}

impl fmt::Debug for ChaChaTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChaChaTokens")
    }
}

impl TokenSource for ChaChaTokens {
    fn fill(&self, buf: &mut [u8]) {
        // A poisoned lock only means another thread panicked mid-fill; the
        // generator state is still a valid ChaCha state.
        let mut rng = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rng.fill_bytes(buf);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn digests_differing_in_any_bit_are_unequal() {
        let digest = super::SessionDigest::from_bytes(std::array::from_fn(|at| at as u8 * 7));
        assert!(digest.ct_eq(&digest));
        for at in 0..32 {
            for bit in 0..8 {
                let mut bytes = *digest.as_bytes();
                bytes[at] ^= 1 << bit;
                assert!(!digest.ct_eq(&super::SessionDigest::from_bytes(bytes)), "byte {at}, bit {bit}");
            }
        }
    }

    use super::*;

    #[test]
    fn user_tags_are_short_stable_and_not_the_name() {
        let alice = Username::new("alice").unwrap_or_else(|e| panic!("{e}"));
        let tag = alice.tag().to_string();
        assert_eq!(tag.len(), 8);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{tag}");
        assert_eq!(tag, alice.tag().to_string(), "stable");
        // SHA-256("expected/v1/user-tag\0alice"), first 4 bytes (computed
        // apart, with Python's hashlib): pinned, so that an operator's tool
        // computing tags keeps finding the same lines.
        assert_eq!(tag, "2bc34ad6");
        let bob = Username::new("bob").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(alice.tag(), bob.tag());
        assert_eq!(format!("{:?}", alice.tag()), format!("UserTag({tag})"));
    }

    #[test]
    fn usernames_are_validated() {
        assert_eq!(Username::new(""), Err(UsernameError::Empty));
        assert_eq!(Username::new("a\0b"), Err(UsernameError::ControlCharacter));
        assert_eq!(Username::new("a\nb"), Err(UsernameError::ControlCharacter));
        assert_eq!(Username::new("x".repeat(256)), Err(UsernameError::TooLong));
        assert_eq!(Username::new("a\u{7f}"), Err(UsernameError::ControlCharacter));
        assert_eq!(Username::new("zoë\u{85}"), Err(UsernameError::ControlCharacter));
        for ok in ["alice", "zoë.o'brien", "a b", "\"quoted\"", "日本語", "x.y@z", "~", "\u{a0}"] {
            assert_eq!(Username::new(ok).map(|u| u.as_str().to_owned()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn the_ascii_scan_finds_the_control_characters_unicode_does() {
        // Every character of the first 256 code points alone and inside
        // ASCII and non-ASCII names: the byte scan and `char::is_control`
        // must agree on each.
        for code in 0u32..0x100 {
            let Some(c) = char::from_u32(code) else { continue };
            for name in [c.to_string(), format!("ab{c}"), format!("é{c}")] {
                assert_eq!(has_control_character(&name), name.chars().any(char::is_control), "{name:?}");
            }
        }
    }

    #[test]
    fn base64_round_trips_and_rejects_wrong_lengths() {
        let serial = Serial::from_bytes([7; 16]);
        assert_eq!(Serial::from_base64(&serial.to_base64()), Ok(serial));
        let token = Token::from_bytes([9; 32]);
        assert_eq!(Token::from_base64(&token.to_base64()).map(|t| t.0), Ok(token.0));
        assert!(Serial::from_base64(&token.to_base64()).is_err());
        assert!(Token::from_base64(&serial.to_base64()).is_err());
        assert!(Token::from_base64("!!").is_err());
        assert!(Token::from_base64(&"A".repeat(43)).is_ok());
        let stray_bits = format!("{}B", "A".repeat(42));
        assert!(Token::from_base64(&stray_bits).is_err(), "non-canonical trailing bits");
        assert!(Token::from_base64("").is_err());
        // The longest value, decoded in the same stack buffer; every byte
        // value lands where it was.
        let bytes: [u8; 64] = std::array::from_fn(|i| (i * 4 + 3) as u8);
        let sealed = SealedSuccessor::from_bytes(bytes);
        assert_eq!(SealedSuccessor::from_base64(&sealed.to_base64()).map(|s| s.0), Ok(bytes));
        assert_eq!(
            SealedSuccessor::from_base64(&Token::from_bytes([1; 32]).to_base64()).map(|s| s.0),
            Err(DecodeError { expected: 64 })
        );
        let every_byte: [u8; 32] = std::array::from_fn(|i| (i * 8 + 255) as u8);
        assert_eq!(Token::from_base64(&encode_b64(&every_byte)).map(|t| t.0), Ok(every_byte));
    }

    #[test]
    fn digests_match_only_their_secret() {
        let a = Token::from_bytes([1; 32]);
        let b = Token::from_bytes([2; 32]);
        let digest = a.digest();
        assert!(digest.matches(&a));
        assert!(!digest.matches(&b));
        assert_ne!(digest.as_bytes(), a.as_bytes(), "a digest is not the token");
        assert_eq!(format!("{a:?}"), "Token(redacted)");
    }

    #[test]
    fn seal_opens_only_with_the_previous_token() {
        let previous = Token::from_bytes([3; 32]);
        let token = Token::from_bytes([4; 32]);
        let session = SessionId::from_bytes([5; 32]);
        let sealed = SealedSuccessor::seal(&previous, &token, &session);
        assert_eq!(sealed.open(&previous), (token.clone(), session.clone()));
        let (wrong_token, wrong_session) = sealed.open(&Token::from_bytes([6; 32]));
        assert_ne!(wrong_token, token);
        assert_ne!(wrong_session, session);
        // Nothing of the plaintext shows through the seal.
        assert!(!sealed.as_bytes().windows(8).any(|w| w == &token.as_bytes()[..8]));
    }

    #[test]
    fn seeded_sources_are_deterministic_and_os_sources_differ() {
        let a = ChaChaTokens::from_seed([0; 32]);
        let b = ChaChaTokens::from_seed([0; 32]);
        assert_eq!(a.token(), b.token());
        let os = ChaChaTokens::from_os();
        assert_ne!(os.token(), os.token());
    }

    /// What `fork()` does to a source, without forking (the crate forbids
    /// `unsafe`): it copies the process, generator state included. Two
    /// copies of one ChaCha state issue the same secrets; `OsTokens` has no
    /// state to copy (it is zero-sized), and copies of it draw apart.
    #[test]
    fn the_os_source_keeps_no_state_a_fork_could_copy() {
        let (parent, child) = (ChaChaTokens::from_seed([5; 32]), ChaChaTokens::from_seed([5; 32]));
        assert_eq!(parent.session_id(), child.session_id(), "a copied state repeats itself");

        assert_eq!(std::mem::size_of::<OsTokens>(), 0, "no state in the process");
        let parent = OsTokens;
        let child = parent;
        let drawn = [parent.token(), child.token(), parent.token(), child.token()];
        for (i, a) in drawn.iter().enumerate() {
            for b in &drawn[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(parent.serial(), child.serial());
        assert_ne!(parent.session_id(), child.session_id());
        assert!(OsTokens.name().ends_with("OsTokens"), "{}", OsTokens.name());
    }

    /// Tokens and session ids wipe their bytes when dropped. Watching the
    /// freed memory would take `unsafe`, so this checks that the types
    /// implement `ZeroizeOnDrop` (a compile-time fact: without the derive
    /// this does not build) and that their `zeroize` clears them.
    #[test]
    fn secrets_are_wiped_when_dropped() {
        fn wiped_on_drop<T: ZeroizeOnDrop + Zeroize>() {}
        wiped_on_drop::<Token>();
        wiped_on_drop::<SessionId>();

        let mut token = Token::from_bytes([7; 32]);
        let digest = token.digest();
        token.zeroize();
        assert_eq!(token.as_bytes(), &[0; 32]);
        assert!(!digest.matches(&token), "the digest was taken before, and is a copy");
        let mut id = SessionId::from_bytes([8; 32]);
        id.zeroize();
        assert_eq!(id.as_bytes(), &[0; 32]);
    }
}
