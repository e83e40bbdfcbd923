//! The fuzz targets. Each takes arbitrary bytes, must never panic, and asserts what must hold
//! whatever the input. Shared by the libFuzzer binaries (`fuzz/fuzz_targets/`, `make fuzz`) and
//! by the corpus replay test of the policy crate (`tests/fuzz_corpus.rs`), which includes this
//! file as a module.

use cluster_image_policy::admission;
use cluster_image_policy::glob::PathGlob;
use cluster_image_policy::host::{Capability, HostCalls};
use cluster_image_policy::matching::{ImageMatcher, normalise_image_glob};
use cluster_image_policy::reference::ImageReference;
use cluster_image_policy::settings::{Settings, SettingsCache};

/// Settings text: under the fuzzer, the skeleton walk reads it as serde's derive does (or
/// leaves it to the derive; the property tests check that in `cargo test`); parsed into the
/// model, then every key, certificate and regexp checked.
pub fn settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    #[cfg(fuzzing)]
    if let Err(difference) = cluster_image_policy::settings::skeleton_walk_agrees(text) {
        panic!("the settings skeleton walk and the derive differ: {difference}");
    }
    if let Ok(settings) = Settings::parse(text) {
        let _ = settings.check_material();
    }
}

/// Image references: a normalised reference reads back as itself, and so does its
/// verification target (what the host is asked to verify is what the runtime will pull).
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = ImageReference::parse(text) else {
        return;
    };
    let normal = reference.to_string();
    assert_eq!(
        ImageReference::parse(&normal).as_ref(),
        Ok(&reference),
        "{text:?} normalises to {normal:?}, which reads as another image"
    );
    let target = reference.verification_target();
    let verified = ImageReference::parse(&target).expect("the verification target parses");
    assert_eq!(
        verified.registry(),
        reference.registry(),
        "{text:?} verified as {target:?}"
    );
    assert_eq!(
        verified.repository(),
        reference.repository(),
        "{text:?} verified as {target:?}"
    );
}

/// `glob\ntext`: the matcher agrees with a dynamic-programming reference, and the policy
/// matcher built from the glob never panics on the text read as an image.
pub fn glob(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (glob, text) = input.split_once('\n').unwrap_or((input, ""));
    if glob.len() > 64 || text.len() > 160 {
        return;
    }
    if let Ok(parsed) = PathGlob::parse(glob) {
        assert_eq!(
            parsed.matches(text),
            reference_match(glob, text),
            "glob {glob:?} text {text:?}"
        );
        let _ = parsed.matches_some_tag(text);
    }
    if let Ok(normalised) = normalise_image_glob(glob)
        && let Ok(image) = ImageReference::parse(text)
    {
        let everything = glob == "**";
        let matcher = ImageMatcher::new(vec![(normalised, 0)]);
        let hits: Vec<usize> = matcher.policies_for(&image).collect();
        assert!(hits.is_empty() || hits == [0]);
        if everything {
            assert_eq!(hits, [0], "`**` must cover {text:?}");
        }
    }
}

/// Whole-input matching by dynamic programming over segments, then over bytes: a different
/// algorithm from the matcher's backtracking.
fn reference_match(glob: &str, text: &str) -> bool {
    let globs: Vec<&str> = glob.split('/').collect();
    let texts: Vec<&str> = text.split('/').collect();
    // can[i][j]: globs[i..] matches texts[j..]
    let mut can = vec![vec![false; texts.len() + 1]; globs.len() + 1];
    can[globs.len()][texts.len()] = true;
    for i in (0..globs.len()).rev() {
        for j in (0..=texts.len()).rev() {
            can[i][j] = if globs[i] == "**" {
                can[i + 1][j] || (j < texts.len() && can[i][j + 1])
            } else {
                j < texts.len() && segment_reference(globs[i].as_bytes(), texts[j].as_bytes()) && can[i + 1][j + 1]
            };
        }
    }
    can[0][0]
}

fn segment_reference(pattern: &[u8], text: &[u8]) -> bool {
    let mut can = vec![vec![false; text.len() + 1]; pattern.len() + 1];
    can[pattern.len()][text.len()] = true;
    for i in (0..pattern.len()).rev() {
        for j in (0..=text.len()).rev() {
            can[i][j] = if pattern[i] == b'*' {
                can[i + 1][j] || (j < text.len() && can[i][j + 1])
            } else {
                j < text.len() && pattern[i] == text[j] && can[i + 1][j + 1]
            };
        }
    }
    can[0][0]
}

/// A host that answers in turn: verified, unreachable, not trusted, and garbage.
#[derive(Default)]
struct FuzzHost {
    calls: usize,
}

impl HostCalls for FuzzHost {
    fn call(&mut self, _capability: Capability, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.calls += 1;
        match (self.calls + payload.len()) % 4 {
            0 => Ok(br#"{"is_trusted":true,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}"#.to_vec()),
            1 => Err("registry unreachable".to_owned()),
            2 => Ok(br#"{"is_trusted":false,"digest":null}"#.to_vec()),
            _ => Ok(payload.iter().rev().copied().collect()),
        }
    }
}

/// A whole `validate` (and `verify_images`) payload, with a mocked host: the module answers
/// every input with a response it can serialise.
pub fn validate(data: &[u8]) {
    let mut cache = SettingsCache::default();
    let response = admission::validate(data, &mut cache, &mut FuzzHost::default());
    let first = serde_json::to_vec(&response).expect("the validation response serialises");
    // Again with the settings cached (read past them when they end the payload): the same answer.
    let again = admission::validate(data, &mut cache, &mut FuzzHost::default());
    assert_eq!(
        serde_json::to_vec(&again).expect("the validation response serialises"),
        first,
        "cached settings changed the answer"
    );
    match admission::verify_images(data, &mut cache, &mut FuzzHost::default()) {
        Ok(answer) => {
            serde_json::from_slice::<serde_json::Value>(&answer).expect("the verify_images answer is JSON");
        }
        Err(e) => assert!(
            !e.starts_with("cannot encode"),
            "the verify_images answer did not serialise: {e}"
        ),
    }
}
