//! What a verification request demands, as sigstore-rs verification constraints.
//!
//! Every request kind becomes a list of [`Check`]s, each satisfied by at least one trusted
//! signature layer (all-of across checks, any-of across layers, as policy-evaluator does).
//! Each check carries the sentence shown to the user when no layer satisfies it.

mod annotated;
mod certificate;
mod github;
mod hashed_key;
mod identity;

use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::verification::{KeylessInfo, KeylessPrefixInfo};
use kubewarden_policy_sdk::host_capabilities::{SigstoreVerificationInputV1, SigstoreVerificationInputV2};
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraint};

pub use annotated::Annotated;
pub use certificate::CertificateAt;
pub use github::{GITHUB_ACTIONS_ISSUER, GithubActionsVerifier, owner_and_repo};
pub use hashed_key::{HashAlgorithm, HashedKeyError, HashedKeyVerifier};
pub use identity::{IdentityVerifier, Matcher};

use super::layers::TrustedLayer;
use super::{KeylessRegexpRequest, VerificationRequest, VerifyError};

/// One requirement on the signatures of an image.
#[derive(Debug)]
pub struct Check {
    constraint: Box<dyn VerificationConstraint + Send + Sync>,
    unmet: String,
    /// The layer's Fulcio certificate must carry a verified SCT.
    require_sct: bool,
    /// The layer's bound Rekor entry must name this key (DER SubjectPublicKeyInfo).
    rekor_key: Option<Vec<u8>>,
}

impl Check {
    fn new(
        constraint: Box<dyn VerificationConstraint + Send + Sync>,
        unmet: String,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Self {
        match annotations.filter(|a| !a.is_empty()) {
            Some(annotations) => {
                let listed = annotations
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Self {
                    constraint: Box::new(Annotated::new(constraint, annotations.clone())),
                    unmet: format!("{unmet} with annotations {listed}"),
                    require_sct: false,
                    rekor_key: None,
                }
            }
            None => Self {
                constraint,
                unmet,
                require_sct: false,
                rekor_key: None,
            },
        }
    }

    fn with_sct(mut self, required: bool) -> Self {
        self.require_sct = required;
        self
    }

    /// Whether one of `layers` satisfies the check; a constraint error counts as "not this
    /// layer", exactly as `sigstore::cosign::verify_constraints` treats it.
    pub(crate) fn is_satisfied(&self, layers: &[TrustedLayer]) -> bool {
        layers.iter().any(|trusted| {
            (!self.require_sct || trusted.sct.is_ok())
                && self
                    .rekor_key
                    .as_ref()
                    .is_none_or(|key| trusted.rekor_verifier.as_ref() == Some(key))
                && self.constraint.verify(&trusted.with_signed_bytes()).unwrap_or(false)
        })
    }

    /// The sentence explaining that no signature satisfied the check.
    pub fn unmet(&self) -> &str {
        &self.unmet
    }
}

/// What the trust root must provide for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustNeed {
    /// Key and certificate checks without Rekor.
    None,
    /// Fulcio CAs and Rekor keys for keyless certificates.
    Keyless,
    /// Rekor keys for a required Rekor bundle.
    Rekor,
}

/// A validated request: the image and its checks.
#[derive(Debug)]
pub struct Plan {
    /// The image reference as asked.
    pub image: String,
    /// All must be satisfied.
    pub checks: Vec<Check>,
    /// What the trust root must hold.
    pub trust: TrustNeed,
    /// Keyless certificates must carry a verified SCT (and the trust root CT log keys).
    pub require_sct: bool,
}

impl Plan {
    /// Turns a request into checks, rejecting unusable keys, certificates and patterns.
    pub fn from_request(request: &VerificationRequest) -> Result<Self, VerifyError> {
        match request {
            VerificationRequest::V1(SigstoreVerificationInputV1::SigstorePubKeyVerify {
                image,
                pub_keys,
                annotations,
            })
            | VerificationRequest::V2(SigstoreVerificationInputV2::SigstorePubKeyVerify {
                image,
                pub_keys,
                annotations,
            }) => pub_keys_plan(image, pub_keys, annotations.as_ref()),
            VerificationRequest::V1(SigstoreVerificationInputV1::SigstoreKeylessVerify {
                image,
                keyless,
                annotations,
            })
            | VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreKeylessVerify {
                image,
                keyless,
                annotations,
            }) => keyless_plan(image, keyless, annotations.as_ref()),
            VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreKeylessPrefixVerify {
                image,
                keyless_prefix,
                annotations,
            }) => keyless_prefix_plan(image, keyless_prefix, annotations.as_ref()),
            VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreGithubActionsVerify {
                image,
                owner,
                repo,
                annotations,
            }) => github_plan(image, owner, repo.as_deref(), annotations.as_ref()),
            VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreCertificateVerify {
                image,
                certificate,
                certificate_chain,
                require_rekor_bundle,
                annotations,
            }) => certificate_plan(
                image,
                certificate,
                certificate_chain.as_deref(),
                *require_rekor_bundle,
                annotations.as_ref(),
            ),
            VerificationRequest::KeylessRegexp(request) => regexp_plan(request),
            VerificationRequest::KeyWithHash {
                hash,
                input:
                    SigstoreVerificationInputV2::SigstorePubKeyVerify {
                        image,
                        pub_keys,
                        annotations,
                    },
            } => hashed_keys_plan(image, pub_keys, *hash, annotations.as_ref()),
            VerificationRequest::KeyWithHash { .. } => Err(invalid(
                "a hashAlgorithm applies to a SigstorePubKeyVerify request only".to_string(),
            )),
        }
    }
}

fn invalid(message: String) -> VerifyError {
    VerifyError::InvalidRequest(message)
}

fn pub_keys_plan(
    image: &str,
    pub_keys: &[String],
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Plan, VerifyError> {
    keys_plan(image, pub_keys, annotations, "", |pem| {
        PublicKeyVerifier::try_from(pem.as_bytes())
            .map(|verifier| Box::new(verifier) as Box<dyn VerificationConstraint + Send + Sync>)
            .map_err(|e| e.to_string())
    })
}

/// [`pub_keys_plan`] verifying with `hash` (`key.hashAlgorithm`) instead of the hash
/// sigstore-rs picks from the key.
fn hashed_keys_plan(
    image: &str,
    pub_keys: &[String],
    hash: HashAlgorithm,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Plan, VerifyError> {
    keys_plan(
        image,
        pub_keys,
        annotations,
        &format!(" with hashAlgorithm {hash}"),
        |pem| {
            HashedKeyVerifier::new(pem.as_bytes(), hash)
                .map(|verifier| Box::new(verifier) as Box<dyn VerificationConstraint + Send + Sync>)
                .map_err(|e| e.to_string())
        },
    )
}

/// A plan with one check a key, each made by `verifier` from the key's PEM; `how` ends each
/// unmet check's reason.
fn keys_plan(
    image: &str,
    pub_keys: &[String],
    annotations: Option<&BTreeMap<String, String>>,
    how: &str,
    verifier: impl Fn(&str) -> Result<Box<dyn VerificationConstraint + Send + Sync>, String>,
) -> Result<Plan, VerifyError> {
    if pub_keys.is_empty() {
        return Err(invalid("no public key given".to_string()));
    }
    let checks = pub_keys
        .iter()
        .enumerate()
        .map(|(index, pem)| {
            let verifier =
                verifier(pem).map_err(|e| invalid(format!("public key #{} is not usable: {e}", index + 1)))?;
            let unmet = if pub_keys.len() == 1 {
                format!("no signature verified by the given key{how}")
            } else {
                format!("no signature verified by key #{}{how}", index + 1)
            };
            Ok(Check::new(verifier, unmet, annotations))
        })
        .collect::<Result<_, VerifyError>>()?;
    Ok(Plan {
        image: image.to_string(),
        checks,
        trust: TrustNeed::None,
        require_sct: false,
    })
}

fn identity_check(
    issuer: Matcher,
    subject: Matcher,
    annotations: Option<&BTreeMap<String, String>>,
    require_sct: bool,
) -> Check {
    let verifier = IdentityVerifier { issuer, subject };
    let unmet = format!("no keyless signature by {verifier}");
    Check::new(Box::new(verifier), unmet, annotations).with_sct(require_sct)
}

fn keyless_plan(
    image: &str,
    keyless: &[KeylessInfo],
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Plan, VerifyError> {
    if keyless.is_empty() {
        return Err(invalid("no keyless identity given".to_string()));
    }
    let checks = keyless
        .iter()
        .map(|info| {
            identity_check(
                Matcher::Exact(info.issuer.clone()),
                Matcher::Exact(info.subject.clone()),
                annotations,
                true,
            )
        })
        .collect();
    Ok(Plan {
        image: image.to_string(),
        checks,
        trust: TrustNeed::Keyless,
        require_sct: true,
    })
}

fn keyless_prefix_plan(
    image: &str,
    keyless_prefix: &[KeylessPrefixInfo],
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Plan, VerifyError> {
    if keyless_prefix.is_empty() {
        return Err(invalid("no keyless identity given".to_string()));
    }
    let checks = keyless_prefix
        .iter()
        .map(|info| {
            if !(info.url_prefix.starts_with("https://") || info.url_prefix.starts_with("http://")) {
                return Err(invalid(format!(
                    "url_prefix {:?} is not an http(s) URL",
                    info.url_prefix
                )));
            }
            Ok(identity_check(
                Matcher::Exact(info.issuer.clone()),
                Matcher::url_prefix(&info.url_prefix),
                annotations,
                true,
            ))
        })
        .collect::<Result<_, VerifyError>>()?;
    Ok(Plan {
        image: image.to_string(),
        checks,
        trust: TrustNeed::Keyless,
        require_sct: true,
    })
}

fn github_plan(
    image: &str,
    owner: &str,
    repo: Option<&str>,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Plan, VerifyError> {
    if owner.is_empty() {
        return Err(invalid("GitHub owner is empty".to_string()));
    }
    let verifier = GithubActionsVerifier {
        owner: owner.to_string(),
        repo: repo.filter(|r| !r.is_empty()).map(str::to_string),
    };
    let unmet = format!("no keyless signature by {verifier}");
    Ok(Plan {
        image: image.to_string(),
        checks: vec![Check::new(Box::new(verifier), unmet, annotations).with_sct(true)],
        trust: TrustNeed::Keyless,
        require_sct: true,
    })
}

fn certificate_plan(
    image: &str,
    certificate: &[u8],
    chain: Option<&[Vec<u8>]>,
    require_rekor_bundle: bool,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<Plan, VerifyError> {
    // The certificate and its chain are checked per layer, at the time of its bound Rekor
    // bundle or, without one, now (`CertificateAt`); not when the request is read.
    let verifier = CertificateAt::from_pem(certificate, require_rekor_bundle, chain)
        .map_err(|e| invalid(format!("certificate is not usable: {e}")))?;
    let key = certificate_key(certificate).map_err(|e| invalid(format!("certificate is not usable: {e}")))?;
    let unmet = if require_rekor_bundle {
        "no signature verified by the given certificate with a valid Rekor bundle"
    } else {
        "no signature verified by the given certificate"
    };
    let mut check = Check::new(Box::new(verifier), unmet.to_string(), annotations);
    if require_rekor_bundle {
        // The bound Rekor entry must record this very certificate's key.
        check.rekor_key = Some(key);
    }
    Ok(Plan {
        image: image.to_string(),
        checks: vec![check],
        trust: if require_rekor_bundle {
            TrustNeed::Rekor
        } else {
            TrustNeed::None
        },
        require_sct: false,
    })
}

/// DER SubjectPublicKeyInfo of a PEM certificate.
fn certificate_key(pem: &[u8]) -> Result<Vec<u8>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    use x509_cert::der::{Decode as _, Encode as _};
    let der = CertificateDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
    let parsed = x509_cert::Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
    parsed
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())
}

fn regexp_plan(request: &KeylessRegexpRequest) -> Result<Plan, VerifyError> {
    let issuer = one_matcher("issuer", &request.issuer, &request.issuer_regexp)?;
    let subject = one_matcher("subject", &request.subject, &request.subject_regexp)?;
    let require_sct = !request.insecure_ignore_sct;
    Ok(Plan {
        image: request.image.clone(),
        checks: vec![identity_check(
            issuer,
            subject,
            request.annotations.as_ref(),
            require_sct,
        )],
        trust: TrustNeed::Keyless,
        require_sct,
    })
}

/// Exactly one of the exact value and the pattern must be given.
fn one_matcher(field: &str, exact: &Option<String>, pattern: &Option<String>) -> Result<Matcher, VerifyError> {
    match (exact, pattern) {
        (Some(value), None) => Ok(Matcher::Exact(value.clone())),
        (None, Some(pattern)) => Matcher::anchored_regex(pattern).map_err(|e| {
            invalid(format!(
                "{field}_regexp {pattern:?} is not a valid regular expression: {e}"
            ))
        }),
        (Some(_), Some(_)) => Err(invalid(format!(
            "both {field} and {field}_regexp are set; give exactly one"
        ))),
        (None, None) => Err(invalid(format!(
            "neither {field} nor {field}_regexp is set; give exactly one"
        ))),
    }
}
