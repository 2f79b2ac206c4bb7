//! The benchmarks' ceiling for textdrop's web layer: the real application (its routes, limits,
//! session middleware and store semantics), its records kept in this process's memory instead
//! of a database. What a request costs here, every storage costs at least.
//!
//! Configured like textdrop (its environment); `DATABASE_URL` is ignored.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use actix_session_stores::records::{
    Extension, Fetch, Loaded, NewRecord, Record, Records, Replacement, Rotated, Rotation,
    StoreFuture,
};
use actix_session_stores::{Clock, Storage};
use chrono::NaiveDateTime;
use textdrop::config::Settings;
use textdrop::startup::Application;

/// Every worker's records, in one map.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<HashMap<String, NewRecord>>>);

fn ready<T: 'static>(value: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Memory {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, NewRecord>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn live(record: &NewRecord, now: NaiveDateTime) -> bool {
    record.expires_at > now
}

impl Records for Memory {
    fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
        let map = self.map();
        let found = map
            .get(id)
            .filter(|r| live(r, fetch.now) && r.created_at > fetch.created_after)
            .map(|r| Record {
                state: r.state.clone(),
                loaded: Loaded {
                    expires_at: r.expires_at,
                    created_at: r.created_at,
                    superseded_at: None,
                },
                attachment: r.attachment.clone().filter(|_| fetch.with_attachment),
                successor: None,
            });
        ready(found)
    }

    fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
        self.map().insert(id.to_owned(), record);
        ready(())
    }

    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        new_id: &'a str,
        record: NewRecord,
        rotation: Rotation,
    ) -> StoreFuture<'a, Rotated> {
        // The ceiling deletes the old record at once, grace period or not (a retry of the same
        // upload then starts a session of its own: the ceiling keeps no tombstone).
        let mut map = self.map();
        if !map.get(old_id).is_some_and(|r| live(r, rotation.now)) {
            return ready(Err(record));
        }
        map.remove(old_id);
        map.insert(new_id.to_owned(), record);
        ready(Ok(()))
    }

    fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
        let mut map = self.map();
        let Some(record) = map.get_mut(id).filter(|r| live(r, with.now)) else {
            return ready(false);
        };
        record.state = with.state;
        record.expires_at = with.expires_at;
        if with.attachment.is_some() {
            record.attachment = with.attachment;
        }
        ready(true)
    }

    fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
        if let Some(record) = self.map().get_mut(id) {
            if live(record, extension.now)
                && record.expires_at < extension.due
                && record.expires_at < extension.expires_at
            {
                record.expires_at = extension.expires_at;
            }
        }
        ready(())
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        self.map().remove(id);
        ready(())
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        ready(())
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let settings = Settings::from_env().map_err(std::io::Error::other)?;
    let memory = Memory::default();
    let config = textdrop::storage::store_config(&settings, 1);
    let storage = Storage::with_records(&config, move || Rc::new(memory.clone()) as Rc<dyn Records>);
    let app = Application::build_on(settings, Clock::system(), storage)
        .await
        .map_err(std::io::Error::other)?;
    app.run_until_stopped().await
}
