//! Keyless identities: the issuer and subject of a Fulcio certificate, matched exactly, by URL
//! prefix, or by an anchored regular expression.

use regex::Regex;
use sigstore::cosign::SignatureLayer;
use sigstore::cosign::signature_layers::CertificateSubject;
use sigstore::cosign::verification_constraint::VerificationConstraint;

/// How one certificate field is matched.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// The whole value, byte for byte.
    Exact(String),
    /// A URL prefix, always ending with `/` so `https://github.com/org` cannot match
    /// `https://github.com/organisation`.
    UrlPrefix(String),
    /// A regular expression matched against the whole value.
    Regex(Regex),
}

impl Matcher {
    /// A prefix matcher with the trailing `/` Kubewarden adds.
    pub fn url_prefix(prefix: &str) -> Self {
        if prefix.ends_with('/') {
            Self::UrlPrefix(prefix.to_string())
        } else {
            Self::UrlPrefix(format!("{prefix}/"))
        }
    }

    /// An anchored regular expression (`^(?:…)$`), as policy-controller applies them.
    pub fn anchored_regex(pattern: &str) -> Result<Self, regex::Error> {
        Regex::new(&format!("^(?:{pattern})$")).map(Self::Regex)
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(expected) => expected == value,
            Self::UrlPrefix(prefix) => value.starts_with(prefix.as_str()),
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(value) => write!(f, "{value}"),
            Self::UrlPrefix(prefix) => write!(f, "{prefix}*"),
            Self::Regex(regex) => write!(f, "matching {}", regex.as_str()),
        }
    }
}

/// A layer whose trusted Fulcio certificate has a matching issuer and a matching email or URI
/// subject.
#[derive(Clone, Debug)]
pub struct IdentityVerifier {
    /// Matcher of the OIDC issuer extension.
    pub issuer: Matcher,
    /// Matcher of the email or URI SAN.
    pub subject: Matcher,
}

impl VerificationConstraint for IdentityVerifier {
    fn verify(&self, layer: &SignatureLayer) -> sigstore::errors::Result<bool> {
        // Only set when the certificate chains to the trust root and the Rekor bundle verified.
        let Some(certificate) = &layer.certificate_signature else {
            return Ok(false);
        };
        let Some(issuer) = &certificate.issuer else {
            return Ok(false);
        };
        let subject = match &certificate.subject {
            CertificateSubject::Email(value) | CertificateSubject::Uri(value) => value,
        };
        Ok(self.issuer.matches(issuer) && self.subject.matches(subject))
    }
}

impl std::fmt::Display for IdentityVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "issuer {} and subject {}", self.issuer, self.subject)
    }
}
