//! `cip provider` as a user runs it: the binary with the real policy module, TLS files on disk,
//! probes and one ProviderRequest; invalid settings stop it at start-up.

mod provider_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use provider_support::*;
use serde_json::json;

/// The bound of a `cip provider` that must exit at start-up: it compiles the policy module
/// first (seconds in a debug build), so a provider that hangs instead fails the test.
const PROVIDER_LIMIT: Duration = Duration::from_secs(300);

/// `cip provider` with the real module and TLS files, without its addresses
/// ([`testkit::ProviderProcess`] adds them).
fn provider_command(files: &TlsFiles, settings: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cip"));
    command
        .arg("provider")
        .arg("--settings-path")
        .arg(settings)
        .args(files.provider_args())
        .arg(policy_wasm_path());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cip_provider_serves_gatekeeper_over_mtls() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let gatekeeper_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let settings = files.dir.path().join("settings.yaml");
    std::fs::write(&settings, "policies: []\nnoMatchPolicy: deny\n")?;
    let provider = testkit::ProviderProcess::start(|| provider_command(&files, &settings))?;
    let (addr, metrics_addr) = (provider.addr(), provider.metrics_addr());

    let gatekeeper = bounded_tls13_client(&ca, Some(&gatekeeper_ca.client()?))?;
    let k = key("registry.example/app:v1", "production");
    let answer: serde_json::Value = gatekeeper
        .post(format!("https://{addr}/validate"))
        .json(&request(std::slice::from_ref(&k)))
        .send()
        .await?
        .json()
        .await?;
    let value = &item(&answer, &k).ok_or("no item")?["value"];
    assert_eq!(value["verdict"], "deny", "noMatchPolicy: deny: {answer}");

    let anonymous = bounded_tls13_client(&ca, None)?;
    let refused = anonymous
        .post(format!("https://{addr}/validate"))
        .json(&request(&[]))
        .send()
        .await;
    // Refused, not merely unanswered within the bound.
    assert!(matches!(&refused, Err(error) if !error.is_timeout()), "{refused:?}");
    let text = bounded_http_client()?
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        text.contains("cluster_image_policy_validations_total{result=\"deny\"} 1"),
        "{text}"
    );
    Ok(())
}

/// The review's probe on a real process: under `ulimit -n 256`, 300 idle connections to the
/// metrics port used to take every descriptor, and Gatekeeper's connections to the HTTPS port
/// were no longer accepted (admission fails closed). The side port now holds at most
/// `--max-metrics-connections` (32) and refuses the rest at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_metrics_port_leaves_the_descriptors_gatekeeper_needs() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let gatekeeper_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let settings = files.dir.path().join("settings.yaml");
    std::fs::write(&settings, "policies: []\nnoMatchPolicy: allow\n")?;
    // The shell sets both the soft and the hard limit, then becomes the provider.
    let provider = testkit::ProviderProcess::start(|| {
        let inner = provider_command(&files, &settings);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
            .arg(inner.get_program())
            .args(inner.get_args());
        command
    })?;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), provider.metrics_addr()).await?);
    }
    let gatekeeper = fresh_connection_tls13_client(&ca, Some(&gatekeeper_ca.client()?), [127, 0, 0, 1].into())?;
    let k = key("registry.example/app:v1", "production");
    for attempt in 0..10 {
        let response = gatekeeper
            .post(format!("https://{}/validate", provider.addr()))
            .json(&request(std::slice::from_ref(&k)))
            .send()
            .await
            .map_err(|error| format!("request {attempt} with 300 idle metrics connections: {error:?}"))?;
        assert_eq!(response.status().as_u16(), 200);
        let answer: serde_json::Value = response.json().await?;
        assert_eq!(
            item(&answer, &k).ok_or("no item")?["value"]["verdict"],
            "allow",
            "{answer}"
        );
    }
    // The probes still get in, in place of one of the idle connections.
    let response = bounded_http_client()?
        .get(format!("http://{}/readyz", provider.metrics_addr()))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    drop(idle);
    Ok(())
}

#[test]
fn cip_provider_refuses_invalid_settings() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &ca)?;
    let settings = files.dir.path().join("settings.yaml");
    std::fs::write(&settings, json!({"noMatchPolicy": "sometimes"}).to_string())?;
    // Ephemeral loopback ports: it must exit before it binds them.
    let output = testkit::run_bounded(
        provider_command(&files, &settings).args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"]),
        PROVIDER_LIMIT,
    )?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started with invalid settings");
    assert!(
        stderr.contains("the policy refused its settings: noMatchPolicy"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn cip_provider_refuses_a_namespace_share_above_the_slots() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &ca)?;
    let settings = files.dir.path().join("settings.yaml");
    std::fs::write(&settings, "policies: []\nnoMatchPolicy: deny\n")?;
    let output = testkit::run_bounded(
        provider_command(&files, &settings).args([
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--max-concurrency",
            "4",
            "--max-concurrency-per-namespace",
            "5",
        ]),
        PROVIDER_LIMIT,
    )?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started with 5 of 4 slots for one namespace");
    assert!(
        stderr.contains("--max-concurrency-per-namespace 5 exceeds --max-concurrency 4"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cip_provider_on_a_taken_port_is_started_again_on_fresh_ports_without_contacting_the_holder() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &ca)?;
    let settings = files.dir.path().join("settings.yaml");
    std::fs::write(&settings, "policies: []\nnoMatchPolicy: deny\n")?;
    // First start: its metrics port bound but not listening (its bind fails, it exits).
    // Second: its HTTPS port listened on by another socket (likewise). Then fresh ports.
    let closed = testkit::ClosedPort::new()?;
    let squatter = std::net::TcpListener::bind("127.0.0.1:0")?;
    squatter.set_nonblocking(true)?;
    let taken = [closed.addr(), squatter.local_addr()?];
    let mut given = vec![
        testkit::unused_local_addr()?,
        taken[0],
        taken[1],
        testkit::unused_local_addr()?,
    ]
    .into_iter();
    let mut draws = 0;
    let provider = testkit::ProviderProcess::start_on(
        &mut || {
            draws += 1;
            given.next().map_or_else(testkit::unused_local_addr, Ok)
        },
        || provider_command(&files, &settings),
    )?;
    assert_eq!(draws, 6, "three starts of two ports each");
    for addr in [provider.addr(), provider.metrics_addr()] {
        assert!(!taken.contains(&addr), "{addr} was taken");
    }
    let contacted = squatter.accept();
    assert!(
        matches!(&contacted, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "the squatter was contacted: {contacted:?}"
    );
    let ready = bounded_http_client()?
        .get(format!("http://{}/readyz", provider.metrics_addr()))
        .send()
        .await?;
    assert_eq!(ready.status(), 200);
    Ok(())
}
