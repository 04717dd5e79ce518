//! The scripted conversation of `--demo`.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use expected_core::Config;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::{engine, serve};

/// The grace window of the demo's engine: short, so that the demo can wait
/// it out (the default is 30 s).
pub const DEMO_GRACE: Duration = Duration::from_secs(1);

/// Runs a server on an ephemeral port with a [`DEMO_GRACE`] grace window,
/// drives it with scripted clients, and writes the conversation to `out`:
/// a login with "remember me", a resume that rotates the credential, a racing
/// resume inside the grace window, and a replay of the old credential after
/// the window, which the server detects as theft.
///
/// Fails if the server does not answer as the script expects.
pub async fn demo<W: Write>(out: &mut W) -> io::Result<()> {
    let config =
        Config::builder().secure(false).grace_period(DEMO_GRACE).build().map_err(io::Error::other)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, Arc::new(engine(config))));
    let result = script(out, addr).await;
    server.abort();
    result
}

async fn script<W: Write>(out: &mut W, addr: SocketAddr) -> io::Result<()> {
    writeln!(out, "expected line-server demo: remember-me logins over a TCP line protocol, no HTTP")?;
    writeln!(out, "server on {addr}, grace window {} ms (30 s by default)", DEMO_GRACE.as_millis())?;

    step(out, 1, "Alice logs in on her laptop with her password and ticks \"remember me\".")?;
    let mut laptop = Peer::connect(addr, "laptop").await?;
    laptop.say(out, "HELLO laptop").await?;
    let reply = laptop.say(out, "LOGIN alice alice-secret remember").await?;
    let first = expect_field(&reply, "OK login", "credential")?;
    laptop.say(out, "QUIT").await?;
    note(out, "The laptop keeps the credential (#1) and disconnects.")?;

    step(out, 2, "Later, on a new connection, the laptop resumes with credential #1.")?;
    let mut laptop = Peer::connect(addr, "laptop").await?;
    laptop.say(out, "HELLO laptop").await?;
    let reply = laptop.say(out, &format!("RESUME {first}")).await?;
    let second = expect_field(&reply, "OK resumed", "credential")?;
    if second == first {
        return Err(unexpected("the credential was not rotated", &reply));
    }
    note(out, "Rotated: #1 is spent, the laptop keeps its successor (#2).")?;

    step(
        out,
        3,
        "A request that raced the laptop's (or lost its reply) presents #1 too, inside the grace window.",
    )?;
    let mut tab = Peer::connect(addr, "tab").await?;
    // The same client (its name is the user agent): grace is only for the
    // client the rotation recorded.
    tab.say(out, "HELLO laptop").await?;
    let reply = tab.say(out, &format!("RESUME {first}")).await?;
    let successor = expect_field(&reply, "OK resumed", "credential")?;
    if successor != second {
        return Err(unexpected("the grace reply is not the same successor", &reply));
    }
    note(out, "via=grace: the same successor #2, no second rotation, no false alarm.")?;
    tab.say(out, "QUIT").await?;

    step(out, 4, "The laptop is logged in; alice has one remembered device.")?;
    laptop.say(out, "WHOAMI").await?;
    laptop.say(out, "DEVICES").await?;

    let wait = DEMO_GRACE + Duration::from_millis(100);
    step(
        out,
        5,
        &format!("{} ms later the window is over. Mallory, who copied #1, replays it.", wait.as_millis()),
    )?;
    tokio::time::sleep(wait).await;
    let mut mallory = Peer::connect(addr, "mallory").await?;
    let reply = mallory.say(out, &format!("RESUME {first}")).await?;
    if !reply.starts_with("ERR theft-detected") {
        return Err(unexpected("the replay was not detected", &reply));
    }
    note(out, "A spent credential came back after the window: somebody holds a copy.")?;

    step(out, 6, "Every login and session of alice is revoked, the laptop's included.")?;
    laptop.say(out, "WHOAMI").await?;
    let reply = laptop.say(out, &format!("RESUME {second}")).await?;
    if !reply.starts_with("ERR unknown-login") {
        return Err(unexpected("credential #2 still works after the theft", &reply));
    }
    laptop.say(out, "QUIT").await?;
    writeln!(out)?;
    writeln!(
        out,
        "Theft detected: alice must log in with her password again, and the thief's copy is worthless."
    )?;
    out.flush()
}

fn step<W: Write>(out: &mut W, number: u32, text: &str) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "{number}. {text}")
}

fn note<W: Write>(out: &mut W, text: &str) -> io::Result<()> {
    writeln!(out, "   -> {text}")
}

fn unexpected(what: &str, reply: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("demo: {what}: {reply}"))
}

/// The value of `key=` in a reply that starts with `prefix`.
fn expect_field(reply: &str, prefix: &str, key: &str) -> io::Result<String> {
    if !reply.starts_with(prefix) {
        return Err(unexpected(&format!("expected {prefix:?}"), reply));
    }
    reply
        .split_ascii_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .ok_or_else(|| unexpected(&format!("no {key}= in the reply"), reply))
}

/// A scripted client that echoes its side of the conversation.
struct Peer {
    name: &'static str,
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl Peer {
    async fn connect(addr: SocketAddr, name: &'static str) -> io::Result<Self> {
        let (read, write) = TcpStream::connect(addr).await?.into_split();
        Ok(Self { name, lines: BufReader::new(read).lines(), write })
    }

    /// Sends a line, waits for the reply, and writes both to `out`.
    async fn say<W: Write>(&mut self, out: &mut W, line: &str) -> io::Result<String> {
        writeln!(out, "   {:<8}> {line}", self.name)?;
        self.write.write_all(format!("{line}\n").as_bytes()).await?;
        let reply = self.lines.next_line().await?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")
        })?;
        writeln!(out, "   {:<8}< {reply}", "")?;
        Ok(reply)
    }
}
