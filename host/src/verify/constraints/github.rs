//! Signatures made by GitHub Actions workflows of a given owner (and repository), read as
//! Kubewarden's `GitHubVerifier` reads them: the issuer is GitHub's, the SAN is a workflow URI on
//! github.com, and the owner and repository come from the certificate's
//! `1.3.6.1.4.1.57264.1.5` extension (the repository the workflow ran for). With a reusable
//! workflow the SAN names the reusable workflow's repository and the extension the caller's,
//! which is the one a policy names.

use sigstore::cosign::SignatureLayer;
use sigstore::cosign::signature_layers::CertificateSubject;
use sigstore::cosign::verification_constraint::VerificationConstraint;

/// OIDC issuer of GitHub Actions tokens.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// A layer whose trusted certificate was issued to a workflow of `owner`(/`repo`).
#[derive(Clone, Debug)]
pub struct GithubActionsVerifier {
    /// GitHub user or organisation, compared exactly.
    pub owner: String,
    /// Repository name under `owner`; any when `None`.
    pub repo: Option<String>,
}

/// `OWNER/REPO` from a workflow URI SAN `https://github.com/OWNER/REPO/.github/workflows/…`.
pub fn owner_and_repo(uri: &str) -> Option<(&str, &str)> {
    let path = uri.strip_prefix("https://github.com/")?;
    let mut segments = path.split('/');
    let owner = segments.next().filter(|s| !s.is_empty())?;
    let repo = segments.next().filter(|s| !s.is_empty())?;
    Some((owner, repo))
}

impl VerificationConstraint for GithubActionsVerifier {
    fn verify(&self, layer: &SignatureLayer) -> sigstore::errors::Result<bool> {
        let Some(certificate) = &layer.certificate_signature else {
            return Ok(false);
        };
        if certificate.issuer.as_deref() != Some(GITHUB_ACTIONS_ISSUER) {
            return Ok(false);
        }
        let CertificateSubject::Uri(uri) = &certificate.subject else {
            return Ok(false);
        };
        if owner_and_repo(uri).is_none() {
            return Ok(false);
        }
        let Some(repository) = &certificate.github_workflow_repository else {
            return Ok(false);
        };
        let repository_url = format!("https://github.com/{repository}");
        let Some((owner, repo)) = owner_and_repo(&repository_url) else {
            return Ok(false);
        };
        Ok(owner == self.owner && self.repo.as_deref().is_none_or(|expected| expected == repo))
    }
}

impl std::fmt::Display for GithubActionsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.repo {
            Some(repo) => write!(f, "GitHub Actions of {}/{repo}", self.owner),
            None => write!(f, "GitHub Actions of {}", self.owner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_owner_and_repo_from_workflow_uri() {
        assert_eq!(
            owner_and_repo("https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1"),
            Some(("acme", "app"))
        );
        assert_eq!(owner_and_repo("https://github.com/acme"), None);
        assert_eq!(owner_and_repo("https://gitlab.com/acme/app/x"), None);
        assert_eq!(owner_and_repo("https://github.com.evil.io/acme/app/x"), None);
    }
}
