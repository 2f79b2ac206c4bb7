//! The SQLite ceiling of `bench/bench.sh`: the statements one textdrop request runs, in a
//! loop on the same system libsqlite3 with textdrop's pragmas (WAL, synchronous=NORMAL,
//! busy_timeout 5 s), no web server and no session layer. Prints `rps=N`.
//!
//! Usage: sqlite-loop DB R|WM|N SECONDS THREADS
//!   R   SELECT one of 64 rows with its file
//!   WM  SELECT one of the thread's own rows, then DELETE it and INSERT it with a new file in
//!       one transaction (textdrop's upload with key rotation: delete the old row, insert the
//!       new one)
//!   N   INSERT a new row

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};

const STATE: &str = r#"{"file":"{\"name\":\"bench.txt\",\"size\":2520,\"lines\":40}"}"#;

fn open(path: &str) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = NORMAL;",
    )
    .expect("pragmas");
    conn
}

fn id(n: u64) -> String {
    format!("{n:064x}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, load, seconds, threads] = &args[..] else {
        eprintln!("usage: sqlite-loop DB R|WM|N SECONDS THREADS");
        std::process::exit(2);
    };
    let seconds: u64 = seconds.parse().expect("seconds");
    let threads: u64 = threads.parse().expect("threads");
    let file: String = (1..=40)
        .map(|n| format!("line {n:02} of the benchmark file: the quick brown fox jumps over\n"))
        .collect();

    let setup = open(path);
    setup
        .execute_batch(
            "DROP TABLE IF EXISTS sessions;
             CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL,
               expires_at TIMESTAMP NOT NULL, created_at TIMESTAMP NOT NULL, file TEXT,
               file_bytes BIGINT NOT NULL DEFAULT 0);
             CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);",
        )
        .expect("schema");
    for n in 0..64 {
        setup
            .execute(
                "INSERT INTO sessions VALUES (?1, ?2, datetime('now', '+1 day'), datetime('now'), ?3, 2520)",
                params![id(n), STATE, file],
            )
            .expect("seed");
    }
    drop(setup);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, done, path, load, file) = (
                Arc::clone(&stop),
                Arc::clone(&done),
                path.clone(),
                load.clone(),
                file.clone(),
            );
            std::thread::spawn(move || {
                let mut conn = open(&path);
                let mut i: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let row = match load.as_str() {
                        "WM" => id(t * 2 % 64 + i % 2),
                        _ => id((t * 7919 + i) % 64),
                    };
                    match load.as_str() {
                        "R" => {
                            let mut select = conn
                                .prepare_cached(
                                    "SELECT state, expires_at, created_at, file FROM sessions \
                                     WHERE id = ?1 AND expires_at > datetime('now') \
                                     AND created_at > datetime('now', '-7 days')",
                                )
                                .expect("prepare");
                            let found: Option<String> = select
                                .query_row(params![row], |r| r.get(3))
                                .ok()
                                .flatten();
                            assert!(found.is_some(), "row {row} is there");
                        }
                        "WM" => {
                            conn.prepare_cached(
                                "SELECT state, expires_at, created_at FROM sessions \
                                 WHERE id = ?1 AND expires_at > datetime('now') \
                                 AND created_at > datetime('now', '-7 days')",
                            )
                            .expect("prepare")
                            .query_row(params![row], |r| r.get::<_, String>(0))
                            .ok();
                            let new_file = format!("upload {t}-{i}\n{file}");
                            let tx = conn
                                .transaction_with_behavior(TransactionBehavior::Immediate)
                                .expect("begin");
                            tx.prepare_cached("DELETE FROM sessions WHERE id = ?1")
                                .expect("prepare")
                                .execute(params![row])
                                .expect("delete");
                            tx.prepare_cached(
                                "INSERT INTO sessions VALUES (?1, ?2, datetime('now', '+1 day'), \
                                 datetime('now'), ?3, ?4)",
                            )
                            .expect("prepare")
                            .execute(params![row, STATE, new_file, new_file.len() as i64])
                            .expect("insert");
                            tx.commit().expect("commit");
                        }
                        "N" => {
                            conn.prepare_cached(
                                "INSERT INTO sessions VALUES (?1, ?2, datetime('now', '+1 day'), \
                                 datetime('now'), ?3, 2520)",
                            )
                            .expect("prepare")
                            .execute(params![format!("n-{t}-{i}"), STATE, file])
                            .expect("insert");
                        }
                        other => panic!("unknown workload {other}"),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for worker in workers {
        worker.join().expect("worker");
    }
    println!("rps={:.1}", count as f64 / elapsed);
}
