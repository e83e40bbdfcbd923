//! Regular expressions read as Go's `regexp` reads them, for Rust's `regex` engines.
//!
//! policy-controller, cosign and CUE match identities (`issuerRegExp`, `subjectRegExp`) and CUE's
//! `=~`/`!~` with Go's `regexp` (RE2's syntax and meaning). Rust's `regex` accepts almost the
//! same syntax but gives some of it another meaning, and every such difference in an identity
//! pattern lets through a signer that policy-controller refuses, or the reverse:
//!
//! | written | Go | `regex` |
//! |---|---|---|
//! | `\d` `\w` `\s` (and `\D` `\W` `\S`) | ASCII: `[0-9]`, `[0-9A-Za-z_]`, `[\t\n\f\r ]` | Unicode: `v\d+` matches `v٣` |
//! | `\b` `\B` | ASCII word boundary | Unicode word boundary |
//! | `\pC` | `Cc`, `Cf`, `Co` (and `Cs`) | also `Cn`: every unassigned code point |
//! | `[a&&b]` `[a~~b]` `[\w--a]` | the characters `a`, `&`, `~`, `b`; `\w` and the range `-` to `a` | set operations |
//! | `[a[bc]]` | `[a[bc]` then a literal `]` | a nested class: `a`, `b` or `c` |
//! | `[\w-.]` `[\pL-z]` | `\w`, `-` and `.` | refused: a range cannot start at a class |
//! | `[--a]` `[]-a]` | the range from `-` (or `]`) to `a` | the characters `-`, `a` (and `]`) |
//!
//! [`parse`] returns a pattern's syntax tree with the first three rows and the last two
//! rewritten to Go's meaning (Perl classes as ASCII bracketed classes, word boundaries in
//! `(?-u:…)`, `\pC` as the union of its four categories, a backslash before the `-` or `]` Go
//! reads otherwise than `regex`: `[\w\-.]`, `[\--a]`, `[\]-a]`), and refuses what Go reads
//! otherwise or does not read at all: the fourth and fifth rows, the flags `x`, `u` and `R`,
//! `\b{start}` and the other special word boundaries, `\<`, `\>`, `\u`/`\U` escapes,
//! `\p{name=value}`, and Unicode class names that are neither one of Go's general categories,
//! `Any`, nor one of its scripts spelled as Go spells it (Go's `\p{Greek}` is the Script
//! property, as `regex`'s `\p{Script=Greek}`).
//!
//! What Go refuses is refused too, although `regex` would read it as Go would have: a
//! repetition of a repetition (`a**`, `a{2}*`), a count above 1000 (`x{1001}`), nested counts
//! whose product exceeds 1000 (`(a{40}){30}`), and class names spelled loosely (`\p{greek}`,
//! `\p{OldItalic}`; Go 1.25 reads some of these, earlier releases refuse them all). So a
//! policy accepted here is one policy-controller accepts. `go-regexp/tests/against_go.rs`
//! checks both directions against Go's own `regexp` on generated patterns.
//!
//! The tree goes to `regex_syntax`'s translator (the module's own engine) or, printed by
//! [`to_regex`], to `regex::Regex::new`. The Unicode tables differ by version (`regex_syntax`
//! follows newer Unicode than some Go releases), which only matters for characters assigned in
//! between.

mod classes;

use regex_syntax::ast::{
    self, Assertion, AssertionKind, Ast, ClassAscii, ClassAsciiKind, ClassBracketed, ClassPerl, ClassPerlKind,
    ClassSet, ClassSetItem, ClassSetRange, ClassSetUnion, ClassUnicode, ClassUnicodeKind, ClassUnicodeOpKind, Flag,
    Flags, FlagsItem, FlagsItemKind, Group, GroupKind, HexLiteralKind, Literal, LiteralKind, Repetition,
    RepetitionKind, RepetitionRange, Span,
};

/// Why a pattern is not read: not a regular expression at all, or a construct Go reads
/// differently or not at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `regex_syntax`'s parser refused it (as `regex::Regex::new` would).
    #[error("{0}")]
    Syntax(Box<ast::Error>),
    /// A construct of Rust's `regex` that Go's `regexp` (policy-controller's) reads
    /// differently or refuses.
    #[error("{construct} at offset {offset} is not read as Go's regexp (policy-controller's) reads it: {fix}")]
    NotGo {
        /// What was found, as written.
        construct: String,
        /// Its byte offset in the pattern.
        offset: usize,
        /// What to write instead.
        fix: &'static str,
    },
}

/// The nesting limit of `regex_syntax`'s parser by default (`regex::Regex::new`'s), which also
/// bounds the recursion of the rewrite below.
const NEST_LIMIT: u32 = 250;

/// Go's general categories (`unicode.Categories`): the one-letter groups and their members.
/// `Cn` (unassigned) and `LC` are not among them.
const GO_CATEGORIES: &[&str] = &[
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N", "Nd", "Nl", "No", "P",
    "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So", "Z", "Zl", "Zp", "Zs",
];

/// Go's scripts (`unicode.Scripts`, Unicode 15.0 as in Go 1.21 and later), spelled as Go looks
/// them up before 1.25: exactly. The last seven are Unicode 14 and 15's, unknown to Go 1.19 to
/// 1.20 (which refuse them).
const GO_SCRIPTS: &[&str] = &[
    "Adlam",
    "Ahom",
    "Anatolian_Hieroglyphs",
    "Arabic",
    "Armenian",
    "Avestan",
    "Balinese",
    "Bamum",
    "Bassa_Vah",
    "Batak",
    "Bengali",
    "Bhaiksuki",
    "Bopomofo",
    "Brahmi",
    "Braille",
    "Buginese",
    "Buhid",
    "Canadian_Aboriginal",
    "Carian",
    "Caucasian_Albanian",
    "Chakma",
    "Cham",
    "Cherokee",
    "Chorasmian",
    "Common",
    "Coptic",
    "Cuneiform",
    "Cypriot",
    "Cyrillic",
    "Deseret",
    "Devanagari",
    "Dives_Akuru",
    "Dogra",
    "Duployan",
    "Egyptian_Hieroglyphs",
    "Elbasan",
    "Elymaic",
    "Ethiopic",
    "Georgian",
    "Glagolitic",
    "Gothic",
    "Grantha",
    "Greek",
    "Gujarati",
    "Gunjala_Gondi",
    "Gurmukhi",
    "Han",
    "Hangul",
    "Hanifi_Rohingya",
    "Hanunoo",
    "Hatran",
    "Hebrew",
    "Hiragana",
    "Imperial_Aramaic",
    "Inherited",
    "Inscriptional_Pahlavi",
    "Inscriptional_Parthian",
    "Javanese",
    "Kaithi",
    "Kannada",
    "Katakana",
    "Kayah_Li",
    "Kharoshthi",
    "Khitan_Small_Script",
    "Khmer",
    "Khojki",
    "Khudawadi",
    "Lao",
    "Latin",
    "Lepcha",
    "Limbu",
    "Linear_A",
    "Linear_B",
    "Lisu",
    "Lycian",
    "Lydian",
    "Mahajani",
    "Makasar",
    "Malayalam",
    "Mandaic",
    "Manichaean",
    "Marchen",
    "Masaram_Gondi",
    "Medefaidrin",
    "Meetei_Mayek",
    "Mende_Kikakui",
    "Meroitic_Cursive",
    "Meroitic_Hieroglyphs",
    "Miao",
    "Modi",
    "Mongolian",
    "Mro",
    "Multani",
    "Myanmar",
    "Nabataean",
    "Nandinagari",
    "New_Tai_Lue",
    "Newa",
    "Nko",
    "Nushu",
    "Nyiakeng_Puachue_Hmong",
    "Ogham",
    "Ol_Chiki",
    "Old_Hungarian",
    "Old_Italic",
    "Old_North_Arabian",
    "Old_Permic",
    "Old_Persian",
    "Old_Sogdian",
    "Old_South_Arabian",
    "Old_Turkic",
    "Oriya",
    "Osage",
    "Osmanya",
    "Pahawh_Hmong",
    "Palmyrene",
    "Pau_Cin_Hau",
    "Phags_Pa",
    "Phoenician",
    "Psalter_Pahlavi",
    "Rejang",
    "Runic",
    "Samaritan",
    "Saurashtra",
    "Sharada",
    "Shavian",
    "Siddham",
    "SignWriting",
    "Sinhala",
    "Sogdian",
    "Sora_Sompeng",
    "Soyombo",
    "Sundanese",
    "Syloti_Nagri",
    "Syriac",
    "Tagalog",
    "Tagbanwa",
    "Tai_Le",
    "Tai_Tham",
    "Tai_Viet",
    "Takri",
    "Tamil",
    "Tangut",
    "Telugu",
    "Thaana",
    "Thai",
    "Tibetan",
    "Tifinagh",
    "Tirhuta",
    "Ugaritic",
    "Vai",
    "Wancho",
    "Warang_Citi",
    "Yezidi",
    "Yi",
    "Zanabazar_Square",
    // Unicode 14.0 and 15.0 (Go 1.21).
    "Cypro_Minoan",
    "Old_Uyghur",
    "Tangsa",
    "Toto",
    "Vithkuqi",
    "Kawi",
    "Nag_Mundari",
];

/// The most copies of a sub-expression Go's counted repetitions make, nested counts multiplied
/// (`regexp/syntax`'s `repeatIsValid(re, 1000)` and its check of `{n,m}`).
const MAX_COPIES: u32 = 1000;

/// Go's `C` within the characters a UTF-8 text can hold: `Cc`, `Cf`, `Co` (and the surrogates,
/// `Cs`, which no UTF-8 text holds and `regex` does not name). `regex`'s `\pC` adds `Cn`.
const GO_C: &[&str] = &["Cc", "Cf", "Co"];

/// Parses `pattern` into the syntax tree of `regex_syntax`, rewritten so that it matches what
/// Go's `regexp` matches.
pub fn parse(pattern: &str) -> Result<Ast, Error> {
    let parse = |text: &str| {
        ast::parse::ParserBuilder::new()
            .nest_limit(NEST_LIMIT)
            .build()
            .parse(text)
            .map_err(Box::new)
    };
    // A class Go splits into items otherwise than `regex_syntax` (`[\w-.]`) is spelled as
    // `regex_syntax` reads it with Go's meaning (`[\w\-.]`); the tree's spans are the
    // pattern's as written.
    let mut tree = match classes::spell(pattern) {
        None => parse(pattern).map_err(Error::Syntax)?,
        Some(spelled) => match parse(&spelled.text) {
            Ok(mut tree) => {
                spelled.remap(&mut tree);
                tree
            }
            Err(e) => return Err(Error::Syntax(spelled.error(parse(pattern), e))),
        },
    };
    rewrite(&mut tree)?;
    Ok(tree)
}

/// [`parse`], printed back as a pattern for `regex::Regex::new`.
pub fn to_regex(pattern: &str) -> Result<String, Error> {
    let tree = parse(pattern)?;
    let mut printed = String::with_capacity(pattern.len() + 16);
    ast::print::Printer::new()
        .print(&tree, &mut printed)
        .expect("printing to a String cannot fail");
    Ok(printed)
}

fn not_go(construct: impl Into<String>, span: &Span, fix: &'static str) -> Error {
    Error::NotGo {
        construct: construct.into(),
        offset: span.start.offset,
        fix,
    }
}

fn rewrite(tree: &mut Ast) -> Result<(), Error> {
    match tree {
        Ast::Empty(_) | Ast::Dot(_) => {}
        Ast::Literal(literal) => check_literal(literal)?,
        Ast::Flags(set) => check_flags(&set.flags)?,
        Ast::Assertion(assertion) => {
            if let Some(ascii) = ascii_word_boundary(assertion)? {
                *tree = ascii;
            }
        }
        Ast::ClassUnicode(class) => {
            if let Some(item) = unicode_class(class)? {
                *tree = Ast::class_bracketed(bracketed(class.span, false, item));
            }
        }
        Ast::ClassPerl(class) => {
            *tree = Ast::class_bracketed(bracketed(class.span, class.negated, go_perl_class(class)))
        }
        Ast::ClassBracketed(class) => class_set(&mut class.kind)?,
        Ast::Repetition(repetition) => {
            check_repetition(repetition)?;
            rewrite(&mut repetition.ast)?
        }
        Ast::Group(group) => {
            if let GroupKind::NonCapturing(flags) = &group.kind {
                check_flags(flags)?;
            }
            rewrite(&mut group.ast)?;
        }
        Ast::Alternation(alternation) => alternation.asts.iter_mut().try_for_each(rewrite)?,
        Ast::Concat(concat) => concat.asts.iter_mut().try_for_each(rewrite)?,
    }
    Ok(())
}

/// What Go's parser refuses in a repetition: one applied straight to another (`a**`, `a{2}*`,
/// `a*{2}`: "invalid nested repetition operator"), a count above [`MAX_COPIES`], and a count of
/// at least 2 over nested counts that together make more than [`MAX_COPIES`] copies ("invalid
/// repeat count").
fn check_repetition(repetition: &Repetition) -> Result<(), Error> {
    if let Ast::Repetition(_) = *repetition.ast {
        return Err(not_go(
            "a repetition of a repetition",
            &repetition.op.span,
            "Go refuses a repetition operator right after another: group the inner one, as in (?:a*)*",
        ));
    }
    if let RepetitionKind::Range(range) = &repetition.op.kind {
        let (min, max) = bounds(range);
        let too_many = "Go allows at most 1000 copies of a sub-expression, nested counts multiplied: write                         smaller counts, or * and + for any number";
        if min > MAX_COPIES || max.is_some_and(|max| max > MAX_COPIES) {
            return Err(not_go("a count above 1000", &repetition.op.span, too_many));
        }
        if (min >= 2 || max.is_some_and(|max| max >= 2)) && !repetition_within(repetition, MAX_COPIES) {
            return Err(not_go(
                "nested counts making more than 1000 copies",
                &repetition.op.span,
                too_many,
            ));
        }
    }
    Ok(())
}

/// A counted repetition's least and most copies (`None`: no most).
fn bounds(range: &RepetitionRange) -> (u32, Option<u32>) {
    match *range {
        RepetitionRange::Exactly(n) => (n, Some(n)),
        RepetitionRange::AtLeast(n) => (n, None),
        RepetitionRange::Bounded(min, max) => (min, Some(max)),
    }
}

/// Go's `repeatIsValid(re, n)`: the counted repetitions on every path down `tree` make at most
/// `n` copies, each counting its most (its least when unbounded), a count of 0 ending the path.
fn copies_within(tree: &Ast, n: u32) -> bool {
    match tree {
        Ast::Repetition(repetition) => repetition_within(repetition, n),
        Ast::Group(group) => copies_within(&group.ast, n),
        Ast::Alternation(alternation) => alternation.asts.iter().all(|ast| copies_within(ast, n)),
        Ast::Concat(concat) => concat.asts.iter().all(|ast| copies_within(ast, n)),
        _ => true,
    }
}

/// [`copies_within`] for a repetition.
fn repetition_within(repetition: &Repetition, mut n: u32) -> bool {
    if let RepetitionKind::Range(range) = &repetition.op.kind {
        let (min, max) = bounds(range);
        if max == Some(0) {
            return true;
        }
        let copies = max.unwrap_or(min);
        if copies > n {
            return false;
        }
        // A count of 0 (`{0,}`) divides nothing.
        n = n.checked_div(copies).unwrap_or(n);
    }
    copies_within(&repetition.ast, n)
}

/// Go's flags are `i`, `m`, `s` and `U`.
fn check_flags(flags: &Flags) -> Result<(), Error> {
    for item in &flags.items {
        let (name, fix) = match item.kind {
            FlagsItemKind::Flag(Flag::IgnoreWhitespace) => ("x", "write the pattern without spaces and comments"),
            FlagsItemKind::Flag(Flag::Unicode) => ("u", "Go's \\d, \\w, \\s and \\b are always ASCII; drop the flag"),
            FlagsItemKind::Flag(Flag::CRLF) => ("R", "drop the flag; match \\r explicitly"),
            _ => continue,
        };
        return Err(not_go(format!("the flag `{name}`"), &item.span, fix));
    }
    Ok(())
}

/// Go has `\x7F` and `\x{10FFFF}`, not `\u` or `\U`.
fn check_literal(literal: &Literal) -> Result<(), Error> {
    match literal.kind {
        LiteralKind::HexFixed(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong)
        | LiteralKind::HexBrace(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong) => Err(not_go(
            "a \\u or \\U escape",
            &literal.span,
            "write \\x{…} with the same hexadecimal code point",
        )),
        _ => Ok(()),
    }
}

/// `\b` and `\B` as Go reads them (ASCII word characters): `(?-u:\b)`, `(?-u:\B)`.
fn ascii_word_boundary(assertion: &Assertion) -> Result<Option<Ast>, Error> {
    match assertion.kind {
        AssertionKind::StartLine | AssertionKind::EndLine | AssertionKind::StartText | AssertionKind::EndText => {
            Ok(None)
        }
        AssertionKind::WordBoundary | AssertionKind::NotWordBoundary => {
            let span = assertion.span;
            let ascii = Flags {
                span,
                items: vec![
                    FlagsItem {
                        span,
                        kind: FlagsItemKind::Negation,
                    },
                    FlagsItem {
                        span,
                        kind: FlagsItemKind::Flag(Flag::Unicode),
                    },
                ],
            };
            Ok(Some(Ast::group(Group {
                span,
                kind: GroupKind::NonCapturing(ascii),
                ast: Box::new(Ast::assertion(assertion.clone())),
            })))
        }
        AssertionKind::WordBoundaryStart
        | AssertionKind::WordBoundaryEnd
        | AssertionKind::WordBoundaryStartAngle
        | AssertionKind::WordBoundaryEndAngle
        | AssertionKind::WordBoundaryStartHalf
        | AssertionKind::WordBoundaryEndHalf => Err(not_go(
            "a special word boundary (\\b{…}, \\<, \\>)",
            &assertion.span,
            "Go has only \\b and \\B",
        )),
    }
}

/// A Unicode class Go knows: `Some(item)` when it must be replaced by `item` (`\pC`), `None`
/// when `regex` reads it as Go does.
fn unicode_class(class: &mut ClassUnicode) -> Result<Option<ClassSetItem>, Error> {
    let fix = "Go knows \\pX and \\p{X} for its general categories, its scripts and Any, spelled exactly \
               (Lu, Greek, Old_Italic)";
    let (name, one_letter) = match &class.kind {
        ClassUnicodeKind::OneLetter(letter) => (letter.to_string(), true),
        // Go reads `\p{^Greek}` as `\P{Greek}` (and `\P{^Greek}` as `\p{Greek}`); `regex`
        // takes `^Greek` for a name.
        ClassUnicodeKind::Named(name) => match name.strip_prefix('^') {
            Some(name) => {
                class.negated = !class.negated;
                (name.to_owned(), false)
            }
            None => (name.clone(), false),
        },
        ClassUnicodeKind::NamedValue { .. } => {
            return Err(not_go("a \\p{name=value} class", &class.span, fix));
        }
    };
    if name == "C" {
        // `\pC` is Go's C, `\PC` its complement.
        let span = class.span;
        let categories = GO_C
            .iter()
            .map(|category| {
                ClassSetItem::Unicode(ClassUnicode {
                    span,
                    negated: false,
                    kind: ClassUnicodeKind::Named((*category).to_owned()),
                })
            })
            .collect();
        let union = ClassSetItem::Union(ClassSetUnion {
            span,
            items: categories,
        });
        return Ok(Some(if class.negated {
            ClassSetItem::Bracketed(Box::new(bracketed(span, true, union)))
        } else {
            union
        }));
    }
    if name == "Any" || GO_CATEGORIES.contains(&name.as_str()) {
        class.kind = ClassUnicodeKind::Named(name);
        return Ok(None);
    }
    // Go's other names are its scripts, spelled as Go spells them (`Old_Italic`, not
    // `OldItalic` or `old_italic`, which `regex` reads too). `regex` looks a bare name up as a
    // binary property first (`\p{Alphabetic}`), so the name is asked for as a script explicitly.
    if one_letter || !GO_SCRIPTS.contains(&name.as_str()) {
        return Err(not_go(format!("the Unicode class {name}"), &class.span, fix));
    }
    class.kind = ClassUnicodeKind::NamedValue {
        op: ClassUnicodeOpKind::Equal,
        name: "Script".to_owned(),
        value: name,
    };
    Ok(None)
}

fn bracketed(span: Span, negated: bool, item: ClassSetItem) -> ClassBracketed {
    ClassBracketed {
        span,
        negated,
        kind: ClassSet::Item(item),
    }
}

/// Go's Perl classes, all ASCII: `\d` is `[0-9]`, `\w` `[0-9A-Za-z_]`, `\s` `[\t\n\f\r ]` (no
/// `\v`), each as a bracketed class of the Unicode mode, so that `(?i)` folds it as Go folds
/// it (`(?i)\w` matches the Kelvin sign, which folds to `k`) and a negated one is the
/// complement among all characters, as Go's `\D`.
fn go_perl_class(class: &ClassPerl) -> ClassSetItem {
    let span = class.span;
    match class.kind {
        ClassPerlKind::Digit => ClassSetItem::Ascii(ClassAscii {
            span,
            kind: ClassAsciiKind::Digit,
            negated: false,
        }),
        ClassPerlKind::Word => ClassSetItem::Ascii(ClassAscii {
            span,
            kind: ClassAsciiKind::Word,
            negated: false,
        }),
        ClassPerlKind::Space => {
            let hex = |c: char| Literal {
                span,
                kind: LiteralKind::HexFixed(HexLiteralKind::X),
                c,
            };
            let range = |start: char, end: char| {
                ClassSetItem::Range(ClassSetRange {
                    span,
                    start: hex(start),
                    end: hex(end),
                })
            };
            ClassSetItem::Union(ClassSetUnion {
                span,
                items: vec![range('\t', '\n'), range('\x0C', '\r'), ClassSetItem::Literal(hex(' '))],
            })
        }
    }
}

/// Inside brackets: Perl classes, `\pC` and literals as above; Go has no set operations and no
/// nested classes (it reads `[` and `&&` there as characters).
fn class_set(set: &mut ClassSet) -> Result<(), Error> {
    match set {
        ClassSet::Item(item) => class_set_item(item),
        ClassSet::BinaryOp(op) => Err(not_go(
            "a class set operation (&&, --, ~~)",
            &op.span,
            "Go has none: list the characters, or write \\&, \\- or \\~ for the characters themselves",
        )),
    }
}

fn class_set_item(item: &mut ClassSetItem) -> Result<(), Error> {
    match item {
        ClassSetItem::Empty(_) | ClassSetItem::Ascii(_) => Ok(()),
        ClassSetItem::Literal(literal) => check_literal(literal),
        ClassSetItem::Range(range) => {
            check_literal(&range.start)?;
            check_literal(&range.end)
        }
        ClassSetItem::Unicode(class) => {
            if let Some(replacement) = unicode_class(class)? {
                *item = replacement;
            }
            Ok(())
        }
        ClassSetItem::Perl(class) => {
            let go = go_perl_class(class);
            *item = if class.negated {
                ClassSetItem::Bracketed(Box::new(bracketed(class.span, true, go)))
            } else {
                go
            };
            Ok(())
        }
        ClassSetItem::Bracketed(class) => Err(not_go(
            "a class nested in a class",
            &class.span,
            "Go reads [ there as a character: write \\[ for it, or list the characters in one class",
        )),
        ClassSetItem::Union(union) => union.items.iter_mut().try_for_each(class_set_item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pattern`, read as Go reads it, compiled by `regex`.
    fn go(pattern: &str) -> regex::Regex {
        regex::Regex::new(&to_regex(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))).expect("printed pattern")
    }

    fn refused(pattern: &str) -> String {
        match parse(pattern) {
            Err(Error::NotGo { construct, .. }) => construct,
            other => panic!("{pattern}: {other:?}"),
        }
    }

    /// Each row of the module's table, with what Go's regexp answers (checked against Go itself
    /// by tests/against_go.rs on generated patterns).
    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        // U+0663 ARABIC-INDIC DIGIT THREE is `\d` for regex, not for Go.
        assert!(regex::Regex::new(r"^v\d+$").unwrap().is_match("v\u{663}"));
        assert!(!go(r"^v\d+$").is_match("v\u{663}"));
        assert!(go(r"^v\d+$").is_match("v3"));
        assert!(go(r"^\D$").is_match("\u{663}") && !go(r"^\D$").is_match("3"));
        // Word characters: é is one for regex only; negated classes take every other character.
        assert!(!go(r"^\w$").is_match("é") && go(r"^\W$").is_match("é") && go(r"^\w$").is_match("_"));
        // Go's \s has no \v and nothing beyond ASCII.
        for (text, space) in [
            (" ", true),
            ("\t", true),
            ("\n", true),
            ("\x0C", true),
            ("\r", true),
            ("\x0B", false),
            ("\u{A0}", false),
        ] {
            assert_eq!(go(r"^\s$").is_match(text), space, "{text:?}");
            assert_eq!(go(r"^\S$").is_match(text), !space, "{text:?}");
        }
        // Inside brackets, negated ones too.
        assert!(go(r"^[\d_]+$").is_match("1_2") && !go(r"^[\d_]+$").is_match("\u{663}"));
        assert!(go(r"^[^\D]$").is_match("7") && !go(r"^[^\D]$").is_match("\u{663}"));
        assert!(go(r"^[\Sa]$").is_match("\x0B") && !go(r"^[\Sa]$").is_match(" "));
    }

    #[test]
    fn case_folding_reaches_what_go_folds() {
        // U+212A KELVIN SIGN folds to k: Go's (?i)\w matches it, its \w does not.
        assert!(go(r"(?i)^\w$").is_match("\u{212A}"));
        assert!(!go(r"^\w$").is_match("\u{212A}"));
        assert!(go(r"(?i)^[\w]$").is_match("\u{17F}"));
    }

    #[test]
    fn word_boundaries_are_ascii_as_in_go() {
        // Between a and é: a boundary for Go (é is no word character), none for regex.
        assert!(!regex::Regex::new(r"a\b").unwrap().is_match("aé"));
        assert!(go(r"a\b").is_match("aé"));
        assert!(!go(r"a\B").is_match("aé"));
        // Go tests assertions between characters only: inside `ſ` (two bytes) is no position.
        // (RE2, the C++ engine, which tests every byte, finds `\B` there.)
        assert!(!go(r"\B").is_match("xſ_") && go(r"\B").is_match("xé"));
        assert!(go(r"\bv1\b").is_match("x-v1-y") && !go(r"\bv1\b").is_match("xv1"));
    }

    #[test]
    fn unicode_classes_are_gos() {
        // regex's \pC has the unassigned code points (Cn); Go's has not.
        assert!(regex::Regex::new(r"^\pC$").unwrap().is_match("\u{378}"));
        assert!(!go(r"^\pC$").is_match("\u{378}") && go(r"^\PC$").is_match("\u{378}"));
        assert!(go(r"^\pC$").is_match("\u{E000}") && go(r"^\p{C}$").is_match("\0"));
        assert!(go(r"^[\pC]$").is_match("\u{E000}") && !go(r"^[^\PC]$").is_match("\u{378}"));
        // A script is the Script property: U+0345 is Greek by its extensions only.
        assert!(!go(r"^\p{Greek}$").is_match("\u{345}") && go(r"^\p{Greek}$").is_match("λ"));
        assert!(go(r"^\pL\p{Lu}\p{Any}$").is_match("aBç"));
        // Go's `\p{^X}` is `\P{X}`, and `\P{^X}` is `\p{X}`.
        assert!(go(r"^\p{^Greek}$").is_match("a") && !go(r"^\p{^Greek}$").is_match("λ"));
        assert!(go(r"^\P{^Greek}$").is_match("λ") && !go(r"^[\P{^Lu}]$").is_match("a"));
        assert!(go(r"^\p{Old_Italic}\p{Kawi}$").is_match("\u{10300}\u{11F04}"));
        // Every script Go knows is one `regex` knows under the same name.
        for script in GO_SCRIPTS {
            let printed = to_regex(&format!(r"\p{{{script}}}")).unwrap();
            assert!(regex::Regex::new(&printed).is_ok(), "{script}");
        }
        // Names Go does not know: refused here, or by the translator once asked for as scripts.
        for pattern in [
            r"\p{Alphabetic}",
            r"\p{Letter}",
            r"\p{greek}",
            r"\p{OldItalic}",
            r"\p{Script=Greek}",
            r"\pX",
            r"\p{LC}",
            r"\p{Cn}",
        ] {
            let compiled = to_regex(pattern).map(|printed| regex::Regex::new(&printed));
            assert!(!matches!(compiled, Ok(Ok(_))), "{pattern}: {compiled:?}");
        }
    }

    #[test]
    fn what_go_reads_otherwise_is_refused() {
        for (pattern, construct) in [
            ("[a&&b]", "a class set operation (&&, --, ~~)"),
            ("[a-z--c]", "a class set operation (&&, --, ~~)"),
            ("[a~~b]", "a class set operation (&&, --, ~~)"),
            ("[a[bc]]", "a class nested in a class"),
            ("(?x)a b", "the flag `x`"),
            ("(?-u:a)", "the flag `u`"),
            ("(?R)a$", "the flag `R`"),
            (r"\b{start}a", "a special word boundary (\\b{…}, \\<, \\>)"),
            (r"\<a\>", "a special word boundary (\\b{…}, \\<, \\>)"),
            (r"\u0041", "a \\u or \\U escape"),
            (r"[\U00000041]", "a \\u or \\U escape"),
            (r"\p{sc=Greek}", "a \\p{name=value} class"),
            // What Go refuses although `regex` reads it as Go would have.
            ("a**", "a repetition of a repetition"),
            ("a{2}*", "a repetition of a repetition"),
            ("a*{2}", "a repetition of a repetition"),
            ("a+?+", "a repetition of a repetition"),
            ("x{1001}", "a count above 1000"),
            ("x{0,1001}", "a count above 1000"),
            ("x{1001,}", "a count above 1000"),
            ("(a{40}){30}", "nested counts making more than 1000 copies"),
            ("(?:(?:a{10}|b){10}c){11}", "nested counts making more than 1000 copies"),
            (r"\p{greek}", "the Unicode class greek"),
            (r"\p{GREEK}", "the Unicode class GREEK"),
            (r"\p{OldItalic}", "the Unicode class OldItalic"),
            (r"[\p{Old Italic}]", "the Unicode class Old Italic"),
            (r"\p{^Letter}", "the Unicode class Letter"),
        ] {
            assert_eq!(refused(pattern), construct, "{pattern}");
        }
        let message = parse("a(?x) b").unwrap_err().to_string();
        assert!(
            message.contains("offset 3") && message.contains("Go's regexp"),
            "{message}"
        );
    }

    #[test]
    fn what_both_read_alike_is_kept() {
        for (pattern, printed) in [
            (
                r"^https://github\.com/org/[^/]+@refs/tags/v[0-9]+$",
                r"^https://github\.com/org/[^/]+@refs/tags/v[0-9]+$",
            ),
            (r"(?i:a)(?-s:.)\x41\x{42}\A\z\n", r"(?i:a)(?-s:.)\x41\x{42}\A\z\n"),
            (r"\d", r"[[:digit:]]"),
            (r"\S", r"[^\x09-\x0A\x0C-\x0D\x20]"),
            (r"\b", r"(?-u:\b)"),
            (r"\p{Greek}", r"\p{Script=Greek}"),
        ] {
            assert_eq!(to_regex(pattern).unwrap(), printed, "{pattern}");
        }
        // Go's limits, reached and not passed; a count of 0 ends the product (Go's
        // `repeatIsValid`), and `*`, `+` and `?` are no counts.
        for pattern in [
            "x{1000}",
            "x{0,1000}",
            "(a{10}){100}",
            "(?:(?:a{10}|b){10}c){10}",
            "(a{0}){1000}",
            "(a*){1000}",
            "(?:a*)*",
            "a*?",
            "(a{500}|b{2}){2}",
        ] {
            assert!(parse(pattern).is_ok(), "{pattern}");
        }
        assert!(matches!(parse("a)|(.*"), Err(Error::Syntax(_))));
        assert!(matches!(parse(&"(".repeat(300)), Err(Error::Syntax(_))));
    }
}
