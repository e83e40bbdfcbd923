//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets, so
//! that every input that once reached new code stays panic-free in CI. `make fuzz` runs the
//! same targets under libFuzzer and grows the corpus.

#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

fn replay(name: &str, target: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(name);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| target(&data));
        assert!(outcome.is_ok(), "fuzz target {name} panicked on {}", path.display());
        replayed += 1;
    }
    assert!(replayed >= 5, "only {replayed} inputs in {}", dir.display());
}

#[test]
fn settings_corpus_is_handled() {
    replay("settings", targets::settings);
}

#[test]
fn reference_corpus_is_handled() {
    replay("reference", targets::reference);
}

#[test]
fn glob_corpus_is_handled() {
    replay("glob", targets::glob);
}

#[test]
fn regexp_corpus_is_handled() {
    replay("regexp", targets::regexp);
}

#[test]
fn cue_corpus_is_handled() {
    replay("cue", targets::cue);
}

#[test]
fn image_config_corpus_is_handled() {
    replay("image_config", targets::image_config);
}

#[test]
fn statement_corpus_is_handled() {
    replay("statement", targets::statement);
}

#[test]
fn validate_corpus_is_handled() {
    replay("validate", targets::validate);
}

/// The validate corpus reaches every way the module reads the two signature storages: the legacy
/// call alone (a stock host), the question of which operations the host serves, the bundle call,
/// and the one call for both (a host known to serve it), so that fuzzing covers them all.
#[test]
fn the_validate_corpus_reaches_each_storage_call() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/validate");
    let mut asked = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("the validate corpus") {
        let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus input");
        asked.extend(targets::validate_asks(&data));
    }
    for operation in [
        "v2/verify",
        "v1/operations",
        "v1/verify_with_format",
        "v1/verify_legacy_then_bundle",
    ] {
        assert!(
            asked.contains(operation),
            "no input of the corpus asks {operation}: {asked:?}"
        );
    }
}

#[test]
fn config_file_corpus_is_handled() {
    replay("config_file", targets::config_file);
}

/// The seeds of real images are read whole: every platform of a multi-platform image (an OCI
/// index with an attestation manifest, a Docker manifest list, a nested index), so that fuzzing
/// starts from the paths that accept.
#[test]
fn the_config_file_seeds_of_real_images_are_read() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config_file");
    for (seed, platforms) in [
        ("image_manifest", &["linux/amd64"][..]),
        ("oci_index_platforms", &["", "linux/amd64", "linux/arm64/v8"]),
        ("docker_manifest_list", &["linux/amd64", "linux/arm/v7"]),
        ("nested_index", &["linux/amd64"]),
    ] {
        let data = std::fs::read(dir.join(seed)).expect("the seed");
        let read = targets::config_file_platforms(&data);
        let read: Option<Vec<&str>> = read.as_ref().map(|keys| keys.iter().map(String::as_str).collect());
        assert_eq!(read.as_deref(), Some(platforms), "{seed}");
    }
}
