//! A test Fulcio: a P-256 root CA and intermediate issuing short-lived code-signing leaf
//! certificates with the Sigstore OIDC extensions, like <https://fulcio.sigstore.dev>, each
//! carrying a real embedded SCT (RFC 6962 precertificate timestamp) signed by the Fulcio's own
//! test certificate transparency log.

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData as _, SanType, SerialNumber,
};
use sha2::{Digest as _, Sha256};
use sigstore::crypto::SigningScheme;

use crate::keys::KeyPair;

/// Sigstore OID arc `1.3.6.1.4.1.57264.1`; `.1` is the OIDC issuer (raw bytes, what
/// sigstore-rs 0.15 reads), `.2`–`.6` the GitHub workflow trigger, sha, name, repository, ref.
const SIGSTORE_OID_ARC: [u64; 8] = [1, 3, 6, 1, 4, 1, 57264, 1];

/// `1.3.6.1.4.1.11129.2.4.2`: the embedded SCT list extension.
const SCT_LIST_OID: [u64; 9] = [1, 3, 6, 1, 4, 1, 11129, 2, 4];

/// Which SCT the leaf embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SctMode {
    /// A valid SCT from the Fulcio's CT log (what Fulcio does).
    #[default]
    Valid,
    /// No SCT extension at all.
    Missing,
    /// The Fulcio's log's SCT with one signature byte flipped.
    Corrupted,
    /// A valid SCT from a CT log no trust root lists.
    UnknownLog,
}

/// Which extension carries the OIDC issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IssuerExtension {
    /// `1.3.6.1.4.1.57264.1.1`, raw bytes (Fulcio's deprecated v1 form).
    #[default]
    V1,
    /// `1.3.6.1.4.1.57264.1.8`, a DER UTF8String (Fulcio's current form) only.
    V2,
}

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
    /// The embedded SCT.
    pub sct: SctMode,
    /// Where the issuer goes.
    pub issuer_extension: IssuerExtension,
    /// The leaf's extended key usages: codeSigning, as Fulcio issues. Empty leaves the
    /// extension out (a leaf allowed for no particular use).
    pub extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
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
            sct: SctMode::Valid,
            issuer_extension: IssuerExtension::V1,
            extended_key_usages: vec![ExtendedKeyUsagePurpose::CodeSigning],
        }
    }

    /// Chooses the embedded SCT (missing, corrupted, from an unknown log).
    pub fn with_sct(mut self, sct: SctMode) -> Self {
        self.sct = sct;
        self
    }

    /// Puts the issuer in the v2 extension only.
    pub fn with_issuer_extension(mut self, extension: IssuerExtension) -> Self {
        self.issuer_extension = extension;
        self
    }

    /// Replaces the leaf's extended key usages (codeSigning by default), e.g. with serverAuth
    /// only, or with none to leave the extension out, for "not a code-signing certificate"
    /// tests.
    pub fn with_extended_key_usages(mut self, usages: Vec<ExtendedKeyUsagePurpose>) -> Self {
        self.extended_key_usages = usages;
        self
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
    intermediate_spki: Vec<u8>,
    issuer: Issuer<'static, rcgen::KeyPair>,
    ct_log: KeyPair,
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
            intermediate_spki: intermediate_key.subject_public_key_info(),
            issuer: Issuer::new(intermediate, intermediate_key),
            ct_log: KeyPair::ecdsa_p256()?,
        })
    }

    /// The public key (SubjectPublicKeyInfo DER) of this Fulcio's certificate transparency log.
    pub fn ct_log_public_key_der(&self) -> &[u8] {
        self.ct_log.public_key_der()
    }

    /// The CT log id: SHA-256 of its public key DER.
    pub fn ct_log_id_raw(&self) -> Vec<u8> {
        Sha256::digest(self.ct_log.public_key_der()).to_vec()
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

    /// Issues a leaf: empty subject, SAN, KeyUsage digitalSignature, the extended key usages
    /// asked for (codeSigning unless the request changed them) and the Sigstore extensions
    /// asked for.
    pub fn issue(&self, request: &LeafRequest) -> anyhow::Result<LeafCertificate> {
        self.issue_with(request, rcgen::KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
    }

    /// Issues a leaf as [`TestFulcio::issue`] does, certifying an existing ECDSA P-256 `key`
    /// (Fulcio certifies whatever key the client proves it holds, so two leaves may share one:
    /// negative tests swap such leaves, which both verify the same signatures).
    pub fn issue_for_key(&self, request: &LeafRequest, key: &KeyPair) -> anyhow::Result<LeafCertificate> {
        let key = rcgen::KeyPair::from_pem(&key.private_key_pem()?).context("reading a P-256 private key")?;
        self.issue_with(request, key)
    }

    fn issue_with(&self, request: &LeafRequest, key: rcgen::KeyPair) -> anyhow::Result<LeafCertificate> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![match &request.identity {
            SignerIdentity::Email(email) => SanType::Rfc822Name(Ia5String::try_from(email.as_str())?),
            SignerIdentity::Uri(uri) => SanType::URI(Ia5String::try_from(uri.as_str())?),
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = request.extended_key_usages.clone();
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_offset(request.not_before)?;
        params.not_after = to_offset(request.not_after)?;
        if let Some(issuer) = &request.issuer {
            params.custom_extensions.push(match request.issuer_extension {
                IssuerExtension::V1 => sigstore_extension(1, issuer),
                IssuerExtension::V2 => {
                    let mut oid = SIGSTORE_OID_ARC.to_vec();
                    oid.push(8);
                    CustomExtension::from_oid_content(&oid, der_utf8_string(issuer))
                }
            });
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
        // The SCT signs the precertificate's TBS; the final certificate is the same TBS (same
        // serial, key, validity, extensions) plus the SCT list extension, added last.
        let mut serial = rand_serial();
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from(serial));
        let precert = params
            .signed_by(&key, &self.issuer)
            .context("signing the precertificate")?;
        let log = match request.sct {
            SctMode::Missing => None,
            SctMode::UnknownLog => Some(KeyPair::ecdsa_p256()?),
            SctMode::Valid | SctMode::Corrupted => None,
        };
        let cert = if request.sct == SctMode::Missing {
            precert
        } else {
            let log = log.as_ref().unwrap_or(&self.ct_log);
            let tbs = first_der_element(der_contents(precert.der()).context("precertificate DER")?)
                .context("precertificate TBS")?;
            let mut sct = self.sct(log, tbs, Utc::now().timestamp_millis())?;
            if request.sct == SctMode::Corrupted {
                let last = sct.len() - 1;
                sct[last] ^= 0x01;
            }
            let mut list = u16::try_from(sct.len())?.to_be_bytes().to_vec();
            list.extend_from_slice(&sct);
            let mut tls = u16::try_from(list.len())?.to_be_bytes().to_vec();
            tls.extend_from_slice(&list);
            let mut oid = SCT_LIST_OID.to_vec();
            oid.push(2);
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&oid, der_octet_string(&tls)));
            params
                .signed_by(&key, &self.issuer)
                .context("signing the leaf certificate")?
        };
        Ok(LeafCertificate {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key: KeyPair::from_pkcs8_der(&key.serialize_der(), SigningScheme::ECDSA_P256_SHA256_ASN1)?,
            not_before: request.not_before,
            not_after: request.not_after,
        })
    }
}

impl TestFulcio {
    /// One serialized v1 SCT (RFC 6962 §3.2) over the precertificate `tbs`.
    fn sct(&self, log: &KeyPair, tbs: &[u8], timestamp_ms: i64) -> anyhow::Result<Vec<u8>> {
        let timestamp = u64::try_from(timestamp_ms)?.to_be_bytes();
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&timestamp);
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(&Sha256::digest(&self.intermediate_spki));
        signed.extend_from_slice(&u32::try_from(tbs.len())?.to_be_bytes()[1..]);
        signed.extend_from_slice(tbs);
        signed.extend_from_slice(&0u16.to_be_bytes());
        let signature = log.sign(&signed)?;
        let mut sct = vec![0u8];
        sct.extend_from_slice(&Sha256::digest(log.public_key_der()));
        sct.extend_from_slice(&timestamp);
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&u16::try_from(signature.len())?.to_be_bytes());
        sct.extend_from_slice(&signature);
        Ok(sct)
    }
}

fn rand_serial() -> Vec<u8> {
    // Unique enough for tests: a hash of the time and a counter.
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}-{}-{}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    Sha256::digest(seed.as_bytes())[..16].to_vec()
}

/// Length-prefixed DER header of `tag` around `content`.
fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn der_octet_string(content: &[u8]) -> Vec<u8> {
    der_wrap(0x04, content)
}

fn der_utf8_string(text: &str) -> Vec<u8> {
    der_wrap(0x0c, text.as_bytes())
}

/// (header length, content length) of the DER element at the start of `der`.
fn der_header(der: &[u8]) -> Option<(usize, usize)> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let count = usize::from(first & 0x7f);
    let bytes = der.get(2..2 + count)?;
    let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some((2 + count, len))
}

/// The contents of the DER element at the start of `der`.
fn der_contents(der: &[u8]) -> Option<&[u8]> {
    let (header, len) = der_header(der)?;
    der.get(header..header + len)
}

/// The whole first DER element (header included) of `der`.
fn first_der_element(der: &[u8]) -> Option<&[u8]> {
    let (header, len) = der_header(der)?;
    der.get(..header + len)
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
