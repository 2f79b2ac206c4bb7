//! The session storage as textdrop configures it: the store crate's [`Config`] made from
//! textdrop's settings, and its errors said in textdrop's words (the variable and the command
//! that mend them).

use actix_session_stores::{Config, ErrorKind, ReadCacheConfig, Storage};

use crate::config::Settings;

/// The store's configuration from textdrop's settings, for `workers` HTTP workers (each opens
/// a pool of its own on PostgreSQL and MySQL).
pub fn store_config(settings: &Settings, workers: usize) -> Config {
    let mut config = Config::new(settings.database.url.clone());
    config.database.previous_url = settings.database.previous_url.clone();
    config.database.pool_size = settings.database.pool_size;
    config.database.connect_timeout = settings.database.connect_timeout;
    config.database.statement_timeout = settings.database.statement_timeout;
    config.database.run_migrations = settings.database.migrate_on_startup;
    config.session.max_lifetime = settings.session.max_lifetime;
    config.session.rotation_grace = settings.session.rotation_grace;
    config.cleanup.interval = settings.cleanup.interval;
    config.cleanup.mode = settings.cleanup.mode;
    config.cleanup.batch_size = settings.cleanup.batch_size;
    config.workers = workers;
    config.names = crate::database::store_names();
    let cache = settings.database.read_cache;
    config.read_cache = cache.is_on_for(&settings.database.url).then(|| {
        let mut bounds = ReadCacheConfig::default();
        bounds.max_bytes = cache.bytes;
        bounds.max_age = cache.max_age;
        bounds
    });
    config
}

/// The HTTP workers textdrop starts when nothing bounds them: one per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Connects to the storage the settings name (migrated, unless `MIGRATE_ON_STARTUP=false`),
/// with pools for `workers` workers.
pub async fn connect(settings: &Settings, workers: usize) -> anyhow::Result<Storage> {
    Storage::connect(store_config(settings, workers))
        .await
        .map_err(in_textdrops_words)
}

/// A store error, with what to do about it in textdrop's terms where the store's own words
/// name its options.
pub fn in_textdrops_words(err: actix_session_stores::Error) -> anyhow::Error {
    match err.kind() {
        ErrorKind::MigrationsPending => anyhow::anyhow!(
            "{err}. MIGRATE_ON_STARTUP=false: run `textdrop migrate`, or have the SQL of \
             `textdrop migrate --print-sql` applied"
        ),
        _ => anyhow::Error::new(err),
    }
}
