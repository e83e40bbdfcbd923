//! `keyless`: Fulcio certificates bound to an OIDC identity, logged in Rekor.
//!
//! Identities are any-of: a signature made by any listed identity is enough. Kubewarden's
//! `SigstoreKeylessVerify` demands every identity it is given, so each identity is asked for in a
//! call of its own. Regular expressions go to `cip`'s own capability and are never weakened
//! into exact or prefix checks.

use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use kubewarden_policy_sdk::host_capabilities::verification::KeylessInfo;
use serde::Serialize;

use super::{Check, check_annotations};
use crate::host::{CIP_VERIFY_KEYLESS_REGEXP, HostCalls, KUBEWARDEN_VERIFY_V2, verify};
use crate::reference::ImageReference;
use crate::settings::raw::{RawIdentity, RawKeyless};

/// Either an exact value or an anchored regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Regexp(String),
}

#[derive(Debug)]
struct Identity {
    issuer: Pattern,
    subject: Pattern,
}

/// Payload of `cluster-image-policy`/`oci`/`v1/verify_keyless_regexp` (docs/wire-protocol.md).
#[derive(Serialize)]
struct KeylessRegexpRequest<'a> {
    image: String,
    issuer: Option<&'a str>,
    issuer_regexp: Option<&'a str>,
    subject: Option<&'a str>,
    subject_regexp: Option<&'a str>,
    annotations: Option<&'a BTreeMap<String, String>>,
}

/// A list of accepted OIDC identities.
#[derive(Debug)]
pub struct KeylessAuthority {
    identities: Vec<Identity>,
    annotations: Option<BTreeMap<String, String>>,
}

fn pattern(
    exact: Option<String>,
    regexp: Option<String>,
    field: &str,
    path: &str,
) -> Result<Pattern, (String, String)> {
    match (exact, regexp) {
        (Some(e), None) if !e.is_empty() => Ok(Pattern::Exact(e)),
        (None, Some(r)) if !r.is_empty() => Ok(Pattern::Regexp(r)),
        (Some(_), Some(_)) => Err((
            path.to_owned(),
            format!("give either {field} or {field}RegExp, not both"),
        )),
        _ => Err((path.to_owned(), format!("{field} or {field}RegExp is required"))),
    }
}

impl KeylessAuthority {
    /// Parses the `keyless` block.
    pub fn parse(raw: RawKeyless, annotations: Option<BTreeMap<String, String>>) -> Result<Self, (String, String)> {
        if raw.ca_cert.is_some() {
            return Err((
                "keyless.ca-cert".into(),
                "keyless.ca-cert is not supported yet: put your Fulcio root in the host's sigstore trust config (PolicyServer sigstoreTrustConfig, cip --sigstore-trust-config)".into(),
            ));
        }
        if raw.trust_root_ref.is_some() {
            return Err((
                "keyless.trustRootRef".into(),
                "keyless.trustRootRef is not supported yet: put your trust root in the host's sigstore trust config (PolicyServer sigstoreTrustConfig, cip --sigstore-trust-config)".into(),
            ));
        }
        let raw_identities = raw.identities.unwrap_or_default();
        if raw_identities.is_empty() {
            return Err((
                "keyless.identities".into(),
                "keyless.identities is required: list the accepted {issuer, subject} pairs (any keyless signature from Fulcio is not an identity)".into(),
            ));
        }
        let identities = raw_identities
            .into_iter()
            .enumerate()
            .map(|(i, id): (usize, RawIdentity)| {
                let path = format!("keyless.identities[{i}]");
                Ok::<_, (String, String)>(Identity {
                    issuer: pattern(id.issuer, id.issuer_reg_exp, "issuer", &path)?,
                    subject: pattern(id.subject, id.subject_reg_exp, "subject", &path)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            identities,
            annotations,
        })
    }

    fn verify_identity(
        &self,
        image: &ImageReference,
        id: &Identity,
        host: &mut dyn HostCalls,
    ) -> Result<String, String> {
        match (&id.issuer, &id.subject) {
            (Pattern::Exact(issuer), Pattern::Exact(subject)) => {
                let request = SigstoreVerificationInputV2::SigstoreKeylessVerify {
                    image: image.verification_target(),
                    keyless: vec![KeylessInfo {
                        issuer: issuer.clone(),
                        subject: subject.clone(),
                    }],
                    annotations: self.annotations.clone(),
                };
                verify(host, KUBEWARDEN_VERIFY_V2, &request)
            }
            (issuer, subject) => {
                let split = |p: &'_ Pattern| -> (Option<String>, Option<String>) {
                    match p {
                        Pattern::Exact(e) => (Some(e.clone()), None),
                        Pattern::Regexp(r) => (None, Some(r.clone())),
                    }
                };
                let (issuer, issuer_regexp) = split(issuer);
                let (subject, subject_regexp) = split(subject);
                let request = KeylessRegexpRequest {
                    image: image.verification_target(),
                    issuer: issuer.as_deref(),
                    issuer_regexp: issuer_regexp.as_deref(),
                    subject: subject.as_deref(),
                    subject_regexp: subject_regexp.as_deref(),
                    annotations: self.annotations.as_ref(),
                };
                verify(host, CIP_VERIFY_KEYLESS_REGEXP, &request).map_err(|e| {
                    if e.contains(CIP_VERIFY_KEYLESS_REGEXP.binding) || e.to_ascii_lowercase().contains("unknown") {
                        format!(
                            "identities with issuerRegExp/subjectRegExp need the host capability {CIP_VERIFY_KEYLESS_REGEXP}, which this host lacks (run under cip, or use exact issuer and subject): {e}"
                        )
                    } else {
                        e
                    }
                })
            }
        }
    }
}

fn describe(p: &Pattern) -> String {
    match p {
        Pattern::Exact(e) => e.clone(),
        Pattern::Regexp(r) => format!("/{r}/"),
    }
}

impl Check for KeylessAuthority {
    fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let mut reasons = Vec::new();
        for id in &self.identities {
            match self.verify_identity(image, id, host) {
                Ok(digest) => return Ok(Some(digest)),
                Err(e) => reasons.push(format!("{} from {}: {e}", describe(&id.subject), describe(&id.issuer))),
            }
        }
        Err(format!(
            "no keyless signature by an accepted identity ({})",
            reasons.join("; ")
        ))
    }

    fn check_material(&self) -> Result<(), (String, String)> {
        check_annotations(&self.annotations)?;
        for (i, id) in self.identities.iter().enumerate() {
            for (p, field) in [(&id.issuer, "issuerRegExp"), (&id.subject, "subjectRegExp")] {
                if let Pattern::Regexp(r) = p {
                    regex_syntax::Parser::new().parse(r).map_err(|e| {
                        (
                            format!("keyless.identities[{i}].{field}"),
                            format!("invalid regular expression: {e}"),
                        )
                    })?;
                }
            }
        }
        Ok(())
    }
}
