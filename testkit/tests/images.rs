//! Pushed images are real: the registry serves manifests whose digests match what the
//! fixtures return, and tag operations move what the registry serves.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use testkit::{ManifestFormat, Registry};

/// GET a manifest the way a container runtime would; returns (content type, body).
fn get_manifest(host: &str, repo: &str, reference: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    stream.write_all(
        format!("GET /v2/{repo}/manifests/{reference} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "GET manifest: {head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or_default()
        .to_owned();
    Ok((content_type, raw[split + 4..].to_vec()))
}

#[test]
fn pushed_image_is_served_under_the_returned_digest() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image(&host, "team/app", "v1", "seed-a")?;
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");

    let (content_type, body) = get_manifest(&host, "team/app", "v1")?;
    assert_eq!(content_type, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(testkit::sha256_digest(&body), digest);
    let (_, by_digest) = get_manifest(&host, "team/app", &digest)?;
    assert_eq!(by_digest, body);
    assert_eq!(testkit::resolve_digest(&host, "team/app", "v1")?, digest);

    assert_eq!(testkit::push_image(&host, "team/app", "again", "seed-a")?, digest);
    assert_ne!(testkit::push_image(&host, "team/app", "other", "seed-b")?, digest);
    Ok(())
}

#[test]
fn docker_schema2_images_are_served_as_docker_manifests() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let digest = testkit::push_image_as(&host, "legacy", "v1", "seed", ManifestFormat::DockerV2)?;
    let (content_type, body) = get_manifest(&host, "legacy", "v1")?;
    assert_eq!(content_type, "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(testkit::sha256_digest(&body), digest);
    Ok(())
}

#[test]
fn retag_move_and_delete_change_what_the_registry_serves() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let first = testkit::push_image(&host, "app", "v1", "first")?;

    assert_eq!(testkit::retag(&host, "app", "v1", "stable")?, first);
    assert_eq!(testkit::retag(&host, "app", &first, "pinned")?, first);
    assert_eq!(testkit::resolve_digest(&host, "app", "stable")?, first);

    let second = testkit::move_tag(&host, "app", "v1", "second")?;
    assert_ne!(second, first);
    assert_eq!(testkit::resolve_digest(&host, "app", "v1")?, second);
    assert_eq!(testkit::resolve_digest(&host, "app", &first)?, first);

    testkit::delete_manifest(&host, "app", &second)?;
    assert!(testkit::resolve_digest(&host, "app", "v1").is_err());
    Ok(())
}

#[test]
fn index_lists_platform_manifests_and_is_served_by_digest() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let host = registry.host();
    let amd64 = testkit::push_image(&host, "multi", "amd64", "amd64")?;
    let arm64 = testkit::push_image(&host, "multi", "arm64", "arm64")?;
    let index = testkit::push_index(
        &host,
        "multi",
        "v1",
        &[(&amd64, "linux/amd64"), (&arm64, "linux/arm64/v8")],
    )?;
    assert_eq!(testkit::resolve_digest(&host, "multi", "v1")?, index);

    let mut stream = TcpStream::connect(&host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(
        format!("GET /v2/multi/manifests/v1 HTTP/1.1\r\nHost: {host}\r\nAccept: application/vnd.oci.image.index.v1+json\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP head"))?;
    let body = &raw[split + 4..];
    assert_eq!(testkit::sha256_digest(body), index);
    let parsed: serde_json::Value = serde_json::from_slice(body)?;
    assert_eq!(parsed["manifests"][0]["digest"], amd64.as_str());
    assert_eq!(parsed["manifests"][1]["platform"]["variant"], "v8");
    assert!(testkit::push_index(&host, "multi", "bad", &[(&amd64, "linux")]).is_err());
    Ok(())
}
