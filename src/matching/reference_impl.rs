//! The matcher as it was before the anchor index (commit 8e109e6), copied verbatim: the
//! reference the property tests of [`super`] compare the current matcher with.

use crate::glob::PathGlob;
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
