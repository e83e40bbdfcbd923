//! An attestation's in-toto statement as policy-controller hands it to the attestation's
//! policy.
//!
//! policy-controller does not give CUE or Rego the signed statement's bytes: its
//! `attestationToPayloadJSON` (cosign's `AttestationToPayloadJSON`) decodes them with Go's
//! `encoding/json` into in-toto-golang's `Statement` and, for the predicate types cosign
//! types by their short name as written in the policy (`link`, `slsaprovenance`, `vuln`), again
//! into that predicate's struct, then `json.Marshal`s the struct. So what the policy reads is
//! Go's reading ([`super::go_json`]): keys matched without regard to case (`"Builder": {"ID":
//! …}` is `builder.id` for `slsaprovenance`), keys that name no field dropped, Go's zero values
//! for missing fields (`"predicate": null`, a subject's `"name": ""`, a vulnerability scan's
//! `"scanStartedOn": "0001-01-01T00:00:00Z"`), and the numbers of an `interface{}` (a generic
//! predicate, `buildConfig`, `parameters`, a scan's `result`) as `float64`, written back as Go
//! writes floats (`1.0` is `1`, an integer for CUE; `9007199254740993` is
//! `9007199254740992`). A statement Go refuses fails the policy.
//!
//! The structs are those of the versions policy-controller has been built with (cosign v2.2.3
//! to v3.1.3, in-toto-golang v0.9.0 to v0.11.0): where they differ (a link's artifacts) what
//! either refuses is refused. Checked against Go on generated statements:
//! `tests/statement_against_go.rs`.

use serde_json::{Map, Value};

use crate::policy::go_json::{Field, GoReadError, Kind, always, field, json_kind, read_struct};

/// `common.DigestSet`.
const DIGEST_SET: Kind = Kind::Map(&Kind::String);

/// `in_toto.Subject`.
const SUBJECT: &[Field] = &[always("name", Kind::String), always("digest", DIGEST_SET)];

/// A statement: `in_toto.StatementHeader`'s fields (embedded, so at the top), and `predicate`
/// of the kind given.
macro_rules! statement {
    ($predicate:expr) => {
        &[
            always("_type", Kind::String),
            always("predicateType", Kind::String),
            always("subject", Kind::List(&Kind::Struct(SUBJECT))),
            always("predicate", $predicate),
        ]
    };
}

/// The generic `in_toto.Statement` (`SPDXStatement` and `CycloneDXStatement` are the same shape).
const STATEMENT: &[Field] = statement!(Kind::Any);

/// `in_toto.LinkStatement`, its predicate `in_toto.Link` (v0.9.0: artifacts are `interface{}`;
/// v0.11.0 reads them as digest sets, see [`link_artifacts_are_digest_sets`]).
const LINK_STATEMENT: &[Field] = statement!(Kind::Struct(&[
    always("_type", Kind::String),
    always("name", Kind::String),
    always("materials", Kind::Map(&Kind::Any)),
    always("products", Kind::Map(&Kind::Any)),
    always("byproducts", Kind::Map(&Kind::Any)),
    always("command", Kind::List(&Kind::String)),
    always("environment", Kind::Map(&Kind::Any)),
]));

/// `in_toto.ProvenanceStatementSLSA02`, its predicate SLSA v0.2's `ProvenancePredicate`
/// (`omitempty` on a struct omits nothing: `invocation` and `configSource` are always written).
const SLSA02_STATEMENT: &[Field] = statement!(Kind::Struct(&[
    always("builder", Kind::Struct(&[always("id", Kind::String)])),
    always("buildType", Kind::String),
    always(
        "invocation",
        Kind::Struct(&[
            always(
                "configSource",
                Kind::Struct(&[
                    field("uri", Kind::String),
                    field("digest", DIGEST_SET),
                    field("entryPoint", Kind::String),
                ]),
            ),
            field("parameters", Kind::Any),
            field("environment", Kind::Any),
        ]),
    ),
    field("buildConfig", Kind::Any),
    field(
        "metadata",
        Kind::Pointer(&[
            field("buildInvocationID", Kind::String),
            field("buildStartedOn", Kind::TimePointer),
            field("buildFinishedOn", Kind::TimePointer),
            always(
                "completeness",
                Kind::Struct(&[
                    always("parameters", Kind::Bool),
                    always("environment", Kind::Bool),
                    always("materials", Kind::Bool),
                ]),
            ),
            always("reproducible", Kind::Bool),
        ]),
    ),
    field(
        "materials",
        Kind::List(&Kind::Struct(&[
            field("uri", Kind::String),
            field("digest", DIGEST_SET),
        ])),
    ),
]));

/// cosign's `attestation.CosignVulnStatement`, its predicate `CosignVulnPredicate`.
const VULN_STATEMENT: &[Field] = statement!(Kind::Struct(&[
    always(
        "invocation",
        Kind::Struct(&[
            always("parameters", Kind::Any),
            always("uri", Kind::String),
            always("event_id", Kind::String),
            always("builder.id", Kind::String),
        ]),
    ),
    always(
        "scanner",
        Kind::Struct(&[
            always("uri", Kind::String),
            always("version", Kind::String),
            always(
                "db",
                Kind::Struct(&[always("uri", Kind::String), always("version", Kind::String)]),
            ),
            always("result", Kind::Any),
        ]),
    ),
    always(
        "metadata",
        Kind::Struct(&[
            always("scanStartedOn", Kind::Time),
            always("scanFinishedOn", Kind::Time),
        ]),
    ),
]));

/// The struct `AttestationToPayloadJSON` decodes a statement into for the predicate type
/// `written_type`, as written in the policy: by cosign's short names alone (a URI, or
/// `slsaprovenance02`, gets the generic statement).
fn statement_struct(written_type: &str) -> &'static [Field] {
    match written_type {
        "link" => LINK_STATEMENT,
        "slsaprovenance" => SLSA02_STATEMENT,
        "vuln" => VULN_STATEMENT,
        _ => STATEMENT,
    }
}

/// The statement `text`, read as `statement`, as policy-controller hands it to the policy of an
/// attestation of `written_type` ([`go_view`]). For the types whose struct holds times
/// (`vuln`, `slsaprovenance`), a time written with a JSON escape (`"…00\u005a"`) is refused:
/// Go's `time.Time.UnmarshalJSON` reads the text between the quotes as written and refuses the
/// statement, where the parsed value no longer shows the escape. No JSON encoder escapes the
/// characters of a time, so only a hand-made statement has one.
pub fn go_view_of_text(text: &str, statement: Value, written_type: &str) -> Result<Value, GoReadError> {
    if matches!(written_type, "vuln" | "slsaprovenance") {
        let mut escaped = None;
        // The text was read already: it is JSON, and a failure here only means no escape found.
        let _ = serde::de::Deserializer::deserialize_any(
            &mut serde_json::Deserializer::from_str(text),
            EscapedTimes(&mut escaped),
        );
        if let Some(value) = escaped {
            return Err(GoReadError::EscapedTime { value });
        }
    }
    go_view(statement, written_type)
}

/// Walks a JSON document and keeps the first string that was written with an escape and reads,
/// once unescaped, as a time Go reads. serde_json hands a visitor the strings it could borrow
/// from the text as written (`visit_borrowed_str`: no escape) and the others unescaped
/// (`visit_str`).
struct EscapedTimes<'a>(&'a mut Option<String>);

impl<'de> serde::de::Visitor<'de> for EscapedTimes<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        if self.0.is_none() && crate::policy::time::as_go_rewrites(value).is_some() {
            *self.0 = Some(value.to_owned());
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(EscapedTimes(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        while members.next_key::<serde::de::IgnoredAny>()?.is_some() {
            members.next_value_seed(EscapedTimes(&mut *self.0))?;
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for EscapedTimes<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// `statement` (as the host sent it) as policy-controller hands it to the policy of an
/// attestation of `written_type`: see the module's documentation.
pub fn go_view(statement: Value, written_type: &str) -> Result<Value, GoReadError> {
    let object = match statement {
        Value::Object(object) => object,
        // `json.Unmarshal` of `null` into a struct leaves it zero.
        Value::Null => Map::new(),
        other => {
            return Err(GoReadError::WrongType {
                path: "(the statement)".to_owned(),
                expected: "an object",
                found: json_kind(&other),
            });
        }
    };
    let view = read_struct(object, statement_struct(written_type), "")?;
    if written_type == "link" {
        link_artifacts_are_digest_sets(&view)?;
    }
    Ok(Value::Object(view))
}

/// A link's `materials` and `products` as both in-toto-golang versions policy-controller has
/// been built with read them alike: v0.9.0 takes any JSON for an artifact (`interface{}`),
/// v0.11.0 a digest set (`map[string]string`, refusing anything else, a `null` digest read as
/// `""`). An artifact that is not an object of strings is refused, so that no version admits
/// what the other refuses.
fn link_artifacts_are_digest_sets(view: &Map<String, Value>) -> Result<(), GoReadError> {
    for list in ["materials", "products"] {
        let artifacts = view
            .get("predicate")
            .and_then(|predicate| predicate.get(list))
            .and_then(Value::as_object);
        for (name, artifact) in artifacts.into_iter().flatten() {
            let digests = artifact.as_object();
            let bad = match digests {
                None if artifact.is_null() => None,
                None => Some(("an object of digests", artifact)),
                Some(digests) => digests
                    .iter()
                    .find(|(_, digest)| !digest.is_string())
                    .map(|(_, digest)| ("a digest (a string)", digest)),
            };
            if let Some((expected, found)) = bad {
                return Err(GoReadError::WrongType {
                    path: format!("predicate.{list}.{name}"),
                    expected,
                    found: json_kind(found),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
