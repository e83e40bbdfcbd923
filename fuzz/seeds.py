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
