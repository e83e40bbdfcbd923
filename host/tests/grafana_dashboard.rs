//! deploy/prometheus/grafana-dashboard.json queries only metrics that exist: every
//! `cluster_image_policy_*` series it names appears on a running provider's /metrics, every
//! `kubewarden_*` series is one Kubewarden's policy-server exports
//! (deploy/tests/policy-server-metrics.txt), and Kubewarden series are restricted to our
//! policies by `policy_name`.

mod provider_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use cip::provider::protocol::{Decision, ImageKey, Verdict};
use cip::provider::{Decider, DownloadPoolStats, Limits, SettingsStatus};
use cip::verify::CacheStats;
use provider_support::*;
use serde_json::Value;

/// A decider with a verification cache, a download pool and reloadable settings, like the real
/// one, so the cache, pool and settings series are exported.
struct Cached;

impl Decider for Cached {
    fn decide(&self, _key: &ImageKey) -> Result<Decision, String> {
        Ok(Decision {
            verdict: Verdict::Allow,
            digest: None,
            message: String::new(),
            policies: Vec::new(),
        })
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        Some(CacheStats { hits: 1, misses: 1 })
    }

    fn download_pool_stats(&self) -> Option<DownloadPoolStats> {
        Some(DownloadPoolStats {
            limit: 32 << 20,
            in_use: 1,
            high_water: 2,
            refusals: 1,
            waits: 1,
        })
    }

    fn settings_status(&self) -> Option<SettingsStatus> {
        Some(SettingsStatus {
            digest: "0".repeat(64),
            applied_at: std::time::SystemTime::now(),
            reloads: 1,
            reload_failures: 1,
            failing: None,
        })
    }
}

fn repo_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `expr` of the dashboard.
fn queries(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// The metric names a PromQL expression mentions (ours and Kubewarden's).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            current.push(c);
            continue;
        }
        if current.starts_with("cluster_image_policy_") || current.starts_with("kubewarden_") {
            names.insert(std::mem::take(&mut current));
        }
        current.clear();
    }
    names
}

/// The series names of an OpenMetrics text.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The names of `queries` that are neither exported by the provider nor by policy-server.
fn unknown(queries: &[String], provider: &BTreeSet<String>, policy_server: &BTreeSet<String>) -> Vec<String> {
    queries
        .iter()
        .flat_map(|expr| metric_names(expr))
        .filter(|name| !provider.contains(name) && !policy_server.contains(name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_only_exported_metrics() -> TestResult {
    let dashboard: Value = serde_json::from_str(&repo_file("deploy/prometheus/grafana-dashboard.json"))?;
    let queries = queries(&dashboard);
    assert!(queries.len() >= 6, "{queries:?}");

    let ca = Ca::new("serving CA")?;
    let files = TlsFiles::write(&ca.server()?, &ca)?;
    let provider = start(Arc::new(Cached), &files, false, Limits::default()).await?;
    let client = tls13_client(&ca, None)?;
    let (status, _) = post(
        &client,
        &provider,
        &request(&[key("registry.example/app:v1", "default")]),
    )
    .await?;
    assert_eq!(status, 200);
    let provider_series = exported(&metrics(&provider).await?);
    provider.shutdown().await;

    let policy_server: BTreeSet<String> = repo_file("deploy/tests/policy-server-metrics.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();

    assert_eq!(
        unknown(&queries, &provider_series, &policy_server),
        Vec::<String>::new(),
        "exported: {provider_series:?}"
    );
    let named: BTreeSet<String> = queries.iter().flat_map(|expr| metric_names(expr)).collect();
    assert!(
        named.iter().any(|n| n.starts_with("cluster_image_policy_")),
        "{named:?}"
    );
    assert!(named.iter().any(|n| n.starts_with("kubewarden_")), "{named:?}");
    // Every series about the settings served has a panel (the alerts' series included).
    let settings_series: Vec<&String> = provider_series
        .iter()
        .filter(|name| name.starts_with("cluster_image_policy_provider_settings_"))
        .collect();
    assert!(settings_series.len() >= 5, "{provider_series:?}");
    for series in settings_series {
        assert!(named.contains(series), "no panel shows {series}");
    }
    for expr in queries.iter().filter(|expr| expr.contains("kubewarden_")) {
        assert!(
            expr.contains(r#"policy_name=~"clusterwide-cluster-image-policy-.*""#),
            "a Kubewarden query not restricted to our policies: {expr}"
        );
    }

    // The check is not vacuous: a misspelt or invented series is reported.
    let invented = vec![
        "rate(cluster_image_policy_validation_total[5m])".to_owned(),
        "kubewarden_policy_evaluation_duration_seconds_bucket".to_owned(),
    ];
    assert_eq!(
        unknown(&invented, &provider_series, &policy_server),
        [
            "cluster_image_policy_validation_total",
            "kubewarden_policy_evaluation_duration_seconds_bucket"
        ]
    );
    Ok(())
}
