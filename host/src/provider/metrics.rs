//! Prometheus metrics of the provider, served on the plain-HTTP metrics port.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::decider::Decider;

type ResultLabel = [(&'static str, &'static str); 1];
type ReasonLabel = [(&'static str, &'static str); 1];

/// The provider's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    validations: Family<ResultLabel, Counter>,
    closed_connections: Family<ReasonLabel, Counter>,
    evaluation_seconds: Histogram,
    request_seconds: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric; cache counters are read from `decider` on each scrape.
    pub fn new(decider: Arc<dyn Decider>) -> Self {
        let mut registry = Registry::default();
        let validations = Family::<ResultLabel, Counter>::default();
        registry.register(
            "cluster_image_policy_validations",
            "Images validated by the Gatekeeper provider, by result (allow, warn, deny, error)",
            validations.clone(),
        );
        let closed_connections = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "cluster_image_policy_provider_connections_closed",
            "Client connections the provider closed or refused, by reason (refused, handshake_refused, \
             handshake_evicted, tls_handshake_timeout, header_read_timeout, body_read_timeout, idle_timeout, \
             client_no_longer_trusted, metrics_refused, metrics_evicted, request_bytes_busy)",
            closed_connections.clone(),
        );
        // 100 µs .. ~3.3 s: cached keys take well under a millisecond, registry round trips more.
        let evaluation_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "cluster_image_policy_evaluation_duration_seconds",
            "Time to decide about one image, including signature verification",
            evaluation_seconds.clone(),
        );
        let request_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "cluster_image_policy_provider_request_duration_seconds",
            "Time to answer one Gatekeeper ProviderRequest",
            request_seconds.clone(),
        );
        registry.register_collector(Box::new(CacheCollector {
            decider: Arc::clone(&decider),
        }));
        registry.register_collector(Box::new(PoolCollector {
            decider: Arc::clone(&decider),
        }));
        registry.register_collector(Box::new(SettingsCollector { decider }));
        Self {
            registry,
            validations,
            closed_connections,
            evaluation_seconds,
            request_seconds,
        }
    }

    /// Counts one answered key: `result` is a verdict name or `"error"`.
    pub fn record_validation(&self, result: &'static str) {
        self.validations.get_or_create(&[("result", result)]).inc();
    }

    /// Counts one connection closed (or refused) by the provider for `reason`.
    pub fn record_closed_connection(&self, reason: &'static str) {
        self.closed_connections.get_or_create(&[("reason", reason)]).inc();
    }

    /// Records the time one evaluation took.
    pub fn record_evaluation(&self, elapsed: Duration) {
        self.evaluation_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records the time one request took.
    pub fn record_request(&self, elapsed: Duration) {
        self.request_seconds.observe(elapsed.as_secs_f64());
    }

    /// Renders the OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Exposes the verifier's cache counters, read at scrape time.
struct CacheCollector {
    decider: Arc<dyn Decider>,
}

impl std::fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCollector").finish_non_exhaustive()
    }
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = self.decider.cache_stats() else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "cluster_image_policy_verification_cache_hits",
                "Signature verifications answered from the cache",
                stats.hits,
            ),
            (
                "cluster_image_policy_verification_cache_misses",
                "Signature verifications that had to query the registry",
                stats.misses,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// Exposes the verifier's process-wide download pool, read at scrape time.
struct PoolCollector {
    decider: Arc<dyn Decider>,
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolCollector").finish_non_exhaustive()
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(pool) = self.decider.download_pool_stats() else {
            return Ok(());
        };
        let gauge = |n: u64| ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        for (name, help, value) in [
            (
                "cluster_image_policy_provider_download_pool_limit_bytes",
                "The bytes the verifications in flight may hold at once (--max-inflight-download-bytes)",
                pool.limit,
            ),
            (
                "cluster_image_policy_provider_download_pool_bytes",
                "The bytes the verifications in flight hold now (past each one's allowance, which the pool does not count)",
                pool.in_use,
            ),
            (
                "cluster_image_policy_provider_download_pool_high_water_bytes",
                "The most bytes the verifications in flight held at once since start-up",
                pool.high_water,
            ),
        ] {
            let value = gauge(value);
            let metric = encoder.encode_descriptor(name, help, None, value.metric_type())?;
            value.encode(metric)?;
        }
        for (name, help, value) in [
            (
                "cluster_image_policy_provider_download_pool_refusals",
                "Verifications refused because the download pool stayed full until their deadline (transient: the image fails closed)",
                pool.refusals,
            ),
            (
                "cluster_image_policy_provider_download_pool_waits",
                "Downloads that waited for bytes other verifications held in the pool (verified in the end, or refused)",
                pool.waits,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// Exposes the settings served and how their reloads went, read at scrape time.
struct SettingsCollector {
    decider: Arc<dyn Decider>,
}

impl std::fmt::Debug for SettingsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsCollector").finish_non_exhaustive()
    }
}

impl Collector for SettingsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(status) = self.decider.settings_status() else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "cluster_image_policy_provider_settings_reloads",
                "Changed settings files the provider switched to without a restart",
                status.reloads,
            ),
            (
                "cluster_image_policy_provider_settings_reload_failures",
                "Changed settings files the provider could not use (unreadable, not YAML, refused by the policy); \
                 the previous settings stayed served",
                status.reload_failures,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let failing = ConstGauge::new(i64::from(status.failing.is_some()));
        let metric = encoder.encode_descriptor(
            "cluster_image_policy_provider_settings_reload_failing",
            "1 while the settings file holds settings the provider could not use and it serves the previous ones",
            None,
            failing.metric_type(),
        )?;
        failing.encode(metric)?;
        let applied = status
            .applied_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        let applied = ConstGauge::new(applied);
        let metric = encoder.encode_descriptor(
            "cluster_image_policy_provider_settings_applied_timestamp_seconds",
            "When the settings served were applied (start-up or the last reload), in seconds since the epoch",
            None,
            applied.metric_type(),
        )?;
        applied.encode(metric)?;
        let info = ConstGauge::new(1_i64);
        let mut metric = encoder.encode_descriptor(
            "cluster_image_policy_provider_settings_info",
            "The settings served: sha256 of their JSON form (replicas serving the same settings agree)",
            None,
            info.metric_type(),
        )?;
        let labels = [("sha256", status.digest.as_str())];
        info.encode(metric.encode_family(&labels)?)?;
        Ok(())
    }
}
