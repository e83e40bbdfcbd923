//! `keyless`: Fulcio certificates bound to an OIDC identity, logged in Rekor.
//!
//! Identities are any-of: a signature made by any listed identity is enough. Kubewarden's
//! `SigstoreKeylessVerify` demands every identity it is given, so each identity is asked for in a
//! call of its own. Regular expressions, and identities whose SCT check is switched off
//! (`insecureIgnoreSCT`), go to `cip`'s own capability and are never weakened into exact or
//! prefix checks. Whatever the host answers, the module then checks itself that the layers of
//! the identity are bound to what they sign ([`super::binding`]).

use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use kubewarden_policy_sdk::host_capabilities::verification::KeylessInfo;
use serde::Serialize;

use super::binding::{Vouch, require_bound};
use super::fulcio::SignerCertificate;
use super::{Check, check_annotations};
use crate::host::{CIP_VERIFY_KEYLESS_REGEXP, HostCalls, KUBEWARDEN_VERIFY_V2, SignatureFormat, verify_formats};
use crate::reference::ImageReference;
use crate::regexp::{Regexp, RegexpError};
use crate::settings::raw::{RawIdentity, RawKeyless};

/// Either an exact value or a regular expression matched against the whole value.
#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Regexp {
        /// As written in the settings (what the host receives; it anchors it itself).
        source: String,
        /// `^(?:source)$`, what the module matches certificates with.
        anchored: Regexp,
    },
}

impl Pattern {
    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(e) => e == value,
            Pattern::Regexp { anchored, .. } => anchored.is_match(value),
        }
    }

    /// The anchored regular expression the host receives: the pattern, or the exact value
    /// escaped.
    fn as_regexp(&self) -> String {
        match self {
            Pattern::Exact(e) => regex_syntax::escape(e),
            Pattern::Regexp { source, .. } => source.clone(),
        }
    }
}

#[derive(Debug)]
struct Identity {
    issuer: Pattern,
    subject: Pattern,
}

impl Identity {
    /// Whether a certificate shows this identity: any issuer extension (v1 or v2) and any email
    /// or URI SAN, so that no layer a host could have accepted escapes the module's check.
    fn matches(&self, certificate: &SignerCertificate) -> bool {
        certificate.issuers.iter().any(|i| self.issuer.matches(i))
            && certificate.subjects.iter().any(|s| self.subject.matches(s))
    }

    fn describe(&self) -> String {
        format!("{} from {}", describe(&self.subject), describe(&self.issuer))
    }
}

/// Payload of `cluster-image-policy`/`oci`/`v1/verify_keyless_regexp` (docs/wire-protocol.md).
#[derive(Debug, Serialize)]
pub struct KeylessRegexpRequest {
    image: String,
    issuer: Option<String>,
    issuer_regexp: Option<String>,
    subject: Option<String>,
    subject_regexp: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
    /// Sent only when true, so hosts that predate the field keep working.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    insecure_ignore_sct: bool,
}

/// How one identity is asked for.
enum IdentityRequest {
    /// Kubewarden's `SigstoreKeylessVerify`.
    Exact(SigstoreVerificationInputV2),
    /// `cip`'s regular-expression capability, and the setting that needs it.
    Regexp(KeylessRegexpRequest, &'static str),
}

/// A list of accepted OIDC identities.
#[derive(Debug)]
pub struct KeylessAuthority {
    identities: Vec<Identity>,
    annotations: Option<BTreeMap<String, String>>,
    /// `insecureIgnoreSCT`: the host skips the certificate's SCT check (as policy-controller).
    insecure_ignore_sct: bool,
    format: SignatureFormat,
}

fn pattern(
    exact: Option<String>,
    regexp: Option<String>,
    field: &str,
    path: &str,
) -> Result<Pattern, (String, String)> {
    match (exact, regexp) {
        (Some(e), None) if !e.is_empty() => Ok(Pattern::Exact(e)),
        (None, Some(r)) if !r.is_empty() => {
            let anchored = Regexp::whole(&r).map_err(|e| {
                let why = match e {
                    RegexpError::Syntax(_) => {
                        "invalid regular expression (it must be complete on its own; write .*foo.* to match a part)"
                    }
                    RegexpError::NotGo(_) => "invalid regular expression",
                    RegexpError::TooBig | RegexpError::Build(_) => "the regular expression is too big",
                };
                (format!("{path}.{field}RegExp"), format!("{why}: {e}"))
            })?;
            Ok(Pattern::Regexp { source: r, anchored })
        }
        (Some(_), Some(_)) => Err((
            path.to_owned(),
            format!("give either {field} or {field}RegExp, not both"),
        )),
        _ => Err((path.to_owned(), format!("{field} or {field}RegExp is required"))),
    }
}

impl KeylessAuthority {
    /// Parses the `keyless` block.
    pub fn parse(
        raw: RawKeyless,
        annotations: Option<BTreeMap<String, String>>,
        format: SignatureFormat,
    ) -> Result<Self, (String, String)> {
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
            insecure_ignore_sct: raw.insecure_ignore_sct.unwrap_or(false),
            format,
        })
    }

    /// The host request for `id`: Kubewarden's exact keyless verification, or `cip`'s
    /// regular-expression capability (with the reason it is needed).
    fn identity_request(&self, image: &ImageReference, id: &Identity) -> IdentityRequest {
        match (&id.issuer, &id.subject) {
            (Pattern::Exact(issuer), Pattern::Exact(subject)) if !self.insecure_ignore_sct => {
                IdentityRequest::Exact(SigstoreVerificationInputV2::SigstoreKeylessVerify {
                    image: image.verification_target().into_owned(),
                    keyless: vec![KeylessInfo {
                        issuer: issuer.clone(),
                        subject: subject.clone(),
                    }],
                    annotations: self.annotations.clone(),
                })
            }
            (issuer, subject) => {
                // Exact values go as exact fields, unless the SCT switch forces this capability
                // for an exact identity: then they go escaped, as anchored regexps.
                let split = |p: &Pattern| -> (Option<String>, Option<String>) {
                    match p {
                        Pattern::Exact(e) if !self.insecure_ignore_sct => (Some(e.clone()), None),
                        other => (None, Some(other.as_regexp())),
                    }
                };
                let (issuer, issuer_regexp) = split(issuer);
                let (subject, subject_regexp) = split(subject);
                let why = if self.insecure_ignore_sct {
                    "insecureIgnoreSCT"
                } else {
                    "issuerRegExp/subjectRegExp"
                };
                IdentityRequest::Regexp(
                    KeylessRegexpRequest {
                        image: image.verification_target().into_owned(),
                        issuer,
                        issuer_regexp,
                        subject,
                        subject_regexp,
                        annotations: self.annotations.clone(),
                        insecure_ignore_sct: self.insecure_ignore_sct,
                    },
                    why,
                )
            }
        }
    }

    fn verify_identity(
        &self,
        image: &ImageReference,
        id: &Identity,
        host: &mut dyn HostCalls,
    ) -> Result<String, String> {
        let verified = match self.identity_request(image, id) {
            IdentityRequest::Exact(request) => verify_formats(host, KUBEWARDEN_VERIFY_V2, "v2", &request, self.format)?,
            IdentityRequest::Regexp(request, why) => {
                verify_formats(host, CIP_VERIFY_KEYLESS_REGEXP, "keyless_regexp", &request, self.format).map_err(|e| {
                    format!(
                        "{e} (identities with {why} need the host capability {CIP_VERIFY_KEYLESS_REGEXP}, which only cip implements: stock Kubewarden hosts refuse them; use exact issuer and subject there)"
                    )
                })?
            }
        };
        let digest = verified.digest;
        if verified.bundle {
            // cip bound the bundle to the image itself; there is no `.sig` layer to check.
            return Ok(digest);
        }
        let who = id.describe();
        require_bound(
            host,
            image,
            &digest,
            &Vouch::Keyless {
                who: &who,
                matches: &|certificate| id.matches(certificate),
            },
        )?;
        Ok(digest)
    }
}

fn describe(p: &Pattern) -> String {
    match p {
        Pattern::Exact(e) => e.clone(),
        Pattern::Regexp { source, .. } => format!("/{source}/"),
    }
}

impl Check for KeylessAuthority {
    fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let mut reasons = Vec::new();
        for id in &self.identities {
            match self.verify_identity(image, id, host) {
                Ok(digest) => return Ok(Some(digest)),
                Err(e) => reasons.push(format!("{}: {e}", id.describe())),
            }
        }
        Err(format!(
            "no keyless signature by an accepted identity ({})",
            reasons.join("; ")
        ))
    }

    fn attestation_requests(
        &self,
        image: &ImageReference,
        _host: &mut dyn HostCalls,
    ) -> Result<Vec<(String, super::attestations::SignerRequest)>, String> {
        Ok(self
            .identities
            .iter()
            .map(|id| {
                let request = match self.identity_request(image, id) {
                    IdentityRequest::Exact(request) => super::attestations::SignerRequest::V2Verify(request),
                    IdentityRequest::Regexp(request, _) => super::attestations::SignerRequest::KeylessRegexp(request),
                };
                (id.describe(), request)
            })
            .collect())
    }

    fn check_material(&self) -> Result<(), (String, String)> {
        // Regular expressions were checked (alone and anchored) when the settings were parsed.
        check_annotations(&self.annotations)
    }
}
