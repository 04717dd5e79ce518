//! Validated configuration: every [`Config`] that exists is a consistent one.

use std::num::NonZeroUsize;
use std::time::Duration;

use cookie::SameSite;

use crate::keys::TokenKeys;

/// Default of [`ConfigBuilder::rollback_steps`].
pub const DEFAULT_ROLLBACK_STEPS: u16 = 32;

/// Largest [`ConfigBuilder::rollback_steps`] accepted.
pub const MAX_ROLLBACK_STEPS: u16 = 1024;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The session cookie and the auth cookie have the same name.
    #[error("the session cookie and the auth cookie must have different names (both are {0:?})")]
    SameCookieName(String),
    /// A cookie name is empty or has characters a cookie name cannot have.
    #[error("{0:?} is not a valid cookie name (RFC 6265 token characters only)")]
    InvalidCookieName(String),
    /// A `__Host-` or `__Secure-` cookie without the Secure attribute.
    #[error("cookie {0:?} has a __Host- or __Secure- prefix, which browsers only accept with Secure")]
    PrefixRequiresSecure(String),
    /// A `__Host-` cookie with a Domain.
    #[error("cookie {0:?} has the __Host- prefix, which forbids a Domain")]
    HostPrefixForbidsDomain(String),
    /// A `__Host-` cookie with a path other than `/`.
    #[error("cookie {0:?} has the __Host- prefix, which requires Path=/")]
    HostPrefixRequiresRootPath(String),
    /// `SameSite=None` without Secure, which browsers reject.
    #[error("SameSite=None requires Secure cookies")]
    SameSiteNoneRequiresSecure,
    /// The path does not start with `/` or has characters a cookie attribute cannot hold.
    #[error("cookie path {0:?} must start with '/' and hold no ';' or control characters")]
    InvalidPath(String),
    /// The domain has characters a cookie attribute cannot hold.
    #[error("cookie domain {0:?} is not a valid domain")]
    InvalidDomain(String),
    /// A duration that must be positive is zero.
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
    /// The grace window is not shorter than the session idle timeout, so the
    /// successor session could expire before the grace window ends.
    #[error("the grace period ({grace:?}) must be shorter than the session idle timeout ({idle:?})")]
    GraceNotShorterThanSession {
        /// The grace period asked for.
        grace: Duration,
        /// The session idle timeout asked for.
        idle: Duration,
    },
    /// The session idle timeout is longer than the auth cookie's max age.
    #[error("the session idle timeout ({idle:?}) must not exceed the cookie max age ({max_age:?})")]
    SessionOutlivesLogin {
        /// The session idle timeout asked for.
        idle: Duration,
        /// The cookie max age asked for.
        max_age: Duration,
    },
    /// The session absolute timeout is shorter than the idle timeout, which
    /// then would never apply.
    #[error(
        "the session absolute timeout ({absolute:?}) must not be shorter than the idle timeout ({idle:?})"
    )]
    AbsoluteShorterThanIdle {
        /// The absolute timeout asked for.
        absolute: Duration,
        /// The session idle timeout asked for.
        idle: Duration,
    },
    /// The login lifetime is shorter than the session idle timeout: a login
    /// would end before the first session it opened.
    #[error("the login lifetime ({lifetime:?}) must not be shorter than the session idle timeout ({idle:?})")]
    LoginLifetimeShorterThanSession {
        /// The login lifetime asked for.
        lifetime: Duration,
        /// The session idle timeout asked for.
        idle: Duration,
    },
    /// The session data limit is too small to hold an empty object.
    #[error("the session data limit must be at least 2 bytes (an empty JSON object), not {0}")]
    SessionDataLimitTooSmall(usize),
    /// A duration too large to compute with.
    #[error("{0} is too large")]
    DurationTooLarge(&'static str),
    /// More rollback steps than [`MAX_ROLLBACK_STEPS`].
    #[error("rollback steps must be at most {MAX_ROLLBACK_STEPS}, not {0}")]
    TooManyRollbackSteps(u16),
    /// Rollback steps set without token keys to walk with.
    #[error("rollback steps ({0}) need token keys: without them successor tokens are random")]
    RollbackStepsWithoutKeys(u16),
}

/// Which clients the grace window serves (`ConfigBuilder::grace_binding`).
///
/// A rotation records the client that made it (`Login::client`: its IP and
/// `User-Agent`). A request that presents the token that rotation replaced,
/// inside the grace window, is judged against that client: a concurrent
/// request or a retried lost response comes from the same browser, while a
/// thief who copied the cookies and polls with them comes from another one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GraceBinding {
    /// The default. Grace only for the same `User-Agent` from an IP in the
    /// same /24 (IPv4) or /48 (IPv6) as the rotation recorded. Another
    /// `User-Agent` is theft (another browser holds this device's previous
    /// token). The same `User-Agent` from another network gets no grace (its
    /// cookies are cleared), but nothing is revoked: a network change (Wi-Fi
    /// to mobile) is the commonest cause of a lost response.
    #[default]
    Client,
    /// Grace for the same `User-Agent`, from any address; another
    /// `User-Agent` is theft. For clients whose address changes between
    /// requests (some mobile carriers, privacy relays).
    UserAgent,
    /// Grace for whoever presents the previous token inside the window: the
    /// behaviour before 0.2. A thief who holds both cookies and replays them
    /// within the window of every rotation is then never detected.
    Off,
}

impl GraceBinding {
    /// `client`, `user-agent` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::UserAgent => "user-agent",
            Self::Off => "off",
        }
    }
}

impl std::str::FromStr for GraceBinding {
    type Err = UnknownGraceBinding;

    /// `client`, `user-agent` or `off`, in any letter case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "client" => Ok(Self::Client),
            "user-agent" => Ok(Self::UserAgent),
            "off" => Ok(Self::Off),
            _ => Err(UnknownGraceBinding(text.to_owned())),
        }
    }
}

/// A [`GraceBinding`] name that is none of `client`, `user-agent`, `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a grace binding (client, user-agent or off)")]
pub struct UnknownGraceBinding(pub String);

/// The default of [`ConfigBuilder::max_sessions_per_user`]: room for every
/// one of the 20 remembered devices [`Config::max_logins_per_user`] allows
/// by default, each with its session and a grace session, and as many
/// password logins without "remember me" again, while a user's sessions
/// stay few enough that ending all of them is one short step for any store
/// (a few hundred microseconds of one Redis script).
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 64;

/// The engine's configuration. Build one with [`Config::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) session_cookie_name: String,
    pub(crate) auth_cookie_name: String,
    pub(crate) secure: bool,
    pub(crate) same_site: SameSite,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) cookie_max_age: Duration,
    pub(crate) session_idle_timeout: Duration,
    pub(crate) session_absolute_timeout: Duration,
    pub(crate) login_lifetime: Duration,
    pub(crate) max_session_data_bytes: usize,
    pub(crate) grace_period: Duration,
    pub(crate) grace_binding: GraceBinding,
    pub(crate) cleaner_period: Duration,
    pub(crate) max_logins_per_user: Option<NonZeroUsize>,
    pub(crate) token_keys: Option<TokenKeys>,
    pub(crate) rollback_steps: u16,
    pub(crate) max_sessions_per_user: Option<NonZeroUsize>,
}

impl Default for Config {
    fn default() -> Self {
        ConfigBuilder::default().settings
    }
}

impl Config {
    /// A builder starting from the defaults:
    ///
    /// | setting | default |
    /// |---|---|
    /// | session cookie name | `session` |
    /// | auth cookie name | `remember_me` |
    /// | Secure | on |
    /// | SameSite | `Lax` |
    /// | Path | `/` |
    /// | Domain | none (host-only) |
    /// | cookie max age (auth cookie, and how long a login lives unused) | 90 days |
    /// | session idle timeout | 30 minutes |
    /// | session absolute timeout (however active) | 12 hours |
    /// | login lifetime (from its password login, however often used) | 365 days |
    /// | session data limit (serialized JSON) | 64 KiB |
    /// | grace period | 30 seconds |
    /// | grace binding (who may use the grace window) | [`GraceBinding::Client`] |
    /// | cleaner period | 1 day |
    /// | logins per user | 20 (the least recently used is evicted) |
    /// | token keys | none: successor tokens are random, and a store that loses rotations raises theft |
    /// | rollback steps (with token keys) | [`DEFAULT_ROLLBACK_STEPS`] |
    /// | sessions per user | [`DEFAULT_MAX_SESSIONS_PER_USER`] (64; the least recently used is evicted) |
    ///
    /// ```
    /// use std::time::Duration;
    /// use expected_core::Config;
    ///
    /// let config = Config::builder()
    ///     .session_idle_timeout(Duration::from_secs(15 * 60))
    ///     .login_lifetime(Duration::from_secs(90 * 24 * 3600))
    ///     .build()?;
    /// assert_eq!(config.session_idle_timeout(), Duration::from_secs(900));
    /// assert_eq!(config.login_lifetime(), Duration::from_secs(7_776_000));
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Name of the session cookie.
    pub fn session_cookie_name(&self) -> &str {
        &self.session_cookie_name
    }
    /// Name of the auth ("remember me") cookie.
    pub fn auth_cookie_name(&self) -> &str {
        &self.auth_cookie_name
    }
    /// Whether cookies carry the Secure attribute.
    pub fn secure(&self) -> bool {
        self.secure
    }
    /// The SameSite attribute of both cookies.
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }
    /// The Path attribute of both cookies.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The Domain attribute of both cookies, if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }
    /// Max-Age of the auth cookie, and how long a login lives unused.
    pub fn cookie_max_age(&self) -> Duration {
        self.cookie_max_age
    }
    /// How long a session lives without a request.
    pub fn session_idle_timeout(&self) -> Duration {
        self.session_idle_timeout
    }
    /// How long a session lives at most from its creation, however active
    /// (OWASP's absolute timeout). With remember-me, reaching it costs the
    /// user nothing but a cookie login.
    pub fn session_absolute_timeout(&self) -> Duration {
        self.session_absolute_timeout
    }
    /// How long a login lives at most from the password login that registered
    /// it, however often it is used; after that the user types the password
    /// again.
    pub fn login_lifetime(&self) -> Duration {
        self.login_lifetime
    }
    /// The largest session data, as serialized JSON bytes, a session may hold.
    pub fn max_session_data_bytes(&self) -> usize {
        self.max_session_data_bytes
    }
    /// How long after a rotation the previous token is still accepted. Zero
    /// disables the grace window.
    pub fn grace_period(&self) -> Duration {
        self.grace_period
    }
    /// Which clients the grace window serves.
    pub fn grace_binding(&self) -> GraceBinding {
        self.grace_binding
    }
    /// How often the background cleaner runs.
    pub fn cleaner_period(&self) -> Duration {
        self.cleaner_period
    }
    /// The most logins one user may have; `None` for no limit.
    pub fn max_logins_per_user(&self) -> Option<NonZeroUsize> {
        self.max_logins_per_user
    }
    /// The keys that derive successor tokens, if configured
    /// ([`crate::keys`]).
    pub fn token_keys(&self) -> Option<&TokenKeys> {
        self.token_keys.as_ref()
    }
    /// How many lost rotations a presented token may be ahead of the store
    /// and still heal (with token keys; without, none).
    pub fn rollback_steps(&self) -> u16 {
        if self.token_keys.is_some() { self.rollback_steps } else { 0 }
    }
    /// The most sessions one user may hold; `None` for no limit. See
    /// [`ConfigBuilder::max_sessions_per_user`].
    pub fn max_sessions_per_user(&self) -> Option<NonZeroUsize> {
        self.max_sessions_per_user
    }

    pub(crate) fn max_age(&self) -> time::Duration {
        // Validated at build time to fit.
        time::Duration::try_from(self.cookie_max_age).unwrap_or(time::Duration::MAX)
    }
    pub(crate) fn idle(&self) -> time::Duration {
        time::Duration::try_from(self.session_idle_timeout).unwrap_or(time::Duration::MAX)
    }
    pub(crate) fn absolute(&self) -> time::Duration {
        time::Duration::try_from(self.session_absolute_timeout).unwrap_or(time::Duration::MAX)
    }
    pub(crate) fn lifetime(&self) -> time::Duration {
        time::Duration::try_from(self.login_lifetime).unwrap_or(time::Duration::MAX)
    }
    pub(crate) fn grace(&self) -> time::Duration {
        time::Duration::try_from(self.grace_period).unwrap_or(time::Duration::MAX)
    }
}

/// Builds a [`Config`]; [`ConfigBuilder::build`] validates it.
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    settings: Config,
    rollback_steps_set: bool,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self {
            settings: Config {
                session_cookie_name: "session".to_owned(),
                auth_cookie_name: "remember_me".to_owned(),
                secure: true,
                same_site: SameSite::Lax,
                path: "/".to_owned(),
                domain: None,
                cookie_max_age: Duration::from_secs(90 * 24 * 3600),
                session_idle_timeout: Duration::from_secs(30 * 60),
                session_absolute_timeout: Duration::from_secs(12 * 3600),
                login_lifetime: Duration::from_secs(365 * 24 * 3600),
                max_session_data_bytes: 64 * 1024,
                grace_period: Duration::from_secs(30),
                grace_binding: GraceBinding::Client,
                cleaner_period: Duration::from_secs(24 * 3600),
                max_logins_per_user: NonZeroUsize::new(20),
                token_keys: None,
                rollback_steps: DEFAULT_ROLLBACK_STEPS,
                max_sessions_per_user: NonZeroUsize::new(DEFAULT_MAX_SESSIONS_PER_USER),
            },
            rollback_steps_set: false,
        }
    }
}

/// A cookie name: an RFC 6265 token.
fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// A cookie attribute value: visible ASCII or space, no `;` (RFC 6265 allows
/// no more, and it keeps every `Set-Cookie` a valid header value).
fn valid_attribute(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| (b.is_ascii_graphic() || b == b' ') && b != b';')
}

impl ConfigBuilder {
    /// Name of the session cookie.
    ///
    /// ```
    /// use expected_core::Config;
    ///
    /// // `__Host-`: only this host, over HTTPS, may set it.
    /// let config = Config::builder().session_cookie_name("__Host-session").build()?;
    /// assert_eq!(config.session_cookie_name(), "__Host-session");
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn session_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.settings.session_cookie_name = name.into();
        self
    }
    /// Name of the auth ("remember me") cookie.
    ///
    /// ```
    /// use expected_core::Config;
    ///
    /// let config = Config::builder().auth_cookie_name("__Host-remember").build()?;
    /// assert_eq!(config.auth_cookie_name(), "__Host-remember");
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn auth_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.settings.auth_cookie_name = name.into();
        self
    }
    /// Whether cookies carry the Secure attribute. Turn off only for plain
    /// HTTP during development.
    ///
    /// ```
    /// use expected_core::Config;
    ///
    /// // Plain HTTP on a development machine other than localhost:
    /// let development = std::env::var("APP_ENV").is_ok_and(|env| env == "development");
    /// let config = Config::builder().secure(!development).build()?;
    /// # let _ = config;
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn secure(mut self, secure: bool) -> Self {
        self.settings.secure = secure;
        self
    }
    /// The SameSite attribute of both cookies.
    ///
    /// ```
    /// use expected_core::Config;
    /// use expected_core::cookie::SameSite;
    ///
    /// // Not sent on any cross-site request, top-level navigations included:
    /// let config = Config::builder().same_site(SameSite::Strict).build()?;
    /// assert_eq!(config.same_site(), SameSite::Strict);
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.settings.same_site = same_site;
        self
    }
    /// The Path attribute of both cookies.
    ///
    /// ```
    /// use expected_core::Config;
    ///
    /// // An application mounted under /app:
    /// let config = Config::builder().path("/app").build()?;
    /// assert_eq!(config.path(), "/app");
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.settings.path = path.into();
        self
    }
    /// The Domain attribute of both cookies (`None` for host-only cookies).
    ///
    /// ```
    /// use expected_core::Config;
    ///
    /// // Shared by example.com and its subdomains (which may then also set them):
    /// let config = Config::builder().domain(Some("example.com".to_owned())).build()?;
    /// assert_eq!(config.domain(), Some("example.com"));
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn domain(mut self, domain: Option<String>) -> Self {
        self.settings.domain = domain;
        self
    }
    /// Max-Age of the auth cookie, and how long a login lives unused.
    ///
    /// ```
    /// use std::time::Duration;
    /// use expected_core::Config;
    ///
    /// // Unused for 30 days, a device must log in with its password again.
    /// let config = Config::builder().cookie_max_age(Duration::from_secs(30 * 24 * 3600)).build()?;
    /// assert_eq!(config.cookie_max_age(), Duration::from_secs(30 * 24 * 3600));
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn cookie_max_age(mut self, max_age: Duration) -> Self {
        self.settings.cookie_max_age = max_age;
        self
    }
    /// How long a session lives without a request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use expected_core::Config;
    ///
    /// let config = Config::builder().session_idle_timeout(Duration::from_secs(15 * 60)).build()?;
    /// assert_eq!(config.session_idle_timeout(), Duration::from_secs(900));
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn session_idle_timeout(mut self, idle: Duration) -> Self {
        self.settings.session_idle_timeout = idle;
        self
    }
    /// How long a session lives at most from its creation, however active.
    ///
    /// ```
    /// use std::time::Duration;
    /// use expected_core::Config;
    ///
    /// // A working day; with remember-me, a cookie login then opens a new session.
    /// let config = Config::builder().session_absolute_timeout(Duration::from_secs(8 * 3600)).build()?;
    /// assert_eq!(config.session_absolute_timeout(), Duration::from_secs(8 * 3600));
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn session_absolute_timeout(mut self, absolute: Duration) -> Self {
        self.settings.session_absolute_timeout = absolute;
        self
    }
    /// How long a login lives at most from the password login that
    /// registered it, however often it is used.
    ///
    /// ```
    /// use std::time::Duration;
    /// use expected_core::Config;
    ///
    /// // The password at least every 90 days on every device, however often used.
    /// let config = Config::builder().login_lifetime(Duration::from_secs(90 * 24 * 3600)).build()?;
    /// assert_eq!(config.login_lifetime(), Duration::from_secs(90 * 24 * 3600));
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn login_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.login_lifetime = lifetime;
        self
    }
    /// The largest session data (serialized JSON bytes) a session may hold;
    /// a write past it is refused with
    /// [`SessionError::TooLarge`](crate::exchange::SessionError::TooLarge).
    ///
    /// ```
    /// use expected_core::Config;
    ///
    /// let config = Config::builder().max_session_data_bytes(4096).build()?;
    /// assert_eq!(config.max_session_data_bytes(), 4096);
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn max_session_data_bytes(mut self, max: usize) -> Self {
        self.settings.max_session_data_bytes = max;
        self
    }
    /// How long after a rotation the previous token is still accepted. Zero
    /// disables the grace window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use expected_core::Config;
    ///
    /// // Clients on slow links, whose retries come late:
    /// let config = Config::builder().grace_period(Duration::from_secs(60)).build()?;
    /// assert_eq!(config.grace_period(), Duration::from_secs(60));
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.settings.grace_period = grace;
        self
    }
    /// Which clients the grace window serves (default
    /// [`GraceBinding::Client`]: the same `User-Agent` from the same network
    /// as the rotation).
    ///
    /// ```
    /// use expected_core::{Config, GraceBinding};
    ///
    /// // Clients whose address changes between requests (carrier NAT, relays):
    /// let config = Config::builder().grace_binding(GraceBinding::UserAgent).build()?;
    /// assert_eq!(config.grace_binding(), GraceBinding::UserAgent);
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn grace_binding(mut self, binding: GraceBinding) -> Self {
        self.settings.grace_binding = binding;
        self
    }
    /// How often the background cleaner runs.
    ///
    /// ```
    /// use std::time::Duration;
    /// use expected_core::Config;
    ///
    /// let config = Config::builder().cleaner_period(Duration::from_secs(3600)).build()?;
    /// assert_eq!(config.cleaner_period(), Duration::from_secs(3600));
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn cleaner_period(mut self, period: Duration) -> Self {
        self.settings.cleaner_period = period;
        self
    }
    /// The most logins one user may have (`None` for no limit); registering
    /// one more evicts the least recently used.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use expected_core::Config;
    ///
    /// let config = Config::builder().max_logins_per_user(NonZeroUsize::new(5)).build()?;
    /// assert_eq!(config.max_logins_per_user(), NonZeroUsize::new(5));
    /// # Ok::<(), expected_core::ConfigError>(())
    /// ```
    pub fn max_logins_per_user(mut self, max: Option<NonZeroUsize>) -> Self {
        self.settings.max_logins_per_user = max;
        self
    }
    /// The most sessions one user may hold (`None` for no limit; default
    /// [`DEFAULT_MAX_SESSIONS_PER_USER`]). The store enforces it in the step
    /// that creates a user's session (a password login, a cookie login's
    /// rotation, a grace session, a cycled session): over the cap, it
    /// deletes the user's sessions that expire first, which, sessions
    /// sliding by the same idle timeout, are the least recently used ones;
    /// never the new one. Anonymous visitors' sessions belong to no user
    /// and are not capped.
    ///
    /// It bounds the work of every per-user operation (`delete_user`,
    /// logging out the other devices, a theft's revocation), and so what one
    /// user can make the store do. Keep it above
    /// [`max_logins_per_user`](Self::max_logins_per_user): each remembered
    /// device holds a session, and a cap below the logins would have the
    /// devices evict each other's sessions at every cookie login.
    pub fn max_sessions_per_user(mut self, max: Option<NonZeroUsize>) -> Self {
        self.settings.max_sessions_per_user = max;
        self
    }

    /// The keys that derive each successor token from its predecessor, so
    /// that a store that lost its last rotations (a failover to a replica
    /// that missed them, a backup restore) heals instead of raising theft
    /// ([`crate::keys`]). Without keys, successors are random.
    pub fn token_keys(mut self, keys: Option<TokenKeys>) -> Self {
        self.settings.token_keys = keys;
        self
    }
    /// How many lost rotations a presented token may be ahead of the store
    /// and still heal, at most [`MAX_ROLLBACK_STEPS`]; zero disables healing.
    /// Each step costs one HMAC and one SHA-256 (about a microsecond), paid
    /// in full only by a token that is not the current one: a replay or a
    /// forgery. Needs [`ConfigBuilder::token_keys`].
    pub fn rollback_steps(mut self, steps: u16) -> Self {
        self.settings.rollback_steps = steps;
        self.rollback_steps_set = true;
        self
    }

    /// Checks the settings and returns the configuration.
    ///
    /// ```
    /// use std::time::Duration;
    /// use expected_core::{Config, ConfigError};
    ///
    /// let refused = Config::builder().grace_period(Duration::from_secs(3600)).build();
    /// assert!(matches!(refused, Err(ConfigError::GraceNotShorterThanSession { .. })));
    /// ```
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = self.settings;
        if c.rollback_steps > MAX_ROLLBACK_STEPS {
            return Err(ConfigError::TooManyRollbackSteps(c.rollback_steps));
        }
        if self.rollback_steps_set && c.token_keys.is_none() && c.rollback_steps > 0 {
            return Err(ConfigError::RollbackStepsWithoutKeys(c.rollback_steps));
        }
        for name in [&c.session_cookie_name, &c.auth_cookie_name] {
            if !valid_cookie_name(name) {
                return Err(ConfigError::InvalidCookieName(name.clone()));
            }
            // Browsers match the prefixes case-insensitively.
            let lower = name.to_ascii_lowercase();
            let host = lower.starts_with("__host-");
            if (host || lower.starts_with("__secure-")) && !c.secure {
                return Err(ConfigError::PrefixRequiresSecure(name.clone()));
            }
            if host && c.domain.is_some() {
                return Err(ConfigError::HostPrefixForbidsDomain(name.clone()));
            }
            if host && c.path != "/" {
                return Err(ConfigError::HostPrefixRequiresRootPath(name.clone()));
            }
        }
        if c.session_cookie_name == c.auth_cookie_name {
            return Err(ConfigError::SameCookieName(c.session_cookie_name));
        }
        if c.same_site == SameSite::None && !c.secure {
            return Err(ConfigError::SameSiteNoneRequiresSecure);
        }
        if !c.path.starts_with('/') || !valid_attribute(&c.path) {
            return Err(ConfigError::InvalidPath(c.path));
        }
        if let Some(domain) = &c.domain {
            let ok = valid_attribute(domain)
                && domain.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
            if !ok {
                return Err(ConfigError::InvalidDomain(domain.clone()));
            }
        }
        for (what, value) in [
            ("the cookie max age", c.cookie_max_age),
            ("the session idle timeout", c.session_idle_timeout),
            ("the session absolute timeout", c.session_absolute_timeout),
            ("the login lifetime", c.login_lifetime),
            ("the cleaner period", c.cleaner_period),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroDuration(what));
            }
        }
        // A hundred years is beyond any sensible setting, and `now` plus it
        // stays far inside what timestamps hold (year 9999).
        const LIMIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        for (what, value) in [
            ("the cookie max age", c.cookie_max_age),
            ("the session idle timeout", c.session_idle_timeout),
            ("the session absolute timeout", c.session_absolute_timeout),
            ("the login lifetime", c.login_lifetime),
            ("the grace period", c.grace_period),
            ("the cleaner period", c.cleaner_period),
        ] {
            if value > LIMIT {
                return Err(ConfigError::DurationTooLarge(what));
            }
        }
        if c.grace_period >= c.session_idle_timeout {
            return Err(ConfigError::GraceNotShorterThanSession {
                grace: c.grace_period,
                idle: c.session_idle_timeout,
            });
        }
        if c.session_idle_timeout > c.cookie_max_age {
            return Err(ConfigError::SessionOutlivesLogin {
                idle: c.session_idle_timeout,
                max_age: c.cookie_max_age,
            });
        }
        if c.session_absolute_timeout < c.session_idle_timeout {
            return Err(ConfigError::AbsoluteShorterThanIdle {
                absolute: c.session_absolute_timeout,
                idle: c.session_idle_timeout,
            });
        }
        if c.login_lifetime < c.session_idle_timeout {
            return Err(ConfigError::LoginLifetimeShorterThanSession {
                lifetime: c.login_lifetime,
                idle: c.session_idle_timeout,
            });
        }
        if c.max_session_data_bytes < 2 {
            return Err(ConfigError::SessionDataLimitTooSmall(c.max_session_data_bytes));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() -> Result<(), ConfigError> {
        let config = Config::builder().build()?;
        assert_eq!(config, Config::default());
        assert_eq!(config.session_cookie_name(), "session");
        assert_eq!(config.auth_cookie_name(), "remember_me");
        assert!(config.secure());
        assert_eq!(config.same_site(), SameSite::Lax);
        assert_eq!(config.cookie_max_age(), Duration::from_secs(90 * 86400));
        assert_eq!(config.grace_period(), Duration::from_secs(30));
        assert_eq!(config.grace_binding(), GraceBinding::Client);
        assert_eq!(config.cleaner_period(), Duration::from_secs(86400));
        assert_eq!(config.session_absolute_timeout(), Duration::from_secs(12 * 3600));
        assert_eq!(config.login_lifetime(), Duration::from_secs(365 * 86400));
        assert_eq!(config.max_session_data_bytes(), 64 * 1024);
        assert_eq!(config.max_logins_per_user(), NonZeroUsize::new(20));
        assert_eq!(config.max_sessions_per_user(), NonZeroUsize::new(DEFAULT_MAX_SESSIONS_PER_USER));
        let uncapped = Config::builder().max_sessions_per_user(None).build()?;
        assert_eq!(uncapped.max_sessions_per_user(), None);
        Ok(())
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let refused = [
            (Config::builder().auth_cookie_name("session"), ConfigError::SameCookieName("session".into())),
            (Config::builder().auth_cookie_name("a b"), ConfigError::InvalidCookieName("a b".into())),
            (Config::builder().auth_cookie_name(""), ConfigError::InvalidCookieName(String::new())),
            (
                Config::builder().auth_cookie_name("__Host-r").secure(false),
                ConfigError::PrefixRequiresSecure("__Host-r".into()),
            ),
            (
                Config::builder().session_cookie_name("__Secure-s").secure(false),
                ConfigError::PrefixRequiresSecure("__Secure-s".into()),
            ),
            (
                Config::builder().auth_cookie_name("__Host-r").domain(Some("example.com".into())),
                ConfigError::HostPrefixForbidsDomain("__Host-r".into()),
            ),
            (
                Config::builder().auth_cookie_name("__Host-r").path("/app"),
                ConfigError::HostPrefixRequiresRootPath("__Host-r".into()),
            ),
            (
                Config::builder().same_site(SameSite::None).secure(false),
                ConfigError::SameSiteNoneRequiresSecure,
            ),
            (Config::builder().path("app"), ConfigError::InvalidPath("app".into())),
            (Config::builder().path("/a;b"), ConfigError::InvalidPath("/a;b".into())),
            (Config::builder().path("/café"), ConfigError::InvalidPath("/café".into())),
            (
                Config::builder().auth_cookie_name("__host-r").secure(false),
                ConfigError::PrefixRequiresSecure("__host-r".into()),
            ),
            (
                Config::builder().domain(Some("ex ample.com".into())),
                ConfigError::InvalidDomain("ex ample.com".into()),
            ),
            (
                Config::builder().cookie_max_age(Duration::ZERO),
                ConfigError::ZeroDuration("the cookie max age"),
            ),
            (
                Config::builder().session_idle_timeout(Duration::ZERO),
                ConfigError::ZeroDuration("the session idle timeout"),
            ),
            (
                Config::builder().cleaner_period(Duration::ZERO),
                ConfigError::ZeroDuration("the cleaner period"),
            ),
            (
                Config::builder().grace_period(Duration::from_secs(3600)),
                ConfigError::GraceNotShorterThanSession {
                    grace: Duration::from_secs(3600),
                    idle: Duration::from_secs(1800),
                },
            ),
            (
                Config::builder().cookie_max_age(Duration::from_secs(60)),
                ConfigError::SessionOutlivesLogin {
                    idle: Duration::from_secs(1800),
                    max_age: Duration::from_secs(60),
                },
            ),
            (
                Config::builder().session_absolute_timeout(Duration::from_secs(600)),
                ConfigError::AbsoluteShorterThanIdle {
                    absolute: Duration::from_secs(600),
                    idle: Duration::from_secs(1800),
                },
            ),
            (
                Config::builder().login_lifetime(Duration::from_secs(60)),
                ConfigError::LoginLifetimeShorterThanSession {
                    lifetime: Duration::from_secs(60),
                    idle: Duration::from_secs(1800),
                },
            ),
            (Config::builder().max_session_data_bytes(1), ConfigError::SessionDataLimitTooSmall(1)),
            (
                Config::builder().session_absolute_timeout(Duration::ZERO),
                ConfigError::ZeroDuration("the session absolute timeout"),
            ),
            (
                Config::builder().cookie_max_age(Duration::MAX),
                ConfigError::DurationTooLarge("the cookie max age"),
            ),
        ];
        for (builder, error) in refused {
            assert_eq!(builder.build(), Err(error));
        }
    }

    #[test]
    fn host_prefix_is_accepted_when_consistent() {
        let config = Config::builder().session_cookie_name("__Host-s").auth_cookie_name("__Host-r").build();
        assert!(config.is_ok(), "{config:?}");
        let no_grace = Config::builder().grace_period(Duration::ZERO).build();
        assert!(no_grace.is_ok(), "a zero grace period disables the window");
    }

    #[test]
    fn grace_bindings_parse_by_name() {
        for binding in [GraceBinding::Client, GraceBinding::UserAgent, GraceBinding::Off] {
            assert_eq!(binding.as_str().parse(), Ok(binding), "{binding:?} round-trips");
        }
        assert_eq!(" User-Agent ".parse(), Ok(GraceBinding::UserAgent), "any case, trimmed");
        assert_eq!("ip".parse::<GraceBinding>(), Err(UnknownGraceBinding("ip".into())));
    }
}
