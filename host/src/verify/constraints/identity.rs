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

    /// An anchored regular expression (`^(?:…)$`), as policy-controller applies them. The
    /// pattern must be a complete regular expression on its own, so that nothing in it (`a)|(.*`)
    /// can close the group and escape the anchors.
    pub fn anchored_regex(pattern: &str) -> Result<Self, String> {
        regex_syntax::Parser::new()
            .parse(pattern)
            .map_err(|e| format!("it is not a complete regular expression on its own: {e}"))?;
        Regex::new(&format!("^(?:{pattern})$"))
            .map(Self::Regex)
            .map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_matches_the_whole_value_only() {
        let matcher = Matcher::anchored_regex(r"https://github\.com/acme/.*").expect("valid");
        assert!(matcher.matches("https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main"));
        assert!(!matcher.matches("evil https://github.com/acme/app"));
        let partial = Matcher::anchored_regex("dev@example").expect("valid");
        assert!(!partial.matches("dev@example.com"));
        // An alternation stays inside the anchors.
        let alternation = Matcher::anchored_regex("a|b").expect("valid");
        assert!(!alternation.matches("ab"));
        assert!(alternation.matches("b"));
    }

    #[test]
    fn url_prefix_gets_a_trailing_slash() {
        let matcher = Matcher::url_prefix("https://github.com/acme");
        assert!(matcher.matches("https://github.com/acme/app"));
        assert!(!matcher.matches("https://github.com/acme-evil/app"));
        assert_eq!(matcher.to_string(), "https://github.com/acme/*");
    }

    #[test]
    fn exact_matches_byte_for_byte() {
        let matcher = Matcher::Exact("dev@example.com".to_string());
        assert!(matcher.matches("dev@example.com"));
        assert!(!matcher.matches("Dev@example.com"));
        assert!(Matcher::anchored_regex("(").is_err());
    }

    #[test]
    fn a_pattern_closing_the_group_cannot_escape_the_anchors() {
        for escaping in ["a)|(.*", ".*)|(?:x", "x)(.*"] {
            assert!(Matcher::anchored_regex(escaping).is_err(), "{escaping} accepted");
        }
        let grouped = Matcher::anchored_regex("(a)|(b)").expect("complete on its own");
        assert!(grouped.matches("b"));
        assert!(!grouped.matches("ab"));
    }
}
