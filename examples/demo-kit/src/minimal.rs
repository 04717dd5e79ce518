//! The walk the minimal examples' tests take (feature `minimal`):
//! `examples/minimal-axum` and `examples/minimal-actix` serve the same three
//! routes, and [`walk`] starts one's binary and goes through them as a
//! browser would, over plain HTTP/1.1 on a loopback socket (no client
//! library: the example's test needs nothing but this crate).
//!
//! The routes: `POST /login` (form `username`, `password`, `remember`; 200,
//! or 401 for anything but `alice` / `alice-secret`), `GET /me` (200 `hello
//! alice`, or 401), `POST /logout` (200).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The cookie names of `Config::default()`, which the examples use.
const SESSION: &str = "session";
const REMEMBER_ME: &str = "remember_me";

/// The example's process, killed when the walk ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One answer: the status, the `Set-Cookie` headers, the body.
#[derive(Debug)]
struct Reply {
    status: u16,
    set_cookies: Vec<String>,
    body: String,
}

/// A browser's cookies for the site: name to value.
type Jar = BTreeMap<String, String>;

/// Sends one request with `jar`'s cookies (and `form` as the body of a
/// POST), and reads the whole answer (`Connection: close`).
fn send(addr: SocketAddr, method: &str, path: &str, jar: &Jar, form: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let timeout = Some(Duration::from_secs(30));
    stream.set_read_timeout(timeout).and_then(|()| stream.set_write_timeout(timeout)).expect("timeouts");
    let cookies = jar.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ");
    let body = form.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !cookies.is_empty() {
        request.push_str(&format!("Cookie: {cookies}\r\n"));
    }
    if form.is_some() {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|code| code.parse().ok());
    let set_cookies = lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.trim().to_owned())
        .collect();
    Reply { status: status.unwrap_or(0), set_cookies, body: body.to_owned() }
}

/// What `reply` does to `jar`, as a browser applies it: a `Max-Age=0` or
/// empty value removes the cookie, anything else sets it.
fn apply(jar: &mut Jar, reply: &Reply) {
    for header in &reply.set_cookies {
        let (pair, attributes) = header.split_once(';').unwrap_or((header, ""));
        let Some((name, value)) = pair.split_once('=') else { continue };
        let removed = value.is_empty() || attributes.to_ascii_lowercase().contains("max-age=0");
        if removed {
            jar.remove(name.trim());
        } else {
            jar.insert(name.trim().to_owned(), value.to_owned());
        }
    }
}

/// Starts `binary` on an ephemeral port (`EXPECTED_ADDR=127.0.0.1:0`) and
/// reads the address it prints (`listening on http://ADDR`).
fn start(binary: &str) -> (Server, SocketAddr) {
    let mut child = Command::new(binary)
        .env("EXPECTED_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let stdout = child.stdout.take().expect("the example's stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("the example's first line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("{binary} printed {line:?}, not `listening on http://ADDR`"));
    (server, addr)
}

/// Starts the minimal example `binary` and walks through it: nobody is
/// logged in; a wrong password gets 401 and no cookie; alice's login with
/// "remember me" sets both cookies and opens `/me`; after a browser restart
/// (the session cookie gone) the remember-me cookie logs her back in and is
/// rotated; logout clears both cookies, and the cookies from before it no
/// longer log anybody in: the server forgot them, the browser did not just
/// drop them. Panics at the first step that goes otherwise.
pub fn walk(binary: &str) {
    let (_server, addr) = start(binary);
    let mut browser = Jar::new();

    let visitor = send(addr, "GET", "/me", &browser, None);
    assert_eq!(visitor.status, 401, "nobody is logged in yet: {visitor:?}");

    let wrong = send(addr, "POST", "/login", &browser, Some("username=alice&password=guess&remember=on"));
    assert_eq!(wrong.status, 401, "a wrong password: {wrong:?}");
    assert!(wrong.set_cookies.is_empty(), "a wrong password sets no cookie: {wrong:?}");

    let form = "username=alice&password=alice-secret&remember=on";
    let login = send(addr, "POST", "/login", &browser, Some(form));
    assert_eq!(login.status, 200, "alice logs in: {login:?}");
    apply(&mut browser, &login);
    assert!(browser.contains_key(SESSION) && browser.contains_key(REMEMBER_ME), "both cookies: {login:?}");

    let me = send(addr, "GET", "/me", &browser, None);
    assert_eq!((me.status, me.body.as_str()), (200, "hello alice"), "the protected route: {me:?}");

    // The browser restarts: the session cookie is gone, the remember-me one stays.
    browser.remove(SESSION);
    let before_restart = browser.clone();
    let back = send(addr, "GET", "/me", &browser, None);
    assert_eq!((back.status, back.body.as_str()), (200, "hello alice"), "remember-me logs in: {back:?}");
    apply(&mut browser, &back);
    assert!(browser.contains_key(SESSION), "a new session cookie: {back:?}");
    assert_ne!(browser.get(REMEMBER_ME), before_restart.get(REMEMBER_ME), "the token rotated: {back:?}");

    let kept = browser.clone();
    let logout = send(addr, "POST", "/logout", &browser, None);
    assert_eq!(logout.status, 200, "logout: {logout:?}");
    apply(&mut browser, &logout);
    assert!(browser.is_empty(), "logout clears both cookies: {logout:?} left {browser:?}");
    let after = send(addr, "GET", "/me", &kept, None);
    assert_eq!(after.status, 401, "the cookies from before logout log nobody in: {after:?}");
    let remembered = Jar::from([(REMEMBER_ME.to_owned(), kept[REMEMBER_ME].clone())]);
    let after = send(addr, "GET", "/me", &remembered, None);
    assert_eq!(after.status, 401, "nor does the remember-me cookie alone: {after:?}");
}
