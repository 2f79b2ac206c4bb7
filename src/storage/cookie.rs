//! The benchmarks' web-layer ceiling (`cookie://`, feature `bench-cookie-store`): actix-session's
//! `CookieSessionStore`, with the file carried inside the cookie so that the pages do the same
//! work as on a real store. Not for serving: the state is readable by whoever holds the cookie.

use std::collections::HashMap;

use actix_session::storage::{
    CookieSessionStore, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration as CookieDuration;

use crate::session::scope::{self, Loaded};

/// The file's key inside the cookie's state.
const TEXT: &str = "__text";

type SessionState = HashMap<String, String>;

#[derive(Default)]
pub struct CookieStore(CookieSessionStore);

/// Puts an uploaded file into the state the cookie will carry.
fn with_pending_file(mut state: SessionState) -> Result<SessionState, serde_json::Error> {
    if let Some(file) = scope::take_pending_file() {
        state.insert(TEXT.into(), serde_json::to_string(&file.text)?);
    }
    Ok(state)
}

impl SessionStore for CookieStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let Some(mut state) = self.0.load(key).await? else {
            return Ok(None);
        };
        let text = match state.remove(TEXT) {
            Some(raw) => Some(
                serde_json::from_str::<String>(&raw)
                    .map_err(|err| LoadError::Deserialization(err.into()))?,
            ),
            None => None,
        };
        let now = chrono::Utc::now().naive_utc();
        let loaded = Loaded {
            expires_at: now,
            created_at: now,
        };
        scope::remember_loaded(loaded, text.filter(|_| scope::wants_file()));
        Ok(Some(state))
    }

    async fn save(
        &self,
        state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        let state = with_pending_file(state).map_err(|err| SaveError::Serialization(err.into()))?;
        self.0.save(state, ttl).await
    }

    async fn update(
        &self,
        key: SessionKey,
        state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let state =
            with_pending_file(state).map_err(|err| UpdateError::Serialization(err.into()))?;
        self.0.update(key, state, ttl).await
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &CookieDuration) -> anyhow::Result<()> {
        self.0.update_ttl(key, ttl).await
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        self.0.delete(key).await
    }
}
