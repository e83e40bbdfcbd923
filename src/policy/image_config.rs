//! An image config as policy-controller, and the node that runs the image, read it.
//!
//! policy-controller gives a `fetchConfigFile` policy go-containerregistry's `v1.ConfigFile`:
//! the registry's JSON decoded by Go's `encoding/json`, then encoded again. containerd and
//! CRI-O decode the same blob with the same package into their own structs. Go's decoder
//! differs from the JSON as written in ways a signer of a hostile image can use:
//!
//! - it matches a key to a field **without regard to case** (`bytes.EqualFold`, so `"user"`,
//!   `"USER"`, even `"uſer"` with U+017F or `"\u212a"` for `k`, are `User`): a config saying
//!   `"user": "0"` runs as root, where a policy reading the JSON as written sees no `User` and
//!   a constraint `User: "65532"` holds vacuously;
//! - `null` leaves a field at its zero value, and the encoder writes the zero value of a field
//!   without `omitempty`: a config without `created` is `"created": "0001-01-01T00:00:00Z"` in
//!   policy-controller, and fails `created: >"2024-01-01"` there, where it held vacuously here;
//! - a field of the wrong JSON type makes the decoding fail (the policy fails in
//!   policy-controller, the image does not run);
//! - times are written again in Go's `RFC3339Nano` (`.500+00:00` is `.5Z`); a list's `null`
//!   item is `""`, `ExposedPorts`' and `Volumes`' values are `{}` whatever they held.
//!
//! [`go_view`] gives a policy that reading: every field of go-containerregistry's `ConfigFile`
//! (its current `pkg/v1/config.go`) under its own name, with the value Go decodes and encodes,
//! and refuses what Go refuses. Two things are kept where Go drops them, because a policy that
//! reads them is then stricter, never looser: keys that name no field (Go ignores them), and
//! fields present with a zero value (`"User": ""`; Go omits a zero value with `omitempty`).
//! Two keys of one object naming the same field (`User` and `user`) are refused: Go keeps the
//! last one written, and the host's answer (a JSON map) no longer says which that was.
//!
//! The hosts parse the config into a map before the module sees it, so a key written twice
//! exactly is already one key: the last (Go merges two objects under one key). `cip` refuses
//! such a config; a stock Kubewarden host passes the last (docs/policies.md). Likewise a time
//! written with a JSON escape, which Go's `Time.UnmarshalJSON` refuses (it reads the text
//! between the quotes as written), reaches the module unescaped and is read.
//!
//! Checked against Go itself on generated configs: `tests/image_config_against_go.rs`.

use serde_json::{Map, Value};

use crate::policy::time;

/// Why Go's decoder refuses an image config, or why its reading cannot be known from the
/// host's answer: the policy fails with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageConfigError {
    #[error(
        "`{path}` is {found}, where go-containerregistry (policy-controller) and the container runtime read {expected}: \
         they refuse this config"
    )]
    WrongType {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "the keys {first:?} and {second:?} both name `{path}` for Go's JSON decoder (it matches names without regard \
         to case and keeps the last one written), and the host's answer no longer says which was last"
    )]
    NamedTwice {
        path: String,
        first: String,
        second: String,
    },
    #[error(
        "`{path}` is {value:?}, not an RFC 3339 time as Go reads it (like 2024-01-31T12:00:00Z): \
         go-containerregistry refuses this config"
    )]
    NotATime { path: String, value: String },
    #[error(
        "`{path}` is {value:?}, not a digest go-containerregistry reads (`sha256:` and 64 lowercase hex digits): \
         it refuses this config"
    )]
    NotADigest { path: String, value: String },
    #[error("`{path}` is {value}, beyond the 64-bit integer Go decodes it into: it refuses this config")]
    OutOfRange { path: String, value: String },
}

/// What Go decodes a field into.
#[derive(Clone, Copy)]
enum Kind {
    String,
    Bool,
    /// `int` or `time.Duration`: an integer written without fraction or exponent.
    Integer,
    /// `[]string`.
    Strings,
    /// `map[string]string`.
    StringMap,
    /// `map[string]struct{}`: the values are written `{}` whatever they held.
    Set,
    /// go-containerregistry's `v1.Time`.
    Time,
    /// `[]v1.Hash`.
    Digests,
    Struct(&'static [Field]),
    /// A pointer to a struct: `null` is nil.
    Pointer(&'static [Field]),
    /// A list of structs.
    Structs(&'static [Field]),
}

/// A field of a Go struct: its JSON name, what it decodes into, and whether the encoder omits
/// its zero value (`omitempty`).
struct Field {
    name: &'static str,
    kind: Kind,
    omit_empty: bool,
}

const fn field(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        omit_empty: true,
    }
}

const fn always(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        omit_empty: false,
    }
}

/// `v1.ConfigFile`.
const CONFIG_FILE: &[Field] = &[
    always("architecture", Kind::String),
    field("author", Kind::String),
    field("container", Kind::String),
    // `omitempty` never omits a struct.
    always("created", Kind::Time),
    field("docker_version", Kind::String),
    field("history", Kind::Structs(HISTORY)),
    always("os", Kind::String),
    always("rootfs", Kind::Struct(ROOT_FS)),
    always("config", Kind::Struct(CONFIG)),
    field("os.version", Kind::String),
    field("variant", Kind::String),
    field("os.features", Kind::Strings),
];

/// `v1.History`.
const HISTORY: &[Field] = &[
    field("author", Kind::String),
    always("created", Kind::Time),
    field("created_by", Kind::String),
    field("comment", Kind::String),
    field("empty_layer", Kind::Bool),
];

/// `v1.RootFS`.
const ROOT_FS: &[Field] = &[always("type", Kind::String), always("diff_ids", Kind::Digests)];

/// `v1.HealthConfig`.
const HEALTH_CONFIG: &[Field] = &[
    field("Test", Kind::Strings),
    field("Interval", Kind::Integer),
    field("Timeout", Kind::Integer),
    field("StartPeriod", Kind::Integer),
    field("StartInterval", Kind::Integer),
    field("Retries", Kind::Integer),
];

/// `v1.Config`.
const CONFIG: &[Field] = &[
    field("AttachStderr", Kind::Bool),
    field("AttachStdin", Kind::Bool),
    field("AttachStdout", Kind::Bool),
    field("Cmd", Kind::Strings),
    field("Healthcheck", Kind::Pointer(HEALTH_CONFIG)),
    field("Domainname", Kind::String),
    field("Entrypoint", Kind::Strings),
    field("Env", Kind::Strings),
    field("Hostname", Kind::String),
    field("Image", Kind::String),
    field("Labels", Kind::StringMap),
    field("OnBuild", Kind::Strings),
    field("OpenStdin", Kind::Bool),
    field("StdinOnce", Kind::Bool),
    field("Tty", Kind::Bool),
    field("User", Kind::String),
    field("Volumes", Kind::Set),
    field("WorkingDir", Kind::String),
    field("ExposedPorts", Kind::Set),
    field("ArgsEscaped", Kind::Bool),
    field("NetworkDisabled", Kind::Bool),
    field("MacAddress", Kind::String),
    field("StopSignal", Kind::String),
    field("Shell", Kind::Strings),
];

/// The zero time, as Go writes it.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `config` (an image config as the host answered it) as policy-controller reads it: see the
/// module's documentation.
pub fn go_view(config: Map<String, Value>) -> Result<Map<String, Value>, ImageConfigError> {
    read_struct(config, CONFIG_FILE, "")
}

/// `object` decoded into the struct of `fields` and encoded again, keys that name no field
/// kept as they are. `path` names `object` in errors (empty at the top).
fn read_struct(
    object: Map<String, Value>,
    fields: &[Field],
    path: &str,
) -> Result<Map<String, Value>, ImageConfigError> {
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
            return Err(ImageConfigError::NamedTwice {
                path: join(path, fields[index].name),
                first: first.to_owned(),
                second: key.clone(),
            });
        }
        names.push(index);
    }
    let mut out = Map::new();
    for ((key, value), index) in object.into_iter().zip(names) {
        let Some(field) = index.map(|index| &fields[index]) else {
            out.insert(key, value);
            continue;
        };
        if let Some(value) = read_value(value, field.kind, &join(path, field.name))? {
            out.insert(field.name.to_owned(), value);
        }
    }
    for field in fields.iter().filter(|f| !f.omit_empty) {
        if !out.contains_key(field.name) {
            out.insert(field.name.to_owned(), zero(field.kind, &join(path, field.name))?);
        }
    }
    Ok(out)
}

/// `value` decoded into `kind` and encoded again; `None` for `null`, which leaves the field at
/// its zero value (nil for a list, map or pointer).
fn read_value(value: Value, kind: Kind, path: &str) -> Result<Option<Value>, ImageConfigError> {
    let wrong = |expected: &'static str, value: &Value| ImageConfigError::WrongType {
        path: path.to_owned(),
        expected,
        found: json_kind(value),
    };
    if value.is_null() {
        return Ok(None);
    }
    let read = match (kind, value) {
        (Kind::String, value @ Value::String(_)) | (Kind::Bool, value @ Value::Bool(_)) => value,
        (Kind::String, value) => return Err(wrong("a string", &value)),
        (Kind::Bool, value) => return Err(wrong("true or false", &value)),
        (Kind::Integer, Value::Number(number)) if number.is_f64() => {
            return Err(ImageConfigError::WrongType {
                path: path.to_owned(),
                expected: "an integer (no fraction or exponent)",
                found: "a number with a fraction or exponent",
            });
        }
        (Kind::Integer, Value::Number(number)) => match number.as_i64() {
            Some(integer) => Value::from(integer),
            None => {
                return Err(ImageConfigError::OutOfRange {
                    path: path.to_owned(),
                    value: number.to_string(),
                });
            }
        },
        (Kind::Integer, value) => return Err(wrong("an integer", &value)),
        (Kind::Strings, Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    // A `null` item leaves the string empty.
                    Value::Null => Ok(Value::String(String::new())),
                    item @ Value::String(_) => Ok(item),
                    item => Err(ImageConfigError::WrongType {
                        path: format!("{path}[{i}]"),
                        expected: "a string",
                        found: json_kind(&item),
                    }),
                })
                .collect::<Result<_, _>>()?,
        ),
        (Kind::StringMap, Value::Object(entries)) => Value::Object(
            entries
                .into_iter()
                .map(|(key, entry)| match entry {
                    Value::Null => Ok((key, Value::String(String::new()))),
                    entry @ Value::String(_) => Ok((key, entry)),
                    entry => Err(ImageConfigError::WrongType {
                        path: join(path, &key),
                        expected: "a string",
                        found: json_kind(&entry),
                    }),
                })
                .collect::<Result<_, _>>()?,
        ),
        (Kind::Set, Value::Object(entries)) => Value::Object(
            entries
                .into_iter()
                .map(|(key, entry)| match entry {
                    // `struct{}` takes any object (it has no field to match) or `null`.
                    Value::Null | Value::Object(_) => Ok((key, Value::Object(Map::new()))),
                    entry => Err(ImageConfigError::WrongType {
                        path: join(path, &key),
                        expected: "an object",
                        found: json_kind(&entry),
                    }),
                })
                .collect::<Result<_, _>>()?,
        ),
        (Kind::Time, Value::String(text)) => match time::as_go_rewrites(&text) {
            Some(rewritten) => Value::String(rewritten),
            None => {
                return Err(ImageConfigError::NotATime {
                    path: path.to_owned(),
                    value: text,
                });
            }
        },
        (Kind::Time, value) => return Err(wrong("a time (a string)", &value)),
        (Kind::Digests, Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(digest) if is_go_digest(&digest) => Ok(Value::String(digest)),
                    Value::String(digest) => Err(ImageConfigError::NotADigest {
                        path: format!("{path}[{i}]"),
                        value: digest,
                    }),
                    // `null` too: `v1.Hash`'s own `UnmarshalJSON` is given it, and refuses it.
                    item => Err(ImageConfigError::WrongType {
                        path: format!("{path}[{i}]"),
                        expected: "a digest (a string)",
                        found: json_kind(&item),
                    }),
                })
                .collect::<Result<_, _>>()?,
        ),
        (Kind::Struct(fields) | Kind::Pointer(fields), Value::Object(object)) => {
            Value::Object(read_struct(object, fields, path)?)
        }
        (Kind::Structs(fields), Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_path = format!("{path}[{i}]");
                    match item {
                        // A `null` item is the zero struct.
                        Value::Null => read_struct(Map::new(), fields, &item_path).map(Value::Object),
                        Value::Object(object) => read_struct(object, fields, &item_path).map(Value::Object),
                        item => Err(ImageConfigError::WrongType {
                            path: item_path,
                            expected: "an object",
                            found: json_kind(&item),
                        }),
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
        (Kind::Strings | Kind::Digests | Kind::Structs(_), value) => return Err(wrong("a list", &value)),
        (Kind::StringMap | Kind::Set | Kind::Struct(_) | Kind::Pointer(_), value) => {
            return Err(wrong("an object", &value));
        }
    };
    Ok(Some(read))
}

/// What Go's encoder writes for a field at its zero value.
fn zero(kind: Kind, path: &str) -> Result<Value, ImageConfigError> {
    Ok(match kind {
        Kind::String => Value::String(String::new()),
        Kind::Bool => Value::Bool(false),
        Kind::Integer => Value::from(0),
        Kind::Time => Value::String(ZERO_TIME.to_owned()),
        Kind::Struct(fields) => Value::Object(read_struct(Map::new(), fields, path)?),
        Kind::Strings | Kind::StringMap | Kind::Set | Kind::Digests | Kind::Pointer(_) | Kind::Structs(_) => {
            Value::Null
        }
    })
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

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
