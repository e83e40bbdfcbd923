//! Go's `encoding/json` reading an image config as go-containerregistry's `v1.ParseConfigFile`
//! reads it and `json.Marshal` writing it again (`scripts/go-image-config.go`, built by
//! `make test-tools` with Debian's `golang-go`): the view of `config` a policy-controller
//! ClusterImagePolicy with `fetchConfigFile: true` evaluates, as the reference
//! `cluster_image_policy::policy::image_config::go_view` is compared with.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::run::ask_test_tool;

/// What Go makes of each image config text: `Ok(the view)` (`json.Marshal` of the
/// `v1.ConfigFile` decoded from it) or `Err(Go's message)` when decoding, or encoding the
/// decoded config, fails. One process answers the whole batch; the tool missing from the test
/// tools is an error, never a skipped comparison.
pub fn go_image_configs(texts: &[String]) -> anyhow::Result<Vec<Result<Value, String>>> {
    let requests: Vec<Value> = texts.iter().map(|text| json!({ "config": text })).collect();
    ask_test_tool("go-image-config", &requests, Duration::from_secs(300))?
        .iter()
        .map(|line| {
            let mut answer: serde_json::Map<String, Value> =
                serde_json::from_str(line).with_context(|| format!("go-image-config answered {line:?}"))?;
            Ok(match (answer.remove("error"), answer.remove("view")) {
                (Some(Value::String(error)), None) => Err(error),
                (None, Some(view @ Value::Object(_))) => Ok(view),
                _ => bail!("go-image-config answered neither an error nor a view: {line}"),
            })
        })
        .collect()
}
