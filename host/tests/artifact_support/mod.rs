//! Shared by the `artifact_*` tests: the real policy module and the repository's files.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The workspace root (where metadata.yml, examples/ and deploy/ live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The policy module under test: `$CIP_POLICY_WASM` (the Makefile's wasm-opt'd module), else
/// the cargo build output. Fails, never skips, when neither exists.
pub fn policy_wasm_path() -> PathBuf {
    let path = std::env::var_os("CIP_POLICY_WASM").map_or_else(
        || repo_root().join("target/wasm32-wasip1/policy/cluster_image_policy.wasm"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "policy module {} is missing: build it with `make policy.wasm` or \
         `cargo build -p cluster-image-policy --target wasm32-wasip1 --profile policy` \
         (or point CIP_POLICY_WASM at it)",
        path.display()
    );
    path
}

/// The bytes of the policy module under test.
pub fn policy_wasm() -> Vec<u8> {
    let path = policy_wasm_path();
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A repository file as text.
pub fn repo_file(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The annotated policy module and its metadata, annotated once per test binary (compiling
/// the module to ask its protocol version takes seconds in a debug build).
pub fn annotated_policy() -> &'static (Vec<u8>, cip::artifact::Metadata) {
    static ANNOTATED: std::sync::OnceLock<(Vec<u8>, cip::artifact::Metadata)> = std::sync::OnceLock::new();
    ANNOTATED.get_or_init(|| {
        cip::artifact::annotate(
            &policy_wasm(),
            &repo_file("metadata.yml"),
            Some("# Usage\n\nTest README.\n".to_owned()),
        )
        .unwrap_or_else(|e| panic!("annotating the policy module: {e}"))
    })
}

/// The bound of one `cip` command (`annotate`, `push` and `pull` read the policy module; a
/// pull may compile it): generous for a loaded CI machine, so a hung `cip` fails its test
/// instead of hanging the run.
const CIP_LIMIT: Duration = Duration::from_secs(300);

/// Runs `cip` with a private cache and docker directory, so the user's are never touched,
/// within [`CIP_LIMIT`].
pub fn cip(home: &Path, args: &[&str]) -> Output {
    testkit::run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cip"))
            .args(args)
            .env("CIP_CACHE_DIR", home.join("cache"))
            .env("DOCKER_CONFIG", home.join("docker"))
            .env("HOME", home),
        CIP_LIMIT,
    )
    .expect("cip runs")
}
