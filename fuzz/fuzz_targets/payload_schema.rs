//! Payload validation: a task's payload (any JSON) against a shipped engine's
//! schema, and, as an engine's schemas come from plugin code, any schema against any
//! payload (input: SCHEMA \0 PAYLOAD). Nothing panics; what validates, filtered to
//! the schema's keys, still validates.
#![no_main]

use std::sync::OnceLock;

use enginehost_core::schema::Compiled;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn mock() -> &'static Compiled {
    static MOCK: OnceLock<Compiled> = OnceLock::new();
    MOCK.get_or_init(|| {
        let schema: Value = serde_json::from_str(include_str!("../../plugins/mock/payload-schema.json")).unwrap();
        Compiled::new(&schema).unwrap()
    })
}

fn check(schema: &Compiled, payload: &Value) {
    if schema.validate(payload, "payload").is_ok() {
        let filtered = schema.filter(payload);
        if let Err(problems) = schema.validate(&filtered, "payload") {
            panic!("{payload} validates but its filtered form {filtered} does not: {problems:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (schema, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let Ok(payload) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    check(mock(), &payload);
    if let Some(schema) = schema.and_then(|s| serde_json::from_slice::<Value>(s).ok()) {
        if let Ok(compiled) = Compiled::new(&schema) {
            check(&compiled, &payload);
        }
    }
});
