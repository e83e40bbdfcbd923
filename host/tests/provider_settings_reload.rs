//! `cip provider` picks up a changed settings file without a restart: the review's probe
//! (`warn` switched to `enforce` by copying a file over the settings), a file the policy refuses
//! (the previous settings stay served, the failure is on `/metrics`), and a ConfigMap volume's
//! atomic `..data` symlink swap. Each waits, within a bound, for an observable change.

mod provider_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cip::provider::settings_watch::{Polled, SettingsWatch};
use provider_support::*;

/// How long a change may take to be served: the poll interval given below (200 ms), the
/// re-read, the module's validation, on a machine busy with other tests.
const RELOAD_BOUND: Duration = Duration::from_secs(30);

/// The review's probe: one policy covering `myregistry.com/**` whose only authority fails.
fn settings(mode: &str) -> String {
    format!(
        "policies:\n\
         - metadata: {{name: must-be-signed}}\n\
        \x20 spec:\n\
        \x20   mode: {mode}\n\
        \x20   images: [{{glob: \"myregistry.com/**\"}}]\n\
        \x20   authorities: [{{static: {{action: fail}}}}]\n"
    )
}

/// The review's key, as the ConstraintTemplate builds it for a Pod in team-a.
const KEY: &str = r#"{"image":"myregistry.com/app:v1","labels":{},"namespace":"team-a","resource":{"group":"","resource":"pods","version":"v1"}}"#;

fn provider_command(files: &TlsFiles, settings: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cip"));
    command
        .arg("provider")
        .arg("--settings-path")
        .arg(settings)
        .args(["--settings-poll-interval", "200ms"])
        .args(files.provider_args())
        .arg(policy_wasm_path());
    command
}

/// A provider process and a client with Gatekeeper's certificate.
struct Served {
    provider: testkit::ProviderProcess,
    gatekeeper: reqwest::Client,
}

impl Served {
    fn start(files: &TlsFiles, ca: &Ca, gatekeeper_ca: &Ca, settings: &Path) -> TestResult<Self> {
        let provider = testkit::ProviderProcess::start(|| provider_command(files, settings))?;
        let gatekeeper = bounded_tls13_client(ca, Some(&gatekeeper_ca.client()?))?;
        Ok(Self { provider, gatekeeper })
    }

    /// The verdict on the review's key.
    async fn verdict(&self) -> TestResult<String> {
        let answer: serde_json::Value = self
            .gatekeeper
            .post(format!("https://{}/validate", self.provider.addr()))
            .json(&request(&[KEY.to_owned()]))
            .send()
            .await?
            .json()
            .await?;
        let verdict = item(&answer, KEY).ok_or_else(|| format!("no item: {answer}"))?["value"]["verdict"]
            .as_str()
            .ok_or_else(|| format!("no verdict: {answer}"))?
            .to_owned();
        Ok(verdict)
    }

    /// Asks until the verdict is `expected`, within [`RELOAD_BOUND`]; fails naming the last one.
    async fn await_verdict(&self, expected: &str) -> TestResult {
        let started = Instant::now();
        loop {
            let verdict = self.verdict().await?;
            if verdict == expected {
                return Ok(());
            }
            if started.elapsed() > RELOAD_BOUND {
                return Err(format!("still {verdict:?}, not {expected:?}, {RELOAD_BOUND:?} after the change").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metrics(&self) -> TestResult<String> {
        Ok(bounded_http_client()?
            .get(format!("http://{}/metrics", self.provider.metrics_addr()))
            .send()
            .await?
            .text()
            .await?)
    }

    /// Scrapes until `line` is among the metrics, within [`RELOAD_BOUND`].
    async fn await_metric(&self, line: &str) -> TestResult<String> {
        let started = Instant::now();
        loop {
            let text = self.metrics().await?;
            if text.lines().any(|l| l == line) {
                return Ok(text);
            }
            if started.elapsed() > RELOAD_BOUND {
                return Err(format!("no {line:?} {RELOAD_BOUND:?} after the change:\n{text}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `sha256` label of `cluster_image_policy_provider_settings_info`.
fn settings_digest(metrics: &str) -> Option<&str> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("cluster_image_policy_provider_settings_info{sha256=\""))
        .and_then(|rest| rest.split('"').next())
}

/// The review's probe: `warn`, then a `mode: enforce` file copied over the settings (in place,
/// as `cp` does), then `deny` without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_switched_from_warn_to_enforce_denies_without_a_restart() -> TestResult {
    let (ca, gatekeeper_ca) = (Ca::new("serving CA")?, Ca::new("gatekeeper CA")?);
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let path = files.dir.path().join("settings.yaml");
    std::fs::write(&path, settings("warn"))?;
    let served = Served::start(&files, &ca, &gatekeeper_ca, &path)?;
    assert_eq!(served.verdict().await?, "warn");
    let before = served.metrics().await?;
    assert!(
        before
            .lines()
            .any(|l| l == "cluster_image_policy_provider_settings_reloads_total 0"),
        "{before}"
    );

    let enforce = files.dir.path().join("enforce.yaml");
    std::fs::write(&enforce, settings("enforce"))?;
    std::fs::copy(&enforce, &path)?;
    served.await_verdict("deny").await?;

    let after = served
        .await_metric("cluster_image_policy_provider_settings_reloads_total 1")
        .await?;
    assert!(
        after
            .lines()
            .any(|l| l == "cluster_image_policy_provider_settings_reload_failing 0"),
        "{after}"
    );
    assert_ne!(settings_digest(&before), settings_digest(&after), "{before}\n{after}");
    assert!(settings_digest(&after).is_some_and(|d| d.len() == 64), "{after}");
    Ok(())
}

/// A changed file the policy refuses: the previous settings stay served, the failure is counted
/// once and shown by the `failing` gauge until a valid file replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_settings_keep_the_previous_ones_served_and_are_reported() -> TestResult {
    let (ca, gatekeeper_ca) = (Ca::new("serving CA")?, Ca::new("gatekeeper CA")?);
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let path = files.dir.path().join("settings.yaml");
    std::fs::write(&path, settings("enforce"))?;
    let served = Served::start(&files, &ca, &gatekeeper_ca, &path)?;
    assert_eq!(served.verdict().await?, "deny");
    let started_with = served.metrics().await?;

    // What an admin who mistypes the mode writes: the module refuses it.
    std::fs::write(&path, settings("enforced"))?;
    let refused = served
        .await_metric("cluster_image_policy_provider_settings_reload_failures_total 1")
        .await?;
    assert!(
        refused
            .lines()
            .any(|l| l == "cluster_image_policy_provider_settings_reload_failing 1"),
        "{refused}"
    );
    assert!(
        refused
            .lines()
            .any(|l| l == "cluster_image_policy_provider_settings_reloads_total 0"),
        "{refused}"
    );
    assert_eq!(settings_digest(&refused), settings_digest(&started_with));
    assert_eq!(
        served.verdict().await?,
        "deny",
        "the previous (enforce) settings are served"
    );
    // Counted once, not at every poll.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = served.metrics().await?;
    assert!(
        later
            .lines()
            .any(|l| l == "cluster_image_policy_provider_settings_reload_failures_total 1"),
        "{later}"
    );

    std::fs::write(&path, settings("warn"))?;
    served.await_verdict("warn").await?;
    served
        .await_metric("cluster_image_policy_provider_settings_reload_failing 0")
        .await?;
    Ok(())
}

/// A ConfigMap volume as the kubelet writes it: `settings.yaml` → `..data/settings.yaml`,
/// `..data` → a timestamped directory, replaced by renaming a new symlink over `..data`, the
/// old directory then removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_volume_whose_data_symlink_is_swapped_is_followed() -> TestResult {
    let (ca, gatekeeper_ca) = (Ca::new("serving CA")?, Ca::new("gatekeeper CA")?);
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let volume = files.dir.path().join("settings");
    let first = volume.join("..2026_12_06_20_00_00.000000001");
    std::fs::create_dir_all(&first)?;
    std::fs::write(first.join("settings.yaml"), settings("warn"))?;
    std::os::unix::fs::symlink(first.file_name().ok_or("name")?, volume.join("..data"))?;
    std::os::unix::fs::symlink("..data/settings.yaml", volume.join("settings.yaml"))?;
    let path = volume.join("settings.yaml");
    let served = Served::start(&files, &ca, &gatekeeper_ca, &path)?;
    assert_eq!(served.verdict().await?, "warn");

    let second = volume.join("..2026_12_06_20_01_00.000000002");
    std::fs::create_dir_all(&second)?;
    std::fs::write(second.join("settings.yaml"), settings("enforce"))?;
    std::os::unix::fs::symlink(second.file_name().ok_or("name")?, volume.join("..data_tmp"))?;
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data"))?;
    std::fs::remove_dir_all(&first)?;
    served.await_verdict("deny").await?;
    served
        .await_metric("cluster_image_policy_provider_settings_reloads_total 1")
        .await?;
    Ok(())
}

/// A settings file of one policy in `mode`, the decider serving it, and a watch over the file
/// (in-process; the directory lives as long as the value).
struct Watched {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// The file's text, as served.
    text: String,
    decider: cip::provider::PolicyDecider,
    /// The settings served at the start.
    served: std::sync::Arc<serde_json::Value>,
    watch: SettingsWatch,
}

async fn watched(mode: &str) -> TestResult<Watched> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("settings.yaml");
    let text = settings(mode);
    std::fs::write(&path, &text)?;
    let parse = cip::cli::session::parse_settings;
    let decider = policy_decider("127.0.0.1:1", parse(&text)?).await??;
    let served = decider.settings();
    let watch = SettingsWatch::new(path.clone(), decider.clone(), parse, text.clone().into_bytes());
    Ok(Watched {
        _dir: dir,
        path,
        text,
        decider,
        served,
        watch,
    })
}

/// `cip provider` started on the settings file at `path`: it must refuse the file and exit
/// (the TLS files need not exist: the settings are read first); its stderr.
fn refused_at_start(path: &Path) -> TestResult<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_cip"))
        .arg("provider")
        .arg("--settings-path")
        .arg(path)
        .args([
            "--tls-cert-file",
            "/nonexistent/tls.crt",
            "--tls-key-file",
            "/nonexistent/tls.key",
        ])
        .arg(policy_wasm_path())
        .output()?;
    assert!(!output.status.success());
    Ok(String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Polls `watch` until a poll acts on the file: the first poll after a change only notes it
/// (the file must read the same a whole poll interval later).
async fn settled(watch: &mut SettingsWatch) -> Polled {
    assert_eq!(
        watch.poll().await,
        Polled::Unsettled,
        "acted on a change seen at one poll only"
    );
    watch.poll().await
}

/// The watcher in-process: what it reports (and logs) for each kind of unusable file, the
/// settings served meanwhile, no second report for a file that did not change again, and the
/// served file put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_names_the_problem_and_leaves_the_served_settings_alone() -> TestResult {
    let Watched {
        _dir,
        path,
        text: warn,
        decider,
        served,
        mut watch,
        ..
    } = watched("warn").await?;
    assert_eq!(watch.poll().await, Polled::Unchanged);

    std::fs::write(&path, settings("enforced"))?;
    let Polled::Refused(problem) = settled(&mut watch).await else {
        return Err("a refused mode was applied".into());
    };
    assert!(problem.contains("the policy refused its settings"), "{problem}");
    assert!(problem.contains("enforced"), "{problem}");
    assert_eq!(watch.poll().await, Polled::Unchanged, "reported once");

    std::fs::write(&path, "policies: [")?;
    let Polled::Refused(problem) = settled(&mut watch).await else {
        return Err("broken YAML was applied".into());
    };
    assert!(problem.contains("not valid YAML or JSON"), "{problem}");

    std::fs::remove_file(&path)?;
    let Polled::Refused(problem) = settled(&mut watch).await else {
        return Err("a missing file was applied".into());
    };
    assert!(problem.contains("cannot read"), "{problem}");

    assert_eq!(decider.settings(), served, "the start-up settings are still served");
    let status = cip::provider::Decider::settings_status(&decider).ok_or("no status")?;
    assert_eq!((status.reloads, status.reload_failures), (0, 3));
    assert!(status.failing.is_some_and(|p| p.contains("cannot read")));

    // Back to the file served: nothing to switch, the failure is over.
    std::fs::write(&path, &warn)?;
    assert_eq!(settled(&mut watch).await, Polled::Restored);
    let status = cip::provider::Decider::settings_status(&decider).ok_or("no status")?;
    assert_eq!((status.reloads, status.reload_failures, status.failing), (0, 3, None));

    std::fs::write(&path, settings("enforce"))?;
    assert_eq!(settled(&mut watch).await, Polled::Applied);
    assert_eq!(decider.settings()["policies"][0]["spec"]["mode"], "enforce");
    let status = cip::provider::Decider::settings_status(&decider).ok_or("no status")?;
    assert_eq!((status.reloads, status.failing), (1, None));
    Ok(())
}

/// The review's slow writer, in-process: the file truncated, empty at two polls, then written.
/// The empty file is refused (an empty document would be "no policies", every image admitted),
/// never served; the written file then is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_settings_file_is_refused_not_served() -> TestResult {
    let Watched {
        _dir,
        path,
        decider,
        served,
        mut watch,
        ..
    } = watched("enforce").await?;

    for blank in ["", " \n\n  \t\n"] {
        std::fs::write(&path, blank)?;
        let Polled::Refused(problem) = settled(&mut watch).await else {
            return Err(format!("the blank file {blank:?} was applied").into());
        };
        assert!(problem.contains("the settings file is empty"), "{problem}");
        assert_eq!(decider.settings(), served);
    }
    let status = cip::provider::Decider::settings_status(&decider).ok_or("no status")?;
    assert_eq!((status.reloads, status.reload_failures), (0, 2));

    // An admin who means "no policies" says so: served (and logged at warn).
    std::fs::write(&path, "policies: []\n")?;
    assert_eq!(settled(&mut watch).await, Polled::Applied);
    assert_eq!(decider.settings()["policies"], serde_json::json!([]));

    // Nor does the provider start on an empty file.
    std::fs::write(&path, "\n")?;
    let stderr = refused_at_start(&path)?;
    assert!(stderr.contains("is empty (or blank): refused"), "{stderr}");
    Ok(())
}

/// A file rewritten at every poll (a writer that never stops, two writers fighting) is never
/// applied, and that is reported once, after `UNSETTLED_POLLS_REPORTED` polls, like a refused
/// file: counted, on `/metrics`, the settings served unchanged. The report ends when the file
/// settles, and a file going back to a refused one reports that refusal again, not counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_never_settles_is_reported_once() -> TestResult {
    use cip::provider::settings_watch::UNSETTLED_POLLS_REPORTED;
    let Watched {
        _dir,
        path,
        text: warn,
        decider,
        served,
        mut watch,
        ..
    } = watched("warn").await?;
    let status = |decider: &cip::provider::PolicyDecider| {
        let status = cip::provider::Decider::settings_status(decider).ok_or("no status")?;
        TestResult::Ok((status.reloads, status.reload_failures, status.failing))
    };
    // Each poll reads another valid file (a comment numbered by the poll).
    let mut rewrites = 0;
    let mut rewrite = |path: &Path| {
        rewrites += 1;
        std::fs::write(path, format!("{}# rewrite {rewrites}\n", settings("enforce")))
    };
    for poll in 1..UNSETTLED_POLLS_REPORTED {
        rewrite(&path)?;
        assert_eq!(watch.poll().await, Polled::Unsettled, "poll {poll}");
    }
    assert_eq!(status(&decider)?, (0, 0, None), "nothing reported before the limit");
    rewrite(&path)?;
    let Polled::Refused(problem) = watch.poll().await else {
        return Err("a file changing at every poll was not reported".into());
    };
    assert!(problem.contains("changed at each of the last 5 polls"), "{problem}");
    for _ in 0..3 {
        rewrite(&path)?;
        assert_eq!(watch.poll().await, Polled::Unsettled, "reported once");
    }
    let (reloads, failures, failing) = status(&decider)?;
    assert_eq!((reloads, failures), (0, 1));
    assert_eq!(failing.as_deref(), Some(problem.as_str()));
    assert_eq!(decider.settings(), served);

    // The file back as served, at two polls: the report is over.
    std::fs::write(&path, &warn)?;
    assert_eq!(watch.poll().await, Polled::Unchanged);
    assert_eq!(watch.poll().await, Polled::Unchanged);
    assert_eq!(status(&decider)?, (0, 1, None));

    // A refused file, then a run of rewrites, then the refused file again: its refusal is the
    // current problem again, not counted again.
    std::fs::write(&path, settings("enforced"))?;
    let Polled::Refused(refused) = settled(&mut watch).await else {
        return Err("a refused mode was applied".into());
    };
    for _ in 0..UNSETTLED_POLLS_REPORTED {
        rewrite(&path)?;
        watch.poll().await;
    }
    let (_, failures, failing) = status(&decider)?;
    assert_eq!(failures, 3, "the refusal and the second run each counted once");
    assert!(failing.is_some_and(|f| f.contains("changed at each")));
    std::fs::write(&path, settings("enforced"))?;
    assert_eq!(watch.poll().await, Polled::Unchanged);
    assert_eq!(watch.poll().await, Polled::Unchanged);
    assert_eq!(status(&decider)?, (0, 3, Some(refused)));

    // Rewrites that end in a usable file: applied when it settles, the report over.
    for _ in 0..UNSETTLED_POLLS_REPORTED {
        rewrite(&path)?;
        watch.poll().await;
    }
    assert_eq!(watch.poll().await, Polled::Applied);
    let (reloads, failures, failing) = status(&decider)?;
    assert_eq!((reloads, failures, failing), (1, 4, None));
    assert_eq!(decider.settings()["policies"][0]["spec"]["mode"], "enforce");
    Ok(())
}

/// A file switching back and forth between the settings served and another file at every poll
/// (two writers fighting) is reported too, though every other poll reads the file last handled;
/// the other file is applied once it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_fighting_with_the_settings_served_is_reported() -> TestResult {
    use cip::provider::settings_watch::UNSETTLED_POLLS_REPORTED;
    let Watched {
        _dir,
        path,
        text: warn,
        decider,
        served,
        mut watch,
        ..
    } = watched("warn").await?;
    let enforce = settings("enforce");
    let mut report = None;
    for poll in 1..=UNSETTLED_POLLS_REPORTED {
        std::fs::write(&path, if poll % 2 == 1 { &enforce } else { &warn })?;
        match watch.poll().await {
            Polled::Refused(problem) => report = Some((poll, problem)),
            Polled::Unsettled | Polled::Unchanged => {}
            other => return Err(format!("poll {poll}: {other:?}").into()),
        }
    }
    let (poll, problem) = report.ok_or("a file switching at every poll was not reported")?;
    assert_eq!(poll, UNSETTLED_POLLS_REPORTED);
    assert!(problem.contains("changed at each of the last 5 polls"), "{problem}");
    assert_eq!(decider.settings(), served);
    assert_eq!(watch.poll().await, Polled::Applied, "the file stayed");
    assert_eq!(decider.settings()["policies"][0]["spec"]["mode"], "enforce");
    Ok(())
}

/// A file missing (or unreadable) at one poll only, as during an editor's rename-save, is no
/// failure: looked at again at the next poll. One missing at two polls is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_missing_at_one_poll_only_is_not_a_failure() -> TestResult {
    let Watched {
        _dir,
        path,
        decider,
        mut watch,
        ..
    } = watched("warn").await?;

    std::fs::remove_file(&path)?;
    assert_eq!(watch.poll().await, Polled::Unsettled);
    std::fs::write(&path, settings("enforce"))?;
    assert_eq!(
        watch.poll().await,
        Polled::Unsettled,
        "the new file is read once so far"
    );
    assert_eq!(watch.poll().await, Polled::Applied);
    let status = cip::provider::Decider::settings_status(&decider).ok_or("no status")?;
    assert_eq!((status.reloads, status.reload_failures), (1, 0));

    std::fs::remove_file(&path)?;
    assert_eq!(watch.poll().await, Polled::Unsettled);
    std::fs::write(&path, settings("enforce"))?;
    assert_eq!(watch.poll().await, Polled::Unchanged, "back before the next poll");
    let status = cip::provider::Decider::settings_status(&decider).ok_or("no status")?;
    assert_eq!((status.reloads, status.reload_failures), (1, 0));

    std::fs::remove_file(&path)?;
    let Polled::Refused(problem) = settled(&mut watch).await else {
        return Err("a file missing at two polls is not refused".into());
    };
    assert!(problem.contains("cannot read"), "{problem}");
    let status = cip::provider::Decider::settings_status(&decider).ok_or("no status")?;
    assert_eq!((status.reloads, status.reload_failures), (1, 1));
    Ok(())
}

/// The review's slow writer against the built provider: `( sleep 3; cat new.yaml ) >
/// settings.yaml` truncates the settings and writes them 3 s later. Every verdict asked
/// meanwhile is the enforced policy's `deny` (the empty file, `{}`, would admit with `warn`);
/// the empty file is one reload failure, the new file one reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_rewrite_never_serves_the_empty_file() -> TestResult {
    let (ca, gatekeeper_ca) = (Ca::new("serving CA")?, Ca::new("gatekeeper CA")?);
    let files = TlsFiles::write(&ca.server()?, &gatekeeper_ca)?;
    let path = files.dir.path().join("settings.yaml");
    std::fs::write(&path, settings("enforce"))?;
    let served = Served::start(&files, &ca, &gatekeeper_ca, &path)?;
    assert_eq!(served.verdict().await?, "deny");

    let new = files.dir.path().join("new.yaml");
    std::fs::write(&new, format!("{}noMatchPolicy: deny\n", settings("enforce")))?;
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(r#"( sleep 3; cat "$1" ) > "$2""#)
        .arg("sh")
        .arg(&new)
        .arg(&path)
        .spawn()?;
    let mut verdicts = Vec::new();
    while writer.try_wait()?.is_none() {
        verdicts.push(served.verdict().await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(writer.wait()?.success());
    let after = served
        .await_metric("cluster_image_policy_provider_settings_reloads_total 1")
        .await?;
    for _ in 0..5 {
        verdicts.push(served.verdict().await?);
    }
    assert!(verdicts.len() > 20, "{verdicts:?}");
    assert!(verdicts.iter().all(|v| v == "deny"), "{verdicts:?}");
    assert!(
        after
            .lines()
            .any(|l| l == "cluster_image_policy_provider_settings_reload_failures_total 1"),
        "{after}"
    );
    assert!(
        after
            .lines()
            .any(|l| l == "cluster_image_policy_provider_settings_reload_failing 0"),
        "{after}"
    );
    Ok(())
}

/// Files that are not settings: one larger than 4 MiB, a FIFO (reading it would wait for a
/// writer) and a symlink to `/dev/zero` (endless) are refused with their reason, when polled and
/// at start-up, without hanging or reading them whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_special_files_are_refused() -> TestResult {
    let Watched {
        _dir: dir,
        path,
        decider,
        served,
        mut watch,
        ..
    } = watched("warn").await?;

    let oversized = dir.path().join("oversized.yaml");
    let mut big = settings("enforce");
    big.push_str(&"#".repeat(4 * 1024 * 1024));
    big.push('\n');
    std::fs::write(&oversized, &big)?;
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status()?.success());
    let cases: [(&Path, &str); 3] = [
        (&oversized, "larger than 4 MiB"),
        (&fifo, "not a regular file (a FIFO)"),
        (Path::new("/dev/zero"), "not a regular file (a device)"),
    ];
    for (target, reason) in cases {
        std::fs::remove_file(&path)?;
        std::os::unix::fs::symlink(target, &path)?;
        let Polled::Refused(problem) = tokio::time::timeout(Duration::from_secs(10), settled(&mut watch)).await? else {
            return Err(format!("{} was applied", target.display()).into());
        };
        assert!(problem.contains(reason), "{problem}");
        assert_eq!(decider.settings(), served);

        let started = Instant::now();
        let stderr = refused_at_start(&path)?;
        assert!(stderr.contains(reason), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }
    Ok(())
}
