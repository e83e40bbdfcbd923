//! `cip bench`: evaluate one request repeatedly and report per-evaluation timings.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::module_args::ModuleVerificationArgs;
use super::session::{LimitArgs, Session, SettingsArgs, VerifierArgs};
use crate::admission::request_from_document;
use crate::runtime::CallStats;

/// Benchmark a policy: evaluate one request many times and print timing percentiles.
#[derive(Debug, Args)]
#[command(
    after_help = "Reports min / median / p99 / mean of the whole evaluation and of the time spent in
host callbacks (registry look-ups, verification). The first evaluations warm the instance pool
and the verification cache and are not counted.

Examples:
  cip bench --request-path pod.json --settings-path settings.yaml policy.wasm
  cip bench -r pod.json -s settings.yaml --iterations 5000 --warmup 50 --output json policy.wasm
  cip bench -r pod.json -s settings.yaml --fresh-instances policy.wasm"
)]
pub struct BenchArgs {
    /// AdmissionRequest or whole AdmissionReview, JSON or YAML.
    #[arg(long, short = 'r', value_name = "FILE")]
    pub request_path: PathBuf,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub verifier: VerifierArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub module: ModuleVerificationArgs,
    /// Measured evaluations.
    #[arg(long, default_value_t = 1000)]
    pub iterations: usize,
    /// Evaluations run first and not measured.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Instantiate the module for every evaluation instead of reusing warm instances.
    #[arg(long)]
    pub fresh_instances: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = BenchFormat::Text)]
    pub output: BenchFormat,
    /// The policy: a .wasm file or a registry:// URI.
    #[arg(value_name = "POLICY")]
    pub policy: String,
}

/// How `cip bench` prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchFormat {
    /// A short table.
    Text,
    /// One JSON document (durations in microseconds).
    Json,
}

/// Percentiles of a series of durations, in microseconds.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Fastest.
    pub min_us: f64,
    /// Median.
    pub median_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Summary {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |q: f64| {
            let last = samples.len().saturating_sub(1);
            // Nearest-rank percentile over at most a few million samples: the cast is exact.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let index = ((q * last as f64).round() as usize).min(last);
            samples.get(index).copied().map_or(0.0, us)
        };
        let total: Duration = samples.iter().sum();
        #[allow(clippy::cast_precision_loss)]
        let mean_us = if samples.is_empty() {
            0.0
        } else {
            us(total) / samples.len() as f64
        };
        Self {
            min_us: at(0.0),
            median_us: at(0.5),
            p99_us: at(0.99),
            max_us: at(1.0),
            mean_us,
        }
    }
}

/// What `cip bench` measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Policy name.
    pub policy: String,
    /// Measured evaluations.
    pub iterations: usize,
    /// Whether the request was accepted (from the last evaluation).
    pub accepted: bool,
    /// Whole evaluations.
    pub evaluation: Summary,
    /// Time inside host callbacks, per evaluation.
    pub host_callbacks: Summary,
    /// Host calls per evaluation (mean).
    pub host_calls_per_evaluation: f64,
    /// Evaluations that had to instantiate the module.
    pub fresh_instances: usize,
    /// Minor page faults of the `cip` process per measured evaluation (`null` where
    /// `/proc/self/stat` is missing): a fresh instance pays one for each page of its memory it
    /// touches, ≈ 0.7 µs each on the project's machine (docs/benchmarks.md, twenty-first pass),
    /// which instruction counts do not show.
    pub page_faults_per_evaluation: Option<f64>,
    /// Verifier cache hits and misses over the whole run (warm-up included).
    pub verification_cache: CacheCounters,
    /// Host-side answer memo hits and misses (look-ups answered without reaching the verifier).
    pub answer_cache: CacheCounters,
}

/// Verification cache counters.
#[derive(Debug, Serialize)]
pub struct CacheCounters {
    /// Answers served from the cache.
    pub hits: u64,
    /// Answers computed.
    pub misses: u64,
}

/// Runs `cip bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let text = std::fs::read_to_string(&args.request_path)
        .with_context(|| format!("cannot read {}", args.request_path.display()))?;
    let request =
        request_from_document(&text).with_context(|| format!("request file {}", args.request_path.display()))?;
    let settings = args.settings.load()?;
    let pool_size = args.fresh_instances.then_some(0);
    let session = Session::open(&args.policy, &args.verifier, &args.limits, &args.module, pool_size)?;
    session.check_settings(&settings)?;

    for _ in 0..args.warmup {
        session.evaluator.validate_with_stats(&request, &settings)?;
    }
    let bar = indicatif::ProgressBar::new(u64::try_from(args.iterations).unwrap_or(u64::MAX));
    let mut stats: Vec<CallStats> = Vec::with_capacity(args.iterations);
    let mut accepted = false;
    let faults_before = minor_faults();
    for _ in 0..args.iterations {
        let (response, call) = session.evaluator.validate_with_stats(&request, &settings)?;
        accepted = response.accepted;
        stats.push(call);
        bar.inc(1);
    }
    let faults = faults_before
        .zip(minor_faults())
        .map(|(before, after)| after.saturating_sub(before));
    bar.finish_and_clear();

    let cache = session.verifier.cache_stats();
    let host_calls: u64 = stats.iter().map(|s| u64::from(s.host_calls)).sum();
    #[allow(clippy::cast_precision_loss)]
    let host_calls_per_evaluation = host_calls as f64 / stats.len() as f64;
    let report = Report {
        policy: session.evaluator.name().to_owned(),
        iterations: stats.len(),
        accepted,
        evaluation: Summary::of(stats.iter().map(|s| s.total).collect()),
        host_callbacks: Summary::of(stats.iter().map(|s| s.host).collect()),
        host_calls_per_evaluation,
        fresh_instances: stats.iter().filter(|s| s.fresh_instance).count(),
        #[allow(clippy::cast_precision_loss)]
        page_faults_per_evaluation: faults.map(|faults| faults as f64 / stats.len() as f64),
        verification_cache: CacheCounters {
            hits: cache.hits,
            misses: cache.misses,
        },
        answer_cache: {
            let memo = session.evaluator.capabilities().answer_cache_stats();
            CacheCounters {
                hits: memo.hits,
                misses: memo.misses,
            }
        },
    };
    match args.output {
        BenchFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        BenchFormat::Text => print_text(&report),
    }
    Ok(())
}

/// Minor page faults of this process so far; `None` without `/proc/self/stat`.
fn minor_faults() -> Option<u64> {
    minor_faults_in(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// The minor page faults (`minflt`, the tenth field) of a `/proc/<pid>/stat` line. The second
/// field, the command name in parentheses, may hold spaces and parentheses: the fields are
/// counted from the last `)`.
fn minor_faults_in(stat: &str) -> Option<u64> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(7)?.parse().ok()
}

fn print_text(report: &Report) {
    println!(
        "{}: {} evaluations ({}), {} fresh instances",
        report.policy,
        report.iterations,
        if report.accepted { "accepted" } else { "rejected" },
        report.fresh_instances
    );
    println!(
        "{:<16}{:>12}{:>12}{:>12}{:>12}{:>12}",
        "", "min", "median", "p99", "max", "mean"
    );
    for (label, s) in [
        ("evaluation", &report.evaluation),
        ("host callbacks", &report.host_callbacks),
    ] {
        println!(
            "{label:<16}{:>10.1}µs{:>10.1}µs{:>10.1}µs{:>10.1}µs{:>10.1}µs",
            s.min_us, s.median_us, s.p99_us, s.max_us, s.mean_us
        );
    }
    println!(
        "host calls per evaluation: {:.1}; answer memo: {} hits, {} misses; verifier cache: {} hits, {} misses",
        report.host_calls_per_evaluation,
        report.answer_cache.hits,
        report.answer_cache.misses,
        report.verification_cache.hits,
        report.verification_cache.misses
    );
    if let Some(faults) = report.page_faults_per_evaluation {
        println!("minor page faults per evaluation: {faults:.1}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault count is read past a command name holding spaces and parentheses, and grows
    /// when this process touches memory it never touched.
    #[test]
    fn minor_faults_are_read_from_proc() {
        let stat = "4242 (cip (bench) x) R 1 4242 4242 0 -1 4194304 1234 0 5 0 7 3";
        assert_eq!(minor_faults_in(stat), Some(1234));
        assert_eq!(minor_faults_in("4242 (cip) R 1"), None);
        assert_eq!(minor_faults_in("no fields"), None);
        let before = minor_faults().expect("/proc/self/stat on Linux");
        // Pages mapped here, in 4 KiB pages: the global allocator (regorus' mimalloc) may hand
        // out memory it already touched, or back it with huge pages (one fault for 2 MiB).
        let pages = 2048;
        let length = pages * 4096;
        // SAFETY: a private anonymous mapping of `length` bytes, written within its bounds and
        // unmapped once, by this function only.
        unsafe {
            let block = libc::mmap(
                std::ptr::null_mut(),
                length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(block, libc::MAP_FAILED);
            libc::madvise(block, length, libc::MADV_NOHUGEPAGE);
            for page in 0..pages {
                std::ptr::write_volatile(block.cast::<u8>().add(page * 4096), 1);
            }
            libc::munmap(block, length);
        }
        let after = minor_faults().expect("/proc/self/stat on Linux");
        assert!(after - before >= pages as u64 / 2, "{before} -> {after}");
    }

    #[test]
    fn summary_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Summary::of(samples);
        assert!((s.min_us - 1.0).abs() < 1e-9);
        assert!((s.max_us - 100.0).abs() < 1e-9);
        assert!((s.median_us - 51.0).abs() < 1e-9 || (s.median_us - 50.0).abs() < 1e-9);
        assert!((s.p99_us - 99.0).abs() < 1e-9 || (s.p99_us - 100.0).abs() < 1e-9);
        assert!((s.mean_us - 50.5).abs() < 1e-9);
    }
}
