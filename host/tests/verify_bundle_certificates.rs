//! The certificate checks of keyless cosign v3 sigstore bundles (`host/src/verify/bundle.rs`),
//! each reached on its own by a bundle built as a forger would build it, against a real
//! registry: the DSSE signature must verify with the certificate's key (even when a log
//! recorded the forged signature next to the genuine certificate), the certificate must chain
//! to a Fulcio CA of the trust root and be valid at the entry's integration time, it needs a
//! bound transparency log entry, a verified SCT, and must be the certificate the entry logged.
//!
//! Every forgery is paired with a control built the same way but for the forged property (the
//! same bundle under another trust root or SCT policy where that is possible), which verifies:
//! the refusal comes from the targeted check, whose reason the test asserts.

mod verify_support;

use chrono::{TimeDelta, Utc};
use cip::trust::TrustRoot;
use cip::verify::{KeylessRegexpRequest, SignatureFormat, VerificationRequest, Verifier};
use serde_json::Value;
use testkit::{
    BundleOptions, KeyPair, LeafCertificate, LeafRequest, SctMode, SignerIdentity, SigstoreBundle, TestFulcio,
};
use verify_support::World;

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "dev@example.com";

fn email() -> LeafRequest {
    LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER)
}

fn keyless(image: &str) -> VerificationRequest {
    verify_support::keyless_request(image, &[(ISSUER, EMAIL)], None)
}

/// What the keyless request answers when no bundle satisfied it, before the bundles' reasons.
fn unmet() -> String {
    format!("no keyless signature by issuer {ISSUER} and subject {EMAIL}")
}

/// An image of the world's registry carrying one bundle.
struct Signed {
    /// `host/team/<name>:v1`.
    tag_ref: String,
    /// The bundle referrer's manifest digest.
    referrer: String,
}

/// Pushes `team/<name>:v1`, builds a bundle for its digest with `build` and attaches it as the
/// image's only referrer.
fn signed(world: &World, name: &str, build: impl FnOnce(&str) -> SigstoreBundle) -> Signed {
    let repo = format!("team/{name}");
    let digest = testkit::push_image(&world.host, &repo, "v1", name).expect("image pushed");
    let referrer = testkit::attach_bundle(&world.host, &repo, &digest, &build(&digest)).expect("attached");
    Signed {
        tag_ref: format!("{}/{repo}:v1", world.host),
        referrer,
    }
}

async fn passes(verifier: &Verifier, request: VerificationRequest) {
    if let Err(error) = verifier.verify_in(request, SignatureFormat::Bundle).await {
        panic!("verification failed: {error}");
    }
}

async fn fails(verifier: &Verifier, request: VerificationRequest) -> String {
    match verifier.verify_in(request, SignatureFormat::Bundle).await {
        Ok(response) => panic!("verification passed with digest {}", response.digest),
        Err(error) => error.to_string(),
    }
}

/// `bundle` with its JSON edited by `change` (which must find what it changes).
fn edited(bundle: &SigstoreBundle, change: impl FnOnce(&mut Value) -> Option<()>) -> SigstoreBundle {
    let mut value = bundle.value().expect("bundle JSON");
    change(&mut value).expect("the bundle has the field to change");
    SigstoreBundle {
        json: serde_json::to_vec(&value).expect("JSON"),
        predicate_type: bundle.predicate_type.clone(),
    }
}

/// A keyless bundle by `request`'s fresh leaf of `fulcio`, logged in the world's Rekor.
fn keyless_by(fulcio: &TestFulcio, world: &World, request: &LeafRequest) -> impl FnOnce(&str) -> SigstoreBundle {
    move |digest| {
        testkit::keyless_bundle(digest, fulcio, &world.rekor, request, &BundleOptions::default()).expect("bundle")
    }
}

/// A bundle around `leaf` signed by `signer`, logged in the world's Rekor at `integrated_time`
/// (now when `None`).
fn around<'a>(
    world: &'a World,
    leaf: &'a LeafCertificate,
    signer: &'a KeyPair,
    integrated_time: Option<i64>,
) -> impl FnOnce(&str) -> SigstoreBundle + 'a {
    move |digest| {
        let options = BundleOptions {
            integrated_time,
            ..Default::default()
        };
        testkit::certificate_bundle(digest, leaf, signer, Some(&world.rekor), &options).expect("bundle")
    }
}

/// bundle.rs `certificate_signer`: the DSSE signature must verify with the certificate's key.
/// The forger signs with their own key, puts a genuine certificate of the wanted identity in the
/// bundle, and a log (accepting anything) records that certificate with the forged signature,
/// so the entry binds; the control is the same certificate's own key signing.
#[tokio::test]
async fn a_signature_by_another_key_next_to_a_genuine_logged_certificate_is_refused() {
    let world = World::new();
    let leaf = world.fulcio.issue(&email()).expect("leaf");
    let attacker = KeyPair::ecdsa_p256().expect("key");
    let honest = signed(&world, "honest", around(&world, &leaf, &leaf.key, None));
    let forged = signed(&world, "forged", around(&world, &leaf, &attacker, None));
    let verifier = world.verifier();

    passes(&verifier, keyless(&honest.tag_ref)).await;
    assert_eq!(
        fails(&verifier, keyless(&forged.tag_ref)).await,
        format!(
            "{}; signature does not verify with the signing certificate's key over the DSSE envelope",
            unmet()
        )
    );
}

/// `fulcio::chain_at`: a certificate of the wanted identity from a CA the trust root does not
/// list (with a genuine entry of the trusted log) is refused; the same bundle verifies when the
/// trust root lists that CA too.
#[tokio::test]
async fn a_certificate_from_a_rogue_ca_is_refused() {
    let world = World::new();
    let rogue = TestFulcio::new().expect("rogue CA");
    let bundle = signed(&world, "rogue", keyless_by(&rogue, &world, &email()));
    let both_cas =
        TrustRoot::from_json(&testkit::trust_config_value(&[&world.fulcio, &rogue], &[&world.rekor]).to_string())
            .expect("trust config");

    passes(
        &world.verifier_for(&[&world.host], Some(both_cas)),
        keyless(&bundle.tag_ref),
    )
    .await;
    assert_eq!(
        fails(&world.verifier(), keyless(&bundle.tag_ref)).await,
        format!(
            "{}; signing certificate is not trusted by the Fulcio CAs of the trust root: it was not issued through this certificate authority's chain",
            unmet()
        )
    );
}

/// A leaf valid from two hours ago for an hour (the test CA itself is valid from yesterday).
fn past_leaf(world: &World) -> (LeafCertificate, i64) {
    let now = Utc::now();
    let leaf = world
        .fulcio
        .issue(&email().with_validity(now - TimeDelta::hours(2), now - TimeDelta::hours(1)))
        .expect("leaf");
    let inside = (now - TimeDelta::minutes(90)).timestamp();
    (leaf, inside)
}

/// A [`past_leaf`]'s bundle integrated inside its validity verifies; the same leaf's bundle
/// integrated at `forged` (now when `None`) is refused by `fulcio::chain_at` for `why`.
async fn refused_outside_validity(forged: Option<i64>, why: &str) {
    let world = World::new();
    let (leaf, inside) = past_leaf(&world);
    let control = signed(&world, "inside", around(&world, &leaf, &leaf.key, Some(inside)));
    let outside = signed(&world, "outside", around(&world, &leaf, &leaf.key, forged));
    let verifier = world.verifier();

    passes(&verifier, keyless(&control.tag_ref)).await;
    let reason = fails(&verifier, keyless(&outside.tag_ref)).await;
    assert!(
        reason.starts_with(&format!(
            "{}; signing certificate is not trusted by the Fulcio CAs of the trust root: {why}",
            unmet()
        )),
        "{reason}"
    );
}

/// `fulcio::chain_at` at the entry's integration time: the leaf had expired when the entry was
/// integrated (now); the same leaf with an entry integrated inside its validity verifies.
#[tokio::test]
async fn a_certificate_expired_at_the_integration_time_is_refused() {
    refused_outside_validity(None, "it or a certificate of its chain had expired at").await;
}

/// `fulcio::chain_at` at the entry's integration time: the entry was integrated before the leaf's
/// `notBefore`; the same leaf with an entry integrated inside its validity verifies.
#[tokio::test]
async fn a_certificate_not_yet_valid_at_the_integration_time_is_refused() {
    refused_outside_validity(
        Some((Utc::now() - TimeDelta::hours(3)).timestamp()),
        "it or a certificate of its chain was not valid yet at",
    )
    .await;
}

/// bundle.rs `certificate_signer`: a certificate counts only with a bound log entry. The genuine
/// keyless bundle verifies; the same bundle with its entry removed does not.
#[tokio::test]
async fn a_keyless_bundle_without_its_log_entry_is_refused() {
    let world = World::new();
    let control = signed(&world, "genuine", keyless_by(&world.fulcio, &world, &email()));
    let stripped = signed(&world, "stripped", |digest| {
        edited(&keyless_by(&world.fulcio, &world, &email())(digest), |v| {
            v.pointer_mut("/verificationMaterial")?
                .as_object_mut()?
                .remove("tlogEntries")?;
            Some(())
        })
    });
    let verifier = world.verifier();

    passes(&verifier, keyless(&control.tag_ref)).await;
    assert_eq!(
        fails(&verifier, keyless(&stripped.tag_ref)).await,
        format!(
            "{}; signing certificate comes without a bound transparency log entry",
            unmet()
        )
    );
}

/// A keyless request like `keyless` that may ignore SCTs (`insecure_ignore_sct`).
fn regexp(image: &str, ignore_sct: bool) -> VerificationRequest {
    VerificationRequest::KeylessRegexp(KeylessRegexpRequest {
        image: image.to_string(),
        issuer: Some(ISSUER.to_string()),
        subject_regexp: Some(r"dev@example\.com".to_string()),
        insecure_ignore_sct: ignore_sct,
        ..Default::default()
    })
}

/// A bundle whose leaf embeds an SCT of `mode`: refused by the keyless request (answered), and
/// verifying the regexp request only when it ignores SCTs (the SCT is the only fault). A leaf
/// with a valid SCT, built the same way, verifies both requests.
async fn sct_refusal(mode: SctMode) -> (World, String) {
    let world = World::new();
    let control = signed(&world, "valid-sct", keyless_by(&world.fulcio, &world, &email()));
    let forged = signed(
        &world,
        "bad-sct",
        keyless_by(&world.fulcio, &world, &email().with_sct(mode)),
    );
    let verifier = world.verifier();

    passes(&verifier, keyless(&control.tag_ref)).await;
    passes(&verifier, regexp(&control.tag_ref, false)).await;
    passes(&verifier, regexp(&forged.tag_ref, true)).await;
    fails(&verifier, regexp(&forged.tag_ref, false)).await;
    let reason = fails(&verifier, keyless(&forged.tag_ref)).await;
    (world, reason)
}

#[tokio::test]
async fn a_keyless_bundle_whose_certificate_has_no_sct_is_refused() {
    let (_world, reason) = sct_refusal(SctMode::Missing).await;
    assert_eq!(
        reason,
        format!(
            "{}; signing certificate has no embedded SCT (certificate transparency proof)",
            unmet()
        )
    );
}

#[tokio::test]
async fn a_keyless_bundle_whose_certificate_has_a_corrupted_sct_is_refused() {
    let (world, reason) = sct_refusal(SctMode::Corrupted).await;
    assert_eq!(
        reason,
        format!(
            "{}; certificate's SCT does not verify under CT log key {}",
            unmet(),
            hex::encode(world.fulcio.ct_log_id_raw())
        )
    );
}

#[tokio::test]
async fn a_keyless_bundle_whose_certificate_has_an_sct_of_an_unknown_log_is_refused() {
    let (_world, reason) = sct_refusal(SctMode::UnknownLog).await;
    assert!(
        reason.starts_with(&format!("{}; certificate's SCT is from CT log ", unmet())),
        "{reason}"
    );
    assert!(reason.ends_with(", which is not in the trust root"), "{reason}");
}

/// `bundle`'s certificate replaced by `leaf`'s, its log entry kept.
fn with_certificate_of(bundle: SigstoreBundle, leaf: &LeafCertificate) -> SigstoreBundle {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.encode(&leaf.cert_der);
    edited(&bundle, |v| {
        *v.pointer_mut("/verificationMaterial/certificate/rawBytes")? = Value::String(raw);
        Some(())
    })
}

/// bundle.rs `bind_dsse_entry`: the logged certificate must be the bundle's. Fulcio certified
/// one key twice for the same identity; each leaf with its own entry verifies, so the swapped
/// leaf chains, verifies the signature and has a valid SCT. The bundle keeping the genuine entry
/// of the first leaf but showing the second is refused, and so is one showing a leaf of another
/// key (the audit's case, where the entry check comes first).
#[tokio::test]
async fn a_certificate_other_than_the_logged_one_is_refused() {
    let world = World::new();
    let key = KeyPair::ecdsa_p256().expect("key");
    let logged = world.fulcio.issue_for_key(&email(), &key).expect("leaf");
    let twin = world.fulcio.issue_for_key(&email(), &key).expect("leaf");
    assert_ne!(logged.cert_der, twin.cert_der);
    let other_key = world.fulcio.issue(&email()).expect("leaf");
    let as_logged = signed(&world, "as-logged", around(&world, &logged, &key, None));
    let twin_logged = signed(&world, "twin-logged", around(&world, &twin, &key, None));
    let swapped = signed(&world, "swapped", |digest| {
        with_certificate_of(around(&world, &logged, &key, None)(digest), &twin)
    });
    let swapped_other = signed(&world, "swapped-other", |digest| {
        with_certificate_of(around(&world, &logged, &key, None)(digest), &other_key)
    });
    let verifier = world.verifier();

    passes(&verifier, keyless(&as_logged.tag_ref)).await;
    passes(&verifier, keyless(&twin_logged.tag_ref)).await;
    for forged in [&swapped, &swapped_other] {
        assert_eq!(
            fails(&verifier, keyless(&forged.tag_ref)).await,
            format!(
                "sigstore bundle {}: sigstore bundle's transparency log entry is not trusted: it describes another signature: its certificate is not this bundle's certificate",
                forged.referrer
            )
        );
    }
}
