//! `cip`: the native host of the cluster-image-policy module.
//!
//! It runs the very same `policy.wasm` that Kubewarden's policy-server loads, answering the
//! module's host calls the way Kubewarden's policy-evaluator does (see `docs/wire-protocol.md`),
//! and adds what a cluster-less user needs: a kwctl-like CLI, a dry-run verifier for CI, and an
//! OPA Gatekeeper external data provider.

pub mod admission;
pub mod artifact;
pub mod async_runtime;
pub mod capabilities;
pub mod cli;
pub(crate) mod go_json;
pub mod kms;
pub mod private_dir;
pub mod provider;
pub mod registry;
pub mod runtime;
pub mod trust;
pub mod unique_keys;
pub mod verify;
