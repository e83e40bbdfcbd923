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
fn validate_corpus_is_handled() {
    replay("validate", targets::validate);
}
