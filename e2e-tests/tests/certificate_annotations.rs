//! A `certificate` authority with `annotations`, end to end: the real `policy.wasm` in the
//! `cip` host (library, and the `cip run` binary), a loopback `docker-registry`, images signed
//! with a certificate issued by testkit's Fulcio and logged in testkit's Rekor (a Rekor bundle
//! on the layer, the authority's `requireRekorBundle` left at its default, true). No mocks.
//!
//! The forgery: a stock Kubewarden host checks a certificate request's annotations on any
//! layer of the `.sig` manifest, an unsigned one included (as commit e2307e3 and
//! docs/binding-defence.md describe policy-evaluator's `verify_certificate`: a
//! `CertificateVerifier` and an `AnnotationVerifier` as two separate constraints, each satisfied
//! by any layer), so whoever can push to the registry adds, next to a genuine signature
//! carrying `env: staging`, an unsigned layer naming the same digest with `env: prod`. Since
//! commit e2307e3 the module also asks `SigstorePubKeyVerify` with the certificate's public key
//! and the annotations, which a host answers on a layer that key signed.
//!
//! What this file proves, and what it cannot: `cip` checks a certificate request's annotations
//! on the layer the certificate's key signed, so under `cip` the forgery is refused by the
//! certificate request itself, with or without e2307e3 (checked with a module built from
//! e2307e3's parent: same refusal, same message). The forgery test therefore pins the
//! end-to-end refusal under `cip` and records where it comes from. What fails without e2307e3
//! is the admitted case: its recorded host calls must include the `SigstorePubKeyVerify`
//! request with the certificate's public key and `env: prod`, answered by the real `cip`
//! verifier for the image's digest. The stock-host answer to the forgery (the certificate
//! request trusted, the key request not) is covered by the unit tests of
//! `src/authority/certificate.rs`.

mod common;

use std::collections::BTreeMap;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{CipRun, Host, HostOptions, Response, cip_run_with, pod, settings};
use serde_json::{Value, json};
use testkit::{
    CosignLayer, LeafCertificate, LeafRequest, Registry, SIGNATURE_ANNOTATION, SignerIdentity, TestFulcio, TestRekor,
    annotations, append_signature_layer, fetch_signature_layers, push_image, sign_with_certificate,
    simple_signing_payload,
};

const POLICY: &str = "certificate-policy";
const AUTHORITY: &str = "release-cert";

/// What `cip` answers a certificate request whose annotations are on no layer the
/// certificate's key signed (with a Rekor bundle).
const NOT_SIGNED_WITH_PROD: &str =
    "no signature verified by the given certificate with a valid Rekor bundle with annotations env=prod";

/// A registry, a Fulcio CA and a Rekor log, and a signing certificate they issued.
struct Fixture {
    registry: Registry,
    fulcio: TestFulcio,
    rekor: TestRekor,
    leaf: LeafCertificate,
}

impl Fixture {
    fn new() -> anyhow::Result<Self> {
        let registry = Registry::start()?;
        let fulcio = TestFulcio::new()?;
        let rekor = TestRekor::new()?;
        let leaf = fulcio.issue(&LeafRequest::new(
            SignerIdentity::Email("release@example.com".to_owned()),
            "https://accounts.google.com",
        ))?;
        Ok(Self {
            registry,
            fulcio,
            rekor,
            leaf,
        })
    }

    fn host(&self) -> String {
        self.registry.host()
    }

    /// Pushes `app:<tag>` and signs it with the certificate (`cosign sign --certificate
    /// --certificate-chain`, Rekor bundle included) with the payload annotation `env: <env>`;
    /// returns its reference and digest.
    fn signed_image(&self, tag: &str, env: &str) -> anyhow::Result<(String, String)> {
        let host = self.host();
        let digest = push_image(&host, "app", tag, &format!("app:{tag}"))?;
        sign_with_certificate(
            &host,
            "app",
            &digest,
            &self.leaf,
            &self.fulcio.chain_pem(),
            Some(&self.rekor),
            &annotations([("env", env)]),
        )?;
        Ok((format!("{host}/app:{tag}"), digest))
    }

    /// One ClusterImagePolicy over the registry whose only authority is the certificate with
    /// its chain, `requireRekorBundle` left to its default (true), requiring `env: <env>`.
    fn settings(&self, env: &str) -> Value {
        let host = self.host();
        let cip = format!(
            "apiVersion: policy.sigstore.dev/v1beta1\n\
             kind: ClusterImagePolicy\n\
             metadata:\n  name: {POLICY}\n\
             spec:\n  images:\n  - glob: \"{host}/**\"\n  authorities: []\n"
        );
        let mut s = settings(&[cip], json!({}));
        s["policies"][0]["spec"]["authorities"] = json!([{
            "name": AUTHORITY,
            "certificate": {"data": self.leaf.cert_pem, "chain": self.fulcio.chain_pem()},
            "annotations": {"env": env},
        }]);
        s
    }

    fn trust_config(&self) -> String {
        testkit::trust_config_json(&self.fulcio, &self.rekor)
    }

    /// A `cip` host (library) reaching the registry and trusting the Rekor log.
    fn cip(&self) -> Host {
        Host::new(HostOptions::for_registry(&self.host()).with_trust_config(&self.trust_config()))
    }

    /// `cip run` of a Pod running `image` under `settings`, recording the host calls; `extra`
    /// options go before the module.
    fn recorded_run(&self, image: &str, settings: &Value, extra: &[&str]) -> anyhow::Result<(CipRun, Vec<Exchange>)> {
        let session = tempfile::NamedTempFile::new()?;
        let path = session.path().to_string_lossy().into_owned();
        let mut options = vec!["--record-host-capabilities-interactions", path.as_str()];
        options.extend_from_slice(extra);
        let run = cip_run_with(
            &pod("default", &[image]),
            settings,
            &self.host(),
            Some(&self.trust_config()),
            &options,
        );
        assert_eq!(run.code, Some(0), "{run:#?}");
        let exchanges = exchanges(&std::fs::read_to_string(session.path())?)?;
        Ok((run, exchanges))
    }
}

/// One recorded host call (kwctl's session format): the request's type (its YAML tag), its
/// fields, and the answer (`Ok(payload)` or `Err(message)`).
#[derive(Debug)]
struct Exchange {
    kind: String,
    request: serde_yaml::Value,
    response: Result<String, String>,
}

fn exchanges(session: &str) -> anyhow::Result<Vec<Exchange>> {
    let entries: Vec<serde_yaml::Value> = serde_yaml::from_str(session).context("the session is not YAML")?;
    entries
        .iter()
        .map(|entry| {
            let text = entry["request"].as_str().context("a request is not text")?;
            let (tag, fields) = text.split_once('\n').unwrap_or((text, ""));
            let response = &entry["response"];
            let answer = |field: &str| response[field].as_str().unwrap_or_default().to_owned();
            Ok(Exchange {
                kind: tag.trim_start_matches('!').to_owned(),
                request: serde_yaml::from_str(fields).with_context(|| format!("the request {text}"))?,
                response: match response["type"].as_str() {
                    Some("Success") => Ok(answer("payload")),
                    _ => Err(answer("message")),
                },
            })
        })
        .collect()
}

/// The kinds of the recorded calls, for failure messages (requests carry whole certificates).
fn kinds(calls: &[Exchange]) -> Vec<&str> {
    calls.iter().map(|call| call.kind.as_str()).collect()
}

fn pinned(response: &Response) -> Option<&Value> {
    response.mutated().and_then(|o| o.pointer("/spec/containers/0/image"))
}

fn run_message(run: &CipRun) -> &str {
    run.response["status"]["message"].as_str().unwrap_or_default()
}

/// The DER a PEM block holds.
fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("-----"))
        .collect();
    Ok(BASE64.decode(body)?)
}

/// Case 1: `env: prod` on the layer the certificate's key signed, `env: prod` required.
#[test]
fn annotations_on_the_certificate_signed_layer_admit_and_pin() -> anyhow::Result<()> {
    let fixture = Fixture::new()?;
    let (image, digest) = fixture.signed_image("prod", "prod")?;
    let prod = fixture.settings("prod");

    let response = fixture.cip().validate(&pod("default", &[&image]), &prod);
    response.assert_admitted("signed by the certificate with env=prod, env=prod required");
    assert_eq!(
        pinned(&response),
        Some(&json!(format!("{image}@{digest}"))),
        "{response}"
    );

    // Through `cip run`: admitted and pinned, and the module asked (e2307e3) whether a layer
    // signed by the certificate's public key carries env=prod; the real verifier said yes, for
    // this digest.
    let (run, calls) = fixture.recorded_run(&image, &prod, &[])?;
    assert_eq!(run.response["allowed"], json!(true), "{run:#?}");
    assert!(
        run.patch()?
            .iter()
            .any(|op| op["value"] == json!(format!("{image}@{digest}"))),
        "the image is pinned to the signed digest: {run:#?}"
    );
    let by_key: Vec<&Exchange> = calls
        .iter()
        .filter(|call| call.kind == "SigstorePubKeyVerify")
        .collect();
    let [by_key] = by_key[..] else {
        panic!(
            "one SigstorePubKeyVerify request expected (the annotations asked of the certificate's key): {:?}",
            kinds(&calls)
        );
    };
    assert_eq!(by_key.request["image"].as_str(), Some(image.as_str()), "{by_key:#?}");
    let keys = by_key.request["pub_keys"].as_sequence().context("pub_keys")?;
    assert_eq!(keys.len(), 1, "{by_key:#?}");
    assert_eq!(
        pem_der(keys[0].as_str().context("a PEM key")?)?,
        fixture.leaf.key.public_key_der(),
        "the key asked about is the certificate's: {by_key:#?}"
    );
    assert_eq!(
        by_key.request["annotations"],
        serde_yaml::from_str::<serde_yaml::Value>("env: prod")?,
        "{by_key:#?}"
    );
    let answer: Value = serde_json::from_str(by_key.response.as_ref().map_err(|e| anyhow::anyhow!("refused: {e}"))?)?;
    assert_eq!(answer, json!({"is_trusted": true, "digest": digest}), "{by_key:#?}");
    Ok(())
}

/// Case 2: the genuine signature carries `env: staging`; an unsigned layer naming the same
/// digest with `env: prod` is appended to the same `.sig` manifest; `env: prod` required.
#[test]
fn annotations_on_an_unsigned_layer_next_to_a_genuine_signature_are_refused() -> anyhow::Result<()> {
    let fixture = Fixture::new()?;
    let host = fixture.host();
    let (image, digest) = fixture.signed_image("forged", "staging")?;
    let unsigned = CosignLayer {
        payload: simple_signing_payload(&host, "app", &digest, &annotations([("env", "prod")]))?,
        // Any signature string: no key made it, no certificate, no bundle.
        annotations: BTreeMap::from([(SIGNATURE_ANNOTATION.to_owned(), BASE64.encode(b"not a signature"))]),
    };
    append_signature_layer(&host, "app", &digest, unsigned)?;
    let layers = fetch_signature_layers(&host, "app", &digest)?;
    assert_eq!(layers.len(), 2, "the genuine layer and the unsigned one: {layers:?}");

    let prod = fixture.settings("prod");
    let cip = fixture.cip();
    let response = cip.validate(&pod("default", &[&image]), &prod);
    let message = response.assert_refused("env=prod only on an unsigned layer");
    assert!(
        message.starts_with(&format!(
            "Pod default/test: image {image} denied by policy {POLICY}: authority {AUTHORITY}: \
             no signature verified by the certificate: {NOT_SIGNED_WITH_PROD}"
        )),
        "{message}"
    );
    assert!(response.mutated().is_none(), "{response}");

    // The genuine signature still verifies, unsigned layer and all: the refusal is about the
    // annotations.
    cip.validate(&pod("default", &[&image]), &fixture.settings("staging"))
        .assert_admitted("the genuine env=staging signature, env=staging required");

    // Through `cip run`, with all of cip's capabilities and with Kubewarden's only (the module
    // then reads the legacy `.sig` tag only, as under a stock host): denied, and the recorded
    // calls show who refused: `cip`'s answer to the certificate request itself, which checks the
    // annotations on the layer the certificate's key signed (so the key request of e2307e3 is
    // never reached here).
    for extra in [&[][..], &["--kubewarden-capabilities-only"][..]] {
        let (run, calls) = fixture.recorded_run(&image, &prod, extra)?;
        assert_eq!(run.response["allowed"], json!(false), "{extra:?}: {run:#?}");
        assert!(
            run_message(&run).contains(&format!(
                "denied by policy {POLICY}: authority {AUTHORITY}: no signature verified by the certificate: \
                 {NOT_SIGNED_WITH_PROD}"
            )),
            "{extra:?}: {run:#?}"
        );
        let first = calls.first().context("no host call recorded")?;
        assert_eq!(
            first.kind,
            "SigstoreCertificateVerify",
            "{extra:?}: {:?}",
            kinds(&calls)
        );
        assert_eq!(
            first.request["annotations"],
            serde_yaml::from_str::<serde_yaml::Value>("env: prod")?,
            "{:?}",
            kinds(&calls)
        );
        assert_eq!(
            first.response,
            Err(NOT_SIGNED_WITH_PROD.to_owned()),
            "{extra:?}: {:?}",
            kinds(&calls)
        );
        assert!(
            calls.iter().all(|call| call.kind != "SigstorePubKeyVerify"
                && !(call.kind == "SigstoreCertificateVerify" && call.response.is_ok())),
            "no certificate request was trusted: {extra:?}: {:?}",
            kinds(&calls)
        );
    }
    Ok(())
}

/// Case 3, the control: the genuine `env: staging` signature, `env: staging` required.
#[test]
fn the_signed_annotations_are_the_ones_checked_control() -> anyhow::Result<()> {
    let fixture = Fixture::new()?;
    let (image, digest) = fixture.signed_image("staging", "staging")?;
    let cip = fixture.cip();

    let response = cip.validate(&pod("default", &[&image]), &fixture.settings("staging"));
    response.assert_admitted("signed by the certificate with env=staging, env=staging required");
    assert_eq!(
        pinned(&response),
        Some(&json!(format!("{image}@{digest}"))),
        "{response}"
    );
    // The same genuine signature does not satisfy env=prod.
    let response = cip.validate(&pod("default", &[&image]), &fixture.settings("prod"));
    let message = response.assert_refused("signed with env=staging, env=prod required");
    assert!(
        message.contains(&format!(
            "image {image} denied by policy {POLICY}: authority {AUTHORITY}: no signature verified by the \
             certificate: {NOT_SIGNED_WITH_PROD}"
        )),
        "{message}"
    );
    Ok(())
}
