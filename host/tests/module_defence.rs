//! The policy module's own defence against forged keyless layers (docs/binding-defence.md), end
//! to end: a real registry, the real module under `cip`, and a forger who copies the certificate,
//! chain and Rekor bundle of a genuine keyless signature onto a payload naming another image.
//!
//! Whichever layer catches the forgery — `cip`'s own binding check or the module's — the image
//! must be refused. The module's unit tests (src/authority/binding.rs, src/tests.rs) cover the
//! case of a stock host that answers "trusted" for the forged layer; the runtime offers no way
//! to override a host capability, so here the real `cip` host answers.

mod verify_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cip::capabilities::Capabilities;
use cip::runtime::{Evaluator, EvaluatorOptions, PolicyModule};
use serde_json::{Value, json};
use testkit::{CosignLayer, LeafRequest, SignerIdentity};
use verify_support::World;

const ISSUER: &str = "https://accounts.example.com";
const EMAIL: &str = "dev@example.com";

fn policy_module() -> PolicyModule {
    let path: PathBuf = std::env::var_os("CIP_POLICY_WASM").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/policy/cluster_image_policy.wasm"),
        PathBuf::from,
    );
    PolicyModule::from_file(&path).unwrap_or_else(|e| panic!("{}: {e} (build the policy module first)", path.display()))
}

fn settings() -> Value {
    json!({
        "policies": [{
            "apiVersion": "policy.sigstore.dev/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": "keyless-policy"},
            "spec": {
                "images": [{"glob": "**"}],
                "authorities": [{"name": "dev", "keyless": {"identities": [{"issuer": ISSUER, "subject": EMAIL}]}}],
            }
        }],
        "noMatchPolicy": "deny",
    })
}

fn pod(image: &str) -> Value {
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default",
        "operation": "CREATE",
        "object": {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "test", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": image}]}
        }
    })
}

#[test]
fn a_keyless_signature_copied_onto_another_image_is_refused() {
    let world = World::new();
    let genuine = testkit::sign_keyless(
        &world.host,
        &world.repo,
        &world.digest,
        &world.fulcio,
        &world.rekor,
        &LeafRequest::new(SignerIdentity::Email(EMAIL.into()), ISSUER),
        &testkit::annotations([]),
    )
    .expect("genuine signature");

    // The attacker's image, "signed" with the genuine layer's certificate, chain and bundle over
    // a payload naming the attacker's digest.
    let evil_repo = "team/evil";
    let evil_digest = testkit::push_image(&world.host, evil_repo, "v1", "evil").expect("evil image");
    let forged = CosignLayer {
        payload: testkit::simple_signing_payload(&world.host, evil_repo, &evil_digest, &Default::default())
            .expect("payload"),
        annotations: genuine.annotations.clone(),
    };
    testkit::push_signature_layers(&world.host, evil_repo, &evil_digest, &[forged]).expect("forged signature pushed");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let caps = Arc::new(Capabilities::new(Arc::new(world.verifier()), runtime.handle().clone()));
    let evaluator = Evaluator::new(&policy_module(), caps, EvaluatorOptions::default()).expect("evaluator");

    let admitted = evaluator
        .validate(&pod(&world.tag_ref()), &settings())
        .expect("evaluation");
    assert!(admitted.accepted, "the genuinely signed image: {:?}", admitted.message);

    let refused = evaluator
        .validate(&pod(&format!("{}/{evil_repo}:v1", world.host)), &settings())
        .expect("evaluation");
    assert!(!refused.accepted, "the forged image was admitted");
    let message = refused.message.unwrap_or_default();
    assert!(message.contains("keyless-policy"), "{message}");
    // Printed so the log shows which check refused it (the module says "forged or corrupt").
    println!("refused: {message}");
}
