//! The demo's settings, from the environment.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use expected_core::{Config, ConfigError, GraceBinding, KeyError, TokenKeys};

/// The environment variables a demo reads, and their defaults.
pub mod env {
    /// Address to listen on. Default [`DEFAULT_ADDR`].
    pub const ADDR: &str = "EXPECTED_ADDR";
    /// Store URL (see [`open_store`](crate::open_store)). Default [`DEFAULT_STORE`].
    pub const STORE: &str = "EXPECTED_STORE";
    /// Grace window in seconds (`0` disables it). Default 30.
    pub const GRACE_SECS: &str = "EXPECTED_GRACE_SECS";
    /// Who may use the grace window: `client` (default: the rotation's
    /// `User-Agent` from its network), `user-agent` (any network) or `off`
    /// (anyone holding the previous token). See
    /// [`GraceBinding`](expected_core::GraceBinding).
    pub const GRACE_BINDING: &str = "EXPECTED_GRACE_BINDING";
    /// Session idle timeout in seconds. Default 1800.
    pub const SESSION_IDLE_SECS: &str = "EXPECTED_SESSION_IDLE_SECS";
    /// Max-Age of the remember-me cookie, and how long an unused login lives,
    /// in seconds. Default 90 days.
    pub const COOKIE_MAX_AGE_SECS: &str = "EXPECTED_COOKIE_MAX_AGE_SECS";
    /// `1` (default) for `Secure` cookies, `0` for plain HTTP on another host
    /// than localhost.
    pub const SECURE_COOKIES: &str = "EXPECTED_SECURE_COOKIES";
    /// How long after typing the password a session counts as fresh (the
    /// security page, `POST /api/sensitive`), in seconds. Default
    /// [`DEFAULT_FRESH_SECS`].
    pub const FRESH_SECS: &str = "EXPECTED_FRESH_SECS";
    /// How long a session lives at most however active, in seconds. Default:
    /// the library's (12 hours).
    pub const SESSION_ABSOLUTE_SECS: &str = "EXPECTED_SESSION_ABSOLUTE_SECS";
    /// How long a remembered login lives at most from its password login,
    /// however often it is used, in seconds. Default: the library's (365
    /// days).
    pub const LOGIN_LIFETIME_SECS: &str = "EXPECTED_LOGIN_LIFETIME_SECS";
    /// The cookies' `Domain` attribute, to share them with subdomains.
    /// Default none: host-only cookies. Setting it on a running deployment is
    /// the "Domain change" the engine survives: browsers then send the old
    /// host-only cookies next to the new ones, and the engine picks the good
    /// value and clears the host-only twin.
    pub const COOKIE_DOMAIN: &str = "EXPECTED_COOKIE_DOMAIN";
    /// The token keys (`id:base64url-secret,…`, the current key first):
    /// successor tokens derived from their predecessors, so that a store
    /// that lost its last rotations (a failover, a restored backup) heals
    /// instead of raising theft (`docs/protocol.md` §13). Required with a
    /// `redis-cluster://` store.
    pub const TOKEN_KEYS: &str = "EXPECTED_TOKEN_KEYS";

    /// The default listening address.
    pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
    /// The default store: a SQLite file in the working directory, so that
    /// logins survive a restart of the demo.
    pub const DEFAULT_STORE: &str = "sqlite:expected-demo.db";
    /// The default freshness window: ten minutes.
    pub const DEFAULT_FRESH_SECS: u64 = 600;

    /// The variables and their defaults, for error messages.
    pub const USAGE: &str = "settings (environment variables):
  EXPECTED_ADDR                   address to listen on (default 127.0.0.1:3000)
  EXPECTED_STORE                  memory:, sqlite:FILE, postgres://…, mysql://…, redis://…,
                                  redis-cluster://HOST:PORT,HOST:PORT,…
                                  (default sqlite:expected-demo.db)
  EXPECTED_GRACE_SECS             grace window after a token rotation, 0 to disable (default 30)
  EXPECTED_GRACE_BINDING          who gets grace: client (default: same browser and network),
                                  user-agent (same browser, any network) or off (anyone)
  EXPECTED_SESSION_IDLE_SECS      session idle timeout (default 1800)
  EXPECTED_SESSION_ABSOLUTE_SECS  longest life of a session, however active (default 43200: 12 hours)
  EXPECTED_COOKIE_MAX_AGE_SECS    remember-me lifetime while unused (default 7776000: 90 days)
  EXPECTED_LOGIN_LIFETIME_SECS    longest life of a remembered login, however used (default 31536000: 365 days)
  EXPECTED_FRESH_SECS             how long a typed password opens the security page (default 600)
  EXPECTED_SECURE_COOKIES         1 (default) or 0 for plain HTTP on a host other than localhost
  EXPECTED_COOKIE_DOMAIN          the cookies' Domain, to share them with subdomains (default none: host-only)
  EXPECTED_TOKEN_KEYS             token keys, id:base64url-secret (32+ random bytes), current first, then
                                  fallbacks, comma-separated: rollback-safe rotations (required for
                                  redis-cluster://; default none: random successors)";
}

/// Name of the session cookie in the demos.
pub const SESSION_COOKIE: &str = "session";
/// Name of the remember-me cookie in the demos.
pub const AUTH_COOKIE: &str = "remember_me";

/// Why the environment does not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum DemoConfigError {
    /// A variable holds something that is not what it should be.
    #[error("{name}={value:?}: {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What it held.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// The values parse but do not make a consistent configuration.
    #[error("inconsistent settings: {0}")]
    Inconsistent(#[from] ConfigError),
    /// `EXPECTED_TOKEN_KEYS` is not a valid key list.
    #[error("EXPECTED_TOKEN_KEYS: {0}")]
    Keys(#[from] KeyError),
    /// A store that can fail over without its last writes, and no token keys.
    #[error(
        "{store}: a Redis Cluster can fail over to a replica without the last rotations; set {} \
         (id:base64url-secret of 32+ random bytes, e.g. `k1:$(openssl rand -base64 32 | tr '+/' '-_')`) \
         so that they heal instead of raising theft",
        env::TOKEN_KEYS
    )]
    KeysRequired {
        /// The store URL.
        store: String,
    },
}

/// The settings of a demo server.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The store URL, for [`open_store`](crate::open_store).
    pub store: String,
    /// The engine's configuration, cookie names `session` and `remember_me`.
    pub engine: Config,
    /// How long after typing the password a session is fresh enough for the
    /// security page and `POST /api/sensitive`.
    pub fresh_for: Duration,
}

fn parse_secs(name: &'static str, value: &str) -> Result<Duration, DemoConfigError> {
    value.trim().parse::<u64>().map(Duration::from_secs).map_err(|_| DemoConfigError::Invalid {
        name,
        value: value.to_owned(),
        expected: "a whole number of seconds",
    })
}

fn parse_positive_secs(name: &'static str, value: &str) -> Result<Duration, DemoConfigError> {
    match parse_secs(name, value) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(DemoConfigError::Invalid {
            name,
            value: value.to_owned(),
            expected: "a whole number of seconds, more than zero",
        }),
    }
}

fn parse_flag(name: &'static str, value: &str) -> Result<bool, DemoConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(DemoConfigError::Invalid { name, value: value.to_owned(), expected: "1 or 0" }),
    }
}

impl DemoConfig {
    /// Reads the [`env`](mod@crate::env) variables; unset or empty ones take their default.
    pub fn from_env() -> Result<Self, DemoConfigError> {
        Self::from_lookup(|name| std::env::var_os(name).map(|value| value.to_string_lossy().into_owned()))
    }

    /// Like [`from_env`](Self::from_env), but on an error prints it with the
    /// list of variables to stderr and exits with status 2.
    pub fn from_env_or_exit() -> Self {
        match Self::from_env() {
            Ok(config) => config,
            Err(error) => {
                let mut stderr = std::io::stderr();
                let _ = writeln!(stderr, "error: {error}\n\n{}", env::USAGE);
                std::process::exit(2);
            }
        }
    }

    /// Reads the settings through `lookup` (a variable's value, if set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DemoConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let addr_text = get(env::ADDR).unwrap_or_else(|| env::DEFAULT_ADDR.to_owned());
        let addr = addr_text.trim().parse::<SocketAddr>().map_err(|_| DemoConfigError::Invalid {
            name: env::ADDR,
            value: addr_text.clone(),
            expected: "an IP address and port, like 127.0.0.1:3000 or [::1]:3000",
        })?;
        let store = get(env::STORE).unwrap_or_else(|| env::DEFAULT_STORE.to_owned());
        let mut builder = Config::builder().session_cookie_name(SESSION_COOKIE).auth_cookie_name(AUTH_COOKIE);
        if let Some(value) = get(env::GRACE_SECS) {
            builder = builder.grace_period(parse_secs(env::GRACE_SECS, &value)?);
        }
        if let Some(value) = get(env::GRACE_BINDING) {
            let binding = value.parse::<GraceBinding>().map_err(|_| DemoConfigError::Invalid {
                name: env::GRACE_BINDING,
                value: value.clone(),
                expected: "client, user-agent or off",
            })?;
            builder = builder.grace_binding(binding);
        }
        if let Some(value) = get(env::SESSION_IDLE_SECS) {
            builder = builder.session_idle_timeout(parse_secs(env::SESSION_IDLE_SECS, &value)?);
        }
        if let Some(value) = get(env::COOKIE_MAX_AGE_SECS) {
            builder = builder.cookie_max_age(parse_secs(env::COOKIE_MAX_AGE_SECS, &value)?);
        }
        if let Some(value) = get(env::SESSION_ABSOLUTE_SECS) {
            builder = builder.session_absolute_timeout(parse_secs(env::SESSION_ABSOLUTE_SECS, &value)?);
        }
        if let Some(value) = get(env::LOGIN_LIFETIME_SECS) {
            builder = builder.login_lifetime(parse_secs(env::LOGIN_LIFETIME_SECS, &value)?);
        }
        let fresh_for = match get(env::FRESH_SECS) {
            Some(value) => parse_positive_secs(env::FRESH_SECS, &value)?,
            None => Duration::from_secs(env::DEFAULT_FRESH_SECS),
        };
        if let Some(value) = get(env::SECURE_COOKIES) {
            builder = builder.secure(parse_flag(env::SECURE_COOKIES, &value)?);
        }
        if let Some(value) = get(env::COOKIE_DOMAIN) {
            // The engine's configuration checks it (visible ASCII, a domain's
            // characters, never with a `__Host-` name).
            builder = builder.domain(Some(value.trim().to_owned()));
        }
        let store = store.trim().to_owned();
        match get(env::TOKEN_KEYS) {
            Some(list) => builder = builder.token_keys(Some(TokenKeys::parse(&list)?)),
            None if crate::store::is_cluster_url(&store) => {
                return Err(DemoConfigError::KeysRequired { store: crate::redact(&store) });
            }
            None => {}
        }
        Ok(Self { addr, store, engine: builder.build()?, fresh_for })
    }

    /// A line for the startup log about the `Secure` attribute: browsers
    /// store `Secure` cookies only over HTTPS, except on `localhost` and
    /// loopback addresses, where Chromium and Firefox treat plain HTTP as
    /// secure (Safari does not).
    pub fn secure_cookies_note(&self) -> Option<String> {
        if !self.engine.secure() {
            return Some(format!(
                "{}=0: cookies without Secure, for plain HTTP only; never in production",
                env::SECURE_COOKIES
            ));
        }
        if self.addr.ip().is_loopback() {
            return None;
        }
        Some(format!(
            "cookies are Secure: browsers keep them over HTTPS (put a TLS proxy in front), or on \
             http://localhost; for plain HTTP on {} set {}=0",
            self.addr,
            env::SECURE_COOKIES
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<DemoConfig, DemoConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        DemoConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults() -> Result<(), DemoConfigError> {
        let config = config(&[])?;
        assert_eq!(config.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(config.store, env::DEFAULT_STORE);
        assert_eq!(config.engine.session_cookie_name(), "session");
        assert_eq!(config.engine.auth_cookie_name(), "remember_me");
        assert!(config.engine.secure());
        assert_eq!(config.engine.grace_period(), Duration::from_secs(30));
        assert_eq!(config.engine.grace_binding(), GraceBinding::Client, "grace for the rotating client");
        assert_eq!(config.fresh_for, Duration::from_secs(600));
        let library = Config::default();
        assert_eq!(config.engine.session_absolute_timeout(), library.session_absolute_timeout());
        assert_eq!(config.engine.login_lifetime(), library.login_lifetime());
        assert_eq!(config.engine.domain(), None, "host-only cookies by default");
        assert_eq!(config.secure_cookies_note(), None, "Secure on loopback needs no note");
        Ok(())
    }

    #[test]
    fn every_variable_is_read() -> Result<(), DemoConfigError> {
        let config = config(&[
            (env::ADDR, "[::1]:8080"),
            (env::STORE, " memory: "),
            (env::GRACE_SECS, "5"),
            (env::GRACE_BINDING, " User-Agent "),
            (env::SESSION_IDLE_SECS, "60"),
            (env::COOKIE_MAX_AGE_SECS, "3600"),
            (env::SECURE_COOKIES, "0"),
            (env::FRESH_SECS, "120"),
            (env::SESSION_ABSOLUTE_SECS, "7200"),
            (env::LOGIN_LIFETIME_SECS, "86400"),
            (env::COOKIE_DOMAIN, " example.com "),
        ])?;
        assert_eq!(config.addr.to_string(), "[::1]:8080");
        assert_eq!(config.store, "memory:");
        assert_eq!(config.engine.grace_period(), Duration::from_secs(5));
        assert_eq!(config.engine.grace_binding(), GraceBinding::UserAgent);
        assert_eq!(config.engine.session_idle_timeout(), Duration::from_secs(60));
        assert_eq!(config.engine.cookie_max_age(), Duration::from_secs(3600));
        assert!(!config.engine.secure());
        assert_eq!(config.fresh_for, Duration::from_secs(120));
        assert_eq!(config.engine.session_absolute_timeout(), Duration::from_secs(7200));
        assert_eq!(config.engine.login_lifetime(), Duration::from_secs(86400));
        assert_eq!(config.engine.domain(), Some("example.com"));
        assert!(config.secure_cookies_note().is_some());
        Ok(())
    }

    #[test]
    fn bad_values_are_named() {
        for (vars, needle) in [
            (vec![(env::ADDR, "localhost")], "EXPECTED_ADDR=\"localhost\""),
            (vec![(env::GRACE_SECS, "-1")], "EXPECTED_GRACE_SECS"),
            (vec![(env::SECURE_COOKIES, "maybe")], "EXPECTED_SECURE_COOKIES"),
            (vec![(env::GRACE_SECS, "4000")], "grace period"),
            (vec![(env::GRACE_BINDING, "ip")], "EXPECTED_GRACE_BINDING=\"ip\": client, user-agent or off"),
            (vec![(env::SESSION_IDLE_SECS, "0")], "longer than zero"),
            (
                vec![(env::FRESH_SECS, "0")],
                "EXPECTED_FRESH_SECS=\"0\": a whole number of seconds, more than zero",
            ),
            (vec![(env::FRESH_SECS, "ten")], "EXPECTED_FRESH_SECS"),
            (vec![(env::SESSION_ABSOLUTE_SECS, "soon")], "EXPECTED_SESSION_ABSOLUTE_SECS"),
            (vec![(env::SESSION_ABSOLUTE_SECS, "60")], "absolute timeout"),
            (vec![(env::LOGIN_LIFETIME_SECS, "-5")], "EXPECTED_LOGIN_LIFETIME_SECS"),
            (vec![(env::LOGIN_LIFETIME_SECS, "60")], "login lifetime"),
            (vec![(env::COOKIE_DOMAIN, "exa mple.com")], "not a valid domain"),
        ] {
            match config(&vars) {
                Ok(_) => panic!("{vars:?} was accepted"),
                Err(error) => assert!(error.to_string().contains(needle), "{error} lacks {needle}"),
            }
        }
    }

    #[test]
    fn every_grace_binding_is_read() -> Result<(), DemoConfigError> {
        for (text, binding) in [
            ("client", GraceBinding::Client),
            ("user-agent", GraceBinding::UserAgent),
            ("off", GraceBinding::Off),
        ] {
            let config = config(&[(env::GRACE_BINDING, text)])?;
            assert_eq!(config.engine.grace_binding(), binding, "{text}");
        }
        Ok(())
    }

    #[test]
    fn outside_loopback_the_note_explains_secure() -> Result<(), DemoConfigError> {
        let config = config(&[(env::ADDR, "0.0.0.0:3000")])?;
        let note = config.secure_cookies_note().unwrap_or_default();
        assert!(note.contains("EXPECTED_SECURE_COOKIES=0"), "{note}");
        Ok(())
    }

    #[test]
    fn token_keys_come_from_the_environment_and_a_cluster_needs_them() {
        let key = "k1:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI";
        let keyed = config(&[(env::TOKEN_KEYS, key)]).unwrap_or_else(|e| panic!("{e}"));
        let keys = keyed.engine.token_keys().map(|keys| keys.current().id().as_str().to_owned());
        assert_eq!(keys.as_deref(), Some("k1"));
        assert_eq!(keyed.engine.rollback_steps(), 32);
        assert_eq!(
            config(&[]).map(|c| c.engine.token_keys().is_none()).ok(),
            Some(true),
            "optional elsewhere"
        );
        match config(&[(env::TOKEN_KEYS, "k1:c2hvcnQ")]) {
            Err(error @ DemoConfigError::Keys(KeyError::TooShort { .. })) => {
                assert!(error.to_string().starts_with("EXPECTED_TOKEN_KEYS: "), "{error}");
            }
            other => panic!("a short key: {other:?}"),
        }
        assert!(matches!(
            config(&[(env::TOKEN_KEYS, "nokey")]),
            Err(DemoConfigError::Keys(KeyError::BadEntry(1)))
        ));
        let cluster = "redis-cluster://127.0.0.1:7001,127.0.0.1:7002";
        match config(&[(env::STORE, cluster)]) {
            Err(error @ DemoConfigError::KeysRequired { .. }) => {
                assert!(error.to_string().contains("EXPECTED_TOKEN_KEYS"), "{error}");
            }
            other => panic!("a cluster without keys: {other:?}"),
        }
        assert!(config(&[(env::STORE, cluster), (env::TOKEN_KEYS, key)]).is_ok());
    }
}
