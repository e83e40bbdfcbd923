//! Which policies apply: image globs, namespaces, resources and label selectors.
//!
//! Image globs ([`crate::glob::PathGlob`]): `*` matches within one path segment, `**` zero or
//! more whole segments, anchored at both ends, matched against the fully qualified reference
//! (`registry/repository[:tag][@digest]`). The rules, each in `docs/matching.md`:
//! - both sides are normalised first (see [`crate::reference`]): no registry means `docker.io`,
//!   `index.docker.io` is `docker.io`, a one-segment Docker Hub name gets `library/`, registry
//!   hosts are lower-cased and `:443` is dropped; so `docker.io/library/**` covers `nginx`, and
//!   `myregistry.com/**` does not cover `myregistry.com.evil.io/x`;
//! - a glob whose last segment has no `:` or `@` names repositories and covers them at every tag
//!   and digest: a rule about `myregistry.com/app` must not be escaped with `:v2`;
//! - a reference with a digest is covered by every glob that covers its repository at some tag
//!   (`app:v*` covers `app@sha256:…`): the digest is what runs, the tag beside it is decoration;
//! - a glob whose first segment has a wildcard (`*/*`, `*.corp.com/**`, `myorg-*/**`) is matched
//!   against every spelling of the reference that names the same image: with and without
//!   registry for Docker Hub (`bitnami/redis`), each Docker Hub host name, with and without
//!   `library/`, with and without `:443`. This is policy-controller's `*/*` rewrite and raw-name
//!   fallback, generalised.
//!
//! Matching needs no compilation and no allocation per glob: each glob is parsed once, with the
//! settings, and most are ruled out by their literal prefix before the matcher runs.

use std::collections::BTreeMap;

use crate::glob::{PathGlob, segment_matches};
use crate::reference::{DOCKER_HUB, DOCKER_HUB_ALIASES, ImageReference, looks_like_registry, normalise_registry};

/// Characters an image glob may contain: those of image references, plus `*`.
fn is_glob_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '*')
}

/// Normalises an image glob the way images are normalised, and returns the patterns to match
/// (several when the glob names repositories: as written, at any tag, and by digest).
pub fn normalise_image_glob(glob: &str) -> Result<Vec<String>, String> {
    if glob.is_empty() {
        return Err("the glob is empty".to_owned());
    }
    if let Some(bad) = glob.chars().find(|c| !is_glob_char(*c)) {
        return Err(format!(
            "character {bad:?} is not allowed in an image glob (use `*` for one path segment, `**` for any number)"
        ));
    }
    PathGlob::parse(glob).map_err(|e| e.to_string())?;
    if glob == "**" {
        return Ok(vec!["**".to_owned()]);
    }
    let (registry, path) = match glob.split_once('/') {
        Some((first, rest)) if first.contains('*') => (fold_wildcard_registry(first), rest),
        Some((first, rest)) if looks_like_registry(first) => {
            (normalise_registry(Some(first)).map_err(|e| e.to_string())?, rest)
        }
        _ => (DOCKER_HUB.to_owned(), glob),
    };
    let path = if registry == DOCKER_HUB && !path.contains('/') && path != "**" {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    let full = format!("{registry}/{path}");
    let last = full.rsplit('/').next().unwrap_or_default();
    // A last segment ending in `*` already takes any `:tag` or `@digest` after the name.
    Ok(if last == "**" || last.contains([':', '@']) || last.ends_with('*') {
        vec![full]
    } else if last.contains('*') {
        vec![format!("{full}:*"), format!("{full}@*"), full]
    } else {
        vec![format!("{full}:*"), format!("{full}@*")]
    })
}

/// A registry segment with wildcards, folded like a registry: lower case, no `:443`.
fn fold_wildcard_registry(segment: &str) -> String {
    let lower = segment.to_ascii_lowercase();
    match lower.strip_suffix(":443") {
        Some(host) if !host.is_empty() => host.to_owned(),
        _ => lower,
    }
}

/// One normalised glob of a policy.
struct Pattern {
    glob: PathGlob,
    /// Length of the literal prefix (up to the first `*`): a match starts with it.
    literal: usize,
    /// The first segment has a wildcard: match every spelling of the reference.
    any_spelling: bool,
    owner: usize,
}

/// All image globs of all policies.
pub struct ImageMatcher {
    patterns: Vec<Pattern>,
}

impl ImageMatcher {
    /// Builds the matcher from patterns made by [`normalise_image_glob`] and their owning
    /// policy index, in ascending policy order.
    pub fn new(patterns: Vec<(String, usize)>) -> Self {
        let patterns = patterns
            .into_iter()
            .map(|(pattern, owner)| {
                // `normalise_image_glob` parsed it already; were it refused here, covering every
                // image is the failure that fails closed.
                let glob = PathGlob::parse(&pattern).unwrap_or_else(|_| PathGlob::everything());
                let literal = pattern.find('*').unwrap_or(pattern.len());
                let any_spelling = pattern.split('/').next().is_some_and(|first| first.contains('*'));
                Pattern {
                    glob,
                    literal,
                    any_spelling,
                    owner,
                }
            })
            .collect();
        Self { patterns }
    }

    /// Indices of the policies whose globs cover `image`, ascending and without repeats.
    pub fn policies_for(&self, image: &ImageReference) -> Vec<usize> {
        let canonical = Spellings::of(image, false);
        let mut every: Option<Spellings> = None;
        let mut hits: Vec<usize> = self
            .patterns
            .iter()
            .filter(|pattern| {
                if pattern.glob.matches_everything() {
                    true
                } else if pattern.any_spelling {
                    every
                        .get_or_insert_with(|| Spellings::of(image, true))
                        .covered_by(pattern)
                } else {
                    canonical.covered_by(pattern)
                }
            })
            .map(|pattern| pattern.owner)
            .collect();
        hits.dedup();
        hits
    }
}

/// The texts a glob is matched against for one reference.
struct Spellings {
    /// `registry/repository:tag`, `…@digest`, `…:tag@digest`, as the reference has them.
    texts: Vec<String>,
    /// `registry/repository` of a reference with a digest: covered by a glob that covers it at
    /// some tag.
    by_digest: Vec<String>,
}

impl Spellings {
    /// The normalised reference, or (`every`) each spelling that names the same image.
    fn of(image: &ImageReference, every: bool) -> Self {
        let registry = image.registry();
        let repository = image.repository();
        let registries = if every {
            registry_spellings(registry)
        } else {
            vec![registry.to_owned()]
        };
        let mut paths = vec![repository];
        if every
            && registry == DOCKER_HUB
            && let Some(name) = repository.strip_prefix("library/")
            && !name.contains('/')
        {
            paths.push(name);
        }
        let mut texts = Vec::new();
        let mut by_digest = Vec::new();
        for registry in &registries {
            for path in &paths {
                let name = if registry.is_empty() {
                    (*path).to_owned()
                } else {
                    format!("{registry}/{path}")
                };
                if let Some(tag) = image.tag() {
                    texts.push(format!("{name}:{tag}"));
                }
                if let Some(digest) = image.digest() {
                    texts.push(format!("{name}@{digest}"));
                    if let Some(tag) = image.tag() {
                        texts.push(format!("{name}:{tag}@{digest}"));
                    }
                    by_digest.push(name);
                }
            }
        }
        Self { texts, by_digest }
    }

    fn covered_by(&self, pattern: &Pattern) -> bool {
        let literal = &pattern.glob.as_str().as_bytes()[..pattern.literal];
        self.texts
            .iter()
            .any(|text| text.as_bytes().starts_with(literal) && pattern.glob.matches(text))
            || self.by_digest.iter().any(|name| pattern.glob.matches_some_tag(name))
    }
}

/// Every way of writing a normalised registry that reaches the same registry: Docker Hub's host
/// names or none at all (the empty string), and `:443` written or not.
fn registry_spellings(registry: &str) -> Vec<String> {
    let hosts: Vec<&str> = if registry == DOCKER_HUB {
        std::iter::once(DOCKER_HUB).chain(DOCKER_HUB_ALIASES).collect()
    } else {
        vec![registry]
    };
    let mut out = Vec::with_capacity(hosts.len() * 2 + 1);
    if registry == DOCKER_HUB {
        out.push(String::new());
    }
    for host in hosts {
        out.push(host.to_owned());
        let has_port = match host.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => host.contains(':'),
        };
        if !has_port {
            out.push(format!("{host}:443"));
        }
    }
    out
}

/// Checks one normalised glob (image or namespace).
pub fn check_glob_syntax(pattern: &str) -> Result<(), String> {
    PathGlob::parse(pattern).map(|_| ()).map_err(|e| e.to_string())
}

/// The resource an admission request is about.
#[derive(Clone, Debug, Default)]
pub struct Subject<'a> {
    pub namespace: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub labels: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// A compiled `spec.match` entry: every field given must match (all-of).
#[derive(Debug)]
pub struct MatchRule {
    namespaces: Option<NamespaceMatcher>,
    group: Option<String>,
    version: Option<String>,
    resource: Option<String>,
    selector: Option<LabelSelector>,
}

impl MatchRule {
    /// Builds a rule; `namespaces` are names or globs (`team-*`).
    pub fn new(
        namespaces: Option<Vec<String>>,
        group: Option<String>,
        version: Option<String>,
        resource: Option<String>,
        selector: Option<LabelSelector>,
    ) -> Result<Self, String> {
        let namespaces = namespaces.map(NamespaceMatcher::new).transpose()?;
        Ok(Self {
            namespaces,
            group,
            version,
            resource,
            selector,
        })
    }

    /// Whether the rule covers `subject`.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        let field = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have || w == "*");
        self.namespaces.as_ref().is_none_or(|n| n.matches(subject.namespace))
            && field(&self.group, subject.group)
            && field(&self.version, subject.version)
            && field(&self.resource, subject.resource)
            && self.selector.as_ref().is_none_or(|s| s.matches(subject.labels))
    }
}

/// Namespace names and globs of one match entry.
#[derive(Debug)]
struct NamespaceMatcher {
    exact: Vec<String>,
    globs: Vec<String>,
}

impl NamespaceMatcher {
    fn new(entries: Vec<String>) -> Result<Self, String> {
        let mut exact = Vec::new();
        let mut globs = Vec::new();
        for entry in entries {
            if entry.is_empty() {
                return Err("a namespace is empty".to_owned());
            }
            if let Some(bad) = entry
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?')))
            {
                return Err(format!(
                    "namespace `{entry}`: character {bad:?} is not allowed (names are lower-case letters, digits and `-`; `*` and `?` are wildcards)"
                ));
            }
            if entry.contains(['*', '?']) {
                globs.push(entry);
            } else {
                exact.push(entry);
            }
        }
        Ok(Self { exact, globs })
    }

    fn matches(&self, namespace: &str) -> bool {
        self.exact.iter().any(|n| n == namespace) || self.globs.iter().any(|g| segment_matches(g, namespace, true))
    }
}

/// A Kubernetes label selector.
#[derive(Debug, Default)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub expressions: Vec<LabelExpression>,
}

/// One `matchExpressions` requirement.
#[derive(Debug)]
pub enum LabelExpression {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelSelector {
    /// Whether the object's labels satisfy the selector (no labels = empty label set).
    pub fn matches(&self, labels: Option<&serde_json::Map<String, serde_json::Value>>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(|v| v.as_str());
        self.match_labels.iter().all(|(k, v)| get(k) == Some(v.as_str()))
            && self.expressions.iter().all(|e| match e {
                LabelExpression::In(k, values) => get(k).is_some_and(|v| values.iter().any(|x| x == v)),
                LabelExpression::NotIn(k, values) => get(k).is_none_or(|v| values.iter().all(|x| x != v)),
                LabelExpression::Exists(k) => get(k).is_some(),
                LabelExpression::DoesNotExist(k) => get(k).is_none(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matcher(globs: &[&str]) -> ImageMatcher {
        let patterns = globs
            .iter()
            .enumerate()
            .flat_map(|(i, g)| normalise_image_glob(g).unwrap().into_iter().map(move |p| (p, i)));
        let patterns: Vec<_> = patterns.collect();
        for (p, _) in &patterns {
            check_glob_syntax(p).unwrap();
        }
        ImageMatcher::new(patterns)
    }

    fn covers(glob: &str, image: &str) -> bool {
        !matcher(&[glob])
            .policies_for(&ImageReference::parse(image).unwrap())
            .is_empty()
    }

    #[test]
    fn double_star_crosses_segments_single_star_does_not() {
        assert!(covers("myregistry.com/**", "myregistry.com/app:v1"));
        assert!(covers("myregistry.com/**", "myregistry.com/team/app/sub:v1"));
        assert!(covers("myregistry.com/*", "myregistry.com/app:v1"));
        assert!(!covers("myregistry.com/*", "myregistry.com/team/app:v1"));
        assert!(covers("**", "nginx"));
        assert!(covers("**", "ghcr.io/a/b/c:v1"));
    }

    #[test]
    fn prefixes_cannot_be_bypassed_with_crafted_names() {
        assert!(!covers("myregistry.com/**", "myregistry.com.evil.io/x"));
        assert!(!covers("myregistry.com/**", "evil.io/myregistry.com/x"));
        assert!(!covers("myregistry.com/app", "myregistry.com/app-evil:v1"));
        assert!(!covers("gcr.io/myproject/**", "gcr.io/myproject-evil/x"));
    }

    #[test]
    fn docker_hub_globs_cover_short_names() {
        assert!(covers("docker.io/library/**", "nginx"));
        assert!(covers("docker.io/library/**", "nginx:1.25"));
        assert!(covers("docker.io/library/*", "index.docker.io/library/nginx:1.25"));
        assert!(covers("index.docker.io/library/*", "nginx:1.25"));
        assert!(covers("nginx", "docker.io/library/nginx:1.25"));
        assert!(!covers("docker.io/library/**", "docker.io/bitnami/redis"));
        assert!(!covers("k8s.gcr.io/**", "registry.k8s.io/pause:3.9"));
    }

    #[test]
    fn a_glob_without_tag_covers_every_tag_and_digest() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert!(covers("myregistry.com/app", "myregistry.com/app:v2"));
        assert!(covers("myregistry.com/app", &format!("myregistry.com/app@{d}")));
        assert!(covers("myregistry.com/app:v1", "myregistry.com/app:v1"));
        assert!(!covers("myregistry.com/app:v1", "myregistry.com/app:v2"));
        assert!(covers("myregistry.com/app:v*", "myregistry.com/app:v2"));
    }

    #[test]
    fn registry_wildcards_and_registry_case() {
        assert!(covers("*/app/**", "myregistry.com/app/x:1"));
        assert!(covers("MyRegistry.com/**", "myregistry.com/app:1"));
        assert!(covers("myregistry.com/**", "MYREGISTRY.com/app:1"));
    }

    #[test]
    fn bad_globs_are_explained() {
        let check_image_glob =
            |g: &str| normalise_image_glob(g).and_then(|ps| ps.iter().try_for_each(|p| check_glob_syntax(p)));
        assert!(check_image_glob("").is_err());
        assert!(
            check_image_glob("myregistry.com/{a,b}")
                .unwrap_err()
                .contains("not allowed")
        );
        assert!(
            check_image_glob("myregistry.com/app?")
                .unwrap_err()
                .contains("not allowed")
        );
        assert!(check_image_glob("my registry/**").is_err());
        assert!(
            check_image_glob("myregistry.com/[a-")
                .unwrap_err()
                .contains("not allowed")
        );
        assert!(check_image_glob("myregistry.com/**x").is_err());
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// The counter-example of issue 9: glob-match 0.2.1 forgot its `**` backtrack point.
    #[test]
    fn double_star_backtracks_after_a_literal() {
        assert!(covers("myregistry.com/**/prod-*", "myregistry.com/prod-eu/prod-api:1"));
        assert!(covers("myregistry.com/**/prod-*", "myregistry.com/prod-api:1"));
        assert!(covers(
            "myregistry.com/**/prod-*",
            "myregistry.com/a/prod-x/b/prod-api:1"
        ));
        assert!(!covers("myregistry.com/**/prod-*", "myregistry.com/prod-eu/api:1"));
    }

    #[test]
    fn a_reference_by_digest_is_covered_by_globs_naming_some_tag() {
        assert!(covers("myregistry.com/app:v*", &format!("myregistry.com/app@{D}")));
        assert!(covers("myregistry.com/app:v1", &format!("myregistry.com/app@{D}")));
        assert!(covers("app:v1", &format!("app@{D}")));
        assert!(covers("docker.io/library/nginx:1.*", &format!("nginx@{D}")));
        // The tag beside a digest does not choose what runs: the digest does.
        assert!(covers("myregistry.com/app:v1", &format!("myregistry.com/app:v2@{D}")));
        assert!(!covers("myregistry.com/app:v1", &format!("myregistry.com/other@{D}")));
        assert!(!covers("myregistry.com/app:v1", &format!("myregistry.com/app-x@{D}")));
        assert!(!covers("myregistry.com/app:v1", "myregistry.com/app:v2"));
    }

    #[test]
    fn docker_hub_wildcards_as_policy_controller() {
        // policy-controller rewrites `*/*` to `index.docker.io/*/*` and `*` to
        // `index.docker.io/library/*`.
        assert!(covers("*/*", "bitnami/redis:7"));
        assert!(covers("*/*", "docker.io/bitnami/redis:7"));
        assert!(covers("*/*", "nginx"));
        assert!(covers("*", "nginx:1.25"));
        assert!(!covers("*", "bitnami/redis:7"));
        // Its raw-name fallback: the glob against the name as written.
        assert!(covers("myorg-*/**", "myorg-team/app"));
        assert!(covers("myorg-*/**", "docker.io/myorg-team/app:v1"));
        assert!(covers("*/app", "myorg/app:v1"));
        assert!(!covers("myorg-*/**", "otherorg/app"));
        assert!(!covers("*/*", "ghcr.io/a/b:1"));
        // Its canonical name uses index.docker.io.
        assert!(covers("index.docker.*/**", "nginx"));
    }

    #[test]
    fn registry_hosts_fold_case_and_the_default_port() {
        assert!(covers("myregistry.com:443/app", "myregistry.com/app:v1"));
        assert!(covers("myregistry.com/app", "myregistry.com:443/app:v1"));
        assert!(covers("MyRegistry.COM:443/**", "myregistry.com/team/app:v1"));
        assert!(covers("myregistry.com/**", "MYREGISTRY.COM:443/app"));
        assert!(covers("*.example.com/**", "REG.Example.com:443/app"));
        assert!(covers("myregistry.com:*/**", "myregistry.com/app"));
        assert!(covers("*:443/app", "ghcr.io/app"));
        assert!(!covers("myregistry.com/**", "myregistry.com:5000/app"));
        assert!(!covers("myregistry.com:5000/**", "myregistry.com/app"));
    }

    #[test]
    fn globs_with_a_wildcard_in_the_last_segment_cover_the_repository() {
        assert!(covers("myregistry.com/a*p", "myregistry.com/app:v1"));
        assert!(covers("myregistry.com/a*p", &format!("myregistry.com/app@{D}")));
        assert!(covers("myregistry.com/app*", "myregistry.com/app-x:v1"));
        assert!(!covers("myregistry.com/a*p", "myregistry.com/apx:v1"));
    }

    /// policy-controller's `glob.Match`, transcribed: the glob rewritten for Docker Hub, then a
    /// regexp (`*` = `[^/]*`, `**` = `.*`) against go-containerregistry's name of the
    /// reference (`index.docker.io`, `library/`, `:latest`, the tag dropped beside a digest),
    /// or else against the reference as written.
    fn policy_controller_matches(glob: &str, image: &str) -> bool {
        let glob = match glob {
            "*/*" => "index.docker.io/*/*",
            "*" => "index.docker.io/library/*",
            g => g,
        };
        let re = format!(
            "^{}$",
            glob.replace('.', "\\.")
                .replace("**", "#")
                .replace('*', "[^/]*")
                .replace('#', ".*")
        );
        let re = regex::Regex::new(&re).unwrap();
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (image, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) => (first, path.to_owned()),
            _ => ("index.docker.io", name.to_owned()),
        };
        let registry = if registry == "docker.io" {
            "index.docker.io"
        } else {
            registry
        };
        let path = if registry == "index.docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let full = match (digest, tag) {
            (Some(d), _) => format!("{registry}/{path}@{d}"),
            (None, t) => format!("{registry}/{path}:{}", t.unwrap_or("latest")),
        };
        re.is_match(&full) || (full != image && re.is_match(image))
    }

    fn pc_glob() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            Just("**"),
            Just("*"),
            Just("a"),
            Just("b"),
            Just("a*"),
            Just("*b"),
            Just("a-b"),
            Just("library"),
            Just("r.io"),
            Just("R.io"),
            Just("r.*"),
            Just("*.io"),
            Just("r.io:443"),
            Just("r.io:*"),
            Just("docker.io"),
            Just("index.docker.io"),
            Just("a:*"),
            Just("a:v*"),
            Just("*:v1"),
            Just("b:latest"),
        ];
        prop_oneof![
            1 => Just("*/*".to_owned()),
            1 => Just("*".to_owned()),
            12 => proptest::collection::vec(segment, 1..5).prop_map(|s| s.join("/")),
        ]
    }

    fn pc_image() -> impl Strategy<Value = String> {
        let registry = prop_oneof![
            Just(""),
            Just("docker.io/"),
            Just("index.docker.io/"),
            Just("r.io/"),
            Just("R.io/"),
            Just("r.io:443/"),
            Just("r.io:5000/"),
        ];
        let segment = prop_oneof![Just("a"), Just("b"), Just("a-b"), Just("library"), Just("ab")];
        let tag = prop_oneof![Just(""), Just(":v1"), Just(":latest"), Just(":b")];
        let digest = prop_oneof![Just(String::new()), Just(format!("@{D}"))];
        (registry, proptest::collection::vec(segment, 1..4), tag, digest)
            .prop_map(|(r, path, t, d)| format!("{r}{}{t}{d}", path.join("/")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Everything policy-controller covers, we cover (stricter: sometimes more).
        #[test]
        fn we_cover_whatever_policy_controller_covers(glob in pc_glob(), image in pc_image()) {
            prop_assume!(normalise_image_glob(&glob).is_ok());
            let reference = ImageReference::parse(&image).unwrap();
            if policy_controller_matches(&glob, &image) {
                prop_assert!(
                    !matcher(&[glob.as_str()]).policies_for(&reference).is_empty(),
                    "policy-controller covers {} with {}, we do not", image, glob
                );
            }
        }
    }

    #[test]
    fn policies_for_reports_each_owner_once() {
        let m = matcher(&["myregistry.com/**", "**", "myregistry.com/app"]);
        let hits = m.policies_for(&ImageReference::parse("myregistry.com/app:v1").unwrap());
        assert_eq!(hits, vec![0, 1, 2]);
    }

    #[test]
    fn namespace_names_and_globs() {
        let rule = MatchRule::new(Some(vec!["production".into(), "team-*".into()]), None, None, None, None).unwrap();
        let subject = |ns| Subject {
            namespace: ns,
            ..Default::default()
        };
        assert!(rule.matches(&subject("production")));
        assert!(rule.matches(&subject("team-a")));
        assert!(!rule.matches(&subject("production-2")));
        assert!(!rule.matches(&subject("development")));
        assert!(MatchRule::new(Some(vec!["Prod".into()]), None, None, None, None).is_err());
    }

    #[test]
    fn resource_and_selector() {
        let mut selector = LabelSelector::default();
        selector.match_labels.insert("tier".into(), "prod".into());
        selector
            .expressions
            .push(LabelExpression::NotIn("exempt".into(), vec!["true".into()]));
        let rule = MatchRule::new(
            None,
            Some(String::new()),
            Some("v1".into()),
            Some("pods".into()),
            Some(selector),
        )
        .unwrap();
        let labels: serde_json::Map<_, _> = serde_json::from_str(r#"{"tier":"prod"}"#).unwrap();
        let exempt: serde_json::Map<_, _> = serde_json::from_str(r#"{"tier":"prod","exempt":"true"}"#).unwrap();
        let pod = |labels| Subject {
            namespace: "x",
            group: "",
            version: "v1",
            resource: "pods",
            labels,
        };
        assert!(rule.matches(&pod(Some(&labels))));
        assert!(!rule.matches(&pod(Some(&exempt))));
        assert!(!rule.matches(&pod(None)));
        let deployment = Subject {
            namespace: "x",
            group: "apps",
            version: "v1",
            resource: "deployments",
            labels: Some(&labels),
        };
        assert!(!rule.matches(&deployment));
    }
}
