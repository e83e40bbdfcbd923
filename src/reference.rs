//! Container image references: parsing and normalisation.
//!
//! Every image is normalised before it is matched or verified, the way the container runtime will
//! resolve it: no registry means `docker.io`, `index.docker.io` is `docker.io`, a one-segment
//! Docker Hub name lives under `library/`, no tag (nor digest) means `:latest`, and the registry
//! host is lower-cased without the default port `:443`. Matching the
//! normalised form is what stops a crafted name from slipping past a glob: `nginx`,
//! `docker.io/nginx` and `index.docker.io/library/nginx:latest` are one image to us, as to the
//! kubelet.
//!
//! The grammar is the one of `distribution/reference`; anything outside it is refused, since a
//! reference we cannot read is a reference we cannot vouch for.

use std::borrow::Cow;
use std::fmt;

use crate::ascii;

/// The registry Docker Hub images live in, as written by the policy's users.
pub const DOCKER_HUB: &str = "docker.io";
pub(crate) const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalised image reference, kept as its one text `registry/repository[:tag][@digest]`
/// (what globs are matched against, and in most cases what the host is asked to verify) with
/// where each part ends: one allocation per reference, read for every image of every request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageReference {
    text: String,
    /// Where the registry ends (the `/` after it).
    registry_end: usize,
    /// Where the repository ends (the `:` before the tag, the `@` before the digest, or the end).
    repository_end: usize,
    /// Where the tag ends (`repository_end` when there is no tag).
    tag_end: usize,
}

/// Why an image reference was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("the image reference is empty")]
    Empty,
    #[error("the repository name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error("invalid registry host `{0}`")]
    InvalidRegistry(String),
    #[error(
        "registry host `{0}` is told from a Docker Hub namespace only by its upper-case letters, which every lower-case spelling loses: use a host name with a dot or a port"
    )]
    AmbiguousRegistry(String),
    #[error(
        "invalid repository path component `{0}` (lower-case letters, digits and single separators `.`, `_`, `__`, `-` only)"
    )]
    InvalidPathComponent(String),
    #[error("invalid tag `{0}` (letters, digits, `_`, `.`, `-`; at most 128 characters)")]
    InvalidTag(String),
    #[error("invalid digest `{0}` (expected sha256: followed by 64 lower-case hex digits)")]
    InvalidDigest(String),
}

impl ImageReference {
    /// Parses and normalises an image reference as written in a workload.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match ascii::split_once(input, b'@') {
            Some((rest, digest)) => {
                check_digest(digest)?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/', so a registry port is not a tag.
        let last_slash = ascii::rfind(rest, b'/').map_or(0, |i| i + 1);
        let (name, tag) = match ascii::rfind(&rest[last_slash..], b':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                check_tag(tag)?;
                (&rest[..last_slash + i], Some(tag))
            }
            None => (rest, None),
        };
        // A registry written in normal form (nearly all) is found in one pass and copied as it
        // is: it has a `.` or `:`, so it is the registry `split_registry` would take, and its own
        // normal form. Any other name is split and normalised.
        let normalised;
        let (registry, path) = match normal_registry_len(name) {
            Some(end) if name.as_bytes().get(end) == Some(&b'/') => (&name[..end], &name[end + 1..]),
            _ => match split_registry(name) {
                (None, path) => (DOCKER_HUB, path),
                (registry, path) => {
                    normalised = normalise_registry(registry)?;
                    (normalised.as_str(), path)
                }
            },
        };
        if path.len() > MAX_NAME_LEN || name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong);
        }
        for component in ascii::split(path, b'/') {
            check_path_component(component)?;
        }
        let library = if registry == DOCKER_HUB && !ascii::contains(path, b'/') {
            "library/"
        } else {
            ""
        };
        // Docker applies the limit to the normalised name (found by the fuzzer: a name within it
        // as written, beyond it with `docker.io/library/`, did not read back).
        if registry.len() + 1 + library.len() + path.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong);
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest"),
            (tag, _) => tag,
        };
        let mut text = String::with_capacity(
            registry.len()
                + 1
                + library.len()
                + path.len()
                + tag.map_or(0, |t| 1 + t.len())
                + digest.map_or(0, |d| 1 + d.len()),
        );
        for part in [registry, "/", library, path] {
            text.push_str(part);
        }
        let repository_end = text.len();
        if let Some(tag) = tag {
            text.push(':');
            text.push_str(tag);
        }
        let tag_end = text.len();
        if let Some(digest) = digest {
            text.push('@');
            text.push_str(digest);
        }
        Ok(Self {
            text,
            registry_end: registry.len(),
            repository_end,
            tag_end,
        })
    }

    /// Registry host (and port), lower-cased, Docker Hub aliases folded into `docker.io`.
    pub fn registry(&self) -> &str {
        &self.text[..self.registry_end]
    }

    /// Repository path inside the registry.
    pub fn repository(&self) -> &str {
        &self.text[self.registry_end + 1..self.repository_end]
    }

    /// Tag, if the reference has one (`latest` when neither tag nor digest was written).
    pub fn tag(&self) -> Option<&str> {
        (self.tag_end > self.repository_end).then(|| &self.text[self.repository_end + 1..self.tag_end])
    }

    /// Digest written in the reference, if any.
    pub fn digest(&self) -> Option<&str> {
        (self.text.len() > self.tag_end).then(|| &self.text[self.tag_end + 1..])
    }

    /// The whole normalised text, `registry/repository[:tag][@digest]` (as [`fmt::Display`]).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `registry/repository`.
    pub fn name(&self) -> &str {
        &self.text[..self.repository_end]
    }

    /// `registry/repository[:tag]`: the text without its digest.
    pub fn tagged(&self) -> &str {
        &self.text[..self.tag_end]
    }

    /// The verification target handed to the host: `registry/repo@digest` when the workload
    /// names a digest (the digest is what will run), else `registry/repo:tag`. Borrowed unless
    /// the reference has both a tag and a digest.
    pub fn verification_target(&self) -> Cow<'_, str> {
        match (self.tag(), self.digest()) {
            (Some(_), Some(digest)) => {
                let name = self.name();
                let mut target = String::with_capacity(name.len() + 1 + digest.len());
                for part in [name, "@", digest] {
                    target.push_str(part);
                }
                Cow::Owned(target)
            }
            _ => Cow::Borrowed(&self.text),
        }
    }
}

/// The fully qualified form matched against globs: `registry/repo[:tag][@digest]`.
impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits `name` into its registry (if the first component names one) and repository path,
/// with Docker's rule: the first component is a registry when it contains `.` or `:`, is
/// `localhost`, or has upper-case letters.
pub(crate) fn split_registry(name: &str) -> (Option<&str>, &str) {
    match ascii::split_once(name, b'/') {
        Some((first, rest)) if looks_like_registry(first) => (Some(first), rest),
        _ => (None, name),
    }
}

pub(crate) fn looks_like_registry(component: &str) -> bool {
    has_dot_or_colon(component) || component == "localhost" || component.bytes().any(|b| b.is_ascii_uppercase())
}

/// Lower-cases a registry host, writes its port without leading zeros, drops the default HTTPS
/// port `:443` and folds Docker Hub's aliases; `None` means Docker Hub. Host names are
/// case-insensitive, a port is a number (`r.io:0443` is port 443 to every runtime: Go's and
/// Rust's readers of `host:port` take the digits as a number), and every container runtime
/// reaches `host` and `host:443` alike, so each is one registry to us.
pub(crate) fn normalise_registry(registry: Option<&str>) -> Result<String, ReferenceError> {
    let Some(registry) = registry else {
        return Ok(DOCKER_HUB.to_owned());
    };
    let mut lower = registry.to_ascii_lowercase();
    if !valid_registry(&lower) {
        return Err(ReferenceError::InvalidRegistry(registry.to_owned()));
    }
    // `UPPER/app` names the host `upper` to Docker, but `upper/app` is a Docker Hub namespace:
    // the lower-cased form would be verified as another image.
    if !(has_dot_or_colon(&lower) || lower == "localhost") {
        return Err(ReferenceError::AmbiguousRegistry(registry.to_owned()));
    }
    drop_port_zeros(&mut lower);
    // `myhost:443` keeps its port: without it, `myhost/app` would be a Docker Hub name.
    if let Some(host) = lower.strip_suffix(":443")
        && (has_dot_or_colon(host) || host == "localhost")
    {
        lower = host.to_owned();
    }
    if DOCKER_HUB_ALIASES.contains(&lower.as_str()) {
        return Ok(DOCKER_HUB.to_owned());
    }
    Ok(lower)
}

/// Whether `registry` is in normal form ([`normal_registry_len`]).
#[cfg(test)]
fn is_normal_registry(registry: &str) -> bool {
    normal_registry_len(registry) == Some(registry.len())
}

/// The length of the registry in normal form that `text` begins with, ended by its first `/` or
/// by its end; `None` when that registry is not in normal form. In normal form means that
/// [`normalise_registry`] leaves it as it is: lower case, a `.` or `:` (not a Docker Hub
/// namespace), no `:443` to drop, not a Docker Hub alias, a valid host; a glob written so skips
/// the copy (property test `a_registry_in_normal_form_is_its_own_normal_form`). One pass over
/// the host and port (every glob of the settings begins with a registry, read again by each
/// fresh instance); an IPv6 host takes [`is_normal_registry_in_parts`]. Property test
/// `the_one_pass_normal_registry_is_the_one_in_parts`.
pub(crate) fn normal_registry_len(text: &str) -> Option<usize> {
    normal_registry(text).map(|(len, _)| len)
}

/// [`normal_registry_len`], and whether the registry has a `:` (an IPv6 host always has).
pub(crate) fn normal_registry(text: &str) -> Option<(usize, bool)> {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'[') {
        let end = ascii::find(text, b'/').unwrap_or(text.len());
        return is_normal_registry_in_parts(&text[..end]).then_some((end, true));
    }
    // The byte before (a `.` before the first), whether a `.` or `:` was seen, where the port
    // begins.
    let (mut previous, mut dot_or_colon, mut port) = (b'.', false, None);
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'/' {
            end = i;
            break;
        }
        if port.is_some() {
            if !b.is_ascii_digit() {
                return None;
            }
            continue;
        }
        match b {
            // An empty label, or one ending with `-`.
            b'.' | b':' if previous == b'.' || previous == b'-' => return None,
            b'.' => dot_or_colon = true,
            b':' => {
                dot_or_colon = true;
                port = Some(i + 1);
            }
            // A label beginning with `-`.
            b'-' if previous == b'.' => return None,
            b'-' | b'a'..=b'z' | b'0'..=b'9' => {}
            // Upper case (not normal), or not a host.
            _ => return None,
        }
        previous = b;
    }
    let ends_well = match port {
        Some(start) => {
            (1..=5).contains(&(end - start)) && &text[start..end] != "443" && !(end - start > 1 && bytes[start] == b'0')
        }
        None => previous != b'.' && previous != b'-',
    };
    let registry = &text[..end];
    (ends_well && dot_or_colon && !DOCKER_HUB_ALIASES.contains(&registry)).then_some((end, port.is_some()))
}

/// Whether `registry` is in normal form, as the conditions that make it, one after the other.
fn is_normal_registry_in_parts(registry: &str) -> bool {
    !registry.bytes().any(|b| b.is_ascii_uppercase())
        && has_dot_or_colon(registry)
        && !port_of(registry).is_some_and(|port| port.len() > 1 && port.starts_with('0'))
        && !registry.ends_with(":443")
        && !DOCKER_HUB_ALIASES.contains(&registry)
        && valid_registry(registry)
}

/// Writes the port of `registry` (`host:port`, `[IPv6]:port`, or a glob's registry segment)
/// without its leading zeros (`r.io:0443` → `r.io:443`, `r.io:000` → `r.io:0`), in place; a port
/// that is not all digits (a glob's `*`) is left as written.
pub(crate) fn drop_port_zeros(registry: &mut String) {
    let Some(port) = port_of(registry) else {
        return;
    };
    if port.len() > 1 && port.starts_with('0') && port.bytes().all(|b| b.is_ascii_digit()) {
        let zeros = port.len() - port.trim_start_matches('0').len().max(1);
        let start = registry.len() - port.len();
        registry.replace_range(start..start + zeros, "");
    }
}

/// The port of a registry `host:port` or `[IPv6]:port`, as written.
fn port_of(registry: &str) -> Option<&str> {
    let port = &registry[ascii::rfind(registry, b':')? + 1..];
    (!ascii::contains(port, b']')).then_some(port)
}

/// Whether `text` holds a `.` or a `:` (one pass; `contains(['.', ':'])` is slow in wasm).
fn has_dot_or_colon(text: &str) -> bool {
    text.bytes().any(|b| b == b'.' || b == b':')
}

/// Whether `host_port` is a registry: `host[:port]` (labels of letters, digits and `-` between
/// single dots, none beginning or ending with `-`; a port of 1 to 5 digits) or `[IPv6][:port]`.
/// One pass over the bytes: every glob of the settings and every image of a request is checked,
/// and in wasm the split iterators cost ≈ 60 instructions a byte (docs/benchmarks.md, eighth pass).
/// The property test `the_one_pass_registry_check_is_the_split_one` compares it with the reading
/// by splits it replaced.
fn valid_registry(host_port: &str) -> bool {
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        // [IPv6]:port
        match ascii::split_once(rest, b']') {
            Some((addr, tail)) => {
                if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match tail {
                    "" => return true,
                    _ => match tail.strip_prefix(':') {
                        Some(port) => ("ipv6", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match ascii::split_once(host_port, b':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && valid_host(host.as_bytes())
}

/// Labels of letters, digits and `-` separated by single dots, none empty, none beginning or
/// ending with `-`: each byte is checked against the one before it (a `.` before the first).
fn valid_host(host: &[u8]) -> bool {
    let mut previous = b'.';
    for &b in host {
        let ok = match b {
            b'.' => previous != b'.' && previous != b'-',
            b'-' => previous != b'.',
            _ => b.is_ascii_alphanumeric(),
        };
        if !ok {
            return false;
        }
        previous = b;
    }
    previous != b'.' && previous != b'-'
}

fn check_path_component(component: &str) -> Result<(), ReferenceError> {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let invalid = || ReferenceError::InvalidPathComponent(component.to_owned());
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(invalid());
    }
    // Separators: '.', '_', '__' or any run of '-'.
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return Err(invalid());
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), ReferenceError> {
    let bytes = tag.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LEN
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag(tag.to_owned()))
    }
}

/// Checks a digest; only sha256 is accepted, the algorithm every registry and cosign use.
pub fn parse_digest(digest: &str) -> Result<String, ReferenceError> {
    check_digest(digest).map(|()| digest.to_owned())
}

/// [`parse_digest`] of a digest already owned (a host's answer), kept without a copy.
pub fn check_digest_owned(digest: String) -> Result<String, ReferenceError> {
    check_digest(&digest).map(|()| digest)
}

fn check_digest(digest: &str) -> Result<(), ReferenceError> {
    if is_usable_digest(digest) {
        Ok(())
    } else {
        Err(ReferenceError::InvalidDigest(digest.to_owned()))
    }
}

/// Whether `digest` is one [`parse_digest`] accepts: `sha256:` and 64 lowercase hex digits.
pub fn is_usable_digest(digest: &str) -> bool {
    matches!(digest.strip_prefix("sha256:"), Some(hex) if hex.len() == 64 && is_lower_hex(hex.as_bytes()))
}

/// Whether every byte is `0`-`9` or `a`-`f`, eight bytes at a time: every digest a host answers
/// is checked, and a loop over single bytes costs ≈ 20 instructions a byte in wasm (≈ 2 % of a
/// warm evaluation). In a word of bytes below `0x80`, adding `0x80 - lo` to every byte sets its
/// top bit exactly when the byte is at least `lo`, with no carry into the next byte (the sum
/// stays below `0x100`). Property test `the_word_hex_check_is_the_byte_check`.
fn is_lower_hex(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let at_least = |x: u64, lo: u8| x.wrapping_add(ONES * u64::from(0x80 - lo)) & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        let digit = at_least(x, b'0') & !at_least(x, b'9' + 1);
        let letter = at_least(x, b'a') & !at_least(x, b'f' + 1);
        if x & HIGHS != 0 || digit | letter != HIGHS {
            return false;
        }
    }
    words.remainder().iter().all(|&b| is_lower_hex_byte(b))
}

fn is_lower_hex_byte(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// A registry [`is_normal_registry`] accepts is normalised to itself; hosts, ports,
        /// aliases, upper case and `:443` drawn so that both answers occur.
        #[test]
        fn a_registry_in_normal_form_is_its_own_normal_form(
            registry in prop_oneof![
                "[a-zA-Z0-9.:-]{1,12}",
                "(localhost|r\\.io|R\\.io|127\\.0\\.0\\.1|docker\\.io|index\\.docker\\.io|registry-1\\.docker\\.io|\\[::1\\])(:443|:5000|:)?",
            ]
        ) {
            if is_normal_registry(&registry) {
                prop_assert_eq!(normalise_registry(Some(&registry)), Ok(registry.clone()));
            }
        }

        /// [`normal_registry_len`] answers as the conditions of [`is_normal_registry_in_parts`]
        /// on the text before the first `/`: registries dense in the bytes of hosts and ports,
        /// with `/` and what follows, upper case, `:443`, Docker Hub's names and IPv6.
        #[test]
        fn the_one_pass_normal_registry_is_the_one_in_parts(
            text in prop_oneof![
                "[a0.:\\-A/*_]{0,12}",
                "(localhost|r\\.io|R\\.io|127\\.0\\.0\\.1|docker\\.io|index\\.docker\\.io|registry-1\\.docker\\.io|\\[::1\\]|-r\\.io|r-\\.io)(:443|:5000|:|:123456|:0443|:05000|:0|:00|:5a)?(/[a*]{0,3})?",
            ]
        ) {
            let end = text.find('/').unwrap_or(text.len());
            let expected = is_normal_registry_in_parts(&text[..end]).then_some(end);
            prop_assert_eq!(normal_registry_len(&text), expected, "{:?}", text);
        }

        /// A port is a number: written with leading zeros it names the same registry as
        /// written without (`r.io:0443` is `r.io`), checked against the port read as a number.
        #[test]
        fn a_port_with_leading_zeros_is_the_same_port(
            host in "(r\\.io|localhost|127\\.0\\.0\\.1|\\[::1\\]|R\\.IO|index\\.docker\\.io)",
            zeros in 0usize..4,
            port in prop_oneof![Just(443u32), Just(5000), Just(0), 1u32..100_000],
        ) {
            let digits = port.to_string();
            // At most five digits in all (a longer port is refused, written as it may be).
            let written = format!("{host}:{}{digits}", "0".repeat(zeros.min(5 - digits.len())));
            let expected = normalise_registry(Some(&format!("{host}:{port}")));
            prop_assert_eq!(normalise_registry(Some(&written)), expected.clone(), "{}", written);
            if let Ok(normal) = expected {
                prop_assert_eq!(normalise_registry(Some(&normal)), Ok(normal.clone()));
                prop_assert_eq!(
                    ImageReference::parse(&format!("{written}/evil:1")).map(|r| r.to_string()),
                    ImageReference::parse(&format!("{normal}/evil:1")).map(|r| r.to_string())
                );
            }
        }

        /// [`valid_host`] answers as the split-based reading it replaced, on hosts dense in
        /// dots and dashes (empty labels, dashes at either end) and with other bytes.
        #[test]
        fn the_one_pass_registry_check_is_the_split_one(host in "[a0.\\-_é]{0,10}") {
            let split = !host.is_empty()
                && host.as_bytes().split(|&b| b == b'.').all(|label| {
                    !label.is_empty()
                        && label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with(b"-")
                        && !label.ends_with(b"-")
                });
            prop_assert_eq!(valid_host(host.as_bytes()), split);
        }
    }

    /// The reading [`ImageReference::parse`] replaced (four owned parts), the reference of
    /// `one_text_is_the_four_parts`.
    fn parse_in_parts(input: &str) -> Result<[Option<String>; 4], ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match ascii::split_once(input, b'@') {
            Some((rest, digest)) => (rest, Some(parse_digest(digest)?)),
            None => (input, None),
        };
        let last_slash = ascii::rfind(rest, b'/').map_or(0, |i| i + 1);
        let (name, tag) = match ascii::rfind(&rest[last_slash..], b':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                check_tag(tag)?;
                (&rest[..last_slash + i], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        let (registry, path) = split_registry(name);
        let registry = normalise_registry(registry)?;
        if path.len() > MAX_NAME_LEN || name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong);
        }
        for component in ascii::split(path, b'/') {
            check_path_component(component)?;
        }
        let repository = if registry == DOCKER_HUB && !ascii::contains(path, b'/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong);
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            (tag, _) => tag,
        };
        Ok([Some(registry), Some(repository), tag, digest])
    }

    fn reference_text() -> impl Strategy<Value = String> {
        let digest = "sha256:[0-9a-f]{64}|sha256:[0-9a-fA-F]{63,65}|sha512:[0-9a-f]{4}";
        prop_oneof![
            "[a0A.:/@_-]{0,14}",
            (
                "(|localhost/|r\\.io/|R\\.io:443/|index\\.docker\\.io/|docker\\.io/|\\[::1\\]:5000/|UP/|r\\.io:0/)",
                "(a|a/b|A|a__b|a--b|a\\.b|library/a|a/b/c|[a-z]{250,256})",
                "(|:v1|:latest|:-x|:|:[a-z]{128,129})",
                proptest::option::of(digest),
            )
                .prop_map(|(registry, path, tag, digest)| {
                    let digest = digest.map(|d| format!("@{d}")).unwrap_or_default();
                    format!("{registry}{path}{tag}{digest}")
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Hex texts of every length around the word size with up to two bytes replaced by
        /// bytes dense at the ends of the ranges (`/`, `0`, `9`, `:`, `` ` ``, `a`, `f`, `g`, `A`,
        /// `F`) and above `0x7f`, so that both answers occur at every position.
        #[test]
        fn the_word_hex_check_is_the_byte_check(
            hex in "[0-9a-f]{0,40}",
            replaced in prop::collection::vec(
                (any::<prop::sample::Index>(), prop_oneof![
                    Just(b'/'), Just(b'0'), Just(b'9'), Just(b':'), Just(b'`'), Just(b'a'),
                    Just(b'f'), Just(b'g'), Just(b'A'), Just(b'F'), Just(0x7f_u8), Just(0x80),
                    Just(0xb0), Just(0xe1), Just(0xff), any::<u8>(),
                ]),
                0..3,
            )
        ) {
            let mut bytes = hex.into_bytes();
            if !bytes.is_empty() {
                for (at, b) in replaced {
                    let at = at.index(bytes.len());
                    bytes[at] = b;
                }
            }
            prop_assert_eq!(is_lower_hex(&bytes), bytes.iter().all(|&b| is_lower_hex_byte(b)));
        }

        /// The one text with its part ends reads as the four parts did, refuses what they
        /// refused with the same error, and writes and verifies the same texts.
        #[test]
        fn one_text_is_the_four_parts(input in reference_text()) {
            let ours = ImageReference::parse(&input);
            let parts = parse_in_parts(&input);
            match (&ours, &parts) {
                (Ok(r), Ok([registry, repository, tag, digest])) => {
                    prop_assert_eq!(Some(r.registry()), registry.as_deref());
                    prop_assert_eq!(Some(r.repository()), repository.as_deref());
                    prop_assert_eq!(r.tag(), tag.as_deref());
                    prop_assert_eq!(r.digest(), digest.as_deref());
                    let (registry, repository) = (registry.as_deref().unwrap(), repository.as_deref().unwrap());
                    let mut text = format!("{registry}/{repository}");
                    if let Some(tag) = tag {
                        text = format!("{text}:{tag}");
                    }
                    let target = match (digest, tag) {
                        (Some(digest), _) => format!("{registry}/{repository}@{digest}"),
                        (None, Some(tag)) => format!("{registry}/{repository}:{tag}"),
                        (None, None) => format!("{registry}/{repository}"),
                    };
                    if let Some(digest) = digest {
                        text = format!("{text}@{digest}");
                    }
                    prop_assert_eq!(r.to_string(), text);
                    prop_assert_eq!(r.verification_target(), target);
                }
                (Err(ours), Err(theirs)) => prop_assert_eq!(ours, theirs),
                _ => prop_assert!(false, "{:?}: {:?} / {:?}", input, ours, parts),
            }
        }
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Every byte value at every position of a word (and of the tail) among hex digits.
    #[test]
    fn every_byte_at_every_position_is_checked_as_alone() {
        for len in [8, 9, 16] {
            for at in 0..len {
                for b in 0..=u8::MAX {
                    let mut bytes = vec![b'7'; len];
                    bytes[at] = b;
                    assert_eq!(is_lower_hex(&bytes), is_lower_hex_byte(b), "{bytes:?}");
                }
            }
        }
    }

    fn norm(s: &str) -> String {
        ImageReference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_short_names_are_normalised() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(norm("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("index.docker.io/library/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("INDEX.docker.io/nginx:1"), "docker.io/library/nginx:1");
        assert_eq!(norm("bitnami/redis:7"), "docker.io/bitnami/redis:7");
    }

    #[test]
    fn registries_ports_and_digests() {
        assert_eq!(norm("myregistry.com/app:v1"), "myregistry.com/app:v1");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("127.0.0.1:5000/a/b:v1"), "127.0.0.1:5000/a/b:v1");
        assert_eq!(norm("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b:latest");
        assert_eq!(norm(&format!("ghcr.io/o/app@{D}")), format!("ghcr.io/o/app@{D}"));
        assert_eq!(norm(&format!("ghcr.io/o/app:v1@{D}")), format!("ghcr.io/o/app:v1@{D}"));
        assert_eq!(norm("[::1]:5000/app:v1"), "[::1]:5000/app:v1");
        assert_eq!(norm("MyRegistry.COM/app"), "myregistry.com/app:latest");
        assert_eq!(norm("MyRegistry.com:443/app:v1"), "myregistry.com/app:v1");
        assert_eq!(norm("index.docker.io:443/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("[::1]:443/app"), "[::1]/app:latest");
        assert_eq!(norm("myregistry.com:4430/app"), "myregistry.com:4430/app:latest");
        assert_eq!(norm("localhost:443/app"), "localhost/app:latest");
        // Found by the fuzzer: `com:443` without its port would read as a Docker Hub namespace.
        assert_eq!(norm("COM:443/a/b:v1"), "com:443/a/b:v1");
        // A port is a number: leading zeros name the same port (found by an audit: `r.io:0443`
        // escaped a policy on `r.io/**` while every runtime pulls it from `r.io:443`).
        assert_eq!(norm("r.io:0443/evil:1"), "r.io/evil:1");
        assert_eq!(norm("R.IO:00443/evil:1"), "r.io/evil:1");
        assert_eq!(norm("r.io:05000/a"), "r.io:5000/a:latest");
        assert_eq!(norm("[::1]:0443/app"), "[::1]/app:latest");
        assert_eq!(norm("localhost:0080/a"), "localhost:80/a:latest");
        assert_eq!(norm("r.io:00000/a"), "r.io:0/a:latest");
        assert_eq!(norm("index.docker.io:0443/nginx"), "docker.io/library/nginx:latest");
    }

    #[test]
    fn verification_target_prefers_the_digest() {
        let r = ImageReference::parse(&format!("ghcr.io/o/app:v1@{D}")).unwrap();
        assert_eq!(r.verification_target(), format!("ghcr.io/o/app@{D}"));
        let r = ImageReference::parse("nginx:1.25").unwrap();
        assert_eq!(r.verification_target(), "docker.io/library/nginx:1.25");
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            "myregistry.com/App",
            "myregistry.com/app:",
            "myregistry.com/app:-x",
            "myregistry.com//app",
            "myregistry.com/app/",
            "myregistry.com/a..b",
            "myregistry.com/app@sha256:abc",
            "myregistry.com/app@md5:0123",
            "my_registry.com/app",
            "-bad.com/app",
            "host:port/app",
            "my registry.com/app",
            "myregistry.com/app\u{0}",
            "myregistry.com/app:v1\u{202e}",
        ] {
            assert!(ImageReference::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            ImageReference::parse("UPPER/app"),
            Err(ReferenceError::AmbiguousRegistry("UPPER".to_owned()))
        );
        let long = format!("myregistry.com/{}", "a".repeat(300));
        assert_eq!(ImageReference::parse(&long), Err(ReferenceError::NameTooLong));
        let short_as_written = "a".repeat(250);
        assert_eq!(
            ImageReference::parse(&short_as_written),
            Err(ReferenceError::NameTooLong)
        );
        assert!(ImageReference::parse(&"a".repeat(237)).is_ok());
        let long_tag = format!("app:{}", "a".repeat(129));
        assert!(matches!(
            ImageReference::parse(&long_tag),
            Err(ReferenceError::InvalidTag(_))
        ));
    }

    #[test]
    fn separators_follow_the_distribution_grammar() {
        for good in ["a/b.c", "a/b_c", "a/b__c", "a/b---c", "a/b-c.d_e"] {
            assert!(ImageReference::parse(good).is_ok(), "{good}");
        }
        for bad in ["a/b___c", "a/b._c", "a/.b", "a/b-"] {
            assert!(ImageReference::parse(bad).is_err(), "{bad}");
        }
    }
}
