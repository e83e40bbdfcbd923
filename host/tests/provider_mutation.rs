//! Digest pinning under Gatekeeper: `POST /mutate/{namespace}` with the real policy module, a
//! real loopback registry and real signatures answers Gatekeeper's external-data mutation with
//! the pinned reference for images that pass and the image unchanged for images that are
//! denied (the validating Constraint refuses those, where admission does: an Assign, without the
//! old object, would otherwise refuse every routine UPDATE of a Pod running an image denied since
//! its creation), in the same cases as admission (`/validate`) decides them, and pins what the
//! module pins under Kubewarden (`validate`), a failing `warn` policy included.

mod provider_support;

use std::sync::Arc;

use cip::provider::Limits;
use provider_support::*;
use serde_json::{Value, json};

async fn post_to(
    client: &reqwest::Client,
    provider: &cip::provider::RunningProvider,
    path: &str,
    body: &Value,
) -> TestResult<(u16, Value)> {
    let response = client
        .post(format!("https://{}{path}", provider.addr()))
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_images_are_pinned_and_denied_images_left_to_the_constraint_as_in_admission() -> TestResult {
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image(&host, "team/app", "v1", "mutate-app")?;
    let other_digest = testkit::push_image(&host, "team/other", "v1", "mutate-other")?;
    let signer = testkit::KeyPair::ecdsa_p256()?;
    testkit::sign_with_key(&host, "team/app", &digest, &signer, &testkit::annotations([]))?;

    let decider = Arc::new(policy_decider(&host, production_and_development_settings(signer.public_key_pem())).await??);
    let ca = Ca::new("serving CA")?;
    let client_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &client_ca)?;
    // mTLS on, as deployed: the client presents a certificate of Gatekeeper's CA.
    let provider = start(decider, &files, true, Limits::default()).await?;
    let client = tls13_client(&ca, Some(&client_ca.client()?))?;

    let signed = format!("{host}/team/app:v1");
    let unsigned = format!("{host}/team/other:v1");
    let already_pinned = format!("{host}/team/app@{digest}");
    // What a running Pod holds after its CREATE was pinned, once its signature no longer verifies
    // (the key rotated out): a routine UPDATE (finalizer removal, `kubectl label`) sends it again.
    let pinned_now_denied = format!("{host}/team/other:v1@{other_digest}");
    let invalid = "Not A Reference!".to_owned();
    let images = [
        signed.clone(),
        unsigned.clone(),
        already_pinned.clone(),
        pinned_now_denied.clone(),
        invalid.clone(),
    ];

    // (namespace, image) -> (expected value, whether admission denies it). A denied image is
    // answered unchanged, never an error: the Constraint refuses it where admission does.
    let expected = |namespace: &str, image: &str| -> (String, bool) {
        match (namespace, image) {
            (_, i) if i == invalid => (i.to_owned(), true),
            // Verified by the production and development policies: pinned there.
            ("production" | "development", i) if i == signed => (format!("{signed}@{digest}"), false),
            ("production", i) if i == unsigned || i == pinned_now_denied => (i.to_owned(), true),
            (_, i) => (i.to_owned(), false),
        }
    };

    for namespace in ["production", "development", "default"] {
        let (status, mutation) =
            post_to(&client, &provider, &format!("/mutate/{namespace}"), &request(&images)).await?;
        assert_eq!(status, 200, "{mutation}");
        assert_eq!(
            mutation["response"]["idempotent"], true,
            "Gatekeeper needs idempotent answers"
        );
        assert_eq!(mutation["response"]["systemError"], "");
        let keys: Vec<String> = images.iter().map(|image| key(image, namespace)).collect();
        let (status, admission) = post_to(&client, &provider, "/validate", &request(&keys)).await?;
        assert_eq!(status, 200, "{admission}");
        for image in &images {
            let item = item(&mutation, image).ok_or_else(|| format!("no item for {image} in {mutation}"))?;
            let verdict = item_verdict(&admission, &key(image, namespace));
            let (value, denied) = expected(namespace, image);
            assert_eq!(item["value"], json!(value), "{namespace} {image}: {mutation}");
            assert!(
                item.get("error").is_none(),
                "{namespace} {image}: a denial refused by the mutation refuses every UPDATE of a Pod running it: {item}"
            );
            assert_eq!(
                verdict == "deny",
                denied,
                "{namespace} {image}: admission decides {verdict}: {admission}"
            );
        }
    }

    let (status, refused) = post_to(&client, &provider, "/mutate/Not_A_Namespace", &request(&images)).await?;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["response"]["systemError"]
            .as_str()
            .unwrap_or_default()
            .contains("/mutate/NAMESPACE"),
        "{refused}"
    );
    provider.shutdown().await;
    Ok(())
}

/// Under Kubewarden an image that passed every `enforce` policy is pinned whatever the `warn`
/// policies said (docs/lifecycle.md, "Pinning"); the mutation answer pins it the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_failing_only_a_warn_policy_is_pinned_as_under_kubewarden() -> TestResult {
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let release = testkit::KeyPair::ecdsa_p256()?;
    let audit = testkit::KeyPair::ecdsa_p256()?;
    let no_annotations = testkit::annotations([]);
    // Signed by the enforced key only: the warn policy fails.
    let warned_digest = testkit::push_image(&host, "team/app", "v1", "warned-app")?;
    testkit::sign_with_key(&host, "team/app", &warned_digest, &release, &no_annotations)?;
    // Signed by both keys: every policy passes.
    let allowed_digest = testkit::push_image(&host, "team/audited", "v1", "audited-app")?;
    testkit::sign_with_key(&host, "team/audited", &allowed_digest, &release, &no_annotations)?;
    testkit::sign_with_key(&host, "team/audited", &allowed_digest, &audit, &no_annotations)?;
    // Signed by the warn policy's key only: the enforcing policy denies it.
    let denied_digest = testkit::push_image(&host, "team/rogue", "v1", "rogue-app")?;
    testkit::sign_with_key(&host, "team/rogue", &denied_digest, &audit, &no_annotations)?;

    let settings = enforce_and_warn_settings(release.public_key_pem(), audit.public_key_pem());
    let decider = Arc::new(policy_decider(&host, settings.clone()).await??);
    let ca = Ca::new("serving CA")?;
    let client_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &client_ca)?;
    let provider = start(decider, &files, true, Limits::default()).await?;
    let client = tls13_client(&ca, Some(&client_ca.client()?))?;

    let warned = format!("{host}/team/app:v1");
    let allowed = format!("{host}/team/audited:v1");
    let denied = format!("{host}/team/rogue:v1");
    let images = [warned.clone(), allowed.clone(), denied.clone()];
    let namespace = "production";
    let (status, mutation) = post_to(&client, &provider, &format!("/mutate/{namespace}"), &request(&images)).await?;
    assert_eq!(status, 200, "{mutation}");
    let keys: Vec<String> = images.iter().map(|image| key(image, namespace)).collect();
    let (status, admission) = post_to(&client, &provider, "/validate", &request(&keys)).await?;
    assert_eq!(status, 200, "{admission}");

    // The case under test: admission warns (the warn policy failed) and carries the digest the
    // enforcing policy verified.
    let decision = &item(&admission, &key(&warned, namespace)).ok_or("no verdict for the warned image")?["value"];
    assert_eq!(decision["verdict"], "warn", "{admission}");
    assert_eq!(decision["digest"], json!(warned_digest), "{admission}");
    let pinned = |image: &str, digest: &str| json!(format!("{image}@{digest}"));
    let answer = |image: &str| item(&mutation, image).cloned().unwrap_or(Value::Null);
    assert_eq!(answer(&warned)["value"], pinned(&warned, &warned_digest), "{mutation}");
    assert!(answer(&warned).get("error").is_none(), "{mutation}");
    assert_eq!(item_verdict(&admission, &key(&allowed, namespace)), "allow");
    assert_eq!(
        answer(&allowed)["value"],
        pinned(&allowed, &allowed_digest),
        "{mutation}"
    );
    assert_eq!(item_verdict(&admission, &key(&denied, namespace)), "deny");
    // Denied: left unchanged (not pinned), the enforcing Constraint refuses it.
    assert_eq!(answer(&denied)["value"], json!(denied), "{mutation}");
    assert!(answer(&denied).get("error").is_none(), "{mutation}");

    // Kubewarden's `validate` on a Pod using the warned image in a container and an image
    // volume: admitted with a warning, both pinned to the same reference as the mutation answer.
    let evaluator = kubewarden_evaluator(&host)?;
    let pod = json!({
        "uid": "00000000-0000-0000-0000-000000000001",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": namespace,
        "name": "web",
        "userInfo": {"username": "u"},
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "containers": [{"name": "app", "image": warned}],
                "volumes": [{"name": "data", "image": {"reference": warned}}],
            },
        },
    });
    let kubewarden = evaluator.validate_async(pod, settings).await?;
    assert!(kubewarden.accepted, "{:?}", kubewarden.message);
    assert!(
        kubewarden
            .warnings
            .as_ref()
            .is_some_and(|w| w.iter().any(|w| w.contains("audit-signers"))),
        "{:?}",
        kubewarden.warnings
    );
    let mutated = kubewarden
        .mutated_object
        .ok_or("Kubewarden did not pin the warned image")?;
    assert_eq!(mutated["spec"]["containers"][0]["image"], answer(&warned)["value"]);
    assert_eq!(
        mutated["spec"]["volumes"][0]["image"]["reference"],
        answer(&warned)["value"]
    );
    provider.shutdown().await;
    Ok(())
}

/// Gatekeeper's mutation sends only the image (`dataSource: ValueAtLocation`), no labels: a
/// policy scoped by a label selector cannot be told to apply there. Found by a review: under
/// `noMatchPolicy: deny` the mutation refused a Pod whose image only such a policy covers, which
/// its labels make admitted (by `/validate` with the labels, and by the policy under Kubewarden).
/// A denial the labels could lift leaves the image unchanged (not pinned) for the validating
/// Constraint, which still denies what it should; so does a denial by a policy reading no labels
/// (every denial is the Constraint's), and verified images are still pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_the_pods_labels_could_lift_is_left_to_validation() -> TestResult {
    let registry = testkit::Registry::start()?;
    let host = registry.host();
    let signer = testkit::KeyPair::ecdsa_p256()?;
    let no_annotations = testkit::annotations([]);
    let team_digest = testkit::push_image(&host, "team/app", "v1", "labelled-app")?;
    testkit::sign_with_key(&host, "team/app", &team_digest, &signer, &no_annotations)?;
    let signed_digest = testkit::push_image(&host, "signed/app", "v1", "everywhere-app")?;
    testkit::sign_with_key(&host, "signed/app", &signed_digest, &signer, &no_annotations)?;
    testkit::push_image(&host, "frozen/app", "v1", "frozen-app")?;
    testkit::push_image(&host, "other/app", "v1", "uncovered-app")?;

    let pem = signer.public_key_pem();
    let policy = |name: &str, glob: String, matches: Value, authority: Value| {
        json!({"metadata": {"name": name},
               "spec": {"images": [{"glob": glob}], "match": matches, "authorities": [authority]}})
    };
    let key_authority = json!({"name": "team-key", "key": {"data": pem}});
    let settings = json!({"noMatchPolicy": "deny", "policies": [
        policy("team-a", format!("{host}/team/**"), json!([{"selector": {"matchLabels": {"team": "a"}}}]), key_authority.clone()),
        policy("signed", format!("{host}/signed/**"), json!([]), key_authority),
        policy("frozen", format!("{host}/frozen/**"), json!([]), json!({"static": {"action": "fail"}})),
    ]});
    let decider = Arc::new(policy_decider(&host, settings.clone()).await??);
    let ca = Ca::new("serving CA")?;
    let client_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &client_ca)?;
    let provider = start(decider, &files, true, Limits::default()).await?;
    let client = tls13_client(&ca, Some(&client_ca.client()?))?;

    let team = format!("{host}/team/app:v1");
    let signed = format!("{host}/signed/app:v1");
    let frozen = format!("{host}/frozen/app:v1");
    let other = format!("{host}/other/app:v1");
    let images = [team.clone(), signed.clone(), frozen.clone(), other.clone()];
    let (status, mutation) = post_to(&client, &provider, "/mutate/default", &request(&images)).await?;
    assert_eq!(status, 200, "{mutation}");
    let answer = |image: &str| item(&mutation, image).cloned().unwrap_or(Value::Null);
    // Only team-a covers it, and only in a Pod labelled team=a: left unchanged, not refused.
    assert_eq!(answer(&team)["value"], json!(team), "{mutation}");
    assert!(answer(&team).get("error").is_none(), "{mutation}");
    // A policy without selector verified it: pinned as before.
    assert_eq!(
        answer(&signed)["value"],
        json!(format!("{signed}@{signed_digest}")),
        "{mutation}"
    );
    // Denied by a policy that reads no labels: left unchanged too; validation denies it below.
    assert_eq!(answer(&frozen)["value"], json!(frozen), "{mutation}");
    assert!(answer(&frozen).get("error").is_none(), "{mutation}");
    // No policy covers it, but team-a's selector cannot be evaluated here: left to validation.
    assert_eq!(answer(&other)["value"], json!(other), "{mutation}");

    // Validation, which the Constraint gives the labels, decides what the mutation left.
    let labelled = |image: &str, labels: Value| {
        json!({"image": image, "namespace": "default",
               "resource": {"group": "", "version": "v1", "resource": "pods"}, "labels": labels})
        .to_string()
    };
    let keys = [
        labelled(&team, json!({"team": "a"})),
        labelled(&team, json!({"team": "b"})),
        labelled(&other, json!({"team": "a"})),
        labelled(&frozen, json!({"team": "a"})),
    ];
    let (status, admission) = post_to(&client, &provider, "/validate", &request(&keys)).await?;
    assert_eq!(status, 200, "{admission}");
    assert_eq!(item_verdict(&admission, &keys[0]), "allow", "{admission}");
    assert_eq!(
        item(&admission, &keys[0]).ok_or("no item")?["value"]["digest"],
        json!(team_digest)
    );
    assert_eq!(item_verdict(&admission, &keys[1]), "deny", "{admission}");
    assert_eq!(item_verdict(&admission, &keys[2]), "deny", "{admission}");
    assert_eq!(item_verdict(&admission, &keys[3]), "deny", "{admission}");

    // Kubewarden admits the labelled Pod (and pins it: under Gatekeeper it stays unpinned).
    let evaluator = kubewarden_evaluator(&host)?;
    let pod = json!({
        "uid": "00000000-0000-0000-0000-000000000002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": "default",
        "name": "web",
        "userInfo": {"username": "u"},
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
            "spec": {"containers": [{"name": "app", "image": team}]},
        },
    });
    let kubewarden = evaluator.validate_async(pod, settings).await?;
    assert!(kubewarden.accepted, "{:?}", kubewarden.message);
    provider.shutdown().await;
    Ok(())
}

/// Every image must be signed by the release key (`enforce`); the audit key is only warned
/// about (`warn`). Both policies cover every image in every namespace.
fn enforce_and_warn_settings(release_pem: &str, audit_pem: &str) -> Value {
    let policy = |name: &str, authority: &str, pem: &str, mode: &str| {
        json!({
            "apiVersion": "policy.sigstore.dev/v1beta1",
            "kind": "ClusterImagePolicy",
            "metadata": {"name": name},
            "spec": {
                "images": [{"glob": "**"}],
                "authorities": [{"name": authority, "key": {"data": pem}}],
                "mode": mode,
            }
        })
    };
    json!({
        "policies": [
            policy("release-signers", "release-key", release_pem, "enforce"),
            policy("audit-signers", "audit-key", audit_pem, "warn"),
        ],
        "noMatchPolicy": "deny",
    })
}

/// The policy module as Kubewarden runs it (`validate`), verifying against the loopback registry.
fn kubewarden_evaluator(registry_host: &str) -> TestResult<cip::runtime::Evaluator> {
    let capabilities = loopback_capabilities(registry_host)?;
    Ok(cip::runtime::Evaluator::new(
        &policy_module()?,
        capabilities,
        cip::runtime::EvaluatorOptions::default(),
    )?)
}

/// The verdict `/validate` gave for `key` (`"error"` for a per-key error).
fn item_verdict(answer: &Value, key: &str) -> String {
    match item(answer, key) {
        Some(item) if item.get("error").is_some() => "deny".to_owned(),
        Some(item) => item["value"]["verdict"].as_str().unwrap_or_default().to_owned(),
        None => "missing".to_owned(),
    }
}
