//! The `hostCapabilities` entries of Kubewarden policy metadata: the host capability calls a
//! policy makes, named by their path (`oci/v2/verify`), or a wildcard of them (`oci/*`,
//! `oci/v1/*`, `*`), with the conventions of the PolicyServer's
//! `spec.namespacedPoliciesCapabilities`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every host capability call Kubewarden defines (docs.kubewarden.io, host capabilities call
/// reference).
pub const KNOWN_HOST_CAPABILITIES: [&str; 12] = [
    "oci/v1/verify",
    "oci/v2/verify",
    "oci/v1/manifest_digest",
    "oci/v1/oci_manifest",
    "oci/v1/oci_manifest_config",
    "kubernetes/can_i",
    "kubernetes/list_resources_by_namespace",
    "kubernetes/list_resources_all",
    "kubernetes/get_resource",
    "net/v1/dns_lookup_host",
    "crypto/v1/is_certificate_trusted",
    "tracing/log",
];

/// One validated `hostCapabilities` entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostCapability(String);

/// Why a `hostCapabilities` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a Kubewarden host capability: write a call path such as oci/v2/verify, or a wildcard \
     such as oci/* or oci/v1/* (known calls: {known})",
    known = KNOWN_HOST_CAPABILITIES.join(", ")
)]
pub struct UnknownHostCapability(pub String);

impl HostCapability {
    /// The entry as written in metadata.yml.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this entry grants the call `path` (`oci/v2/verify`).
    pub fn covers(&self, path: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => self.0 == path,
        }
    }
}

impl TryFrom<String> for HostCapability {
    type Error = UnknownHostCapability;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid = if value == "*" {
            true
        } else if let Some(prefix) = value.strip_suffix("/*") {
            // `category/*` or `category/version/*`: a whole segment of at least one known call.
            !prefix.is_empty()
                && !prefix.contains('*')
                && KNOWN_HOST_CAPABILITIES
                    .iter()
                    .any(|known| known.starts_with(&format!("{prefix}/")))
        } else {
            KNOWN_HOST_CAPABILITIES.contains(&value.as_str())
        };
        if valid {
            Ok(Self(value))
        } else {
            Err(UnknownHostCapability(value))
        }
    }
}

impl From<HostCapability> for String {
    fn from(value: HostCapability) -> Self {
        value.0
    }
}

impl fmt::Display for HostCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostCapability, UnknownHostCapability> {
        HostCapability::try_from(text.to_owned())
    }

    #[test]
    fn calls_and_wildcards_are_accepted() {
        for text in [
            "oci/v2/verify",
            "oci/v1/oci_manifest",
            "kubernetes/can_i",
            "*",
            "oci/*",
            "oci/v1/*",
        ] {
            assert!(parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn unknown_calls_and_partial_wildcards_are_refused() {
        for text in [
            "oci/v3/verify",
            "v2/verify",
            "oci*",
            "oci/v1/oci_*",
            "dns/*",
            "",
            "/*",
            "oci/v9/*",
        ] {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains("oci/v2/verify"), "{error}");
        }
    }

    #[test]
    fn wildcards_cover_their_segment_only() {
        let oci = parse("oci/*").expect("valid");
        assert!(oci.covers("oci/v2/verify"));
        assert!(!oci.covers("net/v1/dns_lookup_host"));
        let v1 = parse("oci/v1/*").expect("valid");
        assert!(v1.covers("oci/v1/oci_manifest"));
        assert!(!v1.covers("oci/v2/verify"));
        assert!(parse("*").expect("valid").covers("tracing/log"));
        assert!(!parse("oci/v2/verify").expect("valid").covers("oci/v1/verify"));
    }

    #[test]
    fn yaml_refuses_an_unknown_entry() {
        let error = serde_yaml::from_str::<Vec<HostCapability>>("[oci/v2/verify, oci/v2/sign]")
            .expect_err("unknown")
            .to_string();
        assert!(error.contains("oci/v2/sign"), "{error}");
    }
}
