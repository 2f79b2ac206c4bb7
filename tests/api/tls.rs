//! TLS to PostgreSQL, on a private server started with `ssl=on` and a certificate the test
//! makes (a CA of its own, and a server certificate it signs for a name that is not the host
//! textdrop connects to): `sslmode` means what it means to libpq.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use reqwest::StatusCode;
use textdrop::startup::Application;

use crate::helpers::{eventually, spawn_app, test_settings, Backend, Outage, TestConn, TestDb};
use crate::private_pg::PrivatePostgres;

/// A CA, and a server certificate it signed for `db.textdrop.test` only, written into `dir`:
/// `ca.pem`, `server.pem` and `server.key` (mode 0600, as PostgreSQL wants). Returns the
/// server settings that use them.
fn certificates(dir: &Path) -> Vec<String> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let server = CertificateParams::new(vec!["db.textdrop.test".to_owned()]).expect("params");
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write");
    std::fs::write(dir.join("server.pem"), server_cert.pem()).expect("write");
    let key = dir.join("server.key");
    std::fs::write(&key, server_key.serialize_pem()).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    vec![
        "ssl=on".to_owned(),
        format!("ssl_cert_file={}", dir.join("server.pem").display()),
        format!("ssl_key_file={}", key.display()),
    ]
}

/// Whether each connection textdrop holds to the database uses TLS (`pg_stat_ssl`), asked on
/// `watcher`, a plain connection of the test's own kept for the whole test (one opened per
/// question would still be listed, closing, when the next is asked).
fn app_connections_use_tls(watcher: &mut TestConn) -> Vec<bool> {
    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    use diesel::RunQueryDsl;
    let TestConn::Postgres(pg) = watcher else {
        unreachable!("a PostgreSQL URL")
    };
    diesel::sql_query(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = 'postgres' AND a.pid <> pg_backend_pid() \
         AND a.backend_type = 'client backend'",
    )
    .load::<Ssl>(pg)
    .expect("pg_stat_ssl")
    .into_iter()
    .map(|row| row.ssl)
    .collect()
}

crate::case!(async sslmode_disable_require_verify_ca_and_verify_full_mean_what_libpq_says needs PostgresServer);
async fn sslmode_disable_require_verify_ca_and_verify_full_mean_what_libpq_says() {
    let mut dir = None;
    let pg = PrivatePostgres::start_with(|path| {
        dir = Some(path.to_owned());
        certificates(path)
    });
    let ca = dir.expect("the server's directory").join("ca.pem");
    let admin = format!("{}?sslmode=disable", pg.url());
    let mut watcher = TestConn::open(&admin).expect("connect");
    let with = |params: &str| format!("{}?{params}", pg.url());

    for (params, tls) in [
        ("sslmode=disable".to_owned(), false),
        ("sslmode=require".to_owned(), true),
        (
            format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
            true,
        ),
    ] {
        let db = TestDb::existing(Backend::Postgres, with(&params));
        let app = spawn_app(&db, &[]).await;
        let upload = app.upload("a.txt", "over TLS or not\n").await;
        assert_eq!(upload.status(), StatusCode::SEE_OTHER, "{params}");
        assert!(
            app.get_text("/action").await.contains("over TLS or not"),
            "{params}"
        );
        let connections = app_connections_use_tls(&mut watcher);
        assert!(!connections.is_empty(), "{params}");
        assert!(
            connections.iter().all(|&ssl| ssl == tls),
            "{params}: {connections:?}"
        );
        app.stop().await;
        // A stopped app's connections close a moment later, not at once: the next mode's
        // check must see only its own app's.
        assert!(
            eventually(Duration::from_secs(10), || app_connections_use_tls(
                &mut watcher
            )
            .is_empty())
            .await,
            "{params}: the stopped app's connections closed"
        );
    }

    // The certificate is for db.textdrop.test, not 127.0.0.1: verify-full refuses it.
    let wrong_name = with(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    let db = TestDb::existing(Backend::Postgres, wrong_name);
    let refused = Application::build(test_settings(
        &db,
        &[("DATABASE_CONNECT_TIMEOUT_SECS", "0")],
    ))
    .await;
    let message = format!("{:#}", refused.err().expect("verify-full refuses the name"));
    assert!(message.contains("not valid for name"), "{message}");
    assert!(
        message.starts_with("cannot connect to the database at 127.0.0.1:"),
        "{message}"
    );
}

/// This machine's address on its network (not loopback): the route a packet to a public
/// address would leave by (no packet is sent).
fn this_machines_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    socket
        .connect("192.0.2.255:9")
        .or_else(|_| socket.connect("8.8.8.8:53"))
        .expect("a route off this machine");
    let address = socket.local_addr().expect("its address").ip();
    assert!(!address.is_loopback(), "{address}");
    address
}

crate::case!(async a_password_is_never_sent_in_clear_to_a_server_that_is_not_verified needs PostgresServer);
/// A server that asks for the password in clear text (`password` in pg_hba.conf) gets it only
/// over verified TLS, from this machine, or where DATABASE_URL allows it with
/// `require_auth=password`: over a plain connection to another address (what an attacker who
/// strips TLS sees), or TLS with a certificate nobody checked, startup refuses before sending
/// it. A plain connection to another machine is warned about once.
async fn a_password_is_never_sent_in_clear_to_a_server_that_is_not_verified() {
    let mut dir = None;
    let pg = PrivatePostgres::start_with(|path| {
        dir = Some(path.to_owned());
        let hba = path.join("hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhost all all 0.0.0.0/0 password\n",
        )
        .expect("hba");
        let mut settings = certificates(path);
        settings.push(format!("hba_file={}", hba.display()));
        settings.push("listen_addresses=0.0.0.0".to_owned());
        settings
    });
    let dir = dir.expect("the server's directory");
    // Over the server's own Unix socket (trusted), and nothing else.
    let socket_dir: String = dir.display().to_string().replace('/', "%2F");
    let mut local = TestConn::open(&format!(
        "postgres://postgres@{socket_dir}:{}/postgres",
        pg.port
    ))
    .expect("connect over the Unix socket");
    local
        .batch("ALTER USER postgres PASSWORD 'in-clear-secret'")
        .expect("set a password");
    let ca = dir.join("ca.pem");
    let remote = this_machines_address();
    let url = |host: &str, params: &str| {
        format!(
            "postgres://postgres:in-clear-secret@{host}:{}/postgres?{params}",
            pg.port
        )
    };
    let starts = |url: String| async move {
        let db = TestDb::existing(Backend::Postgres, url);
        Application::build(test_settings(
            &db,
            &[("DATABASE_CONNECT_TIMEOUT_SECS", "0")],
        ))
        .await
        .map(drop)
        .map_err(|e| format!("{e:#}"))
    };

    for params in ["sslmode=disable", "sslmode=prefer", "sslmode=require"] {
        let refused = starts(url(&remote.to_string(), params)).await;
        let message = refused.err().unwrap_or_else(|| panic!("{params}: refused"));
        assert!(
            message.contains("password in clear text") && message.contains("refused"),
            "{params}: {message}"
        );
        assert!(!message.contains("in-clear-secret"), "{message}");
    }
    let verified = format!("sslmode=verify-ca&sslrootcert={}", ca.display());
    for (host, params) in [
        (remote.to_string(), "sslmode=disable&require_auth=password"),
        ("127.0.0.1".to_owned(), "sslmode=disable"),
        (remote.to_string(), verified.as_str()),
    ] {
        let started = starts(url(&host, params)).await;
        assert!(started.is_ok(), "{host} {params}: {started:?}");
    }
    let scram_only = starts(url(
        "127.0.0.1",
        "sslmode=disable&require_auth=scram-sha-256",
    ))
    .await;
    assert!(
        scram_only
            .as_ref()
            .is_err_and(|e| e.contains("require_auth")),
        "{scram_only:?}"
    );

    let db = TestDb::existing(
        Backend::Postgres,
        url(&remote.to_string(), "sslmode=disable&require_auth=password"),
    );
    let server = crate::helpers::ServerProcess::start(&db, &[]);
    let log = server.stop_and_read_log();
    assert_eq!(
        log.matches("is not encrypted").count(),
        1,
        "warned once: {log}"
    );
    assert!(!log.contains("in-clear-secret"), "{log}");
}
