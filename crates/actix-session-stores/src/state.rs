//! How a session's state is stored: actix-session 0.11 hands the store a map of JSON texts;
//! its next format is `{"v":1,"state":{…}}` with the values as JSON. A state whose every value
//! is JSON (what `Session::insert` always writes) is stored in that next shape, so a later
//! actix-session reads the rows as they are; a state with a value that is not JSON (written
//! by hand into the map) is stored as the plain map. Both shapes read back as 0.11's map.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The state actix-session 0.11 hands a store.
pub(crate) type SessionState = HashMap<String, String>;

const VERSION: u32 = 1;

#[derive(Serialize)]
struct Versioned<'a> {
    v: u32,
    state: BTreeMap<&'a str, &'a RawValue>,
}

#[derive(Deserialize)]
struct VersionedOwned {
    v: u32,
    state: BTreeMap<String, Box<RawValue>>,
}

/// The stored text of `state`, its keys in order so that the same state is always the same
/// text (a rotation's key is derived from it).
pub(crate) fn encode(state: &SessionState) -> serde_json::Result<String> {
    let values: Option<BTreeMap<&str, &RawValue>> = state
        .iter()
        .map(|(key, value)| {
            serde_json::from_str::<&RawValue>(value)
                .ok()
                .map(|raw| (key.as_str(), raw))
        })
        .collect();
    match values {
        Some(state) => serde_json::to_string(&Versioned { v: VERSION, state }),
        None => serde_json::to_string(&state.iter().collect::<BTreeMap<_, _>>()),
    }
}

/// The state stored as `text`, in either shape.
pub(crate) fn decode(text: &str) -> serde_json::Result<SessionState> {
    if text.starts_with("{\"v\":") {
        if let Ok(versioned) = serde_json::from_str::<VersionedOwned>(text) {
            if versioned.v == VERSION {
                return Ok(versioned
                    .state
                    .into_iter()
                    .map(|(key, value)| (key, value.get().to_owned()))
                    .collect());
            }
        }
    }
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(&str, &str)]) -> SessionState {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn json_values_are_stored_in_the_next_format_and_read_back() {
        let s = state(&[("n", "3"), ("user", "{\"name\":\"a\"}"), ("t", "\"x\"")]);
        let text = encode(&s).expect("encode");
        assert_eq!(
            text,
            r#"{"v":1,"state":{"n":3,"t":"x","user":{"name":"a"}}}"#
        );
        assert_eq!(decode(&text).expect("decode"), s);
    }

    #[test]
    fn a_value_that_is_no_json_keeps_the_plain_map() {
        let s = state(&[("raw", "not json"), ("n", "1")]);
        let text = encode(&s).expect("encode");
        assert_eq!(text, r#"{"n":"1","raw":"not json"}"#);
        assert_eq!(decode(&text).expect("decode"), s);
    }

    #[test]
    fn rows_written_before_read_back_unchanged() {
        let old = r#"{"file":"{\"name\":\"a.txt\",\"size\":3}"}"#;
        let s = decode(old).expect("decode");
        assert_eq!(s["file"], r#"{"name":"a.txt","size":3}"#);
        // A map whose key happens to be "v" is still a map.
        assert_eq!(decode(r#"{"v":"1"}"#).expect("decode")["v"], "1");
    }
}
