//! Registry down (connection refused) or hanging (accepts, never answers): enforce refuses,
//! warn admits with a warning, and every evaluation returns within bounded timeouts.
//! Policies: the article's `production-strict-policy` (enforce) and `dev-warn-policy` (warn).

mod common;

use std::time::Duration;

use common::{Host, HostOptions, article, on_registry, pod, settings, within};
use e2e_tests::with_keys;
use serde_json::json;
use testkit::{ClosedPort, KeyPair, SlowServer};

/// Hang guard only: the host gives up after 1 s per registry round trip and 2 s per evaluation.
const HANG_GUARD: Duration = Duration::from_secs(15);

/// Checks both modes against the unreachable registry `host`; `names_registry`: whether the
/// refusal's reason must name the registry (not just the image, which contains it anyway).
fn enforce_refuses_warn_admits(host: &str, what: &str, names_registry: bool) -> anyhow::Result<()> {
    let key = KeyPair::ecdsa_p256()?;
    let s = settings(
        &[
            on_registry(
                &with_keys(&article("production-strict-policy"), &[key.public_key_pem()]),
                host,
            ),
            on_registry(&with_keys(&article("dev-warn-policy"), &[key.public_key_pem()]), host),
        ],
        json!({}),
    );
    let cip = Host::new(HostOptions {
        registry_timeout: Duration::from_secs(1),
        evaluation_timeout: Duration::from_secs(2),
        ..HostOptions::for_registry(host)
    });
    let image = format!("{host}/app:v1");

    let response = within(HANG_GUARD, &format!("{what}: enforce"), || {
        cip.validate(&pod("production", &[&image]), &s)
    });
    let message = response.assert_refused(&format!("{what}, enforce mode"));
    let prefix = format!(
        "Pod production/test: image {image} denied by policy production-strict-policy: authority authority-0: "
    );
    let reason = message
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{what}: expected prefix: {prefix}\ngot: {message}"));
    assert!(
        !names_registry || reason.contains(&format!("registry {host}")),
        "{what}: the reason names the registry: {reason}"
    );

    let response = within(HANG_GUARD, &format!("{what}: warn"), || {
        cip.validate(&pod("development", &[&image]), &s)
    });
    response.assert_admitted(&format!("{what}, warn mode"));
    let warnings = response.warnings();
    assert_eq!(warnings.len(), 1, "{what}: {response}");
    assert!(
        warnings[0].starts_with(&format!(
            "image {image} not verified by policy dev-warn-policy (warn mode): authority authority-0: "
        )),
        "{what}: {response}"
    );
    assert!(
        response.mutated().is_none(),
        "{what}: nothing verified, nothing pinned: {response}"
    );
    Ok(())
}

#[test]
fn registry_down_enforce_refuses_and_warn_admits_with_a_warning() -> anyhow::Result<()> {
    let closed = ClosedPort::new()?;
    enforce_refuses_warn_admits(&closed.addr().to_string(), "registry refusing connections", true)
}

#[test]
fn registry_hanging_enforce_refuses_and_warn_admits_within_the_timeouts() -> anyhow::Result<()> {
    let slow = SlowServer::start()?;
    // A hanging registry is cut by the evaluation deadline, whose message names the host call
    // rather than the registry; the image named in the refusal still tells which one it was.
    enforce_refuses_warn_admits(&slow.host(), "registry that never answers", false)?;
    assert!(slow.connections() > 0, "the host did try the hanging registry");
    Ok(())
}
