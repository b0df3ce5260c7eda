//! The fake queue's own tests, in one binary, against the real `taskcluster` and
//! `taskcluster-upload` clients over HTTP on loopback.
//!
//! - `worker_flow`: claim, reclaim, object uploads (dataInline and putUrl), every artifact type,
//!   completion, reading back.
//! - `auth`: 401/403 cases, temporary credentials, `authorizedScopes`, Hawk checks, expiry.
//! - `claims`: long-poll, capacity, claim expiry and retry runs, 409s, exception reasons.
//! - `artifacts`: expiry limit, idempotency and conflicts, post-resolution uploads, gzip s3
//!   uploads, object upload checks.

#![allow(dead_code)]

mod artifacts;
mod auth;
mod claims;
mod common;
mod worker_flow;
