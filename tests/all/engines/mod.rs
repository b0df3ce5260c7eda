//! The script, native, docker and qemu engines beyond their conformance cases
//! (docker's and qemu's cases run here too, against a real dockerd and real VMs):
//! the seed's semantics and the decisions taken on its quirks (docs/engines/).

mod docker;
mod native;
mod qemu;
mod script;

use std::sync::Arc;

use enginehost::contract::Engine;
use enginehost::plugin::BUILTIN;
use enginehost::policy::OperatorConfig;
use enginehost::runtime::EngineOptions;

use crate::common::*;

/// Starts built-in engine `name` from an operator config (its `[engines.NAME]`
/// and `[plugins.NAME.*]` tables).
pub async fn engine_from(name: &str, config: &str) -> Arc<dyn Engine> {
    let (_, wasm, _) = BUILTIN.iter().find(|(f, _, _)| *f == format!("{name}.wasm")).unwrap();
    let plugin = RUNTIME.load(name, wasm).unwrap();
    let config = OperatorConfig::parse(config).expect("the test's config parses");
    RUNTIME
        .start_engine(
            &plugin,
            EngineOptions {
                config: config.engine_config(name),
                grants: config.grants(name),
                ..Default::default()
            },
        )
        .await
        .expect("engine starts")
}
