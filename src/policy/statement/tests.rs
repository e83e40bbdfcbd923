//! Statements as policy-controller's `attestationToPayloadJSON` hands them to a policy (what Go
//! writes; checked against Go itself in `tests/statement_against_go.rs`).

use serde_json::{Value, json};

use super::{go_view, go_view_of_text};
use crate::policy::go_json::GoReadError;

const DIGEST: &str = "4f5a5f07c4d3b2a1e0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7";

fn header(predicate_type: &str) -> Value {
    json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": predicate_type,
        "subject": [{"name": "registry/app", "digest": {"sha256": DIGEST}}]})
}

fn with_predicate(predicate_type: &str, predicate: Value) -> Value {
    let mut statement = header(predicate_type);
    statement["predicate"] = predicate;
    statement
}

#[test]
fn a_generic_statement_is_its_header_and_its_predicate_as_go_writes_them() {
    let statement = with_predicate(
        "https://spdx.dev/Document",
        json!({"SPDXID": "SPDXRef-DOCUMENT", "n": 2}),
    );
    assert_eq!(go_view(statement.clone(), "spdx").unwrap(), statement);
    // No predicate: `null` (which `predicate: {SPDXID: …}` fails, as in policy-controller); no
    // subject name: `""`; keys in another case are the fields; other keys dropped.
    let statement =
        json!({"_TYPE": "t", "PredicateType": "p", "Subject": [{"digest": {"sha256": DIGEST}}], "extra": 1});
    assert_eq!(
        go_view(statement, "spdx").unwrap(),
        json!({"_type": "t", "predicateType": "p", "subject": [{"name": "", "digest": {"sha256": DIGEST}}],
            "predicate": null})
    );
    assert_eq!(
        go_view(json!({}), "https://example.com/p").unwrap(),
        json!({"_type": "", "predicateType": "", "subject": null, "predicate": null})
    );
}

#[test]
fn numbers_of_a_generic_predicate_are_go_floats() {
    let statement = with_predicate(
        "p",
        json!({"one": 1.0, "big": 9_007_199_254_740_992_u64, "large": 1e21, "small": 0.000_000_1,
            "half": 0.5, "list": [2.0, -0.0], "negative": -3, "shortest": 1.000_000_000_000_000_2e17}),
    );
    assert_eq!(
        go_view(statement, "p").unwrap()["predicate"],
        json!({"one": 1, "big": 9_007_199_254_740_992_u64, "large": 1e21, "small": 1e-7, "half": 0.5,
            "list": [2, 0], "negative": -3, "shortest": 100_000_000_000_000_020_u64})
    );
}

#[test]
fn an_integer_go_would_round_is_refused() {
    for integer in [9_007_199_254_740_993_u64, u64::MAX - 1] {
        let statement = with_predicate("p", json!({"n": integer}));
        assert!(
            matches!(go_view(statement, "p"), Err(GoReadError::Rounded { .. })),
            "{integer}"
        );
    }
    let statement = with_predicate("p", json!({"n": i64::MAX}));
    assert!(matches!(go_view(statement, "p"), Err(GoReadError::Rounded { .. })));
}

#[test]
fn a_number_go_writes_beyond_64_bits_is_refused() {
    // 2^64, a float64 Go writes 18446744073709551616.
    let statement = with_predicate("p", json!({"max": 18_446_744_073_709_551_616.0}));
    assert!(matches!(
        go_view(statement, "p"),
        Err(GoReadError::BeyondIntegers { .. })
    ));
    let statement = with_predicate("p", json!({"huge": 1e20}));
    assert!(matches!(
        go_view(statement, "p"),
        Err(GoReadError::BeyondIntegers { .. })
    ));
}

#[test]
fn slsa_provenance_is_read_into_its_struct() {
    let statement = with_predicate(
        "https://slsa.dev/provenance/v0.2",
        json!({"Builder": {"ID": "https://evil"}, "buildType": "t", "metadata": {"buildInvocationId": "x",
            "buildStartedOn": "2024-01-01T00:00:00.500+00:00"}, "materials": [], "other": 1}),
    );
    assert_eq!(
        go_view(statement, "slsaprovenance").unwrap()["predicate"],
        json!({"builder": {"id": "https://evil"}, "buildType": "t", "invocation": {"configSource": {}},
            "metadata": {"buildInvocationID": "x", "buildStartedOn": "2024-01-01T00:00:00.5Z",
                "completeness": {"parameters": false, "environment": false, "materials": false},
                "reproducible": false}})
    );
    // The same statement for the URI or `slsaprovenance02` is the generic statement.
    let statement = with_predicate("https://slsa.dev/provenance/v0.2", json!({"Builder": {"ID": "x"}}));
    assert_eq!(
        go_view(statement.clone(), "slsaprovenance02").unwrap()["predicate"],
        json!({"Builder": {"ID": "x"}})
    );
    let empty = with_predicate("https://slsa.dev/provenance/v0.2", json!({}));
    assert_eq!(
        go_view(empty, "slsaprovenance").unwrap()["predicate"],
        json!({"builder": {"id": ""}, "buildType": "", "invocation": {"configSource": {}}})
    );
    let two_builders = with_predicate("p", json!({"builder": {"id": "a"}, "BUILDER": {"id": "b"}}));
    assert!(matches!(
        go_view(two_builders, "slsaprovenance"),
        Err(GoReadError::NamedTwice { .. })
    ));
    let wrong = with_predicate("p", json!({"buildType": 1}));
    assert!(matches!(
        go_view(wrong, "slsaprovenance"),
        Err(GoReadError::WrongType { path, .. }) if path == "predicate.buildType"
    ));
}

#[test]
fn vuln_and_link_predicates_are_read_into_their_structs() {
    let vuln = with_predicate(
        "https://cosign.sigstore.dev/attestation/vuln/v1",
        json!({"scanner": {"URI": "u"}}),
    );
    assert_eq!(
        go_view(vuln, "vuln").unwrap()["predicate"],
        json!({"invocation": {"parameters": null, "uri": "", "event_id": "", "builder.id": ""},
            "scanner": {"uri": "u", "version": "", "db": {"uri": "", "version": ""}, "result": null},
            "metadata": {"scanStartedOn": "0001-01-01T00:00:00Z", "scanFinishedOn": "0001-01-01T00:00:00Z"}})
    );
    let link = with_predicate(
        "https://in-toto.io/Link/v1",
        json!({"materials": {"a": {"sha256": "x"}}, "byproducts": {"n": 1.0}}),
    );
    assert_eq!(
        go_view(link, "link").unwrap()["predicate"],
        json!({"_type": "", "name": "", "materials": {"a": {"sha256": "x"}}, "products": null,
            "byproducts": {"n": 1}, "command": null, "environment": null})
    );
}

#[test]
fn what_go_refuses_is_refused() {
    for (statement, path) in [
        (json!({"subject": {"name": "x"}}), "subject"),
        (
            json!({"subject": [{"digest": {"sha256": 1}}]}),
            "subject[0].digest.sha256",
        ),
        (json!({"_type": 1}), "_type"),
    ] {
        assert!(
            matches!(go_view(statement.clone(), "spdx"), Err(GoReadError::WrongType { path: p, .. }) if p == path),
            "{statement}"
        );
    }
    assert!(matches!(go_view(json!([]), "spdx"), Err(GoReadError::WrongType { .. })));
    let vuln = with_predicate("v", json!({"metadata": {"scanStartedOn": "yesterday"}}));
    assert!(matches!(go_view(vuln, "vuln"), Err(GoReadError::NotATime { .. })));
}

/// in-toto-golang v0.9.0 reads a link's artifacts as any JSON, v0.11.0 as digest sets: what
/// either refuses is refused.
#[test]
fn link_artifacts_are_digest_sets() {
    for predicate in [
        json!({"materials": {"a": 1}}),
        json!({"products": {"a": {"sha256": 1}}}),
        json!({"materials": {"a": {"sha256": null}}}),
        json!({"materials": {"a": ["x"]}}),
    ] {
        let link = with_predicate("https://in-toto.io/Link/v1", predicate.clone());
        assert!(
            matches!(go_view(link, "link"), Err(GoReadError::WrongType { path, .. }) if path.starts_with("predicate.")),
            "{predicate}"
        );
    }
    let link = with_predicate("l", json!({"materials": {"a": {"sha256": "x"}, "b": null}}));
    assert_eq!(
        go_view(link, "link").unwrap()["predicate"]["materials"],
        json!({"a": {"sha256": "x"}, "b": null})
    );
}

/// A time written with a JSON escape is refused by Go's `time.Time` (it reads the text as
/// written), so the statements of the types that read times are refused with one; the others
/// read it as a string, escape undone, as Go does.
#[test]
fn a_time_written_with_an_escape_is_refused_where_go_reads_a_time() {
    let text = r#"{"predicate":{"metadata":{"scanStartedOn":"2024-01-01T00:00:00\u005a"}}}"#;
    let statement: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        go_view_of_text(text, statement.clone(), "vuln"),
        Err(GoReadError::EscapedTime {
            value: "2024-01-01T00:00:00Z".to_owned()
        })
    );
    let provenance = r#"{"predicate":{"metadata":{"buildStartedOn":"2024\u002d01-01T00:00:00Z"}}}"#;
    assert!(matches!(
        go_view_of_text(provenance, serde_json::from_str(provenance).unwrap(), "slsaprovenance"),
        Err(GoReadError::EscapedTime { .. })
    ));
    assert!(go_view_of_text(text, statement, "spdx").is_ok());
    // Escapes elsewhere, and times written plainly, are read.
    let plain = r#"{"predicate":{"metadata":{"scanStartedOn":"2024-01-01T00:00:00Z"}},"x":"caf\u00e9"}"#;
    assert!(go_view_of_text(plain, serde_json::from_str(plain).unwrap(), "vuln").is_ok());
}
