//! `ImageReference::parse` against the parser container runtimes read image references with:
//! docker/distribution's `reference.ParseNormalizedNamed` then `reference.TagNameOnly`, as the
//! kubelet and containerd's CRI call them (`scripts/go-reference.go`, built by `make
//! test-tools` with Debian's `golang-go` and `golang-github-docker-distribution-dev` 2.8.2;
//! without it the test fails, it is never skipped).
//!
//! Generated references: no registry, Docker Hub's host names in every case, `localhost`,
//! hosts with and without dots, IPv6 hosts, valid and invalid labels; ports with leading zeros,
//! `:443`, long ports, empty ports; one to four path segments, valid and invalid; tags; sha256
//! digests and others; both; names near the 255-character limit; 64-hex names; and each of
//! these with a character inserted, removed or replaced. Each is read by both:
//!
//! - where both accept, ours is Go's reading (`registry/repository[:tag][@digest]`, `:latest`
//!   added) after the folds of docs/matching.md ("What a glob is matched against"), each an
//!   explicit rule below ([`fold_registry`]: [`LOWER_CASE`], [`PORT_ZEROS`], [`DEFAULT_PORT`],
//!   [`HUB_HOSTS`]); the one documented difference is [`HUB_ONE_SEGMENT`] (docs/matching.md
//!   "Known limits");
//! - where one accepts and the other refuses, the case must be one of [`ACCEPTED_HERE`] or
//!   [`REFUSED_HERE`], each with its reason;
//! - anything else fails the test, with the reference, Go's answer and ours.
//!
//! `REFERENCE_CASES` sets the number of references, `REFERENCE_SEED` gives a run's references
//! again.

// `*rng.pick(CONST)`: the deref clippy calls needless is what infers `T = &str`.
#![allow(clippy::explicit_auto_deref)]
// Native only: Go runs beside the test, not inside a wasm32 test.
#![cfg(not(target_family = "wasm"))]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cluster_image_policy::reference::{ImageReference, ReferenceError};
use serde_json::{Value, json};
use testkit::Rng;

/// The seed of a run without `REFERENCE_SEED`: none, a fresh one each run (printed).
const DEFAULT_SEED: Option<u64> = None;

/// References per run.
const CASES: usize = 50_000;

/// Differences printed.
const SHOWN: usize = 20;

// ---- Go's answer ----

/// What `ParseNormalizedNamed` and `TagNameOnly` make of a reference.
#[derive(Clone, Debug, PartialEq)]
enum Go {
    Refused(String),
    Parsed {
        domain: String,
        path: String,
        /// `""` without a tag.
        tag: String,
        /// `""` without a digest.
        digest: String,
        /// `String()`.
        string: String,
        /// `reference.FamiliarString` (shown with a difference, not compared).
        familiar: String,
    },
}

/// Go's answer for each reference: one run of the tool for the batch. The tool missing or
/// failing is an error, never a skipped comparison.
fn go_references(references: &[String]) -> Result<Vec<Go>, String> {
    static BATCH: AtomicUsize = AtomicUsize::new(0);
    // Where testkit's `test_tool` looks: $CIP_TEST_TOOLS, else target/test-tools/bin.
    let tool = std::env::var_os("CIP_TEST_TOOLS")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/bin"),
            PathBuf::from,
        )
        .join("go-reference");
    if !tool.is_file() {
        return Err(format!(
            "{} is missing: `make test-tools` (part of `make setup` and `make test`) builds it from scripts/go-reference.go with Debian's golang-go and golang-github-docker-distribution-dev",
            tool.display()
        ));
    }
    let input = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "go-reference-{}-{}.jsonl",
        std::process::id(),
        BATCH.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).map_err(|e| e.to_string())?);
    for reference in references {
        writeln!(file, "{}", json!({ "reference": reference })).map_err(|e| e.to_string())?;
    }
    file.flush().map_err(|e| e.to_string())?;
    drop(file);
    let output = testkit::run_bounded(Command::new(&tool).arg(&input), Duration::from_secs(300));
    let _ = std::fs::remove_file(&input);
    let output = output.map_err(|e| format!("{e:#}"))?;
    if !output.status.success() {
        return Err(format!(
            "go-reference failed (`make test-tools` builds it): {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8(output.stdout).map_err(|e| e.to_string())?;
    let answers = text.lines().map(read_answer).collect::<Result<Vec<_>, _>>()?;
    if answers.len() != references.len() {
        return Err(format!(
            "go-reference answered {} of {} references",
            answers.len(),
            references.len()
        ));
    }
    Ok(answers)
}

fn read_answer(line: &str) -> Result<Go, String> {
    let answer: Value = serde_json::from_str(line).map_err(|e| format!("go-reference answered {line:?}: {e}"))?;
    let field = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_owned);
    if let Some(error) = field("error") {
        return Ok(Go::Refused(error));
    }
    match (
        field("domain"),
        field("path"),
        field("tag"),
        field("digest"),
        field("string"),
        field("familiar"),
    ) {
        (Some(domain), Some(path), Some(tag), Some(digest), Some(string), Some(familiar)) => Ok(Go::Parsed {
            domain,
            path,
            tag,
            digest,
            string,
            familiar,
        }),
        _ => Err(format!(
            "go-reference answered neither an error nor a reference: {line}"
        )),
    }
}

// ---- the folds (docs/matching.md, "What a glob is matched against") ----

/// An upper-case registry host is read in lower case (`MyRegistry.COM` → `myregistry.com`):
/// host names are case-insensitive; Go keeps the case as written.
const LOWER_CASE: &str = "fold: registry host lower-cased";
/// A port is a number: `r.io:05000` → `r.io:5000` (`:000` → `:0`); Go keeps the digits.
const PORT_ZEROS: &str = "fold: port without leading zeros";
/// `:443` is dropped after a host with a dot, an IPv6 host or `localhost` (`r.io:443` →
/// `r.io`; `myhost:443` keeps it, `myhost/app` being a Docker Hub name); Go keeps it.
const DEFAULT_PORT: &str = "fold: :443 dropped";
/// `index.docker.io` and `registry-1.docker.io` are `docker.io` (after the folds above: also
/// `Index.Docker.IO`, `registry-1.docker.io:443`); Go folds `index.docker.io` exactly as
/// written only.
const HUB_HOSTS: &str = "fold: Docker Hub host names are docker.io";

/// The documented difference: a one-segment name on a Docker Hub spelling other than
/// `docker.io` and `index.docker.io` (`registry-1.docker.io/nginx`, `Docker.io/nginx`,
/// `docker.io:443/nginx`) is `docker.io/library/nginx` here, Go's (and the runtime's)
/// repository `nginx` of that host, which Docker Hub does not serve (docs/matching.md, "Known
/// limits").
const HUB_ONE_SEGMENT: &str = "documented: one-segment name on another Docker Hub spelling";

/// Go's registry after the folds, and the folds that changed it, in order.
fn fold_registry(domain: &str) -> (String, Vec<&'static str>) {
    let mut registry = domain.to_owned();
    let mut folds = Vec::new();
    if registry.bytes().any(|b| b.is_ascii_uppercase()) {
        registry.make_ascii_lowercase();
        folds.push(LOWER_CASE);
    }
    if let Some(colon) = registry.rfind(':') {
        let port = &registry[colon + 1..];
        if port.len() > 1 && port.starts_with('0') && port.bytes().all(|b| b.is_ascii_digit()) {
            let number = match port.trim_start_matches('0') {
                "" => "0",
                digits => digits,
            };
            registry = format!("{}:{number}", &registry[..colon]);
            folds.push(PORT_ZEROS);
        }
    }
    if let Some(host) = registry.strip_suffix(":443")
        && (host.contains(['.', ':']) || host == "localhost")
    {
        registry = host.to_owned();
        folds.push(DEFAULT_PORT);
    }
    if registry == "index.docker.io" || registry == "registry-1.docker.io" {
        registry = "docker.io".to_owned();
        folds.push(HUB_HOSTS);
    }
    (registry, folds)
}

// ---- the documented refusals ----

/// A reference Go refuses and we read, with the reason it is not a fault.
struct Accepted {
    name: &'static str,
    applies: fn(&str, &str, &ImageReference) -> bool,
}

/// The references Go refuses that we read: (reference, Go's error, ours).
const ACCEPTED_HERE: &[Accepted] = &[
    // docker/distribution 2.8.2 has no IPv6 hosts; the github.com/distribution/reference it
    // became (Docker's and containerd's; read at 4ca14034) reads `[::1]:5000/app` as that host,
    // as we do.
    Accepted {
        name: "accepted here: IPv6 host (current distribution/reference reads it; 2.8.2 has no IPv6)",
        applies: |input, _, ours| input.starts_with('[') && ours.registry().starts_with('['),
    },
    // 2.8.2 reads `LOCALHOST/app` as a Docker Hub name and refuses its upper case;
    // the current distribution/reference reads an upper-case first segment as a host,
    // which is `localhost` (host names are case-insensitive): as we read it. Other upper-case
    // hosts without a dot (`UPPER/app`) both refuse (docs/matching.md).
    Accepted {
        name: "accepted here: upper-case localhost (current distribution/reference reads the host)",
        applies: |input, _, ours| {
            let first = input.split('/').next().unwrap_or_default();
            let host = first.split(':').next().unwrap_or_default();
            input.contains('/')
                && host != "localhost"
                && host.eq_ignore_ascii_case("localhost")
                && ours.registry().starts_with("localhost")
        },
    },
    // A name of 64 hex digits alone is an image ID to Docker: ParseNormalizedNamed refuses it
    // (`cannot specify 64-byte hexadecimal strings`), so the runtime runs nothing; we read it
    // as the Docker Hub repository `library/<hex>`, which is only checked against policies.
    Accepted {
        name: "accepted here: a 64-hex-digit name alone (an image ID to Docker; nothing runs)",
        applies: |input, go, _| {
            go.contains("64-byte hexadecimal")
                && input.len() == 64
                && input.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        },
    },
];

/// A reference Go reads and we refuse, with the reason it is not a fault (refusing fails
/// closed: the workload is denied).
struct Refused {
    name: &'static str,
    applies: fn(&str, &ReferenceError, &Go) -> bool,
}

/// The references Go reads that we refuse: (reference, our error, Go's answer).
const REFUSED_HERE: &[Refused] = &[
    // Only sha256 digests are accepted (src/reference.rs `parse_digest`): the algorithm every
    // registry and cosign use. Go (with crypto/sha512 linked, as containerd has it) reads
    // sha384 and sha512 digests too.
    Refused {
        name: "refused here: digest of another algorithm than sha256 (sha384, sha512)",
        applies: |_, ours, go| {
            matches!(ours, ReferenceError::InvalidDigest(_))
                && matches!(go, Go::Parsed { digest, .. } if !digest.is_empty() && !digest.starts_with("sha256:"))
        },
    },
    // A port of more than five digits: Go's grammar takes any number of digits
    // (`r.io:000005000`, `r.io:123456`); we refuse it.
    Refused {
        name: "refused here: port of more than five digits",
        applies: |_, ours, go| {
            matches!(ours, ReferenceError::InvalidRegistry(_))
                && matches!(go, Go::Parsed { domain, .. } if domain.rsplit_once(':').is_some_and(|(_, port)| port.len() > 5 && port.bytes().all(|b| b.is_ascii_digit())))
        },
    },
    // A first segment with a `.` or `:` that is no host name but is a path segment
    // (`a_b.io/app`: `_` is not in host names): splitDockerDomain takes it as the registry, then
    // the grammar reads the whole name as a path without a domain (`Domain()` is empty,
    // `String()` is `a_b.io/app:latest`), which containerd's resolver takes as the host
    // `a_b.io`. We refuse an invalid registry host.
    Refused {
        name: "refused here: a registry that is no host name but a path segment (a_b.io/app; Go: no domain)",
        applies: |_, ours, go| {
            matches!(ours, ReferenceError::InvalidRegistry(_))
                && matches!(go, Go::Parsed { domain, .. } if domain.is_empty())
        },
    },
    // The 255-character limit: we also refuse a name over it as written (src/reference.rs
    // checks the written name and the normalised one), where Go measures its own normal form,
    // in which `index.docker.io/` is `docker.io/`, shorter.
    Refused {
        name: "refused here: name over 255 characters as written (index.docker.io/…), within as Go folds it",
        applies: |input, ours, go| {
            matches!(ours, ReferenceError::NameTooLong)
                && matches!(go, Go::Parsed { domain, path, .. } if domain.len() + 1 + path.len() <= 255)
                && written_name(input).len() > 255
        },
    },
    // The documented difference ([`HUB_ONE_SEGMENT`]) at the length limit: `Docker.io/<name>`
    // is `docker.io/library/<name>` here, 8 characters longer than Go's name.
    Refused {
        name: "refused here: over 255 characters with library/ on another Docker Hub spelling (documented difference)",
        applies: |_, ours, go| {
            matches!(ours, ReferenceError::NameTooLong)
                && matches!(go, Go::Parsed { domain, path, .. }
                    if domain != "docker.io" && fold_registry(domain).0 == "docker.io" && !path.contains('/')
                        && "docker.io/library/".len() + path.len() > 255)
        },
    },
];

/// The name of a reference as written: before its digest and its tag.
fn written_name(input: &str) -> &str {
    let rest = input.split_once('@').map_or(input, |(rest, _)| rest);
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => &rest[..last_slash + i],
        None => rest,
    }
}

// ---- the comparison ----

#[derive(Debug, PartialEq)]
enum Verdict {
    /// Both read it alike, after these folds (none: as written).
    Agree(Vec<&'static str>),
    /// Both refuse it.
    BothRefuse,
    /// A documented difference.
    Documented(&'static str),
    /// A difference no rule explains.
    Differ(&'static str, String),
}

fn judge(input: &str, go: &Go, ours: &Result<ImageReference, ReferenceError>) -> Verdict {
    match (go, ours) {
        (Go::Refused(_), Err(_)) => Verdict::BothRefuse,
        (Go::Refused(error), Ok(ours)) => match ACCEPTED_HERE.iter().find(|rule| (rule.applies)(input, error, ours)) {
            Some(rule) => Verdict::Documented(rule.name),
            None => Verdict::Differ("Go refuses, we accept", format!("Go: {error}\nours: {ours}")),
        },
        (Go::Parsed { .. }, Err(error)) => match REFUSED_HERE.iter().find(|rule| (rule.applies)(input, error, go)) {
            Some(rule) => Verdict::Documented(rule.name),
            None => Verdict::Differ("Go accepts, we refuse", format!("Go: {go:?}\nours: {error}")),
        },
        (
            Go::Parsed {
                domain,
                path,
                tag,
                digest,
                string,
                ..
            },
            Ok(ours),
        ) => {
            let with = |registry: &str, path: &str| {
                let mut text = format!("{registry}/{path}");
                if !tag.is_empty() {
                    text.push(':');
                    text.push_str(tag);
                }
                if !digest.is_empty() {
                    text.push('@');
                    text.push_str(digest);
                }
                text
            };
            if *string != with(domain, path) {
                return Verdict::Differ("go-reference's String() is not its parts", format!("Go: {go:?}"));
            }
            let (registry, folds) = fold_registry(domain);
            let documented = registry == "docker.io" && domain != "docker.io" && !path.contains('/');
            let path = if documented {
                format!("library/{path}")
            } else {
                path.clone()
            };
            let expected = with(&registry, &path);
            let parts_agree = ours.registry() == registry
                && ours.repository() == path
                && ours.tag().unwrap_or_default() == tag
                && ours.digest().unwrap_or_default() == digest;
            if ours.as_str() != expected || !parts_agree {
                Verdict::Differ(
                    "both accept, readings differ",
                    format!(
                        "Go: {go:?}\nGo after the folds {folds:?}: {expected}\nours: {ours} (registry {:?}, repository {:?}, tag {:?}, digest {:?})",
                        ours.registry(),
                        ours.repository(),
                        ours.tag(),
                        ours.digest()
                    ),
                )
            } else if documented {
                Verdict::Documented(HUB_ONE_SEGMENT)
            } else {
                Verdict::Agree(folds)
            }
        }
    }
}

// ---- the generator ----

const HOSTS: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "Docker.io",
    "DOCKER.IO",
    "Index.Docker.IO",
    "REGISTRY-1.docker.io",
    "localhost",
    "LOCALHOST",
    "LocalHost",
    "myregistry.com",
    "MyRegistry.COM",
    "gcr.io",
    "ghcr.io",
    "127.0.0.1",
    "10.0.0.5",
    "[::1]",
    "[2001:db8::1]",
    "[2001:DB8::A]",
    "myhost",
    "MyHost",
    "UPPER",
    "a",
    "a-b.c",
    "xn--d1acufc.xn--p1ai",
];

/// Hosts Go or we refuse, or read otherwise.
const ODD_HOSTS: &[&str] = &[
    "-a.io",
    "a-.io",
    "a..io",
    ".a.io",
    "a.io.",
    "a_b.io",
    "a.b-.c",
    "[]",
    "[::1",
    "[fe80::1%eth0]",
    "a__b.c",
];

const PORTS: &[&str] = &[
    "443",
    "0443",
    "00443",
    "5000",
    "05000",
    "0",
    "00",
    "000",
    "80",
    "65535",
    "65536",
    "99999",
    "123456",
    "0000005000",
    "",
    "abc",
    "44a",
];

const SEGMENTS: &[&str] = &[
    "nginx", "library", "bitnami", "redis", "app", "a", "0", "a.b", "a_b", "a__b", "a-b", "a---b",
];

/// Path segments Go and we refuse.
const ODD_SEGMENTS: &[&str] = &[
    "a___b", "a..b", "a._b", "A", "App", "-a", "a-", "_a", "a_", ".a", "", "a b", "é",
];

const TAGS: &[&str] = &["latest", "v1", "V1.2.3-rc_1", "_x", "x_", "0", "5000"];

/// Tags Go and we refuse (or read as something else).
const ODD_TAGS: &[&str] = &[".x", "-x", "", "a+b", "a:b", "a/b"];

const DIGEST_ALGORITHMS: &[(&str, usize)] = &[
    ("sha256", 64),
    ("sha256", 64),
    ("sha256", 64),
    ("sha256", 63),
    ("sha256", 65),
    ("sha256", 0),
    ("sha512", 128),
    ("sha512", 64),
    ("sha384", 96),
    ("md5", 32),
    ("SHA256", 64),
    ("sha256+b64u", 64),
    ("sha256", 32),
];

struct Gen {
    rng: Rng,
}

impl Gen {
    fn hex(&mut self, len: usize, upper: bool) -> String {
        let digits: &[u8] = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        (0..len).map(|_| *self.rng.pick(digits) as char).collect()
    }

    fn word(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| *self.rng.pick(alphabet) as char).collect()
    }

    fn host(&mut self) -> String {
        let mut host = if self.rng.chance(60) {
            let hosts = if self.rng.chance(10) { ODD_HOSTS } else { HOSTS };
            (*self.rng.pick(hosts)).to_owned()
        } else {
            let labels = 1 + self.rng.below(4);
            (0..labels)
                .map(|_| {
                    let len = 1 + self.rng.below(8);
                    let alphabet: &[u8] = if self.rng.chance(80) {
                        b"abcdefghijklmnopqrstuvwxyz0123456789-"
                    } else {
                        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
                    };
                    self.word(alphabet, len)
                })
                .collect::<Vec<_>>()
                .join(".")
        };
        if self.rng.chance(40) {
            host.push(':');
            if self.rng.chance(85) {
                host.push_str(*self.rng.pick(PORTS));
            } else {
                let len = 1 + self.rng.below(7);
                host.push_str(&self.word(b"0123456789", len));
            }
        }
        host
    }

    fn segment(&mut self) -> String {
        if self.rng.chance(50) {
            let segments = if self.rng.chance(8) { ODD_SEGMENTS } else { SEGMENTS };
            return (*self.rng.pick(segments)).to_owned();
        }
        let parts = 1 + self.rng.below(3);
        let mut segment = String::new();
        for i in 0..parts {
            if i > 0 {
                segment.push_str(*self.rng.pick(&[".", "_", "__", "-", "--", "---"]));
            }
            let len = 1 + self.rng.below(6);
            segment.push_str(&self.word(b"abcdefghijklmnopqrstuvwxyz0123456789", len));
        }
        segment
    }

    fn tag(&mut self) -> String {
        match self.rng.below(10) {
            0 => {
                let len = 127 + self.rng.below(3);
                self.word(b"abcdefghijABCDEFGHIJ0123456789_.-", len)
            }
            1 => {
                let len = 1 + self.rng.below(20);
                format!("{}{}", self.word(b"aZ9_", 1), self.word(b"abcXYZ019_.-", len))
            }
            _ => {
                let tags = if self.rng.chance(15) { ODD_TAGS } else { TAGS };
                (*self.rng.pick(tags)).to_owned()
            }
        }
    }

    fn digest(&mut self) -> String {
        let (algorithm, len) = *self.rng.pick(DIGEST_ALGORITHMS);
        let upper = self.rng.chance(5);
        format!("{algorithm}:{}", self.hex(len, upper))
    }

    fn structured(&mut self) -> String {
        let mut name = String::new();
        if self.rng.chance(60) {
            name.push_str(&self.host());
            name.push('/');
        }
        let segments = match self.rng.below(10) {
            0..=4 => 1,
            5..=7 => 2,
            8 => 3,
            _ => 4,
        };
        let path: Vec<String> = (0..segments).map(|_| self.segment()).collect();
        name.push_str(&path.join("/"));
        // Names near the 255-character limit, as written.
        if self.rng.chance(10) {
            let target = 235 + self.rng.below(40);
            while name.len() < target {
                name.push('a');
            }
        }
        let mut reference = name;
        if self.rng.chance(35) {
            reference.push(':');
            reference.push_str(&self.tag());
        }
        if self.rng.chance(25) {
            reference.push('@');
            reference.push_str(&self.digest());
        }
        reference
    }

    /// A character inserted, removed or replaced.
    fn mutate(&mut self, mut reference: String) -> String {
        let chars: Vec<char> = reference.chars().collect();
        let at = self.rng.below(chars.len() + 1);
        let other = *self
            .rng
            .pick(&['a', 'A', '0', '.', '-', '_', ':', '/', '@', '[', ']', ' ', 'é']);
        let mut out: Vec<char> = chars.clone();
        match self.rng.below(3) {
            0 => out.insert(at, other),
            1 if at < chars.len() => {
                out.remove(at);
            }
            _ if at < chars.len() => out[at] = other,
            _ => out.push(other),
        }
        reference.clear();
        reference.extend(out);
        reference
    }

    fn reference(&mut self) -> String {
        match self.rng.below(100) {
            0 => String::new(),
            1 => self.hex(64, false),
            2 => format!("{}:v1", self.hex(64, false)),
            3 => format!("{}/{}", self.host(), self.hex(64, false)),
            4..=9 => {
                let reference = self.structured();
                self.mutate(reference)
            }
            _ => self.structured(),
        }
    }
}

// ---- the tests ----

#[test]
fn references_are_read_as_the_runtimes_reader_reads_them() {
    let count = testkit::case_count("REFERENCE_CASES", CASES);
    let seed = testkit::run_seed("REFERENCE_SEED", DEFAULT_SEED);
    let mut generator = Gen { rng: Rng(seed) };
    let references: Vec<String> = (0..count).map(|_| generator.reference()).collect();
    let started = Instant::now();
    let answers = go_references(&references).unwrap_or_else(|error| panic!("{error}"));
    let go_took = started.elapsed();

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut differences: Vec<(usize, &str, String)> = Vec::new();
    for (i, (reference, go)) in references.iter().zip(&answers).enumerate() {
        match judge(reference, go, &ImageReference::parse(reference)) {
            Verdict::Agree(folds) if folds.is_empty() => *counts.entry("agree: as written").or_default() += 1,
            Verdict::Agree(folds) => {
                *counts.entry("agree: after folds").or_default() += 1;
                for fold in folds {
                    *counts.entry(fold).or_default() += 1;
                }
            }
            Verdict::BothRefuse => *counts.entry("both refuse").or_default() += 1,
            Verdict::Documented(name) => *counts.entry(name).or_default() += 1,
            Verdict::Differ(kind, details) => differences.push((i, kind, details)),
        }
    }
    println!(
        "{count} references (Go answered in {go_took:.1?}, all compared in {:.1?}): {counts:#?}",
        started.elapsed()
    );
    for (i, kind, details) in differences.iter().take(SHOWN) {
        println!("=== {kind}: {:?}\n{details}\n", references[*i]);
    }
    // Not vacuous: enough references, and enough that both sides read and compare.
    let compared =
        counts.get("agree: as written").copied().unwrap_or(0) + counts.get("agree: after folds").copied().unwrap_or(0);
    assert!(
        count >= 1_000,
        "REFERENCE_CASES={count}: at least 1,000 references must be compared"
    );
    assert!(
        compared >= count / 4,
        "only {compared} of {count} references were read by both sides: the generator no longer tests the parser"
    );
    assert!(
        differences.is_empty(),
        "{} references read otherwise than docker/distribution reads them, beyond the documented folds and differences (REFERENCE_SEED={seed}); the first: {:?}",
        differences.len(),
        differences
            .iter()
            .take(SHOWN)
            .map(|(i, kind, _)| (kind, &references[*i]))
            .collect::<Vec<_>>()
    );
}

/// Each fold and documented difference on a reference that shows it, through Go itself: the
/// rules are the ones the generated references meet.
#[test]
fn each_rule_is_met_where_it_is_documented() {
    let hex = "0123456789abcdef".repeat(4);
    let long = "a".repeat(240);
    let cases: Vec<(String, &str)> = vec![
        ("nginx".into(), "agree"),
        ("docker.io/library/nginx:1@sha256:".to_owned() + &hex, "agree"),
        ("index.docker.io/nginx".into(), "agree"),
        ("MyRegistry.COM/app".into(), LOWER_CASE),
        ("r.io:05000/app".into(), PORT_ZEROS),
        ("r.io:443/app".into(), DEFAULT_PORT),
        ("localhost:443/app".into(), DEFAULT_PORT),
        ("myhost:443/app".into(), "agree"),
        ("registry-1.docker.io/bitnami/redis".into(), HUB_HOSTS),
        ("registry-1.docker.io/nginx".into(), HUB_ONE_SEGMENT),
        ("Docker.io/nginx".into(), HUB_ONE_SEGMENT),
        ("docker.io:443/nginx".into(), HUB_ONE_SEGMENT),
        ("[::1]:5000/app".into(), ACCEPTED_HERE[0].name),
        ("LOCALHOST/app".into(), ACCEPTED_HERE[1].name),
        (hex.clone(), ACCEPTED_HERE[2].name),
        (format!("r.io:0443/{}", "a".repeat(248)), "both refuse"),
        (format!("r.io/app@sha512:{}", hex.repeat(2)), REFUSED_HERE[0].name),
        ("r.io:000005000/app".into(), REFUSED_HERE[1].name),
        ("a_b.io/app".into(), REFUSED_HERE[2].name),
        (format!("index.docker.io/x/{long}"), REFUSED_HERE[3].name),
        (format!("Docker.io/{}", "a".repeat(240)), REFUSED_HERE[4].name),
        ("UPPER/app".into(), "both refuse"),
        ("r.io/App".into(), "both refuse"),
    ];
    let references: Vec<String> = cases.iter().map(|(reference, _)| reference.clone()).collect();
    let answers = go_references(&references).unwrap_or_else(|error| panic!("{error}"));
    for ((reference, expected), go) in cases.iter().zip(&answers) {
        let verdict = judge(reference, go, &ImageReference::parse(reference));
        let seen = match &verdict {
            Verdict::Agree(folds) if folds.is_empty() => "agree",
            Verdict::Agree(folds) => folds.last().copied().unwrap_or_default(),
            Verdict::BothRefuse => "both refuse",
            Verdict::Documented(name) => name,
            Verdict::Differ(..) => "differ",
        };
        assert_eq!(seen, *expected, "{reference:?}: {verdict:?} (Go: {go:?})");
    }
}

/// A reading other than Go's, and a refusal no rule names, are differences.
#[test]
fn the_comparison_finds_differences() {
    let parsed = |domain: &str, path: &str, tag: &str| Go::Parsed {
        domain: domain.into(),
        path: path.into(),
        tag: tag.into(),
        digest: String::new(),
        string: format!("{domain}/{path}:{tag}"),
        familiar: String::new(),
    };
    let ours = ImageReference::parse("r.io/app:v1");
    assert!(matches!(judge("r.io/app:v1", &parsed("r.io", "app", "v1"), &ours), Verdict::Agree(f) if f.is_empty()));
    for go in [
        parsed("r.io", "app", "v2"),
        parsed("r.io", "other", "v1"),
        parsed("q.io", "app", "v1"),
        parsed("r.io:5000", "app", "v1"),
        Go::Refused("invalid reference format".into()),
    ] {
        assert!(
            matches!(judge("r.io/app:v1", &go, &ours), Verdict::Differ(..)),
            "{go:?}"
        );
    }
    assert!(matches!(
        judge(
            "r.io/App",
            &parsed("r.io", "App", "latest"),
            &ImageReference::parse("r.io/App")
        ),
        Verdict::Differ("Go accepts, we refuse", _)
    ));
}
