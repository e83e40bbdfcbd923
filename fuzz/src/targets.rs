//! The fuzz targets. Each takes arbitrary bytes, must never panic, and asserts what must hold
//! whatever the input. Shared by the libFuzzer binaries (`fuzz/fuzz_targets/`, `make fuzz`) and
//! by the corpus replay test of the policy crate (`tests/fuzz_corpus.rs`), which includes this
//! file as a module.

use cluster_image_policy::admission;
use cluster_image_policy::glob::PathGlob;
use cluster_image_policy::host::{CIP_HOST_OPERATIONS, Capability, HostCalls, Memo};
use cluster_image_policy::matching::{ImageMatcher, normalise_image_glob};
use cluster_image_policy::policy::cue::Program;
use cluster_image_policy::policy::go_json::GoReadError;
use cluster_image_policy::policy::image_config::go_view;
use cluster_image_policy::policy::statement;
use cluster_image_policy::reference::ImageReference;
use cluster_image_policy::regexp::Regexp;
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

/// `policy\n---\ninput`: a CUE policy text of any shape is compiled or refused without
/// panicking and within the evaluation budget, the same way twice; a compiled policy checks any
/// JSON input without panicking, the same way twice.
pub fn cue(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (policy, input) = text.split_once("\n---\n").unwrap_or((text, "{}"));
    let compiled = Program::compile(policy);
    assert_eq!(
        compiled.as_ref().map(ToString::to_string),
        Program::compile(policy).as_ref().map(ToString::to_string),
        "{policy:?} compiles differently twice"
    );
    let (Ok(program), Ok(input)) = (compiled, serde_json::from_str::<serde_json::Value>(input)) else {
        return;
    };
    assert_eq!(program.check(&input), program.check(&input), "{policy:?} on {input}");
}

/// An image config (any JSON object, as the host answers it) read as Go reads it
/// (`policy::image_config::go_view`): never a panic, and the reading read again is itself, as
/// Go's decoding of its own encoding is (`tests/image_config_against_go.rs` compares it with Go).
pub fn image_config(data: &[u8]) {
    let Ok(serde_json::Value::Object(config)) = serde_json::from_slice(data) else {
        return;
    };
    if let Ok(view) = go_view(config) {
        assert_eq!(
            go_view(view.clone()).as_ref(),
            Ok(&view),
            "read again, the view changed"
        );
    }
}

/// An in-toto statement (any JSON) read as policy-controller hands it to an attestation's policy
/// (`policy::statement::go_view`) for each written predicate type with a struct of its own and
/// the generic one: never a panic, and the reading read again is itself, or refused as
/// `Rounded` (Go writes a large float64 as its shortest digits, `18446744053709552000` for
/// 2^64 − 2·10^10, an integer no float64 holds exactly, which ours refuses to read).
pub fn statement(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for written_type in ["spdx", "link", "slsaprovenance", "vuln"] {
        if let Ok(view) = statement::go_view(value.clone(), written_type) {
            match statement::go_view(view.clone(), written_type) {
                Ok(again) => assert_eq!(again, view, "{written_type}: read again, the view changed"),
                Err(GoReadError::Rounded { .. }) => {}
                Err(error) => panic!("{written_type}: read again, the view is refused: {error}"),
            }
        }
    }
}

/// `pattern\ntext`: the module's engine reads the pattern as Go's regexp does (go_regexp) without
/// panicking, and agrees with `regex` compiling what go_regexp prints: both build it or neither
/// does, and both find a match in the text or neither does.
pub fn regexp(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, text) = input.split_once('\n').unwrap_or((input, ""));
    if pattern.len() > 256 || text.len() > 256 {
        return;
    }
    let ours = Regexp::new(pattern);
    let reference = go_regexp::to_regex(pattern).map(|printed| regex::Regex::new(&printed));
    match (&ours, &reference) {
        (Ok(ours), Ok(Ok(reference))) => assert_eq!(
            ours.is_match(text),
            reference.is_match(text),
            "{pattern:?} (printed {:?}) on {text:?}",
            reference.as_str()
        ),
        (Err(_), Err(_) | Ok(Err(_))) => {}
        _ => panic!("{pattern:?}: {:?} but regex: {reference:?}", ours.as_ref().err()),
    }
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

/// A host that answers in turn every kind of verification answer, good and bad: verified,
/// unreachable, not trusted, garbage, and the three answers of the one call for both signature
/// storages (`legacy`, `bundle`, `unverified`) with malformed ones of each. Which of our
/// operations it lists (none, the bundle call, or the one call too) depends on the input, so
/// that the module's every path through the storages is fuzzed, not only a stock host's.
struct FuzzHost {
    calls: usize,
    operations: &'static [u8],
    /// The operations asked, in order.
    asked: Vec<&'static str>,
}

impl FuzzHost {
    fn for_input(data: &[u8]) -> Self {
        let operations: &[u8] = match data.len() % 3 {
            0 => br#"{"operations":[]}"#,
            1 => br#"{"operations":["oci/v1/verify_with_format"]}"#,
            _ => br#"{"operations":["oci/v1/verify_with_format","oci/v1/verify_legacy_then_bundle"]}"#,
        };
        Self {
            calls: 0,
            operations,
            asked: Vec::new(),
        }
    }
}

impl HostCalls for FuzzHost {
    fn call(&mut self, capability: Capability, payload: &[u8]) -> Result<Vec<u8>, String> {
        const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        self.asked.push(capability.operation);
        if capability == CIP_HOST_OPERATIONS {
            return Ok(self.operations.to_vec());
        }
        self.calls += 1;
        let answer = match (self.calls + payload.len()) % 11 {
            0 => format!(r#"{{"is_trusted":true,"digest":"{DIGEST}"}}"#),
            1 => return Err("registry unreachable".to_owned()),
            2 => r#"{"is_trusted":false,"digest":null}"#.to_owned(),
            3 => return Ok(payload.iter().rev().copied().collect()),
            4 => format!(r#"{{"legacy":"{DIGEST}"}}"#),
            5 => format!(r#"{{"bundle":"{DIGEST}"}}"#),
            6 => r#"{"unverified":["no signature on the .sig tag","no bundle \"here\""]}"#.to_owned(),
            7 => r#"{"unverified":["one reason only"]}"#.to_owned(),
            8 => r#"{"legacy":"sha256:short"}"#.to_owned(),
            9 => format!(r#"{{"bundle":"{DIGEST}","legacy":"{DIGEST}"}}"#),
            _ => format!(r#"{{"is_trusted":true,"digest":"{DIGEST}","bundle":1}}"#),
        };
        Ok(answer.into_bytes())
    }
}

/// The operations a `validate` of `data` asks the fuzz host, in order: the corpus test checks that
/// the corpus reaches each way of reading the signature storages.
pub fn validate_asks(data: &[u8]) -> Vec<&'static str> {
    let mut host = FuzzHost::for_input(data);
    admission::validate(data, &mut SettingsCache::default(), &mut Memo::new(&mut host));
    host.asked
}

/// A whole `validate` (and `verify_images`) payload, with a mocked host behind the module's
/// per-evaluation memo (as the module's entry points put `WapcHost` behind it): the module answers
/// every input with a response it can serialise.
pub fn validate(data: &[u8]) {
    let mut cache = SettingsCache::default();
    let response = admission::validate(data, &mut cache, &mut Memo::new(FuzzHost::for_input(data)));
    let first = serde_json::to_vec(&response).expect("the validation response serialises");
    // Again, the settings read again and kept by the instance, then with the settings cached
    // (read past them when they end the payload): the same answer.
    for _ in 0..2 {
        let again = admission::validate(data, &mut cache, &mut Memo::new(FuzzHost::for_input(data)));
        assert_eq!(
            serde_json::to_vec(&again).expect("the validation response serialises"),
            first,
            "kept or cached settings changed the answer"
        );
    }
    match admission::verify_images(data, &mut cache, &mut Memo::new(FuzzHost::for_input(data))) {
        Ok(answer) => {
            serde_json::from_slice::<serde_json::Value>(&answer).expect("the verify_images answer is JSON");
        }
        Err(e) => assert!(
            !e.starts_with("cannot encode"),
            "the verify_images answer did not serialise: {e}"
        ),
    }
}

/// The host's answers about one image, in the order the module asks them, separated by
/// `\n---\n`; an answer starting with `!` is a host failure, and once the answers run out every
/// call fails. `config_file::read` of `registry.example/app:v1` (a tag: the host is asked its
/// digest first) must not panic, must ask at most the calls [`MAX_MANIFESTS`] allows, must ask
/// the registry only about `repository@sha256:<64 hex>`, and must answer a well-formed digest.
///
/// [`MAX_MANIFESTS`]: cluster_image_policy::policy::config_file::MAX_MANIFESTS
pub fn config_file(data: &[u8]) {
    let _ = config_file_platforms(data);
}

/// [`config_file`]'s reading, checked: the platforms of the configs read when the image was
/// read (the corpus test checks that the seeds of real images are read whole).
pub fn config_file_platforms(data: &[u8]) -> Option<Vec<String>> {
    use cluster_image_policy::policy::config_file::{self, MAX_MANIFESTS};
    use cluster_image_policy::reference::is_usable_digest;

    struct Registry<'a> {
        answers: std::vec::IntoIter<&'a [u8]>,
        asked: Vec<String>,
    }
    impl HostCalls for Registry<'_> {
        fn call(&mut self, _: Capability, payload: &[u8]) -> Result<Vec<u8>, String> {
            let image: String = serde_json::from_slice(payload).expect("the module asks about an image name");
            self.asked.push(image);
            match self.answers.next() {
                Some([b'!', reason @ ..]) => Err(String::from_utf8_lossy(reason).into_owned()),
                Some(answer) => Ok(answer.to_vec()),
                None => Err("no more answers".to_owned()),
            }
        }
    }

    const SEPARATOR: &[u8] = b"\n---\n";
    let mut answers = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        answers.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    answers.push(rest);
    let reference = ImageReference::parse("registry.example/app:v1").expect("a valid reference");
    let mut host = Registry {
        answers: answers.into_iter(),
        asked: Vec::new(),
    };
    let outcome = config_file::read(&reference, None, &mut host);
    // The tag's digest, then at most two calls for each manifest read: the image's own and
    // the MAX_MANIFESTS its indexes may list.
    assert!(
        host.asked.len() <= 1 + 2 * (1 + MAX_MANIFESTS),
        "{} host calls",
        host.asked.len()
    );
    let repository = format!("{}@", reference.name());
    for image in host.asked.iter().skip(1) {
        let digest = image.strip_prefix(&repository);
        assert!(
            digest.is_some_and(is_usable_digest),
            "the registry was asked about {image:?}"
        );
    }
    if let Ok((configs, digest)) = outcome {
        assert!(
            digest.len() == 71
                && digest.starts_with("sha256:")
                && digest[7..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "the image was read at {digest:?}"
        );
        let serde_json::Value::Object(configs) = configs else {
            panic!("configs: {configs}");
        };
        return Some(configs.keys().cloned().collect());
    }
    None
}
