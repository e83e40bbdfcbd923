//! The `cip annotate | inspect | push | pull` commands as a user runs them, against the real
//! module and a real loopback registry.

mod artifact_support;

use std::path::Path;
use std::process::Output;

use artifact_support::{cip, policy_wasm_path, repo_root};
use testkit::Registry;

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "cip failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sources_file(dir: &Path, registry: &Registry) -> String {
    let path = dir.join("sources.yaml");
    std::fs::write(&path, format!("insecure_sources: [\"{}\"]\n", registry.host())).expect("write sources");
    path.to_string_lossy().into_owned()
}

#[test]
fn annotate_inspect_push_pull_round_trip() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let registry = Registry::start().expect("registry starts");
    let sources = sources_file(dir, &registry);
    let readme = dir.join("README.md");
    std::fs::write(&readme, "# cluster-image-policy\n\nUsage text.\n").expect("write readme");
    let annotated = dir.join("annotated-policy.wasm");
    let metadata = repo_root().join("metadata.yml");
    let policy = policy_wasm_path();
    let path = |p: &Path| p.to_string_lossy().into_owned();

    stdout(&cip(
        dir,
        &[
            "annotate",
            "-m",
            &path(&metadata),
            "-u",
            &path(&readme),
            "-o",
            &path(&annotated),
            &path(&policy),
        ],
    ));

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&cip(dir, &["inspect", "-o", "json", &path(&annotated)]))).expect("inspect json");
    assert_eq!(json["protocolVersion"], "v1");
    assert_eq!(
        json["annotations"]["io.kubewarden.policy.usage"],
        "# cluster-image-policy\n\nUsage text.\n"
    );
    let yaml: serde_json::Value =
        serde_yaml::from_str(&stdout(&cip(dir, &["inspect", "--output", "yaml", &path(&annotated)])))
            .expect("inspect yaml");
    assert_eq!(yaml, json);
    let summary = stdout(&cip(dir, &["inspect", &path(&annotated)]));
    assert!(summary.contains("protocol version:   v1"), "{summary}");
    assert!(summary.contains("pods/ephemeralcontainers"), "{summary}");
    assert!(summary.contains("Usage text."), "{summary}");

    let uri = format!("registry://{}/policies/cluster-image-policy:v0.1.0", registry.host());
    let pushed = stdout(&cip(
        dir,
        &["push", &path(&annotated), &uri, "--sources-path", &sources],
    ));
    let pushed = pushed.trim();
    let digest = pushed
        .strip_prefix(&format!("{uri}@sha256:"))
        .unwrap_or_else(|| panic!("push printed {pushed:?}, expected {uri}@sha256:…"));
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{pushed}"
    );

    let pulled = dir.join("pulled.wasm");
    stdout(&cip(
        dir,
        &["pull", pushed, "-o", &path(&pulled), "--sources-path", &sources],
    ));
    assert!(
        std::fs::read(&pulled).expect("pulled file") == std::fs::read(&annotated).expect("annotated file"),
        "pulled module differs from the pushed one"
    );

    // inspect of a registry:// URI goes through the cache of `cip run`.
    let remote: serde_json::Value = serde_json::from_str(&stdout(&cip(
        dir,
        &["inspect", "-o", "json", &uri, "--sources-path", &sources],
    )))
    .expect("inspect remote json");
    assert_eq!(remote, json);
    let cached = dir.join("cache/policies").join(format!("sha256-{digest}.wasm"));
    assert!(cached.is_file(), "{} not cached", cached.display());

    let again: serde_json::Value = serde_json::from_str(&stdout(&cip(
        dir,
        &[
            "push",
            &path(&annotated),
            &uri,
            "--sources-path",
            &sources,
            "-o",
            "json",
        ],
    )))
    .expect("push json");
    assert_eq!(again["immutable_ref"], pushed, "same module, same digest");
}

#[test]
fn push_refuses_a_module_without_metadata_unless_forced() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let registry = Registry::start().expect("registry starts");
    let sources = sources_file(dir, &registry);
    let policy = policy_wasm_path().to_string_lossy().into_owned();
    let uri = format!("registry://{}/policies/bare:v1", registry.host());

    let refused = cip(dir, &["push", &policy, &uri, "--sources-path", &sources]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("cip annotate"), "{stderr}");

    let forced = stdout(&cip(
        dir,
        &["push", &policy, &uri, "--sources-path", &sources, "--force"],
    ));
    assert!(forced.trim().starts_with(&format!("{uri}@sha256:")), "{forced}");
}

#[test]
fn plain_http_is_used_only_for_hosts_listed_in_sources() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let registry = Registry::start().expect("registry starts");
    let policy = policy_wasm_path().to_string_lossy().into_owned();
    let uri = format!("registry://{}/policies/bare:v1", registry.host());

    let refused = cip(dir, &["push", &policy, &uri, "--force"]);
    assert!(
        !refused.status.success(),
        "a registry not in insecure_sources must be reached over HTTPS"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("insecure_sources"), "no hint in: {stderr}");
}
