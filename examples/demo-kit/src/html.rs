//! The demo's pages: small, server-rendered, inline CSS, no script. Every
//! piece of text a user or client controls (usernames, user agents, the
//! username typed into the form, `next` paths) goes through [`escape`].
//!
//! Element ids the browser test reads: `user`, `via` and `auth-method`
//! (home, with `data-via` and `data-method`), `login-form`, `theft-alert`,
//! `login-error`, `theme-light` and `theme-dark` (the theme buttons; `body`
//! carries `data-theme`), `confirm-form` and `confirm-error` (the
//! confirm-password page), `security` (the security page), `devices` (the
//! table, one `tr` per login with `data-serial`, the current one with class
//! `current`), `logout-others` and `others-ended`.

use std::fmt::Write as _;
use std::time::Duration;

use expected_core::time::OffsetDateTime;
use expected_core::{
    AuthError, AuthMethod, CurrentUser, Device, EngineError, Serial, SessionData, SessionError, StoreError,
    Unauthenticated, Username, Via,
};

use crate::accounts::DEMO_USERS;
use crate::api::LogoutOthersResponse;

/// The pages' paths. State changes are POSTs: SameSite=Lax cookies still go
/// along with top-level GET navigations from other sites.
pub mod paths {
    /// `GET`: home, or the login form.
    pub const HOME: &str = "/";
    /// `GET`: the login form (query `next`: where to go once logged in);
    /// `POST`: log in (form fields `username`, `password`, `remember=on`,
    /// `next`).
    pub const LOGIN: &str = "/login";
    /// `GET`: the devices page (query `logins` and `sessions`: what "sign
    /// out other devices" just ended).
    pub const DEVICES: &str = "/devices";
    /// `POST`: revoke one login; the route pattern (axum and actix alike).
    pub const REVOKE_ROUTE: &str = "/devices/{serial}/revoke";
    /// `POST`: log this device out.
    pub const LOGOUT: &str = "/logout";
    /// `POST`: log out every device.
    pub const LOGOUT_EVERYWHERE: &str = "/logout-everywhere";
    /// `POST`: log out every other device; this one stays.
    pub const LOGOUT_OTHERS: &str = "/logout-others";
    /// `GET`: the form asking a logged-in user for their password again
    /// (query `next`); `POST`: check it (form fields `password`, `next`).
    pub const CONFIRM_PASSWORD: &str = "/confirm-password";
    /// `GET`: the security page, for a password typed less than
    /// `EXPECTED_FRESH_SECS` ago.
    pub const SECURITY: &str = "/security";
    /// `POST`: pick a theme, kept in the session, visitor's or user's (form
    /// fields `theme`: `light` or `dark`, and `next`).
    pub const THEME: &str = "/theme";

    /// The path that revokes `serial`.
    pub fn revoke(serial: &str) -> String {
        REVOKE_ROUTE.replace("{serial}", serial)
    }

    /// `page` with the query `next=` naming `next`, percent-encoded (as the
    /// adapters' guards write it).
    pub fn with_next(page: &str, next: &str) -> String {
        format!("{page}?next={}", super::percent_encode(next))
    }

    /// The devices page telling what "sign out other devices" ended.
    pub fn devices_after_logout_others(logins: u64, sessions: u64) -> String {
        format!("{DEVICES}?logins={logins}&sessions={sessions}")
    }
}

/// Percent-encodes `text` for a query value: everything but RFC 3986's
/// unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// The value of the parameter `name` in the query string `query` (what
/// follows the `?`), percent-decoded (`+` as a space); the first one if it
/// is there more than once.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let pairs = query?.split('&');
    pairs
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}

/// Decodes `%XX` escapes (invalid ones kept as they are) and `+` (a space),
/// as in a query value.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|pair| std::str::from_utf8(pair).ok());
        match (bytes[i], hex.and_then(|pair| u8::from_str_radix(pair, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes `text` for HTML text and double- or single-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The pages' colours, a visitor's choice kept in the session under
/// [`Theme::SESSION_KEY`]: it shows that visitors have session data too,
/// and that it comes along when they sign in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Theme {
    /// Dark on light (the default).
    #[default]
    Light,
    /// Light on dark.
    Dark,
}

impl Theme {
    /// The session key the theme is kept under.
    pub const SESSION_KEY: &str = "theme";

    /// `light` or `dark`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }

    /// The theme `light` or `dark` names.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "light" => Some(Self::Light),
            "dark" => Some(Self::Dark),
            _ => None,
        }
    }

    /// The theme the session data holds (the default for anything else, a
    /// value the JSON API put there included).
    pub fn of(data: &SessionData) -> Self {
        data.get(Self::SESSION_KEY).and_then(|value| value.as_str()).and_then(Self::parse).unwrap_or_default()
    }
}

/// What every page shows whoever asks: the theme, the path the theme
/// buttons come back to, and the hidden CSRF field every form carries.
#[derive(Debug, Clone)]
struct Frame {
    theme: Theme,
    here: String,
    /// `<input type="hidden" name="csrf_token" …>` when the session holds a
    /// token (a logged-in user's: the demos make it before the page), else
    /// empty.
    csrf: String,
}

impl Frame {
    fn new(data: &SessionData, here: impl Into<String>) -> Self {
        Self { theme: Theme::of(data), here: here.into(), csrf: csrf_field(data) }
    }

    fn plain() -> Self {
        Self { theme: Theme::Light, here: paths::HOME.to_owned(), csrf: String::new() }
    }
}

/// The hidden field carrying the session's CSRF token (kept under
/// `expected_core::csrf::SESSION_KEY`), if `data` holds one.
pub fn csrf_field(data: &SessionData) -> String {
    match data.get(expected_core::csrf::SESSION_KEY).and_then(|token| token.as_str()) {
        Some(token) => format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            expected_core::csrf::FORM_FIELD,
            escape(token)
        ),
        None => String::new(),
    }
}

const STYLE: &str = "
:root { color-scheme: light; --ink: #1d2433; --muted: #5b6478; --line: #dde2ec; --accent: #2f5bd3;
  --danger: #b3261e; --bg: #f4f6fa; --surface: #fff; --current: #f5f8ff; --code: #eef1f6;
  --badge: #e6ecfb; }
body[data-theme=dark] { color-scheme: dark; --ink: #e4e8f1; --muted: #9aa4b8; --line: #323a4d;
  --accent: #8fb0ff; --danger: #ff8a80; --bg: #12161f; --surface: #1b2130; --current: #222b40;
  --code: #262e40; --badge: #26345a; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 16px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', sans-serif; }
header { background: var(--surface); border-bottom: 1px solid var(--line); }
header .bar { max-width: 52rem; margin: 0 auto; padding: .75rem 1.25rem; display: flex; gap: 1rem;
  align-items: center; }
header .brand { font-weight: 700; color: var(--ink); text-decoration: none; margin-right: auto; }
header nav a { color: var(--accent); text-decoration: none; margin-left: 1rem; }
form.theme { display: inline-flex; gap: .25rem; }
form.theme button { padding: .15rem .55rem; font-size: .8rem; }
form.theme button[aria-pressed=true] { background: var(--accent); color: var(--surface); }
main { max-width: 52rem; margin: 2rem auto; padding: 0 1.25rem; }
.card { background: var(--surface); border: 1px solid var(--line); border-radius: .75rem; padding: 1.5rem;
  margin-bottom: 1.25rem; }
.narrow { max-width: 26rem; margin-left: auto; margin-right: auto; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
h2 { font-size: 1.1rem; margin: 0 0 .75rem; }
p { margin: .5rem 0; }
a { color: var(--accent); }
.muted { color: var(--muted); font-size: .9rem; }
label { display: block; margin: .75rem 0 .25rem; font-weight: 600; }
label.check { display: flex; gap: .5rem; align-items: center; font-weight: 400; }
input[type=text], input[type=password] { width: 100%; padding: .55rem .7rem; font: inherit;
  border: 1px solid var(--line); border-radius: .5rem; background: var(--surface); color: var(--ink); }
button, a.button { font: inherit; padding: .5rem 1rem; border-radius: .5rem; border: 1px solid var(--accent);
  background: var(--accent); color: var(--surface); cursor: pointer; display: inline-block;
  text-decoration: none; line-height: 1.5; }
button.secondary, a.button.secondary { background: var(--surface); color: var(--accent); }
button.danger { background: var(--surface); color: var(--danger); border-color: var(--danger); }
button.small { padding: .25rem .6rem; font-size: .875rem; }
form.inline { display: inline; }
.actions { display: flex; gap: .75rem; flex-wrap: wrap; margin-top: 1rem; }
.alert { border-radius: .75rem; padding: 1rem 1.25rem; margin-bottom: 1.25rem; border: 1px solid; }
.alert h2 { margin-bottom: .25rem; }
.alert.danger { background: #fdecea; border-color: #f3b8b3; color: #5f1410; }
.alert.warn { background: #fff6e0; border-color: #f0d28a; color: #5a4100; }
.alert.ok { background: #e5f5ea; border-color: #a8d8b6; color: #17502b; }
.badge { display: inline-block; padding: .1rem .5rem; border-radius: 999px; font-size: .8rem;
  font-weight: 600; background: var(--badge); color: var(--accent); }
.badge.cookie, .badge.fresh { background: #e5f5ea; color: #1e6b3a; }
.badge.grace, .badge.stale { background: #fff1d6; color: #7a5200; }
table { width: 100%; border-collapse: collapse; font-size: .92rem; table-layout: fixed; }
col.ip { width: 8.5rem; } col.when { width: 7.5rem; } col.action { width: 5.5rem; }
th, td { text-align: left; padding: .6rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; }
tr.current td { background: var(--current); }
td.agent .ua { font-size: .78rem; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
td.ip { overflow-wrap: anywhere; }
td time .clock { color: var(--muted); font-size: .85rem; }
code { font-size: .85rem; background: var(--code); padding: .05rem .3rem; border-radius: .25rem; }
ul.accounts { margin: .25rem 0 0; padding-left: 1.2rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1.25rem; margin: 1rem 0 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
";

/// The theme buttons: a form that stores the choice in the session and comes
/// back to `frame.here`.
fn theme_form(frame: &Frame) -> String {
    let mut form = format!(
        "<form class=\"theme\" method=\"post\" action=\"{}\">{}<input type=\"hidden\" name=\"next\" value=\"{}\">",
        paths::THEME,
        frame.csrf,
        escape(&frame.here)
    );
    for theme in [Theme::Light, Theme::Dark] {
        let _ = write!(
            form,
            "<button class=\"secondary\" name=\"theme\" value=\"{name}\" id=\"theme-{name}\" \
             aria-pressed=\"{pressed}\">{label}</button>",
            name = theme.as_str(),
            pressed = frame.theme == theme,
            label = if theme == Theme::Light { "Light" } else { "Dark" },
        );
    }
    form.push_str("</form>");
    form
}

/// A whole page around `body`. `user` adds the navigation and log-out
/// button of a logged-in page.
fn layout(title: &str, frame: &Frame, user: Option<&Username>, body: &str) -> String {
    let mut page = String::with_capacity(body.len() + STYLE.len() + 1536);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · expected demo</title>\n<style>{STYLE}</style>\n</head>\n\
         <body data-theme=\"{}\">\n<header><div class=\"bar\">\
         <a class=\"brand\" href=\"{}\">expected · remember-me demo</a>",
        escape(title),
        frame.theme.as_str(),
        paths::HOME
    );
    if let Some(user) = user {
        let _ = write!(
            page,
            "<nav><a href=\"{}\">Home</a><a href=\"{}\">Devices</a><a href=\"{}\">Security</a></nav>\
             <span class=\"muted\">{}</span>\
             <form class=\"inline\" method=\"post\" action=\"{}\">{}<button class=\"secondary small\">Log out</button></form>",
            paths::HOME,
            paths::DEVICES,
            paths::SECURITY,
            escape(user.as_str()),
            paths::LOGOUT,
            frame.csrf
        );
    }
    page.push_str(&theme_form(frame));
    let _ = write!(page, "</div></header>\n<main>\n{body}\n</main>\n</body>\n</html>\n");
    page
}

/// What the login page warns about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// This request presented a replayed remember-me cookie: everything of
    /// the user was revoked.
    Theft,
    /// The username or password was wrong.
    InvalidCredentials,
}

fn theft_alert() -> &'static str {
    "<section class=\"alert danger\" id=\"theft-alert\" role=\"alert\">\
     <h2>We signed you out everywhere</h2>\
     <p>This browser presented a remember-me cookie that had already been used elsewhere. \
     Someone may have copied it, so we closed <strong>all</strong> your sessions and forgot every \
     remembered device.</p>\
     <p>Please sign in again. If you did not expect this, change your password. A browser profile \
     restored from a backup, or copied to another computer, also causes this: if that is what \
     happened, signing in again is all there is to do.</p></section>"
}

/// A hidden `next` field.
fn next_field(next: &str) -> String {
    format!("<input type=\"hidden\" name=\"next\" value=\"{}\">", escape(next))
}

/// The login form, `username` filled in, with an optional alert above it;
/// `next` is where it goes once logged in (a same-site path: run what the
/// request brought through the adapter's `safe_next` first). `data` is the
/// visitor's session data (its theme shows).
pub fn login_page(data: &SessionData, username: &str, alert: Option<Alert>, next: &str) -> String {
    let here =
        if next == paths::HOME { paths::HOME.to_owned() } else { paths::with_next(paths::LOGIN, next) };
    let frame = Frame::new(data, here);
    let mut body = String::new();
    body.push_str("<div class=\"narrow\">");
    match alert {
        Some(Alert::Theft) => body.push_str(theft_alert()),
        Some(Alert::InvalidCredentials) => body.push_str(
            "<section class=\"alert warn\" id=\"login-error\" role=\"alert\">\
             Wrong username or password.</section>",
        ),
        None => {}
    }
    if next != paths::HOME {
        body.push_str(
            "<section class=\"alert warn\" id=\"login-needed\">Sign in to see that page.</section>",
        );
    }
    let _ = write!(
        body,
        "<section class=\"card\"><h1>Sign in</h1>\
         <form id=\"login-form\" method=\"post\" action=\"{}\">{csrf}{}\
         <label for=\"username\">Username</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <label class=\"check\"><input type=\"checkbox\" id=\"remember\" name=\"remember\" value=\"on\"> \
         Remember me on this device</label>\
         <div class=\"actions\"><button type=\"submit\" id=\"sign-in\">Sign in</button></div>\
         </form></section>",
        paths::LOGIN,
        next_field(next),
        escape(username),
        csrf = frame.csrf,
    );
    let _ = write!(
        body,
        "<section class=\"card muted\" id=\"visitor-session\"><p>You are not signed in, yet you have a \
         session too: the theme you pick above (now <strong id=\"theme-name\">{}</strong>) is kept in \
         it, and comes with you when you sign in.</p></section>",
        frame.theme.as_str()
    );
    body.push_str("<section class=\"card muted\"><p>Demo accounts:</p><ul class=\"accounts\">");
    for (name, password) in DEMO_USERS {
        let _ = write!(body, "<li><code>{}</code> / <code>{}</code></li>", escape(name), escape(password));
    }
    body.push_str("</ul></section></div>");
    layout("Sign in", &frame, None, &body)
}

fn via_text(via: Via) -> (&'static str, &'static str, &'static str) {
    match via {
        Via::CookieLogin => (
            "cookie",
            "your remember-me cookie",
            "Your session had ended, so the remember-me cookie signed you back in; its token was \
             replaced and a new session opened.",
        ),
        Via::Grace => (
            "grace",
            "a just-replaced remember-me cookie (grace window)",
            "Another request from this browser replaced the cookie a moment ago; this one was \
             handed the same new cookies instead of being taken for a theft.",
        ),
        Via::Password => ("password", "your password", "You signed in with your password just now."),
        // `Via::Session`, and whatever a later version adds.
        _ => ("session", "your session cookie", "A live server-side session: nothing was rotated."),
    }
}

/// `duration` in words, rounded down: "4 seconds", "1 minute", "3 hours",
/// "2 days".
pub fn duration_words(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (count, unit) = match secs {
        0..60 => (secs, "second"),
        60..3600 => (secs / 60, "minute"),
        3600..172_800 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// How long before `now` `at` was, in words: "just now", "3 minutes ago".
pub fn ago(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let elapsed = Duration::try_from(now - at).unwrap_or_default();
    if elapsed < Duration::from_secs(60) {
        "just now".to_owned()
    } else {
        format!("{} ago", duration_words(elapsed))
    }
}

/// Until when `user` is fresh with a freshness window of `fresh_for`, if
/// they are at `now`.
pub fn fresh_until(user: &CurrentUser, fresh_for: Duration, now: OffsetDateTime) -> Option<OffsetDateTime> {
    user.is_fresh_at(fresh_for, now).then(|| user.authenticated_at + fresh_for)
}

/// `at` as a clock time, `HH:MM UTC`, in a `<time>` element.
fn clock(at: OffsetDateTime) -> String {
    let at = at.to_offset(expected_core::time::UtcOffset::UTC);
    format!("<time datetime=\"{}\">{:02}:{:02} UTC</time>", escape(&rfc3339(at)), at.hour(), at.minute())
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&expected_core::time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The sentence that says how the user proved who they are on this session,
/// with `id="auth-method"` and `data-method`.
fn method_text(user: &CurrentUser, now: OffsetDateTime) -> String {
    let when = format!(
        "<time datetime=\"{}\">{}</time>",
        escape(&rfc3339(user.authenticated_at)),
        ago(user.authenticated_at, now)
    );
    match user.method {
        AuthMethod::Password => format!(
            "<p id=\"auth-method\" data-method=\"password\">You signed in with your password {when}.</p>"
        ),
        AuthMethod::Remembered => format!(
            "<p id=\"auth-method\" data-method=\"remembered\"><strong>Remembered</strong>: this browser \
             signed you in with its remember-me cookie. You last typed your password here {when}.</p>"
        ),
    }
}

/// The freshness badge and what it opens.
fn freshness_text(user: &CurrentUser, fresh_for: Duration, now: OffsetDateTime) -> String {
    match fresh_until(user, fresh_for, now) {
        Some(until) => format!(
            "<p id=\"freshness\" data-fresh=\"true\"><span class=\"badge fresh\">fresh</span> The \
             <a href=\"{}\">security page</a> is open until {} ({} after your password).</p>",
            paths::SECURITY,
            clock(until),
            duration_words(fresh_for)
        ),
        None => format!(
            "<p id=\"freshness\" data-fresh=\"false\"><span class=\"badge stale\">not fresh</span> The \
             <a href=\"{}\">security page</a> asks for your password first: it opens for {} after you \
             type it.</p>",
            paths::SECURITY,
            duration_words(fresh_for)
        ),
    }
}

/// The home page of a logged-in `user`: who, how this request was
/// authenticated, how and when they proved it (and whether that is fresh
/// within `fresh_for`), their session's theme. `data` is the session data.
pub fn home_page(data: &SessionData, user: &CurrentUser, fresh_for: Duration, now: OffsetDateTime) -> String {
    let frame = Frame::new(data, paths::HOME);
    let (class, label, explanation) = via_text(user.via);
    let mut body = String::new();
    let _ = write!(
        body,
        "<section class=\"card\"><h1>Hello, <span id=\"user\">{}</span></h1>\
         <p>This request was authenticated by \
         <span class=\"badge {class}\" id=\"via\" data-via=\"{class}\">{label}</span></p>\
         <p class=\"muted\">{explanation}</p>{}{}</section>",
        escape(user.username.as_str()),
        method_text(user, now),
        freshness_text(user, fresh_for, now),
    );
    let _ = write!(
        body,
        "<section class=\"card\"><h2>This session</h2><p id=\"theme-note\">Theme: \
         <strong id=\"theme-name\">{}</strong>, kept in this session's data. A visitor's choice \
         comes along when they sign in; a new session (after the browser restarts, say) starts \
         without it.</p></section>",
        frame.theme.as_str()
    );
    body.push_str("<section class=\"card\"><h2>This device</h2>");
    match &user.login {
        Some(serial) => {
            let _ = write!(
                body,
                "<p id=\"remembered\">Remembered: you stay signed in after closing the browser \
                 (login <code>{}</code>).</p>",
                escape(&short_serial(serial))
            );
        }
        None => body.push_str("<p id=\"remembered\">Not remembered: closing the browser signs you out.</p>"),
    }
    let _ = write!(
        body,
        "<div class=\"actions\"><a class=\"button secondary\" href=\"{}\">Devices</a>\
         <a class=\"button secondary\" href=\"{}\">Security</a>\
         <form class=\"inline\" method=\"post\" action=\"{}\">{csrf}<button class=\"secondary\">Log out</button></form>\
         <form class=\"inline\" method=\"post\" action=\"{}\">{csrf}<button class=\"danger\">Log out everywhere</button></form>\
         </div></section>",
        paths::DEVICES,
        paths::SECURITY,
        paths::LOGOUT,
        paths::LOGOUT_EVERYWHERE,
        csrf = frame.csrf,
    );
    layout("Home", &frame, Some(&user.username), &body)
}

/// The page asking `username` for their password again before `next` (a
/// page that needs a password typed within `fresh_for`; a same-site path,
/// see [`login_page`]); `wrong` when the last try was wrong.
pub fn confirm_password_page(
    data: &SessionData,
    username: &Username,
    next: &str,
    fresh_for: Duration,
    wrong: bool,
) -> String {
    let frame = Frame::new(data, paths::with_next(paths::CONFIRM_PASSWORD, next));
    let mut body = String::from("<div class=\"narrow\">");
    if wrong {
        body.push_str(
            "<section class=\"alert warn\" id=\"confirm-error\" role=\"alert\">That is not your \
             password.</section>",
        );
    }
    let _ = write!(
        body,
        "<section class=\"card\"><h1>Confirm your password</h1>\
         <p>That page needs your password, typed on this device in the last {}. A remember-me \
         sign-in never counts, nor does an older password.</p>\
         <form id=\"confirm-form\" method=\"post\" action=\"{}\">{csrf}{}\
         <p>Signed in as <strong>{}</strong>.</p>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus>\
         <div class=\"actions\"><button type=\"submit\" id=\"confirm\">Confirm</button>\
         <a class=\"button secondary\" href=\"{}\">Cancel</a></div></form></section></div>",
        duration_words(fresh_for),
        paths::CONFIRM_PASSWORD,
        next_field(next),
        escape(username.as_str()),
        paths::HOME,
        csrf = frame.csrf,
    );
    layout("Confirm your password", &frame, Some(username), &body)
}

/// The security page, for a `user` who typed their password within
/// `fresh_for` (the `FreshLogin` guard saw to it).
pub fn security_page(
    data: &SessionData,
    user: &CurrentUser,
    fresh_for: Duration,
    now: OffsetDateTime,
) -> String {
    let frame = Frame::new(data, paths::SECURITY);
    let until = user.authenticated_at + fresh_for;
    let mut body = String::new();
    let _ = write!(
        body,
        "<section class=\"card\" id=\"security\"><h1>Security</h1>\
         <p>A page for what a stolen remember-me cookie must not reach: it opens only within {} of \
         typing your password on this session, and asks for it again after.</p>\
         <dl class=\"facts\">\
         <dt>Password typed</dt><dd id=\"password-typed\">{} (at {})</dd>\
         <dt>Open until</dt><dd id=\"open-until\">{}</dd>\
         <dt>This device</dt><dd>{}</dd>\
         <dt>Two-step sign-in</dt><dd>off <span class=\"muted\">(not in this demo)</span></dd>\
         </dl>\
         <div class=\"actions\"><a class=\"button secondary\" href=\"{}\">Devices</a>\
         <form class=\"inline\" method=\"post\" action=\"{}\">{csrf}<button class=\"danger\">Log out everywhere</button></form>\
         </div></section>",
        duration_words(fresh_for),
        ago(user.authenticated_at, now),
        clock(user.authenticated_at),
        clock(until),
        if user.login.is_some() { "remembered" } else { "not remembered" },
        paths::DEVICES,
        paths::LOGOUT_EVERYWHERE,
        csrf = frame.csrf,
    );
    layout("Security", &frame, Some(&user.username), &body)
}

/// A short name for a user agent: browser and platform, like
/// "Firefox on Windows" ("Unknown browser" when there is none).
pub fn describe_agent(agent: &str) -> String {
    if agent.trim().is_empty() {
        return "Unknown browser".to_owned();
    }
    let version = |name: &str| {
        agent.split(name).nth(1).and_then(|rest| rest.strip_prefix('/')).map(|rest| {
            let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
            format!("{} {major}", name.trim_end_matches('/'))
        })
    };
    let browser = ["Edg", "Firefox", "HeadlessChrome", "Chromium", "Chrome"]
        .iter()
        .find_map(|name| version(name))
        .map(|found| found.replace("Edg ", "Edge "))
        .or_else(|| agent.contains("Safari/").then(|| "Safari".to_owned()));
    let platform = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(token, _)| agent.contains(token))
    .map(|(_, name)| *name);
    match (browser, platform) {
        (Some(browser), Some(platform)) => format!("{browser} on {platform}"),
        (Some(browser), None) => browser,
        _ => agent.split_whitespace().next().unwrap_or(agent).chars().take(40).collect(),
    }
}

fn short_serial(serial: &Serial) -> String {
    serial.to_string().chars().take(8).collect()
}

fn when(at: OffsetDateTime) -> String {
    let at = at.to_offset(expected_core::time::UtcOffset::UTC);
    let shown = format!(
        "{:04}-{:02}-{:02}<br><span class=\"clock\">{:02}:{:02}:{:02} UTC</span>",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    format!("<time datetime=\"{}\">{}</time>", escape(&rfc3339(at)), shown)
}

/// The devices page: every remembered login of the user, with a revoke
/// button each, "sign out other devices" and "log out everywhere". `ended`
/// is what "sign out other devices" just ended, to say so.
pub fn devices_page(
    data: &SessionData,
    username: &Username,
    devices: &[Device],
    ended: Option<LogoutOthersResponse>,
) -> String {
    let frame = Frame::new(data, paths::DEVICES);
    let mut body = String::new();
    if let Some(ended) = ended {
        let _ = write!(
            body,
            "<section class=\"alert ok\" id=\"others-ended\" role=\"status\">Signed out everywhere else: \
             {} and {} ended. This device stays signed in.</section>",
            count(ended.logins, "remembered device"),
            count(ended.sessions, "session"),
        );
    }
    body.push_str(
        "<section class=\"card\"><h1>Your devices</h1>\
         <p class=\"muted\">Every browser where you ticked “remember me”. Revoking one signs it out \
         at once, wherever it is.</p>",
    );
    if devices.is_empty() {
        body.push_str("<p id=\"no-devices\">No remembered device.</p>");
    } else {
        body.push_str(
            "<table id=\"devices\"><colgroup><col><col class=\"ip\"><col class=\"when\">\
             <col class=\"when\"><col class=\"action\"></colgroup>\
             <thead><tr><th>Device</th><th>IP</th><th>Signed in</th>\
             <th>Last used</th><th></th></tr></thead><tbody>",
        );
        for device in devices {
            let serial = device.serial.to_string();
            let agent = device.user_agent.as_deref().unwrap_or("");
            let ip = device.ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
            let this = if device.current { " <span class=\"badge\">this device</span>" } else { "" };
            let _ = write!(
                body,
                "<tr data-serial=\"{serial_attr}\"{class}><td class=\"agent\"><strong>{summary}</strong>{this}\
                 <div class=\"muted ua\" title=\"{agent}\">{agent}</div>\
                 <div class=\"muted\">login <code>{short}</code></div></td>\
                 <td class=\"ip\">{ip}</td><td>{created}</td><td>{used}</td>\
                 <td><form method=\"post\" action=\"{action}\">{csrf}\
                 <button class=\"danger small\" data-revoke=\"{serial_attr}\">Revoke</button></form></td></tr>",
                serial_attr = escape(&serial),
                class = if device.current { " class=\"current\"" } else { "" },
                summary = escape(&describe_agent(agent)),
                agent = escape(agent),
                short = escape(&short_serial(&device.serial)),
                ip = escape(&ip),
                created = when(device.created_at),
                used = when(device.last_used_at),
                action = escape(&paths::revoke(&serial)),
                csrf = frame.csrf,
            );
        }
        body.push_str("</tbody></table>");
    }
    if !devices.iter().any(|device| device.current) {
        body.push_str(
            "<p class=\"muted\" id=\"not-remembered\">This browser signed in without “remember me”, \
             so it is not listed.</p>",
        );
    }
    let _ = write!(
        body,
        "<div class=\"actions\"><form method=\"post\" action=\"{}\">{csrf}\
         <button class=\"secondary\" id=\"logout-others\">Sign out other devices</button></form>\
         <form method=\"post\" action=\"{}\">{csrf}\
         <button class=\"danger\" id=\"logout-everywhere\">Log out everywhere</button></form></div>\
         <p class=\"muted\">“Sign out other devices” ends every other session and remembered login \
         of yours, and keeps this one: what to do after changing a password.</p></section>",
        paths::LOGOUT_OTHERS,
        paths::LOGOUT_EVERYWHERE,
        csrf = frame.csrf,
    );
    layout("Devices", &frame, Some(username), &body)
}

/// "1 session", "2 sessions".
fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The demos' error pages, the same in every framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorPage {
    /// 503: the store cannot be reached.
    StoreDown,
    /// 400: a form that cannot be read.
    BadForm,
    /// 404: a device (login) that is not the user's.
    NoSuchDevice,
    /// 404: no page at that path.
    NotFound,
    /// 401: signed out while the request ran (a remote logout, say).
    SignedOut,
    /// 413: the session holds too much data to take more.
    SessionFull,
    /// 403: a logged-in user's form without their session's CSRF token (a
    /// form from before the session changed, or from another site).
    FormExpired,
    /// 429: too many failed password attempts (send `Retry-After` with it).
    TooManyAttempts,
    /// 500: anything else.
    Internal,
}

impl ErrorPage {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Self::StoreDown => 503,
            Self::BadForm => 400,
            Self::NoSuchDevice | Self::NotFound => 404,
            Self::SignedOut => 401,
            Self::SessionFull => 413,
            Self::FormExpired => 403,
            Self::TooManyAttempts => 429,
            Self::Internal => 500,
        }
    }

    /// The page's title and message.
    pub fn text(self) -> (&'static str, &'static str) {
        match self {
            Self::StoreDown => (
                "Temporarily unavailable",
                "We cannot check who you are right now. Nothing was changed: try again in a moment.",
            ),
            Self::BadForm => ("Bad request", "That form could not be read."),
            Self::NoSuchDevice => ("No such device", "That device is not one of yours."),
            Self::NotFound => ("Not found", "There is no page here."),
            Self::SignedOut => ("Signed out", "You were signed out meanwhile: sign in again."),
            Self::SessionFull => ("Too much data", "Your session holds too much data to take more."),
            Self::FormExpired => (
                "This form has expired",
                "Your session changed since this page was shown (or the form came from another site), \
                 so nothing was done. Go back, reload the page and try again.",
            ),
            Self::TooManyAttempts => (
                "Too many attempts",
                "Too many wrong passwords were tried from here or for this account. Wait a few minutes \
                 and try again.",
            ),
            Self::Internal => ("Something went wrong", "That did not work. Try again in a moment."),
        }
    }

    /// The page.
    pub fn render(self) -> String {
        let (title, message) = self.text();
        error_page(title, message)
    }
}

impl From<StoreError> for ErrorPage {
    fn from(_: StoreError) -> Self {
        // The engine has logged it.
        Self::StoreDown
    }
}

impl From<AuthError> for ErrorPage {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Store(_) => Self::StoreDown,
            AuthError::Unauthenticated(Unauthenticated::NotLoggedIn | Unauthenticated::UnexpectedToken) => {
                Self::SignedOut
            }
            _ => Self::Internal,
        }
    }
}

impl From<SessionError> for ErrorPage {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Store(_) => Self::StoreDown,
            SessionError::TooLarge { .. } => Self::SessionFull,
            _ => Self::Internal,
        }
    }
}

impl From<EngineError> for ErrorPage {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Store(_) => Self::StoreDown,
            _ => Self::Internal,
        }
    }
}

/// A page for an error status: the store is down, no such login, …
pub fn error_page(title: &str, message: &str) -> String {
    let body = format!(
        "<section class=\"card narrow\"><h1>{}</h1><p>{}</p><p><a href=\"{}\">Back to the start</a></p></section>",
        escape(title),
        escape(message),
        paths::HOME
    );
    layout(title, &Frame::plain(), None, &body)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn user(
        name: &str,
        via: Via,
        method: AuthMethod,
        at: OffsetDateTime,
    ) -> Result<CurrentUser, Box<dyn std::error::Error>> {
        Ok(CurrentUser { username: Username::new(name)?, login: None, via, method, authenticated_at: at })
    }

    fn device(user_agent: Option<&str>) -> Device {
        let at = OffsetDateTime::UNIX_EPOCH;
        Device {
            serial: Serial::from_bytes([7; 16]),
            created_at: at,
            last_used_at: at,
            authenticated_at: at,
            ip: Some(IpAddr::from([127, 0, 0, 1])),
            user_agent: user_agent.map(str::to_owned),
            current: true,
        }
    }

    fn dark() -> SessionData {
        let mut data = SessionData::new();
        data.insert(Theme::SESSION_KEY.to_owned(), "dark".into());
        data
    }

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x">zoë.o'brien & co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;zoë.o&#39;brien &amp; co&lt;/a&gt;"
        );
    }

    #[test]
    fn user_agents_are_summarized() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      HeadlessChrome/156.0.0.0 Safari/537.36";
        assert_eq!(describe_agent(chrome), "HeadlessChrome 156 on Linux");
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0";
        assert_eq!(describe_agent(firefox), "Firefox 140 on Windows");
        let edge = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) \
                    Chrome/140.0.0.0 Safari/537.36 Edg/140.0.0.0";
        assert_eq!(describe_agent(edge), "Edge 140 on macOS");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1";
        assert_eq!(describe_agent(safari), "Safari on iPhone");
        assert_eq!(describe_agent("curl/8.5.0"), "curl/8.5.0");
        assert_eq!(describe_agent(""), "Unknown browser");
    }

    #[test]
    fn user_text_is_escaped_everywhere() -> Result<(), Box<dyn std::error::Error>> {
        let evil = user(
            "<script>alert('x')</script>",
            Via::Session,
            AuthMethod::Password,
            OffsetDateTime::UNIX_EPOCH,
        )?;
        let data = SessionData::new();
        let fresh = Duration::from_secs(600);
        let now = OffsetDateTime::UNIX_EPOCH;
        for page in [
            home_page(&data, &evil, fresh, now),
            devices_page(&data, &evil.username, &[device(Some("<img src=x onerror=alert(1)>"))], None),
            login_page(&data, "\"><script>", Some(Alert::Theft), "/\"><script>"),
            confirm_password_page(&data, &evil.username, "/<script>", fresh, true),
            security_page(&data, &evil, fresh, now),
        ] {
            assert!(!page.contains("<script>"), "{page}");
            assert!(!page.contains("<img"), "{page}");
        }
        Ok(())
    }

    #[test]
    fn pages_carry_the_ids_the_browser_test_reads() -> Result<(), Box<dyn std::error::Error>> {
        let data = SessionData::new();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(86_400);
        let fresh = Duration::from_secs(600);
        assert!(login_page(&data, "", Some(Alert::Theft), "/").contains("id=\"theft-alert\""));
        assert!(login_page(&data, "", None, "/").contains("id=\"login-form\""));
        let cookie =
            user("alice", Via::CookieLogin, AuthMethod::Remembered, now - Duration::from_secs(2 * 86_400))?;
        let home = home_page(&data, &cookie, fresh, now);
        assert!(home.contains("data-via=\"cookie\""), "{home}");
        assert!(home.contains("data-method=\"remembered\""), "{home}");
        assert!(home.contains("2 days ago"), "{home}");
        assert!(home.contains("data-fresh=\"false\""), "{home}");
        let typed = user("alice", Via::Session, AuthMethod::Password, now - Duration::from_secs(3 * 60 + 5))?;
        let home = home_page(&data, &typed, fresh, now);
        assert!(home.contains("You signed in with your password <time datetime=\"1970-01-01T23:56:55Z\">3 minutes ago</time>"), "{home}");
        assert!(home.contains("data-fresh=\"true\""), "{home}");
        assert!(home.contains("00:06 UTC"), "open until ten minutes after the password: {home}");
        let devices = devices_page(&data, &typed.username, &[device(None)], None);
        assert!(devices.contains("class=\"current\""), "{devices}");
        assert!(devices.contains("id=\"logout-others\""), "{devices}");
        assert!(devices.contains(
            "<time datetime=\"1970-01-01T00:00:00Z\">1970-01-01<br><span class=\"clock\">00:00:00 UTC</span></time>"
        ));
        let ended =
            devices_page(&data, &typed.username, &[], Some(LogoutOthersResponse { logins: 1, sessions: 2 }));
        assert!(ended.contains("1 remembered device and 2 sessions ended"), "{ended}");
        let confirm = confirm_password_page(&data, &typed.username, "/security", fresh, true);
        assert!(
            confirm.contains("id=\"confirm-form\"") && confirm.contains("id=\"confirm-error\""),
            "{confirm}"
        );
        assert!(confirm.contains("name=\"next\" value=\"/security\""), "{confirm}");
        assert!(security_page(&data, &typed, fresh, now).contains("id=\"security\""));
        Ok(())
    }

    /// Every POST form of a page carries the session's CSRF token, escaped,
    /// when the session has one, and none does when it has none.
    #[test]
    fn every_form_carries_the_csrf_token() -> Result<(), Box<dyn std::error::Error>> {
        let mut data = SessionData::new();
        data.insert(expected_core::csrf::SESSION_KEY.to_owned(), "tok\"en".into());
        let fresh = Duration::from_secs(600);
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut alice = user("alice", Via::Session, AuthMethod::Password, now)?;
        alice.login = Some(Serial::from_bytes([7; 16]));
        let field = "<input type=\"hidden\" name=\"csrf_token\" value=\"tok&quot;en\">";
        for page in [
            home_page(&data, &alice, fresh, now),
            devices_page(&data, &alice.username, &[device(None), device(Some("x"))], None),
            login_page(&data, "", None, "/"),
            confirm_password_page(&data, &alice.username, "/security", fresh, false),
            security_page(&data, &alice, fresh, now),
        ] {
            let forms = page.matches("<form ").count();
            assert!(forms >= 2, "{page}");
            assert_eq!(page.matches(field).count(), forms, "one token per form: {page}");
            for form in page.split("<form ").skip(1) {
                assert!(form.split("</form>").next().is_some_and(|inner| inner.contains(field)), "{form}");
            }
        }
        let without = home_page(&SessionData::new(), &alice, fresh, now);
        assert!(!without.contains("csrf_token"), "no token in the session, none in the page");
        Ok(())
    }

    #[test]
    fn the_theme_comes_from_the_session() {
        assert_eq!(Theme::of(&SessionData::new()), Theme::Light);
        assert_eq!(Theme::of(&dark()), Theme::Dark);
        let mut odd = SessionData::new();
        odd.insert(Theme::SESSION_KEY.to_owned(), 42.into());
        assert_eq!(Theme::of(&odd), Theme::Light, "a value the JSON API put there");
        let page = login_page(&dark(), "", None, "/security");
        assert!(page.contains("<body data-theme=\"dark\">"), "{page}");
        assert!(page.contains("id=\"theme-dark\" aria-pressed=\"true\""), "{page}");
        assert!(
            page.contains("name=\"next\" value=\"/login?next=%2Fsecurity\""),
            "the theme form comes back: {page}"
        );
        assert!(ErrorPage::StoreDown.render().contains("data-theme=\"light\""));
    }

    #[test]
    fn next_is_one_query_value() {
        let location = paths::with_next(paths::LOGIN, "/security?x=1&y");
        assert_eq!(location, "/login?next=%2Fsecurity%3Fx%3D1%26y");
        let query = location.split_once('?').map(|(_, query)| query);
        assert_eq!(query_param(query, "next").as_deref(), Some("/security?x=1&y"));
        assert_eq!(query_param(Some("a=1&next=%2Fa+b%zz&next=/x"), "next").as_deref(), Some("/a b%zz"));
        assert_eq!(query_param(Some("nextx=1&next"), "next"), None);
        assert_eq!(query_param(None, "next"), None);
    }

    #[test]
    fn durations_read_as_words() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(10 * 86_400);
        for (secs, words) in [
            (0, "just now"),
            (59, "just now"),
            (60, "1 minute ago"),
            (3 * 60 + 59, "3 minutes ago"),
            (3600, "1 hour ago"),
            (47 * 3600, "47 hours ago"),
            (2 * 86_400, "2 days ago"),
        ] {
            assert_eq!(ago(now - Duration::from_secs(secs), now), words);
        }
        assert_eq!(ago(now + Duration::from_secs(5), now), "just now", "a clock a little ahead");
        assert_eq!(duration_words(Duration::from_secs(600)), "10 minutes");
        assert_eq!(duration_words(Duration::from_secs(4)), "4 seconds");
        assert_eq!(duration_words(Duration::from_secs(1)), "1 second");
    }
}
