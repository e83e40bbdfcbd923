//! A Fulcio signing certificate: chained to a CA of the trust root that was valid when the
//! signature was logged, valid itself at that time, and read for the signer's identity.
//!
//! sigstore-rs 0.15 (`CertificateSignature::from_certificate`) chains the certificate at its own
//! `notBefore` against every CA ever listed (`validFor` ignored) and reads the issuer only from
//! the v1 extension `1.3.6.1.4.1.57264.1.1` as raw bytes. Here the v2 extension `.1.8` (a DER
//! UTF8String) is preferred, as cosign does, and the v1 one is the fallback.

use rustls::pki_types::CertificateDer;
use sigstore::cosign::signature_layers::{CertificateSignature, CertificateSubject};
use sigstore::crypto::CosignVerificationKey;
use x509_cert::der::asn1::{ObjectIdentifier, Utf8StringRef};
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::rekor::show_time;
use crate::trust::TrustRoot;

const OID_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const OID_WORKFLOW_TRIGGER: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.2");
const OID_WORKFLOW_SHA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.3");
const OID_WORKFLOW_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.4");
const OID_WORKFLOW_REPOSITORY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.5");
const OID_WORKFLOW_REF: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.6");
const OID_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");

/// A certificate that chained to the trust root at the signing time.
pub struct TrustedCertificate {
    /// The leaf, parsed.
    pub leaf: x509_cert::Certificate,
    /// The CA certificate that issued the leaf.
    pub issuer: x509_cert::Certificate,
}

/// Chains `leaf_der` to a Fulcio CA of `trust` valid at `time` (Unix seconds); the leaf and
/// every certificate of the CA's chain up to its root (the last it lists, the only one trusted
/// as such) must be valid at `time` too.
pub fn chain_at(leaf_der: &[u8], trust: &TrustRoot, time: i64) -> Result<TrustedCertificate, String> {
    let untrusted =
        |reason: String| format!("signing certificate is not trusted by the Fulcio CAs of the trust root: {reason}");
    let leaf = x509_cert::Certificate::from_der(leaf_der).map_err(|e| untrusted(format!("not a certificate: {e}")))?;
    let leaf_issuer = leaf
        .tbs_certificate
        .issuer
        .to_der()
        .map_err(|e| untrusted(e.to_string()))?;
    let mut reasons = Vec::new();
    let mut outside_validity = Vec::new();
    for (index, ca) in trust.certificate_authorities().iter().enumerate() {
        let chain: Vec<CertificateDer<'_>> = ca
            .certificates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        if let Err(reason) = super::certificate::chains_through(&CertificateDer::from(leaf_der), &chain, time) {
            reasons.push(reason);
            continue;
        }
        if !ca.valid_for.contains(time) {
            outside_validity.push(format!(
                "it was logged at {}, outside the validity of certificate authority #{} ({})",
                show_time(time),
                index + 1,
                ca.valid_for
            ));
            continue;
        }
        let issuer = ca.certificates.iter().find_map(|der| {
            let cert = x509_cert::Certificate::from_der(der).ok()?;
            let subject = cert.tbs_certificate.subject.to_der().ok()?;
            (subject == leaf_issuer).then_some(cert)
        });
        if let Some(issuer) = issuer {
            return Ok(TrustedCertificate { leaf, issuer });
        }
        reasons.push("the issuing CA certificate is not in the trust root".to_string());
    }
    if let Some(reason) = outside_validity.into_iter().next() {
        return Err(untrusted(reason));
    }
    reasons.dedup();
    Err(untrusted(reasons.join("; ")))
}

/// The identity sigstore-rs' constraints read, taken from the certificate.
pub fn certificate_signature(leaf: &x509_cert::Certificate) -> Result<CertificateSignature, String> {
    let spki = leaf
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("signing certificate key cannot be encoded: {e}"))?;
    let verification_key = CosignVerificationKey::try_from_der(&spki)
        .map_err(|e| format!("signing certificate key is not supported: {e}"))?;
    Ok(CertificateSignature {
        verification_key,
        subject: subject(leaf)?,
        issuer: issuer(leaf)?,
        github_workflow_trigger: raw_extension(leaf, OID_WORKFLOW_TRIGGER)?,
        github_workflow_sha: raw_extension(leaf, OID_WORKFLOW_SHA)?,
        github_workflow_name: raw_extension(leaf, OID_WORKFLOW_NAME)?,
        github_workflow_repository: raw_extension(leaf, OID_WORKFLOW_REPOSITORY)?,
        github_workflow_ref: raw_extension(leaf, OID_WORKFLOW_REF)?,
    })
}

/// The OIDC issuer: the v2 extension (DER UTF8String) when present, else the v1 one (raw).
fn issuer(leaf: &x509_cert::Certificate) -> Result<Option<String>, String> {
    if let Some(value) = extension_value(leaf, OID_ISSUER_V2) {
        let text = Utf8StringRef::from_der(value)
            .map_err(|e| format!("signing certificate's issuer extension (v2) is not a UTF8String: {e}"))?;
        return Ok(Some(text.as_str().to_string()));
    }
    raw_extension(leaf, OID_ISSUER_V1)
}

fn extension_value(leaf: &x509_cert::Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    leaf.tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

/// A v1 Sigstore extension: the value's bytes are the UTF-8 text.
fn raw_extension(leaf: &x509_cert::Certificate, oid: ObjectIdentifier) -> Result<Option<String>, String> {
    extension_value(leaf, oid)
        .map(|value| {
            String::from_utf8(value.to_vec()).map_err(|_| format!("signing certificate's extension {oid} is not UTF-8"))
        })
        .transpose()
}

/// The first email or URI of the Subject Alternative Name, as sigstore-rs reads it.
fn subject(leaf: &x509_cert::Certificate) -> Result<CertificateSubject, String> {
    let (_, san) = leaf
        .tbs_certificate
        .get::<SubjectAltName>()
        .map_err(|e| format!("signing certificate's SAN is malformed: {e}"))?
        .ok_or("signing certificate has no SAN")?;
    for name in &san.0 {
        match name {
            GeneralName::Rfc822Name(email) => return Ok(CertificateSubject::Email(email.to_string())),
            GeneralName::UniformResourceIdentifier(uri) => return Ok(CertificateSubject::Uri(uri.to_string())),
            _ => {}
        }
    }
    Err("signing certificate's SAN has neither an email nor a URI".to_string())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    };

    use super::chain_at;
    use crate::trust::TrustRoot;

    /// 2026-06-01T00:00:00Z, when the signatures below were logged.
    const LOGGED: i64 = 1_780_272_000;

    fn ca(name: &str, years: (i32, i32), usages: Vec<ExtendedKeyUsagePurpose>) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.extended_key_usages = usages;
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        params
    }

    /// A trust root whose one CA lists `[intermediate, root]` (valid for every time), and a
    /// code-signing leaf valid in 2026 issued by the intermediate.
    fn world(root: CertificateParams, intermediate: CertificateParams) -> (TrustRoot, Vec<u8>) {
        let root = CertifiedIssuer::self_signed(root, KeyPair::generate().expect("key")).expect("root");
        let intermediate =
            CertifiedIssuer::signed_by(intermediate, KeyPair::generate().expect("key"), &root).expect("intermediate");
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
        leaf.subject_alt_names = vec![rcgen::SanType::Rfc822Name("dev@example.com".try_into().expect("email"))];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        leaf.not_before = rcgen::date_time_ymd(2026, 5, 31);
        leaf.not_after = rcgen::date_time_ymd(2026, 6, 2);
        let leaf = leaf
            .signed_by(&KeyPair::generate().expect("key"), &intermediate)
            .expect("leaf");
        let trust = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [],
            "ctlogs": [],
            "certificateAuthorities": [{
                "subject": {"organization": "test", "commonName": "test"},
                "uri": "https://fulcio.test.invalid",
                "certChain": {"certificates": [
                    {"rawBytes": BASE64.encode(intermediate.der())},
                    {"rawBytes": BASE64.encode(root.der())},
                ]},
                "validFor": {"start": "2000-01-01T00:00:00Z"},
            }],
        });
        (
            TrustRoot::from_json(&trust.to_string()).expect("trust root"),
            leaf.der().to_vec(),
        )
    }

    fn code_signing() -> Vec<ExtendedKeyUsagePurpose> {
        vec![ExtendedKeyUsagePurpose::CodeSigning]
    }

    #[test]
    fn a_chain_valid_when_logged_is_trusted() {
        let (trust, leaf) = world(
            ca("root", (2020, 2090), vec![]),
            ca("intermediate", (2020, 2090), code_signing()),
        );
        chain_at(&leaf, &trust, LOGGED).expect("trusted");
        // A root allowing code signing, or any usage, is a root too.
        let (trust, leaf) = world(
            ca("root", (2020, 2090), vec![ExtendedKeyUsagePurpose::Any]),
            ca("intermediate", (2020, 2090), code_signing()),
        );
        chain_at(&leaf, &trust, LOGGED).expect("trusted");
    }

    /// A forger holding the key of a certificate the trust root lists, used outside what that
    /// certificate allows: every one is refused, as sigstore-go refuses it. Each was trusted
    /// while every listed certificate was a trust anchor.
    #[test]
    fn a_ca_certificate_outside_its_validity_or_usage_issues_nothing() {
        for (case, root, intermediate, expected) in [
            (
                "an intermediate expired years before",
                ca("root", (2020, 2090), vec![]),
                ca("intermediate", (2020, 2021), code_signing()),
                "it or a certificate of its chain had expired at 2026-06-01T00:00:00Z",
            ),
            (
                "an intermediate not yet valid",
                ca("root", (2020, 2090), vec![]),
                ca("intermediate", (2080, 2090), code_signing()),
                "it or a certificate of its chain was not valid yet at 2026-06-01T00:00:00Z",
            ),
            (
                "an intermediate for TLS servers",
                ca("root", (2020, 2090), vec![]),
                ca("intermediate", (2020, 2090), vec![ExtendedKeyUsagePurpose::ServerAuth]),
                "it or a certificate of its chain does not allow code signing",
            ),
            (
                "an expired root",
                ca("root", (2020, 2021), vec![]),
                ca("intermediate", (2020, 2090), code_signing()),
                "the root certificate was not valid at 2026-06-01T00:00:00Z",
            ),
            (
                "a root not yet valid",
                ca("root", (2080, 2090), vec![]),
                ca("intermediate", (2020, 2090), code_signing()),
                "the root certificate was not valid",
            ),
            (
                "a root for TLS servers",
                ca("root", (2020, 2090), vec![ExtendedKeyUsagePurpose::ServerAuth]),
                ca("intermediate", (2020, 2090), code_signing()),
                "the root certificate does not allow code signing",
            ),
        ] {
            let (trust, leaf) = world(root, intermediate);
            let error = chain_at(&leaf, &trust, LOGGED)
                .err()
                .unwrap_or_else(|| panic!("{case}: trusted"));
            assert!(
                error.starts_with("signing certificate is not trusted by the Fulcio CAs of the trust root")
                    && error.contains(expected),
                "{case}: {error}"
            );
        }
    }
}
