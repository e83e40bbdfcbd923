//! A test Fulcio: a P-256 root CA and intermediate issuing short-lived code-signing leaf
//! certificates with the Sigstore OIDC extensions, like <https://fulcio.sigstore.dev>.

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use sigstore::crypto::SigningScheme;

use crate::keys::KeyPair;

/// Sigstore OID arc `1.3.6.1.4.1.57264.1`; `.1` is the OIDC issuer (raw bytes, what
/// sigstore-rs 0.15 reads), `.2`–`.6` the GitHub workflow trigger, sha, name, repository, ref.
const SIGSTORE_OID_ARC: [u64; 8] = [1, 3, 6, 1, 4, 1, 57264, 1];

/// Who the certificate says signed: Fulcio puts it in the Subject Alternative Name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerIdentity {
    /// An email SAN, e.g. `user@example.com` (interactive OIDC logins).
    Email(String),
    /// A URI SAN, e.g. `https://github.com/org/repo/.github/workflows/x.yml@refs/heads/main`
    /// (workload identities such as GitHub Actions).
    Uri(String),
}

impl SignerIdentity {
    /// The SAN value as a string.
    pub fn as_str(&self) -> &str {
        match self {
            SignerIdentity::Email(value) | SignerIdentity::Uri(value) => value,
        }
    }
}

/// GitHub Actions claims Fulcio copies into extensions `1.3.6.1.4.1.57264.1.2`–`.6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubWorkflow {
    /// `.2`: the event that triggered the workflow, e.g. `push`.
    pub trigger: String,
    /// `.3`: the commit SHA.
    pub sha: String,
    /// `.4`: the workflow name.
    pub name: String,
    /// `.5`: `owner/repo`.
    pub repository: String,
    /// `.6`: the git ref, e.g. `refs/heads/main`.
    pub git_ref: String,
}

/// What to put in a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    /// The SAN.
    pub identity: SignerIdentity,
    /// The OIDC issuer URL (extension `.1`); `None` leaves the extension out.
    pub issuer: Option<String>,
    /// GitHub workflow extensions, when the identity is a workflow.
    pub github_workflow: Option<GithubWorkflow>,
    /// Start of validity (Fulcio: the moment of issuance).
    pub not_before: DateTime<Utc>,
    /// End of validity (Fulcio: ten minutes later).
    pub not_after: DateTime<Utc>,
}

impl LeafRequest {
    /// A certificate valid from a minute ago for ten minutes, like Fulcio issues.
    pub fn new(identity: SignerIdentity, issuer: &str) -> Self {
        let now = Utc::now();
        Self {
            identity,
            issuer: Some(issuer.to_owned()),
            github_workflow: None,
            not_before: now - TimeDelta::minutes(1),
            not_after: now + TimeDelta::minutes(10),
        }
    }

    /// Adds the GitHub workflow extensions.
    pub fn with_github_workflow(mut self, workflow: GithubWorkflow) -> Self {
        self.github_workflow = Some(workflow);
        self
    }

    /// Moves the validity window (e.g. into the past, for "certificate expired" tests).
    pub fn with_validity(mut self, not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }
}

/// A leaf certificate and the private key it certifies.
#[derive(Debug)]
pub struct LeafCertificate {
    /// PEM of the leaf.
    pub cert_pem: String,
    /// DER of the leaf.
    pub cert_der: Vec<u8>,
    /// The leaf's ECDSA P-256 key.
    pub key: KeyPair,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
}

/// A Fulcio-like CA: root → intermediate → leaves.
pub struct TestFulcio {
    root_der: Vec<u8>,
    root_pem: String,
    intermediate_der: Vec<u8>,
    intermediate_pem: String,
    issuer: Issuer<'static, rcgen::KeyPair>,
}

impl std::fmt::Debug for TestFulcio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestFulcio")
            .field("root_pem", &self.root_pem)
            .field("intermediate_pem", &self.intermediate_pem)
            .finish_non_exhaustive()
    }
}

impl TestFulcio {
    /// Generates a new root and intermediate (valid from yesterday for ten years). Every call
    /// makes an unrelated CA, which is how tests get an untrusted one.
    pub fn new() -> anyhow::Result<Self> {
        let now = Utc::now();
        let not_before = to_offset(now - TimeDelta::days(1))?;
        let not_after = to_offset(now + TimeDelta::days(3650))?;

        let root_key = rcgen::KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut root = CertificateParams::default();
        root.distinguished_name = name("testkit-fulcio-root");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        root.not_before = not_before;
        root.not_after = not_after;
        let root_cert = root.self_signed(&root_key).context("self-signing the root")?;
        let root_issuer = Issuer::new(root, root_key);

        let intermediate_key = rcgen::KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut intermediate = CertificateParams::default();
        intermediate.distinguished_name = name("testkit-fulcio-intermediate");
        intermediate.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        intermediate.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        intermediate.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        intermediate.use_authority_key_identifier_extension = true;
        intermediate.not_before = not_before;
        intermediate.not_after = not_after;
        let intermediate_cert = intermediate
            .signed_by(&intermediate_key, &root_issuer)
            .context("signing the intermediate")?;

        Ok(Self {
            root_der: root_cert.der().to_vec(),
            root_pem: root_cert.pem(),
            intermediate_der: intermediate_cert.der().to_vec(),
            intermediate_pem: intermediate_cert.pem(),
            issuer: Issuer::new(intermediate, intermediate_key),
        })
    }

    /// The self-signed root, PEM.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The self-signed root, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The intermediate that signs leaves, PEM.
    pub fn intermediate_pem(&self) -> &str {
        &self.intermediate_pem
    }

    /// The intermediate that signs leaves, DER.
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate_der
    }

    /// The chain cosign stores next to a leaf: intermediate then root, PEM.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.intermediate_pem, self.root_pem)
    }

    /// Issues a Fulcio-style leaf for `identity` from OIDC `issuer`.
    pub fn issue_for(&self, identity: SignerIdentity, issuer: &str) -> anyhow::Result<LeafCertificate> {
        self.issue(&LeafRequest::new(identity, issuer))
    }

    /// Issues a leaf: empty subject, SAN, KeyUsage digitalSignature, EKU codeSigning and the
    /// Sigstore extensions asked for.
    pub fn issue(&self, request: &LeafRequest) -> anyhow::Result<LeafCertificate> {
        let key = rcgen::KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![match &request.identity {
            SignerIdentity::Email(email) => SanType::Rfc822Name(Ia5String::try_from(email.as_str())?),
            SignerIdentity::Uri(uri) => SanType::URI(Ia5String::try_from(uri.as_str())?),
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_offset(request.not_before)?;
        params.not_after = to_offset(request.not_after)?;
        if let Some(issuer) = &request.issuer {
            params.custom_extensions.push(sigstore_extension(1, issuer));
        }
        if let Some(workflow) = &request.github_workflow {
            for (index, value) in [
                (2, &workflow.trigger),
                (3, &workflow.sha),
                (4, &workflow.name),
                (5, &workflow.repository),
                (6, &workflow.git_ref),
            ] {
                params.custom_extensions.push(sigstore_extension(index, value));
            }
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the leaf certificate")?;
        Ok(LeafCertificate {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key: KeyPair::from_pkcs8_der(&key.serialize_der(), SigningScheme::ECDSA_P256_SHA256_ASN1)?,
            not_before: request.not_before,
            not_after: request.not_after,
        })
    }
}

fn sigstore_extension(index: u64, value: &str) -> CustomExtension {
    let mut oid = SIGSTORE_OID_ARC.to_vec();
    oid.push(index);
    CustomExtension::from_oid_content(&oid, value.as_bytes().to_vec())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "testkit");
    name.push(DnType::CommonName, common_name);
    name
}

fn to_offset(time: DateTime<Utc>) -> anyhow::Result<time::OffsetDateTime> {
    Ok(time::OffsetDateTime::from_unix_timestamp(time.timestamp())?)
}
