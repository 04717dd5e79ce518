//! The operator's commands every store's command-line tool offers (feature
//! `admin`): list and revoke a user's logins during an incident, count
//! sessions, run a cleaning pass. `expected-sqlx` and `expected-redis` parse
//! these with the same [`AdminCommand`] and run them with [`run`], so they
//! behave the same and a script can rely on their output and exit codes.
//!
//! | command | prints | exit code |
//! |---|---|---|
//! | `logins list USER [--json]` | one line per login (serial, created, last used, IP, user agent), or a JSON array | 0; [`NOT_FOUND`] when the user has no login |
//! | `logins revoke USER SERIAL` | `revoked USER SERIAL` | 0; [`NOT_FOUND`] when the user has no such login |
//! | `logins revoke USER --all` | `revoked USER: N logins, M sessions` (every login and session: the incident button) | 0; [`NOT_FOUND`] when there was nothing |
//! | `sessions count` | `sessions: N (users M, anonymous K)` | 0 |
//! | `clean` | `cleaned: N logins, M sessions` | 0 |
//!
//! Errors are one line on stderr: a store that cannot be reached exits
//! [`STORE_FAILED`], a malformed username or serial [`USAGE`].

use std::fmt::Write as _;
use std::future::Future;
use std::process::ExitCode;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::engine::Expected;
use crate::secret::{Serial, Username};
use crate::store::{SessionCount, Store, StoreError};

/// Exit code: what was asked for does not exist (a user without logins, an
/// unknown serial).
pub const NOT_FOUND: u8 = 3;
/// Exit code: the store failed or could not be reached.
pub const STORE_FAILED: u8 = 1;
/// Exit code: the command line is wrong (clap's own code for usage errors).
pub const USAGE: u8 = 2;

/// The operator's commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
#[non_exhaustive]
pub enum AdminCommand {
    /// A user's logins (devices).
    #[command(subcommand)]
    Logins(LoginsCommand),
    /// The store's sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// One cleaning pass: deletes expired logins and sessions, printing how
    /// many.
    Clean,
}

/// `logins …`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
#[non_exhaustive]
pub enum LoginsCommand {
    /// Lists a user's logins, most recently used first.
    List {
        /// The username.
        #[arg(allow_hyphen_values = true)]
        user: String,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revokes one login of a user (it and its sessions end at once), or
    /// with `--all` every login and session of the user.
    Revoke {
        /// The username.
        #[arg(allow_hyphen_values = true)]
        user: String,
        /// The login's serial, as `logins list` shows it. Base64url: it may
        /// start with `-`, and is still taken as the serial.
        #[arg(required_unless_present = "all", conflicts_with = "all", allow_hyphen_values = true)]
        serial: Option<String>,
        /// Every login and session of the user: "log out everywhere".
        #[arg(long)]
        all: bool,
    },
}

/// `sessions …`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
#[non_exhaustive]
pub enum SessionsCommand {
    /// Counts the live sessions, users' and visitors'.
    Count,
}

/// Why a command failed, with its exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A malformed argument.
    #[error("{0}")]
    Usage(String),
}

impl AdminError {
    /// The process exit code for it.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Store(_) => STORE_FAILED,
            Self::NotFound(_) => NOT_FOUND,
            Self::Usage(_) => USAGE,
        })
    }
}

fn username(text: &str) -> Result<Username, AdminError> {
    Username::new(text).map_err(|error| AdminError::Usage(format!("invalid username {text:?}: {error}")))
}

fn timestamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// Runs `command` against `engine`, answering what to print on stdout.
/// `count` counts the store's sessions at a time (stores count in their own
/// way: it is not part of the [`Store`] trait).
pub async fn run<S, F, Fut>(
    engine: &Expected<S>,
    command: &AdminCommand,
    count: F,
) -> Result<String, AdminError>
where
    S: Store,
    F: FnOnce(OffsetDateTime) -> Fut,
    Fut: Future<Output = Result<SessionCount, StoreError>>,
{
    match command {
        AdminCommand::Logins(LoginsCommand::List { user, json }) => {
            let user = username(user)?;
            let devices = engine.devices(&user, None).await?;
            if devices.is_empty() {
                return Err(AdminError::NotFound(format!("user {user:?} has no logins")));
            }
            if *json {
                return serde_json::to_string_pretty(&devices)
                    .map(|text| text + "\n")
                    .map_err(|error| AdminError::Usage(error.to_string()));
            }
            let mut out = String::from("SERIAL\tCREATED\tLAST USED\tIP\tUSER AGENT\n");
            for device in devices {
                let ip = device.ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{ip}\t{}",
                    device.serial,
                    timestamp(device.created_at),
                    timestamp(device.last_used_at),
                    device.user_agent.as_deref().unwrap_or("-"),
                );
            }
            Ok(out)
        }
        AdminCommand::Logins(LoginsCommand::Revoke { user, serial, all }) => {
            let user = username(user)?;
            if *all {
                let deleted = engine.logout_everywhere(&user).await?;
                if deleted.logins == 0 && deleted.sessions == 0 {
                    return Err(AdminError::NotFound(format!("user {user:?} has no logins or sessions")));
                }
                return Ok(format!(
                    "revoked {user}: {} logins, {} sessions\n",
                    deleted.logins, deleted.sessions
                ));
            }
            let text = serial.as_deref().unwrap_or_default();
            let serial = Serial::from_base64(text)
                .map_err(|_| AdminError::Usage(format!("{text:?} is not a serial (see `logins list`)")))?;
            if engine.revoke(&user, &serial).await? {
                Ok(format!("revoked {user} {serial}\n"))
            } else {
                Err(AdminError::NotFound(format!("user {user:?} has no login {serial}")))
            }
        }
        AdminCommand::Sessions(SessionsCommand::Count) => {
            let counted = count(engine.now()).await?;
            let total = counted.users + counted.anonymous;
            Ok(format!("sessions: {total} (users {}, anonymous {})\n", counted.users, counted.anonymous))
        }
        AdminCommand::Clean => {
            let cleaned = engine.clean().await?;
            Ok(format!("cleaned: {} logins, {} sessions\n", cleaned.logins, cleaned.sessions))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: AdminCommand,
    }

    fn parse(args: &[&str]) -> Result<AdminCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("tool").chain(args.iter().copied())).map(|cli| cli.command)
    }

    #[test]
    fn the_command_line_is_parsed_strictly() {
        let list = parse(&["logins", "list", "alice", "--json"]);
        assert!(matches!(list, Ok(AdminCommand::Logins(LoginsCommand::List { json: true, .. }))), "{list:?}");
        let all = parse(&["logins", "revoke", "alice", "--all"]);
        assert!(matches!(
            all,
            Ok(AdminCommand::Logins(LoginsCommand::Revoke { all: true, serial: None, .. }))
        ));
        assert!(parse(&["logins", "revoke", "alice"]).is_err(), "a serial or --all is required");
        let dashed = parse(&["logins", "revoke", "alice", "-8Xq_ab"]);
        assert!(
            matches!(&dashed, Ok(AdminCommand::Logins(LoginsCommand::Revoke { serial: Some(s), all: false, .. })) if s == "-8Xq_ab"),
            "a base64url serial may start with '-': {dashed:?}"
        );
        let dashed_user = parse(&["logins", "list", "-bob"]);
        assert!(
            matches!(&dashed_user, Ok(AdminCommand::Logins(LoginsCommand::List { user, .. })) if user == "-bob")
        );
        assert!(parse(&["logins", "revoke", "alice", "AAAA", "--all"]).is_err(), "not both");
        assert!(parse(&["sessions", "count", "extra"]).is_err());
        assert_eq!(parse(&["clean"]).ok(), Some(AdminCommand::Clean));
    }
}
