//! Tokens of the CUE subset, with their line and column.
//!
//! Commas are inserted at the end of a line after a token that can end an expression, as CUE
//! (like Go) does, so fields and list elements may be separated by newlines.

use super::{CueError, Pos};
use crate::policy::numbers;

/// One token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    /// Punctuation and operators: `{ } [ ] ( ) : , . & | * ? ! = < <= > >= != == =~ !~ ... + - /`.
    Punct(&'static str),
    Eof,
}

impl Tok {
    fn ends_expression(&self) -> bool {
        matches!(
            self,
            Tok::Ident(_) | Tok::Str(_) | Tok::Int(_) | Tok::Float(_) | Tok::Punct("}" | "]" | ")" | "...")
        )
    }
}

const PUNCTS: [&str; 29] = [
    "...", "<=", ">=", "!=", "==", "=~", "!~", "&&", "||", "{", "}", "[", "]", "(", ")", ":", ",", ".", "&", "|", "*",
    "?", "!", "=", "<", ">", "+", "-", "/",
];

/// Splits `text` into tokens.
pub fn tokenize(text: &str) -> Result<Vec<(Tok, Pos)>, CueError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens: Vec<(Tok, Pos)> = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    let insert_comma = |tokens: &mut Vec<(Tok, Pos)>, pos: Pos| {
        if tokens.last().is_some_and(|(t, _)| t.ends_expression()) {
            tokens.push((Tok::Punct(","), pos));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, col };
        if c == '\n' {
            insert_comma(&mut tokens, pos);
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        // CUE's scanner skips space, tab and CR only (U+00A0, U+2028, … are illegal there).
        if matches!(c, ' ' | '\t' | '\r') {
            i += 1;
            col += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '"' {
            if chars.get(i + 1) == Some(&'"') && chars.get(i + 2) == Some(&'"') {
                return Err(CueError::unsupported(pos, "multi-line strings (\"\"\")"));
            }
            let (value, used) = string(&chars[i..], pos)?;
            tokens.push((Tok::Str(value), pos));
            i += used;
            col += used as u32;
            continue;
        }
        if c == '\'' {
            return Err(CueError::unsupported(pos, "byte strings ('...')"));
        }
        if c == '#' && chars.get(i + 1) == Some(&'"') {
            return Err(CueError::unsupported(pos, "raw strings (#\"...\"#)"));
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                // `1...` cannot occur in the subset; an exponent sign belongs to the number.
                if matches!(chars[i], 'e' | 'E') && matches!(chars.get(i + 1), Some('+' | '-')) {
                    i += 1;
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            // CUE reads `010` as an illegal integer (octal is `0o10`), not as 10 (`00.5` is a float).
            if text.len() > 1 && text.starts_with('0') && text.chars().all(|c| c.is_ascii_digit() || c == '_') {
                return Err(CueError::invalid(
                    pos,
                    format!("`{text}` is an illegal integer (a leading 0)"),
                ));
            }
            let tok = if let Ok(n) = text.parse::<i64>() {
                Tok::Int(n)
            } else if text.chars().all(|c| c.is_ascii_digit()) {
                // An integer all the same in CUE (arbitrary precision): never read as a float.
                return Err(CueError::unsupported(
                    pos,
                    &format!("the integer `{text}` (beyond 64 bits)"),
                ));
            } else if text
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            {
                match text.parse::<f64>() {
                    Ok(f) if numbers::f64_keeps(&text) => Tok::Float(f),
                    // CUE compares numbers as decimals: `>=1.0000000000000001` refuses 1, which
                    // the f64 1.0 would admit.
                    Ok(f) if f.is_finite() => {
                        return Err(CueError::unsupported(
                            pos,
                            &format!(
                                "the number `{text}` (more digits than a 64-bit float keeps: it would be \
                                 read as {}, and CUE compares it exactly; write that instead)",
                                numbers::kept_form(f)
                            ),
                        ));
                    }
                    _ => return Err(CueError::invalid(pos, format!("`{text}` is not a number"))),
                }
            } else {
                return Err(CueError::unsupported(
                    pos,
                    &format!("the number `{text}` (only decimal integers and floats are)"),
                ));
            };
            tokens.push((tok, pos));
            col += (i - start) as u32;
            continue;
        }
        // `_|_`, bottom (an error): one token, not `_ | _` (anything).
        if chars[i..].starts_with(&['_', '|', '_']) {
            tokens.push((Tok::Ident("_|_".to_owned()), pos));
            i += 3;
            col += 3;
            continue;
        }
        // Letters and digits as Go's scanner reads them, ASCII here (stricter: Rust's
        // `is_alphanumeric` takes `²` and `ⅰ`, which Go's `unicode.IsLetter`/`IsDigit` do not;
        // a quoted label holds any text).
        if c.is_ascii_alphabetic() || c == '_' || c == '#' || c == '$' {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            tokens.push((Tok::Ident(chars[start..i].iter().collect()), pos));
            col += (i - start) as u32;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
        if rest.starts_with("<-") {
            // CUE's scanner reads `<-` as one token (of comprehensions), so `<-1` is no bound.
            return Err(CueError::invalid(
                pos,
                "`<-` is a token of its own in CUE: write `< -1`, not `<-1`".to_owned(),
            ));
        }
        match PUNCTS.iter().find(|p| rest.starts_with(*p)) {
            Some(p) => {
                tokens.push((Tok::Punct(p), pos));
                i += p.len();
                col += p.len() as u32;
            }
            None => {
                return Err(CueError::invalid(
                    pos,
                    format!("unexpected character `{}`", c.escape_debug()),
                ));
            }
        }
    }
    insert_comma(&mut tokens, Pos { line, col });
    tokens.push((Tok::Eof, Pos { line, col }));
    Ok(tokens)
}

/// A double-quoted string starting at `chars[0]`; returns its value and the characters used.
fn string(chars: &[char], pos: Pos) -> Result<(String, usize), CueError> {
    let mut value = String::new();
    let mut i = 1;
    loop {
        let at = Pos {
            line: pos.line,
            col: pos.col + i as u32,
        };
        match chars.get(i) {
            None | Some('\n') => return Err(CueError::invalid(pos, "unterminated string".to_owned())),
            Some('"') => return Ok((value, i + 1)),
            Some('\\') => {
                let escaped = match chars.get(i + 1) {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('/') => '/',
                    Some('u') => {
                        let hex: String = chars.get(i + 2..i + 6).unwrap_or_default().iter().collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            // `from_str_radix` takes a leading `+` (`\u+041`); CUE does not.
                            .filter(|_| hex.len() == 4 && hex.chars().all(|c| c.is_ascii_hexdigit()))
                            .and_then(char::from_u32)
                            .ok_or_else(|| CueError::invalid(at, "\\u needs four hex digits".to_owned()))?;
                        value.push(c);
                        i += 6;
                        continue;
                    }
                    Some('(') => return Err(CueError::unsupported(at, "string interpolation (\\(...))")),
                    _ => return Err(CueError::invalid(at, "unknown escape sequence".to_owned())),
                };
                value.push(escaped);
                i += 2;
            }
            Some(c) => {
                value.push(*c);
                i += 1;
            }
        }
    }
}
