//! The platform a node runs an image as: containerd's `platforms.Normalize`, which its
//! platform matcher applies to an index entry's `platform` and to the node's own before
//! comparing them. policy-controller keys each config by the config's own, unnormalised fields
//! (`config: "linux/amd64": …`), so the module checks that the manifest a node runs for a
//! platform has a config keyed as that platform (`super::config_file`).

use serde_json::{Map, Value};

/// `os`, `architecture` and `variant`, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: String,
}

impl Platform {
    /// The platform `object` says (an image config, or an index entry's `platform`): its
    /// `os`, `architecture` and `variant`, each empty when missing or not a string.
    pub(crate) fn of(object: Option<&Map<String, Value>>) -> Self {
        let field = |name: &str| {
            object
                .and_then(|object| object.get(name))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            os: field("os"),
            architecture: field("architecture"),
            variant: field("variant"),
        }
    }

    /// As containerd normalises it: `os` in lower case (`macos` is `darwin`); architecture
    /// aliases (`x86_64` is `amd64`, `aarch64` is `arm64`, `armhf` is `arm` v7, …) and their
    /// default variants (`arm64` v8 is no variant, `arm` without one is v7, …).
    pub(crate) fn normalized(&self) -> Self {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            os => os.to_owned(),
        };
        let architecture = self.architecture.to_ascii_lowercase();
        let variant = self.variant.to_ascii_lowercase();
        let (architecture, variant) = match (architecture.as_str(), variant.as_str()) {
            ("i386", _) => ("386", String::new()),
            ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", String::new()),
            ("x86_64" | "x86-64" | "amd64", _) => ("amd64", variant),
            ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", String::new()),
            ("aarch64" | "arm64", "9" | "9.0" | "v9.0") => ("arm64", "v9".to_owned()),
            ("aarch64" | "arm64", _) => ("arm64", variant),
            ("armhf", _) => ("arm", "v7".to_owned()),
            ("armel", _) => ("arm", "v6".to_owned()),
            ("arm", "" | "7") => ("arm", "v7".to_owned()),
            ("arm", "5" | "6" | "8") => ("arm", format!("v{variant}")),
            (other, _) => {
                return Self {
                    os,
                    architecture: other.to_owned(),
                    variant,
                };
            }
        };
        Self {
            os,
            architecture: architecture.to_owned(),
            variant,
        }
    }

    /// Whether `os` and `architecture` are written as a node names its own platform (what a
    /// policy's key says): `linux/amd64`, not `Linux/x86_64`.
    pub(crate) fn names_as_a_node_does(&self) -> bool {
        let normalized = self.normalized();
        normalized.os == self.os && normalized.architecture == self.architecture
    }
}

#[cfg(test)]
mod tests {
    use super::Platform;

    fn platform(os: &str, architecture: &str, variant: &str) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.to_owned(),
        }
    }

    #[test]
    fn normalised_as_containerd_normalises() {
        for ((os, arch, variant), expected) in [
            (("linux", "amd64", ""), ("linux", "amd64", "")),
            (("Linux", "x86_64", "v1"), ("linux", "amd64", "")),
            (("linux", "amd64", "v3"), ("linux", "amd64", "v3")),
            (("linux", "aarch64", "v8"), ("linux", "arm64", "")),
            (("linux", "arm64", "8"), ("linux", "arm64", "")),
            (("linux", "arm64", "v9.0"), ("linux", "arm64", "v9")),
            (("linux", "arm", ""), ("linux", "arm", "v7")),
            (("linux", "arm", "6"), ("linux", "arm", "v6")),
            (("linux", "armhf", ""), ("linux", "arm", "v7")),
            (("linux", "armel", ""), ("linux", "arm", "v6")),
            (("linux", "i386", "x"), ("linux", "386", "")),
            (("macos", "arm64", ""), ("darwin", "arm64", "")),
            (("windows", "amd64", ""), ("windows", "amd64", "")),
            (("linux", "riscv64", ""), ("linux", "riscv64", "")),
        ] {
            assert_eq!(
                platform(os, arch, variant).normalized(),
                platform(expected.0, expected.1, expected.2),
                "{os}/{arch}/{variant}"
            );
        }
        assert!(platform("linux", "arm64", "v8").names_as_a_node_does());
        assert!(!platform("linux", "x86_64", "").names_as_a_node_does());
        assert!(!platform("Linux", "amd64", "").names_as_a_node_does());
        assert!(!platform("linux", "aarch64", "").names_as_a_node_does());
    }
}
