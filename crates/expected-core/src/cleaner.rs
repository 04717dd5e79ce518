//! A background task that cleans expired logins and sessions (feature `tokio`).

use std::sync::Arc;

use crate::engine::Expected;
use crate::store::Store;

impl<S: Store> Expected<S> {
    /// Spawns a tokio task that calls [`Expected::clean`] every
    /// [`cleaner_period`](crate::Config::cleaner_period), first right away.
    /// A failed pass is logged and the task keeps going; abort the returned
    /// handle to stop it.
    ///
    /// ```no_run
    /// # async fn run(engine: std::sync::Arc<expected_core::Expected<impl expected_core::Store>>) {
    /// let cleaner = engine.clone().spawn_cleaner();
    /// // … serve requests …
    /// cleaner.abort();
    /// # }
    /// ```
    pub fn spawn_cleaner(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let period = self.config().cleaner_period();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.clean().await {
                    Ok(cleaned) => {
                        tracing::info!(logins = cleaned.logins, sessions = cleaned.sessions, "cleaner pass");
                    }
                    Err(error) => tracing::warn!(%error, "cleaner pass failed; retrying next period"),
                }
            }
        })
    }
}
