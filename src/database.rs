//! What textdrop names in a shared storage, so that every instance of every version agrees:
//! the Redis key prefix, the locks that serialise migrations and elect the sweeper, and the
//! label rotated keys are derived under. They are the names textdrop used before the store
//! became a crate of its own: an upgrade logs no one out, and old and new instances still
//! exclude each other while migrating and sweeping.

use actix_session_stores::Names;

/// The prefix of every session's Redis key.
pub const REDIS_PREFIX: &str = "textdrop:session:";
/// PostgreSQL's advisory-lock key held while migrating ("textdrop" in ASCII).
pub const POSTGRES_MIGRATION_LOCK: i64 = 0x7465_7874_6472_6f70;
/// PostgreSQL's advisory-lock key that elects the sweeper ("tdsweepr").
pub const POSTGRES_SWEEPER_LOCK: i64 = 0x7464_7377_6565_7072;
/// MySQL's named lock held while migrating.
pub const MYSQL_MIGRATION_LOCK: &str = "textdrop_migrations";
/// MySQL's named lock that elects the sweeper.
pub const MYSQL_SWEEPER_LOCK: &str = "textdrop_sweeper";
/// The label rotated keys are derived under, with `SECRET_KEY`.
pub const ROTATION_LABEL: &str = "textdrop";

/// textdrop's names, for the store's configuration.
pub fn store_names() -> Names {
    let mut names = Names::default();
    names.redis_prefix = REDIS_PREFIX.into();
    names.postgres_migration_lock = POSTGRES_MIGRATION_LOCK;
    names.postgres_sweeper_lock = POSTGRES_SWEEPER_LOCK;
    names.mysql_migration_lock = MYSQL_MIGRATION_LOCK.into();
    names.mysql_sweeper_lock = MYSQL_SWEEPER_LOCK.into();
    names
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    /// Every migration file under `dir` (folder/file → contents), the folder's README aside.
    fn files(dir: &Path) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        for folder in std::fs::read_dir(dir).expect("the migrations folder") {
            let folder = folder.expect("an entry").path();
            if !folder.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&folder).expect("a migration") {
                let file = file.expect("an entry").path();
                let name = file
                    .strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string();
                files.insert(name, std::fs::read_to_string(&file).expect("a text file"));
            }
        }
        files
    }

    /// `diesel migration run` applies the top-level folders; the store crate embeds its own
    /// copies (a published crate reads nothing outside itself): they must be the same files.
    #[test]
    fn the_store_crate_carries_the_migrations_diesel_cli_applies() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let crate_dir = root.join("crates/actix-session-stores");
        for folder in ["migrations", "migrations_mysql"] {
            let top = files(&root.join(folder));
            assert!(top.len() >= 8, "{folder}: {} files", top.len());
            assert_eq!(
                top,
                files(&crate_dir.join(folder)),
                "{folder}/ and crates/actix-session-stores/{folder}/ differ"
            );
        }
    }
}
