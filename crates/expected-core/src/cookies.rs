//! Rendering the two cookies as `Set-Cookie` headers.

use std::fmt;

use cookie::Cookie;

use crate::config::Config;
use crate::credential::{AuthCookie, SessionCookie};

/// Which of the two cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CookieKind {
    /// The session cookie (no Max-Age: it ends with the browser session).
    Session,
    /// The auth ("remember me") cookie (Max-Age: what is left of the login's
    /// life, at most the cookie max age).
    Auth,
}

/// One `Set-Cookie` the response must carry: a new value, or a removal.
#[derive(Clone, PartialEq)]
pub struct SetCookie {
    kind: CookieKind,
    cookie: Cookie<'static>,
    /// A removal of the host-only cookie of the name while the configuration
    /// names a `Domain` ([`SetCookie::remove_host_only`]): it targets another
    /// cookie than the configured one, so it neither replaces nor is replaced
    /// by a `Set-Cookie` with the configured attributes.
    host_only_removal: bool,
}

impl SetCookie {
    fn base(kind: CookieKind, value: String, config: &Config) -> Cookie<'static> {
        let name = match kind {
            CookieKind::Session => config.session_cookie_name(),
            CookieKind::Auth => config.auth_cookie_name(),
        };
        let mut cookie = Cookie::build((name.to_owned(), value))
            .http_only(true)
            .secure(config.secure())
            .same_site(config.same_site())
            .path(config.path().to_owned())
            .build();
        if let Some(domain) = config.domain() {
            cookie.set_domain(domain.to_owned());
        }
        cookie
    }

    /// Sets the session cookie.
    pub fn session(value: &SessionCookie, config: &Config) -> Self {
        let cookie = Self::base(CookieKind::Session, value.encode(), config);
        Self { kind: CookieKind::Session, cookie, host_only_removal: false }
    }

    /// Sets the auth cookie, for the cookie max age.
    pub fn auth(value: &AuthCookie, config: &Config) -> Self {
        Self::auth_for(value, config.max_age(), config)
    }

    /// Sets the auth cookie for `max_age` at most (the login's remaining
    /// lifetime, say), never longer than the cookie max age and never less
    /// than a second.
    pub fn auth_for(value: &AuthCookie, max_age: time::Duration, config: &Config) -> Self {
        let mut cookie = Self::base(CookieKind::Auth, value.encode(), config);
        let max_age = max_age.min(config.max_age()).max(time::Duration::SECOND);
        cookie.set_max_age(max_age);
        Self { kind: CookieKind::Auth, cookie, host_only_removal: false }
    }

    /// Removes a cookie: empty value, `Max-Age=0` and an expiry in the past,
    /// with the same path and domain so the browser matches it.
    pub fn remove(kind: CookieKind, config: &Config) -> Self {
        let mut cookie = Self::base(kind, String::new(), config);
        cookie.make_removal();
        Self { kind, cookie, host_only_removal: false }
    }

    /// Removes the **host-only** cookie of the name: [`SetCookie::remove`]
    /// without the `Domain`. Browsers keep a host-only cookie and a `Domain`
    /// cookie of one name and path apart, and a removal only matches the one
    /// whose attributes it repeats, so once a `Domain` is configured the
    /// cookies set before it (host-only) need this removal of their own. It
    /// never touches the `Domain` cookie. Without a configured `Domain` it is
    /// [`SetCookie::remove`].
    pub fn remove_host_only(kind: CookieKind, config: &Config) -> Self {
        let mut removal = Self::remove(kind, config);
        removal.host_only_removal = config.domain().is_some();
        removal.cookie.unset_domain();
        removal
    }

    /// Every removal that clears the cookie wherever this configuration
    /// could have put it: the host-only one first when a `Domain` is
    /// configured ([`SetCookie::remove_host_only`]), then the configured one.
    ///
    /// A cookie of the name under a `Domain` the configuration does not name
    /// (a sibling subdomain's, or one from before the `Domain` changed) or
    /// under another `Path` cannot be cleared: the browser never says where a
    /// cookie it sends was set.
    pub fn removals(kind: CookieKind, config: &Config) -> Vec<Self> {
        let mut removals = Vec::with_capacity(2);
        if config.domain().is_some() {
            removals.push(Self::remove_host_only(kind, config));
        }
        removals.push(Self::remove(kind, config));
        removals
    }

    /// [`SetCookie::removals`] of the session cookie, then of the auth cookie.
    pub fn remove_all(config: &Config) -> Vec<Self> {
        let mut removals = Self::removals(CookieKind::Session, config);
        removals.extend(Self::removals(CookieKind::Auth, config));
        removals
    }

    /// Whether this removes the host-only cookie of the name while a `Domain`
    /// is configured ([`SetCookie::remove_host_only`]): a stale twin, not the
    /// cookie the configuration sets.
    pub fn is_host_only_removal(&self) -> bool {
        self.host_only_removal
    }

    /// Whether `self` and `other` target the same browser cookie (same kind,
    /// and both or neither the host-only removal), so that the later one
    /// replaces the earlier in a response.
    pub(crate) fn same_target(&self, other: &Self) -> bool {
        self.kind == other.kind && self.host_only_removal == other.host_only_removal
    }

    /// Adds `cookies` to `response`, each replacing an earlier `Set-Cookie`
    /// of the same target ([`SetCookie::same_target`]), so that a response
    /// never carries two for one browser cookie.
    pub(crate) fn merge_into(response: &mut Vec<Self>, cookies: impl IntoIterator<Item = Self>) {
        for cookie in cookies {
            response.retain(|earlier| !earlier.same_target(&cookie));
            response.push(cookie);
        }
    }

    /// Which cookie this sets or removes.
    pub fn kind(&self) -> CookieKind {
        self.kind
    }

    /// Whether this removes the cookie.
    pub fn is_removal(&self) -> bool {
        self.cookie.value().is_empty()
    }

    /// The cookie's value (empty for a removal).
    pub fn value(&self) -> &str {
        self.cookie.value()
    }

    /// The cookie, as the `cookie` crate models it.
    pub fn as_cookie(&self) -> &Cookie<'static> {
        &self.cookie
    }

    /// The `Set-Cookie` header value.
    pub fn header_value(&self) -> String {
        self.cookie.to_string()
    }
}

impl fmt::Display for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cookie, f)
    }
}

impl fmt::Debug for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is a bearer credential: never in logs.
        f.debug_struct("SetCookie")
            .field("kind", &self.kind)
            .field("removal", &self.is_removal())
            .field("host_only_removal", &self.host_only_removal)
            .finish_non_exhaustive()
    }
}

/// Most bytes of `Cookie` headers read from one request. Browsers send at most
/// a few KiB; anything larger is refused before it is parsed.
pub const MAX_COOKIE_HEADER_BYTES: usize = 16 * 1024;

/// Why a request's cookies could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The `Cookie` headers add up to more than [`MAX_COOKIE_HEADER_BYTES`].
    #[error("Cookie headers are {0} bytes, over the {MAX_COOKIE_HEADER_BYTES}-byte limit")]
    Oversize(usize),
}

/// Most values of one cookie name read from a request; later ones are
/// ignored.
///
/// A browser sends one value per cookie of the name it holds for the request's
/// host and path: one normally, two after a deploy added (or changed) a
/// `Domain`, more when a sibling subdomain planted its own. Four covers those
/// cases while bounding the store reads a request can cost (one per
/// well-formed value). Browsers send the cookies of the longest `Path` first,
/// and of equal paths the oldest first.
pub const MAX_VALUES_PER_NAME: usize = 4;

/// The raw values a request carried for one cookie name: none, one, or up to
/// [`MAX_VALUES_PER_NAME`], in the order the request sent them, without
/// repeats. Borrowed, and `Copy`, like [`Presented`](crate::Presented).
///
/// Its `Debug` form shows how many values there are, never a value (they are
/// bearer credentials).
#[derive(Clone, Copy, Default)]
pub struct CookieValues<'a> {
    values: [&'a str; MAX_VALUES_PER_NAME],
    len: usize,
}

impl<'a> CookieValues<'a> {
    /// No value.
    pub const NONE: Self = Self { values: [""; MAX_VALUES_PER_NAME], len: 0 };

    /// One value.
    pub fn one(value: &'a str) -> Self {
        let mut values = Self::NONE;
        values.push(value);
        values
    }

    /// Adds `value` after the others, unless it is already there or
    /// [`MAX_VALUES_PER_NAME`] values are: answers whether it was added.
    pub fn push(&mut self, value: &'a str) -> bool {
        if self.len == MAX_VALUES_PER_NAME || self.as_slice().contains(&value) {
            return false;
        }
        self.values[self.len] = value;
        self.len += 1;
        true
    }

    /// The values, in request order.
    pub fn as_slice(&self) -> &[&'a str] {
        &self.values[..self.len]
    }

    /// The values, in request order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + '_ {
        self.as_slice().iter().copied()
    }

    /// The first value, if any.
    pub fn first(&self) -> Option<&'a str> {
        self.as_slice().first().copied()
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for CookieValues<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for CookieValues<'_> {}

impl fmt::Debug for CookieValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CookieValues({} values)", self.len)
    }
}

impl<'a> From<&'a str> for CookieValues<'a> {
    fn from(value: &'a str) -> Self {
        Self::one(value)
    }
}

impl<'a> From<Option<&'a str>> for CookieValues<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.into_iter().collect()
    }
}

impl<'a> From<&'a [String]> for CookieValues<'a> {
    fn from(values: &'a [String]) -> Self {
        values.iter().map(String::as_str).collect()
    }
}

impl<'a> From<&'a Vec<String>> for CookieValues<'a> {
    fn from(values: &'a Vec<String>) -> Self {
        values.as_slice().into()
    }
}

impl<'a> FromIterator<&'a str> for CookieValues<'a> {
    /// The first [`MAX_VALUES_PER_NAME`] distinct values; the rest are
    /// ignored.
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut values = Self::NONE;
        for value in iter {
            if values.len == MAX_VALUES_PER_NAME {
                break;
            }
            values.push(value);
        }
        values
    }
}

/// The two cookies' raw values as a request carried them, owned: each
/// name's in request order, at most [`MAX_VALUES_PER_NAME`] of each, without
/// repeats.
///
/// One buffer holds every value, each name's values a list of spans of it:
/// every request reads its cookies into one, which a list of strings per
/// name made four allocations (two lists, two values) and now makes one.
/// Its `Debug` form shows how many values there are, never a value (they
/// are bearer credentials).
///
/// ```
/// use expected_core::cookies::{CookieKind, PresentedCookies};
///
/// let mut cookies = PresentedCookies::new(["s1", "s2"], ["a"]);
/// assert_eq!(cookies.session_values().as_slice(), ["s1", "s2"]);
/// cookies.retain(CookieKind::Session, |value| value == "s2");
/// cookies.replace(CookieKind::Auth, None);
/// assert_eq!(cookies, PresentedCookies::new(["s2"], []));
/// ```
#[derive(Clone, Default)]
pub struct PresentedCookies {
    /// Every value, one after another (a replaced or dropped one stays until
    /// the whole is dropped).
    text: String,
    session: Spans,
    auth: Spans,
}

/// Where one name's values lie in [`PresentedCookies`]' text.
#[derive(Debug, Clone, Copy, Default)]
struct Spans {
    spans: [(usize, usize); MAX_VALUES_PER_NAME],
    len: usize,
}

impl Spans {
    fn as_slice(&self) -> &[(usize, usize)] {
        &self.spans[..self.len]
    }
}

impl PresentedCookies {
    /// The values `session` and `auth`, each name's first
    /// [`MAX_VALUES_PER_NAME`] distinct ones (the rest are ignored).
    pub fn new<'a>(
        session: impl IntoIterator<Item = &'a str>,
        auth: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut cookies = Self::default();
        for value in session {
            cookies.push(CookieKind::Session, value);
        }
        for value in auth {
            cookies.push(CookieKind::Auth, value);
        }
        cookies
    }

    fn spans(&self, kind: CookieKind) -> &Spans {
        match kind {
            CookieKind::Session => &self.session,
            CookieKind::Auth => &self.auth,
        }
    }

    fn spans_mut(&mut self, kind: CookieKind) -> &mut Spans {
        match kind {
            CookieKind::Session => &mut self.session,
            CookieKind::Auth => &mut self.auth,
        }
    }

    /// The values of `kind`, borrowed for [`Presented`](crate::Presented).
    pub fn values(&self, kind: CookieKind) -> CookieValues<'_> {
        // Built as it stands, not pushed value by value: the values are
        // distinct and within the bound already (every request borrows them
        // twice or more).
        let mut values = CookieValues::NONE;
        for value in self.iter(kind) {
            values.values[values.len] = value;
            values.len += 1;
        }
        values
    }

    /// The values of `kind`, in request order. Every span was cut from the
    /// text at the bounds of a `&str` pushed whole, so `get` always finds
    /// it; one it did not would be left out, never a panic.
    fn iter(&self, kind: CookieKind) -> impl Iterator<Item = &str> {
        self.spans(kind).as_slice().iter().filter_map(|&(start, end)| self.text.get(start..end))
    }

    /// The session cookie's values, borrowed for [`Presented`](crate::Presented).
    pub fn session_values(&self) -> CookieValues<'_> {
        self.values(CookieKind::Session)
    }

    /// The auth cookie's values, borrowed for [`Presented`](crate::Presented).
    pub fn auth_values(&self) -> CookieValues<'_> {
        self.values(CookieKind::Auth)
    }

    /// Adds `value` after the values of `kind`, unless it is already there
    /// or [`MAX_VALUES_PER_NAME`] values are: answers whether it was added.
    pub fn push(&mut self, kind: CookieKind, value: &str) -> bool {
        if self.spans(kind).len == MAX_VALUES_PER_NAME || self.iter(kind).any(|held| held == value) {
            return false;
        }
        let start = self.text.len();
        self.text.push_str(value);
        let span = (start, self.text.len());
        let spans = self.spans_mut(kind);
        spans.spans[spans.len] = span;
        spans.len += 1;
        true
    }

    /// Makes `value` the only value of `kind`, or leaves it none.
    pub fn replace(&mut self, kind: CookieKind, value: Option<&str>) {
        self.spans_mut(kind).len = 0;
        if let Some(value) = value {
            self.push(kind, value);
        }
    }

    /// Keeps only the values of `kind` that `keep` answers `true` for, in
    /// their order.
    pub fn retain(&mut self, kind: CookieKind, mut keep: impl FnMut(&str) -> bool) {
        let old = *self.spans(kind);
        let mut kept = Spans::default();
        for &(start, end) in old.as_slice() {
            if self.text.get(start..end).is_some_and(&mut keep) {
                kept.spans[kept.len] = (start, end);
                kept.len += 1;
            }
        }
        *self.spans_mut(kind) = kept;
    }

    /// Room for `additional` more bytes of values, taken at once.
    fn reserve(&mut self, additional: usize) {
        self.text.reserve(additional);
    }
}

impl PartialEq for PresentedCookies {
    /// The same values of each name, in the same order.
    fn eq(&self, other: &Self) -> bool {
        self.session_values() == other.session_values() && self.auth_values() == other.auth_values()
    }
}

impl Eq for PresentedCookies {}

impl fmt::Debug for PresentedCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedCookies")
            .field("session", &self.session_values())
            .field("auth", &self.auth_values())
            .finish()
    }
}

/// The `name=value` pairs of one `Cookie` header, split as the `cookie`
/// crate's `Cookie::split_parse` splits them (on `;`, name and value
/// trimmed, a piece without `=` or with an empty name skipped, the value
/// not decoded), without building a `Cookie` per pair: every request reads
/// this header, and only two names matter. The `;` and `=` are found by
/// the `memchr` crate's vectorized search rather than `str::split`'s
/// (about 275 instructions less on a session hit's two-cookie header);
/// both are ASCII, so every piece is cut on a character boundary.
fn split_pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    let ends = memchr::memchr_iter(b';', header.as_bytes()).chain(std::iter::once(header.len()));
    let mut start = 0;
    ends.filter_map(move |end| {
        let piece = header.get(std::mem::replace(&mut start, end + 1)..end)?;
        let equals = memchr::memchr(b'=', piece.as_bytes())?;
        let name = piece.get(..equals)?.trim();
        let value = piece.get(equals + 1..)?;
        (!name.is_empty()).then(|| (name, value.trim()))
    })
}

/// Reads the session and auth cookies from the raw values of a request's
/// `Cookie` headers, whatever HTTP library carried them.
///
/// Headers adding up to more than [`MAX_COOKIE_HEADER_BYTES`] are refused
/// unread. **Every** value of each name is kept, in request order, up to
/// [`MAX_VALUES_PER_NAME`] distinct ones (more are ignored): a browser holding
/// a host-only and a `Domain` cookie of one name, or one a sibling subdomain
/// planted for a longer `Path`, sends them all, and which one is good is for
/// the engine to find out ([`Expected::authenticate`](crate::Expected::authenticate)),
/// not for the order to decide. `__Host-` names rule the planted ones out.
/// Header values that are not UTF-8 are skipped. Values are not checked here:
/// one over [`MAX_COOKIE_VALUE_BYTES`](crate::credential::MAX_COOKIE_VALUE_BYTES)
/// is kept, so that the engine answers it `Malformed` and clears it.
pub fn read_cookie_headers<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    config: &Config,
) -> Result<PresentedCookies, HeaderError> {
    // One pass, no list of the headers first (every request reads its
    // cookies): past the bound nothing more is parsed, only counted, and
    // the whole is refused.
    let mut total = 0usize;
    let mut found = PresentedCookies::default();
    for header in values {
        total = total.saturating_add(header.len());
        if total > MAX_COOKIE_HEADER_BYTES {
            continue;
        }
        let Ok(text) = std::str::from_utf8(header) else { continue };
        for (name, value) in split_pairs(text) {
            let kind = if name == config.session_cookie_name() {
                CookieKind::Session
            } else if name == config.auth_cookie_name() {
                CookieKind::Auth
            } else {
                continue;
            };
            // This header's length bounds what it adds: one allocation for
            // a request's values, not one per value.
            if found.text.capacity() == 0 {
                found.reserve(text.len());
            }
            found.push(kind, value);
        }
    }
    if total > MAX_COOKIE_HEADER_BYTES {
        return Err(HeaderError::Oversize(total));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_pairs_split_as_the_cookie_crate_splits_them() {
        let headers = [
            "a=1; b=2",
            "a=1;b=2;;  ;c=3",
            " a = 1 ; b=\"quoted\" ;",
            "novalue; =empty-name; a==x=y; a=",
            "\u{a0}a\u{a0}=\u{2003}v\u{2003}; b=%41",
            "a=1; Path=/; Secure; HttpOnly; Max-Age=nope",
            ";;;",
            "",
            "zoë=ö; x",
        ];
        for header in headers {
            let (ours, theirs) = both_splits(header);
            assert_eq!(ours, theirs, "{header:?}");
        }
    }

    #[test]
    fn presented_cookies_keep_values_not_their_buffer() {
        let mut cookies = PresentedCookies::new(["a", "b", "a", "c", "d", "e"], ["x"]);
        assert_eq!(cookies.session_values().as_slice(), ["a", "b", "c", "d"], "distinct, the first four");
        assert!(!cookies.push(CookieKind::Session, "f"), "full");
        assert!(!cookies.push(CookieKind::Auth, "x"), "a repeat");
        assert!(cookies.push(CookieKind::Auth, "y"));
        cookies.retain(CookieKind::Session, |value| value != "b");
        assert_eq!(cookies.session_values().as_slice(), ["a", "c", "d"]);
        cookies.replace(CookieKind::Auth, Some("z"));
        assert_eq!(cookies.auth_values().as_slice(), ["z"]);
        assert!(cookies.push(CookieKind::Session, "b"), "room again after the retain");
        // Equal by values: the replaced and dropped ones still in the buffer
        // do not count.
        assert_eq!(cookies, PresentedCookies::new(["a", "c", "d", "b"], ["z"]));
        assert_ne!(cookies, PresentedCookies::new(["a", "c", "b", "d"], ["z"]), "order counts");
        cookies.replace(CookieKind::Session, None);
        assert!(cookies.session_values().is_empty());
        let debug = format!("{:?}", PresentedCookies::new(["secret-session"], ["secret-auth"]));
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn a_request_reads_its_cookies_into_one_allocation() -> Result<(), Box<dyn std::error::Error>> {
        let config = Config::default();
        let header = "theme=dark; session=1.c2Vzc2lvbg.aWQ; remember_me=1.YQ.cw.dA; lang=en";
        let found = read_cookie_headers([header.as_bytes()], &config)?;
        assert_eq!(found.session_values().as_slice(), ["1.c2Vzc2lvbg.aWQ"]);
        assert_eq!(found.auth_values().as_slice(), ["1.YQ.cw.dA"]);
        assert!(found.text.capacity() >= header.len(), "sized once, from the header");
        assert_eq!(
            read_cookie_headers([&b"theme=dark"[..]], &config)?.text.capacity(),
            0,
            "none: nothing taken"
        );
        Ok(())
    }

    /// A header's pairs, owned, in the order they appear.
    type Pairs = Vec<(String, String)>;

    /// `header`'s pairs by [`split_pairs`], then by the `cookie` crate.
    fn both_splits(header: &str) -> (Pairs, Pairs) {
        let ours = split_pairs(header).map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
        let theirs = Cookie::split_parse(header)
            .flatten()
            .map(|cookie| (cookie.name().to_owned(), cookie.value().to_owned()))
            .collect();
        (ours, theirs)
    }

    proptest::proptest! {
        /// Any header, separators, spaces and non-ASCII text among its
        /// pieces: the pairs are the `cookie` crate's, and nothing panics
        /// (the pieces are cut by byte offsets).
        #[test]
        fn any_header_splits_as_the_cookie_crate_splits_it(header in "[a-c=; \u{a0}\u{2003}é\"]{0,40}") {
            let (ours, theirs) = both_splits(&header);
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    use crate::secret::{Serial, Token, Username};

    #[test]
    fn auth_cookie_has_every_attribute() -> Result<(), Box<dyn std::error::Error>> {
        let config = Config::builder()
            .auth_cookie_name("__Host-remember")
            .cookie_max_age(std::time::Duration::from_secs(3600))
            .build()?;
        let value = AuthCookie {
            username: Username::new("zoë")?,
            serial: Serial::from_bytes([1; 16]),
            token: Token::from_bytes([2; 32]),
            key: None,
        };
        let header = SetCookie::auth(&value, &config).header_value();
        assert!(header.starts_with(&format!("__Host-remember={}", value.encode())), "{header}");
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
            assert!(header.contains(attribute), "{attribute} missing from {header}");
        }
        assert!(!header.contains("Domain"), "{header}");
        Ok(())
    }

    #[test]
    fn cookie_headers_are_bounded_and_every_value_of_a_name_is_kept() {
        let config = Config::default();
        let headers: [&[u8]; 3] = [b"remember_me=first; x=1", b"\xff\xfe", b"remember_me=second; session=s"];
        let found = read_cookie_headers(headers, &config);
        assert_eq!(
            found,
            Ok(PresentedCookies::new(["s"], ["first", "second"])),
            "non-UTF-8 headers are skipped, every value of a name is kept in request order"
        );
        let big = vec![b'a'; MAX_COOKIE_HEADER_BYTES + 1];
        let oversize = read_cookie_headers([big.as_slice()], &config);
        assert_eq!(oversize, Err(HeaderError::Oversize(MAX_COOKIE_HEADER_BYTES + 1)));
        // Over the bound only in all: refused whole, whichever header crossed
        // it, with the total of every header.
        let within = vec![b'a'; MAX_COOKIE_HEADER_BYTES - 9];
        let headers: [&[u8]; 3] = [b"session=s", within.as_slice(), b"remember_me=late"];
        let total = 9 + within.len() + 16;
        assert_eq!(read_cookie_headers(headers, &config), Err(HeaderError::Oversize(total)));
        let at_bound: [&[u8]; 2] = [b"session=s", within.as_slice()];
        assert!(
            read_cookie_headers(at_bound, &config)
                .is_ok_and(|found| found.session_values().as_slice() == ["s"])
        );
    }

    #[test]
    fn repeated_values_are_bounded_per_name_without_repeats() {
        let config = Config::default();
        let header = "session=a; remember_me=1; session=a; remember_me=2; remember_me=3; remember_me=2; \
                      remember_me=4; remember_me=5; session=b";
        let found = read_cookie_headers([header.as_bytes()], &config).unwrap_or_default();
        assert_eq!(found.session_values().as_slice(), ["a", "b"], "a repeated value is read once");
        assert_eq!(
            found.auth_values().as_slice(),
            ["1", "2", "3", "4"],
            "at most {MAX_VALUES_PER_NAME}, the first ones"
        );
        let values = found.auth_values();
        assert_eq!((values.len(), values.first()), (4, Some("1")));
        assert_eq!(format!("{values:?}"), "CookieValues(4 values)", "Debug shows no value");

        let collected: CookieValues<'_> = ["x", "y", "x", "z", "w", "v"].into_iter().collect();
        assert_eq!(collected.as_slice(), ["x", "y", "z", "w"]);
        assert_eq!(CookieValues::from(None::<&str>), CookieValues::NONE);
        assert_eq!(CookieValues::from(Some("x")), CookieValues::one("x"));
    }

    #[test]
    fn removals_clear_the_host_only_twin_when_a_domain_is_configured()
    -> Result<(), Box<dyn std::error::Error>> {
        let plain = Config::default();
        let removals = SetCookie::removals(CookieKind::Auth, &plain);
        assert_eq!(removals.len(), 1, "without a Domain, one removal covers the cookie");
        assert!(!removals[0].is_host_only_removal());
        assert_eq!(SetCookie::remove_all(&plain).len(), 2);

        let domain = Config::builder().domain(Some("example.com".into())).build()?;
        let removals = SetCookie::removals(CookieKind::Auth, &domain);
        let headers: Vec<String> = removals.iter().map(SetCookie::header_value).collect();
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert!(removals[0].is_host_only_removal() && removals[0].is_removal());
        assert!(!headers[0].contains("Domain"), "host-only first: {headers:?}");
        assert!(headers[1].contains("Domain=example.com"), "then the configured one: {headers:?}");
        for header in &headers {
            assert!(header.starts_with("remember_me=;") && header.contains("Max-Age=0"), "{header}");
            assert!(header.contains("Path=/"), "{header}");
        }
        assert_eq!(SetCookie::remove_all(&domain).len(), 4);

        // The host-only removal and a set with the configured attributes are
        // two browser cookies: one never replaces the other in a response.
        let value = AuthCookie {
            username: Username::new("alice")?,
            serial: Serial::from_bytes([1; 16]),
            token: Token::from_bytes([2; 32]),
            key: None,
        };
        let mut response = SetCookie::removals(CookieKind::Auth, &domain);
        SetCookie::merge_into(&mut response, [SetCookie::auth(&value, &domain)]);
        let kept: Vec<(bool, bool)> =
            response.iter().map(|c| (c.is_host_only_removal(), c.is_removal())).collect();
        assert_eq!(kept, [(true, true), (false, false)], "the set replaced the configured removal only");
        Ok(())
    }

    #[test]
    fn removal_matches_path_and_domain() -> Result<(), Box<dyn std::error::Error>> {
        let config =
            Config::builder().secure(false).path("/app").domain(Some("example.com".into())).build()?;
        let removal = SetCookie::remove(CookieKind::Session, &config);
        let header = removal.header_value();
        assert!(removal.is_removal());
        assert!(header.starts_with("session=;"), "{header}");
        for attribute in ["Max-Age=0", "Path=/app", "Domain=example.com", "HttpOnly"] {
            assert!(header.contains(attribute), "{attribute} missing from {header}");
        }
        assert!(!header.contains("Secure"), "{header}");
        Ok(())
    }
}
