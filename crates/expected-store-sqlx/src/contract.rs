//! The [`Store`] contract, written once: the operations whose SQL every
//! dialect shares run here; the others are the dialect's own
//! ([`Dialect`]'s methods).

use std::num::NonZeroUsize;

use expected_core::store::{
    Confirmation, CurrentRotated, CurrentRotation, Deleted, ExpiredLogin, GraceInserted, Inserted, Keep,
    Remembered, Rotated, Rotation,
};
use expected_core::time::OffsetDateTime;
use expected_core::{Login, Serial, SessionDigest, SessionRecord, Store, StoreError, Username};

use crate::codec::{LoginRow, LoginValues, SessionRow, SessionValues, data_json, micros};
use crate::dialect::Dialect;
use crate::driver::{Row, Stmt};
use crate::error::{Failure, store_error};
use crate::store::SqlStore;

#[async_trait::async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    async fn create_login(&self, login: &Login) -> Result<Inserted, StoreError> {
        let values = LoginValues::of(login);
        self.retry(|| async {
            let statement = Stmt::<D>::new(&self.common().insert_login).login(&login.username, &values);
            let mut conn = self.write().await?;
            created(statement.execute(&mut conn).await)
        })
        .await
    }

    async fn get_login(&self, user: &Username, serial: &Serial) -> Result<Option<Login>, StoreError> {
        let row = self
            .retry(|| async {
                let mut conn = self.read().await?;
                Ok(Stmt::<D>::new(&self.common().select_login)
                    .user(user)
                    .bind(&serial.as_bytes()[..])
                    .fetch_optional(&mut conn)
                    .await?)
            })
            .await?;
        row.map(|row| decode_login::<D>(&row, user)).transpose()
    }

    async fn rotate_login(&self, rotation: &Rotation) -> Result<Rotated, StoreError> {
        // The new session's rows are written under the login's user.
        rotation.session_owner()?;
        D::rotate(self, rotation).await
    }

    async fn rotate_current(&self, attempt: &CurrentRotation) -> Result<CurrentRotated, StoreError> {
        attempt.rotation.session_owner()?;
        D::rotate_current(self, attempt).await
    }

    async fn create_remembered(
        &self,
        login: &Login,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
        list_logins: bool,
    ) -> Result<Remembered, StoreError> {
        D::create_remembered(self, login, session, max_sessions, list_logins).await
    }

    async fn list_logins(&self, user: &Username) -> Result<Vec<Login>, StoreError> {
        let rows = self
            .retry(|| async {
                let mut conn = self.read().await?;
                Ok(Stmt::<D>::new(&self.common().select_logins).user(user).fetch_all(&mut conn).await?)
            })
            .await?;
        rows.iter().map(|row| decode_login::<D>(row, user)).collect()
    }

    async fn delete_login(&self, user: &Username, serial: &Serial) -> Result<bool, StoreError> {
        D::remove_login(self, user, serial).await
    }

    async fn delete_user(&self, user: &Username) -> Result<Deleted, StoreError> {
        D::remove_user(self, user, None).await
    }

    async fn delete_user_except(&self, user: &Username, keep: &Keep) -> Result<Deleted, StoreError> {
        D::remove_user(self, user, Some(keep)).await
    }

    async fn confirm_password(&self, confirmation: &Confirmation) -> Result<bool, StoreError> {
        D::confirm(self, confirmation).await
    }

    // Batches of `Dialect::expire_logins_batch` until one comes back short
    // of the batch size.
    async fn delete_expired_logins(&self, now: OffsetDateTime) -> Result<Vec<ExpiredLogin>, StoreError> {
        let now = micros(now);
        let mut expired = Vec::new();
        loop {
            let batch = D::expire_logins_batch(self, now).await?;
            let full = batch.len() >= self.batch as usize;
            expired.extend(batch);
            if !full {
                return Ok(expired);
            }
        }
    }

    async fn create_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<Inserted, StoreError> {
        match (session.username(), max_sessions) {
            // A user's session under a cap: the insert and the eviction in
            // one step.
            (Some(_), Some(max)) => D::insert_capped(self, session, max).await,
            _ => {
                let values = SessionValues::of(session)?;
                self.retry(|| async {
                    let statement = Stmt::<D>::new(&self.common().insert_session).session(&values);
                    let mut conn = self.write().await?;
                    created(statement.execute(&mut conn).await)
                })
                .await
            }
        }
    }

    async fn create_grace_session(
        &self,
        session: &SessionRecord,
        max_sessions: Option<NonZeroUsize>,
    ) -> Result<GraceInserted, StoreError> {
        if session.login().is_none() {
            // No login can exist for a session that names none.
            return Ok(GraceInserted::LoginGone);
        }
        D::create_grace(self, session, max_sessions).await
    }

    async fn get_session(
        &self,
        user: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = self
            .retry(|| async {
                Ok(Stmt::<D>::new(&self.common().select_session)
                    .owner(user)
                    .bind(&digest.as_bytes()[..])
                    .fetch_optional_pooled(&self.pool)
                    .await?)
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let row = session_row(&row).map_err(|e| store_error(e, D::classify))?;
        row.into_session(user, digest).map(Some)
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<bool, StoreError> {
        let data = data_json(&session.data)?;
        let expires_at = micros(session.expires_at);
        let changed = self
            .retry(|| async {
                let mut conn = self.write().await?;
                Ok(Stmt::<D>::new(&self.common().update_session)
                    .bind(data.as_str())
                    .bind(expires_at)
                    .owner(session.username())
                    .bind(&session.digest.as_bytes()[..])
                    .execute(&mut conn)
                    .await?)
            })
            .await?;
        Ok(changed > 0)
    }

    async fn touch_session(
        &self,
        user: Option<&Username>,
        digest: &SessionDigest,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let expires_at = micros(expires_at);
        let changed = self
            .retry(|| async {
                let mut conn = self.write().await?;
                Ok(Stmt::<D>::new(&self.common().touch_session)
                    .bind(expires_at)
                    .owner(user)
                    .bind(&digest.as_bytes()[..])
                    .execute(&mut conn)
                    .await?)
            })
            .await?;
        Ok(changed > 0)
    }

    async fn delete_session(
        &self,
        user: Option<&Username>,
        digest: &SessionDigest,
    ) -> Result<bool, StoreError> {
        let changed = self
            .retry(|| async {
                let mut conn = self.write().await?;
                Ok(Stmt::<D>::new(&self.common().delete_session)
                    .owner(user)
                    .bind(&digest.as_bytes()[..])
                    .execute(&mut conn)
                    .await?)
            })
            .await?;
        Ok(changed > 0)
    }

    // Batches of one statement each (and one turn of the writer each),
    // until one comes back short.
    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = micros(now);
        let mut total = 0;
        loop {
            let deleted = self
                .retry(|| async {
                    let mut conn = self.write().await?;
                    Ok(Stmt::<D>::new(&self.common().expire_sessions).bind(now).execute(&mut conn).await?)
                })
                .await?;
            total += deleted;
            if deleted < u64::from(self.batch) {
                return Ok(total);
            }
        }
    }
}

/// A plain create's outcome: insert-or-nothing (no row: the key is taken),
/// or a duplicate key caught (MySQL).
pub(crate) fn created(done: Result<u64, sqlx::Error>) -> Result<Inserted, Failure> {
    match done {
        Ok(0) => Ok(Inserted::AlreadyExists),
        Ok(_) => Ok(Inserted::Created),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(Inserted::AlreadyExists),
        Err(error) => Err(error.into()),
    }
}

/// A login's columns, in [`LOGIN_COLUMNS`](crate::statements::LOGIN_COLUMNS)
/// order from column `first`; `None` when its serial is `NULL` (a statement
/// that answers no login with its other columns).
pub(crate) fn login_row<D: Dialect>(row: &Row<D>, first: usize) -> Result<Option<LoginRow>, sqlx::Error> {
    let Some(serial) = row.get::<Option<Vec<u8>>>(first)? else { return Ok(None) };
    let at = |n: usize| first + n;
    Ok(Some(LoginRow {
        serial,
        token: row.get(at(1))?,
        previous_token: row.get(at(2))?,
        previous_rotated_at: row.get(at(3))?,
        previous_sealed: row.get(at(4))?,
        session_digest: row.get(at(5))?,
        created_at: row.get(at(6))?,
        last_used_at: row.get(at(7))?,
        expires_at: row.get(at(8))?,
        client_ip: row.get(at(9))?,
        user_agent: row.get(at(10))?,
        authenticated_at: row.get(at(11))?,
    }))
}

/// A session's columns as `select_session` reads them.
fn session_row<D: Dialect>(row: &Row<D>) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        login_serial: row.get(0)?,
        method: row.get(1)?,
        authenticated_at: row.get(2)?,
        data: row.get(3)?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
    })
}

fn decode_login<D: Dialect>(row: &Row<D>, user: &Username) -> Result<Login, StoreError> {
    login_row(row, 0)
        .map_err(|e| store_error(e, D::classify))?
        // The serial is the key's: never NULL in a row that exists.
        .ok_or_else(|| StoreError::corrupt("a login read without its serial"))?
        .into_login(user)
}
