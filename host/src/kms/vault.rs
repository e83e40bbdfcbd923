//! `hashivault://KEY`: the public key of the newest version of a transit key
//! (`GET $VAULT_ADDR/v1/TRANSIT/keys/KEY` with `X-Vault-Token`), as cosign reads it.
//! Works with HashiCorp Vault and OpenBao.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::config::{Secret, VaultConfig};
use super::error::KmsError;
use super::{http, pem};

#[derive(Deserialize)]
struct Answer {
    data: KeyData,
}

#[derive(Deserialize)]
struct KeyData {
    #[serde(rename = "type")]
    key_type: String,
    #[serde(default)]
    supports_signing: bool,
    latest_version: u64,
    keys: BTreeMap<String, serde_json::Value>,
}

/// Resolves `hashivault://key`.
pub async fn public_key(
    client: &reqwest::Client,
    config: &VaultConfig,
    uri: &str,
    key: &str,
) -> Result<String, KmsError> {
    let credentials = |detail: &str| KmsError::Credentials {
        uri: uri.to_owned(),
        scheme: "hashivault",
        detail: detail.to_owned(),
    };
    let addr = config
        .addr
        .as_deref()
        .ok_or_else(|| credentials("set VAULT_ADDR to the Vault (or OpenBao) address"))?;
    let token = match &config.token {
        Some(token) => token.clone(),
        None => home_token().ok_or_else(|| credentials("set VAULT_TOKEN (or log in so that ~/.vault-token exists)"))?,
    };
    let url = format!(
        "{}/v1/{}/keys/{key}",
        addr.trim_end_matches('/'),
        config.transit_path.trim_matches('/')
    );
    // The answer lists the public key of every available version.
    let answer: Answer = http::json_within(
        uri,
        client.get(url).header("X-Vault-Token", token.expose()),
        http::MAX_LIST_ANSWER_BYTES,
    )
    .await?;
    let data = answer.data;
    if !data.supports_signing {
        return Err(KmsError::NotSigningKey {
            uri: uri.to_owned(),
            detail: format!("transit key type {} cannot sign", data.key_type),
        });
    }
    let bad = |detail: String| KmsError::Answer {
        uri: uri.to_owned(),
        detail,
    };
    let latest = data.latest_version.to_string();
    let public_key = data
        .keys
        .get(&latest)
        .and_then(|v| v.get("public_key"))
        .and_then(|v| v.as_str())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| bad(format!("no public key for the latest version {latest}")))?;
    if data.key_type == "ed25519" {
        // Vault answers Ed25519 keys as base64 of the raw 32 bytes.
        let raw = STANDARD
            .decode(public_key)
            .map_err(|e| bad(format!("Ed25519 key is not base64: {e}")))?;
        return pem::ed25519_pem(&raw).map_err(bad);
    }
    if !public_key.contains("-----BEGIN PUBLIC KEY-----") {
        return Err(bad("the public key is not a PEM PUBLIC KEY block".to_owned()));
    }
    Ok(public_key.to_owned())
}

fn home_token() -> Option<Secret> {
    let home = std::env::var_os("HOME")?;
    let token = std::fs::read_to_string(std::path::Path::new(&home).join(".vault-token")).ok()?;
    let token = token.trim();
    (!token.is_empty()).then(|| Secret::new(token))
}
