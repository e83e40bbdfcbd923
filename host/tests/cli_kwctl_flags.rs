//! kwctl users' habits work with `cip`: `push -o text` and `-f`, `pull` without `-o` (into the
//! local policy store), `provider -s`, and the help saying plainly what `cip verify` checks.

mod artifact_support;

use std::path::Path;
use std::process::Output;

use artifact_support::{cip, policy_wasm_path};
use cip::cli::{Cli, Command as CipCommand};
use clap::Parser as _;
use testkit::Registry;

fn succeeded(output: &Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "cip failed ({}): {stderr}", output.status);
    (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
}

#[test]
fn push_text_and_force_then_pull_into_the_store_as_kwctl_does() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let registry = Registry::start().expect("registry starts");
    let sources = dir.join("sources.yaml");
    std::fs::write(&sources, format!("insecure_sources: [\"{}\"]\n", registry.host())).expect("sources");
    let sources = sources.to_string_lossy().into_owned();
    let policy = policy_wasm_path().to_string_lossy().into_owned();
    let uri = format!("registry://{}/policies/bare:v1", registry.host());

    // kwctl push -f -o text: the bare module, the bare reference.
    let (pushed, _) = succeeded(&cip(
        dir,
        &["push", "-f", "-o", "text", &policy, &uri, "--sources-path", &sources],
    ));
    let pushed = pushed.trim().to_owned();
    let digest = pushed
        .strip_prefix(&format!("{uri}@sha256:"))
        .unwrap_or_else(|| panic!("push -o text printed {pushed:?}"));

    // kwctl pull URI: no -o, the module lands in the local store.
    let (_, said) = succeeded(&cip(dir, &["pull", &uri, "--sources-path", &sources]));
    let stored = dir.join("cache/policies").join(format!("sha256-{digest}.wasm"));
    assert!(
        stored.is_file(),
        "{} not in the store; cip said: {said}",
        stored.display()
    );
    assert_eq!(
        std::fs::read(&stored).expect("stored module"),
        std::fs::read(policy_wasm_path()).expect("pushed module")
    );
    assert!(said.contains("policy store"), "{said}");
}

#[test]
fn provider_takes_dash_s_for_its_settings() {
    let cli = Cli::try_parse_from([
        "cip",
        "provider",
        "-s",
        "settings.yaml",
        "--tls-cert-file",
        "tls.crt",
        "--tls-key-file",
        "tls.key",
        "policy.wasm",
    ])
    .expect("-s parses");
    let CipCommand::Provider(args) = cli.command else {
        panic!("not the provider command");
    };
    assert_eq!(args.settings_path, Path::new("settings.yaml"));
}

#[test]
fn help_says_cip_verify_checks_images_not_the_policy() {
    let home = tempfile::tempdir().expect("tempdir");
    let (help, _) = succeeded(&cip(home.path(), &["--help"]));
    let verify_line = help
        .lines()
        .find(|line| line.trim_start().starts_with("verify"))
        .unwrap_or_else(|| panic!("no verify command in:\n{help}"));
    assert!(verify_line.contains("images"), "{verify_line}");
    assert!(verify_line.contains("kwctl verify"), "{verify_line}");
}
