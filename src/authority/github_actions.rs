//! `githubActions` (Kubewarden extension): keyless signatures made by a GitHub Actions workflow
//! of a given owner (and repository).

use std::collections::BTreeMap;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;

use super::binding::{Vouch, require_bound};
use super::fulcio::SignerCertificate;
use super::{Check, check_annotations, required};
use crate::host::{HostCalls, KUBEWARDEN_VERIFY_V2, SignatureFormat, verify_formats};
use crate::reference::ImageReference;
use crate::settings::raw::RawGithubActions;

/// Verified through Kubewarden's `SigstoreGithubActionsVerify`.
#[derive(Debug)]
pub struct GithubActionsAuthority {
    owner: String,
    repo: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
    format: SignatureFormat,
}

impl GithubActionsAuthority {
    /// Parses the `githubActions` block.
    pub fn parse(
        raw: RawGithubActions,
        annotations: Option<BTreeMap<String, String>>,
        format: SignatureFormat,
    ) -> Result<Self, (String, String)> {
        let owner = required(
            raw.owner,
            "githubActions.owner",
            "the GitHub user or organisation whose workflows sign",
        )?;
        if owner.contains('/') {
            return Err((
                "githubActions.owner".into(),
                "owner is the user or organisation only; put the repository in githubActions.repo".into(),
            ));
        }
        let repo = match raw.repo {
            None => None,
            Some(repo) if repo.trim().is_empty() => {
                return Err((
                    "githubActions.repo".into(),
                    format!(
                        "githubActions.repo is empty: name the repository whose workflows sign, or remove the field to accept every repository of {owner}"
                    ),
                ));
            }
            Some(repo) if repo.contains('/') => {
                return Err((
                    "githubActions.repo".into(),
                    "githubActions.repo is the repository name alone: put the owner in githubActions.owner".into(),
                ));
            }
            Some(repo) => Some(repo),
        };
        Ok(Self {
            owner,
            repo,
            annotations,
            format,
        })
    }
}

impl GithubActionsAuthority {
    /// Whether a certificate was issued to a workflow of the owner (and repository), read from
    /// every place a host may read it: the v1 or v2 issuer, and the repository from the `.1.5`
    /// or `.1.12` extension or the URI SAN (Kubewarden reads `.1.5`).
    fn matches(&self, certificate: &SignerCertificate) -> bool {
        certificate.is_github_actions()
            && certificate
                .github_repositories
                .iter()
                .any(|(owner, repo)| *owner == self.owner && self.repo.as_ref().is_none_or(|r| r == repo))
    }
}

impl GithubActionsAuthority {
    fn who(&self) -> String {
        format!(
            "a GitHub Actions workflow of {}",
            match &self.repo {
                Some(r) => format!("{}/{r}", self.owner),
                None => self.owner.clone(),
            }
        )
    }
}

impl Check for GithubActionsAuthority {
    fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Option<String>, String> {
        let request = SigstoreVerificationInputV2::SigstoreGithubActionsVerify {
            image: image.verification_target().into_owned(),
            owner: self.owner.clone(),
            repo: self.repo.clone(),
            annotations: self.annotations.clone(),
        };
        let who = self.who();
        let verified = verify_formats(host, KUBEWARDEN_VERIFY_V2, "v2", &request, self.format)
            .map_err(|e| format!("no signature by {who}: {e}"))?;
        let digest = verified.digest;
        if verified.bundle {
            // cip bound the bundle to the image itself; there is no `.sig` layer to check.
            return Ok(Some(digest));
        }
        require_bound(
            host,
            image,
            &digest,
            &Vouch::Keyless {
                who: &who,
                matches: &|certificate| self.matches(certificate),
            },
        )?;
        Ok(Some(digest))
    }

    fn attestation_requests(
        &self,
        image: &ImageReference,
        _host: &mut dyn HostCalls,
    ) -> Result<Vec<(String, super::attestations::SignerRequest)>, String> {
        let request = SigstoreVerificationInputV2::SigstoreGithubActionsVerify {
            image: image.verification_target().into_owned(),
            owner: self.owner.clone(),
            repo: self.repo.clone(),
            annotations: None,
        };
        Ok(vec![(
            self.who(),
            super::attestations::SignerRequest::V2Verify(request),
        )])
    }

    fn check_material(&self) -> Result<(), (String, String)> {
        check_annotations(&self.annotations)
    }
}
