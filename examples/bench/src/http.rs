//! The load generator's HTTP/1.1 client: one keep-alive TCP connection to
//! a loopback address, its own cookie jar, one request at a time.
//!
//! Only what the demos answer is understood: a status line, headers, and a
//! body of `Content-Length` bytes (or none for 204 and 304). A chunked body,
//! a closed connection or a malformed head is an error, never guessed at.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::Result;

/// The `User-Agent` every request sends: a browser's, 71 bytes, the length
/// of the memory figure's (a store keeps it with each login).
pub(crate) const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux aarch64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// Longest response head read.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Longest response body read.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long one response may take before the request counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A cookie jar: what the server set, sent back on every request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Jar {
    cookies: Vec<(String, String)>,
}

impl Jar {
    /// The value of cookie `name`, if the jar holds it.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str())
    }

    /// Whether the jar holds no cookie.
    pub(crate) fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Drops cookie `name`.
    pub(crate) fn remove(&mut self, name: &str) {
        self.cookies.retain(|(n, _)| n != name);
    }

    /// Applies one `Set-Cookie` value: stores the cookie, or drops it when
    /// the server removes it (empty value, `Max-Age=0` or less). Answers the
    /// cookie's name.
    fn apply(&mut self, set_cookie: &str) -> Option<String> {
        let mut parts = set_cookie.split(';');
        let (name, value) = parts.next()?.split_once('=')?;
        let (name, value) = (name.trim(), value.trim());
        let removed = value.is_empty()
            || parts.filter_map(|attr| attr.split_once('=')).any(|(key, age)| {
                key.trim().eq_ignore_ascii_case("max-age") && age.trim().parse::<i64>().is_ok_and(|a| a <= 0)
            });
        self.remove(name);
        if !removed {
            self.cookies.push((name.to_owned(), value.to_owned()));
        }
        Some(name.to_owned())
    }

    /// The `Cookie` header's value, if the jar holds anything.
    fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        let pairs: Vec<String> = self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect();
        Some(pairs.join("; "))
    }
}

/// A response, its cookies already applied to the connection's jar.
#[derive(Debug)]
pub(crate) struct Response {
    /// The status code.
    pub(crate) status: u16,
    /// The names of the cookies it set or removed, in order.
    pub(crate) set: Vec<String>,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// Whether the body holds `needle`.
    pub(crate) fn body_has(&self, needle: &str) -> bool {
        let needle = needle.as_bytes();
        self.body.windows(needle.len()).any(|window| window == needle)
    }

    /// The body, as text, for error messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).chars().take(200).collect()
    }
}

/// One keep-alive connection and its cookie jar.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    host: String,
    /// Bytes read and not yet consumed.
    buffer: Vec<u8>,
    /// The request being written (reused).
    request: Vec<u8>,
    /// This connection's cookies.
    pub(crate) jar: Jar,
}

impl Connection {
    /// Connects to `addr`, which must be a loopback address (the benchmark
    /// never sends traffic anywhere else).
    pub(crate) async fn open(addr: SocketAddr) -> Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(format!("{addr} is not a loopback address").into());
        }
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY on {addr}: {e}"))?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            buffer: Vec::with_capacity(4096),
            request: Vec::with_capacity(1024),
            jar: Jar::default(),
        })
    }

    /// Sends a request with the jar's cookies and reads its response.
    /// State-changing methods carry `Sec-Fetch-Site: same-origin`, as a
    /// browser's from the demo's own pages do (the demos refuse others);
    /// a body is sent as JSON.
    pub(crate) async fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
        self.write_request(method, path, body);
        self.stream.write_all(&self.request).await.map_err(|e| format!("{method} {path}: write: {e}"))?;
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.read_response()).await {
            Ok(response) => response.map_err(|e| format!("{method} {path}: {e}").into()),
            Err(_) => Err(format!("{method} {path}: no response in {RESPONSE_TIMEOUT:?}").into()),
        }
    }

    fn write_request(&mut self, method: &str, path: &str, body: Option<&[u8]>) {
        use std::io::Write as _;
        let request = &mut self.request;
        request.clear();
        // Writing to a Vec cannot fail.
        let _ = write!(
            request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n",
            self.host
        );
        if !matches!(method, "GET" | "HEAD") {
            request.extend_from_slice(b"Sec-Fetch-Site: same-origin\r\n");
        }
        if let Some(cookies) = self.jar.header() {
            let _ = write!(request, "Cookie: {cookies}\r\n");
        }
        if let Some(body) = body {
            let _ = write!(request, "Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
        }
        request.extend_from_slice(b"\r\n");
        if let Some(body) = body {
            request.extend_from_slice(body);
        }
    }

    /// Reads more bytes into the buffer; a closed connection is an error.
    async fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Response> {
        let (head_len, status, body_len, set_cookies) = loop {
            if let Some(head) = parse_head(&self.buffer)? {
                break head;
            }
            if self.buffer.len() > MAX_HEAD_BYTES {
                return Err(format!("response head over {MAX_HEAD_BYTES} bytes").into());
            }
            self.fill().await?;
        };
        if body_len > MAX_BODY_BYTES {
            return Err(format!("response body of {body_len} bytes").into());
        }
        while self.buffer.len() < head_len + body_len {
            self.fill().await?;
        }
        let body = self.buffer[head_len..head_len + body_len].to_vec();
        self.buffer.drain(..head_len + body_len);
        let set = set_cookies.iter().filter_map(|value| self.jar.apply(value)).collect();
        Ok(Response { status, set, body })
    }
}

/// A complete response head: its length, the status, the body's length and
/// the `Set-Cookie` values; `None` while incomplete.
type Head = (usize, u16, usize, Vec<String>);

fn parse_head(buffer: &[u8]) -> Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buffer).map_err(|e| format!("bad response head: {e}"))? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.ok_or("response without a status")?;
    let mut body_len = None;
    let mut set_cookies = Vec::new();
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).map_err(|_| format!("{} is not UTF-8", header.name))?;
        if header.name.eq_ignore_ascii_case("content-length") {
            body_len = Some(value.trim().parse::<usize>().map_err(|_| format!("Content-Length: {value}"))?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("Transfer-Encoding: {value} (only Content-Length bodies are read)").into());
        } else if header.name.eq_ignore_ascii_case("set-cookie") {
            set_cookies.push(value.to_owned());
        }
    }
    let body_len = match (status, body_len) {
        (204 | 304, _) => 0,
        (_, Some(len)) => len,
        (_, None) => return Err(format!("{status} response without Content-Length").into()),
    };
    Ok(Some((head_len, status, body_len, set_cookies)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_is_the_memory_figures() {
        assert_eq!(USER_AGENT.len(), 71);
    }

    #[test]
    fn the_jar_keeps_sets_and_drops_removals() {
        let mut jar = Jar::default();
        assert_eq!(jar.apply("session=abc; Path=/; HttpOnly").as_deref(), Some("session"));
        jar.apply("remember_me=t1; Max-Age=7776000; Secure");
        assert_eq!(jar.header().as_deref(), Some("session=abc; remember_me=t1"));
        jar.apply("remember_me=t2; Max-Age=7776000");
        assert_eq!(jar.get("remember_me"), Some("t2"));
        jar.apply("session=; Max-Age=0");
        assert_eq!(jar.get("session"), None);
        jar.apply("remember_me=gone; max-age=0");
        assert_eq!(jar.header(), None);
    }

    #[test]
    fn heads_are_read_whole_or_not_at_all() -> Result<()> {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n\r\n{}";
        assert!(parse_head(&head[..20])?.is_none());
        let (len, status, body, cookies) = parse_head(head)?.ok_or("incomplete")?;
        assert_eq!((len, status, body), (head.len() - 2, 200, 2));
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")?.is_some());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        Ok(())
    }
}
