//! `policy::image_config::go_view` against Go itself: go-containerregistry's `v1.ParseConfigFile`
//! (`json.NewDecoder(r).Decode(&cf)`) and `json.Marshal`, as policy-controller hands a
//! `fetchConfigFile` policy its image configs (`testkit::go_image_configs`,
//! `scripts/go-image-config.go`, built by `make test-tools`; without it the test fails, it is
//! never skipped).
//!
//! Generated config texts: the fields of `ConfigFile` and its structs under their names and
//! under other spellings Go's decoder takes for them (case, U+017F for `s`, U+212A for `k`),
//! names of no field, values of the right and of wrong JSON types, `null`s, nested structs,
//! times valid and not, digests valid and not. No object has the same key twice (the hosts
//! parse a config into a map first); keys alike only by case folding it may have. Each text is
//! read as the host reads it (`serde_json` into a map) and given to `go_view`, and Go reads it:
//!
//! - a config Go refuses must be refused (it fails the policy in policy-controller);
//! - a config Go reads may be refused only for a reason [`allowed_refusal`] names (counted);
//! - when both read it, ours is what Go writes, exactly: compared struct by struct (the top,
//!   `config`, `rootfs`, `Healthcheck`, each history item; [`CONFIG_FILE`] and the tables under
//!   it), so that a difference names its field.
//!
//! Not generated: JSON escapes inside a time (`"…\u005a"`). Go's `Time.UnmarshalJSON` parses the
//! text between the quotes as written and refuses them, but the host's map has them undone, so
//! no reading of the map can tell (testkit's `go_image_config` test shows Go's refusal).
//!
//! A difference is shrunk (members and items removed while it stays the same difference) and
//! printed with Go's answer and ours. `IMAGE_CONFIG_CASES` sets the number of configs,
//! `IMAGE_CONFIG_SEED` gives a run's configs again.

// `*rng.pick(CONST)`: the deref clippy calls needless is what infers `T = &str`.
#![allow(clippy::explicit_auto_deref)]
// Native only: Go runs beside the test (testkit), not inside a wasm32 test.
#![cfg(not(target_family = "wasm"))]

use std::collections::{BTreeMap, BTreeSet};

use cluster_image_policy::policy::go_json::GoReadError;
use cluster_image_policy::policy::image_config::go_view;
use serde_json::{Map, Value};
use testkit::{JsonParts as Json, Rng, go_fold};

/// The seed of a run without `IMAGE_CONFIG_SEED`: none, a fresh one each run (printed).
const DEFAULT_SEED: Option<u64> = None;

/// Configs per run.
const CASES: usize = 4000;

/// Differences shrunk and printed (each of another kind).
const SHOWN: usize = 12;

// ---- the schema: go-containerregistry's pkg/v1/config.go ----

/// What a Go field decodes into.
#[derive(Clone, Copy)]
enum Ty {
    /// `string`.
    Str,
    /// `bool`.
    Bool,
    /// `int`, `time.Duration`.
    Int,
    /// `[]string`.
    Strings,
    /// `map[string]string`.
    StrMap,
    /// `map[string]struct{}`.
    Set,
    /// `v1.Time`.
    Time,
    /// `[]v1.Hash`.
    Digests,
    /// A struct.
    Struct(&'static [Field]),
    /// A pointer to a struct.
    Pointer(&'static [Field]),
    /// A list of structs.
    Structs(&'static [Field]),
}

/// A field: its JSON name and its type (the generator's; whether Go omits it is Go's to say).
struct Field {
    name: &'static str,
    ty: Ty,
}

const fn field(name: &'static str, ty: Ty) -> Field {
    Field { name, ty }
}

/// `v1.ConfigFile`. (`created` is `omitempty`, but the encoder never omits a struct.)
const CONFIG_FILE: &[Field] = &[
    field("architecture", Ty::Str),
    field("author", Ty::Str),
    field("container", Ty::Str),
    field("created", Ty::Time),
    field("docker_version", Ty::Str),
    field("history", Ty::Structs(HISTORY)),
    field("os", Ty::Str),
    field("rootfs", Ty::Struct(ROOT_FS)),
    field("config", Ty::Struct(CONFIG)),
    field("os.version", Ty::Str),
    field("variant", Ty::Str),
    field("os.features", Ty::Strings),
];

/// `v1.History`.
const HISTORY: &[Field] = &[
    field("author", Ty::Str),
    field("created", Ty::Time),
    field("created_by", Ty::Str),
    field("comment", Ty::Str),
    field("empty_layer", Ty::Bool),
];

/// `v1.RootFS`.
const ROOT_FS: &[Field] = &[field("type", Ty::Str), field("diff_ids", Ty::Digests)];

/// `v1.HealthConfig` (tags `json:",omitempty"`).
const HEALTH_CONFIG: &[Field] = &[
    field("Test", Ty::Strings),
    field("Interval", Ty::Int),
    field("Timeout", Ty::Int),
    field("StartPeriod", Ty::Int),
    field("StartInterval", Ty::Int),
    field("Retries", Ty::Int),
];

/// `v1.Config`.
const CONFIG: &[Field] = &[
    field("AttachStderr", Ty::Bool),
    field("AttachStdin", Ty::Bool),
    field("AttachStdout", Ty::Bool),
    field("Cmd", Ty::Strings),
    field("Healthcheck", Ty::Pointer(HEALTH_CONFIG)),
    field("Domainname", Ty::Str),
    field("Entrypoint", Ty::Strings),
    field("Env", Ty::Strings),
    field("Hostname", Ty::Str),
    field("Image", Ty::Str),
    field("Labels", Ty::StrMap),
    field("OnBuild", Ty::Strings),
    field("OpenStdin", Ty::Bool),
    field("StdinOnce", Ty::Bool),
    field("Tty", Ty::Bool),
    field("User", Ty::Str),
    field("Volumes", Ty::Set),
    field("WorkingDir", Ty::Str),
    field("ExposedPorts", Ty::Set),
    field("ArgsEscaped", Ty::Bool),
    field("NetworkDisabled", Ty::Bool),
    field("MacAddress", Ty::Str),
    field("StopSignal", Ty::Str),
    field("Shell", Ty::Strings),
];

/// Names of no field (`container_config` is Docker's; `osversion` is not `os.version`).
const UNKNOWN: &[&str] = &["container_config", "throwaway", "osversion", "extra", "Config2"];

// ---- generated configs ----

const STRINGS: &[&str] = &[
    "",
    "0",
    "root",
    "65532",
    "/bin/sh",
    "amd64",
    "linux",
    "v8",
    "é",
    "a\"b\\c",
    "\u{2028}",
    "<&>",
    "\u{17F}\u{212A}",
];
/// Integers Go takes and numbers it does not (fractions, exponents, beyond 64 bits).
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "30000000000",
    "5000000000",
    "-0",
    "0",
    "1",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1.5",
    "1e3",
    "1E2",
    "1.0",
    "0.0",
    "-0.0",
];
/// JSON values of any type, for wrong types and unknown names.
const ANY: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "1",
    "-1",
    "1.5",
    "\"\"",
    "\"x\"",
    "[]",
    "[\"a\"]",
    "[null]",
    "[1]",
    "{}",
    "{\"a\":\"b\"}",
    "{\"User\":1}",
];
const MAP_KEYS: &[&str] = &["a", "A", "com.example/x", "", "k", "\u{212A}", "\u{17F}"];
const SET_KEYS: &[&str] = &["80/tcp", "443/tcp", "/data", "/DATA", ""];
const SET_VALUES: &[&str] = &[
    "{}",
    "{}",
    "{}",
    "{}",
    "{}",
    "null",
    "{\"x\":1}",
    "{\"a\":{\"b\":[1]}}",
    "1",
    "[]",
];
const FRACTIONS: &[&str] = &[
    "",
    "",
    "",
    ".5",
    ".500",
    ".000",
    ".123456789",
    ".100000000",
    ".000000001",
    ".1234567891",
    ".0000000000",
];
const ZONES: &[&str] = &[
    "Z", "Z", "Z", "+00:00", "-00:00", "+01:00", "-05:30", "+05:45", "+14:00", "-12:00", "+23:59", "-23:59",
];
const HEX: &[u8; 16] = b"0123456789abcdef";

struct Gen {
    rng: Rng,
}

impl Gen {
    /// A spelling of the field `name` Go's decoder takes: mostly the name, else its letters in
    /// either case, `s` sometimes U+017F and `k` U+212A.
    fn spelling(&mut self, name: &str) -> String {
        if self.rng.chance(60) {
            return name.to_owned();
        }
        name.chars()
            .map(|c| match c {
                's' | 'S' if self.rng.chance(25) => '\u{17F}',
                'k' | 'K' if self.rng.chance(25) => '\u{212A}',
                c if c.is_ascii_alphabetic() && self.rng.chance(50) => {
                    if c.is_ascii_lowercase() {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                }
                c => c,
            })
            .collect()
    }

    /// An object for the struct of `fields`: some of its fields (now and then one twice, under
    /// two spellings), now and then names of no field, in a random order.
    fn object(&mut self, fields: &'static [Field], depth: usize) -> Json {
        let percent = if fields.len() > 12 { 25 } else { 45 };
        let mut keys = BTreeSet::new();
        let mut members = Vec::new();
        for field in fields {
            if !self.rng.chance(percent) {
                continue;
            }
            for _ in 0..if self.rng.chance(4) { 2 } else { 1 } {
                let key = self.spelling(field.name);
                if keys.insert(key.clone()) {
                    let value = self.value(field.ty, depth);
                    members.push((key, value));
                }
            }
        }
        while self.rng.chance(20) {
            let name = *self.rng.pick(UNKNOWN);
            let key = self.spelling(name);
            if keys.insert(key.clone()) {
                let value = self.any(depth);
                members.push((key, value));
            }
        }
        for i in (1..members.len()).rev() {
            members.swap(i, self.rng.below(i + 1));
        }
        Json::Obj(members)
    }

    fn any(&mut self, depth: usize) -> Json {
        if depth < 3 && self.rng.chance(15) {
            return self.object(CONFIG, depth + 1);
        }
        Json::Lit((*self.rng.pick(ANY)).to_owned())
    }

    fn value(&mut self, ty: Ty, depth: usize) -> Json {
        if self.rng.chance(7) {
            return Json::Lit("null".into());
        }
        if self.rng.chance(2) {
            return self.any(depth);
        }
        match ty {
            Ty::Str => Json::string(*self.rng.pick(STRINGS)),
            Ty::Bool => Json::Lit((*self.rng.pick(&["true", "false"])).to_owned()),
            Ty::Int => Json::Lit((*self.rng.pick(NUMBERS)).to_owned()),
            Ty::Strings => Json::List(
                (0..self.rng.below(4))
                    .map(|_| match self.rng.below(100) {
                        0..92 => Json::string(*self.rng.pick(STRINGS)),
                        92..98 => Json::Lit("null".into()),
                        _ => Json::Lit((*self.rng.pick(ANY)).to_owned()),
                    })
                    .collect(),
            ),
            Ty::StrMap => self.map(MAP_KEYS, |generator| match generator.rng.below(100) {
                0..87 => Json::string(*generator.rng.pick(STRINGS)),
                87..97 => Json::Lit("null".into()),
                _ => Json::Lit((*generator.rng.pick(ANY)).to_owned()),
            }),
            Ty::Set => self.map(SET_KEYS, |generator| {
                Json::Lit((*generator.rng.pick(SET_VALUES)).to_owned())
            }),
            Ty::Time => Json::string(&self.time()),
            Ty::Digests => Json::List((0..self.rng.below(4)).map(|_| self.digest()).collect()),
            Ty::Struct(fields) | Ty::Pointer(fields) => {
                if depth > 3 {
                    Json::Obj(Vec::new())
                } else {
                    self.object(fields, depth + 1)
                }
            }
            Ty::Structs(fields) => Json::List(
                (0..self.rng.below(4))
                    .map(|_| match self.rng.below(100) {
                        0..87 => self.object(fields, depth + 1),
                        87..96 => Json::Lit("null".into()),
                        _ => Json::Lit((*self.rng.pick(ANY)).to_owned()),
                    })
                    .collect(),
            ),
        }
    }

    /// An object of up to three distinct keys from `keys`, each with a value of `value`.
    fn map(&mut self, keys: &[&str], value: impl Fn(&mut Self) -> Json) -> Json {
        let mut seen = BTreeSet::new();
        let mut members = Vec::new();
        for _ in 0..self.rng.below(4) {
            let key = *self.rng.pick(keys);
            if seen.insert(key) {
                members.push((key.to_owned(), value(self)));
            }
        }
        Json::Obj(members)
    }

    /// An RFC 3339 time, its fraction and offset of every kind; one in five broken one way.
    fn time(&mut self) -> String {
        let year = *self.rng.pick(&[0, 1, 1970, 2000, 2023, 2024, 9999]);
        let month = 1 + self.rng.below(12);
        let days = match month {
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 28 + 1,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let day = if self.rng.chance(20) {
            days
        } else {
            1 + self.rng.below(days)
        };
        let mut parts = [
            format!("{year:04}"),
            format!("-{month:02}"),
            format!("-{day:02}"),
            "T".to_owned(),
            format!("{:02}", *self.rng.pick(&[0, 1, 12, 23])),
            format!(":{:02}", *self.rng.pick(&[0, 30, 59])),
            format!(":{:02}", *self.rng.pick(&[0, 1, 59])),
            (*self.rng.pick(FRACTIONS)).to_owned(),
            (*self.rng.pick(ZONES)).to_owned(),
        ];
        if self.rng.chance(20) {
            let (part, broken): (usize, &[&str]) = *self.rng.pick(&[
                (0, &["10000", "999", "+2024", "2O24"][..]),
                (1, &["-00", "-13", "-1"][..]),
                (2, &["-00", "-32", "-30", "-31", "-29"][..]),
                (3, &["t", " ", "", "TT"][..]),
                (4, &["24", "1", "7", "-1", "001"][..]),
                (5, &[":60", ":5", ""][..]),
                (6, &[":60", ":5", ""][..]),
                (7, &[",5", ",123", ".", ".x", ".12345678901", ". 5", ".5.5", "0"][..]),
                (
                    8,
                    &[
                        "z", "", "+24:00", "-24:00", "+00:60", "+12:60", "+23:60", "+25:00", "+99:99", "+1:00", "+01",
                        "+0100", "+01:0", "+01:000", "UTC", " Z", "Zx", "ZZ", "+-1:00", "++1:00", "+01:-1", "+ 1:00",
                    ][..],
                ),
            ]);
            parts[part] = (*self.rng.pick(broken)).to_owned();
        }
        parts.concat()
    }

    fn digest(&mut self) -> Json {
        let hex: String = (0..64).map(|_| char::from(*self.rng.pick(HEX))).collect();
        let text = match self.rng.below(100) {
            0..75 => format!("sha256:{hex}"),
            75..78 => format!("sha256:{}", hex.to_uppercase()),
            78..81 => format!("sha256:{}", &hex[1..]),
            81..84 => format!("sha256:{hex}0"),
            84..86 => format!("sha512:{hex}{hex}"),
            86..88 => format!("sha256:{hex}:0"),
            88..90 => format!("SHA256:{hex}"),
            90..92 => format!("sha256:{}g", &hex[1..]),
            92..94 => "sha256".to_owned(),
            94..96 => String::new(),
            96..98 => return Json::Lit("null".into()),
            _ => return Json::Lit((*self.rng.pick(ANY)).to_owned()),
        };
        Json::string(&text)
    }
}

// ---- comparing ----

/// What one config comes to.
enum Verdict {
    /// Both refuse it, or both read it the same: a count's name.
    Agree(&'static str),
    /// Ours refuses what Go reads, for a reason [`allowed_refusal`] names.
    Allowed(&'static str),
    /// A difference: its kind (which shrinking keeps) and its details.
    Differ { kind: String, details: String },
}

/// The config `text` read by the host (`serde_json` into a map, as the hosts read it) and by
/// `go_view`.
fn ours(text: &str) -> Result<Map<String, Value>, GoReadError> {
    let config: Map<String, Value> = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    go_view(config)
}

fn judge(text: &str, go: &Result<Value, String>) -> Verdict {
    match (go, ours(text)) {
        (Err(_), Err(_)) => Verdict::Agree("both refuse"),
        (Err(refusal), Ok(view)) => Verdict::Differ {
            kind: format!("Go refuses, ours reads: {refusal}"),
            details: format!("Go: {refusal}\nours: {}", Value::Object(view)),
        },
        (Ok(view), Err(error)) => match allowed_refusal(text, &error) {
            Some(reason) => Verdict::Allowed(reason),
            None => Verdict::Differ {
                kind: format!("ours refuses, Go reads: {}", refusal_kind(&error)),
                details: format!("Go: {view}\nours: {error:?}"),
            },
        },
        (Ok(go_view), Ok(view)) => {
            let view = Value::Object(view);
            let mut differences = Vec::new();
            compare_struct(go_view, &view, CONFIG_FILE, "", &mut differences);
            if differences.is_empty() {
                Verdict::Agree("both read, views agree")
            } else {
                let (kinds, lines): (Vec<String>, Vec<String>) = differences.into_iter().unzip();
                Verdict::Differ {
                    kind: kinds.join("; "),
                    details: format!("{}\nGo: {go_view}\nours: {view}", lines.join("\n")),
                }
            }
        }
    }
}

/// Why ours may refuse the config `text`, which Go reads, if it may:
///
/// - two keys of one object naming one field: Go keeps the last, which a map no longer tells
///   (refused as such before any value is read, whatever their values);
/// - `-0` for an integer: serde_json reads it as the float `-0.0` (which Go refuses), so the
///   map no longer tells the two apart.
fn allowed_refusal(text: &str, error: &GoReadError) -> Option<&'static str> {
    let config: Value = serde_json::from_str(text).ok()?;
    let path = match error {
        GoReadError::NamedTwice { .. } => return Some("ours refuses: two keys name one field"),
        GoReadError::WrongType { path, .. }
        | GoReadError::NotATime { path, .. }
        | GoReadError::NotADigest { path, .. }
        | GoReadError::OutOfRange { path, .. }
        | GoReadError::BeyondIntegers { path, .. }
        | GoReadError::Rounded { path, .. } => path,
        GoReadError::EscapedTime { .. } => return None,
    };
    match (error, find(&config, CONFIG_FILE, path)) {
        (GoReadError::WrongType { .. }, Found::Field(Ty::Int, Value::Number(n)))
            if n.is_f64() && n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()) =>
        {
            Some("ours refuses: -0 for an integer (serde_json reads the float -0.0)")
        }
        _ => None,
    }
}

/// What is at a path of an error (`config.Env[1]`, `history[0].created`, `os.version`).
enum Found<'a> {
    /// Two keys of one object name a field on the way.
    NamedTwice,
    /// The field's type and its value.
    Field(Ty, &'a Value),
    /// Nothing, or a list's item.
    Other,
}

/// What is at `path` in `object`, the struct of `fields`.
fn find<'a>(object: &'a Value, fields: &[Field], path: &str) -> Found<'a> {
    let Some(object) = object.as_object() else {
        return Found::Other;
    };
    let Some((field, rest)) = fields.iter().find_map(|f| {
        let rest = path.strip_prefix(f.name)?;
        (rest.is_empty() || rest.starts_with(['.', '['])).then_some((f, rest))
    }) else {
        return Found::Other;
    };
    let values: Vec<&Value> = object
        .iter()
        .filter(|(key, _)| go_fold(key) == go_fold(field.name))
        .map(|(_, value)| value)
        .collect();
    match (values.as_slice(), field.ty) {
        ([_, _, ..], _) => Found::NamedTwice,
        ([value], _) if rest.is_empty() => Found::Field(field.ty, value),
        ([value], Ty::Struct(fields) | Ty::Pointer(fields)) => match rest.strip_prefix('.') {
            Some(rest) => find(value, fields, rest),
            None => Found::Other,
        },
        ([value], Ty::Structs(fields)) => {
            let item = rest
                .strip_prefix('[')
                .and_then(|rest| rest.split_once("]."))
                .and_then(|(index, rest)| Some((value.as_array()?.get(index.parse::<usize>().ok()?)?, rest)));
            match item {
                Some((item, rest)) => find(item, fields, rest),
                None => Found::Other,
            }
        }
        _ => Found::Other,
    }
}

/// `time` with its fraction cut to nine digits, when it has more.
fn cut_fraction(time: &str) -> Option<String> {
    let point = time.find('.')?;
    let digits = time[point + 1..].bytes().take_while(u8::is_ascii_digit).count();
    (digits > 9).then(|| format!("{}{}", &time[..point + 10], &time[point + 1 + digits..]))
}

/// The kind of a refusal, by variant and the field named (list indices left out); for a time,
/// with what it has that a plain RFC 3339 time does not.
fn refusal_kind(error: &GoReadError) -> String {
    let (variant, path) = match error {
        GoReadError::WrongType { path, .. } => ("WrongType", path),
        GoReadError::NamedTwice { path, .. } => ("NamedTwice", path),
        GoReadError::NotATime { path, value } => {
            return format!("NotATime at {} ({})", without_indices(path), time_oddity(value));
        }
        GoReadError::NotADigest { path, .. } => ("NotADigest", path),
        GoReadError::OutOfRange { path, .. } => ("OutOfRange", path),
        GoReadError::BeyondIntegers { path, .. } => ("BeyondIntegers", path),
        GoReadError::Rounded { path, .. } => ("Rounded", path),
        GoReadError::EscapedTime { value } => return format!("EscapedTime ({value})"),
    };
    format!("{variant} at {}", without_indices(path))
}

/// What the time `text` has that `YYYY-MM-DDTHH:MM:SS[.F](Z|±HH:MM)` with each part in range
/// does not, as far as the generator makes such times.
fn time_oddity(text: &str) -> String {
    let b = text.as_bytes();
    let mut odd = Vec::new();
    if b.get(12) == Some(&b':') {
        odd.push("a one-digit hour");
    }
    if text.contains(',') {
        odd.push("a comma before the fraction");
    }
    if text.len() > 6 && text.ends_with(":60") {
        odd.push("an offset of 60 minutes");
    }
    if cut_fraction(text).is_some() {
        odd.push("more than nine digits of fraction");
    }
    if odd.is_empty() {
        text.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect()
    } else {
        odd.join(", ")
    }
}

fn without_indices(path: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// The struct of `fields` as Go writes it (`go`) and as ours does: each difference as (its
/// kind, a line about it).
fn compare_struct(go: &Value, ours: &Value, fields: &[Field], path: &str, out: &mut Vec<(String, String)>) {
    let (Some(go), Some(ours)) = (go.as_object(), ours.as_object()) else {
        out.push((
            format!("{} not both objects", without_indices(path)),
            format!("{path}: Go {go}, ours {ours}"),
        ));
        return;
    };
    let at = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    for (key, go_value) in go {
        let Some(field) = fields.iter().find(|f| f.name == key) else {
            out.push((
                format!("Go writes {} of no field", without_indices(&at(key))),
                format!("{}: {go_value}", at(key)),
            ));
            continue;
        };
        match ours.get(key) {
            None => out.push((
                format!("{} missing in ours", without_indices(&at(key))),
                format!("{}: Go {go_value}, ours has none", at(key)),
            )),
            Some(value) => compare_value(go_value, value, field.ty, &at(key), out),
        }
    }
    // Ours writes exactly what Go writes: no key Go leaves out.
    for (key, value) in ours.iter().filter(|(key, _)| !go.contains_key(*key)) {
        out.push((
            format!("{} only in ours", without_indices(&at(key))),
            format!("{}: Go has none, ours {value}", at(key)),
        ));
    }
}

fn compare_value(go: &Value, ours: &Value, ty: Ty, path: &str, out: &mut Vec<(String, String)>) {
    match (ty, go.as_array(), ours.as_array()) {
        (Ty::Struct(fields) | Ty::Pointer(fields), _, _) if go.is_object() => {
            compare_struct(go, ours, fields, path, out);
        }
        (Ty::Structs(fields), Some(go_items), Some(our_items)) if go_items.len() == our_items.len() => {
            for (i, (go_item, our_item)) in go_items.iter().zip(our_items).enumerate() {
                compare_struct(go_item, our_item, fields, &format!("{path}[{i}]"), out);
            }
        }
        _ if go == ours => {}
        _ => out.push((
            format!("{} differs", without_indices(path)),
            format!("{path}: Go {go}, ours {ours}"),
        )),
    }
}

/// `config` with members and items removed for as long as it stays a difference of `kind`.
fn shrink(config: &Json, kind: &str) -> Json {
    config.smallest(|candidates| {
        let texts: Vec<String> = candidates.iter().map(Json::text).collect();
        let answers = testkit::go_image_configs(&texts).expect("Go answers (make test-tools)");
        texts
            .iter()
            .zip(&answers)
            .position(|(text, go)| matches!(judge(text, go), Verdict::Differ { kind: k, .. } if k == kind))
    })
}

#[test]
fn go_view_reads_configs_as_go_reads_them() {
    let count = testkit::case_count("IMAGE_CONFIG_CASES", CASES);
    let seed = testkit::run_seed("IMAGE_CONFIG_SEED", DEFAULT_SEED);
    let mut generator = Gen { rng: Rng(seed) };
    let configs: Vec<Json> = (0..count).map(|_| generator.object(CONFIG_FILE, 0)).collect();
    let texts: Vec<String> = configs.iter().map(Json::text).collect();
    let answers = testkit::go_image_configs(&texts).expect("Go answers (make test-tools)");

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut differences: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (text, go)) in texts.iter().zip(&answers).enumerate() {
        match judge(text, go) {
            Verdict::Agree(count) | Verdict::Allowed(count) => *counts.entry(count).or_default() += 1,
            Verdict::Differ { kind, .. } => differences.entry(kind).or_default().push(i),
        }
    }
    println!("{count} configs: {counts:#?}");
    for (kind, cases) in differences.iter().take(SHOWN) {
        let smallest = shrink(&configs[cases[0]], kind);
        let text = smallest.text();
        let go = &testkit::go_image_configs(std::slice::from_ref(&text)).expect("Go answers")[0];
        let Verdict::Differ { details, .. } = judge(&text, go) else {
            unreachable!("shrinking keeps the difference")
        };
        println!(
            "=== {kind}: {} configs, the smallest:\n{text}\n{details}\n",
            cases.len()
        );
    }
    assert!(
        differences.is_empty(),
        "{} kinds of difference from Go (IMAGE_CONFIG_SEED={seed}): {:#?}",
        differences.len(),
        differences
            .iter()
            .map(|(kind, cases)| (kind, cases.len()))
            .collect::<Vec<_>>()
    );
}

/// The comparison itself, on answers made up for it: it finds each kind of difference.
#[test]
fn the_comparison_finds_differences() {
    let go = serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "os": "",
        "rootfs": { "type": "", "diff_ids": null },
        "config": { "User": "0", "Healthcheck": { "Retries": 3 } },
        "history": [{ "created": "0001-01-01T00:00:00Z", "author": "a" }],
    });
    let differences = |ours: Value| {
        let mut out = Vec::new();
        compare_struct(&go, &ours, CONFIG_FILE, "", &mut out);
        out.into_iter().map(|(kind, _)| kind).collect::<BTreeSet<_>>()
    };
    assert_eq!(differences(go.clone()), BTreeSet::new());
    let mut ours = go.clone();
    ours["config"]["Env"] = serde_json::json!([]);
    ours["config"]["Tty"] = Value::Bool(false);
    ours["history"][0]["comment"] = Value::from("");
    ours["config"]["Healthcheck"]["Timeout"] = Value::from(0);
    ours["extra"] = Value::from(1);
    ours["config"]["Config2"] = Value::from(1);
    assert_eq!(
        differences(ours),
        BTreeSet::from(
            [
                "config.Env only in ours",
                "config.Tty only in ours",
                "history.comment only in ours",
                "config.Healthcheck.Timeout only in ours",
                "extra only in ours",
                "config.Config2 only in ours",
            ]
            .map(String::from)
        ),
        "zero values and unknown names: Go writes neither, nor may ours"
    );

    let mut ours = go.clone();
    ours["config"]["Healthcheck"]["Retries"] = Value::from(4);
    ours["history"][0].as_object_mut().unwrap().remove("author");
    ours["config"]["Cmd"] = serde_json::json!(["sh"]);
    ours["config"]["Env"] = Value::Null;
    ours["config"]["u\u{17F}er"] = Value::from("0");
    ours["os"] = Value::from("linux");
    assert_eq!(
        differences(ours),
        BTreeSet::from(
            [
                "history.author missing in ours",
                "os differs",
                "config.Healthcheck.Retries differs",
                "config.Cmd only in ours",
                "config.Env only in ours",
                "config.u\u{17F}er only in ours",
            ]
            .map(String::from)
        )
    );

    let read = r#"{"created":"2024-01-01T00:00:00\u005a"}"#;
    assert!(
        matches!(judge(read, &Err("parsing time".into())), Verdict::Differ { kind, .. } if kind.starts_with("Go refuses, ours reads")),
        "a config Go refuses and ours reads"
    );
    assert!(matches!(
        judge(r#"{"os":1}"#, &Err("cannot unmarshal number".into())),
        Verdict::Agree(_)
    ));
    let named_twice = r#"{"config":{"User":"0","user":"1"}}"#;
    assert!(matches!(judge(named_twice, &Ok(go.clone())), Verdict::Allowed(_)));
    let empty = serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "os": "",
        "rootfs": { "type": "", "diff_ids": null },
        "config": {},
    });
    assert!(matches!(judge("{}", &Ok(empty.clone())), Verdict::Agree(_)));
    assert!(matches!(
        judge(r#"{"os":"linux"}"#, &Ok(empty)),
        Verdict::Differ { kind, .. } if kind == "os differs"
    ));
}
