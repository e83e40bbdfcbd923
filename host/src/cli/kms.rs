//! `cip kms resolve`: fills `key.data` from each `key.kms` so that a policy naming KMS keys
//! runs on hosts without KMS access (Kubewarden's policy-server), and the flags every
//! evaluating command (`run`, `bench`, `verify`, `provider`) shares to reach KMSs.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_yaml::Value;

use super::duration::parse_duration;
use crate::kms::{KmsConfig, KmsResolver};

/// How `cip` reaches KMSs. Credentials come from each cloud's environment (see docs/kms.md).
#[derive(Debug, Args)]
pub struct KmsArgs {
    /// Longest one KMS key look-up may take (an evaluation is still cut at its --timeout).
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub kms_timeout: Duration,
    /// How long a KMS public key is reused; a rotated key is picked up after at most this.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub kms_cache_ttl: Duration,
    /// The HOST:PORT of an awskms://HOST:PORT/… or azurekms://HOST:PORT/… URI to reach over
    /// plain HTTP instead of HTTPS (local emulators); repeat for several.
    #[arg(long, value_name = "HOST:PORT")]
    pub kms_insecure_endpoint: Vec<String>,
    /// AWS KMS endpoint URL for awskms:/// URIs (default: AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL,
    /// else https://kms.REGION.amazonaws.com).
    // The text is also clap's help, where a URL in `<…>` would be printed with its brackets.
    #[allow(rustdoc::bare_urls)]
    #[arg(long, value_name = "URL")]
    pub kms_aws_endpoint: Option<String>,
    /// Google Cloud KMS REST endpoint.
    #[arg(long, value_name = "URL", env = "CIP_KMS_GCP_ENDPOINT")]
    pub kms_gcp_endpoint: Option<String>,
    /// Azure Key Vault endpoint replacing https://VAULT.
    #[arg(long, value_name = "URL", env = "CIP_KMS_AZURE_ENDPOINT")]
    pub kms_azure_endpoint: Option<String>,
}

impl KmsArgs {
    /// The environment's KMS configuration with these flags applied.
    pub fn config(&self) -> KmsConfig {
        let mut config = KmsConfig::from_env();
        config.timeout = self.kms_timeout;
        config.cache_ttl = self.kms_cache_ttl;
        config.insecure_endpoints.clone_from(&self.kms_insecure_endpoint);
        if let Some(endpoint) = &self.kms_aws_endpoint {
            config.aws.endpoint_url = Some(endpoint.clone());
        }
        if let Some(endpoint) = &self.kms_gcp_endpoint {
            config.gcp.endpoint.clone_from(endpoint);
        }
        if let Some(endpoint) = &self.kms_azure_endpoint {
            config.azure.endpoint = Some(endpoint.clone());
        }
        config
    }

    /// A resolver with this configuration.
    pub fn resolver(&self) -> anyhow::Result<Arc<KmsResolver>> {
        Ok(Arc::new(
            KmsResolver::new(self.config()).context("cannot prepare the KMS client")?,
        ))
    }
}

/// KMS keys.
#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Fill key.data from each key.kms (the URI kept in an annotation), for hosts without KMS access.
    Resolve(ResolveArgs),
}

/// Fill `key.data` from `key.kms` in settings or ClusterImagePolicy YAML.
#[derive(Debug, Args)]
#[command(
    after_help = "Reads policy settings ({\"policies\": [...]}), ClusterImagePolicy documents, or
Kubewarden (Cluster)AdmissionPolicy documents whose spec.settings.policies holds them; several YAML
documents may follow each other. Every key.kms is resolved to its public key and written to key.data
in its place; the URI is kept as a label in the policy's metadata.annotations
(cluster-image-policy/kms-keys: {\"AUTHORITY\": \"URI\"}), so that the policy verifies with data, never
asks a KMS, and is still understood by policy-controller (which, like cip, refuses data and kms
together). Run it again on its own output after a key rotation: the keys named by the annotation are
resolved again. YAML comments are not kept.

Examples:
  cip kms resolve -f settings.yaml -o settings.yaml
  cip kms resolve -f cluster-image-policies.yaml > resolved.yaml"
)]
pub struct ResolveArgs {
    /// Settings or policy YAML.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: PathBuf,
    /// Where to write the result (stdout when absent or `-`).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub kms: KmsArgs,
}

/// Runs `cip kms …`.
pub fn run(command: &KmsCommand) -> anyhow::Result<()> {
    match command {
        KmsCommand::Resolve(args) => resolve(args),
    }
}

/// The annotation of a policy's metadata naming the KMS URI of each resolved authority:
/// `{"AUTHORITY NAME": "URI"}` as JSON. A label only: the module never reads it.
pub const KMS_KEYS_ANNOTATION: &str = "cluster-image-policy/kms-keys";

/// One `key` block that names a KMS key, by `key.kms` or by the annotation.
struct Found {
    /// Where it is, for messages (`document 0: policies[1].spec.authorities[0].key`).
    path: String,
    uri: String,
}

fn resolve(args: &ResolveArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, d)| {
            serde::Deserialize::deserialize(d)
                .with_context(|| format!("{}: document {i} is not valid YAML", args.file.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();

    let mut found = Vec::new();
    for (i, doc) in docs.iter_mut().enumerate() {
        for_each_policy(doc, &format!("document {i}: "), &mut |path, policy| {
            for key in kms_keys(policy, path) {
                found.push(key);
            }
        });
    }
    if found.is_empty() {
        bail!(
            "{}: no key.kms found, nor a {KMS_KEYS_ANNOTATION} annotation (nothing to resolve)",
            args.file.display()
        );
    }

    let resolver = args.kms.resolver()?;
    let runtime = crate::async_runtime::multi_thread(2)
        .build()
        .context("cannot start the async runtime")?;
    let mut resolved = std::collections::HashMap::new();
    let mut failures = Vec::new();
    for item in &found {
        if resolved.contains_key(&item.uri) {
            continue;
        }
        match runtime.block_on(resolver.public_key(&item.uri)) {
            Ok(pem) => {
                resolved.insert(item.uri.clone(), pem);
            }
            Err(error) => failures.push(format!("{}: {error}", item.path)),
        }
    }
    if !failures.is_empty() {
        bail!(
            "cannot resolve every KMS key, nothing written:\n  {}",
            failures.join("\n  ")
        );
    }

    for (i, doc) in docs.iter_mut().enumerate() {
        for_each_policy(doc, &format!("document {i}: "), &mut |_, policy| {
            write_back(policy, &resolved);
        });
    }
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(doc).context("cannot write YAML")?);
    }
    match args.output.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::write(path, &out).with_context(|| format!("cannot write {}", path.display()))?;
        }
        _ => std::io::stdout()
            .write_all(out.as_bytes())
            .context("cannot write to stdout")?,
    }
    for item in &found {
        eprintln!("resolved {} → {}.data", item.uri, item.path);
    }
    Ok(())
}

/// The name the module gives an authority: its `name`, else `authority-INDEX`.
fn authority_name(authority: &Value, index: usize) -> String {
    authority
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| format!("authority-{index}"), str::to_owned)
}

/// The policy's annotation, parsed (`{}` when absent or not a JSON object of strings).
fn annotation(policy: &Value) -> std::collections::BTreeMap<String, String> {
    policy
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(KMS_KEYS_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// The KMS keys of one policy: `key.kms`, and keys the annotation names (a previous run).
fn kms_keys(policy: &Value, path: &str) -> Vec<Found> {
    let labels = annotation(policy);
    let Some(Value::Sequence(list)) = policy.get("spec").and_then(|s| s.get("authorities")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, authority) in list.iter().enumerate() {
        let Some(key) = authority.get("key") else { continue };
        let uri = key
            .get("kms")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| labels.get(&authority_name(authority, i)).cloned());
        if let Some(uri) = uri {
            out.push(Found {
                path: format!("{path}.authorities[{i}].key"),
                uri,
            });
        }
    }
    out
}

/// Replaces each `key.kms` (or annotated key) by `key.data`, recording the URIs in the
/// annotation.
fn write_back(policy: &mut Value, resolved: &std::collections::HashMap<String, String>) {
    let mut labels = annotation(policy);
    let Some(Value::Sequence(list)) = policy.get_mut("spec").and_then(|s| s.get_mut("authorities")) else {
        return;
    };
    for (i, authority) in list.iter_mut().enumerate() {
        let name = authority_name(authority, i);
        let Some(Value::Mapping(key)) = authority.get_mut("key") else {
            continue;
        };
        let uri = match key.remove("kms") {
            Some(Value::String(uri)) => uri,
            _ => match labels.get(&name) {
                Some(uri) => uri.clone(),
                None => continue,
            },
        };
        if let Some(pem) = resolved.get(&uri) {
            key.insert(Value::from("data"), Value::from(pem.clone()));
            labels.insert(name, uri);
        }
    }
    if labels.is_empty() {
        return;
    }
    let text = serde_json::to_string(&labels).unwrap_or_default();
    let Value::Mapping(policy) = policy else { return };
    let metadata = policy
        .entry(Value::from("metadata"))
        .or_insert_with(|| Value::Mapping(serde_yaml::Mapping::new()));
    if !metadata.is_mapping() {
        *metadata = Value::Mapping(serde_yaml::Mapping::new());
    }
    let Value::Mapping(metadata) = metadata else { return };
    let annotations = metadata
        .entry(Value::from("annotations"))
        .or_insert_with(|| Value::Mapping(serde_yaml::Mapping::new()));
    if !annotations.is_mapping() {
        *annotations = Value::Mapping(serde_yaml::Mapping::new());
    }
    if let Value::Mapping(annotations) = annotations {
        annotations.insert(Value::from(KMS_KEYS_ANNOTATION), Value::from(text));
    }
}

/// Calls `f` with the path of the `spec` and the value of every policy in `doc`: settings
/// (`policies`), a ClusterImagePolicy, or a Kubewarden policy (`spec.settings.policies`).
fn for_each_policy(doc: &mut Value, prefix: &str, f: &mut dyn FnMut(&str, &mut Value)) {
    let is_cip = doc.get("kind").and_then(Value::as_str) == Some("ClusterImagePolicy");
    if is_cip {
        f(&format!("{prefix}spec"), doc);
        return;
    }
    if let Some(Value::Sequence(list)) = doc.get_mut("policies") {
        for (i, policy) in list.iter_mut().enumerate() {
            f(&format!("{prefix}policies[{i}].spec"), policy);
        }
    }
    if let Some(Value::Sequence(list)) = doc
        .get_mut("spec")
        .and_then(|s| s.get_mut("settings"))
        .and_then(|s| s.get_mut("policies"))
    {
        for (i, policy) in list.iter_mut().enumerate() {
            f(&format!("{prefix}spec.settings.policies[{i}].spec"), policy);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const URI: &str = "hashivault://cosign";
    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";

    fn found(doc: &mut Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for_each_policy(doc, "document 0: ", &mut |path, policy| {
            out.extend(kms_keys(policy, path).into_iter().map(|f| (f.path, f.uri)));
        });
        out
    }

    fn write(doc: &mut Value) {
        let resolved = HashMap::from([(URI.to_owned(), PEM.to_owned())]);
        for_each_policy(doc, "", &mut |_, policy| write_back(policy, &resolved));
    }

    #[test]
    fn every_document_shape_is_resolved_and_annotated() {
        let policy = "metadata: {name: p}\nspec:\n  authorities:\n  - key: {data: \"x\"}\n  - name: kms\n    key: {kms: \"hashivault://cosign\"}\n";
        let indented = policy.replace('\n', "\n    ");
        for (text, spec_path) in [
            (
                format!("apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\n{policy}"),
                "spec",
            ),
            (format!("policies:\n  - {indented}"), "policies[0].spec"),
            (
                format!(
                    "kind: ClusterAdmissionPolicy\nspec:\n  settings:\n    policies:\n      - {}",
                    policy.replace('\n', "\n        ")
                ),
                "spec.settings.policies[0].spec",
            ),
        ] {
            let mut doc: Value = serde_yaml::from_str(&text).expect("YAML");
            assert_eq!(
                found(&mut doc),
                vec![(format!("document 0: {spec_path}.authorities[1].key"), URI.to_owned())],
                "{text}"
            );
            write(&mut doc);
            let out = serde_yaml::to_string(&doc).expect("YAML");
            let mut again: Value = serde_yaml::from_str(&out).expect("YAML");
            // The annotation names the key for the next run; kms is gone, data is the key.
            assert_eq!(
                found(&mut again),
                vec![(format!("document 0: {spec_path}.authorities[1].key"), URI.to_owned())],
                "{out}"
            );
            assert!(!out.contains("kms: hashivault"), "{out}");
            assert!(
                out.contains("cluster-image-policy/kms-keys: '{\"kms\":\"hashivault://cosign\"}'"),
                "{out}"
            );
            assert!(out.contains("data: x"), "the hand-written key is untouched: {out}");
        }
    }

    #[test]
    fn a_policy_without_metadata_gets_one() {
        let mut doc: Value =
            serde_yaml::from_str("policies:\n- spec:\n    authorities:\n    - key: {kms: \"hashivault://cosign\"}\n")
                .expect("YAML");
        write(&mut doc);
        let annotation = &doc["policies"][0]["metadata"]["annotations"][KMS_KEYS_ANNOTATION];
        assert_eq!(annotation.as_str(), Some("{\"authority-0\":\"hashivault://cosign\"}"));
        assert_eq!(
            doc["policies"][0]["spec"]["authorities"][0]["key"]["data"].as_str(),
            Some(PEM)
        );
    }
}
