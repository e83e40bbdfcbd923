//! `verify_images` (Gatekeeper, `cip verify`) decides as admission does when its keys carry the
//! object's namespace, resource and labels: one table of objects run through both.

use super::*;

use crate::workload::image_sites;

/// Static authorities only: verdicts depend on matching alone, no host call.
fn scoped_settings() -> Value {
    let policy = |name: &str, glob: &str, matches: Value, action: &str, mode: &str| {
        json!({
            "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
            "metadata": {"name": name},
            "spec": {"images": [{"glob": glob}], "match": matches, "mode": mode,
                     "authorities": [{"static": if action == "fail" {
                         json!({"action": "fail", "message": format!("{name} says no")})
                     } else {
                         json!({"action": "pass"})
                     }}]}
        })
    };
    json!({"policies": [
        policy("frozen-deployments", "myregistry.com/frozen/**",
               json!([{"group": "apps", "version": "v1", "resource": "deployments"}]), "fail", "enforce"),
        policy("labelled", "myregistry.com/**",
               json!([{"selector": {"matchLabels": {"signed": "required"}}}]), "fail", "warn"),
        policy("production", "myregistry.com/**", json!([{"namespaces": ["production"]}]), "pass", "enforce"),
        policy("data", "myregistry.com/data/**", json!([]), "fail", "enforce"),
    ]})
}

/// `(kind, group, resource, object)` → an AdmissionRequest.
fn admission_request(kind: &str, group: &str, resource: &str, namespace: &str, object: Value) -> Value {
    json!({
        "uid": "1", "operation": "CREATE", "namespace": namespace,
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": resource},
        "object": object,
    })
}

fn object(kind: &str, labels: Value, spec: Value) -> Value {
    let meta = json!({"name": "x", "labels": labels});
    match kind {
        "Pod" => json!({"kind": kind, "metadata": meta, "spec": spec}),
        "CronJob" => json!({"kind": kind, "metadata": meta,
                            "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
        _ => json!({"kind": kind, "metadata": meta, "spec": {"template": {"spec": spec}}}),
    }
}

/// The keys our ConstraintTemplate sends for the request's object.
fn keys_for(request: &Value) -> Vec<Value> {
    let kind = request["kind"]["kind"].as_str().unwrap();
    let object = request["object"].to_string();
    let sites = image_sites(kind, "", &object).unwrap();
    let mut keys: Vec<Value> = Vec::new();
    for site in sites {
        let key = json!({
            "image": site.image,
            "namespace": request["namespace"],
            "resource": request["resource"],
            "labels": request["object"]["metadata"].get("labels").cloned().unwrap_or(json!({})),
        });
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

#[test]
fn verify_images_and_validate_agree_on_every_object() {
    let s = scoped_settings();
    let containers =
        |images: &[&str]| -> Vec<Value> { images.iter().map(|i| json!({"name": "c", "image": i})).collect() };
    let signed = json!({"signed": "required"});
    let cases = [
        // A glob scoped to Deployments does not apply to a Pod: no policy covers the image.
        (
            admission_request(
                "Pod",
                "",
                "pods",
                "default",
                object(
                    "Pod",
                    json!({}),
                    json!({"containers": containers(&["myregistry.com/frozen/app:1"])}),
                ),
            ),
            vec!["warn"],
        ),
        (
            admission_request(
                "Deployment",
                "apps",
                "deployments",
                "default",
                object(
                    "Deployment",
                    json!({}),
                    json!({"containers": containers(&["myregistry.com/frozen/app:1"])}),
                ),
            ),
            vec!["deny"],
        ),
        (
            admission_request(
                "Deployment",
                "apps",
                "deployments",
                "default",
                object(
                    "Deployment",
                    signed.clone(),
                    json!({"containers": containers(&["myregistry.com/app:1"])}),
                ),
            ),
            vec!["warn"],
        ),
        (
            admission_request(
                "Pod",
                "",
                "pods",
                "production",
                object(
                    "Pod",
                    json!({}),
                    json!({"containers": containers(&["myregistry.com/app:1"])}),
                ),
            ),
            vec!["allow"],
        ),
        (
            admission_request(
                "Pod",
                "",
                "pods",
                "production",
                object(
                    "Pod",
                    json!({}),
                    json!({"containers": containers(&["myregistry.com/app:1"]),
                                               "volumes": [{"name": "d", "image": {"reference": "myregistry.com/data/set:1"}}]}),
                ),
            ),
            vec!["allow", "deny"],
        ),
        (
            admission_request(
                "CronJob",
                "batch",
                "cronjobs",
                "production",
                object(
                    "CronJob",
                    signed.clone(),
                    json!({"initContainers": containers(&["myregistry.com/init:1"]),
                                                         "containers": containers(&["nginx"])}),
                ),
            ),
            vec!["warn", "warn"],
        ),
    ];
    for (request, expected) in cases {
        let admission = run(&request, &s, &mut MockHost::failing());
        let keys = keys_for(&request);
        let payload = json!({"settings": s, "images": keys}).to_string();
        let answer = verify_images(
            payload.as_bytes(),
            &mut SettingsCache::default(),
            &mut MockHost::failing(),
        )
        .expect("verify_images answers");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        let results = answer["results"].as_array().unwrap();
        let verdicts: Vec<&str> = results.iter().map(|r| r["verdict"].as_str().unwrap()).collect();
        assert_eq!(verdicts, expected, "{request}");

        let messages = |verdict: &str| -> Vec<&str> {
            results
                .iter()
                .filter(|r| r["verdict"] == verdict)
                .map(|r| r["message"].as_str().unwrap())
                .collect()
        };
        let denials = messages("deny");
        assert_eq!(admission["accepted"], denials.is_empty(), "{request}: {admission}");
        if !denials.is_empty() {
            let m = admission["message"].as_str().unwrap();
            assert!(m.ends_with(&denials.join("; ")), "{m}");
        }
        let warnings = messages("warn");
        if admission["accepted"] == true {
            if warnings.is_empty() {
                assert!(admission["audit_annotations"].is_null(), "{admission}");
            } else {
                assert_eq!(admission["audit_annotations"]["unverified-images"], warnings.join("; "));
            }
        }
    }
}

#[test]
fn keys_carry_resource_and_labels_and_the_old_form_still_works() -> Result<(), String> {
    let s = scoped_settings();
    let decide = |key: Value| -> Result<Value, String> {
        let payload = json!({"settings": s, "images": [key]}).to_string();
        verify_images(
            payload.as_bytes(),
            &mut SettingsCache::default(),
            &mut MockHost::failing(),
        )
        .map(|a| serde_json::from_slice::<Value>(&a).unwrap()["results"][0].clone())
    };
    let frozen = "myregistry.com/frozen/app:1";
    let deployments = json!({"group": "apps", "version": "v1", "resource": "deployments"});
    assert_eq!(
        decide(json!({"image": frozen, "namespace": "default", "resource": deployments}))?["verdict"],
        "deny"
    );
    // The old form decides as in a Pod without labels.
    assert_eq!(
        decide(json!({"image": frozen, "namespace": "default"}))?["verdict"],
        "warn"
    );
    let labelled =
        decide(json!({"image": "myregistry.com/app:1", "namespace": "default", "labels": {"signed": "required"}}))?;
    assert_eq!(labelled["verdict"], "warn");
    assert_eq!(labelled["policies"][0]["name"], "labelled");
    // Keys a policy could misread are refused, never decided as something else.
    for bad in [
        json!({"image": frozen, "namespace": "default", "resource": {"group": "apps", "version": "", "resource": "deployments"}}),
        json!({"image": frozen, "namespace": "default", "resource": {"version": "v1", "resource": " "}}),
        json!({"image": frozen, "namespace": "default", "resource": "apps/v1/deployments"}),
        json!({"image": frozen, "namespace": "default", "resource": {"version": "v1", "resource": "pods", "kind": "Pod"}}),
        json!({"image": frozen, "namespace": "default", "labels": {"signed": true}}),
        json!({"image": frozen, "namespace": "default", "label": {}}),
    ] {
        assert!(decide(bad.clone()).is_err(), "{bad}");
    }
    Ok(())
}
