//! `cip provider` as a user runs it: the binary with the real policy module, TLS files on disk,
//! probes and one ProviderRequest; invalid settings stop it at start-up.

mod provider_support;

use std::path::Path;
use std::process::{Command, Stdio};

use provider_support::*;
use serde_json::json;

fn provider_command(files: &TlsFiles, settings: &Path) -> TestResult<(Command, String, String)> {
    let addr = testkit::unused_local_addr()?.to_string();
    let metrics_addr = testkit::unused_local_addr()?.to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cip"));
    command
        .arg("provider")
        .arg("--settings-path")
        .arg(settings)
        .arg("--tls-cert-file")
        .arg(&files.cert)
        .arg("--tls-key-file")
        .arg(&files.key)
        .arg("--client-ca-file")
        .arg(&files.client_ca)
        .args(["--addr", &addr, "--metrics-addr", &metrics_addr])
        .arg(policy_wasm_path())
        .stdout(Stdio::null());
    Ok((command, addr, metrics_addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cip_provider_serves_gatekeeper_over_mtls() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let gatekeeper_ca = Ca::new("gatekeeper CA")?;
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let settings = files.dir.path().join("settings.yaml");
    std::fs::write(&settings, "policies: []\nnoMatchPolicy: deny\n")?;
    let (mut command, addr, metrics_addr) = provider_command(&files, &settings)?;
    let _running = Running(command.stderr(Stdio::null()).spawn()?);

    wait_until_ready(&metrics_addr).await?;

    let gatekeeper = tls13_client(&ca, Some(&gatekeeper_ca.client()?))?;
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

    let anonymous = tls13_client(&ca, None)?;
    assert!(
        anonymous
            .post(format!("https://{addr}/validate"))
            .json(&request(&[]))
            .send()
            .await
            .is_err()
    );
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()?
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

#[test]
fn cip_provider_refuses_invalid_settings() -> TestResult {
    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &ca)?;
    let settings = files.dir.path().join("settings.yaml");
    std::fs::write(&settings, json!({"noMatchPolicy": "sometimes"}).to_string())?;
    let (mut command, _, _) = provider_command(&files, &settings)?;
    let output = command.output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started with invalid settings");
    assert!(
        stderr.contains("the policy refused its settings: noMatchPolicy"),
        "{stderr}"
    );
    Ok(())
}
