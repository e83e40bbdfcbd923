//! `policy::statement::go_view` against Go itself: cosign's `AttestationToPayloadJSON`, as
//! policy-controller hands an attestation's policy its in-toto statement: `json.Unmarshal` into
//! in-toto-golang's `Statement`, again into the typed statement the predicate type written in the
//! policy names, and `json.Marshal` (`testkit::go_statements`, `scripts/go-statement.go`, built
//! by `make test-tools`; without it the test fails, it is never skipped).
//!
//! Generated statements, for each predicate type a policy may write (cosign's short names and a
//! URI): the fields of the statement and of its predicate's structs under their names and under
//! other spellings Go's decoder takes for them (case, U+017F for `s`, U+212A for `k`), names of
//! no field, values of the right and of wrong JSON types, `null`s, nested structs, predicates of
//! another type's shape, numbers of every kind (integers small and beyond 53 and 64 bits,
//! fractions, exponents, `-0`, `1.0`, underflowing), times valid and not. No object has the same
//! key twice (the host parses a statement into a map first); keys alike only by case folding it
//! may have. Each text is read as the host reads it (`serde_json::from_str::<Value>`, a text it
//! cannot parse is left out and counted) and given to `go_view`, and Go reads it:
//!
//! - a statement Go refuses must be refused (it fails the policy in policy-controller);
//! - a statement Go reads may be refused only for a reason [`allowed_refusal`] names (counted);
//! - when both read it, ours is what Go writes, exactly (`serde_json::Value` equality: the
//!   integer `1` and the float `1.0` differ).
//!
//! A difference is shrunk (members and items removed while it stays the same difference) and
//! printed with Go's answer and ours. `STATEMENT_CASES` sets the number of statements,
//! `STATEMENT_SEED` gives a run's statements again.

// `*rng.pick(CONST)`: the deref clippy calls needless is what infers `T = &str`.
#![allow(clippy::explicit_auto_deref)]
// Native only: Go runs beside the test (testkit), not inside a wasm32 test.
#![cfg(not(target_family = "wasm"))]

use std::collections::{BTreeMap, BTreeSet};

use cluster_image_policy::policy::go_json::GoReadError;
use cluster_image_policy::policy::statement::go_view;
use serde_json::Value;
use testkit::{JsonParts as Json, Rng, go_fold};

/// The seed of a run without `STATEMENT_SEED`: none, a fresh one each run (printed).
const DEFAULT_SEED: Option<u64> = None;

/// Statements per run.
const CASES: usize = 4000;

/// Differences shrunk and printed (each of another kind).
const SHOWN: usize = 12;

// ---- the schema: in-toto-golang v0.9.0 and cosign v2.2.3 ----

/// What a Go field decodes into.
#[derive(Clone, Copy)]
enum Ty {
    /// `string`.
    Str,
    /// `bool`.
    Bool,
    /// `interface{}`.
    Any,
    /// `[]string`.
    Strings,
    /// `map[string]string` (`common.DigestSet`).
    StrMap,
    /// `map[string]interface{}`.
    AnyMap,
    /// `time.Time`.
    Time,
    /// `*time.Time`.
    TimePointer,
    /// A struct.
    Struct(&'static [Field]),
    /// A pointer to a struct.
    Pointer(&'static [Field]),
    /// A list of structs.
    Structs(&'static [Field]),
}

/// A field: its JSON name and its type (`omitempty` does not matter here: the views are
/// compared whole).
struct Field {
    name: &'static str,
    ty: Ty,
}

const fn f(name: &'static str, ty: Ty) -> Field {
    Field { name, ty }
}

/// `in_toto.Subject`.
const SUBJECT: &[Field] = &[f("name", Ty::Str), f("digest", Ty::StrMap)];

/// `in_toto.Link` (v0.9.0).
const LINK: &[Field] = &[
    f("_type", Ty::Str),
    f("name", Ty::Str),
    f("materials", Ty::AnyMap),
    f("products", Ty::AnyMap),
    f("byproducts", Ty::AnyMap),
    f("command", Ty::Strings),
    f("environment", Ty::AnyMap),
];

/// `slsa02.ConfigSource`.
const CONFIG_SOURCE: &[Field] = &[f("uri", Ty::Str), f("digest", Ty::StrMap), f("entryPoint", Ty::Str)];

/// `slsa02.ProvenanceInvocation`.
const PROVENANCE_INVOCATION: &[Field] = &[
    f("configSource", Ty::Struct(CONFIG_SOURCE)),
    f("parameters", Ty::Any),
    f("environment", Ty::Any),
];

/// `slsa02.ProvenanceComplete`.
const PROVENANCE_COMPLETE: &[Field] = &[
    f("parameters", Ty::Bool),
    f("environment", Ty::Bool),
    f("materials", Ty::Bool),
];

/// `slsa02.ProvenanceMetadata`.
const PROVENANCE_METADATA: &[Field] = &[
    f("buildInvocationID", Ty::Str),
    f("buildStartedOn", Ty::TimePointer),
    f("buildFinishedOn", Ty::TimePointer),
    f("completeness", Ty::Struct(PROVENANCE_COMPLETE)),
    f("reproducible", Ty::Bool),
];

/// `common.ProvenanceMaterial`.
const PROVENANCE_MATERIAL: &[Field] = &[f("uri", Ty::Str), f("digest", Ty::StrMap)];

/// `slsa02.ProvenancePredicate`.
const PROVENANCE: &[Field] = &[
    f("builder", Ty::Struct(&[f("id", Ty::Str)])),
    f("buildType", Ty::Str),
    f("invocation", Ty::Struct(PROVENANCE_INVOCATION)),
    f("buildConfig", Ty::Any),
    f("metadata", Ty::Pointer(PROVENANCE_METADATA)),
    f("materials", Ty::Structs(PROVENANCE_MATERIAL)),
];

/// cosign's `attestation.Invocation`.
const VULN_INVOCATION: &[Field] = &[
    f("parameters", Ty::Any),
    f("uri", Ty::Str),
    f("event_id", Ty::Str),
    f("builder.id", Ty::Str),
];

/// cosign's `attestation.Scanner`.
const SCANNER: &[Field] = &[
    f("uri", Ty::Str),
    f("version", Ty::Str),
    f("db", Ty::Struct(&[f("uri", Ty::Str), f("version", Ty::Str)])),
    f("result", Ty::Any),
];

/// cosign's `attestation.CosignVulnPredicate`.
const VULN: &[Field] = &[
    f("invocation", Ty::Struct(VULN_INVOCATION)),
    f("scanner", Ty::Struct(SCANNER)),
    f(
        "metadata",
        Ty::Struct(&[f("scanStartedOn", Ty::Time), f("scanFinishedOn", Ty::Time)]),
    ),
];

/// A statement (`StatementHeader`'s fields, embedded) with a predicate of type `predicate`.
macro_rules! statement {
    ($predicate:expr) => {
        &[
            f("_type", Ty::Str),
            f("predicateType", Ty::Str),
            f("subject", Ty::Structs(SUBJECT)),
            f("predicate", $predicate),
        ]
    };
}

/// `in_toto.Statement` (`SPDXStatement` and `CycloneDXStatement` are the same).
const STATEMENT: &[Field] = statement!(Ty::Any);
const LINK_STATEMENT: &[Field] = statement!(Ty::Struct(LINK));
const PROVENANCE_STATEMENT: &[Field] = statement!(Ty::Struct(PROVENANCE));
const VULN_STATEMENT: &[Field] = statement!(Ty::Struct(VULN));

/// The predicate types a policy writes: cosign's short names (`slsaprovenance02` and
/// `cyclonedxxml` are in its map, but its switch has no case for them) and URIs.
const WRITTEN_TYPES: &[&str] = &[
    "custom",
    "link",
    "slsaprovenance",
    "spdx",
    "spdxjson",
    "cyclonedx",
    "vuln",
    "https://example.com/predicate/v1",
    "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02",
    "cyclonedxxml",
];

/// The struct Go decodes a statement into for the predicate type written (cosign's switch).
fn struct_of(written: &str) -> &'static [Field] {
    match written {
        "link" => LINK_STATEMENT,
        "slsaprovenance" => PROVENANCE_STATEMENT,
        "vuln" => VULN_STATEMENT,
        _ => STATEMENT,
    }
}

/// Every field name of the schema.
fn field_names() -> BTreeSet<&'static str> {
    fn walk(fields: &'static [Field], out: &mut BTreeSet<&'static str>) {
        for field in fields {
            out.insert(field.name);
            if let Ty::Struct(inner) | Ty::Pointer(inner) | Ty::Structs(inner) = field.ty {
                walk(inner, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for fields in [STATEMENT, LINK_STATEMENT, PROVENANCE_STATEMENT, VULN_STATEMENT] {
        walk(fields, &mut out);
    }
    out
}

/// Names of no field.
const UNKNOWN: &[&str] = &["extra", "predicate_type", "subjects", "builderid", "Predicate2", "kind"];

// ---- generated statements ----

const STRINGS: &[&str] = &[
    "",
    "x",
    "https://in-toto.io/Statement/v0.1",
    "https://slsa.dev/provenance/v0.2",
    "sha256",
    "0123456789abcdef",
    "link",
    "é",
    "a\"b\\c",
    "\u{2028}",
    "<&>",
    "\u{17F}\u{212A}",
    "2024-01-01T00:00:00Z",
];
/// Numbers of every kind: as written, Go reads each into a float64 (in an `interface{}`) and
/// writes it back with its float encoder.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "42",
    "1.0",
    "-1.0",
    "0.0",
    "-0",
    "-0.0",
    "2.50",
    "0.1",
    "1.5",
    "-12.25",
    "1e2",
    "1E2",
    "1e+2",
    "1.5e3",
    "123456789.123456789",
    "1e-6",
    "0.000001",
    "1e-7",
    "0.0000001",
    "1.5e-7",
    "1e20",
    "1e21",
    "1E21",
    "999999999999999999999",
    "100000000000000000000",
    "9007199254740992",
    "9007199254740993",
    "-9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "12345678901234567890123",
    "1.7976931348623157e308",
    "5e-324",
    "1e-400",
    "-1e-400",
];
const MAP_KEYS: &[&str] = &["a", "A", "sha256", "SHA256", "", "k", "\u{212A}", "\u{17F}", "x.y", "1"];
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
];
const ZONES: &[&str] = &[
    "Z", "Z", "Z", "+00:00", "-00:00", "+01:00", "-05:30", "+05:45", "+14:00", "-12:00", "+23:59", "-23:59",
];

struct Gen {
    rng: Rng,
}

impl Gen {
    /// A statement for the predicate type `written`: an object mostly, of the statement's
    /// fields, its predicate mostly of the written type's shape.
    fn statement(&mut self, written: &str) -> Json {
        if self.rng.chance(1) {
            return Json::Lit((*self.rng.pick(&["null", "[]", "1", "\"x\"", "true"])).to_owned());
        }
        let fields = if self.rng.chance(85) {
            struct_of(written)
        } else {
            *self
                .rng
                .pick(&[STATEMENT, LINK_STATEMENT, PROVENANCE_STATEMENT, VULN_STATEMENT])
        };
        self.object(fields, 0)
    }

    /// A spelling of the field `name` Go's decoder takes: mostly the name, else its letters in
    /// either case, `s` sometimes U+017F and `k` U+212A.
    fn spelling(&mut self, name: &str) -> String {
        if self.rng.chance(65) {
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

    /// An object for the struct of `fields`: most of its fields (now and then one twice, under
    /// two spellings), now and then names of no field, in a random order.
    fn object(&mut self, fields: &'static [Field], depth: usize) -> Json {
        let mut keys = BTreeSet::new();
        let mut members = Vec::new();
        for field in fields {
            if !self.rng.chance(60) {
                continue;
            }
            for _ in 0..if self.rng.chance(3) { 2 } else { 1 } {
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
                let value = self.any(depth + 1);
                members.push((key, value));
            }
        }
        for i in (1..members.len()).rev() {
            members.swap(i, self.rng.below(i + 1));
        }
        Json::Obj(members)
    }

    /// Any JSON value: literals of every type, lists and objects of them, now and then an object
    /// of a struct's shape.
    fn any(&mut self, depth: usize) -> Json {
        let deeper = depth < 4;
        match self.rng.below(100) {
            0..30 => Json::Lit((*self.rng.pick(NUMBERS)).to_owned()),
            30..45 => Json::string(*self.rng.pick(STRINGS)),
            45..52 => Json::Lit((*self.rng.pick(&["true", "false"])).to_owned()),
            52..58 => Json::Lit("null".into()),
            58..72 if deeper => Json::List((0..self.rng.below(4)).map(|_| self.any(depth + 1)).collect()),
            72..92 if deeper => self.map(|generator| generator.any(depth + 1)),
            92..100 if deeper => {
                let fields = *self.rng.pick(&[PROVENANCE, VULN, LINK, SUBJECT, PROVENANCE_METADATA]);
                self.object(fields, depth + 1)
            }
            _ => Json::Lit((*self.rng.pick(NUMBERS)).to_owned()),
        }
    }

    fn value(&mut self, ty: Ty, depth: usize) -> Json {
        if self.rng.chance(6) {
            return Json::Lit("null".into());
        }
        if self.rng.chance(3) {
            // A value of any type: mostly the wrong one.
            return self.any(depth + 1);
        }
        match ty {
            Ty::Str => Json::string(*self.rng.pick(STRINGS)),
            Ty::Bool => Json::Lit((*self.rng.pick(&["true", "false"])).to_owned()),
            Ty::Any => self.any(depth + 1),
            Ty::Strings => Json::List(
                (0..self.rng.below(4))
                    .map(|_| match self.rng.below(100) {
                        0..92 => Json::string(*self.rng.pick(STRINGS)),
                        92..97 => Json::Lit("null".into()),
                        _ => self.any(depth + 1),
                    })
                    .collect(),
            ),
            Ty::StrMap => self.map(|generator| match generator.rng.below(100) {
                0..88 => Json::string(*generator.rng.pick(STRINGS)),
                88..96 => Json::Lit("null".into()),
                _ => generator.any(depth + 1),
            }),
            Ty::AnyMap => self.map(|generator| generator.any(depth + 1)),
            Ty::Time | Ty::TimePointer => Json::string(&self.time()),
            Ty::Struct(fields) | Ty::Pointer(fields) => {
                if depth > 5 {
                    Json::Obj(Vec::new())
                } else {
                    self.object(fields, depth + 1)
                }
            }
            Ty::Structs(fields) => Json::List(
                (0..self.rng.below(4))
                    .map(|_| match self.rng.below(100) {
                        0..88 => self.object(fields, depth + 1),
                        88..96 => Json::Lit("null".into()),
                        _ => self.any(depth + 1),
                    })
                    .collect(),
            ),
        }
    }

    /// An object of up to three distinct keys of `MAP_KEYS`, each with a value of `value`.
    fn map(&mut self, value: impl Fn(&mut Self) -> Json) -> Json {
        let mut seen = BTreeSet::new();
        let mut members = Vec::new();
        for _ in 0..self.rng.below(4) {
            let key = *self.rng.pick(MAP_KEYS);
            if seen.insert(key) {
                members.push((key.to_owned(), value(self)));
            }
        }
        Json::Obj(members)
    }

    /// An RFC 3339 time, its fraction and offset of every kind; one in five broken one way.
    fn time(&mut self) -> String {
        let year = *self.rng.pick(&[0, 1, 1970, 2000, 2024, 9999]);
        let month = 1 + self.rng.below(12);
        let days = match month {
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
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
                (7, &[",5", ",123", ".", ".x", ". 5", ".5.5", "0"][..]),
                (
                    8,
                    &[
                        "z", "", "+24:00", "-24:00", "+00:60", "+12:60", "+23:60", "+25:00", "+99:99", "+1:00", "+01",
                        "+0100", "+01:0", "UTC", " Z", "ZZ", "+-1:00",
                    ][..],
                ),
            ]);
            parts[part] = (*self.rng.pick(broken)).to_owned();
        }
        parts.concat()
    }
}

// ---- comparing ----

/// What one statement comes to.
enum Verdict {
    /// Both refuse it, or both read it the same; or the host cannot parse it: a count's name.
    Agree(&'static str),
    /// Ours refuses what Go reads, for a reason [`allowed_refusal`] names.
    Allowed(&'static str),
    /// A difference: its kind (which shrinking keeps) and its details.
    Differ { kind: String, details: String },
}

fn judge(text: &str, written: &str, go: &Result<Value, String>) -> Verdict {
    // The host's reading: a text serde_json cannot parse (a number beyond f64) never gets here.
    let Ok(statement) = serde_json::from_str::<Value>(text) else {
        return Verdict::Agree("serde_json cannot parse it (left out)");
    };
    match (go, go_view(statement.clone(), written)) {
        (Err(_), Err(_)) => Verdict::Agree("both refuse"),
        (Err(refusal), Ok(view)) => Verdict::Differ {
            kind: format!("Go refuses, ours reads: {}", refusal_gist(refusal)),
            details: format!("Go: {refusal}\nours: {view}"),
        },
        (Ok(view), Err(error)) => match allowed_refusal(&statement, written, &error) {
            Some(reason) => Verdict::Allowed(reason),
            None => Verdict::Differ {
                kind: format!("ours refuses, Go reads: {}", refusal_kind(&error, struct_of(written))),
                details: format!("Go: {view}\nours: {error:?}"),
            },
        },
        (Ok(go_view), Ok(view)) => match difference(go_view, &view, Some(Ty::Struct(struct_of(written))), "", "") {
            None => Verdict::Agree("both read, views equal"),
            Some((kind, line)) => Verdict::Differ {
                kind,
                details: format!("{line}\nGo:   {go_view}\nours: {view}"),
            },
        },
    }
}

/// Go's message without what varies from one statement to another of the same kind (the text of
/// a time, a number).
fn refusal_gist(message: &str) -> String {
    if let Some(at) = message.find("parsing time") {
        return format!("{}parsing time …", &message[..at]);
    }
    message
        .split(' ')
        .map(|word| if word.parse::<f64>().is_ok() { "…" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why ours may refuse the statement, which Go reads, if it may:
///
/// - two keys of one object naming one field: Go decodes the second into what the first left,
///   which a map no longer tells (refused as such before any value is read, whatever their
///   values), when the statement has such keys;
/// - a number Go writes as an integer beyond 64 bits (a float64 of 2^64 or more, written without
///   a point): serde_json would read that text back as a float, and ours cannot be told to write
///   Go's digits as an integer, when Go does write that number so;
/// - an integer a float64 does not hold (`9007199254740993`): Go rounds it, ours refuses it
///   rather than hand a policy another number than the signer wrote;
/// - a `link` artifact that is not an object of strings: the reference here mirrors
///   in-toto-golang v0.9.0 (`interface{}`), newer policy-controllers build with v0.11.0
///   (`map[string]string`), and ours refuses what either refuses.
///
/// (Go's `-0`, which CUE reads as the integer 0 and ours holds as such, is no difference:
/// [`negative_zero_alike`].)
fn allowed_refusal(statement: &Value, written: &str, error: &GoReadError) -> Option<&'static str> {
    match error {
        GoReadError::WrongType { path, .. }
            if written == "link"
                && (path.starts_with("predicate.materials.") || path.starts_with("predicate.products.")) =>
        {
            Some("ours refuses: a link artifact that is not a digest set (in-toto-golang v0.11.0 refuses it)")
        }
        GoReadError::NamedTwice { .. } if has_field_named_twice(statement, &field_names()) => {
            Some("ours refuses: two keys name one field")
        }
        GoReadError::BeyondIntegers { value, .. }
            if value.parse::<f64>().is_ok_and(go_writes_integer_beyond_64_bits) =>
        {
            Some("ours refuses: a number Go writes as an integer beyond 64 bits")
        }
        GoReadError::Rounded { value, .. }
            if value
                .parse::<i128>()
                .is_ok_and(|integer| (integer as f64) as i128 != integer) =>
        {
            Some("ours refuses: an integer Go rounds to another float64 (refused rather than rounded)")
        }
        _ => None,
    }
}

/// Go writes a float64 negative zero `-0`, which CUE reads as the integer 0 and serde_json (here,
/// reading Go's answer) as the float `-0.0`; ours holds the integer 0, as CUE does.
fn negative_zero_alike(go: &Value, ours: &Value) -> bool {
    let go_negative_zero = go.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()) && go.is_f64();
    go_negative_zero && ours.as_i64() == Some(0)
}

/// Whether an object of `value`, at any depth, has two keys Go folds to one field name.
fn has_field_named_twice(value: &Value, names: &BTreeSet<&str>) -> bool {
    match value {
        Value::Object(members) => {
            let mut folded = BTreeSet::new();
            let twice = members
                .keys()
                .map(|key| go_fold(key))
                .filter(|key| names.iter().any(|name| go_fold(name) == *key))
                .any(|key| !folded.insert(key));
            twice || members.values().any(|value| has_field_named_twice(value, names))
        }
        Value::Array(items) => items.iter().any(|item| has_field_named_twice(item, names)),
        _ => false,
    }
}

/// The text Go's encoder writes for the float64 `number` (encoding/json's floatEncoder): the
/// shortest digits that read back as it, in `%f` form for magnitudes in [1e-6, 1e21), else in
/// `%e` form with a two-digit negative exponent cut to one (`1e-07` is `1e-7`).
fn go_float_text(number: f64) -> String {
    if number == 0.0 {
        return if number.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` writes the shortest digits that read back as the number: `d.ddddde±x`.
    let shortest = format!("{number:e}");
    let (mantissa, exponent) = shortest.split_once('e').expect("an exponent");
    let exponent: i32 = exponent.parse().expect("an exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    let magnitude = number.abs();
    if (1e-6..1e21).contains(&magnitude) {
        let point = exponent + 1;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let fraction = if digits.len() > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let exponent = if exponent < 0 {
            format!("-{}", -exponent)
        } else {
            format!("+{exponent:02}")
        };
        format!("{sign}{}{fraction}e{exponent}", &digits[..1])
    }
}

/// Whether Go writes `number` as an integer that neither `i64` nor `u64` holds.
fn go_writes_integer_beyond_64_bits(number: f64) -> bool {
    let text = go_float_text(number);
    !text.contains(['.', 'e']) && text.parse::<i64>().is_err() && text.parse::<u64>().is_err()
}

/// The kind of a refusal: its variant and the field named in the schema of `fields`, read from
/// its `Debug` form (`Variant { path: "…", … }`), so that a variant added later has a kind too.
fn refusal_kind(error: &GoReadError, fields: &'static [Field]) -> String {
    let debug = format!("{error:?}");
    let variant = debug.split([' ', '{']).next().unwrap_or_default();
    let path = debug
        .split_once("path: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("?", |(path, _)| path);
    format!("{variant} at {}", schema_path(path, fields))
}

/// `path` (an error's, as `predicate.materials[0].digest`) as the schema of `fields` names it:
/// list indices left out, and `…` for a map's key or what is inside an `interface{}`.
fn schema_path(path: &str, fields: &'static [Field]) -> String {
    let mut out = Vec::new();
    let mut ty = Ty::Struct(fields);
    let mut rest = path;
    loop {
        // A list's index.
        if let Some(after) = rest.strip_prefix('[') {
            rest = after.split_once(']').map_or("", |(_, after)| after);
            if let Ty::Structs(fields) = ty {
                ty = Ty::Struct(fields);
            }
            continue;
        }
        let key_follows = rest.starts_with('.');
        rest = rest.strip_prefix('.').unwrap_or(rest);
        if rest.is_empty() {
            // A map's empty key (`environment.`) is a key too.
            if key_follows {
                out.push("…");
            }
            break;
        }
        let (Ty::Struct(fields) | Ty::Pointer(fields)) = ty else {
            out.push("…");
            break;
        };
        let Some(field) = fields.iter().find(|f| {
            rest.strip_prefix(f.name)
                .is_some_and(|after| after.is_empty() || after.starts_with(['.', '[']))
        }) else {
            out.push("…");
            break;
        };
        out.push(field.name);
        rest = &rest[field.name.len()..];
        ty = field.ty;
    }
    out.join(".")
}

/// What kind of JSON value `value` is, for the kind of a difference.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) if n.is_f64() => {
            if n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()) {
                "-0".into()
            } else {
                "a float".into()
            }
        }
        Value::Number(_) => "an integer".into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The first place where Go's view and ours differ, if any: its kind (the schema's path, the
/// kinds of the values) and a line about it. `ty` is what Go decoded at `path` (`None` inside an
/// `interface{}` or a map's values, whose keys are not a struct's); `named` is `path` as the
/// schema names it (no list indices, `…` for a map's key or what is inside an `interface{}`).
fn difference(go: &Value, ours: &Value, ty: Option<Ty>, path: &str, named: &str) -> Option<(String, String)> {
    if go == ours || negative_zero_alike(go, ours) {
        return None;
    }
    match (go, ours) {
        (Value::Object(go_members), Value::Object(our_members)) => {
            let keys: BTreeSet<&String> = go_members.keys().chain(our_members.keys()).collect();
            for key in keys {
                let (inner_ty, inner_named) = match ty {
                    Some(Ty::Struct(fields) | Ty::Pointer(fields)) => (
                        fields.iter().find(|f| f.name == key.as_str()).map(|f| f.ty),
                        join(named, key),
                    ),
                    Some(Ty::StrMap) => (Some(Ty::Str), join(named, "…")),
                    _ => (None, join(named, "…")),
                };
                let inner_path = join(path, key);
                match (go_members.get(key), our_members.get(key)) {
                    (Some(go), Some(ours)) => {
                        if let Some(found) = difference(go, ours, inner_ty, &inner_path, &inner_named) {
                            return Some(found);
                        }
                    }
                    (Some(go), None) => {
                        return Some((
                            format!("{} only in Go's view", collapse(&inner_named)),
                            format!("{inner_path}: Go {go}, ours none"),
                        ));
                    }
                    (None, Some(ours)) => {
                        return Some((
                            format!("{} only in ours", collapse(&inner_named)),
                            format!("{inner_path}: Go none, ours {ours}"),
                        ));
                    }
                    (None, None) => unreachable!("a key of either"),
                }
            }
            None
        }
        (Value::Array(go_items), Value::Array(our_items)) if go_items.len() == our_items.len() => {
            let inner_ty = match ty {
                Some(Ty::Structs(fields)) => Some(Ty::Struct(fields)),
                Some(Ty::Strings) => Some(Ty::Str),
                _ => None,
            };
            go_items
                .iter()
                .zip(our_items)
                .enumerate()
                .find_map(|(i, (go, ours))| difference(go, ours, inner_ty, &format!("{path}[{i}]"), named))
        }
        _ => {
            let (path, named) = if path.is_empty() {
                ("(the statement)", "(the statement)".to_owned())
            } else {
                (path, collapse(named))
            };
            Some((
                format!("{named} differs: Go {}, ours {}", describe(go), describe(ours)),
                format!("{path}: Go {go}, ours {ours}"),
            ))
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A schema path cut after its first `…`.
fn collapse(named: &str) -> String {
    match named.find('…') {
        Some(at) => named[..at + '…'.len_utf8()].to_owned(),
        None => named.to_owned(),
    }
}

/// `statement` with members and items removed for as long as it stays a difference of `kind`.
fn shrink(statement: &Json, written: &str, kind: &str) -> Json {
    statement.smallest(|candidates| {
        let cases: Vec<(String, String)> = candidates.iter().map(|c| (c.text(), written.to_owned())).collect();
        let answers = testkit::go_statements(&cases).expect("Go answers (make test-tools)");
        cases.iter().zip(&answers).position(
            |((text, _), go)| matches!(judge(text, written, go), Verdict::Differ { kind: k, .. } if k == kind),
        )
    })
}

#[test]
fn go_view_reads_statements_as_go_reads_them() {
    let count = testkit::case_count("STATEMENT_CASES", CASES);
    let seed = testkit::run_seed("STATEMENT_SEED", DEFAULT_SEED);
    let mut generator = Gen { rng: Rng(seed) };
    let statements: Vec<(Json, &str)> = (0..count)
        .map(|i| {
            let written = WRITTEN_TYPES[i % WRITTEN_TYPES.len()];
            (generator.statement(written), written)
        })
        .collect();
    let cases: Vec<(String, String)> = statements
        .iter()
        .map(|(statement, written)| (statement.text(), (*written).to_owned()))
        .collect();
    let answers = testkit::go_statements(&cases).expect("Go answers (make test-tools)");

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut differences: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, ((text, written), go)) in cases.iter().zip(&answers).enumerate() {
        match judge(text, written, go) {
            Verdict::Agree(count) | Verdict::Allowed(count) => *counts.entry(count).or_default() += 1,
            Verdict::Differ { kind, .. } => differences.entry(kind).or_default().push(i),
        }
    }
    println!("{count} statements: {counts:#?}");
    for (kind, cases) in differences.iter().take(SHOWN) {
        let (statement, written) = &statements[cases[0]];
        let smallest = shrink(statement, written, kind);
        let text = smallest.text();
        let go = &testkit::go_statements(&[(text.clone(), (*written).to_owned())]).expect("Go answers")[0];
        let Verdict::Differ { details, .. } = judge(&text, written, go) else {
            unreachable!("shrinking keeps the difference")
        };
        println!(
            "=== {kind}: {} statements, the smallest (as {written}):\n{text}\n{details}\n",
            cases.len()
        );
    }
    assert!(
        differences.is_empty(),
        "{} kinds of difference from Go (STATEMENT_SEED={seed}): {:#?}",
        differences.len(),
        differences
            .iter()
            .map(|(kind, cases)| (kind, cases.len()))
            .collect::<Vec<_>>()
    );
}

/// Go's float encoder as [`go_float_text`] has it, on numbers whose text Go's answers show.
#[test]
fn go_float_text_writes_as_go_does() {
    // (a number as a statement writes it, what Go writes for it: seen in go-statement's answers)
    for (written, text) in [
        ("1.0", "1"),
        ("-0", "-0"),
        ("-0.0", "-0"),
        ("0.0", "0"),
        ("2.50", "2.5"),
        ("1e2", "100"),
        ("1e20", "100000000000000000000"),
        ("1e21", "1e+21"),
        ("0.0000001", "1e-7"),
        ("1.5e-7", "1.5e-7"),
        ("0.000001", "0.000001"),
        ("9007199254740993", "9007199254740992"),
        ("9223372036854775807", "9223372036854776000"),
        ("18446744073709551615", "18446744073709552000"),
        ("-9223372036854775809", "-9223372036854776000"),
        ("12345678901234567890123", "1.2345678901234568e+22"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("5e-324", "5e-324"),
        ("1e-400", "0"),
        ("123456789.123456789", "123456789.12345679"),
    ] {
        let number: f64 = written.parse().expect("a number");
        assert_eq!(go_float_text(number), text, "{written}");
    }
    assert!(go_writes_integer_beyond_64_bits(1e20));
    assert!(go_writes_integer_beyond_64_bits(18_446_744_073_709_551_615_f64));
    assert!(go_writes_integer_beyond_64_bits(-9_223_372_036_854_775_809_f64));
    assert!(
        !go_writes_integer_beyond_64_bits(9_223_372_036_854_775_807_f64),
        "9223372036854776000 is a u64"
    );
    assert!(!go_writes_integer_beyond_64_bits(1e21), "1e+21 has an exponent");
}

/// The comparison itself, on answers made up for it: it finds each kind of difference.
#[test]
fn the_comparison_finds_differences() {
    let go = serde_json::json!({
        "_type": "", "predicateType": "", "subject": [{ "name": "n", "digest": { "a": "" } }],
        "predicate": { "builder": { "id": "" }, "buildType": "", "invocation": { "configSource": {} },
                       "buildConfig": { "x": [1, 2.5] } },
    });
    let kind =
        |ours: Value| difference(&go, &ours, Some(Ty::Struct(PROVENANCE_STATEMENT)), "", "").map(|(kind, _)| kind);
    assert_eq!(kind(go.clone()), None);
    let mut ours = go.clone();
    ours["predicate"]["buildConfig"]["x"][0] = serde_json::json!(1.0);
    assert_eq!(
        kind(ours).as_deref(),
        Some("predicate.buildConfig.… differs: Go an integer, ours a float")
    );
    let mut ours = go.clone();
    ours["predicate"]["invocation"]["configSource"]["uri"] = Value::from("");
    assert_eq!(
        kind(ours).as_deref(),
        Some("predicate.invocation.configSource.uri only in ours")
    );
    let mut ours = go.clone();
    ours["subject"][0].as_object_mut().unwrap().remove("name");
    assert_eq!(kind(ours).as_deref(), Some("subject.name only in Go's view"));
    let mut ours = go.clone();
    ours["subject"][0]["digest"]["a"] = Value::Null;
    assert_eq!(
        kind(ours).as_deref(),
        Some("subject.digest.… differs: Go a string, ours null")
    );

    assert!(matches!(
        judge(r#"{"_type":1}"#, "custom", &Err("cannot unmarshal number".into())),
        Verdict::Agree(_)
    ));
    assert!(matches!(
        judge(r#"{"_type":"t"}"#, "custom", &Err("made up".into())),
        Verdict::Differ { kind, .. } if kind.starts_with("Go refuses, ours reads")
    ));
    assert!(matches!(judge("1e400", "custom", &Err("x".into())), Verdict::Agree(_)));
    let statement = serde_json::json!({ "predicate": { "builder": {}, "Builder": {} } });
    let named_twice = GoReadError::NamedTwice {
        path: "predicate.builder".into(),
        first: "builder".into(),
        second: "Builder".into(),
    };
    assert!(allowed_refusal(&statement, "spdx", &named_twice).is_some());
    assert!(allowed_refusal(&serde_json::json!({ "predicate": {} }), "spdx", &named_twice).is_none());
    let beyond = |value: &str| GoReadError::BeyondIntegers {
        path: "predicate".into(),
        value: value.into(),
    };
    assert!(allowed_refusal(&statement, "spdx", &beyond("100000000000000000000")).is_some());
    assert!(allowed_refusal(&statement, "spdx", &beyond("9223372036854775807")).is_none());
}
