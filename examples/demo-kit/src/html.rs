//! The demo's pages: small, server-rendered, inline CSS, no script. Every
//! piece of text a user or client controls (usernames, user agents, the
//! username typed into the form) goes through [`escape`].
//!
//! Element ids the browser test reads: `user` and `via` (home), `login-form`,
//! `theft-alert`, `login-error`, `devices` (the table, one `tr` per login
//! with `data-serial`, the current one with class `current`).

use std::fmt::Write as _;

use expected_core::time::OffsetDateTime;
use expected_core::{Device, Serial, Username, Via};

use crate::accounts::DEMO_USERS;

/// The pages' paths. State changes are POSTs: SameSite=Lax cookies still go
/// along with top-level GET navigations from other sites.
pub mod paths {
    /// `GET`: home, or the login form.
    pub const HOME: &str = "/";
    /// `GET`: the login form; `POST`: log in (form fields `username`,
    /// `password`, `remember=on`).
    pub const LOGIN: &str = "/login";
    /// `GET`: the devices page.
    pub const DEVICES: &str = "/devices";
    /// `POST`: revoke one login; the route pattern (axum and actix alike).
    pub const REVOKE_ROUTE: &str = "/devices/{serial}/revoke";
    /// `POST`: log this device out.
    pub const LOGOUT: &str = "/logout";
    /// `POST`: log out every device.
    pub const LOGOUT_EVERYWHERE: &str = "/logout-everywhere";

    /// The path that revokes `serial`.
    pub fn revoke(serial: &str) -> String {
        REVOKE_ROUTE.replace("{serial}", serial)
    }
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

const STYLE: &str = "
:root { color-scheme: light; --ink: #1d2433; --muted: #5b6478; --line: #dde2ec; --accent: #2f5bd3;
  --danger: #b3261e; --bg: #f4f6fa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 16px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', sans-serif; }
header { background: #fff; border-bottom: 1px solid var(--line); }
header .bar { max-width: 52rem; margin: 0 auto; padding: .75rem 1.25rem; display: flex; gap: 1rem;
  align-items: center; }
header .brand { font-weight: 700; color: var(--ink); text-decoration: none; margin-right: auto; }
header nav a { color: var(--accent); text-decoration: none; margin-left: 1rem; }
main { max-width: 52rem; margin: 2rem auto; padding: 0 1.25rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: .75rem; padding: 1.5rem;
  margin-bottom: 1.25rem; }
.narrow { max-width: 26rem; margin-left: auto; margin-right: auto; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
h2 { font-size: 1.1rem; margin: 0 0 .75rem; }
p { margin: .5rem 0; }
.muted { color: var(--muted); font-size: .9rem; }
label { display: block; margin: .75rem 0 .25rem; font-weight: 600; }
label.check { display: flex; gap: .5rem; align-items: center; font-weight: 400; }
input[type=text], input[type=password] { width: 100%; padding: .55rem .7rem; font: inherit;
  border: 1px solid var(--line); border-radius: .5rem; }
button, a.button { font: inherit; padding: .5rem 1rem; border-radius: .5rem; border: 1px solid var(--accent);
  background: var(--accent); color: #fff; cursor: pointer; display: inline-block; text-decoration: none;
  line-height: 1.5; }
button.secondary, a.button.secondary { background: #fff; color: var(--accent); }
button.danger { background: #fff; color: var(--danger); border-color: var(--danger); }
button.small { padding: .25rem .6rem; font-size: .875rem; }
form.inline { display: inline; }
.actions { display: flex; gap: .75rem; flex-wrap: wrap; margin-top: 1rem; }
.alert { border-radius: .75rem; padding: 1rem 1.25rem; margin-bottom: 1.25rem; border: 1px solid; }
.alert h2 { margin-bottom: .25rem; }
.alert.danger { background: #fdecea; border-color: #f3b8b3; color: #5f1410; }
.alert.warn { background: #fff6e0; border-color: #f0d28a; color: #5a4100; }
.badge { display: inline-block; padding: .1rem .5rem; border-radius: 999px; font-size: .8rem;
  font-weight: 600; background: #e6ecfb; color: var(--accent); }
.badge.cookie { background: #e5f5ea; color: #1e6b3a; }
.badge.grace { background: #fff1d6; color: #7a5200; }
table { width: 100%; border-collapse: collapse; font-size: .92rem; table-layout: fixed; }
col.ip { width: 8.5rem; } col.when { width: 7.5rem; } col.action { width: 5.5rem; }
th, td { text-align: left; padding: .6rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; }
tr.current td { background: #f5f8ff; }
td.agent .ua { font-size: .78rem; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
td.ip { overflow-wrap: anywhere; }
td time .clock { color: var(--muted); font-size: .85rem; }
code { font-size: .85rem; background: #eef1f6; padding: .05rem .3rem; border-radius: .25rem; }
ul.accounts { margin: .25rem 0 0; padding-left: 1.2rem; }
";

/// A whole page around `body`. `user` adds the navigation and log-out
/// button of a logged-in page.
fn layout(title: &str, user: Option<&Username>, body: &str) -> String {
    let mut page = String::with_capacity(body.len() + STYLE.len() + 1024);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · expected demo</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header><div class=\"bar\">\
         <a class=\"brand\" href=\"{}\">expected · remember-me demo</a>",
        escape(title),
        paths::HOME
    );
    if let Some(user) = user {
        let _ = write!(
            page,
            "<nav><a href=\"{}\">Home</a><a href=\"{}\">Devices</a></nav>\
             <span class=\"muted\">{}</span>\
             <form class=\"inline\" method=\"post\" action=\"{}\"><button class=\"secondary small\">Log out</button></form>",
            paths::HOME,
            paths::DEVICES,
            escape(user.as_str()),
            paths::LOGOUT
        );
    }
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

/// The login form, `username` filled in, with an optional alert above it.
pub fn login_page(username: &str, alert: Option<Alert>) -> String {
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
    let _ = write!(
        body,
        "<section class=\"card\"><h1>Sign in</h1>\
         <form id=\"login-form\" method=\"post\" action=\"{}\">\
         <label for=\"username\">Username</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <label class=\"check\"><input type=\"checkbox\" id=\"remember\" name=\"remember\" value=\"on\"> \
         Remember me on this device</label>\
         <div class=\"actions\"><button type=\"submit\" id=\"sign-in\">Sign in</button></div>\
         </form></section>",
        paths::LOGIN,
        escape(username)
    );
    body.push_str("<section class=\"card muted\"><p>Demo accounts:</p><ul class=\"accounts\">");
    for (name, password) in DEMO_USERS {
        let _ = write!(body, "<li><code>{}</code> / <code>{}</code></li>", escape(name), escape(password));
    }
    body.push_str("</ul></section></div>");
    layout("Sign in", None, &body)
}

fn via_text(via: Option<Via>) -> (&'static str, &'static str, &'static str) {
    match via {
        Some(Via::Session) => {
            ("session", "your session cookie", "A live server-side session: nothing was rotated.")
        }
        Some(Via::CookieLogin) => (
            "cookie",
            "your remember-me cookie",
            "Your session had ended, so the remember-me cookie signed you back in; its token was \
             replaced and a new session opened.",
        ),
        Some(Via::Grace) => (
            "grace",
            "a just-replaced remember-me cookie (grace window)",
            "Another request from this browser replaced the cookie a moment ago; this one was \
             handed the same new cookies instead of being taken for a theft.",
        ),
        Some(Via::Password) => ("password", "your password", "You signed in with your password just now."),
        None => ("none", "nothing", "This request is not signed in."),
    }
}

/// The home page of a logged-in user: who, and how this request was
/// authenticated. `login` is this device's remembered login, if any.
pub fn home_page(username: &Username, via: Option<Via>, login: Option<&Serial>) -> String {
    let (class, label, explanation) = via_text(via);
    let mut body = String::new();
    let _ = write!(
        body,
        "<section class=\"card\"><h1>Hello, <span id=\"user\">{}</span></h1>\
         <p>This request was authenticated by \
         <span class=\"badge {class}\" id=\"via\" data-via=\"{class}\">{label}</span></p>\
         <p class=\"muted\">{explanation}</p></section>",
        escape(username.as_str())
    );
    body.push_str("<section class=\"card\"><h2>This device</h2>");
    match login {
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
         <form class=\"inline\" method=\"post\" action=\"{}\"><button class=\"secondary\">Log out</button></form>\
         <form class=\"inline\" method=\"post\" action=\"{}\"><button class=\"danger\">Log out everywhere</button></form>\
         </div></section>",
        paths::DEVICES,
        paths::LOGOUT,
        paths::LOGOUT_EVERYWHERE
    );
    layout("Home", Some(username), &body)
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
    let rfc3339 =
        at.format(&expected_core::time::format_description::well_known::Rfc3339).unwrap_or_default();
    let shown = format!(
        "{:04}-{:02}-{:02}<br><span class=\"clock\">{:02}:{:02}:{:02} UTC</span>",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    format!("<time datetime=\"{}\">{}</time>", escape(&rfc3339), shown)
}

/// The devices page: every remembered login of the user, with a revoke
/// button each, and "log out everywhere".
pub fn devices_page(username: &Username, devices: &[Device]) -> String {
    let mut body = String::new();
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
                 <td><form method=\"post\" action=\"{action}\">\
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
        "<div class=\"actions\"><form method=\"post\" action=\"{}\">\
         <button class=\"danger\" id=\"logout-everywhere\">Log out everywhere</button></form></div></section>",
        paths::LOGOUT_EVERYWHERE
    );
    layout("Devices", Some(username), &body)
}

/// The demos' error pages, the same in every framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPage {
    /// 503: the store cannot be reached.
    StoreDown,
    /// 400: a form that cannot be read.
    BadForm,
    /// 404: a device (login) that is not the user's.
    NoSuchDevice,
    /// 404: no page at that path.
    NotFound,
}

impl ErrorPage {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Self::StoreDown => 503,
            Self::BadForm => 400,
            Self::NoSuchDevice | Self::NotFound => 404,
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
        }
    }

    /// The page.
    pub fn render(self) -> String {
        let (title, message) = self.text();
        error_page(title, message)
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
    layout(title, None, &body)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

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
        let evil = Username::new("<script>alert('x')</script>")?;
        let at = OffsetDateTime::UNIX_EPOCH;
        let device = Device {
            serial: Serial::from_bytes([7; 16]),
            created_at: at,
            last_used_at: at,
            ip: Some(IpAddr::from([127, 0, 0, 1])),
            user_agent: Some("<img src=x onerror=alert(1)>".to_owned()),
            current: true,
        };
        for page in [
            home_page(&evil, Some(Via::Session), None),
            devices_page(&evil, &[device]),
            login_page("\"><script>", Some(Alert::Theft)),
        ] {
            assert!(!page.contains("<script>"), "{page}");
            assert!(!page.contains("<img"), "{page}");
        }
        Ok(())
    }

    #[test]
    fn pages_carry_the_ids_the_browser_test_reads() -> Result<(), Box<dyn std::error::Error>> {
        let alice = Username::new("alice")?;
        assert!(login_page("", Some(Alert::Theft)).contains("id=\"theft-alert\""));
        assert!(login_page("", None).contains("id=\"login-form\""));
        let home = home_page(&alice, Some(Via::CookieLogin), None);
        assert!(home.contains("data-via=\"cookie\""), "{home}");
        let at = OffsetDateTime::UNIX_EPOCH;
        let device = Device {
            serial: Serial::from_bytes([1; 16]),
            created_at: at,
            last_used_at: at,
            ip: None,
            user_agent: None,
            current: true,
        };
        let devices = devices_page(&alice, &[device]);
        assert!(devices.contains("class=\"current\""), "{devices}");
        assert!(devices.contains(
            "<time datetime=\"1970-01-01T00:00:00Z\">1970-01-01<br><span class=\"clock\">00:00:00 UTC</span></time>"
        ));
        Ok(())
    }
}
