//! `certificate` authorities are checked at the time their signature is known to have existed:
//! the integration time of the layer's bound Rekor bundle, else now (cosign's `CheckExpiry`).
//!
//! sigstore-rs 0.15's `CertificateVerifier` (what a stock Kubewarden host uses) checked a
//! `certificate_chain` when the request was read, at the current time, every chain certificate a
//! trust anchor; and without a bundle it accepted a certificate that had expired. Each test
//! below failed that way:
//!
//! * a certificate expired since, with a bundle logged inside its validity and its chain: was
//!   refused (the chain checked now), verifies;
//! * a chain whose last certificate is not the intermediate's issuer: the intermediate was an
//!   anchor of its own, now only the last certificate is (a chain that cannot have issued the
//!   certificate is refused when the request is read, as before);
//! * no bundle (`requireRekorBundle: false`) and a certificate expired an hour ago: was accepted,
//!   is refused, as cosign refuses it without a signed timestamp;
//! * an intermediate expired before the signature was logged, the leaf still valid: was
//!   accepted (an anchor's validity is not checked), is refused;
//! * a root whose `pathLenConstraint` allows fewer intermediates than the path has (0, two
//!   intermediates, no bundle): was accepted (webpki reads no anchor's constraints; Go's `x509`
//!   enforces the root's), is refused.
//!
//! Every refusal has a control built the same way but for the forged property. The trust root
//! holds only the Rekor key (all a `certificate` request needs).

mod verify_support;

use chrono::{TimeDelta, Utc};
use cip::trust::TrustRoot;
use cip::verify::{VerificationRequest, Verifier};
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use testkit::{LeafCertificate, LeafRequest, SignerIdentity, TestFulcio};
use verify_support::{World, failure, verified};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "dev@example.com";
const WITH_BUNDLE: &str = "no signature verified by the given certificate with a valid Rekor bundle";
const WITHOUT_BUNDLE: &str = "no signature verified by the given certificate";

/// A fresh verifier (no answer cached) of the world's registry trusting only its Rekor.
fn rekor_only_verifier(world: &World) -> Verifier {
    let config = testkit::trust_config_value(&[], &[&world.rekor]);
    let trust = TrustRoot::from_json(&config.to_string()).expect("a Rekor-only trust config is valid");
    world.verifier_for(&[&world.host], Some(trust))
}

/// A leaf of the world's Fulcio valid from `hours.0` to `hours.1` hours from now.
fn leaf(world: &World, hours: (i64, i64)) -> LeafCertificate {
    let now = Utc::now();
    let request = LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER)
        .with_validity(now + TimeDelta::hours(hours.0), now + TimeDelta::hours(hours.1));
    world.fulcio.issue(&request).expect("leaf")
}

/// A layer signed by `leaf`'s key and annotated with it, with a Rekor bundle recording it
/// integrated at `integrated_time` (none when `None`); pushed as the image's only signature.
fn push(world: &World, leaf: &LeafCertificate, integrated_time: Option<i64>) {
    let mut layer =
        testkit::key_signature_layer(&world.host, &world.repo, &world.digest, &leaf.key, &Default::default())
            .expect("layer");
    layer
        .annotations
        .insert(testkit::CERTIFICATE_ANNOTATION.to_string(), leaf.cert_pem.clone());
    if let Some(time) = integrated_time {
        layer = layer.with_bundle(&world.rekor, &leaf.cert_pem, time).expect("bundle");
    }
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer]).expect("pushed");
}

/// A `certificate` authority's request for the world's image.
fn request(world: &World, leaf: &LeafCertificate, chain: Option<&[&str]>, require_bundle: bool) -> VerificationRequest {
    VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreCertificateVerify {
        image: world.tag_ref(),
        certificate: leaf.cert_pem.as_bytes().to_vec(),
        certificate_chain: chain.map(|c| c.iter().map(|pem| pem.as_bytes().to_vec()).collect()),
        require_rekor_bundle: require_bundle,
        annotations: None,
    })
}

fn fulcio_chain(fulcio: &TestFulcio) -> [&str; 2] {
    [fulcio.intermediate_pem(), fulcio.root_pem()]
}

#[tokio::test]
async fn a_chain_is_checked_when_the_signature_was_logged_not_now() {
    let world = World::new();
    let chain = fulcio_chain(&world.fulcio);
    // Valid from two hours ago to one hour ago, logged 90 minutes ago.
    let expired = leaf(&world, (-2, -1));
    let inside = (Utc::now() - TimeDelta::minutes(90)).timestamp();
    push(&world, &expired, Some(inside));
    // Without a chain this verified already; with its chain it must too.
    verified(&rekor_only_verifier(&world), request(&world, &expired, None, true)).await;
    verified(
        &rekor_only_verifier(&world),
        request(&world, &expired, Some(&chain[..]), true),
    )
    .await;
    verified(
        &rekor_only_verifier(&world),
        request(&world, &expired, Some(&chain[..]), false),
    )
    .await;

    // Forged: the same leaf and chain, logged now, an hour after the leaf expired.
    push(&world, &expired, Some(Utc::now().timestamp()));
    let reason = failure(
        &rekor_only_verifier(&world),
        request(&world, &expired, Some(&chain[..]), true),
    )
    .await;
    assert_eq!(reason, WITH_BUNDLE);

    // Forged: logged inside the leaf's validity, under another CA's chain.
    push(&world, &expired, Some(inside));
    let stranger = TestFulcio::new().expect("fulcio");
    let reason = failure(
        &rekor_only_verifier(&world),
        request(&world, &expired, Some(&fulcio_chain(&stranger)[..]), true),
    )
    .await;
    assert!(
        reason.starts_with("certificate is not usable: it is not trusted through the certificate chain"),
        "{reason}"
    );
}

#[tokio::test]
async fn only_the_last_certificate_of_the_chain_is_a_root() {
    let world = World::new();
    let signer = leaf(&world, (-1, 1));
    push(&world, &signer, Some(Utc::now().timestamp()));
    // Forged: the genuine intermediate, then a root that did not issue it. sigstore-rs trusted
    // the intermediate as an anchor of its own.
    let stranger = TestFulcio::new().expect("fulcio");
    let chain = [world.fulcio.intermediate_pem(), stranger.root_pem()];
    let reason = failure(
        &rekor_only_verifier(&world),
        request(&world, &signer, Some(&chain[..]), true),
    )
    .await;
    assert!(
        reason.starts_with("certificate is not usable: it is not trusted through the certificate chain"),
        "{reason}"
    );
    // Control: the intermediate's own root.
    verified(
        &rekor_only_verifier(&world),
        request(&world, &signer, Some(&fulcio_chain(&world.fulcio)[..]), true),
    )
    .await;
    // The issuing CA alone is a root too (the last certificate of a one-certificate chain).
    verified(
        &rekor_only_verifier(&world),
        request(&world, &signer, Some(&[world.fulcio.intermediate_pem()][..]), true),
    )
    .await;
}

#[tokio::test]
async fn without_time_evidence_the_certificate_must_be_valid_now() {
    let world = World::new();
    let chain = fulcio_chain(&world.fulcio);
    // Forged: no bundle and a certificate expired an hour ago, with and without its chain.
    let expired = leaf(&world, (-2, -1));
    push(&world, &expired, None);
    for chain in [None, Some(&chain[..])] {
        let reason = failure(&rekor_only_verifier(&world), request(&world, &expired, chain, false)).await;
        assert_eq!(reason, WITHOUT_BUNDLE, "chain: {}", chain.is_some());
    }
    // Control: a certificate valid now, no bundle, with and without its chain.
    let valid = leaf(&world, (-1, 1));
    push(&world, &valid, None);
    for chain in [None, Some(&chain[..])] {
        verified(&rekor_only_verifier(&world), request(&world, &valid, chain, false)).await;
    }
    // Control: the expired certificate with a bundle logged inside its validity (the bundle is
    // the time evidence), a bundle not being required.
    push(
        &world,
        &expired,
        Some((Utc::now() - TimeDelta::minutes(90)).timestamp()),
    );
    verified(&rekor_only_verifier(&world), request(&world, &expired, None, false)).await;
}

/// A root valid for years, an intermediate valid from `intermediate.0` to `intermediate.1`
/// hours from now, and a code-signing leaf it issues valid from `leaf.0` to `leaf.1` hours from
/// now: the leaf and the chain (intermediate, root), PEM.
fn short_lived_chain(intermediate: (i64, i64), leaf: (i64, i64)) -> (LeafCertificate, [String; 2]) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
    let at = |hours: i64| {
        time::OffsetDateTime::from_unix_timestamp((Utc::now() + TimeDelta::hours(hours)).timestamp()).expect("time")
    };
    let ca = |name: &str, from: i64, to: i64| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.not_before = at(from);
        params.not_after = at(to);
        params
    };
    let root = CertifiedIssuer::self_signed(
        ca("root", -24 * 365, 24 * 365),
        rcgen::KeyPair::generate().expect("key"),
    )
    .expect("root");
    let issuing = CertifiedIssuer::signed_by(
        ca("intermediate", intermediate.0, intermediate.1),
        rcgen::KeyPair::generate().expect("key"),
        &root,
    )
    .expect("intermediate");
    let key = testkit::KeyPair::ecdsa_p256().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(EMAIL.try_into().expect("email"))];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.not_before = at(leaf.0);
    params.not_after = at(leaf.1);
    let certified = rcgen::KeyPair::from_pem(&key.private_key_pem().expect("pem")).expect("P-256 key");
    let cert = params.signed_by(&certified, &issuing).expect("leaf");
    let leaf = LeafCertificate {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key,
        not_before: Utc::now() + TimeDelta::hours(leaf.0),
        not_after: Utc::now() + TimeDelta::hours(leaf.1),
    };
    (leaf, [issuing.pem(), root.pem()])
}

#[tokio::test]
async fn the_chain_must_hold_at_the_signature_time_not_only_the_certificate() {
    let world = World::new();
    // The intermediate: valid from three hours ago to one hour ago; the leaf: from two hours
    // ago to an hour from now.
    let (leaf, chain) = short_lived_chain((-3, -1), (-2, 1));
    let chain = [chain[0].as_str(), chain[1].as_str()];
    // Forged: logged half an hour ago, the leaf valid, its intermediate expired half an hour
    // before. sigstore-rs took the intermediate for an anchor, whose validity webpki does not
    // check.
    push(&world, &leaf, Some((Utc::now() - TimeDelta::minutes(30)).timestamp()));
    let reason = failure(
        &rekor_only_verifier(&world),
        request(&world, &leaf, Some(&chain[..]), true),
    )
    .await;
    assert_eq!(reason, WITH_BUNDLE);
    // Control: logged 90 minutes ago, while both were valid (the intermediate has expired
    // since).
    push(&world, &leaf, Some((Utc::now() - TimeDelta::minutes(90)).timestamp()));
    verified(
        &rekor_only_verifier(&world),
        request(&world, &leaf, Some(&chain[..]), true),
    )
    .await;
}

/// A root whose basic constraints allow `root_path_len` intermediates below it (unconstrained
/// when `None`), `intermediates` CAs under it, and a code-signing leaf the last issues, valid
/// from an hour ago to an hour from now: the leaf and the chain (intermediates from the leaf's
/// issuer up, then the root), PEM.
fn chain_under_root(root_path_len: Option<u8>, intermediates: usize) -> (LeafCertificate, Vec<String>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
    let at = |hours: i64| {
        time::OffsetDateTime::from_unix_timestamp((Utc::now() + TimeDelta::hours(hours)).timestamp()).expect("time")
    };
    let ca = |name: &str, constraints: BasicConstraints| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(constraints);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.not_before = at(-24 * 365);
        params.not_after = at(24 * 365);
        params
    };
    let root_constraints = match root_path_len {
        Some(most) => BasicConstraints::Constrained(most),
        None => BasicConstraints::Unconstrained,
    };
    let root = CertifiedIssuer::self_signed(ca("root", root_constraints), rcgen::KeyPair::generate().expect("key"))
        .expect("root");
    let mut chain = vec![root.pem()];
    let mut issuers = vec![root];
    for i in 0..intermediates {
        let issuer = issuers.last().expect("an issuer");
        let intermediate = CertifiedIssuer::signed_by(
            ca(&format!("intermediate {i}"), BasicConstraints::Unconstrained),
            rcgen::KeyPair::generate().expect("key"),
            issuer,
        )
        .expect("intermediate");
        chain.insert(0, intermediate.pem());
        issuers.push(intermediate);
    }
    let key = testkit::KeyPair::ecdsa_p256().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(EMAIL.try_into().expect("email"))];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.not_before = at(-1);
    params.not_after = at(1);
    let certified = rcgen::KeyPair::from_pem(&key.private_key_pem().expect("pem")).expect("P-256 key");
    let cert = params
        .signed_by(&certified, issuers.last().expect("an issuer"))
        .expect("leaf");
    let leaf = LeafCertificate {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key,
        not_before: Utc::now() - TimeDelta::hours(1),
        not_after: Utc::now() + TimeDelta::hours(1),
    };
    (leaf, chain)
}

#[tokio::test]
async fn the_root_path_length_constraint_holds() {
    let world = World::new();
    // Forged: a root allowing no intermediate below it (pathLenConstraint 0), two intermediates,
    // then the leaf; no bundle. webpki does not read a trust anchor's constraint: verified.
    let (leaf, chain) = chain_under_root(Some(0), 2);
    let chain: Vec<&str> = chain.iter().map(String::as_str).collect();
    push(&world, &leaf, None);
    let reason = failure(
        &rekor_only_verifier(&world),
        request(&world, &leaf, Some(&chain[..]), false),
    )
    .await;
    assert!(
        reason.starts_with("certificate is not usable: it is not trusted through the certificate chain")
            && reason.contains("pathLenConstraint"),
        "{reason}"
    );
    // Forged: the root allows one, the path has two.
    let (leaf, chain) = chain_under_root(Some(1), 2);
    let chain: Vec<&str> = chain.iter().map(String::as_str).collect();
    push(&world, &leaf, None);
    let reason = failure(
        &rekor_only_verifier(&world),
        request(&world, &leaf, Some(&chain[..]), false),
    )
    .await;
    assert!(reason.contains("pathLenConstraint"), "{reason}");
    // Controls: the root allowing two, and an unconstrained root, over the same path; a root
    // allowing none with the leaf issued by the root itself.
    for (path_len, intermediates) in [(Some(2), 2), (None, 2), (Some(0), 0)] {
        let (leaf, chain) = chain_under_root(path_len, intermediates);
        let chain: Vec<&str> = chain.iter().map(String::as_str).collect();
        push(&world, &leaf, None);
        verified(
            &rekor_only_verifier(&world),
            request(&world, &leaf, Some(&chain[..]), false),
        )
        .await;
    }
}
