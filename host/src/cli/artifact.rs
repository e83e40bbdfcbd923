//! `cip annotate`, `cip inspect`, `cip push` and `cip pull`: the kwctl commands that publish a
//! policy, with the same flags.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::artifact::ArtifactError;
use crate::artifact::metadata::Metadata;
use crate::artifact::{
    self, PolicyRegistry, REGISTRY_SCHEME, load_credentials, manifest_annotations, parse_policy_uri, read_metadata,
};
use crate::registry::{RegistryError, Sources};

/// Write Kubewarden metadata into a policy module.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  cip annotate -m metadata.yml -u README.md -o annotated-policy.wasm policy.wasm")]
pub struct AnnotateArgs {
    /// The metadata file (Kubewarden's metadata.yml).
    #[arg(short = 'm', long = "metadata-path", value_name = "FILE")]
    pub metadata_path: PathBuf,
    /// A Markdown file stored as the `io.kubewarden.policy.usage` annotation.
    #[arg(short = 'u', long = "usage-path", value_name = "FILE")]
    pub usage_path: Option<PathBuf>,
    /// Where to write the annotated module.
    #[arg(short = 'o', long = "output-path", value_name = "FILE")]
    pub output_path: PathBuf,
    /// The policy module to annotate.
    #[arg(value_name = "WASM")]
    pub wasm_path: PathBuf,
}

/// Output formats of `cip inspect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    Yaml,
    Json,
}

/// Show the Kubewarden metadata of a policy module.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  cip inspect annotated-policy.wasm\n  \
                        cip inspect -o json registry://ghcr.io/cluster-image-policy/policies/cluster-image-policy:v0.1.0")]
pub struct InspectArgs {
    /// A module file, or a registry:// URI (pulled into the cache).
    #[arg(value_name = "WASM_OR_URI")]
    pub policy: String,
    /// Print the metadata as YAML or JSON instead of a summary.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<InspectFormat>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Push an annotated policy module to an OCI registry.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cip push annotated-policy.wasm registry://ghcr.io/org/cluster-image-policy:v0.1.0\n\n\
                        Prints the immutable reference to deploy: registry://HOST/REPO:TAG@sha256:…"
)]
pub struct PushArgs {
    /// The annotated module.
    #[arg(value_name = "WASM")]
    pub wasm_path: PathBuf,
    /// Destination, like registry://ghcr.io/org/policy:v1.
    #[arg(value_name = "URI")]
    pub uri: String,
    /// Push a module that carries no metadata.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// `text` prints the bare reference, `json` prints `{"immutable_ref": …}` (kwctl's formats).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = PushFormat::Text)]
    pub output: PushFormat,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Output formats of `cip push`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PushFormat {
    Text,
    Json,
}

/// Pull a policy module from an OCI registry.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  cip pull registry://ghcr.io/org/cluster-image-policy:v0.1.0\n  \
                        cip pull registry://ghcr.io/org/cluster-image-policy:v0.1.0 -o policy.wasm"
)]
pub struct PullArgs {
    /// Source, like registry://ghcr.io/org/policy:v1 or …@sha256:….
    #[arg(value_name = "URI")]
    pub uri: String,
    /// Also write the module to this file. Without it, as with kwctl, the module goes to the
    /// local policy store only (where `cip run registry://…` finds it).
    #[arg(short = 'o', long = "output-path", value_name = "FILE")]
    pub output_path: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How to reach registries, as kwctl's flags.
#[derive(Debug, Default, Args)]
pub struct RegistryArgs {
    /// kwctl's sources.yaml: hosts reached over plain HTTP, extra CAs per host.
    #[arg(long = "sources-path", value_name = "FILE")]
    pub sources_path: Option<PathBuf>,
    /// Directory holding a docker config.json with registry credentials (default: docker's own,
    /// `$DOCKER_CONFIG` or ~/.docker, when it exists).
    #[arg(long = "docker-config-json-path", value_name = "DIR")]
    pub docker_config_json_path: Option<PathBuf>,
}

impl RegistryArgs {
    /// The parsed sources file (empty when not given).
    pub fn sources(&self) -> anyhow::Result<Sources> {
        match &self.sources_path {
            Some(path) => Ok(Sources::from_file(path)?),
            None => Ok(Sources::default()),
        }
    }

    fn registry(&self) -> anyhow::Result<(PolicyRegistry, Sources)> {
        let credentials = load_credentials(self.docker_config_json_path.as_deref())?;
        let sources = self.sources()?;
        Ok((PolicyRegistry::new(&sources, credentials), sources))
    }
}

/// The error, plus a hint when the registry's certificate is not trusted (a private CA not listed
/// for that registry), or when an HTTPS connection failed to a host that may speak plain HTTP (a
/// local test registry, most of the time).
fn explain(error: ArtifactError, sources: &Sources) -> anyhow::Error {
    match &error {
        ArtifactError::Registry(RegistryError::Unreachable { registry, reason })
            if reason.contains("UnknownIssuer") || reason.contains("invalid peer certificate") =>
        {
            anyhow::anyhow!(
                "{error}\nhint: if a private CA issued {registry}'s certificate, list that CA under \
                 source_authorities.\"{registry}\" in a file given with --sources-path (a CA is trusted \
                 for the registry it is listed under only)"
            )
        }
        ArtifactError::Registry(RegistryError::Unreachable { registry, .. }) if !sources.is_insecure(registry) => {
            anyhow::anyhow!(
                "{error}\nhint: cip reaches registries over HTTPS; if {registry} serves plain HTTP, \
                 list it under insecure_sources in a file given with --sources-path"
            )
        }
        _ => anyhow::Error::new(error),
    }
}

/// Runs `cip annotate`.
pub fn run_annotate(args: &AnnotateArgs) -> anyhow::Result<()> {
    let module = read(&args.wasm_path)?;
    let metadata = std::fs::read_to_string(&args.metadata_path)
        .with_context(|| format!("cannot read {}", args.metadata_path.display()))?;
    let usage = args
        .usage_path
        .as_deref()
        .map(|path| std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display())))
        .transpose()?;
    let (annotated, written) = artifact::annotate(&module, &metadata, usage)
        .with_context(|| format!("cannot annotate {}", args.wasm_path.display()))?;
    if written.host_capabilities.is_none() {
        eprintln!(
            "warning: {} lists no hostCapabilities: kwctl and PolicyServers gating host capabilities \
             cannot tell which calls the policy makes",
            args.metadata_path.display()
        );
    }
    std::fs::write(&args.output_path, annotated)
        .with_context(|| format!("cannot write {}", args.output_path.display()))?;
    Ok(())
}

/// Runs `cip inspect`, printing to stdout.
pub async fn run_inspect(args: &InspectArgs) -> anyhow::Result<()> {
    // A registry module's checked bytes, never its stored file read again.
    let module = if args.policy.starts_with(REGISTRY_SCHEME) {
        let sources = args.registry.sources()?;
        artifact::fetch_policy(&args.policy, &sources, args.registry.docker_config_json_path.as_deref())
            .await
            .map_err(|error| explain(error, &sources))
            .with_context(|| format!("cannot fetch {}", args.policy))?
            .bytes
    } else {
        read(Path::new(&args.policy))?
    };
    let Some(metadata) = read_metadata(&module).with_context(|| format!("cannot read {}", args.policy))? else {
        bail!(
            "{} carries no Kubewarden metadata: annotate it with `cip annotate`",
            args.policy
        );
    };
    print!("{}", render_metadata(&metadata, args.output)?);
    Ok(())
}

/// Runs `cip push`, printing the immutable reference of the pushed artifact.
pub async fn run_push(args: &PushArgs) -> anyhow::Result<()> {
    let module = read(&args.wasm_path)?;
    let annotations = match read_metadata(&module)? {
        Some(metadata) => manifest_annotations(&metadata),
        None if args.force => {
            eprintln!(
                "warning: pushing {} without Kubewarden metadata",
                args.wasm_path.display()
            );
            Default::default()
        }
        None => bail!(
            "{} is not annotated: run `cip annotate` first, or push with --force",
            args.wasm_path.display()
        ),
    };
    let (registry, sources) = args.registry.registry()?;
    let pushed = registry
        .push(&module, &args.uri, annotations)
        .await
        .map_err(|error| explain(error, &sources))
        .with_context(|| format!("cannot push {} to {}", args.wasm_path.display(), args.uri))?;
    match args.output {
        PushFormat::Json => println!("{}", serde_json::json!({ "immutable_ref": pushed.uri })),
        PushFormat::Text => println!("{}", pushed.uri),
    }
    Ok(())
}

/// Runs `cip pull`: into the local policy store (as `kwctl pull`), and to the output path
/// when one is given.
pub async fn run_pull(args: &PullArgs) -> anyhow::Result<()> {
    let reference = parse_policy_uri(&args.uri)?;
    let Some(output_path) = &args.output_path else {
        let (registry, sources) = args.registry.registry()?;
        let stored = artifact::PolicyStore::default_location()?
            .fetch(&args.uri, &registry)
            .await
            .map_err(|error| explain(error, &sources))
            .with_context(|| format!("cannot pull {}", args.uri))?;
        eprintln!("pulled {} into the policy store: {}", args.uri, stored.display());
        return Ok(());
    };
    let (registry, sources) = args.registry.registry()?;
    let pulled = registry
        .pull(&reference)
        .await
        .map_err(|error| explain(error, &sources))
        .with_context(|| format!("cannot pull {}", args.uri))?;
    std::fs::write(output_path, &pulled.module).with_context(|| format!("cannot write {}", output_path.display()))?;
    let pinned = match reference.digest() {
        Some(_) => args.uri.clone(),
        None => format!("{}@{}", args.uri, pulled.digest),
    };
    eprintln!("pulled {pinned} to {}", output_path.display());
    Ok(())
}

/// The metadata as `cip inspect` prints it: YAML, pretty JSON, or a summary for people.
pub fn render_metadata(metadata: &Metadata, format: Option<InspectFormat>) -> anyhow::Result<String> {
    match format {
        Some(InspectFormat::Json) => Ok(serde_json::to_string_pretty(metadata)? + "\n"),
        Some(InspectFormat::Yaml) => Ok(serde_yaml::to_string(metadata)?),
        None => render_summary(metadata),
    }
}

fn render_summary(metadata: &Metadata) -> anyhow::Result<String> {
    const DETAILS: [(&str, &str); 10] = [
        ("title", "io.kubewarden.policy.title"),
        ("version", "io.kubewarden.policy.version"),
        ("description", "io.kubewarden.policy.description"),
        ("author", "io.kubewarden.policy.author"),
        ("url", "io.kubewarden.policy.url"),
        ("source", "io.kubewarden.policy.source"),
        ("license", "io.kubewarden.policy.license"),
        ("OCI repository", "io.kubewarden.policy.ociUrl"),
        ("category", "io.kubewarden.policy.category"),
        ("severity", "io.kubewarden.policy.severity"),
    ];
    let mut out = String::from("Details\n");
    for (label, key) in DETAILS {
        writeln!(
            out,
            "{:<20}{}",
            format!("{label}:"),
            metadata.annotation(key).unwrap_or("-")
        )?;
    }
    let protocol = match &metadata.protocol_version {
        Some(version) => serde_json::to_value(version)?.as_str().unwrap_or_default().to_owned(),
        None => "-".to_owned(),
    };
    for (label, value) in [
        ("execution mode", metadata.execution_mode.to_string()),
        ("protocol version", protocol),
        ("mutating", metadata.mutating.to_string()),
        ("background audit", metadata.background_audit.to_string()),
        ("context aware", metadata.is_context_aware().to_string()),
        (
            "host capabilities",
            metadata.host_capabilities.as_ref().map_or_else(
                || "-".to_owned(),
                |calls| calls.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
            ),
        ),
    ] {
        writeln!(out, "{:<20}{value}", format!("{label}:"))?;
    }
    let shown: Vec<&str> = DETAILS
        .iter()
        .map(|(_, key)| *key)
        .chain(["io.kubewarden.policy.usage"])
        .collect();
    let others: Vec<(&String, &String)> = metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(key, _)| !shown.contains(&key.as_str()))
        .collect();
    if !others.is_empty() {
        out.push_str("\nAnnotations\n");
        for (key, value) in others {
            writeln!(out, "{key}: {value}")?;
        }
    }
    out.push_str("\nRules\n");
    out.push_str(&serde_yaml::to_string(&metadata.rules)?);
    if let Some(usage) = metadata.annotation("io.kubewarden.policy.usage") {
        out.push_str("\nUsage\n");
        out.push_str(usage.trim_end());
        out.push('\n');
    }
    Ok(out)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
