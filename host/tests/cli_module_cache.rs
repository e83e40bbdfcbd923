//! `cip run` keeps compiled modules in `$CIP_CACHE_DIR/compiled`: a second run deserialises the
//! module instead of compiling it; an entry that is truncated, corrupted or made for another
//! module is discarded and rebuilt, never used; `--no-module-cache` neither reads nor writes it.
//! An entry is native code, and a forger computes its header as easily as `cip`: the cache is
//! used only in a directory no other user can write, and an entry only when it is a private
//! regular file; a forged entry elsewhere is never loaded.
//! (Which path was taken is read from `-v` logs, never from timings.) The policy module shows the
//! cache at work; the tests that compile again and again use the tiny waPC guest of the
//! runtime tests (`fixtures/test-policy.wat`): compiling the 2 MB module ten times in a debug
//! build made this the slowest test binary of CI (≈ 70 s).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

const STORED: &str = "compiled module stored in the cache";
const LOADED: &str = "compiled module loaded from the cache";
const DISCARDED: &str = "compiled-module cache entry discarded";
const UNTRUSTED: &str = "compiled-module cache not used";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A waPC guest that compiles in milliseconds (its `validate` rejects with code 418).
fn tiny_guest() -> PathBuf {
    fixture("test-policy.wat")
}

fn policy() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm");
    assert!(
        path.exists(),
        "{} is missing: build it with `make policy.wasm`",
        path.display()
    );
    path
}

/// The bound of one `cip run` (compiling the policy module takes seconds in a debug build):
/// generous for a loaded CI machine, so a hung `cip` fails its test instead of hanging the run.
const CIP_RUN_LIMIT: Duration = Duration::from_secs(300);

/// `cip -v run` of a fixture request with the cache in `cache`, within [`CIP_RUN_LIMIT`].
fn run(cache: &Path, module: &Path, extra: &[&str]) -> (Value, String) {
    let output: Output = testkit::run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_cip"))
            .env("CIP_CACHE_DIR", cache)
            .env_remove("RUST_LOG")
            .args(["-v", "run", "-r"])
            .arg(fixture("pod-library.json"))
            .arg("-s")
            .arg(fixture("static-settings.yaml"))
            .args(extra)
            .arg(module),
        CIP_RUN_LIMIT,
    )
    .expect("the cip binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let response = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (response, stderr)
}

/// The tiny guest changed to accept every request (one data byte: `false` becomes `true `), in
/// `dir`: the code a forger plants.
fn accepting_guest(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(tiny_guest()).expect("module");
    let forged = text.replace(r#"\"accepted\":false"#, r#"\"accepted\":true "#);
    assert_ne!(forged, text, "the guest's answer was found");
    let path = dir.join("accepting.wat");
    std::fs::write(&path, forged).expect("write");
    path
}

/// An entry for the tiny guest's key holding the accepting guest's code, as a forger writes it:
/// the accepting guest's own entry with the key of `genuine` (the entry `cip` wrote for the tiny
/// guest) in its header; the checksum covers the payload, which is whole. With the tiny guest's
/// expected answer.
fn forge(genuine: &[u8]) -> Vec<u8> {
    let work = tempfile::tempdir().expect("temp dir");
    let accepting = accepting_guest(work.path());
    let (answer, _) = run(&work.path().join("cache"), &accepting, &[]);
    assert_eq!(answer["allowed"], true, "the forger's guest accepts: {answer}");
    let mut forged = std::fs::read(entries(&work.path().join("cache")).pop().expect("its entry")).expect("entry");
    forged[8..40].copy_from_slice(&genuine[8..40]);
    forged
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path).expect("metadata").mode() & 0o7777
}

/// The entries of the cache.
fn entries(cache: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(cache.join("compiled")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir.map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
}

#[test]
fn a_second_run_uses_the_compiled_module() {
    let cache = tempfile::tempdir().expect("temp dir");
    let (first, log) = run(cache.path(), &policy(), &[]);
    assert!(log.contains(STORED), "{log}");
    assert!(!log.contains(LOADED), "{log}");
    let stored = entries(cache.path());
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].extension().is_some_and(|e| e == "cwasm"), "{stored:?}");

    let (second, log) = run(cache.path(), &policy(), &[]);
    assert!(log.contains(LOADED), "{log}");
    assert!(!log.contains(STORED), "{log}");
    assert_eq!(first, second);
    assert_eq!(entries(cache.path()), stored, "no temporary file is left behind");
}

#[test]
fn no_module_cache_neither_reads_nor_writes() {
    let cache = tempfile::tempdir().expect("temp dir");
    let (_, log) = run(cache.path(), &tiny_guest(), &["--no-module-cache"]);
    assert!(!log.contains(STORED) && !log.contains(LOADED), "{log}");
    assert!(entries(cache.path()).is_empty());
}

#[test]
fn truncated_corrupted_and_foreign_entries_are_discarded_and_rebuilt() {
    let cache = tempfile::tempdir().expect("temp dir");
    let (expected, _) = run(cache.path(), &tiny_guest(), &[]);
    assert_eq!(expected["status"]["code"], 418, "the tiny guest answered: {expected}");
    let entry = entries(cache.path()).pop().expect("one entry");
    let good = std::fs::read(&entry).expect("entry");

    // The same module with one more comment: other bytes, so another key.
    let other_module = cache.path().join("other.wat");
    let mut bytes = std::fs::read(tiny_guest()).expect("module");
    bytes.extend_from_slice(b"\n;; another module\n");
    std::fs::write(&other_module, &bytes).expect("write");
    run(cache.path(), &other_module, &[]);
    let foreign = entries(cache.path())
        .into_iter()
        .find(|p| *p != entry)
        .map(|p| std::fs::read(p).expect("entry"))
        .expect("the other module's entry");

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let mut header_flipped = good.clone();
    header_flipped[0] ^= 0x20;
    let mut key_flipped = good.clone();
    key_flipped[8] ^= 0x01;
    for (what, content) in [
        ("empty", Vec::new()),
        ("truncated in the header", good[..20].to_vec()),
        ("truncated in the payload", good[..good.len() / 2].to_vec()),
        ("one payload byte flipped", flipped),
        ("magic changed", header_flipped),
        ("key changed", key_flipped),
        ("another module's entry copied over it", foreign.clone()),
        ("garbage", vec![0xAB; good.len()]),
    ] {
        std::fs::write(&entry, &content).expect("write");
        let (response, log) = run(cache.path(), &tiny_guest(), &[]);
        assert!(log.contains(DISCARDED), "{what}: {log}");
        assert!(!log.contains(LOADED), "{what}: {log}");
        assert!(log.contains(STORED), "{what}: {log}");
        assert_eq!(response, expected, "{what}");
        assert_eq!(std::fs::read(&entry).expect("entry"), good, "{what}: rebuilt as it was");
        let (_, log) = run(cache.path(), &tiny_guest(), &[]);
        assert!(log.contains(LOADED), "{what}: the rebuilt entry is used: {log}");
    }
}

#[test]
fn a_forged_entry_is_never_loaded_from_a_directory_another_user_can_write() {
    let cache = tempfile::tempdir().expect("temp dir");
    let (expected, _) = run(cache.path(), &tiny_guest(), &[]);
    assert_eq!(expected["allowed"], false, "{expected}");
    let entry = entries(cache.path()).pop().expect("one entry");
    let genuine = std::fs::read(&entry).expect("entry");
    let compiled = cache.path().join("compiled");
    assert_eq!(mode(&compiled), 0o700, "the cache's directory is created private");
    assert_eq!(mode(&entry), 0o600, "entries are written private");
    let forged = forge(&genuine);

    // The control: in a directory only this user can write, the cache trusts its entries as it
    // trusts the `cip` binary beside them, and the forgery (whole, with its key) is run.
    std::fs::write(&entry, &forged).expect("write");
    let (answer, log) = run(cache.path(), &tiny_guest(), &[]);
    assert!(log.contains(LOADED), "{log}");
    assert_eq!(answer["allowed"], true, "the forgery is a working one: {answer}");

    for (what, shared, mode_bits) in [
        ("the cache's directory writable by others", compiled.clone(), 0o777),
        ("the cache's directory writable by its group", compiled.clone(), 0o770),
        (
            "the cache's directory sticky but writable by others",
            compiled.clone(),
            0o1777,
        ),
        (
            "a directory above it writable by others",
            cache.path().to_owned(),
            0o777,
        ),
        (
            "a directory above it writable by its group",
            cache.path().to_owned(),
            0o775,
        ),
    ] {
        chmod(&shared, mode_bits);
        let (answer, log) = run(cache.path(), &tiny_guest(), &[]);
        chmod(&shared, 0o700);
        assert!(log.contains(UNTRUSTED), "{what}: {log}");
        assert!(log.contains("chmod go-w"), "{what}: the log says how to fix it: {log}");
        assert!(
            !log.contains(LOADED) && !log.contains(STORED),
            "{what}: neither read nor written: {log}"
        );
        assert_eq!(answer, expected, "{what}: the genuine module decided");
        assert_eq!(
            std::fs::read(&entry).expect("entry"),
            forged,
            "{what}: the cache was not written"
        );
    }

    // A sticky directory above (as /tmp) cannot have ours moved or removed: the cache is used.
    std::fs::write(&entry, &genuine).expect("write");
    chmod(cache.path(), 0o1777);
    let (answer, log) = run(cache.path(), &tiny_guest(), &[]);
    chmod(cache.path(), 0o700);
    assert!(log.contains(LOADED), "{log}");
    assert_eq!(answer, expected);
}

#[test]
fn an_entry_others_can_write_or_a_link_is_discarded_and_rebuilt() {
    let cache = tempfile::tempdir().expect("temp dir");
    let (expected, _) = run(cache.path(), &tiny_guest(), &[]);
    let entry = entries(cache.path()).pop().expect("one entry");
    let genuine = std::fs::read(&entry).expect("entry");
    let forged = forge(&genuine);

    for (what, file_mode) in [("writable by others", 0o666), ("writable by its group", 0o620)] {
        std::fs::write(&entry, &forged).expect("write");
        chmod(&entry, file_mode);
        let (answer, log) = run(cache.path(), &tiny_guest(), &[]);
        assert!(
            log.contains(DISCARDED) && log.contains("is writable by its group or by others"),
            "{what}: {log}"
        );
        assert!(!log.contains(LOADED) && log.contains(STORED), "{what}: {log}");
        assert_eq!(answer, expected, "{what}: the genuine module decided");
        assert_eq!(std::fs::read(&entry).expect("entry"), genuine, "{what}: rebuilt");
        assert_eq!(mode(&entry), 0o600, "{what}: rebuilt private");
    }

    // A link to a forged file elsewhere (a private file of this user's: the link is refused for
    // being a link) is removed, not followed; what it pointed at is left alone.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let target = elsewhere.path().join("forged.cwasm");
    std::fs::write(&target, &forged).expect("write");
    chmod(&target, 0o600);
    std::fs::remove_file(&entry).expect("remove");
    std::os::unix::fs::symlink(&target, &entry).expect("symlink");
    let (answer, log) = run(cache.path(), &tiny_guest(), &[]);
    assert!(log.contains(DISCARDED) && log.contains("is a symbolic link"), "{log}");
    assert!(!log.contains(LOADED) && log.contains(STORED), "{log}");
    assert_eq!(answer, expected);
    assert!(
        std::fs::symlink_metadata(&entry).expect("entry").is_file(),
        "the link was replaced by an entry"
    );
    assert_eq!(std::fs::read(&entry).expect("entry"), genuine);
    assert_eq!(
        std::fs::read(&target).expect("target"),
        forged,
        "the link's target is untouched"
    );
}
