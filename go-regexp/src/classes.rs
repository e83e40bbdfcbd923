//! Where Go's parser and `regex_syntax`'s split a bracketed class into different items.
//!
//! Go's `regexp/syntax` (`parseClass`) reads a class item by item: a POSIX class (`[:alpha:]`),
//! a Unicode class (`\pL`, `\p{Greek}`), a Perl class (`\d` … `\W`), or a character, followed
//! by `-` and a second character (not `]`) to make a range. A `-` is therefore a character
//! wherever an item starts and no range follows it. `regex_syntax` reads three spellings
//! otherwise:
//!
//! | written | Go | `regex_syntax` |
//! |---|---|---|
//! | `[\w-.]`, `[\pL-z]` | `\w`, `-` and `.` | refused: a range cannot start at a class |
//! | `[--a]` (a run of `3n + 2` leading dashes, then a character) | the range `-` to `a` | the characters `-` and `a` |
//! | `[]-a]` | the range `]` to `a` | the characters `]`, `-` and `a` |
//!
//! [`spell`] writes these as `regex_syntax` reads them with Go's meaning: a backslash before the
//! `-` of the first (`[\w\-.]`), before the dash that starts the range of the second
//! (`[\--a]`), before the `]` of the third (`[\]-a]`). A range Go refuses is then refused by
//! `regex_syntax` too (`[--\w]`, `[]-!]`). A `-` followed by another (`[\w--a]`) is left for
//! `regex_syntax` to read as a set operation, which the crate refuses on purpose.
//!
//! Nothing else changes: `\-` and `\]` are the characters themselves in both readers, inside
//! or outside a class. [`Spelled::remap`] moves the spans of the parsed tree back onto the
//! pattern as written, so that error offsets and the translator's messages point into it.

use regex_syntax::ast::{self, Ast, ClassSet, ClassSetItem, GroupKind, Position, Span};

/// A pattern with backslashes inserted where [`spell`] needs them.
pub(crate) struct Spelled {
    /// The pattern as `regex_syntax` is given it.
    pub(crate) text: String,
    /// The offset in `text` of each inserted backslash, ascending.
    inserted: Vec<usize>,
    /// The line of the pattern (from 1) of each inserted backslash.
    lines: Vec<usize>,
}

/// `pattern` with the spellings of the module documentation applied, or `None` when none is
/// needed (the pattern goes to `regex_syntax` as written).
pub(crate) fn spell(pattern: &str) -> Option<Spelled> {
    let mut before = Vec::new();
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // Go's `\Q…\E` quotes text that `regex_syntax` does not read at all (it refuses
            // `\Q`): nothing to spell.
            b'\\' if bytes.get(i + 1) == Some(&b'Q') => return None,
            b'\\' => i = escape_end(pattern, i),
            b'[' => i = class(pattern, i, &mut before),
            _ => i += 1,
        }
    }
    if before.is_empty() {
        return None;
    }
    let mut text = String::with_capacity(pattern.len() + before.len());
    let mut inserted = Vec::with_capacity(before.len());
    let mut lines = Vec::with_capacity(before.len());
    let (mut copied, mut line) = (0, 1);
    for &at in &before {
        line += bytes[copied..at].iter().filter(|&&b| b == b'\n').count();
        text.push_str(&pattern[copied..at]);
        inserted.push(text.len());
        lines.push(line);
        text.push('\\');
        copied = at;
    }
    text.push_str(&pattern[copied..]);
    Some(Spelled { text, inserted, lines })
}

/// The length of the character at byte `i` (0 at the end).
fn char_len(pattern: &str, i: usize) -> usize {
    pattern[i..].chars().next().map_or(0, char::len_utf8)
}

/// The end of the escape at `i` (a backslash) as Go's parser delimits it: `\p{…}`, `\P{…}` and
/// `\x{…}` through their `}`, `\pL` with its letter, `\x41` with two hexadecimal digits, an
/// octal escape with up to three digits, any other with one character.
fn escape_end(pattern: &str, i: usize) -> usize {
    let bytes = pattern.as_bytes();
    let next = i + 1;
    let Some(&c) = bytes.get(next) else {
        return bytes.len();
    };
    let digits = |from: usize, most: usize, digit: fn(&u8) -> bool| {
        from + bytes[from.min(bytes.len())..]
            .iter()
            .take(most)
            .take_while(|b| digit(b))
            .count()
    };
    match c {
        b'p' | b'P' | b'x' if bytes.get(next + 1) == Some(&b'{') => {
            pattern[next..].find('}').map_or(bytes.len(), |close| next + close + 1)
        }
        b'p' | b'P' => next + 1 + char_len(pattern, (next + 1).min(bytes.len())),
        b'x' => digits(next + 1, 2, u8::is_ascii_hexdigit),
        b'0'..=b'7' => digits(next + 1, 2, |b| (b'0'..=b'7').contains(b)),
        _ => next + char_len(pattern, next),
    }
}

/// Go's reading of the class opening at `open` (a `[`): records where a backslash goes in
/// `before`, and returns the offset after its closing `]` (the end of the pattern when
/// unclosed).
fn class(pattern: &str, open: usize, before: &mut Vec<usize>) -> usize {
    let bytes = pattern.as_bytes();
    let mut t = open + 1;
    if bytes.get(t) == Some(&b'^') {
        t += 1;
    }
    // `regex_syntax` reads every leading dash as a character.
    let run_end = t + bytes[t..].iter().take_while(|&&b| b == b'-').count();
    let body = t;
    while let Some(&c) = bytes.get(t) {
        if c == b']' && t != body {
            return t + 1;
        }
        // A POSIX class: Go looks for its `:]` anywhere after (and refuses an unknown name).
        if c == b'['
            && bytes.get(t + 1) == Some(&b':')
            && let Some(close) = pattern[t + 2..].find(":]")
        {
            t += 2 + close + 2;
            continue;
        }
        if c == b'\\'
            && matches!(
                bytes.get(t + 1),
                Some(b'p' | b'P' | b'd' | b'D' | b's' | b'S' | b'w' | b'W')
            )
        {
            t = escape_end(pattern, t);
            // A character `-` for Go, the start of a range for `regex_syntax`.
            if bytes.get(t) == Some(&b'-') && !matches!(bytes.get(t + 1), None | Some(b']' | b'-')) {
                before.push(t);
            }
            continue;
        }
        let lo = t;
        t = char_end(pattern, t);
        if bytes.get(t) == Some(&b'-') && bytes.get(t + 1).is_some_and(|&next| next != b']') {
            let hi = t + 1;
            // The range of the last two leading dashes to the character after them.
            let dashes = lo < run_end && hi == run_end;
            // The range from a leading `]`.
            let bracket = lo == body && c == b']' && bytes[hi] != b'-';
            if dashes || bracket {
                before.push(lo);
            }
            t = char_end(pattern, hi);
        }
    }
    bytes.len()
}

/// The end of the class character at `i`: an escape, or one character.
fn char_end(pattern: &str, i: usize) -> usize {
    if pattern.as_bytes()[i] == b'\\' {
        escape_end(pattern, i)
    } else {
        i + char_len(pattern, i)
    }
}

impl Spelled {
    /// How many inserted backslashes come before `offset` of the spelled text.
    fn inserted_before(&self, offset: usize) -> usize {
        self.inserted.partition_point(|&at| at < offset)
    }

    /// `position` in the spelled text, moved onto the pattern as written.
    fn position(&self, position: Position) -> Position {
        let before = self.inserted_before(position.offset);
        let on_line = before - self.lines[..before].partition_point(|&line| line < position.line);
        Position {
            offset: position.offset - before,
            line: position.line,
            column: position.column - on_line,
        }
    }

    fn span(&self, span: &mut Span) {
        *span = Span::new(self.position(span.start), self.position(span.end));
    }

    /// The spans of `tree`, parsed from the spelled text, moved onto the pattern as written.
    pub(crate) fn remap(&self, tree: &mut Ast) {
        match tree {
            Ast::Empty(span) | Ast::Dot(span) => self.span(span),
            Ast::Flags(set) => {
                self.span(&mut set.span);
                self.flags(&mut set.flags);
            }
            Ast::Literal(literal) => self.span(&mut literal.span),
            Ast::Assertion(assertion) => self.span(&mut assertion.span),
            Ast::ClassUnicode(class) => self.span(&mut class.span),
            Ast::ClassPerl(class) => self.span(&mut class.span),
            Ast::ClassBracketed(class) => self.bracketed(class),
            Ast::Repetition(repetition) => {
                self.span(&mut repetition.span);
                self.span(&mut repetition.op.span);
                self.remap(&mut repetition.ast);
            }
            Ast::Group(group) => {
                self.span(&mut group.span);
                match &mut group.kind {
                    GroupKind::CaptureIndex(_) => {}
                    GroupKind::CaptureName { name, .. } => self.span(&mut name.span),
                    GroupKind::NonCapturing(flags) => self.flags(flags),
                }
                self.remap(&mut group.ast);
            }
            Ast::Alternation(alternation) => {
                self.span(&mut alternation.span);
                alternation.asts.iter_mut().for_each(|ast| self.remap(ast));
            }
            Ast::Concat(concat) => {
                self.span(&mut concat.span);
                concat.asts.iter_mut().for_each(|ast| self.remap(ast));
            }
        }
    }

    fn flags(&self, flags: &mut ast::Flags) {
        self.span(&mut flags.span);
        flags.items.iter_mut().for_each(|item| self.span(&mut item.span));
    }

    fn bracketed(&self, class: &mut ast::ClassBracketed) {
        self.span(&mut class.span);
        self.set(&mut class.kind);
    }

    fn set(&self, set: &mut ClassSet) {
        match set {
            ClassSet::Item(item) => self.item(item),
            ClassSet::BinaryOp(op) => {
                self.span(&mut op.span);
                self.set(&mut op.lhs);
                self.set(&mut op.rhs);
            }
        }
    }

    fn item(&self, item: &mut ClassSetItem) {
        match item {
            ClassSetItem::Empty(span) => self.span(span),
            ClassSetItem::Literal(literal) => self.span(&mut literal.span),
            ClassSetItem::Range(range) => {
                self.span(&mut range.span);
                self.span(&mut range.start.span);
                self.span(&mut range.end.span);
            }
            ClassSetItem::Ascii(class) => self.span(&mut class.span),
            ClassSetItem::Unicode(class) => self.span(&mut class.span),
            ClassSetItem::Perl(class) => self.span(&mut class.span),
            ClassSetItem::Bracketed(class) => self.bracketed(class),
            ClassSetItem::Union(union) => {
                self.span(&mut union.span);
                union.items.iter_mut().for_each(|item| self.item(item));
            }
        }
    }

    /// `regex_syntax`'s refusal of the spelled text, as its refusal of the pattern as written
    /// when that is the same error at the same place (the message then quotes the pattern as
    /// written); else the refusal of the spelled text.
    pub(crate) fn error(&self, written: Result<Ast, Box<ast::Error>>, spelled: Box<ast::Error>) -> Box<ast::Error> {
        match written {
            Err(written)
                if written.kind() == spelled.kind() && {
                    let mut span = *spelled.span();
                    self.span(&mut span);
                    span == *written.span()
                } =>
            {
                written
            }
            _ => spelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use regex_syntax::ast::{Ast, ClassSet, ClassSetItem};

    /// The spans of a tree parsed from the spelled text are the pattern's as written: offsets,
    /// and columns on the line of an inserted backslash.
    #[test]
    fn spans_point_into_the_pattern_as_written() {
        let pattern = "a\n[\\w-.]b";
        assert_eq!(super::spell(pattern).expect("spelled").text, "a\n[\\w\\-.]b");
        let tree = crate::parse(pattern).expect("accepted");
        let Ast::Concat(concat) = &tree else {
            panic!("a concatenation")
        };
        let b = concat.asts[3].span();
        assert_eq!((b.start.offset, b.start.line, b.start.column), (8, 2, 7));
        assert_eq!(b.end.offset, pattern.len());
        let Ast::ClassBracketed(class) = &concat.asts[2] else {
            panic!("a class")
        };
        assert_eq!((class.span.start.offset, class.span.end.offset), (2, 8));
        let ClassSet::Item(ClassSetItem::Union(union)) = &class.kind else {
            panic!("a union")
        };
        let dash = union.items[1].span();
        assert_eq!(&pattern[dash.start.offset..dash.end.offset], "-");
        assert_eq!((dash.start.column, dash.end.column), (4, 5));
    }
}
