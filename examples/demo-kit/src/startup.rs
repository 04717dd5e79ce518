//! What a demo's `main` does before it serves, whatever the framework
//! (feature `startup`).

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use expected_core::{DynStore, Expected};
use tokio::task::JoinHandle;

use crate::{Accounts, DemoConfig, DemoState, Metrics, Passwords, open_store, redact};

/// A demo, started up and ready to serve: the settings, the accounts, the
/// adapter's layer or middleware over the engine, and that engine's cleaner.
#[derive(Debug)]
pub struct Demo<A> {
    /// The settings, from the environment.
    pub config: DemoConfig,
    /// The seeded demo users.
    pub accounts: Arc<Accounts>,
    /// The guard in front of them: one for the whole server, so every
    /// worker counts the same failures.
    pub passwords: Arc<Passwords>,
    /// The adapter (axum's `ExpectedLayer`, actix's `ExpectedMiddleware`):
    /// one, so one engine, shared by every route and worker.
    pub expected: A,
    /// The engine's background cleaner; [`Demo::stopped`] aborts it.
    pub cleaner: JoinHandle<()>,
    /// The Prometheus recorder, installed before the engine was built.
    pub metrics: Metrics,
}

impl<A> Demo<A> {
    /// Starts logging, installs the Prometheus recorder ([`Metrics`]), reads the settings (a bad one prints the list of
    /// settings and exits with status 2), opens the store (exit status 2 for
    /// a bad URL, 1 when it cannot be reached), seeds the accounts, builds the
    /// adapter over the engine with `adapter`, and spawns the cleaner of the
    /// adapter's engine (`engine`, its getter).
    ///
    /// # Errors
    ///
    /// The exit status, once the error is printed.
    pub async fn from_env(
        adapter: impl FnOnce(Expected<DynStore>) -> A,
        engine: impl FnOnce(&A) -> &Arc<Expected<DynStore>>,
    ) -> Result<Self, ExitCode> {
        tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_target(false).init();
        let metrics = Metrics::install();
        let config = DemoConfig::from_env_or_exit();
        let store = match open_store(&config.store).await {
            Ok(store) => store,
            Err(error) => return Err(fail(if error.is_configuration() { 2 } else { 1 }, &error.to_string())),
        };
        let accounts = match Accounts::seeded() {
            Ok(accounts) => Arc::new(accounts),
            Err(error) => return Err(fail(1, &error.to_string())),
        };
        if let Some(note) = config.secure_cookies_note() {
            tracing::warn!("{note}");
        }
        let expected = adapter(Expected::new(store, config.engine.clone()));
        let cleaner = engine(&expected).clone().spawn_cleaner();
        let passwords = Arc::new(Passwords::new(accounts.clone()));
        Ok(Self { config, accounts, passwords, expected, cleaner, metrics })
    }

    /// Exit status 1 for a server that cannot listen on the address.
    pub fn cannot_listen(&self, error: std::io::Error) -> ExitCode {
        fail(1, &format!("cannot listen on {}: {error}", self.config.addr))
    }

    /// Logs where the demo of `framework` listens, once it does.
    pub fn announce(&self, framework: &str) {
        tracing::info!(
            store = %redact(&self.config.store),
            grace = ?self.config.engine.grace_period(),
            grace_binding = self.config.engine.grace_binding().as_str(),
            fresh = ?self.config.fresh_for,
            token_key = self.config.engine.token_keys().map_or("none (random successors)", |keys| keys.current().id().as_str()),
            "expected demo ({framework}) on http://{}/ — log in as alice / alice-secret; Ctrl-C stops",
            self.config.addr
        );
    }

    /// What the handlers share: the accounts, their guard, the freshness
    /// window and the metrics.
    pub fn state(&self) -> DemoState {
        DemoState {
            accounts: self.accounts.clone(),
            passwords: self.passwords.clone(),
            fresh_for: self.config.fresh_for,
            metrics: self.metrics.clone(),
        }
    }

    /// Stops the cleaner once the server has stopped, and answers the exit
    /// status: 0, or 1 when the server `served` an error.
    pub fn stopped(self, served: std::io::Result<()>) -> ExitCode {
        self.cleaner.abort();
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(1, &error.to_string()),
        }
    }
}

/// Prints `error: {message}` to stderr; exit status `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(code)
}
