//! A small W3C WebDriver client over the suite's HTTP client: the dozen
//! commands the browser flow needs, against a chromedriver this module starts.
//! (A full client crate would bring its own HTTP stack and Unicode tables
//! for this.)

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

/// The key of an element reference in W3C WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Error(pub(crate) String);

pub(crate) type Result<T> = std::result::Result<T, Error>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(Error(message.into()))
}

/// A running chromedriver, stopped on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
    chromium: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error(format!("no free port: {e}")))?;
    listener.local_addr().map(|addr| addr.port()).map_err(|e| Error(format!("no free port: {e}")))
}

impl Driver {
    /// Starts `chromedriver` on a free loopback port, its log in `log`, and
    /// waits until it is ready.
    pub(crate) async fn start(chromedriver: &Path, chromium: &Path, log: &Path) -> Result<Self> {
        let port = free_port()?;
        let log_file = std::fs::File::create(log).map_err(|e| Error(format!("{}: {e}", log.display())))?;
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| Error(format!("cannot start {}: {e}", chromedriver.display())))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error(format!("HTTP client: {e}")))?;
        let driver =
            Self { child, url: format!("http://127.0.0.1:{port}"), http, chromium: chromium.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = driver.command(Method::GET, "/status", None).await;
            if ready.as_ref().is_ok_and(|value| value["ready"].as_bool() == Some(true)) {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                return fail(format!("chromedriver not ready after 20 s: {ready:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a command and answers its `value`, or the WebDriver error.
    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        send(&self.http, method, &format!("{}{path}", self.url), body).await
    }

    /// Starts a new headless Chromium with a fresh profile.
    pub(crate) async fn browser(&self) -> Result<Browser> {
        static PROFILES: AtomicU64 = AtomicU64::new(0);
        let profile = std::env::temp_dir().join(format!(
            "expected-browser-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).map_err(|e| Error(format!("{}: {e}", profile.display())))?;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1100,820",
            "--hide-scrollbars",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": self.chromium.display().to_string(), "args": args }
                }
            }
        });
        let value = self.command(Method::POST, "/session", Some(capabilities)).await?;
        let Some(id) = value["sessionId"].as_str() else {
            return fail(format!("new session answered no id: {value}"));
        };
        Ok(Browser { http: self.http.clone(), session: format!("{}/session/{id}", self.url), profile })
    }
}

async fn send(http: &reqwest::Client, method: Method, url: &str, body: Option<Value>) -> Result<Value> {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
    }
    let response = request.send().await.map_err(|e| Error(format!("{method} {url}: {e}")))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| Error(format!("{method} {url}: {e}")))?;
    let answer: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error(format!("{method} {url}: {status}, not JSON ({e})")))?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if !status.is_success() {
        return fail(format!(
            "{method} {url}: {status} {}: {}",
            value["error"].as_str().unwrap_or("?"),
            value["message"].as_str().unwrap_or("").lines().next().unwrap_or("")
        ));
    }
    Ok(value)
}

/// One browser (a WebDriver session) with its own profile.
pub(crate) struct Browser {
    http: reqwest::Client,
    session: String,
    profile: PathBuf,
}

impl Browser {
    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        send(&self.http, method, &format!("{}{path}", self.session), body).await
    }

    /// Navigates to `url` and waits for the page to load.
    pub(crate) async fn goto(&self, url: &str) -> Result<()> {
        self.command(Method::POST, "/url", Some(json!({ "url": url }))).await.map(drop)
    }

    /// The current URL.
    pub(crate) async fn url(&self) -> Result<String> {
        let value = self.command(Method::GET, "/url", None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The element `css` selects, if there is one now.
    async fn find_now(&self, css: &str) -> Result<Option<String>> {
        let body = json!({ "using": "css selector", "value": css });
        match self.command(Method::POST, "/element", Some(body)).await {
            Ok(value) => Ok(value[ELEMENT_KEY].as_str().map(str::to_owned)),
            Err(Error(message)) if message.contains("no such element") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Whether `css` selects an element now.
    pub(crate) async fn exists(&self, css: &str) -> Result<bool> {
        self.find_now(css).await.map(|found| found.is_some())
    }

    /// The element `css` selects, waiting up to 10 s for it.
    pub(crate) async fn find(&self, css: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(id) = self.find_now(css).await? {
                return Ok(id);
            }
            if Instant::now() > deadline {
                let url = self.url().await.unwrap_or_default();
                return fail(format!("no element {css:?} on {url} after 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the element `css` selects.
    pub(crate) async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.find(css).await?;
        self.command(Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await?;
        self.command(Method::POST, &format!("/element/{id}/value"), Some(json!({ "text": text })))
            .await
            .map(drop)
    }

    /// Clicks the element `css` selects.
    pub(crate) async fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css).await?;
        self.command(Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await.map(drop)
    }

    /// The visible text of the element `css` selects.
    pub(crate) async fn text(&self, css: &str) -> Result<String> {
        let id = self.find(css).await?;
        let value = self.command(Method::GET, &format!("/element/{id}/text"), None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// An attribute of the element `css` selects.
    pub(crate) async fn attribute(&self, css: &str, name: &str) -> Result<Option<String>> {
        let id = self.find(css).await?;
        let value = self.command(Method::GET, &format!("/element/{id}/attribute/{name}"), None).await?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// How many elements `css` selects.
    pub(crate) async fn count(&self, css: &str) -> Result<usize> {
        let body = json!({ "using": "css selector", "value": css });
        let value = self.command(Method::POST, "/elements", Some(body)).await?;
        Ok(value.as_array().map_or(0, Vec::len))
    }

    /// Waits up to 10 s until `css` selects exactly `expected` elements (after
    /// a click that navigates, the old page may still be there for a moment).
    pub(crate) async fn wait_count(&self, css: &str, expected: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.count(css).await?;
            if found == expected {
                return Ok(());
            }
            if Instant::now() > deadline {
                let url = self.url().await.unwrap_or_default();
                return fail(format!("{found} elements {css:?} on {url} after 10 s, not {expected}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every cookie of the current page, as WebDriver serializes them
    /// (`name`, `value`, `path`, `domain`, `secure`, `httpOnly`, `sameSite`,
    /// and `expiry` for persistent ones).
    pub(crate) async fn cookies(&self) -> Result<Vec<Value>> {
        let value = self.command(Method::GET, "/cookie", None).await?;
        Ok(value.as_array().cloned().unwrap_or_default())
    }

    /// Adds a cookie (a WebDriver cookie object) for the current page's host.
    pub(crate) async fn add_cookie(&self, cookie: &Value) -> Result<()> {
        let mut cookie = cookie.clone();
        if let Some(object) = cookie.as_object_mut() {
            // Host-only, like the original.
            object.remove("domain");
        }
        self.command(Method::POST, "/cookie", Some(json!({ "cookie": cookie }))).await.map(drop)
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub(crate) async fn screenshot(&self, path: &Path) -> Result<()> {
        let value = self.command(Method::GET, "/screenshot", None).await?;
        let png = STANDARD
            .decode(value.as_str().unwrap_or_default())
            .map_err(|e| Error(format!("screenshot is not base64: {e}")))?;
        std::fs::write(path, png).map_err(|e| Error(format!("{}: {e}", path.display())))
    }

    /// Ends the session (Chromium exits) and deletes the profile.
    pub(crate) async fn quit(self) -> Result<()> {
        let result = self.command(Method::DELETE, "", None).await.map(drop);
        let _ = std::fs::remove_dir_all(&self.profile);
        result
    }
}
