//! Forgeries against the legacy (`.sig`) checks of `certificate` authorities and GitHub Actions
//! identities, and against `crypto/v1/is_certificate_trusted`, each paired with a control built
//! the same way but for the one forged property, which verifies: the refusal comes from the
//! targeted check, not from the way the test builds signatures.
//!
//! * A `certificate` authority requiring a Rekor bundle: the logged entry must record the given
//!   certificate's key (not another certificate put next to a signature by that key), and the
//!   entry's integration time must fall inside the certificate's validity (sigstore-rs'
//!   `CertificateVerifier`).
//! * `crypto/v1/is_certificate_trusted`: a leaf chained to the given roots but allowed only
//!   for TLS servers (or for any use at all) is not trusted for code signing.
//! * GitHub Actions: the certificate's issuer must be GitHub's token issuer and its subject a
//!   github.com URI, whatever its repository extension says.
//!
//! The `certificate` tests trust a root holding only the Rekor key (all such a request needs),
//! so that no Fulcio check of the layer's certificate adds a reason to the refusal.

mod verify_support;

use chrono::{TimeDelta, Utc};
use cip::capabilities::Capabilities;
use cip::trust::TrustRoot;
use cip::verify::{VerificationRequest, Verifier};
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use kubewarden_policy_sdk::host_capabilities::crypto::{Certificate, CertificateEncoding};
use kubewarden_policy_sdk::host_capabilities::crypto_v1::{
    CertificateVerificationRequest, CertificateVerificationResponse,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use testkit::{GithubWorkflow, LeafCertificate, LeafRequest, SignerIdentity};
use verify_support::{World, failure, verified};

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "dev@example.com";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

/// What a `certificate` authority requiring a bundle answers when no layer satisfies it.
const NO_CERTIFICATE_SIGNATURE: &str = "no signature verified by the given certificate with a valid Rekor bundle";

// --- certificate authorities -------------------------------------------------------------

/// A trust root with the world's Rekor key and no Fulcio CA.
fn rekor_only_trust(world: &World) -> TrustRoot {
    let config = testkit::trust_config_value(&[], &[&world.rekor]);
    TrustRoot::from_json(&config.to_string()).expect("a Rekor-only trust config is valid")
}

/// A fresh verifier of the world's registry trusting only its Rekor.
fn rekor_only_verifier(world: &World) -> Verifier {
    world.verifier_for(&[&world.host], Some(rekor_only_trust(world)))
}

/// `SigstoreCertificateVerify` of the world's image: `certificate`, no chain, bundle required.
fn certificate_request(world: &World, certificate: &str) -> VerificationRequest {
    VerificationRequest::V2(verify_support::rekor_bound_certificate(&world.tag_ref(), certificate))
}

/// A layer signed by `signer`'s key whose certificate annotation is `shown`, with a Rekor
/// entry recording `shown` as the signature's verifier, integrated at `integrated_time`;
/// pushed as the image's only signature.
fn push_certificate_layer(world: &World, signer: &LeafCertificate, shown: &LeafCertificate, integrated_time: i64) {
    let mut layer = testkit::key_signature_layer(
        &world.host,
        &world.repo,
        &world.digest,
        &signer.key,
        &Default::default(),
    )
    .expect("layer");
    layer
        .annotations
        .insert(testkit::CERTIFICATE_ANNOTATION.to_string(), shown.cert_pem.clone());
    let layer = layer
        .with_bundle(&world.rekor, &shown.cert_pem, integrated_time)
        .expect("bundle");
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer]).expect("pushed");
}

fn email_request() -> LeafRequest {
    LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER)
}

#[tokio::test]
async fn a_rekor_entry_recording_another_certificate_does_not_vouch_for_the_given_one() {
    let world = World::new();
    let given = world.fulcio.issue(&email_request()).expect("leaf");
    let other = world.fulcio.issue(&email_request()).expect("leaf");
    let now = Utc::now().timestamp();

    // Forged: signed with the given certificate's key, but the layer shows another certificate
    // and the log recorded that other certificate.
    push_certificate_layer(&world, &given, &other, now);
    let reason = failure(
        &rekor_only_verifier(&world),
        certificate_request(&world, &given.cert_pem),
    )
    .await;
    assert_eq!(reason, NO_CERTIFICATE_SIGNATURE);

    // The same check with the world's full trust root: the layer's certificate does not verify
    // its signature, which is said, and still the given certificate is not vouched for.
    let reason = failure(&world.verifier(), certificate_request(&world, &given.cert_pem)).await;
    assert_eq!(
        reason,
        format!(
            "{NO_CERTIFICATE_SIGNATURE}; signature does not verify with the signing certificate's key over the payload"
        )
    );

    // Control: the same signature, showing and logging the given certificate.
    push_certificate_layer(&world, &given, &given, now);
    verified(
        &rekor_only_verifier(&world),
        certificate_request(&world, &given.cert_pem),
    )
    .await;
    verified(&world.verifier(), certificate_request(&world, &given.cert_pem)).await;
}

#[tokio::test]
async fn a_signature_logged_after_the_given_certificate_expired_is_refused() {
    let world = World::new();
    let now = Utc::now();
    let expired = email_request().with_validity(now - TimeDelta::hours(2), now - TimeDelta::hours(1));
    let leaf = world.fulcio.issue(&expired).expect("leaf");

    // Forged: logged now, an hour after the certificate expired.
    push_certificate_layer(&world, &leaf, &leaf, now.timestamp());
    let reason = failure(
        &rekor_only_verifier(&world),
        certificate_request(&world, &leaf.cert_pem),
    )
    .await;
    assert_eq!(reason, NO_CERTIFICATE_SIGNATURE);

    // Control: the same certificate and signature, logged while the certificate was valid.
    let inside = (now - TimeDelta::minutes(90)).timestamp();
    push_certificate_layer(&world, &leaf, &leaf, inside);
    verified(
        &rekor_only_verifier(&world),
        certificate_request(&world, &leaf.cert_pem),
    )
    .await;
}

#[tokio::test]
async fn a_signature_logged_before_the_given_certificate_was_valid_is_refused() {
    let world = World::new();
    let now = Utc::now();
    // Valid from a minute ago (it must be valid already to be given at all).
    let leaf = world.fulcio.issue(&email_request()).expect("leaf");
    assert!(leaf.not_before > now - TimeDelta::minutes(2));

    // Forged: logged an hour before the certificate's notBefore.
    let before = (leaf.not_before - TimeDelta::hours(1)).timestamp();
    push_certificate_layer(&world, &leaf, &leaf, before);
    let reason = failure(
        &rekor_only_verifier(&world),
        certificate_request(&world, &leaf.cert_pem),
    )
    .await;
    assert_eq!(reason, NO_CERTIFICATE_SIGNATURE);

    // Control: the same certificate and signature, logged now, inside its validity.
    push_certificate_layer(&world, &leaf, &leaf, now.timestamp());
    verified(
        &rekor_only_verifier(&world),
        certificate_request(&world, &leaf.cert_pem),
    )
    .await;
}

// --- crypto/v1/is_certificate_trusted ----------------------------------------------------

/// A CA shaped like Fulcio's: a root and an intermediate allowed to issue code-signing leaves.
struct Ca {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

fn ca_params(name: &str, path_length: Option<u8>) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(match path_length {
        Some(length) => BasicConstraints::Constrained(length),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Ca {
    fn new() -> Self {
        let root = CertifiedIssuer::self_signed(ca_params("identities-root", None), KeyPair::generate().expect("key"))
            .expect("root");
        let mut intermediate = ca_params("identities-intermediate", Some(0));
        intermediate.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let intermediate =
            CertifiedIssuer::signed_by(intermediate, KeyPair::generate().expect("key"), &root).expect("intermediate");
        Self { root, intermediate }
    }

    /// A leaf valid from 2020 to 2090, for digital signatures, with `usages`.
    fn leaf(&self, usages: Vec<ExtendedKeyUsagePurpose>) -> String {
        let mut params = CertificateParams::new(vec!["signer.example".to_string()]).expect("params");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2090, 1, 1);
        params
            .signed_by(&KeyPair::generate().expect("key"), &self.intermediate)
            .expect("leaf")
            .pem()
    }

    /// The chain a policy passes: intermediate, then the root last.
    fn chain(&self) -> Vec<Certificate> {
        vec![pem(&self.intermediate.pem()), pem(&self.root.pem())]
    }
}

fn pem(text: &str) -> Certificate {
    Certificate {
        encoding: CertificateEncoding::Pem,
        data: text.as_bytes().to_vec(),
    }
}

/// Asks `kubewarden/crypto/v1/is_certificate_trusted` as a policy does, on the wire.
fn is_certificate_trusted(leaf: &str, chain: Vec<Certificate>) -> CertificateVerificationResponse {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let capabilities = Capabilities::without_registry(runtime.handle().clone());
    let request = CertificateVerificationRequest {
        cert: pem(leaf),
        cert_chain: Some(chain),
        not_after: None,
    };
    let payload = serde_json::to_vec(&request).expect("request JSON");
    let answer = capabilities
        .dispatch(
            "verify_certificate_identities",
            None,
            "kubewarden",
            "crypto",
            "v1/is_certificate_trusted",
            &payload,
        )
        .expect("the host answers");
    serde_json::from_slice(&answer).expect("response JSON")
}

#[test]
fn a_leaf_allowed_only_for_tls_servers_is_not_trusted_for_code_signing() {
    let ca = Ca::new();

    let server_auth = is_certificate_trusted(&ca.leaf(vec![ExtendedKeyUsagePurpose::ServerAuth]), ca.chain());
    let no_usage = is_certificate_trusted(&ca.leaf(Vec::new()), ca.chain());
    // Control: the same CA and leaf, allowed for code signing.
    let code_signing = is_certificate_trusted(&ca.leaf(vec![ExtendedKeyUsagePurpose::CodeSigning]), ca.chain());

    // webpki names the usage required (code signing) and the ones the leaf has.
    assert_eq!(
        server_auth,
        CertificateVerificationResponse {
            trusted: false,
            reason: "Certificate not trusted: RequiredEkuNotFoundContext(RequiredEkuNotFoundContext { \
                     required: KeyPurposeId(1.3.6.1.5.5.7.3.3), present: [KeyPurposeId(1.3.6.1.5.5.7.3.1)] })"
                .to_string()
        }
    );
    assert_eq!(
        no_usage,
        CertificateVerificationResponse {
            trusted: false,
            reason: "Certificate not trusted: RequiredEkuNotFoundContext(RequiredEkuNotFoundContext { \
                     required: KeyPurposeId(1.3.6.1.5.5.7.3.3), present: [] })"
                .to_string()
        }
    );
    assert_eq!(
        code_signing,
        CertificateVerificationResponse {
            trusted: true,
            reason: String::new()
        }
    );
}

// --- GitHub Actions ----------------------------------------------------------------------

/// A leaf claiming the GitHub workflow extensions of `acme/app`, for `identity` from `issuer`.
fn workflow_leaf(identity: SignerIdentity, issuer: &str) -> LeafRequest {
    LeafRequest::new(identity, issuer).with_github_workflow(GithubWorkflow {
        trigger: "push".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        name: "release".into(),
        repository: "acme/app".into(),
        git_ref: "refs/heads/main".into(),
    })
}

/// Signs the world's image keyless (trusted Fulcio, trusted Rekor) as its only signature.
fn push_keyless(world: &World, request: &LeafRequest) {
    let leaf = world.fulcio.issue(request).expect("leaf");
    let layer = testkit::certificate_signature_layer(
        &world.host,
        &world.repo,
        &world.digest,
        &leaf,
        Some(&world.fulcio.chain_pem()),
        Some(&world.rekor),
        &Default::default(),
    )
    .expect("layer");
    testkit::push_signature_layers(&world.host, &world.repo, &world.digest, &[layer]).expect("pushed");
}

fn github(world: &World, repo: Option<&str>) -> VerificationRequest {
    VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreGithubActionsVerify {
        image: world.tag_ref(),
        owner: "acme".to_string(),
        repo: repo.map(str::to_string),
        annotations: None,
    })
}

/// Pushes a signature with `request`'s certificate and asserts that no GitHub Actions request
/// for `acme` (with or without `app`) accepts it.
async fn refused_as_github_actions(world: &World, request: &LeafRequest) {
    push_keyless(world, request);
    let with_repo = failure(&world.verifier(), github(world, Some("app"))).await;
    let owner_only = failure(&world.verifier(), github(world, None)).await;
    assert_eq!(
        with_repo, "no keyless signature by GitHub Actions of acme/app",
        "{request:?}"
    );
    assert_eq!(
        owner_only, "no keyless signature by GitHub Actions of acme",
        "{request:?}"
    );
}

/// The control: the genuine GitHub Actions certificate verifies for `acme` and `acme/app`.
async fn accepted_as_github_actions(world: &World) {
    push_keyless(
        world,
        &workflow_leaf(SignerIdentity::Uri(WORKFLOW.into()), GITHUB_ISSUER),
    );
    verified(&world.verifier(), github(world, Some("app"))).await;
    verified(&world.verifier(), github(world, None)).await;
}

#[tokio::test]
async fn a_workflow_certificate_from_another_issuer_is_not_github_actions() {
    let world = World::new();

    // Forged: another OIDC issuer (one that lets users pick their URI subject and extensions),
    // then one that merely starts like GitHub's.
    refused_as_github_actions(&world, &workflow_leaf(SignerIdentity::Uri(WORKFLOW.into()), ISSUER)).await;
    refused_as_github_actions(
        &world,
        &workflow_leaf(
            SignerIdentity::Uri(WORKFLOW.into()),
            "https://token.actions.githubusercontent.com.evil.example",
        ),
    )
    .await;

    accepted_as_github_actions(&world).await;
}

#[tokio::test]
async fn a_subject_that_is_not_a_github_com_uri_is_not_github_actions() {
    let world = World::new();

    // Forged: GitHub's issuer and the `acme/app` repository extension, but an email subject,
    // then URIs on other hosts.
    let subjects = [
        SignerIdentity::Email(EMAIL.into()),
        SignerIdentity::Uri("https://gitlab.com/acme/app/.github/workflows/release.yml@refs/heads/main".into()),
        SignerIdentity::Uri(
            "https://github.com.evil.example/acme/app/.github/workflows/release.yml@refs/heads/main".into(),
        ),
        SignerIdentity::Uri("https://github.com@evil.example/acme/app/.github/workflows/release.yml".into()),
    ];
    for subject in subjects {
        refused_as_github_actions(&world, &workflow_leaf(subject, GITHUB_ISSUER)).await;
    }

    accepted_as_github_actions(&world).await;
}
