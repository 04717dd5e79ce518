//! The line protocol over real TCP: a server on an ephemeral port, driven by
//! clients that speak the protocol. Time is a `ManualClock`, so the grace
//! window is crossed without sleeping.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use expected_core::time::Duration;
use expected_core::{AuthCookie, ChaChaTokens, Config, Expected, ManualClock, Serial, Token, Username};
use expected_line_server::{Accounts, MAX_LINE_BYTES, check_password, demo, serve};
use expected_store_memory::MemoryStore;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A server with the default 30 s grace window and a clock the test moves.
async fn start() -> io::Result<(SocketAddr, ManualClock)> {
    let clock = ManualClock::starting_now();
    let config = Config::builder().secure(false).build().map_err(io::Error::other)?;
    let engine = Expected::new(MemoryStore::new(), config)
        .with_clock(clock.clone())
        .with_tokens(ChaChaTokens::from_seed([42; 32]))
        .with_hooks(Accounts);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, Arc::new(engine)));
    Ok((addr, clock))
}

struct Conn {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl Conn {
    async fn open(addr: SocketAddr) -> io::Result<Self> {
        let (read, write) = TcpStream::connect(addr).await?.into_split();
        Ok(Self { lines: BufReader::new(read).lines(), write })
    }

    /// Sends raw bytes and reads one reply line.
    async fn raw(&mut self, bytes: &[u8]) -> io::Result<String> {
        self.write.write_all(bytes).await?;
        self.lines
            .next_line()
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"))
    }

    /// Sends one line and reads its reply.
    async fn send(&mut self, line: &str) -> io::Result<String> {
        self.raw(format!("{line}\n").as_bytes()).await
    }

    /// Whether the server closed the connection (end of stream, no more lines).
    async fn closed(&mut self) -> io::Result<bool> {
        Ok(self.lines.next_line().await?.is_none())
    }
}

/// The value of `key=` in a reply.
fn field(reply: &str, key: &str) -> String {
    reply
        .split_ascii_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no {key}= in {reply:?}"))
}

fn assert_starts(reply: &str, prefix: &str) {
    assert!(reply.starts_with(prefix), "expected {prefix:?}, got {reply:?}");
}

/// Logs `user` in with "remember me" on a new connection; returns the
/// connection, the device serial and the credential.
async fn remembered(addr: SocketAddr, user: &str) -> io::Result<(Conn, String, String)> {
    let mut conn = Conn::open(addr).await?;
    let reply = conn.send(&format!("LOGIN {user} {user}-secret remember")).await?;
    assert_starts(&reply, &format!("OK login user={user} device="));
    Ok((conn, field(&reply, "device"), field(&reply, "credential")))
}

/// Resumes with `credential` on a new connection.
async fn resume(addr: SocketAddr, credential: &str) -> io::Result<(Conn, String)> {
    let mut conn = Conn::open(addr).await?;
    let reply = conn.send(&format!("RESUME {credential}")).await?;
    Ok((conn, reply))
}

#[test]
fn passwords_are_checked_against_the_accounts() {
    assert!(check_password("alice", "alice-secret"));
    assert!(check_password("bob", "bob-secret"));
    assert!(!check_password("alice", "bob-secret"));
    assert!(!check_password("bob", "alice-secret"));
    assert!(!check_password("alice", "alice-secret "));
    assert!(!check_password("alice", ""));
    assert!(!check_password("carol", "carol-secret"));
    assert!(!check_password("", ""));
}

#[tokio::test]
async fn login_with_and_without_remember_me() -> TestResult {
    let (addr, _) = start().await?;
    let mut conn = Conn::open(addr).await?;
    assert_starts(&conn.send("WHOAMI").await?, "ERR not-logged-in");
    assert_eq!(conn.send("LOGIN alice bob-secret").await?, "ERR bad-credentials");
    assert_eq!(conn.send("LOGIN carol carol-secret").await?, "ERR bad-credentials");
    assert_starts(&conn.send("LOGIN alice alice-secret forever").await?, "ERR usage");
    assert_starts(&conn.send("LOGIN alice").await?, "ERR usage");

    assert_eq!(conn.send("LOGIN alice alice-secret").await?, "OK login user=alice remember=no");
    assert_eq!(conn.send("WHOAMI").await?, "OK user=alice device=none");

    // Logging in again on the same connection replaces the session; command
    // names and the flag are case-insensitive.
    let reply = conn.send("login bob bob-secret REMEMBER").await?;
    assert_starts(&reply, "OK login user=bob device=");
    let device = field(&reply, "device");
    let credential = field(&reply, "credential");
    assert!(credential.starts_with("1."), "{credential}");
    assert_eq!(conn.send("whoami").await?, format!("OK user=bob device={device}"));
    assert_eq!(conn.send("QUIT").await?, "OK bye");
    assert!(conn.closed().await?);
    Ok(())
}

#[tokio::test]
async fn resume_rotates_the_credential() -> TestResult {
    let (addr, clock) = start().await?;
    let (_, device, first) = remembered(addr, "alice").await?;

    clock.advance(Duration::hours(20));
    let (mut conn, reply) = resume(addr, &first).await?;
    assert_starts(&reply, &format!("OK resumed user=alice device={device} via=rotation credential="));
    let second = field(&reply, "credential");
    assert_ne!(second, first);
    assert_eq!(conn.send("WHOAMI").await?, format!("OK user=alice device={device}"));

    // The successor is current: it rotates in turn, the device stays the same.
    clock.advance(Duration::hours(20));
    let (_, reply) = resume(addr, &second).await?;
    assert_starts(&reply, &format!("OK resumed user=alice device={device} via=rotation"));
    let third = field(&reply, "credential");
    assert!(third != first && third != second);

    // Resuming on a connection that is already logged in replaces its session.
    let reply = conn.send(&format!("RESUME {third}")).await?;
    assert_starts(&reply, "OK resumed user=alice");
    assert_eq!(conn.send("WHOAMI").await?, format!("OK user=alice device={device}"));
    Ok(())
}

#[tokio::test]
async fn previous_credential_within_the_grace_window_gets_the_same_successor() -> TestResult {
    let (addr, clock) = start().await?;
    let (_, device, first) = remembered(addr, "alice").await?;
    let (mut winner, reply) = resume(addr, &first).await?;
    let second = field(&reply, "credential");

    // 29 s later (the window is 30 s) a racing request still holds #1.
    clock.advance(Duration::seconds(29));
    for _ in 0..2 {
        let (mut late, reply) = resume(addr, &first).await?;
        assert_eq!(
            reply,
            format!("OK resumed user=alice device={device} via=grace credential={second}"),
            "the same successor, no second rotation"
        );
        assert_eq!(late.send("WHOAMI").await?, format!("OK user=alice device={device}"));
    }
    // The winner was not disturbed, and #2 is still the current credential.
    assert_eq!(winner.send("WHOAMI").await?, format!("OK user=alice device={device}"));
    let (_, reply) = resume(addr, &second).await?;
    assert_starts(&reply, "OK resumed user=alice");
    assert_eq!(field(&reply, "via"), "rotation");
    Ok(())
}

#[tokio::test]
async fn replay_after_the_grace_window_is_theft() -> TestResult {
    let (addr, clock) = start().await?;
    let (_, device, first) = remembered(addr, "alice").await?;
    let (_, _, bobs) = remembered(addr, "bob").await?;
    let (mut victim, reply) = resume(addr, &first).await?;
    let second = field(&reply, "credential");

    // The window is half-open: exactly 30 s after the rotation it is over.
    clock.advance(Duration::seconds(30));
    let (_, reply) = resume(addr, &first).await?;
    assert_starts(&reply, &format!("ERR theft-detected user=alice device={device} logins-revoked=1"));

    // Every login and session of alice is gone, the victim's included.
    assert_starts(&victim.send("WHOAMI").await?, "ERR session-ended");
    assert_starts(&victim.send("WHOAMI").await?, "ERR not-logged-in");
    let (_, reply) = resume(addr, &second).await?;
    assert_starts(&reply, "ERR unknown-login");
    let (_, reply) = resume(addr, &first).await?;
    assert_starts(&reply, "ERR unknown-login");

    // Nobody else's: bob's credential still works.
    let (_, reply) = resume(addr, &bobs).await?;
    assert_starts(&reply, "OK resumed user=bob");

    // Alice logs in with her password again.
    let (_, _, fresh) = remembered(addr, "alice").await?;
    let (_, reply) = resume(addr, &fresh).await?;
    assert_starts(&reply, "OK resumed user=alice");
    Ok(())
}

#[tokio::test]
async fn devices_and_remote_revoke() -> TestResult {
    let (addr, _) = start().await?;
    let mut laptop = Conn::open(addr).await?;
    assert_eq!(laptop.send("HELLO laptop").await?, "OK hello laptop");
    let reply = laptop.send("LOGIN alice alice-secret remember").await?;
    let laptop_device = field(&reply, "device");
    let mut phone = Conn::open(addr).await?;
    assert_eq!(phone.send("HELLO phone").await?, "OK hello phone");
    let reply = phone.send("LOGIN alice alice-secret remember").await?;
    let phone_device = field(&reply, "device");
    let phone_credential = field(&reply, "credential");

    let reply = laptop.send("DEVICES").await?;
    assert_starts(&reply, "OK devices=2 | ");
    let entries: Vec<&str> = reply.split(" | ").skip(1).collect();
    assert_eq!(entries.len(), 2, "{reply}");
    let this = entries.iter().find(|e| e.starts_with(&laptop_device)).ok_or("laptop missing")?;
    let other = entries.iter().find(|e| e.starts_with(&phone_device)).ok_or("phone missing")?;
    assert!(this.contains(" this ") && this.contains("ip=127.0.0.1") && this.ends_with("client=laptop"));
    assert!(other.contains(" other ") && other.ends_with("client=phone"), "{other}");

    // Bob cannot revoke alice's devices.
    let (mut bob, _, _) = remembered(addr, "bob").await?;
    assert_starts(&bob.send(&format!("REVOKE {phone_device}")).await?, "ERR unknown-device");

    // The laptop logs the phone out remotely.
    assert_eq!(
        laptop.send(&format!("REVOKE {phone_device}")).await?,
        format!("OK revoked device={phone_device}")
    );
    assert_starts(&phone.send("WHOAMI").await?, "ERR session-ended");
    let (_, reply) = resume(addr, &phone_credential).await?;
    assert_starts(&reply, "ERR unknown-login");
    assert_starts(&laptop.send(&format!("REVOKE {phone_device}")).await?, "ERR unknown-device");
    assert_starts(&laptop.send("REVOKE not-a-device").await?, "ERR bad-device");
    assert_starts(&laptop.send("REVOKE").await?, "ERR usage");
    let unknown = Serial::from_bytes([7; 16]);
    assert_starts(&laptop.send(&format!("REVOKE {unknown}")).await?, "ERR unknown-device");
    assert_starts(&laptop.send("DEVICES").await?, "OK devices=1 | ");

    // Revoking its own device logs the connection out.
    assert_eq!(
        laptop.send(&format!("REVOKE {laptop_device}")).await?,
        format!("OK revoked device={laptop_device} this-device=logged-out")
    );
    assert_starts(&laptop.send("WHOAMI").await?, "ERR not-logged-in");
    assert_starts(&laptop.send("DEVICES").await?, "ERR not-logged-in");
    Ok(())
}

#[tokio::test]
async fn logout_forgets_the_device() -> TestResult {
    let (addr, _) = start().await?;
    let (mut conn, _, credential) = remembered(addr, "alice").await?;
    assert_eq!(conn.send("LOGOUT").await?, "OK logged-out");
    assert_starts(&conn.send("WHOAMI").await?, "ERR not-logged-in");
    assert_starts(&conn.send("LOGOUT").await?, "ERR not-logged-in");
    let (_, reply) = resume(addr, &credential).await?;
    assert_starts(&reply, "ERR unknown-login");
    Ok(())
}

#[tokio::test]
async fn malformed_input_is_answered_and_the_connection_stays_usable() -> TestResult {
    let (addr, _) = start().await?;
    let mut conn = Conn::open(addr).await?;

    // Garbage credentials.
    for garbage in ["hello", "1.x.y.z", "2.YWxpY2U.AAAA.BBBB", "1....", &"A".repeat(5000)] {
        let reply = conn.send(&format!("RESUME {garbage}")).await?;
        assert_starts(&reply, "ERR malformed-credential");
    }
    assert_starts(&conn.send("RESUME").await?, "ERR usage");
    assert_starts(&conn.send("RESUME a b").await?, "ERR usage");
    // Well formed, but for nobody.
    let forged = AuthCookie {
        username: Username::new("alice")?,
        serial: Serial::from_bytes([1; 16]),
        token: Token::from_bytes([2; 32]),
        key: None,
    };
    assert_starts(&conn.send(&format!("RESUME {}", forged.encode())).await?, "ERR unknown-login");

    // The line limit: exactly MAX_LINE_BYTES is a line, one more byte is not.
    let at_limit = format!("RESUME {}", "A".repeat(MAX_LINE_BYTES - "RESUME ".len()));
    assert_starts(&conn.send(&at_limit).await?, "ERR malformed-credential");
    assert_eq!(
        conn.send(&format!("{at_limit}A")).await?,
        format!("ERR line-too-long lines are limited to {MAX_LINE_BYTES} bytes")
    );
    // A megabyte is read to its end and dropped, not buffered.
    assert_starts(&conn.send(&"x".repeat(1 << 20)).await?, "ERR line-too-long");

    // Everything else that is not a command.
    assert_starts(&conn.raw(b"\xff\xfe WHOAMI\n").await?, "ERR not-utf8");
    assert_starts(&conn.send("").await?, "ERR empty-line");
    assert_starts(&conn.send("   \t ").await?, "ERR empty-line");
    assert_starts(&conn.send("FLY me to the moon").await?, "ERR unknown-command");
    assert_starts(&conn.send("WHOAMI now").await?, "ERR usage");
    assert_starts(&conn.send("HELLO bad\u{1}name").await?, "ERR usage");
    assert_starts(&conn.send(&format!("HELLO {}", "n".repeat(65))).await?, "ERR usage");
    assert_starts(&conn.send("LOGIN alice\0 alice-secret").await?, "ERR bad-credentials");
    assert_starts(&conn.send("HELP").await?, "OK commands:");

    // Still usable, CRLF line endings included.
    assert_starts(&conn.raw(b"LOGIN alice alice-secret remember\r\n").await?, "OK login user=alice");
    assert_starts(&conn.raw(b"WHOAMI\r\n").await?, "OK user=alice");
    assert_eq!(conn.send("QUIT").await?, "OK bye");
    assert!(conn.closed().await?);
    Ok(())
}

#[tokio::test]
async fn clients_that_vanish_mid_line_do_not_hurt_the_server() -> TestResult {
    let (addr, _) = start().await?;
    for bytes in [&b"LOGIN alice"[..], &vec![b'x'; MAX_LINE_BYTES + 10], b""] {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(bytes).await?;
        drop(stream);
    }
    // A last line without a newline is still answered before the close.
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"WHOAMI").await?;
    stream.shutdown().await?;
    let mut lines = BufReader::new(stream).lines();
    assert_starts(&lines.next_line().await?.ok_or("no reply")?, "ERR not-logged-in");
    assert_eq!(lines.next_line().await?, None);

    let (_, _, credential) = remembered(addr, "alice").await?;
    let (_, reply) = resume(addr, &credential).await?;
    assert_starts(&reply, "OK resumed user=alice");
    Ok(())
}

#[tokio::test]
async fn the_demo_ends_with_theft_detected() -> TestResult {
    let mut out = Vec::new();
    demo(&mut out).await?;
    let out = String::from_utf8(out)?;
    for expected in ["via=rotation", "via=grace", "ERR theft-detected user=alice", "ERR unknown-login"] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }
    assert!(out.trim_end().ends_with("the thief's copy is worthless."), "{out}");
    Ok(())
}
