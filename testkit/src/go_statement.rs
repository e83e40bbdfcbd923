//! What sigstore policy-controller hands an attestation's CUE/Rego policy as the statement:
//! cosign's `policy.AttestationToPayloadJSON`, which decodes the in-toto statement with Go's
//! `encoding/json` into in-toto-golang's `Statement`, again into the typed statement the
//! predicate type written in the policy names (`link`, `slsaprovenance`, `vuln`, …), and writes
//! that with `json.Marshal` (`scripts/go-statement.go`, built by `make test-tools` with Debian's
//! `golang-go`): the reference `cluster_image_policy::policy::statement::go_view` is compared
//! with.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::run::ask_test_tool;

/// What Go makes of each `(statement text, predicate type as written in the policy)`:
/// `Ok(the view)` (what `AttestationToPayloadJSON` returns, as JSON) or `Err(Go's message)` when
/// a decoding, or the encoding, fails. One process answers the whole batch; the tool missing
/// from the test tools is an error, never a skipped comparison.
pub fn go_statements(cases: &[(String, String)]) -> anyhow::Result<Vec<Result<Value, String>>> {
    let requests: Vec<Value> = cases
        .iter()
        .map(|(statement, written)| json!({ "statement": statement, "predicateType": written }))
        .collect();
    ask_test_tool("go-statement", &requests, Duration::from_secs(300))?
        .iter()
        .map(|line| {
            let mut answer: serde_json::Map<String, Value> =
                serde_json::from_str(line).with_context(|| format!("go-statement answered {line:?}"))?;
            Ok(match (answer.remove("error"), answer.remove("view")) {
                (Some(Value::String(error)), None) => Err(error),
                (None, Some(view @ Value::Object(_))) => Ok(view),
                _ => bail!("go-statement answered neither an error nor a view: {line}"),
            })
        })
        .collect()
}
