#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz corpus (fuzz/corpus/<target>/seed-*). libFuzzer adds the
inputs it finds to a scratch corpus; `make fuzz-merge` folds the interesting ones back."""
import hashlib, json, os, pathlib

root = pathlib.Path(__file__).resolve().parent
testdata = root.parent / "src" / "testdata"
p256 = (testdata / "p256.pub").read_text()
cert = (testdata / "cert.pem").read_text()
D = "sha256:" + "1" * 64

def write(target, items):
    out = root / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    for item in items:
        data = item.encode() if isinstance(item, str) else item
        (out / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)

def policy(name, globs, authority, **spec):
    return {"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
            "metadata": {"name": name},
            "spec": {"images": [{"glob": g} for g in globs], "authorities": authority, **spec}}

settings = [
    {"policies": [policy("signed", ["myregistry.com/**"], [{"key": {"data": p256}}])]},
    {"policies": [policy("keyless", ["ghcr.io/org/*:v*"], [{"keyless": {"url": "https://fulcio.sigstore.dev",
        "identities": [{"issuer": "https://accounts.google.com", "subjectRegExp": ".*@example\\.com"}]}}])],
     "noMatchPolicy": "deny"},
    {"policies": [policy("system", ["k8s.gcr.io/**", "docker.io/library/**"], [], mode="warn",
        match=[{"namespaces": ["kube-system", "team-*"]}])], "noMatchPolicy": "warn"},
    {"policies": [policy("static", ["*/*", "*"], [{"static": {"action": "fail", "message": "no"}}],
        match=[{"resource": "pods", "version": "v1", "selector": {"matchLabels": {"tier": "prod"},
            "matchExpressions": [{"key": "exempt", "operator": "DoesNotExist"}]}}])],
     "modifyImagesWithDigest": False},
    {"policies": [policy("cert", ["myregistry.com:443/app"], [{"name": "c", "certificate": {"data": cert, "chain": cert}},
        {"githubActions": {"owner": "org", "repo": "app"}, "annotations": {"env": "prod"}}])]},
    # Key authorities as the article's key rotation writes them: the shape the authorities walk
    # reads (src/settings/skeleton.rs).
    {"policies": [policy("rotation", ["r.io/**"], [{"name": "previous-key", "key": {"data": p256}},
        {"name": "current-key", "key": {"data": p256, "hashAlgorithm": "sha256"}, "signatureFormat": "legacy"},
        {"key": {"kms": "awskms:///alias/cosign"}}], mode="enforce")]},
]
rotation = settings[-1]["policies"][0]["spec"]["authorities"]
write("settings", [json.dumps(s) for s in settings] + ["{}", "{\"policies\":[]}", "[]", json.dumps(rotation)])

write("reference", ["nginx", "nginx:1.25", "docker.io/library/nginx", "index.docker.io/nginx:latest",
    "bitnami/redis:7", "myregistry.com/app:v1", "MyRegistry.COM:443/a/b:v1", "localhost/app",
    "127.0.0.1:5000/a/b@" + D, "[::1]:5000/app:v1@" + D, "ghcr.io/o/app:v1@" + D, "a/b__c-d.e", "UPPER/app"])

write("glob", ["myregistry.com/**/prod-*\nmyregistry.com/prod-eu/prod-api:1", "**\nnginx", "*/*\nbitnami/redis:7",
    "myorg-*/**\nmyorg-team/app", "myregistry.com/app:v*\nmyregistry.com/app@" + D,
    "MyRegistry.com:443/**\nmyregistry.com/app", "*.example.com/**\nreg.example.com:443/a",
    "r.io/a*b*c/**/d\nr.io/abc/x/y/d:1", "docker.io/library/*\nnginx"])

def pod(images, namespace="default", operation="CREATE"):
    return {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": namespace,
            "operation": operation, "object": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": namespace, "labels": {"tier": "prod"}},
            "spec": {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)],
                     "initContainers": [{"name": "init", "image": "busybox"}]}}}

def deployment(images):
    return {"uid": "2", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"}, "namespace": "prod",
            "operation": "UPDATE", "object": {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers":
                [{"name": "c", "image": im} for im in images]}}}}}

validate = [
    {"request": pod(["myregistry.com/app:v1", "nginx"]), "settings": settings[0]},
    {"request": pod(["ghcr.io/org/x:v2", "ghcr.io/org/x@" + D]), "settings": settings[1]},
    {"request": pod(["k8s.gcr.io/pause:3.9"], "kube-system"), "settings": settings[2]},
    {"request": deployment(["bitnami/redis:7", "redis"]), "settings": settings[3]},
    {"request": pod(["myregistry.com/app:v1@" + D]), "settings": settings[4]},
    {"images": [{"image": "myregistry.com/app:v1", "namespace": "default"}], "settings": settings[0]},
]
# The article's key rotation on three images: the fuzz host lists none of our operations, the
# bundle call, or the one call for both storages too, by the input's length modulo 3 (the spaces
# after the JSON), so that each way of reading the storages is in the corpus.
rotated = {"request": pod(["r.io/a/app:v1", "r.io/b/app:v2", "r.io/c/app@" + D]), "settings": settings[-1]}
validate += [json.dumps(rotated) + " " * k for k in range(3)]
write("regexp", ["^v\\d+$\nv\u0663", "(?i)\\w+\nK\u212a", "[^\\D\\s]\\b\n\u00e9a1", "\\pC|\\PL\n\u0378",
    "\\p{Greek}+\n\u0345", ".*@example\\.com\nuser@example.com", "[a&&b]\n&", "(?x)a # c\na",
    "https://github\\.com/[^/]+/\\.github/workflows/.*@refs/tags/v\\d+\\.\\d+\nhttps://github.com/o/.github/workflows/r@refs/tags/v1.2"])
write("validate", [v if isinstance(v, str) else json.dumps(v) for v in validate])

# Settings features added since the seeds above were written: `spec.policy` in Rego and CUE with
# `fetchConfigFile` and the `include*` options (docs/policies.md), attestations
# (docs/policies.md#attestations), `key.hashAlgorithm` (docs/verification.md#keyhashalgorithm)
# and `signatureFormat`, the exemption narrowing of `match` (docs/matching.md), KMS URIs
# (docs/kms.md) and a keyless `subjectRegExp` with a class mixing `\w`, `-` and `.`. Refused
# values are each in a settings document of their own, so that the others are read past them.
p384 = (testdata / "p384.pub").read_text()
rsa = (testdata / "rsa2048.pub").read_text()
subject_re = "^[\\w-.]+@example\\.com$"
keyless_re = {"keyless": {"url": "https://fulcio.sigstore.dev",
    "identities": [{"issuer": "https://accounts.google.com", "subjectRegExp": subject_re},
                   {"issuerRegExp": "^https://token\\.actions\\.githubusercontent\\.com$", "subjectRegExp": subject_re}]}}
rego = """package sigstore
import future.keywords.if

default isCompliant = false

isCompliant if {
  input.authorizations["security-team"]
  input.typemeta.kind != "Job"
  count(input.spec.containers) > 0
  input.metadata.namespace != "kube-system"
}
"""
rego_set = """package sigstore
import future.keywords.if

isCompliant[response] {
  ok := input.authorizations["security-team"]
  response := {"result": ok, "error": "", "warning": ""}
}
"""
cue_policy = """package main
import "time"
authorizations: {
  "security-team": true
}
typemeta: kind: "Pod" | "DaemonSet" | "ReplicaSet" | "CronJob"
"""
cue_config = """package main
config: {"linux/amd64": {os: "linux", architecture: "amd64"}}
"""
named_key = {"name": "security-team", "key": {"data": p256}}
spec_policies = [
    {"type": "rego", "data": rego, "fetchConfigFile": True, "includeSpec": True,
     "includeObjectMeta": True, "includeTypeMeta": True},
    {"type": "rego", "data": rego_set},
    {"type": "cue", "data": cue_policy, "includeTypeMeta": True},
    {"type": "cue", "data": cue_config, "fetchConfigFile": True},
    {"type": "cue", "data": cue_policy, "includeSpec": True, "includeObjectMeta": True, "includeTypeMeta": False},
    # Refused: a policy module reads no URL; an unknown type; no data.
    {"type": "cue", "url": "https://example.com/p.cue"},
    {"type": "opa", "data": rego},
    {"type": "rego"},
]
new_settings = [{"policies": [policy(f"cip-level-{i}", ["myregistry.com/**"], [named_key, keyless_re], policy=p)],
                 "noMatchPolicy": "deny"} for i, p in enumerate(spec_policies)]
attestations = [
    {"name": "sbom", "predicateType": "spdx",
     "policy": {"type": "cue", "data": "predicate: {\n  SPDXID: \"SPDXRef-DOCUMENT\"\n}\n"}},
    {"name": "provenance", "predicateType": "slsaprovenance",
     "policy": {"type": "rego", "data": "package sigstore\nimport future.keywords.if\n"
        "isCompliant if {\n  input.predicate.builder.id == \"https://github.com/actions/runner\"\n}\n"}},
    {"name": "scan", "predicateType": "https://example.com/scan/v1"},
]
new_settings += [
    {"policies": [policy("attested", ["myregistry.com/**"], [
        {"name": "security-team", "key": {"data": p256, "hashAlgorithm": "sha256"}, "attestations": attestations},
        {"name": "release-team", **keyless_re, "attestations": attestations[:1], "signatureFormat": "bundle"}],
        policy={"type": "cue", "data": "authorizations: {\"security-team\": true}\n"})]},
    # Refused: duplicate names, a predicate type that is neither short nor a URI, `include*` in
    # an attestation's policy, `static` with attestations.
    {"policies": [policy("attested-bad", ["r.io/**"], [{"key": {"data": p256}, "attestations": [
        attestations[0], attestations[0]]}])]},
    {"policies": [policy("attested-bad", ["r.io/**"], [{"key": {"data": p256}, "attestations": [
        {"name": "x", "predicateType": "not a uri"}]}])]},
    {"policies": [policy("attested-bad", ["r.io/**"], [{"key": {"data": p256}, "attestations": [
        {"name": "x", "predicateType": "vuln", "policy": {"type": "cue", "data": "predicate: {}\n", "includeSpec": True}}]}])]},
    {"policies": [policy("attested-bad", ["r.io/**"], [{"static": {"action": "pass"}, "attestations": attestations[:1]}])]},
]
# key.hashAlgorithm and signatureFormat: each refused value in a document of its own.
hashes = [("sha384", p384), ("sha512", p256), (" SHA256 ", p256), ("Sha224", p256), ("sha224", rsa),
          ("md5", p256), ("", p256), ("sha3-256", p384)]
new_settings += [{"policies": [policy(f"hash-{i}", ["myregistry.com/**"], [
    {"name": "security-team", "key": {"data": data, "hashAlgorithm": h}, "signatureFormat": fmt}])]}
    for i, ((h, data), fmt) in enumerate(zip(hashes, ["legacy", "bundle", "legacy", "bundle", "legacy", "legacy", "bundle", "legacy"]))]
new_settings += [{"policies": [policy("format", ["myregistry.com/**"], [{"key": {"data": p256}, "signatureFormat": fmt}])]}
                 for fmt in ["Legacy", "both", "", "bundle "]]
# match entries of exemptions (docs/matching.md): each alone and all together, in a `static:
# pass` policy and a `mode: warn` one, beside a policy that requires signatures.
entries = [{"group": "apps", "version": "v1", "resource": "daemonsets"},
           {"group": "", "version": "v1", "resource": "daemonsets"},
           {"version": ""},
           {"resource": "replicasets", "group": "apps", "version": "*"},
           {"group": "*", "version": "v1", "resource": "pods"},
           {"group": "", "version": "v1", "resource": "pods"},
           {"group": "batch", "version": "v1beta1", "resource": "cronjobs"}]
def exemptions(match):
    return {"policies": [
        policy("signed", ["myregistry.com/**"], [named_key]),
        policy("exempt", ["docker.io/library/**", "k8s.gcr.io/**"],
               [{"static": {"action": "pass"}}], match=match),
        policy("lenient", ["ghcr.io/**"], [named_key], mode="warn", match=match)],
        "noMatchPolicy": "deny"}
exemption_settings = [exemptions(entries)] + [exemptions([e]) for e in entries]
new_settings += exemption_settings
new_settings += [exemptions([{"selector": {}}]), exemptions([entries[0], {"selector": {}}]),
                 exemptions([{"selector": {"matchLabels": {}, "matchExpressions": []}}])]
# KMS URIs: a domain-scoped GCP project (accepted), an Azure version in upper case and a URI with
# a trailing newline (refused), each alone; then the accepted ones together.
kms = ["gcpkms://projects/example.com:proj/locations/global/keyRings/r/cryptoKeys/k",
       "gcpkms://projects/example.com:proj/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
       "azurekms://myvault.vault.azure.net/cosign/0123456789ABCDEF0123456789abcdef",
       "azurekms://myvault.vault.azure.net/cosign/0123456789abcdef0123456789abcdef",
       "awskms:///alias/cosign\n",
       "gcpkms://projects/example.com:proj/locations/global/keyRings/r/cryptoKeys/k\n",
       "hashivault://cosign"]
new_settings += [{"policies": [policy("kms", ["myregistry.com/**"], [{"name": "security-team", "key": {"kms": uri}}])]}
                 for uri in kms]
new_settings.append({"policies": [policy("kms", ["myregistry.com/**"], [
    {"key": {"kms": kms[0], "hashAlgorithm": "sha384"}}, {"key": {"kms": kms[3]}, "signatureFormat": "legacy"},
    {"key": {"kms": kms[6]}}, keyless_re])]})
write("settings", [json.dumps(s) for s in new_settings])

def workload(kind, images, group="apps", version="v1", namespace="prod", operation="CREATE"):
    template = {"metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}}
    spec = ({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}} if kind == "CronJob"
            else {"selector": {"matchLabels": {"app": "a"}}, "template": template})
    resource = {"DaemonSet": "daemonsets", "ReplicaSet": "replicasets", "CronJob": "cronjobs"}[kind]
    return {"uid": "3", "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource}, "namespace": namespace,
            "operation": operation, "object": {"apiVersion": f"{group}/{version}", "kind": kind,
            "metadata": {"name": "w", "namespace": namespace, "labels": {"tier": "prod"}}, "spec": spec}}

images = ["myregistry.com/app:v1", "nginx", "k8s.gcr.io/pause:3.9", "ghcr.io/org/x@" + D]
requests = [workload("DaemonSet", images), workload("ReplicaSet", images),
            workload("CronJob", images, group="batch", version="v1beta1"), pod(images)]
new_validate = []
for s in new_settings:
    for r in requests[:3]:
        new_validate.append({"request": r, "settings": s})
for s in exemption_settings[:1]:
    new_validate.append({"request": requests[3], "settings": s})
    new_validate.append({"images": [{"image": im, "namespace": "prod"} for im in images], "settings": s})
# verify_images of an `include*` policy (no object to judge), and the exemptions under each way
# the fuzz host reads the storages (by the input's length modulo 3).
new_validate.append({"images": [{"image": "myregistry.com/app:v1", "namespace": "prod"}], "settings": new_settings[0]})
texts = [json.dumps(v) for v in new_validate]
texts += [json.dumps({"request": r, "settings": exemption_settings[0]}) + " " * k for r in requests[:3] for k in (1, 2)]
write("validate", texts)
