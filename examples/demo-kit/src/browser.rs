//! The browser end-to-end flow (feature `browser`): headless Chromium driven
//! over WebDriver through a demo's HTML pages, written once for every
//! adapter.
//!
//! 1. A visitor picks the dark theme (kept in a visitor session), then logs
//!    in through the form with "remember me": the theme stays, under a new
//!    session cookie, and home says the password was just typed.
//! 2. The browser restarts keeping only persistent cookies (the session
//!    cookie is gone): still logged in, by the remember-me cookie, and home
//!    says "remembered".
//! 3. The security page sends the remembered browser to the confirm-password
//!    page first: a wrong password is refused, the right one opens it.
//! 4. A second browser, the thief, gets a copy of the remember-me cookie and
//!    is logged in by it.
//! 5. After the grace window the victim restarts again and comes back: the
//!    theft alert. Then both browsers are logged out.
//! 6. Fresh logins on two browsers; one revokes the other on the devices
//!    page (whose forms all carry the session's CSRF token), and the other
//!    is logged out on its next request.
//! 7. The other logs in again; "sign out other devices" on the first one's
//!    devices page logs it out, and the first stays.
//!
//! Every page is saved as `target/browser-screenshots/<adapter>/NN-name.png`.
//!
//! ```ignore
//! // tests/browser.rs of an adapter
//! #[test]
//! fn browser_end_to_end() {
//!     expected_demo_kit::browser::test("axum", start);
//! }
//! ```
//!
//! Chromium and chromedriver come from Debian (`apt-get install chromium
//! chromium-driver`, which `cargo xtask test` does); `EXPECTED_CHROMIUM` and
//! `EXPECTED_CHROMEDRIVER` point elsewhere. Without them the test is skipped
//! loudly, or fails when `CI` is set.

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::config::{AUTH_COOKIE, SESSION_COOKIE};
use crate::scenarios::DemoServer;
use crate::webdriver::{Browser, Driver, Error};

/// The Chromium binary: `EXPECTED_CHROMIUM`, or Debian's.
pub fn chromium() -> PathBuf {
    std::env::var_os("EXPECTED_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// The chromedriver binary: `EXPECTED_CHROMEDRIVER`, or Debian's.
pub fn chromedriver() -> PathBuf {
    std::env::var_os("EXPECTED_CHROMEDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

/// Where the screenshots of `adapter` go: `target/browser-screenshots/<adapter>`
/// (under `CARGO_TARGET_DIR` when set).
pub fn screenshot_dir(adapter: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"), PathBuf::from);
    target.join("browser-screenshots").join(adapter)
}

/// Why the flow failed.
#[derive(Debug, thiserror::Error)]
#[error("browser flow: {0}")]
pub struct BrowserError(String);

impl From<Error> for BrowserError {
    fn from(error: Error) -> Self {
        Self(error.0)
    }
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), BrowserError> {
    if condition { Ok(()) } else { Err(BrowserError(message())) }
}

/// Runs the flow against a running server: builds the runtime, starts the
/// server with `start`, drives the browsers. Skips (loudly) when the browser
/// binaries are missing, unless `CI` is set.
///
/// # Panics
///
/// When the flow fails, or the binaries are missing under CI.
pub fn test<S, F, Fut>(adapter: &str, start: F)
where
    S: DemoServer,
    F: FnOnce() -> Fut,
    Fut: Future<Output = S>,
{
    let missing: Vec<String> = [chromium(), chromedriver()]
        .into_iter()
        .filter(|path| !path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if !missing.is_empty() {
        let why = format!("{} missing (apt-get install chromium chromium-driver)", missing.join(" and "));
        if crate::ci() {
            panic!("browser test: {why}, and CI is set, so this is a failure");
        }
        let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED browser test ({adapter}): {why}\n");
        return;
    }
    crate::scenarios::runtime().block_on(async move {
        let server = start().await;
        let base_url = server.base_url();
        let flow = run(&base_url, adapter, server.grace_period());
        match tokio::time::timeout(Duration::from_secs(240), flow).await {
            Ok(Ok(shots)) => {
                let _ = writeln!(std::io::stderr(), "browser test ({adapter}): {} screenshots", shots.len());
            }
            Ok(Err(error)) => panic!("{error}"),
            Err(_) => panic!("browser flow did not finish within 240 s"),
        }
    });
}

struct Flow {
    driver: Driver,
    base: String,
    dir: PathBuf,
    shots: Vec<PathBuf>,
}

impl Flow {
    async fn shot(&mut self, browser: &Browser, name: &str) -> Result<(), BrowserError> {
        let path = self.dir.join(format!("{:02}-{name}.png", self.shots.len() + 1));
        browser.screenshot(&path).await?;
        self.shots.push(path);
        Ok(())
    }

    async fn login(&self, browser: &Browser, user: &str, password: &str) -> Result<(), BrowserError> {
        browser.goto(&format!("{}/", self.base)).await?;
        browser.type_into("#username", user).await?;
        browser.type_into("#password", password).await?;
        browser.click("#remember").await?;
        browser.click("#sign-in").await?;
        let shown = browser.text("#user").await?;
        ensure(shown == user, || format!("home page greets {shown:?}, not {user:?}"))
    }

    async fn via(&self, browser: &Browser) -> Result<String, BrowserError> {
        Ok(browser.attribute("#via", "data-via").await?.unwrap_or_default())
    }

    /// How home says the user proved who they are: `password` or
    /// `remembered`.
    async fn method(&self, browser: &Browser) -> Result<String, BrowserError> {
        Ok(browser.attribute("#auth-method", "data-method").await?.unwrap_or_default())
    }

    /// Quits `browser` and starts a new one holding only its persistent
    /// cookies (those with an expiry), as a real browser restart does.
    async fn restart(&self, browser: Browser) -> Result<Browser, BrowserError> {
        let cookies = browser.cookies().await?;
        browser.quit().await?;
        let fresh = self.driver.browser().await?;
        fresh.goto(&format!("{}/healthz", self.base)).await?;
        for cookie in cookies.iter().filter(|cookie| cookie.get("expiry").is_some()) {
            fresh.add_cookie(cookie).await?;
        }
        Ok(fresh)
    }

    async fn assert_logged_out(&self, browser: &Browser) -> Result<(), BrowserError> {
        browser.goto(&format!("{}/", self.base)).await?;
        browser.find("#login-form").await?;
        ensure(!browser.exists("#user").await?, || "still logged in".to_owned())
    }
}

fn cookie<'a>(cookies: &'a [Value], name: &str) -> Option<&'a Value> {
    cookies.iter().find(|cookie| cookie["name"].as_str() == Some(name))
}

/// Drives the flow against the demo at `base_url` (whose grace window is
/// `grace`), saving screenshots under [`screenshot_dir`]`(adapter)`; answers
/// their paths.
pub async fn run(base_url: &str, adapter: &str, grace: Duration) -> Result<Vec<PathBuf>, BrowserError> {
    let dir = screenshot_dir(adapter);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| BrowserError(format!("{}: {e}", dir.display())))?;
    let driver = Driver::start(&chromedriver(), &chromium(), &dir.join("chromedriver.log")).await?;
    let mut flow = Flow { driver, base: base_url.trim_end_matches('/').to_owned(), dir, shots: Vec::new() };
    let home = format!("{}/", flow.base);
    let devices = format!("{}/devices", flow.base);

    // 1. A visitor picks the dark theme, then logs in with "remember me"
    //    through the form.
    let victim = flow.driver.browser().await?;
    victim.goto(&home).await?;
    victim.find("#login-form").await?;
    ensure(victim.count("body[data-theme=light]").await? == 1, || "a visitor starts light".to_owned())?;
    ensure(cookie(&victim.cookies().await?, SESSION_COOKIE).is_none(), || {
        "reading the login page makes no session".to_owned()
    })?;
    flow.shot(&victim, "login-form").await?;
    victim.click("#theme-dark").await?;
    victim.find("body[data-theme=dark] #login-form").await?;
    let visitor_session = cookie(&victim.cookies().await?, SESSION_COOKIE).map(|c| c["value"].clone());
    ensure(visitor_session.is_some(), || "the theme made a visitor session".to_owned())?;
    flow.shot(&victim, "visitor-dark-theme").await?;
    flow.login(&victim, "alice", "alice-secret").await?;
    ensure(flow.via(&victim).await? == "session", || "after the form, a session hit".to_owned())?;
    ensure(victim.text("#theme-name").await? == "dark", || "the theme came along".to_owned())?;
    ensure(victim.count("body[data-theme=dark]").await? == 1, || "home is dark".to_owned())?;
    ensure(flow.method(&victim).await? == "password", || "signed in with the password".to_owned())?;
    let said = victim.text("#auth-method").await?;
    ensure(said.contains("with your password just now"), || format!("home says {said:?}"))?;
    flow.shot(&victim, "home-after-login").await?;
    let cookies = victim.cookies().await?;
    let session = cookie(&cookies, SESSION_COOKIE).cloned().unwrap_or_default();
    let remember = cookie(&cookies, AUTH_COOKIE).cloned().unwrap_or_default();
    ensure(Some(&session["value"]) != visitor_session.as_ref(), || {
        "the login opened a new session id".to_owned()
    })?;
    ensure(session.get("expiry").is_none() && session["httpOnly"] == true, || {
        format!("the session cookie ends with the browser and is HttpOnly: {session}")
    })?;
    ensure(remember.get("expiry").is_some() && remember["httpOnly"] == true, || {
        format!("the remember-me cookie is persistent and HttpOnly: {remember}")
    })?;
    ensure(remember["secure"] == true && remember["sameSite"] == "Lax", || {
        format!("Chromium keeps the Secure, SameSite=Lax cookie on http://127.0.0.1: {remember}")
    })?;

    // 2. Restart the browser: the remember-me cookie logs alice back in.
    let victim = flow.restart(victim).await?;
    victim.goto(&home).await?;
    ensure(victim.text("#user").await? == "alice", || "logged in after a restart".to_owned())?;
    let via = flow.via(&victim).await?;
    ensure(via == "cookie", || format!("after a restart, via the remember-me cookie, not {via:?}"))?;
    ensure(flow.method(&victim).await? == "remembered", || "home says remembered".to_owned())?;
    ensure(victim.count("body[data-theme=light]").await? == 1, || {
        "a new session starts without the theme".to_owned()
    })?;
    flow.shot(&victim, "home-after-restart").await?;
    victim.goto(&devices).await?;
    ensure(victim.count("#devices tbody tr.current").await? == 1, || "one device, this one".to_owned())?;
    flow.shot(&victim, "devices-one").await?;

    // 3. The security page wants the password again on a remembered login.
    victim.goto(&format!("{}/security", flow.base)).await?;
    victim.find("#confirm-form").await?;
    let url = victim.url().await?;
    ensure(url.ends_with("/confirm-password?next=%2Fsecurity"), || format!("sent to confirm: {url}"))?;
    flow.shot(&victim, "confirm-password").await?;
    victim.type_into("#password", "not-her-password").await?;
    victim.click("#confirm").await?;
    victim.find("#confirm-error").await?;
    flow.shot(&victim, "confirm-password-wrong").await?;
    victim.type_into("#password", "alice-secret").await?;
    victim.click("#confirm").await?;
    victim.find("#security").await?;
    let url = victim.url().await?;
    ensure(url == format!("{}/security", flow.base), || format!("back on the security page: {url}"))?;
    flow.shot(&victim, "security-page").await?;
    victim.goto(&home).await?;
    ensure(flow.method(&victim).await? == "password", || "confirmed: password again".to_owned())?;
    ensure(victim.attribute("#freshness", "data-fresh").await?.as_deref() == Some("true"), || {
        "and fresh".to_owned()
    })?;

    // 4. The thief uses a copy of the (rotated) remember-me cookie.
    let stolen = victim.cookies().await?;
    let Some(stolen) = cookie(&stolen, AUTH_COOKIE).cloned() else {
        return Err(BrowserError("no remember-me cookie to copy".to_owned()));
    };
    let thief = flow.driver.browser().await?;
    thief.goto(&format!("{}/healthz", flow.base)).await?;
    thief.add_cookie(&stolen).await?;
    thief.goto(&home).await?;
    ensure(thief.text("#user").await? == "alice", || "the copied cookie logs the thief in".to_owned())?;
    ensure(flow.via(&thief).await? == "cookie", || "the thief got in by the cookie".to_owned())?;
    flow.shot(&thief, "thief-home").await?;

    // 5. After the grace window the victim comes back with the old token.
    tokio::time::sleep(grace + Duration::from_millis(500)).await;
    let victim = flow.restart(victim).await?;
    victim.goto(&home).await?;
    victim.find("#theft-alert").await?;
    ensure(!victim.exists("#user").await?, || "the victim is logged out".to_owned())?;
    flow.shot(&victim, "theft-alert").await?;
    flow.assert_logged_out(&thief).await?;
    ensure(!thief.exists("#theft-alert").await?, || "the alert is for the request that saw it".to_owned())?;
    flow.shot(&thief, "thief-logged-out").await?;
    flow.assert_logged_out(&victim).await?;
    ensure(!victim.exists("#theft-alert").await?, || "the alert is shown once".to_owned())?;

    // 6. Two fresh logins; the first revokes the second on the devices page.
    let phone = victim;
    let laptop = thief;
    flow.login(&phone, "alice", "alice-secret").await?;
    flow.login(&laptop, "alice", "alice-secret").await?;
    phone.goto(&devices).await?;
    let rows = phone.count("#devices tbody tr").await?;
    ensure(rows == 2, || format!("two devices listed, not {rows}"))?;
    let forms = phone.count("form[method=post]").await?;
    let guarded = phone.count("form[method=post] input[name=csrf_token]").await?;
    ensure(forms > 2 && guarded == forms, || {
        format!("every form carries the CSRF token: {guarded} of {forms}")
    })?;
    flow.shot(&phone, "devices-two").await?;
    phone.click("#devices tbody tr:not(.current) button[data-revoke]").await?;
    phone.wait_count("#devices tbody tr", 1).await?;
    ensure(phone.count("#devices tbody tr.current").await? == 1, || {
        "this device is the one left".to_owned()
    })?;
    ensure(phone.url().await? == devices, || "back on the devices page".to_owned())?;
    flow.shot(&phone, "devices-after-revoke").await?;
    flow.assert_logged_out(&laptop).await?;
    flow.shot(&laptop, "revoked-device-logged-out").await?;
    phone.goto(&home).await?;
    ensure(phone.text("#user").await? == "alice", || "the revoking device stays in".to_owned())?;

    // 7. The laptop logs in again; the phone signs out every other device.
    flow.login(&laptop, "alice", "alice-secret").await?;
    phone.goto(&devices).await?;
    ensure(phone.count("#devices tbody tr").await? == 2, || "the laptop is back".to_owned())?;
    phone.click("#logout-others").await?;
    phone.find("#others-ended").await?;
    phone.wait_count("#devices tbody tr", 1).await?;
    let notice = phone.text("#others-ended").await?;
    ensure(notice.contains("1 remembered device and 1 session ended"), || format!("the notice: {notice:?}"))?;
    ensure(phone.count("#devices tbody tr.current").await? == 1, || "this device stays".to_owned())?;
    flow.shot(&phone, "devices-after-sign-out-others").await?;
    flow.assert_logged_out(&laptop).await?;
    phone.goto(&home).await?;
    ensure(phone.text("#user").await? == "alice", || "the phone stays signed in".to_owned())?;

    phone.quit().await?;
    laptop.quit().await?;
    Ok(flow.shots)
}
