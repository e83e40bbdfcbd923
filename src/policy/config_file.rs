//! `fetchConfigFile`: the image configs a CIP-level policy sees under `config`.
//!
//! policy-controller (`getConfigs` in `pkg/webhook/validator.go`) reads what the image
//! reference names. An image manifest gives its config; an image index (OCI index or Docker
//! manifest list) gives the configs of **every** manifest it lists, nested indexes included,
//! attestation manifests too (buildkit's, whose config says `unknown/unknown`), and one failed
//! read fails the policy. Each config is keyed by its own `os`, `architecture`, `variant` and
//! `os.version` (`normalizeArchitecture`: go-containerregistry's `Platform.String`), not by the
//! index's `platform` fields. So a policy about `config: "linux/arm64": …` judges the arm64
//! config of a multi-platform image, whatever platform the host runs on.
//!
//! Kubewarden's `oci/v1/oci_manifest_config` answers one config: at an index, the host picks
//! the manifest of its own platform (oci-client's platform resolver), and fails when the index
//! has none. Read through it alone, a constraint about another platform would hold vacuously.
//! The module reads as policy-controller does with the stock capabilities:
//!
//! - `oci_manifest_config` at the digest first: for an image manifest the host answers with that
//!   very digest, and one call is all (what a single-platform image always cost);
//! - when the host answers another digest (it resolved an index to its platform) or fails (an
//!   index without its platform), `oci_manifest` at the digest tells what the digest names; for an
//!   index, every listed manifest is read the same way at `<repository>@<its digest>` (the
//!   config already answered for the host's platform is reused).
//!
//! An image (an index and the ones it nests) may list at most [`MAX_MANIFESTS`] manifests: a
//! larger one fails the policy before anything it lists is read, so that one image cannot make
//! an admission read without bound.

use serde_json::{Map, Value};

use crate::host::{
    Capability, HostCalls, KUBEWARDEN_MANIFEST_DIGEST, KUBEWARDEN_OCI_MANIFEST, KUBEWARDEN_OCI_MANIFEST_CONFIG,
};
use crate::policy::go_json::GoReadError;
use crate::policy::image_config;
use crate::policy::numbers;
use crate::policy::platform::Platform;
use crate::reference::{ImageReference, is_usable_digest};

/// The most manifests whose configs are read for one image, those of nested indexes included
/// (each nested index counts as one of its parent's): 64 is far above the platforms of any
/// published multi-platform image (a platform and its attestation manifest are two).
pub const MAX_MANIFESTS: usize = 64;

/// The platform of buildkit's attestation manifests, which no node runs.
const UNRUNNABLE: &str = "unknown/unknown";

/// Why the configs of an image could not be read: the policy fails with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The host failed the call of `capability` about `image`, for `reason`.
    Host {
        capability: Capability,
        image: String,
        reason: String,
    },
    /// The host's answer of `capability` about `image` cannot be read.
    Unreadable {
        capability: Capability,
        image: String,
        reason: String,
    },
    /// The index `index` lists `listed` manifests, more than the `left` still to read.
    TooManyManifests { index: String, listed: usize, left: usize },
    /// The index `index` lists a manifest by a digest the module does not read.
    UnusableDigest { index: String, digest: String },
    /// `image` names an image manifest, but the host answered the config of another one,
    /// `answered` (its digest).
    OtherManifest { image: String, answered: String },
    /// The config of `image` is not one go-containerregistry reads, or not read the same from
    /// the host's answer ([`image_config`]).
    NotAsGoReads { image: String, error: GoReadError },
    /// `image`'s config says `platform`, as another manifest's config does, and they differ.
    PlatformTwice { image: String, platform: String },
    /// The index lists `image` for the platform `listed`; its config says `config`, which a
    /// node normalises to another.
    ListedOtherwise {
        image: String,
        listed: String,
        config: String,
    },
    /// `image`'s config names its `os/architecture` as `config`, which a node names `node`.
    NotANodePlatform {
        image: String,
        config: String,
        node: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host {
                capability,
                image,
                reason,
            } => write!(f, "{image}: host capability {capability} failed: {reason}"),
            Self::Unreadable {
                capability,
                image,
                reason,
            } => write!(
                f,
                "{image}: unreadable answer from host capability {capability}: {reason}"
            ),
            Self::TooManyManifests { index, listed, left } if *left == MAX_MANIFESTS => write!(
                f,
                "the image index {index} lists {listed} manifests, more than the {MAX_MANIFESTS} whose configs \
                 are read for one image: refused, so that one image cannot make an admission read without bound"
            ),
            Self::TooManyManifests { index, listed, left } => write!(
                f,
                "the nested image index {index} lists {listed} manifests, more than the {left} left of the \
                 {MAX_MANIFESTS} whose configs are read for one image: refused, so that one image cannot make an \
                 admission read without bound"
            ),
            Self::UnusableDigest { index, digest } => write!(
                f,
                "the image index {index} lists a manifest by digest {digest:?}: only sha256 digests are read"
            ),
            Self::OtherManifest { image, answered } => write!(
                f,
                "{image} names an image manifest, but host capability {KUBEWARDEN_OCI_MANIFEST_CONFIG} answered \
                 the config of another one ({answered})"
            ),
            Self::PlatformTwice { image, platform } => write!(
                f,
                "{image}: its config is for {platform}, as another manifest's of the image is, and they differ: \
                 policy-controller judges one of them at random and a node runs the one its index entry names, \
                 so the image is refused"
            ),
            Self::NotANodePlatform { image, config, node } => write!(
                f,
                "{image}: its config says {config}, which a node runs as {node}: a policy about {node} would not \
                 judge it, so the image is refused"
            ),
            Self::ListedOtherwise { image, listed, config } => write!(
                f,
                "{image}: the index lists it for {listed}, but its config says {config}: a node runs it as {listed}, \
                 and policy-controller judges it as {config}, so the image is refused"
            ),
            Self::NotAsGoReads { image, error } => write!(
                f,
                "{image}: its image config is not read here as policy-controller and the container runtime read it: {error}"
            ),
        }
    }
}

/// The `config` of the input document: the config of every manifest `reference` names at
/// `digest` (the verified digest; the reference's own when none was verified), keyed
/// `os[/architecture][/variant][:os.version]`, with the digest read.
///
/// Without either (only static authorities passed, the image written by tag) the host is asked
/// first which digest the tag names (`oci/v1/manifest_digest`) and the image is read at that
/// digest: every manifest of an index then comes from one index, whatever the tag does
/// meanwhile, and the caller pins the image to the digest judged, so that the node runs what
/// the policy saw (policy-controller resolves every tag to a digest before admission).
pub fn read(
    reference: &ImageReference,
    digest: Option<&str>,
    host: &mut dyn HostCalls,
) -> Result<(Value, String), ConfigError> {
    let mut reader = Reader {
        host,
        repository: reference.name(),
        left: MAX_MANIFESTS,
        configs: Map::new(),
    };
    let digest = match digest.or(reference.digest()) {
        Some(digest) => digest.to_owned(),
        None => reader.tagged_digest(&reference.verification_target())?,
    };
    reader.at_digest(&digest, None, None)?;
    Ok((Value::Object(reader.configs), digest))
}

/// The digest the tag `reference` is written with names now, as the host answers
/// `oci/v1/manifest_digest` (`decide` asks it when two authorities verified different digests of
/// the tag).
pub fn tagged_digest(reference: &ImageReference, host: &mut dyn HostCalls) -> Result<String, ConfigError> {
    Reader {
        host,
        repository: reference.name(),
        left: MAX_MANIFESTS,
        configs: Map::new(),
    }
    .tagged_digest(&reference.verification_target())
}

/// One image's reading: where, how many manifests are left to read, what was read.
struct Reader<'a> {
    host: &'a mut dyn HostCalls,
    /// `registry/repository`: every manifest of the image is read there, by digest.
    repository: &'a str,
    /// How many more manifests indexes may list ([`MAX_MANIFESTS`] at first).
    left: usize,
    configs: Map<String, Value>,
}

impl Reader<'_> {
    /// The configs of what `repository@digest` names. `known` is a config the host already
    /// answered for a manifest of the index that lists `digest` (reused when it is this one).
    fn at_digest(
        &mut self,
        digest: &str,
        known: Option<&ManifestAndConfig>,
        listed: Option<&Platform>,
    ) -> Result<(), ConfigError> {
        let image = format!("{}@{digest}", self.repository);
        if let Some(answer) = known.filter(|answer| answer.digest == digest) {
            return self.keep(&image, answer.config.clone(), listed);
        }
        let first = match self.manifest_and_config(&image) {
            // The host answers an image manifest's config with the manifest's own digest.
            Ok(answer) if answer.digest == digest => return self.keep(&image, answer.config, listed),
            other => other,
        };
        // Another digest: the host resolved an index to its own platform. A failure: maybe an
        // index without the host's platform, or a registry failure. What `digest` names tells.
        let named = match self.manifest(&image) {
            Ok(named) => named,
            // When the config could not be read either, its failure is the reason: the manifest
            // was asked only to tell an index from an image.
            Err(manifest_failure) => return Err(first.err().unwrap_or(manifest_failure)),
        };
        match (named, first) {
            (Manifest::Index(entries), first) => self.index(&image, entries, first.ok().as_ref()),
            (Manifest::Image, Err(failure)) => Err(failure),
            (Manifest::Image, Ok(answer)) => Err(ConfigError::OtherManifest {
                image,
                answered: answer.digest,
            }),
        }
    }

    /// The digest the tag `image` names, as the host answers it (`{"digest": "sha256:…"}`).
    fn tagged_digest(&mut self, image: &str) -> Result<String, ConfigError> {
        let unreadable = |reason: String| ConfigError::Unreadable {
            capability: KUBEWARDEN_MANIFEST_DIGEST,
            image: image.to_owned(),
            reason,
        };
        let mut answer = self.ask(KUBEWARDEN_MANIFEST_DIGEST, image)?;
        match answer.get_mut("digest").map(Value::take) {
            Some(Value::String(digest)) if is_usable_digest(&digest) => Ok(digest),
            Some(Value::String(digest)) => Err(unreadable(format!(
                "the digest {digest:?} is not a sha256 digest: only sha256 digests are read"
            ))),
            _ => Err(unreadable("`digest` (a string) is missing".to_owned())),
        }
    }

    /// The configs of every manifest the index `image` lists, in its order.
    fn index(
        &mut self,
        image: &str,
        entries: Vec<Value>,
        known: Option<&ManifestAndConfig>,
    ) -> Result<(), ConfigError> {
        if entries.len() > self.left {
            return Err(ConfigError::TooManyManifests {
                index: image.to_owned(),
                listed: entries.len(),
                left: self.left,
            });
        }
        self.left -= entries.len();
        // Every digest is checked before any manifest is read: a refused index costs no more calls.
        let mut listed = Vec::with_capacity(entries.len());
        for entry in &entries {
            let Some(digest) = entry.get("digest").and_then(Value::as_str) else {
                return Err(ConfigError::Unreadable {
                    capability: KUBEWARDEN_OCI_MANIFEST,
                    image: image.to_owned(),
                    reason: "a manifest of the index has no `digest`".to_owned(),
                });
            };
            if !is_usable_digest(digest) {
                return Err(ConfigError::UnusableDigest {
                    index: image.to_owned(),
                    digest: digest.to_owned(),
                });
            }
            listed.push((digest, listed_platform(entry)));
        }
        for (digest, platform) in listed {
            self.at_digest(digest, known, platform.as_ref())?;
        }
        Ok(())
    }

    /// Keeps `config` under its platform, as policy-controller reads it
    /// ([`image_config::go_view`]). Two manifests whose configs say one platform and differ are
    /// refused: policy-controller keeps the config its goroutines answer last, an arbitrary one,
    /// and a node runs the manifest its index entry's `platform` names, which need not be the
    /// config's (an entry `unknown/unknown` whose config says `linux/amd64` beside the real
    /// `linux/amd64` one), so no one config can stand for the platform. Except `unknown/unknown`,
    /// which no node runs: buildkit writes one attestation manifest of it per platform, each with
    /// its own layers.
    ///
    /// A manifest an index lists for an `os` and `architecture` must have a config of those: a
    /// node picks it by the index entry, policy-controller keys it by its config, so a config
    /// saying another platform (`unknown/unknown` on the manifest listed for `linux/amd64`) would
    /// leave the manifest the node runs unjudged.
    fn keep(&mut self, image: &str, config: Map<String, Value>, listed: Option<&Platform>) -> Result<(), ConfigError> {
        let config = image_config::go_view(config).map_err(|error| ConfigError::NotAsGoReads {
            image: image.to_owned(),
            error,
        })?;
        let says = Platform::of(Some(&config));
        let platform = platform_key(&config);
        if !says.os.is_empty() && platform != UNRUNNABLE && !says.names_as_a_node_does() {
            let node = says.normalized();
            return Err(ConfigError::NotANodePlatform {
                image: image.to_owned(),
                config: format!("{}/{}", says.os, says.architecture),
                node: format!("{}/{}", node.os, node.architecture),
            });
        }
        if let Some(listed) = listed
            && listed.normalized() != says.normalized()
        {
            return Err(ConfigError::ListedOtherwise {
                image: image.to_owned(),
                listed: spelled(listed),
                config: spelled(&says),
            });
        }
        match self.configs.get(&platform) {
            None => {
                self.configs.insert(platform, Value::Object(config));
            }
            Some(Value::Object(kept)) if *kept == config || platform == UNRUNNABLE => {}
            Some(_) => {
                return Err(ConfigError::PlatformTwice {
                    image: image.to_owned(),
                    platform,
                });
            }
        }
        Ok(())
    }

    /// `oci/v1/oci_manifest_config` of `image`.
    fn manifest_and_config(&mut self, image: &str) -> Result<ManifestAndConfig, ConfigError> {
        let answer = self.ask(KUBEWARDEN_OCI_MANIFEST_CONFIG, image)?;
        ManifestAndConfig::read(answer).map_err(|reason| ConfigError::Unreadable {
            capability: KUBEWARDEN_OCI_MANIFEST_CONFIG,
            image: image.to_owned(),
            reason,
        })
    }

    /// `oci/v1/oci_manifest` of `image`.
    fn manifest(&mut self, image: &str) -> Result<Manifest, ConfigError> {
        let answer = self.ask(KUBEWARDEN_OCI_MANIFEST, image)?;
        Manifest::read(answer).map_err(|reason| ConfigError::Unreadable {
            capability: KUBEWARDEN_OCI_MANIFEST,
            image: image.to_owned(),
            reason,
        })
    }

    /// Calls `capability` about `image`; its answer as JSON, read as a `Value` from text: the
    /// module already holds that parser (for the admitted object), not one per answer type.
    /// A number a 64-bit float does not keep makes it unreadable: a policy reads the config
    /// (`policy::numbers`).
    fn ask(&mut self, capability: Capability, image: &str) -> Result<Value, ConfigError> {
        // A string serialises infallibly.
        let payload = serde_json::to_vec(image).unwrap_or_default();
        let answer = self
            .host
            .call(capability, &payload)
            .map_err(|reason| ConfigError::Host {
                capability,
                image: image.to_owned(),
                reason,
            })?;
        std::str::from_utf8(&answer)
            .map_err(|e| e.to_string())
            .and_then(|text| numbers::read_input(text).map_err(|e| e.to_string()))
            .map_err(|reason| ConfigError::Unreadable {
                capability,
                image: image.to_owned(),
                reason,
            })
    }
}

/// The platform an index entry lists its manifest for (`platform`), when it says `os` and
/// `architecture` and a node could run it: not `unknown/unknown` (buildkit's attestation
/// manifests, an artifact beside the images, whose config may be `{}`).
fn listed_platform(entry: &Value) -> Option<Platform> {
    let listed = Platform::of(entry.get("platform").and_then(Value::as_object));
    let runnable = !listed.os.is_empty()
        && !listed.architecture.is_empty()
        && format!("{}/{}", listed.os, listed.architecture) != UNRUNNABLE;
    runnable.then_some(listed)
}

/// `os/architecture[/variant]`, as written.
fn spelled(platform: &Platform) -> String {
    let mut spelled = format!("{}/{}", platform.os, platform.architecture);
    if !platform.variant.is_empty() {
        spelled.push('/');
        spelled.push_str(&platform.variant);
    }
    spelled
}

/// The key of a config read as Go reads it ([`image_config::go_view`]: `os` and `architecture`
/// are strings, `variant` and `os.version` strings or absent), as policy-controller's
/// `normalizeArchitecture` writes it with go-containerregistry's `Platform.String`: `os`, then
/// `/architecture`, `/variant` and `:os.version` when not empty; the empty string when `os` is
/// empty.
fn platform_key(config: &Map<String, Value>) -> String {
    let field = |name: &str| config.get(name).and_then(Value::as_str).unwrap_or_default();
    let os = field("os");
    if os.is_empty() {
        return String::new();
    }
    let mut key = os.to_owned();
    for (separator, part) in [
        ("/", field("architecture")),
        ("/", field("variant")),
        (":", field("os.version")),
    ] {
        if !part.is_empty() {
            key.push_str(separator);
            key.push_str(part);
        }
    }
    key
}

/// The answer of `oci/v1/oci_manifest_config` (policy-evaluator's `ManifestAndConfigResponse`:
/// the config is any JSON the registry holds, not the SDK's typed image config), as far as it is
/// read.
struct ManifestAndConfig {
    /// The digest of the image manifest whose config this is.
    digest: String,
    config: Map<String, Value>,
}

impl ManifestAndConfig {
    fn read(answer: Value) -> Result<Self, String> {
        let Value::Object(mut answer) = answer else {
            return Err("not a JSON object".to_owned());
        };
        // Taken out with `Value::take` rather than `Map::remove`, whose B-tree rebalancing the
        // module has no other use for (≈ 6 KB of `policy.wasm`).
        let mut take = |field: &str| answer.get_mut(field).map(Value::take);
        // The answer's shape as the SDK writes it: an image manifest naming its config.
        let names_config = take("manifest").is_some_and(|manifest| has_string_at(&manifest, &["config", "digest"]));
        let (Some(Value::String(digest)), Some(Value::Object(config)), true) =
            (take("digest"), take("config"), names_config)
        else {
            return Err("`digest`, `config` (an object) or `manifest.config.digest` is missing".to_owned());
        };
        Ok(Self { digest, config })
    }
}

/// The answer of `oci/v1/oci_manifest` (oci-client's untagged `OciManifest`, as policy-evaluator
/// writes it; the SDK's `OciManifestResponse` reads the same fields): an index has `manifests`,
/// an image manifest a `config`.
enum Manifest {
    /// The descriptors of the manifests the index lists.
    Index(Vec<Value>),
    /// An image manifest (it names its config).
    Image,
}

impl Manifest {
    fn read(mut answer: Value) -> Result<Self, String> {
        if !answer.is_object() {
            return Err("not a JSON object".to_owned());
        }
        let names_config = has_string_at(&answer, &["config", "digest"]);
        match (answer.get_mut("manifests").map(Value::take), names_config) {
            (Some(Value::Array(entries)), _) => Ok(Self::Index(entries)),
            (Some(_), _) => Err("the index's `manifests` is not a list".to_owned()),
            (None, true) => Ok(Self::Image),
            (None, false) => {
                Err("neither an image index (`manifests`) nor an image manifest (`config.digest`)".to_owned())
            }
        }
    }
}

/// Whether `value` has a string at `path`.
fn has_string_at(value: &Value, path: &[&str]) -> bool {
    path.iter()
        .try_fold(value, |value, field| value.get(field))
        .is_some_and(Value::is_string)
}

#[cfg(test)]
mod tests;
