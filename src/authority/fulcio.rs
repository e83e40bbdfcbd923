//! What a signing certificate says about its signer, read the way the hosts read it.
//!
//! Fulcio puts the OIDC subject in a Subject Alternative Name (email or URI) and the issuer in
//! extension `1.3.6.1.4.1.57264.1.1` (v1, raw UTF-8 bytes, what sigstore-rs reads) and
//! `1.3.6.1.4.1.57264.1.8` (v2, a DER UTF8String). GitHub Actions certificates also carry the
//! workflow's repository: `.1.5` (v1, raw `owner/repo`, what Kubewarden reads) and `.1.12` (v2,
//! `https://github.com/owner/repo`).
//!
//! Hosts differ in which of these they read (sigstore-rs takes the first email-or-URI SAN and the
//! v1 issuer only). The module's defence must check at least every layer the host could have
//! accepted, so every value is collected and a certificate matches when *any* of them matches:
//! that can only make the module check more layers than the host accepted, never fewer.

use der::Decode;
use der::Encode;
use der::asn1::{ObjectIdentifier, Utf8StringRef};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::crypto::sole_pem_block;

const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const GITHUB_WORKFLOW_REPOSITORY_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.5");
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const SOURCE_REPOSITORY_URI_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.12");

/// OIDC issuer of GitHub Actions tokens.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// A parsed signing certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerCertificate {
    /// DER of the certificate (what a Rekor entry must name).
    pub der: Vec<u8>,
    /// DER of its `SubjectPublicKeyInfo` (what verifies the signature).
    pub spki: Vec<u8>,
    /// Every email and URI SAN, in order.
    pub subjects: Vec<String>,
    /// The v1 and v2 issuer extensions that are present.
    pub issuers: Vec<String>,
    /// `owner/repo` of the GitHub workflow, from `.1.5`, `.1.12` and a GitHub URI SAN.
    pub github_repositories: Vec<(String, String)>,
}

impl SignerCertificate {
    /// Parses one PEM certificate (a layer's `dev.sigstore.cosign/certificate` annotation).
    pub fn from_pem(pem_text: &str) -> Result<Self, String> {
        let block = pem::parse(pem_text).map_err(|e| format!("the certificate is not PEM: {e}"))?;
        Self::from_block(&block)
    }

    /// Parses a layer's `dev.sigstore.cosign/certificate` annotation, written by whoever pushed
    /// the signature: one PEM certificate and nothing else ([`sole_pem_block`]), so that the
    /// module reads the very certificate every host reads.
    pub fn from_annotation(text: &str) -> Result<Self, String> {
        let block = sole_pem_block(text.as_bytes()).map_err(|e| format!("the certificate annotation {e}"))?;
        Self::from_block(&block)
    }

    fn from_block(block: &pem::Pem) -> Result<Self, String> {
        if block.tag() != "CERTIFICATE" {
            return Err(format!("the certificate PEM block is `{}`", block.tag()));
        }
        Self::from_der(block.contents())
    }

    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let cert = Certificate::from_der(der).map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
        let tbs = cert.tbs_certificate();
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| format!("the certificate's key cannot be encoded: {e}"))?;
        let mut parsed = Self {
            der: der.to_vec(),
            spki,
            subjects: Vec::new(),
            issuers: Vec::new(),
            github_repositories: Vec::new(),
        };
        for extension in tbs.extensions().into_iter().flatten() {
            let value = extension.extn_value.as_bytes();
            match extension.extn_id {
                SUBJECT_ALT_NAME => {
                    let san = SubjectAltName::from_der(value)
                        .map_err(|e| format!("the Subject Alternative Name cannot be parsed: {e}"))?;
                    for name in san.0 {
                        match name {
                            GeneralName::Rfc822Name(email) => parsed.subjects.push(email.to_string()),
                            GeneralName::UniformResourceIdentifier(uri) => {
                                let uri = uri.to_string();
                                if let Some(repo) = github_owner_and_repo(&uri) {
                                    parsed.github_repositories.push(repo);
                                }
                                parsed.subjects.push(uri);
                            }
                            _ => {}
                        }
                    }
                }
                ISSUER_V1 => parsed.issuers.extend(raw_utf8(value)),
                ISSUER_V2 => parsed.issuers.extend(der_utf8(value)),
                GITHUB_WORKFLOW_REPOSITORY_V1 => {
                    if let Some(repo) = raw_utf8(value).and_then(|r| split_owner_repo(&r)) {
                        parsed.github_repositories.push(repo);
                    }
                }
                SOURCE_REPOSITORY_URI_V2 => {
                    if let Some(repo) = der_utf8(value).and_then(|u| github_owner_and_repo(&u)) {
                        parsed.github_repositories.push(repo);
                    }
                }
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// Whether any issuer extension says GitHub Actions.
    pub fn is_github_actions(&self) -> bool {
        self.issuers.iter().any(|i| i == GITHUB_ACTIONS_ISSUER)
    }
}

fn raw_utf8(value: &[u8]) -> Option<String> {
    String::from_utf8(value.to_vec()).ok()
}

fn der_utf8(value: &[u8]) -> Option<String> {
    Utf8StringRef::from_der(value).ok().map(|s| s.as_str().to_owned())
}

fn split_owner_repo(value: &str) -> Option<(String, String)> {
    let (owner, repo) = value.split_once('/')?;
    (!owner.is_empty() && !repo.is_empty()).then(|| (owner.to_owned(), repo.to_owned()))
}

/// `owner`, `repo` of `https://github.com/owner/repo[/…]`.
pub fn github_owner_and_repo(uri: &str) -> Option<(String, String)> {
    let path = uri.strip_prefix("https://github.com/")?;
    let mut segments = path.split('/');
    let owner = segments.next().filter(|s| !s.is_empty())?;
    let repo = segments.next().filter(|s| !s.is_empty())?;
    Some((owner.to_owned(), repo.to_owned()))
}

#[cfg(test)]
pub(crate) mod tests {
    //! Fulcio-like certificates made with real keys, for the tests of the defence.

    use super::*;
    use rcgen::string::Ia5String;
    use rcgen::{CertificateParams, CustomExtension, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};

    /// What to put in a test certificate.
    #[derive(Clone, Debug, Default)]
    pub struct CertSpec {
        pub emails: Vec<String>,
        pub uris: Vec<String>,
        pub issuer_v1: Option<String>,
        pub issuer_v2: Option<String>,
        pub github_repository_v1: Option<String>,
        pub source_repository_uri_v2: Option<String>,
    }

    impl CertSpec {
        pub fn email(email: &str, issuer: &str) -> Self {
            Self {
                emails: vec![email.to_owned()],
                issuer_v1: Some(issuer.to_owned()),
                ..Self::default()
            }
        }

        pub fn workflow(owner_repo: &str) -> Self {
            Self {
                uris: vec![format!(
                    "https://github.com/{owner_repo}/.github/workflows/release.yml@refs/heads/main"
                )],
                issuer_v1: Some(GITHUB_ACTIONS_ISSUER.to_owned()),
                github_repository_v1: Some(owner_repo.to_owned()),
                ..Self::default()
            }
        }
    }

    fn oid(last: u64) -> Vec<u64> {
        vec![1, 3, 6, 1, 4, 1, 57264, 1, last]
    }

    fn der_utf8_string(value: &str) -> Vec<u8> {
        Utf8StringRef::new(value).expect("utf8").to_der().expect("der")
    }

    /// A certificate for the key `spki_der` (any algorithm), issued by a throwaway CA.
    pub fn certificate(spec: &CertSpec, spki_der: &[u8]) -> (String, Vec<u8>) {
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let ca = Issuer::new(CertificateParams::new(Vec::<String>::new()).expect("CA"), ca_key);
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        for email in &spec.emails {
            params
                .subject_alt_names
                .push(SanType::Rfc822Name(Ia5String::try_from(email.as_str()).expect("ia5")));
        }
        for uri in &spec.uris {
            params
                .subject_alt_names
                .push(SanType::URI(Ia5String::try_from(uri.as_str()).expect("ia5")));
        }
        if let Some(issuer) = &spec.issuer_v1 {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&oid(1), issuer.as_bytes().to_vec()));
        }
        if let Some(repo) = &spec.github_repository_v1 {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&oid(5), repo.as_bytes().to_vec()));
        }
        if let Some(issuer) = &spec.issuer_v2 {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&oid(8), der_utf8_string(issuer)));
        }
        if let Some(uri) = &spec.source_repository_uri_v2 {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&oid(12), der_utf8_string(uri)));
        }
        let public = rcgen::SubjectPublicKeyInfo::from_der(spki_der).expect("SPKI");
        let cert = params.signed_by(&public, &ca).expect("certificate");
        (cert.pem(), cert.der().to_vec())
    }

    fn p256_spki() -> Vec<u8> {
        crate::crypto::signature::tests::p256_spki(&crate::crypto::signature::tests::p256_key(1))
    }

    #[test]
    fn reads_email_subject_and_v1_issuer() {
        let (pem, der) = certificate(
            &CertSpec::email("dev@example.com", "https://accounts.google.com"),
            &p256_spki(),
        );
        let cert = SignerCertificate::from_pem(&pem).expect("parse");
        assert_eq!(cert.der, der);
        assert_eq!(cert.spki, p256_spki());
        assert_eq!(cert.subjects, ["dev@example.com"]);
        assert_eq!(cert.issuers, ["https://accounts.google.com"]);
        assert!(cert.github_repositories.is_empty());
    }

    #[test]
    fn reads_v2_issuer_and_github_repositories() {
        let spec = CertSpec {
            uris: vec!["https://github.com/shared/workflows/.github/workflows/sign.yml@refs/tags/v1".to_owned()],
            issuer_v2: Some(GITHUB_ACTIONS_ISSUER.to_owned()),
            source_repository_uri_v2: Some("https://github.com/acme/app".to_owned()),
            ..CertSpec::default()
        };
        let (pem, _) = certificate(&spec, &p256_spki());
        let cert = SignerCertificate::from_pem(&pem).expect("parse");
        assert_eq!(cert.issuers, [GITHUB_ACTIONS_ISSUER]);
        assert!(cert.is_github_actions());
        assert_eq!(
            cert.github_repositories,
            [
                ("shared".to_owned(), "workflows".to_owned()),
                ("acme".to_owned(), "app".to_owned())
            ]
        );
    }

    #[test]
    fn github_uris_are_read_strictly() {
        assert_eq!(
            github_owner_and_repo("https://github.com/acme/app/.github/workflows/x.yml@refs/heads/main"),
            Some(("acme".to_owned(), "app".to_owned()))
        );
        assert_eq!(github_owner_and_repo("https://github.com/acme"), None);
        assert_eq!(github_owner_and_repo("https://github.com.evil.io/acme/app"), None);
        assert_eq!(split_owner_repo("acme/"), None);
    }
}
