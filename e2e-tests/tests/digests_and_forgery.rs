//! Signatures are bound to digests: an image given by digest is verified at that digest, a tag
//! that moved after signing is refused, and signatures copied from another image or tampered
//! with are refused. Policy: the article's `signed-images-policy` with a real key.

mod common;

use std::collections::BTreeMap;

use common::{Host, Response, article, on_registry, pod, settings};
use e2e_tests::with_keys;
use serde_json::{Value, json};
use testkit::{
    KeyPair, ManifestFormat, Registry, copy_signatures, key_signature_layer, move_tag, push_image, push_image_as,
    push_index, push_signature_layers, sign_with_key,
};

/// A registry, a key, and the article's policy trusting that key on that registry.
struct Fixture {
    /// Kept alive for the test; stopped and deleted on drop.
    _registry: Registry,
    host: String,
    key: KeyPair,
    settings: Value,
}

impl Fixture {
    fn new() -> anyhow::Result<Self> {
        let registry = Registry::start()?;
        let host = registry.host();
        let key = KeyPair::ecdsa_p256()?;
        let settings = settings(
            &[on_registry(
                &with_keys(&article("signed-images-policy"), &[key.public_key_pem()]),
                &host,
            )],
            json!({}),
        );
        Ok(Self {
            _registry: registry,
            host,
            key,
            settings,
        })
    }

    /// Pushes `repo:tag` (content from `seed`), signs it with the policy's key when asked.
    fn image(&self, repo: &str, tag: &str, seed: &str, signed: bool) -> anyhow::Result<String> {
        let digest = push_image(&self.host, repo, tag, seed)?;
        if signed {
            sign_with_key(&self.host, repo, &digest, &self.key, &BTreeMap::new())?;
        }
        Ok(digest)
    }

    fn admit(&self, cip: &Host, image: &str) -> Response {
        cip.validate(&pod("default", &[image]), &self.settings)
    }
}

fn pinned(response: &Response) -> Option<&str> {
    response
        .mutated()
        .and_then(|o| o.pointer("/spec/containers/0/image"))
        .and_then(Value::as_str)
}

#[test]
fn image_given_by_digest_is_verified_at_that_digest() -> anyhow::Result<()> {
    let f = Fixture::new()?;
    let host = &f.host;
    let signed = f.image("app", "v1", "app-v1", true)?;
    let unsigned = f.image("app", "v2", "app-v2", false)?;
    let cip = Host::for_registry(host);

    for image in [format!("{host}/app@{signed}"), format!("{host}/app:v1@{signed}")] {
        let response = f.admit(&cip, &image);
        response.assert_admitted(&format!("{image}: a signed digest"));
        assert_eq!(pinned(&response), None, "already pinned, nothing to change: {response}");
    }

    // v1 is signed, but the workload runs the digest it names: that digest is what counts.
    for image in [format!("{host}/app@{unsigned}"), format!("{host}/app:v1@{unsigned}")] {
        let message = f
            .admit(&cip, &image)
            .assert_refused(&format!("{image}: an unsigned digest"))
            .to_owned();
        assert!(
            message.contains(&format!("image {image} denied by policy signed-images-policy")),
            "{message}"
        );
    }
    Ok(())
}

#[test]
fn tag_moved_after_signing_is_refused() -> anyhow::Result<()> {
    let f = Fixture::new()?;
    let host = &f.host;
    let signed = f.image("app", "v1", "app-v1", true)?;
    let tag = format!("{host}/app:v1");

    let before = Host::for_registry(host);
    let response = f.admit(&before, &tag);
    response.assert_admitted("the tag as signed");
    assert_eq!(
        pinned(&response),
        Some(format!("{tag}@{signed}").as_str()),
        "{response}"
    );

    let moved = move_tag(host, "app", "v1", "app-v1-rebuilt-unsigned")?;
    assert_ne!(moved, signed);

    // A host with fresh caches resolves the tag again and finds no signature for the new digest.
    let after = Host::for_registry(host);
    let message = f
        .admit(&after, &tag)
        .assert_refused("the tag after it moved")
        .to_owned();
    assert!(
        message.starts_with(&format!(
            "Pod default/test: image {tag} denied by policy signed-images-policy: authority authority-0: "
        )),
        "{message}"
    );
    // The workload pinned at admission keeps running what was verified.
    f.admit(&after, &format!("{tag}@{signed}"))
        .assert_admitted("the pinned reference admitted before the move");
    // And the new digest written out is refused too.
    f.admit(&after, &format!("{tag}@{moved}"))
        .assert_refused("the moved tag's digest");

    // A host that verified the tag a moment ago may answer from its cache, but it can only pin
    // the digest it verified, never the new one.
    let response = f.admit(&before, &tag);
    if response.accepted() {
        assert_eq!(
            pinned(&response),
            Some(format!("{tag}@{signed}").as_str()),
            "a cached admission must pin the verified digest: {response}"
        );
    }
    Ok(())
}

#[test]
fn signature_copied_from_another_image_is_refused() -> anyhow::Result<()> {
    let f = Fixture::new()?;
    let host = &f.host;
    let original = f.image("app", "v1", "app-v1", true)?;
    let target = f.image("evil", "v1", "evil-v1", false)?;
    copy_signatures(host, "app", &original, "evil", &target)?;
    let cip = Host::for_registry(host);

    f.admit(&cip, &format!("{host}/app:v1"))
        .assert_admitted("the image the signature was made for");
    let image = format!("{host}/evil:v1");
    let message = f
        .admit(&cip, &image)
        .assert_refused("an image carrying a signature copied from another image's .sig tag")
        .to_owned();
    assert!(
        message.starts_with(&format!(
            "Pod default/test: image {image} denied by policy signed-images-policy: authority authority-0: "
        )),
        "{message}"
    );
    // Same repository, other digest: a copy between tags of one repository is refused too.
    let sibling = f.image("app", "v2", "app-v2", false)?;
    copy_signatures(host, "app", &original, "app", &sibling)?;
    f.admit(&cip, &format!("{host}/app:v2"))
        .assert_refused("a signature copied to another digest of the same repository");
    Ok(())
}

#[test]
fn tampered_or_corrupted_signature_is_refused() -> anyhow::Result<()> {
    let f = Fixture::new()?;
    let host = &f.host;
    let tampered = f.image("tampered", "v1", "tampered", false)?;
    let layer = key_signature_layer(host, "tampered", &tampered, &f.key, &BTreeMap::new())?;
    push_signature_layers(host, "tampered", &tampered, &[layer.with_tampered_payload()?])?;
    let corrupted = f.image("corrupted", "v1", "corrupted", false)?;
    let layer = key_signature_layer(host, "corrupted", &corrupted, &f.key, &BTreeMap::new())?;
    push_signature_layers(host, "corrupted", &corrupted, &[layer.with_corrupted_signature()?])?;
    f.image("intact", "v1", "intact", true)?;
    let cip = Host::for_registry(host);

    f.admit(&cip, &format!("{host}/intact:v1"))
        .assert_admitted("an intact signature by the same key");
    for (repo, why) in [
        ("tampered", "the payload was changed after signing"),
        ("corrupted", "the signature bytes were changed"),
    ] {
        let image = format!("{host}/{repo}:v1");
        let message = f.admit(&cip, &image).assert_refused(why).to_owned();
        assert!(
            message.contains(&format!(
                "image {image} denied by policy signed-images-policy: authority authority-0: "
            )),
            "{why}: {message}"
        );
    }
    Ok(())
}

#[test]
fn multi_platform_index_and_docker_manifests_are_verified_at_their_own_digest() -> anyhow::Result<()> {
    let f = Fixture::new()?;
    let host = &f.host;
    // `cosign sign app:multi` signs what the tag names: the index, not a platform manifest.
    let amd64 = f.image("app", "amd64", "app-amd64", false)?;
    let arm64 = f.image("app", "arm64", "app-arm64", false)?;
    let index = push_index(
        host,
        "app",
        "multi",
        &[(&amd64, "linux/amd64"), (&arm64, "linux/arm64")],
    )?;
    sign_with_key(host, "app", &index, &f.key, &BTreeMap::new())?;
    let docker = push_image_as(host, "legacy", "v1", "legacy-v1", ManifestFormat::DockerV2)?;
    sign_with_key(host, "legacy", &docker, &f.key, &BTreeMap::new())?;
    let cip = Host::for_registry(host);

    for (image, digest) in [
        (format!("{host}/app:multi"), &index),
        (format!("{host}/legacy:v1"), &docker),
    ] {
        let response = f.admit(&cip, &image);
        response.assert_admitted(&format!("{image}: signed at the digest its tag names"));
        assert_eq!(
            pinned(&response),
            Some(format!("{image}@{digest}").as_str()),
            "{response}"
        );
    }
    // The platform manifests themselves carry no signature.
    f.admit(&cip, &format!("{host}/app@{amd64}"))
        .assert_refused("a platform manifest of a signed index, named by its own digest");
    Ok(())
}
