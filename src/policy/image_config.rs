//! An image config as policy-controller, and the node that runs the image, read it.
//!
//! policy-controller gives a `fetchConfigFile` policy go-containerregistry's `v1.ConfigFile`:
//! the registry's JSON decoded by Go's `encoding/json`, then encoded again. containerd and
//! CRI-O decode the same blob with the same package into their own structs. Read as written,
//! a config saying `"user": "0"` (which runs as root) had no `User` and passed
//! `User: "65532"` vacuously; a config without `created` passed `created: >"2024-01-01"`,
//! which policy-controller judges against Go's zero time; `"User": ""` passed a Rego rule
//! `not cfg.config.User` that Go's `{}` fails.
//!
//! [`go_view`] gives a policy exactly what policy-controller gives it ([`super::go_json`]):
//! every field of go-containerregistry's `ConfigFile` (its current `pkg/v1/config.go`) as Go
//! decodes and encodes it, keys that name no field dropped, and what Go refuses refused.
//!
//! The hosts parse the config into a map before the module sees it, so a key written twice
//! exactly is already one key: the last (Go merges two objects under one key). `cip` refuses
//! such a config; a stock Kubewarden host passes the last (docs/policies.md). Likewise a time
//! written with a JSON escape, which Go's `Time.UnmarshalJSON` refuses (it reads the text
//! between the quotes as written), reaches the module unescaped and is read.
//!
//! Checked against Go itself on generated configs: `tests/image_config_against_go.rs`.

use serde_json::{Map, Value};

use crate::policy::go_json::{Field, GoReadError, Kind, always, field, read_struct};

/// `[]string`.
const STRINGS: Kind = Kind::List(&Kind::String);
/// `map[string]struct{}`: the values are written `{}` whatever they held.
const SET: Kind = Kind::Map(&Kind::Struct(&[]));

/// `v1.ConfigFile`.
const CONFIG_FILE: &[Field] = &[
    always("architecture", Kind::String),
    field("author", Kind::String),
    field("container", Kind::String),
    // `omitempty` never omits a struct.
    always("created", Kind::Time),
    field("docker_version", Kind::String),
    field("history", Kind::List(&Kind::Struct(HISTORY))),
    always("os", Kind::String),
    always("rootfs", Kind::Struct(ROOT_FS)),
    always("config", Kind::Struct(CONFIG)),
    field("os.version", Kind::String),
    field("variant", Kind::String),
    field("os.features", STRINGS),
];

/// `v1.History`.
const HISTORY: &[Field] = &[
    field("author", Kind::String),
    always("created", Kind::Time),
    field("created_by", Kind::String),
    field("comment", Kind::String),
    field("empty_layer", Kind::Bool),
];

/// `v1.RootFS`.
const ROOT_FS: &[Field] = &[
    always("type", Kind::String),
    always("diff_ids", Kind::List(&Kind::Digest)),
];

/// `v1.HealthConfig`.
const HEALTH_CONFIG: &[Field] = &[
    field("Test", STRINGS),
    field("Interval", Kind::Integer),
    field("Timeout", Kind::Integer),
    field("StartPeriod", Kind::Integer),
    field("StartInterval", Kind::Integer),
    field("Retries", Kind::Integer),
];

/// `v1.Config`.
const CONFIG: &[Field] = &[
    field("AttachStderr", Kind::Bool),
    field("AttachStdin", Kind::Bool),
    field("AttachStdout", Kind::Bool),
    field("Cmd", STRINGS),
    field("Healthcheck", Kind::Pointer(HEALTH_CONFIG)),
    field("Domainname", Kind::String),
    field("Entrypoint", STRINGS),
    field("Env", STRINGS),
    field("Hostname", Kind::String),
    field("Image", Kind::String),
    field("Labels", Kind::Map(&Kind::String)),
    field("OnBuild", STRINGS),
    field("OpenStdin", Kind::Bool),
    field("StdinOnce", Kind::Bool),
    field("Tty", Kind::Bool),
    field("User", Kind::String),
    field("Volumes", SET),
    field("WorkingDir", Kind::String),
    field("ExposedPorts", SET),
    field("ArgsEscaped", Kind::Bool),
    field("NetworkDisabled", Kind::Bool),
    field("MacAddress", Kind::String),
    field("StopSignal", Kind::String),
    field("Shell", STRINGS),
];

/// `config` (an image config as the host answered it) as policy-controller reads it: see the
/// module's documentation.
pub fn go_view(config: Map<String, Value>) -> Result<Map<String, Value>, GoReadError> {
    read_struct(config, CONFIG_FILE, "")
}

#[cfg(test)]
mod tests;
