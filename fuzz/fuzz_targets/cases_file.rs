//! The conformance cases file (`enginehost test --cases`): any bytes parse or are
//! refused without a panic, and what parses survives `${SERVER}` substitution and
//! a round trip through its own serialization.
#![no_main]

use enginehost_core::cases::Cases;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cases) = serde_json::from_slice::<Cases>(data) else {
        return;
    };
    let cases = cases.with_server("http://127.0.0.1:8080");
    let text = serde_json::to_string(&cases).expect("cases serialize");
    if let Err(e) = serde_json::from_str::<Cases>(&text) {
        panic!("cases do not read back what they wrote: {e}\n{text}");
    }
});
