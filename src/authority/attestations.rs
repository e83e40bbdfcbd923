//! `authorities[].attestations[]`: in-toto attestations the authority's signers must have
//! made about the image (`cosign attest`), each of a predicate type and optionally satisfying
//! a CUE or Rego policy, as policy-controller evaluates them.
//!
//! The signatures of the envelopes, their certificates and Rekor entries, and the statements'
//! subjects are checked by the host ([`CIP_VERIFY_ATTESTATIONS`], implemented by `cip` only);
//! the module picks the statements of each wanted predicate type and runs its policy on the
//! whole statement (`_type`, `subject`, `predicateType`, `predicate`) as policy-controller's
//! `attestationToPayloadJSON` hands it to CUE or Rego: read by Go into the struct of the
//! predicate type as written ([`crate::policy::statement`]). An authority with attestations passes
//! when every listed attestation has at least one verified statement that satisfies its policy
//! (policy-controller checks attestations instead of signatures for such an authority); a Rego
//! result that is compliant but carries a warning does not satisfy it, as in policy-controller.

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::host::{CIP_VERIFY_ATTESTATIONS, CIP_VERIFY_ATTESTATIONS_WITH_HASH, HostCalls, SignatureFormat};
use crate::policy::{PolicyBlock, numbers, statement};
use crate::reference::{ImageReference, parse_digest};
use crate::settings::SettingsError;

/// cosign's short predicate types and the URIs it maps them to (cosign's `PredicateTypeMap`,
/// as policy-controller copies it); any other value is taken as a URI.
pub const PREDICATE_TYPES: [(&str, &str); 10] = [
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("link", "https://in-toto.io/Link/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("openvex", "https://openvex.dev/ns"),
];

/// Who must have signed the attestations: the payload of
/// `cluster-image-policy/oci/v1/verify_attestations`, in the shapes sent for signatures.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignerRequest {
    /// A `kubewarden/oci/v2/verify` request (key, exact keyless, certificate, GitHub Actions).
    V2Verify(SigstoreVerificationInputV2),
    /// A `cluster-image-policy/oci/v1/verify_keyless_regexp` request.
    KeylessRegexp(super::keyless::KeylessRegexpRequest),
    /// A key's `SigstorePubKeyVerify` request whose attestations must verify with
    /// `key.hashAlgorithm` (`hash_algorithm`, its name), which is not the hash sigstore-rs
    /// picks for the key: sent to [`CIP_VERIFY_ATTESTATIONS_WITH_HASH`] as [`HashedCall`].
    #[serde(skip)]
    KeyWithHash {
        request: SigstoreVerificationInputV2,
        hash_algorithm: &'static str,
    },
}

/// The payload of [`CIP_VERIFY_ATTESTATIONS_WITH_HASH`]: the key's request as
/// [`SignerRequest::V2Verify`] sends it, and the hash.
#[derive(Serialize)]
struct HashedCall<'a> {
    v2_verify: &'a SigstoreVerificationInputV2,
    hash_algorithm: &'a str,
}

/// One entry of `attestations` as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAttestation {
    name: Option<String>,
    predicate_type: Option<String>,
    policy: Option<Value>,
}

/// One wanted attestation, validated and its policy compiled.
#[derive(Debug)]
pub struct Attestation {
    /// `name`, the key of `authorityMatches.<authority>.attestations`.
    pub name: String,
    /// The predicate type as written (`spdx`, or a URI).
    pub written_type: String,
    /// The predicate type URI statements must carry.
    pub predicate_type: String,
    /// `policy`, evaluated on each statement of the type.
    pub policy: Option<PolicyBlock>,
}

/// The URI of a `predicateType` value, or why it is neither a short name nor a URI.
pub fn predicate_uri(value: &str) -> Result<String, String> {
    if let Some((_, uri)) = PREDICATE_TYPES.iter().find(|(short, _)| *short == value) {
        return Ok((*uri).to_owned());
    }
    let scheme_ok = value.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if scheme_ok && !value.contains(char::is_whitespace) {
        Ok(value.to_owned())
    } else {
        let names: Vec<&str> = PREDICATE_TYPES.iter().map(|(short, _)| *short).collect();
        Err(format!(
            "predicateType `{value}` is neither one of cosign's types ({}) nor a URI (https://…): write one of them",
            names.join(", ")
        ))
    }
}

/// Parses `attestations` of the authority at `path`.
pub fn parse(raw: &Value, path: &dyn std::fmt::Display) -> Result<Vec<Attestation>, SettingsError> {
    let err = |field: String, message: String| SettingsError::new(format!("{path}.{field}"), message);
    let entries: Vec<Value> = match raw {
        Value::Array(entries) if !entries.is_empty() => entries.clone(),
        _ => {
            return Err(err(
                "attestations".to_owned(),
                "attestations must be a non-empty list of {name, predicateType, policy}: list the attestations or remove the field".to_owned(),
            ));
        }
    };
    let mut parsed: Vec<Attestation> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let here = format!("attestations[{index}]");
        let raw: RawAttestation = serde_json::from_value(entry).map_err(|e| {
            err(
                here.clone(),
                format!("{e}: an attestation has name, predicateType and an optional policy"),
            )
        })?;
        let name = match raw.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => {
                return Err(err(
                    format!("{here}.name"),
                    "name is required: it names the attestation in messages and in authorityMatches".to_owned(),
                ));
            }
        };
        if parsed.iter().any(|a| a.name == name) {
            return Err(err(
                format!("{here}.name"),
                format!("`{name}` names two attestations of the authority: names must be unique"),
            ));
        }
        let written_type = match raw.predicate_type {
            Some(t) if !t.trim().is_empty() => t,
            _ => {
                return Err(err(
                    format!("{here}.predicateType"),
                    "predicateType is required: spdx, cyclonedx, slsaprovenance, … or the predicate's URI".to_owned(),
                ));
            }
        };
        let predicate_type = predicate_uri(&written_type).map_err(|m| err(format!("{here}.predicateType"), m))?;
        let policy = match raw.policy {
            None => None,
            Some(block) => {
                let policy_path = format!("{path}.{here}.policy");
                let policy = PolicyBlock::parse(&block, &policy_path)?;
                if policy.fetch_config_file
                    || policy.include_spec
                    || policy.include_object_meta
                    || policy.include_type_meta
                {
                    return Err(SettingsError::new(
                        policy_path,
                        "fetchConfigFile, includeSpec, includeObjectMeta and includeTypeMeta apply to spec.policy only: an attestation policy sees the in-toto statement; remove them".to_owned(),
                    ));
                }
                Some(policy)
            }
        };
        parsed.push(Attestation {
            name,
            written_type,
            predicate_type,
            policy,
        });
    }
    Ok(parsed)
}

/// The host's answer (see `cip`'s `verify_attestations`).
#[derive(Debug, Deserialize)]
struct Answer {
    digest: String,
    statements: Vec<Statement>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    id: String,
    predicate_type: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    /// The statement as signed (the DSSE payload's text, so its numbers read as written), read
    /// only by a policy.
    statement: Box<RawValue>,
}

/// What a passing authority vouched for: the verified digest and policy-controller's
/// `attestations` map (name → the matching attestations).
#[derive(Debug)]
pub struct Vouched {
    pub digest: String,
    pub attestations: Value,
}

/// Verifies `wanted` for `image` with the authority's signers (`requests`, any-of).
pub fn verify(
    wanted: &[Attestation],
    requests: &[(String, SignerRequest)],
    format: SignatureFormat,
    image: &ImageReference,
    host: &mut dyn HostCalls,
) -> Result<Vouched, String> {
    let mut reasons = Vec::new();
    for (who, request) in requests {
        match verify_one(wanted, request, format, host) {
            Ok(vouched) => return Ok(vouched),
            Err(reason) if requests.len() == 1 => reasons.push(reason),
            Err(reason) => reasons.push(format!("{who}: {reason}")),
        }
    }
    if requests.is_empty() {
        return Err(format!(
            "this kind of authority cannot vouch for attestations of {}",
            image.verification_target()
        ));
    }
    Err(reasons.join("; "))
}

fn verify_one(
    wanted: &[Attestation],
    request: &SignerRequest,
    format: SignatureFormat,
    host: &mut dyn HostCalls,
) -> Result<Vouched, String> {
    let (capability, payload) = match request {
        SignerRequest::KeyWithHash {
            request,
            hash_algorithm,
        } => (
            CIP_VERIFY_ATTESTATIONS_WITH_HASH,
            serde_json::to_vec(&HashedCall {
                v2_verify: request,
                hash_algorithm,
            }),
        ),
        other => (CIP_VERIFY_ATTESTATIONS, serde_json::to_vec(other)),
    };
    let mut payload = payload.map_err(|e| format!("cannot encode the request: {e}"))?;
    // `signatureFormat` restricts where attestations are read: `{"<request>": …,
    // "signature_format": "legacy" | "bundle"}` (absent: both).
    let named = match format {
        SignatureFormat::Both => None,
        SignatureFormat::Legacy => Some("legacy"),
        SignatureFormat::Bundle => Some("bundle"),
    };
    if let Some(name) = named {
        payload.pop();
        payload.extend_from_slice(format!(",\"signature_format\":\"{name}\"}}").as_bytes());
    }
    let answer = host.call(capability, &payload).map_err(|e| {
        format!(
            "{e} (attestations are verified by the host capability {capability}, which only cip implements: on a stock Kubewarden host run `cip run` or the cip Gatekeeper provider)"
        )
    })?;
    let answer: Answer = serde_json::from_slice(&answer)
        .map_err(|e| format!("unreadable answer from host capability {capability}: {e}"))?;
    let digest = parse_digest(&answer.digest)
        .map_err(|e| format!("host capability {capability} answered an unusable digest: {e}"))?;
    let mut matches = Map::new();
    for attestation in wanted {
        let matched = matching(attestation, &answer.statements, host)?;
        matches.insert(attestation.name.clone(), Value::Array(matched));
    }
    Ok(Vouched {
        digest,
        attestations: Value::Object(matches),
    })
}

/// The statements of `attestation`'s type that satisfy its policy, as policy-controller's
/// `PolicyAttestation`s; `Err` when there is none.
fn matching(
    attestation: &Attestation,
    statements: &[Statement],
    host: &mut dyn HostCalls,
) -> Result<Vec<Value>, String> {
    let of_type: Vec<&Statement> = statements
        .iter()
        .filter(|s| s.predicate_type == attestation.predicate_type)
        .collect();
    if of_type.is_empty() {
        let mut found: Vec<&str> = statements.iter().map(|s| s.predicate_type.as_str()).collect();
        found.dedup();
        return Err(format!(
            "attestation {}: no verified attestation of type {} (found: {})",
            attestation.name,
            attestation.predicate_type,
            found.join(", ")
        ));
    }
    let mut failures = Vec::new();
    let mut matched = Vec::new();
    for statement in of_type {
        // What policy-controller hands the policy: the statement as Go reads it into the struct
        // of the written type (`policy::statement`). policy-controller reads it so
        // (`AttestationToPayloadJSON`) even when the attestation has no policy, and a statement
        // Go cannot read does not count: neither does it here.
        let text = statement.statement.get();
        let input = numbers::read_input(text)
            .map_err(|unreadable| unreadable.to_string())
            .and_then(|input| {
                statement::go_view_of_text(text, input, &attestation.written_type)
                    .map_err(|error| format!("not read here as policy-controller reads it: {error}"))
            });
        let input = match input {
            Ok(input) => input,
            Err(unreadable) => {
                failures.push(format!("statement {}: {unreadable}", statement.id));
                continue;
            }
        };
        if let Some(policy) = &attestation.policy {
            // As policy-controller (`ValidatePolicyAttestationsForAuthority`: `err != nil ||
            // warn != nil`), a compliant Rego result with a warning does not satisfy the
            // attestation either: another statement of the type may.
            match policy.evaluate(&input, host) {
                Ok(None) => {}
                Ok(Some(warning)) => {
                    failures.push(format!(
                        "policy returned a warning: {warning}; an attestation with a warning does not satisfy it"
                    ));
                    continue;
                }
                Err(failure) => {
                    failures.push(failure);
                    continue;
                }
            }
        }
        // As policy-controller's `attestationToPolicyAttestations`: the layer digest's hex
        // (`id.Hex`, no algorithm) and the predicate type as the authority wrote it
        // (`wantedAttestation.PredicateType`: `vuln`, not its URI).
        let id = statement
            .id
            .split_once(':')
            .map_or(statement.id.as_str(), |(_, hex)| hex);
        let mut entry = Map::new();
        let fields = [
            ("id", Some(id)),
            ("predicateType", Some(attestation.written_type.as_str())),
            ("subject", statement.subject.as_deref()),
            ("issuer", statement.issuer.as_deref()),
        ];
        for (field, value) in fields {
            if let Some(value) = value {
                entry.insert(field.to_owned(), Value::String(value.to_owned()));
            }
        }
        let entry = Value::Object(entry);
        matched.push(entry);
    }
    if matched.is_empty() {
        failures.dedup();
        let language = attestation.policy.as_ref().map_or("", PolicyBlock::language_name);
        return Err(format!(
            "attestation {}: no {} attestation satisfies its policy ({language}): {}",
            attestation.name,
            attestation.written_type,
            failures.join("; ")
        ));
    }
    Ok(matched)
}

#[cfg(test)]
mod tests;
