//! What a plugin may do on the host: the operator's TOML config, the plugin's
//! `capabilities.toml` request, and the effective policy (request ∩ grant) that
//! every capability checks on each use.
//!
//! Two stages, as ripgrep's lowargs → hiargs:
//! - **Parse and validate** (`config`, `tables`, `reader`, `validate`): TOML becomes
//!   [`OperatorConfig`] and [`Capabilities`]; every pattern is parsed once so that a
//!   mistake is a load error naming its key (`plugins.native.process.exec[1]`).
//! - **Decide** (`effective`): [`Policy`] holds one plugin's request and grant with
//!   their patterns compiled, and answers each use with `Ok(())` or a [`Denied`] that
//!   names the capability, the request and the config key that would allow it.
//!
//! The pattern languages live in `exec` (process.exec globs), `net` and `addr`
//! (network.connect `HOST:PORT`, CIDRs, private addresses), `unix_socket`
//! (unix-sockets.connect paths) and `endpoint` (endpoint.listen).
//!
//! Nothing here touches wasmtime, the file system (beyond [`OperatorConfig::load`])
//! or another module of the host: `caps/<x>` and `runtime` call in, never the reverse.

mod addr;
mod config;
mod effective;
mod endpoint;
pub mod env;
mod exec;
mod interactive;
mod limits;
mod net;
mod reader;
mod registries;
mod tables;
mod unix_socket;
mod validate;
mod worker;

pub use config::{ConfigError, HostSettings, OperatorConfig, TreeKill};
pub use effective::{CapabilityReport, Denied, EffectiveDir, NetRules, Policy, TaskEgress};
pub use endpoint::Peers;
pub use interactive::InteractiveSettings;
pub use limits::{Limits, ResolvedLimits};
pub use registries::{RegistrySettings, registry_name};
pub use tables::{
    Capabilities, DirMode, DirTable, EndpointTable, FilesTable, NetworkTable, ProcessTable, RunAs, TaskNetwork,
    UnixSocketsTable, UsersTable,
};
pub use worker::{ArtifactStorage, CredentialSource, LiveLogSettings, PayloadFormat, ShutdownMode, WorkerSettings};
