//! Real CUE (cuelang.org/go v0.4.3, npm's `cue-wasm` run by node with `scripts/cue-eval.mjs`,
//! installed by `make test-tools` as `target/test-tools/bin/cue-eval`) deciding policies as
//! policy-controller decides them: `CompileString(policy).Err()`, then the policy unified with
//! each input and validated without `cue.Concrete` (see the script for how the one call
//! cue-wasm exposes is made to answer that).

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

use crate::run::ask_test_tool;

/// Real CUE's verdict on one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CueAnswer {
    /// `CompileString(policy).Err()` is not nil: policy-controller refuses the policy (and so
    /// denies every image it applies to).
    PolicyError(String),
    /// One verdict per input, in order.
    Verdicts(Vec<CueVerdict>),
}

/// Real CUE's verdict on the policy unified with one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CueVerdict {
    /// No error; `incomplete` is MarshalJSON's complaint about a value that is not concrete
    /// (which `Validate()` without `Concrete` accepts), if any.
    Ok { incomplete: Option<String> },
    /// An error other than an incomplete value: the input is refused.
    Conflict(String),
    /// An error the harness cannot classify: neither a verdict nor a pass.
    Unknown(String),
}

#[derive(Deserialize)]
struct Line {
    policy_error: Option<String>,
    verdicts: Option<Vec<Verdict>>,
}

#[derive(Deserialize)]
struct Verdict {
    ok: Option<bool>,
    incomplete: Option<String>,
    conflict: Option<String>,
    unknown: Option<String>,
}

/// Real CUE's answers for each `(policy, inputs)`, the inputs being JSON texts (handed to CUE
/// as written, so `1.0` stays a float). The tool missing is an error, never a skip.
pub fn cue_verdicts(cases: &[(String, Vec<String>)]) -> anyhow::Result<Vec<CueAnswer>> {
    let requests: Vec<serde_json::Value> = cases
        .iter()
        .map(|(policy, inputs)| serde_json::json!({ "policy": policy, "inputs": inputs }))
        .collect();
    let answers = ask_test_tool("cue-eval", &requests, Duration::from_secs(600))?
        .iter()
        .map(|line| {
            let answer: Line = serde_json::from_str(line).with_context(|| format!("cue-eval answered {line:?}"))?;
            Ok(match (answer.policy_error, answer.verdicts) {
                (Some(error), _) => CueAnswer::PolicyError(error),
                (None, Some(verdicts)) => CueAnswer::Verdicts(
                    verdicts
                        .into_iter()
                        .map(|v| match v {
                            Verdict { conflict: Some(c), .. } => CueVerdict::Conflict(c),
                            Verdict { unknown: Some(u), .. } => CueVerdict::Unknown(u),
                            Verdict {
                                ok: Some(true),
                                incomplete,
                                ..
                            } => CueVerdict::Ok { incomplete },
                            _ => CueVerdict::Unknown(format!("cue-eval answered {line}")),
                        })
                        .collect(),
                ),
                (None, None) => bail!("cue-eval answered neither policy_error nor verdicts: {line}"),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for ((_, inputs), answer) in cases.iter().zip(&answers) {
        if let CueAnswer::Verdicts(v) = answer {
            ensure!(
                v.len() == inputs.len(),
                "cue-eval answered {} of {} inputs",
                v.len(),
                inputs.len()
            );
        }
    }
    Ok(answers)
}
