//! `PREVIOUS_SECRET_KEYS`: the cookie key changes with no one logged out. A session cookie
//! that opens only under a previous key is accepted (the request goes on as if it had been made
//! under `SECRET_KEY`) and the response carries it re-made under `SECRET_KEY`. Every cookie a
//! response sets is made under `SECRET_KEY` alone: actix-session only ever holds that key, and
//! this layer only re-makes cookies with it (Flask 3.1.0 signed new cookies with a fallback
//! key, CVE-2025-47278; a test checks that no response does here).
//!
//! Two layers: the outermost one of the app re-makes the cookie in the request (headers can
//! change only before anything holds the request), and one between the store's request scope
//! and the session middleware of every page sets it on the response. actix-session re-sends an unchanged cookie only for persistent sessions: for a browser
//! session, or a request that set none, this layer adds it, with the attributes the session
//! middleware gives its own, and only when a session was loaded (a cookie that names nothing
//! is not re-made). A cookie that opens under no key is left as it is: actix-session ignores it,
//! a fresh session.

use std::rc::Rc;

use actix_session_stores::layer;
use actix_web::body::MessageBody;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, COOKIE, SET_COOKIE};
use actix_web::middleware::Next;
use actix_web::HttpMessage as _;

/// The most previous keys accepted: each is tried on a cookie the current key does not open.
pub const MAX_PREVIOUS_KEYS: usize = 4;

/// The session cookie's keys and the attributes the session middleware sets it with.
pub struct CookieKeys {
    pub name: &'static str,
    pub current: Key,
    pub previous: Vec<Key>,
    pub secure: bool,
    /// The persistent cookie's Max-Age; `None`: a browser-session cookie.
    pub max_age: Option<CookieDuration>,
}

impl CookieKeys {
    /// `value`, the session cookie's value as sent (percent-encoded), opened under a previous
    /// key and re-made under the current one (percent-encoded too); `None` when the current
    /// key opens it or none does.
    fn remake(&self, value: &str) -> Option<String> {
        let sent = Cookie::parse_encoded(format!("{}={value}", self.name)).ok()?;
        let mut jar = CookieJar::new();
        jar.add_original(sent.into_owned());
        if jar.private(&self.current).get(self.name).is_some() {
            return None;
        }
        let opened = self
            .previous
            .iter()
            .find_map(|key| jar.private(key).get(self.name))?;
        let mut fresh = CookieJar::new();
        fresh
            .private_mut(&self.current)
            .add(Cookie::new(self.name, opened.value().to_owned()));
        let remade = fresh.get(self.name)?.encoded().stripped().to_string();
        remade.split_once('=').map(|(_, value)| value.to_owned())
    }

    /// The `Set-Cookie` of the session cookie `value` (percent-encoded), as the session
    /// middleware sets it.
    fn set_cookie(&self, value: String) -> Option<HeaderValue> {
        let mut cookie = Cookie::build(self.name, value)
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .finish();
        if let Some(age) = self.max_age {
            cookie.set_max_age(age);
        }
        HeaderValue::from_str(&cookie.to_string()).ok()
    }
}

/// Rewrites the session cookie among `header`'s cookies (`name=value; …`) to `value`.
fn rewritten(header: &str, name: &str, value: &str) -> String {
    header
        .split(';')
        .map(|pair| match pair.trim().split_once('=') {
            Some((n, _)) if n == name => format!("{name}={value}"),
            _ => pair.trim().to_owned(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The session cookie's value in the request's `Cookie` headers, if any.
fn session_cookie(req: &ServiceRequest, name: &str) -> Option<String> {
    req.headers().get_all(COOKIE).find_map(|header| {
        header.to_str().ok()?.split(';').find_map(|pair| {
            let (n, value) = pair.trim().split_once('=')?;
            (n == name).then(|| value.to_owned())
        })
    })
}

/// The session cookie's value re-made under the current key, left in the request by
/// [`accept_previous`] for [`reissue_remade`].
#[derive(Clone)]
struct Remade(String);

/// Middleware, outermost on the app (the request's headers can change only before anything
/// holds the request): a session cookie made under a previous key is replaced in the request
/// by the same cookie made under the current key.
pub async fn accept_previous(
    keys: Rc<CookieKeys>,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let remade = if keys.previous.is_empty() {
        None
    } else {
        session_cookie(&req, keys.name).and_then(|value| keys.remake(&value))
    };
    if let Some(remade) = remade {
        let headers: Vec<HeaderValue> = req
            .headers()
            .get_all(COOKIE)
            .filter_map(|header| {
                HeaderValue::from_str(&rewritten(header.to_str().ok()?, keys.name, &remade)).ok()
            })
            .collect();
        req.headers_mut().remove(COOKIE);
        for header in headers {
            req.headers_mut().append(COOKIE, header);
        }
        req.extensions_mut().insert(Remade(remade));
        log::debug!("a session cookie made under a previous key was accepted and re-made");
    }
    next.call(req).await
}

/// Middleware, between the store's request scope and the session middleware of a page: the
/// cookie [`accept_previous`] re-made is set on the response when the session middleware set
/// none and a session was loaded.
pub async fn reissue_remade(
    keys: Rc<CookieKeys>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let remade = req.extensions().get::<Remade>().cloned();
    let mut response = next.call(req).await?;
    let Some(Remade(remade)) = remade else {
        return Ok(response);
    };
    let prefix = format!("{}=", keys.name);
    let sets_it = response
        .headers()
        .get_all(SET_COOKIE)
        .any(|value| value.as_bytes().starts_with(prefix.as_bytes()));
    if !sets_it && layer::loaded_id().is_some() {
        if let Some(header) = keys.set_cookie(remade) {
            response.headers_mut().append(SET_COOKIE, header);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(previous: &[&Key]) -> CookieKeys {
        CookieKeys {
            name: "id",
            current: Key::derive_from(&[1u8; 32]),
            previous: previous.iter().map(|&k| k.clone()).collect(),
            secure: false,
            max_age: None,
        }
    }

    fn made_under(key: &Key, value: &str) -> String {
        let mut jar = CookieJar::new();
        jar.private_mut(key)
            .add(Cookie::new("id", value.to_owned()));
        let sent = jar
            .get("id")
            .expect("added")
            .encoded()
            .stripped()
            .to_string();
        sent.split_once('=').expect("a pair").1.to_owned()
    }

    #[test]
    fn a_cookie_under_a_previous_key_is_remade_under_the_current_one_only() {
        let old = Key::derive_from(&[2u8; 32]);
        let keys = keys(&[&old]);
        let remade = keys
            .remake(&made_under(&old, "session-key"))
            .expect("re-made");
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::parse_encoded(format!("id={remade}")).expect("a cookie"));
        assert_eq!(
            jar.private(&keys.current).get("id").expect("opens").value(),
            "session-key"
        );
        assert!(
            jar.private(&old).get("id").is_none(),
            "made under the old key"
        );
        // A cookie the current key opens is left alone, one under no key too.
        assert!(keys.remake(&made_under(&keys.current, "k")).is_none());
        let stranger = Key::derive_from(&[3u8; 32]);
        assert!(keys.remake(&made_under(&stranger, "k")).is_none());
    }

    #[test]
    fn only_the_session_cookie_is_rewritten() {
        assert_eq!(
            rewritten("a=1; id=old; b=2", "id", "new"),
            "a=1; id=new; b=2"
        );
        assert_eq!(rewritten("idx=1", "id", "new"), "idx=1");
    }
}
