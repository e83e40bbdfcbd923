//! OPA's regex builtins, reading patterns as Go's `regexp` reads them.
//!
//! policy-controller evaluates Rego with OPA, whose regex builtins (`topdown/regex.go`,
//! `topdown/regex_template.go`) compile patterns with Go's `regexp`: `\d` is `[0-9]`, `\w`
//! `[0-9A-Za-z_]`, `\s` `[\t\n\f\r ]`, `\b` an ASCII word boundary. regorus' own builtins use
//! Rust's `regex` with Unicode classes, so `regex.match("^v\\d+$", "v٣")` holds with regorus and
//! not with OPA. regorus looks an extension up before a builtin of the same name, so each of the
//! builtins below is registered as an extension on every engine `cip` compiles, and reads its
//! pattern through [`go_regexp::to_regex`] (refusing what Go reads otherwise), then compiles it
//! with `regex::RegexBuilder` under regorus' own size limit.
//!
//! Each builtin follows OPA's implementation where it and regorus' differ:
//!
//! - `regex.split` is Go's `Regexp.Split(s, -1)`: no leading empty piece for an empty match at
//!   the start, none after an empty match at the end (`regex.split("x*", "axb")` is
//!   `["a", "b"]`, Rust's `split` gives `["", "a", "b", ""]`).
//! - `regex.replace` is Go's `Regexp.ReplaceAllString`: `$1`, `$name`, `${name}` and `$$` as
//!   Go's `Expand` reads them (a name is the longest run of Unicode letters, digits and `_`, so
//!   `$1x` names the group `1x`; `$01` is no group number; a malformed reference is kept as
//!   text), and an invalid pattern is an error (regorus answers undefined).
//! - `regex.template_match` is OPA's `compileRegexTemplate`: one-byte delimiters, nested
//!   delimiters balanced, the text between them a group of one anchored pattern, the rest
//!   quoted with Go's `QuoteMeta`.
//! - `regex.is_valid` is false for a pattern Go refuses or reads otherwise (as far as
//!   [`go_regexp`] tells: `[a&&b]`, which Go reads as a class, is refused there, so not valid
//!   here; `a**`, which Go refuses as a matter of style, is read as `a*` and valid here).
//! - `re_match`, OPA's deprecated alias of `regex.match` (still available to Rego v0, which
//!   policy-controller evaluates), which regorus does not have.
//!
//! An invalid pattern (or an operand of the wrong type) is an error, as OPA's builtins answer.
//! regorus' interpreter makes an extension's error fail the evaluation, as it does its own
//! builtins' errors in strict mode (which `cip` sets); OPA as policy-controller runs it (not
//! strict) records the error and makes the call undefined, so `not regex.match("[", x)` holds
//! there and fails the evaluation here. A pattern that compiles to more than 100 KiB is an
//! error too, in `regex.is_valid` as well (regorus' `RegexSizeLimitExceeded`; Go has no such
//! limit).
//!
//! Compiled patterns are kept per thread (`regex.match` over every item of a list compiles
//! once), at most [`MAX_COMPILED`] of each kind.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use anyhow::{Result, bail};
use regex::{Captures, Regex, RegexBuilder};
use regorus::Value;

use super::{Builtin, quoted, string, type_name};

/// regorus' bound on a compiled pattern (`REGEX_SIZE_LIMIT` in its `builtins/regex.rs`).
const SIZE_LIMIT: usize = 100 * 1024;
/// Compiled patterns (and, apart, templates) kept per thread.
pub(super) const MAX_COMPILED: usize = 64;

/// The builtins overridden: name, number of operands, implementation ([`super::register`]).
pub(super) const BUILTINS: [(&str, u8, Builtin); 8] = [
    ("regex.match", 2, regex_match),
    ("re_match", 2, re_match),
    ("regex.is_valid", 1, is_valid),
    ("regex.find_n", 3, find_n),
    ("regex.find_all_string_submatch_n", 3, find_all_string_submatch_n),
    ("regex.split", 2, split),
    ("regex.replace", 3, replace),
    ("regex.template_match", 4, template_match),
];

#[derive(Default)]
struct Compiled {
    patterns: HashMap<String, Regex>,
    templates: HashMap<(String, u8, u8), Regex>,
}

thread_local! {
    static COMPILED: RefCell<Compiled> = RefCell::default();
}

/// Why a pattern is not compiled.
enum Refusal {
    /// Not a regular expression, or one Go reads otherwise: `regex.is_valid` is false.
    Invalid(String),
    /// Compiled, larger than [`SIZE_LIMIT`].
    TooBig,
}

impl Refusal {
    fn error(self, builtin: &str, pattern: &str) -> anyhow::Error {
        let pattern = quoted(pattern);
        match self {
            Refusal::Invalid(reason) => anyhow::anyhow!("{builtin}: invalid regular expression {pattern}: {reason}"),
            Refusal::TooBig => anyhow::anyhow!(
                "{builtin}: the regular expression {pattern} compiles to more than the {} KiB allowed",
                SIZE_LIMIT / 1024
            ),
        }
    }
}

/// The last line of a `regex_syntax` error (`error: …`), without the pattern it prints above.
fn reason(error: &str) -> String {
    let last = error
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(error);
    last.trim().trim_start_matches("error: ").to_owned()
}

/// `pattern` read as Go reads it, compiled.
fn build(pattern: &str) -> Result<Regex, Refusal> {
    let printed = go_regexp::to_regex(pattern).map_err(|e| match e {
        go_regexp::Error::Syntax(_) => Refusal::Invalid(reason(&e.to_string())),
        not_go => Refusal::Invalid(not_go.to_string()),
    })?;
    RegexBuilder::new(&printed)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => Refusal::TooBig,
            other => Refusal::Invalid(reason(&other.to_string())),
        })
}

/// [`build`], through the thread's cache.
fn compile(pattern: &str) -> Result<Regex, Refusal> {
    if let Some(regex) = COMPILED.with_borrow(|compiled| compiled.patterns.get(pattern).cloned()) {
        return Ok(regex);
    }
    let regex = build(pattern)?;
    COMPILED.with_borrow_mut(|compiled| {
        if compiled.patterns.len() >= MAX_COMPILED {
            compiled.patterns.clear();
        }
        compiled.patterns.insert(pattern.to_owned(), regex.clone());
    });
    Ok(regex)
}

fn compiled(builtin: &str, pattern: &str) -> Result<Regex> {
    compile(pattern).map_err(|refusal| refusal.error(builtin, pattern))
}

/// Operand `index` as a count of matches, OPA's `n`: an integer, negative for all.
fn count(builtin: &str, args: &[Value], index: usize) -> Result<usize> {
    let value = &args[index];
    if !matches!(value, Value::Number(_)) {
        bail!(
            "{builtin}: operand {} must be number but got {}",
            index + 1,
            type_name(value)
        );
    }
    match value.as_i64() {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Err(_) => bail!(
            "{builtin}: operand {} must be integer number but got floating-point number",
            index + 1
        ),
    }
}

fn strings<'a>(items: impl Iterator<Item = &'a str>) -> Value {
    Value::from(items.map(Value::from).collect::<Vec<_>>())
}

/// `regex.match(pattern, value)`: Go's `MatchString`, a match anywhere.
fn regex_match(args: Vec<Value>) -> Result<Value> {
    matching("regex.match", &args)
}

/// `re_match(pattern, value)`: OPA's deprecated name of `regex.match`.
fn re_match(args: Vec<Value>) -> Result<Value> {
    matching("re_match", &args)
}

fn matching(builtin: &str, args: &[Value]) -> Result<Value> {
    let pattern = string(builtin, args, 0)?;
    let value = string(builtin, args, 1)?;
    Ok(Value::from(compiled(builtin, pattern)?.is_match(value)))
}

/// `regex.is_valid(pattern)`: false for a pattern Go (or [`go_regexp`]) refuses and for an
/// operand that is not a string, as OPA; an error for a pattern too large to compile.
fn is_valid(args: Vec<Value>) -> Result<Value> {
    let Value::String(pattern) = &args[0] else {
        return Ok(Value::from(false));
    };
    match compile(pattern) {
        Ok(_) => Ok(Value::from(true)),
        Err(Refusal::Invalid(_)) => Ok(Value::from(false)),
        Err(too_big) => Err(too_big.error("regex.is_valid", pattern)),
    }
}

/// `regex.find_n(pattern, value, n)`: Go's `FindAllString(value, n)`.
fn find_n(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "regex.find_n";
    let pattern = string(NAME, &args, 0)?;
    let value = string(NAME, &args, 1)?;
    let n = count(NAME, &args, 2)?;
    let regex = compiled(NAME, pattern)?;
    Ok(strings(regex.find_iter(value).take(n).map(|m| m.as_str())))
}

/// `regex.find_all_string_submatch_n(pattern, value, n)`: Go's
/// `FindAllStringSubmatch(value, n)`, an unmatched group as `""`.
fn find_all_string_submatch_n(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "regex.find_all_string_submatch_n";
    let pattern = string(NAME, &args, 0)?;
    let value = string(NAME, &args, 1)?;
    let n = count(NAME, &args, 2)?;
    let regex = compiled(NAME, pattern)?;
    let matches = regex
        .captures_iter(value)
        .take(n)
        .map(|groups| strings(groups.iter().map(|group| group.map_or("", |m| m.as_str()))))
        .collect::<Vec<_>>();
    Ok(Value::from(matches))
}

/// `regex.split(pattern, value)`: Go's `Regexp.Split(value, -1)`.
fn split(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "regex.split";
    let pattern = string(NAME, &args, 0)?;
    let value = string(NAME, &args, 1)?;
    let regex = compiled(NAME, pattern)?;
    Ok(strings(go_split(&regex, pattern.is_empty(), value).into_iter()))
}

/// Go's `Split` with `n < 0` (`regexp.go`): a match ending at 0 opens no piece, and nothing
/// follows a match that starts at the end.
fn go_split<'a>(regex: &Regex, empty_pattern: bool, value: &'a str) -> Vec<&'a str> {
    if !empty_pattern && value.is_empty() {
        return vec![""];
    }
    let mut pieces = Vec::new();
    let (mut begin, mut end) = (0, 0);
    for m in regex.find_iter(value) {
        end = m.start();
        if m.end() != 0 {
            pieces.push(&value[begin..end]);
        }
        begin = m.end();
    }
    if end != value.len() {
        pieces.push(&value[begin..]);
    }
    pieces
}

/// `regex.replace(s, pattern, value)`: Go's `ReplaceAllString(s, value)`.
fn replace(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "regex.replace";
    let base = string(NAME, &args, 0)?;
    let pattern = string(NAME, &args, 1)?;
    let template = string(NAME, &args, 2)?;
    let regex = compiled(NAME, pattern)?;
    // `captures_iter` steps over an empty match that abuts the previous match, as Go's
    // `replaceAll` declines to replace one.
    let mut replaced = String::with_capacity(base.len());
    let mut last = 0;
    for groups in regex.captures_iter(base) {
        let whole = groups.get(0).expect("group 0 is the match");
        replaced.push_str(&base[last..whole.start()]);
        // Every match adds the template with its groups: a template naming a large group many
        // times, matched many times, would grow without bound in this one call. Checked after
        // each piece, none larger than an operand.
        if !go_expand(&regex, &groups, template, &mut replaced) {
            super::bounded::check_result(NAME, replaced.len())?;
        }
        last = whole.end();
    }
    replaced.push_str(&base[last..]);
    Ok(Value::from(replaced))
}

/// Go's `Regexp.expand` (`regexp.go`): `$$` is `$`; `$name` and `${name}` the text of the
/// group so numbered or named (nothing when there is none or it did not take part); a `$`
/// followed by no name, or an unclosed `${`, is kept as text. False (`out` left part-written)
/// once `out` passes the cap on a result ([`super::bounded::MAX_RESULT`]).
fn go_expand(regex: &Regex, groups: &Captures, template: &str, out: &mut String) -> bool {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        if out.len() > super::bounded::MAX_RESULT {
            return false;
        }
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = reference(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let group = match group_number(name) {
            Some(index) => groups.get(index),
            None => regex
                .capture_names()
                .enumerate()
                .filter(|(_, group)| *group == Some(name))
                .find_map(|(index, _)| groups.get(index)),
        };
        if let Some(text) = group {
            out.push_str(text.as_str());
        }
    }
    out.push_str(rest);
    out.len() <= super::bounded::MAX_RESULT
}

/// Go's `extract`: the name after a `$` (the longest run of Unicode letters, decimal digits
/// and `_`, braced or not) and what follows the reference.
fn reference(text: &str) -> Option<(&str, &str)> {
    static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}_]*").expect("a valid pattern"));
    let (braced, body) = match text.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let length = NAME.find(body).map_or(0, |m| m.end());
    if length == 0 {
        return None;
    }
    let (name, after) = body.split_at(length);
    if braced {
        return after.strip_prefix('}').map(|after| (name, after));
    }
    Some((name, after))
}

/// Go's number of a group reference: ASCII digits without a leading zero, below 10⁹;
/// otherwise the reference is a name.
fn group_number(name: &str) -> Option<usize> {
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    name.bytes().try_fold(0_usize, |number, digit| {
        (digit.is_ascii_digit() && number < 100_000_000).then(|| number * 10 + usize::from(digit - b'0'))
    })
}

/// `regex.template_match(template, value, start, end)`: OPA's `compileRegexTemplate`, then
/// `MatchString`.
fn template_match(args: Vec<Value>) -> Result<Value> {
    const NAME: &str = "regex.template_match";
    let template = string(NAME, &args, 0)?;
    let value = string(NAME, &args, 1)?;
    let start = string(NAME, &args, 2)?;
    let end = string(NAME, &args, 3)?;
    if start.len() != 1 {
        bail!(
            "{NAME}: start delimiter has to be exactly one character long but is {} long",
            start.len()
        );
    }
    if end.len() != 1 {
        bail!(
            "{NAME}: end delimiter has to be exactly one character long but is {} long",
            end.len()
        );
    }
    let key = (template.to_owned(), start.as_bytes()[0], end.as_bytes()[0]);
    let cached = COMPILED.with_borrow(|compiled| compiled.templates.get(&key).cloned());
    let regex = match cached {
        Some(regex) => regex,
        None => {
            let regex = compile_template(template, key.1, key.2)?;
            COMPILED.with_borrow_mut(|compiled| {
                if compiled.templates.len() >= MAX_COMPILED {
                    compiled.templates.clear();
                }
                compiled.templates.insert(key, regex.clone());
            });
            regex
        }
    };
    Ok(Value::from(regex.is_match(value)))
}

/// OPA's `compileRegexTemplate` (forked from gorilla/mux): the first-level delimited parts are
/// patterns, each compiled alone (`^…$`) to check it, then all of it as one pattern:
/// `^` + quoted text + `(pattern)` … + `$`.
fn compile_template(template: &str, start: u8, end: u8) -> Result<Regex> {
    const NAME: &str = "regex.template_match";
    let unbalanced = || anyhow::anyhow!("{NAME}: unbalanced braces in {}", quoted(template));
    // OPA's `delimiterIndices`. The delimiters are ASCII (one byte), so every index is at a
    // character boundary.
    let mut parts = Vec::new();
    let (mut level, mut open) = (0_i64, 0);
    for (index, byte) in template.bytes().enumerate() {
        if byte == start {
            level += 1;
            if level == 1 {
                open = index;
            }
        } else if byte == end {
            level -= 1;
            if level == 0 {
                parts.push((open, index + 1));
            } else if level < 0 {
                return Err(unbalanced());
            }
        }
    }
    if level != 0 {
        return Err(unbalanced());
    }
    let mut pattern = String::from("^");
    let mut literal_from = 0;
    for (open, close) in parts {
        let part = &template[open + 1..close - 1];
        build(&format!("^{part}$")).map_err(|refusal| refusal.error(NAME, part))?;
        quote_meta(&template[literal_from..open], &mut pattern);
        pattern.push('(');
        pattern.push_str(part);
        pattern.push(')');
        literal_from = close;
    }
    quote_meta(&template[literal_from..], &mut pattern);
    pattern.push('$');
    build(&pattern).map_err(|refusal| refusal.error(NAME, template))
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(text: &str, out: &mut String) {
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests;
