//! The two readings of the settings agree.
//!
//! Kubewarden reads the settings twice, in two different ways: `validate_settings`, when the
//! policy is loaded, reads every policy whole ([`Settings::parse`]) and checks its keys and
//! expressions ([`Settings::check_material`]); `validate`, on every admission request, reads
//! them lazily through [`SettingsCache`] ([`Settings::parse_lazy`]: names, modes and globs at
//! once, `match` and authorities only for a policy that covers an image, by walking the text
//! when it is written plainly). A document validated with one meaning and applied with another
//! would let a covered image escape its policy (a glob, a mode, a namespace or an authority read
//! differently) while `validate_settings` said everything was fine.
//!
//! So on generated settings (policies with globs, modes, `match` entries, label selectors and
//! authorities), written compactly, pretty-printed and with random `\uXXXX` escapes and
//! whitespace, these tests check that:
//! - whatever `validate_settings` accepts, `validate` reads identically, on a fresh read and on
//!   a cached one: the same policies cover the same images, apply to the same subjects, with the
//!   same modes and authorities; and the way a document is written changes neither whether it is
//!   accepted nor what it means;
//! - `validate` answers a request identically whether the request or the settings come first in
//!   its payload and whatever the settings cache already holds;
//! - hand-made documents (duplicate and escaped keys, `null`s, lone surrogates, byte order mark,
//!   trailing garbage) are either refused by `validate_settings` or read alike by both;
//! - the generator is not degenerate: most generated documents are accepted.
//!
//! Case counts are kept small for `make test` and `make test-wasm`; set `PROPTEST_CASES` to run
//! more (both tests then run that many cases).

use std::fmt::Write;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{DIGEST, pod};
use crate::crypto::tests::P256_PEM;
use crate::host::mock::{MockHost, trusted};
use crate::matching::{Labels, Subject};
use crate::reference::ImageReference;
use crate::settings::{Settings, SettingsCache};

/// `default` cases, or `PROPTEST_CASES` if set (proptest itself ignores it in wasm32 builds and
/// whenever a test sets its own count).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok());
    ProptestConfig::with_cases(cases.unwrap_or(default))
}

/// Images of requests: short names, ports, letter case, digests, look-alike registries.
const IMAGES: &[&str] = &[
    "nginx",
    "docker.io/library/nginx:latest",
    "index.docker.io/library/nginx",
    "myregistry.com/app:v1",
    "myregistry.com:443/app:v1",
    "MYREGISTRY.COM/app",
    "myregistry.com.evil.io/app",
    "r.io/a/b:1",
    "r.io/app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
    "localhost:5000/x",
    "localhost:05000/x",
    "ghcr.io/org/x:tag",
    "registry.k8s.io/pause:3.9",
    "org/app",
];
/// Globs of policies, some covering some of `IMAGES` only once normalised.
const GLOBS: &[&str] = &[
    "**",
    "*",
    "*/*",
    "docker.io/*",
    "docker.io/library/**",
    "nginx",
    "index.docker.io/library/nginx",
    "myregistry.com/**",
    "myregistry.com:443/**",
    "MyRegistry.com/**",
    "r.io/app:v*",
    "r.io/app",
    "r.io/**",
    "r.io/*/b:*",
    "localhost:5000/**",
    "localhost:05000/**",
    "ghcr.io/org/*",
    "registry.k8s.io/**",
    "r.io/**/b",
    "*/app",
    "myregistry.com/app:v1",
];

/// The workloads a policy's `match` is tried on: namespaces, resources, with and without labels.
fn subjects() -> Vec<Subject<'static>> {
    let mut v = Vec::new();
    for ns in ["default", "production", "team-a", "kube-system"] {
        for (group, resource) in [("", "pods"), ("apps", "deployments")] {
            for labels in [Labels::None, Labels::Json(r#"{"tier":"prod","app":"a"}"#)] {
                v.push(Subject {
                    namespace: ns,
                    group,
                    version: "v1",
                    resource,
                    labels,
                    object: None,
                });
            }
        }
    }
    v
}

/// Everything `validate` reads of settings, as text: `noMatchPolicy`, digest pinning, policy
/// names and modes, and for each of `IMAGES` the policies covering it, whether each applies to
/// each of `subjects()`, and its authorities.
fn model(s: &Settings<'_>) -> String {
    let mut out = String::new();
    let _ = write!(out, "nomatch={:?} pin={} policies=", s.no_match, s.pin_digests);
    for p in &s.policies {
        let _ = write!(out, "[{} {:?}]", p.name, p.mode);
    }
    for image in IMAGES {
        let Ok(reference) = ImageReference::parse(image) else {
            continue;
        };
        let names: Vec<&str> = s.covering(&reference).map(|p| p.name.as_str()).collect();
        let _ = write!(out, "\n{image} -> {names:?}");
        for p in s.covering(&reference) {
            for subject in subjects() {
                let _ = write!(
                    out,
                    " {}:{}",
                    p.name,
                    match s.applies(p, &subject) {
                        Ok(b) => b.to_string(),
                        Err(e) => format!("ERR({e})"),
                    }
                );
            }
            match s.body(p) {
                Ok(body) => {
                    for a in &body.authorities {
                        let _ = write!(out, " auth({} {:?})", a.name, a);
                    }
                    let _ = write!(out, " policy={}", body.policy.is_some());
                }
                Err(e) => {
                    let _ = write!(out, " BODYERR({e})");
                }
            }
        }
    }
    out
}

/// The settings as `validate_settings` reads them.
fn full(text: &str) -> Result<Settings<'_>, String> {
    let s = Settings::parse(text).map_err(|e| e.to_string())?;
    s.check_material().map_err(|e| e.to_string())?;
    Ok(s)
}

/// One of `pool`, as a JSON string.
fn strategy_string(pool: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(pool).prop_map(|s| json!(s)).boxed()
}

/// Settings of up to three policies (names may repeat, which `validate_settings` refuses), each
/// with globs, maybe a mode, `match` entries and authorities.
fn settings_strategy() -> BoxedStrategy<Value> {
    let glob = strategy_string(GLOBS);
    let images = prop::collection::vec(glob.prop_map(|g| json!({"glob": g})), 1..3);
    let mode = prop_oneof![
        Just(None),
        Just(Some(json!("enforce"))),
        Just(Some(json!("warn"))),
        Just(Some(json!(""))),
        Just(Some(Value::Null))
    ];
    let ns = strategy_string(&["default", "production", "team-*", "kube-system", "*"]);
    let entry = (
        prop::option::of(prop::collection::vec(ns, 1..3)),
        prop::option::of(strategy_string(&["", "apps"])),
        prop::option::of(strategy_string(&["v1", "*"])),
        prop::option::of(strategy_string(&["pods", "deployments", "*"])),
        prop::option::of(prop_oneof![
            Just(json!({"matchLabels": {"tier": "prod"}})),
            Just(json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]})),
            Just(json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})),
        ]),
    )
        .prop_map(|(n, g, v, r, sel)| {
            let mut m = serde_json::Map::new();
            if let Some(n) = n {
                m.insert("namespaces".into(), json!(n));
            }
            if let Some(g) = g {
                m.insert("group".into(), g);
            }
            if let Some(v) = v {
                m.insert("version".into(), v);
            }
            if let Some(r) = r {
                m.insert("resource".into(), r);
            }
            if let Some(s) = sel {
                m.insert("selector".into(), s);
            }
            if m.is_empty() {
                m.insert("namespaces".into(), json!(["default"]));
            }
            Value::Object(m)
        });
    let matches = prop::option::of(prop::collection::vec(entry, 1..3));
    let authority = prop_oneof![
        Just(json!({"static": {"action": "pass"}})),
        Just(json!({"static": {"action": "fail"}})),
        Just(json!({"name": "k", "key": {"data": P256_PEM}})),
        Just(json!({"key": {"data": P256_PEM, "hashAlgorithm": "sha256"}, "signatureFormat": "legacy"})),
        Just(
            json!({"keyless": {"url": "https://fulcio.sigstore.dev", "identities": [{"issuer": "https://accounts.google.com", "subject": "a@b.c"}]}})
        ),
    ];
    let authorities = prop::option::of(prop::collection::vec(authority, 0..3));
    let name = strategy_string(&["a", "b", "c", "d"]);
    let policy = (name, images, mode, matches, authorities, any::<bool>()).prop_map(|(n, i, m, ma, au, meta)| {
        let mut spec = serde_json::Map::new();
        spec.insert("images".into(), json!(i));
        if let Some(m) = m { spec.insert("mode".into(), m); }
        if let Some(ma) = ma { spec.insert("match".into(), json!(ma)); }
        if let Some(au) = au { spec.insert("authorities".into(), json!(au)); }
        let mut metadata = json!({"name": n});
        if meta { metadata["labels"] = json!({"x": "y"}); }
        json!({"apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy", "metadata": metadata, "spec": spec})
    });
    let nomatch = prop_oneof![
        Just(None),
        Just(Some(json!("allow"))),
        Just(Some(json!("deny"))),
        Just(Some(json!("warn")))
    ];
    let pin = prop::option::of(any::<bool>());
    // `policies` is required: sometimes left out, or `null` (both readings refuse it).
    let policies = prop_oneof![
        18 => prop::collection::vec(policy, 0..4).prop_map(|p| Some(json!(p))),
        1 => Just(None),
        1 => Just(Some(Value::Null)),
    ];
    (policies, nomatch, pin)
        .prop_map(|(p, n, pin)| {
            let mut s = json!({});
            if let Some(p) = p {
                s["policies"] = p;
            }
            if let Some(n) = n {
                s["noMatchPolicy"] = n;
            }
            if let Some(pin) = pin {
                s["modifyImagesWithDigest"] = json!(pin);
            }
            s
        })
        .boxed()
}

/// `v` written with, per `style` byte: extra whitespace, keys and string characters escaped
/// as `\uXXXX` (same meaning as `v.to_string()`).
fn render(v: &Value, style: &mut impl Iterator<Item = u8>, out: &mut String) {
    let ws = |out: &mut String, b: u8| {
        if b.is_multiple_of(5) {
            out.push_str(" \n\t")
        }
    };
    let string = |s: &str, style: &mut dyn Iterator<Item = u8>, out: &mut String| {
        out.push('"');
        for c in s.chars() {
            let b = style.next().unwrap_or(0);
            if b.is_multiple_of(7) || c == '"' || c == '\\' || (c as u32) < 0x20 {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", u);
                }
            } else if c == '/' && b.is_multiple_of(2) {
                out.push_str("\\/");
            } else {
                out.push(c);
            }
        }
        out.push('"');
    };
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out, style.next().unwrap_or(1));
                string(k, style, out);
                out.push(':');
                ws(out, style.next().unwrap_or(1));
                render(val, style, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, val) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out, style.next().unwrap_or(1));
                render(val, style, out);
            }
            out.push(']');
        }
        Value::String(s) => string(s, style, out),
        other => out.push_str(&other.to_string()),
    }
}

/// The model as `validate` reads it: through the cache, on the first read of the settings and
/// on a second read of the cached instance.
fn lazy_models(text: &str) -> Result<(String, String), String> {
    let mut cache = SettingsCache::default();
    let first = cache.get(text).map_err(|e| e.to_string())?;
    let fresh = model(&first);
    cache.retire(first);
    let second = cache.get(text).map_err(|e| e.to_string())?;
    Ok((fresh, model(&second)))
}

/// `text` (which means what `canonical` means) is accepted by `validate_settings` exactly when
/// `canonical` is, and then read by `validate` as `validate_settings` reads it.
fn check(canonical: &str, text: &str) -> Result<(), TestCaseError> {
    let reference = full(canonical).map(|s| model(&s));
    // What `validate` refuses at once (the top level, names, modes, globs), `validate_settings`
    // refuses with the same words: settings without `policies`, say, are not read as none.
    if let Err(e) = lazy_models(text) {
        prop_assert_eq!(
            full(text).err(),
            Some(e),
            "validate refuses what validate_settings reads otherwise: {}",
            text
        );
    }
    match full(text) {
        Ok(s) => {
            let validated = model(&s);
            let (fresh, cached) = match lazy_models(text) {
                Ok(models) => models,
                Err(e) => {
                    return Err(TestCaseError::fail(format!(
                        "validate refuses ({e}) what validate_settings accepts: {text}"
                    )));
                }
            };
            prop_assert_eq!(&fresh, &validated, "validate_settings vs validate on {}", text);
            prop_assert_eq!(
                &cached,
                &validated,
                "validate_settings vs validate (cached settings) on {}",
                text
            );
            prop_assert_eq!(
                Ok(validated),
                reference,
                "escapes/whitespace change the meaning of {}",
                text
            );
        }
        Err(e) => prop_assert!(
            reference.is_err(),
            "refused written this way ({}), accepted canonically: {}",
            e,
            text
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]
    #[test]
    fn validate_reads_what_validate_settings_accepted(s in settings_strategy(), style in prop::collection::vec(any::<u8>(), 1..200)) {
        let canonical = s.to_string();
        check(&canonical, &canonical)?;
        check(&canonical, &serde_json::to_string_pretty(&s).unwrap())?;
        let mut text = String::new();
        render(&s, &mut style.iter().copied().cycle(), &mut text);
        check(&canonical, &text)?;
    }
}

/// Hand-made documents: refused by `validate_settings` (`false`), or accepted (`true`) and then
/// read alike by `validate`. Where `validate_settings` refuses, `validate` may read the document
/// (it checks lazily); the policy is never loaded.
#[test]
fn tricky_documents_are_refused_or_read_alike() {
    let pem = serde_json::to_string(P256_PEM).unwrap();
    let base =
        |spec: &str| format!(r#"{{"policies":[{{"metadata":{{"name":"p"}},"spec":{spec}}}],"noMatchPolicy":"allow"}}"#);
    let auth = format!(r#""authorities":[{{"key":{{"data":{pem}}}}}]"#);
    let cases: Vec<(String, &str, bool)> = vec![
        (
            base(&format!(r#"{{"images":[{{"glob":"myregistry.com/**"}}],{auth}}}"#)),
            "plain",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**","glob":"other.io/**"}}],{auth}}}"#
            )),
            "dup glob",
            false,
        ),
        (
            base(&format!(r#"{{"images":[{{"\u0067lob":"myregistry.com/**"}}],{auth}}}"#)),
            "escaped glob key",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"mode":"warn","mode":"enforce",{auth}}}"#
            )),
            "dup mode",
            false,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"m\u006fde":"warn",{auth}}}"#
            )),
            "escaped mode",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"mode":null,{auth}}}"#
            )),
            "mode null",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"mode":"Warn",{auth}}}"#
            )),
            "mode casing",
            false,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"mode":"",{auth}}}"#
            )),
            "mode empty",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"match":[{{"namespaces":["a"],"namespaces":["b"]}}],{auth}}}"#
            )),
            "dup namespaces",
            false,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"match":[{{"selector":{{"matchLabels":{{"tier":"prod","tier":"dev"}}}}}}],{auth}}}"#
            )),
            "dup matchLabels key",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"match":null,{auth}}}"#
            )),
            "match null",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"match":[],{auth}}}"#
            )),
            "match []",
            true,
        ),
        (
            base(r#"{"images":[{"glob":"myregistry.com/**"}],"authorities":null}"#),
            "authorities null",
            true,
        ),
        (
            base(r#"{"images":[{"glob":"myregistry.com/**"}],"authorities":[]}"#),
            "authorities []",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"authorities":[{{"key":{{"data":{pem},"data":"x"}}}}]}}"#
            )),
            "dup key.data",
            false,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"authorities":[{{"key":{{"data":{pem}}},"source":null,"ctlog":null,"attestations":null,"rfc3161timestamp":null}}]}}"#
            )),
            "null unsupported",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"authorities":[{{"key":{{"data":{pem},"secretRef":null}}}}]}}"#
            )),
            "secretRef null",
            true,
        ),
        (
            base(
                r#"{"images":[{"glob":"myregistry.com/**"}],"authorities":[{"keyless":{"url":"https://f.io","identities":[{"issuer":"i","subject":"s"}],"ca-cert":null,"trustRootRef":null}}]}"#,
            ),
            "keyless null ca-cert",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**","regex":null}}],{auth}}}"#
            )),
            "regex null",
            true,
        ),
        (
            base(&format!(
                r#"{{"images":[{{"glob":"myregistry.com/**"}}],"policy":null,{auth}}}"#
            )),
            "policy null",
            true,
        ),
        (base(&format!(r#"{{"images":[],{auth}}}"#)), "images []", false),
        (base(&format!(r#"{{"images":null,{auth}}}"#)), "images null", false),
        (
            base(&format!(r#"{{"images":[{{"glob":"myregistry.com/\ud800"}}],{auth}}}"#)),
            "lone surrogate glob",
            false,
        ),
        (
            base(r#"{"images":[{"glob":"myregistry.com/**"}],"authorities":[{"key":{"data":"\ud800"}}]}"#),
            "lone surrogate key",
            false,
        ),
        (
            format!(
                "\u{feff}{}",
                base(&format!(r#"{{"images":[{{"glob":"myregistry.com/**"}}],{auth}}}"#))
            ),
            "BOM",
            false,
        ),
        (
            format!(
                "{} x",
                base(&format!(r#"{{"images":[{{"glob":"myregistry.com/**"}}],{auth}}}"#))
            ),
            "trailing garbage",
            false,
        ),
        (
            format!(
                r#"{{"policies":[{{"metadata":{{"name":"p","name":"q"}},"spec":{{"images":[{{"glob":"myregistry.com/**"}}],{auth}}}}}]}}"#
            ),
            "dup metadata.name",
            false,
        ),
        (
            format!(
                r#"{{"policies":[{{"metadata":{{"name":"p","n\u0061me":"q"}},"spec":{{"images":[{{"glob":"myregistry.com/**"}}],{auth}}}}}]}}"#
            ),
            "escaped dup metadata.name",
            false,
        ),
        (
            format!(
                r#"{{"policies":[{{"metadata":{{"name":"p"}},"spec":{{"images":[{{"glob":"myregistry.com/**"}}],{auth}}}}}],"policies":[]}}"#
            ),
            "dup policies",
            false,
        ),
        (
            format!(
                r#"{{"policies":[{{"metadata":{{"name":"p"}},"spec":{{"images":[{{"glob":"myregistry.com/**"}}],{auth}}}}}],"noMatchPolicy":null,"modifyImagesWithDigest":null}}"#
            ),
            "top nulls",
            true,
        ),
        (
            format!(
                r#"{{"policies":[{{"metadata":{{"name":"p"}},"spec":{{"images":[{{"glob":"myregistry.com/**"}}],{auth}}}}},{{"metadata":{{"name":"p "}},"spec":{{"images":[{{"glob":"**"}}]}}}}]}}"#
            ),
            "near-dup names",
            true,
        ),
        (
            format!(
                r#"{{"policies":[{{"metadata":{{"name":"p"}},"spec":{{"images":[{{"glob":"myregistry.com/**"}}],{auth}}},"status":{}}}]}}"#,
                "[".repeat(200) + &"]".repeat(200)
            ),
            "deep status",
            true,
        ),
    ];
    for (text, note, accepted) in cases {
        let validated = full(&text).map(|s| model(&s));
        assert_eq!(
            validated.is_ok(),
            accepted,
            "{note}: validate_settings says {validated:?}"
        );
        if let Ok(validated) = validated {
            let (fresh, cached) = lazy_models(&text).unwrap_or_else(|e| panic!("{note}: validate refuses: {e}"));
            assert_eq!(fresh, validated, "{note}: validate_settings vs validate");
            assert_eq!(
                cached, validated,
                "{note}: validate_settings vs validate (cached settings)"
            );
        }
    }
}

/// `spec.mode: ""` is `enforce`, as in policy-controller (`spec.Mode != "" &&
/// !validModes.Has(spec.Mode)`, and only `warn` warns): accepted by both readings, read alike
/// whether the skeleton walk or the derive reads it, and an image it covers without a signature
/// is denied, not admitted with a warning.
#[test]
fn an_empty_mode_is_enforce() {
    let pem = serde_json::to_string(P256_PEM).unwrap();
    for mode in [r#""mode":"""#, r#""m\u006fde":"""#, r#""mode":"\u0065nforce""#] {
        let text = format!(
            r#"{{"policies":[{{"metadata":{{"name":"p"}},"spec":{{"images":[{{"glob":"myregistry.com/**"}}],{mode},"authorities":[{{"key":{{"data":{pem}}}}}]}}}}]}}"#
        );
        let validated = full(&text).unwrap_or_else(|e| panic!("{mode}: validate_settings refuses: {e}"));
        assert_eq!(validated.policies[0].mode, crate::settings::Mode::Enforce, "{mode}");
        let (fresh, cached) = lazy_models(&text).unwrap_or_else(|e| panic!("{mode}: validate refuses: {e}"));
        assert_eq!(fresh, model(&validated), "{mode}");
        assert_eq!(cached, model(&validated), "{mode}");
        let payload = format!(
            r#"{{"request":{},"settings":{text}}}"#,
            pod("default", &["myregistry.com/app:v1"])
        );
        let r = crate::admission::validate(
            payload.as_bytes(),
            &mut SettingsCache::default(),
            &mut MockHost::failing(),
        );
        assert!(!r.accepted, "{mode}: {:?}", r.warnings);
        assert!(
            r.message.as_deref().is_some_and(|m| m.contains("denied by policy p")),
            "{mode}: {:?}",
            r.message
        );
    }
}

/// `policies` is required (`[]` for none): Kubewarden passes `{}` to a policy given no
/// settings, and settings without policies would admit every image. Both readings refuse them
/// with the same message, naming the field and the fix, however they are written, and
/// `validate` denies every request under them.
#[test]
fn settings_without_policies_are_refused_by_both_readings() {
    for text in [
        "{}",
        " { \n } ",
        r#"{"noMatchPolicy":"warn"}"#,
        r#"{"noMatchPolicy":"allow","modifyImagesWithDigest":false}"#,
        r#"{"n\u006fMatchPolicy":"allow"}"#,
        r#"{"policies":null,"noMatchPolicy":"allow"}"#,
        r#"{"modifyImagesWithDigest":true,"noMatchPolicy":null}"#,
    ] {
        let validated = full(text).map(|s| model(&s));
        let Err(refusal) = validated else {
            panic!("validate_settings accepts {text}: {validated:?}")
        };
        assert!(
            refusal.starts_with("policies: required") && refusal.contains("`policies: []`"),
            "{text}: {refusal}"
        );
        assert_eq!(lazy_models(text).err(), Some(refusal.clone()), "{text}");
        for image in ["nginx", "myregistry.com/app:v1"] {
            let payload = json!({"request": pod("default", &[image])}).to_string();
            let payload = format!("{},\"settings\":{text}}}", payload.strip_suffix('}').unwrap());
            let mut cache = SettingsCache::default();
            for _ in 0..2 {
                let r = crate::admission::validate(payload.as_bytes(), &mut cache, &mut MockHost::failing());
                assert!(!r.accepted, "{payload}");
                assert_eq!(
                    r.message,
                    Some(format!("invalid policy settings: {refusal}")),
                    "{payload}"
                );
            }
        }
    }
    // `policies: []` means no policies: every image gets `noMatchPolicy`.
    let none = r#"{"policies":[],"noMatchPolicy":"deny"}"#;
    assert_eq!(lazy_models(none).map(|(fresh, _)| fresh), full(none).map(|s| model(&s)));
    let r = response(
        &json!({"request": pod("default", &["nginx"]), "settings": {"policies": []}}).to_string(),
        &mut SettingsCache::default(),
    );
    assert!(
        r.starts_with("(true,") && r.contains("covered by no ClusterImagePolicy"),
        "{r}"
    );
}

/// A host that verifies the signatures of every image against `P256_PEM` and nothing else.
fn mock() -> MockHost {
    MockHost::new(|_, payload| {
        if payload["pub_keys"][0] == P256_PEM {
            trusted(DIGEST)
        } else {
            Err("no".to_owned())
        }
    })
}

/// What `validate` answers to `payload`.
fn response(payload: &str, cache: &mut SettingsCache) -> String {
    let r = crate::admission::validate(payload.as_bytes(), cache, &mut mock());
    format!("{:?}", (r.accepted, r.message, r.mutated_object, r.warnings))
}

/// A pod in `ns` running `images`, labelled `tier: prod, app: a` if `labels`.
fn request(ns: &str, images: &[&str], labels: bool) -> Value {
    let mut r = pod(ns, images);
    if labels {
        r["object"]["metadata"]["labels"] = json!({"tier": "prod", "app": "a"});
    }
    r
}

proptest! {
    #![proptest_config(config(128))]
    /// For settings `validate_settings` accepts, `validate` answers a request the same however
    /// the settings are written, whether they come before or after the request in the payload,
    /// and whether the settings cache holds them already.
    #[test]
    fn validate_answers_alike_whatever_the_payload_order_and_cache(
        s in settings_strategy(),
        style in prop::collection::vec(any::<u8>(), 1..200),
        images in prop::collection::vec(prop::sample::select(IMAGES), 1..3),
        ns in prop::sample::select(&["default", "production", "team-a", "kube-system"][..]),
        labels in any::<bool>(),
    ) {
        let canonical = s.to_string();
        if full(&canonical).is_err() { return Ok(()); }
        let req = request(ns, &images, labels).to_string();
        let expected = response(&format!(r#"{{"request":{req},"settings":{canonical}}}"#), &mut SettingsCache::default());
        let mut mangled = String::new();
        render(&s, &mut style.iter().copied().cycle(), &mut mangled);
        for text in [canonical.clone(), serde_json::to_string_pretty(&s).unwrap(), mangled] {
            prop_assert!(full(&text).is_ok(), "{}", text);
            // Request first: `validate` may find the cached settings at the end of the payload and
            // not read them again;
            // settings first: it reads the whole payload.
            let request_first = format!(r#"{{"request":{req},"settings":{text}}}"#);
            let settings_first = format!(r#"{{"settings":{text}, "request":{req}}}"#);
            let mut cache = SettingsCache::default();
            for payload in [&request_first, &settings_first, &request_first, &request_first, &settings_first] {
                prop_assert_eq!(&response(payload, &mut cache), &expected, "{}", payload);
            }
        }
    }
}

/// The generator is not degenerate: most generated documents are accepted by
/// `validate_settings` (duplicate policy or authority names refuse the others), so the tests
/// above compare readings, not two refusals.
#[test]
fn most_generated_settings_are_accepted() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = settings_strategy();
    let accepted = (0..500)
        .filter(|_| full(&strategy.new_tree(&mut runner).unwrap().current().to_string()).is_ok())
        .count();
    assert!(
        accepted >= 300,
        "only {accepted} of 500 generated settings are accepted"
    );
}
