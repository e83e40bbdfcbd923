//! Child processes run to completion within a time limit, so that a hung child fails its test
//! instead of hanging the whole run.

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::kms::test_tool;

/// How long a killed child's output may take to close before the error is given without it
/// (a process the child started may still hold it).
const KILLED_OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// The most of a killed child's stderr an error quotes.
const STDERR_TAIL: usize = 2000;

/// Asks the test tool `tool` (a reference implementation run by `make test-tools`, such as Go's
/// `regexp` or real CUE) about `requests`: writes them as JSON lines to a file, runs the tool on
/// it within `limit`, and returns its answer lines, one per request. The tool missing, failing
/// or answering another number of lines is an error, never a skipped comparison.
pub fn ask_test_tool(tool: &str, requests: &[Value], limit: Duration) -> anyhow::Result<Vec<String>> {
    use std::io::Write as _;
    let runner = test_tool(tool)?;
    let mut input = tempfile::NamedTempFile::new()?;
    for request in requests {
        writeln!(input, "{request}")?;
    }
    input.flush()?;
    let output = run_bounded(Command::new(runner).arg(input.path()), limit)?;
    if !output.status.success() {
        bail!(
            "{tool} failed (`make test-tools` installs it): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let answers: Vec<String> = String::from_utf8(output.stdout)?.lines().map(str::to_owned).collect();
    ensure!(
        answers.len() == requests.len(),
        "{tool} answered {} of {} requests",
        answers.len(),
        requests.len()
    );
    Ok(answers)
}

/// Runs `command` as [`Command::output`] does (stdin `/dev/null`, stdout and stderr captured),
/// but within `limit`.
///
/// Both outputs are read on threads of their own while the child runs, so a child writing much
/// never blocks on a full pipe. When `limit` passes before the child exits, the child is killed
/// and waited for, and the error names the command and how long it ran, with the end of what
/// it wrote to stderr. The limit also covers reading the output to its end: when the child
/// exits but a process it started keeps its stdout or stderr open past `limit`, that is an error
/// too (`output()` would wait for that process). Only the child itself is killed, not processes
/// it started.
///
/// Failing to start the command is an error as with `output()`; an exit status of failure is
/// not: it is in the [`Output`].
pub fn run_bounded(command: &mut Command, limit: Duration) -> anyhow::Result<Output> {
    let started = Instant::now();
    let deadline = started + limit;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{}`", describe(command)))?;
    let stdout = read_to_end(child.stdout.take());
    let stderr = read_to_end(child.stderr.take());
    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        still_running_or_error => {
            // Best effort: it may exit between the last look and the kill.
            let _ = child.kill();
            let _ = child.wait();
            still_running_or_error.with_context(|| format!("waiting for `{}`", describe(command)))?;
            let ran = started.elapsed();
            let stderr = finished_within(&stderr, Instant::now() + KILLED_OUTPUT_GRACE)
                .then(|| stderr.join().ok()?.ok())
                .flatten()
                .unwrap_or_default();
            anyhow::bail!(
                "`{}` did not finish within {limit:?}: killed after {ran:.1?}; its stderr: {}",
                describe(command),
                tail(&stderr)
            );
        }
    };
    if !(finished_within(&stdout, deadline) && finished_within(&stderr, deadline)) {
        anyhow::bail!(
            "`{}` exited ({status}) but its output was still open after {:.1?}, {limit:?} allowed: a process it started holds it",
            describe(command),
            started.elapsed()
        );
    }
    let collect = |reader: JoinHandle<std::io::Result<Vec<u8>>>, name: &str| {
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("the thread reading the {name} of `{}` panicked", describe(command)))?
            .with_context(|| format!("reading the {name} of `{}`", describe(command)))
    };
    Ok(Output {
        status,
        stdout: collect(stdout, "stdout")?,
        stderr: collect(stderr, "stderr")?,
    })
}

/// A thread reading `pipe` to its end (nothing when there is no pipe).
fn read_to_end(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<std::io::Result<Vec<u8>>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut bytes)?;
        }
        Ok(bytes)
    })
}

/// The child's exit status, or `None` when it still runs at `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Whether `thread` has finished by `deadline`.
fn finished_within<T>(thread: &JoinHandle<T>, deadline: Instant) -> bool {
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The program and its arguments, space-separated.
fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The end of `bytes`, as text.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(STDERR_TAIL)..]);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_child_that_finishes_in_time_gives_its_status_and_output() -> anyhow::Result<()> {
        let output = run_bounded(
            Command::new("sh").args(["-c", "echo out; echo err >&2; read -r line || echo eof; exit 3"]),
            Duration::from_secs(30),
        )?;
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "out\neof\n",
            "stdin is /dev/null"
        );
        assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
        Ok(())
    }

    #[test]
    fn a_child_past_its_limit_is_killed_and_named() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let pid_file = dir.path().join("pid");
        let started = Instant::now();
        let error = run_bounded(
            Command::new("sh")
                .args(["-c", r#"echo $$ > "$0"; echo waiting >&2; exec sleep 30"#])
                .arg(&pid_file),
            Duration::from_millis(500),
        )
        .expect_err("sleeps past its limit");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "returned after {took:?}");
        let message = format!("{error:#}");
        assert!(
            message.starts_with(&format!("`sh -c {}", r#"echo $$ > "$0""#))
                && message.contains("did not finish within 500ms: killed after")
                && message.ends_with("its stderr: waiting"),
            "{message}"
        );
        let pid = std::fs::read_to_string(&pid_file)?;
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "the child {pid} still exists"
        );
        Ok(())
    }

    #[test]
    fn output_held_open_by_a_grandchild_is_bounded_too() {
        let started = Instant::now();
        let error = run_bounded(
            Command::new("sh").args(["-c", "sleep 10 & echo started"]),
            Duration::from_millis(500),
        )
        .expect_err("the output stays open");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "returned after {took:?}");
        let message = format!("{error:#}");
        assert!(
            message.contains("exited (exit status: 0) but its output was still open"),
            "{message}"
        );
    }

    #[test]
    fn a_command_that_cannot_start_is_an_error_naming_it() {
        let error = run_bounded(&mut Command::new("/nonexistent/program"), Duration::from_secs(5))
            .expect_err("no such program");
        assert!(
            format!("{error}").contains("starting `/nonexistent/program`"),
            "{error}"
        );
    }
}
