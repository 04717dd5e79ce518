//! `expected`'s remember-me logins over a plain TCP line protocol: no HTTP,
//! no cookies on the wire, the same engine.
//!
//! The [`Expected`] engine speaks in cookie *values*: the auth cookie's value
//! is a bearer credential like any other, and the session cookie's value names
//! a server-side session. This server hands the auth value to the client as
//! its **credential**, and keeps the session value on the connection (the
//! connection is the "browser" that holds the session cookie).
//!
//! Run it with `cargo run -p expected-line-server` (listens on
//! `127.0.0.1:4040`, or on the address in `EXPECTED_LINE_ADDR`) and talk to it
//! with `nc 127.0.0.1 4040`; or watch the scripted conversation with
//! `cargo run -p expected-line-server -- --demo`.
//!
//! # Protocol
//!
//! The client sends one command per line (UTF-8, ended by `\n` or `\r\n`, at
//! most [`MAX_LINE_BYTES`] bytes); the server answers every line with exactly
//! one line, `OK ...` or `ERR <reason> [detail]`. Words are separated by ASCII
//! whitespace, so **usernames, passwords and client names cannot contain
//! spaces** on this wire (the engine itself takes any UTF-8 username; quoting
//! is left out to keep the example small). Command names are
//! case-insensitive.
//!
//! | command | success reply |
//! |---|---|
//! | `HELLO <client-name>` | `OK hello <client-name>`: names this client in `DEVICES` (the engine's "user agent") |
//! | `LOGIN <user> <password>` | `OK login user=<user> remember=no`: a session for this connection only |
//! | `LOGIN <user> <password> remember` | `OK login user=<user> device=<serial> credential=<credential>` |
//! | `RESUME <credential>` | `OK resumed user=<user> device=<serial> via=rotation credential=<new credential>` |
//! | `WHOAMI` | `OK user=<user> device=<serial>` (or `device=none` after a plain login) |
//! | `DEVICES` | `OK devices=<n>`, then for each ` \| <serial> this\|other last-used=<time> ip=<ip> client=<name>` |
//! | `REVOKE <serial>` | `OK revoked device=<serial>` (remote logout of that device) |
//! | `LOGOUT` | `OK logged-out` (ends the session and forgets the device's credential) |
//! | `HELP` | `OK commands: ...` |
//! | `QUIT` | `OK bye`, then the server closes the connection |
//!
//! A credential is single use: `RESUME` answers with its successor, which the
//! client must keep in place of the one it sent. Presenting the *previous*
//! credential again within the grace window (a second connection that raced
//! the first, a reply lost on the way) answers `via=grace` with the same
//! successor, to the client the rotation recorded: the same `HELLO` name from
//! the same network. Another name is a thief (`ERR theft-detected`); the same
//! name from another network gets `ERR grace-refused` and revokes nothing.
//! Presenting it after the window is a replay: the server answers
//! `ERR theft-detected user=<user> ...` and every login and session of that
//! user is revoked, the thief's and the victim's alike.
//!
//! Errors: `bad-credentials`, `malformed-credential`, `unknown-login`,
//! `expired-login`, `theft-detected`, `grace-refused`, `account-disabled`,
//! `not-logged-in`, `session-ended`, `bad-device`, `unknown-device`, `usage`,
//! `unknown-command`, `empty-line`, `line-too-long`, `not-utf8`,
//! `unavailable`, `internal`. A line over the limit is read to its end and
//! dropped without ever being held in memory whole; the connection stays
//! usable.
//!
//! # Accounts
//!
//! Two hard-coded accounts, [`ACCOUNTS`]: `alice` / `alice-secret` and `bob` /
//! `bob-secret`. Passwords are compared in constant time ([`check_password`]);
//! a real server would keep Argon2 hashes.
//!
//! # Embedding
//!
//! ```no_run
//! use std::sync::Arc;
//! use expected_core::Config;
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let engine = Arc::new(expected_line_server::engine(Config::default()));
//! expected_line_server::serve(listener, engine).await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod demo;
mod line;

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use expected_core::time::OffsetDateTime;
use expected_core::time::format_description::well_known::Rfc3339;
use expected_core::{
    Authenticated, Client, Config, CookieKind, Expected, Hooks, Outcome, Presented, Serial, SessionCookie,
    SetCookie, Store, StoreError, Username,
};
use expected_store_memory::MemoryStore;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub use demo::{DEMO_GRACE, demo};

use line::Read;

/// Where the server listens unless [`ADDR_ENV`] says otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:4040";

/// The environment variable that overrides [`DEFAULT_ADDR`].
pub const ADDR_ENV: &str = "EXPECTED_LINE_ADDR";

/// Longest request line, in bytes, without its `\n`.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// Longest client name `HELLO` accepts, in bytes.
pub const MAX_CLIENT_NAME_BYTES: usize = 64;

/// The example's accounts: username and password.
pub const ACCOUNTS: &[(&str, &str)] = &[("alice", "alice-secret"), ("bob", "bob-secret")];

/// Whether `password` is the password of `username`.
///
/// Every account's password is compared, each in constant time on SHA-256
/// digests, so the time taken depends neither on the password (its length
/// included) nor on whether the user exists.
pub fn check_password(username: &str, password: &str) -> bool {
    let presented = Sha256::digest(password.as_bytes());
    let mut valid = subtle::Choice::from(0);
    for (name, secret) in ACCOUNTS {
        let matches = Sha256::digest(secret.as_bytes()).ct_eq(&presented);
        valid |= matches & subtle::Choice::from(u8::from(*name == username));
    }
    valid.into()
}

/// The engine's hooks for this example: only the accounts in [`ACCOUNTS`]
/// may log in with a credential (a deleted account's credentials stop
/// working). Theft is logged by the engine through `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accounts;

#[async_trait]
impl Hooks for Accounts {
    async fn is_user_valid(&self, username: &Username) -> Result<bool, StoreError> {
        Ok(ACCOUNTS.iter().any(|(name, _)| *name == username.as_str()))
    }
}

/// An engine over a fresh in-memory store, with the [`Accounts`] hooks.
pub fn engine(config: Config) -> Expected<MemoryStore> {
    Expected::new(MemoryStore::new(), config).with_hooks(Accounts)
}

/// Serves the line protocol on `listener`, one task per connection.
///
/// Runs until the future is dropped (or its task aborted). A failed accept
/// (out of file descriptors, say) is logged and retried after a pause; a
/// failed connection ends that connection only.
pub async fn serve<S: Store>(listener: TcpListener, engine: Arc<Expected<S>>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let engine = Arc::clone(&engine);
                tokio::spawn(async move {
                    if let Err(error) = connection(stream, peer, &engine).await {
                        tracing::debug!(%peer, %error, "connection ended with an I/O error");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One connection: read a line, answer a line, until `QUIT` or end of stream.
async fn connection<S: Store>(
    mut stream: TcpStream,
    peer: SocketAddr,
    engine: &Expected<S>,
) -> io::Result<()> {
    let (read, mut write) = stream.split();
    let mut reader = BufReader::new(read);
    let mut state = Connection { engine, peer, client_name: None, session: None };
    let mut buf = Vec::new();
    loop {
        let reply = match line::read_line(&mut reader, &mut buf, MAX_LINE_BYTES).await? {
            Read::Eof => return Ok(()),
            Read::TooLong => err("line-too-long", &format!("lines are limited to {MAX_LINE_BYTES} bytes")),
            Read::NotUtf8 => err("not-utf8", "lines must be UTF-8"),
            Read::Line(text) => state.command(&text).await,
        };
        send(&mut write, &reply.text).await?;
        if reply.close {
            write.shutdown().await?;
            return Ok(());
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(write: &mut W, text: &str) -> io::Result<()> {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    write.write_all(line.as_bytes()).await
}

/// One reply line.
struct Reply {
    text: String,
    /// Close the connection after sending it.
    close: bool,
}

fn ok(text: &str) -> Reply {
    Reply { text: format!("OK {text}"), close: false }
}

fn err(reason: &str, detail: &str) -> Reply {
    let text = if detail.is_empty() { format!("ERR {reason}") } else { format!("ERR {reason} {detail}") };
    Reply { text, close: false }
}

fn usage(syntax: &str) -> Reply {
    err("usage", syntax)
}

fn unavailable(error: &dyn std::error::Error) -> Reply {
    tracing::error!(%error, "store unavailable");
    err("unavailable", "the login store is unavailable; try again")
}

const HELP: &str = "commands: HELLO <client-name> | LOGIN <user> <password> [remember] | RESUME <credential> \
                    | WHOAMI | DEVICES | REVOKE <device> | LOGOUT | HELP | QUIT";

/// The value of the cookie of `kind` that `cookies` sets (not a removal).
fn value_of(cookies: &[SetCookie], kind: CookieKind) -> Option<String> {
    cookies.iter().find(|c| c.kind() == kind && !c.is_removal()).map(|c| c.value().to_owned())
}

fn device(session: &expected_core::SessionRecord) -> String {
    session.login().map_or_else(|| "none".to_owned(), |serial| serial.to_base64())
}

fn timestamp(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0).unwrap_or(at).format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// What a connection holds between commands.
struct Connection<'e, S> {
    engine: &'e Expected<S>,
    peer: SocketAddr,
    /// Set by `HELLO`; the engine keeps it as the login's user agent.
    client_name: Option<String>,
    /// The session cookie's value: this connection's server-side session.
    session: Option<String>,
}

impl<S: Store> Connection<'_, S> {
    fn client(&self) -> Client<'_> {
        Client { ip: Some(self.peer.ip()), user_agent: self.client_name.as_deref() }
    }

    async fn command(&mut self, line: &str) -> Reply {
        let mut words = line.split_ascii_whitespace();
        let Some(verb) = words.next() else { return err("empty-line", "try HELP") };
        let args: Vec<&str> = words.collect();
        match (verb.to_ascii_uppercase().as_str(), args.as_slice()) {
            ("HELLO", [name]) => self.hello(name),
            ("HELLO", _) => usage("HELLO <client-name>"),
            ("LOGIN", [user, password]) => self.login(user, password, false).await,
            ("LOGIN", [user, password, flag]) if flag.eq_ignore_ascii_case("remember") => {
                self.login(user, password, true).await
            }
            ("LOGIN", _) => usage("LOGIN <user> <password> [remember]"),
            ("RESUME", [credential]) => self.resume(credential).await,
            ("RESUME", _) => usage("RESUME <credential>"),
            ("WHOAMI", []) => self.whoami().await,
            ("DEVICES", []) => self.devices().await,
            ("REVOKE", [serial]) => self.revoke(serial).await,
            ("REVOKE", _) => usage("REVOKE <device>"),
            ("LOGOUT", []) => self.logout().await,
            ("HELP", []) => ok(HELP),
            ("QUIT", []) => Reply { text: "OK bye".to_owned(), close: true },
            ("WHOAMI" | "DEVICES" | "LOGOUT" | "HELP" | "QUIT", _) => {
                usage("this command takes no arguments")
            }
            _ => err("unknown-command", "try HELP"),
        }
    }

    fn hello(&mut self, name: &str) -> Reply {
        if name.len() > MAX_CLIENT_NAME_BYTES || name.chars().any(char::is_control) {
            return usage("HELLO <client-name>: at most 64 bytes, no control characters");
        }
        self.client_name = Some(name.to_owned());
        ok(&format!("hello {name}"))
    }

    async fn login(&mut self, user: &str, password: &str, remember: bool) -> Reply {
        if !check_password(user, password) {
            return err("bad-credentials", "");
        }
        let Ok(username) = Username::new(user) else { return err("bad-credentials", "") };
        // Whatever this connection held is ended first: a device never holds
        // two logins.
        let presented = Presented {
            session: self.session.as_deref().into(),
            auth: Default::default(),
            client: self.client(),
        };
        let registration = match self.engine.register(&username, remember, &presented).await {
            Ok(registration) => registration,
            Err(error) => return unavailable(&error),
        };
        self.session = value_of(&registration.cookies, CookieKind::Session);
        match (registration.serial, value_of(&registration.cookies, CookieKind::Auth)) {
            (Some(serial), Some(credential)) => {
                ok(&format!("login user={username} device={serial} credential={credential}"))
            }
            (None, _) => ok(&format!("login user={username} remember=no")),
            (Some(_), None) => err("internal", "no credential was issued"),
        }
    }

    async fn resume(&mut self, credential: &str) -> Reply {
        let presented =
            Presented { session: Default::default(), auth: credential.into(), client: self.client() };
        let result = self.engine.authenticate(&presented).await;
        let via = match &result.outcome {
            Outcome::CookieLogin(_) => "rotation",
            Outcome::Grace(_) => "grace",
            Outcome::Malformed(_, error) => return err("malformed-credential", &error.to_string()),
            Outcome::UnknownLogin => {
                return err("unknown-login", "(revoked, logged out or never issued: log in with a password)");
            }
            Outcome::ExpiredLogin => {
                return err("expired-login", "(unused for too long: log in with a password)");
            }
            Outcome::Theft(report) => {
                return err(
                    "theft-detected",
                    &format!(
                        "user={} device={} logins-revoked={} sessions-revoked={} (an old credential \
                         was replayed: every login of the user is revoked)",
                        report.username, report.serial, report.deleted.logins, report.deleted.sessions
                    ),
                );
            }
            Outcome::GraceRefused(_) => {
                return err(
                    "grace-refused",
                    "(the previous credential came from another network than the one it was \
                     replaced from: log in with a password)",
                );
            }
            Outcome::UserRejected(_) => return err("account-disabled", ""),
            Outcome::Unavailable(error) => return unavailable(error),
            _ => return err("internal", "unexpected outcome"),
        };
        let (Some(auth), Some(session), Some(next)) = (
            result.outcome.authenticated(),
            value_of(&result.cookies, CookieKind::Session),
            value_of(&result.cookies, CookieKind::Auth),
        ) else {
            return err("internal", "the engine issued no successor");
        };
        let text = format!(
            "resumed user={} device={} via={via} credential={next}",
            auth.username(),
            device(auth.session())
        );
        self.replace_session(session).await;
        ok(&text)
    }

    /// Makes `session` this connection's session, deleting the one it held
    /// (not the login that opened it: the credential stays valid).
    async fn replace_session(&mut self, session: String) {
        if let Some(old) = self.session.replace(session) {
            if self.session.as_deref() == Some(old.as_str()) {
                return;
            }
            if let Ok(cookie) = SessionCookie::parse(&old) {
                let owner = cookie.username.as_ref();
                if let Err(error) = self.engine.delete_session(owner, &cookie.id.digest()).await {
                    tracing::warn!(%error, "could not delete the connection's previous session");
                }
            }
        }
    }

    /// The connection's live session, or the reply saying there is none.
    async fn current(&mut self) -> Result<Authenticated, Reply> {
        let Some(value) = self.session.as_deref() else {
            return Err(err("not-logged-in", "LOGIN or RESUME first"));
        };
        let presented = Presented { session: value.into(), auth: Default::default(), client: self.client() };
        match self.engine.authenticate(&presented).await.outcome {
            Outcome::Session(auth) => Ok(auth),
            Outcome::Unavailable(error) => Err(unavailable(&error)),
            _ => {
                self.session = None;
                Err(err("session-ended", "(logged out, revoked or expired: LOGIN or RESUME again)"))
            }
        }
    }

    async fn whoami(&mut self) -> Reply {
        match self.current().await {
            Ok(auth) => ok(&format!("user={} device={}", auth.username(), device(auth.session()))),
            Err(reply) => reply,
        }
    }

    async fn devices(&mut self) -> Reply {
        let auth = match self.current().await {
            Ok(auth) => auth,
            Err(reply) => return reply,
        };
        let devices = match self.engine.devices(auth.username(), Some(auth.session())).await {
            Ok(devices) => devices,
            Err(error) => return unavailable(&error),
        };
        let mut text = format!("devices={}", devices.len());
        for d in devices {
            let ip = d.ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
            let _ = write!(
                text,
                " | {} {} last-used={} ip={ip} client={}",
                d.serial,
                if d.current { "this" } else { "other" },
                timestamp(d.last_used_at),
                d.user_agent.as_deref().unwrap_or("-"),
            );
        }
        ok(&text)
    }

    async fn revoke(&mut self, serial: &str) -> Reply {
        let auth = match self.current().await {
            Ok(auth) => auth,
            Err(reply) => return reply,
        };
        let Ok(serial) = Serial::from_base64(serial) else {
            return err("bad-device", "not a device id (see DEVICES)");
        };
        match self.engine.revoke(auth.username(), &serial).await {
            Ok(true) if auth.session().login() == Some(serial) => {
                self.session = None;
                ok(&format!("revoked device={serial} this-device=logged-out"))
            }
            Ok(true) => ok(&format!("revoked device={serial}")),
            Ok(false) => err("unknown-device", "no such device for this user"),
            Err(error) => unavailable(&error),
        }
    }

    async fn logout(&mut self) -> Reply {
        let Some(value) = self.session.take() else {
            return err("not-logged-in", "LOGIN or RESUME first");
        };
        let presented =
            Presented { session: value.as_str().into(), auth: Default::default(), client: self.client() };
        match self.engine.logout(&presented).await {
            Ok(_) => ok("logged-out"),
            Err(error) => {
                let reply = unavailable(&error);
                self.session = Some(value);
                reply
            }
        }
    }
}
