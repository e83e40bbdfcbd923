//! Flags that decide whether a `registry://` policy module may run: kwctl's verification
//! options, and the size cap on module downloads.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use crate::artifact::DEFAULT_MAX_MODULE_BYTES;
use crate::artifact::verification::{Annotations, ModuleVerification, ShortcutFlags, VerificationConfig};

/// Verification of a `registry://` policy module, as kwctl's flags. A module from a registry
/// runs only if its cosign signatures satisfy these requirements, or with
/// `--insecure-skip-module-verification`; local files run as they are.
#[derive(Debug, Default, Args)]
pub struct ModuleVerificationArgs {
    /// kwctl's verification config (apiVersion: v1, allOf/anyOf of pubKey, genericIssuer and
    /// githubAction signatures) the module's signatures must satisfy.
    #[arg(long, value_name = "FILE", help_heading = "Policy module verification")]
    pub verification_config_path: Option<PathBuf>,
    /// PEM public key that must have signed the module (repeatable; each one is required).
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Policy module verification",
        conflicts_with = "verification_config_path"
    )]
    pub verification_key: Vec<PathBuf>,
    /// Annotation the module's signatures must carry (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_annotation,
          help_heading = "Policy module verification", conflicts_with = "verification_config_path")]
    pub verification_annotation: Vec<(String, String)>,
    /// Keyless: the signing certificate's email (with --cert-oidc-issuer).
    #[arg(
        long,
        value_name = "EMAIL",
        help_heading = "Policy module verification",
        conflicts_with = "verification_config_path"
    )]
    pub cert_email: Option<String>,
    /// Keyless: the signing certificate's OIDC issuer (with --cert-email).
    #[arg(
        long,
        value_name = "URL",
        help_heading = "Policy module verification",
        conflicts_with = "verification_config_path"
    )]
    pub cert_oidc_issuer: Option<String>,
    /// Keyless from GitHub Actions: the GitHub owner whose workflow signed the module.
    #[arg(
        long,
        value_name = "OWNER",
        help_heading = "Policy module verification",
        conflicts_with = "verification_config_path"
    )]
    pub github_owner: Option<String>,
    /// Keyless from GitHub Actions: the repository (with --github-owner).
    #[arg(
        long,
        value_name = "REPO",
        help_heading = "Policy module verification",
        conflicts_with = "verification_config_path"
    )]
    pub github_repo: Option<String>,
    /// Run a registry:// module without checking its signatures (kwctl's default; not ours).
    #[arg(long, help_heading = "Policy module verification",
          conflicts_with_all = ["verification_config_path", "verification_key", "cert_email", "github_owner"])]
    pub insecure_skip_module_verification: bool,
    /// Largest policy module downloaded, in bytes (checked on the declared size and while
    /// downloading).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MODULE_BYTES,
          value_parser = clap::value_parser!(u64).range(1..), help_heading = "Policy module verification")]
    pub max_module_bytes: u64,
    /// Compile the module every time instead of reusing a compiled module from the cache
    /// (`$CIP_CACHE_DIR/compiled`, else `$XDG_CACHE_HOME/cip/compiled`, else
    /// `~/.cache/cip/compiled`; used only when no other user can write it or a directory above
    /// it).
    #[arg(long, help_heading = "Policy module")]
    pub no_module_cache: bool,
}

impl ModuleVerificationArgs {
    /// What the flags ask for.
    pub fn resolve(&self) -> anyhow::Result<ModuleVerification> {
        if self.insecure_skip_module_verification {
            return Ok(ModuleVerification::InsecureSkip);
        }
        if let Some(path) = &self.verification_config_path {
            return Ok(ModuleVerification::Required(VerificationConfig::from_file(path)?));
        }
        let keys = self
            .verification_key
            .iter()
            .map(|path| std::fs::read_to_string(path).with_context(|| format!("--verification-key {}", path.display())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let flags = ShortcutFlags {
            keys,
            annotations: self.verification_annotation.iter().cloned().collect::<Annotations>(),
            cert_email: self.cert_email.clone(),
            cert_oidc_issuer: self.cert_oidc_issuer.clone(),
            github_owner: self.github_owner.clone(),
            github_repo: self.github_repo.clone(),
        };
        Ok(match VerificationConfig::from_flags(&flags)? {
            Some(config) => ModuleVerification::Required(config),
            None => ModuleVerification::Unspecified,
        })
    }
}

/// `KEY=VALUE`.
fn parse_annotation(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// Refuses verification requirements for a local file (its signatures are not in a registry).
pub fn check_local(policy: &str, verification: &ModuleVerification) -> anyhow::Result<()> {
    if !policy.starts_with(crate::artifact::REGISTRY_SCHEME) && matches!(verification, ModuleVerification::Required(_))
    {
        bail!(
            "{policy} is a local file: module verification options apply to registry:// modules \
             (their signatures are in the registry)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_are_key_value_pairs() {
        assert_eq!(parse_annotation("env=prod"), Ok(("env".to_owned(), "prod".to_owned())));
        assert_eq!(parse_annotation("a=b=c"), Ok(("a".to_owned(), "b=c".to_owned())));
        assert!(parse_annotation("novalue").is_err());
        assert!(parse_annotation("=x").is_err());
    }

    #[test]
    fn no_flag_leaves_the_decision_to_the_module_kind() {
        let args = ModuleVerificationArgs::default();
        assert_eq!(args.resolve().expect("ok"), ModuleVerification::Unspecified);
        let skip = ModuleVerificationArgs {
            insecure_skip_module_verification: true,
            ..ModuleVerificationArgs::default()
        };
        assert_eq!(skip.resolve().expect("ok"), ModuleVerification::InsecureSkip);
    }
}
