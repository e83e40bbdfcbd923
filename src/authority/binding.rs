//! The module's own check that keyless and certificate signatures are bound to what they sign.
//!
//! Stock Kubewarden hosts (policy-server, kwctl) verify a keyless layer through sigstore-rs,
//! which accepts it when its certificate chains to Fulcio and its Rekor bundle's timestamp
//! verifies, without checking that the layer's signature was made by that certificate's key
//! over that payload, nor that the Rekor entry describes that payload, signature and
//! certificate. The certificate and bundle of any genuine signature (all public in the
//! transparency log) can then be copied onto a layer naming another image, and the host answers
//! "trusted". So after the host says "trusted", the module reads the signature manifest
//! (`<repo>:sha256-<hex>.sig`) through the stock `oci/v1/oci_manifest` capability and requires
//! that **every** layer the authority could have accepted is bound:
//!
//! - its signature verifies with the certificate's key over the layer digest (the digest is the
//!   SHA-256 of the payload, which is exactly what cosign signs);
//! - its Rekor entry records that digest, that signature and that certificate (DER compared).
//!
//! What stays with the host: the chain to Fulcio, the Rekor timestamp (SET), the certificate's
//! validity at signing time, and that the payload names the image digest (the module cannot read
//! payloads). See `docs/binding-defence.md`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::fulcio::SignerCertificate;
use super::rekor::{entry_of_bundle, parse_hex32};
use crate::crypto::signature::verify_sha256_prehash;
use crate::crypto::sole_pem_block;
use crate::host::{HostCalls, KUBEWARDEN_OCI_MANIFEST};
use crate::reference::ImageReference;

const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
const CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
const BUNDLE: &str = "dev.sigstore.cosign/bundle";
/// Most layers checked for one authority: each costs a signature verification.
pub const MAX_CHECKED_LAYERS: usize = 64;
/// Most layers a signature manifest may hold (cosign adds one per signing).
pub const MAX_LAYERS: usize = 256;

#[derive(Deserialize)]
struct Manifest {
    layers: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    annotations: Option<BTreeMap<String, String>>,
}

/// Which layers an authority vouches for.
pub enum Vouch<'a> {
    /// Keyless kinds (identities, GitHub Actions): layers with a certificate that `matches`.
    Keyless {
        /// The identity, for messages.
        who: &'a str,
        /// Whether a layer certificate shows the identity (as broadly as any host reads it).
        matches: &'a dyn Fn(&SignerCertificate) -> bool,
    },
    /// A configured signing certificate: layers signed by its key or carrying it.
    Certificate {
        certificate: &'a SignerCertificate,
        /// `requireRekorBundle`: a bundle is demanded; without it, one that is present must bind.
        require_bundle: bool,
    },
}

impl Vouch<'_> {
    fn who(&self) -> &str {
        match self {
            Vouch::Keyless { who, .. } => who,
            Vouch::Certificate { .. } => "the configured certificate",
        }
    }
}

/// The signature manifest reference cosign uses for `digest` of `image`.
pub fn signature_reference(image: &ImageReference, digest: &str) -> String {
    format!(
        "{}/{}:{}.sig",
        image.registry(),
        image.repository(),
        digest.replacen(':', "-", 1)
    )
}

/// Requires every layer of the signature manifest of `digest` that `vouch` covers to be bound,
/// and at least one such layer.
pub fn require_bound(
    host: &mut dyn HostCalls,
    image: &ImageReference,
    digest: &str,
    vouch: &Vouch<'_>,
) -> Result<(), String> {
    let reference = signature_reference(image, digest);
    let request = serde_json::to_vec(&reference).map_err(|e| format!("cannot encode the request: {e}"))?;
    let answer = host.call(KUBEWARDEN_OCI_MANIFEST, &request).map_err(|e| {
        format!(
            "the host said the signatures are trusted, but the signature manifest {reference} cannot be read to check that they are bound to their payload (host capability {KUBEWARDEN_OCI_MANIFEST}): {e}"
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&answer)
        .map_err(|e| format!("the signature manifest {reference} cannot be read: {e}"))?;
    let layers = manifest
        .layers
        .ok_or_else(|| format!("the signature manifest {reference} is an index, not an image manifest"))?;
    if layers.len() > MAX_LAYERS {
        return Err(format!(
            "the signature manifest {reference} holds {} layers, more than the {MAX_LAYERS} the module checks",
            layers.len()
        ));
    }
    let mut checked = 0usize;
    for (index, layer) in layers.iter().enumerate() {
        let annotations = layer.annotations.as_ref();
        let annotation = |name: &str| annotations.and_then(|a| a.get(name)).map(String::as_str);
        let outcome = match vouch {
            // A certificate annotation that the module cannot read exactly as every host does
            // could show a host a signer the module does not see: such a layer is refused, not
            // skipped, whichever authority asks.
            Vouch::Keyless { matches, .. } => match annotation(CERTIFICATE).map(SignerCertificate::from_annotation) {
                None => continue,
                Some(Err(reason)) => Err(reason),
                Some(Ok(certificate)) if !matches(&certificate) => continue,
                Some(Ok(certificate)) => check_layer(layer, &certificate.spki, true, |signer| {
                    signer.tag() == "CERTIFICATE" && signer.contents() == certificate.der
                }),
            },
            Vouch::Certificate {
                certificate,
                require_bundle,
            } => match annotation(CERTIFICATE)
                .map(|text| sole_pem_block(text.as_bytes()))
                .transpose()
            {
                Err(reason) => Err(format!("the certificate annotation {reason}")),
                Ok(carried) => {
                    let carries_it = carried.is_some_and(|block| block.contents() == certificate.der);
                    if !carries_it && !signed_by(layer, &certificate.spki) {
                        continue;
                    }
                    check_layer(layer, &certificate.spki, *require_bundle, |signer| match signer.tag() {
                        "CERTIFICATE" => signer.contents() == certificate.der,
                        "PUBLIC KEY" => signer.contents() == certificate.spki,
                        _ => false,
                    })
                }
            },
        };
        checked += 1;
        if checked > MAX_CHECKED_LAYERS {
            return Err(format!(
                "the signature manifest {reference} holds more than {MAX_CHECKED_LAYERS} layers by {}: too many to check",
                vouch.who()
            ));
        }
        outcome.map_err(|reason| {
            format!(
                "signature layer {index} ({}) of {reference} claims to be by {} but is forged or corrupt: {reason}",
                layer.digest,
                vouch.who()
            )
        })?;
    }
    if checked == 0 {
        return Err(format!(
            "the host said the signatures are trusted, but the signature manifest {reference} holds no layer by {} that the module can check: refused as forged or corrupt",
            vouch.who()
        ));
    }
    Ok(())
}

fn layer_digest(layer: &Descriptor) -> Result<[u8; 32], String> {
    layer
        .digest
        .strip_prefix("sha256:")
        .and_then(parse_hex32)
        .ok_or_else(|| format!("the layer digest `{}` is not a sha256 digest", layer.digest))
}

fn layer_signature(layer: &Descriptor) -> Result<Vec<u8>, String> {
    let text = layer
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIGNATURE))
        .ok_or_else(|| "it has no signature".to_owned())?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(|e| format!("its signature is not base64: {e}"))
}

/// Whether the layer's signature verifies with `spki` (for the certificate kind).
fn signed_by(layer: &Descriptor, spki: &[u8]) -> bool {
    match (layer_digest(layer), layer_signature(layer)) {
        (Ok(digest), Ok(signature)) => verify_sha256_prehash(spki, &digest, &signature).is_ok(),
        _ => false,
    }
}

/// Checks one layer: signature over the digest with `spki`, and the Rekor entry naming the
/// digest, the signature and a signer accepted by `signer_ok`.
fn check_layer(
    layer: &Descriptor,
    spki: &[u8],
    require_bundle: bool,
    signer_ok: impl Fn(&pem::Pem) -> bool,
) -> Result<(), String> {
    let digest = layer_digest(layer)?;
    let signature = layer_signature(layer)?;
    verify_sha256_prehash(spki, &digest, &signature).map_err(|e| {
        format!("its signature over the layer's payload does not verify with the certificate's key: {e}")
    })?;
    let bundle = match layer.annotations.as_ref().and_then(|a| a.get(BUNDLE)) {
        Some(bundle) => bundle,
        None if require_bundle => return Err("it has no Rekor bundle".to_owned()),
        None => return Ok(()),
    };
    let entry = entry_of_bundle(bundle)?;
    if entry.payload_sha256 != digest {
        let hex: String = entry.payload_sha256.iter().map(|b| format!("{b:02x}")).collect();
        return Err(format!(
            "its Rekor entry records another payload (sha256:{hex}): the bundle belongs to another signature"
        ));
    }
    if entry.signature != signature {
        return Err("its Rekor entry records another signature".to_owned());
    }
    if !signer_ok(&entry.signer) {
        return Err("its Rekor entry records another signer's certificate".to_owned());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::authority::fulcio::tests::{CertSpec, certificate};
    use crate::authority::rekor::tests::bundle;
    use crate::crypto::signature::tests::{p256_key, p256_sign, p256_spki};
    use crate::host::mock::{MockHost, trusted};
    use crate::host::{Capability, KUBEWARDEN_VERIFY_V2};
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    pub const IMAGE_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    type SignFn = Box<dyn Fn(&[u8; 32]) -> Vec<u8>>;

    /// A signer with a real key and a certificate for it.
    pub struct Signer {
        pub cert_pem: String,
        pub cert_der: Vec<u8>,
        sign: SignFn,
    }

    impl Signer {
        /// A P-256 signer (what cosign keyless makes).
        pub fn p256(spec: &CertSpec, seed: u8) -> Self {
            let key = p256_key(seed);
            let (cert_pem, cert_der) = certificate(spec, &p256_spki(&key));
            Self {
                cert_pem,
                cert_der,
                sign: Box::new(move |d| p256_sign(&key, d)),
            }
        }

        /// An RSA-2048 signer, PKCS#1 v1.5.
        pub fn rsa(spec: &CertSpec) -> Self {
            let (cert_pem, cert_der) = certificate(spec, &crate::crypto::rsa::tests::spki_der());
            Self {
                cert_pem,
                cert_der,
                sign: Box::new(crate::crypto::rsa::tests::sign_pkcs1v15),
            }
        }

        /// A genuine cosign layer for `payload`: signature, certificate and a Rekor bundle
        /// recording them.
        pub fn layer(&self, payload: &str) -> Layer {
            let digest: [u8; 32] = Sha256::digest(payload.as_bytes()).into();
            let signature = (self.sign)(&digest);
            Layer {
                digest,
                signature: signature.clone(),
                certificate: Some(self.cert_pem.clone()),
                bundle: Some(bundle("hashedrekord", &digest, &signature, &self.cert_pem)),
            }
        }
    }

    /// A signature layer as the registry holds it.
    #[derive(Clone)]
    pub struct Layer {
        pub digest: [u8; 32],
        pub signature: Vec<u8>,
        pub certificate: Option<String>,
        pub bundle: Option<String>,
    }

    impl Layer {
        /// This layer moved onto another payload: its signature, certificate and bundle copied
        /// onto a payload digest they were not made for (an attacker's).
        pub fn moved(&self) -> Self {
            Self {
                digest: [0x66; 32],
                ..self.clone()
            }
        }

        fn to_json(&self) -> Value {
            let hex: String = self.digest.iter().map(|b| format!("{b:02x}")).collect();
            let mut annotations = serde_json::Map::new();
            annotations.insert(SIGNATURE.into(), STANDARD.encode(&self.signature).into());
            if let Some(c) = &self.certificate {
                annotations.insert(CERTIFICATE.into(), c.clone().into());
            }
            if let Some(b) = &self.bundle {
                annotations.insert(BUNDLE.into(), b.clone().into());
            }
            json!({
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "size": 250,
                "digest": format!("sha256:{hex}"),
                "annotations": annotations,
            })
        }
    }

    /// The signature manifest holding `layers`.
    pub fn manifest(layers: &[Layer]) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 233,
                       "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222"},
            "layers": layers.iter().map(Layer::to_json).collect::<Vec<_>>(),
        }))
        .expect("manifest")
    }

    /// A host that serves `layers` as the signature manifest of `myregistry.com/app` at
    /// [`IMAGE_DIGEST`] and answers every other call with `inner`.
    pub fn serving(
        layers: &[Layer],
        mut inner: impl FnMut(Capability, &Value) -> Result<Vec<u8>, String> + 'static,
    ) -> MockHost {
        let manifest = manifest(layers);
        MockHost::new(move |capability: Capability, payload: &Value| {
            if capability == KUBEWARDEN_OCI_MANIFEST {
                assert_eq!(
                    payload,
                    &json!(
                        "myregistry.com/app:sha256-1111111111111111111111111111111111111111111111111111111111111111.sig"
                    )
                );
                Ok(manifest.clone())
            } else {
                inner(capability, payload)
            }
        })
    }

    /// A stock host: says "trusted" to every verification (as sigstore-rs does for a copied
    /// certificate and bundle) and serves `layers` as the signature manifest.
    pub fn stock_host(layers: &[Layer]) -> MockHost {
        serving(layers, |capability, _| {
            assert_eq!(capability, KUBEWARDEN_VERIFY_V2);
            trusted(IMAGE_DIGEST)
        })
    }

    pub fn image() -> ImageReference {
        ImageReference::parse("myregistry.com/app:v1").expect("reference")
    }

    pub const PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"myregistry.com/app"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":null}"#;
    pub const OTHER_PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"myregistry.com/app"},"image":{"docker-manifest-digest":"sha256:9999999999999999999999999999999999999999999999999999999999999999"},"type":"cosign container image signature"},"optional":null}"#;
    const ISSUER: &str = "https://accounts.google.com";

    fn dev() -> CertSpec {
        CertSpec::email("dev@example.com", ISSUER)
    }

    fn is_dev(c: &SignerCertificate) -> bool {
        c.subjects.iter().any(|s| s == "dev@example.com") && c.issuers.iter().any(|i| i == ISSUER)
    }

    fn keyless_check(layers: &[Layer]) -> Result<(), String> {
        let mut host = stock_host(layers);
        require_bound(
            &mut host,
            &image(),
            IMAGE_DIGEST,
            &Vouch::Keyless {
                who: "dev@example.com",
                matches: &is_dev,
            },
        )
    }

    fn assert_forged(outcome: Result<(), String>, reason: &str) {
        let message = outcome.expect_err("a forged layer must fail");
        assert!(message.contains("is forged or corrupt"), "{message}");
        assert!(message.contains(reason), "`{message}` should say `{reason}`");
    }

    #[test]
    fn genuine_ecdsa_and_rsa_layers_pass() {
        assert_eq!(keyless_check(&[Signer::p256(&dev(), 1).layer(PAYLOAD)]), Ok(()));
        assert_eq!(keyless_check(&[Signer::rsa(&dev()).layer(PAYLOAD)]), Ok(()));
    }

    #[test]
    fn certificate_and_bundle_copied_onto_another_payload_fail() {
        // The forger takes a genuine layer and points it at their own payload.
        for signer in [Signer::p256(&dev(), 1), Signer::rsa(&dev())] {
            let genuine = signer.layer(OTHER_PAYLOAD);
            // Checked first, as a warm instance would have: its remembered outcome
            // (crate::crypto::memo) must not vouch for the copies.
            assert_eq!(keyless_check(std::slice::from_ref(&genuine)), Ok(()));
            let forged = Layer {
                digest: Sha256::digest(PAYLOAD.as_bytes()).into(),
                ..genuine.clone()
            };
            assert_forged(keyless_check(&[forged]), "does not verify with the certificate's key");
            // Their own signature over their payload does not help: the certificate is not theirs.
            let attacker = Signer::p256(&CertSpec::email("evil@example.com", ISSUER), 9).layer(PAYLOAD);
            let forged = Layer {
                certificate: genuine.certificate.clone(),
                bundle: genuine.bundle.clone(),
                ..attacker
            };
            assert_forged(keyless_check(&[forged]), "does not verify with the certificate's key");
        }
    }

    #[test]
    fn corrupted_signatures_fail() {
        for signer in [Signer::p256(&dev(), 1), Signer::rsa(&dev())] {
            let mut layer = signer.layer(PAYLOAD);
            assert_eq!(
                keyless_check(std::slice::from_ref(&layer)),
                Ok(()),
                "the genuine layer, remembered"
            );
            let last = layer.signature.len() - 2;
            layer.signature[last] ^= 0x01;
            assert_forged(keyless_check(&[layer]), "does not verify");
        }
    }

    #[test]
    fn bundle_of_another_entry_fails() {
        let signer = Signer::p256(&dev(), 1);
        let mut layer = signer.layer(PAYLOAD);
        layer.bundle = signer.layer(OTHER_PAYLOAD).bundle;
        assert_forged(keyless_check(&[layer]), "records another payload");

        // Same payload, another valid signature (s negated) recorded in the log.
        let layer = signer.layer(PAYLOAD);
        let signature = p256::ecdsa::Signature::from_der(&layer.signature).expect("DER");
        let (r, s) = signature.split_scalars();
        let twin = p256::ecdsa::Signature::from_scalars(r, -*s).expect("signature");
        let twin = twin.to_der().as_bytes().to_vec();
        let forged = Layer {
            bundle: Some(bundle("hashedrekord", &layer.digest, &twin, &signer.cert_pem)),
            ..layer.clone()
        };
        assert_forged(keyless_check(&[forged]), "records another signature");

        // A log entry naming another certificate.
        let stranger = Signer::p256(&dev(), 2);
        let forged = Layer {
            bundle: Some(bundle(
                "hashedrekord",
                &layer.digest,
                &layer.signature,
                &stranger.cert_pem,
            )),
            ..layer.clone()
        };
        assert_forged(keyless_check(&[forged]), "records another signer");

        let forged = Layer { bundle: None, ..layer };
        assert_forged(keyless_check(&[forged]), "no Rekor bundle");
    }

    #[test]
    fn every_matching_layer_must_be_bound() {
        let genuine = Signer::p256(&dev(), 1).layer(PAYLOAD);
        let mut forged = genuine.clone();
        forged.digest = Sha256::digest(OTHER_PAYLOAD.as_bytes()).into();
        // A genuine layer beside a forged one by the same identity does not save it.
        assert_forged(keyless_check(&[genuine.clone(), forged.clone()]), "layer 1");
        assert_forged(keyless_check(&[forged, genuine]), "layer 0");
    }

    #[test]
    fn layers_of_other_identities_are_ignored() {
        let genuine = Signer::p256(&dev(), 1).layer(PAYLOAD);
        let mut stranger = Signer::p256(&CertSpec::email("other@example.com", ISSUER), 2).layer(OTHER_PAYLOAD);
        stranger.signature = b"garbage".to_vec();
        let keyed = Layer {
            certificate: None,
            bundle: None,
            ..stranger.clone()
        };
        assert_eq!(keyless_check(&[stranger.clone(), keyed, genuine]), Ok(()));
        // With no layer of the identity, the host's "trusted" is not believed.
        let message = keyless_check(&[stranger]).unwrap_err();
        assert!(message.contains("holds no layer by dev@example.com"), "{message}");
    }

    #[test]
    fn unreadable_manifests_fail() {
        let mut host = MockHost::new(|capability, _| {
            if capability == KUBEWARDEN_OCI_MANIFEST {
                Err("manifest unknown".to_owned())
            } else {
                trusted(IMAGE_DIGEST)
            }
        });
        let vouch = Vouch::Keyless {
            who: "dev@example.com",
            matches: &is_dev,
        };
        let message = require_bound(&mut host, &image(), IMAGE_DIGEST, &vouch).unwrap_err();
        assert!(message.contains("kubewarden/oci/v1/oci_manifest"), "{message}");
        assert!(message.contains("manifest unknown"), "{message}");
        let mut host = MockHost::new(|_, _| Ok(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec()));
        let message = require_bound(&mut host, &image(), IMAGE_DIGEST, &vouch).unwrap_err();
        assert!(message.contains("is an index"), "{message}");
    }

    #[test]
    fn too_many_layers_are_refused() {
        let layer = Signer::p256(&dev(), 1).layer(PAYLOAD);
        let layers = vec![layer.clone(); MAX_CHECKED_LAYERS + 1];
        let message = keyless_check(&layers).unwrap_err();
        assert!(message.contains("more than 64 layers"), "{message}");
        let mut stranger = Signer::p256(&CertSpec::email("other@example.com", ISSUER), 2).layer(PAYLOAD);
        stranger.signature = b"x".to_vec();
        let mut layers = vec![stranger; MAX_LAYERS];
        layers.push(layer);
        let message = keyless_check(&layers).unwrap_err();
        assert!(message.contains("holds 257 layers, more than the 256"), "{message}");
    }

    fn certificate_check(
        layers: &[Layer],
        certificate: &SignerCertificate,
        require_bundle: bool,
    ) -> Result<(), String> {
        let mut host = stock_host(layers);
        require_bound(
            &mut host,
            &image(),
            IMAGE_DIGEST,
            &Vouch::Certificate {
                certificate,
                require_bundle,
            },
        )
    }

    #[test]
    fn certificate_layers_need_a_bound_bundle() {
        let signer = Signer::p256(&dev(), 3);
        let certificate = SignerCertificate::from_der(&signer.cert_der).expect("certificate");
        let genuine = signer.layer(PAYLOAD);
        assert_eq!(
            certificate_check(std::slice::from_ref(&genuine), &certificate, true),
            Ok(())
        );
        // Signed with the key, no certificate annotation, bundle recording the public key.
        let key_only = Layer {
            certificate: None,
            bundle: Some(bundle(
                "hashedrekord",
                &genuine.digest,
                &genuine.signature,
                &pem::encode(&pem::Pem::new("PUBLIC KEY", certificate.spki.clone())),
            )),
            ..genuine.clone()
        };
        assert_eq!(certificate_check(&[key_only], &certificate, true), Ok(()));
        // The key holder back-dating with the bundle of another entry.
        let mut forged = genuine.clone();
        forged.bundle = signer.layer(OTHER_PAYLOAD).bundle;
        assert_forged(
            certificate_check(&[forged.clone()], &certificate, true),
            "records another payload",
        );
        assert_forged(
            certificate_check(&[forged], &certificate, false),
            "records another payload",
        );
        // Without a bundle: refused when required, accepted otherwise.
        let bare = Layer {
            bundle: None,
            ..genuine.clone()
        };
        assert_forged(
            certificate_check(std::slice::from_ref(&bare), &certificate, true),
            "no Rekor bundle",
        );
        assert_eq!(certificate_check(&[bare], &certificate, false), Ok(()));
        // A layer carrying the certificate must be signed by it.
        let mut corrupt = genuine;
        corrupt.digest = [0x42; 32];
        assert_forged(certificate_check(&[corrupt], &certificate, true), "does not verify");
    }

    #[test]
    fn certificate_annotations_other_than_one_pem_block_fail() {
        // Another signer's certificate before or after the one a host may read, text around it,
        // or an annotation that is no certificate: each refused, whoever the layer is by, for
        // both kinds of authority, although a genuine bound layer is beside it.
        let signer = Signer::p256(&dev(), 3);
        let certificate = SignerCertificate::from_der(&signer.cert_der).expect("certificate");
        let other = Signer::p256(&CertSpec::email("other@example.com", ISSUER), 2);
        let genuine = signer.layer(PAYLOAD);
        for annotation in [
            format!("x{}{}", other.cert_pem, signer.cert_pem),
            format!("{}{}", signer.cert_pem, other.cert_pem),
            format!("{}\n-----END CERTIFICATE-----\n", signer.cert_pem),
            format!("Certificate:\n    Data: …\n{}", signer.cert_pem),
            format!("{}trailer", signer.cert_pem),
            "not a certificate".to_owned(),
        ] {
            let odd = Layer {
                certificate: Some(annotation.clone()),
                ..other.layer(PAYLOAD)
            };
            let layers = [genuine.clone(), odd];
            let outcome = keyless_check(&layers);
            assert!(
                outcome.as_ref().is_err_and(|m| m.contains("signature layer 1")),
                "{annotation:?}: {outcome:?}"
            );
            assert_forged(outcome, "the certificate annotation");
            assert_forged(
                certificate_check(&layers, &certificate, true),
                "the certificate annotation",
            );
        }
        // Whitespace around the one block is what PEM readers agree to skip.
        let spaced = Layer {
            certificate: Some(format!("\r\n {}\n\n", signer.cert_pem)),
            ..genuine.clone()
        };
        assert_eq!(keyless_check(std::slice::from_ref(&spaced)), Ok(()));
        assert_eq!(certificate_check(&[spaced], &certificate, true), Ok(()));
    }

    #[test]
    fn a_rekor_entry_naming_two_signers_fails() {
        let signer = Signer::p256(&dev(), 3);
        let other = Signer::p256(&CertSpec::email("other@example.com", ISSUER), 2);
        let mut layer = signer.layer(PAYLOAD);
        layer.bundle = Some(bundle(
            "hashedrekord",
            &layer.digest,
            &layer.signature,
            &format!("{}{}", signer.cert_pem, other.cert_pem),
        ));
        assert_forged(keyless_check(&[layer]), "the Rekor entry key holds 2 `-----BEGIN`");
    }
}
