//! A plugin file as the catalog reads it before compiling anything: any bytes are
//! either accepted with a name, version and contract that pass the checks, or
//! rejected with a reason; the `capabilities.toml` a plugin embeds, alone.
#![no_main]

use enginehost_core::metadata::{self, valid_name, valid_version};
use enginehost_core::policy::Capabilities;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = metadata::read(data) {
        assert!(valid_name(&meta.name), "accepted a bad name {:?}", meta.name);
        assert!(
            valid_version(&meta.version),
            "accepted a bad version {:?}",
            meta.version
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Capabilities::from_plugin_toml(text);
    }
});
