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
        let mut warn = with_keys(&article("signed-images-policy"), &[P384_PEM]);
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
            &mut host_trusting_key(P384_PEM),
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
        let mut host = host_trusting_key(P384_PEM);
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
        let mut host = host_trusting_key(P384_PEM);
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
            let r = run(&req, &s, &mut host_trusting_key(P384_PEM));
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
            &mut host_trusting_key(P384_PEM),
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
        let mut host = host_trusting_key(P384_PEM);
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
