//! The schemas the tools advertise, made portable: only keywords and
//! formats of JSON Schema 2020-12 (a strict validator such as Ajv rejects
//! schemars' `uint32`, `int64` and `double` formats, and every TypeScript
//! SDK client warns about them), with the integer ranges those formats
//! stood for written as `minimum` and `maximum`, and with the limits the
//! server enforces on `wait` stated in its input schema.

use rmcp::model::{JsonObject, Tool};
use serde_json::Value;

use crate::tools::MAX_SESSIONS;

/// The formats JSON Schema 2020-12 defines.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// The range an integer format of schemars stands for.
fn range(format: &str) -> Option<(Value, Value)> {
    let range = match format {
        "uint8" => (0.into(), u8::MAX.into()),
        "uint16" => (0.into(), u16::MAX.into()),
        "uint32" => (0.into(), u32::MAX.into()),
        "uint64" | "uint" => (0.into(), u64::MAX.into()),
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" | "int" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    };
    Some(range)
}

/// Makes `schema` and every schema inside it portable (see the module).
pub fn portable(schema: &mut JsonObject) {
    let format = match schema.get("format") {
        Some(Value::String(format)) if !STANDARD_FORMATS.contains(&format.as_str()) => {
            Some(format.clone())
        }
        _ => None,
    };
    if let Some(format) = format {
        schema.remove("format");
        if let Some((min, max)) = range(&format) {
            schema.entry("minimum").or_insert(min);
            schema.entry("maximum").or_insert(max);
        }
    }
    // `["number", "null"]` for an optional field: strict validators want
    // one type. The field may be left out instead.
    if let Some(Value::Array(types)) = schema.get("type") {
        let named: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
        if let [only] = named[..] {
            let only = only.clone();
            schema.insert("type".into(), only);
        }
    }
    for value in schema.values_mut() {
        visit(value);
    }
}

fn visit(value: &mut Value) {
    match value {
        Value::Object(object) => portable(object),
        Value::Array(items) => items.iter_mut().for_each(visit),
        _ => {}
    }
}

/// Makes every tool's schemas portable, and states `wait`'s limits:
/// 1 to [`MAX_SESSIONS`] sessions, a timeout above 0 and at most
/// `max_timeout` seconds.
pub fn publish(tool: &mut Tool, max_timeout: f64) {
    let mut input = (*tool.input_schema).clone();
    portable(&mut input);
    if tool.name == "wait" {
        limit_wait(&mut input, max_timeout);
    }
    tool.input_schema = input.into();
    if let Some(output) = &tool.output_schema {
        let mut output = (**output).clone();
        portable(&mut output);
        tool.output_schema = Some(output.into());
    }
}

fn limit_wait(input: &mut JsonObject, max_timeout: f64) {
    let Some(Value::Object(properties)) = input.get_mut("properties") else {
        return;
    };
    if let Some(Value::Object(sessions)) = properties.get_mut("sessions") {
        sessions.insert("minItems".into(), 1.into());
        sessions.insert("maxItems".into(), MAX_SESSIONS.into());
    }
    if let Some(Value::Object(timeout)) = properties.get_mut("timeout_seconds") {
        timeout.insert("exclusiveMinimum".into(), 0.into());
        timeout.insert("maximum".into(), max_timeout.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_become_ranges_and_optional_types_one_type() {
        let Value::Object(mut schema) = serde_json::json!({
            "type": "object",
            "properties": {
                "pid": {"type": "integer", "format": "uint32", "minimum": 0},
                "code": {"type": ["integer", "null"], "format": "int32"},
                "timeout": {"type": ["number", "null"], "format": "double"},
                "when": {"type": "string", "format": "date-time"}
            }
        }) else {
            unreachable!()
        };
        portable(&mut schema);
        let props = &schema["properties"];
        assert_eq!(
            props["pid"],
            serde_json::json!({"type": "integer", "minimum": 0, "maximum": u32::MAX})
        );
        assert_eq!(
            props["code"],
            serde_json::json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX})
        );
        assert_eq!(props["timeout"], serde_json::json!({"type": "number"}));
        assert_eq!(
            props["when"]["format"], "date-time",
            "a standard format stays"
        );
    }
}
