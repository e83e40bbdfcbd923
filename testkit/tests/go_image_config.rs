//! What Go's `encoding/json` makes of image configs, as go-containerregistry's
//! `v1.ParseConfigFile` decodes them and `json.Marshal` writes them again
//! (`testkit::go_image_configs`, `scripts/go-image-config.go`): facts a reader can check against
//! Go's documentation, each asserted on what the tool answers, so that the reference the
//! module's `go_view` is compared with is itself known to say what Go says.

use serde_json::{Value, json};

/// 64 hex digits, for digests.
const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Go's answers for `texts`, in one run of the tool.
fn ask(texts: &[String]) -> Vec<Result<Value, String>> {
    testkit::go_image_configs(texts).expect("go-image-config (`make test-tools` builds it)")
}

/// The view Go writes for a config of `config` alone at the top, and nothing else.
fn with_config(config: Value) -> Value {
    json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "os": "",
        "rootfs": { "type": "", "diff_ids": null },
        "config": config,
    })
}

/// Each `(config text, what Go answers)`: `Ok(its view)` or `Err(a part of its message)`.
fn cases() -> Vec<(String, Result<Value, &'static str>)> {
    vec![
        // Field names match without regard to case, as bytes.EqualFold folds them: U+017F LONG S
        // folds to `s`, U+212A KELVIN SIGN to `k`.
        (
            r#"{"config":{"user":"0"}}"#.into(),
            Ok(with_config(json!({ "User": "0" }))),
        ),
        (
            "{\"config\":{\"U\u{17F}er\":\"0\",\"Wor\u{212A}ingDir\":\"/w\"}}".into(),
            Ok(with_config(json!({ "User": "0", "WorkingDir": "/w" }))),
        ),
        (
            r#"{"CONFIG":{"USER":"0"},"Architecture":"arm64","OS.Version":"10"}"#.into(),
            Ok(json!({
                "architecture": "arm64",
                "created": "0001-01-01T00:00:00Z",
                "os": "",
                "rootfs": { "type": "", "diff_ids": null },
                "config": { "User": "0" },
                "os.version": "10",
            })),
        ),
        // Names of no field are dropped, at every level.
        (
            r#"{"container_config":{"User":"x"},"throwaway":1,"config":{"Extra":true,"User":"0"}}"#.into(),
            Ok(with_config(json!({ "User": "0" }))),
        ),
        // A key twice: the second object is decoded into the struct the first filled.
        (
            r#"{"config":{"User":"0"},"config":{"Env":["A=1"]}}"#.into(),
            Ok(with_config(json!({ "User": "0", "Env": ["A=1"] }))),
        ),
        // Also when the two are alike only by case: maps merge, and a list decoded again reuses
        // the elements already there (a null leaves "a" as it was; golang/go#21092).
        (
            r#"{"config":{"Labels":{"a":"1"},"labels":{"b":"2"},"Cmd":["a","b"],"cmd":[null]}}"#.into(),
            Ok(with_config(json!({ "Labels": { "a": "1", "b": "2" }, "Cmd": ["a"] }))),
        ),
        (
            r#"{"history":[{"author":"a"}],"History":[{"comment":"c"}]}"#.into(),
            Ok(json!({
                "architecture": "",
                "created": "0001-01-01T00:00:00Z",
                "history": [{ "author": "a", "created": "0001-01-01T00:00:00Z", "comment": "c" }],
                "os": "",
                "rootfs": { "type": "", "diff_ids": null },
                "config": {},
            })),
        ),
        // A value of another JSON type is refused.
        (
            r#"{"config":{"User":1}}"#.into(),
            Err("cannot unmarshal number into Go struct field Config.config.User of type string"),
        ),
        (r#"{"os":true}"#.into(), Err("cannot unmarshal bool")),
        (r#"{"config":{"Env":"A=1"}}"#.into(), Err("cannot unmarshal string")),
        (
            r#"{"config":{"Volumes":{"/v":1}}}"#.into(),
            Err("cannot unmarshal number"),
        ),
        // null leaves a string (in a list, a map, a struct) at "", a struct as it is, and sets a
        // list, map or pointer to nil (so an `omitempty` one is not written).
        (
            r#"{"config":{"Cmd":["a",null]}}"#.into(),
            Ok(with_config(json!({ "Cmd": ["a", ""] }))),
        ),
        (
            r#"{"config":{"Labels":{"a":null}}}"#.into(),
            Ok(with_config(json!({ "Labels": { "a": "" } }))),
        ),
        (
            r#"{"os":null,"rootfs":null,"config":null,"created":null,"history":null}"#.into(),
            Ok(with_config(json!({}))),
        ),
        (
            r#"{"config":{"User":null,"Healthcheck":null,"Env":null,"Volumes":{"/v":null}}}"#.into(),
            Ok(with_config(json!({ "Volumes": { "/v": {} } }))),
        ),
        // A struct{} value keeps nothing of its object.
        (
            r#"{"config":{"ExposedPorts":{"80/tcp":{"x":1}}}}"#.into(),
            Ok(with_config(json!({ "ExposedPorts": { "80/tcp": {} } }))),
        ),
        // `omitempty` drops "", false, 0, nil and empty lists and maps, but not a pointer to an
        // empty struct, and never a struct (`created`, in history items too).
        (
            r#"{"author":"","config":{"Tty":false,"Cmd":[],"Labels":{},"Healthcheck":{"Retries":0,"Test":[]}}}"#.into(),
            Ok(with_config(json!({ "Healthcheck": {} }))),
        ),
        (
            r#"{"history":[{},{"empty_layer":true}]}"#.into(),
            Ok(json!({
                "architecture": "",
                "created": "0001-01-01T00:00:00Z",
                "history": [
                    { "created": "0001-01-01T00:00:00Z" },
                    { "created": "0001-01-01T00:00:00Z", "empty_layer": true },
                ],
                "os": "",
                "rootfs": { "type": "", "diff_ids": null },
                "config": {},
            })),
        ),
        // Nothing: the zero values of the fields without `omitempty`, and `created`.
        ("{}".into(), Ok(with_config(json!({})))),
        (
            r#"{"rootfs":{"diff_ids":[]}}"#.into(),
            Ok(json!({
                "architecture": "",
                "created": "0001-01-01T00:00:00Z",
                "os": "",
                "rootfs": { "type": "", "diff_ids": [] },
                "config": {},
            })),
        ),
        // Times: RFC 3339 as Go >= 1.20 reads it, written back as RFC3339Nano (`Z` for a zero
        // offset, trailing zeros of the fraction dropped).
        (
            r#"{"created":"2024-01-01T00:00:00.500+00:00"}"#.into(),
            Ok(created("2024-01-01T00:00:00.5Z")),
        ),
        (
            r#"{"created":"2024-01-01T00:00:00-00:00"}"#.into(),
            Ok(created("2024-01-01T00:00:00Z")),
        ),
        (
            r#"{"created":"2024-01-01T00:00:00.120-05:30"}"#.into(),
            Ok(created("2024-01-01T00:00:00.12-05:30")),
        ),
        // More than nine digits of fraction: the rest is cut.
        (
            r#"{"created":"2024-01-01T00:00:00.1234567891Z"}"#.into(),
            Ok(created("2024-01-01T00:00:00.123456789Z")),
        ),
        // Go >= 1.20's strict RFC 3339 checks are disabled (go.dev/issue/54580): time.Parse
        // decides, and it takes a one-digit hour and a comma before the fraction.
        (
            r#"{"created":"2024-01-01T1:02:03,5Z"}"#.into(),
            Ok(created("2024-01-01T01:02:03.5Z")),
        ),
        (r#"{"created":"2024-01-01t00:00:00z"}"#.into(), Err("parsing time")),
        (r#"{"created":"2024-02-30T00:00:00Z"}"#.into(), Err("day out of range")),
        (r#"{"created":"2024-01-01T00:00:00"}"#.into(), Err("parsing time")),
        (
            r#"{"created":"2024-01-01T00:00:00+25:00"}"#.into(),
            Err("time zone offset hour out of range"),
        ),
        (
            r#"{"created":"2024-01-01T00:00:00+00:61"}"#.into(),
            Err("time zone offset minute out of range"),
        ),
        // An offset of 24 hours is read, but json.Marshal then refuses to write it.
        (
            r#"{"created":"2024-01-01T00:00:00+24:00"}"#.into(),
            Err("timezone hour outside of range [0,23]"),
        ),
        (
            r#"{"created":"2024-01-01T00:00:00+23:60"}"#.into(),
            Err("timezone hour outside of range [0,23]"),
        ),
        // The text between the quotes is parsed as written: a JSON escape is not undone.
        (r#"{"created":"2024-01-01T00:00:00\u005a"}"#.into(), Err("parsing time")),
        (
            r#"{"created":1704067200}"#.into(),
            Err("Time.UnmarshalJSON: input is not a JSON string"),
        ),
        (
            r#"{"history":[{"created":{}}]}"#.into(),
            Err("Time.UnmarshalJSON: input is not a JSON string"),
        ),
        // Digests: `sha256:` and 64 lowercase hex digits; null is handed to Hash.UnmarshalJSON
        // too (a list element, not a pointer), which cannot unquote it.
        (
            format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["sha256:{HEX}"]}}}}"#),
            Ok(json!({
                "architecture": "",
                "created": "0001-01-01T00:00:00Z",
                "os": "",
                "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{HEX}")] },
                "config": {},
            })),
        ),
        (
            format!(r#"{{"rootfs":{{"diff_ids":["sha256:{}"]}}}}"#, HEX.to_uppercase()),
            Err("found non-hex character in hash: A"),
        ),
        (
            format!(r#"{{"rootfs":{{"diff_ids":["sha512:{HEX}{HEX}"]}}}}"#),
            Err("unsupported hash: \"sha512\""),
        ),
        (
            format!(r#"{{"rootfs":{{"diff_ids":["sha256:{}"]}}}}"#, &HEX[1..]),
            Err("wrong number of hex digits"),
        ),
        (
            format!(r#"{{"rootfs":{{"diff_ids":["sha256:{HEX}:00"]}}}}"#),
            Err("too many parts in hash"),
        ),
        (r#"{"rootfs":{"diff_ids":[null]}}"#.into(), Err("invalid syntax")),
        (r#"{"rootfs":{"diff_ids":[1]}}"#.into(), Err("invalid syntax")),
        // Durations and Retries are integers (nanoseconds): no fraction, no exponent.
        (
            r#"{"config":{"Healthcheck":{"Interval":1.5}}}"#.into(),
            Err(
                "cannot unmarshal number 1.5 into Go struct field HealthConfig.config.Healthcheck.Interval of type time.Duration",
            ),
        ),
        (
            r#"{"config":{"Healthcheck":{"Retries":1e3}}}"#.into(),
            Err("cannot unmarshal number 1e3"),
        ),
        (
            r#"{"config":{"Healthcheck":{"Interval":9223372036854775808}}}"#.into(),
            Err("cannot unmarshal number 9223372036854775808"),
        ),
        (
            r#"{"config":{"Healthcheck":{"interval":30000000000,"RETRIES":-0,"Test":["CMD","true"]}}}"#.into(),
            Ok(with_config(
                json!({ "Healthcheck": { "Test": ["CMD", "true"], "Interval": 30_000_000_000_i64 } }),
            )),
        ),
    ]
}

/// The view of a config with only `created`, written as `time`.
fn created(time: &str) -> Value {
    let mut view = with_config(json!({}));
    view["created"] = json!(time);
    view
}

#[test]
fn go_reads_image_configs_as_documented() {
    let cases = cases();
    let texts: Vec<String> = cases.iter().map(|(text, _)| text.clone()).collect();
    let answers = ask(&texts);
    let mut wrong = Vec::new();
    for ((text, expected), answer) in cases.iter().zip(&answers) {
        let agrees = match (expected, answer) {
            (Ok(view), Ok(answer)) => view == answer,
            (Err(part), Err(message)) => message.contains(part),
            _ => false,
        };
        if !agrees {
            wrong.push(format!("{text}\n  expected {expected:?}\n  Go says  {answer:?}"));
        }
    }
    assert!(wrong.is_empty(), "Go answers otherwise:\n{}", wrong.join("\n"));
}

#[test]
fn answers_keep_the_order_of_a_large_batch() {
    let texts: Vec<String> = (0..2000)
        .map(|i| {
            if i % 3 == 0 {
                format!(r#"{{"config":{{"User":{i}}}}}"#)
            } else {
                format!(r#"{{"config":{{"User":"{i}"}}}}"#)
            }
        })
        .collect();
    for (i, answer) in ask(&texts).into_iter().enumerate() {
        if i % 3 == 0 {
            assert!(answer.is_err(), "{i}: {answer:?}");
        } else {
            assert_eq!(answer, Ok(with_config(json!({ "User": i.to_string() }))), "{i}");
        }
    }
}
