//! Payload and config validation with JSON Schema, following the seed's
//! `schematypes` rules: an object schema that does not say otherwise rejects
//! unknown keys, and the engine receives only the keys its schema declares. Every
//! problem becomes one message naming the JSON path and what was expected.
//!
//! An engine's schemas come from plugin code: [`Compiled::new`] caps their size and
//! compiles them once, when the engine starts (an engine with a schema that is too
//! large or invalid does not start); every task is then validated against that.

use serde_json::{Map, Value};

/// The largest schema an engine may give (its JSON text), in bytes.
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;

/// A schema, normalized and compiled.
pub struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

impl Compiled {
    /// Normalizes and compiles `schema`.
    ///
    /// # Errors
    /// When it is larger than [`MAX_SCHEMA_BYTES`] or not a valid JSON Schema (the
    /// message says which).
    pub fn new(schema: &Value) -> Result<Compiled, String> {
        let size = schema.to_string().len();
        if size > MAX_SCHEMA_BYTES {
            return Err(format!(
                "it is {size} bytes of JSON; at most {MAX_SCHEMA_BYTES} are accepted"
            ));
        }
        if !schema.is_object() && !schema.is_boolean() {
            return Err(format!("a schema is a JSON object, not {}", kind(schema)));
        }
        let normalized = normalize(schema);
        let validator =
            jsonschema::validator_for(&normalized).map_err(|e| format!("it is not a valid JSON Schema: {e}"))?;
        Ok(Compiled {
            schema: schema.clone(),
            validator,
        })
    }

    /// Compiles a published schema as written (no added `additionalProperties`):
    /// the schemas of other workers' payloads, which say what they allow.
    ///
    /// # Errors
    /// When it is not a valid JSON Schema.
    pub fn published(schema: &Value) -> Result<Compiled, String> {
        let validator = jsonschema::validator_for(schema).map_err(|e| format!("it is not a valid JSON Schema: {e}"))?;
        Ok(Compiled {
            schema: schema.clone(),
            validator,
        })
    }

    /// The schema as given.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Validates `instance`; `root` names it in messages (`task.payload`).
    ///
    /// # Errors
    /// Every problem, one message each.
    pub fn validate(&self, instance: &Value, root: &str) -> Result<(), Vec<String>> {
        let messages: Vec<String> = self
            .validator
            .iter_errors(instance)
            .map(|e| message(&e, root))
            .collect();
        if messages.is_empty() { Ok(()) } else { Err(messages) }
    }

    /// The seed's `Filter` (see [`filter`]).
    pub fn filter(&self, instance: &Value) -> Value {
        filter(&self.schema, instance)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Applies the seed's object default: `additionalProperties: false` wherever an
/// object schema does not set it.
pub fn normalize(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map.iter().map(|(k, v)| (k.clone(), normalize_child(k, v))).collect();
            let is_object = map.get("type").and_then(Value::as_str) == Some("object") || map.contains_key("properties");
            if is_object && !out.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn normalize_child(key: &str, value: &Value) -> Value {
    match (key, value) {
        // Maps from names to subschemas.
        ("properties" | "patternProperties" | "definitions" | "$defs", Value::Object(m)) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        ("items" | "additionalProperties" | "not", v @ Value::Object(_)) => normalize(v),
        ("allOf" | "anyOf" | "oneOf" | "items", Value::Array(a)) => Value::Array(a.iter().map(normalize).collect()),
        (_, v) => v.clone(),
    }
}

/// Validates `instance` against `schema` (normalized). `root` names the instance in
/// messages (`task.payload`).
///
/// # Errors
/// Every problem, one message each; or one message if the schema itself is broken.
pub fn validate(schema: &Value, instance: &Value, root: &str) -> Result<(), Vec<String>> {
    let compiled = Compiled::new(schema).map_err(|e| vec![format!("the engine's schema for {root}: {e}")])?;
    compiled.validate(instance, root)
}

/// One validation problem as a message naming the JSON path.
fn message(e: &jsonschema::ValidationError<'_>, root: &str) -> String {
    let pointer = e.instance_path.to_string();
    let path = if pointer.is_empty() {
        root.to_string()
    } else {
        format!(
            "{root}{}",
            pointer.split('/').skip(1).map(|s| format!(".{s}")).collect::<String>()
        )
    };
    match &e.kind {
        // The library abbreviates long lists; a task author needs all of them.
        jsonschema::error::ValidationErrorKind::Enum {
            options: Value::Array(options),
        } => {
            let options: Vec<String> = options.iter().map(Value::to_string).collect();
            format!("{path}: {} is not one of {}", e.instance, options.join(", "))
        }
        _ => format!("{path}: {e}"),
    }
}

/// The seed's `Filter`: only the keys the schema declares (all keys if it allows
/// additional properties).
pub fn filter(schema: &Value, instance: &Value) -> Value {
    let (Some(obj), Some(props)) = (
        instance.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) else {
        return instance.clone();
    };
    // Only the top level matters here, and `normalize` would only add
    // `additionalProperties: false` where the key is missing.
    if schema
        .get("additionalProperties")
        .is_some_and(|a| a != &Value::Bool(false))
    {
        return instance.clone();
    }
    Value::Object(
        obj.iter()
            .filter(|(k, _)| props.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "delay": {"type": "integer", "minimum": 0},
            "nested": {"type": "object", "properties": {"a": {"type": "string"}}}
        }, "required": ["delay"]})
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let errs = validate(
            &schema(),
            &json!({"delay": 1, "nested": {"a": "x", "b": 1}, "extra": true}),
            "task.payload",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("task.payload: ") && e.contains("extra")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("task.payload.nested: ") && e.contains('b')),
            "{errs:?}"
        );
    }

    #[test]
    fn each_problem_names_path_and_expectation() {
        let errs = validate(&schema(), &json!({"delay": "soon"}), "task.payload").unwrap_err();
        assert_eq!(
            errs,
            vec![r#"task.payload.delay: "soon" is not of type "integer""#.to_string()]
        );
        let errs = validate(&schema(), &json!({}), "task.payload").unwrap_err();
        assert!(errs[0].contains("\"delay\" is a required property"), "{errs:?}");
        assert!(validate(&schema(), &json!({"delay": 3}), "task.payload").is_ok());
    }

    #[test]
    fn enum_errors_list_every_allowed_value() {
        let schema = json!({"type": "object", "properties": {"f": {"enum": ["a", "b", "c", "d", "e"]}}});
        let errs = validate(&schema, &json!({"f": "z"}), "task.payload").unwrap_err();
        assert_eq!(
            errs,
            vec![r#"task.payload.f: "z" is not one of "a", "b", "c", "d", "e""#.to_string()]
        );
    }

    #[test]
    fn explicit_additional_properties_are_kept() {
        let open = json!({"type": "object", "properties": {"a": {}}, "additionalProperties": true});
        assert!(validate(&open, &json!({"a": 1, "b": 2}), "x").is_ok());
        assert_eq!(filter(&open, &json!({"a": 1, "b": 2})), json!({"a": 1, "b": 2}));
        assert_eq!(filter(&schema(), &json!({"delay": 1, "b": 2})), json!({"delay": 1}));
    }
}
