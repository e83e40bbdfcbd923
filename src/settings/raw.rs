//! The settings exactly as users write them: sigstore `ClusterImagePolicy` documents plus our
//! few top-level options. Only the shape is checked here (unknown fields are refused, so a
//! typo never silently disables a rule); meaning is checked by [`super::Settings::parse`].
//!
//! `spec.match`, `spec.authorities` and `spec.policy` are kept as the JSON text they are:
//! `validate` parses them only for a policy whose globs cover an image of the request,
//! `validate_settings` parses all of them. Strings are borrowed from the settings text whenever
//! they hold no escape.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// A string borrowed from the settings text, or owned when JSON escapes had to be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// The JSON text of a value, kept as it is written and parsed when needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonText<'a>(pub &'a str);

impl<'de: 'a, 'a> Deserialize<'de> for JsonText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(|raw| JsonText(raw.get()))
    }
}

/// Top-level settings of the policy.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSettings<'a> {
    /// Required (`[]` for none): Kubewarden passes `{}` when a policy gives no settings, which
    /// must not read as "no policy, every image admitted".
    #[serde(borrow)]
    pub policies: Option<Vec<RawPolicy<'a>>>,
    #[serde(borrow)]
    pub no_match_policy: Option<Text<'a>>,
    pub modify_images_with_digest: Option<bool>,
}

/// One `ClusterImagePolicy` document.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPolicy<'a> {
    #[serde(borrow)]
    pub api_version: Option<Text<'a>>,
    #[serde(borrow)]
    pub kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub metadata: Option<RawMetadata<'a>>,
    #[serde(borrow)]
    pub spec: Option<RawSpec<'a>>,
    /// Written by policy-controller; skipped.
    pub status: Option<IgnoredAny>,
}

impl RawPolicy<'_> {
    /// How many entries `spec.images` lists.
    pub fn glob_count(&self) -> usize {
        self.spec.as_ref().and_then(|s| s.images.as_ref()).map_or(0, Vec::len)
    }
}

/// `metadata` may carry anything (labels, annotations, ...); only the name is read, the rest
/// is skipped.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
pub struct RawMetadata<'a> {
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
}

/// `spec` of a `ClusterImagePolicy`. `authorities` (a list of [`RawAuthority`]) and `policy`
/// are kept as the JSON text they are, and parsed when needed.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSpec<'a> {
    #[serde(borrow)]
    pub images: Option<Vec<RawImagePattern<'a>>>,
    #[serde(borrow)]
    pub authorities: Option<JsonText<'a>>,
    #[serde(borrow)]
    pub mode: Option<Text<'a>>,
    /// Read when the policy covers an image (`Settings::rules`, through
    /// [`super::Settings::applies`]): a list of [`RawMatch`].
    #[serde(borrow, rename = "match")]
    pub match_: Option<JsonText<'a>>,
    #[serde(borrow)]
    pub policy: Option<JsonText<'a>>,
}

/// One entry of `spec.images`.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(deny_unknown_fields)]
pub struct RawImagePattern<'a> {
    #[serde(borrow)]
    pub glob: Option<Text<'a>>,
    /// `regex` existed in `v1alpha1`; refused with a clear message.
    #[serde(borrow)]
    pub regex: Option<Text<'a>>,
}

/// One entry of `spec.match`.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub namespaces: Option<Vec<String>>,
    pub group: Option<String>,
    pub version: Option<String>,
    pub resource: Option<String>,
    pub selector: Option<RawLabelSelector>,
}

/// A Kubernetes label selector.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawLabelSelector {
    pub match_labels: Option<BTreeMap<String, String>>,
    pub match_expressions: Option<Vec<RawLabelSelectorRequirement>>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(deny_unknown_fields)]
pub struct RawLabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    pub values: Option<Vec<String>>,
}

/// One entry of `spec.authorities`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAuthority<'a> {
    pub name: Option<String>,
    #[serde(borrow)]
    pub key: Option<RawKey<'a>>,
    pub keyless: Option<RawKeyless>,
    #[serde(rename = "static")]
    pub static_: Option<RawStatic>,
    /// Extension (Kubewarden): a signing certificate instead of a key.
    pub certificate: Option<RawCertificate>,
    /// Extension (Kubewarden): keyless signatures made by GitHub Actions.
    pub github_actions: Option<RawGithubActions>,
    /// Extension (Kubewarden): annotations every accepted signature must carry.
    pub annotations: Option<BTreeMap<String, String>>,
    pub source: Option<Value>,
    pub ctlog: Option<Value>,
    pub attestations: Option<Value>,
    #[serde(rename = "rfc3161timestamp")]
    pub rfc3161_timestamp: Option<Value>,
    pub signature_format: Option<String>,
}

/// `key` authority.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawKey<'a> {
    /// The JSON text of `key.data` as written, a string for a valid key ([`JsonString::new`]).
    #[serde(borrow)]
    pub data: Option<JsonText<'a>>,
    pub kms: Option<String>,
    pub secret_ref: Option<Value>,
    pub hash_algorithm: Option<String>,
}

/// A JSON string kept as the JSON text it is written in, quotes and escapes included: a PEM key
/// goes to the host inside a JSON request, and decoding it only to encode it again costs ≈ 40
/// instructions a byte in wasm.
#[derive(Debug)]
pub struct JsonString<'a>(&'a str);

impl<'a> JsonString<'a> {
    /// The string `raw` is, `None` when it is another JSON value.
    pub fn new(raw: JsonText<'a>) -> Option<Self> {
        raw.0.starts_with('"').then_some(Self(raw.0))
    }

    /// The JSON text of the string, quotes included.
    pub fn json(&self) -> &'a str {
        self.0
    }

    /// The string, decoded.
    pub fn decode(&self) -> String {
        // A JSON string, checked when it was read (by `serde_json`, or as `serde_json` checks
        // it): it decodes.
        serde_json::from_str(self.0).unwrap_or_default()
    }
}

/// `keyless` authority.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawKeyless {
    pub url: Option<String>,
    pub identities: Option<Vec<RawIdentity>>,
    #[serde(rename = "ca-cert")]
    pub ca_cert: Option<Value>,
    pub trust_root_ref: Option<String>,
    #[serde(rename = "insecureIgnoreSCT")]
    pub insecure_ignore_sct: Option<bool>,
}

/// One keyless identity.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawIdentity {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub issuer_reg_exp: Option<String>,
    pub subject_reg_exp: Option<String>,
}

/// `static` authority.
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    pub action: Option<String>,
    pub message: Option<String>,
}

/// `certificate` authority (extension).
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCertificate {
    pub data: Option<String>,
    pub chain: Option<String>,
    pub require_rekor_bundle: Option<bool>,
}

/// `githubActions` authority (extension).
#[derive(Debug, Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq))]
#[serde(deny_unknown_fields)]
pub struct RawGithubActions {
    pub owner: Option<String>,
    pub repo: Option<String>,
}
