//! What policy-controller hands an attestation's policy as the statement: cosign's
//! `AttestationToPayloadJSON`, Go's `encoding/json` decoding the in-toto statement into
//! in-toto-golang v0.9.0's and cosign's structs by the predicate type written in the policy and
//! `json.Marshal` writing them again (`testkit::go_statements`, `scripts/go-statement.go`):
//! facts a reader can check against Go's documentation and those structs, each asserted on what
//! the tool answers, so that the reference the module's `go_view` is compared with is itself
//! known to say what Go says.

use serde_json::{Value, json};

/// Go's answers for `cases`, in one run of the tool.
fn ask(cases: &[(String, String)]) -> Vec<Result<Value, String>> {
    testkit::go_statements(cases).expect("go-statement (`make test-tools` builds it)")
}

/// A URI as a policy writes a predicate type cosign has no short name for: the generic
/// statement.
const URI: &str = "https://example.com/predicate/v1";

/// A statement as Go writes one with only `predicate` set: the header's fields (embedded
/// `StatementHeader`, no `omitempty`) at their zero values.
fn with_predicate(predicate: Value) -> Value {
    json!({ "_type": "", "predicateType": "", "subject": null, "predicate": predicate })
}

/// What Go writes for an SLSA 0.2 predicate of nothing (`{}`): the fields without `omitempty`
/// and `invocation`, a struct (which `omitempty` never drops), with its struct `configSource`.
fn empty_provenance() -> Value {
    json!({ "builder": { "id": "" }, "buildType": "", "invocation": { "configSource": {} } })
}

/// What Go writes for a cosign vulnerability predicate of nothing: every field, the times
/// (`time.Time` values, not pointers) at the zero time.
fn empty_vuln() -> Value {
    json!({
        "invocation": { "parameters": null, "uri": "", "event_id": "", "builder.id": "" },
        "scanner": { "uri": "", "version": "", "db": { "uri": "", "version": "" }, "result": null },
        "metadata": { "scanStartedOn": "0001-01-01T00:00:00Z", "scanFinishedOn": "0001-01-01T00:00:00Z" },
    })
}

/// What Go writes for an in-toto link predicate of nothing (v0.9.0's `Link`: no `omitempty`).
fn empty_link() -> Value {
    json!({
        "_type": "", "name": "", "materials": null, "products": null,
        "byproducts": null, "command": null, "environment": null,
    })
}

/// Each `(statement text, predicate type as written, what Go answers)`: `Ok(its view)` or
/// `Err(a part of its message)`.
fn cases() -> Vec<(&'static str, &'static str, Result<Value, &'static str>)> {
    vec![
        // The generic statement: `predicate` is interface{} without `omitempty`, so missing it
        // is written `null`; so are a missing `subject` (a nil slice) and a subject's `digest`
        // (a nil map); a missing `name` is "". Keys of no field are dropped.
        (
            r#"{"_type":"t","predicateType":"p"}"#,
            URI,
            Ok(json!({
                "_type": "t", "predicateType": "p", "subject": null, "predicate": null,
            })),
        ),
        (
            r#"{"subject":[{"digest":{"sha256":"a"}},{"name":"n"}],"extra":1}"#,
            URI,
            Ok(json!({
                "_type": "", "predicateType": "", "predicate": null,
                "subject": [{ "name": "", "digest": { "sha256": "a" } }, { "name": "n", "digest": null }],
            })),
        ),
        // A null digest value is a string left at "", a null subject a zero Subject.
        (
            r#"{"subject":[{"digest":{"sha256":null}},null]}"#,
            URI,
            Ok(json!({
                "_type": "", "predicateType": "", "predicate": null,
                "subject": [{ "name": "", "digest": { "sha256": "" } }, { "name": "", "digest": null }],
            })),
        ),
        (
            r#"{"subject":[]}"#,
            URI,
            Ok(json!({
                "_type": "", "predicateType": "", "subject": [], "predicate": null,
            })),
        ),
        // Numbers in interface{} go through float64 and Go's float encoder.
        (
            r#"{"predicate":{"one":1.0}}"#,
            URI,
            Ok(with_predicate(json!({ "one": 1 }))),
        ),
        (
            r#"{"predicate":[9007199254740993]}"#,
            URI,
            Ok(with_predicate(json!([9_007_199_254_740_992_u64]))),
        ),
        (
            r#"{"predicate":[1e21,1E20,0.0000001,0.000001,1.5e-7,-12.50]}"#,
            URI,
            Ok(with_predicate(json!([
                1e21,
                100_000_000_000_000_000_000.0,
                1e-7,
                0.000_001,
                1.5e-7,
                -12.5,
            ]))),
        ),
        (
            r#"{"predicate":1e400}"#,
            URI,
            Err("cannot unmarshal number 1e400 into Go struct field Statement.predicate of type float64"),
        ),
        // Field names match without regard to case, by Unicode simple folding: U+017F LONG S
        // folds to `s` (U+212A KELVIN SIGN would to `k`, but no field here has one); U+0131
        // DOTLESS I is not `i`.
        (
            r#"{"Subject":[{"NAME":"n","Digest":{"SHA256":"a"}}],"PREDICATETYPE":"p","_TYPE":"t"}"#,
            URI,
            Ok(json!({
                "_type": "t", "predicateType": "p", "predicate": null,
                "subject": [{ "name": "n", "digest": { "SHA256": "a" } }],
            })),
        ),
        (
            "{\"\u{17F}ubject\":[{\"name\":\"n\"}]}",
            URI,
            Ok(json!({
                "_type": "", "predicateType": "", "predicate": null, "subject": [{ "name": "n", "digest": null }],
            })),
        ),
        ("{\"pred\u{131}cate\":1}", URI, Ok(with_predicate(Value::Null))),
        // Two keys naming one field: an interface{} is replaced, a struct decoded into again.
        (
            r#"{"predicate":{"a":1},"Predicate":{"b":2}}"#,
            URI,
            Ok(with_predicate(json!({ "b": 2 }))),
        ),
        (
            r#"{"predicate":{"builder":{"id":"a"}},"PREDICATE":{"buildType":"b"}}"#,
            "slsaprovenance",
            Ok(with_predicate(json!({
                "builder": { "id": "a" }, "buildType": "b", "invocation": { "configSource": {} },
            }))),
        ),
        // Values of the wrong JSON type are refused, by the first decoding (into the generic
        // statement) for every written type, by the second for its own fields.
        (
            r#"{"subject":{}}"#,
            "vuln",
            Err("unmarshal in-toto statement: json: cannot unmarshal object into Go struct field Statement.subject"),
        ),
        (
            r#"{"_type":1}"#,
            URI,
            Err("cannot unmarshal number into Go struct field Statement._type of type string"),
        ),
        (
            r#"{"predicate":"x"}"#,
            "vuln",
            Err("unmarshaling CosignVulnStatement: json: cannot unmarshal string"),
        ),
        (
            r#"{"predicate":{"builder":"b"}}"#,
            "slsaprovenance",
            Err("unmarshaling ProvenanceStatementSLSA02"),
        ),
        (
            r#"{"predicate":{"command":"cc"}}"#,
            "link",
            Err("unmarshaling LinkStatement"),
        ),
        (
            "[]",
            "custom",
            Err("cannot unmarshal array into Go value of type main.Statement"),
        ),
        // null at the top leaves the statement as it is: zero.
        ("null", "custom", Ok(with_predicate(Value::Null))),
        // custom, spdx, spdxjson, cyclonedx, a URI, and the short names the switch has no case
        // for (slsaprovenance02, slsaprovenance1, cyclonedxxml, openvex): the generic statement,
        // the predicate as it is (its numbers through float64).
        (
            r#"{"predicate":{"Builder":{"ID":"b"},"x":[1.0]}}"#,
            "custom",
            Ok(with_predicate(json!({ "Builder": { "ID": "b" }, "x": [1] }))),
        ),
        (
            r#"{"predicate":{"Builder":{"ID":"b"}}}"#,
            "spdx",
            Ok(with_predicate(json!({ "Builder": { "ID": "b" } }))),
        ),
        (r#"{"predicate":"<&>"}"#, "spdxjson", Ok(with_predicate(json!("<&>")))),
        (r#"{"predicate":[]}"#, "cyclonedx", Ok(with_predicate(json!([])))),
        (
            r#"{"predicate":{"Builder":{"ID":"b"}}}"#,
            "slsaprovenance02",
            Ok(with_predicate(json!({ "Builder": { "ID": "b" } }))),
        ),
        (
            r#"{"predicate":{"Builder":{"ID":"b"}}}"#,
            "slsaprovenance1",
            Ok(with_predicate(json!({ "Builder": { "ID": "b" } }))),
        ),
        (
            r#"{"predicate":{"Builder":{"ID":"b"}}}"#,
            "cyclonedxxml",
            Ok(with_predicate(json!({ "Builder": { "ID": "b" } }))),
        ),
        // slsaprovenance: ProvenanceStatementSLSA02.
        (
            r#"{"predicate":{"Builder":{"ID":"b"},"x":1}}"#,
            "slsaprovenance",
            Ok(with_predicate(json!({
                "builder": { "id": "b" }, "buildType": "", "invocation": { "configSource": {} },
            }))),
        ),
        (
            r#"{"predicate":{}}"#,
            "slsaprovenance",
            Ok(with_predicate(empty_provenance())),
        ),
        (r#"{}"#, "slsaprovenance", Ok(with_predicate(empty_provenance()))),
        (
            r#"{"predicate":null}"#,
            "slsaprovenance",
            Ok(with_predicate(empty_provenance())),
        ),
        // `omitempty` drops a nil interface{} (missing or null) but not one holding an empty
        // value; an empty list or map; a nil pointer; never a struct.
        (
            r#"{"predicate":{"invocation":{"parameters":{},"environment":null,"configSource":{"digest":{},"uri":""}},"buildConfig":false,"materials":[],"metadata":null}}"#,
            "slsaprovenance",
            Ok(with_predicate(json!({
                "builder": { "id": "" }, "buildType": "",
                "invocation": { "configSource": {}, "parameters": {} }, "buildConfig": false,
            }))),
        ),
        (
            r#"{"predicate":{"metadata":{},"materials":[{},{"uri":"u","digest":{"sha1":"d"}}]}}"#,
            "slsaprovenance",
            Ok(with_predicate(json!({
                "builder": { "id": "" }, "buildType": "", "invocation": { "configSource": {} },
                "metadata": { "completeness": { "parameters": false, "environment": false, "materials": false }, "reproducible": false },
                "materials": [{}, { "uri": "u", "digest": { "sha1": "d" } }],
            }))),
        ),
        (
            r#"{"predicate":{"buildConfig":{"n":2.50}}}"#,
            "slsaprovenance",
            Ok(with_predicate(json!({
                "builder": { "id": "" }, "buildType": "", "invocation": { "configSource": {} }, "buildConfig": { "n": 2.5 },
            }))),
        ),
        // Times (*time.Time, `omitempty`): RFC 3339 as Go >= 1.20 reads it, RFC3339Nano written.
        (
            r#"{"predicate":{"metadata":{"buildStartedOn":"2024-01-01T00:00:00.500+00:00","buildFinishedOn":null}}}"#,
            "slsaprovenance",
            Ok(with_predicate(json!({
                "builder": { "id": "" }, "buildType": "", "invocation": { "configSource": {} },
                "metadata": {
                    "buildStartedOn": "2024-01-01T00:00:00.5Z",
                    "completeness": { "parameters": false, "environment": false, "materials": false }, "reproducible": false,
                },
            }))),
        ),
        (
            r#"{"predicate":{"metadata":{"buildStartedOn":"2024-01-01T00:00:00+24:00"}}}"#,
            "slsaprovenance",
            Err("timezone hour outside of range [0,23]"),
        ),
        (
            r#"{"predicate":{"metadata":{"buildStartedOn":"2024-01-01"}}}"#,
            "slsaprovenance",
            Err("parsing time"),
        ),
        // vuln: CosignVulnStatement.
        (r#"{"predicate":{}}"#, "vuln", Ok(with_predicate(empty_vuln()))),
        (r#"{}"#, "vuln", Ok(with_predicate(empty_vuln()))),
        (
            r#"{"predicate":{"Invocation":{"BUILDER.ID":"x","Event_ID":"e","parameters":[1.0]},"scanner":{"result":{"a":null},"DB":{"Version":"1"}},"metadata":{"scanStartedOn":"2024-01-01T12:00:00.120-05:30","scanFinishedOn":null}}}"#,
            "vuln",
            Ok(with_predicate(json!({
                "invocation": { "parameters": [1], "uri": "", "event_id": "e", "builder.id": "x" },
                "scanner": { "uri": "", "version": "", "db": { "uri": "", "version": "1" }, "result": { "a": null } },
                "metadata": { "scanStartedOn": "2024-01-01T12:00:00.12-05:30", "scanFinishedOn": "0001-01-01T00:00:00Z" },
            }))),
        ),
        (
            r#"{"predicate":{"metadata":{"scanStartedOn":1}}}"#,
            "vuln",
            Err("Time.UnmarshalJSON: input is not a JSON string"),
        ),
        // link: LinkStatement; v0.9.0's materials and products hold any JSON value.
        (r#"{"predicate":{}}"#, "link", Ok(with_predicate(empty_link()))),
        (
            r#"{"predicate":{"_type":"link","Name":"n","materials":{"a":{"sha256":"x"},"b":1.0,"c":null},"command":["cc",null],"environment":{}}}"#,
            "link",
            Ok(with_predicate(json!({
                "_type": "link", "name": "n", "materials": { "a": { "sha256": "x" }, "b": 1, "c": null },
                "products": null, "byproducts": null, "command": ["cc", ""], "environment": {},
            }))),
        ),
        // An empty predicate type is refused before anything is read.
        ("{}", "", Err("missing predicate type")),
    ]
}

#[test]
fn go_reads_statements_as_documented() {
    let cases = cases();
    let requests: Vec<(String, String)> = cases
        .iter()
        .map(|(text, written, _)| ((*text).to_owned(), (*written).to_owned()))
        .collect();
    let answers = ask(&requests);
    let mut wrong = Vec::new();
    for ((text, written, expected), answer) in cases.iter().zip(&answers) {
        let agrees = match (expected, answer) {
            (Ok(view), Ok(answer)) => view == answer,
            (Err(part), Err(message)) => message.contains(part),
            _ => false,
        };
        if !agrees {
            wrong.push(format!(
                "{text} as {written}\n  expected {expected:?}\n  Go says  {answer:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "Go answers otherwise:\n{}", wrong.join("\n"));
}

/// Numbers Go writes from a float64 that `serde_json` reads back otherwise than as an integer:
/// `-0` (a float, its sign kept) and an integer beyond 64 bits (a float).
#[test]
fn numbers_go_writes_that_are_no_64_bit_integers() {
    let answers = ask(&[(
        r#"{"predicate":[-0,-0.0,100000000000000000000,1e20]}"#.to_owned(),
        URI.to_owned(),
    )]);
    let view = answers[0].as_ref().expect("Go reads it");
    let numbers = view["predicate"].as_array().expect("a list");
    for zero in &numbers[..2] {
        assert!(zero.is_f64(), "{zero}");
        assert!(
            zero.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()),
            "{zero}"
        );
    }
    for big in &numbers[2..] {
        assert!(big.is_f64(), "{big}: beyond u64, so a float for serde_json");
        assert_eq!(big.as_f64(), Some(1e20));
    }
}

#[test]
fn answers_keep_the_order_of_a_large_batch() {
    let cases: Vec<(String, String)> = (0..2000)
        .map(|i| {
            if i % 3 == 0 {
                (
                    format!(r#"{{"predicate":{{"builder":{i}}}}}"#),
                    "slsaprovenance".to_owned(),
                )
            } else {
                (format!(r#"{{"predicate":{{"n":{i}}}}}"#), URI.to_owned())
            }
        })
        .collect();
    for (i, answer) in ask(&cases).into_iter().enumerate() {
        if i % 3 == 0 {
            assert!(answer.is_err(), "{i}: {answer:?}");
        } else {
            assert_eq!(answer, Ok(with_predicate(json!({ "n": i }))), "{i}");
        }
    }
}
