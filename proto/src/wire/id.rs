//! Request ids: echoed as the token the client sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request's `id`: any JSON value the client chose, echoed in replies
/// verbatim, as the token it sent (an integer past 64 bits stays that
/// integer; it is never turned into a float). Held as compact JSON text:
/// two spellings of one id that differ only in whitespace are the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// `null`: the id of a reply to a request that had none (or none that
    /// could be read).
    pub fn null() -> RequestId {
        RequestId("null".into())
    }

    /// The id of a parsed JSON value (its serialisation).
    pub fn from_value(value: &Value) -> RequestId {
        RequestId(value.to_string())
    }

    /// The id as the raw JSON token a request carried (whitespace outside
    /// strings removed).
    fn from_raw(raw: &str) -> RequestId {
        RequestId(minify(raw))
    }

    /// The id as JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The id as an unsigned integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The id as a parsed JSON value (an integer past 64 bits loses its
    /// precision here: only the wire keeps it).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId::null()
    }
}

impl From<u64> for RequestId {
    fn from(id: u64) -> RequestId {
        RequestId(id.to_string())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The text came from a JSON token (or a value we serialised): it
        // is valid JSON, written as it is.
        match serde_json::value::RawValue::from_string(self.0.clone()) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => Value::Null.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RequestId, D::Error> {
        Value::deserialize(deserializer).map(|value| RequestId::from_value(&value))
    }
}

/// A reply's `id` as the very token it carried (`1e2` stays `1e2`, which a
/// parsed `Value` would turn into `100.0`). Only where serde_json reads the
/// field straight from the text (not from a buffered, flattened part).
pub(crate) fn raw_token<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<RequestId, D::Error> {
    Box::<serde_json::value::RawValue>::deserialize(deserializer)
        .map(|raw| RequestId(minify(raw.get())))
}

/// `json` (valid JSON text) without the whitespace between its tokens.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// The raw tokens of a request's `id` and `target`, as sent.
pub(super) fn raw_ids(line: &[u8]) -> (Option<RequestId>, Option<RequestId>) {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow, default)]
        id: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default)]
        target: Option<&'a serde_json::value::RawValue>,
    }
    match serde_json::from_slice::<Raw>(line) {
        Ok(raw) => (
            raw.id.map(|id| RequestId::from_raw(id.get())),
            raw.target.map(|t| RequestId::from_raw(t.get())),
        ),
        // A key given twice, say: the parsed value's reading stands.
        Err(_) => (None, None),
    }
}
