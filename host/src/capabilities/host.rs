//! Binding `cluster-image-policy`, namespace `host`: what this host serves beyond Kubewarden's
//! capabilities. The module asks it (at most once per evaluation: after an authority without
//! `signatureFormat` failed on the legacy `.sig` tag, or before a `key` authority needs a hash
//! sigstore-rs would not pick) which of the operations it asks only of a host that lists them it
//! may ask: cosign v3 bundles, `verify_key_with_hash`, `verify_attestations_with_hash`. A stock
//! Kubewarden host fails the call (unknown binding), and the module then says what only `cip`
//! does instead of asking for it (docs/wire-protocol.md).

use serde::Serialize;

use super::{CapabilityError, answer, unknown_operation};

const OPERATIONS_CALL: &str = "cluster-image-policy/host/v1/operations";

/// Every operation of the `cluster-image-policy` binding, as `<namespace>/<operation>`.
pub(super) const OPERATIONS: &[&str] = &[
    "host/v1/operations",
    "kms/v1/public_key",
    "oci/v1/verify_attestations",
    "oci/v1/verify_attestations_with_hash",
    "oci/v1/verify_key_with_hash",
    "oci/v1/verify_keyless_regexp",
    "oci/v1/verify_legacy_then_bundle",
    "oci/v1/verify_with_format",
    "policy/v1/rego",
];

#[derive(Serialize)]
struct Operations {
    operations: &'static [&'static str],
}

/// Namespace `host` (the payload is not read: any question gets the same answer).
pub(super) fn dispatch(operation: &str) -> Result<Vec<u8>, CapabilityError> {
    match operation {
        "v1/operations" => answer(OPERATIONS_CALL, &Operations { operations: OPERATIONS }),
        other => Err(unknown_operation(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Capabilities;
    use super::*;

    /// Asks `caps` one of our operations (`<namespace>/<operation>`) with an empty question.
    fn ask(caps: &Capabilities, listed: &str) -> Result<Vec<u8>, CapabilityError> {
        let (namespace, operation) = listed.split_once('/').unwrap();
        caps.dispatch("test", None, "cluster-image-policy", namespace, operation, b"{}")
    }

    /// Capabilities without a registry, on a runtime kept alive beside them.
    fn capabilities(kubewarden_only: bool) -> (tokio::runtime::Runtime, Capabilities) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let caps = Capabilities::without_registry(runtime.handle().clone());
        (runtime, if kubewarden_only { caps.kubewarden_only() } else { caps })
    }

    /// The list is what the host dispatches: each listed operation is served (whatever it then
    /// makes of an empty question), and the answer is the list the module reads.
    #[test]
    fn the_operations_listed_are_the_operations_served() {
        let (_runtime, caps) = capabilities(false);
        for listed in OPERATIONS {
            let outcome = ask(&caps, listed);
            assert!(
                !matches!(
                    outcome,
                    Err(CapabilityError::UnknownNamespace { .. } | CapabilityError::UnknownOperation { .. })
                ),
                "{listed}: {outcome:?}"
            );
        }
        let answer: serde_json::Value = serde_json::from_slice(&ask(&caps, "host/v1/operations").unwrap()).unwrap();
        assert_eq!(answer, serde_json::json!({"operations": OPERATIONS}));
        assert!(
            answer["operations"]
                .as_array()
                .unwrap()
                .contains(&"oci/v1/verify_with_format".into())
        );
        assert!(matches!(
            ask(&caps, "host/v2/operations"),
            Err(CapabilityError::UnknownOperation { .. })
        ));
    }

    /// Every `cluster-image-policy` operation the module calls (the `Capability` constants of
    /// its sources: `src/host.rs`, and `src/policy/rego.rs` for Rego) is listed: the module asks
    /// some of them only from a host that lists them (`oci/v1/verify_key_with_hash`, the bundle
    /// calls), so one left out would be refused as by an older host.
    #[test]
    fn every_operation_the_module_calls_is_listed() {
        let sources = [
            include_str!("../../../src/host.rs"),
            include_str!("../../../src/policy/rego.rs"),
        ];
        let called: Vec<String> = sources
            .iter()
            .flat_map(|source| source.split("binding: \"cluster-image-policy\",").skip(1))
            .map(|rest| {
                let field = |name: &str| {
                    let start = rest.find(&format!("{name}: \"")).expect(name) + name.len() + 3;
                    rest[start..].split('"').next().expect("quoted").to_owned()
                };
                format!("{}/{}", field("namespace"), field("operation"))
            })
            .collect();
        for expected in ["oci/v1/verify_key_with_hash", "policy/v1/rego"] {
            assert!(called.contains(&expected.to_owned()), "{expected}: {called:?}");
        }
        for call in &called {
            assert!(
                OPERATIONS.contains(&call.as_str()),
                "{call} is not listed: {OPERATIONS:?}"
            );
        }
    }

    /// As a stock host: each of our operations fails as an unknown binding (the module then
    /// reads no bundles and says so); Kubewarden's own capabilities are still served.
    #[test]
    fn a_kubewarden_only_host_serves_none_of_our_operations() {
        let (_runtime, caps) = capabilities(true);
        for listed in OPERATIONS {
            let outcome = ask(&caps, listed);
            assert!(
                matches!(&outcome, Err(CapabilityError::UnknownBinding(b)) if b == "cluster-image-policy"),
                "{listed}: {outcome:?}"
            );
        }
        let certificate = caps.dispatch("test", None, "kubewarden", "crypto", "v1/is_certificate_trusted", b"{}");
        assert!(
            matches!(certificate, Err(CapabilityError::Payload { .. })),
            "Kubewarden's capabilities stay: {certificate:?}"
        );
    }
}
