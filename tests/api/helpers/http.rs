//! HTTP from the tests' side: a cookie-keeping client, the app's pages, cookies, and
//! hand-made multipart bodies.

use std::time::Duration;

use actix_web::cookie::Cookie;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use textdrop::startup::{SECURE_SESSION_COOKIE, SESSION_COOKIE};

use super::TestApp;

/// A client that keeps cookies and does not follow redirects.
pub fn cookie_client() -> reqwest::Client {
    cookie_client_builder().build().expect("client")
}

/// [`cookie_client`] connecting from `address` (127.0.0.2, …: another client to the server).
pub fn cookie_client_from(address: &str) -> reqwest::Client {
    cookie_client_builder()
        .local_address(address.parse::<std::net::IpAddr>().expect("an address"))
        .build()
        .expect("client")
}

fn cookie_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // The server drops a keep-alive connection idle for 5 s (actix-web's default); a
        // request sent on it at that moment fails. Tests that wait that long (the slowloris
        // one) must not reuse such a connection.
        .pool_idle_timeout(Duration::from_secs(2))
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("body")
    }

    /// POSTs `data` as the `textfile` part named `file_name`.
    pub async fn upload(&self, file_name: &str, data: impl Into<Vec<u8>>) -> reqwest::Response {
        upload_with(&self.client, &self.address, file_name, data)
            .await
            .expect("POST")
    }

    pub async fn post_form(&self, form: Form) -> reqwest::Response {
        self.client
            .post(format!("{}/", self.address))
            .multipart(form)
            .send()
            .await
            .expect("POST")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// The body of the answer to `request`.
async fn body_of(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.expect("the request is answered");
    response.text().await.expect("body")
}

/// The body of GET `url` with `client`.
pub async fn page_at(client: &reqwest::Client, url: &str) -> String {
    body_of(client.get(url)).await
}

/// The body of GET `url` sent by a client with no cookie jar, carrying only `cookie` (a
/// `name=value` pair): a stolen or replayed cookie.
pub async fn page_with_cookie(url: &str, cookie: &str) -> String {
    body_of(
        reqwest::Client::new()
            .get(url)
            .header(reqwest::header::COOKIE, cookie),
    )
    .await
}

/// POSTs `data` as the `textfile` part named `file_name` to the server at `address`.
pub async fn upload_with(
    client: &reqwest::Client,
    address: &str,
    file_name: &str,
    data: impl Into<Vec<u8>>,
) -> reqwest::Result<reqwest::Response> {
    let part = Part::bytes(data.into())
        .file_name(file_name.to_owned())
        .mime_str("text/plain")
        .expect("mime");
    client
        .post(format!("{address}/"))
        .multipart(Form::new().part("textfile", part))
        .send()
        .await
}

/// Uploads `text` with only `cookie` (no jar: whatever key the answer sets is for the caller to
/// keep or drop). Returns the status and the new cookie pair, if one was set.
pub async fn upload_as(
    app: &TestApp,
    cookie: &str,
    name: &str,
    text: &str,
) -> (StatusCode, Option<String>) {
    let part = reqwest::multipart::Part::bytes(text.as_bytes().to_vec())
        .file_name(name.to_owned())
        .mime_str("text/plain")
        .expect("mime");
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/", app.address))
        .header(reqwest::header::COOKIE, cookie)
        .multipart(reqwest::multipart::Form::new().part("textfile", part))
        .send()
        .await
        .expect("POST");
    (response.status(), session_cookie_pair(&response))
}

/// A first upload of `text` by a new visitor: its cookie pair.
pub async fn first_upload(app: &TestApp, text: &str) -> String {
    let response = upload_with(&cookie_client(), &app.address, "first.txt", text)
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    session_cookie_pair(&response).expect("a session cookie")
}

/// The session cookie `response` sets, if any, parsed.
pub fn session_cookie(response: &reqwest::Response) -> Option<Cookie<'static>> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| Cookie::parse(v.to_owned()).ok())
        .find(|c| c.name() == SESSION_COOKIE || c.name() == SECURE_SESSION_COOKIE)
}

/// The `name=value` pair of the session cookie `response` sets, for a `Cookie` header.
pub fn session_cookie_pair(response: &reqwest::Response) -> Option<String> {
    session_cookie(response).map(|c| format!("{}={}", c.name(), c.value()))
}

/// The session key a session cookie `name=value` carries, opened with `secret` (the app's
/// SECRET_KEY); `None` when it does not open under it.
pub fn session_key_in(pair: &str, secret: &str) -> Option<String> {
    // The value is sent percent-encoded.
    let cookie = Cookie::parse_encoded(pair.to_owned()).ok()?;
    let name = cookie.name().to_owned();
    let mut jar = actix_web::cookie::CookieJar::new();
    jar.add_original(cookie);
    let key = actix_web::cookie::Key::derive_from(secret.as_bytes());
    let opened = jar.private(&key).get(&name)?;
    Some(opened.value().to_owned())
}

/// A session cookie `name=value` for the session key `session_key`, made under `secret`.
pub fn cookie_for(name: &str, session_key: &str, secret: &str) -> String {
    let mut jar = actix_web::cookie::CookieJar::new();
    let key = actix_web::cookie::Key::derive_from(secret.as_bytes());
    jar.private_mut(&key)
        .add(Cookie::new(name.to_owned(), session_key.to_owned()));
    jar.get(name)
        .expect("added")
        .encoded()
        .stripped()
        .to_string()
}

/// The boundary of the hand-made multipart bodies below.
pub const BOUNDARY: &str = "XyZ";
/// The `Content-Type` of a hand-made multipart body.
pub const MULTIPART: &str = "multipart/form-data; boundary=XyZ";
/// What closes a hand-made multipart body after the file's bytes.
pub const MULTIPART_TAIL: &str = "\r\n--XyZ--\r\n";

/// The start of a multipart body with one `textfile` part named `file_name`, up to its bytes.
pub fn multipart_head(file_name: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"textfile\"; \
         filename=\"{file_name}\"\r\n\r\n"
    )
}

/// A multipart body with one `textfile` part holding `lines`, sent piece by piece (head, each
/// line, tail) with `pause` before each piece.
pub fn trickled_body(file_name: &str, lines: &[&str], pause: Duration) -> reqwest::Body {
    use futures_util::StreamExt;
    let pieces: Vec<Result<String, std::io::Error>> = std::iter::once(multipart_head(file_name))
        .chain(lines.iter().map(|l| l.to_string()))
        .chain(std::iter::once(MULTIPART_TAIL.to_owned()))
        .map(Ok)
        .collect();
    reqwest::Body::wrap_stream(
        futures_util::stream::iter(pieces).then(move |piece| async move {
            actix_web::rt::time::sleep(pause).await;
            piece
        }),
    )
}

/// The lines a file page shows, in order: each line's number (`None` for a later piece of a
/// long line) and its text as the page has it (HTML-escaped), without the number's link.
pub fn shown_lines(page: &str) -> Vec<(Option<usize>, String)> {
    let Some(start) = page.find("<pre class=\"file") else {
        return Vec::new();
    };
    let end = page[start..]
        .find("</pre>")
        .map_or(page.len(), |e| start + e);
    page[start..end]
        .split("<span class=\"line")
        .skip(1)
        .map(|span| {
            let inner = span.split_once('>').map_or("", |(_, rest)| rest);
            let inner = inner.strip_suffix('\n').unwrap_or(inner);
            let inner = inner.strip_suffix("</span>").unwrap_or(inner);
            if let Some(rest) = inner.strip_prefix("<span class=\"n\"></span>") {
                return (None, rest.to_owned());
            }
            let number = inner
                .strip_prefix("<a class=\"n\" data-n=\"")
                .and_then(|rest| rest.split_once('"'))
                .and_then(|(n, _)| n.parse().ok());
            let text = inner.split_once("</a>").map_or(inner, |(_, text)| text);
            (number, text.to_owned())
        })
        .collect()
}
