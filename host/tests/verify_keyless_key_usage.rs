//! The code-signing extended key usage of keyless signatures (`fulcio::chain_at` →
//! `certificate::chains_to`, which requires EKU codeSigning of the leaf), for both signature
//! storages: the legacy `.sig` layer and the cosign v3 sigstore bundle.
//!
//! A forger holding a certificate of the wanted identity from a trusted Fulcio CA, but issued
//! for another use (TLS servers only, or no extended key usage at all), signs with its key:
//! everything else about the signature is genuine (chain, validity, SCT, Rekor entry), so the
//! refusal can only come from the key usage check, whose reason the test asserts. The control
//! is the same signature, built the same way, by a leaf allowed for code signing (alone, or
//! among other usages), which verifies. `crypto/v1/is_certificate_trusted`, the other caller of
//! the same check, is covered in `verify_certificate_identities.rs`.

mod verify_support;

use cip::verify::{SignatureFormat, VerificationRequest, Verifier};
use kubewarden_policy_sdk::host_capabilities::SigstoreVerificationInputV2;
use kubewarden_policy_sdk::host_capabilities::verification::KeylessInfo;
use testkit::{BundleOptions, ExtendedKeyUsagePurpose, LeafRequest, SignerIdentity};
use verify_support::World;

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "dev@example.com";

/// The OID webpki names for the usage it requires: codeSigning.
const CODE_SIGNING: &str = "KeyPurposeId(1.3.6.1.5.5.7.3.3)";
/// The OID of serverAuth, as webpki prints the usages a leaf has.
const SERVER_AUTH: &str = "KeyPurposeId(1.3.6.1.5.5.7.3.1)";

fn keyless(image: &str) -> VerificationRequest {
    VerificationRequest::V2(SigstoreVerificationInputV2::SigstoreKeylessVerify {
        image: image.to_string(),
        keyless: vec![KeylessInfo {
            issuer: ISSUER.to_string(),
            subject: EMAIL.to_string(),
        }],
        annotations: None,
    })
}

/// A Fulcio leaf for the wanted identity, with the extended key usages `usages`.
fn email_with(usages: Vec<ExtendedKeyUsagePurpose>) -> LeafRequest {
    LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER).with_extended_key_usages(usages)
}

/// Pushes `team/<name>:v1` and signs it keyless, as cosign does in `format`, with a fresh leaf
/// of the world's Fulcio for `request`, logged in the world's Rekor. Returns the tag reference.
fn signed(world: &World, format: SignatureFormat, name: &str, request: &LeafRequest) -> String {
    let repo = format!("team/{name}");
    let digest = testkit::push_image(&world.host, &repo, "v1", name).expect("image pushed");
    match format {
        SignatureFormat::Legacy => {
            testkit::sign_keyless(
                &world.host,
                &repo,
                &digest,
                &world.fulcio,
                &world.rekor,
                request,
                &Default::default(),
            )
            .expect("signed");
        }
        SignatureFormat::Bundle => {
            let bundle =
                testkit::keyless_bundle(&digest, &world.fulcio, &world.rekor, request, &BundleOptions::default())
                    .expect("bundle");
            testkit::attach_bundle(&world.host, &repo, &digest, &bundle).expect("attached");
        }
        SignatureFormat::Any => unreachable!("a signature is stored in one format"),
    }
    format!("{}/{repo}:v1", world.host)
}

async fn passes(verifier: &Verifier, format: SignatureFormat, image: &str) {
    if let Err(error) = verifier.verify_in(keyless(image), format).await {
        panic!("{format:?} verification of {image} failed: {error}");
    }
}

async fn fails(verifier: &Verifier, format: SignatureFormat, image: &str) -> String {
    match verifier.verify_in(keyless(image), format).await {
        Ok(response) => panic!(
            "{format:?} verification of {image} passed with digest {}",
            response.digest
        ),
        Err(error) => error.to_string(),
    }
}

/// The refusal of a keyless signature whose leaf has the extended key usages `present` (as
/// webpki prints them) instead of codeSigning.
fn not_for_code_signing(present: &str) -> String {
    format!(
        "no keyless signature by issuer {ISSUER} and subject {EMAIL}; signing certificate is not trusted by \
         the Fulcio CAs of the trust root: it or a certificate of its chain does not allow code signing: \
         RequiredEkuNotFoundContext {{ required: {CODE_SIGNING}, present: [{present}] }}"
    )
}

/// Signs four images in `format`: by a codeSigning leaf and by a codeSigning + serverAuth leaf
/// (the controls, which verify), by a serverAuth-only leaf and by a leaf without the extended
/// key usage extension (refused, for want of codeSigning).
async fn key_usage_is_required(format: SignatureFormat) {
    let world = World::new();
    let code_signing = signed(
        &world,
        format,
        "code-signing",
        &email_with(vec![ExtendedKeyUsagePurpose::CodeSigning]),
    );
    let among_others = signed(
        &world,
        format,
        "code-signing-and-server-auth",
        &email_with(vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::CodeSigning,
        ]),
    );
    let server_auth = signed(
        &world,
        format,
        "server-auth",
        &email_with(vec![ExtendedKeyUsagePurpose::ServerAuth]),
    );
    let no_usage = signed(&world, format, "no-usage", &email_with(Vec::new()));
    let verifier = world.verifier();

    passes(&verifier, format, &code_signing).await;
    passes(&verifier, format, &among_others).await;
    assert_eq!(
        fails(&verifier, format, &server_auth).await,
        not_for_code_signing(SERVER_AUTH)
    );
    assert_eq!(fails(&verifier, format, &no_usage).await, not_for_code_signing(""));
}

/// Legacy `.sig` layer (`layers::trusted_certificate` → `fulcio::chain_at`).
#[tokio::test]
async fn a_legacy_keyless_signature_by_a_leaf_not_for_code_signing_is_refused() {
    key_usage_is_required(SignatureFormat::Legacy).await;
}

/// Cosign v3 sigstore bundle (`bundle::certificate_signer` → `fulcio::chain_at`).
#[tokio::test]
async fn a_keyless_bundle_by_a_leaf_not_for_code_signing_is_refused() {
    key_usage_is_required(SignatureFormat::Bundle).await;
}

/// The default leaf of the test Fulcio is a code-signing one, as Fulcio issues.
#[test]
fn leaves_are_for_code_signing_unless_asked_otherwise() {
    let request = LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER);
    assert_eq!(request.extended_key_usages, vec![ExtendedKeyUsagePurpose::CodeSigning]);
}
