//! Key signatures pushed by the fixtures verify with sigstore-rs's own cosign client, and the
//! negative-test tools break exactly what they claim to.

use std::collections::BTreeMap;

use sigstore::cosign::verification_constraint::{AnnotationVerifier, PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, SignatureLayer, verify_constraints};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use testkit::{KeyPair, Registry, SigningScheme};

/// What `cosign verify` sees: the layers sigstore-rs accepts for `host/repo@digest`.
async fn cosign_layers(host: &str, repo: &str, digest: &str) -> anyhow::Result<Vec<SignatureLayer>> {
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .build()?;
    let image: OciReference = format!("{host}/{repo}@{digest}").parse()?;
    Ok(client.trusted_signature_layers(&Auth::Anonymous, &image).await?)
}

fn key_verifier(key: &KeyPair) -> anyhow::Result<VerificationConstraintVec> {
    Ok(vec![Box::new(PublicKeyVerifier::new(
        key.public_key_pem().as_bytes(),
        &key.scheme(),
    )?)])
}

fn verified(layers: &[SignatureLayer], constraints: &VerificationConstraintVec) -> bool {
    verify_constraints(layers, constraints.iter()).is_ok()
}

#[tokio::test]
async fn key_signatures_of_every_scheme_verify_with_sigstore() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    for (index, scheme) in [
        SigningScheme::ECDSA_P256_SHA256_ASN1,
        SigningScheme::ECDSA_P384_SHA384_ASN1,
        SigningScheme::RSA_PKCS1_SHA256(2048),
        SigningScheme::ED25519,
    ]
    .into_iter()
    .enumerate()
    {
        let repo = format!("schemes/app{index}");
        let digest = testkit::push_image(&host, &repo, "v1", &format!("scheme-{index}"))?;
        let key = KeyPair::generate(scheme)?;
        assert!(key.public_key_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        testkit::sign_with_key(&host, &repo, &digest, &key, &BTreeMap::new())?;

        let layers = cosign_layers(&host, &repo, &digest).await?;
        assert_eq!(layers.len(), 1, "{scheme}");
        assert!(
            verified(&layers, &key_verifier(&key)?),
            "{scheme} signature did not verify"
        );
        let stranger = KeyPair::generate(scheme)?;
        assert!(
            !verified(&layers, &key_verifier(&stranger)?),
            "{scheme}: any key verified"
        );
    }
    Ok(())
}

#[tokio::test]
async fn second_signer_appends_a_layer_sharing_the_payload_blob() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image(&host, "shared", "v1", "shared")?;
    let alice = KeyPair::ecdsa_p256()?;
    let bob = KeyPair::ecdsa_p256()?;
    testkit::sign_with_key(&host, "shared", &digest, &alice, &BTreeMap::new())?;
    testkit::sign_with_key(&host, "shared", &digest, &bob, &BTreeMap::new())?;

    let stored = testkit::fetch_signature_layers(&host, "shared", &digest)?;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].digest(), stored[1].digest());
    assert_ne!(stored[0].signature(), stored[1].signature());

    let layers = cosign_layers(&host, "shared", &digest).await?;
    assert!(verified(&layers, &key_verifier(&alice)?));
    assert!(verified(&layers, &key_verifier(&bob)?));
    Ok(())
}

#[tokio::test]
async fn annotations_are_signed_into_the_payload() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image(&host, "annotated", "v1", "annotated")?;
    let key = KeyPair::ecdsa_p256()?;
    testkit::sign_with_key(
        &host,
        "annotated",
        &digest,
        &key,
        &testkit::annotations([("env", "prod")]),
    )?;

    let layers = cosign_layers(&host, "annotated", &digest).await?;
    let mut prod = key_verifier(&key)?;
    prod.push(Box::new(AnnotationVerifier {
        annotations: testkit::annotations([("env", "prod")]),
    }));
    assert!(verified(&layers, &prod));
    let dev: VerificationConstraintVec = vec![
        Box::new(PublicKeyVerifier::new(key.public_key_pem().as_bytes(), &key.scheme())?),
        Box::new(AnnotationVerifier {
            annotations: testkit::annotations([("env", "dev")]),
        }),
    ];
    assert!(!verified(&layers, &dev));
    Ok(())
}

#[tokio::test]
async fn corrupted_and_tampered_layers_do_not_verify() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let no_annotations = BTreeMap::new();

    let corrupted = testkit::push_image(&host, "bad", "corrupted", "corrupted")?;
    let layer = testkit::key_signature_layer(&host, "bad", &corrupted, &key, &no_annotations)?;
    testkit::push_signature_layers(&host, "bad", &corrupted, &[layer.with_corrupted_signature()?])?;
    let layers = cosign_layers(&host, "bad", &corrupted).await?;
    assert_eq!(layers.len(), 1, "the corrupted layer is still well formed");
    assert!(!verified(&layers, &key_verifier(&key)?));

    let tampered = testkit::push_image(&host, "bad", "tampered", "tampered")?;
    let layer = testkit::key_signature_layer(&host, "bad", &tampered, &key, &no_annotations)?;
    testkit::push_signature_layers(&host, "bad", &tampered, &[layer.with_tampered_payload()?])?;
    assert!(!verified(
        &cosign_layers(&host, "bad", &tampered).await?,
        &key_verifier(&key)?
    ));
    Ok(())
}

#[tokio::test]
async fn signatures_naming_or_copied_from_another_image_do_not_verify() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let key = KeyPair::ecdsa_p256()?;
    let no_annotations = BTreeMap::new();
    let signed = testkit::push_image(&host, "app", "signed", "signed")?;
    let unsigned = testkit::push_image(&host, "app", "unsigned", "unsigned")?;
    testkit::sign_with_key(&host, "app", &signed, &key, &no_annotations)?;

    // A layer signed for `signed` stored under `unsigned`'s signature tag.
    let foreign = testkit::key_signature_layer(&host, "app", &signed, &key, &no_annotations)?;
    testkit::push_signature_layers(&host, "app", &unsigned, &[foreign])?;
    assert!(cosign_layers(&host, "app", &unsigned).await?.is_empty());

    let other = testkit::push_image(&host, "other", "v1", "other")?;
    testkit::copy_signatures(&host, "app", &signed, "other", &other)?;
    assert_eq!(testkit::fetch_signature_layers(&host, "other", &other)?.len(), 1);
    assert!(cosign_layers(&host, "other", &other).await?.is_empty());

    assert!(verified(
        &cosign_layers(&host, "app", &signed).await?,
        &key_verifier(&key)?
    ));
    testkit::delete_signatures(&host, "app", &signed)?;
    assert!(testkit::fetch_signature_layers(&host, "app", &signed)?.is_empty());
    assert!(cosign_layers(&host, "app", &signed).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn key_signature_with_rekor_bundle_is_checked_against_the_log_key() -> anyhow::Result<()> {
    use sigstore::cosign::bundle_content::BundleContent;
    use sigstore::trust::ManualTrustRoot;

    let registry = Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image(&host, "logged", "v1", "logged")?;
    let key = KeyPair::ecdsa_p256()?;
    let rekor = testkit::TestRekor::new()?;
    let now = chrono::Utc::now().timestamp();
    let layer = testkit::key_signature_layer(&host, "logged", &digest, &key, &BTreeMap::new())?.with_bundle(
        &rekor,
        key.public_key_pem(),
        now,
    )?;
    testkit::append_signature_layer(&host, "logged", &digest, layer)?;

    let trust = ManualTrustRoot {
        rekor_keys: BTreeMap::from([(rekor.log_id().to_owned(), rekor.public_key_der().to_vec())]),
        ..Default::default()
    };
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .with_trust_repository(&trust)?
        .build()?;
    let image: OciReference = format!("{host}/logged@{digest}").parse()?;
    let layers = client.trusted_signature_layers(&Auth::Anonymous, &image).await?;
    assert_eq!(layers.len(), 1);
    match &layers[0].bundle {
        Some(BundleContent::RekorBundle(bundle)) => {
            assert_eq!(bundle.payload.integrated_time, now);
            assert_eq!(bundle.payload.log_id, rekor.log_id());
        }
        other => anyhow::bail!("expected a verified Rekor bundle, got {other:?}"),
    }
    assert!(verified(&layers, &key_verifier(&key)?));

    let other_log = testkit::TestRekor::new()?;
    let untrusted = ManualTrustRoot {
        rekor_keys: BTreeMap::from([(other_log.log_id().to_owned(), other_log.public_key_der().to_vec())]),
        ..Default::default()
    };
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .with_trust_repository(&untrusted)?
        .build()?;
    assert!(
        client
            .trusted_signature_layers(&Auth::Anonymous, &image)
            .await?
            .is_empty()
    );
    Ok(())
}
