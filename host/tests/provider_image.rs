//! The provider image `make image` builds (target/image/oci, made by `make image-oci` before
//! the tests run): pushed to a loopback registry with the same script, pulled back with skopeo,
//! unpacked with umoci, and its binary run as the image runs it to answer one Gatekeeper
//! request. Also checks what the Containerfile promises: a static binary, no shell, a non-root
//! user, the annotated module inside.

mod provider_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use provider_support::*;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bound of one step (a push, a pull, an unpack, a `cip` command), generous for a loaded
/// CI machine, so a hung step fails the test instead of hanging the run.
const STEP_LIMIT: Duration = Duration::from_secs(300);

/// Runs `command` within [`STEP_LIMIT`]; its stdout when it succeeds.
fn run(command: &mut Command) -> TestResult<String> {
    let output = testkit::run_bounded(command, STEP_LIMIT)?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_pushes_pulls_and_answers_a_provider_request() -> TestResult {
    let oci = repo_root().join("target/image/oci");
    assert!(
        oci.join("index.json").is_file(),
        "{} is missing: build the image with `make image-oci` (part of `make test`)",
        oci.display()
    );
    let registry = testkit::Registry::start()?;
    let reference = format!("{}/cluster-image-policy/cip-provider:test", registry.host());
    run(Command::new(repo_root().join("scripts/build-image.sh"))
        .arg("--push")
        .arg(&oci)
        .arg(&reference)
        .arg("--insecure"))?;

    let dir = tempfile::tempdir()?;
    let pulled = dir.path().join("pulled");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:cip-provider", pulled.display())))?;
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:cip-provider", pulled.display()))
        .arg(&bundle))?;

    // What the Containerfile promises.
    let runtime: Value = serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json"))?)?;
    assert_eq!(runtime["process"]["user"]["uid"], 65532, "non-root: {runtime:#}");
    assert_eq!(runtime["process"]["args"][0], "/usr/local/bin/cip", "{runtime:#}");
    let rootfs = bundle.join("rootfs");
    for shell in ["bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"] {
        assert!(!rootfs.join(shell).exists(), "the image holds a shell: {shell}");
    }
    let binary = rootfs.join("usr/local/bin/cip");
    let kind = run(Command::new("file").arg("-L").arg(&binary))?;
    assert!(
        kind.contains("statically linked") || kind.contains("static-pie linked"),
        "{kind}"
    );
    let module = rootfs.join("usr/share/cip/policy.wasm");
    let inspected = run(Command::new(&binary).args(["inspect", "-o", "json"]).arg(&module))?;
    let metadata: Value = serde_json::from_str(&inspected)?;
    assert_eq!(
        metadata["annotations"]["io.kubewarden.policy.title"],
        "cluster-image-policy"
    );

    // The image's binary answers Gatekeeper, with mTLS as deployed.
    let ca = Ca::new("serving CA")?;
    let gatekeeper_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let settings = files.dir.path().join("settings.yaml");
    std::fs::write(&settings, "policies: []\nnoMatchPolicy: deny\n")?;
    let provider = testkit::ProviderProcess::start(|| {
        let mut command = Command::new(&binary);
        command
            .arg("provider")
            .arg("-s")
            .arg(&settings)
            .args(files.provider_args())
            .arg(&module)
            .env_clear()
            .env("CIP_CACHE_DIR", dir.path().join("cache"));
        command
    })?;
    let addr = provider.addr();
    let gatekeeper = bounded_tls13_client(&ca, Some(&gatekeeper_ca.client()?))?;
    let k = key("registry.example/app:v1", "production");
    let answer: Value = gatekeeper
        .post(format!("https://{addr}/validate"))
        .json(&request(std::slice::from_ref(&k)))
        .send()
        .await?
        .json()
        .await?;
    let value = &item(&answer, &k).ok_or("no item")?["value"];
    assert_eq!(value["verdict"], "deny", "noMatchPolicy: deny: {answer}");
    Ok(())
}

/// `.dockerignore` / `.containerignore` patterns as podman and docker read them: `**` any number
/// of directories, `*` and `?` within one name, a pattern naming a directory covers what it holds,
/// the last matching line wins and `!` brings a path back.
fn ignored(patterns: &str, path: &str) -> bool {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*'] => true,
            [b'*', b'*', b'/', rest @ ..] => {
                glob(rest, s) || s.iter().enumerate().any(|(i, c)| *c == b'/' && glob(rest, &s[i + 1..]))
            }
            [b'*', rest @ ..] => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| glob(rest, &s[i..])),
            [b'?', rest @ ..] => s.first().is_some_and(|c| *c != b'/') && glob(rest, &s[1..]),
            [c, rest @ ..] => s.first() == Some(c) && glob(rest, &s[1..]),
        }
    }
    let prefixes: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).chain([path]).collect();
    let mut excluded = false;
    for line in patterns.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, line),
        };
        let pattern = pattern.trim_start_matches('/');
        if prefixes
            .iter()
            .any(|prefix| glob(pattern.as_bytes(), prefix.as_bytes()))
        {
            excluded = !negated;
        }
    }
    excluded
}

/// A container build of the Containerfile (`COPY . .`, then `make policy.wasm`) must not take the
/// working tree's build outputs: a policy.wasm newer than the sources would be shipped as it is
/// (found by a review: no ignore file existed). What the build reads stays in the context.
#[test]
fn the_container_build_context_leaves_out_build_outputs_and_keeps_the_sources() -> TestResult {
    let containerignore = std::fs::read_to_string(repo_root().join(".containerignore"))?;
    let dockerignore = std::fs::read_to_string(repo_root().join(".dockerignore"))?;
    assert_eq!(
        containerignore, dockerignore,
        ".containerignore and .dockerignore differ"
    );
    for path in [
        "policy.wasm",
        "annotated-policy.wasm",
        "target/debug/cip",
        "target/wasm32-wasip1/policy/cluster_image_policy.wasm",
        "target/image/oci/index.json",
        ".git/HEAD",
        "host/tests/fixtures/module.wasm",
    ] {
        assert!(ignored(&containerignore, path), "{path} is sent to the container build");
    }
    let containerfile = std::fs::read_to_string(repo_root().join("Containerfile"))?;
    let workspace = std::fs::read_to_string(repo_root().join("Cargo.toml"))?;
    let members = workspace
        .lines()
        .find(|line| line.starts_with("members"))
        .ok_or("no workspace members")?;
    let mut kept: Vec<String> = members
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|member| format!("{member}/Cargo.toml").trim_start_matches("./").to_owned())
        .collect();
    kept.extend(
        [
            "Cargo.lock",
            "Makefile",
            "src/lib.rs",
            "benches/validate.rs",
            "host/src/main.rs",
            "metadata.yml",
            "README.md",
            "examples/signed-images.yaml",
        ]
        .map(str::to_owned),
    );
    for path in &kept {
        assert!(
            repo_root().join(path).exists(),
            "{path} does not exist: update this test"
        );
        assert!(
            !ignored(&containerignore, path),
            "{path}, which the build reads, is left out"
        );
    }
    assert!(
        containerfile.contains("COPY . ."),
        "the Containerfile no longer copies the context"
    );
    // The matcher itself: a negation brings back what an earlier line left out.
    assert!(!ignored("**/*.wasm\n!examples/**/*.wasm", "examples/a/b.wasm"));
    assert!(ignored("**/*.wasm\n!examples/**/*.wasm", "src/b.wasm"));
    Ok(())
}
