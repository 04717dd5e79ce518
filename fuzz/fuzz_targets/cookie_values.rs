//! `AuthCookie::parse` and `SessionCookie::parse` never panic, refuse what is
//! over the size limit, and round-trip what they accept: an accepted value is
//! canonical (it is exactly what `encode` writes for what was parsed), and
//! every cookie the encoders write parses back to itself.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use expected_core::credential::MAX_COOKIE_VALUE_BYTES;
use expected_core::{AuthCookie, CookieError, KeyId, Serial, SessionCookie, SessionId, Token, Username};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Mode byte: raw text for the parsers, or parts to encode.
    let Some((mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            parse_text(text);
        }
    } else {
        encode_parts(&mut Unstructured::new(rest));
    }
});

fn parse_text(text: &str) {
    let auth = AuthCookie::parse(text);
    let session = SessionCookie::parse(text);
    if text.len() > MAX_COOKIE_VALUE_BYTES {
        assert_eq!(auth, Err(CookieError::Oversize(text.len())));
        assert_eq!(session, Err(CookieError::Oversize(text.len())));
        return;
    }
    if let Ok(cookie) = auth {
        let encoded = cookie.encode();
        assert_eq!(encoded, text, "an accepted auth cookie is what encode writes");
        assert_eq!(AuthCookie::parse(&encoded).as_ref(), Ok(&cookie));
        assert!(SessionCookie::parse(text).is_err(), "four or five parts are never a session cookie");
    }
    if let Ok(cookie) = session {
        let encoded = cookie.encode();
        assert_eq!(encoded, text, "an accepted session cookie is what encode writes");
        assert_eq!(SessionCookie::parse(&encoded).as_ref(), Ok(&cookie));
    }
}

fn encode_parts(u: &mut Unstructured<'_>) {
    let Ok(name) = <String as Arbitrary>::arbitrary(u) else { return };
    let (Ok(serial), Ok(token), Ok(id), Ok(anonymous)) = (
        u.arbitrary::<[u8; 16]>(),
        u.arbitrary::<[u8; 32]>(),
        u.arbitrary::<[u8; 32]>(),
        u.arbitrary::<bool>(),
    ) else {
        return;
    };
    let Ok(username) = Username::new(name) else { return };
    // A key id when the bytes make a valid one (format 2), none otherwise (format 1).
    let key = <String as Arbitrary>::arbitrary(u).ok().and_then(|id| KeyId::new(id).ok());
    let auth = AuthCookie {
        username: username.clone(),
        serial: Serial::from_bytes(serial),
        token: Token::from_bytes(token),
        key,
    };
    let value = auth.encode();
    assert!(value.len() <= MAX_COOKIE_VALUE_BYTES, "the longest username still fits the limit");
    assert_eq!(AuthCookie::parse(&value).as_ref(), Ok(&auth), "auth cookies round-trip");
    parse_text(&value);
    let session = SessionCookie { username: (!anonymous).then_some(username), id: SessionId::from_bytes(id) };
    let value = session.encode();
    assert_eq!(SessionCookie::parse(&value).as_ref(), Ok(&session), "session cookies round-trip");
    parse_text(&value);
}
