//! metadata.yml, artifacthub-pkg.yml and the version check script agree with each other and
//! with the crate version.

mod artifact_support;

use std::path::Path;
use std::process::Command;

use artifact_support::{repo_file, repo_root};
use cip::artifact::Metadata;
use serde_json::Value;

/// How long the shell script may take: a hung script fails the test, naming the command,
/// instead of holding the suite.
const SCRIPT_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

fn artifacthub_pkg() -> Value {
    serde_yaml::from_str(&repo_file("artifacthub-pkg.yml")).expect("artifacthub-pkg.yml parses")
}

fn metadata() -> Metadata {
    Metadata::from_yaml(&repo_file("metadata.yml")).expect("metadata.yml parses")
}

fn annotation<'a>(metadata: &'a Metadata, key: &str) -> &'a str {
    metadata
        .annotation(key)
        .unwrap_or_else(|| panic!("metadata.yml lacks {key}"))
}

#[test]
fn artifacthub_pkg_follows_metadata_yml() {
    let metadata = metadata();
    let pkg = artifacthub_pkg();
    let version = env!("CARGO_PKG_VERSION");

    assert_eq!(pkg["version"], version);
    assert_eq!(annotation(&metadata, "io.kubewarden.policy.version"), version);
    assert_eq!(pkg["name"], annotation(&metadata, "io.kubewarden.policy.title"));
    assert_eq!(pkg["displayName"], annotation(&metadata, "io.artifacthub.displayName"));
    assert_eq!(
        pkg["description"],
        annotation(&metadata, "io.kubewarden.policy.description")
    );
    assert_eq!(pkg["license"], annotation(&metadata, "io.kubewarden.policy.license"));
    assert_eq!(pkg["homeURL"], annotation(&metadata, "io.kubewarden.policy.url"));
    assert_eq!(
        pkg["containersImages"][0]["image"],
        format!("{}:v{version}", annotation(&metadata, "io.kubewarden.policy.ociUrl"))
    );
    assert_eq!(
        pkg["links"][0]["url"],
        format!(
            "{}/releases/download/v{version}/policy.wasm",
            annotation(&metadata, "io.kubewarden.policy.source")
        )
    );
    let keywords: Vec<String> = annotation(&metadata, "io.artifacthub.keywords")
        .split(',')
        .map(|word| word.trim().to_owned())
        .collect();
    assert_eq!(pkg["keywords"], serde_json::json!(keywords));

    let annotations = &pkg["annotations"];
    assert_eq!(annotations["kubewarden/mutation"], metadata.mutating.to_string());
    assert_eq!(
        annotations["kubewarden/resources"],
        annotation(&metadata, "io.artifacthub.resources")
    );
    let rules: Value = serde_yaml::from_str(annotations["kubewarden/rules"].as_str().expect("rules is a string"))
        .expect("kubewarden/rules is YAML");
    assert_eq!(rules, serde_json::to_value(&metadata.rules).expect("rules serialise"));
    let questions: Value = serde_yaml::from_str(
        annotations["kubewarden/questions-ui"]
            .as_str()
            .expect("questions-ui is a string"),
    )
    .expect("kubewarden/questions-ui is YAML");
    let variables: Vec<&str> = questions["questions"]
        .as_array()
        .expect("questions list")
        .iter()
        .filter_map(|question| question["variable"].as_str())
        .collect();
    assert_eq!(variables, ["noMatchPolicy", "modifyImagesWithDigest"]);
}

/// A copy of the files the version check reads, with `Cargo.toml`'s version replaced.
fn checkout_with_version(dir: &Path, version: &str) {
    let root = repo_root();
    for file in [
        "metadata.yml",
        "artifacthub-pkg.yml",
        "scripts/check-metadata-version.sh",
    ] {
        let target = dir.join(file);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(root.join(file), &target).expect("copy");
    }
    std::fs::create_dir_all(dir.join("deploy/kubewarden")).expect("mkdir deploy");
    for entry in std::fs::read_dir(root.join("deploy/kubewarden")).expect("deploy dir") {
        let path = entry.expect("entry").path();
        std::fs::copy(
            &path,
            dir.join("deploy/kubewarden").join(path.file_name().expect("name")),
        )
        .expect("copy");
    }
    let cargo = repo_file("Cargo.toml").replacen(
        &format!("version = \"{}\"", env!("CARGO_PKG_VERSION")),
        &format!("version = \"{version}\""),
        1,
    );
    std::fs::write(dir.join("Cargo.toml"), cargo).expect("write Cargo.toml");
}

fn run_check(dir: &Path) -> (bool, String) {
    let mut command = Command::new("sh");
    command.arg(dir.join("scripts/check-metadata-version.sh"));
    let output = testkit::run_bounded(&mut command, SCRIPT_LIMIT).expect("sh runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn version_check_passes_on_the_repository_and_names_every_stale_file() {
    let (ok, stderr) = run_check(&repo_root());
    assert!(ok, "{stderr}");

    let copy = tempfile::tempdir().expect("tempdir");
    checkout_with_version(copy.path(), env!("CARGO_PKG_VERSION"));
    let (ok, stderr) = run_check(copy.path());
    assert!(ok, "an unchanged copy passes: {stderr}");

    checkout_with_version(copy.path(), "9.8.7");
    let (ok, stderr) = run_check(copy.path());
    assert!(!ok, "a bumped crate version without the metadata must fail");
    for stale in [
        "metadata.yml io.kubewarden.policy.version",
        "artifacthub-pkg.yml version",
        "deploy/kubewarden/signed-images.yaml refers to another version than v9.8.7",
    ] {
        assert!(stderr.contains(stale), "{stale:?} not reported in: {stderr}");
    }
}
