//! Prometheus metrics: one process-wide recorder (the `metrics` facade),
//! rendered at `GET /metrics`. Counters and histograms are recorded where
//! things happen; gauges that describe the fleet (workspaces by status and
//! type) are computed from the store at scrape time, so they are never stale.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .expect("buckets are not empty")
                // Per-workspace gauges of workspaces that stopped go away.
                .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(120)))
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist in tests; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
