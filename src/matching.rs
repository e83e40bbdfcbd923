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
//! Reading the settings normalises each glob in one pass and parses it once (two allocations:
//! its text and its segment list). A glob naming repositories stands for itself followed by
//! `:*` and by `@*` ([`Tail`]): its last segment is matched through those suffixes, never
//! written out.
//!
//! [`ImageMatcher`] indexes the globs by their anchor, the literal segments they begin with
//! ([`PathGlob::anchor`]: `127.0.0.1:5000/team3` for `127.0.0.1:5000/team3/**`, `r.io` for
//! `r.io/a*`), hashed. Matching an image hashes its name once, looks up each prefix ending
//! before a `/` (a reference has few segments), and matches only the globs found: the work
//! follows the image's spellings and the globs that could cover it, not the number of globs.
//! Globs with a wildcard in their first segment are matched against every spelling, and `**`
//! covers everything, without lookup. No compilation, and no allocation per glob when
//! matching. The property tests below check that the index and the tails give the verdicts of
//! the matcher as it was before them (`src/matching/reference_impl.rs`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::glob::{ByteClasses, PathGlob, Tail, segment_matches};
use crate::reference::{
    DOCKER_HUB, DOCKER_HUB_ALIASES, ImageReference, drop_port_zeros, looks_like_registry, normal_registry,
    normalise_registry,
};

#[cfg(test)]
mod reference_impl;

/// Characters an image glob may contain: those of image references, plus `*`.
fn is_glob_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_glob_byte)
}

/// [`is_glob_char`] of a byte (a byte of a multi-byte character is none of these): a table,
/// since every byte of every glob is checked when a fresh instance reads the settings.
#[inline]
fn is_glob_byte(b: u8) -> bool {
    GLOB_BYTES[usize::from(b)]
}

/// The bytes [`is_glob_byte`] accepts (test `the_glob_byte_table_is_the_rule`).
const GLOB_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = glob_byte_rule(b as u8);
        b += 1;
    }
    table
};

/// [`GLOB_BYTES`] with what the scan of a glob asks of each byte besides.
const GLOB_CLASSES: ByteClasses = ByteClasses::new(&GLOB_BYTES);

/// Letters, digits, `.`, `_`, `-`, `/`, `:`, `@` and `*`.
const fn glob_byte_rule(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@' | b'*')
}

/// A normalised image glob: the glob, parsed once, and how its last segment is read (a glob
/// naming repositories also stands for itself followed by `:*` and by `@*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageGlob {
    glob: PathGlob,
    tail: Tail,
    /// For a glob of literal segments followed by `**` only (`r.io/app:v1/**`), the length of
    /// the literal part: a text (not a name by digest) equal to it is not covered, although
    /// `**` matches zero segments. The matcher has always required a text to begin with the
    /// literal prefix of the glob (up to its first `*`, here `r.io/app:v1/`); kept, not to
    /// change a verdict.
    bare_prefix: Option<usize>,
}

impl ImageGlob {
    /// `**`: covers every image.
    fn everything() -> Self {
        Self {
            glob: PathGlob::everything(),
            tail: Tail::AsWritten,
            bare_prefix: None,
        }
    }

    /// The glob whose normalised text is `full`: parsed once, its last segment read as it
    /// names repositories or not. `None` if `full` does not parse.
    fn from_normal(full: String) -> Option<Self> {
        PathGlob::parse_owned(full).ok().map(Self::of)
    }

    /// The image glob of a parsed normalised glob.
    fn of(glob: PathGlob) -> Self {
        let tail = glob.image_tail();
        let bare_prefix = glob.literal_before_final_double_star();
        Self {
            glob,
            tail,
            bare_prefix,
        }
    }

    /// The patterns the glob stands for, as text: `{full}:*` and `{full}@*` for a glob naming
    /// repositories, then `{full}` unless that glob names no repository by itself. Built only for
    /// the settings' syntax check, whose messages quote them.
    pub fn patterns(&self) -> Vec<String> {
        let full = self.glob.as_str();
        let mut out = Vec::with_capacity(3);
        if self.tail != Tail::AsWritten {
            out.extend([":*", "@*"].map(|suffix| [full, suffix].concat()));
        }
        if self.tail != Tail::TagOrDigest {
            out.push(full.to_owned());
        }
        out
    }

    fn matches(&self, text: &[u8]) -> bool {
        self.bare_prefix != Some(text.len()) && self.glob.matches_tail(text, self.tail)
    }

    fn matches_some_tag(&self, name: &[u8]) -> bool {
        self.glob.matches_some_tag_tail(name, self.tail)
    }

    /// The glob read without the readings that cover other images than policy-controller's
    /// `glob.Match` covers: `**` stands for one or more segments (policy-controller's `.*`
    /// between two `/` needs one), a glob naming repositories names their `latest` tag only, and
    /// (in [`ImageMatcher::covers_narrowly`]) a reference by digest is not covered through some
    /// tag of its repository. The spellings of one image (registry case, `:443`, Docker Hub's
    /// host names and `library/`) stay one image. Built only for the policies that admit
    /// without a signature, when one covers an image.
    fn narrow(&self) -> Option<Self> {
        // `**` alone, as written: `**/**` also matches everything here (consecutive `**` are
        // merged), but policy-controller's `.*/.*` wants a `/` (`**/**/**` two of them).
        if self.glob.as_str() == "**" {
            return Some(Self::everything());
        }
        // policy-controller reads `*/*` as `index.docker.io/*/*` (and `*` as
        // `index.docker.io/library/*`, which is how it is normalised here already).
        let written = match self.glob.as_str() {
            "*/*" => "docker.io/*/*",
            written => written,
        };
        let mut text = String::with_capacity(written.len() + 16);
        for (i, segment) in written.split('/').enumerate() {
            if i > 0 {
                text.push('/');
            }
            text.push_str(if segment == "**" { "*/**" } else { segment });
        }
        if self.tail == Tail::TagOrDigest {
            text.push_str(":latest");
        }
        let glob = PathGlob::parse_owned(text).ok()?;
        let bare_prefix = glob.literal_before_final_double_star();
        Some(Self {
            glob,
            tail: Tail::AsWritten,
            bare_prefix,
        })
    }
}

/// Normalises an image glob the way images are normalised, in one pass: the normalised text
/// (one allocation) is parsed once (one more, its segments). When the glob names repositories
/// its [`ImageGlob`] covers them as written, at any tag, and by digest.
pub fn normalise_image_glob(glob: &str) -> Result<ImageGlob, String> {
    GlobReader::default().read(glob)
}

/// Reads the image globs of one settings text ([`normalise_image_glob`] of each), remembering
/// the last registry in normal form it met: a glob that begins with that registry and a `/`
/// (most settings name one registry or two, glob after glob) skips its check, and is read in
/// one pass after it. Property test `a_reader_reads_each_glob_as_alone`.
#[derive(Debug, Default)]
pub struct GlobReader {
    /// The last registry found in normal form ([`normal_registry`]), empty before the first.
    registry: String,
    /// Whether it has a `:`.
    colon: bool,
}

impl GlobReader {
    /// [`normalise_image_glob`] of `glob`.
    pub fn read(&mut self, glob: &str) -> Result<ImageGlob, String> {
        match self.normal_as_written(glob) {
            Some(normal) => Ok(normal),
            None => normalise_in_general(glob),
        }
    }

    /// [`normal_registry`] of `glob`: the registry remembered when `glob` begins with it and a
    /// `/` (whose answer depends on the bytes before the first `/` alone), else found and then
    /// remembered.
    fn registry(&mut self, glob: &str) -> Option<(usize, bool)> {
        let known = self.registry.as_str();
        if !known.is_empty()
            && glob.as_bytes().get(known.len()) == Some(&b'/')
            && crate::ascii::same(&glob.as_bytes()[..known.len()], known.as_bytes())
        {
            return Some((known.len(), self.colon));
        }
        let (slash, colon) = normal_registry(glob)?;
        self.registry.clear();
        self.registry.push_str(&glob[..slash]);
        self.colon = colon;
        Some((slash, colon))
    }

    /// The glob most policies write, `host.name[:port]/path…` with a registry in normal form
    /// ([`normal_registry`]) and not Docker Hub's (whose one-segment names get `library/`), is
    /// its own normal form: parsed as it is, with one pass over its registry (none when
    /// remembered) and one over the rest, whose characters are checked as its segments are
    /// read. `None` for every other glob, valid or not: [`normalise_in_general`] then gives the
    /// same answer to these (property test `normalisation_is_unchanged`).
    fn normal_as_written(&mut self, glob: &str) -> Option<ImageGlob> {
        // An IPv6 host's brackets are not glob characters: the general path refuses it.
        if glob.starts_with('[') {
            return None;
        }
        // The registry has no `*` (a glob with one in its first segment matches every spelling).
        let (slash, colon) = self.registry(glob)?;
        if slash == glob.len() || &glob[..slash] == DOCKER_HUB {
            return None;
        }
        PathGlob::parse_owned_after(glob.to_owned(), slash, colon, &GLOB_CLASSES).map(ImageGlob::of)
    }
}

/// [`normalise_image_glob`] of any glob: checked, then normalised into a new text.
fn normalise_in_general(glob: &str) -> Result<ImageGlob, String> {
    if glob.is_empty() {
        return Err("the glob is empty".to_owned());
    }
    if let Some(bad) = glob.chars().find(|c| !is_glob_char(*c)) {
        return Err(format!(
            "character {bad:?} is not allowed in an image glob (use `*` for one path segment, `**` for any number)"
        ));
    }
    PathGlob::check(glob).map_err(|e| e.to_string())?;
    if glob == "**" {
        return Ok(ImageGlob::everything());
    }
    // Room for `docker.io/library/` before a glob without a registry.
    let capacity = glob.len() + DOCKER_HUB.len() + "/library/".len();
    let (mut full, path) = match glob.split_once('/') {
        Some((first, rest)) if first.contains('*') => (fold_wildcard_registry(first, capacity), rest),
        Some((first, rest)) if looks_like_registry(first) => {
            (normalise_registry(Some(first)).map_err(|e| e.to_string())?, rest)
        }
        _ => {
            let mut full = String::with_capacity(capacity);
            full.push_str(DOCKER_HUB);
            (full, glob)
        }
    };
    let library = full == DOCKER_HUB && !path.contains('/') && path != "**";
    full.reserve(path.len() + "/library/".len());
    full.push('/');
    if library {
        full.push_str("library/");
    }
    full.push_str(path);
    // The glob parsed, and normalising leaves its segments valid (a registry segment stays
    // non-empty and without `/` or a partial `**`); were it refused here, covering every image is
    // the failure that fails closed.
    Ok(ImageGlob::from_normal(full).unwrap_or_else(ImageGlob::everything))
}

/// A registry segment with wildcards, folded like a registry: lower case, a port of digits
/// without leading zeros, no `:443`; in a string of `capacity` bytes.
fn fold_wildcard_registry(segment: &str, capacity: usize) -> String {
    let mut lower = String::with_capacity(capacity);
    lower.push_str(segment);
    lower.make_ascii_lowercase();
    drop_port_zeros(&mut lower);
    if lower.len() > ":443".len() && lower.ends_with(":443") {
        lower.truncate(lower.len() - ":443".len());
    }
    lower
}

/// One image glob of a policy.
struct Pattern {
    glob: ImageGlob,
    owner: usize,
}

/// All image globs of all policies, indexed by anchor.
///
/// A glob whose first segment has no wildcard begins with literal segments, its anchor
/// ([`PathGlob::anchor`]): every reference it covers begins with them (followed by `/`, or
/// nothing). The index maps the FNV-1a hash of each anchor to its globs, as a vector sorted by
/// hash (built by binary insertion: cheaper to build, and smaller in the module, than a map or
/// a sort; searched by binary search over integers). For an image, the name of the normalised
/// reference is hashed once, left to right, and each prefix ending before a `/` is looked up
/// (`each_key`): only the globs found are matched, so a glob about another registry
/// or repository costs nothing. A hash collision only makes a glob be
/// matched for nothing. Globs whose first segment has a wildcard are matched against every
/// spelling of the image, and `**` covers everything: both are kept apart.
pub struct ImageMatcher {
    patterns: Vec<Pattern>,
    /// (anchor hash, index in `patterns`), sorted.
    anchored: Vec<(u64, usize)>,
    /// Globs without an anchor matched against the normalised reference (none in practice: a
    /// normalised glob has a registry segment).
    unanchored: Vec<usize>,
    /// Globs whose first segment has a wildcard.
    any_spelling: Vec<usize>,
    /// Owners of globs that match everything (`**`), sorted and without repeats: where the
    /// owners covering an image start from.
    everything: Vec<usize>,
}

/// FNV-1a, 64 bits: the anchor hash, fed one byte at a time as a text is read.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// One step of FNV-1a: the anchors of the index and the keys of an image are hashed by it alone,
/// so that they agree.
fn fnv(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// FNV-1a of `text`: a hash without a random seed (`std`'s asks the host for one in every
/// fresh instance) for short texts.
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(FNV_OFFSET, fnv)
}

impl ImageMatcher {
    /// Builds the matcher from globs made by [`normalise_image_glob`] and their owning policy
    /// index.
    pub fn new(globs: Vec<(ImageGlob, usize)>) -> Self {
        let mut anchored = Vec::with_capacity(globs.len());
        let mut unanchored = Vec::new();
        let mut any_spelling = Vec::new();
        let mut everything = Vec::new();
        let patterns: Vec<Pattern> = globs.into_iter().map(|(glob, owner)| Pattern { glob, owner }).collect();
        for (i, pattern) in patterns.iter().enumerate() {
            let glob = &pattern.glob.glob;
            if glob.matches_everything() {
                if let Err(at) = everything.binary_search(&pattern.owner) {
                    everything.insert(at, pattern.owner);
                }
            } else if glob.first_segment_is_wild() {
                any_spelling.push(i);
            } else {
                match glob.anchor() {
                    "" => unanchored.push(i),
                    anchor => {
                        let hash = fnv1a(anchor);
                        let at = anchored.partition_point(|&(h, _)| h <= hash);
                        anchored.insert(at, (hash, i));
                    }
                }
            }
        }
        Self {
            patterns,
            anchored,
            unanchored,
            any_spelling,
            everything,
        }
    }

    /// Whether a glob of policy `owner` covers `image` as policy-controller's `glob.Match`
    /// would at most ([`ImageGlob::narrow`]): what a policy that admits without a signature (a
    /// `static: pass` authority, `mode: warn`) covers beyond that must not keep an image from
    /// `noMatchPolicy` (docs/matching.md, "Exemptions"). Every spelling of the image is tried,
    /// not its repository at some tag.
    pub fn covers_narrowly(&self, owner: usize, image: &ImageReference) -> bool {
        let mut spellings = None;
        self.patterns
            .iter()
            .filter(|pattern| pattern.owner == owner)
            .filter_map(|pattern| pattern.glob.narrow())
            .any(|glob| {
                let every: &Spellings = spellings.get_or_insert_with(|| Spellings::of(image));
                // A reference with a digest is matched as `name@digest` and `name:tag@digest`
                // only, never as its tag alone: the runtime pulls the digest, and
                // policy-controller matches `name@digest` (go-containerregistry drops the tag) or
                // the reference as written. `name:latest` is also written `name` (what
                // policy-controller's fallback to the reference as written matches).
                let by_digest = image.digest().is_some();
                let texts = every
                    .spans
                    .iter()
                    .filter(|&&(_, _, some_tag)| !some_tag)
                    .map(|&(start, end, _)| &every.buf[start..end])
                    .filter(|text| !by_digest || text.contains(&b'@'))
                    .flat_map(|text| [Some(text), text.strip_suffix(b":latest")])
                    .flatten();
                covers(&glob, texts.map(|text| (text, false)))
            })
    }

    /// Indices of the policies whose globs cover `image`, ascending and without repeats.
    pub fn policies_for(&self, image: &ImageReference) -> impl Iterator<Item = usize> {
        // The owners found, kept sorted and without repeats (binary insertion): the index finds
        // globs out of policy order, and a glob found twice (a hash collision) or a policy
        // covered by several globs must be reported once. A list of the few owners found rather
        // than a flag per policy: an image costs nothing per policy that does not cover it.
        let mut hit: Vec<usize> = self.everything.clone();
        let mut untagged = String::new();
        let canonical = Canonical::of(image, &mut untagged);
        let mut check = |i: usize, covered: &dyn Fn(&ImageGlob) -> bool| {
            let pattern = &self.patterns[i];
            // One search: where the owner would go, when it was not found yet.
            if let Err(at) = hit.binary_search(&pattern.owner)
                && covered(&pattern.glob)
            {
                hit.insert(at, pattern.owner);
            }
        };
        let by_canonical = |glob: &ImageGlob| canonical.covered_by(glob);
        if !self.anchored.is_empty() {
            canonical.each_key(|key| {
                let start = self.anchored.partition_point(|&(hash, _)| hash < key);
                for &(_, i) in self.anchored[start..].iter().take_while(|&&(hash, _)| hash == key) {
                    check(i, &by_canonical);
                }
            });
        }
        for &i in &self.unanchored {
            check(i, &by_canonical);
        }
        if !self.any_spelling.is_empty() {
            let every = Spellings::of(image);
            for &i in &self.any_spelling {
                check(i, &|glob| every.covered_by(glob));
            }
        }
        hit.into_iter()
    }
}

/// The texts a glob is matched against for the normalised reference, borrowed from it:
/// `name:tag`, `name` (covered by a glob that covers it at some tag), `name@digest` and
/// `name:tag@digest`, as the reference has them. Only `name@digest` of a reference with both a
/// tag and a digest is written (into the caller's `untagged`): no allocation for the others, and
/// this is read for every image of every request. The texts [`Spellings`] writes for the one
/// spelling the reference has, in the same order (property test
/// `the_canonical_texts_are_the_one_spelling_written`).
struct Canonical<'r> {
    /// (text, whether the glob may cover it at some tag), the first one the longest name that
    /// every text begins with.
    texts: [(&'r [u8], bool); 4],
    len: usize,
}

impl<'r> Canonical<'r> {
    fn of(image: &'r ImageReference, untagged: &'r mut String) -> Self {
        let (name, whole) = (image.name().as_bytes(), image.as_str().as_bytes());
        let mut canonical = Self {
            texts: [(&[], false); 4],
            len: 0,
        };
        let mut push = |text: &'r [u8], some_tag: bool| {
            canonical.texts[canonical.len] = (text, some_tag);
            canonical.len += 1;
        };
        // In the order of `Spellings::push`.
        if image.tag().is_some() {
            push(image.tagged().as_bytes(), false);
        }
        if let Some(digest) = image.digest() {
            push(name, true);
            if image.tag().is_some() {
                for part in [image.name(), "@", digest] {
                    untagged.push_str(part);
                }
                push(untagged.as_bytes(), false);
            }
            push(whole, false);
        }
        canonical
    }

    fn covered_by(&self, glob: &ImageGlob) -> bool {
        covers(glob, self.texts[..self.len].iter().copied())
    }

    /// [`each_key`] of the normalised reference.
    fn each_key(&self, key: impl FnMut(u64)) {
        each_key(self.texts[0].0, key);
    }
}

/// The texts a glob is matched against for every spelling of one reference, in one buffer.
struct Spellings {
    buf: Vec<u8>,
    /// Byte ranges of `buf`: `registry/repository:tag`, `…@digest`, `…:tag@digest`, as the
    /// reference has them (`false`), and `registry/repository` of a reference with a digest,
    /// covered by a glob that covers it at some tag (`true`).
    spans: Vec<(usize, usize, bool)>,
}

impl Spellings {
    /// Each spelling that names the same image as `image`.
    fn of(image: &ImageReference) -> Self {
        let registry = image.registry();
        let repository = image.repository();
        let short = if registry == DOCKER_HUB {
            repository.strip_prefix("library/").filter(|name| !name.contains('/'))
        } else {
            None
        };
        let names = 2 * (1 + 2 * DOCKER_HUB_ALIASES.len() + 2);
        // The longest host is `registry-1.docker.io`.
        let per_name = registry.len().max(20)
            + ":443/".len()
            + repository.len()
            + image.tag().map_or(0, |t| 2 * (1 + t.len()))
            + image.digest().map_or(0, |d| 2 * (1 + d.len()));
        let mut spellings = Spellings {
            buf: Vec::with_capacity(per_name * names),
            spans: Vec::with_capacity(4 * names),
        };
        for_each_registry_spelling(registry, |host, port| {
            for path in std::iter::once(repository).chain(short) {
                spellings.push(image, host, port, path);
            }
        });
        spellings
    }

    /// Adds the texts of the name `host` + `port` + `/` + `path` (`path` alone without a host).
    /// (Not inlined: one copy for both callers keeps the module small.)
    #[inline(never)]
    fn push(&mut self, image: &ImageReference, host: &str, port: &str, path: &str) {
        let buf = &mut self.buf;
        let name_start = buf.len();
        if !host.is_empty() {
            buf.extend_from_slice(host.as_bytes());
            buf.extend_from_slice(port.as_bytes());
            buf.push(b'/');
        }
        buf.extend_from_slice(path.as_bytes());
        let name_end = buf.len();
        let mut tagged = None;
        if let Some(tag) = image.tag() {
            buf.push(b':');
            buf.extend_from_slice(tag.as_bytes());
            tagged = Some(buf.len());
            self.spans.push((name_start, buf.len(), false));
        }
        if let Some(digest) = image.digest() {
            self.spans.push((name_start, name_end, true));
            for head_end in std::iter::once(name_end).chain(tagged) {
                let start = buf.len();
                buf.extend_from_within(name_start..head_end);
                buf.push(b'@');
                buf.extend_from_slice(digest.as_bytes());
                self.spans.push((start, buf.len(), false));
            }
        }
    }

    #[inline(never)]
    fn covered_by(&self, glob: &ImageGlob) -> bool {
        covers(
            glob,
            self.spans
                .iter()
                .map(|&(start, end, some_tag)| (&self.buf[start..end], some_tag)),
        )
    }
}

/// Whether `glob` covers one of `texts`: a text as it is, or (`true`) a name at some tag.
fn covers<'t>(glob: &ImageGlob, mut texts: impl Iterator<Item = (&'t [u8], bool)>) -> bool {
    texts.any(|(text, some_tag)| {
        if some_tag {
            glob.matches_some_tag(text)
        } else {
            glob.matches(text)
        }
    })
}

/// Calls `key` with the anchor hash of each prefix of `text` (a name followed by a tag or
/// digest) that ends before a `/`: an anchored glob that covers the reference has one of these
/// keys.
///
/// A tag or digest has no `/`, so these are the prefixes of every text of the reference.
/// [`PathGlob::anchor`] allows a text equal to the anchor, but such a text is not covered
/// ([`ImageGlob::bare_prefix`]), and a name by digest always has more segments than the anchor
/// (an anchor's literal segment never stands for `name:TAG`): neither whole text needs a key.
fn each_key(text: &[u8], mut key: impl FnMut(u64)) {
    let mut hash = FNV_OFFSET;
    for &b in text {
        if b == b'/' {
            key(hash);
        }
        hash = fnv(hash, b);
    }
}

/// Calls `each(host, port)` for every way of writing a normalised registry that reaches the same
/// registry: Docker Hub's host names or none at all (the empty host), and `:443` written or not.
fn for_each_registry_spelling(registry: &str, mut each: impl FnMut(&str, &str)) {
    let hub = registry == DOCKER_HUB;
    if hub {
        each("", "");
    }
    let aliases: &[&str] = if hub { &DOCKER_HUB_ALIASES } else { &[] };
    for host in std::iter::once(registry).chain(aliases.iter().copied()) {
        each(host, "");
        let has_port = match host.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => host.contains(':'),
        };
        if !has_port {
            each(host, ":443");
        }
    }
}

/// Checks one normalised glob (image or namespace).
pub fn check_glob_syntax(pattern: &str) -> Result<(), String> {
    PathGlob::check(pattern).map_err(|e| e.to_string())
}

/// The resource an admission request is about.
#[derive(Clone, Debug, Default)]
pub struct Subject<'a> {
    pub namespace: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub labels: Labels<'a>,
    /// The admitted object, for `spec.policy`'s `includeSpec`/`includeObjectMeta`/`includeTypeMeta`
    /// (absent for `verify_images`): its JSON text, read as a `Value` only when a block asks.
    pub object: Option<&'a crate::workload::LazyObject<'a>>,
}

/// The labels of a [`Subject`], looked up only when a selector asks (few policies have one):
/// no map is built for them.
#[derive(Clone, Copy, Debug, Default)]
pub enum Labels<'a> {
    /// No labels: the empty label set.
    #[default]
    None,
    /// `metadata.labels` of the admitted object: the JSON text of an object, read as a
    /// `serde_json::Map` reads it (the last of duplicate keys wins, escapes are decoded, a value
    /// that is not a string is no label).
    Json(&'a str),
    /// Labels given as strings (the key of a `verify_images` request).
    Strings(&'a BTreeMap<String, String>),
}

impl<'a> Labels<'a> {
    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        match *self {
            Labels::None => None,
            Labels::Json(object) => crate::json_text::string_at(object, &[key]),
            Labels::Strings(map) => map.get(key).map(|v| Cow::Borrowed(v.as_str())),
        }
    }
}

/// A compiled `spec.match` entry: every field given must match (all-of).
#[derive(Debug)]
pub struct MatchRule {
    namespaces: Option<NamespaceMatcher>,
    group: Option<String>,
    version: Option<String>,
    resource: Option<String>,
    selector: Option<LabelSelector>,
    /// Whether the entry gave any of `group`, `version` and `resource`, an empty one included
    /// (left out here, but compared as `""` by policy-controller: [`MatchRule::matches_narrowly`]).
    names_kind: bool,
}

/// The `resource` values a `match` entry may name: the workloads whose images the policy reads
/// (policy-controller's `validResourceNames`, and `replicationcontrollers`), or `*`.
const MATCH_RESOURCES: [&str; 9] = [
    "pods",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "replicationcontrollers",
    "*",
];

/// The `group` values a `match` entry may name: those of [`MATCH_RESOURCES`] (`""` is the core
/// group), or `*`.
const MATCH_GROUPS: [&str; 4] = ["", "apps", "batch", "*"];

/// The group and resource policy-controller compares a `match` entry with for an object of
/// `resource` (its `kindResourceMap`, `pkg/apis/config/image_policies.go`, always version `v1`):
/// DaemonSets are in the core group `""` there; ReplicaSets (the table spells the kind
/// `ReplicatSet`) and ReplicationControllers have no entry, so no entry naming a resource
/// applies to them (`None`).
fn policy_controller_kind(resource: &str) -> Option<(&'static str, &'static str)> {
    Some(match resource {
        "pods" => ("", "pods"),
        "daemonsets" => ("", "daemonsets"),
        "deployments" => ("apps", "deployments"),
        "statefulsets" => ("apps", "statefulsets"),
        "jobs" => ("batch", "jobs"),
        "cronjobs" => ("batch", "cronjobs"),
        _ => return None,
    })
}

/// Whether `version` is a Kubernetes API version (`v1`, `v2beta1`, `v1alpha2`) or `*`.
fn is_api_version(version: &str) -> bool {
    if version == "*" {
        return true;
    }
    let number = |text: &str| -> Option<usize> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0 && !text.starts_with('0')).then_some(digits)
    };
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let Some(major) = number(rest) else {
        return false;
    };
    let rest = &rest[major..];
    rest.is_empty()
        || ["alpha", "beta"].iter().any(|level| {
            rest.strip_prefix(level)
                .is_some_and(|minor| number(minor).is_some_and(|n| n == minor.len()))
        })
}

impl MatchRule {
    /// Builds a rule; `namespaces` are names or globs (`team-*`). The field and the reason when
    /// a value can match no object this policy reads (a misspelt resource, `group: core`,
    /// `version: V1`): such an entry would silently apply to nothing, its policy to no image.
    pub fn new(
        namespaces: Option<Vec<String>>,
        group: Option<String>,
        version: Option<String>,
        resource: Option<String>,
        selector: Option<LabelSelector>,
    ) -> Result<Self, (&'static str, String)> {
        // policy-controller reads an empty `version` or `resource` as the field left out (Go's
        // zero value); `group: ""` is the core group.
        let names_kind = group.is_some() || version.is_some() || resource.is_some();
        if !names_kind && namespaces.is_none() && selector.as_ref().is_some_and(LabelSelector::is_empty) {
            return Err((
                "selector",
                "the selector is empty, so it matches every object and the entry scopes nothing: give matchLabels or \
                 matchExpressions, or remove the entry (a policy without match applies to every object)"
                    .to_owned(),
            ));
        }
        let version = version.filter(|v| !v.is_empty());
        let resource = resource.filter(|r| !r.is_empty());
        let namespaces = namespaces
            .map(NamespaceMatcher::new)
            .transpose()
            .map_err(|e| ("namespaces", e))?;
        if let Some(resource) = resource.as_deref()
            && !MATCH_RESOURCES.contains(&resource)
        {
            return Err((
                "resource",
                format!(
                    "`{resource}` is not a resource whose images this policy reads, so the entry would apply to nothing: \
                     use one of {} (plural, lower case)",
                    MATCH_RESOURCES.join(", ")
                ),
            ));
        }
        if let Some(group) = group.as_deref()
            && !MATCH_GROUPS.contains(&group)
        {
            return Err((
                "group",
                format!(
                    "`{group}` is not the API group of a workload this policy reads, so the entry would apply to \
                     nothing: use \"\" (the core group: pods, replicationcontrollers), apps, batch or *"
                ),
            ));
        }
        if let Some(version) = version.as_deref()
            && !is_api_version(version)
        {
            return Err((
                "version",
                format!(
                    "`{version}` is not an API version, so the entry would apply to nothing: write it as Kubernetes \
                     does (v1, v1beta1) or *"
                ),
            ));
        }
        Ok(Self {
            namespaces,
            group,
            version,
            resource,
            selector,
            names_kind,
        })
    }

    /// The resource fields (`group`, `version`, `resource`) the entry leaves out, when it gives
    /// some of them but not all (`None` when it gives all or none; an empty `version` or
    /// `resource` is given, and left out). Left out, a field matches anything here;
    /// policy-controller compares all three, an omitted one as `""`.
    pub fn partial_resource(&self) -> Option<Vec<&'static str>> {
        let fields = [
            ("group", &self.group),
            ("version", &self.version),
            ("resource", &self.resource),
        ];
        let missing: Vec<&'static str> = fields
            .iter()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        (!missing.is_empty() && self.names_kind).then_some(missing)
    }

    /// Whether the rule covers `subject` as policy-controller would at most, for an exemption
    /// ([`crate::settings::Settings::covers_narrowly`]): an entry that gives all of `group`,
    /// `version` and `resource` matches only where policy-controller's kind table
    /// ([`policy_controller_kind`]) agrees too (`*` is a wildcard for `version` only there:
    /// `group: "*"` or `resource: "*"` matches nothing); one that gives some but not all matches
    /// nothing (an omitted or empty field is `""` there); one that gives none (`namespaces` or a
    /// `selector` alone, this module's extension) reads as [`MatchRule::matches`].
    pub fn matches_narrowly(&self, subject: &Subject<'_>) -> bool {
        match (&self.group, &self.version, &self.resource) {
            (None, None, None) if !self.names_kind => self.matches(subject),
            (Some(group), Some(version), Some(resource)) => {
                policy_controller_kind(subject.resource) == Some((group.as_str(), resource.as_str()))
                    && (version == "v1" || version == "*")
                    && self.matches(subject)
            }
            _ => false,
        }
    }

    /// Why policy-controller applies this entry, which gives all of `group`, `version` and
    /// `resource`, to fewer objects than its fields name (its kind table,
    /// [`policy_controller_kind`]), and what to write instead; `None` when it applies it to all
    /// of them (or the entry does not give all three: [`MatchRule::partial_resource`]). For a
    /// policy that admits images without a signature: there, [`MatchRule::matches_narrowly`]
    /// keeps the rest from `noMatchPolicy`.
    pub fn policy_controller_gap(&self) -> Option<String> {
        let (Some(group), Some(version), Some(resource)) = (&self.group, &self.version, &self.resource) else {
            return None;
        };
        let mut gaps = Vec::new();
        if version != "v1" && version != "*" {
            gaps.push(format!(
                "version `{version}` matches no object in policy-controller, whose kind table gives every kind \
                 version v1: write version: \"*\""
            ));
        }
        match (group.as_str(), resource.as_str()) {
            ("*", _) | (_, "*") => gaps.push(
                "policy-controller compares group and resource exactly (`*` is a wildcard for the version only), \
                 so it applies a `*` group or resource to nothing: write an entry for each resource, with its group"
                    .to_owned(),
            ),
            ("apps", "daemonsets") => gaps.push(
                "policy-controller's kind table puts DaemonSets in the core group, so it applies group: apps, \
                 resource: daemonsets to none: write group: \"\" (which here covers DaemonSets too)"
                    .to_owned(),
            ),
            (_, "replicasets" | "replicationcontrollers") => gaps.push(format!(
                "policy-controller applies no entry naming a resource to {resource} (its kind table misspells \
                 ReplicaSet and has no ReplicationController), so no exemption reaches them there; an entry without \
                 group, version and resource (namespaces or a selector) exempts every kind in its scope"
            )),
            _ => {}
        }
        (!gaps.is_empty()).then(|| gaps.join("; "))
    }

    /// Whether the rule covers `subject`. An explicit `group: ""` also covers DaemonSets (group
    /// `apps`): policy-controller's kind table gives DaemonSets the core group, so a policy
    /// written for it that way applies to them there, and must here too.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        let field = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have || w == "*");
        let core_daemonsets =
            self.group.as_deref() == Some("") && subject.group == "apps" && subject.resource == "daemonsets";
        self.namespaces.as_ref().is_none_or(|n| n.matches(subject.namespace))
            && (field(&self.group, subject.group) || core_daemonsets)
            && field(&self.version, subject.version)
            && field(&self.resource, subject.resource)
            && self.selector.as_ref().is_none_or(|s| s.matches(&subject.labels))
    }
}

/// Namespace names and globs of one match entry.
#[derive(Debug)]
struct NamespaceMatcher {
    /// The names, then the globs (with `*` or `?`), in the list as written (no copy: a fresh
    /// instance builds one for every `match` entry of the settings).
    entries: Vec<String>,
    /// Where the globs begin in `entries`.
    globs: usize,
}

impl NamespaceMatcher {
    fn new(mut entries: Vec<String>) -> Result<Self, String> {
        let mut names = 0;
        for i in 0..entries.len() {
            let entry = &entries[i];
            if entry.is_empty() {
                return Err("a namespace is empty".to_owned());
            }
            let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'*' | b'?');
            // One pass for both questions (a fresh instance reads every entry of the settings).
            let (mut all_allowed, mut wild) = (true, false);
            for b in entry.bytes() {
                all_allowed &= allowed(b);
                wild |= b == b'*' || b == b'?';
            }
            if !all_allowed && let Some(bad) = entry.chars().find(|&c| !u8::try_from(c).is_ok_and(allowed)) {
                return Err(format!(
                    "namespace `{entry}`: character {bad:?} is not allowed (names are lower-case letters, digits and `-`; `*` and `?` are wildcards)"
                ));
            }
            if !wild {
                entries.swap(names, i);
                names += 1;
            }
        }
        Ok(Self { entries, globs: names })
    }

    fn matches(&self, namespace: &str) -> bool {
        let (names, globs) = self.entries.split_at(self.globs);
        names.iter().any(|n| n == namespace) || globs.iter().any(|g| segment_matches(g, namespace, true))
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

/// Whether `name` is the name part of a label key, or a non-empty label value, as Kubernetes
/// reads them (`validation.IsQualifiedName`, `IsValidLabelValue`): at most 63 bytes matching
/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`.
fn is_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    let end = |c: Option<&u8>| c.is_some_and(u8::is_ascii_alphanumeric);
    b.len() <= 63
        && end(b.first())
        && end(b.last())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Whether `name` is a DNS subdomain as Kubernetes reads one (`IsDNS1123Subdomain`): at most
/// 253 bytes, dot-separated parts matching `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns_subdomain(name: &str) -> bool {
    let end = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 253
        && name.split('.').all(|part| {
            let b = part.as_bytes();
            end(b.first())
                && end(b.last())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Why `key` is not a label key (`validation.IsQualifiedName`: a name, optionally after a DNS
/// subdomain and `/`), with the fix; `None` when it is one.
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = key.split_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    let why = if name.contains('/') {
        "it has more than one `/`"
    } else if prefix == Some("") {
        "its prefix before `/` is empty"
    } else if prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        "its prefix before `/` is not a DNS subdomain (at most 253 lower-case letters, digits, `-` and `.`, each \
         dot-separated part beginning and ending with a letter or digit)"
    } else if name.len() > 63 {
        "its name is longer than 63 characters"
    } else if !is_label_name(name) {
        "its name is not letters, digits, `-`, `_` and `.` beginning and ending with a letter or digit"
    } else {
        return None;
    };
    Some(format!(
        "key {key:?} is not a label key: {why}; write a name of at most 63 letters, digits, `-`, `_` and `.` \
         beginning and ending with a letter or digit, optionally after a DNS subdomain and `/` (`tier`, \
         `example.com/tier`)"
    ))
}

/// Why `value` is not a label value (`validation.IsValidLabelValue`: empty, or what
/// [`is_label_name`] accepts), with the fix; `None` when it is one.
pub fn label_value_error(value: &str) -> Option<String> {
    (!value.is_empty() && !is_label_name(value)).then(|| {
        format!(
            "value {value:?} is not a label value; write at most 63 letters, digits, `-`, `_` and `.` beginning \
             and ending with a letter or digit (`front-end`), or nothing"
        )
    })
}

impl LabelSelector {
    /// Whether the selector has no requirement (it matches every object).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.expressions.is_empty()
    }

    /// Whether the object's labels satisfy the selector (no labels = empty label set).
    pub fn matches(&self, labels: &Labels<'_>) -> bool {
        let get = |key: &str| labels.get(key);
        self.match_labels
            .iter()
            .all(|(k, v)| get(k).as_deref() == Some(v.as_str()))
            && self.expressions.iter().all(|e| match e {
                LabelExpression::In(k, values) => get(k).is_some_and(|v| values.iter().any(|x| *x == v)),
                LabelExpression::NotIn(k, values) => get(k).is_none_or(|v| values.iter().all(|x| *x != v)),
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
        let globs: Vec<_> = globs
            .iter()
            .enumerate()
            .map(|(i, g)| (normalise_image_glob(g).unwrap(), i))
            .collect();
        for (g, _) in &globs {
            for p in g.patterns() {
                check_glob_syntax(&p).unwrap();
            }
        }
        ImageMatcher::new(globs)
    }

    fn covers(glob: &str, image: &str) -> bool {
        matcher(&[glob])
            .policies_for(&ImageReference::parse(image).unwrap())
            .next()
            .is_some()
    }

    /// The table answers as the rule for every byte, and no byte of a multi-byte character is
    /// a glob byte.
    #[test]
    fn the_glob_byte_table_is_the_rule() {
        for b in 0..=u8::MAX {
            assert_eq!(is_glob_byte(b), glob_byte_rule(b), "byte {b}");
            assert!(b.is_ascii() || !is_glob_byte(b), "byte {b}");
        }
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
    fn a_port_written_with_leading_zeros_is_the_same_port() {
        // Every runtime pulls `r.io:0443/…` from `r.io:443`, which is `r.io`.
        assert!(covers("r.io/**", "r.io:0443/evil:1"));
        assert!(covers("r.io/**", "r.io:00443/evil:1"));
        assert!(covers("r.io:5000/**", "r.io:05000/evil:1"));
        assert!(covers("r.io:05000/**", "r.io:5000/evil:1"));
        assert!(covers("*.r.io:05000/**", "a.r.io:5000/evil:1"));
        assert!(covers("*.r.io:5000/**", "a.r.io:05000/evil:1"));
        assert!(covers("*.r.io/**", "a.r.io:0443/evil:1"));
        assert!(!covers("r.io:5000/**", "r.io:50000/evil:1"));
        assert!(!covers("r.io/**", "r.io:4430/evil:1"));
    }

    #[test]
    fn bad_globs_are_explained() {
        let check_image_glob =
            |g: &str| normalise_image_glob(g).and_then(|g| g.patterns().iter().try_for_each(|p| check_glob_syntax(p)));
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
            Just("a:v1"),
            Just("b:b"),
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
                    matcher(&[glob.as_str()]).policies_for(&reference).next().is_some(),
                    "policy-controller covers {} with {}, we do not", image, glob
                );
            }
        }
    }

    /// A `match` value that can match no object the policy reads is refused, naming its field:
    /// such an entry applied to nothing, and an `enforce` policy scoped by it to no image (the
    /// review's `resource: pod`, `Pods`, `group: core`, `version: V1`). policy-controller
    /// refuses resources outside its list too (`validResourceNames`).
    #[test]
    fn match_values_that_match_nothing_are_refused() {
        let rule = |group: Option<&str>, version: Option<&str>, resource: Option<&str>| {
            MatchRule::new(
                None,
                group.map(str::to_owned),
                version.map(str::to_owned),
                resource.map(str::to_owned),
                None,
            )
            .map(|_| ())
            .map_err(|(field, _)| field)
        };
        for resource in ["pod", "Pods", "pods/ephemeralcontainers", "deployment", "ingresses"] {
            assert_eq!(rule(None, None, Some(resource)), Err("resource"), "{resource:?}");
        }
        for group in ["core", "v1", "Apps", "apps/v1", "extensions"] {
            assert_eq!(rule(Some(group), None, None), Err("group"), "{group:?}");
        }
        for version in ["V1", "1", "v", "v01", "v1beta", "v1gamma1", "v1alpha01", "apps/v1"] {
            assert_eq!(rule(None, Some(version), None), Err("version"), "{version:?}");
        }
        for resource in MATCH_RESOURCES {
            assert_eq!(rule(None, None, Some(resource)), Ok(()));
        }
        for group in MATCH_GROUPS {
            assert_eq!(rule(Some(group), None, None), Ok(()));
        }
        for version in ["v1", "v2", "v1beta1", "v2alpha3", "v10", "*"] {
            assert_eq!(rule(None, Some(version), None), Ok(()), "{version:?}");
        }
        // Empty `version` and `resource` are left out, as policy-controller reads them, but given:
        // policy-controller compares them as `""`, so an exemption does not keep what they cover.
        let empty = MatchRule::new(None, None, Some(String::new()), Some(String::new()), None).unwrap();
        assert_eq!(empty.partial_resource(), Some(vec!["group", "version", "resource"]));
        assert!(empty.version.is_none() && empty.resource.is_none());
        let pod = Subject {
            namespace: "x",
            group: "",
            version: "v1",
            resource: "pods",
            labels: Labels::None,
            object: None,
        };
        assert!(empty.matches(&pod) && !empty.matches_narrowly(&pod));
        // A selector without requirements alone scopes nothing: refused, as an empty entry is.
        let (field, message) = MatchRule::new(None, None, None, None, Some(LabelSelector::default())).unwrap_err();
        assert_eq!(field, "selector");
        assert!(
            message.starts_with("the selector is empty, so it matches every object"),
            "{message}"
        );
        let mut labelled = LabelSelector::default();
        labelled.match_labels.insert("a".into(), "b".into());
        assert!(MatchRule::new(None, None, None, None, Some(labelled)).is_ok());
        assert!(MatchRule::new(Some(vec!["x".into()]), None, None, None, Some(LabelSelector::default())).is_ok());
        // Through the settings, in both readers: the path of the field.
        let settings = |entry: serde_json::Value| {
            serde_json::json!({"policies": [{"metadata": {"name": "prod"}, "spec": {
                "images": [{"glob": "r.io/**"}], "authorities": [{"static": {"action": "fail"}}],
                "match": [entry]}}]})
        };
        let refused = crate::tests::check_settings(&settings(serde_json::json!({"resource": "pod"}))).unwrap_err();
        assert!(
            refused.contains("policies[0].spec.match[0].resource: `pod`"),
            "{refused}"
        );
        let refused = crate::tests::check_settings(&settings(serde_json::json!({"group": "core"}))).unwrap_err();
        assert!(refused.contains("policies[0].spec.match[0].group: `core`"), "{refused}");
        let denied = crate::tests::run(
            &crate::tests::pod("default", &["r.io/app:1"]),
            &settings(serde_json::json!({"version": "V1"})),
            &mut crate::host::mock::MockHost::failing(),
        );
        assert_eq!(denied["accepted"], false, "{denied}");
        assert!(
            denied["message"]
                .as_str()
                .is_some_and(|m| m.contains("policies[0].spec.match[0].version: `V1`")),
            "{denied}"
        );
        let (_, message) = MatchRule::new(None, None, None, Some("pod".into()), None)
            .err()
            .unwrap();
        assert!(
            message.starts_with("`pod` is not a resource whose images this policy reads"),
            "{message}"
        );
        assert!(message.contains("pods, deployments"), "{message}");
    }

    /// Every way of writing the image `image` names, built here from its parts (not by
    /// [`Spellings`], which the narrow reading uses): Docker Hub's host names or none, with and
    /// without `library/`, the registry with and without `:443`, and the reference as it is
    /// pulled: `name@digest` or `name:tag@digest` for a reference with a digest (never its tag
    /// alone: the runtime pulls the digest), `name:tag` otherwise, and `name` for `latest`.
    fn spelled(image: &ImageReference) -> Vec<String> {
        let registry = image.registry();
        let repository = image.repository();
        let mut names = Vec::new();
        if registry == DOCKER_HUB {
            let mut paths = vec![repository.to_owned()];
            if let Some(short) = repository.strip_prefix("library/").filter(|r| !r.contains('/')) {
                paths.push(short.to_owned());
            }
            for path in &paths {
                names.push(path.clone());
                for host in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
                    names.push(format!("{host}/{path}"));
                    names.push(format!("{host}:443/{path}"));
                }
            }
        } else {
            names.push(format!("{registry}/{repository}"));
            if !registry.contains(':') {
                names.push(format!("{registry}:443/{repository}"));
            }
        }
        let mut texts = Vec::new();
        for name in names {
            match (image.tag(), image.digest()) {
                (tag, Some(digest)) => {
                    texts.push(format!("{name}@{digest}"));
                    if let Some(tag) = tag {
                        texts.push(format!("{name}:{tag}@{digest}"));
                    }
                }
                (Some(tag), None) => {
                    texts.push(format!("{name}:{tag}"));
                    if tag == "latest" {
                        texts.push(name.clone());
                    }
                }
                (None, None) => texts.push(name.clone()),
            }
        }
        texts
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// What an exemption keeps from `noMatchPolicy` (`covers_narrowly`) is what
        /// policy-controller covers, up to the spelling of the image: covered narrowly, some
        /// spelling of the image is covered by policy-controller's `glob.Match`; and whatever
        /// policy-controller covers is covered narrowly (an exemption keeps what it keeps there).
        #[test]
        fn narrow_coverage_is_policy_controllers_up_to_spelling(glob in pc_glob(), image in pc_image()) {
            prop_assume!(normalise_image_glob(&glob).is_ok());
            let reference = ImageReference::parse(&image).unwrap();
            let narrow = matcher(&[glob.as_str()]).covers_narrowly(0, &reference);
            if narrow {
                // The glob's spellings too: its registry in lower case, Docker Hub's written out.
                let normal = normalise_image_glob(&glob).unwrap().glob.as_str().to_owned();
                let spellings = spelled(&reference);
                prop_assert!(
                    [glob.as_str(), normal.as_str()].iter().any(|g| std::iter::once(&image)
                        .chain(&spellings)
                        .any(|s| policy_controller_matches(g, s))),
                    "{} covers {} narrowly, policy-controller none of {:?}", glob, image, spellings
                );
            }
            if policy_controller_matches(&glob, &image) {
                prop_assert!(narrow, "policy-controller covers {} with {}, not narrowly", image, glob);
            }
        }
    }

    /// Globs whose literal part may be the whole text, or whose last literal segment may be read
    /// as `name:TAG` (by digest), keep their verdicts through the index.
    #[test]
    fn anchors_at_the_end_of_the_text() {
        // The matcher has always required a text to begin with the literal prefix of the glob
        // (`r.io/app:v1/`), though `**` matches zero segments: kept.
        assert!(!covers("r.io/app:v1/**", "r.io/app:v1"));
        assert!(covers("r.io/app:v1/**", &format!("r.io/app@{D}")));
        assert!(!covers("r.io/app:v1/**", "r.io/app:v2"));
        assert!(covers("r.io:5000/**", "r.io:5000/app"));
        assert!(covers(
            "127.0.0.1:5000/team3/**",
            &format!("127.0.0.1:5000/team3/app@{D}")
        ));
        assert!(!covers("127.0.0.1:5000/team3/**", "127.0.0.1:5000/team4/app"));
        assert!(covers("r.io/a*", "r.io/ab:v1"));
    }

    #[test]
    fn policies_for_reports_each_owner_once() {
        let m = matcher(&["myregistry.com/**", "**", "myregistry.com/app"]);
        let hits: Vec<usize> = m
            .policies_for(&ImageReference::parse("myregistry.com/app:v1").unwrap())
            .collect();
        assert_eq!(hits, vec![0, 1, 2]);
        // `**` given twice by one policy, owners out of order: each once, ascending.
        let everything = || normalise_image_glob("**").unwrap();
        let m = ImageMatcher::new(vec![(everything(), 2), (everything(), 0), (everything(), 2)]);
        let hits: Vec<usize> = m.policies_for(&ImageReference::parse("r.io/app:v1").unwrap()).collect();
        assert_eq!(hits, vec![0, 2]);
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
        assert_eq!(
            MatchRule::new(Some(vec!["Prod".into()]), None, None, None, None)
                .map(|_| ())
                .map_err(|(f, _)| f),
            Err("namespaces")
        );
    }

    proptest! {
        /// A namespace list covers a namespace when one of its entries does: a name by equality,
        /// an entry with `*` or `?` as a glob, whatever the order of names and globs.
        #[test]
        fn a_namespace_list_covers_as_one_of_its_entries(
            entries in proptest::collection::vec("[ab*?-]{1,4}", 1..6),
            namespace in "[ab-]{0,4}",
        ) {
            let matcher = NamespaceMatcher::new(entries.clone()).unwrap();
            let one = |e: &String| {
                if e.contains(['*', '?']) { segment_matches(e, &namespace, true) } else { *e == namespace }
            };
            prop_assert_eq!(matcher.matches(&namespace), entries.iter().any(one));
        }
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
        let labels = r#"{"tier":"prod"}"#;
        let exempt = r#"{"tier":"prod","exempt":"true"}"#;
        let strings: BTreeMap<String, String> = serde_json::from_str(exempt).unwrap();
        let pod = |labels| Subject {
            namespace: "x",
            group: "",
            version: "v1",
            resource: "pods",
            labels,
            object: None,
        };
        assert!(rule.matches(&pod(Labels::Json(labels))));
        assert!(!rule.matches(&pod(Labels::Json(exempt))));
        assert!(!rule.matches(&pod(Labels::Strings(&strings))));
        assert!(!rule.matches(&pod(Labels::None)));
        let deployment = Subject {
            namespace: "x",
            group: "apps",
            version: "v1",
            resource: "deployments",
            labels: Labels::Json(labels),
            object: None,
        };
        assert!(!rule.matches(&deployment));
    }

    /// policy-controller's `GetMatchingPolicies` (`pkg/apis/config/image_policies.go`),
    /// transcribed as the reference: the object's kind looked up in `kindResourceMap` (the zero
    /// value for a kind it lacks or misspells), then `Resource` and `Group` compared exactly and
    /// `Version` to the table's or `*`. `None` fields are Go's zero value `""`.
    fn policy_controller_applies(entry: (Option<&str>, Option<&str>, Option<&str>), kind: &str) -> bool {
        let table = [
            ("Deployment", ("apps", "v1", "deployments")),
            ("ReplicatSet", ("apps", "v1", "replicasets")),
            ("CronJob", ("batch", "v1", "cronjobs")),
            ("Job", ("batch", "v1", "jobs")),
            ("DaemonSet", ("", "v1", "daemonsets")),
            ("StatefulSet", ("apps", "v1", "statefulsets")),
            ("Pod", ("", "v1", "pods")),
        ];
        let (group, version, resource) = table
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(("", "", ""), |(_, gvr)| *gvr);
        let (want_group, want_version, want_resource) =
            (entry.0.unwrap_or(""), entry.1.unwrap_or(""), entry.2.unwrap_or(""));
        want_resource == resource && (want_version == version || want_version == "*") && want_group == group
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// An exemption's entry that gives any of `group`, `version` and `resource` covers an
        /// object narrowly only where policy-controller's rule applies it too (and this module's
        /// own reading does): never more. The entry names the object's own resource half the
        /// time, so that most cases reach the comparison.
        #[test]
        fn a_narrow_entry_matches_no_more_than_policy_controller(
            group in proptest::option::weighted(0.9, proptest::sample::select(vec!["", "apps", "batch", "*"])),
            version in proptest::option::weighted(0.9, proptest::sample::select(vec!["v1", "v1beta1", "v2", "*", ""])),
            resource in proptest::option::weighted(0.9, (0..3u8, proptest::sample::select(MATCH_RESOURCES.to_vec()))),
            kind in 0..8usize,
            request_version in proptest::sample::select(vec!["v1", "v1beta1"]),
            // A `verify_images` key (Gatekeeper) may carry any group with a resource.
            other_group in proptest::option::weighted(0.2, proptest::sample::select(vec!["", "apps", "batch", "extensions"])),
        ) {
            let kinds = [
                ("Pod", "", "pods"),
                ("Deployment", "apps", "deployments"),
                ("ReplicaSet", "apps", "replicasets"),
                ("StatefulSet", "apps", "statefulsets"),
                ("DaemonSet", "apps", "daemonsets"),
                ("Job", "batch", "jobs"),
                ("CronJob", "batch", "cronjobs"),
                ("ReplicationController", "", "replicationcontrollers"),
            ];
            let (kind, subject_group, subject_resource) = kinds[kind];
            let subject_group = other_group.unwrap_or(subject_group);
            // The object's own resource half the time, an empty one (left out here, `""` there)
            // now and then.
            let resource = resource.map(|(pick, other)| match pick {
                0 => "",
                1 => subject_resource,
                _ => other,
            });
            let rule = MatchRule::new(
                None,
                group.map(str::to_owned),
                version.map(str::to_owned),
                resource.map(str::to_owned),
                None,
            )
            .unwrap();
            let subject = Subject {
                namespace: "x",
                group: subject_group,
                version: request_version,
                resource: subject_resource,
                labels: Labels::None,
                object: None,
            };
            // An entry without any of the three is refused by the settings unless it has
            // `namespaces` or a `selector` (this module's extension, read as `matches`); an empty
            // field is given, and compared as `""` by the reference.
            if rule.matches_narrowly(&subject) && (group, version, resource) != (None, None, None) {
                prop_assert!(policy_controller_applies((group, version, resource), kind));
                prop_assert!(rule.matches(&subject));
            }
        }
    }

    #[test]
    fn an_explicit_core_group_covers_daemonsets_as_in_policy_controller() {
        // Found by an audit: policy-controller's kind table puts DaemonSets in the core group, so
        // `group: ""` applies to them there; here they are `apps`, and the policy did not apply.
        let rule = |group: Option<&str>, resource: &str| {
            MatchRule::new(
                None,
                group.map(str::to_owned),
                Some("v1".into()),
                Some(resource.into()),
                None,
            )
            .unwrap()
        };
        let subject = |group, resource| Subject {
            namespace: "x",
            group,
            version: "v1",
            resource,
            labels: Labels::None,
            object: None,
        };
        let daemonset = subject("apps", "daemonsets");
        assert!(rule(Some(""), "daemonsets").matches(&daemonset));
        assert!(rule(Some("apps"), "daemonsets").matches(&daemonset));
        assert!(rule(None, "daemonsets").matches(&daemonset));
        // Only DaemonSets: the core group names no other `apps` resource.
        assert!(!rule(Some(""), "deployments").matches(&subject("apps", "deployments")));
        assert!(!rule(Some(""), "daemonsets").matches(&subject("extensions", "daemonsets")));
    }

    /// The matcher before the anchor index and the tails: the reference of the tests below.
    use super::reference_impl as before;

    /// The reading of a glob in normal form as it was before its passes were fused (the
    /// reference of `an_image_glob_after_its_registry_is_the_glob_parsed`).
    mod passes {
        use super::super::*;
        use crate::reference::normal_registry_len;

        pub fn normal_as_written(glob: &str) -> Option<ImageGlob> {
            if glob.starts_with('[') {
                return None;
            }
            let slash = normal_registry_len(glob)?;
            let normal = slash < glob.len()
                && &glob[..slash] != DOCKER_HUB
                && glob.as_bytes()[slash..].iter().all(|&b| is_glob_byte(b));
            normal.then(|| from_normal(glob.to_owned())).flatten()
        }

        pub fn from_normal(full: String) -> Option<ImageGlob> {
            let last = &full[full.rfind('/').map_or(0, |i| i + 1)..];
            let tail = if last == "**" || last.bytes().any(|b| b == b':' || b == b'@') || last.ends_with('*') {
                Tail::AsWritten
            } else if last.contains('*') {
                Tail::AsWrittenTagOrDigest
            } else {
                Tail::TagOrDigest
            };
            let glob = PathGlob::parse_owned(full).ok()?;
            let bare_prefix = glob.literal_before_final_double_star();
            Some(ImageGlob {
                glob,
                tail,
                bare_prefix,
            })
        }
    }

    /// A digest for globs and images.
    const GLOB_DIGEST: &str = "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Globs of every shape the normalisation and the index treat apart: `**`, wildcard
    /// registries, ports, `:443`, Docker Hub names and `library/`, upper-case registries, tags
    /// and digests, wildcards in the last segment.
    fn any_glob() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            Just("**"),
            Just("*"),
            Just("a"),
            Just("b"),
            Just("ab"),
            Just("a*"),
            Just("*b"),
            Just("a*b"),
            Just("a-b"),
            Just("library"),
            Just("team3"),
            Just("r.io"),
            Just("R.io"),
            Just("R.IO"),
            Just("r.*"),
            Just("*.io"),
            Just("r.io:443"),
            Just("R.io:443"),
            Just("r.io:*"),
            Just("r.io:5000"),
            Just("127.0.0.1:5000"),
            Just("localhost"),
            Just("localhost:443"),
            Just("*:443"),
            Just("docker.io"),
            Just("index.docker.io"),
            Just("registry-1.docker.io"),
            Just("a:*"),
            Just("a:v*"),
            Just("a:v1"),
            Just("*:v1"),
            Just("b:latest"),
            Just("a@*"),
            Just("a@sha256:*"),
            Just("a*@sha256:*"),
            Just("a:v1@sha256:*"),
            Just("*@*"),
            Just(GLOB_DIGEST),
        ];
        prop_oneof![
            1 => Just("**".to_owned()),
            1 => Just("*/*".to_owned()),
            1 => Just("*".to_owned()),
            20 => proptest::collection::vec(segment, 1..5).prop_map(|s| s.join("/")),
            // A literal segment, maybe with a tag, then `**`: the anchor may be the whole text.
            4 => (
                prop_oneof![Just("r.io"), Just("R.io:443"), Just("127.0.0.1:5000"), Just("docker.io"), Just("a")],
                prop_oneof![Just("a:v1"), Just("b:latest"), Just("a"), Just("library"), Just(GLOB_DIGEST)],
            )
                .prop_map(|(registry, literal)| format!("{registry}/{literal}/**")),
        ]
    }

    /// Valid references, with and without registry, tag and digest.
    fn any_image() -> impl Strategy<Value = ImageReference> {
        let registry = prop_oneof![
            Just(""),
            Just("docker.io/"),
            Just("index.docker.io/"),
            Just("registry-1.docker.io/"),
            Just("docker.io/library/"),
            Just("r.io/"),
            Just("R.io/"),
            Just("r.io:443/"),
            Just("r.io:5000/"),
            Just("127.0.0.1:5000/"),
            Just("localhost/"),
            Just("localhost:443/"),
        ];
        let segment = prop_oneof![
            Just("a"),
            Just("b"),
            Just("ab"),
            Just("a-b"),
            Just("library"),
            Just("team3"),
            Just("v1")
        ];
        let tag = prop_oneof![Just(""), Just(":v1"), Just(":latest"), Just(":b"), Just(":v2")];
        let digest = prop_oneof![Just(String::new()), Just(format!("@{D}"))];
        (registry, proptest::collection::vec(segment, 1..4), tag, digest)
            .prop_filter_map("a valid reference", |(r, path, t, d)| {
                ImageReference::parse(&format!("{r}{}{t}{d}", path.join("/"))).ok()
            })
    }

    /// An image made from `glob`: each `*` filled with `fill`, each `**` replaced by `count`
    /// segments, then `suffix` applied: none, `@digest`, the last tag replaced by a digest, or
    /// `:v1`. `None` when that is not a valid reference.
    fn image_from_glob(glob: &str, fill: &str, count: usize, suffix: u8) -> Option<ImageReference> {
        let mut segments = Vec::new();
        for segment in glob.split('/') {
            if segment == "**" {
                segments.extend(["a", "b", "v1"].iter().take(count).map(|s| (*s).to_owned()));
            } else {
                segments.push(segment.replace('*', fill));
            }
        }
        let mut text = segments.join("/");
        match suffix {
            1 => text.push_str(&format!("@{D}")),
            2 => {
                let last = text.rfind('/').map_or(0, |i| i + 1);
                if let Some(colon) = text[last..].rfind(':') {
                    text.truncate(last + colon);
                }
                text.push_str(&format!("@{D}"));
            }
            3 => text.push_str(":v1"),
            _ => {}
        }
        ImageReference::parse(&text).ok()
    }

    fn policies_and_images() -> impl Strategy<Value = (Vec<Vec<String>>, Vec<Option<ImageReference>>)> {
        proptest::collection::vec(proptest::collection::vec(any_glob(), 1..5), 1..9).prop_flat_map(|policies| {
            let globs: Vec<String> = policies.iter().flatten().cloned().collect();
            let fill = prop_oneof![Just(""), Just("a"), Just("b"), Just("v1"), Just("io"), Just("x.io")];
            let derived = (proptest::sample::select(globs), fill, 0..3usize, 0..4u8)
                .prop_map(|(glob, fill, count, suffix)| image_from_glob(&glob, fill, count, suffix));
            let images = proptest::collection::vec(prop_oneof![any_image().prop_map(Some), derived], 1..5);
            (Just(policies), images)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The normalisation accepts and refuses the same globs, with the same messages, and
        /// stands for the same patterns (so the settings' syntax check sees the same texts).
        #[test]
        fn normalisation_is_unchanged(glob in prop_oneof![
            any_glob(),
            "[a-zA-Z0-9.:@*/ _?-]{0,12}",
        ]) {
            let now = normalise_image_glob(&glob).map(|g| g.patterns());
            let then = before::normalise_image_glob(&glob);
            prop_assert_eq!(&now, &then, "glob {:?}", glob);
            if let Ok(patterns) = now {
                for pattern in patterns {
                    prop_assert_eq!(check_glob_syntax(&pattern), Ok(()));
                }
            }
        }

        /// The glob written in normal form is read in one pass after its registry (its bytes
        /// checked, its segments and their marks read, together) into the very [`ImageGlob`]
        /// that the passes it replaced gave: the registry's, the bytes', the last segment's and
        /// the parse's. And the general path's `from_normal` reads the tail as they did.
        #[test]
        fn an_image_glob_after_its_registry_is_the_glob_parsed(glob in prop_oneof![
            any_glob(),
            "(r\\.io|127\\.0\\.0\\.1:5000|\\[::1\\]:5000|docker\\.io)/[a-c:@*/.é ?-]{0,12}",
            "[a-zA-Z0-9.:@*/ _?-]{0,12}",
        ]) {
            prop_assert_eq!(GlobReader::default().normal_as_written(&glob), passes::normal_as_written(&glob), "glob {:?}", glob);
            prop_assert_eq!(ImageGlob::from_normal(glob.clone()), passes::from_normal(glob.clone()), "glob {:?}", glob);
        }

        /// One reader reads a list of globs (registries written alike, or nearly: longer, with
        /// a port, upper case, Docker Hub's, none) each as a reader of its own does.
        #[test]
        fn a_reader_reads_each_glob_as_alone(globs in proptest::collection::vec(prop_oneof![
            any_glob(),
            (
                prop_oneof![Just("r.io"), Just("r.io.x"), Just("r.iox"), Just("r.io:5000"), Just("R.io"),
                            Just("r.i"), Just("docker.io"), Just("a"), Just("r.io:443")],
                prop_oneof![Just("/a/**"), Just("/b*"), Just(""), Just("/"), Just("/a:v1"), Just("/é")],
            )
                .prop_map(|(registry, rest)| format!("{registry}{rest}")),
        ], 1..8)) {
            let mut reader = GlobReader::default();
            for glob in &globs {
                prop_assert_eq!(reader.read(glob), normalise_image_glob(glob), "glob {:?} in {:?}", glob, globs);
            }
        }

        /// The normalised reference's texts, borrowed, are the ones [`Spellings`] writes for the
        /// reference's own spelling, in the same order.
        #[test]
        fn the_canonical_texts_are_the_one_spelling_written(
            name in "(r\\.io|docker\\.io|r\\.io:5000)/[a-c]{1,3}(/[a-c]{1,2})?",
            tag in proptest::option::of("[a-c0-9]{1,4}"),
            digest in proptest::option::of("[0-9a-f]{64}"),
        ) {
            let written = format!(
                "{name}{}{}",
                tag.map(|t| format!(":{t}")).unwrap_or_default(),
                digest.map(|d| format!("@sha256:{d}")).unwrap_or_default()
            );
            let image = ImageReference::parse(&written).unwrap();
            let mut untagged = String::new();
            let canonical = Canonical::of(&image, &mut untagged);
            let mut one = Spellings { buf: Vec::new(), spans: Vec::new() };
            one.push(&image, image.registry(), "", image.repository());
            let texts: Vec<(&[u8], bool)> = one.spans.iter().map(|&(start, end, some_tag)| (&one.buf[start..end], some_tag)).collect();
            prop_assert_eq!(&canonical.texts[..canonical.len], &texts[..]);
        }

        /// For 1 to 8 policies of 1 to 4 globs, the same policies cover each image (random, or
        /// made from one of the globs so that globs and images meet).
        #[test]
        fn policies_for_is_unchanged((policies, images) in policies_and_images()) {
            let mut now = Vec::new();
            let mut then = Vec::new();
            for (owner, globs) in policies.iter().enumerate() {
                for glob in globs {
                    if let Ok(normalised) = normalise_image_glob(glob) {
                        now.push((normalised, owner));
                    }
                    if let Ok(patterns) = before::normalise_image_glob(glob) {
                        then.extend(patterns.into_iter().map(|p| (p, owner)));
                    }
                }
            }
            let now = ImageMatcher::new(now);
            let then = before::ImageMatcher::new(then);
            for image in images.iter().flatten() {
                prop_assert_eq!(now.policies_for(image).collect::<Vec<_>>(), then.policies_for(image), "{:?} {:?}", policies, image);
            }
        }
    }

    /// Kubernetes' label key and value rules, as regular expressions
    /// (`k8s.io/apimachinery/pkg/util/validation`: `IsQualifiedName`, `IsDNS1123Subdomain`,
    /// `IsValidLabelValue`, whose Go regexps match the whole text, `$` being its end), the
    /// reference of [`label_key_error`] and [`label_value_error`].
    mod kubernetes_labels {
        use super::*;
        use std::sync::LazyLock;

        static NAME: LazyLock<regex::Regex> =
            LazyLock::new(|| regex::Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").unwrap());
        static DNS_SUBDOMAIN: LazyLock<regex::Regex> = LazyLock::new(|| {
            regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").unwrap()
        });
        static VALUE: LazyLock<regex::Regex> =
            LazyLock::new(|| regex::Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").unwrap());

        /// `IsQualifiedName`: `strings.Split(value, "/")`, one part (the name) or two (prefix
        /// and name); a non-empty prefix that is a DNS subdomain of at most 253 bytes; a name
        /// of 1 to 63 bytes.
        fn is_qualified_name(key: &str) -> bool {
            let parts: Vec<&str> = key.split('/').collect();
            let (prefix, name) = match parts[..] {
                [name] => (None, name),
                [prefix, name] => (Some(prefix), name),
                _ => return false,
            };
            if let Some(p) = prefix
                && (p.is_empty() || p.len() > 253 || !DNS_SUBDOMAIN.is_match(p))
            {
                return false;
            }
            !name.is_empty() && name.len() <= 63 && NAME.is_match(name)
        }

        fn is_valid_label_value(value: &str) -> bool {
            value.len() <= 63 && VALUE.is_match(value)
        }

        /// Texts near every edge of the rules: the characters allowed and some not (space,
        /// upper case in a prefix, non-ASCII, a newline at the end), `/` and `.` anywhere, and
        /// lengths around 63 and 253.
        fn near(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    8 => prop::sample::select(&['a', 'z', 'A', 'Z', '0', '9', '-', '_', '.'][..]),
                    1 => prop::sample::select(&['/', ' ', '\n', 'é', '!', ':'][..]),
                ],
                len,
            )
            .prop_map(|chars| chars.into_iter().collect())
        }

        fn key() -> impl Strategy<Value = String> {
            let lower = || "[a-z0-9]([-a-z0-9.]{0,6}[a-z0-9])?";
            prop_oneof![
                near(0..=12),
                (near(0..=10), near(0..=10)).prop_map(|(p, n)| format!("{p}/{n}")),
                (lower(), near(0..=12)).prop_map(|(p, n)| format!("{p}/{n}")),
                (near(60..=66), prop::bool::ANY).prop_map(|(n, prefixed)| if prefixed {
                    format!("x.io/{n}")
                } else {
                    n
                }),
                (0usize..8, "[a-z]{1,3}").prop_map(|(extra, name)| format!("{}.io/{name}", "a".repeat(246 + extra))),
                (lower(), lower(), lower()).prop_map(|(a, b, c)| format!("{a}/{b}/{c}")),
                (lower(), long_name()).prop_map(|(p, n)| format!("{p}/{n}")),
                long_name(),
            ]
        }

        /// Names of allowed characters only, around 63 bytes.
        fn long_name() -> &'static str {
            "[a-zA-Z0-9.]([-a-zA-Z0-9_.]{59,63})[a-zA-Z0-9_]"
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![near(0..=12), near(60..=66), long_name()]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(8192))]

            #[test]
            fn label_keys_are_refused_exactly_as_kubernetes_refuses_them(key in key()) {
                prop_assert_eq!(label_key_error(&key).is_none(), is_qualified_name(&key), "{:?}", key);
            }

            #[test]
            fn label_values_are_refused_exactly_as_kubernetes_refuses_them(value in value()) {
                prop_assert_eq!(label_value_error(&value).is_none(), is_valid_label_value(&value), "{:?}", value);
            }
        }

        #[test]
        fn the_edges() {
            let name63 = "n".repeat(63);
            let prefix253 = format!("{}.io", "p".repeat(250));
            for (key, ok) in [
                ("a", true),
                ("", false),
                ("/a", false),
                ("a/", false),
                ("a/b/c", false),
                ("a.b-c/D_e.F", true),
                ("A.io/x", false),
                ("a..b/x", false),
                ("-a/x", false),
                ("a_b/x", false),
                ("x\n", false),
                (name63.as_str(), true),
                (&format!("{name63}n"), false),
                (&format!("{prefix253}/{name63}"), true),
                (&format!("p{prefix253}/x"), false),
            ] {
                assert_eq!(label_key_error(key).is_none(), ok, "{key:?}");
                assert_eq!(is_qualified_name(key), ok, "reference: {key:?}");
            }
            for (value, ok) in [
                ("", true),
                ("a", true),
                ("a b", false),
                ("-a", false),
                ("a.", false),
                ("é", false),
            ] {
                assert_eq!(label_value_error(value).is_none(), ok, "{value:?}");
                assert_eq!(is_valid_label_value(value), ok, "reference: {value:?}");
            }
            assert!(label_value_error(&name63).is_none());
            assert!(label_value_error(&format!("{name63}n")).is_some());
        }
    }
}
