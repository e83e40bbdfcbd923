//! Documents that cosign, policy-controller and the container runtime read with Go's
//! `encoding/json`, checked to mean here what they mean there: signed payloads and statements
//! (`verify`), and the manifests and indexes a registry answers (`registry`).
//!
//! Go matches a JSON key to a struct field without regard to case (`bytes.EqualFold`: `Image`,
//! `IMAGE`, even `doc\u{212a}er-reference` with the Kelvin sign), and of two keys naming one
//! field keeps the last written. serde reads the exact name alone and ignores the other. So a
//! simple-signing payload holding both `"docker-manifest-digest": "sha256:A"` and
//! `"Docker-Manifest-Digest": "sha256:B"` is a signature for A here and for B for cosign; an
//! in-toto statement with `subject` and `Subject` names different images to each. Neither is
//! forged (the signer signed those bytes), but a signature must not mean one thing to
//! policy-controller and another here: a document with a key that names a field of Go's struct
//! without being its exact name is refused.

use serde_json::Value;

/// A field of a Go struct cosign decodes: its JSON name, and what its value is.
pub(crate) struct Field {
    name: &'static str,
    value: Nested,
}

/// What a field holds, as far as keys are concerned.
enum Nested {
    /// A string, or a map whose keys Go reads exactly.
    Other,
    Struct(&'static [Field]),
    /// A list of structs.
    Structs(&'static [Field]),
    /// The proto field name of the field whose JSON name is given: protojson reads either
    /// name as that field, Go's `encoding/json` and serde only the JSON name.
    ProtoName(&'static str),
}

const fn other(name: &'static str) -> Field {
    Field {
        name,
        value: Nested::Other,
    }
}

const fn proto_name(name: &'static str, json_name: &'static str) -> Field {
    Field {
        name,
        value: Nested::ProtoName(json_name),
    }
}

/// sigstore's `payload.SimpleContainerImage`, the payload of a cosign signature (`optional` is
/// a map).
pub(crate) const SIMPLE_SIGNING: &[Field] = &[
    Field {
        name: "critical",
        value: Nested::Struct(&[
            Field {
                name: "identity",
                value: Nested::Struct(&[other("docker-reference")]),
            },
            Field {
                name: "image",
                value: Nested::Struct(&[other("docker-manifest-digest")]),
            },
            other("type"),
        ]),
    },
    other("optional"),
];

/// in-toto-golang's `Statement` (v0.1 and v1 alike), the payload of an attestation or of a
/// cosign v3 signature (`digest` is a map; `predicate` is read by the policy, as written).
///
/// cosign v3 and sigstore-go read it with protojson into in-toto's `Statement` message
/// (in-toto/attestation `protos/in_toto_attestation/v1/statement.proto`: `type` with JSON name
/// `_type`, `subject`, `predicate_type`, `predicate`; `ResourceDescriptor`'s `download_location`
/// and `media_type`), which takes the proto field name for the field too: `"predicate_type"` is
/// the predicate type there and unknown here. A key spelled as a proto field name is refused.
pub(crate) const STATEMENT: &[Field] = &[
    other("_type"),
    proto_name("type", "_type"),
    Field {
        name: "subject",
        value: Nested::Structs(&[
            other("name"),
            other("digest"),
            proto_name("download_location", "downloadLocation"),
            proto_name("media_type", "mediaType"),
        ]),
    },
    other("predicateType"),
    proto_name("predicate_type", "predicateType"),
    other("predicate"),
];

/// secure-systems-lab's `dsse.Envelope`, a `.att` layer as cosign reads it: an envelope with
/// `payloadType` and `PayloadType` is signed over one type here and checked over the other there.
pub(crate) const ENVELOPE: &[Field] = &[
    other("payloadType"),
    other("payload"),
    Field {
        name: "signatures",
        value: Nested::Structs(&[other("keyid"), other("sig")]),
    },
];

/// An OCI image manifest or index, or a Docker manifest or manifest list, as go-containerregistry
/// (`v1.Manifest`, `v1.IndexManifest`) and containerd (image-spec's `Manifest`, `Index`) read
/// them: one table for all, as the document is checked before its kind is known. A manifest
/// with `config` and `Config` names one config to oci-client and another to the node that runs
/// it, and a policy over the config would judge an image that does not run.
pub(crate) const MANIFEST: &[Field] = &[
    other("schemaVersion"),
    other("mediaType"),
    other("artifactType"),
    Field {
        name: "config",
        value: Nested::Struct(DESCRIPTOR),
    },
    Field {
        name: "layers",
        value: Nested::Structs(DESCRIPTOR),
    },
    Field {
        name: "manifests",
        value: Nested::Structs(DESCRIPTOR),
    },
    Field {
        name: "subject",
        value: Nested::Struct(DESCRIPTOR),
    },
    other("annotations"),
];

/// A descriptor (`annotations` is a map).
const DESCRIPTOR: &[Field] = &[
    other("mediaType"),
    other("digest"),
    other("size"),
    other("urls"),
    other("annotations"),
    other("data"),
    other("artifactType"),
    Field {
        name: "platform",
        value: Nested::Struct(&[
            other("architecture"),
            other("os"),
            other("os.version"),
            other("os.features"),
            other("variant"),
            other("features"),
        ]),
    },
];

/// Refuses `document` when one of its keys names a field of `fields` (nested structs included)
/// for Go without being that field's exact name.
pub(crate) fn read_alike(document: &Value, fields: &[Field]) -> Result<(), String> {
    let Value::Object(object) = document else {
        return Ok(());
    };
    for (key, value) in object {
        if let Some(field) = fields.iter().find(|f| f.name == key) {
            match &field.value {
                Nested::Other => {}
                Nested::ProtoName(json_name) => {
                    return Err(format!(
                        "its key {key:?} is the proto field name of {json_name:?}, which protojson (how cosign v3 \
                         and sigstore-go read it) takes for that field, but not here: refused, as it would mean \
                         one thing there and another here"
                    ));
                }
                Nested::Struct(fields) => read_alike(value, fields)?,
                Nested::Structs(fields) => {
                    for item in value.as_array().into_iter().flatten() {
                        read_alike(item, fields)?;
                    }
                }
            }
        } else if let Some(field) = fields
            .iter()
            .find(|f| !matches!(f.value, Nested::ProtoName(_)) && go_folds_to(key, f.name))
        {
            return Err(format!(
                "its key {key:?} names the field {:?} for Go's JSON decoder, which cosign and policy-controller \
                 read it with (names match without regard to case), but not here: refused, as it would mean one \
                 thing there and another here",
                field.name
            ));
        }
    }
    Ok(())
}

/// Whether Go's decoder takes the key `key` for the field named `name` (ASCII): equal under
/// Unicode simple case folding, as `bytes.EqualFold` compares them; U+017F (ſ) folds to `s`
/// and U+212A (Kelvin sign) to `k`, the only non-ASCII letters that fold to ASCII ones.
pub(crate) fn go_folds_to(key: &str, name: &str) -> bool {
    let mut key = key.chars();
    let all = name.chars().all(|expected| match key.next() {
        Some('\u{17f}') => expected.eq_ignore_ascii_case(&'s'),
        Some('\u{212a}') => expected.eq_ignore_ascii_case(&'k'),
        Some(c) => c.eq_ignore_ascii_case(&expected),
        None => false,
    });
    all && key.next().is_none()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{ENVELOPE, MANIFEST, SIMPLE_SIGNING, STATEMENT, read_alike};

    #[test]
    fn documents_as_cosign_writes_them_are_read_alike() {
        let payload = json!({"critical": {"identity": {"docker-reference": "r/app"},
            "image": {"docker-manifest-digest": "sha256:aa"}, "type": "cosign container image signature"},
            "optional": {"Creator": "x", "creator": "y"}});
        assert_eq!(read_alike(&payload, SIMPLE_SIGNING), Ok(()));
        // Map keys (`digest`'s, `optional`'s) are read exactly by Go too; `predicate` is the
        // policy's, read as written; unknown keys are ignored by both.
        let statement = json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": "p",
            "subject": [{"name": "r/app", "digest": {"sha256": "aa", "SHA256": "bb"}}],
            "predicate": {"Subject": 1}, "extra": {"critical": 2}, "subjects": []});
        assert_eq!(read_alike(&statement, STATEMENT), Ok(()));
    }

    #[test]
    fn keys_go_reads_as_a_field_serde_ignores_are_refused() {
        for payload in [
            json!({"critical": {"image": {"docker-manifest-digest": "sha256:aa", "Docker-Manifest-Digest": "sha256:bb"}}}),
            json!({"critical": {"image": {"doc\u{212a}er-manifest-digest": "sha256:bb"}}}),
            json!({"critical": {"identity": {"DOCKER-REFERENCE": "other"}}}),
            json!({"Critical": {"image": {"docker-manifest-digest": "sha256:bb"}}}),
            json!({"critical": {"Type": "x"}}),
        ] {
            let error = read_alike(&payload, SIMPLE_SIGNING).unwrap_err();
            assert!(error.contains("for Go's JSON decoder"), "{payload}: {error}");
        }
        let envelope = json!({"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
            "signatures": [{"keyid": "", "sig": "c2ln"}]});
        assert_eq!(read_alike(&envelope, ENVELOPE), Ok(()));
        for envelope in [
            json!({"payloadType": "application/vnd.in-toto+json", "PayloadType": "text/plain"}),
            json!({"payload": "e30=", "PAYLOAD": "W10="}),
            json!({"signatures": [{"sig": "c2ln", "Sig": "b3RoZXI="}]}),
        ] {
            assert!(read_alike(&envelope, ENVELOPE).is_err(), "{envelope}");
        }
        for statement in [
            json!({"subject": [{"digest": {"sha256": "aa"}}], "Subject": [{"digest": {"sha256": "bb"}}]}),
            json!({"subject": [{"digest": {"sha256": "aa"}, "Digest": {"sha256": "bb"}}]}),
            json!({"predicateType": "a", "predicatetype": "b"}),
            json!({"_TYPE": "x"}),
            json!({"\u{17f}ubject": [{"digest": {"sha256": "bb"}}]}),
        ] {
            assert!(read_alike(&statement, STATEMENT).is_err(), "{statement}");
        }
        // protojson's proto field names: the same field there, unknown here.
        for statement in [
            json!({"predicateType": "a", "predicate_type": "b"}),
            json!({"_type": "https://in-toto.io/Statement/v1", "type": "x"}),
            json!({"subject": [{"digest": {"sha256": "aa"}, "media_type": "x"}]}),
        ] {
            let error = read_alike(&statement, STATEMENT).unwrap_err();
            assert!(error.contains("proto field name"), "{statement}: {error}");
        }
    }

    #[test]
    fn manifests_and_indexes_go_reads_otherwise_are_refused() {
        let descriptor = json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:aa",
            "size": 2, "annotations": {"Org": "x", "org": "y"}});
        let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor, "layers": [descriptor], "annotations": {"A": "1", "a": "2"}});
        assert_eq!(read_alike(&manifest, MANIFEST), Ok(()));
        let index = json!({"schemaVersion": 2, "manifests": [{"digest": "sha256:aa", "size": 2,
            "platform": {"architecture": "amd64", "os": "linux"}}]});
        assert_eq!(read_alike(&index, MANIFEST), Ok(()));
        for document in [
            json!({"config": descriptor, "Config": descriptor}),
            json!({"layers": [{"Digest": "sha256:bb"}]}),
            json!({"manifests": [{"digest": "sha256:aa"}], "MANIFESTS": []}),
            json!({"manifests": [{"platform": {"OS": "windows"}}]}),
            json!({"\u{17f}ubject": descriptor}),
        ] {
            assert!(read_alike(&document, MANIFEST).is_err(), "{document}");
        }
    }
}
