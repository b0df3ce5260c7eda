//! The operator's config (`--config`): any text is parsed without a panic, and what
//! parses can be used: each plugin's grants and limits resolve and a policy built
//! from them describes itself.
#![no_main]

use enginehost_core::policy::{OperatorConfig, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = OperatorConfig::parse(text) else {
        return;
    };
    for name in config.plugins.keys().chain(config.engines.keys()) {
        let grants = config.grants(name);
        let _ = config.limits_for(name);
        let _ = config.engine_config(name);
        // A plugin that asks for exactly what it is granted gets all of it.
        let policy = Policy::new(name, "1.0.0", grants.clone(), grants);
        let _ = policy.describe();
        assert!(
            policy.ungranted().is_empty(),
            "a request equal to its grant has ungranted parts: {:?}",
            policy.ungranted()
        );
    }
});
