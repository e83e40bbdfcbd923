//! The article's `keyless-policy`: signatures made through a test Fulcio CA and logged in a
//! test Rekor (both trusted through a sigstore trust config), verified by identity.

mod common;

use anyhow::Context as _;
use common::{Host, HostOptions, article, on_registry, pod, settings};
use serde_json::{Value, json};
use testkit::{
    LeafRequest, Registry, SignerIdentity, TestFulcio, TestRekor, certificate_signature_layer, push_image,
    push_signature_layers, sign_keyless,
};

const GOOGLE: &str = "https://accounts.google.com";

/// Pushes `repo:tag` and signs it keyless as `identity` logged in through `issuer`.
fn keyless_image(
    registry: &str,
    tag: &str,
    fulcio: &TestFulcio,
    rekor: &TestRekor,
    identity: SignerIdentity,
    issuer: &str,
) -> anyhow::Result<(String, String)> {
    let digest = push_image(registry, "app", tag, &format!("app:{tag}"))?;
    let request = LeafRequest::new(identity, issuer);
    sign_keyless(registry, "app", &digest, fulcio, rekor, &request, &Default::default())?;
    Ok((format!("{registry}/app:{tag}"), digest))
}

fn pinned(response: &common::Response) -> Option<&Value> {
    response.mutated().and_then(|o| o.pointer("/spec/containers/0/image"))
}

#[test]
fn keyless_policy_admits_the_right_identity_and_refuses_others() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (fulcio, rekor) = (TestFulcio::new()?, TestRekor::new()?);
    let email = |s: &str| SignerIdentity::Email(s.to_owned());

    let (good, good_digest) = keyless_image(&host, "good", &fulcio, &rekor, email("user@example.com"), GOOGLE)?;
    let (wrong_subject, _) = keyless_image(
        &host,
        "wrong-subject",
        &fulcio,
        &rekor,
        email("mallory@example.com"),
        GOOGLE,
    )?;
    let (wrong_issuer, _) = keyless_image(
        &host,
        "wrong-issuer",
        &fulcio,
        &rekor,
        email("user@example.com"),
        "https://accounts.evil.example",
    )?;
    // The right identity, certified by a CA nobody trusts.
    let rogue = TestFulcio::new()?;
    let (rogue_ca, _) = keyless_image(&host, "rogue-ca", &rogue, &rekor, email("user@example.com"), GOOGLE)?;

    let s = settings(&[on_registry(&article("keyless-policy"), &host)], json!({}));
    let trust = testkit::trust_config_json(&fulcio, &rekor);
    let cip = Host::new(HostOptions::for_registry(&host).with_trust_config(&trust));

    let response = cip.validate(&pod("default", &[&good]), &s);
    response.assert_admitted("signed keyless by user@example.com through accounts.google.com");
    assert_eq!(
        pinned(&response),
        Some(&json!(format!("{good}@{good_digest}"))),
        "{response}"
    );

    for (image, why) in [
        (&wrong_subject, "signed by mallory@example.com"),
        (&wrong_issuer, "user@example.com logged in through another issuer"),
        (&rogue_ca, "certificate from an untrusted Fulcio CA"),
    ] {
        let response = cip.validate(&pod("default", &[image]), &s);
        let message = response.assert_refused(why);
        assert!(
            message.starts_with(&format!(
                "Pod default/test: image {image} denied by policy keyless-policy: authority authority-0: "
            )),
            "{why}: {message}"
        );
    }

    // Without a trust root nothing keyless can be trusted, and the refusal says so.
    let untrusting = Host::for_registry(&host);
    let response = untrusting.validate(&pod("default", &[&good]), &s);
    let message = response.assert_refused("keyless signature without a sigstore trust config");
    assert!(message.contains("denied by policy keyless-policy"), "{message}");
    Ok(())
}

#[test]
fn keyless_regexp_identities_match_the_whole_value() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (fulcio, rekor) = (TestFulcio::new()?, TestRekor::new()?);
    let email = |s: &str| SignerIdentity::Email(s.to_owned());
    let workflow = "https://github.com/my-org/app/.github/workflows/release.yml@refs/heads/main";

    let (user, _) = keyless_image(&host, "user", &fulcio, &rekor, email("user@example.com"), GOOGLE)?;
    let (ops, ops_digest) = keyless_image(&host, "ops", &fulcio, &rekor, email("ops@example.com"), GOOGLE)?;
    let (ci, _) = keyless_image(
        &host,
        "ci",
        &fulcio,
        &rekor,
        SignerIdentity::Uri(workflow.to_owned()),
        "https://token.actions.githubusercontent.com",
    )?;
    let (suffix, _) = keyless_image(
        &host,
        "suffix",
        &fulcio,
        &rekor,
        email("user@example.com.evil.io"),
        GOOGLE,
    )?;
    let (other_domain, _) = keyless_image(&host, "other", &fulcio, &rekor, email("user@evil.io"), GOOGLE)?;
    let (fake_issuer, _) = keyless_image(
        &host,
        "fake-issuer",
        &fulcio,
        &rekor,
        email("user@example.com"),
        "https://accounts.google.com.evil.io",
    )?;

    // keyless-policy with its identity written as patterns, plus a GitHub workflow identity.
    let mut s = settings(&[on_registry(&article("keyless-policy"), &host)], json!({}));
    s["policies"][0]["spec"]["authorities"][0]["keyless"]["identities"] = json!([
        {"issuerRegExp": "https://accounts\\.google\\.com", "subjectRegExp": ".*@example\\.com"},
        {"issuer": "https://token.actions.githubusercontent.com",
         "subjectRegExp": "https://github\\.com/my-org/[^/]+/\\.github/workflows/release\\.yml@refs/heads/main"}
    ]);
    let trust = testkit::trust_config_json(&fulcio, &rekor);
    let cip = Host::new(HostOptions::for_registry(&host).with_trust_config(&trust));

    for image in [&user, &ci] {
        cip.validate(&pod("default", &[image]), &s)
            .assert_admitted(&format!("{image}: identity matching a pattern"));
    }
    let response = cip.validate(&pod("default", &[&ops]), &s);
    response.assert_admitted("ops@example.com");
    assert_eq!(
        pinned(&response),
        Some(&json!(format!("{ops}@{ops_digest}"))),
        "{response}"
    );

    for (image, why) in [
        (
            &suffix,
            "subject user@example.com.evil.io only contains a match: patterns are anchored",
        ),
        (&other_domain, "subject user@evil.io"),
        (
            &fake_issuer,
            "issuer https://accounts.google.com.evil.io only contains a match",
        ),
    ] {
        let response = cip.validate(&pod("default", &[image]), &s);
        let message = response.assert_refused(why);
        assert!(
            message.contains("denied by policy keyless-policy: authority authority-0: "),
            "{why}: {message}"
        );
    }
    Ok(())
}

#[test]
fn keyless_signature_without_a_trusted_rekor_bundle_is_refused() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (fulcio, rekor, rogue_rekor) = (TestFulcio::new()?, TestRekor::new()?, TestRekor::new()?);
    let leaf = fulcio.issue(&LeafRequest::new(
        SignerIdentity::Email("user@example.com".to_owned()),
        GOOGLE,
    ))?;
    let chain = fulcio.chain_pem();
    let annotations = Default::default();

    let mut images = Vec::new();
    for (tag, log) in [
        ("logged", Some(&rekor)),
        ("unlogged", None),
        ("rogue-log", Some(&rogue_rekor)),
    ] {
        let digest = push_image(&host, "app", tag, &format!("app:{tag}"))?;
        let layer = certificate_signature_layer(&host, "app", &digest, &leaf, Some(&chain), log, &annotations)?;
        push_signature_layers(&host, "app", &digest, &[layer])?;
        images.push(format!("{host}/app:{tag}"));
    }
    let s = settings(&[on_registry(&article("keyless-policy"), &host)], json!({}));
    let trust = testkit::trust_config_json(&fulcio, &rekor);
    let cip = Host::new(HostOptions::for_registry(&host).with_trust_config(&trust));

    cip.validate(&pod("default", &[&images[0]]), &s)
        .assert_admitted("the right identity, logged in the trusted Rekor");
    for (image, why) in [
        (
            &images[1],
            "no Rekor bundle: nothing proves when the short-lived certificate signed",
        ),
        (&images[2], "a bundle signed by a Rekor key nobody trusts"),
    ] {
        let message = cip
            .validate(&pod("default", &[image]), &s)
            .assert_refused(why)
            .to_owned();
        assert!(
            message.contains(&format!(
                "image {image} denied by policy keyless-policy: authority authority-0: "
            )),
            "{why}: {message}"
        );
    }
    Ok(())
}

/// The forgery of issue 10 through `cip run` and the real module: the certificate and Rekor
/// bundle of a genuine keyless signature, copied next to a payload naming the attacker's
/// digest, must not make the attacker's image signed by that identity.
#[test]
fn cip_run_refuses_a_certificate_and_bundle_copied_onto_another_image() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let (fulcio, rekor) = (TestFulcio::new()?, TestRekor::new()?);
    let identity = SignerIdentity::Email("user@example.com".to_owned());
    let (good, good_digest) = keyless_image(&host, "good", &fulcio, &rekor, identity, GOOGLE)?;
    let genuine = testkit::fetch_signature_layers(&host, "app", &good_digest)?
        .into_iter()
        .next()
        .context("the genuine signature")?;
    let evil_digest = push_image(&host, "app", "evil", "evil payload")?;
    let forged = testkit::CosignLayer {
        payload: testkit::simple_signing_payload(&host, "app", &evil_digest, &Default::default())?,
        annotations: genuine.annotations.clone(),
    };
    push_signature_layers(&host, "app", &evil_digest, &[forged])?;
    let evil = format!("{host}/app:evil");
    let s = settings(&[on_registry(&article("keyless-policy"), &host)], json!({}));
    let trust = testkit::trust_config_json(&fulcio, &rekor);

    let honest = common::cip_run(&pod("default", &[&good]), &s, &host, Some(&trust));
    let forged = common::cip_run(&pod("default", &[&evil]), &s, &host, Some(&trust));

    assert_eq!(
        honest.response["allowed"],
        json!(true),
        "{}{}",
        honest.stdout,
        honest.stderr
    );
    assert_eq!(
        forged.response["allowed"],
        json!(false),
        "{}{}",
        forged.stdout,
        forged.stderr
    );
    let message = forged.response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("denied by policy keyless-policy"), "{message}");
    Ok(())
}
