//! The object's lifecycle (DELETE, deletion, updates that change no image, updates that change
//! some), pinning, unreadable workloads, and the settings that would otherwise be ignored.
//! "No host call" is asserted with a host that records every call and fails them all.

use super::*;

/// An image nobody signed.
const UNSIGNED: &str = "myregistry.com/unsigned:1";

fn signed_images() -> Value {
    settings(&[with_keys(&article("signed-images-policy"), &[P256_PEM])], json!({}))
}

/// A request about `object` of `kind` (`resource` in `group`/v1).
fn request(operation: &str, kind: &str, group: &str, resource: &str, object: Value, old: Value) -> Value {
    json!({
        "uid": "1",
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": resource},
        "namespace": "default",
        "operation": operation,
        "object": object,
        "oldObject": old,
    })
}

fn deployment(images: &[&str], replicas: u32) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}
    })
}

fn pod_object(images: &[&str]) -> Value {
    pod("default", images)["object"].clone()
}

mod pinning {
    use super::*;

    #[test]
    fn an_image_that_passed_every_enforce_policy_is_pinned_whatever_warn_policies_said() {
        // signed-images-policy (enforce, P-256 key) passes; a warn policy wanting a P-384
        // signature fails. The image is admitted with a warning, and pinned to the digest the
        // enforcing policy verified: otherwise the tag could move between check and pull.
        let mut warn = with_keys(&article("signed-images-policy"), &[P256_SECOND_PEM]);
        warn = warn.replace("name: signed-images-policy", "name: also-p384");
        let s = settings(
            &[with_keys(&article("signed-images-policy"), &[P256_PEM]), warn],
            json!({}),
        );
        let mut s = s;
        s["policies"][1]["spec"]["mode"] = json!("warn");
        let mut host = host_trusting_key(P256_PEM);
        let r = run(&pod("default", &["myregistry.com/app:v1"]), &s, &mut host);
        assert_eq!(r["accepted"], true, "{r}");
        assert!(
            r["warnings"][0]
                .as_str()
                .unwrap()
                .contains("not verified by policy also-p384 (warn mode)"),
            "{r}"
        );
        assert_eq!(
            r["mutated_object"]["spec"]["containers"][0]["image"],
            format!("myregistry.com/app:v1@{DIGEST}"),
            "{r}"
        );
    }

    /// Each site is pinned to the digest verified for its own image, an image written twice
    /// is verified once and pinned at both sites, and an image no policy covers is left as it is.
    #[test]
    fn every_site_is_pinned_to_its_own_images_digest() {
        // The covered images differ in length: one digest each.
        let digest_of = |image: &str| format!("sha256:{:064x}", image.len());
        let mut host = crate::host::mock::MockHost::new(move |_, payload| {
            crate::host::mock::trusted(&digest_of(payload["image"].as_str().unwrap_or_default()))
        });
        let images = [
            "myregistry.com/a:1",
            "myregistry.com/bb:2",
            "other.io/c:3",
            "myregistry.com/a:1",
            "myregistry.com/ddd:4",
            "myregistry.com/bb:2",
        ];
        let r = run(&pod("default", &images), &signed_images(), &mut host);
        assert_eq!(r["accepted"], true, "{r}");
        let asked: Vec<&str> = host.calls.iter().map(|(_, p)| p["image"].as_str().unwrap()).collect();
        assert_eq!(
            asked,
            ["myregistry.com/a:1", "myregistry.com/bb:2", "myregistry.com/ddd:4"]
        );
        let containers = &r["mutated_object"]["spec"]["containers"];
        for (i, image) in images.iter().enumerate() {
            let expected = if image.starts_with("other.io/") {
                (*image).to_owned()
            } else {
                format!("{image}@{}", digest_of(image))
            };
            assert_eq!(containers[i]["image"], expected, "site {i}: {r}");
        }
    }

    #[test]
    fn a_denied_image_is_never_pinned() {
        let r = run(
            &pod("default", &[UNSIGNED]),
            &signed_images(),
            &mut host_trusting_key(P256_SECOND_PEM),
        );
        assert_eq!(r["accepted"], false);
        assert!(r["mutated_object"].is_null());
    }
}

mod requests {
    use super::*;

    #[test]
    fn delete_and_connect_make_no_host_call() {
        let mut host = MockHost::failing();
        // As the API server sends a DELETE (object null, oldObject the stored object), and as
        // review tools build one (object filled in).
        for (object, old) in [
            (json!(null), pod_object(&[UNSIGNED])),
            (pod_object(&[UNSIGNED]), pod_object(&[UNSIGNED])),
        ] {
            let r = run(
                &request("DELETE", "Pod", "", "pods", object, old),
                &signed_images(),
                &mut host,
            );
            assert_eq!(r["accepted"], true, "{r}");
        }
        let r = run(
            &request("CONNECT", "Pod", "", "pods", pod_object(&[UNSIGNED]), json!(null)),
            &signed_images(),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        assert!(host.calls.is_empty(), "{:?}", host.calls);
    }

    #[test]
    fn an_object_being_deleted_is_admitted_without_host_call() {
        // Removing the last finalizer of a Deployment being deleted while the registry is down.
        let mut old = deployment(&[UNSIGNED], 1);
        old["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        old["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
        let mut new = old.clone();
        new["metadata"]["finalizers"] = json!([]);
        // Even a changed image: the controllers of an object being deleted start nothing.
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("myregistry.com/other:2");
        let mut host = MockHost::failing();
        let r = run(
            &request("UPDATE", "Deployment", "apps", "deployments", new, old),
            &signed_images(),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        assert!(host.calls.is_empty());
    }

    #[test]
    fn a_deletion_timestamp_written_by_the_client_is_no_way_past_the_policy() {
        // On CREATE the API server drops deletionTimestamp after mutating admission: a forger
        // setting it must still be verified. On UPDATE it counts only when the stored object
        // has it.
        let mut forged = pod_object(&[UNSIGNED]);
        forged["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut host = MockHost::failing();
        let created = run(
            &request("CREATE", "Pod", "", "pods", forged.clone(), json!(null)),
            &signed_images(),
            &mut host,
        );
        assert_eq!(created["accepted"], false, "{created}");
        let updated = run(
            &request(
                "UPDATE",
                "Pod",
                "",
                "pods",
                forged,
                pod_object(&["myregistry.com/old:1"]),
            ),
            &signed_images(),
            &mut host,
        );
        assert_eq!(updated["accepted"], false, "{updated}");
        assert_eq!(host.calls.len(), 2);
    }

    #[test]
    fn updates_that_change_no_image_make_no_host_call() {
        let old = deployment(&[UNSIGNED, "myregistry.com/side:1"], 3);
        let mut scaled = deployment(&[UNSIGNED, "myregistry.com/side:1"], 1);
        scaled["metadata"]["labels"]["tier"] = json!("frontend");
        scaled["metadata"]["finalizers"] = json!(["example.com/x"]);
        let mut status = old.clone();
        status["status"] = json!({"readyReplicas": 3});
        let mut host = MockHost::failing();
        for (sub_resource, new) in [("", scaled), ("status", status)] {
            let mut req = request("UPDATE", "Deployment", "apps", "deployments", new, old.clone());
            req["subResource"] = json!(sub_resource);
            let r = run(&req, &signed_images(), &mut host);
            assert_eq!(r["accepted"], true, "{sub_resource}: {r}");
            assert!(r["mutated_object"].is_null(), "{r}");
        }
        // The status subresource cannot change the spec: no host call even if it seems to.
        let mut req = request(
            "UPDATE",
            "Pod",
            "",
            "pods",
            pod_object(&["myregistry.com/new:1"]),
            pod_object(&[UNSIGNED]),
        );
        req["subResource"] = json!("status");
        assert_eq!(run(&req, &signed_images(), &mut host)["accepted"], true);
        assert!(host.calls.is_empty(), "{:?}", host.calls);
    }

    /// A policy that covers only Pods labelled `env: prod`, and fails.
    fn prod_only() -> Value {
        json!({"noMatchPolicy": "allow", "policies": [{
            "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
            "metadata": {"name": "prod-only"},
            "spec": {"images": [{"glob": "myregistry.com/**"}],
                     "match": [{"version": "v1", "resource": "pods", "selector": {"matchLabels": {"env": "prod"}}}],
                     "authorities": [{"static": {"action": "fail", "message": "not for prod"}}]}
        }]})
    }

    fn labelled_pod(labels: Value) -> Value {
        let mut object = pod_object(&[UNSIGNED]);
        object["metadata"]["labels"] = labels;
        object
    }

    #[test]
    fn a_relabelling_that_brings_a_pod_under_a_policy_is_decided() {
        // Found by an audit: admitted without the label (no policy covered it), the Pod was
        // relabelled into the policy's selector and kept its image unverified.
        let mut host = MockHost::failing();
        let relabel =
            |new: Value, old: Value| request("UPDATE", "Pod", "", "pods", labelled_pod(new), labelled_pod(old));
        let r = run(&relabel(json!({"env": "prod"}), json!({})), &prod_only(), &mut host);
        assert_eq!(r["accepted"], false, "{r}");
        assert!(
            r["message"].as_str().unwrap_or_default().contains("not for prod"),
            "{r}"
        );
        // Labels the selector does not look at, on either side of it, change no decision: nothing
        // is decided (the second Pod was admitted before the policy: its verdict is not revisited
        // by an update that changes nothing the policy reads). Out of the selector: decided,
        // and no policy covers it any longer.
        for (new, old) in [
            (json!({"team": "a"}), json!({})),
            (json!({"env": "prod", "team": "a"}), json!({"env": "prod"})),
            (json!({"env": "dev"}), json!({"env": "prod"})),
        ] {
            let r = run(&relabel(new.clone(), old), &prod_only(), &mut host);
            assert_eq!(r["accepted"], true, "{new}: {r}");
        }
        assert!(host.calls.is_empty(), "{:?}", host.calls);
    }

    #[test]
    fn an_image_given_to_another_container_is_decided_there() {
        // `UNSIGNED`, held by container 0 (admitted before the policy, say), given to container
        // 1: container 1 would run it, so it is decided as on CREATE.
        let old = pod_object(&[UNSIGNED, "myregistry.com/app:1"]);
        let new = pod_object(&[UNSIGNED, UNSIGNED]);
        let mut host = host_trusting_key(P256_SECOND_PEM);
        let r = run(
            &request("UPDATE", "Pod", "", "pods", new, old),
            &signed_images(),
            &mut host,
        );
        assert_eq!(r["accepted"], false, "{r}");
        assert_eq!(host.calls.len(), 1);
        // Signed: decided and pinned where its field changed; container 0 is left as written.
        let old = pod_object(&["myregistry.com/app:1", "myregistry.com/side:1"]);
        let new = pod_object(&["myregistry.com/app:1", "myregistry.com/app:1"]);
        let mut host = host_trusting_key(P256_PEM);
        let r = run(
            &request("UPDATE", "Pod", "", "pods", new, old),
            &signed_images(),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        let containers = &r["mutated_object"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "myregistry.com/app:1", "{r}");
        assert_eq!(containers[1]["image"], format!("myregistry.com/app:1@{DIGEST}"), "{r}");
        // A template's containers reordered: each place holds another image, both are decided.
        let old = deployment(&[UNSIGNED, "myregistry.com/side:1"], 1);
        let new = deployment(&["myregistry.com/side:1", UNSIGNED], 1);
        let mut host = host_trusting_key(P256_SECOND_PEM);
        let r = run(
            &request("UPDATE", "Deployment", "apps", "deployments", new, old),
            &signed_images(),
            &mut host,
        );
        assert_eq!(r["accepted"], false, "{r}");
        assert_eq!(host.calls.len(), 2);
    }

    #[test]
    fn a_policy_reading_the_object_decides_every_update_of_an_image_it_covers() {
        let mut s = signed_images();
        s["policies"][0]["spec"]["policy"] = json!({
            "type": "rego", "includeSpec": true,
            "data": "package sigstore\nisCompliant = input.spec.replicas < 3\n"
        });
        let mut host = MockHost::new(|capability, payload| {
            if capability == crate::policy::rego::CIP_POLICY_REGO {
                let few = payload["input"]["spec"]["replicas"].as_u64().is_some_and(|n| n < 3);
                return Ok(if few {
                    br#"{"compliant": true}"#.to_vec()
                } else {
                    br#"{"compliant": false, "error": "too many replicas"}"#.to_vec()
                });
            }
            crate::host::mock::trusted(DIGEST)
        });
        let scale = |to: u32, from: u32| {
            request(
                "UPDATE",
                "Deployment",
                "apps",
                "deployments",
                deployment(&["myregistry.com/app:1"], to),
                deployment(&["myregistry.com/app:1"], from),
            )
        };
        // Same image, same labels; the policy reads the spec, which changed.
        let r = run(&scale(5, 1), &s, &mut host);
        assert_eq!(r["accepted"], false, "{r}");
        assert!(
            r["message"].as_str().unwrap_or_default().contains("too many replicas"),
            "{r}"
        );
        // Decided again and passing: an image the old object held there is never rewritten.
        let r = run(&scale(2, 1), &s, &mut host);
        assert_eq!(r["accepted"], true, "{r}");
        assert!(r["mutated_object"].is_null(), "{r}");
        // Without the block, scaling decides nothing.
        let mut host = MockHost::failing();
        let r = run(&scale(5, 1), &signed_images(), &mut host);
        assert_eq!(r["accepted"], true, "{r}");
        assert!(host.calls.is_empty());
    }

    #[test]
    fn an_ephemeral_container_added_to_a_pod_with_others_is_decided_alone() {
        // `kubectl debug` twice: the first debug container is held at its place, the second is
        // decided (and pinned); the Pod's other containers are not in the subresource's request.
        let with_debug = |images: &[&str]| {
            let mut object = pod_object(&[UNSIGNED]);
            object["spec"]["ephemeralContainers"] = images
                .iter()
                .enumerate()
                .map(|(i, image)| json!({"name": format!("debug{i}"), "image": image}))
                .collect();
            object
        };
        let mut req = request(
            "UPDATE",
            "Pod",
            "",
            "pods",
            with_debug(&["myregistry.com/old-debug:1", "myregistry.com/debug:2"]),
            with_debug(&["myregistry.com/old-debug:1"]),
        );
        req["subResource"] = json!("ephemeralcontainers");
        let mut host = host_trusting_key(P256_PEM);
        let r = run(&req, &signed_images(), &mut host);
        assert_eq!(r["accepted"], true, "{r}");
        let asked: Vec<&Value> = host.calls.iter().map(|(_, p)| &p["image"]).collect();
        assert_eq!(asked, [&json!("myregistry.com/debug:2")]);
        let ephemeral = &r["mutated_object"]["spec"]["ephemeralContainers"];
        assert_eq!(ephemeral[0]["image"], "myregistry.com/old-debug:1");
        assert_eq!(ephemeral[1]["image"], format!("myregistry.com/debug:2@{DIGEST}"));
    }

    #[test]
    fn a_request_without_kind_is_refused_and_the_namespace_may_come_from_the_object() {
        let mut no_kind = pod("default", &[UNSIGNED]);
        no_kind["kind"] = json!({});
        let r = run(&no_kind, &signed_images(), &mut MockHost::failing());
        assert_eq!(r["accepted"], false, "{r}");
        assert_eq!(
            r["message"],
            "the admission request has no kind: cannot tell where its images are"
        );
        // A request without namespace (review tools, audits): the object's decides which
        // namespace-scoped policy applies.
        let mut s = signed_images();
        s["policies"][0]["spec"]["match"] = json!([{"namespaces": ["production"]}]);
        for (object_namespace, accepted) in [("production", false), ("default", true)] {
            let mut req = pod("", &[UNSIGNED]);
            req["object"]["metadata"]["namespace"] = json!(object_namespace);
            let r = run(&req, &s, &mut host_trusting_key(P256_SECOND_PEM));
            assert_eq!(r["accepted"], accepted, "{object_namespace}: {r}");
        }
    }

    #[test]
    fn an_update_verifies_and_pins_only_new_images() {
        let old = pod_object(&[UNSIGNED, "myregistry.com/app:1"]);
        let new = pod_object(&[UNSIGNED, "myregistry.com/app:2"]);
        let mut host = host_trusting_key(P256_PEM);
        let r = run(
            &request("UPDATE", "Pod", "", "pods", new, old),
            &signed_images(),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        assert_eq!(host.calls.len(), 1);
        assert_eq!(host.calls[0].1["image"], "myregistry.com/app:2");
        let containers = &r["mutated_object"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], UNSIGNED, "unchanged images are not rewritten");
        assert_eq!(containers[1]["image"], format!("myregistry.com/app:2@{DIGEST}"));

        // A new unsigned image is refused as on CREATE.
        let old = pod_object(&["myregistry.com/app:1"]);
        let new = pod_object(&["myregistry.com/app:1", UNSIGNED]);
        let r = run(
            &request("UPDATE", "Pod", "", "pods", new, old),
            &signed_images(),
            &mut host_trusting_key(P256_SECOND_PEM),
        );
        assert_eq!(r["accepted"], false);
        assert!(r["message"].as_str().unwrap().contains(UNSIGNED), "{r}");
    }

    #[test]
    fn pinning_on_update_never_rewrites_an_immutable_field() {
        // A Job's pod template is immutable: an update of its labels must come back unchanged.
        let job = |labels: Value| {
            json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "once", "namespace": "default", "labels": labels},
                "spec": {"suspend": false, "template": {"spec": {"containers": [{"name": "c", "image": "myregistry.com/job:1"}]}}}
            })
        };
        let mut host = host_trusting_key(P256_PEM);
        let r = run(
            &request(
                "UPDATE",
                "Job",
                "batch",
                "jobs",
                job(json!({"a": "2"})),
                job(json!({"a": "1"})),
            ),
            &signed_images(),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        assert!(r["mutated_object"].is_null(), "{r}");
        assert!(host.calls.is_empty());

        // A Pod's volumes are immutable, its container images are not: only the changed
        // container image is pinned, the image volume is left as written.
        let with_volume = |image: &str| {
            let mut object = pod_object(&[image]);
            object["spec"]["volumes"] = json!([{"name": "data", "image": {"reference": "myregistry.com/data:1"}}]);
            object
        };
        let r = run(
            &request(
                "UPDATE",
                "Pod",
                "",
                "pods",
                with_volume("myregistry.com/app:2"),
                with_volume("myregistry.com/app:1"),
            ),
            &signed_images(),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        let spec = &r["mutated_object"]["spec"];
        assert_eq!(spec["containers"][0]["image"], format!("myregistry.com/app:2@{DIGEST}"));
        assert_eq!(spec["volumes"][0]["image"]["reference"], "myregistry.com/data:1");
        assert_eq!(host.calls.len(), 1);
    }

    #[test]
    fn an_unreadable_old_object_vouches_for_nothing() {
        let mut host = host_trusting_key(P256_SECOND_PEM);
        let r = run(
            &request(
                "UPDATE",
                "Pod",
                "",
                "pods",
                pod_object(&[UNSIGNED]),
                json!({"spec": {"containers": "garbage"}}),
            ),
            &signed_images(),
            &mut host,
        );
        assert_eq!(r["accepted"], false, "{r}");
        assert_eq!(host.calls.len(), 1);
    }

    #[test]
    fn a_workload_that_cannot_be_read_as_its_kind_is_denied() {
        let wrap = |kind: &str, spec: Value| -> Value {
            match kind {
                "Pod" => json!({"kind": kind, "metadata": {"name": "x"}, "spec": spec}),
                "CronJob" => {
                    json!({"kind": kind, "metadata": {"name": "x"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}})
                }
                _ => json!({"kind": kind, "metadata": {"name": "x"}, "spec": {"template": {"spec": spec}}}),
            }
        };
        for kind in [
            "Pod",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "Job",
            "CronJob",
            "ReplicationController",
        ] {
            for (spec, field) in [
                (
                    json!({"containers": {"image": UNSIGNED}}),
                    "containers is an object, not a list",
                ),
                (
                    json!({"containers": [{"image": [UNSIGNED]}]}),
                    "containers[0].image is a list, not a string",
                ),
                (
                    json!({"initContainers": "x", "containers": []}),
                    "initContainers is a string, not a list",
                ),
                (
                    json!({"containers": [], "volumes": [{"image": {"reference": 1}}]}),
                    "volumes[0].image.reference is a number, not a string",
                ),
            ] {
                for operation in ["CREATE", "UPDATE"] {
                    let mut host = MockHost::failing();
                    let r = run(
                        &request(
                            operation,
                            kind,
                            "",
                            "x",
                            wrap(kind, spec.clone()),
                            wrap(kind, json!({"containers": []})),
                        ),
                        &signed_images(),
                        &mut host,
                    );
                    assert_eq!(r["accepted"], false, "{kind} {operation} {spec}: {r}");
                    let m = r["message"].as_str().unwrap();
                    assert!(
                        m.starts_with(&format!("{kind} default/x cannot be read as a {kind}: ")),
                        "{m}"
                    );
                    assert!(m.contains(field), "{kind}: {m}");
                    assert!(host.calls.is_empty());
                }
            }
        }
        // Found by a security review: a template's container without an image was admitted
        // (policy-controller denies it: the empty reference does not parse). Denied whatever the
        // settings, as an invalid reference is, naming the container; on UPDATE too.
        for (container, named) in [
            (json!({"name": "app"}), "container \"app\" has no image"),
            (json!({"name": "app", "image": ""}), "container \"app\" has no image"),
            (json!({"image": null}), "container has no image"),
        ] {
            let mut object = deployment(&["myregistry.com/app:1", "myregistry.com/app:1"], 1);
            object["spec"]["template"]["spec"]["containers"][1] = container.clone();
            for s in [
                signed_images(),
                json!({"policies": [], "noMatchPolicy": "allow"}),
                json!({"policies": [], "noMatchPolicy": "warn"}),
            ] {
                for (operation, old) in [
                    ("CREATE", json!(null)),
                    (
                        "UPDATE",
                        deployment(&["myregistry.com/app:1", "myregistry.com/app:1"], 1),
                    ),
                ] {
                    let mut host = host_trusting_key(P256_PEM);
                    let r = run(
                        &request(operation, "Deployment", "apps", "deployments", object.clone(), old),
                        &s,
                        &mut host,
                    );
                    assert_eq!(r["accepted"], false, "{container} {operation}: {r}");
                    assert_eq!(
                        r["message"],
                        format!(
                            "Deployment default/web: {named} (spec.template.spec.containers[1].image is missing or \
                             empty): what it will run cannot be verified; write its image in the template"
                        ),
                        "{container}"
                    );
                    assert!(host.calls.is_empty());
                }
            }
        }
        // A Pod's container without an image is refused by the API server, after every mutating
        // webhook (the validating twin of the deploy manifests decides what another webhook fills
        // in): it holds none; an empty one is an invalid reference, denied.
        let mut object = pod_object(&["myregistry.com/app:1", "myregistry.com/app:1"]);
        object["spec"]["containers"][1] = json!({"name": "late"});
        let r = run(
            &request("CREATE", "Pod", "", "pods", object.clone(), json!(null)),
            &signed_images(),
            &mut host_trusting_key(P256_PEM),
        );
        assert_eq!(r["accepted"], true, "{r}");
        object["spec"]["containers"][1]["image"] = json!("");
        let r = run(
            &request("CREATE", "Pod", "", "pods", object, json!(null)),
            &signed_images(),
            &mut host_trusting_key(P256_PEM),
        );
        assert_eq!(r["accepted"], false, "{r}");
        assert!(
            r["message"]
                .as_str()
                .unwrap_or_default()
                .contains("is not a valid image reference"),
            "{r}"
        );
        // An object of another kind than the request says.
        let mut req = pod("default", &["nginx"]);
        req["object"]["kind"] = json!("Deployment");
        let r = run(&req, &signed_images(), &mut MockHost::failing());
        assert_eq!(r["accepted"], false);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("the object is a Deployment, but the request is about a Pod"),
            "{r}"
        );
        // A CREATE without a kind.
        let mut req = pod("default", &["nginx"]);
        req["kind"] = json!({});
        assert_eq!(run(&req, &signed_images(), &mut MockHost::failing())["accepted"], false);
    }
}

mod settings_refused {
    use super::*;

    fn refused(s: &Value) -> String {
        check_settings(s).expect_err("settings must be refused")
    }

    #[test]
    fn empty_match_namespaces_is_refused() {
        let mut s = signed_images();
        s["policies"][0]["spec"]["match"] = json!([{"namespaces": []}]);
        let err = refused(&s);
        assert!(
            err.starts_with("policies[0].spec.match[0].namespaces: namespaces is empty")
                && err.contains("remove the field to match every namespace"),
            "{err}"
        );
    }

    /// Found by a security review: a selector with a key or value no label can have loaded, and
    /// never matched, so the policy silently stopped applying (policy-controller's
    /// `LabelSelectorAsSelector` refuses it, and denies). Refused at load, naming the field.
    #[test]
    fn a_selector_no_label_can_satisfy_is_refused_naming_the_field() {
        let mut s = signed_images();
        let never = ": no object can carry it, so the selector would never match (policy-controller refuses it)";
        let key_fix = "write a name of at most 63 letters, digits, `-`, `_` and `.` beginning and ending with a \
                       letter or digit, optionally after a DNS subdomain and `/` (`tier`, `example.com/tier`)";
        let value_fix = "write at most 63 letters, digits, `-`, `_` and `.` beginning and ending with a letter or \
                         digit (`front-end`), or nothing";
        let long = "a".repeat(64);
        for (selector, expected) in [
            (
                json!({"matchLabels": {"tier": "front end"}}),
                format!("selector: matchLabels.tier: value \"front end\" is not a label value; {value_fix}{never}"),
            ),
            (
                json!({"matchLabels": {"Bad Key!": "x"}}),
                format!(
                    "selector: matchLabels: key \"Bad Key!\" is not a label key: its name is not letters, digits, \
                     `-`, `_` and `.` beginning and ending with a letter or digit; {key_fix}{never}"
                ),
            ),
            (
                json!({"matchExpressions": [{"key": "a/b/c", "operator": "Exists"}]}),
                format!(
                    "selector: matchExpressions[0].key: key \"a/b/c\" is not a label key: it has more than one `/`; \
                     {key_fix}{never}"
                ),
            ),
            (
                json!({"matchExpressions": [{"key": "/tier", "operator": "Exists"}]}),
                format!(
                    "selector: matchExpressions[0].key: key \"/tier\" is not a label key: its prefix before `/` is \
                     empty; {key_fix}{never}"
                ),
            ),
            (
                json!({"matchExpressions": [{"key": "Example.com/tier", "operator": "DoesNotExist"}]}),
                format!(
                    "selector: matchExpressions[0].key: key \"Example.com/tier\" is not a label key: its prefix \
                     before `/` is not a DNS subdomain (at most 253 lower-case letters, digits, `-` and `.`, each \
                     dot-separated part beginning and ending with a letter or digit); {key_fix}{never}"
                ),
            ),
            (
                json!({"matchExpressions": [{"key": long, "operator": "Exists"}]}),
                format!(
                    "selector: matchExpressions[0].key: key \"{long}\" is not a label key: its name is longer than \
                     63 characters; {key_fix}{never}"
                ),
            ),
            (
                json!({"matchExpressions": [{"key": "", "operator": "Exists"}]}),
                format!(
                    "selector: matchExpressions[0].key: key \"\" is not a label key: its name is not letters, digits, \
                     `-`, `_` and `.` beginning and ending with a letter or digit; {key_fix}{never}"
                ),
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "-web"]}]}),
                format!(
                    "selector: matchExpressions[0].values[1]: value \"-web\" is not a label value; {value_fix}{never}"
                ),
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": []}]}),
                "selector: matchExpressions[0]: NotIn needs values".to_owned(),
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]}),
                "selector: matchExpressions[0]: Exists takes no values".to_owned(),
            ),
        ] {
            s["policies"][0]["spec"]["match"] = json!([{"resource": "pods", "selector": selector}]);
            assert_eq!(
                refused(&s),
                format!("policies[0].spec.match[0].{expected}"),
                "{selector}"
            );
            // Read lazily for `validate` (no validate_settings before): every image the policy
            // covers is denied, as policy-controller denies, never admitted unchecked.
            let r = run(&pod("default", &["myregistry.com/app:1"]), &s, &mut MockHost::failing());
            assert_eq!(r["accepted"], false, "{selector}: {r}");
            assert!(
                r["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("invalid policy settings: "),
                "{r}"
            );
        }
        // Keys and values as Kubernetes allows them.
        let prefix = format!("{}.example.com", "a".repeat(253 - 12));
        for selector in [
            json!({"matchLabels": {"tier": "front-end", "app.kubernetes.io/name": "web", "x": ""}}),
            json!({"matchLabels": {"A_b.C-9": "Z_9.z-0", "k8s.io/Team": "a"}}),
            json!({"matchLabels": {format!("{prefix}/{}", "n".repeat(63)): "v".repeat(63)}}),
            json!({"matchExpressions": [{"key": "a-b/c", "operator": "In", "values": ["", "1"]}]}),
            json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
            json!({}),
        ] {
            s["policies"][0]["spec"]["match"] = json!([{"resource": "pods", "selector": selector}]);
            assert_eq!(check_settings(&s), Ok(()), "{selector}");
        }
    }

    /// An entry leaving out some of group, version and resource matches any of them here, and
    /// compares `""` exactly in policy-controller: an exemption copied from there (`match:
    /// [{resource: pods}]`, `static: pass`) exempts more here. Accepted, with a remark, in a
    /// policy that admits images without a signature.
    #[test]
    fn a_partial_resource_in_a_policy_that_admits_unsigned_images_is_remarked() {
        let lint = |policy: Value| {
            let s = json!({"policies": [{"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                                         "metadata": {"name": "exempt"},
                                         "spec": policy}]});
            assert_eq!(check_settings(&s), Ok(()), "{policy}");
            let text = s.to_string();
            Settings::parse(&text).unwrap().lint()
        };
        let pass = json!([{"static": {"action": "pass"}}]);
        let key = json!([{"key": {"data": P256_PEM}}]);
        let spec = |matches: Value, authorities: &Value, mode: &str| json!({"images": [{"glob": "myregistry.com/**"}], "match": matches, "authorities": authorities, "mode": mode});
        let remark = |i: usize, missing: &str, why: &str| {
            format!(
                "policy exempt: spec.match[{i}] leaves out {missing}, which here matches any, while policy-controller \
                 compares group, version and resource exactly (an omitted group is the core group \"\", an omitted \
                 version matches nothing); with {why} the policy admits images without a signature in more objects \
                 than it would there: give all three (e.g. group: \"\", version: v1, resource: pods; version: \"*\" \
                 for any version)"
            )
        };
        assert_eq!(
            lint(spec(json!([{"resource": "pods"}]), &pass, "enforce")),
            [remark(0, "group and version", "a static pass authority")]
        );
        assert_eq!(
            lint(spec(
                json!([{"group": "", "version": "v1", "resource": "pods"}, {"version": "v1", "resource": "deployments"}]),
                &key,
                "warn"
            )),
            [remark(1, "group", "mode: warn")]
        );
        assert_eq!(
            lint(spec(
                json!([{"group": "apps", "selector": {"matchLabels": {"a": "b"}}}]),
                &pass,
                "enforce"
            )),
            [remark(0, "version and resource", "a static pass authority")]
        );
        // Complete entries, entries without any of the three, and policies that require a
        // signature: no remark.
        for (matches, authorities, mode) in [
            (
                json!([{"group": "", "version": "v1", "resource": "pods"}]),
                &pass,
                "enforce",
            ),
            (
                json!([{"group": "apps", "version": "*", "resource": "deployments"}]),
                &pass,
                "warn",
            ),
            (
                json!([{"namespaces": ["kube-system"]}, {"selector": {"matchLabels": {"a": "b"}}}]),
                &pass,
                "enforce",
            ),
            (json!([{"resource": "pods"}]), &key, "enforce"),
            (
                json!([{"resource": "pods"}]),
                &json!([{"static": {"action": "fail"}}]),
                "enforce",
            ),
        ] {
            assert_eq!(
                lint(spec(matches.clone(), authorities, mode)),
                Vec::<String>::new(),
                "{matches}"
            );
        }
        // Complete entries that policy-controller's kind table applies to fewer objects than
        // they name: remarked in exemptions, with what to write instead.
        let gap = |i: usize, gap: &str, why: &str| {
            format!(
                "policy exempt: spec.match[{i}]: {gap}; with {why}, the entry keeps no image of those objects from \
                 noMatchPolicy (as in policy-controller)"
            )
        };
        assert_eq!(
            lint(spec(
                json!([
                    {"group": "apps", "version": "v1", "resource": "daemonsets"},
                    {"group": "", "version": "v1", "resource": "daemonsets"},
                    {"group": "apps", "version": "*", "resource": "replicasets"},
                    {"group": "", "version": "v1", "resource": "replicationcontrollers"},
                    {"group": "batch", "version": "v1beta1", "resource": "cronjobs"},
                    {"group": "*", "version": "v1beta1", "resource": "pods"},
                ]),
                &pass,
                "enforce"
            )),
            [
                gap(
                    0,
                    "policy-controller's kind table puts DaemonSets in the core group, so it applies group: apps, \
                     resource: daemonsets to none: write group: \"\" (which here covers DaemonSets too)",
                    "a static pass authority"
                ),
                gap(
                    2,
                    "policy-controller applies no entry naming a resource to replicasets (its kind table misspells \
                     ReplicaSet and has no ReplicationController), so no exemption reaches them there; an entry \
                     without group, version and resource (namespaces or a selector) exempts every kind in its scope",
                    "a static pass authority"
                ),
                gap(
                    3,
                    "policy-controller applies no entry naming a resource to replicationcontrollers (its kind table \
                     misspells ReplicaSet and has no ReplicationController), so no exemption reaches them there; an \
                     entry without group, version and resource (namespaces or a selector) exempts every kind in its \
                     scope",
                    "a static pass authority"
                ),
                gap(
                    4,
                    "version `v1beta1` matches no object in policy-controller, whose kind table gives every kind \
                     version v1: write version: \"*\"",
                    "a static pass authority"
                ),
                // Every reason of one entry at once.
                gap(
                    5,
                    "version `v1beta1` matches no object in policy-controller, whose kind table gives every kind \
                     version v1: write version: \"*\"; policy-controller compares group and resource exactly (`*` \
                     is a wildcard for the version only), so it applies a `*` group or resource to nothing: write an \
                     entry for each resource, with its group",
                    "a static pass authority"
                ),
            ]
        );
        // An empty `version` or `resource` is given: compared as "" by policy-controller.
        assert_eq!(
            lint(spec(json!([{"version": ""}]), &pass, "enforce")),
            [remark(0, "group and version and resource", "a static pass authority")]
        );
        // The same entries in a policy that requires a signature: no remark.
        assert_eq!(
            lint(spec(
                json!([{"group": "apps", "version": "v1", "resource": "daemonsets"}]),
                &key,
                "enforce"
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn empty_github_actions_repo_is_refused_with_the_fix() {
        let mut s = signed_images();
        for (repo, expected) in [
            (
                "",
                "policies[0].spec.authorities[0].githubActions.repo: githubActions.repo is empty: name the repository whose workflows sign, or remove the field to accept every repository of my-org",
            ),
            (
                " ",
                "policies[0].spec.authorities[0].githubActions.repo: githubActions.repo is empty",
            ),
            (
                "my-org/app",
                "policies[0].spec.authorities[0].githubActions.repo: githubActions.repo is the repository name alone",
            ),
        ] {
            s["policies"][0]["spec"]["authorities"] = json!([{"githubActions": {"owner": "my-org", "repo": repo}}]);
            let err = refused(&s);
            assert!(err.starts_with(expected), "{repo:?}: {err}");
        }
        s["policies"][0]["spec"]["authorities"] = json!([{"githubActions": {"owner": "my-org", "repo": "app"}}]);
        assert_eq!(check_settings(&s), Ok(()));
    }

    #[test]
    fn fields_that_would_be_ignored_are_refused() {
        let mut s = signed_images();
        s["policies"][0]["spec"]["authorities"] = json!([{"static": {"action": "pass", "message": "why"}}]);
        assert!(
            refused(&s).starts_with(
                "policies[0].spec.authorities[0].static.message: static.message is only shown when action is fail"
            ),
            "{}",
            refused(&s)
        );
        let mut s = settings(&[article("keyless-policy")], json!({}));
        for url in ["fulcio.sigstore.dev", "http://fulcio.sigstore.dev", "https://", ""] {
            s["policies"][0]["spec"]["authorities"][0]["keyless"]["url"] = json!(url);
            let err = refused(&s);
            assert!(
                err.starts_with("policies[0].spec.authorities[0].keyless.url: "),
                "{url}: {err}"
            );
        }
        s["policies"][0]["spec"]["authorities"][0]["keyless"]["url"] = json!("https://fulcio.example.internal");
        assert_eq!(check_settings(&s), Ok(()));
    }

    #[test]
    fn every_field_of_the_article_policies_still_parses() {
        // Parsing (not key material): the article's own texts, placeholders included, reach
        // only the refusals of what is not supported yet.
        for name in [
            "allow-system-images",
            "dev-warn-policy",
            "key-rotation-policy",
            "keyless-policy",
            "production-strict-policy",
            "signed-images-policy",
        ] {
            let s = settings(&[article(name)], json!({}));
            assert!(Settings::parse(&s.to_string()).is_ok(), "{name}");
        }
    }

    #[test]
    fn no_match_policy_defaults_to_warn() {
        let mut host = MockHost::failing();
        let r = run(&pod("default", &["nginx"]), &signed_images(), &mut host);
        assert_eq!(r["accepted"], true);
        assert_eq!(r["warnings"][0], "image nginx is covered by no ClusterImagePolicy");
        assert_eq!(
            r["audit_annotations"]["unverified-images"],
            "image nginx is covered by no ClusterImagePolicy"
        );
        let mut allow = signed_images();
        allow["noMatchPolicy"] = json!("allow");
        let r = run(&pod("default", &["nginx"]), &allow, &mut host);
        assert!(r["warnings"].is_null());
        assert!(host.calls.is_empty());
    }
}

/// `pods/ephemeralcontainers` (what `kubectl debug` sends): the API server keeps only the body's
/// `spec.ephemeralContainers` and stores them in the stored Pod (`oldObject`), its metadata and
/// the rest of its spec unchanged (`dropNonEphemeralContainerUpdates`). The decision is made on
/// that Pod: labels, namespace and name from `oldObject`, and for `spec.policy` the old object
/// with the body's ephemeral containers. Found by a security review: the labels were read from
/// the body, which the API server throws away.
mod ephemeral_containers {
    use super::*;

    /// Pods labelled `env: prod` must not run myregistry.com images (enforce, `static: fail`);
    /// every other Pod may (`static: pass`); images no policy covers are denied.
    fn prod_refuses_others_pass() -> Value {
        let cip = |name: &str, selector: Value, action: &str| {
            json!({
                "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
                "metadata": {"name": name},
                "spec": {"images": [{"glob": "myregistry.com/**"}],
                         "match": [{"group": "", "version": "v1", "resource": "pods", "selector": selector}],
                         "authorities": [{"static": {"action": action}}]}
            })
        };
        json!({"noMatchPolicy": "deny", "policies": [
            cip("prod", json!({"matchLabels": {"env": "prod"}}), "fail"),
            cip("not-prod", json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}), "pass"),
        ]})
    }

    /// A Pod labelled `labels` running `UNSIGNED`, with `debug` as its ephemeral containers.
    fn debugged(labels: Value, debug: &[&str]) -> Value {
        let mut object = pod_object(&[UNSIGNED]);
        object["metadata"]["labels"] = labels;
        if !debug.is_empty() {
            object["spec"]["ephemeralContainers"] = debug
                .iter()
                .enumerate()
                .map(|(i, image)| json!({"name": format!("debug{i}"), "image": image}))
                .collect();
        }
        object
    }

    fn attach(body: Value, old: Value) -> Value {
        let mut req = request("UPDATE", "Pod", "", "pods", body, old);
        req["subResource"] = json!("ephemeralcontainers");
        req
    }

    #[test]
    fn labels_are_the_stored_pods_not_the_bodys() {
        let stored = debugged(json!({"env": "prod"}), &[]);
        // The body's labels, whatever they are, are thrown away by the API server: the debug
        // container runs in the `env: prod` Pod, and is refused as there.
        for labels in [json!({"env": "prod"}), json!({"env": "dev"}), json!(null), json!({})] {
            let body = debugged(labels.clone(), &["myregistry.com/debug:1"]);
            let r = run(
                &attach(body, stored.clone()),
                &prod_refuses_others_pass(),
                &mut MockHost::failing(),
            );
            assert_eq!(r["accepted"], false, "body labels {labels}: {r}");
            assert!(
                r["message"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Pod default/test: image myregistry.com/debug:1 denied by policy prod"),
                "{labels}: {r}"
            );
        }
        // And the other way: a dev Pod is debugged whatever labels the body claims.
        let stored = debugged(json!({"env": "dev"}), &[]);
        for labels in [json!({"env": "prod"}), json!({"env": "dev"}), json!(null)] {
            let body = debugged(labels.clone(), &["myregistry.com/debug:1"]);
            let r = run(
                &attach(body, stored.clone()),
                &prod_refuses_others_pass(),
                &mut MockHost::failing(),
            );
            assert_eq!(r["accepted"], true, "body labels {labels}: {r}");
        }
    }

    /// Body metadata written to confuse a reader (duplicate keys, escaped keys, metadata of the
    /// wrong type, a second `metadata`) changes nothing: only the stored Pod's labels count,
    /// read as a `Value` reads them (the last of duplicate keys wins).
    #[test]
    fn crafted_body_metadata_changes_nothing() {
        let body_metadata = [
            r#""metadata":{"name":"test","labels":{"env":"prod","env":"dev"}}"#,
            r#""metadata":{"name":"test","labels":{"e\u006ev":"dev"}}"#,
            r#""metadata":{"name":"test","labels":"env=dev"}"#,
            r#""metadata":null"#,
            r#""metadata":{"labels":{"env":"prod"}},"metad\u0061ta":{"labels":{"env":"dev"}}"#,
        ];
        for (stored_labels, accepted) in [
            (r#"{"env":"prod"}"#, false),
            (r#"{"env":"dev","env":"prod"}"#, false),
            (r#"{"env":"prod","env":"dev"}"#, true),
            (r#"{"e\u006ev":"prod"}"#, false),
            (r#"{"env":"dev"}"#, true),
        ] {
            for metadata in body_metadata {
                let body = format!(
                    r#"{{"apiVersion":"v1","kind":"Pod",{metadata},"spec":{{"containers":[{{"name":"c0","image":"{UNSIGNED}"}}],"ephemeralContainers":[{{"name":"d","image":"myregistry.com/debug:1"}}]}}}}"#
                );
                let old = format!(
                    r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"test","labels":{stored_labels}}},"spec":{{"containers":[{{"name":"c0","image":"{UNSIGNED}"}}]}}}}"#
                );
                let payload = format!(
                    r#"{{"request":{{"uid":"1","kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},"subResource":"ephemeralcontainers","namespace":"default","operation":"UPDATE","object":{body},"oldObject":{old}}},"settings":{}}}"#,
                    prod_refuses_others_pass()
                );
                let r = validate(
                    payload.as_bytes(),
                    &mut SettingsCache::default(),
                    &mut MockHost::failing(),
                );
                assert_eq!(
                    r.accepted, accepted,
                    "stored {stored_labels}, body {metadata}: {:?}",
                    r.message
                );
            }
        }
    }

    #[test]
    fn the_namespace_and_name_are_the_stored_pods() {
        // A request without namespace (a review tool): the namespace comes from the stored Pod.
        let mut s = signed_images();
        s["policies"][0]["spec"]["match"] = json!([{"namespaces": ["production"]}]);
        let mut stored = debugged(json!({}), &[]);
        stored["metadata"]["namespace"] = json!("production");
        stored["metadata"]["name"] = json!("stored");
        let mut body = debugged(json!({}), &[UNSIGNED]);
        body["metadata"]["namespace"] = json!("default");
        body["metadata"]["name"] = json!("claimed");
        let mut req = attach(body, stored);
        req["namespace"] = json!("");
        let r = run(&req, &s, &mut host_trusting_key(P256_SECOND_PEM));
        assert_eq!(r["accepted"], false, "{r}");
        assert!(
            r["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Pod production/stored: "),
            "{r}"
        );
    }

    /// `spec.policy` reads the Pod as it will be stored: the old object's metadata and spec, with
    /// the body's ephemeral containers.
    #[test]
    fn spec_policy_reads_the_stored_pod_with_the_new_ephemeral_containers() {
        let mut s = signed_images();
        s["policies"][0]["spec"]["authorities"] = json!([{"static": {"action": "pass"}}]);
        s["policies"][0]["spec"]["policy"] = json!({
            "type": "cue", "includeSpec": true, "includeObjectMeta": true, "includeTypeMeta": true,
            "data": "metadata: labels: env: \"dev\"\nspec: serviceAccountName: \"debugger\"\nspec: ephemeralContainers: [{name: \"debug0\", image: \"myregistry.com/debug:1\"}]\n"
        });
        let pod = |env: &str, account: &str, debug: &[&str]| {
            let mut object = debugged(json!({"env": env}), debug);
            object["spec"]["serviceAccountName"] = json!(account);
            object
        };
        let decide = |body: Value, old: Value| run(&attach(body, old), &s, &mut MockHost::failing());
        // The stored Pod satisfies the policy with the new debug container: admitted, whatever
        // the body says of the rest.
        let r = decide(
            pod("prod", "other", &["myregistry.com/debug:1"]),
            pod("dev", "debugger", &[]),
        );
        assert_eq!(r["accepted"], true, "{r}");
        // The stored Pod does not (its labels, its service account): refused, whatever the body
        // claims.
        for old in [pod("prod", "debugger", &[]), pod("dev", "other", &[])] {
            let r = decide(pod("dev", "debugger", &["myregistry.com/debug:1"]), old.clone());
            assert_eq!(r["accepted"], false, "{old}: {r}");
        }
        // The ephemeral containers read are the body's.
        let r = decide(
            pod("dev", "debugger", &["myregistry.com/debug:2"]),
            pod("dev", "debugger", &[]),
        );
        assert_eq!(r["accepted"], false, "{r}");
        assert!(
            r["message"]
                .as_str()
                .unwrap_or_default()
                .contains("spec.ephemeralContainers"),
            "{r}"
        );
    }

    #[test]
    fn without_the_stored_pod_the_request_is_refused() {
        // The API server always sends oldObject with an UPDATE; without it the labels the
        // decision depends on are unknown, so nothing is admitted.
        for old in [json!(null), json!("pod"), json!([])] {
            let body = debugged(json!({"env": "dev"}), &["myregistry.com/debug:1"]);
            let mut req = attach(body, old.clone());
            if old.is_null() {
                req.as_object_mut().unwrap().remove("oldObject");
            }
            let mut host = MockHost::failing();
            let r = run(&req, &prod_refuses_others_pass(), &mut host);
            assert_eq!(r["accepted"], false, "{old}: {r}");
            assert_eq!(
                r["message"],
                "Pod default/test: an update of the ephemeralcontainers subresource without the stored Pod \
                 (oldObject is missing or not an object): the API server keeps the stored Pod's labels \
                 and spec, so the policies that apply cannot be told; refused",
                "{old}"
            );
            assert!(host.calls.is_empty());
        }
        // Kubernetes before 1.23 sent an `EphemeralContainers` object there, which holds no pod
        // spec this module reads: refused, not admitted as a kind without images.
        let mut req = attach(
            json!({"kind": "EphemeralContainers", "metadata": {"name": "test"},
                   "ephemeralContainers": [{"name": "d", "image": UNSIGNED}]}),
            debugged(json!({}), &[]),
        );
        req["kind"]["kind"] = json!("EphemeralContainers");
        let r = run(&req, &prod_refuses_others_pass(), &mut MockHost::failing());
        assert_eq!(r["accepted"], false, "{r}");
        assert!(
            r["message"].as_str().unwrap_or_default().starts_with(
                "an object of kind EphemeralContainers on the ephemeralcontainers subresource: only a Pod is read there"
            ),
            "{r}"
        );
    }
}

/// `modifyImagesWithDigest: false`, the validating twin of a pinning policy (docs/deploy.md,
/// "Two webhooks"): it sees the images a later mutating webhook added, by tag, which the pinning
/// policy never saw. An image it would have pinned (verified by an `enforce` policy, written
/// without a digest) is refused with the digest to write: unpinned, the tag can move between
/// admission and the pull. policy-controller's validating webhook refuses every reference that
/// is not a digest (`refOrFieldError`).
mod validating_twin {
    use super::*;

    fn twin(mut s: Value) -> Value {
        s["modifyImagesWithDigest"] = json!(false);
        s
    }

    fn key_policy(name: &str, mode: &str, key: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"images": [{"glob": "myregistry.com/**"}], "mode": mode,
               "authorities": [{"key": {"data": key}}]}})
    }

    fn exemption(name: &str, mode: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"images": [{"glob": "myregistry.com/**"}], "mode": mode,
               "authorities": [{"static": {"action": "pass"}}]}})
    }

    fn with(policies: &[Value]) -> Value {
        json!({"policies": policies, "noMatchPolicy": "allow", "modifyImagesWithDigest": false})
    }

    #[test]
    fn an_image_verified_by_tag_is_refused_with_the_digest_to_write() {
        let image = "myregistry.com/app:v1";
        let mut host = host_trusting_key(P256_PEM);
        let r = run(&pod("default", &[image]), &twin(signed_images()), &mut host);
        assert_eq!(r["accepted"], false, "{r}");
        assert_eq!(
            r["message"],
            format!(
                "Pod default/test: image {image} was verified by tag (policy signed-images-policy verified {DIGEST}), \
                 but this policy does not pin (modifyImagesWithDigest: false) and the tag can move before the pull: \
                 reference it by digest ({image}@{DIGEST}), or let the mutating policy (modifyImagesWithDigest: true) \
                 pin it"
            )
        );
        assert!(r["mutated_object"].is_null(), "{r}");
        // The same image in two containers: one reason.
        let r = run(&pod("default", &[image, image]), &twin(signed_images()), &mut host);
        assert_eq!(
            r["message"].as_str().unwrap().matches("was verified by tag").count(),
            1,
            "{r}"
        );
        // The pinning policy admits it, pinned.
        let r = run(&pod("default", &[image]), &signed_images(), &mut host);
        assert_eq!(r["accepted"], true, "{r}");
        assert_eq!(
            r["mutated_object"]["spec"]["containers"][0]["image"],
            format!("{image}@{DIGEST}")
        );
    }

    #[test]
    fn what_the_pinning_twin_writes_passes() {
        for image in [
            format!("myregistry.com/app:v1@{DIGEST}"),
            format!("myregistry.com/app@{DIGEST}"),
        ] {
            let r = run(
                &pod("default", &[&image]),
                &twin(signed_images()),
                &mut host_trusting_key(P256_PEM),
            );
            assert_eq!(r["accepted"], true, "{image}: {r}");
            assert!(r["mutated_object"].is_null() && r["warnings"].is_null(), "{image}: {r}");
        }
    }

    /// Nothing changes where nothing would have been pinned for an `enforce` policy: no policy,
    /// exemptions (`static: pass`), `warn` policies only (passing or failing), an `enforce`
    /// exemption beside a `warn` policy that verified the image.
    #[test]
    fn images_no_enforce_policy_verified_pass_as_before() {
        let image = "myregistry.com/app:v1";
        let cases = [
            ("no policy", with(&[])),
            ("exemption", with(&[exemption("exempt", "enforce")])),
            ("warn exemption", with(&[exemption("exempt", "warn")])),
            ("warn, verified", with(&[key_policy("w", "warn", P256_PEM)])),
            ("warn, not verified", with(&[key_policy("w", "warn", P256_SECOND_PEM)])),
            (
                "enforce exemption, warn verified",
                with(&[exemption("exempt", "enforce"), key_policy("w", "warn", P256_PEM)]),
            ),
        ];
        for (note, s) in cases {
            let r = run(&pod("default", &[image]), &s, &mut host_trusting_key(P256_PEM));
            assert_eq!(r["accepted"], true, "{note}: {r}");
            assert!(r["mutated_object"].is_null(), "{note}: {r}");
        }
        // An `enforce` policy that verified it beside a `warn` one that did not: refused.
        let s = with(&[
            key_policy("e", "enforce", P256_PEM),
            key_policy("w", "warn", P256_SECOND_PEM),
        ]);
        let r = run(&pod("default", &[image]), &s, &mut host_trusting_key(P256_PEM));
        assert_eq!(r["accepted"], false, "{r}");
        assert!(r["message"].as_str().unwrap().contains("policy e verified"), "{r}");
        // A refusal for another reason is reported as before.
        let r = run(
            &pod("default", &[image]),
            &twin(signed_images()),
            &mut host_trusting_key(P256_SECOND_PEM),
        );
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("denied by policy signed-images-policy"),
            "{r}"
        );
    }

    /// An UPDATE decides only the images it writes: an image left in place was decided when it
    /// was written (no host call), and one decided again because a workload's labels changed is
    /// not rewritten by the pinning twin either, so neither is refused for its tag (a relabelled
    /// Pod's is, for another reason: `relabelled_pods`). A new image by tag is.
    #[test]
    fn an_update_refuses_only_the_images_it_writes_by_tag() {
        let kept = "myregistry.com/app:1";
        let mut host = MockHost::failing();
        let r = run(
            &request(
                "UPDATE",
                "Deployment",
                "apps",
                "deployments",
                deployment(&[kept], 1),
                deployment(&[kept], 3),
            ),
            &twin(signed_images()),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        assert!(host.calls.is_empty(), "{:?}", host.calls);

        let new = pod_object(&[kept, "myregistry.com/sidecar:2"]);
        let r = run(
            &request("UPDATE", "Pod", "", "pods", new, pod_object(&[kept])),
            &twin(signed_images()),
            &mut host_trusting_key(P256_PEM),
        );
        assert_eq!(r["accepted"], false, "{r}");
        let message = r["message"].as_str().unwrap();
        assert!(
            message.contains("image myregistry.com/sidecar:2 was verified by tag"),
            "{r}"
        );
        assert!(!message.contains(kept), "{r}");

        let mut prod = key_policy("prod", "enforce", P256_PEM);
        prod["spec"]["match"] = json!([{"selector": {"matchLabels": {"env": "prod"}}}]);
        let labelled = |env: &str| {
            let mut d = deployment(&[kept], 1);
            d["metadata"]["labels"] = json!({"env": env});
            d
        };
        let mut host = host_trusting_key(P256_PEM);
        let r = run(
            &request(
                "UPDATE",
                "Deployment",
                "apps",
                "deployments",
                labelled("prod"),
                labelled("dev"),
            ),
            &with(&[prod]),
            &mut host,
        );
        assert_eq!(host.calls.len(), 1, "decided again: {:?}", host.calls);
        assert_eq!(r["accepted"], true, "{r}");
        assert!(r["mutated_object"].is_null(), "{r}");
    }
}

/// A Pod relabelled into a policy's selector keeps running what the kubelet pulled when it
/// started. Found by a review: with push access to a covered repository and no signing key, an
/// unsigned image pushed as `app:x` ran in a Pod labelled `env: dev` (outside the prod-only
/// policy, admitted unpinned); a signed manifest re-tagged as `app:x`, the Pod relabelled
/// `env: prod` was admitted (the tag verified), and the unsigned code then ran with the prod
/// label (prod Services' traffic, label-based NetworkPolicies). The update does not rewrite the
/// image: an image decided again at its place, written by tag, that a newly applying `enforce`
/// policy verified, is refused; with only `warn` policies newly applying, warned about.
mod relabelled_pods {
    use super::*;

    const IMAGE: &str = "myregistry.com/team/app:x";

    /// A policy of `mode` scoped to `env: prod`, verifying with `key`.
    fn prod(mode: &str, authority: Value) -> Value {
        json!({"metadata": {"name": "prod"}, "spec": {"images": [{"glob": "myregistry.com/**"}], "mode": mode,
               "match": [{"selector": {"matchLabels": {"env": "prod"}}}], "authorities": [authority]}})
    }

    fn key() -> Value {
        json!({"key": {"data": P256_PEM}})
    }

    fn with(policies: &[Value]) -> Value {
        json!({"policies": policies})
    }

    fn labelled(image: &str, labels: Value) -> Value {
        let mut p = pod_object(&[image]);
        p["metadata"]["labels"] = labels;
        p
    }

    fn relabel(image: &str, new: Value, old: Value) -> Value {
        request("UPDATE", "Pod", "", "pods", labelled(image, new), labelled(image, old))
    }

    #[test]
    fn an_image_by_tag_a_newly_applying_enforce_policy_verified_is_refused() {
        let mut host = host_trusting_key(P256_PEM);
        let r = run(
            &relabel(IMAGE, json!({"env": "prod"}), json!({"env": "dev"})),
            &with(&[prod("enforce", key())]),
            &mut host,
        );
        assert_eq!(host.calls.len(), 1, "{:?}", host.calls);
        assert_eq!(r["accepted"], false, "{r}");
        assert_eq!(
            r["message"],
            format!(
                "Pod default/test: image {IMAGE} would now be checked by policy prod, but it is written by tag and \
                 this update does not change it: the Pod may be running another image than the one verified now (the \
                 tag can move after the pull); recreate the Pod (it is then verified and pinned), or write the image by \
                 digest ({IMAGE}@{DIGEST})"
            )
        );
        assert!(r["mutated_object"].is_null(), "{r}");
        // Created with those labels, the Pod is verified and pinned.
        let mut create = pod("default", &[IMAGE]);
        create["object"]["metadata"]["labels"] = json!({"env": "prod"});
        let r = run(&create, &with(&[prod("enforce", key())]), &mut host);
        assert_eq!(r["accepted"], true, "{r}");
        assert_eq!(
            r["mutated_object"]["spec"]["containers"][0]["image"],
            format!("{IMAGE}@{DIGEST}")
        );
        written_by_digest_or_relabelled_where_no_selector_looks_is_decided_as_before();
    }

    fn written_by_digest_or_relabelled_where_no_selector_looks_is_decided_as_before() {
        let s = with(&[prod("enforce", key())]);
        // Pinned (`tag@digest`) or by digest alone: what runs is what is verified.
        for image in [format!("{IMAGE}@{DIGEST}"), format!("myregistry.com/team/app@{DIGEST}")] {
            let mut host = host_trusting_key(P256_PEM);
            let r = run(
                &relabel(&image, json!({"env": "prod"}), json!({"env": "dev"})),
                &s,
                &mut host,
            );
            assert_eq!(host.calls.len(), 1, "{image}: {:?}", host.calls);
            assert_eq!(r["accepted"], true, "{image}: {r}");
            assert!(r["mutated_object"].is_null() && r["warnings"].is_null(), "{image}: {r}");
        }
        // Labels no selector reads: no host call. Out of the selector: decided, no policy covers it.
        for (new, old) in [
            (json!({"env": "dev", "team": "a"}), json!({"env": "dev"})),
            (json!({"env": "prod", "team": "a"}), json!({"env": "prod"})),
        ] {
            let mut host = MockHost::failing();
            let r = run(&relabel(IMAGE, new.clone(), old), &s, &mut host);
            assert_eq!(r["accepted"], true, "{new}: {r}");
            assert!(host.calls.is_empty(), "{new}: {:?}", host.calls);
        }
        let r = run(
            &relabel(IMAGE, json!({"env": "dev"}), json!({"env": "prod"})),
            &s,
            &mut MockHost::failing(),
        );
        assert_eq!(r["accepted"], true, "{r}");
        // Not signed by the key: refused for that, as before.
        let r = run(
            &relabel(IMAGE, json!({"env": "prod"}), json!({"env": "dev"})),
            &s,
            &mut host_trusting_key(P256_SECOND_PEM),
        );
        assert_eq!(r["accepted"], false, "{r}");
        assert!(r["message"].as_str().unwrap().contains("denied by policy prod"), "{r}");
        // A newly applying exemption (`static: pass`) verifies nothing: admitted.
        let exempt = with(&[prod("enforce", json!({"static": {"action": "pass"}}))]);
        let r = run(
            &relabel(IMAGE, json!({"env": "prod"}), json!({"env": "dev"})),
            &exempt,
            &mut MockHost::failing(),
        );
        assert_eq!(r["accepted"], true, "{r}");
    }

    #[test]
    fn only_warn_policies_newly_applying_warn() {
        let mut host = host_trusting_key(P256_PEM);
        let r = run(
            &relabel(IMAGE, json!({"env": "prod"}), json!({"env": "dev"})),
            &with(&[prod("warn", key())]),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        assert!(r["mutated_object"].is_null(), "{r}");
        assert_eq!(
            r["warnings"],
            json!([format!(
                "image {IMAGE} is now checked by policy prod (warn mode), which verified {DIGEST}; the Pod may run \
                 another image (pulled by tag): recreate it or write the image by digest"
            )])
        );
        // An enforce policy that applied before and still does was decided when the image was
        // written; the newly applying warn policy warns.
        let mut everywhere = prod("enforce", key());
        everywhere["metadata"]["name"] = json!("everywhere");
        everywhere["spec"]["match"] = json!([{"selector": {"matchLabels": {"app": "web"}}}]);
        let r = run(
            &relabel(
                IMAGE,
                json!({"env": "prod", "app": "web"}),
                json!({"env": "dev", "app": "web"}),
            ),
            &with(&[everywhere, prod("warn", key())]),
            &mut host,
        );
        assert_eq!(r["accepted"], true, "{r}");
        let warnings = r["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{r}");
        assert!(
            warnings[0]
                .as_str()
                .unwrap()
                .contains("checked by policy prod (warn mode), which verified"),
            "{r}"
        );
    }
}
