//! Authorities: who may vouch for an image.
//!
//! One file per kind, all behind [`Check`], the way sigstore-rs lays out its verification
//! constraints: adding a kind means adding a file and one line in [`parse`]. Inside a policy the
//! authorities are tried in order and the first that passes is enough (any-of), which is how
//! key rotation works.

pub mod attestations;
pub mod binding;
mod certificate;
pub mod fulcio;
mod github_actions;
mod key;
mod keyless;
pub mod rekor;
mod static_action;

use std::collections::BTreeMap;
use std::fmt;

use crate::host::{HostCalls, SignatureFormat};
use crate::reference::ImageReference;
use crate::settings::SettingsError;
use crate::settings::raw::RawAuthority;

/// What one authority checks.
pub trait Check: fmt::Debug {
    /// Verifies `image`. `Ok(Some(digest))`: signatures verified at that digest;
    /// `Ok(None)`: passed without looking at the registry (static); `Err`: the reason it failed.
    fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Option<String>, String>;

    /// Deep checks of keys, certificates and expressions, run once by `validate_settings`;
    /// `Err((field, message))` names the field below the authority.
    fn check_material(&self) -> Result<(), (String, String)> {
        Ok(())
    }

    /// The requests of `cluster-image-policy/oci/v1/verify_attestations` naming this
    /// authority's signers (any-of), each with a description of who it names. Empty: the kind
    /// signs nothing (static). `Err`: the signers could not be named (a `key.kms` the host
    /// could not resolve).
    fn attestation_requests(
        &self,
        _image: &ImageReference,
        _host: &mut dyn HostCalls,
    ) -> Result<Vec<(String, attestations::SignerRequest)>, String> {
        Ok(Vec::new())
    }

    /// Whether it passes every image without a signature (`static: {action: pass}`).
    fn passes_unsigned(&self) -> bool {
        false
    }
}

/// What a passing authority vouched for.
#[derive(Debug, Default)]
pub struct Verified {
    /// The digest whose signatures or attestations verified (`None`: static pass).
    pub digest: Option<String>,
    /// For an authority with `attestations`: policy-controller's map of attestation name to
    /// the verified attestations that matched.
    pub attestations: Option<serde_json::Value>,
}

/// One entry of `spec.authorities`, parsed.
#[derive(Debug)]
pub struct Authority {
    /// `name`, or `authority-<index>`.
    pub name: String,
    /// Where the authority is in the settings, for error messages.
    pub path: AuthorityPath,
    check: Box<dyn Check>,
    /// `attestations`: when given, they are checked instead of signatures (policy-controller).
    attestations: Vec<attestations::Attestation>,
    /// `signatureFormat`: where attestations are read too.
    format: SignatureFormat,
}

impl Authority {
    /// Verifies `image` with this authority: its signatures, or the attestations it lists.
    pub fn verify(&self, image: &ImageReference, host: &mut dyn HostCalls) -> Result<Verified, String> {
        if self.attestations.is_empty() {
            return self.check.verify(image, host).map(|digest| Verified {
                digest,
                attestations: None,
            });
        }
        let requests = self.check.attestation_requests(image, host)?;
        attestations::verify(&self.attestations, &requests, self.format, image, host).map(|vouched| Verified {
            digest: Some(vouched.digest),
            attestations: Some(vouched.attestations),
        })
    }

    /// Whether this authority passes every image without a signature (`static: pass`).
    pub fn passes_unsigned(&self) -> bool {
        self.attestations.is_empty() && self.check.passes_unsigned()
    }

    /// Runs the deep checks of this authority.
    pub fn check_material(&self) -> Result<(), SettingsError> {
        self.check
            .check_material()
            .map_err(|(field, message)| SettingsError::new(format!("{}.{field}", self.path), message))
    }
}

/// Where an authority is in the settings (`policies[0].spec.authorities[1]`): written only into
/// messages (a fresh instance parses the authorities of every policy that covers an image, and
/// in wasm `format!` costs ≈ 1,200 instructions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthorityPath {
    /// The index of the policy in `policies`.
    pub policy: usize,
    /// The index of the authority in the policy's `spec.authorities`.
    pub authority: usize,
}

impl std::fmt::Display for AuthorityPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "policies[{}].spec.authorities[{}]", self.policy, self.authority)
    }
}

/// Parses one authority, found at `path`.
pub fn parse(raw: RawAuthority<'_>, path: AuthorityPath) -> Result<Authority, SettingsError> {
    let index = path.authority;
    let err = |field: &str, message: String| SettingsError::new(format!("{path}.{field}"), message);
    let not_yet = |field: &str| {
        err(
            field,
            format!("{field} is not supported yet; remove it (this policy never ignores a rule silently)"),
        )
    };
    if raw.source.is_some() {
        return Err(not_yet("source"));
    }
    if raw.ctlog.is_some() {
        return Err(not_yet("ctlog"));
    }
    if raw.rfc3161_timestamp.is_some() {
        return Err(not_yet("rfc3161timestamp"));
    }
    let format = match raw.signature_format.as_deref() {
        None => SignatureFormat::Both,
        Some("legacy") => SignatureFormat::Legacy,
        Some("bundle") => SignatureFormat::Bundle,
        Some(other) => {
            return Err(err(
                "signatureFormat",
                format!(
                    "unknown signatureFormat `{other}`: give legacy (the .sig tag), bundle (cosign v3 sigstore bundles, cip only), or remove the field to accept both"
                ),
            ));
        }
    };
    if format != SignatureFormat::Both && raw.static_.is_some() {
        return Err(err(
            "signatureFormat",
            "signatureFormat says where signatures are read, and a static authority reads none: remove it".to_owned(),
        ));
    }

    let name = match raw.name {
        Some(n) if n.trim().is_empty() => {
            return Err(err("name", "the name is empty: remove it or give one".to_owned()));
        }
        Some(n) => n,
        None => format!("authority-{index}"),
    };
    if let Some(url) = raw.keyless.as_ref().and_then(|k| k.url.as_deref()) {
        check_fulcio_url(url).map_err(|m| err("keyless.url", m))?;
    }
    let wanted = match &raw.attestations {
        Some(list) => attestations::parse(list, &path)?,
        None => Vec::new(),
    };
    if !wanted.is_empty() && raw.annotations.is_some() {
        return Err(err(
            "annotations",
            "annotations constrain signature payloads, and an authority with attestations checks attestations only: remove annotations, or put them on a separate authority without attestations".to_owned(),
        ));
    }
    if !wanted.is_empty() && raw.static_.is_some() {
        return Err(err(
            "attestations",
            "a static authority signs nothing, so it cannot vouch for attestations: give a key, keyless, certificate or githubActions authority".to_owned(),
        ));
    }
    let annotations = raw.annotations;
    // The kinds given, in the order they are parsed (and named in an error).
    let given = [
        ("key", raw.key.is_some()),
        ("keyless", raw.keyless.is_some()),
        ("certificate", raw.certificate.is_some()),
        ("githubActions", raw.github_actions.is_some()),
        ("static", raw.static_.is_some()),
    ];
    // Each kind given is parsed (its error comes first); the last one parsed is kept, and used
    // when it is the only one.
    let mut check: Option<Box<dyn Check>> = None;
    if let Some(k) = raw.key {
        check = Some(Box::new(
            key::KeyAuthority::parse(k, annotations.clone(), format).map_err(|(f, m)| err(&f, m))?,
        ));
    }
    if let Some(k) = raw.keyless {
        check = Some(Box::new(
            keyless::KeylessAuthority::parse(k, annotations.clone(), format).map_err(|(f, m)| err(&f, m))?,
        ));
    }
    if let Some(c) = raw.certificate {
        check = Some(Box::new(
            certificate::CertificateAuthority::parse(c, annotations.clone(), format).map_err(|(f, m)| err(&f, m))?,
        ));
    }
    if let Some(g) = raw.github_actions {
        check = Some(Box::new(
            github_actions::GithubActionsAuthority::parse(g, annotations.clone(), format)
                .map_err(|(f, m)| err(&f, m))?,
        ));
    }
    if let Some(s) = raw.static_ {
        if annotations.is_some() {
            return Err(err(
                "annotations",
                "annotations constrain signatures, and a static authority looks at none: remove them".to_owned(),
            ));
        }
        check = Some(Box::new(
            static_action::StaticAuthority::parse(s).map_err(|(f, m)| err(&f, m))?,
        ));
    }
    let present = || given.iter().filter(|(_, present)| *present).map(|(kind, _)| *kind);
    match (present().count(), check) {
        (1, Some(check)) => Ok(Authority {
            name,
            path,
            check,
            attestations: wanted,
            format,
        }),
        (0, _) | (_, None) => Err(SettingsError::new(
            path.to_string(),
            "the authority has no kind: give exactly one of key, keyless, static, certificate, githubActions"
                .to_owned(),
        )),
        (_, Some(_)) => Err(SettingsError::new(
            path.to_string(),
            format!(
                "the authority has several kinds ({}): give exactly one per authority, and list several authorities to accept any of them",
                present().collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// `keyless.url` names the Fulcio instance. Certificates are checked against the Fulcio roots
/// of the host's sigstore trust config, whatever the URL says, so the URL is read only to
/// refuse what cannot be a Fulcio address (documented in the README).
fn check_fulcio_url(url: &str) -> Result<(), String> {
    let host = url
        .strip_prefix("https://")
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default())
        .unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!(
            "`{url}` is not an https:// URL: give the Fulcio address (https://fulcio.sigstore.dev) or remove the field; the Fulcio roots trusted are those of the host's sigstore trust config"
        ));
    }
    Ok(())
}

/// Checks the `annotations` extension: keys and values must be non-empty.
fn check_annotations(annotations: &Option<BTreeMap<String, String>>) -> Result<(), (String, String)> {
    if let Some(map) = annotations {
        if map.is_empty() {
            return Err((
                "annotations".into(),
                "annotations is empty: remove it or list the required annotations".into(),
            ));
        }
        if map.keys().any(|k| k.is_empty()) {
            return Err(("annotations".into(), "an annotation key is empty".into()));
        }
    }
    Ok(())
}

/// A required non-empty string field.
fn required(value: Option<String>, field: &str, hint: &str) -> Result<String, (String, String)> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err((field.to_owned(), format!("{field} is required: {hint}"))),
    }
}
