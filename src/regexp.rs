//! Regular expressions built for the few matches an evaluation makes: identities
//! (`issuerRegExp`, `subjectRegExp`) and CUE's `=~` and `!~`.
//!
//! The language is Go's `regexp`, which policy-controller, cosign and CUE match these with:
//! [`go_regexp::parse`] reads a pattern into `regex_syntax`'s tree with Go's meaning (`\d`,
//! `\w`, `\s` and `\b` are ASCII, `\pC` has no unassigned code points) and refuses what Go
//! reads otherwise (class set operations, nested classes, the flags `x`, `u`, `R`). The same
//! crate gives `cip` the same reading, so the module and its host cannot disagree on an identity.
//!
//! A fresh instance (Kubewarden's policy-server gives one to every evaluation) compiles the
//! regular expressions of every covering policy again. `regex::Regex::new` builds, beside the
//! forward NFA, a reverse NFA, a lazy DFA, a one-pass DFA and a bounded backtracker, to search
//! long texts fast: in wasm ≈ 735,000 instructions for one identity pattern, and an identity
//! has two (docs/benchmarks.md, thirteenth pass). The module matches a few strings of a few
//! hundred bytes at most, so [`Regexp`] builds the forward NFA alone and searches it with the
//! PikeVM, the engine `regex` itself falls back on; one compiler serves the whole instance; an
//! identity pattern is parsed once. Beyond Go's reading, the engine is `regex`'s: the same
//! translator with the same defaults (Unicode, UTF-8 only, nesting limit 250), leftmost-first,
//! the same size limit. The property tests below compare it with `regex` compiling the pattern
//! go_regexp prints, error messages included. Linking these two engines instead of all of `regex`
//! also made `policy.wasm` 333 KB smaller.

use std::cell::RefCell;

use regex_automata::nfa::thompson::{self, Compiler, WhichCaptures, pikevm::PikeVM};
use regex_syntax::hir::translate::Translator;
use regex_syntax::hir::{Hir, Look};

/// `regex`'s limit on the size of the compiled NFA (`RegexBuilder::size_limit`'s default).
pub const SIZE_LIMIT: usize = 10 * (1 << 20);

thread_local! {
    /// One compiler for every expression of an instance: each compiler allocates a map of
    /// 10,000 UTF-8 suffixes the first time it compiles a Unicode class (`.`, `[^/]`), ≈ 124,000
    /// instructions in wasm, and clears it in place afterwards. Its size limit is set before
    /// each build ([`Regexp::new_within`] lowers it).
    static COMPILER: RefCell<Compiler> = {
        let mut compiler = Compiler::new();
        compiler.configure(thompson::Config::new().which_captures(WhichCaptures::Implicit));
        RefCell::new(compiler)
    };
}

/// A compiled regular expression; [`Regexp::is_match`] searches anywhere in a text, as
/// `regex::Regex::is_match` does.
#[derive(Clone, Debug)]
pub struct Regexp(PikeVM);

/// Why a pattern does not compile, worded as `regex::Error` words it.
#[derive(Debug, thiserror::Error)]
pub enum RegexpError {
    /// Not a regular expression (`regex::Error::Syntax`).
    #[error("{0}")]
    Syntax(Box<regex_syntax::Error>),
    /// A construct that Go's `regexp`, policy-controller's, reads otherwise or not at all.
    #[error("{0}")]
    NotGo(Box<go_regexp::Error>),
    /// The compiled NFA would exceed `regex`'s size limit, 10 MiB (`regex::Error::CompiledTooBig`),
    /// or the lower limit given to [`Regexp::new_within`] (the message names `regex`'s).
    #[error("Compiled regex exceeds size limit of {SIZE_LIMIT} bytes.")]
    TooBig,
    /// Any other failure to build (too many states); `regex` shows these as syntax errors.
    #[error("{0}")]
    Build(Box<thompson::BuildError>),
}

impl From<regex_syntax::Error> for RegexpError {
    fn from(e: regex_syntax::Error) -> Self {
        Self::Syntax(Box::new(e))
    }
}

impl From<go_regexp::Error> for RegexpError {
    fn from(e: go_regexp::Error) -> Self {
        match e {
            go_regexp::Error::Syntax(e) => Self::Syntax(Box::new(regex_syntax::Error::Parse(*e))),
            not_go @ go_regexp::Error::NotGo { .. } => Self::NotGo(Box::new(not_go)),
        }
    }
}

impl From<thompson::BuildError> for RegexpError {
    fn from(e: thompson::BuildError) -> Self {
        match e.size_limit() {
            Some(_) => Self::TooBig,
            None => Self::Build(Box::new(e)),
        }
    }
}

impl Regexp {
    /// Compiles `pattern` as Go's `regexp.Compile` reads it.
    pub fn new(pattern: &str) -> Result<Self, RegexpError> {
        Self::compile(&Self::translate(pattern)?, SIZE_LIMIT)
    }

    /// As [`Regexp::new`], with the compiled NFA limited to `limit` bytes (at most
    /// [`SIZE_LIMIT`]): [`RegexpError::TooBig`] past it. The compiler checks the limit as it
    /// adds states, so a refusal costs what the limit allows, not what the pattern asks for:
    /// several expressions can share one budget by each getting what the others left
    /// ([`Regexp::compiled_size`]).
    pub fn new_within(pattern: &str, limit: usize) -> Result<Self, RegexpError> {
        Self::compile(&Self::translate(pattern)?, limit.min(SIZE_LIMIT))
    }

    /// The bytes the compiled NFA takes, as the size limit counts them.
    pub fn compiled_size(&self) -> usize {
        self.0.get_nfa().memory_usage()
    }

    /// `pattern` against whole texts: `^(?:pattern)$`, as policy-controller and `cip` compile
    /// identities, with `pattern` a regular expression on its own (else `a)|(.*` would put an
    /// alternative outside the anchors). The anchors are added to the parsed pattern rather
    /// than to its text: one parse instead of two. (The text would read the same: Go has no
    /// `(?x)`, whose comment could have swallowed the `)$`, and it is refused.)
    pub fn whole(pattern: &str) -> Result<Self, RegexpError> {
        let hir = Self::translate(pattern)?;
        Self::compile(
            &Hir::concat(vec![Hir::look(Look::Start), hir, Hir::look(Look::End)]),
            SIZE_LIMIT,
        )
    }

    fn translate(pattern: &str) -> Result<Hir, RegexpError> {
        let ast = go_regexp::parse(pattern)?;
        Ok(Translator::new()
            .translate(pattern, &ast)
            .map_err(regex_syntax::Error::from)?)
    }

    fn compile(hir: &Hir, limit: usize) -> Result<Self, RegexpError> {
        let compiled = COMPILER.with_borrow_mut(|compiler| {
            compiler
                .configure(thompson::Config::new().nfa_size_limit(Some(limit)))
                .build_from_hir(hir)
                .and_then(PikeVM::new_from_nfa)
                .map_err(RegexpError::from)
        });
        compiled.map(Self)
    }

    /// Whether the expression matches somewhere in `haystack`.
    pub fn is_match(&self, haystack: &str) -> bool {
        self.0.is_match(&mut self.0.create_cache(), haystack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Patterns from pieces that exercise what differs between engines: classes (ASCII,
    /// Unicode, negated), repetitions (greedy, lazy, counted), alternation, anchors, word
    /// boundaries, flags, groups, and broken syntax.
    fn pattern() -> impl Strategy<Value = String> {
        let atom = prop::sample::select(vec![
            "a",
            "b",
            "é",
            ".",
            "[^/]",
            "[a-c]",
            r"\w",
            r"\d",
            r"\D",
            r"\s",
            r"\pC",
            "[a&&b]",
            r"\p{Greek}",
            r"\b",
            r"\B",
            "^",
            "$",
            r"\.",
            "/",
            "(?i)",
            "(?s)",
            "(?m)",
            "(?-u:b)",
            "(?-u:.)",
            r"(?-u:\B)",
            "(",
            ")",
            "[",
            "*",
            r"\",
            "(?x)",
            "(?-x)",
            "#",
            " ",
            "\n",
            "[#]",
            r"\#",
        ]);
        let piece = (
            atom,
            prop::sample::select(vec!["", "*", "+", "?", "*?", "{2}", "{1,3}"]),
        )
            .prop_map(|(a, q)| format!("{a}{q}"));
        let branch = prop::collection::vec(piece, 0..5).prop_map(|p| p.concat());
        prop::collection::vec(branch, 1..4).prop_flat_map(|branches| {
            let joined = branches.join("|");
            prop_oneof![
                Just(joined.clone()),
                Just(format!("({joined})x")),
                Just(format!("^(?:{joined})$")),
                Just(format!("(?:{joined})+")),
                // Free-spacing mode, with comments running to the end or closed by a newline.
                Just(format!("(?x){joined}")),
                Just(format!("(?x){joined}#c")),
                Just(format!("(?x){joined}#c\n")),
            ]
        })
    }

    fn haystack() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                'a', 'b', 'A', 'é', 'λ', '/', '.', 'x', '1', '\u{663}', ' ', '\n', '\u{378}', '☃',
            ]),
            0..12,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// [`Regexp::whole`] is what `cip` and policy-controller do with an identity pattern:
        /// `^(?:pattern)$`, read as Go reads it (go_regexp prints that reading for `regex`), with
        /// the pattern first read alone: refused when either refuses, for the same reason, and
        /// otherwise matching the same texts.
        #[test]
        fn whole_is_the_anchored_text(pattern in pattern(), texts in prop::collection::vec(haystack(), 1..6)) {
            let anchored = go_regexp::to_regex(&pattern).map(|printed| regex::Regex::new(&format!("^(?:{printed})$")));
            compare(&pattern, Regexp::whole(&pattern), anchored, &texts)?;
        }

        /// Built or refused as `regex` builds or refuses what go_regexp prints, with the same
        /// message; once built, it matches where `regex` matches.
        #[test]
        fn it_is_regexs_engine_on_gos_reading(pattern in pattern(), texts in prop::collection::vec(haystack(), 1..6)) {
            let reference = go_regexp::to_regex(&pattern).map(|printed| regex::Regex::new(&printed));
            compare(&pattern, Regexp::new(&pattern), reference, &texts)?;
        }
    }

    fn compare(
        pattern: &str,
        ours: Result<Regexp, RegexpError>,
        reference: Result<Result<regex::Regex, regex::Error>, go_regexp::Error>,
        texts: &[String],
    ) -> Result<(), TestCaseError> {
        match (ours, reference) {
            (Ok(ours), Ok(Ok(reference))) => {
                for text in texts {
                    prop_assert_eq!(
                        ours.is_match(text),
                        reference.is_match(text),
                        "{:?} on {:?}",
                        pattern,
                        text
                    );
                }
            }
            // Refused while reading: the same error, the same words.
            (Err(ours @ (RegexpError::Syntax(_) | RegexpError::NotGo(_))), Err(go)) => {
                prop_assert_eq!(ours.to_string(), go.to_string())
            }
            // Refused once read (an unknown class name, too big): `regex` refuses the printed
            // pattern too (its message quotes the printed text, not the pattern).
            (Err(RegexpError::TooBig), Ok(Err(e @ regex::Error::CompiledTooBig(_)))) => {
                prop_assert_eq!(RegexpError::TooBig.to_string(), e.to_string())
            }
            (Err(RegexpError::Syntax(_)), Ok(Err(regex::Error::Syntax(_)))) => {}
            (ours, reference) => prop_assert!(false, "{pattern:?}: {ours:?} vs {reference:?}"),
        }
        Ok(())
    }

    #[test]
    fn identity_patterns_match_as_regex_does() {
        let subject = r"^(?:https://github\.com/myorg/[^/]+/\.github/workflows/.*@refs/heads/main)$";
        let ours = Regexp::new(subject).unwrap();
        for (text, expected) in [
            (
                "https://github.com/myorg/app/.github/workflows/release.yml@refs/heads/main",
                true,
            ),
            (
                "https://github.com/myorg/app/.github/workflows/release.yml@refs/heads/main2",
                false,
            ),
            (
                "https://github.com/myorg/a/b/.github/workflows/x@refs/heads/main",
                false,
            ),
            (
                "https://github.com/myorgé/app/.github/workflows/x@refs/heads/main",
                false,
            ),
            (
                "https://github.com/myorg/appé/.github/workflows/x@refs/heads/main",
                true,
            ),
            (
                "xhttps://github.com/myorg/app/.github/workflows/x@refs/heads/main",
                false,
            ),
        ] {
            assert_eq!(ours.is_match(text), expected, "{text}");
        }
    }

    #[test]
    fn identities_read_as_go_reads_them() {
        // U+0663 ARABIC-INDIC DIGIT THREE: a digit for `regex`'s \d, not for Go's.
        let tag = Regexp::whole(r"https://github\.com/org/app/\.github/workflows/release\.yml@refs/tags/v\d+").unwrap();
        assert!(tag.is_match("https://github.com/org/app/.github/workflows/release.yml@refs/tags/v3"));
        assert!(!tag.is_match("https://github.com/org/app/.github/workflows/release.yml@refs/tags/v\u{663}"));
        assert!(!Regexp::whole(r"\w+@example\.com").unwrap().is_match("ré@example.com"));
        // What Go reads otherwise is refused, `(?x)` among them: its comment could swallow `)$`.
        // So is what Go refuses although `regex` reads it: policy-controller would refuse the
        // policy.
        for pattern in [
            "(?x)a|evil#",
            "[a&&b]",
            "[a[b]]",
            "(?-u:a)",
            "v**",
            r"\d{1001}",
            "(a{40}){30}",
            r"\p{greek}",
        ] {
            assert!(
                matches!(Regexp::whole(pattern), Err(RegexpError::NotGo(_))),
                "{pattern}"
            );
        }
    }

    #[test]
    fn a_pattern_too_big_is_refused_as_regex_refuses_it() {
        // Within Go's 1000 copies, beyond `regex`'s size limit.
        let pattern = r"\PL{0,1000}";
        let ours = Regexp::new(pattern).unwrap_err();
        let reference = regex::Regex::new(pattern).unwrap_err();
        assert!(matches!(ours, RegexpError::TooBig));
        assert_eq!(ours.to_string(), reference.to_string());
    }

    #[test]
    fn syntax_errors_read_as_regex_writes_them() {
        for pattern in ["a)|(.*", "[z-a]", r"\p{Nope", "a{2,1}", "(a"] {
            let ours = Regexp::new(pattern).unwrap_err();
            let reference = regex::Regex::new(pattern).unwrap_err();
            assert!(matches!(ours, RegexpError::Syntax(_)), "{pattern}");
            assert_eq!(ours.to_string(), reference.to_string(), "{pattern}");
        }
    }
}
