//! RE2 (PyPI `google-re2` in the test tools' venv), the engine Go's `regexp` reproduces, as the
//! reference our Go-reading regular expressions are compared with (go-regexp's tests, the Rego
//! regex builtins' tests): `scripts/re2-match.py` answers a batch of cases in one process.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::kms::test_tool;
use crate::run::run_bounded;

/// What RE2 answers for each `(pattern, texts)`: `Err(its message)` when it refuses the
/// pattern, else whether it finds a match in each text (Go's `MatchString`). RE2 missing from
/// the venv is an error, never a skipped comparison.
pub fn re2_matches(cases: &[(String, Vec<String>)]) -> anyhow::Result<Vec<Result<Vec<bool>, String>>> {
    let python = test_tool("python")?;
    let mut input = tempfile::NamedTempFile::new()?;
    for (pattern, texts) in cases {
        writeln!(input, "{}", json!({ "pattern": pattern, "texts": texts }))?;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/re2-match.py");
    let output = run_bounded(
        Command::new(python).arg(script).arg(input.path()),
        Duration::from_secs(300),
    )?;
    if !output.status.success() {
        bail!(
            "RE2 failed (is google-re2 in the test tools' venv? `make test-tools`): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let answers = String::from_utf8(output.stdout)?
        .lines()
        .map(|line| {
            let answer: Value = serde_json::from_str(line).with_context(|| format!("RE2 answered {line:?}"))?;
            Ok(
                match (answer.get("error"), answer.get("matches").and_then(Value::as_array)) {
                    (Some(error), _) => Err(error.as_str().unwrap_or_default().to_owned()),
                    (None, Some(matches)) => Ok(matches.iter().map(|m| m == true).collect()),
                    (None, None) => bail!("RE2 answered neither error nor matches: {line}"),
                },
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    ensure!(
        answers.len() == cases.len(),
        "RE2 answered {} of {} cases",
        answers.len(),
        cases.len()
    );
    Ok(answers)
}
