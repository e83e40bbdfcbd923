//! Regular expressions built for the few matches an evaluation makes: identities
//! (`issuerRegExp`, `subjectRegExp`) and CUE's `=~` and `!~`.
//!
//! A fresh instance (Kubewarden's policy-server gives one to every evaluation) compiles the
//! regular expressions of every covering policy again. `regex::Regex::new` builds, beside the
//! forward NFA, a reverse NFA, a lazy DFA, a one-pass DFA and a bounded backtracker, to search
//! long texts fast: in wasm ≈ 735,000 instructions for one identity pattern, and an identity
//! has two (docs/benchmarks.md, thirteenth pass). The module matches a few strings of a few
//! hundred bytes at most, so [`Regexp`] builds the forward NFA alone and searches it with the
//! PikeVM, the engine `regex` itself falls back on; one compiler serves the whole instance; an
//! identity pattern is parsed once. The language is `regex`'s: the same parser with the same
//! defaults (Unicode, UTF-8 only, nesting limit 250), leftmost-first, the same size limit. The
//! property tests below compare both on generated patterns and texts, error messages included.
//! Linking these two engines instead of all of `regex` also made `policy.wasm` 333 KB smaller.

use regex_automata::nfa::thompson::{self, Compiler, WhichCaptures, pikevm::PikeVM};
use regex_syntax::ast::parse::Parser as AstParser;
use regex_syntax::hir::translate::Translator;
use regex_syntax::hir::{Hir, Look};

/// `regex`'s limit on the size of the compiled NFA (`RegexBuilder::size_limit`'s default).
const SIZE_LIMIT: usize = 10 * (1 << 20);

thread_local! {
    /// One compiler for every expression of an instance: each compiler allocates a map of
    /// 10,000 UTF-8 suffixes the first time it compiles a Unicode class (`.`, `[^/]`), ≈ 124,000
    /// instructions in wasm, and clears it in place afterwards.
    static COMPILER: Compiler = {
        let mut compiler = Compiler::new();
        compiler.configure(
            thompson::Config::new()
                .which_captures(WhichCaptures::Implicit)
                .nfa_size_limit(Some(SIZE_LIMIT)),
        );
        compiler
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
    /// For [`Regexp::whole`]: an `(?x)` comment runs to the end of the pattern, so the `)$`
    /// of `^(?:pattern)$` would be part of it.
    #[error("a comment runs to the end of the pattern and would swallow the closing `)$`")]
    SwallowsEnd,
    /// The compiled NFA would exceed `regex`'s size limit, 10 MiB (`regex::Error::CompiledTooBig`).
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

impl From<thompson::BuildError> for RegexpError {
    fn from(e: thompson::BuildError) -> Self {
        match e.size_limit() {
            Some(_) => Self::TooBig,
            None => Self::Build(Box::new(e)),
        }
    }
}

impl Regexp {
    /// Compiles `pattern` as `regex::Regex::new` does.
    pub fn new(pattern: &str) -> Result<Self, RegexpError> {
        Self::compile(&regex_syntax::Parser::new().parse(pattern)?)
    }

    /// `pattern` against whole texts: `^(?:pattern)$`, as policy-controller and `cip` compile
    /// identities, with `pattern` a regular expression on its own (else `a)|(.*` would put an
    /// alternative outside the anchors). The anchors are added to the parsed pattern rather
    /// than to its text: one parse instead of two. The text would read the same unless an
    /// `(?x)` comment runs to the end and swallows the `)$`, which is refused (property test
    /// `whole_is_the_anchored_text`).
    pub fn whole(pattern: &str) -> Result<Self, RegexpError> {
        let parsed = AstParser::new()
            .parse_with_comments(pattern)
            .map_err(regex_syntax::Error::from)?;
        let hir = Translator::new()
            .translate(pattern, &parsed.ast)
            .map_err(regex_syntax::Error::from)?;
        if !pattern.ends_with('\n') && parsed.comments.iter().any(|c| c.span.end.offset == pattern.len()) {
            return Err(RegexpError::SwallowsEnd);
        }
        Self::compile(&Hir::concat(vec![Hir::look(Look::Start), hir, Hir::look(Look::End)]))
    }

    fn compile(hir: &Hir) -> Result<Self, RegexpError> {
        let compiled = COMPILER.with(|compiler| {
            compiler
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
            r"\s",
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
            prop::sample::select(vec!['a', 'b', 'A', 'é', 'λ', '/', '.', 'x', '1', ' ', '\n', '☃']),
            0..12,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// [`Regexp::whole`] is what `cip` and policy-controller do with an identity pattern
        /// (`^(?:pattern)$` compiled by `regex`), with the pattern first parsed alone: refused
        /// when either refuses, for the same reason, and otherwise matching the same texts.
        #[test]
        fn whole_is_the_anchored_text(pattern in pattern(), texts in prop::collection::vec(haystack(), 1..6)) {
            let alone = regex_syntax::Parser::new().parse(&pattern);
            let anchored = regex::Regex::new(&format!("^(?:{pattern})$"));
            match (Regexp::whole(&pattern), alone, anchored) {
                (Ok(ours), Ok(_), Ok(reference)) => {
                    for text in &texts {
                        prop_assert_eq!(ours.is_match(text), reference.is_match(text), "{:?} on {:?}", pattern, text);
                    }
                }
                (Err(RegexpError::Syntax(ours)), Err(alone), _) => prop_assert_eq!(ours.to_string(), alone.to_string()),
                (Err(RegexpError::SwallowsEnd), Ok(_), Err(regex::Error::Syntax(_))) => {}
                (Err(RegexpError::TooBig), Ok(_), Err(e @ regex::Error::CompiledTooBig(_))) => {
                    prop_assert_eq!(RegexpError::TooBig.to_string(), e.to_string())
                }
                (ours, alone, anchored) => prop_assert!(false, "{pattern:?}: {ours:?} vs {alone:?} / {anchored:?}"),
            }
        }

        /// Built or refused as `regex` builds or refuses it, with the same message; once
        /// built, it matches where `regex` matches.
        #[test]
        fn it_is_regexs_language(pattern in pattern(), texts in prop::collection::vec(haystack(), 1..6)) {
            match (Regexp::new(&pattern), regex::Regex::new(&pattern)) {
                (Ok(ours), Ok(reference)) => {
                    for text in &texts {
                        prop_assert_eq!(ours.is_match(text), reference.is_match(text), "{:?} on {:?}", pattern, text);
                    }
                }
                (Err(ours), Err(reference)) => prop_assert_eq!(ours.to_string(), reference.to_string()),
                (ours, reference) => prop_assert!(false, "{pattern:?}: {ours:?} vs {reference:?}"),
            }
        }
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
    fn a_comment_to_the_end_is_refused_a_terminated_one_is_not() {
        assert!(matches!(Regexp::whole("(?x)a|evil#"), Err(RegexpError::SwallowsEnd)));
        assert!(Regexp::whole("(?x)a # note\n").unwrap().is_match("a"));
        let whole = Regexp::whole("(?x)a # note\n|b").unwrap();
        assert!(whole.is_match("b") && whole.is_match("a") && !whole.is_match("ab"));
        assert!(Regexp::whole(r"(?x)a\#").unwrap().is_match("a#"));
    }

    #[test]
    fn a_pattern_too_big_is_refused_as_regex_refuses_it() {
        let pattern = r"\w{1000}{1000}";
        let ours = Regexp::new(pattern).unwrap_err();
        let reference = regex::Regex::new(pattern).unwrap_err();
        assert!(matches!(ours, RegexpError::TooBig));
        assert_eq!(ours.to_string(), reference.to_string());
    }

    #[test]
    fn syntax_errors_read_as_regex_writes_them() {
        for pattern in ["a)|(.*", "[z-a]", r"\p{Nope}", "a{2,1}", "(?-u:.)"] {
            let ours = Regexp::new(pattern).unwrap_err();
            let reference = regex::Regex::new(pattern).unwrap_err();
            assert!(matches!(ours, RegexpError::Syntax(_)), "{pattern}");
            assert_eq!(ours.to_string(), reference.to_string(), "{pattern}");
        }
    }
}
