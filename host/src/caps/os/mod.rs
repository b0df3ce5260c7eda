//! The operating-system layer under the process, user and tree-kill capabilities.
//!
//! Owns the raw Linux mechanics only: cgroup v2 directories ([`cgroup`]), forking and exec'ing children with explicit
//! stdio, ids, cwd and cgroup ([`spawn`], [`child`], [`pty`]), per-task system users ([`users`], [`uidkill`]),
//! per-task process and memory limits ([`bounds`]) and network namespaces ([`netns`]), the machine's own addresses
//! ([`local`]), opening paths beneath a root
//! without following symlinks ([`beneath`]), and walking or removing trees a task shaped without recursion ([`tree`]).
//! It must not make policy decisions (which program, which user, which cgroup is allowed): callers check grants first
//! and hand in already-opened, already-validated file descriptors. Nothing here knows about wasm or the guest.
//!
//! Every file refers to its siblings through `super::` only, so this directory can be moved as a unit.

pub use enginehost_core::beneath;
pub mod bounds;
pub mod cgroup;
pub mod child;
pub mod local;
pub mod netns;
pub mod pty;
pub mod spawn;
pub mod tree;
pub mod uidkill;
pub mod users;

#[cfg(test)]
mod testutil;
