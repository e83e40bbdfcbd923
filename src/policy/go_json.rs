//! JSON as Go's `encoding/json` decodes it into a struct and encodes it again: what
//! policy-controller hands a policy. It reads an image config into go-containerregistry's
//! `ConfigFile` ([`super::image_config`]) and an attestation into in-toto-golang's statement
//! structs ([`super::statement`]), then `json.Marshal`s them. Go's reading differs from the
//! JSON as written, in ways a signer can use:
//!
//! - a key matches a field **without regard to case** (`bytes.EqualFold`: `"user"`, `"USER"`,
//!   even `"uſer"` with U+017F or `"Wor\u212aingDir"` with the Kelvin sign, are `User`,
//!   `WorkingDir`); keys that name no field are dropped;
//! - `null` leaves a field at its zero value (nil for a list, map or pointer); the encoder writes
//!   the zero value of a field without `omitempty` and drops an empty one with it;
//! - a field of the wrong JSON type makes the decoding fail (the policy fails);
//! - `interface{}` values (a generic predicate) hold numbers as `float64`, written back as Go
//!   writes floats (`1.0` is `1`, an integer for CUE; an integer a float64 does not hold,
//!   `9007199254740993`, is refused here, where Go rounds it);
//! - times are written again in `RFC3339Nano` (`src/policy/time.rs`).
//!
//! [`read_struct`] gives exactly what Go writes, and refuses what Go refuses. It also refuses two
//! keys of one object naming the same field (`User` and `user`): Go keeps the last one written,
//! and the host's answer (a JSON map) no longer says which that was.

use serde_json::{Map, Number, Value};

use crate::policy::time;

/// Why Go's decoder refuses a document, or why its reading cannot be known from the host's
/// answer: the policy fails with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GoReadError {
    #[error("`{path}` is {found}, where Go's encoding/json (policy-controller) reads {expected}: it refuses this")]
    WrongType {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "the keys {first:?} and {second:?} both name `{path}` for Go's encoding/json (it matches names without \
         regard to case and keeps the last one written), and the host's answer no longer says which was last"
    )]
    NamedTwice {
        path: String,
        first: String,
        second: String,
    },
    #[error(
        "`{path}` is {value:?}, not an RFC 3339 time Go reads and writes (like 2024-01-31T12:00:00Z): it refuses this"
    )]
    NotATime { path: String, value: String },
    #[error("`{path}` is {value:?}, not a digest go-containerregistry reads (`sha256:` and 64 lowercase hex digits)")]
    NotADigest { path: String, value: String },
    #[error("`{path}` is {value}, beyond the 64-bit integer Go decodes it into: it refuses this")]
    OutOfRange { path: String, value: String },
    #[error(
        "`{path}` is {value}, which Go writes as an integer beyond 64 bits (a float64 written without a point): \
         not read here"
    )]
    BeyondIntegers { path: String, value: String },
    #[error(
        "`{path}` is the integer {value}, which Go reads as the nearest float64, another number: refused here \
         rather than rounded"
    )]
    Rounded { path: String, value: String },
    #[error(
        "a time is written with a JSON escape ({value:?} once unescaped): Go's time.Time reads the text between \
         the quotes as written and refuses it"
    )]
    EscapedTime { value: String },
}

/// What Go decodes a field into.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    String,
    Bool,
    /// `int` or `time.Duration`: an integer written without fraction or exponent.
    Integer,
    /// `interface{}`: any JSON, numbers as `float64`.
    Any,
    /// `time.Time` (go-containerregistry's `v1.Time` too).
    Time,
    /// `*time.Time`: `null` is nil.
    TimePointer,
    /// go-containerregistry's `v1.Hash`.
    Digest,
    Struct(&'static [Field]),
    /// A pointer to a struct: `null` is nil.
    Pointer(&'static [Field]),
    /// A slice.
    List(&'static Kind),
    /// A map with string keys (matched exactly).
    Map(&'static Kind),
}

/// A field of a Go struct: its JSON name, what it decodes into, and whether the encoder omits
/// its empty value (`omitempty`).
pub(crate) struct Field {
    name: &'static str,
    kind: Kind,
    omit_empty: bool,
}

/// A field with `omitempty`.
pub(crate) const fn field(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        omit_empty: true,
    }
}

/// A field without `omitempty` (or a struct, which `omitempty` never omits).
pub(crate) const fn always(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        omit_empty: false,
    }
}

/// The zero time, as Go writes it.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `object` decoded into the struct of `fields` and encoded again. `path` names `object` in
/// errors (empty at the top).
pub(crate) fn read_struct(
    object: Map<String, Value>,
    fields: &[Field],
    path: &str,
) -> Result<Map<String, Value>, GoReadError> {
    // Which field each key names, checked whole before any value is read, so that two keys
    // naming one field are refused as such, whichever of them the map holds first.
    let mut named: Vec<Option<&str>> = vec![None; fields.len()];
    let mut names = Vec::with_capacity(object.len());
    for key in object.keys() {
        let index = fields
            .iter()
            .position(|f| f.name == key)
            .or_else(|| fields.iter().position(|f| go_folds_to(key, f.name)));
        if let Some(index) = index
            && let Some(first) = named[index].replace(key)
        {
            return Err(GoReadError::NamedTwice {
                path: join(path, fields[index].name),
                first: first.to_owned(),
                second: key.clone(),
            });
        }
        names.push(index);
    }
    let mut read: Vec<Option<Value>> = vec![None; fields.len()];
    for ((_, value), index) in object.into_iter().zip(names) {
        // A key that names no field is dropped, as Go ignores it.
        if let Some(index) = index {
            read[index] = read_value(value, fields[index].kind, &join(path, fields[index].name))?;
        }
    }
    let mut out = Map::new();
    for (field, value) in fields.iter().zip(read) {
        let value = match value {
            Some(value) => value,
            None => zero(field.kind, &join(path, field.name))?,
        };
        if !(field.omit_empty && is_empty(field.kind, &value)) {
            out.insert(field.name.to_owned(), value);
        }
    }
    Ok(out)
}

/// `value` decoded into `kind` and encoded again; `None` for `null`, which leaves the field at
/// its zero value (nil for a list, map or pointer).
fn read_value(value: Value, kind: Kind, path: &str) -> Result<Option<Value>, GoReadError> {
    let wrong = |expected: &'static str, value: &Value| GoReadError::WrongType {
        path: path.to_owned(),
        expected,
        found: json_kind(value),
    };
    if value.is_null() {
        return Ok(None);
    }
    let read = match (kind, value) {
        (Kind::String, value @ Value::String(_)) | (Kind::Bool, value @ Value::Bool(_)) => value,
        (Kind::Integer, Value::Number(number)) if number.is_f64() => {
            return Err(GoReadError::WrongType {
                path: path.to_owned(),
                expected: "an integer (no fraction or exponent)",
                found: "a number with a fraction or exponent",
            });
        }
        (Kind::Integer, Value::Number(number)) => match number.as_i64() {
            Some(integer) => Value::from(integer),
            None => {
                return Err(GoReadError::OutOfRange {
                    path: path.to_owned(),
                    value: number.to_string(),
                });
            }
        },
        (Kind::Any, value) => read_any(value, path)?,
        (Kind::Time | Kind::TimePointer, Value::String(text)) => match time::as_go_rewrites(&text) {
            Some(rewritten) => Value::String(rewritten),
            None => {
                return Err(GoReadError::NotATime {
                    path: path.to_owned(),
                    value: text,
                });
            }
        },
        (Kind::Digest, Value::String(digest)) if is_go_digest(&digest) => Value::String(digest),
        (Kind::Digest, Value::String(digest)) => {
            return Err(GoReadError::NotADigest {
                path: path.to_owned(),
                value: digest,
            });
        }
        (Kind::Struct(fields) | Kind::Pointer(fields), Value::Object(object)) => {
            Value::Object(read_struct(object, fields, path)?)
        }
        (Kind::List(item), Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, value)| read_item(value, *item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        (Kind::Map(entry), Value::Object(entries)) => Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let value = read_item(value, *entry, &join(path, &key))?;
                    Ok((key, value))
                })
                .collect::<Result<_, _>>()?,
        ),
        (Kind::String, value) => return Err(wrong("a string", &value)),
        (Kind::Bool, value) => return Err(wrong("true or false", &value)),
        (Kind::Integer, value) => return Err(wrong("an integer", &value)),
        (Kind::Time | Kind::TimePointer, value) => return Err(wrong("a time (a string)", &value)),
        // `v1.Hash`'s own `UnmarshalJSON` refuses anything but a string, `null` too.
        (Kind::Digest, value) => return Err(wrong("a digest (a string)", &value)),
        (Kind::List(_), value) => return Err(wrong("a list", &value)),
        (Kind::Struct(_) | Kind::Pointer(_) | Kind::Map(_), value) => return Err(wrong("an object", &value)),
    };
    Ok(Some(read))
}

/// An item of a list or an entry of a map: `null` leaves it at its zero value, which is written
/// (`""` for a string, `{}` for a struct), except a digest, whose `UnmarshalJSON` refuses it.
fn read_item(value: Value, kind: Kind, path: &str) -> Result<Value, GoReadError> {
    if value.is_null() && matches!(kind, Kind::Digest) {
        return Err(GoReadError::WrongType {
            path: path.to_owned(),
            expected: "a digest (a string)",
            found: "null",
        });
    }
    match read_value(value, kind, path)? {
        Some(value) => Ok(value),
        None => zero(kind, path),
    }
}

/// `value` decoded into an `interface{}` and encoded again: objects and lists as they are (a
/// map's keys matched exactly), numbers as `float64` written back as Go writes floats.
fn read_any(value: Value, path: &str) -> Result<Value, GoReadError> {
    Ok(match value {
        Value::Number(number) => go_float(&number, path)?,
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| read_any(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(key, item)| {
                    let item = read_any(item, &join(path, &key))?;
                    Ok((key, item))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => other,
    })
}

/// A number read into a `float64` and written as Go's encoder writes it: a whole number below
/// 1e21 as the digits of its shortest decimal (an integer for CUE: `1.0` is `1`,
/// `1.0000000000000002e17` is `100000000000000020`), anything else with a point or an exponent
/// (a float). An integer a `float64` does not hold exactly (`9007199254740993`, which Go reads
/// as `9007199254740992`) is refused rather than rounded.
fn go_float(number: &Number, path: &str) -> Result<Value, GoReadError> {
    let integer = number.as_i64().map(i128::from).or(number.as_u64().map(i128::from));
    let float = match (integer, number.as_f64()) {
        // `as` rounds to the nearest, ties to even, as Go's `ParseFloat` does.
        (Some(integer), _) if (integer as f64) as i128 == integer => integer as f64,
        (Some(_), _) => {
            return Err(GoReadError::Rounded {
                path: path.to_owned(),
                value: number.to_string(),
            });
        }
        (None, Some(float)) => float,
        (None, None) => {
            return Err(GoReadError::OutOfRange {
                path: path.to_owned(),
                value: number.to_string(),
            });
        }
    };
    if float.fract() != 0.0 || float.abs() >= 1e21 {
        return Ok(Value::from(float));
    }
    // Rust writes an f64 as Go does with `'f'` and precision -1: the shortest decimal that reads
    // back as the same float, without an exponent (`-0.0` as `-0`, which is the integer 0).
    let digits = format!("{float}");
    match (digits.parse::<i64>(), digits.parse::<u64>()) {
        (Ok(integer), _) => Ok(Value::from(integer)),
        (_, Ok(integer)) => Ok(Value::from(integer)),
        _ => Err(GoReadError::BeyondIntegers {
            path: path.to_owned(),
            value: number.to_string(),
        }),
    }
}

/// What Go's encoder writes for a field at its zero value.
fn zero(kind: Kind, path: &str) -> Result<Value, GoReadError> {
    Ok(match kind {
        Kind::String => Value::String(String::new()),
        Kind::Bool => Value::Bool(false),
        Kind::Integer => Value::from(0),
        Kind::Time => Value::String(ZERO_TIME.to_owned()),
        // `v1.Hash{}.String()` is `":"`.
        Kind::Digest => Value::String(":".to_owned()),
        Kind::Struct(fields) => Value::Object(read_struct(Map::new(), fields, path)?),
        Kind::Any | Kind::TimePointer | Kind::Pointer(_) | Kind::List(_) | Kind::Map(_) => Value::Null,
    })
}

/// Whether `omitempty` drops `value`, written for `kind` (Go's `isEmptyValue`): `false`, `0`,
/// `""`, an empty list or map, nil; never a struct or a time.
fn is_empty(kind: Kind, value: &Value) -> bool {
    match (kind, value) {
        (_, Value::Null) => true,
        // An interface or pointer is empty when nil only (`false` in an `interface{}` is not).
        (Kind::Struct(_) | Kind::Time | Kind::Any | Kind::Pointer(_) | Kind::TimePointer, _) => false,
        (_, Value::Bool(b)) => !b,
        (Kind::Integer, Value::Number(n)) => n.as_i64() == Some(0),
        (Kind::String | Kind::Digest, Value::String(s)) => s.is_empty(),
        (Kind::List(_), Value::Array(items)) => items.is_empty(),
        (Kind::Map(_), Value::Object(entries)) => entries.is_empty(),
        _ => false,
    }
}

/// Whether Go's decoder takes the JSON key `key` for the field named `name` (ASCII) when no
/// field is named `key` exactly: equal under Unicode simple case folding, as `bytes.EqualFold`
/// compares them. The only non-ASCII letters that fold to ASCII are U+017F (ſ, to `s`) and
/// U+212A (Kelvin sign, to `k`).
fn go_folds_to(key: &str, name: &str) -> bool {
    let mut key = key.chars();
    for expected in name.chars() {
        let matches = match key.next() {
            Some(c) if c.eq_ignore_ascii_case(&expected) => true,
            Some('\u{17f}') => expected.eq_ignore_ascii_case(&'s'),
            Some('\u{212a}') => expected.eq_ignore_ascii_case(&'k'),
            _ => false,
        };
        if !matches {
            return false;
        }
    }
    key.next().is_none()
}

/// Whether go-containerregistry's `v1.Hash` reads `digest`: `sha256:` (the one algorithm it
/// knows) and 64 lowercase hex digits.
fn is_go_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The JSON type of `value`, for messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
