//! The demo's user accounts: three seeded users, Argon2id password hashes.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use expected_core::Username;
use rand_core::{OsRng, TryRngCore};

/// The seeded users and their passwords, shown on the login page (it is a
/// demo). The third has a non-ASCII letter, a dot and a quote in it, which
/// every page must escape.
pub const DEMO_USERS: [(&str, &str); 3] =
    [("alice", "alice-secret"), ("bob", "bob-secret"), ("zoë.o'brien", "zoë-secret")];

/// Longest password looked at, in bytes; longer ones fail without hashing
/// them (Argon2 takes any length, but there is no point in hashing a
/// megabyte).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why the accounts could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The OS random source failed (no salt).
    #[error("no salt from the OS random source: {0}")]
    Random(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A seeded username is not a valid username.
    #[error("invalid username {0:?}")]
    Username(String),
}

struct Account {
    username: Username,
    hash: PasswordHash,
}

/// The demo's accounts, with passwords hashed at startup.
///
/// [`verify`](Self::verify) takes the same time whether or not the user
/// exists: an unknown user is checked against a dummy hash made with the same
/// parameters, and Argon2 compares outputs in constant time. It is CPU-bound
/// (tens of milliseconds): call it off the async workers
/// (`tokio::task::spawn_blocking`).
pub struct Accounts {
    users: Vec<Account>,
    dummy: PasswordHash,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|account| account.username.as_str()).collect();
        f.debug_struct("Accounts").field("users", &names).finish_non_exhaustive()
    }
}

fn hash(argon2: &Argon2<'_>, password: &str) -> Result<PasswordHash, AccountsError> {
    let mut salt = [0u8; 16];
    OsRng.try_fill_bytes(&mut salt).map_err(|error| AccountsError::Random(error.to_string()))?;
    argon2
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|error| AccountsError::Hash(error.to_string()))
}

impl Accounts {
    /// [`DEMO_USERS`], hashed with Argon2id and OWASP's parameters (19 MiB,
    /// 2 passes, 1 lane).
    pub fn seeded() -> Result<Self, AccountsError> {
        Self::new(&DEMO_USERS, Params::default())
    }

    /// `users` (name, password), hashed with Argon2id and `params`.
    pub fn new(users: &[(&str, &str)], params: Params) -> Result<Self, AccountsError> {
        let argon2 = Argon2::from(params);
        let users = users
            .iter()
            .map(|(name, password)| {
                let username =
                    Username::new(*name).map_err(|_| AccountsError::Username((*name).to_owned()))?;
                Ok(Account { username, hash: hash(&argon2, password)? })
            })
            .collect::<Result<Vec<_>, AccountsError>>()?;
        let dummy = hash(&argon2, "no such user: the dummy password")?;
        Ok(Self { users, dummy })
    }

    /// The user `username` if `password` is theirs.
    pub fn verify(&self, username: &str, password: &str) -> Option<Username> {
        let account = self.users.iter().find(|account| account.username.as_str() == username);
        let hash = account.map_or(&self.dummy, |account| &account.hash);
        // Over-long passwords are refused after the same work as any other.
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        let candidate = if too_long { "" } else { password };
        let matches = Argon2::default().verify_password(candidate.as_bytes(), hash).is_ok();
        account.filter(|_| matches && !too_long).map(|account| account.username.clone())
    }

    /// The usernames, in seeding order.
    pub fn usernames(&self) -> impl Iterator<Item = &Username> {
        self.users.iter().map(|account| &account.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Result<Accounts, AccountsError> {
        let params = Params::new(256, 1, 1, None).map_err(|error| AccountsError::Hash(error.to_string()))?;
        Accounts::new(&DEMO_USERS, params)
    }

    #[test]
    fn each_user_has_their_password_only() -> Result<(), AccountsError> {
        let accounts = cheap()?;
        for (name, password) in DEMO_USERS {
            assert_eq!(accounts.verify(name, password).map(|u| u.to_string()).as_deref(), Some(name));
            assert_eq!(accounts.verify(name, "wrong"), None);
        }
        assert_eq!(accounts.verify("alice", "bob-secret"), None);
        assert_eq!(accounts.verify("mallory", "alice-secret"), None);
        assert_eq!(accounts.verify("", ""), None);
        assert_eq!(accounts.verify("alice", &"a".repeat(MAX_PASSWORD_BYTES + 1)), None);
        assert_eq!(accounts.usernames().count(), 3);
        Ok(())
    }

    /// An unknown user is verified against a dummy hash with exactly the
    /// parameters of the real ones, so it costs the same Argon2 work: who
    /// exists cannot be told by timing.
    #[test]
    fn unknown_users_cost_the_same_hash() -> Result<(), AccountsError> {
        let accounts = cheap()?;
        let parameters = |hash: &PasswordHash| {
            let text = hash.to_string();
            text.rsplitn(3, '$').nth(2).map(str::to_owned).unwrap_or_default()
        };
        let dummy = parameters(&accounts.dummy);
        assert!(dummy.starts_with("$argon2id$v=19$m=256,t=1,p=1"), "{dummy}");
        for account in &accounts.users {
            assert_eq!(parameters(&account.hash), dummy);
        }
        Ok(())
    }

    #[test]
    fn hashes_are_salted_argon2id() -> Result<(), AccountsError> {
        let accounts = cheap()?;
        let [a, b] = [&accounts.users[0].hash, &accounts.users[1].hash].map(ToString::to_string);
        assert!(a.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{a}");
        assert_ne!(a.split('$').nth(4), b.split('$').nth(4), "distinct salts");
        Ok(())
    }
}
