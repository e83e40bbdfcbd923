//! Glob matching for image references and namespace names: parsed once, matched without
//! compilation or allocation.
//!
//! A [`PathGlob`] is a list of `/`-separated segments, anchored at both ends:
//! - `**` as a whole segment matches zero or more whole segments;
//! - in any other segment, `*` matches any run of characters other than `/` (possibly empty),
//!   every other character matches itself.
//!
//! [`segment_matches`] matches one segment; with `question_mark` set, `?` matches exactly one
//! character (namespace globs such as `team-?`). Image globs never contain `?`: their settings
//! check refuses it.
//!
//! Matching walks the segments with one backtrack point, the last `**` seen, and each segment's
//! characters with one backtrack point, the last `*` seen. Both are complete: a later star can
//! absorb whatever an earlier one would have, so only the last needs retrying. (`glob-match`
//! 0.2.1, used before, dropped its `**` backtrack point after a literal and so missed
//! `myregistry.com/**/prod-*` against `myregistry.com/prod-eu/prod-api:1`.) The property tests
//! below compare both against a regular expression built from the glob.

/// Why a glob was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("the glob is empty")]
    Empty,
    #[error("the glob has an empty path segment (`//`, or `/` at the start or the end)")]
    EmptySegment,
    #[error("`**` must be a whole path segment (found `{0}`): use `*` within a segment")]
    PartialDoubleStar(String),
}

/// One segment of a [`PathGlob`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment {
    /// `**`: zero or more whole segments.
    AnySegments,
    /// A pattern for exactly one segment: the byte range of its text, and what it holds.
    One(usize, usize, Marks),
}

/// What a segment's text holds, noted while it is read: [`PathGlob::anchor`] and the image
/// matcher ask, and a fresh instance reads every glob of the settings on every evaluation (in
/// wasm each further pass over a glob's bytes costs ≈ 25 instructions a byte).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Marks {
    /// A `*`.
    star: bool,
    /// A `:`.
    colon: bool,
    /// A `@`.
    at: bool,
}

impl Marks {
    /// The marks of a segment whose bytes' classes ([`ByteClasses`]) were or-ed into `classes`.
    fn of(classes: u8) -> Self {
        Self {
            star: classes & ByteClasses::STAR != 0,
            colon: classes & ByteClasses::COLON != 0,
            at: classes & ByteClasses::AT != 0,
        }
    }
}

/// What the scan of a glob asks of each byte, answered by one look-up: whether a segment may
/// hold it, whether it ends the segment (`/`), and the marks it sets (`*`, `:`, `@`). A fresh
/// instance scans every glob of the settings on each evaluation; tested byte by byte, a loop
/// over a segment kept its marks on the stack in wasmtime's code (≈ 45 instructions a byte),
/// with the classes or-ed into one byte it keeps them in a register (test
/// `the_byte_classes_are_the_rules`).
#[derive(Clone, Copy)]
pub(crate) struct ByteClasses([u8; 256]);

impl ByteClasses {
    const ALLOWED: u8 = 1;
    const SLASH: u8 = 2;
    const STAR: u8 = 4;
    const COLON: u8 = 8;
    const AT: u8 = 16;

    /// The classes of every byte, a segment holding the bytes `allowed` marks.
    pub(crate) const fn new(allowed: &[bool; 256]) -> Self {
        let mut table = [0; 256];
        let mut b = 0;
        while b < 256 {
            let allowed = if allowed[b] { Self::ALLOWED } else { 0 };
            table[b] = allowed
                | match b as u8 {
                    b'/' => Self::SLASH,
                    b'*' => Self::STAR,
                    b':' => Self::COLON,
                    b'@' => Self::AT,
                    _ => 0,
                };
            b += 1;
        }
        Self(table)
    }

    fn of(&self, b: u8) -> u8 {
        self.0[usize::from(b)]
    }
}

/// Any byte in a segment: path globs in general ([`PathGlob::parse`]).
const ANY_BYTE: ByteClasses = ByteClasses::new(&[true; 256]);

/// A parsed path glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathGlob {
    text: String,
    segments: Vec<Segment>,
}

impl PathGlob {
    /// Parses `text`; consecutive `**` segments are merged (they mean the same).
    pub fn parse(text: &str) -> Result<Self, GlobError> {
        Self::check(text)?;
        Self::parse_owned(text.to_owned())
    }

    /// Parses `text`, keeping it: one allocation (the segment list) besides the text.
    pub fn parse_owned(text: String) -> Result<Self, GlobError> {
        // Room for the segments of nearly every image glob (`host/team/**`, `host/org/app-*`):
        // counting the `/` first would be one more pass over the text.
        let mut segments = Vec::with_capacity(4);
        scan(&text, |segment| push_merged(&mut segments, segment))?;
        Ok(Self { text, segments })
    }

    /// [`PathGlob::parse_owned`] of an image glob `text` whose first `first` bytes are a literal
    /// segment the caller has read (a registry host: no `*` or `@`; `first_colon`: whether it
    /// has a `:`), and whose other bytes must each be allowed by `classes`: the rest is read in
    /// the same pass as it is checked. `None` when a byte is not allowed or the rest does not
    /// parse (test `an_image_glob_after_its_registry_is_the_glob_parsed`).
    pub(crate) fn parse_owned_after(
        text: String,
        first: usize,
        first_colon: bool,
        classes: &ByteClasses,
    ) -> Option<Self> {
        let mut segments = Vec::with_capacity(4);
        let marks = Marks {
            colon: first_colon,
            ..Marks::default()
        };
        segments.push(Segment::One(0, first, marks));
        let read = scan_from(&text, first + 1, classes, |segment| push_merged(&mut segments, segment));
        matches!(read, Ok(true)).then_some(Self { text, segments })
    }

    /// How an image glob's last segment is read: as written when it is `**`, names a tag or a
    /// digest (has a `:` or `@`), or ends with `*` (which already takes any `:tag` or `@digest`
    /// after the name); else the glob names repositories, also followed by `:*` or `@*`, and as
    /// written too when that segment has a `*`.
    pub fn image_tail(&self) -> Tail {
        match self.segments.last() {
            Some(Segment::One(_, _, marks)) if !(marks.colon || marks.at || self.text.ends_with('*')) => {
                if marks.star {
                    Tail::AsWrittenTagOrDigest
                } else {
                    Tail::TagOrDigest
                }
            }
            _ => Tail::AsWritten,
        }
    }

    /// Whether `text` parses, with the error [`PathGlob::parse`] would give, without allocating
    /// (except for the error).
    pub fn check(text: &str) -> Result<(), GlobError> {
        scan(text, |_| {})
    }

    /// `**`, which matches everything.
    pub fn everything() -> Self {
        Self {
            text: "**".to_owned(),
            segments: vec![Segment::AnySegments],
        }
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the glob is `**`, which matches everything.
    pub fn matches_everything(&self) -> bool {
        self.segments == [Segment::AnySegments]
    }

    /// Whether the first segment has a wildcard (`*`, or is `**`).
    pub fn first_segment_is_wild(&self) -> bool {
        match self.segments.first() {
            Some(Segment::One(_, _, marks)) => marks.star,
            Some(Segment::AnySegments) => true,
            None => false,
        }
    }

    /// Where the literal part of the glob ends when everything after it is `**` and it has
    /// one segment or more (`r.io/app:v1` for `r.io/app:v1/**`): the position of the `/` before
    /// the first wildcard. `None` otherwise.
    pub fn literal_before_final_double_star(&self) -> Option<usize> {
        // Consecutive `**` are merged, so "only `**` after the literal part" is "the last segment
        // is `**` and every one before it has no `*`".
        let [literal @ .., Segment::AnySegments] = &self.segments[..] else {
            return None;
        };
        let all_literal = literal
            .iter()
            .all(|s| matches!(s, Segment::One(_, _, marks) if !marks.star));
        match literal.last() {
            Some(&Segment::One(_, end, _)) if all_literal => Some(end),
            _ => None,
        }
    }

    /// Whether the glob matches the whole of `text`.
    pub fn matches(&self, text: &str) -> bool {
        self.matches_tail(text.as_bytes(), Tail::AsWritten)
    }

    /// Whether the glob matches `name:TAG` for at least one tag `TAG` (a letter, digit or `_`,
    /// then letters, digits, `_`, `.` or `-`; the 128-character limit of tags is not applied,
    /// which can only find more matches). Used for references by digest only: a glob that covers
    /// a repository at some tag covers it by digest.
    pub fn matches_some_tag(&self, name: &str) -> bool {
        self.matches_some_tag_tail(name.as_bytes(), Tail::AsWritten)
    }

    /// [`PathGlob::matches`] of the glob whose last segment is read as `tail` says.
    pub fn matches_tail(&self, text: &[u8], tail: Tail) -> bool {
        self.walk(text, tail, false)
    }

    /// [`PathGlob::matches_some_tag`] of the glob whose last segment is read as `tail` says.
    pub fn matches_some_tag_tail(&self, name: &[u8], tail: Tail) -> bool {
        self.walk(name, tail, true)
    }

    /// The leading literal segments (no `*`) that every text of two segments or more matched by
    /// this glob, with any [`Tail`] and by [`PathGlob::matches_tail`] or
    /// [`PathGlob::matches_some_tag_tail`], either begins with followed by `/`, or equals: the key
    /// of the glob in [`crate::matching::ImageMatcher`]'s index. Empty when the first segment
    /// has a wildcard.
    ///
    /// Literal segments before the first wildcard are matched one for one with the first text
    /// segments, by equality, except one matched with the last text segment, which may instead
    /// be read as `segment:TAG` (by digest) or through the tail. So the anchor leaves out the
    /// last segment, and the one before a final `**` when it has a `:` (`r.io/app:v1/**` covers
    /// `r.io/app` by digest) and is not the first (which a text of two segments or more never
    /// matches with its last segment).
    pub fn anchor(&self) -> &str {
        let Some(last) = self.segments.len().checked_sub(1) else {
            return "";
        };
        let mut end = 0;
        for (i, segment) in self.segments[..last].iter().enumerate() {
            let Segment::One(_, b, marks) = *segment else { break };
            if marks.star || (i > 0 && i + 1 == last && self.segments[last] == Segment::AnySegments && marks.colon) {
                break;
            }
            end = b;
        }
        &self.text[..end]
    }

    /// Segment-level matching; the last pattern segment is read as `tail` says; `some_tag` makes
    /// the last text segment stand for `segment:TAG`.
    fn walk(&self, text: &[u8], tail: Tail, some_tag: bool) -> bool {
        const END: usize = usize::MAX;
        let next = |start: usize| -> (usize, usize) {
            // (end of the segment starting at `start`, start of the following one or END)
            match text[start..].iter().position(|&b| b == b'/') {
                Some(i) => (start + i, start + i + 1),
                None => (text.len(), END),
            }
        };
        let pattern = self.text.as_bytes();
        let (mut pi, mut ti) = (0, 0);
        // After the last `**`: the pattern index following it and the text segment it would
        // take next if what follows fails.
        let mut retry: Option<(usize, usize)> = None;
        loop {
            match self.segments.get(pi) {
                Some(Segment::AnySegments) => {
                    pi += 1;
                    retry = Some((pi, ti));
                    continue;
                }
                Some(&Segment::One(a, b, _)) if ti != END => {
                    let (end, following) = next(ti);
                    let segment = &text[ti..end];
                    let ok = if following == END {
                        let pattern = &pattern[a..b];
                        match (pi + 1 == self.segments.len(), some_tag) {
                            (true, false) => tail_matches(tail, pattern, segment),
                            (true, true) => tail_matches_some_tag(tail, pattern, segment),
                            (false, false) => matches_bytes(pattern, segment, false),
                            (false, true) => segment_matches_some_tag(pattern, segment),
                        }
                    } else {
                        matches_bytes(&pattern[a..b], segment, false)
                    };
                    if ok {
                        pi += 1;
                        ti = following;
                        continue;
                    }
                }
                None if ti == END => return true,
                _ => {}
            }
            match retry {
                Some((rpi, rti)) if rti != END => {
                    let (_, following) = next(rti);
                    retry = Some((rpi, following));
                    pi = rpi;
                    ti = following;
                }
                _ => return false,
            }
        }
    }
}

/// Appends `segment` to `segments`, unless it is a `**` following a `**` (they mean the same).
fn push_merged(segments: &mut Vec<Segment>, segment: Segment) {
    if !(segment == Segment::AnySegments && segments.last() == Some(&Segment::AnySegments)) {
        segments.push(segment);
    }
}

/// Checks `text`, handing each segment to `each` in order (consecutive `**` included). One
/// pass over the bytes, segment by segment (a fresh instance reads every glob of the settings on
/// each evaluation); the exhaustive test `scan_is_splitting_on_slashes` compares it with the
/// plain reading.
fn scan(text: &str, each: impl FnMut(Segment)) -> Result<(), GlobError> {
    if text.is_empty() {
        return Err(GlobError::Empty);
    }
    scan_from(text, 0, &ANY_BYTE, each).map(drop)
}

/// [`scan`] of the segments of `text` from `start` (the start of a segment, which may be the end
/// of `text`: then an empty segment), stopping with `Ok(false)` at the first byte `classes`
/// does not allow.
fn scan_from(
    text: &str,
    mut start: usize,
    classes: &ByteClasses,
    mut each: impl FnMut(Segment),
) -> Result<bool, GlobError> {
    let bytes = text.as_bytes();
    loop {
        // The segment from `start`: its end and its bytes' classes or-ed, in a loop with little
        // state (as wasmtime compiles it, a loop carrying more state spills it on every byte).
        // A `**` inside it is looked for only when it has a `*`.
        let (mut end, mut seen) = (start, 0);
        while let Some(&b) = bytes.get(end) {
            let class = classes.of(b);
            if class & ByteClasses::SLASH != 0 {
                break;
            }
            if class & ByteClasses::ALLOWED == 0 {
                return Ok(false);
            }
            seen |= class;
            end += 1;
        }
        let marks = Marks::of(seen);
        if end == start {
            return Err(GlobError::EmptySegment);
        }
        let segment = &bytes[start..end];
        if !(marks.star && segment.windows(2).any(|pair| pair == b"**")) {
            each(Segment::One(start, end, marks));
        } else if segment.len() == 2 {
            each(Segment::AnySegments);
        } else {
            return Err(GlobError::PartialDoubleStar(text[start..end].to_owned()));
        }
        if end == bytes.len() {
            return Ok(true);
        }
        start = end + 1;
    }
}

/// How the last segment of a glob is read: image globs naming repositories stand for the glob
/// followed by `:*` (any tag) and by `@*` (any digest), without those texts being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// As written.
    AsWritten,
    /// Followed by `:*`, or by `@*`.
    TagOrDigest,
    /// As written, followed by `:*`, or by `@*`.
    AsWrittenTagOrDigest,
}

/// Whether the last pattern segment `pattern`, read as `tail` says, matches the whole of the
/// last text segment `segment`.
///
/// `pattern` followed by `c*` matches `segment` exactly when some `c` of `segment` follows a
/// part that `pattern` matches (the `*` takes the rest, which has no `/`).
fn tail_matches(tail: Tail, pattern: &[u8], segment: &[u8]) -> bool {
    (tail != Tail::TagOrDigest && matches_bytes(pattern, segment, false))
        || (tail != Tail::AsWritten && matches_before_separator(pattern, segment))
}

/// [`segment_matches_some_tag`] of the last pattern segment `pattern` read as `tail` says.
///
/// For `pattern:*`, the `:` of `name:TAG` is either that literal `:` (`pattern` matches `name`,
/// `*` makes the tag) or comes from the final `*` (`pattern:*` matches `name`, the star making
/// the tag too); any `:` or `*` within `pattern` leaves a `:` in what must make the tag, which
/// no tag has. For `pattern@*`, likewise, only the final `*` can (`pattern@*` matches `name`).
fn tail_matches_some_tag(tail: Tail, pattern: &[u8], name: &[u8]) -> bool {
    (tail != Tail::TagOrDigest && segment_matches_some_tag(pattern, name))
        || (tail != Tail::AsWritten && (matches_bytes(pattern, name, false) || matches_before_separator(pattern, name)))
}

/// Whether `pattern` matches a part of `segment` followed by `:` or `@`: whether `pattern:*` or
/// `pattern@*` matches `segment`.
#[inline(never)]
fn matches_before_separator(pattern: &[u8], segment: &[u8]) -> bool {
    segment
        .iter()
        .enumerate()
        .any(|(k, &b)| (b == b':' || b == b'@') && matches_bytes(pattern, &segment[..k], false))
}

/// Whether `pattern` (`*` any run, and `?` one character if `question_mark`) matches the whole
/// of `text`. Neither side is split at `/`: this is the matcher of one segment, or of one
/// namespace name.
pub fn segment_matches(pattern: &str, text: &str, question_mark: bool) -> bool {
    matches_bytes(pattern.as_bytes(), text.as_bytes(), question_mark)
}

// Called from many places: one copy keeps the module small.
#[inline(never)]
fn matches_bytes(pattern: &[u8], text: &[u8], question_mark: bool) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // After the last `*`: the pattern index following it and the text index it would take next.
    let mut retry: Option<(usize, usize)> = None;
    while ti < text.len() {
        match pattern.get(pi) {
            Some(b'*') => {
                pi += 1;
                retry = Some((pi, ti));
                continue;
            }
            Some(&c) if c == text[ti] || (question_mark && c == b'?') => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match retry {
            Some((rpi, rti)) => {
                retry = Some((rpi, rti + 1));
                pi = rpi;
                ti = rti + 1;
            }
            None => return false,
        }
    }
    pattern[pi..].iter().all(|&c| c == b'*')
}

/// Whether `pattern` (one segment, `*` only) matches `name:TAG` for some tag.
///
/// In any match, the `:` after `name` comes either from a literal `:` of the pattern or from a
/// `*`. A literal `:` at `j` needs `pattern[..j]` to match `name` and `pattern[j+1..]` to make a
/// tag; a `*` at `j` splits into `pattern[..=j]` matching `name` (the star taking its end) and
/// `pattern[j..]` making a tag (the star taking its start).
#[inline(never)]
fn segment_matches_some_tag(pattern: &[u8], name: &[u8]) -> bool {
    pattern.iter().enumerate().any(|(j, &c)| match c {
        b':' => can_make_tag(&pattern[j + 1..]) && matches_bytes(&pattern[..j], name, false),
        b'*' => can_make_tag(&pattern[j..]) && matches_bytes(&pattern[..=j], name, false),
        _ => false,
    })
}

/// Whether `pattern` (`*` only) matches at least one tag: non-empty, first character a letter,
/// digit or `_`, then letters, digits, `_`, `.` and `-`. A `*` can always supply `a`.
fn can_make_tag(pattern: &[u8]) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match pattern.first() {
        None => false,
        Some(&first) if first != b'*' && !word(first) => false,
        Some(_) => pattern.iter().all(|&b| b == b'*' || word(b) || b == b'.' || b == b'-'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: a regular expression over `/` + text, each pattern segment consuming `/`
    /// and one segment, `**` any number of them.
    fn regex_of(glob: &str) -> regex::Regex {
        let mut re = String::from("^");
        for segment in glob.split('/') {
            if segment == "**" {
                re.push_str("(?:/[^/]*)*");
            } else {
                re.push('/');
                re.push_str(&segment_regex(segment, false));
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap()
    }

    fn segment_regex(segment: &str, question_mark: bool) -> String {
        let mut re = String::new();
        for c in segment.chars() {
            match c {
                '*' => re.push_str("[^/]*"),
                '?' if question_mark => re.push_str("[^/]"),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re
    }

    fn reference_matches(glob: &str, text: &str) -> bool {
        regex_of(glob).is_match(&format!("/{text}"))
    }

    /// A tag that `tail` (the part of a segment pattern that must make the tag) produces, if any:
    /// each `*` empty, except a leading one, which gives `a`.
    fn witness(tail: &str) -> Option<String> {
        let mut out = String::new();
        for (i, c) in tail.chars().enumerate() {
            match c {
                '*' if i == 0 => out.push('a'),
                '*' => {}
                c => out.push(c),
            }
        }
        let valid = out
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && out
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        valid.then_some(out)
    }

    /// Candidate tags for `matches_some_tag`: every way a segment of the glob could make one.
    fn candidate_tags(glob: &str) -> Vec<String> {
        let mut tags = vec!["a".to_owned()];
        for segment in glob.split('/') {
            for (j, c) in segment.char_indices() {
                match c {
                    ':' => tags.extend(witness(&segment[j + 1..])),
                    '*' => tags.extend(witness(&segment[j..])),
                    _ => {}
                }
            }
        }
        tags
    }

    /// Segments of our references' shape, from a small alphabet so that globs and texts collide.
    fn text_segment() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ab.:@-]{0,4}").unwrap()
    }

    fn glob_segment() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just("**".to_owned()),
            6 => proptest::string::string_regex("[ab*.:@-]{1,4}")
                .unwrap()
                .prop_filter("no ** inside a segment", |s| !s.contains("**")),
        ]
    }

    fn glob() -> impl Strategy<Value = String> {
        proptest::collection::vec(glob_segment(), 1..6).prop_map(|s| s.join("/"))
    }

    /// Texts drawn from the glob itself (stars replaced by text) are far likelier to match
    /// than independent random texts.
    fn glob_and_text() -> impl Strategy<Value = (String, String)> {
        glob().prop_flat_map(|g| {
            let n = g.split('/').count();
            let filled =
                proptest::collection::vec((text_segment(), proptest::collection::vec(text_segment(), 0..3)), n)
                    .prop_map({
                        let g = g.clone();
                        move |fills| {
                            g.split('/')
                                .zip(fills)
                                .map(|(seg, (fill, extra))| {
                                    if seg == "**" {
                                        extra.join("/")
                                    } else {
                                        seg.replace('*', &fill)
                                    }
                                })
                                .filter(|s| !s.is_empty())
                                .collect::<Vec<_>>()
                                .join("/")
                        }
                    });
            let random = proptest::collection::vec(text_segment(), 1..7).prop_map(|s| s.join("/"));
            (Just(g), prop_oneof![filled, random])
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn path_glob_agrees_with_the_regex((glob, text) in glob_and_text()) {
            let parsed = PathGlob::parse(&glob).unwrap();
            prop_assert_eq!(parsed.matches(&text), reference_matches(&glob, &text), "glob {} text {}", glob, text);
        }

        #[test]
        fn some_tag_agrees_with_the_regex((glob, name) in glob_and_text()) {
            let parsed = PathGlob::parse(&glob).unwrap();
            let re = regex_of(&glob);
            let expected = candidate_tags(&glob).iter().any(|t| re.is_match(&format!("/{name}:{t}")));
            prop_assert_eq!(parsed.matches_some_tag(&name), expected, "glob {} name {}", glob, name);
        }

        #[test]
        fn segments_with_question_marks_agree_with_the_regex(
            pattern in "[ab?*.-]{0,6}",
            text in "[ab.-]{0,6}",
        ) {
            let re = regex::Regex::new(&format!("^{}$", segment_regex(&pattern, true))).unwrap();
            prop_assert_eq!(segment_matches(&pattern, &text, true), re.is_match(&text));
        }
    }

    /// Every string of `alphabet` up to `max` characters.
    fn all_strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut level = vec![String::new()];
        for _ in 0..max {
            level = level
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            out.extend(level.iter().cloned());
        }
        out
    }

    /// [`scan`] as it was written before its one-pass form: split on `/`, then each part.
    fn scan_by_split(text: &str) -> Result<Vec<Segment>, GlobError> {
        if text.is_empty() {
            return Err(GlobError::Empty);
        }
        let (mut start, mut segments) = (0, Vec::new());
        for part in text.split('/') {
            let end = start + part.len();
            if part.is_empty() {
                return Err(GlobError::EmptySegment);
            }
            if part == "**" {
                segments.push(Segment::AnySegments);
            } else if part.contains("**") {
                return Err(GlobError::PartialDoubleStar(part.to_owned()));
            } else {
                let marks = Marks {
                    star: part.contains('*'),
                    colon: part.contains(':'),
                    at: part.contains('@'),
                };
                segments.push(Segment::One(start, end, marks));
            }
            start = end + 1;
        }
        Ok(segments)
    }

    /// Each byte's classes are what the scan asked of it one test at a time: allowed as the table
    /// given says, `/` ends a segment, `*`, `:` and `@` set their marks, and nothing else does.
    #[test]
    fn the_byte_classes_are_the_rules() {
        let mut allowed = [false; 256];
        for (b, slot) in allowed.iter_mut().enumerate() {
            *slot = b % 3 == 0 || b == usize::from(b'*');
        }
        for (table, allowed) in [(ByteClasses::new(&allowed), allowed), (ANY_BYTE, [true; 256])] {
            for b in 0..=u8::MAX {
                let class = table.of(b);
                assert_eq!(
                    class & ByteClasses::ALLOWED != 0,
                    allowed[usize::from(b)],
                    "byte {b:#04x} allowed"
                );
                assert_eq!(
                    class & ByteClasses::SLASH != 0,
                    b == b'/',
                    "byte {b:#04x} ends a segment"
                );
                let marks = Marks::of(class);
                assert_eq!(
                    (marks.star, marks.colon, marks.at),
                    (b == b'*', b == b':', b == b'@'),
                    "byte {b:#04x}"
                );
            }
        }
    }

    /// Every text of up to 7 characters over `a`, `*`, `/`, `:` and `@` (97,656 texts) is read
    /// by [`scan`] as by splitting on `/`: the same segments with the same marks, or the same
    /// error.
    #[test]
    fn scan_is_splitting_on_slashes() {
        for text in all_strings(&['a', '*', '/', ':', '@'], 7) {
            let mut segments = Vec::new();
            let scanned = scan(&text, |segment| segments.push(segment)).map(|()| segments);
            assert_eq!(scanned, scan_by_split(&text), "{text:?}");
        }
    }

    /// What the marks answer, for every glob of up to 8 characters over `a`, `*`, `/` and `:`
    /// that parses, is what the glob's text answers: the anchor as computed from the segments'
    /// texts, the wild first segment, and the literal part before a final `**`, as they were
    /// computed before the marks.
    #[test]
    fn marks_answer_as_the_text_does() {
        for text in all_strings(&['a', '*', '/', ':'], 8) {
            let Ok(glob) = PathGlob::parse(&text) else { continue };
            let pieces: Vec<&str> = text.split('/').collect();
            let merged: Vec<&str> = pieces
                .iter()
                .enumerate()
                .filter(|&(i, p)| !(*p == "**" && i > 0 && pieces[i - 1] == "**"))
                .map(|(_, p)| *p)
                .collect();
            let last = merged.len() - 1;
            let mut end = 0;
            let mut offset = 0;
            for (i, piece) in merged[..last].iter().enumerate() {
                if *piece == "**"
                    || piece.contains('*')
                    || (i > 0 && i + 1 == last && merged[last] == "**" && piece.contains(':'))
                {
                    break;
                }
                // Offsets in the text: merged `**` only ever follow the first wildcard.
                offset += piece.len();
                end = offset;
                offset += 1;
            }
            assert_eq!(glob.anchor(), &text[..end], "anchor of {text:?}");
            assert_eq!(
                glob.first_segment_is_wild(),
                pieces[0].contains('*'),
                "first segment of {text:?}"
            );
            let literal = match text.find('*') {
                Some(star) if star > 0 && text[star..].split('/').all(|segment| segment == "**") => Some(star - 1),
                _ => None,
            };
            assert_eq!(
                glob.literal_before_final_double_star(),
                literal,
                "literal part of {text:?}"
            );
        }
    }

    #[test]
    fn exhaustive_small_alphabet_paths() {
        let globs: Vec<String> = all_strings(&['a', '*', '/', ':'], 6)
            .into_iter()
            .filter(|g| PathGlob::parse(g).is_ok())
            .collect();
        let texts: Vec<(String, String)> = all_strings(&['a', '/', ':'], 5)
            .into_iter()
            .map(|t| (format!("/{t}"), t))
            .collect();
        let mut compared = 0;
        for glob in &globs {
            let parsed = PathGlob::parse(glob).unwrap();
            let re = regex_of(glob);
            for (slashed, text) in &texts {
                assert_eq!(
                    parsed.matches(text),
                    re.is_match(slashed),
                    "glob {glob:?} text {text:?}"
                );
                compared += 1;
            }
        }
        assert!(compared > 100_000, "{compared}");
    }

    /// Against brute force over every tag of a small alphabet long enough to hold any witness.
    #[test]
    fn exhaustive_small_alphabet_some_tag() {
        let patterns = all_strings(&['a', '*', ':', '.', '-'], 5);
        let names = all_strings(&['a', '.'], 2);
        let tags: Vec<String> = all_strings(&['a', '.', '-'], 6)
            .into_iter()
            .filter(|t| t.starts_with('a'))
            .collect();
        let tagged: Vec<Vec<String>> = names
            .iter()
            .map(|name| tags.iter().map(|t| format!("{name}:{t}")).collect())
            .collect();
        for pattern in &patterns {
            for (name, tagged) in names.iter().zip(&tagged) {
                let expected = tagged
                    .iter()
                    .any(|t| matches_bytes(pattern.as_bytes(), t.as_bytes(), false));
                assert_eq!(
                    segment_matches_some_tag(pattern.as_bytes(), name.as_bytes()),
                    expected,
                    "pattern {pattern:?} name {name:?}"
                );
            }
        }
    }

    #[test]
    fn the_issue_counter_example() {
        let glob = PathGlob::parse("myregistry.com/**/prod-*").unwrap();
        assert!(glob.matches("myregistry.com/prod-eu/prod-api:1"));
        assert!(glob.matches("myregistry.com/prod-api:1"));
        assert!(!glob.matches("myregistry.com/prod-eu/api:1"));
    }

    #[test]
    fn double_star_is_whole_segments_only() {
        let glob = PathGlob::parse("r.io/**/app").unwrap();
        assert!(glob.matches("r.io/app"));
        assert!(glob.matches("r.io/a/b/app"));
        assert!(!glob.matches("r.io/xapp"));
        assert!(!glob.matches("r.io/a/xapp"));
        assert_eq!(
            PathGlob::parse("r.io/a**"),
            Err(GlobError::PartialDoubleStar("a**".to_owned()))
        );
        assert_eq!(PathGlob::parse("r.io//a"), Err(GlobError::EmptySegment));
        assert_eq!(PathGlob::parse("r.io/a/"), Err(GlobError::EmptySegment));
        assert_eq!(PathGlob::parse(""), Err(GlobError::Empty));
    }

    #[test]
    fn some_tag_examples() {
        let glob = |g: &str| PathGlob::parse(g).unwrap();
        assert!(glob("r.io/app:v*").matches_some_tag("r.io/app"));
        assert!(glob("r.io/app:v1").matches_some_tag("r.io/app"));
        assert!(glob("r.io/app*").matches_some_tag("r.io/app"));
        assert!(glob("r.io/**").matches_some_tag("r.io/team/app"));
        assert!(!glob("r.io/app:v1").matches_some_tag("r.io/other"));
        assert!(!glob("r.io/app@*").matches_some_tag("r.io/app"));
        assert!(!glob("r.io/app:.x").matches_some_tag("r.io/app"));
        assert!(!glob("r.io/app:").matches_some_tag("r.io/app"));
        assert!(!glob("r.io/app/**").matches_some_tag("r.io/app"));
    }
}
