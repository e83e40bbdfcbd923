//! `crypto/v1/is_certificate_trusted`: is a certificate valid and issued by a given chain?
//!
//! Same answers as Kubewarden's policy-evaluator: no chain means trusted; the last certificate
//! of the chain is the root; the leaf must allow code signing; `not_after` (RFC 3339) is the
//! time the certificate must still be valid at.

use kubewarden_policy_sdk::host_capabilities::crypto::{Certificate, CertificateEncoding};
use kubewarden_policy_sdk::host_capabilities::crypto_v1::{
    CertificateVerificationRequest, CertificateVerificationResponse,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};
use x509_cert::der::Decode as _;

/// DER value of the code-signing extended key usage, 1.3.6.1.5.5.7.3.3.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Answers a policy's certificate question; problems become `trusted: false` with a reason.
pub fn is_certificate_trusted(req: CertificateVerificationRequest) -> CertificateVerificationResponse {
    match check(req) {
        Ok(()) => CertificateVerificationResponse {
            trusted: true,
            reason: String::new(),
        },
        Err(reason) => CertificateVerificationResponse { trusted: false, reason },
    }
}

fn check(req: CertificateVerificationRequest) -> Result<(), String> {
    let der = to_der(&req.cert).map_err(|_| "Certificate is not a valid DER or PEM encoded certificate".to_string())?;
    let parsed = x509_cert::Certificate::from_der(der.as_ref())
        .map_err(|_| "Certificate is not a valid DER or PEM encoded certificate".to_string())?;
    let validity = &parsed.tbs_certificate.validity;
    let now = unix_now();
    let verification_time = match &req.not_after {
        Some(not_after) => {
            let at = chrono::DateTime::parse_from_rfc3339(not_after)
                .map_err(|_| "Timestamp not_after is not in RFC3339 format".to_string())?
                .timestamp();
            if (validity.not_after.to_unix_duration().as_secs() as i64) < at {
                return Err("Certificate is being used after its expiration date".to_string());
            }
            at
        }
        None => now,
    };
    if validity.not_before.to_unix_duration().as_secs() as i64 > now {
        return Err("Certificate is being used before its validity date".to_string());
    }
    let Some(chain) = req.cert_chain else {
        return Ok(());
    };
    let mut chain = chain
        .iter()
        .map(to_der)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "Certificate chain holds an invalid certificate".to_string())?;
    let Some(root) = chain.pop() else {
        return Err("Certificate chain is empty".to_string());
    };
    chains_with(&der, std::slice::from_ref(&root), &chain, verification_time, None).map_err(|e| match e {
        PathError::Unusable(reason) => reason,
        PathError::Rejected(webpki::Error::InvalidSignatureForPublicKey | webpki::Error::UnknownIssuer) => {
            "Certificate is not trusted by the provided cert chain".to_string()
        }
        PathError::Rejected(other) => format!("Certificate not trusted: {other}"),
    })
}

/// Whether `leaf` chains, for code signing, through a certificate authority's chain as a
/// sigstore trust root lists it (`certChain`: the intermediates, then the root last), every
/// certificate of the path valid at `time`: sigstore-go's `FulcioCertificateAuthority.Verify`,
/// which trusts the last certificate alone and verifies the path with Go's `x509` at the
/// observer's time (the "hybrid model" of the sigstore spec: a signature is valid if it has a
/// timestamp at which every certificate up to the root was valid).
///
/// webpki checks an intermediate's validity, CA flag, extended key usage and path length
/// constraint, but a trust anchor's none of them: the root's validity, usage, CA flag, key
/// usage and `pathLenConstraint` are checked here. Nor does webpki read an issuer's KeyUsage
/// but for revocation: Go's `CheckSignatureFrom` (cosign's `TrustedCert`, sigstore-go) refuses
/// a parent whose KeyUsage lacks keyCertSign, and so is an intermediate here (the path is not
/// taken). (Every certificate of the chain as an anchor, as before, let an intermediate
/// expired, not yet valid or made for TLS servers issue signing certificates.)
pub(crate) fn chains_through(leaf: &CertificateDer<'_>, chain: &[CertificateDer<'_>], time: i64) -> Result<(), String> {
    let Some((root, intermediates)) = chain.split_last() else {
        return Err("the certificate authority lists no certificate".to_string());
    };
    let at = super::rekor::show_time(time);
    // webpki enforces an intermediate's `pathLenConstraint` but not a trust anchor's; Go's
    // `x509` (cosign's `TrustedCert`, sigstore-go) enforces the root's too: at most that many
    // intermediates between it and the leaf. A path breaking it is refused and another tried.
    let root_path_len = root_path_len(root)?;
    // Why the last path refused for an intermediate's key usage was; webpki's error for it is
    // `IssuerNotCrlSigner`, which it gives for CRLs only (none are checked here).
    let refused_issuer = std::cell::RefCell::new(None::<String>);
    let path_allowed = |path: &webpki::VerifiedPath<'_>| {
        if let Some(most) = root_path_len
            && path.intermediate_certificates().count() > usize::from(most)
        {
            return Err(webpki::Error::PathLenConstraintViolated);
        }
        for intermediate in path.intermediate_certificates() {
            if let Err(reason) = may_sign_certificates(intermediate.der().as_ref(), "an intermediate certificate") {
                *refused_issuer.borrow_mut() = Some(reason);
                return Err(webpki::Error::IssuerNotCrlSigner);
            }
        }
        Ok(())
    };
    chains_with(
        leaf,
        std::slice::from_ref(root),
        intermediates,
        time,
        Some(&path_allowed),
    )
    .map_err(|e| match e {
        PathError::Unusable(reason) => reason,
        PathError::Rejected(webpki::Error::IssuerNotCrlSigner) => refused_issuer
            .borrow_mut()
            .take()
            .unwrap_or_else(|| "an issuing certificate of its chain may not sign certificates".to_string()),
        PathError::Rejected(webpki::Error::PathLenConstraintViolated) => {
            "its chain has more intermediate certificates than a certificate of it allows (pathLenConstraint)"
                .to_string()
        }
        PathError::Rejected(webpki::Error::InvalidSignatureForPublicKey | webpki::Error::UnknownIssuer) => {
            "it was not issued through this certificate authority's chain".to_string()
        }
        PathError::Rejected(webpki::Error::CertExpired { .. }) => {
            format!("it or a certificate of its chain had expired at {at}")
        }
        PathError::Rejected(webpki::Error::CertNotValidYet { .. }) => {
            format!("it or a certificate of its chain was not valid yet at {at}")
        }
        PathError::Rejected(webpki::Error::RequiredEkuNotFoundContext(context)) => {
            format!("it or a certificate of its chain does not allow code signing: {context:?}")
        }
        PathError::Rejected(other) => format!("the path is not valid: {other:?}"),
    })?;
    root_usable_at(root, time)
}

/// The root's `pathLenConstraint` (basic constraints), if any: the most intermediate
/// certificates it allows below it.
fn root_path_len(root: &CertificateDer<'_>) -> Result<Option<u8>, String> {
    let parsed = x509_cert::Certificate::from_der(root.as_ref())
        .map_err(|e| format!("Certificate chain holds an unusable root: {e}"))?;
    let constraints = parsed
        .tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|e| e.extn_id == x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.29.19"))
        .map(|e| x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()))
        .transpose()
        .map_err(|e| format!("Certificate chain holds an unusable root: {e}"))?;
    Ok(constraints.and_then(|c| c.path_len_constraint))
}

/// The checks webpki leaves out for a trust anchor, as Go's `x509.Certificate.Verify` makes
/// them for the root of a chain: valid at `time`, and an extended key usage, if any, that
/// allows code signing (or any usage).
fn root_usable_at(root: &CertificateDer<'_>, time: i64) -> Result<(), String> {
    /// DER value of `anyExtendedKeyUsage`, 2.5.29.37.0.
    const EKU_ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
    let parsed = x509_cert::Certificate::from_der(root.as_ref())
        .map_err(|e| format!("Certificate chain holds an unusable root: {e}"))?;
    let validity = &parsed.tbs_certificate.validity;
    let (not_before, not_after) = (
        validity.not_before.to_unix_duration().as_secs(),
        validity.not_after.to_unix_duration().as_secs(),
    );
    let at = u64::try_from(time).unwrap_or(0);
    if at < not_before || at > not_after {
        return Err(format!(
            "the root certificate was not valid at {}",
            super::rekor::show_time(time)
        ));
    }
    let usages = parsed
        .tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|e| e.extn_id == x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.29.37"))
        .map(|e| x509_cert::ext::pkix::ExtendedKeyUsage::from_der(e.extn_value.as_bytes()))
        .transpose()
        .map_err(|e| format!("Certificate chain holds an unusable root: {e}"))?;
    let allows_signing = usages.is_none_or(|usages| {
        usages.0.iter().any(|oid| {
            let der = oid.as_bytes();
            der == EKU_CODE_SIGNING || der == EKU_ANY
        })
    });
    if !allows_signing {
        return Err("the root certificate does not allow code signing".to_string());
    }
    may_sign_certificates(root.as_ref(), "the root certificate")
}

/// What Go's `x509.Certificate.CheckSignatureFrom` asks of a certificate issuing another: a v3
/// certificate must say it is a CA (basicConstraints cA=true; a v1 or v2 certificate, which
/// cannot, need not), and a KeyUsage, when present, must allow keyCertSign. (Go reads a KeyUsage
/// with no bit set as none; such an extension, which RFC 5280 forbids, is refused here.)
/// `which` names the certificate in the answer, with its subject.
fn may_sign_certificates(der: &[u8], which: &str) -> Result<(), String> {
    use x509_cert::der::asn1::ObjectIdentifier;
    let parsed = x509_cert::Certificate::from_der(der).map_err(|e| format!("{which} is unusable: {e}"))?;
    let tbs = &parsed.tbs_certificate;
    let named = format!("{which} ({})", tbs.subject);
    let extension = |oid: &str| {
        let oid = ObjectIdentifier::new_unwrap(oid);
        tbs.extensions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(move |e| e.extn_id == oid)
    };
    let constraints = extension("2.5.29.19")
        .map(|e| x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()))
        .transpose()
        .map_err(|e| format!("{named} has unreadable basic constraints: {e}"))?;
    match constraints {
        Some(constraints) if !constraints.ca => {
            return Err(format!(
                "{named} is not a certificate authority: its basic constraints say cA=false"
            ));
        }
        None if tbs.version == x509_cert::Version::V3 => {
            return Err(format!(
                "{named} is not a certificate authority: it is a v3 certificate without basic constraints"
            ));
        }
        _ => {}
    }
    let usage = extension("2.5.29.15")
        .map(|e| x509_cert::ext::pkix::KeyUsage::from_der(e.extn_value.as_bytes()))
        .transpose()
        .map_err(|e| format!("{named} has an unreadable key usage: {e}"))?;
    if usage.is_some_and(|usage| !usage.key_cert_sign()) {
        return Err(format!(
            "{named} may not sign certificates: its key usage lacks keyCertSign"
        ));
    }
    Ok(())
}

/// Why [`chains_with`] found no path.
enum PathError {
    /// The leaf or a root cannot be read.
    Unusable(String),
    /// webpki's answer.
    Rejected(webpki::Error),
}

/// A check of a path webpki found, beside its own.
type PathCheck<'a> = dyn Fn(&webpki::VerifiedPath<'_>) -> Result<(), webpki::Error> + 'a;

/// webpki's path verification of `leaf`, for code signing, at `time`; a path `verify_path`
/// refuses is not taken (another is tried).
fn chains_with(
    leaf: &CertificateDer<'_>,
    roots: &[CertificateDer<'_>],
    intermediates: &[CertificateDer<'_>],
    time: i64,
    verify_path: Option<&PathCheck<'_>>,
) -> Result<(), PathError> {
    let end_entity = webpki::EndEntityCert::try_from(leaf)
        .map_err(|_| PathError::Unusable("Certificate is not a valid end-entity certificate".to_string()))?;
    let anchors = roots
        .iter()
        .map(|root| webpki::anchor_from_trusted_cert(root).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PathError::Unusable(format!("Certificate chain holds an unusable root: {e}")))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(u64::try_from(time).unwrap_or(0)));
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            time,
            webpki::KeyUsage::required(EKU_CODE_SIGNING),
            None,
            verify_path,
        )
        .map(|_| ())
        .map_err(PathError::Rejected)
}

fn to_der(certificate: &Certificate) -> Result<CertificateDer<'static>, String> {
    match certificate.encoding {
        CertificateEncoding::Der => Ok(CertificateDer::from(certificate.data.clone())),
        CertificateEncoding::Pem => CertificateDer::from_pem_slice(&certificate.data).map_err(|e| e.to_string()),
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};

    struct Chain {
        leaf_pem: String,
        intermediate_pem: String,
        root_pem: String,
    }

    fn ca_params(name: &str) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        // Fulcio's CAs carry the code-signing usage too; webpki checks it along the path.
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params
    }

    /// A root, an intermediate and a code-signing leaf valid from `valid.0` to `valid.1` (years).
    fn chain(valid: (i32, i32)) -> Chain {
        let root = CertifiedIssuer::self_signed(ca_params("root"), KeyPair::generate().expect("key")).expect("root");
        let intermediate =
            CertifiedIssuer::signed_by(ca_params("intermediate"), KeyPair::generate().expect("key"), &root)
                .expect("intermediate");
        let mut leaf = CertificateParams::new(vec!["signer.example".to_string()]).expect("params");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        leaf.not_before = rcgen::date_time_ymd(valid.0, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(valid.1, 1, 1);
        let leaf = leaf
            .signed_by(&KeyPair::generate().expect("key"), &intermediate)
            .expect("leaf");
        Chain {
            leaf_pem: leaf.pem(),
            intermediate_pem: intermediate.pem(),
            root_pem: root.pem(),
        }
    }

    fn pem(text: &str) -> Certificate {
        Certificate {
            encoding: CertificateEncoding::Pem,
            data: text.as_bytes().to_vec(),
        }
    }

    fn request(leaf: &str, chain: Option<Vec<&str>>, not_after: Option<String>) -> CertificateVerificationRequest {
        CertificateVerificationRequest {
            cert: pem(leaf),
            cert_chain: chain.map(|c| c.into_iter().map(pem).collect()),
            not_after,
        }
    }

    #[test]
    fn leaf_issued_by_the_chain_is_trusted() {
        let c = chain((2020, 2090));
        let answer = is_certificate_trusted(request(&c.leaf_pem, Some(vec![&c.intermediate_pem, &c.root_pem]), None));
        assert_eq!(
            answer,
            CertificateVerificationResponse {
                trusted: true,
                reason: String::new()
            }
        );
    }

    #[test]
    fn leaf_of_another_chain_is_not_trusted() {
        let c = chain((2020, 2090));
        let other = chain((2020, 2090));
        let answer = is_certificate_trusted(request(
            &c.leaf_pem,
            Some(vec![&other.intermediate_pem, &other.root_pem]),
            None,
        ));
        assert!(!answer.trusted);
        assert_eq!(answer.reason, "Certificate is not trusted by the provided cert chain");
    }

    #[test]
    fn no_chain_means_trusted_and_dates_are_checked() {
        let c = chain((2020, 2090));
        assert!(is_certificate_trusted(request(&c.leaf_pem, None, None)).trusted);
        let future = chain((2090, 2095));
        let answer = is_certificate_trusted(request(&future.leaf_pem, None, None));
        assert_eq!(answer.reason, "Certificate is being used before its validity date");
        let expired = chain((2000, 2001));
        let answer = is_certificate_trusted(request(&expired.leaf_pem, None, Some(chrono::Utc::now().to_rfc3339())));
        assert_eq!(answer.reason, "Certificate is being used after its expiration date");
    }

    /// A code-signing leaf issued through `intermediate` by `root`, as `chains_through` takes
    /// them: the leaf, then the chain with the root last.
    fn issued_through(
        root: CertificateParams,
        intermediate: CertificateParams,
    ) -> (CertificateDer<'static>, Vec<CertificateDer<'static>>) {
        let root = CertifiedIssuer::self_signed(root, KeyPair::generate().expect("key")).expect("root");
        let intermediate =
            CertifiedIssuer::signed_by(intermediate, KeyPair::generate().expect("key"), &root).expect("intermediate");
        let mut leaf = CertificateParams::new(vec!["signer.example".to_string()]).expect("params");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let leaf = leaf
            .signed_by(&KeyPair::generate().expect("key"), &intermediate)
            .expect("leaf");
        (leaf.der().clone(), vec![intermediate.der().clone(), root.der().clone()])
    }

    fn with_key_usages(mut params: CertificateParams, usages: Vec<rcgen::KeyUsagePurpose>) -> CertificateParams {
        params.key_usages = usages;
        params
    }

    #[track_caller]
    fn refusal(root: CertificateParams, intermediate: CertificateParams) -> String {
        let (leaf, chain) = issued_through(root, intermediate);
        chains_through(&leaf, &chain, unix_now()).expect_err("refused")
    }

    /// The control of the refusals below: CAs allowing keyCertSign, or stating no key usage
    /// (Go's `CheckSignatureFrom` asks nothing then), issue signing certificates.
    #[test]
    fn certificate_authorities_allowed_to_sign_certificates_issue_leaves() {
        let (leaf, chain) = issued_through(ca_params("root"), ca_params("intermediate"));
        chains_through(&leaf, &chain, unix_now()).expect("trusted");
        let (leaf, chain) = issued_through(
            with_key_usages(ca_params("root"), vec![]),
            with_key_usages(ca_params("intermediate"), vec![]),
        );
        chains_through(&leaf, &chain, unix_now()).expect("trusted without key usages");
    }

    /// An intermediate whose KeyUsage lacks keyCertSign may not issue (webpki reads an
    /// issuer's KeyUsage for CRLs only; Go's `CheckSignatureFrom` refuses it).
    #[test]
    fn an_intermediate_not_allowed_to_sign_certificates_is_refused() {
        let reason = refusal(
            ca_params("root"),
            with_key_usages(
                ca_params("intermediate"),
                vec![rcgen::KeyUsagePurpose::DigitalSignature],
            ),
        );
        assert_eq!(
            reason,
            "an intermediate certificate (CN=intermediate) may not sign certificates: its key usage lacks keyCertSign"
        );
    }

    /// A v3 root must say it is a CA, and may not exclude keyCertSign: webpki checks nothing of
    /// a trust anchor's, Go's `CheckSignatureFrom` both.
    #[test]
    fn a_root_that_is_no_certificate_authority_or_may_not_sign_certificates_is_refused() {
        let mut no_constraints = ca_params("root");
        no_constraints.is_ca = IsCa::NoCa;
        assert_eq!(
            refusal(no_constraints, ca_params("intermediate")),
            "the root certificate (CN=root) is not a certificate authority: it is a v3 certificate without basic constraints"
        );
        let mut not_ca = ca_params("root");
        not_ca.is_ca = IsCa::ExplicitNoCa;
        assert_eq!(
            refusal(not_ca, ca_params("intermediate")),
            "the root certificate (CN=root) is not a certificate authority: its basic constraints say cA=false"
        );
        let no_cert_sign = with_key_usages(
            ca_params("root"),
            vec![
                rcgen::KeyUsagePurpose::DigitalSignature,
                rcgen::KeyUsagePurpose::CrlSign,
            ],
        );
        assert_eq!(
            refusal(no_cert_sign, ca_params("intermediate")),
            "the root certificate (CN=root) may not sign certificates: its key usage lacks keyCertSign"
        );
    }

    #[test]
    fn garbage_is_reported_not_panicked_on() {
        let answer = is_certificate_trusted(request("not a certificate", None, None));
        assert!(!answer.trusted);
        assert_eq!(
            answer.reason,
            "Certificate is not a valid DER or PEM encoded certificate"
        );
        let c = chain((2020, 2090));
        let answer = is_certificate_trusted(request(&c.leaf_pem, None, Some("yesterday".into())));
        assert_eq!(answer.reason, "Timestamp not_after is not in RFC3339 format");
    }
}
