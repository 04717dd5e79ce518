//! `read_cookie_headers` (and `http::presented_cookies` over a `HeaderMap`)
//! never panics and respects its bounds: headers over
//! `MAX_COOKIE_HEADER_BYTES` in all are refused unread, a value found is part
//! of a header the request carried, and every value of a name is kept in
//! request order without repeats, at most `MAX_VALUES_PER_NAME`, as if the
//! headers were read one by one and their values joined.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use expected_core::Config;
use expected_core::cookies::{
    CookieKind, HeaderError, MAX_COOKIE_HEADER_BYTES, MAX_VALUES_PER_NAME, PresentedCookies,
    read_cookie_headers,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// Which cookie names: the defaults, or `__Host-` ones.
    host_names: bool,
    /// Pad the first header past the limit.
    oversize: bool,
    headers: Vec<&'a [u8]>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let config = if input.host_names {
        Config::builder().session_cookie_name("__Host-session").auth_cookie_name("__Host-remember").build()
    } else {
        Config::builder().build()
    };
    let Ok(config) = config else { panic!("the fuzz configurations are valid") };
    let mut headers: Vec<Vec<u8>> = input.headers.iter().map(|header| header.to_vec()).collect();
    if input.oversize {
        let total: usize = headers.iter().map(Vec::len).sum();
        let mut padding = b"x=".to_vec();
        padding.resize((MAX_COOKIE_HEADER_BYTES + 1).saturating_sub(total).max(3), b'y');
        headers.insert(0, padding);
    }
    check(&headers, &config);
});

fn check(headers: &[Vec<u8>], config: &Config) {
    let total: usize = headers.iter().map(Vec::len).sum();
    let found = read_cookie_headers(headers.iter().map(Vec::as_slice), config);
    let from_map = presented_cookies_via_http(headers, config);
    if total > MAX_COOKIE_HEADER_BYTES {
        assert_eq!(found, Err(HeaderError::Oversize(total)), "over the limit is refused");
        return;
    }
    let Ok(found) = found else { panic!("{total} bytes are within the limit: {found:?}") };
    if let Some(from_map) = from_map {
        assert_eq!(from_map.as_ref(), Ok(&found), "the http helper reads the same");
    }
    // Header by header, values joined in order, repeats dropped, capped.
    let one_by_one: Vec<PresentedCookies> = headers
        .iter()
        .map(|header| read_cookie_headers([header.as_slice()], config).unwrap_or_default())
        .collect();
    let joined = |kind: CookieKind| {
        let mut all: Vec<&str> = Vec::new();
        for value in one_by_one.iter().flat_map(|cookies| cookies.values(kind).iter().collect::<Vec<_>>()) {
            if all.len() < MAX_VALUES_PER_NAME && !all.contains(&value) {
                all.push(value);
            }
        }
        all
    };
    let (session, auth) = (found.session_values(), found.auth_values());
    assert_eq!(
        session.as_slice(),
        joined(CookieKind::Session),
        "every session value, in order, once, capped"
    );
    assert_eq!(auth.as_slice(), joined(CookieKind::Auth), "every auth value, in order, once, capped");
    assert!(session.len() <= MAX_VALUES_PER_NAME && auth.len() <= MAX_VALUES_PER_NAME);
    for value in session.iter().chain(auth.iter()) {
        let bytes = value.as_bytes();
        assert!(
            headers
                .iter()
                .any(|header| header.windows(bytes.len().max(1)).any(|w| w == bytes) || bytes.is_empty()),
            "a value found is part of a header"
        );
        assert!(!value.contains(';'), "a value never spans two cookies");
    }
}

/// The same headers through `http::HeaderMap`, when every one is a valid
/// header value.
fn presented_cookies_via_http(
    headers: &[Vec<u8>],
    config: &Config,
) -> Option<Result<PresentedCookies, HeaderError>> {
    let mut map = http::HeaderMap::new();
    for header in headers {
        let value = http::HeaderValue::from_bytes(header).ok()?;
        map.append(http::header::COOKIE, value);
    }
    Some(expected_core::http::presented_cookies(&map, config))
}
