//! Verification of policy modules pulled from a registry, in kwctl's terms.
//!
//! The requirements are kwctl's `--verification-config-path` file (Kubewarden policy-fetcher's
//! format, `apiVersion: v1`, `allOf` and `anyOf` with `minimumMatches`, signature kinds
//! `pubKey`, `genericIssuer` and `githubAction`), or kwctl's shortcut flags, which all go to
//! `allOf`. Each requirement is checked by the same [`Verifier`] that checks image signatures
//! (cosign signatures at `sha256-<digest>.sig`), on the manifest digest the module is then
//! pulled by, so what runs is what was verified.

use std::collections::BTreeMap;
use std::path::Path;

use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use kubewarden_policy_sdk::host_capabilities::verification::{KeylessInfo, KeylessPrefixInfo};
use serde::{Deserialize, Serialize};

use crate::verify::{VerificationRequest, Verifier, VerifyError};

/// Signature annotations a requirement demands.
pub type Annotations = BTreeMap<String, String>;

/// kwctl's verification config (policy-fetcher `VerificationConfigV1`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationConfig {
    /// Always `v1`.
    pub api_version: String,
    /// Every one of these must be satisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_of: Option<Vec<Signature>>,
    /// At least `minimumMatches` of these must be satisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_of: Option<AnyOf>,
}

/// The `anyOf` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnyOf {
    /// How many signatures must match (default 1).
    #[serde(default = "one")]
    pub minimum_matches: u8,
    /// The candidates.
    pub signatures: Vec<Signature>,
}

fn one() -> u8 {
    1
}

/// One signature requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Signature {
    /// Signed with a key pair; `key` is the PEM public key.
    PubKey {
        /// Who owns the key (informative).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// PEM public key.
        key: String,
        /// Annotations the signature must carry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        annotations: Option<Annotations>,
    },
    /// Keyless, with a certificate for this OIDC issuer and subject.
    GenericIssuer {
        /// Exact OIDC issuer.
        issuer: String,
        /// The certificate's subject.
        subject: Subject,
        /// Annotations the signature must carry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        annotations: Option<Annotations>,
    },
    /// Keyless, from a GitHub Actions workflow of this owner (and repository).
    GithubAction {
        /// GitHub user or organisation.
        owner: String,
        /// Repository name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repo: Option<String>,
        /// Annotations the signature must carry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        annotations: Option<Annotations>,
    },
}

/// How a keyless certificate's subject is matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Subject {
    /// Exactly this subject.
    Equal(String),
    /// A subject under this URL (a `/` is appended, as kwctl does, so `…/acme` does not match
    /// `…/acme-evil`).
    UrlPrefix(String),
}

/// Why a module's verification requirements are invalid or not met.
#[derive(Debug, thiserror::Error)]
pub enum ModuleVerificationError {
    /// The verification config cannot be read or parsed.
    #[error("verification config {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The flags do not form a requirement.
    #[error("{0}")]
    Flags(String),
    /// Requirements not met: the module is refused.
    #[error("policy module {module} is not trusted: {reason}")]
    Untrusted {
        /// `host/repository@sha256:…`.
        module: String,
        /// Which requirements failed and why.
        reason: String,
    },
    /// `registry://` without any verification option.
    #[error(
        "{module}: a module from a registry must be verified; pass --verification-config-path, \
         --verification-key, --cert-email with --cert-oidc-issuer, or --github-owner \
         (or --insecure-skip-module-verification to run it unverified)"
    )]
    NoVerificationOption {
        /// The policy URI.
        module: String,
    },
}

impl VerificationConfig {
    /// Parses kwctl's YAML (or JSON) verification config; `source` names it in errors.
    pub fn from_yaml(text: &str, source: &str) -> Result<Self, ModuleVerificationError> {
        let invalid = |reason: String| ModuleVerificationError::Config {
            path: source.to_owned(),
            reason,
        };
        let config: Self = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if config.api_version != "v1" {
            return Err(invalid(format!(
                "apiVersion {:?} is not supported, use apiVersion: v1",
                config.api_version
            )));
        }
        let all_of = config.all_of.as_deref().unwrap_or_default();
        if all_of.is_empty() && config.any_of.as_ref().is_none_or(|any| any.signatures.is_empty()) {
            return Err(invalid(
                "allOf and anyOf are both empty: give at least one signature".to_owned(),
            ));
        }
        if let Some(any_of) = &config.any_of {
            if any_of.minimum_matches == 0 {
                return Err(invalid("anyOf.minimumMatches must be at least 1".to_owned()));
            }
            if usize::from(any_of.minimum_matches) > any_of.signatures.len() {
                return Err(invalid(format!(
                    "anyOf.minimumMatches is {} but anyOf.signatures lists only {}",
                    any_of.minimum_matches,
                    any_of.signatures.len()
                )));
            }
        }
        Ok(config)
    }

    /// Reads the file `path`.
    pub fn from_file(path: &Path) -> Result<Self, ModuleVerificationError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModuleVerificationError::Config {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// The config kwctl builds from its shortcut flags: every key, the email/issuer pair and
    /// the GitHub owner (and repository) become `allOf` requirements, each with the
    /// annotations. `None` when no flag is given.
    pub fn from_flags(flags: &ShortcutFlags) -> Result<Option<Self>, ModuleVerificationError> {
        let ShortcutFlags {
            keys,
            annotations,
            cert_email,
            cert_oidc_issuer,
            github_owner,
            github_repo,
        } = flags;
        if keys.is_empty() && cert_email.is_none() && cert_oidc_issuer.is_none() && github_owner.is_none() {
            if !annotations.is_empty() || github_repo.is_some() {
                return Err(ModuleVerificationError::Flags(
                    "--verification-annotation and --github-repo need --verification-key, --cert-email with \
                     --cert-oidc-issuer, or --github-owner"
                        .to_owned(),
                ));
            }
            return Ok(None);
        }
        let annotations = (!annotations.is_empty()).then(|| annotations.clone());
        let mut all_of = Vec::new();
        match (cert_email, cert_oidc_issuer) {
            (Some(email), Some(issuer)) => all_of.push(Signature::GenericIssuer {
                issuer: issuer.clone(),
                subject: Subject::Equal(email.clone()),
                annotations: annotations.clone(),
            }),
            (None, None) => {}
            _ => {
                return Err(ModuleVerificationError::Flags(
                    "--cert-email and --cert-oidc-issuer go together: give both".to_owned(),
                ));
            }
        }
        match (github_owner, github_repo) {
            (Some(owner), repo) => all_of.push(Signature::GithubAction {
                owner: owner.clone(),
                repo: repo.clone(),
                annotations: annotations.clone(),
            }),
            (None, Some(_)) => {
                return Err(ModuleVerificationError::Flags(
                    "--github-repo needs --github-owner".to_owned(),
                ));
            }
            (None, None) => {}
        }
        for key in keys {
            all_of.push(Signature::PubKey {
                owner: None,
                key: key.clone(),
                annotations: annotations.clone(),
            });
        }
        Ok(Some(Self {
            api_version: "v1".to_owned(),
            all_of: Some(all_of),
            any_of: None,
        }))
    }
}

/// kwctl's shortcut flags, already read (key files as their PEM text).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShortcutFlags {
    /// `--verification-key` PEM texts.
    pub keys: Vec<String>,
    /// `--verification-annotation KEY=VALUE` pairs.
    pub annotations: Annotations,
    /// `--cert-email`.
    pub cert_email: Option<String>,
    /// `--cert-oidc-issuer`.
    pub cert_oidc_issuer: Option<String>,
    /// `--github-owner`.
    pub github_owner: Option<String>,
    /// `--github-repo`.
    pub github_repo: Option<String>,
}

/// What to do about the signatures of a module pulled from a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleVerification {
    /// Refuse the module unless its signatures satisfy this config.
    Required(VerificationConfig),
    /// Run it unverified (`--insecure-skip-module-verification`).
    InsecureSkip,
    /// No option was given: a `registry://` module is refused, local files run.
    Unspecified,
}

impl Signature {
    fn describe(&self) -> String {
        match self {
            Self::PubKey { owner: Some(owner), .. } => format!("pubKey of {owner}"),
            Self::PubKey { owner: None, .. } => "pubKey".to_owned(),
            Self::GenericIssuer {
                issuer,
                subject: Subject::Equal(subject),
                ..
            } => format!("genericIssuer {issuer} subject {subject}"),
            Self::GenericIssuer {
                issuer,
                subject: Subject::UrlPrefix(prefix),
                ..
            } => format!("genericIssuer {issuer} subject under {prefix}"),
            Self::GithubAction { owner, repo, .. } => match repo {
                Some(repo) => format!("githubAction {owner}/{repo}"),
                None => format!("githubAction {owner}"),
            },
        }
    }

    /// The verifier request checking this requirement on `image` (`host/repo@sha256:…`).
    fn request(&self, image: &str) -> VerificationRequest {
        let image = image.to_owned();
        VerificationRequest::V2(match self.clone() {
            Self::PubKey { key, annotations, .. } => SigstoreVerificationInputV2::SigstorePubKeyVerify {
                image,
                pub_keys: vec![key],
                annotations,
            },
            Self::GenericIssuer {
                issuer,
                subject: Subject::Equal(subject),
                annotations,
            } => SigstoreVerificationInputV2::SigstoreKeylessVerify {
                image,
                keyless: vec![KeylessInfo { issuer, subject }],
                annotations,
            },
            Self::GenericIssuer {
                issuer,
                subject: Subject::UrlPrefix(url_prefix),
                annotations,
            } => SigstoreVerificationInputV2::SigstoreKeylessPrefixVerify {
                image,
                keyless_prefix: vec![KeylessPrefixInfo { issuer, url_prefix }],
                annotations,
            },
            Self::GithubAction {
                owner,
                repo,
                annotations,
            } => SigstoreVerificationInputV2::SigstoreGithubActionsVerify {
                image,
                owner,
                repo,
                annotations,
            },
        })
    }
}

/// Checks `config` against the signatures of `image` (`host/repository@sha256:…`, a digest
/// reference: every requirement is checked on the same manifest). `Ok` only when every `allOf`
/// requirement and at least `minimumMatches` of `anyOf` are satisfied by a signature of that
/// very digest.
pub async fn verify_module(
    verifier: &Verifier,
    image: &str,
    config: &VerificationConfig,
) -> Result<(), ModuleVerificationError> {
    let untrusted = |reason: String| ModuleVerificationError::Untrusted {
        module: image.to_owned(),
        reason,
    };
    let Some((_, pinned)) = image.rsplit_once('@') else {
        return Err(untrusted("it must be verified by digest".to_owned()));
    };
    let mut failures = Vec::new();
    for signature in config.all_of.iter().flatten() {
        if let Err(reason) = check(verifier, image, pinned, signature).await {
            failures.push(format!("allOf {reason}"));
        }
    }
    if let Some(any_of) = &config.any_of {
        let mut matched = 0usize;
        let mut misses = Vec::new();
        for signature in &any_of.signatures {
            match check(verifier, image, pinned, signature).await {
                Ok(()) => matched += 1,
                Err(reason) => misses.push(reason),
            }
        }
        if matched < usize::from(any_of.minimum_matches) {
            failures.push(format!(
                "anyOf: {matched} of the {} required signatures matched ({})",
                any_of.minimum_matches,
                misses.join("; ")
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(untrusted(failures.join("; ")))
    }
}

/// Checks one requirement on `image`; the reason it is not met otherwise.
async fn check(verifier: &Verifier, image: &str, pinned: &str, signature: &Signature) -> Result<(), String> {
    match verifier.verify(signature.request(image)).await {
        Ok(response) if response.is_trusted && response.digest == pinned => Ok(()),
        Ok(response) => Err(format!(
            "{}: the verifier answered for {}, not {pinned}",
            signature.describe(),
            response.digest
        )),
        Err(error) => Err(format!("{}: {}", signature.describe(), reason_of(&error))),
    }
}

fn reason_of(error: &VerifyError) -> String {
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kwctls_format() {
        let config = VerificationConfig::from_yaml(
            r#"
apiVersion: v1
allOf:
  - kind: githubAction
    owner: kubewarden
    repo: policy-server
    annotations: {env: prod}
anyOf:
  minimumMatches: 2
  signatures:
    - kind: pubKey
      owner: alice
      key: "-----BEGIN PUBLIC KEY-----"
    - kind: genericIssuer
      issuer: https://github.com/login/oauth
      subject:
        equal: alice@example.com
    - kind: genericIssuer
      issuer: https://token.actions.githubusercontent.com
      subject:
        urlPrefix: https://github.com/bob
"#,
            "test",
        )
        .expect("valid");
        assert_eq!(config.all_of.as_ref().map(Vec::len), Some(1));
        let any_of = config.any_of.expect("anyOf");
        assert_eq!(any_of.minimum_matches, 2);
        assert_eq!(
            any_of.signatures[2],
            Signature::GenericIssuer {
                issuer: "https://token.actions.githubusercontent.com".to_owned(),
                subject: Subject::UrlPrefix("https://github.com/bob".to_owned()),
                annotations: None,
            }
        );
    }

    #[test]
    fn refuses_configs_that_cannot_be_met_or_are_misspelt() {
        let error = |text: &str| VerificationConfig::from_yaml(text, "f").expect_err(text).to_string();
        assert!(error("apiVersion: v2\nallOf: [{kind: githubAction, owner: o}]").contains("apiVersion"));
        assert!(error("apiVersion: v1\n").contains("both empty"));
        assert!(error("apiVersion: v1\nallOf: [{kind: githubAction, ownr: o}]").contains("ownr"));
        assert!(error("apiVersion: v1\nallOf: [{kind: signingKey, key: k}]").contains("signingKey"));
        assert!(
            error("apiVersion: v1\nanyOf: {minimumMatches: 3, signatures: [{kind: githubAction, owner: o}]}")
                .contains("minimumMatches")
        );
    }

    #[test]
    fn shortcut_flags_become_all_of_requirements() {
        assert_eq!(
            VerificationConfig::from_flags(&ShortcutFlags::default()).expect("ok"),
            None
        );
        let flags = ShortcutFlags {
            keys: vec!["PEM".to_owned()],
            annotations: Annotations::from([("env".to_owned(), "prod".to_owned())]),
            cert_email: Some("a@example.com".to_owned()),
            cert_oidc_issuer: Some("https://issuer".to_owned()),
            github_owner: Some("acme".to_owned()),
            github_repo: None,
        };
        let config = VerificationConfig::from_flags(&flags).expect("ok").expect("some");
        let all_of = config.all_of.expect("allOf");
        assert_eq!(all_of.len(), 3);
        assert!(all_of.iter().all(|signature| match signature {
            Signature::PubKey { annotations, .. }
            | Signature::GenericIssuer { annotations, .. }
            | Signature::GithubAction { annotations, .. } => annotations.as_ref().is_some_and(|a| a["env"] == "prod"),
        }));
        let lone_email = ShortcutFlags {
            cert_email: Some("a@example.com".to_owned()),
            ..ShortcutFlags::default()
        };
        assert!(VerificationConfig::from_flags(&lone_email).is_err());
        let lone_annotation = ShortcutFlags {
            annotations: Annotations::from([("env".to_owned(), "prod".to_owned())]),
            ..ShortcutFlags::default()
        };
        assert!(VerificationConfig::from_flags(&lone_annotation).is_err());
    }
}
