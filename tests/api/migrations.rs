//! Startup migrations, their down.sql, startup failures, and the `migrate`/`cleanup` commands.

use actix_session_stores::migrations::{MIGRATIONS, MYSQL_MIGRATIONS};
use actix_session_stores::DatabaseUrl;
use diesel::migration::MigrationSource;
use textdrop::startup::Application;

use crate::helpers::{spawn_app, test_settings, textdrop, Held, NewRow, TestDb};

async fn startup_creates_the_table_and_leaves_nothing_pending(db: TestDb) {
    let app = spawn_app(&db, &[]).await;

    assert!(db.connect().pending_migrations().is_empty());
    assert_eq!(db.row_count(), 0, "the sessions table exists and is empty");
    app.stop().await;
    // A second start finds nothing to do and serves.
    let again = spawn_app(&db, &[]).await;
    assert_eq!(again.get("/healthz").await.status(), 200);
    again.stop().await;
}

async fn every_migration_reverts_and_reapplies(db: TestDb) {
    let mut conn = db.connect();
    conn.migrate();
    let count = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .expect("migrations")
        .len();
    let mysql_count = MigrationSource::<diesel::mysql::Mysql>::migrations(&MYSQL_MIGRATIONS)
        .expect("MySQL migrations")
        .len();
    assert_eq!(
        mysql_count, count,
        "migrations_mysql/ keeps step with migrations/"
    );

    for _ in 0..count {
        conn.revert_last_migration();
    }
    assert_eq!(conn.pending_migrations().len(), count);
    let table_gone = conn.execute("SELECT id FROM sessions").is_err();
    assert!(table_gone, "down.sql drops the table");

    conn.migrate();
    assert!(conn.pending_migrations().is_empty());
}

async fn a_failing_migration_stops_startup_with_a_clear_message(db: TestDb) {
    // A table in the way, created outside the migrations.
    db.connect()
        .execute("CREATE TABLE sessions (unrelated INTEGER)")
        .expect("create");

    let result = Application::build(test_settings(&db, &[])).await;

    let message = format!("{:#}", result.err().expect("startup fails"));
    assert!(message.contains("database migrations failed"), "{message}");
    assert!(message.to_lowercase().contains("sessions"), "{message}");
}

/// A DBA's path on a fresh database: `--check` fails naming what is pending, `serve` with
/// `MIGRATE_ON_STARTUP=false` refuses to start naming `textdrop migrate` and changes nothing,
/// `--print-sql` prints SQL that, applied by hand, leaves nothing pending, and then that
/// server starts and stores an upload.
async fn a_dba_applies_the_printed_sql_and_textdrop_finds_nothing_pending(db: TestDb) {
    let all = db.connect().migration_count();
    let check = textdrop_command(&db, &["migrate", "--check"]);
    assert!(!check.status.success(), "{check:?}");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains(&format!("{all} migration(s) pending"))
            && stderr.contains("_rotation_grace")
            && stderr.contains("_rotation_links"),
        "{stderr}"
    );

    let refused = textdrop(&["serve"])
        .env("DATABASE_URL", &db.url)
        .env("MIGRATE_ON_STARTUP", "false")
        .env("DATABASE_CONNECT_TIMEOUT_SECS", "0")
        .output()
        .expect("run textdrop");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("MIGRATE_ON_STARTUP=false: run `textdrop migrate`"),
        "{stderr}"
    );
    let mut conn = db.connect();
    assert_eq!(conn.pending_migrations().len(), all, "nothing was applied");

    let printed = textdrop_command(&db, &["migrate", "--print-sql"]);
    assert!(printed.status.success(), "{printed:?}");
    let sql = String::from_utf8(printed.stdout).expect("UTF-8");
    assert!(
        sql.starts_with(&format!("-- {all} pending session-store migrations for ")),
        "{sql}"
    );
    conn.batch(&sql).expect("the printed SQL runs");
    assert!(
        conn.pending_migrations().is_empty(),
        "diesel sees every migration applied"
    );
    let check = textdrop_command(&db, &["migrate", "--check"]);
    assert!(check.status.success(), "{check:?}");

    let server = crate::helpers::ServerProcess::start(&db, &[("MIGRATE_ON_STARTUP", "false")]);
    let response = crate::helpers::upload_with(
        &crate::helpers::cookie_client(),
        &server.address(),
        "dba.txt",
        "applied by hand\n",
    )
    .await
    .expect("upload");
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(db.row_count(), 1);
}

sql_tests!(
    a_dba_applies_the_printed_sql_and_textdrop_finds_nothing_pending,
    startup_creates_the_table_and_leaves_nothing_pending,
    every_migration_reverts_and_reapplies,
    a_failing_migration_stops_startup_with_a_clear_message,
    the_migrate_and_cleanup_commands_do_their_job_and_exit,
);

async fn an_unreachable_postgres_is_named_in_the_startup_error_with_its_cause(db: TestDb) {
    let mut settings = test_settings(&db, &[("DATABASE_CONNECT_TIMEOUT_SECS", "0")]);
    settings.database.url =
        DatabaseUrl::parse("postgres://textdrop:hunter2@127.0.0.1:1/textdrop").expect("url");

    let result = Application::build(settings).await;

    let message = format!("{:#}", result.err().expect("startup fails"));
    assert!(
        message.starts_with("cannot connect to the database at 127.0.0.1:1 (gave up after 0 s): "),
        "{message}"
    );
    assert!(
        message.contains("Connection refused"),
        "libpq's cause is kept: {message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

fn textdrop_command(db: &TestDb, args: &[&str]) -> std::process::Output {
    textdrop(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run textdrop")
}

async fn the_migrate_and_cleanup_commands_do_their_job_and_exit(db: TestDb) {
    let migrate = textdrop_command(&db, &["migrate"]);
    assert!(migrate.status.success(), "{migrate:?}");
    assert!(db.connect().pending_migrations().is_empty());

    // Two expired rows and one live one.
    let now = chrono::Utc::now().naive_utc();
    db.insert_sessions(
        [("a", -10), ("b", -5), ("c", 600)].map(|(id, offset)| NewRow {
            id: id.to_owned(),
            expires_at: now + chrono::Duration::seconds(offset),
            created_at: now,
            file: None,
        }),
    );

    let cleanup = textdrop_command(&db, &["cleanup"]);

    assert!(cleanup.status.success(), "{cleanup:?}");
    let stdout = String::from_utf8_lossy(&cleanup.stdout);
    assert!(stdout.contains("deleted 2 expired session(s)"), "{stdout}");
    assert_eq!(db.row_count(), 1);
}

crate::case!(an_invalid_setting_stops_the_binary_with_one_line_naming_it);
fn an_invalid_setting_stops_the_binary_with_one_line_naming_it() {
    let output = textdrop(&["migrate"])
        .env("SESSION_LIFETIME_SECS", "forever")
        .output()
        .expect("run textdrop");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("SESSION_LIFETIME_SECS") && stderr.contains("whole number"),
        "{stderr}"
    );
}

crate::case!(a_database_url_that_is_not_a_url_stops_startup_without_echoing_it);
/// A libpq keyword string is not taken as a SQLite path: startup stops naming DATABASE_URL,
/// never repeats the value (it holds a password), and creates no file.
fn a_database_url_that_is_not_a_url_stops_startup_without_echoing_it() {
    let dir = tempfile::tempdir().expect("dir");
    let value = "host=db user=app password=s3cret-pw";

    let output = textdrop(&["serve"])
        .env("DATABASE_URL", value)
        .current_dir(dir.path())
        .output()
        .expect("run");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DATABASE_URL: is neither a URL nor a file path"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cret-pw") && !stderr.contains("host=db"),
        "{stderr}"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
    assert!(files.is_empty(), "{files:?}");
}

/// Someone holds the migration lock: startup waits DATABASE_CONNECT_TIMEOUT_SECS for it, then
/// stops saying so, instead of hanging.
async fn a_held_migration_lock_stops_startup_after_the_connect_timeout(db: TestDb) {
    db.connect().migrate();
    let _holder = db.hold(Held::Migrations);

    let started = std::time::Instant::now();
    let output = textdrop(&["serve"])
        .env("DATABASE_URL", &db.url)
        .env("DATABASE_CONNECT_TIMEOUT_SECS", "2")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    let took = started.elapsed();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("waiting for the migration lock"),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("the migration lock") && last.contains("is held by another database session"),
        "{last}"
    );
    assert!(
        took >= std::time::Duration::from_secs(2) && took < std::time::Duration::from_secs(10),
        "{took:?}"
    );
}

tests_on!(on_postgres: Postgres; a_held_migration_lock_stops_startup_after_the_connect_timeout);
tests_on!(on_mysql: Mysql; a_held_migration_lock_stops_startup_after_the_connect_timeout);

tests_on!(sqlite_only: Sqlite;
    an_unreachable_postgres_is_named_in_the_startup_error_with_its_cause,
);

crate::case!(a_mistyped_sqlite_path_is_never_made_into_a_database);
/// A mistyped SQLite path is never made into an empty database: `stats` and `cleanup` refuse
/// it, `serve` with MIGRATE_ON_STARTUP=false refuses it, `migrate --check` says there is no
/// such file (exit 1); none of them creates the file, and each names what to run.
fn a_mistyped_sqlite_path_is_never_made_into_a_database() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("typo.db");
    let url = format!("sqlite://{}", path.display());
    for (args, migrate_on_startup, says) in [
        (&["stats"][..], "true", "no such file yet"),
        (&["cleanup"][..], "true", "no such file yet"),
        (&["migrate", "--check"][..], "true", "no such file yet"),
        (&["serve"][..], "false", "there is no SQLite database at"),
    ] {
        let output = textdrop(args)
            .env("DATABASE_URL", &url)
            .env("MIGRATE_ON_STARTUP", migrate_on_startup)
            .env("DATABASE_CONNECT_TIMEOUT_SECS", "0")
            .output()
            .expect("run textdrop");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stderr.contains("textdrop migrate"), "{args:?}: {stderr}");
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }
}

crate::case!(a_check_of_an_unreachable_redis_fails);
/// `migrate --check`, `stats` and `cleanup` on a Redis that does not answer exit non-zero
/// saying so, rather than "nothing to do".
fn a_check_of_an_unreachable_redis_fails() {
    let port = crate::helpers::free_port();
    for args in [
        &["migrate", "--check"][..],
        &["stats"][..],
        &["cleanup"][..],
    ] {
        let output = textdrop(args)
            .env("DATABASE_URL", format!("redis://127.0.0.1:{port}/0"))
            .env("DATABASE_CONNECT_TIMEOUT_SECS", "0")
            .output()
            .expect("run textdrop");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("127.0.0.1:{port}")),
            "{args:?}: {stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("nothing to do"),
            "{args:?}"
        );
    }
}

crate::case!(the_diesel_cli_install_line_is_the_same_everywhere);
/// The README, migrations/README.md and the CI script install diesel_cli with one line, and
/// it is the one that needs no `-dev` package (the `*-bundled` features).
fn the_diesel_cli_install_line_is_the_same_everywhere() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let lines: Vec<(String, Vec<String>)> = [
        "README.md",
        "migrations/README.md",
        "scripts/diesel-cli-check.sh",
    ]
    .iter()
    .map(|file| {
        let text = std::fs::read_to_string(root.join(file)).expect("read");
        let installs = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("cargo install diesel_cli"))
            .map(|rest| rest.trim_end_matches(" --quiet --force").to_owned())
            .collect();
        (file.to_string(), installs)
    })
    .collect();
    let readme = &lines[0].1;
    assert_eq!(readme.len(), 1, "one install line in the README");
    assert!(readme[0].contains("postgres-bundled,mysql-bundled,sqlite-bundled"));
    for (file, installs) in &lines {
        assert_eq!(installs, readme, "{file}");
    }
}

/// `textdrop backup` copies a SQLite database while it serves; the copy, put in an empty
/// place of the database, serves every visitor their file again (same SECRET_KEY); it never
/// overwrites a file, and it sends the other storages to their own tools.
async fn a_backup_taken_while_serving_restores_every_session(db: TestDb) {
    let app = spawn_app(&db, &[]).await;
    let cookie = crate::helpers::first_upload(&app, "kept through a backup\n").await;
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("backup.db");

    let output = textdrop(&["backup", copy.to_str().expect("path")])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run textdrop");
    assert!(output.status.success(), "{output:?}");
    let again = textdrop(&["backup", copy.to_str().expect("path")])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run textdrop");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    app.stop().await;

    let restored = TestDb::existing(
        crate::helpers::Backend::Sqlite,
        format!("sqlite://{}", copy.display()),
    );
    let app = spawn_app(&restored, &[]).await;
    let page = crate::helpers::page_with_cookie(&format!("{}/action", app.address), &cookie).await;
    assert!(page.contains("kept through a backup"), "{page:.400}");
    app.stop().await;

    let elsewhere = textdrop(&["backup", "/tmp/never-written.db"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")
        .output()
        .expect("run textdrop");
    assert!(!elsewhere.status.success());
    assert!(String::from_utf8_lossy(&elsewhere.stderr).contains("pg_dump"));
}

tests_on!(backup_on_sqlite: Sqlite; a_backup_taken_while_serving_restores_every_session);
