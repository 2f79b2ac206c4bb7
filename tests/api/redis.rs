//! What only Redis does (`DATABASE_URL=redis://…` or `redis+cluster://…`): it expires keys itself in real time, and
//! has nothing to migrate or clean up. The pages' suite runs on Redis too (`page_tests!`).

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{
    cookie_client, page_with_cookie, session_cookie, session_cookie_pair, spawn_app_with, textdrop,
    TestClock, TestDb,
};

async fn a_session_expires_in_real_time_and_survives_a_restart(db: TestDb) {
    let client = cookie_client();
    let vars = [("SESSION_LIFETIME_SECS", "4")];
    let first = spawn_app_with(&db, &vars, TestClock::default(), client.clone()).await;
    let upload = first.upload("a.txt", "short lived\n").await;
    let pair = session_cookie_pair(&upload).expect("cookie");
    // A graceful stop waits (up to 2 s) for the client's idle kept-alive connection.
    first.stop().await;

    let second = spawn_app_with(&db, &vars, TestClock::default(), client).await;
    assert_eq!(second.get("/readyz").await.status(), StatusCode::OK);
    let url = format!("{}/action", second.address);
    let with_old_cookie = || page_with_cookie(&url, &pair);
    assert!(
        with_old_cookie().await.contains("short lived"),
        "a restart keeps it"
    );
    // Redis counts real time: a lifetime with no visit, and the key is gone.
    actix_web::rt::time::sleep(Duration::from_millis(4500)).await;
    let page = with_old_cookie().await;
    assert!(page.contains("You have not yet uploaded a file"), "{page}");
    assert_eq!(db.row_count(), 0);
    second.stop().await;
}

async fn redis_keys_are_hashes_never_the_session_key(db: TestDb) {
    let app = crate::helpers::spawn_app(&db, &[]).await;

    let response = app.upload("a.txt", "a\n").await;

    let cookie = session_cookie(&response).expect("cookie");
    let keys = db.redis_keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("textdrop:session:"), "{keys:?}");
    let hash = keys[0].trim_start_matches("textdrop:session:");
    assert!(
        hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );
    // The cookie is encrypted; the key inside it is 64 alphanumerics, never a Redis key.
    assert!(!keys[0].contains(cookie.value()));
    app.stop().await;
}

tests_on!(redis_only: Redis;
    a_session_expires_in_real_time_and_survives_a_restart,
    redis_keys_are_hashes_never_the_session_key,
);
tests_on!(cluster_only: RedisCluster;
    a_session_expires_in_real_time_and_survives_a_restart,
    redis_keys_are_hashes_never_the_session_key,
);

crate::case!(maintenance_commands_have_nothing_to_do_on_redis needs Redis);
/// On a Redis that answers, the maintenance commands say there is nothing to do (exit 0); one
/// that does not answer fails them (`migrations::a_check_of_an_unreachable_redis_fails`).
fn maintenance_commands_have_nothing_to_do_on_redis() {
    let db = crate::helpers::TestDb::new(crate::helpers::Backend::Redis);
    for command in ["migrate", "cleanup", "stats"] {
        let output = textdrop(&[command])
            .env("DATABASE_URL", &db.url)
            .output()
            .expect("run");

        assert!(output.status.success(), "{command}: {output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("nothing to do") && stdout.contains("expires sessions itself"),
            "{command}: {stdout}"
        );
    }
}
