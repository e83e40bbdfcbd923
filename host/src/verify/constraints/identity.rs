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
    /// A regular expression matched against the whole value, and the pattern as written.
    Regex(Regex, String),
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

    /// An anchored regular expression (`^(?:…)$`): stricter than policy-controller, which hands
    /// `subjectRegExp`/`issuerRegExp` unchanged to cosign's `CheckCertificatePolicy`, where Go's
    /// `regexp.MatchString` matches anywhere in the value unless the pattern anchors itself.
    /// Read as Go's `regexp` reads it (`\d` is `[0-9]`: [`go_regexp`], which the module reads it with
    /// too). The pattern must be a complete regular expression on its own, so that nothing in
    /// it (`a)|(.*`) can close the group and escape the anchors: what go_regexp prints is.
    pub fn anchored_regex(pattern: &str) -> Result<Self, String> {
        let go = go_regexp::to_regex(pattern).map_err(|e| match e {
            go_regexp::Error::Syntax(e) => format!("it is not a complete regular expression on its own: {e}"),
            not_go @ go_regexp::Error::NotGo { .. } => not_go.to_string(),
        })?;
        Regex::new(&format!("^(?:{go})$"))
            .map(|regex| Self::Regex(regex, pattern.to_owned()))
            .map_err(|e| e.to_string())
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(expected) => expected == value,
            Self::UrlPrefix(prefix) => value.starts_with(prefix.as_str()),
            Self::Regex(regex, _) => regex.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(value) => write!(f, "{value}"),
            Self::UrlPrefix(prefix) => write!(f, "{prefix}*"),
            Self::Regex(_, pattern) => write!(f, "matching ^(?:{pattern})$"),
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

    /// As Go's regexp, which policy-controller matches identities with: ASCII `\d` and `\w`;
    /// what Go reads otherwise is refused (go_regexp's tests compare it with RE2).
    #[test]
    fn regex_is_read_as_go_reads_it() {
        let tag = Matcher::anchored_regex(r"https://github\.com/acme/app/\.github/workflows/r\.yml@refs/tags/v\d+")
            .expect("valid");
        assert!(tag.matches("https://github.com/acme/app/.github/workflows/r.yml@refs/tags/v12"));
        assert!(!tag.matches("https://github.com/acme/app/.github/workflows/r.yml@refs/tags/v\u{663}"));
        assert_eq!(
            tag.to_string(),
            r"matching ^(?:https://github\.com/acme/app/\.github/workflows/r\.yml@refs/tags/v\d+)$"
        );
        let refused = Matcher::anchored_regex("[a-z&&[^x]]+@example\\.com").unwrap_err();
        assert!(refused.contains("Go's regexp"), "{refused}");
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
