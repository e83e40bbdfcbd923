//! Small, distinct container images pushed to a registry with oci-client, and the tag
//! operations tests need (retag, move a tag, delete).

use anyhow::{Context, bail};
use oci_client::manifest::{
    IMAGE_DOCKER_CONFIG_MEDIA_TYPE, IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use serde_json::json;

use crate::oci::{self, sha256_digest};
use crate::rt;

/// Which manifest format [`push_image_as`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// `application/vnd.oci.image.manifest.v1+json` (what [`push_image`] writes).
    #[default]
    Oci,
    /// `application/vnd.docker.distribution.manifest.v2+json` (Docker schema 2).
    DockerV2,
}

/// Pushes a one-layer OCI image built from `seed` to `registry_host/repo:tag` and returns its
/// manifest digest (`sha256:…`). Different seeds give different digests; the same seed gives
/// the same digest.
pub fn push_image(registry_host: &str, repo: &str, tag: &str, seed: &str) -> anyhow::Result<String> {
    push_image_as(registry_host, repo, tag, seed, ManifestFormat::Oci)
}

/// [`push_image`] with a choice of manifest format.
pub fn push_image_as(
    registry_host: &str,
    repo: &str,
    tag: &str,
    seed: &str,
    format: ManifestFormat,
) -> anyhow::Result<String> {
    push_with_config(registry_host, repo, tag, seed, format, ("linux", "amd64", None), None)
}

/// Pushes a one-layer OCI image (content from `seed`) whose config names `platform`
/// (`os/architecture[/variant]`) and runs as `user` (`config.User`): a platform manifest for
/// [`push_index`]. Returns its manifest digest.
pub fn push_platform_image(
    registry_host: &str,
    repo: &str,
    tag: &str,
    seed: &str,
    platform: &str,
    user: &str,
) -> anyhow::Result<String> {
    let mut parts = platform.split('/');
    let (Some(os), Some(architecture), variant, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        bail!("platform {platform:?} is not os/architecture[/variant]");
    };
    push_with_config(
        registry_host,
        repo,
        tag,
        seed,
        ManifestFormat::Oci,
        (os, architecture, variant),
        Some(user),
    )
}

/// Pushes the image of `seed` in `format`, its config naming `(os, architecture, variant)` and
/// `user` when given.
fn push_with_config(
    registry_host: &str,
    repo: &str,
    tag: &str,
    seed: &str,
    format: ManifestFormat,
    (os, architecture, variant): (&str, &str, Option<&str>),
    user: Option<&str>,
) -> anyhow::Result<String> {
    let (layer_type, config_type, manifest_type) = match format {
        ManifestFormat::Oci => (
            IMAGE_LAYER_MEDIA_TYPE,
            oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE,
            OCI_IMAGE_MEDIA_TYPE,
        ),
        ManifestFormat::DockerV2 => (
            IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE,
            IMAGE_DOCKER_CONFIG_MEDIA_TYPE,
            IMAGE_MANIFEST_MEDIA_TYPE,
        ),
    };
    let layer = single_file_tar("seed.txt", seed.as_bytes());
    let layer_digest = sha256_digest(&layer);
    // Built as before for `push_image`'s linux/amd64 images, so that their digests stay the same.
    let mut image_config = json!({"Labels": {"dev.testkit.seed": seed}});
    if let Some(user) = user {
        image_config["User"] = json!(user);
    }
    let mut config = json!({
        "architecture": architecture,
        "os": os,
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    if let Some(variant) = variant {
        config["variant"] = json!(variant);
    }
    let config = serde_json::to_vec(&config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "size": config.len(), "digest": sha256_digest(&config)},
        "layers": [{"mediaType": layer_type, "size": layer.len(), "digest": layer_digest}],
    }))?;
    rt::block_on(async {
        let client = oci::client(registry_host).await;
        let reference = oci::tag_ref(registry_host, repo, tag);
        oci::ensure_blob(&client, &reference, &layer).await?;
        oci::ensure_blob(&client, &reference, &config).await?;
        oci::push_manifest_bytes(&client, &reference, manifest, manifest_type).await
    })
    .with_context(|| format!("pushing image {registry_host}/{repo}:{tag}"))
}

/// Pushes an OCI artifact to `registry_host/repo:tag`: one layer (content from `seed`) and the
/// config blob `config`, stored byte for byte under `config_media_type` (an artifact's `{}`, a
/// config lacking `architecture` or `os`, one with keys no image config has). Returns its
/// manifest digest, for [`push_index`] or a look-up by digest.
pub fn push_artifact(
    registry_host: &str,
    repo: &str,
    tag: &str,
    seed: &str,
    config: &[u8],
    config_media_type: &str,
) -> anyhow::Result<String> {
    let layer = seed.as_bytes().to_vec();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": {"mediaType": config_media_type, "size": config.len(), "digest": sha256_digest(config)},
        "layers": [{"mediaType": "application/octet-stream", "size": layer.len(), "digest": sha256_digest(&layer)}],
    }))?;
    rt::block_on(async {
        let client = oci::client(registry_host).await;
        let reference = oci::tag_ref(registry_host, repo, tag);
        oci::ensure_blob(&client, &reference, &layer).await?;
        oci::ensure_blob(&client, &reference, config).await?;
        oci::push_manifest_bytes(&client, &reference, manifest, OCI_IMAGE_MEDIA_TYPE).await
    })
    .with_context(|| format!("pushing artifact {registry_host}/{repo}:{tag}"))
}

/// Pushes an OCI image index (a multi-platform image) under `tag` listing already pushed
/// manifests of `repo` with their platforms (`("sha256:…", "linux/amd64")`); returns the
/// index digest.
pub fn push_index(registry_host: &str, repo: &str, tag: &str, manifests: &[(&str, &str)]) -> anyhow::Result<String> {
    rt::block_on(async {
        let client = oci::client(registry_host).await;
        let mut entries = Vec::with_capacity(manifests.len());
        for (digest, platform) in manifests {
            let child = oci::digest_ref(registry_host, repo, digest);
            let (body, media_type) = oci::pull_manifest_bytes(&client, &child).await?;
            let mut parts = platform.split('/');
            let (Some(os), Some(architecture)) = (parts.next(), parts.next()) else {
                bail!("platform {platform:?} is not os/architecture[/variant]");
            };
            let mut platform = json!({"os": os, "architecture": architecture});
            if let Some(variant) = parts.next() {
                platform["variant"] = json!(variant);
            }
            entries.push(json!({
                "mediaType": media_type,
                "size": body.len(),
                "digest": digest,
                "platform": platform,
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
            "manifests": entries,
        }))?;
        let reference = oci::tag_ref(registry_host, repo, tag);
        oci::push_manifest_bytes(&client, &reference, index, OCI_IMAGE_INDEX_MEDIA_TYPE).await
    })
    .with_context(|| format!("pushing index {registry_host}/{repo}:{tag}"))
}

/// Points `new_tag` at the manifest `reference` names (a tag or a `sha256:` digest), byte for
/// byte, and returns that manifest's digest.
pub fn retag(registry_host: &str, repo: &str, reference: &str, new_tag: &str) -> anyhow::Result<String> {
    rt::block_on(async {
        let client = oci::client(registry_host).await;
        let source = image_ref(registry_host, repo, reference);
        let (body, media_type) = oci::pull_manifest_bytes(&client, &source).await?;
        let target = oci::tag_ref(registry_host, repo, new_tag);
        oci::push_manifest_bytes(&client, &target, body, &media_type).await
    })
    .with_context(|| format!("tagging {registry_host}/{repo}:{reference} as {new_tag}"))
}

/// Moves `tag` to a new image built from `new_seed` (the "tag moved after signing" case) and
/// returns the new digest. The old manifest stays reachable by digest.
pub fn move_tag(registry_host: &str, repo: &str, tag: &str, new_seed: &str) -> anyhow::Result<String> {
    push_image(registry_host, repo, tag, new_seed)
}

/// The manifest digest `reference` (a tag or a digest) resolves to, from a `HEAD` request.
pub fn resolve_digest(registry_host: &str, repo: &str, reference: &str) -> anyhow::Result<String> {
    rt::block_on(async {
        let client = oci::client(registry_host).await;
        Ok(client
            .fetch_manifest_digest(&image_ref(registry_host, repo, reference), &oci::auth(registry_host))
            .await?)
    })
    .with_context(|| format!("resolving {registry_host}/{repo}:{reference}"))
}

/// Deletes the manifest `digest` from `repo` (and with it every tag pointing at it).
pub fn delete_manifest(registry_host: &str, repo: &str, digest: &str) -> anyhow::Result<()> {
    let path = format!("/v2/{repo}/manifests/{digest}");
    let status = rt::block_on(oci::raw_request(registry_host, reqwest::Method::DELETE, &path, None))?;
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("deleting {registry_host}/{repo}@{digest}: HTTP {status}");
    }
    Ok(())
}

fn image_ref(registry_host: &str, repo: &str, reference: &str) -> oci_client::Reference {
    if reference.starts_with("sha256:") {
        oci::digest_ref(registry_host, repo, reference)
    } else {
        oci::tag_ref(registry_host, repo, reference)
    }
}

/// A POSIX ustar archive holding one regular file: a real, extractable image layer.
fn single_file_tar(name: &str, content: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 512;
    let mut header = [0u8; BLOCK];
    let name_len = name.len().min(100);
    header[..name_len].copy_from_slice(&name.as_bytes()[..name_len]);
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[148..156].copy_from_slice(b"        ");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());

    let padded = content.len().div_ceil(BLOCK) * BLOCK;
    let mut tar = Vec::with_capacity(BLOCK + padded + 2 * BLOCK);
    tar.extend_from_slice(&header);
    tar.extend_from_slice(content);
    tar.resize(BLOCK + padded + 2 * BLOCK, 0);
    tar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_has_header_content_and_end_blocks() {
        let tar = single_file_tar("seed.txt", b"hello");
        assert_eq!(tar.len(), 512 * 4);
        assert_eq!(&tar[..8], b"seed.txt");
        assert_eq!(&tar[124..136], b"00000000005\0");
        assert_eq!(&tar[512..517], b"hello");
        let stored = std::str::from_utf8(&tar[148..154]).map(|s| u32::from_str_radix(s, 8));
        let mut blank = tar[..512].to_vec();
        blank[148..156].copy_from_slice(b"        ");
        let expected: u32 = blank.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(stored, Ok(Ok(expected)));
    }
}
