//! The document a CIP-level policy decides over: policy-controller's `PolicyResult`
//! (`authorityMatches`, and on request `config`, `spec`, `metadata`, `typemeta`) plus
//! `authorizations`, which says for every authority whether it passed.

use serde_json::{Map, Value, json};

/// How an authority passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// Signatures verified (the host tells the digest only, so the entry has no details).
    Signature,
    /// `static: {action: pass}`.
    Static,
    /// The authority's attestations verified: name → the matching attestations
    /// (`id`, `predicateType`, and `subject`/`issuer` for keyless).
    Attestations(Value),
}

/// The input document. `results` lists every authority in order with how it passed (`None`:
/// it failed); `config` is what `fetchConfigFile` read (`policy::config_file`); `object` is the
/// admitted object (absent for `verify_images`).
pub fn document(
    results: &[(&str, Option<Match>)],
    config: Option<Value>,
    object: Option<&Value>,
    include_spec: bool,
    include_object_meta: bool,
    include_type_meta: bool,
) -> Value {
    let mut matches = Map::new();
    let mut authorizations = Map::new();
    for (name, outcome) in results {
        authorizations.insert((*name).to_owned(), Value::Bool(outcome.is_some()));
        match outcome {
            Some(Match::Signature) => {
                matches.insert((*name).to_owned(), json!({"signatures": [{}]}));
            }
            Some(Match::Static) => {
                matches.insert((*name).to_owned(), json!({"static": true}));
            }
            Some(Match::Attestations(attestations)) => {
                matches.insert((*name).to_owned(), json!({"attestations": attestations}));
            }
            None => {}
        }
    }
    let mut doc = Map::new();
    doc.insert("authorityMatches".to_owned(), Value::Object(matches));
    doc.insert("authorizations".to_owned(), Value::Object(authorizations));
    if let Some(config) = config {
        doc.insert("config".to_owned(), config);
    }
    if let Some(object) = object {
        if include_spec && let Some(spec) = object.get("spec") {
            doc.insert("spec".to_owned(), spec.clone());
        }
        if include_object_meta && let Some(metadata) = object.get("metadata") {
            doc.insert("metadata".to_owned(), metadata.clone());
        }
        if include_type_meta {
            let mut typemeta = Map::new();
            for field in ["apiVersion", "kind"] {
                if let Some(v) = object.get(field) {
                    typemeta.insert(field.to_owned(), v.clone());
                }
            }
            doc.insert("typemeta".to_owned(), Value::Object(typemeta));
        }
    }
    Value::Object(doc)
}
