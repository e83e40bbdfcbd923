//! Real test fixtures for cluster-image-policy: no mocks.
//!
//! * [`Registry`]: Debian's `docker-registry` (distribution v2.8) on a free `127.0.0.1` port, killed and
//!   deleted on drop. [`Registry::start_with`] + [`RegistryOptions`] serve HTTPS ([`Registry::ca_pem`]) and/or
//!   require Basic credentials ([`Registry::docker_config_json`]); the testkit's own functions reach such
//!   registries by host alone. [`ClosedPort`] is a port held closed ("registry down"), [`SlowServer`] accepts
//!   and never answers (timeouts), [`CountingProxy`] records requests (cache tests) and can delay or refuse
//!   connections.
//! * Images: [`push_image`] (one-layer OCI image from a seed; returns the manifest digest), [`push_image_as`]
//!   (Docker schema 2), [`push_platform_image`] (a platform's image, with its `os`/`architecture`/`variant` and
//!   `config.User`), [`push_index`] (multi-platform), [`retag`], [`move_tag`], [`resolve_digest`],
//!   [`delete_manifest`].
//! * Signatures in cosign's `repo:sha256-<hex>.sig` format: [`KeyPair`] (P-256, P-384, RSA, Ed25519),
//!   [`sign_with_key`], [`sign_keyless`] with [`TestFulcio`] + [`TestRekor`], [`sign_with_certificate`]. Every
//!   `sign_*` appends a layer and keeps earlier ones; signers of one image share one payload blob.
//! * cosign v3's bundle format: [`key_bundle`] / [`keyless_bundle`] build a sigstore bundle v0.3
//!   (DSSE over cosign's sign statement, Rekor `dsse` entry with SET and inclusion proof),
//!   [`certificate_bundle`] one around a given leaf signed by any key, with
//!   forgeries on [`SigstoreBundle`]; [`attach_bundle`] attaches one as an OCI referrer (listed in
//!   the referrers tag schema index, as distribution v2.8 lacks the API); [`sign_with_key_bundle`]
//!   and [`sign_keyless_bundle`] do both.
//! * Negative-test tools: [`key_signature_layer`] / [`certificate_signature_layer`] build a [`CosignLayer`]
//!   without pushing; [`CosignLayer::with_corrupted_signature`], [`CosignLayer::with_tampered_payload`],
//!   [`CosignLayer::with_bundle`] (a Rekor entry for a key signature, or a chosen integration time);
//!   [`push_signature_layers`] stores any layers under any image's `.sig` tag; [`append_signature_layer`],
//!   [`copy_signatures`], [`delete_signatures`], [`fetch_signature_layers`].
//! * Attestations in cosign's `repo:sha256-<hex>.att` format: [`attest_with_key`], [`attest_keyless`] (in-toto
//!   statement, DSSE envelope, `intoto` Rekor bundle); [`key_attestation_layer`], [`envelope_layer`],
//!   [`push_attestation_layers`] for negative tests.
//! * KMS signers: [`MotoServer`] (AWS KMS through moto; [`MotoProcess`] is a bare moto for a
//!   test's own set-up) and [`OpenBao`] (Vault's transit API) run real servers; [`sign_with_external`] stores a signature made by any external signer.
//! * Servers started as child processes get ports of their own: [`ProviderProcess`] runs a
//!   `cip provider` command line on two fresh loopback ports and returns once that process
//!   holds both and answers `/readyz`, started again on fresh ports when one was taken (as the
//!   KMS servers and the [`Registry`] are).
//! * Child processes a test runs to completion ([`run_bounded`]): as `Command::output()`, but
//!   killed with an error naming the command once a time limit passes, so a hung child fails
//!   its test instead of hanging the run.
//! * Trust: [`trust_config_json`] (a sigstore `ClientTrustConfig`), [`trusted_root_json`], and
//!   [`trust_config_value`] / [`trusted_root_value`] for several (or no) CAs and logs.
//!
//! All functions are synchronous and safe to call from `#[tokio::test]` bodies: registry I/O
//! runs on its own short-lived runtime thread.
//!
//! ```no_run
//! use testkit::{KeyPair, LeafRequest, Registry, SignerIdentity, TestFulcio, TestRekor};
//!
//! # fn main() -> anyhow::Result<()> {
//! let registry = Registry::start()?;
//! let host = registry.host(); // "127.0.0.1:PORT"
//! let digest = testkit::push_image(&host, "team/app", "v1", "app-v1")?;
//!
//! let key = KeyPair::ecdsa_p256()?;
//! testkit::sign_with_key(&host, "team/app", &digest, &key, &testkit::annotations([("env", "prod")]))?;
//! let policy_key = key.public_key_pem(); // goes into the ClusterImagePolicy
//!
//! let fulcio = TestFulcio::new()?;
//! let rekor = TestRekor::new()?;
//! let request = LeafRequest::new(
//!     SignerIdentity::Email("user@example.com".into()),
//!     "https://accounts.example.com",
//! );
//! testkit::sign_keyless(&host, "team/app", &digest, &fulcio, &rekor, &request, &Default::default())?;
//! std::fs::write("trust.json", testkit::trust_config_json(&fulcio, &rekor))?;
//! # let _ = policy_key;
//! # Ok(())
//! # }
//! ```

mod attestation;
mod bundle;
mod cue;
mod external;
mod fulcio;
mod generated;
mod go_image_config;
mod go_regexp;
mod go_statement;
mod go_time;
mod http;
mod image;
mod keys;
mod kms;
mod oci;
mod provider;
mod proxy;
mod referrers;
mod registry;
mod rekor;
mod rt;
mod run;
mod server;
mod sign;
mod signature;
mod slow;
mod trust;

pub use attestation::{
    DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, IN_TOTO_STATEMENT_V01, PREDICATE_TYPE_ANNOTATION, SPDX_PREDICATE_TYPE,
    append_attestation_layer, attest_keyless, attest_with_key, attestation_tag, certificate_attestation_layer,
    dsse_envelope, dsse_pae, envelope_layer, fetch_attestation_layers, in_toto_statement, intoto_bundle_json,
    key_attestation_layer, push_attestation_layers, with_intoto_bundle,
};
pub use bundle::{
    BundleOptions, COSIGN_SIGN_PREDICATE, SigstoreBundle, attach_bundle, certificate_bundle, key_bundle,
    key_dsse_bundle, keyless_bundle, sign_with_key_bundle,
};
pub use cue::{CueAnswer, CueVerdict, cue_verdicts};
pub use external::{external_signature_layer, sign_with_external};
pub use fulcio::{GithubWorkflow, IssuerExtension, LeafCertificate, LeafRequest, SctMode, SignerIdentity, TestFulcio};
pub use generated::{JsonParts, Rng, case_count, go_fold, run_seed};
pub use go_image_config::go_image_configs;
pub use go_regexp::{go_matches, regexp_cases};
pub use go_statement::go_statements;
pub use go_time::{GoTime, duration_texts, go_times, time_texts};
pub use image::{
    ManifestFormat, delete_manifest, move_tag, push_artifact, push_image, push_image_as, push_index,
    push_platform_image, resolve_digest, retag,
};
pub use keys::KeyPair;
pub use kms::{AwsKey, MOTO_REGION, MotoProcess, MotoServer, OPENBAO_ROOT_TOKEN, OpenBao, test_tool};
pub use oci::sha256_digest;
pub use provider::ProviderProcess;
pub use proxy::{CountingProxy, RecordedRequest};
pub use referrers::{SIGSTORE_BUNDLE_MEDIA_TYPE, sign_keyless_bundle};
pub use registry::{
    ClosedPort, REGISTRY_BINARY, REGISTRY_PASSWORD, REGISTRY_USER, Registry, RegistryOptions, unused_local_addr,
};
pub use rekor::TestRekor;
pub use run::run_bounded;
pub use sign::{
    annotations, certificate_signature_layer, key_signature_layer, sign_keyless, sign_with_certificate, sign_with_key,
};
pub use signature::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, CosignLayer, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE, append_signature_layer, copy_signatures, delete_signatures, fetch_signature_layers,
    push_signature_layers, signature_tag, simple_signing_payload,
};
pub use slow::SlowServer;
pub use trust::{
    CLIENT_TRUST_CONFIG_MEDIA_TYPE, SIGNING_CONFIG_MEDIA_TYPE, TRUSTED_ROOT_MEDIA_TYPE, trust_config_json,
    trust_config_value, trusted_root_json, trusted_root_value,
};

/// Re-exported so callers name signing schemes without depending on sigstore directly.
pub use sigstore::crypto::SigningScheme;

/// Re-exported so callers choose a leaf's extended key usages
/// ([`LeafRequest::with_extended_key_usages`]) without depending on rcgen directly.
pub use rcgen::ExtendedKeyUsagePurpose;
